/* Tests common/half.c: the portable conversions against the CPU's F16C
 * instructions over every 16-bit input and many random f32 values, and
 * the rounding cases that matter. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/half.h"

static float f32_of(uint32_t x)
{
	float f;

	memcpy(&f, &x, 4);
	return f;
}

static void test_known_values(void **state)
{
	(void)state;
	assert_int_equal(mb_f32_to_f16(1.0f), 0x3c00);
	assert_int_equal(mb_f32_to_f16(-2.0f), 0xc000);
	assert_int_equal(mb_f32_to_f16(65504.0f), 0x7bff);	  /* max */
	assert_int_equal(mb_f32_to_f16(65519.0f), 0x7bff);	  /* rounds down */
	assert_int_equal(mb_f32_to_f16(65520.0f), 0x7c00);	  /* to inf */
	assert_int_equal(mb_f32_to_f16(ldexpf(1, -24)), 0x0001); /* min subnormal */
	assert_int_equal(mb_f32_to_f16(ldexpf(1, -25)), 0x0000); /* tie to even */
	assert_int_equal(mb_f32_to_f16(ldexpf(3, -26)), 0x0001); /* above tie */
	assert_int_equal(mb_f32_to_f16(ldexpf(3, -25)), 0x0002); /* tie: 1.5 -> 2 */
	/* 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1) */
	assert_int_equal(mb_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00);
	assert_int_equal(mb_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), 0x3c02);
	assert_int_equal(mb_f32_to_f16(INFINITY), 0x7c00);
	assert_true((mb_f32_to_f16(NAN) & 0x7c00) == 0x7c00 &&
		    (mb_f32_to_f16(NAN) & 0x3ff) != 0);
	assert_int_equal(mb_f32_to_bf16(1.0f), 0x3f80);
	assert_int_equal(mb_f32_to_bf16(f32_of(0x3f808000)), 0x3f80); /* tie, even */
	assert_int_equal(mb_f32_to_bf16(f32_of(0x3f818000)), 0x3f82); /* tie, odd */
	assert_int_equal(mb_f32_to_bf16(f32_of(0x3f808001)), 0x3f81);
	assert_true(isnan(mb_bf16_to_f32(mb_f32_to_bf16(NAN))));
	assert_true(mb_bf16_to_f32(0x3f80) == 1.0f);
}

static void test_f16_round_trip_exhaustive(void **state)
{
	uint32_t h;

	(void)state;
	for (h = 0; h < 65536; h++) {
		float f = mb_f16_to_f32((uint16_t)h);

		if (isnan(f))
			continue;
		if (mb_f32_to_f16(f) != h)
			fail_msg("f16 0x%04x -> %g -> 0x%04x", h, (double)f,
				 mb_f32_to_f16(f));
	}
}

/* Converts with the portable path and with the accelerated one. */
static void both(enum mb_num d, void *a, void *b, enum mb_num s,
		 const void *src, size_t n)
{
	mb_half_force_portable(1);
	mb_num_convert(d, a, s, src, n);
	mb_half_force_portable(0);
	mb_num_convert(d, b, s, src, n);
}

static void test_portable_equals_f16c(void **state)
{
	uint16_t *src = malloc(65536 * 2), *a = malloc(65536 * 2),
		 *b = malloc(65536 * 2);
	float *f = malloc(1000003 * 4), *fa = malloc(65536 * 4),
	      *fb = malloc(65536 * 4);
	uint16_t *ha = malloc(1000003 * 2), *hb = malloc(1000003 * 2);
	uint32_t i, seed = 12345;

	(void)state;
	if (!mb_half_accelerated()) {
		free(src), free(a), free(b), free(f), free(fa), free(fb);
		free(ha), free(hb);
		skip(); /* no F16C on this CPU: the portable path is all */
	}
	for (i = 0; i < 65536; i++)
		src[i] = (uint16_t)i;
	/* every bf16 value to f16 (NaNs compared as NaNs) */
	both(MB_NUM_F16, a, b, MB_NUM_BF16, src, 65536);
	for (i = 0; i < 65536; i++) {
		int nan = (a[i] & 0x7c00) == 0x7c00 && (a[i] & 0x3ff);

		if (!nan && a[i] != b[i])
			fail_msg("bf16 0x%04x: portable 0x%04x, f16c 0x%04x", i,
				 a[i], b[i]);
	}
	/* every f16 value to f32 */
	both(MB_NUM_F32, fa, fb, MB_NUM_F16, src, 65536);
	for (i = 0; i < 65536; i++)
		if (!isnan(fa[i]) && memcmp(&fa[i], &fb[i], 4) != 0)
			fail_msg("f16 0x%04x to f32 differs", i);
	/* random f32 bit patterns, odd count to cover the tail loop */
	for (i = 0; i < 1000003; i++) {
		uint32_t x;

		seed = seed * 1664525u + 1013904223u;
		x = seed;
		if (i % 3 == 0) /* many near f16's range */
			x = (x & 0x807fffff) | ((100 + (x >> 24) % 50) << 23);
		memcpy(&f[i], &x, 4);
	}
	both(MB_NUM_F16, ha, hb, MB_NUM_F32, f, 1000003);
	for (i = 0; i < 1000003; i++)
		if (!isnan(f[i]) && ha[i] != hb[i])
			fail_msg("f32 %a: portable 0x%04x, f16c 0x%04x",
				 (double)f[i], ha[i], hb[i]);
	free(src), free(a), free(b), free(f), free(fa), free(fb);
	free(ha), free(hb);
}

static void test_copies_are_exact(void **state)
{
	uint16_t src[37], dst[37];
	int i;

	(void)state;
	for (i = 0; i < 37; i++)
		src[i] = (uint16_t)(i * 7919);
	mb_num_convert(MB_NUM_BF16, dst, MB_NUM_BF16, src, 37);
	assert_memory_equal(src, dst, sizeof(src));
	assert_int_equal(mb_num_size(MB_NUM_F32), 4);
	assert_int_equal(mb_num_size(MB_NUM_BF16), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_values),
		cmocka_unit_test(test_f16_round_trip_exhaustive),
		cmocka_unit_test(test_portable_equals_f16c),
		cmocka_unit_test(test_copies_are_exact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
