/* SPDX-License-Identifier: MIT */
/*
 * Test fixtures: real peer processes (nginx, misbehave.py) and small
 * helpers for temp dirs, checksums and raw HTTP over loopback.
 *
 * No criterion inside: every call returns a code the test turns into an
 * assertion or a skip.  Typical use:
 *
 *	struct fx_proc ngx = FX_PROC_INIT;
 *	int rc = fx_nginx_start(&ngx);
 *	if (rc == FX_SKIP)
 *		cr_skip_test("%s", ngx.err);
 *	cr_assert_eq(rc, 0, "%s", ngx.err);
 *	... talk to 127.0.0.1:ngx.port ...
 *	fx_stop(&ngx);
 *
 * Return codes: 0 (or a count) on success, FX_SKIP (> 0) when the peer
 * cannot run on this machine (nginx or python3 not installed), a negative
 * errno otherwise; the struct fx_proc calls also leave a sentence in
 * p->err.  Nothing here keeps global state except the cached source root.
 *
 * Orphans: each child gets PR_SET_PDEATHSIG(SIGTERM), and the servers do
 * the same for their own children, so a crashed or killed test takes its
 * peers with it.  The kernel ties that signal to the *thread* that forked:
 * start fixtures from a thread that outlives them (the test's own thread),
 * not from a short-lived helper thread.
 */
#ifndef FERRY_TEST_FIXTURE_H
#define FERRY_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Returned instead of 0 when the fixture cannot run here: cr_skip. */
#define FX_SKIP 1

/* How long fx_start waits for the READY line. */
#define FX_READY_TIMEOUT_MS 10000

/* How long fx_stop waits after SIGTERM before it sends SIGKILL. */
#define FX_STOP_GRACE_MS 5000

struct fx_proc {
	pid_t pid;		/* child we started, -1 when none */
	int port;		/* first word after READY */
	int out_fd;		/* read end of the child's stdout, or -1 */
	char dir[4096];		/* second word after READY (nginx: its dir) */
	char err[512];		/* why the last call on this struct failed */
};

#define FX_PROC_INIT { .pid = -1, .port = 0, .out_fd = -1 }

/*
 * Start argv (argv[0] searched in PATH if it has no '/'; NULL-terminated)
 * with stdin from /dev/null, stdout piped to us, stderr inherited (it lands
 * in the test log) and no other file descriptor inherited.  Waits up to
 * FX_READY_TIMEOUT_MS for a line "READY <port> [<dir>]" and fills p.
 * p needs no initialisation.  On failure no child is left running.
 * Returns 0; FX_SKIP if argv[0] is not found or the child exits with 77
 * before READY; -ETIMEDOUT if no READY came in time; -EIO if the child
 * exited or printed a malformed READY; other negative errno from
 * pipe/fork.
 */
int fx_start(struct fx_proc *p, const char *const argv[]);

/*
 * Start tests/servers/nginx.py: nginx on 127.0.0.1:p->port serving from a
 * fresh temp dir p->dir (see nginx.py for every URL it serves, manifest.txt
 * and access.log).  fx_nginx_start_args passes extra launcher arguments
 * (NULL-terminated list, may be NULL), e.g. {"--keepalive-timeout", "1",
 * NULL}.  Returns as fx_start, and FX_SKIP when nginx or python3 is not
 * installed.
 */
int fx_nginx_start(struct fx_proc *p);
int fx_nginx_start_args(struct fx_proc *p, const char *const args[]);

/*
 * Start python3 tests/servers/<script> with args (NULL-terminated, may be
 * NULL).  Returns as fx_start; FX_SKIP when python3 is missing; -ENOENT
 * when the script is not found; -E2BIG for too many arguments.
 */
int fx_python_start(struct fx_proc *p, const char *script,
		    const char *const args[]);

/*
 * Start tests/servers/misbehave.py --mode mode, plus one extra argument
 * (e.g. "--delay=0.5", or NULL).  Modes are documented in that file.
 * Returns as fx_start; FX_SKIP when python3 is missing; -EIO for an
 * unknown mode (the script exits 2).
 */
int fx_misbehave_start(struct fx_proc *p, const char *mode,
		       const char *extra_arg);

