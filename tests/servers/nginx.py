#!/usr/bin/env python3
"""Run Debian's nginx as a throwaway test and benchmark peer.

Usage: nginx.py [--keepalive-timeout SECS] [--workers N] [--no-access-log]
                [--keep-dir] [--nginx PATH]
                [--tls CERT KEY [--tls-no-resume] [--tls-cipher NAME]
                 [--tls-client-order]] [--big BYTES] [--unix]

--tls CERT KEY makes the one listener speak HTTPS instead of HTTP (same
URLs; the readiness probe then uses TLS without verification): TLS 1.2
only, cipher ECDHE-ECDSA-AES128-GCM-SHA256 (so KEY must be an ECDSA key),
and session resumption by session ID (shared cache) and tickets, unless
--tls-no-resume turns both off (every handshake is then a full one).
--tls-cipher NAME sets another OpenSSL cipher name instead (e.g.
ECDHE-RSA-AES128-GCM-SHA256, with an RSA key). --tls-client-order makes
nginx pick the cipher suite and the ECDHE group in the client's order of
preference (ssl_prefer_server_ciphers off, nginx's own default) instead of
its own (X25519 first).
--big BYTES adds /big.bin, a sparse file of BYTES zero bytes (made with
truncate, so instant; not in manifest.txt).
--unix makes the same server listen on the Unix socket <dir>/nginx.sock
too (HTTPS there as well with --tls).

Every option also has an environment variable, read when the option is
absent: FERRY_NGINX_KEEPALIVE_TIMEOUT (default 60), FERRY_NGINX_WORKERS
(default 1; "auto" allowed), FERRY_NGINX_ACCESS_LOG=0, FERRY_NGINX_KEEP_DIR=1,
FERRY_NGINX (default: nginx on PATH, then /usr/sbin/nginx).

What it does:
  * makes a fresh temp dir (under $TMPDIR or /tmp) holding nginx.conf, the
    pid file, error.log, access.log, nginx's temp paths and the content in
    www/; nothing is written anywhere else;
  * binds a listening socket on 127.0.0.1 port 0 itself and hands it to
    nginx through nginx's inherited-socket protocol (env NGINX="fd;"), so
    the port is chosen race-free: nobody else can take it in between;
  * runs nginx in the foreground (daemon off, error log via -e), checks it
    really serves (GET of a secret token), then prints exactly one line
    "READY <port> <dir>" on stdout and nothing after that;
  * stays in the foreground until SIGTERM/SIGINT/SIGHUP, then stops nginx
    (SIGTERM, SIGKILL after 5 s) and removes the temp dir.  It dies with
    its parent (PR_SET_PDEATHSIG) and so does nginx with it.
  * exits 77 (the automake "skip" code) when nginx is not installed, 1 on
    any other start-up failure (the reason goes to stderr).

Content (all GET; HEAD works too):
  /small.txt           exactly 100 bytes of text (99 printable + "\\n")
  /1k.bin /64k.bin /1m.bin /16m.bin
                       1024, 65536, 1048576, 16777216 bytes; byte stream is
                       SHAKE-128 of the file name (e.g. b"1m.bin"), so it is
                       the same on every run.  manifest.txt in the dir has one
                       line per file: "<name> <size> <fnv1a64 hex> <sha256
                       hex>" (FNV-1a 64: offset basis 0xcbf29ce484222325,
                       prime 0x100000001b3, over every byte); SHA256SUMS is
                       the same in `sha256sum -c` format (run it in www/).
  /chunked             Transfer-Encoding: chunked (HTTP/1.1), 5 chunks:
                       "chunk 1\\n" .. "chunk 5\\n" (40 bytes in all)
  /lines               chunked, 1000 lines "line NNNN abcdefghij\\n"
                       (NNNN = 0001..1000, 21 bytes each, 21000 bytes),
                       each line its own chunk
  /echo-headers        chunked; body = the raw request head as received
  /redirect            301 -> /small.txt (relative Location)
  /redirect-abs        301 -> http://127.0.0.1:<port>/small.txt (https://
                       under --tls)
  /redirect-loop       302 -> /redirect-loop (forever)
  /redirect-302 -303 -307 -308   that status -> /small.txt
  /redirect-n/K        K = 1..10: a chain, K -> K-1, 1 -> /small.txt
  /status/CODE         CODE in 200 201 202 204 301 302 304 400 401 403 404
                       405 408 410 413 418 429 500 502 503 504; 2xx other
                       than 204 answer "status CODE\\n"; the rest are nginx's
                       own answer for that code (301/302 to /small.txt)
  /gz/<file>           any file above, gzipped on the fly (chunked, no
                       Content-Length) when the request accepts gzip
  anything else        404
  (the /chunked, /lines and /echo-headers locations need the echo module;
  without it they are absent and manifest.txt says "echo 0")

Keep-alive: keepalive_requests 1000000, keepalive_timeout as configured.

Counting server-side connections: access.log has one line per request,
    "<connection> <connection_requests> <status> <bytes_sent> \"<request>\""
$connection is nginx's serial connection number (unique across workers),
$connection_requests the request's number on that connection (1, 2, ...).
Distinct first fields = connections that carried a request; a line with a
second field > 1 = a reused connection.  Lines are written when a request
finishes, possibly a moment after the client read the response: poll.
"""

