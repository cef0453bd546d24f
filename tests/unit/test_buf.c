/* Tests common/buf.c: growth, the cap, formatting, failure atomicity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fault.h"

static void test_grow_and_nul(void **state)
{
	struct mb_buf b;
	int i;

	(void)state;
	mb_buf_init(&b, 1 << 20);
	for (i = 0; i < 1000; i++)
		assert_int_equal(mb_buf_add(&b, "abc", 3), 0);
	assert_int_equal(b.len, 3000);
	assert_int_equal(b.data[b.len], '\0');
	assert_memory_equal(b.data + 2997, "abc", 3);
	mb_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	mb_buf_release(&b);
	mb_buf_release(NULL);
}

static void test_cap_is_hard(void **state)
{
	struct mb_buf b;

	(void)state;
	mb_buf_init(&b, 10);
	assert_int_equal(mb_buf_adds(&b, "0123456789"), 0);
	assert_int_equal(mb_buf_add(&b, "x", 1), MB_ETOOBIG);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "0123456789");
	/* the allocation never overshoots the cap by more than the NUL */
	assert_true(b.alloc <= 11);
	/* a size that would overflow len + n is refused, not wrapped */
	assert_int_equal(mb_buf_reserve(&b, SIZE_MAX), MB_ETOOBIG);
	mb_buf_release(&b);
}

/* A failed append fails every later one: no text with a piece missing
 * from its middle, such as JSON that parses but says something else. */
static void test_failure_is_sticky(void **state)
{
	struct mb_buf b;

	(void)state;
	mb_buf_init(&b, 16);
	assert_int_equal(mb_buf_adds(&b, "{\"a\":"), 0);
	assert_int_equal(mb_buf_adds(&b, "\"a value too long\""), MB_ETOOBIG);
	assert_int_equal(mb_buf_error(&b), MB_ETOOBIG);
	/* the closing brace would make "{"a":}"... or worse, valid JSON */
	assert_int_equal(mb_buf_adds(&b, "1}"), MB_ETOOBIG);
	assert_int_equal(mb_buf_addf(&b, "%d", 1), MB_ETOOBIG);
	assert_string_equal(b.data, "{\"a\":");
	/* a reset starts afresh */
	mb_buf_reset(&b);
	assert_int_equal(mb_buf_error(&b), 0);
	assert_int_equal(mb_buf_adds(&b, "{}"), 0);
	assert_string_equal(b.data, "{}");
	mb_buf_release(&b);
}

static void test_addf(void **state)
{
	struct mb_buf b;

	(void)state;
	mb_buf_init(&b, 64);
	assert_int_equal(mb_buf_addf(&b, "%s=%d", "n", 42), 0);
	assert_int_equal(mb_buf_addf(&b, ";%05.1f", 2.5), 0);
	assert_string_equal(b.data, "n=42;002.5");
	/* formatted text that would pass the cap leaves the buffer alone */
	assert_int_equal(mb_buf_addf(&b, "%080d", 1), MB_ETOOBIG);
	assert_string_equal(b.data, "n=42;002.5");
	mb_buf_release(&b);
}

static void test_enomem_leaves_buffer(void **state)
{
	struct mb_buf b;

	(void)state;
	mb_buf_init(&b, 1 << 20);
	assert_int_equal(mb_buf_adds(&b, "kept"), 0);
	mb_fault_set(MB_FAULT_ALLOC, 0, 1, 12 /* ENOMEM */);
	assert_int_equal(mb_buf_add(&b, "x", 200), MB_ENOMEM);
	mb_fault_clear();
	assert_string_equal(b.data, "kept");
	assert_int_equal(b.len, 4);
	mb_buf_release(&b);
}

static void test_detach(void **state)
{
	struct mb_buf b;
	size_t len = 99;
	char *s;

	(void)state;
	mb_buf_init(&b, 100);
	s = mb_buf_detach(&b, &len);
	assert_non_null(s);
	assert_string_equal(s, "");
	assert_int_equal(len, 0);
	free(s);
	assert_int_equal(mb_buf_adds(&b, "hello"), 0);
	s = mb_buf_detach(&b, &len);
	assert_string_equal(s, "hello");
	assert_int_equal(len, 5);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grow_and_nul),
		cmocka_unit_test(test_cap_is_hard),
		cmocka_unit_test(test_addf),
		cmocka_unit_test(test_failure_is_sticky),
		cmocka_unit_test(test_enomem_leaves_buffer),
		cmocka_unit_test(test_detach),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
