/*
 * sock.c - the stream socket transport: TCP to a host and port (names
 * through the client's name cache, dns.c; the addresses raced with Happy
 * Eyeballs, happy.c, each attempt within the connect timeout) or a Unix
 * stream socket (a path, or an abstract name).
 *
 * States, in order: RESOLVE (the name cache, skipped for IP literals,
 * "localhost" names and Unix sockets) -> CONNECT (TCP: the race of
 * happy.c, which owns its socket and connect ops; Unix: SOCKET, a socket
 * op, then CONNECT, a connect op with a linked timeout) -> OPEN
 * (multishot recv into the client's buffer ring; one send op at a time)
 * -> CLOSING (ops cancelled, then a close op) -> CLOSED (closed()
 * reported). While OPEN, the layer above may stop the multishot recv and
 * receive a body straight into its own buffer instead (recv_into: single
 * recv ops on the same op record, recv_op, one at a time).
 *
 * Moved here from conn.c: the resolve, socket, connect, recv and send
 * code is the connection's as it was, reporting upward instead.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "dns.h"
#include "internal.h"
#include "transport.h"
#include "util.h"

enum sock_state {
	SOCK_NEW,
	SOCK_RESOLVE,
	SOCK_SOCKET,
	SOCK_CONNECT,
	SOCK_OPEN,
	SOCK_CLOSING,
	SOCK_CLOSED,
};

struct sock {
	struct ferry__transport t;
	enum sock_state state;
	int fd;
	bool is_unix;
	bool socket_pending;	/* a socket op is in flight */
	bool recv_armed;	/* multishot recv in flight */
	bool direct_busy;	/* a recv_into op in flight (on recv_op) */
	char *direct_buf;	/* where it receives */
	bool recv_stopping;	/* cancelled for a pause or a close */
	bool want_read;		/* the layer above reads */
	bool ended;		/* input_end reported */
	bool closing_fd;	/* the close op is in flight */
	struct ferry_op op;	/* socket, connect, send, close */
	struct ferry_op recv_op;
	struct msghdr msg;
	struct iovec iov[FERRY__TRANSPORT_IOV];

	struct ferry__dns_wait dns_wait;	/* waiting for a name */
	struct ferry__he *he;		/* connect race in flight, or NULL */
	struct sockaddr_storage *addrs;
	socklen_t *addrlens;
	unsigned naddrs, addr_next;
	int connect_err;		/* last address's failure */
	uint16_t port;
	int host_type;
	const char *hop;		/* "proxy " or "" */
	char *host;			/* owned, NUL-terminated */
};

static void ferry__sock_next_addr(struct sock *s);
static void ferry__sock_recv_done(struct ferry_op *op, int res, unsigned flags);
static void ferry__sock_finish_close(struct sock *s);

static struct ferry_loop *ferry__sock_loop(const struct sock *s)
{
	return s->t.client->loop;
}

