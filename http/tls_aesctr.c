/*
 * tls_aesctr.c - AES-CTR with AES-NI, eight blocks in flight, or with
 * VAES on 256-bit vectors, sixteen (see tls_aesctr.h for why and for the
 * contract).
 *
 * Counter blocks are the 12-byte IV followed by the 32-bit block counter,
 * big-endian (GCM's inc32), which wraps modulo 2^32. Each step makes
 * eight of them, runs the rounds over all eight, one round key at a time
 * (eight independent AESENC chains keep the unit busy while each waits
 * for its previous round), and XORs the key stream into the data. The
 * rest, under eight blocks, goes one block at a time; a final partial
 * block uses the first bytes of its key stream block and, as in BearSSL,
 * is not counted in the counter returned.
 *
 * The round keys are BearSSL's, from br_aes_x86ni_ctr_init: in the
 * context's skey.skni, num_rounds + 1 keys of 16 bytes in encryption
 * order. That layout is BearSSL 0.6's and not a promise; the tests
 * compare every length with br_aes_x86ni_ctr_run, so a BearSSL that
 * changed it would fail them, not the connections.
 */
#include <stdint.h>
#include <string.h>

#include <bearssl.h>

#include "tls_aesctr.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#include <stdbool.h>

#define TARGET __attribute__((target("aes,sse2,ssse3,sse4.1")))

#define CTR_WIDE 8		/* blocks in flight */

static const br_block_ctr_class ctr_vtable, ctr_vtable_v;

/* BearSSL's key schedule, then our class in the context. */
static void ferry__ctr_init(const br_block_ctr_class **ctx, const void *key,
			    size_t len)
{
	br_aes_x86ni_ctr_keys *k = (br_aes_x86ni_ctr_keys *)(void *)ctx;

	br_aes_x86ni_ctr_init(k, key, len);
	k->vtable = &ctr_vtable;
}

static void ferry__ctr_init_v(const br_block_ctr_class **ctx, const void *key,
			      size_t len)
{
	br_aes_x86ni_ctr_keys *k = (br_aes_x86ni_ctr_keys *)(void *)ctx;

	br_aes_x86ni_ctr_init(k, key, len);
	k->vtable = &ctr_vtable_v;
}

/* The counter block for @cc: @base (the IV, last word zero) with the
 * counter in its last four bytes, big-endian. */
TARGET static inline __m128i ferry__ctr_block(__m128i base, uint32_t cc)
{
	return _mm_insert_epi32(base, (int)__builtin_bswap32(cc), 3);
}

TARGET static inline __m128i ferry__ctr_one(const __m128i *rk, unsigned nr,
					    __m128i x)
{
	x = _mm_xor_si128(x, rk[0]);
	for (unsigned r = 1; r < nr; r++)
		x = _mm_aesenc_si128(x, rk[r]);
	return _mm_aesenclast_si128(x, rk[nr]);
}

/* CTR_WIDE blocks at @p (whole), counters cc .. cc + 7. */
TARGET static inline void ferry__ctr_wide(const __m128i *rk, unsigned nr,
					  __m128i base, uint32_t cc,
					  unsigned char *p)
{
	__m128i x[CTR_WIDE];

#pragma GCC unroll 8
	for (unsigned i = 0; i < CTR_WIDE; i++)
		x[i] = _mm_xor_si128(ferry__ctr_block(base, cc + i), rk[0]);
	for (unsigned r = 1; r < nr; r++) {
		__m128i k = rk[r];

#pragma GCC unroll 8
		for (unsigned i = 0; i < CTR_WIDE; i++)
			x[i] = _mm_aesenc_si128(x[i], k);
	}
#pragma GCC unroll 8
	for (unsigned i = 0; i < CTR_WIDE; i++) {
		__m128i *q = (__m128i *)(void *)(p + 16 * i);

		x[i] = _mm_aesenclast_si128(x[i], rk[nr]);
		_mm_storeu_si128(q, _mm_xor_si128(x[i], _mm_loadu_si128(q)));
	}
}

TARGET static uint32_t ferry__ctr_run(const br_block_ctr_class *const *ctx,
				      const void *iv, uint32_t cc, void *data,
				      size_t len)
{
	const br_aes_x86ni_ctr_keys *k = (const void *)ctx;
	unsigned nr = k->num_rounds;
	unsigned char *p = data;
	unsigned char ivb[16] = { 0 };
	__m128i rk[15];
	__m128i base;

	for (unsigned r = 0; r <= nr; r++)
		rk[r] = _mm_loadu_si128(
			(const __m128i *)(const void *)(k->skey.skni + 16 * r));
	memcpy(ivb, iv, 12);
	base = _mm_loadu_si128((const __m128i *)(const void *)ivb);
	for (; len >= 16 * CTR_WIDE; p += 16 * CTR_WIDE, len -= 16 * CTR_WIDE) {
		ferry__ctr_wide(rk, nr, base, cc, p);
		cc += CTR_WIDE;
	}
	for (; len >= 16; p += 16, len -= 16, cc++) {
		__m128i *q = (__m128i *)(void *)p;
		__m128i ks = ferry__ctr_one(rk, nr, ferry__ctr_block(base, cc));

		_mm_storeu_si128(q, _mm_xor_si128(ks, _mm_loadu_si128(q)));
	}
	if (len > 0) {
		unsigned char tmp[16];

		_mm_storeu_si128(
			(__m128i *)(void *)tmp,
			ferry__ctr_one(rk, nr, ferry__ctr_block(base, cc)));
		for (size_t i = 0; i < len; i++)
			p[i] ^= tmp[i];
	}
	return cc;
}

