// Listeners and rules through the real AWS SDK for JavaScript.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  CreateListenerCommand, GetListenerCommand, UpdateListenerCommand, DeleteListenerCommand, ListListenersCommand,
  paginateListListeners, CreateRuleCommand, GetRuleCommand, UpdateRuleCommand, DeleteRuleCommand, ListRulesCommand,
  paginateListRules, BatchUpdateRuleCommand, CreateServiceCommand, CreateTargetGroupCommand, DeleteTargetGroupCommand,
  ListTagsForResourceCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, expectError, ACCOUNT, REGION } from './harness.mjs';

const VPC = 'vpc-0123456789abcdef0';

let t;
before(async () => {
  t = await startTrellis({ config: { quotas: { targetGroupsPerService: 3, rulesPerListener: 4 } } });
});
after(async () => { await t?.stop(); });

const send = (command) => t.client.send(command);
const fieldNames = (e) => e.fieldList.map((f) => f.name).sort();
const service = (name, extra = {}) => send(new CreateServiceCommand({ name, ...extra }));
const group = (name, protocol = 'HTTP', extra = {}) => send(new CreateTargetGroupCommand({
  name, type: 'IP', config: { protocol, vpcIdentifier: VPC, ...(protocol === 'TCP' ? { port: 443 } : {}), ...extra },
}));
const forward = (...tgs) => ({ forward: { targetGroups: tgs.map((tg) => (typeof tg === 'string' ? { targetGroupIdentifier: tg } : tg)) } });
const fixed = (statusCode) => ({ fixedResponse: { statusCode } });
const listener = (svc, name, defaultAction, extra = {}) =>
  send(new CreateListenerCommand({ serviceIdentifier: svc.id, name, protocol: 'HTTP', defaultAction, ...extra }));
const rule = (svc, lst, name, priority, action, match = { httpMatch: { pathMatch: { match: { prefix: `/${name}` } } } }, extra = {}) =>
  send(new CreateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id, name, priority, match, action, ...extra }));

test('listener lifecycle with its default rule', async () => {
  const svc = await service('lst-life');
  const tg = await group('lst-life-tg');
  const created = await listener(svc, 'web', forward(tg.arn), { tags: { env: 'dev' } });
  assert.equal(created.$metadata.httpStatusCode, 201);
  assert.match(created.id, /^listener-[0-9a-f]{17}$/);
  assert.equal(created.arn, `arn:aws:vpc-lattice:${REGION}:${ACCOUNT}:service/${svc.id}/listener/${created.id}`);
  assert.equal(created.port, 80, 'HTTP defaults to port 80');
  assert.equal(created.serviceId, svc.id);
  assert.equal(created.serviceArn, svc.arn);
  // The ARN the caller gave is stored as the bare id, with the implicit weight.
  assert.deepEqual(created.defaultAction, { forward: { targetGroups: [{ targetGroupIdentifier: tg.id, weight: 100 }] } });
  assert.deepEqual((await send(new ListTagsForResourceCommand({ resourceArn: created.arn }))).tags, { env: 'dev' });

  // ARNs in the path (percent-encoded by the SDK) for both service and listener.
  const got = await send(new GetListenerCommand({ serviceIdentifier: svc.arn, listenerIdentifier: created.arn }));
  assert.equal(got.id, created.id);
  assert.equal(got.name, 'web');
  assert.equal(got.protocol, 'HTTP');
  assert.ok(got.createdAt instanceof Date && got.lastUpdatedAt instanceof Date);

  // The default rule is visible and mirrors the default action.
  let rules = await send(new ListRulesCommand({ serviceIdentifier: svc.id, listenerIdentifier: created.id }));
  assert.equal(rules.items.length, 1);
  const def = rules.items[0];
  assert.equal(def.isDefault, true);
  assert.equal(def.id, `rule-${created.id.slice('listener-'.length)}`, 'a stable id derived from the listener');
  let defRule = await send(new GetRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: created.id, ruleIdentifier: def.arn }));
  assert.equal(defRule.isDefault, true);
  assert.deepEqual(defRule.action, created.defaultAction);

  const updated = await send(new UpdateListenerCommand({ serviceIdentifier: svc.id, listenerIdentifier: created.id, defaultAction: fixed(404) }));
  assert.deepEqual(updated.defaultAction, { fixedResponse: { statusCode: 404 } });
  assert.equal(updated.port, 80);
  defRule = await send(new GetRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: created.id, ruleIdentifier: def.id }));
  assert.deepEqual(defRule.action, { fixedResponse: { statusCode: 404 } });

  // The default rule is managed through the listener only.
  const upd = await expectError(send(new UpdateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: created.id, ruleIdentifier: def.id, priority: 5 })));
  assert.equal(upd.name, 'ValidationException');
  assert.deepEqual(fieldNames(upd), ['ruleIdentifier']);
  const del = await expectError(send(new DeleteRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: created.id, ruleIdentifier: def.id })));
  assert.equal(del.name, 'ConflictException');
  assert.equal(del.resourceType, 'RULE');

  const list = await send(new ListListenersCommand({ serviceIdentifier: svc.arn }));
  assert.deepEqual(list.items.map((i) => [i.id, i.name, i.protocol, i.port]), [[created.id, 'web', 'HTTP', 80]]);

  const deleted = await send(new DeleteListenerCommand({ serviceIdentifier: svc.id, listenerIdentifier: created.arn }));
  assert.equal(deleted.$metadata.httpStatusCode, 204);
  const gone = await expectError(send(new GetListenerCommand({ serviceIdentifier: svc.id, listenerIdentifier: created.id })));
  assert.equal(gone.name, 'ResourceNotFoundException');
  assert.equal(gone.resourceType, 'LISTENER');
  assert.deepEqual((await send(new ListListenersCommand({ serviceIdentifier: svc.id }))).items, []);
  // The target group it used is free again.
  await send(new DeleteTargetGroupCommand({ targetGroupIdentifier: tg.id }));
});

