/*
 * test_timer.c - loop timers: deadline order, FIFO ties, stop, restart,
 * thousands at once, restarting and freeing from the callback.
 */
#include "util.h"

#include "ferry/timer.h"
#include "test_hooks.h"	/* ferry__timer_seq_set: start numbers near a wrap */

/* A timer that records when and in which order it fired. */
struct rec_timer {
	struct ferry_timer t;
	int id;
	int fired;
	uint64_t deadline;
	uint64_t fired_at;
	int *log;		/* shared: ids in firing order */
	int *nlog;
};

static void rec_timer_fn(struct ferry_timer *t)
{
	struct rec_timer *r = (struct rec_timer *)t;

	r->fired++;
	r->fired_at = ferry_time_now();
	r->log[(*r->nlog)++] = r->id;
}

static void rec_timers_init(struct rec_timer *r, int n, int *log, int *nlog)
{
	for (int i = 0; i < n; i++)
		r[i] = (struct rec_timer){ .t.fn = rec_timer_fn, .id = i,
					   .log = log, .nlog = nlog };
}

static void shuffle(int *a, int n, uint32_t seed)
{
	for (int i = n - 1; i > 0; i--) {
		int j = (int)(rt_rand(&seed) % (uint32_t)(i + 1));
		int t = a[i];

		a[i] = a[j];
		a[j] = t;
	}
}

/* Check @log (ids in firing order) is sorted by deadline, ties FIFO by
 * the order in @start_order. */
static void assert_fire_order(struct rec_timer *r, const int *log, int n,
			      const int *rank)
{
	for (int i = 1; i < n; i++) {
		struct rec_timer *a = &r[log[i - 1]], *b = &r[log[i]];

		cr_assert_leq(a->deadline, b->deadline,
			      "timer %d (deadline +%llu) fired before %d (+%llu)",
			      b->id, (unsigned long long)b->deadline, a->id,
			      (unsigned long long)a->deadline);
		if (a->deadline == b->deadline && rank)
			cr_assert_lt(rank[a->id], rank[b->id],
				     "equal deadlines not FIFO: %d before %d",
				     a->id, b->id);
	}
}

Test(timer, shuffled_deadlines_fire_in_order, .timeout = 10)
{
	enum { N = 500 };
	struct ferry_loop *loop = rt_loop_new(NULL);
	static struct rec_timer r[N];
	static int log[N], order[N];
	int nlog = 0;
	uint64_t base = ferry_time_now() + 20 * RT_MS;

	rec_timers_init(r, N, log, &nlog);
	for (int i = 0; i < N; i++)
		order[i] = i;
	shuffle(order, N, 99);
	/* Deadlines 100 us apart, started in shuffled order. */
	for (int i = 0; i < N; i++) {
		int id = order[i];

		r[id].deadline = base + (uint64_t)id * 100000;
		cr_assert_eq(ferry_timer_start(loop, &r[id].t, r[id].deadline), 0);
		cr_assert(ferry_timer_active(&r[id].t));
	}
	cr_assert_eq(nlog, 0, "a timer fired inside ferry_timer_start");
	RT_RUN_UNTIL(loop, nlog == N, 5000);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(log[i], i, "position %d fired timer %d", i, log[i]);
		cr_assert_eq(r[i].fired, 1);
		cr_assert(!ferry_timer_active(&r[i].t));
		cr_assert_geq(r[i].fired_at, r[i].deadline,
			      "timer %d fired %llu ns early", i,
			      (unsigned long long)(r[i].deadline - r[i].fired_at));
	}
	ferry_loop_destroy(loop);
}

Test(timer, equal_deadlines_fire_fifo, .timeout = 10)
{
	enum { N = 200 };
	struct ferry_loop *loop = rt_loop_new(NULL);
	static struct rec_timer r[N];
	static int log[N], order[N], rank[N];
	int nlog = 0;
	uint64_t dl = ferry_time_now() + 20 * RT_MS;

	rec_timers_init(r, N, log, &nlog);
	for (int i = 0; i < N; i++)
		order[i] = i;
	shuffle(order, N, 5);
	for (int i = 0; i < N; i++) {
		int id = order[i];

		rank[id] = i;
		r[id].deadline = dl;
		cr_assert_eq(ferry_timer_start(loop, &r[id].t, dl), 0);
	}
	RT_RUN_UNTIL(loop, nlog == N, 5000);
	assert_fire_order(r, log, N, rank);
	for (int i = 0; i < N; i++)
		cr_assert_eq(log[i], order[i], "position %d: timer %d, want %d",
			     i, log[i], order[i]);
	ferry_loop_destroy(loop);
}

