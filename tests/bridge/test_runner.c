/*
 * test_runner.c - the runner's life: lazy and explicit start, several
 * runners in one process, close (idempotent, concurrent, before start),
 * submit after close, cleanups in reverse order on the loop thread, and
 * the blocking calls refused on the loop thread.
 */
#include "util.h"

#include <fcntl.h>

static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

Test(runner, lazy_start_on_first_submit, .timeout = 10)
{
	int base = bt_thread_count();
	struct ferry_runner *r = NULL;
	struct bt_now_task n;

	cr_assert_eq(ferry_runner_create(&r, NULL), 0);
	bt_sleep_ms(10);
	cr_assert_eq(bt_thread_count(), base, "create must not start a thread");
	bt_now_init(&n, 1);
	if (ferry_task_submit(r, &n.t) == FERRY_EUNAVAIL) {
		ferry_runner_destroy(r);
		cr_skip_test("io_uring unavailable");
	}
	cr_assert_eq(ferry_task_wait(&n.t, -1), 1);
	cr_assert_gt(bt_thread_count(), base);
	cr_assert_neq(n.ran_on, bt_gettid());
	cr_assert_str_eq(ferry_runner_why(r), "");
	ferry_runner_destroy(r);
	cr_assert_eq(bt_thread_count_settles(base, 1000), base,
		     "threads left after destroy");
}

Test(runner, explicit_start_is_idempotent, .timeout = 10)
{
	int base = bt_thread_count();
	struct ferry_runner *r = bt_runner();
	int after;

	after = bt_thread_count();
	cr_assert_gt(after, base);
	cr_assert_eq(ferry_runner_start(r), 0);
	cr_assert_eq(ferry_runner_start(r), 0);
	cr_assert_eq(bt_thread_count(), after);
	cr_assert_neq(bt_loop_tid(r), bt_gettid());
	ferry_runner_destroy(r);
	cr_assert_eq(bt_thread_count_settles(base, 1000), base);
}

/* ------------------------------------------------------------------ */
/* Several runners; a task on one runner's loop may call another runner. */

struct relay {
	struct ferry_task t;
	struct ferry_runner *other;
	struct bt_now_task inner;
	int inner_rc;
};

static void relay_start(struct ferry_task *t)
{
	struct relay *rl = container_of(t, struct relay, t);

	bt_now_init(&rl->inner, 31);
	rl->inner_rc = ferry_call(rl->other, &rl->inner.t);
	ferry_task_complete(t, 0);
}

struct multi_caller {
	struct ferry_runner **rs;
	int nr, calls, bad;
};

static void *multi_caller_main(void *arg)
{
	struct multi_caller *m = arg;
	struct bt_now_task n;

	for (int i = 0; i < m->calls; i++) {
		bt_now_init(&n, i);
		if (ferry_call(m->rs[i % m->nr], &n.t) != i)
			m->bad++;
	}
	return NULL;
}

Test(runner, several_runners_in_one_process, .timeout = 30)
{
	enum { NR = 4, NT = 6 };
	int base = bt_thread_count();
	struct ferry_runner *rs[NR];
	pid_t tids[NR];
	struct multi_caller mc[NT];
	pthread_t th[NT];
	struct relay rl = { .t.start = relay_start };

	for (int i = 0; i < NR; i++) {
		rs[i] = bt_runner();
		tids[i] = bt_loop_tid(rs[i]);
		for (int j = 0; j < i; j++)
			cr_assert_neq(tids[i], tids[j], "runners share a thread");
	}
	for (int k = 0; k < NT; k++) {
		mc[k] = (struct multi_caller){ .rs = rs, .nr = NR,
					       .calls = bt_scaled(4000) };
		cr_assert_eq(pthread_create(&th[k], NULL, multi_caller_main,
					    &mc[k]), 0);
	}
	for (int k = 0; k < NT; k++) {
		pthread_join(th[k], NULL);
		cr_assert_eq(mc[k].bad, 0);
	}
	/* A blocking call from runner 0's loop onto runner 1 is fine. */
	rl.other = rs[1];
	cr_assert_eq(ferry_call(rs[0], &rl.t), 0);
	cr_assert_eq(rl.inner_rc, 31, "cross-runner call: %s",
		     ferry_strerrorname(rl.inner_rc));
	cr_assert_eq(rl.inner.ran_on, tids[1]);
	/* Closing one leaves the others working. */
	cr_assert_eq(ferry_runner_close(rs[2]), 0);
	for (int i = 0; i < NR; i++) {
		struct bt_now_task n;

		bt_now_init(&n, 3);
		cr_assert_eq(ferry_call(rs[i], &n.t), i == 2 ? FERRY_ECLOSED : 3);
	}
	for (int i = 0; i < NR; i++)
		ferry_runner_destroy(rs[i]);
	cr_assert_eq(bt_thread_count_settles(base, 1000), base);
}

