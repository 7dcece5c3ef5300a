// The operations the AWS Gateway API Controller calls (README.md, "The AWS Gateway API Controller"), through
// the JS SDK, in the shapes the controller uses: lookups by name over paginated lists followed by
// ListTagsForResource (DISABLE_TAGGING_SERVICE_API=true), ARNs as identifiers, listeners found by port,
// rules read with GetRule and re-prioritised with BatchUpdateRule, targets chunked at 100, tagged
// associations, auth policies and access log subscriptions. The last test checks every operation of
// the list was exercised.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as L from '@aws-sdk/client-vpc-lattice';
import { startTrellis, ACCOUNT } from './harness.mjs';

const TAG = 'application-networking.k8s.aws/';
const CLUSTER = 'ops-cluster';
const VPC = 'vpc-0123456789abcdef0';
const MANAGED_BY = `${ACCOUNT}/${CLUSTER}/${VPC}`;

// The ~45 operations the controller calls.
const CONTROLLER_OPS = [
  'CreateService', 'GetService', 'UpdateService', 'DeleteService', 'ListServices',
  'CreateServiceNetwork', 'GetServiceNetwork', 'UpdateServiceNetwork', 'DeleteServiceNetwork', 'ListServiceNetworks',
  'CreateListener', 'GetListener', 'UpdateListener', 'DeleteListener', 'ListListeners',
  'CreateRule', 'GetRule', 'UpdateRule', 'DeleteRule', 'ListRules', 'BatchUpdateRule',
  'CreateTargetGroup', 'GetTargetGroup', 'UpdateTargetGroup', 'DeleteTargetGroup', 'ListTargetGroups',
  'RegisterTargets', 'DeregisterTargets', 'ListTargets',
  'CreateServiceNetworkServiceAssociation', 'GetServiceNetworkServiceAssociation',
  'DeleteServiceNetworkServiceAssociation', 'ListServiceNetworkServiceAssociations',
  'CreateServiceNetworkVpcAssociation', 'GetServiceNetworkVpcAssociation', 'UpdateServiceNetworkVpcAssociation',
  'DeleteServiceNetworkVpcAssociation', 'ListServiceNetworkVpcAssociations',
  'PutAuthPolicy', 'GetAuthPolicy', 'DeleteAuthPolicy',
  'CreateAccessLogSubscription', 'GetAccessLogSubscription', 'UpdateAccessLogSubscription',
  'DeleteAccessLogSubscription', 'ListAccessLogSubscriptions',
  'TagResource', 'UntagResource', 'ListTagsForResource',
];

let t;
const used = new Set();
const ids = {};

// Every call goes through here so the last test can tell which operations ran.
async function send(command) {
  used.add(command.constructor.name.replace(/Command$/, ''));
  return t.client.send(command);
}

// The controller's paginated walk (ListXxxPages): small pages so that paging really happens.
async function listAll(operation, input) {
  const items = [];
  for await (const page of L[`paginate${operation}`]({ client: t.client, pageSize: 2 }, input)) {
    used.add(operation);
    items.push(...(page.items ?? []));
  }
  return items;
}

async function tagsOf(arn) {
  return (await send(new L.ListTagsForResourceCommand({ resourceArn: arn }))).tags ?? {};
}

// The controller's "find by name, then check ownership by tags".
async function findByName(operation, name) {
  const matches = (await listAll(operation, {})).filter((i) => i.name === name);
  for (const m of matches) m.tags = await tagsOf(m.arn);
  return matches;
}

before(async () => {
  t = await startTrellis({ config: { quotas: { services: 50 } } });
  // Unrelated resources, so lookups have to page past them.
  for (let i = 0; i < 5; i++) {
    await send(new L.CreateServiceCommand({ name: `other-svc-${i}` }));
    await send(new L.CreateServiceNetworkCommand({ name: `other-net-${i}` }));
  }
});
after(async () => { await t?.stop(); });

