/*
 * test_session_hard.c - the blocking API's defects from issue 10, one
 * regression test each: the detail of an invalid argument, of a stream's
 * error and of a runner's close; NULL everywhere; the full URL and the
 * requested one after a failure; the whole-body limit and empty bodies; a
 * streamed response left unfreed when its runner is destroyed.
 */
#include "util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

TestSuite(session_hard, .fini = st_down, .timeout = 60);

static void expect_detail(struct ferry_response *r, const char *part,
			  const char *what)
{
	const char *d = ferry_response_detail(r);

	cr_assert_not_null(d, "%s: NULL detail", what);
	cr_assert_not_null(strcasestr(d, part),
			   "%s: detail \"%s\" does not say \"%s\"", what, d, part);
}

/* ------------------------------------------------------------------ */
/* Invalid arguments keep their reason                                   */

Test(session_hard, crlf_in_header_value_says_why)
{
	static const struct ferry_http_header bad[] = {
		{ .name = "X-Ok", .name_len = 4, .value = "fine", .value_len = 4 },
		{ .name = "X-Bad", .name_len = 5, .value = "a\r\nInjected: 1",
		  .value_len = 14 },
	};
	struct ferry_request rq = { .url = "http://127.0.0.1:1/",
				    .headers = bad, .nheaders = 2 };
	struct ferry_response *r;
	int rc;

	st_session(NULL);
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, FERRY_EINVAL, "%d %s", rc, ferry_strerrorname(rc));
	cr_assert_eq(ferry_response_wait(r, 0), FERRY_EINVAL);
	/* The loop-side reason, not an empty string nor the bare code. */
	expect_detail(r, "header", "CR LF in a header value");
	cr_assert_str_neq(ferry_response_detail(r), ferry_strerror(FERRY_EINVAL));
	ferry_response_free(r);

	/* A method that is no token: same path, same rule. */
	rq = (struct ferry_request){ .url = "http://127.0.0.1:1/",
				     .method = "GE T" };
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, FERRY_EINVAL, "%d %s", rc, ferry_strerrorname(rc));
	expect_detail(r, "method", "bad method");
	ferry_response_free(r);
}

/* ------------------------------------------------------------------ */
/* Stream errors have a detail                                           */

/* Read @r's stream to its end, *@bytes read so far; returns the last
 * result (0 or < 0). */
static int drain_stream(struct ferry_response *r, uint64_t *bytes)
{
	struct ferry_chunk c;
	int rc;

	while ((rc = ferry_stream_next(ferry_response_stream(r), &c,
				       10 * ST_SEC)) == 1) {
		cr_assert_eq(st_pattern_check(c.data, c.len, *bytes), -1);
		*bytes += c.len;
	}
	return rc;
}

Test(session_hard, read_timeout_mid_body_reaches_the_stream_with_a_detail)
{
	struct ferry_http_client_opts o = { .read_timeout_ms = 300 };
	struct ferry_request rq = { .stream = true };
	struct ferry_response *r;
	uint64_t got;
	int rc;

	/* 16 KiB of body, then 30 s of silence. */
	st_misbehave("slow-body", "--delay=30");
	st_session(&o);
	rq.url = st_url(st.badbase, "/");
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, 200, "%d (%s)", rc, ferry_response_detail(r));
	st_hold(r);
	cr_assert_str_eq(ferry_response_detail(r), "", "no error yet");
	got = 0;
	rc = drain_stream(r, &got);
	cr_assert_eq(rc, FERRY_EREAD_TIMEOUT, "%s", ferry_strerrorname(rc));
	cr_assert_eq(got, 16384);
	cr_assert_eq(ferry_stream_next(ferry_response_stream(r),
				       &(struct ferry_chunk){ 0 }, 0),
		     FERRY_EREAD_TIMEOUT, "the error stays");
	/* The reason, from the stream and from the response. */
	cr_assert_not_null(strstr(ferry_stream_why(ferry_response_stream(r)),
				  "300 ms"),
			   "stream: \"%s\"",
			   ferry_stream_why(ferry_response_stream(r)));
	expect_detail(r, "300 ms", "read timeout mid-body");
	st_free(r);
}

