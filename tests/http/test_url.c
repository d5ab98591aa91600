/*
 * test_url.c - ferry_url_parse, ferry_url_resolve and the string helpers.
 *
 * Table-driven: every good URL is checked field by field, every bad one by
 * its exact reason, so a message that drifts fails here.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/url.h"

struct good {
	const char *in;
	enum ferry_url_scheme scheme;
	const char *host;
	enum ferry_url_host_type type;
	uint16_t port;
	const char *target;
	const char *origin;
	const char *authority;
};

static const struct good goods[] = {
	{ "http://example.com", FERRY_URL_HTTP, "example.com",
	  FERRY_URL_HOST_NAME, 80, "/", "http://example.com:80", "example.com" },
	{ "HTTPS://Example.COM/Path?Q=1#frag", FERRY_URL_HTTPS, "example.com",
	  FERRY_URL_HOST_NAME, 443, "/Path?Q=1", "https://example.com:443",
	  "example.com" },
	{ "hTTp://example.com:8080/a%20b?x=%2F&y=%e2%82%ac", FERRY_URL_HTTP,
	  "example.com", FERRY_URL_HOST_NAME, 8080, "/a%20b?x=%2F&y=%e2%82%ac",
	  "http://example.com:8080", "example.com:8080" },
	{ "http://127.0.0.1:1/", FERRY_URL_HTTP, "127.0.0.1",
	  FERRY_URL_HOST_IPV4, 1, "/", "http://127.0.0.1:1", "127.0.0.1:1" },
	{ "http://0.0.0.0/", FERRY_URL_HTTP, "0.0.0.0", FERRY_URL_HOST_IPV4, 80,
	  "/", "http://0.0.0.0:80", "0.0.0.0" },
	{ "https://255.255.255.255:443", FERRY_URL_HTTPS, "255.255.255.255",
	  FERRY_URL_HOST_IPV4, 443, "/", "https://255.255.255.255:443",
	  "255.255.255.255" },
	{ "http://[::1]:8080/x", FERRY_URL_HTTP, "::1", FERRY_URL_HOST_IPV6,
	  8080, "/x", "http://[::1]:8080", "[::1]:8080" },
	{ "https://[2001:DB8:0:0::1]/", FERRY_URL_HTTPS, "2001:db8::1",
	  FERRY_URL_HOST_IPV6, 443, "/", "https://[2001:db8::1]:443",
	  "[2001:db8::1]" },
	{ "http://[::ffff:1.2.3.4]/a", FERRY_URL_HTTP, "::ffff:1.2.3.4",
	  FERRY_URL_HOST_IPV6, 80, "/a", "http://[::ffff:1.2.3.4]:80",
	  "[::ffff:1.2.3.4]" },
	{ "http://h:65535", FERRY_URL_HTTP, "h", FERRY_URL_HOST_NAME, 65535,
	  "/", "http://h:65535", "h:65535" },
	{ "http://example.com?x=1", FERRY_URL_HTTP, "example.com",
	  FERRY_URL_HOST_NAME, 80, "/?x=1", "http://example.com:80",
	  "example.com" },
	{ "http://example.com#frag", FERRY_URL_HTTP, "example.com",
	  FERRY_URL_HOST_NAME, 80, "/", "http://example.com:80", "example.com" },
	{ "http://example.com/#", FERRY_URL_HTTP, "example.com",
	  FERRY_URL_HOST_NAME, 80, "/", "http://example.com:80", "example.com" },
	{ "http://h:/p", FERRY_URL_HTTP, "h", FERRY_URL_HOST_NAME, 80, "/p",
	  "http://h:80", "h" },
	{ "https://h:0443/", FERRY_URL_HTTPS, "h", FERRY_URL_HOST_NAME, 443,
	  "/", "https://h:443", "h" },
	{ "http://a-b_c.D9.example./x/../y/./z", FERRY_URL_HTTP,
	  "a-b_c.d9.example.", FERRY_URL_HOST_NAME, 80, "/x/../y/./z",
	  "http://a-b_c.d9.example.:80", "a-b_c.d9.example." },
	{ "http://1.2.3.4.example/", FERRY_URL_HTTP, "1.2.3.4.example",
	  FERRY_URL_HOST_NAME, 80, "/", "http://1.2.3.4.example:80",
	  "1.2.3.4.example" },
	{ "http://h/p?q=a?b/c:d@e[]!$&'()*+,;=", FERRY_URL_HTTP, "h",
	  FERRY_URL_HOST_NAME, 80, "/p?q=a?b/c:d@e[]!$&'()*+,;=",
	  "http://h:80", "h" },
	{ "http://h//double//slash", FERRY_URL_HTTP, "h", FERRY_URL_HOST_NAME,
	  80, "//double//slash", "http://h:80", "h" },
};

Test(url, good_urls)
{
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		struct ferry_url u;
		char why[FERRY_URL_WHY_MAX] = "";
		char buf[256];
		int err;

		err = ferry_url_parse(&u, g->in, strlen(g->in), why, sizeof(why));
		cr_assert_eq(err, 0, "%s: err %d (%s)", g->in, err, why);
		cr_expect_eq(u.scheme, g->scheme, "%s: scheme", g->in);
		cr_expect_str_eq(u.host, g->host, "%s: host", g->in);
		cr_expect_eq(u.host_len, strlen(g->host), "%s: host_len", g->in);
		cr_expect_eq(u.host_type, g->type, "%s: host type", g->in);
		cr_expect_eq(u.port, g->port, "%s: port", g->in);
		cr_expect_str_eq(u.target, g->target, "%s: target", g->in);
		cr_expect_eq(u.target_len, strlen(g->target), "%s", g->in);
		cr_expect_eq(ferry_url_origin(&u, buf, sizeof(buf)),
			     strlen(g->origin), "%s: origin len", g->in);
		cr_expect_str_eq(buf, g->origin, "%s: origin", g->in);
		cr_expect_eq(ferry_url_authority(&u, buf, sizeof(buf)),
			     strlen(g->authority), "%s", g->in);
		cr_expect_str_eq(buf, g->authority, "%s: authority", g->in);
		ferry_url_free(&u);
		cr_expect_null(u.host);
	}
}

struct bad {
	const char *in;
	size_t len;	/* 0: strlen */
	const char *why;
};

