/*
 * tls_cert.c - the client certificate and key for TLS client
 * authentication, loaded once and checked (see tls_cert.h).
 *
 * BearSSL does the cryptography: its PEM decoder, its private key
 * decoder (RSA and EC, raw or in unencrypted PKCS#8), its X.509 decoder
 * for the leaf's public key, and its single-chain client handlers. What
 * ferry adds is the check that the key belongs to the leaf (BearSSL would
 * sign with any key, and the server would only say "decrypt_error"), and
 * words for each way the files can be wrong.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/error.h"
#include "tls_cert.h"
#include "tls_ec.h"

struct ferry__tls_cert {
	br_x509_certificate *chain;	/* leaf first; DER owned */
	size_t nchain;
	int key_type;			/* BR_KEYTYPE_RSA or BR_KEYTYPE_EC */
	unsigned issuer_key_type;	/* the leaf's signer's key type */
	union {
		br_rsa_private_key rsa;
		br_ec_private_key ec;
	} sk;
	unsigned char *key_data;	/* the key's numbers, owned */
};

/* A growing byte buffer; oom is sticky. */
struct buf {
	unsigned char *p;
	size_t len, cap;
	bool oom;
};

static void ferry__buf_add(void *ctx, const void *src, size_t len)
{
	struct buf *b = ctx;

	if (b->oom || !len)
		return;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		unsigned char *p;

		while (cap < b->len + len)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, src, len);
	b->len += len;
}

/* The file's bytes without CRs (BearSSL's PEM decoder wants LF lines). */
static int ferry__file_read(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "rb");
	char tmp[8192];
	size_t n;

	if (!f)
		return -errno;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		for (size_t i = 0; i < n; i++)
			if (tmp[i] != '\r')
				ferry__buf_add(out, tmp + i, 1);
	fclose(f);
	return out->oom ? -ENOMEM : 0;
}

/* What one PEM file held: certificates in order, the first key. */
struct pem_found {
	struct ferry__tls_cert *c;	/* certificates go here */
	struct buf key;			/* DER of the first key */
	bool have_key;
	bool encrypted;			/* an encrypted key was seen */
	bool bad_pem;			/* the decoder failed */
	bool oom;
};

static int ferry__chain_add(struct ferry__tls_cert *c, const struct buf *der)
{
	br_x509_certificate *n = realloc(c->chain,
					 (c->nchain + 1) * sizeof(*n));
	unsigned char *d;

	if (!n)
		return -ENOMEM;
	c->chain = n;
	d = malloc(der->len);
	if (!d)
		return -ENOMEM;
	memcpy(d, der->p, der->len);
	c->chain[c->nchain++] = (br_x509_certificate){ d, der->len };
	return 0;
}

enum ferry__pem_kind { PEM_OTHER, PEM_CERT, PEM_KEY, PEM_ENCRYPTED };

static enum ferry__pem_kind ferry__pem_kind(const char *name)
{
	if (!strcmp(name, "CERTIFICATE") || !strcmp(name, "X509 CERTIFICATE"))
		return PEM_CERT;
	if (!strcmp(name, "RSA PRIVATE KEY") || !strcmp(name, "EC PRIVATE KEY") ||
	    !strcmp(name, "PRIVATE KEY"))
		return PEM_KEY;
	if (!strcmp(name, "ENCRYPTED PRIVATE KEY"))
		return PEM_ENCRYPTED;
	return PEM_OTHER;
}

/* Sort @text's PEM objects into @f (certificates only if @certs). */
static void ferry__pem_scan(const struct buf *text, struct pem_found *f,
			    bool certs)
{
	br_pem_decoder_context pc;
	struct buf obj = { 0 };
	enum ferry__pem_kind kind = PEM_OTHER;
	const char *s = (const char *)text->p;
	size_t len = text->len;

	br_pem_decoder_init(&pc);
	while (len && !f->oom) {
		size_t n = br_pem_decoder_push(&pc, s, len);

		s += n;
		len -= n;
		switch (br_pem_decoder_event(&pc)) {
		case BR_PEM_BEGIN_OBJ:
			kind = ferry__pem_kind(br_pem_decoder_name(&pc));
			obj.len = 0;
			br_pem_decoder_setdest(
				&pc, kind == PEM_OTHER ? NULL : ferry__buf_add,
				&obj);
			break;
		case BR_PEM_END_OBJ:
			f->oom |= obj.oom;
			if (kind == PEM_CERT && certs && !obj.oom)
				f->oom |= ferry__chain_add(f->c, &obj) < 0;
			else if (kind == PEM_KEY && !f->have_key && !obj.oom) {
				ferry__buf_add(&f->key, obj.p, obj.len);
				f->have_key = true;
			} else if (kind == PEM_ENCRYPTED)
				f->encrypted = true;
			kind = PEM_OTHER;
			break;
		case BR_PEM_ERROR:
			/* OpenSSL's old encrypted keys carry headers
			 * ("Proc-Type: 4,ENCRYPTED") BearSSL cannot read. */
			if (kind == PEM_KEY)
				f->encrypted = true;
			f->bad_pem = true;
			len = 0;
			break;
		default:
			break;
		}
	}
	f->oom |= f->key.oom;
	free(obj.p);
}

