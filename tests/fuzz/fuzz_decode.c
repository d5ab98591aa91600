/*
 * fuzz_decode.c - libFuzzer target: the body decoder (http/decode.c) over
 * random slices and pauses.
 *
 * decode.c reaches the rest of the client through three functions
 * (ferry__req_deliver, ferry__req_fail, ferry__spill_unref); this program
 * defines them itself, so the static library's request.c and client.c
 * are not linked: no loop, no sockets, a run takes microseconds. The
 * stand-in on_body copies what it gets, keeps a block now and then (and
 * gives it back later) and pauses the request now and then; the driver
 * resumes it with ferry__decode_drain, as conn.c does.
 *
 * Input: byte 0 = coding (gzip or deflate) and limits, byte 1 = split and
 * pause seed, then the encoded body. Differential: the same body decoded
 * in one slice without pauses must give the same bytes and the same
 * result (status, or error code) as in random slices with pauses (after
 * an error: the same error and the same bytes as far as both went); any
 * difference, and any decoded output past the limit, aborts.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../http/decode.h"
#include "../../http/internal.h"

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "fuzz_decode: %s:%d: %s\n", __FILE__,\
				__LINE__, #cond);                           \
			abort();                                            \
		}                                                           \
	} while (0)

#define OUT_MAX (256u << 10)

struct run {
	unsigned seed;
	bool chaos;		/* split, pause and keep */
	int failed;		/* the error ferry__req_fail got, or 0 */
	uint8_t *out;
	size_t nout;
	struct ferry__spill *kept[4];
	unsigned nkept;
};

static struct run *cur;

static unsigned rnd(struct run *r)
{
	r->seed = r->seed * 1103515245u + 12345u;
	return (r->seed >> 16) & 0x7fff;
}

void ferry__spill_unref(struct ferry_http_client *c, struct ferry__spill *sp)
{
	(void)c;
	CHECK(sp->refs > 0);
	if (--sp->refs == 0)
		free(sp);
}

static void release_kept(struct run *r)
{
	while (r->nkept)
		ferry__spill_unref(NULL, r->kept[--r->nkept]);
}

int ferry__req_deliver(struct ferry_http_request *req, const char *data,
		       size_t len, const struct ferry__input *in)
{
	struct run *r = cur;

	CHECK(!req->paused);
	CHECK(in->spill && data == in->spill->data && len <= FERRY__DECODE_BLOCK);
	CHECK(r->nout + len <= OUT_MAX);	/* max_out holds */
	memcpy(r->out + r->nout, data, len);
	r->nout += len;
	if (r->chaos && rnd(r) % 4 == 0 && r->nkept < 4) {
		in->spill->refs++;		/* kept, as FERRY_HTTP_KEEP */
		r->kept[r->nkept++] = in->spill;
	} else if (r->chaos && rnd(r) % 8 == 0) {
		release_kept(r);
	}
	if (r->chaos && rnd(r) % 3 == 0)
		req->paused = true;
	return 0;
}

void ferry__req_fail(struct ferry_http_request *req, int err,
		     const char *fmt, ...)
{
	va_list ap;

	CHECK(!cur->failed);
	cur->failed = err;
	va_start(ap, fmt);
	vsnprintf(req->detail, sizeof(req->detail), fmt, ap);
	va_end(ap);
	ferry__decode_free(req);	/* as req_free does */
}

/* Decode @body as @coding; the result (status or error) and the bytes. */
static int decode_all(struct run *r, const char *coding, uint64_t max_out,
		      unsigned ratio, const uint8_t *body, size_t len)
{
	static const char head_fmt[] =
		"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\n"
		"Transfer-Encoding: chunked\r\n\r\n";
	struct ferry_http_client client;
	struct ferry_http_request req;
	struct ferry__h1_resp p;
	struct ferry__h1_slice slice;
	char head[256];
	size_t used, off = 0;
	int result;

	memset(&client, 0, sizeof(client));
	memset(&req, 0, sizeof(req));
	client.opts.max_decoded = max_out;
	client.opts.max_decode_ratio = ratio;
	req.client = &client;
	req.decode_on = true;
	ferry__h1_resp_init(&p, NULL);
	ferry__h1_resp_start(&p, "GET");
	snprintf(head, sizeof(head), head_fmt, coding);
	CHECK(ferry__h1_resp_feed(&p, head, strlen(head), &used, &slice) ==
	      FERRY__H1_HEAD);
	cur = r;
	CHECK(ferry__decode_begin(&req, &p) == 0 && ferry__decode_active(&req));
	while (off < len && !r->failed) {
		size_t n = len - off;

		if (r->chaos && n > 1)
			n = 1 + rnd(r) % (n < 600 ? n : 600);
		if (ferry__decode_body(&req, (const char *)body + off, n) < 0)
			break;
		off += n;
		while (r->chaos && req.paused && !r->failed) {
			req.paused = false;	/* resume, then conn_pump */
			if (ferry__decode_drain(&req) < 0)
				break;
		}
	}
	CHECK(!req.paused || r->failed);
	result = r->failed ? r->failed : ferry__decode_end(&req, 200);
	ferry__decode_free(&req);
	ferry__h1_resp_free(&p);
	release_kept(r);
	return result;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const codings[] = { "gzip", "deflate", "x-gzip",
					       "DEFLATE" };
	/* Allocated once: a fresh megabyte per run made runs slow. */
	static uint8_t *out_one, *out_many;
	struct run one = { 0 }, many = { 0 };
	uint64_t max_out;
	unsigned ratio;
	int a, b;

	if (size < 2)
		return 0;
	max_out = (data[0] & 0x10) ? 40000 : OUT_MAX;
	/* The ratio is checked once 1 MiB is out: never reached here. */
	ratio = (data[0] & 0x20) ? 2 : UINT_MAX;
	if (!out_one) {
		out_one = malloc(OUT_MAX);
		out_many = malloc(OUT_MAX);
		CHECK(out_one && out_many);
	}
	one.out = out_one;
	many.out = out_many;
	many.chaos = true;
	many.seed = data[1];
	a = decode_all(&one, codings[data[0] & 3], max_out, ratio, data + 2,
		       size - 2);
	b = decode_all(&many, codings[data[0] & 3], max_out, ratio, data + 2,
		       size - 2);
	/* On an error, where the bytes stop depends on the block sizes
	 * (slices make smaller ones) and on how far zlib read before it saw
	 * the damage: the same error, and the same bytes as far as both
	 * went. */
	if (a < 0 && b == a) {
		size_t n = one.nout < many.nout ? one.nout : many.nout;

		CHECK(one.nout <= max_out && many.nout <= max_out);
		(void)ratio;
		CHECK(!memcmp(one.out, many.out, n));
	} else if (a != b || one.nout != many.nout ||
		   memcmp(one.out, many.out, one.nout)) {
		fprintf(stderr, "fuzz_decode: one slice: %d, %zu bytes; "
			"slices and pauses: %d, %zu bytes\n", a, one.nout, b,
			many.nout);
		abort();
	}
	return 0;
}