/*
 * With VAES on 256-bit vectors: two blocks per instruction, sixteen in
 * flight; the rest goes through the 128-bit code.
 */
#define TARGET_V __attribute__((target("vaes,avx2,aes,sse2,ssse3,sse4.1")))

TARGET_V static inline __m256i ferry__ctr_pair(__m128i base, uint32_t cc)
{
	return _mm256_set_m128i(ferry__ctr_block(base, cc + 1),
				ferry__ctr_block(base, cc));
}

TARGET_V static inline void ferry__ctr_wide_v(const __m256i *rk, unsigned nr,
					      __m128i base, uint32_t cc,
					      unsigned char *p)
{
	__m256i x[8];

#pragma GCC unroll 8
	for (unsigned i = 0; i < 8; i++)
		x[i] = _mm256_xor_si256(ferry__ctr_pair(base, cc + 2 * i),
					rk[0]);
	for (unsigned r = 1; r < nr; r++) {
		__m256i k = rk[r];

#pragma GCC unroll 8
		for (unsigned i = 0; i < 8; i++)
			x[i] = _mm256_aesenc_epi128(x[i], k);
	}
#pragma GCC unroll 8
	for (unsigned i = 0; i < 8; i++) {
		__m256i *q = (__m256i *)(void *)(p + 32 * i);

		x[i] = _mm256_aesenclast_epi128(x[i], rk[nr]);
		_mm256_storeu_si256(q, _mm256_xor_si256(x[i],
							_mm256_loadu_si256(q)));
	}
}

TARGET_V static uint32_t ferry__ctr_run_v(const br_block_ctr_class *const *ctx,
					  const void *iv, uint32_t cc,
					  void *data, size_t len)
{
	const br_aes_x86ni_ctr_keys *k = (const void *)ctx;
	unsigned nr = k->num_rounds;
	unsigned char *p = data;
	unsigned char ivb[16] = { 0 };
	__m256i rk[15];
	__m128i base;

	if (len < 256)
		return ferry__ctr_run(ctx, iv, cc, data, len);
	for (unsigned r = 0; r <= nr; r++)
		rk[r] = _mm256_broadcastsi128_si256(_mm_loadu_si128(
			(const __m128i *)(const void *)(k->skey.skni + 16 * r)));
	memcpy(ivb, iv, 12);
	base = _mm_loadu_si128((const __m128i *)(const void *)ivb);
	for (; len >= 256; p += 256, len -= 256) {
		ferry__ctr_wide_v(rk, nr, base, cc, p);
		cc += 16;
	}
	return len ? ferry__ctr_run(ctx, iv, cc, p, len) : cc;
}

static const br_block_ctr_class ctr_vtable = {
	sizeof(br_aes_x86ni_ctr_keys), 16, 4, ferry__ctr_init, ferry__ctr_run,
};

static const br_block_ctr_class ctr_vtable_v = {
	sizeof(br_aes_x86ni_ctr_keys),
	16,
	4,
	ferry__ctr_init_v,
	ferry__ctr_run_v,
};

/* CPUID leaf 7, ECX bit 9. Asked directly: clang 14's
 * __builtin_cpu_supports does not know "vaes". The OS's saving of the
 * 256-bit registers is what __builtin_cpu_supports("avx2") checks. */
static bool ferry__has_vaes(void)
{
	unsigned a, b, c, d;

	return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 9));
}

const br_block_ctr_class *ferry__tls_aes_ctr128_get(void)
{
	if (__builtin_cpu_supports("aes") && __builtin_cpu_supports("ssse3") &&
	    __builtin_cpu_supports("sse4.1") && br_aes_x86ni_ctr_get_vtable())
		return &ctr_vtable;
	return NULL;
}

const br_block_ctr_class *ferry__tls_aes_ctr_get(void)
{
	const br_block_ctr_class *c = ferry__tls_aes_ctr128_get();

	if (c && ferry__has_vaes() && __builtin_cpu_supports("avx2"))
		return &ctr_vtable_v;
	return c;
}

#else

const br_block_ctr_class *ferry__tls_aes_ctr_get(void)
{
	return NULL;
}

const br_block_ctr_class *ferry__tls_aes_ctr128_get(void)
{
	return NULL;
}

#endif
