/*
 * sshd: the loopback sshd harness proves itself with the client the
 * coordinator uses, libssh2: handshake, host key checked against the
 * known_hosts line (and a wrong key caught before any authentication),
 * ed25519 public key login, a command on an exec channel, SFTP writes and
 * reads at offsets, and no more connections once the sshd is stopped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <libssh2.h>
#include <libssh2_sftp.h>

#include "sshclient.h"
#include "sshd.h"
#include "th.h"

#define SFTP_SIZE 100000
#define PATCH_AT 40000
#define PATCH "patched-bytes"

static struct th_sshd g_sshd;

static unsigned char pattern(size_t i)
{
	return (unsigned char)(((uint32_t)i * 2654435761u) >> 24);
}

static int group_setup(void **state)
{
	(void)state;
	if (libssh2_init(0) != 0)
		return -1;
	return th_sshd_start(&g_sshd);
}

static int group_teardown(void **state)
{
	(void)state;
	th_sshd_stop(&g_sshd);
	libssh2_exit();
	return 0;
}

static void test_start_fills_fields(void **state)
{
	struct passwd *pw = getpwuid(geteuid());
	char prefix[128];
	int n;

	(void)state;
	assert_non_null(pw);
	assert_string_equal(g_sshd.host, "127.0.0.1");
	assert_string_equal(g_sshd.user, pw->pw_name);
	assert_true(g_sshd.port > 0 && g_sshd.port < 65536);
	assert_true(g_sshd.pid > 0);
	assert_int_equal(kill(g_sshd.pid, 0), 0);
	assert_int_equal(access(g_sshd.key, R_OK), 0);
	assert_int_equal(access(g_sshd.pubkey, R_OK), 0);
	assert_int_equal(access(g_sshd.known_hosts, R_OK), 0);
	n = snprintf(prefix, sizeof(prefix), "[127.0.0.1]:%d ssh-ed25519 AAAA",
		     g_sshd.port);
	assert_true(n > 0 && (size_t)n < sizeof(prefix));
	assert_memory_equal(g_sshd.known_hosts_line, prefix, (size_t)n);
	assert_int_equal(th_wait_port(g_sshd.port, 1000), 0);
}

static void test_login_and_exec(void **state)
{
	LIBSSH2_CHANNEL *ch;
	struct th_ssh c;
	char out[256];
	size_t got = 0;
	ssize_t n;

	(void)state;
	assert_int_equal(th_ssh_open(&c, g_sshd.port, 10000), 0);
	assert_int_equal(th_ssh_check_host_key(&c, &g_sshd, g_sshd.known_hosts_line, 0),
			 LIBSSH2_KNOWNHOST_CHECK_MATCH);
	assert_int_equal(th_ssh_check_host_key(&c, &g_sshd, g_sshd.known_hosts, 1),
			 LIBSSH2_KNOWNHOST_CHECK_MATCH);
	assert_int_equal(th_ssh_login(&c, &g_sshd, g_sshd.known_hosts_line, 0), 0);

	ch = libssh2_channel_open_session(c.session);
	assert_non_null(ch);
	assert_int_equal(libssh2_channel_exec(ch, "echo hello"), 0);
	while ((n = libssh2_channel_read(ch, out + got,
					 sizeof(out) - 1 - got)) > 0)
		got += (size_t)n;
	assert_int_equal(n, 0);
	out[got] = '\0';
	assert_string_equal(out, "hello\n");
	assert_int_equal(libssh2_channel_close(ch), 0);
	assert_int_equal(libssh2_channel_wait_closed(ch), 0);
	assert_int_equal(libssh2_channel_get_exit_status(ch), 0);
	libssh2_channel_free(ch);
	th_ssh_close(&c);
}

static void sftp_write_all(LIBSSH2_SFTP_HANDLE *h, const unsigned char *p,
			   size_t len)
{
	while (len > 0) {
		ssize_t n = libssh2_sftp_write(h, (const char *)p, len);

		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static void test_sftp_offsets(void **state)
{
	unsigned char *want, back[64];
	LIBSSH2_SFTP_ATTRIBUTES attrs;
	LIBSSH2_SFTP_HANDLE *h;
	LIBSSH2_SFTP *sftp;
	char path[700], *disk;
	size_t i, got, len;
	struct th_ssh c;
	int n;

	(void)state;
	n = snprintf(path, sizeof(path), "%s/sftp-test.bin", g_sshd.dir);
	assert_true(n > 0 && (size_t)n < sizeof(path));
	want = malloc(SFTP_SIZE);
	assert_non_null(want);
	for (i = 0; i < SFTP_SIZE; i++)
		want[i] = pattern(i);

	assert_int_equal(th_ssh_open(&c, g_sshd.port, 10000), 0);
	assert_int_equal(th_ssh_login(&c, &g_sshd, g_sshd.known_hosts, 1), 0);
	sftp = libssh2_sftp_init(c.session);
	assert_non_null(sftp);

	h = libssh2_sftp_open(sftp, path, LIBSSH2_FXF_WRITE |
			      LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC, 0600);
	assert_non_null(h);
	sftp_write_all(h, want, SFTP_SIZE);
	assert_int_equal(libssh2_sftp_close(h), 0);

	/* Rewrite a few bytes in the middle, as a resumed upload would. */
	h = libssh2_sftp_open(sftp, path, LIBSSH2_FXF_WRITE, 0);
	assert_non_null(h);
	libssh2_sftp_seek64(h, PATCH_AT);
	sftp_write_all(h, (const unsigned char *)PATCH, strlen(PATCH));
	assert_int_equal(libssh2_sftp_close(h), 0);
	memcpy(want + PATCH_AT, PATCH, strlen(PATCH));

	h = libssh2_sftp_open(sftp, path, LIBSSH2_FXF_READ, 0);
	assert_non_null(h);
	assert_int_equal(libssh2_sftp_fstat(h, &attrs), 0);
	assert_true(attrs.flags & LIBSSH2_SFTP_ATTR_SIZE);
	assert_int_equal(attrs.filesize, SFTP_SIZE);
	libssh2_sftp_seek64(h, PATCH_AT - 10);
	for (got = 0; got < sizeof(back);) {
		ssize_t r = libssh2_sftp_read(h, (char *)back + got,
					      sizeof(back) - got);

		assert_true(r > 0);
		got += (size_t)r;
	}
	assert_memory_equal(back, want + PATCH_AT - 10, sizeof(back));
	assert_int_equal(libssh2_sftp_close(h), 0);
	assert_int_equal(libssh2_sftp_shutdown(sftp), 0);
	th_ssh_close(&c);

	disk = th_slurp(path, &len);
	assert_non_null(disk);
	assert_int_equal(len, SFTP_SIZE);
	assert_memory_equal(disk, want, SFTP_SIZE);
	free(disk);
	free(want);
}

