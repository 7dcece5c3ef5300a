// The web console (trellisd --console-listen) in a real browser: Debian's chromium driven by puppeteer-core,
// against a real trellisd carrying real traffic. The workshop's scenario is built as `trellis apply` makes it
// (network eks-workshop, service checkoutroute-checkout, a rule splitting 25/75 between checkout v1 and v2);
// then: it appears in the graph; traffic shows up and updates without a reload; the canary slider moves the
// weights in the API and the split follows; a stopped target turns unhealthy; the access log tails; a create
// form shows a ValidationException's field; a read-only identity gets no controls and a 403 when it forges a
// call; a wrong CSRF token is refused; a removed identity's cookie stops working after a reload.
//
// Screenshots of the main views go to docs/console-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import {
  CreateServiceNetworkCommand, CreateServiceCommand, CreateTargetGroupCommand, RegisterTargetsCommand,
  CreateListenerCommand, CreateRuleCommand, CreateServiceNetworkServiceAssociationCommand,
  CreateServiceNetworkVpcAssociationCommand, CreateAccessLogSubscriptionCommand, GetRuleCommand, ListTargetsCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, freePort, until, ADMIN, BASE_CONFIG, ACCOUNT } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const DOCS = path.resolve(here, '../../docs');
const CHROMIUM = process.env.CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const CLIENT_IP = '127.0.1.10'; // in vpc-0123456789abcdef0 of the harness config
const VPC = 'vpc-0123456789abcdef0';
const V1 = '127.0.0.21';
const V2 = '127.0.0.22';

const READER = {
  arn: `arn:aws:iam::${ACCOUNT}:role/viewer`,
  accessKeyId: 'AKIAEXAMPLEVIEWER001',
  secretAccessKey: 'viewer-secret-key-for-tests-only-00000000',
  policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['vpc-lattice:Get*', 'vpc-lattice:List*'], Resource: '*' }] }),
};
const LEAVER = {
  arn: `arn:aws:iam::${ACCOUNT}:role/contractor`,
  accessKeyId: 'AKIAEXAMPLELEAVER001',
  secretAccessKey: 'leaver-secret-key-for-tests-only-00000000',
};

let t, browser, page, consoleUrl, listenerPort, ruleIds, groups;
const backends = {};
let traffic = null;

