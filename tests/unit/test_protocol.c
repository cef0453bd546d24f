/* Tests proto/protocol.c: names a worker may give, and the step result a
 * worker writes, read member by member with the exact names and types
 * the protocol gives them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "proto/protocol.h"

static void test_names(void **state)
{
	(void)state;
	assert_true(mb_proto_name_ok("quantize-Q4_K_M"));
	assert_false(mb_proto_name_ok("../x"));
	assert_false(mb_proto_name_ok("-rf"));
	assert_false(mb_proto_name_ok(""));
	assert_true(mb_proto_step_verb_ok("convert"));
	assert_false(mb_proto_step_verb_ok("cleanup"));
	assert_true(mb_proto_env_name_ok("HF_TOKEN"));
	assert_false(mb_proto_env_name_ok("LD_PRELOAD=x"));
}

static void test_step_result(void **state)
{
	static const char good[] =
		"{\"v\":1,\"ok\":false,\"exit\":3,\"cancelled\":false,"
		"\"seconds\":71.25,\"peak_rss\":79691776,\"error\":\"no space\"}";
	struct mb_step_result r;
	char err[256];

	(void)state;
	assert_int_equal(mb_step_result_parse(good, strlen(good), &r, err,
					      sizeof(err)), 0);
	assert_false(r.ok);
	assert_int_equal(r.exit, 3);
	assert_true(r.seconds == 71.25);
	assert_int_equal(r.peak_rss, 79691776);
	assert_string_equal(r.error, "no space");
	assert_int_equal(mb_step_exit_err(r.exit), MB_EUNSUPPORTED);
	assert_int_equal(mb_step_exit_err(1), MB_ENETWORK);
	/* an older worker without peak_rss: still read */
	assert_int_equal(mb_step_result_parse("{\"ok\":true,\"exit\":0}",
					      strlen("{\"ok\":true,\"exit\":0}"),
					      &r, err, sizeof(err)), 0);
	assert_true(r.ok);
	assert_int_equal(r.peak_rss, 0);
}

static void test_step_result_hostile(void **state)
{
	static const char *const bad[] = {
		"",
		"[]",
		"{\"OK\":true}",			/* names are case-sensitive */
		"{\"ok\":1}",			/* not a boolean */
		"{\"ok\":false,\"exit\":1e300}",	/* no int */
		"{\"ok\":false,\"exit\":2.5}",
		"{\"ok\":false}",
		"{\"ok\":true,\"exit\":0}{}",
	};
	struct mb_step_result r;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_not_equal(mb_step_result_parse(bad[i], strlen(bad[i]),
							  &r, err, sizeof(err)), 0);
		assert_true(err[0] != '\0');
	}
	/* NaN and out-of-range figures are not believed */
	{
		static const char odd[] = "{\"ok\":true,\"seconds\":-5,"
					  "\"peak_rss\":-1}";

		assert_int_equal(mb_step_result_parse(odd, strlen(odd), &r, err,
						      sizeof(err)), 0);
	}
	assert_true(r.seconds == 0);
	assert_int_equal(r.peak_rss, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_step_result),
		cmocka_unit_test(test_step_result_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
