/* The way out for a family mibera does not convert natively: inspect names
 * what the model is and what llama.cpp calls it, and says to submit with
 * --converter llama.cpp; submit refuses such a model without it and stores
 * the choice (shown by show and status --json); the worker runs llama.cpp's
 * own convert_hf_to_gguf.py, and says plainly when its Python requirements
 * cannot be installed; a job with it ends with provenance naming the
 * converter, where Python with torch and transformers can be had. */
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

#include <cjson/cJSON.h>

#include "common/fs.h"
#include "model.h"
#include "th.h"

static char root[512], tree[700], mixtral[700], deepseek[700], llama[700];
static int have_tree;

/* Runs a shell command line (printf-style) with stderr folded in; *out
 * gets the output. Returns the exit code. */
static int sh(char **out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int sh(char **out, const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = th_capture(cmd, out);
	assert_non_null(*out);
	return rc;
}

static int setup(void **state)
{
	char *out = NULL, src[700], cmd[4000];
	struct stat st;
	int rc;

	(void)state;
	if (th_tmpdir("converter", root, sizeof(root)) != 0)
		return -1;
	{
		char p[700];

		snprintf(p, sizeof(p), "%s/home", root);
		if (mb_mkdir_p(p, 0700) != 0)
			return -1;
		setenv("HOME", p, 1);
		snprintf(p, sizeof(p), "%s/mibera", root);
		setenv("MIBERA_HOME", p, 1);
	}
	unsetenv("HF_ENDPOINT");
	unsetenv("MIBERA_LLAMA_CONVERTER_PYTHON");
	snprintf(mixtral, sizeof(mixtral), "%s/mixtral-tiny", root);
	snprintf(deepseek, sizeof(deepseek), "%s/deepseek-tiny", root);
	snprintf(llama, sizeof(llama), "%s/llama-tiny", root);
	{
		snprintf(cmd, sizeof(cmd), "%s %s/tests/fixtures/mkforeign --arch "
			 "mixtral --out %s && %s %s/tests/fixtures/mkforeign --arch "
			 "deepseek-v3 --out %s", MB_PYTHON, MB_SOURCE_DIR, mixtral,
			 MB_PYTHON, MB_SOURCE_DIR, deepseek);
		rc = th_capture(cmd, &out);
		if (rc != 0) {
			fprintf(stderr, "mkforeign: %s\n", out ? out : "");
			free(out);
			return -1;
		}
		free(out);
	}
	if (th_mkmodel(llama, "llama-tiny", (const char *const[]){ "--config",
			"correct", NULL }) != 0)
		return -1;
	/* llama.cpp's converter, from the source this build ships to
	 * workers (deploy/deps.sh keeps it there) */
	snprintf(tree, sizeof(tree), "%s/llama-convert", root);
	snprintf(src, sizeof(src), "%s/llama.cpp-src.tar.gz", MB_BINARY_DIR);
	if (stat(src, &st) == 0) {
		snprintf(cmd, sizeof(cmd), "mkdir -p %s && tar -xzf %s -C %s "
			 "--strip-components=1 llama.cpp/convert_hf_to_gguf.py "
			 "llama.cpp/conversion llama.cpp/gguf-py "
			 "llama.cpp/requirements llama.cpp/mibera-llama.txt", tree,
			 src, tree);
		have_tree = th_capture(cmd, &out) == 0;
		free(out);
	}
	rc = sh(&out, "%s/mibera-job worker add w local --dir %s/wd --agent "
		"%s/mibera-worker", MB_BINARY_DIR, root, MB_BINARY_DIR);
	if (rc != 0) {
		fprintf(stderr, "worker add: %s\n", out);
		free(out);
		return -1;
	}
	free(out);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_rmtree(root);
	return 0;
}

/* Python that can run llama.cpp's converter here: NULL (with why) when
 * there is none. */
static const char *converter_python(char *why, size_t cap)
{
	const char *py = getenv("MIBERA_TEST_CONVERTER_PYTHON");
	char cmd[600], *out = NULL;
	int rc;

	if (py == NULL || *py == '\0')
		py = MB_PYTHON;
	snprintf(cmd, sizeof(cmd), "%s -c 'import torch, transformers, "
		 "sentencepiece, numpy'", py);
	rc = th_capture(cmd, &out);
	free(out);
	if (rc == 0)
		return py;
	snprintf(why, cap, "needs Python with torch and transformers: not "
		 "installable here (no PyPI, Debian 12 has no "
		 "python3-transformers); set MIBERA_TEST_CONVERTER_PYTHON to a "
		 "Python that has them");
	return NULL;
}

/* inspect: what the model looks like, what llama.cpp calls it, and the
 * command that converts it */
static void test_inspect_names_the_way_out(void **state)
{
	char want[1200], *out;
	cJSON *doc;
	const cJSON *fb;

	(void)state;
	assert_int_equal(sh(&out, "%s/mibera-job inspect %s", MB_BINARY_DIR,
			    mixtral), 3);
	if (strstr(out, "family     MixtralForCausalLM (model_type mixtral), "
			"llama.cpp arch 'llama': not one mibera converts "
			"natively\n") == NULL)
		fail_msg("inspect said: %s", out);
	assert_non_null(strstr(out, "NOT CONVERTIBLE: MixtralForCausalLM "
				    "(model_type mixtral) is not a family mibera "
				    "converts natively"));
	snprintf(want, sizeof(want), "way out    mibera cannot convert "
		 "MixtralForCausalLM (model_type mixtral) natively; llama.cpp's "
		 "own converter (convert_hf_to_gguf.py, from the llama.cpp "
		 "mibera is pinned to) converts it as llama.cpp arch 'llama': "
		 "mibera-job submit %s --converter llama.cpp\n", mixtral);
	if (strstr(out, want) == NULL)
		fail_msg("inspect said: %s", out);
	free(out);

	/* as JSON, for a script */
	assert_int_equal(sh(&out, "%s/mibera-job inspect --json %s 2>/dev/null",
			    MB_BINARY_DIR, deepseek), 3);
	doc = cJSON_Parse(out);
	free(out);
	assert_non_null(doc);
	fb = cJSON_GetObjectItem(doc, "fallback");
	assert_non_null(fb);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(fb,
				"converter")), "llama.cpp");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(fb,
				"architecture")), "DeepseekV3ForCausalLM");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(fb,
				"llama_cpp_arch")), "deepseek2");
	assert_non_null(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(fb,
				"message")), "--converter llama.cpp"));
	cJSON_Delete(doc);

	/* a family mibera converts has no way out to offer */
	assert_int_equal(sh(&out, "%s/mibera-job inspect %s", MB_BINARY_DIR,
			    llama), 0);
	assert_null(strstr(out, "way out"));
	assert_null(strstr(out, "llama.cpp arch"));
	free(out);
	assert_int_equal(sh(&out, "%s/mibera-job inspect --json %s 2>/dev/null",
			    MB_BINARY_DIR, llama), 0);
	assert_null(strstr(out, "\"fallback\""));
	free(out);
}

