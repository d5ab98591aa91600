/*
 * test_tls.c - the https client against real TLS peers: openssl s_server
 * with certificates from tests/servers/certs.sh (trusted, IP SAN, RSA
 * chain through an intermediate, expired, wrong name, self-signed,
 * unknown issuer, not yet valid, bad signature), a TLS 1.3-only server,
 * plain HTTP and garbage on the TLS port, a peer that stalls the
 * handshake; session resumption, a large download with a checksum, and
 * many requests at once; the cipher order, the verify cache, and IPv6
 * literals.
 */
#include <bearssl.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "fixture.h"
#include "test_client_util.h"
#include "tls.h"
#include "tls_fixture.h"

static struct fx_proc srv = FX_PROC_INIT;
static struct tc t;

static void down(void)
{
	if (t.loop)
		tc_teardown(&t);
	fx_stop(&srv);
}

static void need_certs(void)
{
	char dir[4096];
	int r = tf_certs(dir, sizeof(dir));

	if (r == FX_SKIP)
		cr_skip_test("no certificates (openssl missing at build time)");
	cr_assert_eq(r, 0, "FERRY_TLS_CERTS: %s", strerror(-r));
}

/* s_server with cert/key answering GET with its status page (-www). */
static void www_up(const char *cert, const char *key, const char *const *extra)
{
	const char *args[16] = { "-www" };
	unsigned n = 1;
	int r;

	need_certs();
	for (unsigned i = 0; extra && extra[i]; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	r = tf_s_server(&srv, cert, key, NULL, args);
	if (r == FX_SKIP)
		cr_skip_test("%s", srv.err);
	cr_assert_eq(r, 0, "s_server: %s", srv.err);
}

/* A client trusting @ca (a file of the certificate dir; NULL: the system
 * bundle), with the other options of @base if given. */
static void client_up_with(const char *ca, bool insecure,
			   const struct ferry_http_client_opts *base)
{
	struct ferry_http_client_opts o = { 0 };

	if (base)
		o = *base;
	o.ca_file = ca ? tf_cert(ca) : NULL;
	o.tls_insecure_skip_verify = insecure;
	o.connect_timeout_ms = 5000;
	o.read_timeout_ms = 5000;
	tc_setup(&t, &o);
}

static void client_up(const char *ca, bool insecure)
{
	client_up_with(ca, insecure, NULL);
}

static const char *u(const char *host, const char *path)
{
	static char buf[4][256];
	static unsigned i;
	char *b = buf[i++ % 4];

	snprintf(b, 256, "https://%s:%d%s", host, srv.port, path);
	return b;
}

/* One GET, run to its end; r is initialised here. */
static void get(struct tc_req *r, const char *url)
{
	char why[256] = "";
	int ret;

	tc_req_init(r, &t, 1 << 16);
	ret = tc_start(r, url, NULL, why, sizeof(why));
	cr_assert_eq(ret, 0, "start %s: %s", url, why);
	cr_assert(tc_run(&t, 15000), "%s did not finish", url);
	cr_assert_eq(r->done_calls, 1);
}

static void expect_page(struct tc_req *r)
{
	cr_expect_eq(r->result, 200, "result %d (%s)", r->result, r->detail);
	cr_expect_neq(r->body && strstr(r->body, "TLSv1.2"), 0,
		      "no TLSv1.2 in the page: %.200s", r->body ? r->body : "");
}

static void expect_err(struct tc_req *r, int code, const char *word)
{
	cr_expect_eq(r->result, code, "result %d %s, want %d %s (%s)",
		     r->result, ferry_strerrorname(r->result), code,
		     ferry_strerrorname(code), r->detail);
	cr_expect_neq(strstr(r->detail, word), NULL, "detail: %s", r->detail);
}

TestSuite(tls, .fini = down, .timeout = 60);

Test(tls, get_with_ca_file)
{
	struct tc_req r;

	www_up("leaf.pem", "leaf.key", NULL);
	client_up("ca.pem", false);
	get(&r, u("localhost", "/"));
	expect_page(&r);
	tc_req_free(&r);
}

Test(tls, ip_literal_san_ok)
{
	struct tc_req r;

	www_up("leaf.pem", "leaf.key", NULL);
	client_up("ca.pem", false);
	get(&r, u("127.0.0.1", "/"));
	expect_page(&r);
	tc_req_free(&r);
}

Test(tls, ip_literal_san_mismatch)
{
	struct tc_req r;

	www_up("ipother.pem", "ipother.key", NULL);
	client_up("ca.pem", false);
	get(&r, u("127.0.0.1", "/"));
	expect_err(&r, FERRY_ETLS_CERT, "X509_BAD_SERVER_NAME");
	tc_req_free(&r);
	/* The same certificate is fine by name. */
	get(&r, u("localhost", "/"));
	expect_page(&r);
	tc_req_free(&r);
}

/* s_server arguments: send inter.pem after the leaf. */
static const char *const *inter_chain(void)
{
	static const char *extra[] = { "-cert_chain", NULL, NULL };

	extra[1] = tf_cert("inter.pem");
	return extra;
}

Test(tls, rsa_chain_through_intermediate)
{
	struct tc_req r;

	www_up("rsa.pem", "rsa.key", inter_chain());
	client_up("ca.pem", false);
	get(&r, u("localhost", "/"));
	expect_page(&r);
	tc_req_free(&r);
}

static void bad_cert_extra(const char *name, const char *host,
			   const char *why, const char *const *extra)
{
	char cert[64], key[64];
	struct tc_req r;

	snprintf(cert, sizeof(cert), "%s.pem", name);
	snprintf(key, sizeof(key), "%s.key", name);
	www_up(cert, key, extra);
	client_up("ca.pem", false);
	get(&r, u(host, "/"));
	expect_err(&r, FERRY_ETLS_CERT, why);
	tc_req_free(&r);
	tc_teardown(&t);
	/* Explicitly insecure: the same server is accepted. */
	client_up(NULL, true);
	get(&r, u(host, "/"));
	expect_page(&r);
	tc_req_free(&r);
}

static void bad_cert(const char *name, const char *host, const char *why)
{
	bad_cert_extra(name, host, why, NULL);
}

Test(tls, expired)
{
	bad_cert("expired", "localhost", "X509_EXPIRED");
}

Test(tls, not_yet_valid)
{
	bad_cert("future", "localhost", "X509_EXPIRED");
}

Test(tls, bad_signature)
{
	bad_cert_extra("badsig", "localhost", "X509_BAD_SIGNATURE",
		       inter_chain());
}

Test(tls, wrong_name)
{
	bad_cert("other", "localhost", "X509_BAD_SERVER_NAME");
}

Test(tls, self_signed)
{
	bad_cert("self", "localhost", "X509_NOT_TRUSTED");
}

Test(tls, unknown_issuer)
{
	bad_cert("unknown", "127.0.0.1", "X509_NOT_TRUSTED");
}

Test(tls, system_bundle_does_not_trust_private_ca)
{
	struct tc_req r;

	www_up("leaf.pem", "leaf.key", NULL);
	client_up(NULL, false);	/* /etc/ssl/certs/ca-certificates.crt */
	get(&r, u("localhost", "/"));
	expect_err(&r, FERRY_ETLS_CERT, "X509_NOT_TRUSTED");
	tc_req_free(&r);
}

Test(tls, bad_ca_file_refused_at_start)
{
	struct tc_req r;
	char why[256] = "";
	struct ferry_http_client_opts o = { .ca_file = "/nonexistent/ca.pem" };
	int ret;

	www_up("leaf.pem", "leaf.key", NULL);
	tc_setup(&t, &o);
	tc_req_init(&r, &t, 0);
	ret = tc_start(&r, u("localhost", "/"), NULL, why, sizeof(why));
	cr_expect_eq(ret, FERRY_ETLS_CA, "%d %s", ret, why);
	cr_expect_neq(strstr(why, "/nonexistent/ca.pem"), NULL, "%s", why);
	/* A key file holds no certificate. */
	tc_teardown(&t);
	o.ca_file = tf_cert("leaf.key");
	tc_setup(&t, &o);
	ret = tc_start(&r, u("localhost", "/"), NULL, why, sizeof(why));
	cr_expect_eq(ret, FERRY_ETLS_CA, "%d %s", ret, why);
	tc_req_free(&r);
}

/*
 * Write ca.pem again as @path: with CRLF line endings if @crlf, without
 * the newline after its last line if @cut_last_eol, and with its base64
 * lines wrapped at @width columns if @width is not 0.
 */
static void ca_variant(const char *path, bool crlf, bool cut_last_eol,
		       size_t width)
{
	FILE *in = fopen(tf_cert("ca.pem"), "rb");
	FILE *out = fopen(path, "wb");
	char text[16384], line[256];
	size_t col = 0;

	cr_assert(in && out, "%s: %s", path, strerror(errno));
	text[0] = 0;
	while (fgets(line, sizeof(line), in)) {
		size_t n = strcspn(line, "\n");

		if (!width || !strncmp(line, "-----", 5)) {
			if (col)
				strcat(text, "\n");
			col = 0;
			strncat(text, line, n);
			strcat(text, "\n");
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			size_t end = strlen(text);

			text[end] = line[i];
			text[end + 1] = '\0';
			if (++col == width) {
				strcat(text, "\n");
				col = 0;
			}
		}
	}
	cr_assert(strlen(text) > 0 && strlen(text) < sizeof(text) - 256);
	if (cut_last_eol)
		text[strlen(text) - 1] = 0;
	for (size_t i = 0; text[i]; i++) {
		if (crlf && text[i] == '\n')
			fputc('\r', out);
		fputc(text[i], out);
	}
	fclose(in);
	cr_assert_eq(fclose(out), 0);
}

/* Found by tests/fuzz/fuzz_pem: BearSSL 0.6's PEM decoder names an object
 * "CERTIFICATE-----" when its BEGIN line ends with CRLF, reports an
 * object's end only after a newline, and takes a line break in base64
 * text only between 4-character groups; so a CA file with Windows line
 * endings, whose last line had no newline, or wrapped at another width
 * than a multiple of 4, loaded no certificate. */
static void get_with_ca_variant(bool crlf, bool cut_last_eol, size_t width)
{
	struct ferry_http_client_opts o = { 0 };
	char path[] = "/tmp/ferry-ca-XXXXXX";
	struct tc_req r;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	close(fd);
	ca_variant(path, crlf, cut_last_eol, width);
	www_up("leaf.pem", "leaf.key", NULL);
	o.ca_file = path;
	o.connect_timeout_ms = 5000;
	o.read_timeout_ms = 5000;
	tc_setup(&t, &o);
	get(&r, u("localhost", "/"));
	unlink(path);
	expect_page(&r);
	tc_req_free(&r);
}

Test(tls, ca_file_with_crlf_line_endings)
{
	get_with_ca_variant(true, false, 0);
}

Test(tls, ca_file_without_final_newline)
{
	get_with_ca_variant(false, true, 0);
}

Test(tls, ca_file_wrapped_at_65_and_at_1_column)
{
	get_with_ca_variant(false, false, 65);
	tc_teardown(&t);
	memset(&t, 0, sizeof(t));
	fx_stop(&srv);
	get_with_ca_variant(true, false, 1);
}

Test(tls, tls13_only_server)
{
	const char *extra[] = { "-tls1_3", NULL };
	struct tc_req r;

	www_up("leaf.pem", "leaf.key", extra);
	client_up("ca.pem", false);
	get(&r, u("localhost", "/"));
	expect_err(&r, FERRY_ETLS_HANDSHAKE, "fatal alert 70 (protocol_version");
	tc_req_free(&r);
}

/* A server whose only suite BearSSL lacks (ARIA) answers the hello with a
 * handshake_failure alert. */
Test(tls, no_common_cipher_suite)
{
	const char *extra[] = { "-cipher", "ECDHE-ECDSA-ARIA128-GCM-SHA256",
				"-tls1_2", NULL };
	struct tc_req r;

	www_up("leaf.pem", "leaf.key", extra);
	client_up("ca.pem", false);
	get(&r, u("localhost", "/"));
	expect_err(&r, FERRY_ETLS_HANDSHAKE, "fatal alert 40 (handshake_failure");
	tc_req_free(&r);
}

static void peer(const char *mode)
{
	int r;

	need_certs();
	r = tf_peer(&srv, mode);
	if (r == FX_SKIP)
		cr_skip_test("%s", srv.err);
	cr_assert_eq(r, 0, "peer: %s", srv.err);
}

Test(tls, plain_http_on_tls_port)
{
	struct tc_req r;

	peer("plain");
	client_up("ca.pem", false);
	get(&r, u("localhost", "/"));
	/* Issue 10: said "no common protocol version" */
	expect_err(&r, FERRY_ETLS_HANDSHAKE,
		   "did not answer with TLS (it sent \"HTTP/1.1 400 Bad Reque");
	expect_err(&r, FERRY_ETLS_HANDSHAKE, "plain HTTP on this port?");
	tc_req_free(&r);
}

Test(tls, garbage)
{
	struct tc_req r;

	peer("garbage");
	client_up("ca.pem", false);
	get(&r, u("localhost", "/"));
	expect_err(&r, FERRY_ETLS_HANDSHAKE, "did not answer with TLS");
	tc_req_free(&r);
}

/* The line the "hello" peer printed for the ClientHello it read, without
 * its newline; the peer prints it before it closes, so it is there once
 * the request has failed. */
static void hello_line(char *line, size_t cap)
{
	struct pollfd pfd = { .fd = srv.out_fd, .events = POLLIN };
	size_t n = 0;

	while (n + 1 < cap && (n == 0 || line[n - 1] != '\n')) {
		cr_assert_eq(poll(&pfd, 1, 10000), 1, "no HELLO line");
		ssize_t k = read(srv.out_fd, line + n, cap - 1 - n);
		cr_assert_gt(k, 0, "no HELLO line");
		n += (size_t)k;
	}
	line[n] = '\0';
	line[strcspn(line, "\n")] = '\0';
}

/* The output buffer holds only a 4 KiB record, but the ClientHello must
 * not ask for a 4 KiB max_fragment_length (extension 1): a server that
 * honours it cuts every record of a download to 4 KiB. */
Test(tls, no_max_fragment_length_asked)
{
	char line[512], words[520];
	struct tc_req r;

	peer("hello");
	client_up("ca.pem", false);
	get(&r, u("localhost", "/"));
	cr_expect_lt(r.result, 0, "the peer answers no ClientHello");
	tc_req_free(&r);
	hello_line(line, sizeof(line));
	snprintf(words, sizeof(words), "%s ", line);
	/* Parsed for real: SNI (0) and ALPN (16) are there. */
	cr_expect_neq(strstr(words, " 0 "), NULL, "%s", line);
	cr_expect_neq(strstr(words, " 16 "), NULL, "%s", line);
	cr_expect_null(strstr(words, " 1 "), "%s", line);
}

Test(tls, stalled_handshake_times_out)
{
	struct ferry_http_client_opts o = {
		.ca_file = tf_cert("ca.pem"),
		.connect_timeout_ms = 300,
	};
	struct tc_req r;
	uint64_t t0;

	peer("stall");
	tc_setup(&t, &o);
	t0 = ferry_time_now();
	get(&r, u("localhost", "/"));
	expect_err(&r, FERRY_ECONNECT_TIMEOUT, "handshake");
	cr_expect_geq(ferry_time_now() - t0, 250ull * 1000 * 1000);
	cr_expect_lt(ferry_time_now() - t0, 10000ull * 1000 * 1000); /* hang guard */
	tc_req_free(&r);
}

Test(tls, session_resumed)
{
	struct tc_req r;

	www_up("leaf.pem", "leaf.key", NULL);
	client_up("ca.pem", false);
	get(&r, u("localhost", "/"));
	expect_page(&r);
	cr_expect_neq(r.body && strstr(r.body, "New, TLSv1.2"), 0,
		      "first: %.300s", r.body ? r.body : "");
	tc_req_free(&r);
	/* -www closes each connection: the next one is new, and resumes. */
	get(&r, u("localhost", "/"));
	expect_page(&r);
	cr_expect_neq(r.body && strstr(r.body, "Reused, TLSv1.2"), 0,
		      "second: %.300s", r.body ? r.body : "");
	tc_req_free(&r);
}

Test(tls, large_download_checksum)
{
	char dir[4096], path[4200];
	unsigned char *data;
	size_t size = 3 * 1024 * 1024 + 1234;
	const char *args[] = { "-WWW", NULL };
	struct tc_req r;
	FILE *f;
	int ret;

	need_certs();
	cr_assert_eq(fx_tmpdir(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/big.bin", dir);
	data = malloc(size);
	cr_assert(data);
	for (size_t i = 0; i < size; i++)
		data[i] = (unsigned char)((i * 2654435761u) >> 13);
	f = fopen(path, "wb");
	cr_assert(f);
	cr_assert_eq(fwrite(data, 1, size, f), size);
	fclose(f);
	ret = tf_s_server(&srv, "leaf.pem", "leaf.key", dir, args);
	if (ret == FX_SKIP)
		cr_skip_test("%s", srv.err);
	cr_assert_eq(ret, 0, "s_server: %s", srv.err);
	client_up("ca.pem", false);
	get(&r, u("localhost", "/big.bin"));
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.nbody, size, "%llu bytes", (unsigned long long)r.nbody);
	cr_expect_eq(r.fnv, fx_fnv1a64(FX_FNV1A64_INIT, data, size));
	tc_req_free(&r);
	free(data);
	fx_rmtree(dir);
}

Test(tls, many_at_once, .timeout = 120)
{
	enum { N = 120 };
	static struct tc_req rs[N];
	char why[256];

	www_up("leaf.pem", "leaf.key", NULL);
	client_up("ca.pem", false);
	for (int i = 0; i < N; i++) {
		tc_req_init(&rs[i], &t, 4096);
		cr_assert_eq(tc_start(&rs[i], u("localhost", "/"), NULL, why,
				      sizeof(why)), 0, "%s", why);
	}
	cr_assert(tc_run(&t, 90000), "%u left", t.pending);
	for (int i = 0; i < N; i++) {
		cr_expect_eq(rs[i].result, 200, "%d: %d %s", i, rs[i].result,
			     rs[i].detail);
		tc_req_free(&rs[i]);
	}
}

/* ------------------------------------------------------------------ */
/* Keep-alive, request bodies and truncation, against tls_server.py     */

static void https_up(const struct ferry_http_client_opts *extra)
{
	struct ferry_http_client_opts o = {
		.connect_timeout_ms = 5000,
		.read_timeout_ms = 10000,
	};
	int r;

	need_certs();
	if (extra)
		o = *extra;
	o.ca_file = tf_cert("ca.pem");
	r = tf_https(&srv, "leaf.pem", "leaf.key");
	if (r == FX_SKIP)
		cr_skip_test("%s", srv.err);
	cr_assert_eq(r, 0, "https peer: %s", srv.err);
	tc_setup(&t, &o);
}

static uint64_t pattern_fnv(size_t n)
{
	uint64_t h = FX_FNV1A64_INIT;

	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)(i % 251);

		h = fx_fnv1a64(h, &b, 1);
	}
	return h;
}

