/*
 * request.c - a request's life around its connections: validation and
 * copies at start, the wait for a connection, the head and body handed to
 * the caller, redirects, failure and the one on_done.
 *
 * States (enum ferry__req_state): WAITING on an origin's FIFO -> ACTIVE on
 * a connection (connecting, sending or receiving) -> DONE while on_done
 * runs. A redirect or a retry goes from ACTIVE back to WAITING; a retry
 * of the retry policy waits in BACKOFF first (its timer), then WAITING.
 *
 * Callbacks into the caller are bracketed by in_cb: a cancel (or a client
 * close) that arrives from inside one only records the error, and the
 * code that made the callback fails the request when it returns
 * (ferry__req_check_pending), so no frame below the callback ever finds
 * its request freed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "decode.h"
#include "internal.h"
#include "util.h"

static int ferry__req_wait(struct ferry_http_request *req, bool front);
static void ferry__req_fail_detail(struct ferry_http_request *req, int err);

static bool ferry__name_is(const struct ferry__h1_header *h, const char *name)
{
	return h->name_len == strlen(name) &&
	       !strncasecmp(h->name, name, h->name_len);
}

static bool ferry__req_idempotent(const struct ferry_http_request *req)
{
	static const char *const safe[] = {
		"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE",
	};

	for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
		if (!strcmp(req->method, safe[i]))
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* Freeing and finishing                                                 */

/*
 * A request object, zeroed as calloc would give it, from the client's pool
 * when it has one: keep-alive load then allocates no request object, and
 * its head buffer, kept with it, is already large enough.
 */
static struct ferry_http_request *ferry__req_alloc(struct ferry_http_client *c)
{
	struct ferry_http_request *req;
	struct ferry__h1_buf out;
	char *block;
	size_t block_cap;

	if (!c->npool)
		return calloc(1, sizeof(*req));
	req = c->pool[--c->npool];
	FERRY__REQ_UNPOISON(req);
	FERRY__UNPOISON(req->block, req->block_cap);
	out = req->out;
	block = req->block;
	block_cap = req->block_cap;
	memset(req, 0, sizeof(*req));
	req->out.data = out.data;
	req->out.cap = out.cap;
	req->block = block;
	req->block_cap = block_cap;
	return req;
}

static void ferry__req_free(struct ferry_http_request *req)
{
	struct ferry_http_client *c = req->client;

	ferry_url_free(&req->url);
	ferry_url_free(&req->next_url);
	free(req->unix_path);
	ferry__decode_free(req);
	if (req->out.cap > FERRY__REQ_POOL_HEAD_MAX)
		ferry__h1_buf_free(&req->out);	/* a big head: not kept */
	if (req->block_cap > FERRY__REQ_POOL_HEAD_MAX) {
		free(req->block);	/* big copies: not kept either */
		req->block = NULL;
		req->block_cap = 0;
	}
	if (c && c->npool < FERRY__REQ_POOL_MAX && !c->closing) {
		/* ASan builds poison it: a use after "free" still shows. */
		c->pool[c->npool++] = req;
		FERRY__POISON(req->block, req->block_cap);
		FERRY__REQ_POISON(req);
		return;
	}
	ferry__h1_buf_free(&req->out);
	free(req->block);
	free(req);
}

/* Free the request objects kept for reuse. */
void ferry__client_pool_free(struct ferry_http_client *c)
{
	while (c->npool) {
		struct ferry_http_request *req = c->pool[--c->npool];

		FERRY__REQ_UNPOISON(req);
		FERRY__UNPOISON(req->block, req->block_cap);
		ferry__h1_buf_free(&req->out);
		free(req->block);
		free(req);
	}
}

/* Run on_done once and free req. req is detached from everything. */
static void ferry__req_finish(struct ferry_http_request *req, int result)
{
	struct ferry_http_client *c = req->client;

	req->state = FERRY__REQ_DONE;
	ferry_timer_stop(c->loop, &req->deadline);
	if (result < 0 && !req->detail[0])
		snprintf(req->detail, sizeof(req->detail), "%s",
			 ferry_strerror(result));
	if (result >= 0)
		req->detail[0] = '\0';
	req->cb->on_done(req->ctx, req, result, req->detail);
	/* A body buffer is the caller's again after a success; after a
	 * failure it is released here, or by the connection that still
	 * receives into it (ferry__conn_adopt_body cleared it then). */
	if (req->into_buf && result < 0)
		req->into_release(req->into_buf);
	/* Still listed during on_done, so a close from in there cannot
	 * free the client under us. */
	ferry__list_del(&req->link);
	c->nreqs--;
	ferry_loop_expect(c->loop, -1);
	ferry__req_free(req);
	ferry__client_reap_later(c);
}

