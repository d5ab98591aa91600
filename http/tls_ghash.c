/*
 * tls_ghash.c - GHASH with PCLMULQDQ, 8 blocks per reduction, or with
 * VPCLMULQDQ on 256-bit vectors, 16 (see tls_ghash.h for the contract).
 *
 * GHASH multiplies in GF(2^128) = GF(2)[x] / P, P = x^128 + x^7 + x^2 +
 * x + 1: for each 16-byte block X, Y <- (Y + X) * H. Per block that is a
 * 128x128-bit carry-less product (three PCLMULQDQ, Karatsuba) and a
 * reduction of the 256-bit result (two more, plus shuffles). The
 * reduction is linear, so it can wait: with the powers H^1..H^8,
 *
 *	((((Y + X1) H + X2) H + ...) + X8) H
 *	    = (Y + X1) H^8 + X2 H^7 + ... + X8 H^1,
 *
 * eight products summed unreduced and one reduction, instead of eight
 * dependent multiply-and-reduce steps (which is what BearSSL's
 * br_ghash_pclmul does). The powers depend only on H, which br_ghash
 * passes on every call, so they are computed per call, and only as many
 * as the call has blocks (a TLS record is up to 1024 blocks; the calls
 * for its 13-byte header and its length block need one power, H itself).
 * Where the CPU has VPCLMULQDQ the same runs on 256-bit vectors, two
 * blocks per instruction and 16 blocks per reduction (ferry__ghash_vclmul).
 *
 * Bit order. GCM reads a block as a polynomial whose x^0 coefficient is
 * the most significant bit of byte 0 and x^127 the least significant bit
 * of byte 15. Loading the block and reversing its bytes (PSHUFB) makes a
 * 128-bit integer whose bit i is the coefficient of x^(127-i): the
 * polynomial bit-reflected. The carry-less product of two reflected
 * values, a 255-bit integer, has in bit k the coefficient of x^(254-k);
 * read as a 256-bit reflected value (bit j <-> x^(255-j)) it is the
 * product times x. So the key is stored as H * x^-1 (a left shift by one
 * of the reflected H, and when bit 127 falls out, an add of x^-1 = x^127
 * + x^6 + x + 1, reflected: 0xC2000000000000000000000000000001), and then
 * clmul(X, H x^-1) is exactly X H as a reflected 256-bit value, with no
 * shift of the product. The powers keep the same form: the product of
 * (H^k x^-1) and (H x^-1) is H^(k+1) x^-1.
 *
 * Reduction of a reflected 256-bit D = D1:D0 (bits 128..255 are x^0 ..
 * x^127, bits 0..127 are x^128 .. x^255): each set bit j < 128 is
 * cancelled by adding P x^(127-j), which in reflected form sets bits j,
 * j+121, j+126, j+127 and j+128. Done 64 bits at a time: for the low
 * quadword a0, add a0 * (1 + z^121 + z^126 + z^127 + z^128) (z^j: bit j),
 * whose middle part is clmul(a0, 0xC200000000000000) shifted up 64 bits;
 * then the same for the (new) second quadword. What is left in bits
 * 128..255 is D mod P, reflected. See ferry__reduce().
 *
 * All of it is constant-time: PCLMULQDQ, shuffles and XORs, no
 * data-dependent branch or table index (the reflection's carry of the
 * key is a mask).
 */
#include <stdint.h>
#include <string.h>

#include <bearssl.h>

#include "tls_ghash.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define GHASH_CLMUL 1
#endif

#ifdef GHASH_CLMUL
#include <immintrin.h>

/* Only these functions need the instructions; the rest of the library is
 * built for the baseline and picks this file's code at run time. */
#define TARGET __attribute__((target("pclmul,sse2,ssse3,sse4.1")))

#define GHASH_AGG 8		/* blocks per reduction, 128-bit path */
#define GHASH_VAGG 16		/* blocks per reduction, 256-bit path */

/* The powers H^1..H^GHASH_VAGG of the key (each times x^-1, reflected),
 * and for Karatsuba the XOR of each one's two halves (low quadword). */
struct ghash_key {
	__m128i h[GHASH_VAGG];
	__m128i k[GHASH_VAGG];
};

