/*
 * h1.h - HTTP/1.1 message framing without I/O (internal, not installed).
 *
 * Three pieces the connection state machine builds on:
 *   - a growable byte buffer (struct ferry__h1_buf);
 *   - the request head writer and chunked-body framing (h1_request.c);
 *   - an incremental response parser over llhttp (h1_response.c).
 * None of them does I/O, takes locks or keeps global state; each object
 * belongs to one connection and is used on that connection's loop thread.
 *
 * Errors are negative codes from ferry/error.h. Functions that can fail for
 * a reason worth telling the user take a why-buffer, or keep the reason in
 * their object, and say so.
 */
#ifndef FERRY_HTTP_H1_H
#define FERRY_HTTP_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "ferry/error.h"
#include "ferry/url.h"

/* Room for any why-string these functions write. */
#define FERRY__H1_WHY_MAX 160

/*
 * struct ferry__h1_buf - a growable byte buffer with one owner.
 *
 * Zero-initialise it; functions append at len and grow data with realloc
 * (so pointers into data are invalidated by appends). Reuse it by setting
 * len to 0; free it with ferry__h1_buf_free().
 */
struct ferry__h1_buf {
	char *data;
	size_t len;
	size_t cap;
};

/* Make room for more bytes after len. Returns 0 or -ENOMEM. */
int ferry__h1_buf_reserve(struct ferry__h1_buf *b, size_t more);

/* Append n bytes. Returns 0 or -ENOMEM (b unchanged). */
int ferry__h1_buf_append(struct ferry__h1_buf *b, const void *p, size_t n);

/* Release the memory and zero the struct. */
void ferry__h1_buf_free(struct ferry__h1_buf *b);

/*
 * struct ferry__h1_header - one header field, by pointer and length (not
 * NUL-terminated unless said so). Requests use it to pass headers in;
 * responses use it to hand headers out.
 */
struct ferry__h1_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* A header from two string literals. */
#define FERRY__H1_HEADER(n, v) { (n), sizeof(n) - 1, (v), sizeof(v) - 1 }

/* True when s[0..len) is a non-empty RFC 9110 token (method, field name). */
bool ferry__h1_is_token(const char *s, size_t len);
/* How many bytes at the start of s are tchars (0..len). */
size_t ferry__h1_token_len(const char *s, size_t len);

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

/* body_len value for a body of unknown length, sent chunked. */
#define FERRY__H1_BODY_CHUNKED (-1)

/*
 * struct ferry__h1_req - what the head writer needs; nothing is copied or
 * kept after the call.
 *
 * method    NUL-terminated token ("GET", "POST", any RFC 9110 token);
 *           CONNECT is refused (ferry does not tunnel).
 * url       gives the request-target and the Host header.
 * headers   caller fields, sent in order after Host and User-Agent:
 *             - Host: replaces the one from the URL (at most one);
 *             - User-Agent: replaces the default "ferry/0.1";
 *             - Connection: sent as given; a "close" token in it makes the
 *               writer return FERRY__H1_REQ_CLOSE (do not pool afterwards);
 *             - Content-Length, Transfer-Encoding: refused, because body
 *               framing is ferry's and must match what it sends.
 *           Names must be tokens; values must not hold CR, LF or NUL (they
 *           would let a value inject headers or cut the head), nor any
 *           other control byte but HTAB (RFC 9110 5.5).
 * body_len  >= 0: the body's exact length, sent as Content-Length (when
 *           > 0, and as "Content-Length: 0" for POST, PUT and PATCH, whose
 *           servers may otherwise wait for a body or answer 411);
 *           FERRY__H1_BODY_CHUNKED: "Transfer-Encoding: chunked", and the
 *           body must be framed with the chunk helpers below.
 * raw       the headers are the whole head, in order: no Host, User-Agent
 *           or "Content-Length: 0" of the writer's (a Host among them is
 *           written where it stands); a Content-Length among them is
 *           allowed when it states body_len exactly, else the writer
 *           appends one for a body > 0 bytes as usual.
 */
struct ferry__h1_req {
	const char *method;
	const struct ferry_url *url;
	const struct ferry__h1_header *headers;
	size_t nheaders;
	int64_t body_len;
	bool raw;
	/* Through a forward proxy: the request-target in absolute form
	 * ("http://host:port/path"); and when not NULL, a Proxy-Authorization
	 * value, sent right after Host (curl's order). */
	bool absolute_form;
	const char *proxy_auth;
};

