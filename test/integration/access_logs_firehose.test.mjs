// Access logs to a Firehose delivery stream, configured through the real AWS SDK: the config maps the
// stream's name to an HTTP endpoint started here, which checks Firehose's HTTP endpoint delivery format
// (protocol 1.0) and answers as the spec asks; while it fails, records wait and none is lost. An HTTPS endpoint
// (certificate from a CA the openssl command line makes here) takes records when the config names the CA as its
// caFile, and gets none when the endpoint is checked against the system trust store instead.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  CreateServiceNetworkCommand, CreateServiceCommand, CreateTargetGroupCommand, RegisterTargetsCommand,
  CreateListenerCommand, CreateServiceNetworkServiceAssociationCommand, CreateServiceNetworkVpcAssociationCommand,
  CreateAccessLogSubscriptionCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, startEchoBackend, freePort, until, ACCOUNT, REGION } from './harness.mjs';

const CLIENT_IP = '127.0.1.10'; // inside vpc-0123456789abcdef0 of the harness config
const STREAM_ARN = `arn:aws:firehose:${REGION}:${ACCOUNT}:deliverystream/lattice-logs`;
const UNCONFIGURED_ARN = `arn:aws:firehose:${REGION}:${ACCOUNT}:deliverystream/nowhere`;
const TLS_ARN = `arn:aws:firehose:${REGION}:${ACCOUNT}:deliverystream/lattice-logs-tls`;
const UNTRUSTED_ARN = `arn:aws:firehose:${REGION}:${ACCOUNT}:deliverystream/lattice-logs-untrusted`;
const ACCESS_KEY = 'test-access-key-0001';

let t;
let backend;
let endpoint;
let tlsEndpoint;
let pkiDir;
const ids = {};

const execFileAsync = promisify(execFile);

// A throwaway CA and a certificate it signed for 127.0.0.1, made by the openssl command line.
async function makeCertificates() {
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-fh-pki-'));
  const file = (name) => path.join(dir, name);
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await execFileAsync('openssl', ['req', '-x509', ...key, '-days', '2', '-subj', '/CN=trellis-fh-test-ca',
    '-keyout', file('ca.key'), '-out', file('ca.pem')]);
  await execFileAsync('openssl', ['req', ...key, '-subj', '/CN=localhost', '-keyout', file('server.key'),
    '-out', file('server.csr')]);
  writeFileSync(file('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await execFileAsync('openssl', ['x509', '-req', '-days', '2', '-in', file('server.csr'), '-CA', file('ca.pem'),
    '-CAkey', file('ca.key'), '-CAcreateserial', '-extfile', file('server.ext'), '-out', file('server.pem')]);
  return dir;
}

// A Firehose HTTP endpoint: records every request; answers 500 while `failing`, else 200 with the
// request id echoed (the spec's success response).
// With `tls` ({key, cert}), it speaks HTTPS.
function startFirehoseEndpoint(tls) {
  return new Promise((resolve) => {
    const state = { failing: false, attempts: [], delivered: [], handshakeErrors: 0 };
    const handler = (req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        const attempt = { url: req.url, method: req.method, headers: req.headers, body: JSON.parse(body), failed: state.failing };
        state.attempts.push(attempt);
        res.setHeader('content-type', 'application/json');
        if (state.failing) {
          res.statusCode = 500;
          res.end(JSON.stringify({ requestId: attempt.body.requestId, timestamp: Date.now(), errorMessage: 'down for the test' }));
          return;
        }
        for (const record of attempt.body.records) state.delivered.push(JSON.parse(Buffer.from(record.data, 'base64').toString('utf8')));
        res.end(JSON.stringify({ requestId: attempt.body.requestId, timestamp: Date.now() }));
      });
    };
    const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
    server.on('tlsClientError', () => { state.handshakeErrors++; });
    server.listen(0, '127.0.0.1', () => resolve({ state, server, port: server.address().port,
      close() { server.close(); server.closeAllConnections(); } }));
  });
}

async function curl(pathname, service = ids) {
  const { stdout } = await execFileAsync('curl', ['-s', '--interface', CLIENT_IP, '-o', '/dev/null', '-w', '%{http_code}',
    '-H', `Host: ${service.host}`, `http://127.0.0.1:${service.port}${pathname}`], { encoding: 'utf8', timeout: 20000 });
  return Number(stdout);
}

async function metric(name, arn) {
  const text = await (await fetch(`${t.admin}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{destination="${arn}"}`));
  return line ? Number(line.split(' ').pop()) : null;
}