Test(tls, keep_alive_reuses_the_connection)
{
	struct tc_req r;
	char first[16] = "";

	https_up(NULL);
	for (int i = 0; i < 5; i++) {
		get(&r, u("localhost", "/n/70000"));
		cr_expect_eq(r.result, 200, "%d: %d %s", i, r.result, r.detail);
		cr_expect_eq(r.nbody, 70000);
		cr_expect_eq(r.fnv, pattern_fnv(70000));
		if (i == 0)
			snprintf(first, sizeof(first), "%s", r.xconn);
		else
			cr_expect_str_eq(r.xconn, first, "request %d", i);
		cr_expect_eq(r.reused, i > 0, "request %d", i);
		tc_req_free(&r);
	}
}

/* POST 300000 bytes in records of at most @record bytes (0: default). */
static void post_echoed(unsigned record)
{
	size_t n = 300000;
	char *body = malloc(n);
	struct ferry_http_request_opts o = { .method = "POST" };
	struct ferry_http_client_opts co = {
		.connect_timeout_ms = 5000,
		.read_timeout_ms = 10000,
		.tls_send_record_max = record,
	};
	struct tc_req r;
	char why[256];

	cr_assert(body);
	for (size_t i = 0; i < n; i++)
		body[i] = (char)(i % 251);
	https_up(&co);
	o.body = body;
	o.body_len = n;
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_start(&r, u("localhost", "/echo"), &o, why,
			      sizeof(why)), 0, "%s", why);
	cr_assert(tc_run(&t, 15000));
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.nbody, n);
	cr_expect_eq(r.fnv, pattern_fnv(n));
	tc_req_free(&r);
	free(body);
}