/* Returned (positive) by ferry__h1_req_write: the request asked to close. */
#define FERRY__H1_REQ_CLOSE 1

/* The User-Agent sent when the caller gives none. */
#define FERRY__H1_USER_AGENT "ferry/0.1"

/*
 * ferry__h1_req_write - append the request head (request line, headers,
 * empty line) to out.
 *
 * The head is validated whole before anything is written, and out grows at
 * most once. Returns 0 or FERRY__H1_REQ_CLOSE on success; on failure out is
 * unchanged and the result is FERRY_EINVAL (why says which argument, e.g.
 * "header value contains CR, LF or NUL"), or -ENOMEM.
 */
int ferry__h1_req_write(struct ferry__h1_buf *out,
			const struct ferry__h1_req *req,
			char *why, size_t whylen);

/*
 * Chunked body framing (RFC 9112 section 7.1). A chunk on the wire is
 * head + data + FERRY__H1_CHUNK_TAIL; the body ends with
 * FERRY__H1_CHUNK_LAST (no trailers). For zero-copy writes, put the head,
 * the caller's data and the tail in one writev; to copy instead use
 * ferry__h1_chunk_append.
 */
#define FERRY__H1_CHUNK_HEAD_MAX 19	/* 16 hex digits, CRLF, NUL */
#define FERRY__H1_CHUNK_TAIL "\r\n"
#define FERRY__H1_CHUNK_LAST "0\r\n\r\n"

/*
 * ferry__h1_chunk_head - write the size line for an n-byte chunk ("1a\r\n")
 * into buf, NUL-terminated; returns its length. n must be > 0, since a
 * zero-size chunk ends the body: for n == 0 nothing is written and 0 is
 * returned (skip empty slices).
 */
size_t ferry__h1_chunk_head(char buf[FERRY__H1_CHUNK_HEAD_MAX], uint64_t n);

/* Append one whole chunk; n == 0 appends nothing. Returns 0 or -ENOMEM. */
int ferry__h1_chunk_append(struct ferry__h1_buf *out, const void *data,
			   size_t n);

/* Append the last-chunk and the empty trailer section. 0 or -ENOMEM. */
int ferry__h1_chunk_end(struct ferry__h1_buf *out);

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

#define FERRY__H1_MAX_HEAD_DEFAULT (64 * 1024)
#define FERRY__H1_MAX_FIELDS_DEFAULT 256
#define FERRY__H1_MAX_INTERIM_DEFAULT 5

/*
 * struct ferry__h1_limits - response limits; exceeding one is
 * FERRY_ETOOLARGE, never truncation. Zero in a field means its default.
 *
 * max_head    bytes of a response head, status line to the empty line
 *             inclusive (a head of exactly max_head bytes is accepted);
 *             also bounds the trailer section of a chunked body.
 *             Default 64 KiB.
 * max_fields  header fields in one head. Default 256.
 * max_body    body bytes after de-chunking. Default: no limit. A
 *             Content-Length above it fails as soon as the head is read;
 *             a longer chunked or close-delimited body is handed out up
 *             to the limit exactly, then fails (however it was split).
 * max_interim interim (1xx) responses before the final one. Default 5.
 *             Their bytes count against max_head too: the head limit
 *             bounds everything read before the final head ends.
 */
struct ferry__h1_limits {
	size_t max_head;
	size_t max_fields;
	uint64_t max_body;
	size_t max_interim;
};

/* What ferry__h1_resp_feed found; see there. */
enum ferry__h1_event {
	FERRY__H1_NEED_MORE = 0,
	FERRY__H1_HEAD = 1,
	FERRY__H1_BODY = 2,
	FERRY__H1_DONE = 3,
};

/* A body slice: points into the bytes given to feed, not copied. */
struct ferry__h1_slice {
	const char *data;
	size_t len;
};

/* One stored header: offsets into the response's arena. */
struct ferry__h1_field {
	uint32_t name_off, name_len;
	uint32_t value_off, value_len;
};

enum ferry__h1_resp_state {
	FERRY__H1_RESP_HEAD,	/* reading a head (interim ones included) */
	FERRY__H1_RESP_BODY,	/* final head read, body (if any) follows */
	FERRY__H1_RESP_DONE,	/* message complete */
	FERRY__H1_RESP_ERROR,	/* sticky: see err and why */
};

