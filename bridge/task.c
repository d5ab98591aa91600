/*
 * task.c - tasks and their futures.
 *
 * A task's state word is its future: the loop publishes the status with a
 * release exchange that sets DONE, and wakes the word only if a waiter
 * announced itself with WAITERS. After that exchange the loop never reads
 * the task again, because its owner may free it the moment it sees DONE.
 */
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

#define FERRY__WAITV_MAX 128
#define FERRY__WAITV_SLICE_NS (1000 * 1000)

static void ferry__task_start(struct ferry_post *p)
{
	struct ferry_task *t = ferry__container_of(p, struct ferry_task,
						  ferry__post);
	struct ferry_runner *r = t->ferry__runner;

	ferry__list_add_head(&r->tasks, &t->ferry__link);
	r->ntasks++;
	/* relaxed: a CANCEL set before this task's post happens-before us;
	 * one set later is seen here or by a later sweep, through the post
	 * or the scan's fence (runner.c, "Why no cancel request is lost").
	 * The task is on the list before this load, for that sweep. */
	if (atomic_load_explicit(ferry__task_word(t), memory_order_relaxed) &
	    FERRY__T_CANCEL) {
		t->ferry__cancel_sent = true;
		ferry_task_complete(t, FERRY_ECANCELED);
		return;
	}
	t->start(t);
}

int ferry_task_submit(struct ferry_runner *r, struct ferry_task *t)
{
	int ret;

	if (!r || !t || !t->start)
		return FERRY_EINVAL;
	if (atomic_load_explicit(ferry__task_word(t), memory_order_acquire) &
	    FERRY__T_INFLIGHT)
		return FERRY_EINVAL;
	ret = ferry__runner_enter(r);
	if (ret)
		return ret;
	t->ferry__runner = r;
	t->ferry__status = 0;
	t->ferry__cancel_sent = false;
	t->ferry__link.prev = t->ferry__link.next = NULL;	/* on no list */
	atomic_store_explicit(ferry__task_word(t), FERRY__T_INFLIGHT,
			      memory_order_relaxed);
	t->ferry__post.fn = ferry__task_start;
	/* The post's seq_cst CAS publishes every field written above. */
	ferry_loop_post(r->loop, &t->ferry__post);
	ferry__runner_leave(r);
	return 0;
}

void ferry_task_complete(struct ferry_task *t, int status)
{
	struct ferry_runner *r = t->ferry__runner;
	_Atomic uint32_t *word = ferry__task_word(t);
	uint32_t old;

	ferry__list_del(&t->ferry__link);
	r->ntasks--;
	if ((atomic_load_explicit(word, memory_order_relaxed) & FERRY__T_CLOSED) &&
	    status == FERRY_ECANCELED)
		status = FERRY_ECLOSED;
	t->ferry__status = status;
	/* release: the status, and whatever the task wrote into its owner's
	 * struct, happen-before a waiter's acquire of DONE. From here on @t
	 * may be freed; only the word's address is used, by the wake. */
	old = atomic_exchange_explicit(word, FERRY__T_DONE, memory_order_release);
	if (old & FERRY__T_WAITERS)
		ferry__loop_wake(r, word);
}

struct ferry_runner *ferry_task_runner(const struct ferry_task *t)
{
	return t->ferry__runner;
}

bool ferry_task_done(const struct ferry_task *t)
{
	if (!t)
		return false;
	return atomic_load_explicit(ferry__task_word((struct ferry_task *)t),
				    memory_order_acquire) & FERRY__T_DONE;
}

