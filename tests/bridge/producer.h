/*
 * tests/bridge/producer.h - a loop-side stream producer for the stream,
 * lines and close tests.
 *
 * The producer copies its bytes into buffers from a small pool that it
 * manages on the loop thread (as a connection lends its receive buffers),
 * pushes them as chunks, and gets them back through ops->release. It is
 * driven by a loop timer (or by a timeout op, in "op" mode) and honours
 * -EAGAIN / resume / stop. Everything it records lives in struct prod_stats,
 * which the test owns; the test reads it through bt_on_loop() (a task, so
 * the read is ordered after the loop's writes) or after the runner closed.
 */
#ifndef FERRY_TEST_BRIDGE_PRODUCER_H
#define FERRY_TEST_BRIDGE_PRODUCER_H

#include "util.h"

/* ------------------------------------------------------------------ */
/* Run a function on the loop thread and wait for it.                    */

struct bt_fn_task {
	struct ferry_task t;
	void (*fn)(void *arg);
	void *arg;
};

static inline void bt_fn_start(struct ferry_task *t)
{
	struct bt_fn_task *f = container_of(t, struct bt_fn_task, t);

	f->fn(f->arg);
	ferry_task_complete(t, 0);
}

static inline void bt_on_loop(struct ferry_runner *r, void (*fn)(void *),
			      void *arg)
{
	struct bt_fn_task f = { .t.start = bt_fn_start, .fn = fn, .arg = arg };

	cr_assert_eq(ferry_call(r, &f.t), 0);
}

/* ------------------------------------------------------------------ */
/* The buffer pool: loop-side only; outlives every stream that uses it.  */

struct pool {
	size_t bufsize;
	void *free[64];
	int nfree;
	int in_use, max_in_use;
	int allocated;
	int released;		/* chunks given back through ops->release */
	int bad_release;	/* release of a buffer not lent */
	int off_loop;		/* callbacks seen off the loop thread */
	pid_t loop_tid;
};

static inline void *pool_get(struct pool *p)
{
	void *b;

	if (p->nfree)
		b = p->free[--p->nfree];
	else {
		b = malloc(p->bufsize);
		p->allocated++;
	}
	if (++p->in_use > p->max_in_use)
		p->max_in_use = p->in_use;
	return b;
}

static inline void pool_put(struct pool *p, void *b)
{
	if (p->in_use <= 0) {
		p->bad_release++;
		return;
	}
	p->in_use--;
	if (p->nfree < 64)
		p->free[p->nfree++] = b;
	else
		free(b);
}

/* After the runner is gone. */
static inline void pool_free(struct pool *p)
{
	while (p->nfree)
		free(p->free[--p->nfree]);
}

static inline void pool_check_thread(struct pool *p)
{
	if (p->loop_tid && bt_gettid() != p->loop_tid)
		p->off_loop++;
}

struct pool_probe {
	struct pool *p;
	int in_use;
};

static void pool_probe_fn(void *arg)
{
	struct pool_probe *pp = arg;

	pp->in_use = pp->p->in_use;
	if (!pp->in_use)
		pool_free(pp->p);
}

/* Wait (bounded) until every chunk of @p came back, then free its buffers:
 * for pools that go out of scope while the runner lives on. */
static inline void bt_pool_drain(struct ferry_runner *r, struct pool *p)
{
	struct pool_probe pp = { .p = p };
	int64_t end = bt_now() + 3000 * BT_MS;

	for (;;) {
		bt_on_loop(r, pool_probe_fn, &pp);
		if (!pp.in_use || bt_now() > end)
			break;
		bt_sleep_ms(1);
	}
	cr_assert_eq(pp.in_use, 0, "%d chunks never released", pp.in_use);
}

/* ------------------------------------------------------------------ */

/* PROD_MANUAL: no timer; the producer ticks only when the test calls
 * bt_stream_tick(), so a deadline on next() must expire in between. */
enum prod_mode { PROD_TIMER, PROD_OP, PROD_MANUAL };

struct prod_cfg {
	unsigned capacity;
	size_t total;		/* bytes to produce; SIZE_MAX = for ever */
	size_t chunk;		/* bytes per chunk (if no script) */
	const size_t *cuts;	/* script: chunk lengths, ncuts of them */
	size_t ncuts;
	const unsigned char *src; /* bytes to send (NULL = bt_pattern) */
	int end_status;		/* given to ferry_stream_end at the end */
	enum prod_mode mode;
	uint64_t interval_ns;	/* between ticks (0 = next loop turn);
				 * unused by PROD_MANUAL */
	unsigned burst;		/* chunks per tick (0 = until full) */
	int try_next_on_loop;	/* check ferry_stream_next -> EDEADLOCK */
};

