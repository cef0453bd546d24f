/*
 * transport: both transports against real things. The ssh transport talks
 * to the loopback OpenSSH sshd (tests/harness/sshd.h), through the fault
 * proxy when a test cuts the link; the local transport forks real
 * processes. The exec and file tests are shared: each body runs once per
 * transport, so the same calling code is proven on both.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/sha256.h"
#include "coordinator/sshconfig.h"
#include "coordinator/transport.h"
#include "proxy.h"
#include "sshd.h"
#include "th.h"

#define MiB (1u << 20)
#define BIG_SIZE (64u * MiB)
#define CAT_SIZE (5u * MiB)

static struct th_sshd g_sshd;
static char g_dir[512]; /* scratch, seen by both transports */

struct fixture {
	const char *name;
	int ssh;
	struct mb_transport *t;
};

static struct fixture g_local = { "local", 0, NULL };
static struct fixture g_ssh = { "ssh", 1, NULL };

static unsigned char pattern(size_t i)
{
	return (unsigned char)(((uint32_t)i * 2654435761u) >> 24);
}

static unsigned char *make_pattern(size_t n, size_t salt)
{
	unsigned char *p = malloc(n);
	size_t i;

	assert_non_null(p);
	for (i = 0; i < n; i++)
		p[i] = pattern(i + salt);
	return p;
}

static void path_in(char *out, size_t cap, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", g_dir, name);

	assert_true(n > 0 && (size_t)n < cap);
}

static void ssh_opts(struct mb_transport_opts *o, char *target, size_t cap,
		     int port)
{
	int n = snprintf(target, cap, "%s@%s:%d", g_sshd.user, g_sshd.host,
			 port);

	assert_true(n > 0 && (size_t)n < cap);
	memset(o, 0, sizeof(*o));
	o->target = target;
	o->known_hosts = g_sshd.known_hosts;
	o->ssh_config = "";
	o->identity = g_sshd.key;
	o->no_agent = 1;
	o->connect_timeout_ms = 10000;
	o->io_timeout_ms = 10000;
	o->backoff_ms = 50;
	o->retries = 6;
}

static struct mb_transport *open_ssh(void)
{
	struct mb_transport_opts o;
	struct mb_transport *t = NULL;
	char target[256], err[1024];
	int rc;

	ssh_opts(&o, target, sizeof(target), g_sshd.port);
	rc = mb_transport_open(&o, &t, err, sizeof(err));
	if (rc != 0)
		print_error("open: %s\n", err);
	assert_int_equal(rc, 0);
	return t;
}

