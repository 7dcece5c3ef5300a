// Service networks and services through the real AWS SDK for JavaScript.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  CreateServiceNetworkCommand, GetServiceNetworkCommand, UpdateServiceNetworkCommand, DeleteServiceNetworkCommand,
  ListServiceNetworksCommand, paginateListServiceNetworks,
  CreateServiceCommand, GetServiceCommand, UpdateServiceCommand, DeleteServiceCommand, ListServicesCommand,
  paginateListServices, ListTagsForResourceCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, expectError, ACCOUNT, REGION } from './harness.mjs';

let t;
before(async () => { t = await startTrellis({ config: { quotas: { services: 300, serviceNetworks: 5 } } }); });
after(async () => { await t?.stop(); });

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

test('service network lifecycle: create, get, update, list, delete', async () => {
  const created = await t.client.send(new CreateServiceNetworkCommand({ name: 'lifecycle-net', tags: { team: 'a' } }));
  assert.equal(created.$metadata.httpStatusCode, 201);
  assert.match(created.id, /^sn-[0-9a-f]{17}$/);
  assert.equal(created.arn, `arn:aws:vpc-lattice:${REGION}:${ACCOUNT}:servicenetwork/${created.id}`);
  assert.equal(created.authType, 'NONE');

  const got = await t.client.send(new GetServiceNetworkCommand({ serviceNetworkIdentifier: created.arn }));
  assert.equal(got.id, created.id);
  assert.equal(got.name, 'lifecycle-net');
  assert.ok(got.createdAt instanceof Date && got.lastUpdatedAt instanceof Date);
  assert.equal(got.numberOfAssociatedServices, 0);
  assert.equal(got.numberOfAssociatedVPCs, 0);

  const tags = await t.client.send(new ListTagsForResourceCommand({ resourceArn: created.arn }));
  assert.deepEqual(tags.tags, { team: 'a' });

  const updated = await t.client.send(new UpdateServiceNetworkCommand({ serviceNetworkIdentifier: created.id, authType: 'AWS_IAM' }));
  assert.equal(updated.authType, 'AWS_IAM');
  const again = await t.client.send(new GetServiceNetworkCommand({ serviceNetworkIdentifier: created.id }));
  assert.equal(again.authType, 'AWS_IAM');
  assert.ok(again.lastUpdatedAt >= got.lastUpdatedAt);

  const list = await t.client.send(new ListServiceNetworksCommand({}));
  assert.ok(list.items.some((i) => i.id === created.id && i.name === 'lifecycle-net'));

  const deleted = await t.client.send(new DeleteServiceNetworkCommand({ serviceNetworkIdentifier: created.id }));
  assert.equal(deleted.$metadata.httpStatusCode, 204);
  const gone = await expectError(t.client.send(new GetServiceNetworkCommand({ serviceNetworkIdentifier: created.id })));
  assert.equal(gone.name, 'ResourceNotFoundException');
  assert.equal(gone.$metadata.httpStatusCode, 404);
  assert.equal(gone.resourceId, created.id);
  assert.equal(gone.resourceType, 'SERVICE_NETWORK');
});

test('validation errors list every bad field', async () => {
  const e = await expectError(t.client.send(new CreateServiceNetworkCommand({ name: 'Bad--Name', authType: 'KERBEROS', clientToken: 'has space' })));
  assert.equal(e.name, 'ValidationException');
  assert.equal(e.$metadata.httpStatusCode, 400);
  assert.equal(e.reason, 'fieldValidationFailed');
  assert.deepEqual(e.fieldList.map((f) => f.name).sort(), ['authType', 'clientToken', 'name']);
  for (const f of e.fieldList) assert.ok(f.message.length > 0);
  assert.ok(e.$metadata.requestId, 'x-amzn-RequestId is returned');

  for (const name of ['ab', 'a'.repeat(64), '-lead', 'trail-', 'UPPER', 'dots.not.ok']) {
    const err = await expectError(t.client.send(new CreateServiceNetworkCommand({ name })));
    assert.equal(err.name, 'ValidationException', name);
    assert.equal(err.fieldList[0].name, 'name');
  }
  const svc = await expectError(t.client.send(new CreateServiceCommand({ name: 'svc-reserved', idleTimeoutSeconds: 30 })));
  assert.deepEqual(svc.fieldList.map((f) => f.name).sort(), ['idleTimeoutSeconds', 'name']);
  const missing = await expectError(t.client.send(new CreateServiceCommand({})));
  assert.deepEqual(missing.fieldList.map((f) => f.name), ['name']);
});

