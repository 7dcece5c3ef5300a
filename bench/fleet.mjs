// A fleet on one machine: one API server (--roles api, SQLite) and PROXIES data-plane hosts (--roles proxy, one
// worker each, each on its own loopback address). Measures, with the real AWS SDK for JavaScript:
// - propagation: from an API call's answer (the commit is durable) to the change compiled and published on every
//   host, p50 and p99 over COMMITS changes: each host's trellis_snapshot_published_timestamp_seconds (one clock:
//   one machine) against the answer's time, read once the host reports the revision (polled gently, so that the
//   polling does not take the CPU the hosts need);
// - an idle host's memory (RSS) and CPU, and the API server's CPU per connected host while nothing changes;
// - a host's start from its replica at SERVICES services, with no API server up: from exec to its first answer.
//
// usage: bench/fleet.sh, or TRELLISD=build/bench-release/src/exe/trellisd node bench/fleet.mjs
//   env: PROXIES=3,50  COMMITS=200  SERVICES=1000
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTrellis, trellisdPath, BASE_CONFIG, ADMIN, ACCOUNT } from '../test/integration/harness.mjs';

const require = createRequire(new URL('../test/integration/package.json', import.meta.url));
const lattice = require('@aws-sdk/client-vpc-lattice');

const fleetSizes = (process.env.PROXIES ?? '3,50').split(',').map(Number);
const commits = Number(process.env.COMMITS ?? 200);
const serviceCount = Number(process.env.SERVICES ?? 1000);
const PROXY = {
  arn: `arn:aws:iam::${ACCOUNT}:role/trellis-proxy`,
  accessKeyId: 'AKIAEXAMPLEPROXY0001',
  secretAccessKey: 'proxy-secret-key-for-benchmarks-only-000000',
  policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'trellis:ReceiveConfiguration', Resource: '*' }] }),
};
const hz = 100;  // USER_HZ
const cpuTicks = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
};
const rssMiB = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) / 1024;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const work = mkdtempSync(path.join(tmpdir(), 'trellis-fleet-bench-'));

const api = await startTrellis({
  args: ['--roles', 'api'],
  config: { identities: [ADMIN, PROXY], quotas: { services: serviceCount + 100 } },
});
const children = [];
process.on('exit', () => {  // also after the last line: the hosts' pipes would keep Node waiting
  api.child.kill('SIGKILL');
  for (const c of children) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

function startHost(i, dataDir = path.join(work, `host${i}`)) {
  const started = process.hrtime.bigint();
  const child = spawn(trellisdPath, ['--roles', 'proxy', '--control-plane', api.endpoint, '--config', api.configFile,
    '--data-dir', dataDir, '--proxy-bind', `127.0.60.${i + 1}`, '--admin-listen', '127.0.0.1:0', '--workers', '1',
    '--proxy-id', `host${i}`, '--log-level', 'warn'],
  { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, AWS_ACCESS_KEY_ID: PROXY.accessKeyId, AWS_SECRET_ACCESS_KEY: PROXY.secretAccessKey } });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/admin endpoint \(\/ready, \/metrics\) at (http:\/\/\S+)/);
      if (m) resolve({ child, admin: m[1], dataDir, startedNs: started });
    });
    child.on('exit', (code) => reject(new Error(`host ${i} exited with ${code}`)));
  });
}
const stopHost = async (h) => { const exited = new Promise((r) => h.child.on('exit', r)); h.child.kill('SIGTERM'); await exited; };

async function snapshotOf(admin) {
  const text = await (await fetch(`${admin}/metrics`)).text();
  return {
    revision: Number(text.match(/^trellis_snapshot_revision (\d+)$/m)?.[1] ?? -1),
    publishedMs: Number(text.match(/^trellis_snapshot_published_timestamp_seconds (\S+)$/m)?.[1] ?? 0) * 1000,
  };
}
const revisionOf = async (admin) => (await snapshotOf(admin)).revision;
const wallMs = () => performance.timeOrigin + performance.now();

