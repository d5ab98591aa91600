/*
 * h1_request.c - request heads and chunked framing (h1.h).
 *
 * The writer checks everything first and computes the exact size, so a
 * bad header never leaves half a head in the buffer and the buffer grows
 * at most once per request.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "grow.h"
#include "h1.h"

int ferry__h1_buf_reserve(struct ferry__h1_buf *b, size_t more)
{
	char *p;

	if (more <= b->cap - b->len)
		return 0;
	if (more > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	p = ferry__grow(b->data, &b->cap, b->len + more, 256);
	if (!p)
		return -ENOMEM;
	b->data = p;
	return 0;
}

int ferry__h1_buf_append(struct ferry__h1_buf *b, const void *p, size_t n)
{
	int err = ferry__h1_buf_reserve(b, n);

	if (err)
		return err;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void ferry__h1_buf_free(struct ferry__h1_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static const bool tchar[256] = {
	['0' ... '9'] = true, ['A' ... 'Z'] = true, ['a' ... 'z'] = true,
	['!'] = true, ['#'] = true, ['$'] = true, ['%'] = true, ['&'] = true,
	['\''] = true, ['*'] = true, ['+'] = true, ['-'] = true, ['.'] = true,
	['^'] = true, ['_'] = true, ['`'] = true, ['|'] = true, ['~'] = true,
};

/* A table: every response header name goes through here. */
static bool ferry__is_tchar(unsigned char c)
{
	return tchar[c];
}

size_t ferry__h1_token_len(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && ferry__is_tchar((unsigned char)s[i]))
		i++;
	return i;
}

bool ferry__h1_is_token(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!ferry__is_tchar((unsigned char)s[i]))
			return false;
	return true;
}

static bool ferry__name_is(const struct ferry__h1_header *h, const char *name)
{
	size_t n = strlen(name);

	return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* Does a Connection value list the "close" option? (RFC 9110 7.6.1) */
static bool ferry__has_close_token(const char *v, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t start, end;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		start = i;
		while (i < len && v[i] != ',')
			i++;
		end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (end - start == 5 && strncasecmp(v + start, "close", 5) == 0)
			return true;
	}
	return false;
}

static int ferry__h1_req_fail(char *why, size_t whylen, const char *msg)
{
	if (why && whylen)
		snprintf(why, whylen, "%s", msg);
	return FERRY_EINVAL;
}

/* Facts the check pass learns, used by the write pass. */
struct req_plan {
	const struct ferry__h1_header *host;	/* caller's, or NULL */
	bool user_agent;			/* caller sent one */
	bool clen_given;			/* raw: caller's Content-Length */
	bool te_given;				/* raw: caller's chunked TE */
	bool pconn_given;			/* caller's Proxy-Connection */
	bool close;
	size_t size;				/* exact bytes to write */
	size_t authority_len;
	char clen[24];				/* Content-Length digits or "" */
};

/* Raw mode: a Content-Length must state the body's exact length. */
static bool ferry__clen_matches(const struct ferry__h1_header *h,
				int64_t body_len)
{
	char want[24];
	int n = snprintf(want, sizeof(want), "%" PRId64, body_len);

	return body_len >= 0 && (size_t)n == h->value_len &&
	       memcmp(want, h->value, h->value_len) == 0;
}

static int ferry__check_header(const struct ferry__h1_req *req,
			       const struct ferry__h1_header *h,
			       struct req_plan *plan, char *why, size_t whylen)
{
	if (!h->name || (!h->value && h->value_len))
		return ferry__h1_req_fail(why, whylen,
					  "header with NULL name or value");
	if (!ferry__h1_is_token(h->name, h->name_len))
		return ferry__h1_req_fail(why, whylen,
					  "header name is not a token");
	for (size_t i = 0; i < h->value_len; i++) {
		unsigned char c = (unsigned char)h->value[i];

		if (c == '\r' || c == '\n' || c == 0)
			return ferry__h1_req_fail(
				why, whylen,
				"header value contains CR, LF or NUL");
		/* RFC 9110 5.5: HTAB is the only control byte a field value
		 * may hold; strict servers (llhttp) refuse any other. */
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return ferry__h1_req_fail(
				why, whylen,
				"header value contains a control character");
	}
	if (req->raw && ferry__name_is(h, "content-length")) {
		if (plan->clen_given || !ferry__clen_matches(h, req->body_len))
			return ferry__h1_req_fail(
				why, whylen,
				"Content-Length must be given once and state the body's length");
		plan->clen_given = true;
		return 0;
	}
	if (req->raw && ferry__name_is(h, "transfer-encoding")) {
		if (plan->te_given || req->body_len != FERRY__H1_BODY_CHUNKED ||
		    h->value_len != 7 || strncasecmp(h->value, "chunked", 7))
			return ferry__h1_req_fail(
				why, whylen,
				"Transfer-Encoding must be given once, as \"chunked\", for a body of unknown length");
		plan->te_given = true;
		return 0;
	}
	if (ferry__name_is(h, "content-length") ||
	    ferry__name_is(h, "transfer-encoding"))
		return ferry__h1_req_fail(
			why, whylen,
			"Content-Length and Transfer-Encoding are set by ferry from the body length");
	if (ferry__name_is(h, "proxy-connection"))
		plan->pconn_given = true;
	if (ferry__name_is(h, "host")) {
		if (plan->host)
			return ferry__h1_req_fail(why, whylen,
						  "more than one Host header");
		plan->host = h;
	} else if (ferry__name_is(h, "user-agent")) {
		plan->user_agent = true;
	} else if (ferry__name_is(h, "connection")) {
		plan->close |= ferry__has_close_token(h->value, h->value_len);
	}
	return 0;
}

