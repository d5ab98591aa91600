/*
 * dns.c - the client's name cache: one getaddrinfo per name at a time on
 * the offload pool, its answer shared by every connection that waits for
 * it and kept for dns_cache_ttl_ms (failures dns_negative_ttl_ms), and the
 * resolve overrides that answer before any lookup.
 *
 * Why getaddrinfo and not c-ares: it is the system's resolver, so
 * /etc/hosts, resolv.conf and nsswitch.conf (mDNS, systemd-resolved,
 * LDAP...) count as for every other program; with the cache a name is
 * looked up once per TTL, not per connection, so what a lookup costs (an
 * offload thread's wake-up) is off the request path. It reports no TTL:
 * answers are kept a fixed time, as curl's threaded resolver does (its
 * CURLOPT_DNS_CACHE_TIMEOUT, 60 s by default).
 *
 * Entry states: PENDING (a job runs; waiters queue on it) -> READY (an
 * answer or a failure, until `expires`) -> PENDING again when a
 * connection wants it after it expired. Entries are kept most recently
 * used first and dropped from the tail past dns_cache_max, never while a
 * job runs or waiters are being called.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "internal.h"
#include "util.h"

#define DEF_TTL_MS 60000
#define DEF_NEG_TTL_MS 3000
#define DEF_CACHE_MAX 256

struct dns_job;

enum entry_state {
	ENTRY_PENDING,
	ENTRY_READY,
};

struct ferry__dns_entry {
	struct ferry__link link;	/* d->entries, most recent first */
	struct ferry__dns *d;
	struct ferry__link waiters;	/* struct ferry__dns_wait.link */
	enum entry_state state;
	struct dns_job *job;		/* while PENDING */
	struct ferry_timer kick;	/* answers a waiter on a later turn */
	bool delivering;		/* deliver() on the stack */
	uint64_t expires;		/* ns; READY only */
	int err;			/* 0, or why the lookup failed */
	char why[96];
	struct ferry__addrs as;		/* ports 0 */
	size_t host_len;
	char host[];
};

struct dns_override {
	char *host;			/* "*": any host at that port */
	size_t host_len;
	uint16_t port;
	struct ferry__addrs as;		/* ports 0 */
};

struct ferry__dns {
	struct ferry_http_client *client;
	struct ferry__link entries;
	unsigned nentries;
	uint64_t ttl_ns, neg_ttl_ns;	/* 0: not kept */
	unsigned max;			/* 0: nothing kept */
	struct dns_override *ov;
	size_t nov;
	unsigned busy;			/* deliver() calls on the stack */
	struct ferry__dns_counters count;
};

/* A getaddrinfo on an offload thread. Owns itself once its entry is gone
 * (entry NULL). */
struct dns_job {
	struct ferry_offload job;
	struct ferry__dns_entry *entry;
	struct addrinfo *res;
	int gai, sys_errno;
	char host[];
};

/* ------------------------------------------------------------------ */
/* Address lists                                                        */

int ferry__addrs_alloc(struct ferry__addrs *as, unsigned n)
{
	as->a = calloc(n ? n : 1, sizeof(*as->a));
	as->len = calloc(n ? n : 1, sizeof(*as->len));
	as->n = n;
	if (as->a && as->len)
		return 0;
	ferry__addrs_free(as);
	return -ENOMEM;
}

void ferry__addrs_free(struct ferry__addrs *as)
{
	free(as->a);
	free(as->len);
	as->a = NULL;
	as->len = NULL;
	as->n = 0;
}

static int ferry__addrs_copy(struct ferry__addrs *to,
			     const struct ferry__addrs *from, uint16_t port)
{
	if (ferry__addrs_alloc(to, from->n) < 0)
		return -ENOMEM;
	memcpy(to->a, from->a, from->n * sizeof(*from->a));
	memcpy(to->len, from->len, from->n * sizeof(*from->len));
	for (unsigned i = 0; i < to->n; i++) {
		if (to->a[i].ss_family == AF_INET)
			((struct sockaddr_in *)&to->a[i])->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)&to->a[i])->sin6_port = htons(port);
	}
	return 0;
}