Test(tls, post_buffer_body_echoed)
{
	post_echoed(0);
}

/* The smallest and the largest send records: the body and the request
 * head go out in many records, or in a few full-size ones. */
Test(tls, post_small_send_records)
{
	post_echoed(1024);
}

Test(tls, post_full_size_send_records)
{
	post_echoed(16384);
}

/* The request body producer's state (tc's callbacks own ctx). */
static struct {
	char piece[7000];
	unsigned left;
} prod;

static int produce(void *ctx, struct ferry_http_request *req,
		   const void **data, size_t *len)
{
	(void)ctx;
	(void)req;
	if (!prod.left)
		return 0;
	prod.left--;
	*data = prod.piece;
	*len = sizeof(prod.piece);
	return 1;
}

Test(tls, post_chunked_producer_echoed)
{
	struct ferry_http_request_opts o = {
		.method = "POST",
		.body_fn = produce,
		.body_fn_len = -1,
	};
	struct tc_req r;
	char why[256];

	memset(prod.piece, 'z', sizeof(prod.piece));
	prod.left = 20;
	https_up(NULL);
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_start(&r, u("localhost", "/echo"), &o, why,
			      sizeof(why)), 0, "%s", why);
	cr_assert(tc_run(&t, 15000));
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.nbody, 20 * sizeof(prod.piece));
	tc_req_free(&r);
}