/* submit refuses the model without --converter llama.cpp, saying what to
 * do; with it the job is queued, and show and status --json say which
 * converter it uses */
static void test_submit_refuses_then_stores_the_converter(void **state)
{
	char *out;

	(void)state;
	assert_int_equal(sh(&out, "%s/mibera-job submit %s --worker w",
			    MB_BINARY_DIR, mixtral), 3);
	assert_non_null(strstr(out, "MixtralForCausalLM (model_type mixtral) is "
				    "not a family mibera converts natively"));
	assert_non_null(strstr(out, "--converter llama.cpp"));
	free(out);
	assert_int_equal(sh(&out, "%s/mibera-job status --json", MB_BINARY_DIR),
			 0);
	assert_null(strstr(out, mixtral)); /* nothing was queued */
	free(out);

	/* what llama.cpp's converter cannot take */
	assert_int_equal(sh(&out, "%s/mibera-job submit %s --worker w "
			    "--converter llama.cpp --set num_attention_heads=4",
			    MB_BINARY_DIR, mixtral), 2);
	assert_non_null(strstr(out, "llama.cpp's reads config.json as it is"));
	free(out);
	assert_int_equal(sh(&out, "%s/mibera-job submit %s --worker w "
			    "--converter llama.cpp --layout split",
			    MB_BINARY_DIR, mixtral), 2);
	assert_non_null(strstr(out, "--layout split goes with mibera's"));
	free(out);
	assert_int_equal(sh(&out, "%s/mibera-job submit %s --worker w "
			    "--converter python", MB_BINARY_DIR, mixtral), 2);
	assert_non_null(strstr(out, "--converter is mibera or llama.cpp, not "
				    "'python'"));
	free(out);

	assert_int_equal(sh(&out, "%s/mibera-job submit %s --worker w "
			    "--converter llama.cpp --json", MB_BINARY_DIR,
			    mixtral), 0);
	assert_string_equal(out, "{\"id\":1}\n");
	free(out);
	assert_int_equal(sh(&out, "%s/mibera-job show 1", MB_BINARY_DIR), 0);
	assert_non_null(strstr(out, "f16 weights from llama.cpp's "
				    "convert_hf_to_gguf.py"));
	free(out);
	assert_int_equal(sh(&out, "%s/mibera-job status 1 --json", MB_BINARY_DIR),
			 0);
	assert_non_null(strstr(out, "\"converter\":\"llama.cpp\""));
	free(out);
	/* a model mibera converts keeps mibera's converter */
	assert_int_equal(sh(&out, "%s/mibera-job submit %s --worker w --json",
			    MB_BINARY_DIR, llama), 0);
	assert_string_equal(out, "{\"id\":2}\n");
	free(out);
	assert_int_equal(sh(&out, "%s/mibera-job show --json 2", MB_BINARY_DIR),
			 0);
	assert_non_null(strstr(out, "\"converter\":\"mibera\""));
	free(out);
	assert_int_equal(sh(&out, "%s/mibera-job cancel 1 && %s/mibera-job "
			    "cancel 2", MB_BINARY_DIR, MB_BINARY_DIR), 0);
	free(out);
}

