/*
 * ops.c - preparing SQEs for op records, and dispatching their CQEs.
 *
 * Every op goes through the same three steps: ferry__op_begin() checks the
 * record is idle and takes an SQE, a liburing prep helper fills it, and
 * ferry__op_commit() tags it with the record's address and counts it in
 * flight. ferry__cqe_dispatch() is the other end.
 */
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

/* The futex2 flags; liburing 2.3 predates them. */
#define FERRY__FUTEX2_SIZE_U32 0x02
#define FERRY__FUTEX2_PRIVATE 128
#define FERRY__FUTEX_BITSET_MATCH_ANY 0xffffffffu

/*
 * Take an SQE for an op, keeping one slot spare so that
 * ferry_op_set_timeout() can put the linked timeout right behind it.
 */
struct io_uring_sqe *ferry__sqe(struct ferry_loop *loop)
{
	if (io_uring_sq_space_left(&loop->ring) < 2)
		io_uring_submit(&loop->ring);
	return io_uring_get_sqe(&loop->ring);
}

/*
 * May the op prepared last still get a linked timeout: is its SQE the
 * newest taken, and not yet flushed to the kernel? liburing 2.3 keeps the
 * SQEs taken since the last flush in [sqe_head, sqe_tail); a submission
 * sets sqe_head = sqe_tail.
 */
static bool ferry__link_open(const struct ferry_loop *loop)
{
	const struct io_uring_sq *sq = &loop->ring.sq;

	return loop->last_op && sq->sqe_tail == loop->last_tail &&
	       sq->sqe_head != sq->sqe_tail;
}

/*
 * Take an SQE that belongs to no op (a futex wake, a cancel). While the op
 * prepared last may still get its linked timeout, the new SQE goes in
 * front of it: the op's SQE moves to the newest slot, where the link can
 * still follow it, and it is never submitted alone. The order of the two
 * does not matter: a wake, or a cancel of an op prepared earlier (a
 * cancel of the op itself closes the link instead: ferry_op_cancel).
 * Needs three slots: this SQE, the op's and the link's. NULL if the ring
 * has no room even after a submission.
 */
struct io_uring_sqe *ferry__sqe_loose(struct ferry_loop *loop)
{
	struct io_uring_sq *sq = &loop->ring.sq;
	struct io_uring_sqe saved, *sqe;

	if (!ferry__link_open(loop))
		return ferry__sqe(loop);
	saved = *loop->last_sqe;
	sq->sqe_tail--;		/* hide the op's SQE from the flush */
	if (io_uring_sq_space_left(&loop->ring) < 3)
		io_uring_submit(&loop->ring);
	if (io_uring_sq_space_left(&loop->ring) < 3) {
		sq->sqe_tail++;	/* the slot is untouched: take it back */
		return NULL;
	}
	sqe = io_uring_get_sqe(&loop->ring);	/* the op's old slot */
	loop->last_sqe = io_uring_get_sqe(&loop->ring);
	*loop->last_sqe = saved;
	loop->last_tail = sq->sqe_tail;
	return sqe;
}

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

static struct io_uring_sqe *ferry__op_begin(struct ferry_loop *loop,
					   struct ferry_op *op, int *err)
{
	struct io_uring_sqe *sqe;

	FERRY__ASSERT_LOOP(loop);
	if (loop->destroying) {
		*err = -ESHUTDOWN;
		return NULL;
	}
	if (ferry_op_busy(op)) {
		*err = -EBUSY;
		return NULL;
	}
	sqe = ferry__sqe(loop);
	if (!sqe)
		*err = -EBUSY;
	return sqe;
}

static int ferry__op_commit(struct ferry_loop *loop, struct ferry_op *op,
			    struct io_uring_sqe *sqe, enum ferry__op_kind kind)
{
	op->ferry__nflight = 1;
	op->ferry__kind = (uint8_t)kind;
	op->ferry__flags = 0;
	op->ferry__res = 0;
	op->ferry__cflags = 0;
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | FERRY__UD_OP);
	loop->inflight++;
	/* Only a oneshot op may take a linked timeout next. */
	loop->last_sqe = sqe;
	loop->last_op = kind == FERRY__OP_ONESHOT ? op : NULL;
	loop->last_tail = loop->ring.sq.sqe_tail;
	return 0;
}

/* Give back the SQE of the op just prepared, as if it had never been
 * taken: the op is idle again and no completion will come for it. */
static void ferry__op_unprepare(struct ferry_loop *loop, struct ferry_op *op)
{
	loop->ring.sq.sqe_tail--;
	loop->inflight--;
	loop->last_op = NULL;
	op->ferry__nflight = 0;
	op->ferry__flags = 0;
}