static int group_setup(void **state)
{
	struct mb_transport_opts o;
	char err[512];

	(void)state;
	if (th_tmpdir("transport", g_dir, sizeof(g_dir)) != 0)
		return -1;
	if (th_sshd_start(&g_sshd) != 0)
		return -1;
	memset(&o, 0, sizeof(o));
	o.target = "local";
	o.home = g_dir;
	if (mb_transport_open(&o, &g_local.t, err, sizeof(err)) != 0) {
		fprintf(stderr, "local: %s\n", err);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	mb_transport_free(g_local.t);
	mb_transport_free(g_ssh.t);
	th_sshd_stop(&g_sshd);
	th_rmtree(g_dir);
	return 0;
}

/* The shared bodies get a fixture; the ssh one connects on first use. */
static struct mb_transport *T(void **state)
{
	struct fixture *f = *state;

	if (f->ssh && f->t == NULL)
		f->t = open_ssh();
	return f->t;
}

/* Runs argv with optional stdin; captures both streams (caps 8 MiB). */
static int run(struct mb_transport *t, const char *const *argv,
	       const void *in, size_t in_len, struct mb_buf *out,
	       struct mb_buf *err, int *status)
{
	struct mb_exec x;
	int rc;

	memset(&x, 0, sizeof(x));
	x.argv = argv;
	x.in = in;
	x.in_len = in_len;
	x.out = out;
	x.err = err;
	x.timeout_ms = 30000;
	rc = mb_transport_exec(t, &x);
	*status = x.status;
	if (rc != 0)
		print_message("exec %s: %s\n", argv[0], mb_transport_errmsg(t));
	return rc;
}

/* ---- shared: commands ------------------------------------------------ */

static void test_exec_basics(void **state)
{
	struct mb_transport *t = T(state);
	const char *const echo[] = { "echo", "hello", NULL };
	const char *const ex3[] = { "sh", "-c", "exit 3", NULL };
	const char *const both[] = { "sh", "-c",
				     "echo out; echo err >&2; echo out2", NULL };
	const char *const sig[] = { "sh", "-c", "kill -TERM $$", NULL };
	const char *const missing[] = { "mibera-no-such-command", NULL };
	struct mb_buf out, err;
	struct mb_exec x;
	int status, rc;

	mb_buf_init(&out, 8 * MiB);
	mb_buf_init(&err, 8 * MiB);
	assert_int_equal(run(t, echo, NULL, 0, &out, &err, &status), 0);
	assert_int_equal(status, 0);
	assert_string_equal(out.data, "hello\n");
	assert_int_equal(err.len, 0);

	mb_buf_reset(&out);
	assert_int_equal(run(t, ex3, NULL, 0, &out, &err, &status), 0);
	assert_int_equal(status, 3);

	mb_buf_reset(&out);
	assert_int_equal(run(t, both, NULL, 0, &out, &err, &status), 0);
	assert_int_equal(status, 0);
	assert_string_equal(out.data, "out\nout2\n");
	assert_string_equal(err.data, "err\n");

	memset(&x, 0, sizeof(x));
	x.argv = sig;
	assert_int_equal(mb_transport_exec(t, &x), 0);
	assert_int_equal(x.status, -1);
	assert_string_equal(x.signal, "TERM");

	/* locally exec fails; remotely the shell says 127 */
	mb_buf_reset(&err);
	rc = run(t, missing, NULL, 0, &out, &err, &status);
	if (mb_transport_kind(t) == MB_TRANSPORT_LOCAL) {
		assert_int_equal(rc, MB_ENOENT);
		assert_non_null(strstr(mb_transport_errmsg(t),
				       "mibera-no-such-command"));
	} else {
		assert_int_equal(rc, 0);
		assert_int_equal(status, 127);
	}
	mb_buf_release(&out);
	mb_buf_release(&err);
}

static void test_exec_stdin_cat(void **state)
{
	struct mb_transport *t = T(state);
	const char *const cat[] = { "cat", NULL };
	const char *const tee[] = { "sh", "-c", "tee /dev/stderr", NULL };
	unsigned char *in = make_pattern(CAT_SIZE, 7);
	struct mb_buf out, err;
	long long t0;
	int status;

	mb_buf_init(&out, 8 * MiB);
	mb_buf_init(&err, 8 * MiB);
	t0 = th_now_ms();
	assert_int_equal(run(t, cat, in, CAT_SIZE, &out, &err, &status), 0);
	print_message("%s: 5 MiB through cat in %lld ms\n",
		      mb_transport_name(t), th_now_ms() - t0);
	assert_int_equal(status, 0);
	assert_int_equal(out.len, CAT_SIZE);
	assert_memory_equal(out.data, in, CAT_SIZE);

	/* a command that reads 10 bytes and leaves: no SIGPIPE, no hang */
	{
		const char *const head[] = { "head", "-c", "10", NULL };

		mb_buf_reset(&out);
		assert_int_equal(run(t, head, in, CAT_SIZE, &out, &err,
				     &status),
				 0);
		assert_int_equal(status, 0);
		assert_int_equal(out.len, 10);
		assert_memory_equal(out.data, in, 10);
	}

	/* both output streams full at once, while stdin still flows */
	mb_buf_reset(&out);
	assert_int_equal(run(t, tee, in, CAT_SIZE, &out, &err, &status), 0);
	assert_int_equal(status, 0);
	assert_int_equal(out.len, CAT_SIZE);
	assert_int_equal(err.len, CAT_SIZE);
	assert_memory_equal(out.data, in, CAT_SIZE);
	assert_memory_equal(err.data, in, CAT_SIZE);
	mb_buf_release(&out);
	mb_buf_release(&err);
	free(in);
}

static void test_exec_quoting(void **state)
{
	struct mb_transport *t = T(state);
	static const char *const nasty[] = {
		"plain",
		"two words",
		"it's",
		"'",
		"''''",
		"\"double\"",
		"$(touch /tmp/mibera-pwned)",
		"`touch /tmp/mibera-pwned`",
		"$HOME ${PATH} $$ $? $0",
		"a;b|c&d>e<f",
		"line1\nline2\n",
		"\\ back\\\\slash \\n",
		"*",
		"~",
		"-n",
		"tab\there",
		"caf\xc3\xa9 \xe2\x9c\x93",
		"",
		" leading and trailing ",
		"!event #comment",
	};
	struct mb_buf out, err;
	size_t i;
	int status;

	mb_buf_init(&out, MiB);
	mb_buf_init(&err, MiB);
	/* one exec for the lot (each exec costs sshd a fork and a shell):
	 * printf '%s\0' prints every argument followed by a NUL */
	{
		const char *argv[64];
		const char *p, *end;
		size_t n = 0;

		argv[n++] = "printf";
		argv[n++] = "%s\\0";
		for (i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++)
			argv[n++] = nasty[i];
		argv[n] = NULL;
		assert_int_equal(run(t, argv, NULL, 0, &out, &err, &status),
				 0);
		assert_int_equal(status, 0);
		p = out.data;
		end = out.data + out.len;
		for (i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++) {
			size_t l = strlen(nasty[i]);

			assert_true((size_t)(end - p) >= l + 1);
			assert_memory_equal(p, nasty[i], l);
			assert_int_equal(p[l], '\0');
			p += l + 1;
		}
		assert_true(p == end);
	}
	/* and one alone, where a quoting slip would show as a syntax error */
	{
		const char *const argv[] = { "printf", "%s", "a'b\"c$(d)`e`\n",
					     NULL };

		mb_buf_reset(&out);
		assert_int_equal(run(t, argv, NULL, 0, &out, &err, &status),
				 0);
		assert_string_equal(out.data, "a'b\"c$(d)`e`\n");
	}
	assert_int_not_equal(access("/tmp/mibera-pwned", F_OK), 0);
	assert_int_equal(err.len, 0);
	mb_buf_release(&out);
	mb_buf_release(&err);
}

struct follow {
	struct mb_buf got;
	int calls;
	int stop_after;
};

static int on_output(int stream, const void *data, size_t len, void *ctx)
{
	struct follow *f = ctx;

	assert_int_equal(stream, MB_EXEC_STDOUT);
	assert_int_equal(mb_buf_add(&f->got, data, len), 0);
	f->calls++;
	return f->stop_after > 0 && f->calls >= f->stop_after;
}

static void test_exec_follow_cancel_timeout(void **state)
{
	struct mb_transport *t = T(state);
	const char *const ticks[] = {
		"sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done", NULL
	};
	const char *const forever[] = {
		"sh", "-c", "while :; do echo x; sleep 0.05; done", NULL
	};
	const char *const slow[] = { "sleep", "30", NULL };
	const char *const echo[] = { "echo", "still here", NULL };
	const char *const big[] = { "head", "-c", "100000", "/dev/zero", NULL };
	struct follow f;
	struct mb_exec x;
	struct mb_buf out;
	long long t0;
	int status;

	memset(&f, 0, sizeof(f));
	mb_buf_init(&f.got, MiB);
	memset(&x, 0, sizeof(x));
	x.argv = ticks;
	x.on_output = on_output;
	x.ctx = &f;
	assert_int_equal(mb_transport_exec(t, &x), 0);
	assert_int_equal(x.status, 0);
	assert_string_equal(f.got.data, "1\n2\n3\n");
	assert_true(f.calls >= 2); /* it streamed, not all at the end */

	/* the reader stops a command that never ends */
	mb_buf_reset(&f.got);
	f.calls = 0;
	f.stop_after = 3;
	x.argv = forever;
	t0 = th_now_ms();
	assert_int_equal(mb_transport_exec(t, &x), MB_ECANCELLED);
	assert_true(th_now_ms() - t0 < 5000);
	assert_int_equal(f.calls, 3);

	/* a deadline */
	memset(&x, 0, sizeof(x));
	x.argv = slow;
	x.timeout_ms = 300;
	t0 = th_now_ms();
	assert_int_equal(mb_transport_exec(t, &x), MB_ETIMEDOUT);
	assert_true(th_now_ms() - t0 < 5000);

	/* the transport is still good for the next command */
	mb_buf_init(&out, 10);
	assert_int_equal(run(t, echo, NULL, 0, &out, NULL, &status), 0);
	assert_string_equal(out.data, "still here");

	/* output past the cap is read and dropped, and flagged */
	mb_buf_reset(&out);
	memset(&x, 0, sizeof(x));
	x.argv = big;
	x.out = &out;
	assert_int_equal(mb_transport_exec(t, &x), 0);
	assert_int_equal(x.status, 0);
	assert_int_equal(x.truncated, MB_EXEC_STDOUT);
	assert_int_equal(out.len, 10);
	mb_buf_release(&out);
	mb_buf_release(&f.got);
}

/* ---- shared: files --------------------------------------------------- */

static void test_files(void **state)
{
	struct fixture *fx = *state;
	struct mb_transport *t = T(state);
	unsigned char *data = make_pattern(3 * MiB + 17, 3), *back;
	struct mb_transport_stat st;
	char a[700], b[700], d[700], sub[700];
	size_t got;

	path_in(a, sizeof(a), fx->ssh ? "ssh-a.bin" : "local-a.bin");
	path_in(b, sizeof(b), fx->ssh ? "ssh-b.bin" : "local-b.bin");
	path_in(d, sizeof(d), fx->ssh ? "ssh-d/x/y" : "local-d/x/y");
	back = malloc(3 * MiB + 17);
	assert_non_null(back);

	assert_int_equal(mb_transport_stat(t, a, &st), MB_ENOENT);
	assert_int_equal(mb_transport_read(t, a, 0, back, 10, &got),
			 MB_ENOENT);
	/* the second half first, then the first: offsets, not appends */
	assert_int_equal(mb_transport_write(t, a, MiB, data + MiB,
					    2 * MiB + 17),
			 0);
	assert_int_equal(mb_transport_write(t, a, 0, data, MiB), 0);
	assert_int_equal(mb_transport_stat(t, a, &st), 0);
	assert_int_equal(st.size, 3 * MiB + 17);
	assert_false(st.is_dir);
	assert_true(st.mtime > 0);
	assert_int_equal(mb_transport_read(t, a, 0, back, 3 * MiB + 17, &got),
			 0);
	assert_int_equal(got, 3 * MiB + 17);
	assert_memory_equal(back, data, got);
	/* a read across the end is short; past the end, empty */
	assert_int_equal(mb_transport_read(t, a, 3 * MiB, back, MiB, &got), 0);
	assert_int_equal(got, 17);
	assert_memory_equal(back, data + 3 * MiB, 17);
	assert_int_equal(mb_transport_read(t, a, 4 * MiB, back, 10, &got), 0);
	assert_int_equal(got, 0);
	/* a small write in the middle leaves the rest alone */
	assert_int_equal(mb_transport_write(t, a, 1000, "PATCH", 5), 0);
	assert_int_equal(mb_transport_read(t, a, 990, back, 30, &got), 0);
	assert_memory_equal(back, data + 990, 10);
	assert_memory_equal(back + 10, "PATCH", 5);
	assert_memory_equal(back + 15, data + 1005, 15);

	assert_int_equal(mb_transport_truncate(t, a, 100), 0);
	assert_int_equal(mb_transport_stat(t, a, &st), 0);
	assert_int_equal(st.size, 100);

	/* rename, also over an existing file (the .part -> final case) */
	assert_int_equal(mb_transport_write(t, b, 0, "old", 3), 0);
	assert_int_equal(mb_transport_rename(t, a, b), 0);
	assert_int_equal(mb_transport_stat(t, a, &st), MB_ENOENT);
	assert_int_equal(mb_transport_stat(t, b, &st), 0);
	assert_int_equal(st.size, 100);
	assert_int_equal(mb_transport_rename(t, a, b), MB_ENOENT);

	assert_int_equal(mb_transport_unlink(t, b), 0);
	assert_int_equal(mb_transport_unlink(t, b), MB_ENOENT);

	assert_int_equal(mb_transport_mkdirs(t, d), 0);
	assert_int_equal(mb_transport_mkdirs(t, d), 0);
	assert_int_equal(mb_transport_stat(t, d, &st), 0);
	assert_true(st.is_dir);
	path_in(sub, sizeof(sub), fx->ssh ? "ssh-d/x/y/f" : "local-d/x/y/f");
	assert_int_equal(mb_transport_write(t, sub, 0, "f", 1), 0);
	assert_int_not_equal(mb_transport_mkdirs(t, sub), 0); /* a file */
	free(data);
	free(back);
}

/* ---- local only ------------------------------------------------------ */

static void test_local_relative_paths(void **state)
{
	struct mb_transport *t = g_local.t;
	const char *const pwd[] = { "pwd", "-P", NULL };
	struct mb_transport_stat st;
	struct mb_buf out;
	char want[700], real[700];
	int status;

	(void)state;
	assert_string_equal(mb_transport_name(t), "local");
	assert_null(mb_transport_host_key_line(t));
	assert_int_equal(mb_transport_write(t, "rel.txt", 0, "hi", 2), 0);
	path_in(want, sizeof(want), "rel.txt");
	assert_int_equal(access(want, F_OK), 0);
	assert_int_equal(mb_transport_stat(t, "~/rel.txt", &st), 0);
	assert_int_equal(st.size, 2);
	assert_non_null(realpath(g_dir, real));
	mb_buf_init(&out, 4096);
	assert_int_equal(run(t, pwd, NULL, 0, &out, NULL, &status), 0);
	assert_int_equal(out.len, strlen(real) + 1);
	assert_memory_equal(out.data, real, strlen(real));
	mb_buf_release(&out);
}

/* ---- ssh only -------------------------------------------------------- */

static void sha_of(const void *p, size_t n, char hex[MB_SHA256_HEX])
{
	uint8_t d[MB_SHA256_LEN];

	assert_int_equal(mb_sha256_buf(p, n, d), 0);
	mb_sha256_hex(d, hex);
}

static void test_ssh_sftp_64mib(void **state)
{
	struct mb_transport *t;
	unsigned char *data = make_pattern(BIG_SIZE, 11), *back;
	char path[700], want[MB_SHA256_HEX], got_hex[MB_SHA256_HEX];
	uint8_t disk[MB_SHA256_LEN];
	size_t got, off, piece = 16 * MiB;
	long long t0, ms;
	int i;

	(void)state;
	g_ssh.t = g_ssh.t != NULL ? g_ssh.t : open_ssh();
	t = g_ssh.t;
	path_in(path, sizeof(path), "big.bin");
	back = malloc(BIG_SIZE);
	assert_non_null(back);
	sha_of(data, BIG_SIZE, want);

	/* four 16 MiB writes, in reverse order */
	t0 = th_now_ms();
	for (i = 3; i >= 0; i--)
		assert_int_equal(mb_transport_write(t, path, (uint64_t)i * piece,
						    data + (size_t)i * piece,
						    piece),
				 0);
	ms = th_now_ms() - t0;
	print_message("sftp write 64 MiB: %lld ms, %.1f MB/s\n", ms,
		      ms > 0 ? BIG_SIZE / 1e3 / (double)ms : 0.0);
	assert_int_equal(mb_sha256_file(path, disk, NULL), 0);
	mb_sha256_hex(disk, got_hex);
	assert_string_equal(got_hex, want);

	/* reads at offsets in uneven pieces, then one read of it all */
	memset(back, 0, BIG_SIZE);
	t0 = th_now_ms();
	for (off = 0; off < BIG_SIZE; off += got) {
		size_t want_n = off == 0 ? 3 * MiB + 5 : 20 * MiB;

		assert_int_equal(mb_transport_read(t, path, off, back + off,
						   want_n, &got),
				 0);
		assert_true(got > 0);
	}
	ms = th_now_ms() - t0;
	print_message("sftp read 64 MiB at offsets: %lld ms, %.1f MB/s\n", ms,
		      ms > 0 ? BIG_SIZE / 1e3 / (double)ms : 0.0);
	sha_of(back, BIG_SIZE, got_hex);
	assert_string_equal(got_hex, want);

	memset(back, 0, BIG_SIZE);
	t0 = th_now_ms();
	assert_int_equal(mb_transport_read(t, path, 0, back, BIG_SIZE, &got),
			 0);
	ms = th_now_ms() - t0;
	assert_int_equal(got, BIG_SIZE);
	print_message("sftp read 64 MiB in one call: %lld ms, %.1f MB/s\n", ms,
		      ms > 0 ? BIG_SIZE / 1e3 / (double)ms : 0.0);
	sha_of(back, BIG_SIZE, got_hex);
	assert_string_equal(got_hex, want);
	free(data);
	free(back);
}

/* The fingerprint of the sshd's host key, from its known_hosts line. */
static void host_fp(const struct th_sshd *s, char fp[MB_SSH_FP_LEN])
{
	assert_int_equal(mb_ssh_pin_fingerprint(s->known_hosts_line, fp), 0);
}

static void test_ssh_unknown_host_key(void **state)
{
	struct mb_transport_opts o;
	struct mb_transport *t = NULL;
	char target[256], err[1024], fp[MB_SSH_FP_LEN], empty[700], kh[700];
	char *line;

	(void)state;
	host_fp(&g_sshd, fp);
	path_in(empty, sizeof(empty), "empty_known_hosts");
	assert_int_equal(th_write_file(empty, "", 0), 0);
	ssh_opts(&o, target, sizeof(target), g_sshd.port);
	o.known_hosts = empty;
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)),
			 MB_EHOSTKEY);
	assert_null(t);
	print_message("refused: %s\n", err);
	assert_non_null(strstr(err, "unknown host key"));
	assert_non_null(strstr(err, fp));

	/* a wrong fingerprint is refused as well */
	o.accept_fingerprint =
		"SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)),
			 MB_EHOSTKEY);
	assert_non_null(strstr(err, fp));

	o.accept_fingerprint = fp;
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)), 0);
	assert_string_equal(mb_transport_fingerprint(t), fp);
	line = strdup(mb_transport_host_key_line(t));
	assert_non_null(line);
	assert_string_equal(line, g_sshd.known_hosts_line);
	mb_transport_free(t);
	t = NULL;

	/* the returned line, pinned, verifies on its own ... */
	o.accept_fingerprint = NULL;
	o.known_hosts = "";
	o.pinned_key = line;
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)), 0);
	mb_transport_free(t);
	t = NULL;
	/* ... as its bare fingerprint ... */
	o.pinned_key = fp;
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)), 0);
	mb_transport_free(t);
	t = NULL;
	/* ... and as a line in a known_hosts file */
	o.pinned_key = NULL;
	path_in(kh, sizeof(kh), "learned_known_hosts");
	assert_int_equal(th_write_file(kh, line, strlen(line)), 0);
	o.known_hosts = kh;
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)), 0);
	mb_transport_free(t);
	free(line);
}

