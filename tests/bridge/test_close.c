/*
 * test_close.c - closing a runner under load: callers blocked on tasks that
 * never finish by themselves, futures in flight, consumers blocked in
 * ferry_stream_next, submissions racing the close. Everyone returns
 * promptly with FERRY_ECLOSED or FERRY_ECANCELED, nobody hangs, nothing
 * leaks (ASan checks the last part).
 */
#include "producer.h"

static bool closed_or_cancelled(int rc)
{
	return rc == FERRY_ECLOSED || rc == FERRY_ECANCELED;
}

/* Tasks and producer ticks here outlast any test timeout: only the close
 * can end them, so a close that fails to wake someone hangs the test
 * instead of racing a timer. */
#define BT_FOREVER_NS (3600000 * BT_MS)

/* A thread blocked in ferry_call on a task that never ends by itself. */
struct blocked_caller {
	struct ferry_runner *r;
	struct bt_sleep_task s;
	int rc;
	int64_t returned_at;
};

static void *blocked_caller_main(void *arg)
{
	struct blocked_caller *b = arg;

	b->rc = ferry_call(b->r, &b->s.t);
	b->returned_at = bt_now();
	return NULL;
}

/* A thread with hundreds of futures in flight, waiting for all. */
struct gatherer {
	struct ferry_runner *r;
	struct bt_sleep_task *s;
	int n;
	int submit_rc, all_rc, bad;
	int64_t returned_at;
};

static void *gatherer_main(void *arg)
{
	struct gatherer *g = arg;
	struct ferry_task **ts = calloc((size_t)g->n, sizeof(*ts));

	for (int i = 0; i < g->n; i++) {
		ts[i] = &g->s[i].t;
		if ((g->submit_rc = ferry_task_submit(g->r, ts[i])) < 0)
			break;
	}
	if (!g->submit_rc) {
		g->all_rc = ferry_task_wait_all(ts, (size_t)g->n, -1);
		for (int i = 0; i < g->n; i++)
			if (!closed_or_cancelled(ferry_task_wait(ts[i], 0)))
				g->bad++;
	}
	g->returned_at = bt_now();
	free(ts);
	return NULL;
}

/* A consumer blocked in ferry_stream_next on an idle producer. */
struct blocked_reader {
	struct ferry_stream *s;
	atomic_int blocked;
	int first_rc, rc;
	int64_t returned_at;
};

static void *blocked_reader_main(void *arg)
{
	struct blocked_reader *b = arg;
	struct ferry_chunk c;

	b->first_rc = ferry_stream_next(b->s, &c, 5000 * BT_MS);
	atomic_store(&b->blocked, 1);
	b->rc = ferry_stream_next(b->s, &c, -1);
	b->returned_at = bt_now();
	ferry_stream_close(b->s);
	return NULL;
}

static void close_under_load(int ncallers, int nfutures, int nreaders,
			     enum prod_mode reader_mode)
{
	int base_threads = bt_thread_count();
	struct ferry_runner *r = bt_runner();
	struct blocked_caller *bc = calloc((size_t)ncallers, sizeof(*bc));
	pthread_t *bth = calloc((size_t)ncallers, sizeof(*bth));
	struct gatherer g = { .r = r, .n = nfutures };
	struct blocked_reader *br = calloc((size_t)nreaders, sizeof(*br));
	pthread_t *rth = calloc((size_t)nreaders, sizeof(*rth));
	struct pool *pools = calloc((size_t)nreaders, sizeof(*pools));
	struct prod_stats *pst = calloc((size_t)nreaders, sizeof(*pst));
	struct prod_cfg cfg = { .capacity = 4, .total = SIZE_MAX, .chunk = 64,
				.mode = reader_mode, .burst = 1,
				.interval_ns = BT_FOREVER_NS };
	pthread_t gth;
	int64_t end, t0, close_ns, last = 0;

