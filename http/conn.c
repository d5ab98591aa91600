/*
 * conn.c - one HTTP/1.1 connection as a completion-driven state machine.
 *
 * Life of a connection (enum ferry__conn_state, in order):
 *
 *   RESOLVE    the client's name cache (dns.c; getaddrinfo on the offload
 *              pool when it has no answer); skipped for IP literals
 *   CONNECT    Happy Eyeballs over the addresses (happy.c): socket and
 *              connect ops with linked timeouts, owned by the race
 *   HANDSHAKE  https: the TLS engine's records go out on op and come
 *              in on the multishot recv, within connect_timeout
 *   SEND       the request head and body go out (sendmsg, short writes
 *              resumed); the response may already be read
 *   RECV       the request is out; the response is read
 *   IDLE       back in the origin's pool with its multishot recv armed,
 *              so EOF or stray bytes from the server close it at once
 *   CLOSING    ops cancelled; when the last completion is in, a close op;
 *              then the memory is freed
 *
 * Receiving: one multishot recv per connection, armed from CONNECT until
 * CLOSING, into the client's provided-buffer ring. Each buffer received
 * joins the connection's input queue with one reference (the connection's);
 * conn_pump() feeds the queue to the response parser, zero-copy, and drops
 * a buffer's reference when it is parsed. on_body may add references.
 *
 * TLS (the "TLS transport" section at the end): the same ops carry
 * records. A received buffer's ciphertext is copied into the engine and
 * the buffer goes straight back to the ring; the engine's plaintext is
 * copied into spills on the input queue, so parsing, pausing and kept
 * buffers work as for TCP. op sends the engine's records, one at a time.
 *
 * Reentrancy: callbacks made from here (on_head, on_body, body_fn, and
 * on_done through request.c) may cancel requests, start new ones or close
 * the client. A connection is therefore never freed while one of its
 * handlers is on the stack: each entry point holds it (conn_hold/
 * conn_leave) and only the last leave of a CLOSING connection frees it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decode.h"
#include "internal.h"
#include "tls.h"

static void conn_step(struct ferry__conn *cn, int res);
static void conn_pump(struct ferry__conn *cn);
static void conn_send_more(struct ferry__conn *cn);
static void conn_teardown(struct ferry__conn *cn);
static void conn_shut(struct ferry__conn *cn);
static void conn_next_addr(struct ferry__conn *cn);
static void tls_start(struct ferry__conn *cn);
static void tls_sent(struct ferry__conn *cn, int res);
static void tls_input(struct ferry__conn *cn, const void *data, size_t len);
static void tls_progress(struct ferry__conn *cn);
static void tls_send_more(struct ferry__conn *cn);

static struct ferry_loop *conn_loop(const struct ferry__conn *cn)
{
	return cn->client->loop;
}

static void conn_hold(struct ferry__conn *cn)
{
	cn->hold++;
}

/* The last handler of a CLOSING connection finishes (maybe frees) it:
 * the caller must not touch cn afterwards. */
static void conn_leave(struct ferry__conn *cn)
{
	if (--cn->hold == 0 && cn->state == FERRY__CONN_CLOSING)
		conn_teardown(cn);
}

static uint64_t req_read_timeout_ns(const struct ferry__conn *cn)
{
	uint32_t ms = cn->client->opts.read_timeout_ms;

	if (cn->req && cn->req->read_timeout_ms)
		ms = cn->req->read_timeout_ms;
	return ms == FERRY_HTTP_NO_TIMEOUT ? 0 : ms * FERRY__MS;
}

/*
 * Make cn's timer fire by @deadline. One already armed to fire no later
 * stays as it is: the handler (conn_timer_fn) checks what is really due
 * and re-arms for the rest, so a keep-alive connection moves no timer in
 * the heap per request, at the cost of a spare turn per timeout period.
 */
static void conn_timer_by(struct ferry__conn *cn, uint64_t deadline)
{
	if (!ferry_timer_active(&cn->timer) ||
	    ferry_timer_deadline(&cn->timer) > deadline)
		ferry_timer_start(conn_loop(cn), &cn->timer, deadline);
}

/* Report err from the timer, on a later turn: used where failing at once
 * would call back into code that is still setting up. */
static void conn_fail_soon(struct ferry__conn *cn, int err)
{
	if (!cn->soon_err)
		cn->soon_err = err;
	ferry_timer_start(conn_loop(cn), &cn->timer, 0);
}

