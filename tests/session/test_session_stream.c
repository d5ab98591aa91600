/*
 * test_session_stream.c - bodies streamed to the caller: a 16 MiB body
 * checksummed chunk by chunk, /lines split exactly, a slow consumer that
 * holds the download back (backpressure: memory stays flat and the server
 * is made to wait), and a streaming response freed while its body is
 * still arriving.
 */
#include "util.h"

TestSuite(session_stream, .fini = st_down, .timeout = 60);

struct drained {
	uint64_t bytes, fnv;
	long chunks;
	int rc;			/* what ended it: 0 = clean end */
	int64_t bad_at;		/* pattern mismatch offset, -1 = none */
};

/*
 * Read @s to its end (or @max_chunks), hashing what comes, checking
 * misbehave's pattern if @pattern, sleeping @sleep_us after each of the
 * first @slow chunks.
 */
static struct drained drain(struct ferry_stream *s, bool pattern, long slow,
			    int sleep_us, long max_chunks)
{
	struct drained d = { .fnv = FX_FNV1A64_INIT, .bad_at = -1 };
	struct ferry_chunk c;

	while (max_chunks < 0 || d.chunks < max_chunks) {
		d.rc = ferry_stream_next(s, &c, 10 * ST_SEC);
		if (d.rc != 1)
			break;
		cr_assert_gt(c.len, 0, "empty chunk %ld", d.chunks);
		cr_assert_not_null(c.data);
		if (pattern && d.bad_at < 0) {
			ssize_t at = st_pattern_check(c.data, c.len, d.bytes);

			if (at >= 0)
				d.bad_at = (int64_t)d.bytes + at;
		} else if (!pattern) {
			d.fnv = st_fnv(d.fnv, c.data, c.len);
		}
		d.bytes += c.len;
		d.chunks++;
		if (d.chunks <= slow && sleep_us)
			usleep((useconds_t)sleep_us);
	}
	return d;
}

static struct ferry_response *stream_get(const char *url, int want)
{
	struct ferry_request rq = { .url = url, .stream = true };
	struct ferry_response *r;
	size_t n = 1;
	int rc = ferry_session_request(st.s, &rq, &r);

	st_hold(r);
	cr_assert_eq(rc, want, "%s: %d %s (%s)", url, rc,
		     rc < 0 ? ferry_strerrorname(rc) : "", ferry_response_detail(r));
	cr_assert_not_null(ferry_response_stream(r));
	cr_assert_null(ferry_response_body(r, &n), "stream mode has no body");
	cr_assert_eq(n, 0);
	return r;
}

Test(session_stream, body_of_16m_checksummed)
{
	struct ferry_response *r;
	struct drained d;
	size_t size;
	uint64_t fnv;

	st_nginx();
	st_session(NULL);
	cr_assert_eq(fx_manifest_get(&st.ngx, "16m.bin", &size, &fnv), 0);
	r = stream_get(st_url(st.base, "/16m.bin"), 200);
	cr_assert_str_eq(ferry_response_reason(r), "OK");
	cr_assert_str_eq(ferry_response_header(r, "content-length", NULL),
			 "16777216");
	d = drain(ferry_response_stream(r), false, 0, 0, -1);
	cr_assert_eq(d.rc, 0, "stream ended with %s", ferry_strerrorname(d.rc));
	cr_assert_eq(d.bytes, size, "%llu bytes", (unsigned long long)d.bytes);
	cr_assert_eq(d.fnv, fnv, "checksum differs");
	cr_assert_gt(d.chunks, 1);
	/* The end stays the end. */
	{
		struct ferry_chunk c;

		cr_assert_eq(ferry_stream_next(ferry_response_stream(r), &c, 0), 0);
	}
	st_free(r);

	/* The connection went back to the pool in a usable state. */
	r = stream_get(st_url(st.base, "/1m.bin"), 200);
	cr_assert_eq(fx_manifest_get(&st.ngx, "1m.bin", &size, &fnv), 0);
	d = drain(ferry_response_stream(r), false, 0, 0, -1);
	cr_assert_eq(d.rc, 0);
	cr_assert_eq(d.bytes, size);
	cr_assert_eq(d.fnv, fnv);
	st_free(r);
}

