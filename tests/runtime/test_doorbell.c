/*
 * test_doorbell.c - posting from other threads wakes a sleeping loop; many
 * posters, exactly-once delivery in per-thread order; ferry_loop_stop;
 * feature reporting and the FERRY_DISABLE switch.
 */
#include "util.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "ferry/timer.h"
#include "test_hooks.h"	/* ferry__loop_bell_op: end the doorbell's poll */

struct item {
	struct ferry_post p;
	int thread, seq;
	int ran;
	pid_t tid;
};

struct tally {
	pid_t loop_tid;
	atomic_int total;
	int last_seq[16];
	int order_errors;
	int thread_errors;
};

static struct tally *g_tally;

static void item_fn(struct ferry_post *p)
{
	struct item *it = (struct item *)p;
	struct tally *t = g_tally;

	it->ran++;
	it->tid = rt_gettid();
	if (it->tid != t->loop_tid)
		t->thread_errors++;
	if (it->seq != t->last_seq[it->thread] + 1)
		t->order_errors++;
	t->last_seq[it->thread] = it->seq;
	atomic_fetch_add(&t->total, 1);
}

/* ------------------------------------------------------------------ */

struct delayed_poster {
	struct ferry_loop *loop;
	struct ferry_post *p;
	unsigned delay_us;
};

static void *delayed_post_main(void *arg)
{
	struct delayed_poster *d = arg;

	if (d->delay_us)
		usleep(d->delay_us);
	ferry_loop_post(d->loop, d->p);
	return NULL;
}

static void wake_sleeping_loop(const struct ferry_loop_opts *o)
{
	struct ferry_loop *loop = rt_loop_new(o);
	struct tally t = { .loop_tid = rt_gettid() };
	uint32_t seed = 31;

	g_tally = &t;
	rt_turn(loop, 0);	/* settle whatever the loop arms at start */
	for (int round = 0; round < 40; round++) {
		struct item it = { .p.fn = item_fn, .seq = round + 1 };
		/* 50 ms first (surely asleep), then short random delays that
		 * land around the moment the loop goes to sleep. */
		struct delayed_poster d = {
			.loop = loop, .p = &it.p,
			.delay_us = round == 0 ? 50000 : rt_rand(&seed) % 2000,
		};
		uint64_t t0 = ferry_time_now();
		pthread_t th;

		cr_assert_eq(pthread_create(&th, NULL, delayed_post_main, &d), 0);
		/* Watchdog: a lost doorbell leaves us asleep forever. */
		alarm(5);
		while (!it.ran)
			rt_turn(loop, -1);
		alarm(0);
		pthread_join(th, NULL);
		cr_assert_eq(it.ran, 1);
		cr_assert_eq(it.tid, t.loop_tid);
		if (round == 0)
			cr_assert_geq(ferry_time_now() - t0, 45 * RT_MS,
				      "run_once(-1) returned without sleeping");
	}
	cr_assert_eq(t.order_errors, 0);
	ferry_loop_destroy(loop);
}

Test(doorbell, post_wakes_loop_sleeping_without_bound, .timeout = 20)
{
	wake_sleeping_loop(NULL);
}

Test(doorbell, post_wakes_loop_with_idle_spin, .timeout = 20)
{
	struct ferry_loop_opts o = { .idle_spin_ns = 200000 };

	wake_sleeping_loop(&o);
}

Test(doorbell, post_wakes_loop_without_defer_taskrun, .timeout = 20)
{
	struct ferry_loop_opts o = { 0 };

	setenv("FERRY_DISABLE", "defer_taskrun,single_issuer,futex", 1);
	wake_sleeping_loop(&o);
	unsetenv("FERRY_DISABLE");
}

/* ------------------------------------------------------------------ */

enum { NTHREADS = 8, PER_THREAD = 5000 };

struct poster {
	struct ferry_loop *loop;
	struct item *items;
	int n;
	atomic_int *go;
};

static void *poster_main(void *arg)
{
	struct poster *ps = arg;

	while (!atomic_load(ps->go))
		;
	for (int i = 0; i < ps->n; i++) {
		ferry_loop_post(ps->loop, &ps->items[i].p);
		if (i % 512 == 0)
			usleep(100);	/* let the loop doze off now and then */
	}
	return NULL;
}