int ferry_task_wait(struct ferry_task *t, int64_t timeout_ns)
{
	_Atomic uint32_t *word;
	uint32_t s;
	struct ferry_runner *r;
	uint64_t deadline;

	if (!t)
		return FERRY_EINVAL;
	word = ferry__task_word(t);
	s = atomic_load_explicit(word, memory_order_acquire);
	if (s & FERRY__T_DONE)
		return t->ferry__status;
	if (!(s & FERRY__T_INFLIGHT))
		return FERRY_EINVAL;
	r = t->ferry__runner;
	if (ferry__runner_on_loop(r))
		return FERRY_EDEADLOCK;
	if (timeout_ns == 0)
		return FERRY_ETIMEDOUT;
	deadline = ferry__deadline(timeout_ns);
	if (ferry__spin_while(r, word, FERRY__T_DONE, 0))
		return t->ferry__status;
	for (;;) {
		/* acquire: if DONE is already set, its status is visible. */
		s = atomic_fetch_or_explicit(word, FERRY__T_WAITERS,
					     memory_order_acquire);
		if (s & FERRY__T_DONE)
			return t->ferry__status;
		if (ferry__futex_wait(word, s | FERRY__T_WAITERS, deadline) ==
		    FERRY_ETIMEDOUT) {
			if (atomic_load_explicit(word, memory_order_acquire) &
			    FERRY__T_DONE)
				return t->ferry__status;
			return FERRY_ETIMEDOUT;
		}
	}
}

int ferry_task_cancel(struct ferry_task *t)
{
	_Atomic uint32_t *word;
	uint32_t s;
	struct ferry_runner *r;

	if (!t)
		return FERRY_EINVAL;
	word = ferry__task_word(t);
	s = atomic_load_explicit(word, memory_order_acquire);
	if (s & FERRY__T_DONE)
		return 0;
	if (!(s & FERRY__T_INFLIGHT))
		return FERRY_EINVAL;
	/* Read the runner before the RMW: once the task is done its owner
	 * may free it, but the runner outlives its tasks. */
	r = t->ferry__runner;
	/* acq_rel: a DONE already set publishes the status. The store of
	 * CANCEL (A) reaches the loop through the scan request's fence
	 * (runner.c, "Why no cancel request is lost"). */
	s = atomic_fetch_or_explicit(word, FERRY__T_CANCEL, memory_order_acq_rel);
	if (!(s & FERRY__T_DONE))
		ferry__runner_request_scan(r);
	return 0;
}

int ferry_task_release(struct ferry_task *t)
{
	uint32_t s;

	if (!t)
		return FERRY_EINVAL;
	s = atomic_load_explicit(ferry__task_word(t), memory_order_acquire);
	if (s & FERRY__T_DONE)
		return t->ferry__status;
	if (!(s & FERRY__T_INFLIGHT))
		return 0;
	if (ferry__runner_on_loop(t->ferry__runner))
		return FERRY_EDEADLOCK;
	ferry_task_cancel(t);
	return ferry_task_wait(t, -1);
}

int ferry_call(struct ferry_runner *r, struct ferry_task *t)
{
	int ret;

	if (r && ferry__runner_on_loop(r))
		return FERRY_EDEADLOCK;
	ret = ferry_task_submit(r, t);
	if (ret)
		return ret;
	return ferry_task_wait(t, -1);
}

/* ------------------------------------------------------------------ */
/* Sets of tasks                                                         */

static int ferry__check_set(struct ferry_task *const *ts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t s = atomic_load_explicit(ferry__task_word(ts[i]),
						  memory_order_acquire);

		if (!(s & (FERRY__T_DONE | FERRY__T_INFLIGHT)))
			return FERRY_EINVAL;
		if (!(s & FERRY__T_DONE) && ferry__runner_on_loop(ts[i]->ferry__runner))
			return FERRY_EDEADLOCK;
	}
	return 0;
}

int ferry_task_wait_all(struct ferry_task *const *ts, size_t n,
			int64_t timeout_ns)
{
	uint64_t deadline = ferry__deadline(timeout_ns);
	int ret = ferry__check_set(ts, n);

	if (ret)
		return ret;
	for (size_t i = 0; i < n; i++) {
		int64_t left = -1;

		if (deadline) {
			uint64_t now = ferry_time_now();

			left = now >= deadline ? 0 : (int64_t)(deadline - now);
		}
		if (ferry_task_wait(ts[i], left) == FERRY_ETIMEDOUT &&
		    !ferry_task_done(ts[i]))
			return FERRY_ETIMEDOUT;
	}
	return 0;
}

static int ferry__first_done(struct ferry_task *const *ts, size_t from,
			     size_t n)
{
	for (size_t i = from; i < n; i++)
		if (ferry_task_done(ts[i]))
			return (int)i;
	return -1;
}