/*
 * Is @h left out of the head? The Host of a non-raw request (written
 * first, apart), and in raw mode a Proxy-Connection when the request
 * does not go to a forward proxy: a hop-by-hop field for the proxy only.
 */
static bool ferry__field_skipped(const struct ferry__h1_req *req,
				 const struct req_plan *p,
				 const struct ferry__h1_header *h)
{
	if (h == p->host)
		return true;
	return req->raw && !req->absolute_form &&
	       ferry__name_is(h, "proxy-connection");
}

/* Proxy-Authorization goes right after Host (curl's order); in raw mode
 * Host is one of the caller's fields, and this is the one it is. */
static bool ferry__auth_after(const struct ferry__h1_req *req,
			      const struct ferry__h1_header *h)
{
	return req->raw && req->proxy_auth && ferry__name_is(h, "host");
}

/* Raw mode with a Host among the fields: Proxy-Authorization follows it. */
static bool ferry__auth_placed(const struct ferry__h1_req *req)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (ferry__auth_after(req, &req->headers[i]))
			return true;
	return false;
}

#define PCONN_FIELD "Proxy-Connection: Keep-Alive\r\n"

/* Methods whose servers expect a body: send "Content-Length: 0" for them. */
static bool ferry__method_wants_length(const char *m)
{
	return !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
}

static int ferry__plan_request(const struct ferry__h1_req *req,
			       struct req_plan *p, char *why, size_t whylen)
{
	const struct ferry_url *u = req->url;
	size_t mlen, size;
	int err;

	memset(p, 0, sizeof(*p));
	if (!req->method || !u || !u->host || !u->target ||
	    (req->nheaders && !req->headers))
		return ferry__h1_req_fail(why, whylen,
					  "NULL method, URL or headers");
	mlen = strlen(req->method);
	if (!ferry__h1_is_token(req->method, mlen))
		return ferry__h1_req_fail(why, whylen, "method is not a token");
	if (!strcmp(req->method, "CONNECT"))
		return ferry__h1_req_fail(why, whylen,
					  "CONNECT is not supported");
	if (req->body_len < FERRY__H1_BODY_CHUNKED)
		return ferry__h1_req_fail(why, whylen, "negative body length");
	for (size_t i = 0; i < req->nheaders; i++) {
		err = ferry__check_header(req, &req->headers[i], p, why,
					  whylen);
		if (err)
			return err;
	}
	/* "M target HTTP/1.1\r\n" */
	size = mlen + 1 + u->target_len + sizeof(" HTTP/1.1\r\n") - 1;
	p->authority_len = ferry_url_authority(u, NULL, 0);
	if (req->absolute_form)	/* "scheme://" authority before target */
		size += strlen(ferry_url_scheme_name(u->scheme)) + 3 +
			p->authority_len;
	if (req->proxy_auth)
		size += sizeof("Proxy-Authorization: \r\n") - 1 +
			strlen(req->proxy_auth);
	if (req->raw) {
		p->host = NULL;		/* written in place, with the others */
		p->user_agent = true;
	} else {
		size += sizeof("Host: \r\n") - 1 +
			(p->host ? p->host->value_len : p->authority_len);
	}
	if (!p->user_agent)
		size += sizeof("User-Agent: " FERRY__H1_USER_AGENT "\r\n") - 1;
	if (!req->raw && req->absolute_form && !p->pconn_given)
		size += sizeof(PCONN_FIELD) - 1;
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct ferry__h1_header *h = &req->headers[i];

		if (!ferry__field_skipped(
			    req, p, h)) /* "Name: value\r\n", "Name:\r\n" */
			size += h->name_len + (h->value_len ? 2 : 1) +
				h->value_len + 2;
	}
	if (req->body_len == FERRY__H1_BODY_CHUNKED && !p->te_given)
		size += sizeof("Transfer-Encoding: chunked\r\n") - 1;
	else if (!p->clen_given &&
		 (req->body_len > 0 ||
		  (!req->raw && ferry__method_wants_length(req->method))))
		snprintf(p->clen, sizeof(p->clen), "%" PRId64, req->body_len);
	if (p->clen[0])
		size += sizeof("Content-Length: \r\n") - 1 + strlen(p->clen);
	p->size = size + 2;
	return 0;
}

