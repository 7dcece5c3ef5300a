// Auth and resource policies, access log subscriptions and tags through the real AWS SDK for JavaScript.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as lattice from '@aws-sdk/client-vpc-lattice';
import { startTrellis, expectError, ACCOUNT, REGION } from './harness.mjs';

const {
  CreateServiceNetworkCommand, DeleteServiceNetworkCommand, CreateServiceCommand, UpdateServiceCommand, DeleteServiceCommand,
  CreateServiceNetworkServiceAssociationCommand,
  PutAuthPolicyCommand, GetAuthPolicyCommand, DeleteAuthPolicyCommand,
  PutResourcePolicyCommand, GetResourcePolicyCommand, DeleteResourcePolicyCommand,
  CreateAccessLogSubscriptionCommand, GetAccessLogSubscriptionCommand, UpdateAccessLogSubscriptionCommand,
  DeleteAccessLogSubscriptionCommand, ListAccessLogSubscriptionsCommand,
  TagResourceCommand, UntagResourceCommand, ListTagsForResourceCommand,
  CreateTargetGroupCommand, CreateListenerCommand, DeleteListenerCommand, CreateRuleCommand,
  CreateServiceNetworkVpcAssociationCommand,
} = lattice;

let t;
before(async () => { t = await startTrellis(); });
after(async () => { await t?.stop(); });

const send = (command) => t.client.send(command);
let counter = 0;
const unique = (prefix) => `${prefix}-${++counter}`;
const network = (extra = {}) => send(new CreateServiceNetworkCommand({ name: unique('net'), ...extra }));
const service = (extra = {}) => send(new CreateServiceCommand({ name: unique('app'), ...extra }));

const policy = (effect = 'Allow') => JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: effect, Principal: '*', Action: 'vpc-lattice-svcs:Invoke', Resource: '*' }],
});

test('auth policy lifecycle: state follows authType, ARNs in the path, delete is idempotent', async () => {
  const sn = await network();
  const put = await send(new PutAuthPolicyCommand({ resourceIdentifier: sn.id, policy: policy() }));
  assert.equal(put.$metadata.httpStatusCode, 200);
  assert.equal(put.policy, policy());
  assert.equal(put.state, 'Inactive', 'authType NONE leaves the policy inactive');

  const svc = await service({ authType: 'AWS_IAM' });
  const onService = await send(new PutAuthPolicyCommand({ resourceIdentifier: svc.arn, policy: policy('Deny') }));
  assert.equal(onService.state, 'Active');
  const got = await send(new GetAuthPolicyCommand({ resourceIdentifier: svc.arn }));
  assert.equal(got.policy, policy('Deny'));
  assert.equal(got.state, 'Active');
  assert.ok(got.createdAt instanceof Date && got.lastUpdatedAt instanceof Date);

  await send(new UpdateServiceCommand({ serviceIdentifier: svc.id, authType: 'NONE' }));
  assert.equal((await send(new GetAuthPolicyCommand({ resourceIdentifier: svc.id }))).state, 'Inactive');

  // Replacing keeps createdAt.
  await new Promise((resolve) => setTimeout(resolve, 20));
  await send(new PutAuthPolicyCommand({ resourceIdentifier: svc.id, policy: policy() }));
  const replaced = await send(new GetAuthPolicyCommand({ resourceIdentifier: svc.id }));
  assert.equal(replaced.policy, policy());
  assert.equal(replaced.createdAt.getTime(), got.createdAt.getTime());
  assert.ok(replaced.lastUpdatedAt > got.lastUpdatedAt);

  const deleted = await send(new DeleteAuthPolicyCommand({ resourceIdentifier: svc.arn }));
  assert.equal(deleted.$metadata.httpStatusCode, 204);
  const none = await expectError(send(new GetAuthPolicyCommand({ resourceIdentifier: svc.id })));
  assert.equal(none.name, 'ResourceNotFoundException');
  assert.equal(none.resourceId, svc.id);
  assert.equal(none.resourceType, 'AUTH_POLICY');
  assert.equal((await send(new DeleteAuthPolicyCommand({ resourceIdentifier: svc.id }))).$metadata.httpStatusCode, 204);

  // Deleting the network takes its policy with it.
  await send(new DeleteServiceNetworkCommand({ serviceNetworkIdentifier: sn.id }));
  const gone = await expectError(send(new GetAuthPolicyCommand({ resourceIdentifier: sn.id })));
  assert.equal(gone.name, 'ResourceNotFoundException');
  assert.equal(gone.resourceType, 'SERVICE_NETWORK');
});

