// Differential test, part 1: generates seeded random auth policies and requests, and has
// @cloud-copilot/iam-simulate (AGPL: run here at test time only, never linked or shipped) decide each one.
// Prints the cases with the oracle's answers as JSON; policy_oracle_check.cpp replays them through our engine.
//
// Usage: node policy_oracle.cjs <cases> <seed>
//
// The oracle's overall answer uses same-account IAM logic (identity OR
// resource policy), which is not Lattice's. So each layer is simulated on its own (the identity policy as
// identityPolicies, each auth policy as resourcePolicy) and the layers are combined here as
// docs/architecture.md ("Auth on the data plane") says.
// The oracle does not derive context keys from the principal: aws:PrincipalArn and friends are passed explicitly.
'use strict';
const { runSimulation } = require('@cloud-copilot/iam-simulate');

const [count, seed] = [Number(process.argv[2] || 3000), Number(process.argv[3] || 1)];

// mulberry32: small, seeded, the same cases on every run.
let state = seed >>> 0;
function random() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(random() * list.length)];
const chance = (p) => random() < p;
const some = (list, max) => {
  const n = 1 + Math.floor(random() * max);
  const out = [];
  for (let i = 0; i < n; i++) out.push(pick(list));
  return [...new Set(out)];
};
const oneOrList = (list) => (list.length === 1 && chance(0.5) ? list[0] : list);

const ACCOUNT = '111122223333';
const OTHER_ACCOUNT = '444455556666';
const SERVICES = ['svc-0123456789abcdef0', 'svc-0fedcba987654321f'];
const serviceArn = (id) => `arn:aws:vpc-lattice:us-east-1:${ACCOUNT}:service/${id}`;
const NETWORK_ARN = `arn:aws:vpc-lattice:us-east-1:${ACCOUNT}:servicenetwork/sn-0123456789abcdef0`;
// No '/': for a request to the root Lattice's resource is "…/svc-x/", which the oracle's resource-type table
// (service/${ServiceId}/${RequestPath}) refuses with no.resource.types. policy_test.cpp covers it.
const PATHS = ['/rates', '/rates/today', '/admin/users', '/api.parking/GetRates', '/a?b'];

const CALLERS = [
  { arn: `arn:aws:iam::${ACCOUNT}:role/admin`, type: 'AssumedRole', tags: { team: 'blue' }, org: 'o-aaaa1111',
    paths: ['o-aaaa1111/r-ab12/ou-ab12-11111111/'] },
  { arn: `arn:aws:iam::${ACCOUNT}:role/reader`, type: 'AssumedRole', tags: { team: 'red' }, org: 'o-aaaa1111',
    paths: ['o-aaaa1111/r-ab12/ou-ab12-22222222/', 'o-aaaa1111/r-ab12/ou-ab12-11111111/'] },
  { arn: `arn:aws:sts::${ACCOUNT}:assumed-role/admin/alice`, type: 'AssumedRole', tags: {}, org: 'o-aaaa1111',
    paths: [] },
  { arn: `arn:aws:iam::${OTHER_ACCOUNT}:user/bob`, type: 'User', tags: { team: 'Blue' }, org: 'o-bbbb2222',
    paths: ['o-bbbb2222/r-cd34/'] },
  null,  // anonymous
];

