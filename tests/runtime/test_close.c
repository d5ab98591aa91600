/*
 * test_close.c - the loop's close phase (ferry_loop_close_later): items
 * run after the callback that queued them has returned, in order, items
 * they queue run in the same phase, and destroy runs what is left.
 */
#include "util.h"

#include "ferry/timer.h"

struct item {
	struct ferry_closing c;
	int id;
	int *log, *nlog;
	struct ferry_loop *loop;
	struct item *then;	/* queued by this item's fn, or NULL */
};

static void item_fn(struct ferry_closing *c)
{
	struct item *it = (struct item *)c;

	it->log[(*it->nlog)++] = it->id;
	if (it->then)
		ferry_loop_close_later(it->loop, &it->then->c);
}

/* A timer whose callback queues two items and checks that neither ran
 * before it returned. */
struct queuer {
	struct ferry_timer t;
	struct item *a, *b;
	int seen_in_cb;		/* log length when the callback returned */
	int *nlog;
};

static void queuer_fn(struct ferry_timer *t)
{
	struct queuer *q = (struct queuer *)t;

	ferry_loop_close_later(q->a->loop, &q->a->c);
	ferry_loop_close_later(q->b->loop, &q->b->c);
	q->seen_in_cb = *q->nlog;
}

Test(close, after_the_callback_in_order_same_phase)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	int log[8], nlog = 0;
	struct item c = { .c.fn = item_fn, .id = 3, .log = log, .nlog = &nlog,
			  .loop = loop };
	struct item a = { .c.fn = item_fn, .id = 1, .log = log, .nlog = &nlog,
			  .loop = loop, .then = &c };
	struct item b = { .c.fn = item_fn, .id = 2, .log = log, .nlog = &nlog,
			  .loop = loop };
	struct queuer q = { .t.fn = queuer_fn, .a = &a, .b = &b,
			    .seen_in_cb = -1, .nlog = &nlog };

	cr_assert_eq(ferry_timer_start(loop, &q.t, 0), 0);
	for (int i = 0; i < 100 && nlog < 3; i++)
		rt_turn(loop, 10 * RT_MS);
	cr_expect_eq(q.seen_in_cb, 0, "an item ran inside the callback");
	cr_assert_eq(nlog, 3);
	/* a, b in queue order; c, queued by a, in the same phase after b. */
	cr_expect_eq(log[0], 1);
	cr_expect_eq(log[1], 2);
	cr_expect_eq(log[2], 3);
	ferry_loop_destroy(loop);
}

Test(close, between_turns_and_at_destroy)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	int log[4], nlog = 0;
	struct item a = { .c.fn = item_fn, .id = 1, .log = log, .nlog = &nlog,
			  .loop = loop };
	struct item b = { .c.fn = item_fn, .id = 2, .log = log, .nlog = &nlog,
			  .loop = loop };

	/* Queued between turns: the next turn runs it without waiting. */
	ferry_loop_close_later(loop, &a.c);
	cr_expect_gt(rt_turn(loop, 5000 * RT_MS), 0);
	cr_expect_eq(nlog, 1);
	/* Still queued when the loop goes: destroy runs it. */
	ferry_loop_close_later(loop, &b.c);
	ferry_loop_destroy(loop);
	cr_expect_eq(nlog, 2);
	cr_expect_eq(log[1], 2);
}
