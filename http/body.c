/*
 * body.c - request bodies from a file descriptor (ring reads) or a
 * producer that may block (the offload pool), as a body_fn.
 *
 * Two buffers, filled and lent in turn (0, 1, 0, ...): the connection
 * sends one while the source fills the other. One fill at a time, in
 * order, so reads at the fd's current position come out in sequence.
 *
 * Each buffer is EMPTY, FILLING, FULL or LENT. A piece is lent from a
 * body_fn call until the next call (ferry_http_body_fn's contract), so
 * each call first takes back what the last one lent.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/body.h"
#include "ferry/offload.h"

#define FERRY__BODY_CHUNK_MAX (16u << 20)

enum ferry__body_buf_state {
	FERRY__BODY_EMPTY,
	FERRY__BODY_FILLING,
	FERRY__BODY_FULL,
	FERRY__BODY_LENT,
};

struct ferry__body_buf {
	char *data;
	size_t len;
	enum ferry__body_buf_state st;
};

struct ferry_body {
	struct ferry_loop *loop;
	int fd;				/* -1 for a producer */
	ferry_body_read_fn fn;
	void *ctx;
	int64_t len;			/* -1: to the end */
	uint64_t produced;
	size_t chunk;
	struct ferry__body_buf buf[2];
	unsigned next_fill, next_lend;	/* which buffer, in turn */
	bool busy;			/* a read, a poll or a producer call */
	bool eof;
	bool closed;			/* free once !busy */
	int err;
	char why[FERRY_HTTP_DETAIL_MAX];
	/* The request told to wait (FERRY_HTTP_BODY_WAIT), woken when a
	 * fill ends. Cleared by close: it ends with its request. */
	struct ferry_http_request *waiter;
	struct ferry_op op;		/* read or poll (fd bodies) */
	bool polling;			/* op is a poll, cancelled at its edge */
	/* Producer bodies: the job and what it works on, set by the loop
	 * before the job is queued and read back after done(); the offload
	 * queue orders these hand-overs. */
	struct ferry_offload job;
	void *job_buf;
	size_t job_cap;
	ssize_t job_res;
};

static void ferry__body_fill(struct ferry_body *b);

static void ferry__body_free(struct ferry_body *b)
{
	free(b->buf[0].data);
	free(b->buf[1].data);
	free(b);
}

static void ferry__body_fail(struct ferry_body *b, int err, const char *fmt,
			     ...) __attribute__((format(printf, 3, 4)));