/* Take req off its origin's queue or its connection. */
static void ferry__req_detach(struct ferry_http_request *req)
{
	struct ferry_http_client *c = req->client;
	struct ferry__conn *cn = req->conn;

	if (req->state == FERRY__REQ_WAITING) {
		struct ferry__origin *o = req->origin;

		ferry__list_del(&req->wait);
		c->nwaiting--;
		req->origin = NULL;
		ferry__origin_put(o);
		return;
	}
	if (req->state == FERRY__REQ_BACKOFF) {
		ferry_timer_stop(c->loop, &req->retry_timer);
		return;
	}
	if (!cn)
		return;
	ferry__conn_adopt_body(cn, req);
	req->conn = NULL;
	cn->req = NULL;
	/* A connection still being set up goes on, for the pool or the
	 * next waiting request; one with a response under way is spoilt. */
	if (cn->state >= FERRY__CONN_SEND)
		ferry__conn_close(cn);
}

/* ------------------------------------------------------------------ */
/* Retries of the retry policy (rules in retry.c)                       */

/*
 * May req be tried again, after a wait of *@delay_ns? @retry_after_ms is
 * the server's Retry-After (-1: none). Not past max_retries, not a method
 * that is not idempotent (unless any_method), not a producer body already
 * read, not a Retry-After over its cap, not when the wait would end past
 * the total deadline.
 */
static bool ferry__req_retry_allowed(struct ferry_http_request *req,
				     int64_t retry_after_ms, uint64_t *delay_ns)
{
	const struct ferry_http_retry *p = &req->retry;
	struct ferry_http_client *c = req->client;

	if (req->attempts > p->max_retries || req->body_fn_started ||
	    (!p->any_method && !ferry__req_idempotent(req)))
		return false;
	if (retry_after_ms > (int64_t)p->retry_after_max_ms)
		return false;
	*delay_ns = retry_after_ms >= 0
			    ? (uint64_t)retry_after_ms * FERRY__MS
			    : ferry__retry_backoff_ns(p, req->attempts,
						      &c->retry_rng);
	return !ferry_timer_active(&req->deadline) ||
	       ferry_time_now() + *delay_ns <
		       ferry_timer_deadline(&req->deadline);
}

/* req, on no connection, waits delay_ns and then starts over. */
static void ferry__req_retry_later(struct ferry_http_request *req,
				   uint64_t delay_ns)
{
	struct ferry_http_client *c = req->client;

	req->state = FERRY__REQ_BACKOFF;
	req->attempts++;
	c->policy_retries++;
	req->retrying = false;
	req->redirecting = false;
	req->head_seen = false;
	req->retried = false;
	req->fresh_conn = false;
	req->status = 0;
	req->body_received = 0;
	if (ferry_timer_start(c->loop, &req->retry_timer,
			      ferry_time_now() + delay_ns) < 0)
		ferry__req_fail(req, -ENOMEM, "retry: out of memory");
}

static void ferry__req_retry_fn(struct ferry_timer *t)
{
	struct ferry_http_request *req = ferry__container_of(t,
					struct ferry_http_request, retry_timer);

	if (ferry__req_wait(req, false) < 0)
		ferry__req_fail(req, -ENOMEM, "retry: out of memory");
}

/*
 * A failure on req's connection before any response byte: retried if
 * the policy says so (true: req is in BACKOFF, detached from the
 * connection, which the caller closes).
 */
static bool ferry__req_retry_error(struct ferry_http_request *req, int err)
{
	struct ferry__conn *cn = req->conn;
	bool connecting;
	uint64_t delay;

	if (!cn || req->in_cb || req->head_seen ||
	    req->state != FERRY__REQ_ACTIVE || !req->retry.max_retries)
		return false;
	/* Connecting: the transport's TCP connect (or name lookup) has not
	 * ended yet; a TLS handshake or a tunnel under way is not that. */
	connecting = cn->state == FERRY__CONN_START && !cn->clock.t_connected;
	if (!connecting && (cn->state < FERRY__CONN_SEND ||
			    !ferry__h1_resp_idle(&cn->parser)))
		return false;
	if (!ferry__retry_error(&req->retry, err, connecting) ||
	    !ferry__req_retry_allowed(req, -1, &delay))
		return false;
	ferry__req_detach(req);
	ferry__req_retry_later(req, delay);
	return true;
}

/* Fail req with err and the detail already in req->detail. */
static void ferry__req_fail_detail(struct ferry_http_request *req, int err)
{
	if (req->state == FERRY__REQ_DONE)
		return;
	if (ferry__req_retry_error(req, err))
		return;
	if (req->in_cb) {
		if (!req->pending_err)
			req->pending_err = err;
		return;
	}
	ferry__req_detach(req);
	ferry__req_finish(req, err);
}

