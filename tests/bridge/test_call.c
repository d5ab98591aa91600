/*
 * test_call.c - calls and futures: many threads calling at once with every
 * result checked, tasks that finish later from ring ops and timers, wait
 * deadlines and polling, wait_all and wait_any.
 */
#include "util.h"

#include <sys/socket.h>

/* ------------------------------------------------------------------ */
/* Many threads x many calls: none lost, none duplicated, none swapped.  */

enum { MANY_THREADS = 64, MANY_CALLS = 2000 };

struct tally {
	int per_thread;
	pid_t loop_tid;
	/* Loop-side only: written by start() on the loop thread, read by the
	 * test after every call returned (the futures order it). */
	uint8_t *seen;			/* [thread][seq] */
	int off_loop;			/* starts that ran off the loop thread */
};

struct calc_task {
	struct ferry_task t;
	struct tally *tally;
	int thread, seq;
	int64_t value;			/* written on the loop */
};

/* Mixes thread and sequence number so a swapped result is caught. */
static int64_t calc(int thread, int seq)
{
	return (int64_t)thread * 1000003 + (int64_t)seq * 7 + 11;
}

static void calc_start(struct ferry_task *t)
{
	struct calc_task *c = container_of(t, struct calc_task, t);
	struct tally *ty = c->tally;

	if (bt_gettid() != ty->loop_tid)
		ty->off_loop++;
	if (c->seq >= 0 && c->seq < ty->per_thread)
		ty->seen[(size_t)c->thread * ty->per_thread + c->seq]++;
	c->value = calc(c->thread, c->seq);
	/* The status carries the low bits too: both paths are checked. */
	ferry_task_complete(t, (int)(c->value & 0x3fffffff));
}

struct caller {
	struct ferry_runner *r;
	struct tally *tally;
	int thread;
	atomic_int *go;
	int bad_status, bad_value, errors;
	char first_err[160];
};

static void *caller_main(void *arg)
{
	struct caller *cl = arg;
	struct calc_task c;

	memset(&c, 0, sizeof(c));
	c.t.start = calc_start;
	c.tally = cl->tally;
	c.thread = cl->thread;
	while (!atomic_load(cl->go))
		;
	for (int i = 0; i < cl->tally->per_thread; i++) {
		int64_t want = calc(cl->thread, i);
		int rc;

		c.seq = i;
		c.value = -1;
		rc = ferry_call(cl->r, &c.t);
		if (rc < 0) {
			if (!cl->errors++)
				snprintf(cl->first_err, sizeof(cl->first_err),
					 "thread %d seq %d: %s", cl->thread, i,
					 ferry_strerrorname(rc));
			continue;
		}
		if (rc != (int)(want & 0x3fffffff) && !cl->bad_status++)
			snprintf(cl->first_err, sizeof(cl->first_err),
				 "thread %d seq %d: status %d, want %d",
				 cl->thread, i, rc, (int)(want & 0x3fffffff));
		if (c.value != want)
			cl->bad_value++;
	}
	return NULL;
}

static void many_callers(int nthreads, int per_thread)
{
	struct ferry_runner *r = bt_runner();
	struct tally ty = { .per_thread = per_thread };
	struct caller *cl = calloc((size_t)nthreads, sizeof(*cl));
	pthread_t *th = calloc((size_t)nthreads, sizeof(*th));
	atomic_int go = 0;

	ty.seen = calloc((size_t)nthreads * per_thread, 1);
	ty.loop_tid = bt_loop_tid(r);
	for (int k = 0; k < nthreads; k++) {
		cl[k] = (struct caller){ .r = r, .tally = &ty, .thread = k,
					 .go = &go };
		cr_assert_eq(pthread_create(&th[k], NULL, caller_main, &cl[k]), 0);
	}
	atomic_store(&go, 1);
	for (int k = 0; k < nthreads; k++)
		pthread_join(th[k], NULL);
	for (int k = 0; k < nthreads; k++) {
		cr_assert_eq(cl[k].errors + cl[k].bad_status, 0,
			     "%d errors, %d wrong statuses; first: %s",
			     cl[k].errors, cl[k].bad_status, cl[k].first_err);
		cr_assert_eq(cl[k].bad_value, 0,
			     "thread %d saw %d wrong values", k, cl[k].bad_value);
	}
	for (size_t i = 0; i < (size_t)nthreads * per_thread; i++)
		cr_assert_eq(ty.seen[i], 1, "thread %zu seq %zu ran %d times",
			     i / per_thread, i % per_thread, ty.seen[i]);
	cr_assert_eq(ty.off_loop, 0, "%d starts ran off the loop thread",
		     ty.off_loop);
	ferry_runner_destroy(r);
	free(ty.seen);
	free(cl);
	free(th);
}