/* An unreduced sum of products, in Karatsuba's three parts. */
struct ghash_acc {
	__m128i lo, hi, mid;
};

TARGET static inline __m128i ferry__bswap128(__m128i x)
{
	const __m128i rev = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
					 11, 12, 13, 14, 15);

	return _mm_shuffle_epi8(x, rev);
}

TARGET static inline __m128i ferry__swap64(__m128i x)
{
	return _mm_shuffle_epi32(x, 0x4e);
}

TARGET static inline __m128i ferry__load_block(const unsigned char *p)
{
	return ferry__bswap128(
		_mm_loadu_si128((const __m128i *)(const void *)p));
}

/* acc (+)= x * h, h with its Karatsuba word hk (h0 ^ h1 in the low half). */
TARGET static inline void ferry__acc_add(struct ghash_acc *a, __m128i x,
					 __m128i h, __m128i hk)
{
	__m128i xk = _mm_xor_si128(x, ferry__swap64(x));

	a->lo = _mm_xor_si128(a->lo, _mm_clmulepi64_si128(x, h, 0x00));
	a->hi = _mm_xor_si128(a->hi, _mm_clmulepi64_si128(x, h, 0x11));
	a->mid = _mm_xor_si128(a->mid, _mm_clmulepi64_si128(xk, hk, 0x00));
}

/* D mod P for the 256-bit reflected sum in @a (see the top comment). */
TARGET static inline __m128i ferry__reduce(const struct ghash_acc *a)
{
	const __m128i c = _mm_set_epi64x(0, (long long)0xc200000000000000ULL);
	__m128i mid = _mm_xor_si128(a->mid, _mm_xor_si128(a->lo, a->hi));
	__m128i d0 = _mm_xor_si128(a->lo, _mm_slli_si128(mid, 8));
	__m128i d1 = _mm_xor_si128(a->hi, _mm_srli_si128(mid, 8));
	/* Fold quadword 0: it cancels; v.lo is the new quadword 1, v.hi
	 * goes to quadword 2. */
	__m128i v = _mm_xor_si128(ferry__swap64(d0),
				  _mm_clmulepi64_si128(d0, c, 0x00));

	/* Fold quadword 1 into quadwords 2 and 3. */
	return _mm_xor_si128(_mm_xor_si128(d1, ferry__swap64(v)),
			     _mm_clmulepi64_si128(v, c, 0x00));
}

TARGET static inline __m128i ferry__karatsuba_word(__m128i h)
{
	return _mm_xor_si128(h, ferry__swap64(h));
}

/* H x^-1, reflected, from the 16 bytes BearSSL keeps (GCM's order). */
TARGET static __m128i ferry__key_first(const void *h)
{
	const __m128i xinv = _mm_set_epi64x((long long)0xc200000000000000ULL, 1);
	__m128i x = ferry__load_block(h);
	/* Left shift by one across the two quadwords. */
	__m128i sh = _mm_or_si128(_mm_slli_epi64(x, 1),
				  _mm_slli_si128(_mm_srli_epi64(x, 63), 8));
	/* All ones when bit 127 (the x^0 coefficient) was set. */
	__m128i top = _mm_srai_epi32(_mm_shuffle_epi32(x, 0xff), 31);

	return _mm_xor_si128(sh, _mm_and_si128(top, xinv));
}

/* The first @n powers (1 <= n <= GHASH_VAGG), by doubling: H^(i+1) =
 * H^(i+1-m) H^m with m the largest power of two <= i, so the products of
 * each round are independent and the chain is four deep, not fifteen. */
TARGET static void ferry__key_init(struct ghash_key *key, const void *h,
				   size_t n)
{
	key->h[0] = ferry__key_first(h);
	key->k[0] = ferry__karatsuba_word(key->h[0]);
	for (size_t m = 1; m < n; m *= 2)
		for (size_t i = m; i < n && i < 2 * m; i++) {
			struct ghash_acc a = { _mm_setzero_si128(),
					       _mm_setzero_si128(),
					       _mm_setzero_si128() };

			ferry__acc_add(&a, key->h[i - m], key->h[m - 1],
				       key->k[m - 1]);
			key->h[i] = ferry__reduce(&a);
			key->k[i] = ferry__karatsuba_word(key->h[i]);
		}
}

