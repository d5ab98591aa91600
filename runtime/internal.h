/*
 * runtime/internal.h - what the runtime sources share and nothing else sees.
 */
#ifndef FERRY_RUNTIME_INTERNAL_H
#define FERRY_RUNTIME_INTERNAL_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include <liburing.h>

#include "ferry/list.h"
#include "ferry/loop.h"
#include "ferry/offload.h"
#include "ferry/timer.h"
#include "test_hooks.h"

/* Debug builds check that loop-thread-only calls come from the loop. */
#define FERRY__ASSERT_LOOP(loop) assert(ferry_loop_on_thread(loop))

/*
 * user_data encoding. Op records are at least 8-byte aligned, so the low
 * two bits tag what a CQE belongs to.
 */
enum ferry__ud_tag {
	FERRY__UD_OP = 0,	/* the op's own SQE */
	FERRY__UD_LINK = 1,	/* the op's linked timeout */
	FERRY__UD_IGNORE = 2,	/* loop-internal, no owner (cancels) */
	FERRY__UD_SKIP = 3,	/* CQE_SKIP_SUCCESS: a CQE only on error,
				   not counted in flight */
};
#define FERRY__UD_MASK 3u

/* Opcodes newer than liburing 2.3's headers (Linux 6.7). */
#define FERRY__IORING_OP_FUTEX_WAIT 51
#define FERRY__IORING_OP_FUTEX_WAKE 52
/* io_uring_enter's min_wait (Linux 6.12), newer than liburing 2.3. */
#define FERRY__IORING_FEAT_MIN_TIMEOUT (1u << 15)
/* Receive bundles (Linux 6.10), newer than liburing 2.3: the feature bit
 * io_uring_setup reports, and the recv SQE's ioprio flag. */
#define FERRY__IORING_FEAT_RECVSEND_BUNDLE (1u << 14)
#define FERRY__IORING_RECVSEND_BUNDLE (1u << 4)

enum ferry__op_kind {
	FERRY__OP_ONESHOT = 0,
	FERRY__OP_RECV_MULTI,
	FERRY__OP_ACCEPT_MULTI,
	FERRY__OP_POLL_MULTI,
};

enum ferry__op_flag {
	FERRY__OPF_TIMEDOUT = 1u << 0,	/* linked timeout fired */
	FERRY__OPF_CANCELED = 1u << 1,	/* owner asked to cancel */
	FERRY__OPF_PARKED = 1u << 2,	/* multishot recv waiting for bufs */
	FERRY__OPF_DEFERRED = 1u << 3,	/* on the deferred-completion list */
};

/* What an op does: the public ferry_op_* calls, as the backends see them. */
enum ferry__opcode {
	FERRY__OC_SOCKET = 1,
	FERRY__OC_CONNECT,
	FERRY__OC_SEND,
	FERRY__OC_SENDMSG,
	FERRY__OC_RECV,
	FERRY__OC_CLOSE,
	FERRY__OC_READ,
	FERRY__OC_WRITE,
	FERRY__OC_OPENAT,
	FERRY__OC_TIMEOUT,
	FERRY__OC_FUTEX_WAKE,
	FERRY__OC_POLL_MULTI,
	FERRY__OC_ACCEPT_MULTI,
	FERRY__OC_RECV_MULTI,
};

/*
 * An op's arguments, packed by ops.c for the backend's start(). Fields
 * by opcode: fd is the socket, file or dirfd (socket: the domain); p the
 * buffer, msghdr, address, path, futex word or buffer ring; len the
 * (clamped) length, addrlen, socket type, poll events, open mode or wake
 * count; flags the MSG_* flags, open flags or socket protocol; u64 the
 * file offset or the timeout in ns.
 */
struct ferry__args {
	enum ferry__opcode code;
	int fd;
	const void *p;
	unsigned len;
	int flags;
	uint64_t u64;
};

/*
 * A backend: how a loop gets ops to the kernel and completions back
 * (redis ae's apiCreate/apiPoll idea, libuv's uv__io_poll). uring.c and
 * epoll.c each fill one; loop.c and ops.c call only through it, so
 * nothing outside those two files knows which one runs.
 */
struct ferry__backend {
	const char *name;
	/* Set up on a zeroed loop; @why names the cause of a failure. */
	int (*init)(struct ferry_loop *loop, const struct ferry_loop_opts *o,
		    unsigned disabled, char *why, size_t whylen);
	void (*fini)(struct ferry_loop *loop);
	/* Start @op (idle, loop not destroying): 0 or a negative code. */
	int (*start)(struct ferry_loop *loop, struct ferry_op *op,
		     const struct ferry__args *a);
	int (*set_timeout)(struct ferry_loop *loop, struct ferry_op *op,
			   uint64_t ns);
	/* Cancel a busy op that is neither parked nor deferred. */
	int (*cancel)(struct ferry_loop *loop, struct ferry_op *op);
	void (*futex_wake)(struct ferry_loop *loop, uint32_t *uaddr,
			   unsigned nr);
	/* Start what was prepared, without waiting (before a spin). */
	void (*flush)(struct ferry_loop *loop);
	/* Completions are ready without waiting (the spin's test). */
	bool (*ready)(struct ferry_loop *loop);
	/* Start what was prepared and wait up to @wait_ns (< 0: no bound)
	 * for an event; @posted: posted items ran lately. */
	int (*wait)(struct ferry_loop *loop, int64_t wait_ns, bool posted);
	/* Run the completions the last wait found; returns how many. */
	unsigned (*reap)(struct ferry_loop *loop);
	/* Destroy: ask every op in flight to end. */
	void (*cancel_all)(struct ferry_loop *loop);
	/* Buffer rings: set up, tear down, hand buffer @bid (back) over. */
	int (*buf_register)(struct ferry_bufring *br);
	void (*buf_unregister)(struct ferry_bufring *br);
	void (*buf_put)(struct ferry_bufring *br, unsigned bid);
};

