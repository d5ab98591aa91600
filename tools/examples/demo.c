/*
 * demo.c - the runtime doing real I/O on loopback, in one loop thread.
 *
 * It resolves "localhost" on the offload pool, starts a TCP echo server
 * (multishot accept, multishot recv into a provided-buffer ring, send),
 * connects N clients to it with socket/connect ops, has each send M
 * messages and checks every echoed byte, with a linked timeout guarding
 * each client recv and a timer reporting progress. Exit status 0 means
 * every byte came back intact.
 *
 * Usage: ferry-demo [clients] [messages-per-client]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/loop.h"
#include "ferry/offload.h"
#include "ferry/timer.h"

#define container_of(p, T, m) ((T *)(void *)((char *)(p) - offsetof(T, m)))

#define MSG_LEN 512

struct demo;

struct server_conn {
	struct demo *demo;
	int fd;
	struct ferry_op recv_op;
	struct ferry_op send_op;
	struct ferry_op close_op;
	char pending[64 * 1024];	/* echoed bytes waiting to be sent */
	size_t npending;
	size_t sending;
	bool eof;
};

struct client {
	struct demo *demo;
	int fd;
	unsigned id;
	int state;		/* the op in flight: enum client_state */
	unsigned sent;		/* messages sent */
	size_t got;		/* bytes of the current echo received */
	char out[MSG_LEN];
	char in[MSG_LEN];
	struct ferry_op op;
};

struct demo {
	struct ferry_loop *loop;
	struct ferry_bufring *br;
	struct sockaddr_in addr;
	int lfd;
	struct ferry_op accept_op;
	struct ferry_timer progress;
	struct ferry_offload resolve;
	struct addrinfo *ai;
	int gai_ret;
	unsigned nclients, nmsgs, done, failed;
	uint64_t bytes, start;
	struct client *clients;
};

static void fail(struct demo *d, const char *what, int res)
{
	fprintf(stderr, "demo: %s: %s\n", what, ferry_strerror(res));
	d->failed++;
}

/* ---------------- server side ---------------- */

static void server_send_more(struct server_conn *c);

static void server_closed(struct ferry_op *op, int res, unsigned flags)
{
	free(container_of(op, struct server_conn, close_op));
}

static void server_maybe_close(struct server_conn *c)
{
	if (c->eof && !ferry_op_busy(&c->recv_op) && !ferry_op_busy(&c->send_op)) {
		c->close_op.fn = server_closed;
		if (ferry_op_close(c->demo->loop, &c->close_op, c->fd) < 0) {
			close(c->fd);
			free(c);
		}
	}
}

static void server_sent(struct ferry_op *op, int res, unsigned flags)
{
	struct server_conn *c = container_of(op, struct server_conn, send_op);

	if (res < 0) {
		c->eof = true;
	} else {
		memmove(c->pending, c->pending + res, c->npending - (size_t)res);
		c->npending -= (size_t)res;
	}
	server_send_more(c);
	server_maybe_close(c);
}

static void server_send_more(struct server_conn *c)
{
	if (c->npending && !c->eof && !ferry_op_busy(&c->send_op))
		ferry_op_send(c->demo->loop, &c->send_op, c->fd, c->pending,
			      c->npending, MSG_NOSIGNAL);
}

static void server_recv(struct ferry_op *op, int res, unsigned flags)
{
	struct server_conn *c = container_of(op, struct server_conn, recv_op);
	struct demo *d = c->demo;

	if (res > 0) {
		unsigned bid = ferry_cqe_bid(flags);

		/* The clients send one message and wait for its echo, so
		 * pending never holds more than a message per connection. */
		if (c->npending + (size_t)res <= sizeof(c->pending)) {
			memcpy(c->pending + c->npending, ferry_bufring_buf(d->br, bid),
			       (size_t)res);
			c->npending += (size_t)res;
		}
		ferry_bufring_recycle(d->br, bid);
		server_send_more(c);
	} else if (!(flags & FERRY_CQE_MORE)) {
		c->eof = true;	/* 0 = peer closed, < 0 = error */
	}
	server_maybe_close(c);
}

