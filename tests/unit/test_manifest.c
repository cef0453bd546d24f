/* Tests common/manifest.c: computing, JSON both ways, hostile manifests,
 * and chunk verification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/manifest.h"
#include "th.h"

#define CHUNK (64u << 10)
#define SIZE (5 * CHUNK + 1234) /* 6 chunks, the last one short */

struct ctx {
	char dir[512];
	char path[600];
	unsigned char *data;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	size_t i;

	if (c == NULL || th_tmpdir("manifest", c->dir, sizeof(c->dir)) != 0)
		return -1;
	snprintf(c->path, sizeof(c->path), "%s/m.gguf", c->dir);
	c->data = malloc(SIZE);
	for (i = 0; i < SIZE; i++)
		c->data[i] = (unsigned char)(i * 7919u >> 5);
	if (th_write_file(c->path, c->data, SIZE) != 0)
		return -1;
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	th_rmtree(c->dir);
	free(c->data);
	free(c);
	return 0;
}

static void test_compute(void **state)
{
	struct ctx *c = *state;
	struct mb_manifest *m;
	uint8_t d[MB_SHA256_LEN];
	uint64_t i, off, len;

	assert_int_equal(mb_manifest_compute(c->path, "m.gguf", CHUNK, &m), 0);
	assert_string_equal(m->name, "m.gguf");
	assert_int_equal(m->size, SIZE);
	assert_int_equal(m->nchunks, 6);
	assert_int_equal(mb_sha256_buf(c->data, SIZE, d), 0);
	assert_memory_equal(d, m->sha256, MB_SHA256_LEN);
	for (i = 0; i < m->nchunks; i++) {
		mb_manifest_chunk(m, i, &off, &len);
		assert_int_equal(off, i * CHUNK);
		assert_int_equal(len, i == 5 ? 1234 : CHUNK);
		assert_int_equal(mb_sha256_buf(c->data + off, len, d), 0);
		assert_memory_equal(d, m->chunks[i], MB_SHA256_LEN);
		assert_int_equal(mb_manifest_check_chunk(m, i, c->data + off,
							 len),
				 0);
	}
	mb_manifest_free(m);
}

static void test_check_chunk_detects_corruption(void **state)
{
	struct ctx *c = *state;
	struct mb_manifest *m;

	assert_int_equal(mb_manifest_compute(c->path, "m.gguf", CHUNK, &m), 0);
	c->data[2 * CHUNK + 17] ^= 1;
	assert_int_equal(mb_manifest_check_chunk(m, 2, c->data + 2 * CHUNK,
						 CHUNK),
			 MB_ECHECKSUM);
	assert_int_equal(mb_manifest_check_chunk(m, 1, c->data + CHUNK, CHUNK),
			 0);
	/* wrong length or index is a caller error, not a match */
	assert_int_equal(mb_manifest_check_chunk(m, 1, c->data, CHUNK - 1),
			 MB_EINVAL);
	assert_int_equal(mb_manifest_check_chunk(m, 6, c->data, 10), MB_EINVAL);
	mb_manifest_free(m);
}

static void test_json_round_trip(void **state)
{
	struct ctx *c = *state;
	struct mb_manifest *m, *back;
	struct mb_buf b;
	char err[256];

	assert_int_equal(mb_manifest_compute(c->path, "m \"q\".gguf", CHUNK, &m),
			 0);
	mb_buf_init(&b, 1 << 20);
	assert_int_equal(mb_manifest_to_json(m, &b), 0);
	assert_int_equal(mb_manifest_from_json(b.data, b.len, &back, err,
					       sizeof(err)),
			 0);
	assert_string_equal(back->name, "m \"q\".gguf");
	assert_true(mb_manifest_same(m, back));
	assert_int_equal(back->nchunks, m->nchunks);
	assert_memory_equal(back->chunks, m->chunks,
			    m->nchunks * MB_SHA256_LEN);
	mb_buf_release(&b);
	mb_manifest_free(m);
	mb_manifest_free(back);
}

