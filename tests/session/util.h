/*
 * tests/session/util.h - helpers shared by the test_session*.c programs.
 *
 * The blocking HTTP API (ferry/session.h) is tested from the caller's side
 * only: a real runner (tests/bridge/util.h), a real nginx or misbehave.py
 * (tests/common/fixture.h), and, for what those cannot do (chosen response
 * heads, counting what the server managed to send), a small in-process
 * server: one thread with blocking sockets on 127.0.0.1.
 *
 * Order matters under the fixtures: start the peer processes first (fork
 * from the test's own thread while it is still single-threaded), then the
 * runner.
 */
#ifndef FERRY_TEST_SESSION_UTIL_H
#define FERRY_TEST_SESSION_UTIL_H

#include "../bridge/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "fixture.h"
#include "ferry/session.h"

#define ST_SEC (1000 * BT_MS)

/* What one test holds; st_down() (the suites' .fini) frees what is set. */
struct st {
	struct fx_proc ngx, bad;
	struct ferry_runner *r;
	struct ferry_session *s;
	char base[64];		/* http://127.0.0.1:<nginx port> */
	char badbase[64];	/* http://127.0.0.1:<misbehave port> */
	/* Streaming responses of the test thread: a failed assertion leaves
	 * them behind, and the runner's close waits for their streams. */
	struct ferry_response *held[8];
};

static struct st st = { .ngx = FX_PROC_INIT, .bad = FX_PROC_INIT };

static inline void st_nginx(void)
{
	int rc = fx_nginx_start(&st.ngx);

	if (rc == FX_SKIP)
		cr_skip_test("%s", st.ngx.err);
	cr_assert_eq(rc, 0, "nginx: %s", st.ngx.err);
	snprintf(st.base, sizeof(st.base), "http://127.0.0.1:%d", st.ngx.port);
}

static inline void st_misbehave(const char *mode, const char *extra)
{
	int rc;

	fx_stop(&st.bad);
	rc = fx_misbehave_start(&st.bad, mode, extra);
	if (rc == FX_SKIP)
		cr_skip_test("%s", st.bad.err);
	cr_assert_eq(rc, 0, "misbehave %s: %s", mode, st.bad.err);
	snprintf(st.badbase, sizeof(st.badbase), "http://127.0.0.1:%d",
		 st.bad.port);
}

/* Runner and session with @opts (may be NULL). */
static inline void st_session(const struct ferry_http_client_opts *opts)
{
	int rc;

	st.r = bt_runner();
	rc = ferry_session_create(st.r, opts, &st.s);
	if (rc == -EOPNOTSUPP)
		cr_skip_test("kernel lacks provided buffer rings / multishot recv");
	cr_assert_eq(rc, 0, "ferry_session_create: %s", ferry_strerrorname(rc));
	cr_assert_not_null(st.s);
	cr_assert_eq(ferry_session_runner(st.s), st.r);
}

/* Note @r (a streaming response) for st_down; returns @r. */
static inline struct ferry_response *st_hold(struct ferry_response *r)
{
	for (int i = 0; i < 8; i++)
		if (!st.held[i]) {
			st.held[i] = r;
			return r;
		}
	cr_assert_fail("st_hold: too many responses held");
	return r;
}

/* Free @r, held or not. */
static inline void st_free(struct ferry_response *r)
{
	for (int i = 0; i < 8; i++)
		if (st.held[i] == r)
			st.held[i] = NULL;
	ferry_response_free(r);
}

static inline void st_down(void)
{
	for (int i = 0; i < 8; i++) {
		ferry_response_free(st.held[i]);
		st.held[i] = NULL;
	}
	ferry_session_destroy(st.s);
	st.s = NULL;
	ferry_runner_destroy(st.r);
	st.r = NULL;
	fx_stop(&st.ngx);
	fx_stop(&st.bad);
}

/* "<base><path>" in one of a few rotating static buffers (test thread). */
static inline const char *st_url(const char *base, const char *path)
{
	static char buf[8][256];
	static unsigned i;
	char *b = buf[i++ % 8];

	snprintf(b, 256, "%s%s", base, path);
	return b;
}

static inline bool st_have_echo(void)
{
	char path[4200], line[64];
	bool yes = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/www/manifest.txt", st.ngx.dir);
	f = fopen(path, "r");
	if (!f) {
		snprintf(path, sizeof(path), "%s/manifest.txt", st.ngx.dir);
		f = fopen(path, "r");
	}
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (!strcmp(line, "echo 1\n"))
			yes = true;
	fclose(f);
	return yes;
}

/*
 * fx_fnv1a64 and fx_pattern_check over tens of MiB, without TSan's per-byte
 * instrumentation (which makes them take tens of seconds). The bytes are
 * still published to us by the stream's atomics, which TSan does see.
 */