Test(session_hard, session_closed_mid_body_says_so_on_the_stream)
{
	struct ferry_request rq = { .stream = true };
	struct ferry_response *r;
	struct ferry_chunk c;
	uint64_t got;
	int rc;

	/* 1 MiB in 16 KiB pieces every 200 ms: 13 s, still going after the
	 * close. */
	st_misbehave("slow-body", "--delay=0.2");
	st_session(NULL);
	rq.url = st_url(st.badbase, "/");
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, 200, "%d (%s)", rc, ferry_response_detail(r));
	st_hold(r);
	rc = ferry_stream_next(ferry_response_stream(r), &c, 10 * ST_SEC);
	cr_assert_eq(rc, 1, "%s", ferry_strerrorname(rc));
	got = c.len;
	ferry_session_close(st.s);
	rc = drain_stream(r, &got);
	cr_assert_eq(rc, FERRY_ECLOSED, "%s", ferry_strerrorname(rc));
	expect_detail(r, "session was closed", "session closed mid-body");
	st_free(r);
}

/* ------------------------------------------------------------------ */
/* A runner's close says "closed", not "cancelled by the caller"        */

struct closer {
	pthread_t th;
	int rc;
};

static void *close_thread(void *arg)
{
	struct closer *c = arg;

	c->rc = ferry_runner_close(st.r);
	return NULL;
}

Test(session_hard, runner_close_says_closed_to_blocked_calls)
{
	struct ferry_response *w[2], *r;
	struct closer cl = { 0 };
	int rc;

	st_misbehave("no-response", NULL);
	st_session(NULL);
	/* A whole-body request and a streamed one, both waiting for a head
	 * that never comes. Submitted before the close, so the loop starts
	 * them before it sees the close: they are cancelled by it. */
	for (int i = 0; i < 2; i++) {
		struct ferry_request rq = { .url = st_url(st.badbase, "/"),
					    .stream = i == 1 };

		cr_assert_eq(ferry_session_submit(st.s, &rq, &w[i]), 0);
	}
	cr_assert_eq(pthread_create(&cl.th, NULL, close_thread, &cl), 0);
	for (int i = 0; i < 2; i++) {
		rc = ferry_response_wait(w[i], 10 * ST_SEC);
		cr_assert_eq(rc, FERRY_ECLOSED, "%d: %s (%s)", i,
			     ferry_strerrorname(rc), ferry_response_detail(w[i]));
		expect_detail(w[i], "runner was closed", "blocked request");
		cr_assert_null(strstr(ferry_response_detail(w[i]), "cancel"),
			       "\"%s\"", ferry_response_detail(w[i]));
		ferry_response_free(w[i]);
	}
	st_join(cl.th, 5000);
	cr_assert_eq(cl.rc, 0);

	/* After it: refused at submit, and the detail still says why. */
	rc = ferry_session_get(st.s, st_url(st.badbase, "/"), &r);
	cr_assert_eq(rc, FERRY_ECLOSED);
	expect_detail(r, "runner was closed", "after the close");
	ferry_response_free(r);
}

/* A streamed body cut by the runner's close: ECLOSED with that reason. */
Test(session_hard, runner_close_mid_stream_says_closed)
{
	struct ferry_request rq = { .stream = true };
	struct closer cl = { 0 };
	struct ferry_response *r;
	struct ferry_chunk c;
	uint64_t got;
	int rc;

	st_misbehave("slow-body", "--delay=0.2");
	st_session(NULL);
	rq.url = st_url(st.badbase, "/");
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, 200, "%d (%s)", rc, ferry_response_detail(r));
	st_hold(r);
	cr_assert_eq(ferry_stream_next(ferry_response_stream(r), &c, 10 * ST_SEC), 1);
	got = c.len;
	/* The close waits for our stream: run it elsewhere, drain here. */
	cr_assert_eq(pthread_create(&cl.th, NULL, close_thread, &cl), 0);
	rc = drain_stream(r, &got);
	cr_assert_eq(rc, FERRY_ECLOSED, "%s", ferry_strerrorname(rc));
	expect_detail(r, "runner was closed", "stream cut by the close");
	st_free(r);
	st_join(cl.th, 5000);
	cr_assert_eq(cl.rc, 0);
}

/* ------------------------------------------------------------------ */
/* NULL: never a crash                                                   */

