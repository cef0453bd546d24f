/* A job with submit --split-max-size over the loopback sshd worker: its
 * GGUFs bigger than the size come back as sets of parts, each part in the
 * manifest with its sha256, pulled and checked, the set smoke-tested from
 * its first part, and shown by artifacts, show and provenance.json as one
 * artifact of its parts. A job with --push sends every part to the fake
 * hub in one commit. A damaged or missing part is named when the files
 * are checked again (mibera-job push from this machine's copy), and
 * Ollama, which takes one file, is refused a set with the reason. */
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
#include <curl/curl.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/hub.h"
#include "common/manifest.h"
#include "common/sha256.h"
#include "common/splitset.h"
#include "hub.h"
#include "model.h"
#include "sshd.h"
#include "th.h"

#define TOKEN "hf_splittest_token_0123456789abcdef"

static char root[512], home[600], model[600], mhome[700], hubdir[700];
static struct th_sshd sshd;
static struct th_hub hub;

/* Runs PROGRAM ARGS with stdout and stderr into *out; returns the exit. */
static int run(const char *prog, char **out, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int run(const char *prog, char **out, const char *fmt, ...)
{
	char args[3000], cmd[4096];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s/%s %s", MB_BINARY_DIR, prog, args);
	rc = th_capture(cmd, out);
	assert_non_null(*out);
	return rc;
}

static int setup(void **state)
{
	const char *extra[] = { "--config", "correct", NULL };
	char path[800], *out = NULL;
	int rc;

	(void)state;
	unsetenv("HF_TOKEN");
	unsetenv("HF_HUB_OFFLINE");
	if (th_tmpdir("splitjob", root, sizeof(root)) != 0)
		return -1;
	snprintf(home, sizeof(home), "%s/home", root);
	snprintf(model, sizeof(model), "%s/phi4-tiny", root);
	snprintf(mhome, sizeof(mhome), "%s/mibera", root);
	snprintf(hubdir, sizeof(hubdir), "%s/hub", root);
	if (th_mkmodel(model, "phi4-tiny", extra) != 0 ||
	    th_sshd_start(&sshd) != 0 || mkdir(hubdir, 0755) != 0 ||
	    th_hub_start(&hub, hubdir, TOKEN) != 0)
		return -1;
	setenv("MIBERA_HOME", mhome, 1);
	snprintf(path, sizeof(path), "%s/nohf", root);
	setenv("HF_HOME", path, 1);
	setenv("HF_ENDPOINT", hub.url, 1);
	if (th_sshd_client(&sshd, home) != 0)
		return -1;
	/* the worker, its host key checked by its fingerprint */
	rc = th_worker_add(&out, "w1 box1 --dir %s/wd --agent %s/mibera-worker",
			   root, MB_BINARY_DIR);
	if (rc != 0)
		fprintf(stderr, "worker add: %s\n", out);
	free(out);
	return rc == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	th_hub_stop(&hub);
	th_sshd_stop(&sshd);
	th_rmtree(root);
	return 0;
}

static size_t on_body(char *d, size_t sz, size_t n, void *ctx)
{
	return mb_buf_add(ctx, d, sz * n) == 0 ? sz * n : 0;
}

/* The commits the fake hub applied to repo. */
static long long hub_commits(const char *repo)
{
	char url[256];
	struct mb_buf b;
	CURL *c = curl_easy_init();
	cJSON *j;
	const cJSON *v;
	long long n;

	assert_non_null(c);
	mb_buf_init(&b, 1 << 20);
	snprintf(url, sizeof(url), "%s/_control/stats", hub.url);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_cleanup(c);
	j = cJSON_Parse(b.data);
	mb_buf_release(&b);
	assert_non_null(j);
	v = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j,
		"uploads"), repo), "commits");
	n = cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
	cJSON_Delete(j);
	return n;
}

static void art_path(char *buf, size_t cap, int job, const char *name)
{
	snprintf(buf, cap, "%s/artifacts/job-%d/%s", mhome, job, name);
}