static void many_posters(int nthreads)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct tally t = { .loop_tid = rt_gettid() };
	struct item *items = calloc((size_t)nthreads * PER_THREAD, sizeof(*items));
	struct poster ps[NTHREADS];
	pthread_t th[NTHREADS];
	atomic_int go = 0;
	int want = nthreads * PER_THREAD;

	g_tally = &t;
	for (int k = 0; k < nthreads; k++) {
		ps[k] = (struct poster){ .loop = loop,
					 .items = items + k * PER_THREAD,
					 .n = PER_THREAD, .go = &go };
		for (int i = 0; i < PER_THREAD; i++)
			ps[k].items[i] = (struct item){ .p.fn = item_fn,
							.thread = k,
							.seq = i + 1 };
		cr_assert_eq(pthread_create(&th[k], NULL, poster_main, &ps[k]), 0);
	}
	atomic_store(&go, 1);
	alarm(30);
	/* Unbounded sleeps: every wake must come from the doorbell. */
	while (atomic_load(&t.total) < want)
		rt_turn(loop, -1);
	alarm(0);
	for (int k = 0; k < nthreads; k++)
		pthread_join(th[k], NULL);
	rt_run_for(loop, 20);
	cr_assert_eq(atomic_load(&t.total), want);
	for (int i = 0; i < want; i++)
		cr_assert_eq(items[i].ran, 1, "item %d (thread %d seq %d) ran %d times",
			     i, items[i].thread, items[i].seq, items[i].ran);
	cr_assert_eq(t.thread_errors, 0, "items ran off the loop thread");
	cr_assert_eq(t.order_errors, 0, "items of one thread ran out of order");
	for (int k = 0; k < nthreads; k++)
		cr_assert_eq(t.last_seq[k], PER_THREAD);
	free(items);
	ferry_loop_destroy(loop);
}

Test(doorbell, eight_threads_post_thousands_exactly_once, .timeout = 40)
{
	many_posters(NTHREADS);
}

Test(doorbell, single_poster_thread_order, .timeout = 20)
{
	many_posters(1);
}

/* Posting from the loop thread itself, from inside a posted item. */
struct repost {
	struct ferry_post p;
	struct ferry_loop *loop;
	int count;
	int depth, maxdepth;
};

static void repost_fn(struct ferry_post *p)
{
	struct repost *r = (struct repost *)p;

	r->depth++;
	if (r->depth > r->maxdepth)
		r->maxdepth = r->depth;
	if (++r->count < 1000)
		ferry_loop_post(r->loop, p);
	r->depth--;
}

Test(doorbell, post_from_loop_thread_and_from_item, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct repost r = { .p.fn = repost_fn, .loop = loop };

	ferry_loop_post(loop, &r.p);
	cr_assert_eq(r.count, 0, "post ran the item synchronously");
	RT_RUN_UNTIL(loop, r.count == 1000, 5000);
	cr_assert_eq(r.maxdepth, 1, "item re-entered from inside itself");
	ferry_loop_destroy(loop);
}

/*
 * The doorbell's multishot poll can end with an error (the kernel cancels
 * it, runs out of memory...): it must be armed again, or a loop asleep
 * without a bound never hears a post (regression: it was re-armed only
 * after an end without error). A cancel ends it the same way.
 */
Test(doorbell, poll_rearmed_after_it_ends_with_an_error, .timeout = 30)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct ferry_op *bell = ferry__loop_bell_op(loop);
	struct tally t = { .loop_tid = rt_gettid() };

	g_tally = &t;
	rt_turn(loop, 0);
	cr_assert(ferry_op_busy(bell), "the doorbell is armed at start");
	for (int round = 0; round < 3; round++) {
		unsigned base = ferry_loop_inflight(loop);
		struct item it = { .p.fn = item_fn, .seq = round + 1 };
		struct delayed_poster d = { .loop = loop, .p = &it.p,
					    .delay_us = 50000 };
		pthread_t th;

		cr_assert_eq(ferry_op_cancel(loop, bell), 0);
		/* The poll's end and the cancel's own CQE. */
		RT_RUN_UNTIL(loop, ferry_loop_inflight(loop) < base + 1, 2000);
		rt_run_for(loop, 20);
		cr_assert(ferry_op_busy(bell), "round %d: the doorbell was not "
			  "re-armed after its poll ended", round);
		cr_assert_eq(ferry_loop_inflight(loop), base);

		/* Asleep without a bound, the loop still hears a post. */
		cr_assert_eq(pthread_create(&th, NULL, delayed_post_main, &d), 0);
		alarm(10);	/* a dead doorbell leaves us asleep for ever */
		while (!it.ran)
			rt_turn(loop, -1);
		alarm(0);
		pthread_join(th, NULL);
		cr_assert_eq(it.ran, 1);
	}
	ferry_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */
