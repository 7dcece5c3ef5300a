// Two trellisd on one etcd (--store etcd://…), through the real AWS SDK: a write on one is read back on the
// other at once, names stay unique across them, clientToken idempotency and pagination tokens work on either,
// and every create acknowledged before a kill -9 is there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CreateServiceCommand, GetServiceCommand, ListServicesCommand, paginateListServices,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, expectError, until, freePort } from './harness.mjs';

let etcd;
let etcdDir;
let store;

before(async () => {
  etcdDir = mkdtempSync(path.join(tmpdir(), 'trellis-it-etcd-'));
  const client = await freePort();
  const peer = await freePort();
  etcd = spawn('/usr/bin/etcd', [
    '--data-dir', path.join(etcdDir, 'data'),
    '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `default=http://127.0.0.1:${peer}`, '--logger', 'zap', '--log-outputs', 'stderr',
  ], { stdio: ['ignore', 'ignore', 'ignore'] });
  await until('etcd to be healthy', async () => {
    try {
      const response = await fetch(`http://127.0.0.1:${client}/health`);
      return (await response.json()).health === 'true';
    } catch {
      return false;
    }
  });
  store = `etcd://127.0.0.1:${client}/it-${process.pid}`;
});

after(() => {
  etcd?.kill('SIGKILL');
  rmSync(etcdDir, { recursive: true, force: true });
});

// A fresh prefix for each pair: each test starts with an empty control plane.
let pairs = 0;
async function twoServers() {
  const url = `${store}-${++pairs}`;
  const a = await startTrellis({ args: ['--store', url] });
  const b = await startTrellis({ args: ['--store', url] });
  return { a, b, stop: () => Promise.all([a.stop(), b.stop()]) };
}

test('a write on one server is read back on the other at once', async () => {
  const { a, b, stop } = await twoServers();
  try {
    const created = await a.client.send(new CreateServiceCommand({ name: `seen-${Date.now()}` }));
    const got = await b.client.send(new GetServiceCommand({ serviceIdentifier: created.id }));
    assert.equal(got.id, created.id);
    assert.equal(got.arn, created.arn);
    const listed = await b.client.send(new ListServicesCommand({}));
    assert.ok(listed.items.some((s) => s.id === created.id));
  } finally {
    await stop();
  }
});

test('two servers racing to create one name: one succeeds, one gets ConflictException', async () => {
  const { a, b, stop } = await twoServers();
  try {
    for (let round = 0; round < 5; round++) {
      const name = `race-${Date.now()}-${round}`;
      const results = await Promise.allSettled([
        a.client.send(new CreateServiceCommand({ name })),
        b.client.send(new CreateServiceCommand({ name })),
      ]);
      const ok = results.filter((r) => r.status === 'fulfilled');
      const failed = results.filter((r) => r.status === 'rejected');
      assert.equal(ok.length, 1, `round ${round}: ${JSON.stringify(results.map((r) => r.status))}`);
      assert.equal(failed[0].reason.name, 'ConflictException');
    }
  } finally {
    await stop();
  }
});

test('clientToken idempotency and pagination tokens hold across servers', async () => {
  const { a, b, stop } = await twoServers();
  try {
    const name = `token-${Date.now()}`;
    const clientToken = `ct-${Date.now()}`;
    const first = await a.client.send(new CreateServiceCommand({ name, clientToken }));
    const again = await b.client.send(new CreateServiceCommand({ name, clientToken }));
    assert.equal(again.id, first.id, 'the same token on another server answers the same service');
    const other = await expectError(b.client.send(new CreateServiceCommand({ name: `${name}-x`, clientToken })));
    assert.equal(other.name, 'ConflictException', 'the same token with other input is refused on any server');

    for (let i = 0; i < 4; i++) await a.client.send(new CreateServiceCommand({ name: `page-${Date.now()}-${i}` }));
    const page = await a.client.send(new ListServicesCommand({ maxResults: 2 }));
    assert.ok(page.nextToken);
    const next = await b.client.send(new ListServicesCommand({ maxResults: 2, nextToken: page.nextToken }));
    const firstIds = new Set(page.items.map((s) => s.id));
    assert.ok(next.items.length > 0);
    assert.ok(next.items.every((s) => !firstIds.has(s.id)), 'the next page on the other server repeats nothing');
  } finally {
    await stop();
  }
});

test('kill -9 of one server during a burst: every acknowledged create is on the other', async () => {
  const { a, b, stop } = await twoServers();
  try {
    const acknowledged = [];
    let stopWriting = false;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stopWriting; i++) {
        try {
          const s = await a.client.send(new CreateServiceCommand({ name: `burst-${process.pid}-${w}-${i}` }));
          acknowledged.push(s.id);
        } catch {
          return; // the server died mid-request: never acknowledged
        }
      }
    });
    await new Promise((r) => setTimeout(r, 1500));
    a.child.kill('SIGKILL');
    stopWriting = true;
    await Promise.all(writers);
    assert.ok(acknowledged.length > 10, `only ${acknowledged.length} creates were acknowledged before the kill`);
    const present = new Set();
    for await (const p of paginateListServices({ client: b.client, pageSize: 100 }, {})) {
      for (const item of p.items) present.add(item.id);
    }
    const missing = acknowledged.filter((id) => !present.has(id));
    assert.deepEqual(missing, [], `${missing.length} of ${acknowledged.length} acknowledged services were lost`);
  } finally {
    await stop();
  }
});

test('etcd not answering: a write is refused within 3 s as a retryable 500 with Retry-After, and works again after', async () => {
  const { a, b, stop } = await twoServers();
  try {
    etcd.kill('SIGSTOP');  // a member that no longer answers (as one without quorum does)
    const started = Date.now();
    const error = await expectError(a.client.send(new CreateServiceCommand({ name: 'while-down' })));
    const waited = Date.now() - started;
    assert.equal(error.name, 'InternalServerException');
    assert.equal(error.$metadata.httpStatusCode, 500);
    assert.equal(error.$response?.headers?.['retry-after'] ?? error.$response?.headers?.['Retry-After'], '1');
    assert.ok(waited < 3000, `answered after ${waited} ms`);
    etcd.kill('SIGCONT');
    const created = await until('a write to succeed again', async () => {
      try {
        return await a.client.send(new CreateServiceCommand({ name: 'after-recovery' }));
      } catch {
        return null;
      }
    }, 5000);
    const read = await b.client.send(new GetServiceCommand({ serviceIdentifier: created.id }));
    assert.equal(read.name, 'after-recovery');
  } finally {
    etcd.kill('SIGCONT');
    await stop();
  }
});
