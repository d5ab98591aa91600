/*
 * test_client_direct.c - bodies received straight into the caller's
 * buffer (ferry_http_request_body_into, conn.c's direct receive), against
 * misbehave.py: whole and intact on a keep-alive connection that serves
 * the next request after it, never a byte past Content-Length, and the
 * buffer's ownership when the request ends with a receive into it in
 * flight (a cancel, a read timeout, the client's close, the server's
 * close): released once, after on_done, and other requests on the loop
 * undisturbed. Runs on both backends (meson: -epoll).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/timer.h"
#include "fixture.h"
#include "test_client_util.h"
/* White box: whether the connection's receive into the buffer is in
 * flight (struct ferry__conn), so each test stops the request in exactly
 * that state. */
#include "../../http/internal.h"

#define GUARD 4096

static struct fx_proc bad = FX_PROC_INIT;
static struct fx_proc good = FX_PROC_INIT;
static struct tc t;

/* One request with a body buffer of its own. */
struct dr {
	struct ferry_http_request *req;
	char *buf;		/* size + GUARD bytes, the guard 0xAA */
	size_t size;
	uint64_t nbody;
	unsigned in_place;	/* on_body pieces at buf + their offset */
	unsigned copied;	/* the others */
	bool into;		/* body_into accepted */
	bool done;
	int result;
	char detail[FERRY_HTTP_DETAIL_MAX];
	uint64_t stop_at;	/* arm the timer once this much body came */
	void (*stop)(struct dr *d);	/* what the timer does, once the
					   receive into buf is in flight */
	bool saw_busy;		/* ... which the timer saw */
	struct ferry__conn *cn;	/* the connection it saw doing it */
	struct ferry_timer timer;
};

/*
 * Releases seen, and whether one came too early: before its request's
 * on_done, or while the receive into it may still be in flight (before
 * the connection's transport reported closed(), which it does only once
 * every op's completion is in: then the connection's free is queued).
 */
static unsigned released;
static bool released_early;
static struct dr *live[4];

static void dr_release(void *buf)
{
	for (int i = 0; i < 4; i++) {
		struct dr *d = live[i];

		if (!d || d->buf != buf)
			continue;
		if (!d->done || (d->cn && !d->cn->closing.fn))
			released_early = true;
	}
	released++;
	free(buf);
}

static void down(void)
{
	if (t.loop)
		tc_teardown(&t);
	memset(&t, 0, sizeof(t));
	memset(live, 0, sizeof(live));
	fx_stop(&bad);
	fx_stop(&good);
}

TestSuite(client_direct, .fini = down, .timeout = 60);

static void up(const char *mode, const char *extra)
{
	int rc = fx_misbehave_start(&bad, mode, extra);

	if (rc == FX_SKIP)
		cr_skip_test("%s", bad.err);
	cr_assert_eq(rc, 0, "%s", bad.err);
	tc_setup(&t, NULL);
	released = 0;
	released_early = false;
}

static int dr_head(void *ctx, struct ferry_http_request *req, int status)
{
	struct dr *d = ctx;

	(void)status;
	d->into = ferry_http_request_body_into(req, d->buf, d->size,
					       dr_release) == 0;
	return 0;
}

static void dr_timer(struct ferry_timer *tm)
{
	struct dr *d = (struct dr *)((char *)tm - offsetof(struct dr, timer));

	if (d->done)
		return;
	if (!d->req->conn || !d->req->conn->direct_busy) {
		/* The multishot recv is still stopping: look again soon
		 * (bounded by the test's run). */
		ferry_timer_start(t.loop, tm, ferry_time_now() + 1000000);
		return;
	}
	d->saw_busy = true;
	d->cn = d->req->conn;
	if (d->stop)
		d->stop(d);
}

static int dr_body(void *ctx, struct ferry_http_request *req,
		   const void *data, size_t len, uintptr_t token)
{
	struct dr *d = ctx;

	(void)req;
	if (data == d->buf + d->nbody) {
		cr_expect_eq(token, 0);
		d->in_place++;
	} else {
		memcpy(d->buf + d->nbody, data, len);
		d->copied++;
	}
	d->nbody += len;
	/* From a later turn, once the connection receives into the
	 * buffer (dr_timer waits for that). */
	if (d->stop_at && d->nbody >= d->stop_at) {
		d->stop_at = 0;
		ferry_timer_start(t.loop, &d->timer, 0);
	}
	return 0;
}

