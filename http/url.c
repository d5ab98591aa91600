/*
 * url.c - http/https URL parsing and redirect resolution (ferry/url.h).
 *
 * Parsing is a single left-to-right pass over the caller's bytes that
 * records offsets, then one allocation that holds the host and the
 * request-target. Resolution builds the absolute URL as text and parses
 * it, so a resolved URL passes exactly the checks a given one does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/url.h"
#include "internal.h"
#include "util.h"

/* DNS limits (RFC 1035): 63-byte labels, 253 bytes without the root dot. */
#define HOST_LABEL_MAX 63
#define HOST_MAX 253

static int ferry__url_fail(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int ferry__url_fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ferry__vwhyf(why, whylen, fmt, ap);
	va_end(ap);
	return FERRY_EURL;
}

static bool ferry__is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool ferry__is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool ferry__is_hex(char c)
{
	return ferry__is_digit(c) || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

static char ferry__to_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/*
 * Every byte of a URL must be printable ASCII: a CR or LF would split the
 * request line we build from it, a NUL would cut it, a space would end
 * it. Name the first offender so the user knows what to fix.
 */
static int ferry__check_bytes(const char *s, size_t len, char *why,
			      size_t whylen)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' || c == '\n')
			return ferry__url_fail(why, whylen, "CR/LF in URL");
		if (c == 0)
			return ferry__url_fail(why, whylen, "NUL in URL");
		if (c == ' ')
			return ferry__url_fail(why, whylen, "space in URL");
		if (c < 0x20 || c == 0x7f)
			return ferry__url_fail(why, whylen,
					       "control character in URL");
		if (c >= 0x80)
			return ferry__url_fail(
				why, whylen,
				"non-ASCII byte in URL (percent-encode it)");
	}
	return 0;
}

/*
 * RFC 3986 scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":".
 * Returns the scheme's length (the ':' is at that offset), or 0 when s
 * does not start with one (a relative reference).
 */
static size_t ferry__scheme_len(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || !ferry__is_alpha(s[0]))
		return 0;
	for (i = 1; i < len; i++) {
		char c = s[i];

		if (c == ':')
			return i;
		if (!ferry__is_alpha(c) && !ferry__is_digit(c) && c != '+' &&
		    c != '-' && c != '.')
			return 0;
	}
	return 0;
}

/* Offset of the first of the bytes in set, or len. */
static size_t ferry__span_until(const char *s, size_t len, const char *set)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (strchr(set, s[i]))
			break;
	return i;
}

static int ferry__parse_port(const char *s, size_t len, uint16_t *port,
			     char *why, size_t whylen)
{
	unsigned long v = 0;

	for (size_t i = 0; i < len; i++) {
		if (!ferry__is_digit(s[i]))
			return ferry__url_fail(why, whylen, "bad port");
		v = v * 10 + (unsigned long)(s[i] - '0');
		if (v > 65535)
			return ferry__url_fail(why, whylen, "bad port");
	}
	if (v == 0)
		return ferry__url_fail(why, whylen, "bad port");
	*port = (uint16_t)v;
	return 0;
}

/* A strict dotted quad: four decimal parts 0..255, no leading zeros. */
static bool ferry__is_strict_ipv4(const char *s, size_t len)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		size_t start = i;
		unsigned v = 0;

		if (part > 0) {
			if (i >= len || s[i] != '.')
				return false;
			start = ++i;
		}
		while (i < len && ferry__is_digit(s[i]) && i - start < 4)
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == start || i - start > 3 || v > 255)
			return false;
		if (s[start] == '0' && i - start > 1)
			return false;
	}
	return i == len;
}

/*
 * The WHATWG URL rule, for the same reason: a host whose last label is a
 * number (decimal, or 0x hex) is an IPv4 address or nothing.
 */