void ferry__req_fail(struct ferry_http_request *req, int err,
		     const char *fmt, ...)
{
	va_list ap;

	if (req->state == FERRY__REQ_DONE || req->pending_err)
		return;
	va_start(ap, fmt);
	vsnprintf(req->detail, sizeof(req->detail), fmt, ap);
	va_end(ap);
	ferry__req_fail_detail(req, err);
}

static bool ferry__req_check_pending(struct ferry_http_request *req)
{
	int err = req->pending_err;

	if (!err)
		return false;
	req->pending_err = 0;
	ferry__req_fail_detail(req, err);
	return true;
}

static void ferry__req_deadline_fn(struct ferry_timer *t)
{
	struct ferry_http_request *req = ferry__container_of(t,
					struct ferry_http_request, deadline);

	ferry__req_fail(req, FERRY_ETOTAL_TIMEOUT,
			"total timeout: no complete response within %" PRIu32
			" ms", req->timeout_ms);
}

/* ------------------------------------------------------------------ */
/* Waiting for a connection                                              */

/* Queue req on its URL's origin and dispatch. 0 or -ENOMEM. */
static int ferry__req_wait(struct ferry_http_request *req, bool front)
{
	struct ferry_http_client *c = req->client;
	struct ferry__origin *o = ferry__origin_get(c, &req->url, &req->route);

	if (!o)
		return -ENOMEM;
	req->state = FERRY__REQ_WAITING;
	req->origin = o;
	if (front)
		ferry__list_add_head(&o->waiting, &req->wait);
	else
		ferry__list_add_tail(&o->waiting, &req->wait);
	c->nwaiting++;
	ferry__client_dispatch(c, o);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The head of the request                                               */

static int ferry__req_write_head(struct ferry_http_request *req, char *why,
				 size_t whylen)
{
	struct ferry__h1_req h = {
		.method = req->method,
		.url = &req->url,
		.headers = req->headers,
		.nheaders = req->nheaders,
		.body_len = 0,
		.raw = req->raw_headers,
		.absolute_form = req->route.kind == FERRY__ROUTE_FORWARD,
	};
	int r;

	if (h.absolute_form)
		h.proxy_auth = req->route.proxy->auth;

	switch (req->body_kind) {
	case FERRY__BODY_NONE:
		break;
	case FERRY__BODY_BUFFER:
		h.body_len = (int64_t)req->body_len;
		break;
	case FERRY__BODY_PRODUCER:
		h.body_len = req->body_fn_len >= 0 ? req->body_fn_len
						   : FERRY__H1_BODY_CHUNKED;
		break;
	}
	req->out.len = 0;
	r = ferry__h1_req_write(&req->out, &h, why, whylen);
	if (r < 0)
		return r;
	req->wants_close = r == FERRY__H1_REQ_CLOSE;
	return 0;
}

/*
 * The request's block for its copies, at least @need bytes: the one kept
 * with a pooled request object when it is large enough, so keep-alive
 * load allocates nothing per request. NULL when out of memory.
 */
static char *ferry__req_block(struct ferry_http_request *req, size_t need)
{
	size_t cap = need < FERRY__REQ_BLOCK_MIN ? FERRY__REQ_BLOCK_MIN : need;

	if (need <= req->block_cap)
		return req->block;
	free(req->block);
	req->block = malloc(cap);
	req->block_cap = req->block ? cap : 0;
	return req->block;
}

/*
 * Copy the caller's method, URL and headers into the request's block
 * (headers first, for their alignment), adding the client's User-Agent
 * unless the caller gave one, and Accept-Encoding when the request
 * decodes and the caller gave none.
 */
static int ferry__req_copy(struct ferry_http_request *req,
			   const struct ferry_http_request_opts *o)
{
	const char *ua = o->raw_headers ? NULL : req->client->user_agent;
	const char *method = o->method ? o->method : "GET";
	bool ae = !o->raw_headers && req->decode_on;
	size_t n = o->nheaders, bytes = 0, mlen = strlen(method);
	char *p;

	for (size_t i = 0; i < o->nheaders; i++) {
		const struct ferry_http_header *h = &o->headers[i];

		if ((!h->name && h->name_len) || (!h->value && h->value_len))
			return FERRY_EINVAL;
		bytes += h->name_len + h->value_len;
		if (ua && h->name_len == 10 && !strncasecmp(h->name, "User-Agent", 10))
			ua = NULL;
		if (h->name_len == 15 && !strncasecmp(h->name, "Accept-Encoding", 15))
			ae = false;
	}
	n += (ua != NULL) + ae;
	p = ferry__req_block(req, n * sizeof(*req->headers) + bytes + mlen + 1 +
				       ferry__url_copy_size(o->url));
	if (!p)
		return -ENOMEM;
	req->headers = n ? (struct ferry__h1_header *)p : NULL;
	p += n * sizeof(*req->headers);
	for (size_t i = 0; i < o->nheaders; i++) {
		const struct ferry_http_header *h = &o->headers[i];
		struct ferry__h1_header *d = &req->headers[i];

		d->name = p;
		d->name_len = h->name_len;
		if (h->name_len)
			memcpy(p, h->name, h->name_len);
		p += h->name_len;
		d->value = p;
		d->value_len = h->value_len;
		if (h->value_len)
			memcpy(p, h->value, h->value_len);
		p += h->value_len;
	}
	if (ua)	/* the client outlives its requests */
		req->headers[o->nheaders] = (struct ferry__h1_header){
			"User-Agent", 10, ua, strlen(ua) };
	if (ae)
		req->headers[n - 1] = (struct ferry__h1_header){
			"Accept-Encoding", 15, FERRY__DECODE_ACCEPT,
			sizeof(FERRY__DECODE_ACCEPT) - 1 };
	req->nheaders = n;
	memcpy(p, method, mlen + 1);
	req->method = p;
	ferry__url_copy_into(&req->url, o->url, p + mlen + 1);
	return 0;
}

int ferry_http_request_start(struct ferry_http_client *c,
			     const struct ferry_http_request_opts *o,
			     struct ferry_http_request **reqp,
			     char *why, size_t whylen)
{
	struct ferry_http_request *req;
	int err;

	if (reqp)
		*reqp = NULL;
	if (!c || !o || !reqp || !o->url || !o->url->host || !o->cb ||
	    !o->cb->on_done) {
		ferry__whyf(why, whylen, "missing client, URL, callbacks or on_done");
		return FERRY_EINVAL;
	}
	if (c->closing) {
		ferry__whyf(why, whylen, "the client is closed");
		return FERRY_ECLOSED;
	}
	if (ferry__route_needs_tls(c, o->url)) {
		char tw[FERRY_HTTP_DETAIL_MAX] = "";

		err = ferry__client_tls(c, tw, sizeof(tw));
		if (err < 0) {
			ferry__whyf(why, whylen, "https: %s",
			     *tw ? tw : ferry_strerror(err));
			return err;
		}
	}
	if (o->body_fn && (o->body || o->body_len)) {
		ferry__whyf(why, whylen, "both a body buffer and a body producer");
		return FERRY_EINVAL;
	}
	if (!o->body && o->body_len) {
		ferry__whyf(why, whylen, "body_len without a body");
		return FERRY_EINVAL;
	}
	req = ferry__req_alloc(c);
	if (!req)
		goto nomem;
	req->client = c;
	req->cb = o->cb;
	req->ctx = o->ctx;
	req->deadline.fn = ferry__req_deadline_fn;
	req->retry_timer.fn = ferry__req_retry_fn;
	req->attempts = 1;
	if (o->retry)
		ferry__retry_fill(&req->retry, o->retry);
	else
		req->retry = c->opts.retry;
	req->raw_headers = o->raw_headers;
	req->decode_on = ferry__decode_wanted(&c->opts, o);
	req->t_start = ferry_time_now();
	err = ferry__req_copy(req, o);
	if (err == -ENOMEM)
		goto nomem_req;
	if (err < 0) {
		ferry__whyf(why, whylen, "header with a NULL name or value");
		ferry__req_free(req);
		return err;
	}
	if (o->unix_socket) {
		req->unix_path = strdup(o->unix_socket);
		if (!req->unix_path)
			goto nomem_req;
		req->unix_abstract = o->unix_socket_abstract;
	}
	ferry__route_pick(c, &req->url, req->unix_path, req->unix_abstract,
			  &req->route);
	if (o->body_fn) {
		req->body_kind = FERRY__BODY_PRODUCER;
		req->body_fn = o->body_fn;
		req->body_fn_len = o->body_fn_len;
		req->body_ctx = o->body_ctx ? o->body_ctx : o->ctx;
	} else if (o->body) {
		req->body_kind = FERRY__BODY_BUFFER;
		req->body = o->body;
		req->body_len = o->body_len;
	}
	/* Everything the writer refuses (method, header names and values,
	 * framing headers) is refused here, before any I/O. */
	err = ferry__req_write_head(req, why, whylen);
	if (err < 0) {
		ferry__req_free(req);
		return err;
	}
	req->read_timeout_ms = o->read_timeout_ms;
	req->connect_timeout_ms = o->connect_timeout_ms;
	req->max_body = o->max_body ? o->max_body : c->opts.max_body;
	req->follow = o->follow_redirects == FERRY_HTTP_FOLLOW_DEFAULT
			      ? c->opts.follow_redirects
			      : o->follow_redirects == FERRY_HTTP_FOLLOW_YES;
	req->max_redirects = o->max_redirects ? o->max_redirects
					      : c->opts.max_redirects;
	req->timeout_ms = o->timeout_ms;
	if (o->timeout_ms &&
	    ferry_timer_start(c->loop, &req->deadline,
			      ferry_time_now() + o->timeout_ms * FERRY__MS) < 0)
		goto nomem_req;
	ferry__list_add_tail(&c->reqs, &req->link);
	c->nreqs++;
	/* Each live request awaits a response: the loop may batch them. */
	ferry_loop_expect(c->loop, 1);
	c->requests_started++;
	if (ferry__req_wait(req, false) < 0) {
		ferry__list_del(&req->link);
		c->nreqs--;
		ferry_loop_expect(c->loop, -1);
		ferry_timer_stop(c->loop, &req->deadline);
		goto nomem_req;
	}
	*reqp = req;
	return 0;
nomem_req:
	ferry_timer_stop(c->loop, &req->deadline);
	ferry__req_free(req);
nomem:
	ferry__whyf(why, whylen, "out of memory");
	return -ENOMEM;
}

/* ------------------------------------------------------------------ */
/* The response, as the connection parses it                              */

static bool ferry__is_redirect(int status)
{
	return status == 301 || status == 302 || status == 303 ||
	       status == 307 || status == 308;
}

/* Decide whether this redirect is followed; 1 yes, 0 no, < 0 failed. */
static int ferry__req_redirect_check(struct ferry_http_request *req,
				     const struct ferry__h1_resp *p, int status)
{
	char why[FERRY_URL_WHY_MAX];
	const char *loc;
	size_t len;
	int r;

	if (!req->follow || !ferry__is_redirect(status))
		return 0;
	loc = ferry__h1_resp_header(p, "Location", &len);
	if (!loc)
		return 0;
	/* A producer body cannot be sent again. */
	if ((status == 307 || status == 308) &&
	    req->body_kind == FERRY__BODY_PRODUCER)
		return 0;
	if (req->redirects >= req->max_redirects) {
		ferry__req_fail(req, FERRY_EREDIRECTS,
				"more than %u redirects (last: %d to %.*s)",
				req->max_redirects, status, (int)(len > 80 ? 80 : len),
				loc);
		return -1;
	}
	ferry_url_free(&req->next_url);
	r = ferry_url_resolve(&req->next_url, &req->url, loc, len, why,
			      sizeof(why));
	if (r < 0) {
		ferry__req_fail(req, r, "redirect %d: bad Location: %s", status,
				r == FERRY_EURL ? why : ferry_strerror(r));
		return -1;
	}
	req->redirect_status = status;
	return 1;
}

/*
 * How much of a followed redirect's body is read to keep its connection:
 * the client's max_redirect_body, and never more than the body limit.
 */
static uint64_t
ferry__req_redirect_body_max(const struct ferry_http_request *req)
{
	uint64_t max = req->client->opts.max_redirect_body;

	return req->max_body && req->max_body < max ? req->max_body : max;
}

/*
 * ferry__req_head - the final head is parsed. Follows redirects (then the
 * body is discarded: *discard), checks the body limit, calls on_head.
 * Returns 0 to go on, FERRY__REQ_ABANDON when the redirect's body is
 * too long to drain (the caller closes the connection and completes), or
 * < 0 when req failed (the caller stops).
 */
static int ferry__req_head(struct ferry_http_request *req, bool *discard)
{
	const struct ferry__h1_resp *p = &req->conn->parser;
	int status = ferry__h1_resp_status(p);
	const char *cl;
	int r;

	r = ferry__req_redirect_check(req, p, status);
	if (r < 0)
		return -1;
	if (r == 0 && req->retry.max_retries &&
	    ferry__retry_status(&req->retry, status) &&
	    ferry__req_retry_allowed(
		    req,
		    ferry__retry_after_ms(
			    ferry__h1_resp_header(p, "Retry-After", NULL)),
		    &req->retry_delay_ns)) {
		/* Dropped like a redirect's body, then tried again. */
		req->retrying = true;
		r = 1;
	}
	cl = ferry__h1_resp_header(p, "Content-Length", NULL);
	if (r > 0) {
		req->redirecting = !req->retrying;
		*discard = true;
		/* (A HEAD's Content-Length announces no body.) */
		if (cl && strcmp(req->method, "HEAD") &&
		    strtoull(cl, NULL, 10) > ferry__req_redirect_body_max(req))
			return FERRY__REQ_ABANDON;
		return 0;
	}
	if (cl && req->max_body && strtoull(cl, NULL, 10) > req->max_body) {
		ferry__req_fail(req, FERRY_ETOOLARGE,
				"Content-Length %s exceeds the body limit of %" PRIu64
				" bytes", cl, req->max_body);
		return -1;
	}
	if (ferry__decode_begin(req, p) < 0)
		return -1;
	req->status = status;
	req->head_seen = true;
	if (!req->cb->on_head)
		return 0;
	req->in_cb = true;
	r = req->cb->on_head(req->ctx, req, status);
	req->in_cb = false;
	if (ferry__req_check_pending(req))
		return -1;
	if (r < 0) {
		ferry__req_fail(req, r, "on_head refused the response: %s",
				ferry_strerror(r));
		return -1;
	}
	return 0;
}

/*
 * ferry__req_body - a body slice from input in. 0, FERRY__REQ_ABANDON
 * when a redirect's body grew too long to drain (as for ferry__req_head),
 * or < 0 if req failed.
 */
static int ferry__req_body(struct ferry_http_request *req, const char *data,
		    size_t len, const struct ferry__input *in)
{
	req->body_received += len;
	if (req->redirecting || req->retrying)
		return req->body_received > ferry__req_redirect_body_max(req)
			       ? FERRY__REQ_ABANDON
			       : 0;
	if (req->max_body && req->body_received > req->max_body) {
		ferry__req_fail(req, FERRY_ETOOLARGE,
				"body exceeds the limit of %" PRIu64 " bytes",
				req->max_body);
		return -1;
	}
	if (ferry__decode_active(req))
		return ferry__decode_body(req, data, len);
	return ferry__req_deliver(req, data, len, in);
}

/* After on_body: a cancel from inside it, or the callback's refusal. */
static int ferry__req_body_result(struct ferry_http_request *req, int r)
{
	if (ferry__req_check_pending(req))
		return -1;
	if (r < 0) {
		ferry__req_fail(req, r, "on_body refused the body: %s",
				ferry_strerror(r));
		return -1;
	}
	return 0;
}

/* Bytes received straight into the caller's body buffer: no buffer to
 * reference or keep (token 0, FERRY_HTTP_KEEP means nothing). */
static int ferry__req_deliver_ext(struct ferry_http_request *req,
				  const char *data, size_t len)
{
	int r;

	req->in_cb = true;
	r = req->cb->on_body(req->ctx, req, data, len, 0);
	req->in_cb = false;
	return ferry__req_body_result(req, r == FERRY_HTTP_KEEP ? 0 : r);
}

int ferry__req_deliver(struct ferry_http_request *req, const char *data,
		       size_t len, const struct ferry__input *in)
{
	uintptr_t token = in->spill ? (uintptr_t)in->spill
				    : (uintptr_t)in->bid + 1;
	struct ferry__spill *sp;
	unsigned bid;
	int r;

	if (!req->cb->on_body || !len)
		return 0;
	if (in->ext)
		return ferry__req_deliver_ext(req, data, len);
	req->in_cb = true;
	/* A reference of our own across the call: a close or cancel from
	 * inside it drops the connection's, and a buffer the callback keeps
	 * must not go back to the kernel meanwhile. */
	sp = in->spill;
	bid = in->bid;
	if (sp)
		sp->refs++;
	else
		req->client->buf_refs[bid]++;
	r = req->cb->on_body(req->ctx, req, data, len, token);
	req->in_cb = false;
	if (r == FERRY_HTTP_KEEP && sp)
		ferry__spill_keep(req->client, sp);
	else if (r == FERRY_HTTP_KEEP)
		ferry__buf_keep(req->client, bid);
	if (sp)
		ferry__spill_unref(req->client, sp);
	else
		ferry__buf_unref(req->client, bid);
	return ferry__req_body_result(req, r);
}

/* Drop the headers that must not cross to another origin. */
static void ferry__req_drop_credentials(struct ferry_http_request *req)
{
	size_t j = 0;

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct ferry__h1_header *h = &req->headers[i];

		if (ferry__name_is(h, "Authorization") ||
		    ferry__name_is(h, "Cookie") ||
		    ferry__name_is(h, "Proxy-Authorization") ||
		    ferry__name_is(h, "Host"))
			continue;
		req->headers[j++] = *h;
	}
	req->nheaders = j;
}

