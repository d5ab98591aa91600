/*
 * transfer.c - one URL, as curl does it: the request head in curl's order,
 * redirects followed here (ferry_url_resolve, curl's method rules, no
 * credentials to another origin), the body streamed from the loop to
 * this thread and written here, curl's retries and exit codes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fetch.h"

/* Receive chunks queued between the loop and this thread: as many as
 * the client's ring holds (main.c). Then a writer that falls behind
 * runs the ring dry, and the kernel's ENOBUFS pauses the receive at no
 * cost; a smaller queue pauses the request instead, which costs a
 * cancel, a copy and a re-arm each time (measured: a 1 GiB download
 * took 3x the CPU with 16). */
#define FETCH_STREAM_CAPACITY 64
#define FETCH_STREAM_CAPACITY_TLS 1024

/* curl 7.88 asks "Expect: 100-continue" for a POST over this many bytes
 * (and for every non-empty PUT). */
#define FETCH_EXPECT_THRESHOLD (1024 * 1024)

/* The request of one hop: method, URL, body and the header fields. */
struct hop {
	char method[32];
	bool custom_method;		/* -X: kept across redirects */
	struct ferry_url url;
	char *urlstr;
	const void *body;
	size_t body_len;
	bool has_body;
	bool same_origin;		/* as the first URL: credentials go */
	/* -T: the file (or stdin) read as the body; size -1: unknown, sent
	 * chunked. @sent: a hop has read it, a next one must rewind. */
	int upload_fd;
	int64_t upload_size;
	bool upload, sent;
	/* Header fields and their text. */
	struct ferry_http_header h[256];
	size_t nh;
	char text[65536];
	size_t used;
};

/* ------------------------------------------------------------------ */
/* Errors                                                               */

static int fail(struct fetch_xfer *x, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct fetch_xfer *x, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->errmsg, sizeof(x->errmsg), fmt, ap);
	va_end(ap);
	x->exit_code = code;
	return code;
}

static long elapsed_ms(const struct fetch_xfer *x)
{
	return (long)((fetch_now_ns() - x->t0) / 1000000);
}