static void ferry__body_fail(struct ferry_body *b, int err, const char *fmt,
			     ...)
{
	va_list ap;
	int n;

	if (b->err)
		return;
	/* -EAGAIN is FERRY_HTTP_BODY_WAIT to the client ("wait for
	 * body_ready"): a source that failed with it (a worker thread that
	 * could not start) must fail the request, not stall it. */
	b->err = err == FERRY_HTTP_BODY_WAIT ? -EIO : err;
	n = snprintf(b->why, sizeof(b->why), "request body: ");
	va_start(ap, fmt);
	vsnprintf(b->why + n, sizeof(b->why) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* How much the next fill asks for. */
static size_t ferry__body_want(const struct ferry_body *b)
{
	uint64_t left;

	if (b->len < 0)
		return b->chunk;
	left = (uint64_t)b->len - b->produced;
	return left < b->chunk ? (size_t)left : b->chunk;
}

/* A fill ended with @res bytes (0: end, < 0: error already set). */
static void ferry__body_filled(struct ferry_body *b, ssize_t res)
{
	struct ferry__body_buf *bb = &b->buf[b->next_fill];
	struct ferry_http_request *w = b->waiter;

	b->busy = false;
	if (b->closed) {
		ferry__body_free(b);
		return;
	}
	if (res > 0) {
		bb->len = (size_t)res;
		bb->st = FERRY__BODY_FULL;
		b->produced += (uint64_t)res;
		b->next_fill ^= 1;
		if (b->len >= 0 && b->produced >= (uint64_t)b->len)
			b->eof = true;
	} else {
		bb->st = FERRY__BODY_EMPTY;
		if (res == 0)
			b->eof = true;
	}
	ferry__body_fill(b); /* read ahead into the other buffer */
	b->waiter = NULL;
	if (w)
		ferry_http_request_body_ready(w);
}

/* ------------------------------------------------------------------ */
/* File descriptors: ring reads                                          */

static void ferry__body_read_done(struct ferry_op *op, int res, unsigned flags);

static int ferry__body_read_start(struct ferry_body *b)
{
	struct ferry__body_buf *bb = &b->buf[b->next_fill];

	b->polling = false;
	b->op.fn = ferry__body_read_done;
	/* Offset -1: the fd's current position, advanced by the read (or
	 * none, for pipes and sockets). */
	return ferry_op_read(b->loop, &b->op, b->fd, bb->data,
			     ferry__body_want(b), (uint64_t)-1);
}

/*
 * Older kernels answer EAGAIN for an O_NONBLOCK fd with nothing to read
 * rather than waiting for it: wait for readability on the ring (the
 * runtime has only a multishot poll: its first edge cancels it, and the
 * read starts again once the last completion is in).
 */
static void ferry__body_poll_done(struct ferry_body *b, int res, unsigned flags)
{
	if (flags & FERRY_CQE_MORE) {
		if (res >= 0)
			ferry_op_cancel(b->loop, &b->op);
		return;
	}
	b->polling = false;
	if (res < 0 && res != -ECANCELED && !b->closed)
		ferry__body_fail(b, res, "poll on fd %d: %s", b->fd,
				 ferry_strerrorname(res));
	if (b->closed || b->err) {
		ferry__body_filled(b, -1);
		return;
	}
	res = ferry__body_read_start(b);
	if (res < 0) {
		ferry__body_fail(b, res, "read from fd %d: %s", b->fd,
				 ferry_strerrorname(res));
		ferry__body_filled(b, -1);
	}
}

static void ferry__body_read_done(struct ferry_op *op, int res, unsigned flags)
{
	struct ferry_body *b = (struct ferry_body *)((char *)op -
					offsetof(struct ferry_body, op));

	if (b->polling) {
		ferry__body_poll_done(b, res, flags);
		return;
	}
	if (!b->closed && res == -EINTR) {
		res = ferry__body_read_start(b);
		if (res == 0)
			return;
	} else if (!b->closed && res == -EAGAIN) {
		b->polling = true;
		res = ferry_op_poll_multishot(b->loop, &b->op, b->fd, POLLIN);
		if (res == 0)
			return;
		b->polling = false;
	}
	if (res < 0 && !b->closed)
		ferry__body_fail(b, res, "read from fd %d: %s", b->fd,
				 ferry_strerrorname(res));
	ferry__body_filled(b, res < 0 ? -1 : res);
}

/* ------------------------------------------------------------------ */
/* Producers: the offload pool                                           */

static void ferry__body_job_work(struct ferry_offload *job)
{
	struct ferry_body *b = (struct ferry_body *)((char *)job -
					offsetof(struct ferry_body, job));

	b->job_res = b->fn(b->ctx, b->job_buf, b->job_cap);
}

static void ferry__body_job_done(struct ferry_offload *job, int status)
{
	struct ferry_body *b = (struct ferry_body *)((char *)job -
					offsetof(struct ferry_body, job));
	ssize_t res = status < 0 ? status : b->job_res;

	if (!b->closed) {
		if (status < 0)
			ferry__body_fail(b, status,
					 "the producer was not called: %s",
					 ferry_strerror(status));
		else if (res == FERRY_HTTP_BODY_WAIT)	/* -EAGAIN */
			ferry__body_fail(b, (int)res,
					 "the producer returned EAGAIN "
					 "(it may block instead)");
		else if (res < 0)
			ferry__body_fail(b, (int)res,
					 "the producer returned %s",
					 ferry_strerrorname((int)res));
		else if ((size_t)res > b->job_cap)
			ferry__body_fail(
				b, FERRY_EINVAL,
				"the producer returned %zd, more than the "
				"%zu bytes asked for",
				res, b->job_cap);
	}
	ferry__body_filled(b, b->err || res < 0 ? -1 : res);
}

/* ------------------------------------------------------------------ */
/* Filling and lending                                                   */

/* Start filling the next buffer if it is free and the source is not over. */
static void ferry__body_fill(struct ferry_body *b)
{
	struct ferry__body_buf *bb = &b->buf[b->next_fill];
	int err;

	if (b->busy || b->eof || b->err || b->closed ||
	    bb->st != FERRY__BODY_EMPTY)
		return;
	if (!ferry__body_want(b)) {
		b->eof = true;
		return;
	}
	bb->st = FERRY__BODY_FILLING;
	if (b->fd >= 0) {
		err = ferry__body_read_start(b);
		if (err < 0)
			ferry__body_fail(b, err, "read from fd %d: %s", b->fd,
					 ferry_strerrorname(err));
	} else {
		b->job.work = ferry__body_job_work;
		b->job.done = ferry__body_job_done;
		b->job_buf = bb->data;
		b->job_cap = ferry__body_want(b);
		err = ferry_offload_submit(b->loop, &b->job);
		if (err < 0)
			ferry__body_fail(b, err, "the producer cannot run: %s",
					 ferry_strerror(err));
	}
	if (err < 0)
		bb->st = FERRY__BODY_EMPTY;
	else
		b->busy = true;
}

int ferry_body_fn(void *ctx, struct ferry_http_request *req,
		  const void **data, size_t *len)
{
	struct ferry_body *b = ctx;
	struct ferry__body_buf *bb;

	for (int i = 0; i < 2; i++)
		if (b->buf[i].st == FERRY__BODY_LENT)
			b->buf[i].st = FERRY__BODY_EMPTY;
	if (b->err)
		return b->err;
	bb = &b->buf[b->next_lend];
	if (bb->st == FERRY__BODY_FULL) {
		bb->st = FERRY__BODY_LENT;
		b->next_lend ^= 1;
		*data = bb->data;
		*len = bb->len;
		ferry__body_fill(b);
		return 1;
	}
	ferry__body_fill(b);
	if (b->err)
		return b->err;
	if (!b->busy)	/* nothing full, nothing coming: the end */
		return 0;
	b->waiter = req;
	return FERRY_HTTP_BODY_WAIT;
}

/* ------------------------------------------------------------------ */
/* Creation and close                                                    */

static int ferry__body_new(struct ferry_loop *loop, int64_t len, size_t chunk,
			   struct ferry_body **bp)
{
	struct ferry_body *b;

	if (chunk > FERRY__BODY_CHUNK_MAX)
		return FERRY_EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->loop = loop;
	b->fd = -1;
	b->len = len < 0 ? -1 : len;
	b->chunk = chunk ? chunk : FERRY_BODY_CHUNK;
	/* Never more than the body needs: small bodies stay small. */
	if (b->len >= 0 && (uint64_t)b->len < b->chunk)
		b->chunk = b->len ? (size_t)b->len : 1;
	b->buf[0].data = malloc(b->chunk);
	b->buf[1].data = malloc(b->chunk);
	if (!b->buf[0].data || !b->buf[1].data) {
		ferry__body_free(b);
		return -ENOMEM;
	}
	*bp = b;
	return 0;
}

int ferry_body_from_fd(struct ferry_loop *loop, int fd, int64_t len,
		       size_t chunk, struct ferry_body **bp)
{
	int err;

	if (bp)
		*bp = NULL;
	if (!loop || !bp || fd < 0)
		return FERRY_EINVAL;
	err = ferry__body_new(loop, len, chunk, bp);
	if (err == 0)
		(*bp)->fd = fd;
	return err;
}

int ferry_body_from_reader(struct ferry_loop *loop, ferry_body_read_fn fn,
			   void *ctx, int64_t len, size_t chunk,
			   struct ferry_body **bp)
{
	int err;

	if (bp)
		*bp = NULL;
	if (!loop || !fn || !bp)
		return FERRY_EINVAL;
	err = ferry__body_new(loop, len, chunk, bp);
	if (err == 0) {
		(*bp)->fn = fn;
		(*bp)->ctx = ctx;
	}
	return err;
}

int64_t ferry_body_length(const struct ferry_body *b)
{
	return b->len;
}

uint64_t ferry_body_produced(const struct ferry_body *b)
{
	return b->produced;
}

int ferry_body_error(const struct ferry_body *b, const char **why)
{
	if (why)
		*why = b->why;
	return b->err;
}

void ferry_body_close(struct ferry_body *b)
{
	if (!b)
		return;
	b->closed = true;
	b->waiter = NULL;
	if (!b->busy) {
		ferry__body_free(b);
		return;
	}
	/* A read waiting on a pipe or socket, or a poll, may wait for
	 * ever: cancel it. A read of a file ends soon by itself, and a
	 * producer call cannot be stopped: their completion frees b. */
	if (b->fd >= 0)
		ferry_op_cancel(b->loop, &b->op);
}
