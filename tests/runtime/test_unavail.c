/*
 * test_unavail.c - io_uring unavailable: a seccomp filter in a forked child
 * makes io_uring_setup fail with ENOSYS or EPERM, and FERRY_IO_URING=off
 * forces the same; ferry_loop_create must say FERRY_EUNAVAIL and name why.
 */
#include "util.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#if defined(__x86_64__)
#define RT_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define RT_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define RT_AUDIT_ARCH AUDIT_ARCH_I386
#else
#define RT_AUDIT_ARCH 0
#endif

/* Make syscall @nr fail with @err for this process and its children. */
static int deny_syscall(long nr, int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, RT_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K,
			 SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = (unsigned short)(sizeof(f) / sizeof(f[0])),
		.filter = f,
	};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
		return -errno;
	return 0;
}

enum {
	CHILD_OK = 0,
	CHILD_NO_FILTER = 10,	/* seccomp could not be installed: skip */
	CHILD_FILTER_INERT,	/* the filter did not bite */
	CHILD_WRONG_RC,
	CHILD_WHY_SILENT,
	CHILD_WHY_NULL_RC,
	CHILD_WHY_OVERFLOW,
};

/*
 * In a child: deny io_uring_setup with @err, then check create. The why
 * string goes back through @wfd so the parent can show it.
 */
static int child_check(int err, const char *name, int wfd)
{
	struct ferry_loop *loop = NULL;
	char why[256];
	char small[9];
	int rc;

	if (deny_syscall(SYS_io_uring_setup, err) != 0)
		return CHILD_NO_FILTER;
	if (syscall(SYS_io_uring_setup, 4, NULL) != -1 || errno != err)
		return CHILD_FILTER_INERT;

	memset(why, 0, sizeof(why));
	rc = ferry_loop_create(&loop, NULL, why, sizeof(why));
	if (write(wfd, why, strlen(why)) < 0)
		return CHILD_WRONG_RC;
	if (rc != FERRY_EUNAVAIL) {
		if (rc == 0)
			ferry_loop_destroy(loop);
		return CHILD_WRONG_RC;
	}
	if (!strstr(why, name) && !strstr(why, "seccomp"))
		return CHILD_WHY_SILENT;

	/* No why buffer: same answer, no crash. */
	if (ferry_loop_create(&loop, NULL, NULL, 0) != FERRY_EUNAVAIL)
		return CHILD_WHY_NULL_RC;

	/* A short buffer is truncated and terminated, never overrun. */
	memset(small, 'Z', sizeof(small));
	if (ferry_loop_create(&loop, NULL, small, 8) != FERRY_EUNAVAIL)
		return CHILD_WRONG_RC;
	if (small[8] != 'Z' || memchr(small, 0, 8) == NULL)
		return CHILD_WHY_OVERFLOW;
	return CHILD_OK;
}

static void run_seccomp_case(int err, const char *name)
{
	char why[512] = "";
	int pfd[2], status;
	ssize_t n;
	pid_t pid;

	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		alarm(10);
		_exit(child_check(err, name, pfd[1]));
	}
	close(pfd[1]);
	n = read(pfd[0], why, sizeof(why) - 1);
	why[n > 0 ? n : 0] = 0;
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "child died (signal %d)",
		  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	switch (WEXITSTATUS(status)) {
	case CHILD_OK:
		break;
	case CHILD_NO_FILTER:
		cr_skip_test("cannot install a seccomp filter here");
		break;
	case CHILD_FILTER_INERT:
		cr_assert_fail("the seccomp filter did not make io_uring_setup "
			       "fail with %s", name);
		break;
	case CHILD_WRONG_RC:
		cr_assert_fail("io_uring_setup -> %s: ferry_loop_create did not "
			       "return FERRY_EUNAVAIL (why: \"%s\")", name, why);
		break;
	case CHILD_WHY_SILENT:
		cr_assert_fail("why does not name %s or seccomp: \"%s\"", name, why);
		break;
	case CHILD_WHY_NULL_RC:
		cr_assert_fail("create with why == NULL gave another result");
		break;
	case CHILD_WHY_OVERFLOW:
		cr_assert_fail("why buffer of 8 bytes overrun or not terminated");
		break;
	default:
		cr_assert_fail("child exit status %d", WEXITSTATUS(status));
	}
}

Test(unavail, seccomp_enosys, .timeout = 20)
{
	run_seccomp_case(ENOSYS, "ENOSYS");
}

Test(unavail, seccomp_eperm, .timeout = 20)
{
	run_seccomp_case(EPERM, "EPERM");
}

Test(unavail, env_forces_off, .timeout = 10)
{
	struct ferry_loop *loop = NULL;
	char why[256] = "";
	int rc;

	setenv("FERRY_IO_URING", "off", 1);
	rc = ferry_loop_create(&loop, NULL, why, sizeof(why));
	unsetenv("FERRY_IO_URING");
	if (rc == 0)
		ferry_loop_destroy(loop);
	cr_assert_eq(rc, FERRY_EUNAVAIL, "got %s", ferry_strerrorname(rc));
	cr_assert(strstr(why, "FERRY_IO_URING") != NULL,
		  "why does not name FERRY_IO_URING: \"%s\"", why);
	cr_assert_str_eq(ferry_strerrorname(rc), "FERRY_EUNAVAIL");

	/* Without the variable the same process gets a loop. */
	loop = rt_loop_new(NULL);
	ferry_loop_destroy(loop);
}

Test(unavail, io_uring_disabled_sysctl_is_reported, .timeout = 10)
{
	/* Only meaningful where an admin set kernel.io_uring_disabled = 2;
	 * elsewhere this checks that a normal create succeeds. */
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
	struct ferry_loop *loop = NULL;
	char why[256] = "";
	int v = 0, rc;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 0;
		fclose(f);
	}
	rc = ferry_loop_create(&loop, NULL, why, sizeof(why));
	if (v == 2) {
		cr_assert_eq(rc, FERRY_EUNAVAIL);
		cr_assert(strstr(why, "io_uring_disabled") || strstr(why, "EPERM"),
			  "why: %s", why);
	} else if (v == 0) {
		if (rc == FERRY_EUNAVAIL)
			cr_skip_test("io_uring unavailable here: %s", why);
		cr_assert_eq(rc, 0, "create: %s (%s)", ferry_strerrorname(rc), why);
		ferry_loop_destroy(loop);
	} else if (rc == 0) {
		ferry_loop_destroy(loop);
	}
}
