/* SPDX-License-Identifier: MIT */
/*
 * Test fixtures: see fixture.h.  Plain POSIX + Linux, no criterion.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* pipe2, nftw flags, close_range; meson sets it too */
#endif
#include "fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FX_MAX_ARGS 64

static void fx_seterr(struct fx_proc *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
}

static int64_t fx_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fx_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- paths ---- */

/* Find an executable: as given if it has a '/', else along PATH. */
static int fx_which(const char *name, char *buf, size_t len)
{
	const char *path, *p, *end;

	if (strchr(name, '/')) {
		if (snprintf(buf, len, "%s", name) >= (int)len)
			return -ENAMETOOLONG;
		return access(buf, X_OK) == 0 ? 0 : -ENOENT;
	}
	path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
	for (p = path; *p; p = *end ? end + 1 : end) {
		end = strchr(p, ':');
		if (!end)
			end = p + strlen(p);
		if (end == p)
			continue;
		if (snprintf(buf, len, "%.*s/%s", (int)(end - p), p, name) >=
		    (int)len)
			continue;
		if (access(buf, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

static char fx_root[PATH_MAX];
static pthread_once_t fx_root_once = PTHREAD_ONCE_INIT;

static int fx_root_valid(const char *root)
{
	char probe[PATH_MAX];

	if (snprintf(probe, sizeof(probe), "%s/tests/servers/nginx.py",
		     root) >= (int)sizeof(probe))
		return 0;
	return access(probe, R_OK) == 0;
}

static void fx_set_root(const char *root)
{
	if (!realpath(root, fx_root) &&
	    snprintf(fx_root, sizeof(fx_root), "%s", root) >=
	    (int)sizeof(fx_root))
		fx_root[0] = '\0';
}

/*
 * Without FERRY_SOURCE_ROOT (binary run by hand), find this file: meson
 * compiles it as a path relative to the build dir, which is an ancestor
 * of the test binary, so try __FILE__ against each ancestor of the exe.
 */
static int fx_root_from_file(void)
{
	static const char suffix[] = "/tests/common/fixture.c";
	char exe[PATH_MAX], cand[PATH_MAX];
	size_t flen = strlen(__FILE__), slen = sizeof(suffix) - 1;
	ssize_t n;
	char *slash;

	if (flen <= slen || strcmp(__FILE__ + flen - slen, suffix) != 0)
		return 0;
	if (__FILE__[0] == '/') {
		if (snprintf(cand, sizeof(cand), "%.*s", (int)(flen - slen),
			     __FILE__) >= (int)sizeof(cand) ||
		    !fx_root_valid(cand))
			return 0;
		fx_set_root(cand);
		return 1;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return 0;
	exe[n] = '\0';
	while ((slash = strrchr(exe, '/')) != NULL && slash != exe) {
		*slash = '\0';
		if (snprintf(cand, sizeof(cand), "%s/%.*s", exe,
			     (int)(flen - slen), __FILE__) >= (int)sizeof(cand))
			continue;
		if (fx_root_valid(cand)) {
			fx_set_root(cand);
			return 1;
		}
	}
	return 0;
}

static void fx_find_root(void)
{
	const char *env = getenv("FERRY_SOURCE_ROOT");

	if (env && *env && fx_root_valid(env)) {
		fx_set_root(env);
		return;
	}
#ifdef FERRY_SOURCE_ROOT_DEFAULT
	if (fx_root_valid(FERRY_SOURCE_ROOT_DEFAULT)) {
		fx_set_root(FERRY_SOURCE_ROOT_DEFAULT);
		return;
	}
#endif
	fx_root_from_file();
}

const char *fx_source_root(void)
{
	pthread_once(&fx_root_once, fx_find_root);
	return fx_root[0] ? fx_root : NULL;
}

int fx_server_script(char *buf, size_t len, const char *name)
{
	const char *root = fx_source_root();

	if (!root)
		return -ENOENT;
	if (snprintf(buf, len, "%s/tests/servers/%s", root, name) >= (int)len)
		return -ENAMETOOLONG;
	return access(buf, R_OK) == 0 ? 0 : -ENOENT;
}

int fx_tmpdir(char *buf, size_t len)
{
	const char *tmp = getenv("TMPDIR");

	if (!tmp || !*tmp)
		tmp = "/tmp";
	if (snprintf(buf, len, "%s/ferry-test-XXXXXX", tmp) >= (int)len)
		return -ENAMETOOLONG;
	return mkdtemp(buf) ? 0 : -errno;
}

static int fx_rm_one(const char *path, const struct stat *st, int type,
		     struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

int fx_rmtree(const char *dir)
{
	struct stat st;

	if (lstat(dir, &st) < 0)
		return -errno;
	if (nftw(dir, fx_rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
		return errno ? -errno : -EIO;
	return 0;
}

/* ---- processes ---- */

static void fx_reap(struct fx_proc *p, int *status)
{
	while (waitpid(p->pid, status, 0) < 0 && errno == EINTR)
		;
}

static void fx_close_out(struct fx_proc *p)
{
	if (p->out_fd >= 0)
		close(p->out_fd);
	p->out_fd = -1;
}

/* Child side of fork: only async-signal-safe calls from here to exec. */
static void fx_child(const char *path, char *const argv[], int out_fd,
		     int null_fd, pid_t parent)
{
	sigset_t none;
	int sig;

	/* Die with the test; then check it did not die before we asked. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		_exit(127);
	/* A test harness may block or ignore signals; exec keeps both, and
	 * the child must stay killable by SIGTERM. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0)
		_exit(127);
	/* The test's sockets, rings and pipes must not live on in the
	 * server: a copied socket would keep connections from closing. */
	if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
		for (int fd = 3; fd < 65536; fd++)
			close(fd);
	execv(path, argv);
	_exit(127);
}

/* Parse "READY <port> [<dir>]". */
static int fx_parse_ready(struct fx_proc *p, const char *line)
{
	char dir[sizeof(p->dir)];
	int port, n;

	dir[0] = '\0';
	n = sscanf(line, "READY %d %4095s", &port, dir);
	if (n < 1 || port <= 0 || port > 65535) {
		fx_seterr(p, "malformed READY line: \"%s\"", line);
		return -EIO;
	}
	p->port = port;
	snprintf(p->dir, sizeof(p->dir), "%s", dir);
	return 0;
}

/* Read the child's stdout until a READY line, EOF, or the deadline. */
static int fx_wait_ready(struct fx_proc *p)
{
	char buf[8192];
	size_t used = 0;
	int64_t deadline = fx_now_ms() + FX_READY_TIMEOUT_MS;

	for (;;) {
		struct pollfd pfd = { .fd = p->out_fd, .events = POLLIN };
		int64_t left = deadline - fx_now_ms();
		char *nl;
		ssize_t n;
		int rc;

		while ((nl = memchr(buf, '\n', used)) != NULL) {
			*nl = '\0';
			if (strncmp(buf, "READY ", 6) == 0)
				return fx_parse_ready(p, buf);
			used -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, used);
		}
		if (used == sizeof(buf) - 1)
			used = 0;	/* an absurd line: drop it */
		if (left <= 0) {
			fx_seterr(p, "no READY within %d ms",
				  FX_READY_TIMEOUT_MS);
			return -ETIMEDOUT;
		}
		rc = poll(&pfd, 1, (int)left);
		if (rc < 0 && errno != EINTR)
			return -errno;
		if (rc <= 0)
			continue;
		n = read(p->out_fd, buf + used, sizeof(buf) - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;	/* the child exited (or closed stdout) */
		used += (size_t)n;
	}
}

/* Kill and reap a child that failed to start; map its exit to a code. */
static int fx_abort_start(struct fx_proc *p, int rc)
{
	int status = 0;
	int64_t deadline = fx_now_ms() + 1000;

	if (rc == -EPIPE) {
		/* EOF: the child is exiting; give it a moment to do so. */
		while (waitpid(p->pid, &status, WNOHANG) == 0) {
			if (fx_now_ms() > deadline) {
				kill(p->pid, SIGKILL);
				fx_reap(p, &status);
				break;
			}
			fx_sleep_ms(5);
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
			fx_seterr(p, "fixture says it cannot run here "
				  "(exit 77; see stderr)");
			rc = FX_SKIP;
		} else {
			fx_seterr(p, "fixture exited before READY (%s %d)",
				  WIFEXITED(status) ? "status" : "signal",
				  WIFEXITED(status) ? WEXITSTATUS(status)
						    : WTERMSIG(status));
			rc = -EIO;
		}
	} else {
		kill(p->pid, SIGKILL);
		fx_reap(p, &status);
	}
	fx_close_out(p);
	p->pid = -1;
	return rc;
}

int fx_start(struct fx_proc *p, const char *const argv[])
{
	char path[PATH_MAX];
	int pipefd[2], null_fd, rc;
	pid_t parent = getpid();

	p->pid = -1;
	p->port = 0;
	p->out_fd = -1;
	p->dir[0] = '\0';
	p->err[0] = '\0';
	if (!argv || !argv[0]) {
		fx_seterr(p, "empty argv");
		return -EINVAL;
	}
	if (fx_which(argv[0], path, sizeof(path)) < 0) {
		fx_seterr(p, "%s: not found", argv[0]);
		return FX_SKIP;
	}
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0)
		return -errno;
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		rc = -errno;
		close(null_fd);
		return rc;
	}
	p->pid = fork();
	if (p->pid == 0)
		fx_child(path, (char *const *)argv, pipefd[1], null_fd, parent);
	rc = p->pid < 0 ? -errno : 0;
	close(pipefd[1]);
	close(null_fd);
	if (rc < 0) {
		close(pipefd[0]);
		p->pid = -1;
		fx_seterr(p, "fork: %s", strerror(-rc));
		return rc;
	}
	p->out_fd = pipefd[0];
	rc = fx_wait_ready(p);
	if (rc < 0)
		return fx_abort_start(p, rc);
	return 0;
}

void fx_stop(struct fx_proc *p)
{
	int64_t deadline = fx_now_ms() + FX_STOP_GRACE_MS;
	int status, killed = 0;
	pid_t r;

	if (p->pid <= 0) {
		fx_close_out(p);
		return;
	}
	kill(p->pid, SIGTERM);
	while ((r = waitpid(p->pid, &status, WNOHANG)) == 0) {
		if (fx_now_ms() > deadline) {
			kill(p->pid, SIGKILL);
			fx_reap(p, &status);
			killed = 1;
			break;
		}
		fx_sleep_ms(5);
	}
	/* Killed servers could not clean up after themselves. */
	if (killed && p->dir[0])
		fx_rmtree(p->dir);
	fx_close_out(p);
	p->pid = -1;
}

int fx_python_start(struct fx_proc *p, const char *script,
		    const char *const args[])
{
	const char *argv[FX_MAX_ARGS];
	char path[PATH_MAX], py[PATH_MAX];
	int n = 0, rc;

	p->pid = -1;
	p->out_fd = -1;
	if (fx_which("python3", py, sizeof(py)) < 0) {
		fx_seterr(p, "python3 not installed");
		return FX_SKIP;
	}
	rc = fx_server_script(path, sizeof(path), script);
	if (rc < 0) {
		fx_seterr(p, "cannot find tests/servers/%s (source root %s)",
			  script, fx_source_root() ? fx_source_root() : "?");
		return rc;
	}
	argv[n++] = py;
	argv[n++] = path;
	for (; args && *args; args++) {
		if (n == FX_MAX_ARGS - 1) {
			fx_seterr(p, "too many arguments");
			return -E2BIG;
		}
		argv[n++] = *args;
	}
	argv[n] = NULL;
	return fx_start(p, argv);
}

static int fx_nginx_installed(void)
{
	char path[PATH_MAX];
	const char *env = getenv("FERRY_NGINX");

	if (env && *env)
		return access(env, X_OK) == 0;
	return fx_which("nginx", path, sizeof(path)) == 0 ||
	       access("/usr/sbin/nginx", X_OK) == 0;
}

int fx_nginx_start_args(struct fx_proc *p, const char *const args[])
{
	int rc;

	if (!fx_nginx_installed()) {
		p->pid = -1;
		p->out_fd = -1;
		fx_seterr(p, "nginx not installed (apt install nginx-light)");
		return FX_SKIP;
	}
	rc = fx_python_start(p, "nginx.py", args);
	if (rc != 0 && !p->err[0])
		fx_seterr(p, "nginx.py: %s", strerror(-rc));
	return rc;
}

int fx_nginx_start(struct fx_proc *p)
{
	return fx_nginx_start_args(p, NULL);
}

int fx_misbehave_start(struct fx_proc *p, const char *mode,
		       const char *extra_arg)
{
	const char *args[] = { "--mode", mode, extra_arg, NULL };

	return fx_python_start(p, "misbehave.py", args);
}

/* ---- nginx log and manifest ---- */

static FILE *fx_open_in(const struct fx_proc *p, const char *name)
{
	char path[PATH_MAX];

	if (!p->dir[0]) {
		errno = EINVAL;
		return NULL;
	}
	if (snprintf(path, sizeof(path), "%s/%s", p->dir, name) >=
	    (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	return fopen(path, "re");
}

static int fx_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Read access.log: the number of lines, and if conns is non-NULL the
 * number of distinct connection ids (first field).
 */
static int fx_scan_log(const struct fx_proc *p, int *conns)
{
	FILE *f = fx_open_in(p, "access.log");
	uint64_t *ids = NULL, *grown;
	size_t n = 0, cap = 0, i;
	char *line = NULL;
	size_t linecap = 0;
	int rc = 0, distinct = 0;

	if (!f)
		return -errno;
	while (getline(&line, &linecap, f) > 0) {
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			grown = realloc(ids, cap * sizeof(*ids));
			if (!grown) {
				rc = -ENOMEM;
				break;
			}
			ids = grown;
		}
		ids[n++] = strtoull(line, NULL, 10);
	}
	free(line);
	fclose(f);
	if (rc == 0 && conns) {
		qsort(ids, n, sizeof(*ids), fx_cmp_u64);
		for (i = 0; i < n; i++)
			distinct += i == 0 || ids[i] != ids[i - 1];
		*conns = distinct;
	}
	free(ids);
	return rc < 0 ? rc : (int)n;
}

int fx_nginx_count_requests(const struct fx_proc *nginx)
{
	return fx_scan_log(nginx, NULL);
}

int fx_count_connections(const struct fx_proc *nginx)
{
	int conns = 0, rc = fx_scan_log(nginx, &conns);

	return rc < 0 ? rc : conns;
}

int fx_nginx_wait_requests(const struct fx_proc *nginx, int n,
			   int timeout_ms)
{
	int64_t deadline = fx_now_ms() + timeout_ms;
	int got;

	for (;;) {
		got = fx_nginx_count_requests(nginx);
		if (got < 0 || got >= n)
			return got;
		if (fx_now_ms() > deadline)
			return -ETIMEDOUT;
		fx_sleep_ms(5);
	}
}

int fx_manifest_get(const struct fx_proc *nginx, const char *name,
		    size_t *size, uint64_t *fnv)
{
	FILE *f = fx_open_in(nginx, "manifest.txt");
	char entry[256], sha[80];
	unsigned long long sz, h;
	char line[512];
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%255s %llu %llx %79s", entry, &sz, &h,
			   sha) != 4 || strcmp(entry, name) != 0)
			continue;
		if (size)
			*size = (size_t)sz;
		if (fnv)
			*fnv = (uint64_t)h;
		rc = 0;
		break;
	}
	fclose(f);
	return rc;
}

int fx_nginx_file(const struct fx_proc *nginx, const char *name, char *buf,
		  size_t len)
{
	if (!nginx->dir[0])
		return -EINVAL;
	if (snprintf(buf, len, "%s/www/%s", nginx->dir, name) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

uint64_t fx_fnv1a64(uint64_t h, const void *buf, size_t len)
{
	const unsigned char *b = buf;

	while (len--) {
		h ^= *b++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

ssize_t fx_pattern_check(const void *buf, size_t len, uint64_t offset)
{
	const unsigned char *b = buf;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i] != (unsigned char)((offset + i) % 251))
			return (ssize_t)i;
	return -1;
}

void fx_pattern_fill(void *buf, size_t len, uint64_t offset)
{
	unsigned char *b = buf;

	for (size_t i = 0; i < len; i++)
		b[i] = (unsigned char)((offset + i) % 251);
}

/* ---- raw HTTP ---- */

int fx_connect(int port, int timeout_ms)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct timeval tv = {
		.tv_sec = timeout_ms / 1000,
		.tv_usec = (timeout_ms % 1000) * 1000,
	};
	int fd, rc;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* SO_SNDTIMEO bounds connect() too on Linux. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static int fx_write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t fx_http_get(int port, const char *path, char *buf, size_t cap,
		    int timeout_ms)
{
	char req[1024];
	size_t used = 0;
	ssize_t rc = 0;
	int fd, n;

	if (cap == 0)
		return -EINVAL;
	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		     "Connection: close\r\n\r\n", path, port);
	if (n >= (int)sizeof(req))
		return -ENAMETOOLONG;
	fd = fx_connect(port, timeout_ms);
	if (fd < 0)
		return fd;
	rc = fx_write_all(fd, req, (size_t)n);
	while (rc == 0) {
		ssize_t got;

		if (used == cap - 1) {
			char extra;

			got = recv(fd, &extra, 1, 0);
			rc = got == 0 ? 0 : -EMSGSIZE;
			break;
		}
		got = recv(fd, buf + used, cap - 1 - used, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			rc = errno == EWOULDBLOCK ? -EAGAIN : -errno;
		else if (got == 0)
			break;
		else
			used += (size_t)got;
	}
	close(fd);
	buf[used] = '\0';
	return rc < 0 ? rc : (ssize_t)used;
}

int fx_http_status(const char *resp)
{
	int status;

	if (sscanf(resp, "HTTP/1.%*1[01] %3d", &status) != 1)
		return -1;
	return status;
}

const char *fx_http_body(const char *resp)
{
	const char *end = strstr(resp, "\r\n\r\n");

	return end ? end + 4 : NULL;
}
