// LAMBDA and ALB target groups end to end: target groups made with the real AWS SDK, functions run by a
// Lambda-compatible server (lambda_server.mjs) that checks each Invoke call's SigV4 signature, and clients
// over HTTP, HTTPS and with IAM auth. Checks the V1 and V2 events field by field against the Lattice user
// guide (https://docs.aws.amazon.com/vpc-lattice/latest/ug/lambda-functions.html), the answers (text,
// binary, multi-value headers), what a failing, silent, oversized or malformed function gives the client,
// the access log and metrics, and an ALB target reached through the config's `albs:`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SignatureV4 } from '@smithy/signature-v4';
import { HttpRequest } from '@smithy/protocol-http';
import { Sha256 } from '@aws-crypto/sha256-js';
import {
  CreateServiceNetworkCommand, CreateServiceCommand, CreateTargetGroupCommand, RegisterTargetsCommand,
  CreateListenerCommand, CreateRuleCommand, CreateServiceNetworkServiceAssociationCommand,
  CreateServiceNetworkVpcAssociationCommand, CreateAccessLogSubscriptionCommand, PutAuthPolicyCommand,
  ListTargetsCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, startEchoBackend, freePort, until, ADMIN, ACCOUNT, REGION } from './harness.mjs';
import { startLambdaServer, RAW } from './lambda_server.mjs';

const CLIENT_IP = '127.0.1.10'; // inside vpc-0123456789abcdef0 of the harness config
const VPC = 'vpc-0123456789abcdef0';
const FN = (name) => `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${name}`;
const ALB_ARN = `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:loadbalancer/app/web/50dc6c495c0c9188`;
const LAMBDA_CREDENTIALS = { accessKeyId: 'AKIALAMBDAINVOKER001', secretAccessKey: 'lambda-invoker-secret-for-tests-000000' };
const execFileAsync = promisify(execFile);
const work = mkdtempSync(path.join(tmpdir(), 'trellis-lambda-'));
const ids = {};
let t, lambda, alb;

const BINARY = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const functions = {
  echo: async (event) => ({ statusCode: 200, headers: { 'content-type': 'application/json', 'x-fn': ['one', 'two'] },
    body: JSON.stringify(event), isBase64Encoded: false }),
  binary: async () => ({ statusCode: 200, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': '1' },
    body: BINARY.toString('base64'), isBase64Encoded: true }),
  teapot: async () => ({ statusCode: 418, headers: { 'set-cookie': ['a=1', 'b=2'], connection: 'close' } }),
  fail: async () => { throw new Error('the function broke'); },
  bad: async () => RAW('this is not JSON'),
  nostatus: async () => ({ body: 'no status code' }),
  injected: async () => ({ statusCode: 200, headers: { 'x-a': 'one\r\nx-injected: yes' }, body: 'x' }),
  sleep: async () => { await new Promise((r) => setTimeout(r, 5000)); return { statusCode: 200, body: 'late' }; },
  big: async () => ({ statusCode: 200, body: 'x'.repeat(6 * 1024 * 1024 + 10) }),
};

// One request from inside the VPC; `tls`: over the HTTPS listener, checked against trellisd's CA.
function request({ host = ids.host, port = ids.port, tls = false, method = 'GET', target = '/', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, localAddress: CLIENT_IP, method, path: target, agent: false,
      headers: { host: `${host}:${port}`, ...headers } };
    if (tls) Object.assign(options, { ca: ids.ca, servername: host });
    const req = (tls ? https : http).request(options, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        res.socket?.destroy(); // one request per connection, kept alive or not
        resolve({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function event(target, options = {}) {
  const r = await request({ target, ...options });
  assert.equal(r.status, 200, r.body.toString());
  return { response: r, event: JSON.parse(r.body.toString()), invocation: lambda.invocations.at(-1) };
}

async function lambdaGroup(name, functionArn, version) {
  const c = t.client;
  const tg = await c.send(new CreateTargetGroupCommand({ name, type: 'LAMBDA',
    config: version ? { lambdaEventStructureVersion: version } : undefined }));
  const registered = await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: functionArn }] }));
  assert.equal(registered.unsuccessful.length, 0, JSON.stringify(registered.unsuccessful));
  return tg;
}

