/*
 * ferry/url.h - http and https URLs: parse, resolve redirects, origin keys.
 *
 * A parsed URL holds what an HTTP/1.1 client needs and nothing else: the
 * scheme, the host (a name, an IPv4 or an IPv6 literal), the port, and the
 * request-target (path and query, exactly as given). The fragment is
 * dropped: it is never sent.
 *
 * Accepted:  http://host[:port][/path][?query][#fragment]  (and https)
 *   - scheme case-insensitive; host names lowercased; ASCII only;
 *   - host: a DNS name (letters, digits, '-', '_', '.', labels 1..63
 *     bytes, 253 bytes in all, one trailing dot allowed), a strict
 *     dotted-quad IPv4 literal (no leading zeros), or a bracketed IPv6
 *     literal, stored without brackets in canonical (inet_ntop) form;
 *   - port 1..65535; absent or empty (http://h:/) means 80 or 443;
 *   - path and query: printable ASCII, percent escapes must be %XX and
 *     are kept as they are; an empty path becomes "/".
 * Refused, with FERRY_EURL and a reason naming the part:
 *   - userinfo (user:pass@host): credentials belong in an Authorization
 *     header, where they are dropped on cross-origin redirects;
 *   - IPv6 zone ids ([fe80::1%25eth0]);
 *   - a host that ends in a number but is not a strict dotted quad
 *     (127.1, 0x7f.0.0.1, 010.0.0.1): getaddrinfo would read those as
 *     IPv4 in ways nobody expects;
 *   - CR, LF, NUL, space, other control bytes and non-ASCII bytes
 *     anywhere (percent-encode them);
 *   - URLs longer than FERRY_URL_MAX bytes.
 *
 * Ownership: a struct ferry_url owns one heap block holding its strings;
 * ferry_url_free() releases it. A zeroed struct is a valid "empty" URL that
 * may be freed. The parse and resolve calls fill *u only on success; on
 * failure *u is left zeroed, with nothing to free.
 *
 * Thread: none of these functions has hidden state; any thread may call
 * them on URLs it owns.
 *
 * Errors: FERRY_EURL (the URL is wrong; why says where), -ENOMEM,
 * FERRY_EINVAL (a NULL pointer where one is not allowed).
 */
#ifndef FERRY_URL_H
#define FERRY_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest URL accepted, in bytes. */
#define FERRY_URL_MAX 65536

/* A why-buffer of this size always holds the whole reason. */
#define FERRY_URL_WHY_MAX 96

enum ferry_url_scheme {
	FERRY_URL_HTTP = 0,
	FERRY_URL_HTTPS = 1,
};

enum ferry_url_host_type {
	FERRY_URL_HOST_NAME = 0,	/* resolve it with DNS */
	FERRY_URL_HOST_IPV4 = 1,	/* dotted quad, no lookup needed */
	FERRY_URL_HOST_IPV6 = 2,	/* without brackets */
};

/*
 * struct ferry_url - a parsed URL. Read the fields; do not write them.
 *
 * host and target are NUL-terminated and point into the URL's own block:
 * valid until ferry_url_free(). port is always set (default or explicit).
 */
struct ferry_url {
	enum ferry_url_scheme scheme;
	enum ferry_url_host_type host_type;
	uint16_t port;
	bool port_explicit;	/* the URL spelled a port (even the default) */
	const char *host;	/* lowercase, IPv6 without brackets */
	size_t host_len;
	const char *target;	/* request-target: "/path?query", never empty */
	size_t target_len;
	/* private: */
	char *ferry__mem;	/* the one allocation host and target live in */
};

/*
 * ferry_url_parse - parse an absolute http or https URL.
 *
 * url need not be NUL-terminated: exactly len bytes are read (a NUL among
 * them is an error). On failure, if why is not NULL, a NUL-terminated
 * reason of at most whylen bytes is written there, e.g. "bad port",
 * "missing host", "unsupported scheme 'ftp'", "invalid character in host",
 * "CR/LF in URL". On success why is left alone.
 *
 * Returns 0, FERRY_EURL, -ENOMEM or FERRY_EINVAL (u or url NULL).
 */
int ferry_url_parse(struct ferry_url *u, const char *url, size_t len,
		    char *why, size_t whylen);

/*
 * ferry_url_resolve - resolve a redirect's Location against a base URL.
 *
 * ref may be an absolute URL (http://h/x), scheme-relative (//h/x), an
 * absolute path (/x), a relative path (x, ../x), a query (?q) or empty;
 * the rules are RFC 3986 section 5.2 (dot segments are removed from the
 * resolved path; percent escapes are kept as they are). A fragment in ref
 * is dropped. The result is a new URL in *out, which the caller frees;
 * base is not changed and may be freed afterwards.
 *
 * Returns 0, FERRY_EURL (why names the problem, e.g. "unsupported scheme
 * 'ftp'"), -ENOMEM or FERRY_EINVAL.
 */
int ferry_url_resolve(struct ferry_url *out, const struct ferry_url *base,
		      const char *ref, size_t len, char *why, size_t whylen);

/*
 * ferry_url_copy - make dst an independent copy of src (its own block).
 * Returns 0, -ENOMEM or FERRY_EINVAL. On failure dst is zeroed.
 */
int ferry_url_copy(struct ferry_url *dst, const struct ferry_url *src);

/*
 * ferry_url_free - release the URL's block and zero the struct. Accepts a
 * zeroed struct and NULL.
 */
void ferry_url_free(struct ferry_url *u);

/* The scheme's name, "http" or "https". Constant string. */
const char *ferry_url_scheme_name(enum ferry_url_scheme scheme);

/* The scheme's default port: 80 or 443. */
uint16_t ferry_url_default_port(enum ferry_url_scheme scheme);

/*
 * The following write a NUL-terminated string into buf like snprintf: they
 * return the length the full string needs (without the NUL) and write at
 * most len bytes, so a return value >= len means buf was too small (and
 * holds a truncated string if len > 0). buf may be NULL when len is 0.
 */

/*
 * ferry_url_origin - the origin key for connection pooling:
 * "scheme://host:port", the port always present, IPv6 in brackets. Two
 * URLs share connections exactly when their origin keys are equal.
 */
size_t ferry_url_origin(const struct ferry_url *u, char *buf, size_t len);

/*
 * ferry_url_authority - the Host header value: "host" or "host:port" when
 * the port is not the scheme's default, IPv6 in brackets.
 */
size_t ferry_url_authority(const struct ferry_url *u, char *buf, size_t len);

/*
 * ferry_url_format - the whole URL, "scheme://authority/target"; it parses
 * back to an equal URL.
 */
size_t ferry_url_format(const struct ferry_url *u, char *buf, size_t len);

/*
 * ferry_url_same_origin - true when a and b have the same scheme, host and
 * port (the test for dropping Authorization and Cookie on a redirect).
 */
bool ferry_url_same_origin(const struct ferry_url *a,
			   const struct ferry_url *b);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_URL_H */
