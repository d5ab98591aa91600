/*
 * http/internal.h - what the client's modules share (not installed).
 *
 * Modules, each calling only those below it (callbacks go up):
 *
 *   client.c    the public client: options, stats, close
 *     request.c the public request: start, head/body to the caller,
 *               redirects, retries, on_done; the connection's owner
 *               (struct ferry__conn_owner)
 *     pool.c    origins and the dispatch rule
 *     conn.c    HTTP/1.1 over a transport
 *     route.c   which transports carry an origin's connections
 *               (direct, proxy, Unix socket)
 *     sock.c, tls_transport.c, tunnel.c   the transports (transport.h)
 *     dns.c     the client's name cache and overrides (dns.h)
 *     happy.c   Happy Eyeballs: sock.c's connect race (dns.h)
 *     retry.c   the retry policy's rules (request.c applies them)
 *     decode.c  gzip/deflate bodies (decode.h; request.c's hooks)
 *     body.c    request bodies from fds and producers (ferry/body.h)
 *     tls.c     the BearSSL engine (tls.h), I/O-free
 *     tls_ghash.c, tls_aesctr.c  faster GHASH and AES-CTR for its GCM
 *               records (PCLMULQDQ/VPCLMULQDQ, AES-NI/VAES), per CPU
 *     input.c   receive buffers, spills and their references; the
 *               client's reaping in the close phase
 *
 * Ownership at a glance:
 *   client  owns its origins, its connections (all of them, on c->conns),
 *           its requests (on c->reqs), the buffer ring and the buffer
 *           reference counts;
 *   origin  owns nothing: it lists the idle connections and the requests
 *           waiting for one, and is freed when it has neither and no
 *           connection counts against it;
 *   conn    owns its fd, its ops, its parser and its input queue; it is
 *           freed only from an op completion (or a resolve's done),
 *           never from inside a call that a callback could have made;
 *   request owns its URL, method and header copies, and its detail; it is
 *           freed right after on_done returns.
 */
#ifndef FERRY_HTTP_INTERNAL_H
#define FERRY_HTTP_INTERNAL_H

#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "ferry/http.h"
#include "ferry/list.h"
#include "ferry/loop.h"
#include "ferry/offload.h"
#include "ferry/timer.h"
#include "dns.h"
#include "h1.h"
#include "transport.h"

#define FERRY__MS 1000000ull	/* ns per ms */

/* Request objects a client keeps for reuse (its pool, request.c). */
#define FERRY__REQ_POOL_MAX 64
/* A pooled request keeps its head buffer and its block of copies up to
 * this size each; a block is at least FERRY__REQ_BLOCK_MIN bytes. */
#define FERRY__REQ_POOL_HEAD_MAX 4096
#define FERRY__REQ_BLOCK_MIN 256

/* ASan builds poison what sits in a pool (requests, spills): touching it
 * is still reported as a use after free would be. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define FERRY__POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define FERRY__UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define FERRY__POISON(p, n) ((void)(p), (void)(n))
#define FERRY__UNPOISON(p, n) ((void)(p), (void)(n))
#endif
#define FERRY__REQ_POISON(r) FERRY__POISON((r), sizeof(*(r)))
#define FERRY__REQ_UNPOISON(r) FERRY__UNPOISON((r), sizeof(*(r)))

/* An intrusive doubly linked list; a zeroed node is "not linked". */
struct ferry__conn;
struct ferry__decode;
struct ferry__origin;
struct ferry__tls;
struct ferry__tls_config;

/* ------------------------------------------------------------------ */
/* Routes: how a request's connections are made (route.c)              */

/* A proxy, parsed from an option or the environment. */
struct ferry__proxy {
	enum ferry_url_scheme scheme;	/* HTTPS: TLS to the proxy */
	struct ferry_url url;		/* its host and port */
	char *auth;			/* "Basic ..." or NULL */
	char *name;			/* "host:port", for sentences */
};

enum ferry__route_kind {
	FERRY__ROUTE_DIRECT,
	FERRY__ROUTE_FORWARD,	/* http:// in absolute form to the proxy */
	FERRY__ROUTE_TUNNEL,	/* CONNECT through the proxy */
	FERRY__ROUTE_UNIX,	/* a Unix socket */
};

struct ferry__route {
	enum ferry__route_kind kind;
	const struct ferry__proxy *proxy;	/* the client's */
	const char *unix_path;			/* FERRY__ROUTE_UNIX */
	bool unix_abstract;
};

/* ------------------------------------------------------------------ */
/* Client                                                              */