Test(session_stream, lines_exactly_1000)
{
	struct ferry_response *r;
	struct ferry_lines l;
	const char *line;
	size_t len;
	int rc, n = 0;

	st_nginx();
	if (!st_have_echo())
		cr_skip_test("nginx echo module missing");
	st_session(NULL);
	r = stream_get(st_url(st.base, "/lines"), 200);
	ferry_lines_init(&l, ferry_response_stream(r), 0);
	while ((rc = ferry_lines_next(&l, &line, &len, 10 * ST_SEC)) == 1) {
		char want[32];

		snprintf(want, sizeof(want), "line %04d abcdefghij", n + 1);
		cr_assert_eq(len, strlen(want), "line %d: %zu bytes", n + 1, len);
		cr_assert_eq(memcmp(line, want, len), 0, "line %d: %.*s", n + 1,
			     (int)len, line);
		n++;
	}
	cr_assert_eq(rc, 0, "ended with %s", ferry_strerrorname(rc));
	cr_assert_eq(n, 1000);
	cr_assert_eq(ferry_lines_next(&l, &line, &len, 0), 0);
	ferry_lines_free(&l);
	st_free(r);

	/* /chunked, five chunks of one line each, as one text. */
	r = stream_get(st_url(st.base, "/chunked"), 200);
	{
		struct ferry_stream *s = ferry_response_stream(r);
		struct ferry_chunk c;
		char all[64];
		size_t at = 0;

		while ((rc = ferry_stream_next(s, &c, 10 * ST_SEC)) == 1) {
			cr_assert_leq(at + c.len, sizeof(all) - 1);
			memcpy(all + at, c.data, c.len);
			at += c.len;
		}
		cr_assert_eq(rc, 0);
		all[at] = '\0';
		cr_assert_str_eq(all, "chunk 1\nchunk 2\nchunk 3\nchunk 4\nchunk 5\n");
	}
	st_free(r);
}

/* The capacity a stream gets: half the client's receive ring unless the
 * request says, never below 16; and the counters come out exact. */
static unsigned stream_capacity_of(struct ferry_session *s, const char *url,
				   unsigned asked)
{
	struct ferry_request rq = { .url = url, .stream = true,
				    .stream_capacity = asked };
	struct ferry_stream_stats ss;
	struct ferry_response *r;
	struct drained d;
	int rc = ferry_session_request(s, &rq, &r);

	cr_assert_eq(rc, 200, "%s: %d (%s)", url, rc, ferry_response_detail(r));
	d = drain(ferry_response_stream(r), false, 0, 0, -1);
	cr_assert_eq(d.rc, 0);
	cr_assert_eq(d.bytes, 1u << 20);
	ferry_stream_stats(ferry_response_stream(r), &ss);
	cr_assert_eq(ss.pushed, (uint64_t)d.chunks, "pushed %llu, read %ld",
		     (unsigned long long)ss.pushed, d.chunks);
	cr_assert_leq(ss.max_queued, ss.capacity);
	cr_assert_eq(ss.low_water, ss.capacity / 2);
	ferry_response_free(r);
	return ss.capacity;
}

Test(session_stream, default_capacity_is_half_the_ring)
{
	const struct ferry_http_client_opts small = { .recv_buf_count = 64 };
	const struct ferry_http_client_opts tiny = { .recv_buf_count = 8 };
	struct ferry_session *s2;
	const char *url;

	st_nginx();
	st_session(NULL);
	url = st_url(st.base, "/1m.bin");
	cr_assert_eq(stream_capacity_of(st.s, url, 0), 128, "default ring: 256");
	cr_assert_eq(stream_capacity_of(st.s, url, 8), 8, "asked for");
	cr_assert_eq(ferry_session_create(st.r, &small, &s2), 0);
	cr_assert_eq(stream_capacity_of(s2, url, 0), 32);
	ferry_session_destroy(s2);
	cr_assert_eq(ferry_session_create(st.r, &tiny, &s2), 0);
	cr_assert_eq(stream_capacity_of(s2, url, 0), 16, "never below 16");
	ferry_session_destroy(s2);
}

/* ------------------------------------------------------------------ */
/* Backpressure                                                          */

/* Sanitizers make every byte of these bodies cost (TSan's shadow of the
 * copies above all): half the size there. Still several times what the
 * kernel's buffers and the receive ring can absorb (about 4 MiB). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BIG (32u << 20)
#define BIG_ARG "--size=33554432"
#else
#define BIG (64u << 20)
#define BIG_ARG "--size=67108864"
#endif

/*
 * A 64 MiB body (32 MiB under sanitizers) sent by misbehave.py as fast as loopback goes, read by a
 * consumer that first stalls, then sleeps between chunks. If the client
 * kept reading into memory of its own while the consumer dawdles, RSS
 * would grow by about the body size during the stall; with backpressure
 * it grows by at most the receive buffer ring (4 MiB by default).
 *
 * Later, while the consumer reads slowly, the client does allocate: what
 * a paused connection receives before its recv stops is copied out of the
 * ring into "spills" (http/internal.h), one per receive buffer, and up to
 * stream_capacity chunks may be queued. That is bounded by the options,
 * not by the body (a few MiB here, for 64 MiB and 256 MiB bodies alike):
 * checked against a quarter of the body, in plain builds only (ASan's
 * quarantine and TSan's shadow count in RSS; under TSan the stall is not
 * measured either).
 */