static const char *addr_str(const struct sockaddr_storage *ss, char *buf,
			    size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
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
/* Input queue: received buffers in order                               */

/* Room for one more entry. 0 or -ENOMEM. */
static int input_reserve(struct ferry__conn *cn)
{
	if (cn->nin == cn->in_cap) {
		unsigned cap = cn->in_cap ? cn->in_cap * 2 : 4;
		struct ferry__input *in = realloc(cn->in, cap * sizeof(*in));

		if (!in)
			return -ENOMEM;
		cn->in = in;
		cn->in_cap = cap;
	}
	return 0;
}

static int input_push(struct ferry__conn *cn, unsigned bid, unsigned len)
{
	if (input_reserve(cn) < 0)
		return -ENOMEM;
	cn->in[cn->nin++] = (struct ferry__input){ NULL, (uint16_t)bid, 0, len };
	return 0;
}

/* Queue len plaintext bytes (TLS): copied into a spill of their own. */
static int input_push_copy(struct ferry__conn *cn, const void *data,
			   size_t len)
{
	struct ferry__spill *sp;

	if (input_reserve(cn) < 0)
		return -ENOMEM;
	sp = ferry__spill_new(cn->client, data, len);
	if (!sp)
		return -ENOMEM;
	cn->in[cn->nin++] = (struct ferry__input){ sp, 0, 0, (uint32_t)len };
	return 0;
}

static void input_unref(struct ferry__conn *cn, const struct ferry__input *in)
{
	if (in->spill)
		ferry__spill_unref(cn->client, in->spill);
	else
		ferry__buf_unref(cn->client, in->bid);
}

static const char *input_data(const struct ferry__conn *cn,
			      const struct ferry__input *in)
{
	if (in->spill)
		return in->spill->data + in->off;
	return (const char *)ferry_bufring_buf(cn->client->br, in->bid) + in->off;
}

/*
 * Copy every ring buffer queued into a spill of its own: the ring buffers
 * go back at once. Only a paused connection does this, for the buffers
 * that arrived before its recv stopped; it runs on each of them as it
 * comes, so each byte is copied once (spills already made stay as they
 * are). Returns 0 or -ENOMEM (the buffers not yet copied stay queued).
 */
static int input_spill(struct ferry__conn *cn)
{
	for (unsigned i = 0; i < cn->nin; i++) {
		struct ferry__input *in = &cn->in[i];
		struct ferry__spill *sp;

		if (in->spill)
			continue;
		sp = ferry__spill_new(cn->client, input_data(cn, in), in->len);
		if (!sp)
			return -ENOMEM;
		input_unref(cn, in);
		*in = (struct ferry__input){ sp, 0, 0, in->len };
	}
	return 0;
}

static void input_pop(struct ferry__conn *cn)
{
	input_unref(cn, &cn->in[0]);
	cn->nin--;
	memmove(cn->in, cn->in + 1, cn->nin * sizeof(*cn->in));
}

static void input_drop(struct ferry__conn *cn)
{
	while (cn->nin)
		input_pop(cn);
}

/* ------------------------------------------------------------------ */
/* Errors on a connection                                                */

/*
 * Something failed on cn. The request it serves fails too, unless this is
 * the case the retry rule covers: an idempotent request on a reused
 * connection, before any response byte (the server closed a keep-alive
 * connection as we sent on it). Then it goes once more, on a new
 * connection. The connection is closed either way.
 */
static void conn_error(struct ferry__conn *cn, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void conn_error(struct ferry__conn *cn, int err, const char *fmt, ...)
{
	struct ferry_http_request *req = cn->req;
	va_list ap;

	if (!req) {
		ferry__conn_close(cn);
		return;
	}
	if (cn->state >= FERRY__CONN_SEND && req->reused && !req->retried &&
	    !req->head_seen && ferry__h1_resp_idle(&cn->parser) &&
	    ferry__req_idempotent(req) && !req->body_fn_started) {
		cn->req = NULL;
		req->conn = NULL;
		req->retried = true;
		req->fresh_conn = true;
		cn->client->retries++;
		ferry__conn_close(cn);
		if (ferry__req_wait(req, true) < 0)
			ferry__req_fail(req, -ENOMEM, "retry: out of memory");
		return;
	}
	if (!req->in_cb || !req->pending_err) {
		va_start(ap, fmt);
		vsnprintf(req->detail, sizeof(req->detail), fmt, ap);
		va_end(ap);
	}
	/* Detaches req; a connection that was still connecting would be
	 * kept for the pool, which this one must not be. */
	ferry__req_fail_detail(req, err);
	ferry__conn_close(cn);
}

/* ------------------------------------------------------------------ */
/* RESOLVE                                                               */

/* cn owns the addresses from now on. */
static void conn_take_addrs(struct ferry__conn *cn, struct ferry__addrs *as)
{
	cn->addrs = as->a;
	cn->addrlens = as->len;
	cn->naddrs = as->n;
	*as = (struct ferry__addrs){ 0 };
	cn->t_resolved = ferry_time_now();
}

/* The name cache answered (dns.c), on a later turn than conn_resolve. */
static void conn_dns_done(struct ferry__dns_wait *w, int err,
			  struct ferry__addrs *as, const char *why)
{
	struct ferry__conn *cn = ferry__http_container_of(w,
					struct ferry__conn, dns_wait);

	conn_hold(cn);
	if (err < 0) {
		conn_error(cn, err, "%s", why);
	} else {
		conn_take_addrs(cn, as);
		conn_next_addr(cn);
	}
	conn_leave(cn);
}

/* RFC 6761 6.3: "localhost" and names under it are loopback, whatever
 * the system's resolver says (curl does the same). */
static bool host_is_localhost(const char *h, size_t len)
{
	static const char lh[] = "localhost";
	const size_t n = sizeof(lh) - 1;

	if (len && h[len - 1] == '.')
		len--;		/* the root's trailing dot */
	if (len < n || memcmp(h + len - n, lh, n) != 0)
		return false;
	return len == n || h[len - n - 1] == '.';
}

/* Loopback addresses for a localhost name, IPv4 first. 0 or -ENOMEM. */
static int conn_localhost(struct ferry__conn *cn, uint16_t port)
{
	struct sockaddr_in *a4;
	struct sockaddr_in6 *a6;

	cn->addrs = calloc(2, sizeof(*cn->addrs));
	cn->addrlens = calloc(2, sizeof(*cn->addrlens));
	if (!cn->addrs || !cn->addrlens)
		return -ENOMEM;
	a4 = (void *)&cn->addrs[0];
	a4->sin_family = AF_INET;
	a4->sin_port = htons(port);
	a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cn->addrlens[0] = sizeof(*a4);
	a6 = (void *)&cn->addrs[1];
	a6->sin6_family = AF_INET6;
	a6->sin6_port = htons(port);
	a6->sin6_addr = in6addr_loopback;
	cn->addrlens[1] = sizeof(*a6);
	cn->naddrs = 2;
	cn->t_resolved = ferry_time_now();
	conn_next_addr(cn);
	return 0;
}

static int conn_resolve(struct ferry__conn *cn, const struct ferry_url *u)
{
	struct ferry__addrs as = { 0 };
	int err;

	if (u->host_type == FERRY_URL_HOST_NAME &&
	    host_is_localhost(u->host, u->host_len))
		return conn_localhost(cn, u->port);

	if (u->host_type != FERRY_URL_HOST_NAME) {
		/* An IP literal needs no lookup. */
		struct sockaddr_storage *ss = calloc(1, sizeof(*ss));

		cn->addrlens = calloc(1, sizeof(*cn->addrlens));
		if (!ss || !cn->addrlens) {
			free(ss);
			return -ENOMEM;
		}
		cn->addrs = ss;
		cn->naddrs = 1;
		cn->t_resolved = ferry_time_now();
		if (u->host_type == FERRY_URL_HOST_IPV4) {
			struct sockaddr_in *a = (void *)ss;

			a->sin_family = AF_INET;
			a->sin_port = htons(u->port);
			inet_pton(AF_INET, u->host, &a->sin_addr);
			cn->addrlens[0] = sizeof(*a);
		} else {
			struct sockaddr_in6 *a = (void *)ss;

			a->sin6_family = AF_INET6;
			a->sin6_port = htons(u->port);
			inet_pton(AF_INET6, u->host, &a->sin6_addr);
			cn->addrlens[0] = sizeof(*a);
		}
		conn_next_addr(cn);
		return 0;
	}
	cn->state = FERRY__CONN_RESOLVE;
	cn->dns_wait.done = conn_dns_done;
	err = ferry__dns_resolve(cn->client, u->host, u->host_len, u->port,
				 &cn->dns_wait, &as);
	if (err == 1) {
		conn_take_addrs(cn, &as);
		conn_next_addr(cn);
	}
	return err < 0 ? err : 0;
}

/* ------------------------------------------------------------------ */
/* SOCKET, CONNECT, HANDSHAKE                                            */

static void conn_op_done(struct ferry_op *op, int res, unsigned flags)
{
	struct ferry__conn *cn = ferry__http_container_of(op,
					struct ferry__conn, op);

	conn_hold(cn);
	if (cn->state == FERRY__CONN_CLOSING) {
		if (cn->closing_fd) {
			/* The close op itself: nothing left but to free. */
			cn->closing_fd = false;
		} else if (cn->fd < 0 && res >= 0 && cn->socket_pending) {
			close(res);	/* a socket op that won the race */
		}
		cn->socket_pending = false;
		conn_leave(cn);
		return;
	}
	conn_step(cn, res);
	conn_leave(cn);
}

static void conn_recv_done(struct ferry_op *op, int res, unsigned flags);

static void conn_he_done(void *ctx, int fd, unsigned idx);
static void conn_connected(struct ferry__conn *cn);

/* Race connects to the addresses (happy.c); conn_he_done follows. */
static void conn_next_addr(struct ferry__conn *cn)
{
	const struct ferry_http_client *c = cn->client;
	struct ferry__addrs as = { cn->addrs, cn->addrlens, cn->naddrs };
	uint32_t delay = c->opts.happy_eyeballs_delay_ms;
	uint32_t ct = cn->connect_timeout_ms;
	int err;

	cn->state = FERRY__CONN_CONNECT;
	err = ferry__he_start(conn_loop(cn), &as,
			      delay == FERRY_HTTP_NO_TIMEOUT ? 0
							     : delay * FERRY__MS,
			      ct == FERRY_HTTP_NO_TIMEOUT ? 0 : ct * FERRY__MS,
			      conn_he_done, cn, &cn->he);
	if (err < 0)
		conn_fail_soon(cn, err);
}

/* The race is over: fd connected to address idx, or every address
 * failed and fd is the last one's error. */
static void conn_he_done(void *ctx, int fd, unsigned idx)
{
	struct ferry__conn *cn = ctx;
	char where[INET6_ADDRSTRLEN + 16];

	conn_hold(cn);
	cn->he = NULL;
	cn->addr_next = idx;
	if (fd >= 0) {
		cn->fd = fd;
		conn_connected(cn);
		conn_leave(cn);
		return;
	}
	cn->connect_err = fd;
	addr_str(&cn->addrs[idx], where, sizeof(where));
	if (fd == -ETIME)
		conn_error(cn, FERRY_ECONNECT_TIMEOUT,
			   "connect to %s: no answer within %u ms", where,
			   cn->connect_timeout_ms);
	else
		conn_error(cn, fd, "connect to %s: %s", where,
			   ferry_strerrorname(fd));
	conn_leave(cn);
}

static void conn_connected(struct ferry__conn *cn)
{
	int one = 1;
	int err;

	cn->t_connected = ferry_time_now();
	/* Heads and chunked pieces are whole writes: never wait for ACKs. */
	setsockopt(cn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	cn->recv_op.fn = conn_recv_done;
	err = ferry_op_recv_multishot(conn_loop(cn), &cn->recv_op, cn->fd,
				      cn->client->br);
	if (err < 0) {
		conn_error(cn, err, "recv: %s", ferry_strerrorname(err));
		return;
	}
	cn->recv_armed = true;
	switch (cn->transport) {
	case FERRY__TRANSPORT_TCP:
		break;
	case FERRY__TRANSPORT_TLS:
		tls_start(cn);
		return;
	}
	if (cn->req)
		ferry__conn_assign(cn, cn->req);
	else
		ferry__conn_detach(cn, true);
}

/*
 * The switch the connection's oneshot ops come back to: res is the result
 * of the op the state names.
 */
static void conn_step(struct ferry__conn *cn, int res)
{
	if (cn->transport == FERRY__TRANSPORT_TLS &&
	    cn->state >= FERRY__CONN_HANDSHAKE && cn->state <= FERRY__CONN_IDLE) {
		/* Once connected, op carries only the engine's records. */
		tls_sent(cn, res);
		return;
	}
	switch (cn->state) {
	case FERRY__CONN_RESOLVE:
		/* Left through conn_dns_done, never by an op. */
		return;
	case FERRY__CONN_SOCKET:
	case FERRY__CONN_CONNECT:
		/* The connect race's ops are its own (happy.c). */
		return;
	case FERRY__CONN_HANDSHAKE:
		return;
	case FERRY__CONN_SEND:
	case FERRY__CONN_RECV:
		/* A send completed. */
		if (res < 0) {
			conn_error(cn, res, "send: %s", ferry_strerrorname(res));
			return;
		}
		cn->last_io = ferry_loop_now(conn_loop(cn));
		ferry__iov_advance(cn, (size_t)res);
		conn_send_more(cn);
		return;
	case FERRY__CONN_IDLE:
	case FERRY__CONN_CLOSING:
		return;
	}
}

/* ------------------------------------------------------------------ */
/* SEND                                                                  */

void ferry__iov_advance(struct ferry__conn *cn, size_t n)
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

static void iov_add(struct ferry__conn *cn, const void *p, size_t n)
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
static int conn_pull_body(struct ferry__conn *cn)
{
	struct ferry_http_request *req = cn->req;
	const void *data = NULL;
	size_t len = 0;
	bool chunked = req->body_fn_len < 0;
	int r;

	if (cn->body_end_sent)
		return 0;
	req->body_fn_started = true;
	req->in_cb = true;
	r = req->body_fn(req->body_ctx, req, &data, &len);
	req->in_cb = false;
	if (ferry__req_check_pending(req))
		return -1;
	if (r == FERRY_HTTP_BODY_WAIT) {
		cn->body_wait = true;
		return FERRY_HTTP_BODY_WAIT;
	}
	if (r < 0) {
		conn_error(cn, r, "request body producer: %s",
			   ferry_strerror(r));
		return -1;
	}
	if (r == 0) {
		cn->body_end_sent = true;
		if (chunked) {
			iov_add(cn, FERRY__H1_CHUNK_LAST,
				sizeof(FERRY__H1_CHUNK_LAST) - 1);
			return 1;
		}
		if (req->body_fn_sent != (uint64_t)req->body_fn_len) {
			conn_error(cn, FERRY_EINVAL,
				   "request body producer ended after %llu of %lld bytes",
				   (unsigned long long)req->body_fn_sent,
				   (long long)req->body_fn_len);
			return -1;
		}
		return 0;
	}
	if (!data || !len) {
		conn_error(cn, FERRY_EINVAL, "request body producer gave an empty piece");
		return -1;
	}
	if (!chunked && req->body_fn_sent + len > (uint64_t)req->body_fn_len) {
		conn_error(cn, FERRY_EINVAL,
			   "request body producer gave more than %lld bytes",
			   (long long)req->body_fn_len);
		return -1;
	}
	req->body_fn_sent += len;
	if (chunked) {
		iov_add(cn, cn->chunk_head, ferry__h1_chunk_head(cn->chunk_head, len));
		iov_add(cn, data, len);
		iov_add(cn, FERRY__H1_CHUNK_TAIL, 2);
	} else {
		iov_add(cn, data, len);
	}
	return 1;
}

/* Send what the iov holds, or queue the next piece, or finish sending. */
static void conn_send_more(struct ferry__conn *cn)
{
	struct ferry_http_request *req = cn->req;
	int err;

	if (!req || cn->state != FERRY__CONN_SEND)
		return;
	if (cn->transport == FERRY__TRANSPORT_TLS) {
		tls_send_more(cn);
		return;
	}
	if (!cn->niov && req->body_kind == FERRY__BODY_PRODUCER && !cn->body_wait) {
		int r = conn_pull_body(cn);

		if (r < 0)
			return;
	}
	if (cn->niov == 1) {
		/* One piece (a head without body, most requests): a plain
		 * send spares the kernel importing a msghdr and an iovec. */
		cn->op.fn = conn_op_done;
		err = ferry_op_send(conn_loop(cn), &cn->op, cn->fd,
				    cn->iov[0].iov_base, cn->iov[0].iov_len,
				    MSG_NOSIGNAL);
		if (err < 0)
			conn_fail_soon(cn, err);
		return;
	}
	if (cn->niov) {
		memset(&cn->msg, 0, sizeof(cn->msg));
		cn->msg.msg_iov = cn->iov;
		cn->msg.msg_iovlen = cn->niov;
		cn->op.fn = conn_op_done;
		err = ferry_op_sendmsg(conn_loop(cn), &cn->op, cn->fd, &cn->msg,
				       MSG_NOSIGNAL);
		if (err < 0)
			conn_fail_soon(cn, err);
		return;
	}
	if (cn->body_wait)
		return;
	/* Everything is out: from here on only the response matters. */
	cn->state = FERRY__CONN_RECV;
	cn->last_io = ferry_loop_now(conn_loop(cn));
}

/*
 * ferry__conn_assign - start req on connected, idle cn: the request head
 * (written by request.c) and a buffer body go out in one sendmsg.
 */
/*
 * The request's connection events are its connection's, when the
 * connection was opened for this attempt; on a pooled one they happened
 * now, as the request took it.
 */
void ferry__conn_note_times(struct ferry__conn *cn,
			    struct ferry_http_request *req)
{
	uint64_t now = ferry_time_now();
	bool fresh = cn->served == 0 && cn->t_connected >= req->t_start;

	req->t_resolved = fresh && cn->t_resolved ? cn->t_resolved : now;
	req->t_connected = fresh ? cn->t_connected : now;
	req->t_tls_done = cn->transport != FERRY__TRANSPORT_TLS ? 0
			  : fresh ? cn->t_tls_done : now;
	req->t_first = 0;
}

void ferry__conn_assign(struct ferry__conn *cn, struct ferry_http_request *req)
{
	struct ferry_http_client *c = cn->client;
	uint64_t rt;

	conn_hold(cn);
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
	cn->niov = 0;
	ferry__h1_resp_start(&cn->parser, req->method);
	iov_add(cn, req->out.data, req->out.len);
	if (req->body_kind == FERRY__BODY_BUFFER)
		iov_add(cn, req->body, req->body_len);
	cn->state = FERRY__CONN_SEND;
	cn->last_io = ferry_loop_now(c->loop);
	rt = req_read_timeout_ns(cn);
	if (rt)
		conn_timer_by(cn, cn->last_io + rt);
	else
		ferry_timer_stop(c->loop, &cn->timer);
	/* The recv stays armed from the connect or the pool. */
	conn_send_more(cn);
	conn_leave(cn);
}

void ferry__conn_body_ready(struct ferry__conn *cn)
{
	if (!cn->body_wait)
		return;
	cn->body_wait = false;
	cn->body_kick = true;
	ferry_timer_start(conn_loop(cn), &cn->timer, 0);
}

/* ------------------------------------------------------------------ */
/* RECV                                                                  */

static void conn_recv_done(struct ferry_op *op, int res, unsigned flags)
{
	struct ferry__conn *cn = ferry__http_container_of(op,
					struct ferry__conn, recv_op);
	struct ferry_http_client *c = cn->client;

	conn_hold(cn);
	if (res > 0 && (flags & FERRY_CQE_BUFFER)) {
		unsigned bid = ferry_cqe_bid(flags);

		if (cn->req && !cn->req->t_first &&
		    cn->state >= FERRY__CONN_SEND)
			cn->req->t_first = ferry_time_now();

		c->buf_refs[bid] = 1;
		if (cn->transport == FERRY__TRANSPORT_TLS) {
			/* Ciphertext: into the engine, and the buffer goes
			 * straight back to the ring. */
			if (cn->state != FERRY__CONN_CLOSING)
				tls_input(cn, ferry_bufring_buf(c->br, bid),
					  (size_t)res);
			ferry__buf_unref(c, bid);
		} else if (cn->state == FERRY__CONN_CLOSING ||
		    input_push(cn, bid, (unsigned)res) < 0) {
			ferry__buf_unref(c, bid);
			if (cn->state != FERRY__CONN_CLOSING)
				cn->rx_err = -ENOMEM;
		}
		cn->last_io = ferry_loop_now(conn_loop(cn));
		if (cn->req && cn->req->paused && input_spill(cn) < 0 &&
		    !cn->rx_err)
			cn->rx_err = -ENOMEM;
	}
	if (!(flags & FERRY_CQE_MORE)) {
		cn->recv_armed = false;
		cn->recv_stopping = false;
		if (res == 0)
			cn->eof = true;
		else if (res < 0 && res != -ECANCELED && !cn->rx_err)
			cn->rx_err = res;
	}
	if (cn->transport == FERRY__TRANSPORT_TLS &&
	    cn->state != FERRY__CONN_CLOSING)
		tls_progress(cn);
	if (cn->state != FERRY__CONN_CLOSING &&
	    cn->state != FERRY__CONN_HANDSHAKE)
		conn_pump(cn);
	conn_leave(cn);
}

static void conn_arm_recv(struct ferry__conn *cn)
{
	int err;

	if (cn->recv_armed || cn->recv_stopping || cn->eof || cn->rx_err ||
	    cn->fd < 0)
		return;
	err = ferry_op_recv_multishot(conn_loop(cn), &cn->recv_op, cn->fd,
				      cn->client->br);
	if (err < 0)
		cn->rx_err = err;
	else
		cn->recv_armed = true;
}

/*
 * Stop taking buffers for a paused request: the ring is shared, and a
 * paused reader must not drain it. What the kernel still hands over waits
 * in the input queue; TCP's window pushes back on the server.
 */
static void conn_stop_recv(struct ferry__conn *cn)
{
	if (input_spill(cn) < 0 && !cn->rx_err)
		cn->rx_err = -ENOMEM;
	if (cn->recv_armed && !cn->recv_stopping &&
	    ferry_op_cancel(conn_loop(cn), &cn->recv_op) == 0)
		cn->recv_stopping = true;
}

/* The connection saw EOF or an error with the request still owed. */
static void conn_input_ended(struct ferry__conn *cn)
{
	struct ferry_http_request *req = cn->req;
	int r;

	if (cn->rx_err) {
		conn_error(cn, cn->rx_err, "recv: %s%s",
			   ferry_strerrorname(cn->rx_err),
			   ferry__h1_resp_idle(&cn->parser)
				   ? " before any response byte" : "");
		return;
	}
	r = ferry__h1_resp_finish(&cn->parser);
	if (r == FERRY__H1_DONE && cn->transport == FERRY__TRANSPORT_TLS &&
	    !cn->tls_closed && !ferry__tls_peer_closed(cn->tls)) {
		/* The body ran to the close, but TLS says nothing about that
		 * close: an attacker could have cut it short. */
		conn_error(cn, FERRY_ETLS_TRUNCATED,
			   "TLS: connection closed without close_notify before the end of a close-delimited body");
		return;
	}
	if (r == FERRY__H1_DONE) {
		cn->req = NULL;
		ferry__req_complete(req, cn, false);
		return;
	}
	conn_error(cn, r, "%s", ferry__h1_resp_why(&cn->parser));
}

/*
 * The rest of req's response is not worth reading (a redirect's long
 * body): the connection closes, the request goes on without it.
 */
static void conn_abandon(struct ferry__conn *cn, struct ferry_http_request *req)
{
	input_drop(cn);
	cn->req = NULL;
	ferry__req_complete(req, cn, false);
}

/*
 * Feed the input queue to the parser while the request wants bytes.
 * Returns with cn held by the caller; cn may be CLOSING afterwards.
 */
static void conn_pump(struct ferry__conn *cn)
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
			conn_stop_recv(cn);
			goto out;
		}
		ev = ferry__h1_resp_feed(&cn->parser, input_data(cn, in),
					 in->len, &used, &slice);
		in->off += (uint32_t)used;
		in->len -= (uint32_t)used;
		switch (ev) {
		case FERRY__H1_NEED_MORE:
			input_pop(cn);
			break;
		case FERRY__H1_HEAD:
			r = ferry__req_head(req, &discard);
			if (r < 0)
				goto out;	/* req failed, conn closing */
			if (r == FERRY__REQ_ABANDON) {
				conn_abandon(cn, req);
				goto out;
			}
			break;
		case FERRY__H1_BODY:
			r = ferry__req_body(req, slice.data, slice.len, in);
			if (r < 0)
				goto out;
			if (r == FERRY__REQ_ABANDON) {
				conn_abandon(cn, req);
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

			input_pop(cn);
			if (!reuse)
				input_drop(cn);
			cn->req = NULL;
			cn->served++;
			ferry__req_complete(req, cn, reuse);
			goto out;
		}
		default:
			conn_error(cn, ev, "%s", ferry__h1_resp_why(&cn->parser));
			goto out;
		}
	}
	if (cn->state == FERRY__CONN_CLOSING)
		goto out;
	if (!cn->req) {
		if (cn->eof || cn->rx_err)
			ferry__conn_close(cn);
		else
			conn_arm_recv(cn);
		goto out;
	}
	if (cn->req->paused) {
		conn_stop_recv(cn);
		goto out;
	}
	if (cn->eof || cn->rx_err) {
		conn_input_ended(cn);
		goto out;
	}
	conn_arm_recv(cn);
	if (cn->rx_err)
		conn_input_ended(cn);
out:
	cn->pumping = false;
}

