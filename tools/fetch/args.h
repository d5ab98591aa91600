/*
 * args.h - fetch's command line, parsed into one struct (curl's meaning
 * for every flag curl also has).
 */
#ifndef FETCH_ARGS_H
#define FETCH_ARGS_H

#include <stdbool.h>
#include <stddef.h>

/* One URL and where its body goes (curl pairs -o/-O with URLs in order). */
struct fetch_target {
	const char *url;
	const char *outfile;	/* -o FILE; NULL: stdout */
	bool remote_name;	/* -O */
	const char *upload;	/* -T FILE ("-": stdin); NULL: none */
};

enum fetch_fail {
	FETCH_FAIL_NO = 0,
	FETCH_FAIL_SILENT,	/* -f: no body, exit 22 */
	FETCH_FAIL_WITH_BODY,	/* --fail-with-body: body, then exit 22 */
};

struct fetch_args {
	struct fetch_target *targets;
	size_t ntargets;
	const char *output_dir;
	bool create_dirs;

	bool include;		/* -i */
	bool head;		/* -I */
	const char *method;	/* -X */
	const char **headers;	/* -H, as given, in order */
	size_t nheaders;

	/* -d/--data-binary/--data-raw/--json, joined; has_data even if "". */
	char *data;
	size_t data_len;
	bool has_data;
	bool data_form;		/* some -d family: form content type */
	bool json;		/* --json */
	bool get;		/* -G */
	const char *unreadable;	/* a -d @file that could not be read */
	int unreadable_err;	/* and why (an errno value) */

	const char *user;	/* -u user:pass */
	const char *agent;	/* -A; NULL: fetch's own */
	const char *referer;	/* -e */
	const char *cookie;	/* -b name=value */

	bool location;		/* -L */
	long max_redirs;	/* --max-redirs; curl's default 50, -1: no limit */
	bool post301, post302, post303;

	enum fetch_fail fail;
	bool silent, show_error, verbose, progress_bar;
	const char *writeout;	/* -w, @file already read */

	long max_time_ms;	/* -m; 0: none */
	long connect_timeout_ms;	/* --connect-timeout; 0: library's */
	bool insecure;
	const char *cacert, *capath;
	const char *cert, *key;		/* client certificate (-E), its key */
	int tls_max;		/* --tls-max as 10..13; 0: default (1.2) */
	bool tls13_min;		/* --tlsv1.3: the TLS library cannot */
	bool parallel;		/* -Z */
	long parallel_max;	/* [50] */
	bool resume;		/* -C - */
	long long resume_from;	/* -C N (> 0) */
	long retry;		/* --retry */
	long retry_delay_s;	/* --retry-delay; 0: curl's backoff */
	const char **resolve;	/* --resolve entries, checked */
	size_t nresolve;
	bool compressed;

	/* Proxies and Unix sockets, as curl's flags. */
	const char *proxy;	/* -x; "" none; NULL: the environment */
	bool proxytunnel;	/* -p */
	const char *noproxy;	/* --noproxy */
	const char *proxy_user;	/* -U user:pass */
	const char *unix_socket;	/* --unix-socket or */
	bool abstract_unix;		/* --abstract-unix-socket */
};

/*
 * fetch_args_parse - parse argv (without argv[0]) into @a.
 * Returns -1 when the run should go on, or the exit code to end with now
 * (0 after -h/-V, 2 for bad usage, 26 for an unreadable @file); messages
 * are printed here.
 */
int fetch_args_parse(int argc, char **argv, struct fetch_args *a);

/* fetch_args_free - release what parse allocated. */
void fetch_args_free(struct fetch_args *a);

#endif /* FETCH_ARGS_H */