static void ferry__req_follow(struct ferry_http_request *req)
{
	int status = req->redirect_status;
	char why[FERRY__H1_WHY_MAX];
	bool cross;

	req->redirecting = false;
	if (ferry__route_needs_tls(req->client, &req->next_url)) {
		char tw[FERRY_HTTP_DETAIL_MAX] = "";
		int err = ferry__client_tls(req->client, tw, sizeof(tw));

		if (err < 0) {
			ferry__req_fail(req, err, "redirect to https: %s",
					*tw ? tw : ferry_strerror(err));
			return;
		}
	}
	cross = !ferry_url_same_origin(&req->url, &req->next_url);
	ferry_url_free(&req->url);
	req->url = req->next_url;
	memset(&req->next_url, 0, sizeof(req->next_url));
	req->redirects++;
	if (status != 307 && status != 308 && strcmp(req->method, "HEAD")) {
		req->method = "GET";
		req->body_kind = FERRY__BODY_NONE;
		req->body = NULL;
		req->body_len = 0;
	}
	if (cross)
		ferry__req_drop_credentials(req);
	ferry__route_pick(req->client, &req->url, req->unix_path,
			  req->unix_abstract, &req->route);
	req->head_seen = false;
	req->retried = false;
	req->fresh_conn = false;
	req->status = 0;
	req->body_received = 0;
	if (ferry__req_write_head(req, why, sizeof(why)) < 0) {
		ferry__req_fail(req, FERRY_EINVAL, "redirect: %s", why);
		return;
	}
	if (ferry__req_wait(req, false) < 0)
		ferry__req_fail(req, -ENOMEM, "redirect: out of memory");
}

