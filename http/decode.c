/*
 * decode.c - gzip and deflate response bodies, decoded as they arrive
 * (see decode.h for where it hooks in and what it holds).
 *
 * zlib does the work. "deflate" is meant to be zlib-wrapped (RFC 9110
 * 8.4.1.2) but servers send raw deflate too, so the first two bytes
 * decide, as browsers and curl do. gzip may come as several members one
 * after the other (gzip -d reads them all); a deflate stream must end
 * with the body. Every decoded block goes through the request's usual
 * on_body path (limits, keep, pause), and two limits stop a bomb before
 * it takes memory: decoded bytes in all, and decoded per encoded byte.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "decode.h"
#include "internal.h"

enum decode_kind {
	DECODE_GZIP,
	DECODE_DEFLATE,
};

struct ferry__decode {
	z_stream z;
	enum decode_kind kind;
	bool started;		/* inflateInit2 done (deflate: after 2 bytes) */
	bool ended;		/* the compressed stream's end was seen */
	bool more_out;		/* the last inflate filled its block: zlib
				   may hold more output without more input */
	uint64_t in_total;	/* encoded bytes inflate consumed */
	uint64_t out_total;	/* decoded bytes */
	uint64_t max_out;	/* min(max_decoded, max_body) */
	unsigned max_ratio;	/* UINT_MAX: none */
	struct ferry__spill *blk;	/* block being filled; ours */
	/* Encoded bytes not yet consumed (a pause mid-slice, or deflate's
	 * first byte): a copy, so no receive buffer is held meanwhile. */
	char *pend;
	size_t pend_off, pend_len, pend_cap;
};

static const char *ferry__kind_name(const struct ferry__decode *d)
{
	return d->kind == DECODE_GZIP ? "gzip" : "deflate";
}

bool ferry__decode_wanted(const struct ferry_http_client_opts *copts,
			  const struct ferry_http_request_opts *o)
{
	if (o->decode_content == FERRY_HTTP_DECODE_DEFAULT)
		return copts->decode_content;
	return o->decode_content == FERRY_HTTP_DECODE_YES;
}

bool ferry__decode_active(const struct ferry_http_request *req)
{
	return req->decode != NULL;
}

/* Which coding the response names: 1 gzip, 2 deflate, 0 anything else
 * (absent, identity, unknown, a list, or repeated fields). */
static int ferry__coding_of(const struct ferry__h1_resp *p)
{
	size_t pos = 0, len;
	const char *v = ferry__h1_resp_header_find(p, "Content-Encoding", &pos,
						   &len);

	if (!v || ferry__h1_resp_header_find(p, "Content-Encoding", &pos, NULL))
		return 0;
	if ((len == 4 && !strncasecmp(v, "gzip", 4)) ||
	    (len == 6 && !strncasecmp(v, "x-gzip", 6)))
		return 1;
	if (len == 7 && !strncasecmp(v, "deflate", 7))
		return 2;
	return 0;
}

int ferry__decode_begin(struct ferry_http_request *req,
			const struct ferry__h1_resp *p)
{
	const struct ferry_http_client_opts *co = &req->client->opts;
	struct ferry__decode *d;
	int coding;

	ferry__decode_free(req);	/* an earlier attempt's */
	if (!req->decode_on)
		return 0;
	coding = ferry__coding_of(p);
	if (!coding)
		return 0;
	d = calloc(1, sizeof(*d));
	if (!d)
		goto nomem;
	d->kind = coding == 1 ? DECODE_GZIP : DECODE_DEFLATE;
	d->max_out = co->max_decoded;
	if (req->max_body && req->max_body < d->max_out)
		d->max_out = req->max_body;
	d->max_ratio = co->max_decode_ratio;
	req->decode = d;
	/* gzip only (16): a gzip body in another wrapper is corrupt. */
	if (d->kind == DECODE_GZIP) {
		if (inflateInit2(&d->z, 16 + MAX_WBITS) != Z_OK)
			goto nomem;
		d->started = true;
	}
	return 0;
nomem:
	ferry__req_fail(req, -ENOMEM, "content decoding: out of memory");
	return -1;
}

/* Fail @req with what zlib said; @req (and d) are gone afterwards. */
static int ferry__decode_fail(struct ferry_http_request *req,
			      struct ferry__decode *d, int zr)
{
	if (zr == Z_MEM_ERROR) {
		ferry__req_fail(req, -ENOMEM, "content decoding: out of memory");
		return -1;
	}
	ferry__req_fail(req, FERRY_EDECODE,
			"%s body is corrupt after %" PRIu64
			" encoded bytes: %s",
			ferry__kind_name(d), d->in_total,
			zr == Z_NEED_DICT ? "it needs a preset dictionary"
			: d->z.msg	  ? d->z.msg
					  : "bad data");
	return -1;
}

