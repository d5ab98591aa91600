/*
 * test_lines.c - the line iterator over a real stream: lines split at every
 * possible position (one, two and many cuts), CRLF split between chunks,
 * empty lines, a final line without newline, the max line length, and
 * stream errors.
 */
#include "producer.h"

#define MAXLINES 32

struct expect {
	const char *line[MAXLINES];
	int n;
};

/* Open a stream that sends @text cut into chunks of @cuts[] bytes. */
static struct ferry_stream *open_text(struct ferry_runner *r, struct pool *pool,
				      struct prod_stats *st, const char *text,
				      const size_t *cuts, size_t ncuts,
				      int end_status, unsigned capacity)
{
	struct prod_cfg cfg = { .capacity = capacity, .total = strlen(text),
				.cuts = cuts, .ncuts = ncuts,
				.src = (const unsigned char *)text,
				.end_status = end_status };

	pool->bufsize = strlen(text) + 1;
	return bt_stream_open(r, &cfg, pool, st);
}

/* Iterate and compare; @what names the case in failure messages. */
static void check_lines(struct ferry_stream *s, const struct expect *e,
			size_t max_line, int want_end, const char *what)
{
	struct ferry_lines l;
	const char *line;
	size_t len;
	int rc, i = 0;

	ferry_lines_init(&l, s, max_line);
	while ((rc = ferry_lines_next(&l, &line, &len, 5000 * BT_MS)) == 1) {
		cr_assert_lt(i, e->n, "%s: extra line '%.*s'", what, (int)len,
			     line);
		cr_assert_eq(len, strlen(e->line[i]),
			     "%s: line %d is '%.*s', want '%s'", what, i,
			     (int)len, line, e->line[i]);
		cr_assert_eq(memcmp(line, e->line[i], len), 0,
			     "%s: line %d is '%.*s', want '%s'", what, i,
			     (int)len, line, e->line[i]);
		i++;
	}
	cr_assert_eq(rc, want_end, "%s: ended with %s after %d lines, want %s",
		     what, ferry_strerrorname(rc), i, ferry_strerrorname(want_end));
	cr_assert_eq(i, e->n, "%s: %d lines, want %d", what, i, e->n);
	ferry_lines_free(&l);
	ferry_lines_free(&l);	/* idempotent: the buffer pointer is reset */
}

static void run_case(struct ferry_runner *r, const char *text,
		     const size_t *cuts, size_t ncuts, const struct expect *e,
		     size_t max_line, int end_status, int want_end,
		     const char *what)
{
	struct pool pool = { 0 };
	struct prod_stats st = { 0 };
	struct ferry_stream *s = open_text(r, &pool, &st, text, cuts, ncuts,
					   end_status, 4);

	check_lines(s, e, max_line, want_end, what);
	ferry_stream_close(s);
	bt_pool_drain(r, &pool);
}

static const char *const TEXT = "alpha\nbeta\r\n\ngamma\r\n\r\n\nlast one";
static const struct expect TEXT_LINES = {
	{ "alpha", "beta", "", "gamma", "", "", "last one" }, 7
};

Test(lines, one_chunk, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	size_t cut = strlen(TEXT);

	run_case(r, TEXT, &cut, 1, &TEXT_LINES, 0, 0, 0, "one chunk");
	ferry_runner_destroy(r);
}

Test(lines, split_at_every_position, .timeout = 60)
{
	struct ferry_runner *r = bt_runner();
	size_t n = strlen(TEXT);
	char what[64];

	for (size_t i = 1; i < n; i++) {
		size_t cuts[2] = { i, n - i };

		snprintf(what, sizeof(what), "cut at %zu", i);
		run_case(r, TEXT, cuts, 2, &TEXT_LINES, 0, 0, 0, what);
	}
	ferry_runner_destroy(r);
}

Test(lines, split_at_every_pair_of_positions, .timeout = 90)
{
	struct ferry_runner *r = bt_runner();
	size_t n = strlen(TEXT);
	int step = bt_scaled(4) > 1 ? 1 : 2;	/* fewer pairs under TSan */
	char what[64];

	for (size_t i = 1; i < n; i += (size_t)step)
		for (size_t j = i + 1; j < n; j++) {
			size_t cuts[3] = { i, j - i, n - j };

			snprintf(what, sizeof(what), "cuts at %zu, %zu", i, j);
			run_case(r, TEXT, cuts, 3, &TEXT_LINES, 0, 0, 0, what);
		}
	ferry_runner_destroy(r);
}