/*
 * ferry__req_complete - the response on cn is whole (cn->req already
 * cleared). The connection goes back to the pool or closes first, so a
 * request started from on_done can take it.
 */
static void ferry__req_complete(struct ferry_http_request *req,
			 struct ferry__conn *cn, bool reuse)
{
	req->conn = NULL;
	/* Active on no connection, for a moment. */
	ferry__conn_detach(cn, reuse);
	if (req->retrying) {
		ferry__req_retry_later(req, req->retry_delay_ns);
		return;
	}
	if (req->redirecting) {
		ferry__req_follow(req);
		return;
	}
	ferry__req_finish(req, ferry__decode_end(req, req->status));
}

/* ------------------------------------------------------------------ */
/* Public calls on a running request                                     */

void ferry_http_request_cancel(struct ferry_http_request *req)
{
	if (!req)
		return;
	ferry__req_fail(req, FERRY_ECANCELED, "cancelled by the caller");
}

void ferry_http_request_pause(struct ferry_http_request *req)
{
	if (!req || req->paused || req->state == FERRY__REQ_DONE)
		return;
	req->paused = true;
	if (req->conn && req->conn->state >= FERRY__CONN_SEND)
		ferry__conn_pause(req->conn);
}

void ferry_http_request_resume(struct ferry_http_request *req)
{
	if (!req || !req->paused || req->state == FERRY__REQ_DONE)
		return;
	req->paused = false;
	if (req->conn && req->conn->state >= FERRY__CONN_SEND)
		ferry__conn_resume(req->conn);
}

