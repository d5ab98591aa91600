/*
 * ferry/session.h - blocking HTTP from any thread: a client tied to a
 * runner, requests that return a response with status and headers, then the
 * whole body or a stream of it.
 *
 * The same machinery as the loop-side client (ferry/http.h), reached
 * through the bridge (ferry/bridge.h): a request is a task on the runner's
 * loop; the calling thread blocks on its future. What aiohttp users do with
 * a ClientSession on a loop thread, ferry does with:
 *
 *     struct ferry_session *s;
 *     ferry_session_create(runner, NULL, &s);
 *     struct ferry_response *r;
 *     int rc = ferry_session_get(s, "http://127.0.0.1:8080/", &r);
 *     if (rc >= 0) use(ferry_response_status(r), ferry_response_body(r, &n));
 *     ferry_response_free(r);
 *     ferry_session_destroy(s);
 *
 * Threads: every function here is "Thread: any", except that a blocking
 * call on the runner's own loop thread returns FERRY_EDEADLOCK, and one
 * response's stream is read by one thread at a time.
 *
 * Errors: those of ferry/http.h (FERRY_EURL, FERRY_EDNS, -ECONNREFUSED,
 * timeouts, FERRY_EPROTO, FERRY_ETOOLARGE, ...), plus FERRY_ECLOSED when the
 * session or its runner is closed, and those of ferry/bridge.h. Every
 * error has a sentence: ferry_response_detail(), including an error that
 * ends a streamed body after the head (a read timeout mid-body, a close).
 * A close says which: "the session was closed" or "the runner was closed"
 * (never "cancelled", which is kept for ferry_task_cancel).
 *
 * NULL, one rule for every function here:
 *   - a NULL object where one is required (session, request, URL, the
 *     response pointer to fill, a header's name or value) is an error,
 *     FERRY_EINVAL, never a crash; when there is a response pointer to
 *     fill, it receives a response whose detail says which was NULL;
 *   - out-pointers for lengths and copies (@len, @out) may be NULL;
 *   - accessors given a NULL response answer neutrally: status
 *     FERRY_EINVAL, detail "no response (NULL)", reason and URL "",
 *     counts 0, pointers NULL, false;
 *   - ferry_response_free, ferry_session_close and ferry_session_destroy
 *     accept NULL as a no-op.
 * The bridge calls a response leads to follow it too (ferry/bridge.h):
 * ferry_stream_next(NULL, ...) and ferry_task_wait(NULL, ...) return
 * FERRY_EINVAL, so a whole-body response's NULL stream cannot crash.
 */
#ifndef FERRY_SESSION_H
#define FERRY_SESSION_H

#include "ferry/body.h"
#include "ferry/bridge.h"
#include "ferry/http.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ferry_session;
struct ferry_response;

/*
 * ferry_session_create - make a client on @r's loop (starting the runner
 * if needed) and tie it to the runner's lifetime: closing the runner
 * closes the session. @opts may be NULL (ferry/http.h's defaults).
 * *@sp is the caller's, freed with ferry_session_destroy().
 * Returns 0, FERRY_EINVAL (@r or @sp NULL), or the client's or runner's
 * error. @opts->max_body is also the session's whole-body limit (0 =
 * FERRY_SESSION_MAX_BODY, see struct ferry_request).
 */
int ferry_session_create(struct ferry_runner *r,
			 const struct ferry_http_client_opts *opts,
			 struct ferry_session **sp);

/*
 * struct ferry_session_opts - a session's options beyond the client's,
 * as aiohttp's ClientSession(base_url=, headers=). Zero-initialise and
 * set what you need; everything is copied by ferry_session_create_opts.
 */
struct ferry_session_opts {
	/* The client's options (ferry/http.h); NULL: the defaults. */
	const struct ferry_http_client_opts *client;
	/*
	 * [NULL] An absolute http or https URL that the URL of each request
	 * is resolved against, as RFC 3986 section 5 says (what a browser
	 * does with a link): "users" against "http://h/api/" is
	 * "http://h/api/users", "/users" is "http://h/users", "?q=1" keeps
	 * the base's path, and an absolute URL ("https://other/x") stands
	 * as it is. Mind the trailing slash: against "http://h/api" (no
	 * slash), "users" replaces "api" ("http://h/users"). Without a base,
	 * request URLs must be absolute.
	 */
	const char *base_url;
	/*
	 * [none] Header fields sent with every request, before the
	 * request's own. A request header with the same name (compared
	 * case-insensitively) replaces every default of that name. Names
	 * must be tokens and values free of CR, LF and NUL; Content-Length
	 * and Transfer-Encoding are refused (the body decides them).
	 */
	const struct ferry_http_header *headers;
	size_t nheaders;
};

