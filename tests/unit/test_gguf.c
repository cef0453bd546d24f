/* Tests common/gguf.c: every KV type and several tensor types round trip;
 * the header is byte for byte what ggml's own writer produces, and ggml's
 * parser reads the files back with the same values, offsets and data; each
 * hostile file fails with its own message; failed allocations and I/O
 * return errors without leaks. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fault.h"
#include "common/fs.h"
#include "common/gguf.h"
#include "ggml.h"
#include "gguf.h"	/* ggml's, from the llama.cpp include directory */
#include "th.h"

struct ctx {
	char dir[512];
	char path[600];
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (c == NULL || th_tmpdir("gguf", c->dir, sizeof(c->dir)) != 0)
		return -1;
	snprintf(c->path, sizeof(c->path), "%s/m.gguf", c->dir);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	mb_fault_clear();
	th_rmtree(c->dir);
	free(c);
	return 0;
}

/* --- the model every round trip writes --- */

static const uint8_t a_u8[] = { 0, 1, 255 };
static const int8_t a_i8[] = { -128, 0, 127 };
static const uint16_t a_u16[] = { 0, 65535, 7 };
static const int16_t a_i16[] = { -32768, 32767 };
static const uint32_t a_u32[] = { 1, 2, 0xffffffffu };
static const int32_t a_i32[] = { -1, INT32_MIN, INT32_MAX, 5 };
static const float a_f32[] = { 1.5f, -0.0f, 3.25e10f };
static const uint8_t a_bool[] = { 1, 0, 1, 1 };
static const uint64_t a_u64[] = { UINT64_MAX, 0 };
static const int64_t a_i64[] = { INT64_MIN, INT64_MAX, -3 };
static const double a_f64[] = { 3.141592653589793, -1e300 };
static const char *const a_str[] = { "hello", "", "w\xc3\xb6rld",
				     "<|endoftext|>", "a b\tc" };

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *name;
	int type;
	uint32_t ndim;
	uint64_t ne[4];
} model_tensors[] = {
	{ "token_embd.weight", MB_GGML_Q8_0, 2, { 64, 10 } },
	{ "output_norm.weight", MB_GGML_F32, 1, { 64 } },
	{ "blk.0.attn_q.weight", MB_GGML_Q4_K, 2, { 256, 3 } },
	{ "blk.0.ffn_down.weight", MB_GGML_F16, 3, { 7, 3, 2 } },
	{ "blk.0.four", MB_GGML_BF16, 4, { 5, 1, 1, 2 } },
	{ "blk.0.q6", MB_GGML_Q6_K, 2, { 512, 2 } },
	{ "blk.0.q4_0", MB_GGML_Q4_0, 2, { 32, 3 } },
	{ "blk.0.q5_1", MB_GGML_Q5_1, 1, { 96 } },
	{ "blk.0.q2_k", MB_GGML_Q2_K, 1, { 256 } },
	{ "blk.0.q3_k", MB_GGML_Q3_K, 1, { 256 } },
	{ "blk.0.q5_k", MB_GGML_Q5_K, 1, { 256 } },
	{ "blk.0.q4_1", MB_GGML_Q4_1, 1, { 64 } },
	{ "blk.0.q5_0", MB_GGML_Q5_0, 1, { 32 } },
	{ "a", MB_GGML_F32, 1, { 1 } },
};

/* Adds the model's KVs (general.alignment when not the default) and
 * tensors to w; returns the first error. */
static int build(struct mb_gguf_w *w)
{
	size_t i;
	int rc = 0;

	if (w->alignment != MB_GGUF_DEFAULT_ALIGNMENT)
		rc = mb_gguf_w_u32(w, "general.alignment", w->alignment);
	rc = rc ? rc : mb_gguf_w_str(w, "general.architecture", "llama");
	rc = rc ? rc : mb_gguf_w_u8(w, "t.u8", 200);
	rc = rc ? rc : mb_gguf_w_i8(w, "t.i8", -100);
	rc = rc ? rc : mb_gguf_w_u16(w, "t.u16", 60000);
	rc = rc ? rc : mb_gguf_w_i16(w, "t.i16", -30000);
	rc = rc ? rc : mb_gguf_w_u32(w, "t.u32", 4000000000u);
	rc = rc ? rc : mb_gguf_w_i32(w, "t.i32", -2000000000);
	rc = rc ? rc : mb_gguf_w_f32(w, "t.f32", 1e-5f);
	rc = rc ? rc : mb_gguf_w_bool(w, "t.bool", 7);
	rc = rc ? rc : mb_gguf_w_bool(w, "t.false", 0);
	rc = rc ? rc : mb_gguf_w_u64(w, "t.u64", UINT64_MAX - 1);
	rc = rc ? rc : mb_gguf_w_i64(w, "t.i64", INT64_MIN + 1);
	rc = rc ? rc : mb_gguf_w_f64(w, "t.f64", -2.5e-300);
	rc = rc ? rc : mb_gguf_w_str(w, "t.str", "{% for m in messages %}\n");
	rc = rc ? rc : mb_gguf_w_str(w, "t.empty_str", "");
	rc = rc ? rc : mb_gguf_w_arr(w, "a.u8", MB_GGUF_UINT8, a_u8, N(a_u8));
	rc = rc ? rc : mb_gguf_w_arr(w, "a.i8", MB_GGUF_INT8, a_i8, N(a_i8));
	rc = rc ? rc : mb_gguf_w_arr(w, "a.u16", MB_GGUF_UINT16, a_u16, N(a_u16));
	rc = rc ? rc : mb_gguf_w_arr(w, "a.i16", MB_GGUF_INT16, a_i16, N(a_i16));
	rc = rc ? rc : mb_gguf_w_arr(w, "a.u32", MB_GGUF_UINT32, a_u32, N(a_u32));
	rc = rc ? rc : mb_gguf_w_arr(w, "a.i32", MB_GGUF_INT32, a_i32, N(a_i32));
	rc = rc ? rc : mb_gguf_w_arr(w, "a.f32", MB_GGUF_FLOAT32, a_f32, N(a_f32));
	rc = rc ? rc : mb_gguf_w_arr(w, "a.bool", MB_GGUF_BOOL, a_bool, N(a_bool));
	rc = rc ? rc : mb_gguf_w_arr(w, "a.u64", MB_GGUF_UINT64, a_u64, N(a_u64));
	rc = rc ? rc : mb_gguf_w_arr(w, "a.i64", MB_GGUF_INT64, a_i64, N(a_i64));
	rc = rc ? rc : mb_gguf_w_arr(w, "a.f64", MB_GGUF_FLOAT64, a_f64, N(a_f64));
	rc = rc ? rc : mb_gguf_w_arr(w, "a.empty", MB_GGUF_INT32, NULL, 0);
	rc = rc ? rc : mb_gguf_w_arr_str(w, "a.str", a_str, N(a_str));
	rc = rc ? rc : mb_gguf_w_arr_str(w, "a.empty_str", NULL, 0);
	for (i = 0; rc == 0 && i < N(model_tensors); i++) {
		rc = mb_gguf_w_tensor(w, model_tensors[i].name,
				      model_tensors[i].type,
				      model_tensors[i].ndim, model_tensors[i].ne);
		if (rc >= 0) {
			assert_int_equal(rc, (int)i);
			rc = 0;
		}
	}
	return rc;
}

