#!/usr/bin/env python3
"""make_seeds.py - write the seed corpora of the fuzz targets
(tests/fuzz/corpus/<target>/) from the strings the unit tests use, plus a
few certificates made here with the openssl command. Run from anywhere;
the files are committed, so this is needed only to change the seeds.
Each seed file is named by its content's hash: re-running adds nothing
new. Seeds found by fuzzing that reproduce a fixed crash are named
regress-* and are not touched here.
"""
import hashlib
import ipaddress
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, 'tests', 'fuzz', 'corpus')

ESC = {'n': b'\n', 'r': b'\r', 't': b'\t', '0': b'\0', '\\': b'\\',
       '"': b'"', "'": b"'"}


def c_literals(path, macros=None):
    """Every C string literal of a file, adjacent ones joined, decoded."""
    src = open(path, encoding='utf-8').read()
    src = re.sub(r'/\*.*?\*/', ' ', src, flags=re.S)
    for name, value in (macros or {}).items():
        src = re.sub(r'\b%s\b' % name, value, src)
    out = []
    for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"(?:\s*"(?:[^"\\\n]|\\.)*")*', src):
        parts = re.findall(r'"((?:[^"\\\n]|\\.)*)"', m.group(0))
        out.append(b''.join(decode(p) for p in parts))
    return out


def decode(s):
    b = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != '\\':
            b += c.encode()
            i += 1
            continue
        n = s[i + 1]
        if n == 'x':
            m = re.match(r'[0-9a-fA-F]+', s[i + 2:])
            b.append(int(m.group(0), 16) & 0xff)
            i += 2 + len(m.group(0))
        elif n in ESC:
            b += ESC[n]
            i += 2
        else:
            b += n.encode()
            i += 2
    return bytes(b)


def write(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = 'seed-' + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def url_seeds():
    lits = c_literals(os.path.join(ROOT, 'tests/http/test_url.c'))
    for lit in lits:
        if b'://' in lit:
            write('url', b'\0' + lit)
    src = open(os.path.join(ROOT, 'tests/http/test_url.c')).read()
    for base, ref in re.findall(r'\{ "([^"]*)", "([^"]*)", (?:"[^"]*"|NULL)', src):
        b, r = decode(base), decode(ref)
        if b'://' in b and len(b) < 256:
            write('url', bytes([len(b)]) + b + r)


def response_seeds():
    lits = c_literals(os.path.join(ROOT, 'tests/http/test_h1_response.c'),
                      {'OK200': r'"HTTP/1.1 200 OK\r\n"'})
    for lit in lits:
        if not lit.startswith(b'HTTP/') and b'\r\n' not in lit:
            continue
        write('h1_response', b'\x00\x00' + lit)   # GET, no EOF, defaults
        write('h1_response', b'\x06\x00' + lit)   # GET, EOF
        write('h1_response', b'\x0b\x16' + lit)   # HEAD, EOF, small limits


def request_seed(mode, url, method, headers):
    b = bytearray([mode, len(url)]) + url + bytes([len(method)]) + method
    for n, v in headers:
        b += bytes([len(n), len(v)]) + n + v
    return bytes(b)


def request_seeds():
    G, HEAD, POST, CUSTOM = 0, 1, 2, 7
    CHUNKED, LEN5 = 2 << 3, 1 << 3
    cases = [
        (G, b'http://example.com', b'', []),
        (G, b'http://Example.com:8080/a%20b?c=d#frag', b'', [(b'Accept', b'*/*')]),
        (HEAD, b'http://[::1]:8080/x', b'', []),
        (POST | CHUNKED, b'http://h/up', b'', [(b'Content-Type', b'text/plain')]),
        (POST | LEN5, b'https://h:443/', b'', [(b'X-A', b' padded \t')]),
        (CUSTOM, b'http://127.0.0.1:8080/', b'PROPFIND',
         [(b'X-A', b'1'), (b'host', b'virtual.example'), (b'user-agent', b'me/2'),
          (b'X-B', b'')]),
        (G, b'http://h/', b'', [(b'Connection', b'keep-alive, close')]),
        (G, b'http://h/', b'', [(b'Connection', b'Upgrade,\tClose ')]),
        (G, b'http://h/', b'', [(b'X', b'a\r\nInjected: 1')]),
        (G, b'http://h/', b'', [(b'Bad Name', b'v')]),
        (G, b'http://h/', b'', [(b'Content-Length', b'3')]),
        (G, b'http://h/', b'', [(b'Host', b'a'), (b'Host', b'b')]),
        (G, b'http://h/', b'', [(b'X', b'tab\there'), (b'Y', b'obs\x80text')]),
        (CUSTOM, b'http://h/', b'CONNECT', []),
    ]
    for mode, url, method, headers in cases:
        write('h1_request', request_seed(mode, url, method, headers))


def lines_seeds():
    for lit in c_literals(os.path.join(ROOT, 'tests/bridge/test_lines.c')):
        if (b'\n' in lit or b'\r' in lit) and b'%' not in lit:
            for mode in (0x00, 0x02, 0x09, 0x0b):
                write('lines', bytes([mode, 7]) + lit)


def openssl(*args, cwd):
    subprocess.run(['openssl'] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cert_seeds():
    with tempfile.TemporaryDirectory() as d:
        san = 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost'
        openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt',
                'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ec.key',
                '-out', 'ec.pem', '-days', '3650', '-subj', '/CN=ferry fuzz EC',
                '-addext', san, cwd=d)
        openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout',
                'rsa.key', '-out', 'rsa.pem', '-days', '3650', '-subj',
                '/CN=ferry fuzz RSA', '-addext', 'basicConstraints=critical,CA:TRUE',
                cwd=d)
        pems = {n: open(os.path.join(d, n + '.pem'), 'rb').read() for n in ('ec', 'rsa')}
        ders = {}
        for n in pems:
            openssl('x509', '-in', n + '.pem', '-outform', 'DER', '-out', n + '.der', cwd=d)
            ders[n] = open(os.path.join(d, n + '.der'), 'rb').read()
        key = open(os.path.join(d, 'ec.key'), 'rb').read()
    write('pem', b'\0' + pems['ec'])
    write('pem', b'\0' + pems['ec'] + key + pems['rsa'])
    write('pem', b'\0' + pems['ec'].replace(b'\n', b'\r\n'))
    write('pem', b'\0' + pems['ec'].rstrip(b'\n'))
    for der in ders.values():
        write('pem', b'\x01' + der)
        write('pem', b'\x53' + der)
    v4 = ipaddress.ip_address('127.0.0.1').packed
    v6 = ipaddress.ip_address('::1').packed
    for der in ders.values():
        write('san', b'\x00' + v4 + der)
        write('san', b'\x02' + v6 + der)
        write('san', b'\x00' + bytes(4) + der)
    for mode in (0x01, 0x03):
        write('san', bytes([mode]) + bytes(range(1, 120)))


def decode_seeds():
    """fuzz_decode: byte 0 = coding (0 gzip, 1 deflate, 2 x-gzip, 3
    DEFLATE) | 0x10 small size limit | 0x20 ratio 2; byte 1 = seed."""
    import gzip
    import zlib

    def defl(data, wbits):
        c = zlib.compressobj(6, zlib.DEFLATED, wbits)
        return c.compress(data) + c.flush()
    pat = bytes(i % 251 for i in range(40000))
    text = b'hello world, ' * 200
    write('decode', bytes([0, 7]) + gzip.compress(text, mtime=0))
    write('decode', bytes([0, 9]) + gzip.compress(pat, mtime=0))
    write('decode', bytes([2, 3]) + gzip.compress(text, mtime=0) * 2)
    write('decode', bytes([1, 5]) + defl(pat, 15))
    write('decode', bytes([3, 11]) + defl(text, -15))
    write('decode', bytes([0x10, 1]) + gzip.compress(bytes(200000), mtime=0))
    write('decode', bytes([0, 2]) + gzip.compress(text, mtime=0)[:-9])
    write('decode', bytes([1, 4]) + defl(text, 15) + b'xyz')


def main():
    decode_seeds()
    url_seeds()
    response_seeds()
    request_seeds()
    lines_seeds()
    cert_seeds()
    for t in sorted(os.listdir(CORPUS)):
        print(t, len(os.listdir(os.path.join(CORPUS, t))), file=sys.stderr)


if __name__ == '__main__':
    main()
