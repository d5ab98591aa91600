/*
 * uring.c - the io_uring backend: ring set-up and probing, SQEs for op
 * records, linked timeouts, cancellation, one io_uring_enter per turn,
 * and dispatching CQEs.
 *
 * Every op goes through the same three steps: uring_start() takes an SQE
 * (ferry__sqe), a liburing prep helper fills it, and ferry__op_commit()
 * tags it with the record's address and counts it in flight.
 * ferry__cqe_dispatch() is the other end.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

#if defined(__SANITIZE_THREAD__)
/*
 * liburing maps and unmaps a ring with raw syscalls that ThreadSanitizer
 * does not see: when a new loop's ring lands where a destroyed one was,
 * TSan takes the old loop thread's SQE writes for a race with the new
 * one's. The kernel orders the munmap before the mmap that reuses the
 * address; tell TSan through one sync object (annotations from its
 * interface: release before unmapping, acquire after mapping). TSan
 * builds only.
 */
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char ferry__tsan_rings;
#define FERRY__TSAN_RING_MAPPED() __tsan_acquire(&ferry__tsan_rings)
#define FERRY__TSAN_RING_UNMAPPING() __tsan_release(&ferry__tsan_rings)
#else
#define FERRY__TSAN_RING_MAPPED() ((void)0)
#define FERRY__TSAN_RING_UNMAPPING() ((void)0)
#endif

/* The futex2 flags; liburing 2.3 predates them. */
#define FERRY__FUTEX2_SIZE_U32 0x02
#define FERRY__FUTEX2_PRIVATE 128
#define FERRY__FUTEX_BITSET_MATCH_ANY 0xffffffffu

/*
 * Take an SQE for an op, keeping one slot spare so that
 * ferry_op_set_timeout() can put the linked timeout right behind it.
 */
static struct io_uring_sqe *ferry__sqe(struct ferry_loop *loop)
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
static struct io_uring_sqe *ferry__sqe_loose(struct ferry_loop *loop)
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


static void ferry__prep_futex_wake(struct io_uring_sqe *sqe, uint32_t *uaddr,
				   unsigned nr)
{
	/* Layout from the kernel's io_futex_prep: fd = futex2 flags,
	 * addr = word, addr2 (= off) = count to wake, addr3 = bitset. */
	io_uring_prep_rw(FERRY__IORING_OP_FUTEX_WAKE, sqe,
			 FERRY__FUTEX2_SIZE_U32 | FERRY__FUTEX2_PRIVATE, uaddr, 0,
			 nr);
	sqe->addr3 = FERRY__FUTEX_BITSET_MATCH_ANY;
}

