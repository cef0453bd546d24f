/*
 * mibera-job submit SOURCE [--worker NAME] [--quant Q4_K_M,Q3_K_M]
 *     [--layout native|split] [--outtype f16|bf16] [--no-smoke]
 *     [--notify URL] [--json]
 * Queues a job: SOURCE is org/name[@revision] on the hub or a directory
 * the worker can read. Prints the job id (or {"id":N} with --json); the
 * coordinator runs it, and POSTs a summary to URL (default: notify_url of
 * the config) when it succeeds or fails. --worker may be left out when
 * there is one worker. Quant types are read as a person writes them
 * (any case, spaces, repeats) and stored by their names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/hub.h"
#include "common/modelcfg.h"
#include "coordinator/cli/cli.h"
#include "coordinator/lock.h"
#include "coordinator/store.h"

static int usage(void)
{
	fprintf(stderr, "usage: mibera-job submit SOURCE [--worker NAME] "
		"[--quant Q4_K_M,Q3_K_M]\n"
		"           [--layout native|split] [--outtype f16|bf16] "
		"[--no-smoke]\n"
		"           [--notify URL] [--json]\n");
	return 2;
}

struct one_worker {
	int n;
	char name[65];
};

static int count_worker(const struct mb_worker_row *w, void *ctx)
{
	struct one_worker *ow = ctx;

	if (ow->n++ == 0)
		snprintf(ow->name, sizeof(ow->name), "%s", w->name);
	return 0;
}

int cmd_submit(int argc, char **argv)
{
	struct mb_job_row j;
	struct mb_worker_row w;
	struct mb_store *s = NULL;
	const char *worker = NULL;
	char err[1024], list[256];
	struct one_worker ow = { 0, "" };
	int i, json = 0, rc;

	memset(&j, 0, sizeof(j));
	snprintf(j.quants, sizeof(j.quants), "Q4_K_M");
	snprintf(j.layout, sizeof(j.layout), "native");
	snprintf(j.outtype, sizeof(j.outtype), "f16");
	j.smoke = 1;
	for (i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--no-smoke") == 0)
			j.smoke = 0;
		else if (strcmp(argv[i], "--notify") == 0 && v &&
			 (strncmp(v, "http://", 7) == 0 ||
			  strncmp(v, "https://", 8) == 0) &&
			 strlen(v) < sizeof(j.notify_url))
			snprintf(j.notify_url, sizeof(j.notify_url), "%s", argv[++i]);
		else if (strcmp(argv[i], "--worker") == 0 && v)
			worker = argv[++i];
		else if (strcmp(argv[i], "--quant") == 0 && v)
			snprintf(j.quants, sizeof(j.quants), "%s", argv[++i]);
		else if (strcmp(argv[i], "--layout") == 0 && v &&
			 (strcmp(v, "native") == 0 || strcmp(v, "split") == 0))
			snprintf(j.layout, sizeof(j.layout), "%s", argv[++i]);
		else if (strcmp(argv[i], "--outtype") == 0 && v &&
			 (strcmp(v, "f16") == 0 || strcmp(v, "bf16") == 0))
			snprintf(j.outtype, sizeof(j.outtype), "%s", argv[++i]);
		else if (argv[i][0] == '-' || j.source[0] != '\0')
			return usage();
		else
			snprintf(j.source, sizeof(j.source), "%s", argv[i]);
	}
	if (j.source[0] == '\0')
		return usage();
	if (!mb_job_source_is_path(j.source)) {
		char repo[300];

		snprintf(repo, sizeof(repo), "%s", j.source);
		repo[strcspn(repo, "@")] = '\0';
		if (!mb_hub_repo_id_ok(repo)) {
			fprintf(stderr, "mibera-job submit: '%s' is neither org/name"
				"[@revision] nor a path (start paths with / or .)\n",
				j.source);
			return 2;
		}
	}
	if (mb_quant_list_parse(j.quants, list, sizeof(list), err,
				sizeof(err)) != 0) {
		fprintf(stderr, "mibera-job submit: %s\n", err);
		return 2;
	}
	snprintf(j.quants, sizeof(j.quants), "%s", list);
	rc = mb_store_open(NULL, &s, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "mibera-job: %s\n", err);
		return 1;
	}
	if (worker == NULL) {
		/* one worker: it is the one meant */
		mb_store_worker_list(s, count_worker, &ow);
		if (ow.n != 1) {
			fprintf(stderr, "mibera-job submit: %s; name one with "
				"--worker NAME\n", ow.n == 0
				? "no worker yet (mibera-job worker add first)"
				: "there are several workers");
			mb_store_close(s);
			return 2;
		}
		worker = ow.name;
	}
	rc = mb_store_worker_get(s, worker, &w);
	if (rc != 0) {
		fprintf(stderr, "mibera-job submit: no worker '%s' (mibera-job worker "
			"add first)\n", worker);
		mb_store_close(s);
		return 1;
	}
	j.worker_id = w.id;
	rc = mb_store_job_add(s, &j);
	mb_store_close(s);
	if (rc != 0) {
		fprintf(stderr, "mibera-job submit: cannot queue the job: %s\n",
			mb_strerror(rc));
		return 1;
	}
	if (json)
		printf("{\"id\":%lld}\n", (long long)j.id);
	else
		printf("%lld\n", (long long)j.id);
	if (isatty(2)) {
		/* what happens next, for a person (scripts read the id) */
		struct mb_coord_info ci;

		mb_coord_probe(&ci);
		fprintf(stderr, "queued job %lld on %s. Follow it: mibera-job logs -f "
			"%lld; stop it: mibera-job cancel %lld\n", (long long)j.id,
			j.worker, (long long)j.id, (long long)j.id);
		if (!ci.alive)
			fprintf(stderr, "no coordinator is running, so nothing runs "
				"it yet: start `mibera-coordinator` (or the systemd "
				"unit deploy/mibera-coordinator.service)\n");
	}
	return 0;
}
