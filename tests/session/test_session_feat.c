/*
 * test_session_feat.c - sessions that do what the loop-side client does
 * (issue 13): per-request connect and read timeouts, upload bodies from a
 * producer and from a file descriptor (checked by misbehave.py's
 * echo-request, which hashes what it received), the session's client
 * reached from a task on its loop, and a base URL and default headers per
 * session.
 */
#include "pattern_sha.h"
#include "util.h"

#include <bearssl.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

TestSuite(session_feat, .fini = st_down, .timeout = 90);

/* Runner and session with session options. */
static void feat_session(const struct ferry_session_opts *so)
{
	int rc;

	st.r = bt_runner();
	rc = ferry_session_create_opts(st.r, so, &st.s);
	if (rc == -EOPNOTSUPP)
		cr_skip_test("kernel lacks provided buffer rings / multishot recv");
	cr_assert_eq(rc, 0, "ferry_session_create_opts: %s",
		     ferry_strerrorname(rc));
}

static void sha_hex(const void *data, size_t n, char out[65])
{
	br_sha256_context c;
	unsigned char d[32];

	br_sha256_init(&c);
	br_sha256_update(&c, data, n);
	br_sha256_out(&c, d);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* echo-request's first line must say @framing, @size and @sha. */
static void expect_echo(struct ferry_response *r, const char *framing,
			uint64_t size, const char *sha)
{
	char want[160];
	const char *body = ferry_response_body(r, NULL);

	snprintf(want, sizeof(want), "framing=%s size=%llu sha256=%s\n",
		 framing, (unsigned long long)size, sha);
	cr_assert_eq(strncmp(body, want, strlen(want)), 0,
		     "got: %.160s\nwant: %s", body, want);
}

static void expect_result(int rc, struct ferry_response *r, int want,
			  const char *detail_part)
{
	cr_assert_eq(rc, want, "got %d %s, want %s (%s)", rc,
		     rc < 0 ? ferry_strerrorname(rc) : "",
		     ferry_strerrorname(want), ferry_response_detail(r));
	if (detail_part)
		cr_assert_not_null(strstr(ferry_response_detail(r), detail_part),
				   "detail '%s' lacks '%s'",
				   ferry_response_detail(r), detail_part);
}

/* A healthy request beside: the session still works. */
static void expect_healthy(void)
{
	struct ferry_request rq = { .url = st_url(st.badbase, "/ok") };
	struct ferry_response *r;
	int rc = ferry_session_request(st.s, &rq, &r);

	cr_assert_eq(rc, 200, "healthy request: %d (%s)", rc,
		     ferry_response_detail(r));
	ferry_response_free(r);
}

/* ------------------------------------------------------------------ */
/* Timeouts per request                                                  */

Test(session_feat, read_timeout_per_request)
{
	struct ferry_request rq = { .read_timeout_ms = 200 };
	struct ferry_response *r;
	int rc;

	st_misbehave("no-response", NULL);
	st_session(NULL);	/* the client's read timeout: 30 s */
	rq.url = st_url(st.badbase, "/");
	rc = ferry_session_request(st.s, &rq, &r);
	expect_result(rc, r, FERRY_EREAD_TIMEOUT, "200 ms");
	ferry_response_free(r);
}

Test(session_feat, connect_timeout_per_request_tls_handshake)
{
	struct ferry_http_client_opts o = { .tls_insecure_skip_verify = true };
	struct ferry_request rq = { .connect_timeout_ms = 200 };
	struct ferry_response *r;
	char url[64];
	int rc;

	/* A TCP peer that never answers the ClientHello. */
	st_misbehave("no-response", NULL);
	st_session(&o);		/* the client's connect timeout: 10 s */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/", st.bad.port);
	rq.url = url;
	rc = ferry_session_request(st.s, &rq, &r);
	expect_result(rc, r, FERRY_ECONNECT_TIMEOUT,
		      "TLS handshake not done within 200 ms");
	ferry_response_free(r);
}

Test(session_feat, connect_timeout_per_request_tcp)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct ferry_request rq = { .connect_timeout_ms = 200 };
	struct ferry_response *r;
	socklen_t len = sizeof(a);
	int lfd, fill[4], rc;
	char url[64];

	/* A listener whose accept queue is full drops SYNs: connect hangs. */
	st_session(NULL);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(lfd, 0), 0);
	getsockname(lfd, (struct sockaddr *)&a, &len);
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&a, sizeof(a));
	}
	bt_sleep_ms(50);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
	rq.url = url;
	rc = ferry_session_request(st.s, &rq, &r);
	expect_result(rc, r, FERRY_ECONNECT_TIMEOUT, "within 200 ms");
	ferry_response_free(r);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
}

