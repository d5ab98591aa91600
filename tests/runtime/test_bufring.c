/*
 * test_bufring.c - provided-buffer rings and multishot recv: many messages,
 * exhaustion (pause, then resume in order once buffers come back), several
 * recvs on one ring, several rings, and cancellation while armed or parked;
 * receive bundles (one receive filling several buffers), with and without.
 */
#include "util.h"

#include <pthread.h>

#include "test_hooks.h"	/* ferry__bufring_bundles: did a bundle happen */

/*
 * A sink collects the byte stream a multishot recv delivers. With ->hold
 * set it keeps every buffer (to starve the ring), else it recycles at once.
 */
struct sink {
	struct ferry_op op;
	struct ferry_bufring *br;
	unsigned count;		/* buffers in br */
	unsigned char *data;
	size_t len, cap;
	unsigned held[64];
	int nheld;
	unsigned seen_bid[64];	/* each completion's buffer and length */
	int seen_len[64];
	bool hold;
	int nmsg;		/* completions carrying data */
	struct ferry_loop *cancel_loop;	/* set: cancel at message cancel_at */
	int cancel_at;
	int cancel_rc;
	int nfinal;
	int last_res;
	int errors;
	char errmsg[128];
};

static void sink_err(struct sink *s, const char *what, int v)
{
	if (!s->errors++)
		snprintf(s->errmsg, sizeof(s->errmsg), "%s (%d)", what, v);
}

static void sink_fn(struct ferry_op *op, int res, unsigned flags)
{
	struct sink *s = (struct sink *)op;
	unsigned bid;

	if (!(flags & FERRY_CQE_MORE)) {
		s->nfinal++;
		s->last_res = res;
	}
	if (res < 0) {
		if (flags & FERRY_CQE_MORE)
			sink_err(s, "error with MORE", res);
		if (res == -ENOBUFS)
			sink_err(s, "ENOBUFS leaked to the owner", res);
		return;
	}
	if (res == 0) {
		if (flags & FERRY_CQE_MORE)
			sink_err(s, "EOF with MORE", 0);
		return;
	}
	if (!(flags & FERRY_CQE_BUFFER)) {
		sink_err(s, "data without FERRY_CQE_BUFFER", res);
		return;
	}
	if (!(flags & FERRY_CQE_MORE))
		sink_err(s, "data completion ended the multishot", res);
	bid = ferry_cqe_bid(flags);
	if (bid >= s->count) {
		sink_err(s, "bid out of range", (int)bid);
		return;
	}
	if ((unsigned)res > ferry_bufring_size(s->br)) {
		sink_err(s, "res larger than a buffer", res);
		return;
	}
	for (int i = 0; i < s->nheld; i++)
		if (s->held[i] == bid)
			sink_err(s, "buffer handed out twice", (int)bid);
	if (s->len + (size_t)res > s->cap) {
		sink_err(s, "more data than sent", res);
		return;
	}
	memcpy(s->data + s->len, ferry_bufring_buf(s->br, bid), (size_t)res);
	s->len += (size_t)res;
	if (s->nmsg < 64) {
		s->seen_bid[s->nmsg] = bid;
		s->seen_len[s->nmsg] = res;
	}
	s->nmsg++;
	if (s->hold && s->nheld < 64)
		s->held[s->nheld++] = bid;
	else
		ferry_bufring_recycle(s->br, bid);
	if (s->cancel_loop && s->nmsg == s->cancel_at)
		s->cancel_rc = ferry_op_cancel(s->cancel_loop, &s->op);
}

static void sink_init(struct sink *s, struct ferry_bufring *br, unsigned count,
		      size_t cap)
{
	memset(s, 0, sizeof(*s));
	s->op.fn = sink_fn;
	s->br = br;
	s->count = count;
	s->cap = cap;
	s->data = malloc(cap);
	cr_assert_not_null(s->data);
}

/* Give back every held buffer, in a scrambled order. */
static void sink_release(struct sink *s)
{
	for (int i = s->nheld - 1; i >= 0; i -= 2)
		ferry_bufring_recycle(s->br, s->held[i]);
	for (int i = s->nheld % 2 ? 1 : 0; i < s->nheld; i += 2)
		ferry_bufring_recycle(s->br, s->held[i]);
	s->nheld = 0;
}

/* What a stuck sink looks like, for failure messages. */
#define SINK_FMT "len %zu/%zu nmsg %d nheld %d nfinal %d last %d avail %u busy %d err %s"
#define SINK_ARGS(s) (s).len, (s).cap, (s).nmsg, (s).nheld, (s).nfinal,	\
	(s).last_res, ferry_bufring_available((s).br), ferry_op_busy(&(s).op),	\
	(s).errmsg

static void assert_pattern(const unsigned char *p, size_t len, size_t base)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != rt_pattern(base + i))
			cr_assert_fail("stream differs at byte %zu: %u != %u", i,
				       p[i], rt_pattern(base + i));
}

/* A sender thread: @nmsg messages, sizes from @seed, then close. */
struct sender {
	pthread_t th;
	int fd;
	int nmsg;
	size_t maxmsg;
	size_t base;		/* pattern offset, to tell streams apart */
	size_t total;		/* computed by sender_plan */
	uint32_t seed;
};