function startBackend(name, host, port) {
  return new Promise((resolve, reject) => {
    const counts = { requests: 0 };
    const server = http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/health') return res.end('{"status":"ok"}');
      counts.requests++;
      res.end(JSON.stringify({ version: name }));
    });
    server.on('error', reject);
    server.listen(port, host, () => resolve({ server, counts, port }));
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
function get(host, pathname = '/checkout') {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: listenerPort, path: pathname, localAddress: CLIENT_IP, agent, headers: { host } }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', (e) => resolve({ status: 0, body: String(e) }));
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

// Steady background traffic (about 40 requests/s), as a service would get.
function startTraffic(host) {
  let running = true;
  const done = (async () => {
    while (running) {
      await Promise.all(Array.from({ length: 4 }, () => get(host)));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return { async stop() { running = false; await done; } };
}

async function shot(name) {
  await page.screenshot({ path: path.join(DOCS, `console-${name}.png`) });
}

async function signIn(p, identity) {
  await p.goto(consoleUrl, { waitUntil: 'networkidle0' });
  await p.waitForSelector('#login-form', { visible: true });
  await p.type('#access-key', identity.accessKeyId);
  await p.type('#secret-key', identity.secretAccessKey);
  await p.click('#sign-in');
  await p.waitForSelector('#main', { visible: true });
}

async function view(p, name) {
  await p.click(`nav button[data-view="${name}"]`);
  await p.waitForSelector(`#view-${name}`, { visible: true });
}

async function clickNode(p, kind, label) {
  const selector = `#graph .node[data-kind="${kind}"]`;
  await p.waitForFunction((s, l) => [...document.querySelectorAll(s)].some((n) => n.dataset.label.includes(l)), { timeout: 20000 }, selector, label);
  await p.evaluate((s, l) => [...document.querySelectorAll(s)].find((n) => n.dataset.label.includes(l)).dispatchEvent(new Event('click')), selector, label);
}

before(async () => {
  assert.ok(CHROMIUM, 'chromium is not installed (scripts/setup.sh --test installs it)');
  const v1Port = await freePort(V1);
  const v2Port = await freePort(V2);
  backends.v1 = await startBackend('v1', V1, v1Port);
  backends.v2 = await startBackend('v2', V2, v2Port);
  const consolePort = await freePort();
  t = await startTrellis({ config: { identities: [ADMIN, READER, LEAVER] }, consoleListen: `127.0.0.1:${consolePort}` });
  consoleUrl = `http://127.0.0.1:${consolePort}/`;
  listenerPort = await freePort();

  // The workshop's resources, as `trellis apply -f examples/workshop` makes them.
  const c = t.client;
  const sn = await c.send(new CreateServiceNetworkCommand({ name: 'eks-workshop' }));
  const svc = await c.send(new CreateServiceCommand({ name: 'checkoutroute-checkout' }));
  groups = {};
  for (const [name, host, port] of [['k8s-checkout-checkout-v1', V1, v1Port], ['k8s-checkoutv2-checkout-v2', V2, v2Port]]) {
    const tg = await c.send(new CreateTargetGroupCommand({
      name, type: 'IP',
      config: { port: 80, protocol: 'HTTP', vpcIdentifier: VPC, healthCheck: { enabled: true, path: '/health', healthCheckIntervalSeconds: 5, healthCheckTimeoutSeconds: 1, healthyThresholdCount: 2, unhealthyThresholdCount: 2 } },
    }));
    await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: host, port }] }));
    groups[name.endsWith('v1') ? 'v1' : 'v2'] = tg;
  }
  const listener = await c.send(new CreateListenerCommand({
    serviceIdentifier: svc.id, name: `checkoutroute-checkout-${listenerPort}-http`, protocol: 'HTTP', port: listenerPort,
    defaultAction: { fixedResponse: { statusCode: 404 } },
  }));
  const rule = await c.send(new CreateRuleCommand({
    serviceIdentifier: svc.id, listenerIdentifier: listener.id, name: 'k8s-1700000000-rule-1', priority: 1,
    match: { httpMatch: { pathMatch: { match: { prefix: '/' } } } },
    action: { forward: { targetGroups: [{ targetGroupIdentifier: groups.v1.id, weight: 25 }, { targetGroupIdentifier: groups.v2.id, weight: 75 }] } },
  }));
  ruleIds = { service: svc.id, listener: listener.id, rule: rule.id };
  await c.send(new CreateServiceNetworkServiceAssociationCommand({ serviceIdentifier: svc.id, serviceNetworkIdentifier: sn.id }));
  await c.send(new CreateServiceNetworkVpcAssociationCommand({ serviceNetworkIdentifier: sn.id, vpcIdentifier: VPC }));
  await c.send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: svc.id, destinationArn: `arn:aws:logs:us-east-1:${ACCOUNT}:log-group:checkout` }));
  const dns = svc.dnsEntry.domainName;
  await until('the route to answer', async () => (await get(dns)).status === 200);
  traffic = startTraffic(dns);
  t.dns = dns;

  browser = await puppeteer.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1500,950'],
    defaultViewport: { width: 1500, height: 950 },
  });
  page = await browser.newPage();
});

after(async () => {
  await traffic?.stop();
  agent.destroy();
  await browser?.close();
  await t?.stop();
  for (const b of Object.values(backends)) { b.server.close(); b.server.closeAllConnections(); }
});

