/*
 * route.c - how an origin's connections are made: the transport chain
 * (transport.h) for a new connection. Direct: a TCP socket to the URL's
 * host, TLS on top for https.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tls.h"
#include "transport.h"

#define DEF_TLS_CACHE 64

/* A cache size option: 0 is the default, FERRY_HTTP_NO_CACHE none. */
static unsigned cache_size(unsigned opt)
{
	return opt == FERRY_HTTP_NO_CACHE ? 0 : opt ? opt : DEF_TLS_CACHE;
}

/*
 * ferry__client_tls - make sure the TLS config (trust anchors) is loaded:
 * once per client, at its first https request, so that http-only clients
 * never pay for parsing the CA bundle. 0, FERRY_EINVAL (@why says) or
 * -ENOMEM.
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
	};

	if (c->tls_cfg)
		return 0;
	return ferry__tls_config_new(&set, &c->tls_cfg, why, whylen);
}

int ferry__route_connect(struct ferry_http_client *c, struct ferry__origin *o,
			 const struct ferry_url *u,
			 struct ferry__transport_clock *clock,
			 struct ferry__transport **tp)
{
	struct ferry__sock_target to = {
		.host = u->host,
		.host_len = u->host_len,
		.host_type = u->host_type,
		.port = u->port,
	};
	struct ferry__transport *t;
	int err;

	err = ferry__sock_new(c, clock, &to, &t);
	if (err < 0)
		return err;
	if (o->scheme == FERRY_URL_HTTPS)
		err = ferry__tls_transport_new(c, clock, t, u->host, u->host_len,
					u->host_type != FERRY_URL_HOST_NAME,
					o->key, NULL, &t);
	if (err < 0)
		return err;
	*tp = t;
	return 0;
}