static size_t sender_plan(struct sender *s)
{
	uint32_t seed = s->seed;

	s->total = 0;
	for (int i = 0; i < s->nmsg; i++)
		s->total += 1 + rt_rand(&seed) % s->maxmsg;
	return s->total;
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	unsigned char *buf = malloc(s->maxmsg);
	uint32_t seed = s->seed;
	size_t off = 0;

	for (int i = 0; i < s->nmsg; i++) {
		size_t n = 1 + rt_rand(&seed) % s->maxmsg;
		size_t done = 0;

		for (size_t j = 0; j < n; j++)
			buf[j] = rt_pattern(s->base + off + j);
		while (done < n) {
			ssize_t w = write(s->fd, buf + done, n - done);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				goto out;
			done += (size_t)w;
		}
		off += n;
	}
out:
	free(buf);
	close(s->fd);
	return NULL;
}

static void sender_start(struct sender *s)
{
	cr_assert_eq(pthread_create(&s->th, NULL, sender_main, s), 0);
}

/* ------------------------------------------------------------------ */

Test(bufring, create_validates_and_exposes_buffers, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct ferry_bufring *br = NULL;
	uintptr_t addrs[64];

	cr_assert_eq(ferry_bufring_create(loop, 0, 4096, &br), -EINVAL);
	cr_assert_eq(ferry_bufring_create(loop, 3, 4096, &br), -EINVAL);
	cr_assert_eq(ferry_bufring_create(loop, 65536, 64, &br), -EINVAL);
	cr_assert_eq(ferry_bufring_create(loop, 8, 0, &br), -EINVAL);

	cr_assert_eq(ferry_bufring_create(loop, 64, 1000, &br), 0);
	cr_assert_not_null(br);
	cr_assert_eq(ferry_bufring_size(br), 1000);
	cr_assert_eq(ferry_bufring_available(br), 64);
	for (unsigned i = 0; i < 64; i++) {
		unsigned char *p = ferry_bufring_buf(br, i);

		cr_assert_not_null(p);
		memset(p, (int)i, 1000);	/* writable end to end (ASan) */
		addrs[i] = (uintptr_t)p;
	}
	for (unsigned i = 0; i < 64; i++)
		for (unsigned j = 0; j < 64; j++)
			if (i != j && addrs[i] < addrs[j])
				cr_assert_geq(addrs[j] - addrs[i], 1000,
					      "buffers %u and %u overlap", i, j);
	for (unsigned i = 0; i < 64; i++)
		cr_assert_eq(*(unsigned char *)ferry_bufring_buf(br, i), i);
	ferry_bufring_destroy(br);

	/* The largest ring allowed, and one of a single buffer. */
	cr_assert_eq(ferry_bufring_create(loop, 32768, 16, &br), 0);
	cr_assert_eq(ferry_bufring_available(br), 32768);
	cr_assert_eq(ferry_bufring_create(loop, 1, 16, &br), 0);
	cr_assert_eq(ferry_bufring_available(br), 1);
	/* Both are left for ferry_loop_destroy to free (ASan checks). */
	ferry_loop_destroy(loop);
}

static void many_messages(int rfd, int wfd, unsigned count, unsigned size,
			  int nmsg, size_t maxmsg)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct ferry_bufring *br;
	struct sender snd = { .fd = wfd, .nmsg = nmsg, .maxmsg = maxmsg,
			      .seed = 0x1234567 };
	struct sink s;
	size_t total = sender_plan(&snd);

	cr_assert_eq(ferry_bufring_create(loop, count, size, &br), 0);
	sink_init(&s, br, count, total);
	cr_assert_eq(ferry_op_recv_multishot(loop, &s.op, rfd, br), 0);
	cr_assert_eq(s.nmsg, 0);
	sender_start(&snd);
	RT_RUN_UNTIL_MSG(loop, s.nfinal > 0 || s.errors, 20000, SINK_FMT, SINK_ARGS(s));
	pthread_join(snd.th, NULL);
	cr_assert_eq(s.errors, 0, "%s", s.errmsg);
	cr_assert_eq(s.last_res, 0, "ended with %s, not EOF",
		     ferry_strerrorname(s.last_res));
	cr_assert_eq(s.len, total, "received %zu of %zu bytes", s.len, total);
	assert_pattern(s.data, s.len, 0);
	cr_assert_gt(s.nmsg, (int)(total / size) - 1);
	cr_assert(!ferry_op_busy(&s.op));
	cr_assert_eq(ferry_bufring_available(br), count,
		     "buffers lost: %u of %u back", ferry_bufring_available(br),
		     count);
	free(s.data);
	close(rfd);
	ferry_loop_destroy(loop);
}

Test(bufring, multishot_recv_many_messages_tcp, .timeout = 30)
{
	int a, b;

	rt_tcp_pair(&a, &b);
	many_messages(a, b, 64, 4096, 2000, 6000);
}

