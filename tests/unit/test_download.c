/* download: the default selection of a repo's files and the split of
 * failures into those a person must fix and those a later run may not
 * meet (the transfers themselves are in tests/integration/test_fetch.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/download.h"
#include "common/err.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_safetensors_repo(void **state)
{
	static const char *const repo[] = {
		"README.md", "config.json", "generation_config.json",
		"model-00001-of-00002.safetensors",
		"model-00002-of-00002.safetensors",
		"model.safetensors.index.json", "pytorch_model.bin",
		"pytorch_model.bin.index.json", "model.gguf", "consolidated.pth",
		"original/consolidated.00.pth", "original/params.json",
		"tokenizer.json", "tokenizer_config.json", "tokenizer.model",
		"special_tokens_map.json", ".gitattributes", "onnx/model.onnx",
	};
	static const int want[] = {
		1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0,
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(repo); i++)
		if (mb_download_default_file(repo[i], repo, N(repo)) != want[i])
			fail_msg("'%s': selected %d, wanted %d", repo[i],
				 !want[i], want[i]);
}

static void test_pytorch_only_repo(void **state)
{
	static const char *const repo[] = {
		"config.json", "pytorch_model-00001-of-00002.bin",
		"pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json",
		"original/consolidated.00.pth",
	};

	(void)state;
	assert_true(mb_download_default_file(repo[0], repo, N(repo)));
	assert_true(mb_download_default_file(repo[1], repo, N(repo)));
	assert_true(mb_download_default_file(repo[3], repo, N(repo)));
	assert_false(mb_download_default_file(repo[4], repo, N(repo)));
}

static void test_permanent(void **state)
{
	(void)state;
	/* a failure a person must act on exits 3, one a later run may get
	 * past exits 1 */
	assert_int_equal(mb_err_exit(MB_EAUTH), 3);
	assert_int_equal(mb_err_exit(MB_ENOENT), 3);
	assert_int_equal(mb_err_exit(MB_ECHECKSUM), 3);
	assert_int_equal(mb_err_exit(MB_ENOSPC), 3);
	assert_int_equal(mb_err_exit(MB_ENETWORK), 1);
	assert_int_equal(mb_err_exit(MB_ETIMEDOUT), 1);
	assert_int_equal(mb_err_exit(0), 0);
	assert_false(mb_err_transient(0));
}

static void test_opts_defaults(void **state)
{
	struct mb_download_opts o;

	(void)state;
	mb_download_opts_init(&o);
	assert_int_equal(o.connections, MB_DOWNLOAD_DEFAULT_CONNECTIONS);
	assert_int_equal(o.range_size, MB_DOWNLOAD_DEFAULT_RANGE);
	assert_true(o.reserve == UINT64_MAX);
	assert_null(o.dest);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_safetensors_repo),
		cmocka_unit_test(test_pytorch_only_repo),
		cmocka_unit_test(test_permanent),
		cmocka_unit_test(test_opts_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
