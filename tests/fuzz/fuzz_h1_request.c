/*
 * fuzz_h1_request.c - libFuzzer target: request heads built from hostile
 * caller input (http/h1_request.c).
 *
 * Input: byte 0 = method and body choice, then a length-prefixed URL, a
 * length-prefixed method (used when byte 0 asks for a custom one), then
 * headers as [name length][value length][name][value] while bytes last;
 * each string in its own exact-size heap block.
 *
 * Properties (any failure aborts):
 *   - on error: FERRY_EINVAL with a reason, and the output buffer exactly
 *     as it was (a head is all or nothing);
 *   - on success: the bytes appended are one well-formed head and nothing
 *     else: every CR is followed by LF and every LF follows a CR, no NUL,
 *     the first empty line is the end; a plain reading of it (request
 *     line, then "name: value" lines) gives back exactly the method, the
 *     URL's target, Host (the caller's or the URL's authority), the
 *     default User-Agent unless the caller gave one, the caller's headers
 *     in order, and the body framing asked for; llhttp's strict request
 *     parser (for the methods it knows) reads the same head, and agrees
 *     with the writer on whether the connection is to be closed.
 *   - a header that would inject (CR, LF, NUL in a value, a name that is
 *     not a token), holds another control byte (but HTAB), or names the
 *     framing is always refused.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "h1.h"

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "fuzz_h1_request: %s:%d: %s\n",     \
				__FILE__, __LINE__, #cond);                 \
			abort();                                            \
		}                                                           \
	} while (0)

#define MAX_HEADERS 16
#define PREFIX "previous bytes"

static const char FIXED_URL[] = "http://example.com:8080/p?q=1";

struct input {
	const uint8_t *p;
	size_t left;
};

/* The next length-prefixed string, in its own block (NUL-terminated
 * one past its length, so a reader that runs off the end is seen). */
static char *take(struct input *in, size_t *len)
{
	size_t n = 0;
	char *s;

	if (in->left) {
		n = *in->p++;
		in->left--;
	}
	if (n > in->left)
		n = in->left;
	s = malloc(n + 1);
	CHECK(s);
	memcpy(s, in->p, n);
	s[n] = 0;
	in->p += n;
	in->left -= n;
	*len = n;
	return s;
}

struct req_in {
	char *method;
	struct ferry_url url;
	struct ferry__h1_header h[MAX_HEADERS];
	size_t nh;
	int64_t body_len;
};

static void read_input(struct req_in *r, const uint8_t *data, size_t len)
{
	static const char *const methods[] = { "GET", "HEAD", "POST", "PUT",
		"PATCH", "DELETE", "CONNECT", NULL };
	static const int64_t bodies[] = { 0, 5, FERRY__H1_BODY_CHUNKED, -2 };
	struct input in = { data + 1, len - 1 };
	size_t n;
	char *url = take(&in, &n), *method;

	if (ferry_url_parse(&r->url, url, n, NULL, 0))
		CHECK(!ferry_url_parse(&r->url, FIXED_URL,
				       sizeof(FIXED_URL) - 1, NULL, 0));
	free(url);
	method = take(&in, &n);
	if (methods[data[0] & 7]) {
		free(method);
		method = strdup(methods[data[0] & 7]);
		CHECK(method);
	}
	r->method = method;
	r->body_len = bodies[(data[0] >> 3) & 3];
	if ((data[0] >> 5) == 7)
		r->body_len = INT64_MAX;
	for (r->nh = 0; r->nh < MAX_HEADERS && in.left; r->nh++) {
		struct ferry__h1_header *h = &r->h[r->nh];

		h->name = take(&in, &h->name_len);
		h->value = take(&in, &h->value_len);
	}
}

static void free_input(struct req_in *r)
{
	for (size_t i = 0; i < r->nh; i++) {
		free((char *)r->h[i].name);
		free((char *)r->h[i].value);
	}
	free(r->method);
	ferry_url_free(&r->url);
}

static bool name_is(const struct ferry__h1_header *h, const char *name)
{
	return h->name_len == strlen(name) &&
	       !strncasecmp(h->name, name, h->name_len);
}

/* A control byte other than HTAB (CR, LF and NUL among them). */
static bool has_ctl(const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return true;
	}
	return false;
}

/* Must the writer refuse this header list? */
static bool must_refuse(const struct req_in *r)
{
	size_t hosts = 0;

	for (size_t i = 0; i < r->nh; i++) {
		const struct ferry__h1_header *h = &r->h[i];

		if (!ferry__h1_is_token(h->name, h->name_len) ||
		    has_ctl(h->value, h->value_len) ||
		    name_is(h, "content-length") ||
		    name_is(h, "transfer-encoding"))
			return true;
		hosts += name_is(h, "host");
	}
	return hosts > 1 || !strcmp(r->method, "CONNECT") ||
	       !ferry__h1_is_token(r->method, strlen(r->method)) ||
	       r->body_len < FERRY__H1_BODY_CHUNKED;
}

