/*
 * test_tls_nginx.c - the https client against nginx (tests/servers/nginx.py
 * --tls, TLS 1.2, ECDHE-ECDSA-AES128-GCM-SHA256) with the build's test CA
 * and its ECDSA leaf: small and 16 MiB bodies checked against nginx's
 * manifest, by name and by IP SAN, another CA refused, and 500 requests
 * at once on up to 64 connections, every body verified.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"
#include "test_client_util.h"
#include "tls_fixture.h"

static struct fx_proc srv = FX_PROC_INIT;
static struct tc t;

static void down(void)
{
	if (t.loop)
		tc_teardown(&t);
	fx_stop(&srv);
}

/* nginx with the test leaf, and a client trusting only @ca; with @unix,
 * nginx listens on <dir>/nginx.sock too and the client connects there. */
static void up_with(const char *ca, unsigned conns, bool unix_sock)
{
	char dir[4096], sock[4200];
	const char *args[5];
	struct ferry_http_client_opts o = {
		.connect_timeout_ms = 10000,
		.read_timeout_ms = 10000,
		.max_conns_per_origin = conns,
	};
	int r = tf_certs(dir, sizeof(dir));

	if (r == FX_SKIP)
		cr_skip_test("no certificates (openssl missing at build time)");
	cr_assert_eq(r, 0, "FERRY_TLS_CERTS: %s", strerror(-r));
	args[0] = "--tls";
	args[1] = tf_cert("leaf.pem");
	args[2] = tf_cert("leaf.key");
	args[3] = unix_sock ? "--unix" : NULL;
	args[4] = NULL;
	r = fx_nginx_start_args(&srv, args);
	if (r == FX_SKIP)
		cr_skip_test("%s", srv.err);
	cr_assert_eq(r, 0, "nginx: %s", srv.err);
	o.ca_file = tf_cert(ca);
	if (unix_sock) {
		snprintf(sock, sizeof(sock), "%s/nginx.sock", srv.dir);
		o.unix_socket = sock;
	}
	tc_setup(&t, &o);
}

static void up(const char *ca, unsigned conns)
{
	up_with(ca, conns, false);
}

static const char *u(const char *host, const char *path)
{
	static char buf[4][256];
	static unsigned i;
	char *b = buf[i++ % 4];

	snprintf(b, 256, "https://%s:%d%s", host, srv.port, path);
	return b;
}

/* GET name from nginx by @host; check size and FNV-1a against manifest. */
static void get_checked(const char *host, const char *name)
{
	char path[64], why[256] = "";
	struct tc_req r;
	uint64_t fnv;
	size_t size;

	cr_assert_eq(fx_manifest_get(&srv, name, &size, &fnv), 0, "%s", name);
	snprintf(path, sizeof(path), "/%s", name);
	tc_req_init(&r, &t, 256);
	cr_assert_eq(tc_start(&r, u(host, path), NULL, why, sizeof(why)), 0,
		     "start: %s", why);
	cr_assert(tc_run(&t, 30000), "%s did not finish", path);
	cr_expect_eq(r.done_calls, 1);
	cr_expect_eq(r.result, 200, "%s: %d %s", path, r.result, r.detail);
	cr_expect_eq(r.nbody, size, "%s: %llu bytes, want %zu", path,
		     (unsigned long long)r.nbody, size);
	cr_expect_eq(r.fnv, fnv, "%s: checksum differs", path);
	tc_req_free(&r);
}

TestSuite(tls_nginx, .fini = down, .timeout = 60);

Test(tls_nginx, small_by_name)
{
	up("ca.pem", 0);
	get_checked("localhost", "small.txt");
}

Test(tls_nginx, small_by_ip_san)
{
	up("ca.pem", 0);
	get_checked("127.0.0.1", "small.txt");
}

Test(tls_nginx, sixteen_mib_checksum)
{
	up("ca.pem", 0);
	get_checked("localhost", "16m.bin");
}

