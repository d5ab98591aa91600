/*
 * test_cancel.c - cancelling tasks: cancel racing completion from a thread
 * that is not the waiter, cancel of a long task, release, and the edges
 * (never submitted, already done, cancelled twice).
 */
#include "util.h"

#include <sched.h>

/* ------------------------------------------------------------------ */
/* Cancel racing completion.                                             */

struct racer {
	struct ferry_runner *r;
	_Atomic(struct ferry_task *) target;	/* set by the waiter */
	atomic_int done_gen;			/* cancels finished */
	atomic_int stop;
	uint32_t seed;
	int cancel_err;
};

static uint32_t xrand(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

static void spin_ns(uint64_t ns)
{
	uint64_t end = ferry_time_now() + ns;

	while (ferry_time_now() < end)
		;
}

/* The third thread: cancels each task it is handed after a random delay. */
static void *canceller_main(void *arg)
{
	struct racer *rc = arg;

	while (!atomic_load(&rc->stop)) {
		struct ferry_task *t = atomic_exchange(&rc->target, NULL);
		int err;

		if (!t) {
			sched_yield();	/* 2 CPUs: leave room for the loop */
			continue;
		}
		spin_ns(xrand(&rc->seed) % 500000);
		err = ferry_task_cancel(t);
		if (err && !rc->cancel_err)
			rc->cancel_err = err;
		atomic_fetch_add(&rc->done_gen, 1);
	}
	return NULL;
}

/* @op_ns_max: the task's op lasts 0..@op_ns_max ns; 0 = completes in start. */
static void cancel_races_completion(uint64_t op_ns_max, int iterations)
{
	struct ferry_runner *r = bt_runner();
	struct racer rc = { .r = r, .seed = 12345 };
	uint32_t seed = 777;
	int real = 0, cancelled = 0;
	pthread_t th;

	cr_assert_eq(pthread_create(&th, NULL, canceller_main, &rc), 0);
	for (int i = 0; i < iterations; i++) {
		/* Fresh heap memory each time, freed as soon as the contract
		 * allows: a late touch by the bridge is a use-after-free. */
		struct bt_sleep_task *s = malloc(sizeof(*s));
		struct bt_now_task *n = malloc(sizeof(*n));
		struct ferry_task *t;
		int res, want;

		if (op_ns_max) {
			bt_sleep_init(s, 1 + xrand(&seed) % op_ns_max, 42);
			t = &s->t;
		} else {
			bt_now_init(n, 42);
			t = &n->t;
		}
		cr_assert_eq(ferry_task_submit(r, t), 0);
		atomic_store(&rc.target, t);
		res = ferry_task_wait(t, 5000 * BT_MS);
		cr_assert(res == 42 || res == FERRY_ECANCELED,
			  "iteration %d: status %d (%s)", i, res,
			  ferry_strerrorname(res));
		real += res == 42;
		cancelled += res == FERRY_ECANCELED;
		/* The task's memory may go once the canceller is out of
		 * ferry_task_cancel. */
		want = i + 1;
		while (atomic_load(&rc.done_gen) < want)
			sched_yield();
		cr_assert_eq(ferry_task_wait(t, 0), res, "the result changed");
		if (op_ns_max)
			cr_assert_leq(atomic_load(&s->cancels), 1);
		free(s);
		free(n);
	}
	atomic_store(&rc.stop, 1);
	pthread_join(th, NULL);
	cr_assert_eq(rc.cancel_err, 0, "ferry_task_cancel: %s",
		     ferry_strerrorname(rc.cancel_err));
	cr_log_info("%d real results, %d cancelled", real, cancelled);
	if (iterations >= 1000 && op_ns_max) {
		cr_assert_gt(real, 0, "the race was never won by completion");
		cr_assert_gt(cancelled, 0, "the race was never won by cancel");
	}
	ferry_runner_destroy(r);
}

Test(cancel, races_completion_from_op, .timeout = 60)
{
	cancel_races_completion(1000000, bt_scaled(3000));
}

Test(cancel, races_completion_inside_start, .timeout = 60)
{
	cancel_races_completion(0, bt_scaled(3000));
}

/* ------------------------------------------------------------------ */

struct cancel_later {
	struct ferry_task *t;
	int delay_ms;
	int rc;
};

static void *cancel_later_main(void *arg)
{
	struct cancel_later *c = arg;

	bt_sleep_ms(c->delay_ms);
	c->rc = ferry_task_cancel(c->t);
	return NULL;
}

Test(cancel, long_task_cancelled_quickly, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct bt_sleep_task s;
	struct cancel_later c = { .t = &s.t, .delay_ms = 30 };
	pthread_t th;
	int64_t t0;

	bt_sleep_init(&s, 10000 * BT_MS, 1);
	t0 = bt_now();
	cr_assert_eq(ferry_task_submit(r, &s.t), 0);
	cr_assert_eq(pthread_create(&th, NULL, cancel_later_main, &c), 0);
	cr_assert_eq(ferry_task_wait(&s.t, 5000 * BT_MS), FERRY_ECANCELED);
	BT_ASSERT_ELAPSED(t0, 25, 1000);
	pthread_join(th, NULL);
	cr_assert_eq(c.rc, 0);
	cr_assert_eq(atomic_load(&s.cancels), 1);
	/* Cancelling a done task changes nothing. */
	cr_assert_eq(ferry_task_cancel(&s.t), 0);
	cr_assert_eq(ferry_task_wait(&s.t, 0), FERRY_ECANCELED);
	/* Cancel twice in a row: still one result, the task reusable. */
	bt_sleep_init(&s, 10000 * BT_MS, 1);
	cr_assert_eq(ferry_task_submit(r, &s.t), 0);
	cr_assert_eq(ferry_task_cancel(&s.t), 0);
	cr_assert_eq(ferry_task_cancel(&s.t), 0);
	cr_assert_eq(ferry_task_wait(&s.t, 5000 * BT_MS), FERRY_ECANCELED);
	bt_sleep_init(&s, 1 * BT_MS, 4);
	cr_assert_eq(ferry_call(r, &s.t), 4);
	ferry_runner_destroy(r);
}

Test(cancel, never_submitted_is_einval, .timeout = 5)
{
	struct bt_sleep_task s;

	bt_sleep_init(&s, BT_MS, 1);
	cr_assert_eq(ferry_task_cancel(&s.t), FERRY_EINVAL);
}

Test(cancel, done_task_keeps_its_result, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct bt_now_task n;

	bt_now_init(&n, 5);
	cr_assert_eq(ferry_call(r, &n.t), 5);
	cr_assert_eq(ferry_task_cancel(&n.t), 0);
	bt_sleep_ms(5);
	cr_assert_eq(ferry_task_wait(&n.t, 0), 5);
	ferry_runner_destroy(r);
}

/* Release of a long task: cancels, waits, and the memory may go at once. */
Test(cancel, release_frees_a_running_task, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	int64_t t0 = bt_now();

	for (int i = 0; i < 50; i++) {
		struct bt_sleep_task *s = malloc(sizeof(*s));

		bt_sleep_init(s, 10000 * BT_MS, 1);
		cr_assert_eq(ferry_task_submit(r, &s->t), 0);
		if (i % 2)
			bt_sleep_ms(1);	/* started, surely; else maybe not */
		cr_assert_eq(ferry_task_release(&s->t), FERRY_ECANCELED);
		free(s);
	}
	BT_ASSERT_ELAPSED(t0, 0, 3000);
	/* Release of a finished task returns its status. */
	{
		struct bt_now_task n;

		bt_now_init(&n, 11);
		cr_assert_eq(ferry_call(r, &n.t), 11);
		cr_assert_eq(ferry_task_release(&n.t), 11);
	}
	ferry_runner_destroy(r);
}
