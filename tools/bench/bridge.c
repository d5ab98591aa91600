/*
 * bridge.c - round trip of a no-op task through ferry's bridge, against a
 * mutex + condition variable handoff and a raw futex ping-pong.
 *
 *   tools/bench/run bridge [--quick]
 *
 * For 1, 4 and 16 caller threads, each variant runs for a fixed time while
 * every caller times each round trip with clock_gettime; the variants take
 * turns (A B A B ...) in one process, and the table shows the median over
 * the rounds with the min-max beside it:
 *
 *   p50, p99   latency of one round trip (all callers' samples merged)
 *   tput       round trips per second, all callers together
 *   cpu/rt     process CPU (getrusage user+sys, every thread: callers,
 *              the loop or worker thread, spinning included) per round trip
 *
 * Variants:
 *   bridge   ferry_call() of a task whose start() completes at once
 *   condvar  a queue under a mutex; one worker thread sleeps on a condvar
 *            while the queue is empty, pops every item, runs it, and
 *            signals each caller's own condvar; the ordinary way to do it
 *   futex    two threads hand one word back and forth with FUTEX_WAIT and
 *            FUTEX_WAKE, no spinning: the kernel's floor (1 caller only)
 *
 * Then an idle runner: the process CPU used in 1 s by a started runner with
 * nothing to do. The last line is machine-readable:
 *
 *   RESULT bridge_vs_condvar=<condvar p50 / bridge p50, 1 caller>
 *          cpu_vs_condvar=<bridge cpu/rt / condvar cpu/rt, 1 caller>
 *          tput16_vs_condvar=<bridge tput / condvar tput, 16 callers>
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ferry/bridge.h"
#include "ferry/error.h"

#define MAX_THREADS 16
#define MAX_ROUNDS 9

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
		       1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
		       1000u;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u),
			       (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------------ */
/* Latency histogram: 64 sub-buckets per power of two (1.6 % precision). */

#define HIST_SUB 64
#define HIST_BUCKETS (64 * HIST_SUB)

struct hist {
	uint64_t n;
	uint32_t b[HIST_BUCKETS];
};

static unsigned hist_index(uint64_t v)
{
	unsigned e;

	if (v < HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);	/* >= 6 */
	return (e - 5) * HIST_SUB + (unsigned)((v >> (e - 6)) & (HIST_SUB - 1));
}

static uint64_t hist_value(unsigned i)
{
	unsigned e;

	if (i < HIST_SUB)
		return i;
	e = i / HIST_SUB + 5;
	/* the bucket's midpoint */
	return ((uint64_t)(HIST_SUB + i % HIST_SUB) << (e - 6)) +
	       ((uint64_t)1 << (e - 6)) / 2;
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->n++;
}

static void hist_merge(struct hist *into, const struct hist *h)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->b[i] += h->b[i];
	into->n += h->n;
}

static uint64_t hist_pct(const struct hist *h, double p)
{
	uint64_t want = (uint64_t)(p * (double)h->n), seen = 0;

	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > want)
			return hist_value(i);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* A run: N callers doing round trips until told to stop.               */

struct variant;

struct run;

struct caller {
	struct run *run;
	const struct variant *v;
	void *ctx;		/* the variant's shared state */
	int id;
	struct hist h;
	uint64_t ops;
	pthread_t th;
};

struct run {
	atomic_int go, stop;
	atomic_int ready;
	struct caller c[MAX_THREADS];
};

struct variant {
	const char *name;
	void *(*setup)(void);
	void (*teardown)(void *ctx);
	/* Per caller: state for round trips, and one round trip. */
	void *(*caller_init)(void *ctx, int id);
	void (*roundtrip)(void *ctx, void *cs);
	void (*caller_fini)(void *cs);
};

static void *caller_main(void *arg)
{
	struct caller *c = arg;
	struct run *run = c->run;
	void *cs = c->v->caller_init(c->ctx, c->id);

	atomic_fetch_add(&run->ready, 1);
	while (!atomic_load_explicit(&run->go, memory_order_acquire))
		;
	while (!atomic_load_explicit(&run->stop, memory_order_relaxed)) {
		uint64_t t0 = now_ns();

		c->v->roundtrip(c->ctx, cs);
		hist_add(&c->h, now_ns() - t0);
		c->ops++;
	}
	c->v->caller_fini(cs);
	return NULL;
}