Test(bufring, multishot_recv_many_messages_unix, .timeout = 30)
{
	int sv[2];

	rt_socketpair(sv);
	many_messages(sv[0], sv[1], 16, 512, 3000, 700);
}

Test(bufring, exhaustion_pauses_then_resumes_in_order, .timeout = 30)
{
	enum { COUNT = 4, SIZE = 1024 };
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct ferry_bufring *br;
	int sv[2];
	struct sender snd = { .nmsg = 1000, .maxmsg = 400, .seed = 42 };
	struct sink s;
	size_t total;
	int rounds = 0;

	rt_socketpair(sv);
	snd.fd = sv[1];
	total = sender_plan(&snd);	/* ~200 KB: far more than 4 KB of ring */
	cr_assert_eq(ferry_bufring_create(loop, COUNT, SIZE, &br), 0);
	sink_init(&s, br, COUNT, total);
	s.hold = true;
	cr_assert_eq(ferry_op_recv_multishot(loop, &s.op, sv[0], br), 0);
	sender_start(&snd);

	/* Starve the ring: four buffers in hand, none given back. */
	RT_RUN_UNTIL(loop, s.nheld == COUNT || s.errors, 5000);
	rt_run_for(loop, 100);
	cr_assert_eq(s.errors, 0, "%s", s.errmsg);
	cr_assert_eq(s.nheld, COUNT, "more completions than buffers");
	cr_assert_eq(s.nfinal, 0, "the recv ended (%s) instead of pausing",
		     ferry_strerrorname(s.last_res));
	cr_assert_eq(ferry_bufring_available(br), 0);
	cr_assert(ferry_op_busy(&s.op), "a paused recv must stay busy");
	cr_assert_lt(s.len, total);

	/* One buffer back: exactly one more completion, then paused again. */
	{
		int before = s.nmsg;

		ferry_bufring_recycle(br, s.held[0]);
		memmove(s.held, s.held + 1, sizeof(s.held[0]) * (COUNT - 1));
		s.nheld--;
		RT_RUN_UNTIL(loop, s.nheld == COUNT || s.errors, 5000);
		rt_run_for(loop, 30);
		cr_assert_eq(s.nmsg, before + 1);
		cr_assert_eq(s.nfinal, 0);
		cr_assert_eq(ferry_bufring_available(br), 0);
	}

	/* Then give everything back each time the ring runs dry. */
	while (s.nfinal == 0 && !s.errors) {
		sink_release(&s);
		rounds++;
		RT_RUN_UNTIL_MSG(loop, s.nheld == COUNT || s.nfinal || s.errors,
				 5000, SINK_FMT, SINK_ARGS(s));
		if (s.nheld == COUNT && s.nfinal == 0)
			cr_assert_eq(ferry_bufring_available(br), 0);
	}
	pthread_join(snd.th, NULL);
	cr_assert_eq(s.errors, 0, "%s", s.errmsg);
	cr_assert_eq(s.last_res, 0, "ended with %s", ferry_strerrorname(s.last_res));
	cr_assert_eq(s.len, total, "received %zu of %zu bytes", s.len, total);
	assert_pattern(s.data, s.len, 0);
	cr_assert_gt(rounds, 10, "the ring was not exhausted repeatedly");
	sink_release(&s);
	cr_assert_eq(ferry_bufring_available(br), COUNT);
	cr_assert(!ferry_op_busy(&s.op));
	free(s.data);
	close(sv[0]);
	ferry_loop_destroy(loop);
}

Test(bufring, two_recvs_share_a_starved_ring, .timeout = 30)
{
	enum { COUNT = 4, SIZE = 128 };
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct ferry_bufring *br;
	struct sender snd[2] = {
		{ .nmsg = 300, .maxmsg = 100, .seed = 7, .base = 0 },
		{ .nmsg = 300, .maxmsg = 100, .seed = 9, .base = 100000 },
	};
	struct sink s[2];
	int sv[2][2];

	cr_assert_eq(ferry_bufring_create(loop, COUNT, SIZE, &br), 0);
	for (int i = 0; i < 2; i++) {
		rt_socketpair(sv[i]);
		snd[i].fd = sv[i][1];
		sink_init(&s[i], br, COUNT, sender_plan(&snd[i]));
		s[i].hold = true;
		cr_assert_eq(ferry_op_recv_multishot(loop, &s[i].op, sv[i][0], br), 0);
	}
	sender_start(&snd[0]);
	sender_start(&snd[1]);
	while (s[0].nfinal == 0 || s[1].nfinal == 0) {
		RT_RUN_UNTIL_MSG(loop, s[0].nheld + s[1].nheld == COUNT ||
				 (s[0].nfinal && s[1].nfinal) || s[0].errors ||
				 s[1].errors, 5000, SINK_FMT " / " SINK_FMT,
				 SINK_ARGS(s[0]), SINK_ARGS(s[1]));
		cr_assert_eq(s[0].errors + s[1].errors, 0, "%s%s", s[0].errmsg,
			     s[1].errmsg);
		if (s[0].nheld + s[1].nheld == COUNT)
			cr_assert_eq(ferry_bufring_available(br), 0);
		sink_release(&s[0]);
		sink_release(&s[1]);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(snd[i].th, NULL);
		cr_assert_eq(s[i].last_res, 0, "recv %d ended with %s", i,
			     ferry_strerrorname(s[i].last_res));
		cr_assert_eq(s[i].len, snd[i].total);
		assert_pattern(s[i].data, s[i].len, snd[i].base);
		free(s[i].data);
		close(sv[i][0]);
	}
	cr_assert_eq(ferry_bufring_available(br), COUNT);
	ferry_loop_destroy(loop);
}