/* Most ops: begin, prep by the caller's macro body, commit as oneshot. */
#define FERRY__OP(loop, op, kind, prep)				\
	do {							\
		int err_ = 0;					\
		struct io_uring_sqe *sqe =			\
			ferry__op_begin((loop), (op), &err_);	\
		if (!sqe)					\
			return err_;				\
		prep;						\
		return ferry__op_commit((loop), (op), sqe, (kind)); \
	} while (0)

int ferry_op_socket(struct ferry_loop *loop, struct ferry_op *op, int domain,
		    int type, int protocol)
{
	if (!(loop->features & FERRY_FEAT_SOCKET_OP))
		return -EOPNOTSUPP;
	FERRY__OP(loop, op, FERRY__OP_ONESHOT,
		  io_uring_prep_socket(sqe, domain, type, protocol, 0));
}

int ferry_op_connect(struct ferry_loop *loop, struct ferry_op *op, int fd,
		     const struct sockaddr *addr, socklen_t addrlen)
{
	FERRY__OP(loop, op, FERRY__OP_ONESHOT,
		  io_uring_prep_connect(sqe, fd, addr, addrlen));
}

int ferry_op_send(struct ferry_loop *loop, struct ferry_op *op, int fd,
		  const void *buf, size_t len, int flags)
{
	FERRY__OP(loop, op, FERRY__OP_ONESHOT,
		  io_uring_prep_send(sqe, fd, buf, ferry__rw_len(len), flags));
}

int ferry_op_sendmsg(struct ferry_loop *loop, struct ferry_op *op, int fd,
		     const struct msghdr *msg, int flags)
{
	FERRY__OP(loop, op, FERRY__OP_ONESHOT,
		  io_uring_prep_sendmsg(sqe, fd, msg, (unsigned)flags));
}

int ferry_op_recv(struct ferry_loop *loop, struct ferry_op *op, int fd,
		  void *buf, size_t len, int flags)
{
	FERRY__OP(loop, op, FERRY__OP_ONESHOT,
		  io_uring_prep_recv(sqe, fd, buf, ferry__rw_len(len), flags));
}

int ferry_op_close(struct ferry_loop *loop, struct ferry_op *op, int fd)
{
	FERRY__OP(loop, op, FERRY__OP_ONESHOT, io_uring_prep_close(sqe, fd));
}

int ferry_op_read(struct ferry_loop *loop, struct ferry_op *op, int fd,
		  void *buf, size_t len, uint64_t offset)
{
	FERRY__OP(loop, op, FERRY__OP_ONESHOT,
		  io_uring_prep_read(sqe, fd, buf, ferry__rw_len(len), offset));
}

int ferry_op_write(struct ferry_loop *loop, struct ferry_op *op, int fd,
		   const void *buf, size_t len, uint64_t offset)
{
	FERRY__OP(loop, op, FERRY__OP_ONESHOT,
		  io_uring_prep_write(sqe, fd, buf, ferry__rw_len(len), offset));
}

int ferry_op_openat(struct ferry_loop *loop, struct ferry_op *op, int dfd,
		    const char *path, int flags, mode_t mode)
{
	FERRY__OP(loop, op, FERRY__OP_ONESHOT,
		  io_uring_prep_openat(sqe, dfd, path, flags, mode));
}

int ferry_op_timeout(struct ferry_loop *loop, struct ferry_op *op,
		     uint64_t ns)
{
	/* The kernel reads the timespec at submission, which happens on a
	 * later turn: it lives in the op record until then. */
	FERRY__OP(loop, op, FERRY__OP_ONESHOT,
		  (FERRY__NS_TO_TS(&op->ferry__ts, ns),
		   io_uring_prep_timeout(sqe, &op->ferry__ts, 0, 0)));
}

int ferry_op_futex_wake(struct ferry_loop *loop, struct ferry_op *op,
			uint32_t *uaddr, unsigned nr)
{
	if (!(loop->features & FERRY_FEAT_FUTEX))
		return -EOPNOTSUPP;
	/* Layout from the kernel's io_futex_prep: fd = futex2 flags,
	 * addr = word, addr2 (= off) = count to wake, addr3 = bitset. */
	FERRY__OP(loop, op, FERRY__OP_ONESHOT,
		  (io_uring_prep_rw(FERRY__IORING_OP_FUTEX_WAKE, sqe,
				    FERRY__FUTEX2_SIZE_U32 | FERRY__FUTEX2_PRIVATE,
				    uaddr, 0, nr),
		   sqe->addr3 = FERRY__FUTEX_BITSET_MATCH_ANY));
}

