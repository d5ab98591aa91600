/*
 * fuzz_h1.c - libFuzzer entry point for the response parser and the URL
 * parser. Not built by meson (it needs clang's libFuzzer). Build and run
 * from the source root:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -Iruntime -Ihttp -I/usr/share/include/llhttp \
 *     tests/http/fuzz_h1.c http/h1_response.c http/h1_request.c http/url.c \
 *     /usr/share/llhttp/api.c /usr/share/llhttp/http.c \
 *     /usr/share/llhttp/llhttp.c -o /tmp/fuzz_h1
 *   mkdir -p /tmp/fuzz_h1_corpus && /tmp/fuzz_h1 -max_total_time=60 \
 *     /tmp/fuzz_h1_corpus
 *
 * The first input byte picks the mode and the split seed; the rest is the
 * input. Response mode is differential: the bytes are parsed whole and in
 * seeded random splits (each piece in its own exact-size heap block, so
 * ASan sees any slice escaping its piece), and both runs must agree on
 * every event, header, body byte and error; any difference aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h1.h"

struct outcome {
	int err;
	int status;
	bool done, keep_alive;
	size_t leftover;
	struct ferry__h1_buf log;	/* heads and body, serialised */
};

static void log_head(struct outcome *o, struct ferry__h1_resp *r)
{
	struct ferry__h1_header h;
	size_t rlen;
	const char *reason = ferry__h1_resp_reason(r, &rlen);

	o->status = ferry__h1_resp_status(r);
	ferry__h1_buf_append(&o->log, "H", 1);
	ferry__h1_buf_append(&o->log, reason, rlen);
	for (size_t i = 0; ferry__h1_resp_header_at(r, i, &h); i++) {
		if (h.name[h.name_len] || h.value[h.value_len])
			abort();	/* strings must be NUL-terminated */
		ferry__h1_buf_append(&o->log, h.name, h.name_len + 1);
		ferry__h1_buf_append(&o->log, h.value, h.value_len + 1);
	}
}

/* Returns false once the response is over. */
static bool feed(struct outcome *o, struct ferry__h1_resp *r, const char *p,
		 size_t n, size_t rest)
{
	size_t off = 0;

	for (;;) {
		struct ferry__h1_slice b;
		size_t used;
		int ev = ferry__h1_resp_feed(r, p + off, n - off, &used, &b);

		if (used > n - off)
			abort();
		off += used;
		if (ev < 0) {
			o->err = ev;
			return false;
		}
		switch (ev) {
		case FERRY__H1_NEED_MORE:
			if (off != n)
				abort();
			return true;
		case FERRY__H1_HEAD:
			log_head(o, r);
			break;
		case FERRY__H1_BODY:
			if (b.data < p || b.data + b.len > p + n || !b.len)
				abort();
			ferry__h1_buf_append(&o->log, b.data, b.len);
			break;
		case FERRY__H1_DONE:
			o->done = true;
			o->keep_alive = ferry__h1_resp_keep_alive(r);
			o->leftover = n - off + rest;
			return false;
		default:
			abort();
		}
	}
}

static void parse(struct outcome *o, const uint8_t *data, size_t len,
		  unsigned seed, const char *method)
{
	struct ferry__h1_limits lim = { .max_head = 4096, .max_body = 1 << 20 };
	struct ferry__h1_resp r;
	size_t off = 0;
	bool go = true;

	memset(o, 0, sizeof(*o));
	ferry__h1_resp_init(&r, &lim);
	ferry__h1_resp_start(&r, method);
	while (go && off < len) {
		size_t n = seed ? 1 + (size_t)rand_r(&seed) % 16 : len - off;
		char *piece;

		if (n > len - off)
			n = len - off;
		piece = malloc(n);
		if (!piece)
			abort();
		memcpy(piece, data + off, n);
		off += n;
		go = feed(o, &r, piece, n, len - off);
		free(piece);
	}
	if (go) {
		int ev = ferry__h1_resp_finish(&r);

		if (ev == FERRY__H1_DONE) {
			o->done = true;
			o->keep_alive = ferry__h1_resp_keep_alive(&r);
		} else {
			o->err = ev;
		}
	}
	ferry__h1_resp_free(&r);
}

static void fuzz_response(const uint8_t *data, size_t len, unsigned seed,
			  const char *method)
{
	struct outcome a, b;

	parse(&a, data, len, 0, method);
	parse(&b, data, len, seed | 1, method);
	/* the log may differ only in how the body was sliced, which it
	 * does not record: it is a plain concatenation */
	if (a.err != b.err || a.status != b.status || a.done != b.done ||
	    a.keep_alive != b.keep_alive || a.leftover != b.leftover ||
	    a.log.len != b.log.len ||
	    (a.log.len && memcmp(a.log.data, b.log.data, a.log.len))) {
		fprintf(stderr, "whole and split parses differ\n");
		abort();
	}
	ferry__h1_buf_free(&a.log);
	ferry__h1_buf_free(&b.log);
}

static void fuzz_url(const uint8_t *data, size_t len)
{
	struct ferry_url u, v;
	char why[FERRY_URL_WHY_MAX];
	char buf[256];
	size_t n;

	if (ferry_url_parse(&u, (const char *)data, len, why, sizeof(why)))
		return;
	/* what we format must parse back to the same thing */
	n = ferry_url_format(&u, NULL, 0);
	if (n < sizeof(buf)) {
		ferry_url_format(&u, buf, sizeof(buf));
		if (ferry_url_parse(&v, buf, n, why, sizeof(why)))
			abort();
		if (!ferry_url_same_origin(&u, &v) ||
		    strcmp(u.target, v.target))
			abort();
		ferry_url_free(&v);
	}
	/* and the input works as a Location against itself */
	if (!ferry_url_resolve(&v, &u, (const char *)data + len / 2,
			       len - len / 2, why, sizeof(why)))
		ferry_url_free(&v);
	ferry_url_free(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	unsigned ctl;

	if (len < 1)
		return 0;
	ctl = data[0];
	data++;
	len--;
	switch (ctl & 3) {
	case 0:
		fuzz_url(data, len);
		break;
	case 1:
		fuzz_response(data, len, ctl, "HEAD");
		break;
	default:
		fuzz_response(data, len, ctl, "GET");
		break;
	}
	return 0;
}
