/*
 * tls.c - the TLS client transport on BearSSL 0.6 (see tls.h).
 *
 * Per client: trust anchors decoded once from PEM (br_pem_decoder, then
 * br_x509_decoder for each certificate, DN and key copied into memory the
 * config owns), the cipher suite order, and two small caches: session
 * parameters per origin (each with an expiry: its lifetime, bounded by
 * the validity of the chain it was verified with), and leaf certificates
 * already verified.
 *
 * Per connection: a br_ssl_client_context (BearSSL's full profile, with
 * the AES-NI/pclmul code when the CPU has it, our GHASH and AES-CTR
 * from tls_ghash.c and tls_aesctr.c, and our X25519 and P-256 from
 * tls_ec.c; narrowed by ferry__tls_strict():
 * TLS 1.2, ECDHE with AEAD suites, no SHA-1 or MD5 in the chain, RSA keys
 * of 2048 bits or more, no renegotiation, unless the client relaxes one),
 * its two I/O buffers (see struct ferry__tls), and, during the
 * handshake, the X.509 engine: br_x509_minimal
 * wrapped by our own br_x509_class. The wrapper exists for what BearSSL does not
 * cover: an IP literal host (BearSSL matches DNS names only, so the
 * wrapper passes no name and then checks the leaf's iPAddress SAN entries
 * itself), the caller's explicit "skip verification" (then the leaf's key
 * is taken as is), and the verify cache (a leaf verified before for the
 * same name is not checked up to the anchors again, and its key is not
 * decoded again either). The ClientHello is edited once, to offer X25519
 * first (ferry__hello_prefer_x25519).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bearssl.h>

#include "ferry/error.h"
#include "ferry/http.h"
#include "ferry/list.h"
#include "grow.h"
#include "tls.h"
#include "tls_aesctr.h"
#include "tls_ec.h"
#include "tls_ghash.h"
#include "tls_cert.h"
#include "tls_fuzz.h"

#define SYSTEM_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
/* A leaf certificate longer than this is checked but not remembered
 * (and, for an IP literal host, refused: its SAN cannot be read). */
#define LEAF_MAX (64 * 1024)

/* A small list, most recently used first: the two caches. Each entry
 * starts with its node and is one allocation, freed when dropped. */
struct mru_node {
	struct mru_node *next;
};

struct mru {
	struct mru_node *head;
	unsigned n, max;
};

/* A date as BearSSL counts them: days since January 1st, 0 AD
 * (proleptic Gregorian), and seconds in the day. */
struct x509_time {
	uint32_t days, secs;
};

struct tls_session {
	struct mru_node node;		/* first */
	br_ssl_session_parameters params;
	time_t expires;			/* wall clock; 0: never */
	char origin[];
};

/* A public key (of at most 4096 bits for RSA) in a buffer of its own. */
#define KEY_MAX 520
struct tls_key {
	br_x509_pkey pk;		/* pointers into buf */
	unsigned char buf[KEY_MAX];
};

struct tls_verified {
	struct mru_node node;		/* first */
	unsigned char id[br_sha256_SIZE];	/* SHA-256(name, 0, leaf) */
	unsigned usages;		/* BR_KEYTYPE_KEYX / _SIGN */
	struct x509_time from, until;	/* valid in the whole chain */
	/* The leaf's key, so that a known leaf is not decoded again;
	 * key_type 0: not kept (too long), decode the leaf. */
	unsigned char key_type, curve;
	uint16_t len1, len2;		/* RSA: n, e; EC: q, 0 */
	unsigned char key[];		/* len1 + len2 bytes */
};

#define SESSION(n) ferry__container_of(n, struct tls_session, node)
#define VERIFIED(n) ferry__container_of(n, struct tls_verified, node)

struct ferry__tls_config {
	br_x509_trust_anchor *tas;
	size_t ntas, tas_cap;
	bool insecure;
	/* Strictness (struct ferry__tls_settings). */
	unsigned min_version;
	int min_rsa_bytes;
	bool allow_sha1;
	bool allow_renegotiation;
	bool aead_only;			/* no legacy suites */
	size_t obuf_len;		/* per connection: record + overhead */
	uint32_t session_lifetime_s;
	uint16_t suites[BR_MAX_CIPHER_SUITES];
	size_t nsuites;
	struct mru sessions;		/* struct tls_session */
	struct mru verified;		/* struct tls_verified */
	struct ferry__tls_counters counters;
	struct ferry__tls_cert *client_cert;	/* mutual TLS, or NULL */
	br_ghash ghash;			/* for GCM: ferry__tls_ghash_get() */
	const br_block_ctr_class *aes_ctr;	/* or NULL: BearSSL's */
};

/* ------------------------------------------------------------------ */
/* Caches                                                                */

static void ferry__mru_touch(struct mru *m, struct mru_node **pp)
{
	struct mru_node *x = *pp;

	*pp = x->next;
	x->next = m->head;
	m->head = x;
}

/* Put @x first; drop the least recently used past the limit. */
static void ferry__mru_push(struct mru *m, struct mru_node *x)
{
	struct mru_node **pp;

	x->next = m->head;
	m->head = x;
	if (++m->n <= m->max)
		return;
	for (pp = &m->head; (*pp)->next; pp = &(*pp)->next)
		;
	free(*pp);
	*pp = NULL;
	m->n--;
}

/* Unlink and free the entry at *pp. */
static void ferry__mru_drop(struct mru *m, struct mru_node **pp)
{
	struct mru_node *x = *pp;

	*pp = x->next;
	free(x);
	m->n--;
}

static void ferry__mru_clear(struct mru *m)
{
	while (m->head) {
		struct mru_node *x = m->head;

		m->head = x->next;
		free(x);
	}
	m->n = 0;
}

/* ------------------------------------------------------------------ */
/* Trust anchors                                                        */

struct bytes {
	unsigned char *p;
	size_t len, cap;
	bool oom;
};

static void ferry__bytes_add(void *ctx, const void *src, size_t len)
{
	struct bytes *b = ctx;
	unsigned char *p;

	if (b->oom)
		return;
	p = ferry__grow(b->p, &b->cap, b->len + len, 1024);
	if (!p) {
		b->oom = true;
		return;
	}
	b->p = p;
	memcpy(b->p + b->len, src, len);
	b->len += len;
}

static void *ferry__memdup(const void *src, size_t len)
{
	void *p = malloc(len ? len : 1);

	if (p && len)
		memcpy(p, src, len);
	return p;
}

static void ferry__ta_free(br_x509_trust_anchor *ta)
{
	free(ta->dn.data);
	if (ta->pkey.key_type == BR_KEYTYPE_RSA) {
		free(ta->pkey.key.rsa.n);
		free(ta->pkey.key.rsa.e);
	} else {
		free(ta->pkey.key.ec.q);
	}
}

/* One DER certificate to an anchor. Returns 0, 1 (not usable: skipped)
 * or -ENOMEM. */
static int ferry__ta_add(struct ferry__tls_config *cfg, const void *der,
			 size_t len)
{
	br_x509_decoder_context dc;
	struct bytes dn = { 0 };
	const br_x509_pkey *pk;
	br_x509_trust_anchor ta = { 0 };

	br_x509_decoder_init(&dc, ferry__bytes_add, &dn);
	br_x509_decoder_push(&dc, der, len);
	pk = br_x509_decoder_get_pkey(&dc);
	if (!pk || dn.oom) {
		free(dn.p);
		return dn.oom ? -ENOMEM : 1;
	}
	ta.dn.data = dn.p ? dn.p : ferry__memdup("", 0);
	ta.dn.len = dn.len;
	ta.flags = br_x509_decoder_isCA(&dc) ? BR_X509_TA_CA : 0;
	ta.pkey.key_type = pk->key_type;
	if (pk->key_type == BR_KEYTYPE_RSA) {
		ta.pkey.key.rsa.n =
			ferry__memdup(pk->key.rsa.n, pk->key.rsa.nlen);
		ta.pkey.key.rsa.nlen = pk->key.rsa.nlen;
		ta.pkey.key.rsa.e =
			ferry__memdup(pk->key.rsa.e, pk->key.rsa.elen);
		ta.pkey.key.rsa.elen = pk->key.rsa.elen;
		if (!ta.pkey.key.rsa.n || !ta.pkey.key.rsa.e)
			goto oom;
	} else {
		ta.pkey.key.ec.curve = pk->key.ec.curve;
		ta.pkey.key.ec.q = ferry__memdup(pk->key.ec.q, pk->key.ec.qlen);
		ta.pkey.key.ec.qlen = pk->key.ec.qlen;
		if (!ta.pkey.key.ec.q)
			goto oom;
	}
	if (!ta.dn.data)
		goto oom;
	if (cfg->ntas == cfg->tas_cap) {
		size_t bytes = cfg->tas_cap * sizeof(*cfg->tas);
		br_x509_trust_anchor *n = ferry__grow(cfg->tas, &bytes,
				(cfg->ntas + 1) * sizeof(*n), 16 * sizeof(*n));

		if (!n)
			goto oom;
		cfg->tas = n;
		cfg->tas_cap = bytes / sizeof(*n);
	}
	cfg->tas[cfg->ntas++] = ta;
	return 0;
oom:
	ferry__ta_free(&ta);
	return -ENOMEM;
}