Test(session_hard, null_arguments_never_crash)
{
	struct ferry_request rq = { 0 };
	struct ferry_http_header h;
	struct ferry_response *r;
	struct ferry_session *s = (void *)1;
	size_t len = 7;
	int rc;

	/* Objects that are required: FERRY_EINVAL, and a response that
	 * says why wherever there is a response pointer to fill. */
	cr_assert_eq(ferry_session_create(NULL, NULL, &s), FERRY_EINVAL);
	cr_assert_null(s);
	st_session(NULL);
	cr_assert_eq(ferry_session_create(st.r, NULL, NULL), FERRY_EINVAL);

	rc = ferry_session_get(NULL, "http://127.0.0.1:1/", &r);
	cr_assert_eq(rc, FERRY_EINVAL);
	cr_assert_not_null(r);
	expect_detail(r, "session", "get(NULL session)");
	cr_assert_str_eq(ferry_response_url(r), "http://127.0.0.1:1/");
	ferry_response_free(r);
	rc = ferry_session_get(st.s, NULL, &r);
	cr_assert_eq(rc, FERRY_EINVAL);
	expect_detail(r, "URL", "get(NULL url)");
	ferry_response_free(r);
	cr_assert_eq(ferry_session_get(st.s, "http://127.0.0.1:1/", NULL),
		     FERRY_EINVAL);
	cr_assert_eq(ferry_session_get(NULL, NULL, NULL), FERRY_EINVAL);

	rc = ferry_session_request(NULL, NULL, &r);
	cr_assert_eq(rc, FERRY_EINVAL);
	ferry_response_free(r);
	rc = ferry_session_request(st.s, NULL, &r);
	cr_assert_eq(rc, FERRY_EINVAL);
	expect_detail(r, "request", "request(NULL rq)");
	ferry_response_free(r);
	cr_assert_eq(ferry_session_request(st.s, &rq, NULL), FERRY_EINVAL);
	rc = ferry_session_submit(NULL, &rq, &r);
	cr_assert_eq(rc, FERRY_EINVAL);
	ferry_response_free(r);
	rq.url = "http://127.0.0.1:1/";
	cr_assert_eq(ferry_session_submit(st.s, &rq, NULL), FERRY_EINVAL);
	rq.nheaders = 1;	/* headers NULL */
	rc = ferry_session_submit(st.s, &rq, &r);
	cr_assert_eq(rc, FERRY_EINVAL);
	expect_detail(r, "header", "nheaders without headers");
	ferry_response_free(r);
	rq = (struct ferry_request){ .url = "http://127.0.0.1:1/",
				     .body_len = 5 };	/* body NULL */
	rc = ferry_session_submit(st.s, &rq, &r);
	cr_assert_eq(rc, FERRY_EINVAL);
	expect_detail(r, "body", "body_len without body");
	ferry_response_free(r);

	/* A NULL response: neutral answers. */
	cr_assert_eq(ferry_response_wait(NULL, 0), FERRY_EINVAL);
	cr_assert_null(ferry_response_task(NULL));
	cr_assert_eq(ferry_response_status(NULL), FERRY_EINVAL);
	cr_assert_str_eq(ferry_response_reason(NULL), "");
	cr_assert_str_neq(ferry_response_detail(NULL), "");
	cr_assert_eq(ferry_response_header_count(NULL), 0);
	cr_assert_not(ferry_response_header_at(NULL, 0, &h));
	cr_assert_null(ferry_response_header(NULL, "Server", &len));
	cr_assert_eq(len, 0);
	len = 7;
	cr_assert_null(ferry_response_body(NULL, &len));
	cr_assert_eq(len, 0);
	cr_assert_null(ferry_response_body(NULL, NULL));
	cr_assert_str_eq(ferry_response_url(NULL), "");
	cr_assert_null(ferry_response_stream(NULL));
	cr_assert_null(ferry_session_runner(NULL));
	ferry_response_free(NULL);
	ferry_session_close(NULL);
	ferry_session_destroy(NULL);

	/* A real response with NULL out-pointers and names. */
	rc = ferry_session_get(st.s, "http://127.0.0.1:1/", &r);
	cr_assert_lt(rc, 0);
	cr_assert_null(ferry_response_header(r, NULL, NULL));
	cr_assert_not(ferry_response_header_at(r, 0, NULL));
	cr_assert_not_null(ferry_response_body(r, NULL));
	ferry_response_free(r);

	/* The bridge calls a response leads to: a NULL task or stream. */
	cr_assert_eq(ferry_task_wait(NULL, 0), FERRY_EINVAL);
	cr_assert_eq(ferry_task_cancel(NULL), FERRY_EINVAL);
	cr_assert_eq(ferry_task_release(NULL), FERRY_EINVAL);
	cr_assert_not(ferry_task_done(NULL));
	cr_assert_eq(ferry_stream_next(NULL, &(struct ferry_chunk){ 0 }, 0),
		     FERRY_EINVAL);
	cr_assert_str_eq(ferry_stream_why(NULL), "");
	ferry_stream_close(NULL);
	{
		struct ferry_lines l;
		const char *line;

		ferry_lines_init(&l, NULL, 0);
		cr_assert_eq(ferry_lines_next(&l, &line, &len, 0), FERRY_EINVAL);
		cr_assert_eq(ferry_lines_next(NULL, &line, &len, 0), FERRY_EINVAL);
		cr_assert_eq(ferry_lines_next(&l, NULL, NULL, 0), FERRY_EINVAL);
		ferry_lines_free(&l);
		ferry_lines_free(NULL);
	}
}

