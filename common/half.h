/*
 * half: conversions between f32, f16 and bf16, row by row, as the
 * converter needs them. Rounding is to nearest, ties to even, with
 * overflow to infinity and f16 subnormals kept: the same results as the
 * CPU's F16C instructions, which are used when present (AVX2 + F16C) and
 * checked against the portable code in the tests.
 */
#ifndef MB_HALF_H
#define MB_HALF_H

#include <stddef.h>
#include <stdint.h>

/* Element formats, as named by safetensors and GGUF. */
enum mb_num {
	MB_NUM_F32,
	MB_NUM_F16,
	MB_NUM_BF16,
};

/* Returns the size of one element. */
size_t mb_num_size(enum mb_num t);

/* Converts n elements from src (format s) to dst (format d). Same-format
 * calls copy. src and dst must not overlap. */
void mb_num_convert(enum mb_num d, void *dst, enum mb_num s, const void *src,
		    size_t n);

/* Scalar conversions (the portable reference). */
uint16_t mb_f32_to_f16(float f);
float mb_f16_to_f32(uint16_t h);
uint16_t mb_f32_to_bf16(float f);
float mb_bf16_to_f32(uint16_t b);

/* Q8_0 blocks (ggml's block_q8_0): per 32 values an f16 scale d = max|x| /
 * 127 and 32 int8 x / d rounded half away from zero; the bytes
 * llama.cpp's quantize_row_q8_0_ref makes. */
#define MB_Q8_0_BLOCK 32
#define MB_Q8_0_BYTES 34

/* Quantizes n values (a multiple of MB_Q8_0_BLOCK) of x into out, n / 32
 * blocks of MB_Q8_0_BYTES. */
void mb_q8_0_row(const float *x, void *out, size_t n);

/* Forces the portable path (1) or allows the F16C path (0); for tests. */
void mb_half_force_portable(int on);

/* Returns 1 when the F16C path is in use. */
int mb_half_accelerated(void);

#endif