static bool ferry__pem_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * BearSSL 0.6's PEM decoder is stricter than the lax form of RFC 7468
 * that CA files in the wild use: it takes a line break in the base64 text
 * only between 4-character groups (a file wrapped at 65 columns, or with
 * "=" alone on its last line, fails, and the files after it with it),
 * keeps the closing dashes in the name when a BEGIN line ends with CRLF
 * ("CERTIFICATE-----"), and reports an object's end only after the
 * newline of its END line. So the text is rewritten first: delimiter
 * lines ("-----...") as they are, without surrounding white space; the
 * other characters, without white space, wrapped at 64 columns; LF line
 * endings and a final newline.
 */
static void ferry__pem_normalize(const char *s, size_t len, struct bytes *out)
{
	size_t col = 0;

	while (len) {
		const char *nl = memchr(s, '\n', len);
		size_t n = nl ? (size_t)(nl - s) : len;
		size_t next = nl ? n + 1 : n;
		size_t i = 0;

		while (i < n && ferry__pem_space(s[i]))
			i++;
		if (n - i >= 5 && !memcmp(s + i, "-----", 5)) {
			while (n > i && ferry__pem_space(s[n - 1]))
				n--;
			if (col)
				ferry__bytes_add(out, "\n", 1);
			col = 0;
			ferry__bytes_add(out, s + i, n - i);
			ferry__bytes_add(out, "\n", 1);
		} else {
			for (; i < n; i++) {
				if (ferry__pem_space(s[i]))
					continue;
				ferry__bytes_add(out, s + i, 1);
				if (++col == 64) {
					ferry__bytes_add(out, "\n", 1);
					col = 0;
				}
			}
		}
		s += next;
		len -= next;
	}
	if (col)
		ferry__bytes_add(out, "\n", 1);
}

/* Every CERTIFICATE object of one PEM text. Returns the number of
 * anchors added, or -ENOMEM. */
static int ferry__pem_load(struct ferry__tls_config *cfg, const char *text,
			   size_t text_len)
{
	br_pem_decoder_context pc;
	struct bytes obj = { 0 }, norm = { 0 };
	bool is_cert = false, in_obj = false;
	int added = 0, err = 0;
	const char *s;
	size_t len;

	ferry__pem_normalize(text, text_len, &norm);
	if (norm.oom) {
		free(norm.p);
		return -ENOMEM;
	}
	s = (const char *)norm.p;
	len = norm.len;
	br_pem_decoder_init(&pc);
	while (len) {
		size_t n = br_pem_decoder_push(&pc, s, len);

		s += n;
		len -= n;
		switch (br_pem_decoder_event(&pc)) {
		case BR_PEM_BEGIN_OBJ:
			is_cert = !strcmp(br_pem_decoder_name(&pc), "CERTIFICATE") ||
				  !strcmp(br_pem_decoder_name(&pc),
					  "X509 CERTIFICATE");
			obj.len = 0;
			in_obj = true;
			br_pem_decoder_setdest(
				&pc, is_cert ? ferry__bytes_add : NULL, &obj);
			break;
		case BR_PEM_END_OBJ:
			if (in_obj && is_cert && !obj.oom) {
				err = ferry__ta_add(cfg, obj.p, obj.len);
				if (err < 0)
					goto out;
				if (err == 0)
					added++;
			}
			in_obj = false;
			break;
		case BR_PEM_ERROR:
			/* Not PEM from here on: stop, keep what we have. */
			goto out;
		default:
			break;
		}
	}
out:
	if (obj.oom)
		err = -ENOMEM;
	free(obj.p);
	free(norm.p);
	return err < 0 ? err : added;
}

static int ferry__file_load(struct ferry__tls_config *cfg, const char *path)
{
	FILE *f = fopen(path, "rb");
	struct bytes b = { 0 };
	char buf[8192];
	size_t n;
	int r;

	if (!f)
		return -errno;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		ferry__bytes_add(&b, buf, n);
	fclose(f);
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	r = b.p ? ferry__pem_load(cfg, (const char *)b.p, b.len) : 0;
	free(b.p);
	return r;
}

static int ferry__dir_load(struct ferry__tls_config *cfg, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];
	int total = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		int r;

		if (e->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
				     e->d_name) >= sizeof(path))
			continue;
		r = ferry__file_load(cfg, path);
		if (r == -ENOMEM) {
			closedir(d);
			return r;
		}
		if (r > 0)
			total += r;	/* unreadable or non-PEM files: skipped */
	}
	closedir(d);
	return total;
}

/*
 * The suites offered, in the order asked for: the ECDHE AES-GCM and the
 * ECDHE ChaCha20-Poly1305 suites (either group ahead of the other), then,
 * only when legacy suites are allowed, the rest of BearSSL's full profile
 * in its order (static RSA, CBC, CCM, 3DES). The full profile's list is
 * read from a context it initialised.
 */
static int ferry__suites_order(struct ferry__tls_config *cfg, int ciphers,
			       bool legacy)
{
	struct {
		br_ssl_client_context cc;
		br_x509_minimal_context xc;
	} *tmp = malloc(sizeof(*tmp));
	bool gcm_first;

	if (!tmp)
		return -ENOMEM;
	br_ssl_client_init_full(&tmp->cc, &tmp->xc, NULL, 0);
	if (ciphers == FERRY_TLS_CIPHERS_AUTO)
		gcm_first = (br_aes_x86ni_ctr_get_vtable() &&
			     br_ghash_pclmul_get()) ||
			    (br_aes_pwr8_ctr_get_vtable() && br_ghash_pwr8_get());
	else
		gcm_first = ciphers == FERRY_TLS_CIPHERS_AES_GCM_FIRST;
	cfg->nsuites = 0;
	for (int rank = 0; rank < (legacy ? 3 : 2); rank++) {
		for (size_t i = 0; i < tmp->cc.eng.suites_num; i++) {
			uint16_t id = tmp->cc.eng.suites_buf[i];
			bool chacha = id == BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 ||
				      id == BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256;
			bool gcm = id == BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 ||
				   id == BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 ||
				   id == BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 ||
				   id == BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384;
			int r = !chacha && !gcm ? 2 : (gcm == gcm_first ? 0 : 1);

			if (r == rank)
				cfg->suites[cfg->nsuites++] = id;
		}
	}
	free(tmp);
	return 0;
}

int ferry__tls_config_new(const struct ferry__tls_settings *set,
			  struct ferry__tls_config **cfgp,
			  char *why, size_t whylen)
{
	struct ferry__tls_config *cfg = calloc(1, sizeof(*cfg));
	const char *file = set->ca_file;
	int r;

	*cfgp = NULL;
	if (!cfg)
		return -ENOMEM;
	cfg->insecure = set->insecure;
	cfg->sessions.max = set->session_cache;
	cfg->verified.max = set->insecure ? 0 : set->verify_cache;
	cfg->min_version = set->min_version ? set->min_version : BR_TLS12;
	cfg->min_rsa_bytes = (int)((set->min_rsa_bits ? set->min_rsa_bits
						      : 2048) + 7) / 8;
	cfg->allow_sha1 = set->allow_sha1;
	cfg->allow_renegotiation = set->allow_renegotiation;
	cfg->obuf_len = (set->send_record_max ? set->send_record_max
					      : FERRY__TLS_SEND_RECORD_DEFAULT) +
			BR_SSL_BUFSIZE_OUTPUT - 16384;
	cfg->session_lifetime_s = set->session_lifetime_s;
	cfg->aead_only = !set->legacy_suites;
	cfg->ghash = ferry__tls_ghash_get();
	cfg->aes_ctr = ferry__tls_aes_ctr_get();
	r = ferry__suites_order(cfg, set->ciphers, set->legacy_suites);
	if (r < 0)
		goto fail;
	if (!file && !set->ca_dir && !set->insecure)
		file = SYSTEM_BUNDLE;
	if (file) {
		r = ferry__file_load(cfg, file);
		if (r == -ENOMEM)
			goto fail;
		if (r <= 0) {
			snprintf(why, whylen, "CA file %s: %s", file,
				 r < 0 ? strerror(-r) : "no certificate in it");
			r = FERRY_ETLS_CA;
			goto fail;
		}
	}
	if (set->ca_dir) {
		r = ferry__dir_load(cfg, set->ca_dir);
		if (r == -ENOMEM)
			goto fail;
		if (r <= 0) {
			snprintf(why, whylen, "CA dir %s: %s", set->ca_dir,
				 r < 0 ? strerror(-r) : "no certificate in it");
			r = FERRY_ETLS_CA;
			goto fail;
		}
	}
	if (set->client_cert) {
		r = ferry__tls_cert_load(set->client_cert, set->client_key,
					 &cfg->client_cert, why, whylen);
		if (r < 0)
			goto fail;
	}
	*cfgp = cfg;
	return 0;
fail:
	ferry__tls_config_free(cfg);
	return r;
}

