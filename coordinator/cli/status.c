/*
 * mibera-job status [JOB] [--json]: the jobs (or one job and its steps),
 * with the time each held its worker and what that cost. The list shows
 * the jobs not finished and the latest 50 finished ones (--all: every
 * job), then the counts by state and the cost of all of them. The --json
 * forms follow proto/status.schema.json (version 1):
 *   status [--all] --json  {"version":1,"jobs":[<job>...],"counts":{...},
 *                           "total_cost":N}
 *   status JOB --json      {"version":1,"job":<job with "steps">}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"
#include "coordinator/lock.h"
#include "coordinator/store.h"

/* Finished jobs the list shows without --all. */
#define RECENT 50

struct ctx {
	struct mb_store *s;
	struct mb_buf *b;	/* JSON output, or NULL for text */
	int steps;		/* with each job's steps */
	double total_cost;
};

static int step_json(const struct mb_step_row *st, void *p)
{
	struct mb_buf *b = p;

	if (b->data[b->len - 1] != '[')
		mb_buf_adds(b, ",");
	mb_buf_addf(b, "{\"name\":\"%s\",\"state\":\"%s\",\"attempts\":%d,"
		    "\"started_at\":%lld,\"finished_at\":%lld,\"error\":",
		    st->name, st->state, st->attempts, (long long)st->started_at,
		    (long long)st->finished_at);
	mb_json_quote(b, st->error);
	return mb_buf_adds(b, "}");
}

/* The job's cost with its held time as cli_held counts it. */
static double cost_now(struct mb_store *s, const struct mb_job_row *j,
		       double *held)
{
	struct mb_job_row now = *j;

	now.held_seconds = cli_held(s, j);
	*held = now.held_seconds;
	return mb_job_cost(&now);
}

void cli_job_json(struct mb_buf *b, struct mb_store *s,
		  const struct mb_job_row *j, int steps)
{
	double held, usd = cost_now(s, j, &held);

	mb_buf_addf(b, "{\"id\":%lld,\"source\":", (long long)j->id);
	mb_json_quote(b, j->source);
	mb_buf_adds(b, ",\"worker\":");
	mb_json_quote(b, j->worker);
	mb_buf_addf(b, ",\"state\":\"%s\",\"quants\":", j->state);
	mb_json_quote(b, j->quants);
	mb_buf_addf(b, ",\"converter\":\"%s\"", j->converter[0] ? j->converter
							    : "mibera");
	mb_buf_addf(b, ",\"layout\":\"%s\",\"outtype\":\"%s\",\"smoke\":%s,"
		    "\"imatrix\":\"%s\",\"fidelity\":%s,\"attempts\":%d,\"held_seconds\":%.1f,\"cost\":%.4f,"
		    "\"created_at\":%lld,\"started_at\":%lld,\"finished_at\":%lld,"
		    "\"next_try_at\":%lld,\"commit\":", j->layout, j->outtype,
		    j->smoke ? "true" : "false",
		    j->imatrix[0] ? j->imatrix : "auto",
		    j->fidelity ? "true" : "false", j->attempts, held, usd,
		    (long long)j->created_at, (long long)j->started_at,
		    (long long)j->finished_at, (long long)j->next_try_at);
	mb_json_quote(b, j->commit_sha);
	mb_buf_adds(b, ",\"error\":");
	mb_json_quote(b, j->error);
	if (steps) {
		mb_buf_adds(b, ",\"steps\":[");
		mb_store_step_list(s, j->id, step_json, b);
		mb_buf_adds(b, "]");
	}
	mb_buf_adds(b, "}");
}

static int job_json(const struct mb_job_row *j, void *p)
{
	struct ctx *c = p;
	double held;

	if (c->b->len > 1)
		mb_buf_adds(c->b, ",");
	cli_job_json(c->b, c->s, j, c->steps);
	c->total_cost += cost_now(c->s, j, &held);
	return 0;
}

static int job_text(const struct mb_job_row *j, void *p)
{
	struct ctx *c = p;
	double held, usd = cost_now(c->s, j, &held);
	char src[64], q[32];

	printf("%-5lld %-10s %-34s %-10s %-14s %7.0fs  $%.2f%s%s\n",
	       (long long)j->id, j->state, cli_fit(j->source, 34, 0, src, sizeof(src)),
	       j->worker,
	       cli_fit(j->quants, 14, 0, q, sizeof(q)), held, usd,
	       j->error[0] ? "  " : "", j->error);
	c->total_cost += usd;
	return 0;
}

static int step_text(const struct mb_step_row *st, void *p)
{
	(void)p;
	printf("  %-10s %-8s attempts %d%s%s\n", st->name, st->state, st->attempts,
	       st->error[0] ? "  " : "", st->error);
	return 0;
}

/* Whether anything will run the queue: the coordinator's lock and
 * heartbeat (coordinator/lock.h). */
