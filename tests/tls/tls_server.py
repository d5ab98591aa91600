#!/usr/bin/env python3
"""tls_server.py - TLS test peers on 127.0.0.1 for tests/tls.

    tls_server.py s_server [--cwd DIR] [--v6] [--renegotiate] ARG...
                                    openssl s_server -accept 127.0.0.1:PORT
                                    ([::1]:PORT with --v6; exit 77 when
                                    there is no IPv6 loopback) ARG...
                                    (e.g. -cert, -key, -www), in DIR.
                                    --renegotiate (without -www): when a
                                    request arrives, ask the client to
                                    renegotiate (s_server's "r" command);
                                    if it does, answer "HTTP/1.1 200" with
                                    the body "renegotiated" and close; if
                                    it refuses (no_renegotiation alert),
                                    s_server ends the connection with a
                                    fatal handshake_failure alert.
    tls_server.py plain             answers any bytes with an HTTP/1.1 400
                                    and closes (plain HTTP on a TLS port)
    tls_server.py garbage           sends 64 bytes of junk and closes
    tls_server.py stall             accepts and says nothing
    tls_server.py hello             reads the ClientHello, prints "HELLO"
                                    and the extension types it carries in
                                    decimal, in order ("HELLO 0 65281 1"),
                                    on stdout, and closes
    tls_server.py https CERT KEY    HTTP/1.1 keep-alive server over TLS
                                    (Python's ssl), routes:
        GET  /n/SIZE   SIZE bytes, byte i = i % 251, Content-Length
        POST /echo     the request body (Content-Length or chunked)
        GET  /trunc    a close-delimited body, then TCP close with no
                       close_notify
        GET  /closes   "clean C unclean U": how many connections the
                       client ended so far with close_notify (C) and
                       without (U)
      every response carries X-Conn: the number of the TLS connection

Prints "READY <port>" once the peer accepts, then runs until SIGTERM.
Everything s_server prints goes to stderr (the test log). Exits 77 when
openssl is missing.
"""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading


