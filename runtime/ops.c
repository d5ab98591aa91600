/*
 * ops.c - the public ferry_op_* calls, and what every backend shares.
 *
 * Each call checks what does not depend on the backend (the loop thread,
 * a loop being destroyed, a busy record, a feature the loop lacks), packs
 * its arguments into a struct ferry__args, and hands them to the loop's
 * backend (uring.c or epoll.c). Deferred completions (a parked recv that
 * was cancelled) and the parked-recv half of cancellation live here too.
 */
#include <errno.h>

#include "internal.h"

/*
 * The most Linux moves in one read, write, send or recv (MAX_RW_COUNT,
 * INT_MAX rounded down to a 4 KiB page). The SQE's length is 32 bits: a
 * longer length is clamped to this, never truncated (4 GiB would become
 * 0, and a recv of 0 bytes reads as end of stream). A short transfer is
 * a result each of these ops may give anyway.
 */
#define FERRY__MAX_RW 0x7ffff000u

static unsigned ferry__rw_len(size_t len)
{
	return len > FERRY__MAX_RW ? FERRY__MAX_RW : (unsigned)len;
}

bool ferry_op_busy(const struct ferry_op *op)
{
	return op->ferry__nflight ||
	       (op->ferry__flags & (FERRY__OPF_PARKED | FERRY__OPF_DEFERRED));
}

enum ferry__op_kind ferry__op_kind_of(enum ferry__opcode code)
{
	switch (code) {
	case FERRY__OC_RECV_MULTI:
		return FERRY__OP_RECV_MULTI;
	case FERRY__OC_ACCEPT_MULTI:
		return FERRY__OP_ACCEPT_MULTI;
	case FERRY__OC_POLL_MULTI:
		return FERRY__OP_POLL_MULTI;
	default:
		return FERRY__OP_ONESHOT;
	}
}

int ferry__op_start(struct ferry_loop *loop, struct ferry_op *op,
		    const struct ferry__args *a)
{
	FERRY__ASSERT_LOOP(loop);
	if (loop->destroying)
		return -ESHUTDOWN;
	if (ferry_op_busy(op))
		return -EBUSY;
	return loop->be->start(loop, op, a);
}

int ferry_op_socket(struct ferry_loop *loop, struct ferry_op *op, int domain,
		    int type, int protocol)
{
	struct ferry__args a = { .code = FERRY__OC_SOCKET, .fd = domain,
				 .len = (unsigned)type, .flags = protocol };

	if (!(loop->features & FERRY_FEAT_SOCKET_OP))
		return -EOPNOTSUPP;
	return ferry__op_start(loop, op, &a);
}

int ferry_op_connect(struct ferry_loop *loop, struct ferry_op *op, int fd,
		     const struct sockaddr *addr, socklen_t addrlen)
{
	struct ferry__args a = { .code = FERRY__OC_CONNECT, .fd = fd,
				 .p = addr, .len = addrlen };

	return ferry__op_start(loop, op, &a);
}

int ferry_op_send(struct ferry_loop *loop, struct ferry_op *op, int fd,
		  const void *buf, size_t len, int flags)
{
	struct ferry__args a = { .code = FERRY__OC_SEND, .fd = fd, .p = buf,
				 .len = ferry__rw_len(len), .flags = flags };

	return ferry__op_start(loop, op, &a);
}

int ferry_op_sendmsg(struct ferry_loop *loop, struct ferry_op *op, int fd,
		     const struct msghdr *msg, int flags)
{
	struct ferry__args a = { .code = FERRY__OC_SENDMSG, .fd = fd,
				 .p = msg, .flags = flags };

	return ferry__op_start(loop, op, &a);
}

int ferry_op_recv(struct ferry_loop *loop, struct ferry_op *op, int fd,
		  void *buf, size_t len, int flags)
{
	struct ferry__args a = { .code = FERRY__OC_RECV, .fd = fd, .p = buf,
				 .len = ferry__rw_len(len), .flags = flags };

	return ferry__op_start(loop, op, &a);
}

int ferry_op_close(struct ferry_loop *loop, struct ferry_op *op, int fd)
{
	struct ferry__args a = { .code = FERRY__OC_CLOSE, .fd = fd };

	return ferry__op_start(loop, op, &a);
}

int ferry_op_read(struct ferry_loop *loop, struct ferry_op *op, int fd,
		  void *buf, size_t len, uint64_t offset)
{
	struct ferry__args a = { .code = FERRY__OC_READ, .fd = fd, .p = buf,
				 .len = ferry__rw_len(len), .u64 = offset };

	return ferry__op_start(loop, op, &a);
}

