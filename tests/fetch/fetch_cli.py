#!/usr/bin/env python3
"""fetch_cli.py - the fetch command-line tests, pinned to curl's behaviour.

Usage: fetch_cli.py [FETCH] [-k PATTERN] [-v]
  FETCH   the fetch binary (default: $FETCH)
  -k PAT  run only cases whose name contains PAT (several -k: any)
  -v      print the commands and outputs of failing cases in full

Every case is a row of CASES below: the arguments (with <<PLACEHOLDERS>>
for the local peers), and what must come out.  Each case runs fetch, and,
where Debian's curl is installed, curl with the same arguments against the
same peers, in two fresh working directories, and checks:
  * against curl: exit code, stdout bytes, files written (and none when
    curl writes none), the error code in stderr (`fetch: (N) ...` beside
    `curl: (N) ...`), and the requests on the wire as the recording server
    saw them (method, request-target, header names, order and values,
    body; only the default User-Agent value is normalised);
  * against the row's own expectations, so that a case still means
    something if curl changes: exit code, stdout, files, the words of the
    error message, the requests.
The peers: tests/fetch/peers.py's recording server (in this process),
nginx (tests/servers/nginx.py), openssl s_server with certificates made
now by tests/servers/certs.sh, a refused port, and a listener whose accept
queue is full (connect timeouts).  Every subprocess has a timeout, every
server listens on port 0 and is stopped by its PID.

A sanitizer report in fetch's stderr (ASan, LSan, UBSan) fails the case.
Prints one line per case, then "N passed, N failed"; exits 1 on any
failure, 77 (skip) when there is no fetch binary.
"""

import base64
import gzip
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peers  # noqa: E402

SRC = os.environ.get("FERRY_SOURCE_ROOT") or os.path.dirname(
    os.path.dirname(HERE))
RUN_TIMEOUT = 30        # seconds, any one fetch or curl run
SANITIZER = re.compile(rb"ERROR: (AddressSanitizer|LeakSanitizer)|"
                       rb"runtime error:|WARNING: ThreadSanitizer")
CODE_LINE = re.compile(rb"(curl|fetch): \((\d+)\) ?([^\r\n]*)")


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def short(b, n=300):
    r = repr(b)
    return r if len(r) <= n else r[:n] + "...(%d bytes)" % len(b)


# ---------------------------------------------------------------- peers

class Peers:
    """Local servers, each started the first time a case names it."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        self.A = peers.Recorder("A").start()
        self.B = peers.Recorder("B").start()
        self.recorders = [self.A, self.B]
        self._nginx = None
        self._certs = None
        self._tls = {}
        self._refused = None
        self._blackhole = None
        self._plain = None
        self._proxies = {}

    def proxy(self, kind):
        """127.0.0.1:port of a tests/servers/proxy.py: kind "plain",
        "auth" (wants user:s3cret) or "refuse" (403 to CONNECT)."""
        if kind not in self._proxies:
            stats = os.path.join(self.tmp, "proxy-%s.json" % kind)
            args = [sys.executable, os.path.join(SRC, "tests/servers/proxy.py"),
                    "--stats", stats]
            if kind == "auth":
                args += ["--auth", "user:s3cret"]
            if kind == "refuse":
                args.append("--refuse-connect")
            port, = self._start(args)
            self._proxies[kind] = ("127.0.0.1:%s" % port, stats)
        return self._proxies[kind][0]

    def proxy_counts(self):
        """(absolute-form requests, CONNECTs) every proxy saw so far."""
        import json
        fwd = con = 0
        for _, stats in self._proxies.values():
            with open(stats) as f:
                j = json.load(f)
            fwd += j["forward"]
            con += j["connect"]
        return fwd, con

    def stop(self):
        for r in self.recorders:
            r.stop()
        for p in reversed(self.procs):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()

    def reset(self):
        for r in self.recorders:
            r.reset()
        peers.reset_barriers()

    def _start(self, argv, cwd=None):
        """Start a peer that prints "READY <port> [dir]"; returns the
        words after READY. Fails after 20 s."""
        log = open(os.path.join(self.tmp, "peers.log"), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=log, cwd=cwd)
        log.close()
        self.procs.append(p)
        deadline = time.monotonic() + 20
        line = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([p.stdout], [], [], 0.2)
            if r:
                c = os.read(p.stdout.fileno(), 1)
                if not c:
                    break
                line += c
                if c == b"\n":
                    break
            elif p.poll() is not None:
                break
        words = line.split()
        if not words or words[0] != b"READY":
            raise Fail("peer %s did not start (exit %s)" % (argv, p.poll()))
        return [w.decode() for w in words[1:]]

    def nginx(self):
        if self._nginx is None:
            # Also on the Unix socket <dir>/nginx.sock (<<NSOCK>>).
            port, d = self._start([sys.executable, os.path.join(
                SRC, "tests/servers/nginx.py"), "--unix"])
            self._nginx = ("http://127.0.0.1:%s" % port, d)
        return self._nginx

    def nginx_file(self, name):
        with open(os.path.join(self.nginx()[1], "www", name), "rb") as f:
            return f.read()

    def certs(self):
        if self._certs is None:
            d = os.path.join(self.tmp, "certs")
            subprocess.run(["sh", os.path.join(SRC, "tests/servers/certs.sh"),
                            d], check=True, timeout=120,
                           stdout=subprocess.DEVNULL)
            # --capath: a directory of hashed links, as OpenSSL wants it;
            # fetch reads every PEM file in it.
            cap = os.path.join(self.tmp, "capath")
            os.mkdir(cap)
            shutil.copy(os.path.join(d, "ca.pem"), cap)
            subprocess.run(["openssl", "rehash", cap], timeout=30,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            www = os.path.join(self.tmp, "tlswww")
            os.mkdir(www)
            with open(os.path.join(www, "hello.txt"), "wb") as f:
                f.write(TLS_HELLO)
            with open(os.path.join(self.tmp, "empty.pem"), "wb"):
                pass
            make_client_certs(d)
            self._certs = d
        return self._certs

    def tls(self, name):
        """https://127.0.0.1:port of an s_server -WWW with certs/NAME.pem;
        "tls13" is the good leaf on a server that speaks TLS 1.3 only."""
        if name not in self._tls:
            d = self.certs()
            cert = "leaf" if name == "tls13" else name
            args = [sys.executable, os.path.join(SRC, "tests/tls/tls_server.py"),
                    "s_server", "--cwd", os.path.join(self.tmp, "tlswww"),
                    "-cert", os.path.join(d, cert + ".pem"),
                    "-key", os.path.join(d, cert + ".key"), "-WWW"]
            if cert == "rsa":   # the leaf, then its intermediate CA
                args += ["-cert_chain", os.path.join(d, "inter.pem")]
            if name == "mtls":  # wants a client certificate from our CA
                args[args.index("-cert") + 1] = os.path.join(d, "leaf.pem")
                args[args.index("-key") + 1] = os.path.join(d, "leaf.key")
                args += ["-tls1_2", "-Verify", "2", "-CAfile",
                         os.path.join(d, "ca.pem"), "-verify_return_error"]
            if name == "tls13":
                args.append("-tls1_3")
            port, = self._start(args)
            self._tls[name] = "https://127.0.0.1:%s" % port
        return self._tls[name]

    def refused(self):
        if self._refused is None:
            self._refused = peers.refused_port()
        return "http://127.0.0.1:%d" % self._refused.getsockname()[1]

    def blackhole(self):
        if self._blackhole is None:
            self._blackhole = peers.blackhole_port()
        return "http://127.0.0.1:%d" % self._blackhole[0].getsockname()[1]

    def subst(self, s):
        def one(m):
            key, arg = m.group(1), m.group(2)
            if key == "A":
                return self.A.base
            if key == "B":
                return self.B.base
            if key == "AL":     # the same server by another host name
                return "http://localhost:%d" % self.A.port
            if key == "APORT":
                return str(self.A.port)
            if key == "N":
                return self.nginx()[0]
            if key == "TLS":
                return self.tls(arg)
            if key == "CA":
                return os.path.join(self.certs(), "ca.pem")
            if key == "CERT":   # a file of the certificate dir
                return os.path.join(self.certs(), arg)
            if key == "CAPATH":
                self.certs()
                return os.path.join(self.tmp, "capath")
            if key == "EMPTYPEM":
                self.certs()
                return os.path.join(self.tmp, "empty.pem")
            if key == "PLAIN":
                if self._plain is None:
                    port, = self._start([sys.executable, os.path.join(
                        SRC, "tests/tls/tls_server.py"), "plain"])
                    self._plain = "https://127.0.0.1:%s" % port
                return self._plain
            if key == "REFUSED":
                return self.refused()
            if key == "BLACKHOLE":
                return self.blackhole()
            if key == "NSOCK":
                return os.path.join(self.nginx()[1], "nginx.sock")
            if key == "PROXY":
                return self.proxy(arg or "plain")
            raise KeyError(key)
        return re.sub(r"<<(\w+)(?::([\w.-]+))?>>", one, s)


def make_client_certs(d):
    """Client certificates (extendedKeyUsage clientAuth) in d:
    client.pem/.key (EC, by the test CA), client-both.pem (both in one
    file), client_rsa.pem/.key (RSA, by the intermediate, chain after)."""
    script = r"""set -e; cd "$1"
