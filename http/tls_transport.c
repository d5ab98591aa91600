/*
 * tls_transport.c - TLS over any transport: the BearSSL engine (tls.c,
 * behind tls.h) driven by the layer below's input and sends.
 *
 * Ciphertext from below is copied into the engine and its buffer goes
 * straight back to the ring; plaintext out of the engine goes up in spills
 * (copies), so parsing, pausing and kept buffers above work as over TCP.
 * The engine's records go down one send at a time. A send from above is
 * written into the engine (as much as one record buffer takes), flushed,
 * and reported sent once its records are out.
 *
 * Moved here from conn.c (its "TLS transport" section): the record pump
 * (ferry__tls_kick, ferry__tls_drain, ferry__tlst_feed, tls_input, ferry__tls_progress) is the same
 * code, reporting upward instead of touching the connection.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tls.h"
#include "transport.h"

struct tlst {
	struct ferry__transport t;
	struct ferry__transport *lower;
	struct ferry__tls *tls;
	const char *hop;		/* NULL: the origin */
	/* Ciphertext the engine could not take yet. */
	unsigned char *tls_pend;
	size_t tls_pend_len, tls_pend_cap;
	struct iovec rec;		/* the record send in flight */
	bool tls_sending;		/* a record send is in flight below */
	bool tls_closed;		/* close_notify received */
	bool tls_bye;			/* our close_notify tried */
	bool ready;			/* handshake done, ready() reported */
	bool ended;			/* input_end reported */
	bool closing;
	bool lower_eof;
	int lower_err;
	/* The send from above: plaintext taken into the engine, reported
	 * once its records are out. */
	bool up_sending;
	size_t up_taken;
	struct ferry_timer timer;	/* the handshake's deadline */
	uint64_t hs_deadline;		/* ns; handshake must end by then */
};

static void ferry__tls_progress(struct tlst *x);

static struct ferry_loop *ferry__tls_loop(const struct tlst *x)
{
	return x->t.client->loop;
}

/* Report a failure up, naming the hop when it is not the origin. */
static void ferry__tls_error(struct tlst *x, int err, const char *why)
{
	char buf[FERRY_HTTP_DETAIL_MAX];

	if (x->closing)
		return;
	if (x->hop) {
		/* "hop: why", cut to fit (no format: a cut is on purpose) */
		size_t h = strlen(x->hop), w = strlen(why);

		if (h + 2 >= sizeof(buf))
			h = 0;
		memcpy(buf, x->hop, h);
		memcpy(buf + h, ": ", 2);
		if (w > sizeof(buf) - h - 3)
			w = sizeof(buf) - h - 3;
		memcpy(buf + h + 2, why, w);
		buf[h + 2 + w] = '\0';
		why = buf;
	}
	x->t.up->error(x->t.up_ctx, err, why);
}

/* An engine failure: certificate problems keep their code; anything else
 * is a handshake failure before the handshake ended, a protocol error
 * after. */
static void ferry__tls_fail(struct tlst *x, int st, const char *why)
{
	if (st == FERRY_ETLS_HANDSHAKE && x->ready)
		st = FERRY_EPROTO;
	ferry__tls_error(x, st, why);
}

/* Send the engine's records, if it has some and the layer below is
 * free. */
static void ferry__tls_kick(struct tlst *x)
{
	size_t len;
	int err;

	if (x->tls_sending || x->closing)
		return;
	x->rec.iov_base = (void *)ferry__tls_out(x->tls, &len);
	if (!x->rec.iov_base)
		return;
	x->rec.iov_len = len;
	err = x->lower->cls->send(x->lower, &x->rec, 1, 0);
	if (err < 0) {
		char why[64];

		snprintf(why, sizeof(why), "send: %s", ferry_strerrorname(err));
		ferry__tls_error(x, err, why);
		return;
	}
	x->tls_sending = true;
}

/* Plaintext out of the engine, up in spills. */
static void ferry__tls_drain(struct tlst *x)
{
	const void *p;
	size_t len;

	while (!x->closing && (p = ferry__tls_read(x->tls, &len)) != NULL) {
		struct ferry__input in;

		if (ferry__input_copy(x->t.client, &in, p, len) < 0) {
			if (!x->ended) {
				x->ended = true;
				x->t.up->input_end(x->t.up_ctx, -ENOMEM);
			}
			return;
		}
		ferry__tls_read_ack(x->tls, len);
		x->t.up->input(x->t.up_ctx, &in);
	}
}