Test(timer, restart_moves_to_back_of_equal_deadlines, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rec_timer r[3];
	int log[8], nlog = 0;
	uint64_t dl = ferry_time_now() + 20 * RT_MS;

	rec_timers_init(r, 3, log, &nlog);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(ferry_timer_start(loop, &r[i].t, dl), 0);
	/* Restarting is a new start: timer 0 now goes after 1 and 2. */
	cr_assert_eq(ferry_timer_start(loop, &r[0].t, dl), 0);
	RT_RUN_UNTIL(loop, nlog == 3, 2000);
	cr_assert_eq(log[0], 1);
	cr_assert_eq(log[1], 2);
	cr_assert_eq(log[2], 0);
	cr_assert_eq(r[0].fired, 1, "a restarted timer fired twice");
	ferry_loop_destroy(loop);
}

Test(timer, stop_before_firing, .timeout = 10)
{
	enum { N = 300 };
	struct ferry_loop *loop = rt_loop_new(NULL);
	static struct rec_timer r[N];
	static int log[N];
	int nlog = 0, want = 0;
	uint64_t base = ferry_time_now() + 10 * RT_MS;
	uint32_t seed = 77;

	rec_timers_init(r, N, log, &nlog);
	for (int i = 0; i < N; i++) {
		r[i].deadline = base + rt_rand(&seed) % (20 * RT_MS);
		cr_assert_eq(ferry_timer_start(loop, &r[i].t, r[i].deadline), 0);
	}
	/* Stop every third, from all over the heap. */
	for (int i = 0; i < N; i += 3) {
		ferry_timer_stop(loop, &r[i].t);
		cr_assert(!ferry_timer_active(&r[i].t));
		ferry_timer_stop(loop, &r[i].t);	/* inactive: no-op */
	}
	for (int i = 0; i < N; i++)
		want += i % 3 != 0;
	RT_RUN_UNTIL(loop, nlog == want, 3000);
	rt_run_for(loop, 30);
	cr_assert_eq(nlog, want, "stopped timers fired");
	for (int i = 0; i < N; i++)
		cr_assert_eq(r[i].fired, i % 3 != 0, "timer %d fired %d times", i,
			     r[i].fired);
	assert_fire_order(r, log, nlog, NULL);
	ferry_loop_destroy(loop);
}

Test(timer, stop_never_started_is_noop, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rec_timer r;
	int log[1], nlog = 0;

	rec_timers_init(&r, 1, log, &nlog);
	cr_assert(!ferry_timer_active(&r.t));
	ferry_timer_stop(loop, &r.t);
	cr_assert(!ferry_timer_active(&r.t));
	rt_run_for(loop, 5);
	cr_assert_eq(nlog, 0);
	ferry_loop_destroy(loop);
}

Test(timer, restart_earlier_and_later, .timeout = 20)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rec_timer r[2];
	int log[4], nlog = 0;
	uint64_t now = ferry_time_now();
	/* "Far" is an hour: far beyond the test's timeout, so neither the
	 * pulled-in nor the pushed-out timer can race its old deadline. */
	uint64_t far = now + 3600000 * RT_MS;

	rec_timers_init(r, 2, log, &nlog);
	/* Far, then pulled in. */
	cr_assert_eq(ferry_timer_start(loop, &r[0].t, far), 0);
	cr_assert_eq(ferry_timer_start(loop, &r[0].t, now + 20 * RT_MS), 0);
	/* Near, then pushed out past the end of the test window. */
	cr_assert_eq(ferry_timer_start(loop, &r[1].t, now + 10 * RT_MS), 0);
	cr_assert_eq(ferry_timer_start(loop, &r[1].t, far), 0);
	RT_RUN_UNTIL(loop, r[0].fired == 1, 10000);
	rt_run_for(loop, 50);
	cr_assert_eq(r[0].fired, 1);
	cr_assert_eq(r[1].fired, 0, "pushed-out timer fired at its old deadline");
	cr_assert(ferry_timer_active(&r[1].t));

	/* Restart after firing works too. */
	cr_assert_eq(ferry_timer_start(loop, &r[0].t, ferry_time_now() + RT_MS), 0);
	RT_RUN_UNTIL(loop, r[0].fired == 2, 2000);
	ferry_timer_stop(loop, &r[1].t);
	ferry_loop_destroy(loop);
}

