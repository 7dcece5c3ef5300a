// A fleet: one etcd member, two API servers (--roles api) and three data-plane hosts (--roles proxy,dns), each
// host in its own network namespace with its own address and VPC, and clients in those namespaces. The hosts have
// no config file of their own: the API servers' reaches them on the stream. Changes made on one API server reach
// every host, and so does a reloaded config; ListTargets on an API server shows what the hosts' health checks
// see; the hosts serve with no control plane at all (API servers and etcd down; their health checks go on),
// a host restarted in the outage serves from its replica, and a host whose API server dies moves to the other
// without a whole copy. Needs root for the namespaces (skipped without).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CreateServiceNetworkCommand, CreateServiceCommand, CreateTargetGroupCommand, RegisterTargetsCommand,
  CreateListenerCommand, UpdateListenerCommand, CreateRuleCommand, CreateServiceNetworkServiceAssociationCommand,
  CreateServiceNetworkVpcAssociationCommand, ListTargetsCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, startEchoBackend, until, freePort, trellisdPath, BASE_CONFIG, ADMIN, ACCOUNT } from './harness.mjs';

const execFileAsync = promisify(execFile);
const canNamespace = (() => {
  try {
    execFileSync('ip', ['netns', 'add', `trellis-probe-${process.pid}`], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'del', `trellis-probe-${process.pid}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const skip = canNamespace ? false : 'needs root for network namespaces';

const PROXY = {
  arn: `arn:aws:iam::${ACCOUNT}:role/trellis-proxy`,
  accessKeyId: 'AKIAEXAMPLEPROXY0001',
  secretAccessKey: 'proxy-secret-key-for-tests-only-0000000000',
  policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'trellis:ReceiveConfiguration', Resource: '*' }] }),
};
const r = 150 + (process.pid % 50); // 10.r.i.0/24: host i's subnet; 10.r.100.1: the targets, in the root namespace
const TARGET_IP = `10.${r}.100.1`;
const HOSTS = [1, 2, 3].map((i) => ({
  i, ns: `trellis-host${i}-${process.pid}`, root: `10.${r}.${i}.1`, address: `10.${r}.${i}.2`,
  vpc: `vpc-0f1ee70000000000${i}`,
}));
const work = canNamespace ? mkdtempSync(path.join(tmpdir(), 'trellis-fleet-')) : null;
const config = {
  ...BASE_CONFIG,
  identities: [ADMIN, PROXY],
  vpcs: [...BASE_CONFIG.vpcs, ...HOSTS.map((h) => ({ id: h.vpc, cidrs: [`10.${r}.${h.i}.0/24`] }))],
};
let etcd;
let etcdArgs;
let apiA;
let apiB;
const hosts = {};
const backends = [];
const ids = {};

function sh(...args) { execFileSync(args[0], args.slice(1), { stdio: 'ignore' }); }

function startEtcd() {
  etcd = spawn('/usr/bin/etcd', etcdArgs, { stdio: ['ignore', 'ignore', 'ignore'] });
  return until('etcd to be healthy', async () => {
    try {
      return (await (await fetch(`http://127.0.0.1:${ids.etcdPort}/health`)).json()).health === 'true';
    } catch {
      return false;
    }
  });
}
async function stopEtcd() {
  const exited = new Promise((resolve) => etcd.on('exit', resolve));
  etcd.kill('SIGTERM');
  await exited;
}

// An API server on a port of its own, which it keeps across restarts (the hosts are told it once).
function startApi(name) {
  const dataDir = path.join(work, name);
  mkdirSync(dataDir, { recursive: true });
  return startTrellis({ config, dataDir, apiListen: `0.0.0.0:${ids.apiPort[name]}`, args: ['--roles', 'api', '--store', ids.store] });
}

// A data-plane host: trellisd in the host's namespace, following both API servers.
function startHost(h) {
  const dataDir = path.join(work, `host${h.i}`);
  const controlPlane = Object.values(ids.apiPort).map((port) => `http://${h.root}:${port}`).join(',');
  // No --config: a host takes the API servers' config (identities, VPCs...) from the stream, and keeps it.
  const child = spawn('ip', ['netns', 'exec', h.ns, trellisdPath, '--roles', 'proxy,dns', '--control-plane', controlPlane,
    '--data-dir', dataDir, '--proxy-bind', h.address, '--admin-listen', `${h.address}:0`,
    '--dns-listen', `${h.address}:5353`, '--proxy-id', `host${h.i}`, '--workers', '1'],
  { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, AWS_ACCESS_KEY_ID: PROXY.accessKeyId, AWS_SECRET_ACCESS_KEY: PROXY.secretAccessKey } });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/admin endpoint \(\/ready, \/metrics\) at (http:\/\/\S+)/);
      if (m) resolve({ child, admin: m[1], exited, stderr: () => err, async stop() { child.kill('SIGTERM'); await exited; } });
    });
    child.on('exit', (code) => reject(new Error(`host ${h.i} exited with ${code}: ${err}`)));
  });
}

