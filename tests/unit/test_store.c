/* Tests coordinator/store.c: the schema is applied once and in order, the
 * file is private, a newer database is refused, workers round-trip, and
 * two processes share the database. */
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

#include <sqlite3.h>

#include "common/err.h"
#include "common/fs.h"
#include "coordinator/store.h"
#include "th.h"

static char dir[512], path[600];

static int setup(void **state)
{
	(void)state;
	if (th_tmpdir("store", dir, sizeof(dir)) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/sub/jobs.db", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return th_rmtree(dir);
}

static void test_open_migrates_and_is_private(void **state)
{
	struct mb_store *s;
	struct stat st;
	char err[256];

	(void)state;
	assert_int_equal(mb_store_open(path, &s, err, sizeof(err)), 0);
	assert_int_equal(mb_store_schema_version(s), mb_store_migrations());
	assert_true(mb_store_migrations() >= 1);
	mb_store_close(s);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* a second open applies nothing twice */
	assert_int_equal(mb_store_open(path, &s, err, sizeof(err)), 0);
	assert_int_equal(mb_store_schema_version(s), mb_store_migrations());
	mb_store_close(s);
}

static void test_newer_database_refused(void **state)
{
	struct mb_store *s;
	char err[256], p[700];
	sqlite3 *db;

	(void)state;
	snprintf(p, sizeof(p), "%s/newer.db", dir);
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL,
				      NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(mb_store_open(p, &s, err, sizeof(err)), MB_EUNSUPPORTED);
	assert_non_null(strstr(err, "newer mibera"));
	assert_null(s);
}

static void test_workers(void **state)
{
	struct mb_worker_row w, r;
	struct mb_store *s;
	char err[256];

	(void)state;
	assert_int_equal(mb_store_open(path, &s, err, sizeof(err)), 0);
	memset(&w, 0, sizeof(w));
	snprintf(w.name, sizeof(w.name), "vast1");
	snprintf(w.target, sizeof(w.target), "root@203.0.113.7:2222");
	snprintf(w.dir, sizeof(w.dir), "/workspace/mibera");
	w.cost_per_hour = 0.4;
	assert_int_equal(mb_store_worker_add(s, &w), 0);
	assert_true(w.id > 0);
	assert_int_equal(mb_store_worker_add(s, &w), MB_EEXIST);
	assert_int_equal(mb_store_worker_checked(s, "vast1", "{\"protocol\":1}",
						 "[h]:2222 ssh-ed25519 AAAA",
						 "SHA256:abc"),
			 0);
	assert_int_equal(mb_store_worker_get(s, "vast1", &r), 0);
	assert_string_equal(r.target, "root@203.0.113.7:2222");
	assert_string_equal(r.host_key, "[h]:2222 ssh-ed25519 AAAA");
	assert_string_equal(r.fingerprint, "SHA256:abc");
	assert_string_equal(r.hello, "{\"protocol\":1}");
	assert_true(r.cost_per_hour == 0.4);
	assert_string_equal(r.state, "idle");
	/* a hello that does not name its backend (an older agent): unknown */
	assert_string_equal(r.backend, "");
	/* one that does: kept with the worker, its control bytes made
	 * harmless; the next hello replaces it */
	assert_int_equal(mb_store_worker_checked(s, "vast1", "{\"protocol\":1,"
						 "\"backend\":\"cuda: NVIDIA "
						 "H200, 140 GiB\\u001b[2J\"}",
						 NULL, NULL), 0);
	assert_int_equal(mb_store_worker_get(s, "vast1", &r), 0);
	assert_string_equal(r.backend, "cuda: NVIDIA H200, 140 GiB?[2J");
	assert_string_equal(r.fingerprint, "SHA256:abc");
	assert_int_equal(mb_store_worker_checked(s, "vast1", "{\"protocol\":1,"
						 "\"backend\":\"cpu\"}", NULL,
						 NULL), 0);
	assert_int_equal(mb_store_worker_get(s, "vast1", &r), 0);
	assert_string_equal(r.backend, "cpu");
	assert_int_equal(mb_store_worker_checked(s, "vast1", "{\"protocol\":1}",
						 NULL, NULL), 0);
	assert_int_equal(mb_store_worker_get(s, "vast1", &r), 0);
	assert_string_equal(r.backend, "");
	assert_int_equal(mb_store_worker_get(s, "nope", &r), MB_ENOENT);
	assert_int_equal(mb_store_worker_remove(s, "vast1"), 0);
	assert_int_equal(mb_store_worker_remove(s, "vast1"), MB_ENOENT);
	mb_store_close(s);
}

static void test_two_processes(void **state)
{
	struct mb_store *s;
	char err[256];
	int i, st, n = 0;
	pid_t pid;

	(void)state;
	/* a child and the parent add 50 workers each at the same time:
	 * WAL and the busy timeout serialise them, nothing is lost */
	pid = fork();
	assert_true(pid >= 0);
	for (i = 0; i < 50; i++) {
		struct mb_worker_row w;
		struct mb_store *c;

		if (mb_store_open(path, &c, err, sizeof(err)) != 0)
			_exit(3);
		memset(&w, 0, sizeof(w));
		snprintf(w.name, sizeof(w.name), "%s-%d", pid == 0 ? "c" : "p", i);
		snprintf(w.target, sizeof(w.target), "local");
		snprintf(w.dir, sizeof(w.dir), "/tmp");
		if (mb_store_worker_add(c, &w) != 0) {
			if (pid == 0)
				_exit(4);
			fail_msg("parent insert %d failed", i);
		}
		mb_store_close(c);
	}
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(mb_store_open(path, &s, err, sizeof(err)), 0);
	for (i = 0; i < 50; i++) {
		struct mb_worker_row r;
		char name[32];

		snprintf(name, sizeof(name), "c-%d", i);
		n += mb_store_worker_get(s, name, &r) == 0;
		snprintf(name, sizeof(name), "p-%d", i);
		n += mb_store_worker_get(s, name, &r) == 0;
	}
	assert_int_equal(n, 100);
	mb_store_close(s);
}


static int count_event(int64_t id, const char *step, int64_t at_ms,
		       const char *type, const char *data, void *ctx)
{
	int *n = ctx;

	(void)id;
	(void)step;
	(void)at_ms;
	(void)data;
	assert_string_not_equal(type, "invalid");
	(*n)++;
	return 0;
}

/* A job with its worker, for the event tests. */
static int64_t add_job(struct mb_store *s, const char *worker)
{
	struct mb_worker_row w;
	struct mb_job_row j;

	memset(&w, 0, sizeof(w));
	snprintf(w.name, sizeof(w.name), "%s", worker);
	snprintf(w.target, sizeof(w.target), "local");
	snprintf(w.dir, sizeof(w.dir), "/tmp");
	assert_int_equal(mb_store_worker_add(s, &w), 0);
	memset(&j, 0, sizeof(j));
	snprintf(j.source, sizeof(j.source), "org/model");
	snprintf(j.worker, sizeof(j.worker), "%s", worker);
	j.worker_id = w.id;
	snprintf(j.quants, sizeof(j.quants), "Q4_K_M,Q8_0");
	snprintf(j.layout, sizeof(j.layout), "native");
	snprintf(j.outtype, sizeof(j.outtype), "f16");
	j.smoke = 1;
	assert_int_equal(mb_store_job_add(s, &j), 0);
	return j.id;
}

/* Every stored event parses: a batch with a line that is not an event
 * (a fragment of a line cut in two, a stray brace) is refused whole with
 * a message, and nothing of it is stored; the follow offset is kept per
 * worker step, so the journals of the quantize types do not share one. */
static void test_events_are_events(void **state)
{
	static const char good[] =
		"{\"v\":1,\"seq\":1,\"ms\":1764158400123,\"step\":\"quantize\","
		"\"type\":\"progress\",\"done\":1}\n"
		"{\"v\":1,\"seq\":2,\"ms\":1764158400124,\"step\":\"quantize\","
		"\"type\":\"done\"}\n";
	static const char *const bad[] = {
		"9835308}\n",
		"{\"v\":1,\"seq\":3,\"ms\":1,\"type\":\"progress\",\"rate\":5}}\n",
		"{\"v\":1,\"seq\":3,\"ms\":1}\n",
		"{\"v\":1,\"seq\":-3,\"ms\":1,\"type\":\"x\"}\n",
		"[1,2]\n",
	};
	struct mb_store *s;
	char err[512];
	int64_t id, off;
	size_t k;
	int n = 0;

	(void)state;
	assert_int_equal(mb_store_open(path, &s, err, sizeof(err)), 0);
	id = add_job(s, "ev1");
	assert_int_equal(mb_store_step_events(s, id, "quantize", good,
					      strlen(good), "quantize-Q4_K_M",
					      (int64_t)strlen(good), err,
					      sizeof(err)), 0);
	for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		char batch[1024];

		snprintf(batch, sizeof(batch), "%s%s", good, bad[k]);
		err[0] = '\0';
		assert_int_equal(mb_store_step_events(s, id, "quantize", batch,
						      strlen(batch),
						      "quantize-Q8_0", 999, err,
						      sizeof(err)), MB_EPROTO);
		assert_non_null(strstr(err, "not an event"));
		assert_non_null(strstr(err, "quantize-Q8_0"));
	}
	mb_store_events(s, id, 0, count_event, &n);
	assert_int_equal(n, 2);
	assert_int_equal(mb_store_follow_offset(s, id, "quantize-Q4_K_M", &off), 0);
	assert_int_equal(off, (int64_t)strlen(good));
	assert_int_equal(mb_store_follow_offset(s, id, "quantize-Q8_0", &off), 0);
	assert_int_equal(off, 0);
	/* the coordinator's own events move no offset */
	assert_int_equal(mb_store_step_events(s, id, "pull", good, strlen(good),
					      NULL, -1, err, sizeof(err)), 0);
	assert_int_equal(mb_store_follow_offset(s, id, "pull", &off), 0);
	assert_int_equal(off, 0);
	mb_store_close(s);
}

