/*
 * test_client_errors.c - servers that misbehave (tests/servers/misbehave.py)
 * and the errors the client must turn them into; after each bad exchange
 * a good request on the same loop and client must still succeed. Also the
 * three timeouts, limits, and the pool noticing dead idle connections.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"
#include "test_client_util.h"

static struct fx_proc mb = FX_PROC_INIT;
static struct ts good;
static bool good_up;
static struct tc t;

static void down(void)
{
	if (t.loop)
		tc_teardown(&t);
	fx_stop(&mb);
	if (good_up)
		ts_stop(&good);
	good_up = false;
}

TestSuite(client_errors, .fini = down, .timeout = 60);

static void up(const char *mode, const char *extra,
	       const struct ferry_http_client_opts *opts)
{
	int rc = fx_misbehave_start(&mb, mode, extra);

	if (rc == FX_SKIP)
		cr_skip_test("%s", mb.err);
	cr_assert_eq(rc, 0, "misbehave %s: %s", mode, mb.err);
	cr_assert_eq(ts_start(&good), 0);
	good_up = true;
	tc_setup(&t, opts);
}

static const char *mb_url(const char *path)
{
	static char buf[4][128];
	static unsigned i;
	char *b = buf[i++ % 4];

	snprintf(b, 128, "http://127.0.0.1:%d%s", mb.port, path);
	return b;
}

/* A good request to the in-process server works. */
static void expect_healthy(void)
{
	struct tc_req r;
	char u[128];

	snprintf(u, sizeof(u), "http://127.0.0.1:%d/method", good.port);
	tc_req_init(&r, &t, 16);
	tc_get(&r, NULL, u);
	cr_assert(tc_run(&t, 5000), "good request hung");
	cr_expect_eq(r.result, 200, "good request: %d %s", r.result, r.detail);
	cr_expect_str_eq(r.body, "GET");
	tc_req_free(&r);
}

/* One request to mode; its result must be want, detail holding needle. */
static void expect_error(const char *mode, const char *extra,
			 const struct ferry_http_request_opts *o, int want,
			 const char *needle)
{
	struct tc_req r;
	char why[256] = "";

	up(mode, extra, NULL);
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_start(&r, mb_url("/"), o, why, sizeof(why)), 0, "%s", why);
	cr_assert(tc_run(&t, 10000), "%s: request hung", mode);
	cr_expect_eq(r.result, want, "%s: got %d (%s: %s), want %d (%s)", mode,
		     r.result, ferry_strerrorname(r.result), r.detail, want,
		     ferry_strerrorname(want));
	cr_expect_eq(r.done_calls, 1);
	if (needle)
		cr_expect_neq(strstr(r.detail, needle), NULL,
			      "%s: detail '%s' lacks '%s'", mode, r.detail, needle);
	expect_healthy();
}

Test(client_errors, reset_before_head)
{
	expect_error("reset-before-head", NULL, NULL, -ECONNRESET, "ECONNRESET");
}

Test(client_errors, reset_in_head)
{
	expect_error("reset-in-head", NULL, NULL, -ECONNRESET, "ECONNRESET");
}

Test(client_errors, reset_in_body)
{
	expect_error("reset-in-body", NULL, NULL, -ECONNRESET, "ECONNRESET");
}

Test(client_errors, truncated_chunked)
{
	expect_error("truncated-chunked", NULL, NULL, FERRY_EPARTIAL, "closed");
}

Test(client_errors, bad_chunk_size)
{
	expect_error("bad-chunk-size", NULL, NULL, FERRY_EPROTO, NULL);
}

Test(client_errors, content_length_and_chunked)
{
	expect_error("cl-and-te", NULL, NULL, FERRY_EPROTO, NULL);
}

Test(client_errors, double_content_length)
{
	expect_error("double-cl", NULL, NULL, FERRY_EPROTO, NULL);
}

Test(client_errors, huge_headers)
{
	expect_error("huge-headers", NULL, NULL, FERRY_ETOOLARGE, NULL);
}