struct ferry_http_client {
	struct ferry_loop *loop;
	struct ferry_http_client_opts opts;	/* defaults filled in */
	char *user_agent;			/* owned copy */
	char *ca_file, *ca_dir;			/* owned copies */
	struct ferry__proxy *proxy_http, *proxy_https;	/* NULL: direct */
	char *no_proxy;				/* owned copy, or NULL */
	char *unix_path;			/* owned copy, or NULL */
	char *client_cert, *client_key;		/* owned copies */
	struct ferry__tls_config *tls_cfg;	/* at the first https request */
	struct ferry_bufring *br;
	uint16_t *buf_refs;	/* per buffer id: holders (conn + keepers) */
	unsigned bufs_kept;	/* keepers' references, ring and spills */
	struct ferry__link spills;	/* spills with keepers (validated on
					   release: tokens are addresses) */
	struct ferry__spill *spill_pool;	/* free spills of one record */
	unsigned nspill_pool;

	struct ferry__link origins;	/* struct ferry__origin.link */
	struct ferry__link conns;	/* every struct ferry__conn.link */
	struct ferry__link reqs;	/* every live request */
	unsigned nconns;	/* connections counting against limits */
	unsigned nidle;
	unsigned nreqs;
	unsigned nwaiting;
	uint64_t conns_opened;
	uint64_t requests_started;
	uint64_t retries;
	uint64_t policy_retries;	/* by the retry policy (request.c) */
	uint64_t retry_rng;		/* jitter's state (retry.c) */
	struct ferry__dns *dns;		/* names cache, overrides (dns.c) */

	/* Finished request objects kept for the next ones (request.c). */
	struct ferry_http_request *pool[FERRY__REQ_POOL_MAX];
	unsigned npool;

	/* How connections report up (request.c), set at create. */
	const struct ferry__conn_owner *conn_owner;
	struct ferry_closing reap;	/* the free, in the close phase */
	bool reap_queued;

	bool closing;
	bool close_busy;	/* ferry_http_client_close on the stack */
	ferry_http_closed_fn closed_cb;
	void *closed_ctx;
};

/* ------------------------------------------------------------------ */
/* Origins: where the pool and the wait queues live                    */

struct ferry__origin {
	struct ferry__link link;	/* client's origins */
	struct ferry_http_client *client;
	struct ferry__link idle;	/* idle conns, most recent first */
	struct ferry__link waiting;	/* requests, FIFO */
	unsigned nconns;		/* open or opening, not closing */
	bool dispatching;		/* ferry__client_dispatch running */
	/* The route its connections take (unix_path points into key's
	 * block); a forward proxy's origin is the proxy: any http:// URL
	 * through it shares its connections. */
	struct ferry__route route;
	enum ferry_url_scheme scheme;
	uint16_t port;
	size_t host_off, host_len;	/* the host's bytes in key */
	char key[];			/* "scheme://host:port" */
};

/* ------------------------------------------------------------------ */
/* Connections                                                          */

/*
 * The connection's life, top to bottom. Each state names what is in
 * flight; conn_step() in conn.c is the switch that moves between them.
 */
enum ferry__conn_state {
	FERRY__CONN_START,	/* the transport connects (transport.h) */
	FERRY__CONN_SEND,	/* writing the request (head and body) */
	FERRY__CONN_RECV,	/* request sent; reading the response */
	FERRY__CONN_IDLE,	/* in the pool, recv armed to notice EOF */
	FERRY__CONN_CLOSING,	/* transport closing; then freed in the
				   loop's close phase */
};

/* One received buffer not yet fully parsed. */
/*
 * Bytes a paused request's connection received, copied out of the ring so
 * that a reader that does not read holds no ring buffer. Reference
 * counted like a ring buffer (the connection, plus on_body keepers); its
 * token is its address, which never collides with a ring token (1..count).
 */
struct ferry__spill {
	struct ferry__link link;	/* client's kept spills, when kept;
					   link.next: the pool's next */
	unsigned kept;			/* keepers' references */
	unsigned refs;
	size_t len;
	size_t cap;			/* data holds cap + 1 bytes */
	char data[];
};

/*
 * Spills of at most FERRY__SPILL_POOL_CAP bytes (one TLS record's
 * plaintext: every record of a TLS body becomes one) share that size and
 * come back to a free list of the client's, up to FERRY__SPILL_POOL_MAX of
 * them (1 MiB), instead of going back to malloc: a download otherwise
 * makes malloc trim and re-grow its heap, two page faults per record.
 */
#define FERRY__SPILL_POOL_CAP 16384
#define FERRY__SPILL_POOL_MAX 64

