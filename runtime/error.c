/* error.c - ferry_strerror: words for every code ferry returns. */
#include <string.h>

#include "ferry/error.h"

struct ferry__errinfo {
	int code;
	const char *name;
	const char *text;
};

static const struct ferry__errinfo ferry__errors[] = {
	{ FERRY_OK, "FERRY_OK", "success" },
	{ FERRY_EUNAVAIL, "FERRY_EUNAVAIL", "io_uring is unavailable" },
	{ FERRY_EURL, "FERRY_EURL", "bad URL" },
	{ FERRY_EDNS, "FERRY_EDNS", "name resolution failed" },
	{ FERRY_ECONNECT_TIMEOUT, "FERRY_ECONNECT_TIMEOUT", "connect timed out" },
	{ FERRY_EREAD_TIMEOUT, "FERRY_EREAD_TIMEOUT", "read timed out" },
	{ FERRY_ETOTAL_TIMEOUT, "FERRY_ETOTAL_TIMEOUT", "request deadline exceeded" },
	{ FERRY_ETLS_HANDSHAKE, "FERRY_ETLS_HANDSHAKE", "TLS handshake failed" },
	{ FERRY_ETLS_CERT, "FERRY_ETLS_CERT", "TLS certificate rejected" },
	{ FERRY_ETLS_TRUNCATED, "FERRY_ETLS_TRUNCATED",
	  "TLS connection closed without close_notify (truncated)" },
	{ FERRY_EPROTO, "FERRY_EPROTO", "HTTP protocol error" },
	{ FERRY_ETOOLARGE, "FERRY_ETOOLARGE", "limit exceeded" },
	{ FERRY_ECANCELED, "FERRY_ECANCELED", "cancelled" },
	{ FERRY_ECLOSED, "FERRY_ECLOSED", "closed" },
	{ FERRY_EDEADLOCK, "FERRY_EDEADLOCK",
	  "blocking call on the loop thread would deadlock" },
	{ FERRY_ETIMEDOUT, "FERRY_ETIMEDOUT", "wait timed out" },
	{ FERRY_EREDIRECTS, "FERRY_EREDIRECTS", "too many redirects" },
	{ FERRY_EINVAL, "FERRY_EINVAL", "invalid argument" },
	{ FERRY_EEMPTY_REPLY, "FERRY_EEMPTY_REPLY",
	  "empty reply: connection closed before any response byte" },
	{ FERRY_EPARTIAL, "FERRY_EPARTIAL",
	  "connection closed before the end of the response" },
	{ FERRY_ETLS_CA, "FERRY_ETLS_CA", "CA certificates cannot be loaded" },
	{ FERRY_EPROXY_DNS, "FERRY_EPROXY_DNS", "proxy name resolution failed" },
	{ FERRY_EPROXY, "FERRY_EPROXY", "the proxy refused the tunnel" },
	{ FERRY_EDECODE, "FERRY_EDECODE", "compressed body cannot be decoded" },
	{ FERRY_ETLS_CLIENT_CERT, "FERRY_ETLS_CLIENT_CERT",
	  "client certificate or key cannot be used" },
};

static const struct ferry__errinfo *ferry__errfind(int code)
{
	for (size_t i = 0; i < sizeof(ferry__errors) / sizeof(ferry__errors[0]); i++)
		if (ferry__errors[i].code == code)
			return &ferry__errors[i];
	return NULL;
}

const char *ferry_strerror(int code)
{
	const struct ferry__errinfo *e = ferry__errfind(code);
	const char *s;

	if (e)
		return e->text;
	if (code < 0 && code > -4096) {
		/* strerrordesc_np returns a constant string: thread-safe. */
		s = strerrordesc_np(-code);
		if (s)
			return s;
	}
	return "unknown error";
}

const char *ferry_strerrorname(int code)
{
	const struct ferry__errinfo *e = ferry__errfind(code);
	const char *s;

	if (e)
		return e->name;
	if (code < 0 && code > -4096) {
		s = strerrorname_np(-code);
		if (s)
			return s;
	}
	return "unknown";
}
