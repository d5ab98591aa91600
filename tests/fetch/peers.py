"""peers.py - the local servers fetch_cli.py runs fetch and curl against.

Recorder: an HTTP/1.1 server that runs in a thread of the test process, on
127.0.0.1 port 0, and records every request exactly as it arrived on the
wire (method, request-target, header fields in order, body), so a test can
compare what fetch sent with what curl sent.  Its answers are fixed bytes
(no Date, no Server), so a response head is the same on every run.  Some
paths misbehave on purpose (empty reply, reset, short body, hang).

A request with "Expect: 100-continue" gets "100 Continue" before its body
is read.  An absolute-form request-target ("GET http://host/p") is
recorded as it came and answered as the unknown path it is: with -x
pointing at a Recorder, the test sees what a forward proxy receives.

Routes (the query string is parsed; unknown paths answer 200 "hello\\n"):
  /status/CODE            CODE with body "status CODE\\n"
  /redirect?code=C&to=L   status C (default 302), Location: L
  /loop                   302 to itself, forever
  /fail?key=K&n=N&code=C  the first N requests for K answer C (default
                          503), later ones 200 "ok after <attempts>\\n"
  /empty                  reads the request, closes without a byte (52)
  /partial                Content-Length: 1000, 500 bytes, then FIN (18)
  /reset                  Content-Length: 100000, 1000 bytes, then RST (56)
  /hang                   never answers; holds the socket until the client
                          closes it (at most 30 s)
  /bytes?n=N              N pattern bytes (byte i = i % 251)
  /slow?n=N&pieces=P&delay=D
                          N pattern bytes in P pieces, D seconds apart
  /barrier?key=K&n=N&t=T  answers 200 "together\\n" once N requests for K
                          are waiting at the same time (on any Recorder),
                          504 "alone\\n" if that has not happened after T
                          s (default 5): forces -Z to prove parallel
                          transfers without timing them
  /norange                200 with the whole body even when a Range was
                          asked for (a server that cannot resume: 33)
  /gzip                   "hello gzip\\n" gzip-encoded, Content-Encoding
  /gzip-n?n=N /deflate?n=N /raw-deflate?n=N /gzip-bad?n=N
                          N pattern bytes gzipped, zlib-deflated, raw-
                          deflated, or gzipped with an invalid first block
                          (type 3), with their Content-Encoding
  /chunked                the body "chunk one\\nchunk two\\n" sent chunked
  /dl/NAME                "file NAME\\n" (for -O, which names the file)
  /ctype                  Content-Type: application/json; charset=utf-8

Python 3 standard library only.
"""

import gzip
import http
import os
import socket
import struct
import threading
import time
import urllib.parse
import zlib

_PERIOD = bytes(range(251))


def _deflate(data, wbits):
    c = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return c.compress(data) + c.flush()


def _bad_block(data):
    b = bytearray(gzip.compress(data, mtime=0))
    b[10] |= 0x06       # the first block's type: 3, which does not exist
    return bytes(b)


# --compressed peers: path -> body maker returning (coding, encoded bytes)
ENCODED = {
    "/gzip-n": lambda d: ("gzip", gzip.compress(d, mtime=0)),
    "/deflate": lambda d: ("deflate", _deflate(d, 15)),
    "/raw-deflate": lambda d: ("deflate", _deflate(d, -15)),
    "/gzip-bad": lambda d: ("gzip", _bad_block(d)),
}

# /barrier's waiters, shared by every Recorder (so transfers to different
# origins can meet) and forgotten by reset_barriers().
_barrier = threading.Condition()
_waiting = {}
_met = set()


def reset_barriers():
    with _barrier:
        _waiting.clear()
        _met.clear()


def pattern(n, offset=0):
    """Pattern bytes: byte i is i % 251."""
    start = offset % 251
    reps = (start + n) // 251 + 1
    return (_PERIOD * reps)[start:start + n]


class Request:
    """One request as received: raw head fields in order, body bytes."""

    def __init__(self, method, target, version, headers, body):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers      # [(name, value)] in arrival order
        self.body = body

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    def header(self, name):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def names(self):
        return [n for n, _ in self.headers]

    def __repr__(self):
        return "%s %s %r body=%r" % (self.method, self.target, self.headers,
                                     self.body[:80])


class _Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self.fill():
                return None
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 1 << 20 or not self.fill():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_request(self):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 1 << 20 or not self.fill():
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return None
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        req = Request(parts[0], parts[1], parts[2], headers, b"")
        if (req.header("expect") or "").lower() == "100-continue":
            # As nginx does: the client may go on (curl would otherwise
            # wait a second for it); the 1xx comes before the final head.
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        te = (req.header("transfer-encoding") or "").lower()
        cl = req.header("content-length")
        if "chunked" in te:
            body = b""
            while True:
                line = self.read_line()
                if line is None:
                    return None
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while self.read_line() not in (b"", None):
                        pass
                    break
                piece = self.read_exact(size + 2)
                if piece is None:
                    return None
                body += piece[:-2]
            req.body = body
        elif cl is not None and cl.isdigit():
            body = self.read_exact(int(cl))
            if body is None:
                return None
            req.body = body
        return req


def response(code, body=b"", headers=(), head_only=False, length=True):
    reason = http.HTTPStatus(code).phrase if code in http.HTTPStatus._value2member_map_ else "Status"
    lines = ["HTTP/1.1 %d %s" % (code, reason)]
    lines += ["%s: %s" % kv for kv in headers]
    if length:
        lines.append("Content-Length: %d" % len(body))
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


