/*
 * test_h1_request.c - request heads byte for byte, refused injections, and
 * chunked framing (checked against llhttp's own request parser too).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "h1.h"

#define NOHDR NULL, 0

struct head_case {
	const char *method;
	const char *url;
	struct ferry__h1_header hdrs[4];
	size_t nhdrs;
	int64_t body_len;
	int ret;		/* 0 or FERRY__H1_REQ_CLOSE */
	const char *want;
};

static const struct head_case heads[] = {
	{ "GET", "http://example.com", {{0}}, 0, 0, 0,
	  "GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: ferry/0.1\r\n\r\n" },
	{ "GET", "http://Example.com:8080/a%20b?c=d#frag",
	  { FERRY__H1_HEADER("Accept", "*/*") }, 1, 0, 0,
	  "GET /a%20b?c=d HTTP/1.1\r\nHost: example.com:8080\r\n"
	  "User-Agent: ferry/0.1\r\nAccept: */*\r\n\r\n" },
	{ "GET", "https://h:443/", {{0}}, 0, 0, 0,
	  "GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: ferry/0.1\r\n\r\n" },
	{ "GET", "https://h:80/", {{0}}, 0, 0, 0,
	  "GET / HTTP/1.1\r\nHost: h:80\r\nUser-Agent: ferry/0.1\r\n\r\n" },
	{ "GET", "http://[::1]:8080/x", {{0}}, 0, 0, 0,
	  "GET /x HTTP/1.1\r\nHost: [::1]:8080\r\nUser-Agent: ferry/0.1\r\n\r\n" },
	{ "HEAD", "http://[::1]/", {{0}}, 0, 0, 0,
	  "HEAD / HTTP/1.1\r\nHost: [::1]\r\nUser-Agent: ferry/0.1\r\n\r\n" },
	{ "POST", "http://h/p", {{0}}, 0, 0, 0,
	  "POST /p HTTP/1.1\r\nHost: h\r\nUser-Agent: ferry/0.1\r\n"
	  "Content-Length: 0\r\n\r\n" },
	{ "PUT", "http://h/p", {{0}}, 0, 12345678901LL, 0,
	  "PUT /p HTTP/1.1\r\nHost: h\r\nUser-Agent: ferry/0.1\r\n"
	  "Content-Length: 12345678901\r\n\r\n" },
	{ "PATCH", "http://h/p", {{0}}, 0, 0, 0,
	  "PATCH /p HTTP/1.1\r\nHost: h\r\nUser-Agent: ferry/0.1\r\n"
	  "Content-Length: 0\r\n\r\n" },
	{ "DELETE", "http://h/p", {{0}}, 0, 0, 0,
	  "DELETE /p HTTP/1.1\r\nHost: h\r\nUser-Agent: ferry/0.1\r\n\r\n" },
	{ "GET", "http://h/p", {{0}}, 0, 3, 0,
	  "GET /p HTTP/1.1\r\nHost: h\r\nUser-Agent: ferry/0.1\r\n"
	  "Content-Length: 3\r\n\r\n" },
	{ "POST", "http://h/up", { FERRY__H1_HEADER("Content-Type", "text/plain") },
	  1, FERRY__H1_BODY_CHUNKED, 0,
	  "POST /up HTTP/1.1\r\nHost: h\r\nUser-Agent: ferry/0.1\r\n"
	  "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" },
	/* caller Host replaces ours, in first place; User-Agent replaces ours
	 * in the caller's place */
	{ "GET", "http://127.0.0.1:8080/", { FERRY__H1_HEADER("X-A", "1"),
	  FERRY__H1_HEADER("host", "virtual.example"),
	  FERRY__H1_HEADER("user-agent", "me/2"), FERRY__H1_HEADER("X-B", "") },
	  4, 0, 0,
	  "GET / HTTP/1.1\r\nHost: virtual.example\r\nX-A: 1\r\n"
	  "user-agent: me/2\r\nX-B:\r\n\r\n" },
	{ "GET", "http://h/", { FERRY__H1_HEADER("Connection", "close") }, 1, 0,
	  FERRY__H1_REQ_CLOSE,
	  "GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: ferry/0.1\r\n"
	  "Connection: close\r\n\r\n" },
	{ "GET", "http://h/", { FERRY__H1_HEADER("connection", "Upgrade,\t CLOSE ") },
	  1, 0, FERRY__H1_REQ_CLOSE,
	  "GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: ferry/0.1\r\n"
	  "connection: Upgrade,\t CLOSE \r\n\r\n" },
	{ "GET", "http://h/", { FERRY__H1_HEADER("Connection", "closed, keep-alive") },
	  1, 0, 0,
	  "GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: ferry/0.1\r\n"
	  "Connection: closed, keep-alive\r\n\r\n" },
	/* any token is a method; values may hold tabs and obs-text */
	{ "M-SEARCH", "http://h/*", { FERRY__H1_HEADER("X-T", "a\tb \xff") }, 1, 0, 0,
	  "M-SEARCH /* HTTP/1.1\r\nHost: h\r\nUser-Agent: ferry/0.1\r\n"
	  "X-T: a\tb \xff\r\n\r\n" },
};

