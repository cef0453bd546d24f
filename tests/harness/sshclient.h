/*
 * sshclient: a bare libssh2 client for the harness's own tests (the sshd
 * and the fault proxy), so they check the servers with libssh2 directly,
 * independent of mibera's transport.
 */
#ifndef MB_TH_SSHCLIENT_H
#define MB_TH_SSHCLIENT_H

#include <libssh2.h>

#include "sshd.h"

struct th_ssh {
	int fd;
	LIBSSH2_SESSION *session;
};

/* TCP connect to 127.0.0.1:port and SSH handshake, blocking calls bounded
 * by timeout_ms. Returns 0, or -1 with nothing left open. */
int th_ssh_open(struct th_ssh *c, int port, long timeout_ms);

/* Checks the session's host key against s's known_hosts file (is_file)
 * or a single known_hosts line src, as the key of s's host:port. Returns
 * a LIBSSH2_KNOWNHOST_CHECK_* value. */
int th_ssh_check_host_key(struct th_ssh *c, const struct th_sshd *s,
			  const char *src, int is_file);

/* What the coordinator does: authenticates with s's user key only after
 * the host key matched. Returns 0, -2 when the key is not the known one,
 * -1 otherwise. */
int th_ssh_login(struct th_ssh *c, const struct th_sshd *s, const char *src,
		 int is_file);

/* Disconnects and closes; safe on a closed client. */
void th_ssh_close(struct th_ssh *c);

#endif
