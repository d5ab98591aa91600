/*
 * test_tls_ec.c - the EC implementation the TLS engines use
 * (http/tls_ec.c) against BearSSL's br_ec_c25519_m31 and br_ec_p256_m31,
 * on seeded random inputs (tests/common/rng.h) and on the edges: every
 * scalar length, scalars 0, 1, n - 1, n, n + 1 and all ones, longer
 * scalars with leading zeros, points off the curve, with a coordinate
 * not under p, a bad first byte or a bad length, and muladd()'s
 * doubling and infinity cases. Then the RFC 7748 X25519 vectors, the
 * RFC 6979 P-256 ECDSA signatures verified through br_ecdsa_i31_vrfy_raw
 * with our implementation, and random ECDSA signatures made by one
 * implementation and verified by the other. No sockets: arithmetic only.
 */
#include <bearssl.h>
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rng.h"
#include "tls_ec.h"

/* Seeded per test: tests/common/rng.h. */
static uint64_t rng;

static const br_ec_impl *ours(void)
{
	return ferry__tls_ec_get();
}

/* @n bytes from a hex string of 2n digits. */
static void unhex(unsigned char *out, const char *hex, size_t n)
{
	cr_assert_eq(strlen(hex), 2 * n, "bad test vector %s", hex);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (unsigned char)v;
	}
}

static const unsigned char P256_N[32] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
	0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

/* p, big-endian. */
static const unsigned char P256_P[32] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

/* 32-byte big-endian a + b (mod 2^256), and a - b; return the carry or
 * borrow. */
static unsigned add32(unsigned char *r, const unsigned char *a,
		      const unsigned char *b)
{
	unsigned c = 0;

	for (int i = 31; i >= 0; i--) {
		c += (unsigned)a[i] + b[i];
		r[i] = (unsigned char)c;
		c >>= 8;
	}
	return c;
}

static unsigned sub32(unsigned char *r, const unsigned char *a,
		      const unsigned char *b)
{
	int c = 0;

	for (int i = 31; i >= 0; i--) {
		c = (int)a[i] - b[i] - c;
		r[i] = (unsigned char)c;
		c = c < 0;
	}
	return (unsigned)c;
}

/* A random scalar in 1 .. n - 1. */
static void rand_scalar(unsigned char k[32])
{
	unsigned char t[32], zero[32] = { 0 };

	do
		fx_rng_fill(&rng, k, 32);
	while (!sub32(t, k, P256_N) || !memcmp(k, zero, 32));
}

/* A random point of P-256 (BearSSL's mulgen of a random scalar). */
static void rand_point(unsigned char pt[65])
{
	unsigned char k[32];

	rand_scalar(k);
	cr_assert_eq(br_ec_p256_m31.mulgen(pt, k, 32, BR_EC_secp256r1), 65);
}

/* ------------------------------------------------------------------ */
/* The impl as a whole                                                */

Test(tls_ec, same_curves_and_constants_as_all_m31)
{
	const br_ec_impl *e = ours();
	static const int curves[] = { BR_EC_secp256r1, BR_EC_secp384r1,
				      BR_EC_secp521r1, BR_EC_curve25519 };

	cr_assert_eq(e->supported_curves, br_ec_all_m31.supported_curves);
	for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
		int c = curves[i];
		size_t la, lb, xa, xb;
		const unsigned char *a = e->generator(c, &la);
		const unsigned char *b = br_ec_all_m31.generator(c, &lb);

		cr_assert_eq(la, lb, "curve %d", c);
		cr_assert_arr_eq(a, b, la, "generator, curve %d", c);
		a = e->order(c, &la);
		b = br_ec_all_m31.order(c, &lb);
		cr_assert_eq(la, lb, "curve %d", c);
		cr_assert_arr_eq(a, b, la, "order, curve %d", c);
		cr_assert_eq(e->xoff(c, &xa), br_ec_all_m31.xoff(c, &xb));
		cr_assert_eq(xa, xb, "xoff length, curve %d", c);
	}
}

