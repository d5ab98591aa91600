/*
 * test_tls_ghash.c - the GHASH the TLS engine uses (http/tls_ghash.c)
 * against BearSSL's portable br_ghash_ctmul64, on seeded random inputs:
 * every length 0..64 at every alignment, lengths up to 4096, chained
 * calls, keys and states at the edges, for the 128-bit and (where the
 * CPU has VPCLMULQDQ) the 256-bit code; each input copied to a buffer
 * that ends exactly where it does, so ASan sees any read past the end.
 * Then the GCM test vectors (McGrew and Viega, "The Galois/Counter Mode
 * of Operation", appendix B; also in NIST SP 800-38D's validation) through
 * BearSSL's br_gcm_* with our GHASH, and a long GCM message against
 * ctmul64. No sockets: the arithmetic only.
 */
#include <bearssl.h>
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "tls_ghash.h"

/* Seeded per test: tests/common/rng.h. */
static uint64_t rng;

/* Ours: what the engine gets, and the 128-bit one when that is another
 * (a CPU with VPCLMULQDQ gets the 256-bit one). Skips the test when the
 * CPU has neither. */
static size_t impls_or_skip(br_ghash out[2])
{
	size_t n = 0;

	out[n] = ferry__tls_ghash_clmul_get();
	if (out[n])
		n++;
	out[n] = ferry__tls_ghash_clmul128_get();
	if (out[n] && (n == 0 || out[n] != out[0]))
		n++;
	if (n == 0)
		cr_skip_test("no PCLMULQDQ/SSSE3/SSE4.1 on this CPU or build");
	return n;
}

#define FOR_EACH_IMPL(g)                                                  \
	br_ghash impls_[2];                                               \
	size_t nimpls_ = impls_or_skip(impls_);                           \
	for (size_t i_ = 0; i_ < nimpls_; i_++)                           \
		for (br_ghash g = impls_[i_]; g; g = NULL)

/*
 * One call of each on the same input: @len bytes at offset @off of a
 * heap block that ends right after the data. Asserts the same y.
 */
static void check_one(br_ghash g, const unsigned char *h,
		      const unsigned char *y0, const unsigned char *src,
		      size_t len, size_t off)
{
	/* The block ends right after the data (malloc(0) is never asked). */
	unsigned char *buf = malloc(off + len ? off + len : 1);
	unsigned char ya[16], yb[16];

	cr_assert_not_null(buf);
	memcpy(buf + off, src, len);
	memcpy(ya, y0, 16);
	memcpy(yb, y0, 16);
	br_ghash_ctmul64(ya, h, buf + off, len);
	g(yb, h, buf + off, len);
	cr_assert_arr_eq(ya, yb, 16, "GHASH differs: len %zu, offset %zu",
			 len, off);
	free(buf);
}

Test(tls_ghash, every_short_length_every_alignment)
{
	unsigned char h[16], y[16], data[64];

	fx_rng_seed(&rng, 1);
	FOR_EACH_IMPL(g)
	for (int round = 0; round < 8; round++) {
		fx_rng_fill(&rng, h, 16);
		fx_rng_fill(&rng, y, 16);
		fx_rng_fill(&rng, data, sizeof(data));
		for (size_t len = 0; len <= 64; len++)
			for (size_t off = 0; off < 16; off++)
				check_one(g, h, y, data, len, off);
	}
}

Test(tls_ghash, random_lengths_to_4096)
{
	static unsigned char data[4096];
	unsigned char h[16], y[16];

	FOR_EACH_IMPL(g) {
	fx_rng_seed(&rng, 2);
	for (int i = 0; i < 3000; i++) {
		size_t len = (size_t)(fx_rng_next(&rng) % 4097);
		size_t off = (size_t)(fx_rng_next(&rng) % 16);

		fx_rng_fill(&rng, h, 16);
		fx_rng_fill(&rng, y, 16);
		fx_rng_fill(&rng, data, len);
		check_one(g, h, y, data, len, off);
	}
	/* Around each multiple of 16 blocks: the strides of both paths. */
	for (size_t len = 112; len <= 1040; len += 16)
		for (size_t d = 0; d < 3; d++) {
			fx_rng_fill(&rng, h, 16);
			fx_rng_fill(&rng, y, 16);
			fx_rng_fill(&rng, data, len + 1);
			check_one(g, h, y, data, len - 1 + d, d);
		}
	}
}

/* Keys and states at the edges: zero, all ones, one bit at each end
 * (the top bit of byte 0 is x^0, the one the key's reflection shifts
 * out), and a zero block of data. */