/* A 200 with a body, read with NULL for every optional pointer. */
Test(session_hard, null_out_pointers_on_a_real_response)
{
	struct ferry_response *r;
	struct ferry_chunk c;
	int rc;

	st_nginx();
	st_session(NULL);
	rc = ferry_session_get(st.s, st_url(st.base, "/small.txt"), &r);
	cr_assert_eq(rc, 200, "%d (%s)", rc, ferry_response_detail(r));
	cr_assert_not_null(ferry_response_header(r, "Content-Length", NULL));
	cr_assert_eq(strlen(ferry_response_body(r, NULL)), 100);
	cr_assert_not(ferry_response_header_at(r, 0, NULL));
	/* A whole-body response has no stream: next says so, no crash. */
	cr_assert_null(ferry_response_stream(r));
	cr_assert_eq(ferry_stream_next(ferry_response_stream(r), &c, 0),
		     FERRY_EINVAL);
	ferry_response_free(r);
}

/* ------------------------------------------------------------------ */
/* URLs: whole, and the requested one after a failure                    */

Test(session_hard, long_url_is_kept_whole)
{
	static char url[8192];
	struct ferry_response *r;
	int n, rc;

	st_nginx();
	st_session(NULL);
	/* 6000 bytes: past the old 2047, under nginx's 8 KiB request line. */
	n = snprintf(url, sizeof(url), "%s/", st.base);
	memset(url + n, 'a', 6000 - (size_t)n);
	url[6000] = '\0';
	rc = ferry_session_get(st.s, url, &r);
	cr_assert_eq(rc, 404, "%d (%s)", rc, ferry_response_detail(r));
	cr_assert_eq(strlen(ferry_response_url(r)), 6000);
	cr_assert_str_eq(ferry_response_url(r), url);
	ferry_response_free(r);
}

Test(session_hard, requested_url_kept_after_a_failure)
{
	struct ferry_request rq = { .timeout_ms = 200 };
	struct ferry_response *r;
	char url[128];
	int rc;

	st_misbehave("no-response", NULL);
	st_session(NULL);
	/* Refused: no response ever came. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/some/path?q=1",
		 st_closed_port());
	rc = ferry_session_get(st.s, url, &r);
	cr_assert_eq(rc, -ECONNREFUSED, "%s", ferry_strerrorname(rc));
	cr_assert_str_eq(ferry_response_url(r), url);
	ferry_response_free(r);
	/* Timed out, waited for with submit + wait. */
	rq.url = st_url(st.badbase, "/slow?x=y");
	cr_assert_eq(ferry_session_submit(st.s, &rq, &r), 0);
	cr_assert_eq(ferry_response_wait(r, 10 * ST_SEC), FERRY_ETOTAL_TIMEOUT);
	cr_assert_str_eq(ferry_response_url(r), rq.url);
	ferry_response_free(r);
	/* Refused before any I/O: the string as given. */
	rc = ferry_session_get(st.s, "http://127.0.0.1:99999/x", &r);
	cr_assert_eq(rc, FERRY_EURL);
	cr_assert_str_eq(ferry_response_url(r), "http://127.0.0.1:99999/x");
	ferry_response_free(r);
}

/* ------------------------------------------------------------------ */
/* Whole bodies: the limit, and empty ones                               */