Test(tls, close_without_close_notify_is_truncation)
{
	struct tc_req r;

	https_up(NULL);
	get(&r, u("localhost", "/trunc"));
	expect_err(&r, FERRY_ETLS_TRUNCATED, "close_notify");
	tc_req_free(&r);
}

/* Closing the client ends its idle TLS connection with close_notify: the
 * server counts a clean close, not a truncation. */
Test(tls, close_sends_close_notify)
{
	struct ferry_http_client_opts o = {
		.connect_timeout_ms = 5000,
		.read_timeout_ms = 10000,
	};
	char seen[64] = "";
	struct tc_req r;

	https_up(NULL);
	get(&r, u("localhost", "/n/100"));
	cr_assert_eq(r.result, 200, "%d %s", r.result, r.detail);
	tc_req_free(&r);
	tc_teardown(&t);	/* the pooled connection closes */
	o.ca_file = tf_cert("ca.pem");
	tc_setup(&t, &o);
	/* The server notices the close on its own thread: ask a few times. */
	for (int i = 0; i < 100; i++) {
		get(&r, u("localhost", "/closes"));
		cr_assert_eq(r.result, 200, "%d %s", r.result, r.detail);
		snprintf(seen, sizeof(seen), "%.*s", (int)r.nbody,
			 r.body ? r.body : "");
		tc_req_free(&r);
		if (strcmp(seen, "clean 0 unclean 0"))
			break;
		usleep(20 * 1000);
	}
	cr_expect_str_eq(seen, "clean 1 unclean 0");
}

Test(tls, many_keep_alive_at_once, .timeout = 120)
{
	enum { N = 200 };
	static struct tc_req rs[N];
	struct ferry_http_client_opts o = {
		.max_conns_per_origin = 16,
		.connect_timeout_ms = 10000,
		.read_timeout_ms = 20000,
	};
	struct ferry_http_client_stats st;
	char why[256];

	https_up(&o);
	for (int i = 0; i < N; i++) {
		tc_req_init(&rs[i], &t, 0);
		cr_assert_eq(tc_start(&rs[i], u("localhost", "/n/5000"), NULL,
				      why, sizeof(why)), 0, "%s", why);
	}
	cr_assert(tc_run(&t, 90000), "%u left", t.pending);
	for (int i = 0; i < N; i++) {
		cr_expect_eq(rs[i].result, 200, "%d: %d %s", i, rs[i].result,
			     rs[i].detail);
		cr_expect_eq(rs[i].fnv, pattern_fnv(5000), "%d", i);
		tc_req_free(&rs[i]);
	}
	ferry_http_client_stats(t.client, &st);
	cr_expect_leq(st.conns_opened, 16, "%llu connections",
		      (unsigned long long)st.conns_opened);
}

