/*
 * faultproxy: mb-faultproxy proves each of its knobs against a source
 * server inside this test that sends a known 4 MiB pattern on every
 * connection (exact relay, rate, latency, cut, corrupt, cut-all, --once),
 * then carries SSH: libssh2 through the proxy to the loopback sshd logs in,
 * and a cut mid-transfer ends the session with an error, not a hang.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libssh2.h>

#include "proxy.h"
#include "sshclient.h"
#include "sshd.h"
#include "th.h"

#define SRC_SIZE (4u << 20)
#define MiB (1u << 20)

struct source {
	int fd, port;
	pthread_t tid;
	atomic_int stop;
	atomic_int active;	/* connection threads still sending */
};

static struct source g_src;
static struct th_sshd g_sshd;
static unsigned char *g_pattern;

static unsigned char pattern(size_t i)
{
	return (unsigned char)(((uint32_t)i * 2654435761u) >> 24);
}

static void *send_pattern(void *arg)
{
	int fd = (int)(intptr_t)arg;
	size_t off = 0;

	while (off < SRC_SIZE) {
		ssize_t n = send(fd, g_pattern + off, SRC_SIZE - off,
				 MSG_NOSIGNAL);

		if (n <= 0)
			break; /* the proxy cut or the client left */
		off += (size_t)n;
	}
	close(fd);
	atomic_fetch_sub(&g_src.active, 1);
	return NULL;
}

static void *source_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&g_src.stop)) {
		struct pollfd pf = { .fd = g_src.fd, .events = POLLIN };
		pthread_t tid;
		int fd;

		if (poll(&pf, 1, 50) <= 0)
			continue;
		fd = accept(g_src.fd, NULL, NULL);
		if (fd < 0)
			continue;
		atomic_fetch_add(&g_src.active, 1);
		if (pthread_create(&tid, NULL, send_pattern,
				   (void *)(intptr_t)fd) != 0) {
			close(fd);
			atomic_fetch_sub(&g_src.active, 1);
			continue;
		}
		pthread_detach(tid);
	}
	return NULL;
}