test('sign-in: a wrong secret is refused; the session is an HttpOnly cookie and nothing lands in storage', async () => {
  await page.goto(consoleUrl, { waitUntil: 'networkidle0' });
  await page.type('#access-key', ADMIN.accessKeyId);
  await page.type('#secret-key', 'not-the-secret');
  await page.click('#sign-in');
  await page.waitForFunction(() => document.querySelector('#login-error').textContent.length > 0);
  assert.match(await page.$eval('#login-error', (e) => e.textContent), /wrong secret/);
  await signIn(page, ADMIN);
  assert.equal(await page.$eval('#identity', (e) => e.textContent), ADMIN.arn);
  const cookies = await browser.cookies();
  const session = cookies.find((x) => x.name === 'trellis_session');
  assert.ok(session, 'a session cookie was set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  assert.ok(session.expires > Date.now() / 1000 && session.expires < Date.now() / 1000 + 9 * 3600, 'it expires');
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
  assert.ok(!stored.includes(ADMIN.secretAccessKey) && !stored.includes(session.value), `storage holds: ${stored}`);
});

test("the workshop's scenario appears in the graph: network, service, the 25/75 rule, both target groups and targets, the VPC", async () => {
  await page.waitForSelector('#graph .node[data-kind="target"]');
  const nodes = await page.$$eval('#graph .node', (ns) => ns.map((n) => `${n.dataset.kind}:${n.dataset.label}`));
  for (const want of ['vpc:vpc-0123456789abcdef0', 'network:eks-workshop', 'service:checkoutroute-checkout',
    'targetgroup:k8s-checkout-checkout-v1', 'targetgroup:k8s-checkoutv2-checkout-v2']) assert.ok(nodes.includes(want), `${want} in ${nodes}`);
  assert.ok(nodes.some((n) => n.startsWith('route:') && n.includes('rule 1')), nodes.join());
  assert.equal(nodes.filter((n) => n.startsWith('target:')).length, 2);
  const labels = await page.$$eval('#graph .edge-label', (ls) => ls.map((l) => l.textContent).sort());
  assert.deepEqual(labels.filter((l) => l.endsWith('%')), ['25%', '75%']);
  // Search keeps what a match connects to and hides the rest.
  await page.type('#search', 'checkoutv2');
  const searched = await page.$$eval('#graph .node', (ns) => ns.map((n) => n.dataset.label));
  assert.ok(searched.includes('k8s-checkoutv2-checkout-v2') && searched.includes('checkoutroute-checkout'));
  assert.ok(!searched.includes('k8s-checkout-checkout-v1'), 'the other target group is hidden');
  await page.$eval('#search', (e) => { e.value = ''; e.dispatchEvent(new Event('input')); });
});

test('live traffic: the service turns healthy with requests/s that update without a reload', async () => {
  await page.waitForFunction(() => document.querySelector('#graph .node[data-kind="service"]')?.dataset.health === 'healthy', { timeout: 30000 });
  await view(page, 'traffic');
  const rps = async () => page.$$eval('#traffic-table tbody tr', (rows) => {
    const row = rows.find((r) => r.children[1].textContent === 'checkoutroute-checkout');
    return row ? Number(row.children[2].textContent) : 0;
  });
  const first = await until('the service to show traffic', async () => { const v = await rps(); return v > 5 && v; }, 30000);
  const navigations = await page.evaluate(() => performance.getEntriesByType('navigation').length);
  await until('the rate to be re-read', async () => (await rps()) !== first, 20000);
  assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), navigations, 'no reload');
  await page.evaluate(() => [...document.querySelectorAll('#traffic-table tbody tr')].find((r) => r.children[1].textContent === 'checkoutroute-checkout').click());
  await page.waitForSelector('#traffic-charts .chart path.series');
  await shot('traffic');
  await view(page, 'graph');
  await page.click('#zoom-fit');
  await shot('topology');
});