test('identifiers: bad shapes are ValidationException, unknown ids are ResourceNotFound', async () => {
  const bad = await expectError(t.client.send(new GetServiceCommand({ serviceIdentifier: 'not-an-id' })));
  assert.equal(bad.name, 'ValidationException');
  const unknown = await expectError(t.client.send(new GetServiceCommand({ serviceIdentifier: 'svc-0123456789abcdef0' })));
  assert.equal(unknown.name, 'ResourceNotFoundException');
  assert.equal(unknown.resourceType, 'SERVICE');
  const wrongKind = await expectError(t.client.send(new GetServiceCommand({
    serviceIdentifier: `arn:aws:vpc-lattice:${REGION}:${ACCOUNT}:servicenetwork/sn-0123456789abcdef0` })));
  assert.equal(wrongKind.name, 'ValidationException');
});

test('duplicate names conflict; quotas answer 402', async () => {
  await t.client.send(new CreateServiceNetworkCommand({ name: 'dup-net' }));
  const dup = await expectError(t.client.send(new CreateServiceNetworkCommand({ name: 'dup-net' })));
  assert.equal(dup.name, 'ConflictException');
  assert.equal(dup.$metadata.httpStatusCode, 409);
  assert.equal(dup.resourceType, 'SERVICE_NETWORK');
  assert.ok(dup.resourceId);

  // The quota in this test's config is 5 service networks.
  const existing = (await t.client.send(new ListServiceNetworksCommand({}))).items.length;
  for (let i = existing; i < 5; i++) await t.client.send(new CreateServiceNetworkCommand({ name: `quota-net-${i}` }));
  const over = await expectError(t.client.send(new CreateServiceNetworkCommand({ name: 'quota-net-over' })));
  assert.equal(over.name, 'ServiceQuotaExceededException');
  assert.equal(over.$metadata.httpStatusCode, 402);
  assert.equal(over.quotaCode, 'L-9CAD07FB');
  assert.equal(over.serviceCode, 'vpc-lattice');
  assert.equal(over.resourceType, 'SERVICE_NETWORK');
});

test('service lifecycle with dnsEntry, customDomainName and updates', async () => {
  const created = await t.client.send(new CreateServiceCommand({
    name: 'billing', customDomainName: 'billing.example.com', authType: 'AWS_IAM', idleTimeoutSeconds: 120,
    certificateArn: `arn:aws:acm:${REGION}:${ACCOUNT}:certificate/0123abcd-0000-4000-8000-000000000000`,
  }));
  assert.equal(created.$metadata.httpStatusCode, 201);
  assert.match(created.id, /^svc-[0-9a-f]{17}$/);
  assert.equal(created.status, 'ACTIVE');
  assert.equal(created.dnsEntry.domainName, `billing-${created.id.slice(4)}.7d67968.vpc-lattice-svcs.${REGION}.on.aws`);
  assert.ok(created.dnsEntry.hostedZoneId);
  assert.equal(created.customDomainName, 'billing.example.com');

  const got = await t.client.send(new GetServiceCommand({ serviceIdentifier: created.arn }));
  assert.equal(got.idleTimeoutSeconds, 120);
  assert.equal(got.authType, 'AWS_IAM');
  assert.ok(got.createdAt instanceof Date);

  const updated = await t.client.send(new UpdateServiceCommand({ serviceIdentifier: created.id, authType: 'NONE', idleTimeoutSeconds: 300 }));
  assert.equal(updated.authType, 'NONE');
  assert.equal(updated.idleTimeoutSeconds, 300);
  assert.equal(updated.customDomainName, 'billing.example.com');

  const deleted = await t.client.send(new DeleteServiceCommand({ serviceIdentifier: created.arn }));
  assert.equal(deleted.$metadata.httpStatusCode, 200);
  assert.equal(deleted.id, created.id);
  const gone = await expectError(t.client.send(new GetServiceCommand({ serviceIdentifier: created.id })));
  assert.equal(gone.name, 'ResourceNotFoundException');
  // The name is free again.
  await t.client.send(new CreateServiceCommand({ name: 'billing' }));
});