test('service network: created with tags, found by name and tags across pages, VPC-associated with security groups', async () => {
  assert.deepEqual(await findByName('ListServiceNetworks', CLUSTER), []);
  const sn = await send(new L.CreateServiceNetworkCommand({ name: CLUSTER, tags: { [`${TAG}ManagedBy`]: MANAGED_BY } }));
  ids.sn = sn;
  const [found] = await findByName('ListServiceNetworks', CLUSTER);
  assert.equal(found.id, sn.id);
  assert.equal(found.tags[`${TAG}ManagedBy`], MANAGED_BY);
  assert.equal((await send(new L.GetServiceNetworkCommand({ serviceNetworkIdentifier: sn.arn }))).name, CLUSTER);

  // The VPC association the controller makes for DEFAULT_SERVICE_NETWORK / a VpcAssociationPolicy.
  const existing = await listAll('ListServiceNetworkVpcAssociations', { vpcIdentifier: VPC });
  assert.deepEqual(existing, []);
  const assoc = await send(new L.CreateServiceNetworkVpcAssociationCommand({
    serviceNetworkIdentifier: sn.arn, vpcIdentifier: VPC, securityGroupIds: ['sg-0123456789abcdef0'],
    tags: { [`${TAG}ManagedBy`]: MANAGED_BY } }));
  assert.equal(assoc.status, 'ACTIVE');
  ids.snva = assoc.id;
  await send(new L.UpdateServiceNetworkVpcAssociationCommand({ serviceNetworkVpcAssociationIdentifier: assoc.arn,
    securityGroupIds: ['sg-0123456789abcdef0', 'sg-0123456789abcdef1'] }));
  const got = await send(new L.GetServiceNetworkVpcAssociationCommand({ serviceNetworkVpcAssociationIdentifier: assoc.id }));
  assert.deepEqual([...got.securityGroupIds].sort(), ['sg-0123456789abcdef0', 'sg-0123456789abcdef1']);
  const [listed] = await listAll('ListServiceNetworkVpcAssociations', { vpcIdentifier: VPC });
  assert.equal(listed.serviceNetworkName, CLUSTER);
  // A second network cannot take the same VPC: the ConflictException the controller logs.
  const other = (await listAll('ListServiceNetworks', {})).find((n) => n.name === 'other-net-0');
  await assert.rejects(send(new L.CreateServiceNetworkVpcAssociationCommand({ serviceNetworkIdentifier: other.id, vpcIdentifier: VPC })),
    (e) => e.name === 'ConflictException');
});

