/*
 * test_session_basic.c - blocking requests through the bridge against a
 * real nginx: GETs from 32 threads at once with checksummed bodies; status,
 * reason, headers (case-insensitive, repeats in order) and the final URL
 * after redirects; gather (200 submitted, wait_all) and wait_any; bad URLs
 * refused before any I/O; and a blocking call on the loop thread refused
 * with FERRY_EDEADLOCK instead of hanging.
 */
#include "util.h"

TestSuite(session_basic, .fini = st_down, .timeout = 60);

/* Check @r is a 200 carrying nginx's file @name, byte for byte. */
static void expect_file(struct ferry_response *r, int rc, const char *name)
{
	size_t size, n;
	uint64_t fnv;
	const void *body;

	cr_assert_eq(fx_manifest_get(&st.ngx, name, &size, &fnv), 0, "%s", name);
	cr_assert_eq(rc, 200, "%s: %d %s (%s)", name, rc,
		     rc < 0 ? ferry_strerrorname(rc) : "", ferry_response_detail(r));
	cr_assert_eq(ferry_response_status(r), 200);
	body = ferry_response_body(r, &n);
	cr_assert_eq(n, size, "%s: %zu bytes, want %zu", name, n, size);
	cr_assert_not_null(body);
	cr_assert_eq(st_fnv(FX_FNV1A64_INIT, body, n), fnv,
		     "%s: checksum differs", name);
	cr_assert_null(ferry_response_stream(r), "whole-body mode has no stream");
}

/* ------------------------------------------------------------------ */
/* 32 threads, each doing blocking GETs of files of several sizes        */

static const char *const files_mix[] = { "small.txt", "1k.bin", "64k.bin",
					 "1m.bin" };
#define NFILES (sizeof(files_mix) / sizeof(files_mix[0]))

struct want {
	size_t size;
	uint64_t fnv;
};

struct worker {
	pthread_t th;
	int id, rounds;
	const struct want *want;
	int ok;
	char err[256];		/* first failure, "" if none */
};

static void *get_worker(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < w->rounds; i++) {
		size_t k = (size_t)(w->id + i) % NFILES, n;
		char url[128];
		struct ferry_response *r = NULL;
		const void *body;
		int rc;

		snprintf(url, sizeof(url), "%s/%s", st.base, files_mix[k]);
		rc = ferry_session_get(st.s, url, &r);
		body = r ? ferry_response_body(r, &n) : NULL;
		if (rc != 200 || !body || n != w->want[k].size ||
		    st_fnv(FX_FNV1A64_INIT, body, n) != w->want[k].fnv) {
			if (!w->err[0])
				snprintf(w->err, sizeof(w->err),
					 "thread %d GET %s: rc %d (%s) %zu bytes",
					 w->id, files_mix[k], rc,
					 r ? ferry_response_detail(r) : "no response",
					 body ? n : 0);
		} else {
			w->ok++;
		}
		ferry_response_free(r);
	}
	return NULL;
}

Test(session_basic, get_from_32_threads_at_once)
{
	static struct worker w[32];
	struct want want[NFILES];
	int rounds = bt_scaled(8), total = 0;

	st_nginx();
	st_session(NULL);
	for (size_t k = 0; k < NFILES; k++)
		cr_assert_eq(fx_manifest_get(&st.ngx, files_mix[k], &want[k].size,
					     &want[k].fnv), 0);
	for (int i = 0; i < 32; i++) {
		w[i] = (struct worker){ .id = i, .rounds = rounds, .want = want };
		cr_assert_eq(pthread_create(&w[i].th, NULL, get_worker, &w[i]), 0);
	}
	for (int i = 0; i < 32; i++) {
		st_join(w[i].th, 40000);
		cr_expect_eq(w[i].err[0], '\0', "%s", w[i].err);
		total += w[i].ok;
	}
	cr_assert_eq(total, 32 * rounds);
}

/* ------------------------------------------------------------------ */
/* The response head                                                     */

