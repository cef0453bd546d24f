/* mibera-worker fetch against the fake hub: a sharded phi4-tiny repo lands
 * verified in the hub cache layout, and each fault (cut, corrupt byte,
 * stall, 429, 503, Range ignored, kill -9, gated repo, full disk) ends with
 * correct files or a clear permanent error, with the hub's byte counters
 * showing that nothing was fetched twice over. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
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

#include "common/buf.h"
#include "common/download.h"
#include "common/err.h"
#include "common/fault.h"
#include "common/fs.h"
#include "common/hub.h"
#include "common/sha256.h"
#include "hub.h"
#include "model.h"
#include "th.h"

#define TOKEN "hf_fetchtest_token_0123456789"
#define REPO "org/phi4-tiny"
#define GATED "org/gated-tiny"
/* The stall test has a repo of its own: the stalled answer's thread wakes
 * up seconds later and would count its bytes in another test's figures. */
#define STALLED "org/stall-tiny"
#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"
#define RANGE (256u * 1024)
#define CONNS 4
/* short timeouts so that each fault costs seconds, not minutes */
#define FAST "--range-size 256K --connections 4 --stall-timeout 1 " \
	     "--backoff-ms 100 --backoff-max-ms 1000"

static char root[512], hubdir[600];
static struct th_hub hub;
static int runs;

static const char *const files[] = {
	"README.md", "config.json", "generation_config.json", SHARD1, SHARD2,
	"model.safetensors.index.json", "special_tokens_map.json",
	"tokenizer.json", "tokenizer_config.json",
};
#define NFILES (sizeof(files) / sizeof(files[0]))

struct run {
	int code;
	char *out;
	char *err;
	char cache[700], dest[700], events[700];
	long long ms;
};

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* Runs mibera-worker fetch SPEC ARGS with a fresh cache and dest (or the
 * ones of `reuse`), the events journal in the run's directory. */
