/*
 * http/transport.h - a connection's byte stream, whatever carries it
 * (not installed).
 *
 * A transport is a small object with a class (a table of five calls, in
 * the spirit of redis's ConnectionType) and an upper layer it reports to
 * through callbacks. conn.c runs HTTP/1.1 over the top transport and never
 * asks what it is; layers stack:
 *
 *     conn (HTTP/1.1)
 *       -> tls    (tls_transport.c: BearSSL records, tls.h)    optional
 *       -> tunnel (tunnel.c: HTTP CONNECT through a proxy)     optional
 *       -> tls    (to an https:// proxy)                       optional
 *       -> sock   (sock.c: TCP after resolving, or a Unix socket)
 *
 * Each layer owns the one below it: free() frees the whole chain.
 *
 * Calls down (loop thread only; none calls back into the caller before it
 * returns, except close() as said below):
 *   start  connect (resolve, socket, connect, handshakes); ready() or
 *          error() follows. 0 or a negative code (nothing started).
 *   send   send the bytes of @iov (@n entries, at most FERRY__TRANSPORT_IOV;
 *          flags: FERRY__SEND_LAST or 0);
 *          the array and the bytes stay the caller's and must stay valid
 *          until sent() reports how much was taken (maybe less than all:
 *          the caller sends the rest). One send at a time. 0 or a negative
 *          code (then no sent() comes).
 *   read   on: deliver input (armed after ready by default); off: stop
 *          taking bytes (a paused reader; input already on its way may
 *          still come). 0 or a negative code when reading cannot start.
 *   close  stop everything (TLS says close_notify first where it can), then
 *          closed() once no op is in flight and the fd is closed: from a
 *          later completion, or from inside close() itself when nothing
 *          was in flight (not connected yet, or the loop going away), so
 *          the owner frees in the close phase, never at closed().
 *          Nothing else is reported after close().
 *   free   free the chain; only after closed(), or before start().
 *   recv_into  (optional: NULL where bytes cannot be received in place,
 *          as under TLS) one receive of at most @len bytes straight into
 *          @buf, reported as input() with in->ext = @buf: only with
 *          reading off (read(false)) and nothing left in flight. 0 when
 *          started (or one is in flight already: the caller asks again
 *          for the same bytes only), -EBUSY while the stopped read still
 *          has input in flight (drained() follows), or a negative code.
 *          @buf must stay valid until the input, input_end() or closed().
 *
 * Callbacks up (struct ferry__transport_up):
 *   ready(ctx)            the stream is up: send and read may be used.
 *   input(ctx, in)        received bytes; the reference to @in's buffer
 *                         (ring buffer or spill) passes to the callee.
 *   input_end(ctx, err)   no more input: 0 clean end of stream,
 *                         FERRY_ETLS_TRUNCATED the stream ended but the
 *                         layer cannot vouch that it was not cut short
 *                         (TLS without close_notify), else the receive
 *                         error.
 *   sent(ctx, n)          n bytes of the current send were taken.
 *   error(ctx, err, why)  the transport failed (code and a sentence
 *                         naming the hop and the cause); close it.
 *   closed(ctx)           after close(): the owner may free it now.
 *   drained(ctx)          after read(false): the last input in flight
 *                         has come (optional; recv_into may start now).
 */
#ifndef FERRY_HTTP_TRANSPORT_H
#define FERRY_HTTP_TRANSPORT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ferry/http.h"
#include "util.h"

struct ferry_http_client;
struct ferry__input;
struct ferry__transport;
struct ferry__tls_config;

#define FERRY__TRANSPORT_IOV 3	/* the most iovecs one send takes */

struct ferry__transport_up {
	void (*ready)(void *ctx);
	void (*input)(void *ctx, struct ferry__input *in);
	void (*input_end)(void *ctx, int err);
	void (*sent)(void *ctx, size_t n);
	void (*error)(void *ctx, int err, const char *why);
	void (*closed)(void *ctx);
	void (*drained)(void *ctx);
};

struct ferry__transport_class {
	const char *name;	/* "tcp", "unix", "tls", "tunnel" */
	int (*start)(struct ferry__transport *t);
	int (*send)(struct ferry__transport *t, const struct iovec *iov,
		    unsigned n, unsigned flags);
	int (*read)(struct ferry__transport *t, bool on);
	void (*close)(struct ferry__transport *t);
	void (*free)(struct ferry__transport *t);
	int (*recv_into)(struct ferry__transport *t, void *buf, size_t len);
};

