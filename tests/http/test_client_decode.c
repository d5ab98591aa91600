/*
 * test_client_decode.c - content decoding on the loop-side client: what
 * is asked for (Accept-Encoding), what is decoded (gzip, x-gzip, deflate
 * zlib-wrapped and raw, gzip members, chunked), what is left alone
 * (identity, an unknown coding, decoding off), the errors (corrupt,
 * truncated, trailing garbage, a bomb against either limit), a body
 * decoded while on_body pauses after every block, and nginx's own gzip.
 * Peers: tests/servers/encoded.py, nginx (/gz/), and the in-process
 * server's /headers.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test_client_util.h"

static struct fx_proc enc = FX_PROC_INIT, ngx = FX_PROC_INIT;
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
	fx_stop(&enc);
	fx_stop(&ngx);
}

TestSuite(client_decode, .fini = down, .timeout = 90);

static void start_encoded(void)
{
	int rc = fx_python_start(&enc, "encoded.py", NULL);

	if (rc == FX_SKIP)
		cr_skip_test("python3 missing");
	cr_assert_eq(rc, 0, "encoded.py: %s", enc.err);
}

/* encoded.py, then a client with decoding on or off and its limits. */
static void up(bool decode, uint64_t max_decoded, unsigned ratio)
{
	struct ferry_http_client_opts o = {
		.decode_content = decode,
		.max_decoded = max_decoded,
		.max_decode_ratio = ratio,
	};

	start_encoded();
	tc_setup(&t, &o);
}

static const char *enc_url(const char *path)
{
	static char buf[4][256];
	static unsigned i;
	char *b = buf[i++ % 4];

	snprintf(b, 256, "http://127.0.0.1:%d%s", enc.port, path);
	return b;
}

/* FNV-1a 64 of @n pattern bytes (byte i is i % 251), @reps times. */
static uint64_t pattern_fnv(size_t n, int reps)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (int r = 0; r < reps; r++)
		for (size_t i = 0; i < n; i++) {
			h ^= (unsigned char)(i % 251);
			h *= 0x100000001b3ull;
		}
	return h;
}

/* GET @path from encoded.py into @r; returns the result. */
static int get(struct tc_req *r, const char *path,
	       const struct ferry_http_request_opts *o)
{
	char why[256] = "";

	cr_assert_eq(tc_start(r, enc_url(path), o, why, sizeof(why)), 0,
		     "%s", why);
	cr_assert(tc_run(&t, 30000), "request did not finish");
	cr_assert(r->done);
	return r->result;
}

static void expect_pattern(const char *path, size_t n, int reps)
{
	struct tc_req r;
	int rc;

	tc_req_init(&r, &t, 0);
	rc = get(&r, path, NULL);
	cr_assert_eq(rc, 200, "%s: %d %s", path, rc, r.detail);
	cr_expect_eq(r.nbody, n * reps, "%s: %llu bytes", path,
		     (unsigned long long)r.nbody);
	cr_expect_eq(r.fnv, pattern_fnv(n, reps), "%s: wrong bytes", path);
	tc_req_free(&r);
}

Test(client_decode, gzip_deflate_raw_deflate_xgzip_chunked_members)
{
	up(true, 0, 0);
	expect_pattern("/gzip/100000", 100000, 1);
	expect_pattern("/gzip/0", 0, 1);
	expect_pattern("/x-gzip/5000", 5000, 1);
	expect_pattern("/gzip-chunked/300000", 300000, 1);
	expect_pattern("/deflate/100000", 100000, 1);
	expect_pattern("/raw-deflate/100000", 100000, 1);
	expect_pattern("/raw-deflate/1", 1, 1);
	expect_pattern("/gzip-members/70000", 70000, 2);
	/* Not decoded: identity, and a coding the client does not know. */
	expect_pattern("/identity/20000", 20000, 1);
	expect_pattern("/br/20000", 20000, 1);
}