Test(session_stream, slow_consumer_memory_stays_flat, .timeout = 90)
{
	struct ferry_response *r;
	struct ferry_stream *s;
	struct ferry_chunk c;
	struct drained d;
	long rss0, stall_peak = 0, peak = 0;

	st_misbehave("close-delimited", BIG_ARG);
	st_session(NULL);
	/* Warm up what every request allocates once. */
	r = stream_get(st_url(st.badbase, "/warm"), 200);
	d = drain(ferry_response_stream(r), true, 0, 0, 8);
	st_free(r);

	rss0 = st_rss();
	r = stream_get(st_url(st.badbase, "/big"), 200);
	s = ferry_response_stream(r);
	cr_assert_eq(ferry_stream_next(s, &c, 10 * ST_SEC), 1);
	cr_assert_eq(st_pattern_check(c.data, c.len, 0), -1);
	d.bytes = c.len;
	/* Stall: the server could push the whole body in this time. */
	for (int i = 0; i < 10; i++) {
		bt_sleep_ms(50);
		if (st_rss() - rss0 > stall_peak)
			stall_peak = st_rss() - rss0;
	}
#if !defined(__SANITIZE_THREAD__)
	/*
	 * What a stall may cost, by design: the receive ring's pages touched
	 * for the first time (the stream holds up to half of them: its
	 * default capacity), plus at most one ring's worth of bytes the
	 * kernel had delivered when the request paused, copied aside (the
	 * recv stops then), plus allocator slack. Client defaults: 256
	 * buffers of 16 KiB. A client that kept reading would hold the body.
	 */
	long ring = 256l * 16384;
	long bound = 2 * ring + (2l << 20);

	cr_assert_lt(bound, (long)BIG / 2);
	cr_assert_lt(stall_peak, bound, "RSS grew by %ld KiB while the "
		     "consumer of a %u MiB body stalled (bound %ld KiB)",
		     stall_peak >> 10, BIG >> 20, bound >> 10);
#endif
	/* Then slowly: a millisecond per chunk for a while. */
	for (int i = 0; i < bt_scaled(200); i++) {
		int rc = ferry_stream_next(s, &c, 10 * ST_SEC);

		cr_assert_eq(rc, 1, "chunk %d: %s", i, ferry_strerrorname(rc));
		cr_assert_eq(st_pattern_check(c.data, c.len, d.bytes), -1,
			     "at %llu", (unsigned long long)d.bytes);
		d.bytes += c.len;
		usleep(1000);
		if ((i & 15) == 0 && st_rss() - rss0 > peak)
			peak = st_rss() - rss0;
	}
	/* And the rest at full speed: still every byte, in order. */
	{
		uint64_t before = d.bytes;
		struct drained rest = { .bad_at = -1 };

		while ((rest.rc = ferry_stream_next(s, &c, 10 * ST_SEC)) == 1) {
			ssize_t at = st_pattern_check(c.data, c.len, d.bytes);

			if (at >= 0 && rest.bad_at < 0)
				rest.bad_at = (int64_t)(d.bytes + (uint64_t)at);
			d.bytes += c.len;
			if ((++rest.chunks & 255) == 0 && st_rss() - rss0 > peak)
				peak = st_rss() - rss0;
		}
		cr_assert_eq(rest.rc, 0, "ended with %s", ferry_strerrorname(rest.rc));
		cr_assert_eq(rest.bad_at, -1, "wrong byte at %lld",
			     (long long)rest.bad_at);
		cr_assert_gt(d.bytes, before);
	}
	cr_assert_eq(d.bytes, BIG, "%llu bytes", (unsigned long long)d.bytes);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	cr_assert_lt(peak, (long)BIG / 4, "RSS grew by %ld KiB while a slow "
		     "consumer read a %u MiB body", peak >> 10, BIG >> 20);
#endif
	st_free(r);
}

/*
 * The same seen from the server: while the consumer stalls, the client
 * stops reading, the kernel's buffers fill and the server's writes block.
 * Without backpressure the whole body would be sent during the stall.
 */