int ferry_http_request_body_into(struct ferry_http_request *req, void *buf,
				 size_t cap, void (*release)(void *buf))
{
	/* A decoded body is not the bytes received: no place to put them. */
	if (!req || !buf || !release || req->state != FERRY__REQ_ACTIVE ||
	    !req->in_cb || !req->head_seen || req->into_buf ||
	    ferry__decode_active(req))
		return FERRY_EINVAL;
	req->into_buf = buf;
	req->into_cap = cap;
	req->into_base = req->body_received;
	req->into_release = release;
	return 0;
}

void ferry_http_request_body_ready(struct ferry_http_request *req)
{
	if (req && req->conn && req->state == FERRY__REQ_ACTIVE)
		ferry__conn_body_ready(req->conn);
}

/* ------------------------------------------------------------------ */
/* Accessors                                                             */

static const struct ferry__h1_resp *
ferry__req_parser(const struct ferry_http_request *req)
{
	if (!req || !req->head_seen || !req->conn)
		return NULL;
	return &req->conn->parser;
}

int ferry_http_response_status(const struct ferry_http_request *req)
{
	return req ? req->status : 0;
}

int ferry_http_response_minor(const struct ferry_http_request *req)
{
	const struct ferry__h1_resp *p = ferry__req_parser(req);

	return p ? ferry__h1_resp_minor(p) : -1;
}