/* A damaged database is said to be damaged, with what to do. */
static void test_damaged_database(void **state)
{
	char dpath[700], err[1024];
	struct mb_store *s;
	FILE *f;
	int i;

	(void)state;
	snprintf(dpath, sizeof(dpath), "%s/damaged.db", dir);
	assert_int_equal(mb_store_open(dpath, &s, err, sizeof(err)), 0);
	for (i = 0; i < 200; i++) {
		char name[16];

		snprintf(name, sizeof(name), "w%d", i);
		add_job(s, name);
	}
	if (mb_store_check(s, err, sizeof(err)) != 0)
		fail_msg("a good database: %s", err);
	mb_store_close(s);
	/* garbage over the pages after the schema's (the WAL, which keeps
	 * copies of recent pages, goes first: it would mask the damage) */
	{
		char side[800];

		snprintf(side, sizeof(side), "%s-wal", dpath);
		unlink(side);
		snprintf(side, sizeof(side), "%s-shm", dpath);
		unlink(side);
	}
	f = fopen(dpath, "r+b");
	assert_non_null(f);
	fseek(f, 4096 * 3, SEEK_SET);
	for (i = 0; i < 4096 * 4; i++)
		fputc(0xA5, f);
	fclose(f);
	if (mb_store_open(dpath, &s, err, sizeof(err)) == 0) {
		assert_int_equal(mb_store_check(s, err, sizeof(err)), MB_EIO);
		mb_store_close(s);
	}
	assert_non_null(strstr(err, "damaged.db"));
}