static uint8_t pattern(size_t tensor, uint64_t j)
{
	return (uint8_t)(tensor * 31 + j * 7 + 1);
}

/* Lays w out and writes the whole file (header, patterned data, final
 * padding) to path. */
static int write_file(struct mb_gguf_w *w, const char *path)
{
	uint8_t *data = NULL;
	uint64_t j;
	size_t i;
	int fd = -1, rc;

	rc = mb_gguf_w_layout(w);
	if (rc != 0)
		return rc;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return MB_EIO;
	rc = mb_gguf_w_write_header(w, fd);
	for (i = 0; rc == 0 && i < w->ntensors; i++) {
		const struct mb_gguf_w_tensor *t = &w->tensors[i];

		data = malloc(t->size + 1);
		assert_non_null(data);
		for (j = 0; j < t->size; j++)
			data[j] = pattern(i, j);
		rc = mb_pwrite_all(fd, data, t->size, t->offset);
		free(data);
	}
	if (rc == 0)
		rc = mb_gguf_w_finish(w, fd);
	close(fd);
	return rc;
}

/* Checks that the reader's view of path matches what w wrote. */
static void check_ours(const struct mb_gguf_w *w, const char *path)
{
	const struct mb_gguf_kv *kv;
	const struct mb_gguf_tensor *t;
	struct mb_gguf *g;
	char err[256] = "";
	size_t i;

	assert_int_equal(mb_gguf_read(path, &g, err, sizeof(err)), 0);
	assert_int_equal(g->version, 3);
	assert_int_equal(g->alignment, w->alignment);
	assert_int_equal(g->n_kv, w->n_kv);
	assert_int_equal(g->data_start, w->data_start);
	assert_int_equal(g->file_size, w->file_size);
	assert_int_equal(g->data_start % w->alignment, 0);

	kv = mb_gguf_kv(g, "general.architecture");
	assert_int_equal(kv->type, MB_GGUF_STRING);
	assert_string_equal(kv->v.s, "llama");
	assert_int_equal(mb_gguf_kv(g, "t.u8")->v.u, 200);
	assert_int_equal(mb_gguf_kv(g, "t.u8")->type, MB_GGUF_UINT8);
	assert_int_equal(mb_gguf_kv(g, "t.i8")->v.i, -100);
	assert_int_equal(mb_gguf_kv(g, "t.i8")->type, MB_GGUF_INT8);
	assert_int_equal(mb_gguf_kv(g, "t.u16")->v.u, 60000);
	assert_int_equal(mb_gguf_kv(g, "t.i16")->v.i, -30000);
	assert_int_equal(mb_gguf_kv(g, "t.u32")->v.u, 4000000000u);
	assert_int_equal(mb_gguf_kv(g, "t.u32")->type, MB_GGUF_UINT32);
	assert_int_equal(mb_gguf_kv(g, "t.i32")->v.i, -2000000000);
	assert_true(mb_gguf_kv(g, "t.f32")->v.f == (double)1e-5f);
	assert_int_equal(mb_gguf_kv(g, "t.f32")->type, MB_GGUF_FLOAT32);
	assert_int_equal(mb_gguf_kv(g, "t.bool")->v.u, 1);
	assert_int_equal(mb_gguf_kv(g, "t.bool")->type, MB_GGUF_BOOL);
	assert_int_equal(mb_gguf_kv(g, "t.false")->v.u, 0);
	assert_true(mb_gguf_kv(g, "t.u64")->v.u == UINT64_MAX - 1);
	assert_true(mb_gguf_kv(g, "t.i64")->v.i == INT64_MIN + 1);
	assert_true(mb_gguf_kv(g, "t.f64")->v.f == -2.5e-300);
	assert_string_equal(mb_gguf_kv(g, "t.str")->v.s,
			    "{% for m in messages %}\n");
	assert_string_equal(mb_gguf_kv(g, "t.empty_str")->v.s, "");
#define ARR(key, et, a)                                                   \
	do {                                                              \
		kv = mb_gguf_kv(g, key);                                  \
		assert_non_null(kv);                                      \
		assert_int_equal(kv->type, MB_GGUF_ARRAY);                \
		assert_int_equal(kv->elem_type, et);                      \
		assert_int_equal(kv->n, N(a));                            \
		assert_memory_equal(kv->arr, a, sizeof(a));               \
	} while (0)
	ARR("a.u8", MB_GGUF_UINT8, a_u8);
	ARR("a.i8", MB_GGUF_INT8, a_i8);
	ARR("a.u16", MB_GGUF_UINT16, a_u16);
	ARR("a.i16", MB_GGUF_INT16, a_i16);
	ARR("a.u32", MB_GGUF_UINT32, a_u32);
	ARR("a.i32", MB_GGUF_INT32, a_i32);
	ARR("a.f32", MB_GGUF_FLOAT32, a_f32);
	ARR("a.bool", MB_GGUF_BOOL, a_bool);
	ARR("a.u64", MB_GGUF_UINT64, a_u64);
	ARR("a.i64", MB_GGUF_INT64, a_i64);
	ARR("a.f64", MB_GGUF_FLOAT64, a_f64);
#undef ARR
	kv = mb_gguf_kv(g, "a.empty");
	assert_int_equal(kv->type, MB_GGUF_ARRAY);
	assert_int_equal(kv->elem_type, MB_GGUF_INT32);
	assert_int_equal(kv->n, 0);
	assert_null(kv->arr);
	kv = mb_gguf_kv(g, "a.str");
	assert_int_equal(kv->elem_type, MB_GGUF_STRING);
	assert_int_equal(kv->n, N(a_str));
	for (i = 0; i < N(a_str); i++)
		assert_string_equal(kv->strs[i], a_str[i]);
	kv = mb_gguf_kv(g, "a.empty_str");
	assert_int_equal(kv->elem_type, MB_GGUF_STRING);
	assert_int_equal(kv->n, 0);
	assert_null(kv->strs);
	assert_null(mb_gguf_kv(g, "nope"));

	assert_int_equal(g->ntensors, w->ntensors);
	for (i = 0; i < w->ntensors; i++) {
		const struct mb_gguf_w_tensor *wt = &w->tensors[i];

		t = &g->tensors[i];
		assert_ptr_equal(mb_gguf_tensor(g, wt->name), t);
		assert_string_equal(t->name, wt->name);
		assert_int_equal(t->type, wt->type);
		assert_int_equal(t->ndim, wt->ndim);
		assert_memory_equal(t->ne, wt->ne, sizeof(t->ne));
		assert_int_equal(t->offset, wt->offset);
		assert_int_equal(t->size, wt->size);
		assert_int_equal(t->offset % w->alignment, 0);
		/* each tensor right after the previous one's padded data */
		if (i > 0) {
			const struct mb_gguf_w_tensor *p = &w->tensors[i - 1];
			uint64_t pad = (p->size + w->alignment - 1) /
				       w->alignment * w->alignment;

			assert_int_equal(wt->offset, p->offset + pad);
		} else {
			assert_int_equal(wt->offset, w->data_start);
		}
	}
	assert_null(mb_gguf_tensor(g, "nope"));
	mb_gguf_free(g);
}

/* Checks that ggml's own parser reads path as w wrote it, tensor data
 * included. */
