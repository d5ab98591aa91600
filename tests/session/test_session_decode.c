/*
 * test_session_decode.c - content decoding through the blocking API:
 * nginx's gzip read whole, a gzip body streamed to a reader that lets
 * the channel fill first (the decoder stops with the stream's pause and
 * goes on at its resume), a corrupt body ending a stream with its
 * reason, a bomb refused in whole-body mode, and decoding asked for per
 * request. Peers: nginx (/gz/) and tests/servers/encoded.py.
 */
#include <limits.h>

#include "util.h"

TestSuite(session_decode, .fini = st_down, .timeout = 90);

static void st_encoded(void)
{
	int rc = fx_python_start(&st.bad, "encoded.py", NULL);

	if (rc == FX_SKIP)
		cr_skip_test("python3 missing");
	cr_assert_eq(rc, 0, "encoded.py: %s", st.bad.err);
	snprintf(st.badbase, sizeof(st.badbase), "http://127.0.0.1:%d",
		 st.bad.port);
}

Test(session_decode, nginx_gzip_whole_body)
{
	struct ferry_http_client_opts o = { .decode_content = true };
	struct ferry_response *r;
	const char *body;
	uint64_t fnv;
	size_t size, n;
	int rc;

	st_nginx();
	st_session(&o);
	cr_assert_eq(fx_manifest_get(&st.ngx, "1m.bin", &size, &fnv), 0);
	rc = ferry_session_get(st.s, st_url(st.base, "/gz/1m.bin"), &r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	cr_expect_str_eq(ferry_response_header(r, "content-encoding", NULL),
			 "gzip");
	body = ferry_response_body(r, &n);
	cr_expect_eq(n, size);
	cr_expect_eq(st_fnv(FX_FNV1A64_INIT, body, n), fnv);
	ferry_response_free(r);
}

/* A whole body counts what came off the wire: the encoded bytes, as the
 * Content-Length says, not the decoded ones. */
Test(session_decode, whole_body_counts_encoded_bytes)
{
	struct ferry_http_client_opts o = { .decode_content = true };
	struct ferry_response *r;
	size_t n;
	int rc;

	st_encoded();
	st_session(&o);
	rc = ferry_session_get(st.s, st_url(st.badbase, "/gzip/300000"), &r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	ferry_response_body(r, &n);
	cr_expect_eq(n, 300000);
	cr_expect_eq(ferry_response_body_received(r),
		     strtoull(ferry_response_header(r, "Content-Length", NULL),
			      NULL, 10));
	cr_expect_lt(ferry_response_body_received(r), 300000);
	ferry_response_free(r);
}

Test(session_decode, stream_decoder_follows_backpressure)
{
	struct ferry_http_client_opts o = {
		.decode_content = true, .max_decode_ratio = UINT_MAX };
	struct ferry_request rq = { .stream = true, .stream_capacity = 2 };
	struct ferry_stream_stats ss;
	struct ferry_response *r;
	struct ferry_chunk c;
	uint64_t bytes = 0, end;
	int rc;

	st_encoded();
	st_session(&o);
	/* ~16 KiB of gzip, decoded into 245 blocks: the channel (2 chunks)
	 * fills long before the slice is used up. */
	rq.url = st_url(st.badbase, "/gzip/4000000");
	rc = ferry_session_request(st.s, &rq, &r);
	st_hold(r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	end = ferry_time_now() + 10ull * ST_SEC;
	do {	/* hang guard only: the channel fills at once */
		ferry_stream_stats(ferry_response_stream(r), &ss);
		if (ss.pauses)
			break;
		usleep(1000);
	} while (ferry_time_now() < end);
	cr_assert_gt(ss.pauses, 0, "the channel never filled");
	while ((rc = ferry_stream_next(ferry_response_stream(r), &c,
				       10 * ST_SEC)) == 1) {
		ssize_t at = st_pattern_check(c.data, c.len, bytes);

		cr_assert_lt(at, 0, "wrong byte at %llu",
			     (unsigned long long)(bytes + at));
		bytes += c.len;
	}
	cr_assert_eq(rc, 0, "%d %s", rc, ferry_response_detail(r));
	cr_expect_eq(bytes, 4000000);
	/* a streamed response counts what came off the wire too: the
	 * encoded body, as its Content-Length says */
	cr_expect_eq(ferry_response_body_received(r),
		     strtoull(ferry_response_header(r, "Content-Length", NULL),
			      NULL, 10));
	cr_expect_null(ferry_response_proxy(r, NULL));
	st_free(r);
}

Test(session_decode, corrupt_body_ends_the_stream_with_its_reason)
{
	struct ferry_http_client_opts o = { .decode_content = true };
	struct ferry_request rq = { .stream = true };
	struct ferry_response *r;
	struct ferry_chunk c;
	int rc;

	st_encoded();
	st_session(&o);
	rq.url = st_url(st.badbase, "/corrupt/300000");
	rc = ferry_session_request(st.s, &rq, &r);
	st_hold(r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	while ((rc = ferry_stream_next(ferry_response_stream(r), &c,
				       10 * ST_SEC)) == 1)
		;
	cr_expect_eq(rc, FERRY_EDECODE, "%d", rc);
	cr_expect(strstr(ferry_stream_why(ferry_response_stream(r)),
			 "gzip body is corrupt"), "%s",
		  ferry_stream_why(ferry_response_stream(r)));
	st_free(r);
}

Test(session_decode, bomb_is_too_large_in_whole_body_mode)
{
	struct ferry_http_client_opts o = { .decode_content = true };
	struct ferry_response *r;
	size_t n;
	int rc;

	st_encoded();
	st_session(&o);
	rc = ferry_session_get(st.s, st_url(st.badbase, "/zeros/67108864"), &r);
	cr_assert_eq(rc, FERRY_ETOOLARGE, "%d %s", rc, ferry_response_detail(r));
	cr_expect(strstr(ferry_response_detail(r), "decompression bomb"), "%s",
		  ferry_response_detail(r));
	ferry_response_body(r, &n);
	cr_expect_leq(n, 2u << 20, "%zu bytes kept", n);
	ferry_response_free(r);
}

Test(session_decode, per_request_decoding)
{
	struct ferry_request rq = { .decode_content = FERRY_HTTP_DECODE_YES };
	struct ferry_response *r;
	const char *body;
	size_t n;
	int rc;

	st_encoded();
	st_session(NULL);
	rq.url = st_url(st.badbase, "/deflate/100000");
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	cr_expect_str_eq(ferry_response_header(r, "x-accept-encoding", NULL),
			 "gzip, deflate");
	body = ferry_response_body(r, &n);
	cr_expect_eq(n, 100000);
	cr_expect_lt(st_pattern_check(body, n, 0), 0);
	ferry_response_free(r);
	/* The session's default (off): the encoded bytes. */
	rc = ferry_session_get(st.s, st_url(st.badbase, "/deflate/100000"), &r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	cr_expect_str_eq(ferry_response_header(r, "x-accept-encoding", NULL), "-");
	ferry_response_body(r, &n);
	cr_expect_lt(n, 100000);
	ferry_response_free(r);
}
