/*
 * test_session_more.c - what fetch relies on in the blocking API: raw
 * headers and timings reach the caller through the session, a streamed
 * body cut short ends its stream with FERRY_EPARTIAL, and a request
 * refused on the loop before any I/O keeps the client's sentence.
 */
#include "util.h"

TestSuite(session_more, .fini = st_down, .timeout = 60);

Test(session_more, raw_headers_and_timings_through_the_session)
{
	struct ferry_http_header h[] = {
		FERRY_HTTP_HEADER("Host", "127.0.0.1"),
		FERRY_HTTP_HEADER("User-Agent", "fetch/test"),
	};
	struct ferry_request rq = { .headers = h, .nheaders = 2,
				    .raw_headers = true };
	struct ferry_http_timings tm;
	struct ferry_response *r;
	size_t n;
	const char *body;
	int rc;

	st_nginx();
	st_session(NULL);
	rq.url = st_url(st.base, "/echo-headers");
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	body = ferry_response_body(r, &n);
	cr_expect_str_eq(body, "GET /echo-headers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			 "User-Agent: fetch/test\r\n\r\n");
	cr_expect_eq(ferry_response_http_minor(r), 1);
	ferry_response_timings(r, &tm);
	cr_expect_gt(tm.connect_ns, 0);
	cr_expect_geq(tm.starttransfer_ns, tm.connect_ns);
	cr_expect_eq(tm.appconnect_ns, 0);
	ferry_response_free(r);
}

Test(session_more, a_stream_cut_short_ends_partial)
{
	struct ferry_request rq = { .stream = true };
	struct ferry_response *r;
	struct ferry_chunk c;
	int rc, n;

	st_misbehave("truncated-chunked", NULL);
	st_session(NULL);
	rq.url = st_url(st.badbase, "/");
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	st_hold(r);
	while ((n = ferry_stream_next(ferry_response_stream(r), &c, 10 * ST_SEC)) == 1)
		;
	cr_expect_eq(n, FERRY_EPARTIAL, "%d %s", n, ferry_strerrorname(n));
	st_free(r);
}

Test(session_more, a_request_refused_at_start_keeps_its_detail)
{
	struct ferry_http_client_opts o = { .ca_file = "/nonexistent/ca.pem" };
	struct ferry_response *r;
	int rc;

	st_session(&o);
	rc = ferry_session_get(st.s, "https://127.0.0.1:1/", &r);
	cr_assert_eq(rc, FERRY_ETLS_CA, "%d", rc);
	cr_expect_eq(ferry_response_http_minor(r), -1, "no head, no version");
	cr_expect_neq(strstr(ferry_response_detail(r), "/nonexistent/ca.pem"),
		      NULL, "detail: '%s'", ferry_response_detail(r));
	ferry_response_free(r);
}

/* The blocking API to a server on a Unix socket: the request's own
 * socket (nginx.py --unix listens on <dir>/nginx.sock), the URL's host
 * never resolved. */
Test(session_more, a_request_to_a_unix_socket)
{
	static const char *const args[] = { "--unix", NULL };
	char sock[4200];
	struct ferry_request rq = { .url = "http://nonexistent.invalid/small.txt" };
	struct ferry_response *r;
	size_t n;
	int rc = fx_nginx_start_args(&st.ngx, (const char *const *)args);

	if (rc == FX_SKIP)
		cr_skip_test("%s", st.ngx.err);
	cr_assert_eq(rc, 0, "nginx: %s", st.ngx.err);
	snprintf(sock, sizeof(sock), "%s/nginx.sock", st.ngx.dir);
	st_session(NULL);
	rq.unix_socket = sock;
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	ferry_response_body(r, &n);
	cr_expect_eq(n, 100);
	ferry_response_free(r);
}

/*
 * Whole-body mode presizes a body announced by Content-Length and, from
 * 8 MiB on, asks for huge pages for it and faults it in window by window
 * (session.c): 16 MiB from nginx arrives whole and intact that way.
 */
Test(session_more, a_big_whole_body_arrives_intact)
{
	struct ferry_response *r;
	const char *body;
	size_t n = 0, size = 0;
	uint64_t fnv = 0;
	int rc;

	st_nginx();
	cr_assert_eq(fx_manifest_get(&st.ngx, "16m.bin", &size, &fnv), 0);
	st_session(NULL);
	rc = ferry_session_get(st.s, st_url(st.base, "/16m.bin"), &r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	body = ferry_response_body(r, &n);
	cr_assert_eq(n, size);
	cr_expect_eq(st_fnv(0xcbf29ce484222325ULL, body, n), fnv);
	cr_expect_eq(body[n], '\0');
	ferry_response_free(r);
}

/* A server that sends 1000 bytes more than it announced: the body is
 * what Content-Length says, not a byte more, written into its presized
 * memory and no further. */
Test(session_more, a_big_body_longer_than_its_length_stops_at_the_length)
{
	struct ferry_response *r;
	const char *body;
	size_t n = 0;
	int rc;

	st_misbehave("long-length", "--size=16777216");
	st_session(NULL);
	rc = ferry_session_get(st.s, st_url(st.badbase, "/"), &r);
	cr_assert_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	body = ferry_response_body(r, &n);
	cr_assert_eq(n, 16777216u);
	cr_expect_eq(st_pattern_check(body, n, 0), -1);
	cr_expect_eq(body[n], '\0');
	ferry_response_free(r);
}

/* A server that announces 16 MiB and sends half before it closes: the
 * presized body fails with FERRY_EPARTIAL, nothing leaks. */
Test(session_more, a_big_body_shorter_than_its_length_ends_partial)
{
	struct ferry_response *r;
	int rc;

	st_misbehave("short-length", "--size=16777216");
	st_session(NULL);
	rc = ferry_session_get(st.s, st_url(st.badbase, "/"), &r);
	cr_expect_eq(rc, FERRY_EPARTIAL, "%d %s", rc, ferry_response_detail(r));
	ferry_response_free(r);
}
