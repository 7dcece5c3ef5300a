// HTTPS target groups end to end: a TLS target with a self-signed certificate (targets are not verified)
// behind target groups with protocolVersion HTTP2 and HTTP1, configured through the real AWS SDK and
// reached by curl over an HTTPS listener with --http2 and --http1.1; the protocol matrix between
// them; and HTTP/2 health checks over TLS (ALPN h2) as ListTargets reports them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  CreateServiceNetworkCommand, CreateServiceCommand, CreateTargetGroupCommand, RegisterTargetsCommand,
  CreateListenerCommand, CreateRuleCommand, CreateServiceNetworkServiceAssociationCommand,
  CreateServiceNetworkVpcAssociationCommand, ListTargetsCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, freePort, until } from './harness.mjs';

const CLIENT_IP = '127.0.1.10'; // inside vpc-0123456789abcdef0 of the harness config
const HEALTH_AGENT = 'Amazon-VPC-Lattice-HealthChecks';
const execFileAsync = promisify(execFile);
const work = mkdtempSync(path.join(tmpdir(), 'trellis-https-targets-'));
let t;
const ids = {};
const servers = [];

// Every request answered with JSON describing it; health checks are recorded apart.
function describe(name, seen) {
  return (req, res) => {
    let bodyLength = 0;
    req.on('data', (d) => { bodyLength += d.length; });
    req.on('end', () => {
      const entry = { backend: name, httpVersion: req.httpVersion, url: req.url, method: req.method,
        proto: req.headers['x-forwarded-proto'], userAgent: req.headers['user-agent'], bodyLength };
      seen.push(entry);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(entry));
    });
  };
}

function listen(server) {
  servers.push(server);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

async function curl(version, pathname, extra = []) {
  const url = `https://${ids.host}:${ids.port}${pathname}`;
  try {
    const { stdout } = await execFileAsync('curl', ['-s', '-S', version, '--interface', CLIENT_IP, '--cacert', ids.caFile,
      '--resolve', `${ids.host}:${ids.port}:127.0.0.1`, '-o', '-', '-w', '\n%{http_code} %{http_version}', ...extra, url],
    { encoding: 'utf8', timeout: 20000 });
    const lines = stdout.split('\n');
    const [status, httpVersion] = lines.pop().split(' ');
    return { status: Number(status), httpVersion, body: lines.join('\n') };
  } catch (e) {
    return { status: 0, error: e.stderr };
  }
}

async function targetGroup(name, protocolVersion, port, healthCheck) {
  const c = t.client;
  const tg = await c.send(new CreateTargetGroupCommand({ name, type: 'IP', config: { port, protocol: 'HTTPS',
    protocolVersion, vpcIdentifier: 'vpc-0123456789abcdef0', healthCheck } }));
  await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: '127.0.0.1' }] }));
  return tg.id;
}

async function targetStatus(tg) {
  const r = await t.client.send(new ListTargetsCommand({ targetGroupIdentifier: tg }));
  return r.items[0];
}

before(async () => {
  t = await startTrellis();
  const c = t.client;
  const key = path.join(work, 'target.key');
  const cert = path.join(work, 'target.pem');
  await execFileAsync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-subj', '/CN=target.internal', '-keyout', key, '-out', cert]);
  const tls = { key: readFileSync(key), cert: readFileSync(cert) };
  // One TLS target speaking HTTP/2 (ALPN h2) and HTTP/1.1 (no ALPN); one speaking HTTP/1.1 only.
  ids.seen = [];
  ids.legacySeen = [];
  const dual = await listen(http2.createSecureServer({ ...tls, allowHTTP1: true }, describe('dual', ids.seen)));
  const legacy = await listen(https.createServer(tls, describe('legacy', ids.legacySeen)));

  const svc = await c.send(new CreateServiceCommand({ name: 'https-targets' }));
  ids.svc = svc.id;
  ids.host = svc.dnsEntry.domainName;
  const check = (protocolVersion) => ({ enabled: true, protocol: 'HTTPS', protocolVersion, path: '/health',
    healthCheckIntervalSeconds: 5, healthyThresholdCount: 2, unhealthyThresholdCount: 2 });
  ids.tgH2 = await targetGroup('tls-h2', 'HTTP2', dual, check('HTTP2'));
  ids.tgH1 = await targetGroup('tls-h1', 'HTTP1', dual, check('HTTP1'));
  ids.tgLegacy = await targetGroup('tls-legacy-h2', 'HTTP2', legacy, check('HTTP2'));
  ids.port = await freePort();
  const listener = await c.send(new CreateListenerCommand({ serviceIdentifier: ids.svc, name: 'https', protocol: 'HTTPS',
    port: ids.port, defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: ids.tgH2 }] } } }));
  let priority = 1;
  for (const [prefix, tg] of [['/h1/', ids.tgH1], ['/legacy/', ids.tgLegacy]]) {
    await c.send(new CreateRuleCommand({ serviceIdentifier: ids.svc, listenerIdentifier: listener.id,
      name: `to-${tg}`, priority: priority++, match: { httpMatch: { pathMatch: { match: { prefix } } } },
      action: { forward: { targetGroups: [{ targetGroupIdentifier: tg }] } } }));
  }
  const sn = await c.send(new CreateServiceNetworkCommand({ name: 'https-targets-net' }));
  await c.send(new CreateServiceNetworkServiceAssociationCommand({ serviceIdentifier: ids.svc, serviceNetworkIdentifier: sn.id }));
  await c.send(new CreateServiceNetworkVpcAssociationCommand({ serviceNetworkIdentifier: sn.id, vpcIdentifier: 'vpc-0123456789abcdef0' }));
  const ca = await (await fetch(`${t.admin}/ca.pem`)).text();
  ids.caFile = path.join(work, 'ca.pem');
  writeFileSync(ids.caFile, ca);
  await until('the HTTPS listener to serve', async () => (await curl('--http2', '/ready')).status === 200);
});

