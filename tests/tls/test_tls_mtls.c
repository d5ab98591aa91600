/*
 * test_tls_mtls.c - client certificates (mutual TLS) against openssl
 * s_server -Verify 1 (it asks for a certificate, checks it against the
 * test CA, and fails the handshake without one): EC and RSA keys, a chain
 * with an intermediate, the key in the certificate's file, PKCS#8 and
 * traditional key formats; a key that is not the certificate's, an
 * encrypted key, missing files, no certificate, a certificate the server
 * does not trust; and a server that does not ask.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "test_client_util.h"
#include "tls_fixture.h"

static struct fx_proc srv = FX_PROC_INIT;
static struct tc t;
static char tmp[4096];

static void down(void)
{
	if (t.loop)
		tc_teardown(&t);
	fx_stop(&srv);
	if (tmp[0])
		fx_rmtree(tmp);
	tmp[0] = '\0';
}

TestSuite(mtls, .fini = down, .timeout = 60);

static void need_certs(void)
{
	char dir[4096];
	int r = tf_certs(dir, sizeof(dir));

	if (r == FX_SKIP)
		cr_skip_test("no certificates (openssl missing at build time)");
	cr_assert_eq(r, 0, "FERRY_TLS_CERTS: %s", strerror(-r));
}

/* s_server with the ECDSA leaf, -www, asking for a client certificate
 * signed by the test CA (-Verify: required) or not at all. */
static void server_up(bool verify)
{
	const char *args[] = { "-www", "-Verify", "2", "-CAfile",
			       tf_cert("ca.pem"), "-verify_return_error", NULL };
	const char *plain[] = { "-www", NULL };
	int r;

	need_certs();
	r = tf_s_server(&srv, "leaf.pem", "leaf.key", NULL,
			verify ? args : plain);
	if (r == FX_SKIP)
		cr_skip_test("%s", srv.err);
	cr_assert_eq(r, 0, "s_server: %s", srv.err);
}

/* A client trusting the test CA, with @cert and @key (paths, or names
 * in the certificate dir; NULL: none). */
static void client_up(const char *cert, const char *key)
{
	struct ferry_http_client_opts o = {
		.ca_file = tf_cert("ca.pem"),
		.tls_client_cert = cert ? tf_cert(cert) : NULL,
		.tls_client_key = key ? tf_cert(key) : NULL,
		.connect_timeout_ms = 5000,
		.read_timeout_ms = 5000,
	};

	tc_setup(&t, &o);
}

/* GET / and return the result; *@r is the caller's to free. */
static int get(struct tc_req *r, char *why, size_t whylen)
{
	char url[128];
	int ret;

	snprintf(url, sizeof(url), "https://localhost:%d/", srv.port);
	tc_req_init(r, &t, 1 << 16);
	ret = tc_start(r, url, NULL, why, whylen);
	if (ret < 0)
		return ret;
	cr_assert(tc_run(&t, 15000), "%s did not finish", url);
	return r->result;
}

static void expect_ok(const char *cert, const char *key)
{
	struct tc_req r;
	char why[256] = "";
	int rc;

	client_up(cert, key);
	rc = get(&r, why, sizeof(why));
	cr_expect_eq(rc, 200, "%s/%s: %d %s %s", cert, key ? key : "-", rc,
		     ferry_strerrorname(rc), *why ? why : r.detail);
	/* s_server's page: it verified the chain we sent. */
	cr_expect(r.body && strstr(r.body, "TLSv1.2"), "%.300s",
		  r.body ? r.body : "");
	tc_req_free(&r);
	tc_teardown(&t);
	memset(&t, 0, sizeof(t));
}

static const char *tmp_file(const char *name)
{
	static char buf[4][4200];
	static unsigned i;
	char *b = buf[i++ % 4];

	if (!tmp[0])
		cr_assert_eq(fx_tmpdir(tmp, sizeof(tmp)), 0);
	snprintf(b, 4200, "%s/%s", tmp, name);
	return b;
}

/* Run a shell command (openssl, cat) that must succeed. */
static void sh(const char *cmd)
{
	int rc = system(cmd);

	cr_assert_eq(rc, 0, "%s: %d", cmd, rc);
}

/*
 * Client certificates (extendedKeyUsage clientAuth; the test leaves are
 * for servers only), made in the test's temp dir: client.pem/.key (EC
 * P-256, signed by the test CA) and client_rsa_chain.pem/client_rsa.key
 * (RSA 2048 signed by the intermediate, followed by it).
 */
static void make_clients(void)
{
	char cmd[16384];
	const char *d = tmp_file("");

	snprintf(cmd, sizeof(cmd),
		 "set -e; cd %s; exec 2>/dev/null\n"
		 "printf 'extendedKeyUsage=clientAuth\\nbasicConstraints=CA:FALSE\\n' > c.ext\n"
		 "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out client.key\n"
		 "openssl req -new -key client.key -subj /CN=ferry-client -out c.csr\n"
		 "openssl x509 -req -in c.csr -CA %s -CAkey %s -set_serial 7 -days 2 -sha256 -extfile c.ext -out client.pem\n"
		 "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out client_rsa.key\n"
		 "openssl req -new -key client_rsa.key -subj /CN=ferry-client-rsa -out r.csr\n"
		 "openssl x509 -req -in r.csr -CA %s -CAkey %s -set_serial 8 -days 2 -sha256 -extfile c.ext -out client_rsa.pem\n"
		 "cat client_rsa.pem %s > client_rsa_chain.pem\n"
		 "openssl x509 -req -in c.csr -CA %s -CAkey %s -set_serial 9 -days 2 -sha256 -extfile c.ext -out client_unknown_ca.pem\n",
		 d, tf_cert("ca.pem"), tf_cert("ca.key"), tf_cert("inter.pem"),
		 tf_cert("inter.key"), tf_cert("inter.pem"), tf_cert("ca2.pem"),
		 tf_cert("ca2.key"));
	sh(cmd);
}

