/* What the mibera-job subcommands share: reading a job id, opening the
 * job database and a job in it, with the messages a person sees. */
#include <stdio.h>
#include <stdlib.h>

#include "coordinator/cli/cli.h"
#include "coordinator/store.h"

int cli_job_id(const char *arg, long long *id)
{
	char *end;

	*id = strtoll(arg, &end, 10);
	return *id > 0 && *end == '\0' && end != arg ? 0 : -1;
}

int cli_open(struct mb_store **s)
{
	char err[1024];

	if (mb_store_open(NULL, s, err, sizeof(err)) != 0) {
		fprintf(stderr, "mibera-job: %s\n", err);
		return 1;
	}
	if (mb_store_full(*s))
		fprintf(stderr, "mibera-job: the disk holding the job database is "
			"full: this is the database as of its last checkpoint, "
			"read-only; free some space to queue or change jobs\n");
	return 0;
}

int cli_open_job(const char *cmd, long long id, struct mb_store **s,
		 struct mb_job_row *j)
{
	if (cli_open(s) != 0)
		return 1;
	if (mb_store_job_get(*s, id, j) != 0) {
		fprintf(stderr, "mibera-job %s: no job %lld\n", cmd, id);
		mb_store_close(*s);
		*s = NULL;
		return 1;
	}
	return 0;
}

void cli_bytes(double v, char *out, size_t cap)
{
	const char *u[] = { "B", "kB", "MB", "GB", "TB" };
	int i = 0;

	while (v >= 1000 && i < 4) {
		v /= 1000;
		i++;
	}
	snprintf(out, cap, i && v < 100 ? "%.1f %s" : "%.0f %s", v, u[i]);
}

void cli_duration(double s, char *out, size_t cap)
{
	long t = (long)(s + 0.5);

	if (t >= 3600)
		snprintf(out, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
	else if (t >= 60)
		snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(out, cap, "%lds", t);
}