static bool ferry__ends_in_number(const char *s, size_t len)
{
	size_t start;
	bool digits = true;

	if (len && s[len - 1] == '.')
		len--;
	start = len;
	while (start > 0 && s[start - 1] != '.')
		start--;
	if (start == len)
		return false;
	for (size_t i = start; i < len; i++)
		if (!ferry__is_digit(s[i]))
			digits = false;
	if (digits)
		return true;
	if (len - start >= 2 && s[start] == '0' &&
	    ferry__to_lower(s[start + 1]) == 'x') {
		for (size_t i = start + 2; i < len; i++)
			if (!ferry__is_hex(s[i]))
				return false;
		return true;
	}
	return false;
}

static int ferry__check_host_name(const char *s, size_t len, char *why,
				  size_t whylen)
{
	size_t label = 0;
	size_t name_len = len;

	if (len && s[len - 1] == '.')
		name_len--;	/* one root dot allowed: "example.com." */
	if (name_len == 0)
		return ferry__url_fail(why, whylen, "missing host");
	if (name_len > HOST_MAX)
		return ferry__url_fail(why, whylen, "host name too long");
	for (size_t i = 0; i < name_len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0)
				return ferry__url_fail(why, whylen,
						       "empty label in host");
			label = 0;
			continue;
		}
		if (!ferry__is_alpha(c) && !ferry__is_digit(c) && c != '-' &&
		    c != '_')
			return ferry__url_fail(why, whylen,
					       "invalid character in host");
		if (++label > HOST_LABEL_MAX)
			return ferry__url_fail(
				why, whylen, "host label longer than 63 bytes");
	}
	if (label == 0)
		return ferry__url_fail(why, whylen, "empty label in host");
	return 0;
}

/* Path and query keep their escapes, but each must be '%' HEX HEX. */
static int ferry__check_escapes(const char *s, size_t len, const char *part,
				char *why, size_t whylen)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%')
			continue;
		if (i + 2 >= len || !ferry__is_hex(s[i + 1]) ||
		    !ferry__is_hex(s[i + 2]))
			return ferry__url_fail(why, whylen,
					       "bad percent-encoding in %s",
					       part);
	}
	return 0;
}

/* What the pass over the text found: offsets into the caller's bytes. */
struct url_parts {
	enum ferry_url_scheme scheme;
	enum ferry_url_host_type host_type;
	uint16_t port;
	bool port_explicit;
	const char *host;
	size_t host_len;
	char v6[INET6_ADDRSTRLEN];	/* canonical IPv6 text */
	const char *target;
	size_t target_len;
};

static int ferry__parse_scheme(struct url_parts *p, const char *s, size_t len,
			       size_t *pos, char *why, size_t whylen)
{
	size_t n = ferry__scheme_len(s, len);

	if (n == 0)
		return ferry__url_fail(
			why, whylen,
			"missing scheme (expected http:// or https://)");
	if (n == 4 && strncasecmp(s, "http", 4) == 0)
		p->scheme = FERRY_URL_HTTP;
	else if (n == 5 && strncasecmp(s, "https", 5) == 0)
		p->scheme = FERRY_URL_HTTPS;
	else
		return ferry__url_fail(why, whylen, "unsupported scheme '%.*s'",
				       (int)(n > 16 ? 16 : n), s);
	if (len - n < 3 || s[n + 1] != '/' || s[n + 2] != '/')
		return ferry__url_fail(why, whylen,
				       "missing '//' after scheme");
	*pos = n + 3;
	return 0;
}

static int ferry__parse_ipv6(struct url_parts *p, const char *s, size_t len,
			     char *why, size_t whylen)
{
	char tmp[INET6_ADDRSTRLEN];
	struct in6_addr a;

	if (memchr(s, '%', len))
		return ferry__url_fail(why, whylen,
				       "IPv6 zone id not supported");
	if (len == 0 || len >= sizeof(tmp))
		return ferry__url_fail(why, whylen, "invalid IPv6 address");
	memcpy(tmp, s, len);
	tmp[len] = 0;
	if (inet_pton(AF_INET6, tmp, &a) != 1)
		return ferry__url_fail(why, whylen, "invalid IPv6 address");
	inet_ntop(AF_INET6, &a, p->v6, sizeof(p->v6));
	p->host = p->v6;
	p->host_len = strlen(p->v6);
	p->host_type = FERRY_URL_HOST_IPV6;
	return 0;
}