test('auth policy validation says what is wrong and where', async () => {
  const svc = await service();
  const cases = [
    ['{"Version":"2012-10-17"', /not valid JSON/],
    ['[1,2]', /must be a JSON object/],
    ['{"Version":"2012-10-17"}', /no Statement/],
    ['{"Version":"2099-01-01","Statement":[]}', /Version/],
    [JSON.stringify({ Statement: [{ Effect: 'Allow', Action: '*' }, { Effect: 'Maybe', Action: '*' }] }), /Statement\[1\]\.Effect/],
    [JSON.stringify({ Statement: { Action: '*' } }), /Statement\.Effect is missing/],
  ];
  for (const [text, message] of cases) {
    const e = await expectError(send(new PutAuthPolicyCommand({ resourceIdentifier: svc.id, policy: text })));
    assert.equal(e.name, 'ValidationException', text);
    assert.deepEqual(e.fieldList.map((f) => f.name), ['policy'], text);
    assert.match(e.fieldList[0].message, message, text);
  }
  // A statement object without Version is a valid IAM policy.
  await send(new PutAuthPolicyCommand({ resourceIdentifier: svc.id, policy: JSON.stringify({ Statement: { Effect: 'Allow', Action: '*' } }) }));

  // 10 KB quota (the model alone would allow 36864 characters).
  const big = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Sid: 'x'.repeat(10300) }] });
  const tooBig = await expectError(send(new PutAuthPolicyCommand({ resourceIdentifier: svc.id, policy: big })));
  assert.equal(tooBig.name, 'ValidationException');
  assert.match(tooBig.fieldList[0].message, /10 KB/);

  const both = await expectError(send(new PutAuthPolicyCommand({ resourceIdentifier: 'tg-0123456789abcdef0' })));
  assert.deepEqual(both.fieldList.map((f) => f.name).sort(), ['policy', 'resourceIdentifier']);
  const unknown = await expectError(send(new PutAuthPolicyCommand({ resourceIdentifier: 'svc-0123456789abcdef0', policy: policy() })));
  assert.equal(unknown.name, 'ResourceNotFoundException');
  assert.equal(unknown.resourceType, 'SERVICE');
  const config = await expectError(send(new GetAuthPolicyCommand({ resourceIdentifier: 'rcfg-0123456789abcdef0' })));
  assert.equal(config.name, 'ResourceNotFoundException');
  assert.equal(config.resourceType, 'RESOURCE_CONFIGURATION');
});

test('resource policy lifecycle and validation', async () => {
  const sn = await network();
  const text = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: '444455556666' },
    Action: ['vpc-lattice:CreateServiceNetworkVpcAssociation'], Resource: sn.arn }] });
  const put = await send(new PutResourcePolicyCommand({ resourceArn: sn.arn, policy: text }));
  assert.equal(put.$metadata.httpStatusCode, 200);
  assert.equal((await send(new GetResourcePolicyCommand({ resourceArn: sn.arn }))).policy, text);
  const deleted = await send(new DeleteResourcePolicyCommand({ resourceArn: sn.arn }));
  assert.equal(deleted.$metadata.httpStatusCode, 204);
  const none = await expectError(send(new GetResourcePolicyCommand({ resourceArn: sn.arn })));
  assert.equal(none.name, 'ResourceNotFoundException');
  assert.equal(none.resourceType, 'RESOURCE_POLICY');

  const blank = await expectError(send(new PutResourcePolicyCommand({ resourceArn: sn.arn, policy: '   ' })));
  assert.deepEqual(blank.fieldList.map((f) => f.name), ['policy']);
  const notJson = await expectError(send(new PutResourcePolicyCommand({ resourceArn: sn.arn, policy: 'allow everyone' })));
  assert.match(notJson.fieldList[0].message, /not valid JSON/);
  const tooLong = await expectError(send(new PutResourcePolicyCommand({ resourceArn: sn.arn, policy: ' '.repeat(10001) })));
  assert.deepEqual(tooLong.fieldList.map((f) => f.name), ['policy']);
  const idNotArn = await expectError(send(new PutResourcePolicyCommand({ resourceArn: sn.id, policy: text })));
  assert.deepEqual(idNotArn.fieldList.map((f) => f.name), ['resourceArn']);
  const svcArn = `arn:aws:vpc-lattice:${REGION}:${ACCOUNT}:service/svc-0123456789abcdef0`;
  const unknown = await expectError(send(new GetResourcePolicyCommand({ resourceArn: svcArn })));
  assert.equal(unknown.name, 'ResourceNotFoundException');
  assert.equal(unknown.resourceType, 'SERVICE');
});