/* A job's partial files (a pull's, up to full size) stay while it may
 * resume and go when it fails or is cancelled. */
static void test_partial_files_go_with_the_job(void **state)
{
	char home[700], part[800], file[2000], err[256];
	struct mb_store *s;
	struct stat st;
	int64_t id;

	(void)state;
	snprintf(home, sizeof(home), "%s/home", dir);
	setenv("MIBERA_HOME", home, 1);
	assert_int_equal(mb_store_open(NULL, &s, err, sizeof(err)), 0);
	id = add_job(s, "pw1");
	assert_int_equal(mb_job_dir("partial", id, part, sizeof(part)), 0);
	snprintf(file, sizeof(file), "mkdir -p %s && head -c 100000 /dev/zero > "
		 "%s/m-F16.gguf.part", part, part);
	assert_int_equal(system(file), 0);
	snprintf(file, sizeof(file), "%s/m-F16.gguf.part", part);
	assert_int_equal(mb_store_job_set_state(s, id, "running", NULL), 0);
	assert_int_equal(mb_store_job_wait(s, id, 30, "link down"), 0);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(mb_store_job_set_state(s, id, "failed", "it broke"), 0);
	assert_int_not_equal(stat(part, &st), 0);
	/* cancelled: the same */
	assert_int_equal(mb_mkdir_p(part, 0755), 0);
	assert_int_equal(mb_store_job_set_state(s, id, "cancelled", NULL), 0);
	assert_int_not_equal(stat(part, &st), 0);
	mb_store_close(s);
	unsetenv("MIBERA_HOME");
}

static int count_workers(const struct mb_worker_row *w, void *ctx)
{
	(void)w;
	(*(int *)ctx)++;
	return 0;
}

