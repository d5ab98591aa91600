/*
 * ferry/loop.h - the completion-driven io_uring loop.
 *
 * A loop owns one io_uring ring and runs on exactly one thread, the thread
 * that created it (the "loop thread"). Every function in this header must be
 * called on the loop thread, except the few marked "Thread: any".
 *
 * Backends. Where io_uring cannot be used (a seccomp profile that blocks
 * it, as Docker's and containerd's defaults do; kernel.io_uring_disabled;
 * an old kernel), the loop runs the same ops on epoll and non-blocking
 * sockets instead, with the same completion contract: each op completes
 * once, from a loop turn, with the same result codes; deadlines give
 * -ETIME, cancellation -ECANCELED; multishot receive takes buffers from
 * the same buffer rings and parks when they run dry. Ops with no readiness
 * equivalent (read, write, openat) run on the offload pool there. The
 * choice is made once, by ferry_loop_create (see struct ferry_loop_opts
 * and FERRY_IO_URING), and reported by ferry_loop_backend(). Differences
 * a caller can see on epoll: sockets made by ferry_op_socket are
 * O_NONBLOCK, ferry_op_connect and ferry_op_accept_multishot set
 * O_NONBLOCK on the socket they are given, and FERRY_FEAT_FUTEX is absent
 * (futex wakes are futex(2) calls).
 *
 * Ops. Every request to the kernel is described by a struct ferry_op that
 * the caller embeds in its own object (a connection, a timer, a future) and
 * recovers with container_of() in the completion function. The op's memory
 * belongs to the caller, who must keep it alive while ferry_op_busy() is
 * true: an object with ops in flight is freed only after its last
 * completion. Cancellation is explicit (ferry_op_cancel) and its effect is
 * a completion like any other.
 *
 * Completion contract. ferry_op_fn(op, res, flags) runs on the loop thread,
 * from ferry_loop_run_once(), never from inside the call that started the op:
 *   res    the kernel's result: >= 0 on success, a negated errno on failure.
 *          An op started with a deadline (ferry_op_set_timeout) that ran out
 *          completes with -ETIME.
 *   flags  the CQE flags. FERRY_CQE_MORE means more completions follow for
 *          the same op (multishot ops); without it the op is idle again and
 *          its owner may free or reuse it from inside the callback.
 *
 * Errors: negative codes from ferry/error.h (negated errno or FERRY_E*).
 */
#ifndef FERRY_LOOP_H
#define FERRY_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <linux/time_types.h>

#include "ferry/error.h"
#include "ferry/timer.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ferry_loop;
struct ferry_op;
struct ferry_bufring;

/* More completions follow for this op (IORING_CQE_F_MORE). */
#define FERRY_CQE_MORE (1U << 1)
/* The completion carries a provided-buffer id (IORING_CQE_F_BUFFER). */
#define FERRY_CQE_BUFFER (1U << 0)

/* The buffer id carried by a completion that has FERRY_CQE_BUFFER. */
static inline unsigned ferry_cqe_bid(unsigned flags)
{
	return flags >> 16;
}

typedef void (*ferry_op_fn)(struct ferry_op *op, int res, unsigned flags);

/* Private to the runtime: an op's deadline on the epoll backend (a named
 * type, as C++ allows no anonymous struct in a union). */
struct ferry__op_deadline {
	struct ferry_timer ferry__timer;
	struct ferry_loop *ferry__loop;
};

/*
 * struct ferry_op - one operation record, embedded in its owner.
 *
 * The owner sets ->fn before starting the op and must not touch the other
 * fields; they belong to the loop while the op is busy.
 */
struct ferry_op {
	ferry_op_fn fn;
	/* private: */
	uint16_t ferry__nflight;	/* CQEs still expected, incl. timeout */
	uint8_t ferry__kind;		/* enum ferry__op_kind */
	uint8_t ferry__flags;		/* FERRY__OPF_* */
	int ferry__res;			/* result held until the last CQE */
	unsigned ferry__cflags;		/* CQE flags held likewise */
	int ferry__fd;			/* multishot re-arm; epoll: every op */
	union {
		struct ferry_bufring *ferry__br; /* multishot recv re-arm */
		const void *ferry__p;	/* epoll: buffer, msghdr, address */
	};
	struct ferry_op *ferry__next;	/* parked, deferred or queued list */
	unsigned ferry__len;		/* epoll: length, addrlen, events */
	int ferry__mflags;		/* epoll: MSG_* flags */
	uint8_t ferry__code;		/* epoll: enum ferry__opcode */
	uint8_t ferry__where;		/* epoll: which list holds the op */
	union {
		struct __kernel_timespec ferry__ts; /* io_uring: timeout
						       storage until submit */
		struct ferry__op_deadline ferry__dl; /* epoll: the deadline */
	};
};