void ferry__tls_config_free(struct ferry__tls_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->ntas; i++)
		ferry__ta_free(&cfg->tas[i]);
	free(cfg->tas);
	ferry__mru_clear(&cfg->sessions);
	ferry__mru_clear(&cfg->verified);
	ferry__tls_cert_free(cfg->client_cert);
	free(cfg);
}

void ferry__tls_config_counters(const struct ferry__tls_config *cfg,
				struct ferry__tls_counters *out)
{
	*out = cfg->counters;
}

/* ------------------------------------------------------------------ */
/* Session cache, per origin                                            */

static struct mru_node **ferry__session_find(struct ferry__tls_config *cfg,
					     const char *origin)
{
	struct mru_node **pp;

	for (pp = &cfg->sessions.head; *pp; pp = &(*pp)->next)
		if (!strcmp(SESSION(*pp)->origin, origin))
			return pp;
	return NULL;
}

static void ferry__session_put(struct ferry__tls_config *cfg,
			       const char *origin,
			       const br_ssl_session_parameters *sp,
			       time_t expires)
{
	struct mru_node **pp = ferry__session_find(cfg, origin);
	struct tls_session *s;

	if (pp) {
		ferry__mru_touch(&cfg->sessions, pp);
		SESSION(cfg->sessions.head)->params = *sp;
		SESSION(cfg->sessions.head)->expires = expires;
		return;
	}
	if (!cfg->sessions.max)
		return;
	s = malloc(sizeof(*s) + strlen(origin) + 1);
	if (!s)
		return;	/* a cache: losing an entry is fine */
	strcpy(s->origin, origin);
	s->params = *sp;
	s->expires = expires;
	ferry__mru_push(&cfg->sessions, &s->node);
}

/* The session to offer for @origin: NULL if none, or if it has expired
 * (then it is dropped). */
static const struct tls_session *
ferry__session_offer(struct ferry__tls_config *cfg, const char *origin)
{
	struct mru_node **pp = ferry__session_find(cfg, origin);

	if (!pp)
		return NULL;
	if (SESSION(*pp)->expires && time(NULL) >= SESSION(*pp)->expires) {
		ferry__mru_drop(&cfg->sessions, pp);
		return NULL;
	}
	return SESSION(*pp);
}

/* Is a <= b? */
static bool ferry__time_le(struct x509_time a, struct x509_time b)
{
	return a.days < b.days || (a.days == b.days && a.secs <= b.secs);
}

/* Days from 0 AD (BearSSL's count) to 1970-01-01. */
#define UNIX_EPOCH_DAYS 719528

/* Now, counted as br_x509_minimal counts it when given no time. */
static struct x509_time ferry__time_now(void)
{
	time_t t = time(NULL);

	return (struct x509_time){ (uint32_t)(t / 86400) + UNIX_EPOCH_DAYS,
				   (uint32_t)(t % 86400) };
}

/* The same instant as a time_t (the first second past it). */
static time_t ferry__time_unix(struct x509_time x)
{
	return ((time_t)x.days - UNIX_EPOCH_DAYS) * 86400 + x.secs + 1;
}

/* The entry for @id if its window holds now (moved first), else NULL. */
static const struct tls_verified *
ferry__verified_find(struct ferry__tls_config *cfg, const unsigned char *id)
{
	struct x509_time now = ferry__time_now();
	struct mru_node **pp;

	for (pp = &cfg->verified.head; *pp; pp = &(*pp)->next) {
		struct tls_verified *v = VERIFIED(*pp);

		if (memcmp(v->id, id, sizeof(v->id)))
			continue;
		if (!ferry__time_le(v->from, now) ||
		    !ferry__time_le(now, v->until))
			return NULL;
		ferry__mru_touch(&cfg->verified, pp);
		return v;
	}
	return NULL;
}

/* Copy the key @v keeps into @k; false if it keeps none. */
static bool ferry__verified_key(const struct tls_verified *v, struct tls_key *k)
{
	if (!v->key_type)
		return false;
	memcpy(k->buf, v->key, (size_t)v->len1 + v->len2);
	k->pk.key_type = v->key_type;
	if (v->key_type == BR_KEYTYPE_RSA) {
		k->pk.key.rsa.n = k->buf;
		k->pk.key.rsa.nlen = v->len1;
		k->pk.key.rsa.e = k->buf + v->len1;
		k->pk.key.rsa.elen = v->len2;
	} else {
		k->pk.key.ec.curve = v->curve;
		k->pk.key.ec.q = k->buf;
		k->pk.key.ec.qlen = v->len1;
	}
	return true;
}

/* A new entry for @id keeping the key @pk if it fits. */
static struct tls_verified *ferry__verified_new(const unsigned char *id,
						const br_x509_pkey *pk)
{
	size_t l1 = 0, l2 = 0;
	const void *p1 = NULL, *p2 = NULL;
	struct tls_verified *v;

	if (pk->key_type == BR_KEYTYPE_RSA) {
		p1 = pk->key.rsa.n, l1 = pk->key.rsa.nlen;
		p2 = pk->key.rsa.e, l2 = pk->key.rsa.elen;
	} else if (pk->key_type == BR_KEYTYPE_EC) {
		p1 = pk->key.ec.q, l1 = pk->key.ec.qlen;
	}
	if (!p1 || l1 + l2 > KEY_MAX)
		l1 = l2 = 0;
	v = malloc(sizeof(*v) + l1 + l2);
	if (!v)
		return NULL;
	memcpy(v->id, id, sizeof(v->id));
	v->key_type = l1 ? pk->key_type : 0;
	v->curve = pk->key_type == BR_KEYTYPE_EC ? (unsigned char)pk->key.ec.curve : 0;
	v->len1 = (uint16_t)l1;
	v->len2 = (uint16_t)l2;
	if (l1)
		memcpy(v->key, p1, l1);
	if (l2)
		memcpy(v->key + l1, p2, l2);
	return v;
}

/* The same leaf bytes carry the same key: an entry found for @id keeps
 * its key. */
static void ferry__verified_put(struct ferry__tls_config *cfg,
				const unsigned char *id, const br_x509_pkey *pk,
				unsigned usages, struct x509_time from,
				struct x509_time until)
{
	struct mru_node **pp;
	struct tls_verified *v;

	for (pp = &cfg->verified.head; *pp; pp = &(*pp)->next) {
		v = VERIFIED(*pp);
		if (!memcmp(v->id, id, sizeof(v->id))) {
			ferry__mru_touch(&cfg->verified, pp);
			goto set;
		}
	}
	v = ferry__verified_new(id, pk);
	if (!v)
		return;
	ferry__mru_push(&cfg->verified, &v->node);
set:
	v->usages = usages;
	v->from = from;
	v->until = until;
}

/* ------------------------------------------------------------------ */
/* The X.509 wrapper                                                     */

/*
 * How the wrapper treats a chain. PLAIN: everything goes to br_x509_minimal
 * (no cache: insecure, cache off, or a leaf too long to hold). With the
 * cache on, the chain starts in HOLD: the leaf is kept and hashed, not
 * passed on. At its end the cache decides: KNOWN (verified before: the
 * rest of the chain is ignored and the key is read from the leaf) or
 * CHECK (the leaf is replayed into br_x509_minimal, every certificate
 * follows it, and each one's dates are read so that a good chain can be
 * remembered with the window in which all of them are valid).
 */
enum xw_mode { XW_PLAIN, XW_HOLD, XW_KNOWN, XW_CHECK };

struct x509_wrap {
	const br_x509_class *vtable;	/* first: BearSSL's "object" */
	br_x509_minimal_context minimal;
	/* The leaf's key (insecure, KNOWN) or the current certificate's
	 * dates (CHECK). */
	br_x509_decoder_context dc;
	br_sha256_context id_hash;	/* HOLD: name, 0, leaf */
	struct ferry__tls_config *cfg;
	enum xw_mode mode;
	bool insecure;
	bool ip;			/* match ip_bin against the SAN */
	bool dates_ok;			/* every certificate's dates read (CHECK,
					   PLAIN) or known (KNOWN): from/until
					   hold the chain's window */
	unsigned char ip_bin[16];
	size_t ip_len;
	const char *server_name;	/* the URL's host */
	unsigned ncert;
	unsigned char id[br_sha256_SIZE];
	unsigned known_usages;		/* KNOWN */
	bool known_has_key;		/* KNOWN: known_key, not dc */
	struct tls_key known_key;
	struct x509_time from, until;	/* the chain's window, see dates_ok */
	unsigned char *leaf;		/* first certificate, DER */
	size_t leaf_len, leaf_cap;
	bool leaf_ok;
};

