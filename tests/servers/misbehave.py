#!/usr/bin/env python3
"""An HTTP/1.1 peer that misbehaves on purpose, one way per --mode.

Usage: misbehave.py --mode MODE [--delay SECS] [--size BYTES] [--chunk BYTES]

Listens on 127.0.0.1, port 0 (the kernel picks a free one), prints exactly
one line "READY <port>" on stdout, then serves until killed (SIGTERM).  One
thread per connection, so many connections at once are fine.  It dies with
its parent (PR_SET_PDEATHSIG).  Python 3 standard library only.  An unknown
mode exits 2 with a message.

Every mode first reads a whole request head (and a Content-Length or chunked
request body, if any).  "Pattern bytes" below means byte i of the body is
i % 251 (so a client can check any slice without a reference file).
"keep-alive" means the server answers the next request on the same
connection, and closes when the client does or asks to (Connection: close).

Modes:
  ok                valid keep-alive responses: 200, Content-Length: 3, "ok\\n"
                    (no body for HEAD).  Baseline.
  count             like ok, but the body is "conn=<C> req=<R>\\n" and the
                    headers X-Conn: <C> and X-Req: <R> say the same: C is
                    the server-side connection number (1, 2, ... in accept
                    order), R the request's number on that connection.  R > 1
                    proves reuse; distinct C values count connections.
  reset-before-head reads the request, then resets the connection (RST via
                    SO_LINGER 0) without sending a byte.
  reset-in-head     sends the first 30 bytes of a response head, waits 50 ms,
                    then RST.
  reset-in-body     sends a head with Content-Length: 100000 and 1000 pattern
                    bytes, waits 50 ms, then RST.
  truncated-chunked sends a chunked head, a chunk header for 0x400 bytes and
                    only 100 of them, waits 50 ms, then closes cleanly (FIN).
  bad-chunk-size    chunked head, then the chunk size line "zz\\r\\n".
  cl-and-te         both Content-Length: 5 and Transfer-Encoding: chunked
                    with a valid chunked body "hello" (a smuggling vector).
  double-cl         Content-Length: 5 and Content-Length: 7, body "hello".
  huge-headers      a valid 200 whose head carries --size bytes (default
                    102400) of X-Filler-N headers, 1000 bytes each, then
                    Content-Length: 3 "ok\\n".
  trickle-headers   sends the status line, then "X-Trickle: " and one more
                    'a' every --delay seconds (default 1.0), forever: the
                    head never ends, so a read/idle timeout must fire.
  no-response       reads the request and never answers; holds the
                    connection open until the client closes it.
  close-after-each  a valid response with Connection: close ("ok\\n"), then
                    closes the connection.
  keepalive-then-close
                    a valid response that says Connection: keep-alive and
                    Keep-Alive: timeout=60, then closes the socket --delay
                    seconds later (default 0: right away): a pool must notice
                    the dead idle connection (or retry on it).
  close-delimited   a 200 with Connection: close and neither Content-Length
                    nor Transfer-Encoding: the body is --size pattern bytes
                    (default 65536) and ends when the server closes.
  slow-body         a keep-alive 200 with Content-Length: --size (default
                    1048576) pattern bytes, sent --chunk bytes (default
                    16384) at a time with --delay seconds (default 0.01)
                    between pieces.
  redirect-endless-body
                    GET /ok is answered as in ok (keep-alive); any other
                    path gets a 302 to /ok whose chunked body never ends
                    (1000-byte chunks until the client closes).
  redirect-big-body GET /ok as in ok; any other path gets a 302 to /ok
                    with Content-Length: --size (default 100000), 20 body
                    bytes, then nothing more (the connection held open);
                    with --size 20 or less the whole body, keep-alive.
  interim-flood     answers with 100 Continue heads, each padded with an
                    X-Filler header to --size bytes (default 1000), for ever
                    (until the client closes); never a final head.
  http10-chunked    keep-alive HTTP/1.0 200s with Transfer-Encoding: chunked
                    and Connection: keep-alive (body "ok\n", X-Conn and
                    X-Req as in count): RFC 9112 6.1 says the client must
                    close after such a response.

Modes for the fault matrix (tests/faults/README.md):
  reset-on-accept   accepts and resets (RST) at once, reading nothing.
  reset-on-first-bytes
                    waits for the client's first bytes (a TLS ClientHello
                    or a request), then resets: a reset in the TLS
                    handshake.
  reset-in-request-body
                    reads the request head only, then resets while the
                    client is still sending its body.
  reset-when-idle   answers the first request as ok (keep-alive), then
                    resets the idle connection --delay seconds later
                    (default 0.1).
  close-on-second-request
                    answers the first request on a connection as ok
                    (keep-alive), reads the second and closes (FIN)
                    without a byte: the close a pooled connection meets
                    as it is reused.
  partial-head      sends "HTTP/1.1 200 OK\r\nContent-Le" and closes (FIN).
  truncated-length  Content-Length: 1000, 100 pattern bytes, then FIN.
  short-length      Content-Length: --size (default 16777216), half of it
                    in pattern bytes, 50 ms, then FIN.
  long-length       Content-Length: --size (default 16777216), then --size
                    + 1000 pattern bytes (1000 more than announced), 50 ms,
                    then FIN.
  reset-in-close-delimited
                    a close-delimited 200 (Connection: close, no length),
                    1000 pattern bytes, 50 ms, then RST: over plain HTTP
                    only a reset tells such a body was cut short.
  endless-headers   a status line, then 1000-byte header fields for ever.
  endless-chunked   a chunked 200 whose 1000-byte chunks never end.
  bad-status        the status line "HTTP/1.1 2x0 OK".
  http09            an HTTP/0.9 reply: a bare body ("<html>...") and FIN.

For request bodies (uploads):
  echo-request      keep-alive 200s whose body is one line about the
                    request body received, "framing=F size=N sha256=H\n"
                    (F: length, chunked or none; H: SHA-256 of the
                    de-chunked bytes, hex), followed by the request head
                    exactly as received (request line and fields, CRLFs,
                    without the final empty line).
"""