/* the worker: no converter tree, a Python without torch, and requirements
 * pip cannot install are each one line that says so, and an error event */
static void test_worker_says_what_is_missing(void **state)
{
	char *out, events[800], *text;

	(void)state;
	snprintf(events, sizeof(events), "%s/convert.events", root);
	assert_int_equal(sh(&out, "MIBERA_LLAMA_CONVERTER=%s/nowhere "
			    "%s/mibera-worker convert %s %s/out.gguf --converter "
			    "llama.cpp", root, MB_BINARY_DIR, mixtral, root), 3);
	assert_non_null(strstr(out, "llama.cpp's converter is not on this "
				    "worker: no '"));
	free(out);
	if (!have_tree) {
		skip();
		return;
	}
	assert_int_equal(sh(&out, "MIBERA_LLAMA_CONVERTER=%s "
			    "MIBERA_LLAMA_CONVERTER_PYTHON=%s %s/mibera-worker "
			    "convert %s %s/out.gguf --converter llama.cpp", tree,
			    MB_PYTHON, MB_BINARY_DIR, mixtral, root),
			 3);
	assert_non_null(strstr(out, "cannot run llama.cpp's converter: "));
	assert_non_null(strstr(out, "No module named"));
	free(out);
	/* no package index (as here): pip cannot install them */
	assert_int_equal(sh(&out, "PIP_NO_INDEX=1 MIBERA_EVENTS=%s "
			    "MIBERA_LLAMA_CONVERTER=%s %s/mibera-worker convert %s "
			    "%s/out.gguf --converter llama.cpp", events, tree,
			    MB_BINARY_DIR, mixtral, root), 3);
	if (strstr(out, "mibera-worker convert: cannot install the Python "
			"requirements of llama.cpp's converter: pip: ") == NULL)
		fail_msg("convert said: %s", out);
	assert_non_null(strstr(out, "Could not find a version that satisfies the "
				    "requirement "));
	free(out);
	snprintf(events, sizeof(events), "%s/out.gguf", root);
	assert_int_equal(access(events, F_OK), -1);
	snprintf(events, sizeof(events), "%s/convert.events", root);
	text = th_slurp(events, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"type\":\"error\""));
	assert_non_null(strstr(text, "cannot install the Python requirements"));
	assert_non_null(strstr(text, "installing the Python requirements of "
				     "llama.cpp's converter"));
	free(text);
	/* what llama.cpp's converter does not take */
	assert_int_equal(sh(&out, "%s/mibera-worker convert %s %s/out.gguf "
			    "--converter llama.cpp --layout split", MB_BINARY_DIR,
			    mixtral, root), 2);
	assert_non_null(strstr(out, "goes with mibera's converter"));
	free(out);
}