#define WRAP(ctx) ((struct x509_wrap *)(void *)(ctx))
#define MINIMAL(w) (&(w)->minimal.vtable)

static void ferry__xw_start_chain(const br_x509_class **ctx, const char *name)
{
	struct x509_wrap *w = WRAP(ctx);

	(void)name;	/* ours, from ferry__tls_new */
	w->ncert = 0;
	w->leaf_len = 0;
	w->leaf_ok = false;
	w->known_has_key = false;
	w->mode = w->cfg->verified.max ? XW_HOLD : XW_PLAIN;
	/* The window bounds the session cache too, so PLAIN reads it. */
	w->dates_ok = !w->insecure;
	w->from = (struct x509_time){ 0, 0 };
	w->until = (struct x509_time){ UINT32_MAX, UINT32_MAX };
	if (w->mode == XW_HOLD) {
		br_sha256_init(&w->id_hash);
		br_sha256_update(&w->id_hash, w->server_name,
				 strlen(w->server_name) + 1);
	}
	w->minimal.vtable->start_chain(MINIMAL(w), w->ip ? NULL : w->server_name);
}

/* Fold the dates just decoded into the chain's window. */
static void ferry__xw_dates(struct x509_wrap *w)
{
	struct x509_time nb = { w->dc.notbefore_days, w->dc.notbefore_seconds };
	struct x509_time na = { w->dc.notafter_days, w->dc.notafter_seconds };

	if (!br_x509_decoder_get_pkey(&w->dc)) {
		w->dates_ok = false;
		return;
	}
	if (ferry__time_le(w->from, nb))
		w->from = nb;
	if (ferry__time_le(na, w->until))
		w->until = na;
}

static void ferry__xw_start_cert(const br_x509_class **ctx, uint32_t length)
{
	struct x509_wrap *w = WRAP(ctx);

	if (w->ncert == 0) {
		free(w->leaf);
		w->leaf = length <= LEAF_MAX ? malloc(length ? length : 1) : NULL;
		w->leaf_cap = w->leaf ? length : 0;
		if (!w->leaf && w->mode == XW_HOLD)
			w->mode = XW_PLAIN;
		if (w->insecure)
			br_x509_decoder_init(&w->dc, NULL, NULL);
	}
	switch (w->mode) {
	case XW_HOLD:
	case XW_KNOWN:
		return;
	case XW_CHECK:
		br_x509_decoder_init(&w->dc, NULL, NULL);
		break;
	case XW_PLAIN:
		if (!w->insecure)
			br_x509_decoder_init(&w->dc, NULL, NULL);
		break;
	}
	w->minimal.vtable->start_cert(MINIMAL(w), length);
}

static void ferry__xw_append(const br_x509_class **ctx,
			     const unsigned char *buf, size_t len)
{
	struct x509_wrap *w = WRAP(ctx);

	if (w->ncert == 0) {
		if (w->leaf && w->leaf_len + len <= w->leaf_cap) {
			memcpy(w->leaf + w->leaf_len, buf, len);
			w->leaf_len += len;
		}
		if (w->insecure)
			br_x509_decoder_push(&w->dc, buf, len);
	}
	switch (w->mode) {
	case XW_HOLD:
		br_sha256_update(&w->id_hash, buf, len);
		return;
	case XW_KNOWN:
		return;
	case XW_CHECK:
		br_x509_decoder_push(&w->dc, buf, len);
		break;
	case XW_PLAIN:
		if (!w->insecure)
			br_x509_decoder_push(&w->dc, buf, len);
		break;
	}
	w->minimal.vtable->append(MINIMAL(w), buf, len);
}

/* The leaf is whole (HOLD): look it up, then go on as KNOWN or CHECK. */
static void ferry__xw_leaf_done(struct x509_wrap *w)
{
	const struct tls_verified *v;

	br_sha256_out(&w->id_hash, w->id);
	v = w->leaf_len == w->leaf_cap ? ferry__verified_find(w->cfg, w->id)
				       : NULL;
	if (v) {
		/* The key as kept, or else as read from the leaf again. */
		w->known_has_key = ferry__verified_key(v, &w->known_key);
		if (!w->known_has_key) {
			br_x509_decoder_init(&w->dc, NULL, NULL);
			br_x509_decoder_push(&w->dc, w->leaf, w->leaf_len);
		}
		if (w->known_has_key || br_x509_decoder_get_pkey(&w->dc)) {
			w->mode = XW_KNOWN;
			w->known_usages = v->usages;
			w->from = v->from;
			w->until = v->until;
			return;
		}
	}
	/* Verify it the long way, reading every certificate's dates. */
	w->mode = XW_CHECK;
	w->dates_ok = true;
	w->from = (struct x509_time){ 0, 0 };
	w->until = (struct x509_time){ UINT32_MAX, UINT32_MAX };
	w->minimal.vtable->start_cert(MINIMAL(w), (uint32_t)w->leaf_len);
	w->minimal.vtable->append(MINIMAL(w), w->leaf, w->leaf_len);
	br_x509_decoder_init(&w->dc, NULL, NULL);
	br_x509_decoder_push(&w->dc, w->leaf, w->leaf_len);
	ferry__xw_dates(w);
}

static void ferry__xw_end_cert(const br_x509_class **ctx)
{
	struct x509_wrap *w = WRAP(ctx);

	w->ncert++;
	switch (w->mode) {
	case XW_HOLD:
		ferry__xw_leaf_done(w);
		if (w->mode == XW_KNOWN)
			return;
		break;
	case XW_KNOWN:
		return;
	case XW_CHECK:
		ferry__xw_dates(w);
		break;
	case XW_PLAIN:
		if (!w->insecure)
			ferry__xw_dates(w);
		break;
	}
	w->minimal.vtable->end_cert(MINIMAL(w));
}

/*
 * A minimal DER walk: the element at *p (below end). Returns its tag
 * byte and content, and moves *p past it; -1 on malformed input. Only
 * one-byte tags and definite lengths of up to 4 bytes, which is all a
 * certificate uses.
 */
static int ferry__der_next(const unsigned char **p, const unsigned char *end,
			   const unsigned char **val, size_t *vlen)
{
	const unsigned char *q = *p;
	size_t len;
	int tag;

	if (end - q < 2)
		return -1;
	tag = *q++;
	len = *q++;
	if (len & 0x80) {
		unsigned n = len & 0x7f;

		if (n == 0 || n > 4 || (size_t)(end - q) < n)
			return -1;
		for (len = 0; n; n--)
			len = (len << 8) | *q++;
	}
	if ((size_t)(end - q) < len)
		return -1;
	*val = q;
	*vlen = len;
	*p = q + len;
	return tag;
}

/* Does the certificate's subjectAltName list iPAddress ip (4 or 16
 * bytes)? Returns 1, 0, or -1 if the certificate cannot be read. */
static int ferry__san_has_ip(const unsigned char *der, size_t len,
			     const unsigned char *ip, size_t iplen)
{
	static const unsigned char san_oid[] = { 0x55, 0x1d, 0x11 };
	const unsigned char *p = der, *end = der + len, *v, *tbs_end;
	size_t vl;

	/* Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, ... } */
	if (ferry__der_next(&p, end, &v, &vl) != 0x30)
		return -1;
	p = v;
	end = v + vl;
	if (ferry__der_next(&p, end, &v, &vl) != 0x30)
		return -1;
	p = v;
	tbs_end = v + vl;
	/* Skip to [3] extensions: version, serial, sigalg, issuer,
	 * validity, subject, spki, and the optional unique IDs. */
	for (;;) {
		int tag;

		if (p >= tbs_end)
			return 0;	/* no extensions at all */
		tag = ferry__der_next(&p, tbs_end, &v, &vl);
		if (tag < 0)
			return -1;
		if (tag == 0xa3)
			break;
	}
	/* [3] { SEQUENCE OF Extension } */
	p = v;
	end = v + vl;
	if (ferry__der_next(&p, end, &v, &vl) != 0x30)
		return -1;
	p = v;
	end = v + vl;
	while (p < end) {
		const unsigned char *e, *eend, *oid, *ev;
		size_t el, oidl, evl;
		int tag;

		if (ferry__der_next(&p, end, &e, &el) != 0x30)
			return -1;
		eend = e + el;
		if (ferry__der_next(&e, eend, &oid, &oidl) != 0x06)
			return -1;
		if (oidl != sizeof(san_oid) || memcmp(oid, san_oid, oidl))
			continue;
		tag = ferry__der_next(&e, eend, &ev, &evl);
		if (tag == 0x01)	/* critical flag */
			tag = ferry__der_next(&e, eend, &ev, &evl);
		if (tag != 0x04)
			return -1;
		/* OCTET STRING { SEQUENCE OF GeneralName } */
		e = ev;
		eend = ev + evl;
		if (ferry__der_next(&e, eend, &ev, &evl) != 0x30)
			return -1;
		e = ev;
		eend = ev + evl;
		while (e < eend) {
			tag = ferry__der_next(&e, eend, &ev, &evl);
			if (tag < 0)
				return -1;
			/* iPAddress [7] IMPLICIT OCTET STRING */
			if (tag == 0x87 && evl == iplen && !memcmp(ev, ip, iplen))
				return 1;
		}
		return 0;
	}
	return 0;
}