Test(bufring, two_rings_do_not_mix, .timeout = 20)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct ferry_bufring *br[2];
	unsigned count[2] = { 8, 16 }, size[2] = { 64, 200 };
	struct sender snd[2] = {
		{ .nmsg = 200, .maxmsg = 150, .seed = 11, .base = 0 },
		{ .nmsg = 200, .maxmsg = 150, .seed = 13, .base = 555555 },
	};
	struct sink s[2];
	int sv[2][2];

	for (int i = 0; i < 2; i++) {
		cr_assert_eq(ferry_bufring_create(loop, count[i], size[i], &br[i]), 0);
		rt_socketpair(sv[i]);
		snd[i].fd = sv[i][1];
		sink_init(&s[i], br[i], count[i], sender_plan(&snd[i]));
		cr_assert_eq(ferry_op_recv_multishot(loop, &s[i].op, sv[i][0],
						     br[i]), 0);
	}
	sender_start(&snd[0]);
	sender_start(&snd[1]);
	RT_RUN_UNTIL_MSG(loop, (s[0].nfinal && s[1].nfinal) || s[0].errors ||
			 s[1].errors, 10000, SINK_FMT " / " SINK_FMT,
			 SINK_ARGS(s[0]), SINK_ARGS(s[1]));
	for (int i = 0; i < 2; i++) {
		pthread_join(snd[i].th, NULL);
		cr_assert_eq(s[i].errors, 0, "recv %d: %s", i, s[i].errmsg);
		cr_assert_eq(s[i].len, snd[i].total);
		/* Content proves each recv drew from its own ring. */
		assert_pattern(s[i].data, s[i].len, snd[i].base);
		cr_assert_eq(ferry_bufring_available(br[i]), count[i]);
		free(s[i].data);
		close(sv[i][0]);
	}
	ferry_bufring_destroy(br[0]);	/* one freed early, one by the loop */
	ferry_loop_destroy(loop);
}