/* ferry_loop_run / ferry_loop_stop.                                     */

struct stop_timer {
	struct ferry_timer t;
	struct ferry_loop *loop;
	int fired;
};

static void stop_timer_fn(struct ferry_timer *t)
{
	struct stop_timer *s = (struct stop_timer *)t;

	s->fired++;
	ferry_loop_stop(s->loop);
}

Test(loop, stop_from_timer_ends_run, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct stop_timer s = { .t.fn = stop_timer_fn, .loop = loop };
	uint64_t t0 = ferry_time_now();

	cr_assert_eq(ferry_timer_start(loop, &s.t, t0 + 30 * RT_MS), 0);
	alarm(5);
	cr_assert_eq(ferry_loop_run(loop), 0);
	alarm(0);
	cr_assert_eq(s.fired, 1);
	cr_assert_geq(ferry_time_now() - t0, 30 * RT_MS);

	/* run can be entered again after a stop. */
	cr_assert_eq(ferry_timer_start(loop, &s.t, ferry_time_now() + RT_MS), 0);
	alarm(5);
	cr_assert_eq(ferry_loop_run(loop), 0);
	alarm(0);
	cr_assert_eq(s.fired, 2);
	ferry_loop_destroy(loop);
}

struct stop_post {
	struct ferry_post p;
	struct ferry_loop *loop;
	int ran;
};

static void stop_post_fn(struct ferry_post *p)
{
	struct stop_post *s = (struct stop_post *)p;

	s->ran++;
	ferry_loop_stop(s->loop);
}

static void *stop_poster_main(void *arg)
{
	struct stop_post *s = arg;

	usleep(30 * 1000);
	ferry_loop_post(s->loop, &s->p);
	return NULL;
}

Test(loop, stop_posted_from_another_thread, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct stop_post s = { .p.fn = stop_post_fn, .loop = loop };
	pthread_t th;

	cr_assert_eq(pthread_create(&th, NULL, stop_poster_main, &s), 0);
	alarm(5);
	cr_assert_eq(ferry_loop_run(loop), 0);
	alarm(0);
	pthread_join(th, NULL);
	cr_assert_eq(s.ran, 1);
	ferry_loop_destroy(loop);
}

Test(loop, run_once_zero_timeout_does_not_block, .timeout = 15)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	uint64_t t0;
	int n;

	/* Nothing would ever wake an idle loop: a zero turn that blocked
	 * hangs, and the test's timeout reports it (no bound on speed). */
	rt_turn(loop, 0);
	for (int i = 0; i < 100; i++) {
		n = rt_turn(loop, 0);
		cr_assert_eq(n, 0, "idle turn handled %d events", n);
	}

	/* A bounded turn on an idle loop waits about as long as asked. */
	t0 = ferry_time_now();
	rt_turn(loop, 30 * RT_MS);
	cr_assert_geq(ferry_time_now() - t0, 25 * RT_MS);
	cr_assert_lt(ferry_time_now() - t0, 8000 * RT_MS);	/* a hang guard */
	ferry_loop_destroy(loop);
}

static void *on_thread_probe(void *arg)
{
	return (void *)(uintptr_t)ferry_loop_on_thread(arg);
}

Test(loop, on_thread_and_time, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	pthread_t th;
	void *ret;
	uint64_t a, b;
	struct timespec ts;

	cr_assert(ferry_loop_on_thread(loop));
	cr_assert_eq(pthread_create(&th, NULL, on_thread_probe, loop), 0);
	pthread_join(th, &ret);
	cr_assert_eq((uintptr_t)ret, 0, "another thread claims to be the loop");

	a = ferry_time_now();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	b = ferry_time_now();
	{
		uint64_t mono = (uint64_t)ts.tv_sec * 1000000000ull +
				(uint64_t)ts.tv_nsec;

		cr_assert(a <= mono && mono <= b, "ferry_time_now is not CLOCK_MONOTONIC");
	}
	ferry_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */
/* Features.                                                            */

static const struct { unsigned bit; const char *name; } switchable[] = {
	{ FERRY_FEAT_SINGLE_ISSUER, "single_issuer" },
	{ FERRY_FEAT_DEFER_TASKRUN, "defer_taskrun" },
	{ FERRY_FEAT_COOP_TASKRUN, "coop_taskrun" },
	{ FERRY_FEAT_SUBMIT_ALL, "submit_all" },
	{ FERRY_FEAT_FUTEX, "futex" },
	{ FERRY_FEAT_RECV_MULTISHOT, "recv_multishot" },
	{ FERRY_FEAT_REG_RING, "reg_ring" },
	{ FERRY_FEAT_MIN_WAIT, "min_wait" },
	{ FERRY_FEAT_RECV_BUNDLE, "recv_bundle" },
};

static bool has_word(const char *line, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = line; (p = strstr(p, word)); p += n) {
		bool start = p == line || p[-1] == ' ' || p[-1] == ',';
		bool end = p[n] == 0 || p[n] == ' ' || p[n] == ',' ||
			   p[n] == ';';	/* epoll: the reason follows */

		if (start && end)
			return true;
	}
	return false;
}

