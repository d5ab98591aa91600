#!/usr/bin/env python3
"""An HTTP/1.1 peer that fails the first N requests, then answers them.

Usage: flaky.py [--fail N] [--how status|reset|close] [--status CODE]
                [--retry-after VALUE] [--blackhole6]

Listens on 127.0.0.1, port 0 (the kernel picks), prints one line
"READY <port>" on stdout and serves until killed; dies with its parent.
Python 3 standard library only (the request reader is misbehave.py's).

Requests are counted across connections, in arrival order (1, 2, ...).
Request number K <= N (default 2) fails, --how:
  status  a keep-alive response with status --status (default 503), a
          body "fail K\\n" and, with --retry-after, that Retry-After value;
  reset   the request is read, then the connection is reset (RST) without
          a response byte;
  close   the request is read, then the connection is closed (FIN)
          without a response byte (an empty reply).
Every later request gets a keep-alive 200 whose body is "ok K\\n".
Every response carries X-Request: K.

--blackhole6 also makes [::1] on the same port a black hole: a listener
with a full accept queue that never accepts, so a connect to it neither
succeeds nor fails (Linux drops the SYNs). For Happy Eyeballs tests, with
an address list "[::1],127.0.0.1". Exits 77 when ::1 cannot be bound.
"""
import argparse
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import misbehave  # noqa: E402  (Peer, response, die_with_parent)

LOCK = threading.Lock()
COUNT = [0]


def next_number():
    with LOCK:
        COUNT[0] += 1
        return COUNT[0]


def serve(sock, opts):
    peer = misbehave.Peer(sock, 0)
    try:
        while True:
            req = peer.read_request()
            if req is None:
                return
            k = next_number()
            close = misbehave.wants_close(req)
            hdrs = [("X-Request", str(k)), misbehave.conn_header(close)]
            if k <= opts.fail and opts.how == "reset":
                peer.reset()
                return
            if k <= opts.fail and opts.how == "close":
                return
            if k <= opts.fail:
                body = b"fail %d\n" % k
                if opts.retry_after is not None:
                    hdrs.append(("Retry-After", opts.retry_after))
                status = "%d Failing" % opts.status
            else:
                body = b"ok %d\n" % k
                status = "200 OK"
            hdrs.append(("Content-Length", str(len(body))))
            peer.send(misbehave.response(status, hdrs, body,
                                         head_only=req[0] == "HEAD"))
            if close:
                return
    except OSError:
        pass
    finally:
        peer.close()


def blackhole6(port):
    """[::1]:port with a full accept queue; the sockets must stay open."""
    ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    ls.bind(("::1", port))
    ls.listen(0)
    fillers = []
    for _ in range(2):
        f = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        f.setblocking(False)
        try:
            f.connect(("::1", port))
        except BlockingIOError:
            pass
        fillers.append(f)
    time.sleep(0.1)     # let the fillers' handshakes land in the queue
    return [ls] + fillers


def main():
    parent = os.getppid()
    misbehave.die_with_parent()
    if os.getppid() != parent:
        return 1
    ap = argparse.ArgumentParser(description="fails N times, then answers")
    ap.add_argument("--fail", type=int, default=2)
    ap.add_argument("--how", choices=["status", "reset", "close"],
                    default="status")
    ap.add_argument("--status", type=int, default=503)
    ap.add_argument("--retry-after")
    ap.add_argument("--blackhole6", action="store_true")
    opts = ap.parse_args()

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(128)
    port = lsock.getsockname()[1]
    keep = []
    if opts.blackhole6:
        try:
            keep = blackhole6(port)
        except OSError as e:
            print("flaky.py: no black hole on [::1]:%d: %s" % (port, e),
                  file=sys.stderr)
            return 77
    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()
    while True:
        try:
            sock, _ = lsock.accept()
        except OSError:
            time.sleep(0.01)
            continue
        threading.Thread(target=serve, daemon=True,
                         args=(sock, opts)).start()
    del keep


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