static void check_ggml(const struct mb_gguf_w *w, const char *path)
{
	struct ggml_context *gctx = NULL;
	struct gguf_init_params p = { false, &gctx };
	struct gguf_context *g = gguf_init_from_file(path, p);
	int64_t id;
	size_t i;
	uint64_t j;

	assert_non_null(g);
	assert_non_null(gctx);
	assert_int_equal(gguf_get_version(g), 3);
	assert_int_equal(gguf_get_alignment(g), w->alignment);
	assert_int_equal(gguf_get_data_offset(g), w->data_start);
	assert_int_equal(gguf_get_n_kv(g), w->n_kv);
	assert_int_equal(gguf_get_n_tensors(g), w->ntensors);

	id = gguf_find_key(g, "general.architecture");
	assert_int_equal(gguf_get_kv_type(g, id), GGUF_TYPE_STRING);
	assert_string_equal(gguf_get_val_str(g, id), "llama");
	assert_int_equal(gguf_get_val_u8(g, gguf_find_key(g, "t.u8")), 200);
	assert_int_equal(gguf_get_val_i8(g, gguf_find_key(g, "t.i8")), -100);
	assert_int_equal(gguf_get_val_u16(g, gguf_find_key(g, "t.u16")), 60000);
	assert_int_equal(gguf_get_val_i16(g, gguf_find_key(g, "t.i16")), -30000);
	assert_int_equal(gguf_get_val_u32(g, gguf_find_key(g, "t.u32")),
			 4000000000u);
	assert_int_equal(gguf_get_val_i32(g, gguf_find_key(g, "t.i32")),
			 -2000000000);
	assert_true(gguf_get_val_f32(g, gguf_find_key(g, "t.f32")) == 1e-5f);
	assert_true(gguf_get_val_bool(g, gguf_find_key(g, "t.bool")));
	assert_false(gguf_get_val_bool(g, gguf_find_key(g, "t.false")));
	assert_true(gguf_get_val_u64(g, gguf_find_key(g, "t.u64")) ==
		    UINT64_MAX - 1);
	assert_true(gguf_get_val_i64(g, gguf_find_key(g, "t.i64")) ==
		    INT64_MIN + 1);
	assert_true(gguf_get_val_f64(g, gguf_find_key(g, "t.f64")) == -2.5e-300);
	assert_string_equal(gguf_get_val_str(g, gguf_find_key(g, "t.str")),
			    "{% for m in messages %}\n");
	assert_string_equal(gguf_get_val_str(g, gguf_find_key(g, "t.empty_str")),
			    "");
#define ARR(key, et, a)                                                   \
	do {                                                              \
		id = gguf_find_key(g, key);                               \
		assert_true(id >= 0);                                     \
		assert_int_equal(gguf_get_kv_type(g, id), GGUF_TYPE_ARRAY); \
		assert_int_equal(gguf_get_arr_type(g, id), et);           \
		assert_int_equal(gguf_get_arr_n(g, id), N(a));            \
		assert_memory_equal(gguf_get_arr_data(g, id), a, sizeof(a)); \
	} while (0)
	ARR("a.u8", GGUF_TYPE_UINT8, a_u8);
	ARR("a.i8", GGUF_TYPE_INT8, a_i8);
	ARR("a.u16", GGUF_TYPE_UINT16, a_u16);
	ARR("a.i16", GGUF_TYPE_INT16, a_i16);
	ARR("a.u32", GGUF_TYPE_UINT32, a_u32);
	ARR("a.i32", GGUF_TYPE_INT32, a_i32);
	ARR("a.f32", GGUF_TYPE_FLOAT32, a_f32);
	ARR("a.bool", GGUF_TYPE_BOOL, a_bool);
	ARR("a.u64", GGUF_TYPE_UINT64, a_u64);
	ARR("a.i64", GGUF_TYPE_INT64, a_i64);
	ARR("a.f64", GGUF_TYPE_FLOAT64, a_f64);
#undef ARR
	id = gguf_find_key(g, "a.empty");
	assert_int_equal(gguf_get_arr_type(g, id), GGUF_TYPE_INT32);
	assert_int_equal(gguf_get_arr_n(g, id), 0);
	id = gguf_find_key(g, "a.str");
	assert_int_equal(gguf_get_arr_type(g, id), GGUF_TYPE_STRING);
	assert_int_equal(gguf_get_arr_n(g, id), N(a_str));
	for (i = 0; i < N(a_str); i++)
		assert_string_equal(gguf_get_arr_str(g, id, i), a_str[i]);
	id = gguf_find_key(g, "a.empty_str");
	assert_int_equal(gguf_get_arr_type(g, id), GGUF_TYPE_STRING);
	assert_int_equal(gguf_get_arr_n(g, id), 0);

	for (i = 0; i < w->ntensors; i++) {
		const struct mb_gguf_w_tensor *wt = &w->tensors[i];
		const struct ggml_tensor *gt;
		const int64_t *ne;
		const uint8_t *d;
		int k;

		id = gguf_find_tensor(g, wt->name);
		assert_int_equal(id, (int64_t)i);
		assert_string_equal(gguf_get_tensor_name(g, id), wt->name);
		assert_int_equal(gguf_get_tensor_type(g, id), wt->type);
		ne = gguf_get_tensor_ne(g, id);
		for (k = 0; k < 4; k++)
			assert_int_equal(ne[k], (int64_t)wt->ne[k]);
		assert_int_equal(gguf_get_tensor_offset(g, id) +
				 gguf_get_data_offset(g), wt->offset);
		assert_int_equal(gguf_get_tensor_size(g, id), wt->size);
		gt = ggml_get_tensor(gctx, wt->name);
		assert_non_null(gt);
		assert_int_equal(ggml_nbytes(gt), wt->size);
		d = gt->data;
		for (j = 0; j < wt->size; j++)
			if (d[j] != pattern(i, j))
				fail_msg("tensor '%s' byte %llu differs", wt->name,
					 (unsigned long long)j);
	}
	gguf_free(g);
	ggml_free(gctx);
}

static void roundtrip(struct ctx *c, uint32_t alignment)
{
	struct mb_gguf_w w;
	struct stat st;

	assert_int_equal(mb_gguf_w_init(&w, alignment), 0);
	assert_int_equal(build(&w), 0);
	assert_int_equal(write_file(&w, c->path), 0);
	assert_int_equal(w.data_start % w.alignment, 0);
	assert_int_equal(w.file_size % w.alignment, 0);
	assert_int_equal(stat(c->path, &st), 0);
	assert_int_equal((uint64_t)st.st_size, w.file_size);
	check_ours(&w, c->path);
	check_ggml(&w, c->path);
	mb_gguf_w_release(&w);
	mb_gguf_w_release(&w);	/* twice is fine */
	mb_gguf_w_release(NULL);
}

static void test_roundtrip(void **state)
{
	roundtrip(*state, 0);
}

static void test_roundtrip_align64(void **state)
{
	roundtrip(*state, 64);
}

static void test_roundtrip_align1(void **state)
{
	roundtrip(*state, 1);
}

/* The same model put together with ggml's own writer: the metadata must be
 * the same bytes, padding included. */
