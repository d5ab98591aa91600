/*
 * bench.c - fetch --bench: keep-alive load on the loop-side client.
 *
 *   fetch --bench [-c CONNS] [-d SECONDS] [-n REQUESTS] [-t LOOPS]
 *                 [--json-stats] [-k] [--cacert FILE] URL
 *
 * CONNS (default 64) keep-alive connections stay busy with GETs of URL
 * from LOOPS (default 1) loops, each on its own thread, until SECONDS
 * (default 10; also 2.5, 500ms, 1m) have passed or REQUESTS (default: no
 * limit) have been sent; a request still running at the deadline gets one
 * more second, then it is cancelled, so the run always stops by itself.
 * Then: requests/s, body bytes/s, latency p50, p90, p99, p99.9 and max,
 * errors by kind, and the process's CPU time; --json-stats prints the
 * same as one JSON object on one line. Exit code: 0 when every answer
 * was 2xx or 3xx, 2 for bad usage, 3 for a bad URL, else curl's code for
 * the first failure seen (7 refused, 28 timeout, 22 HTTP error, ...).
 *
 * Each loop thread owns a ferry_loop, a client with its share of the
 * connections, and one slot per connection. A slot is one request in
 * flight: when it completes, the slot starts the next one, so CONNS
 * requests are always running (wrk's model, and tools/bench/http.c's).
 * The only per-request state, the start time, lives in the slot, and the
 * latency goes into the thread's log-bucketed histogram: nothing is
 * allocated per request here. The threads' counters are summed after
 * they are joined, so they share nothing while running but the -n
 * ticket counter.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ferry/http.h"
#include "bench.h"

/*
 * The histogram: values (ns) below 64 have a bucket each; above, every
 * power of two is cut in 32 buckets, so a bucket is at most 1/32 (3%) of
 * its values wide. 64 + 58 * 32 buckets cover all of uint64_t.
 */
#define HIST_SUB_BITS 5
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_LINEAR (2 * HIST_SUB)
#define HIST_BUCKETS (HIST_LINEAR + (64 - HIST_SUB_BITS - 1) * HIST_SUB)

/* How long a request still running at the deadline may take to finish. */
#define GRACE_MS 1000

enum err_kind {
	ERR_CONNECT,	/* refused, unreachable, name not found */
	ERR_READ,	/* reset, broken pipe, truncated */
	ERR_TIMEOUT,	/* connect, read or total timeout */
	ERR_STATUS,	/* an answer that is not 2xx or 3xx */
	ERR_TLS,	/* handshake or certificate */
	ERR_PROTOCOL,	/* the server broke HTTP, or a limit */
	ERR_OTHER,
	ERR_KINDS
};

static const char *const err_names[ERR_KINDS] = {
	"connect", "read", "timeout", "status", "tls", "protocol", "other",
};

struct bench;
struct worker;

/* One request in flight on one connection. */
struct slot {
	struct worker *w;
	uint64_t t0;	/* when its current request started (ns) */
};

struct worker {
	struct bench *b;
	pthread_t thread;
	bool started;	/* thread is joinable */
	unsigned conns;
	struct slot *slots;
	struct ferry_loop *loop;
	struct ferry_http_client *client;
	struct ferry_url url;
	unsigned inflight;
	bool stopping;
	int setup_err;
	uint64_t requests, bytes, max_ns;
	uint64_t errors[ERR_KINDS];
	char first_error[FERRY_HTTP_DETAIL_MAX + 32];
	int first_result;	/* what first_error describes */
	uint64_t hist[HIST_BUCKETS];
};

struct bench {
	const char *url;
	const char *cacert;
	unsigned conns, loops;
	double seconds;
	uint64_t max_requests;	/* 0: no limit */
	bool json, insecure;
	uint64_t start, end;
	/* Requests started by all loops, for -n. Relaxed: a counter only;
	 * nothing else is published through it. */
	atomic_uint_fast64_t issued;
	struct worker *workers;
};

/* ------------------------------------------------------------ histogram */

static unsigned hist_index(uint64_t v)
{
	unsigned e, sub;

	if (v < HIST_LINEAR)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);	/* >= HIST_SUB_BITS + 1 */
	sub = (unsigned)(v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1);
	return HIST_LINEAR + (e - HIST_SUB_BITS - 1) * HIST_SUB + sub;
}

