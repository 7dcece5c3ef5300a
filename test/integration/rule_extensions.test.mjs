// Trellis rule extensions (the optional `trellis` member of CreateRule, UpdateRule and BatchUpdateRule):
// validation, storage and echo, then applied by the proxy (extra matches, query matches, redirects,
// rewrites, header modifiers, retries, timeouts) with curl over HTTP/1.1 and h2c against backends started here. The AWS SDKs drop members they
// do not model, so these requests are signed by hand with @smithy/signature-v4.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import http from 'node:http';
import {
  CreateListenerCommand, CreateServiceCommand, GetRuleCommand, CreateServiceNetworkCommand, CreateTargetGroupCommand,
  RegisterTargetsCommand, CreateServiceNetworkServiceAssociationCommand, CreateServiceNetworkVpcAssociationCommand,
} from '@aws-sdk/client-vpc-lattice';
import { SignatureV4 } from '@smithy/signature-v4';
import { HttpRequest } from '@smithy/protocol-http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { startTrellis, startEchoBackend, freePort, until, ADMIN, REGION } from './harness.mjs';

let t;
let svc;
let lst;
before(async () => {
  t = await startTrellis();
  svc = await t.client.send(new CreateServiceCommand({ name: 'ext-svc' }));
  lst = await t.client.send(new CreateListenerCommand({
    serviceIdentifier: svc.id, name: 'web', protocol: 'HTTP', defaultAction: { fixedResponse: { statusCode: 404 } },
  }));
});
const backends = [];
after(async () => {
  await t?.stop();
  for (const b of backends) b.close();
});

async function signedFetch(method, path, body) {
  const url = new URL(t.endpoint);
  const headers = { host: url.host };
  const payload = body === undefined ? undefined : JSON.stringify(body);
  if (payload !== undefined) headers['content-type'] = 'application/json';
  const signer = new SignatureV4({ service: 'vpc-lattice', region: REGION, credentials: ADMIN, sha256: Sha256 });
  const signed = await signer.sign(new HttpRequest({ method, hostname: url.hostname, port: Number(url.port), path, headers, body: payload }));
  const res = await fetch(`${t.endpoint}${signed.path}`, { method, headers: signed.headers, body: payload });
  return { status: res.status, type: res.headers.get('x-amzn-errortype'), body: await res.json() };
}

const rulesPath = () => `/services/${svc.id}/listeners/${lst.id}/rules`;
const createRule = (name, priority, trellis) => signedFetch('POST', rulesPath(), {
  name, priority, match: { httpMatch: { pathMatch: { match: { prefix: `/${name}` } } } },
  action: { fixedResponse: { statusCode: 404 } }, ...(trellis === undefined ? {} : { trellis }),
});
const fieldNames = (r) => r.body.fieldList.map((f) => f.name).sort();

const EVERYTHING = {
  matches: [{ method: 'POST', pathMatch: { match: { exact: '/orders' } } }, { headerMatches: [{ name: 'x-beta', match: { exact: '1' } }] }],
  queryMatches: [{ name: 'version', exact: 'v2' }, { name: 'lang', prefix: 'en' }, { name: 'debug', present: true }],
  requestHeaderModifier: { set: [{ name: 'x-env', value: 'prod' }], add: [{ name: 'x-trace', value: 'on' }], remove: ['cookie'] },
  responseHeaderModifier: { remove: ['server'] },
  urlRewrite: { hostname: 'backend.internal', path: { replacePrefixMatch: '/v2' } },
  timeouts: { requestMs: 10000, backendRequestMs: 2000 },
  retry: { attempts: 3, statusCodes: [502, 503], backoffMs: 100 },
};