printf 'extendedKeyUsage=clientAuth
basicConstraints=CA:FALSE
' > client.ext
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out client.key
openssl req -new -key client.key -subj /CN=fetch-client -out client.csr
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -set_serial 71     -days 2 -sha256 -extfile client.ext -out client.pem
cat client.pem client.key > client-both.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out client_rsa.key
openssl req -new -key client_rsa.key -subj /CN=fetch-client-rsa -out client_rsa.csr
openssl x509 -req -in client_rsa.csr -CA inter.pem -CAkey inter.key     -set_serial 72 -days 2 -sha256 -extfile client.ext -out client_rsa1.pem
cat client_rsa1.pem inter.pem > client_rsa.pem
"""
    subprocess.run(["sh", "-c", script, "sh", d], check=True, timeout=120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


TLS_HELLO = b"hello tls\n"
HELLO = b"hello\n"


# ---------------------------------------------------------------- runs

class Result:
    def __init__(self, argv, code, out, err, files, wire):
        self.argv, self.code, self.out, self.err = argv, code, out, err
        self.files, self.wire = files, wire

    def codes(self):
        """The (N) of every "prog: (N) ..." line on stderr, in order."""
        return [int(m.group(2)) for m in CODE_LINE.finditer(self.err)]

    def messages(self):
        return [m.group(3).decode("utf-8", "replace")
                for m in CODE_LINE.finditer(self.err)]


def clean_env(home):
    env = {k: v for k, v in os.environ.items()
           if "proxy" not in k.lower() and not k.startswith("CURL")}
    env["HOME"] = home
    env["LC_ALL"] = "C"
    return env


def snapshot(d):
    files = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as f:
                files[os.path.relpath(p, d)] = f.read()
    return files


def run_one(ctx, argv, case, workdir):
    os.makedirs(workdir)
    for name, data in case.get("pre", {}).items():
        if callable(data):
            data = data(ctx)
        p = os.path.join(workdir, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    ctx.reset()
    before = ctx.proxy_counts()
    env = clean_env(ctx.tmp)
    env.update({k: ctx.subst(v) for k, v in case.get("env", {}).items()})
    stdout = subprocess.PIPE
    sink = None
    if case.get("stdout_to"):
        sink = open(case["stdout_to"], "wb")
        stdout = sink
    try:
        p = subprocess.run(argv, cwd=workdir, stdout=stdout,
                           stderr=subprocess.PIPE,
                           input=case.get("stdin", b""),
                           env=env,
                           timeout=case.get("timeout", RUN_TIMEOUT))
    except subprocess.TimeoutExpired:
        raise Fail("%s did not finish in %ss" % (argv[0], case.get(
            "timeout", RUN_TIMEOUT)))
    finally:
        if sink:
            sink.close()
    wire = [(r.name, q) for r in ctx.recorders for q in r.requests()]
    # Connections a peer saw may still be logging; the runs are over,
    # so what is in the log now is all there is for this run.
    r = Result(argv, p.returncode, p.stdout or b"", p.stderr,
               snapshot(workdir), wire)
    after = ctx.proxy_counts()
    r.proxied = (after[0] - before[0], after[1] - before[1])
    return r


def norm_wire(wire, keep_ua):
    out = []
    for name, q in wire:
        hs = []
        for n, v in q.headers:
            if n.lower() == "user-agent" and not keep_ua:
                v = "<UA>"
            hs.append((n, v))
        out.append((name, q.method, q.target, hs, q.body))
    return out


def sets_ua(args):
    for i, a in enumerate(args):
        if a in ("-A", "--user-agent"):
            return True
        if a in ("-H", "--header") and i + 1 < len(args) and \
                args[i + 1].lower().startswith("user-agent"):
            return True
    return False


def quiet_flags(args):
    """(silent, show_error): -s and -S, also inside combined flags."""
    s = S = False
    for a in args:
        if a in ("-s", "--silent"):
            s = True
        elif a in ("-S", "--show-error"):
            S = True
        elif re.fullmatch(r"-[a-zA-Z#]+", a) and not a.startswith("--"):
            s = s or "s" in a[1:]
            S = S or "S" in a[1:]
    return s, S


def compare_with_curl(case, f, c, keep_ua):
    cmp = case.get("cmp", {"code", "stdout", "files", "stderr", "wire"})
    errs = []
    if "code" in cmp and f.code != c.code:
        errs.append("exit code: fetch %d, curl %d" % (f.code, c.code))
    norm = case.get("norm", lambda b: b)
    if "stdout" in cmp and norm(f.out) != norm(c.out):
        errs.append("stdout differs: fetch %s, curl %s"
                    % (short(f.out), short(c.out)))
    if "files" in cmp:
        fnorm = {k: norm(v) for k, v in f.files.items()}
        cnorm = {k: norm(v) for k, v in c.files.items()}
        if set(fnorm) != set(cnorm):
            errs.append("files: fetch wrote %s, curl %s"
                        % (sorted(fnorm), sorted(cnorm)))
        else:
            for k in fnorm:
                if fnorm[k] != cnorm[k]:
                    errs.append("file %s: fetch %s, curl %s"
                                % (k, short(fnorm[k]), short(cnorm[k])))
    # The codes named on stderr: the same ones, and the same last one
    # (curl repeats a code per retry; fetch need not).
    if "stderr" in cmp and (set(f.codes()) != set(c.codes()) or
                            f.codes()[-1:] != c.codes()[-1:]):
        errs.append("stderr error codes: fetch %s, curl %s (fetch said %s)"
                    % (f.codes(), c.codes(), short(f.err)))
    if "wire" in cmp:
        fw, cw = norm_wire(f.wire, keep_ua), norm_wire(c.wire, keep_ua)
        if any(a in ("-Z", "--parallel") for a in case["args"]):
            fw, cw = sorted(fw, key=repr), sorted(cw, key=repr)
        if fw != cw:
            errs.append("wire: fetch sent %s\n      curl sent  %s"
                        % (fw, cw))
    return errs


def own_checks(ctx, case, f):
    errs = []
    args = case["args"]
    want = case["code"]
    if want is not None and f.code != want:
        errs.append("exit code %d, want %d" % (f.code, want))

    def val(v):
        return v(ctx) if callable(v) else v
    if "stdout" in case and f.out != val(case["stdout"]):
        errs.append("stdout %s, want %s" % (short(f.out),
                                            short(val(case["stdout"]))))
    if "proxied" in case and f.proxied != case["proxied"]:
        errs.append("the proxies saw (forward, CONNECT) %s, want %s"
                    % (f.proxied, case["proxied"]))
    if "stdout_re" in case and not re.search(case["stdout_re"], f.out):
        errs.append("stdout %s does not match %r" % (short(f.out),
                                                     case["stdout_re"]))
    pre = set(case.get("pre", {}))
    for name, want_data in case.get("files", {}).items():
        got = f.files.get(name)
        if want_data is None:
            if got is not None:
                errs.append("file %s was created" % name)
        elif got != val(want_data):
            errs.append("file %s is %s, want %s" % (
                name, short(got), short(val(want_data))))
    if case.get("no_new_files"):
        extra = set(f.files) - pre
        if extra:
            errs.append("files created: %s" % sorted(extra))
    silent, show = quiet_flags(args)
    verbose = any(a in ("-v", "--verbose") for a in args) or \
        any(re.fullmatch(r"-[a-zA-Z]*v[a-zA-Z]*", a) for a in args)
    if want not in (0, 2) and not case.get("no_err_line"):
        lines = [(n, m) for n, m in zip(f.codes(), f.messages())]
        if silent and not show:
            if f.err.strip():
                errs.append("-s without -S but stderr says %s"
                            % short(f.err))
        elif not lines or lines[-1][0] != want:
            errs.append("no 'fetch: (%d) ...' line on stderr: %s"
                        % (want, short(f.err)))
        elif "msg" in case and not re.search(case["msg"], lines[-1][1]):
            errs.append("message %r does not say %r" % (lines[-1][1],
                                                        case["msg"]))
    if "err_re" in case and not re.search(case["err_re"], f.err):
        errs.append("stderr %s does not match %r" % (short(f.err),
                                                     case["err_re"]))
    if not verbose:
        # On a pipe: nothing but errors (and curl-style warnings): no
        # progress, so nothing at all when it worked, and never a \r.
        noise = [l for l in f.err.splitlines() if l and not l.startswith(
            (b"Warning: ", b"Throwing away "))]
        if b"\r" in f.err or (f.code == 0 and noise and
                                not case.get("no_err_line")):
            errs.append("stderr on a pipe has more than errors: %s"
                        % short(f.err))
    if "wire" in case:
        try:
            case["wire"]([q for _, q in f.wire])
        except AssertionError as e:
            errs.append("request on the wire: %s; fetch sent %s"
                        % (e, f.wire))
    if "check" in case:
        try:
            case["check"](ctx, f)
        except AssertionError as e:
            errs.append("%s" % e)
    return errs


def run_case(ctx, fetch, curl, case, n):
    args = [ctx.subst(a) for a in case["args"]]
    base = os.path.join(ctx.tmp, "run%03d" % n)
    f = run_one(ctx, [fetch] + args, case, base + "-fetch")
    errs = []
    if SANITIZER.search(f.err):
        errs.append("sanitizer report:\n" + f.err.decode(errors="replace"))
    if f.code < 0:
        errs.append("fetch killed by signal %d" % -f.code)
    errs += own_checks(ctx, case, f)
    c = None
    if curl and case.get("curl", True):
        cargs = [ctx.subst(a) for a in case.get("curl_args", case["args"])]
        c = run_one(ctx, [curl, "-q"] + cargs, case, base + "-curl")
        errs += compare_with_curl(case, f, c, sets_ua(case["args"]))
        if "code" in case.get("cmp", {"code"}) and c.code != case["code"]:
            errs.append("curl itself exits %d here, the case expects %d"
                        % (c.code, case["code"]))
    return errs, f, c


# ---------------------------------------------------------------- pty

def run_pty(ctx, fetch, args, timeout=20):
    """Run fetch with stderr on a pseudo-terminal (stdout to a file);
    return (exit code, bytes written to the terminal)."""
    master, slave = os.openpty()
    out = os.path.join(ctx.tmp, "pty-out-%d" % time.monotonic_ns())
    with open(out, "wb") as sink:
        p = subprocess.Popen([fetch] + [ctx.subst(a) for a in args],
                             stdin=subprocess.DEVNULL, stdout=sink,
                             stderr=slave, env=clean_env(ctx.tmp),
                             cwd=ctx.tmp)
    os.close(slave)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:     # EIO: the last writer closed the tty
                break
            if not chunk:
                break
            data += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    try:
        code = p.wait(max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        raise Fail("fetch on a tty did not finish in %ss" % timeout)
    if SANITIZER.search(data):
        raise Fail("sanitizer report:\n" + data.decode(errors="replace"))
    return code, data


SLOW = "<<A>>/slow?n=300000&pieces=10&delay=0.12"


def pty_live_line(ctx, fetch):
    code, data = run_pty(ctx, fetch, ["-o", "out.bin", SLOW])
    check(code == 0, "exit %d, tty said %s" % (code, short(data)))
    check(data.strip() != b"", "no progress line on a terminal")
    check(b"%" in data, "size known but no percent: %s" % short(data))
    check(re.search(rb"\d", data), "no byte count: %s" % short(data))
    check(b"fetch: (" not in data, "an error on the tty: %s" % short(data))


def pty_silent(ctx, fetch):
    code, data = run_pty(ctx, fetch, ["-s", "-o", "out2.bin", SLOW])
    check(code == 0, "exit %d" % code)
    check(data == b"", "-s on a terminal still printed %s" % short(data))


def pty_bar(ctx, fetch):
    code, data = run_pty(ctx, fetch, ["-#", "-o", "out3.bin", SLOW])
    check(code == 0, "exit %d" % code)
    check(b"#" in data, "-# drew no bar: %s" % short(data))


def pty_error_shown(ctx, fetch):
    code, data = run_pty(ctx, fetch, ["<<REFUSED>>/"])
    check(code == 7, "exit %d" % code)
    check(b"fetch: (7)" in data, "no error on the tty: %s" % short(data))


def pipe_parallel_quiet(ctx, fetch):
    """-Z on a pipe: files right, nothing on stderr."""
    p = subprocess.run([fetch, "-Z", "-o", "z1", ctx.subst(SLOW),
                        "-o", "z2", ctx.subst("<<A>>/dl/z2")],
                       cwd=ctx.tmp, capture_output=True,
                       env=clean_env(ctx.tmp), timeout=RUN_TIMEOUT)
    check(p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr))
    check(p.stderr == b"", "stderr on a pipe: %s" % short(p.stderr))
    with open(os.path.join(ctx.tmp, "z1"), "rb") as f:
        check(f.read() == peers.pattern(300000), "z1 wrong")


# ---------------------------------------------------------------- --bench

def run_bench(ctx, fetch, args, timeout=30):
    """fetch --bench ARGS ($FETCH_BENCH --bench when set: a development
    build of the bench alone); returns (exit code, stdout, stderr)."""
    cmd = [os.environ.get("FETCH_BENCH") or fetch, "--bench"]
    ctx.reset()
    try:
        p = subprocess.run(cmd + [ctx.subst(a) for a in args],
                           capture_output=True, env=clean_env(ctx.tmp),
                           cwd=ctx.tmp, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Fail("--bench did not stop by itself in %ss" % timeout)
    if SANITIZER.search(p.stderr):
        raise Fail("sanitizer report:\n" + p.stderr.decode(errors="replace"))
    return p.returncode, p.stdout, p.stderr


def bench_json(out):
    import json
    try:
        return json.loads(out)
    except ValueError:
        raise Fail("--json-stats did not print JSON: %s" % short(out))


def bench_count(ctx, fetch):
    code, out, err = run_bench(ctx, fetch, ["-c", "4", "-n", "300", "-d",
                                            "20", "--json-stats", "<<A>>/"])
    check(code == 0, "exit %d: %s" % (code, short(err)))
    j = bench_json(out)
    check(j["requests"] == 300, "requests %r, want 300 (-n)" % j["requests"])
    check(j["bytes"] == 300 * len(HELLO), "bytes %r" % j["bytes"])
    check(sum(j["errors"].values()) == 0, "errors %r" % j["errors"])
    lat = j["latency_ms"]
    seq = [lat[k] for k in ("p50", "p90", "p99", "p99.9", "max")]
    check(0 < seq[0] and seq == sorted(seq),
          "latencies not 0 < p50 <= p90 <= p99 <= p99.9 <= max: %r" % lat)
    check(j["requests_per_sec"] > 0 and j["bytes_per_sec"] > 0,
          "rates %r" % j)
    check(len(ctx.A.requests()) == 300,
          "the server saw %d requests" % len(ctx.A.requests()))
    check(1 <= ctx.A.accepted <= 4, "%d connections for -c 4 (keep-alive)"
          % ctx.A.accepted)


def bench_text(ctx, fetch):
    code, out, err = run_bench(ctx, fetch, ["-c", "2", "-d", "0.3",
                                            "<<A>>/"])
    check(code == 0, "exit %d: %s" % (code, short(err)))
    for word in (b"requests", b"p50", b"p90", b"p99 ", b"p99.9", b"max",
                 b"errors"):
        check(word in out, "no %r in %s" % (word, short(out, 600)))


def bench_refused(ctx, fetch):
    code, out, err = run_bench(ctx, fetch, ["-c", "2", "-d", "0.3",
                                            "--json-stats", "<<REFUSED>>/"])
    j = bench_json(out)
    check(code == 7, "exit %d, want 7 (refused)" % code)
    check(j["errors"]["connect"] > 0 and j["requests"] == 0,
          "errors %r" % j["errors"])


def bench_status(ctx, fetch):
    code, out, err = run_bench(ctx, fetch, ["-c", "2", "-n", "10",
                                            "--json-stats",
                                            "<<A>>/status/500"])
    j = bench_json(out)
    check(code == 22, "exit %d, want 22 (HTTP error)" % code)
    check(j["errors"]["status"] == 10, "errors %r" % j["errors"])


def bench_bounded(ctx, fetch):
    """A server that never answers: the run still ends by itself, the
    requests counted as timeouts."""
    code, out, err = run_bench(ctx, fetch, ["-c", "2", "-d", "0.5",
                                            "--json-stats", "<<A>>/hang"],
                               timeout=15)
    j = bench_json(out)
    check(code == 28, "exit %d, want 28 (timeout)" % code)
    check(j["errors"]["timeout"] == 2 and j["requests"] == 0,
          "errors %r" % j["errors"])


def bench_usage(ctx, fetch):
    for args in (["-c", "0", "<<A>>/"], ["--no-such", "<<A>>/"],
                 ["-d", "soon", "<<A>>/"], ["-c", "2"]):
        code, out, err = run_bench(ctx, fetch, args)
        check(code == 2, "%s: exit %d, want 2" % (args, code))
        check(err.startswith(b"fetch: "), "%s: stderr %s" % (args,
                                                            short(err)))
    code, out, err = run_bench(ctx, fetch, ["-c", "1", "http://[::1/"])
    check(code == 3, "bad URL: exit %d, want 3" % code)


PTY_CASES = [
    ("bench-count-json", bench_count),
    ("bench-text", bench_text),
    ("bench-refused", bench_refused),
    ("bench-status", bench_status),
    ("bench-bounded", bench_bounded),
    ("bench-usage", bench_usage),
    ("progress-tty-live-line", pty_live_line),
    ("progress-tty-silent", pty_silent),
    ("progress-tty-bar", pty_bar),
    ("progress-tty-error-shown", pty_error_shown),
    ("progress-pipe-parallel-quiet", pipe_parallel_quiet),
]


# ---------------------------------------------------------------- cases

CASES = []


def case(name, args, code=0, **kw):
    kw.update(name=name, args=args, code=code)
    CASES.append(kw)


def headers_are(*names):
    """A wire check: one request whose header names are exactly these."""
    def w(reqs):
        assert len(reqs) == 1, "%d requests" % len(reqs)
        assert reqs[0].names() == list(names), reqs[0].names()
    return w


def one_req(method, target, body=b"", **hdrs):
    """A wire check: one request; method, target, body, some headers."""
    def w(reqs):
        assert len(reqs) == 1, "%d requests, want 1" % len(reqs)
        q = reqs[0]
        assert q.method == method, "method %s, want %s" % (q.method, method)
        assert q.target == target, "target %s, want %s" % (q.target, target)
        assert q.body == body, "body %r, want %r" % (q.body, body)
        for k, v in hdrs.items():
            name = k.replace("_", "-")
            assert q.header(name) == v, "%s: %r, want %r" % (
                name, q.header(name), v)
    return w


def methods(*want):
    """A wire check: the requests' (method, path, body) in order."""
    def w(reqs):
        got = [(q.method, q.path, q.body) for q in reqs]
        assert got == list(want), "%s, want %s" % (got, list(want))
    return w


