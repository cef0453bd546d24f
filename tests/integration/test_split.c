/* Sets of parts (llama.cpp's gguf-split format) as the real mibera-worker
 * writes them: convert --split-max-size and quantize of a set or into a
 * set. Each set loads in libllama from its first part and gives the same
 * logits as the whole file (bitwise: the same tensors, the same bytes);
 * the parts carry split.no, split.count and split.tensors.count with the
 * types libllama checks, the metadata only in the first, and are no
 * bigger than asked. A part missing or damaged is named; nonsense sizes
 * are refused with the reason. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/gguf.h"
#include "common/splitset.h"
#include "coordinator/smoke.h"
#include "llm.h"
#include "model.h"
#include "th.h"

#define NTOK 16

static char root[512], worker[600], src[600];
static char whole[700];	/* the F16 in one file */
static int32_t toks[NTOK];

static void in_root(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", root, name);
}

static long long file_size(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) != 0)
		fail_msg("'%s' is missing", path);
	return (long long)sb.st_size;
}

static float *logits(const char *path, int *nv)
{
	char err[2048];
	float *l;

	if (th_llama_logits(path, toks, NTOK, &l, nv, err, sizeof(err)) != 0)
		fail_msg("%s: %s", path, err);
	return l;
}

/* Asserts a and b give the same logits, bit for bit. */
static void same_logits(const char *a, const char *b)
{
	float *la, *lb;
	int na, nb;

	la = logits(a, &na);
	lb = logits(b, &nb);
	assert_int_equal(na, nb);
	if (memcmp(la, lb, sizeof(float) * (size_t)NTOK * (size_t)na) != 0) {
		double rel, top;

		th_logits_compare(la, lb, NTOK, na, &rel, &top);
		fail_msg("'%s' and '%s' differ: rel max err %.3e, top-1 %.0f%%",
			 a, b, rel, top * 100);
	}
	free(la);
	free(lb);
}

static uint64_t kv_num(const struct mb_gguf *g, const char *key, int type)
{
	const struct mb_gguf_kv *kv = mb_gguf_kv(g, key);

	if (kv == NULL)
		fail_msg("no %s", key);
	assert_int_equal(kv->type, type);
	return type == MB_GGUF_INT32 ? (uint64_t)kv->v.i : kv->v.u;
}

/* Checks the set of count parts of artifact (a path NAME.gguf): the keys
 * and their types, the metadata in the first only, the tensors adding up
 * to want_tensors, each part at most max bytes unless it holds a single
 * tensor. */
static void check_set(const char *artifact, unsigned count,
		      uint64_t want_tensors, uint64_t max)
{
	char path[800], err[512];
	uint64_t n = 0;
	unsigned k;

	for (k = 0; k < count; k++) {
		struct mb_gguf *g;

		assert_int_equal(mb_splitset_part_path(artifact, k, count, path,
						       sizeof(path)), 0);
		if (mb_gguf_read(path, &g, err, sizeof(err)) != 0)
			fail_msg("%s: %s", path, err);
		assert_int_equal(kv_num(g, MB_GGUF_SPLIT_NO, MB_GGUF_UINT16), k);
		assert_int_equal(kv_num(g, MB_GGUF_SPLIT_COUNT, MB_GGUF_UINT16),
				 count);
		assert_int_equal(kv_num(g, MB_GGUF_SPLIT_TENSORS, MB_GGUF_INT32),
				 want_tensors);
		if (k == 0)
			assert_non_null(mb_gguf_kv(g, "general.architecture"));
		else
			assert_null(mb_gguf_kv(g, "general.architecture"));
		assert_true(g->ntensors >= 1);
		if (g->ntensors > 1 && g->file_size > max)
			fail_msg("%s: %llu bytes, more than %llu", path,
				 (unsigned long long)g->file_size,
				 (unsigned long long)max);
		n += g->ntensors;
		mb_gguf_free(g);
	}
	assert_int_equal(n, want_tensors);
	/* no part after the last, and no whole file beside the set */
	assert_int_equal(mb_splitset_part_path(artifact, count, count + 1, path,
					       sizeof(path)), 0);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_not_equal(access(artifact, F_OK), 0);
}

static uint64_t ntensors(const char *path)
{
	struct mb_gguf *g;
	char err[512];
	uint64_t n;

	if (mb_gguf_read(path, &g, err, sizeof(err)) != 0)
		fail_msg("%s: %s", path, err);
	n = g->ntensors;
	mb_gguf_free(g);
	return n;
}

