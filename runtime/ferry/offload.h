/*
 * ferry/offload.h - run blocking calls that have no ring op (getaddrinfo)
 * on a small pool of worker threads, with the result handed back to the
 * loop thread through the loop's inbox.
 *
 * The pool belongs to the loop: its threads start on first use (the loop
 * option offload_threads, default 2) and are joined by ferry_loop_destroy().
 */
#ifndef FERRY_OFFLOAD_H
#define FERRY_OFFLOAD_H

#include "ferry/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ferry_offload {
	/* Runs on a worker thread. Must not touch loop-thread state. */
	void (*work)(struct ferry_offload *job);
	/* Runs on the loop thread after work() (status 0), or without work()
	 * having run when the loop is destroyed first (status
	 * FERRY_ECANCELED). May free the job. */
	void (*done)(struct ferry_offload *job, int status);
	/* private: */
	struct ferry_post ferry__post;
	struct ferry_offload *ferry__next;
	struct ferry_loop *ferry__loop;
	int ferry__status;
};

/*
 * ferry_offload_submit - queue @job. Loop thread only. The caller owns the
 * job's memory until done() runs. Returns 0, -ESHUTDOWN while the loop is
 * being destroyed, or a negated errno if a worker thread could not start.
 */
int ferry_offload_submit(struct ferry_loop *loop, struct ferry_offload *job);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_OFFLOAD_H */
