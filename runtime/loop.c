/*
 * loop.c - choosing the backend, the loop turn, the inbox and doorbell,
 * and shutdown.
 *
 * One turn (ferry_loop_run_once) reads top to bottom:
 *   1. run posted items, deferred completions, due timers, then the close
 *      phase (ferry_loop_close_later);
 *   2. if nothing happened, spin briefly on the inbox, then announce sleep;
 *   3. one wait in the backend (io_uring_enter, or epoll_wait after the
 *      prepared ops ran): submit everything prepared, wait for an event or
 *      the earliest timer;
 *   4. dispatch every completion, expired timers, and posted items again;
 *      then the close phase again: objects closed during the turn are
 *      freed here, never inside the callback that closed them.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

#ifdef FERRY_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif



uint64_t ferry_time_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ferry_loop_now(const struct ferry_loop *loop)
{
	return loop->in_turn ? loop->now : ferry_time_now();
}

void ferry_loop_expect(struct ferry_loop *loop, int delta)
{
	FERRY__ASSERT_LOOP(loop);
	loop->expected += (unsigned)delta;
}

bool ferry_loop_on_thread(const struct ferry_loop *loop)
{
	return pthread_equal(loop->owner, pthread_self());
}

unsigned ferry_loop_features(const struct ferry_loop *loop)
{
	return loop->features;
}

const char *ferry_loop_describe(const struct ferry_loop *loop)
{
	return loop->describe;
}

const char *ferry_loop_backend(const struct ferry_loop *loop)
{
	return loop->be->name;
}

unsigned ferry_loop_inflight(const struct ferry_loop *loop)
{
	return loop->inflight;
}

struct ferry_op *ferry__loop_bell_op(struct ferry_loop *loop)
{
	FERRY__ASSERT_LOOP(loop);
	return &loop->bell_op;
}

/* ------------------------------------------------------------------ */
/* Probing and set-up                                                    */

static const struct {
	unsigned bit;
	const char *name;
} ferry__feature_names[] = {
	{ FERRY_FEAT_SINGLE_ISSUER, "single_issuer" },
	{ FERRY_FEAT_DEFER_TASKRUN, "defer_taskrun" },
	{ FERRY_FEAT_COOP_TASKRUN, "coop_taskrun" },
	{ FERRY_FEAT_SUBMIT_ALL, "submit_all" },
	{ FERRY_FEAT_EXT_ARG, "ext_arg" },
	{ FERRY_FEAT_BUF_RING, "buf_ring" },
	{ FERRY_FEAT_RECV_MULTISHOT, "recv_multishot" },
	{ FERRY_FEAT_ACCEPT_MULTISHOT, "accept_multishot" },
	{ FERRY_FEAT_SOCKET_OP, "socket_op" },
	{ FERRY_FEAT_FUTEX, "futex" },
	{ FERRY_FEAT_CQE_SKIP, "cqe_skip" },
	{ FERRY_FEAT_REG_RING, "reg_ring" },
	{ FERRY_FEAT_MIN_WAIT, "min_wait" },
	{ FERRY_FEAT_RECV_BUNDLE, "recv_bundle" },
};

#define FERRY__NFEATURES \
	(sizeof(ferry__feature_names) / sizeof(ferry__feature_names[0]))

/* FERRY_DISABLE=name,name: the kill switch for optional features. */
static unsigned ferry__disabled_features(void)
{
	const char *env = getenv("FERRY_DISABLE");
	unsigned mask = 0;

	if (!env)
		return 0;
	for (size_t i = 0; i < FERRY__NFEATURES; i++) {
		const char *name = ferry__feature_names[i].name;
		size_t n = strlen(name);

		for (const char *p = env; (p = strstr(p, name)) != NULL; p += n) {
			bool start = p == env || p[-1] == ',';
			bool end = p[n] == '\0' || p[n] == ',';

			if (start && end)
				mask |= ferry__feature_names[i].bit;
		}
	}
	return mask;
}

/* The features in use as words, then "; " and @note if there is one. */
void ferry__describe_features(struct ferry_loop *loop, const char *note)
{
	size_t off = 0;

	loop->describe[0] = '\0';
	for (size_t i = 0; i < FERRY__NFEATURES; i++) {
		if (!(loop->features & ferry__feature_names[i].bit))
			continue;
		off += (size_t)snprintf(loop->describe + off,
					sizeof(loop->describe) - off, "%s%s",
					off ? " " : "", ferry__feature_names[i].name);
		if (off >= sizeof(loop->describe))
			return;
	}
	if (note && note[0])
		snprintf(loop->describe + off, sizeof(loop->describe) - off,
			 "%s%s", off ? "; " : "", note);
}

