// The README's examples ("The bridge in one screen" and the session
// snippet), unchanged, in a C++ program linked with pkg-config --static.
// Run by cxx_install.sh; exits 0 when the task computed 2 + 3 and a bad
// URL came back as an error with a detail sentence.
#include <cstdio>
#include <cstring>

#include "ferry/session.h"

const char *cxx_headers_strerror(int code);

// ---- README: the bridge in one screen ----
struct add { struct ferry_task t; long a, b, sum; };

static void add_start(struct ferry_task *t)     /* runs on the loop thread */
{
	struct add *x = (struct add *)t;
	x->sum = x->a + x->b;
	ferry_task_complete(t, 0);  /* or later, from an op's completion */
}

static int bridge_example(void)
{
	struct ferry_runner *r;
	ferry_runner_create(&r, NULL);              /* thread starts on first use */

	struct add x = { .t = { .start = add_start }, .a = 2, .b = 3 };
	int rc = ferry_call(r, &x.t);               /* from any thread: x.sum == 5 */

	ferry_runner_destroy(r);   /* cancels what is in flight, joins the thread */
	if (rc != 0 || x.sum != 5) {
		std::fprintf(stderr, "bridge example: rc %d, sum %ld\n", rc, x.sum);
		return 1;
	}
	return 0;
}

// ---- README: HTTP from many threads (a URL refused before any I/O) ----
static int session_example(void)
{
	struct ferry_runner *runner;
	struct ferry_session *session;
	ferry_runner_create(&runner, NULL);
	ferry_session_create(runner, NULL, &session);   /* NULL: default limits */

	struct ferry_response *r;
	int rc = ferry_session_get(session, "http://127.0.0.1:65536/small.txt", &r);
	if (rc == 200) {
		size_t n;
		const char *body = ferry_response_body(r, &n);
		const char *type = ferry_response_header(r, "content-type", NULL);
		(void)body, (void)type;
	}
	int ok = rc < 0 && std::strlen(ferry_response_detail(r)) > 0;
	if (!ok)
		std::fprintf(stderr, "session example: rc %d (%s)\n", rc,
			     cxx_headers_strerror(rc));
	ferry_response_free(r);            /* always, also after an error */

	ferry_session_destroy(session);
	ferry_runner_destroy(runner);
	return ok ? 0 : 1;
}

int main()
{
	return bridge_example() | session_example();
}
