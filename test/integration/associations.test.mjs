// Service network associations (with services and with VPCs) through the real AWS SDK for JavaScript.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  CreateServiceNetworkCommand, GetServiceNetworkCommand, DeleteServiceNetworkCommand,
  CreateServiceCommand, DeleteServiceCommand, ListTagsForResourceCommand,
  CreateServiceNetworkServiceAssociationCommand, GetServiceNetworkServiceAssociationCommand,
  DeleteServiceNetworkServiceAssociationCommand, ListServiceNetworkServiceAssociationsCommand,
  paginateListServiceNetworkServiceAssociations,
  CreateServiceNetworkVpcAssociationCommand, GetServiceNetworkVpcAssociationCommand,
  UpdateServiceNetworkVpcAssociationCommand, DeleteServiceNetworkVpcAssociationCommand,
  ListServiceNetworkVpcAssociationsCommand, ListServiceNetworkVpcEndpointAssociationsCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, expectError, BASE_CONFIG, ACCOUNT, REGION } from './harness.mjs';

// Extra VPCs so that tests which each need VPCs of their own (a VPC has one association) do not collide.
const extraVpcs = [3, 4, 5, 6, 7, 8].map((n) => ({ id: `vpc-0123456789abcdef${n}`, cidrs: [`127.0.${n + 1}.0/24`] }));
const extraGroups = [
  { id: 'sg-0123456789abcdef3', vpcId: 'vpc-0123456789abcdef3', ingress: [] },
  { id: 'sg-0123456789abcdef4', vpcId: 'vpc-0123456789abcdef3', ingress: [] },
  { id: 'sg-0123456789abcdef5', vpcId: 'vpc-0123456789abcdef3', ingress: [] },
];
const SERVICE_ASSOC_QUOTA = 8;
const VPC_ASSOC_QUOTA = 2;

let t;
before(async () => {
  t = await startTrellis({
    config: {
      vpcs: [...BASE_CONFIG.vpcs, ...extraVpcs],
      securityGroups: [...BASE_CONFIG.securityGroups, ...extraGroups],
      quotas: { serviceAssociationsPerServiceNetwork: SERVICE_ASSOC_QUOTA, vpcAssociationsPerServiceNetwork: VPC_ASSOC_QUOTA },
    },
  });
});
after(async () => { await t?.stop(); });

const send = (command) => t.client.send(command);
let counter = 0;
const unique = (prefix) => `${prefix}-${++counter}`;
const network = (extra = {}) => send(new CreateServiceNetworkCommand({ name: unique('net'), ...extra }));
const service = (extra = {}) => send(new CreateServiceCommand({ name: unique('app'), ...extra }));
const associate = (sn, svc, extra = {}) =>
  send(new CreateServiceNetworkServiceAssociationCommand({ serviceNetworkIdentifier: sn, serviceIdentifier: svc, ...extra }));

