/*
 * tls.c - HTTPS from ferry, for tools/bench/tls.sh.
 *
 *   ferry-bench-tls dl URL CAFILE
 *       one GET of URL on the loop-side client, body dropped in on_body;
 *   ferry-bench-tls hs URL CAFILE N [nocache]
 *       N GETs one after the other, each with "Connection: close", so each
 *       runs on a new connection with a handshake of its own (full or
 *       resumed is the server's choice: the client always offers the
 *       session it cached for the origin); "nocache" turns the client's
 *       verify cache off, so every full handshake checks the chain;
 *   ferry-bench-tls mem URL CAFILE N
 *       one GET, then N at once on N keep-alive connections: prints the
 *       heap bytes (mallinfo2) the N-1 new idle connections hold, each;
 *   ferry-bench-tls impl
 *       names the BearSSL implementations a client context gets here;
 *   ferry-bench-tls ec N
 *       CPU microseconds per EC operation of a handshake, ours
 *       (http/tls_ec.c) and BearSSL's m31: X25519 mul, P-256 mul, mulgen
 *       and muladd (ECDSA verification), N of each, best of 3 rounds.
 *
 * dl and hs print one line, "requests N errors E bytes B conns C wall W
 * user U sys S full F resumed R cached V" (seconds; this process's own
 * rusage, set-up included; F, R, V: TLS handshakes full, resumed, and
 * full with the chain check answered by the verify cache).
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <bearssl.h>

#include "ferry/http.h"
#include "tls_aesctr.h"
#include "tls_ec.h"
#include "tls_ghash.h"

struct run {
	struct ferry_loop *loop;
	struct ferry_http_client *client;
	struct ferry_url url;
	unsigned left;			/* requests still to start */
	unsigned running;		/* requests started, not done */
	bool close;			/* ask for a new connection each time */
	bool batch;			/* mem: start them all, stop when all end */
	uint64_t requests, errors, bytes;
};

static void usage(void)
{
	fprintf(stderr, "usage: ferry-bench-tls dl URL CAFILE\n"
			"       ferry-bench-tls hs URL CAFILE N [nocache]\n"
			"       ferry-bench-tls mem URL CAFILE N\n"
			"       ferry-bench-tls impl\n"
			"       ferry-bench-tls ec N\n");
	exit(2);
}

static int on_body(void *ctx, struct ferry_http_request *req,
		   const void *data, size_t len, uintptr_t token)
{
	struct run *r = ctx;

	(void)req;
	(void)data;
	(void)token;
	r->bytes += len;
	return 0;
}

static void issue(struct run *r);

static void on_done(void *ctx, struct ferry_http_request *req, int result,
		    const char *detail)
{
	struct run *r = ctx;

	(void)req;
	if (result == 200)
		r->requests++;
	else if (r->errors++ < 5)
		fprintf(stderr, "request: %d %s\n", result, detail);
	r->running--;
	if (r->batch) {
		if (!r->running)
			ferry_loop_stop(r->loop);
	} else if (r->left) {
		issue(r);
	} else {
		ferry_loop_stop(r->loop);
	}
}

static const struct ferry_http_callbacks run_cb = {
	.on_body = on_body,
	.on_done = on_done,
};

static void issue(struct run *r)
{
	static const struct ferry_http_header close_hdr[] = {
		FERRY_HTTP_HEADER("Connection", "close"),
	};
	struct ferry_http_request_opts o = {
		.url = &r->url, .cb = &run_cb, .ctx = r,
		.headers = r->close ? close_hdr : NULL,
		.nheaders = r->close ? 1 : 0,
	};
	struct ferry_http_request *req;
	char why[128];

	r->left--;
	r->running++;
	if (ferry_http_request_start(r->client, &o, &req, why, sizeof(why))) {
		fprintf(stderr, "start: %s\n", why);
		r->errors++;
		ferry_loop_stop(r->loop);
	}
}

static void closed(void *ctx)
{
	(void)ctx;
}

static int setup(struct run *r, const char *url,
		 const struct ferry_http_client_opts *co)
{
	char why[128] = "";

	if (ferry_loop_create(&r->loop, NULL, why, sizeof(why)) < 0 ||
	    ferry_http_client_create(r->loop, co, &r->client) < 0 ||
	    ferry_url_parse(&r->url, url, strlen(url), why, sizeof(why)) < 0) {
		fprintf(stderr, "set-up failed: %s\n", why);
		return 1;
	}
	return 0;
}

static void teardown(struct run *r)
{
	ferry_http_client_close(r->client, closed, NULL);
	ferry_url_free(&r->url);
	ferry_loop_destroy(r->loop);
}

