/*
 * mibera-job show JOB [--json]: everything about one job on one page: its
 * source and commit, worker, time and cost, each step with its attempts
 * and duration, the config.json repairs the conversion made, the
 * artifacts with checksums and smoke results, and the error when it
 * failed. --json prints the same as proto/show.schema.json (version 1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/splitset.h"
#include "common/text.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"
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

/* The repairs are printed as a table whose columns fit the widest
 * value; each value is cut (and says so) past these. */
#define MAX_REPAIRS 256
#define KEY_W 40
#define VALUE_W 40

struct repair {
	char key[KEY_W + 8];
	char claimed[VALUE_W + 8];
	char actual[VALUE_W + 8];
	char why[1160];		/* "source: evidence" */
};

struct repairs {
	struct repair *r;
	int n, more;		/* more: past MAX_REPAIRS, not kept */
	struct mb_buf *json;	/* --json: the repairs as JSON instead */
};

static int take_repair(int64_t id, const char *step, int64_t at_ms,
		       const char *type, const char *data, void *ctx)
{
	struct repairs *rs = ctx;
	struct repair *r;
	cJSON *doc;
	char *claimed, *actual, src[128], ev[1024];
	const char *key;
	int missing;

	(void)id;
	(void)at_ms;
	if (strcmp(step, "convert") != 0 || strcmp(type, "repair") != 0)
		return 0;
	doc = mb_json_parse(data, strlen(data));
	if (doc == NULL)
		return 0;
	missing = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "missing"));
	if (rs->json != NULL) {
		/* the worker's event as it is, members this version knows */
		static const char *const keep[] = { "key", "claimed", "actual",
						    "missing", "source",
						    "evidence", NULL };
		cJSON *o = cJSON_CreateObject();
		char *t;
		int k;

		for (k = 0; o != NULL && keep[k] != NULL; k++) {
			cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, keep[k]);

			if (v != NULL)
				cJSON_AddItemToObject(o, keep[k], cJSON_Duplicate(v, 1));
		}
		t = o ? cJSON_PrintUnformatted(o) : NULL;
		if (t != NULL) {
			if (rs->n > 0)
				mb_buf_adds(rs->json, ",");
			mb_buf_adds(rs->json, t);
			rs->n++;
		}
		cJSON_free(t);
		cJSON_Delete(o);
		cJSON_Delete(doc);
		return 0;
	}
	if (rs->n == MAX_REPAIRS) {
		rs->more++;
		cJSON_Delete(doc);
		return 0;
	}
	r = &rs->r[rs->n++];
	claimed = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(doc, "claimed"));
	actual = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(doc, "actual"));
	/* the worker's words: printable only, cut where they are long */
	key = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "key"));
	cli_fit(key ? key : "?", KEY_W, 0, r->key, sizeof(r->key));
	cli_fit(missing ? "missing" : claimed ? claimed : "?", VALUE_W, 0,
		r->claimed, sizeof(r->claimed));
	cli_fit(actual ? actual : "?", VALUE_W, 0, r->actual, sizeof(r->actual));
	mb_printable(src, sizeof(src), cJSON_GetStringValue(
			     cJSON_GetObjectItemCaseSensitive(doc, "source")));
	mb_printable(ev, sizeof(ev), cJSON_GetStringValue(
			     cJSON_GetObjectItemCaseSensitive(doc, "evidence")));
	snprintf(r->why, sizeof(r->why), "%s: %s", src, ev);
	cJSON_free(claimed);
	cJSON_free(actual);
	cJSON_Delete(doc);
	return 0;
}

static void print_repairs(const struct repairs *rs)
{
	int i, kw = 3, cw = 7, aw = 6;

	for (i = 0; i < rs->n; i++) {
		int n;

		if ((n = (int)strlen(rs->r[i].key)) > kw)
			kw = n;
		if ((n = (int)strlen(rs->r[i].claimed)) > cw)
			cw = n;
		if ((n = (int)strlen(rs->r[i].actual)) > aw)
			aw = n;
	}
	printf("  %-*s  %-*s     %-*s  %s\n", kw, "KEY", cw, "CLAIMED", aw,
	       "ACTUAL", "WHY");
	for (i = 0; i < rs->n; i++)
		printf("  %-*s  %-*s  -> %-*s  %s\n", kw, rs->r[i].key, cw,
		       rs->r[i].claimed, aw, rs->r[i].actual, rs->r[i].why);
	if (rs->more > 0)
		printf("  ... and %d more (mibera-job logs --step convert)\n",
		       rs->more);
}

