/*
 * client.c - the client: options, origins, the pool's dispatch rule, the
 * receive buffer ring and its reference counts, and closing.
 *
 * Dispatch rule, per origin, for the request at the head of its FIFO:
 * take the most recently idled connection (warm, least likely closed by
 * the server); else open one if both limits allow; else, when the total
 * limit is what blocks, close the idle connection of another origin that
 * has waited longest; else wait. A request being retried never takes an
 * idle connection (the one it failed on was idle too).
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
#define DEF_TLS_CACHE 64
#define DEF_REDIRECT_BODY (16 * 1024)
#define DEF_MIN_RSA_BITS 2048
#define DEF_SESSION_LIFETIME_MS (3600u * 1000)
#define DEF_HAPPY_EYEBALLS_MS 250	/* RFC 8305 5's recommendation */

/* A cache size option: 0 is the default, FERRY_HTTP_NO_CACHE none. */
static unsigned cache_size(unsigned opt)
{
	return opt == FERRY_HTTP_NO_CACHE ? 0 : opt ? opt : DEF_TLS_CACHE;
}

static int client_opts(struct ferry_http_client_opts *o,
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
	err = client_opts(&c->opts, opts);
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
	*cp = c;
	return 0;
fail:
	ferry__dns_free(c->dns);
	free(c->buf_refs);
	free(c->user_agent);
	free(c->ca_file);
	free(c->ca_dir);
	free(c->client_cert);
	free(c->client_key);
	free(c);
	return err;
}

/*
 * ferry__client_tls - make sure the TLS config (trust anchors) is loaded:
 * once per client, at its first https request, so that http-only clients
 * never pay for parsing the CA bundle. 0, FERRY_ETLS_CA or
 * FERRY_ETLS_CLIENT_CERT (@why says) or -ENOMEM.
 */
int ferry__client_tls(struct ferry_http_client *c, char *why, size_t whylen)
{
	struct ferry__tls_settings set = {
		.ca_file = c->opts.ca_file,
		.ca_dir = c->opts.ca_dir,
		.insecure = c->opts.tls_insecure_skip_verify,
		.ciphers = c->opts.tls_ciphers,
		.session_cache = cache_size(c->opts.tls_session_cache),
		.verify_cache = cache_size(c->opts.tls_verify_cache),
		.session_lifetime_s =
			c->opts.tls_session_lifetime_ms == FERRY_HTTP_NO_TIMEOUT
				? 0 : (c->opts.tls_session_lifetime_ms + 999) / 1000,
		.min_version = c->opts.tls_min_version,
		.legacy_suites = c->opts.tls_allow_legacy_suites,
		.min_rsa_bits = c->opts.tls_min_rsa_bits,
		.allow_sha1 = c->opts.tls_allow_sha1,
		.allow_renegotiation = c->opts.tls_allow_renegotiation,
		.send_record_max = c->opts.tls_send_record_max,
		.client_cert = c->opts.tls_client_cert,
		.client_key = c->opts.tls_client_key,
	};

	if (c->tls_cfg)
		return 0;
	return ferry__tls_config_new(&set, &c->tls_cfg, why, whylen);
}

struct ferry_loop *ferry_http_client_loop(const struct ferry_http_client *c)
{
	return c->loop;
}

unsigned ferry_http_client_recv_buf_count(const struct ferry_http_client *c)
{
	return c->opts.recv_buf_count;
}

