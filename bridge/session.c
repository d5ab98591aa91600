/*
 * session.c - blocking HTTP over the bridge.
 *
 * Two objects per request, with one owner each:
 *   struct ferry_response  the caller's: the request's copy, the task (the
 *                          future), and the result;
 *   struct ferry__xfer     the loop's: lives from the task's start until
 *                          the loop-side request's on_done.
 * The transfer writes into the response only until it completes the task
 * (at on_done in whole-body mode, at on_head in stream mode); after that
 * it talks only to the stream, whose lifetime is shared. So a caller may
 * free a streaming response at any time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "grow.h"
#include "internal.h"
#include "ferry/session.h"

/* How far ahead of the bytes received a presized body is faulted in. */
#define FERRY__BODY_FAULT_WINDOW (4u << 20)

struct ferry_session {
	struct ferry_runner *r;
	uint64_t max_body;			/* whole-body default */
	bool max_body_default;			/* FERRY_SESSION_MAX_BODY */
	/* Set at create, read-only afterwards (any thread may read). */
	struct ferry_url base;			/* base_url, if has_base */
	bool has_base;
	struct ferry_http_header *dhdrs;	/* default headers */
	size_t ndhdrs;
	char *dmem;				/* their bytes */
	pthread_mutex_t lock;
	bool closed;				/* under lock: close called */
	struct ferry_http_client *client;	/* loop only; NULL once closed */
	struct ferry_cleanup cleanup;
};

struct ferry__xfer;

struct ferry_response {
	struct ferry_task task;
	struct ferry_session *s;
	bool submitted;

	/* The request, copied (body excepted). */
	struct ferry_request rq;
	struct ferry_url url;
	char *rqmem;			/* method and header copies */
	struct ferry_http_header *rqhdrs;
	struct ferry_http_retry retry;	/* rq.retry points here when set */

	/* Loop only, while the task runs. */
	struct ferry__xfer *x;

	/* The result, written by the loop before the task completes. */
	int result;
	int status;
	char detail[FERRY_HTTP_DETAIL_MAX];
	char *reason;
	char *final_url;		/* the requested URL until a head came */
	struct ferry_http_header *headers;
	size_t nheaders;
	char *harena;
	char *body;
	size_t body_len, body_cap;
	size_t body_faulted;		/* prefaulted up to here (presized) */
	struct ferry_stream *stream;
	struct ferry_http_timings timings;
	int minor;			/* HTTP/1.<minor>, -1 before the head */
	unsigned attempts;		/* ferry_http_request_attempts */
	uint64_t body_received;		/* ferry_http_request_body_received */
	char proxy_host[260];		/* ferry_http_request_proxy, or "" */
	unsigned proxy_port;
};

struct ferry__xfer {
	struct ferry_response *resp;	/* until the task completes */
	struct ferry_runner *r;
	struct ferry_http_client *client;
	struct ferry_http_request *req;	/* until on_done */
	struct ferry_stream *stream;	/* stream mode, until ended */
	struct ferry_body *body;	/* an fd or producer body, until on_done */
	uint64_t max_body;
	bool max_body_default;		/* the session's FERRY_SESSION_MAX_BODY */
	/* resp->body is the request's until on_done (body_into). */
	bool body_lent;
	/* A chunk the full stream refused, pushed again on resume. */
	const void *pend_data;
	size_t pend_len;
	uintptr_t pend_token;
	bool pending;
};

/* ------------------------------------------------------------------ */
/* Copying the response head                                             */

/* @u formatted, whole, in memory of its own (URLs go up to 64 KiB). */
static char *ferry__url_dup(const struct ferry_url *u)
{
	size_t n = ferry_url_format(u, NULL, 0);
	char *s = malloc(n + 1);

	if (s)
		ferry_url_format(u, s, n + 1);
	return s;
}

/* Copy status, reason, headers and the final URL out of the parser. */
static int ferry__copy_head(struct ferry_response *resp,
			    struct ferry_http_request *req, int status)
{
	size_t n = ferry_http_response_header_count(req), bytes = 0, len = 0;
	const char *reason = ferry_http_response_reason(req, &len);
	struct ferry_http_header h;
	char *p;

