/*
 * tls_fixture.h - TLS peers for tests/tls: openssl s_server and the small
 * misbehaving peers of tls_server.py, started and stopped by PID through
 * tests/common/fixture.c, and the certificates certs.sh made at build time.
 */
#ifndef FERRY_TLS_FIXTURE_H
#define FERRY_TLS_FIXTURE_H

#include <stddef.h>

#include "fixture.h"

/* Directory holding certs.sh's output ($FERRY_TLS_CERTS). 0, FX_SKIP when
 * the certificates were not made (no openssl), or negative errno. */
int tf_certs(char *buf, size_t len);

/* Path of one file of the certificate dir, in a static ring of buffers;
 * an absolute @name is returned as is. */
const char *tf_cert(const char *name);

/* Make @out.pem and @out.key (@out: an absolute path): a leaf for
 * localhost/127.0.0.1/::1 signed by the test CA, valid for @seconds from
 * now (certs.sh --short). 0, FX_SKIP without openssl, or negative errno. */
int tf_short_cert(const char *out, unsigned seconds);

/*
 * Start `openssl s_server` on 127.0.0.1 (on ::1 if @args holds "--v6")
 * with @cert/@key (names inside the certificate dir, or absolute paths)
 * and the extra s_server arguments @args (NULL-terminated, may be NULL);
 * @cwd, if not NULL, is its working directory (-WWW). Returns as
 * fx_start (FX_SKIP: no openssl, or --v6 without an IPv6 loopback).
 */
int tf_s_server(struct fx_proc *p, const char *cert, const char *key,
		const char *cwd, const char *const args[]);

/* Start tls_server.py's keep-alive HTTPS server with @cert/@key. */
int tf_https(struct fx_proc *p, const char *cert, const char *key);

/* Start tls_server.py in mode "plain", "garbage" or "stall". */
int tf_peer(struct fx_proc *p, const char *mode);

#endif
