/*
 * test_client_util.h - shared by the test_client*.c suites: a loop with an
 * HTTP client, requests that record what happened to them, and a small
 * in-process HTTP server (a thread with blocking sockets on 127.0.0.1)
 * for what nginx and misbehave.py do not do: echo request bodies and
 * heads, and redirect to any URL.
 */
#ifndef FERRY_TEST_CLIENT_UTIL_H
#define FERRY_TEST_CLIENT_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry/http.h"
#include "ferry/loop.h"
#include "ferry/url.h"

struct tc {
	struct ferry_loop *loop;
	struct ferry_http_client *client;
	unsigned pending;	/* requests started and not done */
	bool closed;
};

/* What one request saw. Zero it, or use tc_req_init. */
struct tc_req {
	struct tc *t;
	struct ferry_http_request *req;
	bool done;
	int result;
	char detail[FERRY_HTTP_DETAIL_MAX];
	int heads;		/* on_head calls */
	int status;		/* from on_head */
	uint64_t fnv;		/* FNV-1a 64 of the body */
	uint64_t nbody;
	char *body;		/* first capture_max bytes, NUL-terminated */
	size_t capture_max;
	size_t ncapture;
	int done_calls;
	unsigned attempts;	/* ferry_http_request_attempts at on_done */
	bool reused;		/* from on_head */
	char xconn[16];		/* X-Conn header (misbehave count mode) */
	/* Options for the test's own behaviour. */
	uint64_t cancel_after;	/* cancel once this many body bytes came */
	bool keep_bufs;		/* return FERRY_HTTP_KEEP, release later */
	uintptr_t kept[64];
	unsigned nkept;
	unsigned keep_limit;	/* keep at most this many (0: 64) */
	unsigned pause_every;	/* pause after each N-th on_body */
	unsigned bodies;
};

/* Create the loop and a client (opts may be NULL). Asserts. */
void tc_setup(struct tc *t, const struct ferry_http_client_opts *opts);

/* Close the client, run until it is freed, destroy the loop. Asserts. */
void tc_teardown(struct tc *t);

/* Run the loop until t->pending is 0; false if timeout_ms passed first. */
bool tc_run(struct tc *t, int timeout_ms);

/* Run the loop for about ms milliseconds. */
void tc_spin(struct tc *t, int ms);

void tc_req_init(struct tc_req *r, struct tc *t, size_t capture_max);
void tc_req_free(struct tc_req *r);

/*
 * Start a request; @o may be NULL (GET). The URL is parsed here. On
 * success the request counts in t->pending. Returns start's result;
 * @why gets start's reason.
 */
int tc_start(struct tc_req *r, const char *url,
	     const struct ferry_http_request_opts *o, char *why, size_t whylen);

/* Same with the method only. */
int tc_get(struct tc_req *r, const char *method, const char *url);

/* Release every buffer r kept. */
void tc_release_kept(struct tc_req *r);

/* The callbacks tc_start installs (for tests that build their opts). */
extern const struct ferry_http_callbacks tc_callbacks;

/* ------------------------------------------------------------------ */
/* The in-process server                                                */

/*
 * Routes:
 *   POST|PUT|... /echo       200, body = the request body; headers
 *                            X-Method, X-Body-Framing (length|chunked|none)
 *   any /headers             200, body = the raw request head
 *   any /redirect?S=URL      status S (301, 302, 303, 307, 308) to URL
 *   any /method              200, body = the method
 * Keep-alive unless the client asks to close.
 */
struct ts_conn;

struct ts {
	int lfd;
	int port;
	int stop_pipe[2];
	pthread_t thread;
	unsigned conns;		/* accepted so far */
	struct ts_conn *conn[256];
};

int ts_start(struct ts *s);
void ts_stop(struct ts *s);

#endif