def attempts(n):
    def w(reqs):
        assert len(reqs) == n, "%d attempts, want %d" % (len(reqs), n)
    return w


def resp(code, body, ctype="text/plain", extra=()):
    return peers.response(code, body, [("Content-Type", ctype)] + list(extra))


NGX_SMALL = lambda c: c.nginx_file("small.txt")  # noqa: E731
NGX_1M = lambda c: c.nginx_file("1m.bin")  # noqa: E731

# -- plain GETs, output to stdout and files
case("get-stdout", ["<<A>>/"], stdout=HELLO,
     wire=headers_are("Host", "User-Agent", "Accept"))
case("get-default-headers", ["<<A>>/x?y=1"],
     wire=one_req("GET", "/x?y=1", Accept="*/*"))
case("get-nginx-small", ["<<N>>/small.txt"], stdout=NGX_SMALL)
case("get-nginx-1m-file", ["-o", "one.bin", "<<N>>/1m.bin"], stdout=b"",
     files={"one.bin": NGX_1M})
case("get-chunked", ["<<A>>/chunked"], stdout=b"chunk one\nchunk two\n")
case("get-localhost", ["http://localhost:<<APORT>>/l"], stdout=HELLO,
     wire=attempts(1))
case("get-sub-localhost", ["http://sub.localhost:<<APORT>>/l"],
     stdout=HELLO, wire=attempts(1))