/*
 * Pick and set up the backend: io_uring first, unless the options or
 * FERRY_IO_URING=off say otherwise; epoll when io_uring cannot be used at
 * all (FERRY_EUNAVAIL) and the options allow it. Any other failure (no
 * memory, too many files) is the caller's to see, not a reason to switch.
 */
static int ferry__backend_init(struct ferry_loop *loop,
			       const struct ferry_loop_opts *o,
			       unsigned disabled, char *why, size_t whylen)
{
	const char *force = getenv("FERRY_IO_URING");
	bool off = force && strcmp(force, "off") == 0;
	char uwhy[160], cause[200];
	int ret;

	if (o->backend == FERRY_BACKEND_EPOLL) {
		snprintf(cause, sizeof(cause), "epoll: chosen by the loop options");
	} else if (off) {
		if (o->backend == FERRY_BACKEND_IO_URING) {
			if (why && whylen)
				snprintf(why, whylen, "io_uring turned off by "
					 "FERRY_IO_URING=off");
			return FERRY_EUNAVAIL;
		}
		snprintf(cause, sizeof(cause),
			 "epoll: io_uring turned off by FERRY_IO_URING=off");
	} else {
		loop->be = &ferry__uring_backend;
		uwhy[0] = '\0';
		ret = loop->be->init(loop, o, disabled, uwhy, sizeof(uwhy));
		if (ret != FERRY_EUNAVAIL || o->backend == FERRY_BACKEND_IO_URING) {
			if (ret < 0 && why && whylen)
				snprintf(why, whylen, "%s", uwhy);
			return ret;
		}
		snprintf(cause, sizeof(cause), "epoll: %s", uwhy);
	}
	loop->be = &ferry__epoll_backend;
	ret = loop->be->init(loop, o, disabled, why, whylen);
	if (ret == 0)
		ferry__describe_features(loop, cause);
	return ret;
}

static int ferry__bell_arm(struct ferry_loop *loop)
{
	return ferry_op_poll_multishot(loop, &loop->bell_op, loop->bell_fd,
				       POLLIN);
}

static void ferry__bell_fn(struct ferry_op *op, int res, unsigned flags)
{
	struct ferry_loop *loop = ferry__container_of(op, struct ferry_loop,
						     bell_op);

	/* The poll stays armed while MORE is set. When the kernel ends it,
	 * with an error or without (overflow, a cancel, no memory), re-arm
	 * unless closing: without it a sleeping loop hears no post. If no
	 * SQE is free for that now, the next turn tries again before it
	 * sleeps (ferry__bell_check). The eventfd counter is never read:
	 * multishot poll reports each write as its own wake-up edge. */
	if (!(flags & FERRY_CQE_MORE) && !loop->destroying)
		ferry__bell_arm(loop);
}

/* Before a sleep of @wait ns: the doorbell must be armed. If it cannot be
 * now, sleep at most 1 ms at a time so posts are still seen. */
static int64_t ferry__bell_check(struct ferry_loop *loop, int64_t wait)
{
	if (ferry_op_busy(&loop->bell_op) || ferry__bell_arm(loop) == 0)
		return wait;
	return wait < 0 || wait > 1000 * 1000 ? 1000 * 1000 : wait;
}