// Condition keys, each with its operator family and the values a request or a policy may carry.
const KEYS = [
  { name: 'vpc-lattice-svcs:RequestHeader/x-team', family: 'String', values: ['blue', 'red', 'Blue', 'blue-2', ''] },
  { name: 'vpc-lattice-svcs:RequestMethod', family: 'String', values: ['GET', 'POST', 'get', 'DELETE'] },
  { name: 'vpc-lattice-svcs:RequestPath', family: 'String', values: ['/rates', '/admin/users', '/', '/rates/today'] },
  { name: 'vpc-lattice-svcs:SourceVpc', family: 'String', values: ['vpc-0a1b2c3d', 'vpc-9f8e7d6c'] },
  { name: 'vpc-lattice-svcs:SourceVpcOwnerAccount', family: 'String', values: [ACCOUNT, OTHER_ACCOUNT] },
  { name: 'vpc-lattice-svcs:RequestQueryString/color', family: 'String', multi: true,
    values: ['red', 'blue', 'green', 'Red'] },
  { name: 'vpc-lattice-svcs:Port', family: 'Numeric', values: ['80', '443', '8080', '1.5'] },
  { name: 'vpc-lattice-svcs:ServiceArn', family: 'Arn', values: SERVICES.map(serviceArn) },
  { name: 'vpc-lattice-svcs:ServiceNetworkArn', family: 'Arn', values: [NETWORK_ARN] },
  { name: 'aws:SourceIp', family: 'Ip', values: ['10.0.1.7', '10.200.0.1', '192.168.1.130', '2001:db8::8', 'fd00::1'] },
  { name: 'aws:CurrentTime', family: 'Date',
    values: ['2024-05-01T12:00:00Z', '2024-05-01T11:59:59Z', '2025-01-01T00:00:00Z', '2023-12-31T23:00:00Z'] },
  { name: 'aws:SecureTransport', family: 'Bool', values: ['true', 'false'] },
];
// Keys that come from the caller rather than from the request.
const PRINCIPAL_KEYS = [
  { name: 'aws:PrincipalArn', family: 'Arn' },
  { name: 'aws:PrincipalAccount', family: 'String' },
  { name: 'aws:PrincipalType', family: 'String' },
  { name: 'aws:PrincipalOrgID', family: 'String' },
  { name: 'aws:PrincipalOrgPaths', family: 'String', multi: true },
  { name: 'aws:PrincipalTag/team', family: 'String' },
];

const POLICY_VALUES = {
  'aws:PrincipalArn': [`arn:aws:iam::${ACCOUNT}:role/admin`, `arn:aws:iam::*:role/*`, `arn:aws:iam::${OTHER_ACCOUNT}:user/*`,
    `arn:aws:sts::${ACCOUNT}:assumed-role/admin/*`, 'arn:aws:iam::*:*/${aws:PrincipalTag/team}'],
  'aws:PrincipalAccount': [ACCOUNT, OTHER_ACCOUNT, '4444*'],
  'aws:PrincipalType': ['Anonymous', 'AssumedRole', 'User', 'anonymous'],
  'aws:PrincipalOrgID': ['o-aaaa1111', 'o-bbbb2222', 'o-*'],
  'aws:PrincipalOrgPaths': ['o-aaaa1111/r-ab12/ou-ab12-11111111/', 'o-aaaa1111/*', 'o-bbbb2222/r-cd34/'],
  'aws:PrincipalTag/team': ['blue', 'red', 'BLUE', 'b*'],
  'vpc-lattice-svcs:ServiceArn': [serviceArn(SERVICES[0]), `arn:aws:vpc-lattice:*:${ACCOUNT}:service/*`,
    'arn:aws:vpc-lattice:us-east-1:*:service/svc-0f*', 'arn:aws:vpc-lattice:us-*:*:service/svc-0123456789abcdef?'],
  'vpc-lattice-svcs:ServiceNetworkArn': [NETWORK_ARN, 'arn:aws:vpc-lattice:*:*:servicenetwork/*',
    `arn:aws:vpc-lattice:us-east-1:${OTHER_ACCOUNT}:servicenetwork/*`],
  'vpc-lattice-svcs:Port': ['80', '443', '1024', '2', 1024, 443],
  // Oracle bugs kept out: no bare addresses ("192.168.1.130"; it says a v6 caller is not outside one, though
  // it is outside the same address as a /32) and no /0 blocks (it finds 10.200.0.1 outside 0.0.0.0/0).
  'aws:SourceIp': ['10.0.0.0/8', '10.0.1.0/24', '192.168.1.0/25', '192.168.1.130/32', '2001:db8::/32', '0.0.0.0/1',
    '2000::/3', '10.200.0.1/32'],
  'aws:CurrentTime': ['2024-05-01T12:00:00Z', '2024-05-01', '2024-06-01T00:00:00Z', '2024-05-01T13:00:00+01:00'],
  'aws:SecureTransport': ['true', 'false', true, 'TRUE'],
};

