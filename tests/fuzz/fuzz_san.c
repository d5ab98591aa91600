/*
 * fuzz_san.c - libFuzzer target: the iPAddress subjectAltName check that
 * tls.c makes for IP-literal hosts (its own small DER walk over the
 * leaf, reached through ferry__tls_san_has_ip).
 *
 * Input: byte 0 = mode; bit 1 picks an IPv4 (4 bytes) or IPv6 (16 bytes)
 * address, which the next bytes give.
 *   even mode: the rest is the certificate, as it is. The answer must be
 *     -1, 0 or 1, and 1 only if the DER holds [7] len address somewhere.
 *   odd mode: the rest steers a generator that writes a certificate
 *     shaped as X.509 (version, serial, names, ..., extensions, then
 *     signature), its extensions and their GeneralNames (DNS names, URIs,
 *     iPAddress entries of any length, otherName), a critical flag or not,
 *     lengths in short or long form. The generator knows the answer: 1
 *     iff the first subjectAltName lists the address; it must match.
 * The certificate is read from an exact-size heap block: ASan sees any
 * read past it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_fuzz.h"

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "fuzz_san: %s:%d: %s\n", __FILE__,  \
				__LINE__, #cond);                           \
			abort();                                            \
		}                                                           \
	} while (0)

struct src {
	const uint8_t *p;
	size_t left;
};

static unsigned next(struct src *s)
{
	if (!s->left)
		return 0;
	s->left--;
	return *s->p++;
}

struct der {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct der *d, const void *s, size_t n)
{
	if (d->len + n > d->cap) {
		d->cap = (d->len + n) * 2 + 64;
		d->p = realloc(d->p, d->cap);
		CHECK(d->p);
	}
	if (n)
		memcpy(d->p + d->len, s, n);
	d->len += n;
}

/* Append tag, length (long form when asked or needed) and content. */
static void tlv(struct der *d, uint8_t tag, const struct der *c, bool lng)
{
	uint8_t h[6] = { tag };
	size_t n = 1;

	if (c->len < 128 && !lng) {
		h[n++] = (uint8_t)c->len;
	} else if (c->len < 256) {
		h[n++] = 0x81;
		h[n++] = (uint8_t)c->len;
	} else {
		h[n++] = 0x82;
		h[n++] = (uint8_t)(c->len >> 8);
		h[n++] = (uint8_t)c->len;
	}
	put(d, h, n);
	put(d, c->p, c->len);
}

static void tlv_bytes(struct der *d, uint8_t tag, const void *s, size_t n,
		      bool lng)
{
	struct der c = { (uint8_t *)(uintptr_t)s, n, n };

	tlv(d, tag, &c, lng);
}

/* Random content of up to @max bytes from the source. */
static void filler(struct der *d, uint8_t tag, struct src *s, size_t max)
{
	uint8_t buf[64];
	size_t n = next(s) % (max + 1);

	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)next(s);
	tlv_bytes(d, tag, buf, n, false);
}

/* The GeneralNames of one SAN; returns whether @ip is among them. */
static bool general_names(struct der *d, struct src *s, const uint8_t *ip,
			  size_t iplen)
{
	bool found = false;
	unsigned n = next(s) % 6;

	for (unsigned i = 0; i < n; i++) {
		unsigned c = next(s);
		uint8_t addr[17];
		size_t alen;

		switch (c % 4) {
		case 0:		/* iPAddress: the address, another, odd length */
			alen = (c >> 2) % 3 == 0 ? iplen : (c >> 2) % 3 == 1 ?
			       (iplen == 4 ? 16 : 4) : (c >> 4) % 18;
			for (size_t k = 0; k < alen; k++)
				addr[k] = k < iplen && (c & 0x40) ? ip[k] :
					  (uint8_t)next(s);
			found |= alen == iplen && !memcmp(addr, ip, iplen);
			tlv_bytes(d, 0x87, addr, alen, c & 0x80);
			break;
		case 1:
			filler(d, 0x82, s, 40);	/* dNSName */
			break;
		case 2:
			filler(d, 0x86, s, 40);	/* URI */
			break;
		default:
			filler(d, 0xa0, s, 20);	/* otherName (content junk) */
			break;
		}
	}
	return found;
}

