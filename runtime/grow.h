/*
 * runtime/grow.h - how ferry grows a heap buffer (internal, not installed).
 */
#ifndef FERRY_RUNTIME_GROW_H
#define FERRY_RUNTIME_GROW_H

#include <stdint.h>
#include <stdlib.h>

/*
 * ferry__grow - make @buf (a malloc'ed buffer of *@cap bytes, or NULL with
 * *@cap 0) hold at least @need bytes. The capacity doubles, from *@cap or
 * else from @first, until it is enough; then the buffer is realloc'ed,
 * contents kept, and *@cap updated. Returns the buffer (@buf itself when it
 * was big enough; a NULL @buf always gets at least @first bytes) or NULL
 * when out of memory, leaving @buf and *@cap as they were. The caller owns the buffer; any thread, no locking.
 */
static inline void *ferry__grow(void *buf, size_t *cap, size_t need,
				size_t first)
{
	size_t c = *cap ? *cap : first;
	void *p;

	if (buf && need <= *cap)
		return buf;
	if (need > SIZE_MAX / 2)
		return NULL;
	while (c < need)
		c *= 2;
	p = realloc(buf, c);
	if (p)
		*cap = c;
	return p;
}

#endif /* FERRY_RUNTIME_GROW_H */
