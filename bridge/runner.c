/*
 * runner.c - a loop thread and its lifetime: start, the gate that keeps
 * submitters and close apart, cleanups, and close.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static void ferry__runner_stop_fn(struct ferry_post *p);
static void ferry__runner_scan_fn(struct ferry_post *p);

int ferry_runner_create(struct ferry_runner **rp,
			const struct ferry_runner_opts *opts)
{
	struct ferry_runner_opts o = opts ? *opts : (struct ferry_runner_opts){ 0 };
	struct ferry_runner *r;

	*rp = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->loop_opts = o.loop;
	if (!r->loop_opts.idle_spin_ns)
		r->loop_opts.idle_spin_ns = 50 * 1000;
	if (o.wait_spin_ns == FERRY_RUNNER_NO_SPIN)
		r->max_spin_ns = 0;
	else
		r->max_spin_ns = o.wait_spin_ns ? o.wait_spin_ns : 50 * 1000;
	r->max_spinners = o.max_spinners ? o.max_spinners : UINT_MAX;
	atomic_init(&r->spin_ns, r->max_spin_ns);
	atomic_init(&r->spinners, 0);
	atomic_init(&r->phase, FERRY__R_NEW);
	atomic_init(&r->gate, 0);
	atomic_init(&r->scan_pending, 0);
	atomic_init(&r->open_streams, 0);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	ferry__list_init(&r->tasks);
	ferry__list_init(&r->streams);
	r->scan_post.fn = ferry__runner_scan_fn;
	r->stop_post.fn = ferry__runner_stop_fn;
	*rp = r;
	return 0;
}

const char *ferry_runner_why(const struct ferry_runner *r)
{
	return r->why;
}

struct ferry_loop *ferry_runner_loop(struct ferry_runner *r)
{
	return r->loop;
}

bool ferry__runner_on_loop(const struct ferry_runner *r)
{
	/* acquire: RUNNING publishes loop_thread. */
	return atomic_load_explicit(&((struct ferry_runner *)r)->phase,
				    memory_order_acquire) == FERRY__R_RUNNING &&
	       pthread_equal(r->loop_thread, pthread_self());
}

/* ------------------------------------------------------------------ */
/* The loop thread                                                       */

/*
 * Destroy has begun and every task has ended, so no new stream can appear
 * and no other thread may use the runner any more (destroy's contract):
 * a stream its consumer has not closed will never be closed, and waiting
 * for it would hang for ever. Say so, and abort (debug) or give up on the
 * loop (release). True when the loop must stop turning.
 */
static bool ferry__runner_orphans(struct ferry_runner *r)
{
	unsigned n;

	if (!r->loop_closing || !r->destroying || r->ntasks)
		return false;
	/* acquire: pairs with ferry_stream_close's release decrement. */
	n = atomic_load_explicit(&r->open_streams, memory_order_acquire);
	if (!n)
		return false;
	fprintf(stderr, "ferry_runner_destroy: %u stream(s) never closed by "
		"their consumer (free streamed responses, or close their "
		"streams, before destroying the runner)%s\n", n,
#ifndef NDEBUG
		"; aborting"
#else
		"; the runner is leaked"
#endif
		);
#ifndef NDEBUG
	abort();
#endif
	r->orphaned = true;
	return true;
}

static void *ferry__runner_main(void *arg)
{
	struct ferry_runner *r = arg;
	struct ferry_loop *loop = NULL;
	char why[sizeof(r->why)];
	int ret;

	/* The loop is created here: its ring belongs to this thread
	 * (SINGLE_ISSUER, DEFER_TASKRUN). */
	ret = ferry_loop_create(&loop, &r->loop_opts, why, sizeof(why));
	pthread_mutex_lock(&r->lock);
	r->start_err = ret;
	memcpy(r->why, why, sizeof(why));
	if (ret == 0) {
		r->loop = loop;
		r->loop_thread = pthread_self();
	}
	/* release: publishes loop and loop_thread to the fast paths. */
	atomic_store_explicit(&r->phase,
			      ret ? FERRY__R_FAILED : FERRY__R_RUNNING,
			      memory_order_release);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	if (ret)
		return NULL;

	/* Turn until close has been asked for and everything it cancelled
	 * has finished. A turn returns after each batch of events, so the
	 * condition is seen as soon as the last task completes. */
	while (!(r->loop_closing && r->ntasks == 0 && r->nstreams == 0)) {
		if (ferry__runner_orphans(r))
			return NULL;	/* the loop stays: streams point into it */
		ferry_loop_run_once(loop, -1);
	}
	ferry_loop_destroy(loop);
	return NULL;
}