test('listener ports, names and the per-service quota', async () => {
  const svc = await service('lst-ports');
  const https = await listener(svc, 'secure', fixed(404), { protocol: 'HTTPS' });
  assert.equal(https.port, 443, 'HTTPS defaults to port 443');
  const samePort = await expectError(listener(svc, 'other', fixed(404), { protocol: 'HTTP', port: 443 }));
  assert.equal(samePort.name, 'ConflictException');
  assert.equal(samePort.resourceId, https.id);
  const sameName = await expectError(listener(svc, 'secure', fixed(404), { port: 8080 }));
  assert.equal(sameName.name, 'ConflictException');
  assert.equal(sameName.resourceType, 'LISTENER');
  // The same name is fine in another service.
  const other = await service('lst-ports-2');
  await listener(other, 'secure', fixed(404));

  await listener(svc, 'plain', fixed(404));
  const quota = await expectError(listener(svc, 'third', fixed(404), { port: 8080 }));
  assert.equal(quota.name, 'ServiceQuotaExceededException');
  assert.equal(quota.$metadata.httpStatusCode, 402);
  assert.equal(quota.quotaCode, 'L-D64E952E');
  assert.equal(quota.resourceType, 'LISTENER');

  // Two listeners: two pages of one.
  const names = [];
  for await (const page of paginateListListeners({ client: t.client, pageSize: 1 }, { serviceIdentifier: svc.id })) {
    assert.ok(page.items.length <= 1);
    names.push(...page.items.map((i) => i.name));
  }
  assert.deepEqual(names.sort(), ['plain', 'secure']);

  // A listener of another service is not found under this one.
  const foreign = await send(new ListListenersCommand({ serviceIdentifier: other.id }));
  const e = await expectError(send(new GetListenerCommand({ serviceIdentifier: svc.id, listenerIdentifier: foreign.items[0].id })));
  assert.equal(e.name, 'ResourceNotFoundException');
});