Test(bufring, cancel_armed_multishot_recv, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct ferry_bufring *br;
	struct sink s;
	int sv[2];

	rt_socketpair(sv);
	cr_assert_eq(ferry_bufring_create(loop, 8, 512, &br), 0);
	sink_init(&s, br, 8, 4096);
	cr_assert_eq(ferry_op_recv_multishot(loop, &s.op, sv[0], br), 0);

	/* Some traffic first, so the cancel hits a recv that has produced. */
	rt_write_all(sv[1], "0123456789", 10);
	RT_RUN_UNTIL(loop, s.len == 10, 2000);
	cr_assert_eq(s.nfinal, 0);

	cr_assert_eq(ferry_op_cancel(loop, &s.op), 0);
	RT_RUN_UNTIL(loop, s.nfinal == 1, 2000);
	cr_assert_eq(s.last_res, -ECANCELED, "got %s",
		     ferry_strerrorname(s.last_res));
	cr_assert(!ferry_op_busy(&s.op));
	cr_assert_eq(s.errors, 0, "%s", s.errmsg);

	/* Nothing more: later data stays in the socket. */
	rt_write_all(sv[1], "after", 5);
	rt_run_for(loop, 30);
	cr_assert_eq(s.nfinal, 1, "-ECANCELED delivered twice");
	cr_assert_eq(s.len, 10);
	cr_assert_eq(ferry_bufring_available(br), 8);
	cr_assert_eq(ferry_op_cancel(loop, &s.op), -ENOENT);
	free(s.data);
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

Test(bufring, cancel_parked_multishot_recv, .timeout = 10)
{
	enum { COUNT = 4, SIZE = 64 };
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct ferry_bufring *br;
	unsigned char big[2048];
	struct sink s;
	char rest[4096];
	int sv[2];
	int nmsg;

	rt_socketpair(sv);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = rt_pattern(i);
	rt_write_all(sv[1], big, sizeof(big));
	cr_assert_eq(ferry_bufring_create(loop, COUNT, SIZE, &br), 0);
	sink_init(&s, br, COUNT, sizeof(big));
	s.hold = true;
	cr_assert_eq(ferry_op_recv_multishot(loop, &s.op, sv[0], br), 0);
	RT_RUN_UNTIL(loop, s.nheld == COUNT, 2000);
	rt_run_for(loop, 30);	/* let it hit ENOBUFS and park */
	cr_assert_eq(s.nfinal, 0);
	cr_assert_eq(ferry_bufring_available(br), 0);
	cr_assert(ferry_op_busy(&s.op));
	nmsg = s.nmsg;

	cr_assert_eq(ferry_op_cancel(loop, &s.op), 0);
	cr_assert_eq(s.nfinal, 0, "completion ran inside ferry_op_cancel");
	RT_RUN_UNTIL(loop, s.nfinal == 1, 2000);
	cr_assert_eq(s.last_res, -ECANCELED, "got %s",
		     ferry_strerrorname(s.last_res));
	cr_assert(!ferry_op_busy(&s.op));

	/* Buffers coming back must not wake the cancelled recv. */
	sink_release(&s);
	rt_run_for(loop, 30);
	cr_assert_eq(s.nfinal, 1);
	cr_assert_eq(s.nmsg, nmsg, "a cancelled recv delivered data");
	cr_assert_eq(s.errors, 0, "%s", s.errmsg);
	cr_assert_eq(ferry_bufring_available(br), COUNT);
	cr_assert_eq(ferry_op_cancel(loop, &s.op), -ENOENT);

	/* The rest of the stream is still in the socket, in order. */
	{
		ssize_t n = recv(sv[0], rest, sizeof(rest), MSG_DONTWAIT);

		cr_assert_eq((size_t)n + s.len, sizeof(big));
		cr_assert_arr_eq(s.data, big, s.len);
		cr_assert_arr_eq(rest, big + s.len, (size_t)n);
	}

	/* And the op can be started again on the same ring. */
	s.hold = false;
	s.nfinal = 0;
	rt_write_all(sv[1], "again", 5);
	s.len = 0;
	cr_assert_eq(ferry_op_recv_multishot(loop, &s.op, sv[0], br), 0);
	RT_RUN_UNTIL(loop, s.len == 5, 2000);
	cr_assert_arr_eq(s.data, "again", 5);
	close(sv[1]);
	RT_RUN_UNTIL(loop, s.nfinal == 1, 2000);
	cr_assert_eq(s.last_res, 0);
	free(s.data);
	close(sv[0]);
	ferry_loop_destroy(loop);
}

Test(bufring, multishot_recv_eof_and_error, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct ferry_bufring *br;
	struct sink s;
	int a, b;

	cr_assert_eq(ferry_bufring_create(loop, 8, 256, &br), 0);

	/* Peer reset: the recv ends with the kernel's error. */
	rt_tcp_pair(&a, &b);
	sink_init(&s, br, 8, 256);
	cr_assert_eq(ferry_op_recv_multishot(loop, &s.op, a, br), 0);
	rt_turn(loop, 0);
	{
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(b);	/* RST */
	}
	RT_RUN_UNTIL(loop, s.nfinal == 1, 2000);
	cr_assert_eq(s.last_res, -ECONNRESET, "got %s",
		     ferry_strerrorname(s.last_res));
	cr_assert(!ferry_op_busy(&s.op));
	free(s.data);
	close(a);
	ferry_loop_destroy(loop);
}

struct recycle_post {
	struct ferry_post p;
	struct ferry_bufring *br;
	unsigned bid;
	int *ran;
	pid_t loop_tid;
	int *bad_thread;
};

static void recycle_post_fn(struct ferry_post *p)
{
	struct recycle_post *r = (struct recycle_post *)p;

	if (rt_gettid() != r->loop_tid)
		(*r->bad_thread)++;
	ferry_bufring_recycle(r->br, r->bid);
	(*r->ran)++;
}

struct recycler {
	struct ferry_loop *loop;
	struct recycle_post posts[4];
	int n;
};

static void *recycler_main(void *arg)
{
	struct recycler *rc = arg;

	for (int i = 0; i < rc->n; i++)
		ferry_loop_post(rc->loop, &rc->posts[i].p);
	return NULL;
}

Test(bufring, recycle_from_another_thread_via_post, .timeout = 10)
{
	/* A consumer on another thread hands buffers back by posting to the
	 * loop; the parked recv resumes. */
	enum { COUNT = 4, SIZE = 64 };
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct ferry_bufring *br;
	struct recycler rc = { .loop = loop };
	unsigned char big[1024];
	struct sink s;
	pthread_t th;
	int ran = 0, bad = 0;
	int sv[2];

	rt_socketpair(sv);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = rt_pattern(i);
	rt_write_all(sv[1], big, sizeof(big));
	cr_assert_eq(ferry_bufring_create(loop, COUNT, SIZE, &br), 0);
	sink_init(&s, br, COUNT, sizeof(big));
	s.hold = true;
	cr_assert_eq(ferry_op_recv_multishot(loop, &s.op, sv[0], br), 0);
	RT_RUN_UNTIL(loop, s.nheld == COUNT, 2000);
	rt_run_for(loop, 20);
	cr_assert_eq(s.nheld, COUNT);

	for (int i = 0; i < COUNT; i++)
		rc.posts[i] = (struct recycle_post){
			.p.fn = recycle_post_fn, .br = br, .bid = s.held[i],
			.ran = &ran, .loop_tid = rt_gettid(), .bad_thread = &bad,
		};
	rc.n = COUNT;
	s.nheld = 0;
	s.hold = false;		/* from now on recycle inline */
	cr_assert_eq(pthread_create(&th, NULL, recycler_main, &rc), 0);
	RT_RUN_UNTIL_MSG(loop, ran == COUNT && s.len == sizeof(big), 3000,
			 "ran %d " SINK_FMT, ran, SINK_ARGS(s));
	pthread_join(th, NULL);
	cr_assert_eq(bad, 0, "posted item ran off the loop thread");
	cr_assert_eq(s.errors, 0, "%s", s.errmsg);
	cr_assert_arr_eq(s.data, big, sizeof(big));
	close(sv[1]);
	RT_RUN_UNTIL(loop, s.nfinal == 1, 2000);
	cr_assert_eq(s.last_res, 0);
	cr_assert_eq(ferry_bufring_available(br), COUNT);
	free(s.data);
	close(sv[0]);
	ferry_loop_destroy(loop);
}

Test(bufring, cancel_from_callback_as_the_ring_runs_dry, .timeout = 10)
{
	/*
	 * The owner cancels from the completion that takes the last buffer;
	 * the kernel's -ENOBUFS for the same recv is usually in the same
	 * batch of CQEs. The owner must see -ECANCELED, never -ENOBUFS.
	 */
	enum { COUNT = 4, SIZE = 64 };
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct ferry_bufring *br;
	unsigned char big[2048];
	struct sink s;
	int sv[2];

	rt_socketpair(sv);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = rt_pattern(i);
	cr_assert_eq(ferry_bufring_create(loop, COUNT, SIZE, &br), 0);
	sink_init(&s, br, COUNT, sizeof(big));
	s.hold = true;
	s.cancel_loop = loop;
	s.cancel_at = COUNT;
	rt_write_all(sv[1], big, sizeof(big));
	cr_assert_eq(ferry_op_recv_multishot(loop, &s.op, sv[0], br), 0);
	RT_RUN_UNTIL_MSG(loop, s.nfinal == 1, 2000, SINK_FMT, SINK_ARGS(s));
	cr_assert_eq(s.cancel_rc, 0, "cancel: %s", ferry_strerrorname(s.cancel_rc));
	cr_assert_eq(s.last_res, -ECANCELED, "final completion %s",
		     ferry_strerrorname(s.last_res));
	cr_assert(!ferry_op_busy(&s.op));
	sink_release(&s);
	rt_run_for(loop, 20);
	cr_assert_eq(s.nfinal, 1);
	cr_assert_eq(s.nmsg, COUNT);
	cr_assert_arr_eq(s.data, big, s.len);
	free(s.data);
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}

Test(bufring, destroy_while_the_ring_runs_dry, .timeout = 10)
{
	/* Data lands after the recv was submitted but before any reap: the
	 * kernel's -ENOBUFS is still in the CQ when destroy starts. */
	enum { COUNT = 4, SIZE = 64 };
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct ferry_bufring *br;
	unsigned char big[2048];
	struct sink s;
	int sv[2];

	rt_socketpair(sv);
	memset(big, 'd', sizeof(big));
	cr_assert_eq(ferry_bufring_create(loop, COUNT, SIZE, &br), 0);
	sink_init(&s, br, COUNT, sizeof(big));
	s.hold = true;
	cr_assert_eq(ferry_op_recv_multishot(loop, &s.op, sv[0], br), 0);
	rt_turn(loop, 0);
	rt_write_all(sv[1], big, sizeof(big));
	usleep(10 * 1000);
	ferry_loop_destroy(loop);
	cr_assert_eq(s.nfinal, 1);
	cr_assert_eq(s.last_res, -ECANCELED, "final completion %s (%s)",
		     ferry_strerrorname(s.last_res), s.errmsg);
	free(s.data);
	close(sv[0]);
	close(sv[1]);
}

/* ------------------------------------------------------------------ */
/* Receive bundles (FERRY_FEAT_RECV_BUNDLE).                             */

/* A loop with receive bundles on (skip where the kernel has none) or
 * switched off with FERRY_DISABLE. */
static struct ferry_loop *bundle_loop(bool on)
{
	struct ferry_loop *loop;

	if (!on)
		setenv("FERRY_DISABLE", "recv_bundle", 1);
	loop = rt_loop_new(NULL);
	unsetenv("FERRY_DISABLE");
	if (!on) {
		cr_assert_eq(ferry_loop_features(loop) & FERRY_FEAT_RECV_BUNDLE, 0);
	} else if (!(ferry_loop_features(loop) & FERRY_FEAT_RECV_BUNDLE)) {
		ferry_loop_destroy(loop);
		cr_skip_test("no receive bundles here (io_uring before 6.10)");
	}
	return loop;
}

static void write_pattern(int fd, size_t base, size_t len)
{
	unsigned char *buf = malloc(len);

	cr_assert_not_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = rt_pattern(base + i);
	rt_write_all(fd, buf, len);
	free(buf);
}

/* Run until @s has @len bytes, then check them and the ring. */
#define SINK_UNTIL(loop, s, want)					\
	RT_RUN_UNTIL_MSG((loop), (s).len >= (want) || (s).errors ||	\
			 (s).nfinal, 5000, SINK_FMT, SINK_ARGS(s))

/*
 * 5000 bytes wait in the socket before the recv is armed: one receive
 * takes them all. With bundles that is one completion from the kernel
 * over five buffers; the owner sees five, in order, each buffer full but
 * the last, exactly as without bundles (five receives).
 */
static void queued_bytes(int rfd, int wfd, bool on)
{
	enum { COUNT = 16, SIZE = 1024, LEN = 5000 };
	static const int lens[] = { 1024, 1024, 1024, 1024, 904 };
	struct ferry_loop *loop = bundle_loop(on);
	struct ferry_bufring *br;
	struct sink s;

	cr_assert_eq(ferry_bufring_create(loop, COUNT, SIZE, &br), 0);
	sink_init(&s, br, COUNT, LEN);
	s.hold = true;		/* five different buffers, not one reused */
	write_pattern(wfd, 0, LEN);
	cr_assert_eq(ferry_op_recv_multishot(loop, &s.op, rfd, br), 0);
	SINK_UNTIL(loop, s, LEN);
	cr_assert_eq(s.errors, 0, "%s", s.errmsg);
	cr_assert_eq(s.nfinal, 0);
	cr_assert_eq(s.len, LEN);
	assert_pattern(s.data, s.len, 0);
	cr_assert_eq(s.nmsg, 5, "%d completions for 5 buffers", s.nmsg);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(s.seen_len[i], lens[i], "buffer %d holds %d bytes",
			     i, s.seen_len[i]);
		for (int j = 0; j < i; j++)
			cr_assert_neq(s.seen_bid[i], s.seen_bid[j]);
	}
	if (on)
		cr_assert_eq(ferry__bufring_bundles(br), 1,
			     "%u bundles for one receive",
			     ferry__bufring_bundles(br));
	else
		cr_assert_eq(ferry__bufring_bundles(br), 0);
	sink_release(&s);

	close(wfd);
	RT_RUN_UNTIL_MSG(loop, s.nfinal, 2000, SINK_FMT, SINK_ARGS(s));
	cr_assert_eq(s.last_res, 0, "ended with %s",
		     ferry_strerrorname(s.last_res));
	cr_assert_eq(ferry_bufring_available(br), COUNT);
	free(s.data);
	close(rfd);
	ferry_loop_destroy(loop);
}

