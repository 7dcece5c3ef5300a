// The data plane configured through the real AWS SDK: traffic from curl through trellisd's proxy to
// backends started here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import {
  CreateServiceNetworkCommand, CreateServiceCommand, CreateTargetGroupCommand, RegisterTargetsCommand,
  DeregisterTargetsCommand, CreateListenerCommand, UpdateListenerCommand, CreateRuleCommand,
  CreateServiceNetworkServiceAssociationCommand, CreateServiceNetworkVpcAssociationCommand,
  CreateAccessLogSubscriptionCommand, ListTargetsCommand, DeleteListenerCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, startEchoBackend, freePort, until, ACCOUNT, REGION } from './harness.mjs';

const CLIENT_IP = '127.0.1.10'; // inside vpc-0123456789abcdef0 (127.0.1.0/24) of the harness config
let t;
const backends = [];
const ids = {};

async function startBackend(name) {
  const b = await startEchoBackend(name);
  backends.push(b);
  return b;
}


// curl runs asynchronously: the backends live in this process and must keep answering meanwhile.
const execFileAsync = promisify(execFile);
async function curl(port, host, pathname = '/', extra = []) {
  let stdout;
  try {
    ({ stdout } = await execFileAsync('curl', ['-s', '--interface', CLIENT_IP, '-o', '-', '-w', '\n%{http_code}',
      '-H', `Host: ${host}`, ...extra, `http://127.0.0.1:${port}${pathname}`], { encoding: 'utf8', timeout: 20000 }));
  } catch (e) {
    stdout = e.stdout ?? '\n0'; // curl exits non-zero when it cannot connect; %{http_code} is then 000
  }
  const lines = stdout.split('\n');
  const status = Number(lines.pop());
  return { status, body: lines.join('\n') };
}


before(async () => {
  t = await startTrellis();
  const c = t.client;
  const a = await startBackend('a');
  const b = await startBackend('b');
  ids.sn = (await c.send(new CreateServiceNetworkCommand({ name: 'dp-net' }))).id;
  const svc = await c.send(new CreateServiceCommand({ name: 'dp-svc' }));
  ids.svc = svc.id;
  ids.svcArn = svc.arn;
  ids.host = svc.dnsEntry.domainName;
  const hc = { enabled: true, healthCheckIntervalSeconds: 5, healthyThresholdCount: 2, unhealthyThresholdCount: 2, path: '/health' };
  ids.tgA = (await c.send(new CreateTargetGroupCommand({ name: 'dp-tg-a', type: 'IP', config: { port: a.port, protocol: 'HTTP', vpcIdentifier: 'vpc-0123456789abcdef0', healthCheck: hc } }))).id;
  ids.tgB = (await c.send(new CreateTargetGroupCommand({ name: 'dp-tg-b', type: 'IP', config: { port: b.port, protocol: 'HTTP', vpcIdentifier: 'vpc-0123456789abcdef0', healthCheck: hc } }))).id;
  await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: ids.tgA, targets: [{ id: '127.0.0.1' }] }));
  await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: ids.tgB, targets: [{ id: '127.0.0.1' }] }));
  ids.port = await freePort();
  ids.listener = (await c.send(new CreateListenerCommand({ serviceIdentifier: ids.svc, name: 'dp-http', protocol: 'HTTP', port: ids.port,
    defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: ids.tgA }] } } }))).id;
  await c.send(new CreateServiceNetworkServiceAssociationCommand({ serviceIdentifier: ids.svc, serviceNetworkIdentifier: ids.sn }));
  await c.send(new CreateServiceNetworkVpcAssociationCommand({ serviceNetworkIdentifier: ids.sn, vpcIdentifier: 'vpc-0123456789abcdef0' }));
});

after(async () => {
  await t?.stop();
  for (const b of backends) b.close();
});

test('a request by the generated DNS name reaches the target with Lattice headers', async () => {
  const r = await until('the listener to serve', async () => { const x = await curl(ids.port, ids.host, '/hello?x=1'); return x.status === 200 && x; });
  const echoed = JSON.parse(r.body);
  assert.equal(echoed.backend, 'a');
  assert.equal(echoed.url, '/hello?x=1');
  assert.equal(echoed.headers['x-forwarded-for'], CLIENT_IP);
  assert.equal(echoed.headers['x-forwarded-port'], String(ids.port));
  assert.equal(echoed.headers['x-forwarded-proto'], 'http');
  assert.match(echoed.headers['x-amzn-lattice-target'], new RegExp(`ServiceArn=${ids.svcArn}`));
  assert.match(echoed.headers['x-amzn-lattice-target'], new RegExp(`TargetGroupArn=arn:aws:vpc-lattice:${REGION}:${ACCOUNT}:targetgroup/${ids.tgA}`));
  assert.ok(echoed.headers['x-amzn-requestid']);
  // Case-insensitive host with a port; an unknown host is Lattice's 404.
  assert.equal((await curl(ids.port, `${ids.host.toUpperCase()}:${ids.port}`)).status, 200);
  assert.equal((await curl(ids.port, 'unknown.example.com')).status, 404);
});