case("output-o", ["-o", "out.txt", "<<A>>/"], stdout=b"",
     files={"out.txt": HELLO})
case("output-o-dash", ["-o", "-", "<<A>>/"], stdout=HELLO,
     files={"-": None})
case("output-O", ["-O", "<<A>>/dl/name.txt"], files={
     "name.txt": b"file name.txt\n"})
case("output-pairing", ["-o", "one.txt", "<<A>>/dl/a", "<<A>>/dl/b", "-O",
                        "<<A>>/dl/c"],
     files={"one.txt": b"file a\n", "b": b"file b\n"}, stdout=b"file c\n")
case("output-pairing-after", ["<<A>>/dl/x", "<<A>>/dl/y", "-o", "first",
                              "-o", "second"],
     files={"first": b"file x\n", "second": b"file y\n"}, stdout=b"")
case("output-dir-create", ["--output-dir", "od/sub", "--create-dirs", "-O",
                           "<<A>>/dl/f.txt"],
     files={"od/sub/f.txt": b"file f.txt\n"})
case("output-dir-missing", ["--output-dir", "nodir", "-O",
                            "<<A>>/dl/f.txt"], code=23, no_new_files=True,
     msg=r"(?i)writ|open|nodir")
case("create-dirs-o", ["--create-dirs", "-o", "a/b/c.txt", "<<A>>/"],
     files={"a/b/c.txt": HELLO})
case("output-o-overwrites", ["-o", "old.txt", "<<A>>/"],
     pre={"old.txt": b"previous content that is longer\n"},
     files={"old.txt": HELLO})

# -- heads
case("include", ["-i", "<<A>>/"],
     stdout=resp(200, HELLO))
case("include-404", ["-i", "<<A>>/status/404"],
     stdout=resp(404, b"status 404\n"))
case("head", ["-I", "<<A>>/h"],
     stdout=peers.response(200, HELLO, [("Content-Type", "text/plain")],
                           head_only=True),
     wire=one_req("HEAD", "/h"))
case("head-long", ["--head", "<<A>>/status/404"], code=0,
     stdout=peers.response(404, b"status 404\n",
                           [("Content-Type", "text/plain")], head_only=True))
case("include-chunked", ["--include", "<<A>>/chunked"],
     stdout=peers.response(200, b"", [("Content-Type", "text/plain"),
                                      ("Transfer-Encoding", "chunked")],
                           length=False) + b"chunk one\nchunk two\n")

# -- methods and headers
case("method-put", ["-X", "PUT", "<<A>>/m"], wire=one_req("PUT", "/m"))
case("method-delete-data", ["-X", "DELETE", "-d", "a=1", "<<A>>/m"],
     wire=one_req("DELETE", "/m", b"a=1"))
case("method-request-long", ["--request", "PATCH", "<<A>>/m"],
     wire=one_req("PATCH", "/m"))
case("header-add", ["-H", "X-One: 1", "-H", "X-Two: two", "<<A>>/"],
     wire=headers_are("Host", "User-Agent", "Accept", "X-One", "X-Two"))
case("header-remove-accept", ["-H", "Accept:", "<<A>>/"],
     wire=headers_are("Host", "User-Agent"))
case("header-replace-accept", ["-H", "Accept: text/html", "<<A>>/"],
     wire=one_req("GET", "/", Accept="text/html"))
case("header-replace-ua", ["-H", "User-Agent: custom/1", "<<A>>/"],
     wire=one_req("GET", "/", User_Agent="custom/1"))
case("header-replace-host", ["-H", "Host: example.test", "<<A>>/"],
     wire=one_req("GET", "/", Host="example.test"))
case("header-empty-value", ["-H", "X-Empty;", "<<A>>/"],
     wire=one_req("GET", "/", X_Empty=""))
case("header-long-flag", ["--header", "X-Long: yes", "<<A>>/"],
     wire=one_req("GET", "/", X_Long="yes"))
case("user-agent", ["-A", "agent/1.0", "<<A>>/"],
     wire=one_req("GET", "/", User_Agent="agent/1.0"))
case("referer", ["-e", "http://ref.example/", "<<A>>/"],
     wire=one_req("GET", "/", Referer="http://ref.example/"))
case("cookie", ["-b", "a=1; b=2", "<<A>>/"],
     wire=one_req("GET", "/", Cookie="a=1; b=2"))
case("user-basic", ["-u", "user:pass", "<<A>>/"],
     wire=one_req("GET", "/", Authorization="Basic " +
                  base64.b64encode(b"user:pass").decode()))

# -- request bodies
FORM = "application/x-www-form-urlencoded"
case("data", ["-d", "a=1", "<<A>>/p"],
     wire=one_req("POST", "/p", b"a=1", Content_Type=FORM,
                  Content_Length="3"))
case("data-joined", ["-d", "a=1", "--data", "b=2", "<<A>>/p"],
     wire=one_req("POST", "/p", b"a=1&b=2"))
case("data-file-strips-newlines", ["-d", "@body.txt", "<<A>>/p"],
     pre={"body.txt": b"x=1\ny=2\r\n"},
     wire=one_req("POST", "/p", b"x=1y=2"))
case("data-file-and-literal", ["-d", "@body.txt", "-d", "z=3", "<<A>>/p"],
     pre={"body.txt": b"x=1\n"}, wire=one_req("POST", "/p", b"x=1&z=3"))
case("data-binary-file", ["--data-binary", "@body.bin", "<<A>>/p"],
     pre={"body.bin": b"x=1\ny=2\r\n\x00\xff"},
     wire=one_req("POST", "/p", b"x=1\ny=2\r\n\x00\xff",
                  Content_Type=FORM))
case("data-raw-at", ["--data-raw", "@not-a-file", "<<A>>/p"],
     wire=one_req("POST", "/p", b"@not-a-file"))
case("data-content-type-override", ["-d", "{}", "-H",
                                    "Content-Type: application/json",
                                    "<<A>>/p"],
     wire=one_req("POST", "/p", b"{}", Content_Type="application/json"))
case("json", ["--json", '{"a":1}', "<<A>>/j"],
     wire=one_req("POST", "/j", b'{"a":1}', Content_Type="application/json",
                  Accept="application/json"))
case("get-data", ["-G", "-d", "a=1", "-d", "b=2", "<<A>>/g"],
     wire=one_req("GET", "/g?a=1&b=2"))
case("get-data-query", ["-G", "-d", "a=1", "<<A>>/g?x=0"],
     wire=one_req("GET", "/g?x=0&a=1"))
case("data-missing-file", ["-d", "@missing.txt", "<<A>>/p"], code=26,
     msg=r"missing\.txt", no_new_files=True, wire=attempts(0),
     # Debian's curl 7.88 warns and sends an empty POST (exit 0); curl
     # >= 8.2 exits 26 like this (what the issue asks for).
     curl=False)
case("data-binary-missing-file", ["--data-binary", "@missing.bin",
                                  "<<A>>/p"], code=26, msg=r"missing\.bin",
     wire=attempts(0), curl=False)

# -- redirects
case("redirect-not-followed", ["<<A>>/redirect?code=302&to=/dl/x"],
     stdout=b"moved\n", wire=attempts(1))
case("redirect-follow", ["-L", "<<A>>/redirect?code=302&to=/dl/x"],
     stdout=b"file x\n", wire=methods(("GET", "/redirect", b""),
                                      ("GET", "/dl/x", b"")))
case("redirect-include-both-heads",
     ["-L", "-i", "<<A>>/redirect?code=301&to=/dl/y"],
     stdout=peers.response(301, b"", [("Content-Type", "text/plain"),
                                     ("Location", "/dl/y"),
                                     ("Content-Length", "6")],
                          length=False) + resp(200, b"file y\n"))
def credentials_stay(reqs):
    assert len(reqs) == 2, "%d requests" % len(reqs)
    assert reqs[0].header("authorization"), "no credentials to origin A"
    assert reqs[1].header("authorization") is None, "credentials sent to B"


case("redirect-other-origin-drops-credentials",
     ["-L", "-u", "u:p", "<<A>>/redirect?code=302&to=<<B>>/dl/o"],
     stdout=b"file o\n", wire=credentials_stay)


def cookie_follows(reqs):
    assert len(reqs) == 2, "%d requests" % len(reqs)
    assert reqs[0].header("cookie") == "c=1", "no cookie to origin A"
    assert reqs[1].header("cookie") == "c=1", "no cookie to origin B"


# curl (7.88) sends a -b string to every host a redirect leads to (it is
# not a jar: no domain to scope it by), unlike -u credentials. The issue
# text says "cookies not sent to another origin"; this pins curl.
case("redirect-other-origin-cookie",
     ["-L", "-b", "c=1", "<<A>>/redirect?code=302&to=<<B>>/dl/o"],
     stdout=b"file o\n", wire=cookie_follows)
case("redirect-max-redirs", ["-L", "--max-redirs", "2", "<<A>>/loop"],
     code=47, msg=r"(?i)redirect", wire=attempts(3))
case("redirect-max-redirs-zero", ["-L", "--max-redirs", "0",
                                  "<<A>>/redirect?to=/dl/x"],
     code=47, msg=r"(?i)redirect", wire=attempts(1))
case("redirect-loop-nginx", ["-L", "<<N>>/redirect-loop", "--max-redirs",
                             "3"], code=47, stdout=b"")
case("redirect-n-nginx", ["-L", "<<N>>/redirect-n/5"], stdout=NGX_SMALL)
for code, flag, kept in ((301, None, False), (301, "--post301", True),
                         (302, None, False), (302, "--post302", True),
                         (303, None, False), (303, "--post303", True),
                         (307, None, True), (308, None, True)):
    second = ("POST", "/dl/t", b"k=v") if kept else ("GET", "/dl/t", b"")
    case("redirect-post-%d%s" % (code, "-" + flag[2:] if flag else ""),
         ["-d", "k=v", "-L"] + ([flag] if flag else []) +
         ["<<A>>/redirect?code=%d&to=/dl/t" % code],
         stdout=b"file t\n",
         wire=methods(("POST", "/redirect", b"k=v"), second))
