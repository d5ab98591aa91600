/*
 * tls_ec.c - X25519 and P-256 with 64-bit limbs and 128-bit products
 * (see tls_ec.h for why and for the contract).
 *
 * X25519 (RFC 7748). GF(2^255 - 19) in five limbs of 51 bits: a product
 * of two elements is 25 limb products, those of weight 2^255 and above
 * folded down times 19 (2^255 = 19 mod p), then one carry pass. Limbs
 * stay under 2^54 between operations (a subtraction adds 4p first, so
 * nothing goes negative), which keeps every sum of products under 2^128.
 * The Montgomery ladder is RFC 7748's, with a masked swap; the result
 * is x2 / z2, the inverse by Fermat (z^(p-2), a fixed chain of squarings).
 * BearSSL 0.6's conventions are kept byte for byte (br_ec_c25519_m31;
 * older BearSSL sources read the scalar big-endian, 0.6 does not, and
 * the tests pin it): the point is 32 bytes little-endian with its top
 * bit ignored (and cleared in the caller's buffer), the scalar is
 * little-endian as in RFC 7748, at most 32 bytes, zero-extended at the
 * top, then clamped (bits 0-2 and 255 cleared, bit 254 set); mul()
 * returns 1 for any 32-byte point, 0 for another length or a longer
 * scalar; muladd() is not defined (0).
 *
 * P-256 (SEC 1, FIPS 186-4 D.1.2.3). GF(p), p = 2^256 - 2^224 + 2^192 +
 * 2^96 - 1, in four 64-bit limbs in Montgomery form (a R mod p, R =
 * 2^256), always fully reduced. Since p = -1 mod 2^64, the Montgomery
 * factor -1/p mod 2^64 is 1: each reduction step adds (low limb) * p.
 * (A squaring is a product: a dedicated one, ten limb products instead
 * of sixteen, came out slower with GCC 12.) Points are Jacobian (X/Z^2,
 * Y/Z^3; Z = 0 is the point at infinity): a = -3 doubling (3M + 5S),
 * the general addition (12M + 4S) and the mixed one with an affine
 * point (8M + 3S), whose exceptional cases (an operand at infinity,
 * equal operands) are handled by masks where they can occur.
 *
 * Constant time. mul() and mulgen() take secret scalars (the ECDHE key,
 * the ECDSA nonce and key). mul(): 4-bit fixed windows over a 16-entry
 * table of the point's multiples; mulgen(): a fixed comb over a
 * 15-entry table of the generator's (tls_ec_table.h). Every table is
 * read whole through masks, the sequence of operations is the same
 * whatever the scalar's value (only its length in bytes shows, as
 * bearssl_ec.h allows), and no branch or memory index depends on it or
 * on the point. muladd() is mul() and mul() or mulgen(), then a masked
 * final addition: bearssl_ec.h asks every multiplication to be constant
 * time, so it is, though BearSSL uses muladd() only to verify ECDSA
 * signatures, on public data (a variable-time one would be faster).
 *
 * As in ec_p256_m31.c: a point must be 65 bytes, 0x04 then X and Y each
 * under p, on the curve (else mul() and muladd() return 0, and still do
 * all their work); a scalar of 0 or of the order gives the point at
 * infinity, written 0x04 then 64 zero bytes (mul() returns 1, mulgen()
 * 65); muladd() returns 0 when the sum is the point at infinity, and
 * also, as the contract says, when either scalar is 0 mod n (ec_p256_m31
 * returns 1 there with a wrong point).
 *
 * Every other curve (P-384, P-521) goes to br_ec_all_m31.
 */
#include <stdint.h>
#include <string.h>

#include <bearssl.h>

#include "tls_ec.h"

#ifdef __x86_64__
#include <x86intrin.h>
#endif

#ifdef __SIZEOF_INT128__

#include "tls_ec_table.h"

typedef unsigned __int128 u128;

/* ------------------------------------------------------------------ */
/* X25519: GF(2^255 - 19), five limbs of 51 bits                      */

#define M51 ((uint64_t)0x7ffffffffffff)

typedef uint64_t fe[5];

static void ferry__fe_from_bytes(fe h, const unsigned char *s)
{
	uint64_t w[4];

	for (int i = 0; i < 4; i++) {
		w[i] = 0;
		for (int j = 7; j >= 0; j--)
			w[i] = w[i] << 8 | s[8 * i + j];
	}
	h[0] = w[0] & M51;
	h[1] = (w[0] >> 51 | w[1] << 13) & M51;
	h[2] = (w[1] >> 38 | w[2] << 26) & M51;
	h[3] = (w[2] >> 25 | w[3] << 39) & M51;
	h[4] = (w[3] >> 12) & M51;	/* bit 255 dropped */
}

/* One carry pass: limbs back under 2^51 (limb 1 under 2^51 + 2^13). */
static void ferry__fe_carry(fe h)
{
	h[1] += h[0] >> 51;
	h[0] &= M51;
	h[2] += h[1] >> 51;
	h[1] &= M51;
	h[3] += h[2] >> 51;
	h[2] &= M51;
	h[4] += h[3] >> 51;
	h[3] &= M51;
	h[0] += 19 * (h[4] >> 51);
	h[4] &= M51;
	h[1] += h[0] >> 51;
	h[0] &= M51;
}