static unsigned ferry__xw_end_chain(const br_x509_class **ctx)
{
	struct x509_wrap *w = WRAP(ctx);
	unsigned err, usages = 0;
	const br_x509_pkey *pk;

	if (w->mode == XW_KNOWN) {
		w->leaf_ok = true;
		w->cfg->counters.verify_cached++;
		return 0;
	}
	err = w->minimal.vtable->end_chain(MINIMAL(w));
	if (w->insecure) {
		w->leaf_ok = br_x509_decoder_get_pkey(&w->dc) != NULL;
		return w->leaf_ok ? 0 : BR_ERR_X509_EMPTY_CHAIN;
	}
	if (err)
		return err;
	if (w->ip) {
		if (!w->leaf || w->leaf_len != w->leaf_cap)
			return BR_ERR_X509_TRUNCATED;
		if (ferry__san_has_ip(w->leaf, w->leaf_len, w->ip_bin,
				      w->ip_len) != 1)
			return BR_ERR_X509_BAD_SERVER_NAME;
	}
	if (w->mode == XW_CHECK && w->dates_ok &&
	    (pk = w->minimal.vtable->get_pkey(MINIMAL(w), &usages)))
		ferry__verified_put(w->cfg, w->id, pk, usages, w->from,
				    w->until);
	return 0;
}

static const br_x509_pkey *ferry__xw_get_pkey(const br_x509_class *const *ctx,
					      unsigned *usages)
{
	struct x509_wrap *w = WRAP(ctx);

	if (w->insecure || w->mode == XW_KNOWN) {
		if (!w->leaf_ok)
			return NULL;
		if (usages)
			*usages = w->insecure ? BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN
					      : w->known_usages;
		if (!w->insecure && w->known_has_key)
			return &w->known_key.pk;
		return br_x509_decoder_get_pkey(&w->dc);
	}
	return w->minimal.vtable->get_pkey(&w->minimal.vtable, usages);
}

static const br_x509_class x509_wrap_vtable = {
	sizeof(struct x509_wrap), ferry__xw_start_chain, ferry__xw_start_cert,
	ferry__xw_append,	  ferry__xw_end_cert,	 ferry__xw_end_chain,
	ferry__xw_get_pkey,
};

/* ------------------------------------------------------------------ */
/* Connections                                                           */

/*
 * One connection: the engine, then its two buffers in the same
 * allocation. The input buffer holds a whole record of the largest size
 * (16 KiB and overhead): a smaller one would make BearSSL ask for a
 * smaller maximum fragment length, which many servers ignore, and their
 * full-size records would then fail the connection. The output buffer
 * holds one record of what ferry sends (settings.send_record_max); a
 * longer message goes out in several records. The X.509 engine (about
 * 4.5 KiB, and the leaf's DER) is a separate allocation, freed once the
 * handshake is over unless renegotiation is allowed: only a new
 * handshake would use it again.
 */
struct ferry__tls {
	br_ssl_client_context cc;
	struct x509_wrap *x509;		/* NULL after the handshake */
	struct ferry__tls_config *cfg;
	struct ferry__tls_auth auth;	/* answers a CertificateRequest */
	bool resumed_offer;		/* a cached session was offered */
	bool hs_done;			/* the first handshake finished */
	bool hello_seen;		/* the ClientHello went to ferry__tls_out */
	time_t offer_expires;		/* of the session offered */
	/* The first bytes the server sent, kept to tell "not TLS at all"
	 * (plain HTTP on the port) from a TLS failure. */
	unsigned char first[24];
	size_t nfirst;			/* taken by the engine */
	size_t nshow;			/* offered (>= nfirst) */
	char *host;
	char *origin;
	unsigned char ibuf[BR_SSL_BUFSIZE_INPUT];
	unsigned char obuf[];		/* cfg->obuf_len bytes */
};

static const char *alpn_names[] = { "http/1.1" };

/*
 * What the full profile allows and ferry does not, unless relaxed: TLS
 * below 1.2, MD5 and SHA-1 signatures in the chain (BearSSL has no
 * switch for them, but verifies only with the hashes it is given), RSA
 * keys under 2048 bits, renegotiation. The suites are set apart.
 */
static void ferry__tls_strict(const struct ferry__tls_config *cfg,
			      br_ssl_client_context *cc,
			      br_x509_minimal_context *xc)
{
	br_ssl_engine_set_versions(&cc->eng, cfg->min_version, BR_TLS12);
	br_x509_minimal_set_hash(xc, br_md5_ID, NULL);
	if (!cfg->allow_sha1)
		br_x509_minimal_set_hash(xc, br_sha1_ID, NULL);
	br_x509_minimal_set_minrsa(xc, cfg->min_rsa_bytes);
	/* TLS 1.2 with AEAD suites hashes its handshake with SHA-256 or
	 * SHA-384 only. MD5 and SHA-1 (older PRFs, CBC's HMAC) and SHA-224
	 * would only be offered for the ServerKeyExchange signature, where
	 * SHA-1 is as weak as in the chain, and the engine hashes every
	 * handshake message with each hash it has. */
	if (cfg->min_version == BR_TLS12 && cfg->aead_only &&
	    !cfg->allow_sha1) {
		br_ssl_engine_set_hash(&cc->eng, br_md5_ID, NULL);
		br_ssl_engine_set_hash(&cc->eng, br_sha1_ID, NULL);
		br_ssl_engine_set_hash(&cc->eng, br_sha224_ID, NULL);
	}
	if (!cfg->allow_renegotiation)
		br_ssl_engine_add_flags(&cc->eng, BR_OPT_NO_RENEGOTIATION);
}

/*
 * BearSSL sizes its fragment length to the smaller of the two buffers and,
 * when that is under 16 KiB, asks the server for it in the ClientHello
 * (RFC 6066 max_fragment_length). Our output buffer holds one record of
 * what we send (send_record_max, 4 KiB), but the input buffer holds any
 * record: asking would only make a server that honours the extension cut
 * every record of a download to 4 KiB, four times the records (and the
 * per-record work) for nothing. So claim 16 KiB for the extension, which
 * BearSSL then leaves out; what it sends is still cut to max_frag_len,
 * which the output buffer holds. BearSSL 0.6 has no option for this:
 * log_max_frag_len is read only by the ClientHello and the check of the
 * server's answer to the extension, which a server must not send unasked.
 */
static void ferry__tls_no_fragment_limit(br_ssl_engine_context *eng)
{
	eng->log_max_frag_len = 14;
}

/*
 * Elliptic curves: BearSSL 0.6 as Debian builds it has only its 32-bit
 * code (br_ec_all_m31), about 0.5 ms of X25519 and 1 ms of P-256 ECDSA
 * verification per full handshake; ours is 64-bit (tls_ec.c). The full
 * profile gave the engine (key exchange, ServerKeyExchange signature)
 * and the X.509 engine (the chain's ECDSA signatures) the same
 * implementation; both get ours, each with the ECDSA verifier it had.
 */
static void ferry__tls_set_ec(br_ssl_engine_context *eng,
			      br_x509_minimal_context *xc)
{
	const br_ec_impl *ec = ferry__tls_ec_get();

	br_ssl_engine_set_ec(eng, ec);
	br_x509_minimal_set_ecdsa(xc, ec, br_ssl_engine_get_ecdsa(eng));
}