void ferry__conn_pause(struct ferry__conn *cn)
{
	ferry_timer_stop(conn_loop(cn), &cn->timer);
	conn_stop_recv(cn);
}

void ferry__conn_resume(struct ferry__conn *cn)
{
	/* The queue is fed from the timer, not from inside resume (which
	 * may be called from a callback of this very connection). */
	cn->last_io = ferry_time_now();
	ferry_timer_start(conn_loop(cn), &cn->timer, 0);
}

/* ------------------------------------------------------------------ */
/* Timer: read timeout, idle expiry, deferred work                       */

static void conn_timer_fn(struct ferry_timer *t)
{
	struct ferry__conn *cn = ferry__http_container_of(t,
					struct ferry__conn, timer);
	uint64_t rt, now;

	conn_hold(cn);
	switch (cn->state) {
	case FERRY__CONN_CLOSING:
		break;
	case FERRY__CONN_IDLE:
		/* The timer may be one set for the request before (see
		 * conn_timer_by): wait on until the idle deadline. */
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
			conn_error(cn, err, "%s", ferry_strerror(err));
			break;
		}
		now = ferry_time_now();
		if (cn->state == FERRY__CONN_HANDSHAKE) {
			if (now >= cn->hs_deadline)
				conn_error(cn, FERRY_ECONNECT_TIMEOUT,
					   "TLS handshake not done within %u ms",
					   cn->connect_timeout_ms);
			else
				ferry_timer_start(cn->client->loop, t,
						  cn->hs_deadline);
			break;
		}
		if (cn->state < FERRY__CONN_SEND || !cn->req || cn->req->paused)
			break;
		rt = req_read_timeout_ns(cn);
		if (rt && now >= cn->last_io + rt && !cn->body_wait) {
			conn_error(cn, FERRY_EREAD_TIMEOUT,
				   "no byte received for %llu ms",
				   (unsigned long long)(rt / FERRY__MS));
			break;
		}
		if (rt)
			ferry_timer_start(cn->client->loop, t,
					  (cn->body_wait ? now : cn->last_io) + rt);
		if (cn->body_kick) {
			cn->body_kick = false;
			conn_send_more(cn);
			if (cn->state == FERRY__CONN_CLOSING || !cn->req)
				break;
		}
		conn_pump(cn);
		break;
	}
	conn_leave(cn);
}