test('the canary slider changes the weights in the API, and the live split follows', async () => {
  await clickNode(page, 'route', 'rule 1');
  await page.waitForSelector('#weight-slider');
  assert.equal(await page.$eval('#weight-slider', (s) => s.value), '25');
  await page.focus('#weight-slider');
  for (let i = 0; i < 65; i++) await page.keyboard.press('ArrowRight');
  assert.equal(await page.$eval('#weight-slider', (s) => s.value), '90');
  await page.click('#apply-weights');
  await page.waitForFunction(() => /Weights set/.test(document.querySelector('#details .form-result').textContent));
  const rule = await t.client.send(new GetRuleCommand({ serviceIdentifier: ruleIds.service, listenerIdentifier: ruleIds.listener, ruleIdentifier: ruleIds.rule }));
  assert.deepEqual(rule.action.forward.targetGroups.map((g) => [g.targetGroupIdentifier, g.weight]), [[groups.v1.id, 90], [groups.v2.id, 10]]);
  // What the targets get...
  await new Promise((r) => setTimeout(r, 500));
  const before = { v1: backends.v1.counts.requests, v2: backends.v2.counts.requests };
  await new Promise((r) => setTimeout(r, 6000));
  const v1 = backends.v1.counts.requests - before.v1, v2 = backends.v2.counts.requests - before.v2;
  assert.ok(v1 + v2 > 100 && Math.abs(v1 / (v1 + v2) - 0.9) < 0.05, `v1 ${v1}, v2 ${v2}`);
  // ...and what the console shows of them: the last samples' rates split about 90/10.
  const share = await until('the console to show the new split', async () => {
    const s = await page.evaluate(async (ids) => {
      const last = async (id) => { const r = await (await fetch(`/console/api/series?key=targetgroup/${id}`)).json(); return r.at(-1)?.rps ?? 0; };
      return { v1: await last(ids.v1), v2: await last(ids.v2) };
    }, { v1: groups.v1.id, v2: groups.v2.id });
    const x = s.v1 / (s.v1 + s.v2);
    return Math.abs(x - 0.9) < 0.07 && x;
  }, 20000);
  assert.ok(share > 0.8);
  await page.waitForFunction(() => [...document.querySelectorAll('#graph .edge-label')].map((l) => l.textContent).sort().join() === '10%,90%', { timeout: 15000 });
  await page.waitForSelector('#detail-charts .chart path.series');
  await shot('canary');
});

test('a target taken down turns unhealthy in the view, with its reason code', async () => {
  await new Promise((resolve) => { backends.v2.server.close(resolve); backends.v2.server.closeAllConnections(); });
  await page.waitForFunction(() => [...document.querySelectorAll('#graph .node[data-kind="target"]')]
    .some((n) => n.dataset.label.startsWith('127.0.0.22') && n.dataset.health === 'unhealthy'), { timeout: 30000 });
  const tgHealth = await page.$$eval('#graph .node[data-kind="targetgroup"]', (ns) => ns.find((n) => n.dataset.label.includes('v2')).dataset.health);
  assert.equal(tgHealth, 'failing');
  await view(page, 'targets');
  const rows = await page.$$eval('#targets-table tbody tr', (rs) => rs.map((r) => [...r.children].map((c) => c.textContent)));
  const v2 = rows.find((r) => r[1] === V2);
  assert.deepEqual([v2[3], v2[4]], ['UNHEALTHY', 'Target.FailedHealthChecks']);
  assert.equal(rows.find((r) => r[1] === V1)[3], 'HEALTHY');
  await view(page, 'graph');
  await clickNode(page, 'target', V2);
  await shot('unhealthy');
});

test('targets are registered and deregistered from the target group panel', async () => {
  await clickNode(page, 'targetgroup', 'v1');
  await page.waitForSelector('#details form.register');
  await page.type('#details form.register input[name="targetId"]', '127.0.0.23');
  await page.type('#details form.register input[name="port"]', '8080');
  await page.click('#details form.register button[type="submit"]');
  await page.waitForFunction(() => document.querySelector('#details form.register .form-result').textContent === 'Registered');
  const listed = async () => (await t.client.send(new ListTargetsCommand({ targetGroupIdentifier: groups.v1.id }))).items;
  assert.ok((await listed()).some((x) => x.id === '127.0.0.23' && x.port === 8080));
  await page.waitForSelector('#graph .node[data-kind="target"][data-label="127.0.0.23:8080"]', { timeout: 15000 });
  await clickNode(page, 'targetgroup', 'v1');
  await page.waitForFunction(() => [...document.querySelectorAll('#details table.targets tr')].some((r) => r.children[0].textContent === '127.0.0.23:8080'));
  await page.evaluate(() => [...document.querySelectorAll('#details table.targets tr')].find((r) => r.children[0].textContent === '127.0.0.23:8080').querySelector('button.deregister').click());
  await until('the target to be deregistered', async () => {
    const target = (await listed()).find((x) => x.id === '127.0.0.23');
    return !target || target.status === 'DRAINING';
  }, 15000);
  assert.ok((await listed()).some((x) => x.id === V1), 'the other target stays');
});