/* One received buffer not yet fully parsed: a ring buffer or a spill. */
struct ferry__input {
	struct ferry__spill *spill;	/* NULL: ring buffer bid (or ext) */
	uint16_t bid;
	uint32_t off, len;
	/* Bytes received straight into the request's body buffer
	 * (ferry_http_request_body_into): no reference, no token. */
	char *ext;
};

/*
 * Direct receive (conn.c): a body framed by Content-Length, with at least
 * this much left when the connection would go on reading, is received
 * straight into the buffer the request was given (body_into), one recv
 * op at a time, instead of through the ring and a copy. Below it the
 * switch is not worth it: stopping the multishot recv and arming it again
 * afterwards costs two ops and a turn each way, about what copying 64 KiB
 * costs, and a small body is mostly in the first ring buffers anyway.
 */
#define FERRY__DIRECT_MIN (256u << 10)

/*
 * What a connection reports to its owner (request.c's table): it calls
 * nothing above it directly.
 *   head, body    ferry__req_head/_body's contracts (see request.c)
 *   pull          the request body producer's next piece: its result, or
 *                 FERRY__REQ_FAILED when the request failed meanwhile
 *   complete      the response is whole (cn->req already cleared)
 *   fail          cn failed under req with err and @why; @no_response:
 *                 no response byte came (the retry rule's case)
 *   dispatch      cn went idle in o's pool: o's waiters may take it
 *   slot_freed    cn stopped counting against the limits
 */
struct ferry__conn_owner {
	int (*head)(struct ferry_http_request *req, bool *discard);
	int (*body)(struct ferry_http_request *req, const char *data,
		    size_t len, const struct ferry__input *in);
	int (*pull)(struct ferry_http_request *req, const void **data,
		    size_t *len);
	void (*complete)(struct ferry_http_request *req,
			 struct ferry__conn *cn, bool reuse);
	void (*fail)(struct ferry_http_request *req, struct ferry__conn *cn,
		     int err, const char *why, bool no_response);
	void (*dispatch)(struct ferry_http_client *c, struct ferry__origin *o);
	void (*slot_freed)(struct ferry_http_client *c,
			   struct ferry__origin *o);
};

#define FERRY__REQ_FAILED INT_MIN	/* from pull: the request is gone */

struct ferry__conn {
	struct ferry__link link;	/* client's conns */
	struct ferry__link pool;	/* origin's idle list */
	struct ferry_http_client *client;
	const struct ferry__conn_owner *owner;
	struct ferry__origin *origin;
	struct ferry_http_request *req;	/* the request it serves, if any */
	enum ferry__conn_state state;
	struct ferry__transport *tp;	/* the byte stream (transport.h) */
	bool counted;		/* counts against the limits */
	bool starting;		/* the transport's start is on the stack */
	bool sending;		/* a send is in the transport's hands */
	bool eof;		/* the peer closed */
	bool eof_unverified;	/* ... and the transport cannot vouch for
				   that end (TLS without close_notify) */
	bool reusable;		/* may go back to the pool after DONE */
	bool pumping;		/* ferry__conn_pump on the stack */
	bool body_kick;		/* the producer has data again */
	int rx_err;		/* the input's error, once seen */
	int soon_err;		/* failure to report from the timer */
	char *soon_why;		/* its sentence, or NULL */
	unsigned served;	/* requests completed on it */

	struct ferry_timer timer;	/* read timeout, or idle expiry */
	/* When resolve, connect and TLS ended, and the last byte moved:
	 * shared with the transports, which set them. */
	struct ferry__transport_clock clock;
	uint64_t idle_deadline;		/* ns, in IDLE; 0: no idle timeout */
	struct ferry_closing closing;	/* its free, in the close phase */

	/* Send. */
	struct iovec iov[FERRY__TRANSPORT_IOV];
	unsigned niov;
	char chunk_head[FERRY__H1_CHUNK_HEAD_MAX];
	bool body_wait;			/* producer said BODY_WAIT */
	bool body_end_sent;

	/* Receive. */
	struct ferry__h1_resp parser;
	struct ferry__input *in;	/* queue of received buffers */
	unsigned nin, in_cap;

	/* Direct receive into the request's body buffer (FERRY__DIRECT_MIN). */
	bool direct;		/* this response is read that way */
	bool direct_busy;	/* a recv into the buffer is in flight */
	bool direct_wait;	/* waiting for the multishot recv to stop */
	/* A body buffer whose request ended while a recv into it was in
	 * flight: the connection owns it now, and releases it when it is
	 * freed (the transport reports closed() only after every op's
	 * completion). */
	void *orphan;
	void (*orphan_release)(void *buf);
};