void ferry_loop_futex_wake(struct ferry_loop *loop, uint32_t *uaddr,
			   unsigned nr)
{
	const unsigned need = FERRY_FEAT_FUTEX | FERRY_FEAT_CQE_SKIP;
	struct io_uring_sqe *sqe = NULL;

	FERRY__ASSERT_LOOP(loop);
	/* While destroying, the loop enters the kernel only as long as CQEs
	 * are due, and a skip-success wake has none: queued now, it might
	 * never be submitted and its waiter would sleep on. */
	if ((loop->features & need) == need && !loop->destroying)
		sqe = ferry__sqe_loose(loop);
	if (!sqe) {
		syscall(SYS_futex, uaddr, FUTEX_WAKE_PRIVATE, nr, NULL, NULL, 0);
		return;
	}
	io_uring_prep_rw(FERRY__IORING_OP_FUTEX_WAKE, sqe,
			 FERRY__FUTEX2_SIZE_U32 | FERRY__FUTEX2_PRIVATE, uaddr, 0,
			 nr);
	sqe->addr3 = FERRY__FUTEX_BITSET_MATCH_ANY;
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, FERRY__UD_SKIP);
}

int ferry_op_poll_multishot(struct ferry_loop *loop, struct ferry_op *op,
			    int fd, unsigned events)
{
	int err = 0;
	struct io_uring_sqe *sqe = ferry__op_begin(loop, op, &err);

	if (!sqe)
		return err;
	io_uring_prep_poll_multishot(sqe, fd, events);
	ferry__op_commit(loop, op, sqe, FERRY__OP_POLL_MULTI);
	/* Multishot ops keep their arguments for re-arming; the result
	 * field is unused by them, so it holds the poll mask. */
	op->ferry__fd = fd;
	op->ferry__res = (int)events;
	return 0;
}

int ferry_op_accept_multishot(struct ferry_loop *loop, struct ferry_op *op,
			      int fd)
{
	int err = 0;
	struct io_uring_sqe *sqe;

	if (!(loop->features & FERRY_FEAT_ACCEPT_MULTISHOT))
		return -EOPNOTSUPP;
	sqe = ferry__op_begin(loop, op, &err);
	if (!sqe)
		return err;
	io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
	ferry__op_commit(loop, op, sqe, FERRY__OP_ACCEPT_MULTI);
	op->ferry__fd = fd;
	return 0;
}

int ferry__recv_multishot_arm(struct ferry_loop *loop, struct ferry_op *op)
{
	int err = 0;
	struct io_uring_sqe *sqe = ferry__op_begin(loop, op, &err);

	if (!sqe)
		return err;
	io_uring_prep_recv_multishot(sqe, op->ferry__fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = op->ferry__br->bgid;
	return ferry__op_commit(loop, op, sqe, FERRY__OP_RECV_MULTI);
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
	struct io_uring_sqe *sqe;

	FERRY__ASSERT_LOOP(loop);
	if (loop->last_op != op || !ferry__link_open(loop) ||
	    op->ferry__nflight != 1 || op->ferry__kind != FERRY__OP_ONESHOT)
		return -EINVAL;
	/* The op's SQE was taken with a slot spare behind it (ferry__sqe,
	 * ferry__sqe_loose): only a ring whose submissions fail, or one of
	 * a single entry, has none. Then the op must not run on without its
	 * deadline: it is not started at all. */
	sqe = io_uring_get_sqe(&loop->ring);
	if (!sqe) {
		ferry__op_unprepare(loop, op);
		return -EBUSY;
	}
	loop->last_sqe->flags |= IOSQE_IO_LINK;
	FERRY__NS_TO_TS(&op->ferry__ts, ns);
	io_uring_prep_link_timeout(sqe, &op->ferry__ts, 0);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | FERRY__UD_LINK);
	op->ferry__nflight++;
	loop->inflight++;
	loop->last_op = NULL;
	return 0;
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
	struct io_uring_sqe *sqe;

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
	if (op == loop->last_op) {
		/* The cancel must come after the op it cancels: the op can
		 * take no linked timeout any more. */
		loop->last_op = NULL;
		sqe = ferry__sqe(loop);
	} else {
		sqe = ferry__sqe_loose(loop);
	}
	if (!sqe)
		return -EBUSY;
	op->ferry__flags |= FERRY__OPF_CANCELED;
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op | FERRY__UD_OP,
			       IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, FERRY__UD_IGNORE);
	loop->inflight++;
	loop->internal_inflight++;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Completion dispatch                                                   */

/* Kernel-internal, yet an op interrupted in an io-wq worker can end with
 * it (openat on Linux 6.18). */
#define FERRY__ERESTARTSYS 512

