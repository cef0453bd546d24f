/* mibera-worker push against the fake hub: a job's out directory (GGUFs,
 * model card, provenance.json, manifest.json) lands in a new private repo
 * in exactly one commit, with every file equal to the local one; a part
 * upload that fails once is sent again alone; a commit whose answer is
 * lost is not applied twice; a second push sends nothing the hub has; no
 * token, a damaged file and a bad repo id each end with a clear error and
 * nothing committed. The token never shows in argv, output or events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/buf.h"
#include "common/hub.h"
#include "common/sha256.h"
#include "hub.h"
#include "model.h"
#include "th.h"

#define TOKEN "hf_pushtest_token_0123456789abcdef"
/* small sizes, so that a 3 MB file makes five parts */
#define THRESHOLD 1000000
#define CHUNK 700000
#define BIG_SIZE 3000000
#define NPARTS 5

static char root[512], hubdir[600], outdir[600];
static struct th_hub hub;
static int runs;

static const char *const files[] = {
	"m-F16.gguf", "m-Q4_K_M.gguf", "README.md", "provenance.json",
};
#define NFILES (sizeof(files) / sizeof(files[0]))

static size_t on_body(char *d, size_t sz, size_t n, void *ctx)
{
	return mb_buf_add(ctx, d, sz * n) == 0 ? sz * n : 0;
}

/* The fake hub's upload counters for repo. */
static cJSON *stats(void)
{
	char url[128];
	struct mb_buf b;
	CURL *c = curl_easy_init();
	cJSON *j;

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
	return j;
}

static long long upload_count(const char *repo, const char *what)
{
	cJSON *j = stats();
	const cJSON *u = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "uploads"),
					     repo);
	const cJSON *v = cJSON_GetObjectItem(u, what);
	long long n = cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;

	cJSON_Delete(j);
	return n;
}

static long long top_count(const char *what)
{
	cJSON *j = stats();
	const cJSON *v = cJSON_GetObjectItem(j, what);
	long long n = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;

	cJSON_Delete(j);
	return n;
}

struct run {
	int code;
	char *out;
	char *err;
	char *events;
	cJSON *result;
};

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	free(r->events);
	cJSON_Delete(r->result);
}

/* Runs mibera-worker push DIR REPO ARGS --json; the token, when given,
 * through the environment only. */
static void push(struct run *r, const char *dir, const char *repo,
		 const char *args, const char *token)
{
	char cmd[4096], errpath[800], evpath[800];

	memset(r, 0, sizeof(*r));
	runs++;
	snprintf(evpath, sizeof(evpath), "%s/events%d.jsonl", root, runs);
	snprintf(errpath, sizeof(errpath), "%s/stderr%d.txt", root, runs);
	setenv("MIBERA_EVENTS", evpath, 1);
	if (token != NULL)
		setenv("HF_TOKEN", token, 1);
	snprintf(cmd, sizeof(cmd), "%s/mibera-worker push %s %s --json "
		 "--backoff-ms 50 --backoff-max-ms 200 %s 2>%s",
		 MB_BINARY_DIR, dir, repo, args, errpath);
	{
		struct mb_buf b;
		char chunk[65536];
		size_t n;
		FILE *pp = popen(cmd, "r");
		int st;

		assert_non_null(pp);
		mb_buf_init(&b, 1 << 20);
		while ((n = fread(chunk, 1, sizeof(chunk), pp)) > 0)
			assert_int_equal(mb_buf_add(&b, chunk, n), 0);
		st = pclose(pp);
		r->code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		r->out = b.data != NULL ? mb_buf_detach(&b, NULL) : strdup("");
		mb_buf_release(&b);
	}
	unsetenv("HF_TOKEN");
	unsetenv("MIBERA_EVENTS");
	r->err = th_slurp(errpath, NULL);
	assert_non_null(r->err);
	r->events = th_slurp(evpath, NULL);
	if (r->events == NULL)
		r->events = strdup("");
	r->result = cJSON_Parse(r->out);
	/* the secret shows nowhere a person or a log reads */
	assert_null(strstr(r->out, TOKEN));
	assert_null(strstr(r->err, TOKEN));
	assert_null(strstr(r->events, TOKEN));
}