static int source_start(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	g_src.fd = socket(AF_INET, SOCK_STREAM, 0);
	if (g_src.fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(g_src.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(g_src.fd, 64) != 0 ||
	    getsockname(g_src.fd, (struct sockaddr *)&sa, &len) != 0)
		return -1;
	g_src.port = ntohs(sa.sin_port);
	atomic_store(&g_src.stop, 0);
	atomic_store(&g_src.active, 0);
	return pthread_create(&g_src.tid, NULL, source_main, NULL) == 0 ? 0 :
									   -1;
}

static void source_stop(void)
{
	long long end = th_now_ms() + 5000;

	atomic_store(&g_src.stop, 1);
	pthread_join(g_src.tid, NULL);
	close(g_src.fd);
	while (atomic_load(&g_src.active) > 0 && th_now_ms() < end)
		usleep(10 * 1000);
}

struct result {
	size_t len;		/* bytes received */
	long long first_ms;	/* connect to first byte, -1 if none */
	long long total_ms;	/* connect to the end of reading */
	int err;		/* errno that ended the stream, 0 for EOF/limit */
};

/* Reads from fd into buf until EOF, an error or limit bytes. */
static void read_stream(int fd, unsigned char *buf, size_t limit,
			struct result *r)
{
	long long t0 = th_now_ms();

	memset(r, 0, sizeof(*r));
	r->first_ms = -1;
	while (r->len < limit) {
		ssize_t n = recv(fd, buf + r->len, limit - r->len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r->err = errno;
		if (n <= 0)
			break;
		if (r->first_ms < 0)
			r->first_ms = th_now_ms() - t0;
		r->len += (size_t)n;
	}
	r->total_ms = th_now_ms() - t0;
}

/* Connects through a proxy started with args and reads up to limit bytes
 * of the pattern. buf must hold limit bytes. */
static void fetch(const char *const args[], unsigned char *buf, size_t limit,
		  struct result *r)
{
	struct th_proxy p;
	int fd;

	assert_int_equal(th_proxy_start(&p, "127.0.0.1", g_src.port, args), 0);
	fd = th_tcp_connect(p.port);
	assert_true(fd >= 0);
	read_stream(fd, buf, limit, r);
	close(fd);
	th_proxy_stop(&p);
}

static int group_setup(void **state)
{
	size_t i;

	(void)state;
	g_pattern = malloc(SRC_SIZE);
	if (g_pattern == NULL)
		return -1;
	for (i = 0; i < SRC_SIZE; i++)
		g_pattern[i] = pattern(i);
	if (libssh2_init(0) != 0 || source_start() != 0)
		return -1;
	return th_sshd_start(&g_sshd);
}

static int group_teardown(void **state)
{
	(void)state;
	th_sshd_stop(&g_sshd);
	source_stop();
	libssh2_exit();
	free(g_pattern);
	return 0;
}

static void test_plain_relay_is_exact(void **state)
{
	unsigned char *buf = malloc(SRC_SIZE);
	struct result r;

	(void)state;
	assert_non_null(buf);
	fetch(NULL, buf, SRC_SIZE, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.len, SRC_SIZE);
	assert_memory_equal(buf, g_pattern, SRC_SIZE);
	free(buf);
}

static void test_rate_limits_bandwidth(void **state)
{
	const char *const args[] = { "--rate", "1048576", NULL };
	unsigned char *buf = malloc(2 * MiB);
	struct result r;

	(void)state;
	assert_non_null(buf);
	fetch(args, buf, 2 * MiB, &r);
	assert_int_equal(r.len, 2 * MiB);
	assert_memory_equal(buf, g_pattern, 2 * MiB);
	print_message("2 MiB at 1 MiB/s took %lld ms\n", r.total_ms);
	assert_true(r.total_ms >= 1800);
	assert_true(r.total_ms <= 4000);
	free(buf);
}

static void test_latency_delays_first_byte(void **state)
{
	const char *const args[] = { "--latency", "200", NULL };
	unsigned char *buf = malloc(MiB);
	struct result r;

	(void)state;
	assert_non_null(buf);
	fetch(args, buf, MiB, &r);
	assert_int_equal(r.len, MiB);
	assert_memory_equal(buf, g_pattern, MiB);
	print_message("first byte after %lld ms\n", r.first_ms);
	assert_true(r.first_ms >= 200);
	assert_true(r.first_ms < 1500);
	free(buf);
}

static void test_cut_after_delivers_exactly_n(void **state)
{
	const char *const args[] = { "--cut-after", "100000", NULL };
	unsigned char *buf = malloc(SRC_SIZE);
	struct result r;

	(void)state;
	assert_non_null(buf);
	fetch(args, buf, SRC_SIZE, &r);
	assert_int_equal(r.len, 100000);
	assert_true(r.err == 0 || r.err == ECONNRESET);
	assert_memory_equal(buf, g_pattern, 100000);
	free(buf);
}

static void test_corrupt_after_flips_one_byte(void **state)
{
	const char *const args[] = { "--corrupt-after", "1234567", NULL };
	unsigned char *buf = malloc(SRC_SIZE);
	struct result r;
	size_t i, diffs = 0;

	(void)state;
	assert_non_null(buf);
	fetch(args, buf, SRC_SIZE, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.len, SRC_SIZE);
	for (i = 0; i < SRC_SIZE; i++)
		diffs += buf[i] != g_pattern[i];
	assert_int_equal(diffs, 1);
	assert_int_equal(buf[1234567], g_pattern[1234567] ^ 0xff);
	free(buf);
}

static void test_up_direction_leaves_down_alone(void **state)
{
	const char *const args[] = { "--cut-after", "10", "--corrupt-after",
				     "5", "--direction", "up", NULL };
	unsigned char *buf = malloc(SRC_SIZE);
	struct result r;

	(void)state;
	assert_non_null(buf);
	fetch(args, buf, SRC_SIZE, &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.len, SRC_SIZE);
	assert_memory_equal(buf, g_pattern, SRC_SIZE);
	free(buf);
}

static void test_cut_all_resets_open_connections(void **state)
{
	const char *const args[] = { "--rate", "262144", NULL };
	unsigned char *buf = malloc(SRC_SIZE);
	struct th_proxy p;
	struct result r;
	int fd;

	(void)state;
	assert_non_null(buf);
	assert_int_equal(th_proxy_start(&p, "127.0.0.1", g_src.port, args), 0);
	fd = th_tcp_connect(p.port);
	assert_true(fd >= 0);
	read_stream(fd, buf, 50000, &r);
	assert_int_equal(r.len, 50000);
	assert_int_equal(th_proxy_cut_all(&p), 0);
	read_stream(fd, buf + 50000, SRC_SIZE - 50000, &r);
	close(fd);
	assert_true(r.total_ms < 2000);
	assert_true(50000 + r.len < SRC_SIZE);
	assert_memory_equal(buf, g_pattern, 50000 + r.len);

	/* The proxy itself goes on serving. */
	fd = th_tcp_connect(p.port);
	assert_true(fd >= 0);
	read_stream(fd, buf, 1000, &r);
	close(fd);
	assert_int_equal(r.len, 1000);
	th_proxy_stop(&p);
	free(buf);
}

static void test_once_exits_after_one_connection(void **state)
{
	const char *const args[] = { "--once", NULL };
	unsigned char *buf = malloc(SRC_SIZE);
	struct th_proxy p;
	struct result r;
	long long end;
	int fd, status;
	pid_t w = 0;

	(void)state;
	assert_non_null(buf);
	assert_int_equal(th_proxy_start(&p, "127.0.0.1", g_src.port, args), 0);
	fd = th_tcp_connect(p.port);
	assert_true(fd >= 0);
	read_stream(fd, buf, SRC_SIZE, &r);
	close(fd);
	assert_int_equal(r.len, SRC_SIZE);
	end = th_now_ms() + 3000;
	while (th_now_ms() < end && (w = waitpid(p.pid, &status, WNOHANG)) == 0)
		usleep(10 * 1000);
	assert_int_equal(w, p.pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	p.pid = 0;
	th_proxy_stop(&p);
	free(buf);
}

/* Logs in to the sshd through the proxy on port, checking its host key as
 * the sshd's own host:port. */
static int ssh_login(struct th_ssh *c, int port, long timeout_ms)
{
	if (th_ssh_open(c, port, timeout_ms) != 0)
		return -1;
	if (th_ssh_login(c, &g_sshd, g_sshd.known_hosts, 1) != 0) {
		th_ssh_close(c);
		return -1;
	}
	return 0;
}

static void test_ssh_through_proxy(void **state)
{
	const char *const args[] = { "--latency", "5", NULL };
	LIBSSH2_CHANNEL *ch;
	struct th_proxy p;
	struct th_ssh c;
	char out[64];
	size_t got = 0;
	ssize_t n;

	(void)state;
	assert_int_equal(th_proxy_start(&p, g_sshd.host, g_sshd.port, args),
			 0);
	assert_int_equal(ssh_login(&c, p.port, 10000), 0);
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
	th_proxy_stop(&p);
}

static void test_ssh_cut_fails_fast(void **state)
{
	const char *const args[] = { "--cut-after", "200000", NULL };
	LIBSSH2_CHANNEL *ch;
	struct th_proxy p;
	struct th_ssh c;
	static char buf[32768];
	long long t0, ms;
	size_t got = 0;
	ssize_t n;

	(void)state;
	assert_int_equal(th_proxy_start(&p, g_sshd.host, g_sshd.port, args),
			 0);
	assert_int_equal(ssh_login(&c, p.port, 5000), 0);
	ch = libssh2_channel_open_session(c.session);
	assert_non_null(ch);
	assert_int_equal(libssh2_channel_exec(ch, "head -c 50000000 /dev/zero"),
			 0);
	t0 = th_now_ms();
	while ((n = libssh2_channel_read(ch, buf, sizeof(buf))) > 0)
		got += (size_t)n;
	ms = th_now_ms() - t0;
	print_message("cut after %zu bytes of output: error %zd in %lld ms\n",
		      got, n, ms);
	assert_true(n < 0);
	assert_true(n != LIBSSH2_ERROR_TIMEOUT);
	assert_true(got < 200000);
	assert_true(ms < 4000);
	libssh2_channel_free(ch);
	th_ssh_close(&c);
	th_proxy_stop(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_relay_is_exact),
		cmocka_unit_test(test_rate_limits_bandwidth),
		cmocka_unit_test(test_latency_delays_first_byte),
		cmocka_unit_test(test_cut_after_delivers_exactly_n),
		cmocka_unit_test(test_corrupt_after_flips_one_byte),
		cmocka_unit_test(test_up_direction_leaves_down_alone),
		cmocka_unit_test(test_cut_all_resets_open_connections),
		cmocka_unit_test(test_once_exits_after_one_connection),
		cmocka_unit_test(test_ssh_through_proxy),
		cmocka_unit_test(test_ssh_cut_fails_fast),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
