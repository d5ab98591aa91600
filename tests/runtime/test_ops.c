/*
 * test_ops.c - every single-shot op kind against real sockets and files,
 * linked timeouts, multishot accept and poll, and cancellation.
 */
#include "util.h"

#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "ferry/timer.h"

/* Inflight count of an idle loop (the doorbell may keep a poll armed). */
static unsigned idle_inflight(struct ferry_loop *loop)
{
	rt_turn(loop, 0);
	return ferry_loop_inflight(loop);
}

Test(ops, socket_connect_send_recv_close, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct sockaddr_in addr;
	int lfd = rt_listen_tcp(&addr);
	struct rt_op o;
	char buf[64];
	int fd, peer, rc;

	rt_op_init(&o);
	rc = ferry_op_socket(loop, &o.op, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(rc, 0, "ferry_op_socket: %s", ferry_strerrorname(rc));
	cr_assert_eq(o.ncalls, 0, "completion ran inside the starting call");
	cr_assert(ferry_op_busy(&o.op));
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_geq(o.res, 0, "socket op: %s", ferry_strerrorname(o.res));
	cr_assert(!ferry_op_busy(&o.op));
	fd = o.res;
	cr_assert(rt_fd_is_open(fd));

	rt_op_init(&o);
	cr_assert_eq(ferry_op_connect(loop, &o.op, fd, (struct sockaddr *)&addr,
				      sizeof(addr)), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, 0, "connect: %s", ferry_strerrorname(o.res));
	peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(peer, 0);

	rt_op_init(&o);
	cr_assert_eq(ferry_op_send(loop, &o.op, fd, "hello", 5, MSG_NOSIGNAL), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, 5, "send: %s", ferry_strerrorname(o.res));
	rt_read_all(peer, buf, 5);
	cr_assert_arr_eq(buf, "hello", 5);

	rt_write_all(peer, "world!", 6);
	rt_op_init(&o);
	memset(buf, 0, sizeof(buf));
	cr_assert_eq(ferry_op_recv(loop, &o.op, fd, buf, sizeof(buf), 0), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, 6, "recv: %s", ferry_strerrorname(o.res));
	cr_assert_arr_eq(buf, "world!", 6);
	cr_assert_eq(o.bad_thread, 0);

	rt_op_init(&o);
	cr_assert_eq(ferry_op_close(loop, &o.op, fd), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, 0, "close: %s", ferry_strerrorname(o.res));
	cr_assert(!rt_fd_is_open(fd), "fd %d still open after close op", fd);

	/* The peer sees the close as EOF. */
	cr_assert_eq(read(peer, buf, sizeof(buf)), 0);
	close(peer);
	close(lfd);
	ferry_loop_destroy(loop);
}

Test(ops, socket_op_unix_and_error, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rt_op o;

	rt_op_init(&o);
	cr_assert_eq(ferry_op_socket(loop, &o.op, AF_UNIX, SOCK_STREAM, 0), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_geq(o.res, 0, "socket: %s", ferry_strerrorname(o.res));
	close(o.res);

	/* A bogus family is the kernel's error, delivered as a completion. */
	rt_op_init(&o);
	cr_assert_eq(ferry_op_socket(loop, &o.op, 12345, SOCK_STREAM, 0), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, -EAFNOSUPPORT, "got %s", ferry_strerrorname(o.res));
	ferry_loop_destroy(loop);
}

Test(ops, connect_refused, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	struct rt_op o;
	int holder, fd;

	/* A bound but not listening socket holds a port nobody accepts on. */
	holder = socket(AF_INET, SOCK_STREAM, 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(holder, (struct sockaddr *)&addr, sizeof(addr)), 0);
	cr_assert_eq(getsockname(holder, (struct sockaddr *)&addr, &len), 0);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	rt_op_init(&o);
	cr_assert_eq(ferry_op_connect(loop, &o.op, fd, (struct sockaddr *)&addr,
				      sizeof(addr)), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, -ECONNREFUSED, "got %s", ferry_strerrorname(o.res));
	close(fd);
	close(holder);
	ferry_loop_destroy(loop);
}

Test(ops, sendmsg_gathers_iovecs, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	char a[] = "alpha-", b[] = "beta-", c[] = "gamma";
	struct iovec iov[3] = {
		{ a, strlen(a) }, { b, strlen(b) }, { c, strlen(c) },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 3 };
	const char *want = "alpha-beta-gamma";
	char got[32] = "";
	struct rt_op o;
	int sv[2];

	rt_socketpair(sv);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_sendmsg(loop, &o.op, sv[0], &msg, MSG_NOSIGNAL), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, (int)strlen(want), "sendmsg: %s",
		     ferry_strerrorname(o.res));
	rt_read_all(sv[1], got, strlen(want));
	cr_assert_str_eq(got, want);
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

Test(ops, send_to_closed_peer_fails, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rt_op o;
	int sv[2];

	rt_socketpair(sv);
	close(sv[1]);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_send(loop, &o.op, sv[0], "x", 1, MSG_NOSIGNAL), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, -EPIPE, "got %s", ferry_strerrorname(o.res));
	close(sv[0]);
	ferry_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */
/* Sends. On epoll a send with nothing ahead of it on its fd runs in the
 * starting call (epoll.c, ep_start_now); on both backends its completion
 * comes from a turn, and a deadline set after the start still holds.    */

static bool on_epoll(struct ferry_loop *loop)
{
	return strcmp(ferry_loop_backend(loop), "epoll") == 0;
}

/* Fill @fd's send buffer (made small first) until a send would block;
 * returns how many bytes are in it. */
static size_t fill_sndbuf(int fd)
{
	char chunk[1024];
	size_t total = 0;
	int sz = 4096;

	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
	memset(chunk, 'f', sizeof(chunk));
	for (;;) {
		ssize_t n = send(fd, chunk, sizeof(chunk), MSG_DONTWAIT);

		if (n < 0) {
			cr_assert(errno == EAGAIN || errno == EWOULDBLOCK,
				  "send: %s", strerror(errno));
			return total;
		}
		total += (size_t)n;
	}
}

/* Read the @n filler bytes fill_sndbuf put in the peer's way. */
static void drain_filler(int fd, size_t n)
{
	char *buf = malloc(n);

	cr_assert_not_null(buf);
	rt_read_all(fd, buf, n);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(buf[i], 'f', "filler byte %zu is %d", i, buf[i]);
	free(buf);
}

Test(ops, send_completes_in_a_turn_and_keeps_its_result, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	unsigned base = idle_inflight(loop);
	struct pollfd pfd;
	struct rt_op o;
	char buf[8];
	int sv[2];

	rt_socketpair(sv);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_send(loop, &o.op, sv[0], "hello", 5,
				   MSG_NOSIGNAL), 0);
	/* Set after the send may have run (epoll): not needed, and not
	 * what the owner sees. */
	cr_assert_eq(ferry_op_set_timeout(loop, &o.op, 60000 * RT_MS), 0);
	cr_assert_eq(o.ncalls, 0, "completion ran inside the starting call");
	cr_assert(ferry_op_busy(&o.op));
	if (on_epoll(loop)) {
		/* The bytes left in the starting call, before any turn. */
		pfd = (struct pollfd){ .fd = sv[1], .events = POLLIN };
		cr_assert_eq(poll(&pfd, 1, 0), 1, "the send waited for a turn");
	}
	RT_RUN_UNTIL(loop, o.nfinal == 1, 3000);
	cr_assert_eq(o.res, 5, "send: %s", ferry_strerrorname(o.res));
	rt_read_all(sv[1], buf, 5);
	cr_assert_arr_eq(buf, "hello", 5);
	rt_run_for(loop, 10);
	cr_assert_eq(o.ncalls, 1);
	cr_assert_eq(ferry_loop_inflight(loop), base, "CQEs left in flight");
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

Test(ops, send_into_a_full_socket_waits_for_room, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	unsigned base = idle_inflight(loop);
	char payload[64], got[64];
	struct rt_op o;
	size_t filled;
	int sv[2];

	rt_socketpair(sv);
	filled = fill_sndbuf(sv[0]);
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (char)('A' + i % 26);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_send(loop, &o.op, sv[0], payload, sizeof(payload),
				   MSG_NOSIGNAL), 0);
	cr_assert_eq(ferry_op_set_timeout(loop, &o.op, 60000 * RT_MS), 0);
	rt_run_for(loop, 30);
	cr_assert_eq(o.ncalls, 0, "a send completed into a full socket: %s",
		     ferry_strerrorname(o.res));
	drain_filler(sv[1], filled);
	RT_RUN_UNTIL(loop, o.nfinal == 1, 3000);
	cr_assert_eq(o.res, (int)sizeof(payload), "send: %s",
		     ferry_strerrorname(o.res));
	rt_read_all(sv[1], got, sizeof(got));
	cr_assert_arr_eq(got, payload, sizeof(payload));
	rt_run_for(loop, 10);
	cr_assert_eq(o.ncalls, 1);
	cr_assert_eq(ferry_loop_inflight(loop), base, "CQEs left in flight");
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

Test(ops, send_into_a_full_socket_meets_its_deadline, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	unsigned base = idle_inflight(loop);
	struct rt_op o;
	size_t filled;
	char c;
	int sv[2];

	rt_socketpair(sv);
	filled = fill_sndbuf(sv[0]);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_send(loop, &o.op, sv[0], "late", 4,
				   MSG_NOSIGNAL), 0);
	cr_assert_eq(ferry_op_set_timeout(loop, &o.op, 30 * RT_MS), 0);
	RT_RUN_UNTIL(loop, o.nfinal == 1, 3000);
	cr_assert_eq(o.res, -ETIME, "got %s", ferry_strerrorname(o.res));
	rt_run_for(loop, 10);
	cr_assert_eq(o.ncalls, 1);
	cr_assert_eq(ferry_loop_inflight(loop), base, "CQEs left in flight");
	/* Nothing of it went out: the peer finds the filler alone. */
	drain_filler(sv[1], filled);
	cr_assert_eq(recv(sv[1], &c, 1, MSG_DONTWAIT), -1);
	cr_assert_eq(errno, EAGAIN);
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

/*
 * What runs in the starting call never overtakes an earlier op on the
 * same fd: a send waiting for room, or one on the submit list (a close).
 * io_uring promises no order between unlinked SQEs: epoll only.
 */
Test(ops, a_send_never_overtakes_an_earlier_op_on_its_fd, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rt_op a, b;
	size_t filled;
	char got[16];
	int sv[2];

	if (!on_epoll(loop)) {
		ferry_loop_destroy(loop);
		cr_skip_test("io_uring: unlinked SQEs have no promised order");
	}
	rt_socketpair(sv);
	filled = fill_sndbuf(sv[0]);
	rt_op_init(&a);
	rt_op_init(&b);
	cr_assert_eq(ferry_op_send(loop, &a.op, sv[0], "first-", 6,
				   MSG_NOSIGNAL), 0);
	rt_run_for(loop, 10);
	cr_assert_eq(a.ncalls, 0);
	/* Room again, but the first send has not had its turn yet. */
	drain_filler(sv[1], filled);
	cr_assert_eq(ferry_op_send(loop, &b.op, sv[0], "second", 6,
				   MSG_NOSIGNAL), 0);
	RT_RUN_UNTIL(loop, a.nfinal == 1 && b.nfinal == 1, 3000);
	cr_assert_eq(a.res, 6);
	cr_assert_eq(b.res, 6);
	rt_read_all(sv[1], got, 12);
	cr_assert_arr_eq(got, "first-second", 12);

	/* A close on the submit list goes first: the send finds no fd. */
	rt_op_init(&a);
	rt_op_init(&b);
	cr_assert_eq(ferry_op_close(loop, &a.op, sv[0]), 0);
	cr_assert_eq(ferry_op_send(loop, &b.op, sv[0], "x", 1, MSG_NOSIGNAL), 0);
	RT_RUN_UNTIL(loop, a.nfinal == 1 && b.nfinal == 1, 3000);
	cr_assert_eq(a.res, 0, "close: %s", ferry_strerrorname(a.res));
	cr_assert_eq(b.res, -EBADF, "send: %s", ferry_strerrorname(b.res));
	cr_assert_eq(read(sv[1], got, sizeof(got)), 0, "the send went out");
	close(sv[1]);
	ferry_loop_destroy(loop);
}

/* Sends restarted from their own callbacks that never block: each turn
 * runs a few and returns, as each io_uring turn submits what the last
 * one prepared (regression: on epoll one turn ran the whole chain). */
struct send_chain {
	struct ferry_op op;
	struct ferry_loop *loop;
	int fd;
	int count;
	int err;
};

#define SEND_CHAIN_LEN 32

static void send_chain_fn(struct ferry_op *op, int res, unsigned flags)
{
	struct send_chain *c = (struct send_chain *)op;
	static const char bytes[] = "abcdefghijklmnopqrstuvwxyz012345";

	(void)flags;
	if (res != 1) {
		c->err++;
		return;
	}
	if (++c->count < SEND_CHAIN_LEN &&
	    ferry_op_send(c->loop, &c->op, c->fd, &bytes[c->count], 1,
			  MSG_NOSIGNAL) != 0)
		c->err++;
}

Test(ops, sends_chained_from_callbacks_do_not_hold_a_turn, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct send_chain c = { .op.fn = send_chain_fn, .loop = loop };
	char got[SEND_CHAIN_LEN];
	int sv[2];

	rt_socketpair(sv);
	c.fd = sv[0];
	cr_assert_eq(ferry_op_send(loop, &c.op, c.fd, "a", 1, MSG_NOSIGNAL), 0);
	rt_turn(loop, 0);
	cr_assert_lt(c.count, SEND_CHAIN_LEN, "one turn ran all %d sends",
		     SEND_CHAIN_LEN);
	RT_RUN_UNTIL(loop, c.count == SEND_CHAIN_LEN || c.err, 3000);
	cr_assert_eq(c.err, 0);
	rt_read_all(sv[1], got, sizeof(got));
	cr_assert_arr_eq(got, "abcdefghijklmnopqrstuvwxyz012345", sizeof(got));
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

/*
 * A request sent from a receive callback, and the peer's answer read in
 * the same turn: the owner sees the send complete before the answer, as
 * on io_uring, where the answer cannot exist before the send has run. The
 * peer answers from inside the callback as soon as the request is there
 * (on epoll: at once, the send ran in the starting call), and the first
 * read fills its buffer, so the backend reads on in the same turn.
 */
struct ask {
	struct ferry_op recv_op, send_op;
	struct ferry_loop *loop;
	struct ferry_bufring *br;
	int fd, peer;
	int nrecv;		/* data completions */
	bool sent, answered;
	bool answer_before_send;
	int err;
};

/* The peer's side: answer the request if it has arrived. */
static void ask_peer(struct ask *a)
{
	char req[3];

	if (!a->answered && recv(a->peer, req, 3, MSG_DONTWAIT) == 3) {
		rt_write_all(a->peer, "answer", 6);
		a->answered = true;
	}
}

static void ask_send_fn(struct ferry_op *op, int res, unsigned flags)
{
	struct ask *a = (struct ask *)((char *)op - offsetof(struct ask, send_op));

	(void)flags;
	if (res != 3)
		a->err++;
	a->sent = true;
}

static void ask_recv_fn(struct ferry_op *op, int res, unsigned flags)
{
	struct ask *a = (struct ask *)((char *)op - offsetof(struct ask, recv_op));

	if (res <= 0 || !(flags & FERRY_CQE_BUFFER)) {
		if (flags & FERRY_CQE_MORE)
			a->err++;
		return;
	}
	ferry_bufring_recycle(a->br, ferry_cqe_bid(flags));
	if (++a->nrecv == 1) {
		if (ferry_op_send(a->loop, &a->send_op, a->fd, "req", 3,
				  MSG_NOSIGNAL) != 0)
			a->err++;
		ask_peer(a);
		return;
	}
	if (!a->sent)
		a->answer_before_send = true;
}

Test(ops, a_send_completes_before_the_answer_to_it, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct ask a = { .recv_op.fn = ask_recv_fn, .send_op.fn = ask_send_fn,
			 .loop = loop };
	int sv[2];

	if (!(ferry_loop_features(loop) & FERRY_FEAT_RECV_MULTISHOT)) {
		ferry_loop_destroy(loop);
		cr_skip_test("no multishot recv");
	}
	rt_socketpair(sv);
	a.fd = sv[0];
	a.peer = sv[1];
	cr_assert_eq(ferry_bufring_create(loop, 4, 16, &a.br), 0);
	/* Exactly one buffer's worth: a full read. */
	rt_write_all(a.peer, "0123456789abcdef", 16);
	cr_assert_eq(ferry_op_recv_multishot(loop, &a.recv_op, a.fd, a.br), 0);
	for (uint64_t end = ferry_time_now() + 3000 * RT_MS;
	     a.nrecv < 2 && ferry_time_now() < end;) {
		rt_turn(loop, 10 * (int64_t)RT_MS);
		ask_peer(&a);
	}
	cr_assert_eq(a.nrecv, 2, "the answer never came");
	cr_assert_eq(a.err, 0);
	cr_assert(a.sent);
	cr_assert(!a.answer_before_send,
		  "the answer reached the owner before its send completed");
	cr_assert_eq(ferry_op_cancel(loop, &a.recv_op), 0);
	RT_RUN_UNTIL(loop, !ferry_op_busy(&a.recv_op), 3000);
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

Test(ops, recv_waits_then_gets_data_and_eof, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rt_op o;
	char buf[16];
	int a, b;

	rt_tcp_pair(&a, &b);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, a, buf, sizeof(buf), 0), 0);
	rt_run_for(loop, 30);
	cr_assert_eq(o.ncalls, 0, "recv completed on a silent socket");
	cr_assert(ferry_op_busy(&o.op));

	rt_write_all(b, "ping", 4);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, 4);
	cr_assert_arr_eq(buf, "ping", 4);

	shutdown(b, SHUT_WR);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, a, buf, sizeof(buf), 0), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, 0, "EOF expected, got %d", o.res);
	close(a);
	close(b);
	ferry_loop_destroy(loop);
}