static void expect_ok(const struct run *r)
{
	if (r->code != 0)
		fail_msg("push exit %d; stderr: %s", r->code, r->err);
	assert_non_null(r->result);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r->result, "ok")));
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);

	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static void sha_hex(const char *path, char hex[65])
{
	uint8_t d[32];

	assert_int_equal(mb_sha256_file(path, d, NULL), 0);
	mb_sha256_hex(d, hex);
}

static void make_file(const char *name, size_t size, unsigned seed)
{
	char p[1200];
	char *data = malloc(size + 1);
	size_t i;

	assert_non_null(data);
	for (i = 0; i < size; i++) {
		seed = seed * 1103515245u + 12345u;
		data[i] = (char)(seed >> 16);
	}
	snprintf(p, sizeof(p), "%s/%s", outdir, name);
	assert_int_equal(th_write_file(p, data, size), 0);
	free(data);
}

/* Every pushed file in the hub's repo equals the local one, byte for byte
 * and by the tree's LFS sha256, at the commit the push reported. */
static void check_repo(const char *repo, const struct run *r)
{
	struct mb_hub h;
	struct mb_hub_repo *tree = NULL;
	const cJSON *c = cJSON_GetObjectItem(r->result, "commit");
	size_t i;

	assert_true(cJSON_IsString(c));
	assert_int_equal(mb_hub_init(&h, hub.url, TOKEN), 0);
	assert_int_equal(mb_hub_list(&h, repo, "main", &tree), 0);
	assert_string_equal(tree->commit, c->valuestring);
	for (i = 0; i < NFILES; i++) {
		char a[1200], b[1200], ha[65], hb[65];
		const struct mb_hub_file *f = mb_hub_repo_find(tree, files[i]);

		snprintf(a, sizeof(a), "%s/%s", outdir, files[i]);
		snprintf(b, sizeof(b), "%s/%s/%s", hubdir, repo, files[i]);
		if (f == NULL)
			fail_msg("%s is not in the tree of %s", files[i], repo);
		sha_hex(a, ha);
		sha_hex(b, hb);
		assert_string_equal(ha, hb);
		if (strstr(files[i], ".gguf") != NULL) {
			assert_true(f->lfs);
			assert_string_equal(f->sha256, ha);
		}
	}
	mb_hub_repo_free(tree);
	mb_hub_release(&h);
}