static int run(const char *url, const char *ca, unsigned n, bool close,
	       bool verify_cache)
{
	struct ferry_http_client_opts co = {
		.max_conns_per_origin = 1,
		.ca_file = ca,
		.tls_verify_cache = verify_cache ? 0 : FERRY_HTTP_NO_CACHE,
	};
	struct run r = { .left = n, .close = close };
	struct ferry_http_client_stats st;
	struct rusage ru;
	uint64_t t0;

	if (setup(&r, url, &co))
		return 1;
	t0 = ferry_time_now();
	issue(&r);
	if (!r.errors)
		ferry_loop_run(r.loop);
	ferry_http_client_stats(r.client, &st);
	getrusage(RUSAGE_SELF, &ru);
	printf("requests %llu errors %llu bytes %llu conns %llu wall %.6f "
	       "user %.6f sys %.6f full %llu resumed %llu cached %llu\n",
	       (unsigned long long)r.requests, (unsigned long long)r.errors,
	       (unsigned long long)r.bytes,
	       (unsigned long long)st.conns_opened,
	       (double)(ferry_time_now() - t0) / 1e9,
	       ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
	       (unsigned long long)st.tls_full,
	       (unsigned long long)st.tls_resumed,
	       (unsigned long long)st.tls_verify_cached);
	teardown(&r);
	return r.errors ? 1 : 0;
}

/*
 * Heap held per idle TLS connection: one request first (trust anchors,
 * caches and the first connection exist after it), then n at once, which
 * opens n-1 more; the heap grows by their connection state, TLS engine
 * and buffers. Receive buffers are the client's shared ring, not counted.
 */
static int mem(const char *url, const char *ca, unsigned n)
{
	struct ferry_http_client_opts co = {
		.max_conns_per_origin = n,
		.ca_file = ca,
	};
	struct run r = { .left = 1, .batch = true };
	struct ferry_http_client_stats st;
	size_t before;

	if (n < 2 || setup(&r, url, &co))
		return 1;
	issue(&r);
	ferry_loop_run(r.loop);
	before = mallinfo2().uordblks;
	r.left = n;
	while (r.left && !r.errors)
		issue(&r);
	if (!r.errors)
		ferry_loop_run(r.loop);
	ferry_http_client_stats(r.client, &st);
	if (r.errors || st.idle != n || st.conns_opened != n) {
		fprintf(stderr, "mem: %llu errors, %u idle, %llu opened\n",
			(unsigned long long)r.errors, st.idle,
			(unsigned long long)st.conns_opened);
		teardown(&r);
		return 1;
	}
	printf("conns %u bytes_per_conn %zu\n", n,
	       (mallinfo2().uordblks - before) / (n - 1));
	teardown(&r);
	return 0;
}

/*
 * What br_ssl_client_init_full() (as http/tls.c calls it) picked on this
 * CPU, with the GHASH, AES-CTR and EC code that tls.c installs over it,
 * read back from the engine. Pointers are compared with the candidates
 * BearSSL 0.6 has, so a name is printed only when it is sure.
 */
static int impl(void)
{
	static br_ssl_client_context cc;
	static br_x509_minimal_context xc;
	br_ssl_engine_context *e = &cc.eng;
	const char *ctr = "other", *ghash = "other", *ec = "other";
	const char *rsa = "other", *ecdsa = "other", *gcm = "none";
	const char *chacha = "other", *poly = "other";

	br_ssl_client_init_full(&cc, &xc, NULL, 0);
	br_ssl_engine_set_ghash(e, ferry__tls_ghash_get());
	if (ferry__tls_aes_ctr_get())
		br_ssl_engine_set_aes_ctr(e, ferry__tls_aes_ctr_get());
	br_ssl_engine_set_ec(e, ferry__tls_ec_get());
	if (e->iaes_ctr && e->iaes_ctr == ferry__tls_aes_ctr128_get())
		ctr = "ferry_aes_ctr8";
	else if (e->iaes_ctr && e->iaes_ctr == ferry__tls_aes_ctr_get())
		ctr = "ferry_aes_ctr16_vaes";
	else if (e->iaes_ctr && e->iaes_ctr == br_aes_x86ni_ctr_get_vtable())
		ctr = "aes_x86ni_ctr";
	else if (e->iaes_ctr == &br_aes_ct64_ctr_vtable)
		ctr = "aes_ct64_ctr";
	else if (e->iaes_ctr == &br_aes_ct_ctr_vtable)
		ctr = "aes_ct_ctr";
	if (e->ighash && e->ighash == ferry__tls_ghash_clmul128_get())
		ghash = "ferry_ghash_clmul8";
	else if (e->ighash && e->ighash == ferry__tls_ghash_clmul_get())
		ghash = "ferry_ghash_vclmul16";
	else if (e->ighash && e->ighash == br_ghash_pclmul_get())
		ghash = "ghash_pclmul";
	else if (e->ighash == &br_ghash_ctmul64)
		ghash = "ghash_ctmul64";
	else if (e->ighash == &br_ghash_ctmul)
		ghash = "ghash_ctmul";
	if (e->igcm_in == &br_sslrec_in_gcm_vtable)
		gcm = "sslrec_gcm";
	if (e->iec == ferry__tls_ec_get() && e->iec != &br_ec_all_m31)
		ec = "ferry_ec64";
	else if (e->iec == &br_ec_all_m31)
		ec = "ec_all_m31";
	else if (e->iec == &br_ec_all_m15)
		ec = "ec_all_m15";
	if (e->irsavrfy && e->irsavrfy == br_rsa_i62_pkcs1_vrfy_get())
		rsa = "rsa_i62";
	else if (e->irsavrfy == &br_rsa_i31_pkcs1_vrfy)
		rsa = "rsa_i31";
	if (e->iecdsa == &br_ecdsa_i31_vrfy_asn1)
		ecdsa = "ecdsa_i31";
	else if (e->iecdsa == &br_ecdsa_i15_vrfy_asn1)
		ecdsa = "ecdsa_i15";
	if (e->ichacha && e->ichacha == br_chacha20_sse2_get())
		chacha = "chacha20_sse2";
	else if (e->ichacha == &br_chacha20_ct_run)
		chacha = "chacha20_ct";
	if (e->ipoly && e->ipoly == br_poly1305_ctmulq_get())
		poly = "poly1305_ctmulq";
	else if (e->ipoly == &br_poly1305_ctmul_run)
		poly = "poly1305_ctmul";
	printf("aes_ctr=%s ghash=%s gcm_records=%s chacha20=%s poly1305=%s "
	       "ec=%s rsa_vrfy=%s ecdsa_vrfy=%s\n", ctr, ghash, gcm, chacha,
	       poly, ec, rsa, ecdsa);
	return 0;
}