test('service association lifecycle with ARNs as identifiers', async () => {
  const sn = await network();
  const svc = await service({ customDomainName: 'orders.example.com' });
  const created = await associate(sn.arn, svc.arn, { tags: { env: 'test' } });
  assert.equal(created.$metadata.httpStatusCode, 200);
  assert.match(created.id, /^snsa-[0-9a-f]{17}$/);
  assert.equal(created.arn, `arn:aws:vpc-lattice:${REGION}:${ACCOUNT}:servicenetworkserviceassociation/${created.id}`);
  assert.equal(created.status, 'ACTIVE');
  assert.equal(created.createdBy, ACCOUNT);
  assert.equal(created.customDomainName, 'orders.example.com');
  assert.deepEqual(created.dnsEntry, svc.dnsEntry);

  // The SDK percent-encodes the ARN in the path.
  const got = await send(new GetServiceNetworkServiceAssociationCommand({ serviceNetworkServiceAssociationIdentifier: created.arn }));
  assert.equal(got.id, created.id);
  assert.equal(got.serviceId, svc.id);
  assert.equal(got.serviceName, svc.name);
  assert.equal(got.serviceArn, svc.arn);
  assert.equal(got.serviceNetworkId, sn.id);
  assert.equal(got.serviceNetworkName, sn.name);
  assert.equal(got.serviceNetworkArn, sn.arn);
  assert.equal(got.createdBy, ACCOUNT);
  assert.ok(got.createdAt instanceof Date && !Number.isNaN(got.createdAt.getTime()));
  assert.deepEqual(got.dnsEntry, svc.dnsEntry);
  assert.equal(got.customDomainName, 'orders.example.com');

  assert.equal((await send(new GetServiceNetworkCommand({ serviceNetworkIdentifier: sn.id }))).numberOfAssociatedServices, 1);
  assert.deepEqual((await send(new ListTagsForResourceCommand({ resourceArn: created.arn }))).tags, { env: 'test' });

  // The network and the service cannot go while they are associated.
  const snInUse = await expectError(send(new DeleteServiceNetworkCommand({ serviceNetworkIdentifier: sn.id })));
  assert.equal(snInUse.name, 'ConflictException');
  assert.equal(snInUse.$metadata.httpStatusCode, 409);
  assert.equal(snInUse.resourceType, 'SERVICE_NETWORK');
  assert.equal(snInUse.resourceId, sn.id);
  const svcInUse = await expectError(send(new DeleteServiceCommand({ serviceIdentifier: svc.id })));
  assert.equal(svcInUse.name, 'ConflictException');
  assert.equal(svcInUse.resourceType, 'SERVICE');

  const deleted = await send(new DeleteServiceNetworkServiceAssociationCommand({ serviceNetworkServiceAssociationIdentifier: created.id }));
  assert.equal(deleted.$metadata.httpStatusCode, 200);
  assert.deepEqual({ id: deleted.id, status: deleted.status, arn: deleted.arn },
    { id: created.id, status: 'DELETE_IN_PROGRESS', arn: created.arn });
  const gone = await expectError(send(new GetServiceNetworkServiceAssociationCommand({ serviceNetworkServiceAssociationIdentifier: created.id })));
  assert.equal(gone.name, 'ResourceNotFoundException');
  assert.equal(gone.resourceType, 'SERVICE_NETWORK_SERVICE_ASSOCIATION');
  assert.equal(gone.resourceId, created.id);
  const tagsGone = await expectError(send(new ListTagsForResourceCommand({ resourceArn: created.arn })));
  assert.equal(tagsGone.name, 'ResourceNotFoundException');
  const again = await expectError(send(new DeleteServiceNetworkServiceAssociationCommand({ serviceNetworkServiceAssociationIdentifier: created.id })));
  assert.equal(again.name, 'ResourceNotFoundException');

  // Now both can be deleted, and the pair can be associated again before that.
  const reassociated = await associate(sn.id, svc.id);
  assert.notEqual(reassociated.id, created.id);
  await send(new DeleteServiceNetworkServiceAssociationCommand({ serviceNetworkServiceAssociationIdentifier: reassociated.arn }));
  await send(new DeleteServiceCommand({ serviceIdentifier: svc.id }));
  await send(new DeleteServiceNetworkCommand({ serviceNetworkIdentifier: sn.id }));
});

test('service association errors: validation, not found, duplicate pair, duplicate custom domain', async () => {
  const missing = await expectError(send(new CreateServiceNetworkServiceAssociationCommand({})));
  assert.equal(missing.name, 'ValidationException');
  assert.equal(missing.reason, 'fieldValidationFailed');
  assert.deepEqual(missing.fieldList.map((f) => f.name).sort(), ['serviceIdentifier', 'serviceNetworkIdentifier']);

  const badShapes = await expectError(associate('sn-nope', `arn:aws:vpc-lattice:${REGION}:${ACCOUNT}:targetgroup/tg-0123456789abcdef0`,
    { clientToken: 'two words', tags: { ['k'.repeat(129)]: 'v' } }));
  assert.deepEqual(badShapes.fieldList.map((f) => f.name).sort(),
    ['clientToken', 'serviceIdentifier', 'serviceNetworkIdentifier', `tags.${'k'.repeat(129)}`]);

  const sn = await network();
  const svc = await service({ customDomainName: 'shop.example.com' });
  const noService = await expectError(associate(sn.id, 'svc-0123456789abcdef0'));
  assert.equal(noService.name, 'ResourceNotFoundException');
  assert.equal(noService.$metadata.httpStatusCode, 404);
  assert.equal(noService.resourceType, 'SERVICE');
  assert.equal(noService.resourceId, 'svc-0123456789abcdef0');
  const noNetwork = await expectError(associate('sn-0123456789abcdef0', svc.id));
  assert.equal(noNetwork.resourceType, 'SERVICE_NETWORK');
  assert.equal(noNetwork.resourceId, 'sn-0123456789abcdef0');

  const first = await associate(sn.id, svc.id);
  const dup = await expectError(associate(sn.arn, svc.arn));
  assert.equal(dup.name, 'ConflictException');
  assert.equal(dup.resourceType, 'SERVICE_NETWORK_SERVICE_ASSOCIATION');
  assert.equal(dup.resourceId, first.id);
  assert.match(dup.message, /already associated/);

  // A custom domain name must be unique within a service network, not across networks.
  const twin = await service({ customDomainName: 'shop.example.com' });
  const clash = await expectError(associate(sn.id, twin.id));
  assert.equal(clash.name, 'ConflictException');
  assert.match(clash.message, /shop\.example\.com/);
  const other = await network();
  const elsewhere = await associate(other.id, twin.id);
  assert.equal(elsewhere.customDomainName, 'shop.example.com');
});

