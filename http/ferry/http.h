/*
 * ferry/http.h - the loop-side HTTP/1.1 client: connections, a keep-alive
 * pool, and requests run as completion-driven state machines on one loop.
 *
 * Threads. Every function here runs on the loop thread of the loop the
 * client was created on, and every callback is made there. Nothing here is
 * thread-safe; other threads reach a client through the bridge
 * (ferry/bridge.h), which posts to the loop.
 *
 * Objects.
 *   struct ferry_http_client   one per loop (or more): options, the pool of
 *                              connections per origin, the receive buffer
 *                              ring. Created and closed by its owner.
 *   struct ferry_http_request  one HTTP exchange, followed through
 *                              redirects and one retry. Allocated by
 *                              ferry_http_request_start(); the handle is
 *                              valid until its on_done callback returns,
 *                              and the client frees it then.
 *
 * Callbacks, in order, for each request that started (start returned 0):
 * on_head once (unless the request fails first), on_body zero or more
 * times, then on_done exactly once, whatever happens: success, error,
 * cancellation or the client closing. No callback runs from inside
 * ferry_http_request_start().
 *
 * Zero-copy receive. Body bytes are handed to on_body where they lie in
 * the client's receive buffers (a provided-buffer ring). on_body may keep a
 * buffer by returning FERRY_HTTP_KEEP and hand it back later with
 * ferry_http_buffer_release(client, token); otherwise it is reused as soon
 * as on_body returns. A kept buffer does not stop its connection; pause the
 * request (ferry_http_request_pause) for that. The ring is shared by every
 * connection of the client: buffers kept for long starve the others,
 * which then wait (backpressure, not failure; but their read timeouts run).
 * Size the ring (recv_buf_count) for the buffers consumers may hold. A
 * paused request holds no ring buffer: the few bytes that arrived before
 * its connection stopped reading are copied aside, and handed to on_body
 * after resume with a token of their own (kept and released the same way).
 * https bodies are not zero-copy: TLS decrypts inside its engine, and each
 * record's plaintext is copied out into such a block of its own, handed
 * to on_body (and kept or released) the same way.
 *
 * Errors (in on_done's result, or returned by start):
 *   FERRY_EURL              bad URL or Location (detail names the part)
 *   FERRY_EDNS              name resolution failed (detail: gai_strerror);
 *                           "localhost" and "*.localhost" are never looked
 *                           up: they are 127.0.0.1 then ::1 (RFC 6761);
 *                           see "Names and addresses" below
 *   -ECONNREFUSED, -ECONNRESET, -EPIPE, -ENETUNREACH, ... from the kernel
 *   FERRY_ECONNECT_TIMEOUT  no address accepted within connect_timeout
 *   FERRY_EREAD_TIMEOUT     no byte moved for read_timeout
 *   FERRY_ETOTAL_TIMEOUT    the request's deadline passed
 *   FERRY_EPROTO            the server broke HTTP/1.1 (detail: parser's why),
 *                           or TLS failed after the handshake ("TLS: ...")
 *   FERRY_ETLS_CERT         https: the server's certificate was rejected
 *                           (detail names BearSSL's reason, e.g.
 *                           "TLS: X509_EXPIRED ...", "X509_NOT_TRUSTED",
 *                           "X509_BAD_SERVER_NAME", "X509_UNSUPPORTED" for a
 *                           SHA-1 signature, "X509_WEAK_PUBLIC_KEY")
 *   FERRY_ETLS_HANDSHAKE    https: the handshake failed (no common version
 *                           or suite under the strict defaults, an alert
 *                           from the server, or "the server did not answer
 *                           with TLS": plain HTTP on the port)
 *   FERRY_ETLS_TRUNCATED    https: the server closed TCP without
 *                           close_notify while the body ran to the close
 *   FERRY_EEMPTY_REPLY      the server closed the connection before any
 *                           response byte (after the one retry, if any)
 *   FERRY_EPARTIAL          the connection closed before the end of the
 *                           body (Content-Length or chunked)
 *   FERRY_ETLS_CA           https: the CA file or dir cannot be loaded
 *   FERRY_ETLS_CLIENT_CERT  https: tls_client_cert or tls_client_key
 *                           cannot be used (detail says why)
 *   FERRY_ETOOLARGE         head or body over its limit (1xx heads count
 *                           against max_head; more than max_interim), or
 *                           a decoded body over max_decoded or
 *                           max_decode_ratio
 *   FERRY_EDECODE           a gzip or deflate body is corrupt or cut short
 *                           (detail: zlib's reason)
 *   FERRY_EREDIRECTS        more redirects than allowed
 *   FERRY_ECANCELED         ferry_http_request_cancel()
 *   FERRY_ECLOSED           the client was closed
 *   FERRY_EINVAL, -ENOMEM
 * Every error comes with a detail string naming the cause.
 *
 * Names and addresses. A host name is looked up with getaddrinfo (so
 * /etc/hosts, resolv.conf and nsswitch.conf count as for any program) on
 * the loop's offload pool, and the answer is cached by the client:
 * connections that need a name while its lookup runs wait for that one
 * lookup; an answer is kept dns_cache_ttl_ms (getaddrinfo reports no TTL,
 * so the time is fixed, as curl's default resolver does it), a failure
 * dns_negative_ttl_ms. Entries in `resolve` ("host:port:addr[,addr]...",
 * curl's CURLOPT_RESOLVE) answer before any lookup and never expire; TLS
 * still checks the URL's host name. The addresses are tried as Happy
 * Eyeballs does (RFC 8305): the first, then the next one each
 * happy_eyeballs_delay_ms while none has connected (at once when one
 * fails), IPv6 and IPv4 interleaved starting with the family the
 * resolver put first; the first to connect wins, the other attempts are
 * cancelled. connect_timeout_ms applies to each attempt.
 *
 * Retries (opt-in, struct ferry_http_retry): a request may be tried again
 * after a connect failure, a reset or close before any response byte, or
 * a 408/429/502/503/504 response (whose head and body are then dropped,
 * not reported), only for idempotent methods unless any_method is set,
 * never for a producer body once it has been read, after an exponential
 * backoff with jitter or the server's Retry-After, and only when the wait
 * ends before the request's total deadline. The last attempt's outcome is
 * reported; ferry_http_request_attempts() says how many there were.
 * Independently of any policy, an idempotent request that meets a pooled
 * connection the server had closed is sent once more on a new one (not
 * counted as an attempt).
 */
