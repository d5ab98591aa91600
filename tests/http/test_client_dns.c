/*
 * test_client_dns.c - names: the client's cache (one lookup shared by the
 * connections that wait for it, answers and failures kept for their TTL),
 * resolve overrides, and Happy Eyeballs against a black-holed first
 * address.
 *
 * The cache is driven through its internal entry point (http/dns.h) with
 * "localhost", which getaddrinfo answers from /etc/hosts on any machine
 * (the client itself never asks for it: RFC 6761), and with a name under
 * .invalid, which never resolves. Requests go to tests/servers/flaky.py
 * through overrides, so no test depends on the machine's resolver.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dns.h"
#include "fixture.h"
#include "test_client_util.h"

static struct fx_proc srv = FX_PROC_INIT;
static struct tc t;

static void down(void)
{
	if (t.loop)
		tc_teardown(&t);
	fx_stop(&srv);
}

TestSuite(client_dns, .fini = down, .timeout = 60);

/* ------------------------------------------------------------------ */
/* The cache, through ferry__dns_resolve                                */

struct waiter {
	struct ferry__dns_wait w;
	bool done;
	int err;
	struct ferry__addrs as;
	char why[128];
};

static void waiter_done(struct ferry__dns_wait *w, int err,
			struct ferry__addrs *as, const char *why)
{
	struct waiter *x = (struct waiter *)w;

	x->done = true;
	x->err = err;
	if (as) {
		x->as = *as;
		*as = (struct ferry__addrs){ 0 };
	}
	snprintf(x->why, sizeof(x->why), "%s", why);
}

/* Resolve @host for @x: 1 (answered now, in x->as) or 0 (pending). */
static int ask(struct waiter *x, const char *host, uint16_t port)
{
	int rc;

	memset(x, 0, sizeof(*x));
	x->w.done = waiter_done;
	rc = ferry__dns_resolve(t.client, host, strlen(host), port, &x->w,
				&x->as);
	cr_assert(rc == 0 || rc == 1, "resolve: %s", ferry_strerror(rc));
	if (rc == 1)
		x->done = true;
	return rc;
}

static void wait_all(struct waiter *x, size_t n)
{
	for (int i = 0; i < 3000; i++) {
		size_t done = 0;

		for (size_t k = 0; k < n; k++)
			done += x[k].done;
		if (done == n)
			return;
		ferry_loop_run_once(t.loop, 10ll * 1000 * 1000);
	}
	cr_assert_fail("lookups did not finish");
}

/* x holds 127.0.0.1 with @port among its addresses. */
static bool has_loopback4(const struct waiter *x, uint16_t port)
{
	for (unsigned i = 0; i < x->as.n; i++) {
		const struct sockaddr_in *a = (const void *)&x->as.a[i];

		if (a->sin_family == AF_INET &&
		    a->sin_addr.s_addr == htonl(INADDR_LOOPBACK) &&
		    a->sin_port == htons(port))
			return true;
	}
	return false;
}

static struct ferry_http_client_stats stats(void)
{
	struct ferry_http_client_stats st;

	ferry_http_client_stats(t.client, &st);
	return st;
}

Test(client_dns, one_lookup_many_waiters_then_cached)
{
	struct waiter x[4];

	tc_setup(&t, NULL);
	/* Three connections want the name in the same turn. */
	cr_assert_eq(ask(&x[0], "localhost", 80), 0);
	cr_assert_eq(ask(&x[1], "LOCALHOST", 8080), 0);
	cr_assert_eq(ask(&x[2], "localhost", 443), 0);
	wait_all(x, 3);
	cr_expect_eq(stats().dns_lookups, 1);
	cr_expect_eq(stats().dns_shared, 2);
	cr_expect_eq(x[0].err, 0, "%s", x[0].why);
	cr_expect(has_loopback4(&x[0], 80));
	cr_expect(has_loopback4(&x[1], 8080), "each waiter its own port");
	cr_expect(has_loopback4(&x[2], 443));
	/* The next one is answered from the cache, at once. */
	cr_expect_eq(ask(&x[3], "localhost", 81), 1);
	cr_expect(has_loopback4(&x[3], 81));
	cr_expect_eq(stats().dns_lookups, 1);
	cr_expect_eq(stats().dns_cache_hits, 1);
	for (int i = 0; i < 4; i++)
		ferry__addrs_free(&x[i].as);
}

Test(client_dns, answer_expires)
{
	struct ferry_http_client_opts o = { .dns_cache_ttl_ms = 1 };
	struct waiter x;

	tc_setup(&t, &o);
	cr_assert_eq(ask(&x, "localhost", 80), 0);
	wait_all(&x, 1);
	ferry__addrs_free(&x.as);
	usleep(20 * 1000);	/* well past the 1 ms TTL */
	tc_spin(&t, 1);		/* a new turn: the loop's clock moves */
	cr_expect_eq(ask(&x, "localhost", 80), 0, "expired: looked up again");
	wait_all(&x, 1);
	cr_expect_eq(stats().dns_lookups, 2);
	ferry__addrs_free(&x.as);
}

