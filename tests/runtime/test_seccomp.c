/*
 * test_seccomp.c - a program that links ferry works unchanged where a
 * container's seccomp profile blocks io_uring (Docker 25+, containerd 2.0's
 * RuntimeDefault): seccomp_child (seccomp_child.c) denies itself
 * io_uring_setup, io_uring_enter and io_uring_register (EPERM, as those
 * profiles answer), then makes real HTTP requests to the loopback nginx
 * started here through the blocking API, checks every body and that its
 * loop reports the epoll backend and why.
 */
#include "util.h"

#include <inttypes.h>
#include <sys/wait.h>

#include "fixture.h"
#include "seccomp_child.h"

static const char *const names[SECCOMP_NFILES] = {
	"small.txt", "64k.bin", "1m.bin",
};

Test(seccomp, http_on_the_fallback_when_io_uring_is_blocked, .timeout = 60)
{
	struct fx_proc ngx = FX_PROC_INIT;
	char args[2 + 3 * SECCOMP_NFILES][64], prog[4096], msg[1024] = "";
	char *argv[2 + 3 * SECCOMP_NFILES + 1];
	const char *root = getenv("FERRY_BUILD_ROOT");
	int pfd[2], status, rc;
	ssize_t n;
	pid_t pid;

	cr_assert_not_null(root, "FERRY_BUILD_ROOT is not set");
	snprintf(prog, sizeof(prog), "%s/tests/runtime/seccomp_child", root);
	rc = fx_nginx_start(&ngx);
	if (rc == FX_SKIP)
		cr_skip_test("%s", ngx.err);
	cr_assert_eq(rc, 0, "nginx: %s", ngx.err);
	snprintf(args[0], sizeof(args[0]), "seccomp_child");
	snprintf(args[1], sizeof(args[1]), "%d", ngx.port);
	for (int i = 0; i < SECCOMP_NFILES; i++) {
		uint64_t size, fnv;

		cr_assert_eq(fx_manifest_get(&ngx, names[i], &size, &fnv), 0,
			     "%s", names[i]);
		snprintf(args[2 + 3 * i], sizeof(args[0]), "%s", names[i]);
		snprintf(args[3 + 3 * i], sizeof(args[0]), "%" PRIu64, size);
		snprintf(args[4 + 3 * i], sizeof(args[0]), "%" PRIu64, fnv);
	}
	for (int i = 0; i < 2 + 3 * SECCOMP_NFILES; i++)
		argv[i] = args[i];
	argv[2 + 3 * SECCOMP_NFILES] = NULL;

	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(pfd[1], 1);
		alarm(50);
		execv(prog, argv);
		_exit(127);
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
	case 127:
		cr_assert_fail("cannot run %s", prog);
		break;
	default:
		cr_assert_fail("child failed (%d): %s", WEXITSTATUS(status), msg);
	}
}