#if defined(__SANITIZE_THREAD__)
#define ST_NO_TSAN __attribute__((no_sanitize_thread))
#else
#define ST_NO_TSAN
#endif

ST_NO_TSAN static inline uint64_t st_fnv(uint64_t h, const void *buf, size_t len)
{
	const unsigned char *b = buf;

	while (len--) {
		h ^= *b++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

ST_NO_TSAN static inline ssize_t st_pattern_check(const void *buf, size_t len,
						  uint64_t offset)
{
	const unsigned char *b = buf;
	unsigned v = (unsigned)(offset % 251);

	for (size_t i = 0; i < len; i++) {
		if (b[i] != v)
			return (ssize_t)i;
		if (++v == 251)
			v = 0;
	}
	return -1;
}

/* Resident set size of this process, in bytes. */
static inline long st_rss(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%ld %ld", &pages, &rss), 2);
	fclose(f);
	return rss * sysconf(_SC_PAGESIZE);
}

/* A port on 127.0.0.1 with nothing listening (bound then closed). */
static inline int st_closed_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* Join @t, failing the test if it takes longer than @ms (a hang). */
static inline void *st_join(pthread_t t, int ms)
{
	struct timespec ts;
	void *ret = NULL;
	int rc;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	rc = pthread_timedjoin_np(t, &ret, &ts);
	cr_assert_eq(rc, 0, "thread did not finish within %d ms (%s)", ms,
		     strerror(rc));
	return ret;
}

/* ------------------------------------------------------------------ */
/* The in-process server                                                 */

/*
 * Serves connections one after another. For each request it reads the
 * head, then either writes @head verbatim (and closes), or, when
 * @body_len > 0, writes a head with that Content-Length followed by
 * misbehave.py's pattern bytes (byte i is i % 251) in 64 KiB writes,
 * counting in @sent what the kernel took. It gives up on a connection
 * when the client goes away.
 */
struct st_srv {
	int lfd, port;
	pthread_t thread;
	atomic_bool stop;
	const char *head;
	uint64_t body_len;
	_Atomic uint64_t sent;		/* body bytes written so far */
	atomic_int conns;		/* accepted */
	atomic_int finished;		/* bodies written completely */
};

static inline bool st_srv_read_head(int fd)
{
	char buf[4096];
	size_t n = 0;

	while (n < sizeof(buf) - 1) {
		ssize_t k = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);

		if (k <= 0)
			return false;
		n += (size_t)k;
		buf[n] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			return true;
	}
	return false;
}

static inline bool st_srv_write(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		p = (const char *)p + k;
		n -= (size_t)k;
	}
	return true;
}

static inline void st_srv_body(struct st_srv *s, int fd)
{
	/* 64 KiB + 251 so any 64 KiB window at offset % 251 is a slice. */
	static unsigned char pat[65536 + 251];
	char head[160];
	uint64_t off = 0;

	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (unsigned char)(i % 251);
	snprintf(head, sizeof(head),
		 "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n"
		 "Connection: close\r\n\r\n", (unsigned long long)s->body_len);
	if (!st_srv_write(fd, head, strlen(head)))
		return;
	while (off < s->body_len && !atomic_load(&s->stop)) {
		size_t n = s->body_len - off < 65536 ? s->body_len - off : 65536;

		if (!st_srv_write(fd, pat + off % 251, n))
			return;
		off += n;
		atomic_store(&s->sent, off);
	}
	if (off == s->body_len)
		atomic_fetch_add(&s->finished, 1);
}

static inline void *st_srv_main(void *arg)
{
	struct st_srv *s = arg;

	while (!atomic_load(&s->stop)) {
		struct pollfd p = { .fd = s->lfd, .events = POLLIN };
		struct timeval tv = { .tv_sec = 10 };
		int fd;

		if (poll(&p, 1, 20) <= 0)
			continue;
		fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		atomic_fetch_add(&s->conns, 1);
		/* A stuck client must not stick the server (and the test). */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (st_srv_read_head(fd)) {
			if (s->body_len)
				st_srv_body(s, fd);
			else
				st_srv_write(fd, s->head, strlen(s->head));
		}
		shutdown(fd, SHUT_WR);
		close(fd);
	}
	return NULL;
}

static inline void st_srv_start(struct st_srv *s, const char *head,
				uint64_t body_len)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int one = 1;

	memset(s, 0, sizeof(*s));
	s->head = head;
	s->body_len = body_len;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(s->lfd, 0);
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(s->lfd, 64), 0);
	cr_assert_eq(getsockname(s->lfd, (struct sockaddr *)&a, &len), 0);
	s->port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&s->thread, NULL, st_srv_main, s), 0);
}

static inline void st_srv_stop(struct st_srv *s)
{
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	close(s->lfd);
}

#endif /* FERRY_TEST_SESSION_UTIL_H */