static void coordinator_once(int job)
{
	char *out;

	if (run("mibera-coordinator", &out, "--once") != 0)
		fail_msg("coordinator: %s", out);
	free(out);
	run("mibera-job", &out, "status %d", job);
	if (strstr(out, "succeeded") == NULL) {
		char *logs;

		run("mibera-job", &logs, "logs %d", job);
		fail_msg("job %d did not succeed:\n%s\n%s", job, out, logs);
	}
	free(out);
}

/* The manifest pulled with job's files: every part of every set in it,
 * each file here with its size and sha256. */
static struct mb_manifest_list *pulled(int job)
{
	struct mb_manifest_list *ml;
	char path[900], err[512], *json;
	size_t len, i;

	art_path(path, sizeof(path), job, "manifest.json");
	json = th_slurp(path, &len);
	assert_non_null(json);
	assert_int_equal(mb_manifest_list_from_json(json, len, &ml, err,
						    sizeof(err)), 0);
	free(json);
	for (i = 0; i < ml->n; i++) {
		uint8_t d[MB_SHA256_LEN];
		uint64_t size = 0;

		art_path(path, sizeof(path), job, ml->files[i]->name);
		assert_int_equal(mb_sha256_file(path, d, &size), 0);
		assert_int_equal(size, ml->files[i]->size);
		assert_memory_equal(d, ml->files[i]->sha256, sizeof(d));
	}
	return ml;
}

/* show's recommendation is the job's own (provenance.json's): a set of
 * parts is one candidate, named by its first part, with its figures */
static void show_recommends_as_provenance(int job)
{
	char path[900], line[1200], *out, *json;
	cJSON *prov;

	art_path(path, sizeof(path), job, "provenance.json");
	json = th_slurp(path, NULL);
	assert_non_null(json);
	prov = cJSON_Parse(json);
	free(json);
	assert_non_null(prov);
	snprintf(line, sizeof(line), "\nrecommended: %s, %s",
		 cJSON_GetStringValue(cJSON_GetObjectItem(prov, "recommended")),
		 cJSON_GetStringValue(cJSON_GetObjectItem(prov,
							  "recommended_why")));
	cJSON_Delete(prov);
	assert_int_equal(run("mibera-job", &out, "show %d", job), 0);
	if (strstr(out, line) == NULL)
		fail_msg("show %d does not say '%s':\n%s", job, line + 1, out);
	free(out);
}