/*
 * Features the probe found, reported by ferry_loop_features(). A feature is
 * used only when present and not switched off through the FERRY_DISABLE
 * environment variable (comma-separated names: "single_issuer",
 * "defer_taskrun", "coop_taskrun", "submit_all", "futex", "recv_multishot",
 * "cqe_skip", "reg_ring", "min_wait", "recv_bundle"; switching off
 * "recv_multishot" switches off "recv_bundle" too).
 */
enum ferry_feature {
	FERRY_FEAT_SINGLE_ISSUER = 1u << 0,
	FERRY_FEAT_DEFER_TASKRUN = 1u << 1,
	FERRY_FEAT_COOP_TASKRUN = 1u << 2,
	FERRY_FEAT_SUBMIT_ALL = 1u << 3,
	FERRY_FEAT_EXT_ARG = 1u << 4,
	FERRY_FEAT_BUF_RING = 1u << 5,
	FERRY_FEAT_RECV_MULTISHOT = 1u << 6,
	FERRY_FEAT_ACCEPT_MULTISHOT = 1u << 7,
	FERRY_FEAT_SOCKET_OP = 1u << 8,
	FERRY_FEAT_FUTEX = 1u << 9,	/* IORING_OP_FUTEX_WAIT/WAKE */
	FERRY_FEAT_CQE_SKIP = 1u << 10,
	FERRY_FEAT_REG_RING = 1u << 11,	/* registered ring fd (5.18) */
	FERRY_FEAT_MIN_WAIT = 1u << 12,	/* io_uring_enter min_wait (6.12) */
	FERRY_FEAT_RECV_BUNDLE = 1u << 13, /* one multishot recv fills several
					      ring buffers (io_uring: 6.10;
					      epoll: one recvmsg) */
};

/* Which backend a loop runs on (struct ferry_loop_opts, ferry_loop_backend). */
enum ferry_backend {
	FERRY_BACKEND_AUTO = 0,	/* io_uring if the kernel lets us, else epoll */
	FERRY_BACKEND_IO_URING,	/* io_uring or fail with FERRY_EUNAVAIL */
	FERRY_BACKEND_EPOLL,	/* epoll and non-blocking sockets */
};

/* Loop options. Zero-initialise and set what you need; 0 means default. */
struct ferry_loop_opts {
	unsigned sq_entries;	/* SQ size (default 256, power of two) */
	unsigned cq_entries;	/* CQ size (default 4 * sq_entries) */
	unsigned idle_spin_ns;	/* poll the inbox up to this long before
				   sleeping, adapting to how often that
				   pays (default 0: sleep at once) */
	unsigned offload_threads; /* offload pool size (default 2) */
	unsigned batch_wait_ns;	/* opt-in: with FERRY_FEAT_MIN_WAIT and at
				   least two completions expected
				   (ferry_loop_expect), a wait may hold the
				   first completion up to this long to
				   gather more in one wake-up. Never with
				   one expected. Default 0: never (on a
				   2-vCPU VM the timer cost more CPU than
				   the wake-ups it saved; see issue 11). */
	enum ferry_backend backend; /* default FERRY_BACKEND_AUTO; the
				   environment's FERRY_IO_URING=off turns
				   AUTO into EPOLL */
};

/*
 * ferry_loop_create - create a loop on the calling thread.
 *
 * The calling thread becomes the loop thread. With FERRY_BACKEND_AUTO (the
 * default) the loop tries io_uring first: the ring is set up with the best
 * flags the kernel accepts (SINGLE_ISSUER, DEFER_TASKRUN, COOP_TASKRUN,
 * SUBMIT_ALL), falling back one by one when refused. If io_uring cannot
 * be used at all (ENOSYS, EPERM from seccomp or the sysctl), or the
 * environment says FERRY_IO_URING=off, the loop runs on epoll instead
 * (see "Backends" at the top); ferry_loop_describe() then names the cause.
 *
 * @loopp: receives the new loop; owned by the caller, freed by
 *         ferry_loop_destroy().
 * @opts:  may be NULL for defaults.
 * @why, @whylen: optional buffer that receives a sentence naming the cause
 *         of a failure (e.g. "io_uring_setup: EPERM (kernel.io_uring_disabled
 *         = 2)"). May be NULL.
 *
 * Returns 0; FERRY_EUNAVAIL when FERRY_BACKEND_IO_URING was asked for and
 * io_uring cannot be used (or FERRY_IO_URING=off is set); or a negated
 * errno (-ENOMEM, -EMFILE...).
 */
