/*
 * test_client_routes.c - the loop-side client through an HTTP proxy
 * (tests/servers/proxy.py, which counts what it saw) and to a server on
 * a Unix socket: routes, pooling, credentials, errors naming the hop.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/http.h"
#include "fixture.h"
#include "test_client_util.h"

static struct tc t;
static struct fx_proc ngx = FX_PROC_INIT, prx = FX_PROC_INIT;
static char stats[4200], tmp[4096];
static char proxy[64];

static void ngx_up(void)
{
	int r = fx_nginx_start(&ngx);

	if (r == FX_SKIP)
		cr_skip_test("nginx not installed");
	cr_assert_eq(r, 0, "nginx: %s", ngx.err);
}

/* proxy.py with @extra (NULL or one option) and its stats in tmp. */
static void proxy_up(const char *extra)
{
	const char *args[] = { "--stats", stats, extra, NULL };
	int r;

	cr_assert_eq(fx_tmpdir(tmp, sizeof(tmp)), 0);
	snprintf(stats, sizeof(stats), "%s/stats.json", tmp);
	r = fx_python_start(&prx, "proxy.py", args);
	if (r == FX_SKIP)
		cr_skip_test("python3 not installed");
	cr_assert_eq(r, 0, "proxy: %s", prx.err);
	snprintf(proxy, sizeof(proxy), "127.0.0.1:%d", prx.port);
}

/* A number from the proxy's stats ("conns", "forward", "connect"...). */
static int proxy_count(const char *key)
{
	char buf[8192], pat[64];
	FILE *f = fopen(stats, "r");
	size_t n;
	const char *p;

	cr_assert(f, "no stats file %s", stats);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	p = strstr(buf, pat);
	cr_assert(p, "no %s in %s", key, buf);
	return atoi(p + strlen(pat));
}