Test(ops, busy_op_refuses_second_start, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rt_op o;
	char buf[8];
	int sv[2];

	rt_socketpair(sv);
	rt_op_init(&o);
	cr_assert(!ferry_op_busy(&o.op));
	cr_assert_eq(ferry_op_recv(loop, &o.op, sv[0], buf, sizeof(buf), 0), 0);
	cr_assert(ferry_op_busy(&o.op));
	cr_assert_eq(ferry_op_recv(loop, &o.op, sv[0], buf, sizeof(buf), 0),
		     -EBUSY);
	rt_turn(loop, 0);
	cr_assert_eq(ferry_op_timeout(loop, &o.op, RT_MS), -EBUSY);
	cr_assert_eq(ferry_op_cancel(loop, &o.op), 0);
	RT_RUN_UNTIL(loop, o.nfinal == 1, 2000);
	cr_assert_eq(o.res, -ECANCELED);
	cr_assert_eq(ferry_op_cancel(loop, &o.op), -ENOENT);
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */
/* Files.                                                               */

Test(ops, file_openat_write_read_close, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	enum { LEN = 256 * 1024 };
	char dir[256];
	unsigned char *data = malloc(LEN), *back = malloc(LEN);
	struct rt_op o;
	int dfd, fd;

	for (size_t i = 0; i < LEN; i++)
		data[i] = rt_pattern(i);
	rt_tmpdir(dir, sizeof(dir));
	dfd = open(dir, O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(dfd, 0);

	rt_op_init(&o);
	cr_assert_eq(ferry_op_openat(loop, &o.op, dfd, "data.bin",
				     O_CREAT | O_RDWR | O_CLOEXEC, 0600), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_geq(o.res, 0, "openat: %s", ferry_strerrorname(o.res));
	fd = o.res;

	rt_op_init(&o);
	cr_assert_eq(ferry_op_write(loop, &o.op, fd, data, LEN, 0), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 5000);
	cr_assert_eq(o.res, LEN, "write: %d (%s)", o.res, ferry_strerrorname(o.res));

	/* Written at an explicit offset, independent of the file position. */
	rt_op_init(&o);
	cr_assert_eq(ferry_op_write(loop, &o.op, fd, "XYZ", 3, 1000), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, 3);
	data[1000] = 'X'; data[1001] = 'Y'; data[1002] = 'Z';

	rt_op_init(&o);
	cr_assert_eq(ferry_op_read(loop, &o.op, fd, back, LEN, 0), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 5000);
	cr_assert_eq(o.res, LEN, "read: %d", o.res);
	cr_assert_arr_eq(back, data, LEN, "file content differs");

	rt_op_init(&o);
	cr_assert_eq(ferry_op_read(loop, &o.op, fd, back, 100, 5000), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, 100);
	cr_assert_arr_eq(back, data + 5000, 100);

	rt_op_init(&o);
	cr_assert_eq(ferry_op_read(loop, &o.op, fd, back, 100, LEN), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, 0, "read at EOF returned %d", o.res);

	rt_op_init(&o);
	cr_assert_eq(ferry_op_close(loop, &o.op, fd), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, 0);
	cr_assert(!rt_fd_is_open(fd));

	/* The file really holds what the ops wrote. */
	{
		char path[300];
		struct stat st;
		int rfd;

		snprintf(path, sizeof(path), "%s/data.bin", dir);
		cr_assert_eq(stat(path, &st), 0);
		cr_assert_eq(st.st_size, LEN);
		rfd = open(path, O_RDONLY);
		rt_read_all(rfd, back, LEN);
		cr_assert_arr_eq(back, data, LEN);
		close(rfd);
	}

	rt_op_init(&o);
	cr_assert_eq(ferry_op_openat(loop, &o.op, dfd, "missing", O_RDONLY, 0), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, -ENOENT, "got %s", ferry_strerrorname(o.res));

	/* AT_FDCWD with an absolute path works too. */
	{
		char path[300];

		snprintf(path, sizeof(path), "%s/data.bin", dir);
		rt_op_init(&o);
		cr_assert_eq(ferry_op_openat(loop, &o.op, AT_FDCWD, path,
					     O_RDONLY | O_CLOEXEC, 0), 0);
		RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
		cr_assert_geq(o.res, 0);
		close(o.res);
	}

	close(dfd);
	rt_rmtree(dir);
	free(data);
	free(back);
	ferry_loop_destroy(loop);
}

Test(ops, close_bad_fd, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rt_op o;
	int fd = open("/dev/null", O_RDONLY);

	close(fd);	/* now certainly not open */
	rt_op_init(&o);
	cr_assert_eq(ferry_op_close(loop, &o.op, fd), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, -EBADF);
	ferry_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */
/* Timeouts.                                                            */

Test(ops, timeout_op_fires_after_delay, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rt_op o;
	uint64_t t0, dt;

	rt_op_init(&o);
	t0 = ferry_time_now();
	cr_assert_eq(ferry_op_timeout(loop, &o.op, 30 * RT_MS), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 8000);	/* a hang guard */
	dt = ferry_time_now() - t0;
	cr_assert_eq(o.res, -ETIME, "got %s", ferry_strerrorname(o.res));
	cr_assert_geq(dt, 30 * RT_MS, "fired early: %llu ns", (unsigned long long)dt);
	cr_assert(!ferry_op_busy(&o.op));
	cr_assert_eq(o.nfinal, 1);
	ferry_loop_destroy(loop);
}

Test(ops, linked_timeout_fires_on_silent_recv, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	unsigned base = idle_inflight(loop);
	struct rt_op o;
	char buf[16];
	uint64_t t0, dt;
	int a, b;

	rt_tcp_pair(&a, &b);
	rt_op_init(&o);
	t0 = ferry_time_now();
	cr_assert_eq(ferry_op_recv(loop, &o.op, a, buf, sizeof(buf), 0), 0);
	cr_assert_eq(ferry_op_set_timeout(loop, &o.op, 50 * RT_MS), 0);
	RT_RUN_UNTIL(loop, o.ncalls >= 1 && !ferry_op_busy(&o.op), 3000);
	dt = ferry_time_now() - t0;
	cr_assert_eq(o.res, -ETIME, "got %s", ferry_strerrorname(o.res));
	cr_assert_eq(o.ncalls, 1, "the op must complete exactly once");
	cr_assert_geq(dt, 45 * RT_MS, "deadline fired early (%llu ns)",
		      (unsigned long long)dt);
	rt_run_for(loop, 30);
	cr_assert_eq(o.ncalls, 1, "late second completion");
	cr_assert_eq(ferry_loop_inflight(loop), base, "CQEs left in flight");

	/* The socket is still usable: data sent now is not lost. */
	rt_write_all(b, "late", 4);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, a, buf, sizeof(buf), 0), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, 4);
	cr_assert_arr_eq(buf, "late", 4);
	close(a);
	close(b);
	ferry_loop_destroy(loop);
}

Test(ops, linked_timeout_on_connect_to_blackhole, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct sockaddr_in addr;
	int lfd = rt_listen_tcp(&addr);
	int fds[64];
	int n = 0, fd;
	struct rt_op o;

	/*
	 * A full accept queue on a listener with backlog 0 makes further
	 * connects hang in SYN retry: a silent peer without leaving loopback.
	 */
	close(lfd);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	addr.sin_port = 0;
	cr_assert_eq(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	{
		socklen_t len = sizeof(addr);

		cr_assert_eq(getsockname(lfd, (struct sockaddr *)&addr, &len), 0);
	}
	cr_assert_eq(listen(lfd, 0), 0);
	for (n = 0; n < 64; n++) {
		fds[n] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (connect(fds[n], (struct sockaddr *)&addr, sizeof(addr)) < 0 &&
		    errno == EINPROGRESS) {
			struct pollfd p = { .fd = fds[n], .events = POLLOUT };

			if (poll(&p, 1, 100) == 0) {
				n++;
				break;	/* this one hangs: the queue is full */
			}
		}
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_connect(loop, &o.op, fd, (struct sockaddr *)&addr,
				      sizeof(addr)), 0);
	cr_assert_eq(ferry_op_set_timeout(loop, &o.op, 100 * RT_MS), 0);
	RT_RUN_UNTIL(loop, o.nfinal == 1 && !ferry_op_busy(&o.op), 3000);
	if (o.res == 0)
		cr_skip_test("kernel accepted past backlog; no silent peer here");
	cr_assert_eq(o.res, -ETIME, "got %s", ferry_strerrorname(o.res));
	cr_assert_eq(o.ncalls, 1);
	close(fd);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	close(lfd);
	ferry_loop_destroy(loop);
}

Test(ops, linked_timeout_not_fired_when_data_ready, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	unsigned base = idle_inflight(loop);
	struct rt_op o;
	char buf[16];
	int a, b;

	rt_tcp_pair(&a, &b);
	rt_write_all(b, "early", 5);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, a, buf, sizeof(buf), 0), 0);
	cr_assert_eq(ferry_op_set_timeout(loop, &o.op, 60000 * RT_MS), 0);
	RT_RUN_UNTIL(loop, o.ncalls >= 1 && !ferry_op_busy(&o.op), 3000);
	cr_assert_eq(o.res, 5, "got %s", ferry_strerrorname(o.res));
	cr_assert_arr_eq(buf, "early", 5);
	cr_assert_eq(o.ncalls, 1);
	cr_assert_eq(ferry_loop_inflight(loop), base,
		     "the cancelled link timeout was left in flight");
	close(a);
	close(b);
	ferry_loop_destroy(loop);
}

struct late_writer {
	struct ferry_timer t;
	int fd;
	int fired;
};

static void late_writer_fn(struct ferry_timer *t)
{
	struct late_writer *w = (struct late_writer *)t;

	w->fired++;
	rt_write_all(w->fd, "in time", 7);
}

Test(ops, linked_timeout_not_fired_when_data_arrives_later, .timeout = 15)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct late_writer w = { .t.fn = late_writer_fn };
	struct rt_op o;
	char buf[16];
	uint64_t t0;
	int a, b;

	/* The kernel's deadline runs whether or not this thread does: give
	 * it a 2 s margin over the writer (1 ms), then run past it. */
	rt_tcp_pair(&a, &b);
	w.fd = b;
	rt_op_init(&o);
	t0 = ferry_time_now();
	cr_assert_eq(ferry_op_recv(loop, &o.op, a, buf, sizeof(buf), 0), 0);
	cr_assert_eq(ferry_op_set_timeout(loop, &o.op, 2000 * RT_MS), 0);
	cr_assert_eq(ferry_timer_start(loop, &w.t, ferry_time_now() + RT_MS), 0);
	RT_RUN_UNTIL(loop, o.ncalls >= 1 && !ferry_op_busy(&o.op), 8000);
	cr_assert_eq(w.fired, 1);
	cr_assert_eq(o.res, 7, "got %s", ferry_strerrorname(o.res));
	cr_assert_arr_eq(buf, "in time", 7);
	/* Past the original deadline: nothing more arrives. */
	while (ferry_time_now() < t0 + 2100 * RT_MS)
		rt_run_for(loop, 50);
	cr_assert_eq(o.ncalls, 1);
	close(a);
	close(b);
	ferry_loop_destroy(loop);
}

