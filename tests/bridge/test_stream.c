/*
 * test_stream.c - streams of lent chunks from a loop-side producer to one
 * consumer thread: every byte in order, backpressure with a slow consumer,
 * early close by the consumer, producer errors, next deadlines.
 */
#include "producer.h"

struct consumed {
	size_t bytes;
	int chunks;
	int bad_at;		/* first wrong byte's offset + 1, 0 = none */
	int rc;			/* what ended the loop */
};

/* Read until EOF/error, checking the pattern; sleeps @sleep_us between. */
static struct consumed consume(struct ferry_stream *s, const unsigned char *src,
			       int sleep_us, int max_chunks)
{
	struct consumed c = { 0 };
	struct ferry_chunk ch;

	while (max_chunks < 0 || c.chunks < max_chunks) {
		c.rc = ferry_stream_next(s, &ch, 10000 * BT_MS);
		if (c.rc != 1)
			break;
		cr_assert_not_null(ch.data);
		for (size_t i = 0; i < ch.len && !c.bad_at; i++) {
			size_t at = c.bytes + i;
			unsigned char want = src ? src[at] : bt_pattern(at);

			if (((const unsigned char *)ch.data)[i] != want)
				c.bad_at = (int)at + 1;
		}
		c.bytes += ch.len;
		c.chunks++;
		if (sleep_us)
			usleep((useconds_t)sleep_us);
	}
	return c;
}

/* Loop-side reads of the stats. */
struct stats_view {
	struct pool *pool;
	struct prod_stats *st;
	struct pool pool_copy;
	struct prod_stats st_copy;
};

static void snap_fn(void *arg)
{
	struct stats_view *v = arg;

	v->pool_copy = *v->pool;
	v->st_copy = *v->st;
}

static struct stats_view snapshot(struct ferry_runner *r, struct pool *p,
				  struct prod_stats *st)
{
	struct stats_view v = { .pool = p, .st = st };

	bt_on_loop(r, snap_fn, &v);
	return v;
}

/* ------------------------------------------------------------------ */

Test(stream, every_byte_in_order, .timeout = 30)
{
	struct ferry_runner *r = bt_runner();
	struct pool pool = { .bufsize = 1000 };
	struct prod_stats st = { 0 };
	struct prod_cfg cfg = { .capacity = 8, .total = 1000 * 1000 + 123,
				.chunk = 1000, .interval_ns = 0, .burst = 3,
				.try_next_on_loop = 1 };
	struct ferry_stream *s = bt_stream_open(r, &cfg, &pool, &st);
	struct consumed c = consume(s, NULL, 0, -1);
	struct stats_view v;

	cr_assert_eq(c.rc, 0, "stream ended with %s", ferry_strerrorname(c.rc));
	cr_assert_eq(c.bad_at, 0, "wrong byte at offset %d", c.bad_at - 1);
	cr_assert_eq(c.bytes, cfg.total);
	cr_assert_eq(c.chunks, 1001);
	/* After the end, next keeps saying so. */
	cr_assert_eq(ferry_stream_next(s, &(struct ferry_chunk){ 0 }, 0), 0);
	ferry_stream_close(s);
	v = snapshot(r, &pool, &st);
	cr_assert_eq(v.st_copy.ends, 1);
	cr_assert_eq(v.st_copy.stops, 0, "stop() after a clean end");
	cr_assert_eq(v.st_copy.over_capacity, 0);
	cr_assert_eq(v.st_copy.wrong_producer + v.st_copy.after_end, 0);
	cr_assert_eq(v.pool_copy.in_use, 0, "%d chunks never released",
		     v.pool_copy.in_use);
	cr_assert_eq(v.pool_copy.released, 1001);
	cr_assert_eq(v.pool_copy.bad_release + v.pool_copy.off_loop, 0);
	ferry_runner_destroy(r);
	pool_free(&pool);
}

/* A slow consumer: the producer is told -EAGAIN, pauses, and resumes as the
 * consumer drains; the channel and the buffer pool stay bounded. */
