/*
 * test_faults.c - the fault matrix (issue 10): every failure a network
 * peer can cause, one row each, run the same way. tests/faults/README.md
 * lists the rows.
 *
 * For each row: a misbehaving server (tests/servers/misbehave.py, or
 * tls_server.py for the TLS ones, or no server at all) and a healthy
 * one (misbehave.py --mode ok); one client on one loop. The faulty
 * request starts, a healthy request starts right after it on the same
 * client, and both must end: the faulty one with the row's error code and
 * a detail holding the row's words, within the row's bound, the healthy
 * one with 200. A second healthy request after the fault shows the client
 * still works. Criterion runs each row in a process of its own, so ASan
 * and LeakSanitizer judge each row alone (no crash, no leak).
 *
 * Some rows are successes: the client must absorb the fault (a redirect
 * body that never ends, a pooled connection closed or reset under it).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"
#include "test_client_util.h"
#include "tls_fixture.h"

enum peer {
	PEER_MB,		/* misbehave.py --mode mode [arg] */
	PEER_REFUSED,		/* a port nobody listens on */
	PEER_UNRESOLVABLE,	/* a name under .invalid (RFC 6761) */
	PEER_TLS_HTTPS,		/* tls_server.py https leaf.pem */
	PEER_TLS_PLAIN,		/* tls_server.py plain: HTTP 400 to anything */
};

struct row {
	const char *name;
	enum peer peer;
	const char *mode;	/* PEER_MB */
	const char *arg;	/* one extra misbehave.py argument, or NULL */
	bool https;
	const char *path;	/* NULL: "/" */
	/* The request. */
	const char *method;	/* NULL: GET */
	size_t body_len;	/* a body of this many bytes */
	bool follow;
	uint32_t total_ms;	/* 0: none */
	uint32_t read_ms;	/* the faulty request's read timeout; 0: FAULT_READ_MS */
	uint64_t max_body;	/* 0: none */
	/* Before the faulty request: this many good ones to the same
	 * server (they fill the pool), then a pause. */
	unsigned prime;
	unsigned prime_wait_ms;
	/* Expected: the code (an HTTP status for a success) and words of
	 * the detail; alt_code/alt_detail when the same fault may surface
	 * in two syscalls (a reset seen by send or by recv: which one sees
	 * it first is the kernel's race, and both name the reset). */
	int code;
	const char *detail;
	int alt_code;
	const char *alt_detail;
	unsigned bound_ms;	/* the whole row ends within this */
	int retries;		/* client retries expected; -1: any */
};

/*
 * Timeouts. The faulty request reads with a short timeout (FAULT_READ_MS)
 * to keep the matrix fast; the client's own, which the healthy requests
 * beside it use, is long, so that a loaded machine never makes a healthy
 * request fail. CONNECT_MS bounds the TLS handshakes of the https rows.
 */
#define FAULT_READ_MS 400
#define READ_MS 5000
#define CONNECT_MS 2000

