/*
 * happy.c - Happy Eyeballs (RFC 8305 5): connect attempts to a list of
 * addresses, started one after another, the next when the delay has passed
 * with none connected or at once when one fails; the first to connect
 * wins and the others are cancelled.
 *
 * Each attempt is a socket op, then a connect op with a linked timeout.
 * The race owns its attempts and frees itself once the last of their
 * completions is in, after it has reported (or been abandoned): a
 * connection that gives up on it never waits for its ops.
 *
 * An attempt's life: SOCKET -> CONNECT -> OVER (failed, lost, or won and
 * its socket handed over). `live` counts attempts not OVER: each has
 * exactly one op in flight.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns.h"
#include "internal.h"

enum att_state {
	ATT_IDLE,
	ATT_SOCKET,
	ATT_CONNECT,
	ATT_OVER,
};

struct he_attempt {
	struct ferry_op op;
	struct ferry__he *he;
	enum att_state st;
	int fd;
	unsigned idx;
};

struct ferry__he {
	struct ferry_loop *loop;
	struct ferry__addrs as;		/* own copy */
	struct he_attempt *att;		/* as.n of them, by address */
	unsigned next;			/* next address to try */
	unsigned live;			/* attempts with an op in flight */
	uint64_t delay_ns, timeout_ns;
	struct ferry_timer timer;	/* next start (or a report) */
	ferry__he_done_fn done;
	void *ctx;
	int last_err;
	unsigned last_idx;
	bool reported, abandoned;
	bool in_done;			/* done() on the stack */
};

static void ferry__he_op_done(struct ferry_op *op, int res, unsigned flags);

static void ferry__he_maybe_free(struct ferry__he *he)
{
	if (!(he->reported || he->abandoned) || he->live || he->in_done)
		return;
	ferry_timer_stop(he->loop, &he->timer);
	ferry__addrs_free(&he->as);
	free(he->att);
	free(he);
}

/* The connect op for att, whose socket is open. 0 or the op's error. */
static int ferry__att_connect(struct he_attempt *att)
{
	struct ferry__he *he = att->he;
	int err;

	att->st = ATT_CONNECT;
	err = ferry_op_connect(he->loop, &att->op, att->fd,
			       (struct sockaddr *)&he->as.a[att->idx],
			       he->as.len[att->idx]);
	if (!err && he->timeout_ns)
		err = ferry_op_set_timeout(he->loop, &att->op, he->timeout_ns);
	return err;
}

/* Start the attempt for address i: 0 (an op is in flight) or an error
 * (the attempt is OVER). */
