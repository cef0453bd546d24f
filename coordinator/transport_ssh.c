/*
 * transport_ssh: the transport for a remote worker, over libssh2 1.10
 * (OpenSSL backend). One TCP connection and one SSH session per transport;
 * commands run on exec channels (non-blocking, so stdin, stdout and stderr
 * move together and a `cat` of megabytes never deadlocks), files move over
 * one SFTP session with large buffers. A dropped link is noticed by libssh2's
 * socket errors, by its blocking timeout, or by TCP_USER_TIMEOUT on the
 * keepalives, and the next call reconnects with exponential backoff.
 */
#include "coordinator/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libssh2.h>
#include <libssh2_sftp.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "coordinator/sshconfig.h"

/* libssh2 pipelines SFTP reads up to 4x the buffer it is given, capped at
 * 8 MiB (4x its 2 MiB window): one 2 MiB call already fills the pipe.
 * Measured on loopback (REFERENCE.md): 30 KB reads 15.7 MB/s, 2 MiB reads
 * 225-247 MB/s. Writes are sent as 30,000-byte packets from one call's
 * buffer, so 4 MiB per call keeps the pipe as full. */
#define SFTP_READ_CHUNK (8u << 20)	/* gathered before the sink sees it */
#define SFTP_READ_REQ (2u << 20)	/* asked for in one call */
#define SFTP_WRITE_CHUNK (4u << 20)
/* OpenSSH accepts exec requests of 256 KiB; stay below. */
#define CMDLINE_CAP (200u << 10)
#define EXEC_CHUNK (64u << 10)
#define BACKOFF_MAX_MS 8000
/* How often a waiting exec looks at x->cancel. */
#define CANCEL_POLL_MS 200

#define DEF_CONNECT_MS 15000
#define DEF_IO_MS 60000
#define DEF_KEEPALIVE_S 15
#define DEF_RETRIES 5
#define DEF_BACKOFF_MS 500

struct ssh {
	struct mb_transport base;
	char host[256];	/* what we connect to (after HostName) */
	char user[64];
	int port;
	int n_id;
	char ids[MB_SSH_MAX_IDENTITIES + 4][512];
	char known_hosts[1024];
	char pin_fp[MB_SSH_FP_LEN];
	char accept_fp[MB_SSH_FP_LEN];
	int no_agent;
	int connect_ms, io_ms, keepalive_s, retries, backoff_ms;