/* authority = host [ ":" port ], userinfo refused (see url.h). */
static int ferry__parse_authority(struct url_parts *p, const char *s,
				  size_t len, char *why, size_t whylen)
{
	const char *port = NULL;
	size_t port_len = 0;
	int err;

	if (memchr(s, '@', len))
		return ferry__url_fail(why, whylen,
				       "userinfo (user@) in URL not supported");
	if (len && s[0] == '[') {
		const char *end = memchr(s, ']', len);
		size_t after;

		if (!end)
			return ferry__url_fail(why, whylen,
					       "unterminated IPv6 literal");
		err = ferry__parse_ipv6(p, s + 1, (size_t)(end - s - 1), why,
					whylen);
		if (err)
			return err;
		after = (size_t)(end - s) + 1;
		if (after < len && s[after] != ':')
			return ferry__url_fail(
				why, whylen,
				"invalid character after IPv6 literal");
		if (after < len) {
			port = s + after + 1;
			port_len = len - after - 1;
		}
	} else {
		const char *colon = memchr(s, ':', len);
		size_t host_len = colon ? (size_t)(colon - s) : len;

		if (colon) {
			port = colon + 1;
			port_len = len - host_len - 1;
		}
		if (host_len == 0)
			return ferry__url_fail(why, whylen, "missing host");
		if (ferry__ends_in_number(s, host_len)) {
			if (!ferry__is_strict_ipv4(s, host_len))
				return ferry__url_fail(why, whylen,
						       "invalid IPv4 address");
			p->host_type = FERRY_URL_HOST_IPV4;
		} else {
			err = ferry__check_host_name(s, host_len, why, whylen);
			if (err)
				return err;
			p->host_type = FERRY_URL_HOST_NAME;
		}
		p->host = s;
		p->host_len = host_len;
	}
	p->port = ferry_url_default_port(p->scheme);
	if (port && port_len) {
		err = ferry__parse_port(port, port_len, &p->port, why, whylen);
		if (err)
			return err;
		p->port_explicit = true;
	}
	return 0;
}

static int ferry__parse_parts(struct url_parts *p, const char *url, size_t len,
			      char *why, size_t whylen)
{
	size_t pos = 0, auth_len, path_len, query_len;
	const char *rest;
	int err;

	if (len > FERRY_URL_MAX)
		return ferry__url_fail(why, whylen, "URL too long");
	err = ferry__check_bytes(url, len, why, whylen);
	if (err)
		return err;
	err = ferry__parse_scheme(p, url, len, &pos, why, whylen);
	if (err)
		return err;
	auth_len = ferry__span_until(url + pos, len - pos, "/?#");
	err = ferry__parse_authority(p, url + pos, auth_len, why, whylen);
	if (err)
		return err;
	rest = url + pos + auth_len;
	len -= pos + auth_len;
	len = ferry__span_until(rest, len,
				"#"); /* the fragment is never sent */
	path_len = ferry__span_until(rest, len, "?");
	query_len = len - path_len;
	err = ferry__check_escapes(rest, path_len, "path", why, whylen);
	if (!err)
		err = ferry__check_escapes(rest + path_len, query_len, "query",
					   why, whylen);
	if (err)
		return err;
	p->target = rest;
	p->target_len = len;
	return 0;
}

/* Host and target, with their NULs and the '/' a target may lack. */
static size_t ferry__url_mem_size(size_t host_len, const char *target,
				  size_t target_len)
{
	bool slash = target_len == 0 || target[0] != '/';

	return host_len + 1 + target_len + slash + 1;
}