/*
 * ferry_session_create_opts - ferry_session_create with a base URL and
 * default headers (@opts may be NULL: then it is ferry_session_create(r,
 * NULL, sp)). Returns as ferry_session_create, and FERRY_EURL for a bad
 * base URL, FERRY_EINVAL for a bad default header (NULL name or value,
 * nheaders without headers, a name that is not a token, CR/LF/NUL in a
 * value, Content-Length or Transfer-Encoding). Thread: any.
 */
int ferry_session_create_opts(struct ferry_runner *r,
			      const struct ferry_session_opts *opts,
			      struct ferry_session **sp);

/*
 * ferry_session_client - the session's loop-side client (ferry/http.h),
 * for a task running on the session's runner: a task that composes
 * several requests (one after another, or depending on each other's
 * answers) starts them with ferry_http_request_start on this client,
 * and shares the session's connection pool, TLS session cache and
 * receive buffers instead of making a client of its own.
 *
 * Thread: loop only (the runner's loop thread, inside a task's start or
 * an op's or a request's callback). Elsewhere it returns NULL, as it
 * does for a NULL session and once the session (or its runner) has been
 * closed.
 *
 * Rules: the client stays the session's. Never close it; the session's
 * close or its runner's closes it, and every request still running on it
 * then ends (on_done) with FERRY_ECLOSED. Keep the pointer across loop
 * turns only while a request you started on it runs (its on_done says
 * when the client closed); otherwise ask again (NULL once closed). The
 * session's base URL and default headers are the blocking API's: they do
 * not apply to requests started here. Blocking calls (ferry_session_get,
 * ferry_call, ...) on the loop thread return FERRY_EDEADLOCK, as always.
 */
struct ferry_http_client *ferry_session_client(struct ferry_session *s);

/*
 * ferry_session_close - close the client: requests in flight end with
 * FERRY_ECLOSED and connections close. Idempotent: the first call does the
 * work and returns when requests have ended; later or concurrent calls
 * return at once. After it, requests fail with FERRY_ECLOSED.
 */
void ferry_session_close(struct ferry_session *s);

/* ferry_session_destroy - close, then free @s. NULL is a no-op. */
void ferry_session_destroy(struct ferry_session *s);

/* ferry_session_runner - the runner the session lives on (NULL for NULL). */
struct ferry_runner *ferry_session_runner(const struct ferry_session *s);

/*
 * Whole-body mode keeps the body in memory, so it has a limit of its own
 * where the loop-side client has none: a request's max_body, else the
 * session's (ferry_http_client_opts.max_body), else this. UINT64_MAX
 * means no limit. A body over its limit fails with FERRY_ETOOLARGE and a
 * detail naming the limit (in bytes; for this default, also its name and
 * the option that changes it). A Content-Length over the limit is refused
 * at the head, before any of the body is read. Stream mode has no
 * default limit: the reader paces the body (a max_body it sets applies).
 */
#define FERRY_SESSION_MAX_BODY (256ull << 20)

/* What to send. Everything is copied by submit, except @body, @body_read's
 * context and @body_fd, which must stay valid (the fd open) until the
 * response is done (or freed). */