Test(session_basic, status_reason_headers_and_url)
{
	struct ferry_response *r;
	struct ferry_http_header h;
	const char *v, *url;
	size_t len = 0, n;
	bool seen_cl = false;
	int rc;

	st_nginx();
	st_session(NULL);
	url = st_url(st.base, "/small.txt");
	rc = ferry_session_get(st.s, url, &r);
	expect_file(r, rc, "small.txt");
	cr_assert_str_eq(ferry_response_reason(r), "OK");
	cr_assert_str_eq(ferry_response_detail(r), "");
	cr_assert_str_eq(ferry_response_url(r), url);

	/* Lookup ignores case; values are NUL-terminated and sized. */
	v = ferry_response_header(r, "content-length", &len);
	cr_assert_not_null(v);
	cr_assert_str_eq(v, "100");
	cr_assert_eq(len, 3);
	cr_assert_str_eq(ferry_response_header(r, "CONTENT-LENGTH", NULL), "100");
	cr_assert_str_eq(ferry_response_header(r, "Content-Length", NULL), "100");
	cr_assert_not_null(ferry_response_header(r, "server", NULL));
	cr_assert_null(ferry_response_header(r, "x-not-there", NULL));
	cr_assert_null(ferry_response_header(r, "content-lengt", NULL),
		       "a prefix is not a match");

	n = ferry_response_header_count(r);
	cr_assert_geq(n, 3, "nginx sends Server, Date, Content-Length, ...");
	for (size_t i = 0; i < n; i++) {
		cr_assert(ferry_response_header_at(r, i, &h));
		cr_assert_eq(strlen(h.name), h.name_len);
		cr_assert_eq(strlen(h.value), h.value_len);
		if (!strcasecmp(h.name, "content-length")) {
			seen_cl = true;
			cr_assert_str_eq(h.value, "100");
		}
	}
	cr_assert(seen_cl);
	cr_assert_not(ferry_response_header_at(r, n, &h));
	ferry_response_free(r);
}

Test(session_basic, statuses_are_results_not_errors)
{
	static const int codes[] = { 201, 204, 404, 418, 500, 503 };
	struct ferry_response *r;

	st_nginx();
	st_session(NULL);
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		char path[32];
		size_t n;
		int rc;

		snprintf(path, sizeof(path), "/status/%d", codes[i]);
		rc = ferry_session_get(st.s, st_url(st.base, path), &r);
		cr_assert_eq(rc, codes[i], "%s: %d (%s)", path, rc,
			     ferry_response_detail(r));
		cr_assert_eq(ferry_response_status(r), codes[i]);
		cr_assert_str_eq(ferry_response_detail(r), "");
		ferry_response_body(r, &n);
		if (codes[i] == 204)
			cr_assert_eq(n, 0);
		if (codes[i] == 201) {
			cr_assert_eq(n, strlen("status 201\n"));
			cr_assert_str_eq(ferry_response_body(r, &n), "status 201\n");
		}
		ferry_response_free(r);
	}
}

/* Repeated fields keep their order; lookup returns the first. */
Test(session_basic, repeated_headers_in_order)
{
	static const char head[] =
		"HTTP/1.1 203 Quite Fine\r\n"
		"X-Rep: one\r\n"
		"X-Other: z\r\n"
		"x-rep: two\r\n"
		"Set-Cookie: a=1\r\n"
		"X-REP: three\r\n"
		"Set-Cookie: b=2\r\n"
		"Content-Length: 2\r\n"
		"Connection: close\r\n"
		"\r\nhi";
	static const char *const reps[] = { "one", "two", "three" };
	struct st_srv srv;
	struct ferry_response *r;
	struct ferry_http_header h;
	char url[64];
	size_t nrep = 0, ncookie = 0, n;
	int rc;

	st_srv_start(&srv, head, 0);
	st_session(NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/h", srv.port);
	rc = ferry_session_get(st.s, url, &r);
	cr_assert_eq(rc, 203, "%d (%s)", rc, ferry_response_detail(r));
	cr_assert_str_eq(ferry_response_reason(r), "Quite Fine");
	cr_assert_str_eq(ferry_response_header(r, "X-REP", NULL), "one");
	cr_assert_str_eq(ferry_response_header(r, "set-cookie", NULL), "a=1");
	cr_assert_eq(ferry_response_header_count(r), 8);
	for (size_t i = 0; ferry_response_header_at(r, i, &h); i++) {
		if (!strcasecmp(h.name, "x-rep")) {
			cr_assert_lt(nrep, 3);
			cr_assert_str_eq(h.value, reps[nrep], "repeat %zu", nrep);
			nrep++;
		} else if (!strcasecmp(h.name, "set-cookie")) {
			cr_assert_str_eq(h.value, ncookie ? "b=2" : "a=1");
			ncookie++;
		}
	}
	cr_assert_eq(nrep, 3);
	cr_assert_eq(ncookie, 2);
	cr_assert_str_eq(ferry_response_body(r, &n), "hi");
	ferry_response_free(r);
	ferry_session_destroy(st.s);
	st.s = NULL;
	st_srv_stop(&srv);
}

Test(session_basic, final_url_after_redirects)
{
	struct ferry_request rq = { .follow_redirects = FERRY_HTTP_FOLLOW_YES };
	struct ferry_response *r;
	const char *target;
	int rc;

	st_nginx();
	st_session(NULL);
	target = st_url(st.base, "/small.txt");

	rq.url = st_url(st.base, "/redirect");
	rc = ferry_session_request(st.s, &rq, &r);
	expect_file(r, rc, "small.txt");
	cr_assert_str_eq(ferry_response_url(r), target);
	ferry_response_free(r);

	rq.url = st_url(st.base, "/redirect-n/3");
	rc = ferry_session_request(st.s, &rq, &r);
	expect_file(r, rc, "small.txt");
	cr_assert_str_eq(ferry_response_url(r), target);
	ferry_response_free(r);

	/* Not followed: the redirect itself, at the URL asked for. */
	rq.follow_redirects = FERRY_HTTP_FOLLOW_NO;
	rq.url = st_url(st.base, "/redirect");
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, 301, "%d (%s)", rc, ferry_response_detail(r));
	cr_assert_str_eq(ferry_response_url(r), rq.url);
	cr_assert_not_null(ferry_response_header(r, "location", NULL));
	cr_assert_not_null(strstr(ferry_response_header(r, "location", NULL),
				  "/small.txt"));
	ferry_response_free(r);

	/* A loop ends with FERRY_EREDIRECTS after max_redirects. */
	rq.follow_redirects = FERRY_HTTP_FOLLOW_YES;
	rq.max_redirects = 3;
	rq.url = st_url(st.base, "/redirect-loop");
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, FERRY_EREDIRECTS, "%d (%s)", rc, ferry_response_detail(r));
	cr_assert_neq(ferry_response_detail(r)[0], '\0');
	ferry_response_free(r);
}