static const struct row rows[] = {
	{ .name = "refused", .peer = PEER_REFUSED,
	  .code = -ECONNREFUSED, .detail = "ECONNREFUSED",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "unresolvable", .peer = PEER_UNRESOLVABLE,
	  .code = FERRY_EDNS, .detail = "resolving nonexistent.invalid",
	  .bound_ms = 20000, .retries = 0 },
	{ .name = "accept-then-silence", .mode = "no-response",
	  .code = FERRY_EREAD_TIMEOUT, .detail = "no byte received for 400 ms",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "accept-then-silence-tls", .mode = "no-response", .https = true,
	  .code = FERRY_ECONNECT_TIMEOUT,
	  .detail = "TLS handshake not done within 2000 ms",
	  .bound_ms = 6000, .retries = 0 },
	{ .name = "reset-at-connect", .mode = "reset-on-accept",
	  .code = -ECONNRESET, .detail = "ECONNRESET",
	  .alt_code = -EPIPE, .alt_detail = "EPIPE",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "reset-in-tls-handshake", .mode = "reset-on-first-bytes",
	  .https = true, .code = FERRY_ETLS_HANDSHAKE,
	  .detail = "TLS handshake: recv: ECONNRESET",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "reset-in-request-write", .mode = "reset-in-request-body",
	  .method = "POST", .body_len = 8 << 20,
	  .code = -ECONNRESET, .detail = "ECONNRESET",
	  .alt_code = -EPIPE, .alt_detail = "EPIPE",
	  .bound_ms = 5000, .retries = 0 },
	{ .name = "reset-in-head", .mode = "reset-in-head",
	  .code = -ECONNRESET, .detail = "recv: ECONNRESET",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "reset-in-body", .mode = "reset-in-body",
	  .code = -ECONNRESET, .detail = "recv: ECONNRESET",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "reset-between-keepalive-requests", .mode = "reset-when-idle",
	  /* Seen while idle (the pool drops the connection) or, on a
	   * loaded machine, as the request goes out (the one retry of an
	   * idempotent request): 200 either way. */
	  .arg = "--delay=0.05", .prime = 1, .prime_wait_ms = 300,
	  .code = 200, .bound_ms = 3000, .retries = -1 },
	{ .name = "close-as-pooled-connection-is-reused",
	  .mode = "close-on-second-request", .prime = 1,
	  .code = 200, .bound_ms = 3000, .retries = 1 },
	{ .name = "close-as-pooled-connection-is-reused-post",
	  .mode = "close-on-second-request", .prime = 1, .method = "POST",
	  .body_len = 10, .code = FERRY_EEMPTY_REPLY,
	  .detail = "connection closed before any response byte",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "partial-head", .mode = "partial-head",
	  .code = FERRY_EPROTO, .detail = "connection closed in the response head",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "truncated-content-length", .mode = "truncated-length",
	  .code = FERRY_EPARTIAL,
	  .detail = "connection closed before the end of the body (100 bytes",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "truncated-chunked", .mode = "truncated-chunked",
	  .code = FERRY_EPARTIAL,
	  .detail = "connection closed before the end of the body (100 bytes",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "truncated-close-delimited-reset",
	  .mode = "reset-in-close-delimited", .code = -ECONNRESET,
	  .detail = "recv: ECONNRESET", .bound_ms = 3000, .retries = 0 },
	{ .name = "truncated-close-delimited-tls", .peer = PEER_TLS_HTTPS,
	  .https = true, .path = "/trunc", .code = FERRY_ETLS_TRUNCATED,
	  .detail = "without close_notify", .bound_ms = 3000, .retries = 0 },
	{ .name = "oversized-head", .mode = "huge-headers",
	  .code = FERRY_ETOOLARGE, .detail = "response head exceeds 65536 bytes",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "endless-headers", .mode = "endless-headers",
	  .code = FERRY_ETOOLARGE, .detail = "response head exceeds 65536 bytes",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "endless-chunked-over-limit", .mode = "endless-chunked",
	  .max_body = 100000, .code = FERRY_ETOOLARGE,
	  .detail = "body exceeds the limit of 100000 bytes",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "endless-redirect-body", .mode = "redirect-endless-body",
	  .follow = true, .code = 200, .bound_ms = 3000, .retries = 0 },
	{ .name = "interim-flood", .mode = "interim-flood",
	  .code = FERRY_ETOOLARGE, .detail = "more than 5 interim (1xx) responses",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "interim-flood-large", .mode = "interim-flood",
	  .arg = "--size=30000", .code = FERRY_ETOOLARGE,
	  .detail = "(1xx heads included)", .bound_ms = 3000, .retries = 0 },
	{ .name = "bad-status-line", .mode = "bad-status",
	  .code = FERRY_EPROTO, .detail = "malformed response",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "http09-reply", .mode = "http09",
	  .code = FERRY_EPROTO, .detail = "malformed response",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "slow-trickle-under-read-timeout", .mode = "trickle-headers",
	  /* The read timeout is longer than the total deadline, so the
	   * deadline ends the row however the trickle is scheduled. */
	  .arg = "--delay=0.05", .total_ms = 800, .read_ms = 2000,
	  .code = FERRY_ETOTAL_TIMEOUT,
	  .detail = "no complete response within 800 ms",
	  .bound_ms = 3000, .retries = 0 },
	{ .name = "plain-http-on-https", .peer = PEER_TLS_PLAIN, .https = true,
	  .code = FERRY_ETLS_HANDSHAKE, .detail = "did not answer with TLS",
	  .bound_ms = 3000, .retries = 0 },
};