struct ferry_request {
	const char *method;		/* NULL = "GET"; any token */
	/* Required: http:// or https://, or, with the session's base_url,
	 * a reference relative to it (RFC 3986). */
	const char *url;
	/* Sent after the session's defaults; a name here replaces the
	 * defaults of that name. */
	const struct ferry_http_header *headers;
	size_t nheaders;
	const void *body;		/* sent with Content-Length */
	size_t body_len;
	uint32_t timeout_ms;		/* total deadline; 0 = none */
	uint64_t max_body;		/* 0 = the session's; see
					   FERRY_SESSION_MAX_BODY */
	enum ferry_http_follow follow_redirects;
	unsigned max_redirects;		/* 0 = the client's */
	/* false: the whole body is read into memory before the response is
	 * done. true: the response is done when its head arrives, and the
	 * body is read with ferry_response_stream(), with backpressure: a
	 * slow reader makes the connection stop reading. Chunks are the
	 * receive buffers themselves, lent, except bytes the kernel had
	 * already delivered when the reader fell behind (copied once, at
	 * most stream_capacity chunks of them) and TLS records (decrypted
	 * into blocks of their own). Free streaming responses before closing
	 * the runner from the same thread (see ferry_runner_close). */
	bool stream;
	/* Chunks queued at most (a power of two, 2..4096); 0 = half the
	 * client's receive ring (recv_buf_count / 2: 128 by default), at
	 * least 16. A full queue pauses the connection, which resumes once
	 * the reader has drained it to half (ferry_stream_stats counts
	 * both). A stalled reader holds up to this many receive buffers. */
	unsigned stream_capacity;
	/* Send @headers exactly as given, in order, adding no Host,
	 * User-Agent or empty-POST Content-Length: see raw_headers in
	 * struct ferry_http_request_opts (ferry/http.h). The session's
	 * default headers are still merged in (before @headers). */
	bool raw_headers;
	/* [NULL: the session's client option] send this request to a Unix
	 * stream socket (abstract with unix_socket_abstract): see
	 * unix_socket in struct ferry_http_client_opts (ferry/http.h). */
	const char *unix_socket;
	bool unix_socket_abstract;
	/* [NULL] the retry policy (ferry/http.h, struct ferry_http_retry):
	 * NULL = the session's (opts.retry at create); copied by submit.
	 * Retried failures and responses are not seen: the response is the
	 * last attempt's, and ferry_response_attempts() says how many. */
	const struct ferry_http_retry *retry;
	/* 0 = the session's client options; FERRY_HTTP_NO_TIMEOUT: none.
	 * connect: per address tried and for the TLS handshake, of the
	 * connection opened for this request (FERRY_ECONNECT_TIMEOUT; a
	 * pooled connection does not connect). read: the longest wait for a
	 * byte sent or received (FERRY_EREAD_TIMEOUT). */
	uint32_t connect_timeout_ms;
	uint32_t read_timeout_ms;
	/*
	 * A body pulled as it is sent, instead of @body (at most one of
	 * @body, @body_read and @body_fd): see ferry/body.h for the details.
	 *
	 * @body_read(@body_read_ctx, buf, cap) writes up to cap bytes and
	 * returns how many, 0 at the end, or a negative code to fail the
	 * request with it (as libcurl's READFUNCTION). It runs on a worker
	 * thread of the runner's offload pool (never on the caller's thread
	 * nor the loop's), one call at a time, and may block; the pool is
	 * small (ferry_runner_opts.loop.offload_threads, 2 by default) and
	 * also resolves names, so many producers that block for long want a
	 * larger one. A call in progress is never interrupted: the runner's
	 * close waits for it to return.
	 *
	 * With @body_from_fd, the body is read from @body_fd (a file, a pipe,
	 * a socket; from its current position) with ring reads, never
	 * blocking the loop. The fd stays the caller's.
	 *
	 * @body_size: the exact length, sent as Content-Length (a source
	 * that ends sooner fails the request with FERRY_EINVAL; only that
	 * much of a longer one is read), or 0: unknown, read to the end and
	 * sent chunked. @body_chunk: bytes per read (two buffers of it), 0 =
	 * FERRY_BODY_CHUNK (64 KiB).
	 *
	 * An error of the source (a read error, a producer's negative
	 * return) fails the request with that code, and the detail names
	 * the source ("request body: read from fd 7: EIO", "request body:
	 * the producer returned EACCES"). Such a body is not replayed: no
	 * retry, and a 307/308 ends the request with the redirect response.
	 */
	ferry_body_read_fn body_read;
	void *body_read_ctx;
	bool body_from_fd;
	int body_fd;
	uint64_t body_size;
	size_t body_chunk;
	/* [DEFAULT: the session's decode_content] ask for gzip/deflate and
	 * decode the body as it arrives, whole or streamed (decoded chunks
	 * are blocks of their own, not the receive buffers): see
	 * decode_content in struct ferry_http_client_opts. max_body counts
	 * decoded bytes too; the session's whole-body limit applies to the
	 * decoded body. */
	enum ferry_http_decode decode_content;
};

/*
 * ferry_session_submit - start a request and return at once.
 *
 * *@rp receives the response object (owned by the caller, freed with
 * ferry_response_free) even when this returns an error, so that
 * ferry_response_detail() can say why; it is NULL only for -ENOMEM, and
 * when @rp itself is NULL (FERRY_EINVAL). A bad URL is refused here,
 * before any I/O (FERRY_EURL); so are a NULL @s, @rq or URL, headers or
 * a body announced but NULL (FERRY_EINVAL).
 * Returns 0 or a negative code; then wait with ferry_response_wait (or a
 * set of them with ferry_task_wait_all/any on ferry_response_task).
 */
int ferry_session_submit(struct ferry_session *s, const struct ferry_request *rq,
			 struct ferry_response **rp);

/*
 * ferry_session_request - submit and wait. Returns the HTTP status
 * (>= 100) or a negative code; *@rp as for submit.
 */
int ferry_session_request(struct ferry_session *s,
			  const struct ferry_request *rq,
			  struct ferry_response **rp);

/* ferry_session_get - GET @url (resolved against the session's base URL,
 * if any), whole body. As ferry_session_request. */
int ferry_session_get(struct ferry_session *s, const char *url,
		      struct ferry_response **rp);

/*
 * ferry_response_wait - wait for @r (timeout as ferry_task_wait).
 * Returns the HTTP status, a negative error, or FERRY_ETIMEDOUT (still
 * running; wait again or free); FERRY_EINVAL for NULL.
 */
