/*
 * test_shutdown.c - ferry_loop_destroy with hundreds of ops in flight:
 * every op sees exactly one final completion, new ops are refused from
 * those callbacks, and nothing leaks (descriptors, threads; ASan for heap).
 */
#include "util.h"

#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "ferry/offload.h"
#include "ferry/timer.h"

struct sd_op {
	struct ferry_op op;
	struct ferry_loop *loop;
	struct ferry_bufring *br;
	int fd;
	int nfinal;
	int nmore;
	int res;
	int restart_rc;
	int errors;
	bool hold;
	unsigned held[8];
	int nheld;
	char buf[16];
};

static void sd_fn(struct ferry_op *op, int res, unsigned flags)
{
	struct sd_op *s = (struct sd_op *)op;

	if (flags & FERRY_CQE_MORE) {
		s->nmore++;
		if (flags & FERRY_CQE_BUFFER) {
			unsigned bid = ferry_cqe_bid(flags);

			if (s->hold && s->nheld < 8)
				s->held[s->nheld++] = bid;
			else
				ferry_bufring_recycle(s->br, bid);
		} else if (res >= 0 && s->br == NULL && s->fd < 0) {
			close(res);	/* an accepted socket */
		}
		return;
	}
	s->nfinal++;
	s->res = res;
	/* An owner releasing its buffers on the final completion: must not
	 * re-arm anything while the loop is going away. */
	for (int i = 0; i < s->nheld; i++)
		ferry_bufring_recycle(s->br, s->held[i]);
	s->nheld = 0;
	/* Starting a new op from a final callback during destroy. */
	s->restart_rc = ferry_op_recv(s->loop, &s->op, s->fd >= 0 ? s->fd : 0,
				      s->buf, sizeof(s->buf), 0);
	if (s->restart_rc == 0)
		s->errors++;
}

static void sd_init(struct sd_op *s, struct ferry_loop *loop, int fd)
{
	memset(s, 0, sizeof(*s));
	s->op.fn = sd_fn;
	s->loop = loop;
	s->fd = fd;
	s->restart_rc = 1;	/* "never tried" */
}

struct sd_job {
	struct ferry_offload job;
	int done_calls;
	int status;
};

static void sd_job_work(struct ferry_offload *j)
{
	usleep(50 * 1000);
}

static void sd_job_done(struct ferry_offload *j, int status)
{
	struct sd_job *x = (struct sd_job *)j;

	x->done_calls++;
	x->status = status;
}

