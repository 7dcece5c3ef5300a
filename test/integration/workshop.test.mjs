// The EKS Workshop "Amazon VPC Lattice" scenario (examples/workshop) end to end: the manifests as
// they are (cluster name substituted), EndpointSlices for two local backends playing checkout v1 and
// v2, `trellis apply` with the real CLI, traffic through trellisd's data plane on the Gateway's port 80,
// the name resolved by trellisd's DNS, health checks per the TargetGroupPolicy, re-apply as a no-op and
// delete leaving nothing behind.
//
// Needs root (port 80) and dig. Backends listen on 127.0.0.11:8080 (v1) and 127.0.0.12:8080 (v2), so the
// Services' targetPort 8080 and the policy's health-check port 8080 hold; clients come from 127.0.1.10,
// inside vpc-0123456789abcdef0 of the harness config, which the Gateway's network gets associated with.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import dgram from 'node:dgram';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ListServiceNetworksCommand, ListServicesCommand, ListTargetGroupsCommand, ListTargetsCommand,
  ListServiceNetworkVpcAssociationsCommand, ListTagsForResourceCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, trellisdPath } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = process.env.TRELLIS_CLI ?? path.resolve(path.dirname(trellisdPath), '../cli/trellis');
const WORKSHOP = process.env.TRELLIS_WORKSHOP ?? path.resolve(here, '../../examples/workshop');
const CLUSTER = 'eks-workshop';
const CLIENT_IP = '127.0.1.10'; // in vpc-0123456789abcdef0 (127.0.1.0/24)
const VPC = 'vpc-0123456789abcdef0';
const V1 = '127.0.0.11';
const V2 = '127.0.0.12';

let t;
let dnsPort;
let dir;
const backends = {};
let dnsName;

function startBackend(name, host) {
  return new Promise((resolve, reject) => {
    const server = http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/health') res.end(JSON.stringify({ status: 'ok', info: {}, error: {}, details: {} }));
      else res.end(JSON.stringify({ version: name, shipping: name === 'v2' ? 'Lattice Priority' : 'Priority' }));
    });
    // Health checks and proxied requests keep connections open; closeAllConnections stops them at once.
    server.on('error', reject);
    server.listen(8080, host, () => resolve(server));
  });
}

function stopBackend(server) {
  return new Promise((resolve) => { server.close(resolve); server.closeAllConnections(); });
}

async function portFree(port, host) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', (e) => resolve(e.code));
    s.listen(port, host, () => s.close(() => resolve(null)));
  });
}