Test(client_decode, off_by_default_and_per_request)
{
	struct ferry_http_request_opts yes = {
		.decode_content = FERRY_HTTP_DECODE_YES };
	struct ferry_http_request_opts no = {
		.decode_content = FERRY_HTTP_DECODE_NO };
	struct tc_req r;

	up(false, 0, 0);
	/* Off: the encoded bytes, as sent (gzip starts 1f 8b). */
	tc_req_init(&r, &t, 16);
	cr_assert_eq(get(&r, "/gzip/100000", NULL), 200, "%s", r.detail);
	cr_expect_lt(r.nbody, 100000);
	cr_expect_eq((unsigned char)r.body[0], 0x1f);
	cr_expect_eq((unsigned char)r.body[1], 0x8b);
	tc_req_free(&r);
	/* On for one request. */
	tc_req_init(&r, &t, 0);
	cr_assert_eq(get(&r, "/gzip/100000", &yes), 200, "%s", r.detail);
	cr_expect_eq(r.nbody, 100000);
	cr_expect_eq(r.fnv, pattern_fnv(100000, 1));
	tc_req_free(&r);
	tc_teardown(&t);
	memset(&t, 0, sizeof(t));
	fx_stop(&enc);

	/* On for the client, off for one request. */
	up(true, 0, 0);
	tc_req_init(&r, &t, 16);
	cr_assert_eq(get(&r, "/gzip/100000", &no), 200, "%s", r.detail);
	cr_expect_lt(r.nbody, 100000);
	cr_expect_eq((unsigned char)r.body[0], 0x1f);
	tc_req_free(&r);
}

/* The request head as the in-process server saw it. */
static void head_of(const struct ferry_http_request_opts *o, char *out,
		    size_t len)
{
	char u[128], why[256] = "";
	struct tc_req r;

	snprintf(u, sizeof(u), "http://127.0.0.1:%d/headers", srv.port);
	tc_req_init(&r, &t, 4096);
	cr_assert_eq(tc_start(&r, u, o, why, sizeof(why)), 0, "%s", why);
	cr_assert(tc_run(&t, 10000));
	cr_assert_eq(r.result, 200, "%d %s", r.result, r.detail);
	snprintf(out, len, "%s", r.body);
	tc_req_free(&r);
}

Test(client_decode, accept_encoding_sent_unless_the_caller_has_one)
{
	struct ferry_http_header mine[] = {
		FERRY_HTTP_HEADER("accept-encoding", "gzip"),
	};
	struct ferry_http_header host[] = {
		FERRY_HTTP_HEADER("Host", "x"),
	};
	struct ferry_http_request_opts o = { 0 };
	struct ferry_http_client_opts co = { .decode_content = true };
	char head[4096];

	cr_assert_eq(ts_start(&srv), 0);
	srv_up = true;
	tc_setup(&t, &co);
	head_of(&o, head, sizeof(head));
	cr_expect(strstr(head, "\r\nAccept-Encoding: gzip, deflate\r\n"),
		  "%s", head);
	o.headers = mine;
	o.nheaders = 1;
	head_of(&o, head, sizeof(head));
	cr_expect(strstr(head, "\r\naccept-encoding: gzip\r\n"), "%s", head);
	cr_expect_null(strstr(head, "deflate"), "%s", head);
	/* raw_headers: the caller's head, nothing added. */
	o.headers = host;
	o.raw_headers = true;
	head_of(&o, head, sizeof(head));
	cr_expect_null(strcasestr(head, "Accept-Encoding"), "%s", head);
	o.raw_headers = false;
	o.headers = NULL;
	o.nheaders = 0;
	o.decode_content = FERRY_HTTP_DECODE_NO;
	head_of(&o, head, sizeof(head));
	cr_expect_null(strcasestr(head, "Accept-Encoding"), "%s", head);
}

static void expect_error(const char *path, int err, const char *words)
{
	struct tc_req r;
	int rc;

	tc_req_init(&r, &t, 0);
	rc = get(&r, path, NULL);
	cr_expect_eq(rc, err, "%s: %d (%s) %s", path, rc,
		     ferry_strerrorname(rc), r.detail);
	cr_expect(strstr(r.detail, words), "%s: detail \"%s\" lacks \"%s\"",
		  path, r.detail, words);
	tc_req_free(&r);
}

