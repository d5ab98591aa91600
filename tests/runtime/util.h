/*
 * tests/runtime/util.h - small helpers shared by the runtime test programs.
 *
 * Everything here talks to real kernel objects: loopback sockets, unix
 * socket pairs, files in a fresh temporary directory. Helpers assert on
 * failure (criterion), so a test reads as the sequence of things it checks.
 */
#ifndef FERRY_TEST_RUNTIME_UTIL_H
#define FERRY_TEST_RUNTIME_UTIL_H

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/loop.h"

#define RT_MS 1000000ull	/* nanoseconds per millisecond */

#if defined(__x86_64__)
#define RT_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define RT_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define RT_AUDIT_ARCH AUDIT_ARCH_I386
#else
#define RT_AUDIT_ARCH 0
#endif

/*
 * rt_seccomp_deny - make the @n syscalls @nr fail with @err for this
 * process and its children, as a container's seccomp profile does
 * (Docker's default answers EPERM). No new privileges first, so no root
 * is needed. Returns 0 or a negated errno (no seccomp here: skip).
 */
static inline int rt_seccomp_deny(const long *nr, size_t n, int err)
{
	struct sock_filter f[4 + 2 * 8 + 1];
	struct sock_fprog prog = { .filter = f };
	unsigned short k = 0;

	if (n > 8)
		return -EINVAL;
	/* Another architecture's calls pass: their numbers differ. */
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			offsetof(struct seccomp_data, arch));
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
			RT_AUDIT_ARCH, 1, 0);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			offsetof(struct seccomp_data, nr));
	for (size_t i = 0; i < n; i++) {
		f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
				(unsigned)nr[i], 0, 1);
		f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
				SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA));
	}
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog.len = k;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
		return -errno;
	return 0;
}

static inline pid_t rt_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/*
 * rt_loop_new - create a loop or skip the test when io_uring is unavailable
 * on this machine (the unavail suite covers that case on purpose).
 */
static inline struct ferry_loop *rt_loop_new(const struct ferry_loop_opts *o)
{
	struct ferry_loop *loop = NULL;
	char why[256] = "";
	int rc = ferry_loop_create(&loop, o, why, sizeof(why));

	if (rc == FERRY_EUNAVAIL)
		cr_skip_test("io_uring unavailable: %s", why);
	cr_assert_eq(rc, 0, "ferry_loop_create: %s (%s) [%s]",
		     ferry_strerrorname(rc), ferry_strerror(rc), why);
	cr_assert_not_null(loop);
	return loop;
}

/*
 * rt_skip_on_epoll - skip a test of something only io_uring has (io-wq
 * workers, the SQ ring's size) when @loop runs on the epoll backend (the
 * *-epoll suites, FERRY_IO_URING=off). @why names what is missing.
 */
#define rt_skip_on_epoll(loop, why)					\
	do {								\
		if (strcmp(ferry_loop_backend(loop), "epoll") == 0) {	\
			ferry_loop_destroy(loop);			\
			cr_skip_test("epoll backend: %s", (why));	\
		}							\
	} while (0)

/* One turn, asserting that the turn itself did not fail. */
static inline int rt_turn(struct ferry_loop *loop, int64_t timeout_ns)
{
	int n = ferry_loop_run_once(loop, timeout_ns);

	cr_assert_geq(n, 0, "ferry_loop_run_once: %s", ferry_strerrorname(n));
	return n;
}

/*
 * RT_RUN_UNTIL - run loop turns (10 ms bound each) until @cond holds, for
 * at most @ms milliseconds; fails the test naming the condition otherwise.
 */
#define RT_RUN_UNTIL(loop, cond, ms)						\
	do {									\
		uint64_t rt__end = ferry_time_now() + (uint64_t)(ms) * RT_MS;	\
		while (!(cond) && ferry_time_now() < rt__end)			\
			rt_turn((loop), 10 * (int64_t)RT_MS);			\
		cr_assert((cond), "timed out after %d ms waiting for: %s",	\
			  (int)(ms), #cond);					\
	} while (0)

/* RT_RUN_UNTIL with a state description appended to the failure. */
#define RT_RUN_UNTIL_MSG(loop, cond, ms, fmt, ...)				\
	do {									\
		uint64_t rt__end = ferry_time_now() + (uint64_t)(ms) * RT_MS;	\
		while (!(cond) && ferry_time_now() < rt__end)			\
			rt_turn((loop), 10 * (int64_t)RT_MS);			\
		cr_assert((cond), "timed out after %d ms waiting for: %s; "	\
			  fmt, (int)(ms), #cond, __VA_ARGS__);			\
	} while (0)

/* Run turns for @ms milliseconds whatever happens (to prove a non-event). */
static inline void rt_run_for(struct ferry_loop *loop, unsigned ms)
{
	uint64_t end = ferry_time_now() + (uint64_t)ms * RT_MS;
	uint64_t now;

	while ((now = ferry_time_now()) < end)
		rt_turn(loop, (int64_t)(end - now));
}

/* ------------------------------------------------------------------ */
/* A recording op: counts completions and keeps the last one.          */

struct rt_op {
	struct ferry_op op;
	int ncalls;		/* every completion */
	int nfinal;		/* completions without FERRY_CQE_MORE */
	int res;		/* last res */
	unsigned flags;		/* last flags */
	int bad_thread;		/* completions seen off the loop thread */
	pid_t loop_tid;
};

static inline void rt_op_fn(struct ferry_op *op, int res, unsigned flags)
{
	struct rt_op *r = (struct rt_op *)((char *)op - offsetof(struct rt_op, op));

	r->ncalls++;
	if (!(flags & FERRY_CQE_MORE))
		r->nfinal++;
	r->res = res;
	r->flags = flags;
	if (r->loop_tid && rt_gettid() != r->loop_tid)
		r->bad_thread++;
}

static inline void rt_op_init(struct rt_op *r)
{
	memset(r, 0, sizeof(*r));
	r->op.fn = rt_op_fn;
	r->loop_tid = rt_gettid();
}

/* ------------------------------------------------------------------ */
/* Sockets.                                                             */

static inline void rt_socketpair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0,
		     "socketpair: %s", strerror(errno));
}