test('listing service associations: filters, required filter, pagination, quota', async () => {
  const sn = await network();
  const services = [];
  for (let i = 0; i < SERVICE_ASSOC_QUOTA; i++) {
    const svc = await service();
    services.push(svc);
    await associate(sn.id, svc.id);
  }
  const over = await expectError(associate(sn.id, (await service()).id));
  assert.equal(over.name, 'ServiceQuotaExceededException');
  assert.equal(over.$metadata.httpStatusCode, 402);
  assert.equal(over.quotaCode, 'L-75D4A19E');
  assert.equal(over.serviceCode, 'vpc-lattice');
  assert.equal(over.resourceType, 'SERVICE_NETWORK_SERVICE_ASSOCIATION');

  const seen = [];
  let pages = 0;
  for await (const page of paginateListServiceNetworkServiceAssociations({ client: t.client, pageSize: 3 }, { serviceNetworkIdentifier: sn.arn })) {
    pages++;
    assert.ok(page.items.length <= 3);
    seen.push(...page.items);
  }
  assert.equal(pages, 3);
  assert.equal(seen.length, SERVICE_ASSOC_QUOTA);
  assert.equal(new Set(seen.map((i) => i.id)).size, SERVICE_ASSOC_QUOTA, 'no item listed twice');
  assert.deepEqual(new Set(seen.map((i) => i.serviceId)), new Set(services.map((s) => s.id)));
  const item = seen[0];
  for (const key of ['id', 'arn', 'status', 'createdBy', 'serviceId', 'serviceName', 'serviceArn', 'serviceNetworkId',
    'serviceNetworkName', 'serviceNetworkArn', 'dnsEntry']) assert.ok(item[key] !== undefined, key);
  assert.ok(item.createdAt instanceof Date);

  // By service: that service is in this network and one more.
  const other = await network();
  await associate(other.id, services[0].id);
  const byService = await send(new ListServiceNetworkServiceAssociationsCommand({ serviceIdentifier: services[0].arn }));
  assert.deepEqual(byService.items.map((i) => i.serviceNetworkId).sort(), [sn.id, other.id].sort());
  const byBoth = await send(new ListServiceNetworkServiceAssociationsCommand({ serviceIdentifier: services[0].id, serviceNetworkIdentifier: other.id }));
  assert.equal(byBoth.items.length, 1);
  assert.equal(byBoth.items[0].serviceNetworkId, other.id);
  const unknown = await send(new ListServiceNetworkServiceAssociationsCommand({ serviceNetworkIdentifier: 'sn-0123456789abcdef0' }));
  assert.deepEqual(unknown.items, []);

  const noFilter = await expectError(send(new ListServiceNetworkServiceAssociationsCommand({})));
  assert.equal(noFilter.name, 'ValidationException');
  const badFilter = await expectError(send(new ListServiceNetworkServiceAssociationsCommand({ serviceIdentifier: 'svc-short' })));
  assert.equal(badFilter.fieldList[0].name, 'serviceIdentifier');
  const badMax = await expectError(send(new ListServiceNetworkServiceAssociationsCommand({ serviceNetworkIdentifier: sn.id, maxResults: 0 })));
  assert.equal(badMax.fieldList[0].name, 'maxResults');
});

