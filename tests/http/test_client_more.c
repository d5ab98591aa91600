/*
 * test_client_more.c - what the fetch tool needs from the client: raw
 * headers (the head exactly as given), per-request timings, "localhost"
 * and "*.localhost" without the system resolver, and an empty reply told
 * apart from other protocol errors.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_client_util.h"

static struct ts srv;
static bool srv_up;
static struct tc t;

static void down(void)
{
	if (t.loop)
		tc_teardown(&t);
	if (srv_up)
		ts_stop(&srv);
	srv_up = false;
}

TestSuite(client_more, .fini = down, .timeout = 60);

static void up(void)
{
	cr_assert_eq(ts_start(&srv), 0);
	srv_up = true;
	tc_setup(&t, NULL);
}

static const char *url(const char *host, const char *path)
{
	static char buf[4][256];
	static unsigned i;
	char *b = buf[i++ % 4];

	snprintf(b, 256, "http://%s:%d%s", host, srv.port, path);
	return b;
}

/* ------------------------------------------------------------------ */
/* Raw headers                                                           */

Test(client_more, raw_headers_are_the_whole_head_in_order)
{
	struct ferry_http_header h[] = {
		FERRY_HTTP_HEADER("X-First", "1"),
		FERRY_HTTP_HEADER("Host", "virtual.example"),
		FERRY_HTTP_HEADER("Content-Length", "5"),
		FERRY_HTTP_HEADER("X-Empty", ""),
	};
	struct ferry_http_request_opts o = {
		.method = "POST", .headers = h, .nheaders = 4,
		.body = "hello", .body_len = 5, .raw_headers = true,
	};
	struct tc_req r;
	char why[256] = "";

	up();
	tc_req_init(&r, &t, 4096);
	cr_assert_eq(tc_start(&r, url("127.0.0.1", "/headers"), &o, why,
			      sizeof(why)), 0, "%s", why);
	cr_assert(tc_run(&t, 10000));
	cr_assert_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_str_eq(r.body, "POST /headers HTTP/1.1\r\nX-First: 1\r\n"
			 "Host: virtual.example\r\nContent-Length: 5\r\n"
			 "X-Empty:\r\n\r\n");
	tc_req_free(&r);
}

Test(client_more, raw_headers_add_nothing_but_a_body_length)
{
	struct ferry_http_header h[] = { FERRY_HTTP_HEADER("Accept", "*/*") };
	struct ferry_http_request_opts o = {
		.method = "POST", .headers = h, .nheaders = 1,
		.raw_headers = true,
	};
	struct tc_req r, r2;
	char why[256] = "";

	up();
	/* No Host, no User-Agent, no "Content-Length: 0" for an empty POST. */
	tc_req_init(&r, &t, 4096);
	cr_assert_eq(tc_start(&r, url("127.0.0.1", "/headers"), &o, why,
			      sizeof(why)), 0, "%s", why);
	/* A body without a Content-Length among the headers gets one, last. */
	o.body = "abc";
	o.body_len = 3;
	tc_req_init(&r2, &t, 4096);
	cr_assert_eq(tc_start(&r2, url("127.0.0.1", "/headers"), &o, why,
			      sizeof(why)), 0, "%s", why);
	cr_assert(tc_run(&t, 10000));
	cr_assert_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_str_eq(r.body, "POST /headers HTTP/1.1\r\nAccept: */*\r\n\r\n");
	cr_assert_eq(r2.result, 200, "%d %s", r2.result, r2.detail);
	cr_expect_str_eq(r2.body, "POST /headers HTTP/1.1\r\nAccept: */*\r\n"
			 "Content-Length: 3\r\n\r\n");
	tc_req_free(&r);
	tc_req_free(&r2);
}

Test(client_more, raw_headers_refuse_a_wrong_content_length)
{
	struct ferry_http_header h[] = { FERRY_HTTP_HEADER("Content-Length", "4") };
	struct ferry_http_request_opts o = {
		.method = "POST", .headers = h, .nheaders = 1,
		.body = "abc", .body_len = 3, .raw_headers = true,
	};
	struct tc_req r;
	char why[256] = "";

	up();
	tc_req_init(&r, &t, 0);
	cr_expect_eq(tc_start(&r, url("127.0.0.1", "/headers"), &o, why,
			      sizeof(why)), FERRY_EINVAL);
	cr_expect_neq(strstr(why, "Content-Length"), NULL, "%s", why);
	/* Without raw_headers a Content-Length stays the client's alone. */
	h[0] = (struct ferry_http_header)FERRY_HTTP_HEADER("Content-Length", "3");
	o.raw_headers = false;
	cr_expect_eq(tc_start(&r, url("127.0.0.1", "/headers"), &o, why,
			      sizeof(why)), FERRY_EINVAL);
	tc_req_free(&r);
}

/* ------------------------------------------------------------------ */
/* Timings                                                               */

struct timed {
	struct tc_req r;
	struct ferry_http_timings tm;
};

static void timed_done(void *ctx, struct ferry_http_request *req, int result,
		       const char *detail)
{
	struct timed *x = ctx;

	ferry_http_request_timings(req, &x->tm);
	tc_callbacks.on_done(&x->r, req, result, detail);
}