test('pagination over 250 services stays correct while items are added and removed', async () => {
  const ids = new Set();
  for (let i = 0; i < 250; i++) {
    const s = await t.client.send(new CreateServiceCommand({ name: `page-svc-${i}` }));
    ids.add(s.id);
  }
  const seen = [];
  let pages = 0;
  for await (const page of paginateListServices({ client: t.client, pageSize: 40 }, {})) {
    pages++;
    assert.ok(page.items.length <= 40);
    seen.push(...page.items.map((i) => i.id));
  }
  assert.ok(pages >= 7);
  for (const id of ids) assert.ok(seen.includes(id));
  assert.equal(new Set(seen).size, seen.length, 'no item is listed twice');

  // Mutate between pages: an item deleted ahead is not returned; nothing is skipped or duplicated.
  const first = await t.client.send(new ListServicesCommand({ maxResults: 50 }));
  const laterId = (await t.client.send(new ListServicesCommand({ maxResults: 100 }))).items[80].id;
  await t.client.send(new DeleteServiceCommand({ serviceIdentifier: laterId }));
  await t.client.send(new CreateServiceCommand({ name: 'page-svc-added' }));
  const rest = [];
  let token = first.nextToken;
  while (token) {
    const page = await t.client.send(new ListServicesCommand({ maxResults: 50, nextToken: token }));
    rest.push(...page.items.map((i) => i.id));
    token = page.nextToken;
  }
  const all = [...first.items.map((i) => i.id), ...rest];
  assert.ok(!all.includes(laterId));
  assert.equal(new Set(all).size, all.length);

  const badToken = await expectError(t.client.send(new ListServicesCommand({ nextToken: 'garbage' })));
  assert.equal(badToken.name, 'ValidationException');
  const badMax = await expectError(t.client.send(new ListServicesCommand({ maxResults: 101 })));
  assert.equal(badMax.name, 'ValidationException');
});

test('clientToken: same input replays the original result, different input conflicts', async () => {
  const a = await t.client.send(new CreateServiceCommand({ name: 'idem-svc', clientToken: 'token-1' }));
  const b = await t.client.send(new CreateServiceCommand({ name: 'idem-svc', clientToken: 'token-1' }));
  assert.equal(a.id, b.id);
  const c = await expectError(t.client.send(new CreateServiceCommand({ name: 'idem-svc-2', clientToken: 'token-1' })));
  assert.equal(c.name, 'ConflictException');
  const list = await t.client.send(new ListServicesCommand({ maxResults: 100 }));
  assert.ok(!list.items.some((i) => i.name === 'idem-svc-2'));
});

test('timestamps are RFC 3339 strings on the wire', async () => {
  const s = await t.client.send(new CreateServiceCommand({ name: 'wire-check' }));
  const res = await fetch(`${t.endpoint}/services/${s.id}`); // unsigned: must be refused
  assert.equal(res.status, 403);
  assert.equal(res.headers.get('x-amzn-errortype'), 'MissingAuthenticationTokenException');
  assert.ok((await res.json()).message);
  const got = await t.client.send(new GetServiceCommand({ serviceIdentifier: s.id }));
  assert.ok(got.createdAt instanceof Date && !Number.isNaN(got.createdAt.getTime()));
  assert.match(got.createdAt.toISOString(), RFC3339);
});
