/*
 * tunnel.c - an HTTP CONNECT tunnel through a proxy, as a transport over
 * the transport that reaches the proxy (TCP, or TLS to an https proxy).
 *
 * States: CONNECTING (the layer below starts) -> ASKING (the CONNECT
 * request goes out, the answer's head is read, within connect_timeout_ms)
 * -> OPEN (bytes pass through both ways, untouched) -> CLOSING.
 *
 * A 2xx answer opens the tunnel; anything else fails it with
 * FERRY_EPROXY and a sentence with the status (407: the proxy wants
 * credentials, or refused the ones given). Bytes that came after the
 * answer's head belong to the origin and go up once the tunnel is open.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "internal.h"
#include "transport.h"
#include "util.h"

enum tunnel_state {
	TUNNEL_CONNECTING,
	TUNNEL_ASKING,
	TUNNEL_OPEN,
	TUNNEL_CLOSING,
};

struct tunnel {
	struct ferry__transport t;
	struct ferry__transport *lower;
	enum tunnel_state state;
	char *req;			/* the CONNECT request */
	size_t req_len, req_off;
	struct iovec iov;
	char *ans;			/* the answer so far */
	size_t ans_len, ans_cap;
	char *proxy;			/* "host:port" for sentences */
	struct ferry_timer timer;	/* the answer's deadline */
};

static struct ferry_loop *ferry__tunnel_loop(const struct tunnel *x)
{
	return x->t.client->loop;
}