#ifndef FERRY_HTTP_H
#define FERRY_HTTP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/error.h"
#include "ferry/loop.h"
#include "ferry/url.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ferry_http_client;
struct ferry_http_request;

/* A timeout option with this value means "no timeout". */
#define FERRY_HTTP_NO_TIMEOUT UINT32_MAX

/* A cache size option with this value means "keep nothing". */
#define FERRY_HTTP_NO_CACHE UINT_MAX

/*
 * Which AEAD a TLS connection offers first (the server usually takes the
 * client's order). Both are always offered (ECDHE with ECDSA or RSA);
 * with tls_allow_legacy_suites the other suites of BearSSL's full
 * profile (static RSA, AES-CBC, AES-CCM, 3DES) follow them.
 */
enum ferry_tls_ciphers {
	/* AES-GCM first when the CPU has AES-NI and PCLMULQDQ (BearSSL's
	 * constant-time x86ni and pclmul code), else ChaCha20-Poly1305,
	 * which is faster than constant-time AES in software. */
	FERRY_TLS_CIPHERS_AUTO = 0,
	FERRY_TLS_CIPHERS_AES_GCM_FIRST,
	FERRY_TLS_CIPHERS_CHACHA20_FIRST,
};

/* TLS protocol versions, for tls_min_version (the wire values). */
#define FERRY_TLS_1_0 0x0301
#define FERRY_TLS_1_1 0x0302
#define FERRY_TLS_1_2 0x0303

/* What a retry policy retries (struct ferry_http_retry.on; bits). */
#define FERRY_HTTP_RETRY_CONNECT 0x01	/* no connection: refused,
					   unreachable, connect timeout (after
					   every address was tried) */
#define FERRY_HTTP_RETRY_RESET	0x02	/* reset or closed after the request
					   was sent, before any response byte
					   (-ECONNRESET, -EPIPE,
					   FERRY_EEMPTY_REPLY) */
#define FERRY_HTTP_RETRY_408	0x04	/* Request Timeout */
#define FERRY_HTTP_RETRY_429	0x08	/* Too Many Requests */
#define FERRY_HTTP_RETRY_502	0x10	/* Bad Gateway */
#define FERRY_HTTP_RETRY_503	0x20	/* Service Unavailable */
#define FERRY_HTTP_RETRY_504	0x40	/* Gateway Timeout */
#define FERRY_HTTP_RETRY_DEFAULT 0x7f	/* all of the above */

/*
 * A retry policy (see "Retries" at the top). Zero-initialised it retries
 * nothing; set max_retries to turn it on. 0 in another field means the
 * default in brackets.
 */
struct ferry_http_retry {
	unsigned max_retries;		/* [0] retries after the first try */
	unsigned on;			/* [FERRY_HTTP_RETRY_DEFAULT] */
	/* [false] retry POST, PATCH and other methods that are not
	 * idempotent too (the server may then act twice). */
	bool any_method;
	/* [200] wait before the first retry, in ms; doubled for each
	 * next one up to backoff_max_ms [10000]. The wait is picked at
	 * random in the upper half of that (jitter). */
	uint32_t backoff_ms;
	uint32_t backoff_max_ms;
	/* [30000] a 408/429/502/503/504 with Retry-After (seconds or an
	 * HTTP-date) is retried after that long, without jitter; one that
	 * asks for more than this many ms is not retried: it is the
	 * response. */
	uint32_t retry_after_max_ms;
};

