// Auth on the data plane (docs/architecture.md) configured through the real AWS SDK, with data-plane requests
// signed by the real signers Lattice callers use: @smithy/signature-v4 (the JS SDK's) and botocore's SigV4Auth.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  CreateServiceNetworkCommand, CreateServiceCommand, CreateTargetGroupCommand, RegisterTargetsCommand,
  CreateListenerCommand, CreateServiceNetworkServiceAssociationCommand, CreateServiceNetworkVpcAssociationCommand,
  PutAuthPolicyCommand, DeleteAuthPolicyCommand, UpdateServiceCommand, UpdateServiceNetworkCommand,
  TagResourceCommand,
} from '@aws-sdk/client-vpc-lattice';
import { SignatureV4 } from '@smithy/signature-v4';
import { HttpRequest } from '@smithy/protocol-http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { startTrellis, startEchoBackend, freePort, until, ACCOUNT, REGION, ADMIN } from './harness.mjs';

const CLIENT_IP = '127.0.1.10'; // inside vpc-0123456789abcdef0 (127.0.1.0/24), associated with the network below
const ALICE = {
  arn: `arn:aws:iam::${ACCOUNT}:role/alice`,
  accessKeyId: 'AKIAEXAMPLEALICE0001',
  secretAccessKey: 'alice-secret-key-for-tests-only-00000000',
  tags: { team: 'blue' },
  orgId: 'o-abcdefghij',
};
const BOB = {
  arn: `arn:aws:iam::${ACCOUNT}:role/bob`,
  accessKeyId: 'AKIAEXAMPLEBOB000001',
  secretAccessKey: 'bob-secret-key-for-tests-only-0000000000',
};
let t;
let backend;
const ids = {};



// Sends one request from CLIENT_IP to the proxy; `headers` as given (a Host header naming the service).
function send({ method = 'GET', path = '/', headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: ids.port, localAddress: CLIENT_IP, method, path, headers,
      agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function hostHeader() { return `${ids.host}:${ids.port}`; }

// What the JS SDK does for Lattice: the wire path, UNSIGNED-PAYLOAD.
async function smithySigned(creds, { method = 'GET', path = '/', query, headers = {}, body, payload = 'UNSIGNED-PAYLOAD' } = {}) {
  const signer = new SignatureV4({ service: 'vpc-lattice-svcs', region: REGION, sha256: Sha256,
    credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey } });
  const h = { host: hostHeader(), ...headers };
  if (payload) h['x-amz-content-sha256'] = payload;
  const signed = await signer.sign(new HttpRequest({ method, protocol: 'http:', hostname: ids.host, port: ids.port,
    path, query, headers: h, body }));
  const qs = query ? '?' + new URLSearchParams(query).toString() : '';
  return { method, path: path + qs, headers: signed.headers, body };
}

// botocore's SigV4Auth in the pyenv Python, run asynchronously so the in-process backend keeps answering.
const execFileAsync = promisify(execFile);
async function botocoreSigned(creds, { method = 'GET', path = '/', headers = {} } = {}) {
  const script = `
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
a = json.loads(sys.argv[1])
request = AWSRequest(method=a['method'], url=a['url'], headers=a['headers'])
SigV4Auth(Credentials(a['key'], a['secret']), 'vpc-lattice-svcs', a['region']).add_auth(request)
print(json.dumps(dict(request.headers.items())))
`;
  const args = { method, url: `http://${hostHeader()}${path}`, region: REGION, key: creds.accessKeyId,
    secret: creds.secretAccessKey, headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...headers } };
  const { stdout } = await execFileAsync('python3', ['-c', script, JSON.stringify(args)], { encoding: 'utf8', timeout: 30000 });
  return { method, path, headers: { host: hostHeader(), ...JSON.parse(stdout) } };
}


const allow = (principal, extra = {}) => ({ Effect: 'Allow', Principal: principal, Action: 'vpc-lattice-svcs:Invoke', Resource: '*', ...extra });
const policyOf = (...statements) => JSON.stringify({ Version: '2012-10-17', Statement: statements });
const deniedBody = (user, path, why) =>
  `AccessDeniedException: User: ${user} is not authorized to perform: vpc-lattice-svcs:Invoke on resource: ${ids.svcArn}${path} ${why}`;

before(async () => {
  t = await startTrellis({ config: { identities: [ADMIN, ALICE, BOB] } });
  const c = t.client;
  backend = await startEchoBackend();
  ids.sn = (await c.send(new CreateServiceNetworkCommand({ name: 'auth-net' }))).id;
  const svc = await c.send(new CreateServiceCommand({ name: 'auth-svc' }));
  ids.svc = svc.id;
  ids.svcArn = svc.arn;
  ids.host = svc.dnsEntry.domainName;
  const tg = await c.send(new CreateTargetGroupCommand({ name: 'auth-tg', type: 'IP',
    config: { port: backend.port, protocol: 'HTTP', vpcIdentifier: 'vpc-0123456789abcdef0', healthCheck: { enabled: false } } }));
  await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: '127.0.0.1' }] }));
  ids.port = await freePort();
  await c.send(new CreateListenerCommand({ serviceIdentifier: ids.svc, name: 'auth-http', protocol: 'HTTP', port: ids.port,
    defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: tg.id }] } } }));
  await c.send(new CreateServiceNetworkServiceAssociationCommand({ serviceIdentifier: ids.svc, serviceNetworkIdentifier: ids.sn }));
  await c.send(new CreateServiceNetworkVpcAssociationCommand({ serviceNetworkIdentifier: ids.sn, vpcIdentifier: 'vpc-0123456789abcdef0' }));
  await until('the service to answer', async () => {
    try { return (await send({ headers: { host: hostHeader() } })).status === 200; } catch { return false; }
  });
});