const OPERATORS = {
  String: ['StringEquals', 'StringNotEquals', 'StringEqualsIgnoreCase', 'StringNotEqualsIgnoreCase', 'StringLike',
    'StringNotLike'],
  Numeric: ['NumericEquals', 'NumericNotEquals', 'NumericLessThan', 'NumericLessThanEquals', 'NumericGreaterThan',
    'NumericGreaterThanEquals'],
  Date: ['DateEquals', 'DateNotEquals', 'DateLessThan', 'DateLessThanEquals', 'DateGreaterThan',
    'DateGreaterThanEquals'],
  Bool: ['Bool'],
  Ip: ['IpAddress', 'NotIpAddress'],
  Arn: ['ArnEquals', 'ArnLike', 'ArnNotEquals', 'ArnNotLike'],
};

function policyValuesFor(key) {
  if (POLICY_VALUES[key.name]) return POLICY_VALUES[key.name];
  const values = [...key.values];
  if (key.family === 'String') values.push('b*', '*e*', 'r?d', '${aws:PrincipalTag/team}', 'x-${aws:PrincipalTag/team}');
  return values;
}

function randomCondition() {
  const condition = {};
  const operators = 1 + Math.floor(random() * 2);
  for (let i = 0; i < operators; i++) {
    const key = chance(0.7) ? pick(KEYS) : pick(PRINCIPAL_KEYS);
    let operator = chance(0.1) ? 'Null' : pick(OPERATORS[key.family]);
    if (operator !== 'Null') {
      if (chance(0.15)) operator += 'IfExists';
      // Set operators mostly on multi-valued keys, sometimes on single-valued ones.
      if (chance(key.multi ? 0.85 : 0.1)) operator = pick(['ForAnyValue:', 'ForAllValues:']) + operator;
    }
    const values = operator === 'Null' ? [pick(['true', 'false', true, false])] : some(policyValuesFor(key), 3);
    condition[operator] = condition[operator] || {};
    condition[operator][key.name] = oneOrList(values);
  }
  return condition;
}

function randomPrincipal() {
  const entries = some([`arn:aws:iam::${ACCOUNT}:role/admin`, `arn:aws:iam::${ACCOUNT}:role/reader`, ACCOUNT,
    OTHER_ACCOUNT, `arn:aws:iam::${OTHER_ACCOUNT}:user/bob`, `arn:aws:iam::${OTHER_ACCOUNT}:root`, '*'], 2);
  return chance(0.3) ? '*' : { AWS: oneOrList(entries) };
}

function randomResource() {
  const svc = pick(SERVICES);
  return pick(['*', `${serviceArn(svc)}/*`, `${serviceArn(svc)}/rates`, `${serviceArn(svc)}/rates*`,
    `arn:aws:vpc-lattice:us-east-1:${ACCOUNT}:service/*/rates`, `arn:aws:vpc-lattice:*:*:service/*/admin/*`,
    `arn:aws:vpc-lattice:us-east-1:${ACCOUNT}:service/svc-0123456789abcdef?/*`,
    `arn:aws:vpc-lattice:us-east-1:${OTHER_ACCOUNT}:service/*`, `${serviceArn(svc)}/`, `${serviceArn(svc)}/a${'${?}'}b`,
    `arn:aws:vpc-lattice:us-east-1:${ACCOUNT}:service/${svc}/\${aws:PrincipalTag/team}/*`,
    `arn:aws:vpc-lattice:us-east-1:${ACCOUNT}:service/*/api.parking/*`]);
}