test('every extension is stored and returned exactly as given', async () => {
  const created = await createRule('all', 1, EVERYTHING);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.deepEqual(created.body.trellis, EVERYTHING);
  const got = await signedFetch('GET', `${rulesPath()}/${created.body.id}`);
  assert.equal(got.status, 200);
  assert.deepEqual(got.body.trellis, EVERYTHING);
  // The real SDK still reads the rule; it only drops the member it does not model.
  const viaSdk = await t.client.send(new GetRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id, ruleIdentifier: created.body.id }));
  assert.equal(viaSdk.id, created.body.id);
  assert.equal(viaSdk.trellis, undefined);
});

test('a rule without extensions has no trellis member', async () => {
  const created = await createRule('plain', 2);
  assert.equal(created.status, 201);
  assert.equal('trellis' in created.body, false);
  const got = await signedFetch('GET', `${rulesPath()}/${created.body.id}`);
  assert.equal('trellis' in got.body, false);
});

test('UpdateRule replaces the extensions, an empty object clears them, absence keeps them', async () => {
  const created = await createRule('upd', 3, { requestRedirect: { scheme: 'https', statusCode: 301 } });
  assert.equal(created.status, 201);
  const rulePath = `${rulesPath()}/${created.body.id}`;
  const redirect = { requestRedirect: { hostname: 'new.example.com', path: { replaceFullPath: '/moved' }, port: 8443, statusCode: 308 } };
  let r = await signedFetch('PATCH', rulePath, { trellis: redirect });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body.trellis, redirect);
  r = await signedFetch('PATCH', rulePath, { priority: 30 });
  assert.deepEqual(r.body.trellis, redirect, 'an update that does not name trellis keeps it');
  assert.deepEqual((await signedFetch('GET', rulePath)).body.trellis, redirect);
  r = await signedFetch('PATCH', rulePath, { trellis: {} });
  assert.equal(r.status, 200);
  assert.equal('trellis' in r.body, false);
  assert.equal('trellis' in (await signedFetch('GET', rulePath)).body, false);
});

test('BatchUpdateRule sets extensions per rule and validates them with indexed field names', async () => {
  const a = await createRule('batch-a', 4);
  const retry = { retry: { attempts: 2 } };
  let r = await signedFetch('PATCH', rulesPath(), { rules: [{ ruleIdentifier: a.body.id, trellis: retry }] });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body.successful[0].trellis, retry);
  assert.deepEqual((await signedFetch('GET', `${rulesPath()}/${a.body.id}`)).body.trellis, retry);
  r = await signedFetch('PATCH', rulesPath(), { rules: [{ ruleIdentifier: a.body.id, trellis: { retry: { attempts: 9 } } }] });
  assert.equal(r.status, 400);
  assert.deepEqual(fieldNames(r), ['rules[0].trellis.retry.attempts']);
  assert.deepEqual((await signedFetch('GET', `${rulesPath()}/${a.body.id}`)).body.trellis, retry, 'a refused batch changes nothing');
});

test('bad extensions are a ValidationException naming every bad field, and nothing is created', async () => {
  const r = await createRule('bad', 5, {
    matches: [{ pathMatch: { match: { exact: 'no-slash' } } }],
    queryMatches: [{ name: 'q', exact: 'a', prefix: 'b' }, { name: 'p', present: false }],
    requestHeaderModifier: { set: [{ name: 'bad header', value: 'x' }], add: [{ name: 'x-ok', value: 'a\r\nb' }], remove: ['Content-Length'] },
    responseHeaderModifier: {},
    requestRedirect: { scheme: 'ftp', statusCode: 304, port: 0 },
    timeouts: { requestMs: 100, backendRequestMs: 200 },
    retry: { attempts: 1, statusCodes: [404] },
    mirror: { to: 'somewhere' },
  });
  assert.equal(r.status, 400);
  assert.equal(r.type, 'ValidationException');
  assert.deepEqual(fieldNames(r), [
    'trellis.matches[0].pathMatch.match.exact',
    'trellis.mirror',
    'trellis.queryMatches[0]',
    'trellis.queryMatches[1].present',
    'trellis.requestHeaderModifier.add[0].value',
    'trellis.requestHeaderModifier.remove[0]',
    'trellis.requestHeaderModifier.set[0].name',
    'trellis.requestRedirect.port',
    'trellis.requestRedirect.scheme',
    'trellis.requestRedirect.statusCode',
    'trellis.responseHeaderModifier',
    'trellis.retry.statusCodes[0]',
    'trellis.timeouts.backendRequestMs',
  ]);
  const list = await signedFetch('GET', rulesPath());
  assert.ok(!list.body.items.some((i) => i.name === 'bad'));
});

