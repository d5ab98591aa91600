/*
 * output.c - where bytes go: the body to stdout or a file (opened on the
 * first byte, so that no file appears when curl makes none), the -i head,
 * -v's "> " / "< " / "* " lines, the -w line, the error line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch.h"

/* -O: the URL's last path segment, without query or fragment. */
static char *remote_name(const char *url)
{
	const char *p = strstr(url, "://");
	const char *path, *end, *slash;

	p = p ? p + 3 : url;
	path = p + strcspn(p, "/?#");
	end = path + strcspn(path, "?#");
	slash = path;
	for (const char *q = path; q < end; q++)
		if (*q == '/')
			slash = q + 1;
	if (*path != '/' || slash >= end)
		return NULL;
	return strndup(slash, (size_t)(end - slash));
}

int fetch_out_prepare(struct fetch_xfer *x)
{
	const struct fetch_target *t = x->target;
	const char *dir = x->args->output_dir;
	char *name = NULL;
	size_t n;

	x->fd = -1;
	if (t->remote_name) {
		name = remote_name(t->url);
		if (!name) {
			snprintf(x->errmsg, sizeof(x->errmsg),
				 "Remote file name has no length!");
			return x->exit_code = FETCH_EXIT_WRITE;
		}
	} else if (t->outfile && strcmp(t->outfile, "-")) {
		name = strdup(t->outfile);
	}
	if (!name)
		return 0;	/* stdout */
	if (dir && name[0] != '/') {
		n = strlen(dir) + strlen(name) + 2;
		x->outpath = malloc(n);
		if (x->outpath)
			snprintf(x->outpath, n, "%s/%s", dir, name);
		free(name);
	} else {
		x->outpath = name;
	}
	if (!x->outpath)
		return x->exit_code = FETCH_EXIT_NOMEM;
	return 0;
}

/* --create-dirs: every directory on the way to @path. */
static void make_dirs(const char *path)
{
	char *p = strdup(path);

	for (char *s = p ? strchr(p + 1, '/') : NULL; s; s = strchr(s + 1, '/')) {
		*s = '\0';
		mkdir(p, 0750);
		*s = '/';
	}
	free(p);
}

static int out_open(struct fetch_xfer *x)
{
	const struct fetch_args *a = x->args;
	bool append = (a->resume && x->resume_at) || a->resume_from;

	if (x->fd >= 0)
		return 0;
	if (!x->outpath) {
		x->fd = STDOUT_FILENO;
		return 0;
	}
	if (a->create_dirs)
		make_dirs(x->outpath);
	x->fd = open(x->outpath, O_WRONLY | O_CREAT | O_CLOEXEC |
				 (append ? O_APPEND : O_TRUNC), 0666);
	if (x->fd < 0) {
		snprintf(x->errmsg, sizeof(x->errmsg),
			 "Failed to open the file %s: %s", x->outpath,
			 strerror(errno));
		return x->exit_code = FETCH_EXIT_WRITE;
	}
	return 0;
}