/* P-384 and P-521 are BearSSL's: the same answers. */
Test(tls_ec, other_curves_passed_on)
{
	static const int curves[] = { BR_EC_secp384r1, BR_EC_secp521r1 };

	fx_rng_seed(&rng, 2);
	for (size_t i = 0; i < 2; i++) {
		int c = curves[i];
		unsigned char k[66] = { 0 }, a[133], b[133];
		size_t klen;
		size_t n = br_ec_all_m31.order(c, &klen) ? klen : 0;

		fx_rng_fill(&rng, k + 1, n - 1);	/* under the order */
		cr_assert_eq(ours()->mulgen(a, k, n, c),
			     br_ec_all_m31.mulgen(b, k, n, c));
		cr_assert_arr_eq(a, b, 2 * n + 1, "mulgen, curve %d", c);
		k[n - 1] ^= 0x5a;
		cr_assert_eq(ours()->mul(a, 2 * n + 1, k, n, c), 1);
		cr_assert_eq(br_ec_all_m31.mul(b, 2 * n + 1, k, n, c), 1);
		cr_assert_arr_eq(a, b, 2 * n + 1, "mul, curve %d", c);
	}
}

/* ------------------------------------------------------------------ */
/* X25519                                                             */

/* Both on a copy of @pt (@plen bytes) with @k (@klen bytes): the same
 * return value and the same bytes in the buffer. */
static void x25519_same(const unsigned char *pt, size_t plen,
			const unsigned char *k, size_t klen)
{
	unsigned char a[48], b[48];
	uint32_t ra, rb;

	memset(a, 0xa5, sizeof(a));
	memcpy(a, pt, plen);
	memcpy(b, a, sizeof(a));
	ra = ours()->mul(a, plen, k, klen, BR_EC_curve25519);
	rb = br_ec_c25519_m31.mul(b, plen, k, klen, BR_EC_curve25519);
	cr_assert_eq(ra, rb, "return value: point length %zu, scalar "
		     "length %zu", plen, klen);
	/* The bytes after the point too: nothing written past it. */
	cr_assert_arr_eq(a, b, sizeof(a), "X25519 differs: point length "
			 "%zu, scalar length %zu", plen, klen);
}

Test(tls_ec, x25519_random_points_every_scalar_length)
{
	unsigned char pt[32], k[32];

	fx_rng_seed(&rng, 3);
	for (int round = 0; round < 4; round++)
		for (size_t klen = 0; klen <= 32; klen++) {
			fx_rng_fill(&rng, pt, 32);	/* top bit random */
			fx_rng_fill(&rng, k, 32);
			x25519_same(pt, 32, k, klen);
		}
}

/* u at and over p (2^255 - 19 .. 2^255 - 1, and those with the top bit),
 * 0 and 1 (low order): reduced as BearSSL does, same output. */
Test(tls_ec, x25519_edge_points)
{
	unsigned char pt[32], k[32];

	fx_rng_seed(&rng, 4);
	fx_rng_fill(&rng, k, 32);
	for (int v = 0; v < 19 + 2; v++)
		for (int top = 0; top < 2; top++) {
			memset(pt, 0xff, 32);
			pt[0] = (unsigned char)(0xff - v);	/* 2^255 - 1 - v */
			pt[31] = top ? 0xff : 0x7f;
			x25519_same(pt, 32, k, 32);
		}
	memset(pt, 0, 32);
	x25519_same(pt, 32, k, 32);
	pt[0] = 1;
	x25519_same(pt, 32, k, 32);
	memset(pt, 0xff, 32);
	x25519_same(pt, 32, k, 32);
}

Test(tls_ec, x25519_bad_lengths)
{
	unsigned char pt[48], k[40];

	fx_rng_seed(&rng, 5);
	fx_rng_fill(&rng, pt, sizeof(pt));
	fx_rng_fill(&rng, k, sizeof(k));
	pt[31] |= 0x80;		/* would be cleared by a call that works */
	for (size_t plen = 30; plen <= 34; plen++)
		for (size_t klen = 31; klen <= 34; klen++) {
			unsigned char a[40];

			x25519_same(pt, plen, k, klen);
			memcpy(a, pt, plen);
			if (plen != 32 || klen > 32) {
				cr_assert_eq(ours()->mul(a, plen, k, klen,
							 BR_EC_curve25519), 0);
				cr_assert_arr_eq(a, pt, plen, "changed");
			}
		}
}