test('redirect and rewrite exclude each other; trellis must be an object', async () => {
  let r = await createRule('both', 6, { urlRewrite: { path: { replaceFullPath: '/a' } }, requestRedirect: { statusCode: 302 } });
  assert.equal(r.status, 400);
  assert.deepEqual(fieldNames(r), ['trellis.urlRewrite']);
  r = await createRule('notobj', 6, 'redirect please');
  assert.equal(r.status, 400);
  assert.deepEqual(fieldNames(r), ['trellis']);
  r = await createRule('pathunion', 6, { urlRewrite: { path: { replaceFullPath: '/a', replacePrefixMatch: '/b' } } });
  assert.equal(r.status, 400);
  assert.deepEqual(fieldNames(r), ['trellis.urlRewrite.path']);
});

// ---------------- through the proxy ----------------

const CLIENT_IP = '127.0.1.10'; // inside the harness config's vpc-0123456789abcdef0
const VPC = 'vpc-0123456789abcdef0';
const execFileAsync = promisify(execFile);

// The one service network the VPC may be associated with, shared by the proxy tests.
let network;
async function serviceNetwork() {
  if (!network) {
    network = await t.client.send(new CreateServiceNetworkCommand({ name: 'ext-net' }));
    await t.client.send(new CreateServiceNetworkVpcAssociationCommand({ serviceNetworkIdentifier: network.id, vpcIdentifier: VPC }));
  }
  return network;
}

// The client protocols every proxy check runs over: HTTP/1.1, and HTTP/2 in plaintext (h2c, prior knowledge).
const PROTOCOLS = [{ name: 'HTTP/1.1', args: ['--http1.1'] }, { name: 'h2c', args: ['--http2-prior-knowledge'] }];

// curl from inside the VPC; returns the status, the response headers (lower-case names) and the body.
async function curl(port, host, pathname, args = []) {
  let stdout;
  try {
    ({ stdout } = await execFileAsync('curl', ['-s', '-i', '--interface', CLIENT_IP, '-H', `Host: ${host}`,
      '-H', 'Cookie: secret=1', ...args, `http://127.0.0.1:${port}${pathname}`], { encoding: 'utf8', timeout: 20000 }));
  } catch (e) {
    stdout = e.stdout ?? '';
  }
  const split = stdout.indexOf('\r\n\r\n');
  const lines = stdout.slice(0, split).split('\r\n');
  const status = Number((lines.shift() ?? '').split(' ')[1] ?? 0);
  const headers = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    headers[name] = headers[name] ? `${headers[name]}, ${line.slice(colon + 1).trim()}` : line.slice(colon + 1).trim();
  }
  return { status, headers, body: stdout.slice(split + 4) };
}