/* ------------------------------------------------------------------ */
/* Close                                                                 */

struct closer {
	struct ferry_runner *r;
	atomic_int *go;
	int rc;
};

static void *closer_main(void *arg)
{
	struct closer *c = arg;

	while (!atomic_load(c->go))
		sched_yield();	/* 2 CPUs: spinning closers starve the rest */
	c->rc = ferry_runner_close(c->r);
	return NULL;
}

Test(runner, close_idempotent_and_concurrent, .timeout = 20)
{
	enum { NC = 8 };
	int base = bt_thread_count();
	struct ferry_runner *r = bt_runner();
	struct closer c[NC];
	pthread_t th[NC];
	atomic_int go = 0;
	struct bt_now_task n;
	struct ferry_cleanup cl = { 0 };
	int64_t t0;

	for (int k = 0; k < NC; k++) {
		c[k] = (struct closer){ .r = r, .go = &go, .rc = 1 };
		cr_assert_eq(pthread_create(&th[k], NULL, closer_main, &c[k]), 0);
	}
	t0 = bt_now();
	atomic_store(&go, 1);
	for (int k = 0; k < NC; k++) {
		pthread_join(th[k], NULL);
		cr_assert_eq(c[k].rc, 0, "closer %d: %s", k,
			     ferry_strerrorname(c[k].rc));
	}
	/* A hang guard, not a speed check (a loaded CI box is slow). */
	BT_ASSERT_ELAPSED(t0, 0, 15000);
	/* Every close returned once it was done: the loop thread is gone. */
	cr_assert_eq(bt_thread_count_settles(base, 1000), base);
	cr_assert_eq(ferry_runner_close(r), 0);
	bt_now_init(&n, 1);
	cr_assert_eq(ferry_task_submit(r, &n.t), FERRY_ECLOSED);
	cr_assert_eq(ferry_call(r, &n.t), FERRY_ECLOSED);
	cr_assert_eq(ferry_runner_start(r), FERRY_ECLOSED);
	cr_assert_eq(ferry_runner_on_close(r, &cl), FERRY_ECLOSED);
	cr_assert_eq(bt_thread_count(), base);
	ferry_runner_destroy(r);
}

Test(runner, close_before_start, .timeout = 10)
{
	int base = bt_thread_count();
	struct ferry_runner *r = NULL;
	struct bt_now_task n;

	cr_assert_eq(ferry_runner_create(&r, NULL), 0);
	cr_assert_eq(ferry_runner_close(r), 0);
	cr_assert_eq(ferry_runner_close(r), 0);
	bt_now_init(&n, 1);
	cr_assert_eq(ferry_task_submit(r, &n.t), FERRY_ECLOSED);
	cr_assert_eq(ferry_runner_start(r), FERRY_ECLOSED);
	cr_assert_eq(bt_thread_count(), base, "close must not start a thread");
	ferry_runner_destroy(r);
	ferry_runner_destroy(NULL);
}

Test(runner, destroy_without_close_or_start, .timeout = 10)
{
	struct ferry_runner *r = NULL;

	cr_assert_eq(ferry_runner_create(&r, NULL), 0);
	ferry_runner_destroy(r);
	r = bt_runner();
	ferry_runner_destroy(r);
}

