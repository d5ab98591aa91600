/*
 * http.c - keep-alive GET load from ferry, for tools/bench/http.sh.
 *
 *   ferry-bench-http async URL CONNS SECONDS
 *       one loop thread keeps CONNS requests in flight on CONNS keep-alive
 *       connections (the loop-side API, ferry/http.h);
 *   ferry-bench-http blocking URL THREADS SECONDS
 *       THREADS threads each do blocking GETs in a loop through one runner
 *       (ferry/session.h);
 *   ferry-bench-http idle URL CONNS
 *       opens CONNS keep-alive connections, lets them sit idle in the pool
 *       and reports the resident memory they cost.
 *
 * Prints one line: "requests N errors E wall W user U sys S" (seconds, this
 * process's own rusage), or for idle "conns N rss_kib_per_conn K".
 * Every run is bounded by SECONDS and stops by itself.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ferry/http.h"
#include "ferry/session.h"

struct load {
	struct ferry_loop *loop;
	struct ferry_http_client *client;
	struct ferry_url url;
	uint64_t end;
	uint64_t requests, errors;
	unsigned inflight;
	bool stop_new;
};

static void usage(void)
{
	fprintf(stderr, "usage: ferry-bench-http async URL CONNS SECONDS\n"
			"       ferry-bench-http blocking URL THREADS SECONDS\n"
			"       ferry-bench-http idle URL CONNS\n");
	exit(2);
}

static void report(uint64_t requests, uint64_t errors, double wall)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	printf("requests %llu errors %llu wall %.6f user %.6f sys %.6f\n",
	       (unsigned long long)requests, (unsigned long long)errors, wall,
	       ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
}

/* ---------------- async: the loop-side API ---------------- */

static void issue(struct load *l);

static void on_done(void *ctx, struct ferry_http_request *req, int result,
		    const char *detail)
{
	struct load *l = ctx;

	l->inflight--;
	if (result == 200) {
		l->requests++;
	} else if (l->errors++ < 5) {
		fprintf(stderr, "request: %d %s\n", result, detail);
	}
	/* the loop's clock of this turn, as a loop-side caller would */
	if (!l->stop_new && ferry_loop_now(l->loop) >= l->end)
		l->stop_new = true;
	if (!l->stop_new)
		issue(l);
	else if (!l->inflight)
		ferry_loop_stop(l->loop);
}

static const struct ferry_http_callbacks load_cb = { .on_done = on_done };

static void issue(struct load *l)
{
	struct ferry_http_request_opts o = {
		.url = &l->url, .cb = &load_cb, .ctx = l,
	};
	struct ferry_http_request *req;

	if (ferry_http_request_start(l->client, &o, &req, NULL, 0) == 0)
		l->inflight++;
	else
		l->errors++;
}

static void closed(void *ctx)
{
	(void)ctx;
}

static int run_async(const char *url, unsigned conns, double secs, bool idle)
{
	struct ferry_http_client_opts co = {
		.max_conns_per_origin = conns,
		.max_conns = conns,
	};
	struct load l = { 0 };
	char why[128];
	uint64_t t0;
	long rss0 = 0;
	struct ferry_loop_opts lo = { 0 };
	const char *bw = getenv("FERRY_BENCH_BATCH_WAIT_NS");

	if (bw)	/* a knob for measuring batched waits (min_wait) */
		lo.batch_wait_ns = (unsigned)atoi(bw);
	if (ferry_loop_create(&l.loop, &lo, why, sizeof(why)) < 0 ||
	    ferry_http_client_create(l.loop, &co, &l.client) < 0 ||
	    ferry_url_parse(&l.url, url, strlen(url), why, sizeof(why)) < 0) {
		fprintf(stderr, "set-up failed: %s\n", why);
		return 1;
	}
	if (idle) {
		struct rusage ru;

		getrusage(RUSAGE_SELF, &ru);
		rss0 = ru.ru_maxrss;
	}
	t0 = ferry_time_now();
	l.end = idle ? 0 : t0 + (uint64_t)(secs * 1e9);
	/* idle: one request per connection, then stop issuing. */
	l.stop_new = idle;
	for (unsigned i = 0; i < conns; i++)
		issue(&l);
	ferry_loop_run(l.loop);
	if (idle) {
		struct ferry_http_client_stats st;
		struct rusage ru;

		ferry_http_client_stats(l.client, &st);
		getrusage(RUSAGE_SELF, &ru);
		printf("conns %u rss_kib_per_conn %.1f\n", st.idle,
		       st.idle ? (double)(ru.ru_maxrss - rss0) / st.idle : 0.0);
	} else {
		report(l.requests, l.errors, (double)(ferry_time_now() - t0) / 1e9);
	}
	ferry_http_client_close(l.client, closed, NULL);
	ferry_url_free(&l.url);
	ferry_loop_destroy(l.loop);
	return l.errors ? 1 : 0;
}

/* ---------------- blocking: the session API from threads ---------------- */

struct blocking {
	struct ferry_session *s;
	const char *url;
	uint64_t end;
	atomic_ullong requests, errors;
};

static void *blocking_worker(void *arg)
{
	struct blocking *b = arg;

	while (ferry_time_now() < b->end) {
		struct ferry_response *r;
		int rc = ferry_session_get(b->s, b->url, &r);

		if (rc == 200)
			atomic_fetch_add_explicit(&b->requests, 1, memory_order_relaxed);
		else if (atomic_fetch_add(&b->errors, 1) < 5)
			fprintf(stderr, "GET: %d %s\n", rc, ferry_response_detail(r));
		ferry_response_free(r);
	}
	return NULL;
}

static int run_blocking(const char *url, unsigned threads, double secs)
{
	struct ferry_http_client_opts co = {
		.max_conns_per_origin = threads,
		.max_conns = threads,
	};
	struct blocking b = { .url = url };
	struct ferry_runner *r;
	pthread_t *th = calloc(threads, sizeof(*th));
	uint64_t t0;

	struct ferry_runner_opts ro = { 0 };
	const char *cap = getenv("FERRY_BENCH_MAX_SPINNERS");

	if (cap)	/* a knob for comparing waiter policies */
		ro.max_spinners = (unsigned)atoi(cap);
	if (!th || ferry_runner_create(&r, &ro) < 0 ||
	    ferry_session_create(r, &co, &b.s) < 0) {
		fprintf(stderr, "set-up failed\n");
		return 1;
	}
	t0 = ferry_time_now();
	b.end = t0 + (uint64_t)(secs * 1e9);
	for (unsigned i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, blocking_worker, &b);
	for (unsigned i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	report(b.requests, b.errors, (double)(ferry_time_now() - t0) / 1e9);
	ferry_session_destroy(b.s);
	ferry_runner_destroy(r);
	free(th);
	return b.errors ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 4)
		usage();
	if (strcmp(argv[1], "async") == 0 && argc == 5)
		return run_async(argv[2], (unsigned)atoi(argv[3]), atof(argv[4]),
				 false);
	if (strcmp(argv[1], "blocking") == 0 && argc == 5)
		return run_blocking(argv[2], (unsigned)atoi(argv[3]), atof(argv[4]));
	if (strcmp(argv[1], "idle") == 0 && argc == 4)
		return run_async(argv[2], (unsigned)atoi(argv[3]), 0, true);
	usage();
}