after(async () => {
  await t?.stop();
  for (const s of servers) s.close();
  rmSync(work, { recursive: true, force: true });
});

test('HTTP/2 client to an HTTPS target group with protocolVersion HTTP2: HTTP/2 over TLS to the target', async () => {
  const r = await curl('--http2', '/h2/page?q=1');
  assert.equal(r.status, 200, r.error ?? r.body);
  assert.equal(r.httpVersion, '2');
  const seen = JSON.parse(r.body);
  assert.equal(seen.backend, 'dual');
  assert.equal(seen.httpVersion, '2.0');
  assert.equal(seen.url, '/h2/page?q=1');
  assert.equal(seen.proto, 'https');

  const post = await curl('--http2', '/h2/upload', ['-X', 'POST', '--data-binary', `@${ids.caFile}`]);
  assert.equal(post.status, 200);
  assert.equal(JSON.parse(post.body).bodyLength, readFileSync(ids.caFile).length);
});

test('HTTP/1.1 client to an HTTP2 target group is refused and never reaches the target', async () => {
  const before = ids.seen.filter((s) => s.url === '/h2/refused').length;
  const r = await curl('--http1.1', '/h2/refused');
  assert.equal(r.status, 400, r.error ?? r.body);
  assert.equal(r.httpVersion, '1.1');
  assert.equal(ids.seen.filter((s) => s.url === '/h2/refused').length, before);
});

test('HTTP/1.1 and HTTP/2 clients to an HTTPS target group with protocolVersion HTTP1: HTTP/1.1 over TLS', async () => {
  for (const version of ['--http1.1', '--http2']) {
    const r = await curl(version, '/h1/x');
    assert.equal(r.status, 200, r.error ?? r.body);
    assert.equal(r.httpVersion, version === '--http2' ? '2' : '1.1');
    const seen = JSON.parse(r.body);
    assert.equal(seen.httpVersion, '1.1');
    assert.equal(seen.url, '/h1/x');
    assert.equal(seen.proto, 'https');
  }
});

test('HTTP/2 health checks over TLS: healthy when the target answers over h2, unhealthy when it speaks only HTTP/1.1', async () => {
  await until('the HTTP2 target to be healthy', async () => {
    const s = await targetStatus(ids.tgH2);
    return s.status === 'HEALTHY';
  });
  const probes = ids.seen.filter((s) => s.userAgent === HEALTH_AGENT && s.url === '/health');
  assert.ok(probes.some((p) => p.httpVersion === '2.0'), 'an HTTP/2 health check reached the target');
  assert.ok(probes.some((p) => p.httpVersion === '1.1'), 'the HTTP1 target group checked it over HTTP/1.1');
  assert.equal((await targetStatus(ids.tgH1)).status, 'HEALTHY');

  const legacy = await until('the HTTP/1.1-only target to be unhealthy', async () => {
    const s = await targetStatus(ids.tgLegacy);
    return s.status === 'UNHEALTHY' && s;
  });
  assert.equal(legacy.reasonCode, 'Target.FailedHealthChecks');
  // The HTTP/2 preface is not an HTTP/1.1 request: the HTTP/1.1-only target never saw a check it could answer.
  assert.equal(ids.legacySeen.filter((s) => s.userAgent === HEALTH_AGENT).length, 0, 'no check was understood as HTTP');
});