test('the proxy applies matches, query matches, redirects, rewrites and header modifiers', async () => {
  const c = t.client;
  const a = await startEchoBackend('a');
  const b = await startEchoBackend('b');
  backends.push(a, b);
  const sn = await serviceNetwork();
  const service = await c.send(new CreateServiceCommand({ name: 'ext-dp' }));
  const host = service.dnsEntry.domainName;
  const group = async (name, backend) => {
    const tg = await c.send(new CreateTargetGroupCommand({ name, type: 'IP', config: { port: backend.port, protocol: 'HTTP', vpcIdentifier: VPC } }));
    await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: '127.0.0.1' }] }));
    return tg.id;
  };
  const tgA = await group('ext-tg-a', a);
  const tgB = await group('ext-tg-b', b);
  const port = await freePort();
  const listener = await c.send(new CreateListenerCommand({ serviceIdentifier: service.id, name: 'ext-http', protocol: 'HTTP', port,
    defaultAction: { fixedResponse: { statusCode: 404 } } }));
  await c.send(new CreateServiceNetworkServiceAssociationCommand({ serviceIdentifier: service.id, serviceNetworkIdentifier: sn.id }));
  const path = `/services/${service.id}/listeners/${listener.id}/rules`;
  const create = async (name, priority, prefix, action, trellis) => {
    const r = await signedFetch('POST', path, { name, priority, match: { httpMatch: { pathMatch: { match: { prefix } } } }, action, trellis });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };
  const forwardTo = (tg) => ({ forward: { targetGroups: [{ targetGroupIdentifier: tg }] } });
  await create('redirect', 1, '/old', forwardTo(tgA),
    { requestRedirect: { scheme: 'https', hostname: 'new.example.com', path: { replacePrefixMatch: '/new' }, statusCode: 301 } });
  await create('rewrite', 2, '/api', forwardTo(tgA), {
    urlRewrite: { hostname: 'backend.internal', path: { replacePrefixMatch: '/' } },
    requestHeaderModifier: { set: [{ name: 'x-env', value: 'prod' }], remove: ['cookie'] },
    responseHeaderModifier: { add: [{ name: 'x-served-by', value: 'trellis' }], remove: ['content-type'] },
  });
  await create('canary', 3, '/shop', forwardTo(tgB), { matches: [{ pathMatch: { match: { exact: '/alt' } } }], queryMatches: [{ name: 'canary', exact: '1' }] });

  await until('the rules to be served', async () => (await curl(port, host, '/old/page?x=1')).status === 301);
  for (const { name, args } of PROTOCOLS) {
    const get = (pathname) => curl(port, host, pathname, args);
    const redirected = await get('/old/page?x=1');
    assert.equal(redirected.status, 301, name);
    assert.equal(redirected.headers.location, 'https://new.example.com/new/page?x=1', name);

    const rewritten = await get('/api/items?id=7');
    assert.equal(rewritten.status, 200, name);
    const echoed = JSON.parse(rewritten.body);
    assert.equal(echoed.backend, 'a', name);
    assert.equal(echoed.url, '/items?id=7', name);
    assert.equal(echoed.headers.host, 'backend.internal', name);
    assert.equal(echoed.headers['x-env'], 'prod', name);
    assert.equal(echoed.headers.cookie, undefined, name);
    assert.equal(rewritten.headers['x-served-by'], 'trellis', name);
    assert.equal(rewritten.headers['content-type'], undefined, name);

    assert.equal(JSON.parse((await get('/shop/cart?canary=1')).body).backend, 'b', name);
    assert.equal(JSON.parse((await get('/alt?canary=1')).body).backend, 'b', name);
    assert.equal((await get('/alt?canary=0')).status, 404, name);
    assert.equal((await get('/shop/cart')).status, 404, name);
    assert.equal((await get('/alt/x?canary=1')).status, 404, `${name}: the alternative match is exact`);
  }
});

// A backend that fails on purpose, per request key (the `key` query parameter): `fail=N` answers 503 to
// the key's first N requests, `slow=N` delays them by 3 s. Records every request's key and body.
function startFailingBackend() {
  return new Promise((resolve) => {
    const seen = [];
    const server = http.createServer((req, res) => {
      const url = new URL(req.url, 'http://x');
      const key = url.searchParams.get('key');
      const index = seen.filter((s) => s.key === key).length;
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        seen.push({ key, body, method: req.method });
        const answer = () => {
          const failing = index < Number(url.searchParams.get('fail') ?? 0);
          res.writeHead(failing ? 503 : 200, { 'content-type': 'text/plain' });
          res.end(`${key} answer ${index}`);
        };
        if (index < Number(url.searchParams.get('slow') ?? 0)) setTimeout(answer, 3000);
        else answer();
      });
    });
    server.listen(0, '127.0.0.1', () => resolve({
      server, seen, port: server.address().port,
      count: (key) => seen.filter((s) => s.key === key).length,
      close() { server.close(); server.closeAllConnections(); },
    }));
  });
}