#define NROWS (sizeof(rows) / sizeof(rows[0]))

static struct fx_proc bad = FX_PROC_INIT;
static struct fx_proc good = FX_PROC_INIT;
static struct tc t;

static void down(void)
{
	if (t.loop)
		tc_teardown(&t);
	fx_stop(&bad);
	fx_stop(&good);
}

/* A port on 127.0.0.1 that nobody listens on (bound, then closed). */
static int closed_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	cr_assert_geq(fd, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &len);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static bool have_certs(void)
{
	char dir[4096];

	return tf_certs(dir, sizeof(dir)) == 0;
}

/* Start the row's peer; write the faulty URL into url. */
static void peer_up(const struct row *w, char *url, size_t len)
{
	const char *scheme = w->https ? "https" : "http";
	const char *path = w->path ? w->path : "/";
	int r = 0;

	switch (w->peer) {
	case PEER_REFUSED:
		snprintf(url, len, "%s://127.0.0.1:%d%s", scheme, closed_port(),
			 path);
		return;
	case PEER_UNRESOLVABLE:
		snprintf(url, len, "%s://nonexistent.invalid%s", scheme, path);
		return;
	case PEER_MB:
		r = fx_misbehave_start(&bad, w->mode, w->arg);
		break;
	case PEER_TLS_HTTPS:
		r = tf_https(&bad, "leaf.pem", "leaf.key");
		break;
	case PEER_TLS_PLAIN:
		r = tf_peer(&bad, "plain");
		break;
	}
	if (r == FX_SKIP)
		cr_skip_test("%s: %s", w->name, bad.err);
	cr_assert_eq(r, 0, "%s: server: %s", w->name, bad.err);
	snprintf(url, len, "%s://127.0.0.1:%d%s", scheme, bad.port, path);
}

static void client_up(const struct row *w)
{
	struct ferry_http_client_opts o = {
		.read_timeout_ms = READ_MS,
		.connect_timeout_ms = CONNECT_MS,
		/* Keep the pooled connection of a "prime" request: the
		 * rows about reuse need it there. */
		.idle_timeout_ms = 10000,
	};

	if (have_certs())
		o.ca_file = tf_cert("ca.pem");
	else if (w->https)
		cr_skip_test("%s: no certificates (openssl missing)", w->name);
	tc_setup(&t, &o);
}

/* A good request to the healthy server, started now (not waited for). */
static void healthy_start(struct tc_req *r, char *why, size_t whylen)
{
	char u[96];

	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", good.port);
	tc_req_init(r, &t, 16);
	cr_assert_eq(tc_start(r, u, NULL, why, whylen), 0, "healthy: %s", why);
}

static void healthy_check(const struct row *w, struct tc_req *r,
			  const char *when)
{
	cr_expect_eq(r->result, 200, "%s: healthy request %s: %d %s", w->name,
		     when, r->result, r->detail);
	cr_expect_str_eq(r->body, "ok\n", "%s: healthy body %s", w->name, when);
	cr_expect_eq(r->done_calls, 1);
}

/* The faulty request, as the row describes it; started, not waited for. */
static void faulty_start(const struct row *w, struct tc_req *r,
			 const char *url, void *body)
{
	struct ferry_http_request_opts o = {
		.method = w->method,
		.body = body,
		.body_len = w->body_len,
		.follow_redirects = w->follow ? FERRY_HTTP_FOLLOW_YES
					      : FERRY_HTTP_FOLLOW_NO,
		.timeout_ms = w->total_ms,
		.read_timeout_ms = w->read_ms ? w->read_ms : FAULT_READ_MS,
		.max_body = w->max_body,
	};
	char why[256] = "";

	tc_req_init(r, &t, 64);
	cr_assert_eq(tc_start(r, url, &o, why, sizeof(why)), 0, "%s: start: %s",
		     w->name, why);
}

