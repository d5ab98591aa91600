/*
 * http/tls_ec.h - X25519 and P-256 in 64-bit arithmetic for BearSSL's
 * TLS engines, internal to tls.c (not installed).
 *
 * BearSSL 0.6 as Debian builds it has only the 32-bit EC code
 * (br_ec_c25519_m31, br_ec_p256_m31): a full TLS handshake spent about
 * 0.5 ms in its two X25519 multiplications and 1 ms in the P-256 ECDSA
 * verification of the ServerKeyExchange. Ours multiplies 64-bit limbs
 * into 128-bit products (see tls_ec.c). It is a br_ec_impl with the
 * contract of bearssl_ec.h, the same curves as br_ec_all_m31 (X25519,
 * P-256 ours; P-384 and P-521 passed on to br_ec_all_m31), and the same
 * results, return values and accepted inputs as br_ec_c25519_m31 and
 * br_ec_p256_m31 for every input the contract defines (the tests compare
 * them). No state: any thread.
 */
#ifndef FERRY_HTTP_TLS_EC_H
#define FERRY_HTTP_TLS_EC_H

#include <bearssl.h>

/*
 * ferry__tls_ec_get - the EC implementation a TLS engine (key exchange,
 * ECDSA in the handshake and in the chain, client certificate signing)
 * should use: ours where the compiler has unsigned __int128, else
 * &br_ec_all_m31. Never NULL.
 */
const br_ec_impl *ferry__tls_ec_get(void);

#endif
