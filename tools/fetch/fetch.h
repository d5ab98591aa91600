/*
 * fetch.h - what fetch's parts share: exit codes (curl's numbers), one
 * transfer's state, and the entry points of transfer.c, output.c and
 * progress.c.
 */
#ifndef FETCH_H
#define FETCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ferry/session.h"

#include "args.h"

/* Exit codes: curl's, for the same failures. */
enum fetch_exit {
	FETCH_EXIT_OK = 0,
	FETCH_EXIT_PROTOCOL = 1,	/* unsupported protocol */
	FETCH_EXIT_USAGE = 2,
	FETCH_EXIT_URL = 3,
	FETCH_EXIT_PROXY_DNS = 5,
	FETCH_EXIT_DNS = 6,
	FETCH_EXIT_CONNECT = 7,
	FETCH_EXIT_WEIRD = 8,		/* weird server reply */
	FETCH_EXIT_PARTIAL = 18,
	FETCH_EXIT_HTTP = 22,		/* -f and status >= 400 */
	FETCH_EXIT_WRITE = 23,
	FETCH_EXIT_READ = 26,
	FETCH_EXIT_NOMEM = 27,
	FETCH_EXIT_TIMEOUT = 28,
	FETCH_EXIT_RANGE = 33,
	FETCH_EXIT_TLS = 35,
	FETCH_EXIT_REDIRECTS = 47,
	FETCH_EXIT_SETOPT = 49,		/* a bad option value (--resolve) */
	FETCH_EXIT_EMPTY = 52,
	FETCH_EXIT_RECV = 56,
	FETCH_EXIT_REWIND = 65,		/* an upload that cannot be sent again */
	FETCH_EXIT_CLIENT_CERT = 58,	/* local client certificate problem */
	FETCH_EXIT_CERT = 60,
	FETCH_EXIT_ENCODING = 61,	/* bad content encoding */
	FETCH_EXIT_CAFILE = 77,
};

/* What the progress line shows, written by the transfer's thread. */
struct fetch_meter {
	_Atomic uint64_t bytes;		/* body bytes received */
	_Atomic int64_t total;		/* expected body bytes, -1 unknown */
	_Atomic int state;		/* 0 waiting, 1 running, 2 done */
	_Atomic uint64_t t_start;	/* ns, when it began running */
	_Atomic uint64_t t_end;		/* ns, when it ended; 0 running */
};

/* One URL's transfer, with its results (for -w). */
struct fetch_xfer {
	const struct fetch_args *args;
	const struct fetch_target *target;
	struct ferry_session *session;
	uint64_t t0;			/* ns, start (first attempt) */

	/* Output: opened on the first byte (no file when curl makes none). */
	char *outpath;			/* NULL: stdout */
	int fd;				/* -1 until opened */
	uint64_t resume_at;		/* -C: bytes already there */

	/* Results. */
	int exit_code;
	char errmsg[512];		/* curl's sentence, for %{errormsg} */
	int status;
	uint64_t size_download, size_header;
	unsigned num_redirects;
	char url_effective[2048];
	char content_type[256];
	long retry_after_s;		/* Retry-After in seconds, or -1 */
	double time_total, time_namelookup, time_connect, time_appconnect,
	       time_starttransfer;
	struct fetch_meter meter;
};

/* transfer.c: run @x to its end, retries included; returns the exit code
 * (also in x->exit_code). Thread: any; one thread per transfer. */
int fetch_xfer_run(struct fetch_xfer *x);

/* output.c */
int fetch_out_prepare(struct fetch_xfer *x);
int fetch_out_write(struct fetch_xfer *x, const void *data, size_t len);
int fetch_out_head(struct fetch_xfer *x, const struct ferry_response *r);
size_t fetch_head_size(const struct ferry_response *r);
int fetch_out_finish(struct fetch_xfer *x, bool ok);
void fetch_out_discard(struct fetch_xfer *x);
void fetch_writeout(struct fetch_xfer *x);
/* @forward: the request went to a forward proxy (else the library left
 * Proxy-Connection out, and so does this). */
void fetch_verbose_request(const char *method, const char *target,
			   const struct ferry_http_header *h, size_t n,
			   bool forward);
void fetch_verbose_response(const struct ferry_response *r);
void fetch_verbose_info(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
/* The error line "fetch: (N) msg", unless -s without -S. */
void fetch_report(const struct fetch_xfer *x);

/* progress.c: a thread redrawing a line per transfer on a terminal. */
void fetch_progress_start(struct fetch_xfer *xs, size_t n, bool bar);
void fetch_progress_stop(void);

/* main.c */
void fetch_usage(FILE *f);
void fetch_version(FILE *f);
uint64_t fetch_now_ns(void);

#endif /* FETCH_H */