static int ferry__att_start(struct ferry__he *he, unsigned i)
{
	struct he_attempt *att = &he->att[i];
	int family = he->as.a[i].ss_family;
	int err;

	att->he = he;
	att->idx = i;
	att->fd = -1;
	att->op.fn = ferry__he_op_done;
	att->st = ATT_SOCKET;
	err = ferry_op_socket(he->loop, &att->op, family,
			      SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (err == -EOPNOTSUPP) {
		/* No socket op in this kernel: the syscall does not block. */
		att->fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
		err = att->fd < 0 ? -errno : ferry__att_connect(att);
	}
	if (err < 0) {
		if (att->fd >= 0)
			close(att->fd);
		att->fd = -1;
		att->st = ATT_OVER;
		return err;
	}
	he->live++;
	return 0;
}

/* Tell the owner that every address failed. */
static void ferry__he_report_failure(struct ferry__he *he)
{
	he->reported = true;
	ferry_timer_stop(he->loop, &he->timer);
	he->in_done = true;
	he->done(he->ctx, he->last_err, he->last_idx);
	he->in_done = false;
}

/*
 * Start the next address that takes, and arm the delay for the one after;
 * with none left and none live, report the failure. Called from a
 * completion or the timer, never from ferry__he_start.
 */
static void ferry__he_advance(struct ferry__he *he)
{
	while (he->next < he->as.n) {
		unsigned i = he->next++;
		int err = ferry__att_start(he, i);

		if (err == 0) {
			if (he->delay_ns && he->next < he->as.n)
				ferry_timer_start(he->loop, &he->timer,
						  ferry_time_now() + he->delay_ns);
			return;
		}
		he->last_err = err;
		he->last_idx = i;
	}
	if (!he->live)
		ferry__he_report_failure(he);
}

static void ferry__he_timer_fn(struct ferry_timer *t)
{
	struct ferry__he *he = ferry__container_of(t, struct ferry__he,
							timer);

	if (he->reported || he->abandoned)
		return;
	ferry__he_advance(he);
	ferry__he_maybe_free(he);
}

/* Cancel every attempt still in flight (their completions close them). */
static void ferry__he_cancel_all(struct ferry__he *he)
{
	for (unsigned i = 0; i < he->next; i++) {
		struct he_attempt *att = &he->att[i];

		if (att->st == ATT_SOCKET || att->st == ATT_CONNECT)
			ferry_op_cancel(he->loop, &att->op);
	}
}

static void ferry__att_over(struct he_attempt *att)
{
	if (att->fd >= 0)
		close(att->fd);
	att->fd = -1;
	att->st = ATT_OVER;
	att->he->live--;
}

static void ferry__att_won(struct he_attempt *att)
{
	struct ferry__he *he = att->he;
	int fd = att->fd;

	att->fd = -1;
	ferry__att_over(att);
	he->reported = true;
	ferry_timer_stop(he->loop, &he->timer);
	ferry__he_cancel_all(he);
	he->in_done = true;
	he->done(he->ctx, fd, att->idx);
	he->in_done = false;
}

static void ferry__att_failed(struct he_attempt *att, int err)
{
	struct ferry__he *he = att->he;

	ferry__att_over(att);
	he->last_err = err;
	he->last_idx = att->idx;
	ferry__he_advance(he); /* RFC 8305 5: the next one at once */
}

static void ferry__he_op_done(struct ferry_op *op, int res, unsigned flags)
{
	struct he_attempt *att = ferry__container_of(op,
					struct he_attempt, op);
	struct ferry__he *he = att->he;
	int err;

	(void)flags;
	if (he->reported || he->abandoned) {
		/* Lost the race, or nobody waits: close what came. */
		if (att->st == ATT_SOCKET && res >= 0)
			att->fd = res;
		ferry__att_over(att);
	} else if (res < 0) {
		ferry__att_failed(att, res);
	} else if (att->st == ATT_SOCKET) {
		att->fd = res;
		err = ferry__att_connect(att);
		if (err < 0)
			ferry__att_failed(att, err);
	} else {
		ferry__att_won(att);
	}
	ferry__he_maybe_free(he);
}

int ferry__he_start(struct ferry_loop *loop, const struct ferry__addrs *as,
		    uint64_t delay_ns, uint64_t timeout_ns,
		    ferry__he_done_fn done, void *ctx, struct ferry__he **hep)
{
	struct ferry__he *he = calloc(1, sizeof(*he));
	int err;

	*hep = NULL;
	if (!he || !as->n || ferry__addrs_alloc(&he->as, as->n) < 0)
		goto nomem;
	he->att = calloc(as->n, sizeof(*he->att));
	if (!he->att)
		goto nomem;
	memcpy(he->as.a, as->a, as->n * sizeof(*as->a));
	memcpy(he->as.len, as->len, as->n * sizeof(*as->len));
	he->loop = loop;
	he->delay_ns = delay_ns;
	he->timeout_ns = timeout_ns;
	he->done = done;
	he->ctx = ctx;
	he->timer.fn = ferry__he_timer_fn;
	he->next = 1;
	err = ferry__att_start(he, 0);
	if (err < 0) {
		/* Go on (or report) from the timer, not from inside start. */
		he->last_err = err;
		he->last_idx = 0;
		if (ferry_timer_start(loop, &he->timer, 0) < 0)
			goto nomem;
	} else if (delay_ns && as->n > 1 &&
		   ferry_timer_start(loop, &he->timer,
				     ferry_time_now() + delay_ns) < 0) {
		ferry__he_abandon(he);
		return -ENOMEM;
	}
	*hep = he;
	return 0;
nomem:
	if (he) {
		ferry__addrs_free(&he->as);
		free(he->att);
	}
	free(he);
	return -ENOMEM;
}

void ferry__he_abandon(struct ferry__he *he)
{
	if (!he || he->abandoned)
		return;
	he->abandoned = true;
	ferry_timer_stop(he->loop, &he->timer);
	ferry__he_cancel_all(he);
	ferry__he_maybe_free(he);
}