/* The unique value under p, 32 bytes little-endian. */
static void ferry__fe_to_bytes(unsigned char *s, const fe f)
{
	fe h;
	uint64_t q, w[4];

	memcpy(h, f, sizeof(h));
	ferry__fe_carry(h);
	ferry__fe_carry(h);
	/* Now h < 2^255 + small; q = 1 when h >= p (h + 19 reaches 2^255). */
	q = (h[0] + 19) >> 51;
	q = (h[1] + q) >> 51;
	q = (h[2] + q) >> 51;
	q = (h[3] + q) >> 51;
	q = (h[4] + q) >> 51;
	h[0] += 19 * q;
	h[1] += h[0] >> 51;
	h[0] &= M51;
	h[2] += h[1] >> 51;
	h[1] &= M51;
	h[3] += h[2] >> 51;
	h[2] &= M51;
	h[4] += h[3] >> 51;
	h[3] &= M51;
	h[4] &= M51;		/* minus 2^255: h - p */
	w[0] = h[0] | h[1] << 51;
	w[1] = h[1] >> 13 | h[2] << 38;
	w[2] = h[2] >> 26 | h[3] << 25;
	w[3] = h[3] >> 39 | h[4] << 12;
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 8; j++)
			s[8 * i + j] = (unsigned char)(w[i] >> (8 * j));
}

static void ferry__fe_add(fe h, const fe f, const fe g)
{
	for (int i = 0; i < 5; i++)
		h[i] = f[i] + g[i];
}

/* f - g + 4p: g's limbs must be under 2^53 (any product or carry is). */
static void ferry__fe_sub(fe h, const fe f, const fe g)
{
	h[0] = f[0] + 0x1fffffffffffb4 - g[0];
	for (int i = 1; i < 5; i++)
		h[i] = f[i] + 0x1ffffffffffffc - g[i];
}

/* Limbs of t (each under 2^128) carried into h. */
static void ferry__fe_reduce128(fe h, u128 t[5])
{
	uint64_t c;

	t[1] += (uint64_t)(t[0] >> 51);
	t[2] += (uint64_t)(t[1] >> 51);
	t[3] += (uint64_t)(t[2] >> 51);
	t[4] += (uint64_t)(t[3] >> 51);
	c = (uint64_t)(t[4] >> 51);
	h[0] = ((uint64_t)t[0] & M51) + 19 * c;
	h[1] = ((uint64_t)t[1] & M51) + (h[0] >> 51);
	h[0] &= M51;
	h[2] = (uint64_t)t[2] & M51;
	h[3] = (uint64_t)t[3] & M51;
	h[4] = (uint64_t)t[4] & M51;
}

static void ferry__fe_mul(fe h, const fe f, const fe g)
{
	uint64_t g19[5];
	u128 t[5];

	for (int i = 1; i < 5; i++)
		g19[i] = 19 * g[i];
	t[0] = (u128)f[0] * g[0] + (u128)f[1] * g19[4] + (u128)f[2] * g19[3] +
	       (u128)f[3] * g19[2] + (u128)f[4] * g19[1];
	t[1] = (u128)f[0] * g[1] + (u128)f[1] * g[0] + (u128)f[2] * g19[4] +
	       (u128)f[3] * g19[3] + (u128)f[4] * g19[2];
	t[2] = (u128)f[0] * g[2] + (u128)f[1] * g[1] + (u128)f[2] * g[0] +
	       (u128)f[3] * g19[4] + (u128)f[4] * g19[3];
	t[3] = (u128)f[0] * g[3] + (u128)f[1] * g[2] + (u128)f[2] * g[1] +
	       (u128)f[3] * g[0] + (u128)f[4] * g19[4];
	t[4] = (u128)f[0] * g[4] + (u128)f[1] * g[3] + (u128)f[2] * g[2] +
	       (u128)f[3] * g[1] + (u128)f[4] * g[0];
	ferry__fe_reduce128(h, t);
}

static void ferry__fe_sq(fe h, const fe f)
{
	uint64_t d0 = 2 * f[0], d1 = 2 * f[1], d3_19 = 38 * f[3];
	uint64_t f4_19 = 19 * f[4], d4_19 = 38 * f[4];
	u128 t[5];

	t[0] = (u128)f[0] * f[0] + (u128)f[1] * d4_19 + (u128)f[2] * d3_19;
	t[1] = (u128)d0 * f[1] + (u128)f[2] * d4_19 + (u128)f[3] * (19 * f[3]);
	t[2] = (u128)d0 * f[2] + (u128)f[1] * f[1] + (u128)f[3] * d4_19;
	t[3] = (u128)d0 * f[3] + (u128)d1 * f[2] + (u128)f[4] * f4_19;
	t[4] = (u128)d0 * f[4] + (u128)d1 * f[3] + (u128)f[2] * f[2];
	ferry__fe_reduce128(h, t);
}

/* f * 121665 ((A - 2) / 4 for curve25519's A = 486662). */
static void ferry__fe_mul_a24(fe h, const fe f)
{
	u128 t[5];

	for (int i = 0; i < 5; i++)
		t[i] = (u128)f[i] * 121665;
	ferry__fe_reduce128(h, t);
}

static void ferry__fe_sqn(fe h, const fe f, int n)
{
	ferry__fe_sq(h, f);
	while (--n > 0)
		ferry__fe_sq(h, h);
}

