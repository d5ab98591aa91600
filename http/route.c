/*
 * route.c - how a request's connections are made: the route (direct,
 * through a proxy, to a Unix socket) picked per request, the client's
 * proxy configuration (options or curl's environment variables, NO_PROXY)
 * and the transport chain (transport.h) for a new connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "tls.h"
#include "transport.h"
#include "util.h"

#define DEF_TLS_CACHE 64

/* A cache size option: 0 is the default, FERRY_HTTP_NO_CACHE none. */
static unsigned ferry__cache_size(unsigned opt)
{
	return opt == FERRY_HTTP_NO_CACHE ? 0 : opt ? opt : DEF_TLS_CACHE;
}

/*
 * ferry__client_tls - make sure the TLS config (trust anchors) is loaded:
 * once per client, at its first https request, so that http-only clients
 * never pay for parsing the CA bundle. 0, FERRY_EINVAL, FERRY_ETLS_CA or
 * FERRY_ETLS_CLIENT_CERT (@why says) or -ENOMEM.
 */
int ferry__client_tls(struct ferry_http_client *c, char *why, size_t whylen)
{
	struct ferry__tls_settings set = {
		.ca_file = c->opts.ca_file,
		.ca_dir = c->opts.ca_dir,
		.insecure = c->opts.tls_insecure_skip_verify,
		.ciphers = c->opts.tls_ciphers,
		.session_cache = ferry__cache_size(c->opts.tls_session_cache),
		.verify_cache = ferry__cache_size(c->opts.tls_verify_cache),
		.session_lifetime_s =
			c->opts.tls_session_lifetime_ms == FERRY_HTTP_NO_TIMEOUT
				? 0
				: (c->opts.tls_session_lifetime_ms + 999) /
					  1000,
		.min_version = c->opts.tls_min_version,
		.legacy_suites = c->opts.tls_allow_legacy_suites,
		.min_rsa_bits = c->opts.tls_min_rsa_bits,
		.allow_sha1 = c->opts.tls_allow_sha1,
		.allow_renegotiation = c->opts.tls_allow_renegotiation,
		.send_record_max = c->opts.tls_send_record_max,
		.client_cert = c->opts.tls_client_cert,
		.client_key = c->opts.tls_client_key,
	};

	if (c->tls_cfg)
		return 0;
	return ferry__tls_config_new(&set, &c->tls_cfg, why, whylen);
}

/* A socket to the proxy, and TLS to it for an https:// proxy. */
static int ferry__route_to_proxy(struct ferry_http_client *c,
				 const struct ferry__proxy *p,
				 struct ferry__transport_clock *clock,
				 struct ferry__transport **tp)
{
	struct ferry__sock_target to = {
		.host = p->url.host,
		.host_len = p->url.host_len,
		.host_type = p->url.host_type,
		.port = p->url.port,
		.hop = "proxy ",
	};
	int err = ferry__sock_new(c, clock, &to, tp);

	if (err == 0 && p->scheme == FERRY_URL_HTTPS)
		err = ferry__tls_transport_new(c, clock, *tp, p->url.host,
				p->url.host_len,
				p->url.host_type != FERRY_URL_HOST_NAME,
				p->name, "proxy", tp);
	return err;
}

/* "host:port" (IPv6 in brackets) for CONNECT. */
static int ferry__url_hostport(const struct ferry_url *u, char **out)
{
	bool v6 = u->host_type == FERRY_URL_HOST_IPV6;

	return asprintf(out, "%s%.*s%s:%u", v6 ? "[" : "", (int)u->host_len,
			u->host, v6 ? "]" : "", u->port) < 0 ? -ENOMEM : 0;
}

/*
 * ferry__route_connect - the transport chain for a new connection to o
 * (the request's URL @u): a socket to the origin, to a Unix socket or to
 * the proxy; a CONNECT tunnel through the proxy; TLS to the origin for
 * https://, verified against the origin's name (never the proxy's).
 * 0 or a negative code.
 */
int ferry__route_connect(struct ferry_http_client *c, struct ferry__origin *o,
			 const struct ferry_url *u,
			 struct ferry__transport_clock *clock,
			 struct ferry__transport **tp)
{
	const struct ferry__route *r = &o->route;
	struct ferry__sock_target to = {
		.host = u->host,
		.host_len = u->host_len,
		.host_type = u->host_type,
		.port = u->port,
		.unix_path = r->unix_path,
		.unix_abstract = r->unix_abstract,
	};
	struct ferry__transport *t;
	char *hp;
	int err;

