/*
 * pool.c - origins and the pool's dispatch rule (moved from client.c).
 *
 * Dispatch rule, per origin, for the request at the head of its FIFO:
 * take the most recently idled connection (warm, least likely closed by
 * the server); else open one if both limits allow; else, when the total
 * limit is what blocks, close the idle connection of another origin that
 * has waited longest; else wait. A request being retried never takes an
 * idle connection (the one it failed on was idle too).
 *
 * An origin is where a request's connections go: scheme, host and port,
 * and the route (a proxy, a Unix socket: route.c) that reaches them.
 * Calls only conn.c; never calls back into the user.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static bool ferry__route_is(const struct ferry__route *a,
			    const struct ferry__route *b)
{
	if (a->kind != b->kind || a->proxy != b->proxy)
		return false;
	return a->kind != FERRY__ROUTE_UNIX ||
	       (a->unix_abstract == b->unix_abstract &&
		!strcmp(a->unix_path, b->unix_path));
}

/*
 * Is o the origin of u by route r? The same as comparing keys, without
 * formatting one per request: the host's bytes fix its type (a name has
 * no ':', an IPv4 literal parses as one), and the key holds the host at
 * host_off. Plain http:// through a forward proxy or to a Unix socket
 * pools per proxy or socket, whatever the host (the Host header says it).
 */
static bool ferry__origin_is(const struct ferry__origin *o,
			     const struct ferry_url *u,
			     const struct ferry__route *r)
{
	if (o->scheme != u->scheme || !ferry__route_is(&o->route, r))
		return false;
	if (r->kind == FERRY__ROUTE_FORWARD ||
	    (r->kind == FERRY__ROUTE_UNIX && u->scheme == FERRY_URL_HTTP))
		return true;
	return o->port == u->port && o->host_len == u->host_len &&
	       !memcmp(o->key + o->host_off, u->host, u->host_len);
}

struct ferry__origin *ferry__origin_get(struct ferry_http_client *c,
					const struct ferry_url *u,
					const struct ferry__route *r)
{
	char key[FERRY_URL_WHY_MAX + 300];
	size_t n, plen = r->unix_path ? strlen(r->unix_path) : 0;
	struct ferry__origin *o;

	for (struct ferry__link *l = c->origins.next; l != &c->origins;
	     l = l->next) {
		o = ferry__container_of(l, struct ferry__origin, link);
		if (ferry__origin_is(o, u, r)) {
			/* Busy origins to the front: lookups stay short. */
			ferry__list_del(&o->link);
			ferry__list_add_head(&c->origins, &o->link);
			return o;
		}
	}
	n = ferry_url_origin(u, key, sizeof(key));
	if (n >= sizeof(key))
		return NULL;
	o = calloc(1, sizeof(*o) + n + 1 + plen + 1);
	if (!o)
		return NULL;
	memcpy(o->key, key, n + 1);
	o->route = *r;
	if (r->unix_path) {
		o->route.unix_path = o->key + n + 1;
		memcpy(o->key + n + 1, r->unix_path, plen + 1);
	}
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
static struct ferry__conn *
ferry__client_oldest_idle(struct ferry_http_client *c)
{
	for (struct ferry__link *l = c->origins.prev; l != &c->origins;
	     l = l->prev) {
		struct ferry__origin *o = ferry__container_of(l,
						struct ferry__origin, link);

		if (!ferry__list_empty(&o->idle))
			return ferry__container_of(o->idle.prev,
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
		struct ferry_http_request *req = ferry__container_of(
			o->waiting.next, struct ferry_http_request, wait);
		struct ferry__conn *cn;

		if (!req->fresh_conn && !ferry__list_empty(&o->idle)) {
			cn = ferry__container_of(o->idle.next,
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
			ferry__conn_close_quiet(ferry__container_of(
				o->idle.prev, struct ferry__conn, pool));
			continue;
		}
		if (c->nconns >= c->opts.max_conns) {
			cn = ferry__client_oldest_idle(c);
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
		ferry__client_dispatch(c, ferry__container_of(l,
					struct ferry__origin, link));
		if (!c->nwaiting || c->nconns >= c->opts.max_conns)
			break;
	}
}

