/*
 * mibera-job logs [-f] JOB: the events the job's steps reported, in order;
 * with -f, goes on printing new ones as they are stored until the job
 * ends (succeeded, failed or cancelled), like tail -f.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/text.h"
#include "coordinator/cli/cli.h"
#include "proto/event.h"
#include "coordinator/store.h"

static int print_event(int64_t id, const char *step, int64_t at_ms,
		       const char *type, const char *data, void *ctx)
{
	int64_t *last = ctx;

	(void)at_ms;
	*last = id;
	char safe[MB_EVENT_MAX];

	printf("%-10s %-9s %s\n", step ? step : "", type,
	       mb_printable(safe, sizeof(safe), data));
	return 0;
}

static int finished(const char *state)
{
	return strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
	       strcmp(state, "cancelled") == 0;
}

int cmd_logs(int argc, char **argv)
{
	struct mb_store *s;
	struct mb_job_row j;
	long long id = 0;
	int64_t last = 0;
	int i, rc, follow = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--follow") == 0)
			follow = 1;
		else if (id == 0 && cli_job_id(argv[i], &id) == 0)
			continue;
		else
			id = -1;
	}
	if (id <= 0) {
		fprintf(stderr, "usage: mibera-job logs [-f] JOB\n");
		return 2;
	}
	if (cli_open_job("logs", id, &s, &j) != 0)
		return 1;
	for (;;) {
		int done;

		/* the state first: events stored before it ended all show */
		done = mb_store_job_get(s, id, &j) == 0 && finished(j.state);
		rc = mb_store_events(s, id, last, print_event, &last);
		fflush(stdout);
		if (rc != 0 || !follow || done)
			break;
		{
			struct timespec ts = { 0, 300000000L };

			nanosleep(&ts, NULL);
		}
	}
	if (follow && rc == 0)
		printf("job %lld %s%s%s\n", id, j.state, j.error[0] ? ": " : "",
		       j.error);
	mb_store_close(s);
	return rc == 0 ? 0 : 1;
}
