/*
 * ferry/timer.h - loop timers on CLOCK_MONOTONIC.
 *
 * Timers live in a binary min-heap owned by the loop; the loop's single
 * io_uring_enter per turn waits at most until the earliest deadline, so any
 * number of active timers costs no syscall of its own. All functions here
 * are loop-thread only. The struct is embedded in its owner, who sets ->fn
 * and must keep the memory alive while the timer is active.
 */
#ifndef FERRY_TIMER_H
#define FERRY_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ferry_loop;

struct ferry_timer {
	/* Runs on the loop thread once the deadline has passed; the timer is
	 * inactive by then and may be restarted or freed from inside. */
	void (*fn)(struct ferry_timer *t);
	/* private: */
	uint64_t ferry__deadline;
	uint64_t ferry__seq;	/* start order: FIFO ties, "started this turn" */
	uint32_t ferry__slot;	/* heap index + 1; 0 when inactive */
};

/*
 * ferry_timer_start - (re)arm @t to fire at @deadline_ns (CLOCK_MONOTONIC,
 * see ferry_time_now). A deadline in the past fires on the next turn.
 * Returns 0 or -ENOMEM (the heap could not grow).
 */
int ferry_timer_start(struct ferry_loop *loop, struct ferry_timer *t,
		      uint64_t deadline_ns);

/* ferry_timer_stop - disarm @t; no-op if inactive. */
void ferry_timer_stop(struct ferry_loop *loop, struct ferry_timer *t);

/* ferry_timer_active - true between start and firing or stop. */
static inline bool ferry_timer_active(const struct ferry_timer *t)
{
	return t->ferry__slot != 0;
}

/* ferry_timer_deadline - the deadline an active @t fires at. */
static inline uint64_t ferry_timer_deadline(const struct ferry_timer *t)
{
	return t->ferry__deadline;
}

#ifdef __cplusplus
}
#endif

#endif /* FERRY_TIMER_H */