struct producer;

struct prod_stats {
	struct producer *live;	/* loop-only: the producer until it ends */
	int eagain, resumes, stops, ends, closed_pushes;
	int end_status;
	unsigned max_queued;
	int over_capacity;	/* queued > capacity seen */
	size_t produced;
	pid_t stop_tid;
	int wrong_producer;	/* resume/stop with another pointer */
	int after_end;		/* callbacks after ferry_stream_end */
	int create_err;
};

struct producer {
	struct ferry_stream *s;
	struct ferry_loop *loop;
	struct pool *pool;
	struct prod_stats *st;
	struct prod_cfg cfg;
	struct ferry_timer tm;
	struct ferry_op op;
	size_t pos;
	size_t cut;		/* next script entry */
	void *pending;		/* a chunk refused with -EAGAIN */
	size_t pending_len;
	int paused, stopping;
};

static inline unsigned char bt_pattern(size_t i)
{
	return (unsigned char)((i * 131u + (i >> 8) * 7u + 17u) & 0xff);
}

static void prod_release(void *ctx, uintptr_t token)
{
	struct pool *p = ctx;

	pool_check_thread(p);
	p->released++;
	pool_put(p, (void *)token);
}

static inline void prod_finish(struct producer *pr, int status)
{
	struct prod_stats *st = pr->st;

	if (pr->pending)
		pool_put(pr->pool, pr->pending);
	if (pr->loop)
		ferry_timer_stop(pr->loop, &pr->tm);
	st->ends++;
	st->end_status = status;
	st->live = NULL;
	ferry_stream_end(pr->s, status);
	free(pr);
}

static inline void prod_arm(struct producer *pr);

/* Push the pending chunk or make and push new ones; returns 1 to go on. */
static inline int prod_push_some(struct producer *pr)
{
	unsigned n = 0;

	for (;;) {
		size_t len;
		unsigned char *b;
		int rc;

		if (!pr->pending) {
			if (pr->pos >= pr->cfg.total ||
			    (pr->cfg.cuts && pr->cut >= pr->cfg.ncuts)) {
				prod_finish(pr, pr->cfg.end_status);
				return 0;
			}
			if (pr->cfg.burst && n >= pr->cfg.burst)
				return 1;
			len = pr->cfg.cuts ? pr->cfg.cuts[pr->cut++] : pr->cfg.chunk;
			if (len > pr->cfg.total - pr->pos)
				len = pr->cfg.total - pr->pos;
			b = pool_get(pr->pool);
			for (size_t i = 0; i < len; i++)
				b[i] = pr->cfg.src ? pr->cfg.src[pr->pos + i]
						   : bt_pattern(pr->pos + i);
			pr->pos += len;
			pr->pending = b;
			pr->pending_len = len;
		}
		rc = ferry_stream_push(pr->s, pr->pending, pr->pending_len,
				       (uintptr_t)pr->pending);
		if (rc == -EAGAIN) {
			pr->st->eagain++;
			pr->paused = 1;
			return 0;
		}
		if (rc == FERRY_ECLOSED) {
			pr->st->closed_pushes++;
			prod_finish(pr, 0);
			return 0;
		}
		cr_assert_eq(rc, 0, "ferry_stream_push: %s", ferry_strerrorname(rc));
		pr->st->produced += pr->pending_len;
		pr->pending = NULL;
		n++;
		{
			unsigned q = ferry_stream_queued(pr->s);

			if (q > pr->st->max_queued)
				pr->st->max_queued = q;
			if (q > pr->cfg.capacity)
				pr->st->over_capacity++;
		}
	}
}

static inline void prod_tick(struct producer *pr)
{
	if (prod_push_some(pr))
		prod_arm(pr);
}

static void prod_timer_fn(struct ferry_timer *tm)
{
	prod_tick(container_of(tm, struct producer, tm));
}

static void prod_op_fn(struct ferry_op *op, int res, unsigned flags)
{
	struct producer *pr = container_of(op, struct producer, op);

	(void)flags;
	if (res != -ETIME || pr->stopping) {
		/* Cancelled: by stop(), or by the loop going away. */
		prod_finish(pr, pr->stopping ? 0 : FERRY_ECANCELED);
		return;
	}
	prod_tick(pr);
}