Test(tls, pause_and_kept_buffers)
{
	struct tc_req r;
	char why[256];

	https_up(NULL);
	tc_req_init(&r, &t, 0);
	r.pause_every = 2;
	r.keep_bufs = true;
	r.keep_limit = 16;
	cr_assert_eq(tc_start(&r, u("localhost", "/n/500000"), NULL, why,
			      sizeof(why)), 0, "%s", why);
	cr_assert(tc_run(&t, 15000));
	cr_expect_eq(r.result, 200, "%d %s", r.result, r.detail);
	cr_expect_eq(r.nbody, 500000);
	cr_expect_eq(r.fnv, pattern_fnv(500000));
	cr_expect_eq(r.nkept, 16);
	tc_release_kept(&r);
	tc_req_free(&r);
}

Test(tls, ca_dir)
{
	char dir[4096];
	struct ferry_http_client_opts o = { 0 };
	struct tc_req r;

	www_up("leaf.pem", "leaf.key", NULL);
	cr_assert_eq(tf_certs(dir, sizeof(dir)), 0);
	o.ca_dir = dir;
	tc_setup(&t, &o);
	get(&r, u("localhost", "/"));
	expect_page(&r);
	tc_req_free(&r);
}

Test(tls, cancel_during_handshake)
{
	struct ferry_http_client_opts o = {
		.ca_file = tf_cert("ca.pem"),
		.connect_timeout_ms = 200,
	};
	struct ferry_http_client_stats st;
	struct tc_req r;
	char why[256];

	peer("stall");
	tc_setup(&t, &o);
	tc_req_init(&r, &t, 0);
	cr_assert_eq(tc_start(&r, u("localhost", "/"), NULL, why,
			      sizeof(why)), 0, "%s", why);
	tc_spin(&t, 50);
	cr_assert_eq(r.done_calls, 0);
	ferry_http_request_cancel(r.req);
	cr_assert(tc_run(&t, 2000));
	cr_expect_eq(r.result, FERRY_ECANCELED, "%d %s", r.result, r.detail);
	/* The half-open connection still ends by its handshake deadline. */
	tc_spin(&t, 400);
	ferry_http_client_stats(t.client, &st);
	cr_expect_eq(st.conns, 0, "%u connections left", st.conns);
	tc_req_free(&r);
}

/* ------------------------------------------------------------------ */
/* Cipher order (s_server -www names the suite it chose)                 */

static void cipher_is(enum ferry_tls_ciphers order, const char *cert,
		      const char *key, const char *const *extra,
		      const char *want)
{
	struct ferry_http_client_opts o = { .tls_ciphers = order };
	char line[128];
	struct tc_req r;

	snprintf(line, sizeof(line), "Cipher is %s", want);
	www_up(cert, key, extra);
	client_up_with("ca.pem", false, &o);
	get(&r, u("localhost", "/"));
	expect_page(&r);
	cr_expect_neq(r.body && strstr(r.body, line), 0, "want \"%s\": %.300s",
		      line, r.body ? r.body : "");
	tc_req_free(&r);
}

Test(tls, chacha20_first_when_asked)
{
	cipher_is(FERRY_TLS_CIPHERS_CHACHA20_FIRST, "leaf.pem", "leaf.key",
		  NULL, "ECDHE-ECDSA-CHACHA20-POLY1305");
}

Test(tls, chacha20_first_with_rsa)
{
	cipher_is(FERRY_TLS_CIPHERS_CHACHA20_FIRST, "rsa.pem", "rsa.key",
		  inter_chain(), "ECDHE-RSA-CHACHA20-POLY1305");
}

Test(tls, aes_gcm_first_when_asked)
{
	cipher_is(FERRY_TLS_CIPHERS_AES_GCM_FIRST, "leaf.pem", "leaf.key",
		  NULL, "ECDHE-ECDSA-AES128-GCM-SHA256");
}

/* The default follows the CPU: AES-GCM only with AES-NI and PCLMULQDQ. */
Test(tls, cipher_order_follows_the_cpu)
{
	bool aesni = br_aes_x86ni_ctr_get_vtable() && br_ghash_pclmul_get();

	cr_log_info("AES-NI and PCLMULQDQ: %s", aesni ? "yes" : "no");
	cipher_is(FERRY_TLS_CIPHERS_AUTO, "leaf.pem", "leaf.key", NULL,
		  aesni ? "ECDHE-ECDSA-AES128-GCM-SHA256"
			: "ECDHE-ECDSA-CHACHA20-POLY1305");
}

/* ------------------------------------------------------------------ */
/* ECDHE groups. s_server -www shows the groups the client offered, in
 * its order ("Supported groups"), and the ones both sides have in the
 * order the choice follows ("Shared groups"): without -serverpref that
 * is the client's, and the first shared group is the one used. */

static void groups_are(const char *server_groups, const char *offered,
		       const char *used)
{
	const char *extra[] = { "-groups", server_groups, NULL };
	char line[2][128];
	struct tc_req r;

	snprintf(line[0], sizeof(line[0]), "Supported groups: %s", offered);
	snprintf(line[1], sizeof(line[1]), "Shared groups: %s", used);
	www_up("leaf.pem", "leaf.key", extra);
	client_up("ca.pem", false);
	get(&r, u("localhost", "/"));
	/* A full handshake: both Finished messages checked the transcript,
	 * with the groups list as it went out. */
	expect_page(&r);
	for (int i = 0; i < 2; i++)
		cr_expect_neq(r.body && strstr(r.body, line[i]), 0,
			      "want \"%s\": %.400s", line[i],
			      r.body ? strstr(r.body, "Supported groups") : "");
	tc_req_free(&r);
}

/* BearSSL lists P-256 first; ferry moves X25519 ahead of it, so a server
 * that follows the client's order picks X25519. */
Test(tls, x25519_offered_first)
{
	groups_are("X25519:P-256", "x25519:secp256r1:", "x25519:secp256r1\n");
}

Test(tls, p256_only_server)
{
	groups_are("P-256", "x25519:secp256r1:", "secp256r1\n");
}

Test(tls, unknown_cipher_order_refused)
{
	struct ferry_http_client_opts o = {
		.tls_ciphers = (enum ferry_tls_ciphers)7,
	};
	struct ferry_http_client *c = (void *)1;
	struct ferry_loop *loop;
	char why[128];

	cr_assert_eq(ferry_loop_create(&loop, NULL, why, sizeof(why)), 0, "%s", why);
	cr_expect_eq(ferry_http_client_create(loop, &o, &c), FERRY_EINVAL);
	cr_expect_null(c);
	ferry_loop_destroy(loop);
}

