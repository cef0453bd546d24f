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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_migrates_and_is_private),
		cmocka_unit_test(test_newer_database_refused),
		cmocka_unit_test(test_workers),
		cmocka_unit_test(test_two_processes),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