test('the access log is a live tail that filters', async () => {
  for (let i = 0; i < 3; i++) await get(t.dns, '/only-this-path');
  await view(page, 'logs');
  await page.waitForFunction(() => [...document.querySelectorAll('#log-table tbody tr')].some((r) => r.children[2].textContent === '/only-this-path'), { timeout: 15000 });
  const all = await page.$$eval('#log-table tbody tr', (rs) => rs.length);
  await page.type('#log-filter', 'requestPath=/only-this');
  const filtered = await page.$$eval('#log-table tbody tr', (rs) => rs.map((r) => [r.children[2].textContent, r.children[4].textContent]));
  assert.equal(filtered.length, 3, JSON.stringify(filtered));
  assert.ok(all > filtered.length);
  assert.deepEqual(filtered[0], ['/only-this-path', 'checkoutroute-checkout']);
  await page.$eval('#log-filter', (e) => { e.value = ''; e.dispatchEvent(new Event('input')); });
  await shot('logs');
});

test("a create form shows the API's ValidationException by field, then creates", async () => {
  await view(page, 'create');
  const form = 'form[data-op="CreateTargetGroup"]';
  await page.type(`${form} input[name="name"]`, 'Not_Valid!');
  await page.type(`${form} input[name="config.port"]`, '99999');
  await page.type(`${form} input[name="config.vpcIdentifier"]`, VPC);
  await page.click(`${form} button[type="submit"]`);
  await page.waitForFunction((f) => document.querySelector(`${f} .field-error[data-for="name"]`).textContent.length > 0, {}, form);
  const errors = await page.$$eval(`${form} .field-error`, (es) => Object.fromEntries(es.filter((e) => e.textContent).map((e) => [e.dataset.for, e.textContent])));
  assert.ok(errors.name, JSON.stringify(errors));
  assert.ok(errors['config.port'], JSON.stringify(errors));
  assert.match(await page.$eval(`${form} .form-result`, (e) => e.textContent), /^ValidationException/);
  assert.equal(await page.$eval(`${form} input[name="name"]`, (e) => e.classList.contains('invalid')), true);
  await shot('create');
  const sn = 'form[data-op="CreateServiceNetwork"]';
  await page.type(`${sn} input[name="name"]`, 'made-in-the-console');
  await page.click(`${sn} button[type="submit"]`);
  await page.waitForFunction((f) => /^Created made-in-the-console/.test(document.querySelector(`${f} .form-result`).textContent), {}, sn);
  await view(page, 'graph');
  await page.waitForSelector('#graph .node[data-kind="network"][data-label="made-in-the-console"]');
});

test('a wrong or missing CSRF token, or another origin, is refused', async () => {
  const results = await page.evaluate(async () => {
    const token = (await (await fetch('/console/api/session')).json()).csrfToken;
    const post = async (headers) => (await fetch('/console/lattice/servicenetworks', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ name: 'csrf-probe' }) })).status;
    return { none: await post({}), wrong: await post({ 'x-csrf-token': token.replace(/.$/, (c) => (c === '0' ? '1' : '0')) }) };
  });
  assert.deepEqual(results, { none: 403, wrong: 403 });
  const cookie = (await browser.cookies()).find((x) => x.name === 'trellis_session');
  const session = await (await fetch(`${consoleUrl}console/api/session`, { headers: { cookie: `trellis_session=${cookie.value}` } })).json();
  const crossSite = await fetch(`${consoleUrl}console/lattice/servicenetworks`, {
    method: 'POST', body: JSON.stringify({ name: 'csrf-probe' }),
    headers: { cookie: `trellis_session=${cookie.value}`, 'x-csrf-token': session.csrfToken, origin: 'http://attacker.example', 'content-type': 'application/json' },
  });
  assert.equal(crossSite.status, 403);
  const names = await page.evaluate(async () => (await (await fetch('/console/lattice/servicenetworks')).json()).items.map((i) => i.name));
  assert.ok(!names.includes('csrf-probe'), names.join());
});