static void ferry__sock_error(struct sock *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ferry__sock_error(struct sock *s, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ferry__transport_verror(&s->t, err, fmt, ap);
	va_end(ap);
}

static const char *ferry__addr_str(const struct sockaddr_storage *ss, char *buf,
				   size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_UNIX) {
		const struct sockaddr_un *a = (const void *)ss;

		if (!a->sun_path[0])
			snprintf(buf, len, "@%s", a->sun_path + 1);
		else
			snprintf(buf, len, "%s", a->sun_path);
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;

		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		port = ntohs(a->sin_port);
		snprintf(buf, len, "%s:%u", ip, port);
	} else {
		const struct sockaddr_in6 *a = (const void *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		port = ntohs(a->sin6_port);
		snprintf(buf, len, "[%s]:%u", ip, port);
	}
	return buf;
}

/* ------------------------------------------------------------------ */
/* RESOLVE                                                               */

/* s owns the addresses from now on. */
static void ferry__sock_take_addrs(struct sock *s, struct ferry__addrs *as)
{
	s->addrs = as->a;
	s->addrlens = as->len;
	s->naddrs = as->n;
	*as = (struct ferry__addrs){ 0 };
	s->t.clock->t_resolved = ferry_time_now();
}

/* The name cache answered (dns.c), on a later turn than ferry__sock_resolve. A
 * proxy's name that does not resolve is FERRY_EPROXY_DNS, and the
 * sentence names the hop. */
static void ferry__sock_dns_done(struct ferry__dns_wait *w, int err,
				 struct ferry__addrs *as, const char *why)
{
	struct sock *s = ferry__container_of(w, struct sock, dns_wait);
	static const char res[] = "resolving ";

	if (err >= 0) {
		ferry__sock_take_addrs(s, as);
		ferry__sock_next_addr(s);
		return;
	}
	if (!*s->hop) {
		ferry__sock_error(s, err, "%s", why);
		return;
	}
	if (err == FERRY_EDNS)
		err = FERRY_EPROXY_DNS;
	if (strncmp(why, res, sizeof(res) - 1) == 0)
		ferry__sock_error(s, err, "%s%s%s", res, s->hop,
				  why + sizeof(res) - 1);
	else
		ferry__sock_error(s, err, "%s%s", s->hop, why);
}

/* RFC 6761 6.3: "localhost" and names under it are loopback, whatever
 * the system's resolver says (curl does the same). */
static bool ferry__host_is_localhost(const char *h, size_t len)
{
	static const char lh[] = "localhost";
	const size_t n = sizeof(lh) - 1;

	if (len && h[len - 1] == '.')
		len--;		/* the root's trailing dot */
	if (len < n || memcmp(h + len - n, lh, n) != 0)
		return false;
	return len == n || h[len - n - 1] == '.';
}

/* Room for @n addresses. 0 or -ENOMEM. */
static int ferry__sock_addrs_alloc(struct sock *s, unsigned n)
{
	s->addrs = calloc(n, sizeof(*s->addrs));
	s->addrlens = calloc(n, sizeof(*s->addrlens));
	return s->addrs && s->addrlens ? 0 : -ENOMEM;
}

/* Loopback addresses for a localhost name, IPv4 first. 0 or -ENOMEM. */
static int ferry__sock_localhost(struct sock *s, uint16_t port)
{
	struct sockaddr_in *a4;
	struct sockaddr_in6 *a6;

	if (ferry__sock_addrs_alloc(s, 2) < 0)
		return -ENOMEM;
	a4 = (void *)&s->addrs[0];
	a4->sin_family = AF_INET;
	a4->sin_port = htons(port);
	a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->addrlens[0] = sizeof(*a4);
	a6 = (void *)&s->addrs[1];
	a6->sin6_family = AF_INET6;
	a6->sin6_port = htons(port);
	a6->sin6_addr = in6addr_loopback;
	s->addrlens[1] = sizeof(*a6);
	s->naddrs = 2;
	return 0;
}

/* An IP literal needs no lookup. 0 or -ENOMEM. */
static int ferry__sock_literal(struct sock *s)
{
	if (ferry__sock_addrs_alloc(s, 1) < 0)
		return -ENOMEM;
	s->naddrs = 1;
	if (s->host_type == FERRY_URL_HOST_IPV4) {
		struct sockaddr_in *a = (void *)s->addrs;

		a->sin_family = AF_INET;
		a->sin_port = htons(s->port);
		inet_pton(AF_INET, s->host, &a->sin_addr);
		s->addrlens[0] = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)s->addrs;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(s->port);
		inet_pton(AF_INET6, s->host, &a->sin6_addr);
		s->addrlens[0] = sizeof(*a);
	}
	return 0;
}

/*
 * Where the DNS work starts: the addresses are known at once (localhost,
 * IP literals, a Unix socket set up at creation) or come from the
 * client's name cache (dns.c; at once when cached, else ferry__sock_dns_done on
 * a later turn). 0, or a negative code with nothing in flight.
 */
static int ferry__sock_resolve(struct sock *s)
{
	struct ferry__addrs as = { 0 };
	size_t hlen = strlen(s->host);
	int err;

	if (s->naddrs ||
	    (s->host_type == FERRY_URL_HOST_NAME &&
	     ferry__host_is_localhost(s->host, hlen)) ||
	    s->host_type != FERRY_URL_HOST_NAME) {
		if (!s->naddrs) {
			err = s->host_type == FERRY_URL_HOST_NAME
				      ? ferry__sock_localhost(s, s->port)
				      : ferry__sock_literal(s);
			if (err < 0)
				return err;
		}
		s->t.clock->t_resolved = ferry_time_now();
		ferry__sock_next_addr(s);
		return 0;
	}
	s->state = SOCK_RESOLVE;
	s->dns_wait.done = ferry__sock_dns_done;
	err = ferry__dns_resolve(s->t.client, s->host, hlen, s->port,
				 &s->dns_wait, &as);
	if (err == 1) {
		ferry__sock_take_addrs(s, &as);
		ferry__sock_next_addr(s);
	}
	return err < 0 ? err : 0;
}

