/*
 * soak.c - hours-in-minutes of blocking HTTP(S) from many threads, with
 * faults injected, checking that nothing leaks and nothing is lost.
 *
 *   ferry-soak --http BASE --https BASE --manifest FILE --ca FILE
 *              [--duration SECS] [--warmup SECS] [--threads N] [--seed N]
 *              [--rss-margin-pct P] [--rss-margin-kib K] [--maps]
 *              [--malloc-adaptive]
 *
 * tools/soak/run starts the two nginx (tests/servers/nginx.py, plain and
 * --tls) and calls this; it is not part of CI.
 *
 * N threads (default 32) make blocking requests through one runner and one
 * session, each picking at random: plain or TLS, whole body or streamed,
 * one of the files the manifest lists (name, size, FNV-1a 64), and one
 * fault to inject:
 *   none      the body must arrive whole and checksum right;
 *   cancel    a canceller thread calls ferry_task_cancel on it from
 *             outside, at a random moment (ECANCELED, or a good body);
 *   deadline  a total deadline of 1..200 ms on a big file
 *             (ETOTAL_TIMEOUT, at the head or in the stream, or a good
 *             body);
 *   early     streamed, read a few chunks, then freed mid-body;
 *   abandon   waited for 0..3 ms, then freed whatever its state.
 * Any other outcome is an error, counted by its code; so is a wrong
 * checksum or length.
 *
 * After the warm-up (default min(60 s, duration / 10)) and at the end,
 * every worker parks, pooled connections are left to expire (the client's
 * idle timeout is 1 s), and the process's RSS, live heap (mallinfo2:
 * arena chunks and mmapped blocks in use) and open descriptors are
 * sampled. Pass: no unexpected error, descriptors equal, RSS at the end
 * within the margin (default 5 %, at least 2 MiB) of the warm-up's, heap
 * in use within 1 MiB.
 *
 * glibc adapts its mmap and trim thresholds upwards after large blocks
 * are freed (up to 32 MiB): freed 16 MiB bodies then stay in thread
 * arenas' top chunks, which malloc_trim does not shrink, and RSS swings
 * by tens of MiB with no byte leaked. The soak pins both thresholds at
 * 256 KiB (mallopt) so that RSS tracks memory held; --malloc-adaptive
 * leaves glibc's defaults. Prints the figures; exits 0 on pass, 1 on fail, 2 on
 * bad usage. Every run is bounded by --duration.
 */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ferry/session.h"

#define MAX_FILES 16
#define MAX_THREADS 256
#define MAX_KINDS 32
#define IDLE_MS 1000
#define FNV_INIT 0xcbf29ce484222325ULL

enum inject { INJ_NONE, INJ_CANCEL, INJ_DEADLINE, INJ_EARLY, INJ_ABANDON,
	      INJ_N };
static const char *const inj_name[INJ_N] = { "none", "cancel", "deadline",
					     "early-close", "abandon" };

struct file {
	char name[64];
	uint64_t size, fnv;
};

/* What one worker counted; merged at the end. */
struct counts {
	uint64_t requests, bytes_verified;
	uint64_t by_mode[2][2];		/* [tls][stream] */
	uint64_t injected[INJ_N];	/* requests with that fault */
	uint64_t took[INJ_N];		/* ... that ended by the fault */
	uint64_t ok;			/* 2xx whose body checked out */
	uint64_t bad_body;
	struct { int code; uint64_t n; } err[MAX_KINDS];
};

/* A worker's request, visible to the canceller. */
struct slot {
	pthread_mutex_t lock;
	struct ferry_response *r;	/* in flight and cancellable */
	bool cancelled;			/* the canceller got it */
};

struct worker {
	pthread_t th;
	int id;
	uint64_t rng;
	struct slot slot;
	struct counts c;
};

enum phase { RUN, PAUSE, STOP };

