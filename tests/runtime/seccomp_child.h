/*
 * seccomp_child.h - what test_seccomp.c and the program it runs,
 * seccomp_child.c, agree on: the files fetched and the exit statuses.
 */
#ifndef FERRY_TEST_SECCOMP_CHILD_H
#define FERRY_TEST_SECCOMP_CHILD_H

#define SECCOMP_NFILES 3

enum {
	CHILD_OK = 0,
	CHILD_NO_FILTER = 10,	/* seccomp cannot be installed: skip */
	CHILD_FILTER_INERT,	/* io_uring_setup still works */
	CHILD_RUNNER,		/* runner or session set-up failed */
	CHILD_BACKEND,		/* not epoll, or no reason given */
	CHILD_REQUEST,		/* a request failed */
	CHILD_BODY,		/* a body differs from nginx's file */
	CHILD_USAGE,		/* bad command line */
};

#endif
