/*
 * lines.c - a line iterator over a stream: zero-copy for lines that lie
 * inside one chunk, joined in a bounded buffer for lines that span chunks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "internal.h"

#define FERRY__LINES_DEFAULT_MAX (64 * 1024)

void ferry_lines_init(struct ferry_lines *l, struct ferry_stream *s,
		      size_t max_line)
{
	*l = (struct ferry_lines){
		.ferry__s = s,
		.ferry__max = max_line ? max_line : FERRY__LINES_DEFAULT_MAX,
	};
}

void ferry_lines_free(struct ferry_lines *l)
{
	if (!l)
		return;
	free(l->ferry__buf);
	l->ferry__buf = NULL;
	l->ferry__cap = l->ferry__len = 0;
}

/* Append to the join buffer; FERRY_ETOOLARGE past the maximum. */
static int ferry__lines_append(struct ferry_lines *l, const char *p, size_t n)
{
	size_t need = l->ferry__len + n;
	char *buf;

	/* One byte of slack for a '\r' that a following '\n' will strip. */
	if (need > l->ferry__max + 1)
		return FERRY_ETOOLARGE;
	buf = ferry__grow(l->ferry__buf, &l->ferry__cap, need, 256);
	if (!buf)
		return -ENOMEM;
	l->ferry__buf = buf;
	memcpy(l->ferry__buf + l->ferry__len, p, n);
	l->ferry__len = need;
	return 0;
}

/* Strip the '\r' of a "\r\n" (@newline: the line ended with '\n'; a last
 * line without one keeps a trailing '\r') and check the limit. */
static int ferry__lines_emit(struct ferry_lines *l, const char *p, size_t n,
			     bool newline, const char **line, size_t *len)
{
	if (newline && n && p[n - 1] == '\r')
		n--;
	if (n > l->ferry__max) {
		l->ferry__end = FERRY_ETOOLARGE;
		return FERRY_ETOOLARGE;
	}
	*line = p;
	*len = n;
	return 1;
}

static int ferry__lines_fail(struct ferry_lines *l, int err)
{
	l->ferry__end = err;
	return err;
}

int ferry_lines_next(struct ferry_lines *l, const char **line, size_t *len,
		     int64_t timeout_ns)
{
	int ret;

	if (!l || !line || !len)
		return FERRY_EINVAL;
	/* Finished by an error or an overlong line: stay finished. */
	if (l->ferry__end < 0)
		return l->ferry__end;
	/* A joined line lives until this call; a partial one (after a
	 * timeout) stays and is continued. */
	if (l->ferry__joined) {
		l->ferry__len = 0;
		l->ferry__joined = false;
	}
	for (;;) {
		/* No chunk yet (or after a timeout): data is NULL, and even
		 * NULL + 0 is undefined behaviour in C. */
		const char *p = l->ferry__cur.data ?
			(const char *)l->ferry__cur.data + l->ferry__off : NULL;
		size_t avail = l->ferry__cur.len - l->ferry__off;
		const char *nl = avail ? memchr(p, '\n', avail) : NULL;

		if (nl) {
			size_t n = (size_t)(nl - p);

			l->ferry__off += n + 1;
			if (l->ferry__len == 0)
				return ferry__lines_emit(l, p, n, true, line, len);
			ret = ferry__lines_append(l, p, n);
			if (ret)
				return ferry__lines_fail(l, ret);
			l->ferry__joined = true;
			return ferry__lines_emit(l, l->ferry__buf, l->ferry__len,
						 true, line, len);
		}
		if (avail) {
			ret = ferry__lines_append(l, p, avail);
			l->ferry__off = l->ferry__cur.len;
			if (ret)
				return ferry__lines_fail(l, ret);
		}
		if (l->ferry__end) {
			if (l->ferry__end < 0)
				return l->ferry__end;
			if (l->ferry__len == 0)
				return 0;
			/* A last line without a newline. */
			l->ferry__joined = true;
			return ferry__lines_emit(l, l->ferry__buf, l->ferry__len,
						 false, line, len);
		}
		ret = ferry_stream_next(l->ferry__s, &l->ferry__cur, timeout_ns);
		l->ferry__off = 0;
		if (ret == 1)
			continue;
		l->ferry__cur.len = 0;
		if (ret == FERRY_ETIMEDOUT || ret == FERRY_EDEADLOCK)
			return ret;
		l->ferry__end = ret == 0 ? 1 : ret;
	}
}