Test(stream, backpressure_with_slow_consumer, .timeout = 30)
{
	struct ferry_runner *r = bt_runner();
	struct pool pool = { .bufsize = 512 };
	struct prod_stats st = { 0 };
	struct prod_cfg cfg = { .capacity = 4, .total = 512 * 300,
				.chunk = 512, .interval_ns = 0 };
	struct ferry_stream *s = bt_stream_open(r, &cfg, &pool, &st);
	struct consumed c;
	struct stats_view v;

	/* Let the producer fill the channel, then check it stopped there. */
	bt_sleep_ms(20);
	v = snapshot(r, &pool, &st);
	cr_assert_gt(v.st_copy.eagain, 0, "a full channel must refuse pushes");
	cr_assert_leq(v.st_copy.produced, (size_t)512 * 4,
		      "%zu bytes pushed into a channel of 4 chunks",
		      v.st_copy.produced);
	c = consume(s, NULL, 1000, -1);
	cr_assert_eq(c.rc, 0, "%s", ferry_strerrorname(c.rc));
	cr_assert_eq(c.bad_at, 0, "wrong byte at offset %d", c.bad_at - 1);
	cr_assert_eq(c.bytes, cfg.total);
	ferry_stream_close(s);
	v = snapshot(r, &pool, &st);
	cr_log_info("eagain %d resumes %d max queued %u pool max %d allocated %d",
		    v.st_copy.eagain, v.st_copy.resumes, v.st_copy.max_queued,
		    v.pool_copy.max_in_use, v.pool_copy.allocated);
	cr_assert_gt(v.st_copy.eagain, 10, "eagain %d", v.st_copy.eagain);
	cr_assert_gt(v.st_copy.resumes, 10, "resumes %d", v.st_copy.resumes);
	cr_assert_leq(v.st_copy.resumes, v.st_copy.eagain,
		      "resume() without a refused push");
	cr_assert_eq(v.st_copy.over_capacity, 0, "queued %u > capacity 4",
		     v.st_copy.max_queued);
	cr_assert_leq(v.st_copy.max_queued, 4);
	/* capacity lent + the one chunk held back after -EAGAIN */
	cr_assert_leq(v.pool_copy.max_in_use, 5, "pool grew to %d buffers",
		      v.pool_copy.max_in_use);
	cr_assert_eq(v.pool_copy.in_use, 0);
	cr_assert_eq(v.pool_copy.bad_release + v.pool_copy.off_loop, 0);
	ferry_runner_destroy(r);
	pool_free(&pool);
}

/* The loop's view of the queue, read on the loop thread. */
struct queued_probe {
	struct ferry_stream *s;
	unsigned queued;
};

static void queued_fn(void *arg)
{
	struct queued_probe *q = arg;

	q->queued = ferry_stream_queued(q->s);
}

/*
 * The pause and resume marks, step by step: a producer that fills an
 * 8-chunk channel is refused at 8 queued (the high-water mark) and told
 * to resume only when the queue has drained to 4 (the low-water mark),
 * not at the first free slot; then it fills the channel again, and
 * pauses once more. Each step is checked after a task on the loop, which
 * runs after the consumer's notify posts (the inbox is FIFO), so what
 * the loop did with them is settled.
 */
Test(stream, pauses_at_high_water_resumes_at_low_water, .timeout = 30)
{
	struct ferry_runner *r = bt_runner();
	struct pool pool = { .bufsize = 100 };
	struct prod_stats st = { 0 };
	struct prod_cfg cfg = { .capacity = 8, .total = 100 * 64, .chunk = 100 };
	struct ferry_stream *s = bt_stream_open(r, &cfg, &pool, &st);
	struct queued_probe q = { .s = s };
	struct ferry_stream_stats ss;
	struct ferry_chunk c;
	struct consumed rest;
	struct stats_view v;

	/* The open filled the channel and was refused once. */
	ferry_stream_stats(s, &ss);
	cr_assert_eq(ss.capacity, 8);
	cr_assert_eq(ss.low_water, 4);
	cr_assert_eq(ss.pushed, 8);
	cr_assert_eq(ss.max_queued, 8);
	cr_assert_eq(ss.pauses, 1);
	cr_assert_eq(ss.resumes, 0);

	/* Give chunks back one at a time (the next call returns the one
	 * lent before). Above the low-water mark nothing resumes. */
	cr_assert_eq(ferry_stream_next(s, &c, 0), 1);
	for (int returned = 1; returned <= 3; returned++) {
		cr_assert_eq(ferry_stream_next(s, &c, 0), 1);
		bt_on_loop(r, queued_fn, &q);
		ferry_stream_stats(s, &ss);
		cr_assert_eq(ss.resumes, 0, "resumed with %d of 8 chunks given "
			     "back (queued %u, low-water mark 4)", returned,
			     q.queued);
		cr_assert_eq(ss.pushed, 8);
		cr_assert_geq(q.queued, 8u - (unsigned)returned);
	}
	/* The fourth brings the queue to 4: resume, refill, pause again. */
	cr_assert_eq(ferry_stream_next(s, &c, 0), 1);
	bt_on_loop(r, queued_fn, &q);
	ferry_stream_stats(s, &ss);
	cr_assert_eq(ss.resumes, 1, "not resumed at the low-water mark");
	cr_assert_eq(ss.pushed, 12, "the resumed producer refills the channel");
	cr_assert_eq(ss.pauses, 2);
	cr_assert_eq(ss.max_queued, 8);
	cr_assert_eq(q.queued, 8);
	v = snapshot(r, &pool, &st);
	cr_assert_eq(v.st_copy.resumes, 1);
	cr_assert_eq(v.st_copy.eagain, 2);

	/* The rest: every pause is followed by room for half a channel, so
	 * 64 chunks cost at most 64 / 4 pauses, whatever the timing. */
	rest = consume(s, NULL, 0, -1);
	cr_assert_eq(rest.rc, 0);
	ferry_stream_stats(s, &ss);
	cr_assert_eq(ss.pushed, 64);
	cr_assert_leq(ss.max_queued, 8);
	cr_assert_leq(ss.pauses, 64 / 4, "%u pauses", ss.pauses);
	cr_assert_leq(ss.resumes, ss.pauses);
	ferry_stream_close(s);
	v = snapshot(r, &pool, &st);
	cr_assert_eq(v.st_copy.over_capacity, 0);
	cr_assert_eq(v.pool_copy.in_use, 0);
	ferry_runner_destroy(r);
	pool_free(&pool);
}