/* ------------------------------------------------------------------ */
/* Sets of requests                                                      */

Test(session_basic, gather_200_with_wait_all)
{
	enum { N = 200 };
	static struct ferry_response *rs[N];
	static struct ferry_task *ts[N];
	static const char *const names[] = { "small.txt", "1k.bin", "64k.bin" };
	struct ferry_request rq = { 0 };

	st_nginx();
	st_session(NULL);
	for (int i = 0; i < N; i++) {
		rq.url = st_url(st.base, i % 3 == 0 ? "/small.txt" :
					 i % 3 == 1 ? "/1k.bin" : "/64k.bin");
		cr_assert_eq(ferry_session_submit(st.s, &rq, &rs[i]), 0, "%d: %s",
			     i, ferry_response_detail(rs[i]));
		ts[i] = ferry_response_task(rs[i]);
		cr_assert_not_null(ts[i]);
	}
	cr_assert_eq(ferry_task_wait_all(ts, N, 30 * ST_SEC), 0);
	for (int i = 0; i < N; i++) {
		cr_assert(ferry_task_done(ts[i]), "%d not done after wait_all", i);
		expect_file(rs[i], ferry_response_wait(rs[i], 0), names[i % 3]);
	}
	for (int i = 0; i < N; i++)
		ferry_response_free(rs[i]);
}

Test(session_basic, wait_any_returns_the_one_done)
{
	struct ferry_request slow = { 0 }, fast = { 0 };
	struct ferry_response *rs[3];
	struct ferry_task *ts[3];
	int64_t t0;
	int rc;

	st_misbehave("no-response", NULL);
	st_nginx();
	st_session(NULL);
	slow.url = st_url(st.badbase, "/never");
	fast.url = st_url(st.base, "/small.txt");
	cr_assert_eq(ferry_session_submit(st.s, &slow, &rs[0]), 0);
	cr_assert_eq(ferry_session_submit(st.s, &slow, &rs[1]), 0);
	ts[0] = ferry_response_task(rs[0]);
	ts[1] = ferry_response_task(rs[1]);

	/* Nothing will finish: the deadline ends the wait. */
	t0 = bt_now();
	cr_assert_eq(ferry_task_wait_any(ts, 2, 200 * BT_MS), FERRY_ETIMEDOUT);
	BT_ASSERT_ELAPSED(t0, 150, 5000);
	cr_assert_eq(ferry_response_wait(rs[0], 0), FERRY_ETIMEDOUT);

	cr_assert_eq(ferry_session_submit(st.s, &fast, &rs[2]), 0);
	ts[2] = ferry_response_task(rs[2]);
	rc = ferry_task_wait_any(ts, 3, 10 * ST_SEC);
	cr_assert_eq(rc, 2, "wait_any: %d", rc);
	expect_file(rs[2], ferry_response_wait(rs[2], 0), "small.txt");
	cr_assert_not(ferry_task_done(ts[0]));
	cr_assert_not(ferry_task_done(ts[1]));

	/* Freeing a response still in flight cancels it, promptly. */
	t0 = bt_now();
	ferry_response_free(rs[0]);
	ferry_response_free(rs[1]);
	BT_ASSERT_ELAPSED(t0, 0, 10000);	/* upper: a hang guard */
	ferry_response_free(rs[2]);
}

/* ------------------------------------------------------------------ */
/* Refusals                                                              */