static void test_same_bytes_as_ggml(void **state)
{
	struct ctx *c = *state;
	struct ggml_init_params ip = { 1 << 20, NULL, true };
	struct ggml_context *tctx;
	struct gguf_context *g;
	struct mb_gguf_w w;
	uint8_t *theirs, *ours;
	size_t i, len, meta;
	int64_t ne[4];
	int k;

	assert_int_equal(mb_gguf_w_init(&w, 0), 0);
	assert_int_equal(build(&w), 0);
	assert_int_equal(write_file(&w, c->path), 0);

	g = gguf_init_empty();
	gguf_set_val_str(g, "general.architecture", "llama");
	gguf_set_val_u8(g, "t.u8", 200);
	gguf_set_val_i8(g, "t.i8", -100);
	gguf_set_val_u16(g, "t.u16", 60000);
	gguf_set_val_i16(g, "t.i16", -30000);
	gguf_set_val_u32(g, "t.u32", 4000000000u);
	gguf_set_val_i32(g, "t.i32", -2000000000);
	gguf_set_val_f32(g, "t.f32", 1e-5f);
	gguf_set_val_bool(g, "t.bool", true);
	gguf_set_val_bool(g, "t.false", false);
	gguf_set_val_u64(g, "t.u64", UINT64_MAX - 1);
	gguf_set_val_i64(g, "t.i64", INT64_MIN + 1);
	gguf_set_val_f64(g, "t.f64", -2.5e-300);
	gguf_set_val_str(g, "t.str", "{% for m in messages %}\n");
	gguf_set_val_str(g, "t.empty_str", "");
	gguf_set_arr_data(g, "a.u8", GGUF_TYPE_UINT8, a_u8, N(a_u8));
	gguf_set_arr_data(g, "a.i8", GGUF_TYPE_INT8, a_i8, N(a_i8));
	gguf_set_arr_data(g, "a.u16", GGUF_TYPE_UINT16, a_u16, N(a_u16));
	gguf_set_arr_data(g, "a.i16", GGUF_TYPE_INT16, a_i16, N(a_i16));
	gguf_set_arr_data(g, "a.u32", GGUF_TYPE_UINT32, a_u32, N(a_u32));
	gguf_set_arr_data(g, "a.i32", GGUF_TYPE_INT32, a_i32, N(a_i32));
	gguf_set_arr_data(g, "a.f32", GGUF_TYPE_FLOAT32, a_f32, N(a_f32));
	gguf_set_arr_data(g, "a.bool", GGUF_TYPE_BOOL, a_bool, N(a_bool));
	gguf_set_arr_data(g, "a.u64", GGUF_TYPE_UINT64, a_u64, N(a_u64));
	gguf_set_arr_data(g, "a.i64", GGUF_TYPE_INT64, a_i64, N(a_i64));
	gguf_set_arr_data(g, "a.f64", GGUF_TYPE_FLOAT64, a_f64, N(a_f64));
	gguf_set_arr_data(g, "a.empty", GGUF_TYPE_INT32, NULL, 0);
	gguf_set_arr_str(g, "a.str", (const char **)(uintptr_t)a_str, N(a_str));
	gguf_set_arr_str(g, "a.empty_str", NULL, 0);
	tctx = ggml_init(ip);
	assert_non_null(tctx);
	for (i = 0; i < N(model_tensors); i++) {
		struct ggml_tensor *t;

		for (k = 0; k < 4; k++)
			ne[k] = (int64_t)model_tensors[i].ne[k];
		t = ggml_new_tensor(tctx, model_tensors[i].type,
				    (int)model_tensors[i].ndim, ne);
		ggml_set_name(t, model_tensors[i].name);
		gguf_add_tensor(g, t);
	}
	meta = gguf_get_meta_size(g);
	assert_int_equal(meta, w.data_start);
	theirs = malloc(meta);
	assert_non_null(theirs);
	gguf_get_meta_data(g, theirs);
	ours = (uint8_t *)th_slurp(c->path, &len);
	assert_non_null(ours);
	assert_int_equal(len, w.file_size);
	assert_memory_equal(ours, theirs, meta);
	/* and ggml would place the data where the writer did */
	for (i = 0; i < N(model_tensors); i++)
		assert_int_equal(gguf_get_tensor_offset(g, (int64_t)i) +
				 w.data_start, w.tensors[i].offset);
	free(ours);
	free(theirs);
	gguf_free(g);
	ggml_free(tctx);
	mb_gguf_w_release(&w);
}

static void test_type_table(void **state)
{
	static const int types[] = {
		MB_GGML_F32,  MB_GGML_F16,  MB_GGML_Q4_0, MB_GGML_Q4_1,
		MB_GGML_Q5_0, MB_GGML_Q5_1, MB_GGML_Q8_0, MB_GGML_Q2_K,
		MB_GGML_Q3_K, MB_GGML_Q4_K, MB_GGML_Q5_K, MB_GGML_Q6_K,
		MB_GGML_BF16, MB_GGML_IQ2_XXS, MB_GGML_IQ2_XS, MB_GGML_IQ3_XXS,
		MB_GGML_IQ4_NL, MB_GGML_IQ3_S, MB_GGML_IQ2_S, MB_GGML_IQ4_XS,
	};
	char upper[16];
	size_t i, k;

	(void)state;
	for (i = 0; i < N(types); i++) {
		int t = types[i];
		uint64_t blck = (uint64_t)ggml_blck_size(t);
		const char *gn = ggml_type_name(t);

		assert_non_null(mb_ggml_type_name(t));
		for (k = 0; gn[k] != '\0' && k + 1 < sizeof(upper); k++)
			upper[k] = gn[k] >= 'a' && gn[k] <= 'z' ?
				(char)(gn[k] - 'a' + 'A') : gn[k];
		upper[k] = '\0';
		assert_string_equal(mb_ggml_type_name(t), upper);
		assert_int_equal(mb_ggml_row_size(t, blck), ggml_type_size(t));
		assert_int_equal(mb_ggml_row_size(t, 4096), ggml_row_size(t, 4096));
		assert_int_equal(mb_ggml_row_size(t, 0), 0);
		if (blck > 1)
			assert_int_equal(mb_ggml_row_size(t, blck + 1), 0);
	}
	assert_null(mb_ggml_type_name(4));	/* Q4_2, long gone */
	assert_null(mb_ggml_type_name(-1));
	assert_null(mb_ggml_type_name(GGML_TYPE_COUNT));
	assert_int_equal(mb_ggml_row_size(4, 32), 0);
	assert_int_equal(mb_ggml_row_size(MB_GGML_F32, UINT64_MAX / 2), 0);
}

