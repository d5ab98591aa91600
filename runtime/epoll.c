/*
 * epoll.c - the readiness backend: the same ops on epoll and non-blocking
 * sockets, for hosts where io_uring is blocked (seccomp, the sysctl).
 *
 * The life of an op, in the order a turn sees it:
 *   start   a send or sendmsg is tried at once when nothing on its fd
 *           is ahead of it (a send on a connected socket nearly always
 *           goes through: the peer gets it now, not after the rest of the
 *           turn, which is what keeps a keep-alive server busy); every
 *           other op joins the submit list (as an SQE waits for
 *           io_uring_enter);
 *   flush   the next wait tries each: a socket call with MSG_DONTWAIT
 *           that finishes goes to the done list; one that would block
 *           joins its fd's queue (readers, writers or pollers); file ops
 *           go to the offload pool;
 *   wait    epoll_wait, bounded by the earliest timer (0 when something
 *           is already done);
 *   reap    the done list completes, then each ready fd runs its queues,
 *           then what finished meanwhile (the sends those callbacks
 *           started) completes too.
 * So a completion always comes from a turn, never from the call that
 * started the op: the io_uring contract (ferry/loop.h). A receive is not
 * tried at start: right after the send that asks for it, it would only
 * find the socket empty.
 *
 * Registration is level-triggered and follows the queues: an fd is in
 * the epoll set for exactly the directions that have ops waiting, and
 * leaves it when its queues empty. An fd with nothing waiting is thus
 * never registered, and its owner may close(2) it directly without
 * leaving anything stale here. Multishot polls (the doorbell) register
 * edge-triggered, so a never-read eventfd reports each write once, as
 * IORING_OP_POLL_ADD's multishot does.
 *
 * Deadlines (ferry_op_timeout, ferry_op_set_timeout) are loop timers
 * embedded in the op. Multishot receive takes buffers from a stack of
 * free ids in the ring (buf_put) and parks on an empty one, exactly as
 * the io_uring side parks on ENOBUFS.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "grow.h"
#include "internal.h"
#include "util.h"

/* Where an op is; each list links through ferry__next. */
enum ep_where {
	EP_NONE = 0,
	EP_SUB,		/* prepared, not tried yet */
	EP_RD,		/* its fd's readers */
	EP_WR,		/* its fd's writers */
	EP_POLL,	/* its fd's pollers */
	EP_TIMER,	/* a timeout op: only its timer */
	EP_DONE,	/* finished, waiting for reap */
	EP_OFFLOAD,	/* running on the offload pool */
};

struct ep_list {
	struct ferry_op *head;
	struct ferry_op *tail;
};

struct ep_fd {
	struct ep_list rd, wr, poll;
	uint32_t mask;		/* events registered; 0: not in the set */
	unsigned nsub;		/* its ops on the submit list (EP_OPF_SUB) */
};

/* A bit of ferry__flags above the shared FERRY__OPF_* ones: the op is
 * counted in its fd's nsub. Cleared with the others at completion. */
#define EP_OPF_SUB (1u << 7)
_Static_assert(EP_OPF_SUB > FERRY__OPF_DEFERRED, "EP_OPF_SUB is taken");

#define EP_EVENTS 128
/* Ops run per queue per readiness event: an fd that never drains must
 * not keep the others waiting (level-triggered, so it comes back). */
#define EP_BUDGET 32

struct ferry__epoll {
	int epfd;
	bool no_pwait2;		/* epoll_pwait2 refused (old kernel, filter) */
	bool deadlines;		/* the flush started deadline timers */
	bool skipped;		/* the last wait was skipped (ep_wait) */
	struct ep_fd *fds;
	size_t fdcap;		/* bytes */
	struct ep_list sub, done;
	struct ep_list sleepers;	/* timeout ops */
	int nev;
	struct epoll_event ev[EP_EVENTS];
};

/* A file op on the offload pool, with what it needs to run there. */
struct ep_job {
	struct ferry_offload job;
	struct ferry_op *op;
	struct ferry_loop *loop;
	enum ferry__opcode code;
	int fd;
	void *buf;
	unsigned len;
	int flags;
	uint64_t off;
	int res;
};

/* ------------------------------------------------------------------ */
/* Lists                                                                 */

static void ep_push(struct ep_list *l, struct ferry_op *op)
{
	op->ferry__next = NULL;
	if (l->tail)
		l->tail->ferry__next = op;
	else
		l->head = op;
	l->tail = op;
}

static struct ferry_op *ep_pop(struct ep_list *l)
{
	struct ferry_op *op = l->head;

	if (op) {
		l->head = op->ferry__next;
		if (!l->head)
			l->tail = NULL;
		op->ferry__next = NULL;
	}
	return op;
}