/* Stats of nothing are zero, and a NULL out-pointer is a no-op. */
Test(stream, stats_of_null, .timeout = 10)
{
	struct ferry_stream_stats ss = { .capacity = 7, .pauses = 7 };

	ferry_stream_stats(NULL, &ss);
	cr_assert_eq(ss.capacity, 0);
	cr_assert_eq(ss.pauses, 0);
	ferry_stream_stats(NULL, NULL);
}

/* Capacity 2, the smallest, and chunks of one byte. */
Test(stream, tiny_channel_tiny_chunks, .timeout = 30)
{
	struct ferry_runner *r = bt_runner();
	struct pool pool = { .bufsize = 1 };
	struct prod_stats st = { 0 };
	struct prod_cfg cfg = { .capacity = 2, .total = (size_t)bt_scaled(20000),
				.chunk = 1 };
	struct ferry_stream *s = bt_stream_open(r, &cfg, &pool, &st);
	struct consumed c = consume(s, NULL, 0, -1);
	struct stats_view v;

	cr_assert_eq(c.rc, 0);
	cr_assert_eq(c.bad_at, 0, "wrong byte at offset %d", c.bad_at - 1);
	cr_assert_eq(c.bytes, cfg.total);
	ferry_stream_close(s);
	v = snapshot(r, &pool, &st);
	cr_assert_leq(v.st_copy.max_queued, 2);
	cr_assert_leq(v.pool_copy.max_in_use, 3);
	cr_assert_eq(v.pool_copy.in_use, 0);
	ferry_runner_destroy(r);
	pool_free(&pool);
}

/* The consumer closes early: stop() runs on the loop, every chunk comes
 * back, the producer is freed (ASan's leak check). */
static void early_close(int chunks_read, enum prod_mode mode)
{
	struct ferry_runner *r = bt_runner();
	pid_t loop_tid = bt_loop_tid(r);
	struct pool pool = { .bufsize = 256 };
	struct prod_stats st = { 0 };
	struct prod_cfg cfg = { .capacity = 8, .total = SIZE_MAX,
				.chunk = 256, .mode = mode,
				.interval_ns = mode == PROD_OP ? 100000 : 0 };
	struct ferry_stream *s = bt_stream_open(r, &cfg, &pool, &st);
	struct consumed c = consume(s, NULL, 0, chunks_read);
	struct stats_view v;
	int64_t end;

	cr_assert_eq(c.chunks, chunks_read);
	cr_assert_eq(c.bad_at, 0);
	ferry_stream_close(s);
	end = bt_now() + 3000 * BT_MS;
	do {
		v = snapshot(r, &pool, &st);
		if (v.st_copy.ends && v.pool_copy.in_use == 0)
			break;
		bt_sleep_ms(1);
	} while (bt_now() < end);
	/* The producer learns of the close from stop() or from a refused
	 * push, whichever comes first; then it ends, once. */
	cr_assert_eq(v.st_copy.ends, 1, "the producer ended %d times",
		     v.st_copy.ends);
	cr_assert_eq(v.st_copy.stops + v.st_copy.closed_pushes, 1,
		     "stop() ran %d times, %d pushes refused", v.st_copy.stops,
		     v.st_copy.closed_pushes);
	if (v.st_copy.stops)
		cr_assert_eq(v.st_copy.stop_tid, loop_tid,
			     "stop() off the loop thread");
	/* Paused on a full channel, it can only learn from stop(). */
	if (chunks_read == 0)
		cr_assert_eq(v.st_copy.stops, 1, "a paused producer was not "
			     "stopped");
	cr_assert_eq(v.pool_copy.in_use, 0, "%d chunks never released",
		     v.pool_copy.in_use);
	cr_assert_eq(v.pool_copy.bad_release + v.pool_copy.off_loop, 0);
	cr_assert_eq(v.st_copy.wrong_producer, 0);
	ferry_runner_destroy(r);
	pool_free(&pool);
}