/* The same nginx, but a client trusting another CA: refused. */
Test(tls_nginx, other_ca_refused)
{
	struct tc_req r;
	char why[256] = "";

	up("ca2.pem", 0);
	tc_req_init(&r, &t, 256);
	cr_assert_eq(tc_start(&r, u("localhost", "/small.txt"), NULL, why,
			      sizeof(why)), 0, "start: %s", why);
	cr_assert(tc_run(&t, 15000), "did not finish");
	cr_expect_eq(r.result, FERRY_ETLS_CERT, "%d %s", r.result, r.detail);
	cr_expect_eq(r.nbody, 0);
	tc_req_free(&r);
}

Test(tls_nginx, five_hundred_at_once, .timeout = 120)
{
	enum { N = 500 };
	static struct tc_req rs[N];
	const char *names[] = { "small.txt", "1k.bin", "64k.bin" };
	uint64_t fnv[3];
	size_t size[3];
	char why[256], path[64];
	struct ferry_http_client_stats st;

	up("ca.pem", 64);
	for (int k = 0; k < 3; k++)
		cr_assert_eq(fx_manifest_get(&srv, names[k], &size[k], &fnv[k]),
			     0, "%s", names[k]);
	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof(path), "/%s", names[i % 3]);
		tc_req_init(&rs[i], &t, 0);
		cr_assert_eq(tc_start(&rs[i], u("localhost", path), NULL, why,
				      sizeof(why)), 0, "%d: %s", i, why);
	}
	cr_assert(tc_run(&t, 100000), "%u left", t.pending);
	for (int i = 0; i < N; i++) {
		int k = i % 3;

		cr_expect_eq(rs[i].done_calls, 1, "%d", i);
		cr_expect_eq(rs[i].result, 200, "%d: %d %s", i, rs[i].result,
			     rs[i].detail);
		cr_expect_eq(rs[i].nbody, size[k], "%d: %llu bytes", i,
			     (unsigned long long)rs[i].nbody);
		cr_expect_eq(rs[i].fnv, fnv[k], "%d: checksum", i);
		tc_req_free(&rs[i]);
	}
	ferry_http_client_stats(t.client, &st);
	/* Many connections, hence many handshakes, each verified. */
	cr_expect_gt(st.conns_opened, 8, "%llu connections",
		     (unsigned long long)st.conns_opened);
}

/* TLS over a Unix socket: the URL's host is what TLS verifies (SNI and
 * name), the socket where the bytes go. */
static void up_unix(void)
{
	up_with("ca.pem", 0, true);
}

Test(tls_nginx, over_unix_socket)
{
	up_unix();
	get_checked("localhost", "small.txt");
	get_checked("localhost", "1m.bin");
}

Test(tls_nginx, over_unix_socket_verifies_the_url_host)
{
	struct tc_req r;

	up_unix();
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_get(&r, NULL, "https://wrong.example:443/small.txt"), 0);
	cr_assert(tc_run(&t, 30000));
	cr_expect_eq(r.result, FERRY_ETLS_CERT, "%d %s", r.result, r.detail);
	tc_req_free(&r);
}

/* An https:// proxy: TLS to the proxy (verified against its name), a
 * CONNECT inside it, and TLS to nginx inside that (verified against the
 * origin's name): two TLS transports stacked on a tunnel. */
Test(tls_nginx, through_an_https_proxy)
{
	static struct fx_proc prx = FX_PROC_INIT;
	char purl[64];
	const char *args[] = { "--tls", tf_cert("leaf.pem"), tf_cert("leaf.key"),
			       NULL };
	struct ferry_http_client_opts o = {
		.connect_timeout_ms = 10000,
		.read_timeout_ms = 10000,
	};
	int r;

	up("ca.pem", 0);
	tc_teardown(&t);
	r = fx_python_start(&prx, "proxy.py", args);
	if (r == FX_SKIP)
		cr_skip_test("python3 not installed");
	cr_assert_eq(r, 0, "proxy: %s", prx.err);
	snprintf(purl, sizeof(purl), "https://localhost:%d", prx.port);
	o.proxy = purl;
	o.ca_file = tf_cert("ca.pem");
	tc_setup(&t, &o);
	get_checked("localhost", "small.txt");
	get_checked("127.0.0.1", "1m.bin");
	tc_teardown(&t);
	fx_stop(&prx);
}