static inline void prod_arm(struct producer *pr)
{
	int rc;

	if (pr->cfg.mode == PROD_MANUAL)
		return;
	if (pr->cfg.mode == PROD_OP) {
		rc = ferry_op_timeout(pr->loop, &pr->op,
				      pr->cfg.interval_ns ? pr->cfg.interval_ns : 1);
		if (rc < 0)
			prod_finish(pr, rc);
		return;
	}
	rc = ferry_timer_start(pr->loop, &pr->tm,
			       ferry_time_now() + pr->cfg.interval_ns);
	if (rc < 0)
		prod_finish(pr, rc);
}

static void prod_resume(struct ferry_stream *s, void *producer)
{
	struct producer *pr = producer;

	pool_check_thread(pr->pool);
	if (s != pr->s)
		pr->st->wrong_producer++;
	pr->st->resumes++;
	if (!pr->paused)
		return;
	pr->paused = 0;
	prod_tick(pr);
}

static void prod_stop(struct ferry_stream *s, void *producer)
{
	struct producer *pr = producer;

	pool_check_thread(pr->pool);
	if (s != pr->s)
		pr->st->wrong_producer++;
	pr->st->stops++;
	pr->st->stop_tid = bt_gettid();
	if (pr->cfg.mode == PROD_OP && ferry_op_busy(&pr->op)) {
		/* End once the op is reaped. */
		pr->stopping = 1;
		ferry_op_cancel(pr->loop, &pr->op);
		return;
	}
	prod_finish(pr, 0);
}

static const struct ferry_stream_ops prod_ops = {
	.release = prod_release,
	.resume = prod_resume,
	.stop = prod_stop,
};

/* The task that opens a stream on the loop and hands it to the caller. */
struct open_task {
	struct ferry_task t;
	struct prod_cfg cfg;
	struct pool *pool;
	struct prod_stats *st;
	struct ferry_stream *s;		/* out */
	int next_on_loop;		/* out: ferry_stream_next on the loop */
};

static void open_start(struct ferry_task *t)
{
	struct open_task *o = container_of(t, struct open_task, t);
	struct ferry_runner *r = ferry_task_runner(t);
	struct producer *pr = calloc(1, sizeof(*pr));
	struct ferry_chunk c;
	int rc;

	o->pool->loop_tid = bt_gettid();
	pr->loop = ferry_runner_loop(r);
	pr->pool = o->pool;
	pr->st = o->st;
	pr->cfg = o->cfg;
	pr->tm.fn = prod_timer_fn;
	pr->op.fn = prod_op_fn;
	rc = ferry_stream_create(r, o->cfg.capacity, &prod_ops, o->pool, pr,
				 &pr->s);
	if (rc < 0) {
		o->st->create_err = rc;
		free(pr);
		ferry_task_complete(t, rc);
		return;
	}
	o->s = pr->s;
	o->st->live = pr;
	if (o->cfg.try_next_on_loop)
		o->next_on_loop = ferry_stream_next(pr->s, &c, -1);
	/* The first chunks go out at once; the rest on ticks. */
	prod_tick(pr);
	ferry_task_complete(t, 0);
}

/* Open a stream from the test thread. */
static inline struct ferry_stream *bt_stream_open(struct ferry_runner *r,
						  const struct prod_cfg *cfg,
						  struct pool *pool,
						  struct prod_stats *st)
{
	struct open_task o = { .t.start = open_start, .cfg = *cfg,
			       .pool = pool, .st = st };
	int rc;

	if (!o.cfg.capacity)
		o.cfg.capacity = 16;
	if (!pool->bufsize)
		pool->bufsize = cfg->chunk ? cfg->chunk : 4096;
	rc = ferry_call(r, &o.t);
	cr_assert_eq(rc, 0, "opening a stream: %s", ferry_strerrorname(rc));
	if (cfg->try_next_on_loop)
		cr_assert_eq(o.next_on_loop, FERRY_EDEADLOCK,
			     "ferry_stream_next on the loop thread: %s",
			     ferry_strerrorname(o.next_on_loop));
	return o.s;
}

static void prod_manual_tick_fn(void *arg)
{
	struct prod_stats *st = arg;

	if (st->live && !st->live->paused)
		prod_tick(st->live);
}

/* One tick of a PROD_MANUAL producer (by its stats), run on the loop and
 * waited for: its chunks (up to cfg.burst) are queued when this returns.
 * Does nothing once the producer ended, or while it waits for resume. */
static inline void bt_stream_tick(struct ferry_runner *r, struct prod_stats *st)
{
	bt_on_loop(r, prod_manual_tick_fn, st);
}

#endif /* FERRY_TEST_BRIDGE_PRODUCER_H */
