/*
 * test_seccomp.c - a program that links ferry works unchanged where a
 * container's seccomp profile blocks io_uring (Docker 25+, containerd 2.0's
 * RuntimeDefault): a child process denies itself io_uring_setup,
 * io_uring_enter and io_uring_register (EPERM, as those profiles answer),
 * then makes real HTTP requests to a loopback nginx through the blocking
 * API, and checks every body and that its loop reports the epoll backend.
 */
#include "util.h"

#include <pthread.h>
#include <sys/wait.h>

#include "fixture.h"
#include "ferry/bridge.h"
#include "ferry/session.h"

enum {
	CHILD_OK = 0,
	CHILD_NO_FILTER = 10,	/* seccomp cannot be installed: skip */
	CHILD_FILTER_INERT,	/* io_uring_setup still works */
	CHILD_RUNNER,		/* runner or session set-up failed */
	CHILD_BACKEND,		/* not epoll, or no reason given */
	CHILD_REQUEST,		/* a request failed */
	CHILD_BODY,		/* a body differs from nginx's file */
};

struct want {
	const char *name;
	uint64_t size, fnv;
};

static struct want files[] = {
	{ .name = "small.txt" }, { .name = "64k.bin" }, { .name = "1m.bin" },
};
#define NFILES (sizeof(files) / sizeof(files[0]))

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

Test(seccomp, http_on_the_fallback_when_io_uring_is_blocked, .timeout = 60)
{
	struct fx_proc ngx = FX_PROC_INIT;
	char msg[1024] = "";
	int pfd[2], status, rc;
	ssize_t n;
	pid_t pid;

	rc = fx_nginx_start(&ngx);
	if (rc == FX_SKIP)
		cr_skip_test("%s", ngx.err);
	cr_assert_eq(rc, 0, "nginx: %s", ngx.err);
	for (size_t i = 0; i < NFILES; i++)
		cr_assert_eq(fx_manifest_get(&ngx, files[i].name, &files[i].size,
					     &files[i].fnv), 0, "%s", files[i].name);

	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		alarm(50);
		_exit(child_main(ngx.port, pfd[1]));
	}
	close(pfd[1]);
	n = read(pfd[0], msg, sizeof(msg) - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	fx_stop(&ngx);
	cr_assert(WIFEXITED(status), "child died (signal %d): %s",
		  WIFSIGNALED(status) ? WTERMSIG(status) : 0, msg);
	switch (WEXITSTATUS(status)) {
	case CHILD_OK:
		cr_log_info("fallback: %s", msg);
		break;
	case CHILD_NO_FILTER:
		cr_skip_test("cannot install a seccomp filter here");
		break;
	case CHILD_FILTER_INERT:
		cr_assert_fail("the seccomp filter did not block io_uring_setup");
		break;
	default:
		cr_assert_fail("child failed (%d): %s", WEXITSTATUS(status), msg);
	}
}