async function freeUdpPort() {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

function trellis(args, input) {
  const r = spawnSync(cli, [...args, '--endpoint', t.endpoint, '--config', t.configFile], {
    encoding: 'utf8', timeout: 120000, input, env: { PATH: process.env.PATH },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function revision() {
  const text = await (await fetch(`${t.admin}/metrics`)).text();
  return Number(text.match(/^trellis_snapshot_revision (\d+)/m)[1]);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
function get(host, pathname = '/', address = '127.0.0.1') {
  return new Promise((resolve) => {
    const req = http.request({ host: address, port: 80, path: pathname, localAddress: CLIENT_IP, agent, headers: { host } },
      (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve({ status: res.statusCode, body }));
      });
    req.on('error', (e) => resolve({ status: 0, body: String(e) }));
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function until(what, fn, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

before(async () => {
  const port80 = await portFree(80, '127.0.0.1');
  if (port80) {
    throw new Error(port80 === 'EADDRINUSE'
      ? 'port 80 on 127.0.0.1 is taken: the workshop Gateway listens on port 80, so stop whatever holds it'
      : `cannot bind port 80 (${port80}): the workshop test must run as root`);
  }
  backends.v1 = await startBackend('v1', V1);
  backends.v2 = await startBackend('v2', V2);
  dnsPort = await freeUdpPort();
  t = await startTrellis({ args: ['--dns-listen', `127.0.0.1:${dnsPort}`] });

  // The workshop's files with the cluster name substituted (as `envsubst` would), plus EndpointSlices.
  dir = mkdtempSync(path.join(tmpdir(), 'trellis-workshop-'));
  for (const f of readdirSync(WORKSHOP).filter((f) => f.endsWith('.yaml'))) {
    writeFileSync(path.join(dir, f), readFileSync(path.join(WORKSHOP, f), 'utf8').replaceAll('${EKS_CLUSTER_NAME}', CLUSTER));
  }
  writeFileSync(path.join(dir, 'endpointslices.yaml'), `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: checkout-v1
  namespace: checkout
  labels: {kubernetes.io/service-name: checkout}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: ["${V1}"]
  conditions: {ready: true}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: checkout-v2
  namespace: checkoutv2
  labels: {kubernetes.io/service-name: checkout}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: ["${V2}"]
  conditions: {ready: true}
`);
});

after(async () => {
  agent.destroy();
  await t?.stop();
  for (const b of Object.values(backends)) if (b.listening) await stopBackend(b);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the original files are refused: ${EKS_CLUSTER_NAME} is named with its file, object and field', async () => {
  const before = await revision();
  const r = trellis(['apply', '-f', WORKSHOP]);
  assert.equal(r.code, 1, r.out);
  assert.match(r.err, /checkout-route\.yaml: document 1: spec\.parentRefs\[0\]\.name: .*\$\{EKS_CLUSTER_NAME\}/);
  // From stdin: an unknown kind, and a reference to a Service that is not there, named likewise.
  const unknown = trellis(['apply', '-f', '-'], 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: checkout}\n');
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /-: document 1: kind: unknown kind 'Deployment'/);
  const route = readFileSync(path.join(WORKSHOP, 'checkout-route.yaml'), 'utf8').replaceAll('${EKS_CLUSTER_NAME}', CLUSTER);
  const gateway = readFileSync(path.join(WORKSHOP, 'gateway.yaml'), 'utf8').replaceAll('${EKS_CLUSTER_NAME}', CLUSTER);
  const missing = trellis(['apply', '-f', '-'], `${gateway}\n---\n${route}`);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /-: HTTPRoute checkout\/checkoutroute: spec\.rules\[0\]\.backendRefs\[0\]: Service checkout\/checkout is not in the applied files/);
  assert.equal(await revision(), before, 'nothing was written');
});

test('apply creates the network, the route and its target groups; the Gateway and route become Programmed', async () => {
  const r = trellis(['apply', '-f', dir]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`gateway.gateway.networking.k8s.io/${CLUSTER} -n checkout created`));
  assert.match(r.out, /httproute.gateway.networking.k8s.io\/checkoutroute -n checkout created/);
  assert.equal(r.err, '', 'no warnings for the workshop files');

  const gateways = JSON.parse(trellis(['get', 'gateways', '-n', 'checkout', '-o', 'json']).out);
  assert.equal(gateways.items.length, 1);
  const gw = gateways.items[0];
  assert.equal(gw.metadata.name, CLUSTER);
  assert.equal(gw.spec.gatewayClassName, 'amazon-vpc-lattice');
  assert.equal(gw.status.conditions.find((c) => c.type === 'Programmed').status, 'True');

  const route = await until('the route to be Programmed', () => {
    const list = JSON.parse(trellis(['get', 'httproutes', '-n', 'checkout', '-o', 'json']).out);
    const item = list.items.find((i) => i.metadata.name === 'checkoutroute');
    const programmed = item?.status.parents[0].conditions.find((c) => c.type === 'Programmed');
    return programmed?.status === 'True' && item;
  });
  dnsName = route.metadata.annotations['application-networking.k8s.aws/lattice-assigned-domain-name'];
  assert.match(dnsName, /^checkoutroute-checkout-[0-9a-z]+\.[0-9a-z]+\.vpc-lattice-svcs\.us-east-1\.on\.aws$/);
  const parent = route.status.parents[0];
  assert.deepEqual(parent.parentRef, { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: CLUSTER, namespace: 'checkout' });
  for (const type of ['Accepted', 'ResolvedRefs', 'Programmed']) {
    const c = parent.conditions.find((x) => x.type === type);
    assert.equal(c.status, 'True', `${type}: ${JSON.stringify(c)}`);
    assert.equal(c.reason, type);
  }
  const table = trellis(['get', 'httproutes', '-n', 'checkout']);
  assert.match(table.out, /^NAME\s+HOSTNAMES\s+DNS\s+ACCEPTED\s+RESOLVEDREFS\s+PROGRAMMED$/m);
  assert.match(table.out, new RegExp(`^checkoutroute\\s+-\\s+${dnsName.replaceAll('.', '\\.')}\\s+True\\s+True\\s+True$`, 'm'));

  // What the controller would have made: tagged target groups with the policy's health check.
  const tgs = (await t.client.send(new ListTargetGroupsCommand({}))).items;
  assert.equal(tgs.length, 2);
  for (const tg of tgs) {
    const tags = (await t.client.send(new ListTagsForResourceCommand({ resourceArn: tg.arn }))).tags;
    assert.equal(tags['application-networking.k8s.aws/RouteName'], 'checkoutroute');
    assert.equal(tags['application-networking.k8s.aws/ManagedBy'], `111122223333/trellis/${VPC}`);
  }
  const listeners = JSON.parse(await (await fetch(`${t.admin}/listeners`)).text());
  const l80 = listeners.find((l) => l.port === 80);
  assert.ok(l80?.bound, `trellisd could not bind the Gateway's port 80: ${JSON.stringify(l80)}`);
});

test("the route's DNS name answers /health through the data plane, also as resolved by trellisd's DNS", async () => {
  const health = await until('the route to answer', async () => { const r = await get(dnsName, '/health'); return r.status === 200 && r; });
  assert.deepEqual(JSON.parse(health.body), { status: 'ok', info: {}, error: {}, details: {} });

  const dig = await promisify(execFile)('dig', ['+short', '+time=2', '+tries=2', '-b', CLIENT_IP, '-p', String(dnsPort), '@127.0.0.1', dnsName, 'A']);
  const address = dig.stdout.trim().split('\n').filter(Boolean)[0];
  assert.match(address ?? '', /^\d+\.\d+\.\d+\.\d+$/, `dig answered: ${dig.stdout}`);
  const viaDns = await get(dnsName, '/health', address);
  assert.equal(viaDns.status, 200);
  // From outside any associated VPC the name does not resolve.
  const outside = await promisify(execFile)('dig', ['+short', '+time=2', '+tries=1', '-b', '127.0.3.10', '-p', String(dnsPort), '@127.0.0.1', dnsName, 'A']);
  assert.equal(outside.stdout.trim(), '');
});

test('weights 25/75 hold within ±3% over 4,000 requests', async () => {
  // Both targets healthy first (one passing check each).
  for (const tg of (await t.client.send(new ListTargetGroupsCommand({}))).items) {
    await until(`the target of ${tg.name} to be healthy`, async () => {
      const targets = (await t.client.send(new ListTargetsCommand({ targetGroupIdentifier: tg.id }))).items;
      return targets.length === 1 && targets[0].status === 'HEALTHY';
    });
  }
  const counts = { v1: 0, v2: 0, other: 0 };
  const total = 4000;
  let next = 0;
  async function worker() {
    while (next < total) {
      next++;
      const r = await get(dnsName, '/checkout');
      const version = r.status === 200 ? JSON.parse(r.body).version : null;
      counts[version ?? 'other']++;
    }
  }
  await Promise.all(Array.from({ length: 16 }, worker));
  assert.equal(counts.other, 0, JSON.stringify(counts));
  const share = counts.v1 / total;
  assert.ok(Math.abs(share - 0.25) <= 0.03, `v1 got ${(share * 100).toFixed(1)}% (${JSON.stringify(counts)})`);
});

test('re-applying the same files changes nothing', async () => {
  const before = await revision();
  const r = trellis(['apply', '-f', dir]);
  assert.equal(r.code, 0, r.err);
  for (const line of r.out.trim().split('\n')) assert.match(line, / unchanged$/);
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(await revision(), before, 'the store revision moved: apply wrote something');
});

test('health checks follow the TargetGroupPolicy: a stopped v2 is UNHEALTHY within 2 x 10 s', async () => {
  const stopped = Date.now();
  await stopBackend(backends.v2);
  const v2 = (await t.client.send(new ListTargetGroupsCommand({}))).items.find((tg) => tg.name.includes('checkoutv2'));
  await until('v2 to be unhealthy', async () => {
    const [target] = (await t.client.send(new ListTargetsCommand({ targetGroupIdentifier: v2.id }))).items;
    return target.status === 'UNHEALTHY' && target.reasonCode === 'Target.FailedHealthChecks';
  }, 30000);
  const elapsed = (Date.now() - stopped) / 1000;
  // Unhealthy after 2 failed checks 10 s apart (a refused connection fails at once, within the 1 s timeout).
  assert.ok(elapsed <= 21, `took ${elapsed.toFixed(1)} s`);
});

// Lattice (docs/architecture.md, "Route") routes each weighted target group independently and fails open inside
// a group whose targets are all unhealthy, so 75% of requests still go to v2's group. The issue asks
// for the workshop's expectation instead; that needs the data plane to skip such groups when another
// group of the action has healthy targets (src/proxy RouterState::pickTargetGroup, not yet changed).
test('stopping v2 moves all traffic to v1', async () => {
  await until('all traffic to reach v1', async () => {
    for (let i = 0; i < 20; i++) {
      const r = await get(dnsName, '/checkout');
      if (r.status !== 200 || JSON.parse(r.body).version !== 'v1') return false;
    }
    return true;
  }, 5000);
  for (let i = 0; i < 100; i++) assert.equal(JSON.parse((await get(dnsName, '/checkout')).body).version, 'v1');
});

test('delete removes everything apply made, and nothing is left in Lattice', async () => {
  const r = trellis(['delete', '-f', dir]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /httproute.gateway.networking.k8s.io\/checkoutroute -n checkout deleted/);
  const c = t.client;
  assert.deepEqual((await c.send(new ListServiceNetworksCommand({}))).items, []);
  assert.deepEqual((await c.send(new ListServicesCommand({}))).items, []);
  assert.deepEqual((await c.send(new ListTargetGroupsCommand({}))).items, []);
  assert.deepEqual((await c.send(new ListServiceNetworkVpcAssociationsCommand({ vpcIdentifier: VPC }))).items, []);
  assert.equal(trellis(['get', 'httproutes', '-A']).out.trim(), 'No resources found.');
  assert.equal(trellis(['get', 'gateways', '-A']).out.trim(), 'No resources found.');
  // Deleting again is a no-op.
  const before = await revision();
  assert.equal(trellis(['delete', '-f', dir]).code, 0);
  assert.equal(await revision(), before);
});