static void assert_describe_matches(struct ferry_loop *loop)
{
	unsigned f = ferry_loop_features(loop);
	const char *d = ferry_loop_describe(loop);

	cr_assert_not_null(d);
	for (size_t i = 0; i < sizeof(switchable) / sizeof(switchable[0]); i++)
		cr_assert_eq(has_word(d, switchable[i].name),
			     (f & switchable[i].bit) != 0,
			     "describe \"%s\" disagrees with features 0x%x on %s",
			     d, f, switchable[i].name);
}

Test(loop, features_and_describe, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	unsigned f = ferry_loop_features(loop);
	const char *d = ferry_loop_describe(loop);

	cr_assert_neq(f, 0);
	cr_assert_not_null(d);
	cr_assert_gt(strlen(d), 0);
	/* The doorbell and multishot recv rely on these; every kernel that
	 * has io_uring multishot at all has the buffer ring too. */
	if (f & FERRY_FEAT_RECV_MULTISHOT)
		cr_assert(f & FERRY_FEAT_BUF_RING);
	if (f & FERRY_FEAT_RECV_BUNDLE)
		cr_assert(f & FERRY_FEAT_RECV_MULTISHOT,
			  "bundles are a kind of multishot recv");
	if (f & FERRY_FEAT_DEFER_TASKRUN)
		cr_assert(f & FERRY_FEAT_SINGLE_ISSUER,
			  "DEFER_TASKRUN requires SINGLE_ISSUER");
	assert_describe_matches(loop);
	/* Constant for the loop's life. */
	rt_turn(loop, 0);
	cr_assert_eq(ferry_loop_describe(loop), d);
	cr_assert_eq(ferry_loop_features(loop), f);
	ferry_loop_destroy(loop);
}

/* A loop still works for a round trip: recv, timer, post. */
static void assert_loop_works(struct ferry_loop *loop)
{
	struct rt_op o;
	char buf[8];
	int sv[2];

	rt_socketpair(sv);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, sv[0], buf, sizeof(buf), 0), 0);
	rt_write_all(sv[1], "abc", 3);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, 3);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, sv[0], buf, sizeof(buf), 0), 0);
	cr_assert_eq(ferry_op_set_timeout(loop, &o.op, 10 * RT_MS), 0);
	RT_RUN_UNTIL(loop, !ferry_op_busy(&o.op), 2000);
	cr_assert_eq(o.res, -ETIME);
	close(sv[0]);
	close(sv[1]);
}

Test(loop, ferry_disable_turns_each_feature_off, .timeout = 20)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	unsigned base = ferry_loop_features(loop);

	ferry_loop_destroy(loop);
	for (size_t i = 0; i < sizeof(switchable) / sizeof(switchable[0]); i++) {
		unsigned f;

		setenv("FERRY_DISABLE", switchable[i].name, 1);
		loop = rt_loop_new(NULL);
		unsetenv("FERRY_DISABLE");
		f = ferry_loop_features(loop);
		cr_assert_eq(f & switchable[i].bit, 0,
			     "FERRY_DISABLE=%s left it on (\"%s\")",
			     switchable[i].name, ferry_loop_describe(loop));
		/* Nothing else is switched off, except what depends on it
		 * (DEFER_TASKRUN needs SINGLE_ISSUER). A fallback may come
		 * on instead (COOP_TASKRUN without DEFER_TASKRUN). */
		{
			unsigned dep = switchable[i].bit;

			if (dep == FERRY_FEAT_SINGLE_ISSUER)
				dep |= FERRY_FEAT_DEFER_TASKRUN;
			if (dep == FERRY_FEAT_RECV_MULTISHOT)
				dep |= FERRY_FEAT_RECV_BUNDLE;
			cr_assert_eq(base & ~dep & ~f, 0,
				     "FERRY_DISABLE=%s also turned off 0x%x",
				     switchable[i].name, base & ~dep & ~f);
		}
		assert_describe_matches(loop);
		assert_loop_works(loop);
		ferry_loop_destroy(loop);
	}
}