/* Fill @sqe for the op @a describes. */
static void ferry__prep(struct ferry_op *op, struct io_uring_sqe *sqe,
			const struct ferry__args *a)
{
	void *p = (void *)(uintptr_t)a->p;

	switch (a->code) {
	case FERRY__OC_SOCKET:
		io_uring_prep_socket(sqe, a->fd, (int)a->len, a->flags, 0);
		break;
	case FERRY__OC_CONNECT:
		io_uring_prep_connect(sqe, a->fd, p, a->len);
		break;
	case FERRY__OC_SEND:
		io_uring_prep_send(sqe, a->fd, p, a->len, a->flags);
		break;
	case FERRY__OC_SENDMSG:
		io_uring_prep_sendmsg(sqe, a->fd, p, (unsigned)a->flags);
		break;
	case FERRY__OC_RECV:
		io_uring_prep_recv(sqe, a->fd, p, a->len, a->flags);
		break;
	case FERRY__OC_CLOSE:
		io_uring_prep_close(sqe, a->fd);
		break;
	case FERRY__OC_READ:
		io_uring_prep_read(sqe, a->fd, p, a->len, a->u64);
		break;
	case FERRY__OC_WRITE:
		io_uring_prep_write(sqe, a->fd, p, a->len, a->u64);
		break;
	case FERRY__OC_OPENAT:
		io_uring_prep_openat(sqe, a->fd, p, a->flags, a->len);
		break;
	case FERRY__OC_TIMEOUT:
		/* The kernel reads the timespec at submission, which happens
		 * on a later turn: it lives in the op record until then. */
		FERRY__NS_TO_TS(&op->ferry__ts, a->u64);
		io_uring_prep_timeout(sqe, &op->ferry__ts, 0, 0);
		break;
	case FERRY__OC_FUTEX_WAKE:
		ferry__prep_futex_wake(sqe, p, a->len);
		break;
	case FERRY__OC_POLL_MULTI:
		io_uring_prep_poll_multishot(sqe, a->fd, a->len);
		break;
	case FERRY__OC_ACCEPT_MULTI:
		io_uring_prep_multishot_accept(sqe, a->fd, NULL, NULL,
					       SOCK_CLOEXEC);
		break;
	case FERRY__OC_RECV_MULTI:
		io_uring_prep_recv_multishot(sqe, a->fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = ((const struct ferry_bufring *)a->p)->bgid;
		break;
	}
}

/* A bundle, where the loop has them: see ferry__recv_bundle. */
static void ferry__prep_bundle(const struct ferry_loop *loop,
			       struct io_uring_sqe *sqe,
			       const struct ferry__args *a)
{
	if (a->code == FERRY__OC_RECV_MULTI &&
	    (loop->features & FERRY_FEAT_RECV_BUNDLE))
		sqe->ioprio |= FERRY__IORING_RECVSEND_BUNDLE;
}

static int uring_start(struct ferry_loop *loop, struct ferry_op *op,
		       const struct ferry__args *a)
{
	struct io_uring_sqe *sqe = ferry__sqe(loop);

	if (!sqe)
		return -EBUSY;
	ferry__prep(op, sqe, a);
	ferry__prep_bundle(loop, sqe, a);
	ferry__op_commit(loop, op, sqe, ferry__op_kind_of(a->code));
	/* Multishot ops keep their arguments for re-arming. */
	op->ferry__fd = a->fd;
	op->ferry__len = a->len;
	if (a->code == FERRY__OC_RECV_MULTI)
		op->ferry__br = (struct ferry_bufring *)(uintptr_t)a->p;
	return 0;
}

static void uring_futex_wake(struct ferry_loop *loop, uint32_t *uaddr,
			     unsigned nr)
{
	const unsigned need = FERRY_FEAT_FUTEX | FERRY_FEAT_CQE_SKIP;
	struct io_uring_sqe *sqe = NULL;

	/* While destroying, the loop enters the kernel only as long as CQEs
	 * are due, and a skip-success wake has none: queued now, it might
	 * never be submitted and its waiter would sleep on. */
	if ((loop->features & need) == need && !loop->destroying)
		sqe = ferry__sqe_loose(loop);
	if (!sqe) {
		syscall(SYS_futex, uaddr, FUTEX_WAKE_PRIVATE, nr, NULL, NULL, 0);
		return;
	}
	ferry__prep_futex_wake(sqe, uaddr, nr);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, FERRY__UD_SKIP);
}