Test(call, sixty_four_threads_thousands_of_calls, .timeout = 110)
{
	many_callers(MANY_THREADS, bt_scaled(MANY_CALLS));
}

Test(call, one_thread_sequential_calls, .timeout = 60)
{
	many_callers(1, bt_scaled(20000));
}

/* Same under a runner whose waiters never spin: every wait sleeps. */
Test(call, many_threads_without_spinning, .timeout = 60)
{
	struct ferry_runner_opts o = { .wait_spin_ns = FERRY_RUNNER_NO_SPIN };
	struct ferry_runner *r = bt_runner_opts(&o);
	struct tally ty = { .per_thread = bt_scaled(500) };
	struct caller cl[8];
	pthread_t th[8];
	atomic_int go = 1;

	ty.seen = calloc((size_t)8 * ty.per_thread, 1);
	ty.loop_tid = bt_loop_tid(r);
	for (int k = 0; k < 8; k++) {
		cl[k] = (struct caller){ .r = r, .tally = &ty, .thread = k,
					 .go = &go };
		cr_assert_eq(pthread_create(&th[k], NULL, caller_main, &cl[k]), 0);
	}
	for (int k = 0; k < 8; k++)
		pthread_join(th[k], NULL);
	for (int k = 0; k < 8; k++)
		cr_assert_eq(cl[k].errors + cl[k].bad_status + cl[k].bad_value,
			     0, "%s", cl[k].first_err);
	for (size_t i = 0; i < (size_t)8 * ty.per_thread; i++)
		cr_assert_eq(ty.seen[i], 1);
	ferry_runner_destroy(r);
	free(ty.seen);
}

/* One thread submits a burst of futures, then waits for each. */
Test(call, burst_of_futures_from_one_thread, .timeout = 30)
{
	struct ferry_runner *r = bt_runner();
	int n = 4000;
	struct tally ty = { .per_thread = n };
	struct calc_task *cs = calloc((size_t)n, sizeof(*cs));

	ty.seen = calloc((size_t)n, 1);
	ty.loop_tid = bt_loop_tid(r);
	for (int i = 0; i < n; i++) {
		cs[i].t.start = calc_start;
		cs[i].tally = &ty;
		cs[i].seq = i;
		cr_assert_eq(ferry_task_submit(r, &cs[i].t), 0);
	}
	for (int i = n - 1; i >= 0; i--) {
		cr_assert_eq(ferry_task_wait(&cs[i].t, -1),
			     (int)(calc(0, i) & 0x3fffffff));
		cr_assert(ferry_task_done(&cs[i].t));
	}
	/* A second wait returns the same result again. */
	cr_assert_eq(ferry_task_wait(&cs[7].t, 0), (int)(calc(0, 7) & 0x3fffffff));
	for (int i = 0; i < n; i++)
		cr_assert_eq(ty.seen[i], 1);
	ferry_runner_destroy(r);
	free(ty.seen);
	free(cs);
}

/* Resubmitting a task still in flight is refused; once done it may go again.
 * A gate keeps the task in flight until the test opens it. */