Test(ops, many_linked_timeouts_mixed, .timeout = 15)
{
	/* Half the sockets get data, half stay silent: each op completes once
	 * with the matching result, whatever order the CQEs come in. */
	enum { N = 64 };
	struct ferry_loop *loop = rt_loop_new(NULL);
	unsigned base = idle_inflight(loop);
	struct rt_op o[N];
	int sv[N][2];
	char buf[N][8];
	int done;

	for (int i = 0; i < N; i++) {
		rt_socketpair(sv[i]);
		if (i % 2)
			rt_write_all(sv[i][1], "d", 1);
		rt_op_init(&o[i]);
		cr_assert_eq(ferry_op_recv(loop, &o[i].op, sv[i][0], buf[i], 8, 0), 0);
		cr_assert_eq(ferry_op_set_timeout(loop, &o[i].op,
						  (20 + i % 7) * RT_MS), 0);
	}
	do {
		rt_turn(loop, 10 * RT_MS);
		done = 0;
		for (int i = 0; i < N; i++)
			done += !ferry_op_busy(&o[i].op);
	} while (done < N);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(o[i].ncalls, 1, "op %d completed %d times", i, o[i].ncalls);
		cr_assert_eq(o[i].res, i % 2 ? 1 : -ETIME, "op %d: %s", i,
			     ferry_strerrorname(o[i].res));
		close(sv[i][0]);
		close(sv[i][1]);
	}
	cr_assert_eq(ferry_loop_inflight(loop), base);
	ferry_loop_destroy(loop);
}