function randomStatement(kind) {
  const statement = {};
  if (chance(0.2)) statement.Sid = 'S' + Math.floor(random() * 100);
  statement.Effect = chance(0.7) ? 'Allow' : 'Deny';
  // A resource-policy statement without Principal (5%) names nobody.
  if (kind === 'resource' && chance(0.95)) statement[chance(0.1) ? 'NotPrincipal' : 'Principal'] = randomPrincipal();
  const actions = some(['vpc-lattice-svcs:Invoke', 'vpc-lattice-svcs:*', '*', 'vpc-lattice-svcs:Connect',
    'VPC-Lattice-Svcs:invoke', 'vpc-lattice-svcs:Inv*'], 2);
  statement[chance(0.1) ? 'NotAction' : 'Action'] = oneOrList(actions);
  const resources = some([0, 1, 2].map(randomResource), 2);
  // Identity policies must name resources; auth policies may leave them out (all resources).
  if (kind === 'identity' || chance(0.9)) statement[chance(0.1) ? 'NotResource' : 'Resource'] = oneOrList(resources);
  if (chance(0.6)) statement.Condition = randomCondition();
  return statement;
}

// Ways to break a statement that both engines must reject. Not generated, because the oracle accepts them
// where IAM (and Trellis) reject them: an unknown operator (it takes one as "no match")
// and a Resource that is no ARN ("svc-1/*", "arn:aws:vpc-lattice"; it takes them as "no match").
const BREAKAGES = [
  (s) => delete s.Effect,
  (s) => (s.Effect = 'Permit'),
  (s) => (s.NotAction = s.Action || s.NotAction),
  (s) => (s.NotResource = s.Resource || s.NotResource || '*'),
];

function randomPolicy(kind) {
  const statements = [];
  const n = 1 + Math.floor(random() * 3);
  for (let i = 0; i < n; i++) statements.push(randomStatement(kind));
  if (chance(0.03)) pick(BREAKAGES)(pick(statements));
  const policy = { Version: chance(0.85) ? '2012-10-17' : '2008-10-17',
    Statement: n === 1 && chance(0.5) ? statements[0] : statements };
  // Before 2012-10-17 "${...}" is literal text (IAM docs); the oracle substitutes it in every version.
  if (policy.Version === '2008-10-17' && JSON.stringify(policy).includes('${')) policy.Version = '2012-10-17';
  return policy;
}

// Invoke (HTTP) requests name service ARN + path; Connect (TCP) requests name the service and carry only
// the keys that Connect supports.
const CONNECT_KEYS = new Set(['vpc-lattice-svcs:Port', 'vpc-lattice-svcs:ServiceArn', 'vpc-lattice-svcs:ServiceNetworkArn',
  'vpc-lattice-svcs:SourceVpc', 'vpc-lattice-svcs:SourceVpcOwnerAccount']);

function randomRequest() {
  const caller = pick(CALLERS);
  const service = pick(SERVICES);
  const path = pick(PATHS);
  const connect = chance(0.15);
  const keys = [];
  const add = (name, value, multi = false) => {
    if (connect && name.startsWith('vpc-lattice-svcs:') && !CONNECT_KEYS.has(name)) return;
    keys.push({ name, value, multi });
  };
  // The keys Lattice always supplies, then a random selection of optional ones.
  add('vpc-lattice-svcs:ServiceArn', serviceArn(service));
  add('vpc-lattice-svcs:ServiceNetworkArn', NETWORK_ARN);
  add('vpc-lattice-svcs:RequestPath', path);
  add('aws:PrincipalType', caller ? caller.type : 'Anonymous');
  for (const key of KEYS) {
    if (keys.some((k) => k.name === key.name) || chance(0.4)) continue;
    if (key.multi) {
      for (const value of some(key.values, 2)) add(key.name, value, true);
    } else {
      add(key.name, pick(key.values));
    }
  }
  if (caller) {
    add('aws:PrincipalArn', caller.arn);
    add('aws:PrincipalAccount', caller.arn.split(':')[4]);
    if (chance(0.8)) add('aws:PrincipalOrgID', caller.org);
    for (const path of caller.paths) add('aws:PrincipalOrgPaths', path, true);
    for (const [tag, value] of Object.entries(caller.tags)) add(`aws:PrincipalTag/${tag}`, value);
  }
  return {
    principal: caller ? caller.arn : '',
    action: connect ? 'vpc-lattice-svcs:Connect' : 'vpc-lattice-svcs:Invoke',
    resource: connect ? serviceArn(service) : serviceArn(service) + path,
    keys,
  };
}