static struct {
	const char *base[2];		/* plain, tls */
	struct file files[MAX_FILES];
	int nfiles;
	struct ferry_runner *runner;
	struct ferry_session *s;
	struct worker *w;
	int nthreads;
	_Atomic int phase;
	atomic_int parked;
	atomic_int errors_printed;
} g;

/* ------------------------------------------------------------------ */

static uint64_t rnd(uint64_t *x)
{
	/* xorshift64*: good enough to pick faults, and per thread. */
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 0x2545f4914f6cdd1dULL;
}

static uint64_t fnv(uint64_t h, const void *buf, size_t len)
{
	const unsigned char *b = buf;

	while (len--) {
		h ^= *b++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static double now_s(void)
{
	return (double)ferry_time_now() / 1e9;
}

static void count_error(struct counts *c, int code, const char *what,
			const char *detail)
{
	int i;

	for (i = 0; i < MAX_KINDS && c->err[i].n && c->err[i].code != code; i++)
		;
	if (i < MAX_KINDS) {
		c->err[i].code = code;
		c->err[i].n++;
	}
	if (atomic_fetch_add(&g.errors_printed, 1) < 20)
		fprintf(stderr, "soak: unexpected %s: %s (%s)\n", what,
			code ? ferry_strerrorname(code) : "-", detail);
}

/* ------------------------------------------------------------------ */
/* One request                                                           */

struct job {
	int tls, stream;
	enum inject inj;
	const struct file *f;
	char url[256];
};

/* A file, smaller ones likelier: weight nfiles - i for the i-th smallest. */
static const struct file *pick_file(struct worker *w, int from)
{
	int n = g.nfiles - from, total = n * (n + 1) / 2;
	int x = (int)(rnd(&w->rng) % (uint64_t)total);

	for (int i = 0; i < n; i++) {
		x -= n - i;
		if (x < 0)
			return &g.files[from + i];
	}
	return &g.files[g.nfiles - 1];
}

static void pick(struct worker *w, struct job *j)
{
	uint64_t r = rnd(&w->rng) % 100;
	int big0 = g.nfiles > 2 ? g.nfiles - 2 : 0;	/* the two largest */

	j->tls = (int)(rnd(&w->rng) & 1);
	j->stream = (int)(rnd(&w->rng) & 1);
	j->inj = r < 65 ? INJ_NONE : r < 75 ? INJ_CANCEL : r < 85 ? INJ_DEADLINE
	       : r < 93 ? INJ_EARLY : INJ_ABANDON;
	j->f = pick_file(w, j->inj == INJ_DEADLINE || j->inj == INJ_EARLY ?
			       big0 : 0);
	/* The largest file is read whole only rarely: 32 of them at once
	 * would be half a gigabyte. */
	if (j->f == &g.files[g.nfiles - 1] && rnd(&w->rng) % 4)
		j->stream = 1;
	if (j->inj == INJ_EARLY)
		j->stream = 1;
	snprintf(j->url, sizeof(j->url), "%s/%s", g.base[j->tls], j->f->name);
}

/*
 * Read a stream, hashing it, to its end or for @limit chunks (< 0: no
 * limit). Returns 1 when it stopped at the limit, else what
 * ferry_stream_next ended with (0 at the end, < 0 an error).
 */
static int read_stream(struct ferry_response *r, const struct file *f,
		       int limit, uint64_t *got, uint64_t *h)
{
	struct ferry_stream *st = ferry_response_stream(r);
	struct ferry_chunk ch;
	int rc;

	*got = 0;
	*h = FNV_INIT;
	for (;;) {
		if (limit == 0)
			return 1;
		rc = ferry_stream_next(st, &ch, 60ll * 1000000000);
		if (rc != 1)
			return rc;
		*h = fnv(*h, ch.data, ch.len);
		*got += ch.len;
		if (*got > f->size)
			return FERRY_EPROTO;
		if (limit > 0)
			limit--;
	}
}

static void check_body(struct worker *w, const struct job *j, uint64_t got,
		       uint64_t h)
{
	if (got == j->f->size && h == j->f->fnv) {
		w->c.ok++;
		w->c.bytes_verified += got;
		return;
	}
	w->c.bad_body++;
	count_error(&w->c, 0, "body", j->url);
}

/* Was @rc the fault this job injected? */
static bool took_fault(struct worker *w, const struct job *j, int rc)
{
	bool yes = (j->inj == INJ_CANCEL && rc == FERRY_ECANCELED &&
		    w->slot.cancelled) ||
		   (j->inj == INJ_DEADLINE && rc == FERRY_ETOTAL_TIMEOUT);

	if (yes)
		w->c.took[j->inj]++;
	return yes;
}

static void run_job(struct worker *w, const struct job *j)
{
	struct ferry_request rq = { .url = j->url, .stream = j->stream };
	struct ferry_response *r = NULL;
	uint64_t got, h;
	int rc;

	w->c.requests++;
	w->c.by_mode[j->tls][j->stream]++;
	w->c.injected[j->inj]++;
	if (j->inj == INJ_DEADLINE)
		rq.timeout_ms = 1 + (uint32_t)(rnd(&w->rng) % 200);
	rc = ferry_session_submit(g.s, &rq, &r);
	if (rc < 0) {
		count_error(&w->c, rc, "submit", ferry_response_detail(r));
		ferry_response_free(r);
		return;
	}
	if (j->inj == INJ_ABANDON) {
		rc = ferry_response_wait(r, (int64_t)(rnd(&w->rng) % 3000000));
		if (rc == FERRY_ETIMEDOUT) {
			w->c.took[INJ_ABANDON]++;
		} else if (rc == 200 && !j->stream) {
			const void *b = ferry_response_body(r, &got);

			check_body(w, j, got, fnv(FNV_INIT, b, got));
		} else if (rc != 200) {
			count_error(&w->c, rc, "abandon", ferry_response_detail(r));
		}
		/* Cancels and waits if running; closes a stream mid-body. */
		ferry_response_free(r);
		return;
	}
	pthread_mutex_lock(&w->slot.lock);
	w->slot.r = j->inj == INJ_CANCEL ? r : NULL;
	w->slot.cancelled = false;
	pthread_mutex_unlock(&w->slot.lock);
	rc = ferry_response_wait(r, -1);
	pthread_mutex_lock(&w->slot.lock);
	w->slot.r = NULL;
	pthread_mutex_unlock(&w->slot.lock);

	if (rc != 200) {
		if (!took_fault(w, j, rc))
			count_error(&w->c, rc, j->url, ferry_response_detail(r));
	} else if (!j->stream) {
		const void *b = ferry_response_body(r, &got);

		check_body(w, j, got, fnv(FNV_INIT, b, got));
	} else if (j->inj == INJ_EARLY) {
		rc = read_stream(r, j->f, 1 + (int)(rnd(&w->rng) % 8), &got, &h);
		if (rc < 0)
			count_error(&w->c, rc, "early stream",
				    ferry_response_detail(r));
		else if (rc == 1 && got < j->f->size)
			w->c.took[INJ_EARLY]++;
		else if (rc == 0)
			check_body(w, j, got, h);	/* it was short */
	} else {
		rc = read_stream(r, j->f, -1, &got, &h);
		if (rc == 0)
			check_body(w, j, got, h);
		else if (!took_fault(w, j, rc))
			count_error(&w->c, rc, j->url, ferry_response_detail(r));
	}
	ferry_response_free(r);
}

/* ------------------------------------------------------------------ */
/* Threads                                                               */

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct job j;

	for (;;) {
		int ph = atomic_load(&g.phase);

		if (ph == STOP)
			break;
		if (ph == PAUSE) {
			atomic_fetch_add(&g.parked, 1);
			while (atomic_load(&g.phase) == PAUSE)
				sleep_ms(5);
			atomic_fetch_sub(&g.parked, 1);
			continue;
		}
		pick(w, &j);
		run_job(w, &j);
	}
	atomic_fetch_add(&g.parked, 1);
	return NULL;
}

/* Cancels a random cancellable request every 0..4 ms, from outside. */
static void *canceller_main(void *arg)
{
	uint64_t rng = (uint64_t)(uintptr_t)arg | 1;

	while (atomic_load(&g.phase) != STOP) {
		struct worker *w = &g.w[rnd(&rng) % (uint64_t)g.nthreads];

		sleep_ms((long)(rnd(&rng) % 5));
		pthread_mutex_lock(&w->slot.lock);
		if (w->slot.r && !w->slot.cancelled) {
			/* The lock keeps the response alive across the call. */
			ferry_task_cancel(ferry_response_task(w->slot.r));
			w->slot.cancelled = true;
		}
		pthread_mutex_unlock(&w->slot.lock);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Measuring                                                             */

struct sample {
	long rss_kib;
	size_t heap_kib;	/* mallinfo2: bytes in use by malloc */
	int fds;
};

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own descriptor */
}

static long rss_kib(void)
{
	long pages = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &res) != 2)
		res = -1;
	fclose(f);
	return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* --maps: the mappings holding the most resident memory, for a diagnosis. */
static bool show_maps;

static void print_maps(const char *when)
{
	struct { char what[160]; long kib; } top[6] = { 0 };
	char line[512], cur[160] = "";
	FILE *f = fopen("/proc/self/smaps", "r");
	long kib;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, '-') < strchr(line, ' ')) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(cur, sizeof(cur), "%.159s", line);
		} else if (sscanf(line, "Rss: %ld kB", &kib) == 1 && kib > 0) {
			int i = 5;

			while (i > 0 && top[i - 1].kib < kib) {
				top[i] = top[i - 1];
				i--;
			}
			if (i < 6 && top[i].kib < kib) {
				snprintf(top[i].what, sizeof(top[i].what), "%s", cur);
				top[i].kib = kib;
			}
		}
	}
	fclose(f);
	fprintf(stderr, "soak: largest resident mappings %s:\n", when);
	for (int i = 0; i < 6 && top[i].kib; i++)
		fprintf(stderr, "  %8ld KiB  %s\n", top[i].kib, top[i].what);
}