/* y for @n whole blocks at @p (n <= GHASH_AGG): block i times H^(n-i). */
TARGET static inline __attribute__((always_inline)) __m128i
ferry__ghash_blocks(__m128i y, const struct ghash_key *key,
		    const unsigned char *p, size_t n)
{
	struct ghash_acc a = { _mm_setzero_si128(), _mm_setzero_si128(),
			       _mm_setzero_si128() };

	ferry__acc_add(&a, _mm_xor_si128(y, ferry__load_block(p)),
		       key->h[n - 1], key->k[n - 1]);
#pragma GCC unroll 8
	for (size_t i = 1; i < n; i++)
		ferry__acc_add(&a, ferry__load_block(p + 16 * i),
			       key->h[n - 1 - i], key->k[n - 1 - i]);
	return ferry__reduce(&a);
}

/* The last @len bytes (0 < len < 16 * GHASH_AGG), zero-padded to whole
 * blocks: one more sum. */
TARGET static __m128i ferry__ghash_tail(__m128i acc,
					const struct ghash_key *key,
					const unsigned char *p, size_t len)
{
	unsigned char tail[16 * GHASH_AGG] = { 0 };

	memcpy(tail, p, len);
	return ferry__ghash_blocks(acc, key, tail, (len + 15) / 16);
}

TARGET static void ferry__ghash_clmul(void *y, const void *h, const void *data,
				      size_t len)
{
	const unsigned char *p = data;
	size_t nblocks = (len + 15) / 16;
	struct ghash_key key;
	__m128i acc;

	if (len == 0)
		return;
	ferry__key_init(&key, h, nblocks < GHASH_AGG ? nblocks : GHASH_AGG);
	acc = ferry__load_block(y);
	for (; len >= 16 * GHASH_AGG; p += 16 * GHASH_AGG, len -= 16 * GHASH_AGG)
		acc = ferry__ghash_blocks(acc, &key, p, GHASH_AGG);
	if (len > 0)
		acc = ferry__ghash_tail(acc, &key, p, len);
	_mm_storeu_si128((__m128i *)y, ferry__bswap128(acc));
}

/*
 * The same with VPCLMULQDQ on 256-bit vectors: two blocks per
 * instruction, each 128-bit lane one block. PCLMULQDQ's throughput is
 * what bounds the 128-bit version (three per block, Karatsuba), so
 * halving the instructions nearly halves the time. The eight blocks of a
 * step are four vectors (X1 X2) .. (X7 X8) against (H^8 H^7) .. (H^2 H^1);
 * the two lanes of each sum are added before the one reduction, in
 * 128 bits. Short inputs and the tail take the 128-bit path.
 */
#define TARGET_V __attribute__((target("vpclmulqdq,avx2,pclmul,sse2,ssse3,sse4.1")))

struct ghash_vkey {
	__m256i h[GHASH_VAGG / 2];
	__m256i k[GHASH_VAGG / 2];
};

struct ghash_vacc {
	__m256i lo, hi, mid;
};

