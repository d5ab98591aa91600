/*
 * http/tls_aesctr.h - AES-CTR for BearSSL's GCM records with eight blocks
 * in flight, internal to tls.c (not installed).
 *
 * BearSSL 0.6's AES-NI CTR keeps four blocks in flight, which leaves the
 * AES units of a current x86-64 CPU half idle (AESENC has a latency of
 * about four cycles and a throughput of one or two a cycle). Ours keeps
 * eight, or sixteen in 256-bit VAES vectors. It is a br_block_ctr_class whose context is BearSSL's own
 * br_aes_x86ni_ctr_keys (so it fits the engine's record contexts) and
 * whose key schedule is BearSSL's br_aes_x86ni_ctr_init; only run()
 * differs. Same contract as br_block_ctr_class.run: @data of any length
 * updated in place, a final partial block uses part of a key stream
 * block, returns the next counter. No state of its own: any thread.
 */
#ifndef FERRY_HTTP_TLS_AESCTR_H
#define FERRY_HTTP_TLS_AESCTR_H

#include <bearssl.h>

/*
 * ferry__tls_aes_ctr_get - the AES-CTR a TLS engine should use: ours on
 * x86-64 when the CPU has AES-NI, SSSE3 and SSE4.1 (and BearSSL's x86ni
 * code is there to make the key schedule; the 256-bit one when the CPU
 * also has VAES and AVX2), else NULL: keep BearSSL's choice.
 * ferry__tls_aes_ctr128_get - the 128-bit one alone, or NULL (for the
 * tests, on a CPU that would pick the 256-bit one).
 */
const br_block_ctr_class *ferry__tls_aes_ctr_get(void);
const br_block_ctr_class *ferry__tls_aes_ctr128_get(void);

#endif
