// A Lambda-compatible server for the tests: the Invoke API (POST [PREFIX]/2015-03-31/functions/{name}/invocations,
// ?Qualifier= for a version or alias) with the SigV4 signature checked as Lambda checks it (service `lambda`,
// recomputed with @smithy/signature-v4 from the headers the caller signed), running functions given by name.
// A function gets the event and {qualifier}; what it returns is the payload (JSON), RAW(text) a payload as
// it is, and what it throws an Unhandled function error (X-Amz-Function-Error), as Lambda answers them.
import http from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import { HttpRequest } from '@smithy/protocol-http';
import { Sha256 } from '@aws-crypto/sha256-js';

const rawPayload = Symbol('raw');
export const RAW = (text) => ({ [rawPayload]: text });

async function signatureProblem(req, url, body, credentials, region) {
  const auth = req.headers.authorization ?? '';
  const m = auth.match(/^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/);
  if (!m) return `no SigV4 Authorization header: '${auth}'`;
  const [, keyId, , scopeRegion, service, signedHeaders, signature] = m;
  if (keyId !== credentials.accessKeyId) return `unknown access key ${keyId}`;
  if (service !== 'lambda' || scopeRegion !== region) return `signed for ${service} in ${scopeRegion}`;
  const amzDate = req.headers['x-amz-date'];
  const signingDate = new Date(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
  if (!(Math.abs(Date.now() - signingDate) < 5 * 60 * 1000)) return `x-amz-date ${amzDate} is not now`;
  const headers = {};
  for (const name of signedHeaders.split(';')) headers[name] = req.headers[name];
  const query = Object.fromEntries(url.searchParams.entries());
  const signer = new SignatureV4({ service: 'lambda', region, sha256: Sha256, credentials });
  const expected = await signer.sign(new HttpRequest({ method: req.method, protocol: 'http:', hostname: headers.host,
    path: url.pathname, query, headers, body }), { signingDate });
  const want = expected.headers.authorization.match(/Signature=([0-9a-f]{64})/)[1];
  return want === signature ? null : `signature mismatch for ${req.method} ${url.pathname}`;
}

// Options: credentials ({accessKeyId, secretAccessKey}), region, functions ({name: async (event, ctx) => payload}),
// prefix (a path the endpoint URL has). Resolves to {port, invocations, close()}; each invocation is
// {name, qualifier, path, headers, event, signatureProblem}.
export function startLambdaServer({ credentials, region, functions, prefix = '' }) {
  const invocations = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url, 'http://lambda.local');
      const send = (status, headers, payload) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(payload);
      };
      const problem = await signatureProblem(req, url, body, credentials, region);
      const m = url.pathname.match(/^(.*)\/2015-03-31\/functions\/([^/]+)\/invocations$/);
      const name = m && m[1] === prefix ? decodeURIComponent(m[2]) : null;
      const invocation = { name, qualifier: url.searchParams.get('Qualifier'), path: req.url, headers: req.headers,
        event: null, signatureProblem: problem };
      invocations.push(invocation);
      if (problem) return send(403, { 'x-amzn-errortype': 'InvalidSignatureException' }, JSON.stringify({ message: problem }));
      const fn = name && functions[name];
      if (!fn) return send(404, { 'x-amzn-errortype': 'ResourceNotFoundException' }, JSON.stringify({ Type: 'User', message: `Function not found: ${name}` }));
      try {
        invocation.event = JSON.parse(body);
      } catch {
        return send(400, { 'x-amzn-errortype': 'InvalidRequestContentException' }, JSON.stringify({ message: 'not JSON' }));
      }
      try {
        const payload = await fn(invocation.event, { qualifier: invocation.qualifier });
        send(200, {}, payload && payload[rawPayload] !== undefined ? payload[rawPayload] : JSON.stringify(payload));
      } catch (e) {
        send(200, { 'x-amz-function-error': 'Unhandled' }, JSON.stringify({ errorMessage: e.message, errorType: 'Error' }));
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port,
    invocations,
    close: () => { server.closeAllConnections(); server.close(); },
  })));
}