before(async () => {
  endpoint = await startFirehoseEndpoint();
  pkiDir = await makeCertificates();
  tlsEndpoint = await startFirehoseEndpoint({ key: readFileSync(path.join(pkiDir, 'server.key')),
    cert: readFileSync(path.join(pkiDir, 'server.pem')) });
  backend = await startEchoBackend('a');
  t = await startTrellis({ config: { accessLogs: { firehose: {
    'lattice-logs': { url: `http://127.0.0.1:${endpoint.port}/firehose/put`, accessKey: ACCESS_KEY },
    'lattice-logs-tls': { url: `https://127.0.0.1:${tlsEndpoint.port}/tls/put`, caFile: path.join(pkiDir, 'ca.pem') },
    // The same server, checked against the system trust store, which does not hold the test CA.
    'lattice-logs-untrusted': { url: `https://127.0.0.1:${tlsEndpoint.port}/untrusted/put` },
  } } } });
  const c = t.client;
  const sn = (await c.send(new CreateServiceNetworkCommand({ name: 'fh-net' }))).id;
  const svc = await c.send(new CreateServiceCommand({ name: 'fh-svc' }));
  Object.assign(ids, { sn, svc: svc.id, svcArn: svc.arn, host: svc.dnsEntry.domainName, port: await freePort() });
  const tg = (await c.send(new CreateTargetGroupCommand({ name: 'fh-tg', type: 'IP', config: { port: backend.port,
    protocol: 'HTTP', vpcIdentifier: 'vpc-0123456789abcdef0', healthCheck: { enabled: false } } }))).id;
  await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: tg, targets: [{ id: '127.0.0.1' }] }));
  await c.send(new CreateListenerCommand({ serviceIdentifier: ids.svc, name: 'fh-http', protocol: 'HTTP', port: ids.port,
    defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: tg }] } } }));
  await c.send(new CreateServiceNetworkServiceAssociationCommand({ serviceIdentifier: ids.svc, serviceNetworkIdentifier: sn }));
  await c.send(new CreateServiceNetworkVpcAssociationCommand({ serviceNetworkIdentifier: sn, vpcIdentifier: 'vpc-0123456789abcdef0' }));
  await until('the listener to serve', async () => (await curl('/warmup')) === 200);
});

after(async () => {
  await t?.stop();
  backend?.close();
  endpoint?.close();
  tlsEndpoint?.close();
  if (pkiDir) rmSync(pkiDir, { recursive: true, force: true });
});

test('records reach the delivery stream\'s endpoint in Firehose\'s HTTP endpoint format', async () => {
  const sub = await t.client.send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: ids.svc, destinationArn: STREAM_ARN }));
  assert.equal(sub.destinationArn, STREAM_ARN);
  await until('the subscription to apply', async () => {
    await curl('/probe');
    return endpoint.state.delivered.some((r) => r.requestPath === '/probe');
  });
  for (let i = 0; i < 5; i++) assert.equal(await curl(`/fh/${i}`), 200);
  await until('five records', () => endpoint.state.delivered.filter((r) => r.requestPath.startsWith('/fh/')).length >= 5);

  const attempt = endpoint.state.attempts.find((a) => a.body.records.length > 0 && !a.failed);
  assert.equal(attempt.method, 'POST');
  assert.equal(attempt.url, '/firehose/put');
  assert.equal(attempt.headers['content-type'], 'application/json');
  assert.equal(attempt.headers['x-amz-firehose-protocol-version'], '1.0');
  assert.equal(attempt.headers['x-amz-firehose-request-id'], attempt.body.requestId);
  assert.match(attempt.body.requestId, /^[0-9a-f-]{36}$/);
  assert.equal(attempt.headers['x-amz-firehose-source-arn'], STREAM_ARN);
  assert.equal(attempt.headers['x-amz-firehose-access-key'], ACCESS_KEY);
  assert.ok(Number.isInteger(attempt.body.timestamp) && Math.abs(attempt.body.timestamp - Date.now()) < 60000);

  // Each record's data is one access-log entry with Lattice's fields:
  // https://docs.aws.amazon.com/vpc-lattice/latest/ug/monitoring-access-logs.html
  const entry = endpoint.state.delivered.find((r) => r.requestPath === '/fh/3');
  assert.equal(entry.serviceArn, ids.svcArn);
  assert.equal(entry.requestMethod, 'GET');
  assert.equal(entry.responseCode, 200);
  assert.equal(entry.protocol, 'HTTP/1.1');
  assert.equal(entry.hostHeader, ids.host);
  assert.equal(entry.sourceVpcId, 'vpc-0123456789abcdef0');
  assert.match(entry.sourceIpPort, /^127\.0\.1\.10:\d+$/);
  assert.match(entry.targetIpPort, new RegExp(`^127\\.0\\.0\\.1:${backend.port}$`));
  assert.match(entry.startTime, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
  for (const field of ['targetGroupArn', 'duration', 'bytesSent', 'bytesReceived', 'requestId', 'failureReason'])
    assert.ok(field in entry, `missing ${field}`);
});