/* Room for any detail string a request reports, NUL included. */
#define FERRY_HTTP_DETAIL_MAX 192

/*
 * Client options. Zero-initialise and set what you need: 0 means the
 * default in brackets.
 */
struct ferry_http_client_opts {
	unsigned max_conns_per_origin;	/* [8] open connections per origin */
	unsigned max_conns;		/* [256] open connections in all */
	uint32_t idle_timeout_ms;	/* [60000] pooled connection lifetime
					   without use */
	uint32_t connect_timeout_ms;	/* [10000] per address tried */
	uint32_t read_timeout_ms;	/* [30000] longest wait for a byte
					   sent or received */
	size_t max_head;		/* [64 KiB] response head limit */
	uint64_t max_body;		/* [unlimited] response body limit */
	/* [5] interim (1xx) responses accepted before the final one; their
	 * bytes count against max_head (FERRY_ETOOLARGE past either). */
	unsigned max_interim;
	/* [16 KiB] bytes of a followed redirect's body read (and dropped)
	 * to keep its connection; a larger or longer one (also: one over
	 * max_body) is not drained: the connection is closed and the
	 * redirect followed on another. */
	uint64_t max_redirect_body;
	const char *user_agent;		/* ["ferry/0.1"]; copied */
	bool follow_redirects;		/* [false] default for requests */
	unsigned max_redirects;		/* [10] default for requests */
	unsigned recv_buf_size;		/* [16384] bytes per receive buffer */
	unsigned recv_buf_count;	/* [256] buffers (power of two) */
	/*
	 * https. Trust anchors are read once per client, when its first
	 * https request starts: from ca_file (PEM, may hold many
	 * certificates) and/or every PEM file in ca_dir, or, when both are
	 * NULL, from the system bundle /etc/ssl/certs/ca-certificates.crt.
	 * Both strings are copied. The TLS handshake must finish within
	 * connect_timeout_ms after the TCP connect (FERRY_ECONNECT_TIMEOUT).
	 * Sessions are cached per origin and resumed on new connections
	 * (tls_session_lifetime_ms). A host with a trailing dot
	 * ("localhost.") is sent as SNI and matched without it.
	 */
	const char *ca_file;		/* [NULL] */
	const char *ca_dir;		/* [NULL] */
	/* [false] Accept any certificate, name and date: DANGEROUS, for
	 * tests and debugging only. Encryption stays, authentication goes. */
	bool tls_insecure_skip_verify;
	/* [AUTO] cipher suite order, see enum ferry_tls_ciphers. */
	enum ferry_tls_ciphers tls_ciphers;
	/* [64] origins whose TLS session is kept for resumption (least
	 * recently used dropped first); FERRY_HTTP_NO_CACHE: none. */
	unsigned tls_session_cache;
	/*
	 * [64] verified server certificates remembered; FERRY_HTTP_NO_CACHE:
	 * none. A full handshake checks the server's chain up to a trust
	 * anchor: a signature check per certificate, as costly as the key
	 * exchange itself. The client remembers each leaf certificate it
	 * verified for a host name (a SHA-256 of the name and the leaf's
	 * bytes, the key usages, and the validity window common to the
	 * whole chain). When the same leaf comes back for the same name and
	 * the clock is inside that window, the chain check is skipped; the
	 * server must still prove it holds the leaf's key in the handshake,
	 * as always. A client's trust anchors never change, so the result
	 * stays true while the window lasts.
	 */
	unsigned tls_verify_cache;
	/*
	 * [1 hour] how long a cached TLS session may be resumed, in ms;
	 * FERRY_HTTP_NO_TIMEOUT: no limit of its own. Either way a session
	 * ends when the validity window of the certificate chain it was
	 * verified with does (a resumed handshake sees no certificate), and
	 * resuming never extends it.
	 */
	uint32_t tls_session_lifetime_ms;
	/*
	 * [4096] the largest TLS record the client sends, in plaintext
	 * bytes, 1024 to 16384. Each TLS connection keeps a send buffer of
	 * that size (plus 85 bytes) for as long as it lives; what does not
	 * fit in one record goes out in several. Larger records save sends
	 * on big uploads, smaller ones memory per connection. The receive
	 * side always holds a full 16 KiB record: servers send them.
	 */
	unsigned tls_send_record_max;
	/*
	 * Strict TLS by default; each field below relaxes one rule, for
	 * legacy servers only (each weakens what TLS protects).
	 *
	 * tls_min_version [FERRY_TLS_1_2]: the oldest version accepted
	 * (FERRY_TLS_1_0, _1_1 or _1_2; BearSSL has no TLS 1.3). TLS 1.0
	 * and 1.1 have no AEAD suite: they also need tls_allow_legacy_suites.
	 */
	uint16_t tls_min_version;
	/* [false] Offer, after the ECDHE AEAD suites (AES-GCM, ChaCha20-
	 * Poly1305), the rest of BearSSL's: static RSA key exchange (no
	 * forward secrecy), AES-CBC with HMAC, AES-CCM and 3DES. */
	bool tls_allow_legacy_suites;
	/* [2048] smallest RSA key accepted in the server's chain (leaf and
	 * intermediates; not the trust anchors), in bits, 1024 to 4096. */
	unsigned tls_min_rsa_bits;
	/* [false] Accept certificates signed with SHA-1 (or MD5: never). */
	bool tls_allow_sha1;
	/* [false] Let the server renegotiate (with RFC 5746 secure
	 * renegotiation). Off, a HelloRequest is answered with a
	 * no_renegotiation alert and the connection goes on as it was. */
	bool tls_allow_renegotiation;
	/*
	 * Proxies, as curl and libcurl take them. proxy [NULL]: every
	 * request goes through this proxy: "[http://|https://][user:
	 * password@]host[:port]" (no scheme: http; port 1080 by default,
	 * 443 for https://, which speaks TLS to the proxy, verified against
	 * the proxy's name); "" none. NULL: from the environment, read once
	 * here, as curl reads it: http_proxy (lowercase only: HTTP_PROXY may
	 * come from a request header in a CGI program) for http:// URLs,
	 * https_proxy or HTTPS_PROXY for https://, all_proxy or ALL_PROXY
	 * for either when its own is unset. http:// goes to the proxy in
	 * absolute form on pooled proxy connections; https:// (and every URL
	 * with proxy_tunnel) through a CONNECT tunnel, then TLS to the
	 * origin inside it (SNI and verification against the origin).
	 * Credentials in the proxy URL (percent-encoded) go to the proxy
	 * only, as Basic Proxy-Authorization. A tunnel the proxy refuses
	 * (407 included) fails with FERRY_EPROXY; a proxy name that does
	 * not resolve with FERRY_EPROXY_DNS; sentences name the hop.
	 */
	const char *proxy;
	/* [NULL: no_proxy or NO_PROXY from the environment] hosts that go
	 * direct: "*" or a list separated by commas or spaces of host
	 * names (each with every name under it), IP addresses and CIDR
	 * ranges; "" none. Copied. */
	const char *no_proxy;
	bool proxy_tunnel;	/* [false] CONNECT for http:// too */
	/* [NULL] "user:password" for the proxy (libcurl's PROXYUSERPWD),
	 * in place of any in the proxy URL; not percent-decoded. */
	const char *proxy_userpwd;
	/*
	 * [NULL] connect every request to this Unix stream socket instead
	 * (curl's --unix-socket): the URL still gives the Host header, the
	 * target and the scheme (https: TLS over the socket, verified
	 * against the URL's host). Connections pool per socket path (and
	 * per origin for https). unix_socket_abstract: the name is in
	 * Linux's abstract namespace (curl's --abstract-unix-socket). A
	 * request's own unix_socket wins over this one; either wins over
	 * any proxy. Copied.
	 */
	const char *unix_socket;
	bool unix_socket_abstract;
	/*
	 * Names (see "Names and addresses" at the top).
	 * dns_cache_ttl_ms [60000]: how long a looked-up answer is used;
	 * FERRY_HTTP_NO_CACHE: not kept (each new connection looks up,
	 * concurrent ones still share a lookup).
	 * dns_negative_ttl_ms [3000]: how long a failed lookup is the
	 * answer; FERRY_HTTP_NO_CACHE: not kept.
	 * dns_cache_max [256]: names kept, least recently used dropped
	 * first; FERRY_HTTP_NO_CACHE: none.
	 */
	uint32_t dns_cache_ttl_ms;
	uint32_t dns_negative_ttl_ms;
	unsigned dns_cache_max;
	/* [250] ms between connect attempts to a name's next address while
	 * none has connected (RFC 8305's Connection Attempt Delay);
	 * FERRY_HTTP_NO_TIMEOUT: one address at a time, the next when one
	 * fails. */
	uint32_t happy_eyeballs_delay_ms;
	/*
	 * [none] resolve overrides, curl's CURLOPT_RESOLVE: each
	 * "host:port:address[,address]..." (IPv6 addresses bare or in
	 * brackets) makes the client connect to those addresses, in that
	 * order, for that host (any case) and port, without a lookup; host
	 * "*" stands for every host at that port. As in curl, the last
	 * entry for the host and port wins, then the last "*" one. Copied
	 * at create. "localhost" names stay loopback whatever these say.
	 */
	const char *const *resolve;
	size_t nresolve;
	/* [off] the retry policy of requests that do not bring their own. */
	struct ferry_http_retry retry;
	/*
	 * Client certificate (mutual TLS). [NULL] A PEM file holding the
	 * certificate chain, leaf first, and, unless tls_client_key names a
	 * file of its own, the private key: RSA or EC ("RSA PRIVATE KEY",
	 * "EC PRIVATE KEY" or unencrypted PKCS#8 "PRIVATE KEY"). Both are
	 * read with the trust anchors, when the client's first https request
	 * starts, and the key must be the certificate's; if not, or if a
	 * file cannot be read, that request fails with FERRY_ETLS_CLIENT_CERT
	 * and a detail naming the problem. The certificate is sent only when
	 * a server asks for one. A server that wants a certificate and gets
	 * none, or refuses ours, fails the handshake: FERRY_ETLS_HANDSHAKE,
	 * "the server requires a client certificate and none is set" or "the
	 * server refused the client certificate" with its alert. Both
	 * strings are copied. Encrypted keys are not supported.
	 */
	const char *tls_client_cert;
	const char *tls_client_key;	/* [NULL] the key is in tls_client_cert */
	/*
	 * Content decoding. [false] true: requests (unless theirs says
	 * otherwise, see decode_content in struct ferry_http_request_opts)
	 * send "Accept-Encoding: gzip, deflate" (unless they carry an
	 * Accept-Encoding of their own), and a response whose
	 * Content-Encoding is gzip (or x-gzip) or deflate (zlib-wrapped or
	 * raw) reaches on_body decoded, as it arrives. Content-Length and
	 * Content-Encoding stay as the server sent them (encoded bytes);
	 * max_body counts both the encoded and the decoded bytes. Any other
	 * coding, or several, is delivered as it came. Decoded bytes come in
	 * blocks of 16 KiB of their own (kept and released like any buffer),
	 * so on_body receives copies where an undecoded body is lent; a
	 * decoding response holds about 56 KiB (zlib's state and window, and
	 * a block). A corrupt or cut-short stream fails with FERRY_EDECODE.
	 */
	bool decode_content;
	/* [1 GiB] decoded bytes per response; UINT64_MAX: no limit.
	 * Past it: FERRY_ETOOLARGE. */
	uint64_t max_decoded;
	/* [100] decoded bytes per encoded byte, checked once 1 MiB is
	 * decoded; UINT_MAX: no limit. Past it: FERRY_ETOOLARGE (a
	 * decompression bomb: deflate reaches 1032:1). */
	unsigned max_decode_ratio;
};