static int setup(void **state)
{
	const char *extra[] = { "--multipart-threshold", "1000000",
				"--chunk-size", "700000", NULL };
	char p[800], mf[1200];

	(void)state;
	unsetenv("HF_TOKEN");
	unsetenv("HF_HUB_OFFLINE");
	if (th_tmpdir("push", root, sizeof(root)) != 0)
		return -1;
	snprintf(hubdir, sizeof(hubdir), "%s/hub", root);
	snprintf(outdir, sizeof(outdir), "%s/out", root);
	if (mkdir(hubdir, 0755) != 0 || mkdir(outdir, 0755) != 0)
		return -1;
	/* keep the token file of the machine out of it */
	snprintf(p, sizeof(p), "%s/nohome", root);
	setenv("HF_HOME", p, 1);
	make_file("m-F16.gguf", 200000, 1);
	make_file("m-Q4_K_M.gguf", BIG_SIZE, 2);
	snprintf(p, sizeof(p), "%s/README.md", outdir);
	th_write_file(p, "# m\n\nGGUF files of org/m.\n", 25);
	snprintf(p, sizeof(p), "%s/provenance.json", outdir);
	th_write_file(p, "{\"source\":\"org/m\"}\n", 19);
	snprintf(mf, sizeof(mf), "%s/mibera-worker manifest %s >/dev/null",
		 MB_BINARY_DIR, outdir);
	if (system(mf) != 0)
		return -1;
	if (th_hub_start_args(&hub, hubdir, TOKEN, extra) != 0)
		return -1;
	setenv("HF_ENDPOINT", hub.url, 1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_hub_stop(&hub);
	if (getenv("MB_KEEP_TMP") == NULL)
		th_rmtree(root);
	return 0;
}

/* A new private repo; part 2 of the big file fails once with a 500. */
static void test_push_new_private_repo(void **state)
{
	const char *repo = "org/m-GGUF";
	char p[1200];
	struct run r;
	char *meta;

	(void)state;
	assert_int_equal(th_hub_reset(&hub), 0);
	assert_int_equal(th_hub_fault(&hub, repo, "lfs-part/2",
				      "\"status\":500"), 0);
	push(&r, outdir, repo, "--private --message 'GGUF files'", TOKEN);
	expect_ok(&r);
	/* one commit; part 2 sent twice, no other part again */
	assert_int_equal(upload_count(repo, "commits"), 1);
	assert_int_equal(upload_count(repo, "refused"), 1);
	assert_int_equal(upload_count(repo, "part_puts"), NPARTS + 1);
	assert_int_equal(upload_count(repo, "object_puts"), 1);
	assert_int_equal(upload_count(repo, "bytes"),
			 BIG_SIZE + CHUNK + 200000);
	assert_int_equal(upload_count(repo, "objects"), 2);
	/* the token never went to the storage URLs */
	assert_int_equal(top_count("blob_auth_headers"), 0);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r.result, "created")));
	assert_int_equal((int)num(r.result, "parts"), NPARTS);
	assert_true(num(r.result, "retries") >= 1);
	assert_int_equal((int)num(r.result, "files"), (int)NFILES);
	check_repo(repo, &r);
	/* private: the hub tells no one without the token */
	snprintf(p, sizeof(p), "%s/%s/.fakehub.json", hubdir, repo);
	meta = th_slurp(p, NULL);
	assert_non_null(meta);
	assert_non_null(strstr(meta, "\"private\": true"));
	free(meta);
	{
		struct mb_hub h;
		struct mb_hub_repo *t = NULL;

		assert_int_equal(mb_hub_init(&h, hub.url, ""), 0);
		assert_int_not_equal(mb_hub_list(&h, repo, "main", &t), 0);
		mb_hub_release(&h);
	}
	/* the journal has progress and the result */
	assert_non_null(strstr(r.events, "\"type\":\"progress\""));
	assert_non_null(strstr(r.events, "\"type\":\"result\""));
	run_free(&r);
}

/* Pushed again: the hub has every object, nothing is sent but the commit. */
static void test_push_again_sends_nothing(void **state)
{
	const char *repo = "org/again-GGUF";
	struct run r;

	(void)state;
	assert_int_equal(th_hub_reset(&hub), 0);
	push(&r, outdir, repo, "", TOKEN);
	expect_ok(&r);
	run_free(&r);
	assert_int_equal(th_hub_reset(&hub), 0);
	push(&r, outdir, repo, "", TOKEN);
	expect_ok(&r);
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(r.result, "created")));
	assert_int_equal((long long)num(r.result, "uploaded"), 0);
	assert_int_equal((long long)num(r.result, "reused"), BIG_SIZE + 200000);
	assert_int_equal(upload_count(repo, "bytes"), 0);
	assert_int_equal(upload_count(repo, "commits"), 1);
	check_repo(repo, &r);
	run_free(&r);
}

/* The commit is applied but its answer is lost (a 500): the retry is
 * refused as stale, the push finds its files at the head: one commit. */
static void test_push_commit_answer_lost(void **state)
{
	const char *repo = "org/lost-GGUF";
	struct run r;

	(void)state;
	assert_int_equal(th_hub_reset(&hub), 0);
	assert_int_equal(th_hub_fault(&hub, repo, "commit-applied",
				      "\"status\":500"), 0);
	push(&r, outdir, repo, "", TOKEN);
	expect_ok(&r);
	assert_int_equal(upload_count(repo, "commits"), 1);
	assert_int_equal(upload_count(repo, "refused"), 1);
	check_repo(repo, &r);
	run_free(&r);
}