Test(bufring, bundle_fills_several_buffers_unix, .timeout = 10)
{
	int sv[2];

	rt_socketpair(sv);
	queued_bytes(sv[0], sv[1], true);
}

Test(bufring, bundle_fills_several_buffers_tcp, .timeout = 10)
{
	int a, b;

	rt_tcp_pair(&a, &b);
	queued_bytes(a, b, true);
}

Test(bufring, no_bundle_one_buffer_per_receive, .timeout = 10)
{
	int sv[2];

	rt_socketpair(sv);
	queued_bytes(sv[0], sv[1], false);
}

/*
 * A bundle that runs over the ring's end, after buffers came back in
 * another order than they went out: the completion names the first
 * buffer only, the others are whatever the next ring entries hold.
 */
Test(bufring, bundle_wraps_the_ring_end, .timeout = 10)
{
	enum { COUNT = 8, SIZE = 256, LEN = 5 * SIZE + 10 };
	static const int back[6] = { 3, 5, 0, 2, 4, 1 };
	struct ferry_loop *loop = bundle_loop(true);
	bool uring = strcmp(ferry_loop_backend(loop), "io_uring") == 0;
	struct ferry_bufring *br;
	struct sink s;
	int sv[2];

	rt_socketpair(sv);
	cr_assert_eq(ferry_bufring_create(loop, COUNT, SIZE, &br), 0);
	sink_init(&s, br, COUNT, 6 * 10 + LEN);
	s.hold = true;
	cr_assert_eq(ferry_op_recv_multishot(loop, &s.op, sv[0], br), 0);
	/* Six receives of one buffer each: the ring's head moves to entry 6. */
	for (int i = 0; i < 6; i++) {
		write_pattern(sv[1], s.len, 10);
		SINK_UNTIL(loop, s, (size_t)(i + 1) * 10);
		cr_assert_eq(s.nmsg, i + 1);
	}
	cr_assert_eq(s.errors, 0, "%s", s.errmsg);
	/* Back in a scrambled order: they fill entries 8..13, i.e. 0..5. */
	for (int i = 0; i < 6; i++)
		ferry_bufring_recycle(br, s.held[back[i]]);
	s.nheld = 0;
	s.hold = false;

	write_pattern(sv[1], s.len, LEN);
	SINK_UNTIL(loop, s, 6 * 10 + LEN);
	cr_assert_eq(s.errors, 0, "%s", s.errmsg);
	cr_assert_eq(s.len, 6 * 10 + LEN);
	assert_pattern(s.data, s.len, 0);
	cr_assert_eq(s.nmsg, 12, "%d completions", s.nmsg);
	for (int i = 6; i < 12; i++)
		cr_assert_eq(s.seen_len[i], i < 11 ? SIZE : 10,
			     "completion %d: %d bytes", i, s.seen_len[i]);
	cr_assert_eq(ferry__bufring_bundles(br), 1);
	if (uring) {
		/* Entries 6, 7, then round to 0..3: the first four back. */
		unsigned want[6] = { 6, 7, 0, 0, 0, 0 };

		for (int i = 0; i < 4; i++)
			want[2 + i] = s.held[back[i]];
		for (int i = 0; i < 6; i++)
			cr_assert_eq(s.seen_bid[6 + i], want[i],
				     "piece %d came from buffer %u, not %u", i,
				     s.seen_bid[6 + i], want[i]);
	}
	close(sv[1]);
	RT_RUN_UNTIL_MSG(loop, s.nfinal, 2000, SINK_FMT, SINK_ARGS(s));
	cr_assert_eq(s.last_res, 0);
	cr_assert_eq(ferry_bufring_available(br), COUNT);
	free(s.data);
	close(sv[0]);
	ferry_loop_destroy(loop);
}

