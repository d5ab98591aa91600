/*
 * test_client_body.c - the loop-side client's side of issue 13: a
 * connect timeout per request, and request bodies from a file descriptor
 * or a blocking producer (ferry/body.h), checked by misbehave.py's
 * echo-request (framing, size and SHA-256 of what it received); their
 * errors, and closing a body whose read or producer call is in flight.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <bearssl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ferry/body.h"
#include "ferry/timer.h"
#include "fixture.h"
#include "pattern_sha.h"
#include "test_client_util.h"

static struct fx_proc bad = FX_PROC_INIT;
static struct tc t;

static void down(void)
{
	if (t.loop)
		tc_teardown(&t);
	memset(&t, 0, sizeof(t));
	fx_stop(&bad);
}

TestSuite(client_body, .fini = down, .timeout = 60);

static void up(const char *mode, const struct ferry_http_client_opts *opts)
{
	int rc = fx_misbehave_start(&bad, mode, NULL);

	if (rc == FX_SKIP)
		cr_skip_test("%s", bad.err);
	cr_assert_eq(rc, 0, "%s", bad.err);
	tc_setup(&t, opts);
}

static const char *bu(const char *scheme, const char *path)
{
	static char buf[4][128];
	static unsigned i;
	char *b = buf[i++ % 4];

	snprintf(b, 128, "%s://127.0.0.1:%d%s", scheme, bad.port, path);
	return b;
}

/* ------------------------------------------------------------------ */
/* Connect timeout per request                                           */

Test(client_body, connect_timeout_per_request)
{
	struct ferry_http_request_opts o = { .connect_timeout_ms = 200 };
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int lfd, fill[4];
	struct tc_req r;
	char u[64];

	tc_setup(&t, NULL);	/* the client's connect timeout: 10 s */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(lfd, 0), 0);
	getsockname(lfd, (struct sockaddr *)&a, &len);
	/* A full accept queue drops SYNs: connect hangs. */
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&a, sizeof(a));
	}
	usleep(50 * 1000);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", ntohs(a.sin_port));
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_start(&r, u, &o, NULL, 0), 0);
	cr_assert(tc_run(&t, 20000), "hang");
	cr_expect_eq(r.result, FERRY_ECONNECT_TIMEOUT, "%d %s", r.result, r.detail);
	cr_expect_not_null(strstr(r.detail, "within 200 ms"), "%s", r.detail);
	tc_req_free(&r);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
}

Test(client_body, connect_timeout_per_request_covers_tls_handshake)
{
	struct ferry_http_client_opts co = { .tls_insecure_skip_verify = true };
	struct ferry_http_request_opts o = { .connect_timeout_ms = 200 };
	struct tc_req r;

	up("no-response", &co);
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_start(&r, bu("https", "/"), &o, NULL, 0), 0);
	cr_assert(tc_run(&t, 20000), "hang");
	cr_expect_eq(r.result, FERRY_ECONNECT_TIMEOUT, "%d %s", r.result, r.detail);
	cr_expect_not_null(strstr(r.detail, "TLS handshake not done within 200 ms"),
			   "%s", r.detail);
	tc_req_free(&r);
}

/* ------------------------------------------------------------------ */
/* Bodies from ferry/body.h                                              */

/* A request whose on_done closes its body, as ferry/body.h asks. */
struct breq {
	struct tc_req r;	/* first: tc's callbacks take it as ctx */
	struct ferry_body *b;
	int berr;
	char bwhy[FERRY_HTTP_DETAIL_MAX];
};

static void breq_done(void *ctx, struct ferry_http_request *req, int result,
		      const char *detail)
{
	struct breq *br = ctx;
	const char *why;

	br->berr = ferry_body_error(br->b, &why);
	snprintf(br->bwhy, sizeof(br->bwhy), "%s", why);
	ferry_body_close(br->b);
	br->b = NULL;
	tc_callbacks.on_done(ctx, req, result, detail);
}

static void breq_start(struct breq *br, const char *url, const char *method)
{
	static struct ferry_http_callbacks cb;
	struct ferry_http_request_opts o = {
		.method = method, .body_fn = ferry_body_fn, .body_ctx = br->b,
		.body_fn_len = ferry_body_length(br->b), .ctx = br,
	};
	struct ferry_url u = { 0 };
	char why[256] = "";
	int rc;

	cb = tc_callbacks;
	cb.on_done = breq_done;
	cr_assert_eq(ferry_url_parse(&u, url, strlen(url), NULL, 0), 0);
	o.url = &u;
	o.cb = &cb;
	rc = ferry_http_request_start(t.client, &o, &br->r.req, why, sizeof(why));
	ferry_url_free(&u);
	cr_assert_eq(rc, 0, "%s", why);
	t.pending++;
}

