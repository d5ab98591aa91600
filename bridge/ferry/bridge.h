/*
 * ferry/bridge.h - hand work to a loop thread from any thread, and wait.
 *
 * A runner owns one loop thread and its ring. Any thread submits a task to
 * it and later waits on the task's future; or calls it (submit + wait); or
 * consumes a stream of chunks the task produces. This is the C form of what
 * asyncio users build by hand with a loop thread,
 * run_coroutine_threadsafe(...).result() and a wrapped async iterator.
 *
 * Threads. Functions marked "Thread: any" may be called from any thread,
 * concurrently. Functions marked "Thread: loop" run only on the runner's
 * loop thread (inside a task's callbacks). A blocking call (wait, call,
 * next) made on the loop thread of the runner it would wait for returns
 * FERRY_EDEADLOCK instead of hanging.
 *
 * Costs. Submitting pushes onto a lock-free queue; the loop's doorbell is
 * rung (one eventfd write) only if the loop sleeps. A waiter spins briefly
 * (bounded, and only a few waiters at a time), then sleeps in FUTEX_WAIT on
 * the future's state word. The loop wakes only waiters that sleep, with
 * IORING_OP_FUTEX_WAKE SQEs batched into its next submission where the
 * kernel has them.
 *
 * NULL. The consumer-side calls that take an object a caller may have got
 * as NULL (a task, a stream: ferry_response_task / ferry_response_stream
 * return NULL for none) return FERRY_EINVAL for it and never crash: wait,
 * cancel, release, next; ferry_task_done says false. Functions that end
 * a lifetime (ferry_runner_destroy, ferry_stream_close) accept NULL as a
 * no-op; so does ferry_lines_free. Loop-side calls (Thread: loop) and ferry_runner_* on a NULL
 * runner are the caller's bug and are not checked.
 *
 * Errors: FERRY_ECLOSED (the runner is closed or closing), FERRY_ECANCELED,
 * FERRY_ETIMEDOUT (a wait's deadline passed; the task goes on),
 * FERRY_EDEADLOCK, FERRY_EUNAVAIL (io_uring unavailable when the runner
 * started and its loop options allow no epoll fallback: ferry/loop.h),
 * FERRY_EINVAL, -ENOMEM, and whatever a task completes with.
 */
#ifndef FERRY_BRIDGE_H
#define FERRY_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/list.h"
#include "ferry/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ferry_runner;
struct ferry_task;
struct ferry_stream;


/* ------------------------------------------------------------------ */
/* Runner                                                                */

struct ferry_runner_opts {
	/* Options for the runner's loop; idle_spin_ns defaults to 50 us here
	 * (the loop polls for new work that long before sleeping). */
	struct ferry_loop_opts loop;
	/* Longest a waiter spins before sleeping (default 50 us; adapts
	 * down when spinning keeps failing). 0 = default; set
	 * FERRY_RUNNER_NO_SPIN to never spin. */
	unsigned wait_spin_ns;
	/* Most waiters spinning at once (default: no limit; each spin is
	 * bounded, adapts, and yields the CPU every few microseconds). */
	unsigned max_spinners;
};

#define FERRY_RUNNER_NO_SPIN 1u

/*
 * ferry_runner_create - allocate a runner; its thread starts with
 * ferry_runner_start() or lazily on the first submit.
 * @opts may be NULL. Returns 0 or -ENOMEM. Thread: any.
 * The caller owns *@rp and frees it with ferry_runner_destroy().
 */
int ferry_runner_create(struct ferry_runner **rp,
			const struct ferry_runner_opts *opts);

/*
 * ferry_runner_start - start the loop thread and wait until its loop is up.
 * Idempotent. Returns 0, FERRY_ECLOSED after close, or the loop's creation
 * error (FERRY_EUNAVAIL...; ferry_runner_why() says why). Thread: any.
 */
int ferry_runner_start(struct ferry_runner *r);