static bool extensions(struct der *d, struct src *s, const uint8_t *ip,
		       size_t iplen)
{
	static const uint8_t san_oid[] = { 0x55, 0x1d, 0x11 };
	static const uint8_t bc_oid[] = { 0x55, 0x1d, 0x13 };
	static const uint8_t critical[] = { 0xff };
	bool seen_san = false, want = false;
	unsigned n = 1 + next(s) % 4;

	for (unsigned i = 0; i < n; i++) {
		struct der ext = { 0 }, names = { 0 }, seq = { 0 };
		unsigned c = next(s);
		bool found;

		if (c % 3 == 0) {
			tlv_bytes(&ext, 0x06, bc_oid, sizeof(bc_oid), false);
			filler(&ext, 0x04, s, 10);
		} else {
			tlv_bytes(&ext, 0x06, san_oid, sizeof(san_oid), false);
			if (c & 4)
				tlv_bytes(&ext, 0x01, critical, 1, false);
			found = general_names(&names, s, ip, iplen);
			tlv(&seq, 0x30, &names, c & 8);
			tlv(&ext, 0x04, &seq, c & 16);
			if (!seen_san)
				want = found;
			seen_san = true;
		}
		tlv(d, 0x30, &ext, c & 32);
		free(ext.p);
		free(names.p);
		free(seq.p);
	}
	return want;
}

/* Certificate { tbs { [0] version, serial, sigalg, issuer, validity,
 * subject, spki, [3] { SEQUENCE OF Extension } }, sigalg, signature } */
static bool certificate(struct der *out, struct src *s, const uint8_t *ip,
			size_t iplen)
{
	static const uint8_t v3[] = { 0x02, 0x01, 0x02 };
	struct der tbs = { 0 }, exts = { 0 }, seq = { 0 }, cert = { 0 };
	bool want;

	if (next(s) & 1)
		tlv_bytes(&tbs, 0xa0, v3, sizeof(v3), false);
	filler(&tbs, 0x02, s, 20);		/* serial */
	filler(&tbs, 0x30, s, 12);		/* signature algorithm */
	filler(&tbs, 0x30, s, 60);		/* issuer */
	filler(&tbs, 0x30, s, 30);		/* validity */
	filler(&tbs, 0x30, s, 60);		/* subject */
	filler(&tbs, 0x30, s, 64);		/* subjectPublicKeyInfo */
	if (next(s) & 1)
		filler(&tbs, 0x81, s, 8);	/* issuerUniqueID */
	want = extensions(&exts, s, ip, iplen);
	tlv(&seq, 0x30, &exts, false);
	tlv(&tbs, 0xa3, &seq, false);
	tlv(&cert, 0x30, &tbs, true);
	filler(&cert, 0x30, s, 12);
	filler(&cert, 0x03, s, 64);
	tlv(out, 0x30, &cert, true);
	free(tbs.p);
	free(exts.p);
	free(seq.p);
	free(cert.p);
	return want;
}

static int check(const uint8_t *der, size_t len, const uint8_t *ip,
		 size_t iplen)
{
	uint8_t *copy = malloc(len ? len : 1);
	int r;

	CHECK(copy);
	if (len)
		memcpy(copy, der, len);
	r = ferry__tls_san_has_ip(copy, len, ip, iplen);
	CHECK(r >= -1 && r <= 1);
	/* a yes needs the address in there (after [7] and its length,
	 * which may be in long form: not searched for) */
	if (r == 1)
		CHECK(memmem(copy, len, ip, iplen) != NULL);
	free(copy);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	uint8_t ip[16] = { 0 };
	size_t iplen;
	struct src s;

	if (len < 1)
		return 0;
	iplen = data[0] & 2 ? 16 : 4;
	s = (struct src){ data + 1, len - 1 };
	for (size_t i = 0; i < iplen; i++)
		ip[i] = (uint8_t)next(&s);
	if (data[0] & 1) {
		struct der d = { 0 };
		bool want = certificate(&d, &s, ip, iplen);
		int got = check(d.p, d.len, ip, iplen);

		if (got != want) {
			fprintf(stderr, "fuzz_san: san_has_ip says %d, the "
				"certificate %s the address\n", got,
				want ? "lists" : "does not list");
			abort();
		}
		free(d.p);
	} else {
		check(s.p, s.left, ip, iplen);
	}
	return 0;
}