/* a job whose worker cannot install the requirements fails at convert,
 * saying why */
static void test_job_fails_saying_why(void **state)
{
	char *out;
	long long id;

	(void)state;
	if (!have_tree) {
		skip();
		return;
	}
	assert_int_equal(sh(&out, "%s/mibera-job submit %s --worker w "
			    "--converter llama.cpp --quant Q8_0", MB_BINARY_DIR,
			    mixtral), 0);
	id = strtoll(out, NULL, 10);
	free(out);
	assert_true(id > 0);
	/* --once exits 1: a job failed */
	assert_int_equal(sh(&out, "PIP_NO_INDEX=1 MIBERA_LLAMA_CONVERTER=%s "
			    "%s/mibera-coordinator --once", tree, MB_BINARY_DIR),
			 1);
	free(out);
	assert_int_equal(sh(&out, "%s/mibera-job show %lld", MB_BINARY_DIR, id),
			 0);
	assert_non_null(strstr(out, "  failed  "));
	if (strstr(out, "cannot install the Python requirements of llama.cpp's "
			"converter: pip: ") == NULL)
		fail_msg("show said: %s", out);
	free(out);
	assert_int_equal(sh(&out, "%s/mibera-job logs --step convert %lld",
			    MB_BINARY_DIR, id), 0);
	assert_non_null(strstr(out, "installing the Python requirements"));
	free(out);
}

/* where Python has torch and transformers: a job converted by llama.cpp's
 * converter goes through quantize, pull and smoke unchanged, and its
 * provenance and card name the converter */
static void test_job_with_llama_converter(void **state)
{
	char why[300], path[900], *out;
	const char *py = converter_python(why, sizeof(why));
	cJSON *doc;
	const char *conv;
	long long id;

	(void)state;
	if (py == NULL || !have_tree) {
		fprintf(stderr, "skipped: %s\n", py == NULL ? why :
			"the llama.cpp source in the build has no "
			"convert_hf_to_gguf.py (run deploy/deps.sh)");
		skip();
		return;
	}
	assert_int_equal(sh(&out, "%s/mibera-job submit %s --worker w "
			    "--converter llama.cpp --quant Q8_0", MB_BINARY_DIR,
			    llama), 0);
	id = strtoll(out, NULL, 10);
	free(out);
	assert_int_equal(sh(&out, "MIBERA_LLAMA_CONVERTER=%s "
			    "MIBERA_LLAMA_CONVERTER_PYTHON=%s "
			    "%s/mibera-coordinator --once", tree, py,
			    MB_BINARY_DIR), 0);
	free(out);
	assert_int_equal(sh(&out, "%s/mibera-job status %lld", MB_BINARY_DIR, id),
			 0);
	if (strstr(out, "succeeded") == NULL)
		fail_msg("status: %s", out);
	assert_non_null(strstr(out, "smoke      done"));
	free(out);
	snprintf(path, sizeof(path), "%s/mibera/artifacts/job-%lld/"
		 "provenance.json", root, id);
	out = th_slurp(path, NULL);
	assert_non_null(out);
	doc = cJSON_Parse(out);
	free(out);
	conv = cJSON_GetStringValue(cJSON_GetObjectItem(doc, "converter"));
	assert_non_null(conv);
	assert_non_null(strstr(conv, "llama.cpp convert_hf_to_gguf.py (llama.cpp "));
	cJSON_Delete(doc);
	snprintf(path, sizeof(path), "%s/mibera/artifacts/job-%lld/README.md",
		 root, id);
	out = th_slurp(path, NULL);
	assert_non_null(out);
	assert_non_null(strstr(out, "converted by llama.cpp convert_hf_to_gguf.py"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inspect_names_the_way_out),
		cmocka_unit_test(test_submit_refuses_then_stores_the_converter),
		cmocka_unit_test(test_worker_says_what_is_missing),
		cmocka_unit_test(test_job_fails_saying_why),
		cmocka_unit_test(test_job_with_llama_converter),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