/* A TCP listener on 127.0.0.1, port chosen by the kernel, into @addr. */
static inline int rt_listen_tcp(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0,
		     "bind: %s", strerror(errno));
	cr_assert_eq(listen(fd, 512), 0, "listen: %s", strerror(errno));
	cr_assert_eq(getsockname(fd, (struct sockaddr *)addr, &len), 0);
	return fd;
}

/* A blocking client connected to @addr (completes via the backlog). */
static inline int rt_connect_tcp(const struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
	cr_assert_eq(connect(fd, (const struct sockaddr *)addr, sizeof(*addr)),
		     0, "connect: %s", strerror(errno));
	return fd;
}

/* A connected TCP pair over loopback: *a is the client, *b the server. */
static inline void rt_tcp_pair(int *a, int *b)
{
	struct sockaddr_in addr;
	int lfd = rt_listen_tcp(&addr);

	*a = rt_connect_tcp(&addr);
	*b = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(*b, 0, "accept: %s", strerror(errno));
	close(lfd);
}

/* Write all of @len bytes with blocking writes. */
static inline void rt_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		cr_assert_gt(n, 0, "write: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/* Read exactly @len bytes with blocking reads. */
static inline void rt_read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		cr_assert_gt(n, 0, "read: %s", n ? strerror(errno) : "EOF");
		p += n;
		len -= (size_t)n;
	}
}

static inline bool rt_fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* Wait until thread @tid is asleep in the kernel (state S). */
static inline void rt_wait_until_asleep(int tid)
{
	char path[64], buf[256];

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	for (int i = 0; i < 2000; i++) {
		FILE *f = fopen(path, "r");
		char *p = NULL;

		if (f) {
			p = fgets(buf, sizeof(buf), f);
			fclose(f);
		}
		p = p ? strrchr(buf, ')') : NULL;
		if (p && p[1] == ' ' && p[2] == 'S')
			return;
		usleep(1000);
	}
	cr_assert_fail("thread %d never went to sleep", tid);
}

/* Raise the soft descriptor limit to @want (or the hard limit). */
static inline void rt_want_fds(rlim_t want)
{
	struct rlimit rl;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	setrlimit(RLIMIT_NOFILE, &rl);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < want)
		cr_skip_test("RLIMIT_NOFILE %lu < %lu", (unsigned long)rl.rlim_cur,
			     (unsigned long)want);
}

/* Entries of a /proc/self directory (fd, task): for leak checks. */
static inline int rt_count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d, "opendir %s: %s", path, strerror(errno));
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* ------------------------------------------------------------------ */
/* Temporary directories.                                               */

static inline void rt_tmpdir(char *path, size_t len)
{
	const char *base = getenv("TMPDIR");

	snprintf(path, len, "%s/ferry-rt-XXXXXX", base && *base ? base : "/tmp");
	cr_assert_not_null(mkdtemp(path), "mkdtemp: %s", strerror(errno));
}

static inline int rt__rm(const char *p, const struct stat *st, int type,
			 struct FTW *ftw)
{
	(void)st; (void)type; (void)ftw;
	return remove(p);
}

static inline void rt_rmtree(const char *path)
{
	cr_assert_eq(nftw(path, rt__rm, 16, FTW_DEPTH | FTW_PHYS), 0,
		     "removing %s: %s", path, strerror(errno));
}

/* A deterministic xorshift generator: reproducible shuffles and payloads. */
static inline uint32_t rt_rand(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/* Byte @i of the canonical test stream: position-dependent, so a dropped,
 * duplicated or reordered chunk is caught by comparison. */
static inline unsigned char rt_pattern(size_t i)
{
	return (unsigned char)((i * 131u + (i >> 8) * 7u + 17u) & 0xff);
}

#endif /* FERRY_TEST_RUNTIME_UTIL_H */