int fetch_out_write(struct fetch_xfer *x, const void *data, size_t len)
{
	const char *p = data;

	if (out_open(x))
		return -1;
	while (len) {
		ssize_t n = write(x->fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(x->errmsg, sizeof(x->errmsg),
				 "Failure writing output to destination: %s",
				 n < 0 ? strerror(errno) : "nothing written");
			x->exit_code = FETCH_EXIT_WRITE;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The head as it came: status line, fields, empty line. */
static size_t format_head(const struct ferry_response *r, char *buf,
			  size_t cap)
{
	struct ferry_http_header h;
	size_t n = (size_t)snprintf(buf, cap, "HTTP/1.%d %d %s\r\n",
				    ferry_response_http_minor(r) == 0 ? 0 : 1,
				    ferry_response_status(r),
				    ferry_response_reason(r));

	for (size_t i = 0; ferry_response_header_at(r, i, &h); i++) {
		if (n < cap)
			snprintf(buf + n, cap - n, "%.*s: %.*s\r\n",
				 (int)h.name_len, h.name, (int)h.value_len,
				 h.value);
		n += h.name_len + h.value_len + 4;
	}
	if (n < cap)
		snprintf(buf + n, cap - n, "\r\n");
	return n + 2;
}

size_t fetch_head_size(const struct ferry_response *r)
{
	return format_head(r, NULL, 0);
}

int fetch_out_head(struct fetch_xfer *x, const struct ferry_response *r)
{
	size_t n = fetch_head_size(r);
	char *buf = malloc(n + 1);
	int rc;

	if (!buf)
		return x->exit_code = FETCH_EXIT_NOMEM;
	format_head(r, buf, n + 1);
	rc = fetch_out_write(x, buf, n) < 0 ? x->exit_code : 0;
	free(buf);
	return rc;
}

/* A retry starts the file afresh (curl "throws away" what it got). */
void fetch_out_discard(struct fetch_xfer *x)
{
	if (x->fd >= 0 && x->outpath && !x->args->resume &&
	    !x->args->resume_from && ftruncate(x->fd, 0) == 0)
		lseek(x->fd, 0, SEEK_SET);
}

int fetch_out_finish(struct fetch_xfer *x, bool ok)
{
	int rc = 0;

	/* An empty body still makes its (empty) file, as curl's does. */
	if (ok && x->fd < 0 && x->outpath)
		rc = out_open(x);
	if (x->fd >= 0 && x->fd != STDOUT_FILENO && close(x->fd) < 0 &&
	    x->exit_code == 0) {
		snprintf(x->errmsg, sizeof(x->errmsg),
			 "Failure writing output to destination: %s",
			 strerror(errno));
		rc = x->exit_code = FETCH_EXIT_WRITE;
	}
	x->fd = -1;
	free(x->outpath);
	x->outpath = NULL;
	return rc;
}

void fetch_report(const struct fetch_xfer *x)
{
	const struct fetch_args *a = x->args;

	if (!x->exit_code || (a->silent && !a->show_error))
		return;
	fprintf(stderr, "fetch: (%d) %s\n", x->exit_code, x->errmsg);
}

/* ------------------------------------------------------------------ */
/* -v                                                                   */

void fetch_verbose_info(const char *fmt, ...)
{
	va_list ap;

	flockfile(stderr);
	fputs("* ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

void fetch_verbose_request(const char *method, const char *target,
			   const struct ferry_http_header *h, size_t n,
			   bool forward)
{
	flockfile(stderr);
	fprintf(stderr, "> %s %s HTTP/1.1\r\n", method, target);
	for (size_t i = 0; i < n; i++)
		if (forward || h[i].name_len != 16 ||
		    strncasecmp(h[i].name, "Proxy-Connection", 16))
			fprintf(stderr, "> %.*s: %.*s\r\n", (int)h[i].name_len,
			h[i].name, (int)h[i].value_len, h[i].value);
	fputs("> \r\n", stderr);
	funlockfile(stderr);
}

void fetch_verbose_response(const struct ferry_response *r)
{
	struct ferry_http_header h;

	flockfile(stderr);
	fprintf(stderr, "< HTTP/1.%d %d %s\r\n",
		ferry_response_http_minor(r) == 0 ? 0 : 1,
		ferry_response_status(r), ferry_response_reason(r));
	for (size_t i = 0; ferry_response_header_at(r, i, &h); i++)
		fprintf(stderr, "< %.*s: %.*s\r\n", (int)h.name_len, h.name,
			(int)h.value_len, h.value);
	fputs("< \r\n", stderr);
	funlockfile(stderr);
}

/* ------------------------------------------------------------------ */
/* -w                                                                   */

/* Write one %{variable}; false if fetch does not know it. */
static bool write_var(FILE *f, const struct fetch_xfer *x, const char *name,
		      size_t n)
{
#define IS(s) (n == sizeof(s) - 1 && !memcmp(name, s, n))
	if (IS("http_code") || IS("response_code"))
		fprintf(f, "%03d", x->status);
	else if (IS("size_download"))
		fprintf(f, "%llu", (unsigned long long)x->size_download);
	else if (IS("size_header"))
		fprintf(f, "%llu", (unsigned long long)x->size_header);
	else if (IS("time_total"))
		fprintf(f, "%.6f", x->time_total);
	else if (IS("time_namelookup"))
		fprintf(f, "%.6f", x->time_namelookup);
	else if (IS("time_connect"))
		fprintf(f, "%.6f", x->time_connect);
	else if (IS("time_appconnect"))
		fprintf(f, "%.6f", x->time_appconnect);
	else if (IS("time_starttransfer"))
		fprintf(f, "%.6f", x->time_starttransfer);
	else if (IS("speed_download"))
		fprintf(f, "%.0f", x->time_total > 0
			? (double)x->size_download / x->time_total : 0.0);
	else if (IS("url_effective"))
		fputs(x->url_effective, f);
	else if (IS("url"))
		fputs(x->target->url, f);
	else if (IS("num_redirects"))
		fprintf(f, "%u", x->num_redirects);
	else if (IS("content_type"))
		fputs(x->content_type, f);
	else if (IS("exitcode"))
		fprintf(f, "%d", x->exit_code);
	else if (IS("errormsg"))
		fputs(x->exit_code ? x->errmsg : "", f);
	else
		return false;
	return true;
#undef IS
}

void fetch_writeout(struct fetch_xfer *x)
{
	const char *s = x->args->writeout;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if (!s || !(f = open_memstream(&buf, &len)))
		return;
	while (*s) {
		if (s[0] == '%' && s[1] == '{' && strchr(s + 2, '}')) {
			const char *name = s + 2, *end = strchr(name, '}');

			if (!write_var(f, x, name, (size_t)(end - name)))
				fprintf(stderr, "fetch: unknown --write-out variable: '%.*s'\n",
					(int)(end - name), name);
			s = end + 1;
		} else if (s[0] == '%' && s[1] == '%') {
			fputc('%', f);
			s += 2;
		} else if (s[0] == '\\' && s[1] && strchr("nrt\\", s[1])) {
			fputc(s[1] == 'n' ? '\n' : s[1] == 'r' ? '\r'
			      : s[1] == 't' ? '\t' : '\\', f);
			s += 2;
		} else {
			fputc(*s++, f);
		}
	}
	fclose(f);
	/* One write: lines of parallel transfers do not interleave. */
	if (len && write(STDOUT_FILENO, buf, len) < 0)
		x->exit_code = x->exit_code ? x->exit_code : FETCH_EXIT_WRITE;
	free(buf);
}