/* A library error before or during the response, as curl's exit code. */
static int fail_lib(struct fetch_xfer *x, const struct hop *hp, int err,
		    const struct ferry_response *r, bool got_head)
{
	const char *detail = r ? ferry_response_detail(r) : "out of memory";
	const char *host = hp->url.host;
	unsigned port = hp->url.port;
	const char *proxy = ferry_response_proxy(r, &port);

	/* A connect that failed names the host it went to: the proxy's. */
	if (proxy)
		host = proxy;

	switch (err) {
	case FERRY_EPROXY_DNS:
		return fail(x, FETCH_EXIT_PROXY_DNS, "Could not resolve proxy: %s",
			    detail);
	case FERRY_EPROXY:
		return fail(x, FETCH_EXIT_RECV, "CONNECT tunnel failed: %s",
			    detail);
	case FERRY_EDNS:
		return fail(x, FETCH_EXIT_DNS, "Could not resolve host: %s (%s)",
			    host, detail);
	case -ECONNREFUSED: case -ENETUNREACH: case -EHOSTUNREACH:
	case -EADDRNOTAVAIL: case -ECONNABORTED:
	case -ENOENT: case -EACCES: case -ENOTSOCK:	/* --unix-socket */
		return fail(x, FETCH_EXIT_CONNECT,
			    "Failed to connect to %s port %u after %ld ms: %s",
			    host, port, elapsed_ms(x), detail);
	case FERRY_ECONNECT_TIMEOUT:
		return fail(x, FETCH_EXIT_TIMEOUT,
			    "Failed to connect to %s port %u after %ld ms: %s",
			    host, port, elapsed_ms(x), detail);
	case FERRY_ETOTAL_TIMEOUT: case FERRY_EREAD_TIMEOUT: {
		int64_t total = atomic_load_explicit(&x->meter.total,
						     memory_order_relaxed);
		char of[40] = "";

		if (got_head && total >= 0)
			snprintf(of, sizeof(of), " out of %lld", (long long)total);
		return fail(x, FETCH_EXIT_TIMEOUT,
			    "Operation timed out after %ld milliseconds with %llu%s bytes received",
			    elapsed_ms(x), (unsigned long long)x->size_download, of);
	}
	case FERRY_ETLS_HANDSHAKE:
		return fail(x, FETCH_EXIT_TLS, "TLS connect error: %s%s", detail,
			    strstr(detail, "version") || strstr(detail, "VERSION")
				? " (the TLS library, BearSSL 0.6, speaks TLS 1.2 at most)"
				: "");
	case FERRY_ETLS_CERT:
		return fail(x, FETCH_EXIT_CERT, "SSL certificate problem: %s",
			    detail);
	case FERRY_ETLS_CA:
		return fail(x, FETCH_EXIT_CAFILE,
			    "error setting certificate file: %s", detail);
	case FERRY_ETLS_CLIENT_CERT:
		return fail(x, FETCH_EXIT_CLIENT_CERT,
			    "unable to use client certificate: %s", detail);
	case FERRY_EEMPTY_REPLY:
		return fail(x, FETCH_EXIT_EMPTY, "Empty reply from server");
	case FERRY_EPARTIAL:
		return fail(x, FETCH_EXIT_PARTIAL,
			    "transfer closed with outstanding read data remaining");
	case FERRY_EURL:
		return fail(x, FETCH_EXIT_URL, "URL rejected: %s", detail);
	case FERRY_EDECODE:
		return fail(x, FETCH_EXIT_ENCODING,
			    "Error while processing content unencoding: %s",
			    detail);
	case -ENOMEM:
		return fail(x, FETCH_EXIT_NOMEM, "Out of memory");
	case FERRY_EINVAL:	/* a -H or -X the client will not send */
		return fail(x, FETCH_EXIT_USAGE, "Bad request: %s", detail);
	case FERRY_EPROTO:
		if (!got_head)
			return fail(x, FETCH_EXIT_WEIRD,
				    "Weird server reply: %s", detail);
		/* fall through */
	default:
		/* curl's words for the code, then the library's sentence. */
		if (!*detail || !strcmp(detail, ferry_strerror(err)))
			return fail(x, FETCH_EXIT_RECV, "Recv failure: %s",
				    ferry_strerror(err));
		return fail(x, FETCH_EXIT_RECV, "Recv failure: %s (%s)",
			    ferry_strerror(err), detail);
	}
}

/* ------------------------------------------------------------------ */
/* The request head, in curl's order                                    */

static void add(struct hop *hp, const char *name, size_t nlen,
		const char *value, size_t vlen)
{
	char *p = hp->text + hp->used;

	if (hp->nh == sizeof(hp->h) / sizeof(hp->h[0]) ||
	    nlen + vlen > sizeof(hp->text) - hp->used)
		return;	/* beyond curl's practical limits: dropped */
	memcpy(p, name, nlen);
	memcpy(p + nlen, value, vlen);
	hp->h[hp->nh++] = (struct ferry_http_header){ p, nlen, p + nlen, vlen };
	hp->used += nlen + vlen;
}

static void addz(struct hop *hp, const char *name, const char *value)
{
	add(hp, name, strlen(name), value, strlen(value));
}

/* Split "Name: value" / "Name:" (remove) / "Name;" (empty). false if
 * the argument is not a header curl would send or use. */
static bool split_header(const char *s, size_t *nlen, const char **value,
			 bool *remove)
{
	size_t n = strcspn(s, ":;");

	if (!s[n] || n == 0)
		return false;
	*nlen = n;
	*remove = false;
	if (s[n] == ';') {
		if (s[n + 1])
			return false;	/* "a;b" is not a header */
		*value = "";
		return true;
	}
	*value = s + n + 1;
	while (**value == ' ' || **value == '\t')
		(*value)++;
	*remove = !**value;
	return true;
}

/* The user's -H for @name: NULL none, else its value ("" + *remove). */
static const char *custom(const struct fetch_args *a, const char *name,
			  bool *remove)
{
	size_t want = strlen(name), n;
	const char *v, *found = NULL;
	bool rm;

	for (size_t i = 0; i < a->nheaders; i++)
		if (split_header(a->headers[i], &n, &v, &rm) && n == want &&
		    !strncasecmp(a->headers[i], name, n)) {
			found = v;
			*remove = rm;
		}
	return found;
}