/*
 * struct ferry__h1_resp - an incremental HTTP/1.1 response parser.
 *
 * Embed it in the connection; all fields are private. Memory: the struct
 * (about 0.5 KiB) plus one arena holding the head as received (the
 * status reason, names and values NUL-terminated in place), at most
 * max_head bytes, and one array of max_fields entries at most; both are
 * kept across responses on the same connection and freed by
 * ferry__h1_resp_free().
 *
 * Strict (llhttp with every leniency off, RFC 9112, plus ferry's own checks
 * of line endings, which llhttp 8.1 built without LLHTTP_STRICT_MODE skips:
 * every CR in a head, chunk line or trailer must be followed by LF, and
 * chunk data by CRLF): Content-Length with
 * Transfer-Encoding, more than one Content-Length (even with equal
 * values), a bad Content-Length or chunk size, malformed lines and a
 * HTTP version other than 1.x are FERRY_EPROTO; 101 Switching Protocols is
 * FERRY_EPROTO too (ferry never asks for an upgrade). Interim 1xx
 * responses are read and dropped. Trailers are read and dropped.
 */
struct ferry__h1_resp {
	llhttp_t ferry__parser;
	struct ferry__h1_limits ferry__lim;
	enum ferry__h1_resp_state ferry__state;
	int ferry__err;
	bool ferry__head_req;	/* answering HEAD: no body whatever it says */
	bool ferry__interim;	/* the head being read is a 1xx */
	bool ferry__keep_alive;
	bool ferry__no_reuse;	/* HTTP/1.0 with Transfer-Encoding: close */
	bool ferry__reason_seen;	/* on_status gave the reason's start */
	uint8_t ferry__ev;	/* event raised by a callback, see .c */
	bool ferry__prev_cr;	/* last framing byte was CR */
	uint8_t ferry__need_crlf;	/* CRLF bytes still due after chunk data */
	bool ferry__in_chunk;	/* chunk data is being delivered */
	uint64_t ferry__chunk_left;	/* of the current chunk's data */
	uint16_t ferry__status;
	size_t ferry__head_bytes;	/* of the heads read, 1xx included */
	size_t ferry__interims;		/* 1xx heads read */
	size_t ferry__trailer_bytes;
	uint64_t ferry__received;	/* bytes consumed for this response */
	uint64_t ferry__body_bytes;
	struct ferry__h1_slice ferry__slice;	/* body slice being handed out */
	char *ferry__arena;
	size_t ferry__arena_len, ferry__arena_cap;
	uint32_t ferry__reason_off, ferry__reason_len;
	struct ferry__h1_field *ferry__fields;
	size_t ferry__nfields, ferry__fields_cap;
	size_t ferry__run_base;		/* arena bytes before run_data */
	const char *ferry__run_data;	/* the bytes llhttp runs over */
	char ferry__why[FERRY__H1_WHY_MAX];
};

/*
 * ferry__h1_resp_init - set up a parser, ready for the response to a GET.
 * lim may be NULL (all defaults). Allocates nothing; cannot fail.
 */
void ferry__h1_resp_init(struct ferry__h1_resp *r,
			 const struct ferry__h1_limits *lim);

/* Free the parser's memory. The struct may be initialised again. */
void ferry__h1_resp_free(struct ferry__h1_resp *r);

/*
 * ferry__h1_resp_start - prepare for the response to a request with this
 * method (NUL-terminated; only "HEAD" changes anything: its response has
 * no body). Clears the previous response, its headers and any error, and
 * keeps the memory for reuse. Call before each response on a connection.
 */
void ferry__h1_resp_start(struct ferry__h1_resp *r, const char *method);

