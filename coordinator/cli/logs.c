/*
 * mibera-job logs [-f] [--step STEP] [--json] JOB: the events the job's
 * steps reported, in order, for a person: the time, the step and what
 * happened ("converted ... in 53.5 s", "repaired hidden_size: 2560 ->
 * 5120"); progress is one line that updates in place on a terminal (bytes,
 * rate and time left) and only its last state elsewhere. With -f it goes
 * on as new events are stored until the job ends, like tail -f; the job's
 * state is the last line. --json prints the stored events as they are,
 * one JSON object a line (proto/PROTOCOL.md, "Events").
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/json.h"
#include "common/text.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"
#include "coordinator/store.h"
#include "proto/event.h"

struct logs {
	int64_t last;		/* the last event shown */
	int json;
	int tty;
	const char *step;	/* only this step's; NULL: all */
	int progress_open;	/* a progress line waits for its end */
	char pending[512];	/* off a terminal: the latest progress line */
};

static double num(const cJSON *doc, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);

	return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : 0;
}

static const char *str(const cJSON *doc, const char *key)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc,
									       key));

	return s ? s : "";
}

/* One event in words; 1 when it is a progress line. */
static int describe(const char *type, const cJSON *d, char *out, size_t cap)
{
	char a[32], b[32], c[32], e[32];

	if (strcmp(type, "progress") == 0) {
		double done = num(d, "done"), total = num(d, "total");
		double rate = num(d, "rate");
		const char *unit = cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(d, "unit"));

		if (unit != NULL) {
			/* chunks of the calibration text, files: counted */
			if (rate > 0 && total > done)
				cli_duration((total - done) / rate, e, sizeof(e));
			else
				snprintf(e, sizeof(e), "-");
			snprintf(out, cap, "%.120s  %.0f of %.0f %.20s (%.0f%%)  "
				 "ETA %s", str(d, "what"), done, total, unit,
				 total > 0 ? 100 * done / total : 0, e);
			return 1;
		}
		cli_bytes(done, a, sizeof(a));
		cli_bytes(total, b, sizeof(b));
		cli_bytes(rate, c, sizeof(c));
		if (rate > 0 && total > done)
			cli_duration((total - done) / rate, e, sizeof(e));
		else
			snprintf(e, sizeof(e), "-");
		snprintf(out, cap, "%.120s  %s of %s (%.0f%%)  %s/s  ETA %s",
			 str(d, "what"), a, b, total > 0 ? 100 * done / total : 0,
			 c, e);
		return 1;
	}
	if (strcmp(type, "repair") == 0) {
		char *cl = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(
			d, "claimed"));
		char *ac = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(
			d, "actual"));

		snprintf(out, cap, "repaired %s: %.60s -> %.60s (%s: %.200s)",
			 str(d, "key"),
			 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "missing"))
				 ? "missing" : cl ? cl : "?",
			 ac ? ac : "?", str(d, "source"), str(d, "evidence"));
		cJSON_free(cl);
		cJSON_free(ac);
	} else if (strcmp(type, "done") == 0 &&
		   cJSON_GetObjectItemCaseSensitive(d, "matrices") != NULL) {
		snprintf(out, cap, "importance matrix %.200s: %.0f matrices from "
			 "%.0f chunks of %.0f tokens of %.100s in %.1f s",
			 str(d, "file"), num(d, "matrices"), num(d, "chunks"),
			 num(d, "ctx"), str(d, "text"), num(d, "seconds"));
	} else if (strcmp(type, "result") == 0 &&
		   cJSON_GetObjectItemCaseSensitive(d, "kld_mean") != NULL) {
		snprintf(out, cap, "%s %.200s against the F16: KL divergence "
			 "mean %.6f, p99 %.6f; top-1 agreement %.1f%%; "
			 "perplexity ratio %.4f (%.0f tokens)",
			 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "ok"))
				 ? "fidelity of" : "BROKEN:",
			 str(d, "file"), num(d, "kld_mean"), num(d, "kld_p99"),
			 100 * num(d, "top1"), num(d, "ppl_ratio"),
			 num(d, "tokens"));
	} else if (strcmp(type, "done") == 0 && *str(d, "file") != '\0') {
		char early[160] = "";

		/* following a fetch: how much was converted as it came */
		if (num(d, "early_bytes") > 0) {
			cli_bytes(num(d, "early_bytes"), b, sizeof(b));
			snprintf(early, sizeof(early), "; %s of the shards "
				 "converted while they downloaded", b);
			if (num(d, "redone_bytes") > 0) {
				cli_bytes(num(d, "redone_bytes"), b, sizeof(b));
				snprintf(early + strlen(early),
					 sizeof(early) - strlen(early), ", %s "
					 "again (a shard was fetched again)", b);
			}
		}
		cli_bytes(num(d, "bytes"), a, sizeof(a));
		snprintf(out, cap, "wrote %.200s: %s, %.0f tensors in %.1f s, %.0f "
			 "config repairs, peak RSS %.0f MiB%s", str(d, "file"), a,
			 num(d, "tensors"), num(d, "seconds"), num(d, "repairs"),
			 num(d, "peak_rss") / 1048576, early);
	} else if (strcmp(type, "result") == 0 && *str(d, "error") != '\0') {
		snprintf(out, cap, "fetch of %.120s failed after %.1f s: %.400s",
			 str(d, "repo"), num(d, "seconds"), str(d, "message"));
	} else if (strcmp(type, "result") == 0 && *str(d, "repo") != '\0') {
		cli_bytes(num(d, "bytes"), a, sizeof(a));
		cli_bytes(num(d, "fetched"), b, sizeof(b));
		snprintf(out, cap, "fetched %.120s@%.12s: %.0f files, %s (%s "
			 "downloaded) in %.1f s%s%s", str(d, "repo"), str(d, "commit"),
			 num(d, "files"), a, b, num(d, "seconds"),
			 *str(d, "message") ? ": " : "", str(d, "message"));
	} else if (strcmp(type, "pulled") == 0) {
		char n[48];

		cli_bytes(num(d, "bytes"), a, sizeof(a));
		cli_bytes(num(d, "reused"), b, sizeof(b));
		cli_count(num(d, "streams"), "stream", n, sizeof(n));
		snprintf(out, cap, "%s %.200s: %s in %.1f s over %s (%s kept from "
			 "before)",
			 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "ok"))
				 ? "pulled and verified" : "FAILED to pull",
			 str(d, "file"), a, num(d, "seconds"), n, b);
	} else if (strcmp(type, "finished") == 0) {
		snprintf(out, cap, "%s %s (exit %.0f) in %.1f s, peak RSS %.0f MiB",
			 str(d, "wstep"),
			 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "ok"))
				 ? "finished" : "failed",
			 num(d, "exit"), num(d, "seconds"),
			 num(d, "peak_rss") / 1048576);
	} else if (strcmp(type, "error") == 0) {
		snprintf(out, cap, "error: %.400s", str(d, "message"));
	} else if (strcmp(type, "log") == 0) {
		snprintf(out, cap, "%s: %.400s", str(d, "level"), str(d, "msg"));
	} else if (strcmp(type, "fallback") == 0) {
		snprintf(out, cap, "tensor %.200s stored as %s, not %s (rows of %.0f)",
			 str(d, "tensor"), str(d, "to"), str(d, "from"),
			 num(d, "ncols"));
	} else {
		/* a type this version does not know: its members as they are */
		cJSON *copy = cJSON_Duplicate(d, 1);
		static const char *const env[] = { "v", "seq", "ms", "step", "type",
						   NULL };
		char *t;
		int k;

		for (k = 0; copy != NULL && env[k] != NULL; k++)
			cJSON_DeleteItemFromObjectCaseSensitive(copy, env[k]);
		t = copy ? cJSON_PrintUnformatted(copy) : NULL;
		snprintf(out, cap, "%s %.400s", type, t ? t : "");
		cJSON_free(t);
		cJSON_Delete(copy);
	}
	return 0;
}