test('listener validation lists every bad field', async () => {
  const svc = await service('lst-valid');
  let e = await expectError(send(new CreateListenerCommand({
    serviceIdentifier: svc.id, name: 'listener-x', protocol: 'UDP', port: 0,
    defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: 'tg-0123456789abcdef0' }] }, fixedResponse: { statusCode: 404 } },
  })));
  assert.equal(e.name, 'ValidationException');
  assert.equal(e.reason, 'fieldValidationFailed');
  assert.deepEqual(fieldNames(e), ['defaultAction', 'name', 'port', 'protocol']);

  e = await expectError(send(new CreateListenerCommand({ serviceIdentifier: svc.id })));
  assert.deepEqual(fieldNames(e), ['defaultAction', 'name', 'protocol']);

  e = await expectError(listener(svc, 'weights', forward(
    { targetGroupIdentifier: 'tg-0123456789abcdef0' },
    { targetGroupIdentifier: 'bogus', weight: 1000 },
    { targetGroupIdentifier: 'tg-0123456789abcdef0', weight: 1 })));
  assert.deepEqual(fieldNames(e), ['defaultAction.forward.targetGroups[0].weight',
    'defaultAction.forward.targetGroups[1].targetGroupIdentifier', 'defaultAction.forward.targetGroups[1].weight',
    'defaultAction.forward.targetGroups[2].targetGroupIdentifier']);

  const eleven = Array.from({ length: 11 }, () => ({ targetGroupIdentifier: 'tg-0123456789abcdef0', weight: 1 }));
  e = await expectError(listener(svc, 'many', { forward: { targetGroups: eleven } }));
  assert.deepEqual(fieldNames(e), ['defaultAction.forward.targetGroups']);
  e = await expectError(listener(svc, 'status', fixed(600)));
  assert.deepEqual(fieldNames(e), ['defaultAction.fixedResponse.statusCode']);
  e = await expectError(listener(svc, 'empty', {}));
  assert.deepEqual(fieldNames(e), ['defaultAction']);

  e = await expectError(send(new UpdateListenerCommand({ serviceIdentifier: svc.id, listenerIdentifier: 'listener-0123456789abcdef0' })));
  assert.deepEqual(fieldNames(e), ['defaultAction']);
  e = await expectError(send(new UpdateListenerCommand({ serviceIdentifier: svc.id, listenerIdentifier: 'listener-0123456789abcdef0', defaultAction: fixed(404) })));
  assert.equal(e.name, 'ResourceNotFoundException');
  e = await expectError(send(new GetListenerCommand({ serviceIdentifier: svc.id, listenerIdentifier: 'listener-short' })));
  assert.equal(e.name, 'ValidationException');
  e = await expectError(listener({ id: 'svc-0123456789abcdef0' }, 'nosvc', fixed(404)));
  assert.equal(e.name, 'ResourceNotFoundException');
  assert.equal(e.resourceType, 'SERVICE');
  e = await expectError(listener(svc, 'unknown-tg', forward('tg-0123456789abcdef0')));
  assert.equal(e.name, 'ResourceNotFoundException');
  assert.equal(e.resourceType, 'TARGET_GROUP');
});

test('target groups: protocol fit, one service per group, quota per service, delete while used', async () => {
  const svc = await service('tg-rules');
  const http = await group('tgr-http');
  const tcp = await group('tgr-tcp', 'TCP');
  let e = await expectError(listener(svc, 'tcp-on-http', forward(tcp.id)));
  assert.equal(e.name, 'ValidationException');
  assert.deepEqual(fieldNames(e), ['defaultAction.forward.targetGroups[0].targetGroupIdentifier']);

  const lst = await listener(svc, 'web', forward(http.id));
  const other = await service('tg-rules-other');
  e = await expectError(listener(other, 'steal', forward(http.arn)));
  assert.equal(e.name, 'ConflictException');
  assert.equal(e.resourceType, 'TARGET_GROUP');
  assert.equal(e.resourceId, http.id);

  e = await expectError(send(new DeleteTargetGroupCommand({ targetGroupIdentifier: http.id })));
  assert.equal(e.name, 'ConflictException');

  // Quota: 3 distinct target groups per service in this server's config (one is in use already).
  const [a, b, c] = [await group('tgr-a'), await group('tgr-b'), await group('tgr-c')];
  await rule(svc, lst, 'two-more', 10, forward({ targetGroupIdentifier: a.id, weight: 1 }, { targetGroupIdentifier: b.id, weight: 1 }));
  // Re-using groups the service already has is fine.
  await rule(svc, lst, 'same-again', 11, forward(http.id));
  e = await expectError(rule(svc, lst, 'one-too-many', 12, forward(c.id)));
  assert.equal(e.name, 'ServiceQuotaExceededException');
  assert.equal(e.quotaCode, 'L-3DEC3B9F');
  // Replacing a rule's groups is measured without its old ones.
  const r = await rule(svc, lst, 'swap', 13, forward(a.id));
  const swapped = await send(new UpdateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id, ruleIdentifier: r.id, action: forward(a.id) }));
  assert.deepEqual(swapped.action, forward({ targetGroupIdentifier: a.id, weight: 100 }));

  // Deleting the listener cascades its rules and frees every group.
  await send(new DeleteListenerCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id }));
  e = await expectError(send(new GetRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id, ruleIdentifier: r.id })));
  assert.equal(e.name, 'ResourceNotFoundException');
  for (const tg of [http, a, b]) await send(new DeleteTargetGroupCommand({ targetGroupIdentifier: tg.id }));
  await listener(other, 'now-free', forward(c.id));
});

