// The control plane at scale: API calls per second, p50/p99 latency and trellisd CPU per call for creates,
// gets, updates, lists and deletes, measured at several numbers of services already present, with the real
// AWS SDK for JavaScript and several concurrent callers. What "every call costs the same at any size" means,
// in numbers: each operation's figures at the largest size against the smallest.
//
// Each service present has a target group of TARGETS targets (health checks off), an HTTP listener forwarding
// to it and an association with a service network (networks of at most 500 services, Lattice's default quota).
//
// usage: bench/api_scale.sh (builds a release trellisd), or
//   TRELLISD=build/release/src/exe/trellisd node bench/api_scale.mjs
//   env: SIZES=100,1000,10000  TARGETS=10  CONCURRENCY=8  SAMPLE=400 (calls per operation and size)
//        STORE=etcd://HOST:PORT[/PREFIX]  measure on etcd (trellisd --store) instead of the embedded SQLite
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { startTrellis } from '../test/integration/harness.mjs';

const require = createRequire(new URL('../test/integration/package.json', import.meta.url));
const lattice = require('@aws-sdk/client-vpc-lattice');

const sizes = (process.env.SIZES ?? '100,1000,10000').split(',').map(Number);
const targetsPerService = Number(process.env.TARGETS ?? 10);
const concurrency = Number(process.env.CONCURRENCY ?? 8);
const sample = Number(process.env.SAMPLE ?? 400);
const vpc = 'vpc-0123456789abcdef0';
const perNetwork = 500;

const largest = Math.max(...sizes);
const t = await startTrellis({
  args: process.env.STORE ? ['--store', process.env.STORE] : [],
  config: {
    quotas: {
      services: largest + sample + 100, targetGroups: largest + sample + 100, serviceNetworks: 100,
      serviceAssociationsPerServiceNetwork: perNetwork, targetsPerTargetGroup: 1000,
    },
  },
});
const pid = t.child.pid;
process.on('exit', () => t.child.kill('SIGKILL'));  // a failed call ends the run: never leave trellisd behind
const send = (command) => t.client.send(command);

// CPU seconds trellisd has used (user + system), from /proc.
function cpuSeconds() {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;  // utime, stime in clock ticks (USER_HZ = 100)
}

// Runs `count` calls of `make(i)` with `concurrency` callers; returns calls/s, p50, p99 (ms), CPU ms per call.
async function measure(count, make) {
  const latencies = [];
  let next = 0;
  const cpu0 = cpuSeconds();
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < count; i = next++) {
      const start = process.hrtime.bigint();
      await make(i);
      latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  }));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuSeconds() - cpu0;
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  return { perSecond: count / seconds, p50: at(0.5), p99: at(0.99), cpuMs: (cpu * 1000) / count };
}

// ---- The fleet of services, grown to each size ----
const networks = [];
const services = [];  // {id, tg, listener}
async function addService(i) {
  const tg = await send(new lattice.CreateTargetGroupCommand({
    name: `group-${i}`, type: 'IP',
    // No health checks: their probes would be counted as the API's CPU (health checking at scale is measured
    // on its own).
    config: { port: 80, protocol: 'HTTP', vpcIdentifier: vpc, healthCheck: { enabled: false } },
  }));
  for (let first = 0; first < targetsPerService; first += 100) {
    const targets = [];
    for (let k = first; k < Math.min(targetsPerService, first + 100); ++k) {
      const n = i * targetsPerService + k;
      targets.push({ id: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`, port: 8080 });
    }
    await send(new lattice.RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets }));
  }
  const service = await send(new lattice.CreateServiceCommand({ name: `service-${i}` }));
  const listener = await send(new lattice.CreateListenerCommand({
    serviceIdentifier: service.id, name: 'http', protocol: 'HTTP', port: 80,
    defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: tg.id, weight: 100 }] } },
  }));
  await send(new lattice.CreateServiceNetworkServiceAssociationCommand({
    serviceNetworkIdentifier: networks[Math.floor(i / perNetwork)], serviceIdentifier: service.id,
  }));
  services[i] = { id: service.id, tg: tg.id, listener: listener.id };
}
async function growTo(n) {
  while (networks.length * perNetwork < n) {
    const sn = await send(new lattice.CreateServiceNetworkCommand({ name: `network-${networks.length}` }));
    networks.push(sn.id);
  }
  const from = services.length;
  if (n > from) await measure(n - from, (k) => addService(from + k));
}

// ---- What is measured at each size ----
const pickService = (i) => services[(i * 7919) % services.length];
const operations = {
  CreateService: (size) => (i) => send(new lattice.CreateServiceCommand({ name: `probe-${size}-${i}` }))
    .then((s) => { probes.push(s.id); }),
  GetService: () => (i) => send(new lattice.GetServiceCommand({ serviceIdentifier: pickService(i).id })),
  GetTargetGroup: () => (i) => send(new lattice.GetTargetGroupCommand({ targetGroupIdentifier: pickService(i).tg })),
  UpdateListener: () => (i) => {
    const s = pickService(i);
    return send(new lattice.UpdateListenerCommand({
      serviceIdentifier: s.id, listenerIdentifier: s.listener,
      defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: s.tg, weight: 1 + (i % 100) }] } },
    }));
  },
  ListServices: () => () => send(new lattice.ListServicesCommand({ maxResults: 100 })),
  ListTargetGroupsInVpc: () => () => send(new lattice.ListTargetGroupsCommand({ vpcIdentifier: vpc, maxResults: 100 })),
  ListNetworkAssociations: () => (i) => send(new lattice.ListServiceNetworkServiceAssociationsCommand({
    serviceNetworkIdentifier: networks[i % networks.length], maxResults: 100,
  })),
  ListTargets: () => (i) => send(new lattice.ListTargetsCommand({ targetGroupIdentifier: pickService(i).tg })),
  DeleteService: () => (i) => send(new lattice.DeleteServiceCommand({ serviceIdentifier: probes[i] })),
};
let probes = [];

const results = {};  // op → size → figures
for (const size of sizes) {
  const grown = process.hrtime.bigint();
  await growTo(size);
  console.error(`${size} services present (${Number(process.hrtime.bigint() - grown) / 1e9} s to grow)`);
  probes = [];
  for (const [op, make] of Object.entries(operations)) {
    (results[op] ??= {})[size] = await measure(sample, make(size));
  }
}
await t.stop({ cleanup: true });

// ---- Report ----
const small = sizes[0];
const fmt = (x, digits = 1) => x.toFixed(digits);
console.log(`| operation | services present | calls/s | p50 ms | p99 ms | trellisd CPU ms/call | CPU/call vs ${small} |`);
console.log('|---|---|---|---|---|---|---|');
for (const [op, bySize] of Object.entries(results)) {
  for (const size of sizes) {
    const r = bySize[size];
    console.log(`| ${op} | ${size} | ${fmt(r.perSecond, 0)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.cpuMs, 2)} | ` +
      `×${fmt(r.cpuMs / bySize[small].cpuMs, 2)} |`);
  }
}
