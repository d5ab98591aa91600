/*
 * conn.c - one HTTP/1.1 connection as a state machine over a transport.
 *
 * Life of a connection (enum ferry__conn_state, in order):
 *
 *   START      the transport connects (resolve, connect, CONNECT through
 *              a proxy, TLS handshakes: transport.h); ready() ends it
 *   SEND       the request head and body go out (short sends resumed);
 *              the response may already be read
 *   RECV       the request is out; the response is read
 *   IDLE       back in the origin's pool, reading, so EOF or stray bytes
 *              from the server close it at once
 *   CLOSING    the transport closes; once it says closed(), the
 *              connection is freed in the loop's close phase
 *
 * Bytes: the transport hands up received buffers (ring buffers over TCP,
 * spills of plaintext over TLS), each with one reference that the
 * connection's input queue takes; ferry__conn_pump() feeds the queue to the
 * response parser, zero-copy, and drops a buffer's reference when it is
 * parsed. on_body may add references.
 *
 * Direct receive: when the request gave a buffer for its body
 * (ferry_http_request_body_into), the body is framed by Content-Length
 * and at least FERRY__DIRECT_MIN of it is left, the connection stops the
 * multishot recv and, once the transport says it is drained, receives
 * straight into the buffer, at most the bytes still due per op (never a
 * byte of what follows), until the body is whole; those bytes go through
 * the queue and the parser like any others (in->ext: no copy, no
 * reference). A request that ends with such a recv in flight leaves its
 * buffer to the connection (ferry__conn_adopt_body), which is closing
 * then, and releases it when it is freed: after the transport's closed(),
 * so after the op's completion. Sending is one path: the iovecs
 * (head, body pieces) go to the transport, which reports what it took.
 *
 * Upward, the connection reports to its owner (struct ferry__conn_owner,
 * request.c's table): head, body, the end of a response, failures, and
 * free slots for the pool. It calls nothing in client.c or request.c.
 *
 * Reentrancy: callbacks made from here (on_head, on_body, body_fn, and
 * on_done through the owner) may cancel requests, start new ones or
 * close the client. A connection is never freed while code may still use
 * it: closing only starts the transport's close, and the memory goes in
 * the loop's close phase (ferry_loop_close_later), after every callback
 * of the turn has returned.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "grow.h"
#include "util.h"
#include "internal.h"
#include "transport.h"

static void ferry__conn_pump(struct ferry__conn *cn);
static void ferry__conn_send_more(struct ferry__conn *cn);
static void ferry__conn_shut(struct ferry__conn *cn);
static void ferry__conn_arm_recv(struct ferry__conn *cn);
static void ferry__conn_input_ended(struct ferry__conn *cn);

static struct ferry_loop *ferry__conn_loop(const struct ferry__conn *cn)
{
	return cn->client->loop;
}

static uint64_t ferry__req_read_timeout_ns(const struct ferry__conn *cn)
{
	uint32_t ms = cn->client->opts.read_timeout_ms;

	if (cn->req && cn->req->read_timeout_ms)
		ms = cn->req->read_timeout_ms;
	return ms == FERRY_HTTP_NO_TIMEOUT ? 0 : ms * FERRY__MS;
}

/*
 * Make cn's timer fire by @deadline. One already armed to fire no later
 * stays as it is: the handler (ferry__conn_timer_fn) checks what is really due
 * and re-arms for the rest, so a keep-alive connection moves no timer in
 * the heap per request, at the cost of a spare turn per timeout period.
 */
static void ferry__conn_timer_by(struct ferry__conn *cn, uint64_t deadline)
{
	if (!ferry_timer_active(&cn->timer) ||
	    ferry_timer_deadline(&cn->timer) > deadline)
		ferry_timer_start(ferry__conn_loop(cn), &cn->timer, deadline);
}

/* Report err from the timer, on a later turn: used where failing at once
 * would call back into code that is still setting up. @why (may be NULL:
 * the code's own words) is copied. */
static void ferry__conn_fail_soon(struct ferry__conn *cn, int err,
				  const char *why)
{
	if (!cn->soon_err) {
		cn->soon_err = err;
		free(cn->soon_why);
		cn->soon_why = why ? strdup(why) : NULL;
	}
	ferry_timer_start(ferry__conn_loop(cn), &cn->timer, 0);
}

