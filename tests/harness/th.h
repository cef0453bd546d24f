/*
 * th: the test harness core. Temporary directories, free loopback ports and
 * child processes that tests start and must stop. The servers (sshd, fake
 * hub, fault proxy) and the model generator build on these.
 *
 * Harness functions return 0 on success and -1 on failure, after printing
 * what went wrong to stderr: a harness that cannot start is a test failure
 * a person must be able to read.
 */
#ifndef MB_TH_H
#define MB_TH_H

#include <stddef.h>
#include <sys/types.h>

/* Creates a fresh directory under $TMPDIR (or /tmp) named mbtest-<tag>-XXXXXX
 * and writes its path to out (cap bytes). */
int th_tmpdir(const char *tag, char *out, size_t cap);

/* The pages of [off, off + len) of the file at path (len 0: to its end)
 * that are in the page cache, and their count in *all; -1 on error. */
long th_cached_pages(const char *path, size_t off, size_t len, size_t *all);

/* Whether path is on tmpfs, where the page cache is the file itself and
 * cannot be dropped. */
int th_on_tmpfs(const char *path);

/* Removes a directory tree (like rm -rf); missing is not an error. */
int th_rmtree(const char *path);

/* Returns a TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int th_free_port(void);

/* Connects to 127.0.0.1:port; returns the socket or -1. */
int th_tcp_connect(int port);

/* Waits until something accepts TCP connections on 127.0.0.1:port, up to
 * timeout_ms. Returns 0 when it does, -1 on timeout. */
int th_wait_port(int port, int timeout_ms);

/* Starts argv[0] (searched in PATH) with argv, in its own process group.
 * If out_fd is not NULL, the child's stdout is a pipe whose read end is
 * stored there; stderr is inherited (it shows in the test log). */
int th_spawn(char *const argv[], pid_t *pid, int *out_fd);

/* Reads one line (without the newline) from fd into buf within timeout_ms.
 * Returns its length, or -1 on EOF, error or timeout. */
int th_read_line(int fd, char *buf, size_t cap, int timeout_ms);

/* Sends SIGTERM to the child's process group, waits up to timeout_ms, then
 * SIGKILL; reaps it. Returns its wait status, or -1. pid <= 0 is a no-op. */
int th_stop(pid_t pid, int timeout_ms);

/* Runs argv to completion (stdout/stderr inherited). Returns the exit code,
 * or -1 if it could not run or died from a signal. */
int th_run(char *const argv[]);

/* Runs the shell command cmd with stderr folded into stdout; *out gets
 * the output (NUL-terminated, caller frees). Returns the exit code, or -1
 * when it could not run or died from a signal. */
int th_capture(const char *cmd, char **out);

/* th_capture of the command made from fmt...; *out is never NULL after
 * (an empty string when the command could not run). out NULL: the output
 * is dropped. */
int th_sh(char **out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Runs the build's program prog (mibera-job, mibera-worker, ...) with the
 * shell words args, output folded into *out (never NULL; caller frees).
 * Returns its exit code. */
int th_prog(const char *prog, const char *args, char **out);

/* Reads a whole file into a NUL-terminated heap buffer (caller frees).
 * Returns NULL on error; *len gets the size when len is not NULL. */
char *th_slurp(const char *path, size_t *len);

/* 1 when files a and b both read and hold the same bytes, else 0. */
int th_same_file(const char *a, const char *b);

/* Writes len bytes to path (created or truncated, mode 0644). */
int th_write_file(const char *path, const void *data, size_t len);

/* Milliseconds from a monotonic clock. */
long long th_now_ms(void);

#endif