case("redirect-custom-method-kept", ["-X", "PUT", "-L",
                                     "<<A>>/redirect?code=302&to=/dl/u"],
     wire=methods(("PUT", "/redirect", b""), ("PUT", "/dl/u", b"")))
case("redirect-head", ["-I", "-L", "<<A>>/redirect?code=302&to=/dl/h"],
     wire=methods(("HEAD", "/redirect", b""), ("HEAD", "/dl/h", b"")))

# -- HTTP errors
case("fail-404", ["-f", "<<A>>/status/404"], code=22, stdout=b"",
     msg=r"404")
case("fail-long-500-nginx", ["--fail", "<<N>>/status/500"], code=22,
     stdout=b"", msg=r"500")
case("fail-no-file", ["-f", "-o", "f.txt", "<<A>>/status/404"], code=22,
     no_new_files=True)
case("fail-with-body", ["--fail-with-body", "<<A>>/status/404"], code=22,
     stdout=b"status 404\n", msg=r"404")
case("no-fail-404", ["<<A>>/status/404"], stdout=b"status 404\n")
case("fail-400-range", ["-f", "<<A>>/status/400"], code=22)
case("fail-ok", ["-f", "<<A>>/status/201"], stdout=b"status 201\n")

# -- several URLs: a failure does not stop the rest. The exit code is
# the last transfer's (curl 7.88: a failure followed by a success exits 0).
case("multi-continue-after-fail", ["-f", "<<A>>/status/404", "<<A>>/dl/x"],
     code=0, stdout=b"file x\n", no_err_line=True, err_re=rb"\(22\)")
case("multi-fail-in-middle", ["<<A>>/dl/a", "<<REFUSED>>/", "<<A>>/dl/b"],
     code=0, stdout=b"file a\nfile b\n", no_err_line=True,
     err_re=rb"\(7\)")
case("multi-last-fails", ["<<A>>/dl/a", "<<REFUSED>>/"], code=7,
     stdout=b"file a\n")
case("multi-two-failures", ["-f", "<<A>>/dl/c", "<<REFUSED>>/",
                            "<<A>>/status/404"], code=22,
     stdout=b"file c\n", err_re=rb"\(7\)")

# -- quiet, errors, verbose
case("refused", ["<<REFUSED>>/"], code=7,
     msg=r"(?i)connect|refused", no_new_files=True)
case("refused-no-file", ["-o", "r.txt", "<<REFUSED>>/"], code=7,
     no_new_files=True)
case("silent", ["-s", "<<REFUSED>>/"], code=7)
case("silent-show-error", ["-s", "-S", "<<REFUSED>>/"], code=7,
     msg=r"(?i)connect|refused")
case("silent-show-error-combined", ["-sS", "<<REFUSED>>/"], code=7)
case("show-error-alone", ["-S", "<<REFUSED>>/"], code=7)
case("silent-ok", ["-s", "<<A>>/"], stdout=HELLO)


def verbose_check(ctx, f):
    lines = f.err.decode("utf-8", "replace").splitlines()
    assert any(l.startswith("> GET /v HTTP/1.1") for l in lines), \
        "no '> GET /v HTTP/1.1' line"
    assert any(l.startswith("> Host: 127.0.0.1:") for l in lines), \
        "no '> Host:' line"
    assert any(l.startswith("< HTTP/1.1 200") for l in lines), \
        "no '< HTTP/1.1 200' line"
    assert any(l.startswith("< Content-Length: 6") for l in lines), \
        "no '< Content-Length' line"
    assert any(l.startswith("* ") for l in lines), "no '* ' line"
    for l in lines:
        assert l[:2] in ("> ", "< ", "* ", "{ ", "} ") or l in (">", "<"), \
            "line without a curl prefix: %r" % l


def verbose_heads(keep):
    """-v: the '> ' and '< ' lines, User-Agent normalised, compared with
    curl's run of the same case."""
    def norm(err):
        out = []
        for l in err.decode("utf-8", "replace").splitlines():
            if l[:2] in ("> ", "< ") or l in (">", "<"):
                if l.lower().startswith("> user-agent:") and not keep:
                    l = "> User-Agent: <UA>"
                out.append(l.rstrip())
        return out
    return norm


case("verbose", ["-v", "<<A>>/v"], stdout=HELLO, check=verbose_check,
     cmp={"code", "stdout", "files", "wire", "verbose"})
case("verbose-post", ["--verbose", "-d", "a=1", "-H", "X-V: 1", "<<A>>/v"],
     stdout=HELLO, cmp={"code", "stdout", "files", "wire", "verbose"})

# -- write-out
WO_DET = ("%{http_code} %{response_code} %{size_download} %{size_header} "
          "%{url_effective} %{num_redirects} %{content_type} %{exitcode}\\n")
case("write-out-fields", ["-s", "-o", "/dev/null", "-w", WO_DET, "-L",
                          "<<A>>/redirect?code=302&to=/dl/w"],
     stdout_re=rb"^200 200 7 \d+ http://127\.0\.0\.1:\d+/dl/w 1 "
     rb"text/plain 0\n$")
case("write-out-size-header", ["-s", "-o", "/dev/null", "-w",
                               "%{size_header}", "<<A>>/"],
     stdout=str(len(resp(200, HELLO)) - len(HELLO)).encode())
case("write-out-content-type", ["-s", "-w", "[%{content_type}]",
                                "<<A>>/ctype"],
     stdout=b'{"a":1}\n[application/json; charset=utf-8]')
case("write-out-escapes", ["-s", "-w", "a\\tb\\n", "<<A>>/"],
     stdout=HELLO + b"a\tb\n")
case("write-out-long", ["-s", "--write-out", "%{http_code}", "-o",
                        "/dev/null", "<<A>>/status/404"], stdout=b"404")
case("write-out-size-1m", ["-s", "-o", "/dev/null", "-w",
                           "%{size_download}", "<<N>>/1m.bin"],
     stdout=b"1048576")
case("write-out-error", ["-s", "-w", "%{exitcode}|%{http_code}|%{errormsg}",
                         "<<REFUSED>>/"], code=7,
     stdout_re=rb"^7\|000\|.+", cmp={"code", "files", "stderr", "wire"})
TIMES = ("%{time_connect} %{time_appconnect} %{time_starttransfer} "
         "%{time_total}")


def times_sane(tls):
    def chk(ctx, f):
        m = re.fullmatch(rb"(\d+\.\d{6}) (\d+\.\d{6}) (\d+\.\d{6}) "
                         rb"(\d+\.\d{6})", f.out.split(b"\n")[-1]
                         if not tls else f.out[len(TLS_HELLO):])
        assert m, "times not like curl's 0.001234: %r" % f.out
        conn, app, start, total = (float(x) for x in m.groups())
        assert conn <= start <= total, "connect <= starttransfer <= total"
        if tls:
            assert conn <= app <= start, "connect <= appconnect <= start"
        else:
            assert app == 0, "time_appconnect %r on plain http" % app
    return chk


case("write-out-times", ["-s", "-o", "/dev/null", "-w", TIMES, "<<A>>/"],
     cmp={"code", "files", "stderr", "wire"}, check=times_sane(False))
case("write-out-times-tls", ["-s", "--cacert", "<<CA>>", "-w", TIMES,
                             "<<TLS:leaf>>/hello.txt"],
     cmp={"code", "files", "stderr"}, check=times_sane(True))

# -- timeouts
case("max-time", ["-m", "1", "<<A>>/hang"], code=28,
     msg=r"(?i)time", no_new_files=True)
case("max-time-long", ["--max-time", "1", "-o", "t.txt", "<<A>>/hang"],
     code=28)
case("connect-timeout", ["--connect-timeout", "1", "<<BLACKHOLE>>/"],
     code=28, msg=r"(?i)time|no answer within", wire=attempts(0))

# -- transfer failures
case("partial-file", ["<<A>>/partial"], code=18, stdout=peers.pattern(500),
     msg=r"(?i)partial|remaining|closed|short|500")
case("empty-reply", ["<<A>>/empty"], code=52, stdout=b"",
     msg=r"(?i)empty|nothing")
case("recv-failure", ["<<A>>/reset"], code=56, stdout=peers.pattern(1000),
     msg=r"(?i)reset|recv|receiv")
case("write-error-file", ["-o", "/dev/full", "<<A>>/bytes?n=100000"],
     code=23, msg=r"(?i)writ")
case("write-error-stdout", ["<<A>>/bytes?n=100000"], code=23,
     stdout_to="/dev/full", msg=r"(?i)writ")
case("unsupported-protocol", ["foo://127.0.0.1/"], code=1,
     msg=r"(?i)foo|protocol|scheme")
case("bad-url-port", ["http://127.0.0.1:99999/"], code=3)
case("bad-url-bracket", ["http://[::1/"], code=3, msg=r"(?i)url")
case("resolve-invalid", ["http://nonexistent.invalid/"], code=6,
     msg=r"nonexistent\.invalid")
case("resolve-override", ["--resolve", "fetch.test:<<APORT>>:127.0.0.1",
                          "http://fetch.test:<<APORT>>/"], stdout=HELLO)
case("resolve-override-any-host", ["--resolve", "*:<<APORT>>:[::1],127.0.0.1",
                                   "http://fetch.test:<<APORT>>/"],
     stdout=HELLO)
case("resolve-override-bad", ["--resolve", "fetch.test:80", "<<A>>/"],
     code=49, msg=r"CURLOPT_RESOLVE entry 'fetch\.test:80'",
     wire=attempts(0))