static bool has_custom(const struct fetch_args *a, const char *name)
{
	bool rm;

	return custom(a, name, &rm) != NULL;
}

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64(const char *in, size_t n, char *out)
{
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned char)in[i] << 16 |
			     (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];

		*out++ = b64[v >> 18];
		*out++ = b64[(v >> 12) & 63];
		*out++ = b64[(v >> 6) & 63];
		*out++ = b64[v & 63];
	}
	if (i < n) {
		unsigned v = (unsigned char)in[i] << 16 |
			     (i + 1 < n ? (unsigned char)in[i + 1] << 8 : 0);

		*out++ = b64[v >> 18];
		*out++ = b64[(v >> 12) & 63];
		*out++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		*out++ = '=';
	}
	*out = '\0';
}

/* -u: "user" alone is "user:" (curl would prompt on a terminal). */
static void add_basic_auth(struct hop *hp, const char *user)
{
	char plain[512], enc[700], field[720];	/* 4 * 512 / 3 < 700 */
	int n = snprintf(plain, sizeof(plain), "%s%s", user,
			 strchr(user, ':') ? "" : ":");

	if (n <= 0 || (size_t)n >= sizeof(plain))
		return;
	base64(plain, (size_t)n, enc);
	snprintf(field, sizeof(field), "Basic %s", enc);
	addz(hp, "Authorization", field);
}

/* Is this -H one fetch must not pass on to this hop? */
static bool skip_custom(const struct hop *hp, const char *name, size_t n)
{
	if (n == 4 && !strncasecmp(name, "Host", 4))
		return true;	/* sent in Host's place */
	if (n == 14 && !strncasecmp(name, "Content-Length", 14))
		return hp->has_body;	/* ours states the body */
	if (!hp->same_origin &&
	    ((n == 13 && !strncasecmp(name, "Authorization", 13)) ||
	     (n == 6 && !strncasecmp(name, "Cookie", 6))))
		return true;	/* credentials stay with their origin */
	return false;
}

/* curl 7.88's "Expect: 100-continue": every PUT of -T with a body (its
 * length known or not), a POST over 1 MiB. fetch sends the body at once
 * without waiting for the 100 (RFC 9110 10.1.1 allows it): the same
 * bytes on the wire, without curl's wait of up to a second. */
static bool wants_expect(const struct hop *hp)
{
	if (!hp->has_body)
		return false;
	if (hp->upload)
		return hp->upload_size != 0;
	return hp->body_len > FETCH_EXPECT_THRESHOLD;
}

static void build_head(const struct fetch_xfer *x, struct hop *hp)
{
	const struct fetch_args *a = x->args;
	char buf[1024], ua[64];
	const char *v;
	bool rm = false;

	hp->nh = 0;
	hp->used = 0;
	v = custom(a, "Host", &rm);
	if (!v) {
		ferry_url_authority(&hp->url, buf, sizeof(buf));
		addz(hp, "Host", buf);
	} else if (!rm) {
		addz(hp, "Host", v);
	}
	if (a->user && hp->same_origin && !has_custom(a, "Authorization"))
		add_basic_auth(hp, a->user);
	if ((a->resume && x->resume_at) || a->resume_from) {
		snprintf(buf, sizeof(buf), "bytes=%llu-",
			 (unsigned long long)(a->resume ? x->resume_at
							: (uint64_t)a->resume_from));
		addz(hp, "Range", buf);
	}
	if (!has_custom(a, "User-Agent")) {
		snprintf(ua, sizeof(ua), "fetch/%s", FETCH_VERSION);
		if (!a->agent || *a->agent)
			addz(hp, "User-Agent", a->agent ? a->agent : ua);
	}
	if (!has_custom(a, "Accept") && !a->json)
		addz(hp, "Accept", "*/*");
	/* curl's order of codings, less the ones ferry cannot decode (br,
	 * zstd); a -H Accept-Encoding replaces it, and is decoded too. */
	if (a->compressed && !has_custom(a, "Accept-Encoding"))
		addz(hp, "Accept-Encoding", "deflate, gzip");
	if (a->referer && !has_custom(a, "Referer"))
		addz(hp, "Referer", a->referer);
	/* libcurl's, for a forward proxy; the library sends it only when
	 * this hop goes to one (absolute form), not to an origin. */
	if (!has_custom(a, "Proxy-Connection"))
		addz(hp, "Proxy-Connection", "Keep-Alive");
	if (hp->has_body && hp->upload && hp->upload_size < 0)
		addz(hp, "Transfer-Encoding", "chunked");
	/* -b cookies go to every host, as curl's do, unless a -H Cookie
	 * replaces them (and that one stays with its origin). */
	if (a->cookie && strchr(a->cookie, '=') && !has_custom(a, "Cookie"))
		addz(hp, "Cookie", a->cookie);
	if (a->json) {
		if (!has_custom(a, "Content-Type"))
			addz(hp, "Content-Type", "application/json");
		if (!has_custom(a, "Accept"))
			addz(hp, "Accept", "application/json");
	}
	for (size_t i = 0; i < a->nheaders; i++) {
		size_t n;

		if (!split_header(a->headers[i], &n, &v, &rm) || rm ||
		    skip_custom(hp, a->headers[i], n))
			continue;
		add(hp, a->headers[i], n, v, strlen(v));
	}
	if (hp->has_body && hp->upload) {
		if (hp->upload_size >= 0) {
			snprintf(buf, sizeof(buf), "%lld",
				 (long long)hp->upload_size);
			addz(hp, "Content-Length", buf);
		}
	} else if (hp->has_body) {
		snprintf(buf, sizeof(buf), "%zu", hp->body_len);
		addz(hp, "Content-Length", buf);
		if (a->data_form && !a->json && !has_custom(a, "Content-Type"))
			addz(hp, "Content-Type",
			     "application/x-www-form-urlencoded");
	}
	if (wants_expect(hp) && !has_custom(a, "Expect"))
		addz(hp, "Expect", "100-continue");
}