/* Whether the proxy saw this text anywhere (targets, auth values). */
static bool proxy_saw(const char *text)
{
	char buf[8192];
	FILE *f = fopen(stats, "r");
	size_t n;

	cr_assert(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

static void fini(void)
{
	if (t.loop)
		tc_teardown(&t);
	fx_stop(&prx);
	fx_stop(&ngx);
	if (tmp[0])
		fx_rmtree(tmp);
	tmp[0] = '\0';
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("no_proxy");
}

static void init(void)
{
	memset(&t, 0, sizeof(t));
}

TestSuite(client_proxy, .init = init, .fini = fini, .timeout = 60);

static char *ngx_url(char *buf, size_t len, const char *path)
{
	snprintf(buf, len, "http://127.0.0.1:%d%s", ngx.port, path);
	return buf;
}

static void get_ok(const char *url)
{
	struct tc_req r;

	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_get(&r, NULL, url), 0);
	cr_assert(tc_run(&t, 10000));
	cr_assert_eq(r.result, 200, "%d %s", r.result, r.detail);
	tc_req_free(&r);
}

/* http:// goes in absolute form, and both requests share one proxy
 * connection (the pool's origin is the proxy). */
Test(client_proxy, forward_absolute_form_pooled)
{
	struct ferry_http_client_opts o = { .proxy = proxy };
	char url[128], want[160];

	ngx_up();
	proxy_up(NULL);
	tc_setup(&t, &o);
	get_ok(ngx_url(url, sizeof(url), "/small.txt"));
	get_ok(ngx_url(url, sizeof(url), "/1k.bin"));
	cr_expect_eq(proxy_count("forward"), 2);
	cr_expect_eq(proxy_count("connect"), 0);
	cr_expect_eq(proxy_count("conns"), 1, "not pooled");
	/* libcurl's Proxy-Connection on each absolute-form request */
	cr_expect(proxy_saw("\"pconn\": [\"Keep-Alive\", \"Keep-Alive\"]"),
		  "no Proxy-Connection: Keep-Alive on both requests");
	snprintf(want, sizeof(want), "\"http://127.0.0.1:%d/small.txt\"",
		 ngx.port);
	cr_expect(proxy_saw(want), "no absolute-form target %s", want);
}

/* proxy_tunnel: CONNECT even for http://, the request inside it in
 * origin form. */
Test(client_proxy, tunnel_for_http)
{
	struct ferry_http_client_opts o = { .proxy = proxy,
					    .proxy_tunnel = true };
	char url[128];

	ngx_up();
	proxy_up(NULL);
	tc_setup(&t, &o);
	get_ok(ngx_url(url, sizeof(url), "/small.txt"));
	cr_expect_eq(proxy_count("connect"), 1);
	cr_expect_eq(proxy_count("forward"), 0);
	/* curl's CONNECT asks to keep the proxy connection */
	cr_expect(proxy_saw("\"pconn\": [\"Keep-Alive\"]"),
		  "the CONNECT had no Proxy-Connection: Keep-Alive");
}

/* The environment as curl reads it: lowercase http_proxy only; the
 * option overrides it; NO_PROXY skips it. */
Test(client_proxy, environment)
{
	struct ferry_http_client_opts none = { .proxy = "" };
	char url[128], env[96];

	ngx_up();
	proxy_up(NULL);
	snprintf(env, sizeof(env), "http://%s", proxy);
	setenv("HTTP_PROXY", env, 1);
	tc_setup(&t, NULL);
	get_ok(ngx_url(url, sizeof(url), "/small.txt"));
	cr_expect_eq(proxy_count("forward"), 0, "HTTP_PROXY was used");
	tc_teardown(&t);

	setenv("http_proxy", env, 1);
	tc_setup(&t, NULL);
	get_ok(ngx_url(url, sizeof(url), "/small.txt"));
	cr_expect_eq(proxy_count("forward"), 1);
	tc_teardown(&t);

	tc_setup(&t, &none);
	get_ok(ngx_url(url, sizeof(url), "/small.txt"));
	cr_expect_eq(proxy_count("forward"), 1, "proxy \"\" still proxied");
	tc_teardown(&t);

	setenv("no_proxy", "example.com, 127.0.0.0/8", 1);
	tc_setup(&t, NULL);
	get_ok(ngx_url(url, sizeof(url), "/small.txt"));
	cr_expect_eq(proxy_count("forward"), 1, "no_proxy ignored");
}

/* Credentials from the proxy URL go to the proxy, as Basic. */
Test(client_proxy, credentials_from_url)
{
	struct ferry_http_client_opts o = { 0 };
	char url[128], purl[128];

	ngx_up();
	proxy_up("--auth=us%er:pa:ss");
	snprintf(purl, sizeof(purl), "http://us%%25er:pa%%3Ass@%s", proxy);
	o.proxy = purl;
	tc_setup(&t, &o);
	get_ok(ngx_url(url, sizeof(url), "/small.txt"));
	/* base64("us%er:pa:ss") */
	cr_expect(proxy_saw("Basic dXMlZXI6cGE6c3M="));
	cr_expect_eq(proxy_count("denied"), 0);
}

/* A CONNECT the proxy answers 407: FERRY_EPROXY, the status in words. */
Test(client_proxy, connect_407_is_an_error)
{
	struct ferry_http_client_opts o = { .proxy = proxy,
					    .proxy_tunnel = true };
	struct tc_req r;
	char url[128];

	ngx_up();
	proxy_up("--auth=a:b");
	tc_setup(&t, &o);
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_get(&r, NULL, ngx_url(url, sizeof(url), "/small.txt")), 0);
	cr_assert(tc_run(&t, 10000));
	cr_expect_eq(r.result, FERRY_EPROXY, "%d %s", r.result, r.detail);
	cr_expect(strstr(r.detail, "407") && strstr(r.detail, "proxy"),
		  "%s", r.detail);
	tc_req_free(&r);
}

/* Errors name the hop: the proxy's name, the proxy's port. */
Test(client_proxy, errors_name_the_hop)
{
	struct ferry_http_client_opts o1 = { .proxy = "nonexistent.invalid:3128" };
	struct ferry_http_client_opts o2 = { .proxy = "127.0.0.1:1" };
	struct tc_req r;

	tc_setup(&t, &o1);
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_get(&r, NULL, "http://example.com/"), 0);
	cr_assert(tc_run(&t, 20000));
	cr_expect_eq(r.result, FERRY_EPROXY_DNS, "%d %s", r.result, r.detail);
	cr_expect(strstr(r.detail, "resolving proxy nonexistent.invalid"),
		  "%s", r.detail);
	tc_req_free(&r);
	tc_teardown(&t);

	tc_setup(&t, &o2);
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_get(&r, NULL, "http://example.com/"), 0);
	cr_assert(tc_run(&t, 10000));
	cr_expect_eq(r.result, -ECONNREFUSED, "%d %s", r.result, r.detail);
	cr_expect(strstr(r.detail, "connect to proxy 127.0.0.1:1"), "%s",
		  r.detail);
	tc_req_free(&r);
}