int ferry_loop_create(struct ferry_loop **loopp,
		      const struct ferry_loop_opts *opts, char *why,
		      size_t whylen)
{
	struct ferry_loop_opts o = opts ? *opts : (struct ferry_loop_opts){ 0 };
	unsigned disabled = ferry__disabled_features();
	struct ferry_loop *loop;
	int ret;

	*loopp = NULL;
	if (why && whylen)
		why[0] = '\0';
	if (!o.sq_entries)
		o.sq_entries = 256;
	if (!o.cq_entries)
		o.cq_entries = 4 * o.sq_entries;
	if (!o.offload_threads)
		o.offload_threads = 2;

	/* The inbox line is 64-byte aligned: calloc would not honour it. */
	loop = aligned_alloc(_Alignof(struct ferry_loop),
			     (sizeof(*loop) + 63) & ~(size_t)63);
	if (!loop)
		return -ENOMEM;
	memset(loop, 0, sizeof(*loop));
	loop->owner = pthread_self();
	loop->idle_spin_ns = o.idle_spin_ns;
	loop->spin_budget = o.idle_spin_ns;
	/* valgrind (3.19) keeps its global lock while a thread blocks in
	 * io_uring_enter, so no other thread of the process runs while the
	 * loop sleeps: a poster or offload worker would never get to ring
	 * the doorbell. Under valgrind only, sleep in short slices. */
	loop->max_wait_ns = RUNNING_ON_VALGRIND ? 1000 * 1000 : -1;
	loop->offload_threads = o.offload_threads;
	loop->batch_wait_ns = o.batch_wait_ns;
	loop->bell_fd = -1;
	loop->closing_tail = &loop->closing;
	atomic_init(&loop->inbox, NULL);
	atomic_init(&loop->posters, 0);
	atomic_init(&loop->sleeping, 0);

	ret = ferry__backend_init(loop, &o, disabled, why, whylen);
	if (ret < 0) {
		free(loop);
		return ret;
	}
	if (loop->be == &ferry__uring_backend)
		ferry__describe_features(loop, NULL);

	loop->bell_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->bell_fd < 0) {
		ret = -errno;
		ferry__whyf(why, whylen, "eventfd: %s (%d)",
			    strerrorname_np(errno) ?: "?", errno);
		loop->be->fini(loop);
		free(loop);
		return ret;
	}
	loop->bell_op.fn = ferry__bell_fn;
	ret = ferry__bell_arm(loop);
	if (ret < 0) {
		close(loop->bell_fd);
		loop->be->fini(loop);
		free(loop);
		return ret;
	}
	*loopp = loop;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Inbox and doorbell                                                    */

/*
 * The sleep/wake protocol is Dekker's: the poster stores to the inbox then
 * loads `sleeping`; the loop stores `sleeping = 1` then loads the inbox.
 * Both pairs are seq_cst, so at least one side sees the other's store:
 * either the loop finds the item and does not sleep, or the poster sees
 * the loop asleep and rings. The exchange makes exactly one poster ring.
 */
void ferry_loop_post(struct ferry_loop *loop, struct ferry_post *p)
{
	struct ferry_post *head = atomic_load_explicit(&loop->inbox,
						       memory_order_relaxed);
	uint64_t one = 1;

	/* relaxed: destroy only needs to see the count reach zero after our
	 * last access, which the release decrement below provides. */
	atomic_fetch_add_explicit(&loop->posters, 1, memory_order_relaxed);
	do {
		p->ferry__next = head;
		/* seq_cst: publishes *p and orders the store before the
		 * load of `sleeping` below (the Dekker pair). */
	} while (!atomic_compare_exchange_weak_explicit(
		&loop->inbox, &head, p, memory_order_seq_cst,
		memory_order_relaxed));

	if (atomic_load_explicit(&loop->sleeping, memory_order_seq_cst) &&
	    atomic_exchange_explicit(&loop->sleeping, 0, memory_order_seq_cst)) {
		/* A full counter (EAGAIN) still leaves the fd readable. */
		if (write(loop->bell_fd, &one, sizeof(one)) < 0)
			(void)0;
	}
	/* release: our reads of the loop happen-before destroy's free. */
	atomic_fetch_sub_explicit(&loop->posters, 1, memory_order_release);
}

/* Run everything posted so far, oldest first. Returns items run. */
unsigned ferry__inbox_run(struct ferry_loop *loop)
{
	struct ferry_post *list, *rev = NULL, *next;
	unsigned n = 0;

	if (!atomic_load_explicit(&loop->inbox, memory_order_relaxed))
		return 0;
	/* acquire: pairs with the posters' release of each item. */
	list = atomic_exchange_explicit(&loop->inbox, NULL,
					memory_order_acquire);
	/* The stack is newest-first; reverse for FIFO per poster. */
	while (list) {
		next = list->ferry__next;
		list->ferry__next = rev;
		rev = list;
		list = next;
	}
	while (rev) {
		next = rev->ferry__next;
		rev->fn(rev);	/* may free rev */
		rev = next;
		n++;
	}
	return n;
}