const LOGS = (name) => `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:${name}`;
const S3 = (bucket) => `arn:aws:s3:::${bucket}`;
const FIREHOSE = (name) => `arn:aws:firehose:${REGION}:${ACCOUNT}:deliverystream/${name}`;

test('access log subscriptions: lifecycle, one per destination type, update, list', async () => {
  const sn = await network();
  const created = await send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: sn.arn, destinationArn: LOGS('lattice'), tags: { a: '1' } }));
  assert.equal(created.$metadata.httpStatusCode, 201);
  assert.match(created.id, /^als-[0-9a-f]{17}$/);
  assert.equal(created.arn, `arn:aws:vpc-lattice:${REGION}:${ACCOUNT}:accesslogsubscription/${created.id}`);
  assert.equal(created.resourceId, sn.id);
  assert.equal(created.resourceArn, sn.arn);
  assert.equal(created.destinationArn, LOGS('lattice'));
  assert.equal(created.serviceNetworkLogType, 'SERVICE');
  assert.deepEqual((await send(new ListTagsForResourceCommand({ resourceArn: created.arn }))).tags, { a: '1' });

  const got = await send(new GetAccessLogSubscriptionCommand({ accessLogSubscriptionIdentifier: created.arn }));
  assert.equal(got.destinationArn, LOGS('lattice'));
  assert.ok(got.createdAt instanceof Date && got.lastUpdatedAt instanceof Date);

  // One subscription per destination type (and log type).
  const dup = await expectError(send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: sn.id, destinationArn: LOGS('other') })));
  assert.equal(dup.name, 'ConflictException');
  assert.equal(dup.resourceType, 'ACCESS_LOG_SUBSCRIPTION');
  assert.equal(dup.resourceId, created.id);
  const s3 = await send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: sn.id, destinationArn: S3('lattice-logs/prefix') }));
  const resourceLogs = await send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: sn.id, destinationArn: LOGS('res'), serviceNetworkLogType: 'RESOURCE' }));
  assert.equal(resourceLogs.serviceNetworkLogType, 'RESOURCE');

  // Update: same type, or a type the resource has no subscription of yet.
  const updated = await send(new UpdateAccessLogSubscriptionCommand({ accessLogSubscriptionIdentifier: created.id, destinationArn: LOGS('renamed') }));
  assert.equal(updated.destinationArn, LOGS('renamed'));
  assert.equal(updated.resourceId, sn.id);
  assert.equal((await send(new GetAccessLogSubscriptionCommand({ accessLogSubscriptionIdentifier: created.id }))).destinationArn, LOGS('renamed'));
  const clash = await expectError(send(new UpdateAccessLogSubscriptionCommand({ accessLogSubscriptionIdentifier: created.id, destinationArn: S3('elsewhere') })));
  assert.equal(clash.name, 'ConflictException');
  assert.equal(clash.resourceId, s3.id);
  const moved = await send(new UpdateAccessLogSubscriptionCommand({ accessLogSubscriptionIdentifier: created.id, destinationArn: FIREHOSE('stream') }));
  assert.equal(moved.destinationArn, FIREHOSE('stream'));

  const page1 = await send(new ListAccessLogSubscriptionsCommand({ resourceIdentifier: sn.arn, maxResults: 2 }));
  assert.equal(page1.items.length, 2);
  const page2 = await send(new ListAccessLogSubscriptionsCommand({ resourceIdentifier: sn.arn, maxResults: 2, nextToken: page1.nextToken }));
  assert.equal(page2.items.length, 1);
  assert.equal(page2.nextToken, undefined);
  const items = [...page1.items, ...page2.items];
  assert.deepEqual(items.map((i) => i.id).sort(), [created.id, s3.id, resourceLogs.id].sort());
  for (const item of items) {
    assert.equal(item.resourceId, sn.id);
    assert.ok(item.createdAt instanceof Date && item.lastUpdatedAt instanceof Date && item.serviceNetworkLogType);
  }
  const noFilter = await expectError(send(new ListAccessLogSubscriptionsCommand({})));
  assert.deepEqual(noFilter.fieldList.map((f) => f.name), ['resourceIdentifier']);

  const deleted = await send(new DeleteAccessLogSubscriptionCommand({ accessLogSubscriptionIdentifier: created.arn }));
  assert.equal(deleted.$metadata.httpStatusCode, 204);
  const gone = await expectError(send(new GetAccessLogSubscriptionCommand({ accessLogSubscriptionIdentifier: created.id })));
  assert.equal(gone.name, 'ResourceNotFoundException');
  assert.equal(gone.resourceType, 'ACCESS_LOG_SUBSCRIPTION');

  // The network's delete removes the rest.
  await send(new DeleteServiceNetworkCommand({ serviceNetworkIdentifier: sn.id }));
  const cascaded = await expectError(send(new GetAccessLogSubscriptionCommand({ accessLogSubscriptionIdentifier: s3.id })));
  assert.equal(cascaded.name, 'ResourceNotFoundException');
});

