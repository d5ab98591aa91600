/*
 * wait.c - how a thread waits for the loop: a bounded, adaptive spin, then
 * FUTEX_WAIT on a 32-bit word.
 *
 * On the virtual machines ferry is measured on, a sleep and the wake-up
 * that ends it cost about ten microseconds of CPU (futex, IPI, two context
 * switches) while a spin that succeeds costs well under one. So a waiter
 * spins first:
 *   - the budget adapts: it doubles after a spin that succeeded and halves
 *     after one that failed, between 1 us and the configured maximum, so a
 *     runner whose tasks take long stops burning CPU on spins;
 *   - a spinner yields the CPU every few microseconds, so with more
 *     threads than CPUs the loop thread and the other waiters still run;
 *   - the same rules hold for task waiters and stream readers;
 *   - by default every waiter may spin (max_spinners caps it). With more
 *     callers than CPUs this keeps them runnable and taking turns instead
 *     of each sleeping once per round trip: 16 callers on 2 CPUs went from
 *     ~190k to ~1M round trips/s when a one-spinner cap that also barred
 *     spinning while any waiter slept was lifted.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

#define FERRY__MIN_SPIN_NS 1000u


static void ferry__spin_adapt(struct ferry_runner *r, unsigned budget,
			      bool hit)
{
	unsigned next = hit ? budget * 2 : budget / 2;

	if (next < FERRY__MIN_SPIN_NS)
		next = FERRY__MIN_SPIN_NS;
	if (next > r->max_spin_ns)
		next = r->max_spin_ns;
	/* relaxed: a heuristic, any recent value will do. */
	atomic_store_explicit(&r->spin_ns, next, memory_order_relaxed);
}

bool ferry__spin_while(struct ferry_runner *r, _Atomic uint32_t *word,
		       uint32_t mask, uint32_t expect)
{
	unsigned budget = atomic_load_explicit(&r->spin_ns, memory_order_relaxed);
	uint64_t end;
	bool hit = false;

	if (!budget || !r->max_spin_ns)
		return false;
	/* relaxed: the cap is advisory; a brief overshoot is harmless. */
	if (atomic_fetch_add_explicit(&r->spinners, 1, memory_order_relaxed) >=
	    r->max_spinners) {
		atomic_fetch_sub_explicit(&r->spinners, 1, memory_order_relaxed);
		return false;
	}
	end = ferry_time_now() + budget;
	for (unsigned i = 0;; i++) {
		/* acquire: pairs with the loop's release of the result. */
		if ((atomic_load_explicit(word, memory_order_acquire) & mask) !=
		    expect) {
			hit = true;
			break;
		}
		ferry__cpu_relax();
		if ((i & 31) == 31) {
			if (ferry_time_now() >= end)
				break;
			/* The loop thread may share this CPU (wake-up
			 * affinity): then it must run for us to get a result. */
			sched_yield();
		}
	}
	atomic_fetch_sub_explicit(&r->spinners, 1, memory_order_relaxed);
	ferry__spin_adapt(r, budget, hit);
	return hit;
}

uint64_t ferry__deadline(int64_t timeout_ns)
{
	return timeout_ns < 0 ? 0 : ferry_time_now() + (uint64_t)timeout_ns;
}

int ferry__futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t deadline)
{
	struct timespec ts, *tsp = NULL;
	long ret;

	if (deadline) {
		if (ferry_time_now() >= deadline)
			return FERRY_ETIMEDOUT;
		FERRY__NS_TO_TS(&ts, deadline);
		tsp = &ts;
	}
	/* WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so
	 * repeated spurious wake-ups do not stretch the wait. */
	ret = syscall(SYS_futex, (uint32_t *)word,
		      FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, val, tsp, NULL,
		      FUTEX_BITSET_MATCH_ANY);
	if (ret < 0 && errno == ETIMEDOUT)
		return FERRY_ETIMEDOUT;
	return 0;	/* woken, value changed (EAGAIN), or EINTR: re-check */
}

void ferry__loop_wake(struct ferry_runner *r, _Atomic uint32_t *word)
{
	ferry_loop_futex_wake(r->loop, (uint32_t *)word, INT_MAX);
}