int ferry__tls_new(struct ferry__tls_config *cfg, const char *host,
		   size_t host_len, bool ip_literal, const char *origin, struct ferry__tls **tp)
{
	struct ferry__tls *t = malloc(sizeof(*t) + cfg->obuf_len);
	const struct tls_session *sp;
	br_ssl_engine_context *eng;
	struct x509_wrap *w;

	*tp = NULL;
	if (!t)
		return -ENOMEM;
	/* The I/O buffers need no zeroing; everything before them does. */
	memset(t, 0, offsetof(struct ferry__tls, ibuf));
	t->cfg = cfg;
	/* "localhost." is "localhost" to SNI and to the certificate (as in
	 * curl): a fully qualified name with its root label spelled out. */
	if (!ip_literal && host_len > 1 && host[host_len - 1] == '.')
		host_len--;
	t->host = strndup(host, host_len);
	t->origin = strdup(origin);
	t->x509 = w = calloc(1, sizeof(*w));
	if (!t->host || !t->origin || !w) {
		ferry__tls_free(t);
		return -ENOMEM;
	}
	eng = &t->cc.eng;
	br_ssl_client_init_full(&t->cc, &w->minimal, cfg->tas, cfg->ntas);
	br_ssl_engine_set_suites(eng, cfg->suites, cfg->nsuites);
	/* GCM records: BearSSL's GHASH reduces after every block (ours
	 * folds 8 or 16, tls_ghash.c) and its AES-NI CTR keeps four blocks
	 * in flight (ours 8 or 16, tls_aesctr.c). */
	br_ssl_engine_set_ghash(eng, cfg->ghash);
	if (cfg->aes_ctr)
		br_ssl_engine_set_aes_ctr(eng, cfg->aes_ctr);
	ferry__tls_set_ec(eng, &w->minimal);
	ferry__tls_strict(cfg, &t->cc, &w->minimal);
	w->vtable = &x509_wrap_vtable;
	w->cfg = cfg;
	w->insecure = cfg->insecure;
	w->server_name = t->host;
	if (ip_literal) {
		w->ip = true;
		if (inet_pton(AF_INET, t->host, w->ip_bin) == 1)
			w->ip_len = 4;
		else if (inet_pton(AF_INET6, t->host, w->ip_bin) == 1)
			w->ip_len = 16;
	}
	br_ssl_engine_set_x509(eng, &w->vtable);
	br_ssl_engine_set_buffers_bidi(eng, t->ibuf, sizeof(t->ibuf), t->obuf,
				       cfg->obuf_len);
	ferry__tls_no_fragment_limit(eng);
	br_ssl_engine_set_protocol_names(eng, alpn_names, 1);
	ferry__tls_auth_setup(&t->auth, cfg->client_cert, &t->cc);
	sp = ferry__session_offer(cfg, origin);
	if (sp) {
		br_ssl_engine_set_session_parameters(eng, &sp->params);
		t->resumed_offer = true;
		t->offer_expires = sp->expires;
	}
	/* No SNI for an IP literal (RFC 6066 forbids it). The name given
	 * here is also what BearSSL would match; our wrapper ignores it. */
	/* Fails only for bad parameters, and then the engine is closed
	 * with the reason, which the first ferry__tls_status() reports. */
	(void)br_ssl_client_reset(&t->cc, ip_literal ? NULL : t->host,
				  t->resumed_offer);
	*tp = t;
	return 0;
}

static void ferry__x509_free(struct x509_wrap *w)
{
	if (w)
		free(w->leaf);
	free(w);
}

void ferry__tls_free(struct ferry__tls *t)
{
	if (!t)
		return;
	ferry__x509_free(t->x509);
	free(t->host);
	free(t->origin);
	free(t);
}

size_t ferry__tls_feed(struct ferry__tls *t, const void *data, size_t len)
{
	br_ssl_engine_context *eng = &t->cc.eng;
	size_t room, n;
	unsigned char *buf;

	if (!(br_ssl_engine_current_state(eng) & BR_SSL_RECVREC))
		return 0;
	buf = br_ssl_engine_recvrec_buf(eng, &room);
	n = len < room ? len : room;
	if (t->nfirst < sizeof(t->first)) {
		/* Keep what was offered, though the engine may take only a
		 * record header before it gives up: the words after it say
		 * what the server is. */
		size_t k = sizeof(t->first) - t->nfirst;

		k = k < len ? k : len;
		memcpy(t->first + t->nfirst, data, k);
		t->nshow = t->nfirst + k;
		t->nfirst += k < n ? k : n;
	}
	memcpy(buf, data, n);
	br_ssl_engine_recvrec_ack(eng, n);
	return n;
}

/* Big-endian 16 bits at p. */
static unsigned ferry__be16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/*
 * Skip a vector with a @hdr-byte length at *p (below end): false if it
 * does not fit.
 */
static bool ferry__skip_vec(const unsigned char **p, const unsigned char *end,
			    unsigned hdr)
{
	size_t n;

	if ((size_t)(end - *p) < hdr)
		return false;
	n = hdr == 1 ? **p : ferry__be16(*p);
	if ((size_t)(end - *p) - hdr < n)
		return false;
	*p += hdr + n;
	return true;
}

/* In the groups list @ids (@n bytes), move X25519 to the front. Returns
 * whether the list changed. */
static bool ferry__groups_x25519_first(unsigned char *ids, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		if (ferry__be16(ids + i) == BR_EC_curve25519)
			break;
	if (i == 0 || i + 1 >= n)
		return false;
	memmove(ids + 2, ids, i);
	ids[0] = 0;
	ids[1] = BR_EC_curve25519;
	return true;
}

/*
 * Offer X25519 first. BearSSL 0.6 writes the supported_groups extension
 * in increasing ID order (its ssl_hs_client.t0 says so, with no API to
 * change it), so P-256 (23) comes before X25519 (29), and a server that
 * follows the client's order (nginx's default) picks P-256, which
 * BearSSL computes in 32-bit code: 0.5 ms for our key and 0.8 ms for
 * the shared secret here, against 0.25 ms each for X25519.
 *
 * The ClientHello is the first record the engine hands out, in the
 * clear, and the only message in the transcript hash so far (the
 * handshake starts the hash, writes the ClientHello, then flushes it).
 * Its groups list is reordered in place (same bytes, same length), and
 * the transcript is hashed again from the reordered message, so both
 * sides' Finished messages agree. @rec holds the whole first record; a
 * ClientHello that does not read as expected is left as it is.
 */
static void ferry__hello_prefer_x25519(struct ferry__tls *t, unsigned char *rec,
				       size_t len)
{
	const unsigned char *p, *end;
	unsigned char *msg;
	size_t rlen;

	if (len < 5 + 4 || rec[0] != 22 /* handshake */)
		return;
	rlen = ferry__be16(rec + 3);
	msg = rec + 5;
	if (rlen + 5 > len || rlen < 4 || msg[0] != 1 /* ClientHello */ ||
	    ((size_t)msg[1] << 16 | ferry__be16(msg + 2)) != rlen - 4)
		return;
	end = msg + rlen;
	p = msg + 4 + 2 + 32;		/* version, random */
	if (p > end || !ferry__skip_vec(&p, end, 1) || /* session ID */
	    !ferry__skip_vec(&p, end, 2) || /* suites */
	    !ferry__skip_vec(&p, end, 1) || /* compression */
	    end - p < 2 || (size_t)(end - p) - 2 != ferry__be16(p))
		return;
	for (p += 2; end - p >= 4;) {
		unsigned type = ferry__be16(p);
		size_t elen = ferry__be16(p + 2);
		unsigned char *ext = (unsigned char *)p + 4;

		if ((size_t)(end - p) - 4 < elen)
			return;
		p += 4 + elen;
		if (type != 10 /* supported_groups */)
			continue;
		if (elen < 2 || ferry__be16(ext) != elen - 2 ||
		    !ferry__groups_x25519_first(ext + 2, elen - 2))
			return;
		br_multihash_init(&t->cc.eng.mhash);
		br_multihash_update(&t->cc.eng.mhash, msg, rlen);
		return;
	}
}

const void *ferry__tls_out(struct ferry__tls *t, size_t *len)
{
	br_ssl_engine_context *eng = &t->cc.eng;
	unsigned char *rec;

	if (!(br_ssl_engine_current_state(eng) & BR_SSL_SENDREC))
		return NULL;
	rec = br_ssl_engine_sendrec_buf(eng, len);
	if (!t->hello_seen) {
		t->hello_seen = true;
		ferry__hello_prefer_x25519(t, rec, *len);
	}
	return rec;
}

void ferry__tls_out_ack(struct ferry__tls *t, size_t n)
{
	br_ssl_engine_sendrec_ack(&t->cc.eng, n);
}

const void *ferry__tls_read(struct ferry__tls *t, size_t *len)
{
	br_ssl_engine_context *eng = &t->cc.eng;

	if (!(br_ssl_engine_current_state(eng) & BR_SSL_RECVAPP))
		return NULL;
	return br_ssl_engine_recvapp_buf(eng, len);
}

