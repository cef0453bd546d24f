/* proxy: start, signal and stop mb-faultproxy for the tests. */
#include "proxy.h"
#include "th.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAULTPROXY MB_BINARY_DIR "/tests/mb-faultproxy"

/* More than any test needs; argv is built on the stack. */
#define MAX_EXTRA 32

int th_proxy_start(struct th_proxy *p, const char *to_host, int to_port,
		   const char *const extra_args[])
{
	char *argv[6 + MAX_EXTRA + 1];
	char to[320], line[64];
	size_t n = 0, i;
	char *end;
	long port;
	int fd, len;

	p->pid = 0;
	p->port = 0;
	len = snprintf(to, sizeof(to), "%s:%d", to_host, to_port);
	if (len < 0 || (size_t)len >= sizeof(to)) {
		fprintf(stderr, "th: proxy target '%s' too long\n", to_host);
		return -1;
	}
	argv[n++] = FAULTPROXY;
	argv[n++] = "--listen";
	argv[n++] = "0";
	argv[n++] = "--to";
	argv[n++] = to;
	for (i = 0; extra_args != NULL && extra_args[i] != NULL; i++) {
		if (i == MAX_EXTRA) {
			fprintf(stderr, "th: too many proxy arguments\n");
			return -1;
		}
		/* execvp takes char *const[] but does not write to them */
		argv[n++] = (char *)(uintptr_t)extra_args[i];
	}
	argv[n] = NULL;
	if (th_spawn(argv, &p->pid, &fd) != 0) {
		fprintf(stderr, "th: cannot start '%s'\n", FAULTPROXY);
		return -1;
	}
	len = th_read_line(fd, line, sizeof(line), 10000);
	close(fd);
	port = 0;
	if (len > 5 && strncmp(line, "PORT=", 5) == 0) {
		errno = 0;
		port = strtol(line + 5, &end, 10);
		if (errno != 0 || end == line + 5 || *end != '\0' ||
		    port <= 0 || port > 65535)
			port = 0;
	}
	if (port == 0) {
		fprintf(stderr, "th: '%s' did not say its port\n", FAULTPROXY);
		th_proxy_stop(p);
		return -1;
	}
	p->port = (int)port;
	return 0;
}

int th_proxy_cut_all(struct th_proxy *p)
{
	if (p->pid <= 0 || kill(p->pid, SIGUSR1) != 0)
		return -1;
	return 0;
}

void th_proxy_stop(struct th_proxy *p)
{
	if (p->pid > 0)
		th_stop(p->pid, 2000);
	p->pid = 0;
	p->port = 0;
}
