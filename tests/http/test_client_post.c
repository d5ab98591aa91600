/*
 * test_client_post.c - request bodies (a buffer, a producer with and
 * without a length, a producer that waits) echoed back by the in-process
 * server, and redirects (nginx's and the in-process server's): followed,
 * limited, method rewriting, credentials dropped across origins.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/timer.h"
#include "fixture.h"
#include "test_client_util.h"

static struct ts srv, srv2;
static bool srv_up, srv2_up;
static struct fx_proc ngx = FX_PROC_INIT;
static struct tc t;

static void down(void)
{
	if (t.loop)
		tc_teardown(&t);
	if (srv_up)
		ts_stop(&srv);
	if (srv2_up)
		ts_stop(&srv2);
	srv_up = srv2_up = false;
	fx_stop(&ngx);
}

TestSuite(client_post, .fini = down, .timeout = 60);

static void up(const struct ferry_http_client_opts *opts)
{
	cr_assert_eq(ts_start(&srv), 0);
	srv_up = true;
	tc_setup(&t, opts);
}

static const char *su(const struct ts *s, const char *path)
{
	static char buf[4][512];
	static unsigned i;
	char *b = buf[i++ % 4];

	snprintf(b, 512, "http://127.0.0.1:%d%s", s->port, path);
	return b;
}

static char *pattern(size_t n)
{
	char *p = malloc(n);

	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + (i * 7 + i / 13) % 26);
	return p;
}

Test(client_post, buffer_body_echoed)
{
	size_t n = 3u << 20;	/* several sends: short writes happen */
	char *body = pattern(n);
	struct ferry_http_request_opts o = { .method = "POST", .body = body,
					     .body_len = n };
	struct tc_req r;

	up(NULL);
	tc_req_init(&r, &t, n);
	cr_assert_eq(tc_start(&r, su(&srv, "/echo"), &o, NULL, 0), 0);
	cr_assert(tc_run(&t, 10000));
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.nbody, n);
	cr_expect_eq(memcmp(r.body, body, n), 0, "echoed body differs");
	tc_req_free(&r);
	free(body);
}

Test(client_post, empty_put_sends_content_length_zero)
{
	struct ferry_http_request_opts o = { .method = "PUT" };
	struct tc_req r;

	up(NULL);
	tc_req_init(&r, &t, 1024);
	cr_assert_eq(tc_start(&r, su(&srv, "/headers"), &o, NULL, 0), 0);
	cr_assert(tc_run(&t, 5000));
	cr_expect_eq(r.result, 200);
	cr_expect_neq(strstr(r.body, "Content-Length: 0"), NULL, "%s", r.body);
	tc_req_free(&r);
}

/* A producer: pieces of `piece` bytes of `data`, saying BODY_WAIT before
 * every `wait_every`-th piece and getting ready again from a timer. */
struct prod {
	struct ferry_timer timer;
	struct ferry_loop *loop;
	struct ferry_http_request *req;
	const char *data;
	size_t len, pos, piece;
	unsigned calls, wait_every, waits;
	bool waiting;
	size_t lie;	/* end early by this many bytes */
};

static void prod_wake(struct ferry_timer *tm)
{
	struct prod *p = (struct prod *)tm;

	ferry_http_request_body_ready(p->req);
}

static int prod_fn(void *ctx, struct ferry_http_request *req,
		   const void **data, size_t *len)
{
	struct tc_req *r = ctx;
	struct prod *p = (struct prod *)r->kept[0];
	size_t n;

	p->req = req;
	if (p->wait_every && !p->waiting && ++p->calls % p->wait_every == 0) {
		p->waiting = true;
		p->waits++;
		ferry_timer_start(p->loop, &p->timer,
				  ferry_time_now() + 2 * 1000 * 1000);
		return FERRY_HTTP_BODY_WAIT;
	}
	p->waiting = false;
	if (p->pos + p->lie >= p->len)
		return 0;
	n = p->len - p->pos - p->lie;
	if (n > p->piece)
		n = p->piece;
	*data = p->data + p->pos;
	*len = n;
	p->pos += n;
	return 1;
}

static void run_producer(int64_t fn_len, size_t n, size_t piece,
			 unsigned wait_every, size_t lie, struct tc_req *r,
			 struct prod *p, char **bodyp)
{
	char *body = pattern(n);
	struct ferry_http_request_opts o = { .method = "POST",
					     .body_fn = prod_fn,
					     .body_fn_len = fn_len };
	char why[256] = "";

	memset(p, 0, sizeof(*p));
	p->timer.fn = prod_wake;
	p->loop = t.loop;
	p->data = body;
	p->len = n;
	p->piece = piece;
	p->wait_every = wait_every;
	p->lie = lie;
	tc_req_init(r, &t, n);
	r->kept[0] = (uintptr_t)p;	/* the producer's state, via ctx */
	cr_assert_eq(tc_start(r, su(&srv, "/echo"), &o, why, sizeof(why)), 0,
		     "%s", why);
	cr_assert(tc_run(&t, 10000));
	*bodyp = body;
}