static void test_ssh_changed_host_key(void **state)
{
	struct th_sshd other;
	struct mb_transport_opts o;
	struct mb_transport *t = NULL;
	char target[256], err[1024], fp_old[MB_SSH_FP_LEN];
	char fp_new[MB_SSH_FP_LEN], kh[700], line[1200];
	const char *sp;
	int n;

	(void)state;
	/* the same worker "restarted" with a new host key */
	memset(&other, 0, sizeof(other));
	assert_int_equal(th_sshd_start(&other), 0);
	host_fp(&g_sshd, fp_old);
	host_fp(&other, fp_new);
	assert_string_not_equal(fp_old, fp_new);

	ssh_opts(&o, target, sizeof(target), other.port);
	o.identity = other.key;
	o.known_hosts = "";
	o.pinned_key = g_sshd.known_hosts_line;
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)),
			 MB_EHOSTKEY);
	print_message("refused: %s\n", err);
	assert_non_null(strstr(err, "changed"));
	assert_non_null(strstr(err, fp_old));
	assert_non_null(strstr(err, fp_new));
	/* accepting an unknown key does not override a pin */
	o.accept_fingerprint = fp_new;
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)),
			 MB_EHOSTKEY);

	/* the same through known_hosts: the old key under the new address */
	sp = strchr(g_sshd.known_hosts_line, ' ');
	assert_non_null(sp);
	n = snprintf(line, sizeof(line), "[127.0.0.1]:%d%s\n", other.port, sp);
	assert_true(n > 0 && (size_t)n < sizeof(line));
	path_in(kh, sizeof(kh), "stale_known_hosts");
	assert_int_equal(th_write_file(kh, line, strlen(line)), 0);
	o.pinned_key = NULL;
	o.accept_fingerprint = fp_new; /* known and changed is not unknown */
	o.known_hosts = kh;
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)),
			 MB_EHOSTKEY);
	print_message("refused: %s\n", err);
	assert_non_null(strstr(err, fp_old));
	assert_non_null(strstr(err, fp_new));
	assert_null(t);
	th_sshd_stop(&other);
}