/* Fill @u from @p, its strings in @mem (ferry__url_mem_size bytes). */
static void ferry__url_fill(struct ferry_url *u, const struct url_parts *p,
			    char *mem)
{
	bool slash = p->target_len == 0 || p->target[0] != '/';
	size_t tlen = p->target_len + slash;

	for (size_t i = 0; i < p->host_len; i++)
		mem[i] = ferry__to_lower(p->host[i]);
	mem[p->host_len] = 0;
	u->host = mem;
	u->host_len = p->host_len;
	/* "http://h?q" has an empty path: the target becomes "/?q". */
	mem += p->host_len + 1;
	mem[0] = '/';
	memcpy(mem + slash, p->target, p->target_len);
	mem[tlen] = 0;
	u->target = mem;
	u->target_len = tlen;
	u->scheme = p->scheme;
	u->host_type = p->host_type;
	u->port = p->port;
	u->port_explicit = p->port_explicit;
}

static int ferry__url_build(struct ferry_url *u, const struct url_parts *p)
{
	char *mem = malloc(ferry__url_mem_size(p->host_len, p->target,
					       p->target_len));

	if (!mem)
		return -ENOMEM;
	ferry__url_fill(u, p, mem);
	u->ferry__mem = mem;
	return 0;
}

int ferry_url_parse(struct ferry_url *u, const char *url, size_t len,
		    char *why, size_t whylen)
{
	struct url_parts p;
	int err;

	if (!u)
		return FERRY_EINVAL;
	memset(u, 0, sizeof(*u));
	if (!url)
		return FERRY_EINVAL;
	memset(&p, 0, sizeof(p));
	err = ferry__parse_parts(&p, url, len, why, whylen);
	if (err)
		return err;
	return ferry__url_build(u, &p);
}

void ferry_url_free(struct ferry_url *u)
{
	if (!u)
		return;
	free(u->ferry__mem);
	memset(u, 0, sizeof(*u));
}

static void ferry__url_parts_of(struct url_parts *p, const struct ferry_url *src)
{
	memset(p, 0, sizeof(*p));
	p->scheme = src->scheme;
	p->host_type = src->host_type;
	p->port = src->port;
	p->port_explicit = src->port_explicit;
	p->host = src->host;
	p->host_len = src->host_len;
	p->target = src->target;
	p->target_len = src->target_len;
}

int ferry_url_copy(struct ferry_url *dst, const struct ferry_url *src)
{
	struct url_parts p;

	if (!dst)
		return FERRY_EINVAL;
	memset(dst, 0, sizeof(*dst));
	if (!src || !src->host || !src->target)
		return FERRY_EINVAL;
	ferry__url_parts_of(&p, src);
	return ferry__url_build(dst, &p);
}

size_t ferry__url_copy_size(const struct ferry_url *src)
{
	return ferry__url_mem_size(src->host_len, src->target,
				   src->target_len);
}

void ferry__url_copy_into(struct ferry_url *dst, const struct ferry_url *src,
			  char *mem)
{
	struct url_parts p;

	memset(dst, 0, sizeof(*dst));
	ferry__url_parts_of(&p, src);
	ferry__url_fill(dst, &p, mem);
}

const char *ferry_url_scheme_name(enum ferry_url_scheme scheme)
{
	return scheme == FERRY_URL_HTTPS ? "https" : "http";
}

uint16_t ferry_url_default_port(enum ferry_url_scheme scheme)
{
	return scheme == FERRY_URL_HTTPS ? 443 : 80;
}

static size_t ferry__fmt_len(int n)
{
	return n < 0 ? 0 : (size_t)n;
}

size_t ferry_url_origin(const struct ferry_url *u, char *buf, size_t len)
{
	bool v6 = u->host_type == FERRY_URL_HOST_IPV6;

	return ferry__fmt_len(snprintf(
		buf, len, "%s://%s%s%s:%u", ferry_url_scheme_name(u->scheme),
		v6 ? "[" : "", u->host, v6 ? "]" : "", (unsigned)u->port));
}

/* Authorities up to this long are built on the stack even when the
 * caller's buffer truncates them. */
#define FERRY__URL_AUTH_SMALL 320