/* z^(p - 2) = 1/z (0 for 0), p - 2 = 2^255 - 21: a fixed chain. */
static void ferry__fe_invert(fe out, const fe z)
{
	fe z2, z9, z11, a, b, c;

	ferry__fe_sq(z2, z);			/* z^2 */
	ferry__fe_sqn(a, z2, 2);		/* z^8 */
	ferry__fe_mul(z9, a, z);		/* z^9 */
	ferry__fe_mul(z11, z9, z2);		/* z^11 */
	ferry__fe_sq(a, z11);			/* z^22 */
	ferry__fe_mul(a, a, z9);		/* z^(2^5 - 1) */
	ferry__fe_sqn(b, a, 5);
	ferry__fe_mul(b, b, a);			/* z^(2^10 - 1) */
	ferry__fe_sqn(c, b, 10);
	ferry__fe_mul(c, c, b);			/* z^(2^20 - 1) */
	ferry__fe_sqn(a, c, 20);
	ferry__fe_mul(a, a, c);			/* z^(2^40 - 1) */
	ferry__fe_sqn(a, a, 10);
	ferry__fe_mul(a, a, b);			/* z^(2^50 - 1) */
	ferry__fe_sqn(c, a, 50);
	ferry__fe_mul(c, c, a);			/* z^(2^100 - 1) */
	ferry__fe_sqn(b, c, 100);
	ferry__fe_mul(b, b, c);			/* z^(2^200 - 1) */
	ferry__fe_sqn(b, b, 50);
	ferry__fe_mul(b, b, a);			/* z^(2^250 - 1) */
	ferry__fe_sqn(b, b, 5);			/* z^(2^255 - 32) */
	ferry__fe_mul(out, b, z11);		/* z^(2^255 - 21) */
}

/* Swap f and g when @bit is 1, by a mask (no branch). */
static void ferry__fe_cswap(fe f, fe g, uint64_t bit)
{
	uint64_t m = -bit;

	for (int i = 0; i < 5; i++) {
		uint64_t t = m & (f[i] ^ g[i]);

		f[i] ^= t;
		g[i] ^= t;
	}
}

/* x2/z2 <- 2 (x2/z2), x3/z3 <- (x2/z2) + (x3/z3) with difference x1
 * (RFC 7748 section 5). */
static void ferry__x25519_step(fe x2, fe z2, fe x3, fe z3, const fe x1)
{
	fe a, aa, b, bb, e, c, d, da, cb;

	ferry__fe_add(a, x2, z2);
	ferry__fe_sq(aa, a);
	ferry__fe_sub(b, x2, z2);
	ferry__fe_sq(bb, b);
	ferry__fe_sub(e, aa, bb);
	ferry__fe_add(c, x3, z3);
	ferry__fe_sub(d, x3, z3);
	ferry__fe_mul(da, d, a);
	ferry__fe_mul(cb, c, b);
	ferry__fe_add(a, da, cb);
	ferry__fe_sq(x3, a);
	ferry__fe_sub(b, da, cb);
	ferry__fe_sq(b, b);
	ferry__fe_mul(z3, b, x1);
	ferry__fe_mul(x2, aa, bb);
	ferry__fe_mul_a24(a, e);
	ferry__fe_add(a, a, aa);
	ferry__fe_mul(z2, e, a);
}

static const unsigned char X25519_GEN[32] = { 9 };