/* ------------------------------------------------------------------ */
/* Requests                                                             */

enum ferry__req_state {
	FERRY__REQ_WAITING,	/* on an origin's queue */
	FERRY__REQ_ACTIVE,	/* bound to a connection */
	FERRY__REQ_DONE,	/* on_done is running */
	FERRY__REQ_BACKOFF,	/* waiting to retry (retry_timer) */
};

/* How the request body is sent. */
enum ferry__body_kind {
	FERRY__BODY_NONE,
	FERRY__BODY_BUFFER,
	FERRY__BODY_PRODUCER,
};

struct ferry_http_request {
	struct ferry__link link;	/* client's reqs */
	struct ferry__link wait;	/* origin's waiting queue */
	struct ferry_http_client *client;
	struct ferry__origin *origin;	/* while waiting */
	struct ferry__conn *conn;	/* while active */
	enum ferry__req_state state;
	const struct ferry_http_callbacks *cb;
	void *ctx;

	const char *method;		/* in block, or a literal */
	bool raw_headers;		/* send headers exactly as given */
	struct ferry_url url;		/* owned */
	struct ferry__route route;	/* how it goes (route.c) */
	char *unix_path;		/* owned; the request's own socket */
	bool unix_abstract;
	struct ferry__h1_header *headers;	/* in block */
	size_t nheaders;

	enum ferry__body_kind body_kind;
	const void *body;
	size_t body_len;
	ferry_http_body_fn body_fn;
	int64_t body_fn_len;
	uint64_t body_fn_sent;
	bool body_fn_started;	/* the producer was called: no replay */

	uint32_t read_timeout_ms;
	uint32_t connect_timeout_ms;	/* 0: the client's */
	void *body_ctx;			/* body_fn's ctx */
	uint32_t timeout_ms;
	uint64_t max_body;
	bool follow;
	unsigned max_redirects;
	unsigned redirects;
	struct ferry_timer deadline;	/* total timeout */
	struct ferry_http_retry retry;	/* policy, defaults filled */
	unsigned attempts;		/* 1 + the policy's retries */
	bool retrying;			/* dropping a retryable response */
	uint64_t retry_delay_ns;	/* the wait it asked for */
	struct ferry_timer retry_timer;	/* end of the backoff */

	/* The copies of the caller's headers, method and URL (url's
	 * strings while it is the first one), kept with a pooled object. */
	char *block;
	size_t block_cap;

	/* The attempt on the current connection. */
	struct ferry__h1_buf out;	/* request head */
	size_t out_sent;		/* bytes of head + body sent */
	bool reused;			/* conn served earlier requests */
	bool retried;			/* the one retry was used */
	bool fresh_conn;		/* must not take an idle conn */
	bool head_seen;			/* on_head called */
	bool redirecting;		/* discarding a redirect's body */
	bool wants_close;		/* caller sent Connection: close */
	struct ferry_url next_url;	/* redirect target, while redirecting */
	bool paused;
	bool in_cb;			/* inside one of its callbacks */
	int pending_err;		/* set by cancel inside a callback */
	uint64_t body_received;		/* encoded, as on the wire */
	bool decode_on;			/* decodes gzip/deflate (decode.h) */
	/* The caller's body buffer (ferry_http_request_body_into): byte k of
	 * the body after into_base received bytes goes to into_buf[k]. The
	 * request owns it until on_done; released there when it failed. */
	char *into_buf;
	size_t into_cap;
	uint64_t into_base;
	void (*into_release)(void *buf);
	struct ferry__decode *decode;	/* this response's decoder, or NULL */
	int status;
	int redirect_status;
	/* Timings (ns, CLOCK_MONOTONIC; 0: not yet): start, then the current
	 * attempt's connection events and its first response byte. */
	uint64_t t_start, t_resolved, t_connected, t_tls_done, t_first;

	char detail[FERRY_HTTP_DETAIL_MAX];
};

/* input.c: receive buffers, spills and their references */
void ferry__buf_unref(struct ferry_http_client *c, unsigned bid);
void ferry__buf_keep(struct ferry_http_client *c, unsigned bid);
void ferry__spill_unref(struct ferry_http_client *c, struct ferry__spill *sp);
void ferry__spill_keep(struct ferry_http_client *c, struct ferry__spill *sp);
/* @in becomes a new spill holding a copy of @data (one reference).
 * 0 or -ENOMEM. */
int ferry__input_copy(struct ferry_http_client *c, struct ferry__input *in,
		      const void *data, size_t len);
