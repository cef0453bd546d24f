/* provider: the table of providers, and a rented box's host key and
 * onstart script. */
#include "coordinator/provider/provider.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "coordinator/sshconfig.h"

static const struct mb_provider_ops *const providers[] = {
	&mb_vast_ops,
	NULL,
};

static const struct mb_provider_ops *find(const char *name)
{
	size_t i;

	for (i = 0; providers[i] != NULL; i++)
		if (strcmp(providers[i]->name, name) == 0)
			return providers[i];
	return NULL;
}

int mb_provider_known(const char *name)
{
	return name != NULL && find(name) != NULL;
}

int mb_provider_open(const char *name, struct mb_provider **out, char *err,
		     size_t errcap)
{
	const struct mb_provider_ops *ops = find(name);
	struct mb_provider *p;
	int rc;

	*out = NULL;
	if (ops == NULL) {
		snprintf(err, errcap, "unknown provider '%s' (known: vast)", name);
		return MB_EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return MB_ENOMEM;
	p->ops = ops;
	p->max_attempts = 5;
	p->retry_base_ms = 1000;
	rc = ops->open(p, err, errcap);
	if (rc != 0) {
		mb_provider_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void mb_provider_free(struct mb_provider *p)
{
	if (p == NULL)
		return;
	p->ops->release(p);
	if (p->key != NULL) {
		memset(p->key, 0, strlen(p->key));
		free(p->key);
	}
	free(p);
}

const char *mb_provider_errmsg(const struct mb_provider *p)
{
	return p->err;
}

const char *mb_provider_name(const struct mb_provider *p)
{
	return p->ops->name;
}

int mb_provider_search(struct mb_provider *p, const struct mb_offer_query *q,
		       struct mb_offer *offers, size_t cap, size_t *n)
{
	*n = 0;
	return p->ops->search(p, q, offers, cap, n);
}

int mb_provider_create(struct mb_provider *p, const char *offer_id,
		       const struct mb_create_req *req, char *id, size_t cap)
{
	return p->ops->create(p, offer_id, req, id, cap);
}

int mb_provider_show(struct mb_provider *p, const char *id,
		     struct mb_instance *out)
{
	memset(out, 0, sizeof(*out));
	return p->ops->show(p, id, out);
}

int mb_provider_destroy(struct mb_provider *p, const char *id)
{
	return p->ops->destroy(p, id);
}

int mb_provider_list(struct mb_provider *p,
		     int (*fn)(const struct mb_instance *in, void *ctx),
		     void *ctx)
{
	return p->ops->list(p, fn, ctx);
}

/* Runs ssh-keygen (no shell: the path is ours) and waits for it. */
static int keygen(const char *path)
{
	pid_t pid = fork();
	int st = 0;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);

		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
		}
		execlp("ssh-keygen", "ssh-keygen", "-q", "-t", "ed25519", "-N", "",
		       "-C", "mibera-host", "-f", path, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int mb_hostkey_generate(struct mb_hostkey *k, char *err, size_t errcap)
{
	char dir[] = "/tmp/mibera-hostkey-XXXXXX", path[64], pub[80];
	char *priv = NULL, *pubtext = NULL;
	size_t len;
	int rc = MB_EINTERNAL, code;

	memset(k, 0, sizeof(*k));
	if (mkdtemp(dir) == NULL) {
		snprintf(err, errcap, "cannot make a temporary directory for the "
			 "box's host key");
		return MB_EIO;
	}
	snprintf(path, sizeof(path), "%s/key", dir);
	snprintf(pub, sizeof(pub), "%s/key.pub", dir);
	code = keygen(path);
	if (code != 0) {
		snprintf(err, errcap, "ssh-keygen could not make the box's host "
			 "key (exit %d%s)", code, code == 127 ? ": is "
			 "openssh-client installed?" : "");
		rc = MB_EIO;
		goto out;
	}
	if (mb_read_file(path, 16384, &priv, &len) != 0 ||
	    mb_read_file(pub, 4096, &pubtext, &len) != 0) {
		snprintf(err, errcap, "cannot read the host key ssh-keygen made");
		rc = MB_EIO;
		goto out;
	}
	pubtext[strcspn(pubtext, "\r\n")] = '\0';
	if (strlen(pubtext) >= sizeof(k->public_line) ||
	    mb_ssh_pin_fingerprint(pubtext, k->fingerprint) != 0) {
		snprintf(err, errcap, "ssh-keygen made a public key this "
			 "program cannot read");
		rc = MB_EFORMAT;
		goto out;
	}
	snprintf(k->public_line, sizeof(k->public_line), "%s", pubtext);
	k->private_key = priv;
	priv = NULL;
	rc = 0;
out:
	if (priv != NULL) {
		memset(priv, 0, strlen(priv));
		free(priv);
	}
	free(pubtext);
	mb_rmtree(dir);
	return rc;
}

void mb_hostkey_release(struct mb_hostkey *k)
{
	if (k == NULL || k->private_key == NULL)
		return;
	memset(k->private_key, 0, strlen(k->private_key));
	free(k->private_key);
	k->private_key = NULL;
}

/* A public key line is pasted into the script between single quotes. */
static int line_ok(const char *s)
{
	return s[0] != '\0' && strcspn(s, "'\"\\\n\r`$") == strlen(s);
}

int mb_onstart_script(const struct mb_hostkey *k, const char *user_pub,
		      long deadline_min, char **out)
{
	struct mb_buf b;

	*out = NULL;
	if (!line_ok(user_pub) || !line_ok(k->public_line) ||
	    strstr(k->private_key, "MIBERA_KEY_END") != NULL)
		return MB_EINVAL;
	mb_buf_init(&b, 64 * 1024);
	mb_buf_adds(&b,
		"#!/bin/sh\n"
		"# mibera: make this box a worker the coordinator can reach\n"
		"umask 077\n"
		"E=${MIBERA_SSH_ETC:-/etc/ssh}\n"
		"A=${MIBERA_AUTHORIZED_KEYS:-$HOME/.ssh/authorized_keys}\n"
		"mkdir -p \"$E\" \"$(dirname \"$A\")\"\n"
		"cat >\"$E/ssh_host_ed25519_key\" <<'MIBERA_KEY_END'\n");
	mb_buf_adds(&b, k->private_key);
	if (b.len > 0 && b.data[b.len - 1] != '\n')
		mb_buf_adds(&b, "\n");
	mb_buf_addf(&b,
		"MIBERA_KEY_END\n"
		"echo '%s' >\"$E/ssh_host_ed25519_key.pub\"\n"
		"echo '%s' >>\"$A\"\n"
		"chmod 600 \"$E/ssh_host_ed25519_key\" \"$A\"\n"
		"# the coordinator knows this host key before the first connection:\n"
		"# sshd must serve it (a running one rereads its keys on HUP)\n"
		"if [ -z \"${MIBERA_SSH_ETC:-}\" ]; then\n"
		"  pkill -HUP -x sshd 2>/dev/null || service ssh restart >/dev/null 2>&1 || true\n"
		"fi\n"
		"# a deadline on the box itself, in case no coordinator is left to\n"
		"# give it back: stop the instance, else power off\n"
		"mibera_deadline() {\n"
		"  if [ -n \"${MIBERA_DEADLINE_CMD:-}\" ]; then sh -c \"$MIBERA_DEADLINE_CMD\"; return; fi\n"
		"  if [ -n \"${CONTAINER_API_KEY:-}\" ] && [ -n \"${CONTAINER_ID:-}\" ]; then\n"
		"    curl -fsS -X PUT -H \"Authorization: Bearer $CONTAINER_API_KEY\" \\\n"
		"      -H 'Content-Type: application/json' -d '{\"state\":\"stopped\"}' \\\n"
		"      \"https://console.vast.ai/api/v0/instances/$CONTAINER_ID/\" && return\n"
		"  fi\n"
		"  shutdown -h now 2>/dev/null || poweroff 2>/dev/null || kill -TERM 1\n"
		"}\n"
		"(sleep %ld; mibera_deadline) >/dev/null 2>&1 </dev/null &\n"
		"echo \"mibera: deadline armed: %ld minutes\"\n",
		k->public_line, user_pub, deadline_min * 60, deadline_min);
	if (mb_buf_error(&b) != 0) {
		mb_buf_release(&b);
		return MB_ENOMEM;
	}
	*out = mb_buf_detach(&b, NULL);
	return 0;
}