/*
 * The deadline stays with its op when another SQE is taken between the
 * op and ferry_op_set_timeout (regression: the link went to whatever SQE
 * came next, and the deadline was silently lost).
 */
static void deadline_case(struct ferry_loop *loop, int between)
{
	unsigned base = idle_inflight(loop);
	_Atomic uint32_t word = 0;
	struct rt_op o, other;
	char buf[8];
	int sv[2], ov[2];

	rt_socketpair(sv);
	rt_socketpair(ov);
	rt_op_init(&other);
	cr_assert_eq(ferry_op_recv(loop, &other.op, ov[0], buf, 1, 0), 0);
	rt_turn(loop, 0);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, sv[0], buf, sizeof(buf), 0), 0);
	if (between == 0)
		ferry_loop_futex_wake(loop, (uint32_t *)&word, 1);
	else
		cr_assert_eq(ferry_op_cancel(loop, &other.op), 0);
	cr_assert_eq(ferry_op_set_timeout(loop, &o.op, 30 * RT_MS), 0);
	RT_RUN_UNTIL(loop, o.nfinal == 1, 3000);
	cr_assert_eq(o.res, -ETIME, "the deadline was lost: %s",
		     ferry_strerrorname(o.res));
	if (between == 0)
		cr_assert_eq(ferry_op_cancel(loop, &other.op), 0);
	RT_RUN_UNTIL(loop, other.nfinal == 1, 3000);
	cr_assert_eq(other.res, -ECANCELED, "got %s",
		     ferry_strerrorname(other.res));
	rt_run_for(loop, 10);
	cr_assert_eq(ferry_loop_inflight(loop), base, "CQEs left in flight");
	close(sv[0]);
	close(sv[1]);
	close(ov[0]);
	close(ov[1]);
}

