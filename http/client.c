/*
 * client.c - the public client: options, stats, buffers kept by callers,
 * and closing. The top of http/ (see internal.h for what it calls): the
 * pool is pool.c, connections conn.c, requests request.c.
 *
 * Closing: every request fails with FERRY_ECLOSED, every connection
 * closes; the client itself is freed in the loop's close phase once
 * nothing refers to it (ferry__client_reap), never inside a callback.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "internal.h"
#include "tls.h"

#define DEF_PER_ORIGIN 8
#define DEF_MAX_CONNS 256
#define DEF_IDLE_MS 60000
#define DEF_CONNECT_MS 10000
#define DEF_READ_MS 30000
#define DEF_MAX_REDIRECTS 10
#define DEF_BUF_SIZE 16384
#define DEF_BUF_COUNT 256
#define DEF_REDIRECT_BODY (16 * 1024)
#define DEF_MIN_RSA_BITS 2048
#define DEF_SESSION_LIFETIME_MS (3600u * 1000)
#define DEF_HAPPY_EYEBALLS_MS 250	/* RFC 8305 5's recommendation */

static void ferry__client_reap(struct ferry_closing *cl);
static void ferry__client_free_unused(struct ferry_http_client *c);
static void ferry__client_reap_now(struct ferry_http_client *c);

/* What the client copied from its options. */
static void ferry__client_free_strings(struct ferry_http_client *c)
{
	free(c->user_agent);
	free(c->ca_file);
	free(c->ca_dir);
	free(c->no_proxy);
	free(c->unix_path);
	free(c->client_cert);
	free(c->client_key);
	ferry__proxy_free(c->proxy_http);
	ferry__proxy_free(c->proxy_https);
}

static int ferry__client_opts(struct ferry_http_client_opts *o,
			      const struct ferry_http_client_opts *in)
{
	if (in)
		*o = *in;
	else
		memset(o, 0, sizeof(*o));
	if (!o->max_conns_per_origin)
		o->max_conns_per_origin = DEF_PER_ORIGIN;
	if (!o->max_conns)
		o->max_conns = DEF_MAX_CONNS;
	if (!o->idle_timeout_ms)
		o->idle_timeout_ms = DEF_IDLE_MS;
	if (!o->connect_timeout_ms)
		o->connect_timeout_ms = DEF_CONNECT_MS;
	if (!o->read_timeout_ms)
		o->read_timeout_ms = DEF_READ_MS;
	if (!o->max_head)
		o->max_head = FERRY__H1_MAX_HEAD_DEFAULT;
	if (!o->max_redirects)
		o->max_redirects = DEF_MAX_REDIRECTS;
	if (!o->max_interim)
		o->max_interim = FERRY__H1_MAX_INTERIM_DEFAULT;
	if (!o->max_redirect_body)
		o->max_redirect_body = DEF_REDIRECT_BODY;
	if (!o->recv_buf_size)
		o->recv_buf_size = DEF_BUF_SIZE;
	if (!o->recv_buf_count)
		o->recv_buf_count = DEF_BUF_COUNT;
	if (o->recv_buf_count > 32768 ||
	    (o->recv_buf_count & (o->recv_buf_count - 1)) ||
	    o->recv_buf_size > (1u << 30))
		return FERRY_EINVAL;
	if (o->user_agent &&
	    (!*o->user_agent || strpbrk(o->user_agent, "\r\n")))
		return FERRY_EINVAL;
	if ((unsigned)o->tls_ciphers > FERRY_TLS_CIPHERS_CHACHA20_FIRST)
		return FERRY_EINVAL;
	if (!o->tls_min_version)
		o->tls_min_version = FERRY_TLS_1_2;
	if (o->tls_min_version < FERRY_TLS_1_0 ||
	    o->tls_min_version > FERRY_TLS_1_2)
		return FERRY_EINVAL;
	if (!o->tls_min_rsa_bits)
		o->tls_min_rsa_bits = DEF_MIN_RSA_BITS;
	if (o->tls_min_rsa_bits < 1024 || o->tls_min_rsa_bits > 4096)
		return FERRY_EINVAL;
	if (!o->tls_send_record_max)
		o->tls_send_record_max = FERRY__TLS_SEND_RECORD_DEFAULT;
	if (o->tls_send_record_max < 1024 || o->tls_send_record_max > 16384)
		return FERRY_EINVAL;
	if (!o->tls_session_lifetime_ms)
		o->tls_session_lifetime_ms = DEF_SESSION_LIFETIME_MS;
	if (!o->happy_eyeballs_delay_ms)
		o->happy_eyeballs_delay_ms = DEF_HAPPY_EYEBALLS_MS;
	ferry__retry_fill(&o->retry, in ? &in->retry : NULL);
	if (!o->max_decoded)
		o->max_decoded = FERRY__DECODE_MAX_DEFAULT;
	if (!o->max_decode_ratio)
		o->max_decode_ratio = FERRY__DECODE_RATIO_DEFAULT;
	return 0;
}