/* ------------------------------------------------------------------ */
/* The first hop, and redirects                                         */

/* curl takes "host/path" as http://host/path. */
static char *with_scheme(const char *url)
{
	const char *p = strstr(url, "://");
	size_t n = strlen(url);
	char *s;

	if (p && (size_t)(p - url) < strcspn(url, "/?#"))
		return strdup(url);
	s = malloc(n + 8);
	if (s)
		snprintf(s, n + 8, "http://%s", url);
	return s;
}

/* curl's -T FILE to "http://h/dir/" (or "http://h"): the file's last
 * name, percent-encoded but for unreserved bytes, ends the path. */
static char *upload_url(char *url, const char *file)
{
	const char *name = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
	char *auth = strstr(url, "://") + 3;
	size_t pstart = (size_t)(auth - url) + strcspn(auth, "/?#");
	size_t pend = pstart + strcspn(url + pstart, "?#");
	size_t n = strlen(url), w;
	char *s;

	if (!strcmp(file, "-") || (pend > pstart && url[pend - 1] != '/'))
		return url;
	s = malloc(n + 3 * strlen(name) + 2);
	if (!s) {
		free(url);
		return NULL;
	}
	memcpy(s, url, pend);
	w = pend;
	if (pend == pstart)
		s[w++] = '/';
	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || strchr("-._~", *c))
			s[w++] = (char)*c;
		else
			w += (size_t)sprintf(s + w, "%%%02x", *c);
	memcpy(s + w, url + pend, n - pend + 1);
	free(url);
	return s;
}

/* -T: open the file (stdin for "-", sent chunked) and learn its size. */
static int open_upload(struct fetch_xfer *x, struct hop *hp)
{
	const char *file = x->target->upload;
	struct stat st;

	hp->upload = true;
	hp->has_body = true;
	hp->upload_size = -1;
	if (!strcmp(file, "-")) {
		hp->upload_fd = STDIN_FILENO;
		return 0;
	}
	hp->upload_fd = open(file, O_RDONLY | O_CLOEXEC);
	if (hp->upload_fd < 0 || fstat(hp->upload_fd, &st) < 0) {
		int err = errno;

		if (!x->args->silent || x->args->show_error)
			fprintf(stderr, "fetch: Can't open '%s'!\n", file);
		return fail(x, FETCH_EXIT_READ,
			    "Failed to open/read local data from file/application: %s: %s",
			    file, strerror(err));
	}
	if (S_ISREG(st.st_mode))
		hp->upload_size = st.st_size;
	return 0;
}

