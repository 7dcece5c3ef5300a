// trellisd's threads carry names, so `top -H`, `perf` and /proc show which part of it is busy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { freePort, startTrellis, until } from './harness.mjs';

function threadNames(pid) {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    try {
      return readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      return null; // the thread ended meanwhile
    }
  }).filter(Boolean);
}

test('each role and worker thread has its name', async () => {
  const t = await startTrellis({ args: ['--dns-listen', `127.0.0.1:${await freePort()}`] });
  try {
    const wanted = ['api', 'admin', 'dns', 'snap-builder', 'proxy-control', 'proxy-0', 'health', 'access-logs',
      'firehose'];
    const names = await until('named threads', () => {
      const now = threadNames(t.child.pid);
      return wanted.every((name) => now.includes(name)) ? now : null;
    }, 10000).catch(() => threadNames(t.child.pid));
    for (const name of wanted) assert.ok(names.includes(name), `no thread named ${name} in ${names.join(', ')}`);
  } finally {
    await t.stop();
  }
});