int ferry_loop_create(struct ferry_loop **loopp,
		      const struct ferry_loop_opts *opts, char *why,
		      size_t whylen);

/*
 * ferry_loop_destroy - cancel everything and free the loop.
 *
 * Stops the offload pool (waiting for running jobs), cancels every op in
 * flight and keeps running completions (each owner sees its op complete,
 * usually with -ECANCELED) until the kernel has returned every CQE; then
 * runs every item posted until none is left and no poster is still inside
 * ferry_loop_post (items may post again), frees the buffer rings still
 * registered and closes the ring. Owners must not start new ops from those
 * final callbacks (starting one returns -ESHUTDOWN); futex wakes issued
 * there are delivered (as futex(2) calls). Loop thread only. NULL is a
 * no-op.
 */
void ferry_loop_destroy(struct ferry_loop *loop);

/*
 * ferry_loop_run_once - one loop turn.
 *
 * Submits every prepared SQE and waits for at least one event with a single
 * io_uring_enter, bounded by @timeout_ns (< 0: no bound; 0: do not wait) and
 * by the earliest timer; then runs every completion, expired timer, deferred
 * completion and posted item. Returns the number of events handled (>= 0)
 * or a negated errno from io_uring_enter.
 */
int ferry_loop_run_once(struct ferry_loop *loop, int64_t timeout_ns);

/*
 * ferry_loop_run - run turns until ferry_loop_stop() is called.
 * Returns 0, or a negated errno if a turn failed.
 */
int ferry_loop_run(struct ferry_loop *loop);

/* ferry_loop_stop - make ferry_loop_run() return after the current turn. */
void ferry_loop_stop(struct ferry_loop *loop);

/* ferry_loop_features - the FERRY_FEAT_* bits in use on this loop. */
unsigned ferry_loop_features(const struct ferry_loop *loop);

/*
 * ferry_loop_describe - the features in use, as a line of text such as
 * "single_issuer defer_taskrun ... futex". Constant for the loop's life.
 * Thread: any.
 */
const char *ferry_loop_describe(const struct ferry_loop *loop);

/*
 * ferry_loop_backend - "io_uring" or "epoll": the backend @loop runs on.
 * A constant string, fixed for the loop's life. Thread: any.
 */
const char *ferry_loop_backend(const struct ferry_loop *loop);

/* ferry_loop_inflight - ops (CQEs) the loop is still waiting for. */
unsigned ferry_loop_inflight(const struct ferry_loop *loop);

/* ferry_loop_on_thread - true on the loop's own thread. Thread: any. */
bool ferry_loop_on_thread(const struct ferry_loop *loop);

/* ferry_time_now - CLOCK_MONOTONIC in nanoseconds (vDSO, no syscall). */
uint64_t ferry_time_now(void);

/*
 * ferry_loop_now - ferry_time_now() as read once per loop turn: inside a
 * turn (a completion, timer or posted item), the time the turn started or
 * last woke up, which may lag the clock by the work done since; outside
 * one, the clock itself. Good for deadlines and idle stamps, which then
 * come out early by that lag at most. Loop thread only.
 */
uint64_t ferry_loop_now(const struct ferry_loop *loop);

/*
 * ferry_loop_expect - owners tell the loop how many completions they are
 * waiting for from peers (an HTTP client: its responses in flight), so
 * that a wait can gather several into one wake-up (see batch_wait_ns):
 * add @delta (+1 when one starts, -1 when it ends). Waits never hold a
 * completion back while fewer than two are expected. Loop thread only.
 */
void ferry_loop_expect(struct ferry_loop *loop, int delta);

/* ------------------------------------------------------------------ */
/* The close phase: objects freed in one place of the loop turn.        */

/*
 * struct ferry_closing - an object waiting to be freed. Embed it, set ->fn
 * and hand it to ferry_loop_close_later(); the owner keeps the memory
 * valid until ->fn runs (->fn may free it).
 */
struct ferry_closing {
	void (*fn)(struct ferry_closing *c);
	struct ferry_closing *ferry__next;	/* private */
};

/*
 * ferry_loop_close_later - run @c->fn in the close phase of this loop turn
 * (or the next one when called between turns): after every completion,
 * timer and posted item of the turn, never from inside another callback.
 * So an object closed from deep inside a callback stays valid until every
 * frame that may still use it has returned (libuv's close phase). Items
 * queued by an ->fn run in the same phase; ferry_loop_destroy runs every
 * item still queued. Queuing an item already queued is a bug. Loop
 * thread only; never fails.
 */