Test(client_errors, read_timeout_on_trickle)
{
	struct ferry_http_request_opts o = { .read_timeout_ms = 300 };
	uint64_t t0 = ferry_time_now();

	/* A byte every 30 s: the 300 ms read timeout must fire first, and
	 * the 10 s bound (a hang guard) still tells it from the trickle. */
	expect_error("trickle-headers", "--delay=30", &o, FERRY_EREAD_TIMEOUT,
		     "300 ms");
	cr_expect_lt(ferry_time_now() - t0, 10000ull * 1000 * 1000);
}

Test(client_errors, read_timeout_on_silence)
{
	struct ferry_http_request_opts o = { .read_timeout_ms = 200 };

	expect_error("no-response", NULL, &o, FERRY_EREAD_TIMEOUT, NULL);
}

/* Bytes keep coming, but the head never ends. The read timeout is longer
 * than the total one, so a stalled (descheduled) server cannot make it
 * fire first. */
Test(client_errors, total_timeout)
{
	struct ferry_http_request_opts o = { .timeout_ms = 400,
					     .read_timeout_ms = 20000 };
	uint64_t t0 = ferry_time_now(), dt;

	expect_error("trickle-headers", "--delay=0.05", &o, FERRY_ETOTAL_TIMEOUT,
		     "400 ms");
	dt = (ferry_time_now() - t0) / 1000000;
	cr_expect_geq(dt, 400, "took %llu ms", (unsigned long long)dt);
	cr_expect_lt(dt, 15000, "took %llu ms (a hang guard)",
		     (unsigned long long)dt);
}

Test(client_errors, body_limit)
{
	struct ferry_http_request_opts o = { .max_body = 1000 };

	/* close-delimited: no Content-Length, so the limit trips mid-body. */
	expect_error("close-delimited", NULL, &o, FERRY_ETOOLARGE, "1000");
}

Test(client_errors, close_delimited_body)
{
	struct tc_req r;
	uint64_t fnv = FX_FNV1A64_INIT;
	unsigned char pat[251];

	up("close-delimited", "--size=100000", NULL);
	for (int i = 0; i < 251; i++)
		pat[i] = (unsigned char)i;
	for (size_t off = 0; off < 100000; off += 251)
		fnv = fx_fnv1a64(fnv, pat, 100000 - off < 251 ? 100000 - off : 251);
	tc_req_init(&r, &t, 0);
	tc_get(&r, NULL, mb_url("/"));
	cr_assert(tc_run(&t, 5000));
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.nbody, 100000);
	cr_expect_eq(r.fnv, fnv);
	expect_healthy();
}

Test(client_errors, close_after_each)
{
	struct ferry_http_client_stats st;

	up("close-after-each", NULL, NULL);
	for (int i = 0; i < 5; i++) {
		struct tc_req r;

		tc_req_init(&r, &t, 8);
		tc_get(&r, NULL, mb_url("/"));
		cr_assert(tc_run(&t, 5000));
		cr_expect_eq(r.result, 200, "%d: %d %s", i, r.result, r.detail);
		cr_expect_str_eq(r.body, "ok\n");
		tc_req_free(&r);
	}
	ferry_http_client_stats(t.client, &st);
	cr_expect_eq(st.conns_opened, 5);
}

/* The count mode proves reuse from the server's side. */
Test(client_errors, count_mode_shows_reuse)
{
	up("count", NULL, NULL);
	for (int i = 0; i < 5; i++) {
		struct tc_req r;

		tc_req_init(&r, &t, 0);
		tc_get(&r, NULL, mb_url("/"));
		cr_assert(tc_run(&t, 5000));
		cr_expect_eq(r.result, 200);
		cr_expect_str_eq(r.xconn, "1", "request %d on conn %s", i, r.xconn);
	}
}

/* The server closes each idle connection right after answering: the next
 * request must succeed, by noticing the close or by retrying once. */