struct arts {
	int n;
	struct mb_buf *json;	/* --json: the artifacts as JSON instead */
};

static int show_artifact(const char *name, uint64_t size, const char *sha256,
			 const char *path, const char *smoke, void *ctx)
{
	struct arts *a = ctx;
	cJSON *doc = smoke ? mb_json_parse(smoke, strlen(smoke)) : NULL;
	char safe[256], text[64], whole[512], of[600] = "";
	size_t stem;
	unsigned no = 0, count = 0;
	int part = mb_splitset_parse_name(name, &stem, &no, &count);

	(void)path;
	/* a part of a set (--split-max-size): one artifact of count files */
	if (part) {
		mb_splitset_artifact_name(name, whole, sizeof(whole));
		snprintf(of, sizeof(of), "  part %u of %u of %s", no + 1, count,
			 mb_printable(safe, sizeof(safe), whole));
	}
	if (a->json != NULL) {
		char *sm = doc ? cJSON_PrintUnformatted(doc) : NULL;

		if (a->n > 0)
			mb_buf_adds(a->json, ",");
		mb_buf_adds(a->json, "{\"name\":");
		mb_json_quote(a->json, name);
		mb_buf_addf(a->json, ",\"size\":%llu,\"sha256\":",
			    (unsigned long long)size);
		mb_json_quote(a->json, sha256);
		if (part) {
			mb_buf_adds(a->json, ",\"artifact\":");
			mb_json_quote(a->json, whole);
			mb_buf_addf(a->json, ",\"part\":%u,\"parts\":%u", no + 1,
				    count);
		}
		mb_buf_addf(a->json, ",\"smoke\":%s}", sm ? sm : "null");
		cJSON_free(sm);
		cJSON_Delete(doc);
		a->n++;
		return 0;
	}
	a->n++;
	printf("  %-34s %9.1f MB  sha256 %s%s\n",
	       mb_printable(safe, sizeof(safe), name), (double)size / 1e6, sha256,
	       of);
	if (doc != NULL) {
		const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "text"));

		printf("  %-34s smoke: load %.2f s, %.1f tok/s prompt, %.1f tok/s "
		       "generation, logits %s\n  %-34s \"%s\"\n", "",
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "load_s")),
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "prompt_tps")),
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "gen_tps")),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "finite")) ? "finite"
									: "NOT finite",
		       "", cli_fit(t ? t : "", 60, 0, text, sizeof(text)));
	}
	cJSON_Delete(doc);
	return 0;
}

/* The fidelity step's figures, the last for each file (a retry may have
 * measured a file again). */
struct quality {
	int n;
	cJSON *r[32];
};

static int take_quality(int64_t id, const char *step, int64_t at_ms,
			const char *type, const char *data, void *ctx)
{
	struct quality *q = ctx;
	cJSON *doc;
	const char *file;
	int k;

	(void)id;
	(void)at_ms;
	if (strcmp(step, "fidelity") != 0 || strcmp(type, "result") != 0)
		return 0;
	doc = mb_json_parse(data, strlen(data));
	file = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "file"));
	if (file == NULL) {
		cJSON_Delete(doc);
		return 0;
	}
	for (k = 0; k < q->n; k++)
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
				   q->r[k], "file")), file) == 0)
			break;
	if (k < q->n) {
		cJSON_Delete(q->r[k]);
		q->r[k] = doc;
	} else if (q->n < 32) {
		q->r[q->n++] = doc;
	} else {
		cJSON_Delete(doc);
	}
	return 0;
}

