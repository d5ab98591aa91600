/*
 * test_client_basic.c - the loop-side HTTP client against a real nginx:
 * bodies with checksums, HEAD, statuses, chunked, keep-alive reuse counted
 * on the server, pool limits, 1000 requests at once, zero-copy buffers,
 * pause/resume, cancellation, and input refused before any I/O.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test_client_util.h"

static struct fx_proc ngx = FX_PROC_INIT;
static struct tc t;
static char base[64];

static void ngx_up(const struct ferry_http_client_opts *opts)
{
	int rc = fx_nginx_start(&ngx);

	if (rc == FX_SKIP)
		cr_skip_test("%s", ngx.err);
	cr_assert_eq(rc, 0, "nginx: %s", ngx.err);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", ngx.port);
	tc_setup(&t, opts);
}

static void ngx_down(void)
{
	if (t.loop)
		tc_teardown(&t);
	fx_stop(&ngx);
}

static const char *url(const char *path)
{
	static char buf[8][256];
	static unsigned i;
	char *b = buf[i++ % 8];

	snprintf(b, 256, "%s%s", base, path);
	return b;
}

static void expect_file(struct tc_req *r, const char *name)
{
	size_t size;
	uint64_t fnv;

	cr_assert_eq(fx_manifest_get(&ngx, name, &size, &fnv), 0, "%s", name);
	cr_expect_eq(r->result, 200, "%s: result %d (%s)", name, r->result,
		     r->detail);
	cr_expect_eq(r->nbody, size, "%s: %llu bytes, want %zu", name,
		     (unsigned long long)r->nbody, size);
	cr_expect_eq(r->fnv, fnv, "%s: checksum differs", name);
	cr_expect_eq(r->done_calls, 1);
}

static bool have_echo(void)
{
	char path[4200], line[64];
	bool yes = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/www/manifest.txt", ngx.dir);
	f = fopen(path, "r");
	if (!f) {
		snprintf(path, sizeof(path), "%s/manifest.txt", ngx.dir);
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

TestSuite(client_basic, .fini = ngx_down, .timeout = 60);

Test(client_basic, get_small_and_large_files)
{
	static const char *const names[] = {
		"small.txt", "1k.bin", "64k.bin", "1m.bin", "16m.bin",
	};
	struct tc_req r[5];

	ngx_up(NULL);
	for (int i = 0; i < 5; i++) {
		char path[64];

		tc_req_init(&r[i], &t, 0);
		snprintf(path, sizeof(path), "/%s", names[i]);
		tc_get(&r[i], NULL, url(path));
	}
	cr_assert(tc_run(&t, 30000), "requests did not finish");
	for (int i = 0; i < 5; i++) {
		expect_file(&r[i], names[i]);
		tc_req_free(&r[i]);
	}
}

Test(client_basic, head_has_no_body)
{
	struct tc_req r;

	ngx_up(NULL);
	tc_req_init(&r, &t, 0);
	tc_get(&r, "HEAD", url("/1m.bin"));
	cr_assert(tc_run(&t, 5000));
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.heads, 1);
	cr_expect_eq(r.nbody, 0);
	/* The connection stays usable after a HEAD (no body was expected). */
	tc_req_init(&r, &t, 0);
	tc_get(&r, NULL, url("/small.txt"));
	cr_assert(tc_run(&t, 5000));
	expect_file(&r, "small.txt");
	cr_expect_eq(fx_nginx_wait_requests(&ngx, 2, 2000), 2);
	cr_expect_eq(fx_count_connections(&ngx), 1);
}