static const unsigned char X25519_ORDER[32] = {
	0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

static uint32_t ferry__x25519_mul(unsigned char *G, size_t Glen,
				  const unsigned char *kb, size_t kblen)
{
	unsigned char k[32] = { 0 };
	fe x1, x2 = { 1 }, z2 = { 0 }, x3, z3 = { 1 };
	uint64_t swap = 0;

	if (Glen != 32 || kblen > 32)
		return 0;
	G[31] &= 0x7f;
	ferry__fe_from_bytes(x1, G);
	memcpy(x3, x1, sizeof(x3));
	memcpy(k, kb, kblen);
	k[0] &= 0xf8;
	k[31] &= 0x7f;
	k[31] |= 0x40;
	for (int i = 254; i >= 0; i--) {
		uint64_t bit = (k[i >> 3] >> (i & 7)) & 1;

		ferry__fe_cswap(x2, x3, swap ^ bit);
		ferry__fe_cswap(z2, z3, swap ^ bit);
		swap = bit;
		ferry__x25519_step(x2, z2, x3, z3, x1);
	}
	ferry__fe_cswap(x2, x3, swap);
	ferry__fe_cswap(z2, z3, swap);
	ferry__fe_invert(z2, z2);
	ferry__fe_mul(x2, x2, z2);
	ferry__fe_to_bytes(G, x2);
	return 1;
}

/* ------------------------------------------------------------------ */
/* P-256: GF(p) in four 64-bit limbs, Montgomery form                 */

typedef uint64_t fp[4];

static const fp P256_P = {
	0xffffffffffffffff, 0x00000000ffffffff, 0, 0xffffffff00000001,
};

/* R^2 mod p (R = 2^256), to enter Montgomery form. */
static const fp P256_R2 = {
	0x0000000000000003, 0xfffffffbffffffff, 0xfffffffffffffffe,
	0x00000004fffffffd,
};

/*
 * *o = a + b + c and *o = a - b - c, c and the result (carry, borrow)
 * 0 or 1. GCC 12 makes two additions of a 128-bit a + b + c, so x86-64
 * has the intrinsics (one ADC, one SBB).
 */
#ifdef __x86_64__
static inline uint64_t ferry__adc(uint64_t *o, uint64_t a, uint64_t b,
				  uint64_t c)
{
	unsigned long long r;
	uint64_t out = _addcarry_u64((unsigned char)c, a, b, &r);

	*o = r;
	return out;
}

static inline uint64_t ferry__sbb(uint64_t *o, uint64_t a, uint64_t b,
				  uint64_t c)
{
	unsigned long long r;
	uint64_t out = _subborrow_u64((unsigned char)c, a, b, &r);

	*o = r;
	return out;
}
#else
static inline uint64_t ferry__adc(uint64_t *o, uint64_t a, uint64_t b,
				  uint64_t c)
{
	u128 s = (u128)a + b + c;

	*o = (uint64_t)s;
	return (uint64_t)(s >> 64);
}

static inline uint64_t ferry__sbb(uint64_t *o, uint64_t a, uint64_t b,
				  uint64_t c)
{
	u128 d = (u128)a - b - c;

	*o = (uint64_t)d;
	return (uint64_t)(d >> 64) & 1;
}
#endif

/* r <- t - p if t = t4:t[0..3] (t < 2p) is not under p, else t. */
static inline void ferry__fp_csub(fp r, const fp t, uint64_t t4)
{
	uint64_t s0, s1, s2, s3, b, keep;

	b = ferry__sbb(&s0, t[0], P256_P[0], 0);
	b = ferry__sbb(&s1, t[1], P256_P[1], b);
	b = ferry__sbb(&s2, t[2], P256_P[2], b);
	b = ferry__sbb(&s3, t[3], P256_P[3], b);
	/* A borrow out of t4 too: t < p, keep t. (Four scalars, not a
	 * loop: GCC would make it vectors, loaded from just-stored
	 * halves, a store-forwarding stall in every operation.) */
	keep = -(uint64_t)(t4 < b);
	r[0] = s0 ^ ((s0 ^ t[0]) & keep);
	r[1] = s1 ^ ((s1 ^ t[1]) & keep);
	r[2] = s2 ^ ((s2 ^ t[2]) & keep);
	r[3] = s3 ^ ((s3 ^ t[3]) & keep);
}

/*
 * One round of r = a b / R: t += a bi, then t = (t + m p) / 2^64 with
 * m = t[0] (-1/p mod 2^64 is 1). With p's shape that needs one product:
 * m p = m (2^64 - 1) + m (2^32 - 1) 2^64 + m p3 2^192; the low limb
 * cancels (t[0] - m = 0) with a carry of m, so limb 1 gets m 2^32.
 */
static inline void ferry__fp_round(uint64_t t[5], const fp a, uint64_t bi)
{
	uint64_t m, t5, c1;
	u128 c;

	c = (u128)a[0] * bi + t[0];
	t[0] = (uint64_t)c;
	c = (u128)a[1] * bi + t[1] + (uint64_t)(c >> 64);
	t[1] = (uint64_t)c;
	c = (u128)a[2] * bi + t[2] + (uint64_t)(c >> 64);
	t[2] = (uint64_t)c;
	c = (u128)a[3] * bi + t[3] + (uint64_t)(c >> 64);
	t[3] = (uint64_t)c;
	c = (u128)t[4] + (uint64_t)(c >> 64);
	t[4] = (uint64_t)c;
	t5 = (uint64_t)(c >> 64);
	m = t[0];
	c = (u128)t[1] + (m << 32);
	t[0] = (uint64_t)c;
	c1 = (uint64_t)(c >> 64) + (m >> 32);
	c = (u128)t[2] + c1;
	t[1] = (uint64_t)c;
	c = (u128)m * P256_P[3] + t[3] + (uint64_t)(c >> 64);
	t[2] = (uint64_t)c;
	c = (u128)t[4] + (uint64_t)(c >> 64);
	t[3] = (uint64_t)c;
	t[4] = t5 + (uint64_t)(c >> 64);
}

/* r = a b / R mod p (Montgomery, CIOS); inputs and result under p. */
static void ferry__fp_mul(fp r, const fp a, const fp b)
{
	uint64_t t[5] = { 0 };

	ferry__fp_round(t, a, b[0]);
	ferry__fp_round(t, a, b[1]);
	ferry__fp_round(t, a, b[2]);
	ferry__fp_round(t, a, b[3]);
	ferry__fp_csub(r, t, t[4]);
}

static void ferry__fp_sq(fp r, const fp a)
{
	ferry__fp_mul(r, a, a);
}

static void ferry__fp_add(fp r, const fp a, const fp b)
{
	uint64_t t[4], c;

	c = ferry__adc(&t[0], a[0], b[0], 0);
	c = ferry__adc(&t[1], a[1], b[1], c);
	c = ferry__adc(&t[2], a[2], b[2], c);
	c = ferry__adc(&t[3], a[3], b[3], c);
	ferry__fp_csub(r, t, c);
}

static void ferry__fp_sub(fp r, const fp a, const fp b)
{
	uint64_t t[4], m, c;

	c = ferry__sbb(&t[0], a[0], b[0], 0);
	c = ferry__sbb(&t[1], a[1], b[1], c);
	c = ferry__sbb(&t[2], a[2], b[2], c);
	c = ferry__sbb(&t[3], a[3], b[3], c);
	m = -c;		/* went negative: add p back */
	c = ferry__adc(&r[0], t[0], P256_P[0] & m, 0);
	c = ferry__adc(&r[1], t[1], P256_P[1] & m, c);
	c = ferry__adc(&r[2], t[2], P256_P[2] & m, c);
	(void)ferry__adc(&r[3], t[3], P256_P[3] & m, c);
}

/* All ones when a is 0, else 0. */
static uint64_t ferry__fp_is_zero(const fp a)
{
	uint64_t z = a[0] | a[1] | a[2] | a[3];

	return ((z | -z) >> 63) - 1;
}

/* r = a when @m is all ones, unchanged when 0. */
static void ferry__fp_cmov(fp r, const fp a, uint64_t m)
{
	for (int i = 0; i < 4; i++)
		r[i] ^= m & (r[i] ^ a[i]);
}

static void ferry__fp_sqn(fp r, const fp a, int n)
{
	ferry__fp_sq(r, a);
	while (--n > 0)
		ferry__fp_sq(r, r);
}

/*
 * a^(p - 2) = 1/a (0 for 0). From the top, p - 2 is 32 ones, 31 zeros,
 * a one, 96 zeros, 94 ones, a zero and a one: runs of ones from
 * a^(2^k - 1) for k = 2, 3, 6, 12, 15, 30, 32.
 */
static void ferry__fp_invert(fp r, const fp a)
{
	fp x2, x3, x6, x12, x15, x30, x32, t;

	ferry__fp_sq(t, a);
	ferry__fp_mul(x2, t, a);
	ferry__fp_sq(t, x2);
	ferry__fp_mul(x3, t, a);
	ferry__fp_sqn(t, x3, 3);
	ferry__fp_mul(x6, t, x3);
	ferry__fp_sqn(t, x6, 6);
	ferry__fp_mul(x12, t, x6);
	ferry__fp_sqn(t, x12, 3);
	ferry__fp_mul(x15, t, x3);
	ferry__fp_sqn(t, x15, 15);
	ferry__fp_mul(x30, t, x15);
	ferry__fp_sqn(t, x30, 2);
	ferry__fp_mul(x32, t, x2);
	ferry__fp_sqn(t, x32, 32);
	ferry__fp_mul(t, t, a);			/* 32 ones, 31 zeros, 1 */
	ferry__fp_sqn(t, t, 96);		/* 96 zeros */
	ferry__fp_sqn(t, t, 32);
	ferry__fp_mul(t, t, x32);
	ferry__fp_sqn(t, t, 32);
	ferry__fp_mul(t, t, x32);
	ferry__fp_sqn(t, t, 30);
	ferry__fp_mul(t, t, x30);		/* 94 ones */
	ferry__fp_sqn(t, t, 2);
	ferry__fp_mul(r, t, a);			/* 0, 1 */
}

/* 32 bytes big-endian to limbs (not reduced, not converted). */
static void ferry__fp_from_be(fp r, const unsigned char *s)
{
	for (int i = 0; i < 4; i++) {
		uint64_t w = 0;

		for (int j = 0; j < 8; j++)
			w = w << 8 | s[8 * (3 - i) + j];
		r[i] = w;
	}
}

/* All ones when a (plain limbs) is under p, else 0. */
static uint64_t ferry__fp_below_p(const fp a)
{
	uint64_t b = 0;

	for (int i = 0; i < 4; i++)
		b = (uint64_t)(((u128)a[i] - P256_P[i] - b) >> 64) & 1;
	return -b;
}

static void ferry__fp_to_mont(fp r, const fp a)
{
	ferry__fp_mul(r, a, P256_R2);
}

/* Out of Montgomery form, 32 bytes big-endian. */
static void ferry__fp_to_be(unsigned char *s, const fp a)
{
	static const fp one = { 1 };
	fp t;

	ferry__fp_mul(t, a, one);
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 8; j++)
			s[8 * (3 - i) + j] = (unsigned char)(t[i] >> (56 - 8 * j));
}