def pdeathsig():
    # Die with our parent (the test), like tests/common/fixture.c asks.
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port(v6=False):
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
    s.bind(("::1" if v6 else "127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_s_server(args):
    if args[:1] == ["--cwd"]:
        os.chdir(args[1])  # -WWW serves files relative to the cwd
        args = args[2:]
    v6 = "--v6" in args
    if v6:
        args.remove("--v6")
    reneg = "--renegotiate" in args
    if reneg:
        args.remove("--renegotiate")
        args = args + ["-msg"]
    if not shutil.which("openssl"):
        sys.exit(77)
    if v6:
        try:
            free_port(True)
        except OSError:
            sys.exit(77)
    for attempt in range(5):
        port = free_port(v6)
        host = "[::1]" if v6 else "127.0.0.1"
        p = subprocess.Popen(
            ["openssl", "s_server", "-accept", "%s:%d" % (host, port),
             "-naccept", "100000"] + args,
            stdin=subprocess.PIPE if reneg else subprocess.DEVNULL,
            stdout=subprocess.PIPE, preexec_fn=pdeathsig)
        ready = False
        for line in p.stdout:
            sys.stderr.write("s_server: " + line.decode(errors="replace"))
            if line.startswith(b"ACCEPT"):
                ready = True
                break
        if ready:
            break
        p.wait()
    else:
        sys.exit(1)

    def stop(*_):
        p.terminate()
        try:
            p.wait(3)
        except subprocess.TimeoutExpired:
            p.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print("READY %d" % port, flush=True)
    state = "wait-request"
    for line in p.stdout:
        sys.stderr.write("s_server: " + line.decode(errors="replace"))
        if not reneg:
            continue
        if state == "wait-request" and line.startswith(b"GET "):
            p.stdin.write(b"r\n")
            p.stdin.flush()
            state = "asked"
        elif state == "asked" and b"<<<" in line and b"ClientHello" in line:
            state = "renegotiating"
        elif state == "asked" and b"no_renegotiation" in line:
            state = "wait-request"      # s_server fails the connection
        elif (state == "renegotiating" and b"<<<" in line
              and b"Finished" in line):
            p.stdin.write(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n"
                          b"Connection: close\r\n\r\nrenegotiated")
            p.stdin.flush()
            state = "wait-request"
    p.wait()


def recv_exact(c, n):
    data = b""
    while len(data) < n:
        more = c.recv(n - len(data))
        if not more:
            raise OSError("closed in the ClientHello")
        data += more
    return data


def hello_extensions(c):
    """The extension types of the ClientHello c sends (one record)."""
    head = recv_exact(c, 5)
    body = recv_exact(c, int.from_bytes(head[3:5], "big"))
    if head[0] != 22 or body[0] != 1:
        raise OSError("not a ClientHello")
    i = 4 + 2 + 32                                  # type, length, version, random
    i += 1 + body[i]                                # session id
    i += 2 + int.from_bytes(body[i:i + 2], "big")   # cipher suites
    i += 1 + body[i]                                # compression methods
    end = i + 2 + int.from_bytes(body[i:i + 2], "big")
    i += 2
    types = []
    while i + 4 <= end:
        types.append(int.from_bytes(body[i:i + 2], "big"))
        i += 4 + int.from_bytes(body[i + 2:i + 4], "big")
    return types


def serve(mode):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    held = []

    def handle(c):
        try:
            if mode == "plain":
                c.recv(4096)
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                          b"Connection: close\r\n\r\n")
                c.close()
            elif mode == "garbage":
                c.sendall(bytes(range(200, 255)) + b"\x00" * 9)
                c.close()
            elif mode == "hello":
                print("HELLO " + " ".join(map(str, hello_extensions(c))),
                      flush=True)
                c.close()
            else:
                held.append(c)  # stall: keep it open, say nothing
        except OSError:
            pass

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("READY %d" % ls.getsockname()[1], flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def run_https(cert, key):
    import http.server
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    count = [0]
    closes = {"clean": 0, "unclean": 0}
    lock = threading.Lock()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            with lock:
                count[0] += 1
                self.conn_no = count[0]
            super().setup()

        def log_message(self, *a):
            pass

        def handle(self):
            # Ragged EOFs raise (see get_request): a TCP close without
            # close_notify ends here; a clean one reads as an empty line.
            self.raw_requestline = None
            try:
                super().handle()
            except ssl.SSLEOFError:
                with lock:
                    closes["unclean"] += 1
                return
            except OSError:
                return
            if self.raw_requestline == b"":
                with lock:
                    closes["clean"] += 1

        def reply(self, body, close=False):
            self.send_response(200)
            self.send_header("X-Conn", str(self.conn_no))
            if close:
                self.send_header("Connection", "close")
            else:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.startswith("/n/"):
                n = int(self.path[3:])
                self.reply(bytes(i % 251 for i in range(n)))
            elif self.path == "/closes":
                with lock:
                    body = "clean %d unclean %d" % (closes["clean"],
                                                    closes["unclean"])
                self.reply(body.encode())
            elif self.path == "/trunc":
                self.reply(b"cut short", close=True)
                self.wfile.flush()
                # Drop TCP under TLS: no close_notify.
                raw = socket.socket(fileno=os.dup(self.connection.fileno()))
                raw.shutdown(socket.SHUT_RDWR)
                raw.close()
                self.close_connection = True
            else:
                self.send_error(404)

        def do_POST(self):
            if self.headers.get("Transfer-Encoding", "") == "chunked":
                body = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    body += self.rfile.read(size)
                    self.rfile.readline()
            else:
                body = self.rfile.read(int(self.headers["Content-Length"]))
            self.reply(body)

    class S(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

        def get_request(self):
            c, a = self.socket.accept()
            return ctx.wrap_socket(c, server_side=True,
                                   do_handshake_on_connect=False,
                                   suppress_ragged_eofs=False), a

        def handle_error(self, request, client_address):
            pass

    srv = S(("127.0.0.1", 0), H)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("READY %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


def main():
    if len(sys.argv) < 2:
        sys.exit(2)
    if sys.argv[1] == "s_server":
        run_s_server(sys.argv[2:])
    elif sys.argv[1] == "https" and len(sys.argv) == 4:
        run_https(sys.argv[2], sys.argv[3])
    elif sys.argv[1] in ("plain", "garbage", "stall", "hello"):
        serve(sys.argv[1])
    else:
        sys.exit(2)


if __name__ == "__main__":
    main()
