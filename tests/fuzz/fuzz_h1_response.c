/*
 * fuzz_h1_response.c - libFuzzer target: the response parser glue
 * (http/h1_response.c over llhttp), head and body framing in random
 * splits. Grew out of tests/http/fuzz_h1.c (which also fuzzed URLs: that
 * is fuzz_url.c now).
 *
 * Input: byte 0 = mode (bit 0: answering HEAD; bit 1: the peer closes
 * after the bytes, so finish() is called; the rest seeds the splits),
 * byte 1 = limits (small or default head, body and field limits), then
 * the bytes the server sends. After a response completes, the bytes left
 * are parsed as the next response on the same parser (at most three), so
 * reuse after start() is fuzzed too.
 *
 * Differential: the bytes are parsed whole, one byte at a time and in two
 * seeded random splits, each piece in its own exact-size heap block (so
 * ASan sees any slice escaping its piece). Every run must agree on every
 * head (status, reason, headers), every body byte, the end of each
 * response and its keep-alive verdict, the bytes left over, and the error
 * code (see same_err for what may differ); any difference aborts. Each
 * head is also checked against the header's promises (NUL-terminated
 * strings, trimmed values without CR/LF, token names, lookups agree,
 * 2xx..9xx final status, body within max_body).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h1.h"

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "fuzz_h1_response: %s:%d: %s\n",    \
				__FILE__, __LINE__, #cond);                 \
			abort();                                            \
		}                                                           \
	} while (0)

#define MAX_RESPONSES 3

struct outcome {
	int err;
	char why[FERRY__H1_WHY_MAX];
	bool done;		/* the last response completed */
	size_t leftover;
	struct ferry__h1_buf log;	/* heads, bodies, ends, serialised */
};

struct run {
	struct ferry__h1_resp r;
	const struct ferry__h1_limits *lim;
	const char *method;
	int responses;		/* started so far */
	uint64_t body;		/* bytes of the current response's body */
	struct outcome *o;
};