/* A worker that ran jobs can be removed: its jobs keep their history (the
 * worker's name, aside), the name is free to add again, lists leave it
 * out; one with a job not finished cannot. */
static void test_remove_worker_with_history(void **state)
{
	struct mb_worker_row w;
	struct mb_job_row j;
	struct mb_store *s;
	char err[256];
	int64_t id;
	int n = 0, before = 0;

	(void)state;
	assert_int_equal(mb_store_open(path, &s, err, sizeof(err)), 0);
	mb_store_worker_list(s, count_workers, &before);
	id = add_job(s, "old-box");
	assert_int_equal(mb_store_worker_remove(s, "old-box"), MB_EBUSY);
	assert_int_equal(mb_store_job_set_state(s, id, "succeeded", NULL), 0);
	assert_int_equal(mb_store_worker_remove(s, "old-box"), 0);
	assert_int_equal(mb_store_worker_get(s, "old-box", &w), MB_ENOENT);
	assert_int_equal(mb_store_job_get(s, id, &j), 0);
	assert_non_null(strstr(j.worker, "old-box~"));
	mb_store_worker_list(s, count_workers, &n);
	assert_int_equal(n, before);
	/* the name again, for a new box */
	memset(&w, 0, sizeof(w));
	snprintf(w.name, sizeof(w.name), "old-box");
	snprintf(w.target, sizeof(w.target), "local");
	snprintf(w.dir, sizeof(w.dir), "/tmp");
	assert_int_equal(mb_store_worker_add(s, &w), 0);
	mb_store_close(s);
}

/* A smoke result stays with its artifact while the file's sha256 stays
 * the same: recording the file again (a pull after a restart) keeps it,
 * a different sha256 drops it, and it is only given for the sha256 it
 * was measured on. */
static void test_artifact_smoke_kept_by_sha256(void **state)
{
	static const char sha_a[] = "aaaa", sha_b[] = "bbbb";
	struct mb_store *s;
	char err[256], *sm;
	int64_t id;

	(void)state;
	assert_int_equal(mb_store_open(path, &s, err, sizeof(err)), 0);
	id = add_job(s, "smoke-box");
	assert_int_equal(mb_store_artifact_add(s, id, "m-Q8_0.gguf", "gguf", 10,
					       sha_a, "/x/m-Q8_0.gguf", NULL), 0);
	assert_int_equal(mb_store_artifact_smoke_get(s, id, "m-Q8_0.gguf", sha_a,
						     &sm), 0);
	assert_null(sm);
	assert_int_equal(mb_store_artifact_smoke_set(s, id, "m-Q8_0.gguf", sha_a,
						     "{\"load_s\":1}"), 0);
	/* pulled again after a restart: same file, the result stays */
	assert_int_equal(mb_store_artifact_add(s, id, "m-Q8_0.gguf", "gguf", 10,
					       sha_a, "/x/m-Q8_0.gguf", NULL), 0);
	assert_int_equal(mb_store_artifact_smoke_get(s, id, "m-Q8_0.gguf", sha_a,
						     &sm), 0);
	assert_non_null(sm);
	assert_string_equal(sm, "{\"load_s\":1}");
	free(sm);
	assert_int_equal(mb_store_artifact_smoke_get(s, id, "m-Q8_0.gguf", sha_b,
						     &sm), 0);
	assert_null(sm);
	/* a different file under the name: the old result is not its */
	assert_int_equal(mb_store_artifact_add(s, id, "m-Q8_0.gguf", "gguf", 10,
					       sha_b, "/x/m-Q8_0.gguf", NULL), 0);
	assert_int_equal(mb_store_artifact_smoke_get(s, id, "m-Q8_0.gguf", sha_b,
						     &sm), 0);
	assert_null(sm);
	assert_int_equal(mb_store_artifact_smoke_get(s, id, "m-Q8_0.gguf", sha_a,
						     &sm), 0);
	assert_null(sm);
	mb_store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_migrates_and_is_private),
		cmocka_unit_test(test_newer_database_refused),
		cmocka_unit_test(test_workers),
		cmocka_unit_test(test_two_processes),
		cmocka_unit_test(test_events_are_events),
		cmocka_unit_test(test_damaged_database),
		cmocka_unit_test(test_partial_files_go_with_the_job),
		cmocka_unit_test(test_remove_worker_with_history),
		cmocka_unit_test(test_artifact_smoke_kept_by_sha256),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