/* ferry_runner_why - a sentence about the last start failure, or "". */
const char *ferry_runner_why(const struct ferry_runner *r);

/*
 * ferry_runner_close - shut the runner down. Idempotent; concurrent calls
 * all return once it is done.
 *
 * In order: new submissions fail with FERRY_ECLOSED; on the loop thread,
 * every task in flight is cancelled and every task that had not started is
 * completed with FERRY_ECLOSED, so every blocked caller in every thread
 * returns promptly; cleanups registered with ferry_runner_on_close() run in
 * reverse order of registration; the loop is destroyed (every op cancelled
 * and reaped) and the thread joined. Never hangs on a task that honours
 * its cancel hook. Returns 0, or FERRY_EDEADLOCK when called on the
 * runner's own loop thread (close it from elsewhere). Thread: any.
 *
 * Streams: chunks lent to a consumer live in the loop's memory, so close
 * waits until every stream's consumer has called ferry_stream_close (a
 * consumer blocked in ferry_stream_next returns FERRY_ECLOSED at once and
 * can do so). A thread must therefore close, or free the responses of,
 * the streams it holds before it closes their runner: otherwise it waits
 * for itself.
 */
int ferry_runner_close(struct ferry_runner *r);

/*
 * ferry_runner_destroy - close, then free. Call once, when no other thread
 * uses @r any more. NULL is a no-op. Thread: any but the loop's.
 *
 * Every stream must have been closed by its consumer before (for the
 * blocking API: every streamed response freed): nobody is left to close
 * it, so the close would wait for ever. Destroy detects that, once every
 * task has ended, and fails loudly instead of hanging: it writes
 * "ferry_runner_destroy: N stream(s) never closed ..." to stderr, then
 * aborts in debug builds (NDEBUG undefined); in release builds it returns
 * without freeing the runner and its loop (they leak, so that the
 * unclosed streams stay valid memory).
 */
void ferry_runner_destroy(struct ferry_runner *r);

/* ferry_runner_loop - the runner's loop, for tasks. Thread: loop. */
struct ferry_loop *ferry_runner_loop(struct ferry_runner *r);

/*
 * struct ferry_cleanup - a resource tied to the runner's lifetime (an HTTP
 * client, say). ->fn runs on the loop thread during close, before the loop
 * is destroyed, in reverse order of registration; it may start ops and
 * wait for them by returning and letting the loop run (the loop is
 * destroyed only after every op has completed).
 */
struct ferry_cleanup {
	void (*fn)(struct ferry_cleanup *c);
	struct ferry_cleanup *ferry__next;	/* private */
};

/*
 * ferry_runner_on_close - register @c; the caller keeps it alive until it
 * has run (or until ferry_runner_cancel_cleanup). Returns 0, or
 * FERRY_ECLOSED if the runner is already closing (@c will not run).
 * Thread: any.
 */
int ferry_runner_on_close(struct ferry_runner *r, struct ferry_cleanup *c);

/* ferry_runner_cancel_cleanup - unregister @c if it has not run yet
 * (a resource closed before its runner). Returns 0 or -ENOENT. Thread: any. */
int ferry_runner_cancel_cleanup(struct ferry_runner *r, struct ferry_cleanup *c);

/* ------------------------------------------------------------------ */
/* Tasks and futures                                                     */

/*
 * struct ferry_task - a loop-side state machine with a future.
 *
 * Embed it in your own struct (container_of), set ->start (and ->cancel for
 * a task that does not complete inside start), submit it, and wait. The
 * memory belongs to the submitter, who may free or reuse it only after
 * ferry_task_wait() returned a result (not FERRY_ETIMEDOUT), or after
 * ferry_task_release(). A task can be submitted again once it is done.
 *
 * Loop side: start() runs on the loop thread; it may issue ring ops, start
 * timers, and complete the task then or later with ferry_task_complete().
 * cancel() runs on the loop thread when someone calls ferry_task_cancel()
 * or the runner closes; it must make the task complete soon (typically by
 * cancelling its ops and completing from their callbacks).
 */