	switch (r->kind) {
	case FERRY__ROUTE_FORWARD:
		return ferry__route_to_proxy(c, r->proxy, clock, tp);
	case FERRY__ROUTE_TUNNEL:
		err = ferry__route_to_proxy(c, r->proxy, clock, &t);
		if (err == 0)
			err = ferry__url_hostport(u, &hp);
		if (err < 0) {
			ferry__transport_free(t);
			return err;
		}
		err = ferry__tunnel_new(c, clock, t, r->proxy->name, hp,
					r->proxy->auth, &t);
		free(hp);
		break;
	default:
		err = ferry__sock_new(c, clock, &to, &t);
		break;
	}
	if (err < 0)
		return err;
	if (o->scheme == FERRY_URL_HTTPS)
		err = ferry__tls_transport_new(c, clock, t, u->host, u->host_len,
				u->host_type != FERRY_URL_HOST_NAME, o->key,
				r->kind == FERRY__ROUTE_TUNNEL ? "origin" : NULL,
				&t);
	if (err < 0)
		return err;
	*tp = t;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Proxies: configuration, as curl and libcurl read it                   */

/* Base64 of @len bytes of @src into a new string, or NULL. */
static char *ferry__base64(const unsigned char *src, size_t len)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((len + 2) / 3 * 4 + 1), *w = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)src[i] << 16;

		if (i + 1 < len)
			v |= (unsigned)src[i + 1] << 8;
		if (i + 2 < len)
			v |= src[i + 2];
		*w++ = tbl[(v >> 18) & 63];
		*w++ = tbl[(v >> 12) & 63];
		*w++ = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
		*w++ = i + 2 < len ? tbl[v & 63] : '=';
	}
	*w = '\0';
	return out;
}

static int ferry__hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode @len bytes of @s in place into @out; returns the length. */
static size_t ferry__pct_decode(const char *s, size_t len, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len + 0 &&
		    ferry__hexval(s[i + 1]) >= 0 &&
		    ferry__hexval(s[i + 2]) >= 0) {
			out[n++] = (char)(ferry__hexval(s[i + 1]) * 16 +
					  ferry__hexval(s[i + 2]));
			i += 2;
		} else {
			out[n++] = s[i];
		}
	}
	return n;
}

void ferry__proxy_free(struct ferry__proxy *p)
{
	if (!p)
		return;
	ferry_url_free(&p->url);
	free(p->auth);
	free(p->name);
	free(p);
}

/* "Basic ferry__base64(user:password)" from the userinfo (percent-encoded). */
static int ferry__proxy_auth(struct ferry__proxy *p, const char *ui, size_t len)
{
	char *plain = malloc(len + 1), *b64;
	size_t n;

	if (!plain)
		return -ENOMEM;
	n = ferry__pct_decode(ui, len, plain);
	b64 = ferry__base64((const unsigned char *)plain, n);
	free(plain);
	if (!b64 || asprintf(&p->auth, "Basic %s", b64) < 0) {
		p->auth = NULL;
		free(b64);
		return -ENOMEM;
	}
	free(b64);
	return 0;
}

/*
 * ferry__proxy_parse - a proxy as curl takes it: "[scheme://][user[:pass]@]
 * host[:port][/]", scheme http (the default) or https (TLS to the proxy),
 * port 1080 by default (443 for https). @from names where it came from in
 * @why. 0 with *pp NULL for "" (no proxy), 0 with a proxy, FERRY_EINVAL
 * (@why says) or -ENOMEM.
 */
int ferry__proxy_parse(const char *s, const char *from,
		       struct ferry__proxy **pp, char *why, size_t whylen)
{
	struct ferry__proxy *p;
	const char *rest = s, *at, *slash;
	char buf[FERRY_URL_WHY_MAX], *u;
	char name[300];
	int err;