static void fetch(struct run *r, const char *spec, const char *args,
		  const struct run *reuse)
{
	char cmd[4096], errpath[800];
	struct mb_buf b;
	char chunk[65536];
	size_t n;
	long long t0;
	FILE *p;
	int st;

	memset(r, 0, sizeof(*r));
	runs++;
	if (reuse != NULL) {
		memcpy(r->cache, reuse->cache, sizeof(r->cache));
		memcpy(r->dest, reuse->dest, sizeof(r->dest));
	} else {
		snprintf(r->cache, sizeof(r->cache), "%s/run%d/cache", root, runs);
		snprintf(r->dest, sizeof(r->dest), "%s/run%d/dest", root, runs);
	}
	snprintf(r->events, sizeof(r->events), "%s/events%d.jsonl", root, runs);
	snprintf(errpath, sizeof(errpath), "%s/stderr%d.txt", root, runs);
	setenv("MIBERA_EVENTS", r->events, 1);
	snprintf(cmd, sizeof(cmd), "%s/mibera-worker fetch %s --cache %s --dest %s "
		 "--json %s 2>%s", MB_BINARY_DIR, spec, r->cache, r->dest, args,
		 errpath);
	t0 = th_now_ms();
	p = popen(cmd, "r");
	assert_non_null(p);
	mb_buf_init(&b, 1 << 20);
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		assert_int_equal(mb_buf_add(&b, chunk, n), 0);
	st = pclose(p);
	unsetenv("MIBERA_EVENTS");
	r->ms = th_now_ms() - t0;
	r->out = mb_buf_detach(&b, NULL);
	mb_buf_release(&b);
	r->err = th_slurp(errpath, NULL);
	assert_non_null(r->err);
	r->code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_ok(const struct run *r)
{
	if (r->code != 0)
		fail_msg("fetch exit %d; stderr: %s", r->code, r->err);
}

static void src_path(char *out, size_t cap, const char *repo, const char *f)
{
	snprintf(out, cap, "%s/%s/%s", hubdir, repo, f);
}

static long long file_size(const char *repo, const char *f)
{
	char p[1200];
	struct stat st;

	src_path(p, sizeof(p), repo, f);
	assert_int_equal(stat(p, &st), 0);
	return (long long)st.st_size;
}

static void blob_of(const char *repo, const char *f, char hex[65])
{
	uint8_t d[32];
	char p[1200];

	src_path(p, sizeof(p), repo, f);
	assert_int_equal(mb_sha256_file(p, d, NULL), 0);
	mb_sha256_hex(d, hex);
}

/* Every file in dest and in the snapshot equals the hub's, no partial
 * file is left, refs/main names the commit. */
static void check_tree(const struct run *r, const char *repo)
{
	char p[2400], q[1200], snap[1200], commit[41];
	const char *name = strchr(repo, '/') + 1;
	cJSON *doc = cJSON_Parse(r->out);
	char *ref;
	size_t i;

	assert_non_null(doc);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "ok")));
	snprintf(commit, sizeof(commit), "%s",
		 cJSON_GetObjectItem(doc, "commit")->valuestring);
	cJSON_Delete(doc);
	snprintf(p, sizeof(p), "%s/models--org--%s/refs/main", r->cache, name);
	ref = th_slurp(p, NULL);
	assert_non_null(ref);
	assert_string_equal(ref, commit);
	free(ref);
	snprintf(snap, sizeof(snap), "%s/models--org--%s/snapshots/%s", r->cache,
		 name, commit);
	for (i = 0; i < NFILES; i++) {
		struct stat st;

		src_path(q, sizeof(q), repo, files[i]);
		snprintf(p, sizeof(p), "%s/%s", r->dest, files[i]);
		if (!th_same_file(p, q))
			fail_msg("dest/%s differs from the hub's", files[i]);
		snprintf(p, sizeof(p), "%s/%s", snap, files[i]);
		assert_int_equal(lstat(p, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
		if (!th_same_file(p, q))
			fail_msg("snapshot/%s differs from the hub's", files[i]);
	}
	{
		char cmd[2000];

		snprintf(cmd, sizeof(cmd), "cd %s/models--org--%s/blobs && ! ls "
			 "| grep -q '\\.incomplete\\|\\.ranges'", r->cache, name);
		assert_int_equal(system(cmd), 0);
	}
}

static long long served(const char *repo, const char *f)
{
	long long bytes = -1;

	assert_int_equal(th_hub_stats(&hub, repo, f, &bytes, NULL), 0);
	return bytes;
}

static void write_text(const char *dir, const char *name, const char *text)
{
	char p[1200];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(th_write_file(p, text, strlen(text)), 0);
}

static int setup(void **state)
{
	char p[800];

	(void)state;
	if (th_tmpdir("fetch", root, sizeof(root)) != 0)
		return -1;
	snprintf(hubdir, sizeof(hubdir), "%s/hub", root);
	snprintf(p, sizeof(p), "%s/%s", hubdir, REPO);
	if (th_mkmodel(p, "phi4-tiny", NULL) != 0)
		return -1;
	snprintf(p, sizeof(p), "%s/%s", hubdir, GATED);
	if (th_mkmodel(p, "phi4-tiny", NULL) != 0)
		return -1;
	write_text(p, ".fakehub.json", "{\"gated\":true}");
	snprintf(p, sizeof(p), "%s/%s", hubdir, STALLED);
	if (th_mkmodel(p, "phi4-tiny", NULL) != 0)
		return -1;
	if (th_hub_start(&hub, hubdir, TOKEN) != 0)
		return -1;
	setenv("HF_ENDPOINT", hub.url, 1);
	unsetenv("HF_TOKEN");
	unsetenv("HF_HUB_OFFLINE");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	th_hub_stop(&hub);
	th_rmtree(root);
	return 0;
}

static int reset(void **state)
{
	(void)state;
	return th_hub_reset(&hub);
}

static void test_download_layout(void **state)
{
	long long auth = -1;
	char *ev;
	struct run r, again;

	(void)state;
	fetch(&r, REPO, FAST, NULL);
	expect_ok(&r);
	check_tree(&r, REPO);
	/* each byte once */
	assert_int_equal(served(REPO, SHARD1), file_size(REPO, SHARD1));
	assert_int_equal(served(REPO, SHARD2), file_size(REPO, SHARD2));
	assert_int_equal(th_hub_blob_auth_count(&hub, &auth), 0);
	assert_int_equal(auth, 0);
	/* progress per file and overall, and the result, in the journal */
	ev = th_slurp(r.events, NULL);
	assert_non_null(ev);
	assert_non_null(strstr(ev, "\"type\":\"progress\",\"what\":\"download\""));
	assert_non_null(strstr(ev, "\"file\":\"" SHARD1 "\""));
	assert_non_null(strstr(ev, "\"verified\":true"));
	assert_non_null(strstr(ev, "\"eta\":"));
	assert_non_null(strstr(ev, "\"type\":\"result\",\"ok\":true"));
	free(ev);
	/* a second run finds everything in place and fetches nothing */
	th_hub_reset(&hub);
	fetch(&again, REPO, FAST, &r);
	expect_ok(&again);
	assert_int_equal(served(REPO, SHARD1), 0);
	assert_non_null(strstr(again.out, "\"fetched\":0"));
	run_free(&again);
	run_free(&r);
}

static void test_cut_mid_file(void **state)
{
	struct run r;

	(void)state;
	/* three answers cut short: the ranges resume where they stopped */
	assert_int_equal(th_hub_fault(&hub, REPO, SHARD1,
				      "\"cut_after\":100000,\"times\":3"), 0);
	fetch(&r, REPO, FAST, NULL);
	expect_ok(&r);
	check_tree(&r, REPO);
	assert_true(served(REPO, SHARD1) <= file_size(REPO, SHARD1) + RANGE);
	run_free(&r);
}

static void test_corrupt_byte(void **state)
{
	char hex[65], p[1200];
	struct run r;

	(void)state;
	assert_int_equal(th_hub_fault(&hub, REPO, SHARD2,
				      "\"corrupt_at\":5000000"), 0);
	fetch(&r, REPO, FAST, NULL);
	expect_ok(&r);
	check_tree(&r, REPO);
	assert_non_null(strstr(r.err, "does not match"));
	/* the whole file again (the hub gives no per-range hash), no more */
	assert_true(served(REPO, SHARD2) <= 2 * file_size(REPO, SHARD2) + RANGE);
	run_free(&r);
	/* corrupt twice: a permanent error naming the file, no blob */
	th_hub_reset(&hub);
	assert_int_equal(th_hub_fault(&hub, REPO, SHARD2,
				      "\"corrupt_at\":5000000,\"times\":5"), 0);
	fetch(&r, REPO, FAST, NULL);
	assert_int_equal(r.code, 3);
	assert_non_null(strstr(r.err, SHARD2));
	assert_non_null(strstr(r.err, "verification twice"));
	assert_non_null(strstr(r.out, "\"permanent\":true"));
	blob_of(REPO, SHARD2, hex);
	snprintf(p, sizeof(p), "%s/models--org--phi4-tiny/blobs/%s", r.cache, hex);
	assert_int_not_equal(access(p, F_OK), 0);
	run_free(&r);
}

static void test_stall(void **state)
{
	struct run r;

	(void)state;
	/* 60 s of silence: the 1 s stall timeout cuts it and retries. It
	 * finishes in about 2 s; waiting the silence out would take 60, so
	 * the bound leaves a loaded machine fifteen times the time */
	assert_int_equal(th_hub_fault(&hub, STALLED, SHARD1, "\"stall\":60"), 0);
	fetch(&r, STALLED, FAST, NULL);
	expect_ok(&r);
	check_tree(&r, STALLED);
	print_message("fetch past a stalled response: %lld ms\n", (long long)r.ms);
	assert_true(r.ms < 30000);
	assert_true(served(STALLED, SHARD1) <= file_size(STALLED, SHARD1) + RANGE);
	run_free(&r);
}

static void test_rate_limited(void **state)
{
	struct run r;

	(void)state;
	assert_int_equal(th_hub_fault(&hub, REPO, SHARD1,
				      "\"rate_limit\":2,\"retry_after\":1"), 0);
	fetch(&r, REPO, FAST, NULL);
	expect_ok(&r);
	check_tree(&r, REPO);
	/* Retry-After honoured: two waits of a second */
	assert_true(r.ms >= 2000);
	assert_non_null(strstr(r.err, "rate-limited"));
	assert_int_equal(served(REPO, SHARD1), file_size(REPO, SHARD1));
	run_free(&r);
}

static void test_server_error(void **state)
{
	struct run r;

	(void)state;
	assert_int_equal(th_hub_fault(&hub, REPO, SHARD2,
				      "\"status\":503,\"times\":3"), 0);
	fetch(&r, REPO, FAST, NULL);
	expect_ok(&r);
	check_tree(&r, REPO);
	assert_non_null(strstr(r.err, "HTTP 503"));
	assert_int_equal(served(REPO, SHARD2), file_size(REPO, SHARD2));
	run_free(&r);
	/* a server that keeps failing: bounded, transient (exit 1) */
	th_hub_reset(&hub);
	assert_int_equal(th_hub_fault(&hub, REPO, SHARD2,
				      "\"status\":503,\"times\":100"), 0);
	fetch(&r, REPO, FAST " --attempts 3", NULL);
	assert_int_equal(r.code, 1);
	assert_non_null(strstr(r.err, "giving up"));
	assert_non_null(strstr(r.out, "\"permanent\":false"));
	run_free(&r);
}

static void test_range_ignored(void **state)
{
	struct run r;

	(void)state;
	assert_int_equal(th_hub_fault(&hub, REPO, SHARD1, "\"ignore_range\":true"),
			 0);
	fetch(&r, REPO, FAST, NULL);
	expect_ok(&r);
	check_tree(&r, REPO);
	assert_true(served(REPO, SHARD1) <=
		    file_size(REPO, SHARD1) + CONNS * RANGE);
	run_free(&r);
}

static void test_kill9_resume(void **state)
{
	long long total = file_size(REPO, SHARD1) + file_size(REPO, SHARD2);
	long long before, after, t0;
	char *argv[32], cache[700], dest[700];
	struct run r, first;
	pid_t pid;
	int st, argc = 0;

	(void)state;
	/* slow enough to stop half-way: 4 connections at 1 MB/s each */
	assert_int_equal(th_hub_fault(&hub, REPO, "", "\"throttle\":1000000"), 0);
	memset(&first, 0, sizeof(first));
	snprintf(first.cache, sizeof(first.cache), "%s/kill/cache", root);
	snprintf(first.dest, sizeof(first.dest), "%s/kill/dest", root);
	snprintf(cache, sizeof(cache), "%s", first.cache);
	snprintf(dest, sizeof(dest), "%s", first.dest);
	{
		static char bin[700];

		snprintf(bin, sizeof(bin), "%s/mibera-worker", MB_BINARY_DIR);
		argv[argc++] = bin;
	}
	argv[argc++] = "fetch";
	argv[argc++] = REPO;
	argv[argc++] = "--cache";
	argv[argc++] = cache;
	argv[argc++] = "--dest";
	argv[argc++] = dest;
	argv[argc++] = "--range-size";
	argv[argc++] = "256K";
	argv[argc++] = "--connections";
	argv[argc++] = "4";
	argv[argc] = NULL;
	assert_int_equal(th_spawn(argv, &pid, NULL), 0);
	t0 = th_now_ms();
	do {
		usleep(100000);
		before = served(REPO, SHARD1) + served(REPO, SHARD2);
	} while (before < total / 2 && th_now_ms() - t0 < 20000);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	usleep(300000); /* the hub notices the dead connections */
	before = served(REPO, SHARD1) + served(REPO, SHARD2);
	assert_true(before < total);
	th_hub_reset(&hub);
	fetch(&r, REPO, FAST, &first);
	expect_ok(&r);
	check_tree(&r, REPO);
	after = served(REPO, SHARD1) + served(REPO, SHARD2);
	print_message("kill -9 after %lld of %lld bytes served; the restart "
		      "fetched %lld more\n", before, total, after);
	assert_true(before + after <= total + CONNS * RANGE);
	run_free(&r);
}

static void test_gated(void **state)
{
	long long auth = -1;
	char *ev;
	struct run r;

	(void)state;
	fetch(&r, GATED, FAST, NULL);
	assert_int_equal(r.code, 3);
	assert_non_null(strstr(r.err, "gated"));
	assert_non_null(strstr(r.err, "HF_TOKEN"));
	run_free(&r);
	/* the token from the environment, never argv */
	setenv("HF_TOKEN", TOKEN, 1);
	fetch(&r, GATED, FAST " --stall-timeout 1", NULL);
	unsetenv("HF_TOKEN");
	expect_ok(&r);
	check_tree(&r, GATED);
	assert_null(strstr(r.out, TOKEN));
	assert_null(strstr(r.err, TOKEN));
	ev = th_slurp(r.events, NULL);
	assert_non_null(ev);
	assert_null(strstr(ev, TOKEN));
	free(ev);
	/* the LFS shards came from the blob host, which never saw it */
	assert_int_equal(served(GATED, SHARD1), file_size(GATED, SHARD1));
	assert_int_equal(th_hub_blob_auth_count(&hub, &auth), 0);
	assert_int_equal(auth, 0);
	run_free(&r);
}

static void test_disk_too_small(void **state)
{
	long long reqs = -1;
	struct run r;

	(void)state;
	/* as if the disk held less than download + the GGUF to come */
	fetch(&r, REPO, FAST " --reserve 1000000000000000000", NULL);
	assert_int_equal(r.code, 3);
	assert_non_null(strstr(r.err, "not enough disk space"));
	assert_non_null(strstr(r.out, "MB_ENOSPC"));
	/* refused before the first byte */
	assert_int_equal(th_hub_stats(&hub, REPO, SHARD1, NULL, &reqs), 0);
	assert_int_equal(reqs, 0);
	run_free(&r);
}

/* ENOSPC half-way, in process (mb_fault): an error, no file published
 * that is not whole; then the same call resumes and completes. */
static void test_enospc_midway(void **state)
{
	struct mb_download_opts o;
	struct mb_download_result res;
	struct mb_hub h;
	char cache[700], p[1200], hex[65], err[1024];
	struct stat st;
	int rc;

	(void)state;
	snprintf(cache, sizeof(cache), "%s/enospc/cache", root);
	mb_download_opts_init(&o);
	o.repo = REPO;
	o.cache_dir = cache;
	o.range_size = RANGE;
	o.connections = 2;
	o.stall_ms = 1000;
	o.backoff_ms = 100;
	assert_int_equal(mb_hub_init(&h, hub.url, NULL), 0);
	mb_fault_set(MB_FAULT_WRITE, 40, -1, ENOSPC);
	rc = mb_download_repo(&h, &o, &res, err, sizeof(err));
	mb_fault_clear();
	assert_int_equal(rc, MB_ENOSPC);
	assert_non_null(strstr(err, "space"));
	/* nothing published: no snapshot, no blob for the unfinished shard */
	snprintf(p, sizeof(p), "%s/models--org--phi4-tiny/snapshots", cache);
	assert_int_not_equal(stat(p, &st), 0);
	blob_of(REPO, SHARD1, hex);
	snprintf(p, sizeof(p), "%s/models--org--phi4-tiny/blobs/%s", cache, hex);
	if (stat(p, &st) == 0) { /* complete only if whole and right */
		char q[1200];

		src_path(q, sizeof(q), REPO, SHARD1);
		assert_true(th_same_file(p, q));
	} else {
		snprintf(p, sizeof(p), "%s/models--org--phi4-tiny/blobs/%s"
			 ".incomplete", cache, hex);
		assert_int_equal(stat(p, &st), 0);
	}
	/* space again: it completes, fetching what is missing */
	rc = mb_download_repo(&h, &o, &res, err, sizeof(err));
	if (rc != 0)
		fail_msg("resume after ENOSPC: %s", err);
	assert_true(res.bytes_reused > 0);
	assert_true(res.bytes_fetched + res.bytes_reused == res.bytes_total);
	mb_hub_release(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_download_layout, reset),
		cmocka_unit_test_setup(test_cut_mid_file, reset),
		cmocka_unit_test_setup(test_corrupt_byte, reset),
		cmocka_unit_test_setup(test_stall, reset),
		cmocka_unit_test_setup(test_rate_limited, reset),
		cmocka_unit_test_setup(test_server_error, reset),
		cmocka_unit_test_setup(test_range_ignored, reset),
		cmocka_unit_test_setup(test_kill9_resume, reset),
		cmocka_unit_test_setup(test_gated, reset),
		cmocka_unit_test_setup(test_disk_too_small, reset),
		cmocka_unit_test_setup(test_enospc_midway, reset),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
