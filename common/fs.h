/*
 * fs: file-system helpers. Complete reads and writes that retry short
 * transfers and EINTR, the atomic file (written as NAME.part, fsynced,
 * renamed over NAME, directory fsynced) that every step output uses so a
 * partial file never passes for a complete one, free-space queries and
 * bounded whole-file reads for small files from outside.
 *
 * All I/O goes through common/fault.h, so tests can fail a write with
 * ENOSPC half-way. Functions return 0 or a negative mb_err code.
 */
#ifndef MB_FS_H
#define MB_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes all n bytes (retrying short writes and EINTR). */
int mb_write_all(int fd, const void *buf, size_t n);

/* Writes all n bytes at offset off. */
int mb_pwrite_all(int fd, const void *buf, size_t n, uint64_t off);

/* Reads until n bytes or end of file; *got gets the count (short = EOF). */
int mb_read_full(int fd, void *buf, size_t n, size_t *got);

/* Reads until n bytes or end of file from offset off. */
int mb_pread_full(int fd, void *buf, size_t n, uint64_t off, size_t *got);

/* fsync(fd). */
int mb_fsync(int fd);

/* Starts writing [off, off + n) of fd to disk, without waiting: the disk
 * works while the writer goes on, and the fsync that ends the file finds
 * little left. Best effort, as is mb_write_behind. */
void mb_write_start(int fd, uint64_t off, uint64_t n);

/* Call after the last use of [off, off + n) of a large file that is used
 * about front to back: waits for the bytes lag before them to be on disk
 * and drops them from the page cache. A file of many GB then holds a
 * bounded share of the page cache, and what works on it keeps reusing the
 * same pages instead of taking fresh ones (which on a virtual machine whose
 * host takes back free memory costs seconds of CPU per GB, and elsewhere
 * pushes out what other programs cache). What is dropped must not be read
 * again soon: read back from disk, it costs the same again. Errors are
 * ignored; the fsync that ends the file reports them. */
void mb_write_behind(int fd, uint64_t off, uint64_t n, uint64_t lag);

/* Drops [off, off + n) of fd (n 0: to its end) from the page cache where
 * it is on disk already: for bytes read once, that nobody reads again
 * soon. The page cache drops only the folios wholly inside the range. */
void mb_drop_cached(int fd, uint64_t off, uint64_t n);

/* fsyncs the directory that holds path (so a rename in it is durable). */
int mb_fsync_parent(const char *path);

/* Creates dir and its missing parents with mode; existing is fine. */
int mb_mkdir_p(const char *dir, mode_t mode);

/* Stores in *avail the bytes an unprivileged user may still write on the
 * file system holding path (statvfs f_bavail * f_frsize). */
int mb_fs_free_space(const char *path, uint64_t *avail);

/* The bytes a "Key:   N kB" line of a /proc file says (key given with its
 * colon: "VmHWM:" in /proc/self/status, "MemTotal:" in /proc/meminfo); 0
 * when the file or the line is missing. */
uint64_t mb_proc_kb_field(const char *path, const char *key);

/* Reads a whole file of at most max bytes into a NUL-terminated heap
 * buffer (caller frees *out). MB_ETOOBIG when the file is larger. */
int mb_read_file(const char *path, size_t max, char **out, size_t *len);

/* An output file that appears complete or not at all. */
struct mb_afile {
	int fd;		/* open on tmp while writing, -1 after */
	char *path;	/* final name */
	char *tmp;	/* path + ".part" */
};

/* Opens path + ".part" for writing (truncated), mode for the new file.
 * On error *af holds nothing to release. */
int mb_afile_open(struct mb_afile *af, const char *path, mode_t mode);

/* Appends n bytes. */
int mb_afile_write(struct mb_afile *af, const void *buf, size_t n);

/* fsyncs and closes the .part, renames it over path and fsyncs the
 * directory. On error the .part is removed and path is untouched. Either
 * way the afile is released. */
int mb_afile_commit(struct mb_afile *af);

/* Closes and removes the .part; path is untouched. NULL-safe, and safe
 * after commit. */
void mb_afile_abort(struct mb_afile *af);

/* Writes n bytes to path atomically (mb_afile_open/write/commit). */
int mb_atomic_write(const char *path, const void *buf, size_t n, mode_t mode);

/* Replaces path with n bytes the way mb_atomic_write does (a reader sees
 * the old bytes or the new), without making them durable: for a note
 * rewritten several times a second that a crash may lose. */
int mb_replace_file(const char *path, const void *buf, size_t n, mode_t mode);

/* Removes path and everything under it (no symlink is followed); a
 * missing path is not an error. */
int mb_rmtree(const char *path);

/* Returns 1 when p is a safe repository-relative path (a file name from
 * a hub listing or an index): not empty, not absolute, no "." or ".."
 * component, no empty component, no backslash, no control character, at
 * most 1024 bytes. Such a path can be joined under a directory safely. */
int mb_repo_path_ok(const char *p);

/* This program's path, for running it again or finding what ships beside
 * it: 0 with it in buf, -1 when it cannot be told. A program replaced
 * while it runs (an upgrade installs a new file) is named by the kernel
 * "PATH (deleted)": the path is then PATH, the new copy, when it exists. */
int mb_self_exe(char *buf, size_t cap);

#endif