static const struct bad bads[] = {
	{ "", 0, "missing scheme (expected http:// or https://)" },
	{ "example.com/x", 0, "missing scheme (expected http:// or https://)" },
	{ "/just/a/path", 0, "missing scheme (expected http:// or https://)" },
	{ "example.com:80/x", 0, "unsupported scheme 'example.com'" },
	{ "ftp://h/", 0, "unsupported scheme 'ftp'" },
	{ "httpx://h/", 0, "unsupported scheme 'httpx'" },
	{ "averyveryveryverylongscheme://h/", 0,
	  "unsupported scheme 'averyveryveryver'" },
	{ "http:/h", 0, "missing '//' after scheme" },
	{ "http:h", 0, "missing '//' after scheme" },
	{ "http:", 0, "missing '//' after scheme" },
	{ "http://", 0, "missing host" },
	{ "http:///x", 0, "missing host" },
	{ "http://:80/", 0, "missing host" },
	{ "http://?q", 0, "missing host" },
	{ "http://h:0/", 0, "bad port" },
	{ "http://h:65536/", 0, "bad port" },
	{ "http://h:8a/", 0, "bad port" },
	{ "http://h:-1/", 0, "bad port" },
	{ "http://h:80:90/", 0, "bad port" },
	{ "http://h:99999999999999999999999/", 0, "bad port" },
	{ "http://[::1]:0/", 0, "bad port" },
	{ "http://u:p@h/", 0, "userinfo (user@) in URL not supported" },
	{ "http://@h/", 0, "userinfo (user@) in URL not supported" },
	{ "http://h%41/", 0, "invalid character in host" },
	{ "http://ex!ample.com/", 0, "invalid character in host" },
	{ "http://exa*mple/", 0, "invalid character in host" },
	{ "http://exa mple.com/", 0, "space in URL" },
	{ " http://h/", 0, "space in URL" },
	{ "http://h/\r\nX-Injected: 1", 0, "CR/LF in URL" },
	{ "http://h/\n", 0, "CR/LF in URL" },
	{ "http://h/\0x", 10, "NUL in URL" },
	{ "http://h/\t", 0, "control character in URL" },
	{ "http://h/\x7f", 0, "control character in URL" },
	{ "http://h/\xc3\xa9", 0, "non-ASCII byte in URL (percent-encode it)" },
	{ "http://\xc3\xa9.com/", 0, "non-ASCII byte in URL (percent-encode it)" },
	{ "http://[::1/", 0, "unterminated IPv6 literal" },
	{ "http://[::1]x/", 0, "invalid character after IPv6 literal" },
	{ "http://[fe80::1%25eth0]/", 0, "IPv6 zone id not supported" },
	{ "http://[1.2.3.4]/", 0, "invalid IPv6 address" },
	{ "http://[]/", 0, "invalid IPv6 address" },
	{ "http://[::g]/", 0, "invalid IPv6 address" },
	{ "http://[1:2:3:4:5:6:7:8:9:0:1:2:3:4:5:6:7]/", 0,
	  "invalid IPv6 address" },
	{ "http://127.1/", 0, "invalid IPv4 address" },
	{ "http://0x7f.0.0.1/", 0, "invalid IPv4 address" },
	{ "http://example.0x10/", 0, "invalid IPv4 address" },
	{ "http://010.0.0.1/", 0, "invalid IPv4 address" },
	{ "http://256.0.0.1/", 0, "invalid IPv4 address" },
	{ "http://1.2.3.4.5/", 0, "invalid IPv4 address" },
	{ "http://1.2.3.4./", 0, "invalid IPv4 address" },
	{ "http://2130706433/", 0, "invalid IPv4 address" },
	{ "http://a..b/", 0, "empty label in host" },
	{ "http://.a/", 0, "empty label in host" },
	{ "http://a../", 0, "empty label in host" },
	{ "http://./", 0, "missing host" },
	{ "http://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com/",
	  0, "host label longer than 63 bytes" },
	{ "http://h/%zz", 0, "bad percent-encoding in path" },
	{ "http://h/%", 0, "bad percent-encoding in path" },
	{ "http://h/a%4", 0, "bad percent-encoding in path" },
	{ "http://h/?a=%4", 0, "bad percent-encoding in query" },
	{ "http://h/?a=%G0#%zz", 0, "bad percent-encoding in query" },
};