async function metric(admin, name) {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : undefined;
}

// One request from a client in the host's namespace to the service, through that host's proxy.
async function curl(h, pathname = '/') {
  try {
    const { stdout } = await execFileAsync('ip', ['netns', 'exec', h.ns, 'curl', '-s', '-m', '5', '-o', '-', '-w', '\n%{http_code}',
      '-H', `Host: ${ids.host}`, `http://${h.address}:${ids.port}${pathname}`], { encoding: 'utf8' });
    const lines = stdout.split('\n');
    const status = Number(lines.pop());
    return { status, backend: status === 200 ? JSON.parse(lines.join('\n')).backend : undefined };
  } catch {
    return { status: 0 };
  }
}

// Every host's snapshot at the API servers' revision.
async function converged() {
  const revision = await metric(apiA.admin, 'trellis_fleet_revision');
  await until(`every host at revision ${revision}`, async () => {
    for (const h of HOSTS) if ((await metric(hosts[h.i].admin, 'trellis_snapshot_revision')) < revision) return false;
    return true;
  });
  return revision;
}

before(async () => {
  if (skip) return;
  sh('ip', 'addr', 'add', `${TARGET_IP}/32`, 'dev', 'lo');
  for (const h of HOSTS) {
    sh('ip', 'netns', 'add', h.ns);
    sh('ip', 'link', 'add', `tf${h.i}-${process.pid}`, 'type', 'veth', 'peer', 'name', `tg${h.i}-${process.pid}`);
    sh('ip', 'link', 'set', `tg${h.i}-${process.pid}`, 'netns', h.ns);
    sh('ip', 'addr', 'add', `${h.root}/24`, 'dev', `tf${h.i}-${process.pid}`);
    sh('ip', 'link', 'set', `tf${h.i}-${process.pid}`, 'up');
    sh('ip', 'netns', 'exec', h.ns, 'ip', 'addr', 'add', `${h.address}/24`, 'dev', `tg${h.i}-${process.pid}`);
    sh('ip', 'netns', 'exec', h.ns, 'ip', 'link', 'set', `tg${h.i}-${process.pid}`, 'up');
    sh('ip', 'netns', 'exec', h.ns, 'ip', 'link', 'set', 'lo', 'up');
    sh('ip', 'netns', 'exec', h.ns, 'ip', 'route', 'add', 'default', 'via', h.root);
  }
  ids.etcdPort = await freePort();
  const peer = await freePort();
  etcdArgs = ['--data-dir', path.join(work, 'etcd'),
    '--listen-client-urls', `http://127.0.0.1:${ids.etcdPort}`, '--advertise-client-urls', `http://127.0.0.1:${ids.etcdPort}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `default=http://127.0.0.1:${peer}`];
  await startEtcd();
  ids.store = `etcd://127.0.0.1:${ids.etcdPort}/fleet-${process.pid}`;
  ids.apiPort = { apiA: await freePort(), apiB: await freePort() };
  apiA = await startApi('apiA');
  apiB = await startApi('apiB');
  for (const h of HOSTS) hosts[h.i] = await startHost(h);

  const c = apiA.client;
  for (const name of ['one', 'two']) backends.push(await startEchoBackend(name, TARGET_IP));
  ids.sn = (await c.send(new CreateServiceNetworkCommand({ name: 'fleet-net' }))).id;
  const svc = await c.send(new CreateServiceCommand({ name: 'fleet-svc' }));
  ids.svc = svc.id;
  ids.host = svc.dnsEntry.domainName;
  ids.tg = {};
  for (const b of backends) {
    ids.tg[b.name] = (await c.send(new CreateTargetGroupCommand({ name: `fleet-${b.name}`, type: 'IP',
      config: { port: b.port, protocol: 'HTTP', vpcIdentifier: HOSTS[0].vpc,
        healthCheck: { enabled: true, healthCheckIntervalSeconds: 5, healthyThresholdCount: 2, path: '/health' } } }))).id;
    await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: ids.tg[b.name], targets: [{ id: TARGET_IP }] }));
  }
  ids.port = await freePort();
  ids.listener = (await c.send(new CreateListenerCommand({ serviceIdentifier: ids.svc, name: 'fleet-http', protocol: 'HTTP',
    port: ids.port, defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: ids.tg.one }] } } }))).id;
  // Group one stays in use (and health-checked) when the default action moves to group two.
  await c.send(new CreateRuleCommand({ serviceIdentifier: ids.svc, listenerIdentifier: ids.listener, name: 'keep-one',
    priority: 2, match: { httpMatch: { pathMatch: { match: { prefix: '/keep-one' } } } },
    action: { forward: { targetGroups: [{ targetGroupIdentifier: ids.tg.one }] } } }));
  await c.send(new CreateServiceNetworkServiceAssociationCommand({ serviceIdentifier: ids.svc, serviceNetworkIdentifier: ids.sn }));
  for (const h of HOSTS)
    await c.send(new CreateServiceNetworkVpcAssociationCommand({ serviceNetworkIdentifier: ids.sn, vpcIdentifier: h.vpc }));
});