static void expect_echo(const struct tc_req *r, const char *framing,
			uint64_t size)
{
	char want[160], sha[65];

	fx_pattern_sha256(size, sha);
	snprintf(want, sizeof(want), "framing=%s size=%llu sha256=%s\n",
		 framing, (unsigned long long)size, sha);
	cr_assert_eq(r->result, 200, "%d %s", r->result, r->detail);
	cr_assert_eq(strncmp(r->body, want, strlen(want)), 0,
		     "got: %.160s\nwant: %s", r->body, want);
}

/* A temp file of @n pattern bytes, open for reading at 0. */
static int pattern_file(uint64_t n, char *dir, size_t len)
{
	unsigned char buf[8192];
	char path[4200];
	uint64_t off = 0;
	int fd;

	cr_assert_eq(fx_tmpdir(dir, len), 0);
	snprintf(path, sizeof(path), "%s/body.bin", dir);
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

Test(client_body, from_file_with_length)
{
	const uint64_t n = (5u << 20) + 1;
	struct breq br = { 0 };
	char dir[4096];
	int fd;

	up("echo-request", NULL);
	fd = pattern_file(n, dir, sizeof(dir));
	cr_assert_eq(ferry_body_from_fd(t.loop, fd, (int64_t)n, 0, &br.b), 0);
	cr_assert_eq(ferry_body_length(br.b), (int64_t)n);
	tc_req_init(&br.r, &t, 4096);
	breq_start(&br, bu("http", "/f"), "PUT");
	cr_assert(tc_run(&t, 30000), "hang");
	expect_echo(&br.r, "length", n);
	tc_req_free(&br.r);
	close(fd);
	fx_rmtree(dir);
}

Test(client_body, from_file_chunked_small_reads)
{
	/* -1: to EOF, chunked; small reads, many pieces. */
	const uint64_t n = 300000;
	struct breq br = { 0 };
	char dir[4096];
	int fd;

	up("echo-request", NULL);
	fd = pattern_file(n, dir, sizeof(dir));
	cr_assert_eq(ferry_body_from_fd(t.loop, fd, -1, 4000, &br.b), 0);
	tc_req_init(&br.r, &t, 4096);
	breq_start(&br, bu("http", "/f"), "POST");
	cr_assert(tc_run(&t, 30000), "hang");
	expect_echo(&br.r, "chunked", n);
	tc_req_free(&br.r);
	close(fd);
	fx_rmtree(dir);
}

/* A producer of pattern bytes; gated: blocks until opened. */
struct prod {
	uint64_t total, off;
	int fail_err;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool gated, open, inside;
};

static ssize_t prod_read(void *ctx, void *buf, size_t cap)
{
	struct prod *p = ctx;
	size_t n = cap < 5000 ? cap : 5000;

	pthread_mutex_lock(&p->mu);
	p->inside = true;
	pthread_cond_broadcast(&p->cv);
	while (p->gated && !p->open)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	if (p->fail_err)
		return p->fail_err;
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

Test(client_body, from_reader_chunked_and_with_length)
{
	struct prod p;
	struct breq br = { 0 };

	up("echo-request", NULL);
	prod_init(&p, 777777);
	cr_assert_eq(ferry_body_from_reader(t.loop, prod_read, &p, -1, 0, &br.b), 0);
	tc_req_init(&br.r, &t, 4096);
	breq_start(&br, bu("http", "/r"), "POST");
	cr_assert(tc_run(&t, 30000), "hang");
	expect_echo(&br.r, "chunked", 777777);
	tc_req_free(&br.r);

	prod_init(&p, 777777);
	memset(&br, 0, sizeof(br));
	cr_assert_eq(ferry_body_from_reader(t.loop, prod_read, &p, 777777, 0,
					    &br.b), 0);
	tc_req_init(&br.r, &t, 4096);
	breq_start(&br, bu("http", "/r"), "POST");
	cr_assert(tc_run(&t, 30000), "hang");
	expect_echo(&br.r, "length", 777777);
	tc_req_free(&br.r);
}

Test(client_body, reader_error_fails_the_request)
{
	struct prod p;
	struct breq br = { 0 };

	up("echo-request", NULL);
	prod_init(&p, 1000);
	p.fail_err = -ENOSPC;
	cr_assert_eq(ferry_body_from_reader(t.loop, prod_read, &p, -1, 0, &br.b), 0);
	tc_req_init(&br.r, &t, 4096);
	breq_start(&br, bu("http", "/r"), "POST");
	cr_assert(tc_run(&t, 30000), "hang");
	cr_expect_eq(br.r.result, -ENOSPC, "%d %s", br.r.result, br.r.detail);
	cr_expect_eq(br.berr, -ENOSPC);
	cr_expect_str_eq(br.bwhy, "request body: the producer returned ENOSPC");
	tc_req_free(&br.r);
}

/* -EAGAIN would read as "wait" to the client: it fails as -EIO. */
Test(client_body, reader_eagain_fails_not_stalls)
{
	struct prod p;
	struct breq br = { 0 };

	up("echo-request", NULL);
	prod_init(&p, 1000);
	p.fail_err = -EAGAIN;
	cr_assert_eq(ferry_body_from_reader(t.loop, prod_read, &p, -1, 0, &br.b), 0);
	tc_req_init(&br.r, &t, 4096);
	breq_start(&br, bu("http", "/r"), "POST");
	cr_assert(tc_run(&t, 30000), "hang");
	cr_expect_eq(br.r.result, -EIO, "%d %s", br.r.result, br.r.detail);
	cr_expect_eq(br.berr, -EIO);
	cr_expect_not_null(strstr(br.bwhy, "the producer returned EAGAIN"), "%s",
			   br.bwhy);
	tc_req_free(&br.r);
}

Test(client_body, fd_error_fails_the_request)
{
	struct breq br = { 0 };
	char want[80];
	int fd;

	up("echo-request", NULL);
	fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ferry_body_from_fd(t.loop, fd, -1, 0, &br.b), 0);
	tc_req_init(&br.r, &t, 4096);
	breq_start(&br, bu("http", "/d"), "PUT");
	cr_assert(tc_run(&t, 30000), "hang");
	cr_expect_eq(br.r.result, -EISDIR, "%d %s", br.r.result, br.r.detail);
	snprintf(want, sizeof(want), "request body: read from fd %d: EISDIR", fd);
	cr_expect_str_eq(br.bwhy, want);
	tc_req_free(&br.r);
	close(fd);
}

Test(client_body, bad_arguments)
{
	struct ferry_body *b = (void *)1;

	tc_setup(&t, NULL);
	cr_expect_eq(ferry_body_from_fd(t.loop, -1, -1, 0, &b), FERRY_EINVAL);
	cr_expect_null(b);
	cr_expect_eq(ferry_body_from_fd(NULL, 0, -1, 0, &b), FERRY_EINVAL);
	cr_expect_eq(ferry_body_from_fd(t.loop, 0, -1, 32u << 20, &b),
		     FERRY_EINVAL);
	cr_expect_eq(ferry_body_from_reader(t.loop, NULL, NULL, -1, 0, &b),
		     FERRY_EINVAL);
	cr_expect_eq(ferry_body_from_fd(t.loop, 0, -1, 0, NULL), FERRY_EINVAL);
	ferry_body_close(NULL);
	/* A body never used closes at once. */
	cr_assert_eq(ferry_body_from_fd(t.loop, 0, 10, 0, &b), 0);
	ferry_body_close(b);
}

/* Cancelled while its read waits on an empty pipe: close cancels the
 * read and the body is freed when its completion comes (ASan checks). */
Test(client_body, cancel_while_the_read_waits)
{
	struct breq br = { 0 };
	int p[2];

	up("echo-request", NULL);
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(write(p[1], "0123456789", 10), 10);
	cr_assert_eq(ferry_body_from_fd(t.loop, p[0], -1, 0, &br.b), 0);
	tc_req_init(&br.r, &t, 4096);
	breq_start(&br, bu("http", "/p"), "PUT");
	/* Once the 10 bytes are read, the next read waits on the pipe. */
	for (int i = 0; i < 2000 && ferry_body_produced(br.b) < 10; i++)
		tc_spin(&t, 5);
	cr_assert_eq(ferry_body_produced(br.b), 10, "the body was never read");
	ferry_http_request_cancel(br.r.req);
	cr_assert(tc_run(&t, 10000), "hang");
	cr_expect_eq(br.r.result, FERRY_ECANCELED);
	cr_expect_null(br.b);
	tc_req_free(&br.r);
	tc_spin(&t, 10);
	close(p[0]);
	close(p[1]);
}

/* Cancelled while the producer sits in a call: the body is freed when
 * the call returns (ASan checks), not before. */
Test(client_body, cancel_while_the_producer_runs)
{
	struct prod p;
	struct breq br = { 0 };
	bool inside = false;

	up("echo-request", NULL);
	prod_init(&p, 100000);
	p.gated = true;
	cr_assert_eq(ferry_body_from_reader(t.loop, prod_read, &p, -1, 0, &br.b), 0);
	tc_req_init(&br.r, &t, 4096);
	breq_start(&br, bu("http", "/p"), "PUT");
	for (int i = 0; i < 2000 && !inside; i++) {
		tc_spin(&t, 5);
		pthread_mutex_lock(&p.mu);
		inside = p.inside;
		pthread_mutex_unlock(&p.mu);
	}
	cr_assert(inside, "the producer was never called");
	ferry_http_request_cancel(br.r.req);
	cr_assert(tc_run(&t, 10000), "hang");
	cr_expect_eq(br.r.result, FERRY_ECANCELED);
	tc_req_free(&br.r);
	pthread_mutex_lock(&p.mu);
	p.open = true;
	pthread_cond_broadcast(&p.cv);
	pthread_mutex_unlock(&p.mu);
	/* The call returns, on p (this frame): the teardown joins the
	 * offload pool here, and the call's completion frees the body. */
	tc_teardown(&t);
	memset(&t, 0, sizeof(t));
}