static void test_job_split_parts(void **state)
{
	struct mb_manifest_list *ml;
	struct mb_splitset set;
	char path[900], err[512], *out, *json;
	size_t i;
	unsigned k;
	cJSON *prov, *arts, *a;
	int f16_seen = 0;

	(void)state;
	assert_int_equal(run("mibera-job", &out, "submit %s --quant Q8_0 "
			     "--pull-f16 --split-max-size 8M --no-fidelity",
			     model), 0);
	assert_string_equal(out, "1\n");
	free(out);
	coordinator_once(1);

	/* F16 (22.6 MB) in 3 parts, Q8_0 (12 MB) in 2, each listed and
	 * checked */
	ml = pulled(1);
	assert_int_equal(ml->n, 5);
	for (k = 0; k < 3; k++) {
		mb_splitset_part_path("phi4-tiny-F16.gguf", k, 3, path, sizeof(path));
		assert_non_null(mb_manifest_list_find(ml, path));
	}
	for (k = 0; k < 2; k++) {
		mb_splitset_part_path("phi4-tiny-Q8_0.gguf", k, 2, path, sizeof(path));
		assert_non_null(mb_manifest_list_find(ml, path));
	}
	mb_manifest_list_free(ml);
	art_path(path, sizeof(path), 1, "phi4-tiny-Q8_0.gguf");
	assert_int_equal(mb_splitset_find(path, &set, err, sizeof(err)), 0);
	assert_int_equal(set.count, 2);
	assert_true(set.largest <= 8000000);

	/* artifacts: one artifact of its parts */
	assert_int_equal(run("mibera-job", &out, "artifacts 1"), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "phi4-tiny-F16.gguf"));
	assert_non_null(strstr(out, "in 3 parts"));
	assert_non_null(strstr(out, "in 2 parts"));
	assert_non_null(strstr(out, "phi4-tiny-Q8_0-00002-of-00002.gguf"));
	free(out);
	assert_int_equal(run("mibera-job", &out, "artifacts 1 --json"), 0);
	assert_non_null(strstr(out, "\"artifact\":\"phi4-tiny-Q8_0.gguf\","
			       "\"part\":2,\"parts\":2"));
	free(out);
	/* show: each part named as part of its set; the smoke test ran on
	 * each set once, from its first part */
	assert_int_equal(run("mibera-job", &out, "show 1"), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "part 1 of 3 of phi4-tiny-F16.gguf"));
	assert_non_null(strstr(out, "part 2 of 2 of phi4-tiny-Q8_0.gguf"));
	free(out);
	show_recommends_as_provenance(1);
	assert_int_equal(run("mibera-job", &out, "logs 1 --json"), 0);
	assert_non_null(strstr(out, "phi4-tiny-Q8_0-00001-of-00002.gguf"));
	free(out);
	art_path(path, sizeof(path), 1, "provenance.json");
	json = th_slurp(path, NULL);
	assert_non_null(json);
	prov = cJSON_Parse(json);
	free(json);
	assert_non_null(prov);
	arts = cJSON_GetObjectItem(prov, "artifacts");
	assert_int_equal(cJSON_GetArraySize(arts), 2);
	cJSON_ArrayForEach(a, arts) {
		const char *f = cJSON_GetStringValue(cJSON_GetObjectItem(a, "file"));
		const cJSON *parts = cJSON_GetObjectItem(a, "parts");

		assert_non_null(f);
		if (strstr(f, "F16") != NULL) {
			f16_seen = 1;
			assert_string_equal(f, "phi4-tiny-F16-00001-of-00003.gguf");
			assert_int_equal(cJSON_GetArraySize(parts), 3);
		} else {
			assert_int_equal(cJSON_GetArraySize(parts), 2);
		}
		for (i = 0; i < (size_t)cJSON_GetArraySize(parts); i++)
			assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItem(
				cJSON_GetArrayItem(parts, (int)i), "sha256")));
	}
	assert_true(f16_seen);
	{
		const cJSON *smoke = cJSON_GetObjectItem(prov, "smoke");

		assert_int_equal(cJSON_GetArraySize(smoke), 2);
		cJSON_ArrayForEach(a, smoke)
			assert_int_equal(cJSON_GetObjectItem(a, "parts") != NULL, 1);
	}
	cJSON_Delete(prov);
	/* the model card lists the set once, with every part's sha256 */
	art_path(path, sizeof(path), 1, "README.md");
	json = th_slurp(path, NULL);
	assert_non_null(json);
	assert_non_null(strstr(json, "phi4-tiny-Q8_0-00001-of-00002.gguf "
			       "(recommended) and 1 more parts"));
	free(json);

	/* Ollama takes one file: refused, saying why, before any server */
	setenv("OLLAMA_HOST", "127.0.0.1:1", 1);
	assert_int_not_equal(run("mibera-job", &out, "ollama 1 tiny"), 0);
	unsetenv("OLLAMA_HOST");
	print_message("%s", out);
	assert_non_null(strstr(out, "set of parts"));
	assert_non_null(strstr(out, "one GGUF file"));
	free(out);
	/* cleanup removed the job's directory and every part with it */
	snprintf(path, sizeof(path), "%s/wd/jobs/job-1", root);
	assert_int_not_equal(access(path, F_OK), 0);
}

/* A hub push sends every part in one commit; then a damaged part and a
 * missing one are named when this machine's copy is pushed again */
