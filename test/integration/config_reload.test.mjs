// Config reload without a restart: SIGHUP and POST /reload on the admin port; a bad file keeps the
// running config; open data-plane connections stay up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { ListServicesCommand, CreateServiceCommand } from '@aws-sdk/client-vpc-lattice';
import { startTrellis, expectError, until, BASE_CONFIG } from './harness.mjs';

const NEWCOMER = { arn: 'arn:aws:iam::111122223333:role/newcomer', accessKeyId: 'AKIAEXAMPLENEWCOMER1', secretAccessKey: 'newcomer-secret' };


test('SIGHUP and POST /reload pick up new identities; a bad file changes nothing', async () => {
  const t = await startTrellis();
  try {
    const newcomer = t.clientFor({ accessKeyId: NEWCOMER.accessKeyId, secretAccessKey: NEWCOMER.secretAccessKey });
    const before = await expectError(newcomer.send(new ListServicesCommand({})));
    assert.equal(before.name, 'UnrecognizedClientException');

    writeFileSync(t.configFile, JSON.stringify({ ...BASE_CONFIG, identities: [...BASE_CONFIG.identities, NEWCOMER] }));
    t.child.kill('SIGHUP');
    await until('the newcomer to be recognised', async () => {
      try { await newcomer.send(new ListServicesCommand({})); return true; } catch { return false; }
    });
    await newcomer.send(new CreateServiceCommand({ name: 'made-by-newcomer' }));

    // A broken file is refused over HTTP with the reason, and the running config stays.
    writeFileSync(t.configFile, 'region: us-east-1\nidentities: [{arn: nope}]\n');
    const bad = await fetch(`${t.admin}/reload`, { method: 'POST' });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /trellis\.yaml:\d+/);
    await newcomer.send(new ListServicesCommand({}));

    // Changing the account would change every ARN: refused.
    writeFileSync(t.configFile, JSON.stringify({ ...BASE_CONFIG, accountId: '999999999999' }));
    const account = await fetch(`${t.admin}/reload`, { method: 'POST' });
    assert.equal(account.status, 400);

    // Removing the newcomer through POST /reload takes effect at once.
    writeFileSync(t.configFile, JSON.stringify(BASE_CONFIG));
    const ok = await fetch(`${t.admin}/reload`, { method: 'POST' });
    assert.equal(ok.status, 200);
    const after = await expectError(newcomer.send(new ListServicesCommand({})));
    assert.equal(after.name, 'UnrecognizedClientException');
    assert.equal((await fetch(`${t.admin}/reload`)).status, 405);
  } finally {
    const result = await t.stop();
    assert.equal(result.code, 0);
  }
});

test('a reload keeps the connection that asked for it open', async () => {
  const t = await startTrellis();
  try {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = () => new Promise((resolve, reject) => {
      const req = http.get(`${t.admin}/ready`, { agent }, (res) => { res.resume(); res.on('end', () => resolve(req.reusedSocket)); });
      req.on('error', reject);
    });
    assert.equal(await get(), false);
    const reload = await fetch(`${t.admin}/reload`, { method: 'POST' });
    assert.equal(reload.status, 200);
    assert.equal(await get(), true, 'the kept-alive connection survived the reload');
    agent.destroy();
  } finally {
    await t.stop();
  }
});