Test(client_decode, corrupt_truncated_and_trailing_bytes_fail_clearly)
{
	up(true, 0, 0);
	expect_error("/corrupt/100000", FERRY_EDECODE, "gzip body is corrupt");
	expect_error("/corrupt/100000", FERRY_EDECODE, "incorrect data check");
	expect_error("/bad-block/100000", FERRY_EDECODE, "invalid block type");
	expect_error("/truncated/100000", FERRY_EDECODE, "truncated");
	expect_error("/deflate-trailing/1000", FERRY_EDECODE,
		     "after the end of its compressed stream");
	/* The connection and the client go on serving. */
	expect_pattern("/gzip/1000", 1000, 1);
}

Test(client_decode, bomb_stops_at_the_ratio_or_the_size_limit)
{
	struct tc_req r;

	/* 64 MiB of zeros in about 64 KiB: over 100:1 once 1 MiB is out. */
	up(true, 0, 0);
	tc_req_init(&r, &t, 0);
	cr_assert_eq(get(&r, "/zeros/67108864", NULL), FERRY_ETOOLARGE,
		     "%s", r.detail);
	cr_expect(strstr(r.detail, "decompression bomb"), "%s", r.detail);
	cr_expect(strstr(r.detail, "max_decode_ratio"), "%s", r.detail);
	cr_expect_leq(r.nbody, (2u << 20), "%llu bytes delivered",
		      (unsigned long long)r.nbody);
	tc_req_free(&r);
	tc_teardown(&t);
	memset(&t, 0, sizeof(t));
	fx_stop(&enc);

	/* No ratio limit: the size limit stops it. */
	up(true, 4u << 20, UINT_MAX);
	tc_req_init(&r, &t, 0);
	cr_assert_eq(get(&r, "/zeros/67108864", NULL), FERRY_ETOOLARGE,
		     "%s", r.detail);
	cr_expect(strstr(r.detail, "exceeds the limit of 4194304 bytes (max_decoded)"),
		  "%s", r.detail);
	cr_expect_leq(r.nbody, 4u << 20);
	tc_req_free(&r);
	/* Under both limits it is a body like any other. */
	expect_pattern("/gzip/4000000", 4000000, 1);
}

Test(client_decode, pause_in_every_on_body_and_kept_blocks)
{
	struct tc_req r;

	int rc;

	/* The pattern compresses about 250:1: no ratio limit here. */
	up(true, 0, UINT_MAX);
	/* Each on_body pauses and resumes: the decoder stops mid-slice and
	 * goes on from the next loop turn; blocks kept and released. */
	tc_req_init(&r, &t, 0);
	r.pause_every = 1;
	r.keep_bufs = true;
	r.keep_limit = 8;
	rc = get(&r, "/gzip/2000000", NULL);
	tc_release_kept(&r);
	cr_assert_eq(rc, 200, "%s", r.detail);
	cr_expect_eq(r.nbody, 2000000);
	cr_expect_eq(r.fnv, pattern_fnv(2000000, 1));
	cr_expect_gt(r.bodies, 100, "%u on_body calls", r.bodies);
	tc_req_free(&r);
	tc_req_init(&r, &t, 0);
	r.pause_every = 1;
	cr_assert_eq(get(&r, "/gzip-members/500000", NULL), 200, "%s", r.detail);
	cr_expect_eq(r.fnv, pattern_fnv(500000, 2));
	tc_req_free(&r);
}

/*
 * A reader that pauses in every on_body and resumes from the loop's next
 * turns, as the blocking streams do: the decoder must stop after one
 * block and go on from where it stopped, also after the last slice.
 */
struct slow {
	struct ferry_http_request *req;
	bool paused, done;
	int result, calls;
	uint64_t n, fnv;
	char detail[FERRY_HTTP_DETAIL_MAX];
};

static int slow_body(void *ctx, struct ferry_http_request *req,
		     const void *data, size_t len, uintptr_t token)
{
	struct slow *s = ctx;

	cr_assert(!s->paused, "on_body while paused");
	s->n += len;
	s->fnv = fx_fnv1a64(s->fnv, data, len);
	s->calls++;
	s->paused = true;
	ferry_http_request_pause(req);
	return 0;
}

static void slow_done(void *ctx, struct ferry_http_request *req, int result,
		      const char *detail)
{
	struct slow *s = ctx;

	s->done = true;
	s->result = result;
	snprintf(s->detail, sizeof(s->detail), "%s", detail);
}