/*
 * ferry__h1_resp_feed - parse the next bytes of the response.
 *
 * Bytes may be split anywhere (down to one byte per call). One call
 * reports at most one event; *used is set to how many bytes were consumed.
 * Call again with the bytes left - even when none are left - until it
 * returns FERRY__H1_NEED_MORE, FERRY__H1_DONE or an error: a response
 * without a body completes right after its head without another byte.
 * Returns:
 *
 *   FERRY__H1_NEED_MORE  all len bytes consumed; the response goes on.
 *   FERRY__H1_HEAD       the final head is complete: status, reason,
 *                        headers and keep-alive are readable now. Reported
 *                        once; interim 1xx heads are never reported.
 *   FERRY__H1_BODY       *body is the next slice of body (de-chunked),
 *                        pointing into data: valid while data is.
 *   FERRY__H1_DONE       the response is complete. *used may be < len:
 *                        the rest was not part of this response. ferry
 *                        never pipelines, so such bytes mean the server
 *                        misbehaved; the connection must not be reused
 *                        (treat them as FERRY_EPROTO). Feeding more bytes
 *                        in this state returns FERRY_EPROTO.
 *   negative             FERRY_EPROTO (malformed or unsupported
 *                        response), FERRY_ETOOLARGE (a limit in
 *                        struct ferry__h1_limits), -ENOMEM. The error is
 *                        sticky until ferry__h1_resp_start; the reason is
 *                        in ferry__h1_resp_why(). The connection must be
 *                        closed.
 *
 * body may be NULL only if the caller knows no body can come (HEAD).
 */
int ferry__h1_resp_feed(struct ferry__h1_resp *r, const char *data,
			size_t len, size_t *used,
			struct ferry__h1_slice *body);

/*
 * ferry__h1_resp_finish - the peer closed its side (EOF). Ends a body
 * delimited by the connection's close: returns FERRY__H1_DONE then. Also
 * returns FERRY__H1_DONE if the response was already complete. Otherwise
 * the response was cut short: FERRY_EPROTO, with why "connection closed
 * before any response byte" (ferry__h1_resp_idle() is true: the request
 * may be retried), "...in the response head" or "...before the end of the
 * body". Sticky like feed's errors.
 */
int ferry__h1_resp_finish(struct ferry__h1_resp *r);

/* True until the first byte of this response has been consumed. */
bool ferry__h1_resp_idle(const struct ferry__h1_resp *r);

/*
 * ferry__h1_resp_body_left - the bytes of body still due, when the body
 * is framed by Content-Length and being read (after the HEAD event, no
 * error); 0 otherwise (no body, chunked, to the close, complete). Exactly
 * that many bytes may be read for this response and no more.
 */
uint64_t ferry__h1_resp_body_left(const struct ferry__h1_resp *r);

/* The reason for the last error ("" if none). Valid until the next start. */
const char *ferry__h1_resp_why(const struct ferry__h1_resp *r);

/*
 * The accessors below are valid from FERRY__H1_HEAD until the next start:
 * strings point into the arena and are NUL-terminated.
 */

/* Status code, 100..999 (0 before the head). */
int ferry__h1_resp_status(const struct ferry__h1_resp *r);

/* Reason phrase ("OK"; may be empty). len may be NULL. */
const char *ferry__h1_resp_reason(const struct ferry__h1_resp *r,
				  size_t *len);

/* HTTP minor version of the response: 1 for HTTP/1.1, 0 for HTTP/1.0. */
int ferry__h1_resp_minor(const struct ferry__h1_resp *r);

/*
 * True when the connection may carry another request after this response
 * (llhttp_should_keep_alive: HTTP/1.1 without "Connection: close", or
 * HTTP/1.0 with "Connection: keep-alive", and a body not delimited by
 * close). Never after an HTTP/1.0 response with Transfer-Encoding (RFC
 * 9112 6.1: its framing is suspect, close after it). Final only at
 * FERRY__H1_DONE; at HEAD it is the forecast.
 */
bool ferry__h1_resp_keep_alive(const struct ferry__h1_resp *r);

/* Number of header fields, in arrival order, repeats included. */
size_t ferry__h1_resp_header_count(const struct ferry__h1_resp *r);

/* Field i (0-based). Returns false if i is out of range. */
bool ferry__h1_resp_header_at(const struct ferry__h1_resp *r, size_t i,
			      struct ferry__h1_header *out);

/*
 * ferry__h1_resp_header_find - the value of the first field named name
 * (case-insensitive, NUL-terminated) at index >= *pos, or NULL. On a hit,
 * *pos is set past it, so a loop starting at *pos = 0 visits every repeat
 * in order. value_len may be NULL. Values have surrounding spaces and tabs
 * removed; repeats are not joined.
 */
const char *ferry__h1_resp_header_find(const struct ferry__h1_resp *r,
				       const char *name, size_t *pos,
				       size_t *value_len);

/* The first field named name, or NULL. value_len may be NULL. */
const char *ferry__h1_resp_header(const struct ferry__h1_resp *r,
				  const char *name, size_t *value_len);

#endif /* FERRY_HTTP_H1_H */