Test(url, bad_urls)
{
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];
		size_t len = b->len ? b->len : strlen(b->in);
		struct ferry_url u;
		char why[FERRY_URL_WHY_MAX] = "";
		int err;

		memset(&u, 0xa5, sizeof(u));
		err = ferry_url_parse(&u, b->in, len, why, sizeof(why));
		cr_expect_eq(err, FERRY_EURL, "case %zu '%s': err %d", i, b->in,
			     err);
		cr_expect_str_eq(why, b->why, "case %zu '%s'", i, b->in);
		/* a failed parse leaves nothing to free */
		cr_expect_null(u.host, "case %zu", i);
		cr_expect_null(u.ferry__mem, "case %zu", i);
		ferry_url_free(&u);
	}
}

static char *repeat(char c, size_t n, const char *prefix, const char *suffix)
{
	size_t pl = strlen(prefix), sl = strlen(suffix);
	char *s = malloc(pl + n + sl + 1);

	cr_assert_not_null(s);
	memcpy(s, prefix, pl);
	memset(s + pl, c, n);
	memcpy(s + pl + n, suffix, sl + 1);
	return s;
}

Test(url, host_length_limits)
{
	char why[FERRY_URL_WHY_MAX];
	struct ferry_url u;
	/* 4 labels of 63 + 3 dots = 255 > 253 */
	char host[300];
	char url[320];

	memset(host, 0, sizeof(host));
	for (int i = 0; i < 4; i++) {
		memset(host + i * 64, 'a' + i, 63);
		if (i < 3)
			host[i * 64 + 63] = '.';
	}
	snprintf(url, sizeof(url), "http://%s/", host);
	cr_assert_eq(ferry_url_parse(&u, url, strlen(url), why, sizeof(why)),
		     FERRY_EURL);
	cr_expect_str_eq(why, "host name too long");
	/* 253 bytes exactly is fine, with or without the root dot */
	host[253] = 0;
	snprintf(url, sizeof(url), "http://%s./", host);
	cr_assert_eq(ferry_url_parse(&u, url, strlen(url), why, sizeof(why)), 0,
		     "%s", why);
	cr_expect_eq(u.host_len, 254);
	ferry_url_free(&u);
	/* a label of exactly 63 bytes is fine */
	char *s = repeat('x', 63, "http://", ".com/");

	cr_expect_eq(ferry_url_parse(&u, s, strlen(s), why, sizeof(why)), 0);
	ferry_url_free(&u);
	free(s);
}