/* The middle of bucket @i: what a percentile falling in it reports. */
static uint64_t hist_value(unsigned i)
{
	unsigned k, e;
	uint64_t low, width;

	if (i < HIST_LINEAR)
		return i;
	k = i - HIST_LINEAR;
	e = k / HIST_SUB + HIST_SUB_BITS + 1;
	width = 1ull << (e - HIST_SUB_BITS);
	low = (uint64_t)(HIST_SUB + k % HIST_SUB) * width;
	return low + width / 2;
}

/* The value at or below which @pct percent of the @total samples lie. */
static uint64_t hist_percentile(const uint64_t *h, uint64_t total, double pct,
				uint64_t max)
{
	uint64_t want = (uint64_t)(pct / 100.0 * (double)total + 0.999999);
	uint64_t seen = 0;

	if (!total)
		return 0;
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h[i];
		if (seen >= want)
			return hist_value(i) < max ? hist_value(i) : max;
	}
	return max;
}

/* ------------------------------------------------------------ requests */

static enum err_kind classify(int result)
{
	if (result >= 100)
		return ERR_STATUS;
	switch (result) {
	case -ECONNREFUSED: case -ENETUNREACH: case -EHOSTUNREACH:
	case -EADDRNOTAVAIL: case FERRY_EDNS: case FERRY_EURL:
		return ERR_CONNECT;
	case -ECONNRESET: case -EPIPE: case FERRY_ETLS_TRUNCATED:
		return ERR_READ;
	case FERRY_ECONNECT_TIMEOUT: case FERRY_EREAD_TIMEOUT:
	case FERRY_ETOTAL_TIMEOUT: case FERRY_ETIMEDOUT: case -ETIMEDOUT:
		return ERR_TIMEOUT;
	case FERRY_ETLS_HANDSHAKE: case FERRY_ETLS_CERT:
		return ERR_TLS;
	case FERRY_EPROTO: case FERRY_ETOOLARGE: case FERRY_EREDIRECTS:
		return ERR_PROTOCOL;
	default:
		return ERR_OTHER;
	}
}

static void note_error(struct worker *w, int result, const char *detail)
{
	w->errors[classify(result)]++;
	if (w->first_error[0])
		return;
	w->first_result = result;
	if (result >= 100)
		snprintf(w->first_error, sizeof(w->first_error), "HTTP %d",
			 result);
	else
		snprintf(w->first_error, sizeof(w->first_error), "%s: %s",
			 ferry_strerrorname(result), detail ? detail : "");
}

/* curl's exit code for a failed request's result. */
static int curl_code(int result)
{
	if (result >= 100)
		return 22;
	switch (result) {
	case FERRY_EURL: return 3;
	case FERRY_EDNS: return 6;
	case FERRY_ECONNECT_TIMEOUT: case FERRY_EREAD_TIMEOUT:
	case FERRY_ETOTAL_TIMEOUT: case FERRY_ETIMEDOUT: case -ETIMEDOUT:
		return 28;
	case FERRY_ETLS_HANDSHAKE: return 35;
	case FERRY_ETLS_CERT: return 60;
	case FERRY_EREDIRECTS: return 47;
	case FERRY_EPROTO: case FERRY_ETOOLARGE: return 8;
	case -ECONNRESET: case -EPIPE: case FERRY_ETLS_TRUNCATED: return 56;
	case -ECONNREFUSED: case -ENETUNREACH: case -EHOSTUNREACH:
	case -EADDRNOTAVAIL:
		return 7;
	default: return 1;
	}
}

/* -n: take one of the requests allowed, false when none is left. */
static bool take_ticket(struct bench *b)
{
	if (!b->max_requests)
		return true;
	return atomic_fetch_add_explicit(&b->issued, 1, memory_order_relaxed) <
	       b->max_requests;
}

static void issue(struct slot *s);

static int on_body(void *ctx, struct ferry_http_request *req,
		   const void *data, size_t len, uintptr_t token)
{
	struct slot *s = ctx;

	(void)req, (void)data, (void)token;
	s->w->bytes += len;
	return 0;
}