Test(lines, one_byte_per_chunk, .timeout = 20)
{
	struct ferry_runner *r = bt_runner();
	size_t n = strlen(TEXT);
	size_t *cuts = malloc(n * sizeof(*cuts));

	for (size_t i = 0; i < n; i++)
		cuts[i] = 1;
	run_case(r, TEXT, cuts, n, &TEXT_LINES, 0, 0, 0, "one byte each");
	free(cuts);
	ferry_runner_destroy(r);
}

Test(lines, edges, .timeout = 20)
{
	struct ferry_runner *r = bt_runner();
	static const struct expect none = { { 0 }, 0 };
	static const struct expect one_empty = { { "" }, 1 };
	static const struct expect two_empty = { { "", "" }, 2 };
	static const struct expect cr_inside = { { "a\rb", "c" }, 2 };
	static const struct expect trailing_cr = { { "x\r" }, 1 };
	static const struct expect crcrlf = { { "y\r" }, 1 };
	size_t c1, c2[2];

	c1 = 1;
	run_case(r, "\n", &c1, 1, &one_empty, 0, 0, 0, "\\n");
	c1 = 2;
	run_case(r, "\r\n", &c1, 1, &one_empty, 0, 0, 0, "\\r\\n");
	c2[0] = 1; c2[1] = 1;
	run_case(r, "\r\n", c2, 2, &one_empty, 0, 0, 0, "\\r | \\n");
	c1 = 3;
	run_case(r, "\n\r\n", &c1, 1, &two_empty, 0, 0, 0, "\\n\\r\\n");
	c1 = 7;
	run_case(r, "a\rb\nc\n", &c1, 1, &cr_inside, 0, 0, 0, "lone CR");
	/* A CR at the very end with no LF is part of the final line. */
	c2[0] = 1; c2[1] = 1;
	run_case(r, "x\r", c2, 2, &trailing_cr, 0, 0, 0, "final CR");
	c2[0] = 2; c2[1] = 2;
	run_case(r, "y\r\r\n", c2, 2, &crcrlf, 0, 0, 0, "CR CR LF");
	/* An empty stream has no lines. */
	run_case(r, "", NULL, 0, &none, 0, 0, 0, "empty stream");
	ferry_runner_destroy(r);
}

/* A long line, joined from many chunks, bigger than the first join buffer. */
Test(lines, long_line_across_many_chunks, .timeout = 20)
{
	struct ferry_runner *r = bt_runner();
	size_t n = 100000;
	char *text = malloc(n + 8);
	size_t cuts[100];
	struct expect e = { { 0 }, 2 };

	for (size_t i = 0; i < n; i++)
		text[i] = (char)('a' + i % 26);
	memcpy(text + n, "\nend\n", 6);
	for (int i = 0; i < 99; i++)
		cuts[i] = 1000 + (i % 7);
	{
		size_t sum = 0;

		for (int i = 0; i < 99; i++)
			sum += cuts[i];
		cuts[99] = n + 5 - sum;
	}
	text[n] = '\0';
	e.line[0] = strdup(text);
	text[n] = '\n';
	e.line[1] = "end";
	run_case(r, text, cuts, 100, &e, 200000, 0, 0, "100 kB line");
	free((void *)e.line[0]);
	free(text);
	ferry_runner_destroy(r);
}

/* ------------------------------------------------------------------ */
/* max_line                                                              */

Test(lines, max_line_exact_fits, .timeout = 20)
{
	struct ferry_runner *r = bt_runner();
	static const char *text = "0123456789abcdef\r\nshort\n0123456789ABCDEF";
	static const struct expect e = {
		{ "0123456789abcdef", "short", "0123456789ABCDEF" }, 3
	};
	size_t n = strlen(text);
	char what[64];

	run_case(r, text, &n, 1, &e, 16, 0, 0, "16 in one chunk");
	for (size_t i = 1; i < n; i++) {
		size_t cuts[2] = { i, n - i };

		snprintf(what, sizeof(what), "16, cut at %zu", i);
		run_case(r, text, cuts, 2, &e, 16, 0, 0, what);
	}
	ferry_runner_destroy(r);
}

