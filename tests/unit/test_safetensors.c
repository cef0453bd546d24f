/* Tests common/safetensors.c: valid headers and shard indexes parse; each
 * hostile header or index fails with its own error and no leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/safetensors.h"
#include "th.h"

static void le64(uint8_t out[8], uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		out[i] = (uint8_t)(v >> (8 * i));
}

/* Parses json as the header of a file with data_size bytes of data. */
static int parse(const char *json, uint64_t data_size,
		 struct mb_st_file **f, char *err, size_t cap)
{
	uint64_t n = strlen(json);

	return mb_st_parse_header(json, n, 8 + n + data_size, f, err, cap);
}

static void test_valid_header(void **state)
{
	const char *json =
		"{\"__metadata__\":{\"format\":\"pt\"},"
		"\"b\":{\"dtype\":\"BF16\",\"shape\":[3,4],"
		"\"data_offsets\":[8,32]},"
		"\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		"\"scalar\":{\"dtype\":\"I64\",\"shape\":[],"
		"\"data_offsets\":[32,40]},"
		"\"empty\":{\"dtype\":\"F16\",\"shape\":[0,5],"
		"\"data_offsets\":[40,40]}}";
	const struct mb_st_tensor *t;
	struct mb_st_file *f;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse(json, 40, &f, err, sizeof(err)), 0);
	assert_int_equal(f->ntensors, 4);
	assert_string_equal(f->tensors[0].name, "a"); /* sorted */
	t = mb_st_file_find(f, "b");
	assert_non_null(t);
	assert_int_equal(t->dtype, MB_ST_BF16);
	assert_int_equal(t->ndim, 2);
	assert_int_equal(t->shape[0], 3);
	assert_int_equal(t->shape[1], 4);
	assert_int_equal(t->nelem, 12);
	assert_int_equal(t->begin, 8);
	t = mb_st_file_find(f, "scalar");
	assert_int_equal(t->ndim, 0);
	assert_int_equal(t->nelem, 1);
	assert_null(mb_st_file_find(f, "c"));
	assert_int_equal(f->nmeta, 1);
	assert_string_equal(f->meta[0].key, "format");
	assert_string_equal(f->meta[0].value, "pt");
	assert_int_equal(f->data_start, 8 + strlen(json));
	mb_st_file_free(f);
	mb_st_file_free(NULL);
}

static void test_dtypes(void **state)
{
	static const char *names[] = { "BOOL", "U8", "I8", "I16", "I32",
				       "I64", "F8_E4M3", "F8_E5M2", "F16",
				       "BF16", "F32", "F64" };
	enum mb_st_dtype d;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_int_equal(mb_st_dtype_parse(names[i], &d), 0);
		assert_string_equal(mb_st_dtype_name(d), names[i]);
	}
	assert_int_equal(mb_st_dtype_size(MB_ST_BF16), 2);
	assert_int_equal(mb_st_dtype_size(MB_ST_F64), 8);
	assert_int_equal(mb_st_dtype_parse("bf16", &d), MB_EUNSUPPORTED);
	assert_int_equal(mb_st_dtype_parse("Q4_K", &d), MB_EUNSUPPORTED);
}