int ferry_op_write(struct ferry_loop *loop, struct ferry_op *op, int fd,
		   const void *buf, size_t len, uint64_t offset)
{
	struct ferry__args a = { .code = FERRY__OC_WRITE, .fd = fd, .p = buf,
				 .len = ferry__rw_len(len), .u64 = offset };

	return ferry__op_start(loop, op, &a);
}

int ferry_op_openat(struct ferry_loop *loop, struct ferry_op *op, int dfd,
		    const char *path, int flags, mode_t mode)
{
	struct ferry__args a = { .code = FERRY__OC_OPENAT, .fd = dfd,
				 .p = path, .len = mode, .flags = flags };

	return ferry__op_start(loop, op, &a);
}

int ferry_op_timeout(struct ferry_loop *loop, struct ferry_op *op,
		     uint64_t ns)
{
	struct ferry__args a = { .code = FERRY__OC_TIMEOUT, .u64 = ns };

	return ferry__op_start(loop, op, &a);
}

int ferry_op_futex_wake(struct ferry_loop *loop, struct ferry_op *op,
			uint32_t *uaddr, unsigned nr)
{
	struct ferry__args a = { .code = FERRY__OC_FUTEX_WAKE, .p = uaddr,
				 .len = nr };

	if (!(loop->features & FERRY_FEAT_FUTEX))
		return -EOPNOTSUPP;
	return ferry__op_start(loop, op, &a);
}

void ferry_loop_futex_wake(struct ferry_loop *loop, uint32_t *uaddr,
			   unsigned nr)
{
	FERRY__ASSERT_LOOP(loop);
	loop->be->futex_wake(loop, uaddr, nr);
}

int ferry_op_poll_multishot(struct ferry_loop *loop, struct ferry_op *op,
			    int fd, unsigned events)
{
	struct ferry__args a = { .code = FERRY__OC_POLL_MULTI, .fd = fd,
				 .len = events };

	return ferry__op_start(loop, op, &a);
}

int ferry_op_accept_multishot(struct ferry_loop *loop, struct ferry_op *op,
			      int fd)
{
	struct ferry__args a = { .code = FERRY__OC_ACCEPT_MULTI, .fd = fd };

	if (!(loop->features & FERRY_FEAT_ACCEPT_MULTISHOT))
		return -EOPNOTSUPP;
	return ferry__op_start(loop, op, &a);
}

/* (Re-)arm a multishot recv with the fd and ring kept in the record. */
int ferry__recv_multishot_arm(struct ferry_loop *loop, struct ferry_op *op)
{
	struct ferry__args a = { .code = FERRY__OC_RECV_MULTI,
				 .fd = op->ferry__fd, .p = op->ferry__br };

	return ferry__op_start(loop, op, &a);
}

int ferry_op_recv_multishot(struct ferry_loop *loop, struct ferry_op *op,
			    int fd, struct ferry_bufring *br)
{
	if (!(loop->features & FERRY_FEAT_RECV_MULTISHOT))
		return -EOPNOTSUPP;
	if (ferry_op_busy(op))
		return -EBUSY;
	op->ferry__fd = fd;
	op->ferry__br = br;
	return ferry__recv_multishot_arm(loop, op);
}

int ferry_op_set_timeout(struct ferry_loop *loop, struct ferry_op *op,
			 uint64_t ns)
{
	FERRY__ASSERT_LOOP(loop);
	return loop->be->set_timeout(loop, op, ns);
}

/* ------------------------------------------------------------------ */
/* Cancellation and deferred completions                                 */

void ferry__op_defer(struct ferry_loop *loop, struct ferry_op *op, int res)
{
	struct ferry_op **tail = &loop->deferred;

	while (*tail)
		tail = &(*tail)->ferry__next;
	op->ferry__flags |= FERRY__OPF_DEFERRED;
	op->ferry__res = res;
	op->ferry__next = NULL;
	*tail = op;
}

unsigned ferry__run_deferred(struct ferry_loop *loop)
{
	struct ferry_op *list = loop->deferred, *next;
	unsigned n = 0;

	loop->deferred = NULL;
	for (; list; list = next, n++) {
		next = list->ferry__next;
		list->ferry__flags = 0;
		list->fn(list, list->ferry__res, 0);
	}
	return n;
}

int ferry_op_cancel(struct ferry_loop *loop, struct ferry_op *op)
{
	FERRY__ASSERT_LOOP(loop);
	if (op->ferry__flags & FERRY__OPF_PARKED) {
		ferry__bufring_unpark(op->ferry__br, op);
		ferry__op_defer(loop, op, -ECANCELED);
		return 0;
	}
	if (op->ferry__flags & FERRY__OPF_DEFERRED)
		return 0;
	if (!op->ferry__nflight)
		return -ENOENT;
	return loop->be->cancel(loop, op);
}