/*
 * Stop the child: SIGTERM to the pid we started, SIGKILL after
 * FX_STOP_GRACE_MS, then reap it.  If it had to be killed, p->dir is
 * removed here (the server could not clean up).  Safe to call twice and
 * on FX_PROC_INIT.  Afterwards p->pid is -1.
 */
void fx_stop(struct fx_proc *p);

/*
 * The source tree root: $FERRY_SOURCE_ROOT (set by meson test), else the
 * compile-time FERRY_SOURCE_ROOT_DEFAULT if defined, else found from
 * __FILE__ and /proc/self/exe.  NULL if none of those works.  The string
 * is static; thread-safe.
 */
const char *fx_source_root(void);

/* Path of tests/servers/<name> into buf.  0, -ENOENT, -ENAMETOOLONG. */
int fx_server_script(char *buf, size_t len, const char *name);

/* mkdtemp "$TMPDIR/ferry-test-XXXXXX" (TMPDIR default /tmp) into buf.
 * 0 or negative errno. */
int fx_tmpdir(char *buf, size_t len);

/* Remove dir and everything below it (symlinks not followed).
 * 0 or negative errno (-ENOENT if dir does not exist). */
int fx_rmtree(const char *dir);

/*
 * nginx access log helpers (p from fx_nginx_start, access log on).  The
 * log is empty at READY, and nginx writes a line when a request finishes,
 * which may be a moment after the client has read the response: use
 * fx_nginx_wait_requests before counting.
 * fx_nginx_count_requests: number of requests logged.
 * fx_count_connections: number of distinct server-side connections
 * ($connection) that carried at least one request.
 * fx_nginx_wait_requests: poll until at least n requests are logged;
 * returns the count, or -ETIMEDOUT after timeout_ms.
 * All return negative errno if the log cannot be read.
 */
int fx_nginx_count_requests(const struct fx_proc *nginx);
int fx_count_connections(const struct fx_proc *nginx);
int fx_nginx_wait_requests(const struct fx_proc *nginx, int n,
			   int timeout_ms);

/*
 * Look name (e.g. "1m.bin", "small.txt") up in nginx's manifest.txt:
 * its size and FNV-1a 64 checksum (either out pointer may be NULL).
 * 0, -ENOENT if not listed, or negative errno.
 */
int fx_manifest_get(const struct fx_proc *nginx, const char *name,
		    size_t *size, uint64_t *fnv);

/* Path of the served file name into buf: <dir>/www/<name>. */
int fx_nginx_file(const struct fx_proc *nginx, const char *name,
		  char *buf, size_t len);

/* FNV-1a 64, incremental: start with FX_FNV1A64_INIT, feed pieces. */
#define FX_FNV1A64_INIT 0xcbf29ce484222325ULL
uint64_t fx_fnv1a64(uint64_t h, const void *buf, size_t len);

/* Check that buf holds misbehave.py's pattern bytes offset..offset+len-1
 * (byte i is i % 251).  Returns -1 if all match, else the index in buf of
 * the first byte that differs. */
ssize_t fx_pattern_check(const void *buf, size_t len, uint64_t offset);

/* Fill buf with the pattern bytes that start at offset. */
void fx_pattern_fill(void *buf, size_t len, uint64_t offset);

/* Blocking TCP socket connected to 127.0.0.1:port, close-on-exec, with
 * send and receive timeouts of timeout_ms.  fd or negative errno. */
int fx_connect(int port, int timeout_ms);

/*
 * "GET path HTTP/1.1" with Connection: close over a fresh connection, and
 * read until EOF into buf (NUL-terminated, so at most cap - 1 bytes).
 * Returns the number of bytes read; -EMSGSIZE if the response does not
 * fit; -EAGAIN if a read or write took longer than timeout_ms; negative
 * errno otherwise.
 */
ssize_t fx_http_get(int port, const char *path, char *buf, size_t cap,
		    int timeout_ms);

/* Status code of a raw response ("HTTP/1.x NNN ..."), or -1. */
int fx_http_status(const char *resp);

/* Start of the body after "\r\n\r\n" in a raw response, or NULL. */
const char *fx_http_body(const char *resp);

#endif