void ferry__addrs_interleave(struct ferry__addrs *as)
{
	struct sockaddr_storage *a;
	socklen_t *len;
	unsigned n = as->n, out = 0, i1 = 0, i2 = 0;
	int first;

	if (n < 3 && (n < 2 || as->a[0].ss_family != as->a[1].ss_family))
		return;
	a = malloc(n * sizeof(*a));
	len = malloc(n * sizeof(*len));
	if (!a || !len) {	/* the order stays as the resolver gave it */
		free(a);
		free(len);
		return;
	}
	first = as->a[0].ss_family;
	/* i1 walks the first family, i2 the other: take one of each. */
	while (out < n) {
		while (i1 < n && as->a[i1].ss_family != first)
			i1++;
		if (i1 < n) {
			a[out] = as->a[i1];
			len[out++] = as->len[i1++];
		}
		while (i2 < n && as->a[i2].ss_family == first)
			i2++;
		if (i2 < n) {
			a[out] = as->a[i2];
			len[out++] = as->len[i2++];
		}
	}
	free(as->a);
	free(as->len);
	as->a = a;
	as->len = len;
}

/* Parse one IP address (IPv6 possibly in brackets) into ss. */
static bool ferry__parse_ip(const char *s, size_t n,
			    struct sockaddr_storage *ss, socklen_t *len)
{
	char buf[INET6_ADDRSTRLEN + 2];

	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (!n || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, buf, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		*len = sizeof(struct sockaddr_in);
		return true;
	}
	if (inet_pton(AF_INET6, buf, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		*len = sizeof(struct sockaddr_in6);
		return true;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Resolve overrides: "host:port:addr[,addr]..."                        */

/* Parse the addresses after the second ':'. 0 or FERRY_EINVAL. */
static int ferry__override_addrs(struct dns_override *ov, const char *s)
{
	unsigned n = 1;

	for (const char *p = s; *p; p++)
		n += *p == ',';
	if (ferry__addrs_alloc(&ov->as, n) < 0)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);

		if (!ferry__parse_ip(s, len, &ov->as.a[i], &ov->as.len[i]))
			return FERRY_EINVAL;
		s += len + (end != NULL);
	}
	return 0;
}

static int ferry__override_parse(struct dns_override *ov, const char *spec)
{
	const char *c1 = spec ? strchr(spec, ':') : NULL;
	const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	char *end;
	unsigned long port;

	if (!c1 || !c2 || c1 == spec)
		return FERRY_EINVAL;
	port = strtoul(c1 + 1, &end, 10);
	if (end != c2 || c1 + 1 == c2 || !port || port > 65535 ||
	    c1[1] < '0' || c1[1] > '9')
		return FERRY_EINVAL;
	ov->port = (uint16_t)port;
	ov->host_len = (size_t)(c1 - spec);
	ov->host = strndup(spec, ov->host_len);
	if (!ov->host)
		return -ENOMEM;
	return ferry__override_addrs(ov, c2 + 1);
}

static const struct dns_override *
ferry__override_find(const struct ferry__dns *d, const char *host, size_t len,
		     uint16_t port)
{
	/* As curl: the last entry for this host and port, else the last
	 * "*" entry for the port. */
	const struct dns_override *any = NULL;

	for (size_t i = d->nov; i-- > 0;) {
		const struct dns_override *ov = &d->ov[i];

		if (ov->port != port)
			continue;
		if (ov->host_len == len && !strncasecmp(ov->host, host, len))
			return ov;
		if (!any && ov->host_len == 1 && ov->host[0] == '*')
			any = ov;
	}
	return any;
}

/* ------------------------------------------------------------------ */
/* The cache                                                            */

static uint64_t ferry__opt_ns(uint32_t ms, uint32_t def)
{
	if (ms == FERRY_HTTP_NO_CACHE)
		return 0;
	return (uint64_t)(ms ? ms : def) * FERRY__MS;
}

int ferry__dns_new(struct ferry_http_client *c, struct ferry__dns **dp,
		   char *why, size_t whylen)
{
	const struct ferry_http_client_opts *o = &c->opts;
	struct ferry__dns *d = calloc(1, sizeof(*d));
	int err = 0;

	*dp = NULL;
	if (!d || (o->nresolve && !o->resolve))
		goto fail;
	d->client = c;
	ferry__list_init(&d->entries);
	d->ttl_ns = ferry__opt_ns(o->dns_cache_ttl_ms, DEF_TTL_MS);
	d->neg_ttl_ns = ferry__opt_ns(o->dns_negative_ttl_ms, DEF_NEG_TTL_MS);
	d->max = o->dns_cache_max == FERRY_HTTP_NO_CACHE ? 0
		 : o->dns_cache_max ? o->dns_cache_max : DEF_CACHE_MAX;
	if (o->nresolve) {
		d->ov = calloc(o->nresolve, sizeof(*d->ov));
		if (!d->ov)
			goto fail;
	}
	for (size_t i = 0; i < o->nresolve; i++) {
		d->nov++;
		err = ferry__override_parse(&d->ov[i], o->resolve[i]);
		if (err < 0) {
			ferry__whyf(why, whylen, "resolve override \"%s\": %s",
			     o->resolve[i] ? o->resolve[i] : "(null)",
			     err == -ENOMEM ? "out of memory"
				: "not host:port:address[,address]...");
			goto fail;
		}
	}
	*dp = d;
	return 0;
fail:
	if (!err)
		err = d ? FERRY_EINVAL : -ENOMEM;
	if (err == FERRY_EINVAL && d && !d->nov)
		ferry__whyf(why, whylen, "resolve overrides: NULL list");
	ferry__dns_free(d);
	return err;
}

static void ferry__entry_free(struct ferry__dns_entry *e)
{
	struct ferry__dns *d = e->d;

	if (e->job)
		e->job->entry = NULL;	/* the job frees itself */
	ferry_timer_stop(d->client->loop, &e->kick);
	ferry__list_del(&e->link);
	d->nentries--;
	ferry__addrs_free(&e->as);
	free(e);
}

void ferry__dns_free(struct ferry__dns *d)
{
	if (!d)
		return;
	while (!ferry__list_empty(&d->entries)) {
		struct ferry__dns_entry *e = ferry__container_of(
			d->entries.next, struct ferry__dns_entry, link);

		/* Waiters belong to connections, which are gone by now. */
		ferry__entry_free(e);
	}
	for (size_t i = 0; i < d->nov; i++) {
		free(d->ov[i].host);
		ferry__addrs_free(&d->ov[i].as);
	}
	free(d->ov);
	free(d);
}

bool ferry__dns_busy(const struct ferry__dns *d)
{
	return d && d->busy;
}

void ferry__dns_counters(const struct ferry__dns *d,
			 struct ferry__dns_counters *out)
{
	if (d)
		*out = d->count;
	else
		memset(out, 0, sizeof(*out));
}

static bool ferry__entry_droppable(const struct ferry__dns_entry *e)
{
	return e->state == ENTRY_READY && !e->delivering &&
	       ferry__list_empty(&e->waiters) &&
	       !ferry_timer_active(&e->kick);
}

/* Keep at most d->max answers: drop expired and least recently used
 * ones from the tail. */
static void ferry__cache_trim(struct ferry__dns *d)
{
	uint64_t now = ferry_loop_now(d->client->loop);
	struct ferry__link *l, *prev;

	for (l = d->entries.prev; l != &d->entries; l = prev) {
		struct ferry__dns_entry *e = ferry__container_of(l,
					struct ferry__dns_entry, link);

		prev = l->prev;
		if (ferry__entry_droppable(e) &&
		    (d->nentries > d->max || now >= e->expires))
			ferry__entry_free(e);
	}
}

/* Call every waiter of e with its answer. */
static void ferry__entry_deliver(struct ferry__dns_entry *e)
{
	struct ferry__dns *d = e->d;
	struct ferry_http_client *c = d->client;

	d->busy++;
	e->delivering = true;
	while (!ferry__list_empty(&e->waiters)) {
		struct ferry__dns_wait *w = ferry__container_of(
			e->waiters.next, struct ferry__dns_wait, link);
		struct ferry__addrs as = { 0 };

		ferry__list_del(&w->link);
		w->entry = NULL;
		/* Each call may close connections (their waits leave the
		 * list) or the client (it waits for busy to drop). */
		if (e->err)
			w->done(w, e->err, NULL, e->why);
		else if (ferry__addrs_copy(&as, &e->as, w->port) < 0)
			w->done(w, -ENOMEM, NULL, "out of memory");
		else
			w->done(w, 0, &as, "");
	}
	e->delivering = false;
	d->busy--;
	if (!c->closing)
		ferry__cache_trim(d);
	else if (!d->busy)
		ferry__client_reap_later(c);
}

static void ferry__entry_kick_fn(struct ferry_timer *t)
{
	ferry__entry_deliver(
		ferry__container_of(t, struct ferry__dns_entry, kick));
}

static void ferry__job_work(struct ferry_offload *job)
{
	struct dns_job *j = ferry__container_of(job, struct dns_job, job);
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_protocol = IPPROTO_TCP,
	};