/* ------------------------------------------------------------------ */
/* Input queue: received buffers in order                               */

/* Queue @in (its reference too). 0 or -ENOMEM (@in left to the caller). */
static int ferry__input_push(struct ferry__conn *cn,
			     const struct ferry__input *in)
{
	if (cn->nin == cn->in_cap) {
		size_t bytes = cn->in_cap * sizeof(*cn->in);
		struct ferry__input *q = ferry__grow(cn->in, &bytes,
				(cn->nin + 1) * sizeof(*q), 4 * sizeof(*q));

		if (!q)
			return -ENOMEM;
		cn->in = q;
		cn->in_cap = (unsigned)(bytes / sizeof(*q));
	}
	cn->in[cn->nin++] = *in;
	return 0;
}

static void ferry__conn_input_unref(struct ferry__conn *cn,
				    const struct ferry__input *in)
{
	ferry__input_unref(cn->client, in);
}

static const char *ferry__conn_input_data(const struct ferry__conn *cn,
					  const struct ferry__input *in)
{
	return ferry__input_data(cn->client, in);
}

/*
 * Copy ring buffers queued into spills of their own, so that they go back
 * to the ring at once. Only a paused connection does this, for the
 * buffers that arrived before its recv stopped; it runs on each of them
 * as it comes, so each byte is copied at most once (spills already made
 * stay as they are). Returns 0 or -ENOMEM (the buffers not yet copied
 * stay queued).
 *
 * Only as many as it takes to keep a quarter of the ring free, oldest
 * first: a reader that pauses for a moment (a stream at its high-water
 * mark, which a receive bundle of many buffers reaches in one go) would
 * otherwise copy what it is about to read anyway, while a reader that
 * does not read still cannot keep the other connections from receiving.
 */
static int ferry__input_spill(struct ferry__conn *cn)
{
	struct ferry_http_client *c = cn->client;
	unsigned keep_free = c->opts.recv_buf_count / 4;

	for (unsigned i = 0; i < cn->nin; i++) {
		struct ferry__input *in = &cn->in[i];
		struct ferry__input copy;

		if (ferry_bufring_available(c->br) > keep_free)
			break;
		if (in->spill || in->ext)
			continue;	/* holds no ring buffer */
		if (ferry__input_copy(c, &copy, ferry__conn_input_data(cn, in),
				      in->len) < 0)
			return -ENOMEM;
		ferry__conn_input_unref(cn, in);
		*in = copy;
	}
	return 0;
}

static void ferry__input_pop(struct ferry__conn *cn)
{
	ferry__conn_input_unref(cn, &cn->in[0]);
	cn->nin--;
	memmove(cn->in, cn->in + 1, cn->nin * sizeof(*cn->in));
}

static void ferry__input_drop(struct ferry__conn *cn)
{
	while (cn->nin)
		ferry__input_pop(cn);
}

/* ------------------------------------------------------------------ */
/* Errors on a connection                                                */

/*
 * Something failed on cn. The owner fails the request it serves, or
 * retries it on a new connection when the retry rule allows (see
 * request.c); @no_response says no byte of a response came yet. The
 * connection is closed either way.
 */
static void ferry__conn_error(struct ferry__conn *cn, int err, const char *fmt,
			      ...) __attribute__((format(printf, 3, 4)));

static void ferry__conn_error(struct ferry__conn *cn, int err, const char *fmt,
			      ...)
{
	struct ferry_http_request *req = cn->req;
	char why[FERRY_HTTP_DETAIL_MAX];
	va_list ap;

	if (!req) {
		ferry__conn_close(cn);
		return;
	}
	va_start(ap, fmt);
	ferry__vwhyf(why, sizeof(why), fmt, ap);
	va_end(ap);
	cn->owner->fail(req, cn, err, why,
			cn->state >= FERRY__CONN_SEND &&
				ferry__h1_resp_idle(&cn->parser));
}

/* ------------------------------------------------------------------ */
/* What the transport reports                                             */

static void ferry__conn_tp_ready(void *ctx)
{
	struct ferry__conn *cn = ctx;

	if (cn->req)
		ferry__conn_assign(cn, cn->req);
	else
		ferry__conn_detach(cn, true);
}