Test(client_post, producer_body_sent_chunked)
{
	struct tc_req r;
	struct prod p;
	char *body;

	up(NULL);
	run_producer(-1, 200000, 7000, 0, 0, &r, &p, &body);
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.nbody, 200000);
	cr_expect_eq(memcmp(r.body, body, 200000), 0);
	tc_req_free(&r);
	free(body);
}

Test(client_post, producer_that_waits)
{
	struct tc_req r;
	struct prod p;
	char *body;

	up(NULL);
	run_producer(-1, 50000, 3000, 3, 0, &r, &p, &body);
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_gt(p.waits, 3);
	cr_expect_eq(r.nbody, 50000);
	cr_expect_eq(memcmp(r.body, body, 50000), 0);
	tc_req_free(&r);
	free(body);
}

Test(client_post, producer_with_length)
{
	struct tc_req r;
	struct prod p;
	char *body;

	up(NULL);
	run_producer(30000, 30000, 4096, 0, 0, &r, &p, &body);
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.nbody, 30000);
	cr_expect_eq(memcmp(r.body, body, 30000), 0);
	tc_req_free(&r);
	free(body);
}

Test(client_post, producer_short_of_its_length_fails)
{
	struct tc_req r;
	struct prod p;
	char *body;

	up(NULL);
	run_producer(30000, 30000, 4096, 0, 100, &r, &p, &body);
	cr_expect_eq(r.result, FERRY_EINVAL, "%d %s", r.result, r.detail);
	cr_expect_neq(strstr(r.detail, "producer"), NULL, "%s", r.detail);
	tc_req_free(&r);
	free(body);
	tc_req_init(&r, &t, 8);
	tc_get(&r, NULL, su(&srv, "/method"));
	cr_assert(tc_run(&t, 5000));
	cr_expect_eq(r.result, 200);
	tc_req_free(&r);
}

/* ------------------------------------------------------------------ */
/* Redirects                                                            */

static void ngx_up(void)
{
	int rc = fx_nginx_start(&ngx);

	if (rc == FX_SKIP)
		cr_skip_test("%s", ngx.err);
	cr_assert_eq(rc, 0, "%s", ngx.err);
	tc_setup(&t, NULL);
}

static const char *nu(const char *path)
{
	static char buf[4][256];
	static unsigned i;
	char *b = buf[i++ % 4];

	snprintf(b, 256, "http://127.0.0.1:%d%s", ngx.port, path);
	return b;
}

static void follow(struct tc_req *r, const char *url, unsigned max)
{
	struct ferry_http_request_opts o = {
		.follow_redirects = FERRY_HTTP_FOLLOW_YES, .max_redirects = max,
	};
	char why[256] = "";

	cr_assert_eq(tc_start(r, url, &o, why, sizeof(why)), 0, "%s", why);
	cr_assert(tc_run(&t, 5000));
}

Test(client_post, redirects_followed_on_request)
{
	struct tc_req r;

	ngx_up();
	/* Not followed by default: the 301 is the result. */
	tc_req_init(&r, &t, 0);
	tc_get(&r, NULL, nu("/redirect"));
	cr_assert(tc_run(&t, 5000));
	cr_expect_eq(r.result, 301);
	/* Followed: relative and absolute Location, 302..308. */
	static const char *const paths[] = {
		"/redirect", "/redirect-abs", "/redirect-302", "/redirect-303",
		"/redirect-307", "/redirect-308", "/redirect-n/3",
	};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		tc_req_init(&r, &t, 0);
		follow(&r, nu(paths[i]), 0);
		cr_expect_eq(r.result, 200, "%s: %d %s", paths[i], r.result,
			     r.detail);
		cr_expect_eq(r.nbody, 100, "%s", paths[i]);
		cr_expect_eq(r.heads, 1, "redirect heads are not reported");
	}
	/* All of that on one connection. */
	cr_expect_eq(fx_nginx_wait_requests(&ngx, 17, 2000), 17);
	cr_expect_eq(fx_count_connections(&ngx), 1);
}

Test(client_post, too_many_redirects)
{
	struct tc_req r;

	ngx_up();
	tc_req_init(&r, &t, 0);
	follow(&r, nu("/redirect-n/5"), 3);
	cr_expect_eq(r.result, FERRY_EREDIRECTS, "%d %s", r.result, r.detail);
	cr_expect_neq(strstr(r.detail, "3 redirects"), NULL, "%s", r.detail);
	tc_req_init(&r, &t, 0);
	follow(&r, nu("/redirect-loop"), 0);
	cr_expect_eq(r.result, FERRY_EREDIRECTS, "%d %s", r.result, r.detail);
	tc_req_init(&r, &t, 0);
	follow(&r, nu("/redirect-n/5"), 5);
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
}