Test(tls_ghash, edge_keys_and_states)
{
	unsigned char vals[6][16] = { { 0 } };
	unsigned char data[600];

	memset(vals[1], 0xff, 16);
	vals[2][0] = 0x80;
	vals[3][15] = 0x01;
	vals[4][0] = 0x01;
	vals[5][15] = 0x80;
	fx_rng_seed(&rng, 3);
	FOR_EACH_IMPL(g)
	for (int hi = 0; hi < 6; hi++)
		for (int yi = 0; yi < 6; yi++) {
			size_t lens[] = { 0, 1, 16, 17, 128, 129, 256, 300,
					  600 };

			for (size_t li = 0; li < 9; li++) {
				if (yi == 0)
					memset(data, 0, sizeof(data));
				else
					fx_rng_fill(&rng, data, sizeof(data));
				check_one(g, vals[hi], vals[yi], data,
					  lens[li], li);
			}
		}
}

Test(tls_ghash, null_data_with_zero_length)
{
	unsigned char h[16], y[16], y0[16];

	fx_rng_seed(&rng, 4);
	FOR_EACH_IMPL(g) {
		fx_rng_fill(&rng, h, 16);
		fx_rng_fill(&rng, y0, 16);
		memcpy(y, y0, 16);
		g(y, h, NULL, 0);
		cr_assert_arr_eq(y, y0, 16, "y changed on an empty input");
	}
}

/* A message cut into random pieces, each hashed into the same y (as
 * BearSSL does for a record's header, data and length block). */
Test(tls_ghash, chained_calls)
{
	static unsigned char data[20000];
	unsigned char h[16], ya[16], yb[16];

	fx_rng_seed(&rng, 5);
	FOR_EACH_IMPL(g)
	for (int round = 0; round < 200; round++) {
		size_t total = (size_t)(fx_rng_next(&rng) % sizeof(data));
		size_t at = 0;

		fx_rng_fill(&rng, h, 16);
		fx_rng_fill(&rng, ya, 16);
		memcpy(yb, ya, 16);
		fx_rng_fill(&rng, data, total);
		while (at < total) {
			size_t n = (size_t)(fx_rng_next(&rng) % 2100);

			if (fx_rng_next(&rng) % 2)
				n &= ~(size_t)15;
			if (n > total - at)
				n = total - at;
			br_ghash_ctmul64(ya, h, data + at, n);
			g(yb, h, data + at, n);
			at += n;
		}
		cr_assert_arr_eq(ya, yb, 16, "chained GHASH differs, round %d",
				 round);
	}
}

Test(tls_ghash, engine_choice_is_ours_when_supported)
{
	br_ghash mine = ferry__tls_ghash_clmul_get();
	br_ghash got = ferry__tls_ghash_get();

	cr_assert_not_null(got);
	if (mine)
		cr_assert_eq(got, mine, "the engine does not get our GHASH");
	else
		cr_assert(got == br_ghash_pclmul_get() ||
			  got == br_ghash_ctmul64);
}

/* ------------------------------------------------------------------ */
/* GCM through BearSSL's br_gcm_* with our GHASH                        */

struct gcm_vector {
	const char *key, *iv, *aad, *pt, *ct, *tag;
};

/* Test cases 1, 2, 4, 5, 6 (AES-128), 15 and 16 (AES-256). */
static const struct gcm_vector vectors[] = {
	{ "00000000000000000000000000000000", "000000000000000000000000", "",
	  "", "", "58e2fccefa7e3061367f1d57a4e7455a" },
	{ "00000000000000000000000000000000", "000000000000000000000000", "",
	  "00000000000000000000000000000000",
	  "0388dace60b6a392f328c2b971b2fe78",
	  "ab6e47d42cec13bdf53a67b21257bddf" },
	{ "feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
	  "feedfacedeadbeeffeedfacedeadbeefabaddad2",
	  "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
	  "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
	  "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
	  "5bc94fbc3221a5db94fae95ae7121a47" },
	{ "feffe9928665731c6d6a8f9467308308", "cafebabefacedbad",
	  "feedfacedeadbeeffeedfacedeadbeefabaddad2",
	  "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
	  "61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c7423"
	  "73806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598",
	  "3612d2e79e3b0785561be14aaca2fccb" },
	{ "feffe9928665731c6d6a8f9467308308",
	  "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728"
	  "c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b",
	  "feedfacedeadbeeffeedfacedeadbeefabaddad2",
	  "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
	  "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca7"
	  "01e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5",
	  "619cc5aefffe0bfa462af43c1699d050" },
	{ "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	  "cafebabefacedbaddecaf888", "",
	  "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
	  "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	  "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
	  "b094dac5d93471bdec1a502270e3cc6c" },
	{ "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	  "cafebabefacedbaddecaf888",
	  "feedfacedeadbeeffeedfacedeadbeefabaddad2",
	  "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
	  "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	  "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
	  "76fc6ece0f4e1768cddf8853bb2d551b" },
};