/* Park every worker, let pooled connections expire, measure. */
static struct sample quiesce_and_sample(int then)
{
	struct sample s;

	atomic_store(&g.phase, PAUSE);
	while (atomic_load(&g.parked) < g.nthreads)
		sleep_ms(5);
	sleep_ms(IDLE_MS + 1500);
	malloc_trim(0);
	s.rss_kib = rss_kib();
	/* In use: arena chunks plus mmapped ones. */
	s.heap_kib = (mallinfo2().uordblks + mallinfo2().hblkhd) / 1024;
	s.fds = count_fds();
	if (show_maps)
		print_maps(then == STOP ? "at the end" : "after warm-up");
	atomic_store(&g.phase, then);
	return s;
}

static void merge(struct counts *t, const struct counts *c)
{
	t->requests += c->requests;
	t->bytes_verified += c->bytes_verified;
	t->ok += c->ok;
	t->bad_body += c->bad_body;
	for (int a = 0; a < 2; a++)
		for (int b = 0; b < 2; b++)
			t->by_mode[a][b] += c->by_mode[a][b];
	for (int i = 0; i < INJ_N; i++) {
		t->injected[i] += c->injected[i];
		t->took[i] += c->took[i];
	}
	for (int i = 0; i < MAX_KINDS && c->err[i].n; i++) {
		int k;

		for (k = 0; k < MAX_KINDS && t->err[k].n &&
			    t->err[k].code != c->err[i].code; k++)
			;
		if (k < MAX_KINDS) {
			t->err[k].code = c->err[i].code;
			t->err[k].n += c->err[i].n;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Setup                                                                 */

static int load_manifest(const char *path)
{
	char line[512], name[64], hex[32];
	unsigned long long size;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f) && g.nfiles < MAX_FILES) {
		struct file *x = &g.files[g.nfiles];

		if (sscanf(line, "%63s %llu %31s", name, &size, hex) != 3)
			continue;	/* "echo 1" and the like */
		snprintf(x->name, sizeof(x->name), "%s", name);
		x->size = size;
		x->fnv = strtoull(hex, NULL, 16);
		g.nfiles++;
	}
	fclose(f);
	/* Smallest first: pick() takes the largest ones for big faults. */
	for (int i = 1; i < g.nfiles; i++)
		for (int k = i; k > 0 && g.files[k].size < g.files[k - 1].size; k--) {
			struct file t = g.files[k];

			g.files[k] = g.files[k - 1];
			g.files[k - 1] = t;
		}
	return g.nfiles ? 0 : -1;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: ferry-soak --http BASE --https BASE --manifest FILE "
		"--ca FILE\n"
		"                  [--duration SECS] [--warmup SECS] "
		"[--threads N] [--seed N]\n"
		"                  [--rss-margin-pct P] [--rss-margin-kib K] "
		"[--maps] [--malloc-adaptive]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *manifest = NULL, *ca = NULL;
	double duration = 600, warmup = -1, pct = 5, t0, t_warm, t_end;
	long margin_kib = 2048;
	uint64_t seed = (uint64_t)time(NULL);
	struct ferry_http_client_opts o = { 0 };
	struct sample s0, s1;
	struct counts tot = { 0 };
	pthread_t canceller;
	long allowed;
	bool pass, adaptive = false;
	int rc;

	g.nthreads = 32;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--maps")) {
			show_maps = true;
			continue;
		}
		if (!strcmp(a, "--malloc-adaptive")) {
			adaptive = true;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--http"))
			g.base[0] = v;
		else if (!strcmp(a, "--https"))
			g.base[1] = v;
		else if (!strcmp(a, "--manifest"))
			manifest = v;
		else if (!strcmp(a, "--ca"))
			ca = v;
		else if (!strcmp(a, "--duration"))
			duration = atof(v);
		else if (!strcmp(a, "--warmup"))
			warmup = atof(v);
		else if (!strcmp(a, "--threads"))
			g.nthreads = atoi(v);
		else if (!strcmp(a, "--seed"))
			seed = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--rss-margin-pct"))
			pct = atof(v);
		else if (!strcmp(a, "--rss-margin-kib"))
			margin_kib = atol(v);
		else
			usage();
	}
	if (!adaptive) {
		mallopt(M_MMAP_THRESHOLD, 256 * 1024);
		mallopt(M_TRIM_THRESHOLD, 256 * 1024);
	}
	if (!g.base[0] || !g.base[1] || !manifest || !ca || duration <= 0 ||
	    g.nthreads < 1 || g.nthreads > MAX_THREADS)
		usage();
	if (warmup < 0)
		warmup = duration / 10 < 60 ? duration / 10 : 60;
	if (load_manifest(manifest) < 0) {
		fprintf(stderr, "soak: no files in %s\n", manifest);
		return 2;
	}

	o.ca_file = ca;
	o.idle_timeout_ms = IDLE_MS;
	o.max_conns_per_origin = (unsigned)g.nthreads;
	rc = ferry_runner_create(&g.runner, NULL);
	if (rc == 0)
		rc = ferry_session_create(g.runner, &o, &g.s);
	if (rc < 0) {
		fprintf(stderr, "soak: session: %s\n", ferry_strerrorname(rc));
		return 1;
	}
	g.w = calloc((size_t)g.nthreads, sizeof(*g.w));
	if (!g.w)
		return 1;
	printf("soak: %d threads, %.0f s (warm-up %.0f s), seed %llu, %d files, "
	       "%s and %s, malloc thresholds %s\n", g.nthreads, duration, warmup,
	       (unsigned long long)seed, g.nfiles, g.base[0], g.base[1],
	       adaptive ? "adaptive" : "pinned at 256 KiB");
	fflush(stdout);

	t0 = now_s();
	for (int i = 0; i < g.nthreads; i++) {
		g.w[i].id = i;
		g.w[i].rng = (seed + 1) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(i + 1);
		pthread_mutex_init(&g.w[i].slot.lock, NULL);
		pthread_create(&g.w[i].th, NULL, worker_main, &g.w[i]);
	}
	pthread_create(&canceller, NULL, canceller_main,
		       (void *)(uintptr_t)(seed ^ 0x5a5a));

	while (now_s() - t0 < warmup)
		sleep_ms(100);
	s0 = quiesce_and_sample(RUN);
	t_warm = now_s();
	printf("after warm-up: rss %ld KiB, heap %zu KiB, fds %d\n", s0.rss_kib,
	       s0.heap_kib, s0.fds);
	fflush(stdout);
	for (double next = t0 + 60; now_s() - t0 < duration;) {
		sleep_ms(200);
		if (now_s() >= next) {
			next += 60;
			fprintf(stderr, "soak: %.0f s of %.0f\n", now_s() - t0,
				duration);
		}
	}
	s1 = quiesce_and_sample(STOP);
	t_end = now_s();
	for (int i = 0; i < g.nthreads; i++)
		pthread_join(g.w[i].th, NULL);
	pthread_join(canceller, NULL);
	for (int i = 0; i < g.nthreads; i++) {
		merge(&tot, &g.w[i].c);
		pthread_mutex_destroy(&g.w[i].slot.lock);
	}

	printf("at the end:    rss %ld KiB, heap %zu KiB, fds %d (%.0f s after "
	       "warm-up)\n", s1.rss_kib, s1.heap_kib, s1.fds, t_end - t_warm);
	printf("requests %llu (%.0f/s): plain whole %llu, plain stream %llu, "
	       "tls whole %llu, tls stream %llu\n",
	       (unsigned long long)tot.requests, tot.requests / (t_end - t0),
	       (unsigned long long)tot.by_mode[0][0],
	       (unsigned long long)tot.by_mode[0][1],
	       (unsigned long long)tot.by_mode[1][0],
	       (unsigned long long)tot.by_mode[1][1]);
	printf("bodies verified %llu (%llu MiB); bad bodies %llu\n",
	       (unsigned long long)tot.ok,
	       (unsigned long long)(tot.bytes_verified >> 20),
	       (unsigned long long)tot.bad_body);
	for (int i = 0; i < INJ_N; i++)
		printf("  %-12s %8llu requests, %8llu ended by it\n", inj_name[i],
		       (unsigned long long)tot.injected[i],
		       (unsigned long long)tot.took[i]);
	uint64_t nerr = 0;

	for (int i = 0; i < MAX_KINDS && tot.err[i].n; i++) {
		printf("  unexpected %-20s %llu\n",
		       tot.err[i].code ? ferry_strerrorname(tot.err[i].code)
				       : "bad body",
		       (unsigned long long)tot.err[i].n);
		nerr += tot.err[i].n;
	}
	allowed = (long)(s0.rss_kib * pct / 100);
	if (allowed < margin_kib)
		allowed = margin_kib;
	pass = nerr == 0 && s1.fds == s0.fds &&
	       s1.rss_kib <= s0.rss_kib + allowed &&
	       s1.heap_kib <= s0.heap_kib + 1024 && tot.ok > 0;
	printf("rss %+ld KiB (margin %ld KiB), heap %+ld KiB, fds %+d, "
	       "unexpected errors %llu: %s\n", s1.rss_kib - s0.rss_kib, allowed,
	       (long)s1.heap_kib - (long)s0.heap_kib, s1.fds - s0.fds,
	       (unsigned long long)nerr, pass ? "PASS" : "FAIL");

	ferry_session_destroy(g.s);
	ferry_runner_destroy(g.runner);
	free(g.w);
	return pass ? 0 : 1;
}