Test(session_stream, slow_consumer_makes_the_server_wait, .timeout = 90)
{
	struct st_srv srv;
	struct ferry_response *r;
	struct ferry_stream *s;
	struct ferry_chunk c;
	uint64_t got = 0, sent_stalled;
	char url[64];
	int rc;

	st_srv_start(&srv, NULL, BIG);
	st_session(NULL);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/big", srv.port);
	r = stream_get(url, 200);
	s = ferry_response_stream(r);
	cr_assert_eq(ferry_stream_next(s, &c, 10 * ST_SEC), 1);
	got = c.len;
	/* Wait (bounded) until the server stops: its count stays put for
	 * 200 ms. Not a fixed sleep: a loaded machine may take longer to
	 * fill the socket buffers. A server that never stops fails below. */
	sent_stalled = atomic_load(&srv.sent);
	for (int64_t t0 = bt_now(); bt_now() - t0 < 20 * ST_SEC;) {
		bt_sleep_ms(200);
		if (atomic_load(&srv.sent) == sent_stalled)
			break;
		sent_stalled = atomic_load(&srv.sent);
	}
	/* Still stuck where it was: the server waits for us. */
	cr_assert_lt(atomic_load(&srv.sent), BIG / 2,
		     "server sent %llu of %u bytes to a stalled consumer",
		     (unsigned long long)atomic_load(&srv.sent), BIG);
	cr_assert_eq(atomic_load(&srv.finished), 0);
	cr_assert_eq(atomic_load(&srv.sent), sent_stalled,
		     "the server kept sending to a stalled consumer");
	while ((rc = ferry_stream_next(s, &c, 10 * ST_SEC)) == 1) {
		cr_assert_eq(st_pattern_check(c.data, c.len, got), -1,
			     "at %llu", (unsigned long long)got);
		got += c.len;
	}
	cr_assert_eq(rc, 0, "ended with %s", ferry_strerrorname(rc));
	cr_assert_eq(got, BIG);
	st_free(r);
	ferry_session_destroy(st.s);
	st.s = NULL;
	/* Counted after the join: the client may read the last byte before
	 * the server thread has added its last write to srv.sent. */
	st_srv_stop(&srv);
	cr_assert_eq(atomic_load(&srv.sent), BIG);
	cr_assert_eq(atomic_load(&srv.finished), 1);
}

/* ------------------------------------------------------------------ */
/* Freeing a response whose body is still arriving                       */

Test(session_stream, free_mid_body_then_go_on)
{
	struct ferry_response *r;
	struct drained d;
	int64_t t0;
	size_t size;
	uint64_t fnv;

	st_nginx();
	st_session(NULL);

	/* A few chunks of 16 MiB, then free: the rest is still coming. */
	for (int i = 0; i < 3; i++) {
		r = stream_get(st_url(st.base, "/16m.bin"), 200);
		d = drain(ferry_response_stream(r), false, 0, 0, 3 + i);
		cr_assert_eq(d.rc, 1);
		t0 = bt_now();
		st_free(r);
		BT_ASSERT_ELAPSED(t0, 0, 10000);	/* upper: a hang guard */
	}
	/* Never read at all. */
	r = stream_get(st_url(st.base, "/16m.bin"), 200);
	st_free(r);

	/* The session is unharmed: a whole-body GET still works. */
	cr_assert_eq(fx_manifest_get(&st.ngx, "1m.bin", &size, &fnv), 0);
	{
		const void *body;
		size_t n;
		int rc = ferry_session_get(st.s, st_url(st.base, "/1m.bin"), &r);

		cr_assert_eq(rc, 200, "%d (%s)", rc, ferry_response_detail(r));
		body = ferry_response_body(r, &n);
		cr_assert_eq(n, size);
		cr_assert_eq(st_fnv(FX_FNV1A64_INIT, body, n), fnv);
		st_free(r);
	}
}

/* Stream mode returns at the head, long before a slow body ends. */
Test(session_stream, head_first_then_free_while_trickling)
{
	struct ferry_response *r;
	struct drained d;
	int64_t t0;

	/* 1 MiB, 16 KiB every 500 ms: at least 32 s for the body, so the
	 * 10 s bounds below still tell the head from the end of the body,
	 * however slow a loaded machine is. */
	st_misbehave("slow-body", "--delay=0.5");
	st_session(NULL);
	t0 = bt_now();
	r = stream_get(st_url(st.badbase, "/slow"), 200);
	BT_ASSERT_ELAPSED(t0, 0, 10000);
	cr_assert_str_eq(ferry_response_header(r, "Content-Length", NULL),
			 "1048576");
	d = drain(ferry_response_stream(r), true, 0, 0, 4);
	cr_assert_eq(d.rc, 1);
	cr_assert_eq(d.bad_at, -1);
	cr_assert_lt(d.bytes, 1048576);
	t0 = bt_now();
	st_free(r);
	BT_ASSERT_ELAPSED(t0, 0, 10000);

	/* A full one (16 KiB every 10 ms this time), read with sleeps, all
	 * in order. */
	st_misbehave("slow-body", NULL);
	r = stream_get(st_url(st.badbase, "/slow"), 200);
	d = drain(ferry_response_stream(r), true, 20, 2000, -1);
	cr_assert_eq(d.rc, 0, "%s", ferry_strerrorname(d.rc));
	cr_assert_eq(d.bad_at, -1);
	cr_assert_eq(d.bytes, 1048576);
	st_free(r);
}
