/*
 * h1_response.c - incremental response parser over llhttp (h1.h).
 *
 * llhttp pushes through callbacks; ferry__h1_resp_feed turns that into a
 * pull interface by having the callbacks record an event and return
 * HPE_PAUSED: llhttp then stops right after the byte that raised it and
 * llhttp_get_error_pos() says how far it got. Pausing at the end of every
 * head, every body slice and every message gives exact head sizes (for the
 * limit), zero-copy body slices, and a clean stop at the end of the
 * response, so bytes that follow it are seen and never parsed as a second
 * message.
 *
 * llhttp is used with every lenient flag off; the line-ending checks that
 * it makes only when compiled with LLHTTP_STRICT_MODE are made here (see
 * ferry__check_framing), so ferry is as strict whichever way it was compiled.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "grow.h"
#include "h1.h"
#include "util.h"

/* Events the callbacks raise (ferry__ev); the public ones plus two. */
enum {
	EV_NONE = FERRY__H1_NEED_MORE,
	EV_HEAD = FERRY__H1_HEAD,
	EV_BODY = FERRY__H1_BODY,
	EV_DONE = FERRY__H1_DONE,
	EV_INTERIM_HEAD,	/* a 1xx head ended: its bytes are counted */
	EV_INTERIM_DONE,	/* a 1xx message ended: start over */
};

static struct ferry__h1_resp *ferry__resp_of(llhttp_t *p)
{
	return p->data;
}

/*
 * Record the first error and its reason; the callback then returns -1 so
 * llhttp stops. A later llhttp error does not replace ours.
 */
