// The `trellis` CLI against a real trellisd, compared with what the AWS SDK sees.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import {
  CreateServiceNetworkCommand, CreateServiceCommand, CreateTargetGroupCommand, RegisterTargetsCommand,
  CreateListenerCommand, CreateRuleCommand, ListServicesCommand,
} from '@aws-sdk/client-vpc-lattice';
import { startTrellis, trellisdPath, ADMIN, REGION } from './harness.mjs';

const cli = process.env.TRELLIS_CLI ?? path.resolve(path.dirname(trellisdPath), '../cli/trellis');
let t;
let ids = {};

function trellis(args, env = {}) {
  const r = spawnSync(cli, ['--endpoint', t.endpoint, ...args], {
    encoding: 'utf8', timeout: 60000, env: { PATH: process.env.PATH, ...env },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

before(async () => {
  t = await startTrellis({ config: { quotas: { services: 500 } } });
  const c = t.client;
  ids.sn = (await c.send(new CreateServiceNetworkCommand({ name: 'cli-net' }))).id;
  const svc = await c.send(new CreateServiceCommand({ name: 'cli-svc' }));
  ids.svc = svc.id;
  ids.tg = (await c.send(new CreateTargetGroupCommand({ name: 'cli-tg', type: 'IP', config: { port: 8080, protocol: 'HTTP', vpcIdentifier: 'vpc-0123456789abcdef0' } }))).id;
  await c.send(new RegisterTargetsCommand({ targetGroupIdentifier: ids.tg, targets: [{ id: '127.0.0.1', port: 8080 }, { id: '127.0.0.2', port: 8081 }] }));
  const listener = await c.send(new CreateListenerCommand({ serviceIdentifier: ids.svc, name: 'cli-listener', protocol: 'HTTP', port: 8080, defaultAction: { forward: { targetGroups: [{ targetGroupIdentifier: ids.tg }] } } }));
  ids.listener = listener.id;
  ids.listenerArn = listener.arn;
  const rule = await c.send(new CreateRuleCommand({ serviceIdentifier: ids.svc, listenerIdentifier: ids.listener, name: 'cli-rule', priority: 10, match: { httpMatch: { pathMatch: { match: { prefix: '/api' } } } }, action: { fixedResponse: { statusCode: 404 } } }));
  ids.ruleArn = rule.arn;
  for (let i = 0; i < 105; i++) await c.send(new CreateServiceCommand({ name: `cli-many-${i}` }));
});
after(async () => { await t?.stop(); });

const withConfig = () => ['--config', t.configFile];

test('get services lists every service across pages, as a table and as JSON', async () => {
  const sdk = [];
  let token;
  do {
    const page = await t.client.send(new ListServicesCommand({ nextToken: token }));
    sdk.push(...page.items.map((i) => i.id));
    token = page.nextToken;
  } while (token);
  const json = trellis(['get', 'services', '-o', 'json', ...withConfig()]);
  assert.equal(json.code, 0, json.err);
  const items = JSON.parse(json.out);
  const listed = (Array.isArray(items) ? items : items.items).map((i) => i.id);
  assert.deepEqual([...listed].sort(), [...sdk].sort());
  const table = trellis(['get', 'services', ...withConfig()]);
  assert.equal(table.code, 0, table.err);
  assert.match(table.out.split('\n')[0], /ID|NAME/i);
  assert.ok(table.out.includes('cli-svc'));
  assert.equal(table.out.trim().split('\n').length, sdk.length + 1, 'one header line and one line per service');
});

test('get servicenetworks, targetgroups, listeners, rules and targets', async () => {
  const env = { AWS_ACCESS_KEY_ID: ADMIN.accessKeyId, AWS_SECRET_ACCESS_KEY: ADMIN.secretAccessKey, AWS_REGION: REGION };
  const sn = trellis(['get', 'servicenetworks'], env);
  assert.equal(sn.code, 0, sn.err);
  assert.ok(sn.out.includes(ids.sn));
  assert.ok(trellis(['get', 'targetgroups'], env).out.includes('cli-tg'));
  assert.ok(trellis(['get', 'listeners', ids.svc], env).out.includes('cli-listener'));
  assert.ok(trellis(['get', 'rules', ids.svc, ids.listener], env).out.includes('cli-rule'));
  const targets = trellis(['get', 'targets', ids.tg], env);
  assert.equal(targets.code, 0, targets.err);
  assert.ok(targets.out.includes('127.0.0.1') && targets.out.includes('127.0.0.2'));
});

test('describe by id and by ARN', async () => {
  for (const ident of [ids.svc, ids.sn, ids.tg, ids.listenerArn, ids.ruleArn]) {
    const r = trellis(['describe', ident, '-o', 'json', ...withConfig()]);
    assert.equal(r.code, 0, `${ident}: ${r.err}`);
    const doc = JSON.parse(r.out);
    assert.ok(ident.endsWith(doc.id), `${ident} described as ${doc.id}`);
  }
});

test('errors: unknown id exits 1 with the API error, wrong secret with InvalidSignatureException', async () => {
  const missing = trellis(['describe', 'svc-0123456789abcdef0', ...withConfig()]);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /ResourceNotFoundException/);
  const wrong = trellis(['get', 'services'], { AWS_ACCESS_KEY_ID: ADMIN.accessKeyId, AWS_SECRET_ACCESS_KEY: 'wrong', AWS_REGION: REGION });
  assert.equal(wrong.code, 1);
  assert.match(wrong.err, /InvalidSignatureException/);
});