/* ------------------------------------------------------------------ */
/* SOCKET, CONNECT                                                       */

static void ferry__sock_step(struct sock *s, int res);

static void ferry__sock_op_done(struct ferry_op *op, int res, unsigned flags)
{
	struct sock *s = ferry__container_of(op, struct sock, op);

	if (s->state == SOCK_CLOSING) {
		if (s->closing_fd) {
			/* The close op itself: nothing left but to report. */
			s->closing_fd = false;
		} else if (s->fd < 0 && res >= 0 && s->socket_pending) {
			close(res);	/* a socket op that won the race */
		}
		s->socket_pending = false;
		ferry__sock_finish_close(s);
		return;
	}
	ferry__sock_step(s, res);
}

static void ferry__sock_connected(struct sock *s);

/* The race is over (happy.c): fd connected to address idx, or every
 * address failed and fd is the last one's error. */
static void ferry__sock_he_done(void *ctx, int fd, unsigned idx)
{
	struct sock *s = ctx;
	char where[INET6_ADDRSTRLEN + 16];

	s->he = NULL;
	s->addr_next = idx;
	if (fd >= 0) {
		s->fd = fd;
		ferry__sock_connected(s);
		return;
	}
	s->connect_err = fd;
	ferry__addr_str(&s->addrs[idx], where, sizeof(where));
	if (fd == -ETIME)
		ferry__sock_error(s, FERRY_ECONNECT_TIMEOUT,
				  "connect to %s%s: no answer within %u ms",
				  s->hop, where,
				  s->t.clock->connect_timeout_ms);
	else
		ferry__sock_error(s, fd, "connect to %s%s: %s", s->hop, where,
				  ferry_strerrorname(fd));
}

/* TCP: race connects to the addresses (happy.c); ferry__sock_he_done follows. */
static void ferry__sock_race(struct sock *s)
{
	struct ferry__addrs as = { s->addrs, s->addrlens, s->naddrs };
	uint32_t delay = s->t.client->opts.happy_eyeballs_delay_ms;
	uint32_t ct = s->t.clock->connect_timeout_ms;
	int err;

	s->state = SOCK_CONNECT;
	err = ferry__he_start(
		ferry__sock_loop(s), &as,
		delay == FERRY_HTTP_NO_TIMEOUT ? 0 : delay * FERRY__MS,
		ct == FERRY_HTTP_NO_TIMEOUT ? 0 : ct * FERRY__MS,
		ferry__sock_he_done, s, &s->he);
	if (err < 0)
		ferry__sock_error(s, err, "connect: %s",
				  ferry_strerrorname(err));
}

/* Start the socket op for the next address, or give up (TCP: the race
 * does it all). */
static void ferry__sock_next_addr(struct sock *s)
{
	const struct sockaddr_storage *ss;
	char where[INET6_ADDRSTRLEN + 16 + sizeof(((struct sockaddr_un *)0)->sun_path)];
	int proto = s->is_unix ? 0 : IPPROTO_TCP;
	int err;

	if (!s->is_unix) {
		ferry__sock_race(s);
		return;
	}
	if (s->addr_next >= s->naddrs) {
		err = s->connect_err;
		ss = &s->addrs[s->naddrs - 1];
		ferry__addr_str(ss, where, sizeof(where));
		if (err == -ETIME)
			ferry__sock_error(
				s, FERRY_ECONNECT_TIMEOUT,
				"connect to %s%s: no answer within %u ms",
				s->hop, where, s->t.clock->connect_timeout_ms);
		else
			ferry__sock_error(s, err, "connect to %s%s: %s", s->hop,
					  where, ferry_strerrorname(err));
		return;
	}
	ss = &s->addrs[s->addr_next];
	s->state = SOCK_SOCKET;
	s->op.fn = ferry__sock_op_done;
	err = ferry_op_socket(ferry__sock_loop(s), &s->op, ss->ss_family,
			      SOCK_STREAM | SOCK_CLOEXEC, proto);
	if (err == -EOPNOTSUPP) {
		/* No socket op in this kernel: the syscall does not block. */
		int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC,
				proto);

		ferry__sock_step(s, fd < 0 ? -errno : fd);
		return;
	}
	if (err < 0)
		ferry__sock_error(s, err, "socket: %s",
				  ferry_strerrorname(err));
	else
		s->socket_pending = true;
}