static int uring_set_timeout(struct ferry_loop *loop, struct ferry_op *op,
			     uint64_t ns)
{
	struct io_uring_sqe *sqe;

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
/* Cancellation                                                          */

static int uring_cancel(struct ferry_loop *loop, struct ferry_op *op)
{
	struct io_uring_sqe *sqe;

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
		if (res <= 0)
			return false;
		/* A bundle that took the ring's last buffers ends the
		 * multishot: re-armed now it would only meet -ENOBUFS. It
		 * waits for the owner's next recycle instead, as after one. */
		if (ferry_bufring_available(op->ferry__br) == 0) {
			ferry__bufring_park(op->ferry__br, op);
			return true;
		}
		return ferry__recv_multishot_arm(loop, op) == 0;
	case FERRY__OP_ACCEPT_MULTI:
		return res >= 0 &&
		       ferry_op_accept_multishot(loop, op, op->ferry__fd) == 0;
	case FERRY__OP_POLL_MULTI:
		return res > 0 &&
		       ferry_op_poll_multishot(loop, op, op->ferry__fd,
					       op->ferry__len) == 0;
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

/*
 * A receive bundle (FERRY_FEAT_RECV_BUNDLE): the kernel filled @res bytes
 * into consecutive entries of the ring, the first holding the buffer the
 * CQE names, each filled up to the length its entry gives (a full buffer,
 * unless the kernel shortened the entry: it may, so the entry's length is
 * read back), the last one partly. Every buffer but the last reaches the
 * owner as a completion of its own, with FERRY_CQE_MORE; the last one's
 * result and flags are left in @res and @flags for the ordinary path.
 *
 * The entries are still intact: an entry is rewritten only when the tail
 * comes round to it again, and between its buffer's put and that, every
 * other buffer would have to be put once more; the buffers of this bundle
 * cannot (their owner has not had them yet), nor can any taken after them
 * (the kernel posts completions in the order it takes buffers).
 */
static void ferry__recv_bundle(struct ferry_op *op, int *res, unsigned *flags)
{
	struct ferry_bufring *br = op->ferry__br;
	unsigned slot = br->slot_of[ferry_cqe_bid(*flags) & br->mask];
	unsigned left = (unsigned)*res;
	unsigned low = *flags & 0xffffu;
	unsigned n = 0;

	for (;; slot++, n++) {
		const struct io_uring_buf *e = &br->ring->bufs[slot & br->mask];
		unsigned len = IO_URING_READ_ONCE(e->len);
		unsigned bid = e->bid;

		if (len == 0 || len > br->size)	/* never from the kernel */
			len = br->size;
		if (len > left)
			len = left;
		ferry__bufring_taken(br);
		left -= len;
		if (!left) {
			br->bundles += n > 0;
			*res = (int)len;
			*flags = low | bid << 16;
			return;
		}
		op->fn(op, (int)len, low | FERRY_CQE_MORE | bid << 16);
	}
}

static void ferry__cqe_dispatch(struct ferry_loop *loop, uint64_t ud,
				int res, unsigned flags)
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
	if (op->ferry__kind == FERRY__OP_RECV_MULTI && (flags & IORING_CQE_F_BUFFER)) {
		if (res > 0 && (loop->features & FERRY_FEAT_RECV_BUNDLE))
			ferry__recv_bundle(op, &res, &flags);
		else
			ferry__bufring_taken(op->ferry__br);
	}
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

/* ------------------------------------------------------------------ */
/* Set-up and probing                                                    */

static int ferry__read_sysctl_disabled(void)
{
	char buf[16] = { 0 };
	int fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atoi(buf) : -1;
}

/* Turn a failed io_uring_setup into FERRY_EUNAVAIL with a sentence. */
static int ferry__setup_failed(int err, char *why, size_t whylen)
{
	int sysctl;

	if (err == ENOSYS) {
		ferry__whyf(why, whylen,
			    "io_uring_setup: %s (%d): the kernel has no io_uring, "
			    "or a seccomp filter blocks it",
			    strerrorname_np(err) ?: "?", err);
		return FERRY_EUNAVAIL;
	}
	if (err == EPERM || err == EACCES) {
		sysctl = ferry__read_sysctl_disabled();
		if (why && whylen) {
			if (sysctl > 0)
				snprintf(why, whylen,
					 "io_uring_setup: %s: disabled by sysctl "
					 "kernel.io_uring_disabled = %d",
					 strerrorname_np(err), sysctl);
			else
				snprintf(why, whylen,
					 "io_uring_setup: %s: refused by a seccomp "
					 "filter or security policy "
					 "(kernel.io_uring_disabled = %d)",
					 strerrorname_np(err), sysctl);
		}
		return FERRY_EUNAVAIL;
	}
	ferry__whyf(why, whylen, "io_uring_setup: %s (%d)",
		    strerrorname_np(err) ?: "?", err);
	return -err;
}

/*
 * Ask for the best set of flags, dropping them one at a time when the
 * kernel says -EINVAL. Returns 0 or a negated errno from the last attempt.
 */
static int ferry__ring_init(struct ferry_loop *loop, unsigned sq, unsigned cq,
			    unsigned disabled)
{
	static const unsigned drop_order[] = {
		IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_SINGLE_ISSUER,
		IORING_SETUP_SUBMIT_ALL,
	};
	unsigned flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
			 IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
			 IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
	int ret;

	if (disabled & FERRY_FEAT_DEFER_TASKRUN)
		flags &= ~IORING_SETUP_DEFER_TASKRUN;
	if (disabled & FERRY_FEAT_COOP_TASKRUN)
		flags &= ~(IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
	if (disabled & FERRY_FEAT_SINGLE_ISSUER)
		flags &= ~(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
	if (disabled & FERRY_FEAT_SUBMIT_ALL)
		flags &= ~IORING_SETUP_SUBMIT_ALL;
	/* TASKRUN_FLAG needs one of the task-run modes. */
	if (!(flags & (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_DEFER_TASKRUN)))
		flags &= ~IORING_SETUP_TASKRUN_FLAG;

	for (size_t i = 0;; i++) {
		struct io_uring_params p = { .flags = flags, .cq_entries = cq };

		ret = io_uring_queue_init_params(sq, &loop->ring, &p);
		if (ret != -EINVAL || i == sizeof(drop_order) / sizeof(drop_order[0]))
			break;
		flags &= ~drop_order[i];
		if (flags & IORING_SETUP_DEFER_TASKRUN &&
		    !(flags & IORING_SETUP_SINGLE_ISSUER))
			flags &= ~IORING_SETUP_DEFER_TASKRUN;
		if (!(flags & (IORING_SETUP_COOP_TASKRUN | IORING_SETUP_DEFER_TASKRUN)))
			flags &= ~IORING_SETUP_TASKRUN_FLAG;
	}
	if (ret == 0)
		loop->setup_flags = flags;
	return ret;
}

static void ferry__probe(struct ferry_loop *loop, unsigned disabled)
{
	struct io_uring_probe *probe = io_uring_get_probe_ring(&loop->ring);
	unsigned f = 0;
	unsigned sf = loop->setup_flags;

	if (sf & IORING_SETUP_SINGLE_ISSUER)
		f |= FERRY_FEAT_SINGLE_ISSUER;
	if (sf & IORING_SETUP_DEFER_TASKRUN)
		f |= FERRY_FEAT_DEFER_TASKRUN;
	if (sf & IORING_SETUP_COOP_TASKRUN)
		f |= FERRY_FEAT_COOP_TASKRUN;
	if (sf & IORING_SETUP_SUBMIT_ALL)
		f |= FERRY_FEAT_SUBMIT_ALL;
	if (loop->ring.features & IORING_FEAT_EXT_ARG)
		f |= FERRY_FEAT_EXT_ARG;
	if (loop->ring.features & IORING_FEAT_CQE_SKIP)
		f |= FERRY_FEAT_CQE_SKIP;
	/* min_wait rides on the EXT_ARG argument (6.12); older kernels
	 * refuse a non-zero min_wait_usec with EINVAL. */
	if ((loop->ring.features & FERRY__IORING_FEAT_MIN_TIMEOUT) &&
	    (loop->ring.features & IORING_FEAT_EXT_ARG))
		f |= FERRY_FEAT_MIN_WAIT;
	/* The registered ring fd spares io_uring_enter an fget/fput; it is
	 * per thread, and the loop enters only from its own. */
	if (!(disabled & FERRY_FEAT_REG_RING) &&
	    io_uring_register_ring_fd(&loop->ring) == 1)
		f |= FERRY_FEAT_REG_RING;
	if (probe) {
		/* Provided-buffer rings and multishot recv arrived together
		 * (6.0); the opcode probe cannot see either, but SOCKET (5.19)
		 * and the ring registration below can. */
		if (io_uring_opcode_supported(probe, IORING_OP_SOCKET))
			f |= FERRY_FEAT_SOCKET_OP | FERRY_FEAT_ACCEPT_MULTISHOT;
		if (io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC))
			f |= FERRY_FEAT_BUF_RING | FERRY_FEAT_RECV_MULTISHOT;
		if (probe->last_op >= FERRY__IORING_OP_FUTEX_WAKE &&
		    io_uring_opcode_supported(probe, FERRY__IORING_OP_FUTEX_WAIT) &&
		    io_uring_opcode_supported(probe, FERRY__IORING_OP_FUTEX_WAKE))
			f |= FERRY_FEAT_FUTEX;
		io_uring_free_probe(probe);
	}
	/* One multishot recv may fill several buffers (6.10). */
	if (loop->ring.features & FERRY__IORING_FEAT_RECVSEND_BUNDLE)
		f |= FERRY_FEAT_RECV_BUNDLE;
	/* Setup flags were already filtered; these are use-time switches. */
	f &= ~(disabled & (FERRY_FEAT_FUTEX | FERRY_FEAT_RECV_MULTISHOT |
			   FERRY_FEAT_CQE_SKIP | FERRY_FEAT_MIN_WAIT |
			   FERRY_FEAT_RECV_BUNDLE));
	if (!(f & FERRY_FEAT_RECV_MULTISHOT))
		f &= ~FERRY_FEAT_RECV_BUNDLE;
	loop->features = f;
}

/* ------------------------------------------------------------------ */
/* The turn                                                              */

/* With TASKRUN_FLAG the kernel tells us completions are waiting. */
static bool ferry__kernel_has_work(struct ferry_loop *loop)
{
	unsigned sqf = IO_URING_READ_ONCE(*loop->ring.sq.kflags);

	return (sqf & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) ||
	       io_uring_cq_ready(&loop->ring);
}

/*
 * Hand the SQEs taken since the last flush to the kernel without entering
 * it (liburing 2.3 keeps its own flush private). Returns how many are
 * waiting for io_uring_enter to submit them.
 */
static unsigned ferry__sq_flush(struct ferry_loop *loop)
{
	struct io_uring_sq *sq = &loop->ring.sq;

	if (sq->sqe_head != sq->sqe_tail) {
		sq->sqe_head = sq->sqe_tail;
		/* release: the SQEs' contents before the tail that shows them */
		io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
	}
	return sq->sqe_tail - IO_URING_READ_ONCE(*sq->khead);
}

/*
 * A wait that gathers up to @nr completions, holding the first one for
 * at most batch_wait_ns (io_uring_enter's min_wait, 6.12+): the kernel
 * wakes us when @nr are in, or once min_wait has passed with at least
 * one, or at @wait_ns with none. min_wait works only under a general
 * timeout, so "no bound" becomes an hour, after which the caller simply
 * turns again. liburing 2.3 predates min_wait: the argument is built here
 * (min_wait_usec is the field liburing still calls pad).
 */
static int ferry__enter_batch(struct ferry_loop *loop, int64_t wait_ns,
			      unsigned nr)
{
	const int64_t hour = 3600ll * 1000000000;
	struct __kernel_timespec ts;
	struct io_uring_getevents_arg arg = { 0 };
	unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
	unsigned submit = ferry__sq_flush(loop);
	int fd = loop->ring.ring_fd;

	if (wait_ns < 0 || wait_ns > hour)
		wait_ns = hour;
	ts.tv_sec = wait_ns / 1000000000;
	ts.tv_nsec = wait_ns % 1000000000;
	arg.sigmask_sz = _NSIG / 8;
	arg.pad = loop->batch_wait_ns / 1000;	/* min_wait_usec */
	arg.ts = (uint64_t)(uintptr_t)&ts;
	if (loop->features & FERRY_FEAT_REG_RING) {
		fd = loop->ring.enter_ring_fd;
		flags |= IORING_ENTER_REGISTERED_RING;
	}
	return io_uring_enter2((unsigned)fd, submit, nr, flags,
			       (sigset_t *)&arg, sizeof(arg));
}

/*
 * How many completions a wait of @wait_ns may gather before waking (see
 * ferry__enter_batch). Only one, and so no added latency, unless: the
 * kernel has min_wait; at least two completions are expected; no posted
 * item ran this turn or the last (a bridge caller's doorbell must not
 * wait for a batch); and the wait is longer than the batch window (a
 * timer due sooner must not be held past its deadline). Then half of
 * those expected: the other half keeps the peers busy meanwhile.
 */
static unsigned ferry__batch_nr(const struct ferry_loop *loop, int64_t wait_ns,
				bool posted)
{
	unsigned nr = loop->expected / 2;

	if (!(loop->features & FERRY_FEAT_MIN_WAIT) || !loop->batch_wait_ns ||
	    posted || nr < 2 ||
	    (wait_ns >= 0 && wait_ns <= (int64_t)loop->batch_wait_ns))
		return 1;
	return nr > loop->ring.cq.ring_entries / 2 ? loop->ring.cq.ring_entries / 2
						   : nr;
}

static int ferry__enter(struct ferry_loop *loop, int64_t wait_ns)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts;
	int ret;

	if (wait_ns == 0)
		ret = io_uring_submit_and_get_events(&loop->ring);
	else if (wait_ns < 0)
		ret = io_uring_submit_and_wait(&loop->ring, 1);
	else {
		ts.tv_sec = wait_ns / 1000000000;
		ts.tv_nsec = wait_ns % 1000000000;
		ret = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1,
						       &ts, NULL);
	}
	if (ret == -ETIME || ret == -EINTR || ret == -EAGAIN || ret == -EBUSY)
		ret = 0;
	return ret < 0 ? ret : 0;
}

static unsigned ferry__reap(struct ferry_loop *loop)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0, total = 0;

	/* A callback may prepare SQEs but never reaps, so iterating the CQ
	 * while calling out is safe; advance in batches. */
	do {
		n = 0;
		io_uring_for_each_cqe(&loop->ring, head, cqe) {
			uint64_t ud = cqe->user_data;
			int res = cqe->res;
			unsigned flags = cqe->flags;

			n++;
			io_uring_cq_advance(&loop->ring, 1);
			ferry__cqe_dispatch(loop, ud, res, flags);
		}
		total += n;
	} while (n);
	return total;
}