# -- usage
case("unknown-flag", ["--no-such-flag", "<<A>>/"], code=2,
     err_re=rb"^fetch: option --no-such-flag: is unknown",
     wire=attempts(0))
case("missing-parameter", ["<<A>>/", "-o"], code=2,
     err_re=rb"^fetch: option -o: requires parameter", wire=attempts(0))
case("no-url", ["-s"], code=2, err_re=rb"(?i)^fetch: no URL specified")
case("help", ["-h"], stdout_re=rb"(?s)Usage: fetch.*--output",
     cmp={"code", "files"})
case("help-long", ["--help"], stdout_re=rb"(?s)Usage: fetch.*--max-time",
     cmp={"code", "files"})
case("version", ["-V"], stdout_re=rb"(?sim)^fetch \S+.*ferry.*bearssl.*"
     rb"^Features: ", cmp={"code", "files"})
case("version-long", ["--version"], stdout_re=rb"^fetch ",
     cmp={"code", "files"})

# -- resume
case("resume-partial-nginx", ["-C", "-", "-o", "s.txt", "<<N>>/small.txt"],
     pre={"s.txt": b"ferry small.txt: 100 bytes of f"},
     files={"s.txt": NGX_SMALL})
case("resume-complete-nginx", ["-C", "-", "-o", "s.txt",
                               "<<N>>/small.txt"],
     pre={"s.txt": NGX_SMALL},
     files={"s.txt": NGX_SMALL})
case("resume-not-satisfiable", ["-C", "-", "-o", "n.bin", "<<A>>/norange"],
     code=33, pre={"n.bin": b"0123456789"}, files={"n.bin": b"0123456789"},
     msg=r"(?i)range|resume",
     wire=one_req("GET", "/norange", Range="bytes=10-"))
case("resume-range-header", ["-C", "-", "-o", "p.bin", "<<A>>/r"],
     pre={"p.bin": b"abc"}, code=33)

# -- retries
case("retry-503-then-ok", ["--retry", "2", "--retry-delay", "1",
                           "<<A>>/fail?key=a&n=1&code=503"],
     # curl writes every attempt's body to stdout (it cannot take it back)
     stdout=b"fail 1\nok after 2\n", wire=attempts(2))
case("retry-503-file-rewritten", ["--retry", "2", "--retry-delay", "1",
                                  "-o", "r.txt",
                                  "<<A>>/fail?key=a&n=1&code=503"],
     files={"r.txt": b"ok after 2\n"}, wire=attempts(2))
case("retry-500-twice", ["--retry", "3", "--retry-delay", "1", "-o", "r.txt",
                         "<<A>>/fail?key=b&n=2&code=500"],
     files={"r.txt": b"ok after 3\n"}, wire=attempts(3), timeout=20)
case("retry-exhausted", ["--retry", "1", "--retry-delay", "1", "-f",
                         "<<A>>/fail?key=c&n=5&code=502"], code=22,
     wire=attempts(2))
case("retry-transient-codes", ["--retry", "1", "--retry-delay", "1",
                               "-o", "1", "<<A>>/fail?key=d&code=408",
                               "-o", "2", "<<A>>/fail?key=e&code=429",
                               "-o", "3", "<<A>>/fail?key=f&code=504"],
     files={"1": b"ok after 2\n", "2": b"ok after 2\n",
            "3": b"ok after 2\n"}, wire=attempts(6), timeout=25)
case("retry-not-on-404", ["--retry", "3", "--retry-delay", "1",
                          "<<A>>/fail?key=g&n=5&code=404"],
     stdout=b"fail 1\n", wire=attempts(1))
case("retry-on-timeout", ["--retry", "1", "--retry-delay", "1", "-m", "1",
                          "<<A>>/hang"], code=28, wire=attempts(2),
     msg=r"(?i)time")
case("retry-not-on-refused", ["--retry", "2", "--retry-delay", "1",
                              "<<REFUSED>>/"], code=7)

# -- parallel: a barrier that answers "together" only when all the
# transfers wait at once proves they ran in parallel, with no clock.
# (Different host names: curl -Z waits to see whether a second transfer to
# the same host can share the first one's connection.)
case("parallel", ["-Z", "-o", "p1", "<<A>>/barrier?key=p&n=2",
                  "-o", "p2", "<<B>>/barrier?key=p&n=2"],
     files={"p1": b"together\n", "p2": b"together\n"}, stdout=b"")
case("parallel-long", ["--parallel", "-o", "q1",
                       "<<A>>/barrier?key=q&n=3", "-o", "q2",
                       "<<B>>/barrier?key=q&n=3", "-o", "q3",
                       "<<AL>>/barrier?key=q&n=3"],
     files={"q1": b"together\n", "q2": b"together\n",
            "q3": b"together\n"})
case("parallel-max", ["-Z", "--parallel-max", "2", "-o", "m1",
                      "<<A>>/barrier?key=m&n=3&t=1", "-o", "m2",
                      "<<B>>/barrier?key=m&n=3&t=1", "-o", "m3",
                      "<<AL>>/dl/m3"],
     # two at a time: the barrier for three is never met
     files={"m1": b"alone\n", "m2": b"alone\n", "m3": b"file m3\n"},
     timeout=25)
case("parallel-failure-rest-run", ["-Z", "-o", "a", "<<A>>/dl/a", "-o",
                                   "b", "<<REFUSED>>/", "-o", "c",
                                   "<<B>>/dl/c"],
     code=7, files={"a": b"file a\n", "b": None, "c": b"file c\n"})
case("not-parallel-without-Z", ["-o", "s1", "<<A>>/barrier?key=s&n=2&t=1",
                                "-o", "s2", "<<B>>/barrier?key=s&n=2&t=1"],
     files={"s1": b"alone\n", "s2": b"alone\n"})

# -- long forms and odd corners
case("long-forms", ["--silent", "--show-error", "--location", "--user",
                    "u:p", "--user-agent", "long/1", "--referer", "r",
                    "--cookie", "k=v", "--get", "--data", "a=1",
                    "--create-dirs", "--output", "l/out.txt", "--include",
                    "<<A>>/redirect?code=302&to=/dl/long"],
     files={"l/out.txt": resp(302, b"", extra=[("Location", "/dl/long")])[
         :-len("Content-Length: 0\r\n\r\n")] + b"Content-Length: 6\r\n"
         b"\r\n" + resp(200, b"file long\n")},
     wire=methods(("GET", "/redirect", b""), ("GET", "/dl/long", b"")))
case("remote-name-long", ["--remote-name", "--output-dir", ".",
                          "<<A>>/dl/rn.txt"],
     files={"rn.txt": b"file rn.txt\n"})
case("header-remove-ua", ["-H", "User-Agent:", "<<A>>/"],
     wire=headers_are("Host", "Accept"))
case("progress-bar-on-pipe", ["-#", "-o", "b.bin", "<<A>>/bytes?n=5000"],
     files={"b.bin": peers.pattern(5000)},
     # curl draws its bar on a pipe too; fetch draws nothing there
     cmp={"code", "stdout", "files", "wire"})
case("progress-bar-long", ["--progress-bar", "<<A>>/"], stdout=HELLO,
     cmp={"code", "stdout", "files", "wire"})
case("head-and-include", ["-I", "-i", "<<A>>/"],
     stdout=peers.response(200, HELLO, [("Content-Type", "text/plain")],
                           head_only=True))

# -- compression
case("no-compressed-raw", ["<<A>>/gzip"],
     stdout=gzip.compress(b"hello gzip\n", mtime=0))


def accept_encoding(value):
    """A wire check: one request with this Accept-Encoding."""
    def w(reqs):
        assert len(reqs) == 1, "%d requests" % len(reqs)
        got = reqs[0].header("Accept-Encoding")
        assert got == value, "Accept-Encoding %r, want %r" % (got, value)
    return w


# curl also offers br and zstd, which ferry does not decode: the wire
# differs in that one header, the bytes out do not.
case("compressed", ["--compressed", "<<A>>/gzip"], stdout=b"hello gzip\n",
     wire=accept_encoding("deflate, gzip"),
     cmp={"code", "stdout", "files", "stderr"})
case("compressed-gzip-big", ["--compressed", "-o", "g.bin",
                             "<<A>>/gzip-n?n=300000"],
     files={"g.bin": peers.pattern(300000)},
     cmp={"code", "stdout", "files", "stderr"})
case("compressed-deflate", ["--compressed", "<<A>>/deflate?n=5000"],
     stdout=peers.pattern(5000), cmp={"code", "stdout", "files", "stderr"})
case("compressed-raw-deflate", ["--compressed", "<<A>>/raw-deflate?n=5000"],
     stdout=peers.pattern(5000), cmp={"code", "stdout", "files", "stderr"})
case("compressed-include", ["--compressed", "-i", "<<A>>/gzip"],
     cmp={"code", "stdout", "files", "stderr"})
case("compressed-own-header", ["--compressed", "-H",
                               "Accept-Encoding: gzip", "<<A>>/gzip"],
     stdout=b"hello gzip\n", wire=accept_encoding("gzip"))
# curl's size_download counts the bytes received, before decoding
case("compressed-size-download", ["--compressed", "-s", "-o", "/dev/null",
                                  "-w", "%{size_download}",
                                  "<<A>>/gzip-n?n=300000"],
     stdout=str(len(gzip.compress(peers.pattern(300000), mtime=0))).encode(),
     cmp={"code", "stdout", "files", "stderr"})
case("compressed-corrupt", ["--compressed", "<<A>>/gzip-bad?n=5000"],
     code=61, msg=r"invalid block type",
     cmp={"code", "stdout", "files", "stderr"})

# -- TLS
case("tls-cacert", ["--cacert", "<<CA>>", "<<TLS:leaf>>/hello.txt"],
     stdout=TLS_HELLO)
case("tls-rsa-chain", ["--cacert", "<<CA>>", "<<TLS:rsa>>/hello.txt"],
     stdout=TLS_HELLO)