	/* Runs on an offload thread: touches nothing but the job. The
	 * port is the connection's business: the answer does not depend
	 * on it, so one lookup serves every port. */
	j->gai = getaddrinfo(j->host, NULL, &hints, &j->res);
	j->sys_errno = j->gai == EAI_SYSTEM ? errno : 0;
}

/* The answer into e: addresses, interleaved by family, or why not. */
static void ferry__entry_take(struct ferry__dns_entry *e,
			      const struct dns_job *j, int status)
{
	unsigned n = 0;

	ferry__addrs_free(&e->as);
	e->err = 0;
	if (status < 0 || j->gai) {
		e->err = status < 0 ? status : FERRY_EDNS;
		snprintf(e->why, sizeof(e->why), "resolving %s: %s", e->host,
			 status < 0 ? ferry_strerror(status)
			 : j->gai == EAI_SYSTEM ? strerror(j->sys_errno)
			 : gai_strerror(j->gai));
		return;
	}
	for (const struct addrinfo *p = j->res; p; p = p->ai_next)
		n += p->ai_family == AF_INET || p->ai_family == AF_INET6;
	if (!n || ferry__addrs_alloc(&e->as, n) < 0) {
		e->err = n ? -ENOMEM : FERRY_EDNS;
		snprintf(e->why, sizeof(e->why), "resolving %s: %s", e->host,
			 n ? "out of memory" : "no IPv4 or IPv6 address");
		return;
	}
	n = 0;
	for (const struct addrinfo *p = j->res; p; p = p->ai_next) {
		if (p->ai_family != AF_INET && p->ai_family != AF_INET6)
			continue;
		memcpy(&e->as.a[n], p->ai_addr, p->ai_addrlen);
		e->as.len[n++] = p->ai_addrlen;
	}
	ferry__addrs_interleave(&e->as);
}

