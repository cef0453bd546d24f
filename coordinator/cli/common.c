/* What the mibera-job subcommands share: reading a job id, opening the
 * job database and a job in it, with the messages a person sees, and
 * the ways they show text, sizes and times. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/hub.h"
#include "common/modelcfg.h"
#include "common/splitset.h"
#include "common/text.h"

#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"
#include "coordinator/publish.h"
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

void cli_count(double n, const char *noun, char *out, size_t cap)
{
	snprintf(out, cap, "%.0f %s%s", n, noun, n == 1 ? "" : "s");
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

const char *cli_fit(const char *s, size_t width, int tail, char *buf,
		    size_t cap)
{
	char whole[2048];
	size_t n, keep;

	mb_printable(whole, sizeof(whole), s);
	n = strlen(whole);
	if (width >= cap)
		width = cap - 1;
	if (n <= width) {
		snprintf(buf, cap, "%s", whole);
		return buf;
	}
	if (width <= 3) {
		snprintf(buf, cap, "%.*s", (int)width, "...");
		return buf;
	}
	keep = width - 3;
	if (tail) {
		const char *from = whole + n - keep;

		/* not from the middle of a UTF-8 character */
		while (((unsigned char)*from & 0xc0) == 0x80)
			from++;
		snprintf(buf, cap, "...%s", from);
	} else {
		while (keep > 0 && ((unsigned char)whole[keep] & 0xc0) == 0x80)
			keep--;
		snprintf(buf, cap, "%.*s...", (int)keep, whole);
	}
	return buf;
}

struct running {
	int64_t started_at;
};

static int running_step(const struct mb_step_row *st, void *ctx)
{
	struct running *r = ctx;

	if (strcmp(st->state, "running") == 0 && st->started_at > r->started_at)
		r->started_at = st->started_at;
	return 0;
}

double cli_held(struct mb_store *s, const struct mb_job_row *j)
{
	struct running r = { 0 };
	int64_t now = (int64_t)time(NULL);

	/* the coordinator adds a step's time when the next one starts */
	if (strcmp(j->state, "running") != 0)
		return j->held_seconds;
	mb_store_step_list(s, j->id, running_step, &r);
	if (r.started_at <= 0 || r.started_at > now)
		return j->held_seconds;
	return j->held_seconds + (double)(now - r.started_at);
}

int cli_user_setting(const struct cli_parse *p, cJSON *set, const char **base)
{
	char err[1024];

	if (cli_is(p, "base")) {
		if (!mb_hub_repo_id_ok(p->val))
			return cli_usage_error(p->spec, "--base is a model on the "
					       "hub, org/name, not '%s'", p->val);
		*base = p->val;
		return 1;
	}
	if (!cli_is(p, "set"))
		return 0;
	{
		/* the second value of a key would silently win */
		char key[64];
		size_t n = strcspn(p->val, "=");
		const cJSON *had;

		snprintf(key, sizeof(key), "%.*s", (int)(n < 63 ? n : 63), p->val);
		had = cJSON_GetObjectItemCaseSensitive(set, key);
		if (had != NULL) {
			char *was = cJSON_PrintUnformatted(had);
			int rc = cli_usage_error(p->spec, "--set %s is given twice "
						 "(%s, then %s): keep one",
						 key, was ? was : "?",
						 p->val + n + (p->val[n] == '='));

			free(was);
			return rc;
		}
	}
	if (mb_modelcfg_user_set(set, p->val, err, sizeof(err)) != 0)
		return cli_usage_error(p->spec, "--set %s", err);
	return 1;
}

int cli_base_config(const char *cmd, const char *base, char **text,
		    size_t *len)
{
	struct mb_hub h;
	int rc;

	*text = NULL;
	*len = 0;
	if (mb_hub_init(&h, NULL, NULL) != 0)
		return 0;
	if (h.offline) {
		fprintf(stderr, "%s: warning: offline, so the config of %s is not "
			"read from the hub: the built-in table is used if it "
			"knows it\n", cmd, base);
		mb_hub_release(&h);
		return 0;
	}
	h.max_attempts = 2;
	rc = mb_hub_read_config(&h, base, 1 << 20, text, len);
	if (rc == MB_ENOENT || rc == MB_EAUTH) {
		char shown[600];

		fprintf(stderr, "%s: --base %s: %s\n", cmd, base,
			mb_printable(shown, sizeof(shown), h.err));
		mb_hub_release(&h);
		return 1;
	}
	if (rc != 0)
		fprintf(stderr, "%s: warning: cannot read the config of %s from "
			"the hub (%s): the built-in table is used if it knows "
			"it\n", cmd, base, h.err[0] ? h.err : mb_strerror(rc));
	mb_hub_release(&h);
	return 0;
}