static void test_ssh_config_alias(void **state)
{
	struct mb_transport_opts o;
	struct mb_transport *t = NULL;
	const char *const argv[] = { "echo", "via alias", NULL };
	char cfg[700], text[2048], err[1024], want[300];
	struct mb_buf out;
	int n, status;

	(void)state;
	path_in(cfg, sizeof(cfg), "ssh_config");
	n = snprintf(text, sizeof(text),
		     "Host other\n"
		     "    HostName 192.0.2.1\n"
		     "Host w1\n"
		     "    HostName %s\n"
		     "    Port %d\n"
		     "    User %s\n"
		     "    IdentityFile %s\n"
		     "Host *\n"
		     "    Port 1\n"
		     "    User nobody-at-all\n",
		     g_sshd.host, g_sshd.port, g_sshd.user, g_sshd.key);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	assert_int_equal(th_write_file(cfg, text, (size_t)n), 0);

	memset(&o, 0, sizeof(o));
	o.target = "w1";
	o.ssh_config = cfg;
	o.known_hosts = g_sshd.known_hosts;
	o.no_agent = 1;
	o.connect_timeout_ms = 10000;
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)), 0);
	n = snprintf(want, sizeof(want), "ssh %s@%s:%d", g_sshd.user,
		     g_sshd.host, g_sshd.port);
	assert_true(n > 0 && (size_t)n < sizeof(want));
	assert_string_equal(mb_transport_name(t), want);
	mb_buf_init(&out, 4096);
	assert_int_equal(run(t, argv, NULL, 0, &out, NULL, &status), 0);
	assert_string_equal(out.data, "via alias\n");
	mb_buf_release(&out);
	mb_transport_free(t);
}

