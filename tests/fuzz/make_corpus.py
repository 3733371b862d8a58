#!/usr/bin/env python3
"""Seeds tests/fuzz/corpus/<target>/ from the OpenAPI schemas of the Azure Marketplace APIs.

The OpenAPI files carry schemas, not example bodies: each JSON response schema is instantiated
(every property present, enums at their first value, formats as Azure writes them) and framed the
way each fuzz target reads its input. Run again when the schemas change; the output is committed.
usage: make_corpus.py OPENAPI_DIR OUT_DIR
"""
import base64
import json
import os
import subprocess
import sys

# OpKind order in include/azmp/operations.hpp, and the status table of fuzz_operations.cpp.
KINDS = {('post', '/saas/subscriptions/resolve'): 0, ('post', '/saas/subscriptions/{subscriptionId}/activate'): 1,
         ('get', '/saas/subscriptions/{subscriptionId}'): 2, ('get', '/saas/subscriptions/'): 3,
         ('get', '/saas/subscriptions/{subscriptionId}/listAvailablePlans'): 4,
         ('patch', '/saas/subscriptions/{subscriptionId}'): 5, ('delete', '/saas/subscriptions/{subscriptionId}'): 7,
         ('get', '/saas/subscriptions/{subscriptionId}/operations'): 8,
         ('get', '/saas/subscriptions/{subscriptionId}/operations/{operationId}'): 9,
         ('patch', '/saas/subscriptions/{subscriptionId}/operations/{operationId}'): 10,
         ('post', '/usageEvent'): 11, ('post', '/batchUsageEvent'): 12, ('get', '/usageEvents'): 13}
STATUSES = [200, 201, 202, 204, 400, 401, 403, 404, 409, 429, 500, 503, 302, 0]
LOCATION = b'https://marketplaceapi.microsoft.com/api/saas/subscriptions/37f9dea2-4345-438f-b0bd-03d40d28c7e0/operations/529f53e7-4c2f-4a2c-9ad1-1234567890ab?api-version=2018-08-31'


def resolve(doc, s):
    while '$ref' in s:
        name = s['$ref'].split('/')[-1]
        s = {**doc['components']['schemas'][name], **{k: v for k, v in s.items() if k != '$ref'}}
    return s