static void url_of(struct ferry_url *u, const char *s)
{
	char why[FERRY_URL_WHY_MAX] = "";

	cr_assert_eq(ferry_url_parse(u, s, strlen(s), why, sizeof(why)), 0,
		     "%s: %s", s, why);
}

Test(h1_request, heads_byte_exact)
{
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		const struct head_case *c = &heads[i];
		struct ferry__h1_buf out = { 0 };
		struct ferry_url u;
		struct ferry__h1_req req;
		char why[FERRY__H1_WHY_MAX] = "";
		int ret;

		url_of(&u, c->url);
		req = (struct ferry__h1_req){
			.method = c->method,
			.url = &u,
			.headers = c->hdrs,
			.nheaders = c->nhdrs,
			.body_len = c->body_len,
			.raw = false,
		};
		ret = ferry__h1_req_write(&out, &req, why, sizeof(why));
		cr_expect_eq(ret, c->ret, "case %zu: %d %s", i, ret, why);
		cr_expect_eq(out.len, strlen(c->want), "case %zu", i);
		cr_expect(out.len == strlen(c->want) &&
			  memcmp(out.data, c->want, out.len) == 0,
			  "case %zu: got '%.*s'", i, (int)out.len, out.data);
		ferry__h1_buf_free(&out);
		ferry_url_free(&u);
	}
}

struct bad_case {
	const char *method;
	struct ferry__h1_header hdr;
	bool has_hdr;
	int64_t body_len;
	const char *why;
};

static const struct bad_case bad_reqs[] = {
	{ "GE T", {0}, false, 0, "method is not a token" },
	{ "", {0}, false, 0, "method is not a token" },
	{ "GET\r\nX: y", {0}, false, 0, "method is not a token" },
	{ "GET /x HTTP/1.1\r\n", {0}, false, 0, "method is not a token" },
	{ "CONNECT", {0}, false, 0, "CONNECT is not supported" },
	{ "GET", FERRY__H1_HEADER("X Y", "1"), true, 0, "header name is not a token" },
	{ "GET", FERRY__H1_HEADER("", "1"), true, 0, "header name is not a token" },
	{ "GET", FERRY__H1_HEADER("X:", "1"), true, 0, "header name is not a token" },
	{ "GET", FERRY__H1_HEADER("X\r\nY", "1"), true, 0, "header name is not a token" },
	{ "GET", FERRY__H1_HEADER("X", "a\r\nInjected: 1"), true, 0,
	  "header value contains CR, LF or NUL" },
	{ "GET", FERRY__H1_HEADER("X", "a\n"), true, 0,
	  "header value contains CR, LF or NUL" },
	{ "GET", FERRY__H1_HEADER("X", "\r"), true, 0,
	  "header value contains CR, LF or NUL" },
	{ "GET", FERRY__H1_HEADER("X", "a\0b"), true, 0,
	  "header value contains CR, LF or NUL" },
	{ "GET", FERRY__H1_HEADER("Host", "h\r\nX: 1"), true, 0,
	  "header value contains CR, LF or NUL" },
	/* found by tests/fuzz/fuzz_h1_request: llhttp refuses these heads */
	{ "GET", FERRY__H1_HEADER("G.", "\x1a"), true, 0,
	  "header value contains a control character" },
	{ "GET", FERRY__H1_HEADER("X", "a\x01b"), true, 0,
	  "header value contains a control character" },
	{ "GET", FERRY__H1_HEADER("X", "del\x7f"), true, 0,
	  "header value contains a control character" },
	{ "GET", FERRY__H1_HEADER("X", "\x1f"), true, 0,
	  "header value contains a control character" },
	{ "POST", FERRY__H1_HEADER("Content-Length", "5"), true, 5,
	  "Content-Length and Transfer-Encoding are set by ferry from the body length" },
	{ "POST", FERRY__H1_HEADER("transfer-encoding", "chunked"), true, -1,
	  "Content-Length and Transfer-Encoding are set by ferry from the body length" },
	{ "GET", {0}, false, -2, "negative body length" },
	{ NULL, {0}, false, 0, "NULL method, URL or headers" },
};