static void test_ssh_agent_auth(void **state)
{
	struct mb_transport_opts o;
	struct mb_transport *t = NULL;
	char target[256], err[1024], sock[700], line[1100], *old = NULL;
	char *agent[] = { "ssh-agent", "-D", "-a", sock, NULL };
	char *add[] = { "ssh-add", "-q", g_sshd.key, NULL };
	pid_t pid;
	int rc, agent_out = -1;

	(void)state;
	if (access("/usr/bin/ssh-agent", X_OK) != 0) {
		skip();
		return;
	}
	path_in(sock, sizeof(sock), "agent.sock");
	/* -D prints its environment lines; keep them out of the log */
	assert_int_equal(th_spawn(agent, &pid, &agent_out), 0);
	for (rc = 0; rc < 100 && access(sock, F_OK) != 0; rc++)
		usleep(20 * 1000);
	if (getenv("SSH_AUTH_SOCK") != NULL)
		old = strdup(getenv("SSH_AUTH_SOCK"));
	setenv("SSH_AUTH_SOCK", sock, 1);
	assert_int_equal(th_run(add), 0);

	/* no key file at all: only the agent can log in */
	ssh_opts(&o, target, sizeof(target), g_sshd.port);
	o.identity = "/nonexistent/key";
	o.no_agent = 0;
	rc = mb_transport_open(&o, &t, err, sizeof(err));
	if (rc != 0)
		print_error("agent: %s\n", err);
	assert_int_equal(rc, 0);
	mb_transport_free(t);
	t = NULL;

	o.no_agent = 1;
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)), MB_EAUTH);
	snprintf(line, sizeof(line), "%s", err);
	print_message("without the agent: %s\n", line);

	if (old != NULL)
		setenv("SSH_AUTH_SOCK", old, 1);
	else
		unsetenv("SSH_AUTH_SOCK");
	free(old);
	th_stop(pid, 2000);
	close(agent_out);
}

