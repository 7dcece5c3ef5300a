// Starts a real trellisd on a fresh data dir and hands tests a real AWS SDK client for it.
//
//   const t = await startTrellis({ config: { quotas: { services: 3 } } });
//   await t.client.send(new CreateServiceCommand({ name: 'x' }));
//   await t.stop();
//
// TRELLISD names the binary (CTest sets it); otherwise the debug build is used.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VPCLatticeClient } from '@aws-sdk/client-vpc-lattice';

const here = path.dirname(fileURLToPath(import.meta.url));
export const trellisdPath = process.env.TRELLISD ?? path.resolve(here, '../../build/debug/src/exe/trellisd');

export const ACCOUNT = '111122223333';
export const REGION = 'us-east-1';
export const ADMIN = {
  arn: `arn:aws:iam::${ACCOUNT}:role/admin`,
  accessKeyId: 'AKIAEXAMPLEADMIN0001',
  secretAccessKey: 'admin-secret-key-for-tests-only-0000000000',
};

// The VPCs, security groups and instances every test config has, plus whatever the test adds.
export const BASE_CONFIG = {
  region: REGION,
  accountId: ACCOUNT,
  identities: [ADMIN],
  vpcs: [
    { id: 'vpc-0123456789abcdef0', cidrs: ['127.0.1.0/24'] },
    { id: 'vpc-0123456789abcdef1', cidrs: ['127.0.2.0/24'] },
    { id: 'vpc-0123456789abcdef2', cidrs: ['127.0.3.0/24'] },
  ],
  securityGroups: [
    { id: 'sg-0123456789abcdef0', vpcId: 'vpc-0123456789abcdef0', ingress: [{ cidr: '127.0.1.0/25', fromPort: 1, toPort: 65535 }] },
    { id: 'sg-0123456789abcdef1', vpcId: 'vpc-0123456789abcdef0', ingress: [{ cidr: '127.0.1.0/24', fromPort: 80, toPort: 80 }] },
    { id: 'sg-0123456789abcdef2', vpcId: 'vpc-0123456789abcdef1', ingress: [{ cidr: '127.0.2.0/24', fromPort: 1, toPort: 65535 }] },
  ],
  instances: [
    { id: 'i-0123456789abcdef0', vpcId: 'vpc-0123456789abcdef0', address: '127.0.0.5' },
  ],
};

// YAML is a superset of JSON, so the config file is written as JSON.
function writeConfig(dir, config) {
  const file = path.join(dir, 'trellis.yaml');
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

function waitForLine(child, regex, what) {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`trellisd did not print ${what} in time.\nstdout:\n${out}\nstderr:\n${err}`)), 30000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(regex);
      if (m) { clearTimeout(timer); resolve(m); }
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`trellisd exited with ${code}\nstdout:\n${out}\nstderr:\n${err}`)); });
  });
}

// Starts trellisd. Options: config (merged over BASE_CONFIG), dataDir (reuse one), args (extra flags), apiListen and
// adminListen (HOST:PORT; default 127.0.0.1 and a free port).
export async function startTrellis(options = {}) {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'trellis-it-'));
  const config = { ...BASE_CONFIG, ...(options.config ?? {}) };
  const configFile = writeConfig(dataDir, config);
  const child = spawn(trellisdPath, [
    '--config', configFile, '--data-dir', dataDir,
    '--api-listen', options.apiListen ?? '127.0.0.1:0', '--admin-listen', options.adminListen ?? '127.0.0.1:0',
    '--console-listen', options.consoleListen ?? '127.0.0.1:0',
    ...(options.args ?? []),
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const m = await waitForLine(child, /serving the VPC Lattice API at (http:\/\/\S+) [\s\S]*admin endpoint \(\/ready, \/metrics\) at (http:\/\/\S+)/, 'its endpoints');
  const endpoint = m[1];
  const admin = m[2];
  const credentials = { accessKeyId: ADMIN.accessKeyId, secretAccessKey: ADMIN.secretAccessKey };
  const client = new VPCLatticeClient({ endpoint, region: REGION, credentials, maxAttempts: 1 });
  let exited = null;
  const exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => { exited = { code, signal }; resolve(exited); }));
  return {
    child, client, endpoint, admin, credentials, dataDir, configFile,
    stderr: () => stderr,
    clientFor(creds) { return new VPCLatticeClient({ endpoint, region: REGION, credentials: creds, maxAttempts: 1 }); },
    // SIGTERM and wait; returns {code, signal}. Keeps the data dir unless cleanup is true.
    async stop({ cleanup = !options.dataDir, signal = 'SIGTERM' } = {}) {
      if (!exited) child.kill(signal);
      const result = await exitPromise;
      client.destroy();
      if (cleanup) rmSync(dataDir, { recursive: true, force: true });
      return result;
    },
  };
}

// Runs `fn` and returns the error it throws (fails if it does not throw).
export async function expectError(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

// Polls `fn` (sync or async) until it returns something truthy, which is returned.
export async function until(what, fn, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// A TCP port that was free a moment ago (for listener ports, which come from the API).
// A port for a listener the test's trellisd will open. A port found free and let go could be taken by a
// test running alongside (ctest -j2) before trellisd binds it, so each test process draws from a range of
// its own, below the kernel's ephemeral ports (32768 up), where bind(0) elsewhere never lands.
let nextPort = 20000 + (process.pid % 480) * 25;
function canListen(port, host) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}
export async function freePort(host = '127.0.0.1') {
  for (;;) {
    const port = nextPort++;
    if (await canListen(port, host)) return port;
  }
}

// An HTTP backend in this process that answers every request with JSON describing it:
// {backend, url, method, headers, bodyLength}. `seen` records each request. Clients in this process
// must be asynchronous (no spawnSync), or the backend cannot answer.
export function startEchoBackend(name = 'backend', host = '127.0.0.1', port = 0) {
  return new Promise((resolve, reject) => {
    const seen = [];
    const server = http.createServer((req, res) => {
      seen.push({ url: req.url, method: req.method, headers: req.headers });
      let bodyLength = 0;
      req.on('data', (d) => { bodyLength += d.length; });
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ backend: name, url: req.url, method: req.method, headers: req.headers, bodyLength }));
      });
    });
    server.on('error', reject);
    server.listen(port, host, () => resolve({
      name, server, seen, port: server.address().port,
      close() { server.close(); server.closeAllConnections(); },
    }));
  });
}