/* Feed as much of data as the engine takes; returns what it took. */
static size_t ferry__tlst_feed(struct tlst *x, const unsigned char *data,
			       size_t len)
{
	size_t done = 0;

	while (done < len && !x->closing) {
		size_t n = ferry__tls_feed(x->tls, data + done, len - done);

		if (!n) {
			/* It may take more once its plaintext is out. */
			ferry__tls_drain(x);
			n = ferry__tls_feed(x->tls, data + done, len - done);
			if (!n)
				break;
		}
		done += n;
	}
	ferry__tls_drain(x);
	return done;
}

static void ferry__tls_feed_pend(struct tlst *x)
{
	size_t n;

	if (!x->tls_pend_len)
		return;
	n = ferry__tlst_feed(x, x->tls_pend, x->tls_pend_len);
	x->tls_pend_len -= n;
	memmove(x->tls_pend, x->tls_pend + n, x->tls_pend_len);
}

/* Ciphertext received; what the engine cannot take yet waits. */
static void ferry__tls_input_bytes(struct tlst *x, const void *data, size_t len)
{
	size_t n = 0;

	if (!x->tls_pend_len)
		n = ferry__tlst_feed(x, data, len);
	if (n == len || x->closing)
		return;
	if (x->tls_pend_len + len - n > x->tls_pend_cap) {
		size_t cap = x->tls_pend_len + len - n;
		unsigned char *p = realloc(x->tls_pend, cap);

		if (!p) {
			if (!x->lower_err)
				x->lower_err = -ENOMEM;
			return;
		}
		x->tls_pend = p;
		x->tls_pend_cap = cap;
	}
	memcpy(x->tls_pend + x->tls_pend_len, (const char *)data + n, len - n);
	x->tls_pend_len += len - n;
	ferry__tls_feed_pend(x);
}

/* The input ended: say whether the stream's end was authenticated. */
static void ferry__tls_end(struct tlst *x)
{
	int err;

	if (x->ended || x->closing)
		return;
	x->ended = true;
	if (x->lower_err)
		err = x->lower_err;
	else if (x->tls_closed || ferry__tls_peer_closed(x->tls))
		err = 0;
	else
		/* The body may run to the close, but TLS says nothing about
		 * that close: an attacker could have cut it short. */
		err = FERRY_ETLS_TRUNCATED;
	x->t.up->input_end(x->t.up_ctx, err);
}

/* The handshake is over: ready for application data. */
static void ferry__tls_handshake_done(struct tlst *x)
{
	x->ready = true;
	x->t.clock->t_tls_done = ferry_time_now();
	ferry__tls_session_save(x->tls);
	ferry_timer_stop(ferry__tls_loop(x), &x->timer);
	x->t.up->ready(x->t.up_ctx);
}

/*
 * Whatever happened (bytes in, records out), look at the engine: move
 * its plaintext up, send its records, notice failure, a clean close or
 * the end of the handshake.
 */
static void ferry__tls_progress(struct tlst *x)
{
	char why[FERRY_HTTP_DETAIL_MAX];
	int st;

	ferry__tls_feed_pend(x);
	ferry__tls_drain(x);
	if (x->closing)
		return;
	st = ferry__tls_status(x->tls, why, sizeof(why));
	if (st < 0) {
		ferry__tls_fail(x, st, why);
		return;
	}
	if (st == 1)
		x->tls_closed = true;	/* nothing more can come */
	ferry__tls_kick(x);
	if (x->closing)
		return;
	if (x->ready) {
		if (x->tls_closed || x->lower_eof || x->lower_err)
			ferry__tls_end(x);
		return;
	}
	if (!ferry__tls_ready(x->tls)) {
		if (x->lower_err) {
			snprintf(why, sizeof(why), "TLS handshake: recv: %s",
				 ferry_strerrorname(x->lower_err));
			ferry__tls_error(x, FERRY_ETLS_HANDSHAKE, why);
		} else if (x->lower_eof || x->tls_closed) {
			ferry__tls_error(
				x, FERRY_ETLS_HANDSHAKE,
				"TLS handshake: the server closed the connection");
		}
		return;
	}
	ferry__tls_handshake_done(x);
}