Test(client_dns, no_cache)
{
	struct ferry_http_client_opts o = {
		.dns_cache_ttl_ms = FERRY_HTTP_NO_CACHE,
	};
	struct waiter x;

	tc_setup(&t, &o);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(ask(&x, "localhost", 80), 0);
		wait_all(&x, 1);
		cr_expect(has_loopback4(&x, 80));
		ferry__addrs_free(&x.as);
	}
	cr_expect_eq(stats().dns_lookups, 2);
	cr_expect_eq(stats().dns_cache_hits, 0);
}

Test(client_dns, failure_kept)
{
	struct waiter x;

	tc_setup(&t, NULL);
	cr_assert_eq(ask(&x, "nonexistent.invalid", 80), 0);
	wait_all(&x, 1);
	cr_expect_eq(x.err, FERRY_EDNS, "%d %s", x.err, x.why);
	cr_expect_neq(strstr(x.why, "nonexistent.invalid"), NULL, "%s", x.why);
	/* Kept: the same answer, from a later turn, without a lookup. */
	cr_expect_eq(ask(&x, "nonexistent.invalid", 80), 0);
	cr_expect(!x.done, "never from inside resolve");
	wait_all(&x, 1);
	cr_expect_eq(x.err, FERRY_EDNS);
	cr_expect_eq(stats().dns_lookups, 1);
	cr_expect_eq(stats().dns_cache_hits, 1);
}

Test(client_dns, failure_not_kept)
{
	struct ferry_http_client_opts o = {
		.dns_negative_ttl_ms = FERRY_HTTP_NO_CACHE,
	};
	struct waiter x;

	tc_setup(&t, &o);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(ask(&x, "nonexistent.invalid", 80), 0);
		wait_all(&x, 1);
		cr_expect_eq(x.err, FERRY_EDNS);
	}
	cr_expect_eq(stats().dns_lookups, 2);
}

Test(client_dns, cancel_then_close_with_lookup_running)
{
	struct waiter x, y;

	tc_setup(&t, NULL);
	cr_assert_eq(ask(&x, "localhost", 80), 0);
	cr_assert_eq(ask(&y, "nonexistent.invalid", 80), 0);
	ferry__dns_cancel(&x.w);
	ferry__dns_cancel(&y.w);
	/* The lookups finish (or not) after the client is gone: ASan says
	 * whether anything leaks or is touched after free. */
	tc_teardown(&t);
	cr_expect(!x.done && !y.done);
}

Test(client_dns, cache_size_bounded)
{
	struct ferry_http_client_opts o = { .dns_cache_max = 1 };
	struct waiter x;

	tc_setup(&t, &o);
	cr_assert_eq(ask(&x, "localhost", 80), 0);
	wait_all(&x, 1);
	ferry__addrs_free(&x.as);
	cr_assert_eq(ask(&x, "nonexistent.invalid", 80), 0);
	wait_all(&x, 1);
	/* One name kept: localhost went. */
	cr_expect_eq(ask(&x, "localhost", 80), 0);
	wait_all(&x, 1);
	cr_expect_eq(stats().dns_lookups, 3);
	ferry__addrs_free(&x.as);
}

Test(client_dns, interleave)
{
	struct ferry__addrs as;
	int want[] = { AF_INET6, AF_INET, AF_INET6, AF_INET, AF_INET6, AF_INET6 };
	int in[] = { AF_INET6, AF_INET6, AF_INET6, AF_INET6, AF_INET, AF_INET };

	cr_assert_eq(ferry__addrs_alloc(&as, 6), 0);
	for (int i = 0; i < 6; i++) {
		as.a[i].ss_family = (sa_family_t)in[i];
		((struct sockaddr_in6 *)&as.a[i])->sin6_port = htons(i);
	}
	ferry__addrs_interleave(&as);
	for (int i = 0; i < 6; i++)
		cr_expect_eq(as.a[i].ss_family, want[i], "slot %d", i);
	/* Each family's own order is kept. */
	cr_expect_eq(ntohs(((struct sockaddr_in6 *)&as.a[0])->sin6_port), 0);
	cr_expect_eq(ntohs(((struct sockaddr_in6 *)&as.a[2])->sin6_port), 1);
	cr_expect_eq(ntohs(((struct sockaddr_in6 *)&as.a[1])->sin6_port), 4);
	ferry__addrs_free(&as);
}

/* ------------------------------------------------------------------ */
/* Overrides and Happy Eyeballs, through requests                        */

static void flaky(const char *const *args)
{
	int rc = fx_python_start(&srv, "flaky.py", args);

	if (rc == FX_SKIP)
		cr_skip_test("%s", srv.err);
	cr_assert_eq(rc, 0, "%s", srv.err);
}

