/* Tests common/json.c: typed getters refuse wrong types and ranges;
 * quoting round-trips through a parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"

static void test_get_u64(void **state)
{
	const char *text = "{\"a\":5,\"neg\":-1,\"frac\":1.5,\"big\":1e20,"
			   "\"s\":\"5\",\"max\":9007199254740992}";
	cJSON *doc = mb_json_parse(text, strlen(text));
	uint64_t v;

	(void)state;
	assert_non_null(doc);
	assert_int_equal(mb_json_get_u64(doc, "a", 10, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(mb_json_get_u64(doc, "a", 4, &v), MB_EJSON);
	assert_int_equal(mb_json_get_u64(doc, "neg", 10, &v), MB_EJSON);
	assert_int_equal(mb_json_get_u64(doc, "frac", 10, &v), MB_EJSON);
	assert_int_equal(mb_json_get_u64(doc, "big", UINT64_MAX, &v), MB_EJSON);
	assert_int_equal(mb_json_get_u64(doc, "s", 10, &v), MB_EJSON);
	assert_int_equal(mb_json_get_u64(doc, "none", 10, &v), MB_ENOENT);
	assert_int_equal(mb_json_get_u64(doc, "max", UINT64_MAX, &v), 0);
	assert_int_equal(v, MB_JSON_MAX_INT);
	cJSON_Delete(doc);
}

static void test_get_str(void **state)
{
	const char *text = "{\"s\":\"hello\",\"n\":1}";
	cJSON *doc = mb_json_parse(text, strlen(text));
	const char *s;

	(void)state;
	assert_int_equal(mb_json_get_str(doc, "s", 5, &s), 0);
	assert_string_equal(s, "hello");
	assert_int_equal(mb_json_get_str(doc, "s", 4, &s), MB_EJSON);
	assert_int_equal(mb_json_get_str(doc, "n", 10, &s), MB_EJSON);
	assert_int_equal(mb_json_get_str(doc, "x", 10, &s), MB_ENOENT);
	cJSON_Delete(doc);
}

static void test_parse_length_bounded(void **state)
{
	const char text[] = "{\"a\":1}garbage";

	(void)state;
	/* only the first len bytes count: no reading past them */
	cJSON *doc = mb_json_parse(text, 7);
	assert_non_null(doc);
	cJSON_Delete(doc);
	assert_null(mb_json_parse(text, 5));
	assert_null(mb_json_parse(text, sizeof(text) - 1));
}

static void test_quote_round_trip(void **state)
{
	const char *nasty = "a\"b\\c\nd\te\x01f/\xc3\xa9";
	struct mb_buf b;
	cJSON *doc;

	(void)state;
	mb_buf_init(&b, 1024);
	assert_int_equal(mb_buf_adds(&b, "{\"k\":"), 0);
	assert_int_equal(mb_json_quote(&b, nasty), 0);
	assert_int_equal(mb_buf_adds(&b, "}"), 0);
	doc = mb_json_parse(b.data, b.len);
	assert_non_null(doc);
	assert_string_equal(cJSON_GetObjectItem(doc, "k")->valuestring, nasty);
	cJSON_Delete(doc);
	mb_buf_release(&b);
}

/* JSON is UTF-8: a string that is not (half a character from a token, a
 * hostile name) is quoted with U+FFFD for each bad byte, the good
 * characters around it kept. */
static void test_quote_makes_utf8(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "ok \xe2\x82\xac \xf0\x9f\x98\x80", "\"ok \xe2\x82\xac \xf0\x9f\x98\x80\"" },
		{ "half \xe2\x82", "\"half \\ufffd\\ufffd\"" },
		{ "\xff\xfe", "\"\\ufffd\\ufffd\"" },
		{ "overlong \xc0\xaf", "\"overlong \\ufffd\\ufffd\"" },
		{ "surrogate \xed\xa0\x80", "\"surrogate \\ufffd\\ufffd\\ufffd\"" },
		{ "past U+10FFFF \xf4\x90\x80\x80", "\"past U+10FFFF \\ufffd\\ufffd\\ufffd\\ufffd\"" },
		{ "\xc3\xa9\xc3", "\"\xc3\xa9\\ufffd\"" },
	};
	struct mb_buf b;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mb_buf_init(&b, 1024);
		assert_int_equal(mb_json_quote(&b, cases[i].in), 0);
		assert_int_equal(mb_buf_add(&b, "", 1), 0);
		assert_string_equal(b.data, cases[i].out);
		mb_buf_release(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_u64),
		cmocka_unit_test(test_get_str),
		cmocka_unit_test(test_parse_length_bounded),
		cmocka_unit_test(test_quote_round_trip),
		cmocka_unit_test(test_quote_makes_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
