/*
 * event: the journal a worker step writes and the coordinator follows.
 *
 * One JSON object per line (proto/PROTOCOL.md, "Events"):
 *   {"v":1,"seq":7,"ms":1764158400123,"step":"fetch","type":"progress",...}
 * seq counts from 1 within a journal; ms is Unix time in milliseconds.
 * Lines are appended with O_APPEND and written whole (one write call each,
 * at most MB_EVENT_MAX bytes), so a reader never sees half a line from a
 * living writer, and a reader following from a byte offset resumes exactly
 * where it stopped. A journal is written by one process.
 */
#ifndef MB_EVENT_H
#define MB_EVENT_H

#include <stddef.h>
#include <stdint.h>

#define MB_EVENT_VERSION 1
#define MB_EVENT_MAX 8192	/* bytes of one line, newline included */

struct mb_events {
	int fd;			/* the journal, or -1: events are dropped */
	char step[32];
	uint64_t seq;
	uint64_t last_progress_ms;	/* for rate-limiting progress lines */
};

/* Opens (creating) the journal at path for appending, for events of step;
 * seq continues after the lines already there. path NULL: a sink that
 * drops everything (a verb run by hand). */
int mb_events_open(struct mb_events *e, const char *path, const char *step);

/* Closes the journal; NULL-safe, idempotent. */
void mb_events_close(struct mb_events *e);

/* Formats one event line (without its newline) into b: the envelope
 * {"v","seq","ms" (now),"step","type"} and the extra members fields (the
 * inside of a JSON object, or NULL). The journal writes its lines with
 * it; the coordinator stores its own events (seq 0) the same way.
 * MB_ETOOBIG past b's cap. */
struct mb_buf;
int mb_event_format(struct mb_buf *b, uint64_t seq, const char *step,
		    const char *type, const char *fields);

/* Appends one event of type with extra members: fields is the inside of a
 * JSON object ("\"file\":\"a\",\"bytes\":3") or NULL. MB_ETOOBIG when the
 * line would pass MB_EVENT_MAX. */
int mb_events_emit(struct mb_events *e, const char *type, const char *fields);

/* A "progress" event: what (a file or a phase), bytes done of total, the
 * rate in bytes/s. At most one every 500 ms is written unless done ==
 * total or force is set. */
int mb_events_progress(struct mb_events *e, const char *what, uint64_t done,
		       uint64_t total, double rate, int force);

/* The same counting something else than bytes: unit names it in the
 * plural ("chunks", "files"), rate is in units/s (0: unknown). */
int mb_events_progress_unit(struct mb_events *e, const char *what,
			    uint64_t done, uint64_t total, double rate,
			    const char *unit, int force);

/* Opens the journal named by $MIBERA_EVENTS (set by the step runner), or
 * a dropping sink when it is unset. */
int mb_events_from_env(struct mb_events *e, const char *step);

#endif
