// Identity-based policies decide what each identity may do through the control-plane API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CreateServiceCommand, DeleteServiceCommand, GetServiceCommand, ListServicesCommand, CreateServiceNetworkCommand,
  UpdateServiceCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, expectError, BASE_CONFIG } from './harness.mjs';

const READER = {
  arn: 'arn:aws:iam::111122223333:role/reader',
  accessKeyId: 'AKIAEXAMPLEREADER001',
  secretAccessKey: 'reader-secret',
  tags: { team: 'payments' },
  policy: JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: ['vpc-lattice:Get*', 'vpc-lattice:List*'], Resource: '*' },
      // Only services may be created, and only with IAM auth.
      { Effect: 'Allow', Action: 'vpc-lattice:CreateService', Resource: '*', Condition: { StringEquals: { 'vpc-lattice:AuthType': 'AWS_IAM' } } },
      { Effect: 'Allow', Action: 'vpc-lattice:UpdateService', Resource: '*' },
      { Effect: 'Deny', Action: 'vpc-lattice:UpdateService', Resource: '*', Condition: { StringEquals: { 'vpc-lattice:AuthType': 'NONE' } } },
    ],
  }),
};

test('identity policies allow, deny and condition on control-plane keys', async () => {
  const t = await startTrellis({ config: { identities: [...BASE_CONFIG.identities, READER] } });
  try {
    const reader = t.clientFor({ accessKeyId: READER.accessKeyId, secretAccessKey: READER.secretAccessKey });
    const svc = await t.client.send(new CreateServiceCommand({ name: 'iam-target' }));

    await reader.send(new ListServicesCommand({}));
    await reader.send(new GetServiceCommand({ serviceIdentifier: svc.id }));

    const del = await expectError(reader.send(new DeleteServiceCommand({ serviceIdentifier: svc.id })));
    assert.equal(del.name, 'AccessDeniedException');
    assert.equal(del.$metadata.httpStatusCode, 403);
    assert.match(del.message, /User: arn:aws:iam::111122223333:role\/reader is not authorized to perform: vpc-lattice:DeleteService/);
    assert.ok(del.message.includes(svc.arn), del.message);
    await t.client.send(new GetServiceCommand({ serviceIdentifier: svc.id })); // still there

    const net = await expectError(reader.send(new CreateServiceNetworkCommand({ name: 'not-allowed' })));
    assert.equal(net.name, 'AccessDeniedException');

    const noIam = await expectError(reader.send(new CreateServiceCommand({ name: 'reader-open' })));
    assert.equal(noIam.name, 'AccessDeniedException');
    const withIam = await reader.send(new CreateServiceCommand({ name: 'reader-iam', authType: 'AWS_IAM' }));
    assert.equal(withIam.authType, 'AWS_IAM');

    await reader.send(new UpdateServiceCommand({ serviceIdentifier: withIam.id, idleTimeoutSeconds: 90 }));
    const explicit = await expectError(reader.send(new UpdateServiceCommand({ serviceIdentifier: withIam.id, authType: 'NONE' })));
    assert.equal(explicit.name, 'AccessDeniedException');
    assert.match(explicit.message, /explicit deny/);

    // The admin has no policy: everything is allowed.
    await t.client.send(new DeleteServiceCommand({ serviceIdentifier: svc.id }));
  } finally {
    await t.stop();
  }
});

test('an identity policy that does not compile stops trellisd at start', async () => {
  const bad = { ...READER, policy: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualz":{"a":"b"}}}]}' };
  await assert.rejects(startTrellis({ config: { identities: [...BASE_CONFIG.identities, bad] } }), /StringEqualz/);
});
