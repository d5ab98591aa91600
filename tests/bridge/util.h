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