Test(session_hard, empty_body_is_an_empty_string)
{
	struct ferry_response *r;
	const char *b;
	size_t len = 7;
	int rc;

	st_nginx();
	st_session(NULL);
	rc = ferry_session_get(st.s, st_url(st.base, "/status/204"), &r);
	cr_assert_eq(rc, 204, "%d (%s)", rc, ferry_response_detail(r));
	b = ferry_response_body(r, &len);
	cr_assert_not_null(b, "an empty body is \"\", not NULL");
	cr_assert_eq(len, 0);
	cr_assert_str_eq(b, "");
	ferry_response_free(r);

	/* A body is NUL-terminated past its length. */
	rc = ferry_session_get(st.s, st_url(st.base, "/1k.bin"), &r);
	cr_assert_eq(rc, 200, "%d (%s)", rc, ferry_response_detail(r));
	b = ferry_response_body(r, &len);
	cr_assert_eq(len, 1024);
	cr_assert_eq(b[1024], '\0');
	ferry_response_free(r);
}

Test(session_hard, whole_body_limit_is_explicit_and_named)
{
	static const char head[] = "HTTP/1.1 200 OK\r\n"
				   "Content-Length: 300000000\r\n"
				   "Connection: close\r\n\r\n0123456789";
	struct ferry_http_client_opts o = { .max_body = UINT64_MAX };
	struct ferry_request rq = { 0 };
	struct ferry_response *r;
	struct st_srv srv;
	char lim[32], url[64];
	int rc;

	cr_assert_eq(FERRY_SESSION_MAX_BODY, 256ull << 20);
	st_srv_start(&srv, head, 0);
	st_session(NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", srv.port);
	rq.url = url;
	/* The default: refused, and the detail names the limit and the
	 * option that sets it. */
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, FERRY_ETOOLARGE, "%d %s (%s)", rc, ferry_strerrorname(rc),
		     ferry_response_detail(r));
	snprintf(lim, sizeof(lim), "%llu", (unsigned long long)FERRY_SESSION_MAX_BODY);
	expect_detail(r, lim, "default limit");
	expect_detail(r, "max_body", "default limit");
	ferry_response_free(r);

	/* A request's own limit, named too. */
	rq.max_body = 1000;
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, FERRY_ETOOLARGE, "%s", ferry_strerrorname(rc));
	expect_detail(r, "1000", "request limit");
	ferry_response_free(r);

	/* No limit when asked for none: the head goes through, and the
	 * body fails only because the server cut it short. */
	ferry_session_destroy(st.s);
	st.s = NULL;
	cr_assert_eq(ferry_session_create(st.r, &o, &st.s), 0);
	rq.max_body = 0;
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_neq(rc, FERRY_ETOOLARGE, "%s", ferry_response_detail(r));
	cr_assert_lt(rc, 0);
	ferry_response_free(r);
	st_srv_stop(&srv);
}

/* ------------------------------------------------------------------ */
/* A streamed response left unfreed when its runner is destroyed         */

/*
 * In a child process (tests/session/orphan_child.c): stream a response,
 * never free it, destroy the runner. Debug builds abort with a message
 * naming the mistake instead of hanging for ever.
 */
Test(session_hard, destroy_with_an_unfreed_stream_fails_loudly)
{
	int pfd[2], status = 0;
	char err[1024] = "";
	int64_t t0;
	size_t n = 0;
	pid_t pid, w;
	const char *root = getenv("FERRY_BUILD_ROOT"), *url;
	char exe[4096];

	if (!root)
		cr_skip_test("FERRY_BUILD_ROOT not set (run under meson test)");
	snprintf(exe, sizeof(exe), "%s/tests/session/session_orphan_child", root);
	cr_assert_eq(access(exe, X_OK), 0, "%s: %s", exe, strerror(errno));
	st_nginx();
	url = st_url(st.base, "/1m.bin");
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], 2);
		execl(exe, exe, url, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	t0 = bt_now();
	while ((w = waitpid(pid, &status, WNOHANG)) == 0 &&
	       bt_now() - t0 < 20 * ST_SEC)
		bt_sleep_ms(20);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		close(pfd[0]);
		cr_assert_fail("ferry_runner_destroy hung with a stream unfreed");
	}
	for (ssize_t k; n < sizeof(err) - 1 &&
	     (k = read(pfd[0], err + n, sizeof(err) - 1 - n)) > 0;)
		n += (size_t)k;
	err[n] = '\0';
	close(pfd[0]);
#ifdef NDEBUG
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 5,
		  "release builds return (status %#x): %s", status, err);
#else
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
		  "debug builds abort (status %#x): %s", status, err);
#endif
	cr_assert_not_null(strstr(err, "ferry_runner_destroy"), "stderr: %s", err);
	cr_assert_not_null(strstr(err, "stream"), "stderr: %s", err);
}
