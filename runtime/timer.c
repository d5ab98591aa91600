/*
 * timer.c - a binary min-heap of timers keyed by (deadline, start order).
 *
 * The loop asks for the earliest deadline before each wait and fires the
 * expired timers after it: no timer ever costs a syscall of its own.
 *
 * Start order is a 64-bit counter compared by signed difference. That is
 * wrap-safe as long as no two live timers were started 2^63 starts apart,
 * which at a billion starts a second takes 292 years. (It was 32-bit: after
 * 2^31 starts a timer still in the heap looked "started this turn" for ever,
 * never fired, and kept the loop from sleeping.)
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "grow.h"

/* Was start number @a taken before @b? Wrap-safe: see the top. */
static bool ferry__seq_before(uint64_t a, uint64_t b)
{
	return (int64_t)(a - b) < 0;
}

static bool ferry__timer_before(const struct ferry_timer *a,
				const struct ferry_timer *b)
{
	if (a->ferry__deadline != b->ferry__deadline)
		return a->ferry__deadline < b->ferry__deadline;
	/* Equal deadlines fire in start order (see the top of this file). */
	return ferry__seq_before(a->ferry__seq, b->ferry__seq);
}

static void ferry__heap_set(struct ferry_loop *loop, unsigned i,
			    struct ferry_timer *t)
{
	loop->heap[i] = t;
	t->ferry__slot = i + 1;
}

static void ferry__heap_up(struct ferry_loop *loop, unsigned i)
{
	struct ferry_timer *t = loop->heap[i];

	while (i > 0) {
		unsigned parent = (i - 1) / 2;

		if (!ferry__timer_before(t, loop->heap[parent]))
			break;
		ferry__heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	ferry__heap_set(loop, i, t);
}

static void ferry__heap_down(struct ferry_loop *loop, unsigned i)
{
	struct ferry_timer *t = loop->heap[i];

	for (;;) {
		unsigned c = 2 * i + 1;

		if (c >= loop->nheap)
			break;
		if (c + 1 < loop->nheap &&
		    ferry__timer_before(loop->heap[c + 1], loop->heap[c]))
			c++;
		if (!ferry__timer_before(loop->heap[c], t))
			break;
		ferry__heap_set(loop, i, loop->heap[c]);
		i = c;
	}
	ferry__heap_set(loop, i, t);
}

static void ferry__heap_remove(struct ferry_loop *loop, unsigned i)
{
	struct ferry_timer *last = loop->heap[--loop->nheap];

	loop->heap[i]->ferry__slot = 0;
	if (i == loop->nheap)
		return;
	ferry__heap_set(loop, i, last);
	ferry__heap_down(loop, i);
	ferry__heap_up(loop, last->ferry__slot - 1);
}

int ferry_timer_start(struct ferry_loop *loop, struct ferry_timer *t,
		      uint64_t deadline_ns)
{
	FERRY__ASSERT_LOOP(loop);
	if (t->ferry__slot)
		ferry__heap_remove(loop, t->ferry__slot - 1);
	if (loop->nheap == loop->heapcap) {
		size_t bytes = loop->heapcap * sizeof(*loop->heap);
		struct ferry_timer **heap = ferry__grow(loop->heap, &bytes,
				(loop->nheap + 1) * sizeof(*heap),
				64 * sizeof(*heap));

		if (!heap)
			return -ENOMEM;
		loop->heap = heap;
		loop->heapcap = (unsigned)(bytes / sizeof(*heap));
	}
	t->ferry__deadline = deadline_ns;
	t->ferry__seq = loop->timer_seq++;
	ferry__heap_set(loop, loop->nheap++, t);
	ferry__heap_up(loop, loop->nheap - 1);
	return 0;
}

void ferry_timer_stop(struct ferry_loop *loop, struct ferry_timer *t)
{
	FERRY__ASSERT_LOOP(loop);
	if (t->ferry__slot)
		ferry__heap_remove(loop, t->ferry__slot - 1);
}

/* Fire every timer due at @now that was started before @limit (a timer
 * sequence number): one started later, even with a deadline already past,
 * waits for the next turn, so a timer that keeps re-arming itself cannot
 * starve the loop. */
unsigned ferry__timers_run(struct ferry_loop *loop, uint64_t now,
			   uint64_t limit)
{
	unsigned n = 0;

	while (loop->nheap) {
		struct ferry_timer *t = loop->heap[0];

		if (t->ferry__deadline > now ||
		    !ferry__seq_before(t->ferry__seq, limit))
			break;
		ferry__heap_remove(loop, 0);
		t->fn(t);
		n++;
	}
	return n;
}

/* Nanoseconds until the earliest deadline: -1 if none, 0 if due. */
int64_t ferry__timers_next(const struct ferry_loop *loop, uint64_t now)
{
	uint64_t d;

	if (!loop->nheap)
		return -1;
	d = loop->heap[0]->ferry__deadline;
	return d > now ? (int64_t)(d - now) : 0;
}

void ferry__timer_seq_set(struct ferry_loop *loop, uint64_t seq)
{
	FERRY__ASSERT_LOOP(loop);
	loop->timer_seq = seq;
}

void ferry__timers_free(struct ferry_loop *loop)
{
	for (unsigned i = 0; i < loop->nheap; i++)
		loop->heap[i]->ferry__slot = 0;
	free(loop->heap);
	loop->heap = NULL;
	loop->nheap = loop->heapcap = 0;
}
