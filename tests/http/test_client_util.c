/*
 * test_client_util.c - see test_client_util.h.
 */
#include "test_client_util.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"

/* ------------------------------------------------------------------ */
/* Loop and client                                                      */

void tc_setup(struct tc *t, const struct ferry_http_client_opts *opts)
{
	char why[256] = "";
	int r;

	memset(t, 0, sizeof(*t));
	r = ferry_loop_create(&t->loop, NULL, why, sizeof(why));
	if (r == FERRY_EUNAVAIL)
		cr_skip_test("io_uring unavailable: %s", why);
	cr_assert_eq(r, 0, "loop: %s %s", ferry_strerror(r), why);
	r = ferry_http_client_create(t->loop, opts, &t->client);
	if (r == -EOPNOTSUPP)
		cr_skip_test("kernel lacks multishot recv / buffer rings");
	cr_assert_eq(r, 0, "client: %s", ferry_strerror(r));
}

static void tc_closed(void *ctx)
{
	((struct tc *)ctx)->closed = true;
}

void tc_teardown(struct tc *t)
{
	uint64_t end = ferry_time_now() + 5000ull * 1000 * 1000;

	if (t->client) {
		ferry_http_client_close(t->client, tc_closed, t);
		while (!t->closed && ferry_time_now() < end)
			ferry_loop_run_once(t->loop, 10 * 1000 * 1000);
		cr_expect(t->closed, "client close did not complete");
		t->client = NULL;
	}
	ferry_loop_destroy(t->loop);
	t->loop = NULL;
}

bool tc_run(struct tc *t, int timeout_ms)
{
	uint64_t end = ferry_time_now() + (uint64_t)timeout_ms * 1000 * 1000;

	while (t->pending) {
		uint64_t now = ferry_time_now();

		if (now >= end)
			return false;
		ferry_loop_run_once(t->loop, (int64_t)(end - now));
	}
	return true;
}

void tc_spin(struct tc *t, int ms)
{
	uint64_t end = ferry_time_now() + (uint64_t)ms * 1000 * 1000;
	uint64_t now;

	while ((now = ferry_time_now()) < end)
		ferry_loop_run_once(t->loop, (int64_t)(end - now));
}

/* ------------------------------------------------------------------ */
/* Requests                                                             */

void tc_req_init(struct tc_req *r, struct tc *t, size_t capture_max)
{
	memset(r, 0, sizeof(*r));
	r->t = t;
	r->fnv = FX_FNV1A64_INIT;
	r->capture_max = capture_max;
	if (capture_max) {
		r->body = calloc(1, capture_max + 1);
		cr_assert(r->body);
	}
}

void tc_req_free(struct tc_req *r)
{
	free(r->body);
	r->body = NULL;
}

static int tc_on_head(void *ctx, struct ferry_http_request *req, int status)
{
	struct tc_req *r = ctx;
	size_t len;
	const char *v = ferry_http_response_header(req, "X-Conn", &len);

	r->heads++;
	r->status = status;
	r->reused = ferry_http_request_reused(req);
	if (v && len < sizeof(r->xconn))
		memcpy(r->xconn, v, len);
	return 0;
}

static int tc_on_body(void *ctx, struct ferry_http_request *req,
		      const void *data, size_t len, uintptr_t token)
{
	struct tc_req *r = ctx;

	r->fnv = fx_fnv1a64(r->fnv, data, len);
	r->nbody += len;
	r->bodies++;
	if (r->ncapture < r->capture_max) {
		size_t n = r->capture_max - r->ncapture;

		if (n > len)
			n = len;
		memcpy(r->body + r->ncapture, data, n);
		r->ncapture += n;
	}
	if (r->cancel_after && r->nbody >= r->cancel_after) {
		ferry_http_request_cancel(req);
		r->cancel_after = 0;
	}
	if (r->pause_every && r->bodies % r->pause_every == 0) {
		ferry_http_request_pause(req);
		ferry_http_request_resume(req);
	}
	if (r->keep_bufs && r->nkept < (r->keep_limit ? r->keep_limit : 64)) {
		r->kept[r->nkept++] = token;
		return FERRY_HTTP_KEEP;
	}
	return 0;
}

static void tc_on_done(void *ctx, struct ferry_http_request *req, int result,
		       const char *detail)
{
	struct tc_req *r = ctx;

	r->done_calls++;
	r->done = true;
	r->attempts = ferry_http_request_attempts(req);
	r->result = result;
	snprintf(r->detail, sizeof(r->detail), "%s", detail);
	r->req = NULL;
	r->t->pending--;
}