Test(stream, early_close_before_reading, .timeout = 10)
{
	early_close(0, PROD_TIMER);
}

Test(stream, early_close_holding_a_chunk, .timeout = 10)
{
	early_close(5, PROD_TIMER);
}

Test(stream, early_close_op_driven_producer, .timeout = 10)
{
	early_close(3, PROD_OP);
}

/* Close after the producer ended but before EOF was read: no stop(). */
Test(stream, close_after_producer_ended, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct pool pool = { .bufsize = 100 };
	struct prod_stats st = { 0 };
	struct prod_cfg cfg = { .capacity = 16, .total = 1000, .chunk = 100 };
	struct ferry_stream *s = bt_stream_open(r, &cfg, &pool, &st);
	struct consumed c = consume(s, NULL, 0, 2);
	struct stats_view v;

	cr_assert_eq(c.chunks, 2);
	bt_sleep_ms(10);
	v = snapshot(r, &pool, &st);
	cr_assert_eq(v.st_copy.ends, 1, "the producer should be done");
	ferry_stream_close(s);
	v = snapshot(r, &pool, &st);
	for (int i = 0; i < 100 && v.pool_copy.in_use; i++) {
		bt_sleep_ms(1);
		v = snapshot(r, &pool, &st);
	}
	cr_assert_eq(v.st_copy.stops, 0);
	cr_assert_eq(v.pool_copy.in_use, 0);
	cr_assert_eq(v.pool_copy.released, 10);
	ferry_runner_destroy(r);
	pool_free(&pool);
}

/* The producer fails: the consumer gets every queued chunk, then the error. */
Test(stream, producer_error_after_queued_chunks, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct pool pool = { .bufsize = 100 };
	struct prod_stats st = { 0 };
	struct prod_cfg cfg = { .capacity = 16, .total = 1000, .chunk = 100,
				.end_status = -ECONNRESET };
	struct ferry_stream *s = bt_stream_open(r, &cfg, &pool, &st);
	struct consumed c;

	bt_sleep_ms(10);	/* the error is queued behind all ten chunks */
	c = consume(s, NULL, 0, -1);
	cr_assert_eq(c.rc, -ECONNRESET, "%s", ferry_strerrorname(c.rc));
	cr_assert_eq(c.chunks, 10);
	cr_assert_eq(c.bytes, 1000);
	cr_assert_eq(c.bad_at, 0);
	ferry_stream_close(s);
	ferry_runner_destroy(r);
	cr_assert_eq(pool.in_use, 0);
	pool_free(&pool);
}

/* Same with a slow producer and backpressure along the way. */
Test(stream, producer_error_with_backpressure, .timeout = 20)
{
	struct ferry_runner *r = bt_runner();
	struct pool pool = { .bufsize = 100 };
	struct prod_stats st = { 0 };
	struct prod_cfg cfg = { .capacity = 2, .total = 5000, .chunk = 100,
				.end_status = FERRY_EPROTO };
	struct ferry_stream *s = bt_stream_open(r, &cfg, &pool, &st);
	struct consumed c = consume(s, NULL, 200, -1);

	cr_assert_eq(c.rc, FERRY_EPROTO, "%s", ferry_strerrorname(c.rc));
	cr_assert_eq(c.bytes, 5000);
	cr_assert_eq(c.bad_at, 0);
	ferry_stream_close(s);
	ferry_runner_destroy(r);
	cr_assert_eq(pool.in_use, 0);
	pool_free(&pool);
}

/* next with a deadline on a slow producer: it ticks only when the test
 * says so, so the deadlines must expire before the next chunk. */