void ferry_loop_close_later(struct ferry_loop *loop, struct ferry_closing *c);

/* ------------------------------------------------------------------ */
/* Posting work from other threads: the inbox and its doorbell.        */

/*
 * struct ferry_post - an item handed to the loop from any thread.
 * The poster owns the memory until ->fn runs on the loop thread; ->fn may
 * free it.
 */
struct ferry_post {
	void (*fn)(struct ferry_post *p);
	struct ferry_post *ferry__next;	/* private */
};

/*
 * ferry_loop_post - run @p->fn on the loop thread soon. Thread: any.
 *
 * Pushes onto a lock-free multi-producer stack; rings the doorbell (one
 * eventfd write) only when the loop is asleep or about to sleep, so a busy
 * loop costs posters no syscall. Items run in the order posted by each
 * thread. Never fails: every item posted runs, including items posted
 * while ferry_loop_destroy runs (from its callbacks and items, or from a
 * thread already inside this call). The caller must guarantee the loop is
 * not freed before the call begins: a thread may post during destroy only
 * while something it holds keeps destroy from finishing (the bridge's
 * runner gate does that). The item posted may itself be what leads to the
 * loop's destruction (ferry_loop_destroy waits for posters still inside
 * this call).
 */
void ferry_loop_post(struct ferry_loop *loop, struct ferry_post *p);

/* ------------------------------------------------------------------ */
/* Ops. Each returns 0 once the SQE is prepared (it is submitted by the  */
/* next loop turn), or a negative code: -EBUSY if @op is already busy,   */
/* -ESHUTDOWN while the loop is being destroyed, -EOPNOTSUPP if the      */
/* kernel lacks the op. Buffers and addresses passed in must stay valid  */
/* until the op completes. A length (send, recv, read, write) above      */
/* 0x7ffff000, the most Linux moves in one call, is clamped to it: like  */
/* read(2) and write(2), these ops may move less than asked.             */

/* True while @op has completions outstanding (or is parked for buffers). */
bool ferry_op_busy(const struct ferry_op *op);

int ferry_op_socket(struct ferry_loop *loop, struct ferry_op *op, int domain,
		    int type, int protocol);
int ferry_op_connect(struct ferry_loop *loop, struct ferry_op *op, int fd,
		     const struct sockaddr *addr, socklen_t addrlen);
int ferry_op_send(struct ferry_loop *loop, struct ferry_op *op, int fd,
		  const void *buf, size_t len, int flags);
int ferry_op_sendmsg(struct ferry_loop *loop, struct ferry_op *op, int fd,
		     const struct msghdr *msg, int flags);
int ferry_op_recv(struct ferry_loop *loop, struct ferry_op *op, int fd,
		  void *buf, size_t len, int flags);
int ferry_op_close(struct ferry_loop *loop, struct ferry_op *op, int fd);
int ferry_op_read(struct ferry_loop *loop, struct ferry_op *op, int fd,
		  void *buf, size_t len, uint64_t offset);
int ferry_op_write(struct ferry_loop *loop, struct ferry_op *op, int fd,
		   const void *buf, size_t len, uint64_t offset);
int ferry_op_openat(struct ferry_loop *loop, struct ferry_op *op, int dfd,
		    const char *path, int flags, mode_t mode);
/* Fires after @ns nanoseconds with res -ETIME; cancelled with
 * ferry_op_cancel it completes with -ECANCELED instead. */
int ferry_op_timeout(struct ferry_loop *loop, struct ferry_op *op,
		     uint64_t ns);

/*
 * ferry_op_recv_multishot - receive into buffers from @br until EOF/error.
 *
 * Each completion with res > 0 carries FERRY_CQE_BUFFER and a buffer id
 * (ferry_cqe_bid); the owner hands the buffer back with
 * ferry_bufring_recycle() when done with it. res == 0 is end of stream.
 * With FERRY_FEAT_RECV_BUNDLE one receive may fill several buffers; it
 * still comes up as one completion per buffer, in stream order, each
 * buffer full but the last.
 * When the buffer ring runs dry the kernel's -ENOBUFS is not passed on: the
 * op is parked and re-armed as soon as a buffer is recycled (backpressure),
 * and the owner sees nothing but a pause. If the kernel ends the multishot
 * for another harmless reason, the op is re-armed transparently.
 */