Test(client_basic, statuses_are_results_not_errors)
{
	static const int codes[] = { 404, 500, 204, 201, 418, 503 };
	struct tc_req r[6];

	ngx_up(NULL);
	for (int i = 0; i < 6; i++) {
		char path[64];

		tc_req_init(&r[i], &t, 0);
		snprintf(path, sizeof(path), "/status/%d", codes[i]);
		tc_get(&r[i], NULL, url(path));
	}
	cr_assert(tc_run(&t, 5000));
	for (int i = 0; i < 6; i++) {
		cr_expect_eq(r[i].result, codes[i], "%d: %d %s", codes[i],
			     r[i].result, r[i].detail);
		cr_expect_eq(r[i].status, codes[i]);
		cr_expect_str_empty(r[i].detail);
	}
	cr_expect_eq(r[2].nbody, 0, "204 has no body");
}

Test(client_basic, chunked_and_lines)
{
	struct tc_req r1, r2;

	ngx_up(NULL);
	if (!have_echo())
		cr_skip_test("nginx echo module missing");
	tc_req_init(&r1, &t, 64);
	tc_req_init(&r2, &t, 0);
	tc_get(&r1, NULL, url("/chunked"));
	tc_get(&r2, NULL, url("/lines"));
	cr_assert(tc_run(&t, 5000));
	cr_expect_eq(r1.result, 200, "%d %s", r1.result, r1.detail);
	cr_expect_str_eq(r1.body,
		"chunk 1\nchunk 2\nchunk 3\nchunk 4\nchunk 5\n");
	cr_expect_eq(r2.result, 200);
	cr_expect_eq(r2.nbody, 21000);
	tc_req_free(&r1);
}

/* Sequential requests run on one connection, as nginx's log proves. */
Test(client_basic, keepalive_reuses_one_connection)
{
	struct ferry_http_client_stats st;

	ngx_up(NULL);
	for (int i = 0; i < 10; i++) {
		struct tc_req r;

		tc_req_init(&r, &t, 0);
		tc_get(&r, NULL, url("/small.txt"));
		cr_assert(tc_run(&t, 5000));
		expect_file(&r, "small.txt");
		cr_expect_eq(r.reused, i > 0, "request %d reused=%d", i, r.reused);
	}
	cr_expect_eq(fx_nginx_wait_requests(&ngx, 10, 2000), 10);
	cr_expect_eq(fx_count_connections(&ngx), 1,
		     "server saw %d connections", fx_count_connections(&ngx));
	ferry_http_client_stats(t.client, &st);
	cr_expect_eq(st.conns_opened, 1);
	cr_expect_eq(st.idle, 1);
}

/* 20 requests at once with a per-origin limit of 2. */
Test(client_basic, per_origin_limit_is_honoured)
{
	struct ferry_http_client_opts o = { .max_conns_per_origin = 2 };
	struct tc_req r[20];
	struct ferry_http_client_stats st;

	ngx_up(&o);
	for (int i = 0; i < 20; i++) {
		tc_req_init(&r[i], &t, 0);
		tc_get(&r[i], NULL, url("/64k.bin"));
	}
	ferry_http_client_stats(t.client, &st);
	cr_expect_eq(st.conns, 2);
	cr_expect_eq(st.waiting, 18);
	cr_assert(tc_run(&t, 10000));
	for (int i = 0; i < 20; i++)
		expect_file(&r[i], "64k.bin");
	cr_expect_eq(fx_nginx_wait_requests(&ngx, 20, 2000), 20);
	cr_expect_leq(fx_count_connections(&ngx), 2, "server saw %d",
		      fx_count_connections(&ngx));
}

/* The total limit holds across origins (127.0.0.1 and localhost). */
Test(client_basic, total_limit_across_origins)
{
	struct ferry_http_client_opts o = { .max_conns = 3 };
	struct tc_req r[12];
	struct ferry_http_client_stats st;
	char lurl[128];

	ngx_up(&o);
	snprintf(lurl, sizeof(lurl), "http://localhost:%d/1k.bin", ngx.port);
	for (int i = 0; i < 12; i++) {
		tc_req_init(&r[i], &t, 0);
		tc_get(&r[i], NULL, i % 2 ? lurl : url("/1k.bin"));
	}
	ferry_http_client_stats(t.client, &st);
	cr_expect_eq(st.conns, 3);
	cr_assert(tc_run(&t, 10000));
	for (int i = 0; i < 12; i++)
		expect_file(&r[i], "1k.bin");
	cr_expect_eq(fx_nginx_wait_requests(&ngx, 12, 2000), 12);
	ferry_http_client_stats(t.client, &st);
	cr_expect_leq(st.conns, 3);
}