/* Copy the decoded key's numbers into memory of our own. */
static int ferry__key_keep(struct ferry__tls_cert *c,
			   const br_skey_decoder_context *dc)
{
	if (c->key_type == BR_KEYTYPE_RSA) {
		const br_rsa_private_key *k = br_skey_decoder_get_rsa(dc);
		unsigned char *p = malloc(k->plen + k->qlen + k->dplen +
					  k->dqlen + k->iqlen);

		if (!p)
			return -ENOMEM;
		c->key_data = p;
		c->sk.rsa = *k;
#define TAKE(f, l) memcpy(p, k->f, k->l), c->sk.rsa.f = p, p += k->l
		TAKE(p, plen);
		TAKE(q, qlen);
		TAKE(dp, dplen);
		TAKE(dq, dqlen);
		TAKE(iq, iqlen);
#undef TAKE
		return 0;
	}
	const br_ec_private_key *k = br_skey_decoder_get_ec(dc);

	c->key_data = malloc(k->xlen);
	if (!c->key_data)
		return -ENOMEM;
	memcpy(c->key_data, k->x, k->xlen);
	c->sk.ec = *k;
	c->sk.ec.x = c->key_data;
	return 0;
}

/* Big-endian numbers equal, leading zeros aside. */
static bool ferry__num_eq(const unsigned char *a, size_t alen,
			  const unsigned char *b, size_t blen)
{
	while (alen && !*a)
		a++, alen--;
	while (blen && !*b)
		b++, blen--;
	return alen == blen && !memcmp(a, b, alen);
}

/* Is the private key the leaf's? 0, or FERRY_ETLS_CLIENT_CERT. */
static int ferry__key_matches(struct ferry__tls_cert *c, char *why,
			      size_t whylen)
{
	br_x509_decoder_context xd;
	const br_x509_pkey *pk;
	unsigned char q[BR_EC_KBUF_PUB_MAX_SIZE];

	br_x509_decoder_init(&xd, NULL, NULL);
	br_x509_decoder_push(&xd, c->chain[0].data, c->chain[0].data_len);
	pk = br_x509_decoder_get_pkey(&xd);
	if (!pk) {
		snprintf(why, whylen, "the client certificate cannot be decoded "
			 "(BearSSL error %d)", br_x509_decoder_last_error(&xd));
		return FERRY_ETLS_CLIENT_CERT;
	}
	c->issuer_key_type = br_x509_decoder_get_signer_key_type(&xd);
	if (pk->key_type != c->key_type) {
		snprintf(why, whylen, "the private key does not match the "
			 "client certificate (an %s key for an %s certificate)",
			 c->key_type == BR_KEYTYPE_RSA ? "RSA" : "EC",
			 pk->key_type == BR_KEYTYPE_RSA ? "RSA" : "EC");
		return FERRY_ETLS_CLIENT_CERT;
	}
	if (c->key_type == BR_KEYTYPE_RSA) {
		br_rsa_compute_modulus mod = br_rsa_compute_modulus_get_default();
		size_t n = mod(NULL, &c->sk.rsa);
		unsigned char *nb = n ? malloc(n) : NULL;
		bool same;

		if (!nb)
			return n ? -ENOMEM : FERRY_ETLS_CLIENT_CERT;
		mod(nb, &c->sk.rsa);
		same = ferry__num_eq(nb, n, pk->key.rsa.n, pk->key.rsa.nlen);
		free(nb);
		if (same)
			return 0;
	} else {
		size_t n = br_ec_compute_pub(ferry__tls_ec_get(), NULL, q,
					     &c->sk.ec);

		if (!n) {
			snprintf(why, whylen, "the client key's curve (%d) is "
				 "not supported", c->sk.ec.curve);
			return FERRY_ETLS_CLIENT_CERT;
		}
		if (c->sk.ec.curve == pk->key.ec.curve && n == pk->key.ec.qlen &&
		    !memcmp(q, pk->key.ec.q, n))
			return 0;
	}
	snprintf(why, whylen, "the private key does not match the client "
		 "certificate (it is another key pair's)");
	return FERRY_ETLS_CLIENT_CERT;
}

