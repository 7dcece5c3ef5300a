// VPC resources through the real AWS SDK for JavaScript: resource gateways, resource configurations (SINGLE,
// GROUP with children, CHILD, ARN), service-network resource associations, the resource endpoint and
// service-network endpoint associations of the config's VPC endpoints, and domain verifications.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import {
  CreateResourceGatewayCommand, GetResourceGatewayCommand, UpdateResourceGatewayCommand,
  DeleteResourceGatewayCommand, ListResourceGatewaysCommand, paginateListResourceGateways,
  CreateResourceConfigurationCommand, GetResourceConfigurationCommand, UpdateResourceConfigurationCommand,
  DeleteResourceConfigurationCommand, ListResourceConfigurationsCommand, paginateListResourceConfigurations,
  CreateServiceNetworkResourceAssociationCommand, GetServiceNetworkResourceAssociationCommand,
  DeleteServiceNetworkResourceAssociationCommand, ListServiceNetworkResourceAssociationsCommand,
  ListResourceEndpointAssociationsCommand, DeleteResourceEndpointAssociationCommand,
  ListServiceNetworkVpcEndpointAssociationsCommand,
  StartDomainVerificationCommand, GetDomainVerificationCommand, DeleteDomainVerificationCommand,
  ListDomainVerificationsCommand,
  CreateServiceNetworkCommand, DeleteServiceNetworkCommand, ListServiceNetworksCommand,
  TagResourceCommand, UntagResourceCommand, ListTagsForResourceCommand,
  PutResourcePolicyCommand, GetResourcePolicyCommand, PutAuthPolicyCommand,
  CreateAccessLogSubscriptionCommand, ListAccessLogSubscriptionsCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, expectError, BASE_CONFIG, ACCOUNT, REGION } from './harness.mjs';

const VPC = 'vpc-0123456789abcdef0';
const OTHER_VPC = 'vpc-0123456789abcdef1';
const QUOTA_VPC = 'vpc-0123456789abcdef2';
const GATEWAYS_PER_VPC = 12;
const CHILDREN_PER_GROUP = 2;
const DOMAIN_VERIFICATIONS = 3;

let t;
before(async () => {
  t = await startTrellis({
    config: {
      quotas: {
        resourceGatewaysPerVpc: GATEWAYS_PER_VPC,
        childResourceConfigurationsPerGroup: CHILDREN_PER_GROUP,
        domainVerifications: DOMAIN_VERIFICATIONS,
      },
    },
  });
});
after(async () => { await t?.stop(); });

const send = (command) => t.client.send(command);
let counter = 0;
const unique = (prefix) => `${prefix}-${++counter}`;
const gateway = (extra = {}) => send(new CreateResourceGatewayCommand({ name: unique('gw'), vpcIdentifier: VPC, ...extra }));
const single = (gw, extra = {}) => send(new CreateResourceConfigurationCommand({
  name: unique('db'), type: 'SINGLE', resourceGatewayIdentifier: gw, portRanges: ['5432'],
  resourceConfigurationDefinition: { ipResource: { ipAddress: '10.0.0.5' } }, ...extra,
}));
const fields = (e) => e.fieldList.map((f) => f.name).sort();
const arnOf = (kind, id) => `arn:aws:vpc-lattice:${REGION}:${ACCOUNT}:${kind}/${id}`;

// Rewrites the config file with `extra` over the test's config and reloads it (POST /reload).
async function reloadWith(extra) {
  const config = { ...BASE_CONFIG, quotas: { resourceGatewaysPerVpc: GATEWAYS_PER_VPC,
    childResourceConfigurationsPerGroup: CHILDREN_PER_GROUP, domainVerifications: DOMAIN_VERIFICATIONS }, ...extra };
  writeFileSync(t.configFile, JSON.stringify(config, null, 2));
  const response = await fetch(`${t.admin}/reload`, { method: 'POST' });
  assert.equal(response.status, 200, await response.text());
}