/*
 * What the layers of one connection share, owned by the connection: when
 * each step ended (ns, CLOCK_MONOTONIC; 0 not yet) and when a byte last
 * moved on the wire, which read timeouts measure.
 */
struct ferry__transport_clock {
	uint64_t last_io;
	uint64_t t_resolved, t_connected, t_tls_done;
	/* The connection's connect timeout (ms, FERRY_HTTP_NO_TIMEOUT:
	 * none): the opening request's, or the client's. Per address tried
	 * (sock.c), for the CONNECT (tunnel.c) and the TLS handshake
	 * (tls_transport.c). Set by the connection before its start. */
	uint32_t connect_timeout_ms;
};

struct ferry__transport {
	const struct ferry__transport_class *cls;
	const struct ferry__transport_up *up;
	void *up_ctx;
	struct ferry_http_client *client;	/* loop, ring, options */
	struct ferry__transport_clock *clock;
};

static inline int ferry__transport_start(struct ferry__transport *t)
{
	return t->cls->start(t);
}

/* send() flags */
#define FERRY__SEND_LAST 1u	/* the last bytes before close: never wait
				   for room (a TLS close_notify) */

static inline int ferry__transport_send(struct ferry__transport *t,
					const struct iovec *iov, unsigned n)
{
	return t->cls->send(t, iov, n, 0);
}

static inline int ferry__transport_read(struct ferry__transport *t, bool on)
{
	return t->cls->read(t, on);
}

static inline void ferry__transport_close(struct ferry__transport *t)
{
	t->cls->close(t);
}

static inline void ferry__transport_free(struct ferry__transport *t)
{
	if (t)
		t->cls->free(t);
}

/* Report a failure up: err, and the sentence printf makes of @fmt. */
static inline void ferry__transport_verror(struct ferry__transport *t,
					   int err, const char *fmt,
					   va_list ap)
	__attribute__((format(printf, 3, 0)));

static inline void ferry__transport_verror(struct ferry__transport *t,
					   int err, const char *fmt,
					   va_list ap)
{
	char why[FERRY_HTTP_DETAIL_MAX];

	ferry__vwhyf(why, sizeof(why), fmt, ap);
	t->up->error(t->up_ctx, err, why);
}

/* Set who @t reports to (a layer above, or the connection). */
static inline void ferry__transport_attach(struct ferry__transport *t,
					   const struct ferry__transport_up *up,
					   void *ctx)
{
	t->up = up;
	t->up_ctx = ctx;
}

/* Where a socket transport connects. */
struct ferry__sock_target {
	/* TCP: a host (name or IP literal, as in a URL, IPv6 without
	 * brackets) and a port. */
	const char *host;
	size_t host_len;
	int host_type;			/* enum ferry_url_host_type */
	uint16_t port;
	/* Unix: a socket path (abstract: the name without its leading NUL);
	 * when set, host and port are not used. */
	const char *unix_path;
	bool unix_abstract;
	/* How errors name this hop: NULL for the origin, "proxy" for a
	 * proxy (then "resolving proxy x", "connect to proxy x"). */
	const char *hop;
};

/* sock.c: TCP (resolve, then each address in turn) or a Unix socket. */
int ferry__sock_new(struct ferry_http_client *c,
		    struct ferry__transport_clock *clock,
		    const struct ferry__sock_target *to,
		    struct ferry__transport **tp);

/*
 * tls_transport.c: TLS over @lower (which it then owns, also on failure),
 * verifying @host (the URL's host; @ip_literal: an address). @origin keys
 * the session cache. @hop names it in errors (NULL: the origin).
 */
/* tunnel.c: CONNECT @authority ("host:port") through the proxy @lower
 * reaches (named @proxy in sentences), with @proxy_auth (a
 * Proxy-Authorization value) or NULL. Owns @lower, also on failure. */
int ferry__tunnel_new(struct ferry_http_client *c,
		      struct ferry__transport_clock *clock,
		      struct ferry__transport *lower, const char *proxy,
		      const char *authority, const char *proxy_auth,
		      struct ferry__transport **tp);

int ferry__tls_transport_new(struct ferry_http_client *c,
			     struct ferry__transport_clock *clock,
			     struct ferry__transport *lower,
			     const char *host, size_t host_len,
			     bool ip_literal, const char *origin,
			     const char *hop, struct ferry__transport **tp);

#endif /* FERRY_HTTP_TRANSPORT_H */