static void on_done(void *ctx, struct ferry_http_request *req, int result,
		    const char *detail)
{
	struct slot *s = ctx;
	struct worker *w = s->w;
	uint64_t ns = ferry_time_now() - s->t0;

	(void)req;
	w->inflight--;
	if (result >= 200 && result < 400) {
		w->requests++;
		w->hist[hist_index(ns)]++;
		if (ns > w->max_ns)
			w->max_ns = ns;
	} else {
		note_error(w, result, detail);
	}
	issue(s);
	if (!w->inflight)
		ferry_loop_stop(w->loop);
}

static const struct ferry_http_callbacks bench_cb = {
	.on_body = on_body,
	.on_done = on_done,
};

/* Start the slot's next request, unless time or -n is up. */
static void issue(struct slot *s)
{
	struct worker *w = s->w;
	struct bench *b = w->b;
	uint64_t now = ferry_time_now();
	struct ferry_http_request_opts o = {
		.url = &w->url, .cb = &bench_cb, .ctx = s,
	};
	struct ferry_http_request *req;
	char why[FERRY_HTTP_DETAIL_MAX];
	int rc;

	if (w->stopping || now >= b->end || !take_ticket(b)) {
		w->stopping = true;
		return;
	}
	/* Whatever happens to the server, this request ends by the
	 * deadline plus the grace period: the run stops by itself. */
	o.timeout_ms = (uint32_t)((b->end - now) / 1000000u) + GRACE_MS;
	s->t0 = now;
	rc = ferry_http_request_start(w->client, &o, &req, why, sizeof(why));
	if (rc < 0) {
		/* Refused before any I/O: it would be refused again. */
		note_error(w, rc, why);
		w->stopping = true;
		return;
	}
	w->inflight++;
}

/* ------------------------------------------------------------ threads */

static void closed(void *ctx)
{
	(void)ctx;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct bench *b = w->b;
	struct ferry_http_client_opts co = {
		.max_conns_per_origin = w->conns,
		.max_conns = w->conns,
		.ca_file = b->cacert,
		.tls_insecure_skip_verify = b->insecure,
	};
	char why[FERRY_HTTP_DETAIL_MAX];
	int rc;

	why[0] = 0;
	rc = ferry_loop_create(&w->loop, NULL, why, sizeof(why));
	if (rc < 0) {
		w->setup_err = rc;
		snprintf(w->first_error, sizeof(w->first_error), "loop: %s", why);
		return NULL;
	}
	rc = ferry_http_client_create(w->loop, &co, &w->client);
	if (rc == 0)
		rc = ferry_url_parse(&w->url, b->url, strlen(b->url), why,
				     sizeof(why));
	if (rc < 0) {
		w->setup_err = rc;
		snprintf(w->first_error, sizeof(w->first_error), "client: %s",
			 why[0] ? why : ferry_strerror(rc));
	} else {
		for (unsigned i = 0; i < w->conns; i++)
			issue(&w->slots[i]);
		if (w->inflight)
			ferry_loop_run(w->loop);
		ferry_url_free(&w->url);
	}
	if (w->client)
		ferry_http_client_close(w->client, closed, NULL);
	ferry_loop_destroy(w->loop);
	return NULL;
}

/* ------------------------------------------------------------ report */

struct totals {
	uint64_t requests, bytes, max_ns, errors[ERR_KINDS], nerrors;
	uint64_t hist[HIST_BUCKETS];
	double seconds, user, sys;
	const char *first_error;
	int first_result;
};