/* Both limits, after @d decoded more. 0, or -1 with @req failed. */
static int ferry__decode_limits(struct ferry_http_request *req,
				struct ferry__decode *d)
{
	uint64_t in = d->in_total ? d->in_total : 1;

	if (d->out_total > d->max_out) {
		ferry__req_fail(req, FERRY_ETOOLARGE,
				"decoded %s body exceeds the limit of %" PRIu64
				" bytes (%s)",
				ferry__kind_name(d), d->max_out,
				d->max_out == req->max_body ? "max_body"
							    : "max_decoded");
		return -1;
	}
	if (d->max_ratio != UINT_MAX && d->out_total >= FERRY__DECODE_RATIO_FLOOR &&
	    d->out_total / in > d->max_ratio) {
		ferry__req_fail(req, FERRY_ETOOLARGE,
				"%s body expands more than %u:1 (%" PRIu64
				" bytes from %" PRIu64
				"): a decompression bomb? "
				"(max_decode_ratio)",
				ferry__kind_name(d), d->max_ratio, d->out_total,
				d->in_total);
		return -1;
	}
	return 0;
}

/* Hand @n decoded bytes in d->blk to on_body. 0, or -1: @req failed. */
static int ferry__decode_deliver(struct ferry_http_request *req,
				 struct ferry__decode *d, size_t n)
{
	struct ferry__spill *sp = d->blk;
	struct ferry__input in = { sp, 0, 0, (uint32_t)n };

	d->out_total += n;
	if (ferry__decode_limits(req, d) < 0)
		return -1;
	sp->len = n;
	/* The block stays ours (refs 1) unless on_body kept it; a kept one
	 * is the keeper's, and the next output goes to a new block. */
	if (ferry__req_deliver(req, sp->data, n, &in) < 0)
		return -1;
	if (sp->refs > 1) {
		ferry__spill_unref(req->client, sp);
		d->blk = NULL;
	}
	return 0;
}

static int ferry__decode_block(struct ferry__decode *d)
{
	struct ferry__spill *sp;

	if (d->blk)
		return 0;
	sp = malloc(sizeof(*sp) + FERRY__DECODE_BLOCK + 1);
	if (!sp)
		return -ENOMEM;
	memset(sp, 0, sizeof(*sp));
	sp->refs = 1;
	d->blk = sp;
	return 0;
}

/* What follows a finished stream: gzip's next member, or an error. */
static int ferry__decode_next_member(struct ferry_http_request *req,
				     struct ferry__decode *d)
{
	if (d->kind == DECODE_DEFLATE) {
		ferry__req_fail(req, FERRY_EDECODE,
				"deflate body has %u bytes after the end of its "
				"compressed stream", d->z.avail_in);
		return -1;
	}
	d->ended = false;
	return inflateReset(&d->z) == Z_OK
		       ? 0
		       : ferry__decode_fail(req, d, Z_STREAM_ERROR);
}

/*
 * Inflate d->z's input, block by block, delivering each, until the input
 * is used up and zlib has nothing more, or @req pauses. 0, or -1 with
 * @req failed (and @d freed).
 */
static int ferry__decode_run(struct ferry_http_request *req,
			     struct ferry__decode *d)
{
	while ((d->z.avail_in || d->more_out) && !req->paused) {
		unsigned before = d->z.avail_in;
		size_t n;
		int zr;

		if (d->ended && d->z.avail_in &&
		    ferry__decode_next_member(req, d) < 0)
			return -1;
		if (ferry__decode_block(d) < 0)
			return ferry__decode_fail(req, d, Z_MEM_ERROR);
		d->z.next_out = (unsigned char *)d->blk->data;
		d->z.avail_out = FERRY__DECODE_BLOCK;
		zr = inflate(&d->z, Z_NO_FLUSH);
		d->in_total += before - d->z.avail_in;
		n = FERRY__DECODE_BLOCK - d->z.avail_out;
		d->more_out = d->z.avail_out == 0;
		if (zr == Z_STREAM_END)
			d->ended = true;
		else if (zr == Z_BUF_ERROR)	/* no progress possible */
			d->more_out = false;
		/* What came out before damage is delivered first: then the
		 * bytes, and which limit or error ends the body, do not
		 * depend on how the body was sliced. */
		if (n && ferry__decode_deliver(req, d, n) < 0)
			return -1;
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
			return ferry__decode_fail(req, d, zr);
		if (d->ended && !d->z.avail_in)
			d->more_out = false;
	}
	return 0;
}