Test(call, submit_in_flight_task_is_refused, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct bt_gate g;
	struct ferry_task nostart = { 0 };

	bt_gate_init(&g);
	cr_assert_eq(ferry_task_submit(r, &g.t), 0);
	cr_assert_eq(ferry_task_submit(r, &g.t), FERRY_EINVAL);
	bt_gate_open(r, &g, 5);
	cr_assert_eq(ferry_task_wait(&g.t, -1), 5);
	cr_assert_eq(ferry_task_submit(r, &g.t), 0,
		     "a done task can be submitted again");
	bt_gate_open(r, &g, 6);
	cr_assert_eq(ferry_task_wait(&g.t, -1), 6);
	cr_assert_eq(atomic_load(&g.started), 2);
	cr_assert_eq(ferry_task_submit(r, &nostart), FERRY_EINVAL);
	ferry_runner_destroy(r);
}

/* Negative statuses pass through untouched. */
Test(call, errors_pass_through, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct bt_now_task n;
	int codes[] = { 0, 1, -ECONNRESET, FERRY_EPROTO, INT32_MAX, -4095 };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		bt_now_init(&n, codes[i]);
		cr_assert_eq(ferry_call(r, &n.t), codes[i]);
	}
	ferry_runner_destroy(r);
}

/* ------------------------------------------------------------------ */
/* Tasks are loop-side state machines: completion comes later, from     */
/* ring ops and timers.                                                  */

/* timeout op (5 ms) -> recv on a socketpair -> send a reply -> complete. */
struct machine {
	struct ferry_task t;
	struct ferry_op op;
	int fd;
	int step;
	char buf[64];
	int got;
	int steps_off_loop;
	pid_t loop_tid;
	const char *reply;
};

static void machine_step(struct ferry_op *op, int res, unsigned flags);

static void machine_fail(struct machine *m, int res)
{
	ferry_task_complete(&m->t, res < 0 ? res : FERRY_EPROTO);
}

static void machine_step(struct ferry_op *op, int res, unsigned flags)
{
	struct machine *m = container_of(op, struct machine, op);
	struct ferry_loop *loop = ferry_runner_loop(ferry_task_runner(&m->t));
	int rc = 0;

	(void)flags;
	if (bt_gettid() != m->loop_tid)
		m->steps_off_loop++;
	switch (m->step++) {
	case 0:		/* the pause is over */
		if (res != -ETIME)
			return machine_fail(m, res);
		rc = ferry_op_recv(loop, &m->op, m->fd, m->buf, sizeof(m->buf), 0);
		break;
	case 1:		/* the request arrived */
		if (res <= 0)
			return machine_fail(m, res);
		m->got = res;
		rc = ferry_op_send(loop, &m->op, m->fd, m->reply,
				   strlen(m->reply), MSG_NOSIGNAL);
		break;
	case 2:		/* the reply went out */
		if (res != (int)strlen(m->reply))
			return machine_fail(m, res);
		ferry_task_complete(&m->t, m->got);
		return;
	}
	if (rc < 0)
		machine_fail(m, rc);
}

static void machine_start(struct ferry_task *t)
{
	struct machine *m = container_of(t, struct machine, t);
	int rc;

	m->loop_tid = bt_gettid();
	m->op.fn = machine_step;
	rc = ferry_op_timeout(ferry_runner_loop(ferry_task_runner(t)), &m->op,
			      5 * BT_MS);
	if (rc < 0)
		ferry_task_complete(t, rc);
}

static void machine_cancel(struct ferry_task *t)
{
	struct machine *m = container_of(t, struct machine, t);

	ferry_op_cancel(ferry_runner_loop(ferry_task_runner(t)), &m->op);
}