/*
 * ferry_http_client_create - make a client on @loop's thread.
 *
 * @opts may be NULL. The client registers a provided-buffer ring on the
 * loop (recv_buf_count * recv_buf_size bytes). The caller owns *@cp and
 * must close it with ferry_http_client_close() and wait for the close
 * callback before destroying the loop.
 *
 * Returns 0, FERRY_EINVAL (bad option: recv_buf_count not a power of two,
 * a resolve entry that is not host:port:address[,address]...,
 * user agent with CR/LF, unknown tls_ciphers or tls_min_version,
 * tls_min_rsa_bits outside 1024..4096, tls_send_record_max outside
 * 1024..16384, a proxy URL (option or environment) that does not parse
 * or has a scheme other than http/https), -ENOMEM, -EOPNOTSUPP (the
 * kernel lacks provided buffer rings or multishot recv), or the kernel's
 * error.
 */
int ferry_http_client_create(struct ferry_loop *loop,
			     const struct ferry_http_client_opts *opts,
			     struct ferry_http_client **cp);

typedef void (*ferry_http_closed_fn)(void *ctx);

/*
 * ferry_http_client_close - cancel everything and free the client.
 *
 * Every request still running completes (on_done) with FERRY_ECLOSED,
 * before this call returns; new requests are refused. Connections are
 * closed; the client is freed once the last of their completions has
 * arrived and every buffer kept by an on_body has been released, and then
 * @cb(@ctx) runs (@cb may be NULL). That happens inside this call when
 * nothing was in flight, otherwise from a later loop turn (or from
 * ferry_loop_destroy, which reaps every completion). After this call the
 * only valid use of @c is ferry_http_buffer_release(). Calling it twice
 * is a bug.
 */