/* ---- the expected head, as a list of "name\0value\0" ---- */

static void put_field(struct ferry__h1_buf *b, const char *n, size_t nl,
		      const char *v, size_t vl)
{
	/* a reader drops a value's surrounding spaces and tabs */
	while (vl && (v[0] == ' ' || v[0] == '\t'))
		v++, vl--;
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	CHECK(!ferry__h1_buf_append(b, n, nl) &&
	      !ferry__h1_buf_append(b, "", 1) &&
	      !ferry__h1_buf_append(b, v, vl) &&
	      !ferry__h1_buf_append(b, "", 1));
}

static void expected(const struct req_in *r, struct ferry__h1_buf *b)
{
	const struct ferry__h1_header *host = NULL;
	bool ua = false;
	char tmp[300];
	size_t n;

	for (size_t i = 0; i < r->nh; i++) {
		if (name_is(&r->h[i], "host"))
			host = &r->h[i];
		ua |= name_is(&r->h[i], "user-agent");
	}
	if (host) {
		put_field(b, "Host", 4, host->value, host->value_len);
	} else {
		n = ferry_url_authority(&r->url, tmp, sizeof(tmp));
		CHECK(n < sizeof(tmp));
		put_field(b, "Host", 4, tmp, n);
	}
	if (!ua)
		put_field(b, "User-Agent", 10, FERRY__H1_USER_AGENT,
			  strlen(FERRY__H1_USER_AGENT));
	for (size_t i = 0; i < r->nh; i++)
		if (&r->h[i] != host)
			put_field(b, r->h[i].name, r->h[i].name_len,
				  r->h[i].value, r->h[i].value_len);
	if (r->body_len == FERRY__H1_BODY_CHUNKED) {
		put_field(b, "Transfer-Encoding", 17, "chunked", 7);
	} else if (r->body_len > 0 || !strcmp(r->method, "POST") ||
		   !strcmp(r->method, "PUT") || !strcmp(r->method, "PATCH")) {
		n = (size_t)snprintf(tmp, sizeof(tmp), "%" PRId64, r->body_len);
		put_field(b, "Content-Length", 14, tmp, n);
	}
}

/* ---- a plain reading of the head ---- */

/* Every CR before an LF, every LF after a CR, no NUL, and the first empty
 * line at the very end. */
static void check_lines(const char *p, size_t n)
{
	CHECK(n >= 4 && !memcmp(p + n - 4, "\r\n\r\n", 4));
	for (size_t i = 0; i < n; i++) {
		CHECK(p[i] != 0);
		if (p[i] == '\r')
			CHECK(i + 1 < n && p[i + 1] == '\n');
		if (p[i] == '\n')
			CHECK(i > 0 && p[i - 1] == '\r');
	}
	CHECK(memmem(p, n, "\r\n\r\n", 4) == p + n - 4);
}

static void read_head(const char *p, size_t n, const struct req_in *r,
		      struct ferry__h1_buf *fields)
{
	const char *end = p + n - 2, *eol = memmem(p, n, "\r\n", 2);
	size_t ml = strlen(r->method), tl = r->url.target_len;

	/* "METHOD target HTTP/1.1" */
	CHECK((size_t)(eol - p) == ml + 1 + tl + 9);
	CHECK(!memcmp(p, r->method, ml) && p[ml] == ' ');
	CHECK(!memcmp(p + ml + 1, r->url.target, tl));
	CHECK(!memcmp(p + ml + 1 + tl, " HTTP/1.1", 9));
	for (p = eol + 2; p < end; p = eol + 2) {
		const char *colon;

		eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
		colon = memchr(p, ':', (size_t)(eol - p));
		CHECK(colon && colon > p);
		put_field(fields, p, (size_t)(colon - p), colon + 1,
			  (size_t)(eol - colon - 1));
	}
}

/* ---- llhttp's reading ---- */

struct seen {
	struct ferry__h1_buf url, fields;	/* "name\0value\0"... */
	bool head_done;
	bool keep_alive;	/* taken at the end of the head, see on_head */
};

static int on_url(llhttp_t *p, const char *at, size_t n)
{
	return ferry__h1_buf_append(&((struct seen *)p->data)->url, at, n);
}

