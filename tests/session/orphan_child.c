/*
 * orphan_child.c - the child of session_hard's death test:
 *
 *     session_orphan_child URL
 *
 * streams URL, never frees the response, and destroys the runner. A
 * program of its own (started by fork + exec from a single thread) because
 * a fork of the multi-threaded test process cannot start threads under
 * ThreadSanitizer. Exit status: 5 if ferry_runner_destroy returned (release
 * builds), 3/4 if the setup failed; debug builds die of SIGABRT first.
 */
#include <stdio.h>
#include <unistd.h>

#include "ferry/session.h"

int main(int argc, char **argv)
{
	struct ferry_request rq = { .stream = true };
	struct ferry_runner *r;
	struct ferry_session *s;
	struct ferry_response *resp;

	if (argc != 2)
		return 2;
	rq.url = argv[1];
	if (ferry_runner_create(&r, NULL) || ferry_session_create(r, NULL, &s))
		_exit(3);
	if (ferry_session_request(s, &rq, &resp) != 200) {
		fprintf(stderr, "orphan_child: %s\n", ferry_response_detail(resp));
		_exit(4);
	}
	ferry_session_destroy(s);
	ferry_runner_destroy(r);	/* resp still holds its stream */
	_exit(5);
}