/* No token: a clear, permanent error naming HF_TOKEN; no repo made. */
static void test_push_without_token(void **state)
{
	char p[1200];
	struct run r;
	struct stat st;

	(void)state;
	push(&r, outdir, "org/notoken", "", NULL);
	assert_int_equal(r.code, 3);
	assert_non_null(strstr(r.err, "HF_TOKEN"));
	snprintf(p, sizeof(p), "%s/org/notoken", hubdir);
	assert_int_not_equal(stat(p, &st), 0);
	run_free(&r);
	/* a token the hub does not know: refused, permanent */
	push(&r, outdir, "org/notoken", "", "hf_wrong_token_0123456789abcdef");
	assert_int_equal(r.code, 3);
	assert_non_null(strstr(r.err, "write access"));
	assert_int_not_equal(stat(p, &st), 0);
	run_free(&r);
}

/* A file changed since the manifest was written is not published. */
static void test_push_damaged_file(void **state)
{
	char dir[800], cmd[2400], p[1200];
	struct run r;
	struct stat st;
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/damaged", root);
	snprintf(cmd, sizeof(cmd), "cp -r %s %s", outdir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(p, sizeof(p), "%s/m-F16.gguf", dir);
	f = fopen(p, "r+b");
	assert_non_null(f);
	fseek(f, 1000, SEEK_SET);
	fputc('X', f);
	fclose(f);
	push(&r, dir, "org/damaged", "", TOKEN);
	assert_int_equal(r.code, 3);
	assert_non_null(strstr(r.err, "manifest"));
	snprintf(p, sizeof(p), "%s/org/damaged", hubdir);
	assert_int_not_equal(stat(p, &st), 0);
	run_free(&r);
}

/* Usage errors: a bad repo id, a path out of DIR. */
static void test_push_usage(void **state)
{
	struct run r;

	(void)state;
	push(&r, outdir, "not-a-repo", "", TOKEN);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "not a repository id"));
	run_free(&r);
	push(&r, outdir, "org/x", "--files ../etc/passwd", TOKEN);
	assert_int_equal(r.code, 2);
	run_free(&r);
}

/* Checks that repo holds exactly the job's artifacts as pulled here:
 * each GGUF of its manifest, the model card and provenance.json. */
static void check_job_repo(const char *repo, const char *adir)
{
	static const char *const want[] = { "tiny-Q8_0.gguf", "README.md",
					    "provenance.json" };
	struct mb_hub h;
	struct mb_hub_repo *tree = NULL;
	size_t i;

	assert_int_equal(mb_hub_init(&h, hub.url, TOKEN), 0);
	assert_int_equal(mb_hub_list(&h, repo, "main", &tree), 0);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char a[1200], b[1200], ha[65], hb[65];

		if (mb_hub_repo_find(tree, want[i]) == NULL)
			fail_msg("%s is not in the tree of %s", want[i], repo);
		snprintf(a, sizeof(a), "%s/%s", adir, want[i]);
		snprintf(b, sizeof(b), "%s/%s/%s", hubdir, repo, want[i]);
		sha_hex(a, ha);
		sha_hex(b, hb);
		assert_string_equal(ha, hb);
	}
	/* the float GGUF stays on the worker, as it is not pulled */
	assert_null(mb_hub_repo_find(tree, "tiny-F16.gguf"));
	mb_hub_repo_free(tree);
	mb_hub_release(&h);
}

/* A job submitted with --push ends with its files in the repo, pushed
 * from the worker with the token the coordinator holds; mibera-job push
 * sends a finished job's files from here. */
