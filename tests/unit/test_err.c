/* Tests common/err.c: every code has a distinct name and message. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"

static const int codes[] = {
#define CODE(name, num, msg) num,
	MB_ERR_MAP(CODE)
#undef CODE
};

static void test_messages_distinct(void **state)
{
	size_t i, j, n = sizeof(codes) / sizeof(codes[0]);

	(void)state;
	for (i = 0; i < n; i++) {
		assert_true(codes[i] <= 0);
		assert_string_not_equal(mb_strerror(codes[i]), "unknown error");
		assert_string_not_equal(mb_errname(codes[i]), "MB_UNKNOWN");
		for (j = i + 1; j < n; j++) {
			assert_int_not_equal(codes[i], codes[j]);
			assert_string_not_equal(mb_strerror(codes[i]),
						mb_strerror(codes[j]));
		}
	}
}

static void test_pinned_numbers(void **state)
{
	(void)state;
	/* Codes travel in the protocol and the database: never renumbered. */
	assert_int_equal(MB_OK, 0);
	assert_int_equal(MB_ENOSPC, -6);
	assert_int_equal(MB_ECHECKSUM, -10);
	assert_int_equal(MB_EHOSTKEY, -15);
	assert_string_equal(mb_errname(MB_ENOSPC), "MB_ENOSPC");
	assert_string_equal(mb_strerror(MB_ENOSPC), "no space left on device");
}

static void test_unknown(void **state)
{
	(void)state;
	assert_string_equal(mb_strerror(-9999), "unknown error");
	assert_string_equal(mb_strerror(7), "unknown error");
	assert_string_equal(mb_errname(-9999), "MB_UNKNOWN");
}

static void test_from_errno(void **state)
{
	(void)state;
	assert_int_equal(mb_err_from_errno(0), MB_OK);
	assert_int_equal(mb_err_from_errno(ENOSPC), MB_ENOSPC);
	assert_int_equal(mb_err_from_errno(EDQUOT), MB_ENOSPC);
	assert_int_equal(mb_err_from_errno(ENOENT), MB_ENOENT);
	assert_int_equal(mb_err_from_errno(ENOMEM), MB_ENOMEM);
	assert_int_equal(mb_err_from_errno(EACCES), MB_EPERM);
	assert_int_equal(mb_err_from_errno(ECONNRESET), MB_ENETWORK);
	assert_int_equal(mb_err_from_errno(EXDEV), MB_EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_messages_distinct),
		cmocka_unit_test(test_pinned_numbers),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_from_errno),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