static void ferry__conn_tp_input(void *ctx, struct ferry__input *in)
{
	struct ferry__conn *cn = ctx;

	if (cn->state == FERRY__CONN_CLOSING) {
		ferry__conn_input_unref(cn, in);
		return;
	}
	if (in->ext)
		cn->direct_busy = false;
	/* The turn's clock, read as the wait that brought these bytes
	 * ended: one clock read per turn, not one per response. */
	if (cn->req && !cn->req->t_first && cn->state >= FERRY__CONN_SEND)
		cn->req->t_first = ferry_loop_now(ferry__conn_loop(cn));
	if (ferry__input_push(cn, in) < 0) {
		ferry__conn_input_unref(cn, in);
		if (!cn->rx_err)
			cn->rx_err = -ENOMEM;
	}
	if (cn->req && cn->req->paused && ferry__input_spill(cn) < 0 &&
	    !cn->rx_err)
		cn->rx_err = -ENOMEM;
	ferry__conn_pump(cn);
}

static void ferry__conn_tp_input_end(void *ctx, int err)
{
	struct ferry__conn *cn = ctx;

	cn->direct_busy = false;
	if (err == 0) {
		cn->eof = true;
	} else if (err == FERRY_ETLS_TRUNCATED) {
		cn->eof = true;
		cn->eof_unverified = true;
	} else if (!cn->rx_err) {
		cn->rx_err = err;
	}
	if (cn->state != FERRY__CONN_CLOSING)
		ferry__conn_pump(cn);
}

static void ferry__iov_advance(struct ferry__conn *cn, size_t n)
{
	unsigned i = 0;

	while (i < cn->niov && n >= cn->iov[i].iov_len)
		n -= cn->iov[i++].iov_len;
	if (i < cn->niov) {
		cn->iov[i].iov_base = (char *)cn->iov[i].iov_base + n;
		cn->iov[i].iov_len -= n;
	}
	memmove(cn->iov, cn->iov + i, (cn->niov - i) * sizeof(cn->iov[0]));
	cn->niov -= i;
}

static void ferry__conn_tp_sent(void *ctx, size_t n)
{
	struct ferry__conn *cn = ctx;

	cn->sending = false;
	if (cn->state != FERRY__CONN_SEND)
		return;
	ferry__iov_advance(cn, n);
	ferry__conn_send_more(cn);
}

static void ferry__conn_tp_error(void *ctx, int err, const char *why)
{
	struct ferry__conn *cn = ctx;

	cn->sending = false;
	if (cn->state == FERRY__CONN_CLOSING)
		return;
	if (cn->starting) {
		/* Inside ferry__conn_new: fail from a later turn. */
		ferry__conn_fail_soon(cn, err, why);
		return;
	}
	ferry__conn_error(cn, err, "%s", why);
}

/* The multishot recv stopped for a direct receive: go on with it. */
static void ferry__conn_tp_drained(void *ctx)
{
	struct ferry__conn *cn = ctx;

	if (!cn->direct_wait || cn->state == FERRY__CONN_CLOSING)
		return;
	cn->direct_wait = false;
	ferry__conn_pump(cn);
}

static void ferry__conn_free(struct ferry_closing *cl)
{
	struct ferry__conn *cn = ferry__container_of(cl, struct ferry__conn,
						     closing);
	struct ferry_http_client *c = cn->client;

	/* The transport is closed: no op writes into it any more. */
	if (cn->orphan)
		cn->orphan_release(cn->orphan);
	ferry__list_del(&cn->link);
	ferry__h1_resp_free(&cn->parser);
	ferry__transport_free(cn->tp);
	free(cn->in);
	free(cn->soon_why);
	free(cn);
	ferry__client_reap_later(c);
}

static void ferry__conn_tp_closed(void *ctx)
{
	struct ferry__conn *cn = ctx;

	cn->closing.fn = ferry__conn_free;
	ferry_loop_close_later(ferry__conn_loop(cn), &cn->closing);
}