void ferry_http_client_close(struct ferry_http_client *c,
			     ferry_http_closed_fn cb, void *ctx);

/* ferry_http_client_loop - the loop the client runs on. */
struct ferry_loop *ferry_http_client_loop(const struct ferry_http_client *c);

/* ferry_http_client_recv_buf_count - the receive ring's size in buffers
 * (recv_buf_count, or its default). Thread: any; immutable. */
unsigned ferry_http_client_recv_buf_count(const struct ferry_http_client *c);

/*
 * Counters, for tests and the bench: connections open (connecting,
 * busy or idle), idle in the pool, requests started in all, requests
 * waiting for a connection, connections opened in all, retries, and
 * TLS handshakes.
 */
struct ferry_http_client_stats {
	unsigned conns;
	unsigned idle;
	unsigned requests;
	unsigned waiting;
	uint64_t conns_opened;
	uint64_t requests_started;
	uint64_t retries;
	/* TLS handshakes finished: full, resumed (a cached session), and
	 * full ones whose certificate check the verify cache answered. */
	uint64_t tls_full;
	uint64_t tls_resumed;
	uint64_t tls_verify_cached;
	/* Names: getaddrinfo calls made, connections answered from the
	 * cache (answers and failures), connections that waited for a
	 * lookup already running. Overrides, literals and localhost count
	 * in none. */
	uint64_t dns_lookups;
	uint64_t dns_cache_hits;
	uint64_t dns_shared;
	/* Retries of the retry policy (the silent retry on a closed pooled
	 * connection counts in `retries` only). */
	uint64_t policy_retries;
};
void ferry_http_client_stats(const struct ferry_http_client *c,
			     struct ferry_http_client_stats *st);