static void test_job_pushes(void **state)
{
	char model[700], mhome[700], adir[800], cmd[4096], *out;
	const char *extra[] = { "--config", "broken", NULL };

	(void)state;
	snprintf(model, sizeof(model), "%s/tiny", root);
	assert_int_equal(th_mkmodel(model, "phi4-tiny", extra), 0);
	snprintf(mhome, sizeof(mhome), "%s/mibera", root);
	setenv("MIBERA_HOME", mhome, 1);
	snprintf(cmd, sizeof(cmd), "%s/mibera-job worker add wl local --dir %s/wd "
		 "--agent %s/mibera-worker", MB_BINARY_DIR, root, MB_BINARY_DIR);
	if (th_capture(cmd, &out) != 0)
		fail_msg("worker add: %s", out);
	free(out);
	setenv("HF_TOKEN", TOKEN, 1);
	snprintf(cmd, sizeof(cmd), "%s/mibera-job submit %s --quant Q8_0 "
		 "--no-fidelity --push org/fromjob --private", MB_BINARY_DIR,
		 model);
	assert_int_equal(th_capture(cmd, &out), 0);
	assert_string_equal(out, "1\n");
	free(out);
	snprintf(cmd, sizeof(cmd), "%s/mibera-coordinator --once", MB_BINARY_DIR);
	if (th_capture(cmd, &out) != 0)
		fail_msg("coordinator: %s", out);
	unsetenv("HF_TOKEN");
	assert_null(strstr(out, TOKEN));
	free(out);
	snprintf(cmd, sizeof(cmd), "%s/mibera-job status 1", MB_BINARY_DIR);
	assert_int_equal(th_capture(cmd, &out), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "succeeded"));
	assert_non_null(strstr(out, "push       done"));
	free(out);
	snprintf(adir, sizeof(adir), "%s/artifacts/job-1", mhome);
	check_job_repo("org/fromjob", adir);
	/* the token reached no stored event */
	snprintf(cmd, sizeof(cmd), "%s/mibera-job logs --json 1", MB_BINARY_DIR);
	assert_int_equal(th_capture(cmd, &out), 0);
	assert_null(strstr(out, TOKEN));
	assert_non_null(strstr(out, "\"step\":\"push\""));
	free(out);

	/* by hand, from this machine's copy */
	setenv("HF_TOKEN", TOKEN, 1);
	snprintf(cmd, sizeof(cmd), "%s/mibera-job push 1 org/byhand", MB_BINARY_DIR);
	if (th_capture(cmd, &out) != 0)
		fail_msg("mibera-job push: %s", out);
	unsetenv("HF_TOKEN");
	assert_non_null(strstr(out, "pushed job 1 to"));
	free(out);
	check_job_repo("org/byhand", adir);
	snprintf(cmd, sizeof(cmd), "%s/mibera-job push 1 not-a-repo", MB_BINARY_DIR);
	assert_int_equal(th_capture(cmd, &out), 2);
	free(out);

	/* no token where the coordinator runs: submit warns, the job fails
	 * at its push saying how to push the good files later, and that
	 * works once there is a token */
	snprintf(cmd, sizeof(cmd), "%s/mibera-job submit %s --quant Q8_0 "
		 "--no-fidelity --no-smoke --push org/late", MB_BINARY_DIR, model);
	assert_int_equal(th_capture(cmd, &out), 0);
	assert_non_null(strstr(out, "--push needs a hub token"));
	free(out);
	snprintf(cmd, sizeof(cmd), "%s/mibera-coordinator --once", MB_BINARY_DIR);
	th_capture(cmd, &out);
	free(out);
	snprintf(cmd, sizeof(cmd), "%s/mibera-job show 2", MB_BINARY_DIR);
	assert_int_equal(th_capture(cmd, &out), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "failed"));
	assert_non_null(strstr(out, "mibera-job push 2 org/late"));
	free(out);
	setenv("HF_TOKEN", TOKEN, 1);
	snprintf(cmd, sizeof(cmd), "%s/mibera-job push 2 org/late", MB_BINARY_DIR);
	if (th_capture(cmd, &out) != 0)
		fail_msg("mibera-job push after a failed push: %s", out);
	unsetenv("HF_TOKEN");
	free(out);
	snprintf(adir, sizeof(adir), "%s/artifacts/job-2", mhome);
	check_job_repo("org/late", adir);
	unsetenv("MIBERA_HOME");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_new_private_repo),
		cmocka_unit_test(test_push_again_sends_nothing),
		cmocka_unit_test(test_push_commit_answer_lost),
		cmocka_unit_test(test_push_without_token),
		cmocka_unit_test(test_push_damaged_file),
		cmocka_unit_test(test_push_usage),
		cmocka_unit_test(test_job_pushes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
