/*
 * bufring.c - provided-buffer rings for multishot receive.
 *
 * The backend picks a buffer from the ring for each completion (the
 * kernel's provided-buffer ring on io_uring, a stack of free ids on
 * epoll: buf_register/buf_put in the backend table); the buffer
 * then belongs to whoever consumes the data until ferry_bufring_recycle()
 * puts it back. Multishot recvs that found the ring empty are parked here
 * and re-armed by the next recycle: running dry is backpressure.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

int ferry_bufring_create(struct ferry_loop *loop, unsigned count,
			 unsigned size, struct ferry_bufring **brp)
{
	struct ferry_bufring *br;
	int ret;

	FERRY__ASSERT_LOOP(loop);
	*brp = NULL;
	if (!(loop->features & FERRY_FEAT_BUF_RING))
		return -EOPNOTSUPP;
	if (!count || count > 32768 || (count & (count - 1)) || !size)
		return -EINVAL;
	br = calloc(1, sizeof(*br));
	if (!br)
		return -ENOMEM;
	br->loop = loop;
	br->count = count;
	br->size = size;
	br->mask = count - 1;
	br->bgid = loop->next_bgid++;
	/* calloc, not malloc: the kernel fills these behind valgrind's back
	 * (it cannot see io_uring's writes), so they must start out defined.
	 * Large callocs are fresh zero pages: no cost until touched. */
	br->bufs = calloc(count, size);
	if (!br->bufs) {
		free(br);
		return -ENOMEM;
	}
	ret = loop->be->buf_register(br);
	if (ret < 0) {
		free(br->bufs);
		free(br);
		return ret;
	}
	for (unsigned i = 0; i < count; i++)
		loop->be->buf_put(br, i);

	br->next = loop->bufrings;
	loop->bufrings = br;
	*brp = br;
	return 0;
}

void ferry_bufring_destroy(struct ferry_bufring *br)
{
	struct ferry_bufring **pp;

	if (!br)
		return;
	FERRY__ASSERT_LOOP(br->loop);
	for (pp = &br->loop->bufrings; *pp; pp = &(*pp)->next)
		if (*pp == br) {
			*pp = br->next;
			break;
		}
	br->loop->be->buf_unregister(br);
	free(br->bufs);
	free(br);
}

void ferry__bufring_destroy_all(struct ferry_loop *loop)
{
	while (loop->bufrings)
		ferry_bufring_destroy(loop->bufrings);
}

void *ferry_bufring_buf(const struct ferry_bufring *br, unsigned bid)
{
	return br->bufs + (size_t)(bid & br->mask) * br->size;
}

unsigned ferry_bufring_size(const struct ferry_bufring *br)
{
	return br->size;
}

unsigned ferry_bufring_available(const struct ferry_bufring *br)
{
	return br->count - br->outstanding;
}

unsigned ferry__bufring_bundles(const struct ferry_bufring *br)
{
	return br->bundles;
}

void ferry__bufring_taken(struct ferry_bufring *br)
{
	br->outstanding++;
}

void ferry__bufring_park(struct ferry_bufring *br, struct ferry_op *op)
{
	op->ferry__flags |= FERRY__OPF_PARKED;
	op->ferry__next = br->parked;
	br->parked = op;
}

bool ferry__bufring_unpark(struct ferry_bufring *br, struct ferry_op *op)
{
	for (struct ferry_op **pp = &br->parked; *pp; pp = &(*pp)->ferry__next)
		if (*pp == op) {
			*pp = op->ferry__next;
			op->ferry__next = NULL;
			op->ferry__flags &= (uint8_t)~FERRY__OPF_PARKED;
			return true;
		}
	return false;
}

void ferry_bufring_recycle(struct ferry_bufring *br, unsigned bid)
{
	struct ferry_op *list;

	FERRY__ASSERT_LOOP(br->loop);
	br->loop->be->buf_put(br, bid);
	br->outstanding--;

	/* Re-arm everything that stalled for want of a buffer. A recv that
	 * cannot be re-armed (the loop is closing) completes cancelled. */
	list = br->parked;
	br->parked = NULL;
	while (list) {
		struct ferry_op *op = list;

		list = op->ferry__next;
		op->ferry__next = NULL;
		op->ferry__flags &= (uint8_t)~FERRY__OPF_PARKED;
		if (ferry__recv_multishot_arm(br->loop, op) < 0)
			ferry__op_defer(br->loop, op, -ECANCELED);
	}
}
