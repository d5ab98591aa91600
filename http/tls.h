/*
 * http/tls.h - the TLS client transport, as conn.c sees it (not installed).
 *
 * A narrow, I/O-free interface: the engine never touches a socket. conn.c
 * moves bytes between the ring ops and the engine: ciphertext received is
 * fed in (ferry__tls_feed), records to send are taken out
 * (ferry__tls_out/_out_ack) and sent by an op, plaintext goes in with
 * ferry__tls_write and comes out with ferry__tls_read/_read_ack. Only
 * tls.c knows the library behind it (BearSSL 0.6), so another one could
 * take its place behind these calls.
 *
 * Ownership: the client owns one struct ferry__tls_config (trust anchors,
 * verification choice, the session cache per origin); each TLS connection
 * owns one struct ferry__tls, which points at the config, so the config
 * must outlive every connection (the client frees it last). Loop thread
 * only.
 */
#ifndef FERRY_HTTP_TLS_H
#define FERRY_HTTP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ferry__tls_config;
struct ferry__tls;

/* What a client asks of TLS (from its options, defaults applied). */
struct ferry__tls_settings {
	const char *ca_file;		/* PEM; NULL: none */
	const char *ca_dir;		/* every PEM file in it; NULL: none */
	bool insecure;			/* check no certificate */
	int ciphers;			/* enum ferry_tls_ciphers */
	unsigned session_cache;		/* origins; 0: no resumption */
	unsigned verify_cache;		/* leaf certificates; 0: none */
	uint32_t session_lifetime_s;	/* 0: bounded by the chain only */
	unsigned min_version;		/* BR_TLS10..BR_TLS12 */
	bool legacy_suites;		/* more than ECDHE + AEAD */
	unsigned min_rsa_bits;		/* 1024..4096 */
	bool allow_sha1;		/* SHA-1 signatures in the chain */
	bool allow_renegotiation;
	unsigned send_record_max;	/* 0: the default below */
	const char *client_cert;	/* PEM chain (+ key); NULL: none */
	const char *client_key;		/* PEM key; NULL: in client_cert */
};

/* The largest record sent, in plaintext bytes, when the client does not
 * say (tls_send_record_max in ferry/http.h). */
#define FERRY__TLS_SEND_RECORD_DEFAULT 4096

/*
 * ferry__tls_config_new - load trust anchors: from ca_file and/or every
 * file in ca_dir (PEM), or, when both are NULL, from the system bundle
 * /etc/ssl/certs/ca-certificates.crt. When insecure, no certificate is
 * checked (anchors are loaded only if a file or dir was given).
 * With client_cert, also load the client's certificate and key
 * (tls_cert.h). Returns 0, FERRY_ETLS_CA (unreadable file, no certificate
 * in it; @why says which), FERRY_ETLS_CLIENT_CERT (@why says what) or
 * -ENOMEM.
 */
int ferry__tls_config_new(const struct ferry__tls_settings *set,
			  struct ferry__tls_config **cfgp,
			  char *why, size_t whylen);
void ferry__tls_config_free(struct ferry__tls_config *cfg);

/* Handshakes finished, as counted by ferry__tls_session_save(). */
struct ferry__tls_counters {
	uint64_t full, resumed, verify_cached;
};
void ferry__tls_config_counters(const struct ferry__tls_config *cfg,
				struct ferry__tls_counters *out);

/*
 * ferry__tls_new - a client engine for one connection to @host (@host_len
 * bytes; the URL's host). @ip_literal: @host is an IPv4/IPv6 address,
 * matched against the certificate's IP-address SAN entries, and no SNI is
 * sent. @origin keys the session cache: a session saved for it is offered
 * for resumption. Returns 0 or -ENOMEM.
 */
int ferry__tls_new(struct ferry__tls_config *cfg, const char *host,
		   size_t host_len, bool ip_literal, const char *origin, struct ferry__tls **tp);
void ferry__tls_free(struct ferry__tls *t);

/* Ciphertext received: returns how much the engine took (may be less
 * than @len, or 0 when it wants records sent or plaintext read first). */
size_t ferry__tls_feed(struct ferry__tls *t, const void *data, size_t len);

/* Records waiting to be sent: a pointer and length, or NULL. */
const void *ferry__tls_out(struct ferry__tls *t, size_t *len);
void ferry__tls_out_ack(struct ferry__tls *t, size_t n);

/* Plaintext received: a pointer and length, or NULL. */
const void *ferry__tls_read(struct ferry__tls *t, size_t *len);
void ferry__tls_read_ack(struct ferry__tls *t, size_t n);

/* Plaintext to send: returns how much was taken (0 while the engine
 * is not ready for application data or its buffer is full). */
size_t ferry__tls_write(struct ferry__tls *t, const void *data, size_t len);
/* Close the record being built so it can be sent. */
void ferry__tls_flush(struct ferry__tls *t);

/* End the connection: the engine queues close_notify, to be taken with
 * ferry__tls_out, and takes no more plaintext. */
void ferry__tls_close(struct ferry__tls *t);

/* The handshake is over and application data may flow. */
bool ferry__tls_ready(const struct ferry__tls *t);

/*
 * ferry__tls_status - 0 while the engine runs; 1 once it closed cleanly
 * (close_notify received); else FERRY_ETLS_CERT (certificate rejected) or
 * FERRY_ETLS_HANDSHAKE (any other failure), with a sentence naming the
 * library's reason in @why.
 */
int ferry__tls_status(const struct ferry__tls *t, char *why, size_t whylen);

/*
 * ferry__tls_peer_closed - the server sent close_notify: true once the
 * engine closed cleanly, and already while our own close_notify in reply
 * is still waiting to be sent (then the engine takes no more input). Ask
 * this when TCP reports EOF, to tell a clean end from a truncation.
 */
bool ferry__tls_peer_closed(const struct ferry__tls *t);

/* Save the session of a finished handshake for its origin and count the
 * handshake. Returns true if it resumed an earlier session. */
bool ferry__tls_session_save(struct ferry__tls *t);

#endif /* FERRY_HTTP_TLS_H */
