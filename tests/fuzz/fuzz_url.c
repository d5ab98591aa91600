/*
 * fuzz_url.c - libFuzzer target: the URL parser and redirect resolution
 * (http/url.c, ferry/url.h).
 *
 * Input: the first byte picks where the rest is cut in two, a base and a
 * reference. Properties checked (any failure aborts):
 *   - a parsed URL formats back to text that parses to the same URL, and
 *     the length functions agree with what they write, also into buffers
 *     too small (a truncated, NUL-terminated prefix);
 *   - parse never accepts a byte the header refuses (CR, LF, NUL, space,
 *     controls, non-ASCII) in the host or target;
 *   - resolving a reference against a base (the input's base, or a fixed
 *     one when it does not parse) gives a URL that itself round-trips,
 *     whose path has no "." or ".." segment left (unless the reference
 *     was empty or only a query: then the base path is kept as it is),
 *     and that resolving its own text against any base gives it back;
 *   - ferry_url_copy gives an equal URL.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/url.h"

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "fuzz_url: %s:%d: %s\n", __FILE__,  \
				__LINE__, #cond);                           \
			abort();                                            \
		}                                                           \
	} while (0)

static const char FIXED_BASE[] = "http://a.example:8080/b/c/d;p?q";

static bool same_url(const struct ferry_url *a, const struct ferry_url *b)
{
	return ferry_url_same_origin(a, b) && a->host_type == b->host_type &&
	       a->target_len == b->target_len &&
	       !memcmp(a->target, b->target, a->target_len);
}

static void check_bytes(const char *s, size_t n)
{
	CHECK(strlen(s) == n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		CHECK(c > 0x20 && c < 0x7f);
	}
}

/* A formatting call into every buffer size up to the full one must write
 * the same prefix and report the same length. */
typedef size_t (*fmt_fn)(const struct ferry_url *, char *, size_t);

static char *check_fmt(const struct ferry_url *u, fmt_fn fn, unsigned salt)
{
	size_t n = fn(u, NULL, 0), small;
	char *full = malloc(n + 1), *part;

	CHECK(full);
	CHECK(fn(u, full, n + 1) == n);
	CHECK(strlen(full) == n);
	small = n ? salt % (n + 1) : 0;
	part = malloc(small + 1);
	CHECK(part);
	memset(part, 'x', small + 1);
	CHECK(fn(u, part, small) == n);
	if (small) {
		CHECK(strlen(part) == small - 1);
		CHECK(!memcmp(part, full, small - 1));
	}
	CHECK(part[small] == 'x');	/* nothing past len written */
	free(part);
	return full;
}

/* Every property of one successfully parsed (or resolved) URL. */
static void check_url(const struct ferry_url *u, unsigned salt)
{
	char why[FERRY_URL_WHY_MAX];
	struct ferry_url v, w;
	char *text;

	check_bytes(u->host, u->host_len);
	check_bytes(u->target, u->target_len);
	CHECK(u->target_len && u->target[0] == '/');
	CHECK(u->port != 0);
	CHECK(u->port_explicit || u->port == ferry_url_default_port(u->scheme));
	free(check_fmt(u, ferry_url_origin, salt));
	free(check_fmt(u, ferry_url_authority, salt >> 8));
	text = check_fmt(u, ferry_url_format, salt >> 16);
	CHECK(ferry_url_parse(&v, text, strlen(text), why, sizeof(why)) == 0);
	CHECK(same_url(u, &v));
	ferry_url_free(&v);
	CHECK(ferry_url_copy(&w, u) == 0);
	CHECK(same_url(u, &w));
	ferry_url_free(&w);
	free(text);
}

/* Does the path part of the target hold a "." or ".." segment? */
static bool has_dots(const struct ferry_url *u)
{
	size_t end = strcspn(u->target, "?");
	size_t i = 0;

	while (i < end) {
		size_t j = i + 1;

		while (j < end && u->target[j] != '/')
			j++;
		/* segment is target[i+1 .. j) */
		if ((j - i == 2 && u->target[i + 1] == '.') ||
		    (j - i == 3 && u->target[i + 1] == '.' &&
		     u->target[i + 2] == '.'))
			return true;
		i = j;
	}
	return false;
}

static void check_resolve(const struct ferry_url *base, const char *ref,
			  size_t len, unsigned salt)
{
	char why[FERRY_URL_WHY_MAX] = "";
	struct ferry_url out, again, other;
	const char *hash;
	size_t n;
	char *text;
	int err;

	err = ferry_url_resolve(&out, base, ref, len, why, sizeof(why));
	if (err) {
		CHECK(err == FERRY_EURL);
		CHECK(why[0]);
		CHECK(out.host == NULL && out.ferry__mem == NULL);
		return;
	}
	check_url(&out, salt);
	/* RFC 3986 5.2.2: dot segments go, except from a base path taken
	 * as it is (an empty reference, or one that is only a query) */
	hash = memchr(ref, '#', len);
	n = hash ? (size_t)(hash - ref) : len;
	if (n && ref[0] != '?')
		CHECK(!has_dots(&out));
	if (has_dots(&out))
		goto out;
	/* an absolute URL without dot segments resolves to itself against
	 * any base */
	n = ferry_url_format(&out, NULL, 0);
	text = malloc(n + 1);
	CHECK(text);
	ferry_url_format(&out, text, n + 1);
	CHECK(ferry_url_resolve(&again, base, text, n, why, sizeof(why)) == 0);
	CHECK(same_url(&out, &again));
	ferry_url_free(&again);
	CHECK(ferry_url_parse(&other, FIXED_BASE, sizeof(FIXED_BASE) - 1, why,
			      sizeof(why)) == 0);
	CHECK(ferry_url_resolve(&again, &other, text, n, why, sizeof(why)) == 0);
	CHECK(same_url(&out, &again));
	ferry_url_free(&again);
	ferry_url_free(&other);
	free(text);
out:
	ferry_url_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char why[FERRY_URL_WHY_MAX];
	struct ferry_url base, whole;
	const char *s = (const char *)data + 1;
	size_t cut, n;
	unsigned salt;

	if (len < 1)
		return 0;
	n = len - 1;
	cut = n ? data[0] % (n + 1) : 0;
	salt = n ? (unsigned)data[0] * 2654435761u : 0;
	/* the whole input as one URL */
	if (ferry_url_parse(&whole, s, n, why, sizeof(why)) == 0) {
		check_url(&whole, salt);
		/* and the input as a Location against itself */
		check_resolve(&whole, s, n, salt);
		ferry_url_free(&whole);
	} else {
		CHECK(whole.host == NULL && whole.ferry__mem == NULL);
	}
	/* base | reference */
	if (ferry_url_parse(&base, s, cut, why, sizeof(why)) != 0)
		CHECK(ferry_url_parse(&base, FIXED_BASE, sizeof(FIXED_BASE) - 1,
				      why, sizeof(why)) == 0);
	check_resolve(&base, s + cut, n - cut, salt);
	ferry_url_free(&base);
	return 0;
}