class Recorder:
    """The recording HTTP server; start() binds port 0 and serves in
    daemon threads until stop()."""

    def __init__(self, name="A"):
        self.name = name
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.log = []
        self.counters = {}
        self.accepted = 0       # connections since the last reset()
        self.socks = set()
        self.lsock = None
        self.stopping = False

    def start(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        self.stopping = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    def reset(self):
        """Forget requests and counters (before each run of a case).
        Connections left from the previous run are closed."""
        with self.lock:
            self.log = []
            self.counters = {}
            self.accepted = 0
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def requests(self):
        with self.lock:
            return list(self.log)

    def _accept(self):
        while not self.stopping:
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                if self.stopping:
                    return
                time.sleep(0.01)
                continue
            with self.lock:
                self.socks.add(sock)
                self.accepted += 1
            threading.Thread(target=self._serve, args=(sock,),
                             daemon=True).start()

    def _serve(self, sock):
        conn = _Conn(sock)
        try:
            while True:
                req = conn.read_request()
                if req is None:
                    return
                with self.lock:
                    self.log.append(req)
                if not self._answer(conn, req):
                    return
                if (req.header("connection") or "").lower() == "close":
                    return
        except (OSError, ValueError):
            pass
        finally:
            with self.lock:
                self.socks.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    # Each route returns True to keep the connection, False to close it.
    def _answer(self, conn, req):
        path = req.path
        q = dict(urllib.parse.parse_qsl(req.target.partition("?")[2]))
        head = req.method == "HEAD"
        plain = ("Content-Type", "text/plain")
        send = conn.sock.sendall
        if path.startswith("/status/"):
            code = int(path[len("/status/"):])
            send(response(code, b"status %d\n" % code, [plain], head))
        elif path == "/redirect":
            code = int(q.get("code", "302"))
            send(response(code, b"moved\n",
                          [plain, ("Location", q.get("to", "/"))], head))
        elif path == "/loop":
            send(response(302, b"again\n", [plain, ("Location", "/loop")],
                          head))
        elif path == "/fail":
            key = q.get("key", "")
            with self.lock:
                n = self.counters.get(key, 0) + 1
                self.counters[key] = n
            if n <= int(q.get("n", "1")):
                code = int(q.get("code", "503"))
                send(response(code, b"fail %d\n" % n, [plain], head))
            else:
                send(response(200, b"ok after %d\n" % n, [plain], head))
        elif path == "/empty":
            return False
        elif path == "/partial":
            send(response(200, b"", [plain, ("Content-Length", "1000")],
                          length=False) + pattern(500))
            conn.sock.shutdown(socket.SHUT_WR)
            return False
        elif path == "/reset":
            send(response(200, b"", [plain, ("Content-Length", "100000")],
                          length=False) + pattern(1000))
            time.sleep(0.05)
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
            return False
        elif path == "/hang":
            conn.sock.settimeout(30)
            try:
                while conn.sock.recv(65536):
                    pass
            except OSError:
                pass
            return False
        elif path == "/bytes":
            send(response(200, pattern(int(q.get("n", "0"))),
                          [("Content-Type", "application/octet-stream")],
                          head))
        elif path == "/slow":
            n = int(q.get("n", "100000"))
            pieces = max(1, int(q.get("pieces", "10")))
            delay = float(q.get("delay", "0.1"))
            send(response(200, b"", [("Content-Type",
                                      "application/octet-stream"),
                                     ("Content-Length", str(n))],
                          length=False))
            if head:
                return True
            sent = 0
            for i in range(pieces):
                piece = n // pieces if i < pieces - 1 else n - sent
                send(pattern(piece, sent))
                sent += piece
                if i < pieces - 1:
                    time.sleep(delay)
        elif path == "/barrier":
            key, need = q.get("key", ""), int(q.get("n", "2"))
            with _barrier:
                _waiting[key] = _waiting.get(key, 0) + 1
                if _waiting[key] >= need:
                    _met.add(key)
                    _barrier.notify_all()
                met = _barrier.wait_for(lambda: key in _met,
                                        timeout=float(q.get("t", "5")))
                if not met:     # gone: no longer waiting with the others
                    _waiting[key] -= 1
            if met:
                send(response(200, b"together\n", [plain], head))
            else:
                send(response(504, b"alone\n", [plain], head))
        elif path == "/norange":
            send(response(200, pattern(300), [plain], head))
        elif path == "/gzip":
            send(response(200, gzip.compress(b"hello gzip\n", mtime=0),
                          [plain, ("Content-Encoding", "gzip")], head))
        elif path in ENCODED:
            coding, body = ENCODED[path](pattern(int(q.get("n", "1000"))))
            send(response(200, body, [plain, ("Content-Encoding", coding)],
                          head))
        elif path == "/chunked":
            head_b = response(200, b"", [plain,
                                         ("Transfer-Encoding", "chunked")],
                              length=False)
            body = b"a\r\nchunk one\n\r\na\r\nchunk two\n\r\n0\r\n\r\n"
            send(head_b if head else head_b + body)
        elif path.startswith("/dl/"):
            name = path[len("/dl/"):].encode()
            send(response(200, b"file " + name + b"\n", [plain], head))
        elif path == "/ctype":
            send(response(200, b'{"a":1}\n',
                          [("Content-Type",
                            "application/json; charset=utf-8")], head))
        else:
            send(response(200, b"hello\n", [plain], head))
        return True


def refused_port():
    """A socket bound to a port and not listening: connecting to it is
    refused (RST), and nobody else can take the port while it lives."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s


def blackhole_port():
    """A listener with a full accept queue that never accepts: one filler
    connection fills a backlog of 0, and Linux then drops every later SYN,
    so a connect to it neither succeeds nor fails until its timeout."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    port = ls.getsockname()[1]
    fillers = []
    for _ in range(2):
        f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        f.setblocking(False)
        try:
            f.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(f)
    time.sleep(0.1)     # let the fillers' handshakes land in the queue
    return ls, fillers