static void ferry__job_done(struct ferry_offload *job, int status)
{
	struct dns_job *j = ferry__container_of(job, struct dns_job, job);
	struct ferry__dns_entry *e = j->entry;

	if (e) {
		struct ferry__dns *d = e->d;

		e->job = NULL;
		ferry__entry_take(e, j, status);
		e->state = ENTRY_READY;
		/* Out of memory is not an answer: never kept. */
		e->expires = ferry_loop_now(d->client->loop) +
			     (e->err == -ENOMEM ? 0
			      : e->err ? d->neg_ttl_ns : d->ttl_ns);
		ferry__entry_deliver(e);
	}
	if (j->res)
		freeaddrinfo(j->res);
	free(j);
}

static int ferry__entry_lookup(struct ferry__dns_entry *e)
{
	struct dns_job *j = calloc(1, sizeof(*j) + e->host_len + 1);
	int err;

	if (!j)
		return -ENOMEM;
	memcpy(j->host, e->host, e->host_len);
	j->job.work = ferry__job_work;
	j->job.done = ferry__job_done;
	j->entry = e;
	err = ferry_offload_submit(e->d->client->loop, &j->job);
	if (err < 0) {
		free(j);
		return err;
	}
	e->job = j;
	e->state = ENTRY_PENDING;
	e->d->count.lookups++;
	return 0;
}