const struct ferry_http_callbacks tc_callbacks = {
	.on_head = tc_on_head,
	.on_body = tc_on_body,
	.on_done = tc_on_done,
};

int tc_start(struct tc_req *r, const char *url,
	     const struct ferry_http_request_opts *o, char *why, size_t whylen)
{
	struct ferry_http_request_opts opts = { 0 };
	struct ferry_url u = { 0 };
	char uwhy[FERRY_URL_WHY_MAX];
	int ret;

	if (o)
		opts = *o;
	ret = ferry_url_parse(&u, url, strlen(url), uwhy, sizeof(uwhy));
	if (ret < 0) {
		if (why)
			snprintf(why, whylen, "%s", uwhy);
		return ret;
	}
	opts.url = &u;
	opts.cb = &tc_callbacks;
	opts.ctx = r;
	ret = ferry_http_request_start(r->t->client, &opts, &r->req, why,
				       whylen);
	ferry_url_free(&u);
	if (ret == 0)
		r->t->pending++;
	return ret;
}

int tc_get(struct tc_req *r, const char *method, const char *url)
{
	struct ferry_http_request_opts o = { .method = method };
	char why[256] = "";
	int ret = tc_start(r, url, &o, why, sizeof(why));

	cr_assert_eq(ret, 0, "start %s %s: %s (%s)", method ? method : "GET",
		     url, ferry_strerror(ret), why);
	return ret;
}

void tc_release_kept(struct tc_req *r)
{
	for (unsigned i = 0; i < r->nkept; i++)
		cr_expect_eq(ferry_http_buffer_release(r->t->client, r->kept[i]),
			     0);
	r->nkept = 0;
}

/* ------------------------------------------------------------------ */
/* The in-process server                                                */

#define TS_MAX_CONNS 256

struct ts_conn {
	struct ts *s;
	int fd;
	pthread_t thread;
	char buf[1 << 22];
	size_t len;
};

static pthread_mutex_t ts_lock = PTHREAD_MUTEX_INITIALIZER;

static bool ts_fill(struct ts_conn *c)
{
	ssize_t n;

	if (c->len == sizeof(c->buf))
		return false;
	n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (n <= 0)
		return false;
	c->len += (size_t)n;
	return true;
}