struct ferry_task {
	void (*start)(struct ferry_task *t);
	void (*cancel)(struct ferry_task *t);
	/* private: */
	/* The futex word (FERRY__T_* bits). Plain here so that C++ can include
	 * this header; ferry accesses it only as an _Atomic uint32_t through
	 * ferry__task_word() (bridge/internal.h), which checks that both types
	 * have the same size and alignment. */
	uint32_t ferry__state;
	int ferry__status;
	struct ferry_runner *ferry__runner;
	struct ferry_post ferry__post;
	struct ferry__link ferry__link;	/* the loop's in-flight list */
	bool ferry__cancel_sent;	/* loop-only: cancel() already called */
};

/*
 * ferry_task_submit - hand @t to @r's loop; @t->start will run there.
 * Starts the runner if needed. Returns 0, FERRY_ECLOSED, FERRY_EINVAL (no
 * start function, or @t still in flight), or the runner's start error.
 * Thread: any.
 */
int ferry_task_submit(struct ferry_runner *r, struct ferry_task *t);

/*
 * ferry_task_wait - wait for @t's result.
 * @timeout_ns: < 0 waits for ever; 0 polls; > 0 bounds the wait.
 * Returns the status the task completed with (>= 0 success, < 0 its error,
 * FERRY_ECANCELED if cancelled, FERRY_ECLOSED if the runner closed), or
 * FERRY_ETIMEDOUT (the task is still running), or FERRY_EDEADLOCK on the
 * runner's loop thread. Any number of threads may wait on one task.
 * Thread: any.
 */
int ferry_task_wait(struct ferry_task *t, int64_t timeout_ns);

/* ferry_task_done - true once the result is available. Thread: any. */
bool ferry_task_done(const struct ferry_task *t);

/*
 * ferry_task_cancel - ask for @t to be cancelled. Returns at once; the task
 * completes later (usually with FERRY_ECANCELED, or its real result if it
 * finished first). May race with completion but not with the memory being
 * released. Returns 0, or FERRY_EINVAL if @t was never submitted.
 * Thread: any, including one that is not waiting.
 */
int ferry_task_cancel(struct ferry_task *t);

/*
 * ferry_task_release - give up on @t: cancel it if still running and wait
 * until the loop is done with it, so its memory can be freed. Returns the
 * final status. Thread: any but the loop's (FERRY_EDEADLOCK there, and
 * then the memory is not yet free).
 */
int ferry_task_release(struct ferry_task *t);

/* ferry_call - submit @t and wait for its result. Thread: any. */
int ferry_call(struct ferry_runner *r, struct ferry_task *t);

/*
 * ferry_task_wait_all - wait until every task in @ts is done, or the
 * deadline. Returns 0 when all are done (read each one's status with
 * ferry_task_wait(t, 0)), FERRY_ETIMEDOUT, or FERRY_EDEADLOCK. Thread: any.
 */
int ferry_task_wait_all(struct ferry_task *const *ts, size_t n,
			int64_t timeout_ns);

/*
 * ferry_task_wait_any - wait until at least one task in @ts is done.
 * Returns the index of a done task (the lowest), FERRY_ETIMEDOUT,
 * FERRY_EINVAL for n == 0, or FERRY_EDEADLOCK. Sleeps in one futex_waitv
 * on up to 128 tasks; beyond that it sleeps on the first 128 in 1 ms slices
 * and checks the rest in between. Thread: any.
 */
int ferry_task_wait_any(struct ferry_task *const *ts, size_t n,
			int64_t timeout_ns);

/*
 * ferry_task_complete - publish @t's result and wake its waiters. After this
 * call the loop must not touch @t again (its owner may already be freeing
 * it). Thread: loop.
 */