/* The port in decimal, into p (at least 5 bytes); returns its length. */
static size_t ferry__port_digits(char *p, unsigned port)
{
	char tmp[5];
	size_t n = 0, i = 0;

	do {
		tmp[n++] = (char)('0' + port % 10);
		port /= 10;
	} while (port && n < sizeof(tmp));
	while (n)
		p[i++] = tmp[--n];
	return i;
}

/* The authority's length, without writing it. */
static size_t ferry__authority_len(const struct ferry_url *u)
{
	char port[5];
	size_t n = u->host_len + (u->host_type == FERRY_URL_HOST_IPV6 ? 2 : 0);

	if (u->port != ferry_url_default_port(u->scheme))
		n += 1 + ferry__port_digits(port, u->port);
	return n;
}

/*
 * ferry_url_authority as every request head needs it, written with
 * memcpy: snprintf's formatting was a visible share of a keep-alive
 * request's CPU. Behaves as snprintf would (truncating, NUL-terminated
 * when len > 0, returning the full length).
 */
size_t ferry_url_authority(const struct ferry_url *u, char *buf, size_t len)
{
	bool v6 = u->host_type == FERRY_URL_HOST_IPV6;
	size_t n = ferry__authority_len(u), w = 0;
	char tmp[FERRY__URL_AUTH_SMALL];

	if (!buf || len == 0)
		return n;
	if (n >= len && n >= sizeof(tmp)) {
		/* Truncated and long: rare enough for snprintf. */
		if (u->port == ferry_url_default_port(u->scheme))
			return ferry__fmt_len(snprintf(buf, len, "%s%s%s",
						       v6 ? "[" : "", u->host,
						       v6 ? "]" : ""));
		return ferry__fmt_len(
			snprintf(buf, len, "%s%s%s:%u", v6 ? "[" : "", u->host,
				 v6 ? "]" : "", (unsigned)u->port));
	}
	{
		char *out = n < len ? buf : tmp;

		if (v6)
			out[w++] = '[';
		memcpy(out + w, u->host, u->host_len);
		w += u->host_len;
		if (v6)
			out[w++] = ']';
		if (u->port != ferry_url_default_port(u->scheme)) {
			out[w++] = ':';
			w += ferry__port_digits(out + w, u->port);
		}
		if (out == tmp) {
			memcpy(buf, tmp, len - 1);
			buf[len - 1] = '\0';
		} else {
			buf[w] = '\0';
		}
	}
	return n;
}

size_t ferry_url_format(const struct ferry_url *u, char *buf, size_t len)
{
	size_t n = ferry__fmt_len(
		snprintf(buf, len, "%s://", ferry_url_scheme_name(u->scheme)));

	n += ferry_url_authority(u, n < len ? buf + n : NULL,
				 n < len ? len - n : 0);
	n += ferry__fmt_len(snprintf(n < len ? buf + n : NULL,
				     n < len ? len - n : 0, "%s", u->target));
	return n;
}

bool ferry_url_same_origin(const struct ferry_url *a,
			   const struct ferry_url *b)
{
	return a->scheme == b->scheme && a->port == b->port &&
	       a->host_len == b->host_len &&
	       memcmp(a->host, b->host, a->host_len) == 0;
}

/*
 * RFC 3986 5.2.4 ferry__remove_dot_segments, in place: the output never grows,
 * so it is written over the input it has already consumed. Returns the
 * new length.
 */
static size_t ferry__remove_dot_segments(char *s, size_t len)
{
	size_t in = 0, out = 0;

	while (in < len) {
		const char *p = s + in;
		size_t left = len - in;

		if (left >= 3 && memcmp(p, "../", 3) == 0) {
			in += 3;
		} else if (left >= 2 && memcmp(p, "./", 2) == 0) {
			in += 2;
		} else if (left >= 3 && memcmp(p, "/./", 3) == 0) {
			in += 2;
		} else if (left == 2 && memcmp(p, "/.", 2) == 0) {
			s[++in] = '/';	/* "/." at the end becomes "/" */
		} else if ((left >= 4 && memcmp(p, "/../", 4) == 0) ||
			   (left == 3 && memcmp(p, "/..", 3) == 0)) {
			/* go on from "/" and drop the last output segment */
			in += 2;
			if (left == 3)
				s[in] = '/';
			else
				in++;
			while (out > 0 && s[--out] != '/')
				;
		} else if ((left == 1 && p[0] == '.') ||
			   (left == 2 && memcmp(p, "..", 2) == 0)) {
			in = len;
		} else {
			size_t n = 1;

			while (n < left && p[n] != '/')
				n++;
			memmove(s + out, p, n);
			out += n;
			in += n;
		}
	}
	return out;
}