test('TLS_PASSTHROUGH listeners', async () => {
  const plain = await service('tls-plain');
  const tcp = await group('tls-tcp', 'TCP');
  const http = await group('tls-http');
  let e = await expectError(listener(plain, 'tls', forward(tcp.id), { protocol: 'TLS_PASSTHROUGH', port: 443 }));
  assert.equal(e.name, 'ValidationException');
  assert.deepEqual(fieldNames(e), ['protocol']);

  const custom = await service('tls-custom', { customDomainName: 'tls.example.com' });
  e = await expectError(listener(custom, 'tls', forward(http.id), { protocol: 'TLS_PASSTHROUGH' }));
  assert.deepEqual(fieldNames(e), ['defaultAction.forward.targetGroups[0].targetGroupIdentifier']);
  e = await expectError(listener(custom, 'tls', fixed(404), { protocol: 'TLS_PASSTHROUGH' }));
  assert.deepEqual(fieldNames(e), ['defaultAction']);
  const tls = await listener(custom, 'tls', forward(tcp.id), { protocol: 'TLS_PASSTHROUGH' });
  assert.equal(tls.protocol, 'TLS_PASSTHROUGH');
  assert.equal(tls.port, 443);
  e = await expectError(rule(custom, tls, 'nope', 1, fixed(404)));
  assert.equal(e.name, 'ValidationException');
  e = await expectError(send(new UpdateListenerCommand({ serviceIdentifier: custom.id, listenerIdentifier: tls.id, defaultAction: fixed(500) })));
  assert.equal(e.name, 'ValidationException');
});