Test(timer, past_deadline_fires_next_turn, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rec_timer r;
	int log[1], nlog = 0;

	rec_timers_init(&r, 1, log, &nlog);
	cr_assert_eq(ferry_timer_start(loop, &r.t, 1), 0);
	cr_assert_eq(nlog, 0);
	/* An unbounded turn: if it slept anyway, nothing would wake it and
	 * the test's timeout reports the hang; no bound on how fast. */
	rt_turn(loop, -1);
	cr_assert_eq(r.fired, 1, "an expired timer did not fire on the next turn");
	ferry_loop_destroy(loop);
}

Test(timer, run_once_sleeps_until_earliest_timer, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rec_timer r[2];
	int log[2], nlog = 0;
	uint64_t t0 = ferry_time_now(), dt;

	rec_timers_init(r, 2, log, &nlog);
	/* The later timer is an hour away: a turn that slept until it (or
	 * for ever) hangs the test, which its timeout reports. */
	cr_assert_eq(ferry_timer_start(loop, &r[0].t, t0 + 3600000 * RT_MS), 0);
	cr_assert_eq(ferry_timer_start(loop, &r[1].t, t0 + 40 * RT_MS), 0);
	/* An unbounded turn still wakes for the earliest timer. */
	while (!r[1].fired && ferry_time_now() - t0 < 8000 * RT_MS)
		rt_turn(loop, -1);
	dt = ferry_time_now() - t0;
	cr_assert_eq(r[1].fired, 1);
	cr_assert_eq(r[0].fired, 0);
	cr_assert_geq(dt, 40 * RT_MS);
	ferry_timer_stop(loop, &r[0].t);
	ferry_loop_destroy(loop);
}

