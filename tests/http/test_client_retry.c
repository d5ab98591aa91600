/*
 * test_client_retry.c - the opt-in retry policy against tests/servers/
 * flaky.py, which fails its first N requests (a status, a reset or a
 * close before any response byte) and answers the rest with "ok K"
 * (K: the request's number as the server counted it). Each test forces
 * its outcome by N and the policy; none depends on timing (backoffs are
 * 1 ms, a wait past the deadline is refused before it starts).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"
#include "test_client_util.h"

static struct fx_proc srv = FX_PROC_INIT;
static struct tc t;

static void down(void)
{
	if (t.loop)
		tc_teardown(&t);
	fx_stop(&srv);
}

TestSuite(client_retry, .fini = down, .timeout = 60);

/* flaky.py with these arguments (NULL-terminated). */
static void flaky(const char *const *args)
{
	int rc = fx_python_start(&srv, "flaky.py", args);

	if (rc == FX_SKIP)
		cr_skip_test("%s", srv.err);
	cr_assert_eq(rc, 0, "%s", srv.err);
}

/* A fast policy: @max retries, 1 ms backoff. */
static struct ferry_http_retry fast(unsigned max)
{
	return (struct ferry_http_retry){ .max_retries = max, .backoff_ms = 1,
					  .backoff_max_ms = 2 };
}

/* Run one request with @o to flaky's @path; r is filled. */
static void run(struct tc_req *r, const struct ferry_http_request_opts *o,
		const char *path)
{
	char url[128], why[256] = "";
	int rc;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", srv.port, path);
	tc_req_init(r, &t, 256);
	rc = tc_start(r, url, o, why, sizeof(why));
	cr_assert_eq(rc, 0, "start: %s (%s)", ferry_strerror(rc), why);
	cr_assert(tc_run(&t, 30000), "request hung");
	cr_assert(r->done);
}

Test(client_retry, status_then_ok)
{
	struct ferry_http_retry p = fast(3);
	struct ferry_http_request_opts o = { .retry = &p };
	struct ferry_http_client_stats st;
	struct tc_req r;

	flaky((const char *[]){ "--fail", "2", NULL });
	tc_setup(&t, NULL);
	run(&r, &o, "/");
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_str_eq(r.body, "ok 3\n");
	cr_expect_eq(r.attempts, 3);
	cr_expect_eq(r.heads, 1, "the 503s are not reported");
	ferry_http_client_stats(t.client, &st);
	cr_expect_eq(st.policy_retries, 2);
	tc_req_free(&r);
}

Test(client_retry, exhausted_returns_last_response)
{
	struct ferry_http_retry p = fast(2);
	struct ferry_http_request_opts o = { .retry = &p };
	struct tc_req r;

	flaky((const char *[]){ "--fail", "5", NULL });
	tc_setup(&t, NULL);
	run(&r, &o, "/");
	cr_expect_eq(r.result, 503, "%d %s", r.result, r.detail);
	cr_expect_str_eq(r.body, "fail 3\n");
	cr_expect_eq(r.attempts, 3);
	tc_req_free(&r);
}

Test(client_retry, off_by_default)
{
	struct tc_req r;

	flaky((const char *[]){ "--fail", "1", NULL });
	tc_setup(&t, NULL);
	run(&r, NULL, "/");
	cr_expect_eq(r.result, 503);
	cr_expect_eq(r.attempts, 1);
	tc_req_free(&r);
}

Test(client_retry, client_policy_applies)
{
	struct ferry_http_client_opts co = { .retry = fast(1) };
	struct tc_req r;

	flaky((const char *[]){ "--fail", "1", "--status", "429", NULL });
	tc_setup(&t, &co);
	run(&r, NULL, "/");
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.attempts, 2);
	tc_req_free(&r);
}