static const struct ferry__transport_up conn_up = {
	.ready = ferry__conn_tp_ready,
	.input = ferry__conn_tp_input,
	.input_end = ferry__conn_tp_input_end,
	.sent = ferry__conn_tp_sent,
	.error = ferry__conn_tp_error,
	.closed = ferry__conn_tp_closed,
	.drained = ferry__conn_tp_drained,
};

/* ------------------------------------------------------------------ */
/* SEND                                                                  */

static void ferry__iov_add(struct ferry__conn *cn, const void *p, size_t n)
{
	if (n)
		cn->iov[cn->niov++] = (struct iovec){ (void *)p, n };
}

/*
 * Pull the next piece of a producer body into the iov. Returns 1 with a
 * piece (or the last-chunk) queued, 0 when the body is complete, or < 0
 * after failing the request (then cn->req is gone); BODY_WAIT leaves
 * nothing queued.
 */
static int ferry__conn_pull_body(struct ferry__conn *cn)
{
	struct ferry_http_request *req = cn->req;
	const void *data = NULL;
	size_t len = 0;
	bool chunked = req->body_fn_len < 0;
	int r;

	if (cn->body_end_sent)
		return 0;
	r = cn->owner->pull(req, &data, &len);
	if (r == FERRY__REQ_FAILED)
		return -1;
	if (r == FERRY_HTTP_BODY_WAIT) {
		cn->body_wait = true;
		return FERRY_HTTP_BODY_WAIT;
	}
	if (r < 0) {
		ferry__conn_error(cn, r, "request body producer: %s",
				  ferry_strerror(r));
		return -1;
	}
	if (r == 0) {
		cn->body_end_sent = true;
		if (chunked) {
			ferry__iov_add(cn, FERRY__H1_CHUNK_LAST,
				       sizeof(FERRY__H1_CHUNK_LAST) - 1);
			return 1;
		}
		if (req->body_fn_sent != (uint64_t)req->body_fn_len) {
			ferry__conn_error(
				cn, FERRY_EINVAL,
				"request body producer ended after %llu of %lld bytes",
				(unsigned long long)req->body_fn_sent,
				(long long)req->body_fn_len);
			return -1;
		}
		return 0;
	}
	if (!data || !len) {
		ferry__conn_error(cn, FERRY_EINVAL,
				  "request body producer gave an empty piece");
		return -1;
	}
	if (!chunked && req->body_fn_sent + len > (uint64_t)req->body_fn_len) {
		ferry__conn_error(
			cn, FERRY_EINVAL,
			"request body producer gave more than %lld bytes",
			(long long)req->body_fn_len);
		return -1;
	}
	req->body_fn_sent += len;
	if (chunked) {
		ferry__iov_add(cn, cn->chunk_head,
			       ferry__h1_chunk_head(cn->chunk_head, len));
		ferry__iov_add(cn, data, len);
		ferry__iov_add(cn, FERRY__H1_CHUNK_TAIL, 2);
	} else {
		ferry__iov_add(cn, data, len);
	}
	return 1;
}

/* Send what the iov holds, or queue the next piece, or finish sending:
 * the one send path, whatever the transport. */
static void ferry__conn_send_more(struct ferry__conn *cn)
{
	struct ferry_http_request *req = cn->req;
	int err;

	if (!req || cn->state != FERRY__CONN_SEND || cn->sending)
		return;
	if (!cn->niov && req->body_kind == FERRY__BODY_PRODUCER && !cn->body_wait) {
		int r = ferry__conn_pull_body(cn);

		if (r < 0)
			return;
	}
	if (cn->niov) {
		err = ferry__transport_send(cn->tp, cn->iov, cn->niov);
		if (err < 0)
			ferry__conn_fail_soon(cn, err, NULL);
		else
			cn->sending = true;
		return;
	}
	if (cn->body_wait)
		return;
	/* Everything is out: from here on only the response matters. */
	cn->state = FERRY__CONN_RECV;
	cn->clock.last_io = ferry_loop_now(ferry__conn_loop(cn));
}

/*
 * The request's connection events are its connection's, when the
 * connection was opened for this attempt; on a pooled one they happened
 * now, as the request took it.
 */
void ferry__conn_note_times(struct ferry__conn *cn,
			    struct ferry_http_request *req)
{
	uint64_t now = ferry_time_now();
	bool fresh = cn->served == 0 && cn->clock.t_connected >= req->t_start;