static void test_writer_errors(void **state)
{
	static const uint64_t ne2[] = { 64, 4 }, bad[] = { 33, 4 };
	static const uint64_t huge[] = { 1ull << 32, 1ull << 32 };
	static const uint64_t neg[] = { 1ull << 63, 1 };
	char name[80], *big;
	struct mb_gguf_w w;
	size_t len;

	(void)state;
	assert_int_equal(mb_gguf_w_init(&w, 48), MB_EINVAL);
	assert_int_equal(mb_gguf_w_init(&w, 0), 0);
	assert_int_equal(w.alignment, 32);
	assert_int_equal(mb_gguf_w_u32(&w, "k", 1), 0);
	len = w.kv->len;
	assert_int_equal(mb_gguf_w_u32(&w, "k", 2), MB_EEXIST);
	assert_int_equal(mb_gguf_w_str(&w, "k", "x"), MB_EEXIST);
	assert_int_equal(mb_gguf_w_u32(&w, "", 2), MB_EINVAL);
	assert_int_equal(mb_gguf_w_str(&w, "s", NULL), MB_EINVAL);
	assert_int_equal(mb_gguf_w_arr(&w, "a", MB_GGUF_STRING, "x", 1),
			 MB_EINVAL);
	assert_int_equal(mb_gguf_w_arr(&w, "a", MB_GGUF_ARRAY, "x", 1),
			 MB_EINVAL);
	assert_int_equal(mb_gguf_w_arr(&w, "a", (enum mb_gguf_type)13, "x", 1),
			 MB_EINVAL);
	assert_int_equal(mb_gguf_w_arr(&w, "a", MB_GGUF_UINT8, NULL, 1),
			 MB_EINVAL);
	assert_int_equal(mb_gguf_w_arr(&w, "a", MB_GGUF_UINT8, "x",
				       MB_GGUF_MAX_ARRAY + 1ull), MB_ETOOBIG);
	big = malloc(MB_GGUF_MAX_STRING + 2);
	assert_non_null(big);
	memset(big, 'x', MB_GGUF_MAX_STRING + 1);
	big[MB_GGUF_MAX_STRING + 1] = '\0';
	assert_int_equal(mb_gguf_w_str(&w, "s", big), MB_ETOOBIG);
	big[MB_GGUF_MAX_KEY + 1] = '\0';
	assert_int_equal(mb_gguf_w_u8(&w, big, 1), MB_EINVAL);
	free(big);
	/* a failed add leaves the writer as it was */
	assert_int_equal(w.kv->len, len);
	assert_int_equal(w.n_kv, 1);

	assert_int_equal(mb_gguf_w_tensor(&w, "t", MB_GGML_Q8_0, 2, ne2), 0);
	assert_int_equal(mb_gguf_w_tensor(&w, "t", MB_GGML_F32, 2, ne2),
			 MB_EEXIST);
	assert_int_equal(mb_gguf_w_tensor(&w, "u", MB_GGML_Q8_0, 2, bad),
			 MB_EINVAL);
	assert_int_equal(mb_gguf_w_tensor(&w, "u", 4, 2, ne2), MB_EINVAL);
	assert_int_equal(mb_gguf_w_tensor(&w, "u", MB_GGML_F32, 0, ne2),
			 MB_EINVAL);
	assert_int_equal(mb_gguf_w_tensor(&w, "u", MB_GGML_F32, 5, ne2),
			 MB_EINVAL);
	assert_int_equal(mb_gguf_w_tensor(&w, "u", MB_GGML_F32, 2, huge),
			 MB_ETOOBIG);
	assert_int_equal(mb_gguf_w_tensor(&w, "u", MB_GGML_F32, 2, neg),
			 MB_ETOOBIG);
	assert_int_equal(mb_gguf_w_tensor(&w, "", MB_GGML_F32, 2, ne2),
			 MB_EINVAL);
	memset(name, 'n', sizeof(name));
	name[MB_GGUF_MAX_NAME + 1] = '\0';
	assert_int_equal(mb_gguf_w_tensor(&w, name, MB_GGML_F32, 2, ne2),
			 MB_EINVAL);
	name[MB_GGUF_MAX_NAME] = '\0';
	assert_int_equal(mb_gguf_w_tensor(&w, name, MB_GGML_F32, 2, ne2), 1);
	assert_int_equal(w.ntensors, 2);

	assert_int_equal(mb_gguf_w_write_header(&w, -1), MB_EINVAL);
	assert_int_equal(mb_gguf_w_finish(&w, -1), MB_EINVAL);
	assert_int_equal(mb_gguf_w_layout(&w), 0);
	assert_int_equal(mb_gguf_w_u32(&w, "late", 1), MB_EINVAL);
	assert_int_equal(mb_gguf_w_tensor(&w, "late", MB_GGML_F32, 2, ne2),
			 MB_EINVAL);
	/* 24 + key 'k' (8+1+4+4) + infos (8+1+4+16+4+8, 8+63+4+16+4+8) =
	 * 185, padded to 192; Q8_0 [64, 4] is 272 bytes, padded to 288 */
	assert_int_equal(w.data_start, 192);
	assert_int_equal(w.tensors[0].offset, 192);
	assert_int_equal(w.tensors[0].size, 2 * 4 * 34);
	assert_int_equal(w.tensors[1].offset, 192 + 288);
	assert_int_equal(w.tensors[1].size, 4 * 64 * 4);
	assert_int_equal(w.file_size, 192 + 288 + 1024);
	mb_gguf_w_release(&w);
}

/* A file with no tensors: ggml pads the header when writing but a reader
 * takes the data start as the end of the header. */
static void test_no_tensors(void **state)
{
	struct ctx *c = *state;
	struct gguf_init_params p = { true, NULL };
	struct gguf_context *gg;
	struct mb_gguf_w w;
	struct mb_gguf *g;
	char err[256] = "";

	assert_int_equal(mb_gguf_w_init(&w, 0), 0);
	assert_int_equal(mb_gguf_w_str(&w, "general.name", "abc"), 0);
	assert_int_equal(write_file(&w, c->path), 0);
	assert_int_equal(w.data_start, 64);
	assert_int_equal(w.file_size, 64);
	assert_int_equal(mb_gguf_read(c->path, &g, err, sizeof(err)), 0);
	assert_int_equal(g->ntensors, 0);
	assert_int_equal(g->data_start, 24 + 8 + 12 + 4 + 8 + 3);
	gg = gguf_init_from_file(c->path, p);
	assert_non_null(gg);
	assert_int_equal(gguf_get_data_offset(gg), g->data_start);
	gguf_free(gg);
	mb_gguf_free(g);
	mb_gguf_w_release(&w);
}

/* A header longer than mb_gguf_read's first read (a big vocab). */
static void test_long_header(void **state)
{
	struct ctx *c = *state;
	enum { NSTR = 6000 };
	static char text[NSTR][64];
	const char *strs[NSTR];
	const struct mb_gguf_kv *kv;
	struct mb_gguf_w w;
	struct mb_gguf *g;
	char err[256] = "";
	uint8_t *bytes;
	size_t i, len;

	for (i = 0; i < NSTR; i++) {
		snprintf(text[i], sizeof(text[i]), "token-%zu-%0*d", i, 40, 0);
		strs[i] = text[i];
	}
	assert_int_equal(mb_gguf_w_init(&w, 0), 0);
	assert_int_equal(mb_gguf_w_arr_str(&w, "tokenizer.ggml.tokens", strs,
					   NSTR), 0);
	assert_int_equal(build(&w), 0);
	assert_int_equal(write_file(&w, c->path), 0);
	assert_true(w.data_start > 256 * 1024);
	assert_int_equal(mb_gguf_read(c->path, &g, err, sizeof(err)), 0);
	kv = mb_gguf_kv(g, "tokenizer.ggml.tokens");
	assert_int_equal(kv->n, NSTR);
	for (i = 0; i < NSTR; i++)
		assert_string_equal(kv->strs[i], text[i]);
	assert_int_equal(g->ntensors, N(model_tensors));
	mb_gguf_free(g);

	/* given only part of the header, the parser says so */
	bytes = (uint8_t *)th_slurp(c->path, &len);
	assert_non_null(bytes);
	assert_int_equal(mb_gguf_parse(bytes, 1000, len, &g, err, sizeof(err)),
			 MB_EFORMAT);
	assert_null(g);
	assert_non_null(strstr(err, "the header is longer than the 1000 bytes "
				    "read"));
	assert_int_equal(mb_gguf_parse(bytes, len, len - 1, &g, err,
				       sizeof(err)), MB_EINVAL);
	assert_int_equal(mb_gguf_parse(bytes, w.data_start, len, &g, err,
				       sizeof(err)), 0);
	mb_gguf_free(g);
	/* version 2 has the same layout */
	bytes[4] = 2;
	assert_int_equal(mb_gguf_parse(bytes, len, len, &g, err, sizeof(err)),
			 0);
	assert_int_equal(g->version, 2);
	mb_gguf_free(g);
	free(bytes);
	mb_gguf_w_release(&w);
}