Test(client_errors, server_closed_idle_connection)
{
	struct ferry_http_client_stats st;

	up("keepalive-then-close", NULL, NULL);
	for (int i = 0; i < 6; i++) {
		struct tc_req r;

		tc_req_init(&r, &t, 8);
		tc_get(&r, i % 2 ? "HEAD" : "GET", mb_url("/"));
		cr_assert(tc_run(&t, 5000));
		cr_expect_eq(r.result, 200, "%d: %d %s", i, r.result, r.detail);
		tc_req_free(&r);
		if (i == 2)
			tc_spin(&t, 100);	/* let the close be seen */
	}
	ferry_http_client_stats(t.client, &st);
	cr_expect_eq(st.conns_opened, 6);
	cr_log_info("retries: %llu", (unsigned long long)st.retries);
}

/* A close that lands after the request went out on the pooled
 * connection: the retry rule must save the (idempotent) request. */
Test(client_errors, retry_on_reused_connection)
{
	struct ferry_http_client_stats st;
	struct tc_req r;

	/* The server closes 0.3 s after the response; the idle timeout
	 * keeps our side from closing first. */
	up("keepalive-then-close", "--delay=0.3", NULL);
	tc_req_init(&r, &t, 0);
	tc_get(&r, NULL, mb_url("/"));
	cr_assert(tc_run(&t, 5000));
	cr_assert_eq(r.result, 200);
	/* Go just before the server's close: the FIN races the request. */
	for (int i = 0; i < 12; i++) {
		tc_spin(&t, 295);
		tc_req_init(&r, &t, 0);
		tc_get(&r, NULL, mb_url("/"));
		cr_assert(tc_run(&t, 5000));
		cr_expect_eq(r.result, 200, "%d: %d %s", i, r.result, r.detail);
	}
	ferry_http_client_stats(t.client, &st);
	cr_log_info("retries after racing closes: %llu",
		    (unsigned long long)st.retries);
}

/* A POST is not idempotent: no retry, the error is reported. */
Test(client_errors, no_retry_for_post)
{
	struct ferry_http_request_opts o = { .method = "POST", .body = "x",
					     .body_len = 1 };
	struct ferry_http_client_stats st;
	struct tc_req r;

	up("reset-before-head", NULL, NULL);
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_start(&r, mb_url("/"), &o, NULL, 0), 0);
	cr_assert(tc_run(&t, 5000));
	cr_expect_eq(r.result, -ECONNRESET, "%d %s", r.result, r.detail);
	ferry_http_client_stats(t.client, &st);
	cr_expect_eq(st.retries, 0);
}

/* A listener whose accept queue is full drops SYNs: connect hangs. */
Test(client_errors, connect_timeout)
{
	struct ferry_http_client_opts opts = { .connect_timeout_ms = 200 };
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int lfd, fill[4];
	struct tc_req r;
	char u[64];
	uint64_t t0;

	cr_assert_eq(ts_start(&good), 0);
	good_up = true;
	tc_setup(&t, &opts);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(lfd, 0), 0);
	getsockname(lfd, (struct sockaddr *)&a, &len);
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&a, sizeof(a));
	}
	usleep(50 * 1000);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", ntohs(a.sin_port));
	tc_req_init(&r, &t, 0);
	t0 = ferry_time_now();
	tc_get(&r, NULL, u);
	cr_assert(tc_run(&t, 5000));
	cr_expect_eq(r.result, FERRY_ECONNECT_TIMEOUT, "%d %s", r.result, r.detail);
	cr_expect_neq(strstr(r.detail, "200 ms"), NULL, "%s", r.detail);
	cr_expect_lt(ferry_time_now() - t0, 10000ull * 1000 * 1000); /* hang guard */
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
	expect_healthy();
}

/* ------------------------------------------------------------------ */
/* Issue 10: limits that a redirect's body and 1xx heads must obey      */

/* Follow a redirect from mode's "/" to its "/ok"; return the result. */
static void follow_redirect(struct tc_req *r, const char *mode,
			    const char *extra,
			    const struct ferry_http_client_opts *opts,
			    uint64_t max_body)
{
	struct ferry_http_request_opts o = {
		.follow_redirects = FERRY_HTTP_FOLLOW_YES,
		.timeout_ms = 4000,	/* bounds the test before the fix */
		.max_body = max_body,
	};
	char why[256] = "";

	up(mode, extra, opts);
	tc_req_init(r, &t, 16);
	cr_assert_eq(tc_start(r, mb_url("/"), &o, why, sizeof(why)), 0, "%s", why);
	cr_assert(tc_run(&t, 8000), "%s: request hung", mode);
}

