/* Tests common/fs.c: atomic files under failure, full disks, free space. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/fault.h"
#include "common/fs.h"
#include "th.h"

struct ctx {
	char dir[512];
	char path[600];
	char part[610];
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (c == NULL || th_tmpdir("fs", c->dir, sizeof(c->dir)) != 0)
		return -1;
	snprintf(c->path, sizeof(c->path), "%s/out.bin", c->dir);
	snprintf(c->part, sizeof(c->part), "%s.part", c->path);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	mb_fault_clear();
	th_rmtree(c->dir);
	free(c);
	return 0;
}

static int exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0;
}

static void test_atomic_write(void **state)
{
	struct ctx *c = *state;
	struct stat st;
	size_t len;
	char *data;

	assert_int_equal(mb_atomic_write(c->path, "hello", 5, 0600), 0);
	data = th_slurp(c->path, &len);
	assert_non_null(data);
	assert_int_equal(len, 5);
	assert_memory_equal(data, "hello", 5);
	free(data);
	assert_false(exists(c->part));
	assert_int_equal(stat(c->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* replacing keeps the name valid at every moment */
	assert_int_equal(mb_atomic_write(c->path, "bye", 3, 0600), 0);
	data = th_slurp(c->path, &len);
	assert_int_equal(len, 3);
	free(data);
}

/* The note rewritten several times a second: the latest bytes, no .part
 * left, and a failed write leaves the old note as it was. */
static void test_replace_file(void **state)
{
	struct ctx *c = *state;
	size_t len;
	char *data, bad[700];

	assert_int_equal(mb_replace_file(c->path, "one", 3, 0644), 0);
	assert_int_equal(mb_replace_file(c->path, "second", 6, 0644), 0);
	data = th_slurp(c->path, &len);
	assert_non_null(data);
	assert_int_equal(len, 6);
	assert_memory_equal(data, "second", 6);
	free(data);
	assert_false(exists(c->part));
	snprintf(bad, sizeof(bad), "%s/no-such-dir/note", c->dir);
	assert_int_not_equal(mb_replace_file(bad, "x", 1, 0644), 0);
	data = th_slurp(c->path, &len);
	assert_int_equal(len, 6);
	free(data);
}