Test(shutdown, destroy_with_hundreds_of_ops_in_flight, .timeout = 30)
{
	enum {
		NRECV = 300,		/* plain recvs on silent sockets */
		NTIMEOUT = 50,		/* timeout ops */
		NMULTI = 10,		/* multishot recvs sharing a ring */
		NLATE = 10,		/* prepared but never submitted */
		NJOBS = 8,		/* offload jobs */
	};
	struct ferry_loop_opts opts = { .offload_threads = 1 };
	struct ferry_loop *loop;
	struct ferry_bufring *br, *tiny;
	static struct sd_op recvs[NRECV], timeouts[NTIMEOUT], multi[NMULTI],
		late[NLATE];
	struct sd_op accept_op, poll_op, parked;
	struct sd_job jobs[NJOBS];
	static int sv[NRECV][2], msv[NMULTI][2], lsv[NLATE][2];
	int psv[2], qsv[2], lfd, total = 0, nfds0, ntask0;
	struct sockaddr_in addr;
	rt_want_fds(4096);
	nfds0 = rt_count_dir("/proc/self/fd");
	ntask0 = rt_count_dir("/proc/self/task");
	loop = rt_loop_new(&opts);
	cr_assert_eq(ferry_bufring_create(loop, 64, 256, &br), 0);
	cr_assert_eq(ferry_bufring_create(loop, 2, 64, &tiny), 0);

	for (int i = 0; i < NRECV; i++) {
		rt_socketpair(sv[i]);
		sd_init(&recvs[i], loop, sv[i][0]);
		cr_assert_eq(ferry_op_recv(loop, &recvs[i].op, sv[i][0],
					   recvs[i].buf, sizeof(recvs[i].buf), 0), 0);
		if (i % 3 == 0)
			cr_assert_eq(ferry_op_set_timeout(loop, &recvs[i].op,
							  60000 * RT_MS), 0);
		if (i % 50 == 49)
			rt_turn(loop, 0);	/* submit in several batches */
	}
	for (int i = 0; i < NTIMEOUT; i++) {
		sd_init(&timeouts[i], loop, -1);
		cr_assert_eq(ferry_op_timeout(loop, &timeouts[i].op,
					      (60000 + (uint64_t)i) * RT_MS), 0);
	}
	for (int i = 0; i < NMULTI; i++) {
		rt_socketpair(msv[i]);
		sd_init(&multi[i], loop, msv[i][0]);
		multi[i].br = br;
		cr_assert_eq(ferry_op_recv_multishot(loop, &multi[i].op,
						     msv[i][0], br), 0);
		rt_write_all(msv[i][1], "mid-stream", 10);
	}
	lfd = rt_listen_tcp(&addr);
	sd_init(&accept_op, loop, -1);
	cr_assert_eq(ferry_op_accept_multishot(loop, &accept_op.op, lfd), 0);
	rt_socketpair(psv);
	sd_init(&poll_op, loop, psv[0]);
	cr_assert_eq(ferry_op_poll_multishot(loop, &poll_op.op, psv[0], POLLIN), 0);

	/* A multishot recv parked on an exhausted ring, buffers held. */
	rt_socketpair(qsv);
	sd_init(&parked, loop, qsv[0]);
	parked.br = tiny;
	parked.hold = true;
	{
		char fill[1024];

		memset(fill, 'p', sizeof(fill));
		rt_write_all(qsv[1], fill, sizeof(fill));
	}
	cr_assert_eq(ferry_op_recv_multishot(loop, &parked.op, qsv[0], tiny), 0);

	for (int i = 0; i < NJOBS; i++) {
		jobs[i] = (struct sd_job){ .job = { .work = sd_job_work,
						    .done = sd_job_done } };
		cr_assert_eq(ferry_offload_submit(loop, &jobs[i].job), 0);
	}

	/* Everything armed; multishot recvs have delivered their data. */
	{
		int c1 = rt_connect_tcp(&addr), c2 = rt_connect_tcp(&addr);

		RT_RUN_UNTIL(loop, accept_op.nmore == 2 && parked.nheld == 2, 3000);
		for (int i = 0; i < NMULTI; i++)
			RT_RUN_UNTIL(loop, multi[i].nmore >= 1, 3000);
		close(c1);
		close(c2);
	}
	rt_run_for(loop, 20);
	cr_assert_eq(ferry_bufring_available(tiny), 0);

	/* And some ops prepared after the last turn: never submitted. */
	for (int i = 0; i < NLATE; i++) {
		rt_socketpair(lsv[i]);
		sd_init(&late[i], loop, lsv[i][0]);
		cr_assert_eq(ferry_op_recv(loop, &late[i].op, lsv[i][0],
					   late[i].buf, sizeof(late[i].buf), 0), 0);
	}

	{
		struct sd_op *all[NRECV + NTIMEOUT + NMULTI + NLATE + 3];
		int n = 0;

		for (int i = 0; i < NRECV; i++)
			all[n++] = &recvs[i];
		for (int i = 0; i < NTIMEOUT; i++)
			all[n++] = &timeouts[i];
		for (int i = 0; i < NMULTI; i++)
			all[n++] = &multi[i];
		for (int i = 0; i < NLATE; i++)
			all[n++] = &late[i];
		all[n++] = &accept_op;
		all[n++] = &poll_op;
		all[n++] = &parked;
		for (int i = 0; i < n; i++) {
			cr_assert_eq(all[i]->nfinal, 0, "op %d ended before destroy (%s)",
				     i, ferry_strerrorname(all[i]->res));
			cr_assert(ferry_op_busy(&all[i]->op));
		}

		alarm(20);
		ferry_loop_destroy(loop);
		alarm(0);

		for (int i = 0; i < n; i++) {
			struct sd_op *s = all[i];

			total += s->nfinal;
			cr_assert_eq(s->nfinal, 1, "op %d: %d final completions", i,
				     s->nfinal);
			cr_assert_eq(s->res, -ECANCELED, "op %d ended with %s", i,
				     ferry_strerrorname(s->res));
			cr_assert_eq(s->restart_rc, -ESHUTDOWN,
				     "op %d: restart during destroy gave %s", i,
				     ferry_strerrorname(s->restart_rc));
			cr_assert(!ferry_op_busy(&s->op));
		}
		cr_assert_eq(total, n);
	}
	for (int i = 0; i < NJOBS; i++) {
		cr_assert_eq(jobs[i].done_calls, 1, "job %d: done ran %d times", i,
			     jobs[i].done_calls);
		cr_assert(jobs[i].status == 0 || jobs[i].status == FERRY_ECANCELED);
	}

	for (int i = 0; i < NRECV; i++) {
		close(sv[i][0]);
		close(sv[i][1]);
	}
	for (int i = 0; i < NMULTI; i++) {
		close(msv[i][0]);
		close(msv[i][1]);
	}
	for (int i = 0; i < NLATE; i++) {
		close(lsv[i][0]);
		close(lsv[i][1]);
	}
	close(psv[0]);
	close(psv[1]);
	close(qsv[0]);
	close(qsv[1]);
	close(lfd);
	cr_assert_eq(rt_count_dir("/proc/self/fd"), nfds0,
		     "descriptors leaked by the loop");
	cr_assert_eq(rt_count_dir("/proc/self/task"), ntask0,
		     "offload threads outlived the loop");
}

