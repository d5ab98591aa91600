#!/usr/bin/env python3
"""A small HTTP forward proxy for tests, counting what it saw.

Usage: proxy.py [--auth USER:PASS] [--refuse-connect] [--stats FILE]
                [--tls CERT KEY]

Listens on 127.0.0.1, port 0 (the kernel picks one), prints exactly one
line "READY <port>" on stdout, then serves until killed (SIGTERM).  One
thread per connection.  It dies with its parent (PR_SET_PDEATHSIG).  Python
3 standard library only.  It only ever connects to 127.0.0.1 and ::1
targets (anything else gets 403).

What it speaks:
  absolute form   "GET http://host:port/path HTTP/1.1": the request goes to
                  host:port in origin form on a fresh connection (with
                  Connection: close, the Proxy-* fields dropped); the answer
                  comes back with its Content-Length (or until the server
                  closes, then the client connection closes too).  The
                  client connection stays open for the next request
                  (keep-alive), unless the client said Connection: close.
  CONNECT         "CONNECT host:port HTTP/1.1": "200 Connection established",
                  then bytes both ways until either side closes.
  --auth U:P      every request must carry "Proxy-Authorization: Basic
                  base64(U:P)", else 407 with Proxy-Authenticate (and the
                  connection closes).
  --refuse-connect  CONNECT gets "403 Forbidden".
  --tls CERT KEY  an https:// proxy: every client connection speaks TLS
                  (the certificate and key in PEM files) before HTTP.

Counts, written as JSON to --stats FILE after every event (rename, so a
reader never sees half a file): conns (connections accepted), forward
(absolute-form requests), connect (CONNECT requests), targets (each
request-target or CONNECT authority, in order), auth (Proxy-Authorization
values seen, in order), denied (407s sent), pconn (Proxy-Connection values
seen, in order).
"""

import argparse
import ctypes
import base64
import json
import os
import signal
import socket
import ssl
import sys
import threading

PR_SET_PDEATHSIG = 1
MAX_HEAD = 1 << 16

LOCK = threading.Lock()
STATS = {"conns": 0, "forward": 0, "connect": 0, "targets": [],
         "auth": [], "denied": 0, "pconn": []}
ARGS = None


def die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        pass


def save_stats():
    if not ARGS.stats:
        return
    tmp = ARGS.stats + ".tmp"
    with open(tmp, "w") as f:
        json.dump(STATS, f)
    os.rename(tmp, ARGS.stats)


def count(**kw):
    with LOCK:
        for k, v in kw.items():
            if isinstance(STATS[k], list):
                STATS[k].append(v)
            else:
                STATS[k] += v
        save_stats()


def read_head(sock, buf):
    """Read until the end of a head; returns (head bytes, rest) or None."""
    while b"\r\n\r\n" not in buf:
        if len(buf) > MAX_HEAD:
            return None
        try:
            data = sock.recv(65536)
        except OSError:
            return None
        if not data:
            return None
        buf += data
    i = buf.index(b"\r\n\r\n") + 4
    return buf[:i], buf[i:]


def parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0].split(" ")
    fields = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        fields.append((name.strip(), value.strip()))
    return first, fields


def field(fields, name):
    for n, v in fields:
        if n.lower() == name.lower():
            return v
    return None


def host_port(authority, default):
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = authority.partition(":")
    return host, int(port) if port else default


def allowed(host):
    return host in ("127.0.0.1", "::1", "localhost")