static void dr_done(void *ctx, struct ferry_http_request *req, int result,
		    const char *detail)
{
	struct dr *d = ctx;

	(void)req;
	ferry_timer_stop(t.loop, &d->timer);
	d->done = true;
	d->result = result;
	d->req = NULL;
	snprintf(d->detail, sizeof(d->detail), "%s", detail);
	t.pending--;
}

static const struct ferry_http_callbacks dr_cb = {
	.on_head = dr_head,
	.on_body = dr_body,
	.on_done = dr_done,
};

static void dr_init(struct dr *d, size_t size, int slot)
{
	memset(d, 0, sizeof(*d));
	d->size = size;
	d->buf = malloc(size + GUARD);
	cr_assert(d->buf);
	memset(d->buf, 0xAA, size + GUARD);
	d->timer.fn = dr_timer;
	live[slot] = d;
}

static void dr_start(struct dr *d, const char *url, uint32_t read_timeout_ms)
{
	struct ferry_url u = { 0 };
	char why[256] = "";
	struct ferry_http_request_opts o = {
		.cb = &dr_cb, .ctx = d, .url = &u,
		.read_timeout_ms = read_timeout_ms,
	};

	cr_assert_eq(ferry_url_parse(&u, url, strlen(url), why, sizeof(why)), 0);
	cr_assert_eq(ferry_http_request_start(t.client, &o, &d->req, why,
					      sizeof(why)), 0, "%s", why);
	ferry_url_free(&u);
	t.pending++;
}

/* The caller's after a success: free it here. */
static void dr_free_ok(struct dr *d)
{
	free(d->buf);
	d->buf = NULL;
}

static const char *url_of(struct fx_proc *p, const char *path)
{
	static char b[2][128];
	static unsigned i;
	char *s = b[i++ % 2];

	snprintf(s, 128, "http://127.0.0.1:%d%s", p->port, path);
	return s;
}

static bool guard_intact(const struct dr *d)
{
	for (size_t i = 0; i < GUARD; i++)
		if ((unsigned char)d->buf[d->size + i] != 0xAA)
			return false;
	return true;
}

/* Run until every request is done and n releases were seen. */
static void run_until_released(unsigned n)
{
	uint64_t end = ferry_time_now() + 10ull * 1000 * 1000 * 1000;

	cr_assert(tc_run(&t, 10000), "requests did not end");
	while (released < n && ferry_time_now() < end)
		ferry_loop_run_once(t.loop, 10 * 1000 * 1000);
}

/* ------------------------------------------------------------------ */
/* Whole bodies                                                          */

/*
 * Two 1 MiB bodies in a row (16 KiB every 10 ms, so the body is still
 * coming when the queue runs dry: it goes in place) on one keep-alive
 * connection: each is intact, most of it received in place, and the
 * connection reads the next response through the ring again.
 */
Test(client_direct, bodies_in_place_on_a_kept_alive_connection)
{
	struct ferry_http_client_stats st;
	struct dr d[2];

	up("slow-body", NULL);
	for (int i = 0; i < 2; i++) {
		dr_init(&d[i], 1 << 20, i);
		dr_start(&d[i], url_of(&bad, "/"), 0);
		cr_assert(tc_run(&t, 20000));
		cr_assert_eq(d[i].result, 200, "%d %s", d[i].result, d[i].detail);
		cr_assert(d[i].into);
		cr_assert_eq(d[i].nbody, 1u << 20);
		cr_expect_eq(fx_pattern_check(d[i].buf, d[i].nbody, 0), -1);
		cr_expect_gt(d[i].in_place, 0, "no piece was received in place");
		cr_expect(guard_intact(&d[i]));
		dr_free_ok(&d[i]);
	}
	ferry_http_client_stats(t.client, &st);
	cr_expect_eq(st.conns_opened, 1);
	cr_expect_eq(released, 0);
}

/*
 * 1000 bytes more than Content-Length: the buffer (with room to spare)
 * gets exactly the body, nothing past it is received into it, and the
 * connection is not reused for what follows.
 */
