/*
 * runtime/util.h - small helpers every module shares (internal, not
 * installed): one copy each, for runtime/, http/ and bridge/.
 */
#ifndef FERRY_RUNTIME_UTIL_H
#define FERRY_RUNTIME_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One iteration of a spin-wait: tells the CPU (and a hyperthread
 * sibling) that we are spinning. Any thread. */
static inline void ferry__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/*
 * FERRY__NS_TO_TS - set a timespec (struct timespec or the kernel's
 * struct __kernel_timespec: the same two fields) to @ns nanoseconds,
 * relative or absolute as the caller means it.
 */
#define FERRY__NS_TO_TS(ts, ns)                                          \
	((void)((ts)->tv_sec = (__typeof__((ts)->tv_sec))((ns) / 1000000000u)), \
	 (void)((ts)->tv_nsec = (__typeof__((ts)->tv_nsec))((ns) % 1000000000u)))

/* Write a "why" sentence for the caller: printf into @why (@whylen
 * bytes, cut to fit); nothing when @why is NULL or @whylen 0. */
static inline void ferry__vwhyf(char *why, size_t whylen, const char *fmt,
				va_list ap)
	__attribute__((format(printf, 3, 0)));

static inline void ferry__vwhyf(char *why, size_t whylen, const char *fmt,
				va_list ap)
{
	if (why && whylen)
		vsnprintf(why, whylen, fmt, ap);
}

static inline void ferry__whyf(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline void ferry__whyf(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ferry__vwhyf(why, whylen, fmt, ap);
	va_end(ap);
}

#endif /* FERRY_RUNTIME_UTIL_H */