test('resource gateway lifecycle: create, get, update, list, tags, delete', async () => {
  const created = await gateway({ securityGroupIds: ['sg-0123456789abcdef0'], subnetIds: ['subnet-01234567'],
    ipv4AddressesPerEni: 4, tags: { team: 'data' } });
  assert.equal(created.$metadata.httpStatusCode, 201);
  assert.match(created.id, /^rgw-[0-9a-f]{17}$/);
  assert.equal(created.arn, arnOf('resourcegateway', created.id));
  assert.equal(created.status, 'ACTIVE');
  assert.equal(created.vpcIdentifier, VPC);
  assert.deepEqual(created.subnetIds, ['subnet-01234567']);
  assert.deepEqual(created.securityGroupIds, ['sg-0123456789abcdef0']);
  assert.equal(created.ipAddressType, 'IPV4');
  assert.equal(created.ipv4AddressesPerEni, 4);
  assert.equal(created.resourceConfigDnsResolution, 'IN_VPC');

  const got = await send(new GetResourceGatewayCommand({ resourceGatewayIdentifier: created.arn }));
  assert.equal(got.id, created.id);
  assert.equal(got.vpcId, VPC);
  assert.equal(got.name, created.name);
  assert.ok(got.createdAt instanceof Date);
  assert.ok(got.lastUpdatedAt instanceof Date);

  const updated = await send(new UpdateResourceGatewayCommand({ resourceGatewayIdentifier: created.id,
    securityGroupIds: ['sg-0123456789abcdef1'] }));
  assert.deepEqual(updated.securityGroupIds, ['sg-0123456789abcdef1']);
  assert.deepEqual((await send(new GetResourceGatewayCommand({ resourceGatewayIdentifier: created.id }))).securityGroupIds,
    ['sg-0123456789abcdef1']);
  // A security group of another VPC is refused; one that does not exist is not found.
  const otherVpc = await expectError(send(new UpdateResourceGatewayCommand({ resourceGatewayIdentifier: created.id,
    securityGroupIds: ['sg-0123456789abcdef2'] })));
  assert.equal(otherVpc.name, 'ValidationException');
  assert.deepEqual(fields(otherVpc), ['securityGroupIds[0]']);
  const noGroup = await expectError(send(new UpdateResourceGatewayCommand({ resourceGatewayIdentifier: created.id,
    securityGroupIds: ['sg-0123456789abcdef9'] })));
  assert.equal(noGroup.name, 'ResourceNotFoundException');

  const listed = (await send(new ListResourceGatewaysCommand({}))).items.find((g) => g.id === created.id);
  assert.equal(listed.vpcIdentifier, VPC);
  assert.equal(listed.status, 'ACTIVE');

  const tags = await send(new ListTagsForResourceCommand({ resourceArn: created.arn }));
  assert.deepEqual(tags.tags, { team: 'data' });
  await send(new TagResourceCommand({ resourceArn: created.arn, tags: { tier: 'gold' } }));
  await send(new UntagResourceCommand({ resourceArn: created.arn, tagKeys: ['team'] }));
  for (const tagKeys of [undefined, []]) {
    const noKeys = await expectError(send(new UntagResourceCommand({ resourceArn: created.arn, tagKeys })));
    assert.equal(noKeys.name, 'ValidationException');
    assert.deepEqual(fields(noKeys), ['tagKeys']);
  }
  assert.deepEqual((await send(new ListTagsForResourceCommand({ resourceArn: created.arn }))).tags, { tier: 'gold' });

  const deleted = await send(new DeleteResourceGatewayCommand({ resourceGatewayIdentifier: created.id }));
  assert.equal(deleted.$metadata.httpStatusCode, 200);
  assert.equal(deleted.status, 'DELETE_IN_PROGRESS');
  assert.equal(deleted.name, created.name);
  const gone = await expectError(send(new GetResourceGatewayCommand({ resourceGatewayIdentifier: created.id })));
  assert.equal(gone.name, 'ResourceNotFoundException');
  assert.equal(gone.resourceType, 'RESOURCE_GATEWAY');
  assert.equal(gone.resourceId, created.id);
  const tagsGone = await expectError(send(new ListTagsForResourceCommand({ resourceArn: created.arn })));
  assert.equal(tagsGone.name, 'ResourceNotFoundException');
});

test('resource gateway errors: fieldList, unknown VPC, duplicate name, quota per VPC, idempotency', async () => {
  const bad = await expectError(send(new CreateResourceGatewayCommand({ name: 'rgw-Bad', vpcIdentifier: 'vpc-x',
    ipAddressType: 'IPV5', ipv4AddressesPerEni: 63, resourceConfigDnsResolution: 'NOWHERE', securityGroupIds: ['sg-1'] })));
  assert.equal(bad.name, 'ValidationException');
  assert.equal(bad.reason, 'fieldValidationFailed');
  assert.deepEqual(fields(bad), ['ipAddressType', 'ipv4AddressesPerEni', 'name', 'resourceConfigDnsResolution',
    'securityGroupIds[0]', 'vpcIdentifier']);
  const missing = await expectError(send(new CreateResourceGatewayCommand({})));
  assert.deepEqual(fields(missing), ['name', 'vpcIdentifier']);
  const ipv6 = await expectError(gateway({ ipAddressType: 'IPV6', ipv4AddressesPerEni: 2 }));
  assert.deepEqual(fields(ipv6), ['ipv4AddressesPerEni']);

  const noVpc = await expectError(gateway({ vpcIdentifier: 'vpc-0123456789abcdeff' }));
  assert.equal(noVpc.name, 'ResourceNotFoundException');
  assert.equal(noVpc.resourceType, 'VPC');

  const first = await send(new CreateResourceGatewayCommand({ name: 'gw-quota-0', vpcIdentifier: QUOTA_VPC }));
  const dup = await expectError(send(new CreateResourceGatewayCommand({ name: 'gw-quota-0', vpcIdentifier: OTHER_VPC })));
  assert.equal(dup.name, 'ConflictException');
  assert.equal(dup.resourceId, first.id);
  for (let i = 1; i < GATEWAYS_PER_VPC; i++)
    await send(new CreateResourceGatewayCommand({ name: `gw-quota-${i}`, vpcIdentifier: QUOTA_VPC }));
  const quota = await expectError(send(new CreateResourceGatewayCommand({ name: 'gw-quota-c', vpcIdentifier: QUOTA_VPC })));
  assert.equal(quota.name, 'ServiceQuotaExceededException');
  assert.equal(quota.$metadata.httpStatusCode, 402);
  assert.equal(quota.resourceType, 'RESOURCE_GATEWAY');
  assert.equal(quota.serviceCode, 'vpc-lattice');
  assert.ok(quota.quotaCode);
  // Another VPC has its own quota.
  await send(new CreateResourceGatewayCommand({ name: 'gw-quota-c', vpcIdentifier: OTHER_VPC }));

  const input = { name: unique('gw'), vpcIdentifier: VPC, clientToken: unique('token') };
  const once = await send(new CreateResourceGatewayCommand(input));
  const again = await send(new CreateResourceGatewayCommand(input));
  assert.equal(again.id, once.id);
  const changed = await expectError(send(new CreateResourceGatewayCommand({ ...input, ipAddressType: 'DUALSTACK' })));
  assert.equal(changed.name, 'ConflictException');

  const unknown = await expectError(send(new DeleteResourceGatewayCommand({ resourceGatewayIdentifier: 'rgw-0123456789abcdef0' })));
  assert.equal(unknown.name, 'ResourceNotFoundException');
  assert.equal(unknown.resourceId, 'rgw-0123456789abcdef0');
  const malformed = await expectError(send(new GetResourceGatewayCommand({ resourceGatewayIdentifier: 'gw-1' })));
  assert.equal(malformed.name, 'ValidationException');
});