TARGET_V static inline __m256i ferry__load_2blocks(const unsigned char *p)
{
	const __m256i rev = _mm256_set_epi8(
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
		0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

	return _mm256_shuffle_epi8(
		_mm256_loadu_si256((const __m256i *)(const void *)p), rev);
}

TARGET_V static inline void ferry__vacc_add(struct ghash_vacc *a, __m256i x,
					    __m256i h, __m256i hk)
{
	__m256i xk = _mm256_xor_si256(x, _mm256_shuffle_epi32(x, 0x4e));

	a->lo = _mm256_xor_si256(a->lo, _mm256_clmulepi64_epi128(x, h, 0x00));
	a->hi = _mm256_xor_si256(a->hi, _mm256_clmulepi64_epi128(x, h, 0x11));
	a->mid = _mm256_xor_si256(a->mid,
				  _mm256_clmulepi64_epi128(xk, hk, 0x00));
}

TARGET_V static inline __m128i ferry__fold_lanes(__m256i v)
{
	return _mm_xor_si128(_mm256_castsi256_si128(v),
			     _mm256_extracti128_si256(v, 1));
}

/* Pair the powers: vector j holds H^(n-2j) low, H^(n-1-2j) high. */
TARGET_V static void ferry__vkey_init(struct ghash_vkey *vk,
				      const struct ghash_key *key)
{
	for (size_t j = 0; j < GHASH_VAGG / 2; j++) {
		vk->h[j] = _mm256_set_m128i(key->h[GHASH_VAGG - 2 - 2 * j],
					    key->h[GHASH_VAGG - 1 - 2 * j]);
		vk->k[j] = _mm256_set_m128i(key->k[GHASH_VAGG - 2 - 2 * j],
					    key->k[GHASH_VAGG - 1 - 2 * j]);
	}
}

TARGET_V static inline __m128i ferry__vghash_step(__m128i y,
						  const struct ghash_vkey *vk,
						  const unsigned char *p)
{
	struct ghash_vacc a = { _mm256_setzero_si256(), _mm256_setzero_si256(),
				_mm256_setzero_si256() };
	struct ghash_acc r;
	__m256i y2 = _mm256_inserti128_si256(_mm256_setzero_si256(), y, 0);

	ferry__vacc_add(&a, _mm256_xor_si256(y2, ferry__load_2blocks(p)),
			vk->h[0], vk->k[0]);
#pragma GCC unroll 8
	for (size_t j = 1; j < GHASH_VAGG / 2; j++)
		ferry__vacc_add(&a, ferry__load_2blocks(p + 32 * j), vk->h[j],
				vk->k[j]);
	r.lo = ferry__fold_lanes(a.lo);
	r.hi = ferry__fold_lanes(a.hi);
	r.mid = ferry__fold_lanes(a.mid);
	return ferry__reduce(&r);
}

TARGET_V static void ferry__ghash_vclmul(void *y, const void *h,
					 const void *data, size_t len)
{
	const unsigned char *p = data;
	struct ghash_vkey vk;
	struct ghash_key key;
	__m128i acc;

	if (len < 16 * GHASH_VAGG) {
		ferry__ghash_clmul(y, h, data, len);
		return;
	}
	ferry__key_init(&key, h, GHASH_VAGG);
	ferry__vkey_init(&vk, &key);
	acc = ferry__load_block(y);
	for (; len >= 16 * GHASH_VAGG; p += 16 * GHASH_VAGG, len -= 16 * GHASH_VAGG)
		acc = ferry__vghash_step(acc, &vk, p);
	/* Under 16 blocks left: the 128-bit path, 8 and then the rest. */
	if (len >= 16 * GHASH_AGG) {
		acc = ferry__ghash_blocks(acc, &key, p, GHASH_AGG);
		p += 16 * GHASH_AGG;
		len -= 16 * GHASH_AGG;
	}
	if (len > 0)
		acc = ferry__ghash_tail(acc, &key, p, len);
	_mm_storeu_si128((__m128i *)y, ferry__bswap128(acc));
}

static int ferry__vclmul_supported(void)
{
	return __builtin_cpu_supports("vpclmulqdq") &&
	       __builtin_cpu_supports("avx2");
}

static int ferry__clmul_supported(void)
{
	return __builtin_cpu_supports("pclmul") &&
	       __builtin_cpu_supports("sse2") &&
	       __builtin_cpu_supports("ssse3") &&
	       __builtin_cpu_supports("sse4.1");
}
#endif

br_ghash ferry__tls_ghash_clmul_get(void)
{
#ifdef GHASH_CLMUL
	if (ferry__clmul_supported())
		return ferry__vclmul_supported() ? ferry__ghash_vclmul
						 : ferry__ghash_clmul;
#endif
	return NULL;
}

br_ghash ferry__tls_ghash_clmul128_get(void)
{
#ifdef GHASH_CLMUL
	if (ferry__clmul_supported())
		return ferry__ghash_clmul;
#endif
	return NULL;
}

br_ghash ferry__tls_ghash_get(void)
{
	br_ghash g = ferry__tls_ghash_clmul_get();

	if (!g)
		g = br_ghash_pclmul_get();
	return g ? g : br_ghash_ctmul64;
}
