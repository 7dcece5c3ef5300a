// Target groups and targets through the real AWS SDK for JavaScript.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateTargetGroupCommand, GetTargetGroupCommand, UpdateTargetGroupCommand, DeleteTargetGroupCommand,
  ListTargetGroupsCommand, paginateListTargetGroups, RegisterTargetsCommand, DeregisterTargetsCommand,
  ListTargetsCommand, paginateListTargets, CreateServiceCommand, CreateListenerCommand, DeleteListenerCommand,
  ListTagsForResourceCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, expectError, ACCOUNT, REGION } from './harness.mjs';

const VPC0 = 'vpc-0123456789abcdef0';
const VPC1 = 'vpc-0123456789abcdef1';
const INSTANCE = 'i-0123456789abcdef0'; // in VPC0 (harness BASE_CONFIG)
const LAMBDA_ARN = `arn:aws:lambda:${REGION}:${ACCOUNT}:function:hello`;

let t;
before(async () => { t = await startTrellis({ config: { quotas: { targetsPerTargetGroup: 5 } } }); });
after(async () => { await t?.stop(); });

const send = (command) => t.client.send(command);
const createGroup = (name, config, type = 'IP', extra = {}) =>
  send(new CreateTargetGroupCommand({ name, type, config, ...extra }));
const fieldNames = (e) => e.fieldList.map((f) => f.name).sort();

test('target group lifecycle: create with defaults, get, update health check, list, delete', async () => {
  const created = await createGroup('lifecycle-tg', { protocol: 'HTTP', vpcIdentifier: VPC0 }, 'IP', { tags: { team: 'a' } });
  assert.equal(created.$metadata.httpStatusCode, 201);
  assert.match(created.id, /^tg-[0-9a-f]{17}$/);
  assert.equal(created.arn, `arn:aws:vpc-lattice:${REGION}:${ACCOUNT}:targetgroup/${created.id}`);
  assert.equal(created.status, 'ACTIVE');
  assert.equal(created.type, 'IP');
  assert.deepEqual(created.config, {
    port: 80, protocol: 'HTTP', protocolVersion: 'HTTP1', ipAddressType: 'IPV4', vpcIdentifier: VPC0,
    healthCheck: {
      enabled: true, protocol: 'HTTP', protocolVersion: 'HTTP1', path: '/', healthCheckIntervalSeconds: 30,
      healthCheckTimeoutSeconds: 5, healthyThresholdCount: 5, unhealthyThresholdCount: 2, matcher: { httpCode: '200' },
    },
  });

  // ARN in the path: the SDK percent-encodes it.
  const got = await send(new GetTargetGroupCommand({ targetGroupIdentifier: created.arn }));
  assert.equal(got.id, created.id);
  assert.equal(got.name, 'lifecycle-tg');
  assert.deepEqual(got.config, created.config);
  assert.deepEqual(got.serviceArns, []);
  assert.ok(got.createdAt instanceof Date && got.lastUpdatedAt instanceof Date);
  const tags = await send(new ListTagsForResourceCommand({ resourceArn: created.arn }));
  assert.deepEqual(tags.tags, { team: 'a' });

  const updated = await send(new UpdateTargetGroupCommand({
    targetGroupIdentifier: created.id,
    healthCheck: { path: '/healthz', healthCheckIntervalSeconds: 10, port: 8081, matcher: { httpCode: '200-299' } },
  }));
  assert.equal(updated.config.healthCheck.path, '/healthz');
  assert.equal(updated.config.healthCheck.healthCheckIntervalSeconds, 10);
  assert.equal(updated.config.healthCheck.port, 8081);
  assert.deepEqual(updated.config.healthCheck.matcher, { httpCode: '200-299' });
  assert.equal(updated.config.healthCheck.healthyThresholdCount, 5, 'members not given keep their value');
  assert.equal(updated.config.port, 80, 'UpdateTargetGroup changes only the health check');

  // 0 and "" reset a member to its default.
  const reset = await send(new UpdateTargetGroupCommand({
    targetGroupIdentifier: created.arn, healthCheck: { healthCheckIntervalSeconds: 0, path: '', port: 0, enabled: false },
  }));
  assert.equal(reset.config.healthCheck.healthCheckIntervalSeconds, 30);
  assert.equal(reset.config.healthCheck.path, '/');
  assert.equal(reset.config.healthCheck.port, undefined, 'no port: each target is checked on its traffic port');
  assert.equal(reset.config.healthCheck.enabled, false);
  const again = await send(new GetTargetGroupCommand({ targetGroupIdentifier: created.id }));
  assert.deepEqual(again.config.healthCheck, reset.config.healthCheck);

  const list = await send(new ListTargetGroupsCommand({}));
  const item = list.items.find((i) => i.id === created.id);
  assert.ok(item, 'the group is listed');
  assert.equal(item.port, 80);
  assert.equal(item.protocol, 'HTTP');
  assert.equal(item.ipAddressType, 'IPV4');
  assert.equal(item.vpcIdentifier, VPC0);
  assert.deepEqual(item.serviceArns, []);

  const deleted = await send(new DeleteTargetGroupCommand({ targetGroupIdentifier: created.arn }));
  assert.equal(deleted.id, created.id);
  assert.equal(deleted.status, 'DELETE_IN_PROGRESS');
  const gone = await expectError(send(new GetTargetGroupCommand({ targetGroupIdentifier: created.id })));
  assert.equal(gone.name, 'ResourceNotFoundException');
  assert.equal(gone.resourceType, 'TARGET_GROUP');
  // The name is free again.
  const reborn = await createGroup('lifecycle-tg', { protocol: 'HTTP', vpcIdentifier: VPC0 });
  assert.notEqual(reborn.id, created.id);
});