int ferry_response_wait(struct ferry_response *r, int64_t timeout_ns);

/* ferry_response_task - @r's task, for ferry_task_wait_all/any; NULL for
 * NULL. */
struct ferry_task *ferry_response_task(struct ferry_response *r);

/*
 * Accessors: valid once the response is done (wait returned a result),
 * until ferry_response_free. Strings are NUL-terminated. NULL as in the
 * rule at the top.
 */
/* The HTTP status, 0 if no response came (FERRY_EINVAL for NULL). */
int ferry_response_status(const struct ferry_response *r);
const char *ferry_response_reason(const struct ferry_response *r);
/* HTTP minor version of the response: 1 (HTTP/1.1), 0 (HTTP/1.0), or -1
 * when no head arrived. */
int ferry_response_http_minor(const struct ferry_response *r);
/*
 * A sentence about the error, "" on success. In stream mode the response
 * succeeds at its head; an error that ends the body later (the one
 * ferry_stream_next returned) is described here too (as by
 * ferry_stream_why). Thread: any, once the response is done.
 */
const char *ferry_response_detail(const struct ferry_response *r);
size_t ferry_response_header_count(const struct ferry_response *r);
bool ferry_response_header_at(const struct ferry_response *r, size_t i,
			      struct ferry_http_header *out);
/* First field named @name (case-insensitive), or NULL; @len may be NULL. */
const char *ferry_response_header(const struct ferry_response *r,
				  const char *name, size_t *len);
/*
 * The whole body, in whole-body mode: never NULL, and always followed by
 * a NUL byte (not counted in *@len), so a text body reads as a C string;
 * an empty (or failed) body is "" with *@len 0. Stream mode: NULL with
 * *@len 0. @len may be NULL. (const char *, not const void *, so that C++
 * takes it as text without a cast; binary bodies are bytes all the same.)
 * With decode_content, the decoded body.
 */
const char *ferry_response_body(const struct ferry_response *r, size_t *len);
/*
 * The URL of the response, formatted and whole (up to FERRY_URL_MAX):
 * the final one after redirects. Until a response head has come (so
 * after a failure before it) the URL as requested, byte for byte (with a
 * base URL: the reference resolved against it, formatted, or the
 * reference as given when it could not be resolved).
 */
const char *ferry_response_url(const struct ferry_response *r);
/*
 * ferry_response_timings - where the request's time went, as
 * ferry_http_request_timings (ferry/http.h) reports it: taken when the
 * head arrived and again when the request ended (whole-body mode, or an
 * error before the head). Zeroes for events that did not happen.
 */
void ferry_response_timings(const struct ferry_response *r,
			    struct ferry_http_timings *t);
/*
 * ferry_response_attempts - how many times the request was tried: 1, plus
 * one per retry of its retry policy; 0 when it never started (or NULL).
 * Taken when the head arrived and again when the request ended.
 */
unsigned ferry_response_attempts(const struct ferry_response *r);
/*
 * ferry_response_body_received - the body's bytes as they came off the
 * wire: chunked framing removed, before content decoding (with
 * decode_content, the encoded bytes: curl's size_download, where the
 * decoded body is longer). Final once the body has ended: when a whole-
 * body response is done, or once ferry_stream_next() has returned the
 * stream's end (0 or an error); 0 before. 0 for NULL.
 */
uint64_t ferry_response_body_received(const struct ferry_response *r);
/*
 * ferry_response_proxy - the proxy the request went through (forward or
 * CONNECT tunnel): its host, as in the proxy URL (an IPv6 address without
 * brackets), and its port in *@port (if not NULL); NULL when it went
 * direct, or for NULL. Known from the head on, or once a request that
 * failed is done (for "Failed to connect to <proxy> port <n>"). The
 * string is the response's: valid until ferry_response_free().
 */
const char *ferry_response_proxy(const struct ferry_response *r,
				 unsigned *port);

/*
 * The body stream (stream mode; NULL otherwise): iterate it with
 * ferry_stream_next or ferry_lines_*. The stream belongs to the response:
 * do not close it; ferry_response_free does.
 */
struct ferry_stream *ferry_response_stream(const struct ferry_response *r);

/*
 * ferry_response_free - cancel @r if still running, wait until the loop is
 * done with it, close its stream, free it. NULL is a no-op. A response
 * still running cannot be freed on the runner's loop thread (that would
 * wait for the loop itself): submit from the loop only what another
 * thread waits for and frees. Free every streamed response before its
 * runner is destroyed: ferry_runner_destroy cannot wait for a stream
 * nobody will close, and reports it (aborting in debug builds).
 */
void ferry_response_free(struct ferry_response *r);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_SESSION_H */