static void ferry__cancel_everything(struct ferry_loop *loop)
{
	struct io_uring_sqe *sqe = ferry__sqe_loose(loop);

	if (!sqe)
		return;
	io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
	io_uring_sqe_set_data64(sqe, FERRY__UD_IGNORE);
	loop->inflight++;
	loop->internal_inflight++;
}


/* One wait: gather a batch when it pays (ferry__batch_nr), else one. */
static int uring_wait(struct ferry_loop *loop, int64_t wait_ns, bool posted)
{
	unsigned nr = wait_ns != 0 ? ferry__batch_nr(loop, wait_ns, posted) : 1;
	int ret;

	if (nr <= 1)
		return ferry__enter(loop, wait_ns);
	ret = ferry__enter_batch(loop, wait_ns, nr);
	if (ret == -ETIME || ret == -EINTR || ret == -EAGAIN || ret == -EBUSY ||
	    ret > 0)
		ret = 0;
	return ret;
}

static void uring_flush(struct ferry_loop *loop)
{
	if (io_uring_sq_ready(&loop->ring))
		io_uring_submit(&loop->ring);
}

static bool uring_ready(struct ferry_loop *loop)
{
	return (loop->setup_flags & IORING_SETUP_TASKRUN_FLAG) &&
	       ferry__kernel_has_work(loop);
}

