// gRPC through trellisd with the npm gRPC client and server (@grpc/grpc-js, @grpc/proto-loader): target groups
// with protocolVersion GRPC configured through the real AWS SDK, reached over an HTTP listener (h2c with prior
// knowledge) and an HTTPS listener (ALPN h2, trusting Trellis's exported CA), one of them with TLS to its
// target. All four call kinds, deadlines, status codes, initial and trailing metadata, routing by
// /package.Service/Method and the access log's grpcResponseCode.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import {
  CreateServiceNetworkCommand, CreateServiceCommand, CreateTargetGroupCommand, RegisterTargetsCommand,
  CreateListenerCommand, CreateRuleCommand, CreateServiceNetworkServiceAssociationCommand,
  CreateServiceNetworkVpcAssociationCommand, CreateAccessLogSubscriptionCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, freePort, until, BASE_CONFIG, ACCOUNT, REGION } from './harness.mjs';

// grpc-js cannot pick its source address, so the client's VPC is the one holding 127.0.0.1.
const CLIENT_VPC = 'vpc-0123456789abcdef9';
const PROTO = `
syntax = "proto3";
package trellis.echo;
message Msg { string text = 1; int32 count = 2; }
service Echo {
  rpc Unary (Msg) returns (Msg);
  rpc ServerStream (Msg) returns (stream Msg);
  rpc ClientStream (stream Msg) returns (Msg);
  rpc Bidi (stream Msg) returns (stream Msg);
  rpc Slow (Msg) returns (Msg);
  rpc Fail (Msg) returns (Msg);
  rpc FailMidStream (Msg) returns (stream Msg);
}
service Other { rpc Unary (Msg) returns (Msg); }
`;

const work = mkdtempSync(path.join(tmpdir(), 'trellis-grpc-'));
writeFileSync(path.join(work, 'echo.proto'), PROTO);
const proto = grpc.loadPackageDefinition(protoLoader.loadSync(path.join(work, 'echo.proto'))).trellis.echo;

let t;
const servers = [];
const ids = {};

// A gRPC server whose replies name it, so a test can tell which target group a call reached.
async function startServer(name, credentials = grpc.ServerCredentials.createInsecure()) {
  const server = new grpc.Server();
  server.addService(proto.Echo.service, {
    Unary(call, callback) {
      const initial = new grpc.Metadata();
      initial.set('x-initial', `from-${name}`);
      call.sendMetadata(initial);
      const trailer = new grpc.Metadata();
      trailer.set('x-trailer', call.metadata.get('x-request')[0] ?? 'none');
      trailer.set('x-blob-bin', Buffer.from([0, 1, 2, 255]));
      callback(null, { text: `${name}:${call.request.text}` }, trailer);
    },
    ServerStream(call) {
      for (let i = 0; i < call.request.count; i++) call.write({ text: `${name}:${call.request.text}:${i}`, count: i });
      call.end();
    },
    ClientStream(call, callback) {
      const texts = [];
      call.on('data', (m) => texts.push(m.text));
      call.on('end', () => callback(null, { text: `${name}:${texts.join(',')}`, count: texts.length }));
    },
    Bidi(call) {
      call.on('data', (m) => call.write({ text: `${name}:${m.text.toUpperCase()}` }));
      call.on('end', () => call.end());
    },
    Slow(call, callback) {
      setTimeout(() => callback(null, { text: `${name}:late` }), 3000);
    },
    Fail(call, callback) {
      const trailer = new grpc.Metadata();
      trailer.set('x-retry-after', '7');
      callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'quota gone: 100% used', metadata: trailer });
    },
    FailMidStream(call) {
      call.write({ text: `${name}:first` });
      const trailer = new grpc.Metadata();
      trailer.set('x-where', 'mid-stream');
      call.emit('error', { code: grpc.status.NOT_FOUND, details: 'no more', metadata: trailer });
    },
  });
  server.addService(proto.Other.service, {
    Unary(call, callback) { callback(null, { text: `${name}:other:${call.request.text}` }); },
  });
  const port = await new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p)));
  });
  servers.push(server);
  return { name, port };
}

