/*
 * test_offload.c - the offload pool: work() on a worker thread, done() on
 * the loop thread, many jobs, getaddrinfo, and jobs pending at destroy.
 */
#include "util.h"

#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "ferry/offload.h"

struct job {
	struct ferry_offload job;
	uint64_t in, out;
	pid_t work_tid, done_tid;
	bool done_on_loop;
	struct ferry_loop *loop;
	atomic_int worked;
	int done_calls;
	int status;
	int *ndone;
};

static void job_work(struct ferry_offload *j)
{
	struct job *x = (struct job *)j;
	uint64_t acc = 0;

	x->work_tid = rt_gettid();
	for (uint64_t i = 1; i <= x->in; i++)
		acc += i * i;
	x->out = acc;
	atomic_fetch_add(&x->worked, 1);
}

static void job_done(struct ferry_offload *j, int status)
{
	struct job *x = (struct job *)j;

	x->done_tid = rt_gettid();
	x->done_on_loop = ferry_loop_on_thread(x->loop);
	x->status = status;
	x->done_calls++;
	if (x->ndone)
		(*x->ndone)++;
}

static void job_init(struct job *x, struct ferry_loop *loop, uint64_t in,
		     int *ndone)
{
	memset(x, 0, sizeof(*x));
	x->job.work = job_work;
	x->job.done = job_done;
	x->loop = loop;
	x->in = in;
	x->ndone = ndone;
}

static uint64_t sum_squares(uint64_t n)
{
	return n * (n + 1) * (2 * n + 1) / 6;
}

Test(offload, work_on_worker_done_on_loop, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct job x;
	int ndone = 0;
	int rc;

	job_init(&x, loop, 1000, &ndone);
	rc = ferry_offload_submit(loop, &x.job);
	cr_assert_eq(rc, 0, "submit: %s", ferry_strerrorname(rc));
	cr_assert_eq(x.done_calls, 0, "done() ran inside submit");
	RT_RUN_UNTIL(loop, ndone == 1, 3000);
	cr_assert_eq(x.status, 0);
	cr_assert_eq(atomic_load(&x.worked), 1);
	cr_assert_eq(x.out, sum_squares(1000));
	cr_assert_neq(x.work_tid, rt_gettid(), "work() ran on the loop thread");
	cr_assert_neq(x.work_tid, 0);
	cr_assert_eq(x.done_tid, rt_gettid(), "done() ran off the loop thread");
	cr_assert(x.done_on_loop);
	rt_run_for(loop, 10);
	cr_assert_eq(x.done_calls, 1);
	ferry_loop_destroy(loop);
}

Test(offload, many_jobs_bounded_pool, .timeout = 20)
{
	enum { N = 2000, THREADS = 3 };
	struct ferry_loop_opts o = { .offload_threads = THREADS };
	struct ferry_loop *loop = rt_loop_new(&o);
	struct job *jobs = calloc(N, sizeof(*jobs));
	pid_t tids[THREADS + 1];
	int ntids = 0, ndone = 0;

	for (int i = 0; i < N; i++) {
		job_init(&jobs[i], loop, (uint64_t)i, &ndone);
		cr_assert_eq(ferry_offload_submit(loop, &jobs[i].job), 0);
	}
	RT_RUN_UNTIL(loop, ndone == N, 15000);
	for (int i = 0; i < N; i++) {
		struct job *x = &jobs[i];
		int k;

		cr_assert_eq(x->done_calls, 1, "job %d done %d times", i, x->done_calls);
		cr_assert_eq(x->status, 0);
		cr_assert_eq(atomic_load(&x->worked), 1);
		cr_assert_eq(x->out, sum_squares((uint64_t)i), "job %d wrong result", i);
		cr_assert_eq(x->done_tid, rt_gettid());
		cr_assert_neq(x->work_tid, rt_gettid());
		for (k = 0; k < ntids && tids[k] != x->work_tid; k++)
			;
		if (k == ntids) {
			cr_assert_lt(ntids, THREADS, "more worker threads than %d",
				     THREADS);
			tids[ntids++] = x->work_tid;
		}
	}
	free(jobs);
	ferry_loop_destroy(loop);
}

struct gai_job {
	struct ferry_offload job;
	const char *host;
	int rc;
	struct addrinfo *res;
	int status;
	int done;
};

static void gai_work(struct ferry_offload *j)
{
	struct gai_job *g = (struct gai_job *)j;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };

	g->rc = getaddrinfo(g->host, "80", &hints, &g->res);
}

static void gai_done(struct ferry_offload *j, int status)
{
	struct gai_job *g = (struct gai_job *)j;

	g->status = status;
	g->done++;
}

Test(offload, getaddrinfo_localhost, .timeout = 15)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct gai_job g = { .job = { .work = gai_work, .done = gai_done },
			     .host = "localhost" };
	bool loopback = false;

	cr_assert_eq(ferry_offload_submit(loop, &g.job), 0);
	RT_RUN_UNTIL(loop, g.done == 1, 10000);
	cr_assert_eq(g.status, 0);
	cr_assert_eq(g.rc, 0, "getaddrinfo(localhost): %s", gai_strerror(g.rc));
	cr_assert_not_null(g.res);
	for (struct addrinfo *ai = g.res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)ai->ai_addr;

			loopback |= ntohl(sin->sin_addr.s_addr) == INADDR_LOOPBACK;
			cr_assert_eq(ntohs(sin->sin_port), 80);
		} else if (ai->ai_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ai->ai_addr;

			loopback |= IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
		}
	}
	cr_assert(loopback, "localhost resolved to no loopback address");
	freeaddrinfo(g.res);
	ferry_loop_destroy(loop);
}