/*
 * The result the owner sees. An op the kernel cancelled ends with
 * -ECANCELED, or, if it had to interrupt it in an io-wq worker, with
 * -EINTR or -ERESTARTSYS. Whoever asked for the cancel names it: a fired
 * deadline gives -ETIME; ferry_op_cancel and destroy give -ECANCELED.
 */
static int ferry__op_result(const struct ferry_loop *loop,
			    const struct ferry_op *op, int res)
{
	if (res != -ECANCELED && res != -EINTR && res != -FERRY__ERESTARTSYS)
		return res;
	if (op->ferry__flags & FERRY__OPF_TIMEDOUT)
		return -ETIME;
	if ((op->ferry__flags & FERRY__OPF_CANCELED) || loop->destroying)
		return -ECANCELED;
	return res;
}

/* One of the op's CQEs arrived; call out once the last one has. */
static void ferry__op_settle(struct ferry_loop *loop, struct ferry_op *op)
{
	int res;

	if (--op->ferry__nflight)
		return;
	res = ferry__op_result(loop, op, op->ferry__res);
	op->ferry__flags = 0;
	op->fn(op, res, op->ferry__cflags);
}

/* May a multishot that the kernel ended be re-armed transparently? */
static bool ferry__multishot_rearm(struct ferry_loop *loop,
				   struct ferry_op *op, int res)
{
	if ((op->ferry__flags & FERRY__OPF_CANCELED) || loop->destroying)
		return false;
	switch (op->ferry__kind) {
	case FERRY__OP_RECV_MULTI:
		return res > 0 && ferry__recv_multishot_arm(loop, op) == 0;
	case FERRY__OP_ACCEPT_MULTI:
		return res >= 0 &&
		       ferry_op_accept_multishot(loop, op, op->ferry__fd) == 0;
	case FERRY__OP_POLL_MULTI:
		return res > 0 &&
		       ferry_op_poll_multishot(loop, op, op->ferry__fd,
					       (unsigned)op->ferry__res) == 0;
	default:
		return false;
	}
}

static void ferry__multishot_end(struct ferry_loop *loop, struct ferry_op *op,
				 int res, unsigned flags)
{
	op->ferry__nflight = 0;
	if (op->ferry__kind == FERRY__OP_RECV_MULTI && res == -ENOBUFS) {
		if ((op->ferry__flags & FERRY__OPF_CANCELED) || loop->destroying) {
			/* Ran dry just as it was being cancelled: -ENOBUFS is
			 * never passed on, so it ends as cancelled. */
			res = -ECANCELED;
		} else {
			/* Backpressure: wait for a buffer, then re-arm. The
			 * owner may already have recycled buffers while
			 * dispatching the CQEs that preceded this one; then
			 * no later recycle would come to unpark us, so re-arm
			 * at once. */
			if (ferry_bufring_available(op->ferry__br) == 0 ||
			    ferry__recv_multishot_arm(loop, op) != 0)
				ferry__bufring_park(op->ferry__br, op);
			return;
		}
	}
	if (ferry__multishot_rearm(loop, op, res)) {
		op->fn(op, res, flags | FERRY_CQE_MORE);
		return;
	}
	op->ferry__flags = 0;
	op->fn(op, res, flags & ~FERRY_CQE_MORE);
}

void ferry__cqe_dispatch(struct ferry_loop *loop, uint64_t ud, int res,
			 unsigned flags)
{
	struct ferry_op *op = (struct ferry_op *)(uintptr_t)(ud & ~(uint64_t)FERRY__UD_MASK);

	switch (ud & FERRY__UD_MASK) {
	case FERRY__UD_SKIP:
		return;
	case FERRY__UD_IGNORE:
		loop->inflight--;
		loop->internal_inflight--;
		return;
	case FERRY__UD_LINK:
		loop->inflight--;
		/* Only -ECANCELED says the op finished first and the timeout
		 * was removed. An expired one says -ETIME, or, when it then
		 * found the op running in an io-wq worker and interrupted it,
		 * -EALREADY or -ENOENT (Linux 6.18). */
		if (res != -ECANCELED)
			op->ferry__flags |= FERRY__OPF_TIMEDOUT;
		ferry__op_settle(loop, op);
		return;
	default:
		break;
	}
	if (op->ferry__kind == FERRY__OP_RECV_MULTI && (flags & IORING_CQE_F_BUFFER))
		ferry__bufring_taken(op->ferry__br);
	if (flags & IORING_CQE_F_MORE) {
		op->fn(op, res, flags);
		return;
	}
	loop->inflight--;
	if (op->ferry__kind != FERRY__OP_ONESHOT) {
		ferry__multishot_end(loop, op, res, flags);
		return;
	}
	op->ferry__res = res;
	op->ferry__cflags = flags;
	ferry__op_settle(loop, op);
}