Test(loop, ferry_disable_list_and_junk, .timeout = 20)
{
	struct ferry_loop *loop;
	unsigned f, off = FERRY_FEAT_DEFER_TASKRUN | FERRY_FEAT_COOP_TASKRUN |
			  FERRY_FEAT_SUBMIT_ALL | FERRY_FEAT_FUTEX;

	setenv("FERRY_DISABLE", "defer_taskrun,coop_taskrun,,submit_all,futex", 1);
	loop = rt_loop_new(NULL);
	unsetenv("FERRY_DISABLE");
	f = ferry_loop_features(loop);
	cr_assert_eq(f & off, 0, "features 0x%x (%s)", f, ferry_loop_describe(loop));
	{
		struct rt_op o;
		uint32_t word = 0;

		rt_op_init(&o);
		cr_assert_eq(ferry_op_futex_wake(loop, &o.op, &word, 1), -EOPNOTSUPP,
			     "futex op used although disabled");
	}
	assert_loop_works(loop);
	ferry_loop_destroy(loop);

	/* Unknown names are ignored, not fatal. */
	setenv("FERRY_DISABLE", "no_such_feature,,,", 1);
	loop = rt_loop_new(NULL);
	unsetenv("FERRY_DISABLE");
	assert_loop_works(loop);
	ferry_loop_destroy(loop);
}

Test(loop, recv_multishot_disabled, .timeout = 20)
{
	struct ferry_loop *loop;
	struct ferry_bufring *br;
	struct rt_op o;
	int sv[2], rc;

	setenv("FERRY_DISABLE", "recv_multishot", 1);
	loop = rt_loop_new(NULL);
	unsetenv("FERRY_DISABLE");
	cr_assert_eq(ferry_loop_features(loop) & FERRY_FEAT_RECV_MULTISHOT, 0);
	rt_socketpair(sv);
	rc = ferry_bufring_create(loop, 4, 64, &br);
	if (rc == 0) {
		rt_op_init(&o);
		rc = ferry_op_recv_multishot(loop, &o.op, sv[0], br);
		/* Either refused outright or emulated correctly. */
		cr_assert(rc == 0 || rc == -EOPNOTSUPP, "got %s",
			  ferry_strerrorname(rc));
		if (rc == 0) {
			rt_write_all(sv[1], "xy", 2);
			RT_RUN_UNTIL(loop, o.ncalls >= 1, 2000);
			cr_assert_eq(o.res, 2, "got %s", ferry_strerrorname(o.res));
			cr_assert(o.flags & FERRY_CQE_BUFFER);
			cr_assert_arr_eq(ferry_bufring_buf(br, ferry_cqe_bid(o.flags)),
					 "xy", 2);
			ferry_bufring_recycle(br, ferry_cqe_bid(o.flags));
			if (ferry_op_busy(&o.op)) {
				ferry_op_cancel(loop, &o.op);
				RT_RUN_UNTIL(loop, !ferry_op_busy(&o.op), 2000);
			}
		}
	}
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

/*
 * A batched wait (min_wait, opt-in) asks the kernel for several
 * completions; it must still return with fewer: here one send completes
 * while eight are "expected", and the loop must hand it over rather than
 * wait for the other three of its batch under the hour-long bound. (A
 * timeout op would not do: the kernel returns at once for those.)
 */
Test(loop, batched_wait_returns_with_fewer_completions, .timeout = 30)
{
	struct ferry_loop_opts lo = { .batch_wait_ns = 50 * 1000 };
	struct ferry_loop *loop = rt_loop_new(&lo);
	struct rt_op o;
	int sv[2];

	rt_socketpair(sv);
	ferry_loop_expect(loop, 8);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_send(loop, &o.op, sv[0], "x", 1, 0), 0);
	/* Unbounded turns: no timer and no timeout cut the wait short, so
	 * only min_wait can end it before the hour (.timeout catches a
	 * hang). */
	while (o.ncalls == 0)
		cr_assert_geq(ferry_loop_run_once(loop, -1), 0);
	cr_assert_eq(o.res, 1);
	assert_loop_works(loop);
	ferry_loop_expect(loop, -8);
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}
