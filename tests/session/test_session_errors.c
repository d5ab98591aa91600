/*
 * test_session_errors.c - what goes wrong, and that it surfaces with a
 * detail: connection refused, a reset, a smuggling-shaped response, a
 * server that never answers; cancellation of a request in flight from
 * another thread; the session closed under requests from many threads;
 * the runner closed under streaming responses.
 */
#include "util.h"

TestSuite(session_errors, .fini = st_down, .timeout = 60);

static void expect_error(int rc, struct ferry_response *r, int want,
			 const char *what)
{
	cr_assert_eq(rc, want, "%s: got %d %s, want %s (%s)", what, rc,
		     rc < 0 ? ferry_strerrorname(rc) : "",
		     ferry_strerrorname(want), ferry_response_detail(r));
	cr_assert_eq(ferry_response_wait(r, 0), want);
	cr_assert_gt(strlen(ferry_response_detail(r)), 0, "%s: no detail", what);
}

Test(session_errors, connection_refused)
{
	struct ferry_response *r;
	char url[64];
	int rc;

	st_session(NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", st_closed_port());
	rc = ferry_session_get(st.s, url, &r);
	expect_error(rc, r, -ECONNREFUSED, "closed port");
	cr_assert_eq(ferry_response_status(r), 0);
	cr_assert_eq(ferry_response_header_count(r), 0);
	ferry_response_free(r);
}

Test(session_errors, reset_before_head)
{
	struct ferry_response *r;
	int rc;

	st_misbehave("reset-before-head", NULL);
	st_session(NULL);
	rc = ferry_session_get(st.s, st_url(st.badbase, "/"), &r);
	expect_error(rc, r, -ECONNRESET, "reset-before-head");
	ferry_response_free(r);
}

Test(session_errors, content_length_and_chunked_is_a_protocol_error)
{
	struct ferry_request rq = { .stream = true };
	struct ferry_response *r;
	int rc;

	st_misbehave("cl-and-te", NULL);
	st_session(NULL);
	rc = ferry_session_get(st.s, st_url(st.badbase, "/"), &r);
	expect_error(rc, r, FERRY_EPROTO, "cl-and-te");
	ferry_response_free(r);

	/* Refused at the head in stream mode too: no stream to read. */
	rq.url = st_url(st.badbase, "/");
	rc = ferry_session_request(st.s, &rq, &r);
	if (rc == 200) {
		struct ferry_chunk c;

		/* If the head got through, the body must not. */
		rc = ferry_stream_next(ferry_response_stream(r), &c, 5 * ST_SEC);
		cr_assert_eq(rc, FERRY_EPROTO, "stream: %s", ferry_strerrorname(rc));
	} else {
		expect_error(rc, r, FERRY_EPROTO, "cl-and-te, streamed");
	}
	ferry_response_free(r);
}

Test(session_errors, no_response_hits_total_timeout)
{
	struct ferry_request rq = { .timeout_ms = 300 };
	struct ferry_response *r;
	int64_t t0;
	int rc;

	st_misbehave("no-response", NULL);
	st_session(NULL);
	rq.url = st_url(st.badbase, "/");
	t0 = bt_now();
	rc = ferry_session_request(st.s, &rq, &r);
	BT_ASSERT_ELAPSED(t0, 250, 10000);	/* upper: a hang guard */
	expect_error(rc, r, FERRY_ETOTAL_TIMEOUT, "no-response");
	ferry_response_free(r);

	/* A streamed one has no head yet: same error, same bound. */
	rq.stream = true;
	t0 = bt_now();
	rc = ferry_session_request(st.s, &rq, &r);
	BT_ASSERT_ELAPSED(t0, 250, 10000);
	expect_error(rc, r, FERRY_ETOTAL_TIMEOUT, "no-response, streamed");
	cr_assert_null(ferry_response_stream(r));
	ferry_response_free(r);
}

/* A streamed body cut by the server ends the stream with the error. */
Test(session_errors, reset_in_body_reaches_the_stream)
{
	struct ferry_request rq = { .stream = true };
	struct ferry_response *r;
	struct ferry_chunk c;
	uint64_t got = 0;
	int rc;

	st_misbehave("reset-in-body", NULL);
	st_session(NULL);
	rq.url = st_url(st.badbase, "/");
	rc = ferry_session_request(st.s, &rq, &r);
	cr_assert_eq(rc, 200, "%d (%s)", rc, ferry_response_detail(r));
	while ((rc = ferry_stream_next(ferry_response_stream(r), &c,
				       5 * ST_SEC)) == 1) {
		cr_assert_eq(st_pattern_check(c.data, c.len, got), -1);
		got += c.len;
	}
	cr_assert_eq(rc, -ECONNRESET, "%s", ferry_strerrorname(rc));
	cr_assert_eq(got, 1000);
	ferry_response_free(r);
}

/* ------------------------------------------------------------------ */
/* Cancellation from another thread                                      */

struct waiter {
	struct ferry_response *r;
	int rc;
	int64_t returned_at;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->rc = ferry_response_wait(w->r, 20 * ST_SEC);
	w->returned_at = bt_now();
	return NULL;
}

Test(session_errors, cancel_whole_body_request_from_another_thread)
{
	struct ferry_request rq = { 0 };
	struct waiter w = { 0 };
	pthread_t th;
	int64_t t0;

	/* One that never answers, one whose body stalls after its first
	 * piece for an hour: neither can finish before the cancel, however
	 * long this thread is descheduled. */
	static const char *const modes[] = { "no-response", "slow-body" };
	static const char *const extra[] = { NULL, "--delay=3600" };

	for (int m = 0; m < 2; m++) {
		st_misbehave(modes[m], extra[m]);
		if (!st.s)
			st_session(NULL);
		rq.url = st_url(st.badbase, "/");
		cr_assert_eq(ferry_session_submit(st.s, &rq, &w.r), 0);
		cr_assert_eq(pthread_create(&th, NULL, wait_thread, &w), 0);
		bt_sleep_ms(150);	/* it is blocked in wait, mid-request */
		cr_assert_not(ferry_task_done(ferry_response_task(w.r)),
			      "%s finished early", modes[m]);
		t0 = bt_now();
		cr_assert_eq(ferry_task_cancel(ferry_response_task(w.r)), 0);
		st_join(th, 15000);
		/* A hang guard: the wait's own bound is 20 s. */
		cr_assert_lt(w.returned_at - t0, 10000 * BT_MS, "%s: took %.1f ms",
			     modes[m], (w.returned_at - t0) / 1e6);
		expect_error(w.rc, w.r, FERRY_ECANCELED, modes[m]);
		/* Cancelling a finished one changes nothing. */
		cr_assert_eq(ferry_task_cancel(ferry_response_task(w.r)), 0);
		cr_assert_eq(ferry_response_wait(w.r, 0), FERRY_ECANCELED);
		ferry_response_free(w.r);
	}
}

/* ------------------------------------------------------------------ */
/* Closing under load                                                    */

static char url_ok[128], url_never[128];

struct loader {
	pthread_t th;
	bool never;		/* asks the server that never answers */
	atomic_int ok;		/* 200s; seq_cst: the test polls it */
	int closed;		/* FERRY_ECLOSED results */
	int other;		/* anything else: the last one in @last */
	int last;
};

/* Blocking GETs until the session is closed under it. */
static void *load_thread(void *arg)
{
	struct loader *l = arg;

	for (;;) {
		struct ferry_response *r = NULL;
		int rc = ferry_session_get(st.s, l->never ? url_never : url_ok, &r);

		ferry_response_free(r);
		if (rc == 200) {
			l->ok++;
			continue;
		}
		l->last = rc;
		if (rc == FERRY_ECLOSED)
			l->closed++;
		else
			l->other++;
		return NULL;
	}
}

Test(session_errors, session_closed_under_requests_from_many_threads)
{
	enum { N = 16 };
	static struct loader l[N];
	struct ferry_response *r;
	int64_t t0;
	int ok = 0, rc;

	st_misbehave("no-response", NULL);
	st_nginx();
	st_session(NULL);
	snprintf(url_ok, sizeof(url_ok), "%s/1k.bin", st.base);
	snprintf(url_never, sizeof(url_never), "%s/", st.badbase);
	for (int i = 0; i < N; i++) {
		l[i] = (struct loader){ .never = i % 4 == 0 };
		cr_assert_eq(pthread_create(&l[i].th, NULL, load_thread, &l[i]), 0);
	}
	/* Close once a fast thread got an answer (not after a fixed sleep,
	 * which a loaded machine may not be done with). */
	t0 = bt_now();
	for (;;) {
		int got = 0;

		for (int i = 0; i < N; i++)
			got += atomic_load(&l[i].ok);
		if (got || bt_now() - t0 > 20 * ST_SEC)
			break;
		bt_sleep_ms(5);
	}
	t0 = bt_now();
	ferry_session_close(st.s);
	BT_ASSERT_ELAPSED(t0, 0, 10000);	/* upper: a hang guard */
	for (int i = 0; i < N; i++) {
		st_join(l[i].th, 5000);
		cr_expect_eq(l[i].other, 0, "thread %d ended with %d %s", i,
			     l[i].last, ferry_strerrorname(l[i].last));
		cr_expect_eq(l[i].closed, 1, "thread %d", i);
		if (l[i].never)
			cr_expect_eq(l[i].ok, 0);
		ok += l[i].ok;
	}
	cr_assert_gt(ok, 0, "the fast threads got answers before the close");

	/* Closed for good; close again is harmless; the runner lives on. */
	ferry_session_close(st.s);
	rc = ferry_session_get(st.s, url_ok, &r);
	expect_error(rc, r, FERRY_ECLOSED, "after close");
	ferry_response_free(r);
	{
		struct bt_now_task n;

		bt_now_init(&n, 5);
		cr_assert_eq(ferry_call(st.r, &n.t), 5);
	}
	/* A new session on the same runner works. */
	ferry_session_destroy(st.s);
	st.s = NULL;
	cr_assert_eq(ferry_session_create(st.r, NULL, &st.s), 0);
	rc = ferry_session_get(st.s, url_ok, &r);
	cr_assert_eq(rc, 200, "%d (%s)", rc, ferry_response_detail(r));
	ferry_response_free(r);
}

/* A consumer reading a streamed body slowly until something ends it. */
struct consumer {
	pthread_t th;
	struct ferry_response *r;
	atomic_int chunks;
	int rc;
	uint64_t bytes;
	int64_t bad_at;
};

static void *consume_thread(void *arg)
{
	struct consumer *c = arg;
	struct ferry_stream *s = ferry_response_stream(c->r);
	struct ferry_chunk ch;

	c->bad_at = -1;
	while ((c->rc = ferry_stream_next(s, &ch, 20 * ST_SEC)) == 1) {
		ssize_t at = st_pattern_check(ch.data, ch.len, c->bytes);

		if (at >= 0 && c->bad_at < 0)
			c->bad_at = (int64_t)c->bytes + at;
		c->bytes += ch.len;
		atomic_fetch_add(&c->chunks, 1);
		usleep(2000);
	}
	/* The consumer owns its response: free it here, runner closed. */
	ferry_response_free(c->r);
	c->r = NULL;
	return NULL;
}

struct closer {
	pthread_t th;
	int rc;
	int64_t done_at;
};

static void *close_thread(void *arg)
{
	struct closer *c = arg;

	c->rc = ferry_runner_close(st.r);
	c->done_at = bt_now();
	return NULL;
}

Test(session_errors, runner_closed_under_streams_and_requests)
{
	enum { NS = 4, NW = 4 };
	static struct consumer c[NS];
	static struct loader w[NW];
	struct ferry_request rq = { .stream = true };
	struct ferry_response *idle, *r;
	struct closer cl = { 0 };
	int64_t t0;
	int rc;

	/* 64 MiB trickled at 16 KiB per 10 ms: it never ends on its own. */
	st_misbehave("slow-body", "--size=67108864");
	st_session(NULL);
	snprintf(url_never, sizeof(url_never), "%s/", st.badbase);
	rq.url = url_never;
	for (int i = 0; i < NS; i++) {
		c[i] = (struct consumer){ 0 };
		rc = ferry_session_request(st.s, &rq, &c[i].r);
		cr_assert_eq(rc, 200, "%d (%s)", rc, ferry_response_detail(c[i].r));
		cr_assert_eq(pthread_create(&c[i].th, NULL, consume_thread, &c[i]), 0);
	}
	/* One more streamed, never read by anyone until after the close. */
	rc = ferry_session_request(st.s, &rq, &idle);
	cr_assert_eq(rc, 200, "%d (%s)", rc, ferry_response_detail(idle));
	/* And whole-body requests blocked on the same slow body. */
	for (int i = 0; i < NW; i++) {
		w[i] = (struct loader){ .never = true };
		cr_assert_eq(pthread_create(&w[i].th, NULL, load_thread, &w[i]), 0);
	}
	for (int i = 0; i < NS; i++) {
		t0 = bt_now();
		while (atomic_load(&c[i].chunks) < 2 && bt_now() - t0 < 5 * ST_SEC)
			bt_sleep_ms(5);
		cr_assert_geq(atomic_load(&c[i].chunks), 2, "consumer %d stuck", i);
	}

	/* Close from a thread of its own: it returns once every stream is
	 * given up by its consumer, which the idle one is not yet. */
	t0 = bt_now();
	cr_assert_eq(pthread_create(&cl.th, NULL, close_thread, &cl), 0);
	for (int i = 0; i < NS; i++) {
		st_join(c[i].th, 5000);
		cr_expect_eq(c[i].rc, FERRY_ECLOSED, "consumer %d: %s", i,
			     ferry_strerrorname(c[i].rc));
		cr_expect_eq(c[i].bad_at, -1, "consumer %d: wrong byte", i);
		cr_expect_gt(c[i].bytes, 0);
	}
	for (int i = 0; i < NW; i++) {
		st_join(w[i].th, 5000);
		cr_expect_eq(w[i].closed, 1, "whole-body %d: %d %s", i, w[i].last,
			     ferry_strerrorname(w[i].last));
		cr_expect_eq(w[i].other, 0);
	}
	{
		struct ferry_chunk ch;

		rc = ferry_stream_next(ferry_response_stream(idle), &ch, 5 * ST_SEC);
		cr_assert_eq(rc, FERRY_ECLOSED, "idle stream: %s",
			     ferry_strerrorname(rc));
		rc = ferry_stream_next(ferry_response_stream(idle), &ch, 0);
		cr_assert_eq(rc, FERRY_ECLOSED, "and it stays closed");
	}
	ferry_response_free(idle);
	st_join(cl.th, 5000);
	cr_assert_eq(cl.rc, 0);
	cr_assert_lt(cl.done_at - t0, 15 * ST_SEC);	/* a hang guard */

	/* The session is closed with its runner: requests say so. */
	rc = ferry_session_get(st.s, url_never, &r);
	expect_error(rc, r, FERRY_ECLOSED, "after runner close");
	ferry_response_free(r);
	rq.url = url_never;
	rc = ferry_session_request(st.s, &rq, &r);
	expect_error(rc, r, FERRY_ECLOSED, "streamed, after runner close");
	ferry_response_free(r);
	t0 = bt_now();
	ferry_session_destroy(st.s);
	st.s = NULL;
	BT_ASSERT_ELAPSED(t0, 0, 10000);	/* upper: a hang guard */
}

/* A session whose runner is closed before anything was asked of it. */
Test(session_errors, runner_closed_first_then_session_destroyed)
{
	struct ferry_response *r;
	int rc;

	st_session(NULL);
	cr_assert_eq(ferry_runner_close(st.r), 0);
	rc = ferry_session_get(st.s, "http://127.0.0.1:1/", &r);
	expect_error(rc, r, FERRY_ECLOSED, "closed runner");
	ferry_response_free(r);
	ferry_session_close(st.s);
	ferry_session_destroy(st.s);
	st.s = NULL;
	/* Creating one on a closed runner is refused. */
	rc = ferry_session_create(st.r, NULL, &st.s);
	cr_assert_eq(rc, FERRY_ECLOSED, "%s", ferry_strerrorname(rc));
	cr_assert_null(st.s);
}