/* ------------------------------------------------------------------ */
/* P-256 points                                                       */

struct jac {
	fp x, y, z;
};

static const unsigned char P256_G[65] = {
	0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc,
	0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d,
	0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96,
	0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb,
	0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31,
	0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5,
};

static const unsigned char P256_N[32] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
	0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

/* The curve's b, big-endian. */
static const unsigned char P256_B[32] = {
	0x5a, 0xc6, 0x35, 0xd8, 0xaa, 0x3a, 0x93, 0xe7, 0xb3, 0xeb, 0xbd,
	0x55, 0x76, 0x98, 0x86, 0xbc, 0x65, 0x1d, 0x06, 0xb0, 0xcc, 0x53,
	0xb0, 0xf6, 0x3b, 0xce, 0x3c, 0x3e, 0x27, 0xd2, 0x60, 0x4b,
};

/* 1 in Montgomery form: R mod p. */
static const fp P256_ONE = {
	0x0000000000000001, 0xffffffff00000000, 0xffffffffffffffff,
	0x00000000fffffffe,
};

/*
 * Decode @len bytes at @src into @P (Z = 1). Returns all ones for a
 * valid point (65 bytes, 0x04, X and Y under p, y^2 = x^3 - 3x + b),
 * else 0; the work is the same either way (only the length is public).
 */
static uint64_t ferry__p256_decode(struct jac *P, const unsigned char *src,
				   size_t len)
{
	fp x, y, b, t1, t2;
	uint64_t ok;

	if (len != 65)
		return 0;
	ferry__fp_from_be(x, src + 1);
	ferry__fp_from_be(y, src + 33);
	ferry__fp_from_be(b, P256_B);
	ok = ferry__fp_below_p(x) & ferry__fp_below_p(y);
	ok &= -(uint64_t)(src[0] == 0x04);
	ferry__fp_to_mont(P->x, x);
	ferry__fp_to_mont(P->y, y);
	ferry__fp_to_mont(b, b);
	memcpy(P->z, P256_ONE, sizeof(fp));
	/* x^3 - 3x + b - y^2 */
	ferry__fp_sq(t1, P->x);
	ferry__fp_mul(t1, t1, P->x);
	ferry__fp_sub(t1, t1, P->x);
	ferry__fp_sub(t1, t1, P->x);
	ferry__fp_sub(t1, t1, P->x);
	ferry__fp_add(t1, t1, b);
	ferry__fp_sq(t2, P->y);
	ferry__fp_sub(t1, t1, t2);
	return ok & ferry__fp_is_zero(t1);
}

