/*
 * retry.c - the opt-in retry policy's rules: which failures it retries,
 * how long it waits (exponential backoff with jitter, or the server's
 * Retry-After), read from struct ferry_http_retry. request.c decides when
 * they apply and runs the retry.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define DEF_BACKOFF_MS 200
#define DEF_BACKOFF_MAX_MS 10000
#define DEF_RETRY_AFTER_MAX_MS 30000

void ferry__retry_fill(struct ferry_http_retry *out,
		       const struct ferry_http_retry *in)
{
	if (in)
		*out = *in;
	else
		memset(out, 0, sizeof(*out));
	if (!out->on)
		out->on = FERRY_HTTP_RETRY_DEFAULT;
	if (!out->backoff_ms)
		out->backoff_ms = DEF_BACKOFF_MS;
	if (!out->backoff_max_ms)
		out->backoff_max_ms = DEF_BACKOFF_MAX_MS;
	if (out->backoff_max_ms < out->backoff_ms)
		out->backoff_max_ms = out->backoff_ms;
	if (!out->retry_after_max_ms)
		out->retry_after_max_ms = DEF_RETRY_AFTER_MAX_MS;
}

bool ferry__retry_status(const struct ferry_http_retry *p, int status)
{
	switch (status) {
	case 408: return p->on & FERRY_HTTP_RETRY_408;
	case 429: return p->on & FERRY_HTTP_RETRY_429;
	case 502: return p->on & FERRY_HTTP_RETRY_502;
	case 503: return p->on & FERRY_HTTP_RETRY_503;
	case 504: return p->on & FERRY_HTTP_RETRY_504;
	}
	return false;
}

/*
 * Is err, from a connection that was still connecting (@connecting) or
 * had sent (part of) the request and seen no response byte, one the
 * policy retries? Not a name that does not resolve (that answer is
 * cached), not TLS, not timeouts of the read or the whole request.
 */
bool ferry__retry_error(const struct ferry_http_retry *p, int err,
			bool connecting)
{
	if (connecting) {
		if (!(p->on & FERRY_HTTP_RETRY_CONNECT))
			return false;
		switch (err) {
		case -ECONNREFUSED: case -ENETUNREACH: case -EHOSTUNREACH:
		case -ETIMEDOUT: case -ECONNRESET: case -ECONNABORTED:
		case -EADDRNOTAVAIL: case FERRY_ECONNECT_TIMEOUT:
			return true;
		}
		return false;
	}
	if (!(p->on & FERRY_HTTP_RETRY_RESET))
		return false;
	return err == -ECONNRESET || err == -EPIPE || err == -ECONNABORTED ||
	       err == FERRY_EEMPTY_REPLY;
}

/* xorshift64*: jitter needs spread, not secrecy. */
static uint64_t ferry__rng_next(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/*
 * Wait before retry number @n (1 for the first): backoff_ms doubled per
 * retry, capped at backoff_max_ms, then "equal jitter": a uniform pick in
 * its upper half, so clients that failed together spread out but none
 * retries at once.
 */
uint64_t ferry__retry_backoff_ns(const struct ferry_http_retry *p, unsigned n,
				 uint64_t *rng)
{
	uint64_t ms = p->backoff_ms;
	uint64_t half;

	while (--n > 0 && ms < p->backoff_max_ms)
		ms *= 2;
	if (ms > p->backoff_max_ms)
		ms = p->backoff_max_ms;
	ms *= FERRY__MS;
	half = ms / 2;
	return ms - half + (half ? ferry__rng_next(rng) % (half + 1) : 0);
}

/*
 * Retry-After (RFC 9110 10.2.3): delay-seconds or an HTTP-date, in ms
 * from now (0 for a date in the past), or -1 when absent or unreadable.
 */
int64_t ferry__retry_after_ms(const char *v)
{
	struct tm tm;
	const char *end;
	time_t t, now;

	if (!v)
		return -1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v >= '0' && *v <= '9') {
		char *e;
		unsigned long long s = strtoull(v, &e, 10);

		while (*e == ' ' || *e == '\t')
			e++;
		if (*e || s > 86400ull * 365)
			return -1;
		return (int64_t)s * 1000;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end)
		return -1;
	t = timegm(&tm);
	now = time(NULL);
	if (t == (time_t)-1)
		return -1;
	return t > now ? (int64_t)(t - now) * 1000 : 0;
}