after(async () => {
  if (skip) return;
  for (const h of HOSTS) await hosts[h.i]?.stop();
  await apiA?.stop();
  await apiB?.stop();
  etcd?.kill('SIGKILL');
  for (const b of backends) b.close();
  for (const h of HOSTS) {
    try { sh('ip', 'link', 'del', `tf${h.i}-${process.pid}`); } catch { /* gone with the namespace */ }
    try { sh('ip', 'netns', 'del', h.ns); } catch { /* never made */ }
  }
  try { sh('ip', 'addr', 'del', `${TARGET_IP}/32`, 'dev', 'lo'); } catch { /* never added */ }
  rmSync(work, { recursive: true, force: true });
});

test('a change on one API server reaches every host, and traffic follows', { skip }, async () => {
  await converged();
  for (const h of HOSTS) assert.equal((await until(`host ${h.i} to route`, async () => { const x = await curl(h); return x.status === 200 && x; })).backend, 'one');
  await apiA.client.send(new UpdateListenerCommand({ serviceIdentifier: ids.svc, listenerIdentifier: ids.listener,
    defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: ids.tg.two }] } } }));
  const revision = await converged();
  for (const h of HOSTS) {
    assert.equal((await curl(h)).backend, 'two', `host ${h.i} at revision ${revision}`);
    assert.equal(await metric(hosts[h.i].admin, 'trellis_snapshot_revision'), revision);
  }
  // Each host's DNS directory answers the service's name from its replica, with the host's own address.
  for (const h of HOSTS) {
    const { stdout } = await execFileAsync('ip', ['netns', 'exec', h.ns, 'dig', '+short', '-p', '5353', `@${h.address}`, ids.host]);
    assert.equal(stdout.trim(), h.address);
  }
  // The API servers run no prober: ListTargets says what the hosts that check the target report.
  await until('the hosts to report the target healthy', async () => {
    const { items } = await apiA.client.send(new ListTargetsCommand({ targetGroupIdentifier: ids.tg.two }));
    return items[0]?.status === 'HEALTHY';
  }, 60000);
  // A reloaded config reaches every host (and is what a host restarts with).
  const reloaded = { ...config, identities: [...config.identities, { arn: `arn:aws:iam::${ACCOUNT}:role/late`, accessKeyId: 'AKIAEXAMPLELATE00001', secretAccessKey: 'late-secret-key-for-tests-only-000000000' }] };
  for (const a of [apiA, apiB]) {
    writeFileSync(a.configFile, JSON.stringify(reloaded, null, 2));
    assert.equal((await fetch(`${a.admin}/reload`, { method: 'POST' })).status, 200);
  }
  for (const h of HOSTS) {
    await until(`host ${h.i} to take the reloaded config`, () => {
      try {
        return readFileSync(path.join(work, `host${h.i}`, 'control-plane-config.yaml'), 'utf8') === readFileSync(apiA.configFile, 'utf8');
      } catch {
        return false;
      }
    });
  }
  // The API servers know their followers: `trellis get proxies` on each lists the hosts that poll it.
  const cli = process.env.TRELLIS_CLI ?? path.resolve(path.dirname(trellisdPath), '../cli/trellis');
  const listed = [];
  for (const a of [apiA, apiB]) {
    const { stdout } = await execFileAsync(cli, ['--endpoint', a.endpoint, '-o', 'json', 'get', 'proxies'], {
      env: { PATH: process.env.PATH, AWS_ACCESS_KEY_ID: ADMIN.accessKeyId, AWS_SECRET_ACCESS_KEY: ADMIN.secretAccessKey, AWS_REGION: 'us-east-1' } });
    listed.push(...JSON.parse(stdout).items.map((p) => p.id));
  }
  assert.deepEqual(listed.sort(), ['host1', 'host2', 'host3']);
});

