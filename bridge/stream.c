/*
 * stream.c - a bounded single-producer single-consumer channel of lent
 * chunks, from the loop (producer) to one consumer thread.
 *
 * Indices are free-running 32-bit counters:
 *
 *     reclaimed <= head <= next <= tail
 *
 *   tail       chunks pushed (loop writes; consumer reads)
 *   next       chunks the consumer has taken (consumer only)
 *   head       chunks the consumer is done with (consumer writes)
 *   reclaimed  chunks whose memory went back via ops->release (loop only)
 *
 * The consumer is lent one chunk at a time; asking for the next one
 * returns the previous one by advancing head. The loop learns of that
 * through a notify post, sent only when it matters: when a quarter of the
 * channel is waiting to be reclaimed, or before the consumer sleeps (the
 * producer may be waiting for those buffers). The channel never holds
 * more than capacity chunks: a full push returns -EAGAIN and the producer
 * pauses (the high-water mark). It resumes with hysteresis: ops->resume is
 * called only once the loop has reclaimed down to the low-water mark, half
 * the capacity, so a reader that falls behind for a moment costs one
 * pause and one resume per half channel drained, not one per chunk, and
 * the reader still has half a channel queued while the producer restarts.
 *
 * Lifetime: the producer's share ends with ferry_stream_end(), the
 * consumer's with ferry_stream_close(), which reaches the loop as a post;
 * both are accounted on the loop, which frees the stream when both are in.
 * A live stream keeps its runner's loop alive, so the consumer can always
 * post to it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

struct ferry__slot {
	const void *data;
	size_t len;
	uintptr_t token;
};

struct ferry_stream {
	struct ferry_runner *r;
	const struct ferry_stream_ops *ops;
	void *ctx;
	void *producer;
	unsigned cap;
	struct ferry__slot *slots;

	/* Loop -> consumer. */
	_Atomic uint32_t tail;
	_Atomic uint32_t seq;		/* futex word: bumped on every change */
	atomic_int ended;		/* status is final */
	atomic_int aborted;		/* runner closing: ECLOSED at once */
	int status;
	char why[FERRY_STREAM_WHY_MAX];	/* with status, before ended */
	/* ferry_stream_set_total: relaxed, the producer stores it before
	 * ended (seq_cst), which orders it for a reader that saw the end. */
	_Atomic uint64_t total;

	/* Consumer -> loop. */
	_Atomic uint32_t head;
	atomic_int closed;
	atomic_int waiting;		/* consumer sleeps on seq */
	atomic_int notify_pending;
	struct ferry_post notify_post;
	struct ferry_post close_post;

	/* Consumer only. */
	uint32_t next;
	uint32_t notified;		/* head at the last notify */
	bool lent;

	/* Loop only. */
	uint32_t ltail;
	uint32_t reclaimed;
	bool paused, stop_sent, producer_done, consumer_done;
	struct ferry__link link;

	/* Counters: written by the loop only, read by anyone (relaxed: each
	 * is a count on its own, exact once the stream has ended). */
	_Atomic uint64_t st_pushed;
	_Atomic uint32_t st_pauses;
	_Atomic uint32_t st_resumes;
	_Atomic uint32_t st_max_queued;
};

/* A counter only the loop writes: a plain read-modify-write will do. */
#define FERRY__STAT_ADD(s, field, n)                                        \
	atomic_store_explicit(&(s)->field,                                  \
			      atomic_load_explicit(&(s)->field,             \
						   memory_order_relaxed) + (n), \
			      memory_order_relaxed)

static void ferry__stream_notify_fn(struct ferry_post *p);
static void ferry__stream_close_fn(struct ferry_post *p);

/* Queued chunks at or below which a paused producer resumes. */
static unsigned ferry__stream_low_water(const struct ferry_stream *s)
{
	return s->cap / 2;
}

/* Chunks the consumer returns between two notify posts: a quarter of the
 * channel, so the loop hears of the low-water mark before the reader has
 * eaten the other half. */
static unsigned ferry__stream_notify_every(const struct ferry_stream *s)
{
	return s->cap / 4 ? s->cap / 4 : 1;
}