/* A read through a proxy that resets each connection after 20 MB: the
 * 64 MiB read reconnects (pinned key, no known_hosts) and resumes. */
static void test_ssh_reconnect_read(void **state)
{
	const char *const args[] = { "--cut-after", "20000000", NULL };
	struct th_proxy p;
	struct mb_transport_opts o;
	struct mb_transport *t = NULL;
	char target[256], err[1024], path[700], hex[MB_SHA256_HEX];
	char want[MB_SHA256_HEX];
	uint8_t d[MB_SHA256_LEN];
	unsigned char *back;
	size_t got;
	long long t0;

	(void)state;
	path_in(path, sizeof(path), "big.bin");
	assert_int_equal(mb_sha256_file(path, d, NULL), 0); /* from 64mib */
	mb_sha256_hex(d, want);
	assert_int_equal(th_proxy_start(&p, g_sshd.host, g_sshd.port, args),
			 0);
	ssh_opts(&o, target, sizeof(target), p.port);
	o.known_hosts = "";
	o.pinned_key = g_sshd.known_hosts_line;
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)), 0);
	back = malloc(BIG_SIZE);
	assert_non_null(back);
	t0 = th_now_ms();
	assert_int_equal(mb_transport_read(t, path, 0, back, BIG_SIZE, &got),
			 0);
	print_message("64 MiB through a link cut every 20 MB: %lld ms, "
		      "%u reconnects\n",
		      th_now_ms() - t0, mb_transport_reconnects(t));
	assert_int_equal(got, BIG_SIZE);
	assert_true(mb_transport_reconnects(t) >= 3);
	sha_of(back, BIG_SIZE, hex);
	assert_string_equal(hex, want);
	free(back);
	mb_transport_free(t);
	th_proxy_stop(&p);
}