/* CPU seconds of this process. */
static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Microseconds per call of EC operation @op (0 X25519 mul, 1 P-256 mul,
 * 2 mulgen, 3 muladd with the generator) of @ec, @n calls; the inputs
 * are fixed (the operations are constant-time). */
static double ec_op_us(const br_ec_impl *ec, int op, unsigned n)
{
	static const unsigned char k[32] = {
		0x3a, 0x9c, 0x51, 0x07, 0xe2, 0x48, 0xbb, 0x16, 0x90, 0x2d, 0x7f,
		0x64, 0xc3, 0x0e, 0x85, 0x5b, 0x71, 0xaa, 0x29, 0xd4, 0x0f, 0x93,
		0x6e, 0x38, 0xc7, 0x12, 0x5d, 0xe9, 0x84, 0x21, 0xb6, 0x4f,
	};
	unsigned char pt[65], q[65];
	size_t len;
	double t0;

	ec->mulgen(q, k, 32, BR_EC_secp256r1);
	t0 = cpu_now();
	for (unsigned i = 0; i < n; i++) {
		switch (op) {
		case 0:
			memcpy(pt, ec->generator(BR_EC_curve25519, &len), 32);
			ec->mul(pt, 32, k, 32, BR_EC_curve25519);
			break;
		case 1:
			memcpy(pt, q, 65);
			ec->mul(pt, 65, k, 32, BR_EC_secp256r1);
			break;
		case 2:
			ec->mulgen(pt, k, 32, BR_EC_secp256r1);
			break;
		default:
			memcpy(pt, q, 65);
			ec->muladd(pt, NULL, 65, k, 32, k + 1, 31,
				   BR_EC_secp256r1);
		}
	}
	return (cpu_now() - t0) * 1e6 / n;
}

static int ec_ops(unsigned n)
{
	static const char *names[] = { "x25519_mul", "p256_mul", "p256_mulgen",
				       "p256_muladd" };
	const br_ec_impl *impls[2] = { ferry__tls_ec_get(), &br_ec_all_m31 };

	for (int op = 0; op < 4; op++) {
		double best[2] = { 1e30, 1e30 };

		for (int round = 0; round < 3; round++)
			for (int i = 0; i < 2; i++) {
				double us = ec_op_us(impls[i], op, n);

				best[i] = us < best[i] ? us : best[i];
			}
		printf("%s%s ferry=%.1f m31=%.1f", op ? " " : "", names[op],
		       best[0], best[1]);
	}
	printf(" (us/op)\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "impl") == 0)
		return impl();
	if (argc == 3 && strcmp(argv[1], "ec") == 0 && atoi(argv[2]) > 0)
		return ec_ops((unsigned)atoi(argv[2]));
	if (argc == 4 && strcmp(argv[1], "dl") == 0)
		return run(argv[2], argv[3], 1, false, true);
	if ((argc == 5 || (argc == 6 && strcmp(argv[5], "nocache") == 0)) &&
	    strcmp(argv[1], "hs") == 0 && atoi(argv[4]) > 0)
		return run(argv[2], argv[3], (unsigned)atoi(argv[4]), true,
			   argc == 5);
	if (argc == 5 && strcmp(argv[1], "mem") == 0 && atoi(argv[4]) > 1)
		return mem(argv[2], argv[3], (unsigned)atoi(argv[4]));
	usage();
}