int ferry_http_client_create(struct ferry_loop *loop,
			     const struct ferry_http_client_opts *opts,
			     struct ferry_http_client **cp)
{
	struct ferry_http_client *c;
	int err;

	if (!cp)
		return FERRY_EINVAL;
	*cp = NULL;
	if (!loop)
		return FERRY_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	err = ferry__client_opts(&c->opts, opts);
	if (err < 0)
		goto fail;
	if (!(ferry_loop_features(loop) & FERRY_FEAT_RECV_MULTISHOT)) {
		err = -EOPNOTSUPP;
		goto fail;
	}
	c->loop = loop;
	err = -ENOMEM;
	if (c->opts.user_agent) {
		c->user_agent = strdup(c->opts.user_agent);
		if (!c->user_agent)
			goto fail;
		c->opts.user_agent = c->user_agent;
	}
	if (c->opts.ca_file) {
		c->ca_file = strdup(c->opts.ca_file);
		if (!c->ca_file)
			goto fail;
		c->opts.ca_file = c->ca_file;
	}
	if (c->opts.ca_dir) {
		c->ca_dir = strdup(c->opts.ca_dir);
		if (!c->ca_dir)
			goto fail;
		c->opts.ca_dir = c->ca_dir;
	}
	if (c->opts.unix_socket) {
		c->unix_path = strdup(c->opts.unix_socket);
		if (!c->unix_path)
			goto fail;
	}
	err = ferry__client_proxies(c, NULL, 0);
	if (err < 0)
		goto fail;
	/* Parsed and copied: the caller's strings are not kept. */
	c->opts.proxy = NULL;
	c->opts.no_proxy = c->no_proxy;
	c->opts.unix_socket = c->unix_path;
	err = -ENOMEM;
	if (c->opts.tls_client_cert) {
		c->client_cert = strdup(c->opts.tls_client_cert);
		if (!c->client_cert)
			goto fail;
		c->opts.tls_client_cert = c->client_cert;
	}
	if (c->opts.tls_client_key) {
		c->client_key = strdup(c->opts.tls_client_key);
		if (!c->client_key)
			goto fail;
		c->opts.tls_client_key = c->client_key;
	}
	c->buf_refs = calloc(c->opts.recv_buf_count, sizeof(*c->buf_refs));
	if (!c->buf_refs)
		goto fail;
	err = ferry__dns_new(c, &c->dns, NULL, 0);
	if (err < 0)
		goto fail;
	/* Jitter only has to differ between clients and runs. */
	c->retry_rng = ferry_time_now() ^ (uint64_t)(uintptr_t)c;
	err = ferry_bufring_create(loop, c->opts.recv_buf_count,
				   c->opts.recv_buf_size, &c->br);
	if (err < 0)
		goto fail;
	ferry__list_init(&c->origins);
	ferry__list_init(&c->conns);
	ferry__list_init(&c->reqs);
	ferry__list_init(&c->spills);
	c->conn_owner = &ferry__req_conn_owner;
	c->reap.fn = ferry__client_reap;
	*cp = c;
	return 0;
fail:
	ferry__dns_free(c->dns);
	free(c->buf_refs);
	ferry__client_free_strings(c);
	free(c);
	return err;
}

struct ferry_loop *ferry_http_client_loop(const struct ferry_http_client *c)
{
	return c->loop;
}

unsigned ferry_http_client_recv_buf_count(const struct ferry_http_client *c)
{
	return c->opts.recv_buf_count;
}

static void ferry__client_dns_stats(const struct ferry_http_client *c,
				    struct ferry_http_client_stats *st)
{
	struct ferry__dns_counters dc;

	ferry__dns_counters(c->dns, &dc);
	st->dns_lookups = dc.lookups;
	st->dns_cache_hits = dc.hits;
	st->dns_shared = dc.shared;
}

void ferry_http_client_stats(const struct ferry_http_client *c,
			     struct ferry_http_client_stats *st)
{
	st->conns = c->nconns;
	st->idle = c->nidle;
	st->requests = c->nreqs;
	st->waiting = c->nwaiting;
	st->conns_opened = c->conns_opened;
	st->requests_started = c->requests_started;
	st->retries = c->retries;
	st->policy_retries = c->policy_retries;
	ferry__client_dns_stats(c, st);
	st->tls_full = st->tls_resumed = st->tls_verify_cached = 0;
	if (c->tls_cfg) {
		struct ferry__tls_counters tc;

		ferry__tls_config_counters(c->tls_cfg, &tc);
		st->tls_full = tc.full;
		st->tls_resumed = tc.resumed;
		st->tls_verify_cached = tc.verify_cached;
	}
}

