/* half: f32/f16/bf16 row conversion with round-to-nearest-even. */
#include "common/half.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define MB_X86 1
#endif

static int portable;

void mb_half_force_portable(int on)
{
	portable = on;
}

size_t mb_num_size(enum mb_num t)
{
	return t == MB_NUM_F32 ? 4 : 2;
}

uint16_t mb_f32_to_f16(float f)
{
	uint32_t x, sign, exp, mant, h, rem;
	int e;

	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000;
	exp = (x >> 23) & 0xff;
	mant = x & 0x7fffff;
	if (exp == 0xff) /* inf stays inf; NaN stays a (quiet) NaN */
		return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 | (mant >> 13) : 0));
	e = (int)exp - 127 + 15;
	if (e >= 0x1f)
		return (uint16_t)(sign | 0x7c00);
	if (e <= 0) {
		/* an f16 subnormal (or zero): shift the full significand */
		uint32_t shift, halfway;

		if (e < -10)
			return (uint16_t)sign;
		mant |= 0x800000;
		shift = (uint32_t)(14 - e);
		h = mant >> shift;
		rem = mant & ((1u << shift) - 1);
		halfway = 1u << (shift - 1);
		if (rem > halfway || (rem == halfway && (h & 1)))
			h++;
		return (uint16_t)(sign | h);
	}
	h = sign | (uint32_t)e << 10 | mant >> 13;
	rem = mant & 0x1fff;
	/* a carry out of the mantissa correctly bumps the exponent, up to
	 * infinity */
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++;
	return (uint16_t)h;
}

float mb_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, x;
	float f;

	if (exp == 0x1f) {
		x = sign | 0x7f800000 | mant << 13;
	} else if (exp == 0) {
		if (mant == 0) {
			x = sign;
		} else {
			/* subnormal: normalise */
			int e = -1;

			do {
				e++;
				mant <<= 1;
			} while ((mant & 0x400) == 0);
			x = sign | (uint32_t)(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
		}
	} else {
		x = sign | (exp - 15 + 127) << 23 | mant << 13;
	}
	memcpy(&f, &x, 4);
	return f;
}

uint16_t mb_f32_to_bf16(float f)
{
	uint32_t x;

	memcpy(&x, &f, 4);
	if ((x & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((x >> 16) | 0x40); /* quiet the NaN */
	x += 0x7fff + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

float mb_bf16_to_f32(uint16_t b)
{
	uint32_t x = (uint32_t)b << 16;
	float f;

	memcpy(&f, &x, 4);
	return f;
}

#ifdef MB_X86
__attribute__((target("avx2,f16c"))) static void bf16_to_f16_x86(
	uint16_t *dst, const uint16_t *src, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		__m128i b = _mm_loadu_si128((const __m128i *)(src + i));
		__m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(b), 16);
		__m128i h = _mm256_cvtps_ph(_mm256_castsi256_ps(w),
					    _MM_FROUND_TO_NEAREST_INT);

		_mm_storeu_si128((__m128i *)(dst + i), h);
	}
	for (; i < n; i++)
		dst[i] = mb_f32_to_f16(mb_bf16_to_f32(src[i]));
}

__attribute__((target("avx2,f16c"))) static void f32_to_f16_x86(
	uint16_t *dst, const float *src, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		__m256 f = _mm256_loadu_ps(src + i);

		_mm_storeu_si128((__m128i *)(dst + i),
				 _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
	}
	for (; i < n; i++)
		dst[i] = mb_f32_to_f16(src[i]);
}

__attribute__((target("avx2,f16c"))) static void f16_to_f32_x86(
	float *dst, const uint16_t *src, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(
						  (const __m128i *)(src + i))));
	for (; i < n; i++)
		dst[i] = mb_f16_to_f32(src[i]);
}

static int have_f16c(void)
{
	static int known = -1;
	unsigned a, b, c, d;

	/* F16C is CPUID leaf 1, ECX bit 29 (clang's builtin has no name for
	 * it); AVX2 through the builtin, which also checks the OS saves the
	 * AVX state */
	if (known < 0)
		known = __builtin_cpu_supports("avx2") &&
			__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
	return known;
}
#endif

/* One Q8_0 block as ggml's reference code makes it, operation for
 * operation. */