Test(tls_ec, x25519_mulgen)
{
	unsigned char k[40], a[32], b[32], g[32];
	size_t glen;

	fx_rng_seed(&rng, 6);
	memcpy(g, ours()->generator(BR_EC_curve25519, &glen), 32);
	for (size_t klen = 0; klen <= 34; klen++) {
		fx_rng_fill(&rng, k, sizeof(k));
		cr_assert_eq(ours()->mulgen(a, k, klen, BR_EC_curve25519), 32);
		cr_assert_eq(br_ec_c25519_m31.mulgen(b, k, klen,
						     BR_EC_curve25519), 32);
		cr_assert_arr_eq(a, b, 32, "mulgen, scalar length %zu", klen);
		memcpy(b, g, 32);
		(void)ours()->mul(b, 32, k, klen, BR_EC_curve25519);
		cr_assert_arr_eq(a, b, 32, "mulgen != mul(G), length %zu",
				 klen);
	}
	cr_assert_eq(ours()->muladd(a, NULL, 32, k, 32, k, 32,
				    BR_EC_curve25519), 0);
}

/* RFC 7748: scalars and u as printed there (little-endian), which is
 * how BearSSL 0.6 reads them. */
static void x25519_vector(const char *ks, const char *us, const char *outs)
{
	unsigned char k[32], u[32], out[32];

	unhex(k, ks, 32);
	unhex(u, us, 32);
	unhex(out, outs, 32);
	cr_assert_eq(ours()->mul(u, 32, k, 32, BR_EC_curve25519), 1);
	cr_assert_arr_eq(u, out, 32, "RFC 7748 vector, scalar %s", ks);
}

