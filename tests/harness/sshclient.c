/* sshclient: libssh2 connect, host-key check and login for harness tests. */
#include "sshclient.h"

#include <string.h>
#include <unistd.h>

#include "th.h"

int th_ssh_open(struct th_ssh *c, int port, long timeout_ms)
{
	c->session = NULL;
	c->fd = th_tcp_connect(port);
	if (c->fd < 0)
		return -1;
	c->session = libssh2_session_init();
	if (c->session == NULL)
		goto fail;
	libssh2_session_set_blocking(c->session, 1);
	libssh2_session_set_timeout(c->session, timeout_ms);
	if (libssh2_session_handshake(c->session, c->fd) != 0)
		goto fail;
	return 0;
fail:
	th_ssh_close(c);
	return -1;
}

int th_ssh_check_host_key(struct th_ssh *c, const struct th_sshd *s,
			  const char *src, int is_file)
{
	LIBSSH2_KNOWNHOSTS *kh;
	struct libssh2_knownhost *found = NULL;
	const char *key;
	size_t len;
	int type, mask, rc;

	key = libssh2_session_hostkey(c->session, &len, &type);
	if (key == NULL || type != LIBSSH2_HOSTKEY_TYPE_ED25519)
		return LIBSSH2_KNOWNHOST_CHECK_FAILURE;
	kh = libssh2_knownhost_init(c->session);
	if (kh == NULL)
		return LIBSSH2_KNOWNHOST_CHECK_FAILURE;
	if (is_file)
		rc = libssh2_knownhost_readfile(kh, src,
						LIBSSH2_KNOWNHOST_FILE_OPENSSH);
	else
		rc = libssh2_knownhost_readline(kh, src, strlen(src),
						LIBSSH2_KNOWNHOST_FILE_OPENSSH);
	if (rc < 0) {
		libssh2_knownhost_free(kh);
		return LIBSSH2_KNOWNHOST_CHECK_FAILURE;
	}
	mask = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
	       LIBSSH2_KNOWNHOST_KEY_ED25519;
	rc = libssh2_knownhost_checkp(kh, s->host, s->port, key, len, mask,
				      &found);
	libssh2_knownhost_free(kh);
	return rc;
}

int th_ssh_login(struct th_ssh *c, const struct th_sshd *s, const char *src,
		 int is_file)
{
	if (th_ssh_check_host_key(c, s, src, is_file) !=
	    LIBSSH2_KNOWNHOST_CHECK_MATCH)
		return -2;
	if (libssh2_userauth_publickey_fromfile_ex(
		    c->session, s->user, (unsigned)strlen(s->user), s->pubkey,
		    s->key, "") != 0)
		return -1;
	return libssh2_userauth_authenticated(c->session) ? 0 : -1;
}

void th_ssh_close(struct th_ssh *c)
{
	if (c->session != NULL) {
		libssh2_session_disconnect(c->session, "bye");
		libssh2_session_free(c->session);
	}
	if (c->fd >= 0)
		close(c->fd);
	c->session = NULL;
	c->fd = -1;
}