static int ferry__key_decode(struct ferry__tls_cert *c, const struct buf *der,
			     char *why, size_t whylen)
{
	br_skey_decoder_context *dc = malloc(sizeof(*dc));
	int r;

	if (!dc)
		return -ENOMEM;
	br_skey_decoder_init(dc);
	br_skey_decoder_push(dc, der->p, der->len);
	c->key_type = br_skey_decoder_key_type(dc);
	if (!c->key_type) {
		snprintf(why, whylen, "the client key cannot be decoded "
			 "(BearSSL error %d): RSA or EC keys only",
			 br_skey_decoder_last_error(dc));
		free(dc);
		return FERRY_ETLS_CLIENT_CERT;
	}
	r = ferry__key_keep(c, dc);
	free(dc);
	return r;
}

/* Load one file into @f; 0, -errno. */
static int ferry__file_scan(const char *path, struct pem_found *f, bool certs)
{
	struct buf text = { 0 };
	int r = ferry__file_read(path, &text);

	if (r == 0)
		ferry__pem_scan(&text, f, certs);
	free(text.p);
	return r;
}

int ferry__tls_cert_load(const char *cert_file, const char *key_file,
			 struct ferry__tls_cert **certp, char *why,
			 size_t whylen)
{
	struct ferry__tls_cert *c = calloc(1, sizeof(*c));
	struct pem_found f = { .c = c };
	const char *kf = key_file ? key_file : cert_file;
	int r;

	*certp = NULL;
	if (!c)
		return -ENOMEM;
	r = ferry__file_scan(cert_file, &f, true);
	if (r < 0 && r != -ENOMEM) {
		snprintf(why, whylen, "client certificate %s: %s", cert_file,
			 strerror(-r));
		r = FERRY_ETLS_CLIENT_CERT;
		goto out;
	}
	if (r == 0 && key_file) {
		f.have_key = f.encrypted = false;
		f.key.len = 0;
		r = ferry__file_scan(key_file, &f, false);
		if (r < 0 && r != -ENOMEM) {
			snprintf(why, whylen, "client key %s: %s", key_file,
				 strerror(-r));
			r = FERRY_ETLS_CLIENT_CERT;
			goto out;
		}
	}
	if (r == 0 && f.oom)
		r = -ENOMEM;
	if (r < 0)
		goto out;
	r = FERRY_ETLS_CLIENT_CERT;
	if (!c->nchain) {
		snprintf(why, whylen, "client certificate %s: no certificate in "
			 "it (PEM expected)", cert_file);
		goto out;
	}
	if (!f.have_key) {
		snprintf(why, whylen, "client key %s: %s", kf, f.encrypted
			 ? "the key is encrypted, which is not supported "
			   "(decrypt it: openssl pkey -in KEY -out KEY.plain)"
			 : key_file ? "no private key in it (PEM expected)"
				    : "no private key in it: give the key file too");
		goto out;
	}
	r = ferry__key_decode(c, &f.key, why, whylen);
	if (r == 0)
		r = ferry__key_matches(c, why, whylen);
out:
	free(f.key.p);
	if (r < 0) {
		ferry__tls_cert_free(c);
		return r;
	}
	*certp = c;
	return 0;
}

void ferry__tls_cert_free(struct ferry__tls_cert *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nchain; i++)
		free(c->chain[i].data);
	free(c->chain);
	if (c->key_data) {
		/* The key's numbers are a secret: not left in freed memory. */
		explicit_bzero(c->key_data, c->key_type == BR_KEYTYPE_RSA
			       ? c->sk.rsa.plen + c->sk.rsa.qlen + c->sk.rsa.dplen +
				 c->sk.rsa.dqlen + c->sk.rsa.iqlen
			       : c->sk.ec.xlen);
		free(c->key_data);
	}
	free(c);
}

/* ------------------------------------------------------------------ */
/* The handler: BearSSL's, plus "did the server ask?"                     */