import argparse
import ctypes
import hashlib
import os
import resource
import secrets
import shutil
import signal
import ssl
import socket
import subprocess
import sys
import tempfile
import time

PR_SET_PDEATHSIG = 1
ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
FILES = (("1k.bin", 1024), ("64k.bin", 65536), ("1m.bin", 1 << 20),
         ("16m.bin", 16 << 20))
STATUSES = (200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 405, 408,
            410, 413, 418, 429, 500, 502, 503, 504)
LINES = 1000
READY_TIMEOUT = 10.0


def die_with_parent():
    """Ask the kernel to SIGTERM us when our parent goes away."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        pass


def fnv1a64(data):
    """FNV-1a 64 of data; the generated files come from FNV_KNOWN."""
    known = FNV_KNOWN.get(hashlib.sha256(data).hexdigest())
    if known is not None:
        return known
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


# FNV-1a 64 of the generated files keyed by their SHA-256: FNV is strictly
# sequential and takes ~3 s over 16 MiB in CPython, the content is fixed by
# its definition, so the values are precomputed.  The fixture self-test
# recomputes FNV in C over the served files and compares with manifest.txt.
FNV_KNOWN = {
    "da1c3037dfd1e38aabb1ef1cdc99de068b8b8a351629cd5dbb9ce573e6ac4d62":
        0x275498bdccd7f38c,  # 1k.bin
    "daf904488518229f7e87ef51bda6e82255db09df3f1591e767876c2946f66e65":
        0xf9d349e5ff26144a,  # 64k.bin
    "660c0a1221e2d156406ba36be4d080adf2e468bd1a844258714241135bfbadb0":
        0x92d57e88bc61d1c3,  # 1m.bin
    "07e9e3dcc95920a3a119b3a973fdafb8d2aeb4c25eb4ebb624cfc205804cffe6":
        0xda54f6529c0ad291,  # 16m.bin
}


def write_content(d, www, have_echo):
    """Write the static files, www/SHA256SUMS and d/manifest.txt."""
    small = (b"ferry small.txt: 100 bytes of fixed text for tests. "
             b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL")
    small = small[:99] + b"\n"
    assert len(small) == 100
    entries = [("small.txt", small)]
    for name, size in FILES:
        entries.append((name, hashlib.shake_128(name.encode()).digest(size)))
    manifest, sums = [], []
    for name, data in entries:
        with open(os.path.join(www, name), "wb") as f:
            f.write(data)
        sha = hashlib.sha256(data).hexdigest()
        manifest.append("%s %d %016x %s\n" % (name, len(data), fnv1a64(data),
                                               sha))
        sums.append("%s  %s\n" % (sha, name))
    manifest.append("echo %d\n" % (1 if have_echo else 0))
    with open(os.path.join(www, "SHA256SUMS"), "w") as f:
        f.write("".join(sums))
    with open(os.path.join(d, "manifest.txt"), "w") as f:
        f.write("".join(manifest))


def nofile_limit():
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(64, min(4096, soft - 32))


def render_conf(d, port, args, token, have_echo):
    is_root = os.geteuid() == 0
    q = lambda p: os.path.join(d, p)
    out = []
    w = out.append
    if have_echo:
        w("load_module %s;" % ECHO_MODULE)
    if is_root:
        # Workers would otherwise run as nobody and could not read our 0700
        # temp dir; the master stays root anyway.
        w("user root;")
    w("daemon off;")
    w("master_process on;")
    w("worker_processes %s;" % args.workers)
    w("pid %s;" % q("nginx.pid"))
    w("error_log %s notice;" % q("error.log"))
    w("events { worker_connections %d; }" % nofile_limit())
    w("http {")
    w("  default_type application/octet-stream;")
    w("  types { text/plain txt; application/octet-stream bin; }")
    for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        w("  %s_temp_path %s;" % (t, q("tmp/" + t)))
    w("  log_format ferry '$connection $connection_requests $status "
      "$bytes_sent \"$request\"';")
    if args.access_log:
        w("  access_log %s ferry;" % q("access.log"))
    else:
        w("  access_log off;")
    w("  sendfile on;")
    w("  tcp_nopush on;")
    w("  tcp_nodelay on;")
    w("  keepalive_requests 1000000;")
    w("  keepalive_timeout %ss;" % args.keepalive_timeout)
    w("  server_tokens off;")
    w("  server {")
    if args.tls:
        w("    listen 127.0.0.1:%d ssl backlog=4096;" % port)
        w("    ssl_certificate %s;" % os.path.abspath(args.tls[0]))
        w("    ssl_certificate_key %s;" % os.path.abspath(args.tls[1]))
        w("    ssl_protocols TLSv1.2;")
        w("    ssl_ciphers %s;" % args.tls_cipher)
        w("    ssl_prefer_server_ciphers %s;"
          % ("off" if args.tls_client_order else "on"))
        if args.tls_resume:
            w("    ssl_session_cache shared:ferry:8m;")
            w("    ssl_session_timeout 1h;")
            w("    ssl_session_tickets on;")
        else:
            w("    ssl_session_cache off;")
            w("    ssl_session_tickets off;")
    else:
        w("    listen 127.0.0.1:%d backlog=4096;" % port)
    if args.unix:
        w("    listen unix:%s%s;" % (os.path.join(d, "nginx.sock"),
                                      " ssl" if args.tls else ""))
    w("    server_name localhost;")
    w("    root %s;" % q("www"))
    w("    absolute_redirect off;")
    w("    location / { try_files $uri =404; }")
    # /gz/<file>: the same files, gzipped on the fly (chunked) for a
    # client that sends Accept-Encoding: gzip.
    w("    location /gz/ { alias %s/; gzip on; gzip_types *; "
      "gzip_min_length 1; gzip_comp_level 6; }" % q("www"))
    w("    location = /__ferry_ready { return 200 '%s'; }" % token)
    w("    location = /redirect { return 301 /small.txt; }")
    w("    location = /redirect-abs { return 301 "
      "%s://127.0.0.1:%d/small.txt; }" % ("https" if args.tls else "http",
                                           port))
    w("    location = /redirect-loop { return 302 /redirect-loop; }")
    for code in (302, 303, 307, 308):
        w("    location = /redirect-%d { return %d /small.txt; }"
          % (code, code))
    for k in range(1, 11):
        target = "/small.txt" if k == 1 else "/redirect-n/%d" % (k - 1)
        w("    location = /redirect-n/%d { return 302 %s; }" % (k, target))
    for code in STATUSES:
        if 200 <= code < 300 and code != 204:
            body = " 'status %d\\n'" % code
        elif code in (301, 302):
            body = " /small.txt"
        else:
            body = ""
        w("    location = /status/%d { return %d%s; }" % (code, code, body))
    if have_echo:
        w("    location = /chunked {")
        for i in range(1, 6):
            w("      echo 'chunk %d';" % i)
        w("    }")
        w("    location = /lines {")
        for i in range(1, LINES + 1):
            w("      echo 'line %04d abcdefghij';" % i)
        w("    }")
        w("    location = /echo-headers {")
        w("      echo -n $echo_client_request_headers;")
        w("    }")
    w("  }")
    w("}")
    return "\n".join(out) + "\n"


def find_nginx(explicit):
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which("nginx")
    if found:
        return found
    for cand in ("/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if os.access(cand, os.X_OK):
            return cand
    return None


def probe(port, token, tls=False):
    """True when the server on port is our nginx (it knows the token)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            if tls:
                # Only "is it up and ours": the token proves that.
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = ctx.wrap_socket(s)
            s.sendall(b"GET /__ferry_ready HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n")
            data = b""
            while True:
                part = s.recv(4096)
                if not part:
                    break
                data += part
        return data.startswith(b"HTTP/1.1 200") and token.encode() in data
    except OSError:
        return False


