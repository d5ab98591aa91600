/*
 * ferry/body.h - request bodies pulled from a file descriptor or from a
 * producer that may block, for the loop-side client (ferry/http.h). The
 * blocking API (ferry/session.h) sends its fd and producer bodies
 * through the same code.
 *
 * A struct ferry_body is a body_fn with its own state: two buffers of
 * @chunk bytes, one lent to the connection while the other is filled, so
 * reading the next piece overlaps sending the last. Use it as
 *
 *     struct ferry_body *b;
 *     ferry_body_from_fd(loop, fd, size, 0, &b);
 *     opts.body_fn = ferry_body_fn;
 *     opts.body_ctx = b;
 *     opts.body_fn_len = ferry_body_length(b);   (-1: sent chunked)
 *     ferry_http_request_start(client, &opts, &req, why, sizeof(why));
 *     ...
 *     on_done: ferry_body_close(b);   (the body's own reason, if it
 *                                      failed: ferry_body_error)
 *
 * Where the bytes come from:
 *   - a file descriptor: read with the ring's read op (IORING_OP_READ at
 *     the file's current position), so the loop never blocks, whether
 *     the fd is a regular file (the kernel's workers read it), a pipe or
 *     a socket (the ring waits for data). On kernels that answer EAGAIN
 *     for an O_NONBLOCK fd instead of waiting, the body polls the fd on
 *     the ring and reads again.
 *   - a producer, ferry_body_read_fn: called on a worker thread of the
 *     loop's offload pool (ferry/offload.h), one call at a time and in
 *     order, never on the loop thread, so it may block. The pool has
 *     few threads (ferry_loop_opts.offload_threads, 2 by default) and
 *     they also resolve names: a producer that blocks for long delays
 *     other work of the loop; make the pool larger if you have many.
 *
 * Length. @len >= 0: exactly @len bytes are read (a larger file is read
 * only that far; a source that ends sooner fails the request, "request
 * body producer ended after N of M bytes", FERRY_EINVAL); give the same
 * value as body_fn_len, so the request carries Content-Length. @len < 0:
 * read to the end of the source (EOF, or the producer returning 0), and
 * the request goes out chunked.
 *
 * Errors. A read that fails (an errno, negated) or a producer that
 * returns a negative code fails the request with that code, and
 * ferry_body_error() says which source failed and how ("request body:
 * read from fd 7: EIO", "request body: the producer returned EACCES").
 * The blocking API puts that sentence in the response's detail. -EAGAIN
 * is the one code not passed on (body_fn's FERRY_HTTP_BODY_WAIT): a
 * source failing with it fails the request with -EIO.
 *
 * Lifetime. The caller owns the body until ferry_body_close(), which it
 * calls once the request is over (in on_done at the latest: the body
 * calls ferry_http_request_body_ready on the request it serves, so it
 * must not outlive it), or when start failed. Close frees at once, or,
 * when a read or a producer call is still running, once it has returned
 * (a producer call is never interrupted: close cannot stop it, and the
 * loop's destruction waits for it). The fd is the caller's: never
 * closed here, read from its current position, and it must stay open
 * until close. One body serves one request: a producer body is never
 * replayed (see body_fn in ferry/http.h).
 *
 * Threads: every function here runs on the loop thread of @loop, except
 * the producer, as said.
 */
#ifndef FERRY_BODY_H
#define FERRY_BODY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ferry/http.h"
#include "ferry/loop.h"

struct ferry_body;

/* The default buffer size (two buffers per body). */
#define FERRY_BODY_CHUNK (64u << 10)

/*
 * A producer: write at most @cap bytes at @buf, return how many (1..cap),
 * 0 at the end of the body, or a negative code (a negated errno, or a
 * FERRY_E* code) to fail the request with it. Runs on an offload worker
 * thread; @buf is valid only during the call.
 */
typedef ssize_t (*ferry_body_read_fn)(void *ctx, void *buf, size_t cap);

/*
 * ferry_body_from_fd - a body read from @fd.
 * @len: exact length (>= 0) or -1 for "to EOF, chunked". @chunk: bytes
 * per read and per buffer, 0 = FERRY_BODY_CHUNK (at most 16 MiB).
 * Returns 0 with *@bp set, FERRY_EINVAL (@loop or @bp NULL, @fd < 0,
 * @chunk over 16 MiB), or -ENOMEM. Thread: loop.
 */
int ferry_body_from_fd(struct ferry_loop *loop, int fd, int64_t len,
		       size_t chunk, struct ferry_body **bp);

/*
 * ferry_body_from_reader - a body produced by @fn(@ctx, ...) on the
 * offload pool. @ctx is the caller's and must stay valid until the body
 * is freed (see Lifetime above). @len and @chunk as for
 * ferry_body_from_fd. Returns 0, FERRY_EINVAL (@loop, @fn or @bp NULL,
 * @chunk over 16 MiB), or -ENOMEM. Thread: loop.
 */
int ferry_body_from_reader(struct ferry_loop *loop, ferry_body_read_fn fn,
			   void *ctx, int64_t len, size_t chunk,
			   struct ferry_body **bp);

/*
 * ferry_body_fn - the body_fn to put in struct ferry_http_request_opts,
 * with the body as body_ctx. Its contract is ferry_http_body_fn's; a
 * piece it returns stays valid until its next call or ferry_body_close.
 */
int ferry_body_fn(void *ctx, struct ferry_http_request *req,
		  const void **data, size_t *len);

/* ferry_body_length - @len as given at creation (-1: unknown). */
int64_t ferry_body_length(const struct ferry_body *b);

/* ferry_body_produced - bytes read from the source so far. */
uint64_t ferry_body_produced(const struct ferry_body *b);

/*
 * ferry_body_error - the error that stopped the source (0: none) and,
 * when @why is not NULL, a sentence about it ("" when none), valid until
 * close.
 */
int ferry_body_error(const struct ferry_body *b, const char **why);

/* ferry_body_close - release @b (see Lifetime above). NULL is a no-op. */
void ferry_body_close(struct ferry_body *b);

#endif /* FERRY_BODY_H */