test('access log subscription errors and idempotency', async () => {
  const svc = await service();
  const bad = await expectError(send(new CreateAccessLogSubscriptionCommand({
    resourceIdentifier: svc.id, destinationArn: `arn:aws:sqs:${REGION}:${ACCOUNT}:queue`, serviceNetworkLogType: 'SERVICE' })));
  assert.equal(bad.name, 'ValidationException');
  assert.deepEqual(bad.fieldList.map((f) => f.name).sort(), ['destinationArn', 'serviceNetworkLogType']);
  for (const destinationArn of ['arn:aws:s3:::b', `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:`, 'not-an-arn-at-all-really',
    `arn:aws:firehose:${REGION}:${ACCOUNT}:stream/x`]) {
    const e = await expectError(send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: svc.id, destinationArn })));
    assert.deepEqual(e.fieldList.map((f) => f.name), ['destinationArn'], destinationArn);
  }
  const missing = await expectError(send(new CreateAccessLogSubscriptionCommand({})));
  assert.deepEqual(missing.fieldList.map((f) => f.name).sort(), ['destinationArn', 'resourceIdentifier']);
  const unknown = await expectError(send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: 'sn-0123456789abcdef0', destinationArn: S3('trellis-bucket') })));
  assert.equal(unknown.name, 'ResourceNotFoundException');
  assert.equal(unknown.resourceType, 'SERVICE_NETWORK');

  const a = await send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: svc.id, destinationArn: S3('trellis-bucket'), clientToken: 'als-1' }));
  assert.equal(a.serviceNetworkLogType, undefined, 'services have no log type');
  const b = await send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: svc.id, destinationArn: S3('trellis-bucket'), clientToken: 'als-1' }));
  assert.equal(b.id, a.id);
  const c = await expectError(send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: svc.id, destinationArn: LOGS('x'), clientToken: 'als-1' })));
  assert.equal(c.name, 'ConflictException');

  const badUpdate = await expectError(send(new UpdateAccessLogSubscriptionCommand({ accessLogSubscriptionIdentifier: a.id, destinationArn: 'arn:aws:sns:us-east-1:111122223333:topic' })));
  assert.deepEqual(badUpdate.fieldList.map((f) => f.name), ['destinationArn']);
  const unknownUpdate = await expectError(send(new UpdateAccessLogSubscriptionCommand({ accessLogSubscriptionIdentifier: 'als-0123456789abcdef0', destinationArn: S3('trellis-bucket') })));
  assert.equal(unknownUpdate.name, 'ResourceNotFoundException');

  // Deleting the service removes its subscriptions.
  await send(new DeleteServiceCommand({ serviceIdentifier: svc.id }));
  const gone = await expectError(send(new GetAccessLogSubscriptionCommand({ accessLogSubscriptionIdentifier: a.id })));
  assert.equal(gone.name, 'ResourceNotFoundException');
  const emptyList = await send(new ListAccessLogSubscriptionsCommand({ resourceIdentifier: svc.id }));
  assert.deepEqual(emptyList.items, []);
});