/* ------------------------------------------------------------------ */
/* Creation, pooling, closing                                             */

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
	cn->origin = o;
	cn->fd = -1;
	cn->transport = o->scheme == FERRY_URL_HTTPS ? FERRY__TRANSPORT_TLS
						     : FERRY__TRANSPORT_TCP;
	cn->timer.fn = conn_timer_fn;
	cn->op.fn = conn_op_done;
	cn->recv_op.fn = conn_recv_done;
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
	cn->connect_timeout_ms = req->connect_timeout_ms
					 ? req->connect_timeout_ms
					 : c->opts.connect_timeout_ms;

	conn_hold(cn);
	if (cn->transport == FERRY__TRANSPORT_TLS)
		err = ferry__tls_new(c->tls_cfg, req->url.host,
				     req->url.host_len,
				     req->url.host_type != FERRY_URL_HOST_NAME,
				     o->key, &cn->tls);
	else
		err = 0;
	if (err == 0)
		err = conn_resolve(cn, &req->url);
	if (err < 0) {
		cn->state = FERRY__CONN_SOCKET;
		conn_fail_soon(cn, err);
	}
	conn_leave(cn);
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
	conn_hold(cn);
	conn_arm_recv(cn);
	if (!reuse || c->closing || !o || cn->eof || cn->rx_err ||
	    !cn->recv_armed || cn->nin) {
		ferry__conn_close(cn);
		conn_leave(cn);
		return;
	}
	cn->state = FERRY__CONN_IDLE;
	cn->niov = 0;
	ferry__list_add_head(&o->idle, &cn->pool);
	c->nidle++;
	if (c->opts.idle_timeout_ms != FERRY_HTTP_NO_TIMEOUT) {
		cn->idle_deadline = ferry_loop_now(c->loop) +
				    c->opts.idle_timeout_ms * FERRY__MS;
		conn_timer_by(cn, cn->idle_deadline);
	} else {
		cn->idle_deadline = 0;
		ferry_timer_stop(c->loop, &cn->timer);
	}
	ferry__client_dispatch(c, o);
	conn_leave(cn);
}