static int on_data(llhttp_t *p, const char *at, size_t n)
{
	return ferry__h1_buf_append(&((struct seen *)p->data)->fields, at, n);
}

static int on_end(llhttp_t *p)
{
	return ferry__h1_buf_append(&((struct seen *)p->data)->fields, "", 1);
}

static int on_head(llhttp_t *p)
{
	struct seen *seen = p->data;

	/* Asked here, not after llhttp_execute: once a body-less message is
	 * complete, llhttp resets its flags for the next one, and asked then
	 * it says keep-alive even for "Connection: close". */
	seen->head_done = true;
	seen->keep_alive = llhttp_should_keep_alive(p);
	return 0;
}

static void llhttp_check(const char *p, size_t n, const struct req_in *r,
			 const struct ferry__h1_buf *want, bool close)
{
	static const char *const known[] = { "GET", "HEAD", "POST", "PUT",
					     "PATCH", "DELETE" };
	struct seen seen = { 0 };
	struct ferry__h1_buf norm = { 0 };
	llhttp_settings_t st;
	llhttp_t parser;
	bool ok = false;
	enum llhttp_errno e;

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		ok |= !strcmp(r->method, known[i]);
	if (!ok)
		return;
	llhttp_settings_init(&st);
	st.on_url = on_url;
	st.on_header_field = on_data;
	st.on_header_field_complete = on_end;
	st.on_header_value = on_data;
	st.on_header_value_complete = on_end;
	st.on_headers_complete = on_head;
	llhttp_init(&parser, HTTP_REQUEST, &st);
	parser.data = &seen;
	e = llhttp_execute(&parser, p, n);
	if (e != HPE_OK) {
		fprintf(stderr, "fuzz_h1_request: llhttp: %s (%s)\n",
			llhttp_errno_name(e), llhttp_get_error_reason(&parser));
		abort();
	}
	CHECK(seen.head_done);
	CHECK(!strcmp(llhttp_method_name(llhttp_get_method(&parser)),
		      r->method));
	CHECK(seen.url.len == r->url.target_len &&
	      !memcmp(seen.url.data, r->url.target, seen.url.len));
	/* its fields, values trimmed the same way */
	for (size_t i = 0; i < seen.fields.len;) {
		const char *name = seen.fields.data + i;
		size_t nl = strlen(name);
		const char *value = name + nl + 1;
		size_t vl;

		CHECK(i + nl + 1 < seen.fields.len);
		vl = strlen(value);
		put_field(&norm, name, nl, value, vl);
		i += nl + 1 + vl + 1;
	}
	CHECK(norm.len == want->len && !memcmp(norm.data, want->data, norm.len));
	ferry__h1_buf_free(&norm);
	if (close != !seen.keep_alive) {
		fprintf(stderr, "fuzz_h1_request: writer says %s, llhttp "
			"says %s\n", close ? "close" : "keep-alive",
			close ? "keep-alive" : "close");
		fwrite(p, 1, n, stderr);
		abort();
	}
	ferry__h1_buf_free(&seen.url);
	ferry__h1_buf_free(&seen.fields);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct req_in r = { 0 };
	struct ferry__h1_buf out = { 0 }, want = { 0 }, got = { 0 };
	struct ferry__h1_req req;
	char why[FERRY__H1_WHY_MAX] = "";
	size_t before;
	int ret;

	if (len < 1)
		return 0;
	read_input(&r, data, len);
	req = (struct ferry__h1_req){ r.method, &r.url, r.h, r.nh,
				      r.body_len };
	CHECK(!ferry__h1_buf_append(&out, PREFIX, sizeof(PREFIX) - 1));
	before = out.len;
	ret = ferry__h1_req_write(&out, &req, why, sizeof(why));
	if (ret < 0) {
		CHECK(ret == FERRY_EINVAL && why[0]);
		CHECK(out.len == before && !memcmp(out.data, PREFIX, before));
		CHECK(must_refuse(&r));
		goto out;
	}
	CHECK(ret == 0 || ret == FERRY__H1_REQ_CLOSE);
	CHECK(!must_refuse(&r));
	CHECK(!memcmp(out.data, PREFIX, before));
	check_lines(out.data + before, out.len - before);
	expected(&r, &want);
	read_head(out.data + before, out.len - before, &r, &got);
	CHECK(got.len == want.len && !memcmp(got.data, want.data, got.len));
	llhttp_check(out.data + before, out.len - before, &r, &want,
		     ret == FERRY__H1_REQ_CLOSE);
out:
	ferry__h1_buf_free(&out);
	ferry__h1_buf_free(&want);
	ferry__h1_buf_free(&got);
	free_input(&r);
	return 0;
}
