/*
 * tests/common/pattern_sha.h - SHA-256 of misbehave.py's pattern bytes,
 * for tests that check an upload or a body by digest (the echo servers
 * answer with the SHA-256 of what they received).
 *
 * Header-only because only the tests that link BearSSL include it; the
 * fixture library itself does not depend on BearSSL.
 */
#ifndef FERRY_TESTS_PATTERN_SHA_H
#define FERRY_TESTS_PATTERN_SHA_H

#include <bearssl.h>
#include <stdint.h>
#include <stdio.h>

#include "fixture.h"

/* out = lowercase hex SHA-256 of the @n pattern bytes from offset 0. */
static inline void fx_pattern_sha256(uint64_t n, char out[65])
{
	br_sha256_context c;
	unsigned char buf[4096], d[32];
	uint64_t off = 0;

	br_sha256_init(&c);
	while (off < n) {
		size_t k = n - off < sizeof(buf) ? (size_t)(n - off) : sizeof(buf);

		fx_pattern_fill(buf, k, off);
		br_sha256_update(&c, buf, k);
		off += k;
	}
	br_sha256_out(&c, d);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

#endif