	req->t_resolved = fresh && cn->clock.t_resolved ? cn->clock.t_resolved
							 : now;
	req->t_connected = fresh ? cn->clock.t_connected : now;
	req->t_tls_done = !cn->clock.t_tls_done ? 0
			  : fresh ? cn->clock.t_tls_done : now;
	req->t_first = 0;
}

/*
 * ferry__conn_assign - start req on connected, idle cn: the request head
 * (written by request.c) and a buffer body go out in one send.
 */
void ferry__conn_assign(struct ferry__conn *cn, struct ferry_http_request *req)
{
	struct ferry_http_client *c = cn->client;
	uint64_t rt;

	if (cn->state == FERRY__CONN_IDLE) {
		ferry__list_del(&cn->pool);
		c->nidle--;
	}
	cn->req = req;
	req->conn = cn;
	req->state = FERRY__REQ_ACTIVE;
	req->reused = cn->served > 0;
	ferry__conn_note_times(cn, req);
	cn->reusable = !req->wants_close;
	cn->body_wait = false;
	cn->body_end_sent = false;
	cn->direct = false;
	cn->direct_wait = false;
	cn->niov = 0;
	ferry__h1_resp_start(&cn->parser, req->method);
	ferry__iov_add(cn, req->out.data, req->out.len);
	if (req->body_kind == FERRY__BODY_BUFFER)
		ferry__iov_add(cn, req->body, req->body_len);
	cn->state = FERRY__CONN_SEND;
	cn->clock.last_io = ferry_loop_now(c->loop);
	rt = ferry__req_read_timeout_ns(cn);
	if (rt)
		ferry__conn_timer_by(cn, cn->clock.last_io + rt);
	else
		ferry_timer_stop(c->loop, &cn->timer);
	/* The transport reads from its start or from the pool on. */
	ferry__conn_send_more(cn);
}

void ferry__conn_body_ready(struct ferry__conn *cn)
{
	if (!cn->body_wait)
		return;
	cn->body_wait = false;
	cn->body_kick = true;
	ferry_timer_start(ferry__conn_loop(cn), &cn->timer, 0);
}

/* ------------------------------------------------------------------ */
/* RECV                                                                  */

static void ferry__conn_arm_recv(struct ferry__conn *cn)
{
	int err;

	if (cn->eof || cn->rx_err || cn->state == FERRY__CONN_CLOSING)
		return;
	err = ferry__transport_read(cn->tp, true);
	if (err < 0)
		cn->rx_err = err;
}

/*
 * Stop taking buffers for a paused request: the ring is shared, and a
 * paused reader must not drain it. What the transport still hands over
 * waits in the input queue, copied out of the ring.
 */
static void ferry__conn_stop_recv(struct ferry__conn *cn)
{
	if (ferry__input_spill(cn) < 0 && !cn->rx_err)
		cn->rx_err = -ENOMEM;
	ferry__transport_read(cn->tp, false);
}

/*
 * Receive the rest of the body straight into the request's buffer (see
 * the top of the file)? True when that is under way: a recv in flight,
 * or the multishot recv still stopping (drained() goes on); false to read
 * through the ring as usual. Called with the input queue empty.
 */
static bool ferry__conn_direct(struct ferry__conn *cn)
{
	struct ferry_http_request *req = cn->req;
	uint64_t left = ferry__h1_resp_body_left(&cn->parser);
	uint64_t k;
	int err;

	if (!req->into_buf || !left || !cn->tp->cls->recv_into ||
	    cn->state != FERRY__CONN_RECV || ferry__decode_active(req) ||
	    (!cn->direct && left < FERRY__DIRECT_MIN))
		goto ring;
	k = req->body_received - req->into_base;
	if (k > req->into_cap || left > req->into_cap - k)
		goto ring;
	/* Every time, not just the first: whatever turned reading on
	 * meanwhile, the ring must not take this body's bytes. */
	cn->direct = true;
	ferry__transport_read(cn->tp, false);
	err = cn->tp->cls->recv_into(cn->tp, req->into_buf + k, (size_t)left);
	if (err == -EBUSY) {
		cn->direct_wait = true;
		return true;
	}
	if (err < 0) {
		cn->rx_err = err;
		ferry__conn_input_ended(cn);
		return true;
	}
	cn->direct_busy = true;
	return true;
ring:
	cn->direct = false;
	return false;
}