void ferry__tls_read_ack(struct ferry__tls *t, size_t n)
{
	br_ssl_engine_recvapp_ack(&t->cc.eng, n);
}

size_t ferry__tls_write(struct ferry__tls *t, const void *data, size_t len)
{
	br_ssl_engine_context *eng = &t->cc.eng;
	unsigned char *buf;
	size_t room, n;

	if (!(br_ssl_engine_current_state(eng) & BR_SSL_SENDAPP))
		return 0;
	buf = br_ssl_engine_sendapp_buf(eng, &room);
	n = len < room ? len : room;
	memcpy(buf, data, n);
	br_ssl_engine_sendapp_ack(eng, n);
	return n;
}

void ferry__tls_flush(struct ferry__tls *t)
{
	br_ssl_engine_flush(&t->cc.eng, 0);
}

void ferry__tls_close(struct ferry__tls *t)
{
	br_ssl_engine_close(&t->cc.eng);
}

bool ferry__tls_ready(const struct ferry__tls *t)
{
	unsigned st = br_ssl_engine_current_state(&t->cc.eng);

	return (st & (BR_SSL_SENDAPP | BR_SSL_RECVAPP)) != 0;
}

/*
 * When a session from a full handshake stops being offered: after its
 * lifetime, and never past the end of the chain's validity (a resumed
 * handshake shows no certificate, so resuming later would accept a
 * chain that has expired). Resuming does not extend it. 0: never.
 */
static time_t ferry__session_expiry(const struct ferry__tls *t)
{
	const struct x509_wrap *w = t->x509;
	time_t exp = 0;

	if (t->cfg->session_lifetime_s)
		exp = time(NULL) + (time_t)t->cfg->session_lifetime_s;
	if (w && !w->insecure && w->dates_ok && w->until.days != UINT32_MAX) {
		time_t end = ferry__time_unix(w->until);

		if (!exp || end < exp)
			exp = end;
	}
	return exp;
}

/*
 * What the engine gets instead of the X.509 engine once that is freed:
 * it refuses any chain. Only a renegotiation would start one, and it is
 * freed only when renegotiation is refused, so this is a guard.
 */
static void ferry__xn_start_chain(const br_x509_class **ctx, const char *name)
{
	(void)ctx;
	(void)name;
}

static void ferry__xn_start_cert(const br_x509_class **ctx, uint32_t length)
{
	(void)ctx;
	(void)length;
}

static void ferry__xn_append(const br_x509_class **ctx,
			     const unsigned char *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
}

static void ferry__xn_end_cert(const br_x509_class **ctx)
{
	(void)ctx;
}

static unsigned ferry__xn_end_chain(const br_x509_class **ctx)
{
	(void)ctx;
	return BR_ERR_X509_NOT_TRUSTED;
}

static const br_x509_pkey *ferry__xn_get_pkey(const br_x509_class *const *ctx,
					      unsigned *usages)
{
	(void)ctx;
	(void)usages;
	return NULL;
}

static const br_x509_class x509_none_vtable = {
	sizeof(const br_x509_class *),
	ferry__xn_start_chain,
	ferry__xn_start_cert,
	ferry__xn_append,
	ferry__xn_end_cert,
	ferry__xn_end_chain,
	ferry__xn_get_pkey,
};

/* Not const only because BearSSL takes a non-const pointer; never
 * written. */
static const br_x509_class *x509_none = &x509_none_vtable;

/* The handshake is over: free the X.509 engine and the leaf, unless a
 * renegotiation may need them again. */
static void ferry__x509_release(struct ferry__tls *t)
{
	if (!t->x509)
		return;
	if (t->cfg->allow_renegotiation) {
		free(t->x509->leaf);	/* a new chain brings its own */
		t->x509->leaf = NULL;
		t->x509->leaf_len = t->x509->leaf_cap = 0;
		return;
	}
	br_ssl_engine_set_x509(&t->cc.eng, &x509_none);
	ferry__x509_free(t->x509);
	t->x509 = NULL;
}

bool ferry__tls_session_save(struct ferry__tls *t)
{
	br_ssl_session_parameters sp;
	bool resumed = false;
	struct mru_node **old = ferry__session_find(t->cfg, t->origin);

	t->hs_done = true;
	br_ssl_engine_get_session_parameters(&t->cc.eng, &sp);
	if (old && t->resumed_offer && sp.session_id_len) {
		const br_ssl_session_parameters *op =
			&SESSION(*old)->params;

		resumed = op->session_id_len == sp.session_id_len &&
			  !memcmp(op->session_id, sp.session_id,
				  sp.session_id_len);
	}
	if (resumed)
		t->cfg->counters.resumed++;
	else
		t->cfg->counters.full++;
	if (sp.session_id_len)
		ferry__session_put(t->cfg, t->origin, &sp,
				   resumed ? t->offer_expires
					   : ferry__session_expiry(t));
	ferry__x509_release(t);
	return resumed;
}

bool ferry__tls_peer_closed(const struct ferry__tls *t)
{
	const br_ssl_engine_context *eng = &t->cc.eng;
	unsigned st = br_ssl_engine_current_state(eng);

	if (st & BR_SSL_CLOSED)
		return br_ssl_engine_last_error(eng) == BR_ERR_OK;
	/* After close_notify BearSSL stops taking records (and we read its
	 * plaintext eagerly, so none is pending) while its reply goes out. */
	return t->hs_done && !(st & (BR_SSL_RECVREC | BR_SSL_RECVAPP));
}

/* ------------------------------------------------------------------ */
/* Errors                                                               */

static const char *const ssl_errs[] = {
	[BR_ERR_BAD_PARAM] = "BAD_PARAM",
	[BR_ERR_BAD_STATE] = "BAD_STATE",
	[BR_ERR_UNSUPPORTED_VERSION] = "UNSUPPORTED_VERSION",
	[BR_ERR_BAD_VERSION] = "BAD_VERSION",
	[BR_ERR_BAD_LENGTH] = "BAD_LENGTH",
	[BR_ERR_TOO_LARGE] = "TOO_LARGE",
	[BR_ERR_BAD_MAC] = "BAD_MAC",
	[BR_ERR_NO_RANDOM] = "NO_RANDOM",
	[BR_ERR_UNKNOWN_TYPE] = "UNKNOWN_TYPE",
	[BR_ERR_UNEXPECTED] = "UNEXPECTED",
	[BR_ERR_BAD_CCS] = "BAD_CCS",
	[BR_ERR_BAD_ALERT] = "BAD_ALERT",
	[BR_ERR_BAD_HANDSHAKE] = "BAD_HANDSHAKE",
	[BR_ERR_OVERSIZED_ID] = "OVERSIZED_ID",
	[BR_ERR_BAD_CIPHER_SUITE] = "BAD_CIPHER_SUITE",
	[BR_ERR_BAD_COMPRESSION] = "BAD_COMPRESSION",
	[BR_ERR_BAD_FRAGLEN] = "BAD_FRAGLEN",
	[BR_ERR_BAD_SECRENEG] = "BAD_SECRENEG",
	[BR_ERR_EXTRA_EXTENSION] = "EXTRA_EXTENSION",
	[BR_ERR_BAD_SNI] = "BAD_SNI",
	[BR_ERR_BAD_HELLO_DONE] = "BAD_HELLO_DONE",
	[BR_ERR_LIMIT_EXCEEDED] = "LIMIT_EXCEEDED",
	[BR_ERR_BAD_FINISHED] = "BAD_FINISHED",
	[BR_ERR_RESUME_MISMATCH] = "RESUME_MISMATCH",
	[BR_ERR_INVALID_ALGORITHM] = "INVALID_ALGORITHM",
	[BR_ERR_BAD_SIGNATURE] = "BAD_SIGNATURE",
	[BR_ERR_WRONG_KEY_USAGE] = "WRONG_KEY_USAGE",
	[BR_ERR_NO_CLIENT_AUTH] = "NO_CLIENT_AUTH",
	[BR_ERR_IO] = "IO",
	[BR_ERR_X509_INVALID_VALUE] = "X509_INVALID_VALUE",
	[BR_ERR_X509_TRUNCATED] = "X509_TRUNCATED",
	[BR_ERR_X509_EMPTY_CHAIN] = "X509_EMPTY_CHAIN",
	[BR_ERR_X509_INNER_TRUNC] = "X509_INNER_TRUNC",
	[BR_ERR_X509_BAD_TAG_CLASS] = "X509_BAD_TAG_CLASS",
	[BR_ERR_X509_BAD_TAG_VALUE] = "X509_BAD_TAG_VALUE",
	[BR_ERR_X509_INDEFINITE_LENGTH] = "X509_INDEFINITE_LENGTH",
	[BR_ERR_X509_EXTRA_ELEMENT] = "X509_EXTRA_ELEMENT",
	[BR_ERR_X509_UNEXPECTED] = "X509_UNEXPECTED",
	[BR_ERR_X509_NOT_CONSTRUCTED] = "X509_NOT_CONSTRUCTED",
	[BR_ERR_X509_NOT_PRIMITIVE] = "X509_NOT_PRIMITIVE",
	[BR_ERR_X509_PARTIAL_BYTE] = "X509_PARTIAL_BYTE",
	[BR_ERR_X509_BAD_BOOLEAN] = "X509_BAD_BOOLEAN",
	[BR_ERR_X509_OVERFLOW] = "X509_OVERFLOW",
	[BR_ERR_X509_BAD_DN] = "X509_BAD_DN",
	[BR_ERR_X509_BAD_TIME] = "X509_BAD_TIME",
	[BR_ERR_X509_UNSUPPORTED] = "X509_UNSUPPORTED",
	[BR_ERR_X509_LIMIT_EXCEEDED] = "X509_LIMIT_EXCEEDED",
	[BR_ERR_X509_WRONG_KEY_TYPE] = "X509_WRONG_KEY_TYPE",
	[BR_ERR_X509_BAD_SIGNATURE] = "X509_BAD_SIGNATURE",
	[BR_ERR_X509_TIME_UNKNOWN] = "X509_TIME_UNKNOWN",
	[BR_ERR_X509_EXPIRED] = "X509_EXPIRED",
	[BR_ERR_X509_DN_MISMATCH] = "X509_DN_MISMATCH",
	[BR_ERR_X509_BAD_SERVER_NAME] = "X509_BAD_SERVER_NAME",
	[BR_ERR_X509_CRITICAL_EXTENSION] = "X509_CRITICAL_EXTENSION",
	[BR_ERR_X509_NOT_CA] = "X509_NOT_CA",
	[BR_ERR_X509_FORBIDDEN_KEY_USAGE] = "X509_FORBIDDEN_KEY_USAGE",
	[BR_ERR_X509_WEAK_PUBLIC_KEY] = "X509_WEAK_PUBLIC_KEY",
	[BR_ERR_X509_NOT_TRUSTED] = "X509_NOT_TRUSTED",
};

