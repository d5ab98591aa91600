/*
 * http/tls_cert.h - the client's own certificate for TLS client
 * authentication (mutual TLS), internal to tls.c (not installed).
 *
 * A struct ferry__tls_cert is loaded once per client from PEM files (a
 * chain, leaf first, and an RSA or EC private key, in the chain's file or
 * one of its own) and checked: the key must be the leaf's. Each TLS
 * connection then installs a struct ferry__tls_auth, BearSSL's client
 * certificate handler wrapped so that it also notes whether the server
 * asked for a certificate at all: that turns the server's bare alert
 * into a sentence saying what happened. Loop thread only.
 */
#ifndef FERRY_HTTP_TLS_CERT_H
#define FERRY_HTTP_TLS_CERT_H

#include <bearssl.h>
#include <stdbool.h>
#include <stddef.h>

struct ferry__tls_cert;

/*
 * ferry__tls_cert_load - read the chain from @cert_file and the private
 * key from @key_file (NULL: from @cert_file too). PEM: CERTIFICATE
 * objects, leaf first; the key as RSA PRIVATE KEY, EC PRIVATE KEY or
 * (unencrypted PKCS#8) PRIVATE KEY. Returns 0, FERRY_ETLS_CLIENT_CERT
 * (@why says what is wrong: a file unreadable, no certificate, no key, an
 * encrypted key, an unsupported key, a key that is not the leaf's) or
 * -ENOMEM.
 */
int ferry__tls_cert_load(const char *cert_file, const char *key_file,
			 struct ferry__tls_cert **certp, char *why,
			 size_t whylen);
void ferry__tls_cert_free(struct ferry__tls_cert *c);

/* Per connection: the handler BearSSL calls when the server asks. */
struct ferry__tls_auth {
	const br_ssl_client_certificate_class *vtable;	/* first */
	const br_ssl_client_certificate_class **inner;	/* NULL: no cert */
	bool asked;		/* the server sent a CertificateRequest */
};

/*
 * ferry__tls_auth_setup - install @a on @cc (after br_ssl_client_init_*),
 * with @cert's chain and key when @cert is not NULL (the client then
 * answers a CertificateRequest with them; without, with no certificate).
 * @a and @cert must outlive the connection.
 */
void ferry__tls_auth_setup(struct ferry__tls_auth *a,
			   const struct ferry__tls_cert *cert,
			   br_ssl_client_context *cc);

/*
 * ferry__tls_auth_why - the handshake failed with fatal alert @alert from
 * the server: if the server had asked for a client certificate, write a
 * sentence saying that it wants one (none set) or refused ours, and
 * return true; otherwise false.
 */
bool ferry__tls_auth_why(const struct ferry__tls_auth *a, int alert,
			 const char *alert_name, char *why, size_t whylen);

#endif /* FERRY_HTTP_TLS_CERT_H */
