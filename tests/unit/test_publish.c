/* Tests coordinator/publish.c's choice of the file to start with: with
 * fidelity figures the smallest quant close enough to its F16 (mean KL
 * divergence <= 0.05, top-1 agreement >= 90%), else the closest; a broken
 * one never; without figures the old rule by type. And what a job
 * publishes says it: provenance.json, the Modelfile's FROM and the card. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/manifest.h"
#include "coordinator/publish.h"
#include "coordinator/store.h"
#include "th.h"

/* A job's files, smallest first, as a quant run of an 8B model makes
 * them (sizes in MB). */
static struct mb_publish_cand files[] = {
	{ "m-Q3_K_M.gguf", 3740, 0, 0, 0, 0, 0 },
	{ "m-Q4_K_M.gguf", 4580, 0, 0, 0, 0, 0 },
	{ "m-Q6_K.gguf", 6140, 0, 0, 0, 0, 0 },
	{ "m-Q8_0.gguf", 7960, 0, 0, 0, 0, 0 },
	{ "m-F16.gguf", 14970, 0, 0, 0, 0, 0 },
};
#define NFILES (sizeof(files) / sizeof(files[0]))

static void measure(size_t i, double kld, double top1)
{
	files[i].measured = 1;
	files[i].kld_mean = kld;
	files[i].top1 = top1;
}

static void reset(void)
{
	size_t i;

	for (i = 0; i < NFILES; i++) {
		files[i].measured = files[i].broken = 0;
		files[i].kld_mean = files[i].top1 = 0;
	}
}

static void test_without_figures_by_type(void **state)
{
	char why[256];

	(void)state;
	reset();
	assert_int_equal(mb_publish_choose(files, NFILES, why, sizeof(why)), 1);
	assert_string_equal(why, "by type (no fidelity figures)");
	/* no Q4_K_M: the next in the order, Q6_K before Q8_0 */
	assert_int_equal(mb_publish_choose(files + 2, 3, why, sizeof(why)), 0);
	assert_int_equal(mb_publish_choose(files, 0, why, sizeof(why)), -1);
	assert_int_equal(mb_publish_choose(files, NFILES, NULL, 0), 1);
}

static void test_smallest_close_enough(void **state)
{
	char why[256];

	(void)state;
	/* llama.cpp's LLaMA 3 8B figures: Q3_K_M is a step too far */
	reset();
	measure(0, 0.101913, 0.85);
	measure(1, 0.031273, 0.91901);
	measure(2, 0.005452, 0.96031);
	measure(3, 0.001355, 0.97674);
	assert_int_equal(mb_publish_choose(files, NFILES, why, sizeof(why)), 1);
	assert_string_equal(why, "the smallest with mean KL <= 0.05 and top-1 "
				 ">= 90%");
	/* a model that quantizes well: Q3_K_M is close enough, and smaller
	 * than what the type rule picks */
	measure(0, 0.040, 0.905);
	assert_int_equal(mb_publish_choose(files, NFILES, why, sizeof(why)), 0);
	/* one that quantizes badly: Q6_K is the smallest close enough */
	measure(0, 0.20, 0.80);
	measure(1, 0.07, 0.93);
	assert_int_equal(mb_publish_choose(files, NFILES, why, sizeof(why)), 2);
	/* a small KL is not enough: the top token must agree too */
	measure(1, 0.03, 0.89);
	assert_int_equal(mb_publish_choose(files, NFILES, why, sizeof(why)), 2);
	/* the bounds are inclusive */
	measure(1, MB_RECOMMEND_MAX_KLD, MB_RECOMMEND_MIN_TOP1);
	assert_int_equal(mb_publish_choose(files, NFILES, why, sizeof(why)), 1);
}

static void test_none_close_enough_the_closest(void **state)
{
	char why[256];

	(void)state;
	reset();
	measure(0, 0.40, 0.70);
	measure(1, 0.12, 0.85);
	measure(2, 0.09, 0.88);
	assert_int_equal(mb_publish_choose(files, NFILES, why, sizeof(why)), 2);
	assert_string_equal(why, "the closest to the F16: no quant has mean KL "
				 "<= 0.05 and top-1 >= 90%");
}

static void test_broken_never(void **state)
{
	char why[256];

	(void)state;
	reset();
	measure(0, 0.01, 0.99);
	files[0].broken = 1;	/* its figures are not to be believed */
	measure(1, 0.03, 0.92);
	assert_int_equal(mb_publish_choose(files, NFILES, why, sizeof(why)), 1);
	/* the only measured file broken: by type, around it */
	reset();
	measure(1, 0.01, 0.99);
	files[1].broken = 1;
	assert_int_equal(mb_publish_choose(files, NFILES, why, sizeof(why)), 2);
	assert_string_equal(why, "by type (no fidelity figures)");
}

/* What the fidelity step sends for one file. */
static void add_result(cJSON *arr, const char *file, double kld, double top1,
		       int ok)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "file", file);
	cJSON_AddNumberToObject(o, "kld_mean", kld);
	cJSON_AddNumberToObject(o, "top1", top1);
	cJSON_AddBoolToObject(o, "ok", ok);
	cJSON_AddItemToArray(arr, o);
}

static struct mb_manifest_list *manifest(void)
{
	struct mb_manifest_list *l = calloc(1, sizeof(*l));
	size_t i;

	assert_non_null(l);
	l->files = calloc(NFILES, sizeof(*l->files));
	assert_non_null(l->files);
	for (i = 0; i < NFILES; i++) {
		l->files[i] = calloc(1, sizeof(**l->files));
		assert_non_null(l->files[i]);
		l->files[i]->name = strdup(files[i].name);
		l->files[i]->size = files[i].size * 1000000ull;
		l->files[i]->chunk_size = 1 << 20;
	}
	l->n = NFILES;
	return l;
}

