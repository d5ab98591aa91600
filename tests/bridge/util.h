/*
 * tests/bridge/util.h - helpers shared by the bridge test programs.
 *
 * The bridge is tested through its public header only, against a real
 * runner (its own loop thread and ring). Loop-side helpers here are plain
 * tasks: a task that completes at once, one that waits on a timeout op and
 * honours its cancel hook, and small thread utilities. Helpers assert on
 * failure (criterion), so a test reads as the sequence of things it checks.
 */
#ifndef FERRY_TEST_BRIDGE_UTIL_H
#define FERRY_TEST_BRIDGE_UTIL_H

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ferry/bridge.h"
#include "ferry/error.h"
#include "ferry/loop.h"
#include "ferry/timer.h"

#define BT_MS 1000000ll	/* nanoseconds per millisecond */

#ifndef container_of
#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))
#endif

/* Sanitizers make every call 5-50x slower; scale the big loops down so the
 * suite stays quick on 2 cores. FERRY_TEST_SCALE (a divisor) overrides. */
#if defined(__SANITIZE_THREAD__)
#define BT_SCALE_DEFAULT 4
#elif defined(__SANITIZE_ADDRESS__)
#define BT_SCALE_DEFAULT 2
#else
#define BT_SCALE_DEFAULT 1
#endif

static inline int bt_scaled(int n)
{
	const char *e = getenv("FERRY_TEST_SCALE");
	int div = e && atoi(e) > 0 ? atoi(e) : BT_SCALE_DEFAULT;
	int v = n / div;

	return v > 0 ? v : 1;
}

static inline pid_t bt_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static inline int64_t bt_now(void)
{
	return (int64_t)ferry_time_now();
}

static inline void bt_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Threads of this process (for lazy start and thread leak checks). */
static inline int bt_thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d, "opendir /proc/self/task: %s", strerror(errno));
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Thread count reaching @want within @ms (joined threads vanish from
 * /proc a moment after pthread_join on some kernels). */
static inline int bt_thread_count_settles(int want, int ms)
{
	int64_t end = bt_now() + ms * BT_MS;
	int n;

	while ((n = bt_thread_count()) != want && bt_now() < end)
		bt_sleep_ms(1);
	return n;
}

/* A runner with defaults, or skip when io_uring is unavailable here (the
 * runtime's unavail suite covers that case on purpose). */
static inline struct ferry_runner *bt_runner_opts(const struct ferry_runner_opts *o)
{
	struct ferry_runner *r = NULL;
	int rc = ferry_runner_create(&r, o);

	cr_assert_eq(rc, 0, "ferry_runner_create: %s", ferry_strerrorname(rc));
	cr_assert_not_null(r);
	rc = ferry_runner_start(r);
	if (rc == FERRY_EUNAVAIL) {
		ferry_runner_destroy(r);
		cr_skip_test("io_uring unavailable");
	}
	cr_assert_eq(rc, 0, "ferry_runner_start: %s (%s)",
		     ferry_strerrorname(rc), ferry_runner_why(r));
	return r;
}

static inline struct ferry_runner *bt_runner(void)
{
	return bt_runner_opts(NULL);
}

/* ------------------------------------------------------------------ */
/* A task that completes inside start() with a fixed status.            */

struct bt_now_task {
	struct ferry_task t;
	int status;
	pid_t ran_on;
};

static inline void bt_now_start(struct ferry_task *t)
{
	struct bt_now_task *n = container_of(t, struct bt_now_task, t);

	n->ran_on = bt_gettid();
	ferry_task_complete(t, n->status);
}

static inline void bt_now_init(struct bt_now_task *n, int status)
{
	memset(n, 0, sizeof(*n));
	n->t.start = bt_now_start;
	n->status = status;
}

/* The loop thread's tid, learnt from a task. */
static inline pid_t bt_loop_tid(struct ferry_runner *r)
{
	struct bt_now_task n;

	bt_now_init(&n, 7);
	cr_assert_eq(ferry_call(r, &n.t), 7);
	return n.ran_on;
}

/* ------------------------------------------------------------------ */
/* A task that waits on a timeout op of @ns and completes with @status;  */
/* its cancel hook cancels the op and the task completes FERRY_ECANCELED. */

struct bt_sleep_task {
	struct ferry_task t;
	struct ferry_op op;
	uint64_t ns;
	int status;
	atomic_int started, cancels;	/* read by the test thread */
	int submit_err;			/* ferry_op_timeout's error, if any */
};

static inline void bt_sleep_done(struct ferry_op *op, int res, unsigned flags)
{
	struct bt_sleep_task *s = container_of(op, struct bt_sleep_task, op);

	(void)flags;
	/* -ETIME: the timeout ran out; anything else: it was cancelled. */
	ferry_task_complete(&s->t, res == -ETIME ? s->status : FERRY_ECANCELED);
}

static inline void bt_sleep_start(struct ferry_task *t)
{
	struct bt_sleep_task *s = container_of(t, struct bt_sleep_task, t);
	struct ferry_loop *loop = ferry_runner_loop(ferry_task_runner(t));
	int rc;

	atomic_fetch_add(&s->started, 1);
	s->op.fn = bt_sleep_done;
	rc = ferry_op_timeout(loop, &s->op, s->ns);
	if (rc < 0) {
		s->submit_err = rc;
		ferry_task_complete(t, rc);
	}
}

static inline void bt_sleep_cancel(struct ferry_task *t)
{
	struct bt_sleep_task *s = container_of(t, struct bt_sleep_task, t);

	atomic_fetch_add(&s->cancels, 1);
	ferry_op_cancel(ferry_runner_loop(ferry_task_runner(t)), &s->op);
}