/* A header field by pointer and length (not NUL-terminated). */
struct ferry_http_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* A header from two string literals. */
#define FERRY_HTTP_HEADER(n, v) { (n), sizeof(n) - 1, (v), sizeof(v) - 1 }

/* on_body's return value: the callback keeps the buffer (see above). */
#define FERRY_HTTP_KEEP 1

/* body_fn's return value: no data yet; call ferry_http_request_body_ready. */
#define FERRY_HTTP_BODY_WAIT (-11)	/* -EAGAIN */

struct ferry_http_callbacks {
	/*
	 * The final response head has arrived (1xx are dropped; followed
	 * redirects are not reported). Read it with the accessors below.
	 * Return 0 to go on, or a negative code to fail the request with it.
	 * May be NULL.
	 */
	int (*on_head)(void *ctx, struct ferry_http_request *req, int status);
	/*
	 * The next @len bytes of the body (de-chunked), at @data inside a
	 * receive buffer. Return 0 when done with them (the buffer is reused
	 * at once), FERRY_HTTP_KEEP to keep the buffer until
	 * ferry_http_buffer_release(client, @token) (data stays valid till
	 * then, even after on_done and the client's close), or a negative
	 * code to fail the request with it. May be NULL (body dropped).
	 */
	int (*on_body)(void *ctx, struct ferry_http_request *req,
		       const void *data, size_t len, uintptr_t token);
	/*
	 * The request is over: @result is the HTTP status (>= 100) when the
	 * whole response was read, else a negative code; @detail is a
	 * sentence about an error ("" on success). After on_done returns the
	 * request is freed. Response headers are no longer readable here.
	 * Required.
	 */
	void (*on_done)(void *ctx, struct ferry_http_request *req,
			int result, const char *detail);
};

/*
 * A body producer: called on the loop thread whenever the connection can
 * take more of the request body. Returns:
 *   1                     @data and @len (len > 0) hold the next piece, lent
 *                         until the next call to body_fn or on_done;
 *   0                     the body is complete;
 *   FERRY_HTTP_BODY_WAIT  nothing yet: call ferry_http_request_body_ready()
 *                         when there is;
 *   other negative        fail the request with that code.
 */
typedef int (*ferry_http_body_fn)(void *ctx, struct ferry_http_request *req,
				  const void **data, size_t *len);

/* decode_content values in a request. */
enum ferry_http_decode {
	FERRY_HTTP_DECODE_DEFAULT = 0,	/* the client's decode_content */
	FERRY_HTTP_DECODE_NO = 1,
	FERRY_HTTP_DECODE_YES = 2,
};

/* follow_redirects values in a request. */
enum ferry_http_follow {
	FERRY_HTTP_FOLLOW_DEFAULT = 0,	/* the client's option */
	FERRY_HTTP_FOLLOW_NO = 1,
	FERRY_HTTP_FOLLOW_YES = 2,
};

/*
 * struct ferry_http_request_opts - what to send and how. Everything is
 * copied by ferry_http_request_start() except @body and what @body_fn
 * lends, which must stay valid until on_done.
 */