const char *ferry_http_response_reason(const struct ferry_http_request *req,
				       size_t *len)
{
	const struct ferry__h1_resp *p = ferry__req_parser(req);

	if (!p) {
		if (len)
			*len = 0;
		return NULL;
	}
	return ferry__h1_resp_reason(p, len);
}

size_t ferry_http_response_header_count(const struct ferry_http_request *req)
{
	const struct ferry__h1_resp *p = ferry__req_parser(req);

	return p ? ferry__h1_resp_header_count(p) : 0;
}

bool ferry_http_response_header_at(const struct ferry_http_request *req,
				   size_t i, struct ferry_http_header *out)
{
	const struct ferry__h1_resp *p = ferry__req_parser(req);
	struct ferry__h1_header h;

	if (!p || !ferry__h1_resp_header_at(p, i, &h))
		return false;
	*out = (struct ferry_http_header){ h.name, h.name_len, h.value,
					   h.value_len };
	return true;
}

const char *ferry_http_response_header(const struct ferry_http_request *req,
				       const char *name, size_t *len)
{
	const struct ferry__h1_resp *p = ferry__req_parser(req);

	return p && name ? ferry__h1_resp_header(p, name, len) : NULL;
}

const struct ferry_url *
ferry_http_request_url(const struct ferry_http_request *req)
{
	return &req->url;
}

