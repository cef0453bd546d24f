/*
 * A full disk under $MIBERA_HOME, on a small tmpfs: status still shows
 * the queue (read-only, and says why), submit refuses with the reason,
 * the coordinator neither spins nor pretends to claim a job, and once
 * space is freed the same job runs to the end. Mounting a tmpfs needs
 * root: elsewhere the test skips and says so.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/fs.h"
#include "model.h"
#include "th.h"

static char root[512], mnt[600], model[600];
static int mounted;

static int setup(void **state)
{
	const char *extra[] = { "--config", "broken", NULL };
	char home[700];

	(void)state;
	if (th_tmpdir("fulldisk", root, sizeof(root)) != 0)
		return -1;
	snprintf(mnt, sizeof(mnt), "%s/mnt", root);
	snprintf(model, sizeof(model), "%s/phi4-tiny", root);
	if (mb_mkdir_p(mnt, 0755) != 0 || th_mkmodel(model, "phi4-tiny", extra) != 0)
		return -1;
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=64m") == 0)
		mounted = 1;
	snprintf(home, sizeof(home), "%s/home", mnt);
	setenv("MIBERA_HOME", home, 1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (mounted)
		umount2(mnt, MNT_DETACH);
	th_rmtree(root);
	return 0;
}

/* Runs a shell command line with the build's programs first in PATH. */
static int sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(char **out, const char *fmt, ...)
{
	char cmd[4000], full[4400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "PATH=%s:$PATH; %s", MB_BINARY_DIR, cmd);
	return th_capture(full, out);
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void test_full_disk(void **state)
{
	char *out;

	(void)state;
	if (!mounted) {
		print_message("skipped: mounting a tmpfs needs root (CAP_SYS_ADMIN)\n");
		skip();
	}
	assert_int_equal(sh(&out, "mibera-job worker add w local --dir %s/wd "
			    "--agent %s/mibera-worker", root, MB_BINARY_DIR), 0);
	free(out);
	/* F16 is not a quant type, and the valid ones are listed */
	assert_int_equal(sh(&out, "mibera-job submit %s --quant Q8_0,F16", model), 2);
	assert_non_null(strstr(out, "not a quant type 'F16'"));
	assert_non_null(strstr(out, "Q4_K_M"));
	free(out);
	/* the one worker is the one meant; types as a person types them */
	assert_int_equal(sh(&out, "mibera-job submit %s --quant ' q8_0, Q8_0 ' "
			    "--no-smoke", model), 0);
	assert_string_equal(out, "1\n");
	free(out);
	assert_int_equal(sh(&out, "mibera-job status 1 --json"), 0);
	assert_non_null(strstr(out, "\"quants\":\"Q8_0\""));
	free(out);
	/* the disk fills (a pull, a log, anything) */
	assert_int_equal(sh(&out, "dd if=/dev/zero of=%s/fill bs=64k 2>/dev/null; "
			    "df -k %s | tail -n 1", mnt, mnt), 0);
	print_message("%s", out);
	free(out);

	/* status still shows the queue */
	assert_int_equal(sh(&out, "mibera-job status"), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "1     queued"));
	free(out);
	/* nothing can be queued, and it says why */
	assert_int_not_equal(sh(&out, "mibera-job submit %s --worker w --quant Q8_0",
				model), 0);
	print_message("%s", out);
	assert_true(strstr(out, "no space") != NULL ||
		    strstr(out, "disk holding the job database is full") != NULL);
	free(out);
	/* the coordinator does not claim what it cannot record, nor spin:
	 * it says so once and waits */
	assert_int_equal(sh(&out, "timeout 8 mibera-coordinator --once; echo "
			    "exit=$?"), 0);
	print_message("%s", out);
	assert_true(count(out, "\n") <= 4);
	assert_null(strstr(out, "job 1: "));
	free(out);

	/* the files SQLite needs to read were made by the first open; where
	 * they were not (a database last closed before this release), the
	 * read goes on read-only and says so */
	{
		char cmd[2000];

		snprintf(cmd, sizeof(cmd), "rm -f %s/home/jobs.db-shm %s/home/jobs.db-wal "
			 "&& dd if=/dev/zero of=%s/fill2 bs=4k 2>/dev/null; mibera-job "
			 "status", mnt, mnt, mnt);
		assert_int_equal(sh(&out, "%s", cmd), 0);
		print_message("%s", out);
		assert_non_null(strstr(out, "1     queued"));
		assert_non_null(strstr(out, "disk holding the job database is full"));
		free(out);
	}

	/* space again: the same job runs to the end */
	assert_int_equal(sh(&out, "rm -f %s/fill %s/fill2 && timeout 300 "
			    "mibera-coordinator --once", mnt, mnt), 0);
	free(out);
	assert_int_equal(sh(&out, "mibera-job status 1"), 0);
	assert_non_null(strstr(out, "succeeded"));
	assert_null(strstr(out, "disk holding"));
	free(out);
	/* a pull that cannot fit fails before its first byte, saying how
	 * much it needs (the quant only: the F16 stays on the worker) */
	assert_int_equal(sh(&out, "dd if=/dev/zero of=%s/fill3 bs=1M count=$(( "
			    "$(df -m --output=avail %s | tail -n 1) - 10 )) "
			    "2>/dev/null; mibera-job submit %s --quant Q8_0 "
			    "--no-smoke && timeout 300 mibera-coordinator --once",
			    mnt, mnt, model), 1);
	free(out);
	assert_int_equal(sh(&out, "mibera-job status 2; ls %s/home/partial "
			    "2>/dev/null | wc -l", mnt), 0);
	print_message("%s", out);
	assert_non_null(strstr(out, "failed"));
	assert_non_null(strstr(out, "pulling the artifacts needs"));
	assert_non_null(strstr(out, "\n0\n"));
	free(out);
	assert_int_equal(sh(&out, "rm -f %s/fill3", mnt), 0);
	free(out);
	/* a worker that ran a job can be removed; the job keeps its history */
	assert_int_equal(sh(&out, "mibera-job worker remove w"), 0);
	free(out);
	/* and gets no more work: a retry on it is refused, as is its name */
	assert_int_not_equal(sh(&out, "mibera-job retry 2"), 0);
	assert_non_null(strstr(out, "which was removed"));
	free(out);
	assert_int_not_equal(sh(&out, "mibera-job submit %s --worker 'w~1' "
				"--quant Q8_0", model), 0);
	free(out);
	/* a local worker's model must be there at submit */
	assert_int_equal(sh(&out, "mibera-job worker add w2 local --dir %s/wd2 "
			    "--agent %s/mibera-worker", root, MB_BINARY_DIR), 0);
	free(out);
	assert_int_not_equal(sh(&out, "mibera-job submit %s/nothing-here --quant "
				"Q8_0", root), 0);
	assert_non_null(strstr(out, "is not a directory here"));
	free(out);
	assert_int_equal(sh(&out, "mibera-job status 1"), 0);
	assert_non_null(strstr(out, "w~"));
	assert_non_null(strstr(out, "succeeded"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_disk),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
