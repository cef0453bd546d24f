/* Tests the quantizer lanes of the libggml-base deploy/deps.sh builds
 * (deploy/llama-patches/quants-lanes.patch): through the library's own
 * ggml_quantize_chunk, as llama_model_quantize calls it, Q8_0, Q4_K, Q5_K
 * and Q6_K rows made on the lanes, with and without an importance matrix,
 * must be byte for byte the rows the scalar code makes (GGML_QUANTS_SCALAR=1), over weights of every scale
 * and the blocks that take the scalar code's corners: all zero, flat, one
 * sign, outliers, signed zeros, subnormals, ties between scales, ramps,
 * rounding halves, huge values, infinities and NaNs; and Q8_0 rows whose blocks do not fill
 * the last 8 lanes. Its F16 rows convert to F32 (with F16C) as each half
 * does on its own, for all 65536 of them. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/half.h"
#include "ggml.h"

extern int ggml_quantize_lanes(void) __attribute__((weak));

enum { NPER = 4096, NROWS = 600 };

static int nper = NPER, nrows = NROWS;

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double uni(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

static float gauss(void)
{
	return (float)(sqrt(-2 * log(uni() + 1e-300)) *
		       cos(6.283185307179586 * uni()));
}

/* Row r of the input: its kind picks a corner, its scale spans 1e-6..1e2 */
static void fill_row(float *x, int r)
{
	float sc = powf(10.f, (float)(uni() * 8 - 6));
	int i;

	for (i = 0; i < nper; i++) {
		float v = gauss() * sc;

		switch (r % 15) {
		case 1: v = i % 37 < 20 ? 0.f : v; break;	/* zero runs */
		case 2: v = (i / 32) % 2 ? 0.f : 1.5f * sc; break; /* flat */
		case 3: v = -fabsf(v); break;
		case 4: v = fabsf(v); break;
		case 5: v = uni() < 0.01 ? v * 1000 : v; break; /* outliers */
		case 6: v = ggml_fp16_to_fp32(ggml_fp32_to_fp16(v)); break;
		case 7: /* signed zeros, a few subnormals */
			v = uni() < 0.5 ? -0.f : 0.f;
			if (uni() < 0.05)
				v = gauss() * 1e-39f;
			break;
		case 8: v = i % 16 == 0 ? v : 0.f; break;	/* sparse */
		case 9: v = (float)(int)(gauss() * 4); break;	/* ties */
		case 10: v = sc * (float)(i % 32); break;	/* ramps */
		case 11: v = (i / 256) % 3 == 0 ? 0.f : v; break; /* zero blocks */
		case 12: v = (float)((int)(gauss() * 8)) + 0.5f; break; /* halves */
		case 13: v = gauss() * 1e37f; break;		/* near FLT_MAX */
		case 14: /* a broken checkpoint: infinities and NaNs */
			v = uni() < 0.002 ? INFINITY : uni() < 0.002 ? -INFINITY :
			    uni() < 0.002 ? NAN : v;
			break;
		default: break;
		}
		x[i] = v;
	}
}

/* imx: an importance matrix (one weight per column, some zero) goes with
 * the rows, as llama_model_quantize passes one */
static void same_bits(enum ggml_type type, int imx)
{
	size_t rowsz = ggml_row_size(type, nper), sz = rowsz * (size_t)nrows, i;
	float *x = malloc(sizeof(float) * NPER * NROWS);
	float *qw = imx ? malloc(sizeof(float) * NPER) : NULL;
	uint8_t *scalar = malloc(sz), *lanes = malloc(sz);
	int r;

	assert_non_null(x);
	assert_non_null(scalar);
	assert_non_null(lanes);
	rng = 0x9e3779b97f4a7c15ull + (uint64_t)type;
	for (r = 0; r < nrows; r++)
		fill_row(x + (size_t)r * nper, r);
	for (r = 0; qw != NULL && r < nper; r++)
		qw[r] = r % 97 == 0 ? 0.f : (float)(uni() * uni() * 10);
	setenv("GGML_QUANTS_SCALAR", "1", 1);
	assert_int_equal(ggml_quantize_lanes(), 0);
	assert_int_equal(ggml_quantize_chunk(type, x, scalar, 0, nrows, nper,
					     qw), sz);
	unsetenv("GGML_QUANTS_SCALAR");
	assert_int_equal(ggml_quantize_lanes(), 1);
	memset(lanes, 0xa5, sz);
	assert_int_equal(ggml_quantize_chunk(type, x, lanes, 0, nrows, nper,
					     qw), sz);
	for (i = 0; i < sz; i++) {
		if (scalar[i] != lanes[i])
			fail_msg("%s%s: byte %zu (row %zu) is %02x on the "
				 "lanes, %02x in the scalar code",
				 ggml_type_name(type), imx ? " (imatrix)" : "",
				 i, i / rowsz, lanes[i], scalar[i]);
	}
	free(x);
	free(qw);
	free(scalar);
	free(lanes);
}