/* ------------------------------------------------------------------ */
/* Receive buffers                                                       */

/* The kept spill whose token this is, or NULL for a bad token. Keepers
 * (a stream's queue) release in the order they kept, so the walk from
 * the oldest finds the token first; the walk is what validates it. */
static struct ferry__spill *
ferry__client_find_spill(struct ferry_http_client *c, uintptr_t token)
{
	for (struct ferry__link *l = c->spills.next; l != &c->spills; l = l->next)
		if ((uintptr_t)ferry__container_of(l, struct ferry__spill,
							link) == token)
			return (struct ferry__spill *)token;
	return NULL;
}

int ferry_http_buffer_release(struct ferry_http_client *c, uintptr_t token)
{
	unsigned bid;

	if (!c || token == 0)
		return FERRY_EINVAL;
	if (token > c->opts.recv_buf_count) {
		/* A spill (see internal.h): its address is the token. */
		struct ferry__spill *sp = ferry__client_find_spill(c, token);

		if (!sp)
			return FERRY_EINVAL;
		if (--sp->kept == 0)
			ferry__list_del(&sp->link);
		c->bufs_kept--;
		ferry__spill_unref(c, sp);
		ferry__client_reap_now(c);
		return 0;
	}
	bid = (unsigned)(token - 1);
	if (!c->bufs_kept || c->buf_refs[bid] == 0)
		return FERRY_EINVAL;
	c->bufs_kept--;
	ferry__buf_unref(c, bid);
	ferry__client_reap_now(c);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Closing                                                               */

/* The close phase: free the client once nothing refers to it. */
static void ferry__client_reap(struct ferry_closing *cl)
{
	struct ferry_http_client *c = ferry__container_of(cl,
					struct ferry_http_client, reap);

	c->reap_queued = false;
	ferry__client_free_unused(c);
}

/*
 * From a public call (the caller's own frame, not a callback of this
 * client: one of those would still have a request or a connection
 * listed): free at once when nothing refers to the client any more, as
 * ferry_http_client_close and ferry_http_buffer_release promise; else the
 * close phase will.
 */
static void ferry__client_reap_now(struct ferry_http_client *c)
{
	if (c->reap_queued)
		return;		/* the close phase holds c: it frees it */
	ferry__client_free_unused(c);
}

/* Free c if it is closing and nothing refers to it. */
static void ferry__client_free_unused(struct ferry_http_client *c)
{
	ferry_http_closed_fn cb;
	void *ctx;

	if (!c->closing || c->close_busy || !ferry__list_empty(&c->conns) ||
	    !ferry__list_empty(&c->reqs) || c->bufs_kept ||
	    ferry__dns_busy(c->dns))
		return;
	while (!ferry__list_empty(&c->origins)) {
		struct ferry__link *l = c->origins.next;

		ferry__list_del(l);
		free(ferry__container_of(l, struct ferry__origin, link));
	}
	ferry_bufring_destroy(c->br);
	ferry__client_pool_free(c);
	ferry__spill_pool_free(c);
	cb = c->closed_cb;
	ctx = c->closed_ctx;
	free(c->buf_refs);
	ferry__client_free_strings(c);
	ferry__tls_config_free(c->tls_cfg);
	ferry__dns_free(c->dns);
	free(c);
	if (cb)
		cb(ctx);
}

/* The first live request not already failing, or NULL. */
static struct ferry_http_request *
ferry__client_live_req(struct ferry_http_client *c)
{
	for (struct ferry__link *l = c->reqs.next; l != &c->reqs; l = l->next) {
		struct ferry_http_request *req = ferry__container_of(l,
					struct ferry_http_request, link);

		if (req->state != FERRY__REQ_DONE && !req->pending_err)
			return req;
	}
	return NULL;
}

void ferry_http_client_close(struct ferry_http_client *c,
			     ferry_http_closed_fn cb, void *ctx)
{
	struct ferry_http_request *req;
	struct ferry__link *l, *next;

	if (!c)
		return;
	c->closing = true;
	c->close_busy = true;
	c->closed_cb = cb;
	c->closed_ctx = ctx;
	/* Each on_done may cancel others or start new (refused) requests:
	 * look for the next live one afresh each time. */
	while ((req = ferry__client_live_req(c)) != NULL)
		ferry__req_fail(req, FERRY_ECLOSED, "the client was closed");
	for (l = c->conns.next; l != &c->conns; l = next) {
		next = l->next;
		ferry__conn_close_quiet(ferry__container_of(l,
						struct ferry__conn, link));
	}
	c->close_busy = false;
	ferry__client_reap_now(c);
}