test('service association clientToken: replay returns the same association, other input conflicts', async () => {
  const sn = await network();
  const svc = await service();
  const a = await associate(sn.id, svc.id, { clientToken: 'snsa-token-1' });
  const b = await associate(sn.id, svc.id, { clientToken: 'snsa-token-1' });
  assert.equal(b.id, a.id);
  const otherSvc = await service();
  const c = await expectError(associate(sn.id, otherSvc.id, { clientToken: 'snsa-token-1' }));
  assert.equal(c.name, 'ConflictException');
  const list = await send(new ListServiceNetworkServiceAssociationsCommand({ serviceNetworkIdentifier: sn.id }));
  assert.deepEqual(list.items.map((i) => i.id), [a.id]);
});

const vpcAssociate = (sn, vpc, extra = {}) =>
  send(new CreateServiceNetworkVpcAssociationCommand({ serviceNetworkIdentifier: sn, vpcIdentifier: vpc, ...extra }));

test('VPC association lifecycle: create, get, update security groups, list, delete', async () => {
  const sn = await network();
  const created = await vpcAssociate(sn.arn, 'vpc-0123456789abcdef3', {
    securityGroupIds: ['sg-0123456789abcdef3'], privateDnsEnabled: true,
    dnsOptions: { privateDnsPreference: 'SPECIFIED_DOMAINS_ONLY', privateDnsSpecifiedDomains: ['*.example.com'] },
    tags: { owner: 'net-team' },
  });
  assert.equal(created.$metadata.httpStatusCode, 200);
  assert.match(created.id, /^snva-[0-9a-f]{17}$/);
  assert.equal(created.arn, `arn:aws:vpc-lattice:${REGION}:${ACCOUNT}:servicenetworkvpcassociation/${created.id}`);
  assert.equal(created.status, 'ACTIVE');
  assert.equal(created.createdBy, ACCOUNT);
  assert.deepEqual(created.securityGroupIds, ['sg-0123456789abcdef3']);
  assert.equal(created.privateDnsEnabled, true);
  assert.deepEqual(created.dnsOptions, { privateDnsPreference: 'SPECIFIED_DOMAINS_ONLY', privateDnsSpecifiedDomains: ['*.example.com'] });

  const got = await send(new GetServiceNetworkVpcAssociationCommand({ serviceNetworkVpcAssociationIdentifier: created.arn }));
  assert.equal(got.vpcId, 'vpc-0123456789abcdef3');
  assert.equal(got.serviceNetworkId, sn.id);
  assert.equal(got.serviceNetworkName, sn.name);
  assert.equal(got.serviceNetworkArn, sn.arn);
  assert.ok(got.createdAt instanceof Date && got.lastUpdatedAt instanceof Date);
  assert.equal((await send(new GetServiceNetworkCommand({ serviceNetworkIdentifier: sn.id }))).numberOfAssociatedVPCs, 1);
  assert.deepEqual((await send(new ListTagsForResourceCommand({ resourceArn: created.arn }))).tags, { owner: 'net-team' });

  // Update replaces the list.
  const updated = await send(new UpdateServiceNetworkVpcAssociationCommand({
    serviceNetworkVpcAssociationIdentifier: created.id, securityGroupIds: ['sg-0123456789abcdef4', 'sg-0123456789abcdef5'] }));
  assert.deepEqual(updated.securityGroupIds, ['sg-0123456789abcdef4', 'sg-0123456789abcdef5']);
  assert.equal(updated.id, created.id);
  assert.equal(updated.createdBy, ACCOUNT);
  const after = await send(new GetServiceNetworkVpcAssociationCommand({ serviceNetworkVpcAssociationIdentifier: created.id }));
  assert.deepEqual(after.securityGroupIds, ['sg-0123456789abcdef4', 'sg-0123456789abcdef5']);
  assert.ok(after.lastUpdatedAt >= got.lastUpdatedAt);

  const bySn = await send(new ListServiceNetworkVpcAssociationsCommand({ serviceNetworkIdentifier: sn.id }));
  assert.deepEqual(bySn.items.map((i) => i.id), [created.id]);
  assert.equal(bySn.items[0].vpcId, 'vpc-0123456789abcdef3');
  assert.equal(bySn.items[0].serviceNetworkName, sn.name);
  const byVpc = await send(new ListServiceNetworkVpcAssociationsCommand({ vpcIdentifier: 'vpc-0123456789abcdef3' }));
  assert.deepEqual(byVpc.items.map((i) => i.id), [created.id]);
  const noFilter = await expectError(send(new ListServiceNetworkVpcAssociationsCommand({})));
  assert.equal(noFilter.name, 'ValidationException');

  // Deleting the network fails while the VPC is associated.
  const inUse = await expectError(send(new DeleteServiceNetworkCommand({ serviceNetworkIdentifier: sn.id })));
  assert.equal(inUse.name, 'ConflictException');
  assert.match(inUse.message, /1 VPC association/);

  const deleted = await send(new DeleteServiceNetworkVpcAssociationCommand({ serviceNetworkVpcAssociationIdentifier: created.arn }));
  assert.equal(deleted.$metadata.httpStatusCode, 200);
  assert.equal(deleted.status, 'DELETE_IN_PROGRESS');
  assert.equal(deleted.id, created.id);
  const gone = await expectError(send(new GetServiceNetworkVpcAssociationCommand({ serviceNetworkVpcAssociationIdentifier: created.id })));
  assert.equal(gone.name, 'ResourceNotFoundException');
  assert.equal(gone.resourceType, 'SERVICE_NETWORK_VPC_ASSOCIATION');

  // The VPC is free for another network; the first network can now be deleted.
  const other = await network();
  const moved = await vpcAssociate(other.id, 'vpc-0123456789abcdef3');
  assert.deepEqual(moved.securityGroupIds, []);
  await send(new DeleteServiceNetworkCommand({ serviceNetworkIdentifier: sn.id }));
  await send(new DeleteServiceNetworkVpcAssociationCommand({ serviceNetworkVpcAssociationIdentifier: moved.id }));
});