Test(client_basic, thousand_requests_in_flight)
{
	struct ferry_http_client_opts o = { .max_conns_per_origin = 64 };
	static const char *const names[] = { "small.txt", "1k.bin", "64k.bin" };
	struct tc_req *r = calloc(1000, sizeof(*r));

	ngx_up(&o);
	for (int i = 0; i < 1000; i++) {
		char path[32];

		tc_req_init(&r[i], &t, 0);
		snprintf(path, sizeof(path), "/%s", names[i % 3]);
		tc_get(&r[i], NULL, url(path));
	}
	cr_expect_eq(t.pending, 1000);
	cr_assert(tc_run(&t, 40000), "%u still pending", t.pending);
	for (int i = 0; i < 1000; i++)
		expect_file(&r[i], names[i % 3]);
	cr_expect_leq(fx_count_connections(&ngx), 64);
	free(r);
}

/* Buffers kept by on_body stay intact until released. */
Test(client_basic, kept_buffers_stay_valid_until_released)
{
	struct ferry_http_client_opts o = { .recv_buf_count = 64,
					    .recv_buf_size = 4096 };
	struct tc_req r;

	ngx_up(&o);
	tc_req_init(&r, &t, 0);
	r.keep_bufs = true;
	tc_get(&r, NULL, url("/64k.bin"));
	cr_assert(tc_run(&t, 5000));
	cr_assert_eq(r.result, 200, "%d %s", r.result, r.detail);
	/* Everything kept: the kept tokens are buffers of the ring. */
	cr_assert_gt(r.nkept, 0);
	cr_expect_eq(ferry_http_buffer_release(t.client, 0), FERRY_EINVAL);
	cr_expect_eq(ferry_http_buffer_release(t.client, 1000), FERRY_EINVAL);
	tc_release_kept(&r);
	/* Released buffers are reused: another download still works. */
	tc_req_init(&r, &t, 0);
	tc_get(&r, NULL, url("/1m.bin"));
	cr_assert(tc_run(&t, 10000));
	expect_file(&r, "1m.bin");
}

/* A client closed while buffers are kept waits for their release. */
Test(client_basic, close_waits_for_kept_buffers)
{
	struct tc_req r;

	ngx_up(NULL);
	tc_req_init(&r, &t, 0);
	r.keep_bufs = true;
	tc_get(&r, NULL, url("/small.txt"));
	cr_assert(tc_run(&t, 5000));
	cr_assert_eq(r.result, 200);
	cr_assert_gt(r.nkept, 0);
	ferry_http_client_close(t.client, NULL, NULL);
	tc_spin(&t, 20);
	/* Still alive: the release must be accepted. */
	tc_release_kept(&r);
	t.client = NULL;
}

Test(client_basic, pause_and_resume_deliver_everything)
{
	struct tc_req r;

	ngx_up(NULL);
	tc_req_init(&r, &t, 0);
	r.pause_every = 3;
	tc_get(&r, NULL, url("/16m.bin"));
	cr_assert(tc_run(&t, 20000));
	expect_file(&r, "16m.bin");
}

/* A request paused for a while gets no on_body, then all of it. */
Test(client_basic, paused_request_waits)
{
	struct tc_req r;
	uint64_t got;

	ngx_up(NULL);
	tc_req_init(&r, &t, 0);
	tc_get(&r, NULL, url("/16m.bin"));
	while (r.nbody == 0 && !r.done)
		ferry_loop_run_once(t.loop, 100 * 1000 * 1000);
	cr_assert(!r.done);
	ferry_http_request_pause(r.req);
	tc_spin(&t, 50);
	got = r.nbody;
	tc_spin(&t, 200);
	cr_expect_eq(r.nbody, got, "body arrived while paused");
	cr_expect(!r.done);
	ferry_http_request_resume(r.req);
	cr_assert(tc_run(&t, 20000));
	expect_file(&r, "16m.bin");
}