static void test_recommend_from_the_events(void **state)
{
	struct mb_manifest_list *l = manifest();
	cJSON *arr = cJSON_CreateArray();
	char why[256], *text;

	(void)state;
	add_result(arr, "m-Q3_K_M.gguf", 0.30, 0.80, 1);
	add_result(arr, "m-Q4_K_M.gguf", 0.08, 0.90, 1);
	/* a retry measured it again: the last result counts */
	add_result(arr, "m-Q4_K_M.gguf", 0.03, 0.92, 1);
	add_result(arr, "m-Q6_K.gguf", 0.005, 0.96, 1);
	text = cJSON_PrintUnformatted(arr);
	assert_string_equal(mb_publish_recommend(l, text, why, sizeof(why)),
			    "m-Q4_K_M.gguf");
	cJSON_free(text);
	/* the later result says it is broken */
	add_result(arr, "m-Q4_K_M.gguf", 0.03, 0.92, 0);
	text = cJSON_PrintUnformatted(arr);
	assert_string_equal(mb_publish_recommend(l, text, why, sizeof(why)),
			    "m-Q6_K.gguf");
	cJSON_free(text);
	/* no figures, or none readable: by type */
	assert_string_equal(mb_publish_recommend(l, NULL, why, sizeof(why)),
			    "m-Q4_K_M.gguf");
	assert_string_equal(mb_publish_recommend(l, "not json", why, sizeof(why)),
			    "m-Q4_K_M.gguf");
	assert_string_equal(mb_publish_recommended(l), "m-Q4_K_M.gguf");
	assert_null(mb_publish_recommend(NULL, NULL, why, sizeof(why)));
	cJSON_Delete(arr);
	mb_manifest_list_free(l);
}

/* A job's published files name the choice and say why. */
static void test_published_with_the_reason(void **state)
{
	struct mb_manifest_list *l = manifest();
	struct mb_publish p;
	struct mb_job_row j;
	cJSON *arr = cJSON_CreateArray(), *doc;
	char dir[512], path[700], err[512], *fid, *out;

	(void)state;
	assert_int_equal(th_tmpdir("publish", dir, sizeof(dir)), 0);
	memset(&j, 0, sizeof(j));
	j.id = 7;
	snprintf(j.source, sizeof(j.source), "org/m");
	snprintf(j.layout, sizeof(j.layout), "native");
	snprintf(j.outtype, sizeof(j.outtype), "f16");
	snprintf(j.quants, sizeof(j.quants), "Q3_K_M,Q4_K_M,Q6_K,Q8_0");
	add_result(arr, "m-Q3_K_M.gguf", 0.20, 0.80, 1);
	add_result(arr, "m-Q4_K_M.gguf", 0.07, 0.91, 1);
	add_result(arr, "m-Q6_K.gguf", 0.01, 0.95, 1);
	add_result(arr, "m-Q8_0.gguf", 0.001, 0.99, 1);
	fid = cJSON_PrintUnformatted(arr);
	memset(&p, 0, sizeof(p));
	p.j = &j;
	p.dir = dir;
	p.worker = "w";
	p.commit = "";
	p.fidelity = fid;
	p.files = l;
	p.convert = "{\"v\":1,\"type\":\"done\",\"file\":\"/workspace/mibera/"
		    "jobs/job-7/out/m-F16.gguf\",\"parts\":1,\"arch\":\"llama\"}";
	assert_int_equal(mb_publish(&p, err, sizeof(err)), 0);

	snprintf(path, sizeof(path), "%s/provenance.json", dir);
	out = th_slurp(path, NULL);
	assert_non_null(out);
	/* the converted file by its name, not where the worker kept it */
	assert_null(strstr(out, "/workspace/mibera"));
	doc = cJSON_Parse(out);
	free(out);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
			    cJSON_GetObjectItem(doc, "convert"), "file")),
			    "m-F16.gguf");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
			    cJSON_GetObjectItem(doc, "convert"), "arch")), "llama");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(doc,
			    "recommended")), "m-Q6_K.gguf");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(doc,
			    "recommended_why")), "the smallest with mean KL <= "
			    "0.05 and top-1 >= 90%");
	cJSON_Delete(doc);
	snprintf(path, sizeof(path), "%s/Modelfile", dir);
	out = th_slurp(path, NULL);
	assert_non_null(strstr(out, "FROM ./m-Q6_K.gguf\n"));
	free(out);
	snprintf(path, sizeof(path), "%s/README.md", dir);
	out = th_slurp(path, NULL);
	assert_non_null(strstr(out, "| m-Q6_K.gguf (recommended) |"));
	assert_non_null(strstr(out, "Recommended: **m-Q6_K.gguf**, the smallest "
				    "with mean KL <= 0.05 and top-1 >= 90% (mean "
				    "KL divergence 0.01000, same top token 95.0% "
				    "of the time, against the F16)."));
	free(out);

	/* without figures: by type, and the card says so */
	p.fidelity = NULL;
	assert_int_equal(mb_publish(&p, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/README.md", dir);
	out = th_slurp(path, NULL);
	assert_non_null(strstr(out, "Recommended: **m-Q4_K_M.gguf**, by type (no "
				    "fidelity figures).\n"));
	free(out);
	cJSON_free(fid);
	cJSON_Delete(arr);
	mb_manifest_list_free(l);
	assert_int_equal(th_rmtree(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_without_figures_by_type),
		cmocka_unit_test(test_smallest_close_enough),
		cmocka_unit_test(test_none_close_enough_the_closest),
		cmocka_unit_test(test_broken_never),
		cmocka_unit_test(test_recommend_from_the_events),
		cmocka_unit_test(test_published_with_the_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