static void ferry__tunnel_fail(struct tunnel *x, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ferry__tunnel_fail(struct tunnel *x, int err, const char *fmt, ...)
{
	va_list ap;

	if (x->state == TUNNEL_CLOSING)
		return;
	ferry_timer_stop(ferry__tunnel_loop(x), &x->timer);
	va_start(ap, fmt);
	ferry__transport_verror(&x->t, err, fmt, ap);
	va_end(ap);
}

/* Send the rest of the CONNECT request. */
static void ferry__tunnel_send(struct tunnel *x)
{
	int err;

	x->iov = (struct iovec){ x->req + x->req_off, x->req_len - x->req_off };
	err = x->lower->cls->send(x->lower, &x->iov, 1, 0);
	if (err < 0)
		ferry__tunnel_fail(x, err, "proxy %s: send: %s", x->proxy,
				   ferry_strerrorname(err));
}

/* The answer's status line: "HTTP/1.x NNN reason". */
static int ferry__tunnel_status(const char *a, size_t len)
{
	if (len < 12 || memcmp(a, "HTTP/1.", 7) != 0 || a[8] != ' ' ||
	    a[9] < '1' || a[9] > '5' || a[10] < '0' || a[10] > '9' ||
	    a[11] < '0' || a[11] > '9')
		return -1;
	return (a[9] - '0') * 100 + (a[10] - '0') * 10 + (a[11] - '0');
}

/* The head is whole (@head bytes of ans): open the tunnel or fail. */
static void ferry__tunnel_answered(struct tunnel *x, size_t head)
{
	int status = ferry__tunnel_status(x->ans, head);
	size_t rest = x->ans_len - head;
	const char *eol;

	ferry_timer_stop(ferry__tunnel_loop(x), &x->timer);
	if (status < 0) {
		ferry__tunnel_fail(
			x, FERRY_EPROXY,
			"proxy %s: the answer to CONNECT is not HTTP",
			x->proxy);
		return;
	}
	if (status < 200 || status > 299) {
		eol = memchr(x->ans, '\r', head);
		ferry__tunnel_fail(
			x, FERRY_EPROXY, "proxy %s: CONNECT answered %.*s%s",
			x->proxy,
			(int)((eol ? eol : x->ans + head) - (x->ans + 9)),
			x->ans + 9,
			status == 407 ? " (the proxy wants credentials, "
					"or refused the ones given)"
				      : "");
		return;
	}
	x->state = TUNNEL_OPEN;
	x->t.up->ready(x->t.up_ctx);
	if (rest && x->state == TUNNEL_OPEN) {
		/* The origin's first bytes came with the answer. */
		struct ferry__input in;

		if (ferry__input_copy(x->t.client, &in, x->ans + head,
				      rest) < 0) {
			x->t.up->input_end(x->t.up_ctx, -ENOMEM);
			return;
		}
		x->t.up->input(x->t.up_ctx, &in);
	}
	free(x->ans);
	x->ans = NULL;
}

/* Bytes of the answer: keep them until the head ends. */
static void ferry__tunnel_answer(struct tunnel *x, const char *data, size_t len)
{
	size_t max = x->t.client->opts.max_head;
	size_t from = x->ans_len > 3 ? x->ans_len - 3 : 0;
	char *end;

	if (x->ans_len + len > max) {
		ferry__tunnel_fail(
			x, FERRY_EPROXY,
			"proxy %s: the answer to CONNECT has no end within %zu bytes",
			x->proxy, max);
		return;
	}
	end = ferry__grow(x->ans, &x->ans_cap, x->ans_len + len + 1, 512);
	if (!end) {
		ferry__tunnel_fail(x, -ENOMEM, "proxy %s: out of memory",
				   x->proxy);
		return;
	}
	x->ans = end;
	memcpy(x->ans + x->ans_len, data, len);
	x->ans_len += len;
	x->ans[x->ans_len] = '\0';
	end = memmem(x->ans + from, x->ans_len - from, "\r\n\r\n", 4);
	if (end)
		ferry__tunnel_answered(x, (size_t)(end + 4 - x->ans));
}

/* ------------------------------------------------------------------ */
/* What the layer below reports                                          */

static void ferry__tunnel_lower_ready(void *ctx)
{
	struct tunnel *x = ctx;
	const struct ferry_http_client *c = x->t.client;

	x->state = TUNNEL_ASKING;
	if (x->t.clock->connect_timeout_ms != FERRY_HTTP_NO_TIMEOUT)
		ferry_timer_start(c->loop, &x->timer, ferry_time_now() +
				  x->t.clock->connect_timeout_ms * FERRY__MS);
	ferry__tunnel_send(x);
}

static void ferry__tunnel_lower_input(void *ctx, struct ferry__input *in)
{
	struct tunnel *x = ctx;

	switch (x->state) {
	case TUNNEL_OPEN:
		x->t.up->input(x->t.up_ctx, in);
		return;
	case TUNNEL_ASKING:
		ferry__tunnel_answer(x, ferry__input_data(x->t.client, in),
				     in->len);
		break;
	default:
		break;
	}
	ferry__input_unref(x->t.client, in);
}

static void ferry__tunnel_lower_end(void *ctx, int err)
{
	struct tunnel *x = ctx;

	if (x->state == TUNNEL_OPEN) {
		x->t.up->input_end(x->t.up_ctx, err);
		return;
	}
	if (x->state != TUNNEL_ASKING)
		return;
	if (err && err != FERRY_ETLS_TRUNCATED)
		ferry__tunnel_fail(
			x, FERRY_EPROXY,
			"proxy %s: recv: %s before the answer to CONNECT",
			x->proxy, ferry_strerrorname(err));
	else
		ferry__tunnel_fail(
			x, FERRY_EPROXY,
			"proxy %s: closed the connection before answering CONNECT",
			x->proxy);
}

static void ferry__tunnel_lower_sent(void *ctx, size_t n)
{
	struct tunnel *x = ctx;

	if (x->req_off < x->req_len) {
		/* The CONNECT request's own send (even if the answer came
		 * first): never the layer above's. */
		x->req_off += n;
		if (x->req_off < x->req_len && x->state == TUNNEL_ASKING)
			ferry__tunnel_send(x);
		return;
	}
	if (x->state == TUNNEL_OPEN)
		x->t.up->sent(x->t.up_ctx, n);
}

static void ferry__tunnel_lower_error(void *ctx, int err, const char *why)
{
	struct tunnel *x = ctx;

	if (x->state == TUNNEL_CLOSING)
		return;
	ferry_timer_stop(ferry__tunnel_loop(x), &x->timer);
	x->t.up->error(x->t.up_ctx, err, why);
}

static void ferry__tunnel_lower_closed(void *ctx)
{
	struct tunnel *x = ctx;

	x->t.up->closed(x->t.up_ctx);
}

static const struct ferry__transport_up tunnel_lower_up = {
	.ready = ferry__tunnel_lower_ready,
	.input = ferry__tunnel_lower_input,
	.input_end = ferry__tunnel_lower_end,
	.sent = ferry__tunnel_lower_sent,
	.error = ferry__tunnel_lower_error,
	.closed = ferry__tunnel_lower_closed,
};

static void ferry__tunnel_timer_fn(struct ferry_timer *tm)
{
	struct tunnel *x = ferry__container_of(tm, struct tunnel, timer);

	if (x->state == TUNNEL_ASKING)
		ferry__tunnel_fail(
			x, FERRY_ECONNECT_TIMEOUT,
			"proxy %s: no answer to CONNECT within %u ms", x->proxy,
			x->t.clock->connect_timeout_ms);
}

/* ------------------------------------------------------------------ */
/* The class                                                             */

static int ferry__tunnel_start(struct ferry__transport *t)
{
	struct tunnel *x = (struct tunnel *)t;

	return x->lower->cls->start(x->lower);
}

static int ferry__tunnel_send_up(struct ferry__transport *t,
				 const struct iovec *iov, unsigned n,
				 unsigned flags)
{
	struct tunnel *x = (struct tunnel *)t;

	if (x->state != TUNNEL_OPEN)
		return -ENOTCONN;
	return x->lower->cls->send(x->lower, iov, n, flags);
}

static int ferry__tunnel_read(struct ferry__transport *t, bool on)
{
	struct tunnel *x = (struct tunnel *)t;

	/* While asking, the answer must be read whatever the layer above
	 * wants. */
	if (x->state != TUNNEL_OPEN && !on)
		return 0;
	return x->lower->cls->read(x->lower, on);
}

static void ferry__tunnel_close(struct ferry__transport *t)
{
	struct tunnel *x = (struct tunnel *)t;

	if (x->state == TUNNEL_CLOSING)
		return;
	x->state = TUNNEL_CLOSING;
	ferry_timer_stop(ferry__tunnel_loop(x), &x->timer);
	x->lower->cls->close(x->lower);
}

static void ferry__tunnel_free(struct ferry__transport *t)
{
	struct tunnel *x = (struct tunnel *)t;

	ferry_timer_stop(ferry__tunnel_loop(x), &x->timer);
	ferry__transport_free(x->lower);
	free(x->req);
	free(x->ans);
	free(x->proxy);
	free(x);
}

static const struct ferry__transport_class tunnel_class = {
	"tunnel",	    ferry__tunnel_start, ferry__tunnel_send_up,
	ferry__tunnel_read, ferry__tunnel_close, ferry__tunnel_free,
};

int ferry__tunnel_new(struct ferry_http_client *c,
		      struct ferry__transport_clock *clock,
		      struct ferry__transport *lower, const char *proxy,
		      const char *authority, const char *proxy_auth,
		      struct ferry__transport **tp)
{
	struct tunnel *x = calloc(1, sizeof(*x));
	const char *ua = c->user_agent ? c->user_agent : FERRY__H1_USER_AGENT;
	int n;

	*tp = NULL;
	if (!x)
		goto nomem;
	x->proxy = strdup(proxy);
	/* curl's CONNECT: Host, Proxy-Authorization, User-Agent,
	 * Proxy-Connection (curl 7.88 sends Keep-Alive, as for a forward
	 * request: the tunnel's connection is meant to last). */
	n = asprintf(&x->req,
		     "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s%s%s"
		     "User-Agent: %s\r\nProxy-Connection: Keep-Alive\r\n\r\n",
		     authority, authority,
		     proxy_auth ? "Proxy-Authorization: " : "",
		     proxy_auth ? proxy_auth : "", proxy_auth ? "\r\n" : "", ua);
	if (n < 0 || !x->proxy) {
		x->req = NULL;
		free(x->proxy);
		free(x);
		goto nomem;
	}
	x->req_len = (size_t)n;
	x->t.cls = &tunnel_class;
	x->t.client = c;
	x->t.clock = clock;
	x->lower = lower;
	x->timer.fn = ferry__tunnel_timer_fn;
	ferry__transport_attach(lower, &tunnel_lower_up, x);
	*tp = &x->t;
	return 0;
nomem:
	ferry__transport_free(lower);
	return -ENOMEM;
}