/* Stop counting cn and start closing it, without dispatching. */
static void conn_shut(struct ferry__conn *cn)
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
		cn->req->conn = NULL;
		cn->req = NULL;
	}
	ferry__dns_cancel(&cn->dns_wait);
	if (cn->he) {
		ferry__he_abandon(cn->he);	/* it frees itself */
		cn->he = NULL;
	}
	cn->state = FERRY__CONN_CLOSING;
	cn->origin = NULL;
	ferry_timer_stop(c->loop, &cn->timer);
	input_drop(cn);
	conn_hold(cn);
	conn_leave(cn);
}

void ferry__conn_close(struct ferry__conn *cn)
{
	struct ferry__origin *o = cn->origin;

	if (cn->state == FERRY__CONN_CLOSING)
		return;
	conn_hold(cn);
	conn_shut(cn);
	/* A slot is free: a waiting request may open a connection. */
	ferry__client_slot_freed(cn->client, o);
	conn_leave(cn);
}

void ferry__conn_close_quiet(struct ferry__conn *cn)
{
	conn_shut(cn);
}

static void conn_free(struct ferry__conn *cn)
{
	struct ferry_http_client *c = cn->client;

	ferry__list_del(&cn->link);
	ferry__h1_resp_free(&cn->parser);
	ferry__tls_free(cn->tls);
	free(cn->tls_pend);
	free(cn->in);
	free(cn->addrs);
	free(cn->addrlens);
	free(cn);
	ferry__client_maybe_free(c);
}

