/*
 * test_session_retry.c - the retry policy and resolve overrides through
 * the blocking API: a policy per request or per session, the attempts
 * counted in the response, whole-body and streamed; against
 * tests/servers/flaky.py (fails its first N requests, then answers
 * "ok K").
 */
#include <criterion/criterion.h>

#include "util.h"

TestSuite(session_retry, .fini = st_down, .timeout = 60);

/* flaky.py with @args (NULL-terminated) in st.bad, base in st.badbase. */
static void flaky(const char *const *args)
{
	int rc = fx_python_start(&st.bad, "flaky.py", args);

	if (rc == FX_SKIP)
		cr_skip_test("%s", st.bad.err);
	cr_assert_eq(rc, 0, "%s", st.bad.err);
	snprintf(st.badbase, sizeof(st.badbase), "http://127.0.0.1:%d",
		 st.bad.port);
}

Test(session_retry, per_request_whole_body)
{
	struct ferry_http_retry p = { .max_retries = 3, .backoff_ms = 1 };
	struct ferry_request rq = { .retry = &p };
	struct ferry_response *r;
	int rc;

	flaky((const char *[]){ "--fail", "2", NULL });
	st_session(NULL);
	rq.url = st_url(st.badbase, "/");
	rc = ferry_session_request(st.s, &rq, &r);
	cr_expect_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	cr_expect_str_eq(ferry_response_body(r, NULL), "ok 3\n");
	cr_expect_eq(ferry_response_attempts(r), 3);
	ferry_response_free(r);

	/* Without a policy: the first answer, one attempt. */
	rq.retry = NULL;
	rc = ferry_session_request(st.s, &rq, &r);
	cr_expect_eq(rc, 200);
	cr_expect_eq(ferry_response_attempts(r), 1);
	ferry_response_free(r);
}

Test(session_retry, per_session_streamed)
{
	struct ferry_http_client_opts o = {
		.retry = { .max_retries = 1, .backoff_ms = 1 },
	};
	struct ferry_request rq = { .stream = true };
	struct ferry_response *r;
	struct ferry_chunk c;
	int rc;

	flaky((const char *[]){ "--fail", "1", "--how", "reset", NULL });
	st_session(&o);
	rq.url = st_url(st.badbase, "/");
	rc = ferry_session_request(st.s, &rq, &r);
	cr_expect_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	cr_expect_eq(ferry_response_attempts(r), 2);
	cr_assert_eq(ferry_stream_next(ferry_response_stream(r), &c, -1), 1);
	cr_expect_eq(c.len, 5);
	cr_expect_eq(memcmp(c.data, "ok 2\n", 5), 0);
	ferry_response_free(r);
}

Test(session_retry, exhausted_and_null)
{
	struct ferry_http_retry p = { .max_retries = 1, .backoff_ms = 1 };
	struct ferry_request rq = { .retry = &p };
	struct ferry_response *r;
	int rc;

	flaky((const char *[]){ "--fail", "9", "--status", "502", NULL });
	st_session(NULL);
	rq.url = st_url(st.badbase, "/");
	rc = ferry_session_request(st.s, &rq, &r);
	cr_expect_eq(rc, 502);
	cr_expect_str_eq(ferry_response_body(r, NULL), "fail 2\n");
	cr_expect_eq(ferry_response_attempts(r), 2);
	ferry_response_free(r);
	cr_expect_eq(ferry_response_attempts(NULL), 0);
}

Test(session_retry, resolve_override)
{
	char e[64], url[96];
	const char *ov[1] = { e };
	struct ferry_http_client_opts o = { .resolve = ov, .nresolve = 1 };
	struct ferry_response *r;
	int rc;

	flaky((const char *[]){ "--fail", "0", NULL });
	snprintf(e, sizeof(e), "svc.test:%d:127.0.0.1", st.bad.port);
	st_session(&o);
	snprintf(url, sizeof(url), "http://svc.test:%d/", st.bad.port);
	rc = ferry_session_get(st.s, url, &r);
	cr_expect_eq(rc, 200, "%d %s", rc, ferry_response_detail(r));
	cr_expect_str_eq(ferry_response_body(r, NULL), "ok 1\n");
	ferry_response_free(r);
}