test('rule lifecycle, priorities, names, quota and pagination', async () => {
  const svc = await service('rules-life');
  const [a, b] = [await group('rl-a'), await group('rl-b')];
  const lst = await listener(svc, 'web', fixed(404));
  const match = {
    httpMatch: {
      method: 'POST',
      pathMatch: { match: { prefix: '/api' }, caseSensitive: true },
      headerMatches: [{ name: 'x-env', match: { exact: 'prod' } }, { name: 'user-agent', match: { contains: 'curl' }, caseSensitive: false }],
    },
  };
  const created = await rule(svc, lst, 'api', 10, forward({ targetGroupIdentifier: a.arn, weight: 10 }, { targetGroupIdentifier: b.id, weight: 20 }), match, { tags: { k: 'v' } });
  assert.equal(created.$metadata.httpStatusCode, 201);
  assert.match(created.id, /^rule-[0-9a-f]{17}$/);
  assert.equal(created.arn, `${lst.arn}/rule/${created.id}`);
  assert.equal(created.priority, 10);
  assert.deepEqual(created.match, match);
  assert.deepEqual(created.action, forward({ targetGroupIdentifier: a.id, weight: 10 }, { targetGroupIdentifier: b.id, weight: 20 }));

  const got = await send(new GetRuleCommand({ serviceIdentifier: svc.arn, listenerIdentifier: lst.arn, ruleIdentifier: created.arn }));
  assert.equal(got.isDefault, false);
  assert.equal(got.name, 'api');
  assert.deepEqual(got.match, match);
  assert.ok(got.createdAt instanceof Date);

  const updated = await send(new UpdateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id, ruleIdentifier: created.id, priority: 20, action: fixed(500) }));
  assert.equal(updated.priority, 20);
  assert.deepEqual(updated.action, fixed(500));
  assert.deepEqual(updated.match, match, 'members not given keep their value');

  let e = await expectError(rule(svc, lst, 'clash', 20, fixed(404)));
  assert.equal(e.name, 'ConflictException');
  assert.equal(e.resourceId, created.id);
  e = await expectError(rule(svc, lst, 'api', 21, fixed(404)));
  assert.equal(e.name, 'ConflictException');
  const second = await rule(svc, lst, 'second', 30, fixed(404));
  e = await expectError(send(new UpdateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id, ruleIdentifier: second.id, priority: 20 })));
  assert.equal(e.name, 'ConflictException');

  // Quota: 4 rules per listener in this server's config (the default rule does not count).
  await rule(svc, lst, 'third', 40, fixed(404));
  await rule(svc, lst, 'fourth', 50, fixed(404));
  e = await expectError(rule(svc, lst, 'fifth', 60, fixed(404)));
  assert.equal(e.name, 'ServiceQuotaExceededException');
  assert.equal(e.quotaCode, 'L-CF78395E');

  // 4 rules + the default rule, over pages of 2.
  const first = await send(new ListRulesCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id, maxResults: 2 }));
  assert.equal(first.items.length, 2);
  assert.ok(first.nextToken);
  const items = [];
  for await (const page of paginateListRules({ client: t.client, pageSize: 2 }, { serviceIdentifier: svc.id, listenerIdentifier: lst.id })) {
    items.push(...page.items);
  }
  assert.deepEqual(items.map((i) => i.name).sort(), ['api', 'default', 'fourth', 'second', 'third']);
  assert.deepEqual(items.filter((i) => i.isDefault).length, 1);
  assert.equal(items.find((i) => i.name === 'api').priority, 20);

  await send(new DeleteRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id, ruleIdentifier: second.arn }));
  e = await expectError(send(new GetRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id, ruleIdentifier: second.id })));
  assert.equal(e.name, 'ResourceNotFoundException');
  assert.equal(e.resourceType, 'RULE');
  // Its name and priority are free again.
  await rule(svc, lst, 'second', 30, fixed(404));
});

test('rule validation lists every bad field', async () => {
  const svc = await service('rules-valid');
  const lst = await listener(svc, 'web', fixed(404));
  let e = await expectError(send(new CreateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id })));
  assert.deepEqual(fieldNames(e), ['action', 'match', 'name', 'priority']);

  e = await expectError(rule(svc, lst, 'rule-reserved', 2001, fixed(99), {
    httpMatch: {
      method: 'M'.repeat(17),
      pathMatch: { match: { exact: '/a', prefix: '/b' } },
      headerMatches: [{ name: '', match: { exact: 'x' } }, { name: 'h', match: {} }, { name: 'h2', match: { prefix: 'x'.repeat(201) } }],
    },
  }));
  assert.deepEqual(fieldNames(e), ['action.fixedResponse.statusCode', 'match.httpMatch.headerMatches[0].name',
    'match.httpMatch.headerMatches[1].match', 'match.httpMatch.headerMatches[2].match.prefix', 'match.httpMatch.method',
    'match.httpMatch.pathMatch.match', 'name', 'priority']);

  e = await expectError(rule(svc, lst, 'bad-path', 1, fixed(404), { httpMatch: { pathMatch: { match: { prefix: 'no-slash' } } } }));
  assert.deepEqual(fieldNames(e), ['match.httpMatch.pathMatch.match.prefix']);
  e = await expectError(rule(svc, lst, 'six-headers', 1, fixed(404), {
    httpMatch: { headerMatches: Array.from({ length: 6 }, (_, i) => ({ name: `h${i}`, match: { exact: 'x' } })) },
  }));
  assert.deepEqual(fieldNames(e), ['match.httpMatch.headerMatches']);
  e = await expectError(rule(svc, lst, 'no-http', 1, fixed(404), {}));
  assert.deepEqual(fieldNames(e), ['match']);
  e = await expectError(send(new UpdateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id, ruleIdentifier: 'rule-0123456789abcdef0', priority: 0 })));
  assert.deepEqual(fieldNames(e), ['priority']);
  e = await expectError(send(new UpdateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id, ruleIdentifier: 'rule-0123456789abcdef0', priority: 1 })));
  assert.equal(e.name, 'ResourceNotFoundException');
});