static int setup(void **state)
{
	const char *extra[] = { "--config", "correct", NULL };
	char *log;
	int i;

	(void)state;
	snprintf(worker, sizeof(worker), "%s/mibera-worker", MB_BINARY_DIR);
	if (th_tmpdir("split", root, sizeof(root)) != 0)
		return -1;
	for (i = 0; i < NTOK; i++)
		toks[i] = (int32_t)((i * 7919 + 13) % 499);
	in_root(src, sizeof(src), "phi");
	in_root(whole, sizeof(whole), "phi4-tiny-F16.gguf");
	if (th_mkmodel(src, "phi4-tiny", extra) != 0)
		return -1;
	if (th_sh(&log, "'%s' convert '%s' '%s'", worker, src, whole) != 0) {
		fprintf(stderr, "convert: %s\n", log);
		free(log);
		return -1;
	}
	free(log);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_rmtree(root);
	return 0;
}

/* convert --split-max-size: a set of parts, each the size asked at most,
 * loading from its first part with the whole file's logits bit for bit */
static void test_convert_split_f16(void **state)
{
	char art[700], first[800], *log;
	struct mb_splitset set;
	char err[512];
	long long size = file_size(whole);

	(void)state;
	in_root(art, sizeof(art), "set-F16.gguf");
	/* about a third of the file: three parts */
	assert_int_equal(th_sh(&log, "'%s' convert '%s' '%s' --split-max-size 8M",
			     worker, src, art), 0);
	assert_non_null(strstr(log, "wrote 3 parts"));
	free(log);
	assert_true(size > 16000000 && size < 24000000);
	check_set(art, 3, ntensors(whole), 8000000);
	assert_int_equal(mb_splitset_part_path(art, 0, 3, first, sizeof(first)), 0);
	/* found by its name as a whole, and by its first part */
	assert_int_equal(mb_splitset_find(art, &set, err, sizeof(err)), 0);
	assert_int_equal(set.count, 3);
	assert_string_equal(set.first, first);
	assert_true(set.bytes >= (uint64_t)size);
	assert_int_equal(mb_splitset_find(first, &set, err, sizeof(err)), 0);
	assert_int_equal(set.count, 3);
	same_logits(whole, first);

	/* written again whole (no size), the parts go */
	assert_int_equal(th_sh(NULL, "'%s' convert '%s' '%s'", worker, src, art), 0);
	assert_int_not_equal(access(first, F_OK), 0);
	assert_int_equal(file_size(art), size);
	/* and a set again, the whole file goes */
	assert_int_equal(th_sh(NULL, "'%s' convert '%s' '%s' --split-max-size 8M",
			     worker, src, art), 0);
	assert_int_not_equal(access(art, F_OK), 0);
	check_set(art, 3, ntensors(whole), 8000000);
}

/* a file that fits stays one file */
static void test_convert_fits(void **state)
{
	char art[700];

	(void)state;
	in_root(art, sizeof(art), "fits-F16.gguf");
	assert_int_equal(th_sh(NULL, "'%s' convert '%s' '%s' --split-max-size 50G",
			     worker, src, art), 0);
	assert_int_equal(file_size(art), file_size(whole));
	{
		struct mb_gguf *g;
		char err[512];

		assert_int_equal(mb_gguf_read(art, &g, err, sizeof(err)), 0);
		assert_null(mb_gguf_kv(g, MB_GGUF_SPLIT_COUNT));
		mb_gguf_free(g);
	}
}

/* Q8_0 of the set (libllama's keep_split: as many parts), and of the
 * whole file into parts of 2M: both load from their first part with the
 * logits of the whole Q8_0, bit for bit */