def instance(doc, s, depth=0):
    s = resolve(doc, s)
    if 'enum' in s:
        return s['enum'][0]
    t = s.get('type', 'object' if 'properties' in s else 'string')
    if t == 'object':
        if depth > 6:
            return {}
        return {k: instance(doc, v, depth + 1) for k, v in s.get('properties', {}).items()}
    if t == 'array':
        return [instance(doc, s.get('items', {}), depth + 1)]
    if t == 'integer':
        return 1
    if t == 'number':
        return 1.5
    if t == 'boolean':
        return True
    fmt = s.get('format')
    return {'uuid': '37f9dea2-4345-438f-b0bd-03d40d28c7e0', 'date-time': '2026-11-26T06:00:00Z',
            'date': '2026-11-26'}.get(fmt, 'x')


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def main(src, out):
    bodies = []
    for spec in ('saasapi.v2.json', 'meteringapi.v1.json'):
        doc = json.load(open(os.path.join(src, spec)))
        for path, ops in doc['paths'].items():
            for method, op in ops.items():
                kind = KINDS.get((method, path))
                if kind is None or not isinstance(op, dict):
                    continue
                for code, resp in op.get('responses', {}).items():
                    schema = resp.get('content', {}).get('application/json', {}).get('schema')
                    body = json.dumps(instance(doc, schema)).encode() if schema else b''
                    status = STATUSES.index(int(code)) if int(code) in STATUSES else 0
                    frame = bytes([kind, status]) + (LOCATION if code == '202' else b'') + b'\n' + body
                    name = f'{spec.split(".")[0]}_{kind}_{code}'
                    write(out, 'fuzz_operations', name, frame)
                    if kind in (11, 12, 13):
                        write(out, 'fuzz_usage_batch', name, bytes([{12: 0, 11: 1, 13: 2}[kind], [200, 409, 400, 403, 500].index(int(code))]) + body)
                    if body:
                        bodies.append((name, body))
    for name, body in bodies:
        write(out, 'fuzz_json', name, body)
    # Entra's token answers (v1 sends expires_in as a string, v2 as a number) and an error.
    for i, body in enumerate([b'{"token_type":"Bearer","expires_in":"3599","ext_expires_in":"3599","expires_on":"1700003599","resource":"20e940b3-4c77-4b0b-9a53-9e16a1b010a7","access_token":"eyJ0eXAi.eyJhdWQi.c2ln"}',
                              b'{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAi.eyJhdWQi.c2ln"}']):
        write(out, 'fuzz_token', f'ok_{i}', b'\x00' + body)
    write(out, 'fuzz_token', 'invalid_client', b'\x01{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}')
    # A JWKS as Entra publishes it, with a real 2048-bit modulus.
    pem = subprocess.run(['openssl', 'genrsa', '2048'], capture_output=True, check=True).stdout
    mod = subprocess.run(['openssl', 'rsa', '-noout', '-modulus'], input=pem, capture_output=True, check=True).stdout
    n = bytes.fromhex(mod.decode().strip().split('=')[1])
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b'=').decode()
    jwk = {'kty': 'RSA', 'use': 'sig', 'kid': 'nOo3ZDrODXEK1jKWhXslHR_KXEg', 'x5t': 'nOo3ZDrODXEK1jKWhXslHR_KXEg',
           'n': b64(n), 'e': 'AQAB', 'x5c': ['MIIDBTCCAe2gAwIBAgIQ'], 'issuer': 'https://login.microsoftonline.com/{tenantid}/v2.0'}
    write(out, 'fuzz_jwks', 'entra', json.dumps({'keys': [jwk, {**jwk, 'kid': 'other', 'alg': 'RS256'}]}).encode())
    # Tokens: header\nclaims to be signed by the target (odd mode), and a token as sent (even mode).
    tenant = '72f988bf-86f1-41af-91ab-2d7cd011db47'
    header = {'typ': 'JWT', 'alg': 'RS256', 'x5t': 'fuzz-kid', 'kid': 'fuzz-kid'}
    for v2 in (False, True):
        claims = {'aud': 'b0a9a8d9-1111-2222-3333-444455556666',
                  'iss': f'https://login.microsoftonline.com/{tenant}/v2.0' if v2 else f'https://sts.windows.net/{tenant}/',
                  'iat': 1699999940, 'nbf': 1699999940, 'exp': 1700003540, 'tid': tenant, 'ver': '2.0' if v2 else '1.0',
                  ('azp' if v2 else 'appid'): '20e940b3-4c77-4b0b-9a53-9e16a1b010a7'}
        write(out, 'fuzz_jwt', f'signed_v{2 if v2 else 1}', b'\x01' + json.dumps(header).encode() + b'\n' + json.dumps(claims).encode())
        token = b64(json.dumps(header).encode()) + '.' + b64(json.dumps(claims).encode()) + '.' + b64(b'\x00' * 256)
        write(out, 'fuzz_jwt', f'as_sent_v{2 if v2 else 1}', b'\x00' + token.encode())
    for i, text in enumerate([b'0', b'1', b'1.5', b'0.000001', b'123456.789012', b'1000000000', b'01.10']):
        write(out, 'fuzz_decimal', f'd{i}', text)
    base = b'https://marketplaceapi.microsoft.com/api'
    for i, (a, b) in enumerate([(LOCATION, base), (base + b'/saas/subscriptions?continuationToken=abc', base),
                                (b'https://marketplaceapi.microsoft.com:443/api', b'http://127.0.0.1:8480/api'),
                                (b'http://localhost:8480/api/saas/subscriptions/x/operations/y', b'http://[::1]:1/')]):
        write(out, 'fuzz_url', f'u{i}', a + b'\n' + b)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