struct result {
	double p50_us, p99_us, tput, cpu_us;
};

static struct result run_once(const struct variant *v, void *ctx, int nthreads,
			      uint64_t dur_ns)
{
	struct run *run = calloc(1, sizeof(*run));
	struct hist *all = calloc(1, sizeof(*all));
	struct result res;
	uint64_t t0, t1, c0, c1, ops = 0;

	for (int i = 0; i < nthreads; i++) {
		run->c[i].run = run;
		run->c[i].v = v;
		run->c[i].ctx = ctx;
		run->c[i].id = i;
		if (pthread_create(&run->c[i].th, NULL, caller_main, &run->c[i])) {
			fprintf(stderr, "pthread_create failed\n");
			exit(1);
		}
	}
	while (atomic_load(&run->ready) < nthreads)
		sleep_ns(100000);
	c0 = cpu_ns();
	t0 = now_ns();
	atomic_store_explicit(&run->go, 1, memory_order_release);
	sleep_ns(dur_ns);
	atomic_store(&run->stop, 1);
	for (int i = 0; i < nthreads; i++)
		pthread_join(run->c[i].th, NULL);
	t1 = now_ns();
	c1 = cpu_ns();
	for (int i = 0; i < nthreads; i++) {
		hist_merge(all, &run->c[i].h);
		ops += run->c[i].ops;
	}
	res.p50_us = (double)hist_pct(all, 0.50) / 1e3;
	res.p99_us = (double)hist_pct(all, 0.99) / 1e3;
	res.tput = (double)ops / ((double)(t1 - t0) / 1e9);
	res.cpu_us = ops ? (double)(c1 - c0) / 1e3 / (double)ops : 0;
	free(all);
	free(run);
	return res;
}

/* ------------------------------------------------------------------ */
/* (a) ferry's bridge                                                     */

struct nop_task {
	struct ferry_task t;
};

static void nop_start(struct ferry_task *t)
{
	ferry_task_complete(t, 0);
}

static struct ferry_runner *g_runner;

static void *bridge_setup(void)
{
	return g_runner;
}

static void bridge_teardown(void *ctx)
{
	(void)ctx;
}

static void *bridge_caller_init(void *ctx, int id)
{
	struct nop_task *n = calloc(1, sizeof(*n));

	(void)ctx;
	(void)id;
	n->t.start = nop_start;
	return n;
}

static void bridge_roundtrip(void *ctx, void *cs)
{
	struct nop_task *n = cs;
	int rc = ferry_call(ctx, &n->t);

	if (rc != 0) {
		fprintf(stderr, "ferry_call: %s\n", ferry_strerror(rc));
		exit(1);
	}
}

static void free_cs(void *cs)
{
	free(cs);
}

static const struct variant v_bridge = {
	"bridge", bridge_setup, bridge_teardown,
	bridge_caller_init, bridge_roundtrip, free_cs,
};

/* ------------------------------------------------------------------ */
/* (b) mutex + condition variable handoff to a worker thread             */

struct cv_item {
	struct cv_item *next;
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool done;
};

struct cv_queue {
	pthread_mutex_t m;
	pthread_cond_t cv;
	struct cv_item *head, **tailp;
	bool idle;		/* the worker sleeps on cv */
	bool quit;
	pthread_t worker;
};

static void *cv_worker(void *arg)
{
	struct cv_queue *q = arg;

	pthread_mutex_lock(&q->m);
	for (;;) {
		struct cv_item *batch;

		while (!q->head && !q->quit) {
			q->idle = true;
			pthread_cond_wait(&q->cv, &q->m);
			q->idle = false;
		}
		if (!q->head && q->quit)
			break;
		batch = q->head;
		q->head = NULL;
		q->tailp = &q->head;
		pthread_mutex_unlock(&q->m);
		while (batch) {
			struct cv_item *it = batch;

			batch = it->next;
			/* the no-op task runs here */
			pthread_mutex_lock(&it->m);
			it->done = true;
			pthread_cond_signal(&it->cv);
			pthread_mutex_unlock(&it->m);
		}
		pthread_mutex_lock(&q->m);
	}
	pthread_mutex_unlock(&q->m);
	return NULL;
}