static char *ferry__put(char *w, const char *s, size_t n)
{
	memcpy(w, s, n);
	return w + n;
}

#define PUT_LIT(w, lit) ferry__put((w), (lit), sizeof(lit) - 1)

static char *ferry__put_field(char *w, const char *name, size_t nlen,
			      const char *value, size_t vlen)
{
	w = ferry__put(w, name, nlen);
	/* An empty field has no space after its colon (as curl's). */
	w = vlen ? PUT_LIT(w, ": ") : PUT_LIT(w, ":");
	w = ferry__put(w, value, vlen);
	return PUT_LIT(w, "\r\n");
}

int ferry__h1_req_write(struct ferry__h1_buf *out,
			const struct ferry__h1_req *req,
			char *why, size_t whylen)
{
	const struct ferry_url *u;
	struct req_plan p;
	char *w, *start;
	int err;

	if (!out || !req)
		return ferry__h1_req_fail(why, whylen,
					  "NULL buffer or request");
	err = ferry__plan_request(req, &p, why, whylen);
	if (err)
		return err;
	err = ferry__h1_buf_reserve(out, p.size + 1);	/* +1: snprintf NUL */
	if (err)
		return err;
	u = req->url;
	w = start = out->data + out->len;
	w = ferry__put(w, req->method, strlen(req->method));
	w = PUT_LIT(w, " ");
	if (req->absolute_form) {
		const char *sn = ferry_url_scheme_name(u->scheme);

		w = ferry__put(w, sn, strlen(sn));
		w = PUT_LIT(w, "://");
		w += ferry_url_authority(u, w, p.authority_len + 1);
	}
	w = ferry__put(w, u->target, u->target_len);
	w = PUT_LIT(w, " HTTP/1.1\r\n");
	if (!req->raw) {
		w = PUT_LIT(w, "Host: ");
		if (p.host)
			w = ferry__put(w, p.host->value, p.host->value_len);
		else
			w += ferry_url_authority(u, w, p.authority_len + 1);
		w = PUT_LIT(w, "\r\n");
	}
	if (req->proxy_auth && !ferry__auth_placed(req))
		w = ferry__put_field(w, "Proxy-Authorization", 19,
				     req->proxy_auth, strlen(req->proxy_auth));
	if (!p.user_agent)
		w = PUT_LIT(w, "User-Agent: " FERRY__H1_USER_AGENT "\r\n");
	/* libcurl's field for a forward proxy, where libcurl puts it; a raw
	 * caller lists its own where it wants it. */
	if (!req->raw && req->absolute_form && !p.pconn_given)
		w = PUT_LIT(w, PCONN_FIELD);
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct ferry__h1_header *h = &req->headers[i];

		if (ferry__field_skipped(req, &p, h))
			continue;
		w = ferry__put_field(w, h->name, h->name_len, h->value,
				     h->value_len);
		if (ferry__auth_after(req, h))
			w = ferry__put_field(w, "Proxy-Authorization", 19,
					     req->proxy_auth,
					     strlen(req->proxy_auth));
	}
	if (req->body_len == FERRY__H1_BODY_CHUNKED && !p.te_given)
		w = PUT_LIT(w, "Transfer-Encoding: chunked\r\n");
	if (p.clen[0])
		w = ferry__put_field(w, "Content-Length", 14, p.clen,
				     strlen(p.clen));
	w = PUT_LIT(w, "\r\n");
	out->len += (size_t)(w - start);
	return p.close ? FERRY__H1_REQ_CLOSE : 0;
}

size_t ferry__h1_chunk_head(char buf[FERRY__H1_CHUNK_HEAD_MAX], uint64_t n)
{
	int len;

	if (n == 0)
		return 0;
	len = snprintf(buf, FERRY__H1_CHUNK_HEAD_MAX, "%" PRIx64 "\r\n", n);
	return len < 0 ? 0 : (size_t)len;
}

int ferry__h1_chunk_append(struct ferry__h1_buf *out, const void *data,
			   size_t n)
{
	char head[FERRY__H1_CHUNK_HEAD_MAX];
	size_t hlen = ferry__h1_chunk_head(head, n);
	int err;

	if (n == 0)
		return 0;
	err = ferry__h1_buf_reserve(out, hlen + n + 2);
	if (err)
		return err;
	ferry__h1_buf_append(out, head, hlen);
	ferry__h1_buf_append(out, data, n);
	ferry__h1_buf_append(out, FERRY__H1_CHUNK_TAIL, 2);
	return 0;
}

int ferry__h1_chunk_end(struct ferry__h1_buf *out)
{
	return ferry__h1_buf_append(out, FERRY__H1_CHUNK_LAST,
				    sizeof(FERRY__H1_CHUNK_LAST) - 1);
}