struct ferry_http_request_opts {
	const char *method;		/* token, NUL-terminated; NULL = "GET" */
	const struct ferry_url *url;	/* required; http or https */
	const struct ferry_http_header *headers;	/* sent in order */
	size_t nheaders;
	/* Body, from a buffer (borrowed, Content-Length) ... */
	const void *body;
	size_t body_len;
	/* ... or from a producer: body_fn_len >= 0 is the exact length
	 * (Content-Length), < 0 unknown (sent chunked). A producer body is
	 * not replayed: no retry, and a 307/308 ends the request with the
	 * redirect response. */
	ferry_http_body_fn body_fn;
	int64_t body_fn_len;
	/* [NULL] passed to body_fn instead of @ctx when not NULL (a body
	 * source of its own, such as struct ferry_body, ferry/body.h). */
	void *body_ctx;
	uint32_t timeout_ms;		/* total deadline; 0 = none */
	/* 0 = the client's; FERRY_HTTP_NO_TIMEOUT: none. */
	uint32_t read_timeout_ms;
	/* 0 = the client's; FERRY_HTTP_NO_TIMEOUT: none. Per address tried,
	 * and for the TLS handshake, as the client's option; it applies to
	 * the connection opened for this request (a request served by a
	 * pooled connection does not connect; one handed a connection that
	 * another request opened has that request's). */
	uint32_t connect_timeout_ms;
	uint64_t max_body;		/* 0 = the client's */
	enum ferry_http_follow follow_redirects;
	unsigned max_redirects;		/* 0 = the client's */
	const struct ferry_http_callbacks *cb;	/* required; kept, not copied */
	void *ctx;			/* passed to callbacks */
	/*
	 * [false] true: @headers are the whole head, sent exactly in the
	 * given order, and the client adds nothing of its own: no Host (a
	 * Host among @headers is sent where it stands, and unchanged across
	 * redirects), no User-Agent, no "Content-Length: 0" for an empty
	 * POST. A Content-Length among @headers is accepted when it states
	 * the body's exact length (it is then sent where it stands);
	 * otherwise a body of one byte or more gets one appended, as usual.
	 * For tools that must put every field where another client puts it
	 * (fetch matches curl's order this way).
	 */
	bool raw_headers;
	/* [NULL: the client's] this request's Unix socket (see
	 * ferry_http_client_opts.unix_socket); copied. */
	const char *unix_socket;
	bool unix_socket_abstract;
	/* [NULL] the retry policy: NULL = the client's (opts.retry);
	 * copied. */
	const struct ferry_http_retry *retry;
	/* [DEFAULT] ask for and decode gzip/deflate bodies: see
	 * decode_content in struct ferry_http_client_opts. With raw_headers
	 * no Accept-Encoding is added: send your own. */
	enum ferry_http_decode decode_content;
};

/*
 * ferry_http_request_start - begin a request.
 *
 * Validates everything it can before any I/O: the URL, the method (a token, not CONNECT), header names and
 * values (no CR/LF/NUL; no Content-Length or Transfer-Encoding, which the
 * body decides). On success *@reqp receives the handle and exactly one
 * on_done will follow. On failure no callback runs, *@reqp is NULL and,
 * if @why is not NULL, a sentence of at most @whylen bytes says why.
 *
 * The first https request of a client loads its trust anchors (see
 * ferry_http_client_opts.ca_file); a CA file or dir that cannot be read
 * or holds no certificate fails it with FERRY_ETLS_CA, a client
 * certificate or key that cannot be used with FERRY_ETLS_CLIENT_CERT.
 *
 * Returns 0, FERRY_EINVAL, FERRY_ETLS_CA, FERRY_ETLS_CLIENT_CERT,
 * FERRY_ECLOSED (client closing) or -ENOMEM.
 */
int ferry_http_request_start(struct ferry_http_client *c,
			     const struct ferry_http_request_opts *opts,
			     struct ferry_http_request **reqp,
			     char *why, size_t whylen);

/*
 * ferry_http_request_cancel - stop @req: on_done follows with
 * FERRY_ECANCELED, from inside this call, or right after the callback
 * this is called from returns. Valid from start until on_done; calling it
 * from on_done is a bug. Its connection is closed if a response was
 * under way.
 */
void ferry_http_request_cancel(struct ferry_http_request *req);

/*
 * ferry_http_request_pause - stop delivering the response: neither
 * on_head nor on_body is called until ferry_http_request_resume() (on_done
 * may be, for an error or a cancel), and the connection stops
 * reading (the kernel's socket buffer fills and TCP pushes back). The read
 * timeout does not run while paused; the total deadline does. Idempotent.
 */
void ferry_http_request_pause(struct ferry_http_request *req);

/* ferry_http_request_resume - undo pause; on_body calls resume from a
 * later loop turn, never from inside this call. Idempotent. */
void ferry_http_request_resume(struct ferry_http_request *req);

/*
 * ferry_http_request_body_into - give the request the memory the rest of
 * its body goes to, so the body can be received straight into it: byte k
 * of the body after this call (k from 0) belongs at @buf[k]. Call from
 * on_head (or on_body). Loop thread.
 *
 * Where the framing allows it - plain TCP or a Unix socket (not TLS, not a
 * CONNECT tunnel), a body framed by Content-Length that fits in @cap, no
 * content decoding, and at least 256 KiB of it left - the connection
 * receives the body into @buf itself, never past the Content-Length:
 * on_body then reports those bytes where they already are (@data ==
 * @buf + k, token 0: nothing to keep, FERRY_HTTP_KEEP is taken as 0).
 * Elsewhere on_body reports the bytes in receive buffers as usual, and
 * the caller copies them to @buf + k itself. Either way the caller reads
 * what on_body reported, and may write @buf[k] for a k on_body already
 * reported, or the one byte right after it (a terminating NUL); never
 * further on.
 *
 * Ownership of @buf passes to the request until on_done. When on_done
 * reports a response (@result >= 0), @buf is the caller's again, holding
 * the body. When it reports an error, the caller must no longer touch
 * @buf: a receive into it may still be in flight (a cancel, a timeout or
 * the client's close stopped the request, not the kernel's op), and the
 * request calls @release(@buf) once nothing writes into it any more, on
 * the loop thread, after on_done, at the latest while the client closes
 * or its loop is destroyed.
 *
 * Returns 0, or FERRY_EINVAL (@req not in on_head or on_body, @buf or
 * @release NULL, a buffer already given, or a body being decoded, whose
 * bytes are not the ones received): @buf stays the caller's.
 */