Test(shutdown, destroy_right_after_prepare, .timeout = 10)
{
	/* No turn at all: ops prepared but never submitted still complete. */
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct sd_op o[4];
	int sv[2];

	rt_socketpair(sv);
	for (int i = 0; i < 4; i++)
		sd_init(&o[i], loop, sv[0]);
	cr_assert_eq(ferry_op_recv(loop, &o[0].op, sv[0], o[0].buf, 8, 0), 0);
	cr_assert_eq(ferry_op_timeout(loop, &o[1].op, 60000 * RT_MS), 0);
	cr_assert_eq(ferry_op_recv(loop, &o[2].op, sv[0], o[2].buf, 8, 0), 0);
	cr_assert_eq(ferry_op_set_timeout(loop, &o[2].op, 60000 * RT_MS), 0);
	o[3].fd = -1;
	cr_assert_eq(ferry_op_timeout(loop, &o[3].op, 1), 0);
	ferry_loop_destroy(loop);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(o[i].nfinal, 1, "op %d: %d completions", i, o[i].nfinal);
		cr_assert_lt(o[i].res, 0);
		cr_assert_eq(o[i].restart_rc, -ESHUTDOWN);
	}
	close(sv[0]);
	close(sv[1]);
}

Test(shutdown, destroy_null_is_noop, .timeout = 5)
{
	ferry_loop_destroy(NULL);
	cr_assert(true);
}

struct nop_job {
	struct ferry_offload job;
	int done;
};

static void nop_work(struct ferry_offload *j)
{
}

static void nop_done(struct ferry_offload *j, int status)
{
	((struct nop_job *)j)->done++;
}

Test(shutdown, create_destroy_cycles_leak_nothing, .timeout = 30)
{
	int nfds0 = rt_count_dir("/proc/self/fd");
	int ntask0 = rt_count_dir("/proc/self/task");

	for (int i = 0; i < 40; i++) {
		struct ferry_loop *loop = rt_loop_new(NULL);
		struct ferry_bufring *br;
		struct nop_job j = { .job = { .work = nop_work, .done = nop_done } };

		if (i % 2) {
			/* Start the offload pool and register a ring. */
			cr_assert_eq(ferry_offload_submit(loop, &j.job), 0);
			RT_RUN_UNTIL(loop, j.done == 1, 3000);
			cr_assert_eq(ferry_bufring_create(loop, 16, 128, &br), 0);
		}
		rt_turn(loop, 0);
		ferry_loop_destroy(loop);
	}
	cr_assert_eq(rt_count_dir("/proc/self/fd"), nfds0, "descriptors leaked");
	cr_assert_eq(rt_count_dir("/proc/self/task"), ntask0, "threads leaked");
}

struct life {
	int create_rc;
	int turn_rc;
	atomic_int done;
};

static void *loop_thread_main(void *arg)
{
	struct life *l = arg;
	struct ferry_loop *loop = NULL;
	char why[128];

	l->create_rc = ferry_loop_create(&loop, NULL, why, sizeof(why));
	if (l->create_rc == 0) {
		l->turn_rc = ferry_loop_run_once(loop, 10 * RT_MS);
		ferry_loop_destroy(loop);
	}
	atomic_store(&l->done, 1);
	return NULL;
}

Test(shutdown, loops_on_several_threads, .timeout = 15)
{
	/* Several loops at once, one per thread, each its own ring. */
	enum { N = 6 };
	pthread_t th[N];
	struct life l[N];

	memset(l, 0, sizeof(l));
	for (int i = 0; i < N; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, loop_thread_main, &l[i]), 0);
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(atomic_load(&l[i].done), 1);
		cr_assert_eq(l[i].create_rc, 0, "loop %d: %s", i,
			     ferry_strerrorname(l[i].create_rc));
		cr_assert_geq(l[i].turn_rc, 0);
	}
}

/* ------------------------------------------------------------------ */
/* Destroy's final pass: what is posted or woken there is not lost.     */
/*                                                                      */
/* A chain item re-posts itself while the loop still has CQEs in flight; */
/* once ferry_loop_inflight() is 0 inside destroy, the kernel has        */
/* returned everything and the loop will not enter it again: from then  */
/* on the chain is in destroy's final pass, whatever the kernel's timing. */

