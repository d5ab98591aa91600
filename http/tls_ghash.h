/*
 * http/tls_ghash.h - a faster GHASH for BearSSL's AES-GCM records,
 * internal to tls.c (not installed).
 *
 * BearSSL 0.6's PCLMUL GHASH reduces after every 16-byte block; on a TLS
 * download it was a fifth of the client's CPU. Ours folds 8 blocks into one
 * reduction, 16 with VPCLMULQDQ (see tls_ghash.c). Both functions follow BearSSL's br_ghash
 * contract exactly (bearssl_hash.h): @y (16 bytes) is updated in place,
 * @h (16 bytes) is the key, @data/@len any length, the last partial
 * block zero-padded; @data may be NULL when @len is 0. No state, no
 * allocation: any thread.
 */
#ifndef FERRY_HTTP_TLS_GHASH_H
#define FERRY_HTTP_TLS_GHASH_H

#include <bearssl.h>

/*
 * ferry__tls_ghash_get - the GHASH a TLS engine should use on this CPU:
 * ours when the CPU has PCLMULQDQ, SSSE3 and SSE4.1 (x86-64 only; the
 * 256-bit one when it also has VPCLMULQDQ and AVX2), else
 * BearSSL's own choice (br_ghash_pclmul_get(), else br_ghash_ctmul64).
 * Never NULL.
 */
br_ghash ferry__tls_ghash_get(void);

/*
 * ferry__tls_ghash_clmul_get - ours, or NULL when this build or this CPU
 * cannot run it (the tests compare it with br_ghash_ctmul64).
 * ferry__tls_ghash_clmul128_get - the 128-bit one alone, or NULL (so that
 * the tests cover it on a CPU that would pick the 256-bit one).
 */
br_ghash ferry__tls_ghash_clmul_get(void);
br_ghash ferry__tls_ghash_clmul128_get(void);

#endif
