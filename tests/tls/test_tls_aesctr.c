/*
 * test_tls_aesctr.c - the AES-CTR the TLS engine uses (http/tls_aesctr.c)
 * against BearSSL's br_aes_x86ni_ctr on seeded random inputs: AES-128,
 * -192 and -256 keys, every length 0..300 and random lengths to 17000,
 * unaligned data, counters that wrap past 2^32; the same bytes and the
 * same returned counter. Data in a heap block that ends where it does,
 * so ASan sees any write past the end. Both the 128-bit and (where the
 * CPU has VAES) the 256-bit code. No sockets.
 */
#include <bearssl.h>
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "tls_aesctr.h"

/* Seeded per test: tests/common/rng.h. */
static uint64_t rng;

/* Ours (what the engine gets, and the 128-bit one when that is another)
 * and BearSSL's reference; skips when either is missing. */
static size_t impls_or_skip(const br_block_ctr_class *out[2],
			    const br_block_ctr_class **ref)
{
	size_t n = 0;

	*ref = br_aes_x86ni_ctr_get_vtable();
	out[n] = ferry__tls_aes_ctr_get();
	if (out[n])
		n++;
	out[n] = ferry__tls_aes_ctr128_get();
	if (out[n] && (n == 0 || out[n] != out[0]))
		n++;
	if (n == 0 || !*ref)
		cr_skip_test("no AES-NI/SSSE3/SSE4.1 on this CPU or build");
	return n;
}

static void check_one(const br_block_ctr_class *ours,
		      const br_block_ctr_class *ref, size_t klen, size_t len,
		      size_t off, uint32_t cc)
{
	unsigned char key[32], iv[12];
	unsigned char *a = malloc(off + len ? off + len : 1);
	unsigned char *b = malloc(off + len ? off + len : 1);
	br_aes_x86ni_ctr_keys ka, kb;
	uint32_t ra, rb;

	cr_assert(a && b);
	fx_rng_fill(&rng, key, sizeof(key));
	fx_rng_fill(&rng, iv, sizeof(iv));
	fx_rng_fill(&rng, a + off, len);
	memcpy(b + off, a + off, len);
	ref->init(&ka.vtable, key, klen);
	ours->init(&kb.vtable, key, klen);
	cr_assert_eq(kb.vtable, ours, "init did not install the class");
	ra = ka.vtable->run(&ka.vtable, iv, cc, a + off, len);
	rb = kb.vtable->run(&kb.vtable, iv, cc, b + off, len);
	cr_assert_eq(ra, rb, "counter: klen %zu len %zu cc %u", klen, len, cc);
	cr_assert_arr_eq(a + off, b + off, len,
			 "data: klen %zu len %zu off %zu cc %u", klen, len,
			 off, cc);
	free(a);
	free(b);
}

Test(tls_aesctr, every_short_length)
{
	const br_block_ctr_class *impls[2], *ref;
	size_t n = impls_or_skip(impls, &ref);

	fx_rng_seed(&rng, 11);
	for (size_t i = 0; i < n; i++)
		for (size_t klen = 16; klen <= 32; klen += 8)
			for (size_t len = 0; len <= 300; len++)
				check_one(impls[i], ref, klen, len, len % 16,
					  (uint32_t)fx_rng_next(&rng));
}

Test(tls_aesctr, random_lengths_and_wrapping_counters)
{
	const br_block_ctr_class *impls[2], *ref;
	size_t n = impls_or_skip(impls, &ref);

	fx_rng_seed(&rng, 12);
	for (size_t i = 0; i < n; i++)
		for (int round = 0; round < 600; round++) {
			size_t len = (size_t)(fx_rng_next(&rng) % 17001);
			uint32_t cc = (uint32_t)fx_rng_next(&rng);

			/* A third of the runs cross 2^32. */
			if (round % 3 == 0)
				cc = 0xffffffffu - (uint32_t)(fx_rng_next(&rng) % 40);
			check_one(impls[i], ref, 16 + 8 * (size_t)(round % 3),
				  len, (size_t)(fx_rng_next(&rng) % 16), cc);
		}
}