struct cutter {
	struct th_proxy *p;
	long long after_ms;
};

static void *cut_later(void *arg)
{
	struct cutter *c = arg;

	usleep((useconds_t)c->after_ms * 1000);
	th_proxy_cut_all(c->p);
	return NULL;
}

/* th_proxy_cut_all in the middle of a slow transfer, then between calls:
 * stat, read and write reconnect and retry; exec reports MB_ENETWORK
 * once and works on the next call. */
static void test_ssh_cut_all(void **state)
{
	const char *const args[] = { "--rate", "8000000", NULL };
	const char *const echo[] = { "echo", "back", NULL };
	char *disk;
	struct th_proxy p;
	struct mb_transport_opts o;
	struct mb_transport *t = NULL;
	struct mb_transport_stat st;
	struct cutter c;
	pthread_t tid;
	char target[256], err[1024], path[700], wpath[700];
	unsigned char *back, *data;
	struct mb_buf out;
	size_t got, n = 8 * MiB;
	int status;

	(void)state;
	path_in(path, sizeof(path), "big.bin");
	path_in(wpath, sizeof(wpath), "cut-write.bin");
	data = make_pattern(BIG_SIZE, 11); /* what big.bin holds */
	back = malloc(n);
	assert_non_null(back);
	assert_int_equal(th_proxy_start(&p, g_sshd.host, g_sshd.port, args),
			 0);
	ssh_opts(&o, target, sizeof(target), p.port);
	o.known_hosts = "";
	o.pinned_key = g_sshd.known_hosts_line;
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)), 0);

	/* 8 MiB at 8 MB/s takes 1 s: cut at 0.4 s */
	c.p = &p;
	c.after_ms = 400;
	assert_int_equal(pthread_create(&tid, NULL, cut_later, &c), 0);
	assert_int_equal(mb_transport_read(t, path, 5 * MiB, back, n, &got),
			 0);
	pthread_join(tid, NULL);
	assert_int_equal(got, n);
	assert_memory_equal(back, data + 5 * MiB, n);
	assert_int_equal(mb_transport_reconnects(t), 1);

	/* a write cut in the middle */
	assert_int_equal(pthread_create(&tid, NULL, cut_later, &c), 0);
	assert_int_equal(mb_transport_write(t, wpath, 0, data, n), 0);
	pthread_join(tid, NULL);
	assert_int_equal(mb_transport_reconnects(t), 2);
	disk = th_slurp(wpath, &got);
	assert_non_null(disk);
	assert_int_equal(got, n);
	assert_memory_equal(disk, data, n);
	free(disk);

	/* between calls */
	assert_int_equal(th_proxy_cut_all(&p), 0);
	usleep(100 * 1000);
	assert_int_equal(mb_transport_stat(t, path, &st), 0);
	assert_int_equal(st.size, BIG_SIZE);
	assert_int_equal(mb_transport_reconnects(t), 3);

	assert_int_equal(th_proxy_cut_all(&p), 0);
	usleep(100 * 1000);
	mb_buf_init(&out, 4096);
	assert_int_equal(run(t, echo, NULL, 0, &out, NULL, &status),
			 MB_ENETWORK);
	assert_int_equal(run(t, echo, NULL, 0, &out, NULL, &status), 0);
	assert_string_equal(out.data, "back\n");
	assert_int_equal(mb_transport_reconnects(t), 4);
	mb_buf_release(&out);
	mb_transport_free(t);
	th_proxy_stop(&p);
	free(back);
	free(data);
}