Test(tls_ec, x25519_rfc7748)
{
	unsigned char k[32] = { 9 }, u[32] = { 9 }, r[32];

	/* Section 5.2, the two single multiplications. */
	x25519_vector(
		"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
		"e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
		"c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
	x25519_vector(
		"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
		"e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
		"95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957");
	/* Section 5.2, iterated: k, u <- X25519(k, u), k; 1 and 1000. */
	for (int i = 1; i <= 1000; i++) {
		memcpy(r, u, 32);
		cr_assert_eq(ours()->mul(r, 32, k, 32, BR_EC_curve25519), 1);
		memcpy(u, k, 32);
		memcpy(k, r, 32);
		if (i == 1) {
			unhex(r, "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079", 32);
			cr_assert_arr_eq(k, r, 32, "after 1 iteration");
		}
	}
	unhex(r, "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51", 32);
	cr_assert_arr_eq(k, r, 32, "after 1000 iterations");
}

Test(tls_ec, x25519_rfc7748_diffie_hellman)
{
	unsigned char a[32], b[32], pa[32], pb[32], s1[32], s2[32], want[32];

	unhex(a, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", 32);
	unhex(b, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", 32);
	cr_assert_eq(ours()->mulgen(pa, a, 32, BR_EC_curve25519), 32);
	cr_assert_eq(ours()->mulgen(pb, b, 32, BR_EC_curve25519), 32);
	unhex(want, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", 32);
	cr_assert_arr_eq(pa, want, 32, "Alice's public key");
	unhex(want, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", 32);
	cr_assert_arr_eq(pb, want, 32, "Bob's public key");
	memcpy(s1, pb, 32);
	memcpy(s2, pa, 32);
	cr_assert_eq(ours()->mul(s1, 32, a, 32, BR_EC_curve25519), 1);
	cr_assert_eq(ours()->mul(s2, 32, b, 32, BR_EC_curve25519), 1);
	unhex(want, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", 32);
	cr_assert_arr_eq(s1, want, 32, "shared secret (Alice)");
	cr_assert_arr_eq(s2, want, 32, "shared secret (Bob)");
}

/* ------------------------------------------------------------------ */
/* P-256: mul and mulgen                                              */

/* mul() of both on a copy of @pt with @k: same return, same bytes (the
 * bytes only when the point is valid: else they are indeterminate).
 * Returns ours. */
static uint32_t p256_mul_same(const unsigned char *pt, size_t plen,
			  const unsigned char *k, size_t klen)
{
	unsigned char a[80], b[80];
	uint32_t ra, rb;

	memset(a, 0xa5, sizeof(a));
	memcpy(a, pt, plen);
	memcpy(b, a, sizeof(a));
	ra = ours()->mul(a, plen, k, klen, BR_EC_secp256r1);
	rb = br_ec_p256_m31.mul(b, plen, k, klen, BR_EC_secp256r1);
	cr_assert_eq(ra, rb, "mul() returns %u, m31 %u (point length %zu, "
		     "scalar length %zu)", ra, rb, plen, klen);
	if (ra)
		cr_assert_arr_eq(a, b, plen, "P-256 mul differs (scalar "
				 "length %zu)", klen);
	/* Nothing written past the point, nothing at all for a bad
	 * length (as m31). */
	cr_assert_arr_eq(a + plen, b + plen, sizeof(a) - plen,
			 "written past the point (length %zu)", plen);
	if (plen != 65)
		cr_assert_arr_eq(a, pt, plen, "bad length, point changed");
	return ra;
}

static void p256_mulgen_same(const unsigned char *k, size_t klen)
{
	unsigned char a[65], b[65], g[65];
	size_t glen;

	cr_assert_eq(ours()->mulgen(a, k, klen, BR_EC_secp256r1), 65);
	cr_assert_eq(br_ec_p256_m31.mulgen(b, k, klen, BR_EC_secp256r1), 65);
	cr_assert_arr_eq(a, b, 65, "P-256 mulgen differs (scalar length "
			 "%zu)", klen);
	memcpy(g, ours()->generator(BR_EC_secp256r1, &glen), 65);
	cr_assert_eq(ours()->mul(g, 65, k, klen, BR_EC_secp256r1), 1);
	cr_assert_arr_eq(a, g, 65, "mulgen != mul(G) (scalar length %zu)",
			 klen);
}

Test(tls_ec, p256_random)
{
	unsigned char pt[65], k[32];

	fx_rng_seed(&rng, 7);
	for (int i = 0; i < 100; i++) {
		rand_point(pt);
		rand_scalar(k);
		p256_mul_same(pt, 65, k, 32);
		p256_mulgen_same(k, 32);
	}
}

/* Scalars of every length 0..32 (short ones: few windows, most comb
 * bits zero), and longer ones with leading zeros. */
Test(tls_ec, p256_scalar_lengths)
{
	unsigned char pt[65], k[48];

	fx_rng_seed(&rng, 8);
	rand_point(pt);
	for (size_t klen = 0; klen <= 32; klen++) {
		fx_rng_fill(&rng, k, klen);
		if (klen == 32)
			k[0] &= 0x7f;	/* under n */
		p256_mul_same(pt, 65, k, klen);
		p256_mulgen_same(k, klen);
	}
	for (size_t klen = 33; klen <= 48; klen += 5) {
		memset(k, 0, klen - 32);
		rand_scalar(k + klen - 32);
		p256_mul_same(pt, 65, k, klen);
		p256_mulgen_same(k, klen);
	}
}

/* 0 and n give the point at infinity, encoded as 0x04 and zeros, with
 * mul() returning 1, as in ec_p256_m31; 1, 2 and n - 1 as m31. Over n
 * the result is not defined by bearssl_ec.h; ours is still (k - n) P,
 * checked for n + 1, n + 2^128 and all ones against m31 with k - n. */
Test(tls_ec, p256_edge_scalars)
{
	unsigned char pt[65], k[32], r[32], inf[65] = { 0x04 }, a[65];
	static const char *over[] = {
		"ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632552",
		"ffffffff00000001ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
		"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	};

	fx_rng_seed(&rng, 9);
	rand_point(pt);
	memset(k, 0, 32);
	p256_mul_same(pt, 65, k, 32);
	p256_mulgen_same(k, 32);
	memcpy(a, pt, 65);
	cr_assert_eq(ours()->mul(a, 65, k, 32, BR_EC_secp256r1), 1);
	cr_assert_arr_eq(a, inf, 65, "0 P");
	memcpy(a, pt, 65);
	cr_assert_eq(ours()->mul(a, 65, P256_N, 32, BR_EC_secp256r1), 1);
	cr_assert_arr_eq(a, inf, 65, "n P");
	cr_assert_eq(ours()->mulgen(a, P256_N, 32, BR_EC_secp256r1), 65);
	cr_assert_arr_eq(a, inf, 65, "n G");
	for (unsigned v = 1; v <= 2; v++) {
		k[31] = (unsigned char)v;
		p256_mul_same(pt, 65, k, 32);
		p256_mulgen_same(k, 32);
	}
	memset(k, 0, 32);
	k[31] = 1;
	sub32(k, P256_N, k);	/* n - 1 */
	p256_mul_same(pt, 65, k, 32);
	p256_mulgen_same(k, 32);
	for (size_t i = 0; i < 3; i++) {
		unsigned char b[65];

		unhex(k, over[i], 32);
		sub32(r, k, P256_N);
		memcpy(a, pt, 65);
		memcpy(b, pt, 65);
		cr_assert_eq(ours()->mul(a, 65, k, 32, BR_EC_secp256r1), 1);
		cr_assert_eq(br_ec_p256_m31.mul(b, 65, r, 32,
						BR_EC_secp256r1), 1);
		cr_assert_arr_eq(a, b, 65, "mul, scalar %s", over[i]);
		cr_assert_eq(ours()->mulgen(a, k, 32, BR_EC_secp256r1), 65);
		cr_assert_eq(br_ec_p256_m31.mulgen(b, r, 32, BR_EC_secp256r1),
			     65);
		cr_assert_arr_eq(a, b, 65, "mulgen, scalar %s", over[i]);
	}
}

/* The point (0, sqrt(b)) is on P-256 (this is its Y); with X written
 * as p (0 + p) it is the same point, not reduced: refused. */
#define P256_X0_Y "66485c780e2f83d72433bd5d84a06bb6541c2af31dae871728bf856a174f93f4"

/* Invalid points: mul() and muladd() return 0, as m31's do. */
Test(tls_ec, p256_invalid_points)
{
	unsigned char good[65], bad[66], k[32];
	static const unsigned char first[] = { 0x00, 0x02, 0x03, 0x05,
					       0x06, 0x07, 0x14, 0x84 };

	fx_rng_seed(&rng, 10);
	rand_point(good);
	rand_scalar(k);
	/* Off the curve: Y + 1, X + 1. */
	memcpy(bad, good, 65);
	bad[64] ^= 1;
	cr_assert_eq(p256_mul_same(bad, 65, k, 32), 0);
	memcpy(bad, good, 65);
	bad[32] ^= 1;
	cr_assert_eq(p256_mul_same(bad, 65, k, 32), 0);
	/* The encoding of the point at infinity is not accepted either. */
	memset(bad, 0, 65);
	bad[0] = 0x04;
	cr_assert_eq(p256_mul_same(bad, 65, k, 32), 0);
	/* First byte other than 0x04 (compressed, hybrid: refused). */
	for (size_t i = 0; i < sizeof(first); i++) {
		memcpy(bad, good, 65);
		bad[0] = first[i];
		cr_assert_eq(p256_mul_same(bad, 65, k, 32), 0);
	}
	/* (0, sqrt(b)) is valid; with X written as p, refused. */
	bad[0] = 0x04;
	memset(bad + 1, 0, 32);
	unhex(bad + 33, P256_X0_Y, 32);
	cr_assert_eq(p256_mul_same(bad, 65, k, 32), 1);
	memcpy(bad + 1, P256_P, 32);
	cr_assert_eq(p256_mul_same(bad, 65, k, 32), 0);
	/* Y not under p (off the curve too: a point whose Y is under
	 * 2^256 - p, so that Y + p fits, is not at hand). */
	memset(bad + 1, 0, 32);
	memset(bad + 33, 0xff, 32);
	cr_assert_eq(p256_mul_same(bad, 65, k, 32), 0);
	/* Lengths other than 65. */
	for (size_t len = 63; len <= 66; len++) {
		if (len == 65)
			continue;
		memcpy(bad, good, len < 65 ? len : 65);
		bad[65] = 0;
		cr_assert_eq(p256_mul_same(bad, len, k, 32), 0);
	}
	cr_assert_eq(p256_mul_same(good, 0, k, 32), 0);
	cr_assert_eq(p256_mul_same(good, 1, k, 32), 0);
	cr_assert_eq(p256_mul_same(good, 65, k, 32), 1);
}

/* ------------------------------------------------------------------ */
/* P-256: muladd                                                      */

/* x A + y B through muladd() of both (B NULL: G); the same return
 * value, and the same bytes when it is 1. Returns ours. */
static uint32_t p256_muladd_same(const unsigned char *A, const unsigned char *B,
				 const unsigned char *x, size_t xlen,
				 const unsigned char *y, size_t ylen,
				 unsigned char out[65])
{
	unsigned char b[65];
	uint32_t ra, rb;

	memcpy(out, A, 65);
	memcpy(b, A, 65);
	ra = ours()->muladd(out, B, 65, x, xlen, y, ylen, BR_EC_secp256r1);
	rb = br_ec_p256_m31.muladd(b, B, 65, x, xlen, y, ylen,
				   BR_EC_secp256r1);
	cr_assert_eq(ra, rb, "muladd() returns %u, m31 %u", ra, rb);
	if (ra)
		cr_assert_arr_eq(out, b, 65, "muladd differs");
	return ra;
}

/* x A + y B as two mul() of ours and m31's muladd() as the addition. */
static void p256_separate(const unsigned char *A, const unsigned char *B,
			  const unsigned char *x, const unsigned char *y,
			  unsigned char out[65])
{
	unsigned char one[1] = { 1 }, yb[65];
	size_t glen;

	memcpy(out, A, 65);
	memcpy(yb, B ? B : ours()->generator(BR_EC_secp256r1, &glen), 65);
	cr_assert_eq(ours()->mul(out, 65, x, 32, BR_EC_secp256r1), 1);
	cr_assert_eq(ours()->mul(yb, 65, y, 32, BR_EC_secp256r1), 1);
	cr_assert_eq(br_ec_p256_m31.muladd(out, yb, 65, one, 1, one, 1,
					   BR_EC_secp256r1), 1);
}

Test(tls_ec, p256_muladd_random)
{
	unsigned char A[65], B[65], x[32], y[32], r[65], s[65];

	fx_rng_seed(&rng, 11);
	for (int i = 0; i < 40; i++) {
		rand_point(A);
		rand_point(B);
		rand_scalar(x);
		rand_scalar(y);
		cr_assert_eq(p256_muladd_same(A, B, x, 32, y, 32, r), 1);
		p256_separate(A, B, x, y, s);
		cr_assert_arr_eq(r, s, 65, "muladd != mul + mul + add");
		cr_assert_eq(p256_muladd_same(A, NULL, x, 32, y, 32, r), 1);
		p256_separate(A, NULL, x, y, s);
		cr_assert_arr_eq(r, s, 65, "muladd(G) != mul + mul + add");
		/* Short scalars (as ECDSA's may be, after leading zeros). */
		cr_assert_eq(p256_muladd_same(A, NULL, x + 20, 12, y + 25, 7,
					      r), 1);
	}
}

/* x A = y B: the sum is a doubling, which a plain addition gets wrong
 * (h = r = 0); ours and m31 both double. */
Test(tls_ec, p256_muladd_doubling)
{
	unsigned char A[65], A2[65], G[65], x[32], x2[32], one[32] = { 0 },
		      two[32] = { 0 }, r[65], s[65];
	size_t glen;

	fx_rng_seed(&rng, 12);
	one[31] = 1;
	two[31] = 2;
	memcpy(G, ours()->generator(BR_EC_secp256r1, &glen), 65);
	rand_point(A);
	rand_scalar(x);
	x[0] &= 0x7f;		/* 2x under n */
	add32(x2, x, x);
	/* The same point and scalar, as B and as G. */
	cr_assert_eq(p256_muladd_same(A, A, x, 32, x, 32, r), 1);
	memcpy(s, A, 65);
	cr_assert_eq(ours()->mul(s, 65, x2, 32, BR_EC_secp256r1), 1);
	cr_assert_arr_eq(r, s, 65, "x A + x A != 2x A");
	cr_assert_eq(p256_muladd_same(G, NULL, x, 32, x, 32, r), 1);
	cr_assert_eq(ours()->mulgen(s, x2, 32, BR_EC_secp256r1), 65);
	cr_assert_arr_eq(r, s, 65, "x G + x G != 2x G");
	/* Different points and scalars, the same product: 2 A + 1 (2A),
	 * and 1 (2G) + 2 G. */
	memcpy(A2, A, 65);
	cr_assert_eq(ours()->mul(A2, 65, two, 32, BR_EC_secp256r1), 1);
	cr_assert_eq(p256_muladd_same(A, A2, two, 32, one, 32, r), 1);
	memcpy(s, A, 65);
	cr_assert_eq(ours()->mul(s, 65, (const unsigned char[32]){
		[31] = 4 }, 32, BR_EC_secp256r1), 1);
	cr_assert_arr_eq(r, s, 65, "2 A + 1 (2 A) != 4 A");
	cr_assert_eq(ours()->mulgen(A2, two, 32, BR_EC_secp256r1), 65);
	cr_assert_eq(p256_muladd_same(A2, NULL, one, 32, two, 32, r), 1);
	cr_assert_eq(ours()->mulgen(s, (const unsigned char[32]){ [31] = 4 },
				    32, BR_EC_secp256r1), 65);
	cr_assert_arr_eq(r, s, 65, "1 (2 G) + 2 G != 4 G");
}

/* x A = -y B: the sum is the point at infinity, an error (0). A zero
 * scalar is an error too (bearssl_ec.h); m31 returns 1 there, with a
 * wrong point, so that case is checked on ours alone. */
Test(tls_ec, p256_muladd_infinity_and_zero)
{
	unsigned char A[65], nA[65], x[32], nx[32], zero[32] = { 0 }, r[65];

	fx_rng_seed(&rng, 13);
	rand_point(A);
	rand_scalar(x);
	sub32(nx, P256_N, x);		/* n - x */
	cr_assert_eq(p256_muladd_same(A, A, x, 32, nx, 32, r), 0);
	/* -A: Y replaced by p - Y. */
	memcpy(nA, A, 65);
	sub32(nA + 33, P256_P, A + 33);
	cr_assert_eq(p256_muladd_same(A, nA, x, 32, x, 32, r), 0);
	/* x G + (n - x) G. */
	cr_assert_eq(ours()->mulgen(A, x, 32, BR_EC_secp256r1), 65);
	cr_assert_eq(p256_muladd_same(A, NULL, (const unsigned char[1]){ 1 },
				      1, nx, 32, r), 0);
	/* A zero scalar, either one, or both. */
	rand_point(A);
	memcpy(r, A, 65);
	cr_assert_eq(ours()->muladd(r, NULL, 65, zero, 32, x, 32,
				    BR_EC_secp256r1), 0);
	memcpy(r, A, 65);
	cr_assert_eq(ours()->muladd(r, NULL, 65, x, 32, zero, 32,
				    BR_EC_secp256r1), 0);
	memcpy(r, A, 65);
	cr_assert_eq(ours()->muladd(r, A, 65, zero, 32, zero, 0,
				    BR_EC_secp256r1), 0);
	memcpy(r, A, 65);
	cr_assert_eq(ours()->muladd(r, A, 65, P256_N, 32, x, 32,
				    BR_EC_secp256r1), 0);
}

Test(tls_ec, p256_muladd_invalid_points)
{
	unsigned char A[65], B[66], bad[65], x[32], y[32], r[65];

	fx_rng_seed(&rng, 14);
	rand_point(A);
	rand_point(B);
	rand_scalar(x);
	rand_scalar(y);
	memcpy(bad, B, 65);
	bad[64] ^= 1;
	cr_assert_eq(p256_muladd_same(bad, B, x, 32, y, 32, r), 0);
	cr_assert_eq(p256_muladd_same(A, bad, x, 32, y, 32, r), 0);
	cr_assert_eq(p256_muladd_same(bad, NULL, x, 32, y, 32, r), 0);
	bad[64] ^= 1;
	bad[0] = 0x02;
	cr_assert_eq(p256_muladd_same(A, bad, x, 32, y, 32, r), 0);
	/* A bad length: 0, and nothing written (as m31). */
	for (size_t len = 0; len <= 66; len += 32) {
		unsigned char big[80], copy[80];

		memset(big, 0xa5, sizeof(big));
		memcpy(big, A, len < 65 ? len : 65);
		memcpy(copy, big, sizeof(big));
		cr_assert_eq(ours()->muladd(big, NULL, len, x, 32, y, 32,
					    BR_EC_secp256r1), 0);
		cr_assert_arr_eq(big, copy, sizeof(big), "length %zu", len);
		cr_assert_eq(ours()->muladd(big, B, len, x, 32, y, 32,
					    BR_EC_secp256r1), 0);
		cr_assert_arr_eq(big, copy, sizeof(big), "length %zu", len);
	}
}

/* ------------------------------------------------------------------ */
/* ECDSA through BearSSL's i31 code                                   */

/* RFC 6979 A.2.5: the P-256 key, and the SHA-256 signatures of
 * "sample" and "test" (r then s). */
#define RFC6979_UX "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
#define RFC6979_UY "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299"

static uint32_t vrfy(const br_ec_impl *impl, const char *msg,
		     const unsigned char *q, const unsigned char *sig)
{
	unsigned char h[32], qq[65];
	br_sha256_context sc;
	br_ec_public_key pk = { BR_EC_secp256r1, qq, 65 };

	memcpy(qq, q, 65);
	br_sha256_init(&sc);
	br_sha256_update(&sc, msg, strlen(msg));
	br_sha256_out(&sc, h);
	return br_ecdsa_i31_vrfy_raw(impl, h, 32, &pk, sig, 64);
}

Test(tls_ec, ecdsa_rfc6979_vectors)
{
	unsigned char q[65] = { 0x04 }, sig[64];
	static const char *v[][3] = {
		{ "sample",
		  "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716",
		  "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8" },
		{ "test",
		  "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367",
		  "019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083" },
	};

	unhex(q + 1, RFC6979_UX, 32);
	unhex(q + 33, RFC6979_UY, 32);
	for (size_t i = 0; i < 2; i++) {
		unhex(sig, v[i][1], 32);
		unhex(sig + 32, v[i][2], 32);
		cr_assert_eq(vrfy(ours(), v[i][0], q, sig), 1, "%s", v[i][0]);
		cr_assert_eq(vrfy(ours(), v[1 - i][0], q, sig), 0,
			     "signature of %s accepted for %s", v[i][0],
			     v[1 - i][0]);
		sig[63] ^= 1;
		cr_assert_eq(vrfy(ours(), v[i][0], q, sig), 0,
			     "s changed, accepted");
		sig[63] ^= 1;
		sig[5] ^= 0x10;
		cr_assert_eq(vrfy(ours(), v[i][0], q, sig), 0,
			     "r changed, accepted");
	}
}

/* Keys and signatures made by one implementation (signing uses
 * mulgen()), verified by both (verifying uses muladd()). */
Test(tls_ec, ecdsa_sign_and_verify_across)
{
	const br_ec_impl *impls[2] = { ours(), &br_ec_p256_m31 };
	unsigned char x[32], q[65], sig[64], h[32];

	fx_rng_seed(&rng, 15);
	for (int i = 0; i < 20; i++) {
		const br_ec_impl *signer = impls[i & 1];
		br_ec_private_key sk = { BR_EC_secp256r1, x, 32 };
		br_ec_public_key pk = { BR_EC_secp256r1, q, 65 };

		rand_scalar(x);
		fx_rng_fill(&rng, h, 32);
		cr_assert_eq(br_ec_compute_pub(signer, &pk, q, &sk), 65);
		cr_assert_eq(br_ecdsa_i31_sign_raw(signer, &br_sha256_vtable,
						   h, &sk, sig), 64);
		for (int j = 0; j < 2; j++)
			cr_assert_eq(br_ecdsa_i31_vrfy_raw(impls[j], h, 32,
							   &pk, sig, 64), 1,
				     "round %d, verifier %d", i, j);
		h[i % 32] ^= 0x80;
		cr_assert_eq(br_ecdsa_i31_vrfy_raw(ours(), h, 32, &pk, sig,
						   64), 0, "other hash accepted");
	}
}