Test(call, task_completes_from_ring_ops, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct machine m = { .t.start = machine_start,
			     .t.cancel = machine_cancel,
			     .reply = "pong, and then some" };
	char reply[64] = "";
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	m.fd = sv[0];
	cr_assert_eq(ferry_task_submit(r, &m.t), 0);
	/* The task is blocked on its recv: not done however long we wait. */
	cr_assert_eq(ferry_task_wait(&m.t, 30 * BT_MS), FERRY_ETIMEDOUT);
	cr_assert_not(ferry_task_done(&m.t));
	cr_assert_eq(write(sv[1], "ping!", 5), 5);
	cr_assert_eq(ferry_task_wait(&m.t, 5000 * BT_MS), 5);
	cr_assert_eq(memcmp(m.buf, "ping!", 5), 0);
	cr_assert_eq(read(sv[1], reply, sizeof(reply) - 1),
		     (ssize_t)strlen(m.reply));
	cr_assert_str_eq(reply, m.reply);
	cr_assert_eq(m.steps_off_loop, 0);
	close(sv[0]);
	close(sv[1]);
	ferry_runner_destroy(r);
}

/* A task driven by a loop timer: three ticks 10 ms apart, then done. */
struct ticker {
	struct ferry_task t;
	struct ferry_timer tm;
	int ticks;
	int64_t t0, last;
};

static void ticker_fire(struct ferry_timer *tm)
{
	struct ticker *k = container_of(tm, struct ticker, tm);
	struct ferry_loop *loop = ferry_runner_loop(ferry_task_runner(&k->t));

	k->last = bt_now();
	if (++k->ticks == 3) {
		ferry_task_complete(&k->t, 100 + k->ticks);
		return;
	}
	if (ferry_timer_start(loop, &k->tm, ferry_time_now() + 10 * BT_MS) < 0)
		ferry_task_complete(&k->t, -ENOMEM);
}

static void ticker_start(struct ferry_task *t)
{
	struct ticker *k = container_of(t, struct ticker, t);
	struct ferry_loop *loop = ferry_runner_loop(ferry_task_runner(t));

	k->t0 = bt_now();
	k->tm.fn = ticker_fire;
	if (ferry_timer_start(loop, &k->tm, ferry_time_now() + 10 * BT_MS) < 0)
		ferry_task_complete(t, -ENOMEM);
}

static void ticker_cancel(struct ferry_task *t)
{
	struct ticker *k = container_of(t, struct ticker, t);

	ferry_timer_stop(ferry_runner_loop(ferry_task_runner(t)), &k->tm);
	ferry_task_complete(t, FERRY_ECANCELED);
}

Test(call, task_completes_from_timer, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct ticker k = { .t.start = ticker_start, .t.cancel = ticker_cancel };
	int64_t t0 = bt_now();

	cr_assert_eq(ferry_call(r, &k.t), 103);
	BT_ASSERT_ELAPSED(t0, 30, 3000);
	cr_assert_geq(k.last - k.t0, 30 * BT_MS);
	cr_assert_eq(k.ticks, 3);
	ferry_runner_destroy(r);
}

/* Several threads wait on one task; all get the same result. */
struct waiter_arg {
	struct ferry_task *t;
	int rc;
};

static void *waiter_main(void *arg)
{
	struct waiter_arg *w = arg;

	w->rc = ferry_task_wait(w->t, 5000 * BT_MS);
	return NULL;
}