case("tls-capath", ["--capath", "<<CAPATH>>", "<<TLS:leaf>>/hello.txt"],
     stdout=TLS_HELLO)
case("tls-insecure", ["-k", "<<TLS:self>>/hello.txt"], stdout=TLS_HELLO)
case("tls-insecure-long", ["--insecure", "<<TLS:expired>>/hello.txt"],
     stdout=TLS_HELLO)
case("tls-max-12", ["--tls-max", "1.2", "--cacert", "<<CA>>",
                    "<<TLS:leaf>>/hello.txt"], stdout=TLS_HELLO)
case("tls-v12", ["--tlsv1.2", "--cacert", "<<CA>>",
                 "<<TLS:leaf>>/hello.txt"], stdout=TLS_HELLO)
case("tls-expired", ["--cacert", "<<CA>>", "<<TLS:expired>>/hello.txt"],
     code=60, msg=r"(?i)expire|valid|date")
case("tls-not-yet-valid", ["--cacert", "<<CA>>", "<<TLS:future>>/hello.txt"],
     code=60, msg=r"(?i)valid|expire|date")
case("tls-wrong-host", ["--cacert", "<<CA>>", "<<TLS:other>>/hello.txt"],
     code=60, msg=r"(?i)name|host|match")
case("tls-self-signed", ["--cacert", "<<CA>>", "<<TLS:self>>/hello.txt"],
     code=60, msg=r"(?i)cert|trust|self")
case("tls-self-signed-system-cas", ["<<TLS:self>>/hello.txt"], code=60)
case("tls-unknown-ca", ["--cacert", "<<CA>>", "<<TLS:unknown>>/hello.txt"],
     code=60, msg=r"(?i)cert|trust|issuer|CA")
case("tls-no-file", ["-o", "x.txt", "--cacert", "<<CA>>",
                     "<<TLS:expired>>/hello.txt"], code=60,
     no_new_files=True)
case("tls-cacert-missing", ["--cacert", "/nonexistent/ca.pem",
                            "<<TLS:leaf>>/hello.txt"], code=77,
     msg=r"(?i)/nonexistent/ca\.pem|CA")
case("tls-cacert-empty", ["--cacert", "<<EMPTYPEM>>",
                          "<<TLS:leaf>>/hello.txt"], code=77,
     cmp={"files", "stdout"}, msg=r"(?i)cert|CA")
case("tls-13-only", ["--cacert", "<<CA>>", "<<TLS:tls13>>/hello.txt"],
     code=35, msg=r"1\.2",
     # curl's OpenSSL speaks 1.3; at most 1.2 it fails the same way
     curl_args=["--tls-max", "1.2", "--cacert", "<<CA>>",
                "<<TLS:tls13>>/hello.txt"])
# -- client certificates (s_server -Verify, TLS 1.2 only, so that curl's
# OpenSSL fails a refused handshake as fetch does, with 35)
MTLS = ["--cacert", "<<CA>>"]
case("mtls-ec", MTLS + ["--cert", "<<CERT:client.pem>>", "--key",
                        "<<CERT:client.key>>", "<<TLS:mtls>>/hello.txt"],
     stdout=TLS_HELLO)
case("mtls-rsa-chain", MTLS + ["-E", "<<CERT:client_rsa.pem>>", "--key",
                               "<<CERT:client_rsa.key>>",
                               "<<TLS:mtls>>/hello.txt"], stdout=TLS_HELLO)
case("mtls-key-in-cert", MTLS + ["--cert", "<<CERT:client-both.pem>>",
                                 "<<TLS:mtls>>/hello.txt"], stdout=TLS_HELLO)
case("mtls-no-cert", MTLS + ["<<TLS:mtls>>/hello.txt"], code=35,
     msg=r"requires a client certificate")
case("mtls-refused", MTLS + ["--cert", "<<CERT:leaf.pem>>", "--key",
                             "<<CERT:leaf.key>>", "<<TLS:mtls>>/hello.txt"],
     code=35, msg=r"refused the client certificate")
case("mtls-key-mismatch", MTLS + ["--cert", "<<CERT:client.pem>>", "--key",
                                  "<<CERT:other.key>>",
                                  "<<TLS:mtls>>/hello.txt"],
     code=58, msg=r"does not match")
case("mtls-no-key", MTLS + ["--cert", "<<CERT:client.pem>>",
                            "<<TLS:mtls>>/hello.txt"],
     code=58, msg=r"no private key")
case("mtls-missing-file", MTLS + ["--cert", "<<CERT:client.pem>>", "--key",
                                  "<<CERT:nonexistent.key>>",
                                  "<<TLS:mtls>>/hello.txt"],
     code=58, msg=r"nonexistent\.key")
case("tls-to-plain-http", ["--cacert", "<<CA>>", "<<PLAIN>>/"], code=35, msg=r"(?i)TLS|SSL|handshake")

# -- proxies (tests/servers/proxy.py counts what it saw: "proxied" is
# (absolute-form requests, CONNECTs) for fetch's run)
case("proxy-forward", ["-x", "<<PROXY>>", "<<A>>/p"], stdout=HELLO,
     proxied=(1, 0), wire=one_req("GET", "/p"))
case("proxy-forward-scheme", ["--proxy", "http://<<PROXY>>", "<<A>>/p"],
     stdout=HELLO, proxied=(1, 0))
case("proxy-forward-keepalive", ["-x", "<<PROXY>>", "<<A>>/a", "<<A>>/b"],
     stdout=HELLO + HELLO, proxied=(2, 0))
case("proxy-env-http", ["<<A>>/e"], env={"http_proxy": "http://<<PROXY>>"},
     stdout=HELLO, proxied=(1, 0))
case("proxy-env-upper-http-ignored", ["<<A>>/e"],
     env={"HTTP_PROXY": "http://<<PROXY>>"}, stdout=HELLO, proxied=(0, 0))
case("proxy-env-all", ["<<A>>/e"], env={"ALL_PROXY": "<<PROXY>>"},
     stdout=HELLO, proxied=(1, 0))
case("proxy-env-no-proxy", ["<<A>>/e"],
     env={"http_proxy": "<<PROXY>>", "NO_PROXY": "example.com,127.0.0.1"},
     stdout=HELLO, proxied=(0, 0))
case("proxy-env-no-proxy-domain", ["http://sub.localhost:<<APORT>>/d"],
     env={"http_proxy": "<<PROXY>>", "no_proxy": ".localhost"},
     stdout=HELLO, proxied=(0, 0))
case("proxy-noproxy-cidr", ["-x", "<<PROXY>>", "--noproxy", "127.0.0.0/8",
                            "<<A>>/n"], stdout=HELLO, proxied=(0, 0))
case("proxy-noproxy-star", ["-x", "<<PROXY>>", "--noproxy", "*", "<<A>>/n"],
     stdout=HELLO, proxied=(0, 0))
case("proxy-noproxy-other", ["-x", "<<PROXY>>", "--noproxy", "10.0.0.0/8,x.y",
                             "<<A>>/n"], stdout=HELLO, proxied=(1, 0))
case("proxy-empty-overrides-env", ["-x", "", "<<A>>/e"],
     env={"http_proxy": "<<REFUSED>>"}, stdout=HELLO, proxied=(0, 0))
case("proxy-tunnel-http", ["-p", "-x", "<<PROXY>>", "<<A>>/t"], stdout=HELLO,
     proxied=(0, 1), wire=headers_are("Host", "User-Agent", "Accept"))
case("proxy-https-tunnel", ["-x", "<<PROXY>>", "--cacert", "<<CA>>",
                            "<<TLS:leaf>>/hello.txt"], stdout=TLS_HELLO,
     proxied=(0, 1))
case("proxy-env-https", ["--cacert", "<<CA>>", "<<TLS:leaf>>/hello.txt"],
     env={"https_proxy": "<<PROXY>>"}, stdout=TLS_HELLO, proxied=(0, 1))
case("proxy-env-https-upper", ["--cacert", "<<CA>>",
                                "<<TLS:leaf>>/hello.txt"],
     env={"HTTPS_PROXY": "http://<<PROXY>>"}, stdout=TLS_HELLO,
     proxied=(0, 1))
case("proxy-https-verifies-origin", ["-x", "<<PROXY>>", "--cacert", "<<CA>>",
                                     "<<TLS:other>>/hello.txt"], code=60,
     proxied=(0, 1), msg=r"(?i)name|host|match")
case("proxy-auth-missing-forward", ["-s", "-w", "%{http_code}", "-x",
                                    "<<PROXY:auth>>", "<<A>>/"],
     stdout=b"407", proxied=(1, 0))
case("proxy-auth-user", ["-U", "user:s3cret", "-x", "<<PROXY:auth>>",
                         "<<A>>/"], stdout=HELLO, proxied=(1, 0))
case("proxy-auth-in-url", ["-x", "http://user:s3cret@<<PROXY:auth>>",
                           "<<A>>/"], stdout=HELLO, proxied=(1, 0))
case("proxy-auth-not-to-origin", ["-p", "-U", "user:s3cret", "-x",
                                  "<<PROXY:auth>>", "<<A>>/"], stdout=HELLO,
     proxied=(0, 1), wire=headers_are("Host", "User-Agent", "Accept"))
case("proxy-connect-407", ["-p", "-x", "<<PROXY:auth>>", "<<A>>/"], code=56,
     proxied=(0, 1), msg=r"407")
case("proxy-connect-403", ["-x", "<<PROXY:refuse>>", "--cacert", "<<CA>>",
                           "<<TLS:leaf>>/hello.txt"], code=56,
     proxied=(0, 1), msg=r"403")
case("proxy-unresolvable", ["-x", "nonexistent.invalid:3128", "<<A>>/"],
     code=5, msg=r"(?i)resolve proxy")
case("proxy-refused", ["-x", "<<REFUSED>>", "<<A>>/"], code=7)

