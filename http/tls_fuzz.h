/*
 * http/tls_fuzz.h - the parsers inside tls.c that read what a file or a
 * peer supplies, reachable on their own for tests/fuzz (not installed;
 * nothing in the library calls these: they only forward to tls.c's
 * static functions). Same thread rule as tls.h: the config's owner.
 */
#ifndef FERRY_HTTP_TLS_FUZZ_H
#define FERRY_HTTP_TLS_FUZZ_H

#include <stddef.h>

#include "tls.h"

/*
 * ferry__tls_config_add_pem - add every CERTIFICATE (or X509 CERTIFICATE)
 * object of a PEM text of @len bytes to @cfg's trust anchors, as the CA
 * file loader does. Objects of other types and certificates BearSSL
 * cannot decode are skipped; the text ends at the first byte that is not
 * PEM. Returns the number of anchors added, or -ENOMEM.
 */
int ferry__tls_config_add_pem(struct ferry__tls_config *cfg, const char *pem,
			      size_t len);

/* The number of trust anchors in @cfg. */
size_t ferry__tls_config_anchors(const struct ferry__tls_config *cfg);

/*
 * ferry__tls_san_has_ip - does the DER certificate @der (@len bytes) list
 * the address @ip (@iplen: 4 or 16 bytes) among its subjectAltName
 * iPAddress entries? Returns 1, 0, or -1 when the certificate cannot be
 * read that far. Reads nothing outside der[0..len).
 */
int ferry__tls_san_has_ip(const unsigned char *der, size_t len,
			  const unsigned char *ip, size_t iplen);

#endif /* FERRY_HTTP_TLS_FUZZ_H */