	resp->status = status;
	resp->minor = ferry_http_response_minor(req);
	resp->reason = strndup(reason, len);
	free(resp->final_url);
	resp->final_url = ferry__url_dup(ferry_http_request_url(req));
	for (size_t i = 0; i < n && ferry_http_response_header_at(req, i, &h); i++)
		bytes += h.name_len + h.value_len + 2;
	resp->headers = calloc(n ? n : 1, sizeof(*resp->headers));
	resp->harena = malloc(bytes ? bytes : 1);
	if (!resp->reason || !resp->final_url || !resp->headers || !resp->harena)
		return -ENOMEM;
	p = resp->harena;
	for (size_t i = 0; i < n && ferry_http_response_header_at(req, i, &h); i++) {
		struct ferry_http_header *o = &resp->headers[i];

		o->name = memcpy(p, h.name, h.name_len);
		o->name_len = h.name_len;
		p[h.name_len] = '\0';
		p += h.name_len + 1;
		o->value = memcpy(p, h.value, h.value_len);
		o->value_len = h.value_len;
		p[h.value_len] = '\0';
		p += h.value_len + 1;
		resp->nheaders++;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The transfer: loop-side callbacks                                     */

static void ferry__xfer_release(void *ctx, uintptr_t token)
{
	/* ctx is the client: it waits for kept buffers before it frees
	 * itself, so it outlives every stream fed from it. */
	ferry_http_buffer_release(ctx, token);
}

static void ferry__xfer_drop_pending(struct ferry__xfer *x)
{
	if (x->pending) {
		x->pending = false;
		ferry_http_buffer_release(x->client, x->pend_token);
	}
}

static void ferry__xfer_resume(struct ferry_stream *st, void *producer)
{
	struct ferry__xfer *x = producer;
	int ret;

	if (x->pending) {
		ret = ferry_stream_push(st, x->pend_data, x->pend_len, x->pend_token);
		if (ret == -EAGAIN)
			return;
		if (ret == 0)
			x->pending = false;
		else
			ferry__xfer_drop_pending(x);
	}
	if (x->req)
		ferry_http_request_resume(x->req);
}

static void ferry__xfer_stop(struct ferry_stream *st, void *producer)
{
	struct ferry__xfer *x = producer;

	ferry__xfer_drop_pending(x);
	/* on_done follows (perhaps inside), ends the stream and frees x. */
	if (x->req)
		ferry_http_request_cancel(x->req);
}

static const struct ferry_stream_ops ferry__xfer_stream_ops = {
	.release = ferry__xfer_release,
	.resume = ferry__xfer_resume,
	.stop = ferry__xfer_stop,
};

/*
 * The default stream capacity: half the client's receive ring (128
 * chunks of the default 256), within the stream's limits. The multishot
 * recv fills as many ring buffers as the socket holds in one loop turn
 * (a whole ring, on loopback), and the loop pushes them all before the
 * reader runs: a queue much shorter than the ring fills on every burst,
 * however fast the reader (16 chunks paused the connection every 256
 * KiB). Half the ring absorbs most bursts; the rest pause rarely, and
 * resume only at half a queue (stream.c). A stalled reader holds at most
 * half the ring, so the other connections of the client keep the rest.
 */
static unsigned ferry__stream_default_capacity(struct ferry_http_client *c)
{
	unsigned cap = ferry_http_client_recv_buf_count(c) / 2;

	if (cap < 16)
		return 16;
	return cap > 4096 ? 4096 : cap;
}

/*
 * A presized body is written once, front to back: page by page, that is a
 * page fault every 4 KiB, which costs more than the copy itself, and more
 * still inside the kernel's copy of a receive straight into the body.
 * Fault in the next part of it in one call instead (MADV_POPULATE_WRITE,
 * Linux 5.14+; a hint, ignored where it fails), kept a window or two
 * ahead of the @need bytes received, so a server that announces more than
 * it sends makes us hold at most two windows more than it sent.
 */
static void ferry__body_prefault(struct ferry_response *resp, size_t need)
{
	const uintptr_t page = 4096;
	uintptr_t start, end, cap_end;

	if (!resp->body_faulted ||
	    need + FERRY__BODY_FAULT_WINDOW <= resp->body_faulted)
		return;
	start = ((uintptr_t)resp->body + resp->body_faulted) & ~(page - 1);
	cap_end = (uintptr_t)resp->body + resp->body_cap;
	end = (uintptr_t)resp->body + need + 2 * FERRY__BODY_FAULT_WINDOW;
	if (end > cap_end)
		end = cap_end;
	resp->body_faulted = end - (uintptr_t)resp->body;
#ifdef MADV_POPULATE_WRITE
	(void)madvise((void *)start, end - start, MADV_POPULATE_WRITE);
#endif
}

/*
 * A big body's memory starts on a page: byte i of the body then sits at
 * the same offset in its cache line as byte i of the stream does in the
 * sender's pages (a file nginx sends from the page cache, over loopback),
 * and the kernel's copy into it (rep movsb) runs at full speed. From
 * malloc, a big block starts 16 bytes into a page, and the same copy
 * took 40% longer (tools/bench/run download, and a plain recv loop).
 * The bytes already received move over. NULL when out of memory (@resp's
 * body is then as it was).
 */
static char *ferry__body_alloc_aligned(struct ferry_response *resp, size_t n)
{
	void *b;

	if (posix_memalign(&b, 4096, n) != 0)
		return NULL;
	if (resp->body_len)
		memcpy(b, resp->body, resp->body_len);
	free(resp->body);
	return b;
}

/*
 * Whole-body mode: a body announced by Content-Length (already checked
 * against the limit by the client) gets its memory at once, never grown
 * by a realloc, and is lent to the request (ferry_http_request_body_into):
 * over plain TCP the connection receives a big one straight into it, no
 * copy at all; elsewhere it is copied once, from the receive buffers into
 * its place. Not for responses that have no body whatever they announce
 * (HEAD, 204, 304). Out of memory here is not an error: the body then
 * grows as it comes (and is not lent).
 */
static void ferry__body_presize(struct ferry__xfer *x,
				struct ferry_http_request *req, int status)
{
	struct ferry_response *resp = x->resp;
	size_t len = 0;
	const char *cl = ferry_http_response_header(req, "Content-Length", &len);
	uint64_t n = 0;
	char *b;

	if (!cl || !len || len > 19 || status == 204 || status == 304 ||
	    !strcmp(resp->rq.method, "HEAD"))
		return;
	for (size_t i = 0; i < len; i++) {
		if (cl[i] < '0' || cl[i] > '9')
			return;
		n = n * 10 + (uint64_t)(cl[i] - '0');
	}
	if (n > x->max_body || n >= SIZE_MAX || n + 1 <= resp->body_cap)
		return;
	if (n + 1 >= 2 * FERRY__BODY_FAULT_WINDOW)
		b = ferry__body_alloc_aligned(resp, (size_t)n + 1);
	else
		b = realloc(resp->body, (size_t)n + 1);
	if (!b)
		return;
	resp->body = b;
	resp->body_cap = (size_t)n + 1;
	/* Big bodies only: they are the ones malloc maps fresh. (Not with
	 * MADV_HUGEPAGE: measured on the bench VM, whose free page reporting
	 * hands free 2 MiB blocks back to the host, zeroing huge pages cost
	 * more than the 4 KiB faults it saved; tools/bench/run download.) */
	if (resp->body_cap >= 2 * FERRY__BODY_FAULT_WINDOW) {
		resp->body_faulted = 1;
		ferry__body_prefault(resp, resp->body_len);
	}
	/* Let the connection receive into it where it can (plain TCP,
	 * Content-Length, no decoding): no copy at all then. The request
	 * owns it until on_done (ferry__xfer_done takes it back). */
	if (!resp->body_len &&
	    ferry_http_request_body_into(req, resp->body, (size_t)n, free) == 0)
		x->body_lent = true;
}

/* Timings, attempts, body bytes and the proxy, as they stand now. */
static void ferry__note_route(struct ferry_response *resp,
			      const struct ferry_http_request *req)
{
	const struct ferry_url *p = ferry_http_request_proxy(req);

	ferry_http_request_timings(req, &resp->timings);
	resp->attempts = ferry_http_request_attempts(req);
	resp->body_received = ferry_http_request_body_received(req);
	resp->proxy_host[0] = '\0';
	if (p && p->host_len < sizeof(resp->proxy_host)) {
		memcpy(resp->proxy_host, p->host, p->host_len);
		resp->proxy_host[p->host_len] = '\0';
		resp->proxy_port = p->port;
	}
}

static int ferry__xfer_head(void *ctx, struct ferry_http_request *req,
			    int status)
{
	struct ferry__xfer *x = ctx;
	struct ferry_response *resp = x->resp;
	int ret = ferry__copy_head(resp, req, status);

	ferry__note_route(resp, req);
	if (ret < 0)
		return ret;
	if (!resp->rq.stream) {
		ferry__body_presize(x, req, status);
		return 0;
	}
	ret = ferry_stream_create(resp->s->r,
				  resp->rq.stream_capacity
					  ? resp->rq.stream_capacity
					  : ferry__stream_default_capacity(x->client),
				  &ferry__xfer_stream_ops, x->client, x,
				  &x->stream);
	if (ret < 0)
		return ret;
	/* The caller gets the response now; the body follows in the
	 * stream. From here on x no longer touches resp. */
	resp->stream = x->stream;
	resp->result = status;
	resp->x = NULL;
	x->resp = NULL;
	ferry_task_complete(&resp->task, status);
	return 0;
}

static int ferry__body_append(struct ferry__xfer *x, const void *data,
			      size_t len)
{
	struct ferry_response *resp = x->resp;
	size_t need = resp->body_len + len;
	char *b;

	if (need > x->max_body)
		return FERRY_ETOOLARGE;
	b = ferry__grow(resp->body, &resp->body_cap, need + 1, 4096);
	if (!b)
		return -ENOMEM;
	if (b != resp->body)
		resp->body_faulted = 0;	/* grown: no longer presized */
	resp->body = b;
	ferry__body_prefault(resp, need + 1);
	/* Received in place (body_into): nothing to copy. */
	if (data != resp->body + resp->body_len)
		memcpy(resp->body + resp->body_len, data, len);
	resp->body_len = need;
	resp->body[need] = '\0';	/* text bodies read as C strings */
	return 0;
}

static int ferry__xfer_body(void *ctx, struct ferry_http_request *req,
			    const void *data, size_t len, uintptr_t token)
{
	struct ferry__xfer *x = ctx;
	int ret;

	if (!x->stream)
		return ferry__body_append(x, data, len);
	ret = ferry_stream_push(x->stream, data, len, token);
	if (ret == 0)
		return FERRY_HTTP_KEEP;
	if (ret == -EAGAIN) {
		/* Backpressure: keep the chunk, stop reading until resume. */
		x->pend_data = data;
		x->pend_len = len;
		x->pend_token = token;
		x->pending = true;
		ferry_http_request_pause(req);
		return FERRY_HTTP_KEEP;
	}
	return ret;	/* FERRY_ECLOSED: the reader is gone */
}

/*
 * The words for how a transfer ended, in the session's terms: the loop
 * side says "cancelled by the caller" when the runner's close cancels,
 * and "the client was closed" when the session's client goes; a body over
 * the session's own default limit says how to change it. @buf holds what
 * is formatted here.
 */
static const char *ferry__xfer_why(const struct ferry__xfer *x, int *result,
				   const char *detail, char *buf, size_t len)
{
	char lim[24];

	if (x->r->loop_closing &&
	    (*result == FERRY_ECANCELED || *result == FERRY_ECLOSED)) {
		*result = FERRY_ECLOSED;
		return "the runner was closed";
	}
	if (*result == FERRY_ECLOSED)
		return "the session was closed";
	snprintf(lim, sizeof(lim), "%llu", (unsigned long long)x->max_body);
	if (*result == FERRY_ETOOLARGE && x->max_body_default && detail &&
	    strstr(detail, lim)) {
		snprintf(buf, len, "%s (the whole-body default, "
			 "FERRY_SESSION_MAX_BODY; set max_body to change it)",
			 detail);
		return buf;
	}
	return detail;
}

static void ferry__xfer_done(void *ctx, struct ferry_http_request *req,
			     int result, const char *detail)
{
	struct ferry__xfer *x = ctx;
	struct ferry_response *resp = x->resp;
	char buf[FERRY_HTTP_DETAIL_MAX];

	x->req = NULL;
	ferry__xfer_drop_pending(x);
	if (x->body_lent && result < 0 && resp) {
		/* The request releases it (a receive into it may still be in
		 * flight); a failed body reads as "" anyway. */
		resp->body = NULL;
		resp->body_len = resp->body_cap = resp->body_faulted = 0;
	}
	if (result < 0)
		detail = ferry__xfer_why(x, &result, detail, buf, sizeof(buf));
	if (x->body) {
		const char *bwhy;

		/* The body's own sentence names its source, where the
		 * client's says only "request body producer: ...". */
		if (result < 0 && ferry_body_error(x->body, &bwhy) == result)
			detail = strcpy(buf, bwhy);
		ferry_body_close(x->body);
		x->body = NULL;
	}
	/* Before the stream's end: a reader that has seen the end reads
	 * the body's byte count there (the end orders the two). */
	if (resp)
		ferry__note_route(resp, req);
	ferry_stream_set_total(x->stream,
			       ferry_http_request_body_received(req));
	if (x->stream)
		ferry_stream_end_why(x->stream, result < 0 ? result : 0, detail);
	if (resp) {
		resp->x = NULL;
		resp->result = result;
		snprintf(resp->detail, sizeof(resp->detail), "%s", detail);
		ferry_task_complete(&resp->task, result);
	}
	free(x);
}

static const struct ferry_http_callbacks ferry__xfer_cb = {
	.on_head = ferry__xfer_head,
	.on_body = ferry__xfer_body,
	.on_done = ferry__xfer_done,
};

/* ------------------------------------------------------------------ */
/* The response's task                                                   */

static void ferry__resp_fail(struct ferry_response *resp, int err,
			     const char *why)
{
	resp->result = err;
	/* @why may be resp->detail itself (start's reason): never copy a
	 * buffer onto itself, snprintf's arguments must not overlap. */
	if (!why || !*why)
		why = ferry_strerror(err);
	if (why != resp->detail)
		snprintf(resp->detail, sizeof(resp->detail), "%s", why);
	ferry_task_complete(&resp->task, err);
}

/* An fd or producer body for @rq, on the loop (x->body; NULL for none). */
static int ferry__xfer_body_source(struct ferry__xfer *x,
				   const struct ferry_request *rq)
{
	struct ferry_loop *loop = ferry_runner_loop(x->r);
	int64_t len = rq->body_size ? (int64_t)rq->body_size : -1;

	if (rq->body_from_fd)
		return ferry_body_from_fd(loop, rq->body_fd, len, rq->body_chunk,
					  &x->body);
	if (rq->body_read)
		return ferry_body_from_reader(loop, rq->body_read,
					      rq->body_read_ctx, len,
					      rq->body_chunk, &x->body);
	return 0;
}

static void ferry__resp_start(struct ferry_task *t)
{
	struct ferry_response *resp = ferry__container_of(t, struct ferry_response,
							 task);
	struct ferry_session *s = resp->s;
	struct ferry_http_request_opts o;
	struct ferry__xfer *x;
	int ret;

	if (!s->client)
		return ferry__resp_fail(resp, FERRY_ECLOSED,
					s->r->loop_closing ? "the runner was closed"
							   : "the session was closed");
	x = calloc(1, sizeof(*x));
	if (!x)
		return ferry__resp_fail(resp, -ENOMEM, NULL);
	x->resp = resp;
	x->r = s->r;
	x->client = s->client;
	x->max_body = resp->rq.max_body ? resp->rq.max_body : s->max_body;
	x->max_body_default = !resp->rq.stream && !resp->rq.max_body &&
			      s->max_body_default;
	ret = ferry__xfer_body_source(x, &resp->rq);
	if (ret < 0) {
		free(x);
		return ferry__resp_fail(resp, ret, "request body: out of memory");
	}
	o = (struct ferry_http_request_opts){
		.method = resp->rq.method,
		.url = &resp->url,
		.headers = resp->rqhdrs,
		.nheaders = resp->rq.nheaders,
		.body = resp->rq.body,
		.body_len = resp->rq.body_len,
		.body_fn = x->body ? ferry_body_fn : NULL,
		.body_ctx = x->body,
		.body_fn_len = !x->body ? 0
			       : resp->rq.body_size ? (int64_t)resp->rq.body_size
						    : -1,
		.timeout_ms = resp->rq.timeout_ms,
		.connect_timeout_ms = resp->rq.connect_timeout_ms,
		.read_timeout_ms = resp->rq.read_timeout_ms,
		/* Stream mode has no limit of ours: the reader paces it. */
		.max_body = resp->rq.stream ? resp->rq.max_body : x->max_body,
		.follow_redirects = resp->rq.follow_redirects,
		.max_redirects = resp->rq.max_redirects,
		.cb = &ferry__xfer_cb,
		.ctx = x,
		.raw_headers = resp->rq.raw_headers,
		.unix_socket = resp->rq.unix_socket,
		.unix_socket_abstract = resp->rq.unix_socket_abstract,
		.retry = resp->rq.retry,
		.decode_content = resp->rq.decode_content,
	};
	resp->x = x;
	ret = ferry_http_request_start(s->client, &o, &x->req, resp->detail,
				       sizeof(resp->detail));
	if (ret < 0) {
		resp->x = NULL;
		ferry_body_close(x->body);
		free(x);
		ferry__resp_fail(resp, ret, resp->detail);
	}
}

static void ferry__resp_cancel(struct ferry_task *t)
{
	struct ferry_response *resp = ferry__container_of(t, struct ferry_response,
							 task);

	/* on_done follows, possibly inside, and completes the task: do not
	 * touch resp after this call. */
	if (resp->x && resp->x->req)
		ferry_http_request_cancel(resp->x->req);
}

/* True if one of @rq's headers has @d's name: @d is not sent. */
static bool ferry__default_overridden(const struct ferry_http_header *d,
				      const struct ferry_request *rq)
{
	for (size_t i = 0; i < rq->nheaders; i++)
		if (rq->headers[i].name_len == d->name_len &&
		    strncasecmp(rq->headers[i].name, d->name, d->name_len) == 0)
			return true;
	return false;
}

/*
 * Copy method and headers into one allocation owned by the response:
 * the session's defaults that the request does not override first, then
 * the request's own headers, in their order.
 */
static int ferry__copy_request(struct ferry_response *resp,
			       const struct ferry_request *rq)
{
	const struct ferry_session *s = resp->s;
	const char *method = rq->method ? rq->method : "GET";
	size_t bytes = strlen(method) + 1, n = 0;
	size_t ulen = rq->unix_socket ? strlen(rq->unix_socket) + 1 : 0;
	char *p;

	for (size_t i = 0; i < rq->nheaders; i++)
		bytes += rq->headers[i].name_len + rq->headers[i].value_len;
	bytes += ulen;
	resp->rqmem = malloc(bytes);
	resp->rqhdrs = calloc(s->ndhdrs + rq->nheaders + 1,
			      sizeof(*resp->rqhdrs));
	if (!resp->rqmem || !resp->rqhdrs)
		return -ENOMEM;
	resp->rq = *rq;
	p = resp->rqmem;
	resp->rq.method = strcpy(p, method);
	p += strlen(method) + 1;
	if (ulen) {
		resp->rq.unix_socket = memcpy(p, rq->unix_socket, ulen);
		p += ulen;
	}
	/* The session's defaults live as long as the session, which
	 * outlives its requests: point at them. */
	for (size_t i = 0; i < s->ndhdrs; i++)
		if (!ferry__default_overridden(&s->dhdrs[i], rq))
			resp->rqhdrs[n++] = s->dhdrs[i];
	for (size_t i = 0; i < rq->nheaders; i++) {
		const struct ferry_http_header *h = &rq->headers[i];

		resp->rqhdrs[n++] = (struct ferry_http_header){
			.name = memcpy(p, h->name, h->name_len),
			.name_len = h->name_len,
			.value = memcpy(p + h->name_len, h->value, h->value_len),
			.value_len = h->value_len,
		};
		p += h->name_len + h->value_len;
	}
	resp->rq.headers = resp->rqhdrs;
	resp->rq.nheaders = n;
	if (rq->retry) {
		resp->retry = *rq->retry;
		resp->rq.retry = &resp->retry;
	}
	resp->rq.url = NULL;
	return 0;
}

/* What submit refuses before anything else; @why says which. */
static int ferry__check_request(const struct ferry_session *s,
				const struct ferry_request *rq, char *why,
				size_t len)
{
	const char *bad = NULL;

	if (!s)
		bad = "no session (NULL)";
	else if (!rq)
		bad = "no request (NULL)";
	else if (!rq->url)
		bad = "no URL given";
	else if (rq->nheaders && !rq->headers)
		bad = "nheaders without headers (NULL)";
	else if (rq->body_len && !rq->body)
		bad = "body_len without a body (NULL)";
	else if ((rq->body || rq->body_len) + !!rq->body_read +
		 rq->body_from_fd > 1)
		bad = "more than one body (body, body_read, body_fd)";
	else if (rq->body_from_fd && rq->body_fd < 0)
		bad = "body_from_fd with a negative body_fd";
	else if ((rq->body_read || rq->body_from_fd) &&
		 rq->body_chunk > (16u << 20))
		bad = "body_chunk over 16 MiB";
	else if (rq->body_size > INT64_MAX)
		bad = "body_size over INT64_MAX";
	for (size_t i = 0; !bad && i < rq->nheaders; i++)
		if (!rq->headers[i].name || !rq->headers[i].value) {
			snprintf(why, len, "header %zu has a NULL name or value", i);
			return FERRY_EINVAL;
		}
	if (bad) {
		snprintf(why, len, "%s", bad);
		return FERRY_EINVAL;
	}
	return 0;
}

/* A response that only says why: for requests refused before the loop. */
static struct ferry_response *ferry__resp_new(struct ferry_session *s,
					      const struct ferry_request *rq)
{
	struct ferry_response *resp = calloc(1, sizeof(*resp));

	if (!resp)
		return NULL;
	resp->s = s;
	resp->minor = -1;
	resp->task.start = ferry__resp_start;
	resp->task.cancel = ferry__resp_cancel;
	/* The URL as asked for, until a response says where it came from:
	 * what ferry_response_url() gives after a failure. */
	if (rq && rq->url) {
		resp->final_url = strdup(rq->url);
		if (!resp->final_url) {
			free(resp);
			return NULL;
		}
	}
	return resp;
}

/*
 * The request's URL: absolute, or resolved against the session's base.
 * A resolved URL is also what ferry_response_url says until a head came.
 */
static int ferry__request_url(const struct ferry_session *s,
			      struct ferry_response *resp, const char *url)
{
	char *full;
	int ret;

	if (!s->has_base)
		return ferry_url_parse(&resp->url, url, strlen(url),
				       resp->detail, sizeof(resp->detail));
	ret = ferry_url_resolve(&resp->url, &s->base, url, strlen(url),
				resp->detail, sizeof(resp->detail));
	if (ret < 0)
		return ret;
	full = ferry__url_dup(&resp->url);
	if (!full)
		return -ENOMEM;
	free(resp->final_url);
	resp->final_url = full;
	return 0;
}

int ferry_session_submit(struct ferry_session *s, const struct ferry_request *rq,
			 struct ferry_response **rp)
{
	struct ferry_response *resp;
	int ret;

	if (!rp)
		return FERRY_EINVAL;
	*rp = resp = ferry__resp_new(s, rq);
	if (!resp)
		return -ENOMEM;
	ret = ferry__check_request(s, rq, resp->detail, sizeof(resp->detail));
	if (ret < 0)
		goto fail;
	ret = ferry__request_url(s, resp, rq->url);
	if (ret < 0)
		goto fail;
	ret = ferry__copy_request(resp, rq);
	if (ret < 0)
		goto fail;
	ret = ferry_task_submit(s->r, &resp->task);
	if (ret == FERRY_ECLOSED)
		snprintf(resp->detail, sizeof(resp->detail), "the runner was closed");
	else if (ret < 0)
		snprintf(resp->detail, sizeof(resp->detail), "%s",
			 ferry_runner_why(s->r));
	if (ret < 0)
		goto fail;
	resp->submitted = true;
	return 0;
fail:
	resp->result = ret;
	if (!resp->detail[0])
		snprintf(resp->detail, sizeof(resp->detail), "%s",
			 ferry_strerror(ret));
	return ret;
}

int ferry_response_wait(struct ferry_response *r, int64_t timeout_ns)
{
	if (!r)
		return FERRY_EINVAL;
	if (!r->submitted)
		return r->result;
	return ferry_task_wait(&r->task, timeout_ns);
}

int ferry_session_request(struct ferry_session *s,
			  const struct ferry_request *rq,
			  struct ferry_response **rp)
{
	int ret;

	if (!rp)
		return FERRY_EINVAL;
	/* Refuse before submitting: a request queued on our own loop could
	 * neither be waited for nor freed from here. */
	if (s && ferry__runner_on_loop(s->r)) {
		*rp = ferry__resp_new(s, rq);
		if (!*rp)
			return -ENOMEM;
		(*rp)->minor = -1;
		(*rp)->result = FERRY_EDEADLOCK;
		snprintf((*rp)->detail, sizeof((*rp)->detail),
			 "blocking request on the runner's loop thread");
		return FERRY_EDEADLOCK;
	}
	ret = ferry_session_submit(s, rq, rp);

	if (ret < 0)
		return ret;
	return ferry_response_wait(*rp, -1);
}

int ferry_session_get(struct ferry_session *s, const char *url,
		      struct ferry_response **rp)
{
	struct ferry_request rq = { .url = url };

	return ferry_session_request(s, &rq, rp);
}

struct ferry_task *ferry_response_task(struct ferry_response *r)
{
	return r ? &r->task : NULL;
}

void ferry_response_free(struct ferry_response *r)
{
	if (!r)
		return;
	/* On the loop thread a running response cannot be waited for:
	 * leaving it allocated is the only safe answer to that misuse. */
	if (r->submitted && ferry_task_release(&r->task) == FERRY_EDEADLOCK)
		return;
	ferry_stream_close(r->stream);
	ferry_url_free(&r->url);
	free(r->rqmem);
	free(r->rqhdrs);
	free(r->reason);
	free(r->final_url);
	free(r->headers);
	free(r->harena);
	free(r->body);
	free(r);
}

/* ------------------------------------------------------------------ */
/* Accessors                                                             */

int ferry_response_status(const struct ferry_response *r)
{
	return r ? r->status : FERRY_EINVAL;
}

int ferry_response_http_minor(const struct ferry_response *r)
{
	return r->minor;
}

const char *ferry_response_reason(const struct ferry_response *r)
{
	return r && r->reason ? r->reason : "";
}

const char *ferry_response_detail(const struct ferry_response *r)
{
	if (!r)
		return "no response (NULL)";
	if (r->result < 0)
		return r->detail;
	/* After the head, errors end the stream: it keeps their reason. */
	return ferry_stream_why(r->stream);
}

size_t ferry_response_header_count(const struct ferry_response *r)
{
	return r ? r->nheaders : 0;
}

bool ferry_response_header_at(const struct ferry_response *r, size_t i,
			      struct ferry_http_header *out)
{
	if (!r || !out || i >= r->nheaders)
		return false;
	*out = r->headers[i];
	return true;
}

const char *ferry_response_header(const struct ferry_response *r,
				  const char *name, size_t *len)
{
	size_t n = name ? strlen(name) : 0;

	if (len)
		*len = 0;
	if (!r || !name)
		return NULL;
	for (size_t i = 0; i < r->nheaders; i++)
		if (r->headers[i].name_len == n &&
		    strncasecmp(r->headers[i].name, name, n) == 0) {
			if (len)
				*len = r->headers[i].value_len;
			return r->headers[i].value;
		}
	return NULL;
}

const char *ferry_response_body(const struct ferry_response *r, size_t *len)
{
	if (len)
		*len = r && r->body ? r->body_len : 0;
	if (!r || r->rq.stream)
		return NULL;
	return r->body ? r->body : "";
}

const char *ferry_response_url(const struct ferry_response *r)
{
	return r && r->final_url ? r->final_url : "";
}

void ferry_response_timings(const struct ferry_response *r,
			    struct ferry_http_timings *t)
{
	*t = r->timings;
}

unsigned ferry_response_attempts(const struct ferry_response *r)
{
	return r ? r->attempts : 0;
}

uint64_t ferry_response_body_received(const struct ferry_response *r)
{
	if (r && r->stream)
		return ferry_stream_total(r->stream);
	return r ? r->body_received : 0;
}

const char *ferry_response_proxy(const struct ferry_response *r,
				 unsigned *port)
{
	if (!r || !r->proxy_host[0])
		return NULL;
	if (port)
		*port = r->proxy_port;
	return r->proxy_host;
}

struct ferry_stream *ferry_response_stream(const struct ferry_response *r)
{
	return r ? r->stream : NULL;
}

/* ------------------------------------------------------------------ */
/* The session                                                           */

/* Runner closing: the client goes with it (loop thread). */
static void ferry__session_cleanup(struct ferry_cleanup *c)
{
	struct ferry_session *s = ferry__container_of(c, struct ferry_session,
						     cleanup);
	struct ferry_http_client *client = s->client;

	s->client = NULL;
	if (client)
		ferry_http_client_close(client, NULL, NULL);
}

struct ferry__session_op {
	struct ferry_task task;
	struct ferry_session *s;
	const struct ferry_http_client_opts *opts;
};

static void ferry__session_open(struct ferry_task *t)
{
	struct ferry__session_op *op = ferry__container_of(t, struct ferry__session_op,
							  task);
	struct ferry_session *s = op->s;
	int ret = ferry_http_client_create(ferry_runner_loop(s->r), op->opts,
					   &s->client);

	if (ret == 0 && ferry_runner_on_close(s->r, &s->cleanup) < 0) {
		ferry_http_client_close(s->client, NULL, NULL);
		s->client = NULL;
		ret = FERRY_ECLOSED;
	}
	ferry_task_complete(t, ret);
}

static void ferry__session_shut(struct ferry_task *t)
{
	struct ferry__session_op *op = ferry__container_of(t, struct ferry__session_op,
							  task);
	struct ferry_session *s = op->s;

	if (s->client) {
		ferry_runner_cancel_cleanup(s->r, &s->cleanup);
		ferry__session_cleanup(&s->cleanup);
	}
	ferry_task_complete(t, 0);
}

/* RFC 9110 5.6.2: tchar, for default header names. */
static bool ferry__is_token(const char *p, size_t n)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'z') &&
		    !(c >= 'A' && c <= 'Z') && (!c || !strchr(extra, c)))
			return false;
	}
	return true;
}