/* Sleep on up to 128 words at once with futex_waitv (Linux 5.16+). */
static int ferry__waitv(struct ferry_task *const *ts, size_t k,
			uint64_t deadline)
{
	struct futex_waitv w[FERRY__WAITV_MAX];
	struct timespec ts_abs, *tsp = NULL;

	for (size_t i = 0; i < k; i++) {
		uint32_t s = atomic_fetch_or_explicit(ferry__task_word(ts[i]),
						      FERRY__T_WAITERS,
						      memory_order_acquire);

		if (s & FERRY__T_DONE)
			return 0;
		w[i] = (struct futex_waitv){
			.val = s | FERRY__T_WAITERS,
			.uaddr = (uint64_t)(uintptr_t)ferry__task_word(ts[i]),
			.flags = FUTEX_32 | FUTEX_PRIVATE_FLAG,
		};
	}
	if (deadline) {
		FERRY__NS_TO_TS(&ts_abs, deadline);
		tsp = &ts_abs;
	}
	if (syscall(SYS_futex_waitv, w, (unsigned)k, 0, tsp, CLOCK_MONOTONIC) < 0 &&
	    errno == ENOSYS) {
		/* Older kernel: sleep on the first word in short slices. */
		uint64_t slice = ferry_time_now() + FERRY__WAITV_SLICE_NS;

		ferry__futex_wait(ferry__task_word(ts[0]), (uint32_t)w[0].val,
				  deadline && deadline < slice ? deadline : slice);
	}
	return 0;
}

int ferry_task_wait_any(struct ferry_task *const *ts, size_t n,
			int64_t timeout_ns)
{
	uint64_t deadline = ferry__deadline(timeout_ns);
	size_t k = n < FERRY__WAITV_MAX ? n : FERRY__WAITV_MAX;
	int ret, i;

	if (!n)
		return FERRY_EINVAL;
	ret = ferry__check_set(ts, n);
	if (ret)
		return ret;
	for (;;) {
		uint64_t until = deadline;

		i = ferry__first_done(ts, 0, n);
		if (i >= 0)
			return i;
		if (deadline && ferry_time_now() >= deadline)
			return FERRY_ETIMEDOUT;
		if (n > k) {
			/* Beyond 128 words, wake up now and then to look. */
			uint64_t slice = ferry_time_now() + FERRY__WAITV_SLICE_NS;

			if (!until || slice < until)
				until = slice;
		}
		ferry__waitv(ts, k, until);
	}
}

/* ------------------------------------------------------------------ */
/* Cancelling on the loop                                                */

/*
 * Call the cancel hook of every task that asked for it (or of every task
 * when the runner closes). Hooks may complete any task, so the in-flight
 * list is moved aside and walked by popping: completion unlinks a task from
 * whichever list it is on, which a sentinel list allows.
 */
void ferry__tasks_sweep(struct ferry_runner *r, bool closing)
{
	struct ferry__link todo;

	ferry__list_move_all(&todo, &r->tasks);

	while (!ferry__list_empty(&todo)) {
		struct ferry__link *l = todo.next;
		struct ferry_task *t = ferry__container_of(l, struct ferry_task,
							  ferry__link);
		uint32_t s;

		ferry__list_del(l);
		ferry__list_add_head(&r->tasks, l);
		/* relaxed: CLOSED is read back only by the loop itself
		 * (ferry_task_complete). */
		if (closing)
			atomic_fetch_or_explicit(ferry__task_word(t), FERRY__T_CLOSED,
						 memory_order_relaxed);
		/* relaxed: the scan's seq_cst fence, after it cleared
		 * scan_pending, is what makes a requested CANCEL visible
		 * here (runner.c, "Why no cancel request is lost"). */
		s = atomic_load_explicit(ferry__task_word(t), memory_order_relaxed);
		if ((closing || (s & FERRY__T_CANCEL)) && !t->ferry__cancel_sent) {
			t->ferry__cancel_sent = true;
			if (t->cancel)
				t->cancel(t);
		}
	}
}