/*
 * A TLS connection that finished its handshake sends close_notify before
 * its socket closes (RFC 5246 7.2.1), so the server can tell our close
 * from a truncation. Not when a record send was cut off by the cancel
 * (the engine's output is then out of step with the stream), and never
 * waiting: MSG_DONTWAIT, so a socket that cannot take the 31 bytes at
 * once closes without them. Returns true if the send is on its way.
 */
static bool tls_say_goodbye(struct ferry__conn *cn)
{
	const void *p;
	size_t len;

	cn->tls_bye = true;
	if (cn->tls_sending || !ferry__tls_ready(cn->tls))
		return false;
	ferry__tls_close(cn->tls);
	p = ferry__tls_out(cn->tls, &len);
	if (!p)
		return false;
	cn->op.fn = conn_op_done;
	return ferry_op_send(conn_loop(cn), &cn->op, cn->fd, p, len,
			     MSG_NOSIGNAL | MSG_DONTWAIT) == 0;
}

/*
 * Called whenever a CLOSING connection is no longer held: cancel what is
 * in flight, say close_notify on TLS, then close the fd, then free. Each
 * step's completion comes back here through conn_leave.
 */
static void conn_teardown(struct ferry__conn *cn)
{
	struct ferry_loop *loop = conn_loop(cn);

	if (ferry_op_busy(&cn->recv_op) && !cn->recv_cancel_sent) {
		cn->recv_cancel_sent = true;
		ferry_op_cancel(loop, &cn->recv_op);
	}
	if (ferry_op_busy(&cn->op) && !cn->op_cancel_sent && !cn->closing_fd) {
		cn->op_cancel_sent = true;
		ferry_op_cancel(loop, &cn->op);
	}
	if (ferry_op_busy(&cn->recv_op) || ferry_op_busy(&cn->op))
		return;
	if (cn->fd >= 0 && cn->tls && !cn->tls_bye && tls_say_goodbye(cn))
		return;
	if (cn->fd >= 0) {
		int fd = cn->fd;

		cn->fd = -1;
		cn->op.fn = conn_op_done;
		if (ferry_op_close(loop, &cn->op, fd) == 0) {
			cn->closing_fd = true;
			return;
		}
		close(fd);	/* the loop is going away: do it now */
	}
	conn_free(cn);
}