Test(ops, linked_timeout_after_a_futex_wake, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);

	if (!(ferry_loop_features(loop) & FERRY_FEAT_FUTEX)) {
		ferry_loop_destroy(loop);
		cr_skip_test("no IORING_OP_FUTEX_WAKE: the wake takes no SQE");
	}
	deadline_case(loop, 0);
	ferry_loop_destroy(loop);
}

Test(ops, linked_timeout_after_a_cancel, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);

	deadline_case(loop, 1);
	ferry_loop_destroy(loop);
}

/* The SQE in between needs the last free slots, so taking it submits:
 * the op must not go to the kernel without its link. */
Test(ops, linked_timeout_after_a_cancel_that_fills_the_sq, .timeout = 10)
{
	struct ferry_loop_opts opts = { .sq_entries = 4 };
	struct ferry_loop *loop = rt_loop_new(&opts);
	unsigned base = idle_inflight(loop);
	struct rt_op t[2], o;
	char buf[8];
	int sv[2];

	rt_socketpair(sv);
	for (int i = 0; i < 2; i++) {
		rt_op_init(&t[i]);
		cr_assert_eq(ferry_op_timeout(loop, &t[i].op, 60000 * RT_MS), 0);
	}
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, sv[0], buf, sizeof(buf), 0), 0);
	/* Three of four SQ slots are taken and unsubmitted. */
	cr_assert_eq(ferry_op_cancel(loop, &t[0].op), 0);
	cr_assert_eq(ferry_op_set_timeout(loop, &o.op, 30 * RT_MS), 0);
	RT_RUN_UNTIL(loop, o.nfinal == 1 && t[0].nfinal == 1, 3000);
	cr_assert_eq(o.res, -ETIME, "the deadline was lost: %s",
		     ferry_strerrorname(o.res));
	cr_assert_eq(t[0].res, -ECANCELED);
	cr_assert_eq(ferry_op_cancel(loop, &t[1].op), 0);
	RT_RUN_UNTIL(loop, t[1].nfinal == 1, 3000);
	rt_run_for(loop, 10);
	cr_assert_eq(ferry_loop_inflight(loop), base, "CQEs left in flight");
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

/* Cancelling the op itself before its deadline is set ends its chance of
 * one (the cancel must stay behind the op); the cancel still works. */
Test(ops, set_timeout_after_cancelling_the_op_is_einval, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rt_op o;
	char buf[8];
	int sv[2];

	rt_socketpair(sv);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, sv[0], buf, sizeof(buf), 0), 0);
	cr_assert_eq(ferry_op_cancel(loop, &o.op), 0);
	cr_assert_eq(ferry_op_set_timeout(loop, &o.op, 60000 * RT_MS), -EINVAL);
	RT_RUN_UNTIL(loop, o.nfinal == 1, 3000);
	cr_assert_eq(o.res, -ECANCELED, "got %s", ferry_strerrorname(o.res));
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

/* No room for the link: -EBUSY, and the op is not left running without
 * its deadline (regression: it stayed in flight with none). */
Test(ops, set_timeout_ebusy_leaves_the_op_idle, .timeout = 10)
{
	struct ferry_loop_opts opts = { .sq_entries = 1 };
	struct ferry_loop *loop = rt_loop_new(&opts);
	unsigned base = idle_inflight(loop);
	struct rt_op o;
	char buf[8];
	int sv[2];

	rt_skip_on_epoll(loop, "no submission ring to run out of");
	rt_socketpair(sv);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, sv[0], buf, sizeof(buf), 0), 0);
	cr_assert_eq(ferry_op_set_timeout(loop, &o.op, 30 * RT_MS), -EBUSY);
	cr_assert(!ferry_op_busy(&o.op), "the op runs on without its deadline");
	cr_assert_eq(ferry_loop_inflight(loop), base);
	rt_write_all(sv[1], "x", 1);
	rt_run_for(loop, 20);
	cr_assert_eq(o.ncalls, 0, "an op that was not started completed");
	/* The op is reusable, and still works without a deadline. */
	cr_assert_eq(ferry_op_recv(loop, &o.op, sv[0], buf, sizeof(buf), 0), 0);
	RT_RUN_UNTIL(loop, o.nfinal == 1, 3000);
	cr_assert_eq(o.res, 1);
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

/*
 * Ops that the kernel has to interrupt in an io-wq worker. Opening a FIFO
 * for reading blocks until a writer comes; through a /proc magic link the
 * kernel cannot even try it without blocking, so it runs in a worker from
 * the start. Cancelling such an op (by ferry_op_cancel, a deadline, or
 * destroy) interrupts the worker, and Linux ends the op with -EINTR or
 * even the kernel-internal -ERESTARTSYS (512, seen on 6.18), while the
 * linked timeout reports -EALREADY or -ENOENT instead of -ETIME
 * (regression: all of that reached the owner as it came).
 */
struct blocked_open {
	char dir[256];
	char path[64];		/* /proc/self/fd/N of an O_PATH FIFO fd */
	int pathfd;
};

static void blocked_open_init(struct blocked_open *b)
{
	char fifo[300];

	rt_tmpdir(b->dir, sizeof(b->dir));
	snprintf(fifo, sizeof(fifo), "%s/fifo", b->dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));
	b->pathfd = open(fifo, O_PATH | O_CLOEXEC);
	cr_assert_geq(b->pathfd, 0);
	snprintf(b->path, sizeof(b->path), "/proc/self/fd/%d", b->pathfd);
}

static void blocked_open_fini(struct blocked_open *b)
{
	close(b->pathfd);
	rt_rmtree(b->dir);
}

/* Start the open; skip if this kernel opens the FIFO without blocking. */
static void blocked_open_start(struct ferry_loop *loop, struct blocked_open *b,
			       struct rt_op *o, uint64_t deadline_ns)
{
	rt_op_init(o);
	cr_assert_eq(ferry_op_openat(loop, &o->op, AT_FDCWD, b->path,
				     O_RDONLY | O_CLOEXEC, 0), 0);
	if (deadline_ns)
		cr_assert_eq(ferry_op_set_timeout(loop, &o->op, deadline_ns), 0);
	rt_turn(loop, 0);
	if (o->nfinal && o->res >= 0) {
		close(o->res);
		cr_skip_test("the kernel opened a FIFO without a writer");
	}
}