test('config defaults depend on protocol, version and type', async () => {
  const https = await createGroup('defaults-https', { protocol: 'HTTPS', vpcIdentifier: VPC0 });
  assert.equal(https.config.port, 443);
  const tcp = await createGroup('defaults-tcp', { protocol: 'TCP', port: 5432, vpcIdentifier: VPC0 });
  assert.equal(tcp.config.healthCheck.enabled, false, 'health checks are off by default for TCP');
  assert.equal(tcp.config.protocolVersion, undefined);
  const h2 = await createGroup('defaults-h2', { protocol: 'HTTPS', protocolVersion: 'HTTP2', vpcIdentifier: VPC0 });
  assert.equal(h2.config.healthCheck.enabled, false, 'health checks are off by default for HTTP2');
  const v6 = await createGroup('defaults-v6', { protocol: 'HTTP', ipAddressType: 'IPV6', vpcIdentifier: VPC0 });
  assert.equal(v6.config.ipAddressType, 'IPV6');
  const instance = await createGroup('defaults-instance', { protocol: 'HTTP', port: 8080, vpcIdentifier: VPC0 }, 'INSTANCE');
  assert.equal(instance.config.ipAddressType, undefined);
  assert.equal(instance.config.port, 8080);
  const lambda = await createGroup('defaults-lambda', undefined, 'LAMBDA');
  assert.deepEqual(lambda.config, { lambdaEventStructureVersion: 'V1' });
  const lambda2 = await createGroup('defaults-lambda-v2', { lambdaEventStructureVersion: 'V2' }, 'LAMBDA');
  assert.deepEqual(lambda2.config, { lambdaEventStructureVersion: 'V2' });
  const alb = await createGroup('defaults-alb', { protocol: 'HTTP', vpcIdentifier: VPC0 }, 'ALB');
  assert.equal(alb.config.healthCheck, undefined, 'ALB target groups have no Lattice health checks');

  const filtered = await send(new ListTargetGroupsCommand({ targetGroupType: 'LAMBDA' }));
  assert.deepEqual(filtered.items.map((i) => i.name).sort(), ['defaults-lambda', 'defaults-lambda-v2']);
  assert.equal(filtered.items.find((i) => i.name === 'defaults-lambda-v2').lambdaEventStructureVersion, 'V2');
  await createGroup('other-vpc', { protocol: 'HTTP', vpcIdentifier: VPC1 });
  const byVpc = await send(new ListTargetGroupsCommand({ vpcIdentifier: VPC1 }));
  assert.deepEqual(byVpc.items.map((i) => i.name), ['other-vpc']);
  const both = await send(new ListTargetGroupsCommand({ vpcIdentifier: VPC0, targetGroupType: 'INSTANCE' }));
  assert.deepEqual(both.items.map((i) => i.name), ['defaults-instance']);
  const badFilter = await expectError(send(new ListTargetGroupsCommand({ vpcIdentifier: 'vpc-x', targetGroupType: 'EC2' })));
  assert.equal(badFilter.name, 'ValidationException');
  assert.deepEqual(fieldNames(badFilter), ['targetGroupType', 'vpcIdentifier']);
});