static int first_hop(struct fetch_xfer *x, struct hop *hp)
{
	const struct fetch_args *a = x->args;
	char why[FERRY_URL_WHY_MAX] = "";
	char *url = with_scheme(x->target->url);
	int err;

	if (!url)
		return fail(x, FETCH_EXIT_NOMEM, "Out of memory");
	if (a->get && a->has_data) {	/* -G: the data is the query */
		size_t n = strlen(url) + a->data_len + 2;
		char *q = malloc(n);

		if (!q) {
			free(url);
			return fail(x, FETCH_EXIT_NOMEM, "Out of memory");
		}
		snprintf(q, n, "%s%c%s", url, strchr(url, '?') ? '&' : '?',
			 a->data);
		free(url);
		url = q;
	}
	if (x->target->upload && !(url = upload_url(url, x->target->upload)))
		return fail(x, FETCH_EXIT_NOMEM, "Out of memory");
	hp->urlstr = url;
	err = ferry_url_parse(&hp->url, url, strlen(url), why, sizeof(why));
	if (err < 0) {
		if (strstr(why, "unsupported scheme"))
			return fail(x, FETCH_EXIT_PROTOCOL,
				    "Protocol not supported: %s", why);
		return fail(x, FETCH_EXIT_URL, "URL rejected: %s", why);
	}
	hp->same_origin = true;
	hp->has_body = a->has_data && !a->get;
	hp->body = a->data;
	hp->body_len = a->data_len;
	if (x->target->upload && (err = open_upload(x, hp)))
		return err;
	snprintf(hp->method, sizeof(hp->method), "%s",
		 a->method ? a->method
			   : hp->upload ? "PUT" : a->head ? "HEAD"
			   : hp->has_body ? "POST" : "GET");
	hp->custom_method = a->method != NULL;
	return 0;
}

static bool is_redirect(int status)
{
	return status == 301 || status == 302 || status == 303 ||
	       status == 307 || status == 308;
}

/* curl's method rules: 301/302 turn a POST (a request with data) into a
 * GET unless --post301/302; 303 turns anything but -I's HEAD into a GET
 * unless a POST with --post303; 307/308 keep method and body. A -X
 * method stays as given, only the body goes (curl's "-X POST -L" trap). */
static void redirect_method(struct fetch_xfer *x, struct hop *hp, int status)
{
	const struct fetch_args *a = x->args;
	bool post = hp->has_body && !hp->upload;	/* -T is a PUT */
	bool to_get = false;

	if (status == 301 || status == 302)
		to_get = post && !(status == 301 ? a->post301 : a->post302);
	else if (status == 303)
		to_get = !a->head && !(post && a->post303);
	if (!to_get)
		return;
	hp->has_body = false;
	if (!hp->custom_method)
		snprintf(hp->method, sizeof(hp->method), "GET");
}

static int next_hop(struct fetch_xfer *x, struct hop *hp,
		    const struct ferry_url *first, const char *loc, int status)
{
	char why[FERRY_URL_WHY_MAX] = "";
	struct ferry_url next;
	char buf[4096];
	int err;

	err = ferry_url_resolve(&next, &hp->url, loc, strlen(loc), why,
				sizeof(why));
	if (err < 0)
		return fail(x, err == FERRY_EURL && strstr(why, "scheme")
				       ? FETCH_EXIT_PROTOCOL : FETCH_EXIT_URL,
			    "Bad redirect Location '%s': %s", loc, why);
	ferry_url_free(&hp->url);
	hp->url = next;
	ferry_url_format(&hp->url, buf, sizeof(buf));
	free(hp->urlstr);
	hp->urlstr = strdup(buf);
	hp->same_origin = hp->same_origin && ferry_url_same_origin(first, &next);
	redirect_method(x, hp, status);
	if (x->args->verbose)
		fetch_verbose_info("Issue another request to this URL: '%s'", buf);
	return 0;
}

/* ------------------------------------------------------------------ */
/* One attempt                                                          */

static double secs(uint64_t ns)
{
	return (double)ns / 1e9;
}