static void print_quality(struct mb_store *s, int64_t id)
{
	struct quality q;
	char safe[256];
	int k;

	memset(&q, 0, sizeof(q));
	mb_store_events(s, id, 0, take_quality, &q);
	if (q.n == 0)
		return;
	printf("\nquality against the F16 (KL divergence, top-1 agreement, "
	       "perplexity ratio)\n");
	printf("  %-34s %10s %10s %7s %9s\n", "FILE", "KLD MEAN", "KLD P99",
	       "TOP-1", "PPL RATIO");
	for (k = 0; k < q.n; k++) {
		const cJSON *d = q.r[k];
#define NUM(key) cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d, key))
		printf("  %-34s %10.6f %10.6f %6.1f%% %9.4f%s\n",
		       mb_printable(safe, sizeof(safe), cJSON_GetStringValue(
			       cJSON_GetObjectItemCaseSensitive(d, "file"))),
		       NUM("kld_mean"), NUM("kld_p99"), 100 * NUM("top1"),
		       NUM("ppl_ratio"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "ok"))
			       ? "" : "  BROKEN");
#undef NUM
		cJSON_Delete(q.r[k]);
	}
}

/* Which file to start with, and why, as the model card says it. */
static void print_recommended(struct mb_store *s, int64_t id)
{
	struct cli_rec rec;

	if (cli_recommended(s, id, &rec) != 0)
		return;
	printf("\nrecommended: %s, %s", rec.file, rec.why);
	if (rec.measured)
		printf(" (mean KL %.5f, top-1 %.1f%%)", rec.kld_mean,
		       100 * rec.top1);
	printf("\n");
}

static const struct cli_opt opts[] = {
	{ "json", 0, NULL, NULL, "print JSON (proto/show.schema.json)" },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec spec = {
	"mibera-job show", "JOB", 1, 1,
	"Everything about one job: its source and commit, worker, time and "
	"cost, each\nstep with its attempts and duration, the config.json "
	"repairs, the artifacts\nwith checksums and smoke results, and the "
	"error when it failed.", opts,
};

/* What the user settled for the conversion (submit's --set, --base): as
 * JSON into b (null when nothing), or as a line for a person to f. */
static void settings(struct mb_store *s, int64_t id, struct mb_buf *b, FILE *f)
{
	char *text = malloc(1 << 20), shown[1200];
	cJSON *doc = NULL, *e;
	const char *base;

	if (text != NULL && mb_store_job_overrides(s, id, text, 1 << 20) == 0)
		doc = mb_json_parse(text, strlen(text));
	free(text);
	if (!cJSON_IsObject(doc)) {
		if (b != NULL)
			mb_buf_adds(b, "null");
		cJSON_Delete(doc);
		return;
	}
	/* the base's config is the hub's, not the user's words */
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "base_config");
	base = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "base"));
	if (b != NULL) {
		char *t = cJSON_PrintUnformatted(doc);

		mb_buf_adds(b, t ? t : "null");
		cJSON_free(t);
	} else {
		fprintf(f, "  set by the user:");
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(doc, "set")) {
			char *v = cJSON_PrintUnformatted(e);

			fprintf(f, " %s=%s", e->string,
				mb_printable(shown, sizeof(shown), v));
			cJSON_free(v);
		}
		if (base != NULL)
			fprintf(f, " base %s", mb_printable(shown, sizeof(shown),
							    base));
		fprintf(f, "\n");
	}
	cJSON_Delete(doc);
}

/* show --json: proto/show.schema.json. */
static int show_json(struct mb_store *s, const struct mb_job_row *j)
{
	struct cli_rec rec;
	struct repairs rs;
	struct arts a = { 0, NULL };
	struct mb_buf b, part;
	char dir[4200];

	memset(&rs, 0, sizeof(rs));
	mb_buf_init(&b, 64u << 20);
	mb_buf_init(&part, 32u << 20);
	mb_buf_adds(&b, "{\"version\":1,\"job\":");
	cli_job_json(&b, s, j, 1);
	mb_buf_addf(&b, ",\"cost_per_hour\":%.4f,\"notify_url\":", j->cost_per_hour);
	mb_json_quote(&b, j->notify_url);
	mb_buf_adds(&b, ",\"settings\":");
	settings(s, j->id, &b, NULL);
	rs.json = &part;
	mb_store_events(s, j->id, 0, take_repair, &rs);
	mb_buf_adds(&b, ",\"repairs\":[");
	if (part.len > 0)
		mb_buf_add(&b, part.data, part.len);
	mb_buf_reset(&part);
	a.json = &part;
	mb_store_artifact_list_by_name(s, j->id, show_artifact, &a);
	mb_job_dir("artifacts", j->id, dir, sizeof(dir));
	mb_buf_adds(&b, "],\"recommended\":");
	if (cli_recommended(s, j->id, &rec) != 0) {
		mb_buf_adds(&b, "null");
	} else {
		mb_buf_adds(&b, "{\"file\":");
		mb_json_quote(&b, rec.file);
		mb_buf_adds(&b, ",\"why\":");
		mb_json_quote(&b, rec.why);
		if (rec.measured)
			mb_buf_addf(&b, ",\"kld_mean\":%.8g,\"top1\":%.8g",
				    rec.kld_mean, rec.top1);
		mb_buf_adds(&b, "}");
	}
	mb_buf_adds(&b, ",\"artifacts_dir\":");
	mb_json_quote(&b, dir);
	mb_buf_adds(&b, ",\"artifacts\":[");
	if (part.len > 0)
		mb_buf_add(&b, part.data, part.len);
	mb_buf_adds(&b, "]}\n");
	fwrite(b.data, 1, b.len, stdout);
	mb_buf_release(&part);
	mb_buf_release(&b);
	return 0;
}