static void test_ssh_refusals(void **state)
{
	struct mb_transport_opts o;
	struct mb_transport *t = NULL;
	char target[256], err[1024];
	int port = th_free_port();

	(void)state;
	/* nobody listening: fails at once, no minute of backoff */
	ssh_opts(&o, target, sizeof(target), port);
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)),
			 MB_ENETWORK);
	print_message("closed port: %s\n", err);
	/* wrong key file */
	ssh_opts(&o, target, sizeof(target), g_sshd.port);
	o.identity = g_sshd.pubkey; /* not a private key */
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)), MB_EAUTH);
	print_message("bad key: %s\n", err);
	/* a pin that is not one */
	ssh_opts(&o, target, sizeof(target), g_sshd.port);
	o.pinned_key = "not a key";
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)), MB_EINVAL);
	o.pinned_key = NULL;
	o.target = "-oProxyCommand=touch /tmp/x";
	assert_int_equal(mb_transport_open(&o, &t, err, sizeof(err)), MB_EINVAL);
	assert_null(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate(test_exec_basics, &g_local),
		cmocka_unit_test_prestate(test_exec_stdin_cat, &g_local),
		cmocka_unit_test_prestate(test_exec_quoting, &g_local),
		cmocka_unit_test_prestate(test_exec_follow_cancel_timeout,
					  &g_local),
		cmocka_unit_test_prestate(test_files, &g_local),
		cmocka_unit_test(test_local_relative_paths),
		cmocka_unit_test_prestate(test_exec_basics, &g_ssh),
		cmocka_unit_test_prestate(test_exec_stdin_cat, &g_ssh),
		cmocka_unit_test_prestate(test_exec_quoting, &g_ssh),
		cmocka_unit_test_prestate(test_exec_follow_cancel_timeout,
					  &g_ssh),
		cmocka_unit_test_prestate(test_files, &g_ssh),
		cmocka_unit_test(test_ssh_sftp_64mib),
		cmocka_unit_test(test_ssh_unknown_host_key),
		cmocka_unit_test(test_ssh_changed_host_key),
		cmocka_unit_test(test_ssh_config_alias),
		cmocka_unit_test(test_ssh_agent_auth),
		cmocka_unit_test(test_ssh_reconnect_read),
		cmocka_unit_test(test_ssh_cut_all),
		cmocka_unit_test(test_ssh_refusals),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
