/*
 * verbutil: what several verbs of mibera-worker share: reading a number
 * option, a file's base name, and a journal whose log lines also go to
 * stderr, as the hub verbs (fetch, push) keep it.
 */
#ifndef MB_WORKER_VERBUTIL_H
#define MB_WORKER_VERBUTIL_H

#include "proto/event.h"

/* Parses s, a whole decimal number in [lo, hi], into *out. 0, or -1 when
 * s is empty, not a number, or out of range (*out untouched). */
int verb_parse_long(const char *s, long lo, long hi, long *out);

/* The same into an int (lo and hi within int's range). */
int verb_parse_int(const char *s, long lo, long hi, int *out);

/* The part of path p after its last '/'. */
const char *verb_base_name(const char *p);

/* A step's event journal ($MIBERA_EVENTS) with the log sink installed:
 * log lines go to stderr, prefixed by who ("mibera-worker push"), and as
 * "log" events to the journal. tty: stderr is a terminal (for progress
 * lines). */
struct verb_journal {
	struct mb_events ev;
	char who[64];
	int tty;
};

/* Opens j for step and installs its log sink. 0, or -1 having said on
 * stderr that the journal cannot be opened. */
int verb_journal_open(struct verb_journal *j, const char *step,
		      const char *who);

/* Removes the log sink and closes the journal. */
void verb_journal_close(struct verb_journal *j);

#endif