static int ferry__sock_arm_recv(struct sock *s)
{
	int err;

	if (s->recv_armed || s->recv_stopping || s->direct_busy || s->ended ||
	    s->fd < 0)
		return 0;
	s->recv_op.fn = ferry__sock_recv_done;
	err = ferry_op_recv_multishot(ferry__sock_loop(s), &s->recv_op, s->fd,
				      s->t.client->br);
	if (err < 0)
		return err;
	s->recv_armed = true;
	return 0;
}

static void ferry__sock_connected(struct sock *s)
{
	int one = 1;
	int err;

	s->t.clock->t_connected = ferry_time_now();
	s->t.clock->last_io = s->t.clock->t_connected;
	/* Heads and chunked pieces are whole writes: never wait for ACKs. */
	if (!s->is_unix)
		setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->state = SOCK_OPEN;
	s->want_read = true;
	err = ferry__sock_arm_recv(s);
	if (err < 0) {
		ferry__sock_error(s, err, "recv: %s", ferry_strerrorname(err));
		return;
	}
	s->t.up->ready(s->t.up_ctx);
}

/*
 * The switch the socket's oneshot ops come back to: res is the result of
 * the op the state names.
 */
static void ferry__sock_step(struct sock *s, int res)
{
	uint32_t ct = s->t.clock->connect_timeout_ms;
	int err;

	switch (s->state) {
	case SOCK_SOCKET:
		s->socket_pending = false;
		if (res < 0) {
			ferry__sock_error(s, res, "socket: %s",
					  ferry_strerrorname(res));
			return;
		}
		s->fd = res;
		s->state = SOCK_CONNECT;
		err = ferry_op_connect(
			ferry__sock_loop(s), &s->op, s->fd,
			(struct sockaddr *)&s->addrs[s->addr_next],
			s->addrlens[s->addr_next]);
		if (!err && ct != FERRY_HTTP_NO_TIMEOUT)
			err = ferry_op_set_timeout(ferry__sock_loop(s), &s->op,
						   ct * FERRY__MS);
		if (err < 0)
			ferry__sock_error(s, err, "connect: %s",
					  ferry_strerrorname(err));
		return;
	case SOCK_CONNECT:
		if (res < 0) {
			/* Nothing else is in flight on fd: close it now. */
			close(s->fd);
			s->fd = -1;
			s->connect_err = res;
			s->addr_next++;
			ferry__sock_next_addr(s);
			return;
		}
		ferry__sock_connected(s);
		return;
	case SOCK_OPEN:
		/* A send completed. */
		if (res < 0) {
			ferry__sock_error(s, res, "send: %s",
					  ferry_strerrorname(res));
			return;
		}
		s->t.clock->last_io = ferry_loop_now(ferry__sock_loop(s));
		s->t.up->sent(s->t.up_ctx, (size_t)res);
		return;
	default:
		return;
	}
}

/* ------------------------------------------------------------------ */
/* OPEN: send and receive                                                */

static int ferry__sock_send(struct ferry__transport *t, const struct iovec *iov,
			    unsigned n, unsigned flags)
{
	struct sock *s = (struct sock *)t;

	if (s->state != SOCK_OPEN)
		return -ENOTCONN;
	s->op.fn = ferry__sock_op_done;
	if (n == 1)
		/* One piece (a head without body, most requests): a plain
		 * send spares the kernel importing a msghdr and an iovec. */
		return ferry_op_send(
			ferry__sock_loop(s), &s->op, s->fd, iov[0].iov_base,
			iov[0].iov_len,
			MSG_NOSIGNAL |
				(flags & FERRY__SEND_LAST ? MSG_DONTWAIT : 0));
	memcpy(s->iov, iov, n * sizeof(*iov));
	memset(&s->msg, 0, sizeof(s->msg));
	s->msg.msg_iov = s->iov;
	s->msg.msg_iovlen = n;
	return ferry_op_sendmsg(
		ferry__sock_loop(s), &s->op, s->fd, &s->msg,
		MSG_NOSIGNAL | (flags & FERRY__SEND_LAST ? MSG_DONTWAIT : 0));
}