/* ------------------------------------------------------------------ */
/* Upload bodies                                                         */

/* A producer of @total pattern bytes in pieces of varying size. */
struct prod {
	uint64_t total, off;
	unsigned calls;
	uint64_t fail_at;	/* return fail_err once off reaches it */
	int fail_err;
	/* Blocks in its first call until the test opens the gate. */
	bool gated;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool open, waiting;
	pid_t tid;		/* the thread of its last call */
};

static ssize_t prod_read(void *ctx, void *buf, size_t cap)
{
	struct prod *p = ctx;
	size_t n = (size_t)(p->calls++ % 7 + 1) * 1000 + 13;

	p->tid = bt_gettid();
	if (p->gated) {
		pthread_mutex_lock(&p->mu);
		p->waiting = true;
		pthread_cond_broadcast(&p->cv);
		while (!p->open)
			pthread_cond_wait(&p->cv, &p->mu);
		pthread_mutex_unlock(&p->mu);
	}
	if (p->fail_err && p->off >= p->fail_at)
		return p->fail_err;
	if (n > cap)
		n = cap;
	if (n > p->total - p->off)
		n = (size_t)(p->total - p->off);
	fx_pattern_fill(buf, n, p->off);
	p->off += n;
	return (ssize_t)n;
}

static void prod_init(struct prod *p, uint64_t total)
{
	memset(p, 0, sizeof(*p));
	p->total = total;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
}

static void upload_producer(uint64_t total, bool with_length)
{
	struct prod p;
	struct ferry_request rq = { .method = "PUT", .body_read = prod_read,
				    .body_read_ctx = &p };
	struct ferry_response *r;
	char sha[65];
	int rc;

	prod_init(&p, total);
	st_misbehave("echo-request", NULL);
	st_session(NULL);
	rq.url = st_url(st.badbase, "/up");
	rq.body_size = with_length ? total : 0;
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	fx_pattern_sha256(total, sha);
	expect_echo(r, with_length ? "length" : "chunked", total, sha);
	cr_assert_neq(p.tid, bt_gettid(), "the producer ran on the caller's thread");
	cr_assert_neq(p.tid, bt_loop_tid(st.r), "the producer ran on the loop");
	ferry_response_free(r);
}

Test(session_feat, upload_from_producer_chunked)
{
	upload_producer((1u << 20) + 17, false);
}

Test(session_feat, upload_from_producer_with_length)
{
	upload_producer((1u << 20) + 17, true);
}

Test(session_feat, upload_from_producer_empty)
{
	upload_producer(0, false);
}