/* ------------------------------------------------------------------ */
/* Session and verify caches                                            */

static void stats(struct ferry_http_client_stats *st)
{
	ferry_http_client_stats(t.client, st);
}

/* One GET of https://HOST/ that must succeed with a full handshake. */
static void get_new(const char *host)
{
	struct tc_req r;

	get(&r, u(host, "/"));
	expect_page(&r);
	cr_expect_neq(r.body && strstr(r.body, "New, TLSv1.2"), 0, "%.200s",
		      r.body ? r.body : "");
	tc_req_free(&r);
}

static void get_cert_err(const char *host, const char *word)
{
	struct tc_req r;

	get(&r, u(host, "/"));
	expect_err(&r, FERRY_ETLS_CERT, word);
	tc_req_free(&r);
}

static const char *const no_resume[] = { "-no_cache", NULL };

/* With resumption off at the server every handshake is full: the first
 * checks the chain, the next ones find the leaf in the cache. */
Test(tls, verify_cache_answers_for_a_known_leaf)
{
	struct ferry_http_client_stats st;

	www_up("leaf.pem", "leaf.key", no_resume);
	client_up("ca.pem", false);
	for (int i = 0; i < 3; i++)
		get_new("localhost");
	stats(&st);
	cr_expect_eq(st.tls_full, 3);
	cr_expect_eq(st.tls_resumed, 0);
	cr_expect_eq(st.tls_verify_cached, 2);
}

/* The same with an RSA leaf under an intermediate: the key the cache
 * keeps (RSA modulus and exponent) checks the ServerKeyExchange. */
Test(tls, verify_cache_answers_for_a_known_rsa_leaf)
{
	const char *extra[] = { "-no_cache", "-cert_chain", tf_cert("inter.pem"),
				NULL };
	struct ferry_http_client_stats st;

	www_up("rsa.pem", "rsa.key", extra);
	client_up("ca.pem", false);
	for (int i = 0; i < 3; i++)
		get_new("localhost");
	stats(&st);
	cr_expect_eq(st.tls_full, 3);
	cr_expect_eq(st.tls_verify_cached, 2);
}

Test(tls, verify_cache_off)
{
	struct ferry_http_client_opts o = {
		.tls_verify_cache = FERRY_HTTP_NO_CACHE,
	};
	struct ferry_http_client_stats st;

	www_up("leaf.pem", "leaf.key", no_resume);
	client_up_with("ca.pem", false, &o);
	get_new("localhost");
	get_new("localhost");
	stats(&st);
	cr_expect_eq(st.tls_full, 2);
	cr_expect_eq(st.tls_verify_cached, 0);
}

Test(tls, session_cache_off)
{
	struct ferry_http_client_opts o = {
		.tls_session_cache = FERRY_HTTP_NO_CACHE,
	};
	struct ferry_http_client_stats st;

	www_up("leaf.pem", "leaf.key", NULL);	/* the server would resume */
	client_up_with("ca.pem", false, &o);
	get_new("localhost");
	get_new("localhost");
	stats(&st);
	cr_expect_eq(st.tls_full, 2);
	cr_expect_eq(st.tls_resumed, 0);
	cr_expect_eq(st.tls_verify_cached, 1);
}

/* A leaf remembered for one name proves nothing for another. */
Test(tls, verify_cache_is_per_name)
{
	struct ferry_http_client_stats st;

	www_up("ipother.pem", "ipother.key", no_resume);
	client_up("ca.pem", false);
	get_new("localhost");
	get_cert_err("127.0.0.1", "X509_BAD_SERVER_NAME");
	get_new("localhost");
	stats(&st);
	cr_expect_eq(st.tls_verify_cached, 1);
}

/* A different leaf for a remembered name is checked in full: the
 * remembered one with its signature spoiled (same name, same key,
 * different bytes), and one that no anchor signed. */
Test(tls, verify_cache_checks_a_new_leaf)
{
	struct ferry_http_client_stats st;
	const char *const *chain = inter_chain();
	const char *args[4] = { "-no_cache", chain[0], chain[1], NULL };

	www_up("rsa.pem", "rsa.key", args);
	client_up("ca.pem", false);
	get_new("localhost");
	fx_stop(&srv);
	www_up("badsig.pem", "badsig.key", args);
	get_cert_err("localhost", "X509_BAD_SIGNATURE");
	fx_stop(&srv);
	www_up("self.pem", "self.key", no_resume);
	get_cert_err("localhost", "X509_NOT_TRUSTED");
	fx_stop(&srv);
	www_up("rsa.pem", "rsa.key", args);
	get_new("localhost");
	stats(&st);
	cr_expect_eq(st.tls_verify_cached, 1);
}

/* A remembered leaf is good only while the chain's dates are: a leaf
 * valid for a few seconds is taken from the cache, then refused as
 * expired once its time is up. */
Test(tls, verify_cache_ends_with_the_validity)
{
	struct ferry_http_client_stats st;
	char dir[4096], base[4200], pem[4300], key[4300];
	int r;

	need_certs();
	cr_assert_eq(fx_tmpdir(dir, sizeof(dir)), 0);
	snprintf(base, sizeof(base), "%s/short", dir);
	r = tf_short_cert(base, 4);
	if (r == FX_SKIP)
		cr_skip_test("no openssl");
	cr_assert_eq(r, 0, "certs.sh --short: %d", r);
	snprintf(pem, sizeof(pem), "%s.pem", base);
	snprintf(key, sizeof(key), "%s.key", base);
	www_up(pem, key, no_resume);
	client_up("ca.pem", false);
	get_new("localhost");
	get_new("localhost");
	stats(&st);
	cr_expect_eq(st.tls_verify_cached, 1, "the second check came from the cache");
	sleep(6);
	get_cert_err("localhost", "X509_EXPIRED");
	stats(&st);
	cr_expect_eq(st.tls_verify_cached, 1);
	fx_stop(&srv);
	fx_rmtree(dir);
}

/* ------------------------------------------------------------------ */
/* IPv6 literals                                                         */

static const char *const on_v6[] = { "--v6", NULL };

Test(tls, ipv6_literal_san_ok)
{
	www_up("leaf.pem", "leaf.key", on_v6);
	client_up("ca.pem", false);
	get_new("[::1]");
}