static bool ep_remove(struct ep_list *l, struct ferry_op *op)
{
	struct ferry_op *prev = NULL;

	for (struct ferry_op *o = l->head; o; prev = o, o = o->ferry__next) {
		if (o != op)
			continue;
		if (prev)
			prev->ferry__next = op->ferry__next;
		else
			l->head = op->ferry__next;
		if (l->tail == op)
			l->tail = prev;
		op->ferry__next = NULL;
		return true;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Completion                                                            */

/* The op's deadline, if it has one, will not be needed any more. */
static void ep_deadline_stop(struct ferry_loop *loop, struct ferry_op *op)
{
	if (op->ferry__nflight > 1 || op->ferry__code == FERRY__OC_TIMEOUT)
		ferry_timer_stop(loop, &op->ferry__dl.ferry__timer);
}

/* Call the owner back: the op is idle from here on. */
static void ep_complete(struct ferry_loop *loop, struct ferry_op *op, int res)
{
	ep_deadline_stop(loop, op);
	loop->inflight -= op->ferry__nflight;
	op->ferry__nflight = 0;
	op->ferry__flags = 0;
	op->ferry__where = EP_NONE;
	op->fn(op, res, 0);
}

/* The op finished outside a dispatch phase: complete it from reap. */
static void ep_finish(struct ferry_loop *loop, struct ferry_op *op, int res)
{
	op->ferry__res = res;
	op->ferry__where = EP_DONE;
	ep_push(&loop->ep->done, op);
}

/* A multishot op ends: its last completion, without MORE. */
static void ep_multishot_end(struct ferry_loop *loop, struct ferry_op *op,
			     int res)
{
	loop->inflight -= op->ferry__nflight;
	op->ferry__nflight = 0;
	op->ferry__flags = 0;
	op->ferry__where = EP_NONE;
	op->fn(op, res, 0);
}

/* ------------------------------------------------------------------ */
/* The fd table and registration                                         */

static struct ep_fd *ep_fd(struct ferry__epoll *ep, int fd)
{
	size_t need = ((size_t)fd + 1) * sizeof(struct ep_fd);
	size_t old = ep->fdcap;
	struct ep_fd *fds;

	if (fd < 0)
		return NULL;
	if (need <= ep->fdcap)
		return &ep->fds[fd];
	fds = ferry__grow(ep->fds, &ep->fdcap, need, 64 * sizeof(struct ep_fd));
	if (!fds)
		return NULL;
	memset((char *)fds + old, 0, ep->fdcap - old);
	ep->fds = fds;
	return &ep->fds[fd];
}

/* The events @fd's queues want; pollers alone go edge-triggered. */
static uint32_t ep_want(const struct ep_fd *e)
{
	uint32_t want = 0;

	if (e->rd.head)
		want |= EPOLLIN;
	if (e->wr.head)
		want |= EPOLLOUT;
	for (struct ferry_op *op = e->poll.head; op; op = op->ferry__next)
		want |= op->ferry__len;	/* POLL* and EPOLL* bits agree */
	if (e->poll.head && !e->rd.head && !e->wr.head)
		want |= EPOLLET;
	return want;
}

/* Make the kernel's registration of @fd match its queues. */
static int ep_update(struct ferry_loop *loop, int fd)
{
	struct ferry__epoll *ep = loop->ep;
	struct ep_fd *e = &ep->fds[fd];
	struct epoll_event ev = { .events = ep_want(e), .data.fd = fd };
	int ctl, ret;

	if (ev.events == e->mask)
		return 0;
	if (!ev.events) {
		/* EBADF/ENOENT: the owner closed it already; nothing left. */
		epoll_ctl(ep->epfd, EPOLL_CTL_DEL, fd, NULL);
		e->mask = 0;
		return 0;
	}
	ctl = e->mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	ret = epoll_ctl(ep->epfd, ctl, fd, &ev);
	/* Our record and the kernel's can differ only if the fd was closed
	 * and its number reused with ops waiting: follow the kernel. */
	if (ret < 0 && errno == ENOENT && ctl == EPOLL_CTL_MOD)
		ret = epoll_ctl(ep->epfd, EPOLL_CTL_ADD, fd, &ev);
	else if (ret < 0 && errno == EEXIST && ctl == EPOLL_CTL_ADD)
		ret = epoll_ctl(ep->epfd, EPOLL_CTL_MOD, fd, &ev);
	if (ret < 0) {
		e->mask = 0;
		return -errno;
	}
	e->mask = ev.events;
	return 0;
}

static struct ep_list *ep_queue(struct ep_fd *e, enum ep_where where)
{
	switch (where) {
	case EP_RD:
		return &e->rd;
	case EP_WR:
		return &e->wr;
	default:
		return &e->poll;
	}
}

/* Wait on @op's fd for readiness; an fd epoll refuses fails the op. */
static void ep_enqueue(struct ferry_loop *loop, struct ferry_op *op,
		       enum ep_where where)
{
	struct ep_fd *e = ep_fd(loop->ep, op->ferry__fd);
	int err;

	if (!e) {
		ep_finish(loop, op, op->ferry__fd < 0 ? -EBADF : -ENOMEM);
		return;
	}
	op->ferry__where = (uint8_t)where;
	ep_push(ep_queue(e, where), op);
	err = ep_update(loop, op->ferry__fd);
	if (err < 0) {
		/* EPERM: a regular file; EBADF: no such fd. */
		ep_remove(ep_queue(&loop->ep->fds[op->ferry__fd], where), op);
		ep_update(loop, op->ferry__fd);
		ep_finish(loop, op, err);
	}
}

/* Ops whose ferry__fd is the socket they act on (not a socket's domain,
 * a dirfd or a file on the offload pool). */
static bool ep_on_fd(unsigned code)
{
	switch (code) {
	case FERRY__OC_CONNECT:
	case FERRY__OC_SEND:
	case FERRY__OC_SENDMSG:
	case FERRY__OC_RECV:
	case FERRY__OC_CLOSE:
	case FERRY__OC_POLL_MULTI:
	case FERRY__OC_ACCEPT_MULTI:
	case FERRY__OC_RECV_MULTI:
		return true;
	default:
		return false;
	}
}

/*
 * Put @op on the submit list. Its fd counts it, so that no later send on
 * that fd runs at start ahead of it (ep_start_now). An fd the table cannot
 * hold fails the op, as waiting on it would.
 */
static void ep_sub_push(struct ferry_loop *loop, struct ferry_op *op)
{
	struct ep_fd *e;

	if (ep_on_fd(op->ferry__code) && op->ferry__fd >= 0) {
		e = ep_fd(loop->ep, op->ferry__fd);
		if (!e) {
			ep_finish(loop, op, -ENOMEM);
			return;
		}
		e->nsub++;
		op->ferry__flags |= EP_OPF_SUB;
	}
	op->ferry__where = EP_SUB;
	ep_push(&loop->ep->sub, op);
}

/* @op has left the submit list: its fd stops counting it. */
static void ep_sub_left(struct ferry_loop *loop, struct ferry_op *op)
{
	if (op->ferry__flags & EP_OPF_SUB) {
		op->ferry__flags &= (uint8_t)~EP_OPF_SUB;
		loop->ep->fds[op->ferry__fd].nsub--;
	}
}

/* Take @op off whatever list holds it (not the offload pool). */
static void ep_unlink(struct ferry_loop *loop, struct ferry_op *op)
{
	struct ferry__epoll *ep = loop->ep;

	switch (op->ferry__where) {
	case EP_SUB:
		ep_remove(&ep->sub, op);
		ep_sub_left(loop, op);
		if (op->ferry__code >= FERRY__OC_READ &&
		    op->ferry__code <= FERRY__OC_OPENAT)
			free((void *)(uintptr_t)op->ferry__p);
		break;
	case EP_RD:
	case EP_WR:
	case EP_POLL:
		ep_remove(ep_queue(&ep->fds[op->ferry__fd],
				   (enum ep_where)op->ferry__where), op);
		ep_update(loop, op->ferry__fd);
		break;
	case EP_TIMER:
		ep_remove(&ep->sleepers, op);
		break;
	case EP_DONE:
		ep_remove(&ep->done, op);
		break;
	default:
		break;
	}
	op->ferry__where = EP_NONE;
}

/* ------------------------------------------------------------------ */
/* Running ops                                                           */

static int ep_errno(ssize_t r)
{
	if (r >= 0)
		return (int)r;
	return errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
}

/* One try of a send, sendmsg or recv; -EAGAIN if it would block. */
static int ep_io(struct ferry_op *op)
{
	void *p = (void *)(uintptr_t)op->ferry__p;
	int fd = op->ferry__fd, fl = op->ferry__mflags | MSG_DONTWAIT;

	switch (op->ferry__code) {
	case FERRY__OC_SEND:
		return ep_errno(send(fd, p, op->ferry__len, fl));
	case FERRY__OC_SENDMSG:
		return ep_errno(sendmsg(fd, p, fl));
	case FERRY__OC_RECV:
		return ep_errno(recv(fd, p, op->ferry__len, fl));
	default:
		return -EINVAL;
	}
}

/* connect(2) needs O_NONBLOCK on the socket itself: no per-call flag. */
static int ep_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static void ep_connect(struct ferry_loop *loop, struct ferry_op *op)
{
	int err = ep_nonblock(op->ferry__fd);

	if (err == 0 && connect(op->ferry__fd, op->ferry__p, op->ferry__len) < 0)
		err = -errno;
	if (err == -EINPROGRESS || err == -EAGAIN)
		ep_enqueue(loop, op, EP_WR);
	else
		ep_finish(loop, op, err);
}

/* The socket's connect result, once it is writable. */
static int ep_connect_result(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

static void ep_job_work(struct ferry_offload *job)
{
	struct ep_job *j = ferry__container_of(job, struct ep_job, job);
	ssize_t r;

	switch (j->code) {
	case FERRY__OC_READ:
		r = j->off == (uint64_t)-1 ? read(j->fd, j->buf, j->len)
					   : pread(j->fd, j->buf, j->len,
						   (off_t)j->off);
		break;
	case FERRY__OC_WRITE:
		r = j->off == (uint64_t)-1 ? write(j->fd, j->buf, j->len)
					   : pwrite(j->fd, j->buf, j->len,
						    (off_t)j->off);
		break;
	default:
		r = openat(j->fd, j->buf, j->flags, (mode_t)j->len);
		break;
	}
	j->res = r < 0 ? -errno : (int)r;
}

/*
 * A file op is back from the pool (status 0), or was never run
 * (FERRY_ECANCELED). Like a regular file op on io_uring, which the kernel
 * cannot interrupt, a deadline or cancel that came meanwhile shows only
 * if the op did not succeed.
 */
static void ep_job_done(struct ferry_offload *job, int status)
{
	struct ep_job *j = ferry__container_of(job, struct ep_job, job);
	struct ferry_op *op = j->op;
	struct ferry_loop *loop = j->loop;
	int res = status < 0 ? -ECANCELED : j->res;

	free(j);
	if (res < 0 && (op->ferry__flags & FERRY__OPF_TIMEDOUT))
		res = -ETIME;
	else if (res < 0 && (op->ferry__flags & FERRY__OPF_CANCELED))
		res = -ECANCELED;
	ep_complete(loop, op, res);
}

static void ep_offload(struct ferry_loop *loop, struct ferry_op *op)
{
	struct ep_job *j = (struct ep_job *)(uintptr_t)op->ferry__p;
	int err;

	op->ferry__where = EP_OFFLOAD;
	err = ferry_offload_submit(loop, &j->job);
	if (err < 0) {
		free(j);
		ep_finish(loop, op, err);
	}
}

static int ep_timer_start(struct ferry_loop *loop, struct ferry_op *op,
			  uint64_t ns);

/* Try a prepared op for the first time. */
static void ep_try(struct ferry_loop *loop, struct ferry_op *op)
{
	enum ep_where where;
	struct ep_fd *e;
	int r;

	/* A linked deadline runs from submission, as on io_uring, not from
	 * ferry_op_set_timeout: a slow turn must not eat into it. */
	if (op->ferry__nflight > 1) {
		loop->ep->deadlines = true;
		r = ep_timer_start(loop, op, op->ferry__dl.ferry__timer.ferry__deadline);
		if (r < 0) {
			op->ferry__nflight--;
			loop->inflight--;
			ep_finish(loop, op, r);
			return;
		}
	}
	switch (op->ferry__code) {
	case FERRY__OC_SOCKET:
		r = socket(op->ferry__fd, (int)op->ferry__len | SOCK_NONBLOCK,
			   op->ferry__mflags);
		ep_finish(loop, op, r < 0 ? -errno : r);
		return;
	case FERRY__OC_CLOSE:
		/* The kernel drops a closed file from the epoll set. */
		e = ep_fd(loop->ep, op->ferry__fd);
		if (e && !e->rd.head && !e->wr.head && !e->poll.head)
			e->mask = 0;
		r = close(op->ferry__fd);
		ep_finish(loop, op, r < 0 ? -errno : 0);
		return;
	case FERRY__OC_CONNECT:
		ep_connect(loop, op);
		return;
	case FERRY__OC_READ:
	case FERRY__OC_WRITE:
	case FERRY__OC_OPENAT:
		ep_offload(loop, op);
		return;
	case FERRY__OC_FUTEX_WAKE:	/* no FERRY_FEAT_FUTEX here */
		ep_finish(loop, op, -EOPNOTSUPP);
		return;
	case FERRY__OC_POLL_MULTI:
		ep_enqueue(loop, op, EP_POLL);
		return;
	case FERRY__OC_ACCEPT_MULTI:
		/* accept(2) has no per-call flag: one more accept than there
		 * are connections must not block the loop. */
		r = ep_nonblock(op->ferry__fd);
		if (r < 0) {
			ep_finish(loop, op, r);
			return;
		}
		/* fall through */
	case FERRY__OC_RECV_MULTI:
		/* Level-triggered: data already there shows at once. */
		ep_enqueue(loop, op, EP_RD);
		return;
	default:
		break;
	}
	/* send, sendmsg, recv: at once, unless others wait before it. */
	where = op->ferry__code == FERRY__OC_RECV ? EP_RD : EP_WR;
	e = ep_fd(loop->ep, op->ferry__fd);
	r = e && ep_queue(e, where)->head ? -EAGAIN : ep_io(op);
	if (r == -EAGAIN)
		ep_enqueue(loop, op, where);
	else
		ep_finish(loop, op, r);
}

/*
 * A send or sendmsg with nothing ahead of it on its fd (no op waiting to
 * write, none on the submit list) runs now: see the top. Its completion
 * still waits for the turn's reap, through the done list. False: @op
 * takes the submit list like any other.
 */
static bool ep_start_now(struct ferry_loop *loop, struct ferry_op *op)
{
	struct ep_fd *e;
	int r;

	if (op->ferry__code != FERRY__OC_SEND &&
	    op->ferry__code != FERRY__OC_SENDMSG)
		return false;
	e = ep_fd(loop->ep, op->ferry__fd);
	if (!e || e->wr.head || e->nsub)
		return false;
	r = ep_io(op);
	if (r == -EAGAIN)
		ep_enqueue(loop, op, EP_WR);
	else
		ep_finish(loop, op, r);
	return true;
}

/* ------------------------------------------------------------------ */
/* Readiness                                                             */

enum { EP_STOP, EP_GO_ON };

/*
 * The most free buffers one receive fills (FERRY_FEAT_RECV_BUNDLE): with
 * 16 KiB buffers a 1 MiB recvmsg, ten times what curl asks for.
 */
#define EP_BUNDLE_MAX 64

/* Hand buffers @bids[from..n) back, last taken first: the stack of free
 * ids is as it was before they were taken. */
static void ep_bufs_return(struct ferry_bufring *br, const uint16_t *bids,
			   unsigned from, unsigned n)
{
	while (n > from)
		br->free_bids[br->nfree++] = bids[--n];
}

/*
 * One receive into free buffers, EP_STOP once the socket is drained. With
 * bundles, one recvmsg fills up to EP_BUNDLE_MAX of them (a bundle, as on
 * io_uring) and each full one reaches the owner as a completion of its
 * own, in order; the ones left empty go back to the stack.
 */
static int ep_recv_multi(struct ferry_loop *loop, struct ferry_op *op)
{
	struct ferry_bufring *br = op->ferry__br;
	struct iovec iov[EP_BUNDLE_MAX];
	uint16_t bids[EP_BUNDLE_MAX];
	struct msghdr msg = { .msg_iov = iov };
	unsigned n = 1, used;
	ssize_t r;

	if (!br->nfree) {
		/* Backpressure: parked until a buffer is recycled, and off
		 * the fd's queue so that epoll stops reporting it. */
		ep_remove(&loop->ep->fds[op->ferry__fd].rd, op);
		op->ferry__where = EP_NONE;
		loop->inflight -= op->ferry__nflight;
		op->ferry__nflight = 0;
		ferry__bufring_park(br, op);
		return EP_GO_ON;
	}
	if (loop->features & FERRY_FEAT_RECV_BUNDLE)
		n = br->nfree < EP_BUNDLE_MAX ? br->nfree : EP_BUNDLE_MAX;
	for (unsigned i = 0; i < n; i++) {
		bids[i] = br->free_bids[--br->nfree];
		iov[i].iov_base = ferry_bufring_buf(br, bids[i]);
		iov[i].iov_len = br->size;
	}
	msg.msg_iovlen = n;
	r = ep_errno(recvmsg(op->ferry__fd, &msg, MSG_DONTWAIT));
	used = r > 0 ? (unsigned)(((size_t)r + br->size - 1) / br->size) : 0;
	ep_bufs_return(br, bids, used, n);
	if (r == -EAGAIN)
		return EP_STOP;
	if (r > 0) {
		size_t left = (size_t)r;

		br->bundles += used > 1;
		for (unsigned i = 0; i < used; i++) {
			size_t len = left < br->size ? left : br->size;

			left -= len;
			ferry__bufring_taken(br);
			op->fn(op, (int)len, FERRY_CQE_MORE | FERRY_CQE_BUFFER |
						     (unsigned)bids[i] << 16);
		}
		/* A short read emptied the socket (level-triggered epoll
		 * reports anything that comes after). */
		return (size_t)r == (size_t)n * br->size ? EP_GO_ON : EP_STOP;
	}
	ep_remove(&loop->ep->fds[op->ferry__fd].rd, op);
	ep_multishot_end(loop, op, (int)r);
	return EP_GO_ON;
}

static int ep_accept_multi(struct ferry_loop *loop, struct ferry_op *op)
{
	int r = ep_errno(accept4(op->ferry__fd, NULL, NULL, SOCK_CLOEXEC));

	if (r == -EAGAIN)
		return EP_STOP;
	if (r >= 0) {
		op->fn(op, r, FERRY_CQE_MORE);
		return EP_GO_ON;
	}
	if (r == -ECONNABORTED)
		return EP_GO_ON;
	ep_remove(&loop->ep->fds[op->ferry__fd].rd, op);
	ep_multishot_end(loop, op, r);
	return EP_GO_ON;
}

/* Run @fd's readers or writers until one would block. */
static unsigned ep_run_queue(struct ferry_loop *loop, int fd, bool rd)
{
	struct ferry_op *mark = loop->ep->done.tail;
	unsigned n = 0;

	for (int budget = EP_BUDGET; budget > 0; budget--) {
		struct ep_fd *e = &loop->ep->fds[fd];	/* may move */
		struct ferry_op *op = rd ? e->rd.head : e->wr.head;
		int r;

		/* A callback here finished an op (a send it ran at start):
		 * read no more this turn. What the peer answers to that send
		 * must reach the owner after its completion (as on io_uring),
		 * which comes at the end of the reap; level-triggered, the
		 * fd is reported again. Completing it here instead would let
		 * its owner close the fd under the dispatch still using it. */
		if (rd && loop->ep->done.tail != mark)
			break;
		if (!op)
			break;
		n++;
		if (op->ferry__code == FERRY__OC_RECV_MULTI) {
			if (ep_recv_multi(loop, op) == EP_STOP)
				break;
			continue;
		}
		if (op->ferry__code == FERRY__OC_ACCEPT_MULTI) {
			if (ep_accept_multi(loop, op) == EP_STOP)
				break;
			continue;
		}
		r = op->ferry__code == FERRY__OC_CONNECT
			    ? ep_connect_result(fd) : ep_io(op);
		if (r == -EAGAIN) {
			n--;
			break;
		}
		ep_pop(rd ? &e->rd : &e->wr);
		ep_complete(loop, op, r);
	}
	return n;
}

/* Multishot polls: one completion per edge, with the events seen. */
static unsigned ep_run_polls(struct ferry_loop *loop, int fd, uint32_t events)
{
	struct ferry_op *op = loop->ep->fds[fd].poll.head;
	unsigned n = 0;

	while (op) {
		struct ferry_op *next = op->ferry__next;
		uint32_t rev = events & (op->ferry__len | EPOLLERR | EPOLLHUP);

		if (rev) {
			n++;
			op->fn(op, (int)rev, FERRY_CQE_MORE);
		}
		/* The callback may have ended the list under us. */
		op = op->ferry__where == EP_POLL ? next : NULL;
	}
	return n;
}

/*
 * The kernel no longer takes @fd (its owner closed it while ops were
 * waiting on it, which io_uring survives by holding the file): those ops
 * end with -EBADF rather than wait for ever.
 */
static void ep_fail_fd(struct ferry_loop *loop, int fd)
{
	struct ep_fd *e = &loop->ep->fds[fd];
	struct ferry_op *op;

	while ((op = e->rd.head ? e->rd.head
		     : e->wr.head ? e->wr.head : e->poll.head) != NULL) {
		ep_remove(ep_queue(e, (enum ep_where)op->ferry__where), op);
		ep_finish(loop, op, -EBADF);
	}
	e->mask = 0;
}

static unsigned ep_dispatch(struct ferry_loop *loop, int fd, uint32_t events)
{
	struct ferry__epoll *ep = loop->ep;
	unsigned n = 0;

	if ((size_t)fd >= ep->fdcap / sizeof(struct ep_fd))
		return 0;
	/* Writers first: what a peer answers comes after what we sent, and
	 * owners (an HTTP request's states) see it in that order. */
	if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		n += ep_run_queue(loop, fd, false);
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		n += ep_run_queue(loop, fd, true);
	if (ep->fds[fd].poll.head)
		n += ep_run_polls(loop, fd, events);
	if (ep_update(loop, fd) < 0)
		ep_fail_fd(loop, fd);
	return n;
}

/* ------------------------------------------------------------------ */
/* Deadlines                                                             */

/* A timeout op's time has come, or the deadline of another op has. */
static void ep_timer_fired(struct ferry_timer *t)
{
	struct ferry_op *op = ferry__container_of(t, struct ferry_op,
						 ferry__dl.ferry__timer);
	struct ferry_loop *loop = op->ferry__dl.ferry__loop;

	if (op->ferry__code != FERRY__OC_TIMEOUT) {
		/* The linked deadline's share of the op's flight is over. */
		op->ferry__nflight--;
		loop->inflight--;
		op->ferry__flags |= FERRY__OPF_TIMEDOUT;
		/* Finished already (its own result stands), or cannot be
		 * stopped (see ep_job_done). */
		if (op->ferry__where == EP_OFFLOAD || op->ferry__where == EP_DONE)
			return;
	}
	ep_unlink(loop, op);
	ep_complete(loop, op, -ETIME);
}

static int ep_timer_start(struct ferry_loop *loop, struct ferry_op *op,
			  uint64_t ns)
{
	/* The clock now, not the turn's: a deadline must never come early
	 * (the turn's time lags by the work done since it was read). */
	uint64_t now = ferry_time_now();
	uint64_t at = ns > UINT64_MAX - now ? UINT64_MAX : now + ns;

	if (ferry_timer_active(&op->ferry__dl.ferry__timer) &&
	    ferry_timer_deadline(&op->ferry__dl.ferry__timer) <= at)
		return 0;
	op->ferry__dl.ferry__timer.fn = ep_timer_fired;
	op->ferry__dl.ferry__loop = loop;
	return ferry_timer_start(loop, &op->ferry__dl.ferry__timer, at);
}

/* ------------------------------------------------------------------ */
/* The backend table                                                     */

/* The arguments go into the record; file ops get their pool job now. */
static int ep_store(struct ferry_loop *loop, struct ferry_op *op,
		    const struct ferry__args *a)
{
	struct ep_job *j;

	op->ferry__code = (uint8_t)a->code;
	op->ferry__fd = a->fd;
	op->ferry__p = a->p;
	op->ferry__len = a->len;
	op->ferry__mflags = a->flags;
	if (a->code < FERRY__OC_READ || a->code > FERRY__OC_OPENAT)
		return 0;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->job.work = ep_job_work;
	j->job.done = ep_job_done;
	j->op = op;
	j->loop = loop;
	j->code = a->code;
	j->fd = a->fd;
	j->buf = (void *)(uintptr_t)a->p;
	j->len = a->len;
	j->flags = a->flags;
	j->off = a->u64;
	op->ferry__p = j;
	return 0;
}

static int ep_start(struct ferry_loop *loop, struct ferry_op *op,
		    const struct ferry__args *a)
{
	enum ferry__op_kind kind = ferry__op_kind_of(a->code);
	int err = ep_store(loop, op, a);

	if (err < 0)
		return err;
	op->ferry__kind = (uint8_t)kind;
	op->ferry__flags = 0;
	op->ferry__res = 0;
	op->ferry__cflags = 0;
	op->ferry__nflight = 1;
	memset(&op->ferry__dl.ferry__timer, 0, sizeof(op->ferry__dl.ferry__timer));
	if (a->code == FERRY__OC_TIMEOUT) {
		err = ep_timer_start(loop, op, a->u64);
		if (err < 0)
			return err;
		op->ferry__where = EP_TIMER;
		ep_push(&loop->ep->sleepers, op);
	} else if (!ep_start_now(loop, op)) {
		ep_sub_push(loop, op);
	}
	loop->inflight++;
	loop->last_op = kind == FERRY__OP_ONESHOT ? op : NULL;
	return 0;
}

static int ep_set_timeout(struct ferry_loop *loop, struct ferry_op *op,
			  uint64_t ns)
{
	int err;

	if (loop->last_op != op || op->ferry__nflight != 1 ||
	    op->ferry__kind != FERRY__OP_ONESHOT)
		return -EINVAL;
	switch (op->ferry__where) {
	case EP_TIMER:
		/* A timeout op: whichever of the two comes first. */
		err = ep_timer_start(loop, op, ns);
		if (err < 0)
			return err;
		break;
	case EP_SUB:
		/* Kept until ep_try starts it: the timer is idle till then. */
		op->ferry__dl.ferry__timer.ferry__deadline = ns;
		break;
	case EP_DONE:
		/* Ran at start and finished (ep_start_now): its result
		 * stands, as when an op beats its linked timeout. */
		break;
	case EP_WR:
		/* Ran at start and waits for room: the deadline runs from
		 * now. Without one the op does not run on (-EBUSY's rule on
		 * io_uring): it leaves its queue, idle, with nothing sent. */
		err = ep_timer_start(loop, op, ns);
		if (err < 0) {
			ep_unlink(loop, op);
			op->ferry__nflight = 0;
			loop->inflight--;
			loop->last_op = NULL;
			return err;
		}
		loop->ep->deadlines = true;
		break;
	default:
		return -EINVAL;
	}
	op->ferry__nflight++;
	loop->inflight++;
	loop->last_op = NULL;
	return 0;
}

static int ep_cancel(struct ferry_loop *loop, struct ferry_op *op)
{
	if (op == loop->last_op)
		loop->last_op = NULL;
	switch (op->ferry__where) {
	case EP_DONE:
		return 0;	/* finished first: its own result stands */
	case EP_OFFLOAD:
		op->ferry__flags |= FERRY__OPF_CANCELED;
		return 0;
	default:
		break;
	}
	ep_unlink(loop, op);
	ep_deadline_stop(loop, op);
	/* The deadline's share ends with the op. */
	loop->inflight -= op->ferry__nflight - 1u;
	op->ferry__nflight = 1;
	ep_finish(loop, op, -ECANCELED);
	return 0;
}

static void ep_futex_wake(struct ferry_loop *loop, uint32_t *uaddr,
			  unsigned nr)
{
	syscall(SYS_futex, uaddr, FUTEX_WAKE_PRIVATE, nr, NULL, NULL, 0);
}

/* Try every op prepared since the last flush. */
static void ep_flush(struct ferry_loop *loop)
{
	struct ferry_op *op;

	loop->last_op = NULL;
	while ((op = ep_pop(&loop->ep->sub)) != NULL) {
		ep_sub_left(loop, op);
		ep_try(loop, op);
	}
}

static bool ep_ready(struct ferry_loop *loop)
{
	return loop->ep->done.head != NULL;
}

static int ep_wait(struct ferry_loop *loop, int64_t wait_ns, bool posted)
{
	struct ferry__epoll *ep = loop->ep;
	struct timespec ts;
	int n = -1;

	ep_flush(loop);
	if (ep->done.head && !ep->skipped) {
		/* Completions are ready already (sends, mostly): hand them
		 * over now and look for readiness on the next turn, which
		 * comes at once. Never twice in a row, so that a stream of
		 * instant completions cannot keep the fds waiting. */
		ep->skipped = true;
		ep->deadlines = false;
		ep->nev = 0;
		return 0;
	}
	ep->skipped = false;
	if (ep->done.head)
		wait_ns = 0;
	else if (ep->deadlines) {
		/* Deadlines that the flush just started bound this wait (on
		 * io_uring the kernel runs them). */
		int64_t t = ferry__timers_next(loop, loop->now);

		if (t >= 0 && (wait_ns < 0 || t < wait_ns))
			wait_ns = t;
	}
	ep->deadlines = false;
	if (!ep->no_pwait2) {
		ts.tv_sec = wait_ns / 1000000000;
		ts.tv_nsec = wait_ns % 1000000000;
		n = epoll_pwait2(ep->epfd, ep->ev, EP_EVENTS,
				 wait_ns < 0 ? NULL : &ts, NULL);
		if (n < 0 && (errno == ENOSYS || errno == EPERM))
			ep->no_pwait2 = true;
	}
	if (ep->no_pwait2) {
		/* Whole milliseconds, rounded up: never early for a timer. */
		int ms = wait_ns < 0 ? -1
			 : wait_ns > INT32_MAX * 1000000ll
				   ? INT32_MAX
				   : (int)((wait_ns + 999999) / 1000000);

		n = epoll_wait(ep->epfd, ep->ev, EP_EVENTS, ms);
	}
	if (n < 0) {
		ep->nev = 0;
		return errno == EINTR ? 0 : -errno;
	}
	ep->nev = n;
	return 0;
}

/*
 * Complete what is on the done list now. What these completions finish
 * in turn (a send that ran at start, a cancel) waits for the next run:
 * a stream of sends that never block must not keep the loop from its
 * fds and timers (ep_wait looks at them at least every other turn).
 */
static unsigned ep_run_done(struct ferry_loop *loop)
{
	struct ferry__epoll *ep = loop->ep;
	struct ferry_op *last = ep->done.tail, *op;
	unsigned n = 0;

	/* Nothing takes an op off the done list but this loop (a cancel or
	 * deadline leaves a finished op alone): the last one is reached. */
	while (last && (op = ep_pop(&ep->done)) != NULL) {
		ep_complete(loop, op, op->ferry__res);
		n++;
		if (op == last)
			break;
	}
	return n;
}

static unsigned ep_reap(struct ferry_loop *loop)
{
	struct ferry__epoll *ep = loop->ep;
	unsigned n = 0;
	int nev = ep->nev;

	ep->nev = 0;
	/* Ops that finished at flush come first: a request's send, then the
	 * answer that may already have arrived (the order of their CQEs on
	 * io_uring). */
	n += ep_run_done(loop);
	for (int i = 0; i < nev; i++)
		n += ep_dispatch(loop, ep->ev[i].data.fd, ep->ev[i].events);
	/* Finished by the callbacks above: the sends they started (most
	 * often the next request, ep_start_now), and cancels. */
	return n + ep_run_done(loop);
}

/* Destroy: everything that waits ends as cancelled. */
static void ep_cancel_all(struct ferry_loop *loop)
{
	struct ferry__epoll *ep = loop->ep;
	size_t nfds = ep->fdcap / sizeof(struct ep_fd);
	struct ferry_op *op;

	while ((op = ep->sub.head) != NULL)
		ep_cancel(loop, op);
	while ((op = ep->sleepers.head) != NULL)
		ep_cancel(loop, op);
	for (size_t fd = 0; fd < nfds; fd++) {
		struct ep_fd *e = &ep->fds[fd];

		while ((op = e->rd.head ? e->rd.head
			     : e->wr.head ? e->wr.head : e->poll.head) != NULL)
			ep_cancel(loop, op);
	}
}

static int ep_init(struct ferry_loop *loop, const struct ferry_loop_opts *o,
		   unsigned disabled, char *why, size_t whylen)
{
	struct ferry__epoll *ep = calloc(1, sizeof(*ep));

	if (!ep)
		return -ENOMEM;
	ep->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ep->epfd < 0) {
		int err = errno;

		ferry__whyf(why, whylen, "epoll_create1: %s (%d)",
			    strerrorname_np(err) ?: "?", err);
		free(ep);
		return -err;
	}
	loop->ep = ep;
	/* What the ops here provide, so that callers that ask find it. */
	loop->features = FERRY_FEAT_BUF_RING | FERRY_FEAT_RECV_MULTISHOT |
			 FERRY_FEAT_RECV_BUNDLE | FERRY_FEAT_ACCEPT_MULTISHOT |
			 FERRY_FEAT_SOCKET_OP;
	loop->features &= ~(disabled & (FERRY_FEAT_RECV_MULTISHOT |
					FERRY_FEAT_RECV_BUNDLE));
	if (!(loop->features & FERRY_FEAT_RECV_MULTISHOT))
		loop->features &= ~FERRY_FEAT_RECV_BUNDLE;
	return 0;
}

static void ep_fini(struct ferry_loop *loop)
{
	struct ferry__epoll *ep = loop->ep;

	if (!ep)
		return;
	close(ep->epfd);
	free(ep->fds);
	free(ep);
	loop->ep = NULL;
}

static int ep_buf_register(struct ferry_bufring *br)
{
	br->free_bids = malloc(br->count * sizeof(*br->free_bids));
	br->nfree = 0;
	return br->free_bids ? 0 : -ENOMEM;
}

static void ep_buf_unregister(struct ferry_bufring *br)
{
	free(br->free_bids);
	br->free_bids = NULL;
}

static void ep_buf_put(struct ferry_bufring *br, unsigned bid)
{
	br->free_bids[br->nfree++] = (uint16_t)(bid & br->mask);
}

const struct ferry__backend ferry__epoll_backend = {
	.name = "epoll",
	.init = ep_init,
	.fini = ep_fini,
	.start = ep_start,
	.set_timeout = ep_set_timeout,
	.cancel = ep_cancel,
	.futex_wake = ep_futex_wake,
	.flush = ep_flush,
	.ready = ep_ready,
	.wait = ep_wait,
	.reap = ep_reap,
	.cancel_all = ep_cancel_all,
	.buf_register = ep_buf_register,
	.buf_unregister = ep_buf_unregister,
	.buf_put = ep_buf_put,
};