	*pp = NULL;
	if (!*s)
		return 0;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->scheme = FERRY_URL_HTTP;
	if (!strncasecmp(s, "http://", 7)) {
		rest = s + 7;
	} else if (!strncasecmp(s, "https://", 8)) {
		rest = s + 8;
		p->scheme = FERRY_URL_HTTPS;
	} else if (strstr(s, "://")) {
		ferry__whyf(why, whylen, "%s: unsupported proxy scheme in '%s'",
			    from, s);
		ferry__proxy_free(p);
		return FERRY_EINVAL;
	}
	slash = strchr(rest, '/');
	at = memrchr(rest, '@', slash ? (size_t)(slash - rest) : strlen(rest));
	if (at && ferry__proxy_auth(p, rest, (size_t)(at - rest)) < 0) {
		ferry__proxy_free(p);
		return -ENOMEM;
	}
	if (at)
		rest = at + 1;
	if (asprintf(&u, "http://%.*s/", (int)(slash ? (size_t)(slash - rest)
						      : strlen(rest)), rest) < 0) {
		ferry__proxy_free(p);
		return -ENOMEM;
	}
	err = ferry_url_parse(&p->url, u, strlen(u), buf, sizeof(buf));
	free(u);
	if (err < 0) {
		ferry__whyf(why, whylen, "%s: bad proxy '%s': %s", from, s,
			    err == FERRY_EURL ? buf : ferry_strerror(err));
		ferry__proxy_free(p);
		return err == FERRY_EURL ? FERRY_EINVAL : err;
	}
	if (!p->url.port_explicit)
		p->url.port = p->scheme == FERRY_URL_HTTPS ? 443 : 1080;
	snprintf(name, sizeof(name), "%s%.*s%s:%u",
		 p->url.host_type == FERRY_URL_HOST_IPV6 ? "[" : "",
		 (int)p->url.host_len, p->url.host,
		 p->url.host_type == FERRY_URL_HOST_IPV6 ? "]" : "",
		 p->url.port);
	p->name = strdup(name);
	if (!p->name) {
		ferry__proxy_free(p);
		return -ENOMEM;
	}
	*pp = p;
	return 0;
}

/* Credentials given apart from the proxy URL replace its own. */
static int ferry__proxy_set_userpwd(struct ferry_http_client *c, const char *up)
{
	struct ferry__proxy *ps[2] = { c->proxy_http, c->proxy_https };
	char *b64 = ferry__base64((const unsigned char *)up, strlen(up));

	for (int i = 0; i < 2 && b64; i++) {
		if (!ps[i] || (i == 1 && ps[1] == ps[0]))
			continue;
		free(ps[i]->auth);
		if (asprintf(&ps[i]->auth, "Basic %s", b64) < 0) {
			ps[i]->auth = NULL;
			free(b64);
			return -ENOMEM;
		}
	}
	if (!b64)
		return -ENOMEM;
	free(b64);
	return 0;
}

/* The first of these environment variables set (empty counts as set:
 * "no proxy"), or NULL. */
static const char *ferry__env_first(const char *a, const char *b,
				    const char **name)
{
	const char *v = getenv(a);

	*name = a;
	if (!v && b) {
		v = getenv(b);
		*name = b;
	}
	return v;
}

/*
 * ferry__client_proxies - the client's proxies from its options or, when
 * the option is NULL, from the environment as curl reads it: http_proxy
 * (lowercase only: a CGI program gets HTTP_PROXY from a request header)
 * for http://, https_proxy or HTTPS_PROXY for https://, all_proxy or
 * ALL_PROXY for either when its own is unset; no_proxy or NO_PROXY
 * unless the option gives the list. 0, FERRY_EINVAL (@why) or -ENOMEM.
 */
int ferry__client_proxies(struct ferry_http_client *c, char *why,
			  size_t whylen)
{
	const struct ferry_http_client_opts *o = &c->opts;
	const char *hv, *sv, *hn = "proxy", *sn = "proxy", *nv, *nn;
	int err;

	if (o->proxy) {
		hv = sv = o->proxy;
	} else {
		hv = ferry__env_first("http_proxy", NULL, &hn);
		sv = ferry__env_first("https_proxy", "HTTPS_PROXY", &sn);
		if (!hv)
			hv = ferry__env_first("all_proxy", "ALL_PROXY", &hn);
		if (!sv)
			sv = ferry__env_first("all_proxy", "ALL_PROXY", &sn);
	}
	err = hv ? ferry__proxy_parse(hv, hn, &c->proxy_http, why, whylen) : 0;
	if (err == 0 && sv)
		err = ferry__proxy_parse(sv, sn, &c->proxy_https, why, whylen);
	if (err == 0 && o->proxy_userpwd)
		err = ferry__proxy_set_userpwd(c, o->proxy_userpwd);
	if (err < 0)
		return err;
	nv = o->no_proxy ? o->no_proxy
			 : ferry__env_first("no_proxy", "NO_PROXY", &nn);
	if (nv && !(c->no_proxy = strdup(nv)))
		return -ENOMEM;
	return 0;
}

/* ------------------------------------------------------------------ */
/* NO_PROXY                                                              */