/* --- hostile files --- */

struct bb {
	uint8_t b[4096];
	size_t n;
};

static void b_raw(struct bb *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof(b->b));
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void b_u32(struct bb *b, uint32_t v)
{
	b_raw(b, &v, 4);
}

static void b_u64(struct bb *b, uint64_t v)
{
	b_raw(b, &v, 8);
}

static void b_str(struct bb *b, const char *s)
{
	b_u64(b, strlen(s));
	b_raw(b, s, strlen(s));
}

static void b_hdr(struct bb *b, uint32_t version, int64_t nt, int64_t nkv)
{
	b->n = 0;
	b_raw(b, "GGUF", 4);
	b_u32(b, version);
	b_u64(b, (uint64_t)nt);
	b_u64(b, (uint64_t)nkv);
}

/* header + one KV general.name = "x" */
static void b_start(struct bb *b, int64_t nt)
{
	b_hdr(b, 3, nt, 1);
	b_str(b, "general.name");
	b_u32(b, MB_GGUF_STRING);
	b_str(b, "x");
}

static void b_info(struct bb *b, const char *name, uint32_t ndim,
		   int64_t ne0, int64_t ne1, int32_t type, uint64_t off)
{
	b_str(b, name);
	b_u32(b, ndim);
	if (ndim >= 1)
		b_u64(b, (uint64_t)ne0);
	if (ndim >= 2)
		b_u64(b, (uint64_t)ne1);
	if (ndim >= 3)
		b_u64(b, 1);
	if (ndim >= 4)
		b_u64(b, 1);
	if (ndim >= 5)
		b_u64(b, 1);
	b_u32(b, (uint32_t)type);
	b_u64(b, off);
}

static void b_pad(struct bb *b, size_t align)
{
	static const uint8_t z[64];

	b_raw(b, z, (align - b->n % align) % align);
}

static void b_zeros(struct bb *b, size_t n)
{
	static const uint8_t z[512];

	assert_true(n <= sizeof(z));
	b_raw(b, z, n);
}

/* KV 'k' of type type; the value is up to the case */
static void b_key(struct bb *b, uint32_t type)
{
	b_hdr(b, 3, 0, 1);
	b_str(b, "k");
	b_u32(b, type);
}

struct hostile {
	const char *what;
	void (*make)(struct bb *b);
	int rc;
	const char *msg;
	int ggml_refuses;	/* ggml's own parser refuses it too */
};

static void h_magic(struct bb *b)
{
	b_start(b, 0);
	memcpy(b->b, "GG\x01X", 4);
}

static void h_version4(struct bb *b)
{
	b_start(b, 0);
	b->b[4] = 4;
}

static void h_version1(struct bb *b)
{
	b_start(b, 0);
	b->b[4] = 1;
}

static void h_huge_nkv(struct bb *b)
{
	b_hdr(b, 3, 0, 1ll << 40);
}

static void h_nkv_no_room(struct bb *b)
{
	b_hdr(b, 3, 0, 65536);
	b_zeros(b, 100);
}

static void h_neg_ntensors(struct bb *b)
{
	b_hdr(b, 3, -1, 0);
}

static void h_huge_key(struct bb *b)
{
	b_hdr(b, 3, 0, 1);
	b_u64(b, 1ull << 40);
	b_zeros(b, 16);
}

static void h_empty_key(struct bb *b)
{
	b_hdr(b, 3, 0, 1);
	b_str(b, "");
	b_u32(b, MB_GGUF_UINT8);
	b_zeros(b, 1);
}

static void h_huge_string(struct bb *b)
{
	b_key(b, MB_GGUF_STRING);
	b_u64(b, 2u << 20);
	b_zeros(b, 16);
}

static void h_string_past_end(struct bb *b)
{
	b_key(b, MB_GGUF_STRING);
	b_u64(b, 100);
	b_zeros(b, 10);
}

static void h_unknown_type(struct bb *b)
{
	b_key(b, 13);
	b_zeros(b, 8);
}

static void h_nested(struct bb *b)
{
	b_key(b, MB_GGUF_ARRAY);
	b_u32(b, MB_GGUF_ARRAY);
	b_u64(b, 1);
	b_u32(b, MB_GGUF_UINT8);
	b_u64(b, 1);
	b_zeros(b, 1);
}

static void h_array_past_end(struct bb *b)
{
	b_key(b, MB_GGUF_ARRAY);
	b_u32(b, MB_GGUF_UINT32);
	b_u64(b, 1000);
	b_zeros(b, 40);
}

static void h_array_too_long(struct bb *b)
{
	b_key(b, MB_GGUF_ARRAY);
	b_u32(b, MB_GGUF_UINT8);
	b_u64(b, 1ull << 40);
	b_zeros(b, 40);
}

static void h_str_array_past_end(struct bb *b)
{
	b_key(b, MB_GGUF_ARRAY);
	b_u32(b, MB_GGUF_STRING);
	b_u64(b, 3);
	b_str(b, "one");
	b_str(b, "two");
	b_u64(b, 50);
	b_raw(b, "three", 5);
}

static void h_dup_key(struct bb *b)
{
	b_hdr(b, 3, 0, 2);
	b_str(b, "k");
	b_u32(b, MB_GGUF_UINT8);
	b_zeros(b, 1);
	b_str(b, "k");
	b_u32(b, MB_GGUF_UINT8);
	b_zeros(b, 1);
}

static void h_align_type(struct bb *b)
{
	b_hdr(b, 3, 0, 1);
	b_str(b, "general.alignment");
	b_u32(b, MB_GGUF_UINT64);
	b_u64(b, 32);
}

static void h_align_pow2(struct bb *b)
{
	b_hdr(b, 3, 0, 1);
	b_str(b, "general.alignment");
	b_u32(b, MB_GGUF_UINT32);
	b_u32(b, 48);
}

static void h_ndim5(struct bb *b)
{
	b_start(b, 1);
	b_info(b, "a", 5, 32, 1, MB_GGML_F32, 0);
	b_pad(b, 32);
	b_zeros(b, 128);
}

static void h_ndim0(struct bb *b)
{
	b_start(b, 1);
	b_info(b, "a", 0, 0, 0, MB_GGML_F32, 0);
	b_pad(b, 32);
	b_zeros(b, 32);
}

static void h_neg_ne(struct bb *b)
{
	b_start(b, 1);
	b_info(b, "a", 2, 32, -2, MB_GGML_F32, 0);
	b_pad(b, 32);
	b_zeros(b, 128);
}

