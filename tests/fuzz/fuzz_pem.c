/*
 * fuzz_pem.c - libFuzzer target: the trust-anchor loader (http/tls.c:
 * PEM objects decoded by BearSSL, each CERTIFICATE turned into an anchor
 * whose name and key tls.c copies), through ferry__tls_config_add_pem.
 *
 * Input: byte 0 = mode, then the bytes.
 *   even mode: the bytes are a CA file's text as they are. The load must
 *     not fail (no -ENOMEM here), the anchor count must equal what it
 *     returned, and loading the same text again adds as many again.
 *   odd mode: the bytes are one DER certificate; the target writes it
 *     twice as a CERTIFICATE in PEM, around a PRIVATE KEY object, with the
 *     base64 line width (64, 76, 65 or 1), line ending (LF or CRLF), the
 *     final newline (present or not) and text before the first object
 *     chosen by the mode byte: the lax forms of RFC 7468 a parser should
 *     take. Exactly two anchors must
 *     be added if BearSSL's X.509 decoder reads a key from the DER, else
 *     none.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bearssl.h>

#include "ferry/http.h"
#include "tls_fuzz.h"

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "fuzz_pem: %s:%d: %s\n", __FILE__,  \
				__LINE__, #cond);                           \
			abort();                                            \
		}                                                           \
	} while (0)

static struct ferry__tls_config *config(void)
{
	/* insecure with no file: nothing loaded, the system bundle not read */
	struct ferry__tls_settings set = { .insecure = true };
	struct ferry__tls_config *cfg;
	char why[128];

	CHECK(ferry__tls_config_new(&set, &cfg, why, sizeof(why)) == 0);
	CHECK(ferry__tls_config_anchors(cfg) == 0);
	return cfg;
}

struct text {
	char *p;
	size_t len, cap;
};

static void put(struct text *t, const char *s, size_t n)
{
	if (t->len + n > t->cap) {
		t->cap = (t->len + n) * 2 + 64;
		t->p = realloc(t->p, t->cap);
		CHECK(t->p);
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
}

static void puts_(struct text *t, const char *s)
{
	put(t, s, strlen(s));
}

static void pem_object(struct text *t, const char *name, const uint8_t *der,
		       size_t len, size_t width, const char *eol)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t col = 0;

	puts_(t, "-----BEGIN ");
	puts_(t, name);
	puts_(t, "-----");
	puts_(t, eol);
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)der[i] << 16;
		char q[4];

		if (i + 1 < len)
			v |= (uint32_t)der[i + 1] << 8;
		if (i + 2 < len)
			v |= der[i + 2];
		q[0] = b64[v >> 18];
		q[1] = b64[(v >> 12) & 63];
		q[2] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		q[3] = i + 2 < len ? b64[v & 63] : '=';
		for (int k = 0; k < 4; k++) {
			put(t, &q[k], 1);
			if (++col == width) {
				puts_(t, eol);
				col = 0;
			}
		}
	}
	if (col)
		puts_(t, eol);
	puts_(t, "-----END ");
	puts_(t, name);
	puts_(t, "-----");
}

static bool decodes(const uint8_t *der, size_t len)
{
	br_x509_decoder_context dc;

	br_x509_decoder_init(&dc, NULL, NULL);
	br_x509_decoder_push(&dc, der, len);
	return br_x509_decoder_get_pkey(&dc) != NULL;
}

static void fuzz_wrapped(uint8_t mode, const uint8_t *der, size_t len)
{
	static const size_t widths[4] = { 64, 76, 65, 1 };
	const char *eol = mode & 2 ? "\r\n" : "\n";
	size_t width = widths[(mode >> 2) & 3];
	struct ferry__tls_config *cfg = config();
	struct text t = { 0 };
	int want = decodes(der, len) ? 2 : 0;
	int got;

	if (mode & 16)
		puts_(&t, "Some text before the first object");
	if (mode & 16)
		puts_(&t, eol);
	pem_object(&t, "CERTIFICATE", der, len, width, eol);
	puts_(&t, eol);
	pem_object(&t, "PRIVATE KEY", der, len > 32 ? 32 : len, width, eol);
	puts_(&t, eol);
	pem_object(&t, mode & 32 ? "X509 CERTIFICATE" : "CERTIFICATE", der,
		   len, width, eol);
	if (!(mode & 64))
		puts_(&t, eol);	/* else the file ends right after "-----" */
	got = ferry__tls_config_add_pem(cfg, t.p, t.len);
	if (got != want) {
		fprintf(stderr, "fuzz_pem: %d anchors from the PEM text, "
			"want %d (%zu bytes of DER)\n", got, want, len);
		abort();
	}
	CHECK(ferry__tls_config_anchors(cfg) == (size_t)want);
	ferry__tls_config_free(cfg);
	free(t.p);
}

static void fuzz_text(const uint8_t *p, size_t len)
{
	struct ferry__tls_config *cfg = config();
	int once = ferry__tls_config_add_pem(cfg, (const char *)p, len);

	CHECK(once >= 0);
	CHECK(ferry__tls_config_anchors(cfg) == (size_t)once);
	CHECK(ferry__tls_config_add_pem(cfg, (const char *)p, len) == once);
	CHECK(ferry__tls_config_anchors(cfg) == 2 * (size_t)once);
	ferry__tls_config_free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (len < 1)
		return 0;
	if (data[0] & 1)
		fuzz_wrapped(data[0], data + 1, len - 1);
	else
		fuzz_text(data + 1, len - 1);
	return 0;
}