test('VPC association errors: unknown VPC, VPC already associated, security groups, DNS options', async () => {
  const sn = await network();
  const noVpc = await expectError(vpcAssociate(sn.id, 'vpc-0000000000000000a'));
  assert.equal(noVpc.name, 'ResourceNotFoundException');
  assert.equal(noVpc.resourceType, 'VPC');
  assert.equal(noVpc.resourceId, 'vpc-0000000000000000a');
  const noNetwork = await expectError(vpcAssociate('sn-0123456789abcdef0', 'vpc-0123456789abcdef4'));
  assert.equal(noNetwork.resourceType, 'SERVICE_NETWORK');

  const shapes = await expectError(vpcAssociate('nope', 'vpc-XYZ', {
    securityGroupIds: ['sg-1', 'sg-0123456789abcdef0'], privateDnsEnabled: false, dnsOptions: { privateDnsPreference: 'SOME_DOMAINS' } }));
  assert.equal(shapes.name, 'ValidationException');
  assert.deepEqual(shapes.fieldList.map((f) => f.name).sort(),
    ['dnsOptions', 'dnsOptions.privateDnsPreference', 'securityGroupIds[0]', 'serviceNetworkIdentifier', 'vpcIdentifier']);
  const tooMany = await expectError(vpcAssociate(sn.id, 'vpc-0123456789abcdef4',
    { securityGroupIds: ['sg-00000001', 'sg-00000002', 'sg-00000003', 'sg-00000004', 'sg-00000005', 'sg-00000006'] }));
  assert.deepEqual(tooMany.fieldList.map((f) => f.name), ['securityGroupIds']);
  const needsDomains = await expectError(vpcAssociate(sn.id, 'vpc-0123456789abcdef4',
    { privateDnsEnabled: true, dnsOptions: { privateDnsPreference: 'VERIFIED_DOMAINS_AND_SPECIFIED_DOMAINS' } }));
  assert.deepEqual(needsDomains.fieldList.map((f) => f.name), ['dnsOptions.privateDnsSpecifiedDomains']);

  const unknownGroup = await expectError(vpcAssociate(sn.id, 'vpc-0123456789abcdef4', { securityGroupIds: ['sg-0000000000000000a'] }));
  assert.equal(unknownGroup.name, 'ResourceNotFoundException');
  assert.equal(unknownGroup.resourceType, 'SECURITY_GROUP');
  const foreignGroup = await expectError(vpcAssociate(sn.id, 'vpc-0123456789abcdef4', { securityGroupIds: ['sg-0123456789abcdef0'] }));
  assert.equal(foreignGroup.name, 'ValidationException');
  assert.match(foreignGroup.message, /vpc-0123456789abcdef0/);

  const first = await vpcAssociate(sn.id, 'vpc-0123456789abcdef4');
  assert.equal(first.privateDnsEnabled, undefined);
  for (const target of [sn.id, (await network()).id]) {
    const dup = await expectError(vpcAssociate(target, 'vpc-0123456789abcdef4'));
    assert.equal(dup.name, 'ConflictException');
    assert.equal(dup.resourceType, 'SERVICE_NETWORK_VPC_ASSOCIATION');
    assert.equal(dup.resourceId, first.id);
    assert.match(dup.message, /only one service network/);
  }

  // Update needs 1-5 groups of the association's VPC.
  const empty = await expectError(send(new UpdateServiceNetworkVpcAssociationCommand({ serviceNetworkVpcAssociationIdentifier: first.id, securityGroupIds: [] })));
  assert.deepEqual(empty.fieldList.map((f) => f.name), ['securityGroupIds']);
  const absent = await expectError(send(new UpdateServiceNetworkVpcAssociationCommand({ serviceNetworkVpcAssociationIdentifier: first.id })));
  assert.deepEqual(absent.fieldList.map((f) => f.name), ['securityGroupIds']);
  const wrongVpc = await expectError(send(new UpdateServiceNetworkVpcAssociationCommand({
    serviceNetworkVpcAssociationIdentifier: first.id, securityGroupIds: ['sg-0123456789abcdef3'] })));
  assert.equal(wrongVpc.name, 'ValidationException');
  const unknownAssoc = await expectError(send(new UpdateServiceNetworkVpcAssociationCommand({
    serviceNetworkVpcAssociationIdentifier: 'snva-0123456789abcdef0', securityGroupIds: ['sg-0123456789abcdef3'] })));
  assert.equal(unknownAssoc.name, 'ResourceNotFoundException');
});