void ferry_loop_close_later(struct ferry_loop *loop, struct ferry_closing *c)
{
	FERRY__ASSERT_LOOP(loop);
	c->ferry__next = NULL;
	*loop->closing_tail = c;
	loop->closing_tail = &c->ferry__next;
}

/* The close phase: free what was closed this turn, and what those frees
 * close in turn. Returns items run. */
static unsigned ferry__run_closing(struct ferry_loop *loop)
{
	unsigned n = 0;

	while (loop->closing) {
		struct ferry_closing *c = loop->closing;

		loop->closing = c->ferry__next;
		if (!loop->closing)
			loop->closing_tail = &loop->closing;
		c->fn(c);
		n++;
	}
	return n;
}

/* Is there work the loop would see without entering the kernel? */
static bool ferry__has_userspace_work(struct ferry_loop *loop)
{
	/* seq_cst: after `sleeping = 1` this is the loop's half of the
	 * Dekker pair; a weaker load could be ordered before that store. */
	return atomic_load_explicit(&loop->inbox, memory_order_seq_cst) ||
	       loop->deferred || loop->closing;
}

/*
 * Bounded spin before sleeping: a post that lands within idle_spin_ns is
 * picked up without a doorbell write on the poster's side and without a
 * wake-up on ours. After the bound the loop sleeps, so an idle loop uses
 * no CPU.
 */
static bool ferry__spin_for_work(struct ferry_loop *loop, uint64_t limit_ns)
{
	uint64_t end;

	if (!limit_ns)
		return false;
	end = ferry_time_now() + limit_ns;
	for (unsigned i = 0;; i++) {
		if (ferry__has_userspace_work(loop) || loop->be->ready(loop))
			return true;
		ferry__cpu_relax();
		if ((i & 31) == 31) {
			if (ferry_time_now() >= end)
				return false;
			/* If the scheduler put our poster on this CPU, spinning
			 * only keeps it from running: let it. Alone on the
			 * CPU, this returns at once. */
			sched_yield();
		}
	}
}

/*
 * The spin adapts, so that a loop waiting on the network does not burn
 * CPU on spins that posts never end: a spin that found work doubles the
 * budget (up to idle_spin_ns), one that did not halves it, down to none.
 * A post that woke the loop from a sleep shorter than idle_spin_ns shows
 * a spin would have caught it, and restores the full budget.
 */
static void ferry__spin_adapt(struct ferry_loop *loop, bool hit)
{
	unsigned b = loop->spin_budget;

	b = hit ? 2 * b : b / 2;
	if (b > loop->idle_spin_ns)
		b = loop->idle_spin_ns;
	if (b < 500)	/* below half a microsecond a spin cannot hit */
		b = hit ? 500 : 0;
	loop->spin_budget = b;
}

static void ferry__spin_after_sleep(struct ferry_loop *loop, uint64_t since)
{
	if (loop->idle_spin_ns &&
	    atomic_load_explicit(&loop->inbox, memory_order_relaxed) &&
	    ferry_time_now() - since <= loop->idle_spin_ns)
		loop->spin_budget = loop->idle_spin_ns;
}

/* ------------------------------------------------------------------ */
/* The turn                                                              */