function accessLog() {
  const file = path.join(t.dataDir, 'access-logs', 'cloudwatch', 'lambda-logs.jsonl');
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : [];
}

before(async () => {
  lambda = await startLambdaServer({ credentials: LAMBDA_CREDENTIALS, region: REGION, functions, prefix: '/lambda' });
  alb = await startEchoBackend('alb');
  t = await startTrellis({ config: {
    lambda: { endpoint: `http://localhost:${lambda.port}/lambda/`, ...LAMBDA_CREDENTIALS, timeoutSeconds: 2 },
    albs: [{ arn: ALB_ARN, vpcId: VPC, address: '127.0.0.1' }],
    quotas: { targetGroupsPerService: 20, rulesPerListener: 20 }, // a route per function
  } });
  const c = t.client;
  ids.tgV1 = await lambdaGroup('fn-v1', FN('echo'));
  ids.tgV2 = await lambdaGroup('fn-v2', `${FN('echo')}:live`, 'V2');
  const routes = [['/v2/', ids.tgV2]];
  for (const name of ['binary', 'teapot', 'fail', 'bad', 'nostatus', 'injected', 'sleep', 'big', 'missing']) {
    ids[name] = await lambdaGroup(`fn-${name}`, FN(name));
    routes.push([`/${name}`, ids[name]]);
  }
  const albGroup = await c.send(new CreateTargetGroupCommand({ name: 'to-alb', type: 'ALB',
    config: { port: alb.port, protocol: 'HTTP', vpcIdentifier: VPC } }));
  ids.tgAlb = albGroup;
  const registered = await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: albGroup.id, targets: [{ id: ALB_ARN }] }));
  assert.equal(registered.unsuccessful.length, 0, JSON.stringify(registered.unsuccessful));
  routes.push(['/alb/', albGroup]);

  const svc = await c.send(new CreateServiceCommand({ name: 'functions' }));
  ids.svc = svc;
  ids.host = svc.dnsEntry.domainName;
  ids.port = await freePort();
  const listener = await c.send(new CreateListenerCommand({ serviceIdentifier: svc.id, name: 'http', protocol: 'HTTP',
    port: ids.port, defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: ids.tgV1.id }] } } }));
  let priority = 1;
  for (const [prefix, tg] of routes) {
    await c.send(new CreateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.id, name: `route-${priority}`,
      priority: priority++, match: { httpMatch: { pathMatch: { match: { prefix } } } },
      action: { forward: { targetGroups: [{ targetGroupIdentifier: tg.id }] } } }));
  }
  await c.send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: svc.id,
    destinationArn: `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:lambda-logs` }));

  // A second service: HTTPS, IAM auth, to the V2 function.
  const secure = await c.send(new CreateServiceCommand({ name: 'secure-functions', authType: 'AWS_IAM' }));
  ids.secureHost = secure.dnsEntry.domainName;
  ids.securePort = await freePort();
  const secureGroup = await lambdaGroup('fn-secure', FN('echo'), 'V2'); // a target group serves one service
  await c.send(new CreateListenerCommand({ serviceIdentifier: secure.id, name: 'https', protocol: 'HTTPS',
    port: ids.securePort, defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: secureGroup.id }] } } }));
  await c.send(new PutAuthPolicyCommand({ resourceIdentifier: secure.id, policy: JSON.stringify({ Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { AWS: ADMIN.arn }, Action: 'vpc-lattice-svcs:Invoke', Resource: '*' }] }) }));

  const sn = await c.send(new CreateServiceNetworkCommand({ name: 'functions-net' }));
  ids.sn = sn;
  for (const s of [svc, secure]) {
    await c.send(new CreateServiceNetworkServiceAssociationCommand({ serviceIdentifier: s.id, serviceNetworkIdentifier: sn.id }));
  }
  await c.send(new CreateServiceNetworkVpcAssociationCommand({ serviceNetworkIdentifier: sn.id, vpcIdentifier: VPC }));
  ids.ca = await (await fetch(`${t.admin}/ca.pem`)).text();
  await until('the listener to serve', async () => (await request({ target: '/alb/ready' }).catch(() => ({}))).status === 200);
});