def proxy_failure_named(ctx, f):
    """The (7) line names the proxy's host and port, not the origin."""
    port = ctx.subst("<<REFUSED>>").rsplit(":", 1)[1]
    msg = f.messages()[-1]
    assert re.search(r"Failed to connect to 127\.0\.0\.1 port %s " % port,
                     msg), "message %r does not name the proxy" % msg
    assert "origin.invalid" not in msg, "message %r names the origin" % msg


case("proxy-refused-named", ["-x", "<<REFUSED>>", "http://origin.invalid/"],
     code=7, check=proxy_failure_named)
# A Recorder as the proxy: the request as a forward proxy receives it
# (tests/servers/proxy.py drops the Proxy-* fields before the origin).
APROXY = "127.0.0.1:<<APORT>>"
case("proxy-connection-wire", ["-x", APROXY, "-U", "u:p", "-H", "X-A: 1",
                               "http://origin.invalid:8080/p?q"],
     stdout=HELLO,
     wire=one_req("GET", "http://origin.invalid:8080/p?q",
                  Proxy_Connection="Keep-Alive",
                  Proxy_Authorization="Basic dTpw"))
case("proxy-connection-own", ["-x", APROXY, "-H", "Proxy-Connection: close",
                              "http://origin.invalid/p"], stdout=HELLO,
     wire=one_req("GET", "http://origin.invalid/p",
                   Proxy_Connection="close"))
case("proxy-connection-removed", ["-x", APROXY, "-H", "Proxy-Connection:",
                                  "http://origin.invalid/p"], stdout=HELLO,
     wire=headers_are("Host", "User-Agent", "Accept"))
case("proxy-verbose", ["-v", "-x", APROXY, "http://origin.invalid/v"],
     stdout=HELLO, cmp={"code", "stdout", "files", "wire", "verbose"})
case("proxy-connection-not-direct", ["<<A>>/p"], stdout=HELLO,
     wire=headers_are("Host", "User-Agent", "Accept"))

# -- uploads (-T): PUT, the file's name after a URL ending in "/", curl
# 7.88's Expect: 100-continue (the Recorder answers 100 Continue)
UP = {"up.txt": b"upload me\n"}
case("upload-put", ["-T", "up.txt", "<<A>>/dir/"], pre=UP, stdout=HELLO,
     wire=one_req("PUT", "/dir/up.txt", b"upload me\n", Content_Length="10",
                  Expect="100-continue"))
case("upload-no-path", ["-T", "up.txt", "<<A>>"], pre=UP, stdout=HELLO,
     wire=one_req("PUT", "/up.txt", b"upload me\n"))
case("upload-named-path", ["-T", "up.txt", "<<A>>/x?q=1"], pre=UP,
     stdout=HELLO, wire=one_req("PUT", "/x?q=1", b"upload me\n"))
case("upload-name-escaped", ["-T", "sub/f x+\u00e9.txt", "<<A>>/up/?q=1"],
     pre={"sub/f x+\u00e9.txt": b"hi\n"}, stdout=HELLO,
     wire=one_req("PUT", "/up/f%20x%2b%c3%a9.txt?q=1", b"hi\n"))
case("upload-method", ["-X", "POST", "-T", "up.txt", "<<A>>/y"], pre=UP,
     stdout=HELLO, wire=one_req("POST", "/y", b"upload me\n"))
case("upload-stdin-chunked", ["-T", "-", "<<A>>/in/"], stdin=b"abc\n",
     stdout=HELLO, wire=one_req("PUT", "/in/", b"abc\n",
                                Transfer_Encoding="chunked",
                                Expect="100-continue"))
case("upload-big", ["-T", "big.bin", "<<A>>/big"],
     pre={"big.bin": peers.pattern(2 << 20)}, stdout=HELLO,
     wire=one_req("PUT", "/big", peers.pattern(2 << 20),
                  Content_Length=str(2 << 20), Expect="100-continue"))
case("upload-empty", ["-T", "empty", "<<A>>/e"], pre={"empty": b""},
     stdout=HELLO, wire=headers_are("Host", "User-Agent", "Accept",
                                    "Content-Length"))
case("upload-two-urls", ["-T", "up.txt", "<<A>>/a/", "-T", "empty",
                         "<<A>>/b/"], pre={"up.txt": b"one\n", "empty": b""},
     stdout=HELLO + HELLO)
case("upload-redirect-307", ["-L", "-T", "up.txt",
                             "<<A>>/redirect?code=307&to=/dl/again"],
     pre=UP, stdout=b"file again\n")
case("upload-stdin-redirect-307", ["-L", "-T", "-",
                                   "<<A>>/redirect?code=307&to=/dl/again"],
     stdin=b"abc\n", code=65, msg=r"rewind")
case("upload-through-proxy", ["-x", APROXY, "-T", "up.txt",
                              "http://origin.invalid/up/"], pre=UP,
     stdout=HELLO, wire=one_req("PUT", "http://origin.invalid/up/up.txt",
                                b"upload me\n",
                                Proxy_Connection="Keep-Alive"))
case("upload-missing-file", ["-o", "out.txt", "-T", "nonexistent.txt",
                             "<<A>>/"], code=26, no_new_files=True,
     wire=attempts(0), msg=r"nonexistent\.txt")
case("upload-and-data", ["-T", "up.txt", "-d", "a=1", "<<A>>/"], pre=UP,
     code=2, wire=attempts(0), err_re=rb"only select one HTTP request")
case("upload-and-head", ["-T", "up.txt", "-I", "<<A>>/"], pre=UP,
     code=2, wire=attempts(0))
# -d over 1 MiB: curl 7.88 asks for 100-continue there too
case("post-big-expect", ["--data-binary", "@big.bin", "<<A>>/p"],
     pre={"big.bin": b"x" * ((1 << 20) + 1)}, stdout=HELLO,
     wire=one_req("POST", "/p", b"x" * ((1 << 20) + 1),
                  Expect="100-continue"))
case("post-1m-no-expect", ["--data-binary", "@m.bin", "<<A>>/p"],
     pre={"m.bin": b"x" * (1 << 20)}, stdout=HELLO,
     wire=headers_are("Host", "User-Agent", "Accept", "Content-Length",
                      "Content-Type"))

# -- Unix sockets: nginx listens on <<NSOCK>> too
case("unix-socket", ["--unix-socket", "<<NSOCK>>", "http://localhost/small.txt"],
     stdout=NGX_SMALL)
case("unix-socket-any-host", ["--unix-socket", "<<NSOCK>>",
                              "http://nonexistent.invalid:8080/small.txt"],
     stdout=NGX_SMALL)
case("unix-socket-two-urls", ["--unix-socket", "<<NSOCK>>",
                              "http://localhost/small.txt",
                              "http://localhost/small.txt"],
     stdout=lambda c: c.nginx_file("small.txt") * 2)
case("unix-socket-missing", ["--unix-socket", "/nonexistent/x.sock",
                             "http://localhost/"], code=7)
case("unix-socket-over-proxy", ["-x", "<<REFUSED>>", "--unix-socket",
                                "<<NSOCK>>", "http://localhost/small.txt"],
     stdout=NGX_SMALL)
case("abstract-unix-socket-missing", ["--abstract-unix-socket",
                                      "ferry-no-such-socket",
                                      "http://localhost/"], code=7)

# ---------------------------------------------------------------- main

def main(argv):
    fetch = None
    only = []
    verbose = False
    it = iter(argv[1:])
    for a in it:
        if a == "-k":
            only.append(next(it))
        elif a == "-v":
            verbose = True
        else:
            fetch = a
    fetch = fetch or os.environ.get("FETCH")
    if not fetch or not os.access(fetch, os.X_OK):
        print("fetch_cli: no fetch binary (argument or $FETCH): skip")
        return 77
    fetch = os.path.abspath(fetch)
    curl = shutil.which("curl")
    if not curl:
        print("fetch_cli: curl not installed: checking fetch alone")
    tmp = tempfile.mkdtemp(prefix="ferry-fetch-cli-")
    ctx = Peers(tmp)
    passed = failed = 0
    try:
        n = 0
        for c in CASES:
            if only and not any(o in c["name"] for o in only):
                continue
            n += 1
            try:
                errs, f, cr = run_case(ctx, fetch, curl, c, n)
            except Fail as e:
                errs, f, cr = [str(e)], None, None
            except Exception:
                errs, f, cr = [traceback.format_exc()], None, None
            if c.get("code") is None and f is not None:
                errs = [e for e in errs if not e.startswith("exit code")]
            # "verbose" compares the -v heads with curl's.
            if cr is not None and "verbose" in c.get("cmp", ()):
                norm = verbose_heads(sets_ua(c["args"]))
                if norm(f.err) != norm(cr.err):
                    errs.append("-v heads differ:\n  fetch %s\n  curl  %s"
                                % (norm(f.err), norm(cr.err)))
            if errs:
                failed += 1
                print("FAIL %s: %s" % (c["name"], "; ".join(errs)))
                if verbose and f is not None:
                    print("  fetch %s -> %d\n  stdout %s\n  stderr %s"
                          % (f.argv, f.code, short(f.out, 2000),
                             short(f.err, 2000)))
                    if cr is not None:
                        print("  curl -> %d\n  stdout %s\n  stderr %s"
                              % (cr.code, short(cr.out, 2000),
                                 short(cr.err, 2000)))
            else:
                passed += 1
                print("ok   %s" % c["name"])
            sys.stdout.flush()
        for name, fn in PTY_CASES:
            if only and not any(o in name for o in only):
                continue
            try:
                fn(ctx, fetch)
                passed += 1
                print("ok   %s" % name)
            except Fail as e:
                failed += 1
                print("FAIL %s: %s" % (name, e))
            except Exception:
                failed += 1
                print("FAIL %s: %s" % (name, traceback.format_exc()))
            sys.stdout.flush()
    finally:
        ctx.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