static void test_quantize_split_q8(void **state)
{
	char set[700], q8[700], keep[700], small[700], first[800], *log;
	struct mb_splitset s;
	char err[512];

	(void)state;
	in_root(set, sizeof(set), "set-F16.gguf");
	in_root(q8, sizeof(q8), "whole-Q8_0.gguf");
	in_root(keep, sizeof(keep), "keep-Q8_0.gguf");
	in_root(small, sizeof(small), "small-Q8_0.gguf");
	assert_int_equal(th_sh(&log, "'%s' quantize '%s' '%s' Q8_0 --threads 2",
			     worker, whole, q8), 0);
	free(log);
	/* the set named as a whole, as the job names it */
	assert_int_equal(th_sh(&log, "'%s' quantize '%s' '%s' Q8_0 --threads 2",
			     worker, set, keep), 0);
	assert_non_null(strstr(log, "wrote 3 parts"));
	free(log);
	check_set(keep, 3, ntensors(q8), UINT64_MAX);
	assert_int_equal(mb_splitset_find(keep, &s, err, sizeof(err)), 0);
	same_logits(q8, s.first);
	/* a new size for the whole file's quant */
	assert_int_equal(th_sh(&log, "'%s' quantize '%s' '%s' Q8_0 --threads 2 "
			     "--split-max-size 2M", worker, whole, small), 0);
	free(log);
	assert_int_equal(mb_splitset_find(small, &s, err, sizeof(err)), 0);
	assert_true(s.count >= 3);
	check_set(small, s.count, ntensors(q8), 2000000);
	assert_int_equal(mb_splitset_part_path(small, 0, s.count, first,
					       sizeof(first)), 0);
	same_logits(q8, first);
	/* done once: the same request finds it */
	assert_int_equal(th_sh(&log, "'%s' quantize '%s' '%s' Q8_0 "
			     "--split-max-size 2M", worker, whole, small), 0);
	assert_non_null(strstr(log, "already done"));
	free(log);
}

/* a missing part is named by what reads the set: quantize, and the smoke
 * test */
static void test_missing_part_named(void **state)
{
	char art[700], p2[800], moved[820], out[700], *log;
	struct mb_smoke_result r;
	int rc;

	(void)state;
	in_root(art, sizeof(art), "set-F16.gguf");
	in_root(out, sizeof(out), "never-Q8_0.gguf");
	assert_int_equal(mb_splitset_part_path(art, 1, 3, p2, sizeof(p2)), 0);
	snprintf(moved, sizeof(moved), "%s.away", p2);
	assert_int_equal(rename(p2, moved), 0);
	rc = th_sh(&log, "'%s' quantize '%s' '%s' Q8_0", worker, art, out);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(log, "set-F16-00002-of-00003.gguf"));
	assert_non_null(strstr(log, "missing"));
	free(log);
	assert_int_not_equal(access(out, F_OK), 0);
	assert_int_equal(mb_splitset_part_path(art, 0, 3, p2, sizeof(p2)), 0);
	rc = mb_smoke_run(p2, NULL, 4, 2, &r);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(r.error, "set-F16-00002-of-00003.gguf"));
	assert_int_equal(mb_splitset_part_path(art, 1, 3, p2, sizeof(p2)), 0);
	assert_int_equal(rename(moved, p2), 0);
	/* a part named as the input is refused with what to name */
	rc = th_sh(&log, "'%s' quantize '%s' '%s' Q8_0", worker, p2, out);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(log, "named by its first part"));
	free(log);
}

/* sizes that mean nothing are refused, saying why, before any work */
static void test_bad_sizes(void **state)
{
	static const struct {
		const char *size, *says;
	} bad[] = {
		{ "0", "too small" },	    { "999K", "too small" },
		{ "abc", "not a size" },    { "-5G", "not a size" },
		{ "1.5G", "whole number of bytes or of K, M, G or T "
			  "(1500M, not 1.5G)" },
		{ "50X", "not a size" },
		{ "50GB", "not a size" },   { "''", "not a size" },
		{ "99999999999T", "too large" },
	};
	char art[700], *log;
	size_t i;

	(void)state;
	in_root(art, sizeof(art), "bad-F16.gguf");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = th_sh(&log, "'%s' convert '%s' '%s' --split-max-size %s",
			     worker, src, art, bad[i].size);

		if (rc != 2 || strstr(log, bad[i].says) == NULL ||
		    strstr(log, "--split-max-size") == NULL)
			fail_msg("--split-max-size %s: exit %d, wanted 2 and "
				 "'%s':\n%s", bad[i].size, rc, bad[i].says, log);
		free(log);
		assert_int_not_equal(access(art, F_OK), 0);
	}
	assert_int_equal(th_sh(&log, "'%s' quantize '%s' '%s' Q8_0 "
			     "--split-max-size 12Q", worker, whole, art), 2);
	assert_non_null(strstr(log, "not a size"));
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_convert_split_f16),
		cmocka_unit_test(test_convert_fits),
		cmocka_unit_test(test_quantize_split_q8),
		cmocka_unit_test(test_missing_part_named),
		cmocka_unit_test(test_bad_sizes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
