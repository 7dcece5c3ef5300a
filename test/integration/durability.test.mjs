// kill -9 during a burst of creates: after a restart every acknowledged resource is there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CreateServiceCommand, GetServiceCommand, paginateListServices } from '@aws-sdk/client-vpc-lattice';
import { startTrellis } from './harness.mjs';

test('every acknowledged create survives kill -9', async () => {
  const first = await startTrellis({ config: { quotas: { services: 5000 } } });
  const acknowledged = [];
  let stop = false;
  // Eight concurrent writers; the process is killed while they run.
  const writers = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      try {
        const s = await first.client.send(new CreateServiceCommand({ name: `burst-${w}-${i}` }));
        acknowledged.push(s.id);
      } catch {
        return; // the server died mid-request: that create was never acknowledged
      }
    }
  });
  await new Promise((r) => setTimeout(r, 1500));
  first.child.kill('SIGKILL');
  stop = true;
  await Promise.all(writers);
  await first.stop({ cleanup: false });
  assert.ok(acknowledged.length > 20, `only ${acknowledged.length} creates were acknowledged before the kill`);

  const second = await startTrellis({ dataDir: first.dataDir, config: { quotas: { services: 5000 } } });
  const present = new Set();
  for await (const page of paginateListServices({ client: second.client, pageSize: 100 }, {})) {
    for (const item of page.items) present.add(item.id);
  }
  const missing = acknowledged.filter((id) => !present.has(id));
  assert.deepEqual(missing, [], `${missing.length} of ${acknowledged.length} acknowledged services were lost`);
  const one = await second.client.send(new GetServiceCommand({ serviceIdentifier: acknowledged[0] }));
  assert.equal(one.id, acknowledged[0]);
  await second.stop({ cleanup: true });
});