/* What a default header may not be; NULL when it is fine. */
static const char *ferry__bad_default(const struct ferry_http_header *h)
{
	static const char *const framing[] = { "Content-Length",
					       "Transfer-Encoding" };

	if (!h->name || !h->value)
		return "a default header has a NULL name or value";
	if (!ferry__is_token(h->name, h->name_len))
		return "a default header's name is not a token";
	for (size_t i = 0; i < h->value_len; i++)
		if (h->value[i] == '\r' || h->value[i] == '\n' || !h->value[i])
			return "a default header's value has CR, LF or NUL";
	for (size_t i = 0; i < 2; i++)
		if (h->name_len == strlen(framing[i]) &&
		    !strncasecmp(h->name, framing[i], h->name_len))
			return "Content-Length or Transfer-Encoding as a default "
			       "header (the body decides them)";
	return NULL;
}

/* Copy the default headers into one block of the session's. */
static int ferry__session_defaults(struct ferry_session *s,
				   const struct ferry_session_opts *o)
{
	size_t bytes = 1;
	char *p;

	if (o->nheaders && !o->headers)
		return FERRY_EINVAL;
	for (size_t i = 0; i < o->nheaders; i++) {
		if (ferry__bad_default(&o->headers[i]))
			return FERRY_EINVAL;
		bytes += o->headers[i].name_len + o->headers[i].value_len + 2;
	}
	s->dmem = malloc(bytes);
	s->dhdrs = calloc(o->nheaders + 1, sizeof(*s->dhdrs));
	if (!s->dmem || !s->dhdrs)
		return -ENOMEM;
	p = s->dmem;
	for (size_t i = 0; i < o->nheaders; i++) {
		const struct ferry_http_header *h = &o->headers[i];
		struct ferry_http_header *d = &s->dhdrs[i];

		d->name = memcpy(p, h->name, h->name_len);
		d->name_len = h->name_len;
		p[h->name_len] = '\0';
		p += h->name_len + 1;
		d->value = memcpy(p, h->value, h->value_len);
		d->value_len = h->value_len;
		p[h->value_len] = '\0';
		p += h->value_len + 1;
	}
	s->ndhdrs = o->nheaders;
	return 0;
}