/* 0x04, X, Y; the point at infinity as 0x04 and zeros (1/0 = 0). */
static void ferry__p256_encode(unsigned char *dst, const struct jac *P)
{
	fp zi, zi2, t;

	ferry__fp_invert(zi, P->z);
	ferry__fp_sq(zi2, zi);
	dst[0] = 0x04;
	ferry__fp_mul(t, P->x, zi2);
	ferry__fp_to_be(dst + 1, t);
	ferry__fp_mul(zi2, zi2, zi);
	ferry__fp_mul(t, P->y, zi2);
	ferry__fp_to_be(dst + 33, t);
}

/*
 * Q <- 2Q (a = -3): delta = Z^2, gamma = Y^2, beta = X gamma,
 * alpha = 3 (X - delta)(X + delta); X' = alpha^2 - 8 beta,
 * Z' = (Y + Z)^2 - gamma - delta, Y' = alpha (4 beta - X') - 8 gamma^2.
 * Right for the point at infinity too (Z' = 0); P-256 has no point
 * with Y = 0.
 */
static void ferry__p256_double(struct jac *Q)
{
	fp delta, gamma, beta, alpha, t1, t2;

	ferry__fp_sq(delta, Q->z);
	ferry__fp_sq(gamma, Q->y);
	ferry__fp_mul(beta, Q->x, gamma);
	ferry__fp_sub(t1, Q->x, delta);
	ferry__fp_add(t2, Q->x, delta);
	ferry__fp_mul(t1, t1, t2);
	ferry__fp_add(alpha, t1, t1);
	ferry__fp_add(alpha, alpha, t1);
	ferry__fp_add(t1, Q->y, Q->z);
	ferry__fp_sq(t1, t1);
	ferry__fp_sub(t1, t1, gamma);
	ferry__fp_sub(Q->z, t1, delta);
	ferry__fp_add(beta, beta, beta);
	ferry__fp_add(beta, beta, beta);	/* 4 beta */
	ferry__fp_sq(t1, alpha);
	ferry__fp_add(t2, beta, beta);
	ferry__fp_sub(Q->x, t1, t2);
	ferry__fp_sub(t1, beta, Q->x);
	ferry__fp_mul(t1, alpha, t1);
	ferry__fp_sq(gamma, gamma);
	ferry__fp_add(gamma, gamma, gamma);
	ferry__fp_add(gamma, gamma, gamma);
	ferry__fp_add(gamma, gamma, gamma);	/* 8 gamma^2 */
	ferry__fp_sub(Q->y, t1, gamma);
}

/*
 * P1 <- P1 + P2: U1 = X1 Z2^2, U2 = X2 Z1^2, S1 = Y1 Z2^3, S2 = Y2 Z1^3,
 * H = U2 - U1, R = S2 - S1; X3 = R^2 - H^3 - 2 U1 H^2,
 * Y3 = R (U1 H^2 - X3) - S1 H^3, Z3 = H Z1 Z2.
 * Wrong when either operand is at infinity or when they are equal
 * (then H = R = 0 and Z3 = 0); returns all ones in that last case
 * (H = 0 and R = 0), else 0, for the caller to pick a doubling.
 */
static uint64_t ferry__p256_add(struct jac *P1, const struct jac *P2)
{
	fp u1, u2, s1, s2, h, r, t1, t2;
	uint64_t same;

	ferry__fp_sq(t1, P2->z);
	ferry__fp_mul(u1, P1->x, t1);
	ferry__fp_mul(t1, t1, P2->z);
	ferry__fp_mul(s1, P1->y, t1);
	ferry__fp_sq(t1, P1->z);
	ferry__fp_mul(u2, P2->x, t1);
	ferry__fp_mul(t1, t1, P1->z);
	ferry__fp_mul(s2, P2->y, t1);
	ferry__fp_sub(h, u2, u1);
	ferry__fp_sub(r, s2, s1);
	same = ferry__fp_is_zero(h) & ferry__fp_is_zero(r);
	ferry__fp_sq(t1, h);			/* H^2 */
	ferry__fp_mul(t2, t1, h);		/* H^3 */
	ferry__fp_mul(u1, u1, t1);		/* U1 H^2 */
	ferry__fp_sq(t1, r);
	ferry__fp_sub(t1, t1, t2);
	ferry__fp_sub(t1, t1, u1);
	ferry__fp_sub(P1->x, t1, u1);
	ferry__fp_sub(t1, u1, P1->x);
	ferry__fp_mul(t1, r, t1);
	ferry__fp_mul(t2, s1, t2);
	ferry__fp_sub(P1->y, t1, t2);
	ferry__fp_mul(t1, P1->z, P2->z);
	ferry__fp_mul(P1->z, t1, h);
	return same;
}

static void ferry__jac_cmov(struct jac *r, const struct jac *a, uint64_t m)
{
	ferry__fp_cmov(r->x, a->x, m);
	ferry__fp_cmov(r->y, a->y, m);
	ferry__fp_cmov(r->z, a->z, m);
}

/* 1 ... 15 times P, and a zero entry (index 0) that is never read. */
struct p256_table {
	struct jac p[16];
};

static void ferry__p256_table(struct p256_table *T, const struct jac *P)
{
	memset(&T->p[0], 0, sizeof(T->p[0]));
	T->p[1] = *P;
	for (int i = 2; i < 16; i += 2) {
		/* 2k P by doubling, 2k + 1 by adding P: no equal operands. */
		T->p[i] = T->p[i / 2];
		ferry__p256_double(&T->p[i]);
		T->p[i + 1] = T->p[i];
		(void)ferry__p256_add(&T->p[i + 1], P);
	}
}

/* d P from the table, every entry read (d public to no one). */
static void ferry__p256_select(struct jac *R, const struct p256_table *T,
			       uint64_t d)
{
	memset(R, 0, sizeof(*R));
	for (uint64_t i = 1; i < 16; i++) {
		uint64_t e = i ^ d;

		ferry__jac_cmov(R, &T->p[i], ((e | -e) >> 63) - 1);
	}
}