Test(mtls, ec_rsa_chain_and_key_formats)
{
	char cmd[9000];

	server_up(true);
	make_clients();
	expect_ok(tmp_file("client.pem"), tmp_file("client.key"));	/* EC, PKCS#8 */
	expect_ok(tmp_file("client_rsa_chain.pem"), tmp_file("client_rsa.key"));
	/* The key inside the certificate's file (curl's --cert alone). */
	snprintf(cmd, sizeof(cmd), "cat %s %s > %s", tmp_file("client.key"),
		 tmp_file("client.pem"), tmp_file("both.pem"));
	sh(cmd);
	expect_ok(tmp_file("both.pem"), NULL);
	/* Traditional formats: EC PRIVATE KEY, RSA PRIVATE KEY. */
	snprintf(cmd, sizeof(cmd), "openssl ec -in %s -out %s 2>/dev/null",
		 tmp_file("client.key"), tmp_file("ec-trad.key"));
	sh(cmd);
	expect_ok(tmp_file("client.pem"), tmp_file("ec-trad.key"));
	snprintf(cmd, sizeof(cmd),
		 "openssl rsa -traditional -in %s -out %s 2>/dev/null",
		 tmp_file("client_rsa.key"), tmp_file("rsa-trad.key"));
	sh(cmd);
	expect_ok(tmp_file("client_rsa_chain.pem"), tmp_file("rsa-trad.key"));
}

/* A local problem: the request fails at start, before any I/O. */
static void expect_local(const char *cert, const char *key, const char *words)
{
	struct tc_req r;
	char why[256] = "";
	int rc;

	client_up(cert, key);
	rc = get(&r, why, sizeof(why));
	cr_expect_eq(rc, FERRY_ETLS_CLIENT_CERT, "%s/%s: %d %s", cert,
		     key ? key : "-", rc, ferry_strerrorname(rc));
	cr_expect(strstr(why, words), "%s/%s: \"%s\" lacks \"%s\"", cert,
		  key ? key : "-", why, words);
	tc_req_free(&r);
	tc_teardown(&t);
	memset(&t, 0, sizeof(t));
}

Test(mtls, local_problems_are_named_before_any_io)
{
	char cmd[9000];
	const char *enc = tmp_file("enc.key");
	const char *enc_trad = tmp_file("enc-trad.key");

	server_up(true);
	expect_local("leaf.pem", "other.key", "does not match");
	expect_local("rsa_chain.pem", "rsa1024.key", "does not match");
	expect_local("leaf.pem", "rsa.key",
		     "an RSA key for an EC certificate");
	expect_local("leaf.pem", NULL, "no private key in it");
	expect_local("leaf.pem", "ca.pem", "no private key in it");
	expect_local("leaf.key", "leaf.key", "no certificate in it");
	expect_local("/nonexistent/cert.pem", "leaf.key",
		     "No such file or directory");
	expect_local("leaf.pem", "/nonexistent/key.pem",
		     "No such file or directory");
	snprintf(cmd, sizeof(cmd), "openssl pkey -in %s -aes256 -passout "
		 "pass:secret -out %s 2>/dev/null", tf_cert("leaf.key"), enc);
	sh(cmd);
	expect_local("leaf.pem", enc, "encrypted");
	snprintf(cmd, sizeof(cmd), "openssl ec -in %s -aes256 -passout "
		 "pass:secret -out %s 2>/dev/null", tf_cert("leaf.key"),
		 enc_trad);
	sh(cmd);
	expect_local("leaf.pem", enc_trad, "encrypted");
}

static void expect_refused(const char *cert, const char *key,
			   const char *words)
{
	struct tc_req r;
	char why[256] = "";
	int rc;

	client_up(cert, key);
	rc = get(&r, why, sizeof(why));
	cr_expect_eq(rc, FERRY_ETLS_HANDSHAKE, "%d %s %s %s", rc,
		     ferry_strerrorname(rc), why, r.detail);
	cr_expect(strstr(r.detail, words), "\"%s\" lacks \"%s\"", r.detail,
		  words);
	tc_req_free(&r);
	tc_teardown(&t);
	memset(&t, 0, sizeof(t));
}

Test(mtls, server_refuses_none_or_an_untrusted_one)
{
	server_up(true);
	expect_refused(NULL, NULL, "the server requires a client certificate "
		       "and none is set");
	make_clients();
	expect_refused(tmp_file("client_unknown_ca.pem"), tmp_file("client.key"),
		       "the server refused the client certificate");
	/* A server certificate: right CA, wrong purpose. */
	expect_refused("leaf.pem", "leaf.key",
		       "the server refused the client certificate");
	/* The server goes on serving a good client. */
	expect_ok(tmp_file("client.pem"), tmp_file("client.key"));
}

Test(mtls, a_server_that_does_not_ask_gets_none)
{
	server_up(false);
	make_clients();
	expect_ok(tmp_file("client.pem"), tmp_file("client.key"));
	expect_ok(NULL, NULL);
}