test('a read-only identity sees everything but gets no controls, and a forged call is a 403', async () => {
  const context = await browser.createBrowserContext();
  const reader = await context.newPage();
  await reader.setViewport({ width: 1500, height: 950 });
  try {
    await signIn(reader, READER);
    await reader.waitForSelector('#graph .node[data-kind="route"]');
    assert.equal(await reader.$eval('#nav-create', (b) => b.hidden), true);
    await clickNode(reader, 'route', 'rule 1');
    await reader.waitForSelector('#details .weight-value');
    assert.equal(await reader.$('#weight-slider'), null);
    assert.equal(await reader.$('#apply-weights'), null);
    await clickNode(reader, 'targetgroup', 'v1');
    await reader.waitForSelector('#details table.targets');
    assert.equal(await reader.$('#details button.action'), null, 'no register or deregister buttons');
    const forged = await reader.evaluate(async (ids) => {
      const token = (await (await fetch('/console/api/session')).json()).csrfToken;
      const r = await fetch(`/console/lattice/services/${ids.service}/listeners/${ids.listener}/rules/${ids.rule}`, {
        method: 'PATCH', headers: { 'content-type': 'application/json', 'x-csrf-token': token },
        body: JSON.stringify({ action: { fixedResponse: { statusCode: 503 } } }),
      });
      return { status: r.status, type: r.headers.get('x-amzn-errortype') };
    }, ruleIds);
    assert.deepEqual(forged, { status: 403, type: 'AccessDeniedException' });
    const rule = await t.client.send(new GetRuleCommand({ serviceIdentifier: ruleIds.service, listenerIdentifier: ruleIds.listener, ruleIdentifier: ruleIds.rule }));
    assert.ok(rule.action.forward, 'the rule still forwards');
    await reader.screenshot({ path: path.join(DOCS, 'console-read-only.png') });
  } finally {
    await context.close();
  }
});

test("a removed identity's session cookie is refused after the config reload", async () => {
  const context = await browser.createBrowserContext();
  const leaver = await context.newPage();
  try {
    await signIn(leaver, LEAVER);
    const cookie = (await context.cookies()).find((x) => x.name === 'trellis_session');
    const asLeaver = () => fetch(`${consoleUrl}console/api/topology`, { headers: { cookie: `trellis_session=${cookie.value}` } });
    assert.equal((await asLeaver()).status, 200);
    writeFileSync(t.configFile, JSON.stringify({ ...BASE_CONFIG, identities: [ADMIN, READER] }, null, 2));
    const reload = await fetch(`${t.admin}/reload`, { method: 'POST' });
    assert.equal(reload.status, 200, await reload.text());
    assert.equal((await asLeaver()).status, 401);
    // The open page notices at its next refresh and goes back to sign-in.
    await leaver.waitForSelector('#login-form', { visible: true, timeout: 15000 });
    assert.match(await leaver.$eval('#login-error', (e) => e.textContent), /session ended/);
  } finally {
    await context.close();
  }
});

test("the Grafana dashboard asks only for series trellisd's /metrics serves", async () => {
  const dashboard = JSON.parse(readFileSync(path.resolve(here, '../../examples/grafana/trellis.json'), 'utf8'));
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => x.expr));
  assert.ok(exprs.length >= 10);
  const metrics = await (await fetch(`${t.admin}/metrics`)).text();
  const served = new Set(metrics.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/[{ ]/)[0]));
  for (const expr of exprs) {
    for (const [, name] of expr.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\{/g)) assert.ok(served.has(name), `${name} (in ${expr}) is not on /metrics`);
    for (const [, name] of expr.matchAll(/\((trellis_[a-z_]+)\[/g)) assert.ok(served.has(name), `${name} is not on /metrics`);
  }
});

test('the console runs on threads of its own, named as docs/architecture.md says', () => {
  const names = readdirSync(`/proc/${t.child.pid}/task`).map((tid) => { try { return readFileSync(`/proc/${t.child.pid}/task/${tid}/comm`, 'utf8').trim(); } catch { return ''; } });
  assert.ok(names.includes('console') && names.includes('console-metrics'), names.join(', '));
});
