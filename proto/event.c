/* event: JSON-lines journal of a worker step. */
#include "proto/event.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/json.h"

/* The number of complete lines already in the journal. */
static int count_lines(int fd, uint64_t *n)
{
	char buf[65536];
	uint64_t off = 0;
	size_t got, i;
	int rc;

	*n = 0;
	for (;;) {
		rc = mb_pread_full(fd, buf, sizeof(buf), off, &got);
		if (rc != 0)
			return rc;
		for (i = 0; i < got; i++)
			*n += buf[i] == '\n';
		if (got < sizeof(buf))
			return 0;
		off += got;
	}
}

int mb_events_open(struct mb_events *e, const char *path, const char *step)
{
	int rc;

	memset(e, 0, sizeof(*e));
	e->fd = -1;
	snprintf(e->step, sizeof(e->step), "%s", step);
	if (path == NULL)
		return 0;
	e->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (e->fd < 0)
		return mb_err_from_errno(errno);
	{
		int rfd = open(path, O_RDONLY | O_CLOEXEC);

		if (rfd < 0) {
			rc = mb_err_from_errno(errno);
			mb_events_close(e);
			return rc;
		}
		rc = count_lines(rfd, &e->seq);
		close(rfd);
		if (rc != 0) {
			mb_events_close(e);
			return rc;
		}
	}
	return 0;
}

void mb_events_close(struct mb_events *e)
{
	if (e == NULL || e->fd < 0)
		return;
	close(e->fd);
	e->fd = -1;
}

int mb_event_format(struct mb_buf *b, uint64_t seq, const char *step,
		    const char *type, const char *fields)
{
	int rc = mb_buf_addf(b, "{\"v\":%d,\"seq\":%llu,\"ms\":%llu,\"step\":",
			     MB_EVENT_VERSION, (unsigned long long)seq,
			     (unsigned long long)mb_wall_ms());

	if (rc == 0)
		rc = mb_json_quote(b, step);
	if (rc == 0)
		rc = mb_buf_adds(b, ",\"type\":");
	if (rc == 0)
		rc = mb_json_quote(b, type);
	if (rc == 0 && fields != NULL && fields[0] != '\0')
		rc = mb_buf_addf(b, ",%s", fields);
	if (rc == 0)
		rc = mb_buf_adds(b, "}");
	return rc;
}

int mb_events_emit(struct mb_events *e, const char *type, const char *fields)
{
	struct mb_buf b;
	int rc;

	if (e->fd < 0)
		return 0;
	mb_buf_init(&b, MB_EVENT_MAX - 1);
	rc = mb_event_format(&b, e->seq + 1, e->step, type, fields);
	/* the cap left room for the newline: one write, one whole line */
	if (rc == 0)
		rc = mb_buf_reserve(&b, 1) == 0 ? 0 : MB_ETOOBIG;
	if (rc == 0) {
		b.data[b.len++] = '\n';
		rc = mb_write_all(e->fd, b.data, b.len);
	}
	if (rc == 0)
		e->seq++;
	mb_buf_release(&b);
	return rc;
}

int mb_events_progress(struct mb_events *e, const char *what, uint64_t done,
		       uint64_t total, double rate, int force)
{
	return mb_events_progress_unit(e, what, done, total, rate, NULL, force);
}

int mb_events_progress_unit(struct mb_events *e, const char *what,
			    uint64_t done, uint64_t total, double rate,
			    const char *unit, int force)
{
	char fields[1024];
	struct mb_buf b;
	uint64_t t = mb_wall_ms();
	int rc;

	if (e->fd < 0)
		return 0;
	if (!force && done != total && t - e->last_progress_ms < 500)
		return 0;
	e->last_progress_ms = t;
	mb_buf_init(&b, sizeof(fields));
	rc = mb_buf_adds(&b, "\"what\":");
	if (rc == 0)
		rc = mb_json_quote(&b, what);
	if (rc == 0)
		rc = mb_buf_addf(&b, ",\"done\":%llu,\"total\":%llu,\"rate\":%.0f",
				 (unsigned long long)done,
				 (unsigned long long)total, rate);
	if (rc == 0 && unit != NULL) {
		rc = mb_buf_adds(&b, ",\"unit\":");
		if (rc == 0)
			rc = mb_json_quote(&b, unit);
	}
	if (rc == 0)
		rc = mb_events_emit(e, "progress", b.data);
	mb_buf_release(&b);
	return rc;
}

int mb_events_from_env(struct mb_events *e, const char *step)
{
	const char *p = getenv("MIBERA_EVENTS");

	return mb_events_open(e, p != NULL && *p != '\0' ? p : NULL, step);
}