test('validation errors name every bad field', async () => {
  let e = await expectError(send(new CreateTargetGroupCommand({ name: 'tg-reserved', type: 'EC2', clientToken: 'has space' })));
  assert.equal(e.name, 'ValidationException');
  assert.equal(e.$metadata.httpStatusCode, 400);
  assert.equal(e.reason, 'fieldValidationFailed');
  assert.deepEqual(fieldNames(e), ['clientToken', 'name', 'type']);

  e = await expectError(send(new CreateTargetGroupCommand({ name: 'no-config', type: 'IP' })));
  assert.deepEqual(fieldNames(e), ['config']);

  e = await expectError(createGroup('bad-config', {
    protocol: 'UDP', port: 0, protocolVersion: 'HTTP3', ipAddressType: 'IPV5', vpcIdentifier: 'vpc-nope',
    lambdaEventStructureVersion: 'V1',
  }));
  assert.deepEqual(fieldNames(e), ['config.ipAddressType', 'config.lambdaEventStructureVersion', 'config.port',
    'config.protocol', 'config.protocolVersion', 'config.vpcIdentifier']);

  e = await expectError(createGroup('tcp-no-port', { protocol: 'TCP', vpcIdentifier: VPC0, protocolVersion: 'HTTP1' }));
  assert.deepEqual(fieldNames(e), ['config.port', 'config.protocolVersion']);

  e = await expectError(createGroup('lambda-extra', { port: 80, vpcIdentifier: VPC0, healthCheck: {} }, 'LAMBDA'));
  assert.deepEqual(fieldNames(e), ['config.healthCheck', 'config.port', 'config.vpcIdentifier']);

  e = await expectError(createGroup('instance-v6', { protocol: 'HTTP', vpcIdentifier: VPC0, ipAddressType: 'IPV6' }, 'INSTANCE'));
  assert.deepEqual(fieldNames(e), ['config.ipAddressType']);

  e = await expectError(createGroup('alb-extra', { protocol: 'HTTP', vpcIdentifier: VPC0, healthCheck: { enabled: true }, protocolVersion: 'GRPC' }, 'ALB'));
  assert.deepEqual(fieldNames(e), ['config.healthCheck', 'config.protocolVersion']);

  e = await expectError(createGroup('bad-health', {
    protocol: 'HTTP', vpcIdentifier: VPC0,
    healthCheck: {
      protocol: 'TCP', protocolVersion: 'GRPC', port: 70000, path: 'no-slash', healthCheckIntervalSeconds: 3,
      healthCheckTimeoutSeconds: 121, healthyThresholdCount: 1, unhealthyThresholdCount: 11, matcher: { httpCode: '600' },
    },
  }));
  assert.deepEqual(fieldNames(e), ['config.healthCheck.healthCheckIntervalSeconds', 'config.healthCheck.healthCheckTimeoutSeconds',
    'config.healthCheck.healthyThresholdCount', 'config.healthCheck.matcher.httpCode', 'config.healthCheck.path',
    'config.healthCheck.port', 'config.healthCheck.protocol', 'config.healthCheck.protocolVersion',
    'config.healthCheck.unhealthyThresholdCount']);

  const tg = await createGroup('valid-for-update', { protocol: 'HTTP', vpcIdentifier: VPC0 });
  e = await expectError(send(new UpdateTargetGroupCommand({ targetGroupIdentifier: tg.id })));
  assert.deepEqual(fieldNames(e), ['healthCheck']);
  e = await expectError(send(new UpdateTargetGroupCommand({ targetGroupIdentifier: tg.id, healthCheck: { matcher: { httpCode: '200-100' } } })));
  assert.deepEqual(fieldNames(e), ['healthCheck.matcher.httpCode']);
  const lambda = await createGroup('lambda-no-hc', undefined, 'LAMBDA');
  e = await expectError(send(new UpdateTargetGroupCommand({ targetGroupIdentifier: lambda.id, healthCheck: { enabled: true } })));
  assert.equal(e.name, 'ValidationException');
  assert.deepEqual(fieldNames(e), ['healthCheck']);

  e = await expectError(send(new GetTargetGroupCommand({ targetGroupIdentifier: 'tg-short' })));
  assert.equal(e.name, 'ValidationException');
  e = await expectError(send(new GetTargetGroupCommand({ targetGroupIdentifier: 'tg-0123456789abcdef0' })));
  assert.equal(e.name, 'ResourceNotFoundException');
  assert.equal(e.resourceId, 'tg-0123456789abcdef0');
});

