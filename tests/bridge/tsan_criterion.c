/*
 * tsan_criterion.c - let criterion start under ThreadSanitizer.
 *
 * criterion 2.4 maps its "inheritable arena" (BoxFort, src/arena.c) at a
 * random base between 0x2000'0000'0000 and 0x6000'0000'0000 chosen with
 * rand_r(), after checking that the pages are free, and gives up after 10
 * tries. Under TSan nearly all of that range is TSan's own reserved memory,
 * so criterion aborts with "Could not initialize inheritable arena:
 * Resource temporarily unavailable" (Snaipe/Criterion#274, still open).
 *
 * Only under TSan, this rand_r (which the executable exports in place of
 * libc's, since libcriterion refers to it) steers those picks into TSan's
 * application range for PIE binaries, 0x5500'0000'0000-0x5680'0000'0000:
 * BoxFort's base is 0x2000'0000'0000 + (r & 0x3fffff) * 16 MiB, so r in
 * [0x364000, 0x368000) lands in 0x5640'0000'0000-0x5680'0000'0000. The
 * values are still pseudo-random and within [0, RAND_MAX], so any other
 * caller gets a valid, if lopsided, sequence. ferry itself never calls
 * rand_r. Nothing here exists in other builds.
 */
#include <stdlib.h>

#if defined(__SANITIZE_THREAD__)
int rand_r(unsigned int *seedp);

int rand_r(unsigned int *seedp)
{
	unsigned int x = *seedp ? *seedp : 0x9e3779b9u;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*seedp = x;
	return (int)(0x364000u + (x & 0x3fffu));
}
#endif