extern const struct ferry__backend ferry__uring_backend;
extern const struct ferry__backend ferry__epoll_backend;

struct ferry__pool;
struct ferry__epoll;

struct ferry_bufring {
	struct ferry_loop *loop;
	struct io_uring_buf_ring *ring;	/* page-aligned, shared with kernel */
	uint16_t *free_bids;		/* epoll: buffers not handed out */
	uint16_t *slot_of;		/* io_uring: the ring entry each
					   buffer was last put in (bundles) */
	unsigned bundles;		/* completions that filled more than
					   one buffer (test_hooks.h) */
	unsigned nfree;
	unsigned char *bufs;		/* count * size bytes */
	unsigned count;
	unsigned size;
	unsigned mask;
	unsigned outstanding;		/* buffers handed to consumers */
	uint16_t bgid;
	struct ferry_op *parked;	/* recvs waiting for a buffer */
	struct ferry_bufring *next;	/* loop's list */
};

struct ferry_loop {
	const struct ferry__backend *be;
	struct io_uring ring;		/* io_uring backend */
	struct ferry__epoll *ep;	/* epoll backend */
	pthread_t owner;
	unsigned features;
	unsigned setup_flags;
	unsigned inflight;		/* CQEs still expected */
	unsigned internal_inflight;	/* of those, FERRY__UD_IGNORE ones */
	bool stop;
	bool destroying;
	unsigned idle_spin_ns;
	unsigned spin_budget;		/* current spin, adapts: loop.c */
	int64_t max_wait_ns;		/* cap on one wait; -1 = none */
	unsigned offload_threads;
	unsigned batch_wait_ns;		/* 0: no batched waits */
	unsigned expected;		/* ferry_loop_expect's count */
	bool in_turn;			/* now is valid */
	bool posted;			/* the last turn ran posted items */
	uint64_t now;			/* ferry_loop_now, inside a turn */
	/* The op prepared last, for ferry_op_set_timeout: its SQE and the
	 * SQ tail right after it was taken (ops.c, ferry__link_open). */
	struct io_uring_sqe *last_sqe;
	struct ferry_op *last_op;
	unsigned last_tail;

	/* Inbox: a Treiber stack of posts, pushed by any thread. Aligned
	 * so posters touch one cache line for the stack and the count. */
	_Alignas(64) _Atomic(struct ferry_post *) inbox;
	/* Posters between their push and their last touch of the loop:
	 * the item they pushed may be what lets the loop be destroyed, so
	 * destroy waits for this to drain before freeing. */
	atomic_uint posters;
	/* 1 while the loop is in (or entering) a blocking wait: posters
	 * must ring the doorbell. See ferry_loop_post for the protocol. */
	atomic_int sleeping;
	int bell_fd;
	_Alignas(64) char ferry__pad;	/* loop-private fields from here */
	struct ferry_op bell_op;

	/* Completions produced in user space (cancelled parked recvs). */
	struct ferry_op *deferred;
	/* Objects to free in the close phase, oldest first (loop.c). */
	struct ferry_closing *closing, **closing_tail;

	/* Timer heap ordered by (deadline, seq). */
	struct ferry_timer **heap;
	unsigned nheap;
	unsigned heapcap;
	uint64_t timer_seq;		/* next start number: timer.c */

	struct ferry_bufring *bufrings;
	uint16_t next_bgid;

	struct ferry__pool *pool;
	char describe[256];
};

/* ops.c */
int ferry__op_start(struct ferry_loop *loop, struct ferry_op *op,
		    const struct ferry__args *a);
enum ferry__op_kind ferry__op_kind_of(enum ferry__opcode code);
void ferry__op_defer(struct ferry_loop *loop, struct ferry_op *op, int res);
unsigned ferry__run_deferred(struct ferry_loop *loop);
int ferry__recv_multishot_arm(struct ferry_loop *loop, struct ferry_op *op);

/* bufring.c */
void ferry__bufring_park(struct ferry_bufring *br, struct ferry_op *op);
bool ferry__bufring_unpark(struct ferry_bufring *br, struct ferry_op *op);
void ferry__bufring_taken(struct ferry_bufring *br);
void ferry__bufring_destroy_all(struct ferry_loop *loop);

/* timer.c */
unsigned ferry__timers_run(struct ferry_loop *loop, uint64_t now,
			   uint64_t limit);
int64_t ferry__timers_next(const struct ferry_loop *loop, uint64_t now);
void ferry__timers_free(struct ferry_loop *loop);

/* offload.c */
void ferry__pool_stop(struct ferry_loop *loop);

/* loop.c */
unsigned ferry__inbox_run(struct ferry_loop *loop);
void ferry__describe_features(struct ferry_loop *loop, const char *prefix);

#endif /* FERRY_RUNTIME_INTERNAL_H */
