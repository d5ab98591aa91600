/*
 * test_error.c - ferry_strerror and ferry_strerrorname over both ranges:
 * ferry's own codes and negated errno values.
 */
#include "util.h"

Test(error, ferry_codes_have_names_and_words, .timeout = 5)
{
	for (int code = FERRY_EUNAVAIL; code >= FERRY_ETLS_CA; code--) {
		const char *name = ferry_strerrorname(code);
		const char *text = ferry_strerror(code);

		cr_assert_not_null(name);
		cr_assert_not_null(text);
		cr_assert(strncmp(name, "FERRY_E", 7) == 0, "code %d named %s",
			  code, name);
		cr_assert_str_neq(text, "unknown error", "code %d has no words", code);
		cr_assert_gt(strlen(text), 3);
	}
	cr_assert_str_eq(ferry_strerrorname(FERRY_EUNAVAIL), "FERRY_EUNAVAIL");
	cr_assert_str_eq(ferry_strerrorname(FERRY_EURL), "FERRY_EURL");
	cr_assert_str_eq(ferry_strerrorname(FERRY_ECANCELED), "FERRY_ECANCELED");
	cr_assert_str_eq(ferry_strerrorname(FERRY_EINVAL), "FERRY_EINVAL");
}

Test(error, errno_passthrough, .timeout = 5)
{
	cr_assert_str_eq(ferry_strerrorname(-ECONNRESET), "ECONNRESET");
	cr_assert_str_eq(ferry_strerrorname(-ECONNREFUSED), "ECONNREFUSED");
	cr_assert_str_eq(ferry_strerrorname(-ETIME), "ETIME");
	cr_assert_str_eq(ferry_strerrorname(-ECANCELED), "ECANCELED");
	cr_assert_str_eq(ferry_strerror(-ECONNRESET), strerror(ECONNRESET));
	cr_assert_str_eq(ferry_strerror(-ENOENT), strerror(ENOENT));
	/* The two "cancelled" codes are distinct. */
	cr_assert_neq(FERRY_ECANCELED, -ECANCELED);
	cr_assert_str_neq(ferry_strerrorname(FERRY_ECANCELED),
			  ferry_strerrorname(-ECANCELED));
}

Test(error, zero_and_unknown_codes, .timeout = 5)
{
	cr_assert_not_null(ferry_strerror(0));
	cr_assert_gt(strlen(ferry_strerror(0)), 0);
	cr_assert_str_eq(ferry_strerrorname(-99999), "unknown");
	cr_assert_str_eq(ferry_strerrorname(-10050), "unknown");
	cr_assert_str_eq(ferry_strerrorname(12345), "unknown");
	cr_assert_not_null(ferry_strerror(-99999));
	cr_assert_not_null(ferry_strerror(12345));
	cr_assert_not_null(ferry_strerror(-4095));
	cr_assert_not_null(ferry_strerrorname(-4095));
	cr_assert_not_null(ferry_strerror(-4096));
}