void ferry__conn_adopt_body(struct ferry__conn *cn,
			    struct ferry_http_request *req)
{
	if (!cn->direct_busy || !req->into_buf || cn->orphan)
		return;
	cn->orphan = req->into_buf;
	cn->orphan_release = req->into_release;
	req->into_buf = NULL;
}

/* The connection saw EOF or an error with the request still owed. */
static void ferry__conn_input_ended(struct ferry__conn *cn)
{
	struct ferry_http_request *req = cn->req;
	int r;

	if (cn->rx_err) {
		ferry__conn_error(cn, cn->rx_err, "recv: %s%s",
				  ferry_strerrorname(cn->rx_err),
				  ferry__h1_resp_idle(&cn->parser)
					  ? " before any response byte"
					  : "");
		return;
	}
	r = ferry__h1_resp_finish(&cn->parser);
	if (r == FERRY__H1_DONE && cn->eof_unverified) {
		/* The body ran to the close, but the transport cannot vouch
		 * for that close (TLS without close_notify): an attacker
		 * could have cut it short. */
		ferry__conn_error(
			cn, FERRY_ETLS_TRUNCATED,
			"TLS: connection closed without close_notify before the end of a close-delimited body");
		return;
	}
	if (r == FERRY__H1_DONE) {
		cn->req = NULL;
		cn->owner->complete(req, cn, false);
		return;
	}
	ferry__conn_error(cn, r, "%s", ferry__h1_resp_why(&cn->parser));
}

/*
 * The rest of req's response is not worth reading (a redirect's long
 * body): the connection closes, the request goes on without it.
 */
static void ferry__conn_abandon(struct ferry__conn *cn,
				struct ferry_http_request *req)
{
	ferry__input_drop(cn);
	cn->req = NULL;
	cn->owner->complete(req, cn, false);
}

/*
 * Feed the input queue to the parser while the request wants bytes.
 * cn may be CLOSING afterwards (its memory stays until the close phase).
 */
static void ferry__conn_pump(struct ferry__conn *cn)
{
	if (cn->pumping)
		return;
	cn->pumping = true;
	/* A body decoder a pause stopped mid-slice goes on first. */
	if (cn->req && ferry__decode_drain(cn->req) < 0)
		goto out;
	while (cn->nin) {
		struct ferry_http_request *req = cn->req;
		struct ferry__input *in = &cn->in[0];
		struct ferry__h1_slice slice = { 0 };
		size_t used = 0;
		bool discard = false;
		int ev, r;

		if (!req || cn->state == FERRY__CONN_IDLE) {
			/* Bytes nobody asked for: the server is confused or
			 * closing; either way the connection is done. */
			ferry__conn_close(cn);
			goto out;
		}
		if (req->paused) {
			ferry__conn_stop_recv(cn);
			goto out;
		}
		ev = ferry__h1_resp_feed(&cn->parser,
					 ferry__conn_input_data(cn, in),
					 in->len, &used, &slice);
		in->off += (uint32_t)used;
		in->len -= (uint32_t)used;
		switch (ev) {
		case FERRY__H1_NEED_MORE:
			ferry__input_pop(cn);
			break;
		case FERRY__H1_HEAD:
			r = cn->owner->head(req, &discard);
			if (r < 0)
				goto out;	/* req failed, conn closing */
			if (r == FERRY__REQ_ABANDON) {
				ferry__conn_abandon(cn, req);
				goto out;
			}
			break;
		case FERRY__H1_BODY:
			r = cn->owner->body(req, slice.data, slice.len, in);
			if (r < 0)
				goto out;
			if (r == FERRY__REQ_ABANDON) {
				ferry__conn_abandon(cn, req);
				goto out;
			}
			break;
		case FERRY__H1_DONE: {
			/* Bytes after the response: ferry never pipelines,
			 * so the server is out of step. Do not reuse. */
			bool reuse = cn->reusable && in->len == 0 && cn->nin == 1 &&
				     !cn->eof && !cn->rx_err &&
				     cn->state == FERRY__CONN_RECV &&
				     ferry__h1_resp_keep_alive(&cn->parser);

			ferry__input_pop(cn);
			if (!reuse)
				ferry__input_drop(cn);
			cn->req = NULL;
			cn->served++;
			cn->owner->complete(req, cn, reuse);
			goto out;
		}
		default:
			ferry__conn_error(cn, ev, "%s",
					  ferry__h1_resp_why(&cn->parser));
			goto out;
		}
	}
	if (cn->state == FERRY__CONN_CLOSING)
		goto out;
	if (!cn->req) {
		if (cn->eof || cn->rx_err)
			ferry__conn_close(cn);
		else
			ferry__conn_arm_recv(cn);
		goto out;
	}
	if (cn->req->paused) {
		ferry__conn_stop_recv(cn);
		goto out;
	}
	if (cn->eof || cn->rx_err) {
		ferry__conn_input_ended(cn);
		goto out;
	}
	if (ferry__conn_direct(cn))
		goto out;
	ferry__conn_arm_recv(cn);
	if (cn->rx_err)
		ferry__conn_input_ended(cn);
out:
	cn->pumping = false;
}