/*
 * Bundles that take every buffer left: the recv pauses (no -ENOBUFS, no
 * end of the multishot for the owner) until buffers come back, then takes
 * them all again in one receive.
 */
Test(bufring, bundle_runs_the_ring_dry_then_resumes, .timeout = 20)
{
	enum { COUNT = 4, SIZE = 512, ROUNDS = 10,
	       LEN = ROUNDS * COUNT * SIZE + 100 };
	struct ferry_loop *loop = bundle_loop(true);
	struct ferry_bufring *br;
	struct sink s;
	int sv[2];
	int rounds = 0;

	rt_socketpair(sv);
	cr_assert_eq(ferry_bufring_create(loop, COUNT, SIZE, &br), 0);
	sink_init(&s, br, COUNT, LEN);
	s.hold = true;
	write_pattern(sv[1], 0, LEN);
	cr_assert_eq(ferry_op_recv_multishot(loop, &s.op, sv[0], br), 0);
	for (;;) {
		RT_RUN_UNTIL_MSG(loop, s.nheld == COUNT || s.len == LEN ||
				 s.errors || s.nfinal, 5000, SINK_FMT,
				 SINK_ARGS(s));
		if (s.len == LEN)
			break;
		rt_run_for(loop, 20);	/* no more: paused, not ended */
		cr_assert_eq(s.errors, 0, "%s", s.errmsg);
		cr_assert_eq(s.nheld, COUNT);
		cr_assert_eq(s.nfinal, 0, "the recv ended (%s) instead of pausing",
			     ferry_strerrorname(s.last_res));
		cr_assert_eq(ferry_bufring_available(br), 0);
		cr_assert(ferry_op_busy(&s.op), "a paused recv must stay busy");
		rounds++;
		cr_assert_eq(ferry__bufring_bundles(br), (unsigned)rounds,
			     "round %d was not one bundle", rounds);
		sink_release(&s);
	}
	cr_assert_eq(rounds, ROUNDS);
	cr_assert_eq(s.errors, 0, "%s", s.errmsg);
	assert_pattern(s.data, s.len, 0);
	sink_release(&s);
	close(sv[1]);
	RT_RUN_UNTIL_MSG(loop, s.nfinal, 2000, SINK_FMT, SINK_ARGS(s));
	cr_assert_eq(s.last_res, 0, "ended with %s",
		     ferry_strerrorname(s.last_res));
	cr_assert_eq(ferry_bufring_available(br), COUNT);
	free(s.data);
	close(sv[0]);
	ferry_loop_destroy(loop);
}