static void ferry__sock_recv_done(struct ferry_op *op, int res, unsigned flags)
{
	struct sock *s = ferry__container_of(op, struct sock, recv_op);
	struct ferry_http_client *c = s->t.client;

	if (res > 0 && (flags & FERRY_CQE_BUFFER)) {
		unsigned bid = ferry_cqe_bid(flags);
		struct ferry__input in = { NULL, (uint16_t)bid, 0,
					   (uint32_t)res };

		c->buf_refs[bid] = 1;
		if (s->state != SOCK_OPEN) {
			ferry__buf_unref(c, bid);
		} else {
			s->t.clock->last_io =
				ferry_loop_now(ferry__sock_loop(s));
			s->t.up->input(s->t.up_ctx, &in);
		}
	}
	if (flags & FERRY_CQE_MORE)
		return;
	s->recv_armed = false;
	s->recv_stopping = false;
	if (s->state == SOCK_CLOSING) {
		ferry__sock_finish_close(s);
		return;
	}
	if (s->state != SOCK_OPEN || s->ended)
		return;
	if (res == 0 || (res < 0 && res != -ECANCELED)) {
		s->ended = true;
		s->t.up->input_end(s->t.up_ctx, res);
		return;
	}
	if (!s->want_read) {
		/* Stopped as asked: nothing more in flight (recv_into may
		 * go now). */
		if (s->t.up->drained)
			s->t.up->drained(s->t.up_ctx);
		return;
	}
	/* Ended by the kernel, or stopped for a pause since resumed. */
	if ((res = ferry__sock_arm_recv(s)) < 0) {
		s->ended = true;
		s->t.up->input_end(s->t.up_ctx, res);
	}
}

/* A recv_into op completed: bytes in place, the end, or an error. */
static void ferry__sock_direct_done(struct ferry_op *op, int res,
				   unsigned flags)
{
	struct sock *s = ferry__container_of(op, struct sock, recv_op);
	struct ferry__input in = { NULL, 0, 0, 0, s->direct_buf };

	(void)flags;
	s->direct_busy = false;
	s->direct_buf = NULL;
	if (s->state == SOCK_CLOSING) {
		ferry__sock_finish_close(s);
		return;
	}
	if (s->state != SOCK_OPEN || s->ended)
		return;
	if (res > 0) {
		in.len = (uint32_t)res;
		s->t.clock->last_io = ferry_loop_now(ferry__sock_loop(s));
		s->t.up->input(s->t.up_ctx, &in);
		/* The layer above went back to reading meanwhile. */
		if (s->state == SOCK_OPEN && s->want_read && !s->direct_busy &&
		    (res = ferry__sock_arm_recv(s)) < 0) {
			s->ended = true;
			s->t.up->input_end(s->t.up_ctx, res);
		}
		return;
	}
	if (res == -ECANCELED)
		return;
	s->ended = true;
	s->t.up->input_end(s->t.up_ctx, res);
}

static int ferry__sock_recv_into(struct ferry__transport *t, void *buf,
				 size_t len)
{
	struct sock *s = (struct sock *)t;
	int err;

	if (s->state != SOCK_OPEN || s->ended || s->want_read)
		return -EINVAL;
	if (s->direct_busy)
		return 0;
	if (s->recv_armed)
		return -EBUSY;
	/* At most 4 GiB - 1 per op (a u32 in the input): more comes with
	 * the next op. */
	if (len > UINT32_MAX)
		len = UINT32_MAX;
	s->recv_op.fn = ferry__sock_direct_done;
	err = ferry_op_recv(ferry__sock_loop(s), &s->recv_op, s->fd, buf, len,
			    0);
	if (err < 0)
		return err;
	s->direct_busy = true;
	s->direct_buf = buf;
	return 0;
}