/* Good requests to the faulty server first, when the row says so. */
static void prime(const struct row *w, const char *url)
{
	for (unsigned i = 0; i < w->prime; i++) {
		struct tc_req r;

		tc_req_init(&r, &t, 16);
		tc_get(&r, NULL, url);
		cr_assert(tc_run(&t, 5000), "%s: prime hung", w->name);
		cr_assert_eq(r.result, 200, "%s: prime: %d %s", w->name,
			     r.result, r.detail);
		tc_req_free(&r);
	}
	if (w->prime_wait_ms)
		tc_spin(&t, (int)w->prime_wait_ms);
}

static void faulty_check(const struct row *w, const struct tc_req *r)
{
	bool main = r->result == w->code;
	bool alt = w->alt_code && r->result == w->alt_code;
	const char *want = alt ? w->alt_detail : w->detail;

	cr_expect(main || alt, "%s: got %d (%s: %s), want %d (%s)%s", w->name,
		  r->result, ferry_strerrorname(r->result), r->detail, w->code,
		  ferry_strerrorname(w->code), w->alt_code ? " or its alternative" : "");
	cr_expect_eq(r->done_calls, 1, "%s: on_done calls", w->name);
	if (w->code < 0 || alt)
		cr_expect_neq(strstr(r->detail, want ? want : ""), NULL,
			      "%s: detail '%s' lacks '%s'", w->name, r->detail,
			      want);
	else
		cr_expect_eq(r->detail[0], 0, "%s: detail on success: %s",
			     w->name, r->detail);
}

static void run_row(const struct row *w)
{
	struct ferry_http_client_stats st;
	struct tc_req faulty, healthy;
	char url[256], why[256] = "";
	void *body = NULL;
	uint64_t t0, ms;
	int r;

	r = fx_misbehave_start(&good, "ok", NULL);
	if (r == FX_SKIP)
		cr_skip_test("%s", good.err);
	cr_assert_eq(r, 0, "healthy server: %s", good.err);
	client_up(w);
	peer_up(w, url, sizeof(url));
	prime(w, url);
	if (w->body_len) {
		body = calloc(1, w->body_len);
		cr_assert(body);
	}
	t0 = ferry_time_now();
	faulty_start(w, &faulty, url, body);
	healthy_start(&healthy, why, sizeof(why));
	cr_assert(tc_run(&t, (int)w->bound_ms), "%s: not over within %u ms",
		  w->name, w->bound_ms);
	ms = (ferry_time_now() - t0) / 1000000;
	cr_log_info("%s: %d %s (%llu ms)", w->name, faulty.result, faulty.detail,
		    (unsigned long long)ms);
	faulty_check(w, &faulty);
	healthy_check(w, &healthy, "during the fault");
	ferry_http_client_stats(t.client, &st);
	if (w->retries >= 0)
		cr_expect_eq(st.retries, (uint64_t)w->retries, "%s: retries %llu",
			     w->name, (unsigned long long)st.retries);
	tc_req_free(&faulty);
	tc_req_free(&healthy);
	/* And after it: the client is as good as new. */
	healthy_start(&healthy, why, sizeof(why));
	cr_assert(tc_run(&t, 3000), "%s: healthy request after the fault hung",
		  w->name);
	healthy_check(w, &healthy, "after the fault");
	tc_req_free(&healthy);
	free(body);
}

ParameterizedTestParameters(faults, matrix)
{
	static int idx[NROWS];

	for (size_t i = 0; i < NROWS; i++)
		idx[i] = (int)i;
	return cr_make_param_array(int, idx, NROWS);
}

ParameterizedTest(int *i, faults, matrix, .fini = down, .timeout = 40)
{
	cr_assert_lt((size_t)*i, NROWS);
	run_row(&rows[*i]);
}