import argparse
import ctypes
import hashlib
import os
import signal
import socket
import struct
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
MAX_HEAD = 1 << 20
PAUSE = 0.05


def die_with_parent():
    """Ask the kernel to SIGTERM us when our parent goes away."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        pass


_PERIOD = bytes(range(251))


def pattern(offset, n):
    """Pattern bytes offset .. offset+n-1: byte i is i % 251."""
    start = offset % 251
    reps = (start + n) // 251 + 1
    return (_PERIOD * reps)[start:start + n]


class Peer:
    """One client connection: buffered reads of requests, raw writes."""

    def __init__(self, sock, conn_no):
        self.sock = sock
        self.conn_no = conn_no
        self.buf = b""
        self.closed = False
        # The last request's body, for echo-request.
        self.body_framing = "none"
        self.body_size = 0
        self.body_sha = hashlib.sha256()
        self.head = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _read_line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD or not self._fill():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                return None
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_request(self):
        """Return (method, path, version, headers) or None at EOF/garbage.
        Header names are lower-cased; the body is read and dropped."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD or not self._fill():
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head
        self.body_framing = "none"
        self.body_size = 0
        self.body_sha = hashlib.sha256()
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return None
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.body_framing = "chunked"
            if not self._drop_chunked():
                return None
        elif headers.get("content-length", "").isdigit():
            self.body_framing = "length"
            data = self._read_exact(int(headers["content-length"]))
            if data is None:
                return None
            self._body_data(data)
        return parts[0], parts[1], parts[2], headers

    def _drop_chunked(self):
        while True:
            line = self._read_line()
            if line is None:
                return False
            try:
                size = int(line.split(b";")[0], 16)
            except ValueError:
                return False
            if size == 0:
                # trailers end with an empty line
                while True:
                    t = self._read_line()
                    if t is None:
                        return False
                    if t == b"":
                        return True
            data = self._read_exact(size + 2)
            if data is None:
                return False
            self._body_data(data[:size])

    def _body_data(self, data):
        self.body_size += len(data)
        self.body_sha.update(data)

    def send(self, data):
        self.sock.sendall(data)

    def reset(self):
        """Close with RST: SO_LINGER on with a zero timeout."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
        self.close()

    def close(self):
        if not self.closed:
            self.closed = True
            self.sock.close()

    def hold(self):
        """Keep the connection open until the client closes it."""
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass


def wants_close(req):
    method, path, version, headers = req
    conn = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return "keep-alive" not in conn
    return "close" in conn


def response(status, headers, body=b"", head_only=False):
    lines = ["HTTP/1.1 %s" % status, "Server: misbehave"]
    lines += ["%s: %s" % kv for kv in headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


def keep_alive_loop(peer, answer):
    """Serve requests until the client closes or asks to; answer(peer, req,
    n) returns the bytes to send for request number n (1-based)."""
    n = 0
    while True:
        req = peer.read_request()
        if req is None:
            return
        n += 1
        close = wants_close(req)
        peer.send(answer(peer, req, n, close))
        if close:
            return


def conn_header(close):
    return ("Connection", "close" if close else "keep-alive")


def answer_ok(peer, req, n, close):
    return response("200 OK", [("Content-Type", "text/plain"),
                               ("Content-Length", "3"), conn_header(close)],
                    b"ok\n", head_only=req[0] == "HEAD")


def mode_ok(peer, opts):
    keep_alive_loop(peer, answer_ok)


def mode_count(peer, opts):
    def answer(peer, req, n, close):
        body = b"conn=%d req=%d\n" % (peer.conn_no, n)
        return response("200 OK", [("Content-Type", "text/plain"),
                                   ("Content-Length", str(len(body))),
                                   ("X-Conn", str(peer.conn_no)),
                                   ("X-Req", str(n)), conn_header(close)],
                        body, head_only=req[0] == "HEAD")
    keep_alive_loop(peer, answer)


def mode_echo_request(peer, opts):
    def answer(peer, req, n, close):
        body = b"framing=%s size=%d sha256=%s\n" % (
            peer.body_framing.encode(), peer.body_size,
            peer.body_sha.hexdigest().encode()) + peer.head
        return response("200 OK", [("Content-Type", "text/plain"),
                                   ("Content-Length", str(len(body))),
                                   conn_header(close)],
                        body, head_only=req[0] == "HEAD")
    keep_alive_loop(peer, answer)


def mode_reset_before_head(peer, opts):
    if peer.read_request() is not None:
        peer.reset()


def mode_reset_in_head(peer, opts):
    if peer.read_request() is None:
        return
    peer.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"[:30])
    time.sleep(PAUSE)
    peer.reset()


def mode_reset_in_body(peer, opts):
    if peer.read_request() is None:
        return
    peer.send(response("200 OK", [("Content-Length", "100000")],
                       pattern(0, 1000)))
    time.sleep(PAUSE)
    peer.reset()


def mode_truncated_chunked(peer, opts):
    if peer.read_request() is None:
        return
    peer.send(response("200 OK", [("Transfer-Encoding", "chunked")],
                       b"400\r\n" + pattern(0, 100)))
    time.sleep(PAUSE)
    peer.close()


def mode_bad_chunk_size(peer, opts):
    if peer.read_request() is None:
        return
    peer.send(response("200 OK", [("Transfer-Encoding", "chunked")],
                       b"zz\r\nhello\r\n0\r\n\r\n"))
    peer.hold()


def mode_cl_and_te(peer, opts):
    keep_alive_loop(peer, lambda p, req, n, close: response(
        "200 OK", [("Content-Length", "5"), ("Transfer-Encoding", "chunked"),
                   conn_header(close)],
        b"5\r\nhello\r\n0\r\n\r\n"))


def mode_double_cl(peer, opts):
    keep_alive_loop(peer, lambda p, req, n, close: response(
        "200 OK", [("Content-Length", "5"), ("Content-Length", "7"),
                   conn_header(close)], b"hello"))


def mode_huge_headers(peer, opts):
    size = opts.size if opts.size is not None else 102400
    fillers = []
    total = 0
    i = 0
    while total < size:
        value = "x" * max(0, min(1000, size - total) - len("X-Filler-%d: \r\n"
                                                           % i))
        fillers.append(("X-Filler-%d" % i, value))
        total += len("X-Filler-%d: %s\r\n" % (i, value))
        i += 1

    def answer(peer, req, n, close):
        return response("200 OK", fillers + [("Content-Length", "3"),
                                             conn_header(close)], b"ok\n")
    keep_alive_loop(peer, answer)


def mode_trickle_headers(peer, opts):
    delay = opts.delay if opts.delay is not None else 1.0
    if peer.read_request() is None:
        return
    peer.send(b"HTTP/1.1 200 OK\r\nX-Trickle: ")
    while True:
        time.sleep(delay)
        peer.send(b"a")


def mode_no_response(peer, opts):
    if peer.read_request() is None:
        return
    peer.hold()


def mode_close_after_each(peer, opts):
    req = peer.read_request()
    if req is None:
        return
    peer.send(answer_ok(peer, req, 1, True))
    peer.close()


def mode_keepalive_then_close(peer, opts):
    delay = opts.delay if opts.delay is not None else 0.0
    req = peer.read_request()
    if req is None:
        return
    peer.send(response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", "3"),
                                  ("Connection", "keep-alive"),
                                  ("Keep-Alive", "timeout=60")], b"ok\n",
                       head_only=req[0] == "HEAD"))
    if delay > 0:
        time.sleep(delay)
    peer.close()


def mode_close_delimited(peer, opts):
    size = opts.size if opts.size is not None else 65536
    if peer.read_request() is None:
        return
    peer.send(response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Connection", "close")]))
    sent = 0
    while sent < size:
        n = min(65536, size - sent)
        peer.send(pattern(sent, n))
        sent += n
    peer.close()


def mode_slow_body(peer, opts):
    size = opts.size if opts.size is not None else 1 << 20
    chunk = opts.chunk if opts.chunk is not None else 16384
    delay = opts.delay if opts.delay is not None else 0.01

    n = 0
    while True:
        req = peer.read_request()
        if req is None:
            return
        n += 1
        close = wants_close(req)
        peer.send(response("200 OK", [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(size)), conn_header(close)]))
        sent = 0
        while sent < size:
            piece = min(chunk, size - sent)
            peer.send(pattern(sent, piece))
            sent += piece
            if sent < size:
                time.sleep(delay)
        if close:
            return


def redirect_or_ok(peer, bad):
    """Serve /ok as mode ok does, anything else with bad(peer), which
    returns True when the connection may serve another request."""
    while True:
        req = peer.read_request()
        if req is None:
            return
        if req[1] != "/ok":
            if not bad(peer):
                return
            continue
        close = wants_close(req)
        peer.send(answer_ok(peer, req, 1, close))
        if close:
            return


def mode_redirect_endless_body(peer, opts):
    def bad(peer):
        peer.send(response("302 Found", [("Location", "/ok"),
                                         ("Transfer-Encoding", "chunked")]))
        chunk = b"3e8\r\n" + pattern(0, 1000) + b"\r\n"
        while True:
            peer.send(chunk)
    redirect_or_ok(peer, bad)


def mode_redirect_big_body(peer, opts):
    size = opts.size if opts.size is not None else 100000

    def bad(peer):
        peer.send(response("302 Found", [("Location", "/ok"),
                                         ("Content-Length", str(size))],
                           pattern(0, min(20, size))))
        if size <= 20:
            return True     # the whole body: serve the next request
        peer.hold()
    redirect_or_ok(peer, bad)


def mode_interim_flood(peer, opts):
    size = opts.size if opts.size is not None else 1000
    if peer.read_request() is None:
        return
    head = b"HTTP/1.1 100 Continue\r\nX-Filler: "
    pad = max(0, size - len(head) - 4)
    head += b"x" * pad + b"\r\n\r\n"
    while True:
        peer.send(head)


def mode_http10_chunked(peer, opts):
    def answer(peer, req, n, close):
        head = ("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n"
                "Connection: keep-alive\r\nX-Conn: %d\r\nX-Req: %d\r\n\r\n"
                % (peer.conn_no, n)).encode()
        return head + b"3\r\nok\n\r\n0\r\n\r\n"
    keep_alive_loop(peer, answer)


def mode_reset_on_accept(peer, opts):
    peer.reset()


def mode_reset_on_first_bytes(peer, opts):
    if peer.sock.recv(65536):
        peer.reset()


def mode_reset_in_request_body(peer, opts):
    while b"\r\n\r\n" not in peer.buf:
        if not peer._fill():
            return
    peer.reset()


def mode_reset_when_idle(peer, opts):
    delay = opts.delay if opts.delay is not None else 0.1
    req = peer.read_request()
    if req is None:
        return
    peer.send(answer_ok(peer, req, 1, False))
    time.sleep(delay)
    peer.reset()


def mode_close_on_second_request(peer, opts):
    req = peer.read_request()
    if req is None:
        return
    peer.send(answer_ok(peer, req, 1, False))
    peer.read_request()
    peer.close()


def mode_partial_head(peer, opts):
    if peer.read_request() is not None:
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Le")
        peer.close()


def mode_truncated_length(peer, opts):
    if peer.read_request() is not None:
        peer.send(response("200 OK", [("Content-Length", "1000")],
                           pattern(0, 100)))
        time.sleep(PAUSE)
        peer.close()


def send_length_body(peer, opts, sent_of):
    size = opts.size if opts.size is not None else 16 << 20
    if peer.read_request() is None:
        return
    peer.send(response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))]))
    total, sent = sent_of(size), 0
    while sent < total:
        n = min(65536, total - sent)
        peer.send(pattern(sent, n))
        sent += n
    time.sleep(PAUSE)
    peer.close()


def mode_short_length(peer, opts):
    send_length_body(peer, opts, lambda size: size // 2)


def mode_long_length(peer, opts):
    send_length_body(peer, opts, lambda size: size + 1000)


def mode_stall_body(peer, opts):
    """Content-Length --size (16 MiB), the first --chunk bytes (64 KiB) of
    the body, then nothing: the connection is held open until the client
    closes it (a body stalled mid-way)."""
    size = opts.size if opts.size is not None else 16 << 20
    chunk = opts.chunk if opts.chunk is not None else 65536
    if peer.read_request() is None:
        return
    peer.send(response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))],
                       pattern(0, min(chunk, size))))
    peer.hold()


def mode_reset_in_close_delimited(peer, opts):
    if peer.read_request() is None:
        return
    peer.send(response("200 OK", [("Connection", "close")], pattern(0, 1000)))
    time.sleep(PAUSE)
    peer.reset()


def mode_endless_headers(peer, opts):
    if peer.read_request() is None:
        return
    peer.send(b"HTTP/1.1 200 OK\r\n")
    i = 0
    while True:
        peer.send(b"X-Endless-%d: %s\r\n" % (i, b"e" * 980))
        i += 1


def mode_endless_chunked(peer, opts):
    if peer.read_request() is None:
        return
    peer.send(response("200 OK", [("Transfer-Encoding", "chunked")]))
    chunk = b"3e8\r\n" + pattern(0, 1000) + b"\r\n"
    while True:
        peer.send(chunk)


def mode_bad_status(peer, opts):
    if peer.read_request() is not None:
        peer.send(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n")
        peer.hold()


def mode_http09(peer, opts):
    if peer.read_request() is not None:
        peer.send(b"<html>hello from 1991</html>\n")
        peer.close()


MODES = {
    "ok": mode_ok,
    "count": mode_count,
    "reset-before-head": mode_reset_before_head,
    "reset-in-head": mode_reset_in_head,
    "reset-in-body": mode_reset_in_body,
    "truncated-chunked": mode_truncated_chunked,
    "bad-chunk-size": mode_bad_chunk_size,
    "cl-and-te": mode_cl_and_te,
    "double-cl": mode_double_cl,
    "huge-headers": mode_huge_headers,
    "trickle-headers": mode_trickle_headers,
    "no-response": mode_no_response,
    "close-after-each": mode_close_after_each,
    "keepalive-then-close": mode_keepalive_then_close,
    "close-delimited": mode_close_delimited,
    "slow-body": mode_slow_body,
    "redirect-endless-body": mode_redirect_endless_body,
    "redirect-big-body": mode_redirect_big_body,
    "interim-flood": mode_interim_flood,
    "http10-chunked": mode_http10_chunked,
    "reset-on-accept": mode_reset_on_accept,
    "reset-on-first-bytes": mode_reset_on_first_bytes,
    "reset-in-request-body": mode_reset_in_request_body,
    "reset-when-idle": mode_reset_when_idle,
    "close-on-second-request": mode_close_on_second_request,
    "partial-head": mode_partial_head,
    "truncated-length": mode_truncated_length,
    "short-length": mode_short_length,
    "long-length": mode_long_length,
    "stall-body": mode_stall_body,
    "reset-in-close-delimited": mode_reset_in_close_delimited,
    "endless-headers": mode_endless_headers,
    "endless-chunked": mode_endless_chunked,
    "bad-status": mode_bad_status,
    "http09": mode_http09,
    "echo-request": mode_echo_request,
}


def serve_one(handler, sock, conn_no, opts):
    peer = Peer(sock, conn_no)
    try:
        handler(peer, opts)
    except OSError:
        pass        # the client went away; that is its right
    finally:
        peer.close()


def main():
    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:
        return 1    # the parent died before prctl took effect
    ap = argparse.ArgumentParser(
        description="HTTP peer that misbehaves on purpose")
    ap.add_argument("--mode", required=True)
    ap.add_argument("--delay", type=float)
    ap.add_argument("--size", type=int)
    ap.add_argument("--chunk", type=int)
    opts = ap.parse_args()
    handler = MODES.get(opts.mode)
    if handler is None:
        print("misbehave.py: unknown mode %r; modes: %s"
              % (opts.mode, " ".join(sorted(MODES))), file=sys.stderr)
        return 2
    if opts.chunk is not None and opts.chunk <= 0:
        ap.error("--chunk must be positive")

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1024)
    sys.stdout.write("READY %d\n" % lsock.getsockname()[1])
    sys.stdout.flush()

    conn_no = 0
    while True:
        try:
            sock, _ = lsock.accept()
        except OSError:
            time.sleep(0.01)    # EMFILE under a connection storm: wait
            continue
        conn_no += 1
        threading.Thread(target=serve_one, daemon=True,
                         args=(handler, sock, conn_no, opts)).start()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