static void ferry__session_free(struct ferry_session *s)
{
	pthread_mutex_destroy(&s->lock);
	ferry_url_free(&s->base);
	free(s->dhdrs);
	free(s->dmem);
	free(s);
}

int ferry_session_create(struct ferry_runner *r,
			 const struct ferry_http_client_opts *opts,
			 struct ferry_session **sp)
{
	struct ferry_session_opts so = { .client = opts };

	return ferry_session_create_opts(r, &so, sp);
}

int ferry_session_create_opts(struct ferry_runner *r,
			      const struct ferry_session_opts *sopts,
			      struct ferry_session **sp)
{
	static const struct ferry_session_opts none;
	const struct ferry_http_client_opts *opts;
	struct ferry_session *s;
	struct ferry__session_op op = { .task.start = ferry__session_open };
	int ret;

	if (!sp)
		return FERRY_EINVAL;
	*sp = NULL;
	if (!r)
		return FERRY_EINVAL;
	if (!sopts)
		sopts = &none;
	opts = sopts->client;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	ret = ferry__session_defaults(s, sopts);
	if (ret == 0 && sopts->base_url) {
		ret = ferry_url_parse(&s->base, sopts->base_url,
				      strlen(sopts->base_url), NULL, 0);
		s->has_base = ret == 0;
	}
	if (ret < 0) {
		ferry__session_free(s);
		return ret;
	}
	s->r = r;
	s->max_body_default = !opts || !opts->max_body;
	s->max_body = s->max_body_default ? FERRY_SESSION_MAX_BODY
					  : opts->max_body;
	s->cleanup.fn = ferry__session_cleanup;
	op.s = s;
	op.opts = opts;
	ret = ferry_call(r, &op.task);
	if (ret < 0) {
		ferry__session_free(s);
		return ret;
	}
	*sp = s;
	return 0;
}

void ferry_session_close(struct ferry_session *s)
{
	struct ferry__session_op op = { .task.start = ferry__session_shut, .s = s };
	bool first;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	first = !s->closed;
	s->closed = true;
	pthread_mutex_unlock(&s->lock);
	if (!first)
		return;
	/* If the runner is closing, its cleanup closes the client: wait for
	 * that to be over before anyone frees the session. */
	if (ferry_call(s->r, &op.task) == FERRY_ECLOSED)
		ferry_runner_close(s->r);
}

void ferry_session_destroy(struct ferry_session *s)
{
	if (!s)
		return;
	ferry_session_close(s);
	ferry__session_free(s);
}

struct ferry_http_client *ferry_session_client(struct ferry_session *s)
{
	/* s->client is the loop's: read only there. */
	if (!s || !ferry__runner_on_loop(s->r))
		return NULL;
	return s->client;
}

struct ferry_runner *ferry_session_runner(const struct ferry_session *s)
{
	return s ? s->r : NULL;
}