function contextVariables(request) {
  const out = {};
  for (const key of request.keys) {
    if (key.multi) (out[key.name] = out[key.name] || []).push(key.value);
    else out[key.name] = key.value;
  }
  return out;
}

const RESULTS = {
  Allowed: 'Allow',
  AllowedForAccount: 'Allow',  // the principal was named by account id: Lattice lets the account's principals in
  ImplicitlyDenied: 'ImplicitDeny',
  ExplicitlyDenied: 'ExplicitDeny',
  DeniedForAccount: 'ExplicitDeny',  // a Deny naming the caller's account applies to the caller
};

const invalidReasons = [];

async function simulateLayer(request, policy, asIdentity) {
  const result = await runSimulation({
    request: {
      principal: request.principal ? request.principal : { type: 'Anonymous' },
      action: request.action,
      resource: { resource: request.resource, accountId: ACCOUNT },
      contextVariables: contextVariables(request),
    },
    identityPolicies: asIdentity ? [{ name: 'identity', policy }] : [],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: asIdentity ? undefined : policy,
  }, {});
  // Rejected policies are cases too: our parser must reject them as well.
  if (result.errors) {
    invalidReasons.push(JSON.stringify(result.errors));
    return 'Invalid';
  }
  const analysis = result.result.analysis;
  const raw = asIdentity ? analysis.identityAnalysis.result : analysis.resourceAnalysis.result;
  if (!(raw in RESULTS)) throw new Error('unexpected oracle result ' + raw);
  return RESULTS[raw];
}

// docs/architecture.md, "Auth on the data plane": identity (when the caller has a policy) AND network
// (when AWS_IAM) AND service (when AWS_IAM); an explicit Deny anywhere wins; AWS_IAM without a policy denies.
function combine(layers) {
  let implicit = null;
  for (const [name, inForce, effect] of layers) {
    if (!inForce) continue;
    if (effect === 'ExplicitDeny') return { allowed: false, deniedBy: name, explicitDeny: true };
    if (effect !== 'Allow' && !implicit) implicit = name;
  }
  return implicit ? { allowed: false, deniedBy: implicit, explicitDeny: false } : { allowed: true };
}

async function main() {
  const cases = [];
  for (let i = 0; i < count; i++) {
    const request = randomRequest();
    const c = { request, networkUsesIam: chance(0.5), serviceUsesIam: chance(0.8) };
    if (request.principal && chance(0.3)) c.identity = randomPolicy('identity');
    if (c.networkUsesIam && chance(0.9)) c.network = randomPolicy('resource');
    if (c.serviceUsesIam && chance(0.9)) c.service = randomPolicy('resource');
    c.expected = {};
    if (c.identity) c.expected.identity = await simulateLayer(request, c.identity, true);
    if (c.network) c.expected.network = await simulateLayer(request, c.network, false);
    if (c.service) c.expected.service = await simulateLayer(request, c.service, false);
    if (Object.values(c.expected).includes('Invalid')) {
      cases.push(c);
      continue;
    }
    c.expected.combined = combine([
      ['Identity', !!c.identity, c.expected.identity],
      ['Network', c.networkUsesIam, c.expected.network],
      ['Service', c.serviceUsesIam, c.expected.service],
    ]);
    cases.push(c);
  }
  process.stdout.write(JSON.stringify(cases, null, 1));
  if (process.env.SHOW_INVALID) console.error(invalidReasons.join('\n'));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