test('weights and rules changed through the API apply live', async () => {
  await t.client.send(new UpdateListenerCommand({ serviceIdentifier: ids.svc, listenerIdentifier: ids.listener,
    defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: ids.tgA, weight: 25 }, { targetGroupIdentifier: ids.tgB, weight: 75 }] } } }));
  await until('both target groups to receive traffic', async () => JSON.parse((await curl(ids.port, ids.host)).body).backend === 'b');
  const counts = { a: 0, b: 0 };
  for (let i = 0; i < 200; i++) counts[JSON.parse((await curl(ids.port, ids.host)).body).backend]++;
  assert.ok(Math.abs(counts.a - 50) <= 6, `25/75 split gave ${JSON.stringify(counts)}`);

  await t.client.send(new CreateRuleCommand({ serviceIdentifier: ids.svc, listenerIdentifier: ids.listener, name: 'api-to-b', priority: 1,
    match: { httpMatch: { pathMatch: { match: { prefix: '/api' } } } }, action: { forward: { targetGroups: [{ targetGroupIdentifier: ids.tgB }] } } }));
  await t.client.send(new CreateRuleCommand({ serviceIdentifier: ids.svc, listenerIdentifier: ids.listener, name: 'admin-blocked', priority: 2,
    match: { httpMatch: { method: 'DELETE', headerMatches: [{ name: 'x-role', match: { exact: 'guest' } }] } }, action: { fixedResponse: { statusCode: 404 } } }));
  await until('the rule to route /api to b', async () => JSON.parse((await curl(ids.port, ids.host, '/API/v1')).body).backend === 'b');
  for (let i = 0; i < 10; i++) assert.equal(JSON.parse((await curl(ids.port, ids.host, '/api/x')).body).backend, 'b');
  assert.equal((await curl(ids.port, ids.host, '/x', ['-X', 'DELETE', '-H', 'x-role: GUEST'])).status, 404);
  assert.equal((await curl(ids.port, ids.host, '/x', ['-X', 'DELETE', '-H', 'x-role: admin'])).status, 200);
});

test('access logs reach the subscribed CloudWatch log group file; metrics count the requests', async () => {
  await t.client.send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: ids.svc,
    destinationArn: `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:dp-logs` }));
  await new Promise((r) => setTimeout(r, 200));
  for (let i = 0; i < 5; i++) await curl(ids.port, ids.host, `/logged/${i}`);
  const dir = path.join(t.dataDir, 'access-logs', 'cloudwatch');
  const entries = await until('access log lines', () => {
    if (!existsSync(dir)) return null;
    const file = readdirSync(dir).find((f) => f.startsWith('dp-logs'));
    if (!file) return null;
    const lines = readFileSync(path.join(dir, file), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    return lines.filter((l) => l.requestPath?.startsWith('/logged/')).length >= 5 && lines;
  });
  const entry = entries.find((l) => l.requestPath === '/logged/0');
  assert.equal(entry.serviceArn, ids.svcArn);
  assert.equal(entry.requestMethod, 'GET');
  assert.equal(entry.responseCode, 200);
  assert.equal(entry.protocol, 'HTTP/1.1');
  assert.equal(entry.hostHeader, ids.host);
  assert.match(entry.sourceIpPort, new RegExp(`^${CLIENT_IP.replaceAll('.', '\\.')}:\\d+$`));
  assert.match(entry.startTime, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
  assert.ok(entry.requestId);

  const metrics = await (await fetch(`${t.admin}/metrics`)).text();
  const line = metrics.split('\n').find((l) => l.startsWith('TotalRequestCount{') && l.includes(ids.svc));
  assert.ok(line && Number(line.split(' ').pop()) >= 5, line);
  assert.match(metrics, /trellis_snapshot_propagation_seconds_count \d+/);
});

test('a killed backend turns UNHEALTHY and takes no traffic; deregistration drains', async () => {
  // Two targets in A: the real backend a, and a second one we stop.
  const spare = await startBackend('spare');
  await t.client.send(new RegisterTargetsCommand({ targetGroupIdentifier: ids.tgA, targets: [{ id: '127.0.0.1', port: spare.port }] }));
  const status = async (port) => (await t.client.send(new ListTargetsCommand({ targetGroupIdentifier: ids.tgA })))
    .items.find((i) => i.port === port)?.status;
  await until('the spare target to be HEALTHY', async () => (await status(spare.port)) === 'HEALTHY');
  spare.close();
  await until('the spare target to be UNHEALTHY', async () => (await status(spare.port)) === 'UNHEALTHY', 40000);
  for (let i = 0; i < 40; i++) assert.notEqual((await curl(ids.port, ids.host, '/after-kill')).status, 502);

  await t.client.send(new DeregisterTargetsCommand({ targetGroupIdentifier: ids.tgA, targets: [{ id: '127.0.0.1', port: spare.port }] }));
  assert.equal(await status(spare.port), 'DRAINING');
});

test('a rule holds for every spelling of its path that curl can send, and the target gets the path the rule saw', async () => {
  await t.client.send(new CreateRuleCommand({ serviceIdentifier: ids.svc, listenerIdentifier: ids.listener, name: 'private-refused', priority: 3,
    match: { httpMatch: { pathMatch: { match: { prefix: '/private' } } } }, action: { fixedResponse: { statusCode: 403 } } }));
  await until('the rule to refuse /private', async () => (await curl(ids.port, ids.host, '/private/x')).status === 403);
  const asIs = ['--path-as-is'];
  for (const [target, extra] of [['/public/../private/x', asIs], ['/%70rivate/x', asIs], ['//private/x', asIs], ['/./private', asIs],
    ['/', ['--request-target', `http://${ids.host}/private/x`]]]) {
    assert.equal((await curl(ids.port, ids.host, target, extra)).status, 403, `${target} ${extra.join(' ')}`);
  }
  assert.equal((await curl(ids.port, ids.host, '/private%2Fx', asIs)).status, 400);
  const passed = await curl(ids.port, ids.host, '/public/./a/../b', asIs);
  assert.equal(passed.status, 200);
  assert.equal(JSON.parse(passed.body).url, '/public/b');
});


test('deleting the listener closes its port', async () => {
  await t.client.send(new DeleteListenerCommand({ serviceIdentifier: ids.svc, listenerIdentifier: ids.listener }));
  await until('the port to close', async () => (await curl(ids.port, ids.host)).status === 0);
});