after(async () => {
  await t?.stop();
  lambda?.close();
  alb?.close();
  rmSync(work, { recursive: true, force: true });
});

test('V1 event: raw_path, method, joined repeated headers, last query value, body, is_base64_encoded', async () => {
  const body = JSON.stringify({ order: 7 });
  const { event: e, invocation, response } = await event('/orders/7?id=1&tag=a&tag=b%20c', { method: 'POST', body,
    headers: { 'content-type': 'application/json', 'x-multi': ['a', 'b'], 'user-agent': 'lambda-test' } });
  assert.equal(invocation.signatureProblem, null);
  assert.equal(invocation.name, 'echo');
  assert.equal(invocation.qualifier, null);
  assert.equal(invocation.path, '/lambda/2015-03-31/functions/echo/invocations');
  assert.deepEqual(Object.keys(e).sort(), ['body', 'headers', 'is_base64_encoded', 'method', 'query_string_parameters', 'raw_path']);
  assert.equal(e.raw_path, '/orders/7?id=1&tag=a&tag=b%20c');
  assert.equal(e.method, 'POST');
  assert.equal(e.headers['x-multi'], 'a, b');
  assert.equal(e.headers['user-agent'], 'lambda-test');
  assert.equal(e.headers['x-forwarded-for'], CLIENT_IP);
  assert.equal(e.headers.host, `${ids.host}:${ids.port}`);
  assert.deepEqual(e.query_string_parameters, { id: '1', tag: 'b c' });
  assert.equal(e.body, body);
  assert.equal(e.is_base64_encoded, false);
  // The function's answer: its headers, repeated ones too, and a length the proxy computed.
  assert.equal(response.headers['content-type'], 'application/json');
  assert.deepEqual(response.rawHeaders.filter((_, i, a) => i % 2 === 1 && a[i - 1].toLowerCase() === 'x-fn'), ['one', 'two']);
  assert.equal(Number(response.headers['content-length']), response.body.length);
});

test('V2 event: lists of values, the request context with the ARNs of the network, service and target group', async () => {
  const before = Date.now() * 1000;
  const { event: e, invocation } = await event('/v2/items?x=1&x=2&y=3', { headers: { 'x-multi': ['a', 'b'] } });
  assert.equal(invocation.signatureProblem, null);
  assert.equal(invocation.name, 'echo');
  assert.equal(invocation.qualifier, 'live'); // the alias of the registered ARN
  assert.equal(e.version, '2.0');
  assert.equal(e.path, '/v2/items?x=1&x=2&y=3');
  assert.equal(e.method, 'GET');
  assert.deepEqual(e.headers['x-multi'], ['a', 'b']);
  assert.deepEqual(e.headers['x-forwarded-for'], [CLIENT_IP]);
  assert.deepEqual(e.queryStringParameters, { x: ['1', '2'], y: ['3'] });
  assert.equal(e.body, '');
  assert.equal(e.isBase64Encoded, false);
  const ctx = e.requestContext;
  assert.equal(ctx.serviceNetworkArn, ids.sn.arn);
  assert.equal(ctx.serviceArn, ids.svc.arn);
  assert.equal(ctx.targetGroupArn, ids.tgV2.arn);
  assert.equal(ctx.region, REGION);
  assert.deepEqual(ctx.identity, { sourceVpcArn: `arn:aws:ec2:${REGION}:${ACCOUNT}:vpc/${VPC}` });
  assert.match(ctx.timeEpoch, /^\d{16}$/);
  assert.ok(Number(ctx.timeEpoch) >= before - 1e6 && Number(ctx.timeEpoch) <= Date.now() * 1000 + 1e6, ctx.timeEpoch);
});