static void test_empty_file(void **state)
{
	struct ctx *c = *state;
	struct mb_manifest *m, *back;
	struct mb_buf b;

	assert_int_equal(th_write_file(c->path, "", 0), 0);
	assert_int_equal(mb_manifest_compute(c->path, "e", CHUNK, &m), 0);
	assert_int_equal(m->size, 0);
	assert_int_equal(m->nchunks, 0);
	mb_buf_init(&b, 4096);
	assert_int_equal(mb_manifest_to_json(m, &b), 0);
	assert_non_null(strstr(b.data, "\"chunks\":[]"));
	assert_int_equal(mb_manifest_from_json(b.data, b.len, &back, NULL, 0),
			 0);
	mb_manifest_free(back);
	mb_manifest_free(m);
	mb_buf_release(&b);
}

static void test_bad_arguments(void **state)
{
	struct ctx *c = *state;
	struct mb_manifest *m = (void *)1;

	assert_int_equal(mb_manifest_compute(c->path, "m", 1000, &m), MB_EINVAL);
	assert_null(m);
	assert_int_equal(mb_manifest_compute(c->path, "../x", CHUNK, &m),
			 MB_EINVAL);
	assert_int_equal(mb_manifest_compute(c->path, "a/b", CHUNK, &m),
			 MB_EINVAL);
	assert_int_equal(mb_manifest_compute("/nonexistent", "m", CHUNK, &m),
			 MB_ENOENT);
}

#define H64 "0000000000000000000000000000000000000000000000000000000000000000"

struct bad {
	const char *json;
	const char *why; /* a word the error message must contain */
};