static void ts_consume(struct ts_conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

static char *ts_find(struct ts_conn *c, const char *what)
{
	return memmem(c->buf, c->len, what, strlen(what));
}

static bool ts_send(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return false;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return true;
}

static const char *ts_header(const char *head, const char *name, char *out,
			     size_t outlen)
{
	size_t nl = strlen(name);

	for (const char *l = strstr(head, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
		const char *p = l + 2;

		if (!strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *v = p + nl + 1, *e = strstr(v, "\r\n");

			while (*v == ' ')
				v++;
			snprintf(out, outlen, "%.*s", (int)(e - v), v);
			return out;
		}
	}
	return NULL;
}

/* Read the body into *body (malloc). false on EOF/garbage. */
static bool ts_read_body(struct ts_conn *c, const char *head, char **body,
			 size_t *blen, const char **framing)
{
	char v[64];

	*body = NULL;
	*blen = 0;
	*framing = "none";
	if (ts_header(head, "Transfer-Encoding", v, sizeof(v))) {
		*framing = "chunked";
		for (;;) {
			char *eol;
			unsigned long size;

			while (!(eol = ts_find(c, "\r\n")))
				if (!ts_fill(c))
					return false;
			size = strtoul(c->buf, NULL, 16);
			ts_consume(c, (size_t)(eol - c->buf) + 2);
			while (c->len < size + 2)
				if (!ts_fill(c))
					return false;
			if (size == 0) {
				ts_consume(c, 2);	/* no trailers sent */
				return true;
			}
			*body = realloc(*body, *blen + size + 1);
			memcpy(*body + *blen, c->buf, size);
			*blen += size;
			ts_consume(c, size + 2);
		}
	}
	if (ts_header(head, "Content-Length", v, sizeof(v))) {
		size_t n = strtoul(v, NULL, 10);

		*framing = "length";
		while (c->len < n)
			if (!ts_fill(c))
				return false;
		*body = malloc(n + 1);
		memcpy(*body, c->buf, n);
		*blen = n;
		ts_consume(c, n);
	}
	return true;
}

static bool ts_answer(struct ts_conn *c, const char *head, const char *body,
		      size_t blen, const char *framing)
{
	char method[32] = "", path[2048] = "", out[4096];
	const char *resp_body = "";
	size_t resp_len = 0;
	int status = 200;
	char extra[2200] = "";
	char conn[32] = "";
	bool close_after = ts_header(head, "Connection", conn, sizeof(conn)) &&
			   !strcasecmp(conn, "close");
	int n;

	sscanf(head, "%31s %2047s", method, path);
	if (!strcmp(path, "/echo")) {
		resp_body = body ? body : "";
		resp_len = blen;
		snprintf(extra, sizeof(extra), "X-Method: %s\r\nX-Body-Framing: %s\r\n",
			 method, framing);
	} else if (!strcmp(path, "/headers")) {
		resp_body = head;
		resp_len = strlen(head);
	} else if (!strncmp(path, "/redirect?", 10)) {
		status = atoi(path + 10);
		snprintf(extra, sizeof(extra), "Location: %s\r\n",
			 strchr(path, '=') + 1);
	} else if (!strcmp(path, "/method")) {
		resp_body = method;
		resp_len = strlen(method);
	} else {
		status = 404;
	}
	n = snprintf(out, sizeof(out),
		     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s%s\r\n", status,
		     resp_len, extra, close_after ? "Connection: close\r\n" : "");
	if (!ts_send(c->fd, out, (size_t)n))
		return false;
	if (strcmp(method, "HEAD") && !ts_send(c->fd, resp_body, resp_len))
		return false;
	return !close_after;
}

static void *ts_conn_main(void *arg)
{
	struct ts_conn *c = arg;

	for (;;) {
		char *end, *head, *body;
		size_t hlen, blen;
		const char *framing;
		bool go_on;

		while (!(end = ts_find(c, "\r\n\r\n")))
			if (!ts_fill(c))
				goto out;
		hlen = (size_t)(end - c->buf) + 4;
		head = strndup(c->buf, hlen);
		ts_consume(c, hlen);
		if (!ts_read_body(c, head, &body, &blen, &framing)) {
			free(head);
			free(body);
			break;
		}
		go_on = ts_answer(c, head, body, blen, framing);
		free(head);
		free(body);
		if (!go_on)
			break;
	}
out:
	shutdown(c->fd, SHUT_WR);
	return NULL;
}

static void *ts_main(void *arg)
{
	struct ts *s = arg;
	struct pollfd pf[2] = {
		{ .fd = s->lfd, .events = POLLIN },
		{ .fd = s->stop_pipe[0], .events = POLLIN },
	};

	for (;;) {
		struct ts_conn *c;
		int fd;

		if (poll(pf, 2, -1) < 0 || pf[1].revents)
			return NULL;
		fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		c = calloc(1, sizeof(*c));
		c->s = s;
		c->fd = fd;
		pthread_mutex_lock(&ts_lock);
		if (s->conns < TS_MAX_CONNS) {
			s->conn[s->conns++] = c;
			pthread_create(&c->thread, NULL, ts_conn_main, c);
		} else {
			close(fd);
			free(c);
		}
		pthread_mutex_unlock(&ts_lock);
	}
}

int ts_start(struct ts *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int one = 1;

	memset(s, 0, sizeof(*s));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0 || pipe2(s->stop_pipe, O_CLOEXEC) < 0)
		return -errno;
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(s->lfd, 512) < 0 ||
	    getsockname(s->lfd, (struct sockaddr *)&a, &len) < 0)
		return -errno;
	s->port = ntohs(a.sin_port);
	return -pthread_create(&s->thread, NULL, ts_main, s);
}

void ts_stop(struct ts *s)
{
	if (write(s->stop_pipe[1], "x", 1) < 0)
		return;
	pthread_join(s->thread, NULL);
	pthread_mutex_lock(&ts_lock);
	for (unsigned i = 0; i < s->conns; i++) {
		shutdown(s->conn[i]->fd, SHUT_RDWR);
		pthread_join(s->conn[i]->thread, NULL);
		close(s->conn[i]->fd);
		free(s->conn[i]);
		s->conn[i] = NULL;
	}
	s->conns = 0;
	pthread_mutex_unlock(&ts_lock);
	close(s->lfd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
}
