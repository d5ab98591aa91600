/*
 * args.c - the command line: a table of curl's flags that fetch knows,
 * short clusters (-sSL, -ofile) and long names (--output file), URLs
 * paired with -o/-O in order, @file arguments read here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "fetch.h"

enum opt_id {
	O_OUTPUT, O_REMOTE_NAME, O_OUTPUT_DIR, O_CREATE_DIRS, O_URL,
	O_INCLUDE, O_HEAD, O_REQUEST, O_HEADER,
	O_DATA, O_DATA_BINARY, O_DATA_RAW, O_JSON, O_GET,
	O_USER, O_AGENT, O_REFERER, O_COOKIE,
	O_LOCATION, O_MAX_REDIRS, O_POST301, O_POST302, O_POST303,
	O_FAIL, O_FAIL_BODY, O_SILENT, O_SHOW_ERROR, O_VERBOSE, O_BAR,
	O_WRITE_OUT, O_MAX_TIME, O_CONNECT_TIMEOUT,
	O_INSECURE, O_CACERT, O_CAPATH, O_TLS_MAX, O_TLS10, O_TLS11, O_TLS12,
	O_TLS13, O_PARALLEL, O_PARALLEL_MAX, O_CONTINUE_AT, O_RETRY,
	O_RETRY_DELAY, O_COMPRESSED, O_RESOLVE, O_HELP, O_VERSION, O_CERT, O_KEY,
	O_PROXY, O_PROXYTUNNEL, O_NOPROXY, O_PROXY_USER, O_UNIX_SOCKET,
	O_ABSTRACT_UNIX, O_UPLOAD,
};

struct opt {
	const char *name;	/* long name, without "--" */
	char letter;		/* short letter, or 0 */
	bool arg;		/* takes a parameter */
	enum opt_id id;
};

static const struct opt opts[] = {
	{ "output", 'o', true, O_OUTPUT },
	{ "remote-name", 'O', false, O_REMOTE_NAME },
	{ "output-dir", 0, true, O_OUTPUT_DIR },
	{ "create-dirs", 0, false, O_CREATE_DIRS },
	{ "url", 0, true, O_URL },
	{ "include", 'i', false, O_INCLUDE },
	{ "head", 'I', false, O_HEAD },
	{ "request", 'X', true, O_REQUEST },
	{ "header", 'H', true, O_HEADER },
	{ "data", 'd', true, O_DATA },
	{ "data-ascii", 0, true, O_DATA },
	{ "data-binary", 0, true, O_DATA_BINARY },
	{ "data-raw", 0, true, O_DATA_RAW },
	{ "json", 0, true, O_JSON },
	{ "get", 'G', false, O_GET },
	{ "user", 'u', true, O_USER },
	{ "user-agent", 'A', true, O_AGENT },
	{ "referer", 'e', true, O_REFERER },
	{ "cookie", 'b', true, O_COOKIE },
	{ "location", 'L', false, O_LOCATION },
	{ "max-redirs", 0, true, O_MAX_REDIRS },
	{ "post301", 0, false, O_POST301 },
	{ "post302", 0, false, O_POST302 },
	{ "post303", 0, false, O_POST303 },
	{ "fail", 'f', false, O_FAIL },
	{ "fail-with-body", 0, false, O_FAIL_BODY },
	{ "silent", 's', false, O_SILENT },
	{ "show-error", 'S', false, O_SHOW_ERROR },
	{ "verbose", 'v', false, O_VERBOSE },
	{ "progress-bar", '#', false, O_BAR },
	{ "write-out", 'w', true, O_WRITE_OUT },
	{ "max-time", 'm', true, O_MAX_TIME },
	{ "connect-timeout", 0, true, O_CONNECT_TIMEOUT },
	{ "insecure", 'k', false, O_INSECURE },
	{ "cacert", 0, true, O_CACERT },
	{ "capath", 0, true, O_CAPATH },
	{ "cert", 'E', true, O_CERT },
	{ "key", 0, true, O_KEY },
	{ "tls-max", 0, true, O_TLS_MAX },
	{ "tlsv1.0", 0, false, O_TLS10 },
	{ "tlsv1.1", 0, false, O_TLS11 },
	{ "tlsv1.2", 0, false, O_TLS12 },
	{ "tlsv1.3", 0, false, O_TLS13 },
	{ "tlsv1", '1', false, O_TLS10 },
	{ "parallel", 'Z', false, O_PARALLEL },
	{ "parallel-max", 0, true, O_PARALLEL_MAX },
	{ "continue-at", 'C', true, O_CONTINUE_AT },
	{ "retry", 0, true, O_RETRY },
	{ "retry-delay", 0, true, O_RETRY_DELAY },
	{ "compressed", 0, false, O_COMPRESSED },
	{ "proxy", 'x', true, O_PROXY },
	{ "proxytunnel", 'p', false, O_PROXYTUNNEL },
	{ "noproxy", 0, true, O_NOPROXY },
	{ "proxy-user", 'U', true, O_PROXY_USER },
	{ "unix-socket", 0, true, O_UNIX_SOCKET },
	{ "abstract-unix-socket", 0, true, O_ABSTRACT_UNIX },
	{ "resolve", 0, true, O_RESOLVE },
	{ "upload-file", 'T', true, O_UPLOAD },
	{ "help", 'h', false, O_HELP },
	{ "version", 'V', false, O_VERSION },
};