test('resource gateways page through ListResourceGateways', async () => {
  const ids = new Set();
  for await (const page of paginateListResourceGateways({ client: t.client, pageSize: 1 }, {})) {
    assert.ok(page.items.length <= 1);
    for (const item of page.items) ids.add(item.id);
  }
  const all = (await send(new ListResourceGatewaysCommand({}))).items.map((g) => g.id);
  assert.ok(all.length >= 3);
  assert.deepEqual([...ids].sort(), [...all].sort());
  const badToken = await expectError(send(new ListResourceGatewaysCommand({ nextToken: 'nope' })));
  assert.deepEqual(fields(badToken), ['nextToken']);
});

test('SINGLE resource configuration lifecycle: get, update, list by gateway, tags, policy, logs, delete', async () => {
  const gw = await gateway();
  const created = await single(gw.arn, { portRanges: ['5432', '8000-8100'], customDomainName: 'db.example.com',
    tags: { app: 'orders' } });
  assert.equal(created.$metadata.httpStatusCode, 201);
  assert.match(created.id, /^rcfg-[0-9a-f]{17}$/);
  assert.equal(created.arn, arnOf('resourceconfiguration', created.id));
  assert.equal(created.resourceGatewayId, gw.id);
  assert.equal(created.type, 'SINGLE');
  assert.equal(created.protocol, 'TCP');
  assert.equal(created.status, 'ACTIVE');
  assert.deepEqual(created.portRanges, ['5432', '8000-8100']);
  assert.deepEqual(created.resourceConfigurationDefinition, { ipResource: { ipAddress: '10.0.0.5' } });
  assert.equal(created.allowAssociationToShareableServiceNetwork, true);
  assert.equal(created.customDomainName, 'db.example.com');

  const got = await send(new GetResourceConfigurationCommand({ resourceConfigurationIdentifier: created.arn }));
  assert.equal(got.name, created.name);
  assert.equal(got.amazonManaged, false);
  assert.ok(got.lastUpdatedAt instanceof Date);

  const updated = await send(new UpdateResourceConfigurationCommand({ resourceConfigurationIdentifier: created.id,
    portRanges: ['6379'], allowAssociationToShareableServiceNetwork: false,
    resourceConfigurationDefinition: { dnsResource: { domainName: 'cache.internal', ipAddressType: 'IPV4' } } }));
  assert.deepEqual(updated.portRanges, ['6379']);
  assert.equal(updated.allowAssociationToShareableServiceNetwork, false);
  const after = await send(new GetResourceConfigurationCommand({ resourceConfigurationIdentifier: created.id }));
  assert.deepEqual(after.resourceConfigurationDefinition, { dnsResource: { domainName: 'cache.internal', ipAddressType: 'IPV4' } });
  assert.deepEqual(after.portRanges, ['6379']);
  const arnForSingle = await expectError(send(new UpdateResourceConfigurationCommand({
    resourceConfigurationIdentifier: created.id,
    resourceConfigurationDefinition: { arnResource: { arn: 'arn:aws:rds:us-east-1:111122223333:db:orders' } } })));
  assert.deepEqual(fields(arnForSingle), ['resourceConfigurationDefinition']);

  const byGateway = await send(new ListResourceConfigurationsCommand({ resourceGatewayIdentifier: gw.id }));
  assert.deepEqual(byGateway.items.map((c) => c.id), [created.id]);
  assert.equal(byGateway.items[0].type, 'SINGLE');
  assert.equal(byGateway.items[0].customDomainName, 'db.example.com');

  // Resource policies and access-log subscriptions take a resource configuration; auth policies do not.
  const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` },
    Action: 'vpc-lattice:CreateServiceNetworkResourceAssociation', Resource: created.arn }] });
  await send(new PutResourcePolicyCommand({ resourceArn: created.arn, policy }));
  assert.equal((await send(new GetResourcePolicyCommand({ resourceArn: created.arn }))).policy, policy);
  const auth = await expectError(send(new PutAuthPolicyCommand({ resourceIdentifier: created.id, policy })));
  assert.equal(auth.name, 'ValidationException');
  assert.deepEqual(fields(auth), ['resourceIdentifier']);
  const logs = await send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: created.arn,
    destinationArn: 'arn:aws:s3:::resource-logs' }));
  assert.equal(logs.resourceId, created.id);
  assert.equal(logs.serviceNetworkLogType, undefined);
  assert.equal((await send(new ListTagsForResourceCommand({ resourceArn: created.arn }))).tags.app, 'orders');

  // The gateway is in use.
  const inUse = await expectError(send(new DeleteResourceGatewayCommand({ resourceGatewayIdentifier: gw.id })));
  assert.equal(inUse.name, 'ConflictException');
  assert.equal(inUse.resourceId, gw.id);

  const deleted = await send(new DeleteResourceConfigurationCommand({ resourceConfigurationIdentifier: created.id }));
  assert.equal(deleted.$metadata.httpStatusCode, 204);
  const gone = await expectError(send(new GetResourceConfigurationCommand({ resourceConfigurationIdentifier: created.id })));
  assert.equal(gone.name, 'ResourceNotFoundException');
  assert.equal(gone.resourceType, 'RESOURCE_CONFIGURATION');
  // Its subscriptions and policy went with it; the gateway is free.
  assert.deepEqual((await send(new ListAccessLogSubscriptionsCommand({ resourceIdentifier: created.id }))).items, []);
  await send(new DeleteResourceGatewayCommand({ resourceGatewayIdentifier: gw.id }));
});

test('resource configuration validation: fieldList per type', async () => {
  const gw = await gateway();
  const bad = await expectError(send(new CreateResourceConfigurationCommand({ name: 'rcfg-x', type: 'DOUBLE',
    protocol: 'UDP', portRanges: ['0', '90-80', 'http'] })));
  assert.equal(bad.name, 'ValidationException');
  assert.deepEqual(fields(bad), ['name', 'portRanges[0]', 'portRanges[1]', 'portRanges[2]', 'protocol', 'type']);
  const missing = await expectError(send(new CreateResourceConfigurationCommand({})));
  assert.deepEqual(fields(missing), ['name', 'type']);
  // SINGLE needs a gateway, ports and a definition.
  const singleMissing = await expectError(send(new CreateResourceConfigurationCommand({ name: unique('c'), type: 'SINGLE' })));
  assert.deepEqual(fields(singleMissing), ['portRanges', 'resourceConfigurationDefinition', 'resourceGatewayIdentifier']);
  // A definition takes exactly one member, and a public address is not a resource.
  const two = await expectError(single(gw.id, { resourceConfigurationDefinition: {
    ipResource: { ipAddress: '10.0.0.1' }, dnsResource: { domainName: 'a.example.com' } } }));
  assert.deepEqual(fields(two), ['resourceConfigurationDefinition']);
  const publicIp = await expectError(single(gw.id, { resourceConfigurationDefinition: { ipResource: { ipAddress: '8.8.8.8' } } }));
  assert.deepEqual(fields(publicIp), ['resourceConfigurationDefinition.ipResource.ipAddress']);
  await single(gw.id, { resourceConfigurationDefinition: { ipResource: { ipAddress: 'fd00::5' } } });
  // GROUP takes no definition nor custom domain; CHILD takes no gateway, ports or protocol.
  const group = await expectError(send(new CreateResourceConfigurationCommand({ name: unique('g'), type: 'GROUP',
    resourceGatewayIdentifier: gw.id, portRanges: ['80'], customDomainName: 'x.example.com',
    resourceConfigurationDefinition: { ipResource: { ipAddress: '10.0.0.1' } } })));
  assert.deepEqual(fields(group), ['customDomainName', 'resourceConfigurationDefinition']);
  const child = await expectError(send(new CreateResourceConfigurationCommand({ name: unique('c'), type: 'CHILD',
    resourceGatewayIdentifier: gw.id, portRanges: ['80'], protocol: 'TCP', groupDomain: 'example.com',
    resourceConfigurationDefinition: { ipResource: { ipAddress: '10.0.0.1' } } })));
  assert.deepEqual(fields(child), ['groupDomain', 'portRanges', 'protocol', 'resourceConfigurationGroupIdentifier',
    'resourceGatewayIdentifier']);
  // ARN takes an RDS ARN and no ports.
  const arn = await expectError(send(new CreateResourceConfigurationCommand({ name: unique('a'), type: 'ARN',
    resourceGatewayIdentifier: gw.id, portRanges: ['5432'],
    resourceConfigurationDefinition: { arnResource: { arn: 'arn:aws:s3:::bucket-name-here' } } })));
  assert.deepEqual(fields(arn), ['portRanges', 'resourceConfigurationDefinition.arnResource.arn']);
  const rds = await send(new CreateResourceConfigurationCommand({ name: unique('a'), type: 'ARN', resourceGatewayIdentifier: gw.id,
    resourceConfigurationDefinition: { arnResource: { arn: 'arn:aws:rds:us-east-1:111122223333:db:orders' } } }));
  assert.equal(rds.type, 'ARN');
  assert.equal(rds.protocol, 'TCP');

  const noGateway = await expectError(single('rgw-0123456789abcdef0'));
  assert.equal(noGateway.name, 'ResourceNotFoundException');
  assert.equal(noGateway.resourceType, 'RESOURCE_GATEWAY');
  const name = unique('dup');
  const first = await single(gw.id, { name });
  const dup = await expectError(single(gw.id, { name }));
  assert.equal(dup.name, 'ConflictException');
  assert.equal(dup.resourceId, first.id);

  const input = { name: unique('idem'), type: 'SINGLE', resourceGatewayIdentifier: gw.id, portRanges: ['1-65535'],
    resourceConfigurationDefinition: { dnsResource: { domainName: 'db.internal' } }, clientToken: unique('tok') };
  const once = await send(new CreateResourceConfigurationCommand(input));
  assert.equal((await send(new CreateResourceConfigurationCommand(input))).id, once.id);
  const changed = await expectError(send(new CreateResourceConfigurationCommand({ ...input, portRanges: ['22'] })));
  assert.equal(changed.name, 'ConflictException');
  const unknown = await expectError(send(new UpdateResourceConfigurationCommand({
    resourceConfigurationIdentifier: 'rcfg-0123456789abcdef0', portRanges: ['80'] })));
  assert.equal(unknown.name, 'ResourceNotFoundException');
});

test('a GROUP with children added and removed, the children quota, and a group with children is in use', async () => {
  const gw = await gateway();
  const group = await send(new CreateResourceConfigurationCommand({ name: unique('grp'), type: 'GROUP',
    resourceGatewayIdentifier: gw.id, portRanges: ['443'], groupDomain: 'corp.example.com' }));
  assert.equal(group.groupDomain, 'corp.example.com');
  const child = (extra = {}) => send(new CreateResourceConfigurationCommand({ name: unique('kid'), type: 'CHILD',
    resourceConfigurationGroupIdentifier: group.arn,
    resourceConfigurationDefinition: { dnsResource: { domainName: 'api.internal' } }, ...extra }));
  const a = await child({ customDomainName: 'api.corp.example.com' });
  assert.equal(a.type, 'CHILD');
  assert.equal(a.resourceConfigurationGroupId, group.id);
  assert.equal(a.resourceGatewayId, gw.id);
  const outside = await expectError(child({ customDomainName: 'api.other.example.com' }));
  assert.equal(outside.name, 'ValidationException');
  assert.deepEqual(fields(outside), ['customDomainName']);
  const b = await child();
  const quota = await expectError(child());
  assert.equal(quota.name, 'ServiceQuotaExceededException');
  assert.equal(quota.resourceId, group.id);

  const children = await send(new ListResourceConfigurationsCommand({ resourceConfigurationGroupIdentifier: group.id }));
  assert.deepEqual(children.items.map((c) => c.id).sort(), [a.id, b.id].sort());
  // A child of a child (or of a SINGLE) is refused.
  const nested = await expectError(send(new CreateResourceConfigurationCommand({ name: unique('n'), type: 'CHILD',
    resourceConfigurationGroupIdentifier: a.id, resourceConfigurationDefinition: { ipResource: { ipAddress: '10.1.1.1' } } })));
  assert.deepEqual(fields(nested), ['resourceConfigurationGroupIdentifier']);

  const inUse = await expectError(send(new DeleteResourceConfigurationCommand({ resourceConfigurationIdentifier: group.id })));
  assert.equal(inUse.name, 'ConflictException');
  assert.equal(inUse.resourceId, group.id);
  // Removing a child frees a place.
  await send(new DeleteResourceConfigurationCommand({ resourceConfigurationIdentifier: b.id }));
  const c = await child();
  for (const id of [a.id, c.id]) await send(new DeleteResourceConfigurationCommand({ resourceConfigurationIdentifier: id }));
  assert.deepEqual((await send(new ListResourceConfigurationsCommand({ resourceConfigurationGroupIdentifier: group.id }))).items, []);
  await send(new DeleteResourceConfigurationCommand({ resourceConfigurationIdentifier: group.id }));
});

test('resource configurations page through ListResourceConfigurations', async () => {
  const gw = await gateway();
  const made = [];
  for (let i = 0; i < 5; i++) made.push((await single(gw.id)).id);
  const seen = [];
  for await (const page of paginateListResourceConfigurations({ client: t.client, pageSize: 2 },
    { resourceGatewayIdentifier: gw.arn })) {
    assert.ok(page.items.length <= 2);
    seen.push(...page.items.map((c) => c.id));
  }
  assert.deepEqual(seen.sort(), made.sort());
  const bad = await expectError(send(new ListResourceConfigurationsCommand({ resourceGatewayIdentifier: 'x', maxResults: 0 })));
  assert.deepEqual(fields(bad), ['maxResults', 'resourceGatewayIdentifier']);
  // An unknown gateway lists nothing.
  assert.deepEqual((await send(new ListResourceConfigurationsCommand({ resourceGatewayIdentifier: 'rgw-0123456789abcdef0' }))).items, []);
});

test('service network resource associations: lifecycle, duplicates, children, in-use deletes', async () => {
  const gw = await gateway();
  const cfg = await single(gw.id, { customDomainName: 'orders-db.example.com' });
  const sn = await send(new CreateServiceNetworkCommand({ name: unique('net') }));
  const created = await send(new CreateServiceNetworkResourceAssociationCommand({ resourceConfigurationIdentifier: cfg.arn,
    serviceNetworkIdentifier: sn.arn, privateDnsEnabled: true, tags: { a: 'b' } }));
  assert.equal(created.$metadata.httpStatusCode, 201);
  assert.match(created.id, /^snra-[0-9a-f]{17}$/);
  assert.equal(created.arn, arnOf('servicenetworkresourceassociation', created.id));
  assert.equal(created.status, 'ACTIVE');
  assert.equal(created.createdBy, ACCOUNT);
  assert.equal(created.privateDnsEnabled, true);

  const got = await send(new GetServiceNetworkResourceAssociationCommand({ serviceNetworkResourceAssociationIdentifier: created.id }));
  assert.equal(got.resourceConfigurationId, cfg.id);
  assert.equal(got.resourceConfigurationName, cfg.name);
  assert.equal(got.serviceNetworkId, sn.id);
  assert.equal(got.serviceNetworkName, sn.name);
  assert.equal(got.isManagedAssociation, false);
  assert.equal(got.dnsEntry.domainName, `${created.id}.${cfg.id}.7d67968.vpc-lattice-rsc.${REGION}.on.aws`);
  assert.equal(got.privateDnsEntry.domainName, 'orders-db.example.com');
  assert.deepEqual((await send(new ListTagsForResourceCommand({ resourceArn: created.arn }))).tags, { a: 'b' });

  const dup = await expectError(send(new CreateServiceNetworkResourceAssociationCommand({ resourceConfigurationIdentifier: cfg.id,
    serviceNetworkIdentifier: sn.id })));
  assert.equal(dup.name, 'ConflictException');
  assert.equal(dup.resourceId, created.id);

  const byNetwork = await send(new ListServiceNetworkResourceAssociationsCommand({ serviceNetworkIdentifier: sn.id }));
  assert.deepEqual(byNetwork.items.map((a) => a.id), [created.id]);
  assert.equal(byNetwork.items[0].dnsEntry.domainName, got.dnsEntry.domainName);
  const byConfig = await send(new ListServiceNetworkResourceAssociationsCommand({ resourceConfigurationIdentifier: cfg.arn,
    includeChildren: true }));
  assert.deepEqual(byConfig.items.map((a) => a.id), [created.id]);
  // The network logs its resources' connections to a destination of their own.
  const resourceLogs = await send(new CreateAccessLogSubscriptionCommand({ resourceIdentifier: sn.id,
    destinationArn: 'arn:aws:s3:::network-resource-logs', serviceNetworkLogType: 'RESOURCE' }));
  assert.equal(resourceLogs.serviceNetworkLogType, 'RESOURCE');
  const counted = (await send(new ListServiceNetworksCommand({}))).items.find((n) => n.id === sn.id);
  assert.equal(counted.numberOfAssociatedResourceConfigurations, 1);

  // In use: the network and the configuration cannot go while associated.
  const snInUse = await expectError(send(new DeleteServiceNetworkCommand({ serviceNetworkIdentifier: sn.id })));
  assert.equal(snInUse.name, 'ConflictException');
  assert.equal(snInUse.resourceType, 'SERVICE_NETWORK');
  const cfgInUse = await expectError(send(new DeleteResourceConfigurationCommand({ resourceConfigurationIdentifier: cfg.id })));
  assert.equal(cfgInUse.name, 'ConflictException');

  // A child is reached through its group's association.
  const group = await send(new CreateResourceConfigurationCommand({ name: unique('grp'), type: 'GROUP',
    resourceGatewayIdentifier: gw.id, portRanges: ['80'] }));
  const kid = await send(new CreateResourceConfigurationCommand({ name: unique('kid'), type: 'CHILD',
    resourceConfigurationGroupIdentifier: group.id, resourceConfigurationDefinition: { ipResource: { ipAddress: '10.2.2.2' } } }));
  const childAssoc = await expectError(send(new CreateServiceNetworkResourceAssociationCommand({
    resourceConfigurationIdentifier: kid.id, serviceNetworkIdentifier: sn.id })));
  assert.deepEqual(fields(childAssoc), ['resourceConfigurationIdentifier']);

  const bad = await expectError(send(new CreateServiceNetworkResourceAssociationCommand({ resourceConfigurationIdentifier: 'x' })));
  assert.deepEqual(fields(bad), ['resourceConfigurationIdentifier', 'serviceNetworkIdentifier']);
  const unknown = await expectError(send(new CreateServiceNetworkResourceAssociationCommand({
    resourceConfigurationIdentifier: cfg.id, serviceNetworkIdentifier: 'sn-0123456789abcdef0' })));
  assert.equal(unknown.name, 'ResourceNotFoundException');
  assert.equal(unknown.resourceType, 'SERVICE_NETWORK');

  const idem = { resourceConfigurationIdentifier: group.id, serviceNetworkIdentifier: sn.id, clientToken: unique('tok') };
  const once = await send(new CreateServiceNetworkResourceAssociationCommand(idem));
  assert.equal((await send(new CreateServiceNetworkResourceAssociationCommand(idem))).id, once.id);

  for (const id of [created.id, once.id]) {
    const deleted = await send(new DeleteServiceNetworkResourceAssociationCommand({ serviceNetworkResourceAssociationIdentifier: id }));
    assert.equal(deleted.status, 'DELETE_IN_PROGRESS');
  }
  const gone = await expectError(send(new GetServiceNetworkResourceAssociationCommand({
    serviceNetworkResourceAssociationIdentifier: created.id })));
  assert.equal(gone.name, 'ResourceNotFoundException');
  assert.equal(gone.resourceType, 'SERVICE_NETWORK_RESOURCE_ASSOCIATION');
  await send(new DeleteServiceNetworkCommand({ serviceNetworkIdentifier: sn.id }));
  await send(new DeleteResourceConfigurationCommand({ resourceConfigurationIdentifier: cfg.id }));
});

test('VPC endpoints from the config: resource endpoint associations and service-network endpoint associations', async () => {
  const gw = await gateway();
  const cfg = await single(gw.id);
  const sn = await send(new CreateServiceNetworkCommand({ name: unique('net') }));
  const none = await send(new ListResourceEndpointAssociationsCommand({ resourceConfigurationIdentifier: cfg.id }));
  assert.deepEqual(none.items, []);
  await reloadWith({ vpcEndpoints: [
    { id: 'vpce-0123456789abcdef0', vpcId: OTHER_VPC, type: 'Resource', target: cfg.arn },
    { id: 'vpce-0123456789abcdef1', vpcId: VPC, type: 'Resource', target: cfg.arn },
    { id: 'vpce-0123456789abcdef2', vpcId: OTHER_VPC, type: 'ServiceNetwork', target: sn.arn },
  ] });

  const listed = await send(new ListResourceEndpointAssociationsCommand({ resourceConfigurationIdentifier: cfg.arn }));
  assert.equal(listed.items.length, 2);
  for (const item of listed.items) {
    assert.match(item.id, /^rea-[0-9a-f]{17}$/);
    assert.equal(item.arn, arnOf('resourceendpointassociation', item.id));
    assert.equal(item.resourceConfigurationId, cfg.id);
    assert.equal(item.resourceConfigurationName, cfg.name);
    assert.equal(item.vpcEndpointOwner, ACCOUNT);
  }
  assert.deepEqual(listed.items.map((i) => i.vpcEndpointId).sort(), ['vpce-0123456789abcdef0', 'vpce-0123456789abcdef1']);
  const page = await send(new ListResourceEndpointAssociationsCommand({ resourceConfigurationIdentifier: cfg.id, maxResults: 1 }));
  assert.equal(page.items.length, 1);
  const rest = await send(new ListResourceEndpointAssociationsCommand({ resourceConfigurationIdentifier: cfg.id,
    nextToken: page.nextToken }));
  assert.deepEqual([...page.items, ...rest.items].map((i) => i.id), listed.items.map((i) => i.id));
  const byEndpoint = await send(new ListResourceEndpointAssociationsCommand({ resourceConfigurationIdentifier: cfg.id,
    vpcEndpointId: 'vpce-0123456789abcdef1' }));
  assert.deepEqual(byEndpoint.items.map((i) => i.vpcEndpointId), ['vpce-0123456789abcdef1']);
  const bad = await expectError(send(new ListResourceEndpointAssociationsCommand({ vpcEndpointId: 'vpce-1' })));
  assert.deepEqual(fields(bad), ['resourceConfigurationIdentifier', 'vpcEndpointId']);

  // A configuration an endpoint reaches is in use.
  const inUse = await expectError(send(new DeleteResourceConfigurationCommand({ resourceConfigurationIdentifier: cfg.id })));
  assert.equal(inUse.name, 'ConflictException');

  const endpoints = await send(new ListServiceNetworkVpcEndpointAssociationsCommand({ serviceNetworkIdentifier: sn.id }));
  assert.equal(endpoints.items.length, 1);
  assert.equal(endpoints.items[0].vpcEndpointId, 'vpce-0123456789abcdef2');
  assert.equal(endpoints.items[0].vpcId, OTHER_VPC);
  assert.equal(endpoints.items[0].vpcEndpointOwnerId, ACCOUNT);
  assert.equal(endpoints.items[0].serviceNetworkArn, sn.arn);

  for (const item of listed.items) {
    const deleted = await send(new DeleteResourceEndpointAssociationCommand({ resourceEndpointAssociationIdentifier: item.arn }));
    assert.equal(deleted.id, item.id);
    assert.equal(deleted.vpcEndpointId, item.vpcEndpointId);
    assert.equal(deleted.resourceConfigurationId, cfg.id);
  }
  assert.deepEqual((await send(new ListResourceEndpointAssociationsCommand({ resourceConfigurationIdentifier: cfg.id }))).items, []);
  const again = await expectError(send(new DeleteResourceEndpointAssociationCommand({
    resourceEndpointAssociationIdentifier: listed.items[0].id })));
  assert.equal(again.name, 'ResourceNotFoundException');
  assert.equal(again.resourceType, 'RESOURCE_ENDPOINT_ASSOCIATION');
  await send(new DeleteResourceConfigurationCommand({ resourceConfigurationIdentifier: cfg.id }));
  await reloadWith({});
});

test('domain verifications: start, get, list, tags, duplicates, quota, idempotency, delete', async () => {
  const started = await send(new StartDomainVerificationCommand({ domainName: 'example.org', tags: { owner: 'dns' } }));
  assert.equal(started.$metadata.httpStatusCode, 201);
  assert.match(started.id, /^dv-[0-9a-f]{17}$/);
  assert.equal(started.arn, arnOf('domainverification', started.id));
  assert.equal(started.status, 'PENDING');
  assert.ok(started.txtMethodConfig.name.endsWith('example.org'));
  assert.match(started.txtMethodConfig.value, /^vpc-lattice:/);

  const got = await send(new GetDomainVerificationCommand({ domainVerificationIdentifier: started.arn }));
  assert.equal(got.domainName, 'example.org');
  assert.ok(got.createdAt instanceof Date);
  assert.deepEqual(got.tags, { owner: 'dns' });
  assert.deepEqual(got.txtMethodConfig, started.txtMethodConfig);

  const dup = await expectError(send(new StartDomainVerificationCommand({ domainName: 'EXAMPLE.org' })));
  assert.equal(dup.name, 'ConflictException');
  assert.equal(dup.resourceId, started.id);
  const bad = await expectError(send(new StartDomainVerificationCommand({ domainName: 'no spaces.example' })));
  assert.deepEqual(fields(bad), ['domainName']);

  const idem = { domainName: 'idem.example.org', clientToken: unique('tok') };
  const once = await send(new StartDomainVerificationCommand(idem));
  assert.equal((await send(new StartDomainVerificationCommand(idem))).id, once.id);
  await send(new StartDomainVerificationCommand({ domainName: 'third.example.org' }));
  const quota = await expectError(send(new StartDomainVerificationCommand({ domainName: 'fourth.example.org' })));
  assert.equal(quota.name, 'ServiceQuotaExceededException');
  assert.equal(quota.resourceType, 'DOMAIN_VERIFICATION');

  const firstPage = await send(new ListDomainVerificationsCommand({ maxResults: 2 }));
  assert.equal(firstPage.items.length, 2);
  const secondPage = await send(new ListDomainVerificationsCommand({ maxResults: 2, nextToken: firstPage.nextToken }));
  assert.equal(secondPage.items.length, 1);
  assert.equal(secondPage.nextToken, undefined);
  const listed = [...firstPage.items, ...secondPage.items].find((d) => d.id === started.id);
  assert.equal(listed.status, 'PENDING');
  assert.deepEqual(listed.tags, { owner: 'dns' });

  // A configuration's custom domain names the verification that covers it, whose status Get reports.
  const gw = await gateway();
  const cfg = await single(gw.id, { customDomainName: 'db.example.org', domainVerificationIdentifier: started.id });
  assert.equal(cfg.domainVerificationId, started.id);
  assert.equal(cfg.domainVerificationArn, started.arn);
  assert.equal((await send(new GetResourceConfigurationCommand({ resourceConfigurationIdentifier: cfg.id }))).domainVerificationStatus,
    'PENDING');
  const uncovered = await expectError(single(gw.id, { customDomainName: 'db.example.net', domainVerificationIdentifier: started.id }));
  assert.deepEqual(fields(uncovered), ['domainVerificationIdentifier']);
  const byVerification = await send(new ListResourceConfigurationsCommand({ domainVerificationIdentifier: started.id }));
  assert.deepEqual(byVerification.items.map((c) => c.id), [cfg.id]);

  await send(new DeleteDomainVerificationCommand({ domainVerificationIdentifier: started.id }));
  const gone = await expectError(send(new GetDomainVerificationCommand({ domainVerificationIdentifier: started.id })));
  assert.equal(gone.name, 'ResourceNotFoundException');
  assert.equal(gone.resourceType, 'DOMAIN_VERIFICATION');
  const unknown = await expectError(send(new DeleteDomainVerificationCommand({ domainVerificationIdentifier: started.id })));
  assert.equal(unknown.name, 'ResourceNotFoundException');
  // The freed place takes a new verification.
  await send(new StartDomainVerificationCommand({ domainName: 'fourth.example.org' }));
});