static void q8_0_block(const float *x, uint8_t *out)
{
	float amax = 0.0f, d, id;
	uint16_t h;
	int j;

	for (j = 0; j < MB_Q8_0_BLOCK; j++) {
		float v = fabsf(x[j]);

		amax = amax > v ? amax : v;
	}
	d = amax / ((1 << 7) - 1);
	id = d != 0.0f ? 1.0f / d : 0.0f;
	h = mb_f32_to_f16(d);
	memcpy(out, &h, 2);
	for (j = 0; j < MB_Q8_0_BLOCK; j++)
		out[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

#ifdef MB_X86
/* The same on AVX2: the same products, rounded half away from zero as
 * roundf does (truncate, then up where the fraction is at least a half).
 * A block holding a NaN or an infinity, or whose scale's inverse is
 * infinite, takes the scalar code. */
__attribute__((target("avx2"))) static void q8_0_row_x86(const float *x,
							 uint8_t *out,
							 size_t nb)
{
	const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f),
		     one = _mm256_set1_ps(1.0f),
		     big = _mm256_set1_ps(3.0e38f);
	const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	size_t b;

	for (b = 0; b < nb; b++, x += MB_Q8_0_BLOCK, out += MB_Q8_0_BYTES) {
		__m256 v[4], m, ok;
		__m256i q[4], p;
		__m128 m4;
		float amax, d, id;
		uint16_t h;
		int k;

		for (k = 0; k < 4; k++)
			v[k] = _mm256_loadu_ps(x + 8 * k);
		m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]),
						_mm256_andnot_ps(sign, v[1])),
				  _mm256_max_ps(_mm256_andnot_ps(sign, v[2]),
						_mm256_andnot_ps(sign, v[3])));
		/* every |x| finite and ordered: below 3e38 (NaN compares
		 * false) */
		ok = _mm256_and_ps(
			_mm256_and_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v[0]), big, _CMP_LT_OQ),
				      _mm256_cmp_ps(_mm256_andnot_ps(sign, v[1]), big, _CMP_LT_OQ)),
			_mm256_and_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v[2]), big, _CMP_LT_OQ),
				      _mm256_cmp_ps(_mm256_andnot_ps(sign, v[3]), big, _CMP_LT_OQ)));
		if (_mm256_movemask_ps(ok) != 0xff) {
			q8_0_block(x, out);
			continue;
		}
		m4 = _mm_max_ps(_mm256_castps256_ps128(m),
				_mm256_extractf128_ps(m, 1));
		m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
		m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
		amax = _mm_cvtss_f32(m4);
		d = amax / ((1 << 7) - 1);
		id = d != 0.0f ? 1.0f / d : 0.0f;
		if (isinf(id)) {
			/* a block of subnormals: 0 * inf is NaN there */
			q8_0_block(x, out);
			continue;
		}
		h = mb_f32_to_f16(d);
		memcpy(out, &h, 2);
		for (k = 0; k < 4; k++) {
			__m256 y = _mm256_mul_ps(v[k], _mm256_set1_ps(id));
			__m256 a = _mm256_andnot_ps(sign, y);
			__m256 t = _mm256_round_ps(a, _MM_FROUND_TO_ZERO |
							      _MM_FROUND_NO_EXC);
			__m256 up = _mm256_and_ps(
				_mm256_cmp_ps(_mm256_sub_ps(a, t), half, _CMP_GE_OQ),
				one);

			t = _mm256_or_ps(_mm256_add_ps(t, up),
					 _mm256_and_ps(sign, y));
			q[k] = _mm256_cvtps_epi32(t);
		}
		p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]),
				       _mm256_packs_epi32(q[2], q[3]));
		p = _mm256_permutevar8x32_epi32(p, order);
		_mm256_storeu_si256((__m256i *)(void *)(out + 2), p);
	}
}
#endif

void mb_q8_0_row(const float *x, void *out, size_t n)
{
	uint8_t *o = out;
	size_t b, nb = n / MB_Q8_0_BLOCK;

#ifdef MB_X86
	if (!portable && __builtin_cpu_supports("avx2")) {
		q8_0_row_x86(x, o, nb);
		return;
	}
#endif
	for (b = 0; b < nb; b++)
		q8_0_block(x + b * MB_Q8_0_BLOCK, o + b * MB_Q8_0_BYTES);
}

int mb_half_accelerated(void)
{
#ifdef MB_X86
	return !portable && have_f16c();
#else
	return 0;
#endif
}

void mb_num_convert(enum mb_num d, void *dst, enum mb_num s, const void *src,
		    size_t n)
{
	const uint16_t *s16 = src;
	const float *s32 = src;
	uint16_t *d16 = dst;
	float *d32 = dst;
	size_t i;

	if (d == s) {
		memcpy(dst, src, n * mb_num_size(s));
		return;
	}
#ifdef MB_X86
	if (mb_half_accelerated()) {
		if (s == MB_NUM_BF16 && d == MB_NUM_F16) {
			bf16_to_f16_x86(d16, s16, n);
			return;
		}
		if (s == MB_NUM_F32 && d == MB_NUM_F16) {
			f32_to_f16_x86(d16, s32, n);
			return;
		}
		if (s == MB_NUM_F16 && d == MB_NUM_F32) {
			f16_to_f32_x86(d32, s16, n);
			return;
		}
	}
#endif
	for (i = 0; i < n; i++) {
		float f = s == MB_NUM_F32 ? s32[i]
			  : s == MB_NUM_F16 ? mb_f16_to_f32(s16[i])
					    : mb_bf16_to_f32(s16[i]);

		if (d == MB_NUM_F32)
			d32[i] = f;
		else if (d == MB_NUM_F16)
			d16[i] = mb_f32_to_f16(f);
		else
			d16[i] = mb_f32_to_bf16(f);
	}
}
