/*
 * http/dns.h - name resolution and connection racing for the client (not
 * installed).
 *
 * dns.c: a cache of answers per client, keyed by host name. A name is
 * looked up with getaddrinfo on the loop's offload pool (so /etc/hosts,
 * resolv.conf and nsswitch.conf count exactly as for every other program)
 * at most once at a time: connections that want the same name while a
 * lookup runs wait for that one lookup. Answers are kept dns_cache_ttl_ms,
 * failures dns_negative_ttl_ms. The client's resolve overrides
 * (curl's CURLOPT_RESOLVE "host:port:addr[,addr]...") answer first and are
 * never looked up.
 *
 * happy.c: Happy Eyeballs (RFC 8305) over a list of addresses: one
 * connect attempt, then the next every happy_eyeballs_delay_ms while none
 * has connected (at once when one fails), families interleaved; the first
 * to connect wins, the others are cancelled.
 *
 * Both run on the loop thread only. Ownership: an address list handed to
 * a callback belongs to the callee.
 */
#ifndef FERRY_HTTP_DNS_H
#define FERRY_HTTP_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ferry/list.h"
#include "ferry/loop.h"

struct ferry_http_client;
struct ferry_http_client_opts;
struct ferry__dns;
struct ferry__dns_entry;

/* Addresses, each with its length; ports already set. */
struct ferry__addrs {
	struct sockaddr_storage *a;
	socklen_t *len;
	unsigned n;
};

/* ferry__addrs_alloc - room for @n addresses (n set, zeroed). 0/-ENOMEM. */
int ferry__addrs_alloc(struct ferry__addrs *as, unsigned n);
void ferry__addrs_free(struct ferry__addrs *as);

/*
 * ferry__addrs_interleave - reorder as RFC 8305 4 says: the family of
 * the first address, then the other, alternating, each family's own
 * order kept.
 */
void ferry__addrs_interleave(struct ferry__addrs *as);

/* ------------------------------------------------------------------ */
/* The cache (dns.c)                                                    */

/*
 * A connection waiting for a name, embedded in its owner. done() runs on
 * a later loop turn than ferry__dns_resolve (never inside it), once: with
 * err 0 and @as (the callee's to free), or err < 0 (FERRY_EDNS, -ENOMEM,
 * ...) and @why, a sentence. w is no longer linked when done() runs.
 */
struct ferry__dns_wait {
	struct ferry__link link;	/* entry's waiters */
	struct ferry__dns_entry *entry;	/* NULL: not waiting */
	uint16_t port;
	void (*done)(struct ferry__dns_wait *w, int err,
		     struct ferry__addrs *as, const char *why);
};

/* The cache of client @c, from its options (c->opts, defaults filled;
 * the resolve overrides are parsed and copied): 0, FERRY_EINVAL with
 * @why, or -ENOMEM. *@dp NULL on failure. */
int ferry__dns_new(struct ferry_http_client *c, struct ferry__dns **dp,
		   char *why, size_t whylen);

/* Free the cache; lookups still running free themselves when done. */
void ferry__dns_free(struct ferry__dns *d);

/* True while the cache is calling waiters (the client must not go). */
bool ferry__dns_busy(const struct ferry__dns *d);

/*
 * ferry__dns_resolve - addresses for @host (@len bytes, a name, not a
 * literal) and @port. Returns 1 with *@as filled (an override or a fresh
 * cached answer: the caller owns *@as), 0 when @w will be called, or
 * -ENOMEM.
 */
int ferry__dns_resolve(struct ferry_http_client *c, const char *host,
		       size_t len, uint16_t port, struct ferry__dns_wait *w,
		       struct ferry__addrs *as);

/* ferry__dns_cancel - stop waiting (done() will not run). The lookup
 * itself goes on and fills the cache. No-op if @w is not waiting. */
void ferry__dns_cancel(struct ferry__dns_wait *w);

/* Counters for ferry_http_client_stats. */
struct ferry__dns_counters {
	uint64_t lookups;	/* getaddrinfo calls */
	uint64_t hits;		/* answered from the cache (both kinds) */
	uint64_t shared;	/* joined a lookup already running */
};
void ferry__dns_counters(const struct ferry__dns *d,
			 struct ferry__dns_counters *out);

/* ------------------------------------------------------------------ */
/* Happy Eyeballs (happy.c)                                             */

struct ferry__he;

/*
 * Called once per race: @fd >= 0 is a connected TCP socket (the callee's)
 * from address @idx; else @fd is the last attempt's error (-ETIME: its
 * connect timeout fired) and @idx that address. Runs from a completion or
 * a timer, never inside ferry__he_start.
 */
typedef void (*ferry__he_done_fn)(void *ctx, int fd, unsigned idx);

/*
 * ferry__he_start - race connects to @as (copied; the caller keeps it),
 * in order: @delay_ns between starts (0: one at a time, the next only
 * after a failure), @timeout_ns per attempt (0: none). *@hep is the race,
 * until done() or ferry__he_abandon(). 0 or -ENOMEM.
 */
int ferry__he_start(struct ferry_loop *loop, const struct ferry__addrs *as,
		    uint64_t delay_ns, uint64_t timeout_ns,
		    ferry__he_done_fn done, void *ctx, struct ferry__he **hep);

/* ferry__he_abandon - done() will not run; attempts are cancelled and
 * their sockets closed as their completions come in, then the race frees
 * itself (ferry_loop_destroy reaps what is left). */
void ferry__he_abandon(struct ferry__he *he);

#endif /* FERRY_HTTP_DNS_H */
