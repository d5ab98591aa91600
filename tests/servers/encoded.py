#!/usr/bin/env python3
"""An HTTP/1.1 peer that sends compressed bodies, good and bad.

Usage: encoded.py

Listens on 127.0.0.1, port 0, prints exactly one line "READY <port>",
then serves until killed (SIGTERM); dies with its parent. One thread per
connection, keep-alive. Python 3 standard library only (zlib).

Every response carries X-Accept-Encoding: the request's Accept-Encoding
("-" when absent). "Pattern bytes" means byte i is i % 251. SIZE is a
decimal byte count of the decoded body. Paths (GET; HEAD sends the head):

  /gzip/SIZE           gzip of SIZE pattern bytes, Content-Length
  /gzip-chunked/SIZE   the same, chunked, in pieces of 1000 bytes
  /deflate/SIZE        zlib-wrapped deflate (RFC 1950), Content-Length
  /raw-deflate/SIZE    raw deflate (RFC 1951), as some servers send it
  /gzip-members/SIZE   two gzip members, each of SIZE pattern bytes
                       (decoded: 2 * SIZE bytes, the pattern twice)
  /x-gzip/SIZE         Content-Encoding: x-gzip
  /identity/SIZE       the pattern bytes, Content-Encoding: identity
  /br/SIZE             the pattern bytes labelled Content-Encoding: br
                       (a coding nobody here decodes: passed as is)
  /corrupt/SIZE        gzip of SIZE bytes with its CRC-32 inverted (all
                       bytes decode; the check at the end fails)
  /bad-block/SIZE      gzip whose first block has the invalid type 3
  /truncated/SIZE      gzip of SIZE bytes without its last 20 bytes (the
                       framing is right: Content-Length counts what is sent)
  /deflate-trailing/SIZE  zlib deflate, then 5 bytes of garbage
  /zeros/SIZE          gzip of SIZE zero bytes (a decompression bomb when
                       SIZE is large: ratio about 1000:1), chunked in
                       pieces of 1000 bytes
"""
import argparse
import ctypes
import os
import signal
import socket
import sys
import threading
import time
import zlib

PR_SET_PDEATHSIG = 1
_PERIOD = bytes(range(251))


def die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        pass


def pattern(n):
    reps = n // 251 + 1
    return (_PERIOD * reps)[:n]


def gzip_of(data):
    c = zlib.compressobj(6, zlib.DEFLATED, 16 + 15)
    return c.compress(data) + c.flush()


def deflate_of(data, raw=False):
    c = zlib.compressobj(6, zlib.DEFLATED, -15 if raw else 15)
    return c.compress(data) + c.flush()


def corrupt(data):
    """gzip with its CRC-32 inverted: every byte decodes, the check fails."""
    b = bytearray(data)
    for i in range(len(b) - 8, len(b) - 4):
        b[i] ^= 0xFF
    return bytes(b)


def bad_block(data):
    """gzip whose first deflate block header says block type 3 (invalid)."""
    b = bytearray(data)
    b[10] |= 0x06
    return bytes(b)


def zeros_gzip(n):
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + 15)
    out = []
    block = bytes(1 << 20)
    left = n
    while left:
        k = min(left, len(block))
        out.append(c.compress(block[:k]))
        left -= k
    out.append(c.flush())
    return b"".join(out)


# name -> (Content-Encoding, body maker, chunked)
ROUTES = {
    "gzip": ("gzip", lambda n: gzip_of(pattern(n)), False),
    "gzip-chunked": ("gzip", lambda n: gzip_of(pattern(n)), True),
    "deflate": ("deflate", lambda n: deflate_of(pattern(n)), False),
    "raw-deflate": ("deflate", lambda n: deflate_of(pattern(n), True), False),
    "gzip-members": ("gzip", lambda n: gzip_of(pattern(n)) * 2, False),
    "x-gzip": ("x-gzip", lambda n: gzip_of(pattern(n)), False),
    "identity": ("identity", pattern, False),
    "br": ("br", pattern, False),
    "corrupt": ("gzip", lambda n: corrupt(gzip_of(pattern(n))), False),
    "bad-block": ("gzip", lambda n: bad_block(gzip_of(pattern(n))), False),
    "truncated": ("gzip", lambda n: gzip_of(pattern(n))[:-20], False),
    "deflate-trailing": ("deflate",
                         lambda n: deflate_of(pattern(n)) + b"12345", False),
    "zeros": ("gzip", zeros_gzip, True),
}

_cache = {}
_lock = threading.Lock()


def body_for(name, n):
    key = (name, n)
    with _lock:
        if key not in _cache:
            _cache[key] = ROUTES[name][1](n)
        return _cache[key]


def read_head(f):
    lines = []
    while True:
        line = f.readline(65536)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line.decode("latin-1").rstrip("\r\n"))


def respond(sock, method, target, headers):
    ae = headers.get("accept-encoding", "-")
    parts = target.split("/")
    if len(parts) != 3 or parts[1] not in ROUTES or not parts[2].isdigit():
        body = b"not found\n"
        sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n"
                     b"X-Accept-Encoding: %s\r\n\r\n%s"
                     % (len(body), ae.encode(), body))
        return
    coding, _, chunked = ROUTES[parts[1]]
    body = body_for(parts[1], int(parts[2]))
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Encoding: %s\r\nX-Accept-Encoding: %s\r\n"
            % (coding.encode(), ae.encode()))
    if chunked:
        head += b"Transfer-Encoding: chunked\r\n\r\n"
    else:
        head += b"Content-Length: %d\r\n\r\n" % len(body)
    if method == "HEAD":
        sock.sendall(head)
        return
    if not chunked:
        sock.sendall(head + body)
        return
    out = [head]
    for i in range(0, len(body), 1000):
        piece = body[i:i + 1000]
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    out.append(b"0\r\n\r\n")
    sock.sendall(b"".join(out))


def serve(sock):
    f = sock.makefile("rb")
    try:
        while True:
            lines = read_head(f)
            if not lines:
                return
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", "0") or 0)
            if n:
                f.read(n)
            respond(sock, method, target, headers)
            if headers.get("connection", "").lower() == "close":
                return
    except (OSError, ValueError):
        pass
    finally:
        f.close()
        sock.close()


def main():
    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:
        return 1
    argparse.ArgumentParser(description="HTTP peer sending encoded bodies").parse_args()
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(128)
    sys.stdout.write("READY %d\n" % lsock.getsockname()[1])
    sys.stdout.flush()
    while True:
        try:
            sock, _ = lsock.accept()
        except OSError:
            time.sleep(0.01)
            continue
        threading.Thread(target=serve, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