static void test_hostile_json(void **state)
{
	static const struct bad bad[] = {
		{ "{", "json" },
		{ "[]", "object" },
		{ "{\"version\":2,\"name\":\"a\",\"size\":1,\"sha256\":\"" H64
		  "\",\"chunk_size\":4096,\"chunks\":[\"" H64 "\"]}",
		  "version" },
		{ "{\"version\":1,\"name\":\"../etc/passwd\",\"size\":1,"
		  "\"sha256\":\"" H64 "\",\"chunk_size\":4096,\"chunks\":[\""
		  H64 "\"]}", "name" },
		{ "{\"version\":1,\"name\":\"a\",\"size\":-1,\"sha256\":\"" H64
		  "\",\"chunk_size\":4096,\"chunks\":[]}", "size" },
		{ "{\"version\":1,\"name\":\"a\",\"size\":1.5,\"sha256\":\"" H64
		  "\",\"chunk_size\":4096,\"chunks\":[]}", "size" },
		{ "{\"version\":1,\"name\":\"a\",\"size\":1e300,\"sha256\":\""
		  H64 "\",\"chunk_size\":4096,\"chunks\":[]}", "size" },
		{ "{\"version\":1,\"name\":\"a\",\"size\":1,\"sha256\":\"" H64
		  "\",\"chunk_size\":1000,\"chunks\":[\"" H64 "\"]}",
		  "chunk_size" },
		{ "{\"version\":1,\"name\":\"a\",\"size\":1,\"sha256\":\"xyz\","
		  "\"chunk_size\":4096,\"chunks\":[\"" H64 "\"]}", "sha256" },
		{ "{\"version\":1,\"name\":\"a\",\"size\":5000,\"sha256\":\"" H64
		  "\",\"chunk_size\":4096,\"chunks\":[\"" H64 "\"]}", "chunks" },
		{ "{\"version\":1,\"name\":\"a\",\"size\":10,\"sha256\":\"" H64
		  "\",\"chunk_size\":4096,\"chunks\":[\"" H64 "\",\"" H64
		  "\"]}", "lists 2 chunks" },
		{ "{\"version\":1,\"name\":\"a\",\"size\":10,\"sha256\":\"" H64
		  "\",\"chunk_size\":4096,\"chunks\":[7]}", "chunk 0" },
		{ "{\"version\":1,\"name\":\"a\",\"size\":10,\"sha256\":\"" H64
		  "\",\"chunk_size\":4096,\"chunks\":{}}", "chunks" },
		/* 2^53 bytes of 4 KiB chunks would be 2^41 hashes: refused by
		 * the count check before any allocation that large */
		{ "{\"version\":1,\"name\":\"a\",\"size\":9007199254740993,"
		  "\"sha256\":\"" H64 "\",\"chunk_size\":4096,\"chunks\":[]}",
		  "chunks" },
		{ "{\"version\":1,\"name\":\"a\",\"size\":1,\"sha256\":\"" H64
		  "\",\"chunk_size\":4096,\"chunks\":[\"" H64 "\"]} x", "json" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mb_manifest *m = (void *)1;
		char err[256] = "";
		int rc;

		rc = mb_manifest_from_json(bad[i].json, strlen(bad[i].json), &m,
					   err, sizeof(err));
		if (rc == 0 || m != NULL || strstr(err, bad[i].why) == NULL)
			fail_msg("case %zu: rc %d, err '%s', wanted '%s'", i,
				 rc, err, bad[i].why);
	}
}

static int count_progress(uint64_t done, void *ctx)
{
	uint64_t *last = ctx;

	assert_true(done > *last); /* forward only */
	*last = done;
	return 0;
}

static int stop_progress(uint64_t done, void *ctx)
{
	(void)done;
	(void)ctx;
	return MB_ECANCELLED;
}

static void test_compute_progress(void **state)
{
	struct ctx *c = *state;
	struct mb_manifest *m, *plain;
	uint64_t last = 0;

	assert_int_equal(mb_manifest_compute_progress(c->path, "m.gguf", CHUNK,
						      count_progress, &last,
						      &m),
			 0);
	assert_int_equal(last, SIZE);
	assert_int_equal(mb_manifest_compute(c->path, "m.gguf", CHUNK, &plain),
			 0);
	assert_true(mb_manifest_same(m, plain));
	assert_memory_equal(m->chunks, plain->chunks,
			    m->nchunks * MB_SHA256_LEN);
	mb_manifest_free(m);
	mb_manifest_free(plain);
	m = (void *)1;
	assert_int_equal(mb_manifest_compute_progress(c->path, "m.gguf", CHUNK,
						      stop_progress, NULL, &m),
			 MB_ECANCELLED);
	assert_null(m);
}

static void test_list_round_trip(void **state)
{
	struct ctx *c = *state;
	struct mb_manifest *files[2];
	struct mb_manifest_list *l;
	struct mb_buf b;
	char err[256];

	assert_int_equal(mb_manifest_compute(c->path, "a-F16.gguf", CHUNK,
					     &files[0]),
			 0);
	assert_int_equal(mb_manifest_compute(c->path, "a-Q4_K_M.gguf",
					     4 * CHUNK, &files[1]),
			 0);
	mb_buf_init(&b, 1 << 20);
	assert_int_equal(mb_manifest_list_to_json(files, 2, &b), 0);
	assert_int_equal(strncmp(b.data, "{\"version\":1,\"files\":[{", 23), 0);
	assert_int_equal(mb_manifest_list_from_json(b.data, b.len, &l, err,
						    sizeof(err)),
			 0);
	assert_int_equal(l->n, 2);
	assert_string_equal(l->files[0]->name, "a-F16.gguf");
	assert_int_equal(l->files[1]->nchunks, 2);
	assert_true(mb_manifest_same(l->files[1], files[1]));
	assert_memory_equal(l->files[0]->chunks, files[0]->chunks,
			    files[0]->nchunks * MB_SHA256_LEN);
	assert_ptr_equal(mb_manifest_list_find(l, "a-Q4_K_M.gguf"),
			 l->files[1]);
	assert_null(mb_manifest_list_find(l, "a-Q8_0.gguf"));
	mb_manifest_list_free(l);

	/* an empty directory lists nothing */
	mb_buf_reset(&b);
	assert_int_equal(mb_manifest_list_to_json(files, 0, &b), 0);
	assert_string_equal(b.data, "{\"version\":1,\"files\":[]}");
	assert_int_equal(mb_manifest_list_from_json(b.data, b.len, &l, NULL, 0),
			 0);
	assert_int_equal(l->n, 0);
	mb_manifest_list_free(l);
	mb_manifest_list_free(NULL);
	mb_buf_release(&b);
	mb_manifest_free(files[0]);
	mb_manifest_free(files[1]);
}

#define ONE(name) \
	"{\"version\":1,\"name\":\"" name "\",\"size\":1,\"sha256\":\"" H64 \
	"\",\"chunk_size\":4096,\"chunks\":[\"" H64 "\"]}"

static void test_hostile_list(void **state)
{
	static const struct bad bad[] = {
		{ "", "json" },
		{ "{\"version\":1,\"files\":[]", "json" },
		{ "[" ONE("a") "]", "object" },
		{ "{\"files\":[]}", "version" },
		{ "{\"version\":2,\"files\":[]}", "version" },
		{ "{\"version\":\"1\",\"files\":[]}", "version" },
		{ "{\"version\":1}", "files" },
		{ "{\"version\":1,\"files\":{}}", "files" },
		{ "{\"version\":1,\"files\":null}", "files" },
		{ "{\"version\":1,\"files\":[7]}", "file 0: manifest is not" },
		{ "{\"version\":1,\"files\":[" ONE("a") ",[]]}", "file 1" },
		{ "{\"version\":1,\"files\":[" ONE("a") "," ONE("../b") "]}",
		  "file 1: manifest 'name'" },
		{ "{\"version\":1,\"files\":[" ONE("a/b") "]}", "name" },
		{ "{\"version\":1,\"files\":[" ONE("") "]}", "name" },
		{ "{\"version\":1,\"files\":[" ONE("b") "," ONE("a") ","
		  ONE("b") "]}", "names 'b' twice" },
		{ "{\"version\":1,\"files\":[{\"version\":1,\"name\":\"a\","
		  "\"size\":10,\"sha256\":\"" H64 "\",\"chunk_size\":4096,"
		  "\"chunks\":[]}]}", "lists 0 chunks" },
		{ "{\"version\":1,\"files\":[{\"version\":1,\"name\":\"a\","
		  "\"size\":1,\"sha256\":\"" H64 "\",\"chunk_size\":4096,"
		  "\"chunks\":[\"" H64 "\"]},{\"version\":1,\"name\":\"b\","
		  "\"size\":1,\"sha256\":\"zz\",\"chunk_size\":4096,"
		  "\"chunks\":[\"" H64 "\"]}]}", "file 1: manifest 'sha256'" },
		{ "{\"version\":1,\"files\":[" ONE("a") "]} trailing", "json" },
	};
	struct mb_buf b;
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mb_manifest_list *l = (void *)1;
		char err[256] = "";

		rc = mb_manifest_list_from_json(bad[i].json, strlen(bad[i].json),
						&l, err, sizeof(err));
		if (rc == 0 || l != NULL || strstr(err, bad[i].why) == NULL)
			fail_msg("case %zu: rc %d, err '%s', wanted '%s'", i,
				 rc, err, bad[i].why);
	}

	/* more files than the cap: refused before any is parsed */
	mb_buf_init(&b, 64 << 20);
	assert_int_equal(mb_buf_adds(&b, "{\"version\":1,\"files\":["), 0);
	for (i = 0; i <= MB_MANIFEST_LIST_MAX; i++)
		assert_int_equal(mb_buf_addf(&b, "%s{}", i ? "," : ""), 0);
	assert_int_equal(mb_buf_adds(&b, "]}"), 0);
	{
		struct mb_manifest_list *l = (void *)1;
		char err[256] = "";

		rc = mb_manifest_list_from_json(b.data, b.len, &l, err,
						sizeof(err));
		assert_int_equal(rc, MB_EFORMAT);
		assert_null(l);
		assert_non_null(strstr(err, "more than"));
	}
	mb_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_compute, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_check_chunk_detects_corruption, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_empty_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup,
						teardown),
		cmocka_unit_test(test_hostile_json),
		cmocka_unit_test_setup_teardown(test_compute_progress, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_list_round_trip, setup,
						teardown),
		cmocka_unit_test(test_hostile_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