	g.s = calloc((size_t)nfutures, sizeof(*g.s));
	for (int i = 0; i < nfutures; i++)
		bt_sleep_init(&g.s[i], BT_FOREVER_NS, 1);
	for (int i = 0; i < ncallers; i++) {
		bc[i].r = r;
		bt_sleep_init(&bc[i].s, BT_FOREVER_NS, 1);
		cr_assert_eq(pthread_create(&bth[i], NULL, blocked_caller_main,
					    &bc[i]), 0);
	}
	if (nfutures)
		cr_assert_eq(pthread_create(&gth, NULL, gatherer_main, &g), 0);
	for (int i = 0; i < nreaders; i++) {
		pools[i].bufsize = 64;
		br[i].s = bt_stream_open(r, &cfg, &pools[i], &pst[i]);
		cr_assert_eq(pthread_create(&rth[i], NULL, blocked_reader_main,
					    &br[i]), 0);
	}
	/* Wait until every task has started and every reader is blocked. */
	end = bt_now() + 10000 * BT_MS;
	for (;;) {
		int pending = 0;

		for (int i = 0; i < ncallers; i++)
			pending += !atomic_load(&bc[i].s.started);
		for (int i = 0; i < nfutures; i++)
			pending += !atomic_load(&g.s[i].started);
		for (int i = 0; i < nreaders; i++)
			pending += !atomic_load(&br[i].blocked);
		if (!pending)
			break;
		cr_assert_lt(bt_now(), end, "%d tasks/readers never started",
			     pending);
		bt_sleep_ms(1);
	}
	bt_sleep_ms(20);	/* let the readers go to sleep in next */

	t0 = bt_now();
	cr_assert_eq(ferry_runner_close(r), 0);
	close_ns = bt_now() - t0;
	for (int i = 0; i < ncallers; i++)
		pthread_join(bth[i], NULL);
	if (nfutures)
		pthread_join(gth, NULL);
	for (int i = 0; i < nreaders; i++)
		pthread_join(rth[i], NULL);
	cr_log_info("close took %.1f ms", close_ns / 1e6);
	/* A hang guard, not a speed check (a loaded CI box is slow). */
	cr_assert_lt(close_ns, 15000 * BT_MS, "close took %.0f ms", close_ns / 1e6);

	for (int i = 0; i < ncallers; i++) {
		cr_assert(closed_or_cancelled(bc[i].rc), "caller %d got %s", i,
			  ferry_strerrorname(bc[i].rc));
		if (bc[i].returned_at > last)
			last = bc[i].returned_at;
	}
	if (nfutures) {
		cr_assert_eq(g.submit_rc, 0);
		cr_assert_eq(g.all_rc, 0, "wait_all: %s", ferry_strerrorname(g.all_rc));
		cr_assert_eq(g.bad, 0, "%d futures ended otherwise", g.bad);
		if (g.returned_at > last)
			last = g.returned_at;
	}
	for (int i = 0; i < nreaders; i++) {
		cr_assert_eq(br[i].first_rc, 1, "reader %d: first chunk: %s", i,
			     ferry_strerrorname(br[i].first_rc));
		cr_assert(br[i].rc < 0, "reader %d: next returned %d after close",
			  i, br[i].rc);
		cr_assert(closed_or_cancelled(br[i].rc), "reader %d got %s", i,
			  ferry_strerrorname(br[i].rc));
		if (br[i].returned_at > last)
			last = br[i].returned_at;
	}
	cr_assert_lt(last - t0, 15000 * BT_MS,
		     "the last blocked caller returned %.0f ms after close",
		     (last - t0) / 1e6);
	ferry_runner_destroy(r);
	cr_assert_eq(bt_thread_count_settles(base_threads, 1000), base_threads,
		     "threads left behind");
	for (int i = 0; i < nreaders; i++) {
		cr_assert_eq(pools[i].in_use, 0, "reader %d: %d chunks not "
			     "released", i, pools[i].in_use);
		cr_assert_eq(pst[i].ends, 1, "reader %d: producer ended %d times",
			     i, pst[i].ends);
		pool_free(&pools[i]);
	}
	free(bc);
	free(bth);
	free(g.s);
	free(br);
	free(rth);
	free(pools);
	free(pst);
}

/* 32 callers in ferry_call, 300 futures in one wait_all, 4 readers. */
Test(close, wakes_everyone_blocked, .timeout = 30)
{
	close_under_load(32, 300, 4, PROD_OP);
}

Test(close, wakes_callers_only, .timeout = 30)
{
	close_under_load(32, 0, 0, PROD_OP);
}

Test(close, wakes_readers_of_op_driven_producers, .timeout = 30)
{
	close_under_load(0, 0, 6, PROD_OP);
}

/* The producers sit on loop timers: no ring op of theirs is cancelled when
 * the loop goes away, so only the runner can wake their consumers. */
Test(close, wakes_readers_of_timer_driven_producers, .timeout = 30)
{
	close_under_load(0, 0, 6, PROD_TIMER);
}

/* ------------------------------------------------------------------ */
/* Close racing a storm of calls and submissions.                        */