after(async () => {
  await t?.stop();
  backend?.server.close();
});

test('AWS_IAM with a policy allowing one role: unsigned 403, that role 200 with identity headers, another 403', async () => {
  await t.client.send(new PutAuthPolicyCommand({ resourceIdentifier: ids.svc, policy: policyOf(allow({ AWS: ALICE.arn })) }));
  await t.client.send(new UpdateServiceCommand({ serviceIdentifier: ids.svc, authType: 'AWS_IAM' }));
  const anonymous = await until('auth to apply', async () => {
    const r = await send({ path: '/rates', headers: { host: hostHeader() } });
    return r.status === 403 && r;
  });
  assert.equal(anonymous.body, deniedBody('anonymous', '/rates',
    'because no service-based policy allows the vpc-lattice-svcs:Invoke action'));

  const r = await send(await smithySigned(ALICE, { path: '/rates', query: { day: 'mon' } }));
  assert.equal(r.status, 200, r.body);
  const seen = JSON.parse(r.body);
  assert.equal(seen.url, '/rates?day=mon');
  assert.equal(seen.headers['x-amzn-lattice-identity'],
    `Principal=${ALICE.arn}; PrincipalOrgID=${ALICE.orgId}; SessionName=; Type=AWS_IAM`);
  assert.equal(seen.headers['x-amzn-lattice-identity-tags'], `principal=${ALICE.arn};principalorgid=${ALICE.orgId};team=blue`);

  // botocore signs the same request its own way; it verifies too.
  const boto = await send(await botocoreSigned(ALICE, { path: '/rates' }));
  assert.equal(boto.status, 200, boto.body);
  assert.equal(JSON.parse(boto.body).headers['x-amzn-lattice-identity'].split(';')[0], `Principal=${ALICE.arn}`);

  const bob = await send(await smithySigned(BOB, { path: '/rates' }));
  assert.equal(bob.status, 403);
  assert.equal(bob.body, deniedBody(BOB.arn, '/rates', 'because no service-based policy allows the vpc-lattice-svcs:Invoke action'));
  assert.equal((await send(await botocoreSigned(BOB, { path: '/rates' }))).status, 403);
});

test('bad signatures, payload signing and forged identity headers never get through', async () => {
  await t.client.send(new PutAuthPolicyCommand({ resourceIdentifier: ids.svc, policy: policyOf(allow('*')) }));
  await t.client.send(new UpdateServiceCommand({ serviceIdentifier: ids.svc, authType: 'AWS_IAM' }));
  await until('the open policy', async () => (await send({ headers: { host: hostHeader() } })).status === 200);

  // Anonymous callers may come in now, but a request that fails its signature is not anonymous.
  const tampered = await smithySigned(ALICE, { path: '/a' });
  tampered.path = '/b';
  const r = await send(tampered);
  assert.equal(r.status, 403);
  assert.match(r.body, /^InvalidSignatureException: /);
  assert.equal((await send(await smithySigned({ ...ALICE, secretAccessKey: 'wrong' }))).status, 403);
  // The body's hash instead of UNSIGNED-PAYLOAD.
  const body = JSON.stringify({ amount: 5 });
  const hashed = await smithySigned(ALICE, { method: 'POST', body, payload: null });
  const refused = await send(hashed);
  assert.equal(refused.status, 403);
  assert.match(refused.body, /UNSIGNED-PAYLOAD/);
  // UNSIGNED-PAYLOAD with a body streams to the target.
  const streamed = await send(await smithySigned(ALICE, { method: 'POST', body }));
  assert.equal(streamed.status, 200, streamed.body);
  assert.equal(JSON.parse(streamed.body).bodyLength, body.length);

  const forged = { 'x-amzn-lattice-identity': `Principal=${ADMIN.arn}; Type=AWS_IAM`, 'x-amzn-lattice-identity-tags': 'team=root' };
  const anonymous = JSON.parse((await send({ headers: { host: hostHeader(), ...forged } })).body);
  assert.equal(anonymous.headers['x-amzn-lattice-identity'], undefined);
  assert.equal(anonymous.headers['x-amzn-lattice-identity-tags'], undefined);
  const signed = await smithySigned(BOB);
  const asBob = JSON.parse((await send({ ...signed, headers: { ...signed.headers, ...forged } })).body);
  assert.equal(asBob.headers['x-amzn-lattice-identity'], `Principal=${BOB.arn}; PrincipalOrgID=; SessionName=; Type=AWS_IAM`);
});

