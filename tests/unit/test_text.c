/* Tests common/text.c: strings from outside lose the control characters
 * a terminal would obey (escape sequences, C1 controls) and keep the
 * rest, UTF-8 included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/text.h"

static void test_escapes_made_harmless(void **state)
{
	char out[128], s[128];

	(void)state;
	/* a title change, a clear screen, a cursor move */
	mb_printable(out, sizeof(out), "a\x1b]0;pwned\x07" "b\x1b[2J\x1b[H!");
	assert_null(strchr(out, 0x1b));
	assert_null(strchr(out, 0x07));
	assert_string_equal(out, "a?]0;pwned?b?[2J?[H!");
	/* the 8-bit CSI, as UTF-8 U+009B; DEL; CR and newline */
	mb_printable(out, sizeof(out), "x\xc2\x9b" "31my\x7f\r\nz");
	assert_string_equal(out, "x?31my???z");
	/* text in any script stays */
	mb_printable(out, sizeof(out), "mod\xc3\xa8le \xe6\xa8\xa1\xe5\x9e\x8b");
	assert_string_equal(out, "mod\xc3\xa8le \xe6\xa8\xa1\xe5\x9e\x8b");
	/* an ESC inside what a lead byte claims is a sequence: the bytes
	 * that are no UTF-8 become '?' one by one, the ESC with them */
	mb_printable(out, sizeof(out), "qwen2\xff\xfe\x1b[31m\xf0\x1b[0m");
	assert_null(strchr(out, 0x1b));
	assert_string_equal(out, "qwen2???[31m??[0m");
	mb_printable(out, sizeof(out), "a\xe6\xa8\x1b[2Jb");
	assert_string_equal(out, "a???[2Jb");
	/* stray continuations, overlong forms, surrogates, a cut end */
	mb_printable(out, sizeof(out), "\x80\xc0\xaf\xed\xa0\x80\xe6\xa8");
	assert_string_equal(out, "????????");
	/* newlines kept where asked */
	snprintf(s, sizeof(s), "line1\n\x1b[31mline2");
	assert_string_equal(mb_sanitize(s, 1), "line1\n?[31mline2");
	assert_string_equal(mb_sanitize(s, 0), "line1??[31mline2");
}

static void test_cut_at_a_character(void **state)
{
	char out[6];

	(void)state;
	/* "ab" + a 3-byte character + "c": 5 bytes of room hold "ab" and
	 * the character, not half of the next */
	mb_printable(out, sizeof(out), "ab\xe6\xa8\xa1" "cd");
	assert_string_equal(out, "ab\xe6\xa8\xa1");
	mb_printable(out, 4, "ab\xe6\xa8\xa1");
	assert_string_equal(out, "ab");
	mb_printable_n(out, sizeof(out), "a\0b", 3, 0);
	assert_string_equal(out, "a?b");
}

/* A line a program printed loses its line end and trailing blanks, and
 * nothing else. */
static void test_trim_end(void **state)
{
	char a[] = "bash: line 1: /x/mibera-worker: No such file\r\n \n";
	char b[] = "  kept  inside\tx";
	char c[] = "\n\n";

	(void)state;
	assert_string_equal(mb_trim_end(a),
			    "bash: line 1: /x/mibera-worker: No such file");
	assert_string_equal(mb_trim_end(b), "  kept  inside\tx");
	assert_string_equal(mb_trim_end(c), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escapes_made_harmless),
		cmocka_unit_test(test_cut_at_a_character),
		cmocka_unit_test(test_trim_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