int ferry_op_recv_multishot(struct ferry_loop *loop, struct ferry_op *op,
			    int fd, struct ferry_bufring *br);

/*
 * ferry_op_accept_multishot - accept connections on listening @fd; each
 * completion's res is a new socket (owned by the callback) or a negated
 * errno. Re-armed transparently if the kernel ends it while res >= 0.
 */
int ferry_op_accept_multishot(struct ferry_loop *loop, struct ferry_op *op,
			      int fd);

/* ferry_op_poll_multishot - one completion (res = revents) per readiness
 * edge of @fd for @events. */
int ferry_op_poll_multishot(struct ferry_loop *loop, struct ferry_op *op,
			    int fd, unsigned events);

/*
 * ferry_op_futex_wake - wake up to @nr waiters on the 32-bit futex word at
 * @uaddr (private futex) as an SQE batched into the next submission.
 * -EOPNOTSUPP without FERRY_FEAT_FUTEX; callers fall back to futex(2).
 * The word must stay mapped until the op completes.
 */
int ferry_op_futex_wake(struct ferry_loop *loop, struct ferry_op *op,
			uint32_t *uaddr, unsigned nr);

/*
 * ferry_loop_futex_wake - wake up to @nr waiters on the private futex word
 * at @uaddr, without an op record: with FERRY_FEAT_FUTEX and CQE_SKIP it is
 * an SQE (no CQE on success) batched into the next submission, so waking
 * many waiters costs the loop no syscall of its own; otherwise it calls
 * futex(2) at once. The word's memory may be freed by its owner as soon as
 * the owner has observed the change that prompted the wake: a wake that
 * lands on a reused address is a spurious wake-up, which every futex waiter
 * tolerates (glibc's semaphores rely on the same property).
 */
void ferry_loop_futex_wake(struct ferry_loop *loop, uint32_t *uaddr,
			   unsigned nr);

/*
 * ferry_op_set_timeout - give the op just prepared on @op a deadline of @ns
 * nanoseconds from submission (an IORING_OP_LINK_TIMEOUT linked to it).
 * Must be called right after the ferry_op_* call that prepared @op, before
 * any other op is prepared; futex wakes and cancels of other ops in between
 * are fine. If the deadline fires, @op completes with -ETIME.
 * Returns 0; -EINVAL if @op is not the op prepared last (another op was
 * prepared since, the loop has submitted since, or @op was cancelled) or
 * is multishot; -EBUSY if the ring has no room for the timeout (a ring of
 * one entry, or failing submissions): then @op is not started either, it
 * is idle again and will not complete.
 */
int ferry_op_set_timeout(struct ferry_loop *loop, struct ferry_op *op,
			 uint64_t ns);

/*
 * ferry_op_cancel - ask the kernel to cancel @op (every SQE it has in
 * flight). The op then completes, normally with -ECANCELED, or with its
 * real result if it won the race. A parked multishot recv completes with
 * -ECANCELED from the next loop turn. Returns 0, or -ENOENT if @op is not
 * busy.
 */
int ferry_op_cancel(struct ferry_loop *loop, struct ferry_op *op);

/* ------------------------------------------------------------------ */
/* Provided-buffer rings (IORING_REGISTER_PBUF_RING).                    */

/*
 * ferry_bufring_create - register a ring of @count buffers (power of two,
 * <= 32768) of @size bytes each, for multishot receive.
 * @brp receives it; the loop owns it and frees it at ferry_loop_destroy()
 * unless ferry_bufring_destroy() is called first.
 * Returns 0, -EINVAL, -ENOMEM or the kernel's error.
 */
int ferry_bufring_create(struct ferry_loop *loop, unsigned count,
			 unsigned size, struct ferry_bufring **brp);

/* ferry_bufring_destroy - unregister and free; no recv may use it. */
void ferry_bufring_destroy(struct ferry_bufring *br);

/* ferry_bufring_buf - address of buffer @bid. */
void *ferry_bufring_buf(const struct ferry_bufring *br, unsigned bid);

/* ferry_bufring_size - bytes per buffer. */
unsigned ferry_bufring_size(const struct ferry_bufring *br);

/* ferry_bufring_available - buffers currently owned by the kernel. */
unsigned ferry_bufring_available(const struct ferry_bufring *br);

/*
 * ferry_bufring_recycle - give buffer @bid back to the kernel, re-arming
 * any multishot recv parked for lack of buffers. Loop thread only (another
 * thread hands buffers back by posting to the loop).
 */
void ferry_bufring_recycle(struct ferry_bufring *br, unsigned bid);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_LOOP_H */