// A service with an HTTP listener: what each measured change updates.
const c = api.client;
const svc = await c.send(new lattice.CreateServiceCommand({ name: 'bench-svc' }));
const listener = await c.send(new lattice.CreateListenerCommand({ serviceIdentifier: svc.id, name: 'http', protocol: 'HTTP',
  port: 28080, defaultAction: { fixedResponse: { statusCode: 404 } } }));
const percentile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

console.log('| hosts | propagation p50 | p99 | max | idle host RSS | idle host CPU | API server CPU per host (idle) |');
console.log('|---|---|---|---|---|---|---|');
let hosts = [];
for (const size of fleetSizes) {
  while (hosts.length < size) hosts.push(await startHost(hosts.length));
  const apiRevision = async () => Number((await (await fetch(`${api.admin}/metrics`)).text()).match(/^trellis_fleet_revision (\d+)$/m)[1]);
  for (;;) {  // every host caught up before measuring
    const want = await apiRevision();
    if ((await Promise.all(hosts.map((h) => revisionOf(h.admin)))).every((r) => r >= want)) break;
    await sleep(100);
  }
  const samples = [];
  for (let k = 0; k < commits; k++) {
    await c.send(new lattice.UpdateListenerCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.id,
      defaultAction: { fixedResponse: { statusCode: k % 2 ? 404 : 403 } } }));
    const t0 = wallMs();
    const target = await apiRevision();
    // When each host published the change; the slowest host is the sample.
    const times = await Promise.all(hosts.map(async (h) => {
      for (;;) {
        const snapshot = await snapshotOf(h.admin);
        if (snapshot.revision >= target) return snapshot.publishedMs - t0;
        await sleep(hosts.length * 2);
      }
    }));
    samples.push(Math.max(...times));
  }
  samples.sort((a, b) => a - b);
  // Idle: nothing changes for 10 s; the hosts' polls stay parked on the API server.
  const idle = 10;
  const hostTicks0 = hosts.map((h) => cpuTicks(h.child.pid));
  const apiTicks0 = cpuTicks(api.child.pid);
  await sleep(idle * 1000);
  const hostCpu = hosts.reduce((sum, h, i) => sum + cpuTicks(h.child.pid) - hostTicks0[i], 0) / hosts.length / hz / idle;
  const apiCpu = (cpuTicks(api.child.pid) - apiTicks0) / hz / idle / hosts.length;
  const rss = hosts.reduce((sum, h) => sum + rssMiB(h.child.pid), 0) / hosts.length;
  console.log(`| ${size} | ${percentile(samples, 0.5).toFixed(1)} ms | ${percentile(samples, 0.99).toFixed(1)} ms | ` +
    `${samples[samples.length - 1].toFixed(1)} ms | ${rss.toFixed(1)} MiB | ${(hostCpu * 100).toFixed(3)} % | ${(apiCpu * 100).toFixed(4)} % |`);
}

// Start from the replica at SERVICES services with no API server up.
const before = (await c.send(new lattice.ListServicesCommand({}))).items.length;
for (let i = before; i < serviceCount; i += 8)
  await Promise.all(Array.from({ length: Math.min(8, serviceCount - i) }, (_, k) => c.send(new lattice.CreateServiceCommand({ name: `fill-${i + k}` }))));
const host = hosts[0];
const want = Number((await (await fetch(`${api.admin}/metrics`)).text()).match(/^trellis_fleet_revision (\d+)$/m)[1]);
while ((await revisionOf(host.admin)) < want) await sleep(100);
for (const h of hosts) await stopHost(h);
await api.stop({ cleanup: false });
const restarted = await startHost(0, host.dataDir);
const readyMs = Number(process.hrtime.bigint() - restarted.startedNs) / 1e6;
console.log(`\nstart from the replica at ${serviceCount} services, no API server up: ${readyMs.toFixed(0)} ms from exec to serving ` +
  `(snapshot at revision ${await revisionOf(restarted.admin)})`);
process.exit(0);