static void test_header_len(void **state)
{
	uint8_t b[8];
	uint64_t n;
	char err[256];

	(void)state;
	le64(b, 100);
	assert_int_equal(mb_st_header_len(b, 200, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 100);
	/* huge: refused before anything is allocated */
	le64(b, UINT64_MAX);
	assert_int_equal(mb_st_header_len(b, UINT64_MAX, &n, err, sizeof(err)),
			 MB_EFORMAT);
	assert_non_null(strstr(err, "outside"));
	le64(b, (100u << 20) + 1);
	assert_int_equal(mb_st_header_len(b, 1ull << 40, &n, err, sizeof(err)),
			 MB_EFORMAT);
	/* past the end of the file */
	le64(b, 193);
	assert_int_equal(mb_st_header_len(b, 200, &n, err, sizeof(err)),
			 MB_EFORMAT);
	assert_non_null(strstr(err, "past the end"));
	le64(b, 1);
	assert_int_equal(mb_st_header_len(b, 200, &n, err, sizeof(err)),
			 MB_EFORMAT);
	le64(b, 10);
	assert_int_equal(mb_st_header_len(b, 4, &n, err, sizeof(err)),
			 MB_EFORMAT);
}

struct bad {
	const char *json;
	uint64_t data_size;
	int rc;
	const char *why;
};

#define T(dt, shape, b, e) \
	"{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" b "," e "]}"

static void test_hostile_headers(void **state)
{
	static const struct bad bad[] = {
		{ "{\"a\":" T("F32", "[2]", "0", "8"), 8, MB_EJSON, "not valid json" },
		{ "[1,2]", 0, MB_EFORMAT, "not a json object" },
		{ "{\"a\":" T("F32", "[2]", "0", "8") "} junk", 8, MB_EJSON, "json" },
		{ "{\"a\":" T("F32", "[2]", "0", "16") "}", 8, MB_EFORMAT, "outside" },
		{ "{\"a\":" T("F32", "[0]", "8", "4") "}", 8, MB_EFORMAT, "outside" },
		{ "{\"a\":" T("F32", "[2]", "0", "8") ",\"b\":"
		  T("F32", "[2]", "4", "12") "}", 12, MB_EFORMAT, "overlap" },
		{ "{\"a\":" T("F32", "[4294967296,4294967296]", "0", "8") "}", 8,
		  MB_EFORMAT, "overflows" },
		{ "{\"a\":" T("F64", "[1125899906842624,2048]", "0", "8") "}", 8,
		  MB_EFORMAT, "overflows" },
		{ "{\"a\":" T("F32", "[3]", "0", "8") "}", 8, MB_EFORMAT, "holds 8 bytes" },
		{ "{\"a\":" T("Q4_K", "[2]", "0", "8") "}", 8, MB_EUNSUPPORTED,
		  "unknown dtype 'Q4_K'" },
		{ "{\"a\":" T("F32", "[2]", "0", "8") ",\"a\":"
		  T("F32", "[2]", "8", "16") "}", 16, MB_EFORMAT, "appears twice" },
		{ "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, MB_EFORMAT,
		  "no dtype" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
		  MB_EFORMAT, "no shape" },
		{ "{\"a\":" T("F32", "[-2]", "0", "8") "}", 8, MB_EFORMAT, "bad dimension" },
		{ "{\"a\":" T("F32", "[1.5]", "0", "8") "}", 8, MB_EFORMAT, "bad dimension" },
		{ "{\"a\":" T("F32", "[1e300]", "0", "8") "}", 8, MB_EFORMAT, "bad dimension" },
		{ "{\"a\":" T("F32", "[\"2\"]", "0", "8") "}", 8, MB_EFORMAT, "bad dimension" },
		{ "{\"a\":" T("F32", "[1,1,1,1,1,1,1,1,2]", "0", "8") "}", 8, MB_EFORMAT,
		  "dimensions" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}",
		  8, MB_EFORMAT, "data_offsets" },
		{ "{\"a\":" T("F32", "[2]", "-8", "0") "}", 8, MB_EFORMAT, "bad data_offsets" },
		{ "{\"a\":" T("F32", "[2]", "0", "1e30") "}", 8, MB_EFORMAT, "bad data_offsets" },
		{ "{\"__metadata__\":{\"format\":1}}", 0, MB_EFORMAT, "not a string" },
		{ "{\"__metadata__\":[1]}", 0, MB_EFORMAT, "not an object" },
		{ "{\"\":" T("F32", "[2]", "0", "8") "}", 8, MB_EFORMAT, "tensor name" },
		{ "{\"a\\nb\":" T("F32", "[2]", "0", "8") "}", 8, MB_EFORMAT, "tensor name" },
		{ "{\"a\":7}", 0, MB_EFORMAT, "not an object" },
		{ "{\"a\":" T("F32", "[NaN]", "0", "8") "}", 8, MB_EJSON, "json" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mb_st_file *f = (void *)1;
		char err[256] = "";
		int rc = parse(bad[i].json, bad[i].data_size, &f, err,
			       sizeof(err));

		if (rc != bad[i].rc || f != NULL ||
		    strstr(err, bad[i].why) == NULL)
			fail_msg("case %zu (%s): rc %d, err '%s'; wanted %d '%s'",
				 i, bad[i].json, rc, err, bad[i].rc, bad[i].why);
	}
}

static void test_read_file(void **state)
{
	const char *json = "{\"w\":" T("BF16", "[2,2]", "0", "8") "}  ";
	char dir[512], path[600], err[256];
	struct mb_st_file *f;
	uint8_t img[256];
	size_t n = strlen(json);

	(void)state;
	assert_int_equal(th_tmpdir("st", dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/m.safetensors", dir);
	le64(img, n);
	memcpy(img + 8, json, n);
	memset(img + 8 + n, 0x3c, 8);
	assert_int_equal(th_write_file(path, img, 8 + n + 8), 0);
	assert_int_equal(mb_st_read_file(path, &f, err, sizeof(err)), 0);
	assert_int_equal(f->ntensors, 1);
	assert_int_equal(f->file_size, 8 + n + 8);
	mb_st_file_free(f);
	/* the same file cut inside its data: the tensor no longer fits */
	assert_int_equal(th_write_file(path, img, 8 + n + 7), 0);
	assert_int_equal(mb_st_read_file(path, &f, err, sizeof(err)),
			 MB_EFORMAT);
	assert_non_null(strstr(err, "outside"));
	/* cut inside its header */
	assert_int_equal(th_write_file(path, img, 8 + n - 3), 0);
	assert_int_equal(mb_st_read_file(path, &f, err, sizeof(err)),
			 MB_EFORMAT);
	assert_non_null(strstr(err, "past the end"));
	assert_int_equal(th_write_file(path, img, 5), 0);
	assert_int_equal(mb_st_read_file(path, &f, err, sizeof(err)),
			 MB_EFORMAT);
	assert_int_equal(mb_st_read_file("/nonexistent.safetensors", &f, err,
					 sizeof(err)),
			 MB_ENOENT);
	th_rmtree(dir);
}

/* A two-shard model: x and y in shard 1, z in shard 2. */
static const char *shard1 = "{\"x\":" T("F32", "[1]", "0", "4") ",\"y\":"
			    T("F32", "[1]", "4", "8") "}";
static const char *shard2 = "{\"z\":" T("F32", "[1]", "0", "4") "}";
static const char *index_ok =
	"{\"metadata\":{\"total_size\":12},\"weight_map\":{"
	"\"x\":\"m-1.safetensors\",\"y\":\"m-1.safetensors\","
	"\"z\":\"m-2.safetensors\"}}";

static struct mb_st_file *hdr(const char *json, uint64_t data)
{
	struct mb_st_file *f = NULL;

	assert_int_equal(parse(json, data, &f, NULL, 0), 0);
	return f;
}

static void test_index_valid(void **state)
{
	struct mb_st_model *m;
	char err[256] = "";

	(void)state;
	assert_int_equal(mb_st_index_parse(index_ok, strlen(index_ok), &m, err,
					   sizeof(err)),
			 0);
	assert_int_equal(m->nshards, 2);
	assert_string_equal(m->shards[0], "m-1.safetensors");
	assert_int_equal(mb_st_model_set_file(m, 0, hdr(shard1, 8)), 0);
	assert_int_equal(mb_st_model_set_file(m, 0, hdr(shard1, 8)), MB_EEXIST);
	assert_int_equal(mb_st_model_set_file(m, 1, hdr(shard2, 4)), 0);
	assert_int_equal(mb_st_model_finish(m, err, sizeof(err)), 0);
	assert_int_equal(m->ntensors, 3);
	assert_int_equal(mb_st_model_find(m, "z")->shard, 1);
	assert_null(mb_st_model_find(m, "w"));
	assert_int_equal(m->total_bytes,
			 (8 + strlen(shard1) + 8) + (8 + strlen(shard2) + 4));
	mb_st_model_free(m);
}

static void expect_index_error(const char *json, const char *why)
{
	struct mb_st_model *m = (void *)1;
	char err[256] = "";
	int rc = mb_st_index_parse(json, strlen(json), &m, err, sizeof(err));

	if (rc == 0 || m != NULL || strstr(err, why) == NULL)
		fail_msg("index %s: rc %d err '%s', wanted '%s'", json, rc, err,
			 why);
}

static void test_index_hostile(void **state)
{
	(void)state;
	expect_index_error("{\"weight_map\":{\"x\":\"../m.safetensors\"}}",
			   "unsafe path");
	expect_index_error("{\"weight_map\":{\"x\":\"/etc/passwd\"}}",
			   "unsafe path");
	expect_index_error("{\"weight_map\":{\"x\":\"a\\\\b.safetensors\"}}",
			   "unsafe path");
	expect_index_error("{\"weight_map\":{\"x\":\"a//b\"}}", "unsafe path");
	expect_index_error("{\"weight_map\":{\"x\":5}}", "not a tensor name");
	expect_index_error("{\"weight_map\":[]}", "no weight_map");
	expect_index_error("{\"weight_map\":{}}", "0 entries");
	expect_index_error("{\"weight_map\":{\"x\":\"a\",\"x\":\"b\"}}",
			   "twice");
	expect_index_error("{\"weight_map\":", "not valid json");
}

static void finish_error(const char *index, const char *s1, uint64_t d1,
			 const char *s2, uint64_t d2, const char *why)
{
	struct mb_st_model *m;
	char err[256] = "";

	assert_int_equal(mb_st_index_parse(index, strlen(index), &m, NULL, 0),
			 0);
	if (s1 != NULL)
		assert_int_equal(mb_st_model_set_file(m, 0, hdr(s1, d1)), 0);
	if (s2 != NULL)
		assert_int_equal(mb_st_model_set_file(m, 1, hdr(s2, d2)), 0);
	if (mb_st_model_finish(m, err, sizeof(err)) == 0 ||
	    strstr(err, why) == NULL)
		fail_msg("finish: err '%s', wanted '%s'", err, why);
	mb_st_model_free(m);
}

static void test_model_hostile(void **state)
{
	const char *moved = "{\"weight_map\":{\"x\":\"m-1.safetensors\","
			    "\"y\":\"m-2.safetensors\","
			    "\"z\":\"m-2.safetensors\"}}";
	const char *fewer = "{\"weight_map\":{\"x\":\"m-1.safetensors\","
			    "\"z\":\"m-2.safetensors\"}}";
	const char *more = "{\"weight_map\":{\"x\":\"m-1.safetensors\","
			   "\"y\":\"m-1.safetensors\",\"w\":\"m-2.safetensors\","
			   "\"z\":\"m-2.safetensors\"}}";
	const char *twice = "{\"z\":" T("F32", "[1]", "0", "4") ",\"x\":"
			    T("F32", "[1]", "4", "8") "}";

	(void)state;
	/* the index names a shard that is not there */
	finish_error(index_ok, shard1, 8, NULL, 0,
		     "shard 'm-2.safetensors' is missing");
	/* a tensor where the index does not say */
	finish_error(moved, shard1, 8, shard2, 4, "index puts tensor 'y'");
	/* a tensor the index does not list */
	finish_error(fewer, shard1, 8, shard2, 4, "not in the index");
	/* the index lists a tensor no shard holds */
	finish_error(more, shard1, 8, shard2, 4, "index names tensor 'w'");
	/* one tensor in two shards */
	finish_error(index_ok, shard1, 8, twice, 8, "is in both");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_header),
		cmocka_unit_test(test_dtypes),
		cmocka_unit_test(test_header_len),
		cmocka_unit_test(test_hostile_headers),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_index_valid),
		cmocka_unit_test(test_index_hostile),
		cmocka_unit_test(test_model_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