static void client_dns_stats(const struct ferry_http_client *c,
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
	client_dns_stats(c, st);
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
/* Origins                                                               */

/*
 * Is o the origin of u? The same as comparing keys, without formatting
 * one per request: the host's bytes fix its type (a name has no ':', an
 * IPv4 literal parses as one), and the key holds the host at host_off.
 */
static bool origin_is(const struct ferry__origin *o, const struct ferry_url *u)
{
	return o->scheme == u->scheme && o->port == u->port &&
	       o->host_len == u->host_len &&
	       !memcmp(o->key + o->host_off, u->host, u->host_len);
}

struct ferry__origin *ferry__origin_get(struct ferry_http_client *c,
					const struct ferry_url *u)
{
	char key[FERRY_URL_WHY_MAX + 300];
	size_t n;
	struct ferry__origin *o;

	for (struct ferry__link *l = c->origins.next; l != &c->origins;
	     l = l->next) {
		o = ferry__http_container_of(l, struct ferry__origin, link);
		if (origin_is(o, u)) {
			/* Busy origins to the front: lookups stay short. */
			ferry__list_del(&o->link);
			ferry__list_add_head(&c->origins, &o->link);
			return o;
		}
	}
	n = ferry_url_origin(u, key, sizeof(key));
	if (n >= sizeof(key))
		return NULL;
	o = calloc(1, sizeof(*o) + n + 1);
	if (!o)
		return NULL;
	memcpy(o->key, key, n + 1);
	o->client = c;
	o->scheme = u->scheme;
	o->port = u->port;
	o->host_len = u->host_len;
	o->host_off = strlen(ferry_url_scheme_name(u->scheme)) + 3 +
		      (u->host_type == FERRY_URL_HOST_IPV6);
	ferry__list_init(&o->idle);
	ferry__list_init(&o->waiting);
	ferry__list_add_head(&c->origins, &o->link);
	return o;
}

/* Free o if nothing refers to it any more. */
void ferry__origin_put(struct ferry__origin *o)
{
	if (!o || o->dispatching || o->nconns ||
	    !ferry__list_empty(&o->idle) || !ferry__list_empty(&o->waiting))
		return;
	ferry__list_del(&o->link);
	free(o);
}

/* The idle connection, of any origin, that has been idle longest. */
static struct ferry__conn *client_oldest_idle(struct ferry_http_client *c)
{
	for (struct ferry__link *l = c->origins.prev; l != &c->origins;
	     l = l->prev) {
		struct ferry__origin *o = ferry__http_container_of(l,
						struct ferry__origin, link);

		if (!ferry__list_empty(&o->idle))
			return ferry__http_container_of(o->idle.prev,
						struct ferry__conn, pool);
	}
	return NULL;
}

/*
 * ferry__client_dispatch - give o's waiting requests connections, by the
 * rule at the top of this file. Never calls back into the user. o may be
 * freed by the time it returns (callers must not use it afterwards).
 */
void ferry__client_dispatch(struct ferry_http_client *c,
			    struct ferry__origin *o)
{
	if (!o || o->dispatching)
		return;
	o->dispatching = true;
	while (!ferry__list_empty(&o->waiting) && !c->closing) {
		struct ferry_http_request *req = ferry__http_container_of(
			o->waiting.next, struct ferry_http_request, wait);
		struct ferry__conn *cn;

		if (!req->fresh_conn && !ferry__list_empty(&o->idle)) {
			cn = ferry__http_container_of(o->idle.next,
						      struct ferry__conn, pool);
			ferry__list_del(&req->wait);
			c->nwaiting--;
			req->origin = NULL;
			ferry__conn_assign(cn, req);
			continue;
		}
		if (o->nconns >= c->opts.max_conns_per_origin) {
			if (ferry__list_empty(&o->idle))
				break;
			/* A retry must have a new connection: make room. */
			ferry__conn_close_quiet(ferry__http_container_of(
				o->idle.prev, struct ferry__conn, pool));
			continue;
		}
		if (c->nconns >= c->opts.max_conns) {
			cn = client_oldest_idle(c);
			if (!cn)
				break;
			ferry__conn_close_quiet(cn);
			continue;
		}
		ferry__list_del(&req->wait);
		c->nwaiting--;
		req->origin = NULL;
		if (!ferry__conn_new(o, req)) {
			/* Out of memory: wait for the next free slot, or the
			 * request's deadline. */
			ferry__list_add_head(&o->waiting, &req->wait);
			c->nwaiting++;
			req->origin = o;
			break;
		}
	}
	o->dispatching = false;
	ferry__origin_put(o);
}

/*
 * ferry__client_slot_freed - a connection stopped counting: o's waiters
 * first, then any origin whose requests wait on the total limit.
 */
void ferry__client_slot_freed(struct ferry_http_client *c,
			      struct ferry__origin *o)
{
	struct ferry__link *l, *next;

	ferry__client_dispatch(c, o);
	if (!c->nwaiting || c->nconns >= c->opts.max_conns)
		return;
	for (l = c->origins.next; l != &c->origins; l = next) {
		next = l->next;
		ferry__client_dispatch(c, ferry__http_container_of(l,
					struct ferry__origin, link));
		if (!c->nwaiting || c->nconns >= c->opts.max_conns)
			break;
	}
}

/* ------------------------------------------------------------------ */
/* Receive buffers                                                       */

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

static void client_spill_pool_free(struct ferry_http_client *c)
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

/* The kept spill whose token this is, or NULL for a bad token. Keepers
 * (a stream's queue) release in the order they kept, so the walk from
 * the oldest finds the token first; the walk is what validates it. */
static struct ferry__spill *client_find_spill(struct ferry_http_client *c,
					      uintptr_t token)
{
	for (struct ferry__link *l = c->spills.next; l != &c->spills; l = l->next)
		if ((uintptr_t)ferry__http_container_of(l, struct ferry__spill,
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
		struct ferry__spill *sp = client_find_spill(c, token);

		if (!sp)
			return FERRY_EINVAL;
		if (--sp->kept == 0)
			ferry__list_del(&sp->link);
		c->bufs_kept--;
		ferry__spill_unref(c, sp);
		ferry__client_maybe_free(c);
		return 0;
	}
	bid = (unsigned)(token - 1);
	if (!c->bufs_kept || c->buf_refs[bid] == 0)
		return FERRY_EINVAL;
	c->bufs_kept--;
	ferry__buf_unref(c, bid);
	ferry__client_maybe_free(c);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Closing                                                               */

/* Free the request objects kept for reuse. */
void ferry__client_pool_free(struct ferry_http_client *c)
{
	while (c->npool) {
		struct ferry_http_request *req = c->pool[--c->npool];

		FERRY__REQ_UNPOISON(req);
		ferry__h1_buf_free(&req->out);
		free(req);
	}
}

/* Free the client once it is closing and nothing refers to it. */
void ferry__client_maybe_free(struct ferry_http_client *c)
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
		free(ferry__http_container_of(l, struct ferry__origin, link));
	}
	ferry_bufring_destroy(c->br);
	ferry__client_pool_free(c);
	client_spill_pool_free(c);
	cb = c->closed_cb;
	ctx = c->closed_ctx;
	free(c->buf_refs);
	free(c->user_agent);
	free(c->ca_file);
	free(c->ca_dir);
	free(c->client_cert);
	free(c->client_key);
	ferry__tls_config_free(c->tls_cfg);
	ferry__dns_free(c->dns);
	free(c);
	if (cb)
		cb(ctx);
}

/* The first live request not already failing, or NULL. */
static struct ferry_http_request *client_live_req(struct ferry_http_client *c)
{
	for (struct ferry__link *l = c->reqs.next; l != &c->reqs; l = l->next) {
		struct ferry_http_request *req = ferry__http_container_of(l,
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
	while ((req = client_live_req(c)) != NULL)
		ferry__req_fail(req, FERRY_ECLOSED, "the client was closed");
	for (l = c->conns.next; l != &c->conns; l = next) {
		next = l->next;
		ferry__conn_close_quiet(ferry__http_container_of(l,
						struct ferry__conn, link));
	}
	c->close_busy = false;
	ferry__client_maybe_free(c);
}