def env_default(name, fallback):
    v = os.environ.get(name)
    return v if v not in (None, "") else fallback


def parse_args():
    ap = argparse.ArgumentParser(description="nginx test peer")
    ap.add_argument("--keepalive-timeout",
                    default=env_default("FERRY_NGINX_KEEPALIVE_TIMEOUT", "60"))
    ap.add_argument("--workers",
                    default=env_default("FERRY_NGINX_WORKERS", "1"))
    ap.add_argument("--no-access-log", dest="access_log",
                    action="store_false",
                    default=env_default("FERRY_NGINX_ACCESS_LOG", "1") != "0")
    ap.add_argument("--keep-dir", action="store_true",
                    default=env_default("FERRY_NGINX_KEEP_DIR", "0") == "1")
    ap.add_argument("--nginx", default=os.environ.get("FERRY_NGINX"))
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--tls-no-resume", dest="tls_resume",
                    action="store_false", default=True)
    ap.add_argument("--tls-cipher", default="ECDHE-ECDSA-AES128-GCM-SHA256",
                    metavar="NAME")
    ap.add_argument("--tls-client-order", action="store_true")
    ap.add_argument("--big", type=int, default=0, metavar="BYTES")
    ap.add_argument("--unix", action="store_true")
    args = ap.parse_args()
    if args.tls:
        for f in args.tls:
            if not os.access(f, os.R_OK):
                ap.error("--tls: cannot read %s" % f)
    if not all(c.isalnum() or c in "-_:+!" for c in args.tls_cipher):
        ap.error("--tls-cipher: not a cipher name: %s" % args.tls_cipher)
    if args.big < 0:
        ap.error("--big wants a byte count")
    try:
        float(args.keepalive_timeout)
    except ValueError:
        ap.error("--keepalive-timeout wants seconds")
    if args.workers != "auto" and not args.workers.isdigit():
        ap.error("--workers wants a number or auto")
    return args