test('tags round trip on every taggable resource', async () => {
  const sn = await network({ tags: { team: 'core' } });
  const svc = await service();
  const assoc = await send(new CreateServiceNetworkServiceAssociationCommand({ serviceNetworkIdentifier: sn.id, serviceIdentifier: svc.id }));
  const vpcAssoc = await send(new CreateServiceNetworkVpcAssociationCommand({ serviceNetworkIdentifier: sn.id, vpcIdentifier: 'vpc-0123456789abcdef2' }));
  const als = await send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: svc.id, destinationArn: LOGS('tags') }));
  const tg = await send(new CreateTargetGroupCommand({ name: unique('tags-tg'), type: 'IP', config: { port: 80, protocol: 'HTTP', vpcIdentifier: 'vpc-0123456789abcdef0' } }));
  const listener = await send(new CreateListenerCommand({ serviceIdentifier: svc.id, name: unique('tags-lst'), protocol: 'HTTP',
    defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: tg.id }] } } }));
  const rule = await send(new CreateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.id, name: unique('tags-rule'), priority: 1,
    match: { httpMatch: { pathMatch: { match: { prefix: '/x' } } } }, action: { fixedResponse: { statusCode: 404 } } }));

  for (const arn of [sn.arn, svc.arn, assoc.arn, vpcAssoc.arn, als.arn, tg.arn, listener.arn, rule.arn]) {
    const tagged = await send(new TagResourceCommand({ resourceArn: arn, tags: { a: '1', b: '2', c: '3' } }));
    assert.equal(tagged.$metadata.httpStatusCode, 200);
    await send(new TagResourceCommand({ resourceArn: arn, tags: { c: 'three', d: '' } }));
    const expected = { a: '1', b: '2', c: 'three', d: '', ...(arn === sn.arn ? { team: 'core' } : {}) };
    assert.deepEqual((await send(new ListTagsForResourceCommand({ resourceArn: arn }))).tags, expected, arn);

    const untagged = await send(new UntagResourceCommand({ resourceArn: arn, tagKeys: ['a', 'd', 'not-there'] }));
    assert.equal(untagged.$metadata.httpStatusCode, 200);
    delete expected.a;
    delete expected.d;
    assert.deepEqual((await send(new ListTagsForResourceCommand({ resourceArn: arn }))).tags, expected, arn);
  }
  await send(new UntagResourceCommand({ resourceArn: svc.arn, tagKeys: ['b', 'c'] }));
  assert.deepEqual((await send(new ListTagsForResourceCommand({ resourceArn: svc.arn }))).tags, {});

  // A deleted resource's ARN no longer takes tags.
  await send(new DeleteListenerCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.id }));
  for (const arn of [listener.arn, rule.arn]) {
    const gone = await expectError(send(new ListTagsForResourceCommand({ resourceArn: arn })));
    assert.equal(gone.name, 'ResourceNotFoundException', arn);
  }
});

test('tag errors: limits, unknown and malformed ARNs', async () => {
  const svc = await service();
  const many = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`k${i}`, 'v']));
  await send(new TagResourceCommand({ resourceArn: svc.arn, tags: many }));
  const more = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`m${i}`, 'v']));
  const over = await expectError(send(new TagResourceCommand({ resourceArn: svc.arn, tags: more })));
  assert.equal(over.name, 'ValidationException');
  assert.match(over.message, /201 tags/);
  assert.equal(Object.keys((await send(new ListTagsForResourceCommand({ resourceArn: svc.arn }))).tags).length, 150);

  const badTags = await expectError(send(new TagResourceCommand({ resourceArn: svc.arn, tags: { ['x'.repeat(129)]: 'v', ok: 'y'.repeat(257) } })));
  assert.equal(badTags.fieldList.length, 2);
  const noTags = await expectError(send(new TagResourceCommand({ resourceArn: svc.arn })));
  assert.deepEqual(noTags.fieldList.map((f) => f.name), ['tags']);
  const badKeys = await expectError(send(new UntagResourceCommand({ resourceArn: svc.arn, tagKeys: ['k'.repeat(129)] })));
  assert.deepEqual(badKeys.fieldList.map((f) => f.name), ['tagKeys[0]']);

  const unknown = await expectError(send(new ListTagsForResourceCommand({ resourceArn: `arn:aws:vpc-lattice:${REGION}:${ACCOUNT}:service/svc-0123456789abcdef0` })));
  assert.equal(unknown.name, 'ResourceNotFoundException');
  assert.equal(unknown.resourceType, 'SERVICE');
  const otherAccount = await expectError(send(new ListTagsForResourceCommand({ resourceArn: svc.arn.replace(ACCOUNT, '999988887777') })));
  assert.equal(otherAccount.name, 'ResourceNotFoundException');
  const listenerOfNothing = await expectError(send(new TagResourceCommand({
    resourceArn: `${svc.arn}/listener/listener-0123456789abcdef0`, tags: { a: 'b' } })));
  assert.equal(listenerOfNothing.resourceType, 'LISTENER');
  for (const resourceArn of ['arn:aws:ec2:us-east-1:111122223333:vpc/vpc-0123456789abcdef0', svc.id]) {
    const e = await expectError(send(new ListTagsForResourceCommand({ resourceArn })));
    assert.equal(e.name, 'ValidationException', resourceArn);
    assert.deepEqual(e.fieldList.map((f) => f.name), ['resourceArn']);
  }
});
