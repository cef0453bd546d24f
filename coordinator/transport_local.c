/*
 * transport_local: the transport for a worker on this machine. Commands run
 * with fork/exec (argv, no shell) in $HOME, in their own process group so a
 * timeout or a cancel kills everything they started in the foreground;
 * files are read and written with pread/pwrite. Relative paths resolve
 * against the home directory, as SFTP resolves them on a remote box.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif
#include "coordinator/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"

#define PATH_CAP 4096
/* How often a waiting exec looks at x->cancel. */
#define CANCEL_POLL_MS 200

struct local {
	struct mb_transport base;
	char home[PATH_CAP];
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int resolve(struct local *l, const char *path, char *out, size_t cap)
{
	int n;

	if (path[0] == '/')
		n = snprintf(out, cap, "%s", path);
	else if (path[0] == '~' && path[1] == '/')
		n = snprintf(out, cap, "%s/%s", l->home, path + 2);
	else if (path[0] == '~' && path[1] == '\0')
		n = snprintf(out, cap, "%s", l->home);
	else
		n = snprintf(out, cap, "%s/%s", l->home, path);
	if (n < 0 || (size_t)n >= cap)
		return mb_transport_fail(&l->base, MB_ETOOBIG,
					 "path too long: '%s'", path);
	return 0;
}

static const char *signame(int sig)
{
	switch (sig) {
	case SIGHUP: return "HUP";
	case SIGINT: return "INT";
	case SIGQUIT: return "QUIT";
	case SIGILL: return "ILL";
	case SIGABRT: return "ABRT";
	case SIGFPE: return "FPE";
	case SIGKILL: return "KILL";
	case SIGSEGV: return "SEGV";
	case SIGPIPE: return "PIPE";
	case SIGALRM: return "ALRM";
	case SIGTERM: return "TERM";
	case SIGUSR1: return "USR1";
	case SIGUSR2: return "USR2";
	case SIGBUS: return "BUS";
	default: return NULL;
	}
}

static void set_status(struct mb_exec *x, int ws)
{
	if (WIFEXITED(ws)) {
		x->status = WEXITSTATUS(ws);
	} else if (WIFSIGNALED(ws)) {
		const char *n = signame(WTERMSIG(ws));

		x->status = -1;
		if (n != NULL)
			snprintf(x->signal, sizeof(x->signal), "%s", n);
		else
			snprintf(x->signal, sizeof(x->signal), "SIG%d",
				 WTERMSIG(ws));
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The child: wire the pipes, leave the parent's signal state behind, run.
 * Only async-signal-safe calls between fork and exec. */
static void child(struct local *l, const struct mb_exec *x, int in, int out,
		  int err, int report)
{
	sigset_t none;
	int e;

	setpgid(0, 0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		goto fail;
	if (chdir(l->home) != 0)
		goto fail;
	execvp(x->argv[0], (char *const *)x->argv);
fail:
	e = errno;
	if (write(report, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

static int local_exec(struct mb_transport *t, struct mb_exec *x)
{
	struct local *l = (struct local *)t;
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	int prep[2] = { -1, -1 };
	sigset_t pipe_set, old_set, pending;
	long long deadline = x->timeout_ms > 0 ? now_ms() + x->timeout_ms : 0;
	size_t in_off = 0;
	char *chunk = NULL;
	int rc = MB_EINTERNAL, ws = 0, e = 0, pipe_was_pending, killed = 0;
	ssize_t n;
	pid_t pid = -1;

	/* A child that exits without reading its stdin must not kill us with
	 * SIGPIPE: block it on this thread and swallow the one we cause. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
	sigpending(&pending);
	pipe_was_pending = sigismember(&pending, SIGPIPE);

	chunk = mb_malloc(65536);
	if (chunk == NULL) {
		rc = mb_transport_fail(t, MB_ENOMEM, "out of memory");
		goto out;
	}
	if (pipe2(pin, O_CLOEXEC) != 0 || pipe2(pout, O_CLOEXEC) != 0 ||
	    pipe2(perr, O_CLOEXEC) != 0 || pipe2(prep, O_CLOEXEC) != 0) {
		rc = mb_transport_fail(t, mb_err_from_errno(errno),
				       "cannot make pipes: %s",
				       strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		rc = mb_transport_fail(t, mb_err_from_errno(errno),
				       "cannot fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child(l, x, pin[0], pout[1], perr[1], prep[1]);
	close_fd(&pin[0]);
	close_fd(&pout[1]);
	close_fd(&perr[1]);
	close_fd(&prep[1]);
	/* exec succeeded when the report pipe closes without a word */
	do
		n = read(prep[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(e)) {
		waitpid(pid, &ws, 0);
		pid = -1;
		rc = mb_transport_fail(t, mb_err_from_errno(e),
				       "cannot run '%s': %s", x->argv[0],
				       strerror(e));
		goto out;
	}
	fcntl(pin[1], F_SETFL, O_NONBLOCK);
	fcntl(pout[0], F_SETFL, O_NONBLOCK);
	fcntl(perr[0], F_SETFL, O_NONBLOCK);
	if (x->in_len == 0)
		close_fd(&pin[1]);

	while (pout[0] >= 0 || perr[0] >= 0) {
		struct pollfd pf[3];
		int np = 0, wait = CANCEL_POLL_MS, i;
		int *fds[3] = { &pin[1], &pout[0], &perr[0] };

		if (x->cancel != NULL && *x->cancel) {
			rc = mb_transport_fail(t, MB_ECANCELLED,
					       "'%s' cancelled", x->argv[0]);
			goto kill;
		}
		if (deadline > 0) {
			long long left = deadline - now_ms();

			if (left <= 0) {
				rc = mb_transport_fail(
					t, MB_ETIMEDOUT,
					"'%s' timed out after %d ms",
					x->argv[0], x->timeout_ms);
				goto kill;
			}
			if (left < wait)
				wait = (int)left;
		}
		for (i = 0; i < 3; i++) {
			if (*fds[i] < 0)
				continue;
			pf[np].fd = *fds[i];
			pf[np].events = i == 0 ? POLLOUT : POLLIN;
			pf[np].revents = 0;
			np++;
		}
		if (poll(pf, (nfds_t)np, wait) < 0 && errno != EINTR) {
			rc = mb_transport_fail(t, MB_EIO, "poll: %s",
					       strerror(errno));
			goto kill;
		}
		np = 0;
		for (i = 0; i < 3; i++) {
			short rev;

			if (*fds[i] < 0)
				continue;
			rev = pf[np++].revents;
			if (rev == 0)
				continue;
			if (i == 0) {
				n = write(pin[1], (const char *)x->in + in_off,
					  x->in_len - in_off);
				if (n > 0)
					in_off += (size_t)n;
				else if (n < 0 && errno != EAGAIN &&
					 errno != EINTR)
					in_off = x->in_len; /* EPIPE: it
							       stopped
							       reading */
				if (in_off == x->in_len)
					close_fd(&pin[1]);
				continue;
			}
			n = read(*fds[i], chunk, 65536);
			if (n > 0) {
				rc = mb_exec_deliver(x,
						     i == 1 ? MB_EXEC_STDOUT :
							      MB_EXEC_STDERR,
						     chunk, (size_t)n);
				if (rc != 0) {
					mb_transport_fail(
						t, rc, "'%s' %s", x->argv[0],
						rc == MB_ECANCELLED ?
							"stopped by its reader" :
							"output not stored");
					goto kill;
				}
			} else if (n == 0 ||
				   (errno != EAGAIN && errno != EINTR)) {
				close_fd(fds[i]);
			}
		}
	}
	close_fd(&pin[1]);
	while (waitpid(pid, &ws, 0) < 0) {
		if (errno != EINTR) {
			rc = mb_transport_fail(t, MB_EINTERNAL, "waitpid: %s",
					       strerror(errno));
			pid = -1;
			goto out;
		}
	}
	pid = -1;
	set_status(x, ws);
	rc = 0;
	goto out;
kill:
	killed = 1;
out:
	if (pid > 0) {
		if (killed)
			kill(-pid, SIGKILL);
		while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
			;
		if (killed)
			set_status(x, ws);
	}
	close_fd(&pin[0]);
	close_fd(&pin[1]);
	close_fd(&pout[0]);
	close_fd(&pout[1]);
	close_fd(&perr[0]);
	close_fd(&perr[1]);
	close_fd(&prep[0]);
	close_fd(&prep[1]);
	free(chunk);
	if (!pipe_was_pending) {
		struct timespec zero = { 0, 0 };

		sigpending(&pending);
		if (sigismember(&pending, SIGPIPE))
			sigtimedwait(&pipe_set, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	return rc;
}

static int sys_fail(struct mb_transport *t, const char *what, const char *p)
{
	int e = errno;

	return mb_transport_fail(t, mb_err_from_errno(e), "cannot %s '%s': %s",
				 what, p, strerror(e));
}

/* Local reads go through a buffer of this size to the sink. */
#define LOCAL_READ_CHUNK (4u << 20)

static int local_read_stream(struct mb_transport *t, const char *path,
			     uint64_t off, uint64_t len, mb_read_sink_fn sink,
			     void *ctx, uint64_t *got)
{
	char p[PATH_CAP], *buf = NULL;
	int fd, rc;

	rc = resolve((struct local *)t, path, p, sizeof(p));
	if (rc != 0)
		return rc;
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sys_fail(t, "open", p);
	buf = mb_malloc(LOCAL_READ_CHUNK);
	if (buf == NULL)
		rc = mb_transport_fail(t, MB_ENOMEM, "out of memory");
	while (rc == 0 && *got < len) {
		uint64_t want = len - *got;
		size_t n;

		if (want > LOCAL_READ_CHUNK)
			want = LOCAL_READ_CHUNK;
		rc = mb_pread_full(fd, buf, (size_t)want, off + *got, &n);
		if (rc != 0) {
			mb_transport_fail(t, rc, "cannot read '%s': %s", p,
					  mb_strerror(rc));
			break;
		}
		if (n == 0)
			break; /* end of file */
		rc = sink(buf, n, off + *got, ctx);
		*got += n;
	}
	free(buf);
	close(fd);
	return rc;
}

static int local_write(struct mb_transport *t, const char *path,
		       uint64_t off, const void *buf, size_t len)
{
	char p[PATH_CAP];
	int fd, rc;

	rc = resolve((struct local *)t, path, p, sizeof(p));
	if (rc != 0)
		return rc;
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return sys_fail(t, "open", p);
	rc = mb_pwrite_all(fd, buf, len, off);
	if (rc != 0)
		mb_transport_fail(t, rc, "cannot write '%s': %s", p,
				  mb_strerror(rc));
	if (close(fd) != 0 && rc == 0)
		rc = sys_fail(t, "close", p);
	return rc;
}

static int local_truncate(struct mb_transport *t, const char *path,
			  uint64_t size)
{
	char p[PATH_CAP];
	int fd, rc;

	rc = resolve((struct local *)t, path, p, sizeof(p));
	if (rc != 0)
		return rc;
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return sys_fail(t, "open", p);
	if (ftruncate(fd, (off_t)size) != 0)
		rc = sys_fail(t, "truncate", p);
	close(fd);
	return rc;
}

static int local_stat(struct mb_transport *t, const char *path,
		      struct mb_transport_stat *st)
{
	char p[PATH_CAP];
	struct stat sb;
	int rc;

	rc = resolve((struct local *)t, path, p, sizeof(p));
	if (rc != 0)
		return rc;
	if (stat(p, &sb) != 0)
		return sys_fail(t, "stat", p);
	st->size = (uint64_t)sb.st_size;
	st->is_dir = S_ISDIR(sb.st_mode);
	st->mtime = (int64_t)sb.st_mtime;
	st->mode = (unsigned)(sb.st_mode & 07777);
	return 0;
}

static int local_rename(struct mb_transport *t, const char *from,
			const char *to)
{
	char a[PATH_CAP], b[PATH_CAP];
	int rc;

	rc = resolve((struct local *)t, from, a, sizeof(a));
	if (rc == 0)
		rc = resolve((struct local *)t, to, b, sizeof(b));
	if (rc != 0)
		return rc;
	if (rename(a, b) != 0)
		return sys_fail(t, "rename", a);
	return 0;
}

static int local_unlink(struct mb_transport *t, const char *path)
{
	char p[PATH_CAP];
	int rc;

	rc = resolve((struct local *)t, path, p, sizeof(p));
	if (rc != 0)
		return rc;
	if (unlink(p) != 0)
		return sys_fail(t, "remove", p);
	return 0;
}

static int local_mkdirs(struct mb_transport *t, const char *dir)
{
	char p[PATH_CAP];
	int rc;

	rc = resolve((struct local *)t, dir, p, sizeof(p));
	if (rc != 0)
		return rc;
	rc = mb_mkdir_p(p, 0755);
	if (rc != 0)
		return mb_transport_fail(t, rc, "cannot create '%s': %s", p,
					 mb_strerror(rc));
	return 0;
}

static void local_free(struct mb_transport *t)
{
	free(t);
}

static const struct mb_transport_ops local_ops = {
	.free = local_free,
	.exec = local_exec,
	.read_stream = local_read_stream,
	.write = local_write,
	.truncate = local_truncate,
	.stat = local_stat,
	.rename = local_rename,
	.unlink = local_unlink,
	.mkdirs = local_mkdirs,
};

int mb_transport_local_open(const struct mb_transport_opts *o,
			    struct mb_transport **out, char *err,
			    size_t errcap)
{
	const char *home = o->home != NULL && o->home[0] != '\0' ?
				   o->home :
				   getenv("HOME");
	struct local *l = NULL;
	int rc, n;

	*out = NULL;
	rc = MB_EINVAL;
	if (home == NULL || home[0] != '/') {
		if (err != NULL && errcap > 0)
			snprintf(err, errcap,
				 "local transport: no absolute home directory");
		goto out;
	}
	rc = MB_ENOMEM;
	l = mb_calloc(1, sizeof(*l));
	if (l == NULL)
		goto out;
	rc = MB_ETOOBIG;
	n = snprintf(l->home, sizeof(l->home), "%s", home);
	if (n < 0 || (size_t)n >= sizeof(l->home))
		goto out;
	l->base.ops = &local_ops;
	l->base.kind = MB_TRANSPORT_LOCAL;
	snprintf(l->base.name, sizeof(l->base.name), "local");
	*out = &l->base;
	l = NULL;
	rc = 0;
out:
	free(l);
	return rc;
}
