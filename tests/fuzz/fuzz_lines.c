/*
 * fuzz_lines.c - libFuzzer target: the line iterator (bridge/lines.c) over
 * random chunk splits, timeouts and stream endings.
 *
 * ferry_lines reads its stream only through ferry_stream_next(), so this
 * program is linked with bridge/lines.c alone and defines that one
 * function itself: it hands out the input in seeded random chunks (empty
 * ones too, each in its own exact-size heap block, freed when the next is
 * taken, as a real stream takes a chunk back), returns FERRY_ETIMEDOUT now
 * and then, and ends with 0 or an error. No runner, no threads, so a run
 * takes microseconds.
 *
 * Input: byte 0 = max_line choice and how the stream ends, byte 1 = split
 * seed, then the text. Differential: the lines are compared with a plain
 * reference split of the whole text (by '\n', one '\r' before it dropped,
 * a last line without '\n' kept as it is, FERRY_ETOOLARGE at the first
 * line longer than max_line and nothing after it, a stream error instead
 * of a last unterminated line unless that line already overflowed).
 * Any difference aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/bridge.h"

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "fuzz_lines: %s:%d: %s\n", __FILE__,\
				__LINE__, #cond);                           \
			abort();                                            \
		}                                                           \
	} while (0)

/* The stand-in stream: the whole test runs on this thread. */
struct ferry_stream {
	const uint8_t *data;
	size_t len, off;
	unsigned seed;
	int end;		/* 0 or a negative error after the data */
	bool ended;		/* the end was reported */
	void *lent;		/* the chunk the consumer holds */
	unsigned timeouts;
};

int ferry_stream_next(struct ferry_stream *s, struct ferry_chunk *c,
		      int64_t timeout_ns)
{
	unsigned r = (unsigned)rand_r(&s->seed);
	size_t n;

	(void)timeout_ns;
	free(s->lent);	/* the previous chunk is released */
	s->lent = NULL;
	CHECK(!s->ended);	/* nobody reads past the end */
	if (r % 5 == 0 && s->timeouts < 64) {
		s->timeouts++;
		return FERRY_ETIMEDOUT;
	}
	if (s->off == s->len) {
		s->ended = true;
		return s->end;
	}
	n = (r >> 4) % 9 == 0 ? 0 : 1 + (r >> 8) % 32;
	if (n > s->len - s->off)
		n = s->len - s->off;
	s->lent = malloc(n ? n : 1);
	CHECK(s->lent);
	memcpy(s->lent, s->data + s->off, n);
	s->off += n;
	c->data = s->lent;
	c->len = n;
	return 1;
}

/* The reference: next line of text[*pos..len). Returns 1, 0 or an error. */
static int ref_next(const uint8_t *text, size_t len, size_t *pos,
		    size_t max, int end, const uint8_t **line, size_t *n)
{
	const uint8_t *p = text + *pos;
	size_t avail = len - *pos;
	const uint8_t *nl = memchr(p, '\n', avail);

	if (nl) {
		*n = (size_t)(nl - p);
		*pos += *n + 1;
		if (*n && p[*n - 1] == '\r')
			(*n)--;
	} else {
		/* the join buffer refuses more than max + 1 bytes (room
		 * for a '\r' to strip) as they arrive, before the end */
		if (end < 0)
			return avail > max + 1 ? FERRY_ETOOLARGE : end;
		if (avail == 0)
			return 0;
		*n = avail;
		*pos = len;
	}
	*line = p;
	return *n > max ? FERRY_ETOOLARGE : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const size_t maxes[4] = { 0, 1, 7, 40 };
	static const int ends[4] = { 0, 0, FERRY_EPROTO, FERRY_ECLOSED };
	struct ferry_stream s = { 0 };
	struct ferry_lines l;
	size_t max, pos = 0;
	int want, got;

	if (len < 2)
		return 0;
	max = maxes[data[0] & 3];
	s.end = ends[(data[0] >> 2) & 3];
	s.seed = data[1] | (unsigned)data[0] << 8;
	s.data = data + 2;
	s.len = len - 2;
	ferry_lines_init(&l, &s, max);
	if (!max)
		max = 64 * 1024;
	do {
		const uint8_t *wline = NULL;
		const char *gline = NULL;
		size_t wn = 0, gn = 0;

		want = ref_next(s.data, s.len, &pos, max, s.end, &wline, &wn);
		while ((got = ferry_lines_next(&l, &gline, &gn, 0)) ==
		       FERRY_ETIMEDOUT)
			;
		if (got != want) {
			fprintf(stderr, "fuzz_lines: got %d, want %d\n", got,
				want);
			abort();
		}
		if (got == 1) {
			CHECK(gn == wn && (!gn || !memcmp(gline, wline, gn)));
		}
	} while (want == 1);
	/* finished: stays finished */
	CHECK(ferry_lines_next(&l, &(const char *){ NULL }, &(size_t){ 0 }, 0) ==
	      want);
	ferry_lines_free(&l);
	free(s.lent);
	return 0;
}