test('names are unique per account', async () => {
  await createGroup('dup-name', { protocol: 'HTTP', vpcIdentifier: VPC0 });
  const e = await expectError(createGroup('dup-name', { protocol: 'HTTPS', vpcIdentifier: VPC1 }));
  assert.equal(e.name, 'ConflictException');
  assert.equal(e.$metadata.httpStatusCode, 409);
  assert.equal(e.resourceType, 'TARGET_GROUP');
});

test('idempotent create with clientToken', async () => {
  const input = { name: 'idem-tg', type: 'IP', config: { protocol: 'HTTP', vpcIdentifier: VPC0 }, clientToken: 'tg-token-1' };
  const first = await send(new CreateTargetGroupCommand(input));
  const second = await send(new CreateTargetGroupCommand(input));
  assert.equal(second.id, first.id);
  assert.deepEqual(second.config, first.config);
  const e = await expectError(send(new CreateTargetGroupCommand({ ...input, config: { protocol: 'HTTPS', vpcIdentifier: VPC0 } })));
  assert.equal(e.name, 'ConflictException');
  // Without the token the name is taken.
  const dup = await expectError(send(new CreateTargetGroupCommand({ ...input, clientToken: undefined })));
  assert.equal(dup.name, 'ConflictException');
});

test('pagination over more than one page', async () => {
  for (let i = 0; i < 5; i++) await createGroup(`page-tg-${i}`, { protocol: 'HTTP', vpcIdentifier: 'vpc-0123456789abcdef2' });
  const first = await send(new ListTargetGroupsCommand({ vpcIdentifier: 'vpc-0123456789abcdef2', maxResults: 2 }));
  assert.equal(first.items.length, 2);
  assert.ok(first.nextToken);
  const names = [];
  for await (const page of paginateListTargetGroups({ client: t.client, pageSize: 2 }, { vpcIdentifier: 'vpc-0123456789abcdef2' })) {
    assert.ok(page.items.length <= 2);
    names.push(...page.items.map((i) => i.name));
  }
  assert.deepEqual(names.sort(), ['page-tg-0', 'page-tg-1', 'page-tg-2', 'page-tg-3', 'page-tg-4']);
  const bad = await expectError(send(new ListTargetGroupsCommand({ maxResults: 101 })));
  assert.deepEqual(fieldNames(bad), ['maxResults']);
  const badToken = await expectError(send(new ListTargetGroupsCommand({ nextToken: 'garbage' })));
  assert.deepEqual(fieldNames(badToken), ['nextToken']);
});