def send_all(sock, data):
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def check_auth(conn, fields):
    got = field(fields, "Proxy-Authorization")
    if got is not None:
        count(auth=got)
    if not ARGS.auth:
        return True
    want = "Basic " + base64.b64encode(ARGS.auth.encode()).decode()
    if got == want:
        return True
    count(denied=1)
    send_all(conn, b"HTTP/1.1 407 Proxy Authentication Required\r\n"
             b"Proxy-Authenticate: Basic realm=\"test\"\r\n"
             b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    return False


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def do_connect(conn, target, rest):
    host, port = host_port(target, 443)
    if ARGS.refuse_connect or not allowed(host):
        send_all(conn, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        return
    try:
        up = socket.create_connection((host, port), timeout=10)
        up.settimeout(None)
    except OSError:
        send_all(conn, b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        return
    send_all(conn, b"HTTP/1.1 200 Connection established\r\n\r\n")
    if rest:
        send_all(up, rest)
    t = threading.Thread(target=pump, args=(up, conn), daemon=True)
    t.start()
    pump(conn, up)
    t.join()
    up.close()


def relay_response(up, conn):
    """Copy one response from up to conn; False if conn must close."""
    got = read_head(up, b"")
    if got is None:
        return False
    head, rest = got
    _, fields = parse_head(head)
    # The upstream leg closes after each answer; the client's leg does
    # not: its Connection fields are the proxy's own (hop-by-hop).
    lines = [ln for ln in head.split(b"\r\n")[:-2]
             if not ln.lower().startswith(b"connection:")]
    if not send_all(conn, b"\r\n".join(lines) + b"\r\n\r\n"):
        return False
    cl = field(fields, "Content-Length")
    if cl is None:
        send_all(conn, rest)
        pump(up, conn)
        return False
    left = int(cl) - len(rest)
    send_all(conn, rest)
    while left > 0:
        data = up.recv(min(65536, left))
        if not data:
            return False
        left -= len(data)
        if not send_all(conn, data):
            return False
    return True


def do_forward(conn, first, fields, body):
    url = first[1]
    auth, _, path = url[len("http://"):].partition("/")
    host, port = host_port(auth, 80)
    if not allowed(host):
        send_all(conn, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        return False
    out = ["%s /%s HTTP/1.1" % (first[0], path)]
    for n, v in fields:
        if n.lower().startswith("proxy-") or n.lower() == "connection":
            continue
        out.append("%s: %s" % (n, v))
    out.append("Connection: close")
    req = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body
    try:
        up = socket.create_connection((host, port), timeout=10)
    except OSError:
        send_all(conn, b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        return False
    try:
        up.sendall(req)
        return relay_response(up, conn)
    except OSError:
        return False
    finally:
        up.close()


def serve(conn):
    count(conns=1)
    buf = b""
    try:
        while True:
            got = read_head(conn, buf)
            if got is None:
                return
            head, buf = got
            first, fields = parse_head(head)
            if len(first) != 3:
                return
            if first[0] == "CONNECT":
                count(connect=1, targets=first[1])
            else:
                count(forward=1, targets=first[1])
            pconn = field(fields, "Proxy-Connection")
            if pconn is not None:
                count(pconn=pconn)
            if not check_auth(conn, fields):
                return
            if first[0] == "CONNECT":
                do_connect(conn, first[1], buf)
                return
            if not first[1].startswith("http://"):
                send_all(conn, b"HTTP/1.1 400 Bad Request\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                return
            n = int(field(fields, "Content-Length") or 0)
            while len(buf) < n:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            body, buf = buf[:n], buf[n:]
            keep = do_forward(conn, first, fields, body)
            if not keep or (field(fields, "Connection") or "").lower() == "close":
                return
    finally:
        conn.close()


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--auth")
    ap.add_argument("--refuse-connect", action="store_true")
    ap.add_argument("--stats")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ARGS = ap.parse_args()
    tls = None
    if ARGS.tls:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(ARGS.tls[0], ARGS.tls[1])
    die_with_parent()
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    save_stats()
    print("READY %d" % ls.getsockname()[1], flush=True)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=serve_tls if tls else serve,
                         args=(conn, tls) if tls else (conn,),
                         daemon=True).start()


def serve_tls(conn, tls):
    try:
        conn = tls.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError):
        conn.close()
        return
    serve(conn)


if __name__ == "__main__":
    sys.exit(main())