static void test_q8_0(void **state)
{
	(void)state;
	nper = NPER;
	same_bits(GGML_TYPE_Q8_0, 0);
	/* 13 blocks a row, 599 rows: the last 7787 % 8 blocks are scalar */
	nper = 13 * 32;
	nrows = NROWS - 1;
	same_bits(GGML_TYPE_Q8_0, 0);
	nper = NPER;
	nrows = NROWS;
}

/* The converter's own Q8_0 rows (common/half.h, for the Q8_0 file it
 * writes beside its output) are ggml's reference rows, byte for byte, on
 * its AVX2 path and its portable one, corners included. */
static void test_converter_q8_0(void **state)
{
	size_t rowsz = ggml_row_size(GGML_TYPE_Q8_0, NPER), sz = rowsz * NROWS, i;
	float *x = malloc(sizeof(float) * NPER * NROWS);
	uint8_t *ref = malloc(sz), *mine = malloc(sz);
	int r, portable;

	(void)state;
	assert_non_null(x);
	assert_non_null(ref);
	assert_non_null(mine);
	nper = NPER;
	nrows = NROWS;
	rng = 0x9e3779b97f4a7c15ull;
	for (r = 0; r < NROWS; r++)
		fill_row(x + (size_t)r * NPER, r);
	setenv("GGML_QUANTS_SCALAR", "1", 1);
	assert_int_equal(ggml_quantize_chunk(GGML_TYPE_Q8_0, x, ref, 0, NROWS,
					     NPER, NULL), sz);
	unsetenv("GGML_QUANTS_SCALAR");
	for (portable = 0; portable <= 1; portable++) {
		mb_half_force_portable(portable);
		memset(mine, 0xa5, sz);
		for (r = 0; r < NROWS; r++)
			mb_q8_0_row(x + (size_t)r * NPER, mine + (size_t)r * rowsz,
				    NPER);
		for (i = 0; i < sz; i++)
			if (ref[i] != mine[i])
				fail_msg("byte %zu (row %zu) is %02x from the "
					 "converter's %s code, %02x from ggml's",
					 i, i / rowsz, mine[i],
					 portable ? "portable" : "AVX2", ref[i]);
	}
	mb_half_force_portable(0);
	free(x);
	free(ref);
	free(mine);
}

static void test_q4_k(void **state)
{
	(void)state;
	same_bits(GGML_TYPE_Q4_K, 0);
	same_bits(GGML_TYPE_Q4_K, 1);
}

static void test_q5_k(void **state)
{
	(void)state;
	same_bits(GGML_TYPE_Q5_K, 0);
	same_bits(GGML_TYPE_Q5_K, 1);
}

static void test_q6_k(void **state)
{
	(void)state;
	same_bits(GGML_TYPE_Q6_K, 0);
	same_bits(GGML_TYPE_Q6_K, 1);
}

static void test_f16_rows(void **state)
{
	static ggml_fp16_t h[65536 + 5];
	static float row[65536 + 5];
	int i;

	(void)state;
	for (i = 0; i < 65536 + 5; i++)
		h[i] = (ggml_fp16_t)(i & 0xffff);
	/* a length that leaves a tail after the 8-wide steps */
	ggml_fp16_to_fp32_row(h, row, 65536 + 5);
	for (i = 0; i < 65536 + 5; i++) {
		float one = ggml_fp16_to_fp32(h[i]);

		if (memcmp(&one, &row[i], sizeof(one)) != 0)
			fail_msg("half %04x: %a in a row, %a alone", h[i],
				 (double)row[i], (double)one);
	}
}

/* the lanes are there, so the comparisons above compared something */
static int setup(void **state)
{
	(void)state;
	if (ggml_quantize_lanes == NULL) {
		fprintf(stderr, "libggml-base has no ggml_quantize_lanes: it is "
			"not the library deploy/deps.sh builds (with "
			"deploy/llama-patches)\n");
		return -1;
	}
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2"))
		return 0;
#endif
	fprintf(stderr, "skipped: this CPU has no AVX2, so the lanes never "
		"run here\n");
	exit(77);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_q8_0),
		cmocka_unit_test(test_converter_q8_0),
		cmocka_unit_test(test_q4_k),
		cmocka_unit_test(test_q5_k),
		cmocka_unit_test(test_q6_k),
		cmocka_unit_test(test_f16_rows),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