/*
 * The owner cancels while a bundle is being handed out: the rest of the
 * bundle still comes (those buffers are the owner's now), then the end.
 */
Test(bufring, cancel_in_the_middle_of_a_bundle, .timeout = 10)
{
	enum { COUNT = 16, SIZE = 1024, LEN = 5000 };
	struct ferry_loop *loop = bundle_loop(true);
	struct ferry_bufring *br;
	struct sink s;
	int sv[2];

	rt_socketpair(sv);
	cr_assert_eq(ferry_bufring_create(loop, COUNT, SIZE, &br), 0);
	sink_init(&s, br, COUNT, LEN);
	s.cancel_loop = loop;
	s.cancel_at = 2;
	write_pattern(sv[1], 0, LEN);
	cr_assert_eq(ferry_op_recv_multishot(loop, &s.op, sv[0], br), 0);
	RT_RUN_UNTIL_MSG(loop, s.nfinal, 5000, SINK_FMT, SINK_ARGS(s));
	cr_assert_eq(s.cancel_rc, 0);
	cr_assert_eq(s.errors, 0, "%s", s.errmsg);
	cr_assert_eq(s.last_res, -ECANCELED, "ended with %s",
		     ferry_strerrorname(s.last_res));
	cr_assert_eq(s.len, LEN, "the bundle was cut short: %zu bytes", s.len);
	assert_pattern(s.data, s.len, 0);
	cr_assert_eq(ferry_bufring_available(br), COUNT);
	cr_assert(!ferry_op_busy(&s.op));
	free(s.data);
	close(sv[0]);
	close(sv[1]);
	ferry_loop_destroy(loop);
}
