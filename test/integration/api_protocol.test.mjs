// The wire protocol around the operations: authentication failures, error shapes, unknown routes,
// malformed bodies, readiness, shutdown and the data-dir lock.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { CreateServiceNetworkCommand, ListServiceNetworksCommand, VPCLatticeClient } from '@aws-sdk/client-vpc-lattice';
import { SignatureV4 } from '@smithy/signature-v4';
import { HttpRequest } from '@smithy/protocol-http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { startTrellis, expectError, trellisdPath, ADMIN, REGION } from './harness.mjs';

let t;
before(async () => { t = await startTrellis(); });
after(async () => { await t?.stop(); });

// Sends a request signed by @smithy/signature-v4 with the given credentials/service/region.
async function signedFetch({ method = 'GET', path = '/servicenetworks', body, creds = ADMIN, service = 'vpc-lattice', region = REGION, tamper }) {
  const url = new URL(t.endpoint);
  const headers = { host: url.host };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const signer = new SignatureV4({ service, region, credentials: creds, sha256: Sha256 });
  const signed = await signer.sign(new HttpRequest({ method, hostname: url.hostname, port: Number(url.port), path, headers, body }));
  if (tamper) tamper(signed);
  const res = await fetch(`${t.endpoint}${signed.path}`, { method, headers: signed.headers, body });
  return { status: res.status, type: res.headers.get('x-amzn-errortype'), requestId: res.headers.get('x-amzn-requestid'), body: await res.json() };
}

test('an unknown access key is UnrecognizedClientException', async () => {
  const client = t.clientFor({ accessKeyId: 'AKIAUNKNOWNKEY000000', secretAccessKey: 'nope' });
  const e = await expectError(client.send(new ListServiceNetworksCommand({})));
  assert.equal(e.name, 'UnrecognizedClientException');
  assert.equal(e.$metadata.httpStatusCode, 403);
});

test('a wrong secret is InvalidSignatureException', async () => {
  const client = t.clientFor({ accessKeyId: ADMIN.accessKeyId, secretAccessKey: 'wrong-secret' });
  const e = await expectError(client.send(new CreateServiceNetworkCommand({ name: 'never-created' })));
  assert.equal(e.name, 'InvalidSignatureException');
  assert.equal(e.$metadata.httpStatusCode, 403);
  const list = await t.client.send(new ListServiceNetworksCommand({}));
  assert.ok(!list.items.some((i) => i.name === 'never-created'), 'a refused request changes nothing');
});

test('a tampered body or path fails the signature', async () => {
  const body = JSON.stringify({ name: 'tamper-net' });
  const r1 = await signedFetch({ method: 'POST', body, tamper: (s) => { s.headers['x-amz-content-sha256'] = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'; } });
  assert.equal(r1.status, 403);
  assert.equal(r1.type, 'InvalidSignatureException');
  const r2 = await signedFetch({ path: '/servicenetworks', tamper: (s) => { s.path = '/services'; } });
  assert.equal(r2.status, 403);
  const ok = await signedFetch({ method: 'POST', body });
  assert.equal(ok.status, 201);
});

test('a request signed for another service or region is refused', async () => {
  const r1 = await signedFetch({ service: 'vpc-lattice-svcs' });
  assert.equal(r1.status, 403);
  assert.match(r1.body.message, /vpc-lattice/);
  const r2 = await signedFetch({ region: 'eu-west-1' });
  assert.equal(r2.status, 403);
});

test('clock skew beyond 5 minutes is refused, within it accepted', async () => {
  const skewed = new VPCLatticeClient({ endpoint: t.endpoint, region: REGION, credentials: t.credentials, maxAttempts: 1, systemClockOffset: -10 * 60 * 1000 });
  const e = await expectError(skewed.send(new ListServiceNetworksCommand({})));
  assert.equal(e.$metadata.httpStatusCode, 403);
  assert.match(e.message, /Signature expired/);
  const slight = new VPCLatticeClient({ endpoint: t.endpoint, region: REGION, credentials: t.credentials, maxAttempts: 1, systemClockOffset: 4 * 60 * 1000 });
  await slight.send(new ListServiceNetworksCommand({}));
});

test('unknown routes and malformed bodies get JSON errors', async () => {
  const r1 = await signedFetch({ path: '/no/such/thing' });
  assert.equal(r1.status, 404);
  assert.ok(r1.body.message);
  assert.ok(r1.requestId);
  const r2 = await signedFetch({ method: 'POST', body: '{"name": ' });
  assert.equal(r2.status, 400);
  assert.equal(r2.type, 'ValidationException');
  assert.equal(r2.body.reason, 'cannotParse');
  const r3 = await signedFetch({ method: 'POST', body: '["a list"]' });
  assert.equal(r3.status, 400);
  const r4 = await signedFetch({ method: 'POST', body: JSON.stringify({ name: 42 }) });
  assert.equal(r4.status, 400);
  assert.deepEqual(r4.body.fieldList.map((f) => f.name), ['name']);
});

test('the admin endpoint reports readiness', async () => {
  const res = await fetch(`${t.admin}/ready`);
  assert.equal(res.status, 200);
});

test('a second trellisd on the same data dir refuses to start, naming the dir', async () => {
  const r = spawnSync(trellisdPath, ['--data-dir', t.dataDir, '--api-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'], { encoding: 'utf8', timeout: 30000 });
  assert.notEqual(r.status, 0);
  assert.ok(r.stderr.includes(t.dataDir), r.stderr);
});

test('SIGTERM shuts down cleanly with exit code 0 and the data is kept', async () => {
  const s = await startTrellis();
  const created = await s.client.send(new CreateServiceNetworkCommand({ name: 'kept-net' }));
  const result = await s.stop({ cleanup: false });
  assert.equal(result.code, 0);
  const again = await startTrellis({ dataDir: s.dataDir });
  const list = await again.client.send(new ListServiceNetworksCommand({}));
  assert.ok(list.items.some((i) => i.id === created.id));
  await again.stop({ cleanup: true });
});

test('bad config files are rejected with file, line and reason', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(`${tmpdir()}/trellis-badcfg-`);
  writeFileSync(`${dir}/bad.yaml`, 'region: us-east-1\naccountId: "111122223333"\nfavouriteColour: blue\n');
  const r = spawnSync(trellisdPath, ['--config', `${dir}/bad.yaml`, '--data-dir', dir, '--api-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'], { encoding: 'utf8', timeout: 30000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /bad\.yaml:3/);
  assert.match(r.stderr, /favouriteColour/);
});