Test(client_dns, bad_overrides_refused)
{
	static const char *const bad[] = {
		"x.test", "x.test:80", ":80:127.0.0.1", "x.test:0:127.0.0.1",
		"x.test:70000:127.0.0.1", "x.test:80:", "x.test:80:nope",
		"x.test:80:127.0.0.1,", "x.test:8x:127.0.0.1", "x.test:80:[::1",
		"x.test:*:127.0.0.1", "x.test:+80:127.0.0.1",
	};
	struct ferry_loop *loop;
	struct ferry_http_client *c;
	char why[256];

	cr_assert_eq(ferry_loop_create(&loop, NULL, why, sizeof(why)), 0, "%s",
		     why);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ferry_http_client_opts o = { .resolve = &bad[i],
						    .nresolve = 1 };

		cr_expect_eq(ferry_http_client_create(loop, &o, &c), FERRY_EINVAL,
			     "%s", bad[i]);
	}
	ferry_loop_destroy(loop);
}

Test(client_dns, override_used)
{
	char e[4][64], url[128];
	const char *ov[4] = { e[0], e[1], e[2], e[3] };
	struct ferry_http_client_opts o = { .resolve = ov, .nresolve = 4 };
	struct tc_req r;

	flaky((const char *[]){ "--fail", "0", NULL });
	/* As curl: the last entry for the host and port, else the last "*"
	 * one ([::1] refuses: nothing listens there). */
	snprintf(e[0], 64, "over.test:%d:[::1]", srv.port);
	snprintf(e[1], 64, "OVER.test:%d:127.0.0.1", srv.port);
	snprintf(e[2], 64, "*:%d:127.0.0.1", srv.port);
	snprintf(e[3], 64, "other.test:%d:[::1]", srv.port + 1);
	tc_setup(&t, &o);
	snprintf(url, sizeof(url), "http://over.test:%d/", srv.port);
	tc_req_init(&r, &t, 64);
	tc_get(&r, NULL, url);
	cr_assert(tc_run(&t, 30000));
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	tc_req_free(&r);
	snprintf(url, sizeof(url), "http://other.test:%d/", srv.port);
	tc_req_init(&r, &t, 64);
	tc_get(&r, NULL, url);
	cr_assert(tc_run(&t, 30000));
	cr_expect_eq(r.result, 200, "the wildcard: %d %s", r.result, r.detail);
	cr_expect_eq(stats().dns_lookups, 0, "no lookup for an override");
	tc_req_free(&r);
}

/*
 * [::1] on the server's port is a black hole (flaky.py --blackhole6): a
 * connect there neither succeeds nor fails. With a connect timeout of a
 * minute, the request can only succeed if the second address was tried
 * while the first still hung.
 */
Test(client_dns, happy_eyeballs_past_a_black_hole)
{
	char e[64], url[128];
	const char *ov[1] = { e };
	struct ferry_http_client_opts o = {
		.resolve = ov, .nresolve = 1,
		.connect_timeout_ms = 60000,
		.happy_eyeballs_delay_ms = 50,
	};
	struct tc_req r;

	flaky((const char *[]){ "--fail", "0", "--blackhole6", NULL });
	snprintf(e, sizeof(e), "he.test:%d:[::1],127.0.0.1", srv.port);
	tc_setup(&t, &o);
	snprintf(url, sizeof(url), "http://he.test:%d/", srv.port);
	tc_req_init(&r, &t, 64);
	tc_get(&r, NULL, url);
	cr_assert(tc_run(&t, 30000), "stuck on the black hole");
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_str_eq(r.body, "ok 1\n");
	cr_expect_eq(stats().conns_opened, 1);
	tc_req_free(&r);
}

/* A refused first address: the next one at once, even with no delay
 * between attempts (one address at a time). */
Test(client_dns, next_address_after_refusal)
{
	char e[64], url[128];
	const char *ov[1] = { e };
	struct ferry_http_client_opts o = {
		.resolve = ov, .nresolve = 1,
		.happy_eyeballs_delay_ms = FERRY_HTTP_NO_TIMEOUT,
	};
	struct tc_req r;

	flaky((const char *[]){ "--fail", "0", NULL });
	/* Nothing listens on [::1] at flaky's port: refused. */
	snprintf(e, sizeof(e), "two.test:%d:[::1],127.0.0.1", srv.port);
	tc_setup(&t, &o);
	snprintf(url, sizeof(url), "http://two.test:%d/", srv.port);
	tc_req_init(&r, &t, 64);
	tc_get(&r, NULL, url);
	cr_assert(tc_run(&t, 30000));
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	tc_req_free(&r);
}

/* Every address fails: the error names the last one tried. */
Test(client_dns, all_addresses_refused)
{
	char e[64], url[128];
	const char *ov[1] = { e };
	struct ferry_http_client_opts o = { .resolve = ov, .nresolve = 1 };
	struct tc_req r;
	int port;

	flaky((const char *[]){ "--fail", "0", NULL });
	port = srv.port;
	fx_stop(&srv);
	snprintf(e, sizeof(e), "none.test:%d:127.0.0.1,[::1]", port);
	tc_setup(&t, &o);
	snprintf(url, sizeof(url), "http://none.test:%d/", port);
	tc_req_init(&r, &t, 64);
	tc_get(&r, NULL, url);
	cr_assert(tc_run(&t, 30000));
	cr_expect_eq(r.result, -ECONNREFUSED, "%d %s", r.result, r.detail);
	cr_expect_neq(strstr(r.detail, "[::1]"), NULL, "%s", r.detail);
	tc_req_free(&r);
}