Test(runner, create_destroy_cycles_leak_nothing, .timeout = 30)
{
	int threads = bt_thread_count();
	int fds = fd_count();

	for (int i = 0; i < 30; i++) {
		struct ferry_runner *r = bt_runner();
		struct bt_sleep_task s;

		bt_sleep_init(&s, 1 * BT_MS, i);
		cr_assert_eq(ferry_call(r, &s.t), i);
		if (i % 3 == 0) {
			/* Leave a long task in flight: close cancels it. */
			bt_sleep_init(&s, 10000 * BT_MS, 1);
			cr_assert_eq(ferry_task_submit(r, &s.t), 0);
		}
		cr_assert_eq(ferry_runner_close(r), 0);
		if (i % 3 == 0) {
			int rc = ferry_task_wait(&s.t, 0);

			/* Cancelled if it had started, closed if not. */
			cr_assert(rc == FERRY_ECANCELED || rc == FERRY_ECLOSED,
				  "%s", ferry_strerrorname(rc));
		}
		ferry_runner_destroy(r);
	}
	cr_assert_eq(bt_thread_count_settles(threads, 1000), threads);
	cr_assert_eq(fd_count(), fds, "descriptors leaked");
}

Test(runner, start_fails_cleanly_without_io_uring, .timeout = 10)
{
	/* io_uring and nothing else: by default the loop would run on
	 * epoll instead (ferry/loop.h). */
	struct ferry_runner_opts o = { .loop.backend = FERRY_BACKEND_IO_URING };
	struct ferry_runner *r = NULL;
	struct bt_now_task n;
	int base = bt_thread_count();

	setenv("FERRY_IO_URING", "off", 1);
	cr_assert_eq(ferry_runner_create(&r, &o), 0);
	cr_assert_eq(ferry_runner_start(r), FERRY_EUNAVAIL);
	cr_assert_neq(ferry_runner_why(r)[0], '\0', "why is empty");
	bt_now_init(&n, 1);
	cr_assert_eq(ferry_task_submit(r, &n.t), FERRY_EUNAVAIL);
	cr_assert_eq(ferry_runner_close(r), 0);
	ferry_runner_destroy(r);
	unsetenv("FERRY_IO_URING");
	cr_assert_eq(bt_thread_count_settles(base, 1000), base);
}

/* ------------------------------------------------------------------ */
/* Cleanups                                                              */

struct order {
	int seq[16];
	int n;
	pid_t tid[16];
	struct ferry_op op;	/* started by the last cleanup */
	struct ferry_runner *r;
	int op_done;
	int op_res;
};

struct my_cleanup {
	struct ferry_cleanup c;
	struct order *o;
	int id;
	int start_op;
};

static void op_seen(struct ferry_op *op, int res, unsigned flags)
{
	struct order *o = container_of(op, struct order, op);

	(void)flags;
	o->op_done++;
	o->op_res = res;
}

static void cleanup_fn(struct ferry_cleanup *c)
{
	struct my_cleanup *m = container_of(c, struct my_cleanup, c);
	struct order *o = m->o;

	if (o->n < 16) {
		o->tid[o->n] = bt_gettid();
		o->seq[o->n++] = m->id;
	}
	if (m->start_op) {
		o->op.fn = op_seen;
		if (ferry_op_timeout(ferry_runner_loop(o->r), &o->op,
				     20 * BT_MS) < 0)
			o->op_done = -1;
	}
}

/* Registers a cleanup from the loop thread. */
struct reg_task {
	struct ferry_task t;
	struct my_cleanup *mc;
};

static void reg_start(struct ferry_task *t)
{
	struct reg_task *rt = container_of(t, struct reg_task, t);

	ferry_task_complete(t, ferry_runner_on_close(ferry_task_runner(t),
						     &rt->mc->c));
}