static int64_t ferry__min_wait(int64_t a, int64_t b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

int ferry_loop_run_once(struct ferry_loop *loop, int64_t timeout_ns)
{
	uint64_t slept;
	uint64_t tlimit;
	unsigned n, posts;
	int64_t wait;
	int ret;

	FERRY__ASSERT_LOOP(loop);
	/* One clock read per turn, and one more after a sleep: callbacks
	 * read it through ferry_loop_now. */
	loop->now = ferry_time_now();
	loop->in_turn = true;
	/* Timers started during this turn wait for the next one, so a timer
	 * re-arming itself in the past fires once per turn. */
	tlimit = loop->timer_seq;
	n = posts = ferry__inbox_run(loop);
	n += ferry__run_deferred(loop);
	n += ferry__timers_run(loop, loop->now, tlimit);
	n += ferry__run_closing(loop);

	wait = n ? 0 : ferry__min_wait(timeout_ns,
				       ferry__timers_next(loop, loop->now));
	wait = ferry__min_wait(wait, loop->max_wait_ns);
	if (wait != 0)
		wait = ferry__bell_check(loop, wait);
	if (wait != 0 && loop->spin_budget) {
		/* Batched SQEs (futex wakes above all) must not wait out the
		 * spin: hand them to the kernel first. */
		loop->be->flush(loop);
		if (ferry__spin_for_work(loop, loop->spin_budget))
			wait = 0;
		ferry__spin_adapt(loop, wait == 0);
	}
	if (wait != 0) {
		/* Announce sleep, then look once more (the Dekker pair with
		 * ferry_loop_post). */
		atomic_store_explicit(&loop->sleeping, 1, memory_order_seq_cst);
		if (ferry__has_userspace_work(loop))
			wait = 0;
	}
	slept = wait != 0 ? loop->now : 0;
	ret = loop->be->wait(loop, wait, posts || loop->posted);
	atomic_store_explicit(&loop->sleeping, 0, memory_order_relaxed);
	if (ret < 0) {
		loop->in_turn = false;
		return ret;
	}
	if (slept) {
		loop->now = ferry_time_now();
		ferry__spin_after_sleep(loop, slept);
	}

	n += loop->be->reap(loop);
	n += ferry__timers_run(loop, loop->now, tlimit);
	posts = ferry__inbox_run(loop);
	n += posts;
	n += ferry__run_deferred(loop);
	n += ferry__run_closing(loop);
	loop->posted = posts != 0;
	loop->in_turn = false;
	return (int)n;
}

int ferry_loop_run(struct ferry_loop *loop)
{
	int ret = 0;

	FERRY__ASSERT_LOOP(loop);
	loop->stop = false;
	while (!loop->stop) {
		ret = ferry_loop_run_once(loop, -1);
		if (ret < 0)
			break;
	}
	loop->stop = false;
	return ret < 0 ? ret : 0;
}

void ferry_loop_stop(struct ferry_loop *loop)
{
	FERRY__ASSERT_LOOP(loop);
	loop->stop = true;
}

/* ------------------------------------------------------------------ */
/* Shutdown                                                              */

/*
 * Run posted items and deferred completions until none is left and no
 * poster is inside ferry_loop_post: an item run here may post again, and
 * another thread may be pushing one right now. Nothing posted before
 * destroy returns is dropped.
 */
static void ferry__drain_posts(struct ferry_loop *loop)
{
	unsigned n;

	do {
		/* acquire: pairs with each poster's release decrement; every
		 * push by a poster seen leaving happens-before the inbox
		 * loads in ferry__inbox_run, which therefore see it. */
		while (atomic_load_explicit(&loop->posters,
					    memory_order_acquire))
			sched_yield();
		n = ferry__inbox_run(loop);
		n += ferry__run_deferred(loop);
	} while (n);
}

void ferry_loop_destroy(struct ferry_loop *loop)
{
	if (!loop)
		return;
	FERRY__ASSERT_LOOP(loop);
	loop->destroying = true;
	loop->last_op = NULL;	/* ops are refused: no deadline is coming */

	/* Workers finish what they run and post it; queued jobs complete
	 * as cancelled. Then everything posted runs once more. */
	ferry__pool_stop(loop);
	ferry__inbox_run(loop);

	/* Parked recvs have no SQE in the kernel: complete them here. */
	for (struct ferry_bufring *br = loop->bufrings; br; br = br->next)
		while (br->parked) {
			struct ferry_op *op = br->parked;

			ferry__bufring_unpark(br, op);
			ferry__op_defer(loop, op, -ECANCELED);
		}

	/* Cancel, then keep turning until the kernel has returned every
	 * CQE. Ops that ignore cancellation (a regular file read) finish
	 * by themselves; the cancel is repeated each round for them. */
	ferry__run_closing(loop);
	while (loop->inflight || loop->deferred || loop->closing) {
		if (loop->inflight > loop->internal_inflight)
			loop->be->cancel_all(loop);
		loop->be->wait(loop, loop->deferred || loop->closing
					     ? 0 : 100 * 1000 * 1000,
			       false);
		loop->be->reap(loop);
		ferry__run_deferred(loop);
		ferry__inbox_run(loop);
		ferry__run_closing(loop);
	}
	/* The final pass: the loop never enters the kernel again (futex
	 * wakes from here on are syscalls, see ferry_loop_futex_wake). */
	ferry__drain_posts(loop);
	ferry__run_closing(loop);
	ferry__timers_free(loop);
	ferry__bufring_destroy_all(loop);
	loop->be->fini(loop);
	close(loop->bell_fd);
	free(loop);
}