class Stop(Exception):
    pass


def on_signal(signum, frame):
    # Only the first signal interrupts; a second one must not cut the
    # shutdown of nginx or the removal of the temp dir short.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise Stop()


def stop_nginx(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main():
    parent = os.getppid()
    die_with_parent()
    args = parse_args()
    nginx = find_nginx(args.nginx)
    if nginx is None:
        print("nginx.py: nginx not installed (apt install nginx-light)",
              file=sys.stderr)
        return 77
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    if os.getppid() != parent:
        return 1    # the parent died before prctl took effect

    d = None
    try:
        d = tempfile.mkdtemp(prefix="ferry-nginx-")
        return run(args, nginx, d)
    except Stop:
        return 0
    finally:
        if d and not args.keep_dir:
            shutil.rmtree(d, ignore_errors=True)


def run(args, nginx, d):
    proc = None
    try:
        os.mkdir(os.path.join(d, "tmp"))
        www = os.path.join(d, "www")
        os.mkdir(www)
        have_echo = os.path.exists(ECHO_MODULE)
        write_content(d, www, have_echo)
        if args.big:
            # Sparse: no disk and no time spent, whatever the size.
            with open(os.path.join(www, "big.bin"), "wb") as f:
                f.truncate(args.big)

        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4096)
        port = lsock.getsockname()[1]
        token = secrets.token_hex(8)
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(render_conf(d, port, args, token, have_echo))
        # Nothing in the test shares this dir; 0755 lets non-root workers
        # (if any) and humans look in while debugging.
        os.chmod(d, 0o755)

        env = dict(os.environ)
        env["NGINX"] = "%d;" % lsock.fileno()
        proc = subprocess.Popen(
            [nginx, "-p", d, "-c", os.path.join(d, "nginx.conf"),
             "-e", os.path.join(d, "error.log")],
            stdin=subprocess.DEVNULL, stdout=sys.stderr, env=env,
            pass_fds=[lsock.fileno()], preexec_fn=die_with_parent)
        lsock.close()

        deadline = time.monotonic() + READY_TIMEOUT
        while not probe(port, token, bool(args.tls)):
            if proc.poll() is not None:
                sys.stderr.write("nginx.py: nginx exited with %d; error.log:\n"
                                 % proc.returncode)
                sys.stderr.write(read_tail(os.path.join(d, "error.log")))
                return 1
            if time.monotonic() > deadline:
                sys.stderr.write("nginx.py: nginx not ready in %.0f s\n"
                                 % READY_TIMEOUT)
                return 1
            time.sleep(0.01)
        # The probe request is in access.log; start the log empty so that
        # tests count only their own requests.
        if args.access_log:
            wait_and_truncate(os.path.join(d, "access.log"))
        sys.stdout.write("READY %d %s\n" % (port, d))
        sys.stdout.flush()
        rc = proc.wait()
        sys.stderr.write("nginx.py: nginx exited on its own with %d\n" % rc)
        return 1
    except Stop:
        return 0
    finally:
        stop_nginx(proc)


def wait_and_truncate(path):
    # nginx writes the log line right after sending the response; give it
    # a moment so the truncation does not race with that write.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            if os.path.getsize(path) > 0:
                break
        except OSError:
            pass
        time.sleep(0.005)
    # nginx opened the log with O_APPEND, so after truncation its next
    # line lands at offset 0.
    os.truncate(path, 0)


def read_tail(path, n=4000):
    try:
        with open(path, "rb") as f:
            data = f.read()
        return data[-n:].decode(errors="replace")
    except OSError:
        return "(no error.log)\n"


if __name__ == "__main__":
    sys.exit(main())