/* Paused before any byte: nothing is delivered, and the recv stops, so
 * the shared ring is not drained by a reader that does not read. */
Test(client_basic, paused_from_the_start)
{
	struct ferry_http_client_opts o = { .recv_buf_count = 16,
					    .recv_buf_size = 4096 };
	struct tc_req r, other;

	ngx_up(&o);
	tc_req_init(&r, &t, 0);
	tc_get(&r, NULL, url("/16m.bin"));
	ferry_http_request_pause(r.req);
	tc_spin(&t, 300);
	cr_expect_eq(r.heads, 0);
	cr_expect_eq(r.nbody, 0);
	cr_expect(!r.done);
	/* Another request on the same client still gets buffers. */
	tc_req_init(&other, &t, 0);
	tc_get(&other, NULL, url("/1m.bin"));
	while (!other.done)
		ferry_loop_run_once(t.loop, 100 * 1000 * 1000);
	expect_file(&other, "1m.bin");
	/* The first piece after resume comes from the bytes copied out of
	 * the ring at the pause: keeping it works like keeping a buffer.
	 * What forces the copy (the ring short when the recv stops): the
	 * fixture's nginx corks its output (sendfile with tcp_nopush), so
	 * the head arrives with 64 KiB of body behind it, and the first
	 * completion already took all 16 buffers of 4 KiB (one bundle, or
	 * the multishot's retries before the loop sees a completion). */
	r.keep_bufs = true;
	r.keep_limit = 1;
	ferry_http_request_resume(r.req);
	cr_assert(tc_run(&t, 20000));
	expect_file(&r, "16m.bin");
	cr_assert_eq(r.nkept, 1);
	cr_expect_gt(r.kept[0], 16, "expected a spill token");
	tc_release_kept(&r);
	cr_expect_eq(ferry_http_buffer_release(t.client, r.kept[0]), FERRY_EINVAL,
		     "released twice");
}

/* Paused with the ring mostly free: what arrived before the recv stopped
 * stays in its ring buffers, uncopied (a 1 MiB body can never take more
 * than a quarter of 1024 buffers of 4 KiB, so the ring is never short). */
Test(client_basic, paused_with_a_free_ring_copies_nothing)
{
	struct ferry_http_client_opts o = { .recv_buf_count = 1024,
					    .recv_buf_size = 4096 };
	struct tc_req r;

	ngx_up(&o);
	tc_req_init(&r, &t, 0);
	tc_get(&r, NULL, url("/1m.bin"));
	ferry_http_request_pause(r.req);
	tc_spin(&t, 300);
	cr_expect_eq(r.nbody, 0);
	r.keep_bufs = true;
	r.keep_limit = 1;
	ferry_http_request_resume(r.req);
	cr_assert(tc_run(&t, 20000));
	expect_file(&r, "1m.bin");
	cr_assert_eq(r.nkept, 1);
	cr_expect_leq(r.kept[0], 1024, "a copy (token %lu), not a ring buffer",
		      (unsigned long)r.kept[0]);
	tc_release_kept(&r);
}

Test(client_basic, cancel_mid_body)
{
	struct tc_req r, ok;

	ngx_up(NULL);
	tc_req_init(&r, &t, 0);
	r.cancel_after = 100000;
	tc_get(&r, NULL, url("/16m.bin"));
	cr_assert(tc_run(&t, 10000));
	cr_expect_eq(r.result, FERRY_ECANCELED, "%d %s", r.result, r.detail);
	cr_expect_eq(r.done_calls, 1);
	cr_expect_lt(r.nbody, 16u << 20);
	cr_expect_neq(strstr(r.detail, "cancel"), NULL, "%s", r.detail);
	/* The loop is fine afterwards. */
	tc_req_init(&ok, &t, 0);
	tc_get(&ok, NULL, url("/small.txt"));
	cr_assert(tc_run(&t, 5000));
	expect_file(&ok, "small.txt");
}