static void test_enospc_midway_loses_nothing(void **state)
{
	struct ctx *c = *state;
	struct mb_afile af;
	char block[4096];
	size_t len;
	char *data;
	int i, rc = 0;

	assert_int_equal(mb_atomic_write(c->path, "original", 8, 0644), 0);
	memset(block, 'x', sizeof(block));
	assert_int_equal(mb_afile_open(&af, c->path, 0644), 0);
	assert_true(exists(c->part));
	mb_fault_set(MB_FAULT_WRITE, 3, -1, ENOSPC);
	for (i = 0; i < 10 && rc == 0; i++)
		rc = mb_afile_write(&af, block, sizeof(block));
	assert_int_equal(rc, MB_ENOSPC);
	assert_int_equal(i, 4); /* three writes went through, the 4th failed */
	mb_afile_abort(&af);
	mb_fault_clear();
	/* no partial file, and the complete old one is untouched */
	assert_false(exists(c->part));
	data = th_slurp(c->path, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(data, "original", 8);
	free(data);
}

static void test_failed_fsync_or_rename_keeps_old(void **state)
{
	struct ctx *c = *state;
	size_t len;
	char *data;

	assert_int_equal(mb_atomic_write(c->path, "v1", 2, 0644), 0);
	mb_fault_set(MB_FAULT_FSYNC, 0, 1, EIO);
	assert_int_equal(mb_atomic_write(c->path, "v2", 2, 0644), MB_EIO);
	assert_false(exists(c->part));
	mb_fault_set(MB_FAULT_RENAME, 0, 1, EXDEV);
	assert_int_equal(mb_atomic_write(c->path, "v3", 2, 0644), MB_EIO);
	assert_false(exists(c->part));
	data = th_slurp(c->path, &len);
	assert_memory_equal(data, "v1", 2);
	free(data);
}

static void test_real_full_device(void **state)
{
	char buf[8192] = { 0 };
	int fd;

	(void)state;
	/* /dev/full answers every write with ENOSPC: a real full disk */
	fd = open("/dev/full", O_WRONLY);
	if (fd < 0)
		skip(); /* no /dev/full in this environment */
	assert_int_equal(mb_write_all(fd, buf, sizeof(buf)), MB_ENOSPC);
	assert_int_equal(mb_pwrite_all(fd, buf, sizeof(buf), 0), MB_ENOSPC);
	close(fd);
}

static void test_free_space(void **state)
{
	struct ctx *c = *state;
	struct statvfs sv;
	uint64_t avail = 0, want;

	assert_int_equal(mb_fs_free_space(c->dir, &avail), 0);
	assert_int_equal(statvfs(c->dir, &sv), 0);
	want = (uint64_t)sv.f_bavail * sv.f_frsize;
	/* another process may write in between: allow 64 MiB of drift */
	assert_true(avail + (64u << 20) >= want && want + (64u << 20) >= avail);
	assert_true(avail > 0);
	assert_int_equal(mb_fs_free_space("/nonexistent/dir", &avail),
			 MB_ENOENT);
}

static void test_mkdir_p_and_read_file(void **state)
{
	struct ctx *c = *state;
	char deep[700], file[720];
	char *data;
	size_t len;

	snprintf(deep, sizeof(deep), "%s/a/b/c", c->dir);
	assert_int_equal(mb_mkdir_p(deep, 0755), 0);
	assert_int_equal(mb_mkdir_p(deep, 0755), 0);
	snprintf(file, sizeof(file), "%s/f", deep);
	assert_int_equal(mb_atomic_write(file, "0123456789", 10, 0644), 0);
	assert_int_equal(mb_mkdir_p(file, 0755), MB_EEXIST);
	assert_int_equal(mb_read_file(file, 10, &data, &len), 0);
	assert_int_equal(len, 10);
	assert_string_equal(data, "0123456789");
	free(data);
	/* one byte over the cap is refused, not truncated */
	assert_int_equal(mb_read_file(file, 9, &data, &len), MB_ETOOBIG);
	assert_null(data);
	assert_int_equal(mb_read_file("/nonexistent", 9, &data, &len),
			 MB_ENOENT);
}

static void test_read_full_and_pread(void **state)
{
	struct ctx *c = *state;
	char buf[32];
	size_t got;
	int fd;

	assert_int_equal(mb_atomic_write(c->path, "abcdefgh", 8, 0644), 0);
	fd = open(c->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(mb_read_full(fd, buf, sizeof(buf), &got), 0);
	assert_int_equal(got, 8);
	assert_int_equal(mb_pread_full(fd, buf, 3, 5, &got), 0);
	assert_int_equal(got, 3);
	assert_memory_equal(buf, "fgh", 3);
	mb_fault_set(MB_FAULT_READ, 0, 1, EIO);
	assert_int_equal(mb_pread_full(fd, buf, 3, 0, &got), MB_EIO);
	close(fd);
}

/* A large file written front to back with mb_write_behind keeps only
 * its newest bytes in the page cache, and all of it on disk; bytes read
 * once and dropped leave it too. */
static void test_write_behind(void **state)
{
	struct ctx *c = *state;
	const size_t piece = 1 << 20, lag = 2 << 20, total = 8 << 20;
	size_t pages = piece / (size_t)sysconf(_SC_PAGESIZE), off, got, all;
	char *buf = malloc(piece), *back = malloc(piece);
	int fd;

	assert_non_null(buf);
	assert_non_null(back);
	if (th_on_tmpfs(c->dir)) {
		free(buf);
		free(back);
		skip();
	}
	fd = open(c->path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	for (off = 0; off < total; off += piece) {
		memset(buf, (int)(off / piece) + 1, piece);
		assert_int_equal(mb_pwrite_all(fd, buf, piece, off), 0);
		mb_write_start(fd, off, piece);
		mb_write_behind(fd, off, piece, lag);
	}
	/* what is lag behind the end went; the newest bytes stay */
	assert_int_equal(th_cached_pages(c->path, 0, total - lag, &all), 0);
	assert_int_equal(th_cached_pages(c->path, total - piece, piece, &all), pages);
	/* nothing was lost: read back from disk */
	for (off = 0; off < total; off += piece) {
		memset(buf, (int)(off / piece) + 1, piece);
		assert_int_equal(mb_pread_full(fd, back, piece, off, &got), 0);
		assert_int_equal(got, piece);
		assert_memory_equal(back, buf, piece);
	}
	assert_true(th_cached_pages(c->path, 0, piece, &all) > 0);
	mb_drop_cached(fd, 0, piece);
	assert_int_equal(th_cached_pages(c->path, 0, piece, &all), 0);
	close(fd);
	free(buf);
	free(back);
}

static void test_repo_path_ok(void **state)
{
	static const char *good[] = { "config.json", "a/b.safetensors",
				      "original/x.pth", "..a", "a..", ".hidden" };
	static const char *bad[] = { "", "/etc/passwd", "../x", "a/../b",
				     "a/..", "./a", "a/./b", "a//b", "a/",
				     "a\\b", "a\nb", "\x7f" };
	char longp[1100];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!mb_repo_path_ok(good[i]))
			fail_msg("'%s' refused", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (mb_repo_path_ok(bad[i]))
			fail_msg("'%s' accepted", bad[i]);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	assert_false(mb_repo_path_ok(longp));
}

static void test_proc_kb_field(void **state)
{
	struct ctx *c = *state;
	char path[700];
	const char *text = "Name:\tx\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\n";

	snprintf(path, sizeof(path), "%s/status", c->dir);
	assert_int_equal(th_write_file(path, text, strlen(text)), 0);
	assert_int_equal(mb_proc_kb_field(path, "VmHWM:"), 12345ull * 1024);
	assert_int_equal(mb_proc_kb_field(path, "VmRSS:"), 0);
	assert_int_equal(mb_proc_kb_field("/nonexistent/status", "VmHWM:"), 0);
	/* the real one: this process has a peak resident set */
	assert_true(mb_proc_kb_field("/proc/self/status", "VmHWM:") > 0);
}

/* This program's own path: the file that runs, whole, and nothing when
 * the buffer is too small to hold it. */
static void test_self_exe(void **state)
{
	char self[4096], tiny[4];
	struct stat a, b;

	(void)state;
	assert_int_equal(mb_self_exe(self, sizeof(self)), 0);
	assert_non_null(strstr(self, "test_fs"));
	assert_int_equal(stat(self, &a), 0);
	assert_int_equal(stat("/proc/self/exe", &b), 0);
	assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	assert_int_equal(mb_self_exe(tiny, sizeof(tiny)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_atomic_write, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_enospc_midway_loses_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_failed_fsync_or_rename_keeps_old, setup, teardown),
		cmocka_unit_test(test_real_full_device),
		cmocka_unit_test_setup_teardown(test_free_space, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_p_and_read_file,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_full_and_pread, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_write_behind, setup,
						teardown),
		cmocka_unit_test(test_repo_path_ok),
		cmocka_unit_test(test_self_exe),
		cmocka_unit_test_setup_teardown(test_replace_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proc_kb_field, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
