/* verbutil: helpers the worker verbs share (see verbutil.h). */
#include "worker/verbutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"

int verb_parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	if (*s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int verb_parse_int(const char *s, long lo, long hi, int *out)
{
	long v;

	if (verb_parse_long(s, lo, hi, &v) != 0)
		return -1;
	*out = (int)v;
	return 0;
}

const char *verb_base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

static void log_sink(enum mb_log_level level, const char *msg, void *ctx)
{
	struct verb_journal *j = ctx;
	struct mb_buf b;

	mb_log_stderr_sink(level, msg, j->who);
	mb_buf_init(&b, 4096);
	if (mb_buf_addf(&b, "\"level\":\"%s\",\"msg\":", mb_log_level_name(level)) ==
		    0 &&
	    mb_json_quote(&b, msg) == 0)
		mb_events_emit(&j->ev, "log", b.data);
	mb_buf_release(&b);
}

int verb_journal_open(struct verb_journal *j, const char *step,
		      const char *who)
{
	int rc = mb_events_from_env(&j->ev, step);

	if (rc != 0) {
		fprintf(stderr, "%s: cannot open the event journal: %s\n", who,
			mb_strerror(rc));
		return -1;
	}
	snprintf(j->who, sizeof(j->who), "%s", who);
	j->tty = isatty(2);
	mb_log_set_sink(log_sink, j);
	return 0;
}

void verb_journal_close(struct verb_journal *j)
{
	mb_log_set_sink(NULL, NULL);
	mb_events_close(&j->ev);
}