static void *cv_setup(void)
{
	struct cv_queue *q = calloc(1, sizeof(*q));

	pthread_mutex_init(&q->m, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->tailp = &q->head;
	pthread_create(&q->worker, NULL, cv_worker, q);
	return q;
}

static void cv_teardown(void *ctx)
{
	struct cv_queue *q = ctx;

	pthread_mutex_lock(&q->m);
	q->quit = true;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->m);
	pthread_join(q->worker, NULL);
	pthread_mutex_destroy(&q->m);
	pthread_cond_destroy(&q->cv);
	free(q);
}

static void *cv_caller_init(void *ctx, int id)
{
	struct cv_item *it = calloc(1, sizeof(*it));

	(void)ctx;
	(void)id;
	pthread_mutex_init(&it->m, NULL);
	pthread_cond_init(&it->cv, NULL);
	return it;
}

static void cv_roundtrip(void *ctx, void *cs)
{
	struct cv_queue *q = ctx;
	struct cv_item *it = cs;
	bool wake;

	it->done = false;	/* not visible to the worker until queued */
	it->next = NULL;
	pthread_mutex_lock(&q->m);
	*q->tailp = it;
	q->tailp = &it->next;
	wake = q->idle;
	pthread_mutex_unlock(&q->m);
	if (wake)
		pthread_cond_signal(&q->cv);
	pthread_mutex_lock(&it->m);
	while (!it->done)
		pthread_cond_wait(&it->cv, &it->m);
	pthread_mutex_unlock(&it->m);
}

static void cv_caller_fini(void *cs)
{
	struct cv_item *it = cs;

	pthread_mutex_destroy(&it->m);
	pthread_cond_destroy(&it->cv);
	free(it);
}

static const struct variant v_condvar = {
	"condvar", cv_setup, cv_teardown,
	cv_caller_init, cv_roundtrip, cv_caller_fini,
};

/* ------------------------------------------------------------------ */
/* (c) raw futex ping-pong between two threads                           */

struct fx {
	_Atomic uint32_t word;	/* 0: caller's turn, 1: server's, 2: quit */
	pthread_t server;
};

static long futex(_Atomic uint32_t *w, int op, uint32_t val)
{
	return syscall(SYS_futex, w, op, val, NULL, NULL, 0);
}

static void *fx_server(void *arg)
{
	struct fx *f = arg;

	for (;;) {
		uint32_t v = atomic_load(&f->word);

		if (v == 0) {
			futex(&f->word, FUTEX_WAIT_PRIVATE, 0);
			continue;
		}
		if (v == 2)
			return NULL;
		/* the no-op task runs here */
		atomic_store(&f->word, 0);
		futex(&f->word, FUTEX_WAKE_PRIVATE, 1);
	}
}

static void *fx_setup(void)
{
	struct fx *f = calloc(1, sizeof(*f));

	pthread_create(&f->server, NULL, fx_server, f);
	return f;
}

static void fx_teardown(void *ctx)
{
	struct fx *f = ctx;

	atomic_store(&f->word, 2);
	futex(&f->word, FUTEX_WAKE_PRIVATE, 1);
	pthread_join(f->server, NULL);
	free(f);
}

static void *fx_caller_init(void *ctx, int id)
{
	(void)ctx;
	(void)id;
	return NULL;
}

static void fx_roundtrip(void *ctx, void *cs)
{
	struct fx *f = ctx;

	(void)cs;
	atomic_store(&f->word, 1);
	futex(&f->word, FUTEX_WAKE_PRIVATE, 1);
	while (atomic_load(&f->word) == 1)
		futex(&f->word, FUTEX_WAIT_PRIVATE, 1);
}