test('route → service, listener by port, rules, target groups with tags, targets in chunks of 100', async () => {
  const svcName = 'checkoutroute-checkout';
  assert.deepEqual(await findByName('ListServices', svcName), []);
  const svc = await send(new L.CreateServiceCommand({ name: svcName, tags: {
    [`${TAG}ManagedBy`]: MANAGED_BY, [`${TAG}RouteName`]: 'checkoutroute', [`${TAG}RouteNamespace`]: 'checkout', [`${TAG}RouteType`]: 'http' } }));
  ids.svc = svc;
  const [found] = await findByName('ListServices', svcName);
  assert.equal(found.tags[`${TAG}RouteType`], 'http');
  assert.match(found.dnsEntry.domainName, /^checkoutroute-checkout-[0-9a-z]+\./);
  // The DNS name the controller writes into the route's lattice-assigned-domain-name annotation.
  const detail = await send(new L.GetServiceCommand({ serviceIdentifier: svc.arn }));
  assert.equal(detail.dnsEntry.domainName, found.dnsEntry.domainName);
  await send(new L.UpdateServiceCommand({ serviceIdentifier: svc.arn, authType: 'NONE' }));

  // Target groups: port 80 placeholder, identity by tags (the name has a random suffix).
  const tgTags = (svcNs) => ({ [`${TAG}ManagedBy`]: MANAGED_BY, [`${TAG}ClusterName`]: CLUSTER, [`${TAG}ServiceName`]: 'checkout',
    [`${TAG}ServiceNamespace`]: svcNs, [`${TAG}RouteName`]: 'checkoutroute', [`${TAG}RouteNamespace`]: 'checkout',
    [`${TAG}SourceTypeKey`]: 'HTTPRoute', [`${TAG}ProtocolVersion`]: 'HTTP1' });
  ids.tgs = [];
  for (const [ns, suffix] of [['checkout', 'abcdefghij'], ['checkoutv2', 'klmnopqrst']]) {
    const tg = await send(new L.CreateTargetGroupCommand({ name: `k8s-${ns}-checkout-${suffix}`, type: 'IP',
      config: { port: 80, protocol: 'HTTP', protocolVersion: 'HTTP1', ipAddressType: 'IPV4', vpcIdentifier: VPC,
        healthCheck: { enabled: true, protocol: 'HTTP', protocolVersion: 'HTTP1', path: '/', healthCheckIntervalSeconds: 30,
          healthCheckTimeoutSeconds: 5, healthyThresholdCount: 5, unhealthyThresholdCount: 2, matcher: { httpCode: '200' } } },
      tags: tgTags(ns) }));
    ids.tgs.push(tg);
  }
  const byVpc = await listAll('ListTargetGroups', { vpcIdentifier: VPC, targetGroupType: 'IP' });
  const mine = [];
  for (const tg of byVpc) if ((await tagsOf(tg.arn))[`${TAG}RouteName`] === 'checkoutroute') mine.push(tg.id);
  assert.deepEqual(mine.sort(), ids.tgs.map((g) => g.id).sort());
  // TargetGroupPolicy: health-check changes in place.
  await send(new L.UpdateTargetGroupCommand({ targetGroupIdentifier: ids.tgs[0].arn, healthCheck: { enabled: true,
    path: '/health', port: 8080, healthCheckIntervalSeconds: 10, healthCheckTimeoutSeconds: 1, healthyThresholdCount: 3,
    unhealthyThresholdCount: 2, matcher: { httpCode: '200' } } }));
  const tg0 = await send(new L.GetTargetGroupCommand({ targetGroupIdentifier: ids.tgs[0].id }));
  assert.equal(tg0.config.healthCheck.path, '/health');
  assert.equal(tg0.config.healthCheck.port, 8080);

  // 150 endpoints: registered in chunks of 100, listed across pages, some deregistered.
  const targets = Array.from({ length: 150 }, (_, i) => ({ id: `10.0.${Math.floor(i / 200)}.${(i % 200) + 1}`, port: 8080 }));
  for (let i = 0; i < targets.length; i += 100) {
    const out = await send(new L.RegisterTargetsCommand({ targetGroupIdentifier: ids.tgs[0].arn, targets: targets.slice(i, i + 100) }));
    assert.equal(out.unsuccessful.length, 0, JSON.stringify(out.unsuccessful));
  }
  assert.equal((await listAll('ListTargets', { targetGroupIdentifier: ids.tgs[0].id })).length, 150);
  const dereg = await send(new L.DeregisterTargetsCommand({ targetGroupIdentifier: ids.tgs[0].id, targets: targets.slice(100) }));
  assert.equal(dereg.successful.length, 50);
  const after = await listAll('ListTargets', { targetGroupIdentifier: ids.tgs[0].id });
  assert.equal(after.filter((x) => x.status === 'DRAINING').length, 50);

  // Listener found by port; default action fixed 404; rules created by priority.
  assert.deepEqual(await listAll('ListListeners', { serviceIdentifier: svc.id }), []);
  const listener = await send(new L.CreateListenerCommand({ serviceIdentifier: svc.arn, name: 'checkoutroute-checkout-80-http',
    protocol: 'HTTP', port: 80, defaultAction: { fixedResponse: { statusCode: 404 } }, tags: { [`${TAG}ManagedBy`]: MANAGED_BY } }));
  ids.listener = listener;
  const byPort = (await listAll('ListListeners', { serviceIdentifier: svc.id })).find((l) => l.port === 80);
  assert.equal(byPort.id, listener.id);
  await send(new L.UpdateListenerCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.arn,
    defaultAction: { fixedResponse: { statusCode: 404 } } }));
  assert.deepEqual((await send(new L.GetListenerCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.id }))).defaultAction,
    { fixedResponse: { statusCode: 404 } });

  const forward = { forward: { targetGroups: [{ targetGroupIdentifier: ids.tgs[0].arn, weight: 25 }, { targetGroupIdentifier: ids.tgs[1].id, weight: 75 }] } };
  const now = Math.floor(Date.now() / 1000);
  ids.rules = [];
  for (const [priority, prefix] of [[1, '/api'], [2, '/'], [3, '/old']]) {
    ids.rules.push(await send(new L.CreateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.id,
      name: `k8s-${now}-rule-${priority}`, priority, match: { httpMatch: { pathMatch: { match: { prefix } } } }, action: forward,
      tags: { [`${TAG}ManagedBy`]: MANAGED_BY } })));
  }
  // The controller reads every rule (ListRules, then GetRule) to diff against its model.
  const listed = await listAll('ListRules', { serviceIdentifier: svc.id, listenerIdentifier: listener.id });
  assert.equal(listed.length, 4);  // 3 rules + the default rule
  assert.equal(listed.filter((r) => r.isDefault).length, 1);
  const rule0 = await send(new L.GetRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.id, ruleIdentifier: ids.rules[0].arn }));
  assert.deepEqual(rule0.action.forward.targetGroups.map((g) => g.weight), [25, 75]);
  assert.equal(rule0.action.forward.targetGroups[0].targetGroupIdentifier, ids.tgs[0].id);
  await send(new L.UpdateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.id, ruleIdentifier: ids.rules[2].id,
    match: { httpMatch: { pathMatch: { match: { exact: '/old' } } } } }));
  // Priority changes go in one BatchUpdateRule: swap 1 and 2 through a free priority, as the controller does.
  const batch = await send(new L.BatchUpdateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.arn, rules: [
    { ruleIdentifier: ids.rules[0].arn, priority: 10 },
    { ruleIdentifier: ids.rules[1].id, priority: 1 },
    { ruleIdentifier: ids.rules[0].id, priority: 2 },
  ] }));
  assert.equal(batch.unsuccessful.length, 0, JSON.stringify(batch.unsuccessful));
  assert.equal(batch.successful.length, 3);
  const priorities = {};
  for (const r of ids.rules) {
    priorities[r.id] = (await send(new L.GetRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.id, ruleIdentifier: r.id }))).priority;
  }
  assert.deepEqual([priorities[ids.rules[0].id], priorities[ids.rules[1].id], priorities[ids.rules[2].id]], [2, 1, 3]);
  // A failing entry is reported, not thrown: the others still apply.
  const partial = await send(new L.BatchUpdateRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.id, rules: [
    { ruleIdentifier: ids.rules[2].id, priority: 1 }, { ruleIdentifier: ids.rules[2].id, priority: 4 }] }));
  assert.equal(partial.unsuccessful[0].failureCode, 'ConflictException');
  assert.equal(partial.successful[0].priority, 4);
  await send(new L.DeleteRuleCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.id, ruleIdentifier: ids.rules[2].arn }));
});