/* Does IP literal @host fall in "addr" or "addr/bits" (@e, @elen)? */
static bool ferry__noproxy_ip(const char *host, const char *e, size_t elen)
{
	unsigned char h[16], n[16];
	char addr[64];
	const char *slash = memchr(e, '/', elen);
	size_t alen = slash ? (size_t)(slash - e) : elen;
	int fam = strchr(host, ':') ? AF_INET6 : AF_INET;
	unsigned bits = fam == AF_INET6 ? 128 : 32;

	if (alen >= sizeof(addr))
		return false;
	memcpy(addr, e, alen);
	addr[alen] = '\0';
	if (alen && addr[0] == '[' && addr[alen - 1] == ']') {
		memmove(addr, addr + 1, alen - 2);
		addr[alen - 2] = '\0';
	}
	if (inet_pton(fam, host, h) != 1 || inet_pton(fam, addr, n) != 1)
		return false;
	if (slash) {
		char *end;
		unsigned long b = strtoul(slash + 1, &end, 10);

		if (end != e + elen || end == slash + 1 || b > bits)
			return false;
		bits = (unsigned)b;
	}
	for (unsigned i = 0; i < bits / 8; i++)
		if (h[i] != n[i])
			return false;
	if (bits % 8) {
		unsigned char m = (unsigned char)(0xff << (8 - bits % 8));

		if ((h[bits / 8] & m) != (n[bits / 8] & m))
			return false;
	}
	return true;
}

/* A host name against one entry: the name itself or a domain under it
 * (a leading dot in the entry changes nothing, as curl's). */
static bool ferry__noproxy_name(const char *host, size_t hlen, const char *e,
				size_t elen)
{
	if (elen && e[0] == '.') {
		e++;
		elen--;
	}
	if (hlen && host[hlen - 1] == '.')
		hlen--;
	if (elen && e[elen - 1] == '.')
		elen--;
	if (!elen || elen > hlen)
		return false;
	if (strncasecmp(host + hlen - elen, e, elen))
		return false;
	return hlen == elen || host[hlen - elen - 1] == '.';
}

/*
 * ferry__noproxy_match - does @u's host go direct by the NO_PROXY list
 * @list? Entries are separated by commas or spaces: "*" (every host),
 * host names (and every name under them), IP addresses, CIDR ranges.
 */
bool ferry__noproxy_match(const char *list, const struct ferry_url *u)
{
	char host[256];
	bool ip = u->host_type != FERRY_URL_HOST_NAME;
	const char *p = list;

	if (!list || u->host_len >= sizeof(host))
		return false;
	memcpy(host, u->host, u->host_len);
	host[u->host_len] = '\0';
	while (*p) {
		size_t n;

		p += strspn(p, ", \t");
		n = strcspn(p, ", \t");
		if (!n)
			break;
		if (n == 1 && *p == '*')
			return true;
		if (ip ? ferry__noproxy_ip(host, p, n)
		       : ferry__noproxy_name(host, u->host_len, p, n))
			return true;
		p += n;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Picking a route and building its transports                           */

/*
 * ferry__route_pick - how a request to @u goes: to a Unix socket when
 * @unix_path (the request's) or the client's is set, else through the
 * proxy for u's scheme unless NO_PROXY says otherwise (forwarding
 * http://, tunnelling https:// or any URL with proxy_tunnel), else
 * direct.
 */
void ferry__route_pick(const struct ferry_http_client *c,
		       const struct ferry_url *u, const char *unix_path,
		       bool unix_abstract, struct ferry__route *r)
{
	const struct ferry__proxy *p;

	memset(r, 0, sizeof(*r));
	if (!unix_path && c->unix_path) {
		unix_path = c->unix_path;
		unix_abstract = c->opts.unix_socket_abstract;
	}
	if (unix_path) {
		r->kind = FERRY__ROUTE_UNIX;
		r->unix_path = unix_path;
		r->unix_abstract = unix_abstract;
		return;
	}
	p = u->scheme == FERRY_URL_HTTPS ? c->proxy_https : c->proxy_http;
	if (!p || ferry__noproxy_match(c->no_proxy, u)) {
		r->kind = FERRY__ROUTE_DIRECT;
		return;
	}
	r->proxy = p;
	r->kind = u->scheme == FERRY_URL_HTTPS || c->opts.proxy_tunnel
			  ? FERRY__ROUTE_TUNNEL : FERRY__ROUTE_FORWARD;
}

/* Does a request to @u need the client's TLS config (an https:// URL,
 * or an https:// proxy on its way)? */
bool ferry__route_needs_tls(const struct ferry_http_client *c,
			    const struct ferry_url *u)
{
	const struct ferry__proxy *p = u->scheme == FERRY_URL_HTTPS
					       ? c->proxy_https : c->proxy_http;

	return u->scheme == FERRY_URL_HTTPS ||
	       (p && p->scheme == FERRY_URL_HTTPS && !c->unix_path);
}