/* A temp file of @n pattern bytes, opened for reading; its path in @path. */
static int pattern_file(char *path, size_t len, uint64_t n)
{
	unsigned char buf[8192];
	uint64_t off = 0;
	int fd;

	cr_assert_eq(fx_tmpdir(path, len), 0);
	strcat(path, "/");
	cr_assert_eq(fx_rmtree(path), 0);
	cr_assert_eq(mkdir(path, 0700), 0);
	strcat(path, "body.bin");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	while (off < n) {
		size_t k = n - off < sizeof(buf) ? (size_t)(n - off) : sizeof(buf);

		fx_pattern_fill(buf, k, off);
		cr_assert_eq(write(fd, buf, k), (ssize_t)k);
		off += k;
	}
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static void rm_pattern_file(char *path)
{
	*strrchr(path, '/') = '\0';
	fx_rmtree(path);
}

Test(session_feat, upload_from_file_with_length)
{
	const uint64_t n = 3 * (1u << 20) + 5;
	struct ferry_request rq = { .method = "PUT", .body_from_fd = true,
				    .body_size = n };
	struct ferry_response *r;
	char path[4200], sha[65];
	int rc;

	st_misbehave("echo-request", NULL);
	st_session(NULL);
	rq.body_fd = pattern_file(path, sizeof(path), n);
	rq.url = st_url(st.badbase, "/file");
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	fx_pattern_sha256(n, sha);
	expect_echo(r, "length", n, sha);
	ferry_response_free(r);
	close(rq.body_fd);
	rm_pattern_file(path);
}

Test(session_feat, upload_from_file_prefix_and_position)
{
	/* From the fd's current position, no further than body_size. */
	const uint64_t n = 200000;
	struct ferry_request rq = { .method = "POST", .body_from_fd = true,
				    .body_size = 1000, .body_chunk = 300 };
	struct ferry_response *r;
	unsigned char want[1000];
	char path[4200], sha[65];
	int rc;

	st_misbehave("echo-request", NULL);
	st_session(NULL);
	rq.body_fd = pattern_file(path, sizeof(path), n);
	cr_assert_eq(lseek(rq.body_fd, 500, SEEK_SET), 500);
	rq.url = st_url(st.badbase, "/part");
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	fx_pattern_fill(want, sizeof(want), 500);
	sha_hex(want, sizeof(want), sha);
	expect_echo(r, "length", 1000, sha);
	ferry_response_free(r);
	close(rq.body_fd);
	rm_pattern_file(path);
}

struct pipe_writer {
	int fd;
	uint64_t n;
};

static void *pipe_write(void *arg)
{
	struct pipe_writer *w = arg;
	unsigned char buf[3000];
	uint64_t off = 0;

	while (off < w->n) {
		size_t k = w->n - off < sizeof(buf) ? (size_t)(w->n - off)
						    : sizeof(buf);
		ssize_t m;

		fx_pattern_fill(buf, k, off);
		m = write(w->fd, buf, k);
		if (m <= 0)
			break;
		off += (uint64_t)m;
	}
	close(w->fd);
	return NULL;
}

Test(session_feat, upload_from_pipe_chunked)
{
	const uint64_t n = (2u << 20) + 333;
	struct ferry_request rq = { .method = "PUT", .body_from_fd = true };
	struct pipe_writer w = { .n = n };
	struct ferry_response *r;
	pthread_t t;
	char sha[65];
	int p[2], rc;

	st_misbehave("echo-request", NULL);
	st_session(NULL);
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	w.fd = p[1];
	cr_assert_eq(pthread_create(&t, NULL, pipe_write, &w), 0);
	rq.body_fd = p[0];
	rq.url = st_url(st.badbase, "/pipe");
	rc = ferry_session_request(st.s, &rq, &r);
	st_join(t, 30000);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	fx_pattern_sha256(n, sha);
	expect_echo(r, "chunked", n, sha);
	ferry_response_free(r);
	close(p[0]);
}

Test(session_feat, producer_error_aborts_the_request)
{
	struct prod p;
	struct ferry_request rq = { .method = "PUT", .body_read = prod_read,
				    .body_read_ctx = &p };
	struct ferry_response *r;
	int rc;

	prod_init(&p, 1u << 20);
	p.fail_at = 100000;
	p.fail_err = -EACCES;
	st_misbehave("echo-request", NULL);
	st_session(NULL);
	rq.url = st_url(st.badbase, "/up");
	rc = ferry_session_request(st.s, &rq, &r);
	expect_result(rc, r, -EACCES, "request body: the producer returned EACCES");
	ferry_response_free(r);
	expect_healthy();
}

Test(session_feat, producer_short_of_its_length_fails)
{
	struct prod p;
	struct ferry_request rq = { .method = "PUT", .body_read = prod_read,
				    .body_read_ctx = &p, .body_size = 100000 };
	struct ferry_response *r;
	int rc;

	prod_init(&p, 5000);
	st_misbehave("echo-request", NULL);
	st_session(NULL);
	rq.url = st_url(st.badbase, "/up");
	rc = ferry_session_request(st.s, &rq, &r);
	expect_result(rc, r, FERRY_EINVAL, "ended after 5000 of 100000 bytes");
	ferry_response_free(r);
	expect_healthy();
}

Test(session_feat, fd_read_error_aborts_the_request)
{
	struct ferry_request rq = { .method = "PUT", .body_from_fd = true };
	struct ferry_response *r;
	char want[64];
	int rc;

	st_misbehave("echo-request", NULL);
	st_session(NULL);
	/* read(2) of a directory fails with EISDIR. */
	rq.body_fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(rq.body_fd, 0);
	rq.url = st_url(st.badbase, "/up");
	rc = ferry_session_request(st.s, &rq, &r);
	snprintf(want, sizeof(want), "request body: read from fd %d: EISDIR",
		 rq.body_fd);
	expect_result(rc, r, -EISDIR, want);
	ferry_response_free(r);
	close(rq.body_fd);
	expect_healthy();
}

struct get_arg {
	const char *url;
	int rc;
};

static void *get_thread(void *arg)
{
	struct get_arg *g = arg;
	struct ferry_response *r;

	g->rc = ferry_session_get(st.s, g->url, &r);
	ferry_response_free(r);
	return NULL;
}

/* A producer blocked in its call holds a worker thread, not the loop:
 * another request on the session completes meanwhile. */
Test(session_feat, blocking_producer_leaves_the_loop_free)
{
	struct prod p;
	struct ferry_request rq = { .method = "PUT", .body_read = prod_read,
				    .body_read_ctx = &p };
	struct get_arg g;
	struct ferry_response *r;
	pthread_t t;
	char sha[65];
	int rc;

	prod_init(&p, 300000);
	p.gated = true;
	st_misbehave("echo-request", NULL);
	st_session(NULL);
	rq.url = st_url(st.badbase, "/up");
	cr_assert_eq(ferry_session_submit(st.s, &rq, &r), 0);
	pthread_mutex_lock(&p.mu);
	while (!p.waiting)
		pthread_cond_wait(&p.cv, &p.mu);
	pthread_mutex_unlock(&p.mu);
	/* The producer sits in its first call now. */
	g.url = st_url(st.badbase, "/other");
	cr_assert_eq(pthread_create(&t, NULL, get_thread, &g), 0);
	st_join(t, 30000);
	cr_assert_eq(g.rc, 200);
	cr_assert_eq(ferry_response_wait(r, 0), FERRY_ETIMEDOUT,
		     "the upload ended while its producer was blocked");
	pthread_mutex_lock(&p.mu);
	p.open = true;
	pthread_cond_broadcast(&p.cv);
	pthread_mutex_unlock(&p.mu);
	rc = ferry_response_wait(r, -1);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	fx_pattern_sha256(300000, sha);
	expect_echo(r, "chunked", 300000, sha);
	ferry_response_free(r);
}

/* Closing the session ends the upload at once, while its producer still
 * blocks; the producer's call returns later, into a body nobody waits
 * for (freed then: ASan checks). */
Test(session_feat, session_close_while_the_producer_blocks)
{
	struct prod p;
	struct ferry_request rq = { .method = "PUT", .body_read = prod_read,
				    .body_read_ctx = &p };
	struct ferry_response *r;
	int rc;

	prod_init(&p, 300000);
	p.gated = true;
	st_misbehave("echo-request", NULL);
	st_session(NULL);
	rq.url = st_url(st.badbase, "/up");
	cr_assert_eq(ferry_session_submit(st.s, &rq, &r), 0);
	pthread_mutex_lock(&p.mu);
	while (!p.waiting)
		pthread_cond_wait(&p.cv, &p.mu);
	pthread_mutex_unlock(&p.mu);
	ferry_session_close(st.s);
	rc = ferry_response_wait(r, -1);
	expect_result(rc, r, FERRY_ECLOSED, "the session was closed");
	ferry_response_free(r);
	pthread_mutex_lock(&p.mu);
	p.open = true;
	pthread_cond_broadcast(&p.cv);
	pthread_mutex_unlock(&p.mu);
	/* The producer's call may still be running, on p (this frame):
	 * destroying the runner joins its offload pool. */
	ferry_session_destroy(st.s);
	st.s = NULL;
	ferry_runner_destroy(st.r);
	st.r = NULL;
}

Test(session_feat, body_sources_are_checked)
{
	struct prod p;
	struct ferry_request rq = { .method = "PUT", .body = "x", .body_len = 1,
				    .body_read = prod_read, .body_read_ctx = &p };
	struct ferry_response *r;
	int rc;

	prod_init(&p, 10);
	st_session(NULL);
	rq.url = "http://127.0.0.1:1/";
	rc = ferry_session_request(st.s, &rq, &r);
	expect_result(rc, r, FERRY_EINVAL, "more than one body");
	ferry_response_free(r);
	rq.body = NULL;
	rq.body_len = 0;
	rq.body_from_fd = true;
	rq.body_fd = 0;
	rc = ferry_session_request(st.s, &rq, &r);
	expect_result(rc, r, FERRY_EINVAL, "more than one body");
	ferry_response_free(r);
	rq.body_read = NULL;
	rq.body_fd = -1;
	rc = ferry_session_request(st.s, &rq, &r);
	expect_result(rc, r, FERRY_EINVAL, "negative body_fd");
	ferry_response_free(r);
}

/* ------------------------------------------------------------------ */
/* The session's client, from a task on its loop                         */

/* Two GETs one after the other on the session's own client. */
struct compose {
	struct ferry_task t;
	struct ferry_session *s;
	struct ferry_url url;
	struct ferry_http_client *client;
	int step, status;
	uint64_t opened_before, opened_after, started_after;
	bool off_loop_null;
};

static int compose_next(struct compose *c);

static void compose_done(void *ctx, struct ferry_http_request *req,
			 int result, const char *detail)
{
	struct compose *c = ctx;

	if (result != 200 || ++c->step == 2 || compose_next(c) < 0) {
		struct ferry_http_client_stats st_;

		ferry_http_client_stats(c->client, &st_);
		c->opened_after = st_.conns_opened;
		c->started_after = st_.requests_started;
		c->status = result;
		ferry_task_complete(&c->t, result < 0 ? result : 0);
	}
}

static const struct ferry_http_callbacks compose_cb = {
	.on_done = compose_done,
};

static int compose_next(struct compose *c)
{
	struct ferry_http_request_opts o = { .url = &c->url, .cb = &compose_cb,
					     .ctx = c };
	struct ferry_http_request *req;

	return ferry_http_request_start(c->client, &o, &req, NULL, 0);
}

static void compose_start(struct ferry_task *t)
{
	struct compose *c = container_of(t, struct compose, t);
	struct ferry_http_client_stats st_;

	c->client = ferry_session_client(c->s);
	if (!c->client) {
		ferry_task_complete(t, FERRY_ECLOSED);
		return;
	}
	ferry_http_client_stats(c->client, &st_);
	c->opened_before = st_.conns_opened;
	if (compose_next(c) < 0)
		ferry_task_complete(t, FERRY_EINVAL);
}

Test(session_feat, session_client_from_a_task)
{
	struct compose c = { .t.start = compose_start };
	struct ferry_response *r;
	const char *u;
	int rc;

	st_misbehave("count", NULL);
	st_session(NULL);
	cr_assert_null(ferry_session_client(st.s), "off the loop: NULL");
	cr_assert_null(ferry_session_client(NULL));
	u = st_url(st.badbase, "/a");
	/* A blocking request first: its connection goes to the pool. */
	rc = ferry_session_get(st.s, u, &r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	ferry_response_free(r);
	c.s = st.s;
	cr_assert_eq(ferry_url_parse(&c.url, u, strlen(u), NULL, 0), 0);
	rc = ferry_call(st.r, &c.t);
	cr_assert_eq(rc, 0, "%s", ferry_strerrorname(rc));
	cr_assert_eq(c.status, 200);
	/* Same pool: the task's two requests reused the session's
	 * connection, and the client counts all three requests. */
	cr_assert_eq(c.opened_before, 1);
	cr_assert_eq(c.opened_after, 1);
	cr_assert_eq(c.started_after, 3);
	/* Closed: the task gets NULL. */
	ferry_session_close(st.s);
	rc = ferry_call(st.r, &c.t);
	cr_assert_eq(rc, FERRY_ECLOSED);
	ferry_url_free(&c.url);
}

/* ------------------------------------------------------------------ */
/* Base URL and default headers                                          */

/* GET @ref and return the request line echo-request saw (static). */
static const char *request_line(const char *ref, int *rc_out)
{
	static char line[512];
	struct ferry_response *r;
	const char *body, *nl;
	int rc;

	rc = ferry_session_get(st.s, ref, &r);
	*rc_out = rc;
	line[0] = '\0';
	if (rc == 200) {
		body = strchr(ferry_response_body(r, NULL), '\n') + 1;
		nl = strstr(body, "\r\n");
		snprintf(line, sizeof(line), "%.*s", (int)(nl - body), body);
	} else {
		snprintf(line, sizeof(line), "error %s: %s",
			 ferry_strerrorname(rc), ferry_response_detail(r));
	}
	ferry_response_free(r);
	return line;
}

Test(session_feat, base_url_resolves_relative_references)
{
	static const struct { const char *ref, *line; } cases[] = {
		{ "users", "GET /api/v1/users HTTP/1.1" },
		{ "users/7?x=1", "GET /api/v1/users/7?x=1 HTTP/1.1" },
		{ "/root", "GET /root HTTP/1.1" },
		{ "../x", "GET /api/x HTTP/1.1" },
		{ "./a/../b", "GET /api/v1/b HTTP/1.1" },
		{ "?q=1", "GET /api/v1/?q=1 HTTP/1.1" },
		{ "", "GET /api/v1/ HTTP/1.1" },
		{ "#frag", "GET /api/v1/ HTTP/1.1" },
	};
	struct ferry_session_opts so = { 0 };
	struct fx_proc other = FX_PROC_INIT;
	char base[96], abs[96], want[96];
	const char *line;
	int rc;

	cr_assert_eq(fx_misbehave_start(&other, "echo-request", NULL), 0, "%s",
		     other.err);
	st_misbehave("echo-request", NULL);
	snprintf(base, sizeof(base), "%s/api/v1/", st.badbase);
	so.base_url = base;
	feat_session(&so);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		line = request_line(cases[i].ref, &rc);
		cr_expect_str_eq(line, cases[i].line, "ref '%s'", cases[i].ref);
	}
	/* An absolute URL stands as it is: another server. */
	snprintf(abs, sizeof(abs), "http://127.0.0.1:%d/abs", other.port);
	line = request_line(abs, &rc);
	cr_expect_str_eq(line, "GET /abs HTTP/1.1");
	/* Scheme-relative: the base's scheme, another authority. */
	snprintf(abs, sizeof(abs), "//127.0.0.1:%d/sr", other.port);
	line = request_line(abs, &rc);
	cr_expect_str_eq(line, "GET /sr HTTP/1.1");
	/* The response's URL is the resolved one. */
	{
		struct ferry_response *r;

		cr_assert_eq(ferry_session_get(st.s, "users", &r), 200);
		snprintf(want, sizeof(want), "%s/api/v1/users", st.badbase);
		cr_expect_str_eq(ferry_response_url(r), want);
		ferry_response_free(r);
		/* A reference that cannot resolve: FERRY_EURL before I/O,
		 * and the response's URL is the one given. */
		rc = ferry_session_get(st.s, "ftp://x/y", &r);
		expect_result(rc, r, FERRY_EURL, "ftp");
		cr_expect_str_eq(ferry_response_url(r), "ftp://x/y");
		ferry_response_free(r);
	}
	fx_stop(&other);
}

Test(session_feat, base_url_without_trailing_slash)
{
	struct ferry_session_opts so = { 0 };
	char base[96];
	int rc;

	st_misbehave("echo-request", NULL);
	snprintf(base, sizeof(base), "%s/api", st.badbase);
	so.base_url = base;
	feat_session(&so);
	cr_expect_str_eq(request_line("users", &rc), "GET /users HTTP/1.1");
}

Test(session_feat, no_base_url_relative_is_refused)
{
	struct ferry_response *r;
	int rc;

	st_session(NULL);
	rc = ferry_session_get(st.s, "users", &r);
	expect_result(rc, r, FERRY_EURL, NULL);
	ferry_response_free(r);
}

/* The request head echo-request saw, after its first line (static). */
static const char *echoed_head(const struct ferry_request *rq, int *rc_out)
{
	static char head[4096];
	struct ferry_response *r;
	int rc = ferry_session_request(st.s, rq, &r);

	*rc_out = rc;
	head[0] = '\0';
	if (rc == 200)
		/* The last field has its CRLF too, for strstr below. */
		snprintf(head, sizeof(head), "%s\r\n",
			 strchr(ferry_response_body(r, NULL), '\n') + 1);
	ferry_response_free(r);
	return head;
}

Test(session_feat, default_headers_merged_and_overridden)
{
	static const struct ferry_http_header defs[] = {
		FERRY_HTTP_HEADER("X-Api-Key", "k1"),
		FERRY_HTTP_HEADER("Accept", "application/json"),
		FERRY_HTTP_HEADER("X-Dup", "d1"),
		FERRY_HTTP_HEADER("x-dup", "d2"),
	};
	static const struct ferry_http_header mine[] = {
		FERRY_HTTP_HEADER("X-DUP", "mine"),
		FERRY_HTTP_HEADER("X-Extra", "e"),
	};
	struct ferry_session_opts so = { .headers = defs, .nheaders = 4 };
	struct ferry_request rq = { 0 };
	const char *h, *a, *b;
	int rc;

	st_misbehave("echo-request", NULL);
	so.base_url = st.badbase;
	feat_session(&so);
	/* Defaults alone. */
	rq.url = "/d";
	h = echoed_head(&rq, &rc);
	cr_assert_eq(rc, 200);
	cr_expect_not_null(strstr(h, "\r\nX-Api-Key: k1\r\n"), "%s", h);
	cr_expect_not_null(strstr(h, "\r\nAccept: application/json\r\n"), "%s", h);
	cr_expect_not_null(strstr(h, "\r\nX-Dup: d1\r\n"), "%s", h);
	cr_expect_not_null(strstr(h, "\r\nx-dup: d2\r\n"), "%s", h);
	/* A request header replaces every default of its name, and the
	 * defaults come first. */
	rq.headers = mine;
	rq.nheaders = 2;
	h = echoed_head(&rq, &rc);
	cr_assert_eq(rc, 200);
	cr_expect_null(strstr(h, "d1"), "%s", h);
	cr_expect_null(strstr(h, "d2"), "%s", h);
	a = strstr(h, "\r\nX-Api-Key: k1\r\n");
	b = strstr(h, "\r\nX-DUP: mine\r\n");
	cr_expect(a && b && a < b, "%s", h);
	cr_expect_not_null(strstr(h, "\r\nX-Extra: e\r\n"), "%s", h);
	/* The defaults were not changed by that request. */
	rq.headers = NULL;
	rq.nheaders = 0;
	h = echoed_head(&rq, &rc);
	cr_expect_not_null(strstr(h, "\r\nX-Dup: d1\r\n"), "%s", h);
}

Test(session_feat, bad_session_options_are_refused)
{
	static const struct ferry_http_header cr_[] = {
		FERRY_HTTP_HEADER("X-A", "a\r\nX-Injected: 1") };
	static const struct ferry_http_header sp_[] = {
		FERRY_HTTP_HEADER("X A", "a") };
	static const struct ferry_http_header cl_[] = {
		FERRY_HTTP_HEADER("content-length", "5") };
	struct ferry_http_header nul_ = { "X-A", 3, NULL, 0 };
	struct ferry_session_opts so = { 0 };
	struct ferry_session *s = (void *)1;

	st.r = bt_runner();
	so.base_url = "ftp://h/";
	cr_assert_eq(ferry_session_create_opts(st.r, &so, &s), FERRY_EURL);
	cr_assert_null(s);
	so.base_url = "api/v1/";
	cr_assert_eq(ferry_session_create_opts(st.r, &so, &s), FERRY_EURL);
	so.base_url = NULL;
	so.headers = cr_;
	so.nheaders = 1;
	cr_assert_eq(ferry_session_create_opts(st.r, &so, &s), FERRY_EINVAL);
	so.headers = sp_;
	cr_assert_eq(ferry_session_create_opts(st.r, &so, &s), FERRY_EINVAL);
	so.headers = cl_;
	cr_assert_eq(ferry_session_create_opts(st.r, &so, &s), FERRY_EINVAL);
	so.headers = &nul_;
	cr_assert_eq(ferry_session_create_opts(st.r, &so, &s), FERRY_EINVAL);
	so.headers = NULL;
	cr_assert_eq(ferry_session_create_opts(st.r, &so, &s), FERRY_EINVAL);
	cr_assert_eq(ferry_session_create_opts(NULL, &so, &s), FERRY_EINVAL);
	cr_assert_eq(ferry_session_create_opts(st.r, NULL, NULL), FERRY_EINVAL);
	/* NULL options: a plain session. */
	cr_assert_eq(ferry_session_create_opts(st.r, NULL, &s), 0);
	ferry_session_destroy(s);
}