static void log_put(struct outcome *o, const void *p, size_t n)
{
	CHECK(ferry__h1_buf_append(&o->log, p, n) == 0);
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static void check_field(struct ferry__h1_resp *r, size_t i,
			const struct ferry__h1_header *h)
{
	size_t pos = 0, vlen;
	const char *v;

	CHECK(!h->name[h->name_len] && !h->value[h->value_len]);
	CHECK(strlen(h->name) == h->name_len);
	CHECK(ferry__h1_is_token(h->name, h->name_len));
	CHECK(!memchr(h->value, '\r', h->value_len));
	CHECK(!memchr(h->value, '\n', h->value_len));
	CHECK(strlen(h->value) == h->value_len);
	if (h->value_len)
		CHECK(!is_ows(h->value[0]) && !is_ows(h->value[h->value_len - 1]));
	/* the first field of that name is at or before i */
	v = ferry__h1_resp_header_find(r, h->name, &pos, &vlen);
	CHECK(v && pos >= 1 && pos <= i + 1);
}

static void log_head(struct run *run)
{
	struct ferry__h1_resp *r = &run->r;
	struct ferry__h1_header h;
	size_t rlen, i;
	const char *reason = ferry__h1_resp_reason(r, &rlen);
	int status = ferry__h1_resp_status(r);
	char num[16];

	CHECK(status >= 200 && status <= 999);
	CHECK(strlen(reason) == rlen);
	snprintf(num, sizeof(num), "H%d ", status);
	log_put(run->o, num, strlen(num));
	log_put(run->o, reason, rlen + 1);
	for (i = 0; ferry__h1_resp_header_at(r, i, &h); i++) {
		check_field(r, i, &h);
		log_put(run->o, h.name, h.name_len + 1);
		log_put(run->o, h.value, h.value_len + 1);
	}
	CHECK(i == ferry__h1_resp_header_count(r));
	log_put(run->o, ferry__h1_resp_keep_alive(r) ? "k" : "c", 1);
}

static void log_done(struct run *run)
{
	log_put(run->o, ferry__h1_resp_keep_alive(&run->r) ? "Dk" : "Dc", 2);
	run->o->done = true;
}

static void start(struct run *run)
{
	ferry__h1_resp_start(&run->r, run->method);
	CHECK(ferry__h1_resp_idle(&run->r));
	run->responses++;
	run->body = 0;
	run->o->done = false;
}

/* Feed one piece; @rest bytes follow it. Returns false once over. */
static bool feed(struct run *run, const char *p, size_t n, size_t rest)
{
	struct outcome *o = run->o;
	size_t off = 0;

	for (;;) {
		struct ferry__h1_slice b = { 0 };
		size_t used = n + 1;
		int ev = ferry__h1_resp_feed(&run->r, p + off, n - off, &used,
					     &b);

		CHECK(used <= n - off);
		off += used;
		if (ev < 0) {
			o->err = ev;
			snprintf(o->why, sizeof(o->why), "%s",
				 ferry__h1_resp_why(&run->r));
			CHECK(o->why[0]);
			return false;
		}
		switch (ev) {
		case FERRY__H1_NEED_MORE:
			CHECK(off == n);
			return true;
		case FERRY__H1_HEAD:
			log_head(run);
			break;
		case FERRY__H1_BODY:
			CHECK(b.len && b.data >= p && b.data + b.len <= p + n);
			run->body += b.len;
			if (run->lim->max_body)
				CHECK(run->body <= run->lim->max_body);
			log_put(o, b.data, b.len);
			break;
		case FERRY__H1_DONE:
			log_done(run);
			if (off == n && rest == 0)
				return false;
			if (run->responses == MAX_RESPONSES) {
				o->leftover = n - off + rest;
				return false;
			}
			start(run);
			break;
		default:
			CHECK(!"unknown event");
		}
	}
}

/* sizes: NULL = whole, else the piece sizes to cut (cycled). */
static void parse(struct outcome *o, const struct ferry__h1_limits *lim,
		  const uint8_t *data, size_t len, unsigned seed, bool eof,
		  const char *method)
{
	struct run run = { .lim = lim, .method = method, .o = o };
	size_t off = 0;
	bool go = true;

	memset(o, 0, sizeof(*o));
	ferry__h1_resp_init(&run.r, lim);
	start(&run);
	while (go && off < len) {
		size_t n = len - off;
		char *piece;

		if (seed == 1)
			n = 1;
		else if (seed)
			n = 1 + (size_t)rand_r(&seed) % 24;
		if (n > len - off)
			n = len - off;
		piece = malloc(n);
		CHECK(piece);
		memcpy(piece, data + off, n);
		off += n;
		go = feed(&run, piece, n, len - off);
		free(piece);
	}
	if (go && len == 0) {
		/* an empty feed must be harmless */
		size_t used = 1;
		struct ferry__h1_slice b;

		CHECK(ferry__h1_resp_feed(&run.r, "", 0, &used, &b) ==
		      FERRY__H1_NEED_MORE && used == 0);
	}
	if (go && eof) {
		int ev = ferry__h1_resp_finish(&run.r);

		if (ev == FERRY__H1_DONE) {
			log_done(&run);
		} else {
			CHECK(ev < 0);
			o->err = ev;
			snprintf(o->why, sizeof(o->why), "%s",
				 ferry__h1_resp_why(&run.r));
		}
	}
	ferry__h1_resp_free(&run.r);
}

/*
 * The same error code; the reason may differ. When a response has two
 * faults, which one is named can depend on the split: llhttp hands a
 * header name or trailer to its callback in pieces when the input ends
 * inside it, so a split run may count a field (or trailer bytes) against
 * its limit before the whole run reaches a bad byte in the same name
 * (FERRY_ETOOLARGE against FERRY_EPROTO); and a callback's refusal (a
 * control byte in the reason, a bad field name) is raised inside llhttp,
 * before ferry's line-ending scan of the same bytes, so an earlier bare
 * CR is named only when it came in an earlier piece. Either way the
 * response is refused, and nothing of it is handed out differently.
 */
static bool same_err(const struct outcome *a, const struct outcome *b)
{
	if (a->err == b->err)
		return true;
	return (a->err == FERRY_ETOOLARGE && b->err == FERRY_EPROTO) ||
	       (a->err == FERRY_EPROTO && b->err == FERRY_ETOOLARGE);
}

static void same(const struct outcome *a, const struct outcome *b,
		 const char *how)
{
	if (same_err(a, b) && a->done == b->done && a->leftover == b->leftover &&
	    a->log.len == b->log.len &&
	    (!a->log.len || !memcmp(a->log.data, b->log.data, a->log.len)))
		return;
	fprintf(stderr, "fuzz_h1_response: whole and %s parses differ:\n"
		"  err %d '%s' / %d '%s'\n  done %d / %d, leftover %zu / %zu,"
		" log %zu / %zu bytes\n", how, a->err, a->why, b->err, b->why,
		a->done, b->done, a->leftover, b->leftover, a->log.len,
		b->log.len);
	abort();
}

static void pick_limits(struct ferry__h1_limits *lim, uint8_t sel)
{
	static const size_t heads[4] = { 0, 64, 300, 4096 };
	static const uint64_t bodies[4] = { 0, 1, 10, 1000 };
	static const size_t fields[4] = { 0, 1, 4, 16 };

	lim->max_head = heads[sel & 3];
	lim->max_body = bodies[(sel >> 2) & 3];
	lim->max_fields = fields[(sel >> 4) & 3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct ferry__h1_limits lim;
	struct outcome whole, split;
	const char *method;
	unsigned seed;
	bool eof;

	if (len < 2)
		return 0;
	method = data[0] & 1 ? "HEAD" : "GET";
	eof = data[0] & 2;
	seed = 2 + (data[0] >> 2);
	pick_limits(&lim, data[1]);
	data += 2;
	len -= 2;

	parse(&whole, &lim, data, len, 0, eof, method);
	parse(&split, &lim, data, len, 1, eof, method);
	same(&whole, &split, "bytewise");
	ferry__h1_buf_free(&split.log);
	parse(&split, &lim, data, len, seed, eof, method);
	same(&whole, &split, "random-split");
	ferry__h1_buf_free(&split.log);
	parse(&split, &lim, data, len, seed * 7919u + 64, eof, method);
	same(&whole, &split, "random-split");
	ferry__h1_buf_free(&split.log);
	ferry__h1_buf_free(&whole.log);
	return 0;
}