Test(h1_request, bad_requests_refused_and_buffer_untouched)
{
	struct ferry_url u;

	url_of(&u, "http://h/");
	for (size_t i = 0; i < sizeof(bad_reqs) / sizeof(bad_reqs[0]); i++) {
		const struct bad_case *c = &bad_reqs[i];
		struct ferry__h1_buf out = { 0 };
		struct ferry__h1_req req = {
			.method = c->method, .url = &u,
			.headers = c->has_hdr ? &c->hdr : NULL,
			.nheaders = c->has_hdr, .body_len = c->body_len,
		};
		char why[FERRY__H1_WHY_MAX] = "";

		ferry__h1_buf_append(&out, "keep", 4);
		cr_expect_eq(ferry__h1_req_write(&out, &req, why, sizeof(why)),
			     FERRY_EINVAL, "case %zu", i);
		cr_expect_str_eq(why, c->why, "case %zu", i);
		cr_expect_eq(out.len, 4, "case %zu", i);
		cr_expect(memcmp(out.data, "keep", 4) == 0);
		ferry__h1_buf_free(&out);
	}
	ferry_url_free(&u);
}

Test(h1_request, two_hosts_refused)
{
	struct ferry__h1_header h[] = { FERRY__H1_HEADER("Host", "a"),
					FERRY__H1_HEADER("HOST", "b") };
	struct ferry__h1_buf out = { 0 };
	struct ferry_url u;
	struct ferry__h1_req req;
	char why[FERRY__H1_WHY_MAX];

	url_of(&u, "http://h/");
	req = (struct ferry__h1_req){
		.method = "GET",
		.url = &u,
		.headers = h,
		.nheaders = 2,
		.body_len = 0,
		.raw = false,
	};
	cr_expect_eq(ferry__h1_req_write(&out, &req, why, sizeof(why)), FERRY_EINVAL);
	cr_expect_str_eq(why, "more than one Host header");
	cr_expect_eq(out.len, 0);
	/* no why-buffer is fine too */
	cr_expect_eq(ferry__h1_req_write(&out, &req, NULL, 0), FERRY_EINVAL);
	ferry__h1_buf_free(&out);
	ferry_url_free(&u);
}

Test(h1_request, appends_and_grows)
{
	static char big[100000];
	struct ferry__h1_header h = { "X-Big", 5, big, sizeof(big) };
	struct ferry__h1_buf out = { 0 };
	struct ferry_url u;
	struct ferry__h1_req req;
	size_t first;

	memset(big, 'v', sizeof(big));
	url_of(&u, "http://h/");
	req = (struct ferry__h1_req){
		.method = "GET",
		.url = &u,
		.headers = NULL,
		.nheaders = 0,
		.body_len = 0,
		.raw = false,
	};
	cr_assert_eq(ferry__h1_req_write(&out, &req, NULL, 0), 0);
	first = out.len;
	req = (struct ferry__h1_req){
		.method = "GET",
		.url = &u,
		.headers = &h,
		.nheaders = 1,
		.body_len = 0,
		.raw = false,
	};
	cr_assert_eq(ferry__h1_req_write(&out, &req, NULL, 0), 0);
	cr_expect_eq(out.len, 2 * first + 5 + 2 + sizeof(big) + 2);
	cr_expect(memcmp(out.data, out.data + first, first - 2) == 0);
	cr_expect(memcmp(out.data + out.len - 4, "v\r\n\r\n" + 1, 4) == 0);
	ferry__h1_buf_free(&out);
	ferry_url_free(&u);
}