static void note_timings(struct fetch_xfer *x, const struct ferry_response *r,
			 uint64_t hop_start)
{
	struct ferry_http_timings t;
	uint64_t off = hop_start - x->t0;

	ferry_response_timings(r, &t);
#define AT(v) ((v) ? secs(off + (v)) : 0.0)
	x->time_namelookup = AT(t.namelookup_ns);
	x->time_connect = AT(t.connect_ns);
	x->time_appconnect = AT(t.appconnect_ns);
	x->time_starttransfer = AT(t.starttransfer_ns);
#undef AT
}

static void note_response(struct fetch_xfer *x, const struct ferry_response *r)
{
	const char *ct = ferry_response_header(r, "Content-Type", NULL);
	const char *cl = ferry_response_header(r, "Content-Length", NULL);

	const char *ra = ferry_response_header(r, "Retry-After", NULL);

	x->status = ferry_response_status(r);
	x->size_header += fetch_head_size(r);
	/* Seconds only: curl ignores the HTTP-date form as well. */
	x->retry_after_s = ra && *ra >= '0' && *ra <= '9' ? strtol(ra, NULL, 10) : -1;
	snprintf(x->content_type, sizeof(x->content_type), "%s", ct ? ct : "");
	atomic_store_explicit(&x->meter.total, cl ? strtoll(cl, NULL, 10) : -1,
			      memory_order_relaxed);
}

/* Read the body to its end: written out, or dropped (@keep false). */
static int read_body(struct fetch_xfer *x, const struct hop *hp,
		     struct ferry_response *r, bool keep)
{
	struct ferry_stream *st = ferry_response_stream(r);
	struct ferry_chunk c;
	int n;

	while (st && (n = ferry_stream_next(st, &c, -1)) == 1) {
		if (!keep)
			continue;
		if (fetch_out_write(x, c.data, c.len) < 0)
			return x->exit_code;
		x->size_download += c.len;
		/* Relaxed: the progress thread only shows the figure. */
		atomic_fetch_add_explicit(&x->meter.bytes, c.len,
					  memory_order_relaxed);
	}
	/* The response says why the stream ended (the library's sentence). */
	/* curl's size_download counts the bytes received, before decoding. */
	if (keep && x->args->compressed)
		x->size_download = ferry_response_body_received(r);
	if (st && n < 0)
		return fail_lib(x, hp, n, r, true);
	return 0;
}

/* -C: curl's handling of the answer to a Range request. */
static int check_resume(struct fetch_xfer *x, int status, bool *done)
{
	const struct fetch_args *a = x->args;
	bool asked = (a->resume && x->resume_at) || a->resume_from;

	*done = false;
	if (!asked || status >= 300)
		return status == 416 && asked ? (*done = true, 0) : 0;
	if (status != 206)
		return fail(x, FETCH_EXIT_RANGE,
			    "HTTP server doesn't seem to support byte ranges. Cannot resume.");
	return 0;
}

static uint32_t remaining_ms(const struct fetch_xfer *x)
{
	long left;

	if (!x->args->max_time_ms)
		return 0;
	left = x->args->max_time_ms - elapsed_ms(x);
	return left > 0 ? (uint32_t)left : 1;
}

/* -v: what curl says once connected, then the request as it went out.
 * ferry_session_request returns when the head has come (or it failed),
 * so these lines are written then; with no connection they are not. */
static void verbose_sent(const struct fetch_xfer *x, const struct hop *hp,
			 const struct ferry_response *r)
{
	bool forward = ferry_response_proxy(r, NULL) && !x->args->proxytunnel &&
		       hp->url.scheme == FERRY_URL_HTTP;
	struct ferry_http_timings t;

	ferry_response_timings(r, &t);
	if (!t.connect_ns)
		return;
	fetch_verbose_info("Connected to %.*s (%.*s) port %u (#0)",
			   (int)hp->url.host_len, hp->url.host,
			   (int)hp->url.host_len, hp->url.host, hp->url.port);
	/* A forward proxy gets the absolute form: curl shows that. */
	if (forward) {
		char abs[4096];
		int n = snprintf(abs, sizeof(abs), "http://");

		n += (int)ferry_url_authority(&hp->url, abs + n,
					      sizeof(abs) - (size_t)n);
		snprintf(abs + n, sizeof(abs) - (size_t)n, "%s", hp->url.target);
		fetch_verbose_request(hp->method, abs, hp->h, hp->nh, true);
		return;
	}
	fetch_verbose_request(hp->method, hp->url.target, hp->h, hp->nh,
			      false);
}

