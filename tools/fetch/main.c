/*
 * main.c - fetch: a curl-compatible command-line HTTP(S) client on
 * ferry's blocking session API. Parses the command line (args.c), makes
 * one runner and one session, runs each URL's transfer (transfer.c) in
 * turn or, with -Z, on up to --parallel-max threads at once, and exits
 * with curl's code for the last failure.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "fetch.h"

#define FETCH_RECV_BUF_SIZE (128 * 1024)
#define FETCH_RECV_BUF_COUNT 64	/* = FETCH_STREAM_CAPACITY */

uint64_t fetch_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void fetch_usage(FILE *f)
{
	fputs("Usage: fetch [options...] <url>...\n"
	      " -o, --output <file>      Write the body to <file> (one per URL, in order)\n"
	      " -O, --remote-name        Write to a file named like the URL's last segment\n"
	      "     --output-dir <dir>   Directory for -o/-O files\n"
	      "     --create-dirs        Create the directories -o needs\n"
	      " -i, --include            Include the response head in the output\n"
	      " -I, --head               HEAD request; show the head only\n"
	      " -X, --request <method>   Method to use\n"
	      " -H, --header <h>         Add 'Name: value'; 'Name:' removes, 'Name;' sends empty\n"
	      " -d, --data <data>        POST data (@file: from a file; several join with &)\n"
	      "     --data-binary <data> POST data as is (@file)\n"
	      "     --data-raw <data>    POST data, '@' not special\n"
	      "     --json <data>        POST JSON (sets Content-Type and Accept)\n"
	      " -G, --get                Put the data in the URL's query, GET\n"
	      " -T, --upload-file <file> PUT <file> ('-': stdin, chunked) to the URL\n"
	      " -u, --user <user:pass>   Basic authentication\n"
	      " -x, --proxy <[proto://]host[:port]>  Use this proxy ('' none)\n"
	      " -p, --proxytunnel        CONNECT through the proxy for http:// too\n"
	      "     --noproxy <list>     Hosts that go direct (* for all)\n"
	      " -U, --proxy-user <user:pass>  Proxy credentials (Basic)\n"
	      "     --unix-socket <path> Connect through this Unix socket\n"
	      "     --abstract-unix-socket <name>  ... an abstract one\n"
	      " -A, --user-agent <name>  User-Agent to send\n"
	      " -e, --referer <url>      Referer to send\n"
	      " -b, --cookie <n=v>       Cookie to send\n"
	      " -L, --location           Follow redirects\n"
	      "     --max-redirs <num>   Most redirects to follow [50]\n"
	      "     --post301/302/303    Keep POST across that redirect\n"
	      " -f, --fail               Exit 22 on HTTP errors, no body\n"
	      "     --fail-with-body     Exit 22 on HTTP errors, with the body\n"
	      " -s, --silent             No progress, no error messages\n"
	      " -S, --show-error         Error messages even with -s\n"
	      " -v, --verbose            Request and response heads on stderr\n"
	      " -#, --progress-bar       A bar instead of the progress line\n"
	      " -w, --write-out <fmt>    Print %{variables} after each transfer\n"
	      " -m, --max-time <secs>    Longest a transfer may take\n"
	      "     --connect-timeout <secs>  Longest a connect may take\n"
	      " -k, --insecure           Do not verify the server's certificate\n"
	      "     --cacert <file>      CA certificates to verify with\n"
	      "     --capath <dir>       Directory of CA certificates\n"
	      " -E, --cert <file>        Client certificate (PEM; the key too)\n"
	      "     --key <file>         Client private key (PEM)\n"
	      "     --tls-max <version>  Highest TLS version (1.2 is all there is)\n"
	      "     --tlsv1.2            TLS 1.2 at least (the default)\n"
	      " -Z, --parallel           Run the transfers at the same time\n"
	      "     --parallel-max <num> At most this many at once [50]\n"
	      " -C, --continue-at -      Resume where the output file ends\n"
	      "     --retry <num>        Retry transient failures\n"
	      "     --retry-delay <secs> Wait between retries\n"
	      "     --resolve <host:port:addr[,addr]...>  Use these addresses\n"
	      "     --bench ...          Load generator (fetch --bench --help)\n"
	      " -h, --help               This help\n"
	      " -V, --version            Versions and features\n", f);
}

void fetch_version(FILE *f)
{
	struct ferry_loop *loop = NULL;
	char why[256] = "";
	/* The backend a transfer would run on here (io_uring, or epoll where
	 * it is blocked): a loop made and dropped, as cheap as the probe. */
	int rc = ferry_loop_create(&loop, NULL, why, sizeof(why));

	fprintf(f, "fetch %s (x86_64-linux-gnu) libferry/%s BearSSL/0.6 %s\n"
		"Protocols: http https\n"
		"Features: IPv6 Largefile SSL TLS1.2 libz parallel progress bench\n",
		FETCH_VERSION, FETCH_VERSION, rc ? "none" : ferry_loop_backend(loop));
	if (rc)
		fprintf(f, "Backend: none (%s)\n", why);
	else
		fprintf(f, "Backend: %s (%s)\n", ferry_loop_backend(loop),
			ferry_loop_describe(loop));
	ferry_loop_destroy(loop);
}

