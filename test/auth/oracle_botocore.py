"""Signs every case of oracle_cases.json with botocore's SigV4Auth / SigV4QueryAuth (what boto3 and the AWS CLI
use) and prints what went on the wire as JSON. usage: python3 oracle_botocore.py oracle_cases.json"""
import datetime
import hashlib
import json
import sys
from unittest import mock
from urllib.parse import quote, urlsplit

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HOST = 'api.trellis.test:8440'


def rfc3986(s):
    return quote(s, safe='-_.~')


def wire_query(pairs):
    return '&'.join(f'{rfc3986(k)}={rfc3986(v)}' for k, v in pairs)


def input_headers(case):
    # botocore keeps repeated headers apart (HTTPMessage appends on assignment), unlike the JS signers.
    headers = [('host', HOST)] + [tuple(h) for h in case.get('headers', [])]
    body = case.get('body', '')
    if body:
        headers.append(('content-length', str(len(body.encode()))))
    sha = case.get('contentSha256')
    if sha is True:
        headers.append(('x-amz-content-sha256', hashlib.sha256(body.encode()).hexdigest()))
    elif isinstance(sha, str):
        headers.append(('x-amz-content-sha256', sha))
    return headers


def main():
    spec = json.load(open(sys.argv[1]))
    when = datetime.datetime.strptime(spec['time'], '%Y-%m-%dT%H:%M:%SZ')
    amz_date = when.strftime('%Y%m%dT%H%M%SZ')
    results = []
    for case in spec['cases']:
        creds = Credentials(spec['accessKeyId'], spec['secretAccessKey'], case.get('sessionToken') or None)
        query = wire_query(case.get('query', []))
        url = f"http://{HOST}{case['path']}" + (f'?{query}' if query else '')
        request = AWSRequest(method=case['method'], url=url, data=case.get('body', '').encode())
        for k, v in input_headers(case):
            request.headers[k] = v
        if case.get('presign'):
            signer = botocore.auth.SigV4QueryAuth(creds, case['service'], spec['region'], expires=300)
        else:
            signer = botocore.auth.SigV4Auth(creds, case['service'], spec['region'])
        with mock.patch('botocore.auth.get_current_datetime', return_value=when):
            signer.add_auth(request)
        parts = urlsplit(request.url)
        results.append({
            'name': case['name'], 'signer': 'botocore', 'method': case['method'], 'host': HOST, 'path': parts.path,
            'query': parts.query, 'headers': [[k, v] for k, v in request.headers.items()],
            'body': case.get('body', ''), 'time': amz_date, 'accessKeyId': spec['accessKeyId'],
            'secretAccessKey': spec['secretAccessKey'], 'sessionToken': case.get('sessionToken', ''),
            'region': spec['region'], 'service': case['service'], 'presigned': bool(case.get('presign')),
            'expires': 300 if case.get('presign') else 0,
            'signInput': {'headers': [list(h) for h in input_headers(case)], 'query': query},
        })
    json.dump(results, sys.stdout, indent=1)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