static int ferry__sock_read(struct ferry__transport *t, bool on)
{
	struct sock *s = (struct sock *)t;

	s->want_read = on;
	if (s->state != SOCK_OPEN)
		return 0;
	if (on)
		return ferry__sock_arm_recv(s);
	/* Stop taking buffers for a paused reader: the ring is shared, and
	 * a paused reader must not drain it. What the kernel still hands
	 * over comes up as input; TCP's window pushes back on the server. */
	if (s->recv_armed && !s->recv_stopping &&
	    ferry_op_cancel(ferry__sock_loop(s), &s->recv_op) == 0)
		s->recv_stopping = true;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Closing                                                               */

/*
 * Called whenever a CLOSING socket may be done: cancel what is in
 * flight, then close the fd, then report closed. Each step's completion
 * comes back here.
 */
static void ferry__sock_finish_close(struct sock *s)
{
	struct ferry_loop *loop = ferry__sock_loop(s);

	if (s->state != SOCK_CLOSING)
		return;
	if (ferry_op_busy(&s->recv_op) || ferry_op_busy(&s->op))
		return;
	if (s->fd >= 0) {
		int fd = s->fd;

		s->fd = -1;
		s->op.fn = ferry__sock_op_done;
		if (ferry_op_close(loop, &s->op, fd) == 0) {
			s->closing_fd = true;
			return;
		}
		close(fd);	/* the loop is going away: do it now */
	}
	s->state = SOCK_CLOSED;
	s->t.up->closed(s->t.up_ctx);
}

static void ferry__sock_close(struct ferry__transport *t)
{
	struct sock *s = (struct sock *)t;
	struct ferry_loop *loop = ferry__sock_loop(s);

	if (s->state == SOCK_CLOSING || s->state == SOCK_CLOSED)
		return;
	s->state = SOCK_CLOSING;
	ferry__dns_cancel(&s->dns_wait);
	if (s->he) {
		ferry__he_abandon(s->he);	/* it frees itself */
		s->he = NULL;
	}
	if (ferry_op_busy(&s->recv_op))
		ferry_op_cancel(loop, &s->recv_op);
	if (ferry_op_busy(&s->op))
		ferry_op_cancel(loop, &s->op);
	ferry__sock_finish_close(s);
}

static void ferry__sock_free(struct ferry__transport *t)
{
	struct sock *s = (struct sock *)t;

	free(s->addrs);
	free(s->addrlens);
	free(s->host);
	free(s);
}

static int ferry__sock_start(struct ferry__transport *t)
{
	struct sock *s = (struct sock *)t;

	return ferry__sock_resolve(s);
}

static const struct ferry__transport_class sock_tcp_class = {
	"tcp",
	ferry__sock_start,
	ferry__sock_send,
	ferry__sock_read,
	ferry__sock_close,
	ferry__sock_free,
	ferry__sock_recv_into,
};

static const struct ferry__transport_class sock_unix_class = {
	"unix",		  ferry__sock_start, ferry__sock_send,
	ferry__sock_read, ferry__sock_close, ferry__sock_free,
	ferry__sock_recv_into,
};

/* A Unix socket's one address. 0 or FERRY_EINVAL (name too long). */
static int ferry__sock_unix_addr(struct sock *s, const char *path,
				 bool abstract)
{
	struct sockaddr_un *a;
	size_t n = strlen(path), off = abstract ? 1 : 0;

	if (n + off >= sizeof(a->sun_path) || (!n && !abstract))
		return FERRY_EINVAL;
	if (ferry__sock_addrs_alloc(s, 1) < 0)
		return -ENOMEM;
	a = (void *)s->addrs;
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path + off, path, n);
	/* An abstract name is exactly its bytes: no trailing NUL counted. */
	s->addrlens[0] = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				     off + n + (abstract ? 0 : 1));
	s->naddrs = 1;
	return 0;
}

int ferry__sock_new(struct ferry_http_client *c,
		    struct ferry__transport_clock *clock,
		    const struct ferry__sock_target *to,
		    struct ferry__transport **tp)
{
	struct sock *s = calloc(1, sizeof(*s));
	int err = -ENOMEM;

	*tp = NULL;
	if (!s)
		return -ENOMEM;
	s->t.client = c;
	s->t.clock = clock;
	s->fd = -1;
	s->hop = to->hop ? to->hop : "";
	s->op.fn = ferry__sock_op_done;
	s->recv_op.fn = ferry__sock_recv_done;
	if (to->unix_path) {
		s->is_unix = true;
		s->t.cls = &sock_unix_class;
		s->host = strdup(to->unix_path);
		if (s->host)
			err = ferry__sock_unix_addr(s, to->unix_path,
						    to->unix_abstract);
	} else {
		s->t.cls = &sock_tcp_class;
		s->port = to->port;
		s->host_type = to->host_type;
		s->host = strndup(to->host, to->host_len);
		err = s->host ? 0 : -ENOMEM;
	}
	if (err < 0) {
		ferry__sock_free(&s->t);
		return err;
	}
	*tp = &s->t;
	return 0;
}