Test(timer, ten_thousand_active_timers, .timeout = 20)
{
	enum { N = 10000 };
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rec_timer *r = calloc(N, sizeof(*r));
	int *log = calloc(N, sizeof(int));
	int nlog = 0, want = 0;
	uint64_t base = ferry_time_now() + 30 * RT_MS;
	uint32_t seed = 2024;

	rec_timers_init(r, N, log, &nlog);
	for (int i = 0; i < N; i++) {
		/* Coarse deadlines: many ties, exercised alongside order. */
		r[i].deadline = base + (rt_rand(&seed) % 200) * 250000;
		cr_assert_eq(ferry_timer_start(loop, &r[i].t, r[i].deadline), 0);
	}
	/* Stop a random third, and restart another third further out. */
	for (int i = 0; i < N; i++) {
		uint32_t x = rt_rand(&seed) % 3;

		if (x == 0) {
			ferry_timer_stop(loop, &r[i].t);
		} else if (x == 1) {
			r[i].deadline += 5 * RT_MS;
			cr_assert_eq(ferry_timer_start(loop, &r[i].t,
						       r[i].deadline), 0);
		}
	}
	for (int i = 0; i < N; i++)
		want += ferry_timer_active(&r[i].t);
	cr_assert_gt(want, N / 2);
	RT_RUN_UNTIL(loop, nlog == want, 10000);
	rt_run_for(loop, 20);
	cr_assert_eq(nlog, want);
	assert_fire_order(r, log, nlog, NULL);
	for (int i = 0; i < N; i++) {
		cr_assert_leq(r[i].fired, 1);
		cr_assert(!ferry_timer_active(&r[i].t));
	}
	free(r);
	free(log);
	ferry_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */
/* Callbacks that act on timers.                                        */

struct self_restart {
	struct ferry_timer t;
	struct ferry_loop *loop;
	int count, limit;
	uint64_t step;
	uint64_t last;
	int early;
};

static void self_restart_fn(struct ferry_timer *t)
{
	struct self_restart *s = (struct self_restart *)t;
	uint64_t now = ferry_time_now();

	if (ferry_timer_active(t))
		s->early = -1000;	/* must be inactive inside fn */
	if (s->last && now < s->last + s->step)
		s->early++;
	s->last = now;
	if (++s->count < s->limit)
		ferry_timer_start(s->loop, t, now + s->step);
}

Test(timer, restarts_itself_from_callback, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct self_restart s = { .t.fn = self_restart_fn, .loop = loop,
				  .limit = 20, .step = 2 * RT_MS };

	cr_assert_eq(ferry_timer_start(loop, &s.t, ferry_time_now() + RT_MS), 0);
	RT_RUN_UNTIL(loop, s.count == 20, 3000);
	cr_assert_eq(s.early, 0, "fired early or active inside callback (%d)",
		     s.early);
	cr_assert(!ferry_timer_active(&s.t));
	rt_run_for(loop, 20);
	cr_assert_eq(s.count, 20);
	ferry_loop_destroy(loop);
}

struct zero_restart {
	struct ferry_timer t;
	struct ferry_loop *loop;
	int count;
};

static void zero_restart_fn(struct ferry_timer *t)
{
	struct zero_restart *z = (struct zero_restart *)t;

	z->count++;
	ferry_timer_start(z->loop, t, 0);	/* already expired */
}

Test(timer, restart_in_the_past_from_callback_cannot_starve, .timeout = 10)
{
	/*
	 * "A deadline in the past fires on the next turn": a callback that
	 * re-arms in the past must not spin inside one turn, and I/O and
	 * posted items keep flowing. A turn dispatches timers before and
	 * after its wait, so at most two firings per turn.
	 */
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct zero_restart z = { .t.fn = zero_restart_fn, .loop = loop };
	struct rt_op o;
	char buf[4];
	int sv[2];

	rt_socketpair(sv);
	rt_op_init(&o);
	cr_assert_eq(ferry_op_recv(loop, &o.op, sv[0], buf, sizeof(buf), 0), 0);
	cr_assert_eq(ferry_timer_start(loop, &z.t, 0), 0);
	for (int turn = 1; turn <= 10; turn++) {
		int before = z.count;

		rt_turn(loop, 100 * RT_MS);
		cr_assert_geq(z.count - before, 1, "turn %d did not fire it", turn);
		cr_assert_leq(z.count - before, 2, "turn %d fired it %d times",
			      turn, z.count - before);
	}
	rt_write_all(sv[1], "io", 2);
	RT_RUN_UNTIL(loop, o.ncalls == 1, 2000);
	cr_assert_eq(o.res, 2);
	ferry_timer_stop(loop, &z.t);
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

struct stopper {
	struct ferry_timer t;
	struct ferry_loop *loop;
	struct rec_timer *victim;
	int fired;
};

static void stopper_fn(struct ferry_timer *t)
{
	struct stopper *s = (struct stopper *)t;

	s->fired++;
	ferry_timer_stop(s->loop, &s->victim->t);
}

Test(timer, callback_stops_a_timer_due_in_the_same_turn, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rec_timer victim;
	struct stopper s = { .t.fn = stopper_fn, .loop = loop, .victim = &victim };
	int log[2], nlog = 0;
	uint64_t dl = ferry_time_now() + 10 * RT_MS;

	rec_timers_init(&victim, 1, log, &nlog);
	/* Same deadline, stopper first: both are due in the same turn. */
	cr_assert_eq(ferry_timer_start(loop, &s.t, dl), 0);
	cr_assert_eq(ferry_timer_start(loop, &victim.t, dl), 0);
	RT_RUN_UNTIL(loop, s.fired == 1, 2000);
	rt_run_for(loop, 20);
	cr_assert_eq(victim.fired, 0, "a timer stopped by a callback still fired");
	ferry_loop_destroy(loop);
}

struct selffree {
	struct ferry_timer t;
	int *freed;
};

static void selffree_fn(struct ferry_timer *t)
{
	struct selffree *s = (struct selffree *)t;

	(*s->freed)++;
	free(s);
}

Test(timer, callback_frees_its_timer, .timeout = 10)
{
	enum { N = 100 };
	struct ferry_loop *loop = rt_loop_new(NULL);
	uint64_t dl = ferry_time_now() + 5 * RT_MS;
	int freed = 0;

	for (int i = 0; i < N; i++) {
		struct selffree *s = malloc(sizeof(*s));

		s->t = (struct ferry_timer){ .fn = selffree_fn };
		s->freed = &freed;
		cr_assert_eq(ferry_timer_start(loop, &s->t, dl + (uint64_t)(i % 4)), 0);
	}
	RT_RUN_UNTIL(loop, freed == N, 2000);	/* ASan catches use-after-free */
	ferry_loop_destroy(loop);
}

Test(timer, active_timers_at_destroy, .timeout = 10)
{
	/* Timers still armed at destroy never fire and need no cleanup. */
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rec_timer r[50];
	int log[50], nlog = 0;

	rec_timers_init(r, 50, log, &nlog);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(ferry_timer_start(loop, &r[i].t,
					       ferry_time_now() + 60000 * RT_MS), 0);
	ferry_loop_destroy(loop);
	cr_assert_eq(nlog, 0);
}

/* ------------------------------------------------------------------ */
/* Start numbers: a timer started long ago still fires (regression: the  */
/* numbers were 32-bit, and after 2^31 later starts an old timer looked  */
/* "started this turn" for ever: it never fired, and the loop spun).     */

Test(timer, old_timer_fires_after_2e31_later_starts, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rec_timer r[2];
	int log[2], nlog = 0;
	uint64_t dl = ferry_time_now() + 10 * RT_MS;
	int turns = 0;

	rec_timers_init(r, 2, log, &nlog);
	ferry__timer_seq_set(loop, 1000);
	cr_assert_eq(ferry_timer_start(loop, &r[0].t, dl), 0);
	/* As if 2^31 + 7 timers had been started since. */
	ferry__timer_seq_set(loop, 1000 + (UINT64_C(1) << 31) + 7);
	cr_assert_eq(ferry_timer_start(loop, &r[1].t, dl), 0);
	while (nlog < 2 && turns < 1000) {
		rt_turn(loop, 1000 * RT_MS);
		turns++;
	}
	cr_assert_eq(r[0].fired, 1, "the old timer never fired (%d turns)", turns);
	cr_assert_eq(r[1].fired, 1, "the new timer never fired (%d turns)", turns);
	cr_assert_eq(log[0], 0, "equal deadlines: the older start fires first");
	cr_assert(!ferry_timer_active(&r[0].t));
	ferry_loop_destroy(loop);
}

Test(timer, start_numbers_wrap_at_64_bits, .timeout = 10)
{
	enum { N = 8 };
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct rec_timer r[N];
	struct zero_restart z = { .t.fn = zero_restart_fn, .loop = loop };
	int log[N], nlog = 0;
	uint64_t dl = ferry_time_now() + 10 * RT_MS;

	/* Equal deadlines started across the wrap still fire FIFO. */
	rec_timers_init(r, N, log, &nlog);
	ferry__timer_seq_set(loop, UINT64_MAX - N / 2);
	for (int i = 0; i < N; i++)
		cr_assert_eq(ferry_timer_start(loop, &r[i].t, dl), 0);
	RT_RUN_UNTIL(loop, nlog == N, 2000);
	for (int i = 0; i < N; i++)
		cr_assert_eq(log[i], i, "position %d fired timer %d", i, log[i]);

	/* A timer re-arming itself in the past across the wrap fires once or
	 * twice a turn: never starves the turn, never stops. */
	ferry__timer_seq_set(loop, UINT64_MAX - 2);
	cr_assert_eq(ferry_timer_start(loop, &z.t, 0), 0);
	for (int turn = 1; turn <= 8; turn++) {
		int before = z.count;

		rt_turn(loop, 100 * RT_MS);
		cr_assert_geq(z.count - before, 1, "turn %d did not fire it", turn);
		cr_assert_leq(z.count - before, 2, "turn %d fired it %d times",
			      turn, z.count - before);
	}
	ferry_timer_stop(loop, &z.t);
	ferry_loop_destroy(loop);
}