/* ------------------------------------------------------------------ */
/* TLS transport                                                         */

/* An engine failure: certificate problems keep their code; anything else
 * is a handshake failure before the handshake ended, a protocol error
 * after. */
static void tls_fail(struct ferry__conn *cn, int st, const char *why)
{
	if (st == FERRY_ETLS_HANDSHAKE && cn->state != FERRY__CONN_HANDSHAKE)
		st = FERRY_EPROTO;
	conn_error(cn, st, "%s", why);
}

/* Send the engine's records, if it has some and op is free. */
static void tls_kick(struct ferry__conn *cn)
{
	const void *p;
	size_t len;
	int err;

	if (cn->tls_sending || cn->fd < 0 || cn->state == FERRY__CONN_CLOSING)
		return;
	p = ferry__tls_out(cn->tls, &len);
	if (!p)
		return;
	cn->op.fn = conn_op_done;
	err = ferry_op_send(conn_loop(cn), &cn->op, cn->fd, p, len,
			    MSG_NOSIGNAL);
	if (err < 0)
		conn_fail_soon(cn, err);
	else
		cn->tls_sending = true;
}

/* Plaintext out of the engine onto the input queue. */
static void tls_drain(struct ferry__conn *cn)
{
	const void *p;
	size_t len;

	while ((p = ferry__tls_read(cn->tls, &len)) != NULL) {
		if (input_push_copy(cn, p, len) < 0) {
			if (!cn->rx_err)
				cn->rx_err = -ENOMEM;
			return;
		}
		ferry__tls_read_ack(cn->tls, len);
	}
}

/* Feed as much of data as the engine takes; returns what it took. */
static size_t tls_feed(struct ferry__conn *cn, const unsigned char *data,
		       size_t len)
{
	size_t done = 0;

	while (done < len) {
		size_t n = ferry__tls_feed(cn->tls, data + done, len - done);

		if (!n) {
			/* It may take more once its plaintext is out. */
			tls_drain(cn);
			n = ferry__tls_feed(cn->tls, data + done, len - done);
			if (!n)
				break;
		}
		done += n;
	}
	tls_drain(cn);
	return done;
}