Test(url, url_length_limit)
{
	char why[FERRY_URL_WHY_MAX];
	struct ferry_url u;
	char *s = repeat('a', FERRY_URL_MAX - strlen("http://h/"), "http://h/", "");

	cr_assert_eq(strlen(s), FERRY_URL_MAX);
	cr_expect_eq(ferry_url_parse(&u, s, strlen(s), why, sizeof(why)), 0);
	cr_expect_eq(u.target_len, FERRY_URL_MAX - strlen("http://h"));
	ferry_url_free(&u);
	free(s);
	s = repeat('a', FERRY_URL_MAX + 1 - strlen("http://h/"), "http://h/", "");
	cr_expect_eq(ferry_url_parse(&u, s, strlen(s), why, sizeof(why)),
		     FERRY_EURL);
	cr_expect_str_eq(why, "URL too long");
	free(s);
}

Test(url, length_is_honoured_not_nul)
{
	const char *s = "http://example.com/abc/def";
	struct ferry_url u;

	/* only the first 22 bytes: "http://example.com/abc" */
	cr_assert_eq(ferry_url_parse(&u, s, 22, NULL, 0), 0);
	cr_expect_str_eq(u.target, "/abc");
	ferry_url_free(&u);
	/* "http://exa" */
	cr_assert_eq(ferry_url_parse(&u, s, 10, NULL, 0), 0);
	cr_expect_str_eq(u.host, "exa");
	ferry_url_free(&u);
}

Test(url, why_is_optional_and_truncated)
{
	struct ferry_url u;
	char small[8];

	cr_expect_eq(ferry_url_parse(&u, "ftp://x", 7, NULL, 0), FERRY_EURL);
	cr_expect_eq(ferry_url_parse(&u, "ftp://x", 7, small, sizeof(small)),
		     FERRY_EURL);
	cr_expect_str_eq(small, "unsuppo");
	cr_expect_eq(ferry_url_parse(NULL, "http://h/", 9, NULL, 0), FERRY_EINVAL);
	cr_expect_eq(ferry_url_parse(&u, NULL, 0, NULL, 0), FERRY_EINVAL);
	ferry_url_free(NULL);
}

Test(url, format_round_trip_and_copy)
{
	static const char *const in[] = {
		"http://example.com/a?b",
		"https://[2001:db8::1]:8443/x%20y?q#f",
		"http://127.0.0.1:80/",
		"https://h:80/p",
	};

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct ferry_url u, v, c;
		char buf[128], buf2[128];
		size_t n;

		cr_assert_eq(ferry_url_parse(&u, in[i], strlen(in[i]), NULL, 0), 0);
		n = ferry_url_format(&u, buf, sizeof(buf));
		cr_expect_eq(n, strlen(buf));
		cr_assert_eq(ferry_url_parse(&v, buf, n, NULL, 0), 0, "%s", buf);
		cr_expect(ferry_url_same_origin(&u, &v));
		cr_expect_str_eq(u.target, v.target);
		cr_assert_eq(ferry_url_copy(&c, &u), 0);
		ferry_url_free(&u);	/* the copy must not share memory */
		ferry_url_format(&c, buf2, sizeof(buf2));
		cr_expect_str_eq(buf2, buf);
		ferry_url_free(&v);
		ferry_url_free(&c);
	}
}

Test(url, helpers_report_needed_length)
{
	struct ferry_url u;
	char tiny[5];

	cr_assert_eq(ferry_url_parse(&u, "https://example.com/", 20, NULL, 0), 0);
	cr_expect_eq(ferry_url_origin(&u, NULL, 0), strlen("https://example.com:443"));
	cr_expect_eq(ferry_url_format(&u, tiny, sizeof(tiny)),
		     strlen("https://example.com/"));
	cr_expect_str_eq(tiny, "http");
	cr_expect_eq(ferry_url_authority(&u, tiny, sizeof(tiny)), 11);
	cr_expect_str_eq(tiny, "exam");
	cr_expect_str_eq(ferry_url_scheme_name(u.scheme), "https");
	cr_expect_eq(ferry_url_default_port(FERRY_URL_HTTP), 80);
	ferry_url_free(&u);
}