Test(session_basic, bad_url_refused_before_io)
{
	static const struct {
		const char *url, *part;
	} bad[] = {
		{ "ftp://127.0.0.1/x", "scheme" },
		{ "http://", "host" },
		{ "http://127.0.0.1:99999/", "port" },
		{ "http://127.0.0.1:12ab/", "port" },
		{ "http://[::1/", "IPv6" },
		{ "127.0.0.1/small.txt", "scheme" },
	};
	struct ferry_response *r;
	int rc;

	st_session(NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rc = ferry_session_get(st.s, bad[i].url, &r);
		cr_assert_eq(rc, FERRY_EURL, "%s: %d (%s)", bad[i].url, rc,
			     ferry_strerrorname(rc));
		cr_assert_not_null(r, "the response says why even on failure");
		cr_assert_eq(ferry_response_wait(r, 0), FERRY_EURL);
		cr_assert_not_null(strcasestr(ferry_response_detail(r), bad[i].part),
				   "%s: detail \"%s\" does not name the %s",
				   bad[i].url, ferry_response_detail(r), bad[i].part);
		ferry_response_free(r);
	}

	/* Before any I/O, indeed before the runner is asked: with the runner
	 * closed, a bad URL still says FERRY_EURL, a good one FERRY_ECLOSED. */
	cr_assert_eq(ferry_runner_close(st.r), 0);
	rc = ferry_session_get(st.s, "http://127.0.0.1:99999/", &r);
	cr_assert_eq(rc, FERRY_EURL, "%s", ferry_strerrorname(rc));
	ferry_response_free(r);
	rc = ferry_session_get(st.s, "http://127.0.0.1:1/", &r);
	cr_assert_eq(rc, FERRY_ECLOSED, "%s", ferry_strerrorname(rc));
	cr_assert_neq(ferry_response_detail(r)[0], '\0');
	ferry_response_free(r);

	/* No request, no URL: FERRY_EINVAL, still with a response. */
	rc = ferry_session_submit(st.s, NULL, &r);
	cr_assert_eq(rc, FERRY_EINVAL);
	ferry_response_free(r);
}

/* A blocking call made on the loop thread must be refused, not hang. */
struct on_loop {
	struct ferry_task t;
	struct ferry_session *s;
	const char *url;
	int get_rc, req_rc, stream_rc, wait_rc;
	struct ferry_response *submitted;
};

static void on_loop_start(struct ferry_task *t)
{
	struct on_loop *o = container_of(t, struct on_loop, t);
	struct ferry_request rq = { .url = o->url, .stream = true };
	struct ferry_response *r = NULL;

	o->get_rc = ferry_session_get(o->s, o->url, &r);
	/* Refused, so nothing is in flight: freeing here is fine. */
	ferry_response_free(r);
	r = NULL;
	o->req_rc = ferry_session_request(o->s, &rq, &r);
	ferry_response_free(r);
	/* Submitting does not block; waiting for it here would. */
	rq.stream = false;
	if (ferry_session_submit(o->s, &rq, &o->submitted) == 0)
		o->wait_rc = ferry_response_wait(o->submitted, -1);
	ferry_task_complete(t, 0);
}

Test(session_basic, blocking_call_on_loop_thread_is_refused)
{
	struct on_loop o = { .t.start = on_loop_start };
	int rc;

	st_nginx();
	st_session(NULL);
	o.s = st.s;
	o.url = st_url(st.base, "/small.txt");
	cr_assert_eq(ferry_call(st.r, &o.t), 0);
	cr_assert_eq(o.get_rc, FERRY_EDEADLOCK, "get: %s",
		     ferry_strerrorname(o.get_rc));
	cr_assert_eq(o.req_rc, FERRY_EDEADLOCK, "request: %s",
		     ferry_strerrorname(o.req_rc));
	cr_assert_eq(o.wait_rc, FERRY_EDEADLOCK, "wait: %s",
		     ferry_strerrorname(o.wait_rc));
	/* The submitted one runs normally, waited for from here. */
	cr_assert_not_null(o.submitted);
	rc = ferry_response_wait(o.submitted, 10 * ST_SEC);
	expect_file(o.submitted, rc, "small.txt");
	ferry_response_free(o.submitted);
	/* Only that one reached nginx: the refused ones made no I/O. */
	cr_assert_eq(fx_nginx_wait_requests(&st.ngx, 1, 5000), 1);
	bt_sleep_ms(100);
	cr_assert_eq(fx_nginx_count_requests(&st.ngx), 1);
	/* And the session is fine afterwards. */
	{
		struct ferry_response *r;

		rc = ferry_session_get(st.s, o.url, &r);
		expect_file(r, rc, "small.txt");
		ferry_response_free(r);
	}
}