test('IP targets: register, re-register, list, deregister, drain', async () => {
  const tg = await createGroup('ip-targets', { protocol: 'HTTP', port: 8080, vpcIdentifier: VPC0 });
  const reg = await send(new RegisterTargetsCommand({
    targetGroupIdentifier: tg.arn,
    targets: [{ id: '127.0.0.1' }, { id: '127.0.0.2', port: 9090 }, { id: 'not-an-ip' }, { id: '2001:db8::1' }],
  }));
  assert.deepEqual(reg.successful, [{ id: '127.0.0.1', port: 8080 }, { id: '127.0.0.2', port: 9090 }]);
  assert.deepEqual(reg.unsuccessful.map((u) => [u.id, u.failureCode]), [['not-an-ip', 'InvalidTargetId'], ['2001:db8::1', 'InvalidTargetId']]);
  assert.ok(reg.unsuccessful.every((u) => u.failureMessage.length > 0));

  // Registering again is a success and adds nothing.
  const again = await send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: '127.0.0.1', port: 8080 }] }));
  assert.deepEqual(again.successful, [{ id: '127.0.0.1', port: 8080 }]);
  assert.deepEqual(again.unsuccessful, []);

  let list = await send(new ListTargetsCommand({ targetGroupIdentifier: tg.id }));
  assert.deepEqual(list.items.map((i) => [i.id, i.port, i.status]), [['127.0.0.1', 8080, 'UNUSED'], ['127.0.0.2', 9090, 'UNUSED']]);
  assert.ok(list.items.every((i) => i.reasonCode));

  const dereg = await send(new DeregisterTargetsCommand({
    targetGroupIdentifier: tg.id, targets: [{ id: '127.0.0.2', port: 9090 }, { id: '127.9.9.9' }],
  }));
  assert.deepEqual(dereg.successful, [{ id: '127.0.0.2', port: 9090 }]);
  assert.deepEqual(dereg.unsuccessful.map((u) => [u.id, u.port, u.failureCode]), [['127.9.9.9', 8080, 'TargetNotFound']]);
  list = await send(new ListTargetsCommand({ targetGroupIdentifier: tg.id }));
  assert.deepEqual(list.items.map((i) => [i.id, i.status]), [['127.0.0.1', 'UNUSED'], ['127.0.0.2', 'DRAINING']]);

  // Registering a draining target takes it back.
  await send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: '127.0.0.2', port: 9090 }] }));
  list = await send(new ListTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: '127.0.0.2' }] }));
  assert.deepEqual(list.items.map((i) => [i.id, i.status]), [['127.0.0.2', 'UNUSED']]);

  const v6 = await createGroup('ip6-targets', { protocol: 'HTTP', ipAddressType: 'IPV6', vpcIdentifier: VPC0 });
  const reg6 = await send(new RegisterTargetsCommand({ targetGroupIdentifier: v6.id, targets: [{ id: 'fd00::5' }, { id: '127.0.0.1' }] }));
  assert.deepEqual(reg6.successful, [{ id: 'fd00::5', port: 80 }]);
  assert.deepEqual(reg6.unsuccessful.map((u) => u.failureCode), ['InvalidTargetId']);
});

