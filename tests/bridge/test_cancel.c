/*
 * test_cancel.c - cancelling tasks: cancel against completion from a thread
 * that is not the waiter (each outcome forced, then a stress run that
 * asserts neither), cancel of a long task, release, and the edges (never
 * submitted, already done, cancelled twice).
 */
#include "util.h"

#include <sched.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------ */
/* Cancel against completion, each outcome forced.                       */

/*
 * A task waiting for bytes on a socket: it completes with 42 when they
 * come, FERRY_ECANCELED when its cancel hook cancels the recv first. With
 * ->hold set, its completion callback keeps the loop thread (the recv's
 * result in hand, the task not yet done) until the test releases it.
 */
struct recv_task {
	struct ferry_task t;
	struct ferry_op op;
	int fd;
	char buf[8];
	bool hold;
	atomic_int started, cancels, holding, release;
};

static void recv_task_done(struct ferry_op *op, int res, unsigned flags)
{
	struct recv_task *rt = container_of(op, struct recv_task, op);
	int64_t end = bt_now() + 10000 * BT_MS;

	if (rt->hold) {
		atomic_store(&rt->holding, 1);
		while (!atomic_load(&rt->release) && bt_now() < end)
			sched_yield();
	}
	ferry_task_complete(&rt->t, res > 0 ? 42 :
				    res == -ECANCELED ? FERRY_ECANCELED : res);
}

static void recv_task_start(struct ferry_task *t)
{
	struct recv_task *rt = container_of(t, struct recv_task, t);
	struct ferry_loop *loop = ferry_runner_loop(ferry_task_runner(t));
	int rc;

	rt->op.fn = recv_task_done;
	rc = ferry_op_recv(loop, &rt->op, rt->fd, rt->buf, sizeof(rt->buf), 0);
	atomic_store(&rt->started, 1);
	if (rc < 0)
		ferry_task_complete(t, rc);
}

static void recv_task_cancel(struct ferry_task *t)
{
	struct recv_task *rt = container_of(t, struct recv_task, t);

	atomic_fetch_add(&rt->cancels, 1);
	ferry_op_cancel(ferry_runner_loop(ferry_task_runner(t)), &rt->op);
}

/* Fresh heap memory, freed as soon as the contract allows: a late touch
 * by the bridge is a use-after-free for ASan. */
static struct recv_task *recv_task_new(int fd, bool hold)
{
	struct recv_task *rt = calloc(1, sizeof(*rt));

	cr_assert_not_null(rt);
	rt->t.start = recv_task_start;
	rt->t.cancel = recv_task_cancel;
	rt->fd = fd;
	rt->hold = hold;
	return rt;
}

/* Wait (bounded) for a flag the loop thread sets. */
static void await_flag(atomic_int *flag, const char *what)
{
	int64_t end = bt_now() + 5000 * BT_MS;

	while (!atomic_load(flag) && bt_now() < end)
		bt_sleep_ms(1);
	cr_assert(atomic_load(flag), "timed out waiting until %s", what);
}

struct cancel_call {
	struct ferry_task *t;
	int rc;
};

static void *cancel_call_main(void *arg)
{
	struct cancel_call *c = arg;

	c->rc = ferry_task_cancel(c->t);
	return NULL;
}

/* ferry_task_cancel from a third thread, neither waiter nor loop. */
static int cancel_from_thread(struct ferry_task *t)
{
	struct cancel_call c = { .t = t };
	pthread_t th;

	cr_assert_eq(pthread_create(&th, NULL, cancel_call_main, &c), 0);
	pthread_join(th, NULL);
	return c.rc;
}

Test(cancel, cancel_before_completion, .timeout = 20)
{
	struct ferry_runner *r = bt_runner();
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	for (int i = 0; i < 20; i++) {
		struct recv_task *rt = recv_task_new(sv[0], false);

		cr_assert_eq(ferry_task_submit(r, &rt->t), 0);
		await_flag(&rt->started, "the task started");
		/* No byte can come before the cancel: it must win. */
		cr_assert_eq(cancel_from_thread(&rt->t), 0);
		cr_assert_eq(ferry_task_wait(&rt->t, 5000 * BT_MS), FERRY_ECANCELED,
			     "iteration %d", i);
		cr_assert_eq(atomic_load(&rt->cancels), 1);
		free(rt);
	}
	ferry_runner_destroy(r);
	close(sv[0]);
	close(sv[1]);
}

Test(cancel, completion_before_cancel, .timeout = 20)
{
	struct ferry_runner *r = bt_runner();
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	for (int i = 0; i < 20; i++) {
		struct recv_task *rt = recv_task_new(sv[0], true);

		cr_assert_eq(ferry_task_submit(r, &rt->t), 0);
		await_flag(&rt->started, "the task started");
		cr_assert_eq(write(sv[1], "x", 1), 1);
		/* The recv has its byte; the loop holds the result, the task
		 * is not done yet: the cancel lands now, and must lose. */
		await_flag(&rt->holding, "the recv completed");
		cr_assert_eq(cancel_from_thread(&rt->t), 0);
		cr_assert(!ferry_task_done(&rt->t));
		atomic_store(&rt->release, 1);
		cr_assert_eq(ferry_task_wait(&rt->t, 5000 * BT_MS), 42,
			     "iteration %d", i);
		cr_assert_eq(atomic_load(&rt->cancels), 0,
			     "the cancel hook ran for a task already done");
		cr_assert_eq(ferry_task_cancel(&rt->t), 0);
		cr_assert_eq(ferry_task_wait(&rt->t, 0), 42, "the result changed");
		free(rt);
	}
	ferry_runner_destroy(r);
	close(sv[0]);
	close(sv[1]);
}

/* ------------------------------------------------------------------ */
/* Cancel racing completion, unforced: whichever side wins, one result,  */
/* at most one cancel hook, no late touch of freed memory. Which side    */
/* won is logged, never asserted: that is the scheduler's business.      */

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
	cr_assert_eq(real + cancelled, iterations);
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

	/* The sleep outlasts the test's timeout: only the cancel can end it,
	 * so getting FERRY_ECANCELED within the wait's bound is the check;
	 * no upper bound on how fast (a loaded machine may be slow). */
	bt_sleep_init(&s, 3600000 * BT_MS, 1);
	t0 = bt_now();
	cr_assert_eq(ferry_task_submit(r, &s.t), 0);
	cr_assert_eq(pthread_create(&th, NULL, cancel_later_main, &c), 0);
	cr_assert_eq(ferry_task_wait(&s.t, 8000 * BT_MS), FERRY_ECANCELED);
	cr_assert_geq(bt_now() - t0, 30 * BT_MS, "completed before the cancel");
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

	for (int i = 0; i < 50; i++) {
		struct bt_sleep_task *s = malloc(sizeof(*s));

		/* Outlasts the test's timeout: release must cancel it. */
		bt_sleep_init(s, 3600000 * BT_MS, 1);
		cr_assert_eq(ferry_task_submit(r, &s->t), 0);
		if (i % 2)
			bt_sleep_ms(1);	/* started, surely; else maybe not */
		cr_assert_eq(ferry_task_release(&s->t), FERRY_ECANCELED);
		free(s);
	}
	/* Release of a finished task returns its status. */
	{
		struct bt_now_task n;

		bt_now_init(&n, 11);
		cr_assert_eq(ferry_call(r, &n.t), 11);
		cr_assert_eq(ferry_task_release(&n.t), 11);
	}
	ferry_runner_destroy(r);
}