static void sum_up(const struct bench *b, struct totals *t)
{
	struct rusage ru;

	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < b->loops; i++) {
		const struct worker *w = &b->workers[i];

		t->requests += w->requests;
		t->bytes += w->bytes;
		if (w->max_ns > t->max_ns)
			t->max_ns = w->max_ns;
		for (unsigned k = 0; k < ERR_KINDS; k++) {
			t->errors[k] += w->errors[k];
			t->nerrors += w->errors[k];
		}
		for (unsigned k = 0; k < HIST_BUCKETS; k++)
			t->hist[k] += w->hist[k];
		if (!t->first_error && w->first_error[0]) {
			t->first_error = w->first_error;
			t->first_result = w->first_result;
		}
	}
	t->seconds = (double)(ferry_time_now() - b->start) / 1e9;
	getrusage(RUSAGE_SELF, &ru);
	t->user = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
	t->sys = (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static const double pcts[] = { 50, 90, 99, 99.9 };
static const char *const pct_names[] = { "p50", "p90", "p99", "p99.9" };

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void print_json(const struct bench *b, const struct totals *t)
{
	printf("{\"url\":");
	json_string(b->url);
	printf(",\"connections\":%u,\"loops\":%u,\"seconds\":%.6f,"
	       "\"requests\":%" PRIu64 ",\"bytes\":%" PRIu64 ","
	       "\"requests_per_sec\":%.3f,\"bytes_per_sec\":%.3f,"
	       "\"latency_ms\":{", b->conns, b->loops, t->seconds, t->requests,
	       t->bytes, t->requests / t->seconds, t->bytes / t->seconds);
	for (unsigned i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
		printf("\"%s\":%.6f,", pct_names[i],
		       hist_percentile(t->hist, t->requests, pcts[i],
				       t->max_ns) / 1e6);
	printf("\"max\":%.6f},\"errors\":{", t->max_ns / 1e6);
	for (unsigned k = 0; k < ERR_KINDS; k++)
		printf("%s\"%s\":%" PRIu64, k ? "," : "", err_names[k],
		       t->errors[k]);
	printf("},\"first_error\":");
	json_string(t->first_error ? t->first_error : "");
	printf(",\"cpu_user_s\":%.6f,\"cpu_sys_s\":%.6f}\n", t->user, t->sys);
}

static void print_text(const struct bench *b, const struct totals *t)
{
	printf("fetch --bench %s: %.2f s, %u connection%s on %u loop%s\n",
	       b->url, t->seconds, b->conns, b->conns == 1 ? "" : "s",
	       b->loops, b->loops == 1 ? "" : "s");
	printf("  requests   %" PRIu64 " (%.1f/s)\n", t->requests,
	       t->requests / t->seconds);
	printf("  body bytes %" PRIu64 " (%.1f/s)\n", t->bytes,
	       t->bytes / t->seconds);
	printf("  latency   ");
	for (unsigned i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
		printf(" %s %.3f ms", pct_names[i],
		       hist_percentile(t->hist, t->requests, pcts[i],
				       t->max_ns) / 1e6);
	printf(" max %.3f ms\n  errors    ", t->max_ns / 1e6);
	for (unsigned k = 0; k < ERR_KINDS; k++)
		printf(" %s %" PRIu64, err_names[k], t->errors[k]);
	printf("\n  cpu        user %.3f s sys %.3f s\n", t->user, t->sys);
	if (t->first_error)
		printf("  first error: %s\n", t->first_error);
}

/* ------------------------------------------------------------ options */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: fetch --bench [options] URL\n"
		" -c CONNS        keep-alive connections (default 64)\n"
		" -d SECONDS      how long to run: 10, 2.5, 500ms, 1m (default 10)\n"
		" -n REQUESTS     stop after this many requests (default: none)\n"
		" -t LOOPS        loops, one thread each (default 1)\n"
		" --json-stats    print the results as one JSON object\n"
		" -k, --insecure  accept any TLS certificate\n"
		" --cacert FILE   trust the CA certificates in FILE\n"
		" -h, --help      this text\n");
}

static int bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "fetch: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nfetch: try 'fetch --bench --help' for more "
		"information\n");
	return 2;
}

static bool parse_count(const char *s, uint64_t min, uint64_t max,
			uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* 10, 2.5, 10s, 500ms, 1m: seconds, more than 0 and at most a day. */
static bool parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	if ((*s < '0' || *s > '9') && *s != '.')
		return false;
	v = strtod(s, &end);
	if (strcmp(end, "ms") == 0)
		v /= 1000;
	else if (strcmp(end, "m") == 0)
		v *= 60;
	else if (*end && strcmp(end, "s") != 0)
		return false;
	if (!(v > 0) || v > 86400)
		return false;
	*out = v;
	return true;
}