/* A job's files and their figures, for cli_recommended: at most this
 * many files (a job makes a few quants and the F16). */
#define REC_MAX 64

struct rec_ctx {
	struct mb_publish_cand c[REC_MAX];
	char names[REC_MAX][256];
	size_t n;
};

static int rec_artifact(const char *name, uint64_t size, const char *sha256,
			const char *path, const char *smoke, void *ctx)
{
	struct rec_ctx *rc = ctx;

	(void)sha256;
	(void)path;
	(void)smoke;
	if (rc->n == REC_MAX)
		return 0;
	mb_printable(rc->names[rc->n], sizeof(rc->names[0]), name);
	rc->c[rc->n].name = rc->names[rc->n];
	rc->c[rc->n].size = size;
	rc->n++;
	return 0;
}

/* The fidelity step's results: the last for a file wins (a retry may
 * have measured it again). */
static int rec_figures(int64_t event_id, const char *step, int64_t at_ms,
		       const char *type, const char *data, void *ctx)
{
	struct rec_ctx *rc = ctx;
	cJSON *doc;
	const cJSON *kl, *t1;
	char file[256];
	size_t i;

	(void)event_id;
	(void)at_ms;
	if (strcmp(step, "fidelity") != 0 || strcmp(type, "result") != 0)
		return 0;
	doc = cJSON_Parse(data);
	mb_printable(file, sizeof(file), cJSON_GetStringValue(
			     cJSON_GetObjectItemCaseSensitive(doc, "file")));
	kl = cJSON_GetObjectItemCaseSensitive(doc, "kld_mean");
	t1 = cJSON_GetObjectItemCaseSensitive(doc, "top1");
	for (i = 0; doc != NULL && i < rc->n; i++) {
		struct mb_publish_cand *c = &rc->c[i];
		char whole[256];

		/* a set's figures are under its artifact's name or its
		 * first part's */
		mb_splitset_artifact_name(c->name, whole, sizeof(whole));
		if (strcmp(c->name, file) != 0 && strcmp(whole, file) != 0)
			continue;
		c->measured = cJSON_IsNumber(kl) && cJSON_IsNumber(t1);
		c->broken = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(doc,
									  "ok"));
		c->kld_mean = c->measured ? kl->valuedouble : 0;
		c->top1 = c->measured ? t1->valuedouble : 0;
	}
	cJSON_Delete(doc);
	return 0;
}

/* A set of parts is one candidate, as the job's own recommendation
 * (publish.c) weighs it: named by its first part, which libllama loads,
 * with the size of all of them; its other parts are no candidates. */
static void rec_sets(struct rec_ctx *rc)
{
	char whole[256], other[256];
	uint64_t size[REC_MAX];
	int first[REC_MAX];
	size_t i, k, n = 0, stem;
	unsigned no, count;

	/* first every set's size, while every part is still in place */
	for (i = 0; i < rc->n; i++) {
		size[i] = rc->c[i].size;
		first[i] = -1; /* a whole file */
		if (!mb_splitset_parse_name(rc->names[i], &stem, &no, &count))
			continue;
		first[i] = no == 0;
		if (no != 0)
			continue;
		mb_splitset_artifact_name(rc->names[i], whole, sizeof(whole));
		for (k = 0; k < rc->n; k++) {
			mb_splitset_artifact_name(rc->names[k], other,
						  sizeof(other));
			if (k != i && strcmp(other, whole) == 0)
				size[i] += rc->c[k].size;
		}
	}
	for (i = 0; i < rc->n; i++) {
		if (first[i] == 0)
			continue;
		if (n != i) {
			memcpy(rc->names[n], rc->names[i], sizeof(rc->names[0]));
			rc->c[n] = rc->c[i];
		}
		rc->c[n].name = rc->names[n];
		rc->c[n].size = size[i];
		rc->c[n].parts = first[i] == 1;
		n++;
	}
	rc->n = n;
}

int cli_recommended(struct mb_store *s, long long id, struct cli_rec *r)
{
	struct rec_ctx *rc = calloc(1, sizeof(*rc));
	int k;

	memset(r, 0, sizeof(*r));
	if (rc == NULL)
		return 1;
	mb_store_artifact_list(s, id, rec_artifact, rc);
	rec_sets(rc);
	if (rc->n > 0)
		mb_store_events(s, id, 0, rec_figures, rc);
	k = mb_publish_choose(rc->c, rc->n, r->why, sizeof(r->why));
	if (k >= 0) {
		snprintf(r->file, sizeof(r->file), "%s", rc->c[k].name);
		r->measured = rc->c[k].measured;
		r->kld_mean = rc->c[k].kld_mean;
		r->top1 = rc->c[k].top1;
	}
	free(rc);
	return k >= 0 ? 0 : 1;
}
