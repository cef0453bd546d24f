/*
 * mibera-job show JOB: everything about one job on one page: its source
 * and commit, worker, time and cost, each step with its attempts and
 * duration, the config.json repairs the conversion made, the artifacts
 * with checksums and smoke results, and the error when it failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/json.h"
#include "common/text.h"
#include "coordinator/cli/cli.h"
#include "coordinator/store.h"

static void when(int64_t t, char *out, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0) {
		snprintf(out, cap, "-");
		return;
	}
	localtime_r(&tt, &tm);
	strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

static int show_step(const struct mb_step_row *st, void *ctx)
{
	char took[32] = "";

	(void)ctx;
	if (st->started_at > 0 && st->finished_at >= st->started_at)
		snprintf(took, sizeof(took), "%llds",
			 (long long)(st->finished_at - st->started_at));
	printf("  %-10s %-9s %d attempt%s %6s%s%s\n", st->name, st->state,
	       st->attempts, st->attempts == 1 ? " " : "s", took,
	       st->error[0] ? "  " : "", st->error);
	return 0;
}

static int show_repair(int64_t id, const char *step, int64_t at_ms,
		       const char *type, const char *data, void *ctx)
{
	cJSON *doc;
	char *claimed, *actual;

	(void)id;
	(void)at_ms;
	if (strcmp(step, "convert") != 0 || strcmp(type, "repair") != 0)
		return 0;
	doc = mb_json_parse(data, strlen(data));
	claimed = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(doc, "claimed"));
	actual = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(doc, "actual"));
	{
		/* the worker's words: printable only */
		char k[128], c[512], a[512], src[128], ev[1024];

		printf("  %-28s %s -> %s  (%s: %s)\n",
		       mb_printable(k, sizeof(k), cJSON_GetStringValue(
						   cJSON_GetObjectItemCaseSensitive(doc, "key"))),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "missing"))
			       ? "missing" : mb_printable(c, sizeof(c), claimed),
		       mb_printable(a, sizeof(a), actual),
		       mb_printable(src, sizeof(src), cJSON_GetStringValue(
						       cJSON_GetObjectItemCaseSensitive(doc, "source"))),
		       mb_printable(ev, sizeof(ev), cJSON_GetStringValue(
						     cJSON_GetObjectItemCaseSensitive(doc, "evidence"))));
	}
	cJSON_free(claimed);
	cJSON_free(actual);
	cJSON_Delete(doc);
	(*(int *)ctx)++;
	return 0;
}

static int show_artifact(const char *name, uint64_t size, const char *sha256,
			 const char *path, const char *smoke, void *ctx)
{
	cJSON *doc = smoke ? mb_json_parse(smoke, strlen(smoke)) : NULL;

	(void)path;
	(void)ctx;
	char safe[256];

	printf("  %-34s %9.1f MB  sha256 %s\n",
	       mb_printable(safe, sizeof(safe), name), (double)size / 1e6, sha256);
	if (doc != NULL) {
		const char *text = mb_printable(
			safe, 61, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "text")));

		printf("  %-34s smoke: load %.2f s, %.1f tok/s prompt, %.1f tok/s "
		       "generation, logits %s\n  %-34s \"%.60s\"\n", "",
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "load_s")),
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "prompt_tps")),
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "gen_tps")),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "finite")) ? "finite"
									: "NOT finite",
		       "", text ? text : "");
	}
	cJSON_Delete(doc);
	return 0;
}

int cmd_show(int argc, char **argv)
{
	struct mb_store *s;
	struct mb_job_row j;
	char home[4096], c[32], st[32], fin[32];
	long long id;
	int nrep = 0;

	if (argc != 2 || cli_job_id(argv[1], &id) != 0) {
		fprintf(stderr, "usage: mibera-job show JOB\n");
		return 2;
	}
	if (cli_open_job("show", id, &s, &j) != 0)
		return 1;
	when(j.created_at, c, sizeof(c));
	when(j.started_at, st, sizeof(st));
	when(j.finished_at, fin, sizeof(fin));
	printf("job %lld  %s  %s", id, j.state, j.source);
	if (j.commit_sha[0])
		printf("  (commit %.12s)", j.commit_sha);
	printf("\n  worker %s at $%.2f/h, held %.0f s, cost $%.2f, %d attempt%s\n"
	       "  %s layout, %s weights, quantized to %s, smoke test %s\n"
	       "  created %s, started %s, finished %s\n", j.worker,
	       j.cost_per_hour, j.held_seconds,
	       mb_job_cost(&j), j.attempts,
	       j.attempts == 1 ? "" : "s", j.layout, j.outtype, j.quants,
	       j.smoke ? "on" : "off", c, st, fin);
	if (strcmp(j.state, "waiting") == 0) {
		when(j.next_try_at, c, sizeof(c));
		printf("  waiting until %s to try again\n", c);
	}
	if (j.notify_url[0])
		printf("  notifies %s\n", j.notify_url);
	if (j.error[0])
		printf("\nerror: %s\n", j.error);
	printf("\nsteps\n");
	mb_store_step_list(s, id, show_step, NULL);
	printf("\nconfig.json repairs\n");
	mb_store_events(s, id, 0, show_repair, &nrep);
	if (nrep == 0)
		printf("  none (or not converted yet)\n");
	mb_store_home(home, sizeof(home));
	printf("\nartifacts in %s/artifacts/job-%lld\n", home, id);
	mb_store_artifact_list(s, id, show_artifact, NULL);
	mb_store_close(s);
	return 0;
}
