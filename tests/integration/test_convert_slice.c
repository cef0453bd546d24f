/* A slice of Phi-4 at its real widths (hidden 5120, 40/10 heads, n_ff
 * 17920, vocab 100352; one layer, 2.7 GB of bf16) converts in both
 * layouts to files that llama.cpp loads and runs, with the tensor counts
 * of the real model's arrangement: 6 per layer + 3 native, 9 + 3 split. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/convert.h"
#include "common/fs.h"
#include "common/gguf.h"
#include "llm.h"
#include "model.h"
#include "th.h"

static char root[512], model[600];

static int setup(void **state)
{
	const char *extra[] = { "--layers", "1", NULL };
	uint64_t avail = 0;

	(void)state;
	if (th_tmpdir("slice", root, sizeof(root)) != 0)
		return -1;
	/* 2.7 GB of source and as much for each output */
	if (mb_fs_free_space(root, &avail) == 0 && avail < (9ull << 30)) {
		fprintf(stderr, "test_convert_slice: needs 9 GB free in %s\n", root);
		return -1;
	}
	snprintf(model, sizeof(model), "%s/phi4-slice", root);
	return th_mkmodel(model, "phi4-slice", extra);
}

static int teardown(void **state)
{
	(void)state;
	return th_rmtree(root);
}

static void slice(enum mb_layout layout, const char *name, uint64_t ntensors,
		  const char *arch)
{
	static const int32_t toks[] = { 100257, 40, 1097, 264, 1296, 13, 100265 };
	struct mb_convert_opts o;
	struct mb_convert_result r;
	struct mb_gguf *g;
	char out[700], err[2048] = "";
	float *logits;
	int nv, i;

	snprintf(out, sizeof(out), "%s/%s.gguf", root, name);
	memset(&o, 0, sizeof(o));
	o.model_dir = model;
	o.out_path = out;
	o.layout = layout;
	o.outtype = MB_OUT_F16;
	if (mb_convert(&o, &r, err, sizeof(err)) != 0)
		fail_msg("%s: %s", name, err);
	print_message("%s: %llu tensors, %.2f GB in %.1f s\n", name,
		      (unsigned long long)r.ntensors, (double)r.file_size / 1e9,
		      r.seconds);
	assert_int_equal(mb_gguf_read(out, &g, err, sizeof(err)), 0);
	assert_int_equal(g->ntensors, ntensors);
	assert_string_equal(mb_gguf_kv(g, "general.architecture")->v.s, arch);
	mb_gguf_free(g);
	if (th_llama_logits(out, toks, 7, &logits, &nv, err, sizeof(err)) != 0)
		fail_msg("%s: %s", name, err);
	assert_int_equal(nv, 100352);
	for (i = 0; i < 7 * nv; i++)
		if (!isfinite(logits[i]))
			fail_msg("%s: logit %d is not finite", name, i);
	free(logits);
	unlink(out);
}

static void test_native(void **state)
{
	(void)state;
	slice(MB_LAYOUT_NATIVE, "native", 6 * 1 + 3, "phi3");
}

static void test_split(void **state)
{
	(void)state;
	slice(MB_LAYOUT_SPLIT, "split", 9 * 1 + 3, "llama");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_native),
		cmocka_unit_test(test_split),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