	int fd;
	LIBSSH2_SESSION *session;
	LIBSSH2_SFTP *sftp;
	int locked; /* a connection succeeded: the key is base.fingerprint */
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void lib_init(void)
{
	init_rc = libssh2_init(0);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* libssh2 errors that mean the link is gone (or too slow to trust): the
 * session is dropped and the next call reconnects. */
static int is_drop(int rc)
{
	switch (rc) {
	case LIBSSH2_ERROR_SOCKET_NONE:
	case LIBSSH2_ERROR_BANNER_RECV:
	case LIBSSH2_ERROR_BANNER_SEND:
	case LIBSSH2_ERROR_SOCKET_SEND:
	case LIBSSH2_ERROR_SOCKET_DISCONNECT:
	case LIBSSH2_ERROR_SOCKET_TIMEOUT:
	case LIBSSH2_ERROR_SOCKET_RECV:
	case LIBSSH2_ERROR_TIMEOUT:
	case LIBSSH2_ERROR_CHANNEL_CLOSED:
	case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
	case LIBSSH2_ERROR_CHANNEL_FAILURE:
	case LIBSSH2_ERROR_KEX_FAILURE:
	case LIBSSH2_ERROR_DECRYPT:
	/* bytes damaged on the way: the link is no longer to be trusted,
	 * a new one is */
	case LIBSSH2_ERROR_INVALID_MAC:
	case LIBSSH2_ERROR_OUT_OF_BOUNDARY:
		return 1;
	default:
		return 0;
	}
}

static const char *lib_msg(struct ssh *s)
{
	char *msg = NULL;

	if (s->session == NULL)
		return "no session";
	libssh2_session_last_error(s->session, &msg, NULL, 0);
	return msg != NULL ? msg : "unknown";
}

static int sftp_code(unsigned long fx)
{
	switch (fx) {
	case LIBSSH2_FX_NO_SUCH_FILE:
	case LIBSSH2_FX_NO_SUCH_PATH:
		return MB_ENOENT;
	case LIBSSH2_FX_PERMISSION_DENIED:
	case LIBSSH2_FX_WRITE_PROTECT:
		return MB_EPERM;
	case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM:
	case LIBSSH2_FX_QUOTA_EXCEEDED:
		return MB_ENOSPC;
	case LIBSSH2_FX_FILE_ALREADY_EXISTS:
		return MB_EEXIST;
	case LIBSSH2_FX_NO_CONNECTION:
	case LIBSSH2_FX_CONNECTION_LOST:
		return MB_ENETWORK;
	default:
		return MB_EIO;
	}
}

/* Turns a libssh2 error into an mb_err code and a message. It does not
 * tear the session down: callers close their handles first, then
 * with_retry (or exec_lost) drops the session on MB_ENETWORK and
 * MB_ETIMEDOUT. */
static int lib_fail(struct ssh *s, int lrc, const char *what,
		    const char *path)
{
	int rc;

	if (lrc == LIBSSH2_ERROR_SFTP_PROTOCOL && s->sftp != NULL) {
		unsigned long fx = libssh2_sftp_last_error(s->sftp);

		rc = sftp_code(fx);
		return mb_transport_fail(&s->base, rc,
					 "cannot %s '%s' on %s: %s", what,
					 path, s->base.name, mb_strerror(rc));
	}
	if (is_drop(lrc)) {
		rc = lrc == LIBSSH2_ERROR_TIMEOUT ? MB_ETIMEDOUT : MB_ENETWORK;
		return mb_transport_fail(
			&s->base, rc, "cannot %s '%s': connection to %s lost: %s",
			what, path, s->base.name, lib_msg(s));
	}
	rc = lrc == LIBSSH2_ERROR_ALLOC ? MB_ENOMEM : MB_EPROTO;
	return mb_transport_fail(&s->base, rc, "cannot %s '%s' on %s: %s",
				 what, path, s->base.name, lib_msg(s));
}

static void drop(struct ssh *s)
{
	if (s->sftp != NULL) {
		libssh2_sftp_shutdown(s->sftp);
		s->sftp = NULL;
	}
	if (s->session != NULL) {
		libssh2_session_set_blocking(s->session, 1);
		libssh2_session_set_timeout(s->session, 1000);
		libssh2_session_disconnect(s->session, "bye");
		libssh2_session_free(s->session);
		s->session = NULL;
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* ---- connecting ---------------------------------------------------- */

static int tcp_connect(struct ssh *s)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[16];
	int fd = -1, rc, e = 0;
	long long deadline = now_ms() + s->connect_ms;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", s->port);
	rc = getaddrinfo(s->host, port, &hints, &res);
	if (rc != 0)
		return mb_transport_fail(&s->base, MB_ENETWORK,
					 "cannot resolve '%s': %s", s->host,
					 gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct pollfd pf;
		socklen_t el = sizeof(e);
		long long left = deadline - now_ms();
		int one = 1;

		if (left <= 0) {
			e = ETIMEDOUT;
			break;
		}
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		fcntl(fd, F_SETFL, O_NONBLOCK);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
		    errno != EINPROGRESS) {
			e = errno;
			goto next;
		}
		pf.fd = fd;
		pf.events = POLLOUT;
		rc = poll(&pf, 1, (int)left);
		if (rc == 0) {
			e = ETIMEDOUT;
			goto next;
		}
		if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 ||
		    e != 0) {
			if (e == 0)
				e = errno;
			goto next;
		}
		fcntl(fd, F_SETFL, 0);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
#ifdef TCP_USER_TIMEOUT
		{
			/* Unacknowledged data (our keepalives at the least)
			 * older than this ends the connection: a peer that
			 * vanished without a reset is noticed in io_ms, not
			 * in the kernel's 15 minutes. */
			unsigned int ut = (unsigned int)s->io_ms;

			setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut,
				   sizeof(ut));
		}
#endif
		break;
	next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return mb_transport_fail(&s->base,
					 e == ETIMEDOUT ? MB_ETIMEDOUT :
							  MB_ENETWORK,
					 "cannot connect to %s port %d: %s",
					 s->host, s->port, strerror(e));
	s->fd = fd;
	return 0;
}

/* Checks the key the server offered: against the pin when there is one,
 * else against known_hosts; an unknown key only when accept_fp names it;
 * after the first connection, only that connection's key. */
static int check_host_key(struct ssh *s)
{
	const char *key;
	size_t len;
	int type, rc;
	char fp[MB_SSH_FP_LEN], line[sizeof(s->base.host_key_line)];
	LIBSSH2_KNOWNHOSTS *kh = NULL;
	struct libssh2_knownhost *found = NULL;

	key = libssh2_session_hostkey(s->session, &len, &type);
	if (key == NULL)
		return mb_transport_fail(&s->base, MB_EHOSTKEY,
					 "no host key from %s", s->host);
	rc = mb_ssh_fingerprint(key, len, fp);
	if (rc == 0)
		rc = mb_ssh_known_hosts_line(s->host, s->port, key, len, line,
					     sizeof(line));
	if (rc != 0)
		return mb_transport_fail(&s->base, MB_EHOSTKEY,
					 "cannot read the host key of %s: %s",
					 s->host, mb_strerror(rc));
	if (s->locked) {
		if (strcmp(fp, s->base.fingerprint) != 0)
			return mb_transport_fail(
				&s->base, MB_EHOSTKEY,
				"host key for %s changed: pinned %s, server "
				"offers %s",
				s->host, s->base.fingerprint, fp);
		return 0;
	}
	if (s->pin_fp[0] != '\0') {
		if (strcmp(fp, s->pin_fp) != 0)
			return mb_transport_fail(
				&s->base, MB_EHOSTKEY,
				"host key for %s changed: pinned %s, server "
				"offers %s",
				s->host, s->pin_fp, fp);
		goto accept;
	}
	if (s->known_hosts[0] != '\0' && access(s->known_hosts, R_OK) == 0) {
		int mask = LIBSSH2_KNOWNHOST_TYPE_PLAIN |
			   LIBSSH2_KNOWNHOST_KEYENC_RAW;

		switch (type) {
		case LIBSSH2_HOSTKEY_TYPE_RSA:
			mask |= LIBSSH2_KNOWNHOST_KEY_SSHRSA;
			break;
		case LIBSSH2_HOSTKEY_TYPE_DSS:
			mask |= LIBSSH2_KNOWNHOST_KEY_SSHDSS;
			break;
		case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
			mask |= LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
			break;
		case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
			mask |= LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
			break;
		case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
			mask |= LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
			break;
		case LIBSSH2_HOSTKEY_TYPE_ED25519:
			mask |= LIBSSH2_KNOWNHOST_KEY_ED25519;
			break;
		default:
			mask |= LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
			break;
		}
		kh = libssh2_knownhost_init(s->session);
		if (kh == NULL)
			return mb_transport_fail(&s->base, MB_ENOMEM,
						 "out of memory");
		/* a line libssh2 cannot parse (a key type it lacks) makes
		 * readfile fail; the lines before it still count */
		libssh2_knownhost_readfile(kh, s->known_hosts,
					   LIBSSH2_KNOWNHOST_FILE_OPENSSH);
		rc = libssh2_knownhost_checkp(kh, s->host, s->port, key, len,
					      mask, &found);
		if (rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) {
			char old[MB_SSH_FP_LEN] = "(unreadable)";

			if (found != NULL && found->key != NULL &&
			    mb_ssh_b64_fingerprint(found->key, old) != 0)
				snprintf(old, sizeof(old), "(unreadable)");
			libssh2_knownhost_free(kh);
			return mb_transport_fail(
				&s->base, MB_EHOSTKEY,
				"host key for %s changed: pinned %s (in %s), "
				"server offers %s",
				s->host, old, s->known_hosts, fp);
		}
		libssh2_knownhost_free(kh);
		if (rc == LIBSSH2_KNOWNHOST_CHECK_MATCH)
			goto accept;
	}
	if (s->accept_fp[0] != '\0' && strcmp(s->accept_fp, fp) == 0)
		goto accept;
	if (s->accept_fp[0] != '\0')
		return mb_transport_fail(
			&s->base, MB_EHOSTKEY,
			"host key for %s is %s, not the %s you accepted",
			s->host, fp, s->accept_fp);
	return mb_transport_fail(&s->base, MB_EHOSTKEY,
				 "unknown host key for %s: %s (pass "
				 "--accept-host-key %s after checking it)",
				 s->host, fp, fp);
accept:
	snprintf(s->base.fingerprint, sizeof(s->base.fingerprint), "%s", fp);
	memcpy(s->base.host_key_line, line, sizeof(line));
	return 0;
}

static int file_readable(const char *p)
{
	struct stat sb;

	return stat(p, &sb) == 0 && S_ISREG(sb.st_mode) && access(p, R_OK) == 0;
}

static int auth_agent(struct ssh *s)
{
	LIBSSH2_AGENT *agent;
	struct libssh2_agent_publickey *id = NULL, *prev = NULL;
	int ok = 0;

	agent = libssh2_agent_init(s->session);
	if (agent == NULL)
		return 0;
	if (libssh2_agent_connect(agent) == 0 &&
	    libssh2_agent_list_identities(agent) == 0) {
		while (!ok && libssh2_agent_get_identity(agent, &id, prev) == 0) {
			if (libssh2_agent_userauth(agent, s->user, id) == 0)
				ok = 1;
			prev = id;
		}
	}
	libssh2_agent_disconnect(agent);
	libssh2_agent_free(agent);
	return ok;
}

static int authenticate(struct ssh *s)
{
	char tried[600] = "", pub[600];
	size_t tl = 0;
	const char *methods;
	int i, n, lrc;

	methods = libssh2_userauth_list(s->session, s->user,
					(unsigned)strlen(s->user));
	if (methods == NULL) {
		if (libssh2_userauth_authenticated(s->session))
			return 0;
		lrc = libssh2_session_last_errno(s->session);
		if (is_drop(lrc))
			return lib_fail(s, lrc, "log in as", s->user);
		methods = "";
	}
	if (strstr(methods, "publickey") == NULL)
		return mb_transport_fail(&s->base, MB_EAUTH,
					 "%s offers no public key login (only "
					 "'%s')",
					 s->host, methods);
	if (!s->no_agent && getenv("SSH_AUTH_SOCK") != NULL) {
		if (auth_agent(s))
			return 0;
		n = snprintf(tried, sizeof(tried), "ssh-agent");
		tl = n > 0 ? (size_t)n : 0;
	}
	for (i = 0; i < s->n_id; i++) {
		const char *k = s->ids[i];

		if (!file_readable(k))
			continue;
		n = snprintf(pub, sizeof(pub), "%s.pub", k);
		lrc = libssh2_userauth_publickey_fromfile_ex(
			s->session, s->user, (unsigned)strlen(s->user),
			n > 0 && (size_t)n < sizeof(pub) && file_readable(pub) ?
				pub :
				NULL,
			k, NULL);
		if (lrc == 0)
			return 0;
		if (is_drop(lrc))
			return lib_fail(s, lrc, "log in as", s->user);
		if (tl < sizeof(tried)) {
			n = snprintf(tried + tl, sizeof(tried) - tl, "%s%s",
				     tl > 0 ? ", " : "", k);
			if (n > 0)
				tl += (size_t)n;
		}
	}
	return mb_transport_fail(&s->base, MB_EAUTH,
				 "cannot log in to %s as '%s' (tried: %s)",
				 s->host, s->user,
				 tried[0] != '\0' ? tried : "no keys found");
}

/* One connection attempt: TCP, handshake, host key, login. */
static int connect_once(struct ssh *s)
{
	int rc, lrc;

	rc = tcp_connect(s);
	if (rc != 0)
		return rc;
	rc = mb_transport_fail(&s->base, MB_ENOMEM, "out of memory");
	s->session = libssh2_session_init();
	if (s->session == NULL)
		goto out;
	libssh2_session_set_blocking(s->session, 1);
	libssh2_session_set_timeout(s->session, s->connect_ms);
	/* OpenSSH's order, so the key we see is the one ssh recorded in
	 * known_hosts; unsupported names are dropped by libssh2. */
	libssh2_session_method_pref(s->session, LIBSSH2_METHOD_HOSTKEY,
				    "ssh-ed25519,ecdsa-sha2-nistp256,"
				    "ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,"
				    "ssh-rsa");
	/* OpenSSH's own order among the ciphers libssh2 has: AES-128 first,
	 * whose fewer rounds cost a pull of many GB less CPU (libssh2's
	 * order puts AES-256 first) */
	libssh2_session_method_pref(s->session, LIBSSH2_METHOD_CRYPT_CS,
				    "aes128-ctr,aes192-ctr,aes256-ctr,"
				    "aes256-cbc,aes192-cbc,aes128-cbc");
	libssh2_session_method_pref(s->session, LIBSSH2_METHOD_CRYPT_SC,
				    "aes128-ctr,aes192-ctr,aes256-ctr,"
				    "aes256-cbc,aes192-cbc,aes128-cbc");
	lrc = libssh2_session_handshake(s->session, s->fd);
	if (lrc != 0) {
		rc = mb_transport_fail(
			&s->base,
			lrc == LIBSSH2_ERROR_TIMEOUT ? MB_ETIMEDOUT : MB_ENETWORK,
			"ssh handshake with %s failed: %s", s->base.name,
			lib_msg(s));
		goto out;
	}
	rc = check_host_key(s);
	if (rc != 0)
		goto out;
	rc = authenticate(s);
	if (rc != 0)
		goto out;
	libssh2_session_set_timeout(s->session, s->io_ms);
	libssh2_keepalive_config(s->session, 1, (unsigned)s->keepalive_s);
	rc = 0;
out:
	if (rc != 0)
		drop(s);
	return rc;
}

/* Makes sure a session (and SFTP when asked) is up, trying up to 1 + tries
 * times with backoff. Host key and login failures are final: retrying
 * cannot fix them. */
static int ensure(struct ssh *s, int want_sftp, int tries)
{
	int attempt = 0, rc, delay = s->backoff_ms;

	for (;;) {
		rc = 0;
		if (s->session == NULL) {
			rc = connect_once(s);
			if (rc == 0 && s->locked)
				s->base.reconnects++;
			if (rc == 0)
				s->locked = 1;
		}
		if (rc == 0 && want_sftp && s->sftp == NULL) {
			s->sftp = libssh2_sftp_init(s->session);
			if (s->sftp == NULL) {
				int lrc = libssh2_session_last_errno(s->session);

				if (!is_drop(lrc))
					return mb_transport_fail(
						&s->base, MB_EPROTO,
						"cannot start sftp on %s: %s "
						"(does sshd have a Subsystem "
						"sftp line?)",
						s->base.name, lib_msg(s));
				rc = lib_fail(s, lrc, "start sftp on", s->host);
				drop(s);
			}
		}
		if (rc == 0)
			return 0;
		if ((rc != MB_ENETWORK && rc != MB_ETIMEDOUT) ||
		    attempt >= tries)
			return rc;
		sleep_ms(delay);
		delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
		attempt++;
	}
}

/* Runs an idempotent SFTP operation, reconnecting and retrying it after a
 * drop. op keeps its own progress in arg, so a retry resumes; op closes
 * what it opened before it returns. */
static int with_retry(struct ssh *s, int (*op)(struct ssh *, void *),
		      void *arg)
{
	int attempt = 0, rc, delay = s->backoff_ms;

	for (;;) {
		rc = ensure(s, 1, 0);
		if (rc == 0)
			rc = op(s, arg);
		if (rc != MB_ENETWORK && rc != MB_ETIMEDOUT)
			return rc;
		drop(s);
		if (attempt >= s->retries)
			return rc;
		sleep_ms(delay);
		delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
		attempt++;
	}
}

/* ---- exec ---------------------------------------------------------- */

/* Waits for the socket in the direction libssh2 is blocked on. */
static void wait_socket(struct ssh *s, int ms)
{
	struct pollfd pf;
	int dir = libssh2_session_block_directions(s->session);

	pf.fd = s->fd;
	pf.events = 0;
	if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
		pf.events |= POLLIN;
	if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		pf.events |= POLLOUT;
	if (pf.events == 0)
		pf.events = POLLIN;
	pf.revents = 0;
	poll(&pf, 1, ms);
}

struct exec_state {
	struct ssh *s;
	struct mb_exec *x;
	LIBSSH2_CHANNEL *ch;
	long long deadline;	/* command deadline, 0 = none */
	long long step_end;	/* bound on one non-blocking step */
	const char *doing;
};

/* Waits once for a non-blocking libssh2 call; nonzero when the command's
 * deadline, the step bound or a cancel says stop (rc set on the state). */
static int exec_wait(struct exec_state *e, int *rc)
{
	long long now = now_ms();
	int ms = CANCEL_POLL_MS, next = 0;

	if (e->x->cancel != NULL && *e->x->cancel) {
		*rc = mb_transport_fail(&e->s->base, MB_ECANCELLED,
					"'%s' cancelled", e->x->argv[0]);
		return 1;
	}
	if (e->deadline > 0 && now >= e->deadline) {
		*rc = mb_transport_fail(&e->s->base, MB_ETIMEDOUT,
					"'%s' timed out after %d ms",
					e->x->argv[0], e->x->timeout_ms);
		return 1;
	}
	if (e->step_end > 0 && now >= e->step_end) {
		*rc = mb_transport_fail(&e->s->base, MB_ETIMEDOUT,
					"%s on %s timed out", e->doing,
					e->s->base.name);
		drop(e->s);
		return 1;
	}
	if (libssh2_keepalive_send(e->s->session, &next) == 0 && next > 0 &&
	    next * 1000 < ms)
		ms = next * 1000;
	if (e->deadline > 0 && e->deadline - now < ms)
		ms = (int)(e->deadline - now);
	wait_socket(e->s, ms);
	return 0;
}

static int exec_lost(struct exec_state *e, int lrc)
{
	int rc = mb_transport_fail(&e->s->base, MB_ENETWORK,
				   "connection to %s lost while %s '%s': %s",
				   e->s->base.name, e->doing, e->x->argv[0],
				   lib_msg(e->s));

	(void)lrc;
	drop(e->s);
	return rc;
}

static void exec_result(struct exec_state *e)
{
	char *sig = NULL;
	size_t sl = 0;

	libssh2_channel_get_exit_signal(e->ch, &sig, &sl, NULL, NULL, NULL,
					NULL);
	if (sig != NULL && sl > 0) {
		e->x->status = -1;
		snprintf(e->x->signal, sizeof(e->x->signal), "%.*s", (int)sl,
			 sig);
	} else {
		e->x->status = libssh2_channel_get_exit_status(e->ch);
	}
	if (sig != NULL)
		libssh2_free(e->s->session, sig);
}

static int ssh_exec(struct mb_transport *t, struct mb_exec *x)
{
	struct ssh *s = (struct ssh *)t;
	struct exec_state e = { s, x, NULL, 0, 0, "" };
	struct mb_buf cmd;
	char *chunk = NULL;
	size_t in_off = 0;
	int rc, lrc, eof_sent = 0, closing = 0;

	mb_buf_init(&cmd, CMDLINE_CAP);
	rc = mb_shell_join(&cmd, x->argv);
	if (rc != 0) {
		rc = mb_transport_fail(t, rc, "command line of '%s' too long",
				       x->argv[0]);
		goto out;
	}
	rc = ensure(s, 0, s->retries);
	if (rc != 0)
		goto out;
	rc = mb_transport_fail(t, MB_ENOMEM, "out of memory");
	chunk = mb_malloc(EXEC_CHUNK);
	if (chunk == NULL)
		goto out;
	if (x->timeout_ms > 0)
		e.deadline = now_ms() + x->timeout_ms;
	libssh2_session_set_blocking(s->session, 0);

	e.doing = "starting";
	e.step_end = now_ms() + s->io_ms;
	while ((e.ch = libssh2_channel_open_session(s->session)) == NULL) {
		lrc = libssh2_session_last_errno(s->session);
		if (lrc != LIBSSH2_ERROR_EAGAIN) {
			rc = is_drop(lrc) ? exec_lost(&e, lrc) :
					    mb_transport_fail(
						    t, MB_EPROTO,
						    "cannot open a channel on "
						    "%s: %s",
						    s->base.name, lib_msg(s));
			goto out;
		}
		if (exec_wait(&e, &rc))
			goto out;
	}
	while ((lrc = libssh2_channel_exec(e.ch, cmd.data)) != 0) {
		if (lrc != LIBSSH2_ERROR_EAGAIN) {
			rc = is_drop(lrc) ? exec_lost(&e, lrc) :
					    mb_transport_fail(
						    t, MB_EPROTO,
						    "cannot run '%s' on %s: %s",
						    x->argv[0], s->base.name,
						    lib_msg(s));
			goto out;
		}
		if (exec_wait(&e, &rc))
			goto out;
	}

	e.doing = "running";
	e.step_end = 0; /* a quiet command is fine: keepalives watch the link */
	for (;;) {
		int progress = 0, stream, done = 1;

		if (!eof_sent && in_off < x->in_len) {
			size_t n = x->in_len - in_off;

			if (n > EXEC_CHUNK)
				n = EXEC_CHUNK;
			lrc = (int)libssh2_channel_write(
				e.ch, (const char *)x->in + in_off, n);
			if (lrc > 0) {
				in_off += (size_t)lrc;
				progress = 1;
			} else if (lrc != LIBSSH2_ERROR_EAGAIN) {
				if (lrc == LIBSSH2_ERROR_SOCKET_SEND ||
				    lrc == LIBSSH2_ERROR_SOCKET_RECV ||
				    lrc == LIBSSH2_ERROR_SOCKET_DISCONNECT) {
					rc = exec_lost(&e, lrc);
					goto out;
				}
				/* the command closed its stdin or exited */
				in_off = x->in_len;
			}
		}
		if (!eof_sent && in_off >= x->in_len) {
			lrc = libssh2_channel_send_eof(e.ch);
			if (lrc != LIBSSH2_ERROR_EAGAIN) {
				if (lrc == LIBSSH2_ERROR_SOCKET_SEND) {
					rc = exec_lost(&e, lrc);
					goto out;
				}
				eof_sent = 1;
				progress = 1;
			}
		}
		for (stream = 0; stream < 2; stream++) {
			ssize_t n;

			while ((n = libssh2_channel_read_ex(e.ch, stream, chunk,
							    EXEC_CHUNK)) > 0) {
				progress = 1;
				rc = mb_exec_deliver(
					x,
					stream == 0 ? MB_EXEC_STDOUT :
						      MB_EXEC_STDERR,
					chunk, (size_t)n);
				if (rc != 0) {
					mb_transport_fail(
						t, rc, "'%s' %s", x->argv[0],
						rc == MB_ECANCELLED ?
							"stopped by its reader" :
							"output not stored");
					closing = 1;
					goto out;
				}
			}
			if (n == LIBSSH2_ERROR_EAGAIN) {
				done = 0;
			} else if (n < 0) {
				if (is_drop((int)n)) {
					rc = exec_lost(&e, (int)n);
					goto out;
				}
				rc = mb_transport_fail(
					t, MB_EPROTO,
					"reading the output of '%s' on %s: %s",
					x->argv[0], s->base.name, lib_msg(s));
				closing = 1;
				goto out;
			}
		}
		if (done && libssh2_channel_eof(e.ch))
			break;
		if (!progress && exec_wait(&e, &rc)) {
			closing = 1;
			goto out;
		}
	}

	e.doing = "finishing";
	e.step_end = now_ms() + s->io_ms;
	while ((lrc = libssh2_channel_close(e.ch)) == LIBSSH2_ERROR_EAGAIN)
		if (exec_wait(&e, &rc))
			goto out;
	while (lrc == 0 &&
	       (lrc = libssh2_channel_wait_closed(e.ch)) == LIBSSH2_ERROR_EAGAIN)
		if (exec_wait(&e, &rc))
			goto out;
	if (lrc != 0 && is_drop(lrc)) {
		rc = exec_lost(&e, lrc);
		goto out;
	}
	exec_result(&e);
	rc = 0;
out:
	if (e.ch != NULL && s->session != NULL) {
		/* Abandoning a command: our CLOSE makes sshd hang up on it (the
		 * command sees EOF, then EPIPE/SIGPIPE on its next write), but
		 * sshd answers only once the process is gone, so do not wait
		 * for that answer. libssh2 1.10 cannot send signals. */
		long long end = now_ms() + 100;

		if (closing)
			while (libssh2_channel_close(e.ch) ==
				       LIBSSH2_ERROR_EAGAIN &&
			       now_ms() < end)
				wait_socket(s, 20);
		end = now_ms() + 2000;
		while (libssh2_channel_free(e.ch) == LIBSSH2_ERROR_EAGAIN &&
		       now_ms() < end)
			wait_socket(s, 100);
	}
	if (s->session != NULL)
		libssh2_session_set_blocking(s->session, 1);
	free(chunk);
	mb_buf_release(&cmd);
	return rc;
}

/* ---- files --------------------------------------------------------- */

/* SFTP resolves relative paths against the login directory; "~/" means
 * the same here. */
static const char *rpath(const char *p)
{
	if (p[0] == '~' && p[1] == '/')
		return p + 2;
	if (p[0] == '~' && p[1] == '\0')
		return ".";
	return p;
}

static LIBSSH2_SFTP_HANDLE *open_file(struct ssh *s, const char *path,
				      unsigned long flags, int *rc)
{
	LIBSSH2_SFTP_HANDLE *h;
	const char *p = rpath(path);

	h = libssh2_sftp_open_ex(s->sftp, p, (unsigned)strlen(p), flags, 0644,
				 LIBSSH2_SFTP_OPENFILE);
	if (h == NULL)
		*rc = lib_fail(s, libssh2_session_last_errno(s->session),
			       "open", path);
	return h;
}

/* Closes a handle. libssh2 frees it even when the close cannot be sent;
 * after a failure the wait for the server's answer is cut short, since
 * the link is likely gone. */
static void close_file(struct ssh *s, LIBSSH2_SFTP_HANDLE *h, int failed)
{
	if (failed)
		libssh2_session_set_timeout(s->session, 1000);
	libssh2_sftp_close_handle(h);
	if (failed)
		libssh2_session_set_timeout(s->session, s->io_ms);
}

struct rw_op {
	const char *path;
	uint64_t off;
	const char *wbuf;
	uint64_t len, done;
	/* reads: where the bytes go, through a buffer of SFTP_READ_CHUNK */
	mb_read_sink_fn sink;
	void *ctx;
	char *rbuf;
	int sink_rc;
};

/* How much to ask libssh2 for next: it keeps up to four times that in
 * flight (at most 8 MiB), so near the end of the range the request shrinks
 * to a quarter of what is left and nothing past the range is read ahead
 * and thrown away when the handle closes. */
static size_t read_want(uint64_t left)
{
	uint64_t w = left / 4;

	if (w < (64u << 10))
		w = left < (64u << 10) ? left : (64u << 10);
	return w > SFTP_READ_REQ ? SFTP_READ_REQ : (size_t)w;
}

/* Hands the bytes gathered in o->rbuf to the sink. */
static int deliver(struct rw_op *o, size_t *fill)
{
	if (*fill == 0)
		return 0;
	o->sink_rc = o->sink(o->rbuf, *fill, o->off + o->done, o->ctx);
	o->done += *fill;
	*fill = 0;
	return o->sink_rc;
}

static int op_read(struct ssh *s, void *arg)
{
	struct rw_op *o = arg;
	LIBSSH2_SFTP_HANDLE *h;
	size_t fill = 0;
	int rc = 0;

	h = open_file(s, o->path, LIBSSH2_FXF_READ, &rc);
	if (h == NULL)
		return rc;
	libssh2_sftp_seek64(h, o->off + o->done);
	/* libssh2 returns about one packet (30,000 bytes) a call: gather
	 * SFTP_READ_CHUNK before waking the sink */
	while (o->done + fill < o->len) {
		uint64_t left = o->len - o->done - fill;
		size_t want = read_want(left);
		ssize_t n;

		if (fill + want > SFTP_READ_CHUNK && (rc = deliver(o, &fill)) != 0)
			break;
		n = libssh2_sftp_read(h, o->rbuf + fill, want);
		if (n == 0)
			break; /* end of file */
		if (n < 0) {
			rc = lib_fail(s, (int)n, "read", o->path);
			break;
		}
		fill += (size_t)n;
	}
	/* what arrived before a drop is good: a retry goes on after it */
	if (deliver(o, &fill) != 0 && rc == 0)
		rc = o->sink_rc;
	close_file(s, h, rc != 0);
	return rc;
}

static int ssh_read_stream(struct mb_transport *t, const char *path,
			   uint64_t off, uint64_t len, mb_read_sink_fn sink,
			   void *ctx, uint64_t *got)
{
	struct rw_op o = { .path = path, .off = off, .len = len,
			   .sink = sink, .ctx = ctx };
	int rc;

	o.rbuf = mb_malloc(SFTP_READ_CHUNK);
	if (o.rbuf == NULL)
		return mb_transport_fail(t, MB_ENOMEM, "out of memory");
	rc = with_retry((struct ssh *)t, op_read, &o);
	if (o.sink_rc != 0)
		rc = o.sink_rc; /* the reader said stop: not a link error */
	*got = o.done;
	free(o.rbuf);
	return rc;
}

static int op_write(struct ssh *s, void *arg)
{
	struct rw_op *o = arg;
	LIBSSH2_SFTP_HANDLE *h;
	int rc = 0;

	h = open_file(s, o->path, LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT, &rc);
	if (h == NULL)
		return rc;
	libssh2_sftp_seek64(h, o->off + o->done);
	while (o->done < o->len) {
		size_t want = (size_t)(o->len - o->done);
		ssize_t n;

		if (want > SFTP_WRITE_CHUNK)
			want = SFTP_WRITE_CHUNK;
		n = libssh2_sftp_write(h, o->wbuf + o->done, want);
		if (n <= 0) {
			rc = lib_fail(s, n == 0 ? LIBSSH2_ERROR_SOCKET_SEND :
						  (int)n,
				      "write", o->path);
			break;
		}
		o->done += (uint64_t)n;
	}
	close_file(s, h, rc != 0);
	return rc;
}

static int ssh_write(struct mb_transport *t, const char *path, uint64_t off,
		     const void *buf, size_t len)
{
	struct rw_op o = { .path = path, .off = off, .wbuf = buf, .len = len };

	return with_retry((struct ssh *)t, op_write, &o);
}

struct trunc_op {
	const char *path;
	uint64_t size;
};

static int op_truncate(struct ssh *s, void *arg)
{
	struct trunc_op *o = arg;
	LIBSSH2_SFTP_ATTRIBUTES a;
	LIBSSH2_SFTP_HANDLE *h;
	int rc = 0, lrc;

	h = open_file(s, o->path, LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT, &rc);
	if (h == NULL)
		return rc;
	memset(&a, 0, sizeof(a));
	a.flags = LIBSSH2_SFTP_ATTR_SIZE;
	a.filesize = o->size;
	lrc = libssh2_sftp_fsetstat(h, &a);
	if (lrc != 0)
		rc = lib_fail(s, lrc, "truncate", o->path);
	close_file(s, h, rc != 0);
	return rc;
}

static int ssh_truncate(struct mb_transport *t, const char *path,
			uint64_t size)
{
	struct trunc_op o = { path, size };

	return with_retry((struct ssh *)t, op_truncate, &o);
}

struct stat_op {
	const char *path;
	struct mb_transport_stat *st;
};

static int op_stat(struct ssh *s, void *arg)
{
	struct stat_op *o = arg;
	LIBSSH2_SFTP_ATTRIBUTES a;
	const char *p = rpath(o->path);
	int lrc;

	lrc = libssh2_sftp_stat_ex(s->sftp, p, (unsigned)strlen(p),
				   LIBSSH2_SFTP_STAT, &a);
	if (lrc != 0)
		return lib_fail(s, lrc, "stat", o->path);
	o->st->size = a.flags & LIBSSH2_SFTP_ATTR_SIZE ? a.filesize : 0;
	o->st->is_dir = (a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
			LIBSSH2_SFTP_S_ISDIR(a.permissions);
	o->st->mtime = a.flags & LIBSSH2_SFTP_ATTR_ACMODTIME ?
			       (int64_t)a.mtime :
			       0;
	o->st->mode = a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS ?
			      (unsigned)(a.permissions & 07777) :
			      0;
	return 0;
}

static int ssh_stat(struct mb_transport *t, const char *path,
		    struct mb_transport_stat *st)
{
	struct stat_op o = { path, st };

	return with_retry((struct ssh *)t, op_stat, &o);
}

static int op_unlink(struct ssh *s, void *arg)
{
	const char *path = arg, *p = rpath(path);
	int lrc;

	lrc = libssh2_sftp_unlink_ex(s->sftp, p, (unsigned)strlen(p));
	return lrc != 0 ? lib_fail(s, lrc, "remove", path) : 0;
}

static int ssh_unlink(struct mb_transport *t, const char *path)
{
	return with_retry((struct ssh *)t, op_unlink, (void *)path);
}

static int op_mkdirs(struct ssh *s, void *arg)
{
	const char *dir = rpath(arg);
	char p[4096];
	size_t l = strlen(dir), i;
	int lrc;

	if (l >= sizeof(p))
		return mb_transport_fail(&s->base, MB_ETOOBIG,
					 "path too long: '%s'", dir);
	memcpy(p, dir, l + 1);
	/* each prefix in turn, as mkdir -p; a failed mkdir is fine when a
	 * directory is there (made before, or by someone else just now) */
	for (i = 1; i <= l; i++) {
		LIBSSH2_SFTP_ATTRIBUTES a;

		if (p[i] != '/' && p[i] != '\0')
			continue;
		if (p[i - 1] == '/')
			continue;
		p[i] = '\0';
		lrc = libssh2_sftp_mkdir_ex(s->sftp, p, (unsigned)i, 0755);
		if (lrc != 0) {
			if (is_drop(lrc))
				return lib_fail(s, lrc, "create", p);
			lrc = libssh2_sftp_stat_ex(s->sftp, p, (unsigned)i,
						   LIBSSH2_SFTP_STAT, &a);
			if (lrc != 0)
				return lib_fail(s, lrc, "create", p);
			if (!((a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
			      LIBSSH2_SFTP_S_ISDIR(a.permissions)))
				return mb_transport_fail(
					&s->base, MB_EEXIST,
					"cannot create '%s' on %s: a file is "
					"in the way",
					p, s->base.name);
		}
		p[i] = dir[i];
	}
	return 0;
}

static int ssh_mkdirs(struct mb_transport *t, const char *dir)
{
	return with_retry((struct ssh *)t, op_mkdirs, (void *)dir);
}

struct rename_op {
	const char *from, *to;
};

static int op_rename(struct ssh *s, void *arg)
{
	struct rename_op *o = arg;
	const char *a = rpath(o->from), *b = rpath(o->to);
	int lrc;

	lrc = libssh2_sftp_rename_ex(s->sftp, a, (unsigned)strlen(a), b,
				     (unsigned)strlen(b),
				     LIBSSH2_SFTP_RENAME_OVERWRITE |
					     LIBSSH2_SFTP_RENAME_ATOMIC |
					     LIBSSH2_SFTP_RENAME_NATIVE);
	return lrc != 0 ? lib_fail(s, lrc, "rename", o->from) : 0;
}

static int ssh_rename(struct mb_transport *t, const char *from,
		      const char *to)
{
	struct ssh *s = (struct ssh *)t;
	struct rename_op o = { from, to };
	struct mb_transport_stat st;
	const char *argv[] = { "mv", "-f", "--", rpath(from), rpath(to), NULL };
	struct mb_exec x;
	int rc;

	rc = with_retry(s, op_rename, &o);
	if (rc == 0 || rc == MB_ENETWORK || rc == MB_ETIMEDOUT)
		return rc;
	/* SFTP v3 (OpenSSH's sftp-server) refuses to rename over an existing
	 * file and libssh2 1.10 lacks posix-rename@openssh.com: when the
	 * source is there, let mv(1) do the atomic rename(2). */
	if (ssh_stat(t, from, &st) != 0)
		return mb_transport_fail(t, MB_ENOENT,
					 "cannot rename '%s' on %s: %s", from,
					 s->base.name,
					 mb_strerror(MB_ENOENT));
	memset(&x, 0, sizeof(x));
	x.argv = argv;
	x.timeout_ms = s->io_ms;
	rc = ssh_exec(t, &x);
	if (rc == 0 && x.status != 0)
		rc = mb_transport_fail(t, MB_EIO,
				       "cannot rename '%s' to '%s' on %s: mv "
				       "exited with %d",
				       from, to, s->base.name, x.status);
	return rc;
}

static void ssh_free(struct mb_transport *t)
{
	struct ssh *s = (struct ssh *)t;

	drop(s);
	free(s);
}

static const struct mb_transport_ops ssh_ops = {
	.free = ssh_free,
	.exec = ssh_exec,
	.read_stream = ssh_read_stream,
	.write = ssh_write,
	.truncate = ssh_truncate,
	.stat = ssh_stat,
	.rename = ssh_rename,
	.unlink = ssh_unlink,
	.mkdirs = ssh_mkdirs,
};

/* ---- opening ------------------------------------------------------- */

static int copy_opt(char *dst, size_t cap, const char *v)
{
	int n = snprintf(dst, cap, "%s", v);

	return n < 0 || (size_t)n >= cap ? MB_ETOOBIG : 0;
}

static int setup(struct ssh *s, const struct mb_transport_opts *o,
		 const struct mb_target *tg, char *err, size_t errcap)
{
	const char *home = getenv("HOME"), *luser = NULL;
	struct passwd pwbuf, *pw = NULL;
	char pwstr[4096];
	static const char *const defaults[] = { "id_ed25519", "id_ecdsa",
						"id_rsa" };
	struct mb_ssh_host h;
	char cfg[1024];
	int rc, i;

	/* getpwuid_r: pull streams open transports from several threads */
	if (getpwuid_r(getuid(), &pwbuf, pwstr, sizeof(pwstr), &pw) != 0)
		pw = NULL;
	if (pw != NULL) {
		luser = pw->pw_name;
		if (home == NULL || home[0] == '\0')
			home = pw->pw_dir;
	}
	if (luser == NULL)
		luser = getenv("USER");
	if (home == NULL)
		home = "/";
	if (luser == NULL)
		luser = "";

	if (o->ssh_config != NULL)
		rc = copy_opt(cfg, sizeof(cfg), o->ssh_config);
	else
		rc = snprintf(cfg, sizeof(cfg), "%s/.ssh/config", home) <
				     (int)sizeof(cfg) ?
			     0 :
			     MB_ETOOBIG;
	if (rc == 0 && cfg[0] != '\0')
		rc = mb_sshconfig_lookup(cfg, tg->host, home, luser, &h, err,
					 errcap);
	else if (rc == 0)
		memset(&h, 0, sizeof(h));
	if (rc != 0)
		return rc;

	/* the target's own user and port win over the config, as on ssh's
	 * command line */
	rc = copy_opt(s->host, sizeof(s->host),
		      h.hostname[0] != '\0' ? h.hostname : tg->host);
	if (rc == 0)
		rc = copy_opt(s->user, sizeof(s->user),
			      tg->user[0] != '\0' ? tg->user :
			      h.user[0] != '\0'   ? h.user :
						    luser);
	s->port = tg->port > 0 ? tg->port : h.port > 0 ? h.port : 22;
	if (rc == 0 && o->identity != NULL && o->identity[0] != '\0')
		rc = copy_opt(s->ids[s->n_id++], sizeof(s->ids[0]),
			      o->identity);
	for (i = 0; rc == 0 && i < h.n_identity; i++)
		rc = copy_opt(s->ids[s->n_id++], sizeof(s->ids[0]),
			      h.identity[i]);
	/* ssh falls back to the default keys only when none was named */
	for (i = 0; rc == 0 && s->n_id == 0 && i < 3; i++) {
		int n = snprintf(s->ids[i], sizeof(s->ids[0]), "%s/.ssh/%s",
				 home, defaults[i]);

		rc = n < 0 || (size_t)n >= sizeof(s->ids[0]) ? MB_ETOOBIG : 0;
		if (i == 2 && rc == 0)
			s->n_id = 3;
	}
	if (rc == 0) {
		if (o->known_hosts != NULL)
			rc = copy_opt(s->known_hosts, sizeof(s->known_hosts),
				      o->known_hosts);
		else
			rc = snprintf(s->known_hosts, sizeof(s->known_hosts),
				      "%s/.ssh/known_hosts", home) <
					     (int)sizeof(s->known_hosts) ?
				     0 :
				     MB_ETOOBIG;
	}
	if (rc != 0) {
		if (err != NULL && errcap > 0)
			snprintf(err, errcap, "ssh options for '%s' too long",
				 o->target);
		return MB_EINVAL;
	}
	if (o->pinned_key != NULL && o->pinned_key[0] != '\0' &&
	    mb_ssh_pin_fingerprint(o->pinned_key, s->pin_fp) != 0) {
		if (err != NULL && errcap > 0)
			snprintf(err, errcap,
				 "pinned host key for '%s' is neither a "
				 "known_hosts line nor a SHA256 fingerprint",
				 o->target);
		return MB_EINVAL;
	}
	if (o->accept_fingerprint != NULL && o->accept_fingerprint[0] != '\0' &&
	    (strncmp(o->accept_fingerprint, "SHA256:", 7) != 0 ||
	     mb_ssh_pin_fingerprint(o->accept_fingerprint, s->accept_fp) !=
		     0)) {
		if (err != NULL && errcap > 0)
			snprintf(err, errcap,
				 "'%s' is not a SHA256:... fingerprint",
				 o->accept_fingerprint);
		return MB_EINVAL;
	}
	s->no_agent = o->no_agent;
	s->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms :
						    DEF_CONNECT_MS;
	s->io_ms = o->io_timeout_ms > 0 ? o->io_timeout_ms : DEF_IO_MS;
	s->keepalive_s = o->keepalive_s > 0 ? o->keepalive_s : DEF_KEEPALIVE_S;
	s->retries = o->retries > 0 ? o->retries :
		     o->retries < 0 ? 0 :
				      DEF_RETRIES;
	s->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : DEF_BACKOFF_MS;
	snprintf(s->base.name, sizeof(s->base.name), "ssh %s@%s:%d", s->user,
		 s->host, s->port);
	return 0;
}

int mb_transport_ssh_open(const struct mb_transport_opts *o,
			  const struct mb_target *tg,
			  struct mb_transport **out, char *err, size_t errcap)
{
	struct ssh *s = NULL;
	int rc;

	*out = NULL;
	pthread_once(&init_once, lib_init);
	rc = MB_ECRYPTO;
	if (init_rc != 0) {
		if (err != NULL && errcap > 0)
			snprintf(err, errcap, "libssh2_init failed");
		goto out;
	}
	rc = MB_ENOMEM;
	s = mb_calloc(1, sizeof(*s));
	if (s == NULL)
		goto out;
	s->fd = -1;
	s->base.ops = &ssh_ops;
	s->base.kind = MB_TRANSPORT_SSH;
	rc = setup(s, o, tg, err, errcap);
	if (rc != 0)
		goto out;
	/* the first connection is tried once: a wrong address or key should
	 * be reported now, not after a minute of backoff */
	rc = connect_once(s);
	if (rc != 0) {
		if (err != NULL && errcap > 0)
			snprintf(err, errcap, "%s", s->base.errmsg);
		goto out;
	}
	s->locked = 1;
	*out = &s->base;
	s = NULL;
	rc = 0;
out:
	if (s != NULL)
		ssh_free(&s->base);
	return rc;
}