/* Free the client's free list of spills (at the client's free). */
void ferry__spill_pool_free(struct ferry_http_client *c);
const char *ferry__input_data(const struct ferry_http_client *c,
			      const struct ferry__input *in);
void ferry__input_unref(struct ferry_http_client *c,
			const struct ferry__input *in);
/* A closing client whose last reference may be gone: check, and free it,
 * in the loop's close phase (client.c's reap). */
void ferry__client_reap_later(struct ferry_http_client *c);

/* url.c: a copy of @src whose strings live in @mem, of
 * ferry__url_copy_size(src) bytes (the caller's: ferry_url_free leaves
 * it alone). */
size_t ferry__url_copy_size(const struct ferry_url *src);
void ferry__url_copy_into(struct ferry_url *dst, const struct ferry_url *src,
			  char *mem);

/* pool.c: origins and the dispatch rule */
struct ferry__origin *ferry__origin_get(struct ferry_http_client *c,
					const struct ferry_url *u,
					const struct ferry__route *r);
void ferry__origin_put(struct ferry__origin *o);
void ferry__client_dispatch(struct ferry_http_client *c,
			    struct ferry__origin *o);
void ferry__client_slot_freed(struct ferry_http_client *c,
			      struct ferry__origin *o);

/* route.c: the transport chain for a new connection to o */
int ferry__route_connect(struct ferry_http_client *c, struct ferry__origin *o,
			 const struct ferry_url *u,
			 struct ferry__transport_clock *clock,
			 struct ferry__transport **tp);
int ferry__client_tls(struct ferry_http_client *c, char *why, size_t whylen);
int ferry__client_proxies(struct ferry_http_client *c, char *why,
			  size_t whylen);
int ferry__proxy_parse(const char *s, const char *from,
		       struct ferry__proxy **pp, char *why, size_t whylen);
void ferry__proxy_free(struct ferry__proxy *p);
bool ferry__noproxy_match(const char *list, const struct ferry_url *u);
bool ferry__route_needs_tls(const struct ferry_http_client *c,
			    const struct ferry_url *u);
void ferry__route_pick(const struct ferry_http_client *c,
		       const struct ferry_url *u, const char *unix_path,
		       bool unix_abstract, struct ferry__route *r);
/* A spill holding a copy of data[0..len) (refs 1), or NULL. Loop thread. */
struct ferry__spill *ferry__spill_new(struct ferry_http_client *c,
				      const void *data, size_t len);

/* conn.c */
struct ferry__conn *ferry__conn_new(struct ferry__origin *o,
				    struct ferry_http_request *req);
void ferry__conn_assign(struct ferry__conn *cn, struct ferry_http_request *req);
void ferry__conn_close(struct ferry__conn *cn);
void ferry__conn_close_quiet(struct ferry__conn *cn);
void ferry__conn_detach(struct ferry__conn *cn, bool reuse);
void ferry__conn_pause(struct ferry__conn *cn);
void ferry__conn_resume(struct ferry__conn *cn);
void ferry__conn_body_ready(struct ferry__conn *cn);
void ferry__conn_note_times(struct ferry__conn *cn,
			    struct ferry_http_request *req);
/* req leaves cn: a recv into req's body buffer still in flight makes the
 * buffer cn's (req->into_buf cleared), released when cn is freed. */
void ferry__conn_adopt_body(struct ferry__conn *cn,
			    struct ferry_http_request *req);

/* retry.c */
void ferry__retry_fill(struct ferry_http_retry *out,
		       const struct ferry_http_retry *in);
bool ferry__retry_status(const struct ferry_http_retry *p, int status);
bool ferry__retry_error(const struct ferry_http_retry *p, int err,
			bool connecting);
uint64_t ferry__retry_backoff_ns(const struct ferry_http_retry *p, unsigned n,
				 uint64_t *rng);
int64_t ferry__retry_after_ms(const char *v);

/* request.c */
extern const struct ferry__conn_owner ferry__req_conn_owner;
void ferry__req_fail(struct ferry_http_request *req, int err,
		     const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void ferry__client_pool_free(struct ferry_http_client *c);
/* From the owner's head/body: stop reading this response (a redirect's
 * body too long to drain), close the connection, complete the request. */
#define FERRY__REQ_ABANDON 1
/* Hand @len bytes at @data (inside @in's buffer) to on_body, which may
 * keep the buffer. 0, or < 0 when req failed. (decode.c uses it.) */
int ferry__req_deliver(struct ferry_http_request *req, const char *data,
		       size_t len, const struct ferry__input *in);

#endif /* FERRY_HTTP_INTERNAL_H */