Test(client_direct, never_a_byte_past_the_length)
{
	struct dr d;

	up("long-length", "--size=4194304");
	dr_init(&d, 4 << 20, 0);
	d.size += GUARD / 2;	/* room the request may not use */
	dr_start(&d, url_of(&bad, "/"), 0);
	cr_assert(tc_run(&t, 20000));
	cr_assert_eq(d.result, 200, "%d %s", d.result, d.detail);
	cr_assert_eq(d.nbody, 4u << 20);
	cr_expect_eq(fx_pattern_check(d.buf, d.nbody, 0), -1);
	for (size_t i = 4u << 20; i < (4u << 20) + GUARD; i++)
		cr_assert_eq((unsigned char)d.buf[i], 0xAA, "byte %zu written", i);
	dr_free_ok(&d);
}

/* ------------------------------------------------------------------ */
/* Ends with a receive into the buffer in flight                         */

static void do_cancel(struct dr *d)
{
	ferry_http_request_cancel(d->req);
}

static void do_close(struct dr *d)
{
	(void)d;
	ferry_http_client_close(t.client, NULL, NULL);
	t.client = NULL;
}

/*
 * A body stalled after 64 KiB: once the in-place receive waits for the
 * rest, the request is stopped by @stop (NULL: the read timeout). The
 * buffer is released once, after on_done; a request to another server
 * on the same loop meanwhile is undisturbed.
 */
static void stalled(void (*stop)(struct dr *d), uint32_t read_timeout_ms,
		    int want)
{
	struct tc_req other;
	struct dr d;
	int rc;

	up("stall-body", NULL);
	rc = fx_misbehave_start(&good, "ok", NULL);
	cr_assert_eq(rc, 0, "%s", good.err);
	dr_init(&d, 16 << 20, 0);
	d.stop_at = 65536;
	d.stop = stop;
	dr_start(&d, url_of(&bad, "/"), read_timeout_ms);
	tc_req_init(&other, &t, 0);
	cr_assert_eq(tc_get(&other, "GET", url_of(&good, "/")), 0);
	run_until_released(1);
	cr_expect_eq(d.result, want, "%d %s", d.result, d.detail);
	cr_expect(d.into);
	cr_expect(d.saw_busy, "stopped before the receive into the buffer");
	cr_expect_eq(d.nbody, 65536);
	cr_expect_eq(other.result, 200, "%d %s", other.result, other.detail);
	cr_expect_eq(released, 1);
	cr_expect(!released_early, "released before on_done or the op's end");
	tc_req_free(&other);
}

Test(client_direct, cancel_with_a_receive_in_flight)
{
	stalled(do_cancel, 0, FERRY_ECANCELED);
}

Test(client_direct, read_timeout_with_a_receive_in_flight)
{
	stalled(NULL, 300, FERRY_EREAD_TIMEOUT);
}

/* The client closes under it: the request ends (closed), the buffer is
 * released by the time the client is gone. */
Test(client_direct, client_close_with_a_receive_in_flight)
{
	struct dr d;
	uint64_t end = ferry_time_now() + 10ull * 1000 * 1000 * 1000;

	up("stall-body", NULL);
	dr_init(&d, 16 << 20, 0);
	d.stop_at = 65536;
	d.stop = do_close;
	dr_start(&d, url_of(&bad, "/"), 0);
	while ((!d.done || released < 1) && ferry_time_now() < end)
		ferry_loop_run_once(t.loop, 10 * 1000 * 1000);
	cr_expect(d.done);
	cr_expect(d.saw_busy, "stopped before the receive into the buffer");
	cr_expect_lt(d.result, 0);
	cr_expect_eq(released, 1);
	cr_expect(!released_early, "released before on_done or the op's end");
}

/* The server closes mid-body (half of 4 MiB sent): the in-place receive
 * sees the end, the request fails, the buffer goes back through release. */
Test(client_direct, server_close_mid_body)
{
	struct dr d;

	up("short-length", "--size=4194304");
	dr_init(&d, 4 << 20, 0);
	dr_start(&d, url_of(&bad, "/"), 0);
	run_until_released(1);
	cr_expect_lt(d.result, 0, "%d", d.result);
	cr_expect_eq(d.nbody, 2u << 20);
	cr_expect_eq(released, 1);
	cr_expect(!released_early, "released before on_done or the op's end");
}
