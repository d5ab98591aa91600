/*
 * seccomp_child.c - the program test_seccomp.c runs: it blocks io_uring
 * for itself the way a container's seccomp profile does (io_uring_setup,
 * io_uring_enter and io_uring_register fail with EPERM, Docker's answer),
 * before it starts any thread, then uses ferry as any program would: a
 * runner, a session, GETs to nginx through the blocking API, every body
 * checked. A program of its own, exec'd rather than forked from the test,
 * because the test process has threads (ThreadSanitizer refuses threads
 * in a child forked from a threaded process).
 *
 * Usage: seccomp_child PORT NAME SIZE FNV NAME SIZE FNV NAME SIZE FNV
 * Exit status: enum below; a sentence on stdout says what happened.
 */
#include "util.h"

#include <inttypes.h>
#include <pthread.h>

#include "fixture.h"
#include "seccomp_child.h"
#include "ferry/bridge.h"
#include "ferry/session.h"

struct want {
	const char *name;
	uint64_t size, fnv;
};

/* The files, their sizes and checksums: from the command line. */
static struct want files[SECCOMP_NFILES];
#define NFILES SECCOMP_NFILES

/* Runs on the loop thread: which backend, and why. */
struct ask {
	struct ferry_task t;
	char backend[16];
	char describe[256];
};

static void ask_start(struct ferry_task *t)
{
	struct ask *a = (struct ask *)t;
	struct ferry_loop *loop = ferry_runner_loop(ferry_task_runner(t));

	snprintf(a->backend, sizeof(a->backend), "%s", ferry_loop_backend(loop));
	snprintf(a->describe, sizeof(a->describe), "%s",
		 ferry_loop_describe(loop));
	ferry_task_complete(t, 0);
}

static int say(int wfd, int code, const char *fmt, const char *arg)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg), fmt, arg);

	if (n > 0 && write(wfd, msg, (size_t)n) < 0)
		return code;
	return code;
}

/* One GET; 0 when the body is nginx's file, byte for byte. */
static int get_one(struct ferry_session *s, int port, const struct want *w,
		   int wfd)
{
	struct ferry_response *r = NULL;
	const char *body;
	size_t n;
	char url[128];
	int rc;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", port, w->name);
	rc = ferry_session_get(s, url, &r);
	if (rc != 200) {
		say(wfd, 0, "GET %s: ", url);
		rc = say(wfd, CHILD_REQUEST, "%s", r ? ferry_response_detail(r)
							: ferry_strerror(rc));
		ferry_response_free(r);
		return rc;
	}
	body = ferry_response_body(r, &n);
	rc = n == w->size && fx_fnv1a64(FX_FNV1A64_INIT, body, n) == w->fnv
		     ? 0
		     : say(wfd, CHILD_BODY, "body of %s differs", w->name);
	ferry_response_free(r);
	return rc;
}

static int child_requests(struct ferry_runner *r, int port, int wfd)
{
	struct ferry_session *s = NULL;
	struct ferry_request rq = { 0 };
	struct ferry_response *rs[8] = { 0 };
	struct ferry_task *ts[8];
	char url[128];
	int rc = CHILD_OK;

	if (ferry_session_create(r, NULL, &s) != 0)
		return say(wfd, CHILD_RUNNER, "%s", "ferry_session_create failed");
	/* One after another on a kept-alive connection... */
	for (int round = 0; round < 3 && rc == CHILD_OK; round++)
		for (size_t i = 0; i < NFILES && rc == CHILD_OK; i++)
			rc = get_one(s, port, &files[i], wfd);
	/* ...and eight at once, on as many connections. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/64k.bin", port);
	rq.url = url;
	for (int i = 0; i < 8 && rc == CHILD_OK; i++) {
		if (ferry_session_submit(s, &rq, &rs[i]) != 0)
			rc = say(wfd, CHILD_REQUEST, "%s", "submit failed");
		else
			ts[i] = ferry_response_task(rs[i]);
	}
	if (rc == CHILD_OK &&
	    ferry_task_wait_all(ts, 8, 30ll * 1000 * 1000 * 1000) != 0)
		rc = say(wfd, CHILD_REQUEST, "%s", "parallel GETs did not finish");
	for (int i = 0; i < 8 && rs[i]; i++) {
		size_t n;
		const char *body;

		if (rc == CHILD_OK && ferry_response_status(rs[i]) != 200)
			rc = say(wfd, CHILD_REQUEST, "parallel GET: %s",
				 ferry_response_detail(rs[i]));
		body = ferry_response_body(rs[i], &n);
		if (rc == CHILD_OK &&
		    (n != files[1].size ||
		     fx_fnv1a64(FX_FNV1A64_INIT, body, n) != files[1].fnv))
			rc = say(wfd, CHILD_BODY, "%s", "a parallel body differs");
		ferry_response_free(rs[i]);
	}
	ferry_session_destroy(s);
	return rc;
}

/* In the child: block io_uring the way a container does, then use ferry. */
static int child_main(int port, int wfd)
{
	static const long deny[] = {
		SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
	};
	struct ferry_runner *r = NULL;
	struct ask a = { .t.start = ask_start };
	int rc;

	unsetenv("FERRY_IO_URING");	/* the filter must be the cause */
	if (rt_seccomp_deny(deny, 3, EPERM) != 0)
		return CHILD_NO_FILTER;
	if (syscall(SYS_io_uring_setup, 4, NULL) != -1 || errno != EPERM)
		return CHILD_FILTER_INERT;
	if (ferry_runner_create(&r, NULL) != 0 || ferry_runner_start(r) != 0) {
		rc = say(wfd, CHILD_RUNNER, "runner: %s",
			 r ? ferry_runner_why(r) : "create failed");
		ferry_runner_destroy(r);
		return rc;
	}
	if (ferry_call(r, &a.t) != 0 || strcmp(a.backend, "epoll") != 0 ||
	    !strstr(a.describe, "EPERM"))
		rc = say(wfd, CHILD_BACKEND, "backend %s", a.backend);
	else
		rc = child_requests(r, port, wfd);
	if (rc == CHILD_OK)
		say(wfd, 0, "%s", a.describe);
	ferry_runner_destroy(r);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 2 + 3 * (int)NFILES)
		return CHILD_USAGE;
	for (size_t i = 0; i < NFILES; i++) {
		files[i].name = argv[2 + 3 * i];
		files[i].size = strtoull(argv[3 + 3 * i], NULL, 10);
		files[i].fnv = strtoull(argv[4 + 3 * i], NULL, 10);
	}
	return child_main(atoi(argv[1]), 1);
}