static struct ferry__dns_entry *ferry__entry_find(struct ferry__dns *d,
						  const char *host, size_t len)
{
	for (struct ferry__link *l = d->entries.next; l != &d->entries;
	     l = l->next) {
		struct ferry__dns_entry *e = ferry__container_of(l,
					struct ferry__dns_entry, link);

		if (e->host_len == len && !strncasecmp(e->host, host, len)) {
			ferry__list_del(&e->link);
			ferry__list_add_head(&d->entries, &e->link);
			return e;
		}
	}
	return NULL;
}

static struct ferry__dns_entry *ferry__entry_new(struct ferry__dns *d,
						 const char *host, size_t len)
{
	struct ferry__dns_entry *e = calloc(1, sizeof(*e) + len + 1);

	if (!e)
		return NULL;
	e->d = d;
	e->host_len = len;
	memcpy(e->host, host, len);
	e->state = ENTRY_READY;	/* expired: a lookup starts at once */
	e->kick.fn = ferry__entry_kick_fn;
	ferry__list_init(&e->waiters);
	ferry__list_add_head(&d->entries, &e->link);
	d->nentries++;
	return e;
}

static void ferry__wait_on(struct ferry__dns_entry *e,
			   struct ferry__dns_wait *w, uint16_t port)
{
	w->entry = e;
	w->port = port;
	ferry__list_add_tail(&e->waiters, &w->link);
}

int ferry__dns_resolve(struct ferry_http_client *c, const char *host,
		       size_t len, uint16_t port, struct ferry__dns_wait *w,
		       struct ferry__addrs *as)
{
	struct ferry__dns *d = c->dns;
	const struct dns_override *ov =
		ferry__override_find(d, host, len, port);
	struct ferry__dns_entry *e;
	uint64_t now = ferry_loop_now(c->loop);
	int err;

	if (ov)
		return ferry__addrs_copy(as, &ov->as, port) < 0 ? -ENOMEM : 1;
	e = ferry__entry_find(d, host, len);
	if (e && e->state == ENTRY_PENDING) {
		d->count.shared++;
		ferry__wait_on(e, w, port);
		return 0;
	}
	if (e && now < e->expires) {
		d->count.hits++;
		if (!e->err)
			return ferry__addrs_copy(as, &e->as, port) < 0 ? -ENOMEM
								       : 1;
		/* A failure kept: said from a later turn, as a lookup's. */
		ferry__wait_on(e, w, port);
		if (ferry_timer_start(c->loop, &e->kick, 0) < 0) {
			ferry__dns_cancel(w);
			return -ENOMEM;
		}
		return 0;
	}
	if (!e && !(e = ferry__entry_new(d, host, len)))
		return -ENOMEM;
	err = ferry__entry_lookup(e);
	if (err < 0) {
		if (ferry__list_empty(&e->waiters) && !e->delivering)
			ferry__entry_free(e);
		return err;
	}
	ferry__wait_on(e, w, port);
	return 0;
}

void ferry__dns_cancel(struct ferry__dns_wait *w)
{
	struct ferry__dns_entry *e = w->entry;

	if (!e)
		return;
	ferry__list_del(&w->link);
	w->entry = NULL;
	if (ferry__list_empty(&e->waiters) && ferry_timer_active(&e->kick))
		ferry_timer_stop(e->d->client->loop, &e->kick);
}
