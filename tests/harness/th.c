/* th: temporary directories, ports and child processes for the tests. */
#include "th.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"

long long th_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int th_tmpdir(const char *tag, char *out, size_t cap)
{
	const char *base = getenv("TMPDIR");
	int n;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	n = snprintf(out, cap, "%s/mbtest-%s-XXXXXX", base, tag);
	if (n < 0 || (size_t)n >= cap || mkdtemp(out) == NULL) {
		fprintf(stderr, "th: cannot create a temporary directory: %s\n",
			strerror(errno));
		return -1;
	}
	return 0;
}

int th_rmtree(const char *path)
{
	return mb_rmtree(path) == 0 ? 0 : -1;
}

int th_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd, port = -1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

int th_tcp_connect(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((unsigned short)port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int th_wait_port(int port, int timeout_ms)
{
	long long end = th_now_ms() + timeout_ms;

	do {
		int fd = th_tcp_connect(port);

		if (fd >= 0) {
			close(fd);
			return 0;
		}
		usleep(20 * 1000);
	} while (th_now_ms() < end);
	fprintf(stderr, "th: nothing listens on 127.0.0.1:%d after %d ms\n",
		port, timeout_ms);
	return -1;
}

int th_spawn(char *const argv[], pid_t *pid, int *out_fd)
{
	int p[2] = { -1, -1 };
	pid_t child;

	if (out_fd != NULL && pipe(p) != 0)
		return -1;
	child = fork();
	if (child < 0) {
		if (out_fd != NULL) {
			close(p[0]);
			close(p[1]);
		}
		return -1;
	}
	if (child == 0) {
		setpgid(0, 0);
		if (out_fd != NULL) {
			dup2(p[1], STDOUT_FILENO);
			close(p[0]);
			close(p[1]);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "th: cannot run '%s': %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	setpgid(child, child);
	if (out_fd != NULL) {
		close(p[1]);
		fcntl(p[0], F_SETFD, FD_CLOEXEC);
		*out_fd = p[0];
	}
	*pid = child;
	return 0;
}

int th_read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
	long long end = th_now_ms() + timeout_ms;
	size_t n = 0;

	while (n + 1 < cap) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long long left = end - th_now_ms();
		char c;
		ssize_t r;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return -1;
		r = read(fd, &c, 1);
		if (r <= 0)
			return -1;
		if (c == '\n') {
			buf[n] = '\0';
			return (int)n;
		}
		buf[n++] = c;
	}
	return -1;
}

int th_stop(pid_t pid, int timeout_ms)
{
	long long end;
	int status;

	if (pid <= 0)
		return 0;
	kill(-pid, SIGTERM);
	kill(pid, SIGTERM);
	end = th_now_ms() + timeout_ms;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0)
			return -1;
		if (th_now_ms() >= end) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			if (waitpid(pid, &status, 0) != pid)
				return -1;
			break;
		}
		usleep(10 * 1000);
	}
	kill(-pid, SIGKILL); /* anything the child left in its group */
	return status;
}

int th_run(char *const argv[])
{
	pid_t pid;
	int status;

	if (th_spawn(argv, &pid, NULL) != 0)
		return -1;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

int th_capture(const char *cmd, char **out)
{
	char line[8192], chunk[65536];
	char *buf = NULL, *p;
	size_t len = 0, n;
	FILE *f;
	int st;

	snprintf(line, sizeof(line), "%s 2>&1", cmd);
	*out = NULL;
	f = popen(line, "r");
	if (f == NULL)
		return -1;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		p = realloc(buf, len + n + 1);
		if (p == NULL)
			break;
		buf = p;
		memcpy(buf + len, chunk, n);
		len += n;
	}
	if (buf == NULL)
		buf = calloc(1, 1);
	else
		buf[len] = '\0';
	st = pclose(f);
	*out = buf;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int th_sh(char **out, const char *fmt, ...)
{
	char *cmd, *got = NULL;
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	cmd = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (cmd == NULL) {
		rc = -1;
	} else {
		va_start(ap, fmt);
		vsnprintf(cmd, (size_t)n + 1, fmt, ap);
		va_end(ap);
		rc = th_capture(cmd, &got);
		free(cmd);
	}
	if (got == NULL)
		got = calloc(1, 1);
	if (out != NULL)
		*out = got;
	else
		free(got);
	return rc;
}

int th_prog(const char *prog, const char *args, char **out)
{
	return th_sh(out, "%s/%s %s", MB_BINARY_DIR, prog, args);
}

char *th_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long size;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)size + 1))) {
		if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
			free(buf);
			buf = NULL;
		} else {
			buf[size] = '\0';
			if (len != NULL)
				*len = (size_t)size;
		}
	}
	fclose(f);
	return buf;
}

int th_same_file(const char *a, const char *b)
{
	size_t na, nb;
	char *x = th_slurp(a, &na), *y = th_slurp(b, &nb);
	int same = x != NULL && y != NULL && na == nb && memcmp(x, y, na) == 0;

	free(x);
	free(y);
	return same;
}

int th_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int rc = 0;

	if (f == NULL)
		return -1;
	if (fwrite(data, 1, len, f) != len)
		rc = -1;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

long th_cached_pages(const char *path, size_t off, size_t len, size_t *all)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), n, i;
	unsigned char *vec;
	struct stat st;
	long count = -1;
	void *m;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || off % pg != 0 || off > (size_t)st.st_size) {
		close(fd);
		return -1;
	}
	if (len == 0 || off + len > (size_t)st.st_size)
		len = (size_t)st.st_size - off;
	n = (len + pg - 1) / pg;
	*all = n;
	if (n == 0) {
		close(fd);
		return 0;
	}
	vec = malloc(n);
	m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)off);
	if (vec != NULL && m != MAP_FAILED && mincore(m, len, vec) == 0)
		for (i = 0, count = 0; i < n; i++)
			count += vec[i] & 1;
	if (m != MAP_FAILED)
		munmap(m, len);
	free(vec);
	close(fd);
	return count;
}

int th_on_tmpfs(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && sf.f_type == 0x01021994;
}
