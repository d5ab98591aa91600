/*
 * bridge/internal.h - what the bridge sources share and nothing else sees.
 */
#ifndef FERRY_BRIDGE_INTERNAL_H
#define FERRY_BRIDGE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "ferry/bridge.h"
#include "util.h"

/* ---- the futex word of a task ---- */
enum {
	FERRY__T_DONE = 1u << 0,	/* status is published */
	FERRY__T_WAITERS = 1u << 1,	/* someone sleeps (or is about to) */
	FERRY__T_CANCEL = 1u << 2,	/* cancellation requested */
	FERRY__T_INFLIGHT = 1u << 3,	/* submitted, not yet done */
	FERRY__T_CLOSED = 1u << 4,	/* cancelled by the runner's close */
};

/* ---- runner phases (r->phase) ---- */
enum ferry__phase {
	FERRY__R_NEW = 0,
	FERRY__R_STARTING,
	FERRY__R_RUNNING,
	FERRY__R_FAILED,
	FERRY__R_CLOSED,	/* close finished: thread joined */
};

struct ferry_runner {
	/* Immutable after create. */
	struct ferry_loop_opts loop_opts;
	unsigned max_spin_ns;
	unsigned max_spinners;

	/* Start, close and cleanups are rare: a mutex and a condvar. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool closing;			/* under lock: close has begun */
	struct ferry_cleanup *cleanups;	/* under lock; newest first */
	int start_err;
	char why[256];
	pthread_t thread;
	bool has_thread;

	/* Fast paths. `phase` is read with acquire: RUNNING publishes loop. */
	atomic_int phase;
	struct ferry_loop *loop;
	pthread_t loop_thread;
	/*
	 * The gate between submitters and close: bit 0 = closed to new work,
	 * the rest counts threads inside a submit. Close sets bit 0, then
	 * waits for the count to drain before it posts the stop item, so
	 * nothing is posted to the loop after the stop item.
	 */
	atomic_uint gate;

	/* Waiter spinning: the budget adapts; max_spinners may cap the
	 * number of threads spinning at once. */
	atomic_uint spin_ns;
	atomic_uint spinners;

	/* Cancellation requests: one runner-owned post, at most one queued. */
	struct ferry_post scan_post;
	atomic_int scan_pending;
	struct ferry_post stop_post;

	/*
	 * Streams whose consumer has not called ferry_stream_close: the
	 * loop adds, consumers subtract. Read by the loop only once destroy
	 * has begun, to tell a stream nobody will ever close (see
	 * ferry__runner_main).
	 */
	atomic_uint open_streams;
	/* Set by destroy before its close posts the stop item, whose post
	 * publishes it to the loop; read by the loop after that item ran. */
	bool destroying;
	/* Set by the loop thread before it returns, read after the join:
	 * streams were left open, the loop was not destroyed (release
	 * builds; debug builds abort). */
	bool orphaned;

	/* Loop thread only. */
	struct ferry__link tasks;	/* in flight */
	unsigned ntasks;
	struct ferry__link streams;	/* alive */
	unsigned nstreams;
	bool loop_closing;
};

/* ---- runner.c ---- */
int ferry__runner_enter(struct ferry_runner *r);
void ferry__runner_leave(struct ferry_runner *r);
bool ferry__runner_on_loop(const struct ferry_runner *r);
void ferry__runner_request_scan(struct ferry_runner *r);
void ferry__runner_maybe_finish(struct ferry_runner *r);

/* ---- task.c ---- */
void ferry__tasks_sweep(struct ferry_runner *r, bool closing);

/* ---- stream.c ---- */
void ferry__streams_close(struct ferry_runner *r);

/* ---- a task's futex word ---- */
/* The public struct keeps the word as a plain uint32_t (C++ has no
 * _Atomic); every access goes through this _Atomic view of it, which is
 * sound because the two types have one size and alignment (checked here)
 * and the word is never accessed any other way. */
_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t) &&
	       _Alignof(_Atomic uint32_t) == _Alignof(uint32_t),
	       "a task's state word must be a lock-free uint32_t");
static inline _Atomic uint32_t *ferry__task_word(struct ferry_task *t)
{
	return (_Atomic uint32_t *)&t->ferry__state;
}

/* ---- wait.c: spinning and futex sleeping ---- */
/* Spin while (*word & mask) == expect, within the runner's adaptive budget
 * and spinner cap. Returns true if it saw the word change. */
bool ferry__spin_while(struct ferry_runner *r, _Atomic uint32_t *word,
		       uint32_t mask, uint32_t expect);
/* Absolute CLOCK_MONOTONIC deadline for a relative timeout; 0 = none. */
uint64_t ferry__deadline(int64_t timeout_ns);
/* FUTEX_WAIT_BITSET on *word == val until @deadline (0 = for ever).
 * Returns 0 on wake-up or value change, FERRY_ETIMEDOUT at the deadline. */
int ferry__futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t deadline);
/* Wake a waiter from the loop: batched into the next submission. */
void ferry__loop_wake(struct ferry_runner *r, _Atomic uint32_t *word);

/* A seq_cst fence (runner.c and stream.c say which pairs need one). GCC
 * warns that ThreadSanitizer does not model fences (-Wtsan); TSan still
 * checks every atomic around it, which is all it could say here. */
static inline void ferry__fence_seq_cst(void)
{
#if defined(__SANITIZE_THREAD__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtsan"
#endif
	atomic_thread_fence(memory_order_seq_cst);
#if defined(__SANITIZE_THREAD__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif
}

#endif /* FERRY_BRIDGE_INTERNAL_H */