static void fx_caller_fini(void *cs)
{
	(void)cs;
}

static const struct variant v_futex = {
	"futex", fx_setup, fx_teardown,
	fx_caller_init, fx_roundtrip, fx_caller_fini,
};

/* ------------------------------------------------------------------ */
/* Rounds and the table                                                  */

struct series {
	struct result r[MAX_ROUNDS];
	int n;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median, min and max of one field over the rounds. */
static void stat_of(const struct series *s, size_t off, double *med,
		    double *lo, double *hi)
{
	double v[MAX_ROUNDS];

	for (int i = 0; i < s->n; i++)
		v[i] = *(const double *)((const char *)&s->r[i] + off);
	qsort(v, (size_t)s->n, sizeof(v[0]), cmp_double);
	*med = s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
	*lo = v[0];
	*hi = v[s->n - 1];
}

static double median_of(const struct series *s, size_t off)
{
	double m, lo, hi;

	stat_of(s, off, &m, &lo, &hi);
	return m;
}

static void print_cell(const struct series *s, size_t off, double scale,
		       const char *fmt)
{
	double m, lo, hi;
	char buf[64], a[16], b[16], c[16];

	stat_of(s, off, &m, &lo, &hi);
	snprintf(a, sizeof(a), fmt, m * scale);
	snprintf(b, sizeof(b), fmt, lo * scale);
	snprintf(c, sizeof(c), fmt, hi * scale);
	snprintf(buf, sizeof(buf), "%s (%s-%s)", a, b, c);
	printf(" %-22s", buf);
}

static void print_row(const char *name, int threads, const struct series *s)
{
	printf("%-8s %3d", name, threads);
	print_cell(s, offsetof(struct result, p50_us), 1, "%.1f");
	print_cell(s, offsetof(struct result, p99_us), 1, "%.0f");
	print_cell(s, offsetof(struct result, tput), 1e-3, "%.0f");
	print_cell(s, offsetof(struct result, cpu_us), 1, "%.2f");
	printf("\n");
}

/* The process CPU used by an idle, started runner over @ns. */
static double idle_runner_cpu_ms(uint64_t ns)
{
	struct ferry_runner *r = NULL;
	struct nop_task n = { .t.start = nop_start };
	uint64_t c0, c1;
	int rc;

	if ((rc = ferry_runner_create(&r, NULL)) ||
	    (rc = ferry_call(r, &n.t))) {
		fprintf(stderr, "idle runner: %s\n", ferry_strerror(rc));
		exit(1);
	}
	sleep_ns(100 * 1000000u);	/* let its spin phases run out */
	c0 = cpu_ns();
	sleep_ns(ns);
	c1 = cpu_ns();
	ferry_runner_destroy(r);
	return (double)(c1 - c0) / 1e6;
}

/* --only VARIANT:THREADS: one run, for profilers (perf, strace -c). */
static int run_only(const char *spec, const struct variant *const *vs,
		    void *const *ctx, uint64_t dur)
{
	const char *colon = strchr(spec, ':');
	int n = colon ? atoi(colon + 1) : 1;

	for (int v = 0; v < 3; v++) {
		struct result r;

		if (!colon || strncmp(vs[v]->name, spec, (size_t)(colon - spec)) ||
		    n < 1 || n > MAX_THREADS)
			continue;
		r = run_once(vs[v], ctx[v], n, dur * 4);
		printf("%s %d: p50 %.1f us p99 %.0f us tput %.0f k/s cpu/rt %.2f us\n",
		       vs[v]->name, n, r.p50_us, r.p99_us, r.tput / 1e3, r.cpu_us);
		return 0;
	}
	fprintf(stderr, "--only: want VARIANT:THREADS (bridge, condvar, futex; "
		"1..%d)\n", MAX_THREADS);
	return 2;
}

int main(int argc, char **argv)
{
	const char *qenv = getenv("FERRY_BENCH_QUICK");
	bool quick = qenv && strcmp(qenv, "1") == 0;
	static const int nthreads[] = { 1, 4, 16 };
	const struct variant *vs[] = { &v_bridge, &v_condvar, &v_futex };
	struct series res[3][3];	/* [threads][variant] */
	void *ctx[3];
	int rounds;
	uint64_t dur;
	double idle_ms;
	struct ferry_runner_opts ropts = { 0 };
	int rc;

	const char *only = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
		} else {
			fprintf(stderr, "usage: %s [--quick] [--only VARIANT:THREADS]"
				"\n", argv[0]);
			return 2;
		}
	}
	rounds = quick ? 3 : 7;
	dur = quick ? 250 * 1000000ull : 700 * 1000000ull;
	memset(res, 0, sizeof(res));

	/* Diagnosis knob: the waiters' spin budget (1 = never spin). */
	if (getenv("FERRY_BENCH_SPIN_NS"))
		ropts.wait_spin_ns = (unsigned)atoi(getenv("FERRY_BENCH_SPIN_NS"));
	/* Diagnosis knob: the loop's idle spin before it sleeps. */
	if (getenv("FERRY_BENCH_LOOP_SPIN_NS"))
		ropts.loop.idle_spin_ns =
			(unsigned)atoi(getenv("FERRY_BENCH_LOOP_SPIN_NS"));
	if ((rc = ferry_runner_create(&g_runner, &ropts)) ||
	    (rc = ferry_runner_start(g_runner))) {
		fprintf(stderr, "runner: %s %s\n", ferry_strerror(rc),
			g_runner ? ferry_runner_why(g_runner) : "");
		return 1;
	}
	for (int v = 0; v < 3; v++)
		ctx[v] = vs[v]->setup();
	if (only) {
		rc = run_only(only, vs, ctx, dur);
		for (int v = 0; v < 3; v++)
			vs[v]->teardown(ctx[v]);
		ferry_runner_destroy(g_runner);
		return rc;
	}

	printf("bridge round trip of a no-op task; %d rounds of %.2f s per "
	       "variant, alternating; median (min-max)\n", rounds,
	       (double)dur / 1e9);
	printf("%ld CPUs online\n\n", sysconf(_SC_NPROCESSORS_ONLN));
	/* Warm-up: page in, let the adaptive spinning settle. */
	for (int v = 0; v < 2; v++)
		run_once(vs[v], ctx[v], 1, dur / 5);

	for (int ti = 0; ti < 3; ti++) {
		int nv = nthreads[ti] == 1 ? 3 : 2;

		for (int round = 0; round < rounds; round++)
			for (int v = 0; v < nv; v++) {
				struct series *s = &res[ti][v];

				s->r[s->n++] = run_once(vs[v], ctx[v],
							nthreads[ti], dur);
			}
	}
	idle_ms = idle_runner_cpu_ms(1000 * 1000000ull);

	printf("%-8s %3s %-22s %-22s %-22s %-22s\n", "variant", "thr",
	       " p50 us", " p99 us", " tput k/s", " cpu/rt us");
	for (int ti = 0; ti < 3; ti++)
		for (int v = 0; v < (nthreads[ti] == 1 ? 3 : 2); v++)
			print_row(vs[v]->name, nthreads[ti], &res[ti][v]);
	printf("\nidle runner: %.2f ms of process CPU in 1.0 s (%s)\n", idle_ms,
	       idle_ms < 5 ? "ok" : "TOO HIGH");

	for (int v = 0; v < 3; v++)
		vs[v]->teardown(ctx[v]);
	ferry_runner_destroy(g_runner);

	printf("RESULT bridge_vs_condvar=%.2f cpu_vs_condvar=%.2f "
	       "tput16_vs_condvar=%.2f\n",
	       median_of(&res[0][1], offsetof(struct result, p50_us)) /
		       median_of(&res[0][0], offsetof(struct result, p50_us)),
	       median_of(&res[0][0], offsetof(struct result, cpu_us)) /
		       median_of(&res[0][1], offsetof(struct result, cpu_us)),
	       median_of(&res[2][0], offsetof(struct result, tput)) /
		       median_of(&res[2][1], offsetof(struct result, tput)));
	return 0;
}