/* The io-wq worker running the open, asleep in the kernel. */
static void wait_for_blocked_worker(void)
{
	for (int i = 0; i < 2000; i++) {
		DIR *d = opendir("/proc/self/task");
		struct dirent *e;
		int tid = 0;

		while (d && (e = readdir(d))) {
			char path[300], comm[32] = "";
			FILE *f;

			snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
				 e->d_name);
			f = fopen(path, "r");
			if (f && fgets(comm, sizeof(comm), f) &&
			    strncmp(comm, "iou-wrk-", 8) == 0)
				tid = atoi(e->d_name);
			if (f)
				fclose(f);
		}
		if (d)
			closedir(d);
		if (tid) {
			rt_wait_until_asleep(tid);
			return;
		}
		usleep(1000);
	}
	cr_assert_fail("no io-wq worker ever ran the open");
}

Test(ops, linked_timeout_on_an_op_in_an_io_wq_worker_is_etime, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	unsigned base = idle_inflight(loop);
	struct blocked_open b;
	struct rt_op o;

	rt_skip_on_epoll(loop, "no io-wq worker: a blocking open on the "
			 "offload pool cannot be interrupted");
	blocked_open_init(&b);
	for (int i = 0; i < 3; i++) {
		blocked_open_start(loop, &b, &o, 20 * RT_MS);
		RT_RUN_UNTIL(loop, o.nfinal == 1, 3000);
		cr_assert_eq(o.res, -ETIME, "round %d: %s (%d)", i,
			     ferry_strerrorname(o.res), o.res);
	}
	rt_run_for(loop, 10);
	cr_assert_eq(ferry_loop_inflight(loop), base, "CQEs left in flight");
	blocked_open_fini(&b);
	ferry_loop_destroy(loop);
}

Test(ops, cancel_of_an_op_in_an_io_wq_worker_is_ecanceled, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct blocked_open b;
	struct rt_op o;

	rt_skip_on_epoll(loop, "no io-wq worker: a blocking open on the "
			 "offload pool cannot be interrupted");
	blocked_open_init(&b);
	blocked_open_start(loop, &b, &o, 0);
	wait_for_blocked_worker();
	cr_assert_eq(ferry_op_cancel(loop, &o.op), 0);
	RT_RUN_UNTIL(loop, o.nfinal == 1, 3000);
	cr_assert_eq(o.res, -ECANCELED, "got %s (%d)", ferry_strerrorname(o.res),
		     o.res);

	/* And when destroy cancels it. */
	blocked_open_start(loop, &b, &o, 0);
	wait_for_blocked_worker();
	ferry_loop_destroy(loop);
	cr_assert_eq(o.nfinal, 1);
	cr_assert_eq(o.res, -ECANCELED, "destroy: got %s (%d)",
		     ferry_strerrorname(o.res), o.res);
	blocked_open_fini(&b);
}

/*
 * Lengths above 4 GiB are clamped to what Linux moves in one call, never
 * truncated to the SQE's 32 bits (regression: 4 GiB + 5 became 5, and a
 * recv of exactly 4 GiB became a recv of 0 bytes, which reads as EOF).
 * The buffers are real: one untouched, never-backed 4 GiB mapping.
 */
#define FOUR_GIB (UINT64_C(4) << 30)

static int huge_op(struct ferry_loop *loop, int kind, int fd, void *buf,
		   size_t len)
{
	struct rt_op o;
	int rc;

	rt_op_init(&o);
	switch (kind) {
	case 'w':
		rc = ferry_op_write(loop, &o.op, fd, buf, len, 0);
		break;
	case 'r':
		rc = ferry_op_read(loop, &o.op, fd, buf, len, 0);
		break;
	case 's':
		rc = ferry_op_send(loop, &o.op, fd, buf, len, MSG_DONTWAIT);
		break;
	default:
		rc = ferry_op_recv(loop, &o.op, fd, buf, len, 0);
		break;
	}
	cr_assert_eq(rc, 0, "prep %c: %s", kind, ferry_strerrorname(rc));
	RT_RUN_UNTIL(loop, o.nfinal == 1, 5000);
	return o.res;
}

Test(ops, lengths_above_4gib_are_clamped, .timeout = 20)
{
	struct ferry_loop *loop;
	char dir[256], path[300], data[100];
	size_t maplen = FOUR_GIB + 4096;
	unsigned char *map;
	int fd, sv[2], res;

	if (sizeof(size_t) < 8)
		cr_skip_test("32-bit size_t: no length above 4 GiB");
	map = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED)
		cr_skip_test("cannot map 4 GiB of address space: %s",
			     strerror(errno));
	loop = rt_loop_new(NULL);
#if defined(__SANITIZE_THREAD__)
	/* io_uring moves the bytes in the kernel, unseen; on epoll write(2)
	 * and send(2) are TSan interceptors that check every byte. */
	rt_skip_on_epoll(loop, "under TSan, syscalls given 2 GiB take minutes");
#endif

	/* /dev/null takes all it is offered: the clamp itself, >= 1 GiB. */
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	res = huge_op(loop, 'w', fd, map, FOUR_GIB + 5);
	cr_assert_geq(res, 1 << 30, "write of 4 GiB + 5 moved %d bytes", res);
	close(fd);

	/* A 100-byte file read with 4 GiB + 5: all 100, not 5. */
	rt_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	for (int i = 0; i < 100; i++)
		data[i] = (char)rt_pattern((size_t)i);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	rt_write_all(fd, data, sizeof(data));
	res = huge_op(loop, 'r', fd, map, FOUR_GIB + 5);
	cr_assert_eq(res, 100, "read of 4 GiB + 5 returned %d", res);
	cr_assert_arr_eq(map, data, sizeof(data));
	close(fd);
	rt_rmtree(dir);

	/* recv of exactly 4 GiB with 10 bytes waiting: 10, not "EOF". */
	rt_socketpair(sv);
	rt_write_all(sv[1], "ten bytes!", 10);
	res = huge_op(loop, 'v', sv[0], map, FOUR_GIB);
	cr_assert_eq(res, 10, "recv of 4 GiB returned %d", res);
	cr_assert_arr_eq(map, "ten bytes!", 10);

	/* send of 4 GiB + 3: as much as the socket takes, not 3. */
	res = huge_op(loop, 's', sv[0], map, FOUR_GIB + 3);
	cr_assert_gt(res, 3, "send of 4 GiB + 3 moved %d bytes", res);
	close(sv[0]);
	close(sv[1]);
	munmap(map, maplen);
	ferry_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */
/* Multishot accept and poll.                                           */

struct acceptor {
	struct ferry_op op;
	int fds[32];
	int n;
	int errors;
	int nfinal;
	int last_res;
};

static void acceptor_fn(struct ferry_op *op, int res, unsigned flags)
{
	struct acceptor *a = (struct acceptor *)op;

	if (!(flags & FERRY_CQE_MORE)) {
		a->nfinal++;
		a->last_res = res;
		if (res >= 0)
			a->fds[a->n++] = res;	/* last accept before the end */
		return;
	}
	if (res >= 0 && a->n < 32)
		a->fds[a->n++] = res;
	else
		a->errors++;
}