static int uring_init(struct ferry_loop *loop, const struct ferry_loop_opts *o,
		      unsigned disabled, char *why, size_t whylen)
{
	int ret = ferry__ring_init(loop, o->sq_entries, o->cq_entries, disabled);

	if (ret < 0) {
		/* Nothing of a ring is left for fini, or for another backend. */
		memset(&loop->ring, 0, sizeof(loop->ring));
		return ferry__setup_failed(-ret, why, whylen);
	}
	FERRY__TSAN_RING_MAPPED();
	ferry__probe(loop, disabled);
	return 0;
}

static void uring_fini(struct ferry_loop *loop)
{
	FERRY__TSAN_RING_UNMAPPING();
	io_uring_queue_exit(&loop->ring);
}

/* ------------------------------------------------------------------ */
/* Provided-buffer rings (IORING_REGISTER_PBUF_RING)                     */

static size_t ferry__bufring_ring_bytes(unsigned count)
{
	return (size_t)count * sizeof(struct io_uring_buf);
}

static int uring_buf_register(struct ferry_bufring *br)
{
	struct io_uring_buf_reg reg = { 0 };
	void *mem;
	int ret;

	/* The ring itself must be page-aligned memory the kernel maps. */
	br->slot_of = calloc(br->count, sizeof(*br->slot_of));
	if (!br->slot_of)
		return -ENOMEM;
	mem = mmap(NULL, ferry__bufring_ring_bytes(br->count),
		   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		free(br->slot_of);
		br->slot_of = NULL;
		return -ENOMEM;
	}
	br->ring = mem;
	io_uring_buf_ring_init(br->ring);
	reg.ring_addr = (uint64_t)(uintptr_t)br->ring;
	reg.ring_entries = br->count;
	reg.bgid = br->bgid;
	ret = io_uring_register_buf_ring(&br->loop->ring, &reg, 0);
	if (ret < 0) {
		munmap(br->ring, ferry__bufring_ring_bytes(br->count));
		br->ring = NULL;
		free(br->slot_of);
		br->slot_of = NULL;
	}
	return ret;
}

