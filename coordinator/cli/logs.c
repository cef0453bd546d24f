/*
 * mibera-job logs JOB: the events the job's steps reported, in order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/cli/cli.h"
#include "coordinator/store.h"

static int print_event(int64_t id, const char *step, int64_t at_ms,
		       const char *type, const char *data, void *ctx)
{
	(void)id;
	(void)at_ms;
	(void)ctx;
	printf("%-10s %-9s %s\n", step ? step : "", type, data);
	return 0;
}

int cmd_logs(int argc, char **argv)
{
	struct mb_store *s;
	char err[1024], *end;
	long long id;
	int rc;

	if (argc != 2 || (id = strtoll(argv[1], &end, 10)) <= 0 || *end != '\0') {
		fprintf(stderr, "usage: mibera-job logs JOB\n");
		return 2;
	}
	rc = mb_store_open(NULL, &s, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "mibera-job: %s\n", err);
		return 1;
	}
	rc = mb_store_events(s, id, 0, print_event, NULL);
	mb_store_close(s);
	return rc == 0 ? 0 : 1;
}