static int ferry__h1_resp_fail(struct ferry__h1_resp *r, int err,
			       const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int ferry__h1_resp_fail(struct ferry__h1_resp *r, int err,
			       const char *fmt, ...)
{
	va_list ap;

	if (r->ferry__state == FERRY__H1_RESP_ERROR)
		return r->ferry__err;
	va_start(ap, fmt);
	ferry__vwhyf(r->ferry__why, sizeof(r->ferry__why), fmt, ap);
	va_end(ap);
	r->ferry__state = FERRY__H1_RESP_ERROR;
	r->ferry__err = err;
	return err;
}

/*
 * The arena holds the head as received: each run appends the head bytes
 * llhttp consumed (ferry__run), so a head split over many feeds is one
 * string by its end. It only grows while a head is read, and the head is
 * bounded by max_head, so its size is bounded too.
 */
static int ferry__arena_put(struct ferry__h1_resp *r, const char *p, size_t n)
{
	size_t need = r->ferry__arena_len + n + 1;
	char *a;

	if (need > UINT32_MAX)
		return -ENOMEM;
	if (need > r->ferry__arena_cap) {
		a = ferry__grow(r->ferry__arena, &r->ferry__arena_cap, need,
				1024);
		if (!a)
			return -ENOMEM;
		r->ferry__arena = a;
	}
	memcpy(r->ferry__arena + r->ferry__arena_len, p, n);
	r->ferry__arena_len += n;
	return 0;
}

/* For callbacks: record the failure; -1 makes llhttp stop. */
static int ferry__oom(struct ferry__h1_resp *r)
{
	ferry__h1_resp_fail(r, -ENOMEM, "out of memory");
	return -1;
}

/*
 * The reason phrase, as llhttp delimits it (everything after the space
 * that follows the status code): only where it lies in the head is noted
 * here; ferry__head_fields NUL-terminates it in place.
 */
static int ferry__cb_status(llhttp_t *p, const char *at, size_t len)
{
	struct ferry__h1_resp *r = ferry__resp_of(p);

	/* RFC 9112 4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ).
	 * llhttp takes any byte but CR and LF there; a NUL would cut the
	 * reason short and an escape would reach whoever prints it. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)at[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			ferry__h1_resp_fail(
				r, FERRY_EPROTO,
				"control byte 0x%02x in the reason phrase", c);
			return -1;
		}
	}
	if (!r->ferry__reason_seen) {
		r->ferry__reason_seen = true;
		r->ferry__reason_off = (uint32_t)(r->ferry__run_base +
						  (size_t)(at - r->ferry__run_data));
	}
	r->ferry__reason_len += (uint32_t)len;
	return 0;
}

/* Trailers are dropped, but still bounded: count them against max_head. */
static int ferry__cb_trailer(llhttp_t *p, const char *at, size_t len)
{
	struct ferry__h1_resp *r = ferry__resp_of(p);

	(void)at;
	r->ferry__trailer_bytes += len;
	if (r->ferry__trailer_bytes > r->ferry__lim.max_head) {
		ferry__h1_resp_fail(r, FERRY_ETOOLARGE,
				    "trailer section exceeds %zu bytes",
				    r->ferry__lim.max_head);
		return -1;
	}
	return 0;
}

static bool ferry__is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static int ferry__push_field(struct ferry__h1_resp *r,
			     const struct ferry__h1_field *fl)
{
	if (r->ferry__nfields == r->ferry__fields_cap) {
		size_t bytes = r->ferry__fields_cap * sizeof(*r->ferry__fields);
		struct ferry__h1_field *f;

		f = ferry__grow(r->ferry__fields, &bytes,
				(r->ferry__nfields + 1) * sizeof(*f),
				16 * sizeof(*f));
		if (!f)
			return -ENOMEM;
		r->ferry__fields = f;
		r->ferry__fields_cap = bytes / sizeof(*f);
	}
	r->ferry__fields[r->ferry__nfields++] = *fl;
	return 0;
}

/*
 * An obs-fold line (RFC 9112 5.2) continues the value before it, as
 * llhttp reads it: the line is appended whole, its leading whitespace
 * dropped while the value is still empty. The bytes move left over the
 * line break, inside the arena; later lines are not touched.
 */
static void ferry__fold(struct ferry__h1_resp *r, struct ferry__h1_field *f,
			const char *s, size_t n)
{
	if (!f->value_len)
		while (n && ferry__is_ows(*s)) {
			s++;
			n--;
		}
	memmove(r->ferry__arena + f->value_off + f->value_len, s, n);
	f->value_len += (uint32_t)n;
}

/*
 * A value is done: trim it (RFC 9110 5.5), NUL-terminate it in place
 * (over its trailing whitespace or its line ending) and keep it. CR, LF
 * and NUL in a value must be refused (RFC 9110 5.5): lines are split at
 * LF and every CR in a head was checked to precede one
 * (ferry__check_framing), so only a NUL can be left, and only where
 * ferry__head_fields found one in the head (@nul).
 */
static int ferry__field_end(struct ferry__h1_resp *r,
			    struct ferry__h1_field *f, bool nul)
{
	char *a = r->ferry__arena;

	while (f->value_len && ferry__is_ows(a[f->value_off + f->value_len - 1]))
		f->value_len--;
	if (nul && memchr(a + f->value_off, 0, f->value_len)) {
		ferry__h1_resp_fail(r, FERRY_EPROTO,
				    "CR, LF or NUL in a header field value");
		return -1;
	}
	a[f->value_off + f->value_len] = 0;
	if (ferry__push_field(r, f))
		return ferry__oom(r);
	return 0;
}

/* One "name:" OWS value line of @n bytes at arena offset @off. */
static int ferry__field_start(struct ferry__h1_resp *r,
			      struct ferry__h1_field *f, size_t off, size_t n)
{
	char *s = r->ferry__arena + off;
	size_t name_len = ferry__h1_token_len(s, n);
	size_t v = name_len + 1;

	if (r->ferry__nfields >= r->ferry__lim.max_fields) {
		ferry__h1_resp_fail(r, FERRY_ETOOLARGE,
				    "more than %zu header fields",
				    r->ferry__lim.max_fields);
		return -1;
	}
	/* llhttp's loose mode lets some non-token bytes (a space) through,
	 * and any mode an empty name; a name that is not a token is a
	 * smuggling attempt or garbage. */
	if (!name_len || name_len == n || s[name_len] != ':') {
		ferry__h1_resp_fail(r, FERRY_EPROTO,
				    "invalid header field name");
		return -1;
	}
	s[name_len] = 0;	/* over the colon */
	while (v < n && ferry__is_ows(s[v]))
		v++;
	f->name_off = (uint32_t)off;
	f->name_len = (uint32_t)name_len;
	f->value_off = (uint32_t)(off + v);
	f->value_len = (uint32_t)(n - v);
	return 0;
}

/*
 * The head llhttp accepted is whole in the arena: index its fields, the
 * same way llhttp's header callbacks would have delimited them (checked
 * against them by tests/http/test_h1_response.c), and NUL-terminate the
 * reason, the names and the values in place. Lines end in LF, with the
 * CR before it dropped; the empty line ends the head.
 */
static int ferry__head_fields(struct ferry__h1_resp *r)
{
	char *a = r->ferry__arena;
	size_t end = r->ferry__arena_len, off;
	const char *nl = memchr(a, '\n', end);
	struct ferry__h1_field f;
	bool open = false;
	bool nul = memchr(a, 0, end) != NULL;	/* rare: then look closer */

	r->ferry__nfields = 0;
	if (r->ferry__reason_len)	/* over the status line's CR or LF */
		a[r->ferry__reason_off + r->ferry__reason_len] = 0;
	for (off = nl ? (size_t)(nl - a) + 1 : end; off < end;) {
		const char *e = memchr(a + off, '\n', end - off);
		size_t next = e ? (size_t)(e - a) + 1 : end;
		size_t n = (e ? (size_t)(e - a) : end) - off;

		if (n && a[off + n - 1] == '\r')
			n--;
		if (n == 0)
			break;
		if (ferry__is_ows(a[off]) && open) {
			ferry__fold(r, &f, a + off, n);
		} else {
			if ((open && ferry__field_end(r, &f, nul)) ||
			    ferry__field_start(r, &f, off, n))
				return -1;
			open = true;
		}
		off = next;
	}
	if (open && ferry__field_end(r, &f, nul))
		return -1;
	return 0;
}

/*
 * A head is complete. Pausing here is what makes head sizes exact, but it
 * takes the return value that would otherwise say "no body" (1): set the
 * flag that return value sets, F_SKIPBODY, ourselves instead; llhttp reads
 * it as soon as it resumes.
 */
static int ferry__cb_headers_complete(llhttp_t *p)
{
	struct ferry__h1_resp *r = ferry__resp_of(p);
	unsigned status = p->status_code;

	if (p->http_major != 1) {
		ferry__h1_resp_fail(r, FERRY_EPROTO,
				    "unsupported HTTP version %u.%u",
				    p->http_major, p->http_minor);
		return -1;
	}
	if (status < 100 || status == 101) {
		/* ferry never asks to switch protocols */
		ferry__h1_resp_fail(r, FERRY_EPROTO,
				    "unexpected status code %u", status);
		return -1;
	}
	if (status < 200) {
		if (r->ferry__interims >= r->ferry__lim.max_interim) {
			ferry__h1_resp_fail(
				r, FERRY_ETOOLARGE,
				"more than %zu interim (1xx) responses",
				r->ferry__lim.max_interim);
			return -1;
		}
		r->ferry__interims++;
		p->flags |= F_SKIPBODY;
		r->ferry__ev = EV_INTERIM_HEAD;
		return HPE_PAUSED;
	}
	/* RFC 9112 6.3: these never have a body, whatever the head says. */
	if (r->ferry__head_req || status == 204 || status == 304) {
		p->flags |= F_SKIPBODY;
	} else if ((p->flags & F_CONTENT_LENGTH) &&
		   p->content_length > r->ferry__lim.max_body) {
		ferry__h1_resp_fail(
			r, FERRY_ETOOLARGE,
			"Content-Length %llu exceeds the body limit of %llu bytes",
			(unsigned long long)p->content_length,
			(unsigned long long)r->ferry__lim.max_body);
		return -1;
	}
	/* RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding was
	 * likely forwarded by something that did not de-chunk it: read it,
	 * but close the connection after it. */
	r->ferry__no_reuse = p->http_minor == 0 &&
			     (p->flags & (F_TRANSFER_ENCODING | F_CHUNKED));
	r->ferry__status = (uint16_t)status;
	r->ferry__keep_alive = llhttp_should_keep_alive(p) && !r->ferry__no_reuse;
	r->ferry__state = FERRY__H1_RESP_BODY;
	r->ferry__ev = EV_HEAD;
	return HPE_PAUSED;
}

static int ferry__over_limit(struct ferry__h1_resp *r)
{
	return ferry__h1_resp_fail(r, FERRY_ETOOLARGE,
				   "body exceeds the limit of %llu bytes",
				   (unsigned long long)r->ferry__lim.max_body);
}

static int ferry__cb_body(llhttp_t *p, const char *at, size_t len)
{
	struct ferry__h1_resp *r = ferry__resp_of(p);

	if (len == 0)
		return 0;
	/* Over the limit: hand out what fits, and the feed that returns
	 * it marks the error (see ferry__over_limit), so that the bytes a caller
	 * gets before the error never depend on how the input was split. */
	if (len > r->ferry__lim.max_body - r->ferry__body_bytes)
		len = (size_t)(r->ferry__lim.max_body - r->ferry__body_bytes);
	if (len == 0) {
		ferry__over_limit(r);
		return -1;
	}
	r->ferry__body_bytes += len;
	r->ferry__slice.data = at;
	r->ferry__slice.len = len;
	r->ferry__ev = EV_BODY;
	return HPE_PAUSED;
}

/* llhttp has read a chunk size line: content_length is the chunk's size. */
static int ferry__cb_chunk_header(llhttp_t *p)
{
	struct ferry__h1_resp *r = ferry__resp_of(p);

	r->ferry__chunk_left = p->content_length;
	r->ferry__in_chunk = p->content_length > 0;
	return 0;
}

static int ferry__cb_message_complete(llhttp_t *p)
{
	struct ferry__h1_resp *r = ferry__resp_of(p);

	if (r->ferry__state == FERRY__H1_RESP_HEAD) {
		r->ferry__ev = EV_INTERIM_DONE;
		return HPE_PAUSED;
	}
	r->ferry__keep_alive = llhttp_should_keep_alive(p) && !r->ferry__no_reuse;
	r->ferry__state = FERRY__H1_RESP_DONE;
	r->ferry__ev = EV_DONE;
	return HPE_PAUSED;
}

/*
 * Static, as llhttp wants settings to outlive every parser using them.
 * Each callback costs a call per piece, so a head is read with the
 * fewest: the head itself is copied whole and indexed once it is
 * complete (ferry__head_fields). The body's settings take over at the
 * end of the final head; they see header pieces only in trailers.
 */
static const llhttp_settings_t head_settings = {
	.on_status = ferry__cb_status,
	.on_headers_complete = ferry__cb_headers_complete,
	.on_message_complete = ferry__cb_message_complete,
};

static const llhttp_settings_t body_settings = {
	.on_header_field = ferry__cb_trailer,
	.on_header_value = ferry__cb_trailer,
	.on_body = ferry__cb_body,
	.on_message_complete = ferry__cb_message_complete,
	.on_chunk_header = ferry__cb_chunk_header,
};

/* A new message: llhttp_reset keeps the settings, which the last
 * message may have switched to the body's. */
static void ferry__parser_reset(struct ferry__h1_resp *r)
{
	llhttp_reset(&r->ferry__parser);
	r->ferry__parser.settings = (void *)&head_settings;
}

void ferry__h1_resp_init(struct ferry__h1_resp *r,
			 const struct ferry__h1_limits *lim)
{
	memset(r, 0, sizeof(*r));
	if (lim)
		r->ferry__lim = *lim;
	if (!r->ferry__lim.max_head)
		r->ferry__lim.max_head = FERRY__H1_MAX_HEAD_DEFAULT;
	if (!r->ferry__lim.max_fields)
		r->ferry__lim.max_fields = FERRY__H1_MAX_FIELDS_DEFAULT;
	if (!r->ferry__lim.max_interim)
		r->ferry__lim.max_interim = FERRY__H1_MAX_INTERIM_DEFAULT;
	if (!r->ferry__lim.max_body)
		r->ferry__lim.max_body = UINT64_MAX;
	llhttp_init(&r->ferry__parser, HTTP_RESPONSE, &head_settings);
	r->ferry__parser.data = r;
	ferry__h1_resp_start(r, "GET");
}

void ferry__h1_resp_free(struct ferry__h1_resp *r)
{
	free(r->ferry__arena);
	free(r->ferry__fields);
	r->ferry__arena = NULL;
	r->ferry__fields = NULL;
	r->ferry__arena_cap = r->ferry__fields_cap = 0;
	r->ferry__arena_len = r->ferry__nfields = 0;
}

/* Forget the head read so far (a new message, or after a 1xx). */
static void ferry__head_clear(struct ferry__h1_resp *r)
{
	r->ferry__head_bytes = 0;
	r->ferry__arena_len = 0;
	r->ferry__nfields = 0;
	r->ferry__reason_off = 0;
	r->ferry__reason_len = 0;
	r->ferry__reason_seen = false;
	r->ferry__status = 0;
}

void ferry__h1_resp_start(struct ferry__h1_resp *r, const char *method)
{
	ferry__parser_reset(r);
	ferry__head_clear(r);
	r->ferry__head_req = method && !strcmp(method, "HEAD");
	r->ferry__state = FERRY__H1_RESP_HEAD;
	r->ferry__err = 0;
	r->ferry__why[0] = 0;
	r->ferry__keep_alive = false;
	r->ferry__no_reuse = false;
	r->ferry__interims = 0;
	r->ferry__ev = EV_NONE;
	r->ferry__received = 0;
	r->ferry__body_bytes = 0;
	r->ferry__trailer_bytes = 0;
	r->ferry__prev_cr = false;
	r->ferry__need_crlf = 0;
	r->ferry__in_chunk = false;
	r->ferry__chunk_left = 0;
}

/* An error llhttp found itself: name it with llhttp's own words. */
static int ferry__parse_fail(struct ferry__h1_resp *r, llhttp_errno_t e)
{
	if (r->ferry__state == FERRY__H1_RESP_ERROR)
		return r->ferry__err;	/* one of our callbacks said why */
	return ferry__h1_resp_fail(r, FERRY_EPROTO,
				   "malformed response: %s (%s)",
				   llhttp_get_error_reason(&r->ferry__parser),
				   llhttp_errno_name(e));
}

/*
 * Line endings in everything that is not body data (the head, chunk size
 * lines, the CRLF after chunk data, trailers). llhttp 8.1 checks them only
 * when built with LLHTTP_STRICT_MODE: otherwise it takes any byte after a
 * CR, and any two bytes after chunk data, as the line ending, so that
 * "200 OK\rX\n..." or "5\r\nhelloXY0" would be read in ways another
 * parser would not. Scanning here keeps ferry strict either way; body data
 * is never scanned.
 */
static int ferry__check_framing(struct ferry__h1_resp *r, const char *s,
				size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c;

		if (!r->ferry__need_crlf && !r->ferry__prev_cr) {
			/* Only a CR starts something to check: memchr skips
			 * the bytes in between far faster than this loop. */
			const char *cr = memchr(s + i, '\r', n - i);

			if (!cr)
				return 0;
			i = (size_t)(cr - s);
			/* The usual CR LF, whole in this piece: done with it,
			 * without a turn of the loop for the LF. */
			if (i + 1 < n && s[i + 1] == '\n') {
				i++;
				continue;
			}
		}
		c = s[i];

		if (r->ferry__need_crlf) {
			if (c != (r->ferry__need_crlf == 2 ? '\r' : '\n'))
				return ferry__h1_resp_fail(
					r, FERRY_EPROTO,
					"expected CRLF after chunk data");
			r->ferry__need_crlf--;
		}
		if (r->ferry__prev_cr && c != '\n')
			return ferry__h1_resp_fail(
				r, FERRY_EPROTO,
				"CR not followed by LF in response framing");
		r->ferry__prev_cr = c == '\r';
	}
	return 0;
}

/* A body slice was handed out: did it finish a chunk's data? */
static void ferry__chunk_advance(struct ferry__h1_resp *r, size_t len)
{
	if (!r->ferry__in_chunk)
		return;
	r->ferry__chunk_left -= len;
	if (r->ferry__chunk_left == 0) {
		r->ferry__in_chunk = false;
		r->ferry__need_crlf = 2;
	}
}

/*
 * Run llhttp over at most n bytes and say how many it consumed. While a
 * head is read, n is clipped so that llhttp never sees more than max_head
 * bytes of it: a head that has not ended by then is too large.
 */
static int ferry__run(struct ferry__h1_resp *r, const char *data, size_t n,
		      size_t *used)
{
	llhttp_t *p = &r->ferry__parser;
	bool in_head = r->ferry__state == FERRY__H1_RESP_HEAD;
	const char *pos;
	size_t framing;
	llhttp_errno_t e;

	if (in_head && n > r->ferry__lim.max_head - r->ferry__head_bytes)
		n = r->ferry__lim.max_head - r->ferry__head_bytes;
	r->ferry__ev = EV_NONE;
	r->ferry__run_data = data;
	r->ferry__run_base = r->ferry__arena_len;
	e = llhttp_execute(p, data, n);
	pos = llhttp_get_error_pos(p);
	*used = e == HPE_OK ? n : (pos >= data && pos <= data + n) ?
		(size_t)(pos - data) : 0;
	if (r->ferry__state == FERRY__H1_RESP_ERROR)
		return r->ferry__err;	/* a callback refused: it said why */
	/* a slice ends where llhttp paused; what came before it is framing */
	framing = *used;
	if (e == HPE_PAUSED && r->ferry__ev == EV_BODY)
		framing = (size_t)(r->ferry__slice.data - data);
	if (ferry__check_framing(r, data, framing))
		return r->ferry__err;	/* names the cause better than llhttp */
	if (e == HPE_PAUSED)
		llhttp_resume(p);
	else if (e != HPE_OK)
		return ferry__parse_fail(r, e);
	if (in_head) {
		if (ferry__arena_put(r, data, *used))
			return ferry__oom(r), r->ferry__err;
		if ((r->ferry__ev == EV_HEAD || r->ferry__ev == EV_INTERIM_HEAD) &&
		    ferry__head_fields(r)) {
			r->ferry__status = 0;	/* no head, as for any error */
			return r->ferry__err;
		}
		/* paused at the final head's end: the body's callbacks on */
		if (r->ferry__ev == EV_HEAD)
			p->settings = (void *)&body_settings;
	}
	if (r->ferry__ev == EV_BODY)
		ferry__chunk_advance(r, r->ferry__slice.len);
	r->ferry__received += *used;
	if (in_head)
		r->ferry__head_bytes += *used;
	if (r->ferry__ev == EV_NONE && r->ferry__state == FERRY__H1_RESP_HEAD &&
	    r->ferry__head_bytes >= r->ferry__lim.max_head)
		return ferry__h1_resp_fail(
			r, FERRY_ETOOLARGE, "response head exceeds %zu bytes%s",
			r->ferry__lim.max_head,
			r->ferry__interims ? " (1xx heads included)" : "");
	return 0;
}

int ferry__h1_resp_feed(struct ferry__h1_resp *r, const char *data,
			size_t len, size_t *used,
			struct ferry__h1_slice *body)
{
	size_t off = 0;
	int err;

	*used = 0;
	if (r->ferry__state == FERRY__H1_RESP_ERROR)
		return r->ferry__err;
	if (r->ferry__state == FERRY__H1_RESP_DONE)
		return len ? ferry__h1_resp_fail(
				     r, FERRY_EPROTO,
				     "unexpected data after the response")
			   : FERRY__H1_DONE;
	if (!data)
		data = "";
	/* Run at least once: with no bytes left llhttp still finishes a
	 * message that needs none (a head without body after HEAD). */
	do {
		size_t n = 0;

		err = ferry__run(r, data + off, len - off, &n);
		off += n;
		*used = off;
		if (err)
			return err;
		switch (r->ferry__ev) {
		case EV_NONE:
		case EV_INTERIM_HEAD:
			continue;
		case EV_INTERIM_DONE: {
			/* 100 Continue and friends: the real head follows.
			 * Their bytes stay counted: max_head bounds all the
			 * heads of one response, or a peer could send 1xx
			 * heads for ever. */
			size_t seen = r->ferry__head_bytes;

			ferry__parser_reset(r);
			ferry__head_clear(r);
			r->ferry__head_bytes = seen;
			continue;
		}
		case EV_BODY:
			if (body)
				*body = r->ferry__slice;
			/* cut at the limit: llhttp consumed more than that */
			if (r->ferry__slice.data + r->ferry__slice.len <
			    data + off)
				ferry__over_limit(r);
			return FERRY__H1_BODY;
		default:
			return r->ferry__ev;
		}
	} while (off < len);
	return FERRY__H1_NEED_MORE;
}

int ferry__h1_resp_finish(struct ferry__h1_resp *r)
{
	llhttp_errno_t e;
	size_t used;

	switch (r->ferry__state) {
	case FERRY__H1_RESP_ERROR:
		return r->ferry__err;
	case FERRY__H1_RESP_DONE:
		return FERRY__H1_DONE;
	case FERRY__H1_RESP_HEAD:
		if (r->ferry__received == 0)
			return ferry__h1_resp_fail(
				r, FERRY_EEMPTY_REPLY,
				"connection closed before any response byte");
		return ferry__h1_resp_fail(
			r, FERRY_EPROTO,
			"connection closed in the response head");
	case FERRY__H1_RESP_BODY:
		break;
	}
	/* A message may be complete with nothing more to read. */
	if (ferry__h1_resp_feed(r, "", 0, &used, NULL) == FERRY__H1_DONE)
		return FERRY__H1_DONE;
	if (r->ferry__state == FERRY__H1_RESP_ERROR)
		return r->ferry__err;
	/* Only a body read until close ends safely here (llhttp calls
	 * on_message_complete, which pauses); any other is cut short. */
	e = llhttp_finish(&r->ferry__parser);
	if (e == HPE_PAUSED && r->ferry__state == FERRY__H1_RESP_DONE)
		return FERRY__H1_DONE;
	return ferry__h1_resp_fail(
		r, FERRY_EPARTIAL,
		"connection closed before the end of the body (%llu bytes read)",
		(unsigned long long)r->ferry__body_bytes);
}

bool ferry__h1_resp_idle(const struct ferry__h1_resp *r)
{
	return r->ferry__received == 0;
}

uint64_t ferry__h1_resp_body_left(const struct ferry__h1_resp *r)
{
	const llhttp_t *p = &r->ferry__parser;

	/* llhttp counts content_length down as it consumes the body. */
	if (r->ferry__state != FERRY__H1_RESP_BODY || r->ferry__err ||
	    !(p->flags & F_CONTENT_LENGTH) ||
	    (p->flags & (F_SKIPBODY | F_CHUNKED | F_TRANSFER_ENCODING)))
		return 0;
	return p->content_length;
}

const char *ferry__h1_resp_why(const struct ferry__h1_resp *r)
{
	return r->ferry__why;
}

int ferry__h1_resp_status(const struct ferry__h1_resp *r)
{
	return r->ferry__status;
}

const char *ferry__h1_resp_reason(const struct ferry__h1_resp *r,
				  size_t *len)
{
	if (len)
		*len = r->ferry__status ? r->ferry__reason_len : 0;
	if (!r->ferry__status || !r->ferry__reason_len)
		return "";
	return r->ferry__arena + r->ferry__reason_off;
}

int ferry__h1_resp_minor(const struct ferry__h1_resp *r)
{
	return r->ferry__parser.http_minor;
}

bool ferry__h1_resp_keep_alive(const struct ferry__h1_resp *r)
{
	return r->ferry__keep_alive;
}

size_t ferry__h1_resp_header_count(const struct ferry__h1_resp *r)
{
	return r->ferry__status ? r->ferry__nfields : 0;
}

bool ferry__h1_resp_header_at(const struct ferry__h1_resp *r, size_t i,
			      struct ferry__h1_header *out)
{
	const struct ferry__h1_field *f;

	if (i >= ferry__h1_resp_header_count(r))
		return false;
	f = &r->ferry__fields[i];
	out->name = r->ferry__arena + f->name_off;
	out->name_len = f->name_len;
	out->value = r->ferry__arena + f->value_off;
	out->value_len = f->value_len;
	return true;
}

const char *ferry__h1_resp_header_find(const struct ferry__h1_resp *r,
				       const char *name, size_t *pos,
				       size_t *value_len)
{
	size_t n = strlen(name);
	size_t count = ferry__h1_resp_header_count(r);

	for (size_t i = *pos; i < count; i++) {
		const struct ferry__h1_field *f = &r->ferry__fields[i];

		if (f->name_len != n ||
		    strncasecmp(r->ferry__arena + f->name_off, name, n))
			continue;
		*pos = i + 1;
		if (value_len)
			*value_len = f->value_len;
		return r->ferry__arena + f->value_off;
	}
	return NULL;
}

const char *ferry__h1_resp_header(const struct ferry__h1_resp *r,
				  const char *name, size_t *value_len)
{
	size_t pos = 0;

	return ferry__h1_resp_header_find(r, name, &pos, value_len);
}