const execFileAsync = promisify(execFile);
async function selfSigned(name) {
  const key = path.join(work, `${name}.key`);
  const cert = path.join(work, `${name}.pem`);
  await execFileAsync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`,
    '-keyout', key, '-out', cert]);
  return { key: readFileSync(key), cert: readFileSync(cert) };
}

async function createGrpcGroup(name, protocol, port) {
  const c = t.client;
  const tg = await c.send(new CreateTargetGroupCommand({ name, type: 'IP',
    config: { port, protocol, protocolVersion: 'GRPC', vpcIdentifier: 'vpc-0123456789abcdef0' } }));
  await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: '127.0.0.1' }] }));
  return tg.id;
}

async function createListener(name, protocol, defaultGroup) {
  const c = t.client;
  const port = await freePort();
  const listener = await c.send(new CreateListenerCommand({ serviceIdentifier: ids.svc, name, protocol, port,
    defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: defaultGroup }] } } }));
  await c.send(new CreateRuleCommand({ serviceIdentifier: ids.svc, listenerIdentifier: listener.id, name: `${name}-other`,
    priority: 1, match: { httpMatch: { method: 'POST', pathMatch: { match: { prefix: '/trellis.echo.Other/' } } } },
    action: { forward: { targetGroups: [{ targetGroupIdentifier: ids.tgOther }] } } }));
  return port;
}

before(async () => {
  t = await startTrellis({ config: { vpcs: [...BASE_CONFIG.vpcs, { id: CLIENT_VPC, cidrs: ['127.0.0.1/32'] }] } });
  const c = t.client;
  const plain = await startServer('plain');
  const other = await startServer('other');
  const tlsCert = await selfSigned('grpc-target.internal'); // self-signed: targets are not verified
  const secure = await startServer('secure', grpc.ServerCredentials.createSsl(null,
    [{ private_key: tlsCert.key, cert_chain: tlsCert.cert }], false));

  ids.sn = (await c.send(new CreateServiceNetworkCommand({ name: 'grpc-net' }))).id;
  const svc = await c.send(new CreateServiceCommand({ name: 'grpc-svc' }));
  ids.svc = svc.id;
  ids.host = svc.dnsEntry.domainName;
  ids.tgPlain = await createGrpcGroup('grpc-plain', 'HTTP', plain.port);
  ids.tgOther = await createGrpcGroup('grpc-other', 'HTTP', other.port);
  ids.tgSecure = await createGrpcGroup('grpc-secure', 'HTTPS', secure.port);
  ids.h2cPort = await createListener('grpc-h2c', 'HTTP', ids.tgPlain);
  ids.tlsPort = await createListener('grpc-tls', 'HTTPS', ids.tgSecure);
  await c.send(new CreateServiceNetworkServiceAssociationCommand({ serviceIdentifier: ids.svc, serviceNetworkIdentifier: ids.sn }));
  await c.send(new CreateServiceNetworkVpcAssociationCommand({ serviceNetworkIdentifier: ids.sn, vpcIdentifier: CLIENT_VPC }));
  await c.send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: ids.svc,
    destinationArn: `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:grpc-logs` }));

  const ca = await until('the CA', async () => {
    const r = await fetch(`${t.admin}/ca.pem`);
    return r.ok && Buffer.from(await r.arrayBuffer());
  });
  // Both listeners carry the service's generated name: as :authority over h2c, as SNI over TLS.
  const h2c = { credentials: grpc.credentials.createInsecure(), port: ids.h2cPort, options: {} };
  const tls = { credentials: grpc.credentials.createSsl(ca), port: ids.tlsPort,
    options: { 'grpc.ssl_target_name_override': ids.host } };
  for (const [name, l] of Object.entries({ h2c, tls })) {
    const options = { 'grpc.default_authority': ids.host, ...l.options };
    ids[name] = {
      echo: new proto.Echo(`127.0.0.1:${l.port}`, l.credentials, options),
      other: new proto.Other(`127.0.0.1:${l.port}`, l.credentials, options),
    };
  }
  ids.h2c.backend = 'plain';
  ids.tls.backend = 'secure';
  // Listeners open asynchronously after the API call returns.
  for (const name of ['h2c', 'tls']) {
    await until(`the ${name} listener to serve`, () => unary(ids[name].echo, { text: 'ping' }).then(() => true, () => false));
  }
});

after(async () => {
  for (const name of ['h2c', 'tls']) {
    ids[name]?.echo.close();
    ids[name]?.other.close();
  }
  for (const s of servers) s.forceShutdown();
  await t?.stop();
  rmSync(work, { recursive: true, force: true });
});

// A unary call: resolves {response, metadata (initial), status (with trailers)}, rejects with the gRPC error.
function unary(client, request, { method = 'Unary', metadata = new grpc.Metadata(), deadlineMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const result = {};
    const call = client[method](request, metadata, { deadline: Date.now() + deadlineMs }, (err, response) => {
      if (err) reject(err);
      else result.response = response;
    });
    call.on('metadata', (m) => { result.metadata = m; });
    call.on('status', (s) => { if (s.code === grpc.status.OK) resolve({ ...result, status: s }); });
  });
}

// Reads a response stream to its end: {messages, status}; an error status rejects with the messages so far.
function collect(call) {
  return new Promise((resolve, reject) => {
    const messages = [];
    call.on('data', (m) => messages.push(m));
    call.on('error', (err) => { err.messages = messages; reject(err); });
    call.on('status', (s) => { if (s.code === grpc.status.OK) resolve({ messages, status: s }); });
  });
}

for (const listener of ['h2c', 'tls']) {
  test(`${listener}: unary call with request, initial and trailing metadata`, async () => {
    const { echo } = ids[listener];
    const md = new grpc.Metadata();
    md.set('x-request', 'req-42');
    const r = await unary(echo, { text: 'hello' }, { metadata: md });
    assert.equal(r.response.text, `${ids[listener].backend}:hello`);
    assert.deepEqual(r.metadata.get('x-initial'), [`from-${ids[listener].backend}`]);
    assert.deepEqual(r.status.metadata.get('x-trailer'), ['req-42']);
    assert.deepEqual(r.status.metadata.get('x-blob-bin'), [Buffer.from([0, 1, 2, 255])]);
  });

  test(`${listener}: server streaming delivers every message, then the status`, async () => {
    const r = await collect(ids[listener].echo.ServerStream({ text: 's', count: 50 }));
    assert.equal(r.messages.length, 50);
    assert.equal(r.messages[49].text, `${ids[listener].backend}:s:49`);
    assert.equal(r.status.code, grpc.status.OK);
  });

  test(`${listener}: client streaming`, async () => {
    const response = await new Promise((resolve, reject) => {
      const call = ids[listener].echo.ClientStream((err, m) => (err ? reject(err) : resolve(m)));
      for (let i = 0; i < 20; i++) call.write({ text: `m${i}` });
      call.end();
    });
    assert.equal(response.count, 20);
    assert.equal(response.text, `${ids[listener].backend}:${Array.from({ length: 20 }, (_, i) => `m${i}`).join(',')}`);
  });

  test(`${listener}: bidirectional streaming answers each message before the client ends`, async () => {
    const call = ids[listener].echo.Bidi();
    const replies = [];
    // Ping-pong: the next message goes only after the reply to the previous one came back through Trellis.
    await new Promise((resolve, reject) => {
      call.on('error', reject);
      call.on('data', (m) => {
        replies.push(m.text);
        if (replies.length < 5) call.write({ text: `ping${replies.length}` });
        else call.end();
      });
      call.on('status', (s) => (s.code === grpc.status.OK ? resolve() : reject(new Error(s.details))));
      call.write({ text: 'ping0' });
    });
    assert.deepEqual(replies, [0, 1, 2, 3, 4].map((i) => `${ids[listener].backend}:PING${i}`));
  });

  test(`${listener}: a short deadline on a slow method ends in DEADLINE_EXCEEDED, and the channel keeps working`, async () => {
    const started = Date.now();
    const err = await unary(ids[listener].echo, { text: 'x' }, { method: 'Slow', deadlineMs: 500 }).then(
      () => assert.fail('the slow call succeeded'), (e) => e);
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - started < 2500, 'the deadline ended the call, not the server');
    const r = await unary(ids[listener].echo, { text: 'after' });
    assert.equal(r.response.text, `${ids[listener].backend}:after`);
  });

  test(`${listener}: non-OK status codes, messages and trailing metadata reach the client unchanged`, async () => {
    const err = await unary(ids[listener].echo, {}, { method: 'Fail' }).then(() => assert.fail('Fail succeeded'), (e) => e);
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(err.details, 'quota gone: 100% used');
    assert.deepEqual(err.metadata.get('x-retry-after'), ['7']);

    const mid = await collect(ids[listener].echo.FailMidStream({})).then(() => assert.fail('succeeded'), (e) => e);
    assert.equal(mid.code, grpc.status.NOT_FOUND);
    assert.equal(mid.details, 'no more');
    assert.deepEqual(mid.metadata.get('x-where'), ['mid-stream']);
    assert.deepEqual(mid.messages.map((m) => m.text), [`${ids[listener].backend}:first`]);
  });

  test(`${listener}: a rule on the /package.Service/ path routes to its own target group`, async () => {
    const r = await unary(ids[listener].other, { text: 'routed' });
    assert.equal(r.response.text, 'other:other:routed');
  });
}

test('the access log records each call with its grpcResponseCode', async () => {
  const dir = path.join(t.dataDir, 'access-logs', 'cloudwatch');
  const entries = await until('access log lines for the failed calls', () => {
    if (!existsSync(dir)) return null;
    const file = readdirSync(dir).find((f) => f.startsWith('grpc-logs'));
    if (!file) return null;
    const lines = readFileSync(path.join(dir, file), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    return lines.filter((l) => l.requestPath === '/trellis.echo.Echo/Fail').length >= 2 && lines;
  });
  const fail = entries.filter((l) => l.requestPath === '/trellis.echo.Echo/Fail');
  assert.deepEqual(fail.map((l) => l.grpcResponseCode), [8, 8]);
  assert.deepEqual(fail.map((l) => l.responseCode), [200, 200]);
  assert.deepEqual(fail.map((l) => l.targetGroupArn).sort(),
    [ids.tgPlain, ids.tgSecure].map((id) => `arn:aws:vpc-lattice:${REGION}:${ACCOUNT}:targetgroup/${id}`).sort());
  const midStream = entries.find((l) => l.requestPath === '/trellis.echo.Echo/FailMidStream');
  assert.equal(midStream.grpcResponseCode, 5);
  const ok = entries.find((l) => l.requestPath === '/trellis.echo.Echo/ServerStream');
  assert.equal(ok.grpcResponseCode, 0);
  const routed = entries.find((l) => l.requestPath === '/trellis.echo.Other/Unary');
  assert.equal(routed.targetGroupArn, `arn:aws:vpc-lattice:${REGION}:${ACCOUNT}:targetgroup/${ids.tgOther}`);
});
