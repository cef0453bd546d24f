/* Tests common/sha256.c: known vectors, files across block boundaries
 * checked against coreutils' sha256sum, hex, and read errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/fault.h"
#include "common/sha256.h"
#include "th.h"

static void hex_of(const void *data, size_t n, char hex[MB_SHA256_HEX])
{
	uint8_t d[MB_SHA256_LEN];

	assert_int_equal(mb_sha256_buf(data, n, d), 0);
	mb_sha256_hex(d, hex);
}

static void test_vectors(void **state)
{
	char hex[MB_SHA256_HEX];
	struct mb_sha256 h;
	uint8_t d[MB_SHA256_LEN];
	char *a;
	int i;

	(void)state;
	hex_of("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb924"
				 "27ae41e4649b934ca495991b7852b855");
	hex_of("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
				 "b00361a396177a9cb410ff61f20015ad");
	/* FIPS 180-2: one million 'a', fed in uneven pieces */
	a = malloc(1000000);
	memset(a, 'a', 1000000);
	assert_int_equal(mb_sha256_init(&h), 0);
	for (i = 0; i < 1000000; i += 999)
		assert_int_equal(mb_sha256_update(&h, a + i,
						  i + 999 > 1000000 ? 1000000 - i
								    : 999),
				 0);
	assert_int_equal(mb_sha256_final(&h, d), 0);
	mb_sha256_hex(d, hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67"
				 "f1809a48a497200e046d39ccc7112cd0");
	free(a);
	mb_sha256_release(&h); /* safe after final */
	mb_sha256_release(NULL);
}

static void test_hex_parse(void **state)
{
	uint8_t d[MB_SHA256_LEN], e[MB_SHA256_LEN];
	char hex[MB_SHA256_HEX];
	int i;

	(void)state;
	for (i = 0; i < MB_SHA256_LEN; i++)
		d[i] = (uint8_t)(i * 37 + 1);
	mb_sha256_hex(d, hex);
	assert_int_equal(mb_sha256_parse(hex, e), 0);
	assert_memory_equal(d, e, MB_SHA256_LEN);
	hex[5] = hex[5] >= 'a' ? (char)(hex[5] - 'a' + 'A') : hex[5];
	assert_int_equal(mb_sha256_parse(hex, e), 0); /* upper case is fine */
	hex[5] = 'g';
	assert_int_equal(mb_sha256_parse(hex, e), MB_EFORMAT);
	assert_int_equal(mb_sha256_parse("abcd", e), MB_EFORMAT);
	mb_sha256_hex(d, hex);
	{
		char longer[80];

		snprintf(longer, sizeof(longer), "%s0", hex);
		assert_int_equal(mb_sha256_parse(longer, e), MB_EFORMAT);
	}
}

/* sha256sum, the system's own tool, is the oracle for file hashing. */
static void sha256sum_of(const char *path, char hex[MB_SHA256_HEX])
{
	char cmd[700], line[200];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "sha256sum '%s'", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(line, sizeof(line), p));
	assert_int_equal(pclose(p), 0);
	memcpy(hex, line, 64);
	hex[64] = '\0';
}

static void test_files_across_blocks(void **state)
{
	/* the reader works in 4 MiB blocks: sizes around the boundaries */
	static const size_t sizes[] = { 0, 1, 4194303, 4194304, 4194305,
					8388608, 8388608 + 4096 + 7 };
	char dir[512], path[600], want[MB_SHA256_HEX], got[MB_SHA256_HEX];
	uint8_t d[MB_SHA256_LEN];
	uint64_t size;
	size_t i, j;
	char *data;

	(void)state;
	assert_int_equal(th_tmpdir("sha", dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/f", dir);
	data = malloc(sizes[6]);
	for (j = 0; j < sizes[6]; j++)
		data[j] = (char)(j * 2654435761u >> 13);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		assert_int_equal(th_write_file(path, data, sizes[i]), 0);
		assert_int_equal(mb_sha256_file(path, d, &size), 0);
		assert_int_equal(size, sizes[i]);
		mb_sha256_hex(d, got);
		sha256sum_of(path, want);
		assert_string_equal(got, want);
	}
	free(data);
	th_rmtree(dir);
}

static void test_file_errors(void **state)
{
	char dir[512], path[600];
	uint8_t d[MB_SHA256_LEN];
	char *data;

	(void)state;
	assert_int_equal(mb_sha256_file("/nonexistent/x", d, NULL), MB_ENOENT);
	assert_int_equal(th_tmpdir("sha", dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/f", dir);
	data = calloc(1, 10 << 20);
	assert_int_equal(th_write_file(path, data, 10 << 20), 0);
	/* a read error in the middle is an error, not a hash of half a file */
	mb_fault_set(MB_FAULT_READ, 1, 1, EIO);
	assert_int_equal(mb_sha256_file(path, d, NULL), MB_EIO);
	mb_fault_clear();
	assert_int_equal(mb_sha256_file(path, d, NULL), 0);
	free(data);
	th_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_hex_parse),
		cmocka_unit_test(test_files_across_blocks),
		cmocka_unit_test(test_file_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
