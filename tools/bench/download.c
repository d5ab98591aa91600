/*
 * download.c - one big GET through the blocking API, for
 * tools/bench/download.sh.
 *
 *   ferry-bench-download stream URL [CAPACITY]
 *       stream mode (.stream = true, every other option the default, or
 *       stream_capacity = CAPACITY, 0 = the default): the body is read
 *       with ferry_stream_next and dropped chunk by chunk;
 *   ferry-bench-download whole URL
 *       whole-body mode with the defaults (ferry_session_get): the body
 *       is read into memory, then freed.
 * For https URLs, FERRY_BENCH_CA names the CA file (the client's ca_file).
 *
 * Prints one line: "bytes B chunks C wall W user U sys S capacity K pauses
 * P max_queued Q" (seconds; wall from the request to the last byte, CPU
 * this process's own rusage, set-up included; K, P, Q: the stream's
 * ferry_stream_stats, 0 for whole). Exits 1 on any error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ferry/session.h"

static void usage(void)
{
	fprintf(stderr, "usage: ferry-bench-download stream URL [CAPACITY]\n"
			"       ferry-bench-download whole URL\n");
	exit(2);
}

static struct ferry_stream_stats stream_st;

static int get_stream(struct ferry_session *s, const char *url,
		      unsigned capacity, uint64_t *bytes, uint64_t *chunks)
{
	struct ferry_request rq = {
		.url = url, .stream = true, .stream_capacity = capacity,
	};
	struct ferry_response *r;
	struct ferry_chunk c;
	int rc = ferry_session_request(s, &rq, &r);

	if (rc != 200) {
		fprintf(stderr, "GET %s: %d %s\n", url, rc, ferry_response_detail(r));
		ferry_response_free(r);
		return 1;
	}
	while ((rc = ferry_stream_next(ferry_response_stream(r), &c, -1)) == 1) {
		*bytes += c.len;
		++*chunks;
	}
	if (rc != 0)
		fprintf(stderr, "stream: %d %s\n", rc, ferry_response_detail(r));
	ferry_stream_stats(ferry_response_stream(r), &stream_st);
	ferry_response_free(r);
	return rc != 0;
}

static int get_whole(struct ferry_session *s, const char *url,
		     uint64_t *bytes, uint64_t *chunks)
{
	struct ferry_response *r;
	size_t len = 0;
	int rc = ferry_session_get(s, url, &r);

	if (rc != 200) {
		fprintf(stderr, "GET %s: %d %s\n", url, rc, ferry_response_detail(r));
		ferry_response_free(r);
		return 1;
	}
	ferry_response_body(r, &len);
	*bytes = len;
	*chunks = 1;
	ferry_response_free(r);
	return 0;
}

int main(int argc, char **argv)
{
	struct ferry_http_client_opts co = {
		.ca_file = getenv("FERRY_BENCH_CA"),
	};
	struct ferry_runner *runner;
	struct ferry_session *s;
	struct rusage ru;
	uint64_t bytes = 0, chunks = 0, t0;
	double wall;
	int bad;

	if (argc < 3 || argc > 4)
		usage();
	if (ferry_runner_create(&runner, NULL) < 0 ||
	    ferry_session_create(runner, &co, &s) < 0) {
		fprintf(stderr, "set-up failed\n");
		return 1;
	}
	t0 = ferry_time_now();
	if (strcmp(argv[1], "stream") == 0)
		bad = get_stream(s, argv[2], argc == 4 ? (unsigned)atoi(argv[3]) : 0,
				 &bytes, &chunks);
	else if (strcmp(argv[1], "whole") == 0 && argc == 3)
		bad = get_whole(s, argv[2], &bytes, &chunks);
	else
		usage();
	wall = (double)(ferry_time_now() - t0) / 1e9;
	ferry_session_destroy(s);
	ferry_runner_destroy(runner);
	getrusage(RUSAGE_SELF, &ru);
	printf("bytes %llu chunks %llu wall %.6f user %.6f sys %.6f "
	       "capacity %u pauses %u max_queued %u\n",
	       (unsigned long long)bytes, (unsigned long long)chunks, wall,
	       ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
	       stream_st.capacity, stream_st.pauses, stream_st.max_queued);
	return bad;
}