int ferry_stream_create(struct ferry_runner *r, unsigned capacity,
			const struct ferry_stream_ops *ops, void *ctx,
			void *producer, struct ferry_stream **sp)
{
	struct ferry_stream *s;

	*sp = NULL;
	if (!capacity)
		capacity = 16;
	if (capacity < 2 || capacity > 4096 || (capacity & (capacity - 1)) ||
	    !ops || !ops->release || !ops->resume || !ops->stop)
		return FERRY_EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->slots = calloc(capacity, sizeof(*s->slots));
	if (!s->slots) {
		free(s);
		return -ENOMEM;
	}
	s->r = r;
	s->ops = ops;
	s->ctx = ctx;
	s->producer = producer;
	s->cap = capacity;
	s->notify_post.fn = ferry__stream_notify_fn;
	s->close_post.fn = ferry__stream_close_fn;
	ferry__list_add_head(&r->streams, &s->link);
	r->nstreams++;
	/* relaxed: read by the loop itself, or after destroy's stop post. */
	atomic_fetch_add_explicit(&r->open_streams, 1, memory_order_relaxed);
	*sp = s;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Loop side                                                             */

static void ferry__stream_free(struct ferry_stream *s)
{
	ferry__list_del(&s->link);
	s->r->nstreams--;
	free(s->slots);
	free(s);
}

/* Give back the memory of every chunk before @upto. */
static void ferry__stream_reclaim(struct ferry_stream *s, uint32_t upto)
{
	while (s->reclaimed != upto) {
		struct ferry__slot *slot = &s->slots[s->reclaimed & (s->cap - 1)];

		s->reclaimed++;
		s->ops->release(s->ctx, slot->token);
	}
}

/* Tell a sleeping consumer that something changed. */
static void ferry__stream_signal(struct ferry_stream *s)
{
	/* seq_cst pair with the consumer: it stores `waiting` then loads
	 * tail/ended; we store those then load `waiting`. */
	atomic_fetch_add_explicit(&s->seq, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&s->waiting, memory_order_seq_cst))
		ferry__loop_wake(s->r, &s->seq);
}

int ferry_stream_push(struct ferry_stream *s, const void *data, size_t len,
		      uintptr_t token)
{
	struct ferry__slot *slot;

	if (s->consumer_done || atomic_load_explicit(&s->closed, memory_order_acquire) ||
	    atomic_load_explicit(&s->aborted, memory_order_relaxed))
		return FERRY_ECLOSED;
	if (s->ltail - s->reclaimed == s->cap) {
		/* acquire: the consumer is done reading what it released. */
		ferry__stream_reclaim(s, atomic_load_explicit(&s->head,
							      memory_order_acquire));
		if (s->ltail - s->reclaimed == s->cap) {
			if (!s->paused)
				FERRY__STAT_ADD(s, st_pauses, 1);
			s->paused = true;
			return -EAGAIN;
		}
	}
	slot = &s->slots[s->ltail & (s->cap - 1)];
	slot->data = data;
	slot->len = len;
	slot->token = token;
	s->ltail++;
	FERRY__STAT_ADD(s, st_pushed, 1);
	if (s->ltail - s->reclaimed >
	    atomic_load_explicit(&s->st_max_queued, memory_order_relaxed))
		atomic_store_explicit(&s->st_max_queued, s->ltail - s->reclaimed,
				      memory_order_relaxed);
	/* seq_cst (release at least): publishes the slot with the index. */
	atomic_store_explicit(&s->tail, s->ltail, memory_order_seq_cst);
	ferry__stream_signal(s);
	return 0;
}

unsigned ferry_stream_queued(const struct ferry_stream *s)
{
	return s->ltail - s->reclaimed;
}

void ferry_stream_end(struct ferry_stream *s, int status)
{
	ferry_stream_end_why(s, status, NULL);
}

void ferry_stream_end_why(struct ferry_stream *s, int status, const char *why)
{
	if (s->r->loop_closing &&
	    (status == FERRY_ECANCELED || status == FERRY_ECLOSED)) {
		status = FERRY_ECLOSED;
		why = "the runner was closed";
	}
	s->status = status;
	if (status < 0)
		snprintf(s->why, sizeof(s->why), "%s",
			 why && *why ? why : ferry_strerror(status));
	/* seq_cst: status and the final tail happen-before ended. */
	atomic_store_explicit(&s->ended, 1, memory_order_seq_cst);
	ferry__stream_signal(s);
	s->producer_done = true;
	if (s->consumer_done)
		ferry__stream_free(s);
}