static int ferry__pend_append(struct ferry__decode *d, const char *data,
			      size_t len)
{
	if (d->pend_off) {
		memmove(d->pend, d->pend + d->pend_off, d->pend_len);
		d->pend_off = 0;
	}
	if (d->pend_len + len > d->pend_cap) {
		size_t cap = d->pend_len + len;
		char *p = realloc(d->pend, cap);

		if (!p)
			return -ENOMEM;
		d->pend = p;
		d->pend_cap = cap;
	}
	memcpy(d->pend + d->pend_len, data, len);
	d->pend_len += len;
	return 0;
}

/* deflate: zlib-wrapped if the first two bytes make a zlib header
 * (RFC 1950: CM 8, a window of at most 32 KiB, FCHECK), else raw. */
static int ferry__decode_start_deflate(struct ferry_http_request *req,
				       struct ferry__decode *d)
{
	const unsigned char *b = (const unsigned char *)d->pend + d->pend_off;
	bool zlib = (b[0] & 0x0f) == 8 && (b[0] >> 4) <= 7 &&
		    ((b[0] << 8) | b[1]) % 31 == 0;

	if (inflateInit2(&d->z, zlib ? MAX_WBITS : -MAX_WBITS) != Z_OK)
		return ferry__decode_fail(req, d, Z_MEM_ERROR);
	d->started = true;
	return 0;
}

/* Run on the pending copy; what is left stays there. */
static int ferry__decode_pending(struct ferry_http_request *req,
				 struct ferry__decode *d)
{
	if (!d->started) {
		if (d->pend_len < 2)
			return 0;
		if (ferry__decode_start_deflate(req, d) < 0)
			return -1;
	}
	d->z.next_in = (unsigned char *)d->pend + d->pend_off;
	d->z.avail_in = (unsigned)d->pend_len;
	if (ferry__decode_run(req, d) < 0)
		return -1;
	d->pend_off += d->pend_len - d->z.avail_in;
	d->pend_len = d->z.avail_in;
	d->z.avail_in = 0;
	return 0;
}

int ferry__decode_body(struct ferry_http_request *req, const char *data,
		       size_t len)
{
	struct ferry__decode *d = req->decode;

	if (!len)
		return 0;
	if (!d->started || d->pend_len) {
		/* Behind a pause (or before deflate's second byte): queue. */
		if (ferry__pend_append(d, data, len) < 0)
			return ferry__decode_fail(req, d, Z_MEM_ERROR);
		return req->paused ? 0 : ferry__decode_pending(req, d);
	}
	d->z.next_in = (unsigned char *)data;
	d->z.avail_in = (unsigned)len;
	if (ferry__decode_run(req, d) < 0)
		return -1;
	if (d->z.avail_in) {
		/* Paused mid-slice: the rest waits, copied. */
		size_t rest = d->z.avail_in;

		d->z.avail_in = 0;
		if (ferry__pend_append(d, data + len - rest, rest) < 0)
			return ferry__decode_fail(req, d, Z_MEM_ERROR);
	}
	return 0;
}

int ferry__decode_drain(struct ferry_http_request *req)
{
	struct ferry__decode *d = req->decode;

	if (!d || req->paused || (!d->more_out && (!d->pend_len || !d->started)))
		return 0;
	if (d->pend_len)
		return ferry__decode_pending(req, d);
	return ferry__decode_run(req, d);
}

int ferry__decode_end(struct ferry_http_request *req, int result)
{
	struct ferry__decode *d = req->decode;

	if (!d || result < 0 || d->ended || (!d->in_total && !d->pend_len))
		return result;
	snprintf(req->detail, sizeof(req->detail),
		 "%s body ended before its compressed stream did "
		 "(%" PRIu64 " bytes decoded): truncated",
		 ferry__kind_name(d), d->out_total);
	return FERRY_EDECODE;
}

void ferry__decode_free(struct ferry_http_request *req)
{
	struct ferry__decode *d = req->decode;

	if (!d)
		return;
	if (d->started)
		inflateEnd(&d->z);
	if (d->blk)
		ferry__spill_unref(req->client, d->blk);
	free(d->pend);
	free(d);
	req->decode = NULL;
}