test('with both API servers and etcd down for 60 s the hosts serve every request; a host restarted then serves from its replica', { skip }, async () => {
  const stopFile = path.join(work, 'stop-traffic');
  // Steady traffic from a client in each namespace, one request after another, each answer's status on a line.
  const loops = HOSTS.map((h) => {
    const out = path.join(work, `traffic-${h.i}`);
    const script = `while [ ! -e ${stopFile} ]; do curl -s -m 5 -o /dev/null -w '%{http_code}\\n' -H 'Host: ${ids.host}' http://${h.address}:${ids.port}/; sleep 0.02; done > ${out}`;
    const child = spawn('ip', ['netns', 'exec', h.ns, 'bash', '-c', script], { stdio: 'ignore' });
    return { h, out, exited: new Promise((resolve) => child.on('exit', resolve)) };
  });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await apiA.stop({ cleanup: false });
  await apiB.stop({ cleanup: false });
  await stopEtcd();
  const outageStarted = Date.now();

  // In the outage: a host restarted with no API server up routes from its replica as soon as it is up.
  const h3 = HOSTS[2];
  await hosts[3].stop();
  hosts[3] = await startHost(h3);
  const first = await curl(h3);
  assert.equal(first.status, 200, 'the first request after the restart');
  assert.equal(first.backend, 'two');
  assert.equal(await metric(hosts[3].admin, 'trellis_fleet_connected'), 0);

  // Health checks go on in the outage: a target that stops answering is seen failing by every host, and passing
  // again once it is back. (It is not routed to meanwhile: the listener forwards to the other group.)
  const one = backends.findIndex((b) => b.name === 'one');
  const onePort = backends[one].port;
  const healthOf = async (h, name) => metric(hosts[h.i].admin, `${name}\\{target_group="${ids.tg.one}"\\}`);
  backends[one].close();
  for (const h of HOSTS) await until(`host ${h.i} to see backend one failing`, async () => (await healthOf(h, 'UnHealthyHostCount')) === 1, 40000);
  backends[one] = await startEchoBackend('one', TARGET_IP, onePort);
  for (const h of HOSTS) await until(`host ${h.i} to see backend one passing`, async () => (await healthOf(h, 'HealthyHostCount')) === 1, 40000);

  await new Promise((resolve) => setTimeout(resolve, Math.max(0, 60000 - (Date.now() - outageStarted))));
  await startEtcd();
  apiA = await startApi('apiA');
  apiB = await startApi('apiB');
  // The hosts find the API servers again by themselves, and a change made now reaches them.
  for (const h of HOSTS)
    await until(`host ${h.i} to reconnect`, async () => (await metric(hosts[h.i].admin, 'trellis_fleet_connected')) === 1);
  await apiB.client.send(new UpdateListenerCommand({ serviceIdentifier: ids.svc, listenerIdentifier: ids.listener,
    defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: ids.tg.two, weight: 100 }] } } }));
  await converged();
  writeFileSync(stopFile, '');
  await Promise.all(loops.map((l) => l.exited));
  for (const l of loops) {
    const statuses = readFileSync(l.out, 'utf8').trim().split('\n');
    const failed = statuses.filter((s) => s !== '200');
    assert.ok(statuses.length > 500, `host ${l.h.i}: only ${statuses.length} requests`);
    // Host 3 was down while it restarted: its client's requests in that moment could not connect.
    if (l.h.i !== 3) assert.deepEqual(failed, [], `host ${l.h.i}: ${failed.length} of ${statuses.length} failed`);
  }
});

test('when its API server dies a host moves to the other without a whole copy and misses no change', { skip }, async () => {
  await converged();
  // Whole copies so far: at each host's first start, and after the outage (the restarted API servers' change feeds
  // start at their start: docs/fleet.md). From here on, none.
  const copies = [];
  for (const h of HOSTS) copies.push(await metric(hosts[h.i].admin, 'trellis_fleet_full_copies_total'));
  apiA.child.kill('SIGKILL');
  await apiA.stop({ cleanup: false });
  await apiB.client.send(new CreateRuleCommand({ serviceIdentifier: ids.svc, listenerIdentifier: ids.listener, name: 'to-one',
    priority: 1, match: { httpMatch: { pathMatch: { match: { prefix: '/one' } } } },
    action: { forward: { targetGroups: [{ targetGroupIdentifier: ids.tg.one }] } } }));
  const revision = await metric(apiB.admin, 'trellis_fleet_revision');
  for (const h of HOSTS) {
    await until(`host ${h.i} at revision ${revision}`, async () => (await metric(hosts[h.i].admin, 'trellis_snapshot_revision')) >= revision);
    assert.equal((await curl(h, '/one/x')).backend, 'one');
    assert.equal((await curl(h, '/other')).backend, 'two');
    assert.equal(await metric(hosts[h.i].admin, 'trellis_fleet_full_copies_total'), copies[h.i - 1]);
  }
  // Every host holds exactly the records B routes by.
  const want = await (await fetch(`${apiB.admin}/fleet/digest`)).json();
  for (const h of HOSTS) assert.deepEqual(await (await fetch(`${hosts[h.i].admin}/fleet/digest`)).json(), want);
});