void ferry_task_complete(struct ferry_task *t, int status);

/* ferry_task_runner - the runner @t was submitted to. Thread: loop. */
struct ferry_runner *ferry_task_runner(const struct ferry_task *t);

/* ------------------------------------------------------------------ */
/* Streams: a bounded SPSC channel of lent chunks, loop -> one consumer  */

/* A chunk lent to the consumer until its next ferry_stream_next/close. */
struct ferry_chunk {
	const void *data;
	size_t len;
};

/* Producer callbacks; all run on the loop thread. */
struct ferry_stream_ops {
	/* Take back the memory behind a chunk the consumer is done with
	 * (@token as given to push). Must not touch the producer, which may
	 * be gone: use @ctx (from create) for what outlives it. Required. */
	void (*release)(void *ctx, uintptr_t token);
	/* The channel has room again after a push returned -EAGAIN. */
	void (*resume)(struct ferry_stream *s, void *producer);
	/* The consumer closed the stream early: stop producing and call
	 * ferry_stream_end(). */
	void (*stop)(struct ferry_stream *s, void *producer);
};

/*
 * ferry_stream_create - make a stream of up to @capacity queued chunks
 * (power of two, 2..4096; 0 = 16). @ops and @ctx must outlive the stream;
 * @producer is passed to resume/stop until ferry_stream_end().
 * The stream has two owners: the producer until ferry_stream_end(), the
 * consumer until ferry_stream_close(); it is freed when both are done (and
 * every chunk is released). Returns 0, -ENOMEM or FERRY_EINVAL.
 * Thread: loop.
 */
int ferry_stream_create(struct ferry_runner *r, unsigned capacity,
			const struct ferry_stream_ops *ops, void *ctx,
			void *producer, struct ferry_stream **sp);

/*
 * ferry_stream_push - queue a chunk of @len bytes at @data, lent to the
 * consumer until released through ops->release(ctx, @token).
 * Returns 0; -EAGAIN when the channel is full (keep the chunk, stop
 * producing, and wait for ops->resume); FERRY_ECLOSED when the consumer
 * has closed (the chunk was not taken: release it yourself).
 * Thread: loop.
 */
int ferry_stream_push(struct ferry_stream *s, const void *data, size_t len,
		      uintptr_t token);

/*
 * ferry_stream_end - no more chunks: @status 0 for a clean end of stream,
 * or a negative error the consumer receives after the queued chunks. The
 * producer must not use @s afterwards. Thread: loop.
 */
void ferry_stream_end(struct ferry_stream *s, int status);

/* Room for a stream's error sentence, NUL included (longer is cut). */
#define FERRY_STREAM_WHY_MAX 192

/*
 * ferry_stream_end_why - ferry_stream_end() with a sentence about the
 * error (@why is copied; NULL or "" = ferry_strerror(@status)); the
 * consumer reads it with ferry_stream_why(). Thread: loop.
 *
 * While the runner closes, FERRY_ECANCELED and FERRY_ECLOSED both end
 * the stream with FERRY_ECLOSED and "the runner was closed".
 */
void ferry_stream_end_why(struct ferry_stream *s, int status, const char *why);

/*
 * ferry_stream_set_total - a figure about the stream, set by the
 * producer before it ends it (the session: the body's bytes as received,
 * before decoding); ferry_stream_total() reads it, 0 until set and for
 * NULL. Read after ferry_stream_next() returned the end, it is the value
 * set before the end. Thread: set on the loop; read on any.
 */
void ferry_stream_set_total(struct ferry_stream *s, uint64_t n);
uint64_t ferry_stream_total(const struct ferry_stream *s);

/* ferry_stream_queued - chunks pushed and not yet released. Thread: loop. */
unsigned ferry_stream_queued(const struct ferry_stream *s);