static void test_job_push_parts(void **state)
{
	struct mb_manifest_list *ml;
	struct mb_hub h;
	struct mb_hub_repo *tree = NULL;
	long long commits = -1;
	char path[900], moved[920], *out;
	size_t i;

	(void)state;
	setenv("HF_TOKEN", TOKEN, 1);
	assert_int_equal(run("mibera-job", &out, "submit %s --quant Q8_0,Q4_K_M "
			     "--split-max-size 8M --push org/split", model), 0);
	assert_string_equal(out, "2\n");
	free(out);
	coordinator_once(2);
	show_recommends_as_provenance(2);
	/* Ollama takes one file: with the recommendation a set of parts,
	 * the Modelfile and mibera-job ollama take the whole Q4_K_M */
	art_path(path, sizeof(path), 2, "Modelfile");
	{
		char *mf = th_slurp(path, NULL);

		assert_non_null(mf);
		if (strstr(mf, "\nFROM ./phi4-tiny-Q4_K_M.gguf\n") == NULL)
			fail_msg("Modelfile:\n%s", mf);
		assert_non_null(strstr(mf, "is a set of parts, which Ollama "
					   "cannot take"));
		free(mf);
	}
	setenv("OLLAMA_HOST", "127.0.0.1:1", 1);
	assert_int_not_equal(run("mibera-job", &out, "ollama 2 tiny"), 0);
	unsetenv("OLLAMA_HOST");
	print_message("%s", out);
	assert_null(strstr(out, "set of parts"));
	free(out);
	ml = pulled(2);
	/* Q8_0 in 2 parts, Q4_K_M whole (made with an importance matrix
	 * over the F16 set) */
	assert_int_equal(ml->n, 3);
	assert_non_null(mb_manifest_list_find(ml, "phi4-tiny-Q4_K_M.gguf"));
	assert_int_equal(mb_hub_init(&h, hub.url, TOKEN), 0);
	assert_int_equal(mb_hub_list(&h, "org/split", "main", &tree), 0);
	for (i = 0; i < ml->n; i++)
		if (mb_hub_repo_find(tree, ml->files[i]->name) == NULL)
			fail_msg("%s is not in the hub's tree", ml->files[i]->name);
	assert_non_null(mb_hub_repo_find(tree, "provenance.json"));
	mb_hub_repo_free(tree);
	mb_hub_release(&h);
	commits = hub_commits("org/split");
	assert_int_equal(commits, 1);

	/* a damaged part: named, nothing pushed */
	art_path(path, sizeof(path), 2, "phi4-tiny-Q8_0-00002-of-00002.gguf");
	{
		FILE *f = fopen(path, "r+b");

		assert_non_null(f);
		fseek(f, 4096, SEEK_SET);
		fputc(0x5a ^ fgetc(f), f);
		fclose(f);
	}
	assert_int_not_equal(run("mibera-job", &out, "push 2 org/again"), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "phi4-tiny-Q8_0-00002-of-00002.gguf"));
	free(out);
	/* a missing part: named */
	snprintf(moved, sizeof(moved), "%s.away", path);
	assert_int_equal(rename(path, moved), 0);
	assert_int_not_equal(run("mibera-job", &out, "push 2 org/again"), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "phi4-tiny-Q8_0-00002-of-00002.gguf"));
	free(out);
	unsetenv("HF_TOKEN");
	mb_manifest_list_free(ml);
}

/* submit refuses a size the hub would not take with --push, and nonsense */
static void test_submit_sizes(void **state)
{
	char *out;

	(void)state;
	assert_int_equal(run("mibera-job", &out, "submit %s --split-max-size 60G "
			     "--push org/x", model), 2);
	assert_non_null(strstr(out, "50G"));
	free(out);
	assert_int_equal(run("mibera-job", &out, "submit %s --split-max-size 5Q",
			     model), 2);
	assert_non_null(strstr(out, "not a size"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_job_split_parts),
		cmocka_unit_test(test_job_push_parts),
		cmocka_unit_test(test_submit_sizes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