static void end_progress(struct logs *l)
{
	if (l->progress_open && l->tty)
		fputc('\n', stdout);
	else if (l->progress_open)
		printf("%s\n", l->pending);
	l->progress_open = 0;
}

static int print_event(int64_t id, const char *step, int64_t at_ms,
		       const char *type, const char *data, void *ctx)
{
	struct logs *l = ctx;
	char safe[MB_EVENT_MAX], what[1024], when[16];
	time_t t = (time_t)(at_ms / 1000);
	struct tm tm;
	cJSON *doc;

	l->last = id;
	if (l->step != NULL && strcmp(step ? step : "", l->step) != 0)
		return 0;
	if (l->json) {
		printf("%s\n", mb_printable(safe, sizeof(safe), data));
		return 0;
	}
	doc = mb_json_parse(data, strlen(data));
	if (doc == NULL)
		return 0;
	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	if (describe(type, doc, what, sizeof(what))) {
		/* progress: one line, rewritten */
		snprintf(l->pending, sizeof(l->pending), "%s %-9s %s", when,
			 step ? step : "", mb_printable(safe, sizeof(safe), what));
		if (l->tty) {
			printf("\r\033[K%s", l->pending);
			fflush(stdout);
		}
		l->progress_open = 1;
	} else {
		end_progress(l);
		printf("%s %-9s %s\n", when, step ? step : "",
		       mb_printable(safe, sizeof(safe), what));
	}
	cJSON_Delete(doc);
	return 0;
}