/*
 * Q <- x P for a scalar of @xlen bytes big-endian: 4-bit windows from
 * the top; Q = 16 Q + d P. While Q is still at infinity (qz) the window's
 * point is taken as is; a zero window adds nothing. For x under the
 * order n the addition never meets equal or opposite operands: Q is
 * 16 m P with 16 m + d <= x < n.
 */
static void ferry__p256_mul(struct jac *Q, const struct jac *P,
			    const unsigned char *x, size_t xlen)
{
	struct p256_table T;
	uint64_t qz = ~(uint64_t)0;

	ferry__p256_table(&T, P);
	memset(Q, 0, sizeof(*Q));
	for (size_t i = 0; i < 2 * xlen; i++) {
		uint64_t d = (x[i / 2] >> (i & 1 ? 0 : 4)) & 15;
		uint64_t dnz = -((d + 15) >> 4);	/* d != 0 */
		struct jac W, U;

		for (int k = 0; k < 4; k++)
			ferry__p256_double(Q);
		ferry__p256_select(&W, &T, d);
		U = *Q;
		(void)ferry__p256_add(&U, &W);
		ferry__jac_cmov(Q, &W, dnz & qz);
		ferry__jac_cmov(Q, &U, dnz & ~qz);
		qz &= ~dnz;
	}
}

static uint32_t ferry__p256_api_mul(unsigned char *G, size_t Glen,
				    const unsigned char *x, size_t xlen)
{
	struct jac P, Q;
	uint64_t ok;

	if (Glen != 65)
		return 0;
	ok = ferry__p256_decode(&P, G, Glen);
	ferry__p256_mul(&Q, &P, x, xlen);
	ferry__p256_encode(G, &Q);
	return (uint32_t)(ok & 1);
}

/*
 * P1 <- P1 + (x2, y2), an affine point (Z2 = 1): ferry__p256_add() with
 * U1 = X1 and S1 = Y1, 8M + 3S. Wrong when P1 is at infinity or is the
 * same point; ferry__p256_mulgen() never asks for either.
 */
static void ferry__p256_add_affine(struct jac *P1, const fp x2, const fp y2)
{
	fp u2, s2, h, r, t1, t2, t3;

	ferry__fp_sq(t1, P1->z);
	ferry__fp_mul(u2, x2, t1);
	ferry__fp_mul(t1, t1, P1->z);
	ferry__fp_mul(s2, y2, t1);
	ferry__fp_sub(h, u2, P1->x);
	ferry__fp_sub(r, s2, P1->y);
	ferry__fp_sq(t1, h);			/* H^2 */
	ferry__fp_mul(t2, t1, h);		/* H^3 */
	ferry__fp_mul(t3, P1->x, t1);		/* U1 H^2 */
	ferry__fp_sq(t1, r);
	ferry__fp_sub(t1, t1, t2);
	ferry__fp_sub(t1, t1, t3);
	ferry__fp_sub(t1, t1, t3);		/* X3 */
	ferry__fp_sub(t3, t3, t1);
	ferry__fp_mul(t3, r, t3);
	ferry__fp_mul(t2, P1->y, t2);
	ferry__fp_sub(P1->y, t3, t2);
	memcpy(P1->x, t1, sizeof(fp));
	ferry__fp_mul(P1->z, P1->z, h);
}

/* Entry @idx (1..15) of P256_COMB as a point with Z = 1; every entry
 * read through masks. @idx 0 gives zeros (not read by the caller). */
static void ferry__p256_comb_select(struct jac *R, uint64_t idx)
{
	memset(R, 0, sizeof(*R));
	for (uint64_t e = 1; e <= 15; e++) {
		uint64_t d = e ^ idx, m = ((d | -d) >> 63) - 1;

		for (int i = 0; i < 4; i++) {
			R->x[i] |= m & P256_COMB[e - 1][i];
			R->y[i] |= m & P256_COMB[e - 1][4 + i];
		}
	}
	memcpy(R->z, P256_ONE, sizeof(fp));
}

/*
 * Q <- x G with a fixed comb (Lim and Lee): the 256-bit scalar as four
 * 64-bit parts k0..k3, entry i of P256_COMB holding the sum of
 * 2^(64 j) G over the bits j of i. For bit b = 63 down to 0: Q = 2 Q,
 * then add the entry whose index is bit b of k0, k1, k2, k3: 64
 * doublings and 64 mixed additions, against 256 and 64 general ones in
 * ferry__p256_mul(). As there, a masked first entry while Q is at
 * infinity, nothing added for index 0, and for x under n no equal or
 * opposite operands (the two are sums over disjoint sets of x's bits,
 * whose total is at most x). Only the last 32 bytes of a longer scalar
 * count: under n, the others are zeros.
 */
static void ferry__p256_mulgen(struct jac *Q, const unsigned char *x,
			       size_t xlen)
{
	unsigned char k[32] = { 0 };
	uint64_t qz = ~(uint64_t)0;

	if (xlen > 32) {
		x += xlen - 32;
		xlen = 32;
	}
	memcpy(k + 32 - xlen, x, xlen);
	memset(Q, 0, sizeof(*Q));
	for (int b = 63; b >= 0; b--) {
		uint64_t idx = 0, inz;
		struct jac E, W;

		for (int j = 0; j < 4; j++) {
			int bit = 64 * j + b;

			idx |= (uint64_t)((k[31 - bit / 8] >> (bit % 8)) & 1)
			       << j;
		}
		inz = -((idx + 15) >> 4);	/* idx != 0 */
		ferry__p256_double(Q);
		ferry__p256_comb_select(&E, idx);
		W = *Q;
		ferry__p256_add_affine(&W, E.x, E.y);
		ferry__jac_cmov(Q, &E, inz & qz);
		ferry__jac_cmov(Q, &W, inz & ~qz);
		qz &= ~inz;
	}
}