Test(call, many_waiters_on_one_task, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct bt_sleep_task s;
	struct waiter_arg w[8];
	pthread_t th[8];

	bt_sleep_init(&s, 50 * BT_MS, 77);
	cr_assert_eq(ferry_task_submit(r, &s.t), 0);
	for (int i = 0; i < 8; i++) {
		w[i] = (struct waiter_arg){ .t = &s.t };
		cr_assert_eq(pthread_create(&th[i], NULL, waiter_main, &w[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(w[i].rc, 77, "waiter %d got %s", i,
			     ferry_strerrorname(w[i].rc));
	}
	cr_assert_eq(ferry_task_wait(&s.t, -1), 77);
	ferry_runner_destroy(r);
}

/* ------------------------------------------------------------------ */
/* Wait deadlines and polling.                                          */

/* The deadline must expire: the gate stays pending until opened. A
 * deadline cannot fire early, so the elapsed time has a lower bound. */
Test(call, wait_deadline_then_full_wait, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct bt_gate g;
	int64_t t0;

	bt_gate_init(&g);
	t0 = bt_now();
	cr_assert_eq(ferry_task_submit(r, &g.t), 0);
	cr_assert_eq(ferry_task_wait(&g.t, 20 * BT_MS), FERRY_ETIMEDOUT);
	cr_assert_geq(bt_now() - t0, 20 * BT_MS, "the deadline fired early");
	cr_assert_not(ferry_task_done(&g.t));
	bt_gate_open(r, &g, 42);
	cr_assert_eq(ferry_task_wait(&g.t, -1), 42);
	cr_assert(ferry_task_done(&g.t));
	ferry_runner_destroy(r);
}

/* wait(0) polls: on a gate that is closed it reports FERRY_ETIMEDOUT every
 * time (if it blocked, the test's timeout would catch the hang); once the
 * gate is open the very next poll returns the result. */
Test(call, wait_zero_polls, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct bt_gate g;

	bt_gate_init(&g);
	cr_assert_eq(ferry_task_submit(r, &g.t), 0);
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(ferry_task_wait(&g.t, 0), FERRY_ETIMEDOUT,
			     "poll %d", i);
		cr_assert_not(ferry_task_done(&g.t));
	}
	bt_gate_open(r, &g, 9);
	cr_assert(ferry_task_done(&g.t));
	cr_assert_eq(ferry_task_wait(&g.t, 0), 9);
	cr_assert_eq(ferry_task_wait(&g.t, 0), 9);
	ferry_runner_destroy(r);
}

/* A short deadline on a fast task still returns the result. */
Test(call, wait_deadline_met, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct bt_sleep_task s;

	bt_sleep_init(&s, 10 * BT_MS, 3);
	cr_assert_eq(ferry_task_submit(r, &s.t), 0);
	cr_assert_eq(ferry_task_wait(&s.t, 2000 * BT_MS), 3);
	ferry_runner_destroy(r);
}

/* ------------------------------------------------------------------ */
/* wait_all / wait_any                                                   */

Test(call, wait_all_gathers_results, .timeout = 20)
{
	struct ferry_runner *r = bt_runner();
	enum { N = 50 };
	struct bt_sleep_task *s = calloc(N, sizeof(*s));
	struct ferry_task *ts[N];
	int64_t t0 = bt_now();

	for (int i = 0; i < N; i++) {
		bt_sleep_init(&s[i], (uint64_t)(N - i) * BT_MS, 1000 + i);
		ts[i] = &s[i].t;
		cr_assert_eq(ferry_task_submit(r, ts[i]), 0);
	}
	cr_assert_eq(ferry_task_wait_all(ts, N, -1), 0);
	BT_ASSERT_ELAPSED(t0, N, 5000);
	for (int i = 0; i < N; i++) {
		cr_assert(ferry_task_done(ts[i]));
		cr_assert_eq(ferry_task_wait(ts[i], 0), 1000 + i);
	}
	/* All done already: returns at once. */
	cr_assert_eq(ferry_task_wait_all(ts, N, 0), 0);
	cr_assert_eq(ferry_task_wait_all(ts, 0, 0), 0);
	ferry_runner_destroy(r);
	free(s);
}

Test(call, wait_all_deadline, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct bt_sleep_task a;
	struct bt_gate b;
	struct ferry_task *ts[2] = { &a.t, &b.t };
	int64_t t0;

	/* a finishes on its own; b is a gate, so the deadline must expire. */
	bt_sleep_init(&a, 1 * BT_MS, 1);
	bt_gate_init(&b);
	cr_assert_eq(ferry_task_submit(r, &a.t), 0);
	cr_assert_eq(ferry_task_submit(r, &b.t), 0);
	t0 = bt_now();
	cr_assert_eq(ferry_task_wait_all(ts, 2, 30 * BT_MS), FERRY_ETIMEDOUT);
	cr_assert_geq(bt_now() - t0, 30 * BT_MS, "the deadline fired early");
	cr_assert_eq(ferry_task_wait(&a.t, 5000 * BT_MS), 1);
	cr_assert(ferry_task_done(&a.t));
	cr_assert_not(ferry_task_done(&b.t));
	cr_assert_eq(ferry_task_wait_all(ts, 2, 0), FERRY_ETIMEDOUT);
	bt_gate_open(r, &b, 2);
	cr_assert_eq(ferry_task_wait_all(ts, 2, 5000 * BT_MS), 0);
	cr_assert_eq(ferry_task_wait(&b.t, 0), 2);
	ferry_runner_destroy(r);
}

/* wait_any over @n gates of which only @fast is opened. The deadline
 * checks run while every gate is closed, so they must time out; then an
 * opener opens @fast 40 ms after it starts and wait_any must sleep until
 * then. The other gates complete only when cancelled. */
static void wait_any_one_of(int n, int fast)
{
	struct ferry_runner *r = bt_runner();
	struct bt_gate *g = calloc((size_t)n, sizeof(*g));
	struct bt_gate_opener o;
	struct ferry_task **ts = calloc((size_t)n, sizeof(*ts));
	int64_t t0;

	for (int i = 0; i < n; i++) {
		bt_gate_init(&g[i]);
		ts[i] = &g[i].t;
		cr_assert_eq(ferry_task_submit(r, ts[i]), 0);
	}
	t0 = bt_now();
	cr_assert_eq(ferry_task_wait_any(ts, (size_t)n, 0), FERRY_ETIMEDOUT);
	cr_assert_eq(ferry_task_wait_any(ts, (size_t)n, 5 * BT_MS),
		     FERRY_ETIMEDOUT);
	cr_assert_geq(bt_now() - t0, 5 * BT_MS, "the deadline fired early");
	t0 = bt_now();
	bt_gate_open_after(r, &o, &g[fast], fast, 40 * BT_MS);
	cr_assert_eq(ferry_task_wait_any(ts, (size_t)n, 5000 * BT_MS), fast);
	BT_ASSERT_ELAPSED(t0, 40, 5000);
	cr_assert_eq(ferry_task_wait(&o.t, 5000 * BT_MS), 0);
	cr_assert_eq(ferry_task_wait(ts[fast], 0), fast);
	/* Cancel the rest; every one completes with FERRY_ECANCELED. */
	for (int i = 0; i < n; i++)
		cr_assert_eq(ferry_task_cancel(ts[i]), 0);
	cr_assert_eq(ferry_task_wait_all(ts, (size_t)n, 5000 * BT_MS), 0);
	for (int i = 0; i < n; i++)
		if (i != fast)
			cr_assert_eq(ferry_task_wait(ts[i], 0), FERRY_ECANCELED,
				     "task %d: %s", i,
				     ferry_strerrorname(ferry_task_wait(ts[i], 0)));
	/* Now several are done: the lowest index wins. */
	cr_assert_eq(ferry_task_wait_any(ts, (size_t)n, 0), 0);
	cr_assert_eq(ferry_task_wait_any(ts + 3, (size_t)n - 3, -1), 0);
	ferry_runner_destroy(r);
	free(g);
	free(ts);
}

Test(call, wait_any_few, .timeout = 20)
{
	wait_any_one_of(10, 6);
}

Test(call, wait_any_more_than_128_fast_one_first, .timeout = 20)
{
	wait_any_one_of(200, 17);
}

Test(call, wait_any_more_than_128_fast_one_beyond, .timeout = 20)
{
	wait_any_one_of(300, 250);
}

Test(call, wait_any_empty_set, .timeout = 5)
{
	cr_assert_eq(ferry_task_wait_any(NULL, 0, 0), FERRY_EINVAL);
}
