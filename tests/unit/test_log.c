/* Tests common/log.c: levels, sinks, and that secrets never reach a sink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/log.h"

struct capture {
	char last[4096];
	int count;
	enum mb_log_level level;
};

static void capture_sink(enum mb_log_level level, const char *msg, void *ctx)
{
	struct capture *c = ctx;

	snprintf(c->last, sizeof(c->last), "%s", msg);
	c->level = level;
	c->count++;
}

static int setup(void **state)
{
	static struct capture c;

	memset(&c, 0, sizeof(c));
	mb_log_set_sink(capture_sink, &c);
	mb_log_set_level(MB_LOG_INFO);
	mb_log_clear_secrets();
	*state = &c;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	mb_log_set_sink(NULL, NULL);
	mb_log_clear_secrets();
	return 0;
}

static void test_levels(void **state)
{
	struct capture *c = *state;

	mb_log(MB_LOG_DEBUG, "hidden %d", 1);
	assert_int_equal(c->count, 0);
	mb_log(MB_LOG_WARN, "shown %d", 2);
	assert_int_equal(c->count, 1);
	assert_string_equal(c->last, "shown 2");
	assert_int_equal(c->level, MB_LOG_WARN);
	mb_log_set_level(MB_LOG_DEBUG);
	mb_log(MB_LOG_DEBUG, "now shown");
	assert_int_equal(c->count, 2);
}

static void test_parse_level(void **state)
{
	enum mb_log_level l;

	(void)state;
	assert_int_equal(mb_log_level_parse("debug", &l), 0);
	assert_int_equal(l, MB_LOG_DEBUG);
	assert_int_equal(mb_log_level_parse("loud", &l), MB_EINVAL);
	assert_string_equal(mb_log_level_name(MB_LOG_ERROR), "error");
}

static void test_secret_redacted(void **state)
{
	struct capture *c = *state;
	const char *token = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345";

	assert_int_equal(mb_log_add_secret(token), 0);
	mb_log(MB_LOG_ERROR, "GET https://hub/x?t=%s failed (%s)", token,
	       token);
	assert_int_equal(c->count, 1);
	assert_null(strstr(c->last, token));
	assert_null(strstr(c->last, "hf_AbCd"));
	assert_string_equal(c->last, "GET https://hub/x?t=*** failed (***)");
}

static void test_escapes_never_reach_a_sink(void **state)
{
	struct capture *c = *state;

	/* a worker's error text, quoted in a message */
	mb_log(MB_LOG_ERROR, "job 3: %s", "bad\x1b]0;owned\x07\x1b[2J\r\nnext");
	assert_null(strchr(c->last, 0x1b));
	assert_string_equal(c->last, "job 3: bad?]0;owned??[2J?\nnext");
}

static void test_secret_rules(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(mb_log_add_secret("abc"), MB_EINVAL);
	assert_int_equal(mb_log_add_secret("s3cr3t"), 0);
	assert_int_equal(mb_log_redact("xs3cr3ty", out, sizeof(out)), 5);
	assert_string_equal(out, "x***y");
	/* truncation keeps the output terminated and never leaks a prefix */
	assert_int_equal(mb_log_redact("s3cr3t-and-more", out, 3), 2);
	assert_string_equal(out, "**");
	mb_log_clear_secrets();
	mb_log_redact("s3cr3t", out, sizeof(out));
	assert_string_equal(out, "s3cr3t");
}

static void test_no_sink_is_silent(void **state)
{
	struct capture *c = *state;

	mb_log_set_sink(NULL, NULL);
	mb_log(MB_LOG_ERROR, "dropped");
	assert_int_equal(c->count, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_level, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_secret_redacted, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_escapes_never_reach_a_sink,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret_rules, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_sink_is_silent, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
