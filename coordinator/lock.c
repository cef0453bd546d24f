/* lock: the coordinator's lock and heartbeat in $MIBERA_HOME. */
#include "coordinator/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fs.h"
#include "coordinator/store.h"

static int lock_path(char *out, size_t cap)
{
	char home[4096];
	int rc = mb_store_home(home, sizeof(home));

	if (rc != 0)
		return rc;
	if ((size_t)snprintf(out, cap, "%s/coordinator.lock", home) >= cap)
		return MB_ETOOBIG;
	return 0;
}

/* "pid started beat": read from fd. */
static void read_info(int fd, struct mb_coord_info *ci)
{
	char buf[128];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long pid = 0;
	int64_t started = 0, beat = 0;

	if (n <= 0)
		return;
	buf[n] = '\0';
	if (sscanf(buf, "%ld %" SCNd64 " %" SCNd64, &pid, &started, &beat) >= 1) {
		ci->pid = pid > 0 ? pid : 0;
		ci->started = started > 0 ? started : 0;
		ci->beat = beat > 0 ? beat : 0;
	}
}

static void write_info(struct mb_coord_lock *l)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "%ld %" PRId64 " %" PRId64 "\n",
			 (long)getpid(), l->started, (int64_t)time(NULL));

	/* one write of the whole line, then cut what a longer one left */
	if (pwrite(l->fd, buf, (size_t)n, 0) == n)
		(void)!ftruncate(l->fd, n);
}

int mb_coord_lock_take(struct mb_coord_lock *l, char *err, size_t errcap)
{
	char path[4200], home[4096];
	int rc;

	l->fd = -1;
	rc = lock_path(path, sizeof(path));
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot name the lock file: %s",
			  mb_strerror(rc));
		return rc;
	}
	if (mb_store_home(home, sizeof(home)) == 0)
		mb_mkdir_p(home, 0700);
	l->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (l->fd < 0) {
		rc = mb_err_from_errno(errno);
		mb_seterr(err, errcap, "cannot open '%s': %s", path, strerror(errno));
		return rc;
	}
	if (flock(l->fd, LOCK_EX | LOCK_NB) != 0) {
		struct mb_coord_info ci = { 0 };
		int e = errno;

		read_info(l->fd, &ci);
		close(l->fd);
		l->fd = -1;
		if (e == EWOULDBLOCK) {
			mb_seterr(err, errcap, "another coordinator (pid %ld) is "
				  "running on %s; one runs the queue of a "
				  "MIBERA_HOME", ci.pid, home);
			return MB_EBUSY;
		}
		mb_seterr(err, errcap, "cannot lock '%s': %s", path, strerror(e));
		return mb_err_from_errno(e);
	}
	l->started = (int64_t)time(NULL);
	write_info(l);
	return 0;
}

void mb_coord_lock_beat(struct mb_coord_lock *l)
{
	if (l != NULL && l->fd >= 0)
		write_info(l);
}

void mb_coord_lock_release(struct mb_coord_lock *l)
{
	if (l == NULL || l->fd < 0)
		return;
	(void)!ftruncate(l->fd, 0);
	close(l->fd);
	l->fd = -1;
}

int mb_coord_probe(struct mb_coord_info *ci)
{
	char path[4200];
	int fd, rc;

	memset(ci, 0, sizeof(*ci));
	rc = lock_path(path, sizeof(path));
	if (rc != 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : mb_err_from_errno(errno);
	if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK) {
			ci->alive = 1;
			read_info(fd, ci);
		}
	} else {
		flock(fd, LOCK_UN);
	}
	close(fd);
	return 0;
}