Test(tls, ipv6_literal_san_mismatch)
{
	www_up("ipother.pem", "ipother.key", on_v6);
	client_up("ca.pem", false);
	get_cert_err("[::1]", "X509_BAD_SERVER_NAME");
}

/* ------------------------------------------------------------------ */
/* Strict defaults and their relaxations (issue 10)                     */

/* s_server arguments that let OpenSSL 3 use what its default security
 * level refuses (old versions, SHA-1, short keys): the client is what is
 * being tested. */
#define SECLEVEL0 "-cipher", "DEFAULT@SECLEVEL=0"

/* A GET through a client with options @o; the page must say @word. */
static void get_page_with(const struct ferry_http_client_opts *o,
			  const char *word)
{
	struct tc_req r;

	client_up_with("ca.pem", false, o);
	get(&r, u("localhost", "/"));
	cr_expect_eq(r.result, 200, "result %d (%s)", r.result, r.detail);
	cr_expect_neq(r.body && strstr(r.body, word), 0, "no %s in: %.300s",
		      word, r.body ? r.body : "");
	tc_req_free(&r);
	tc_teardown(&t);
}

/* A GET through a default client must fail with @code and @word. */
static void get_refused(int code, const char *word)
{
	struct tc_req r;

	client_up("ca.pem", false);
	get(&r, u("localhost", "/"));
	expect_err(&r, code, word);
	tc_req_free(&r);
	tc_teardown(&t);
}

Test(tls, tls10_only_server_refused_unless_relaxed)
{
	const char *extra[] = { "-tls1", SECLEVEL0, NULL };
	struct ferry_http_client_opts o = {
		.tls_min_version = FERRY_TLS_1_0,
		.tls_allow_legacy_suites = true,	/* 1.0 has no AEAD */
	};

	/* OpenSSL answers a 1.2-only hello with handshake_failure. */
	www_up("leaf.pem", "leaf.key", extra);
	get_refused(FERRY_ETLS_HANDSHAKE, "alert 40");
	get_page_with(&o, "Protocol  : TLSv1\n");
}

Test(tls, tls11_refused_by_default)
{
	const char *extra[] = { "-tls1_1", SECLEVEL0, NULL };
	struct ferry_http_client_opts o = {
		.tls_min_version = FERRY_TLS_1_1,
		.tls_allow_legacy_suites = true,
	};

	www_up("leaf.pem", "leaf.key", extra);
	get_refused(FERRY_ETLS_HANDSHAKE, "alert 40");
	get_page_with(&o, "Protocol  : TLSv1.1");
}

/* Static RSA key exchange with AES-CBC: no forward secrecy, no AEAD. */
Test(tls, static_rsa_cbc_server_refused_unless_relaxed)
{
	const char *extra[] = { "-cert_chain", tf_cert("inter.pem"),
				"-cipher", "AES128-SHA", "-tls1_2", NULL };
	struct ferry_http_client_opts o = { .tls_allow_legacy_suites = true };

	www_up("rsa.pem", "rsa.key", extra);
	get_refused(FERRY_ETLS_HANDSHAKE, "alert 40");
	get_page_with(&o, "AES128-SHA");
}

/* ECDHE but CBC: refused too (only AEAD suites are offered). */
Test(tls, ecdhe_cbc_server_refused_unless_relaxed)
{
	const char *extra[] = { "-cipher", "ECDHE-ECDSA-AES128-SHA256",
				"-tls1_2", NULL };
	struct ferry_http_client_opts o = { .tls_allow_legacy_suites = true };

	www_up("leaf.pem", "leaf.key", extra);
	get_refused(FERRY_ETLS_HANDSHAKE, "alert 40");
	get_page_with(&o, "ECDHE-ECDSA-AES128-SHA256");
}

/* The AEAD suites are still offered in the order asked for. */
Test(tls, aead_suites_by_default)
{
	const char *gcm[] = { "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256",
			      "-tls1_2", NULL };
	const char *chacha[] = { "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305",
				 "-tls1_2", NULL };

	www_up("leaf.pem", "leaf.key", gcm);
	get_page_with(NULL, "ECDHE-ECDSA-AES128-GCM-SHA256");
	fx_stop(&srv);
	www_up("leaf.pem", "leaf.key", chacha);
	get_page_with(NULL, "ECDHE-ECDSA-CHACHA20-POLY1305");
}

Test(tls, sha1_signed_leaf_refused_unless_relaxed)
{
	const char *extra[] = { SECLEVEL0, NULL };
	struct ferry_http_client_opts o = { .tls_allow_sha1 = true };

	www_up("sha1.pem", "sha1.key", extra);
	get_refused(FERRY_ETLS_CERT, "SHA-1");
	get_page_with(&o, "New, TLSv1.2");
}

/* A server that signs its key exchange only with SHA-1: strict, the
 * client does not offer SHA-1 signatures, and no handshake happens. */
Test(tls, sha1_key_exchange_signature_refused_unless_relaxed)
{
	const char *extra[] = { "-sigalgs", "ECDSA+SHA1", SECLEVEL0, NULL };
	struct ferry_http_client_opts o = { .tls_allow_sha1 = true };

	www_up("leaf.pem", "leaf.key", extra);
	get_refused(FERRY_ETLS_HANDSHAKE, "alert");
	get_page_with(&o, "New, TLSv1.2");
}

Test(tls, rsa1024_leaf_refused_unless_relaxed)
{
	const char *extra[] = { SECLEVEL0, NULL };
	struct ferry_http_client_opts o = { .tls_min_rsa_bits = 1024 };

	www_up("rsa1024.pem", "rsa1024.key", extra);
	get_refused(FERRY_ETLS_CERT, "X509_WEAK_PUBLIC_KEY");
	get_page_with(&o, "New, TLSv1.2");
}