/* An endless chunked redirect body is not drained for ever: the client
 * reads at most max_redirect_body of it, closes, and follows. */
Test(client_errors, redirect_endless_body_bounded)
{
	struct ferry_http_client_stats st;
	struct tc_req r;

	follow_redirect(&r, "redirect-endless-body", NULL, NULL, 0);
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_str_eq(r.body, "ok\n");
	ferry_http_client_stats(t.client, &st);
	cr_expect_eq(st.conns_opened, 2, "the redirect's connection was kept");
	tc_req_free(&r);
	expect_healthy();
}

/* A redirect whose Content-Length is over max_body (10) is not read at
 * all: the server sends 20 of its 100000 bytes and stalls, so a client
 * that drains it waits until its deadline. */
Test(client_errors, redirect_body_over_max_body_not_drained)
{
	struct tc_req r;

	follow_redirect(&r, "redirect-big-body", NULL, NULL, 10);
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_str_eq(r.body, "ok\n");
	tc_req_free(&r);
	expect_healthy();
}

/* The same with the client's max_redirect_body (1000 < 100000). */
Test(client_errors, redirect_body_over_redirect_limit_not_drained)
{
	struct ferry_http_client_opts co = { .max_redirect_body = 1000 };
	struct tc_req r;

	follow_redirect(&r, "redirect-big-body", NULL, &co, 0);
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	tc_req_free(&r);
	expect_healthy();
}

/* A short redirect body (all 20 bytes of it) is drained and its
 * connection kept for the next hop. */
Test(client_errors, redirect_small_body_keeps_connection)
{
	struct ferry_http_client_stats st;
	struct tc_req r;

	follow_redirect(&r, "redirect-big-body", "--size=20", NULL, 0);
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	ferry_http_client_stats(t.client, &st);
	cr_expect_eq(st.conns_opened, 1);
	tc_req_free(&r);
}

/* 1xx heads for ever: the count cap fires (default 5). */
Test(client_errors, interim_flood_count)
{
	struct ferry_http_request_opts o = { .timeout_ms = 4000 };

	expect_error("interim-flood", NULL, &o, FERRY_ETOOLARGE,
		     "more than 5 interim (1xx) responses");
}

/* Large 1xx heads count against max_head (64 KiB by default) even when
 * their number is allowed. */
Test(client_errors, interim_flood_bytes)
{
	struct ferry_http_client_opts co = { .max_interim = 1000 };
	struct ferry_http_request_opts o = { .timeout_ms = 4000 };
	struct tc_req r;
	char why[256] = "";

	up("interim-flood", "--size=30000", &co);
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_start(&r, mb_url("/"), &o, why, sizeof(why)), 0, "%s", why);
	cr_assert(tc_run(&t, 8000), "request hung");
	cr_expect_eq(r.result, FERRY_ETOOLARGE, "%d %s", r.result, r.detail);
	cr_expect_neq(strstr(r.detail, "(1xx heads included)"), NULL, "%s",
		      r.detail);
	tc_req_free(&r);
	expect_healthy();
}

/* RFC 9112 6.1: after an HTTP/1.0 response with Transfer-Encoding the
 * connection is closed, whatever Connection says. */
Test(client_errors, http10_chunked_not_pooled)
{
	struct ferry_http_client_stats st;

	up("http10-chunked", NULL, NULL);
	for (int i = 0; i < 2; i++) {
		struct tc_req r;

		tc_req_init(&r, &t, 8);
		tc_get(&r, NULL, mb_url("/"));
		cr_assert(tc_run(&t, 5000));
		cr_expect_eq(r.result, 200, "%d: %d %s", i, r.result, r.detail);
		cr_expect_str_eq(r.body, "ok\n");
		cr_expect_str_eq(r.xconn, i ? "2" : "1", "request %d on conn %s",
				 i, r.xconn);
		tc_req_free(&r);
	}
	ferry_http_client_stats(t.client, &st);
	cr_expect_eq(st.conns_opened, 2);
}