static const struct ferry_http_callbacks slow_cb = {
	.on_body = slow_body, .on_done = slow_done,
};

static void slow_get(struct slow *s, const char *path)
{
	struct ferry_url u;
	struct ferry_http_request_opts o = { .url = &u, .cb = &slow_cb, .ctx = s };
	char why[256] = "";
	uint64_t end = ferry_time_now() + 30ull * 1000 * 1000 * 1000;

	memset(s, 0, sizeof(*s));
	memset(&u, 0, sizeof(u));
	s->fnv = FX_FNV1A64_INIT;
	const char *url = enc_url(path);

	cr_assert_eq(ferry_url_parse(&u, url, strlen(url), why, sizeof(why)), 0);
	cr_assert_eq(ferry_http_request_start(t.client, &o, &s->req, why,
					      sizeof(why)), 0, "%s", why);
	ferry_url_free(&u);
	while (!s->done && ferry_time_now() < end) {
		ferry_loop_run_once(t.loop, 10 * 1000 * 1000);
		if (s->paused && !s->done) {
			s->paused = false;
			ferry_http_request_resume(s->req);
		}
	}
	cr_assert(s->done, "request did not finish");
}

Test(client_decode, reader_pausing_for_a_turn_after_every_block)
{
	struct slow s;

	up(true, 0, UINT_MAX);
	/* About 4 KiB of gzip, one slice, 62 blocks out of it. */
	slow_get(&s, "/gzip/1000000");
	cr_assert_eq(s.result, 200, "%d %s", s.result, s.detail);
	cr_expect_eq(s.n, 1000000);
	cr_expect_eq(s.fnv, pattern_fnv(1000000, 1));
	cr_expect_eq(s.calls, (1000000 + 16383) / 16384);
	slow_get(&s, "/gzip-chunked/3000000");
	cr_assert_eq(s.result, 200, "%d %s", s.result, s.detail);
	cr_expect_eq(s.fnv, pattern_fnv(3000000, 1));
	slow_get(&s, "/raw-deflate/1000000");
	cr_assert_eq(s.result, 200, "%d %s", s.result, s.detail);
	cr_expect_eq(s.fnv, pattern_fnv(1000000, 1));
}

Test(client_decode, head_of_a_gzip_resource_has_no_body_and_no_error)
{
	struct tc_req r;

	up(true, 0, 0);
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_get(&r, "HEAD", enc_url("/gzip/1000")), 0);
	cr_assert(tc_run(&t, 10000));
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.nbody, 0);
	tc_req_free(&r);
}

Test(client_decode, nginx_gzip_on_the_fly)
{
	struct ferry_http_client_opts co = { .decode_content = true };
	struct tc_req r;
	char u[128], why[256] = "";
	uint64_t fnv;
	size_t size;
	int rc = fx_nginx_start(&ngx);

	if (rc == FX_SKIP)
		cr_skip_test("%s", ngx.err);
	cr_assert_eq(rc, 0, "nginx: %s", ngx.err);
	cr_assert_eq(fx_manifest_get(&ngx, "1m.bin", &size, &fnv), 0);
	tc_setup(&t, &co);
	for (int paused = 0; paused < 2; paused++) {
		snprintf(u, sizeof(u), "http://127.0.0.1:%d/gz/1m.bin", ngx.port);
		tc_req_init(&r, &t, 0);
		r.pause_every = paused ? 3 : 0;
		cr_assert_eq(tc_start(&r, u, NULL, why, sizeof(why)), 0, "%s", why);
		cr_assert(tc_run(&t, 30000));
		cr_assert_eq(r.result, 200, "%d %s", r.result, r.detail);
		cr_expect_eq(r.nbody, size);
		cr_expect_eq(r.fnv, fnv, "nginx's gzip decoded to other bytes");
		tc_req_free(&r);
	}
	/* The small text file too (gzip_min_length 1). */
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/gz/small.txt", ngx.port);
	cr_assert_eq(fx_manifest_get(&ngx, "small.txt", &size, &fnv), 0);
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_start(&r, u, NULL, why, sizeof(why)), 0, "%s", why);
	cr_assert(tc_run(&t, 10000));
	cr_assert_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.nbody, 100);
	cr_expect_eq(r.fnv, fnv);
	tc_req_free(&r);
}