test('BatchUpdateRule applies each update on its own', async () => {
  const svc = await service('rules-batch');
  const tg = await group('rb-tg');
  const lst = await listener(svc, 'web', fixed(404));
  const r1 = await rule(svc, lst, 'one', 1, fixed(404));
  const r2 = await rule(svc, lst, 'two', 2, fixed(404));
  const defaultId = `rule-${lst.id.slice('listener-'.length)}`;
  const out = await send(new BatchUpdateRuleCommand({
    serviceIdentifier: svc.id, listenerIdentifier: lst.arn,
    rules: [
      { ruleIdentifier: r1.arn, priority: 5, action: forward(tg.arn) },
      { ruleIdentifier: 'rule-0123456789abcdef0', priority: 6 },
      { ruleIdentifier: r2.id, priority: 5 },
      { ruleIdentifier: defaultId, priority: 7 },
      { ruleIdentifier: r2.id, match: { httpMatch: { method: 'GET' } } },
    ],
  }));
  assert.deepEqual(out.successful.map((s) => [s.id, s.priority, s.isDefault]), [[r1.id, 5, false], [r2.id, 2, false]]);
  assert.deepEqual(out.successful[0].action, forward({ targetGroupIdentifier: tg.id, weight: 100 }));
  assert.deepEqual(out.successful[1].match, { httpMatch: { method: 'GET' } });
  assert.deepEqual(out.unsuccessful.map((u) => [u.ruleIdentifier, u.failureCode]), [
    ['rule-0123456789abcdef0', 'ResourceNotFoundException'],
    [r2.id, 'ConflictException'],
    [defaultId, 'ValidationException'],
  ]);
  assert.ok(out.unsuccessful.every((u) => u.failureMessage.length > 0));
  const got = await send(new GetRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id, ruleIdentifier: r1.id }));
  assert.equal(got.priority, 5);

  let e = await expectError(send(new BatchUpdateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: lst.id, rules: [] })));
  assert.deepEqual(fieldNames(e), ['rules']);
  e = await expectError(send(new BatchUpdateRuleCommand({
    serviceIdentifier: svc.id, listenerIdentifier: lst.id, rules: [{ priority: 3 }, { ruleIdentifier: r1.id, priority: 9999 }],
  })));
  assert.deepEqual(fieldNames(e), ['rules[0].ruleIdentifier', 'rules[1].priority']);
});

test('idempotent creates with clientToken', async () => {
  const svc = await service('idem-lr');
  const input = { serviceIdentifier: svc.id, name: 'web', protocol: 'HTTP', defaultAction: fixed(404), clientToken: 'listener-token' };
  const first = await send(new CreateListenerCommand(input));
  const second = await send(new CreateListenerCommand(input));
  assert.equal(second.id, first.id);
  let e = await expectError(send(new CreateListenerCommand({ ...input, defaultAction: fixed(500) })));
  assert.equal(e.name, 'ConflictException');
  assert.equal((await send(new ListListenersCommand({ serviceIdentifier: svc.id }))).items.length, 1);

  const ruleInput = {
    serviceIdentifier: svc.id, listenerIdentifier: first.id, name: 'r', priority: 1, clientToken: 'rule-token',
    match: { httpMatch: { method: 'GET' } }, action: fixed(404),
  };
  const r1 = await send(new CreateRuleCommand({ ...ruleInput, name: 'rrr' }));
  const r2 = await send(new CreateRuleCommand({ ...ruleInput, name: 'rrr' }));
  assert.equal(r2.id, r1.id);
  e = await expectError(send(new CreateRuleCommand({ ...ruleInput, name: 'rrr', priority: 2 })));
  assert.equal(e.name, 'ConflictException');
});