unsigned ferry_http_request_redirects(const struct ferry_http_request *req)
{
	return req->redirects;
}

unsigned ferry_http_request_attempts(const struct ferry_http_request *req)
{
	return req ? req->attempts : 0;
}

uint64_t ferry_http_request_body_received(const struct ferry_http_request *req)
{
	return req ? req->body_received : 0;
}

const struct ferry_url *
ferry_http_request_proxy(const struct ferry_http_request *req)
{
	if (!req || (req->route.kind != FERRY__ROUTE_FORWARD &&
		     req->route.kind != FERRY__ROUTE_TUNNEL))
		return NULL;
	return &req->route.proxy->url;
}

bool ferry_http_request_reused(const struct ferry_http_request *req)
{
	return req->reused;
}

static uint64_t ferry__since_start(const struct ferry_http_request *req,
				   uint64_t t)
{
	return t > req->t_start ? t - req->t_start : 0;
}

void ferry_http_request_timings(const struct ferry_http_request *req,
				struct ferry_http_timings *t)
{
	t->namelookup_ns = ferry__since_start(req, req->t_resolved);
	t->connect_ns = ferry__since_start(req, req->t_connected);
	t->appconnect_ns = ferry__since_start(req, req->t_tls_done);
	t->starttransfer_ns = ferry__since_start(req, req->t_first);
}

/* ------------------------------------------------------------------ */
/* The connection's owner: what conn.c reports, handled here             */

/*
 * The connection under req failed. The request fails too, unless this is
 * the case the retry rule covers: an idempotent request on a reused
 * connection, before any response byte (the server closed a keep-alive
 * connection as we sent on it). Then it goes once more, on a new
 * connection. The connection is closed either way.
 */
static void ferry__req_conn_fail(struct ferry_http_request *req,
				 struct ferry__conn *cn, int err,
				 const char *why, bool no_response)
{
	if (no_response && req->reused && !req->retried && !req->head_seen &&
	    ferry__req_idempotent(req) && !req->body_fn_started) {
		cn->req = NULL;
		req->conn = NULL;
		req->retried = true;
		req->fresh_conn = true;
		req->client->retries++;
		ferry__conn_close(cn);
		if (ferry__req_wait(req, true) < 0)
			ferry__req_fail(req, -ENOMEM, "retry: out of memory");
		return;
	}
	if (!req->in_cb || !req->pending_err)
		snprintf(req->detail, sizeof(req->detail), "%s", why);
	/* Detaches req; a connection that was still connecting would be
	 * kept for the pool, which this one must not be. */
	ferry__req_fail_detail(req, err);
	ferry__conn_close(cn);
}

/* The producer's next piece of the request body (its result), or
 * FERRY__REQ_FAILED when a cancel from inside it failed the request. */
static int ferry__req_pull(struct ferry_http_request *req, const void **data,
			   size_t *len)
{
	int r;

	req->body_fn_started = true;
	req->in_cb = true;
	r = req->body_fn(req->body_ctx, req, data, len);
	req->in_cb = false;
	if (ferry__req_check_pending(req))
		return FERRY__REQ_FAILED;
	return r;
}

const struct ferry__conn_owner ferry__req_conn_owner = {
	.head = ferry__req_head,
	.body = ferry__req_body,
	.pull = ferry__req_pull,
	.complete = ferry__req_complete,
	.fail = ferry__req_conn_fail,
	.dispatch = ferry__client_dispatch,
	.slot_freed = ferry__client_slot_freed,
};