struct final_chain {
	struct ferry_post p;		/* re-posted from its own fn */
	struct ferry_post from_thread;	/* posted by the helper thread */
	struct ferry_loop *loop;
	int ran;			/* chain links run */
	int final_links;		/* of those, with nothing in flight */
	int want_final;			/* links to run in the final pass */
	int thread_item_ran;
	atomic_int go, posted;		/* handshake with the helper */
	_Atomic uint32_t word;		/* futex word, 0 until the last link */
	bool wake;			/* last link wakes word */
};

static void final_thread_item_fn(struct ferry_post *p)
{
	struct final_chain *c = (struct final_chain *)
		((char *)p - offsetof(struct final_chain, from_thread));

	c->thread_item_ran++;
}

/* Posts c->from_thread from another thread when told to. */
static void *final_helper_main(void *arg)
{
	struct final_chain *c = arg;

	while (!atomic_load(&c->go))
		sched_yield();
	if (atomic_load(&c->go) > 0)
		ferry_loop_post(c->loop, &c->from_thread);
	atomic_store(&c->posted, 1);
	return NULL;
}

static void final_chain_fn(struct ferry_post *p)
{
	struct final_chain *c = (struct final_chain *)p;

	c->ran++;
	if (ferry_loop_inflight(c->loop) == 0 &&
	    ++c->final_links == c->want_final) {
		if (c->wake) {
			atomic_store(&c->word, 1);
			ferry_loop_futex_wake(c->loop, (uint32_t *)&c->word, 1);
		}
		/* A post from another thread lands while we still run. */
		atomic_store(&c->go, 1);
		while (!atomic_load(&c->posted))
			sched_yield();
		return;
	}
	ferry_loop_post(c->loop, p);
}

static void final_chain_init(struct final_chain *c, struct ferry_loop *loop,
			     int want_final)
{
	memset(c, 0, sizeof(*c));
	c->p.fn = final_chain_fn;
	c->from_thread.fn = final_thread_item_fn;
	c->loop = loop;
	c->want_final = want_final;
}

Test(shutdown, items_posted_in_the_final_pass_run, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct final_chain c;
	pthread_t th;

	final_chain_init(&c, loop, 5);
	cr_assert_eq(pthread_create(&th, NULL, final_helper_main, &c), 0);
	rt_turn(loop, 0);
	cr_assert_gt(ferry_loop_inflight(loop), 0, "the doorbell is armed");
	/* Posted by the loop thread, run by destroy. */
	ferry_loop_post(loop, &c.p);
	ferry_loop_destroy(loop);
	if (!atomic_load(&c.go))
		atomic_store(&c.go, -1);	/* release the helper */
	pthread_join(th, NULL);
	cr_assert_eq(c.final_links, 5, "%d of 5 items posted in destroy's "
		     "final pass ran (%d links in all)", c.final_links, c.ran);
	cr_assert_eq(c.thread_item_ran, 1, "the item another thread posted "
		     "in the final pass ran %d times", c.thread_item_ran);
}

struct final_sleeper {
	_Atomic uint32_t *word;
	atomic_int tid;
	atomic_int woken;
};

static void *final_sleeper_main(void *arg)
{
	struct final_sleeper *s = arg;

	atomic_store(&s->tid, (int)rt_gettid());
	while (atomic_load(s->word) == 0)
		syscall(SYS_futex, s->word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	atomic_store(&s->woken, 1);
	return NULL;
}

Test(shutdown, futex_wake_in_the_final_pass_is_delivered, .timeout = 10)
{
	struct ferry_loop *loop = rt_loop_new(NULL);
	struct final_chain c;
	struct final_sleeper s = { .word = &c.word };
	pthread_t th, helper;
	uint64_t end;

	final_chain_init(&c, loop, 1);
	c.wake = true;
	cr_assert_eq(pthread_create(&helper, NULL, final_helper_main, &c), 0);
	cr_assert_eq(pthread_create(&th, NULL, final_sleeper_main, &s), 0);
	while (!atomic_load(&s.tid))
		usleep(1000);
	rt_wait_until_asleep(atomic_load(&s.tid));
	rt_turn(loop, 0);
	ferry_loop_post(loop, &c.p);
	ferry_loop_destroy(loop);
	pthread_join(helper, NULL);
	cr_assert_eq(c.final_links, 1, "the waking item did not run");
	/* The waiter has nobody else to wake it: give it a generous while. */
	end = ferry_time_now() + 3000 * RT_MS;
	while (!atomic_load(&s.woken) && ferry_time_now() < end)
		usleep(1000);
	if (!atomic_load(&s.woken)) {
		syscall(SYS_futex, &c.word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
		pthread_join(th, NULL);
		cr_assert_fail("a futex wake issued in destroy's final pass "
			       "never reached the sleeper");
	}
	pthread_join(th, NULL);
}