Test(client_retry, each_status)
{
	static const char *const codes[] = { "408", "429", "502", "503", "504" };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		struct ferry_http_retry p = fast(1);
		struct ferry_http_request_opts o = { .retry = &p };
		struct tc_req r;

		flaky((const char *[]){ "--fail", "1", "--status", codes[i], NULL });
		tc_setup(&t, NULL);
		run(&r, &o, "/");
		cr_expect_eq(r.result, 200, "%s: %d %s", codes[i], r.result,
			     r.detail);
		cr_expect_eq(r.attempts, 2, "%s", codes[i]);
		tc_req_free(&r);
		tc_teardown(&t);
		fx_stop(&srv);
	}
}

Test(client_retry, not_other_statuses_nor_unselected)
{
	struct ferry_http_retry p = fast(3);
	struct ferry_http_request_opts o = { .retry = &p };
	struct tc_req r;

	/* 500 is not in the set; 502 is, but not selected here. */
	flaky((const char *[]){ "--fail", "1", "--status", "500", NULL });
	tc_setup(&t, NULL);
	run(&r, &o, "/");
	cr_expect_eq(r.result, 500);
	cr_expect_eq(r.attempts, 1);
	tc_req_free(&r);
	tc_teardown(&t);
	fx_stop(&srv);

	p.on = FERRY_HTTP_RETRY_503;
	flaky((const char *[]){ "--fail", "1", "--status", "502", NULL });
	tc_setup(&t, NULL);
	run(&r, &o, "/");
	cr_expect_eq(r.result, 502);
	cr_expect_eq(r.attempts, 1);
	tc_req_free(&r);
}

Test(client_retry, reset_before_response)
{
	struct ferry_http_retry p = fast(2);
	struct ferry_http_request_opts o = { .retry = &p };
	struct tc_req r;

	flaky((const char *[]){ "--fail", "2", "--how", "reset", NULL });
	tc_setup(&t, NULL);
	run(&r, &o, "/");
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_str_eq(r.body, "ok 3\n");
	cr_expect_eq(r.attempts, 3);
	tc_req_free(&r);
}

Test(client_retry, empty_reply)
{
	struct ferry_http_retry p = fast(1);
	struct ferry_http_request_opts o = { .retry = &p };
	struct tc_req r;

	flaky((const char *[]){ "--fail", "1", "--how", "close", NULL });
	tc_setup(&t, NULL);
	run(&r, &o, "/");
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.attempts, 2);
	tc_req_free(&r);
}

Test(client_retry, reset_not_selected)
{
	struct ferry_http_retry p = fast(2);
	struct ferry_http_request_opts o = { .retry = &p };
	struct tc_req r;

	p.on = FERRY_HTTP_RETRY_CONNECT | FERRY_HTTP_RETRY_503;
	flaky((const char *[]){ "--fail", "1", "--how", "close", NULL });
	tc_setup(&t, NULL);
	run(&r, &o, "/");
	cr_expect_eq(r.result, FERRY_EEMPTY_REPLY, "%d %s", r.result, r.detail);
	cr_expect_eq(r.attempts, 1);
	tc_req_free(&r);
}

Test(client_retry, post_only_when_asked)
{
	struct ferry_http_retry p = fast(1);
	struct ferry_http_request_opts o = { .method = "POST", .retry = &p,
					     .body = "x", .body_len = 1 };
	struct tc_req r;

	flaky((const char *[]){ "--fail", "2", NULL });
	tc_setup(&t, NULL);
	run(&r, &o, "/");
	cr_expect_eq(r.result, 503, "POST is not idempotent");
	cr_expect_eq(r.attempts, 1);
	tc_req_free(&r);

	p.any_method = true;
	run(&r, &o, "/");
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_str_eq(r.body, "ok 3\n", "the body was sent again");
	cr_expect_eq(r.attempts, 2);
	tc_req_free(&r);
}