int ferry_http_request_body_into(struct ferry_http_request *req, void *buf,
				 size_t cap, void (*release)(void *buf));

/* ferry_http_request_body_ready - a body_fn that said FERRY_HTTP_BODY_WAIT
 * has data now; it is called again soon (not from inside this call). */
void ferry_http_request_body_ready(struct ferry_http_request *req);

/*
 * ferry_http_buffer_release - hand back a buffer on_body kept.
 * @token is the one given to on_body (a ring buffer's number plus one, or
 * the address of a copied-aside block; opaque either way), released once
 * per FERRY_HTTP_KEEP. Valid after the request finished and after
 * ferry_http_client_close() (the client waits for it). Returns 0, or
 * FERRY_EINVAL for a token that is not kept (checked, never trusted).
 */
int ferry_http_buffer_release(struct ferry_http_client *c, uintptr_t token);

/*
 * Response accessors: valid inside on_head and on_body (strings point into
 * the connection's parser and are NUL-terminated).
 */

/* Status code of the final response, 0 before on_head. */
int ferry_http_response_status(const struct ferry_http_request *req);

/* Reason phrase ("OK"; may be empty). @len may be NULL. */
const char *ferry_http_response_reason(const struct ferry_http_request *req,
				       size_t *len);

/* HTTP minor version of the final response: 1 (HTTP/1.1) or 0
 * (HTTP/1.0); -1 before on_head. */
int ferry_http_response_minor(const struct ferry_http_request *req);

/* Number of header fields, repeats included. */
size_t ferry_http_response_header_count(const struct ferry_http_request *req);

/* Field @i, 0-based, in arrival order. false if out of range. */
bool ferry_http_response_header_at(const struct ferry_http_request *req,
				   size_t i, struct ferry_http_header *out);

/* Value of the first field named @name (case-insensitive), or NULL. */
const char *ferry_http_response_header(const struct ferry_http_request *req,
				       const char *name, size_t *len);

/*
 * ferry_http_request_url - the URL being fetched now: after redirects, the
 * last one. Valid until on_done returns.
 */
const struct ferry_url *
ferry_http_request_url(const struct ferry_http_request *req);

/* ferry_http_request_redirects - redirects followed so far. */
unsigned ferry_http_request_redirects(const struct ferry_http_request *req);

/* ferry_http_request_attempts - tries so far: 1, plus one per retry of
 * the retry policy (redirects followed are not attempts). Valid until
 * on_done returns. */
unsigned ferry_http_request_attempts(const struct ferry_http_request *req);

/* ferry_http_request_reused - true if the current attempt runs on a
 * connection that carried an earlier request. */
bool ferry_http_request_reused(const struct ferry_http_request *req);

/*
 * Where the time of a request went: nanoseconds from
 * ferry_http_request_start() to each event of the current attempt (curl's
 * time_namelookup, time_connect, time_appconnect, time_starttransfer),
 * taken on the loop with CLOCK_MONOTONIC as the event completes. 0: the
 * event has not happened (yet), or has none (appconnect over http). On a
 * connection taken from the pool, name lookup, connect and TLS count as
 * done when the request got the connection. After a redirect followed by
 * the client the times are those of the last attempt, still counted from
 * the start.
 */
/*
 * ferry_http_request_body_received - the current response's body bytes
 * received so far as they came (chunked framing removed, before content
 * decoding: with decode_content these are the encoded bytes, curl's
 * size_download). Counts again from 0 for a redirect's or a retry's
 * response. Valid until on_done returns. Thread: loop.
 */
uint64_t ferry_http_request_body_received(const struct ferry_http_request *req);

/*
 * ferry_http_request_proxy - the proxy the request's current hop goes
 * through (an absolute-form request or a CONNECT tunnel): its URL, of
 * which scheme, host and port are set; NULL when it goes direct (or to a
 * Unix socket). The URL is the client's: valid until on_done returns.
 * Thread: loop.
 */
const struct ferry_url *
ferry_http_request_proxy(const struct ferry_http_request *req);

struct ferry_http_timings {
	uint64_t namelookup_ns;		/* the address was known */
	uint64_t connect_ns;		/* TCP connect completed */
	uint64_t appconnect_ns;		/* TLS handshake completed (https) */
	uint64_t starttransfer_ns;	/* the first response byte arrived */
};

/* ferry_http_request_timings - fill @t for @req. Valid from start until
 * on_done returns (call it from on_done for the final figures). */
void ferry_http_request_timings(const struct ferry_http_request *req,
				struct ferry_http_timings *t);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_HTTP_H */