test('HTTP/2 clients get the same event and answer', async () => {
  const { stdout } = await execFileAsync('curl', ['-s', '--http2-prior-knowledge', '--interface', CLIENT_IP,
    '-H', `host: ${ids.host}:${ids.port}`, '-H', 'content-type: text/plain', '--data-binary', 'over h2',
    '-w', '\n%{http_code} %{http_version}', `http://127.0.0.1:${ids.port}/v2/h2?q=1`], { timeout: 20000 });
  const lines = stdout.split('\n');
  assert.equal(lines.pop(), '200 2');
  const e = JSON.parse(lines.join('\n'));
  assert.equal(e.method, 'POST');
  assert.equal(e.path, '/v2/h2?q=1');
  assert.equal(e.body, 'over h2');
  assert.deepEqual(e.headers.host, [`${ids.host}:${ids.port}`]);
});

test('binary bodies: base64 to the function, and a base64 answer back as the bytes', async () => {
  const { event: e } = await event('/orders', { method: 'PUT', body: BINARY, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(e.is_base64_encoded, true);
  assert.deepEqual(Buffer.from(e.body, 'base64'), BINARY);
  const gz = await event('/orders', { method: 'POST', body: 'text', headers: { 'content-type': 'text/plain', 'content-encoding': 'gzip' } });
  assert.equal(gz.event.is_base64_encoded, true); // any Content-Encoding

  const r = await request({ target: '/binary' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/octet-stream');
  assert.equal(r.headers['content-length'], '256'); // the function's own Content-Length is not the length
  assert.deepEqual(r.body, BINARY);
});

test("a function's status and repeated headers reach the client; hop-by-hop fields do not", async () => {
  const r = await request({ target: '/teapot', headers: { connection: 'keep-alive' } });
  assert.equal(r.status, 418);
  assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
  assert.notEqual(r.headers.connection, 'close'); // the function's own Connection field is dropped
  assert.equal(r.body.length, 0);
});

test('a large request body goes whole; above 6 MB the client gets 413 and the function is not called', async () => {
  const big = Buffer.alloc(2 * 1024 * 1024, 'a');
  const ok = await event('/orders', { method: 'POST', body: big, headers: { 'content-type': 'text/plain', expect: '100-continue' } });
  assert.equal(ok.event.body.length, big.length);

  const file = path.join(work, 'seven-mb');
  writeFileSync(file, Buffer.alloc(7 * 1024 * 1024, 'b'));
  const calls = lambda.invocations.length;
  const { stdout } = await execFileAsync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--interface', CLIENT_IP,
    '-H', `host: ${ids.host}:${ids.port}`, '-H', 'content-type: text/plain', '--data-binary', `@${file}`,
    `http://127.0.0.1:${ids.port}/orders`], { timeout: 20000 });
  assert.equal(stdout, '413');
  assert.equal(lambda.invocations.length, calls);
});

test('function errors, bad answers, an unknown function and an answer above 6 MB are 502; a silent function 504', async () => {
  for (const [target, status] of [['/fail', 502], ['/bad', 502], ['/nostatus', 502], ['/injected', 502],
    ['/missing', 502], ['/big', 502]]) {
    const r = await request({ target });
    assert.equal(r.status, status, `${target}: ${r.body}`);
    assert.equal(r.headers['x-injected'], undefined);
  }
  const started = Date.now();
  const slow = await request({ target: '/sleep' });
  assert.equal(slow.status, 504);
  assert.ok(Date.now() - started < 4500, 'answered at the 2 s timeout, not when the function finished');
});

test('access log and metrics name the function as the target', async () => {
  await request({ target: '/fail' });
  await request({ target: '/orders/logged' });
  const entries = await until('the access log entries', () => {
    const all = accessLog();
    const ok = all.find((e) => e.requestPath === '/orders/logged');
    const failed = all.filter((e) => e.requestPath === '/fail');
    return ok && failed.length ? { ok, failed: failed.at(-1) } : null;
  });
  assert.equal(entries.ok.targetGroupArn, ids.tgV1.arn);
  assert.equal(entries.ok.targetIpPort, FN('echo'));
  assert.equal(entries.ok.responseCode, 200);
  assert.equal(entries.ok.failureReason, '-');
  assert.equal(entries.failed.responseCode, 502);
  assert.equal(entries.failed.failureReason, 'TargetProtocolError');
  const sleepy = accessLog().find((e) => e.requestPath === '/sleep');
  assert.equal(sleepy?.failureReason, 'TargetDataTimeout');

  // Lattice's target group metrics, for the function's group as for any other.
  const metrics = await (await fetch(`${t.admin}/metrics`)).text();
  const count = (name, tg) => Number(metrics.split('\n').find((l) => l.startsWith(`${name}{target_group="${tg}"`))?.split(' ').at(-1));
  assert.ok(count('TotalRequestCount', ids.tgV1.id) >= 5, metrics);
  assert.ok(count('HTTPCode_5XX_Count', ids.fail.id) >= 2);
});

test('HTTPS listener with IAM auth: the caller is in the V2 identity', async () => {
  const signer = new SignatureV4({ service: 'vpc-lattice-svcs', region: REGION, sha256: Sha256,
    credentials: { accessKeyId: ADMIN.accessKeyId, secretAccessKey: ADMIN.secretAccessKey } });
  const host = `${ids.secureHost}:${ids.securePort}`;
  const signed = await signer.sign(new HttpRequest({ method: 'GET', protocol: 'https:', hostname: ids.secureHost,
    port: ids.securePort, path: '/secure', headers: { host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } }));
  const r = await request({ host: ids.secureHost, port: ids.securePort, tls: true, target: '/secure', headers: signed.headers });
  assert.equal(r.status, 200, r.body.toString());
  const e = JSON.parse(r.body.toString());
  assert.equal(e.requestContext.identity.type, 'AWS_IAM');
  assert.equal(e.requestContext.identity.principal, ADMIN.arn);
  assert.equal(e.requestContext.identity.sourceVpcArn, `arn:aws:ec2:${REGION}:${ACCOUNT}:vpc/${VPC}`);
  assert.equal(e.headers['x-forwarded-for'][0], CLIENT_IP);
  const unsigned = await request({ host: ids.secureHost, port: ids.securePort, tls: true, target: '/secure' });
  assert.equal(unsigned.status, 403);
});

test('ALB targets: the config maps the ARN to an address, traffic goes there as to an IP target', async () => {
  const r = await request({ target: '/alb/page?q=1' });
  assert.equal(r.status, 200);
  const seen = JSON.parse(r.body.toString());
  assert.equal(seen.backend, 'alb');
  assert.equal(seen.url, '/alb/page?q=1');
  assert.equal(seen.headers['x-forwarded-for'], CLIENT_IP);
  assert.match(seen.headers['x-amzn-lattice-target'], new RegExp(`TargetGroupArn=${ids.tgAlb.arn}`));
  const targets = await t.client.send(new ListTargetsCommand({ targetGroupIdentifier: ids.tgAlb.id }));
  assert.equal(targets.items[0].id, ALB_ARN);
  assert.equal(targets.items[0].port, alb.port);
});

test('RegisterTargets refuses an ALB the config does not know and a function of another account', async () => {
  const c = t.client;
  const unknownAlb = await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: ids.tgAlb.id,
    targets: [{ id: `arn:aws:elasticloadbalancing:${REGION}:${ACCOUNT}:loadbalancer/app/other/0123456789abcdef` }] }));
  assert.equal(unknownAlb.unsuccessful[0]?.failureCode, 'InvalidTargetId');
  const tg = await c.send(new CreateTargetGroupCommand({ name: 'fn-elsewhere', type: 'LAMBDA' }));
  const foreign = await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id,
    targets: [{ id: `arn:aws:lambda:${REGION}:444455556666:function:echo` }] }));
  assert.equal(foreign.unsuccessful[0]?.failureCode, 'InvalidTargetId');
});