int ferry_runner_start(struct ferry_runner *r)
{
	int ret;

	if (atomic_load_explicit(&r->phase, memory_order_acquire) ==
	    FERRY__R_RUNNING)
		return 0;
	pthread_mutex_lock(&r->lock);
	if (!r->closing &&
	    atomic_load_explicit(&r->phase, memory_order_relaxed) == FERRY__R_NEW) {
		atomic_store_explicit(&r->phase, FERRY__R_STARTING,
				      memory_order_relaxed);
		ret = pthread_create(&r->thread, NULL, ferry__runner_main, r);
		if (ret == 0) {
			r->has_thread = true;
		} else {
			r->start_err = -ret;
			strcpy(r->why, "pthread_create failed");
			atomic_store_explicit(&r->phase, FERRY__R_FAILED,
					      memory_order_relaxed);
		}
	}
	while (atomic_load_explicit(&r->phase, memory_order_relaxed) ==
	       FERRY__R_STARTING)
		pthread_cond_wait(&r->cond, &r->lock);
	switch (atomic_load_explicit(&r->phase, memory_order_relaxed)) {
	case FERRY__R_RUNNING:
		ret = r->closing ? FERRY_ECLOSED : 0;
		break;
	case FERRY__R_FAILED:
		ret = r->start_err;
		break;
	default:
		ret = FERRY_ECLOSED;
		break;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* ------------------------------------------------------------------ */
/* The gate                                                              */

static int ferry__gate_enter(struct ferry_runner *r)
{
	/* Both sides of the gate are read-modify-writes of one word, so
	 * they are totally ordered: either close sees us counted and waits,
	 * or we see bit 0 and back out. */
	unsigned g = atomic_fetch_add_explicit(&r->gate, 2, memory_order_seq_cst);

	if (g & 1) {
		atomic_fetch_sub_explicit(&r->gate, 2, memory_order_release);
		return FERRY_ECLOSED;
	}
	return 0;
}

void ferry__runner_leave(struct ferry_runner *r)
{
	/* release: our post happens-before close's stop post. */
	atomic_fetch_sub_explicit(&r->gate, 2, memory_order_release);
}

int ferry__runner_enter(struct ferry_runner *r)
{
	int ret = ferry__gate_enter(r);

	if (ret)
		return ret;
	if (atomic_load_explicit(&r->phase, memory_order_acquire) !=
	    FERRY__R_RUNNING) {
		ret = ferry_runner_start(r);
		if (ret) {
			ferry__runner_leave(r);
			return ret;
		}
	}
	return 0;
}

/*
 * Why no cancel request is lost.
 *
 * A canceller sets CANCEL in the task's word (A: ferry_task_cancel), then
 * swaps scan_pending to 1 (B) and posts the scan only if it was 0. The
 * scan clears scan_pending (C) and then reads the task words (D: relaxed
 * loads in ferry__tasks_sweep and ferry__task_start). Each side writes one
 * location and then reads the other, a store-buffering shape that acquire
 * and release cannot order: on AArch64 the load D may be satisfied before
 * the store C is visible, and A may not yet be visible to D. Two seq_cst
 * fences make it sound, X between A and B, Y between C and D (C11 7.17.3p11,
 * fences X, Y in the single total order S):
 *   - B read 0: B's caller posts a new scan; the post (a seq_cst CAS that
 *     the loop reads with acquire) makes A happen before all the loop does
 *     after taking it, so that scan, or the task's start if it comes
 *     later, sees CANCEL.
 *   - B read 1, written by an exchange E whose scan has not cleared yet:
 *     B reads from E, so that scan's clear C comes after B in
 *     scan_pending's modification order. Had Y preceded X in S, B (after
 *     X) would have to see C or later (p11): it did not, so X precedes Y,
 *     and every load D after Y sees A or later (p11 again). The task is
 *     either on the in-flight list when that sweep runs, or starts after
 *     it and checks CANCEL itself, after Y.
 * CANCEL is never cleared while the task is in flight, so "A or later"
 * means CANCEL is set.
 */
void ferry__runner_request_scan(struct ferry_runner *r)
{
	if (ferry__gate_enter(r))
		return;	/* closing: the close sweep cancels everything */
	/* Fence X above: orders the caller's CANCEL (A) before B. */
	ferry__fence_seq_cst();
	/* seq_cst: one RMW per request; only the one that reads 0 posts. */
	if (atomic_load_explicit(&r->phase, memory_order_acquire) ==
		    FERRY__R_RUNNING &&
	    !atomic_exchange_explicit(&r->scan_pending, 1, memory_order_seq_cst))
		ferry_loop_post(r->loop, &r->scan_post);
	ferry__runner_leave(r);
}

static void ferry__runner_scan_fn(struct ferry_post *p)
{
	struct ferry_runner *r = ferry__container_of(p, struct ferry_runner,
						    scan_post);

	/* Clear first (C): a cancel that lands during the sweep posts
	 * again. seq_cst, though the fence is what orders it. */
	atomic_store_explicit(&r->scan_pending, 0, memory_order_seq_cst);
	/* Fence Y above: C before the sweep's relaxed loads of CANCEL. */
	ferry__fence_seq_cst();
	ferry__tasks_sweep(r, false);
}

/* ------------------------------------------------------------------ */
/* Cleanups and close                                                    */

int ferry_runner_on_close(struct ferry_runner *r, struct ferry_cleanup *c)
{
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	if (r->closing) {
		ret = FERRY_ECLOSED;
	} else {
		c->ferry__next = r->cleanups;
		r->cleanups = c;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int ferry_runner_cancel_cleanup(struct ferry_runner *r, struct ferry_cleanup *c)
{
	int ret = -ENOENT;

	pthread_mutex_lock(&r->lock);
	for (struct ferry_cleanup **pp = &r->cleanups; *pp; pp = &(*pp)->ferry__next)
		if (*pp == c) {
			*pp = c->ferry__next;
			ret = 0;
			break;
		}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* Newest first, which is reverse order of registration. */
static void ferry__runner_run_cleanups(struct ferry_runner *r)
{
	struct ferry_cleanup *c, *next;

	pthread_mutex_lock(&r->lock);
	c = r->cleanups;
	r->cleanups = NULL;
	pthread_mutex_unlock(&r->lock);
	for (; c; c = next) {
		next = c->ferry__next;
		c->fn(c);
	}
}

/* Runs on the loop: the last item ever posted by a submitter is before. */
static void ferry__runner_stop_fn(struct ferry_post *p)
{
	struct ferry_runner *r = ferry__container_of(p, struct ferry_runner,
						    stop_post);

	r->loop_closing = true;
	ferry__tasks_sweep(r, true);
	ferry__streams_close(r);
	ferry__runner_run_cleanups(r);
}

int ferry_runner_close(struct ferry_runner *r)
{
	int phase;

	if (ferry__runner_on_loop(r))
		return FERRY_EDEADLOCK;
	pthread_mutex_lock(&r->lock);
	if (r->closing) {
		/* Someone else is closing: wait for them to finish. */
		while (atomic_load_explicit(&r->phase, memory_order_relaxed) !=
		       FERRY__R_CLOSED)
			pthread_cond_wait(&r->cond, &r->lock);
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	r->closing = true;
	while (atomic_load_explicit(&r->phase, memory_order_relaxed) ==
	       FERRY__R_STARTING)
		pthread_cond_wait(&r->cond, &r->lock);
	phase = atomic_load_explicit(&r->phase, memory_order_relaxed);
	pthread_mutex_unlock(&r->lock);

	/* Shut the gate and let the submitters inside finish posting. */
	atomic_fetch_or_explicit(&r->gate, 1, memory_order_seq_cst);
	while (atomic_load_explicit(&r->gate, memory_order_acquire) >> 1)
		sched_yield();

	if (phase == FERRY__R_RUNNING)
		ferry_loop_post(r->loop, &r->stop_post);
	else
		ferry__runner_run_cleanups(r);	/* the loop never ran */
	if (r->has_thread)
		pthread_join(r->thread, NULL);

	pthread_mutex_lock(&r->lock);
	atomic_store_explicit(&r->phase, FERRY__R_CLOSED, memory_order_release);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

void ferry_runner_destroy(struct ferry_runner *r)
{
	if (!r)
		return;
	r->destroying = true;	/* published by close's stop post */
	ferry_runner_close(r);
	if (r->orphaned)
		return;		/* reported; see ferry__runner_orphans */
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}
