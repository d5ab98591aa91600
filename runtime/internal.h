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

struct ferry__pool;

struct ferry_bufring {
	struct ferry_loop *loop;
	struct io_uring_buf_ring *ring;	/* page-aligned, shared with kernel */
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
	struct io_uring ring;
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
struct io_uring_sqe *ferry__sqe(struct ferry_loop *loop);
struct io_uring_sqe *ferry__sqe_loose(struct ferry_loop *loop);
void ferry__cqe_dispatch(struct ferry_loop *loop, uint64_t ud, int res,
			 unsigned flags);
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

#endif /* FERRY_RUNTIME_INTERNAL_H */
