/* fs: complete I/O, atomic files, free space. */
#define _GNU_SOURCE /* sync_file_range */
#include "common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fault.h"

int mb_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		int e = mb_fault_hit(MB_FAULT_WRITE);
		ssize_t w;

		if (e != 0)
			return mb_err_from_errno(e);
		w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return mb_err_from_errno(errno);
		}
		if (w == 0)
			return MB_EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int mb_pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	const char *p = buf;

	while (n > 0) {
		int e = mb_fault_hit(MB_FAULT_WRITE);
		ssize_t w;

		if (e != 0)
			return mb_err_from_errno(e);
		w = pwrite(fd, p, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return mb_err_from_errno(errno);
		}
		if (w == 0)
			return MB_EIO;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int read_loop(int fd, void *buf, size_t n, int positional,
		     uint64_t off, size_t *got)
{
	char *p = buf;
	size_t done = 0;

	*got = 0;
	while (done < n) {
		int e = mb_fault_hit(MB_FAULT_READ);
		ssize_t r;

		if (e != 0)
			return mb_err_from_errno(e);
		r = positional ? pread(fd, p + done, n - done,
				       (off_t)(off + done))
			       : read(fd, p + done, n - done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return mb_err_from_errno(errno);
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	*got = done;
	return 0;
}

int mb_read_full(int fd, void *buf, size_t n, size_t *got)
{
	return read_loop(fd, buf, n, 0, 0, got);
}

int mb_pread_full(int fd, void *buf, size_t n, uint64_t off, size_t *got)
{
	return read_loop(fd, buf, n, 1, off, got);
}

int mb_fsync(int fd)
{
	int e = mb_fault_hit(MB_FAULT_FSYNC);

	if (e != 0)
		return mb_err_from_errno(e);
	return fsync(fd) == 0 ? 0 : mb_err_from_errno(errno);
}

void mb_write_start(int fd, uint64_t off, uint64_t n)
{
#ifdef SYNC_FILE_RANGE_WRITE
	sync_file_range(fd, (off64_t)off, (off64_t)n, SYNC_FILE_RANGE_WRITE);
#else
	(void)fd;
	(void)off;
	(void)n;
#endif
}

void mb_write_behind(int fd, uint64_t off, uint64_t n, uint64_t lag)
{
	if (off < lag)
		return;
	off -= lag;
#ifdef SYNC_FILE_RANGE_WRITE
	sync_file_range(fd, (off64_t)off, (off64_t)n,
			SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
				SYNC_FILE_RANGE_WAIT_AFTER);
#endif
	posix_fadvise(fd, (off_t)off, (off_t)n, POSIX_FADV_DONTNEED);
}

void mb_drop_cached(int fd, uint64_t off, uint64_t n)
{
	posix_fadvise(fd, (off_t)off, (off_t)n, POSIX_FADV_DONTNEED);
}

int mb_fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, rc;

	if (slash == NULL)
		dir = mb_strdup(".");
	else if (slash == path)
		dir = mb_strdup("/");
	else {
		dir = mb_malloc((size_t)(slash - path) + 1);
		if (dir != NULL) {
			memcpy(dir, path, (size_t)(slash - path));
			dir[slash - path] = '\0';
		}
	}
	if (dir == NULL)
		return MB_ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return mb_err_from_errno(errno);
	rc = mb_fsync(fd);
	close(fd);
	return rc;
}

int mb_mkdir_p(const char *dir, mode_t mode)
{
	char *p, *s;
	int rc = 0;

	p = mb_strdup(dir);
	if (p == NULL)
		return MB_ENOMEM;
	for (s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, mode) != 0 && errno != EEXIST) {
				rc = mb_err_from_errno(errno);
				break;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	if (rc == 0) {
		struct stat st;

		if (stat(p, &st) != 0)
			rc = mb_err_from_errno(errno);
		else if (!S_ISDIR(st.st_mode))
			rc = MB_EEXIST;
	}
	free(p);
	return rc;
}

int mb_fs_free_space(const char *path, uint64_t *avail)
{
	struct statvfs sv;

	if (statvfs(path, &sv) != 0)
		return mb_err_from_errno(errno);
	*avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
	return 0;
}

int mb_read_file(const char *path, size_t max, char **out, size_t *len)
{
	struct mb_buf b;
	char chunk[65536];
	int fd, rc = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mb_err_from_errno(errno);
	mb_buf_init(&b, max);
	for (;;) {
		size_t got;

		rc = mb_read_full(fd, chunk, sizeof(chunk), &got);
		if (rc != 0)
			break;
		rc = mb_buf_add(&b, chunk, got);
		if (rc != 0 || got < sizeof(chunk))
			break;
	}
	close(fd);
	if (rc == 0) {
		*out = mb_buf_detach(&b, len);
		if (*out == NULL)
			rc = MB_ENOMEM;
	}
	mb_buf_release(&b);
	return rc;
}

int mb_afile_open(struct mb_afile *af, const char *path, mode_t mode)
{
	size_t n = strlen(path);
	int rc = MB_ENOMEM;

	af->fd = -1;
	af->path = mb_strdup(path);
	af->tmp = mb_malloc(n + sizeof(".part"));
	if (af->path == NULL || af->tmp == NULL)
		goto fail;
	memcpy(af->tmp, path, n);
	memcpy(af->tmp + n, ".part", sizeof(".part"));
	af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (af->fd < 0) {
		rc = mb_err_from_errno(errno);
		goto fail;
	}
	return 0;
fail:
	free(af->path);
	free(af->tmp);
	af->path = NULL;
	af->tmp = NULL;
	return rc;
}

int mb_afile_write(struct mb_afile *af, const void *buf, size_t n)
{
	return mb_write_all(af->fd, buf, n);
}

int mb_afile_commit(struct mb_afile *af)
{
	int rc, e;

	rc = mb_fsync(af->fd);
	if (close(af->fd) != 0 && rc == 0)
		rc = mb_err_from_errno(errno);
	af->fd = -1;
	if (rc != 0)
		goto out;
	e = mb_fault_hit(MB_FAULT_RENAME);
	if (e != 0) {
		rc = mb_err_from_errno(e);
		goto out;
	}
	if (rename(af->tmp, af->path) != 0) {
		rc = mb_err_from_errno(errno);
		goto out;
	}
	rc = mb_fsync_parent(af->path);
out:
	mb_afile_abort(af);
	return rc;
}

void mb_afile_abort(struct mb_afile *af)
{
	if (af == NULL)
		return;
	if (af->fd >= 0)
		close(af->fd);
	af->fd = -1;
	if (af->tmp != NULL)
		unlink(af->tmp); /* after a commit it is already gone */
	free(af->tmp);
	free(af->path);
	af->tmp = NULL;
	af->path = NULL;
}

/* path replaced by n bytes through path.part; durable: fsynced first. */
static int replace_whole(const char *path, const void *buf, size_t n,
			 mode_t mode, int durable)
{
	struct mb_afile af;
	int rc;

	rc = mb_afile_open(&af, path, mode);
	if (rc != 0)
		return rc;
	rc = mb_afile_write(&af, buf, n);
	if (rc == 0 && durable)
		return mb_afile_commit(&af);
	if (rc == 0) {
		if (close(af.fd) != 0)
			rc = mb_err_from_errno(errno);
		af.fd = -1;
		if (rc == 0 && rename(af.tmp, af.path) != 0)
			rc = mb_err_from_errno(errno);
	}
	mb_afile_abort(&af); /* closes and removes what the rename did not */
	return rc;
}

int mb_atomic_write(const char *path, const void *buf, size_t n, mode_t mode)
{
	return replace_whole(path, buf, n, mode, 1);
}

int mb_replace_file(const char *path, const void *buf, size_t n, mode_t mode)
{
	return replace_whole(path, buf, n, mode, 0);
}

int mb_repo_path_ok(const char *p)
{
	const char *comp = p;
	size_t n = strlen(p), i;

	if (n == 0 || n > 1024 || p[0] == '/')
		return 0;
	for (i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '/' || c == '\0') {
			size_t len = (size_t)(p + i - comp);

			if (len == 0 || (len == 1 && comp[0] == '.') ||
			    (len == 2 && comp[0] == '.' && comp[1] == '.'))
				return 0;
			comp = p + i + 1;
		} else if (c == '\\' || c < 0x20 || c == 0x7f) {
			return 0;
		}
	}
	return 1;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
	return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

int mb_rmtree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : mb_err_from_errno(errno);
	return nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS) == 0
		       ? 0
		       : mb_err_from_errno(errno);
}

uint64_t mb_proc_kb_field(const char *path, const char *key)
{
	char *s = NULL, *p;
	size_t len;
	uint64_t kb = 0;

	if (mb_read_file(path, 1 << 16, &s, &len) != 0)
		return 0;
	p = strstr(s, key);
	if (p != NULL)
		kb = strtoull(p + strlen(key), NULL, 10);
	free(s);
	return kb * 1024;
}

int mb_self_exe(char *buf, size_t cap)
{
	static const char gone[] = " (deleted)";
	size_t g = sizeof(gone) - 1;
	ssize_t n;

	if (cap < 2)
		return -1;
	n = readlink("/proc/self/exe", buf, cap - 1);
	if (n <= 0 || (size_t)n >= cap - 1)
		return -1; /* unknown, or cut short */
	buf[n] = '\0';
	if ((size_t)n > g && strcmp(buf + n - g, gone) == 0) {
		buf[n - g] = '\0';
		if (access(buf, X_OK) != 0)
			buf[n - g] = gone[0]; /* no new copy: the name as it was */
	}
	return 0;
}