Test(h1_request, tokens)
{
	cr_expect(ferry__h1_is_token("GET", 3));
	cr_expect(ferry__h1_is_token("!#$%&'*+-.^_`|~09azAZ", 21));
	cr_expect_not(ferry__h1_is_token("", 0));
	cr_expect_not(ferry__h1_is_token("a b", 3));
	cr_expect_not(ferry__h1_is_token("a\0b", 3));
	cr_expect_not(ferry__h1_is_token("a(b", 3));
	cr_expect_not(ferry__h1_is_token("a\"", 2));
	cr_expect_not(ferry__h1_is_token("\xc3\xa9", 2));
}

Test(h1_request, chunk_heads)
{
	char b[FERRY__H1_CHUNK_HEAD_MAX];

	cr_expect_eq(ferry__h1_chunk_head(b, 1), 3);
	cr_expect_str_eq(b, "1\r\n");
	cr_expect_eq(ferry__h1_chunk_head(b, 26), 4);
	cr_expect_str_eq(b, "1a\r\n");
	cr_expect_eq(ferry__h1_chunk_head(b, 65536), 7);
	cr_expect_str_eq(b, "10000\r\n");
	cr_expect_eq(ferry__h1_chunk_head(b, UINT64_MAX), 18);
	cr_expect_str_eq(b, "ffffffffffffffff\r\n");
	b[0] = 'x';
	cr_expect_eq(ferry__h1_chunk_head(b, 0), 0);
	cr_expect_eq(b[0], 'x');
}

Test(h1_request, chunk_append_and_end)
{
	static const char want[] = "5\r\nhello\r\n1\r\n \r\n0\r\n\r\n";
	struct ferry__h1_buf out = { 0 };

	cr_assert_eq(ferry__h1_chunk_append(&out, "hello", 5), 0);
	cr_assert_eq(ferry__h1_chunk_append(&out, "", 0), 0);
	cr_assert_eq(ferry__h1_chunk_append(&out, " ", 1), 0);
	cr_assert_eq(ferry__h1_chunk_end(&out), 0);
	cr_expect_eq(out.len, sizeof(want) - 1);
	cr_expect(memcmp(out.data, want, out.len) == 0, "got '%.*s'",
		  (int)out.len, out.data);
	ferry__h1_buf_free(&out);
}

/* What llhttp's request parser saw of one message. */
struct seen {
	struct ferry__h1_buf url, body, hdrs;
	int complete;
};

static int on_url(llhttp_t *p, const char *at, size_t n)
{
	return ferry__h1_buf_append(&((struct seen *)p->data)->url, at, n);
}

static int on_field(llhttp_t *p, const char *at, size_t n)
{
	return ferry__h1_buf_append(&((struct seen *)p->data)->hdrs, at, n);
}

static int on_field_done(llhttp_t *p)
{
	return ferry__h1_buf_append(&((struct seen *)p->data)->hdrs, "=", 1);
}

static int on_value_done(llhttp_t *p)
{
	return ferry__h1_buf_append(&((struct seen *)p->data)->hdrs, ";", 1);
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
	return ferry__h1_buf_append(&((struct seen *)p->data)->body, at, n);
}

static int on_done(llhttp_t *p)
{
	((struct seen *)p->data)->complete++;
	return 0;
}