/* Outputs are kept in order and given to URLs in order, as curl does:
 * the n-th -o or -O belongs to the n-th URL wherever each stands; so
 * does the n-th -T. */
struct pairing {
	struct fetch_target *outs;
	size_t nouts;
	const char **uploads;
	size_t nuploads;
};

/* One address of a --resolve entry: IPv4, or IPv6 bare or in []. */
static bool resolve_addr_ok(const char *s, size_t n)
{
	unsigned char bin[16];
	char buf[64];

	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (!n || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return inet_pton(AF_INET, buf, bin) == 1 ||
	       inet_pton(AF_INET6, buf, bin) == 1;
}

/* curl's --resolve HOST:PORT:ADDR[,ADDR]... (HOST may be "*"); the
 * library checks the same again (ferry_http_client_opts.resolve). */
static bool resolve_ok(const char *e)
{
	const char *c1 = strchr(e, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	char *end;
	long port;

	if (!c1 || !c2 || c1 == e || c1[1] < '0' || c1[1] > '9')
		return false;
	port = strtol(c1 + 1, &end, 10);
	if (end != c2 || port < 1 || port > 65535)
		return false;
	for (const char *p = c2 + 1;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		if (!resolve_addr_ok(p, n))
			return false;
		if (!comma)
			return true;
		p = comma + 1;
	}
}

static void usage_hint(void)
{
	fprintf(stderr, "fetch: try 'fetch --help' for more information\n");
}

static int bad_option(const char *opt, const char *why)
{
	fprintf(stderr, "fetch: option %s: %s\n", opt, why);
	usage_hint();
	return FETCH_EXIT_USAGE;
}

static void *grow_array(void *p, size_t n, size_t size)
{
	/* Arrays grow one element at a time: command lines are short. */
	void *q = realloc(p, (n + 1) * size);

	if (!q) {
		fprintf(stderr, "fetch: out of memory\n");
		exit(FETCH_EXIT_NOMEM);
	}
	return q;
}

/* Read a whole file ("-" is stdin) into a NUL-terminated buffer. */
static int read_file(const char *name, char **out, size_t *len)
{
	FILE *f = strcmp(name, "-") ? fopen(name, "rb") : stdin;
	size_t cap = 4096, n = 0;
	char *buf;

	if (!f)
		return -errno;
	buf = malloc(cap);
	while (buf) {
		n += fread(buf + n, 1, cap - n - 1, f);
		if (n < cap - 1)
			break;
		cap *= 2;
		buf = realloc(buf, cap);
	}
	if (!buf || ferror(f)) {
		int err = buf ? -EIO : -ENOMEM;

		free(buf);
		if (f != stdin)
			fclose(f);
		return err;
	}
	if (f != stdin)
		fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* -d @file drops CR and LF, as curl's does; --data-binary keeps them. */
static size_t strip_newlines(char *s, size_t n)
{
	size_t w = 0;

	for (size_t i = 0; i < n; i++)
		if (s[i] != '\r' && s[i] != '\n')
			s[w++] = s[i];
	return w;
}

static int add_data(struct fetch_args *a, enum opt_id id, const char *arg)
{
	char *piece = NULL;
	size_t len = strlen(arg);
	bool at = arg[0] == '@' && id != O_DATA_RAW;
	char *d;

	if (at) {
		int err = read_file(arg + 1, &piece, &len);

		if (err == -ENOMEM)
			return FETCH_EXIT_NOMEM;
		if (err < 0) {
			/* curl 7.88 warned and sent an empty POST; later
			 * curls, and fetch, fail with 26 before any I/O. */
			a->unreadable = arg + 1;
			a->unreadable_err = -err;
			piece = NULL;
			len = 0;
		}
		if (id == O_DATA)
			len = strip_newlines(piece, len);
	}
	d = realloc(a->data, a->data_len + len + 2);
	if (!d) {
		free(piece);
		return FETCH_EXIT_NOMEM;
	}
	a->data = d;
	if (a->has_data && id != O_JSON)
		a->data[a->data_len++] = '&';
	if (len)
		memcpy(a->data + a->data_len, at ? piece : arg, len);
	a->data_len += len;
	a->data[a->data_len] = '\0';
	a->has_data = true;
	if (id == O_JSON)
		a->json = true;
	else
		a->data_form = true;
	free(piece);
	return -1;
}

static bool parse_long(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0)
		return false;
	*out = v;
	return true;
}

/* Seconds, possibly fractional, as milliseconds. */
static bool parse_seconds(const char *s, long *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < 0 || v > 1e9)
		return false;
	*ms = (long)(v * 1000 + 0.5);
	if (v > 0 && *ms == 0)
		*ms = 1;
	return true;
}

static void add_url(struct fetch_args *a, struct pairing *p, const char *url)
{
	a->targets = grow_array(a->targets, a->ntargets, sizeof(*a->targets));
	a->targets[a->ntargets++] = (struct fetch_target){ .url = url };
}

static void add_output(struct fetch_args *a, struct pairing *p,
		       const char *file, bool remote)
{
	p->outs = grow_array(p->outs, p->nouts, sizeof(*p->outs));
	p->outs[p->nouts++] = (struct fetch_target){
		.outfile = file, .remote_name = remote };
}

static void pair_outputs(struct fetch_args *a, const struct pairing *p)
{
	for (size_t i = 0; i < a->ntargets && i < p->nouts; i++) {
		a->targets[i].outfile = p->outs[i].outfile;
		a->targets[i].remote_name = p->outs[i].remote_name;
	}
	for (size_t i = 0; i < a->ntargets && i < p->nuploads; i++)
		a->targets[i].upload = p->uploads[i];
}

/* -T is PUT: with -d (POST) or -I (HEAD) it is two methods, which curl
 * refuses with these words and exit 2. */
static int check_methods(const struct fetch_args *a, const struct pairing *p)
{
	const char *other = a->has_data && !a->get ? "POST (-d, --data)"
			    : a->head ? "HEAD (-I, --head)" : NULL;

	if (!p->nuploads || !other)
		return -1;
	fprintf(stderr, "Warning: You can only select one HTTP request method! You asked for both PUT \n"
		"Warning: (-T, --upload-file) and %s.\n", other);
	return FETCH_EXIT_USAGE;
}

static int parse_tls_max(struct fetch_args *a, const char *v)
{
	static const char *names[] = { "1.0", "1.1", "1.2", "1.3" };

	if (!strcmp(v, "default")) {
		a->tls_max = 0;
		return -1;
	}
	for (int i = 0; i < 4; i++)
		if (!strcmp(v, names[i])) {
			a->tls_max = 10 + i;
			return -1;
		}
	return bad_option("--tls-max", "unsupported TLS version");
}

/* Apply one option; @arg is its parameter (NULL if it takes none). */
static int apply(struct fetch_args *a, struct pairing *p, const struct opt *o,
		 const char *shown, const char *arg)
{
	long v;

	switch (o->id) {
	case O_OUTPUT: add_output(a, p, arg, false); break;
	case O_REMOTE_NAME: add_output(a, p, NULL, true); break;
	case O_OUTPUT_DIR: a->output_dir = arg; break;
	case O_CREATE_DIRS: a->create_dirs = true; break;
	case O_URL: add_url(a, p, arg); break;
	case O_INCLUDE: a->include = true; break;
	case O_HEAD: a->head = true; break;
	case O_REQUEST: a->method = arg; break;
	case O_HEADER:
		a->headers = grow_array(a->headers, a->nheaders,
					sizeof(*a->headers));
		a->headers[a->nheaders++] = arg;
		break;
	case O_DATA: case O_DATA_BINARY: case O_DATA_RAW: case O_JSON:
		return add_data(a, o->id, arg);
	case O_UPLOAD:
		p->uploads = grow_array(p->uploads, p->nuploads,
					sizeof(*p->uploads));
		p->uploads[p->nuploads++] = arg;
		break;
	case O_RESOLVE:
		if (!resolve_ok(arg)) {
			/* curl's words and code (49: a bad option value). */
			fprintf(stderr, "fetch: (%d) Couldn't parse CURLOPT_RESOLVE entry '%s'\n",
				FETCH_EXIT_SETOPT, arg);
			return FETCH_EXIT_SETOPT;
		}
		a->resolve = grow_array(a->resolve, a->nresolve,
					sizeof(*a->resolve));
		a->resolve[a->nresolve++] = arg;
		break;
	case O_GET: a->get = true; break;
	case O_USER: a->user = arg; break;
	case O_AGENT: a->agent = arg; break;
	case O_REFERER: a->referer = arg; break;
	case O_COOKIE: a->cookie = arg; break;
	case O_LOCATION: a->location = true; break;
	case O_MAX_REDIRS:
		if (!strcmp(arg, "-1"))
			v = -1;
		else if (!parse_long(arg, &v))
			return bad_option(shown, "expected a proper numerical parameter");
		a->max_redirs = v;
		break;
	case O_POST301: a->post301 = true; break;
	case O_POST302: a->post302 = true; break;
	case O_POST303: a->post303 = true; break;
	case O_FAIL: a->fail = FETCH_FAIL_SILENT; break;
	case O_FAIL_BODY: a->fail = FETCH_FAIL_WITH_BODY; break;
	case O_SILENT: a->silent = true; break;
	case O_SHOW_ERROR: a->show_error = true; break;
	case O_VERBOSE: a->verbose = true; break;
	case O_BAR: a->progress_bar = true; break;
	case O_WRITE_OUT:
		if (arg[0] == '@') {
			char *s;
			size_t n;

			if (read_file(arg + 1, &s, &n) < 0) {
				fprintf(stderr, "fetch: Failed to read %s\n", arg + 1);
				break;
			}
			a->writeout = s;	/* lives as long as the process */
		} else {
			a->writeout = arg;
		}
		break;
	case O_MAX_TIME:
		if (!parse_seconds(arg, &a->max_time_ms))
			return bad_option(shown, "expected a proper numerical parameter");
		break;
	case O_CONNECT_TIMEOUT:
		if (!parse_seconds(arg, &a->connect_timeout_ms))
			return bad_option(shown, "expected a proper numerical parameter");
		break;
	case O_INSECURE: a->insecure = true; break;
	case O_CACERT: a->cacert = arg; break;
	case O_CERT: a->cert = arg; break;
	case O_KEY: a->key = arg; break;
	case O_CAPATH: a->capath = arg; break;
	case O_TLS_MAX: return parse_tls_max(a, arg);
	case O_TLS10: case O_TLS11: case O_TLS12: break;	/* minimums <= 1.2 */
	case O_TLS13: a->tls13_min = true; break;
	case O_PARALLEL: a->parallel = true; break;
	case O_PARALLEL_MAX:
		if (!parse_long(arg, &v))
			return bad_option(shown, "expected a proper numerical parameter");
		/* curl clamps to 1..300 */
		a->parallel_max = v < 1 ? 1 : v > 300 ? 300 : v;
		break;
	case O_CONTINUE_AT:
		if (!strcmp(arg, "-")) {
			a->resume = true;
		} else if (parse_long(arg, &v)) {
			a->resume_from = v;
		} else {
			return bad_option(shown, "expected a proper numerical parameter");
		}
		break;
	case O_RETRY:
		if (!parse_long(arg, &a->retry))
			return bad_option(shown, "expected a proper numerical parameter");
		break;
	case O_RETRY_DELAY:
		if (!parse_long(arg, &a->retry_delay_s))
			return bad_option(shown, "expected a proper numerical parameter");
		break;
	case O_COMPRESSED: a->compressed = true; break;
	case O_PROXY: a->proxy = arg; break;
	case O_PROXYTUNNEL: a->proxytunnel = true; break;
	case O_NOPROXY: a->noproxy = arg; break;
	case O_PROXY_USER: a->proxy_user = arg; break;
	case O_UNIX_SOCKET:
		a->unix_socket = arg;
		a->abstract_unix = false;
		break;
	case O_ABSTRACT_UNIX:
		a->unix_socket = arg;
		a->abstract_unix = true;
		break;
	case O_HELP: fetch_usage(stdout); return 0;
	case O_VERSION: fetch_version(stdout); return 0;
	}
	return -1;
}

static const struct opt *find_long(const char *name)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (!strcmp(opts[i].name, name))
			return &opts[i];
	return NULL;
}