Test(client_basic, cancel_from_outside_at_every_stage)
{
	struct tc_req r[3];

	ngx_up(NULL);
	/* Right after start (waiting or connecting). */
	tc_req_init(&r[0], &t, 0);
	tc_get(&r[0], NULL, url("/1m.bin"));
	ferry_http_request_cancel(r[0].req);
	cr_expect(r[0].done);
	cr_expect_eq(r[0].result, FERRY_ECANCELED);
	/* After a few turns. */
	tc_req_init(&r[1], &t, 0);
	tc_get(&r[1], NULL, url("/16m.bin"));
	while (!r[1].heads && !r[1].done)
		ferry_loop_run_once(t.loop, 100 * 1000 * 1000);
	ferry_http_request_cancel(r[1].req);
	cr_expect_eq(r[1].result, FERRY_ECANCELED);
	cr_expect_eq(r[1].done_calls, 1);
	cr_assert(tc_run(&t, 5000));
	tc_req_init(&r[2], &t, 0);
	tc_get(&r[2], NULL, url("/small.txt"));
	cr_assert(tc_run(&t, 5000));
	expect_file(&r[2], "small.txt");
}

Test(client_basic, close_with_requests_in_flight)
{
	struct tc_req r[10];

	ngx_up(NULL);
	for (int i = 0; i < 10; i++) {
		tc_req_init(&r[i], &t, 0);
		tc_get(&r[i], NULL, url("/16m.bin"));
	}
	tc_spin(&t, 30);
	tc_teardown(&t);
	for (int i = 0; i < 10; i++) {
		cr_expect_eq(r[i].done_calls, 1);
		cr_expect(r[i].result == FERRY_ECLOSED || r[i].result == 200,
			  "%d", r[i].result);
	}
}

/* Refused before any I/O: no callback, a reason, nothing logged. */
Test(client_basic, bad_input_refused_before_io)
{
	struct ferry_http_header crlf[] = { FERRY_HTTP_HEADER("X-A", "b\r\nEvil: 1") };
	struct ferry_http_header cl[] = { FERRY_HTTP_HEADER("Content-Length", "5") };
	struct ferry_http_request_opts o = { 0 };
	struct tc_req r;
	char why[256];
	int ret;

	ngx_up(NULL);
	tc_req_init(&r, &t, 0);
	ret = tc_start(&r, "http://127.0.0.1:99999/", NULL, why, sizeof(why));
	cr_expect_eq(ret, FERRY_EURL);
	cr_expect_neq(strstr(why, "port"), NULL, "%s", why);
	ret = tc_start(&r, "http://a b/", NULL, why, sizeof(why));
	cr_expect_eq(ret, FERRY_EURL, "%s", why);
	ret = tc_start(&r, url("/x"), &(struct ferry_http_request_opts){
		.method = "GE T" }, why, sizeof(why));
	cr_expect_eq(ret, FERRY_EINVAL, "%s", why);
	o.headers = crlf;
	o.nheaders = 1;
	ret = tc_start(&r, url("/x"), &o, why, sizeof(why));
	cr_expect_eq(ret, FERRY_EINVAL, "%s", why);
	o.headers = cl;
	ret = tc_start(&r, url("/x"), &o, why, sizeof(why));
	cr_expect_eq(ret, FERRY_EINVAL, "%s", why);
	ret = tc_start(&r, "ftp://127.0.0.1/", NULL, why, sizeof(why));
	cr_expect_eq(ret, FERRY_EURL, "%s", why);
	cr_expect_eq(t.pending, 0);
	cr_expect_eq(r.done_calls, 0);
	tc_spin(&t, 20);
	cr_expect_eq(r.done_calls, 0);
	cr_expect_eq(fx_nginx_count_requests(&ngx), 0);
}