test('while the endpoint fails, records wait and are retried with the same request id; none is lost', async () => {
  endpoint.state.failing = true;
  const failedBefore = endpoint.state.attempts.filter((a) => a.failed).length;
  for (let i = 0; i < 20; i++) assert.equal(await curl(`/outage/${i}`), 200);
  // At least two failed attempts of one batch: the retry repeats its request id and records.
  const failed = await until('a retried batch', () => {
    const tries = endpoint.state.attempts.filter((a) => a.failed).slice(failedBefore);
    const byId = {};
    for (const a of tries) (byId[a.body.requestId] ??= []).push(a);
    return Object.values(byId).find((list) => list.length >= 2);
  });
  assert.deepEqual(failed[1].body, failed[0].body);
  assert.ok((await metric('trellis_access_log_firehose_failures_total', STREAM_ARN)) >= 2);
  assert.ok((await metric('trellis_access_log_firehose_backlog', STREAM_ARN)) > 0);
  assert.equal(endpoint.state.delivered.filter((r) => r.requestPath.startsWith('/outage/')).length, 0);

  endpoint.state.failing = false;
  const paths = await until('every record after the outage', () => {
    const seen = endpoint.state.delivered.filter((r) => r.requestPath.startsWith('/outage/')).map((r) => r.requestPath);
    return seen.length >= 20 && seen;
  }, 60000);
  assert.deepEqual([...new Set(paths)].sort(), Array.from({ length: 20 }, (_, i) => `/outage/${i}`).sort());
  assert.equal(paths.length, 20, 'each record delivered once');
  // The batch the endpoint finally took is the one it had refused, request id and all.
  const taken = endpoint.state.attempts.find((a) => !a.failed && a.body.requestId === failed[0].body.requestId);
  assert.ok(taken, 'the refused batch was delivered under its own request id');
  assert.equal(await metric('trellis_access_log_firehose_records_dropped_total', STREAM_ARN), 0);
});

test('a delivery stream missing from the config: the API accepts the subscription, its records are dropped and counted', async () => {
  const sub = await t.client.send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: ids.sn, destinationArn: UNCONFIGURED_ARN }));
  assert.equal(sub.destinationArn, UNCONFIGURED_ARN);
  await until('the unconfigured stream to count drops', async () => {
    await curl('/dropped');
    return (await metric('trellis_access_log_firehose_records_dropped_total', UNCONFIGURED_ARN)) > 0;
  });
  assert.match(t.stderr(), /no endpoint for arn:aws:firehose:[^ ]+deliverystream\/nowhere in the config/);
  // The configured stream keeps delivering the same requests.
  await until('the configured stream to get /dropped', () => endpoint.state.delivered.some((r) => r.requestPath === '/dropped'));
});

// Another service in the network, on its own port, answering 200 itself: a resource has one subscription per
// destination type, so each further Firehose stream needs its own service.
async function addService(name) {
  const c = t.client;
  const svc = await c.send(new CreateServiceCommand({ name }));
  const service = { id: svc.id, arn: svc.arn, host: svc.dnsEntry.domainName, port: await freePort() };
  await c.send(new CreateListenerCommand({ serviceIdentifier: service.id, name: `${name}-http`, protocol: 'HTTP',
    port: service.port, defaultAction: { fixedResponse: { statusCode: 200 } } }));
  await c.send(new CreateServiceNetworkServiceAssociationCommand({ serviceIdentifier: service.id, serviceNetworkIdentifier: ids.sn }));
  await until(`${name} to serve`, async () => (await curl('/warmup', service)) === 200);
  return service;
}

test('an https endpoint whose certificate chains to the configured caFile receives records; against the system store, none', async () => {
  const trusted = await addService('fh-tls-svc');
  const untrusted = await addService('fh-untrusted-svc');
  await t.client.send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: trusted.id, destinationArn: TLS_ARN }));
  await t.client.send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: untrusted.id, destinationArn: UNTRUSTED_ARN }));
  await until('records over https', async () => {
    await curl('/tls-probe', trusted);
    return tlsEndpoint.state.delivered.some((r) => r.requestPath === '/tls-probe');
  });
  const attempt = tlsEndpoint.state.attempts.find((a) => a.body.records.length > 0);
  assert.equal(attempt.url, '/tls/put');
  assert.equal(attempt.headers['x-amz-firehose-source-arn'], TLS_ARN);
  const entry = tlsEndpoint.state.delivered.find((r) => r.requestPath === '/tls-probe');
  assert.equal(entry.serviceArn, trusted.arn);
  assert.ok((await metric('trellis_access_log_firehose_records_delivered_total', TLS_ARN)) > 0);

  // The untrusted stream never gets past the handshake: it fails, is retried, and says why.
  await until('the untrusted stream to fail', async () => {
    await curl('/untrusted-probe', untrusted);
    return (await metric('trellis_access_log_firehose_failures_total', UNTRUSTED_ARN)) > 0;
  });
  assert.match(t.stderr(), /delivery to arn:aws:firehose:[^ ]+deliverystream\/lattice-logs-untrusted failed, retrying: TLS handshake with https:\/\/127\.0\.0\.1:\d+ failed: certificate verify failed/);
  assert.ok(tlsEndpoint.state.handshakeErrors > 0);
  assert.ok(!tlsEndpoint.state.attempts.some((a) => a.url === '/untrusted/put'), 'no request passed an unverified handshake');
  assert.equal(await metric('trellis_access_log_firehose_records_delivered_total', UNTRUSTED_ARN), 0);
});
