/*
 * http_threads.c - blocking HTTP from many threads through one loop.
 *
 * What a Python program does with an asyncio loop on a background thread,
 * run_coroutine_threadsafe(...).result() and an async iterator, in C:
 *
 *   1. one runner (the loop thread) and one session (client + pool) tied
 *      to it;
 *   2. several threads doing blocking GETs at once;
 *   3. a gather: many requests submitted, then waited for together;
 *   4. a streamed body iterated line by line, zero-copy.
 *
 * Usage: ferry-http-threads BASE_URL
 *   BASE_URL serves /small.txt and /lines (tools/example.sh starts an nginx
 *   on loopback that does).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/session.h"

#define NTHREADS 8
#define PER_THREAD 50
#define NGATHER 100

static const char *base;
static struct ferry_session *session;

static void url_of(char *buf, size_t len, const char *path)
{
	snprintf(buf, len, "%s%s", base, path);
}

/* 2. Each thread blocks in ferry_session_get; the loop runs them all. */
static void *worker(void *arg)
{
	char url[512];
	long ok = 0;

	url_of(url, sizeof(url), "/small.txt");
	for (int i = 0; i < PER_THREAD; i++) {
		struct ferry_response *r;
		int rc = ferry_session_get(session, url, &r);

		if (rc == 200)
			ok++;
		else
			fprintf(stderr, "GET %s: %s (%s)\n", url,
				rc < 0 ? ferry_strerror(rc) : "unexpected status",
				ferry_response_detail(r));
		ferry_response_free(r);
	}
	return (void *)ok;
}

/* 3. Submit many, then wait for all: asyncio.gather. */
static int gather(void)
{
	struct ferry_response *rs[NGATHER];
	struct ferry_task *ts[NGATHER];
	struct ferry_request rq = { 0 };
	char url[512];
	size_t bytes = 0;
	int ok = 0;

	url_of(url, sizeof(url), "/small.txt");
	rq.url = url;
	for (int i = 0; i < NGATHER; i++) {
		ferry_session_submit(session, &rq, &rs[i]);
		ts[i] = ferry_response_task(rs[i]);
	}
	if (ferry_task_wait_all(ts, NGATHER, 10ll * 1000 * 1000 * 1000) < 0)
		fprintf(stderr, "gather timed out\n");
	for (int i = 0; i < NGATHER; i++) {
		size_t n;

		if (ferry_response_wait(rs[i], 0) == 200) {
			ferry_response_body(rs[i], &n);
			bytes += n;
			ok++;
		}
		ferry_response_free(rs[i]);
	}
	printf("gather: %d/%d responses, %zu body bytes\n", ok, NGATHER, bytes);
	return ok == NGATHER ? 0 : -1;
}

/* 4. Stream a body and iterate its lines as they arrive. */
static int stream_lines(void)
{
	struct ferry_request rq = { .stream = true };
	struct ferry_response *r;
	struct ferry_lines lines;
	const char *line;
	size_t len;
	char url[512];
	int rc, n = 0;

	url_of(url, sizeof(url), "/lines");
	rq.url = url;
	rc = ferry_session_request(session, &rq, &r);
	if (rc != 200) {
		fprintf(stderr, "GET %s: %d %s\n", url, rc, ferry_response_detail(r));
		ferry_response_free(r);
		return -1;
	}
	ferry_lines_init(&lines, ferry_response_stream(r), 0);
	while ((rc = ferry_lines_next(&lines, &line, &len, -1)) == 1) {
		if (n < 3)
			printf("  line %d: %.*s\n", n, (int)len, line);
		n++;
	}
	printf("stream: %d lines (%s)\n", n, rc == 0 ? "clean end" : ferry_strerror(rc));
	ferry_lines_free(&lines);
	ferry_response_free(r);	/* closes the stream */
	return rc == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct ferry_runner *runner;
	pthread_t th[NTHREADS];
	long total = 0;
	int rc, failed = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s BASE_URL (e.g. http://127.0.0.1:8080)\n",
			argv[0]);
		return 2;
	}
	base = argv[1];

	/* 1. A runner owns the loop thread; the session is tied to it. */
	if (ferry_runner_create(&runner, NULL) < 0)
		return 1;
	rc = ferry_session_create(runner, NULL, &session);
	if (rc < 0) {
		fprintf(stderr, "session: %s (%s)\n", ferry_strerror(rc),
			ferry_runner_why(runner));
		ferry_runner_destroy(runner);
		return 1;
	}

	for (long i = 0; i < NTHREADS; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (int i = 0; i < NTHREADS; i++) {
		void *ok;

		pthread_join(th[i], &ok);
		total += (long)ok;
	}
	printf("threads: %ld/%d blocking GETs from %d threads returned 200\n",
	       total, NTHREADS * PER_THREAD, NTHREADS);
	failed |= total != NTHREADS * PER_THREAD;
	failed |= gather() < 0;
	failed |= stream_lines() < 0;

	ferry_session_destroy(session);
	ferry_runner_destroy(runner);	/* joins the loop thread */
	printf(failed ? "FAILED\n" : "OK\n");
	return failed;
}