static void server_accept(struct ferry_op *op, int res, unsigned flags)
{
	struct demo *d = container_of(op, struct demo, accept_op);
	struct server_conn *c;

	if (res < 0)
		return;	/* cancelled at shutdown */
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(res);
		return;
	}
	c->demo = d;
	c->fd = res;
	c->recv_op.fn = server_recv;
	c->send_op.fn = server_sent;
	if (ferry_op_recv_multishot(d->loop, &c->recv_op, c->fd, d->br) < 0) {
		close(c->fd);
		free(c);
	}
}

/* ---------------- client side ---------------- */

/*
 * One op per client, used in turn for socket, connect, send and recv; the
 * state names the op that is in flight, so the callback reads as the
 * client's life from top to bottom.
 */
enum client_state { C_SOCKET, C_CONNECT, C_SEND, C_RECV };

static void client_step(struct ferry_op *op, int res, unsigned flags);

static void client_send_next(struct client *c)
{
	struct demo *d = c->demo;

	for (size_t i = 0; i < MSG_LEN; i++)
		c->out[i] = (char)('a' + (c->id * 7 + c->sent * 13 + i) % 26);
	c->got = 0;
	c->state = C_SEND;
	ferry_op_send(d->loop, &c->op, c->fd, c->out, MSG_LEN, MSG_NOSIGNAL);
}

static void client_finish(struct client *c, int res, const char *what)
{
	struct demo *d = c->demo;

	if (res < 0)
		fail(d, what, res);
	close(c->fd);
	c->fd = -1;
	if (++d->done == d->nclients) {
		ferry_op_cancel(d->loop, &d->accept_op);
		ferry_timer_stop(d->loop, &d->progress);
		ferry_loop_stop(d->loop);
	}
}

static void client_step(struct ferry_op *op, int res, unsigned flags)
{
	struct client *c = container_of(op, struct client, op);
	struct demo *d = c->demo;

	switch ((enum client_state)c->state) {
	case C_SOCKET:
		if (res < 0)
			return client_finish(c, res, "socket");
		c->fd = res;
		c->state = C_CONNECT;
		ferry_op_connect(d->loop, op, c->fd, (struct sockaddr *)&d->addr,
				 sizeof(d->addr));
		return;
	case C_CONNECT:
		if (res < 0)
			return client_finish(c, res, "connect");
		client_send_next(c);
		return;
	case C_SEND:
		if (res != MSG_LEN)
			return client_finish(c, res < 0 ? res : -EIO, "send");
		c->got = 0;
		c->state = C_RECV;
		ferry_op_recv(d->loop, op, c->fd, c->in, MSG_LEN, 0);
		/* A lost echo must not hang the demo. */
		ferry_op_set_timeout(d->loop, op, 5ull * 1000 * 1000 * 1000);
		return;
	case C_RECV:
		if (res <= 0)
			return client_finish(c, res ? res : -ECONNRESET, "recv");
		c->got += (size_t)res;
		d->bytes += (size_t)res;
		if (c->got < MSG_LEN) {
			ferry_op_recv(d->loop, op, c->fd, c->in + c->got,
				      MSG_LEN - c->got, 0);
			return;
		}
		if (memcmp(c->in, c->out, MSG_LEN) != 0)
			return client_finish(c, -EBADMSG, "echo mismatch");
		if (++c->sent == d->nmsgs)
			return client_finish(c, 0, NULL);
		client_send_next(c);
		return;
	}
}

/* ---------------- set-up ---------------- */

static void progress_fn(struct ferry_timer *t)
{
	struct demo *d = container_of(t, struct demo, progress);

	printf("  ... %u/%u clients done, %llu bytes echoed\n", d->done,
	       d->nclients, (unsigned long long)d->bytes);
	ferry_timer_start(d->loop, t, ferry_time_now() + 250ull * 1000 * 1000);
}

static void resolve_work(struct ferry_offload *job)
{
	struct demo *d = container_of(job, struct demo, resolve);
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };

	/* Runs on an offload worker: getaddrinfo blocks. */
	d->gai_ret = getaddrinfo("localhost", NULL, &hints, &d->ai);
}