/* Append n bytes to the scratch text being built by resolve. */
static void ferry__put(char *buf, size_t *len, const char *s, size_t n)
{
	memcpy(buf + *len, s, n);
	*len += n;
}

/*
 * Lay out "scheme://authority" then the reference's path, then its query;
 * the path's dot segments are removed before the query is appended.
 */
static void ferry__resolve_into(char *buf, size_t cap, size_t *blen,
				const struct ferry_url *base, const char *ref,
				size_t len)
{
	const char *scheme = ferry_url_scheme_name(base->scheme);
	size_t sl = ferry__scheme_len(ref, len);
	size_t base_path =
		ferry__span_until(base->target, base->target_len, "?");
	size_t start, path_len;
	bool dots = true;

	if (sl > 0 || (len >= 2 && ref[0] == '/' && ref[1] == '/')) {
		/* absolute or scheme-relative: keep its own authority */
		size_t a = sl ? sl + 1 : 0;

		if (sl == 0) {
			ferry__put(buf, blen, scheme, strlen(scheme));
			ferry__put(buf, blen, ":", 1);
		}
		if (len - a >= 2 && ref[a] == '/' && ref[a + 1] == '/')
			a += 2 +
			     ferry__span_until(ref + a + 2, len - a - 2, "/?");
		ferry__put(buf, blen, ref, a);
		ref += a;
		len -= a;
		start = *blen;
	} else {
		*blen = ferry__fmt_len(snprintf(buf, cap, "%s://", scheme));
		*blen += ferry_url_authority(base, buf + *blen, cap - *blen);
		start = *blen;
		if (len == 0 || ref[0] == '?') {
			/* the base path as it is, with ref's query, or with
			 * the base's own when ref is empty (RFC 3986 5.2.2) */
			ferry__put(buf, blen, base->target, base_path);
			if (len == 0) {
				ref = base->target + base_path;
				len = base->target_len - base_path;
			}
			dots = false;
		} else if (ref[0] != '/') {
			/* merge: the base path up to its last '/' */
			size_t dir = base_path;

			while (dir > 0 && base->target[dir - 1] != '/')
				dir--;
			ferry__put(buf, blen, base->target, dir);
		}
	}
	path_len = ferry__span_until(ref, len, "?");
	ferry__put(buf, blen, ref, path_len);
	if (dots)
		*blen = start +
			ferry__remove_dot_segments(buf + start, *blen - start);
	ferry__put(buf, blen, ref + path_len, len - path_len);
}

int ferry_url_resolve(struct ferry_url *out, const struct ferry_url *base,
		      const char *ref, size_t len, char *why, size_t whylen)
{
	char *buf;
	size_t cap, blen = 0;
	int err;

	if (!out)
		return FERRY_EINVAL;
	memset(out, 0, sizeof(*out));
	if (!base || !base->host || !base->target || !ref)
		return FERRY_EINVAL;
	if (len > FERRY_URL_MAX)
		return ferry__url_fail(why, whylen, "URL too long");
	err = ferry__check_bytes(ref, len, why, whylen);
	if (err)
		return err;
	len = ferry__span_until(ref, len, "#");
	/* scheme, "://", bracketed host, ":port", base path, ref */
	cap = 16 + base->host_len + 8 + base->target_len + len + 1;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	ferry__resolve_into(buf, cap, &blen, base, ref, len);
	err = ferry_url_parse(out, buf, blen, why, whylen);
	free(buf);
	return err;
}