static const struct opt *find_short(char c)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (opts[i].letter == c)
			return &opts[i];
	return NULL;
}

/* A cluster of short flags: "-sSL", "-ofile", "-o" "file". */
static int parse_short(struct fetch_args *a, struct pairing *p, int argc,
		       char **argv, int *i)
{
	const char *s = argv[*i] + 1;

	for (; *s; s++) {
		const struct opt *o = find_short(*s);
		char shown[3] = { '-', *s, 0 };
		const char *arg = NULL;
		int r;

		if (!o)
			return bad_option(shown, "is unknown");
		if (o->arg) {
			if (s[1])
				arg = s + 1;
			else if (*i + 1 < argc)
				arg = argv[++*i];
			else
				return bad_option(shown, "requires parameter");
		}
		r = apply(a, p, o, shown, arg);
		if (r >= 0 || arg)
			return r;
	}
	return -1;
}

int fetch_args_parse(int argc, char **argv, struct fetch_args *a)
{
	struct pairing p = { 0 };
	bool only_urls = false;
	int r = -1;

	memset(a, 0, sizeof(*a));
	a->max_redirs = 50;
	a->parallel_max = 50;
	for (int i = 0; i < argc && r < 0; i++) {
		const char *s = argv[i];
		const struct opt *o;

		if (only_urls || s[0] != '-' || !s[1]) {
			add_url(a, &p, s);
		} else if (!strcmp(s, "--")) {
			only_urls = true;
		} else if (s[1] != '-') {
			r = parse_short(a, &p, argc, argv, &i);
		} else if (!(o = find_long(s + 2))) {
			r = bad_option(s, "is unknown");
		} else if (o->arg && i + 1 >= argc) {
			r = bad_option(s, "requires parameter");
		} else {
			r = apply(a, &p, o, s, o->arg ? argv[++i] : NULL);
		}
	}
	pair_outputs(a, &p);
	if (r < 0)
		r = check_methods(a, &p);
	if (r < 0 && a->unreadable) {
		if (!a->silent || a->show_error)
			fprintf(stderr, "fetch: (%d) Failed to open/read local data from file/application: %s: %s\n",
				FETCH_EXIT_READ, a->unreadable,
				strerror(a->unreadable_err));
		r = FETCH_EXIT_READ;
	}
	free(p.outs);
	free(p.uploads);
	if (r < 0 && a->ntargets == 0) {
		fprintf(stderr, "fetch: no URL specified!\n");
		usage_hint();
		r = FETCH_EXIT_USAGE;
	}
	return r;
}

void fetch_args_free(struct fetch_args *a)
{
	free(a->targets);
	free(a->headers);
	free(a->data);
	free(a->resolve);
}