static size_t ferry__p256_api_mulgen(unsigned char *R, const unsigned char *x,
				     size_t xlen)
{
	struct jac Q;

	ferry__p256_mulgen(&Q, x, xlen);
	ferry__p256_encode(R, &Q);
	return 65;
}

/*
 * A <- x A + y B (B NULL: the generator). The sum is S = P + Q unless
 * P = Q (the addition says so: then 2Q); 0 when either product is at
 * infinity (a scalar 0 mod n, which the contract calls an error) or the
 * sum is (P = -Q). Masks, no branch, as in mul().
 */
static uint32_t ferry__p256_api_muladd(unsigned char *A, const unsigned char *B,
				       size_t len, const unsigned char *x,
				       size_t xlen, const unsigned char *y,
				       size_t ylen)
{
	struct jac P, Q, S;
	uint64_t ok, same, pz, qz;

	if (len != 65)
		return 0;
	ok = ferry__p256_decode(&P, A, len);
	ferry__p256_mul(&S, &P, x, xlen);
	P = S;
	if (B) {
		ok &= ferry__p256_decode(&S, B, len);
		ferry__p256_mul(&Q, &S, y, ylen);
	} else {
		ferry__p256_mulgen(&Q, y, ylen);
	}
	pz = ferry__fp_is_zero(P.z);
	qz = ferry__fp_is_zero(Q.z);
	S = P;
	same = ferry__p256_add(&S, &Q);
	ferry__p256_double(&Q);
	ferry__jac_cmov(&S, &Q, same);
	ok &= ~pz & ~qz & ~ferry__fp_is_zero(S.z);
	ferry__p256_encode(A, &S);
	return (uint32_t)(ok & 1);
}

/* ------------------------------------------------------------------ */
/* The br_ec_impl: ours for curve25519 and secp256r1, else m31's      */

static const unsigned char *ferry__ec_generator(int curve, size_t *len)
{
	switch (curve) {
	case BR_EC_curve25519:
		*len = sizeof(X25519_GEN);
		return X25519_GEN;
	case BR_EC_secp256r1:
		*len = sizeof(P256_G);
		return P256_G;
	default:
		return br_ec_all_m31.generator(curve, len);
	}
}

static const unsigned char *ferry__ec_order(int curve, size_t *len)
{
	switch (curve) {
	case BR_EC_curve25519:
		*len = sizeof(X25519_ORDER);
		return X25519_ORDER;
	case BR_EC_secp256r1:
		*len = sizeof(P256_N);
		return P256_N;
	default:
		return br_ec_all_m31.order(curve, len);
	}
}

static size_t ferry__ec_xoff(int curve, size_t *len)
{
	switch (curve) {
	case BR_EC_curve25519:
		*len = 32;
		return 0;
	case BR_EC_secp256r1:
		*len = 32;
		return 1;
	default:
		return br_ec_all_m31.xoff(curve, len);
	}
}

static uint32_t ferry__ec_mul(unsigned char *G, size_t Glen,
			      const unsigned char *x, size_t xlen, int curve)
{
	switch (curve) {
	case BR_EC_curve25519:
		return ferry__x25519_mul(G, Glen, x, xlen);
	case BR_EC_secp256r1:
		return ferry__p256_api_mul(G, Glen, x, xlen);
	default:
		return br_ec_all_m31.mul(G, Glen, x, xlen, curve);
	}
}

static size_t ferry__ec_mulgen(unsigned char *R, const unsigned char *x,
			       size_t xlen, int curve)
{
	switch (curve) {
	case BR_EC_curve25519:
		/* As ec_c25519_m31: the generator, then mul() over it
		 * (which leaves it so for a scalar over 32 bytes). */
		memcpy(R, X25519_GEN, sizeof(X25519_GEN));
		(void)ferry__x25519_mul(R, sizeof(X25519_GEN), x, xlen);
		return sizeof(X25519_GEN);
	case BR_EC_secp256r1:
		return ferry__p256_api_mulgen(R, x, xlen);
	default:
		return br_ec_all_m31.mulgen(R, x, xlen, curve);
	}
}

static uint32_t ferry__ec_muladd(unsigned char *A, const unsigned char *B,
				 size_t len, const unsigned char *x,
				 size_t xlen, const unsigned char *y,
				 size_t ylen, int curve)
{
	switch (curve) {
	case BR_EC_curve25519:
		return 0;	/* no ECDSA on curve25519 */
	case BR_EC_secp256r1:
		return ferry__p256_api_muladd(A, B, len, x, xlen, y, ylen);
	default:
		return br_ec_all_m31.muladd(A, B, len, x, xlen, y, ylen,
					    curve);
	}
}

static const br_ec_impl ec_impl = {
	/* br_ec_all_m31's: P-256, P-384, P-521, curve25519. */
	(uint32_t)0x23800000,
	ferry__ec_generator,
	ferry__ec_order,
	ferry__ec_xoff,
	ferry__ec_mul,
	ferry__ec_mulgen,
	ferry__ec_muladd,
};

const br_ec_impl *ferry__tls_ec_get(void)
{
	return &ec_impl;
}

#else

const br_ec_impl *ferry__tls_ec_get(void)
{
	return &br_ec_all_m31;
}

#endif