Test(stream, next_deadline, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct pool pool = { .bufsize = 10 };
	struct prod_stats st = { 0 };
	struct prod_cfg cfg = { .capacity = 4, .total = 30, .chunk = 10,
				.burst = 1, .mode = PROD_MANUAL };
	struct ferry_stream *s = bt_stream_open(r, &cfg, &pool, &st);
	struct ferry_chunk ch;
	int64_t t0;

	/* The first chunk goes out at once. */
	cr_assert_eq(ferry_stream_next(s, &ch, 5000 * BT_MS), 1);
	cr_assert_eq(ch.len, 10);
	t0 = bt_now();
	cr_assert_eq(ferry_stream_next(s, &ch, 20 * BT_MS), FERRY_ETIMEDOUT);
	cr_assert_geq(bt_now() - t0, 20 * BT_MS, "the deadline fired early");
	cr_assert_eq(ferry_stream_next(s, &ch, 0), FERRY_ETIMEDOUT);
	bt_stream_tick(r, &st);
	cr_assert_eq(ferry_stream_next(s, &ch, 5000 * BT_MS), 1);
	cr_assert_eq(((const unsigned char *)ch.data)[0], bt_pattern(10));
	cr_assert_eq(ferry_stream_next(s, &ch, 0), FERRY_ETIMEDOUT);
	bt_stream_tick(r, &st);
	cr_assert_eq(ferry_stream_next(s, &ch, 5000 * BT_MS), 1);
	cr_assert_eq(((const unsigned char *)ch.data)[9], bt_pattern(29));
	cr_assert_eq(ferry_stream_next(s, &ch, 5000 * BT_MS), 0);
	ferry_stream_close(s);
	ferry_stream_close(NULL);
	ferry_runner_destroy(r);
	cr_assert_eq(pool.in_use, 0);
	pool_free(&pool);
}

/* Several streams on one runner, each with its own consumer thread. */
struct stream_reader {
	struct ferry_stream *s;
	struct consumed c;
};

static void *reader_main(void *arg)
{
	struct stream_reader *rd = arg;

	rd->c = consume(rd->s, NULL, 0, -1);
	ferry_stream_close(rd->s);
	return NULL;
}

Test(stream, many_streams_many_consumers, .timeout = 30)
{
	enum { NS = 8 };
	struct ferry_runner *r = bt_runner();
	struct pool pool[NS];
	struct prod_stats st[NS];
	struct stream_reader rd[NS];
	pthread_t th[NS];
	struct prod_cfg cfg = { .capacity = 4, .total = 200 * 1000,
				.chunk = 1000, .burst = 2 };

	for (int i = 0; i < NS; i++) {
		pool[i] = (struct pool){ .bufsize = 1000 };
		st[i] = (struct prod_stats){ 0 };
		rd[i].s = bt_stream_open(r, &cfg, &pool[i], &st[i]);
		cr_assert_eq(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
	}
	for (int i = 0; i < NS; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(rd[i].c.rc, 0);
		cr_assert_eq(rd[i].c.bytes, cfg.total);
		cr_assert_eq(rd[i].c.bad_at, 0);
	}
	ferry_runner_destroy(r);
	for (int i = 0; i < NS; i++) {
		cr_assert_eq(pool[i].in_use, 0);
		cr_assert_leq(st[i].max_queued, 4);
		pool_free(&pool[i]);
	}
}

/* Bad arguments to create. */
struct create_args {
	struct ferry_task t;
	int rc[4];
};

static void nop_release(void *ctx, uintptr_t token)
{
	(void)ctx;
	(void)token;
}

static void create_args_start(struct ferry_task *t)
{
	struct create_args *a = container_of(t, struct create_args, t);
	struct ferry_runner *r = ferry_task_runner(t);
	static const struct ferry_stream_ops ops = { .release = nop_release };
	static const struct ferry_stream_ops no_release = { 0 };
	struct ferry_stream *s = NULL;

	a->rc[0] = ferry_stream_create(r, 3, &ops, NULL, NULL, &s);
	a->rc[1] = ferry_stream_create(r, 8192, &ops, NULL, NULL, &s);
	a->rc[2] = ferry_stream_create(r, 16, &no_release, NULL, NULL, &s);
	a->rc[3] = ferry_stream_create(r, 1, &ops, NULL, NULL, &s);
	ferry_task_complete(t, 0);
}

Test(stream, create_rejects_bad_arguments, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct create_args a = { .t.start = create_args_start };

	cr_assert_eq(ferry_call(r, &a.t), 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(a.rc[i], FERRY_EINVAL, "case %d: %s", i,
			     ferry_strerrorname(a.rc[i]));
	ferry_runner_destroy(r);
}
