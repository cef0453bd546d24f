/*
 * proxy: runs mb-faultproxy (tests/harness/tools/faultproxy.c) between a
 * test's client and a server, to slow, delay, cut or corrupt the bytes on
 * the way. See that file for the options.
 */
#ifndef MB_TH_PROXY_H
#define MB_TH_PROXY_H

#include <sys/types.h>

struct th_proxy {
	pid_t pid;
	int port;	/* where it listens on 127.0.0.1 */
};

/* Starts the proxy to to_host:to_port on a free port, with extra_args
 * (NULL-terminated, e.g. { "--cut-after", "1000", NULL }; may be NULL) and
 * fills p. Returns 0, or -1 after printing why (nothing left running). */
int th_proxy_start(struct th_proxy *p, const char *to_host, int to_port,
		   const char *const extra_args[]);

/* Resets every connection the proxy holds now (SIGUSR1); it keeps
 * listening. Returns 0, or -1 when the proxy is not running. */
int th_proxy_cut_all(struct th_proxy *p);

/* Stops the proxy and reaps it. Safe on a stopped or zeroed struct. */
void th_proxy_stop(struct th_proxy *p);

#endif