Test(runner, cleanups_run_in_reverse_order_on_loop_thread, .timeout = 10)
{
	struct ferry_runner *r = NULL;
	struct order o = { 0 };
	struct my_cleanup mc[6];
	struct reg_task rt = { .t.start = reg_start, .mc = &mc[5] };
	pid_t loop_tid;
	int want[] = { 6, 5, 4, 2, 1 };

	for (int i = 0; i < 6; i++)
		mc[i] = (struct my_cleanup){ .c.fn = cleanup_fn, .o = &o,
					     .id = i + 1, .start_op = i == 0 };
	cr_assert_eq(ferry_runner_create(&r, NULL), 0);
	o.r = r;
	/* Before start, after start, and from the loop thread. */
	cr_assert_eq(ferry_runner_on_close(r, &mc[0].c), 0);
	cr_assert_eq(ferry_runner_on_close(r, &mc[1].c), 0);
	if (ferry_runner_start(r) == FERRY_EUNAVAIL) {
		ferry_runner_destroy(r);
		cr_skip_test("io_uring unavailable");
	}
	cr_assert_eq(ferry_runner_on_close(r, &mc[2].c), 0);
	cr_assert_eq(ferry_runner_on_close(r, &mc[3].c), 0);
	cr_assert_eq(ferry_runner_on_close(r, &mc[4].c), 0);
	cr_assert_eq(ferry_call(r, &rt.t), 0);
	loop_tid = bt_loop_tid(r);
	/* #3 is closed before its runner. */
	cr_assert_eq(ferry_runner_cancel_cleanup(r, &mc[2].c), 0);
	cr_assert_eq(ferry_runner_cancel_cleanup(r, &mc[2].c), -ENOENT);
	cr_assert_eq(o.n, 0, "a cleanup ran before close");
	cr_assert_eq(ferry_runner_close(r), 0);
	cr_assert_eq(o.n, 5, "%d cleanups ran", o.n);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(o.seq[i], want[i], "cleanup #%d ran at position %d",
			     o.seq[i], i);
		cr_assert_eq(o.tid[i], loop_tid, "cleanup off the loop thread");
	}
	/* The op the first-registered cleanup started was reaped before
	 * the loop went away. */
	cr_assert_eq(o.op_done, 1, "op completions: %d", o.op_done);
	cr_assert(o.op_res == -ETIME || o.op_res == -ECANCELED,
		  "op res %d", o.op_res);
	cr_assert_eq(ferry_runner_close(r), 0);
	cr_assert_eq(o.n, 5, "cleanups ran twice");
	cr_assert_eq(ferry_runner_cancel_cleanup(r, &mc[0].c), -ENOENT);
	ferry_runner_destroy(r);
}

/* ------------------------------------------------------------------ */
/* Blocking calls made on the loop thread are refused.                   */

struct blocker {
	struct ferry_task t;
	struct bt_sleep_task inner;
	struct bt_now_task inner2;
	int submit_rc, wait_rc, call_rc, all_rc, any_rc, release_rc, close_rc;
};

static void blocker_start(struct ferry_task *t)
{
	struct blocker *b = container_of(t, struct blocker, t);
	struct ferry_runner *r = ferry_task_runner(t);
	struct ferry_task *set[1] = { &b->inner.t };

	bt_sleep_init(&b->inner, 20 * BT_MS, 8);
	b->submit_rc = ferry_task_submit(r, &b->inner.t);
	b->wait_rc = ferry_task_wait(&b->inner.t, -1);
	b->all_rc = ferry_task_wait_all(set, 1, -1);
	b->any_rc = ferry_task_wait_any(set, 1, -1);
	b->release_rc = ferry_task_release(&b->inner.t);
	bt_now_init(&b->inner2, 9);
	b->call_rc = ferry_call(r, &b->inner2.t);
	b->close_rc = ferry_runner_close(r);
	ferry_task_complete(t, 0);
}

Test(runner, blocking_calls_on_loop_thread_are_refused, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct blocker b = { .t.start = blocker_start };
	struct bt_now_task n;
	int64_t t0 = bt_now();

	/* A blocking call that was not refused would deadlock the loop: the
	 * test's timeout catches that. This bound is only a hang guard. */
	cr_assert_eq(ferry_call(r, &b.t), 0);
	BT_ASSERT_ELAPSED(t0, 0, 8000);
	cr_assert_eq(b.submit_rc, 0, "submit from the loop thread: %s",
		     ferry_strerrorname(b.submit_rc));
	cr_assert_eq(b.wait_rc, FERRY_EDEADLOCK);
	cr_assert_eq(b.all_rc, FERRY_EDEADLOCK);
	cr_assert_eq(b.any_rc, FERRY_EDEADLOCK);
	cr_assert_eq(b.release_rc, FERRY_EDEADLOCK);
	cr_assert_eq(b.call_rc, FERRY_EDEADLOCK);
	cr_assert_eq(b.close_rc, FERRY_EDEADLOCK, "close on the loop thread: %s",
		     ferry_strerrorname(b.close_rc));
	/* The runner is still alive and the inner task finishes normally. */
	cr_assert_eq(ferry_task_wait(&b.inner.t, 5000 * BT_MS), 8);
	bt_now_init(&n, 2);
	cr_assert_eq(ferry_call(r, &n.t), 2);
	ferry_runner_close(r);
	ferry_runner_destroy(r);
}