int cmd_show(int argc, char **argv)
{
	struct mb_store *s;
	struct mb_job_row j;
	struct cli_parse p;
	struct repairs rs;
	struct arts a = { 0, NULL };
	char dir[4200], c[32], st[32], fin[32];
	long long id;
	int json = 0, k;
	double held;

	cli_parse_init(&p, &spec, argc, argv);
	while ((k = cli_next(&p)) > 0)
		if (cli_is(&p, "json"))
			json = 1;
	if (k < 0)
		return p.exit;
	if (cli_job_id(p.args[0], &id) != 0)
		return cli_usage_error(&spec, "'%s' is not a job id", p.args[0]);
	if (cli_open_job("show", id, &s, &j) != 0)
		return 1;
	if (json) {
		k = show_json(s, &j);
		mb_store_close(s);
		return k;
	}
	when(j.created_at, c, sizeof(c));
	when(j.started_at, st, sizeof(st));
	when(j.finished_at, fin, sizeof(fin));
	held = cli_held(s, &j);
	printf("job %lld  %s  %s", id, j.state, j.source);
	if (j.commit_sha[0])
		printf("  (commit %.12s)", j.commit_sha);
	{
		struct mb_job_row now = j;

		now.held_seconds = held;
		printf("\n  worker %s at $%.2f/h, held %.0f s, cost $%.2f, %d "
		       "attempt%s\n", j.worker, j.cost_per_hour, held,
		       mb_job_cost(&now), j.attempts, j.attempts == 1 ? "" : "s");
	}
	printf("  %s layout, %s weights from %s, quantized to %s, importance "
	       "matrix %s, fidelity %s, smoke test %s\n"
	       "  created %s, started %s, finished %s\n", j.layout, j.outtype,
	       strcmp(j.converter, "llama.cpp") == 0
		       ? "llama.cpp's convert_hf_to_gguf.py"
		       : "mibera's converter",
	       j.quants, j.imatrix[0] ? j.imatrix : "auto",
	       j.fidelity ? "on" : "off", j.smoke ? "on" : "off", c, st, fin);
	if (strcmp(j.state, "waiting") == 0) {
		when(j.next_try_at, c, sizeof(c));
		printf("  waiting until %s to try again\n", c);
	}
	if (j.notify_url[0])
		printf("  notifies %s\n", j.notify_url);
	settings(s, id, NULL, stdout);
	if (j.error[0])
		printf("\nerror: %s\n", j.error);
	printf("\nsteps\n");
	mb_store_step_list(s, id, show_step, NULL);
	printf("\nconfig.json repairs\n");
	memset(&rs, 0, sizeof(rs));
	rs.r = calloc(MAX_REPAIRS, sizeof(*rs.r));
	if (rs.r != NULL)
		mb_store_events(s, id, 0, take_repair, &rs);
	if (rs.n == 0)
		printf("  none (or not converted yet)\n");
	else
		print_repairs(&rs);
	free(rs.r);
	print_quality(s, id);
	mb_job_dir("artifacts", id, dir, sizeof(dir));
	printf("\nartifacts in %s\n", dir);
	mb_store_artifact_list_by_name(s, id, show_artifact, &a);
	if (a.n == 0)
		printf("  none yet\n");
	print_recommended(s, id);
	mb_store_close(s);
	return 0;
}