struct stormer {
	struct ferry_runner *r;
	int ok, closed, bad, after_closed_ok;
	atomic_int *closing_done;
	int kind;
};

static void *stormer_main(void *arg)
{
	struct stormer *st = arg;
	uint32_t seq = 0;

	for (;;) {
		int done_before = atomic_load(st->closing_done);
		int rc;

		if (st->kind == 0) {
			struct bt_now_task n;

			bt_now_init(&n, (int)(seq++ & 0xffff));
			rc = ferry_call(st->r, &n.t);
			if (rc == (int)((seq - 1) & 0xffff))
				st->ok++;
			else if (rc == FERRY_ECLOSED || rc == FERRY_ECANCELED)
				st->closed++;
			else
				st->bad++;
		} else {
			/* A batch of short sleeps, released at once. */
			struct bt_sleep_task s[8];
			int any_closed = 0;

			for (int i = 0; i < 8; i++) {
				bt_sleep_init(&s[i], 200000 * (uint64_t)(i + 1), 5);
				if (ferry_task_submit(st->r, &s[i].t) < 0) {
					s[i].t.start = NULL;
					any_closed = 1;
				}
			}
			for (int i = 0; i < 8; i++) {
				if (!s[i].t.start)
					continue;
				rc = i % 2 ? ferry_task_release(&s[i].t)
					   : ferry_task_wait(&s[i].t, -1);
				if (rc == 5)
					st->ok++;
				else if (closed_or_cancelled(rc))
					any_closed = 1;
				else
					st->bad++;
			}
			rc = any_closed ? FERRY_ECLOSED : 5;
			st->closed += any_closed;
		}
		if (done_before && rc >= 0)
			st->after_closed_ok++;
		if (rc == FERRY_ECLOSED && done_before)
			break;
		if (st->bad > 100)
			break;
	}
	return NULL;
}

Test(close, races_a_storm_of_calls, .timeout = 60)
{
	enum { NS = 12 };
	int rounds = bt_scaled(20) > 4 ? 20 : 4;

	for (int round = 0; round < rounds; round++) {
		struct ferry_runner *r = bt_runner();
		struct stormer st[NS];
		pthread_t th[NS];
		atomic_int closing_done = 0;

		for (int i = 0; i < NS; i++) {
			st[i] = (struct stormer){ .r = r, .kind = i % 3 == 2,
						  .closing_done = &closing_done };
			cr_assert_eq(pthread_create(&th[i], NULL, stormer_main,
						    &st[i]), 0);
		}
		bt_sleep_ms(2 + round % 7);
		cr_assert_eq(ferry_runner_close(r), 0);
		atomic_store(&closing_done, 1);
		for (int i = 0; i < NS; i++) {
			pthread_join(th[i], NULL);
			cr_assert_eq(st[i].bad, 0, "round %d thread %d: %d odd "
				     "results", round, i, st[i].bad);
			cr_assert_eq(st[i].after_closed_ok, 0,
				     "a call succeeded after close returned");
		}
		ferry_runner_destroy(r);
	}
}

static void hog_fn(void *arg)
{
	(void)arg;
	bt_sleep_ms(50);
}

/* Tasks submitted and not yet started when close begins complete with
 * FERRY_ECLOSED (or run, if the loop got to them first). */
Test(close, queued_tasks_complete, .timeout = 30)
{
	struct ferry_runner *r = bt_runner();
	int n = 2000;
	struct bt_now_task *ts = calloc((size_t)n, sizeof(*ts));
	struct bt_fn_task hog = { .t.start = bt_fn_start, .fn = hog_fn };
	int ran = 0, closed = 0;

	/* Keep the loop busy so that the rest is still queued at close. */
	cr_assert_eq(ferry_task_submit(r, &hog.t), 0);
	for (int i = 0; i < n; i++) {
		bt_now_init(&ts[i], i);
		cr_assert_eq(ferry_task_submit(r, &ts[i].t), 0);
	}
	cr_assert_eq(ferry_runner_close(r), 0);
	for (int i = 0; i < n; i++) {
		int rc = ferry_task_wait(&ts[i].t, 0);

		cr_assert(rc == i || closed_or_cancelled(rc),
			  "task %d: %s", i, ferry_strerrorname(rc));
		ran += rc == i;
		closed += rc != i;
	}
	cr_log_info("%d ran, %d closed", ran, closed);
	cr_assert_eq(ferry_task_wait(&hog.t, 0), 0);
	ferry_runner_destroy(r);
	free(ts);
}