test('service-network associations, auth policies and access log subscriptions as the controller makes them', async () => {
  const { sn, svc } = ids;
  assert.deepEqual(await listAll('ListServiceNetworkServiceAssociations', { serviceIdentifier: svc.id }), []);
  const assoc = await send(new L.CreateServiceNetworkServiceAssociationCommand({ serviceIdentifier: svc.arn,
    serviceNetworkIdentifier: sn.arn, tags: { [`${TAG}ManagedBy`]: MANAGED_BY } }));
  ids.snsa = assoc;
  const [listed] = await listAll('ListServiceNetworkServiceAssociations', { serviceNetworkIdentifier: sn.id });
  assert.equal(listed.serviceName, svc.name);
  assert.equal((await tagsOf(assoc.arn))[`${TAG}ManagedBy`], MANAGED_BY);
  assert.equal((await send(new L.GetServiceNetworkServiceAssociationCommand({ serviceNetworkServiceAssociationIdentifier: assoc.id }))).status, 'ACTIVE');

  // IAMAuthPolicy on the Gateway (network) and on the route (service).
  const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: 'vpc-lattice-svcs:Invoke', Resource: '*' }] });
  for (const [identifier, update] of [[sn.arn, (a) => new L.UpdateServiceNetworkCommand({ serviceNetworkIdentifier: sn.id, authType: a })],
    [svc.arn, (a) => new L.UpdateServiceCommand({ serviceIdentifier: svc.id, authType: a })]]) {
    await send(update('AWS_IAM'));
    await send(new L.PutAuthPolicyCommand({ resourceIdentifier: identifier, policy }));
    const got = await send(new L.GetAuthPolicyCommand({ resourceIdentifier: identifier }));
    assert.equal(got.state, 'Active');
    assert.deepEqual(JSON.parse(got.policy), JSON.parse(policy));
    // Deleting the IAMAuthPolicy: authType back to NONE, policy removed.
    await send(update('NONE'));
    await send(new L.DeleteAuthPolicyCommand({ resourceIdentifier: identifier }));
  }
  assert.equal((await send(new L.GetServiceNetworkCommand({ serviceNetworkIdentifier: sn.id }))).authType, 'NONE');

  // AccessLogPolicy: one subscription per destination type; the ARN is kept in an annotation.
  const als = await send(new L.CreateAccessLogSubscriptionCommand({ resourceIdentifier: svc.arn,
    destinationArn: `arn:aws:logs:us-east-1:${ACCOUNT}:log-group:checkout`, tags: { [`${TAG}ManagedBy`]: MANAGED_BY } }));
  const [sub] = await listAll('ListAccessLogSubscriptions', { resourceIdentifier: svc.id });
  assert.equal(sub.id, als.id);
  await send(new L.UpdateAccessLogSubscriptionCommand({ accessLogSubscriptionIdentifier: als.arn,
    destinationArn: `arn:aws:logs:us-east-1:${ACCOUNT}:log-group:checkout-2` }));
  assert.match((await send(new L.GetAccessLogSubscriptionCommand({ accessLogSubscriptionIdentifier: als.id }))).destinationArn, /checkout-2$/);
  await send(new L.DeleteAccessLogSubscriptionCommand({ accessLogSubscriptionIdentifier: als.arn }));

  // Extra user tags from the `tags` annotation, then removed.
  await send(new L.TagResourceCommand({ resourceArn: svc.arn, tags: { team: 'payments' } }));
  assert.equal((await tagsOf(svc.arn)).team, 'payments');
  await send(new L.UntagResourceCommand({ resourceArn: svc.arn, tagKeys: ['team'] }));
  assert.equal((await tagsOf(svc.arn)).team, undefined);
});