/*
 * Backpressure, in numbers. A push into a full channel (capacity chunks
 * queued: the high-water mark) returns -EAGAIN and the producer pauses;
 * ops->resume comes only once the consumer has given back enough for the
 * queue to drain to low_water (half the capacity), so pausing is rare
 * and a resumed producer has room for half a channel at once.
 */
struct ferry_stream_stats {
	unsigned capacity;		/* the high-water mark */
	unsigned low_water;		/* resume at or below this many queued */
	unsigned max_queued;		/* most chunks ever queued at once */
	uint32_t pauses;		/* times a push was refused (-EAGAIN)
					   while the producer was running */
	uint32_t resumes;		/* times ops->resume was called */
	uint64_t pushed;		/* chunks accepted */
};

/*
 * ferry_stream_stats - fill *@st with @s's counters (all zero for a NULL
 * @s; a NULL @st is a no-op). Thread: any, while the stream is valid (the
 * consumer's side: until ferry_stream_close). The counters are exact once
 * ferry_stream_next has returned the end of the stream, or from the loop
 * thread; read from elsewhere while the producer runs, each is a recent
 * value on its own.
 */
void ferry_stream_stats(const struct ferry_stream *s,
			struct ferry_stream_stats *st);

/*
 * ferry_stream_next - release the previous chunk and get the next one.
 * Returns 1 with *@c filled (valid until the next call), 0 at the end of
 * the stream, a negative error from the producer (ferry_stream_why says
 * why), FERRY_ETIMEDOUT (try again), FERRY_EDEADLOCK, or FERRY_EINVAL
 * for a NULL @s or @c. Thread: the one consumer.
 */
int ferry_stream_next(struct ferry_stream *s, struct ferry_chunk *c,
		      int64_t timeout_ns);

/*
 * ferry_stream_why - a sentence about the error that ends @s: the
 * producer's (ferry_stream_end_why), or "the runner was closed"; "" while
 * the stream has not ended with an error, and for NULL. Read it after
 * ferry_stream_next returned an error; valid until ferry_stream_close.
 * Thread: any.
 */
const char *ferry_stream_why(const struct ferry_stream *s);

/*
 * ferry_stream_close - release everything and stop the producer if it is
 * still going. The consumer must not use @s afterwards. NULL is a no-op.
 * Thread: the one consumer.
 */
void ferry_stream_close(struct ferry_stream *s);

/* ------------------------------------------------------------------ */
/* Lines on top of a stream                                              */

/*
 * struct ferry_lines - split a stream into lines. Lines inside one chunk
 * are returned in place (zero-copy); lines split across chunks are joined
 * in a buffer that grows up to max_line bytes. Consumer thread only.
 */
struct ferry_lines {
	/* private: */
	struct ferry_stream *ferry__s;
	struct ferry_chunk ferry__cur;
	size_t ferry__off;
	char *ferry__buf;
	size_t ferry__len, ferry__cap, ferry__max;
	int ferry__end;	/* 1 = EOF seen, < 0 = error seen */
	bool ferry__joined; /* the last line returned was the join buffer */
};

/* ferry_lines_init - iterate @s; @max_line 0 = 64 KiB. Does not allocate. */
void ferry_lines_init(struct ferry_lines *l, struct ferry_stream *s,
		      size_t max_line);

/*
 * ferry_lines_next - the next line, without its "\n" or "\r\n".
 * Returns 1 with *@line / *@len valid until the next call (a final line
 * without a newline is returned too), 0 at the end, FERRY_ETOOLARGE for a
 * line longer than max_line (the iterator is then finished), a stream
 * error (ferry_stream_why says why; a NULL stream gives FERRY_EINVAL), or
 * FERRY_EINVAL for a NULL argument.
 */
int ferry_lines_next(struct ferry_lines *l, const char **line, size_t *len,
		     int64_t timeout_ns);

/* ferry_lines_free - free the join buffer (not the stream). NULL: no-op. */
void ferry_lines_free(struct ferry_lines *l);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_BRIDGE_H */