static int finished(const char *state)
{
	return strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
	       strcmp(state, "cancelled") == 0;
}

static const struct cli_opt opts[] = {
	{ "follow", 'f', NULL, NULL, "go on until the job ends" },
	{ "step", 0, "STEP", NULL, "only that step's (fetch, convert, quantize, "
	  "pull, ...)" },
	{ "json", 0, NULL, NULL, "the stored events, one JSON object a line" },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec spec = {
	"mibera-job logs", "JOB", 1, 1,
	"The events of a job, in words: the time, the step, what happened.",
	opts,
};

int cmd_logs(int argc, char **argv)
{
	struct mb_store *s;
	struct mb_job_row j;
	struct cli_parse p;
	struct logs l;
	long long id = 0;
	int rc, follow = 0;

	memset(&l, 0, sizeof(l));
	l.tty = isatty(1);
	cli_parse_init(&p, &spec, argc, argv);
	while ((rc = cli_next(&p)) > 0) {
		if (cli_is(&p, "follow"))
			follow = 1;
		else if (cli_is(&p, "json"))
			l.json = 1;
		else if (cli_is(&p, "step"))
			l.step = p.val;
	}
	if (rc < 0)
		return p.exit;
	if (cli_job_id(p.args[0], &id) != 0)
		return cli_usage_error(&spec, "'%s' is not a job id", p.args[0]);
	if (l.step != NULL) {
		/* a job's steps, and "job" for what concerns the whole job */
		const char *names[16];
		int k, n = 0, known = strcmp(l.step, "job") == 0;

		for (k = 0; mb_job_steps[k] != NULL && n < 14; k++) {
			known |= strcmp(l.step, mb_job_steps[k]) == 0;
			names[n++] = mb_job_steps[k];
		}
		names[n++] = "job";
		names[n] = NULL;
		if (!known) {
			const char *close = cli_closest(l.step, names);

			return cli_usage_error(&spec, "--step: no step '%s'%s%s%s",
					       l.step, close ? "; did you mean '" : "",
					       close ? close : "", close ? "'?" : "");
		}
	}
	if (cli_open_job("logs", id, &s, &j) != 0)
		return 1;
	for (;;) {
		int done;

		/* the state first: events stored before it ended all show */
		done = mb_store_job_get(s, id, &j) == 0 && finished(j.state);
		rc = mb_store_events(s, id, l.last, print_event, &l);
		fflush(stdout);
		if (rc != 0 || !follow || done)
			break;
		{
			struct timespec ts = { 0, 300000000L };

			nanosleep(&ts, NULL);
		}
	}
	if (!l.json) {
		char safe[1100];

		end_progress(&l);
		printf("job %lld %s%s%s\n", id, j.state, j.error[0] ? ": " : "",
		       mb_printable(safe, sizeof(safe), j.error));
	}
	mb_store_close(s);
	return rc == 0 ? 0 : 1;
}