test('teardown in the controller order leaves nothing behind', async () => {
  const { sn, svc, listener } = ids;
  await send(new L.DeleteServiceNetworkServiceAssociationCommand({ serviceNetworkServiceAssociationIdentifier: ids.snsa.arn }));
  await send(new L.DeleteListenerCommand({ serviceIdentifier: svc.id, listenerIdentifier: listener.arn }));
  await send(new L.DeleteServiceCommand({ serviceIdentifier: svc.arn }));
  for (const tg of ids.tgs) {
    const remaining = await listAll('ListTargets', { targetGroupIdentifier: tg.id });
    const active = remaining.filter((x) => x.status !== 'DRAINING').map(({ id, port }) => ({ id, port }));
    if (active.length) await send(new L.DeregisterTargetsCommand({ targetGroupIdentifier: tg.id, targets: active }));
    await send(new L.DeleteTargetGroupCommand({ targetGroupIdentifier: tg.arn }));
  }
  await send(new L.DeleteServiceNetworkVpcAssociationCommand({ serviceNetworkVpcAssociationIdentifier: ids.snva }));
  await send(new L.DeleteServiceNetworkCommand({ serviceNetworkIdentifier: sn.arn }));
  assert.deepEqual(await findByName('ListServiceNetworks', CLUSTER), []);
  assert.deepEqual(await findByName('ListServices', svc.name), []);
  assert.deepEqual(await listAll('ListTargetGroups', { vpcIdentifier: VPC }), []);
  assert.deepEqual(await listAll('ListServiceNetworkVpcAssociations', { vpcIdentifier: VPC }), []);
});

test('every operation the controller calls was exercised', () => {
  const missing = CONTROLLER_OPS.filter((op) => !used.has(op));
  assert.deepEqual(missing, []);
  assert.ok(CONTROLLER_OPS.length >= 45);
});