static void test_wrong_host_key_refused(void **state)
{
	char dir[512], key[600], pub[700], kh[700], line[1024];
	char *argv[] = { "ssh-keygen", "-q", "-t", "ed25519", "-N", "",
			 "-C", "impostor", "-f", key, NULL };
	char *text, *sp;
	struct th_ssh c;
	int n;

	(void)state;
	assert_int_equal(th_tmpdir("sshkey", dir, sizeof(dir)), 0);
	n = snprintf(key, sizeof(key), "%s/other", dir);
	assert_true(n > 0 && (size_t)n < sizeof(key));
	assert_int_equal(th_run(argv), 0);
	n = snprintf(pub, sizeof(pub), "%s.pub", key);
	assert_true(n > 0 && (size_t)n < sizeof(pub));
	text = th_slurp(pub, NULL);
	assert_non_null(text);
	/* "ssh-ed25519 AAAA... impostor": keep the type and the key. */
	sp = strchr(text, ' ');
	assert_non_null(sp);
	sp = strchr(sp + 1, ' ');
	assert_non_null(sp);
	*sp = '\0';
	n = snprintf(line, sizeof(line), "[127.0.0.1]:%d %s\n", g_sshd.port,
		     text);
	free(text);
	assert_true(n > 0 && (size_t)n < sizeof(line));
	n = snprintf(kh, sizeof(kh), "%s/known_hosts", dir);
	assert_true(n > 0 && (size_t)n < sizeof(kh));
	assert_int_equal(th_write_file(kh, line, strlen(line)), 0);

	assert_int_equal(th_ssh_open(&c, g_sshd.port, 10000), 0);
	assert_int_equal(th_ssh_check_host_key(&c, &g_sshd, kh, 1),
			 LIBSSH2_KNOWNHOST_CHECK_MISMATCH);
	assert_int_equal(th_ssh_login(&c, &g_sshd, kh, 1), -2);
	assert_int_equal(libssh2_userauth_authenticated(c.session), 0);
	th_ssh_close(&c);

	/* The right line still matches on a fresh connection. */
	assert_int_equal(th_ssh_open(&c, g_sshd.port, 10000), 0);
	assert_int_equal(th_ssh_login(&c, &g_sshd, g_sshd.known_hosts, 1), 0);
	th_ssh_close(&c);
	assert_int_equal(th_rmtree(dir), 0);
}

/* Last: it stops the shared sshd. */
static void test_stop_refuses_connections(void **state)
{
	char dir[512];
	int port = g_sshd.port, fd;

	(void)state;
	memcpy(dir, g_sshd.dir, sizeof(dir));
	th_sshd_stop(&g_sshd);
	fd = th_tcp_connect(port);
	if (fd >= 0)
		close(fd);
	assert_true(fd < 0);
	assert_int_not_equal(access(dir, F_OK), 0);
	th_sshd_stop(&g_sshd); /* twice is harmless */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_fills_fields),
		cmocka_unit_test(test_login_and_exec),
		cmocka_unit_test(test_sftp_offsets),
		cmocka_unit_test(test_wrong_host_key_refused),
		cmocka_unit_test(test_stop_refuses_connections),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