Test(url, same_origin)
{
	static const struct {
		const char *a, *b;
		bool same;
	} cases[] = {
		{ "http://h/a", "http://H:80/b?c", true },
		{ "http://h/", "https://h/", false },
		{ "http://h/", "http://h:81/", false },
		{ "http://h/", "http://h2/", false },
		{ "https://[::1]/", "https://[0::1]:443/x", true },
		{ "http://127.0.0.1/", "http://[::ffff:127.0.0.1]/", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ferry_url a, b;

		cr_assert_eq(ferry_url_parse(&a, cases[i].a, strlen(cases[i].a), NULL, 0), 0);
		cr_assert_eq(ferry_url_parse(&b, cases[i].b, strlen(cases[i].b), NULL, 0), 0);
		cr_expect_eq(ferry_url_same_origin(&a, &b), cases[i].same,
			     "%s vs %s", cases[i].a, cases[i].b);
		ferry_url_free(&a);
		ferry_url_free(&b);
	}
}

struct res_case {
	const char *base;
	const char *ref;
	const char *want;	/* full URL, or NULL for an error */
	const char *why;
};

/* RFC 3986 5.4 examples (normal and abnormal), then ferry's own. */
static const struct res_case res_cases[] = {
	{ "http://a/b/c/d;p?q", "g", "http://a/b/c/g", NULL },
	{ "http://a/b/c/d;p?q", "./g", "http://a/b/c/g", NULL },
	{ "http://a/b/c/d;p?q", "g/", "http://a/b/c/g/", NULL },
	{ "http://a/b/c/d;p?q", "/g", "http://a/g", NULL },
	{ "http://a/b/c/d;p?q", "//g", "http://g/", NULL },
	{ "http://a/b/c/d;p?q", "?y", "http://a/b/c/d;p?y", NULL },
	{ "http://a/b/c/d;p?q", "g?y", "http://a/b/c/g?y", NULL },
	{ "http://a/b/c/d;p?q", "#s", "http://a/b/c/d;p?q", NULL },
	{ "http://a/b/c/d;p?q", "g#s", "http://a/b/c/g", NULL },
	{ "http://a/b/c/d;p?q", "g?y#s", "http://a/b/c/g?y", NULL },
	{ "http://a/b/c/d;p?q", ";x", "http://a/b/c/;x", NULL },
	{ "http://a/b/c/d;p?q", "g;x", "http://a/b/c/g;x", NULL },
	{ "http://a/b/c/d;p?q", "", "http://a/b/c/d;p?q", NULL },
	{ "http://a/b/c/d;p?q", ".", "http://a/b/c/", NULL },
	{ "http://a/b/c/d;p?q", "./", "http://a/b/c/", NULL },
	{ "http://a/b/c/d;p?q", "..", "http://a/b/", NULL },
	{ "http://a/b/c/d;p?q", "../", "http://a/b/", NULL },
	{ "http://a/b/c/d;p?q", "../g", "http://a/b/g", NULL },
	{ "http://a/b/c/d;p?q", "../..", "http://a/", NULL },
	{ "http://a/b/c/d;p?q", "../../", "http://a/", NULL },
	{ "http://a/b/c/d;p?q", "../../g", "http://a/g", NULL },
	{ "http://a/b/c/d;p?q", "../../../g", "http://a/g", NULL },
	{ "http://a/b/c/d;p?q", "../../../../g", "http://a/g", NULL },
	{ "http://a/b/c/d;p?q", "/./g", "http://a/g", NULL },
	{ "http://a/b/c/d;p?q", "/../g", "http://a/g", NULL },
	{ "http://a/b/c/d;p?q", "g.", "http://a/b/c/g.", NULL },
	{ "http://a/b/c/d;p?q", ".g", "http://a/b/c/.g", NULL },
	{ "http://a/b/c/d;p?q", "g..", "http://a/b/c/g..", NULL },
	{ "http://a/b/c/d;p?q", "..g", "http://a/b/c/..g", NULL },
	{ "http://a/b/c/d;p?q", "./../g", "http://a/b/g", NULL },
	{ "http://a/b/c/d;p?q", "./g/.", "http://a/b/c/g/", NULL },
	{ "http://a/b/c/d;p?q", "g/./h", "http://a/b/c/g/h", NULL },
	{ "http://a/b/c/d;p?q", "g/../h", "http://a/b/c/h", NULL },
	{ "http://a/b/c/d;p?q", "g;x=1/./y", "http://a/b/c/g;x=1/y", NULL },
	{ "http://a/b/c/d;p?q", "g;x=1/../y", "http://a/b/c/y", NULL },
	{ "http://a/b/c/d;p?q", "g?y/./x", "http://a/b/c/g?y/./x", NULL },
	{ "http://a/b/c/d;p?q", "g?y/../x", "http://a/b/c/g?y/../x", NULL },
	{ "http://a/b/c/d;p?q", "g#s/./x", "http://a/b/c/g", NULL },
	{ "http://a/b/c/d;p?q", "http://a/b/c/./../g", "http://a/b/g", NULL },
	{ "http://a/b/c/d;p?q", "http:g", NULL, "missing '//' after scheme" },
	/* ferry's cases: ports, schemes, IPv6, escapes, errors */
	{ "http://a:8080/b/c", "/x?y=%20", "http://a:8080/x?y=%20", NULL },
	{ "http://a:8080/b/c", "d", "http://a:8080/b/d", NULL },
	{ "https://a/b", "//c:81/d", "https://c:81/d", NULL },
	{ "https://a/b", "//c", "https://c/", NULL },
	{ "https://a/b", "//c?x", "https://c/?x", NULL },
	{ "http://a/b", "HTTPS://Other.Example/x", "https://other.example/x", NULL },
	{ "http://[::1]:81/a/b", "c", "http://[::1]:81/a/c", NULL },
	{ "http://[::1]/a/b", "//[::2]:9/z", "http://[::2]:9/z", NULL },
	{ "http://a/", "..", "http://a/", NULL },
	{ "http://a/b?q", "?", "http://a/b?", NULL },
	{ "http://a/b", "ftp://x/", NULL, "unsupported scheme 'ftp'" },
	{ "http://a/b", "mailto:x@y", NULL, "unsupported scheme 'mailto'" },
	{ "http://a/b", "//", NULL, "missing host" },
	{ "http://a/b", "//u@h/", NULL, "userinfo (user@) in URL not supported" },
	{ "http://a/b", "http://h:99999/", NULL, "bad port" },
	{ "http://a/b", "/x\r\nSet-Cookie: a=b", NULL, "CR/LF in URL" },
	{ "http://a/b", "/a b", NULL, "space in URL" },
	{ "http://a/b", "/%zz", NULL, "bad percent-encoding in path" },
};

Test(url, resolve)
{
	for (size_t i = 0; i < sizeof(res_cases) / sizeof(res_cases[0]); i++) {
		const struct res_case *c = &res_cases[i];
		struct ferry_url base, out;
		char why[FERRY_URL_WHY_MAX] = "";
		char buf[256];
		int err;

		cr_assert_eq(ferry_url_parse(&base, c->base, strlen(c->base),
					     NULL, 0), 0);
		err = ferry_url_resolve(&out, &base, c->ref, strlen(c->ref),
					why, sizeof(why));
		if (c->want) {
			cr_expect_eq(err, 0, "'%s' + '%s': %d %s", c->base,
				     c->ref, err, why);
			if (!err) {
				ferry_url_format(&out, buf, sizeof(buf));
				cr_expect_str_eq(buf, c->want, "'%s' + '%s'",
						 c->base, c->ref);
			}
		} else {
			cr_expect_eq(err, FERRY_EURL, "'%s' + '%s'", c->base,
				     c->ref);
			cr_expect_str_eq(why, c->why, "'%s' + '%s'", c->base,
					 c->ref);
			cr_expect_null(out.host);
		}
		ferry_url_free(&out);
		ferry_url_free(&base);
	}
}

Test(url, resolve_result_outlives_base)
{
	struct ferry_url base, out;

	cr_assert_eq(ferry_url_parse(&base, "http://a/b/c", 12, NULL, 0), 0);
	cr_assert_eq(ferry_url_resolve(&out, &base, "../d", 4, NULL, 0), 0);
	ferry_url_free(&base);
	cr_expect_str_eq(out.host, "a");
	cr_expect_str_eq(out.target, "/d");
	ferry_url_free(&out);
}

Test(url, resolve_long_host_and_path)
{
	/* the scratch buffer must fit a 253-byte host and long paths */
	char *host = repeat('h', 60, "", "");
	char base_s[400], ref[600];
	struct ferry_url base, out;
	char why[FERRY_URL_WHY_MAX] = "";

	snprintf(base_s, sizeof(base_s), "http://%s.%s.%s.%s:65535/%s/%s",
		 host, host, host, host, host, host);
	cr_assert_eq(ferry_url_parse(&base, base_s, strlen(base_s), why,
				     sizeof(why)), 0, "%s", why);
	snprintf(ref, sizeof(ref), "%s/%s/%s/../x?%s", host, host, host, host);
	cr_assert_eq(ferry_url_resolve(&out, &base, ref, strlen(ref), why,
				       sizeof(why)), 0, "%s", why);
	cr_expect_eq(out.port, 65535);
	cr_expect_eq(out.target_len, 1 + 61 + 61 + 61 + 2 + 60);
	ferry_url_free(&out);
	ferry_url_free(&base);
	free(host);
}