Test(client_basic, name_resolution_and_failures)
{
	struct tc_req r1, r2, r3;
	char u[128];

	setenv("RES_OPTIONS", "timeout:1 attempts:1", 1);
	ngx_up(NULL);
	tc_req_init(&r1, &t, 0);
	snprintf(u, sizeof(u), "http://localhost:%d/small.txt", ngx.port);
	tc_get(&r1, NULL, u);
	tc_req_init(&r2, &t, 0);
	tc_get(&r2, NULL, "http://nosuchhost.invalid/");
	tc_req_init(&r3, &t, 0);
	/* Port 1 on loopback: nothing listens. */
	tc_get(&r3, NULL, "http://127.0.0.1:1/");
	cr_assert(tc_run(&t, 10000));
	expect_file(&r1, "small.txt");
	cr_expect_eq(r2.result, FERRY_EDNS, "%d %s", r2.result, r2.detail);
	cr_expect_neq(strstr(r2.detail, "nosuchhost.invalid"), NULL, "%s",
		      r2.detail);
	cr_expect_eq(r3.result, -ECONNREFUSED, "%d %s", r3.result, r3.detail);
	cr_expect_neq(strstr(r3.detail, "ECONNREFUSED"), NULL, "%s", r3.detail);
}

/* Closing the client from inside on_body, keeping that very buffer: the
 * request ends with FERRY_ECLOSED once, and the client is freed only
 * after the buffer comes back. */
struct close_in_cb {
	struct ferry_http_client *client;
	uintptr_t token;
	const void *data;
	int done_calls, result;
	bool closed;
};

static void cic_closed(void *ctx)
{
	((struct close_in_cb *)ctx)->closed = true;
}

static int cic_body(void *ctx, struct ferry_http_request *req,
		    const void *data, size_t len, uintptr_t token)
{
	struct close_in_cb *x = ctx;

	if (x->token)
		return 0;
	x->token = token;
	x->data = len >= 16 ? data : NULL;
	ferry_http_client_close(x->client, cic_closed, x);
	return FERRY_HTTP_KEEP;
}

static void cic_done(void *ctx, struct ferry_http_request *req, int result,
		     const char *detail)
{
	struct close_in_cb *x = ctx;

	x->done_calls++;
	x->result = result;
}

Test(client_basic, close_from_inside_on_body)
{
	static const struct ferry_http_callbacks cb = {
		.on_body = cic_body, .on_done = cic_done,
	};
	struct close_in_cb x = { 0 };
	struct ferry_http_request_opts o = { .cb = &cb, .ctx = &x };
	struct ferry_http_request *req;
	struct ferry_url u;
	char path[4200], want[16];
	FILE *f;

	ngx_up(NULL);
	x.client = t.client;
	cr_assert_eq(ferry_url_parse(&u, url("/1m.bin"), strlen(url("/1m.bin")),
				     NULL, 0), 0);
	o.url = &u;
	cr_assert_eq(ferry_http_request_start(t.client, &o, &req, NULL, 0), 0);
	ferry_url_free(&u);
	for (int i = 0; i < 200 && !x.done_calls; i++)
		ferry_loop_run_once(t.loop, 20 * 1000 * 1000);
	cr_assert_eq(x.done_calls, 1);
	cr_expect_eq(x.result, FERRY_ECLOSED);
	tc_spin(&t, 50);
	cr_expect(!x.closed, "client freed while a buffer is kept");
	fx_nginx_file(&ngx, "1m.bin", path, sizeof(path));
	f = fopen(path, "rb");
	cr_assert(f);
	cr_assert_eq(fread(want, 1, 16, f), 16);
	fclose(f);
	cr_assert(x.data);
	cr_expect_eq(memcmp(x.data, want, 16), 0, "kept buffer changed");
	cr_expect_eq(ferry_http_buffer_release(t.client, x.token), 0);
	cr_expect(x.closed);
	cr_expect_eq(x.done_calls, 1);
	t.client = NULL;
}