static int timed_head(void *ctx, struct ferry_http_request *req, int status)
{
	return tc_callbacks.on_head(&((struct timed *)ctx)->r, req, status);
}

static int timed_body(void *ctx, struct ferry_http_request *req,
		      const void *data, size_t len, uintptr_t token)
{
	return tc_callbacks.on_body(&((struct timed *)ctx)->r, req, data, len,
				    token);
}

static const struct ferry_http_callbacks timed_cb = {
	.on_head = timed_head, .on_body = timed_body, .on_done = timed_done,
};

static void timed_get(struct timed *x, const char *u)
{
	struct ferry_url pu = { 0 };
	struct ferry_http_request_opts o = { .cb = &timed_cb, .ctx = x };
	char why[256] = "";

	tc_req_init(&x->r, &t, 0);
	cr_assert_eq(ferry_url_parse(&pu, u, strlen(u), why, sizeof(why)), 0);
	o.url = &pu;
	cr_assert_eq(ferry_http_request_start(t.client, &o, &x->r.req, why,
					      sizeof(why)), 0, "%s", why);
	t.pending++;
	ferry_url_free(&pu);
	cr_assert(tc_run(&t, 10000));
}

Test(client_more, timings_follow_the_request_in_order)
{
	struct timed a, b;

	up();
	timed_get(&a, url("127.0.0.1", "/method"));
	cr_assert_eq(a.r.result, 200, "%d %s", a.r.result, a.r.detail);
	cr_expect_gt(a.tm.connect_ns, 0);
	cr_expect_leq(a.tm.namelookup_ns, a.tm.connect_ns);
	cr_expect_geq(a.tm.starttransfer_ns, a.tm.connect_ns);
	cr_expect_eq(a.tm.appconnect_ns, 0, "no TLS over http");
	cr_expect_lt(a.tm.starttransfer_ns, 10ull * 1000 * 1000 * 1000);
	/* Again on the pooled connection: connect counts as done when the
	 * request took it, and the first byte still comes after. */
	timed_get(&b, url("127.0.0.1", "/method"));
	cr_assert_eq(b.r.result, 200, "%d %s", b.r.result, b.r.detail);
	cr_expect_eq(srv.conns, 1, "the second request reused the connection");
	cr_expect_gt(b.tm.connect_ns, 0);
	cr_expect_geq(b.tm.starttransfer_ns, b.tm.connect_ns);
	cr_expect_gt(b.tm.starttransfer_ns, 0);
	tc_req_free(&a.r);
	tc_req_free(&b.r);
}

Test(client_more, timings_of_a_failed_connect_stop_early)
{
	struct timed a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	char u[64];

	/* A port nobody listens on: bound, never listening. */
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", ntohs(sa.sin_port));
	up();
	timed_get(&a, u);
	close(fd);
	cr_expect_eq(a.r.result, -ECONNREFUSED, "%d %s", a.r.result, a.r.detail);
	cr_expect_eq(a.tm.connect_ns, 0);
	cr_expect_eq(a.tm.starttransfer_ns, 0);
	tc_req_free(&a.r);
}

/* ------------------------------------------------------------------ */
/* localhost (RFC 6761)                                                  */

Test(client_more, localhost_names_are_loopback_without_dns)
{
	/* "sub.localhost" is in no /etc/hosts: only the rule resolves it. */
	const char *hosts[] = { "localhost", "sub.localhost", "a.b.LOCALHOST",
				"localhost." };
	struct tc_req r[4];

	up();
	for (int i = 0; i < 4; i++) {
		tc_req_init(&r[i], &t, 256);
		cr_assert_eq(tc_get(&r[i], NULL, url(hosts[i], "/method")), 0);
	}
	cr_assert(tc_run(&t, 10000));
	for (int i = 0; i < 4; i++) {
		cr_expect_eq(r[i].result, 200, "%s: %d %s", hosts[i],
			     r[i].result, r[i].detail);
		tc_req_free(&r[i]);
	}
}

/* ------------------------------------------------------------------ */
/* Empty reply                                                           */

static void *close_at_once(void *arg)
{
	int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
	char buf[4096];

	if (fd >= 0) {
		/* Read the request, answer nothing, close: curl's (52). */
		(void)!read(fd, buf, sizeof(buf));
		close(fd);
	}
	return NULL;
}

Test(client_more, a_close_before_any_byte_is_an_empty_reply)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	pthread_t th;
	struct tc_req r;
	char u[64];

	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 4), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	cr_assert_eq(pthread_create(&th, NULL, close_at_once, &lfd), 0);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", ntohs(sa.sin_port));
	up();
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_get(&r, NULL, u), 0);
	cr_assert(tc_run(&t, 10000));
	pthread_join(th, NULL);
	close(lfd);
	cr_expect_eq(r.result, FERRY_EEMPTY_REPLY, "%d %s", r.result, r.detail);
	cr_expect_neq(strstr(r.detail, "before any response byte"), NULL,
		      "%s", r.detail);
	tc_req_free(&r);
}
