// Signs every case of oracle_cases.json with a real AWS signer and prints what went on the wire (JSON).
// usage: NODE_PATH=test/integration/node_modules node oracle_node.cjs smithy|aws4 oracle_cases.json
'use strict';
const fs = require('fs');
const crypto = require('crypto');

const [signer, casesFile] = process.argv.slice(2);
if (!['smithy', 'aws4'].includes(signer) || !casesFile) {
  console.error('usage: oracle_node.cjs smithy|aws4 CASES.json');
  process.exit(2);
}
const spec = JSON.parse(fs.readFileSync(casesFile, 'utf8'));
const host = 'api.trellis.test:8440';
const time = new Date(spec.time);
const amzDate = time.toISOString().replace(/[:\-]|\.\d{3}/g, '');
const sha256 = (s) => crypto.createHash('sha256').update(s, 'utf8').digest('hex');
const rfc3986 = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());

// Headers the signer is given: host, the case's own (duplicates folded into one "a,b" value as a JS object
// can hold only one), content-length for bodies, and x-amz-content-sha256 when the case sends it.
function inputHeaders(c) {
  const h = { host };
  for (const [k, v] of c.headers || []) h[k] = k in h ? `${h[k]},${v}` : v;
  if (c.body) h['content-length'] = String(Buffer.byteLength(c.body));
  if (c.contentSha256 === true) h['x-amz-content-sha256'] = sha256(c.body || '');
  else if (typeof c.contentSha256 === 'string') h['x-amz-content-sha256'] = c.contentSha256;
  return h;
}
const wireQuery = (pairs) => (pairs || []).map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`).join('&');
const credsOf = (c) => ({
  accessKeyId: spec.accessKeyId, secretAccessKey: spec.secretAccessKey,
  ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}),
});

async function signSmithy(c) {
  const { SignatureV4 } = require('@smithy/signature-v4');
  const { HttpRequest } = require('@smithy/protocol-http');
  const { Sha256 } = require('@aws-crypto/sha256-js');
  const sig = new SignatureV4({ service: c.service, region: spec.region, credentials: credsOf(c), sha256: Sha256,
                                applyChecksum: false });
  const query = {};
  for (const [k, v] of c.query || []) query[k] = k in query ? [].concat(query[k], v) : v;
  const [hostname, port] = host.split(':');
  const req = new HttpRequest({ method: c.method, protocol: 'http:', hostname, port: Number(port), path: c.path, query,
                                headers: inputHeaders(c), body: c.body || undefined });
  if (c.presign) {
    const out = await sig.presign(req, { signingDate: time, expiresIn: 300 });
    const q = Object.entries(out.query).flatMap(([k, v]) => [].concat(v).map((x) => [k, x]));
    return { path: out.path, query: wireQuery(q), headers: Object.entries(out.headers), expires: 300 };
  }
  const out = await sig.sign(req, { signingDate: time });
  return { path: out.path, query: wireQuery(c.query), headers: Object.entries(out.headers) };
}

function signAws4(c) {
  const aws4 = require('aws4');
  const q = c.query || [];
  const headers = inputHeaders(c);
  if (!c.presign) headers['X-Amz-Date'] = amzDate;  // aws4 takes the signing time from here
  const extra = c.presign ? [['X-Amz-Date', amzDate], ['X-Amz-Expires', '300']] : [];
  const all = q.concat(extra);
  const opts = { host, method: c.method, path: c.path + (all.length ? '?' + wireQuery(all) : ''), service: c.service,
                 region: spec.region, headers, body: c.body || undefined, signQuery: !!c.presign };
  const out = aws4.sign(opts, credsOf(c));
  const qi = out.path.indexOf('?');
  return { path: qi < 0 ? out.path : out.path.slice(0, qi), query: qi < 0 ? '' : out.path.slice(qi + 1),
           headers: Object.entries(out.headers), expires: c.presign ? 300 : undefined };
}

(async () => {
  const results = [];
  for (const c of spec.cases) {
    const wire = signer === 'smithy' ? await signSmithy(c) : signAws4(c);
    results.push({
      name: c.name, signer, method: c.method, host, path: wire.path, query: wire.query,
      headers: wire.headers.map(([k, v]) => [k, String(v)]), body: c.body || '', time: amzDate,
      accessKeyId: spec.accessKeyId, secretAccessKey: spec.secretAccessKey, sessionToken: c.sessionToken || '',
      region: spec.region, service: c.service, presigned: !!c.presign, expires: wire.expires || 0,
      // What our signer gets to reproduce the same signature.
      signInput: { headers: Object.entries(inputHeaders(c)), query: wireQuery(c.query) },
    });
  }
  process.stdout.write(JSON.stringify(results, null, 1) + '\n');
})().catch((e) => { console.error(e); process.exit(1); });