static inline void bt_sleep_init(struct bt_sleep_task *s, uint64_t ns,
				 int status)
{
	memset(s, 0, sizeof(*s));
	s->t.start = bt_sleep_start;
	s->t.cancel = bt_sleep_cancel;
	s->ns = ns;
	s->status = status;
}

/* ------------------------------------------------------------------ */
/* A gate: a task that stays pending until the test opens it. Use it      */
/* wherever a wait must time out, so the outcome does not depend on how   */
/* fast a real timer runs against the test thread. Opening is a task      */
/* (bt_gate_open) whose start completes the gate on the loop thread; its  */
/* cancel hook completes it with FERRY_ECANCELED.                         */

struct bt_gate {
	struct ferry_task t;
	atomic_int started;	/* starts seen; read by the test thread */
	int done;		/* loop-only: completed in this run */
	int opened;		/* test-thread only: bt_gate_open calls */
};

static inline void bt_gate_start(struct ferry_task *t)
{
	struct bt_gate *g = container_of(t, struct bt_gate, t);

	g->done = 0;
	/* seq_cst: the test thread polls it before opening the gate. */
	atomic_fetch_add(&g->started, 1);
}

static inline void bt_gate_finish(struct bt_gate *g, int status)
{
	if (g->done)
		return;
	g->done = 1;
	ferry_task_complete(&g->t, status);
}

static inline void bt_gate_cancel(struct ferry_task *t)
{
	bt_gate_finish(container_of(t, struct bt_gate, t), FERRY_ECANCELED);
}

static inline void bt_gate_init(struct bt_gate *g)
{
	memset(g, 0, sizeof(*g));
	g->t.start = bt_gate_start;
	g->t.cancel = bt_gate_cancel;
}

struct bt_gate_opener {
	struct ferry_task t;
	struct ferry_op op;
	struct bt_gate *g;
	int status;
	uint64_t ns;		/* open after a timeout op of ns (0: at once) */
};

static inline void bt_gate_opener_done(struct ferry_op *op, int res,
				       unsigned flags)
{
	struct bt_gate_opener *o = container_of(op, struct bt_gate_opener, op);

	(void)flags;
	if (res != -ETIME) {	/* cancelled: the runner is closing */
		ferry_task_complete(&o->t, FERRY_ECANCELED);
		return;
	}
	bt_gate_finish(o->g, o->status);
	ferry_task_complete(&o->t, 0);
}

static inline void bt_gate_opener_start(struct ferry_task *t)
{
	struct bt_gate_opener *o = container_of(t, struct bt_gate_opener, t);
	int rc;

	if (o->ns) {
		o->op.fn = bt_gate_opener_done;
		rc = ferry_op_timeout(ferry_runner_loop(ferry_task_runner(t)),
				      &o->op, o->ns);
		if (rc < 0)
			ferry_task_complete(t, rc);
		return;
	}
	bt_gate_finish(o->g, o->status);
	ferry_task_complete(t, 0);
}

static inline void bt_gate_opener_cancel(struct ferry_task *t)
{
	struct bt_gate_opener *o = container_of(t, struct bt_gate_opener, t);

	ferry_op_cancel(ferry_runner_loop(ferry_task_runner(t)), &o->op);
}

/* Wait (bounded) until this run of @g started, so that an opener cannot
 * overtake a (re)submitted gate; counts one opening. Test thread. */
static inline void bt_gate_wait_started(struct bt_gate *g)
{
	int64_t end = bt_now() + 10000 * BT_MS;

	while (atomic_load(&g->started) <= g->opened && bt_now() < end)
		bt_sleep_ms(1);
	cr_assert_gt(atomic_load(&g->started), g->opened,
		     "the gate never started");
	g->opened++;
}

/* Submit @o, which opens @g with @status @ns after it starts (a real
 * timer: use it where the test must sleep in a wait and be woken, after
 * the outcome of every deadline was already forced). Wait on @o->t. */
static inline void bt_gate_open_after(struct ferry_runner *r,
				      struct bt_gate_opener *o,
				      struct bt_gate *g, int status,
				      uint64_t ns)
{
	*o = (struct bt_gate_opener){ .t.start = bt_gate_opener_start,
				      .t.cancel = bt_gate_opener_cancel,
				      .g = g, .status = status, .ns = ns };
	bt_gate_wait_started(g);
	cr_assert_eq(ferry_task_submit(r, &o->t), 0);
}

/* Complete @g with @status (on the loop thread) and wait until that is
 * done: after this, ferry_task_wait(&g->t, 0) returns @status. The gate
 * must have been submitted to @r; waits (bounded) until this run of it
 * started, so the opener cannot overtake a resubmitted gate. */
static inline void bt_gate_open(struct ferry_runner *r, struct bt_gate *g,
				int status)
{
	struct bt_gate_opener o = { .t.start = bt_gate_opener_start, .g = g,
				    .status = status };

	bt_gate_wait_started(g);
	cr_assert_eq(ferry_call(r, &o.t), 0);
	cr_assert(ferry_task_done(&g->t));
}

/* Waits for @t and checks the time it took against [@min_ms, @max_ms]. */
#define BT_ASSERT_ELAPSED(t0, min_ms, max_ms)					\
	do {									\
		int64_t bt__el = bt_now() - (t0);				\
		cr_assert_geq(bt__el, (int64_t)(min_ms) * BT_MS,		\
			      "took %.3f ms, expected >= %d ms",		\
			      bt__el / 1e6, (int)(min_ms));			\
		cr_assert_leq(bt__el, (int64_t)(max_ms) * BT_MS,		\
			      "took %.3f ms, expected <= %d ms",		\
			      bt__el / 1e6, (int)(max_ms));			\
	} while (0)

#endif /* FERRY_TEST_BRIDGE_UTIL_H */