static void h_overflow(struct bb *b)
{
	b_start(b, 1);
	b_info(b, "a", 2, 1ll << 32, 1ll << 32, MB_GGML_F32, 0);
	b_pad(b, 32);
	b_zeros(b, 32);
}

static void h_unknown_ggml(struct bb *b)
{
	b_start(b, 1);
	b_info(b, "a", 1, 32, 0, 99, 0);
	b_pad(b, 32);
	b_zeros(b, 128);
}

static void h_removed_ggml(struct bb *b)
{
	b_start(b, 1);
	b_info(b, "a", 1, 32, 0, 4 /* Q4_2 */, 0);
	b_pad(b, 32);
	b_zeros(b, 128);
}

static void h_row_block(struct bb *b)
{
	b_start(b, 1);
	b_info(b, "a", 1, 33, 0, MB_GGML_Q8_0, 0);
	b_pad(b, 32);
	b_zeros(b, 64);
}

static void h_long_name(struct bb *b)
{
	char name[65];

	memset(name, 'n', 64);
	name[64] = '\0';
	b_start(b, 1);
	b_info(b, name, 1, 8, 0, MB_GGML_F32, 0);
	b_pad(b, 32);
	b_zeros(b, 32);
}

static void h_dup_tensor(struct bb *b)
{
	b_start(b, 2);
	b_info(b, "a", 1, 8, 0, MB_GGML_F32, 0);
	b_info(b, "a", 1, 8, 0, MB_GGML_F32, 32);
	b_pad(b, 32);
	b_zeros(b, 64);
}

static void h_misaligned(struct bb *b)
{
	b_start(b, 2);
	b_info(b, "a", 1, 8, 0, MB_GGML_F32, 0);
	b_info(b, "b", 1, 8, 0, MB_GGML_F32, 40);
	b_pad(b, 32);
	b_zeros(b, 96);
}

static void h_gap(struct bb *b)
{
	b_start(b, 2);
	b_info(b, "a", 1, 8, 0, MB_GGML_F32, 0);
	b_info(b, "b", 1, 8, 0, MB_GGML_F32, 64);
	b_pad(b, 32);
	b_zeros(b, 96);
}

static void h_overlap(struct bb *b)
{
	b_start(b, 2);
	b_info(b, "a", 1, 8, 0, MB_GGML_F32, 0);
	b_info(b, "b", 1, 8, 0, MB_GGML_F32, 0);
	b_pad(b, 32);
	b_zeros(b, 64);
}

static void h_data_past_end(struct bb *b)
{
	b_start(b, 1);
	b_info(b, "a", 1, 16, 0, MB_GGML_F32, 0);
	b_pad(b, 32);
	b_zeros(b, 63);
}

static void h_data_start_past_end(struct bb *b)
{
	b_start(b, 1);
	b_info(b, "a", 1, 0, 0, MB_GGML_F32, 0);
	if (b->n % 32 == 0)
		b_zeros(b, 1);	/* the case needs an unpadded end */
}

static void h_info_truncated(struct bb *b)
{
	b_start(b, 1);
	b_str(b, "a");
	b_u32(b, 2);
	b_u64(b, 8);
}

static void h_control_chars(struct bb *b)
{
	b_hdr(b, 3, 0, 1);
	b_str(b, "evil\n[ERROR] forged");
	b_u32(b, 77);
	b_zeros(b, 4);
}

static void h_nul_in_key(struct bb *b)
{
	b_hdr(b, 3, 0, 1);
	b_u64(b, 3);
	b_raw(b, "a\0b", 3);
	b_u32(b, MB_GGUF_UINT8);
	b_zeros(b, 1);
}

static void h_empty(struct bb *b)
{
	b->n = 0;
}

static const struct hostile hostile[] = {
	{ "bad magic", h_magic, MB_EFORMAT,
	  "bad magic 'GG?X', expected 'GGUF'", 1 },
	{ "version 4", h_version4, MB_EUNSUPPORTED,
	  "unsupported GGUF version 4", 1 },
	{ "version 1", h_version1, MB_EUNSUPPORTED,
	  "unsupported GGUF version 1", 1 },
	{ "huge n_kv", h_huge_nkv, MB_EFORMAT,
	  "key-value count 1099511627776 is outside 0..65536", 1 },
	{ "n_kv without room", h_nkv_no_room, MB_EFORMAT,
	  "65536 key-values and 0 tensors cannot fit in the 124-byte file", 1 },
	{ "negative n_tensors", h_neg_ntensors, MB_EFORMAT,
	  "tensor count -1 is outside 0..65536", 1 },
	{ "huge key length", h_huge_key, MB_EFORMAT,
	  "key #0: length 1099511627776 exceeds 1048576", 1 },
	{ "empty key", h_empty_key, MB_EFORMAT,
	  "key #0: name is empty or holds a NUL", 1 },
	{ "huge string length", h_huge_string, MB_EFORMAT,
	  "key 'k': length 2097152 exceeds 1048576", 1 },
	{ "string past end", h_string_past_end, MB_EFORMAT,
	  "key 'k': 100 bytes at offset 45 run past the end of the 55-byte "
	  "file", 1 },
	{ "unknown KV type", h_unknown_type, MB_EFORMAT,
	  "key 'k' has unknown type 13", 1 },
	{ "nested array", h_nested, MB_EFORMAT,
	  "key 'k' is an array of arrays", 1 },
	{ "array past end", h_array_past_end, MB_EFORMAT,
	  "key 'k': 4000 bytes at offset 49 run past the end of the 89-byte file", 1 },
	{ "array too long", h_array_too_long, MB_EFORMAT,
	  "key 'k': array of 1099511627776 elements exceeds 16777216", 1 },
	{ "string array past end", h_str_array_past_end, MB_EFORMAT,
	  "key 'k': 50 bytes at offset", 1 },
	{ "duplicate key", h_dup_key, MB_EFORMAT, "duplicate key 'k'", 1 },
	{ "alignment type", h_align_type, MB_EFORMAT,
	  "key 'general.alignment' must be UINT32, not UINT64", 1 },
	{ "alignment not a power of two", h_align_pow2, MB_EFORMAT,
	  "general.alignment 48 is not a power of two", 1 },
	{ "ndim 5", h_ndim5, MB_EFORMAT,
	  "tensor 'a' has 5 dimensions, expected 1..4", 1 },
	{ "ndim 0", h_ndim0, MB_EFORMAT,
	  "tensor 'a' has 0 dimensions, expected 1..4", 0 },
	{ "negative ne", h_neg_ne, MB_EFORMAT,
	  "tensor 'a' dimension 1 is negative (-2)", 1 },
	/* ggml accepts this one: its element count wraps to 0 before its
	 * overflow check, and so does its byte count */
	{ "product overflow", h_overflow, MB_EFORMAT,
	  "tensor 'a' shape [4294967296, 4294967296, 1, 1] overflows", 0 },
	{ "unknown ggml type", h_unknown_ggml, MB_EFORMAT,
	  "tensor 'a' has unknown ggml type 99", 1 },
	{ "removed ggml type", h_removed_ggml, MB_EFORMAT,
	  "tensor 'a' has unknown ggml type 4", 1 },
	{ "row not whole blocks", h_row_block, MB_EFORMAT,
	  "tensor 'a' row of 33 elements is not a multiple of the Q8_0 block "
	  "size 32", 1 },
	{ "tensor name too long", h_long_name, MB_EFORMAT,
	  "tensor #0: length 64 exceeds 63", 1 },
	{ "duplicate tensor", h_dup_tensor, MB_EFORMAT,
	  "duplicate tensor name 'a'", 1 },
	{ "misaligned offset", h_misaligned, MB_EFORMAT,
	  "tensor 'b' offset 40 is not a multiple of the alignment 32", 1 },
	{ "offset gap", h_gap, MB_EFORMAT,
	  "tensor 'b' has offset 64, expected 32", 1 },
	{ "offset overlap", h_overlap, MB_EFORMAT,
	  "tensor 'b' has offset 0, expected 32", 1 },
	{ "data past end", h_data_past_end, MB_EFORMAT,
	  "tensor 'a' data (64 bytes at 96) is past the end of the 159-byte "
	  "file", 1 },
	{ "data start past end", h_data_start_past_end, MB_EFORMAT,
	  "data start 96 is past the end of the", 1 },
	{ "tensor info truncated", h_info_truncated, MB_EFORMAT,
	  "tensor 'a': 8 bytes at offset", 1 },
	{ "control characters in a key", h_control_chars, MB_EFORMAT,
	  "key 'evil?[ERROR] forged' has unknown type 77", 1 },
	{ "NUL in a key", h_nul_in_key, MB_EFORMAT,
	  "key #0: name is empty or holds a NUL", 0 },
	{ "empty file", h_empty, MB_EFORMAT,
	  "magic: 4 bytes at offset 0 run past the end of the 0-byte file", 1 },
};