test('targets: validation, quota and pagination', async () => {
  const tg = await createGroup('quota-targets', { protocol: 'HTTP', vpcIdentifier: VPC0 });
  let e = await expectError(send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [] })));
  assert.deepEqual(fieldNames(e), ['targets']);
  e = await expectError(send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ port: 0 }, { id: 'x'.repeat(201) }] })));
  assert.deepEqual(fieldNames(e), ['targets[0].id', 'targets[0].port', 'targets[1].id']);
  e = await expectError(send(new ListTargetsCommand({ targetGroupIdentifier: tg.id, targets: Array.from({ length: 21 }, (_, i) => ({ id: `10.0.0.${i}` })) })));
  assert.deepEqual(fieldNames(e), ['targets']);
  e = await expectError(send(new RegisterTargetsCommand({ targetGroupIdentifier: 'tg-0123456789abcdef0', targets: [{ id: '127.0.0.1' }] })));
  assert.equal(e.name, 'ResourceNotFoundException');

  // Quota: 5 targets per group in this server's config.
  const five = Array.from({ length: 5 }, (_, i) => ({ id: `10.1.0.${i + 1}` }));
  const ok = await send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: five }));
  assert.equal(ok.successful.length, 5);
  e = await expectError(send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: '127.1.0.99' }] })));
  assert.equal(e.name, 'ServiceQuotaExceededException');
  assert.equal(e.$metadata.httpStatusCode, 402);
  assert.equal(e.quotaCode, 'L-D71303F3');
  assert.equal(e.serviceCode, 'vpc-lattice');
  const still = await send(new ListTargetsCommand({ targetGroupIdentifier: tg.id }));
  assert.equal(still.items.length, 5, 'a rejected registration changes nothing');

  const first = await send(new ListTargetsCommand({ targetGroupIdentifier: tg.id, maxResults: 2 }));
  assert.equal(first.items.length, 2);
  assert.ok(first.nextToken);
  const ids = [];
  for await (const page of paginateListTargets({ client: t.client, pageSize: 2 }, { targetGroupIdentifier: tg.id })) {
    assert.ok(page.items.length <= 2);
    ids.push(...page.items.map((i) => i.id));
  }
  assert.deepEqual(ids.sort(), five.map((x) => x.id).sort());
});

test('INSTANCE and LAMBDA targets', async () => {
  const inst = await createGroup('instance-targets', { protocol: 'HTTP', vpcIdentifier: VPC0 }, 'INSTANCE');
  let reg = await send(new RegisterTargetsCommand({ targetGroupIdentifier: inst.id, targets: [{ id: INSTANCE }, { id: 'i-00000000000000000' }] }));
  assert.deepEqual(reg.successful, [{ id: INSTANCE, port: 80 }]);
  assert.deepEqual(reg.unsuccessful.map((u) => u.failureCode), ['InvalidTargetId']);
  const elsewhere = await createGroup('instance-other-vpc', { protocol: 'HTTP', vpcIdentifier: VPC1 }, 'INSTANCE');
  reg = await send(new RegisterTargetsCommand({ targetGroupIdentifier: elsewhere.id, targets: [{ id: INSTANCE }] }));
  assert.deepEqual(reg.unsuccessful.map((u) => u.failureCode), ['TargetNotInVpc']);

  const lambda = await createGroup('lambda-targets', undefined, 'LAMBDA');
  reg = await send(new RegisterTargetsCommand({ targetGroupIdentifier: lambda.id, targets: [{ id: LAMBDA_ARN }, { id: 'hello' }] }));
  assert.deepEqual(reg.successful, [{ id: LAMBDA_ARN }]);
  assert.deepEqual(reg.unsuccessful.map((u) => u.failureCode), ['InvalidTargetId']);
  reg = await send(new RegisterTargetsCommand({ targetGroupIdentifier: lambda.id, targets: [{ id: `${LAMBDA_ARN}-two` }] }));
  assert.deepEqual(reg.unsuccessful.map((u) => u.failureCode), ['TooManyTargets']);
  const list = await send(new ListTargetsCommand({ targetGroupIdentifier: lambda.id }));
  assert.deepEqual(list.items.map((i) => [i.id, i.port]), [[LAMBDA_ARN, undefined]]);
});