Test(ops, accept_multishot_several_clients, .timeout = 10)
{
	enum { NCLIENT = 8 };
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct acceptor acc = { .op.fn = acceptor_fn };
	struct sockaddr_in addr;
	int lfd = rt_listen_tcp(&addr);
	int cl[NCLIENT];

	cr_assert_eq(ferry_op_accept_multishot(loop, &acc.op, lfd), 0);
	rt_turn(loop, 0);
	for (int i = 0; i < NCLIENT / 2; i++)
		cl[i] = rt_connect_tcp(&addr);
	RT_RUN_UNTIL(loop, acc.n == NCLIENT / 2, 3000);
	/* A second wave after the first was delivered: still armed. */
	for (int i = NCLIENT / 2; i < NCLIENT; i++)
		cl[i] = rt_connect_tcp(&addr);
	RT_RUN_UNTIL(loop, acc.n == NCLIENT, 3000);
	cr_assert_eq(acc.errors, 0);
	cr_assert_eq(acc.nfinal, 0, "multishot accept ended early (%s)",
		     ferry_strerrorname(acc.last_res));
	cr_assert(ferry_op_busy(&acc.op));

	/* Every accepted fd is a real connection to one of our clients. */
	for (int i = 0; i < NCLIENT; i++) {
		unsigned char c = (unsigned char)('A' + i);

		rt_write_all(cl[i], &c, 1);
	}
	{
		int seen = 0;

		for (int i = 0; i < NCLIENT; i++) {
			unsigned char c;

			rt_read_all(acc.fds[i], &c, 1);
			cr_assert(c >= 'A' && c < 'A' + NCLIENT);
			cr_assert_eq(seen & (1 << (c - 'A')), 0, "client seen twice");
			seen |= 1 << (c - 'A');
		}
		cr_assert_eq(seen, (1 << NCLIENT) - 1);
	}

	cr_assert_eq(ferry_op_cancel(loop, &acc.op), 0);
	RT_RUN_UNTIL(loop, acc.nfinal == 1, 2000);
	cr_assert_eq(acc.last_res, -ECANCELED, "got %s",
		     ferry_strerrorname(acc.last_res));
	cr_assert(!ferry_op_busy(&acc.op));
	rt_run_for(loop, 20);
	cr_assert_eq(acc.nfinal, 1, "final completion delivered twice");
	cr_assert_eq(ferry_op_cancel(loop, &acc.op), -ENOENT);

	for (int i = 0; i < NCLIENT; i++) {
		close(cl[i]);
		close(acc.fds[i]);
	}
	close(lfd);
	ferry_loop_destroy(loop);
}

struct poller {
	struct ferry_op op;
	int nmore;
	int nfinal;
	int last_res;
	unsigned revents;
};

static void poller_fn(struct ferry_op *op, int res, unsigned flags)
{
	struct poller *p = (struct poller *)op;

	if (flags & FERRY_CQE_MORE) {
		p->nmore++;
		p->revents |= (unsigned)res;
	} else {
		p->nfinal++;
	}
	p->last_res = res;
}

Test(ops, poll_multishot_edges_then_cancel, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct poller p = { .op.fn = poller_fn };
	char c;
	int sv[2];

	rt_socketpair(sv);
	cr_assert_eq(ferry_op_poll_multishot(loop, &p.op, sv[0], POLLIN), 0);
	rt_run_for(loop, 20);
	cr_assert_eq(p.nmore + p.nfinal, 0, "poll fired on a silent socket");

	rt_write_all(sv[1], "a", 1);
	RT_RUN_UNTIL(loop, p.nmore >= 1, 2000);
	cr_assert(p.revents & POLLIN);
	cr_assert_eq(read(sv[0], &c, 1), 1);

	/* Still armed: a second edge produces a second completion. */
	{
		int before = p.nmore;

		rt_write_all(sv[1], "b", 1);
		RT_RUN_UNTIL(loop, p.nmore > before, 2000);
		cr_assert_eq(read(sv[0], &c, 1), 1);
	}
	cr_assert_eq(p.nfinal, 0);

	cr_assert_eq(ferry_op_cancel(loop, &p.op), 0);
	RT_RUN_UNTIL(loop, p.nfinal == 1, 2000);
	cr_assert_eq(p.last_res, -ECANCELED, "got %s",
		     ferry_strerrorname(p.last_res));
	cr_assert(!ferry_op_busy(&p.op));
	rt_run_for(loop, 20);
	cr_assert_eq(p.nfinal, 1);
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */
/* Cancellation of single-shot ops.                                     */

Test(ops, cancel_recv, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	unsigned base = idle_inflight(loop);
	struct rt_op o;
	char buf[8];
	int sv[2];

	rt_socketpair(sv);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, sv[0], buf, sizeof(buf), 0), 0);
	rt_run_for(loop, 10);
	cr_assert_eq(o.ncalls, 0);
	cr_assert_eq(ferry_op_cancel(loop, &o.op), 0);
	cr_assert_eq(o.ncalls, 0, "cancel completed the op synchronously");
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, -ECANCELED, "got %s", ferry_strerrorname(o.res));
	cr_assert(!ferry_op_busy(&o.op));
	rt_run_for(loop, 20);
	cr_assert_eq(o.ncalls, 1, "-ECANCELED delivered more than once");
	cr_assert_eq(ferry_op_cancel(loop, &o.op), -ENOENT);
	cr_assert_eq(ferry_loop_inflight(loop), base);

	/* The op can be reused at once. */
	rt_write_all(sv[1], "ok", 2);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, sv[0], buf, sizeof(buf), 0), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, 2);
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

Test(ops, cancel_recv_before_submission, .timeout = 10)
{
	/* Cancelled in the same turn it was prepared: still exactly one
	 * completion, and the data that arrives later is not consumed. */
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rt_op o;
	char buf[8];
	int sv[2];

	rt_socketpair(sv);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, sv[0], buf, sizeof(buf), 0), 0);
	cr_assert_eq(ferry_op_cancel(loop, &o.op), 0);
	RT_RUN_UNTIL(loop, !ferry_op_busy(&o.op), 2000);
	cr_assert_eq(o.ncalls, 1);
	cr_assert_eq(o.res, -ECANCELED, "got %s", ferry_strerrorname(o.res));
	rt_write_all(sv[1], "z", 1);
	rt_run_for(loop, 20);
	cr_assert_eq(o.ncalls, 1);
	cr_assert_eq(recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT), 1,
		     "a cancelled recv swallowed data");
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

Test(ops, cancel_recv_with_linked_timeout, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	unsigned base = idle_inflight(loop);
	struct rt_op o;
	char buf[8];
	int sv[2];

	rt_socketpair(sv);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, sv[0], buf, sizeof(buf), 0), 0);
	cr_assert_eq(ferry_op_set_timeout(loop, &o.op, 10000 * RT_MS), 0);
	rt_turn(loop, 0);
	cr_assert_eq(ferry_op_cancel(loop, &o.op), 0);
	RT_RUN_UNTIL(loop, !ferry_op_busy(&o.op), 2000);
	cr_assert_eq(o.ncalls, 1);
	cr_assert_eq(o.res, -ECANCELED, "got %s", ferry_strerrorname(o.res));
	cr_assert_eq(ferry_loop_inflight(loop), base);
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

Test(ops, cancel_timeout, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rt_op o;

	/* An hour: only the cancel can end it (-ECANCELED, not -ETIME). */
	rt_op_init(&o);
	cr_assert_eq(ferry_op_timeout(loop, &o.op, 3600000 * RT_MS), 0);
	rt_turn(loop, 0);
	cr_assert_eq(ferry_op_cancel(loop, &o.op), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 8000);	/* a hang guard */
	cr_assert_eq(o.res, -ECANCELED, "got %s", ferry_strerrorname(o.res));
	cr_assert(!ferry_op_busy(&o.op));
	rt_run_for(loop, 20);
	cr_assert_eq(o.ncalls, 1);
	ferry_loop_destroy(loop);
}

Test(ops, cancel_idle_op_is_enoent, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rt_op o;

	rt_op_init(&o);
	cr_assert_eq(ferry_op_cancel(loop, &o.op), -ENOENT);
	ferry_loop_destroy(loop);
}