Test(client_retry, connect_refused)
{
	struct ferry_http_retry p = fast(2);
	struct ferry_http_request_opts o = { .retry = &p };
	struct tc_req r;

	/* A port nobody listens on: flaky's, once it is gone. */
	flaky((const char *[]){ NULL });
	fx_stop(&srv);
	tc_setup(&t, NULL);
	run(&r, &o, "/");
	cr_expect_eq(r.result, -ECONNREFUSED, "%d %s", r.result, r.detail);
	cr_expect_eq(r.attempts, 3);
	tc_req_free(&r);
}

Test(client_retry, retry_after_honoured_or_too_long)
{
	struct ferry_http_retry p = fast(1);
	struct ferry_http_request_opts o = { .retry = &p };
	struct tc_req r;

	/* "0": retry at once, whatever the backoff says. */
	p.backoff_ms = p.backoff_max_ms = 60000;
	flaky((const char *[]){ "--fail", "1", "--retry-after", "0", NULL });
	tc_setup(&t, NULL);
	run(&r, &o, "/");
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.attempts, 2);
	tc_req_free(&r);
	tc_teardown(&t);
	fx_stop(&srv);

	/* An hour: more than retry_after_max_ms, so that is the answer. */
	p.retry_after_max_ms = 1000;
	flaky((const char *[]){ "--fail", "1", "--retry-after", "3600", NULL });
	tc_setup(&t, NULL);
	run(&r, &o, "/");
	cr_expect_eq(r.result, 503);
	cr_expect_eq(r.attempts, 1);
	tc_req_free(&r);
	tc_teardown(&t);
	fx_stop(&srv);

	/* A date in the past: at once. */
	flaky((const char *[]){ "--fail", "1", "--retry-after",
				"Wed, 21 Oct 2015 07:28:00 GMT", NULL });
	tc_setup(&t, NULL);
	run(&r, &o, "/");
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.attempts, 2);
	tc_req_free(&r);
}

Test(client_retry, not_past_the_deadline)
{
	/* A backoff of a minute cannot end within a 20 s deadline: the
	 * first answer stands, at once. */
	struct ferry_http_retry p = { .max_retries = 3, .backoff_ms = 60000 };
	struct ferry_http_request_opts o = { .retry = &p, .timeout_ms = 20000 };
	struct tc_req r;

	flaky((const char *[]){ "--fail", "1", NULL });
	tc_setup(&t, NULL);
	run(&r, &o, "/");
	cr_expect_eq(r.result, 503, "%d %s", r.result, r.detail);
	cr_expect_eq(r.attempts, 1);
	tc_req_free(&r);
}

Test(client_retry, cancel_and_close_during_backoff)
{
	struct ferry_http_retry p = { .max_retries = 3, .backoff_ms = 60000 };
	struct ferry_http_request_opts o = { .retry = &p };
	struct ferry_http_client_stats st;
	char url[128], why[256] = "";
	struct tc_req r, r2;

	flaky((const char *[]){ "--fail", "10", NULL });
	tc_setup(&t, NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", srv.port);
	tc_req_init(&r, &t, 64);
	tc_req_init(&r2, &t, 64);
	cr_assert_eq(tc_start(&r, url, &o, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(tc_start(&r2, url, &o, why, sizeof(why)), 0, "%s", why);
	/* Both wait a minute once their first 503 is in. */
	for (int i = 0; i < 3000; i++) {
		ferry_http_client_stats(t.client, &st);
		if (st.policy_retries == 2)
			break;
		ferry_loop_run_once(t.loop, 10ll * 1000 * 1000);
	}
	cr_assert_eq(st.policy_retries, 2);
	ferry_http_request_cancel(r.req);
	cr_expect(r.done);
	cr_expect_eq(r.result, FERRY_ECANCELED);
	cr_expect_eq(r.attempts, 2);
	tc_teardown(&t);	/* r2 ends with the client */
	cr_expect(r2.done);
	cr_expect_eq(r2.result, FERRY_ECLOSED);
	tc_req_free(&r);
	tc_req_free(&r2);
}
