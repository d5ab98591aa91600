/*
 * http/decode.h - content decoding (gzip, deflate) of response bodies
 * (internal, not installed).
 *
 * Sits between the parser and on_body. request.c calls in at four hook
 * points: ferry__decode_begin when the final head is parsed,
 * ferry__decode_body for each de-chunked body slice, ferry__decode_end
 * when the body is complete, ferry__decode_free when the request is
 * freed; conn.c calls ferry__decode_drain before it feeds the parser again
 * (after a resume). A request whose response is not encoded with a coding
 * it decodes has no decoder, and its body goes to on_body as before,
 * lent where it lies.
 *
 * Decoded bytes are written into blocks of FERRY__DECODE_BLOCK bytes
 * (spills, struct ferry__spill: on_body may keep them like any other
 * buffer). A decoder owns its zlib stream (about 40 KiB: zlib's state and
 * its 32 KiB window), one block being filled, and, while its request is
 * paused in the middle of a slice, a copy of the slice's encoded rest.
 * Loop thread only.
 */
#ifndef FERRY_HTTP_DECODE_H
#define FERRY_HTTP_DECODE_H

#include <stdbool.h>
#include <stddef.h>

#include "ferry/http.h"
#include "h1.h"

/* What a decoding request sends unless it has its own Accept-Encoding. */
#define FERRY__DECODE_ACCEPT "gzip, deflate"

/* Bytes per decoded block handed to on_body. */
#define FERRY__DECODE_BLOCK 16384

/* Defaults of the client's limits (ferry/http.h). */
#define FERRY__DECODE_MAX_DEFAULT (1ull << 30)
#define FERRY__DECODE_RATIO_DEFAULT 100u
/* The ratio is checked only once this much is decoded: a short text
 * legitimately compresses far better than 100:1. */
#define FERRY__DECODE_RATIO_FLOOR (1u << 20)

struct ferry__decode;

/* Does a request with these options decode (its own choice, else the
 * client's)? */
bool ferry__decode_wanted(const struct ferry_http_client_opts *copts,
			  const struct ferry_http_request_opts *o);

/*
 * ferry__decode_begin - the final head @p of @req is parsed: when @req
 * decodes and the response's Content-Encoding is one coding it knows
 * (gzip, x-gzip, deflate), set up a decoder. A response in any other
 * coding (or several) is left as it is. Returns 0, or < 0 after failing
 * @req (out of memory).
 */
int ferry__decode_begin(struct ferry_http_request *req,
			const struct ferry__h1_resp *p);

/* ferry__decode_active - true if @req's body goes through a decoder. */
bool ferry__decode_active(const struct ferry_http_request *req);

/*
 * ferry__decode_body - decode the @len encoded bytes at @data and hand
 * what comes out to on_body, block by block, until it is all out or the
 * request pauses (the rest is kept and decoded on ferry__decode_drain).
 * Returns 0, or < 0 when @req failed (corrupt data: FERRY_EDECODE; a
 * limit: FERRY_ETOOLARGE; or what on_body returned).
 */
int ferry__decode_body(struct ferry_http_request *req, const char *data,
		       size_t len);

/*
 * ferry__decode_drain - go on with what a pause left (nothing: returns 0
 * at once). Returns 0 (done, or paused again), or < 0 when @req failed.
 */
int ferry__decode_drain(struct ferry_http_request *req);

/*
 * ferry__decode_end - the body is complete: @result (the status) if the
 * encoded stream ended too (or had no byte at all), else FERRY_EDECODE
 * with @req's detail saying so.
 */
int ferry__decode_end(struct ferry_http_request *req, int result);

/* ferry__decode_free - free @req's decoder, if any. */
void ferry__decode_free(struct ferry_http_request *req);

#endif /* FERRY_HTTP_DECODE_H */