static void tls_feed_pend(struct ferry__conn *cn)
{
	size_t n;

	if (!cn->tls_pend_len)
		return;
	n = tls_feed(cn, cn->tls_pend, cn->tls_pend_len);
	cn->tls_pend_len -= n;
	memmove(cn->tls_pend, cn->tls_pend + n, cn->tls_pend_len);
}

/* Ciphertext received; what the engine cannot take yet waits. */
static void tls_input(struct ferry__conn *cn, const void *data, size_t len)
{
	size_t n = 0;

	if (!cn->tls_pend_len)
		n = tls_feed(cn, data, len);
	if (n == len)
		return;
	if (cn->tls_pend_len + len - n > cn->tls_pend_cap) {
		size_t cap = cn->tls_pend_len + len - n;
		unsigned char *p = realloc(cn->tls_pend, cap);

		if (!p) {
			if (!cn->rx_err)
				cn->rx_err = -ENOMEM;
			return;
		}
		cn->tls_pend = p;
		cn->tls_pend_cap = cap;
	}
	memcpy(cn->tls_pend + cn->tls_pend_len, (const char *)data + n, len - n);
	cn->tls_pend_len += len - n;
	tls_feed_pend(cn);
}

/* After the TCP connect: the client hello goes out. */
static void tls_start(struct ferry__conn *cn)
{
	const struct ferry_http_client *c = cn->client;

	cn->state = FERRY__CONN_HANDSHAKE;
	cn->last_io = ferry_time_now();
	if (cn->connect_timeout_ms != FERRY_HTTP_NO_TIMEOUT) {
		cn->hs_deadline = cn->last_io +
				  cn->connect_timeout_ms * FERRY__MS;
		ferry_timer_start(c->loop, &cn->timer, cn->hs_deadline);
	}
	tls_progress(cn);
}

/* A record send completed. */
static void tls_sent(struct ferry__conn *cn, int res)
{
	cn->tls_sending = false;
	if (res < 0) {
		conn_error(cn, res, "send: %s", ferry_strerrorname(res));
		return;
	}
	cn->last_io = ferry_time_now();
	ferry__tls_out_ack(cn->tls, (size_t)res);
	tls_progress(cn);
	if (cn->state == FERRY__CONN_SEND)
		tls_send_more(cn);
	else if (cn->state == FERRY__CONN_RECV || cn->state == FERRY__CONN_IDLE)
		conn_pump(cn);
}

/*
 * Whatever happened (bytes in, records out), look at the engine: move
 * its plaintext to the queue, send its records, notice failure, a clean
 * close or the end of the handshake.
 */
static void tls_progress(struct ferry__conn *cn)
{
	char why[FERRY_HTTP_DETAIL_MAX];
	int st;

	tls_feed_pend(cn);
	tls_drain(cn);
	st = ferry__tls_status(cn->tls, why, sizeof(why));
	if (st < 0) {
		tls_fail(cn, st, why);
		return;
	}
	if (st == 1) {
		cn->tls_closed = true;
		cn->eof = true;	/* nothing more can come */
	}
	tls_kick(cn);
	if (cn->state != FERRY__CONN_HANDSHAKE)
		return;
	if (!ferry__tls_ready(cn->tls)) {
		if (cn->rx_err)
			conn_error(cn, FERRY_ETLS_HANDSHAKE,
				   "TLS handshake: recv: %s",
				   ferry_strerrorname(cn->rx_err));
		else if (cn->eof)
			conn_error(cn, FERRY_ETLS_HANDSHAKE,
				   "TLS handshake: the server closed the connection");
		else
			conn_arm_recv(cn);
		return;
	}
	cn->t_tls_done = ferry_time_now();
	ferry__tls_session_save(cn->tls);
	ferry_timer_stop(conn_loop(cn), &cn->timer);
	if (cn->req)
		ferry__conn_assign(cn, cn->req);
	else
		ferry__conn_detach(cn, true);
}

/*
 * SEND over TLS: plaintext (head, then body) into the engine, its
 * records out on op, one send at a time, until all of it is out.
 */
static void tls_send_more(struct ferry__conn *cn)
{
	struct ferry_http_request *req = cn->req;

	while (cn->state == FERRY__CONN_SEND && cn->req == req &&
	       !cn->tls_sending) {
		const void *rec;
		size_t rlen;

		rec = ferry__tls_out(cn->tls, &rlen);
		if (rec) {
			tls_kick(cn);
			return;
		}
		if (cn->niov) {
			size_t n = ferry__tls_write(cn->tls, cn->iov[0].iov_base,
						    cn->iov[0].iov_len);

			if (!n) {
				/* Buffer full: close the record to send it. */
				ferry__tls_flush(cn->tls);
				if (!ferry__tls_out(cn->tls, &rlen)) {
					char why[FERRY_HTTP_DETAIL_MAX];
					int st = ferry__tls_status(cn->tls, why,
								   sizeof(why));

					conn_error(cn, st < 0 ? st : FERRY_EPROTO,
						   "%s", st < 0 ? why :
						   "TLS: engine refuses data");
					return;
				}
				continue;
			}
			ferry__iov_advance(cn, n);
			continue;
		}
		if (req->body_kind == FERRY__BODY_PRODUCER && !cn->body_wait &&
		    !cn->body_end_sent) {
			int r = conn_pull_body(cn);

			if (r < 0 && r != FERRY_HTTP_BODY_WAIT)
				return;
			if (r == 1)
				continue;
		}
		ferry__tls_flush(cn->tls);
		if (ferry__tls_out(cn->tls, &rlen))
			continue;
		if (cn->body_wait)
			return;
		cn->state = FERRY__CONN_RECV;
		cn->last_io = ferry_time_now();
		return;
	}
}
