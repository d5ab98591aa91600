/*
 * offload.c - worker threads for blocking calls that have no ring op.
 *
 * Jobs queue under a mutex (the workers block anyway); a finished job goes
 * back to the loop through ferry_loop_post, the same inbox and doorbell the
 * bridge uses, so the loop learns of it without polling.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

struct ferry__pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct ferry_offload *head;	/* queued, oldest first */
	struct ferry_offload *tail;
	bool stop;
	unsigned nthreads;
	pthread_t threads[];
};

static void ferry__offload_done(struct ferry_post *p)
{
	struct ferry_offload *job = ferry__container_of(p, struct ferry_offload,
						       ferry__post);

	job->done(job, job->ferry__status);
}

static struct ferry_offload *ferry__pool_pop(struct ferry__pool *pool)
{
	struct ferry_offload *job;

	pthread_mutex_lock(&pool->lock);
	while (!pool->head && !pool->stop)
		pthread_cond_wait(&pool->cond, &pool->lock);
	job = pool->head;
	if (job && !pool->stop) {
		pool->head = job->ferry__next;
		if (!pool->head)
			pool->tail = NULL;
	} else {
		job = NULL;
	}
	pthread_mutex_unlock(&pool->lock);
	return job;
}

static void *ferry__worker(void *arg)
{
	struct ferry__pool *pool = arg;
	struct ferry_offload *job;

	while ((job = ferry__pool_pop(pool)) != NULL) {
		job->work(job);
		job->ferry__status = 0;
		job->ferry__post.fn = ferry__offload_done;
		ferry_loop_post(job->ferry__loop, &job->ferry__post);
	}
	return NULL;
}

static int ferry__pool_start(struct ferry_loop *loop)
{
	unsigned n = loop->offload_threads;
	struct ferry__pool *pool = calloc(1, sizeof(*pool) + n * sizeof(pthread_t));
	int ret = 0;

	if (!pool)
		return -ENOMEM;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	for (; pool->nthreads < n; pool->nthreads++) {
		ret = pthread_create(&pool->threads[pool->nthreads], NULL,
				     ferry__worker, pool);
		if (ret != 0)
			break;
	}
	loop->pool = pool;
	/* A partial pool still works; none at all does not. */
	if (!pool->nthreads) {
		ferry__pool_stop(loop);
		return -ret;
	}
	return 0;
}

int ferry_offload_submit(struct ferry_loop *loop, struct ferry_offload *job)
{
	struct ferry__pool *pool;
	int ret;

	FERRY__ASSERT_LOOP(loop);
	if (loop->destroying)
		return -ESHUTDOWN;
	if (!loop->pool) {
		ret = ferry__pool_start(loop);
		if (ret < 0)
			return ret;
	}
	pool = loop->pool;
	job->ferry__loop = loop;
	job->ferry__next = NULL;
	job->ferry__status = FERRY_ECANCELED;
	pthread_mutex_lock(&pool->lock);
	if (pool->tail)
		pool->tail->ferry__next = job;
	else
		pool->head = job;
	pool->tail = job;
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	return 0;
}

/* Join the workers; jobs they never started complete as cancelled. */
void ferry__pool_stop(struct ferry_loop *loop)
{
	struct ferry__pool *pool = loop->pool;
	struct ferry_offload *job, *next;

	if (!pool)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stop = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	for (job = pool->head; job; job = next) {
		next = job->ferry__next;
		job->done(job, FERRY_ECANCELED);
	}
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->cond);
	free(pool);
	loop->pool = NULL;
}