test('serviceArns and target status follow the services that use the group', async () => {
  const tg = await createGroup('used-tg', { protocol: 'HTTP', vpcIdentifier: VPC0 });
  const off = await createGroup('used-tg-nohc', { protocol: 'HTTP', vpcIdentifier: VPC0, healthCheck: { enabled: false } });
  await send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: '127.2.0.1' }] }));
  await send(new RegisterTargetsCommand({ targetGroupIdentifier: off.id, targets: [{ id: '127.2.0.2' }] }));
  const svc = await send(new CreateServiceCommand({ name: 'tg-user' }));
  const listener = await send(new CreateListenerCommand({
    serviceIdentifier: svc.id, name: 'web', protocol: 'HTTP',
    defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: tg.arn, weight: 1 }, { targetGroupIdentifier: off.id, weight: 1 }] } },
  }));

  const got = await send(new GetTargetGroupCommand({ targetGroupIdentifier: tg.id }));
  assert.deepEqual(got.serviceArns, [svc.arn]);
  const list = await send(new ListTargetGroupsCommand({ vpcIdentifier: VPC0 }));
  assert.deepEqual(list.items.find((i) => i.id === off.id).serviceArns, [svc.arn]);

  const checked = await send(new ListTargetsCommand({ targetGroupIdentifier: tg.id }));
  assert.ok(['INITIAL', 'HEALTHY', 'UNHEALTHY'].includes(checked.items[0].status), checked.items[0].status);
  const unchecked = await send(new ListTargetsCommand({ targetGroupIdentifier: off.id }));
  assert.equal(unchecked.items[0].status, 'UNAVAILABLE');

  const inUse = await expectError(send(new DeleteTargetGroupCommand({ targetGroupIdentifier: tg.id })));
  assert.equal(inUse.name, 'ConflictException');
  assert.equal(inUse.resourceId, tg.id);
  await send(new DeleteListenerCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.id }));
  const free = await send(new GetTargetGroupCommand({ targetGroupIdentifier: tg.id }));
  assert.deepEqual(free.serviceArns, []);
  await send(new DeleteTargetGroupCommand({ targetGroupIdentifier: tg.id }));
});

test('quota on target groups per Region', async () => {
  const small = await startTrellis({ config: { quotas: { targetGroups: 2 } } });
  try {
    const c = (name) => small.client.send(new CreateTargetGroupCommand({ name, type: 'IP', config: { protocol: 'HTTP', vpcIdentifier: VPC0 } }));
    await c('q-one');
    await c('q-two');
    const e = await expectError(c('q-three'));
    assert.equal(e.name, 'ServiceQuotaExceededException');
    assert.equal(e.$metadata.httpStatusCode, 402);
    assert.equal(e.quotaCode, 'L-BB11C6B9');
    assert.equal(e.resourceType, 'TARGET_GROUP');
  } finally {
    await small.stop();
  }
});

test('deregistered targets leave once drained', async () => {
  const fast = await startTrellis({ config: { drainSeconds: 1 } });
  try {
    const tg = await fast.client.send(new CreateTargetGroupCommand({ name: 'drain', type: 'IP', config: { protocol: 'HTTP', vpcIdentifier: VPC0 } }));
    await fast.client.send(new RegisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: '127.3.0.1' }, { id: '127.3.0.2' }] }));
    await fast.client.send(new DeregisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: '127.3.0.1' }] }));
    await sleep(2100);
    const list = await fast.client.send(new ListTargetsCommand({ targetGroupIdentifier: tg.id }));
    assert.deepEqual(list.items.map((i) => i.id), ['127.3.0.2']);
    // Deregistering it again: it is gone.
    const again = await fast.client.send(new DeregisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: [{ id: '127.3.0.1' }] }));
    assert.deepEqual(again.unsuccessful.map((u) => u.failureCode), ['TargetNotFound']);
  } finally {
    await fast.stop();
  }
});