/* -T's body: read from the file (an empty one is a buffer of 0 bytes,
 * with Content-Length: 0); from the start again on a later hop. */
static int upload_body(struct fetch_xfer *x, struct hop *hp,
		       struct ferry_request *rq)
{
	if (hp->sent && lseek(hp->upload_fd, 0, SEEK_SET) < 0)
		return fail(x, FETCH_EXIT_REWIND,
			    "necessary data rewind wasn't possible");
	hp->sent = true;
	if (hp->upload_size == 0) {
		rq->body = "";
		return 0;
	}
	rq->body = NULL;
	rq->body_from_fd = true;
	rq->body_fd = hp->upload_fd;
	rq->body_size = hp->upload_size > 0 ? (uint64_t)hp->upload_size : 0;
	return 0;
}

/* One hop's request and response; *@r is the caller's to free. */
static int send_hop(struct fetch_xfer *x, struct hop *hp,
		    struct ferry_response **r, uint64_t *hop_start)
{
	struct ferry_request rq = {
		.method = hp->method,
		.url = hp->urlstr,
		.headers = hp->h,
		.body = hp->has_body ? hp->body : NULL,
		.body_len = hp->has_body ? hp->body_len : 0,
		.timeout_ms = remaining_ms(x),
		.follow_redirects = FERRY_HTTP_FOLLOW_NO,
		.stream = true,
		.stream_capacity = hp->url.scheme == FERRY_URL_HTTPS
					   ? FETCH_STREAM_CAPACITY_TLS
					   : FETCH_STREAM_CAPACITY,
		.raw_headers = true,
		.decode_content = x->args->compressed ? FERRY_HTTP_DECODE_YES
						      : FERRY_HTTP_DECODE_NO,
	};
	int rc;

	if (hp->has_body && hp->upload && (rc = upload_body(x, hp, &rq)))
		return rc;
	build_head(x, hp);
	rq.nheaders = hp->nh;
	if (x->args->verbose)
		fetch_verbose_info("  Trying %.*s:%u...", (int)hp->url.host_len,
				   hp->url.host, hp->url.port);
	*hop_start = fetch_now_ns();
	rc = ferry_session_request(x->session, &rq, r);
	if (*r)
		note_timings(x, *r, *hop_start);
	if (x->args->verbose && *r)
		verbose_sent(x, hp, *r);
	if (rc < 0)
		return fail_lib(x, hp, rc, *r, false);
	return rc;
}