static size_t unhex(const char *s, unsigned char *out, size_t cap)
{
	size_t n = strlen(s) / 2;

	cr_assert_leq(n, cap);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		cr_assert_eq(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (unsigned char)v;
	}
	return n;
}

/* Encrypt @pt with @g as the GHASH; the tag goes to @tag. */
static void gcm_run(br_ghash g, const unsigned char *key, size_t klen,
		    const unsigned char *iv, size_t ivlen,
		    const unsigned char *aad, size_t aadlen,
		    unsigned char *data, size_t len, int encrypt,
		    unsigned char tag[16])
{
	br_aes_ct_ctr_keys aes;
	br_gcm_context gc;

	br_aes_ct_ctr_init(&aes, key, klen);
	br_gcm_init(&gc, &aes.vtable, g);
	br_gcm_reset(&gc, iv, ivlen);
	br_gcm_aad_inject(&gc, aad, aadlen);
	br_gcm_flip(&gc);
	br_gcm_run(&gc, encrypt, data, len);
	br_gcm_get_tag(&gc, tag);
}

static void check_vectors(br_ghash g)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct gcm_vector *v = &vectors[i];
		unsigned char key[32], iv[64], aad[32], pt[64], ct[64];
		unsigned char tag[16], want[16], buf[64];
		size_t klen = unhex(v->key, key, sizeof(key));
		size_t ivlen = unhex(v->iv, iv, sizeof(iv));
		size_t aadlen = unhex(v->aad, aad, sizeof(aad));
		size_t len = unhex(v->pt, pt, sizeof(pt));

		cr_assert_eq(unhex(v->ct, ct, sizeof(ct)), len);
		unhex(v->tag, want, sizeof(want));
		memcpy(buf, pt, len);
		gcm_run(g, key, klen, iv, ivlen, aad, aadlen, buf, len, 1, tag);
		cr_assert_arr_eq(buf, ct, len, "vector %zu: ciphertext", i);
		cr_assert_arr_eq(tag, want, 16, "vector %zu: tag", i);
		gcm_run(g, key, klen, iv, ivlen, aad, aadlen, buf, len, 0, tag);
		cr_assert_arr_eq(buf, pt, len, "vector %zu: plaintext", i);
		cr_assert_arr_eq(tag, want, 16, "vector %zu: tag (decrypt)", i);
	}
}

Test(tls_ghash, gcm_vectors_ours)
{
	FOR_EACH_IMPL(g)
		check_vectors(g);
}

/* What the engine gets, whichever it is. */
Test(tls_ghash, gcm_vectors_engine_choice)
{
	check_vectors(ferry__tls_ghash_get());
}

/* A record-sized message with a 13-byte header as AAD, as TLS 1.2
 * sends them: the same ciphertext and tag as with ctmul64. */
Test(tls_ghash, gcm_long_record_matches_ctmul64)
{
	static unsigned char a[16384 + 17], b[sizeof(a)];
	unsigned char key[32], iv[12], aad[13], ta[16], tb[16];

	fx_rng_seed(&rng, 6);
	FOR_EACH_IMPL(g)
	for (int round = 0; round < 20; round++) {
		size_t len = (size_t)(fx_rng_next(&rng) % sizeof(a));
		size_t klen = round % 2 ? 32 : 16;

		fx_rng_fill(&rng, key, sizeof(key));
		fx_rng_fill(&rng, iv, sizeof(iv));
		fx_rng_fill(&rng, aad, sizeof(aad));
		fx_rng_fill(&rng, a, len);
		memcpy(b, a, len);
		gcm_run(br_ghash_ctmul64, key, klen, iv, 12, aad, 13, a, len,
			1, ta);
		gcm_run(g, key, klen, iv, 12, aad, 13, b, len, 1, tb);
		cr_assert_arr_eq(a, b, len, "round %d: ciphertext", round);
		cr_assert_arr_eq(ta, tb, 16, "round %d: tag", round);
	}
}