/* A strict independent parser must read what we write, body included. */
Test(h1_request, llhttp_reads_what_we_write)
{
	static const char *const pieces[] = { "first ", "", "second\r\n", "x" };
	struct ferry__h1_header h[] = { FERRY__H1_HEADER("X-A", "b c") };
	llhttp_settings_t st;
	struct ferry__h1_buf out = { 0 };
	struct seen seen = { 0 };
	struct ferry_url u;
	struct ferry__h1_req req;
	llhttp_t p;

	url_of(&u, "http://[::1]:9/up?x=%41");
	req = (struct ferry__h1_req){
		.method = "POST",
		.url = &u,
		.headers = h,
		.nheaders = 1,
		.body_len = FERRY__H1_BODY_CHUNKED,
		.raw = false,
	};
	cr_assert_eq(ferry__h1_req_write(&out, &req, NULL, 0), 0);
	for (size_t i = 0; i < 4; i++)
		ferry__h1_chunk_append(&out, pieces[i], strlen(pieces[i]));
	ferry__h1_chunk_end(&out);
	llhttp_settings_init(&st);
	st.on_url = on_url;
	st.on_header_field = on_field;
	st.on_header_field_complete = on_field_done;
	st.on_header_value = on_field;
	st.on_header_value_complete = on_value_done;
	st.on_body = on_body;
	st.on_message_complete = on_done;
	llhttp_init(&p, HTTP_REQUEST, &st);
	p.data = &seen;
	cr_assert_eq(llhttp_execute(&p, out.data, out.len), HPE_OK, "%s",
		     llhttp_get_error_reason(&p));
	cr_expect_eq(seen.complete, 1);
	cr_expect_eq(llhttp_get_method(&p), HTTP_POST);
	cr_expect(seen.url.len == 9 && !memcmp(seen.url.data, "/up?x=%41", 9));
	ferry__h1_buf_append(&seen.hdrs, "", 1);
	cr_expect_str_eq(seen.hdrs.data, "Host=[::1]:9;User-Agent=ferry/0.1;"
			 "X-A=b c;Transfer-Encoding=chunked;");
	cr_expect_eq(seen.body.len, strlen("first second\r\nx"));
	cr_expect(memcmp(seen.body.data, "first second\r\nx", seen.body.len) == 0);
	ferry__h1_buf_free(&seen.url);
	ferry__h1_buf_free(&seen.hdrs);
	ferry__h1_buf_free(&seen.body);
	ferry__h1_buf_free(&out);
	ferry_url_free(&u);
}

/* The control-byte refusal (found by tests/fuzz/fuzz_h1_request) leaves
 * what RFC 9110 allows in a value: HTAB inside it and obs-text bytes;
 * llhttp's strict parser reads them. */
Test(h1_request, tab_and_obs_text_in_values_allowed)
{
	struct ferry__h1_header h[] = {
		FERRY__H1_HEADER("X-Tab", "a\tb"),
		FERRY__H1_HEADER("X-Obs", "caf\xc3\xa9 \x80\xff"),
	};
	llhttp_settings_t st;
	struct ferry__h1_buf out = { 0 };
	struct seen seen = { 0 };
	struct ferry_url u;
	struct ferry__h1_req req;
	llhttp_t p;

	url_of(&u, "http://h/");
	req = (struct ferry__h1_req){
		.method = "GET",
		.url = &u,
		.headers = h,
		.nheaders = 2,
		.body_len = 0,
	};
	cr_assert_eq(ferry__h1_req_write(&out, &req, NULL, 0), 0);
	llhttp_settings_init(&st);
	st.on_header_field = on_field;
	st.on_header_field_complete = on_field_done;
	st.on_header_value = on_field;
	st.on_header_value_complete = on_value_done;
	st.on_message_complete = on_done;
	llhttp_init(&p, HTTP_REQUEST, &st);
	p.data = &seen;
	cr_assert_eq(llhttp_execute(&p, out.data, out.len), HPE_OK, "%s",
		     llhttp_get_error_reason(&p));
	cr_expect_eq(seen.complete, 1);
	ferry__h1_buf_append(&seen.hdrs, "", 1);
	cr_expect_str_eq(seen.hdrs.data, "Host=h;User-Agent=ferry/0.1;"
			 "X-Tab=a\tb;X-Obs=caf\xc3\xa9 \x80\xff;");
	ferry__h1_buf_free(&seen.hdrs);
	ferry__h1_buf_free(&out);
	ferry_url_free(&u);
}

