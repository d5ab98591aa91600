/*
 * ferry/error.h - error codes shared by every ferry module.
 *
 * Every fallible ferry call returns a negative code and never sets errno.
 * Two ranges share the negative integers:
 *
 *   -1 .. -4095        a negated errno value, passed through from the kernel
 *                      (-ECONNREFUSED, -ECONNRESET, -ENOMEM, ...);
 *   -10001 .. -10099   ferry's own conditions, listed below.
 *
 * ferry_strerror() turns either kind into a constant English sentence.
 */
#ifndef FERRY_ERROR_H
#define FERRY_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum ferry_error {
	FERRY_OK = 0,
	/* io_uring cannot be used here (ENOSYS, seccomp EPERM, sysctl). */
	FERRY_EUNAVAIL = -10001,
	/* The URL could not be parsed; the request detail names the part. */
	FERRY_EURL = -10002,
	/* Name resolution failed (getaddrinfo); the detail has gai_strerror. */
	FERRY_EDNS = -10003,
	/* Connecting to every resolved address took longer than allowed. */
	FERRY_ECONNECT_TIMEOUT = -10004,
	/* No byte arrived from the peer within the idle read timeout. */
	FERRY_EREAD_TIMEOUT = -10005,
	/* The request's total deadline passed. */
	FERRY_ETOTAL_TIMEOUT = -10006,
	/* TLS handshake failed (no common suite, alert, not TLS). */
	FERRY_ETLS_HANDSHAKE = -10007,
	/* The peer's certificate was rejected (expired, issuer, name...). */
	FERRY_ETLS_CERT = -10008,
	/* The peer closed TLS without close_notify where that loses data. */
	FERRY_ETLS_TRUNCATED = -10009,
	/* The peer broke HTTP/1.1 (bad framing, bad header, CL+TE...). */
	FERRY_EPROTO = -10010,
	/* A response, header section or line exceeded its configured limit. */
	FERRY_ETOOLARGE = -10011,
	/* The operation was cancelled by its owner. */
	FERRY_ECANCELED = -10012,
	/* The runner, client or stream was closed underneath the caller. */
	FERRY_ECLOSED = -10013,
	/* A blocking call was made on the loop thread, which would deadlock. */
	FERRY_EDEADLOCK = -10014,
	/* A wait's deadline passed before the result was ready. */
	FERRY_ETIMEDOUT = -10015,
	/* More redirects than the request allowed. */
	FERRY_EREDIRECTS = -10016,
	/* An argument was invalid (NULL where not allowed, bad size...). */
	FERRY_EINVAL = -10017,
	/* Failures a client tells apart (curl's exit codes 52, 18, 77): */
	/* The server closed the connection before any response byte. */
	FERRY_EEMPTY_REPLY = -10018,
	/* The connection closed before the end the response announced. */
	FERRY_EPARTIAL = -10019,
	/* The CA file or directory cannot be read or holds no certificate. */
	FERRY_ETLS_CA = -10020,
	/* A compressed body (Content-Encoding gzip or deflate) is corrupt
	 * or cut short (curl's exit code 61). */
	FERRY_EDECODE = -10030,
	/* The client certificate or its key cannot be used: unreadable,
	 * not PEM, encrypted, or a key that is not the certificate's
	 * (curl's exit code 58). */
	FERRY_ETLS_CLIENT_CERT = -10031,
	/* Proxies (curl's exit codes 5 and 56): the proxy's name does not
	 * resolve; the proxy refused the tunnel (a CONNECT answered other
	 * than 2xx, 407 included) or answered it with something not HTTP. */
	FERRY_EPROXY_DNS = -10032,
	FERRY_EPROXY = -10033,
};

/*
 * ferry_strerror - describe an error code in words.
 *
 * Accepts any value a ferry call returns: a ferry code, a negated errno, or
 * 0. Returns a pointer to a constant string (never NULL, never freed).
 * Thread: any.
 */
const char *ferry_strerror(int code);

/*
 * ferry_strerrorname - the symbolic name of a code ("ECONNRESET",
 * "FERRY_EURL"), or "unknown". Constant string. Thread: any.
 */
const char *ferry_strerrorname(int code);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_ERROR_H */