/* Fills @b from the command line; returns 0, or the exit status. */
static int parse_args(struct bench *b, int argc, char **argv)
{
	uint64_t v;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = strcmp(a, "-c") == 0 || strcmp(a, "-d") == 0 ||
			     strcmp(a, "-n") == 0 || strcmp(a, "-t") == 0 ||
			     strcmp(a, "--cacert") == 0;

		if (strcmp(a, "--bench") == 0)
			continue;
		if (takes && !val)
			return bad_usage("option %s: requires parameter", a);
		if (strcmp(a, "-c") == 0) {
			if (!parse_count(val, 1, 100000, &v))
				return bad_usage("-c: want 1 to 100000 "
						 "connections, not '%s'", val);
			b->conns = (unsigned)v;
		} else if (strcmp(a, "-t") == 0) {
			if (!parse_count(val, 1, 256, &v))
				return bad_usage("-t: want 1 to 256 loops, "
						 "not '%s'", val);
			b->loops = (unsigned)v;
		} else if (strcmp(a, "-n") == 0) {
			if (!parse_count(val, 1, UINT64_MAX, &v))
				return bad_usage("-n: want a request count, "
						 "not '%s'", val);
			b->max_requests = v;
		} else if (strcmp(a, "-d") == 0) {
			if (!parse_seconds(val, &b->seconds))
				return bad_usage("-d: want a duration such as "
						 "10, 2.5s or 500ms, not '%s'",
						 val);
		} else if (strcmp(a, "--cacert") == 0) {
			b->cacert = val;
		} else if (strcmp(a, "--json-stats") == 0) {
			b->json = true;
			continue;
		} else if (strcmp(a, "-k") == 0 ||
			   strcmp(a, "--insecure") == 0) {
			b->insecure = true;
			continue;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return -1;
		} else if (a[0] == '-' && a[1]) {
			return bad_usage("option %s: is unknown", a);
		} else {
			if (b->url)
				return bad_usage("--bench takes one URL, not "
						 "also '%s'", a);
			b->url = a;
			continue;
		}
		i++;	/* the option's value */
	}
	if (!b->url)
		return bad_usage("%s", "no URL specified");
	if (b->loops > b->conns)
		b->loops = b->conns;
	return 0;
}

/* ------------------------------------------------------------ main */

int fetch_bench_main(int argc, char **argv)
{
	struct bench b = { .conns = 64, .loops = 1, .seconds = 10 };
	struct ferry_url url;
	char why[FERRY_HTTP_DETAIL_MAX];
	struct totals *t;
	struct slot *slots;
	int rc = parse_args(&b, argc, argv);
	unsigned next = 0;

	if (rc)
		return rc < 0 ? 0 : rc;
	if (ferry_url_parse(&url, b.url, strlen(b.url), why, sizeof(why)) < 0) {
		fprintf(stderr, "fetch: (3) %s\n", why);
		return 3;
	}
	ferry_url_free(&url);
	b.workers = calloc(b.loops, sizeof(*b.workers));
	slots = calloc(b.conns, sizeof(*slots));
	t = malloc(sizeof(*t));
	if (!b.workers || !slots || !t) {
		fprintf(stderr, "fetch: out of memory\n");
		free(b.workers), free(slots), free(t);
		return 1;
	}
	atomic_init(&b.issued, 0);
	b.start = ferry_time_now();
	b.end = b.start + (uint64_t)(b.seconds * 1e9);
	for (unsigned i = 0; i < b.loops; i++) {
		struct worker *w = &b.workers[i];

		w->b = &b;
		w->conns = b.conns / b.loops + (i < b.conns % b.loops);
		w->slots = slots + next;
		next += w->conns;
		for (unsigned k = 0; k < w->conns; k++)
			w->slots[k].w = w;
		w->started = pthread_create(&w->thread, NULL, worker_main,
					    w) == 0;
		if (!w->started) {
			w->setup_err = -EAGAIN;
			snprintf(w->first_error, sizeof(w->first_error),
				 "cannot start a loop thread");
		}
	}
	for (unsigned i = 0; i < b.loops; i++)
		if (b.workers[i].started)
			pthread_join(b.workers[i].thread, NULL);
	sum_up(&b, t);
	rc = t->nerrors ? curl_code(t->first_result) : 0;
	for (unsigned i = 0; i < b.loops; i++)
		if (b.workers[i].setup_err) {
			fprintf(stderr, "fetch: (1) %s\n",
				b.workers[i].first_error);
			rc = 1;
		}
	if (b.json)
		print_json(&b, t);
	else
		print_text(&b, t);
	free(t);
	free(slots);
	free(b.workers);
	return rc;
}
