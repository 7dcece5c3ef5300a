// The console's topology at 200 services (a real trellisd, a real browser): five service networks of 40 services,
// each service with a listener forwarding to a target group of its own (a target group serves one service). It
// starts as the overview (networks as boxes of service tiles); a search and a click open one service's chain; the
// full view draws all 200 framed by their networks, and the coarser level drops the rules. Screenshot:
// docs/console-200-services.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import {
  CreateServiceNetworkCommand, CreateServiceCommand, CreateTargetGroupCommand, CreateListenerCommand,
  CreateServiceNetworkServiceAssociationCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, freePort, ADMIN } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
let t, browser, page, consoleUrl;

before(async () => {
  assert.ok(CHROMIUM, 'chromium is not installed (scripts/setup.sh --test installs it)');
  const consolePort = await freePort();
  t = await startTrellis({ consoleListen: `127.0.0.1:${consolePort}` });
  consoleUrl = `http://127.0.0.1:${consolePort}/`;
  const c = t.client;
  const networks = [];
  for (let i = 0; i < 5; i++) networks.push(await c.send(new CreateServiceNetworkCommand({ name: `team-${i}` })));
  const port = await freePort();
  const work = Array.from({ length: 200 }, (_, i) => i);
  // A few at a time: the debug build with sanitizers is slow enough already.
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (work.length) {
      const i = work.shift();
      const name = String(i).padStart(3, '0');
      const svc = await c.send(new CreateServiceCommand({ name: `app-${name}` }));
      const tg = await c.send(new CreateTargetGroupCommand({ name: `pool-${name}`, type: 'IP', config: { port: 80, protocol: 'HTTP', vpcIdentifier: 'vpc-0123456789abcdef0' } }));
      await c.send(new CreateServiceNetworkServiceAssociationCommand({ serviceIdentifier: svc.id, serviceNetworkIdentifier: networks[i % 5].id }));
      await c.send(new CreateListenerCommand({
        serviceIdentifier: svc.id, name: 'http', protocol: 'HTTP', port,
        defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: tg.id, weight: 1 }] } },
      }));
    }
  }));
  browser = await puppeteer.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'], defaultViewport: { width: 1500, height: 950 },
  });
  page = await browser.newPage();
});

after(async () => {
  await browser?.close();
  await t?.stop();
});

test('200 services: an overview of networks as boxes of services; search and a click open one chain; all levels draw', async () => {
  await page.goto(consoleUrl, { waitUntil: 'networkidle0' });
  await page.type('#access-key', ADMIN.accessKeyId);
  await page.type('#secret-key', ADMIN.secretAccessKey);
  await page.click('#sign-in');
  const started = Date.now();
  await page.waitForFunction(() => document.querySelectorAll('#graph .node[data-kind="service"]').length === 200, { timeout: 60000 });
  const shownIn = Date.now() - started;
  assert.ok(shownIn < 20000, `the graph took ${shownIn} ms`);
  assert.equal(await page.$eval('#detail', (s) => s.value), 'overview', 'many services start as the overview');
  const boxes = await page.$$eval('#graph .box-title', (ls) => ls.map((l) => l.textContent).sort());
  assert.deepEqual(boxes, [0, 1, 2, 3, 4].map((i) => `team-${i} (40 services)`));
  await page.screenshot({ path: path.resolve(here, '../../docs/console-200-services.png') });

  // Search narrows the tiles; a tile opens its chain in the full view.
  await page.type('#search', 'app-042');
  assert.deepEqual(await page.$$eval('#graph .node', (ns) => ns.map((n) => n.dataset.label)), ['app-042']);
  await page.$eval('#graph .node[data-kind="service"]', (n) => n.dispatchEvent(new Event('click')));
  await page.waitForSelector('#graph .node[data-kind="route"]');
  assert.equal(await page.$eval('#detail', (s) => s.value), 'full');
  const chain = await page.$$eval('#graph .node', (ns) => ns.map((n) => `${n.dataset.kind}:${n.dataset.label}`).sort());
  assert.deepEqual(chain.filter((n) => !n.startsWith('route:')), ['network:team-2', 'service:app-042', 'targetgroup:pool-042']);
  assert.equal(chain.filter((n) => n.startsWith('route:')).length, 1);
  await page.waitForFunction(() => document.querySelector('#details h2')?.textContent === 'app-042');

  // Zoom changes the view box, and Fit brings the whole graph back.
  const box = () => page.$eval('#graph', (s) => s.getAttribute('viewBox'));
  await page.click('#zoom-fit');
  const fitted = await box();
  await page.click('#zoom-in');
  const zoomed = await box();
  assert.ok(Number(zoomed.split(' ')[2]) < Number(fitted.split(' ')[2]), `${zoomed} is not closer than ${fitted}`);

  // Everything in the full view: every service, framed by its network.
  await page.$eval('#search', (e) => { e.value = ''; e.dispatchEvent(new Event('input')); });
  assert.equal(await page.$$eval('#graph .node[data-kind="service"]', (ns) => ns.length), 200);
  assert.equal(await page.$$eval('#graph .node[data-kind="route"]', (ns) => ns.length), 200);
  const groups = await page.$$eval('#graph .group-label', (ls) => ls.map((l) => l.textContent).sort());
  assert.deepEqual(groups, [0, 1, 2, 3, 4].map((i) => `team-${i} (40)`));
  await page.select('#detail', 'services');
  await page.waitForFunction(() => document.querySelectorAll('#graph .node[data-kind="route"]').length === 0);
  assert.equal(await page.$$eval('#graph .node[data-kind="service"]', (ns) => ns.length), 200);
  assert.equal(await page.$$eval('#graph .node[data-kind="targetgroup"]', (ns) => ns.length), 200);
});