test('VPC association quota, idempotency and the VPC endpoint association list', async () => {
  const sn = await network();
  const a = await vpcAssociate(sn.id, 'vpc-0123456789abcdef5', { clientToken: 'snva-token-1' });
  const replay = await vpcAssociate(sn.id, 'vpc-0123456789abcdef5', { clientToken: 'snva-token-1' });
  assert.equal(replay.id, a.id);
  const reused = await expectError(vpcAssociate(sn.id, 'vpc-0123456789abcdef6', { clientToken: 'snva-token-1' }));
  assert.equal(reused.name, 'ConflictException');

  await vpcAssociate(sn.id, 'vpc-0123456789abcdef6');
  const over = await expectError(vpcAssociate(sn.id, 'vpc-0123456789abcdef7'));
  assert.equal(over.name, 'ServiceQuotaExceededException');
  assert.equal(over.$metadata.httpStatusCode, 402);
  assert.equal(over.quotaCode, 'L-EF6E2D62');
  assert.equal(over.resourceType, 'SERVICE_NETWORK_VPC_ASSOCIATION');

  const page1 = await send(new ListServiceNetworkVpcAssociationsCommand({ serviceNetworkIdentifier: sn.id, maxResults: 1 }));
  assert.equal(page1.items.length, 1);
  assert.ok(page1.nextToken);
  const page2 = await send(new ListServiceNetworkVpcAssociationsCommand({ serviceNetworkIdentifier: sn.id, maxResults: 1, nextToken: page1.nextToken }));
  assert.equal(page2.items.length, 1);
  assert.equal(page2.nextToken, undefined);
  assert.notEqual(page1.items[0].id, page2.items[0].id);

  // Trellis has no VPC endpoints: the list is empty, but its filter is still required and checked.
  const endpoints = await send(new ListServiceNetworkVpcEndpointAssociationsCommand({ serviceNetworkIdentifier: sn.arn }));
  assert.deepEqual(endpoints.items, []);
  const noFilter = await expectError(send(new ListServiceNetworkVpcEndpointAssociationsCommand({})));
  assert.equal(noFilter.name, 'ValidationException');
  assert.deepEqual(noFilter.fieldList.map((f) => f.name), ['serviceNetworkIdentifier']);
});