/* ggml's parser explains every file it refuses on stderr; the test only
 * needs to know that it refused. */
static void quiet(enum ggml_log_level level, const char *text, void *user)
{
	(void)level;
	(void)text;
	(void)user;
}

static void test_hostile(void **state)
{
	struct ggml_context *gctx;
	struct gguf_init_params p = { false, &gctx };
	struct gguf_context *gg;
	struct mb_gguf *g;
	struct bb b;
	char err[256];
	size_t i;
	int rc;

	(void)state;
	ggml_log_set(quiet, NULL);
	for (i = 0; i < N(hostile); i++) {
		hostile[i].make(&b);
		g = (struct mb_gguf *)&b;	/* must come back NULL */
		err[0] = '\0';
		rc = mb_gguf_parse(b.b, b.n, b.n, &g, err, sizeof(err));
		if (rc != hostile[i].rc || strstr(err, hostile[i].msg) == NULL)
			fail_msg("%s: got %s '%s', expected %s '%s'",
				 hostile[i].what, mb_errname(rc), err,
				 mb_errname(hostile[i].rc), hostile[i].msg);
		assert_null(g);
		if (!hostile[i].ggml_refuses || b.n == 0)
			continue;
		gctx = NULL;
		gg = gguf_init_from_buffer(b.b, b.n, p);
		if (gg != NULL)
			fail_msg("%s: ggml accepts it", hostile[i].what);
	}
	ggml_log_set(NULL, NULL);
}

/* The cases ggml accepts and mibera refuses, and a valid file, go through
 * ggml too, so the stricter rules are known to be mibera's own. */
static void test_ggml_accepts(void **state)
{
	struct gguf_init_params p = { true, NULL };
	struct gguf_context *gg;
	struct mb_gguf *g;
	char err[256];
	struct bb b;

	(void)state;
	h_ndim0(&b);
	gg = gguf_init_from_buffer(b.b, b.n, p);
	assert_non_null(gg);
	gguf_free(gg);
	b_start(&b, 2);
	b_info(&b, "a", 1, 8, 0, MB_GGML_F32, 0);
	b_info(&b, "b", 2, 32, 2, MB_GGML_Q8_0, 32);
	b_pad(&b, 32);
	b_zeros(&b, 32 + 68);
	gg = gguf_init_from_buffer(b.b, b.n, p);
	assert_non_null(gg);
	gguf_free(gg);
	assert_int_equal(mb_gguf_parse(b.b, b.n, b.n, &g, err, sizeof(err)), 0);
	assert_int_equal(g->tensors[1].offset, g->data_start + 32);
	assert_int_equal(g->tensors[1].size, 68);
	assert_string_equal(mb_gguf_kv(g, "general.name")->v.s, "x");
	mb_gguf_free(g);
	/* the last tensor's padding is not required */
	assert_int_equal(mb_gguf_parse(b.b, b.n - 1, b.n - 1, &g, err,
				       sizeof(err)), MB_EFORMAT);
	assert_non_null(strstr(err, "tensor 'b' data (68 bytes"));
}

/* --- faults --- */

static int write_model(const char *path)
{
	struct mb_gguf_w w;
	int rc = mb_gguf_w_init(&w, 64);

	if (rc == 0)
		rc = build(&w);
	if (rc == 0)
		rc = write_file(&w, path);
	mb_gguf_w_release(&w);
	return rc;
}

static void test_alloc_faults(void **state)
{
	struct ctx *c = *state;
	struct mb_gguf *g;
	char err[256];
	long n;
	int rc;

	for (n = 0;; n++) {
		mb_fault_set(MB_FAULT_ALLOC, n, 1, ENOMEM);
		rc = write_model(c->path);
		mb_fault_clear();
		if (rc == 0)
			break;
		assert_int_equal(rc, MB_ENOMEM);
	}
	assert_true(n > 20);
	for (n = 0;; n++) {
		mb_fault_set(MB_FAULT_ALLOC, n, 1, ENOMEM);
		err[0] = '\0';
		g = NULL;
		rc = mb_gguf_read(c->path, &g, err, sizeof(err));
		mb_fault_clear();
		if (rc == 0)
			break;
		assert_int_equal(rc, MB_ENOMEM);
		assert_null(g);
		assert_non_null(strstr(err, "out of memory"));
	}
	assert_true(n > 20);
	mb_gguf_free(g);
}

static void test_io_faults(void **state)
{
	struct ctx *c = *state;
	struct mb_gguf *g = NULL;
	char err[256] = "";

	mb_fault_set(MB_FAULT_WRITE, 0, 1, ENOSPC);
	assert_int_equal(write_model(c->path), MB_ENOSPC);
	mb_fault_set(MB_FAULT_WRITE, 3, 1, EIO);	/* a tensor's data */
	assert_int_equal(write_model(c->path), MB_EIO);
	mb_fault_clear();
	assert_int_equal(write_model(c->path), 0);
	mb_fault_set(MB_FAULT_READ, 0, 1, EIO);
	assert_int_equal(mb_gguf_read(c->path, &g, err, sizeof(err)), MB_EIO);
	assert_null(g);
	assert_non_null(strstr(err, "cannot read '"));
	mb_fault_clear();
	assert_int_equal(mb_gguf_read("/nonexistent/x.gguf", &g, err,
				      sizeof(err)), MB_ENOENT);
	assert_non_null(strstr(err, "cannot open '/nonexistent/x.gguf'"));
	assert_int_equal(mb_gguf_read(c->dir, &g, err, sizeof(err)), MB_EINVAL);
	mb_gguf_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_type_table),
		cmocka_unit_test(test_writer_errors),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_ggml_accepts),
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_align64, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_align1, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_same_bytes_as_ggml, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_tensors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_header, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_alloc_faults, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_io_faults, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