Test(offload, getaddrinfo_failure_comes_back, .timeout = 15)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct gai_job g = { .job = { .work = gai_work, .done = gai_done },
			     .host = "no-such-host.invalid" };

	cr_assert_eq(ferry_offload_submit(loop, &g.job), 0);
	RT_RUN_UNTIL(loop, g.done == 1, 10000);
	cr_assert_eq(g.status, 0, "the job ran; only its own result failed");
	cr_assert_neq(g.rc, 0);
	cr_assert_null(g.res);
	ferry_loop_destroy(loop);
}

/* done() submits the next job: a chain of 200. */
struct chain_job {
	struct ferry_offload job;
	struct ferry_loop *loop;
	int n;
	atomic_int worked;
	int err;
};

static void chain_work(struct ferry_offload *j)
{
	atomic_fetch_add(&((struct chain_job *)j)->worked, 1);
}

static void chain_done(struct ferry_offload *j, int status)
{
	struct chain_job *c = (struct chain_job *)j;

	if (status != 0) {
		c->err++;
		return;
	}
	if (++c->n < 200 && ferry_offload_submit(c->loop, j) != 0)
		c->err++;
}

Test(offload, done_resubmits_the_job, .timeout = 15)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct chain_job c = { .job = { .work = chain_work, .done = chain_done },
			       .loop = loop };

	cr_assert_eq(ferry_offload_submit(loop, &c.job), 0);
	RT_RUN_UNTIL(loop, c.n == 200 || c.err, 10000);
	cr_assert_eq(c.err, 0);
	cr_assert_eq(atomic_load(&c.worked), 200);
	ferry_loop_destroy(loop);
}

/* Jobs freed from done(). */
static void free_done(struct ferry_offload *j, int status)
{
	struct job *x = (struct job *)j;

	(*x->ndone)++;
	free(x);
}

Test(offload, done_frees_the_job, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	int ndone = 0;

	for (int i = 0; i < 100; i++) {
		struct job *x = malloc(sizeof(*x));

		job_init(x, loop, 10, &ndone);
		x->job.done = free_done;
		cr_assert_eq(ferry_offload_submit(loop, &x->job), 0);
	}
	RT_RUN_UNTIL(loop, ndone == 100, 5000);
	ferry_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */
/* Jobs still queued or running when the loop is destroyed.            */

struct slow_job {
	struct ferry_offload job;
	struct ferry_loop *loop;
	atomic_int worked;
	int done_calls;
	int status;
	int resubmit_rc;
	pid_t done_tid;
};

static void slow_work(struct ferry_offload *j)
{
	struct slow_job *s = (struct slow_job *)j;

	/* 1 s: 20 of them in a row (20 s) are far beyond the 8 s bound
	 * below, and a few seconds of descheduling still leave most of the
	 * queue for destroy to cancel. */
	usleep(1000 * 1000);
	atomic_fetch_add(&s->worked, 1);
}

static void slow_done(struct ferry_offload *j, int status)
{
	struct slow_job *s = (struct slow_job *)j;

	s->done_calls++;
	s->status = status;
	s->done_tid = rt_gettid();
	/* During destroy a new submission must be refused. */
	s->resubmit_rc = ferry_offload_submit(s->loop, j);
}

Test(offload, destroy_with_jobs_pending, .timeout = 20)
{
	enum { N = 20 };
	struct ferry_loop_opts o = { .offload_threads = 1 };
	struct ferry_loop *loop = rt_loop_new(&o);
	struct slow_job jobs[N];
	uint64_t t0;
	int ran = 0, cancelled = 0;

	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < N; i++) {
		jobs[i].job.work = slow_work;
		jobs[i].job.done = slow_done;
		jobs[i].loop = loop;
		cr_assert_eq(ferry_offload_submit(loop, &jobs[i].job), 0);
	}
	/* Let the single worker pick up the first job, then destroy without
	 * ever turning the loop: every done() runs inside destroy. */
	usleep(20 * 1000);
	t0 = ferry_time_now();
	ferry_loop_destroy(loop);
	cr_assert_lt(ferry_time_now() - t0, 8000 * RT_MS,
		     "destroy ran the queued jobs instead of cancelling them");
	for (int i = 0; i < N; i++) {
		struct slow_job *s = &jobs[i];
		int w = atomic_load(&s->worked);

		cr_assert_eq(s->done_calls, 1, "job %d: done() ran %d times", i,
			     s->done_calls);
		cr_assert_eq(s->done_tid, rt_gettid());
		cr_assert_leq(w, 1);
		if (w) {
			ran++;
			cr_assert_eq(s->status, 0, "job %d ran but got %s", i,
				     ferry_strerrorname(s->status));
		} else {
			cancelled++;
			cr_assert_eq(s->status, FERRY_ECANCELED,
				     "job %d never ran but got %s", i,
				     ferry_strerrorname(s->status));
		}
		if (s->status == FERRY_ECANCELED || w)
			cr_assert_neq(s->resubmit_rc, 0);
	}
	cr_assert_gt(cancelled, 0, "every job ran before destroy");
	cr_assert_leq(ran, 3);
	cr_assert_eq(jobs[N - 1].resubmit_rc, -ESHUTDOWN, "got %s",
		     ferry_strerrorname(jobs[N - 1].resubmit_rc));
}