Test(tls, strict_options_checked)
{
	struct ferry_http_client_opts bad[] = {
		{ .tls_min_version = 0x0300 },
		{ .tls_min_version = 0x0304 },
		{ .tls_min_rsa_bits = 512 },
		{ .tls_min_rsa_bits = 8192 },
		{ .tls_send_record_max = 1023 },
		{ .tls_send_record_max = 16385 },
	};
	struct ferry_loop *loop;
	struct ferry_http_client *c;

	cr_assert_eq(ferry_loop_create(&loop, NULL, NULL, 0), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(ferry_http_client_create(loop, &bad[i], &c),
			     FERRY_EINVAL, "bad option %zu accepted", i);
	ferry_loop_destroy(loop);
}

/* The server asks to renegotiate after the request: refused by default
 * (OpenSSL then fails the connection), done when allowed. */
Test(tls, renegotiation_refused_unless_relaxed)
{
	const char *extra[] = { "--renegotiate", "-tls1_2", NULL };
	struct ferry_http_client_opts o = { .tls_allow_renegotiation = true };
	struct tc_req r;
	int ret;

	need_certs();
	ret = tf_s_server(&srv, "leaf.pem", "leaf.key", NULL, extra);
	if (ret == FX_SKIP)
		cr_skip_test("%s", srv.err);
	cr_assert_eq(ret, 0, "s_server: %s", srv.err);
	client_up("ca.pem", false);
	get(&r, u("localhost", "/"));
	expect_err(&r, FERRY_EPROTO, "renegotiation");
	tc_req_free(&r);
	tc_teardown(&t);
	client_up_with("ca.pem", false, &o);
	get(&r, u("localhost", "/"));
	cr_expect_eq(r.result, 200, "result %d (%s)", r.result, r.detail);
	cr_expect_str_eq(r.body ? r.body : "", "renegotiated");
	tc_req_free(&r);
}

/* ------------------------------------------------------------------ */
/* Session lifetime (issue 10)                                          */

Test(tls, session_lifetime_ends_resumption)
{
	struct ferry_http_client_opts o = { .tls_session_lifetime_ms = 1000 };
	struct ferry_http_client_stats st;

	www_up("leaf.pem", "leaf.key", NULL);
	client_up_with("ca.pem", false, &o);
	get_new("localhost");
	/* expires = the second after now + 1 s: 2.1 s later it is over */
	usleep(2100 * 1000);
	get_new("localhost");
	stats(&st);
	cr_expect_eq(st.tls_full, 2);
	cr_expect_eq(st.tls_resumed, 0);
}

/* A session ends with the chain's validity: resuming would accept a
 * certificate that a full handshake refuses as expired. */
Test(tls, session_ends_with_the_validity)
{
	struct ferry_http_client_stats st;
	char dir[4096], base[4200], pem[4300], key[4300];
	int r;

	need_certs();
	cr_assert_eq(fx_tmpdir(dir, sizeof(dir)), 0);
	snprintf(base, sizeof(base), "%s/short", dir);
	r = tf_short_cert(base, 6);
	if (r == FX_SKIP)
		cr_skip_test("no openssl");
	cr_assert_eq(r, 0, "certs.sh --short: %d", r);
	snprintf(pem, sizeof(pem), "%s.pem", base);
	snprintf(key, sizeof(key), "%s.key", base);
	www_up(pem, key, NULL);	/* the server would resume */
	client_up("ca.pem", false);
	get_new("localhost");
	sleep(8);
	get_cert_err("localhost", "X509_EXPIRED");
	stats(&st);
	cr_expect_eq(st.tls_resumed, 0);
	fx_stop(&srv);
	fx_rmtree(dir);
}

/* ------------------------------------------------------------------ */
/* A trailing dot in the host (issue 10)                                */

/*
 * Run a handshake with the TLS engine alone, over a blocking socket to
 * srv, for @host as a URL would give it (so that names the test machine
 * cannot resolve, like "localhost.", can be tried). Returns 0 when the
 * handshake finished, else ferry__tls_status's error (@why says) or
 * -EIO.
 */
static int engine_handshake(const char *host, char *why, size_t whylen)
{
	struct ferry__tls_settings set = { .ca_file = tf_cert("ca.pem") };
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)srv.port) };
	struct timeval tv = { .tv_sec = 5 };
	struct ferry__tls_config *cfg;
	struct ferry__tls *tls;
	unsigned char buf[16384];
	size_t have = 0, off = 0;
	int fd, st = -EIO;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(ferry__tls_config_new(&set, &cfg, why, whylen), 0, "%s", why);
	cr_assert_eq(ferry__tls_new(cfg, host, strlen(host), false, "https://t",
				    &tls), 0);
	for (int i = 0; i < 1000; i++) {	/* bounded: a few dozen needed */
		const void *p;
		size_t len;
		ssize_t n;

		st = ferry__tls_status(tls, why, whylen);
		if (st < 0)
			break;
		if (ferry__tls_ready(tls)) {
			st = 0;
			break;
		}
		if ((p = ferry__tls_out(tls, &len)) != NULL) {
			n = send(fd, p, len, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			ferry__tls_out_ack(tls, (size_t)n);
			continue;
		}
		if (off < have) {
			size_t k = ferry__tls_feed(tls, buf + off, have - off);

			off += k;
			if (k)
				continue;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0) {
			st = -EIO;
			snprintf(why, whylen, "recv: %zd", n);
			break;
		}
		have = (size_t)n;
		off = 0;
	}
	ferry__tls_free(tls);
	ferry__tls_config_free(cfg);
	close(fd);
	return st;
}

/* s_server presents leaf.pem (localhost) only to SNI "localhost", and
 * other.pem (other.example) to any other name: "localhost." must reach
 * it as "localhost", and the certificate must match it. */
Test(tls, trailing_dot_host)
{
	const char *extra[] = { "-servername", "localhost",
				"-cert2", tf_cert("leaf.pem"),
				"-key2", tf_cert("leaf.key"), NULL };
	char why[FERRY_HTTP_DETAIL_MAX] = "";
	int st;

	www_up("other.pem", "other.key", extra);
	st = engine_handshake("localhost.", why, sizeof(why));
	cr_expect_eq(st, 0, "localhost.: %d %s", st, why);
	st = engine_handshake("localhost", why, sizeof(why));
	cr_expect_eq(st, 0, "localhost: %d %s", st, why);
	/* Any other name gets other.pem, which names other.example. */
	st = engine_handshake("other.example.", why, sizeof(why));
	cr_expect_eq(st, 0, "other.example.: %d %s", st, why);
	st = engine_handshake("localhost.example.", why, sizeof(why));
	cr_expect_eq(st, FERRY_ETLS_CERT, "localhost.example.: %d %s", st, why);
	cr_expect_neq(strstr(why, "X509_BAD_SERVER_NAME"), NULL, "%s", why);
}