static int start_server(struct demo *d)
{
	socklen_t len = sizeof(d->addr);
	int one = 1;

	d->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (d->lfd < 0)
		return -errno;
	setsockopt(d->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	d->addr.sin_port = 0;
	if (bind(d->lfd, (struct sockaddr *)&d->addr, sizeof(d->addr)) < 0 ||
	    listen(d->lfd, 1024) < 0 ||
	    getsockname(d->lfd, (struct sockaddr *)&d->addr, &len) < 0)
		return -errno;
	d->accept_op.fn = server_accept;
	return ferry_op_accept_multishot(d->loop, &d->accept_op, d->lfd);
}

static void resolve_done(struct ferry_offload *job, int status)
{
	struct demo *d = container_of(job, struct demo, resolve);
	int ret;

	if (status < 0 || d->gai_ret != 0) {
		fprintf(stderr, "demo: resolving localhost: %s\n",
			status < 0 ? ferry_strerror(status) : gai_strerror(d->gai_ret));
		d->failed++;
		ferry_loop_stop(d->loop);
		return;
	}
	memcpy(&d->addr, d->ai->ai_addr, sizeof(d->addr));
	freeaddrinfo(d->ai);
	printf("resolved localhost -> %s on an offload thread\n",
	       inet_ntoa(d->addr.sin_addr));
	ret = start_server(d);
	if (ret < 0) {
		fail(d, "listen", ret);
		ferry_loop_stop(d->loop);
		return;
	}
	printf("echo server listening on 127.0.0.1:%u (multishot accept + recv)\n",
	       ntohs(d->addr.sin_port));
	for (unsigned i = 0; i < d->nclients; i++) {
		struct client *c = &d->clients[i];

		c->demo = d;
		c->id = i;
		c->fd = -1;
		c->state = C_SOCKET;
		c->op.fn = client_step;
		ret = ferry_op_socket(d->loop, &c->op, AF_INET,
				      SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (ret < 0)
			client_finish(c, ret, "socket op");
	}
	d->start = ferry_time_now();
	d->progress.fn = progress_fn;
	ferry_timer_start(d->loop, &d->progress, d->start + 250ull * 1000 * 1000);
}

int main(int argc, char **argv)
{
	struct demo d = { .nclients = 16, .nmsgs = 200, .lfd = -1 };
	char why[256];
	double secs;
	int ret;

	if (argc > 1)
		d.nclients = (unsigned)atoi(argv[1]);
	if (argc > 2)
		d.nmsgs = (unsigned)atoi(argv[2]);
	if (!d.nclients || !d.nmsgs || d.nclients > 10000) {
		fprintf(stderr, "usage: %s [clients 1..10000] [messages]\n", argv[0]);
		return 2;
	}
	ret = ferry_loop_create(&d.loop, NULL, why, sizeof(why));
	if (ret < 0) {
		fprintf(stderr, "demo: cannot create loop: %s (%s)\n",
			ferry_strerror(ret), why);
		return 1;
	}
	printf("ferry loop up; kernel features: %s\n", ferry_loop_describe(d.loop));
	ret = ferry_bufring_create(d.loop, 256, 4096, &d.br);
	d.clients = calloc(d.nclients, sizeof(*d.clients));
	if (ret < 0 || !d.clients) {
		fprintf(stderr, "demo: set-up: %s\n", ferry_strerror(ret ?: -ENOMEM));
		ferry_loop_destroy(d.loop);
		free(d.clients);
		return 1;
	}
	d.resolve.work = resolve_work;
	d.resolve.done = resolve_done;
	ferry_offload_submit(d.loop, &d.resolve);

	ret = ferry_loop_run(d.loop);
	secs = (double)(ferry_time_now() - d.start) / 1e9;
	ferry_loop_destroy(d.loop);	/* cancels and reaps whatever is left */
	if (d.lfd >= 0)
		close(d.lfd);
	for (unsigned i = 0; i < d.nclients; i++)
		if (d.clients[i].fd >= 0)
			close(d.clients[i].fd);
	free(d.clients);
	if (ret < 0 || d.failed) {
		fprintf(stderr, "demo: FAILED (%u errors)\n", d.failed);
		return 1;
	}
	printf("%u clients x %u messages of %d bytes echoed and verified: "
	       "%llu bytes in %.3f s\n", d.nclients, d.nmsgs, MSG_LEN,
	       (unsigned long long)d.bytes, secs);
	printf("OK\n");
	return 0;
}