#define AUTH(pctx) ((struct ferry__tls_auth *)(void *)(pctx))

static void
ferry__auth_start_name_list(const br_ssl_client_certificate_class **pctx)
{
	struct ferry__tls_auth *a = AUTH(pctx);

	a->asked = true;
	if (a->inner)
		(*a->inner)->start_name_list(a->inner);
}

static void ferry__auth_start_name(const br_ssl_client_certificate_class **pctx,
				   size_t len)
{
	struct ferry__tls_auth *a = AUTH(pctx);

	if (a->inner)
		(*a->inner)->start_name(a->inner, len);
}

static void
ferry__auth_append_name(const br_ssl_client_certificate_class **pctx,
			const unsigned char *data, size_t len)
{
	struct ferry__tls_auth *a = AUTH(pctx);

	if (a->inner)
		(*a->inner)->append_name(a->inner, data, len);
}

static void ferry__auth_end_name(const br_ssl_client_certificate_class **pctx)
{
	struct ferry__tls_auth *a = AUTH(pctx);

	if (a->inner)
		(*a->inner)->end_name(a->inner);
}

static void
ferry__auth_end_name_list(const br_ssl_client_certificate_class **pctx)
{
	struct ferry__tls_auth *a = AUTH(pctx);

	if (a->inner)
		(*a->inner)->end_name_list(a->inner);
}

static void ferry__auth_choose(const br_ssl_client_certificate_class **pctx,
			       const br_ssl_client_context *cc,
			       uint32_t auth_types,
			       br_ssl_client_certificate *choices)
{
	struct ferry__tls_auth *a = AUTH(pctx);

	if (a->inner)
		(*a->inner)->choose(a->inner, cc, auth_types, choices);
	else
		memset(choices, 0, sizeof(*choices));	/* no certificate */
}

static uint32_t
ferry__auth_do_keyx(const br_ssl_client_certificate_class **pctx,
		    unsigned char *data, size_t *len)
{
	struct ferry__tls_auth *a = AUTH(pctx);

	return a->inner ? (*a->inner)->do_keyx(a->inner, data, len) : 0;
}

static size_t ferry__auth_do_sign(const br_ssl_client_certificate_class **pctx,
				  int hash_id, size_t hv_len,
				  unsigned char *data, size_t len)
{
	struct ferry__tls_auth *a = AUTH(pctx);

	return a->inner ? (*a->inner)->do_sign(a->inner, hash_id, hv_len, data,
					       len)
			: 0;
}

static const br_ssl_client_certificate_class auth_vtable = {
	sizeof(struct ferry__tls_auth),
	ferry__auth_start_name_list,
	ferry__auth_start_name,
	ferry__auth_append_name,
	ferry__auth_end_name,
	ferry__auth_end_name_list,
	ferry__auth_choose,
	ferry__auth_do_keyx,
	ferry__auth_do_sign,
};

void ferry__tls_auth_setup(struct ferry__tls_auth *a,
			   const struct ferry__tls_cert *cert,
			   br_ssl_client_context *cc)
{
	a->vtable = &auth_vtable;
	a->inner = NULL;
	a->asked = false;
	if (cert && cert->key_type == BR_KEYTYPE_RSA)
		br_ssl_client_set_single_rsa(cc, cert->chain, cert->nchain,
					     &cert->sk.rsa,
					     br_rsa_pkcs1_sign_get_default());
	else if (cert)
		br_ssl_client_set_single_ec(cc, cert->chain, cert->nchain,
					    &cert->sk.ec, BR_KEYTYPE_SIGN,
					    cert->issuer_key_type,
					    ferry__tls_ec_get(),
					    br_ecdsa_sign_asn1_get_default());
	if (cert)
		a->inner = cc->client_auth_vtable;
	br_ssl_client_set_client_certificate(cc, &a->vtable);
}

bool ferry__tls_auth_why(const struct ferry__tls_auth *a, int alert,
			 const char *alert_name, char *why, size_t whylen)
{
	if (!a->asked)
		return false;
	if (!a->inner)
		snprintf(why, whylen, "TLS: the server requires a client "
			 "certificate and none is set (tls_client_cert): fatal "
			 "alert %d (%s) received from the server", alert,
			 alert_name);
	else
		snprintf(why, whylen, "TLS: the server refused the client "
			 "certificate: fatal alert %d (%s) received from the "
			 "server", alert, alert_name);
	return true;
}