/* ------------------------------------------------------------------ */
/* What the layer below reports                                          */

static void ferry__tls_lower_ready(void *ctx)
{
	struct tlst *x = ctx;
	const struct ferry_http_client *c = x->t.client;

	/* After the connect: the client hello goes out, within
	 * connect_timeout_ms. */
	if (x->t.clock->connect_timeout_ms != FERRY_HTTP_NO_TIMEOUT) {
		x->hs_deadline = ferry_time_now() +
				 x->t.clock->connect_timeout_ms * FERRY__MS;
		ferry_timer_start(c->loop, &x->timer, x->hs_deadline);
	}
	ferry__tls_progress(x);
}

static void ferry__tls_lower_input(void *ctx, struct ferry__input *in)
{
	struct tlst *x = ctx;

	/* Ciphertext: into the engine, and the buffer goes straight back. */
	if (!x->closing && !x->ended)
		ferry__tls_input_bytes(x, ferry__input_data(x->t.client, in),
				       in->len);
	ferry__input_unref(x->t.client, in);
	if (!x->closing)
		ferry__tls_progress(x);
}

static void ferry__tls_lower_end(void *ctx, int err)
{
	struct tlst *x = ctx;

	if (err == 0)
		x->lower_eof = true;
	else if (!x->lower_err)
		x->lower_err = err;
	if (!x->closing)
		ferry__tls_progress(x);
}

/* A record send completed. */
static void ferry__tls_lower_sent(void *ctx, size_t n)
{
	struct tlst *x = ctx;
	size_t len;

	x->tls_sending = false;
	ferry__tls_out_ack(x->tls, n);
	if (x->closing) {
		/* The close_notify went out (or some of it): done. */
		x->lower->cls->close(x->lower);
		return;
	}
	ferry__tls_progress(x);
	if (x->closing || !x->up_sending || ferry__tls_out(x->tls, &len))
		return;
	x->up_sending = false;
	x->t.up->sent(x->t.up_ctx, x->up_taken);
}

static void ferry__tls_lower_error(void *ctx, int err, const char *why)
{
	struct tlst *x = ctx;

	if (x->closing) {
		x->tls_sending = false;
		x->lower->cls->close(x->lower);
		return;
	}
	x->t.up->error(x->t.up_ctx, err, why);
}

static void ferry__tls_lower_closed(void *ctx)
{
	struct tlst *x = ctx;

	x->t.up->closed(x->t.up_ctx);
}

static const struct ferry__transport_up tls_lower_up = {
	.ready = ferry__tls_lower_ready,
	.input = ferry__tls_lower_input,
	.input_end = ferry__tls_lower_end,
	.sent = ferry__tls_lower_sent,
	.error = ferry__tls_lower_error,
	.closed = ferry__tls_lower_closed,
};

static void ferry__tls_timer_fn(struct ferry_timer *tm)
{
	struct tlst *x = ferry__container_of(tm, struct tlst, timer);
	char why[80];

	if (x->ready || x->closing)
		return;
	if (ferry_time_now() < x->hs_deadline) {
		ferry_timer_start(ferry__tls_loop(x), tm, x->hs_deadline);
		return;
	}
	snprintf(why, sizeof(why), "TLS handshake not done within %u ms",
		 x->t.clock->connect_timeout_ms);
	ferry__tls_error(x, FERRY_ECONNECT_TIMEOUT, why);
}

/* ------------------------------------------------------------------ */
/* The class                                                             */

static int ferry__tls_start(struct ferry__transport *t)
{
	struct tlst *x = (struct tlst *)t;

	return x->lower->cls->start(x->lower);
}

/*
 * Plaintext from above into the engine (as much as its buffer takes),
 * the record closed and sent; sent() once it is out.
 */