test('the proxy retries failing targets and enforces rule timeouts', async () => {
  const c = t.client;
  const backend = await startFailingBackend();
  backends.push(backend);
  const sn = await serviceNetwork();
  const service = await c.send(new CreateServiceCommand({ name: 'retry-dp' }));
  const host = service.dnsEntry.domainName;
  const tg = await c.send(new CreateTargetGroupCommand({ name: 'retry-tg', type: 'IP',
    config: { port: backend.port, protocol: 'HTTP', vpcIdentifier: VPC } }));
  await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: '127.0.0.1' }] }));
  const port = await freePort();
  const listener = await c.send(new CreateListenerCommand({ serviceIdentifier: service.id, name: 'retry-http', protocol: 'HTTP', port,
    defaultAction: { fixedResponse: { statusCode: 404 } } }));
  await c.send(new CreateServiceNetworkServiceAssociationCommand({ serviceIdentifier: service.id, serviceNetworkIdentifier: sn.id }));
  const path = `/services/${service.id}/listeners/${listener.id}/rules`;
  const create = async (name, priority, prefix, trellis) => {
    const r = await signedFetch('POST', path, { name, priority, match: { httpMatch: { pathMatch: { match: { prefix } } } },
      action: { forward: { targetGroups: [{ targetGroupIdentifier: tg.id }] } }, trellis });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };
  await create('retry', 1, '/flaky', { retry: { attempts: 2, backoffMs: 50 } });
  await create('deadline', 2, '/slow', { timeouts: { requestMs: 500 } });
  await create('per-try', 3, '/stuck', { timeouts: { backendRequestMs: 400 }, retry: { attempts: 1 } });
  await until('the rules to be served', async () => (await curl(port, host, '/flaky?key=warmup')).status === 200);

  for (const { name, args } of PROTOCOLS) {
    const get = (pathname, more = []) => curl(port, host, pathname, [...args, ...more]);
    // Two 503s, then 200: the client sees only the 200.
    let r = await get(`/flaky?key=${name}-a&fail=2`);
    assert.equal(r.status, 200, name);
    assert.equal(r.body, `${name}-a answer 2`);
    assert.equal(backend.count(`${name}-a`), 3);
    // More failures than attempts: the target's own last 503.
    r = await get(`/flaky?key=${name}-b&fail=5`);
    assert.equal(r.status, 503, name);
    assert.equal(r.body, `${name}-b answer 2`);
    assert.equal(backend.count(`${name}-b`), 3);
    // A small POST body goes again, whole, with the retry.
    r = await get(`/flaky?key=${name}-post&fail=1`, ['--data-binary', 'order=42&item=book']);
    assert.equal(r.status, 200, name);
    assert.deepEqual(backend.seen.filter((s) => s.key === `${name}-post`).map((s) => s.body),
      ['order=42&item=book', 'order=42&item=book']);
    // requestMs: a 504 at the deadline, not the target's 3 s.
    let start = Date.now();
    r = await get(`/slow?key=${name}-slow&slow=1`);
    assert.equal(r.status, 504, name);
    assert.ok(Date.now() - start < 2500, `${name}: answered after ${Date.now() - start} ms`);
    // backendRequestMs with a retry: the stuck attempt is given up and the next one answers.
    start = Date.now();
    r = await get(`/stuck?key=${name}-stuck&slow=1`);
    assert.equal(r.status, 200, name);
    assert.equal(r.body, `${name}-stuck answer 1`);
    assert.ok(Date.now() - start < 2500, `${name}: answered after ${Date.now() - start} ms`);
  }
});