static void coordinator_line(const struct mb_coord_info *ci, int unfinished)
{
	if (ci->alive) {
		long ago = ci->beat > 0 ? (long)(time(NULL) - ci->beat) : -1;

		printf("coordinator: running (pid %ld", ci->pid);
		if (ago >= 0)
			printf(", heartbeat %ld s ago", ago);
		printf(")%s\n", ago > 3 * MB_COORD_BEAT_S
				       ? "; it has not beaten for a while: is it stuck?"
				       : "");
	} else {
		printf("coordinator: not running%s\n", unfinished > 0
		       ? "; the queue waits for it: start `mibera-coordinator` "
			 "(or the systemd unit deploy/mibera-coordinator.service)"
		       : "");
	}
}

static const struct cli_opt opts[] = {
	{ "all", 0, NULL, NULL, "every job, not only the latest 50 finished" },
	{ "json", 0, NULL, NULL, "print JSON (proto/status.schema.json)" },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec spec = {
	"mibera-job status", "[JOB]", 0, 1,
	"The jobs not finished and the latest 50 finished ones, with the time "
	"each held\nits worker and what that cost, then the counts by state; "
	"or one JOB and\nits steps.", opts,
};

int cmd_status(int argc, char **argv)
{
	struct ctx c = { 0 };
	struct mb_buf b;
	long long id = 0;
	struct mb_job_totals t;
	struct mb_coord_info ci;
	struct cli_parse p;
	int i, json = 0, all = 0, rc;

	cli_parse_init(&p, &spec, argc, argv);
	while ((i = cli_next(&p)) > 0) {
		if (cli_is(&p, "json"))
			json = 1;
		else if (cli_is(&p, "all"))
			all = 1;
	}
	if (i < 0)
		return p.exit;
	if (p.nargs == 1 && cli_job_id(p.args[0], &id) != 0)
		return cli_usage_error(&spec, "'%s' is not a job id", p.args[0]);
	/* thousands of lines: one write per block, not per line */
	setvbuf(stdout, NULL, _IOFBF, 1 << 20);
	if (id > 0) {
		struct mb_job_row j;

		if (cli_open_job("status", id, &c.s, &j) != 0)
			return 1;
		if (json) {
			mb_buf_init(&b, 1 << 20);
			c.b = &b;
			c.steps = 1;
			cli_job_json(&b, c.s, &j, 1);
			printf("{\"version\":1,\"job\":%s}\n", b.data);
			mb_buf_release(&b);
		} else {
			job_text(&j, &c);
			mb_store_step_list(c.s, id, step_text, NULL);
		}
		mb_store_close(c.s);
		return 0;
	}
	if (cli_open(&c.s) != 0)
		return 1;
	rc = mb_store_job_totals(c.s, &t);
	if (rc != 0) {
		char why[1024];

		/* a damaged database says so, rather than "0 jobs" */
		if (mb_store_check(c.s, why, sizeof(why)) == 0)
			snprintf(why, sizeof(why), "cannot read the job database: "
				 "%s", mb_store_errmsg(c.s));
		fprintf(stderr, "mibera-job status: %s\n", why);
		mb_store_close(c.s);
		return 1;
	}
	mb_coord_probe(&ci);
	if (json) {
		mb_buf_init(&b, 256u << 20);
		c.b = &b;
		mb_buf_adds(&b, "[");
		if (rc == 0)
			rc = all ? mb_store_job_list(c.s, job_json, &c)
				 : mb_store_job_list_recent(c.s, RECENT, job_json, &c);
		printf("{\"version\":1,\"jobs\":%s],\"counts\":{\"jobs\":%d,"
		       "\"queued\":%d,\"running\":%d,\"waiting\":%d,"
		       "\"succeeded\":%d,\"failed\":%d,\"cancelled\":%d},"
		       "\"total_cost\":%.4f,\"coordinator\":{\"running\":%s,"
		       "\"pid\":%ld,\"started\":%lld,\"heartbeat\":%lld}}\n",
		       b.data, t.jobs, t.queued, t.running, t.waiting, t.succeeded,
		       t.failed, t.cancelled, t.cost, ci.alive ? "true" : "false",
		       ci.alive ? ci.pid : 0L, ci.alive ? (long long)ci.started : 0LL,
		       ci.alive ? (long long)ci.beat : 0LL);
		mb_buf_release(&b);
	} else {
		printf("%-5s %-10s %-34s %-10s %-14s %8s  %s\n", "JOB", "STATE",
		       "SOURCE", "WORKER", "QUANTS", "HELD", "COST");
		if (rc == 0)
			rc = all ? mb_store_job_list(c.s, job_text, &c)
				 : mb_store_job_list_recent(c.s, RECENT, job_text, &c);
		printf("%d job%s: %d queued, %d running, %d waiting, %d succeeded, "
		       "%d failed, %d cancelled%s; total cost $%.2f\n", t.jobs,
		       t.jobs == 1 ? "" : "s", t.queued, t.running, t.waiting,
		       t.succeeded, t.failed, t.cancelled,
		       !all && t.succeeded + t.failed + t.cancelled > RECENT
			       ? " (the latest 50 finished shown; --all for every one)"
			       : "", t.cost);
		coordinator_line(&ci, t.queued + t.running + t.waiting);
	}
	mb_store_close(c.s);
	return rc == 0 ? 0 : 1;
}