static int ferry__tls_send(struct ferry__transport *t, const struct iovec *iov,
			   unsigned n, unsigned flags)
{
	struct tlst *x = (struct tlst *)t;
	size_t taken = 0, len;

	if (!x->ready || x->up_sending || x->closing)
		return -ENOTCONN;
	for (unsigned i = 0; i < n; i++) {
		size_t w = ferry__tls_write(x->tls, iov[i].iov_base,
					    iov[i].iov_len);

		taken += w;
		if (w < iov[i].iov_len)
			break;	/* buffer full: the rest goes next time */
	}
	ferry__tls_flush(x->tls);
	if (!ferry__tls_out(x->tls, &len)) {
		char why[FERRY_HTTP_DETAIL_MAX];
		int st = ferry__tls_status(x->tls, why, sizeof(why));

		/* Reported from here on as an error, as conn.c did. */
		ferry__tls_error(x, st < 0 ? st : FERRY_EPROTO,
				 st < 0 ? why : "TLS: engine refuses data");
		return 0;
	}
	x->up_sending = true;
	x->up_taken = taken;
	ferry__tls_kick(x);
	return 0;
}

static int ferry__tlst_read(struct ferry__transport *t, bool on)
{
	struct tlst *x = (struct tlst *)t;

	return x->lower->cls->read(x->lower, on);
}

/*
 * A TLS connection that finished its handshake sends close_notify before
 * the stream closes (RFC 5246 7.2.1), so the server can tell our close
 * from a truncation. Not when a record send is in flight (the engine's
 * output would be out of step with the stream), and never waiting
 * (FERRY__SEND_LAST), so a socket that cannot take the 31 bytes at once
 * closes without them. Returns true if the send is on its way.
 */
static bool ferry__tls_say_goodbye(struct tlst *x)
{
	size_t len;

	x->tls_bye = true;
	if (x->tls_sending || !x->ready)
		return false;
	ferry__tls_close(x->tls);
	x->rec.iov_base = (void *)ferry__tls_out(x->tls, &len);
	if (!x->rec.iov_base)
		return false;
	x->rec.iov_len = len;
	if (x->lower->cls->send(x->lower, &x->rec, 1, FERRY__SEND_LAST) < 0)
		return false;
	x->tls_sending = true;
	return true;
}

static void ferry__tlst_close(struct ferry__transport *t)
{
	struct tlst *x = (struct tlst *)t;

	if (x->closing)
		return;
	ferry_timer_stop(ferry__tls_loop(x), &x->timer);
	if (!x->tls_bye && ferry__tls_say_goodbye(x)) {
		x->closing = true;
		return;	/* the lower closes when the record is out */
	}
	x->closing = true;
	x->lower->cls->close(x->lower);
}

static void ferry__tlst_free(struct ferry__transport *t)
{
	struct tlst *x = (struct tlst *)t;

	ferry_timer_stop(ferry__tls_loop(x), &x->timer);
	ferry__transport_free(x->lower);
	ferry__tls_free(x->tls);
	free(x->tls_pend);
	free(x);
}

static const struct ferry__transport_class tls_class = {
	"tls",
	ferry__tls_start,
	ferry__tls_send,
	ferry__tlst_read,
	ferry__tlst_close,
	ferry__tlst_free,
};

int ferry__tls_transport_new(struct ferry_http_client *c,
			     struct ferry__transport_clock *clock,
			     struct ferry__transport *lower,
			     const char *host, size_t host_len,
			     bool ip_literal, const char *origin,
			     const char *hop, struct ferry__transport **tp)
{
	struct tlst *x = calloc(1, sizeof(*x));
	int err;

	*tp = NULL;
	if (!x) {
		ferry__transport_free(lower);
		return -ENOMEM;
	}
	err = ferry__tls_new(c->tls_cfg, host, host_len, ip_literal, origin,
			     &x->tls);
	if (err < 0) {
		ferry__transport_free(lower);
		free(x);
		return err;
	}
	x->t.cls = &tls_class;
	x->t.client = c;
	x->t.clock = clock;
	x->lower = lower;
	x->hop = hop;
	x->timer.fn = ferry__tls_timer_fn;
	ferry__transport_attach(lower, &tls_lower_up, x);
	*tp = &x->t;
	return 0;
}