/* The session every transfer shares: fast options, curl's timeouts. */
static int open_session(const struct fetch_args *a, struct ferry_runner **rp,
			struct ferry_session **sp)
{
	struct ferry_http_client_opts o = {
		/* curl waits for data for ever and a connect for 300 s. */
		.read_timeout_ms = FERRY_HTTP_NO_TIMEOUT,
		.connect_timeout_ms = a->connect_timeout_ms
					      ? (uint32_t)a->connect_timeout_ms
					      : 300000,
		.max_head = 1 << 20,
		.ca_file = a->cacert,
		.ca_dir = a->capath,
		.tls_client_cert = a->cert,
		.tls_client_key = a->key,
		.tls_insecure_skip_verify = a->insecure,
		/* curl's: -x over the environment, which the library reads
		 * as curl does when -x is not given. */
		.proxy = a->proxy,
		.no_proxy = a->noproxy,
		.proxy_tunnel = a->proxytunnel,
		.proxy_userpwd = a->proxy_user,
		.unix_socket = a->unix_socket,
		.unix_socket_abstract = a->abstract_unix,
		.resolve = a->resolve,
		.nresolve = a->nresolve,
		/* --compressed decodes whatever curl would: no limits. */
		.max_decoded = UINT64_MAX,
		.max_decode_ratio = UINT_MAX,
		/* Large receive buffers: a 1 GiB body in 128 KiB pieces
		 * costs a third less CPU than in 16 KiB ones (measured
		 * against curl -o /dev/null on loopback nginx). */
		.recv_buf_size = FETCH_RECV_BUF_SIZE,
		.recv_buf_count = FETCH_RECV_BUF_COUNT,
	};
	int rc = ferry_runner_create(rp, NULL);

	if (rc == 0)
		rc = ferry_session_create(*rp, &o, sp);
	if (rc < 0) {
		fprintf(stderr, "fetch: cannot start: %s%s%s\n",
			ferry_strerror(rc), *rp ? " " : "",
			*rp ? ferry_runner_why(*rp) : "");
		return FETCH_EXIT_NOMEM;
	}
	return 0;
}

/* TLS above 1.2 or below it cannot be had: refuse https before trying. */
static bool tls_impossible(struct fetch_xfer *x)
{
	const struct fetch_args *a = x->args;

	if (strncasecmp(x->target->url, "https://", 8))
		return false;
	if (a->tls13_min)
		snprintf(x->errmsg, sizeof(x->errmsg),
			 "TLS 1.3 is required (--tlsv1.3), but the TLS library (BearSSL 0.6) speaks TLS 1.2 at most");
	else if (a->tls_max && a->tls_max < 12)
		snprintf(x->errmsg, sizeof(x->errmsg),
			 "--tls-max 1.%d is below TLS 1.2, the only version the TLS library (BearSSL 0.6) speaks",
			 a->tls_max - 10);
	else
		return false;
	x->exit_code = FETCH_EXIT_TLS;
	return true;
}

static void run_one(struct fetch_xfer *x)
{
	if (!tls_impossible(x))
		fetch_xfer_run(x);
	fetch_writeout(x);
	fetch_report(x);
}

/* -Z: workers take the next transfer until none is left. */
struct pool {
	struct fetch_xfer *xs;
	size_t n;
	_Atomic size_t next;
};

static void *worker(void *arg)
{
	struct pool *p = arg;
	size_t i;

	/* Relaxed: the counter only hands out indexes; the transfers
	 * themselves were written before the threads started. */
	while ((i = atomic_fetch_add_explicit(&p->next, 1,
					      memory_order_relaxed)) < p->n)
		run_one(&p->xs[i]);
	return NULL;
}

static void run_parallel(struct fetch_xfer *xs, size_t n, long max)
{
	struct pool p = { .xs = xs, .n = n };
	size_t nt = (size_t)max < n ? (size_t)max : n;
	pthread_t *t = calloc(nt, sizeof(*t));
	size_t started = 0;

	for (; t && started < nt; started++)
		if (pthread_create(&t[started], NULL, worker, &p))
			break;
	if (!started)
		worker(&p);	/* no thread: do it here */
	for (size_t i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	free(t);
}

/* Progress only where someone watches it, and not over the body. */
static bool want_progress(const struct fetch_args *a)
{
	if (a->silent || a->verbose || !isatty(STDERR_FILENO))
		return false;
	for (size_t i = 0; i < a->ntargets; i++)
		if (!a->targets[i].outfile && !a->targets[i].remote_name &&
		    isatty(STDOUT_FILENO))
			return false;
	return true;
}

int main(int argc, char **argv)
{
	struct ferry_runner *runner = NULL;
	struct ferry_session *session = NULL;
	struct fetch_xfer *xs;
	struct fetch_args a;
	int rc;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--bench"))
			return fetch_bench_main(argc, argv);
	/* A reader that goes away is a write error (23), as in curl. */
	signal(SIGPIPE, SIG_IGN);
	rc = fetch_args_parse(argc - 1, argv + 1, &a);
	if (rc >= 0) {
		fetch_args_free(&a);
		return rc;
	}
	xs = calloc(a.ntargets, sizeof(*xs));
	if (!xs || (rc = open_session(&a, &runner, &session))) {
		fetch_args_free(&a);
		return xs ? rc : FETCH_EXIT_NOMEM;
	}
	for (size_t i = 0; i < a.ntargets; i++)
		xs[i] = (struct fetch_xfer){ .args = &a, .target = &a.targets[i],
					     .session = session, .fd = -1 };
	if (want_progress(&a))
		fetch_progress_start(xs, a.ntargets, a.progress_bar);
	if (a.parallel && a.ntargets > 1)
		run_parallel(xs, a.ntargets, a.parallel_max);
	else
		for (size_t i = 0; i < a.ntargets; i++)
			run_one(&xs[i]);
	fetch_progress_stop();
	/* curl's: serially, the last transfer's code; in parallel, the
	 * last failure's. */
	rc = 0;
	for (size_t i = 0; i < a.ntargets; i++)
		if (xs[i].exit_code || !a.parallel)
			rc = xs[i].exit_code;
	ferry_session_destroy(session);
	ferry_runner_destroy(runner);
	free(xs);
	fetch_args_free(&a);
	return rc;
}