/* A proxy option that does not parse fails the client's creation. */
Test(client_proxy, bad_proxy_option)
{
	struct ferry_loop *loop;
	struct ferry_http_client *c;
	struct ferry_http_client_opts o = { .proxy = "socks5://127.0.0.1:1" };

	cr_assert_eq(ferry_loop_create(&loop, NULL, NULL, 0), 0);
	cr_expect_eq(ferry_http_client_create(loop, &o, &c), FERRY_EINVAL);
	ferry_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */
/* Unix sockets                                                          */

/* nginx on a Unix socket too: sock gets its path. */
static char sock[4200];

static void ngx_unix_up(void)
{
	const char *args[] = { "--unix", NULL };
	int r = fx_nginx_start_args(&ngx, args);

	if (r == FX_SKIP)
		cr_skip_test("nginx not installed");
	cr_assert_eq(r, 0, "nginx: %s", ngx.err);
	snprintf(sock, sizeof(sock), "%s/nginx.sock", ngx.dir);
}

TestSuite(client_unix, .init = init, .fini = fini, .timeout = 60);

/* The client's socket: the URL's host is never resolved, only named in
 * Host; two requests, one connection (pooled per socket path). */
Test(client_unix, client_option_pooled)
{
	struct ferry_http_client_opts o = { 0 };

	ngx_unix_up();
	o.unix_socket = sock;
	tc_setup(&t, &o);
	get_ok("http://nonexistent.invalid/small.txt");
	get_ok("http://other.invalid:8080/1k.bin");
	cr_expect_eq(fx_nginx_wait_requests(&ngx, 2, 5000), 2);
	cr_expect_eq(fx_count_connections(&ngx), 1, "not pooled per socket");
}

/* A request's own socket wins over the client's (none here) and over a
 * proxy. */
Test(client_unix, request_option_over_proxy)
{
	struct ferry_http_client_opts o = { .proxy = "127.0.0.1:1" };
	struct ferry_http_request_opts ro = { .cb = &tc_callbacks };
	struct tc_req r;
	char why[256] = "";

	ngx_unix_up();
	tc_setup(&t, &o);
	tc_req_init(&r, &t, 0);
	ro.unix_socket = sock;
	cr_assert_eq(tc_start(&r, "http://x.invalid/small.txt", &ro, why,
			      sizeof(why)), 0, "%s", why);
	cr_assert(tc_run(&t, 10000));
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	tc_req_free(&r);
}

/* A socket path where nothing listens: the error names the path. */
Test(client_unix, missing_socket)
{
	struct ferry_http_client_opts o = { .unix_socket = "/nonexistent/x.sock" };
	struct tc_req r;

	tc_setup(&t, &o);
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_get(&r, NULL, "http://localhost/"), 0);
	cr_assert(tc_run(&t, 10000));
	cr_expect_eq(r.result, -ENOENT, "%d %s", r.result, r.detail);
	cr_expect(strstr(r.detail, "/nonexistent/x.sock"), "%s", r.detail);
	tc_req_free(&r);
}

/* An abstract socket (Linux): a one-thread server of our own answers
 * every request on it with "ok", keep-alive. */
struct abs_srv {
	int lfd;
	pthread_t th;
	char name[64];
	int conns;
};

static void *abs_serve(void *arg)
{
	struct abs_srv *s = arg;
	int fd;

	while ((fd = accept(s->lfd, NULL, NULL)) >= 0) {
		char buf[4096];
		size_t have = 0;
		ssize_t n;

		s->conns++;
		while ((n = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0) {
			have += (size_t)n;
			buf[have] = '\0';
			if (strstr(buf, "\r\n\r\n")) {
				static const char ok[] = "HTTP/1.1 200 OK\r\n"
					"Content-Length: 2\r\n\r\nok";

				if (write(fd, ok, sizeof(ok) - 1) < 0)
					break;
				have = 0;
			}
		}
		close(fd);
	}
	return NULL;
}

Test(client_unix, abstract_socket)
{
	struct abs_srv s = { 0 };
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct ferry_http_client_opts o = { .unix_socket_abstract = true };
	size_t n;

	snprintf(s.name, sizeof(s.name), "ferry-test-%d", (int)getpid());
	n = strlen(s.name);
	memcpy(a.sun_path + 1, s.name, n);
	s.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(s.lfd, 0);
	cr_assert_eq(bind(s.lfd, (struct sockaddr *)&a,
			  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)),
		     0, "bind: %s", strerror(errno));
	cr_assert_eq(listen(s.lfd, 8), 0);
	cr_assert_eq(pthread_create(&s.th, NULL, abs_serve, &s), 0);
	o.unix_socket = s.name;
	tc_setup(&t, &o);
	get_ok("http://abstract.invalid/a");
	get_ok("http://abstract.invalid/b");
	tc_teardown(&t);
	shutdown(s.lfd, SHUT_RDWR);
	pthread_join(s.th, NULL);
	close(s.lfd);
	cr_expect_eq(s.conns, 1, "%d connections", s.conns);
}