Test(lines, max_line_exceeded_is_etoolarge, .timeout = 20)
{
	struct ferry_runner *r = bt_runner();
	static const char *text = "ok\n0123456789abcdefg\nnever\n";
	static const struct expect e = { { "ok" }, 1 };
	static const char *tail = "ok\n0123456789abcdefg";	/* no newline */
	size_t n = strlen(text), m = strlen(tail);
	char what[64];

	run_case(r, text, &n, 1, &e, 16, 0, FERRY_ETOOLARGE, "17 in one chunk");
	run_case(r, tail, &m, 1, &e, 16, 0, FERRY_ETOOLARGE, "17 at the end");
	for (size_t i = 1; i < n; i++) {
		size_t cuts[2] = { i, n - i };

		snprintf(what, sizeof(what), "17, cut at %zu", i);
		run_case(r, text, cuts, 2, &e, 16, 0, FERRY_ETOOLARGE, what);
	}
	ferry_runner_destroy(r);
}

/* The iterator is finished after FERRY_ETOOLARGE. */
Test(lines, finished_after_etoolarge, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct pool pool = { 0 };
	struct prod_stats st = { 0 };
	static const char *text = "0123456789abcdefg\nnext\n";
	size_t n = strlen(text);
	struct ferry_stream *s = open_text(r, &pool, &st, text, &n, 1, 0, 4);
	struct ferry_lines l;
	const char *line;
	size_t len;

	ferry_lines_init(&l, s, 16);
	cr_assert_eq(ferry_lines_next(&l, &line, &len, -1), FERRY_ETOOLARGE);
	cr_assert_neq(ferry_lines_next(&l, &line, &len, -1), 1,
		      "a line after FERRY_ETOOLARGE");
	ferry_lines_free(&l);
	ferry_stream_close(s);
	bt_pool_drain(r, &pool);
	ferry_runner_destroy(r);
}

/* ------------------------------------------------------------------ */
/* Stream errors come through after the lines before them.              */

Test(lines, stream_error_after_lines, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	static const char *text = "a\nbb\nccc\n";
	static const struct expect e = { { "a", "bb", "ccc" }, 3 };
	size_t cuts[3] = { 3, 3, 3 };

	run_case(r, text, cuts, 3, &e, 0, -ECONNRESET, -ECONNRESET, "error");
	ferry_runner_destroy(r);
}

/* The input tests/fuzz/fuzz_lines crashed on: an empty stream and a
 * short max_line. The first call computed NULL + 0 (no chunk yet), which
 * is undefined: clang's UBSan reports it (gcc's does not look), so this
 * fails before the fix in a clang ASan+UBSan build. */
Test(lines, empty_stream_first_call, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct pool pool = { 0 };
	struct prod_stats st = { 0 };
	struct ferry_stream *s = open_text(r, &pool, &st, "", NULL, 0, 0, 4);
	struct ferry_lines l;
	const char *line = NULL;
	size_t len = 0;

	ferry_lines_init(&l, s, 7);
	cr_assert_eq(ferry_lines_next(&l, &line, &len, 5000 * BT_MS), 0);
	cr_assert_eq(ferry_lines_next(&l, &line, &len, 5000 * BT_MS), 0);
	ferry_lines_free(&l);
	ferry_stream_close(s);
	bt_pool_drain(r, &pool);
	ferry_runner_destroy(r);
}

/* Deadlines pass through: a slow producer gives FERRY_ETIMEDOUT, and the
 * iterator goes on afterwards without losing the partial line. */
Test(lines, deadline_keeps_partial_line, .timeout = 10)
{
	struct ferry_runner *r = bt_runner();
	struct pool pool = { .bufsize = 8 };
	struct prod_stats st = { 0 };
	static const char *text = "hello world\n";
	static const size_t cuts[2] = { 5, 7 };
	struct prod_cfg cfg = { .capacity = 4, .total = 12, .cuts = cuts,
				.ncuts = 2, .src = (const unsigned char *)text,
				.burst = 1, .mode = PROD_MANUAL };
	struct ferry_stream *s = bt_stream_open(r, &cfg, &pool, &st);
	struct ferry_lines l;
	const char *line;
	size_t len;

	/* Only "hello" is out; the rest waits for a manual tick, so the
	 * deadline must expire on the partial line. */
	ferry_lines_init(&l, s, 0);
	cr_assert_eq(ferry_lines_next(&l, &line, &len, 20 * BT_MS),
		     FERRY_ETIMEDOUT);
	bt_stream_tick(r, &st);
	cr_assert_eq(ferry_lines_next(&l, &line, &len, 5000 * BT_MS), 1);
	cr_assert_eq(len, 11);
	cr_assert_eq(memcmp(line, "hello world", 11), 0);
	cr_assert_eq(ferry_lines_next(&l, &line, &len, 5000 * BT_MS), 0);
	ferry_lines_free(&l);
	ferry_stream_close(s);
	bt_pool_drain(r, &pool);
	ferry_runner_destroy(r);
}