test('a network-level explicit Deny beats a service-level Allow', async () => {
  await t.client.send(new PutAuthPolicyCommand({ resourceIdentifier: ids.svc, policy: policyOf(allow({ AWS: [ALICE.arn, BOB.arn] })) }));
  await t.client.send(new PutAuthPolicyCommand({ resourceIdentifier: ids.sn,
    policy: policyOf(allow('*'), { Effect: 'Deny', Principal: { AWS: ALICE.arn }, Action: 'vpc-lattice-svcs:Invoke', Resource: '*/admin/*' }) }));
  await t.client.send(new UpdateServiceNetworkCommand({ serviceNetworkIdentifier: ids.sn, authType: 'AWS_IAM' }));
  const denied = await until('the network policy', async () => {
    const r = await send(await smithySigned(ALICE, { path: '/admin/users' }));
    return r.status === 403 && r;
  });
  assert.equal(denied.body, deniedBody(ALICE.arn, '/admin/users', 'with an explicit deny in a network-based policy'));
  assert.equal((await send(await smithySigned(ALICE, { path: '/reports' }))).status, 200);
  assert.equal((await send(await smithySigned(BOB, { path: '/admin/users' }))).status, 200);
  // Service network back to NONE: its policy no longer applies.
  await t.client.send(new UpdateServiceNetworkCommand({ serviceNetworkIdentifier: ids.sn, authType: 'NONE' }));
  await until('the network layer to lift', async () => (await send(await smithySigned(ALICE, { path: '/admin/users' }))).status === 200);
  await t.client.send(new DeleteAuthPolicyCommand({ resourceIdentifier: ids.sn }));
});

test('a condition on vpc-lattice-svcs:RequestHeader/x-team', async () => {
  await t.client.send(new PutAuthPolicyCommand({ resourceIdentifier: ids.svc,
    policy: policyOf(allow({ AWS: ALICE.arn }, { Condition: { StringEquals: { 'vpc-lattice-svcs:RequestHeader/x-team': 'blue' } } })) }));
  await until('the header condition', async () => (await send(await smithySigned(ALICE))).status === 403);
  const blue = await send(await smithySigned(ALICE, { headers: { 'x-team': 'blue' } }));
  assert.equal(blue.status, 200, blue.body);
  assert.equal((await send(await botocoreSigned(ALICE, { headers: { 'x-team': 'blue' } }))).status, 200);
  assert.equal((await send(await smithySigned(ALICE, { headers: { 'x-team': 'red' } }))).status, 403);
  // AWS_IAM without any policy denies everyone.
  await t.client.send(new DeleteAuthPolicyCommand({ resourceIdentifier: ids.svc }));
  const none = await until('the policy removal', async () => {
    const r = await send(await smithySigned(ALICE, { headers: { 'x-team': 'blue' } }));
    return r.status === 403 && r;
  });
  assert.match(none.body, /because no service-based policy allows/);
});

test('a condition on aws:ResourceTag, with the service tagged through the API', async () => {
  await t.client.send(new PutAuthPolicyCommand({ resourceIdentifier: ids.svc,
    policy: policyOf(allow({ AWS: ALICE.arn }, { Condition: { StringEquals: { 'aws:ResourceTag/stage': 'prod' } } })) }));
  await until('the tag condition to deny', async () => (await send(await smithySigned(ALICE))).status === 403);
  await t.client.send(new TagResourceCommand({ resourceArn: ids.svcArn, tags: { stage: 'prod' } }));
  await until('the tag to allow', async () => (await send(await smithySigned(ALICE))).status === 200);
  await t.client.send(new TagResourceCommand({ resourceArn: ids.svcArn, tags: { stage: 'dev' } }));
  await until('the changed tag to deny', async () => (await send(await smithySigned(ALICE))).status === 403);
  await t.client.send(new DeleteAuthPolicyCommand({ resourceIdentifier: ids.svc }));
});

test('presigned URLs from @smithy/signature-v4', async () => {
  await t.client.send(new PutAuthPolicyCommand({ resourceIdentifier: ids.svc, policy: policyOf(allow({ AWS: ALICE.arn })) }));
  const signer = new SignatureV4({ service: 'vpc-lattice-svcs', region: REGION, sha256: Sha256,
    credentials: { accessKeyId: ALICE.accessKeyId, secretAccessKey: ALICE.secretAccessKey } });
  const presign = async () => {
    const p = await signer.presign(new HttpRequest({ method: 'GET', protocol: 'http:', hostname: ids.host, port: ids.port,
      path: '/report', query: { format: 'csv' }, headers: { host: hostHeader() } }), { expiresIn: 300 });
    return '/report?' + new URLSearchParams(p.query).toString();
  };
  const r = await until('the policy for Alice', async () => {
    const x = await send({ path: await presign(), headers: { host: hostHeader() } });
    return x.status === 200 && x;
  });
  assert.equal(JSON.parse(r.body).headers['x-amzn-lattice-identity'].split(';')[0], `Principal=${ALICE.arn}`);
  const tampered = (await presign()).replace('format=csv', 'format=pdf');
  assert.equal((await send({ path: tampered, headers: { host: hostHeader() } })).status, 403);
});