/* TLS alert names (RFC 8446 section 6, the ones a TLS 1.2 peer sends). */
static const char *ferry__alert_name(int a)
{
	switch (a) {
	case 0: return "close_notify";
	case 10: return "unexpected_message";
	case 20: return "bad_record_mac";
	case 22: return "record_overflow";
	case 40: return "handshake_failure: no cipher suite or curve in common";
	case 42: return "bad_certificate";
	case 43: return "unsupported_certificate";
	case 44: return "certificate_revoked";
	case 45: return "certificate_expired";
	case 46: return "certificate_unknown";
	case 47: return "illegal_parameter";
	case 48: return "unknown_ca";
	case 49: return "access_denied";
	case 50: return "decode_error";
	case 51: return "decrypt_error";
	case 70: return "protocol_version: the server wants another TLS version";
	case 71: return "insufficient_security";
	case 80: return "internal_error";
	case 86: return "inappropriate_fallback";
	case 90: return "user_canceled";
	case 100: return "no_renegotiation";
	case 109: return "missing_extension";
	case 110: return "unsupported_extension";
	case 112: return "unrecognized_name";
	case 116: return "certificate_required";
	case 120: return "no_application_protocol";
	default: return "unknown alert";
	}
}

static const char *ferry__err_name(int e)
{
	if (e > 0 && (size_t)e < sizeof(ssl_errs) / sizeof(ssl_errs[0]) &&
	    ssl_errs[e])
		return ssl_errs[e];
	return "UNKNOWN";
}

static const char *ferry__err_hint(int e)
{
	switch (e) {
	case BR_ERR_X509_EXPIRED:
		return "certificate expired or not yet valid";
	case BR_ERR_X509_NOT_TRUSTED:
		return "issuer not among the trust anchors";
	case BR_ERR_X509_BAD_SERVER_NAME:
		return "certificate does not match the host";
	case BR_ERR_X509_BAD_SIGNATURE:
		return "bad certificate signature";
	case BR_ERR_X509_UNSUPPORTED:
		return "unsupported signature algorithm in the chain (SHA-1? see tls_allow_sha1)";
	case BR_ERR_X509_WEAK_PUBLIC_KEY:
		return "RSA key in the chain shorter than tls_min_rsa_bits";
	case BR_ERR_BAD_VERSION:
	case BR_ERR_UNSUPPORTED_VERSION:
		return "no common protocol version (ferry speaks TLS 1.2, and 1.0-1.1 only with tls_min_version)";
	case BR_ERR_UNKNOWN_TYPE:
	case BR_ERR_BAD_LENGTH:
		return "the peer does not speak TLS";
	case BR_ERR_IO:
		return "connection closed during the handshake";
	default:
		return "";
	}
}

/*
 * Did the server answer the hello with something that is not a TLS
 * record at all? A record starts with its type (20 to 23) and a version
 * whose major byte is 3; anything else (most often "HTTP/1.1 400") means
 * the port does not speak TLS, which says more than BearSSL's error.
 */
static bool ferry__not_tls(const struct ferry__tls *t, char *why, size_t whylen)
{
	char shown[sizeof(t->first) + 1];
	size_t n = 0;

	if (t->hs_done || !t->nfirst ||
	    (t->first[0] >= 20 && t->first[0] <= 23 &&
	     (t->nfirst < 2 || t->first[1] == 3)))
		return false;
	for (; n < t->nshow && t->first[n] != '\r' && t->first[n] != '\n'; n++)
		shown[n] = t->first[n] >= 0x20 && t->first[n] < 0x7f
				   ? (char)t->first[n] : '?';
	shown[n] = 0;
	snprintf(why, whylen,
		 "TLS: the server did not answer with TLS (it sent \"%s\"%s) for %s",
		 shown, memcmp(t->first, "HTTP/", t->nshow < 5 ? t->nshow : 5)
			? "" : ": plain HTTP on this port?", t->host);
	return true;
}

int ferry__tls_status(const struct ferry__tls *t, char *why, size_t whylen)
{
	const br_ssl_engine_context *eng = &t->cc.eng;
	int e = br_ssl_engine_last_error(eng);

	if (!(br_ssl_engine_current_state(eng) & BR_SSL_CLOSED))
		return 0;
	if (e == BR_ERR_OK)
		return 1;
	if (ferry__not_tls(t, why, whylen))
		return FERRY_ETLS_HANDSHAKE;
	if (e >= BR_ERR_RECV_FATAL_ALERT && e < BR_ERR_SEND_FATAL_ALERT) {
		int a = e - BR_ERR_RECV_FATAL_ALERT;

		if (!t->hs_done &&
		    ferry__tls_auth_why(&t->auth, a, ferry__alert_name(a), why,
					whylen))
			return FERRY_ETLS_HANDSHAKE;
		/* After the handshake, a handshake_failure is what OpenSSL
		 * sends when its request to renegotiate is refused. */
		snprintf(
			why, whylen,
			"TLS: fatal alert %d (%s) received from the server", a,
			a == 40 && t->hs_done
				? "handshake_failure after the handshake: a renegotiation the client refused? see tls_allow_renegotiation"
				: ferry__alert_name(a));
		return FERRY_ETLS_HANDSHAKE;
	}
	if (e >= BR_ERR_SEND_FATAL_ALERT) {
		snprintf(why, whylen, "TLS: sent fatal alert %d (%s)",
			 e - BR_ERR_SEND_FATAL_ALERT,
			 ferry__alert_name(e - BR_ERR_SEND_FATAL_ALERT));
		return FERRY_ETLS_HANDSHAKE;
	}
	snprintf(why, whylen, "TLS: %s%s%s (BearSSL error %d) for %s",
		 ferry__err_name(e), *ferry__err_hint(e) ? ": " : "",
		 ferry__err_hint(e), e, t->host);
	if (e >= BR_ERR_X509_OK && e < BR_ERR_RECV_FATAL_ALERT)
		return FERRY_ETLS_CERT;
	return FERRY_ETLS_HANDSHAKE;
}

/* ------------------------------------------------------------------ */
/* Entry points for the fuzzers (tls_fuzz.h)                             */

int ferry__tls_config_add_pem(struct ferry__tls_config *cfg, const char *pem,
			      size_t len)
{
	return ferry__pem_load(cfg, pem, len);
}

size_t ferry__tls_config_anchors(const struct ferry__tls_config *cfg)
{
	return cfg->ntas;
}

int ferry__tls_san_has_ip(const unsigned char *der, size_t len,
			  const unsigned char *ip, size_t iplen)
{
	return ferry__san_has_ip(der, len, ip, iplen);
}
