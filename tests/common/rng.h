/*
 * tests/common/rng.h - a deterministic generator for differential tests
 * (xorshift64*): the same seed gives the same inputs on every run, so a
 * failure names a case that can be replayed. Not for anything secret.
 * The caller owns the state; header-only, no global state.
 */
#ifndef FERRY_TESTS_RNG_H
#define FERRY_TESTS_RNG_H

#include <stddef.h>
#include <stdint.h>

static inline void fx_rng_seed(uint64_t *s, uint64_t seed)
{
	*s = seed ? seed : 1;	/* xorshift never leaves 0 */
}

static inline uint64_t fx_rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

/* @n bytes from the generator's high bits. */
static inline void fx_rng_fill(uint64_t *s, unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(fx_rng_next(s) >> 56);
}

#endif