/* The whole transfer once: hops until a final response, its body out. */
static int attempt(struct fetch_xfer *x)
{
	const struct fetch_args *a = x->args;
	struct ferry_url first = { 0 };
	struct ferry_response *r = NULL;
	struct hop *hp = calloc(1, sizeof(*hp));
	uint64_t hop_start;
	int rc, status;
	bool done;

	if (!hp)
		return fail(x, FETCH_EXIT_NOMEM, "Out of memory");
	hp->upload_fd = -1;
	rc = first_hop(x, hp);
	if (!rc && ferry_url_copy(&first, &hp->url) < 0)
		rc = fail(x, FETCH_EXIT_NOMEM, "Out of memory");
	if (rc)
		goto out;
	for (;;) {
		const char *loc;

		status = send_hop(x, hp, &r, &hop_start);
		snprintf(x->url_effective, sizeof(x->url_effective), "%s",
			 hp->urlstr);
		if (status < 0 || x->exit_code) {
			rc = x->exit_code;
			goto out;
		}
		note_response(x, r);
		if (a->verbose)
			fetch_verbose_response(r);
		loc = ferry_response_header(r, "Location", NULL);
		if (!a->location || !is_redirect(status) || !loc)
			break;
		if ((a->include || a->head) && (rc = fetch_out_head(x, r)))
			goto out;
		if (a->max_redirs >= 0 && x->num_redirects >= (unsigned)a->max_redirs) {
			rc = fail(x, FETCH_EXIT_REDIRECTS,
				  "Maximum (%ld) redirects followed", a->max_redirs);
			goto out;
		}
		x->num_redirects++;
		if ((rc = read_body(x, hp, r, false)) ||
		    (rc = next_hop(x, hp, &first, loc, status)))
			goto out;
		ferry_response_free(r);
		r = NULL;
	}
	if ((rc = check_resume(x, status, &done)) || done)
		goto out;
	if (a->fail && status >= 400) {
		/* curl shows the head (-i/-I) even when it fails. */
		if (a->include || a->head)
			rc = fetch_out_head(x, r);
		if (!rc && a->fail == FETCH_FAIL_WITH_BODY && !a->head)
			rc = read_body(x, hp, r, true);
		if (!rc)
			rc = fail(x, FETCH_EXIT_HTTP,
				  "The requested URL returned error: %d", status);
		goto out;
	}
	if ((a->include || a->head) && (rc = fetch_out_head(x, r)))
		goto out;
	if (!a->head)	/* -I shows the head only, whatever the method */
		rc = read_body(x, hp, r, true);
out:
	if (a->verbose && r && ferry_response_status(r) > 0)
		fetch_verbose_info("Connection #0 to host %.*s left intact",
				   (int)hp->url.host_len, hp->url.host);
	ferry_response_free(r);
	if (hp->upload_fd > STDIN_FILENO)
		close(hp->upload_fd);
	ferry_url_free(&hp->url);
	ferry_url_free(&first);
	free(hp->urlstr);
	free(hp);
	x->exit_code = rc;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Retries                                                              */

/* curl's transient failures: timeouts, DNS, and these HTTP statuses. */
static const char *transient(const struct fetch_xfer *x)
{
	switch (x->exit_code) {
	case FETCH_EXIT_TIMEOUT: case FETCH_EXIT_DNS:
		return ": timeout";
	case FETCH_EXIT_OK: case FETCH_EXIT_HTTP:
		switch (x->status) {
		case 408: case 429: case 500: case 502: case 503: case 504:
			return ": HTTP error";
		}
		return NULL;
	}
	return NULL;
}

static void reset_results(struct fetch_xfer *x)
{
	x->exit_code = 0;
	x->errmsg[0] = '\0';
	x->status = 0;
	x->size_download = x->size_header = 0;
	x->num_redirects = 0;
	x->content_type[0] = '\0';
	x->retry_after_s = -1;
	atomic_store_explicit(&x->meter.bytes, 0, memory_order_relaxed);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* -C -: the output file's size is where the body resumes. */
static void find_resume_point(struct fetch_xfer *x)
{
	struct stat st;

	if (x->args->resume && x->outpath && stat(x->outpath, &st) == 0)
		x->resume_at = (uint64_t)st.st_size;
}

int fetch_xfer_run(struct fetch_xfer *x)
{
	const struct fetch_args *a = x->args;
	long left = a->retry, delay = 1000;
	const char *why;

	x->t0 = fetch_now_ns();	/* again for each attempt: -m is per attempt */
	x->retry_after_s = -1;
	if (fetch_out_prepare(x))
		goto end;
	atomic_store_explicit(&x->meter.t_start, x->t0, memory_order_relaxed);
	atomic_store_explicit(&x->meter.state, 1, memory_order_relaxed);
	for (;;) {
		find_resume_point(x);
		x->t0 = fetch_now_ns();
		attempt(x);
		why = transient(x);
		if (!why || left <= 0)
			break;
		fetch_report(x);	/* curl reports each failed attempt */
		if (a->retry_delay_s)
			delay = a->retry_delay_s * 1000;
		else if (x->retry_after_s >= 0 && !strcmp(why, ": HTTP error"))
			delay = x->retry_after_s * 1000;	/* the server's word */
		if (!a->silent)
			fprintf(stderr, "Warning: Problem %s. Will retry in %ld seconds. %ld retries left.\n",
				why, delay / 1000, left);
		fetch_out_discard(x);
		sleep_ms(delay);
		if (!a->retry_delay_s && delay < 600000)
			delay *= 2;
		left--;
		reset_results(x);
	}
	fetch_out_finish(x, x->exit_code == 0);
end:
	x->time_total = secs(fetch_now_ns() - x->t0);
	atomic_store_explicit(&x->meter.t_end, fetch_now_ns(),
			      memory_order_relaxed);
	atomic_store_explicit(&x->meter.state, 2, memory_order_relaxed);
	return x->exit_code;
}