/* Write @req for @url and compare the head with @want. */
static void expect_head(struct ferry__h1_req *req, const char *url,
			const char *want)
{
	struct ferry__h1_buf out = { 0 };
	struct ferry_url u;
	char why[FERRY__H1_WHY_MAX] = "";

	url_of(&u, url);
	req->url = &u;
	cr_assert_geq(ferry__h1_req_write(&out, req, why, sizeof(why)), 0,
		      "%s", why);
	cr_expect_eq(out.len, strlen(want));
	cr_expect(out.len == strlen(want) && !memcmp(out.data, want, out.len),
		  "got %.*s", (int)out.len, out.data);
	ferry__h1_buf_free(&out);
	ferry_url_free(&u);
}

/* A forward proxy's request as libcurl sends it: Proxy-Connection:
 * Keep-Alive after User-Agent, unless the caller gives its own. */
Test(h1_request, proxy_connection_default)
{
	struct ferry__h1_header own = { "Proxy-Connection", 16, "close", 5 };
	struct ferry__h1_req req = { .method = "GET", .absolute_form = true,
				     .proxy_auth = "Basic dTpw" };

	expect_head(&req, "http://o/p",
		    "GET http://o/p HTTP/1.1\r\nHost: o\r\n"
		    "Proxy-Authorization: Basic dTpw\r\n"
		    "User-Agent: ferry/0.1\r\nProxy-Connection: Keep-Alive\r\n\r\n");
	req.headers = &own;
	req.nheaders = 1;
	expect_head(&req, "http://o/p",
		    "GET http://o/p HTTP/1.1\r\nHost: o\r\n"
		    "Proxy-Authorization: Basic dTpw\r\n"
		    "User-Agent: ferry/0.1\r\nProxy-Connection: close\r\n\r\n");
	/* not through a proxy: nothing is added */
	req = (struct ferry__h1_req){ .method = "GET" };
	expect_head(&req, "http://o/p",
		    "GET /p HTTP/1.1\r\nHost: o\r\nUser-Agent: ferry/0.1\r\n\r\n");
}

/* Raw mode: Proxy-Authorization right after the caller's Host, a listed
 * Proxy-Connection only to a proxy, a chunked TE where it stands. */
Test(h1_request, raw_proxy_fields)
{
	static const struct ferry__h1_header h[] = {
		{ "Host", 4, "o", 1 }, { "Accept", 6, "*/*", 3 },
		{ "Proxy-Connection", 16, "Keep-Alive", 10 },
		{ "Transfer-Encoding", 17, "chunked", 7 },
		{ "Expect", 6, "100-continue", 12 },
	};
	struct ferry__h1_req req = {
		.method = "PUT", .headers = h, .nheaders = 5,
		.body_len = FERRY__H1_BODY_CHUNKED, .raw = true,
		.absolute_form = true, .proxy_auth = "Basic dTpw",
	};

	expect_head(&req, "http://o/p",
		    "PUT http://o/p HTTP/1.1\r\nHost: o\r\n"
		    "Proxy-Authorization: Basic dTpw\r\nAccept: */*\r\n"
		    "Proxy-Connection: Keep-Alive\r\n"
		    "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
	req.absolute_form = false;
	req.proxy_auth = NULL;
	expect_head(&req, "http://o/p",
		    "PUT /p HTTP/1.1\r\nHost: o\r\nAccept: */*\r\n"
		    "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
}

/* Raw mode: a Transfer-Encoding only for a chunked body, only "chunked". */
Test(h1_request, raw_te_refused)
{
	struct ferry__h1_header te = { "Transfer-Encoding", 17, "gzip", 4 };
	struct ferry__h1_buf out = { 0 };
	struct ferry_url u;
	struct ferry__h1_req req = { .method = "PUT", .url = &u,
				     .headers = &te, .nheaders = 1,
				     .body_len = FERRY__H1_BODY_CHUNKED,
				     .raw = true };

	url_of(&u, "http://o/");
	cr_expect_eq(ferry__h1_req_write(&out, &req, NULL, 0), FERRY_EINVAL);
	te.value = "chunked";
	te.value_len = 7;
	req.body_len = 5;
	cr_expect_eq(ferry__h1_req_write(&out, &req, NULL, 0), FERRY_EINVAL);
	cr_expect_eq(out.len, 0);
	ferry__h1_buf_free(&out);
	ferry_url_free(&u);
}