void ferry__conn_pause(struct ferry__conn *cn)
{
	ferry_timer_stop(ferry__conn_loop(cn), &cn->timer);
	ferry__conn_stop_recv(cn);
}

void ferry__conn_resume(struct ferry__conn *cn)
{
	/* The queue is fed from the timer, not from inside resume (which
	 * may be called from a callback of this very connection). */
	cn->clock.last_io = ferry_time_now();
	ferry_timer_start(ferry__conn_loop(cn), &cn->timer, 0);
}

/* ------------------------------------------------------------------ */
/* Timer: read timeout, idle expiry, deferred work                       */

static void ferry__conn_timer_fn(struct ferry_timer *t)
{
	struct ferry__conn *cn = ferry__container_of(t, struct ferry__conn,
						     timer);
	uint64_t rt, now;

	switch (cn->state) {
	case FERRY__CONN_CLOSING:
		break;
	case FERRY__CONN_IDLE:
		/* The timer may be one set for the request before (see
		 * ferry__conn_timer_by): wait on until the idle deadline. */
		now = ferry_loop_now(cn->client->loop);
		if (!cn->soon_err && cn->idle_deadline && now < cn->idle_deadline)
			ferry_timer_start(cn->client->loop, t, cn->idle_deadline);
		else
			ferry__conn_close(cn);	/* idle too long */
		break;
	default:
		if (cn->soon_err) {
			int err = cn->soon_err;

			cn->soon_err = 0;
			ferry__conn_error(cn, err, "%s",
					  cn->soon_why ? cn->soon_why
						       : ferry_strerror(err));
			break;
		}
		now = ferry_time_now();
		if (cn->state < FERRY__CONN_SEND || !cn->req || cn->req->paused)
			break;
		rt = ferry__req_read_timeout_ns(cn);
		if (rt && now >= cn->clock.last_io + rt && !cn->body_wait) {
			ferry__conn_error(cn, FERRY_EREAD_TIMEOUT,
					  "no byte received for %llu ms",
					  (unsigned long long)(rt / FERRY__MS));
			break;
		}
		if (rt)
			ferry_timer_start(cn->client->loop, t,
					  (cn->body_wait ? now : cn->clock.last_io) + rt);
		if (cn->body_kick) {
			cn->body_kick = false;
			ferry__conn_send_more(cn);
			if (cn->state == FERRY__CONN_CLOSING || !cn->req)
				break;
		}
		ferry__conn_pump(cn);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Creation, pooling, closing                                             */

/*
 * The transport chain to the origin, by the route its requests take
 * (route.c): a TCP or Unix socket, maybe a proxy's CONNECT tunnel, maybe
 * TLS on top. 0 or a negative code.
 */
static int ferry__conn_open(struct ferry__conn *cn,
			    struct ferry_http_request *req)
{
	int err = ferry__route_connect(cn->client, cn->origin, &req->url,
				       &cn->clock, &cn->tp);

	if (err < 0)
		return err;
	ferry__transport_attach(cn->tp, &conn_up, cn);
	cn->starting = true;
	err = ferry__transport_start(cn->tp);
	cn->starting = false;
	return err;
}

struct ferry__conn *ferry__conn_new(struct ferry__origin *o,
				    struct ferry_http_request *req)
{
	struct ferry_http_client *c = o->client;
	struct ferry__h1_limits lim = { .max_head = c->opts.max_head,
					.max_interim = c->opts.max_interim };
	struct ferry__conn *cn = calloc(1, sizeof(*cn));
	int err;

	if (!cn)
		return NULL;
	cn->client = c;
	cn->owner = c->conn_owner;
	cn->origin = o;
	cn->timer.fn = ferry__conn_timer_fn;
	ferry__h1_resp_init(&cn->parser, &lim);
	ferry__list_add_tail(&c->conns, &cn->link);
	cn->counted = true;
	o->nconns++;
	c->nconns++;
	c->conns_opened++;
	cn->req = req;
	req->conn = cn;
	req->state = FERRY__REQ_ACTIVE;
	req->reused = false;
	cn->clock.connect_timeout_ms = req->connect_timeout_ms
					       ? req->connect_timeout_ms
					       : c->opts.connect_timeout_ms;
	cn->state = FERRY__CONN_START;
	err = ferry__conn_open(cn, req);
	if (err < 0)
		ferry__conn_fail_soon(cn, err, NULL);
	return cn;
}

/*
 * ferry__conn_detach - the request on cn is over (cn->req already NULL):
 * back to the pool when reuse allows, else close.
 */
void ferry__conn_detach(struct ferry__conn *cn, bool reuse)
{
	struct ferry_http_client *c = cn->client;
	struct ferry__origin *o = cn->origin;

	if (cn->state == FERRY__CONN_CLOSING)
		return;
	ferry__conn_arm_recv(cn);
	/* A send still in the transport's hands belongs to the request
	 * that is over: such a stream is out of step, never reused. */
	if (!reuse || c->closing || !o || cn->eof || cn->rx_err || cn->nin ||
	    cn->sending) {
		ferry__conn_close(cn);
		return;
	}
	cn->state = FERRY__CONN_IDLE;
	cn->niov = 0;
	ferry__list_add_head(&o->idle, &cn->pool);
	c->nidle++;
	if (c->opts.idle_timeout_ms != FERRY_HTTP_NO_TIMEOUT) {
		cn->idle_deadline = ferry_loop_now(c->loop) +
				    c->opts.idle_timeout_ms * FERRY__MS;
		ferry__conn_timer_by(cn, cn->idle_deadline);
	} else {
		cn->idle_deadline = 0;
		ferry_timer_stop(c->loop, &cn->timer);
	}
	cn->owner->dispatch(c, o);
}

/* Stop counting cn and start closing it, without dispatching. */
static void ferry__conn_shut(struct ferry__conn *cn)
{
	struct ferry_http_client *c = cn->client;

	if (cn->state == FERRY__CONN_CLOSING)
		return;
	if (cn->state == FERRY__CONN_IDLE) {
		ferry__list_del(&cn->pool);
		c->nidle--;
	}
	if (cn->counted) {
		cn->counted = false;
		cn->origin->nconns--;
		c->nconns--;
	}
	if (cn->req) {
		/* Callers detach first; a request left here loses its conn. */
		ferry__conn_adopt_body(cn, cn->req);
		cn->req->conn = NULL;
		cn->req = NULL;
	}
	cn->state = FERRY__CONN_CLOSING;
	cn->origin = NULL;
	ferry_timer_stop(c->loop, &cn->timer);
	ferry__input_drop(cn);
	if (cn->tp)
		ferry__transport_close(cn->tp);	/* closed() frees cn */
	else
		ferry__conn_tp_closed(cn);
}

void ferry__conn_close(struct ferry__conn *cn)
{
	struct ferry__origin *o = cn->origin;

	if (cn->state == FERRY__CONN_CLOSING)
		return;
	ferry__conn_shut(cn);
	/* A slot is free: a waiting request may open a connection. */
	cn->owner->slot_freed(cn->client, o);
}

void ferry__conn_close_quiet(struct ferry__conn *cn)
{
	ferry__conn_shut(cn);
}
