/*
 * sshd: runs tests/harness/sshd.sh, which does the work (keys, config,
 * starting and stopping sshd) so that shell scripts and demos get the same
 * server, and parses the KEY=VALUE lines it prints into struct th_sshd.
 */
#include "sshd.h"
#include "th.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SSHD_SH MB_SOURCE_DIR "/tests/harness/sshd.sh"

/* sshd.sh waits up to 10 s for sshd and may retry a taken port. */
#define SSHD_START_MS 60000

static int set_str(char *dst, size_t cap, const char *val)
{
	size_t len = strlen(val);

	if (len == 0 || len >= cap)
		return -1;
	memcpy(dst, val, len + 1);
	return 0;
}

static int set_long(long *dst, const char *val, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(val, &end, 10);
	if (errno != 0 || end == val || *end != '\0' || v <= 0 || v > max)
		return -1;
	*dst = v;
	return 0;
}

static int parse_line(struct th_sshd *s, char *line)
{
	char *eq = strchr(line, '=');
	const char *val;
	long v;

	if (eq == NULL)
		return -1;
	*eq = '\0';
	val = eq + 1;
	if (strcmp(line, "HOST") == 0)
		return set_str(s->host, sizeof(s->host), val);
	if (strcmp(line, "USER") == 0)
		return set_str(s->user, sizeof(s->user), val);
	if (strcmp(line, "KEY") == 0)
		return set_str(s->key, sizeof(s->key), val);
	if (strcmp(line, "PUBKEY") == 0)
		return set_str(s->pubkey, sizeof(s->pubkey), val);
	if (strcmp(line, "KNOWN_HOSTS") == 0)
		return set_str(s->known_hosts, sizeof(s->known_hosts), val);
	if (strcmp(line, "PORT") == 0) {
		if (set_long(&v, val, 65535) != 0)
			return -1;
		s->port = (int)v;
		return 0;
	}
	if (strcmp(line, "PID") == 0) {
		if (set_long(&v, val, INT_MAX) != 0)
			return -1;
		s->pid = (pid_t)v;
		return 0;
	}
	return 0; /* DIR, LOG, HOSTKEY_PUB and anything added later */
}

/* Waits for the script after its stdout closed; kills it if it hangs. */
static int reap(pid_t pid, int timeout_ms)
{
	long long end = th_now_ms() + timeout_ms;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		if (r < 0)
			return -1;
		if (th_now_ms() >= end) {
			th_stop(pid, 1000);
			return -1;
		}
		usleep(10 * 1000);
	}
}

static int read_known_hosts_line(struct th_sshd *s)
{
	char *text = th_slurp(s->known_hosts, NULL);
	char *nl;
	int rc;

	if (text == NULL)
		return -1;
	nl = strchr(text, '\n');
	if (nl != NULL)
		*nl = '\0';
	rc = set_str(s->known_hosts_line, sizeof(s->known_hosts_line), text);
	free(text);
	return rc;
}

int th_sshd_start(struct th_sshd *s)
{
	char *argv[] = { "bash", SSHD_SH, "start", s->dir, NULL };
	long long end;
	char line[1024];
	pid_t script;
	int fd, bad = 0;

	memset(s, 0, sizeof(*s));
	if (th_tmpdir("sshd", s->dir, sizeof(s->dir)) != 0)
		return -1;
	if (th_spawn(argv, &script, &fd) != 0) {
		fprintf(stderr, "th: cannot run '%s'\n", SSHD_SH);
		goto fail;
	}
	end = th_now_ms() + SSHD_START_MS;
	for (;;) {
		long long left = end - th_now_ms();

		if (left <= 0 ||
		    th_read_line(fd, line, sizeof(line), (int)left) < 0)
			break;
		if (parse_line(s, line) != 0) {
			fprintf(stderr, "th: sshd.sh printed a bad line '%s'\n",
				line);
			bad = 1;
		}
	}
	close(fd);
	if (reap(script, 5000) != 0) {
		fprintf(stderr, "th: '%s start %s' failed\n", SSHD_SH, s->dir);
		goto fail;
	}
	if (bad || s->port <= 0 || s->pid <= 0 || s->host[0] == '\0' ||
	    s->user[0] == '\0' || s->key[0] == '\0' || s->pubkey[0] == '\0' ||
	    s->known_hosts[0] == '\0') {
		fprintf(stderr, "th: sshd.sh did not say where sshd is\n");
		goto fail;
	}
	if (read_known_hosts_line(s) != 0) {
		fprintf(stderr, "th: cannot read '%s'\n", s->known_hosts);
		goto fail;
	}
	return 0;
fail:
	th_sshd_stop(s);
	return -1;
}

void th_sshd_stop(struct th_sshd *s)
{
	char *argv[] = { "bash", SSHD_SH, "stop", s->dir, NULL };

	if (s->dir[0] == '\0')
		return;
	if (th_run(argv) != 0)
		fprintf(stderr, "th: '%s stop %s' failed\n", SSHD_SH, s->dir);
	if (th_rmtree(s->dir) != 0)
		fprintf(stderr, "th: cannot remove '%s'\n", s->dir);
	s->dir[0] = '\0';
	s->pid = 0;
}

int th_sshd_client(const struct th_sshd *s, const char *home)
{
	char path[700], text[2048];

	snprintf(path, sizeof(path), "%s/.ssh", home);
	if ((mkdir(home, 0700) != 0 && errno != EEXIST) ||
	    (mkdir(path, 0700) != 0 && errno != EEXIST)) {
		fprintf(stderr, "cannot make '%s': %s\n", path, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/.ssh/config", home);
	snprintf(text, sizeof(text), "Host box1\n  HostName 127.0.0.1\n  Port %d\n"
		 "  User %s\n  IdentityFile %s\n", s->port, s->user, s->key);
	if (th_write_file(path, text, strlen(text)) != 0) {
		fprintf(stderr, "cannot write '%s'\n", path);
		return -1;
	}
	setenv("HOME", home, 1);
	unsetenv("SSH_AUTH_SOCK");
	return 0;
}

const char *th_fingerprint(const char *text, char *fp, size_t cap)
{
	const char *p = strstr(text, "SHA256:");

	snprintf(fp, cap, "%.*s", p ? (int)strcspn(p, " )\n,") : 0,
		 p ? p : "");
	return fp;
}

int th_worker_add(char **out, const char *fmt, ...)
{
	char args[4096], fp[80];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	rc = th_sh(out, "%s/mibera-job worker add %s", MB_BINARY_DIR, args);
	if (rc != 0 && th_fingerprint(*out, fp, sizeof(fp))[0] != '\0') {
		free(*out);
		rc = th_sh(out, "%s/mibera-job worker add %s --accept-host-key %s",
			   MB_BINARY_DIR, args, fp);
	}
	return rc;
}