/*
 * Why no notify is lost (the consumer returns chunks, the loop reclaims).
 *
 * The consumer stores head (A: release), then swaps notify_pending to 1
 * (B) and posts only if it was 0. The loop's notify clears notify_pending
 * (C), then loads head (D). Each side writes one location and reads the
 * other: acquire and release cannot order that (on AArch64, D may read an
 * old head while C is not yet visible, and the consumer's B may still see
 * 1), and a producer paused for room would then wait for chunks that the
 * consumer, now asleep, has already returned. Two seq_cst fences, X
 * between A and B (ferry__stream_notify), Y between C and D (here), fix
 * it as in runner.c ("Why no cancel request is lost"): if B read 0, the
 * post carries A to the next notify; if B read 1, the pending notify's C
 * follows B in notify_pending's modification order, so X precedes Y in S
 * (C11 7.17.3p11) and D sees A or a later head.
 */
static void ferry__stream_notify_fn(struct ferry_post *p)
{
	struct ferry_stream *s = ferry__container_of(p, struct ferry_stream,
						    notify_post);

	/* Clear first (C): a release after our read of head posts again. */
	atomic_store_explicit(&s->notify_pending, 0, memory_order_seq_cst);
	/* Fence Y above: C before the load of head (D). */
	ferry__fence_seq_cst();
	/* acquire (D): the consumer is done reading what it released. */
	ferry__stream_reclaim(s, atomic_load_explicit(&s->head,
						      memory_order_acquire));
	/* Hysteresis: resume at the low-water mark, not at the first free
	 * slot (which would pause again on the next push). */
	if (s->paused && !s->producer_done &&
	    s->ltail - s->reclaimed <= ferry__stream_low_water(s)) {
		s->paused = false;
		FERRY__STAT_ADD(s, st_resumes, 1);
		s->ops->resume(s, s->producer);
	}
}

static void ferry__stream_close_fn(struct ferry_post *p)
{
	struct ferry_stream *s = ferry__container_of(p, struct ferry_stream,
						    close_post);

	/* The consumer is gone: everything pushed can go back. */
	s->consumer_done = true;
	ferry__stream_reclaim(s, s->ltail);
	if (s->producer_done) {
		ferry__stream_free(s);
	} else if (!s->stop_sent) {
		s->stop_sent = true;
		s->ops->stop(s, s->producer);	/* may end, and so free, s */
	}
}