static void post_follow(struct tc_req *r, const char *url, const char *method)
{
	struct ferry_http_request_opts o = {
		.method = method, .body = "hello", .body_len = 5,
		.follow_redirects = FERRY_HTTP_FOLLOW_YES,
	};

	tc_req_init(r, &t, 64);
	cr_assert_eq(tc_start(r, url, &o, NULL, 0), 0);
	cr_assert(tc_run(&t, 5000));
}

Test(client_post, redirect_method_rules)
{
	struct tc_req r;

	up(NULL);
	/* 301/302/303 turn a POST into a GET without body. */
	post_follow(&r, su(&srv, "/redirect?303=/method"), "POST");
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_str_eq(r.body, "GET");
	tc_req_free(&r);
	post_follow(&r, su(&srv, "/redirect?301=/echo"), "POST");
	cr_expect_str_eq(r.body, "");
	tc_req_free(&r);
	/* 307/308 keep the method and the body. */
	post_follow(&r, su(&srv, "/redirect?307=/method"), "POST");
	cr_expect_str_eq(r.body, "POST");
	tc_req_free(&r);
	post_follow(&r, su(&srv, "/redirect?308=/echo"), "PUT");
	cr_expect_str_eq(r.body, "hello");
	tc_req_free(&r);
	/* HEAD stays HEAD. */
	post_follow(&r, su(&srv, "/redirect?302=/method"), "HEAD");
	cr_expect_eq(r.result, 200);
	cr_expect_eq(r.nbody, 0);
	tc_req_free(&r);
	/* Redirect to https: followed (nothing listens on port 1, so it
	 * ends with the connect failure, after the redirect). */
	post_follow(&r, su(&srv, "/redirect?302=https://127.0.0.1:1/"), "GET");
	cr_expect_eq(r.result, -ECONNREFUSED, "%d %s", r.result, r.detail);
	cr_expect_neq(strstr(r.detail, "127.0.0.1:1"), NULL, "%s", r.detail);
	tc_req_free(&r);
	/* A Location that is not a URL we take. */
	post_follow(&r, su(&srv, "/redirect?302=ftp://x/"), "GET");
	cr_expect_eq(r.result, FERRY_EURL, "%d %s", r.result, r.detail);
	tc_req_free(&r);
}

Test(client_post, producer_body_stops_at_307)
{
	struct ferry_http_request_opts o = {
		.method = "POST", .body_fn = prod_fn, .body_fn_len = -1,
		.follow_redirects = FERRY_HTTP_FOLLOW_YES,
	};
	struct prod p = { .piece = 10, .len = 10, .data = "0123456789" };
	struct tc_req r;

	up(NULL);
	p.timer.fn = prod_wake;
	p.loop = t.loop;
	tc_req_init(&r, &t, 0);
	r.kept[0] = (uintptr_t)&p;
	cr_assert_eq(tc_start(&r, su(&srv, "/redirect?307=/echo"), &o, NULL, 0), 0);
	cr_assert(tc_run(&t, 5000));
	cr_expect_eq(r.result, 307, "%d %s", r.result, r.detail);
}

Test(client_post, credentials_dropped_across_origins)
{
	struct ferry_http_header h[] = {
		FERRY_HTTP_HEADER("Authorization", "Bearer secret"),
		FERRY_HTTP_HEADER("Cookie", "a=b"),
		FERRY_HTTP_HEADER("X-Keep", "yes"),
	};
	struct ferry_http_request_opts o = {
		.headers = h, .nheaders = 3,
		.follow_redirects = FERRY_HTTP_FOLLOW_YES,
	};
	struct tc_req r;
	char path[256];

	up(NULL);
	cr_assert_eq(ts_start(&srv2), 0);
	srv2_up = true;
	/* Same origin: kept. */
	tc_req_init(&r, &t, 4096);
	cr_assert_eq(tc_start(&r, su(&srv, "/redirect?302=/headers"), &o, NULL, 0), 0);
	cr_assert(tc_run(&t, 5000));
	cr_expect_eq(r.result, 200);
	cr_expect_neq(strstr(r.body, "Authorization: Bearer secret"), NULL, "%s", r.body);
	cr_expect_neq(strstr(r.body, "Cookie: a=b"), NULL, "%s", r.body);
	tc_req_free(&r);
	/* Another port is another origin: dropped. */
	snprintf(path, sizeof(path), "/redirect?302=http://127.0.0.1:%d/headers",
		 srv2.port);
	tc_req_init(&r, &t, 4096);
	cr_assert_eq(tc_start(&r, su(&srv, path), &o, NULL, 0), 0);
	cr_assert(tc_run(&t, 5000));
	cr_expect_eq(r.result, 200);
	cr_expect_eq(strstr(r.body, "Authorization"), NULL, "%s", r.body);
	cr_expect_eq(strstr(r.body, "Cookie"), NULL, "%s", r.body);
	cr_expect_neq(strstr(r.body, "X-Keep: yes"), NULL, "%s", r.body);
	cr_expect_eq(srv2.conns, 1);
	tc_req_free(&r);
}