static void uring_buf_unregister(struct ferry_bufring *br)
{
	if (!br->ring)
		return;
	io_uring_unregister_buf_ring(&br->loop->ring, br->bgid);
	munmap(br->ring, ferry__bufring_ring_bytes(br->count));
	br->ring = NULL;
	free(br->slot_of);
	br->slot_of = NULL;
}

static void uring_buf_put(struct ferry_bufring *br, unsigned bid)
{
	/* Where the entry goes: a bundle's completion names only its first
	 * buffer, the rest follow it in the ring (ferry__recv_bundle). The
	 * tail is ours alone to write. */
	br->slot_of[bid & br->mask] = (uint16_t)(br->ring->tail & br->mask);
	io_uring_buf_ring_add(br->ring, ferry_bufring_buf(br, bid), br->size,
			      (unsigned short)bid, (int)br->mask, 0);
	/* Publishes the entry to the kernel (a release store of tail). */
	io_uring_buf_ring_advance(br->ring, 1);
}

const struct ferry__backend ferry__uring_backend = {
	.name = "io_uring",
	.init = uring_init,
	.fini = uring_fini,
	.start = uring_start,
	.set_timeout = uring_set_timeout,
	.cancel = uring_cancel,
	.futex_wake = uring_futex_wake,
	.flush = uring_flush,
	.ready = uring_ready,
	.wait = uring_wait,
	.reap = ferry__reap,
	.cancel_all = ferry__cancel_everything,
	.buf_register = uring_buf_register,
	.buf_unregister = uring_buf_unregister,
	.buf_put = uring_buf_put,
};
