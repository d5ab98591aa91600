/*
 * progress.c - a live line per transfer on stderr when it is a terminal:
 * bytes, percent and ETA when the size is known, rate; or a bar (-#).
 * One thread redraws at most 10 times a second, reading each transfer's
 * meter (atomics written by the transfer's thread); the transfers never
 * wait for it. Nothing is drawn on a pipe.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fetch.h"

#define REDRAW_NS 100000000ull	/* 10 redraws a second at most */

static struct {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool running, stop, bar;
	struct fetch_xfer *xs;
	size_t n;
	int lines;		/* lines drawn last time */
} pg = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

/* 1234567 -> "1.2M": curl's style of short sizes. */
static void human(char *buf, size_t len, double v)
{
	static const char units[] = "BkMGTP";
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f%c", v, units[u]);
	else
		snprintf(buf, len, "%.*f%c", v < 10 ? 1 : 0, v, units[u]);
}

/* One transfer's figures, read from its meter. */
struct figures {
	uint64_t bytes;
	int64_t total;		/* -1 unknown */
	int state;		/* as struct fetch_meter */
	double rate;		/* bytes per second */
};

static void read_meter(const struct fetch_meter *m, uint64_t now,
		       struct figures *f)
{
	/* Relaxed loads: a figure a tenth of a second old is fine. */
	uint64_t t0 = atomic_load_explicit(&m->t_start, memory_order_relaxed);
	uint64_t t1 = atomic_load_explicit(&m->t_end, memory_order_relaxed);
	double secs;

	f->bytes = atomic_load_explicit(&m->bytes, memory_order_relaxed);
	f->total = atomic_load_explicit(&m->total, memory_order_relaxed);
	f->state = atomic_load_explicit(&m->state, memory_order_relaxed);
	if (t1)
		now = t1;	/* ended: the rate it ended with */
	secs = f->state && now > t0 ? (double)(now - t0) / 1e9 : 0;
	f->rate = secs > 0 ? (double)f->bytes / secs : 0;
}

/* -#: a 40-column bar and the percentage, or a mark and the bytes. */
static void draw_bar(const struct figures *f)
{
	char got[16];

	if (f->total > 0) {
		double pct = 100.0 * (double)f->bytes / (double)f->total;

		fprintf(stderr, "%-40.*s %5.1f%%", (int)(pct / 2.5),
			"########################################", pct);
		return;
	}
	human(got, sizeof(got), (double)f->bytes);
	fprintf(stderr, "%-40s %7s", "#", got);
}

/* "[n]  42.0%  1.2M / 2.9M  800k/s  ETA 00:02", or bytes and rate. */
static void draw_text(const struct figures *f, size_t i)
{
	const char *end = f->state == 2 ? "done" : f->state ? "" : "waiting";
	char got[16], tot[16], spd[16], eta[48] = "--:--";

	human(got, sizeof(got), (double)f->bytes);
	human(spd, sizeof(spd), f->rate);
	if (f->total <= 0) {
		fprintf(stderr, "[%zu] %7s %7s/s  %s", i + 1, got, spd, end);
		return;
	}
	human(tot, sizeof(tot), (double)f->total);
	if (f->rate > 0 && (uint64_t)f->total > f->bytes) {
		long left = (long)((double)((uint64_t)f->total - f->bytes) / f->rate);

		snprintf(eta, sizeof(eta), "%02ld:%02ld", left / 60, left % 60);
	}
	fprintf(stderr, "[%zu] %5.1f%% %7s / %-7s %7s/s  ETA %s  %s", i + 1,
		100.0 * (double)f->bytes / (double)f->total, got, tot, spd, eta,
		end);
}

static void draw_line(const struct fetch_xfer *x, size_t i, uint64_t now)
{
	struct figures f;

	read_meter(&x->meter, now, &f);
	fputs("\r\033[K", stderr);
	if (pg.bar)
		draw_bar(&f);
	else
		draw_text(&f, i);
}

static void draw(void)
{
	uint64_t now = fetch_now_ns();
	int lines = 0;

	flockfile(stderr);
	if (pg.lines > 1)
		fprintf(stderr, "\033[%dA", pg.lines - 1);
	for (size_t i = 0; i < pg.n; i++) {
		if (!atomic_load_explicit(&pg.xs[i].meter.state, memory_order_relaxed))
			continue;	/* not started: no line yet */
		if (lines)
			fputc('\n', stderr);
		draw_line(&pg.xs[i], i, now);
		lines++;
	}
	pg.lines = lines > pg.lines ? lines : pg.lines;
	fflush(stderr);
	funlockfile(stderr);
}

static void *progress_main(void *arg)
{
	struct timespec ts;

	pthread_mutex_lock(&pg.lock);
	while (!pg.stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += REDRAW_NS;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&pg.cond, &pg.lock, &ts);
		draw();
	}
	pthread_mutex_unlock(&pg.lock);
	return NULL;
}

void fetch_progress_start(struct fetch_xfer *xs, size_t n, bool bar)
{
	if (!isatty(STDERR_FILENO))
		return;
	pg.xs = xs;
	pg.n = n;
	pg.bar = bar;
	pg.running = pthread_create(&pg.thread, NULL, progress_main, NULL) == 0;
}

void fetch_progress_stop(void)
{
	if (!pg.running)
		return;
	pthread_mutex_lock(&pg.lock);
	pg.stop = true;
	pthread_cond_signal(&pg.cond);
	pthread_mutex_unlock(&pg.lock);
	pthread_join(pg.thread, NULL);
	pg.running = false;
	draw();		/* the final figures */
	if (pg.lines)
		fputc('\n', stderr);
}