/* Runner close: consumers return FERRY_ECLOSED, producers are stopped. */
void ferry__streams_close(struct ferry_runner *r)
{
	struct ferry__link todo;

	ferry__list_move_all(&todo, &r->streams);

	while (!ferry__list_empty(&todo)) {
		struct ferry__link *l = todo.next;
		struct ferry_stream *s = ferry__container_of(l, struct ferry_stream,
							    link);

		ferry__list_del(l);
		ferry__list_add_head(&r->streams, l);
		atomic_store_explicit(&s->aborted, 1, memory_order_seq_cst);
		ferry__stream_signal(s);
		if (!s->producer_done && !s->stop_sent) {
			s->stop_sent = true;
			s->ops->stop(s, s->producer);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Consumer side                                                         */

static void ferry__stream_notify(struct ferry_stream *s)
{
	s->notified = s->next;
	/* Fence X (see ferry__stream_notify_fn): the head we stored (A)
	 * before the exchange (B). */
	ferry__fence_seq_cst();
	/* seq_cst: only the exchange that reads 0 posts. */
	if (!atomic_exchange_explicit(&s->notify_pending, 1, memory_order_seq_cst))
		ferry_loop_post(s->r->loop, &s->notify_post);
}

/* Hand the lent chunk back; tell the loop when it is worth a post. */
static void ferry__stream_return_lent(struct ferry_stream *s)
{
	if (!s->lent)
		return;
	s->lent = false;
	s->next++;
	/* release: our reads of the chunk happen-before the loop reuses it. */
	atomic_store_explicit(&s->head, s->next, memory_order_release);
	if (s->next - s->notified >= ferry__stream_notify_every(s))
		ferry__stream_notify(s);
}

/* 1: a chunk, 0 / < 0: the end, FERRY__AGAIN: nothing yet. */
#define FERRY__AGAIN 2

static int ferry__stream_poll(struct ferry_stream *s, struct ferry_chunk *c)
{
	uint32_t tail;

	if (atomic_load_explicit(&s->aborted, memory_order_seq_cst))
		return FERRY_ECLOSED;
	/* seq_cst: the other half of the Dekker pair in stream_signal. */
	tail = atomic_load_explicit(&s->tail, memory_order_seq_cst);
	if (s->next == tail) {
		if (!atomic_load_explicit(&s->ended, memory_order_seq_cst))
			return FERRY__AGAIN;
		/* ended is stored after the final tail: look once more. */
		tail = atomic_load_explicit(&s->tail, memory_order_acquire);
		if (s->next == tail)
			return s->status;
	}
	c->data = s->slots[s->next & (s->cap - 1)].data;
	c->len = s->slots[s->next & (s->cap - 1)].len;
	s->lent = true;
	return 1;
}

int ferry_stream_next(struct ferry_stream *s, struct ferry_chunk *c,
		      int64_t timeout_ns)
{
	uint64_t deadline;
	int ret;

	if (!s || !c)
		return FERRY_EINVAL;
	if (ferry__runner_on_loop(s->r))
		return FERRY_EDEADLOCK;
	ferry__stream_return_lent(s);
	ret = ferry__stream_poll(s, c);
	if (ret != FERRY__AGAIN)
		return ret;
	/* About to wait: the producer may be waiting for what we hold. */
	if (s->next != s->notified)
		ferry__stream_notify(s);
	if (timeout_ns == 0)
		return FERRY_ETIMEDOUT;
	deadline = ferry__deadline(timeout_ns);
	for (;;) {
		uint32_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);

		ret = ferry__stream_poll(s, c);
		if (ret != FERRY__AGAIN)
			return ret;
		if (ferry__spin_while(s->r, &s->seq, ~0u, seq))
			continue;
		atomic_store_explicit(&s->waiting, 1, memory_order_seq_cst);
		ret = ferry__stream_poll(s, c);
		if (ret == FERRY__AGAIN)
			ret = ferry__futex_wait(&s->seq, seq, deadline);
		atomic_store_explicit(&s->waiting, 0, memory_order_relaxed);
		if (ret == FERRY_ETIMEDOUT) {
			ret = ferry__stream_poll(s, c);
			return ret == FERRY__AGAIN ? FERRY_ETIMEDOUT : ret;
		}
		if (ret != 0)
			return ret;	/* the poll under `waiting` found it */
	}
}

void ferry_stream_stats(const struct ferry_stream *s,
			struct ferry_stream_stats *st)
{
	struct ferry_stream *m = (struct ferry_stream *)s;

	if (!st)
		return;
	*st = (struct ferry_stream_stats){ 0 };
	if (!s)
		return;
	st->capacity = s->cap;
	st->low_water = ferry__stream_low_water(s);
	/* relaxed: counters, see struct ferry_stream. */
	st->pushed = atomic_load_explicit(&m->st_pushed, memory_order_relaxed);
	st->pauses = atomic_load_explicit(&m->st_pauses, memory_order_relaxed);
	st->resumes = atomic_load_explicit(&m->st_resumes, memory_order_relaxed);
	st->max_queued = atomic_load_explicit(&m->st_max_queued,
					      memory_order_relaxed);
}

void ferry_stream_set_total(struct ferry_stream *s, uint64_t n)
{
	if (s)
		atomic_store_explicit(&s->total, n, memory_order_relaxed);
}

uint64_t ferry_stream_total(const struct ferry_stream *s)
{
	struct ferry_stream *m = (struct ferry_stream *)s;

	return s ? atomic_load_explicit(&m->total, memory_order_relaxed) : 0;
}

const char *ferry_stream_why(const struct ferry_stream *s)
{
	struct ferry_stream *m = (struct ferry_stream *)s;

	if (!s)
		return "";
	/* As ferry__stream_poll decides: an abort wins over the status. */
	if (atomic_load_explicit(&m->aborted, memory_order_seq_cst))
		return "the runner was closed";
	/* acquire: why was written before ended was stored, never after. */
	if (atomic_load_explicit(&m->ended, memory_order_acquire) &&
	    s->status < 0)
		return s->why;
	return "";
}

void ferry_stream_close(struct ferry_stream *s)
{
	if (!s)
		return;
	ferry__stream_return_lent(s);
	/* release: a destroy that follows this close (by the caller's
	 * contract) sees the stream given up; see ferry__runner_main. */
	atomic_fetch_sub_explicit(&s->r->open_streams, 1, memory_order_release);
	atomic_store_explicit(&s->closed, 1, memory_order_seq_cst);
	/* The loop is alive: a live stream keeps it so. */
	ferry_loop_post(s->r->loop, &s->close_post);
}