Test(ops, cancel_loses_race_to_result, .timeout = 10)
{
	/* A timeout that has already fired cannot be cancelled: the owner
	 * sees its real result once and cancel reports nothing to cancel. */
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rt_op o;

	rt_op_init(&o);
	cr_assert_eq(ferry_op_timeout(loop, &o.op, 1), 0);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(ferry_op_cancel(loop, &o.op), -ENOENT);
	cr_assert_eq(o.res, -ETIME);
	rt_run_for(loop, 10);
	cr_assert_eq(o.ncalls, 1);
	ferry_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */
/* Reuse from the callback and futex wake.                              */

struct chain {
	struct ferry_op op;
	struct ferry_loop *loop;
	int fd;
	char buf[4];
	int count;
	int err;
};

static void chain_fn(struct ferry_op *op, int res, unsigned flags)
{
	struct chain *c = (struct chain *)op;

	(void)flags;
	if (res != 1 || c->buf[0] != (char)('a' + c->count % 26)) {
		c->err++;
		return;
	}
	if (++c->count < 100 &&
	    ferry_op_recv(c->loop, &c->op, c->fd, c->buf, 1, 0) != 0)
		c->err++;
}

Test(ops, op_restarted_from_its_callback, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct chain c = { .op.fn = chain_fn, .loop = loop };
	char data[100];
	int sv[2];

	rt_socketpair(sv);
	c.fd = sv[0];
	for (int i = 0; i < 100; i++)
		data[i] = (char)('a' + i % 26);
	rt_write_all(sv[1], data, sizeof(data));
	cr_assert_eq(ferry_op_recv(loop, &c.op, c.fd, c.buf, 1, 0), 0);
	RT_RUN_UNTIL(loop, c.count == 100 || c.err, 3000);
	cr_assert_eq(c.err, 0);
	cr_assert(!ferry_op_busy(&c.op));
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

struct futex_waiter {
	_Atomic uint32_t word;
	atomic_int woken;
};

static void *futex_wait_thread(void *arg)
{
	struct futex_waiter *w = arg;

	while (atomic_load(&w->word) == 0)
		syscall(SYS_futex, &w->word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	atomic_store(&w->woken, 1);
	return NULL;
}

Test(ops, futex_wake_wakes_a_waiter, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct futex_waiter w = { 0 };
	struct rt_op o;
	pthread_t th;
	bool proven = false;
	int rc;

	rt_op_init(&o);
	if (!(ferry_loop_features(loop) & FERRY_FEAT_FUTEX)) {
		cr_assert_eq(ferry_op_futex_wake(loop, &o.op, (uint32_t *)&w.word, 1),
			     -EOPNOTSUPP);
		ferry_loop_destroy(loop);
		cr_skip_test("no IORING_OP_FUTEX_WAKE on this kernel");
	}
	cr_assert_eq(pthread_create(&th, NULL, futex_wait_thread, &w), 0);
	/*
	 * The word stays 0, so a woken waiter goes back to sleep: res counts
	 * waiters woken and is 0 until the thread is really asleep. Retry
	 * until our op has provably woken it once.
	 */
	for (int tries = 0; tries < 500 && !proven; tries++) {
		usleep(2000);
		rt_op_init(&o);
		rc = ferry_op_futex_wake(loop, &o.op, (uint32_t *)&w.word, 1);
		cr_assert_eq(rc, 0, "futex_wake: %s", ferry_strerrorname(rc));
		RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
		cr_assert_geq(o.res, 0, "futex wake: %s", ferry_strerrorname(o.res));
		cr_assert_leq(o.res, 1);
		proven = o.res == 1;
	}
	cr_assert(proven, "the futex wake op never woke the sleeping waiter");
	atomic_store(&w.word, 1);
	while (!atomic_load(&w.woken)) {
		syscall(SYS_futex, &w.word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
		usleep(1000);
	}
	pthread_join(th, NULL);
	cr_assert_eq(atomic_load(&w.woken), 1);
	ferry_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */
/* Small rings: more ops than SQ slots, more completions than CQ slots. */

Test(ops, more_ops_than_sq_entries_in_one_turn, .timeout = 15)
{
	enum { N = 200 };
	struct ferry_loop_opts opts = { .sq_entries = 8 };
	struct ferry_loop *loop = rt_loop_new(&opts);
	static struct rt_op o[N];
	static int sv[N][2];
	static char buf[N][4];
	int done = 0;

	rt_want_fds(2048);
	for (int i = 0; i < N; i++) {
		rt_socketpair(sv[i]);
		rt_write_all(sv[i][1], "abc", 3);
		rt_op_init(&o[i]);
		cr_assert_eq(ferry_op_recv(loop, &o[i].op, sv[i][0], buf[i], 4, 0), 0,
			     "op %d refused with a full SQ", i);
		/* Linked pairs must never be split across submissions. */
		if (i % 2)
			cr_assert_eq(ferry_op_set_timeout(loop, &o[i].op,
							  5000 * RT_MS), 0);
	}
	while (done < N) {
		rt_turn(loop, 10 * RT_MS);
		done = 0;
		for (int i = 0; i < N; i++)
			done += !ferry_op_busy(&o[i].op);
	}
	for (int i = 0; i < N; i++) {
		cr_assert_eq(o[i].ncalls, 1);
		cr_assert_eq(o[i].res, 3, "op %d: %s", i, ferry_strerrorname(o[i].res));
		close(sv[i][0]);
		close(sv[i][1]);
	}
	ferry_loop_destroy(loop);
}

Test(ops, more_completions_than_cq_entries, .timeout = 15)
{
	/* 500 timeouts expire together into a CQ of 16: the kernel's
	 * overflow list must be drained, nothing dropped. */
	enum { N = 500 };
	struct ferry_loop_opts opts = { .sq_entries = 8, .cq_entries = 16 };
	struct ferry_loop *loop = rt_loop_new(&opts);
	static struct rt_op o[N];
	int done = 0;

	for (int i = 0; i < N; i++) {
		rt_op_init(&o[i]);
		cr_assert_eq(ferry_op_timeout(loop, &o[i].op, 20 * RT_MS), 0);
	}
	rt_turn(loop, 0);
	usleep(60 * 1000);	/* all expire while nobody reaps */
	for (uint64_t end = ferry_time_now() + 5000 * RT_MS;
	     done < N && ferry_time_now() < end;) {
		rt_turn(loop, 10 * RT_MS);
		done = 0;
		for (int i = 0; i < N; i++)
			done += o[i].ncalls;
	}
	cr_assert_eq(done, N, "%d of %d completions delivered", done, N);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(o[i].ncalls, 1);
		cr_assert_eq(o[i].res, -ETIME);
	}
	ferry_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */
/* ferry_loop_futex_wake: a wake without an op record.                 */

struct sleeper {
	_Atomic uint32_t word;
	atomic_int woken;
	atomic_int tid;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *s = arg;

	atomic_store(&s->tid, (int)rt_gettid());
	while (atomic_load(&s->word) == 0)
		syscall(SYS_futex, &s->word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	atomic_store(&s->woken, 1);
	return NULL;
}

static void loop_futex_wake_case(const char *disable, unsigned spin_ns)
{
	struct ferry_loop_opts o = { .idle_spin_ns = spin_ns };
	struct ferry_loop *loop;
	struct sleeper s = { 0 };
	unsigned base;
	pthread_t th;

	if (disable)
		setenv("FERRY_DISABLE", disable, 1);
	loop = rt_loop_new(&o);
	unsetenv("FERRY_DISABLE");
	base = idle_inflight(loop);
	cr_assert_eq(pthread_create(&th, NULL, sleeper_main, &s), 0);
	while (!atomic_load(&s.tid))
		usleep(1000);
	rt_wait_until_asleep(atomic_load(&s.tid));

	atomic_store(&s.word, 1);
	ferry_loop_futex_wake(loop, (uint32_t *)&s.word, 1);
	/* However it is done, the next turn gets it to the kernel. */
	RT_RUN_UNTIL(loop, atomic_load(&s.woken), 2000);
	pthread_join(th, NULL);
	rt_run_for(loop, 10);
	cr_assert_eq(ferry_loop_inflight(loop), base,
		     "a skip-success wake left something in flight");
	ferry_loop_destroy(loop);
}

Test(ops, loop_futex_wake_wakes_a_sleeper, .timeout = 10)
{
	loop_futex_wake_case(NULL, 0);
}

Test(ops, loop_futex_wake_with_idle_spin, .timeout = 10)
{
	loop_futex_wake_case(NULL, 500000);
}

Test(ops, loop_futex_wake_fallback_without_futex_op, .timeout = 10)
{
	loop_futex_wake_case("futex", 0);
}
