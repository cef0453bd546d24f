/*
 * sshd: an OpenSSH sshd on 127.0.0.1 for the tests, started by sshd.sh as the
 * current user in a temporary directory with a throwaway host key and user
 * key. The coordinator's SSH code connects to it as it would to a worker.
 */
#ifndef MB_TH_SSHD_H
#define MB_TH_SSHD_H

#include <stddef.h>
#include <sys/types.h>

struct th_sshd {
	char dir[512];		/* temporary directory holding everything */
	char host[64];		/* "127.0.0.1" */
	int port;
	char user[64];		/* the current user, the only one allowed in */
	char key[600];		/* user private key (ed25519, no passphrase) */
	char pubkey[600];	/* its public key file */
	char known_hosts[600];	/* known_hosts file with the host's key */
	char known_hosts_line[1024]; /* "[127.0.0.1]:PORT ssh-ed25519 AAAA..." */
	pid_t pid;		/* the listening sshd (not our child) */
};

/* Makes a temporary directory, starts sshd.sh in it and fills s. Returns 0,
 * or -1 after printing why (nothing is left running or on disk then). */
int th_sshd_start(struct th_sshd *s);

/* Stops the sshd and removes its directory. Safe to call twice, and on a
 * zeroed struct. Sessions already open keep their own sshd processes. */
void th_sshd_stop(struct th_sshd *s);

/* Makes home the client's home for s: HOME set to it, no ssh-agent, and
 * home/.ssh/config naming s as host "box1" (its port, user and key), as a
 * person's own config names a worker. Returns 0, or -1 after printing why. */
int th_sshd_client(const struct th_sshd *s, const char *home);

/* The host key fingerprint ("SHA256:...") that text (mibera-job's refusal
 * of an unknown key) names, into fp; "" when it names none. */
const char *th_fingerprint(const char *text, char *fp, size_t cap);

/* Runs `mibera-job worker add ARGS` (ARGS from fmt...); when it refuses
 * an unknown host key, runs it again accepting the fingerprint it named,
 * as a person who checked it would. Returns the last exit code; *out gets
 * its output (caller frees). */
int th_worker_add(char **out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
