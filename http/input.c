/*
 * input.c - received bytes and their references: ring buffers counted per
 * buffer id, spills (copies) counted per spill; and the client's reaping
 * in the loop's close phase. The bottom of http/: calls only runtime/.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void ferry__buf_unref(struct ferry_http_client *c, unsigned bid)
{
	if (--c->buf_refs[bid] == 0)
		ferry_bufring_recycle(c->br, bid);
}

void ferry__buf_keep(struct ferry_http_client *c, unsigned bid)
{
	c->buf_refs[bid]++;
	c->bufs_kept++;
}

/* Spills of one record's size come from, and go back to, the client's
 * free list (internal.h, FERRY__SPILL_POOL_CAP): a paused TLS stream
 * spills one per record. */
struct ferry__spill *ferry__spill_new(struct ferry_http_client *c,
				      const void *data, size_t len)
{
	size_t cap = len > FERRY__SPILL_POOL_CAP ? len : FERRY__SPILL_POOL_CAP;
	struct ferry__spill *sp = c->spill_pool;

	if (sp && cap == FERRY__SPILL_POOL_CAP) {
		c->spill_pool = (struct ferry__spill *)sp->link.next;
		c->nspill_pool--;
		FERRY__UNPOISON(sp->data, FERRY__SPILL_POOL_CAP + 1);
	} else {
		sp = malloc(sizeof(*sp) + cap + 1);
		if (!sp)
			return NULL;
	}
	memset(sp, 0, sizeof(*sp));
	sp->refs = 1;
	sp->len = len;
	sp->cap = cap;
	memcpy(sp->data, data, len);
	return sp;
}

void ferry__spill_unref(struct ferry_http_client *c, struct ferry__spill *sp)
{
	if (--sp->refs)
		return;
	if (sp->cap != FERRY__SPILL_POOL_CAP ||
	    c->nspill_pool >= FERRY__SPILL_POOL_MAX) {
		free(sp);
		return;
	}
	FERRY__POISON(sp->data, FERRY__SPILL_POOL_CAP + 1);
	sp->link.next = (struct ferry__link *)c->spill_pool;
	c->spill_pool = sp;
	c->nspill_pool++;
}

void ferry__spill_pool_free(struct ferry_http_client *c)
{
	while (c->spill_pool) {
		struct ferry__spill *sp = c->spill_pool;

		c->spill_pool = (struct ferry__spill *)sp->link.next;
		FERRY__UNPOISON(sp->data, FERRY__SPILL_POOL_CAP + 1);
		free(sp);
	}
	c->nspill_pool = 0;
}

void ferry__spill_keep(struct ferry_http_client *c, struct ferry__spill *sp)
{
	if (sp->kept++ == 0)
		ferry__list_add_tail(&c->spills, &sp->link);
	sp->refs++;
	c->bufs_kept++;
}

int ferry__input_copy(struct ferry_http_client *c, struct ferry__input *in,
		      const void *data, size_t len)
{
	struct ferry__spill *sp = ferry__spill_new(c, data, len);

	if (!sp)
		return -ENOMEM;
	*in = (struct ferry__input){ sp, 0, 0, (uint32_t)len };
	return 0;
}

const char *ferry__input_data(const struct ferry_http_client *c,
			      const struct ferry__input *in)
{
	if (in->ext)
		return in->ext + in->off;
	if (in->spill)
		return in->spill->data + in->off;
	return (const char *)ferry_bufring_buf(c->br, in->bid) + in->off;
}

void ferry__input_unref(struct ferry_http_client *c,
			const struct ferry__input *in)
{
	if (in->ext)
		return;		/* the request's body buffer: no reference */
	if (in->spill)
		ferry__spill_unref(c, in->spill);
	else
		ferry__buf_unref(c, in->bid);
}

/*
 * The client is freed in the close phase, never from inside the call
 * (a callback's frame, often) that dropped its last reference: whoever
 * drops one calls this, and the reap (client.c) checks again then.
 */
void ferry__client_reap_later(struct ferry_http_client *c)
{
	if (!c->closing || c->reap_queued)
		return;
	c->reap_queued = true;
	ferry_loop_close_later(c->loop, &c->reap);
}
