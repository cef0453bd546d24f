/* jobrun: drive one job's steps through a transport. */
#define _GNU_SOURCE /* gettid */
#include "coordinator/jobrun.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/convert.h"
#include "common/download.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/manifest.h"
#include "common/modelcfg.h"
#include "common/sha256.h"
#include "common/splitset.h"
#include "common/text.h"
#include "coordinator/config.h"
#include "coordinator/converter.h"
#include "coordinator/ollama.h"
#include "coordinator/publish.h"
#include "coordinator/pull.h"
#include "coordinator/smoke.h"
#include "coordinator/store.h"
#include "coordinator/transport.h"
#include "coordinator/workerconn.h"
#include "mb_version.h"
#include "proto/event.h"
#include "proto/protocol.h"

/* What one job needs while it runs. */
#define AHEAD_MAX 16

struct run {
	const struct mb_config *cfg;
	struct mb_store *s;
	struct mb_job_row *j;
	struct mb_worker_row w;
	struct mb_transport *t;
	char agent[2200];
	char job[32];		/* the job's name on the worker */
	char wjob[2300];	/* its directory there */
	char model[2400];	/* the model directory there */
	char out[2400];		/* the artifacts directory there */
	char name[128];		/* the model's name for file names */
	char f16[3000];		/* the converted GGUF there */
	char adir[4400];	/* the job's artifacts here */
	struct mb_manifest_list *ml;	/* what the pull brought, verified */
	struct mb_buf smoke;	/* the smoke results, a JSON array */
	char *result;		/* the running step's result JSON, or NULL */
	double held_from;	/* held time is counted up to here */
	char *err;
	size_t errcap;
	long w_cpus;		/* the worker's, from its hello */
	uint64_t w_ram;
	struct early *early;	/* pulled while the worker made the rest */
	int convert_started;	/* this run started convert beside fetch */
	int fetch_was_running;	/* a stopped coordinator left it running */
	/* a worker step running beside the followed one or the pull, whose
	 * journal is read now and then over a connection of its own
	 * (side_peek), and the job's step its events belong to */
	const char *side_step, *side_jstep;
	struct mb_transport *side;
	double side_last;
	/* the quants the convert writes beside the F16 (convert --also:
	 * TYPE=PATH on the worker) */
	int nbeside;
	char beside[MB_CONVERT_MAXQ][3100];
	/* files pulled as the worker writes them, one chunk at a time
	 * (ahead_mu), as the one stream of a pull */
	pthread_mutex_t ahead_mu;
	struct ahead {
		struct mb_pull_ahead *a;
		struct mb_pull_opts o;
		char name[512];
		double t0, last;
	} ahead[AHEAD_MAX];
	int nahead;
	/* the worker's cleanup, started once the pull verified every file,
	 * running beside the smoke test */
	pthread_t cl_th;
	int cl_on, cl_rc, cl_status, cl_done;
};

/* The pipeline: each artifact is pulled (and smoke tested) as soon as the
 * worker has made it, while the worker makes the next. What this run
 * pulled and verified is kept here, so the pull step neither fetches nor
 * hashes it again; a smoke test runs on its own thread while the next
 * file is pulled. After a restart a file published under artifacts/ is
 * hashed against the worker's manifest once and kept, and so is its smoke
 * result, stored with the artifact's sha256 in the database. */
#define EARLY_MAX 64
struct early_file {
	char name[512];
	uint8_t sha256[MB_SHA256_LEN];
	char *smoke;		/* its smoke result (a JSON object), or NULL */
	int kept;		/* that result is from before a restart */
};

struct early {
	struct early_file f[EARLY_MAX];
	size_t n;
	int pull_running;	/* the pull step was marked running */
	/* the smoke test in flight, on its own thread */
	pthread_t th;
	int th_on;
	size_t th_idx;
	char th_path[4700];
	int th_rc;
	struct mb_smoke_result th_sr;
	char *th_json;		/* its result as smoke_json writes it */
	struct mb_store *th_s;	/* where the thread stores it */
	int64_t th_job;
};

/* Stores one event the coordinator itself reports (the pull's), in the
 * worker's event format with seq 0; members is the object's inside
 * ("k":v,...). */
static void store_event(struct run *r, const char *step, const char *type,
			const char *members)
{
	struct mb_buf b;
	char err[256];

	mb_buf_init(&b, MB_EVENT_MAX - 1);
	if (mb_event_format(&b, 0, step, type, members) == 0 &&
	    mb_store_step_events(r->s, r->j->id, step, b.data, b.len, NULL, -1,
				 err, sizeof(err)) != 0)
		mb_log(MB_LOG_WARN, "job %lld: %s", (long long)r->j->id, err);
	mb_buf_release(&b);
}

/* A sentence for a person in the job's events, as a "log" event of the
 * coordinator's (logs shows it as "LEVEL: message"). */
static void note(struct run *r, const char *step, const char *level,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void note(struct run *r, const char *step, const char *level,
		 const char *fmt, ...)
{
	char msg[1600];
	struct mb_buf b;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mb_buf_init(&b, sizeof(msg) * 2 + 64);
	mb_buf_adds(&b, "\"level\":");
	mb_json_quote(&b, level);
	mb_buf_adds(&b, ",\"msg\":");
	mb_json_quote(&b, msg);
	if (mb_buf_error(&b) == 0)
		store_event(r, step, "log", b.data);
	mb_buf_release(&b);
}

struct collect {
	const char *step, *type;
	cJSON *arr;
};

static int collect_one(int64_t id, const char *step, int64_t at_ms,
		       const char *type, const char *data, void *ctx)
{
	struct collect *c = ctx;
	static const char *const envelope[] = { "v", "seq", "ms", "step",
						"type", NULL };
	cJSON *doc;
	int k;

	(void)id;
	(void)at_ms;
	if (strcmp(step, c->step) != 0 || strcmp(type, c->type) != 0)
		return 0;
	doc = mb_json_parse(data, strlen(data));
	if (!cJSON_IsObject(doc)) {
		cJSON_Delete(doc);
		return 0;
	}
	for (k = 0; envelope[k] != NULL; k++)
		cJSON_DeleteItemFromObjectCaseSensitive(doc, envelope[k]);
	cJSON_AddItemToArray(c->arr, doc);
	return 0;
}

/* The members of the job's stored events of step and type, without their
 * envelope, as a JSON array (caller frees with cJSON_Delete). */
static cJSON *stored_events(struct run *r, const char *step, const char *type)
{
	struct collect c = { step, type, cJSON_CreateArray() };

	if (c.arr != NULL)
		mb_store_events(r->s, r->j->id, 0, collect_one, &c);
	return c.arr;
}

/* --- running agent verbs --- */

struct follow_ctx {
	struct run *r;
	const char *step;	/* the job's step the events belong to */
	const char *wstep;	/* the worker step whose journal this is */
	int64_t offset;		/* journal bytes stored */
	struct mb_buf line;	/* a line not yet ended */
	struct mb_buf batch;	/* whole lines not yet stored */
	int rc;
};

/* Stores the whole lines gathered so far with the offset they end at. */
static int follow_flush(struct follow_ctx *f)
{
	int64_t end = f->offset + (int64_t)f->batch.len;

	if (f->batch.len == 0)
		return 0;
	f->rc = mb_store_step_events(f->r->s, f->r->j->id, f->step,
				     f->batch.data, f->batch.len, f->wstep, end,
				     f->r->err, f->r->errcap);
	if (f->rc != 0)
		return f->rc;
	f->offset = end;
	mb_buf_reset(&f->batch);
	return 0;
}

static void side_peek(struct run *r);
static void ahead_peek(struct run *r);
static void ahead_adopt(struct run *r, const struct mb_manifest *m);

/* Streams a journal of any size: lines are gathered as they arrive and
 * stored in batches with the offset they end at, so a follow that stops
 * anywhere resumes at the next line. Only a single line longer than an
 * event may be is a protocol error. */
static int on_follow(int stream, const void *data, size_t len, void *ctx)
{
	struct follow_ctx *f = ctx;
	const char *p = data;

	if (stream != MB_EXEC_STDOUT)
		return 0;
	while (len > 0) {
		const char *nl = memchr(p, '\n', len);
		size_t n = nl ? (size_t)(nl - p) + 1 : len;

		if (mb_buf_add(&f->line, p, n) != 0) {
			mb_seterr(f->r->err, f->r->errcap, "the worker's journal "
				  "of '%s' has a line longer than %d bytes",
				  f->wstep, MB_EVENT_MAX);
			f->rc = MB_EPROTO;
			return 1;
		}
		p += n;
		len -= n;
		if (nl == NULL)
			break;
		if (f->batch.len + f->line.len > f->batch.cap && follow_flush(f) != 0)
			return 1;
		if (mb_buf_add(&f->batch, f->line.data, f->line.len) != 0) {
			f->rc = MB_ENOMEM;
			return 1;
		}
		mb_buf_reset(&f->line);
	}
	if (follow_flush(f) != 0)
		return 1;
	side_peek(f->r);
	ahead_peek(f->r);
	return 0;
}

/* What a worker step cost, as its supervisor measured it: a "finished"
 * event under the job's step, for show and the figures of a run. */
static void finished_event(struct run *r, const char *jstep, const char *wstep,
			   const struct mb_step_result *sr)
{
	struct mb_buf b;
	cJSON *had = stored_events(r, jstep, "finished");
	const cJSON *e;

	/* a restart reads a finished step's result again: once is enough */
	cJSON_ArrayForEach(e, had) {
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "seconds");
		const char *w = cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(e, "wstep"));

		if (w != NULL && strcmp(w, wstep) == 0 && cJSON_IsNumber(s) &&
		    fabs(s->valuedouble - sr->seconds) < 0.001) {
			cJSON_Delete(had);
			return;
		}
	}
	cJSON_Delete(had);
	mb_buf_init(&b, 1024);
	mb_buf_adds(&b, "\"wstep\":");
	mb_json_quote(&b, wstep);
	mb_buf_addf(&b, ",\"ok\":%s,\"exit\":%d,\"seconds\":%.3f,"
		    "\"peak_rss\":%llu", sr->ok ? "true" : "false", sr->exit,
		    sr->seconds, (unsigned long long)sr->peak_rss);
	if (mb_buf_error(&b) == 0)
		store_event(r, jstep, "finished", b.data);
	mb_buf_release(&b);
}

static int agent_exec(struct run *r, const char *const *args, const char *in,
		      struct mb_buf *out, struct mb_buf *errb,
		      mb_exec_output_fn fn, void *ctx, int *status)
{
	const char *argv[24];
	struct mb_exec x;
	int i, n = 0, rc;

	argv[n++] = r->agent;
	for (i = 0; args[i] != NULL && n < 20; i++)
		argv[n++] = args[i];
	argv[n++] = "--dir";
	argv[n++] = r->w.dir;
	argv[n] = NULL;
	memset(&x, 0, sizeof(x));
	x.argv = argv;
	x.in = in;
	x.in_len = in ? strlen(in) : 0;
	x.out = out;
	x.err = errb;
	x.on_output = fn;
	x.ctx = ctx;
	rc = mb_transport_exec(r->t, &x);
	*status = x.status;
	return rc;
}

/* A person cancelled the job (mibera-job cancel): nothing more is
 * started for it. */
static int cancelled(struct run *r)
{
	struct mb_job_row now;

	if (mb_store_job_get(r->s, r->j->id, &now) == 0 &&
	    strcmp(now.state, "cancelled") == 0) {
		mb_seterr(r->err, r->errcap, "cancelled");
		return 1;
	}
	return 0;
}

/* Starts worker step wstep running argv (a JSON array text) and follows it
 * to its result; the events are stored under the job's step jstep. */
/* start_only: start the step and return; *done (when not NULL) then says
 * whether it had finished already (a resumed job's step). */
static int worker_step(struct run *r, const char *jstep, const char *wstep,
		       const char *argv_json, int with_token, int start_only,
		       int *done)
{
	struct mb_buf spec, out, errb;
	struct follow_ctx f;
	char offs[32], path[2600], res[8192];
	const char *token = r->cfg->hf_token;
	int rc, status = 0, attempt;
	size_t got;

	if (cancelled(r))
		return MB_ECANCELLED;
	mb_buf_init(&spec, 1 << 20);
	mb_buf_addf(&spec, "{\"v\":1,\"argv\":%s", argv_json);
	if (with_token && token != NULL && *token != '\0') {
		/* the secret travels on stdin, never argv, never stored */
		mb_buf_adds(&spec, ",\"secrets\":{\"HF_TOKEN\":");
		mb_json_quote(&spec, token);
		mb_buf_adds(&spec, "}");
	}
	{
		/* the hub the coordinator was pointed at is the worker's too */
		static const char *const pass[] = { "HF_ENDPOINT", "HF_HUB_OFFLINE",
						    NULL };
		int k, n = 0;

		for (k = 0; pass[k] != NULL; k++) {
			const char *v = getenv(pass[k]);

			if (v == NULL || *v == '\0')
				continue;
			mb_buf_addf(&spec, "%s\"%s\":", n++ ? "," : ",\"env\":{",
				    pass[k]);
			mb_json_quote(&spec, v);
		}
		if (n > 0)
			mb_buf_adds(&spec, "}");
	}
	mb_buf_adds(&spec, "}");
	if ((rc = mb_buf_error(&spec)) != 0) {
		mb_seterr(r->err, r->errcap, "cannot make the spec of '%s': %s",
			  wstep, mb_strerror(rc));
		mb_buf_release(&spec);
		return rc;
	}
	for (attempt = 1;; attempt++) {
		const char *start[] = { "start", r->job, wstep, NULL };

		/* a cancel kills the step: that attempt's end is not a reason
		 * to start it again */
		if (attempt > 1 && cancelled(r)) {
			rc = MB_ECANCELLED;
			break;
		}

		mb_buf_init(&out, 1 << 16);
		mb_buf_init(&errb, 1 << 16);
		rc = agent_exec(r, start, spec.data, &out, &errb, NULL, NULL, &status);
		if (rc == 0 && status != 0)
			rc = MB_EPROTO;
		if (rc == MB_ENETWORK && attempt < 5) {
			/* the link dropped around the start: start is
			 * idempotent (a running or finished step says so), so
			 * ask again on the reconnected link */
			mb_buf_release(&out);
			mb_buf_release(&errb);
			continue;
		}
		if (rc != 0) {
			/* the shell's or the agent's line, without its
			 * newline */
			mb_seterr(r->err, r->errcap, "cannot start '%s' on %s: %s",
				  wstep, r->w.name, errb.data ?
				  mb_trim_end(errb.data) :
				  mb_transport_errmsg(r->t));
			mb_buf_release(&out);
			mb_buf_release(&errb);
			break;
		}
		if (start_only && done != NULL) {
			cJSON *doc = mb_json_parse(out.data ? out.data : "",
						   out.len);
			const char *a = cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(doc, "already"));

			*done = a != NULL && strcmp(a, "done") == 0;
			cJSON_Delete(doc);
		}
		mb_buf_release(&out);
		mb_buf_release(&errb);
		if (start_only) /* it runs on; a later call follows it */
			break;
		/* follow from the stored offset: nothing twice, nothing lost */
		memset(&f, 0, sizeof(f));
		f.r = r;
		f.step = jstep;
		f.wstep = wstep;
		if (mb_store_follow_offset(r->s, r->j->id, wstep, &f.offset) != 0)
			f.offset = 0;
		mb_buf_init(&f.line, MB_EVENT_MAX);
		mb_buf_init(&f.batch, 256u << 10);
		snprintf(offs, sizeof(offs), "%lld", (long long)f.offset);
		{
			const char *follow[] = { "follow", r->job, wstep, "--from",
						 offs, NULL };

			mb_buf_init(&errb, 1 << 16);
			rc = agent_exec(r, follow, NULL, NULL, &errb, on_follow, &f,
					&status);
		}
		mb_buf_release(&f.line);
		mb_buf_release(&f.batch);
		if (f.rc != 0) {
			/* what the follower itself refused: the worker's
			 * journal, or the local store, not the link */
			mb_buf_release(&errb);
			rc = f.rc;
			break;
		}
		if (rc == MB_ENETWORK && attempt < 5) {
			/* the link dropped: the step runs on; follow again */
			mb_buf_release(&errb);
			continue;
		}
		if (rc == 0 && status == 4 && attempt < 3) {
			/* the attempt died without a result: start it again */
			mb_buf_release(&errb);
			continue;
		}
		if (rc != 0 || status != 0) {
			mb_seterr(r->err, r->errcap, "following '%s' on %s failed: %s",
				  wstep, r->w.name, errb.data ?
				  mb_trim_end(errb.data) :
				  mb_transport_errmsg(r->t));
			mb_buf_release(&errb);
			rc = rc ? rc : MB_EPROTO;
			break;
		}
		mb_buf_release(&errb);
		snprintf(path, sizeof(path), "%s/%s.result.json", r->wjob, wstep);
		rc = mb_transport_read(r->t, path, 0, res, sizeof(res) - 1, &got);
		if (rc != 0) {
			mb_seterr(r->err, r->errcap, "cannot read the result of '%s': %s",
				  wstep, mb_transport_errmsg(r->t));
			break;
		}
		res[got] = '\0';
		{
			struct mb_step_result sr;
			char why[512];

			rc = mb_step_result_parse(res, got, &sr, why, sizeof(why));
			if (rc != 0) {
				mb_seterr(r->err, r->errcap, "%s on %s: %s", wstep,
					  r->w.name, why);
				break;
			}
			finished_event(r, jstep, wstep, &sr);
			if (sr.ok) {
				rc = 0;
			} else if (sr.cancelled) {
				mb_seterr(r->err, r->errcap, "%s on %s was cancelled",
					  wstep, r->w.name);
				rc = MB_ECANCELLED;
			} else {
				mb_seterr(r->err, r->errcap, "%s failed on %s: %s", wstep,
					  r->w.name, sr.error[0] ? sr.error
								: "no reason given");
				/* exit 1 is a failure a later run may get past (a
				 * network error; what was done is kept): start the
				 * step again, after a pause that grows; exit 3 and
				 * the rest need a person */
				rc = mb_step_exit_err(sr.exit);
			}
			if (rc == MB_ENETWORK && attempt < 4) {
				struct timespec ts = { 2L << attempt, 0 };

				nanosleep(&ts, NULL);
				continue;
			}
		}
		break;
	}
	mb_buf_release(&spec);
	return rc;
}

/* --- the pull --- */

/* Another stream to the job's worker. */
static int open_stream(void *ctx, struct mb_transport **t, char *err,
		       size_t errcap)
{
	struct run *r = ctx;
	char agent[2200];

	return mb_worker_connect(&r->w, NULL, t, agent, sizeof(agent), err,
				 errcap);
}

/* How often the journal of the step beside the followed one is read. */
#define SIDE_PEEK_S 2.0

/* The convert runs beside the fetch, whose journal is the one followed;
 * a quantize beside the pull of the file made before it. About every
 * SIDE_PEEK_S seconds, as the fetch's lines arrive or the pull reports
 * progress, the new whole lines of that side step's journal are read over
 * a second connection and stored with the offset they end at, so show and
 * the dashboard see its progress meanwhile, and the follow of it that
 * comes later starts after them. Best effort: anything that goes wrong
 * here waits for that follow, which reports it. */
static void side_peek(struct run *r)
{
	enum { SIDE_READ = 256 << 10 };
	char path[2600], err[512], *buf;
	int64_t off;
	size_t got = 0, n;
	double now = mb_now_s();

	if (r->side_step == NULL || now - r->side_last < SIDE_PEEK_S)
		return;
	r->side_last = now;
	if (r->side == NULL &&
	    open_stream(r, &r->side, err, sizeof(err)) != 0) {
		r->side_step = NULL; /* no second link: later, then */
		return;
	}
	if (mb_store_follow_offset(r->s, r->j->id, r->side_step, &off) != 0 ||
	    (buf = mb_malloc(SIDE_READ)) == NULL)
		return;
	snprintf(path, sizeof(path), "%s/%s.events", r->wjob, r->side_step);
	if (mb_transport_read(r->side, path, (uint64_t)off, buf, SIDE_READ,
			      &got) != 0) {
		/* a link that broke is opened again, 10 s on: the follow
		 * this peeks beside must not wait on it */
		mb_transport_free(r->side);
		r->side = NULL;
		r->side_last = now + 10 - SIDE_PEEK_S;
		got = 0;
	}
	for (n = got; n > 0 && buf[n - 1] != '\n'; n--)
		; /* whole lines only */
	if (n > 0)
		mb_store_step_events(r->s, r->j->id, r->side_jstep, buf, n,
				     r->side_step, off + (int64_t)n, err,
				     sizeof(err));
	free(buf);
}

/* Reads worker step wstep's journal, for job step jstep, beside what runs
 * now. */
static void side_begin(struct run *r, const char *jstep, const char *wstep)
{
	r->side_jstep = jstep;
	r->side_step = wstep;
	r->side_last = 0;
}

/* Stops reading the side step's journal. */
static void side_end(struct run *r)
{
	r->side_step = NULL;
	if (r->side != NULL)
		mb_transport_free(r->side);
	r->side = NULL;
}

struct pull_ctx {
	struct run *r;
	const char *file;
	double t0, last;
};

/* Stores a progress event about once a second. */
static void on_pull_progress(uint64_t done, uint64_t total, uint64_t fetched,
			     void *ctx)
{
	struct pull_ctx *pc = ctx;
	double now = mb_now_s();
	struct mb_buf b;

	if (now - pc->last < 1.0 && done < total)
		return;
	pc->last = now;
	mb_buf_init(&b, 4096);
	mb_buf_adds(&b, "\"what\":");
	mb_json_quote(&b, pc->file);
	mb_buf_addf(&b, ",\"done\":%llu,\"total\":%llu,\"rate\":%.0f",
		    (unsigned long long)done, (unsigned long long)total,
		    now > pc->t0 ? (double)fetched / (now - pc->t0) : 0.0);
	store_event(pc->r, "pull", "progress", b.data);
	mb_buf_release(&b);
	side_peek(pc->r);
}

/* A file an earlier run of this pull verified and published: the same
 * size and sha256 as its manifest. */
static int already_pulled(const struct mb_manifest *m, const char *dest)
{
	uint8_t d[MB_SHA256_LEN];
	uint64_t size = 0;
	struct stat st;

	return stat(dest, &st) == 0 && (uint64_t)st.st_size == m->size &&
	       mb_sha256_file(dest, d, &size) == 0 && size == m->size &&
	       memcmp(d, m->sha256, sizeof(d)) == 0;
}

/* Pulls one artifact into dest (in the partial directory) and records
 * what the pull did as a "pulled" event. */
static int pull_one(struct run *r, const struct mb_manifest *m,
		    const char *dest)
{
	struct mb_pull_opts o;
	struct mb_pull_stats st;
	struct pull_ctx pc = { r, m->name, mb_now_s(), 0 };
	char remote[2700];
	struct mb_buf b;
	int rc;

	memset(&o, 0, sizeof(o));
	o.t = r->t;
	o.open = open_stream;
	o.open_ctx = r;
	o.streams = r->cfg->pull_streams;
	o.progress = on_pull_progress;
	o.progress_ctx = &pc;
	/* a job without the smoke test does not read what it pulled: many
	 * GB of it need not push out what else this machine caches */
	o.drop_behind = !r->j->smoke;
	snprintf(remote, sizeof(remote), "%s/%s", r->out, m->name);
	ahead_adopt(r, m);
	rc = mb_pull_file(&o, remote, m, dest, &st, r->err, r->errcap);
	mb_buf_init(&b, 4096);
	mb_buf_adds(&b, "\"file\":");
	mb_json_quote(&b, m->name);
	mb_buf_addf(&b, ",\"ok\":%s,\"bytes\":%llu,\"reused\":%llu,"
		    "\"fetched\":%llu,\"refetched\":%llu,\"streams\":%u,"
		    "\"reconnects\":%u,\"seconds\":%.3f",
		    rc == 0 ? "true" : "false", (unsigned long long)m->size,
		    (unsigned long long)st.reused, (unsigned long long)st.fetched,
		    (unsigned long long)st.refetched, st.streams, st.reconnects,
		    st.seconds);
	store_event(r, "pull", "pulled", b.data);
	mb_buf_release(&b);
	return rc;
}

static int by_size(const void *a, const void *b)
{
	const struct mb_manifest *x = *(const struct mb_manifest *const *)a;
	const struct mb_manifest *y = *(const struct mb_manifest *const *)b;

	return x->size < y->size ? -1 : x->size > y->size;
}

static int by_size_desc(const void *a, const void *b)
{
	return by_size(b, a);
}

/* --- the job --- */

static int step_begin(struct run *r, const char *step)
{
	return mb_store_step_set(r->s, r->j->id, step, "running", NULL, NULL);
}

/* A step this job already finished (before a restart or a retry). */
static int step_done(struct run *r, const char *step)
{
	struct mb_step_row st;

	return mb_store_step_get(r->s, r->j->id, step, &st) == 0 &&
	       (strcmp(st.state, "done") == 0 || strcmp(st.state, "skipped") == 0);
}

static int step_end(struct run *r, const char *step, int rc, const char *result)
{
	return mb_store_step_set(r->s, r->j->id, step, rc == 0 ? "done" : "failed",
				 result, rc == 0 ? NULL : r->err);
}

static void json_str_array(struct mb_buf *b, const char *const *items)
{
	int i;

	mb_buf_adds(b, "[");
	for (i = 0; items[i] != NULL; i++) {
		if (i)
			mb_buf_adds(b, ",");
		mb_json_quote(b, items[i]);
	}
	mb_buf_adds(b, "]");
}

static int open_worker(struct run *r)
{
	int rc = mb_store_worker_get(r->s, r->j->worker, &r->w);

	if (rc != 0) {
		mb_seterr(r->err, r->errcap, "worker '%s' is not known", r->j->worker);
		return rc;
	}
	return mb_worker_connect(&r->w, NULL, &r->t, r->agent, sizeof(r->agent),
				 r->err, r->errcap);
}

/* The name files are called by: the repo's name, or the directory's. */
static void model_name(struct run *r)
{
	const char *slash;
	char tmp[300];
	size_t n;

	snprintf(tmp, sizeof(tmp), "%s", r->j->source);
	if (!mb_job_source_is_path(tmp))
		tmp[strcspn(tmp, "@")] = '\0'; /* org/name@revision */
	n = strlen(tmp);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = '\0';
	slash = strrchr(tmp, '/');
	snprintf(r->name, sizeof(r->name), "%.120s", slash ? slash + 1 : tmp);
}

/* The file name the job's artifact of type (F16, BF16, F32 or a quant
 * type) has. */
static void artifact_name(const struct run *r, const char *type, char *out,
			  size_t cap)
{
	snprintf(out, cap, "%s-%s.gguf", r->name, type);
}

static const char *outtype_name(const char *outtype)
{
	return strcmp(outtype, "bf16") == 0 ? "BF16"
	       : strcmp(outtype, "f32") == 0 ? "F32" : "F16";
}

/* Every set of parts a manifest lists is whole: each of its parts listed,
 * and not the artifact as one file beside them. A part missing here would
 * be missing from what is pulled, pushed and loaded. */
static int sets_whole(struct run *r, const struct mb_manifest_list *ml)
{
	char path[600], whole[512], shown[160];
	size_t i, stem;
	unsigned no, count, k;

	for (i = 0; i < ml->n; i++) {
		const char *n = ml->files[i]->name;

		if (!mb_splitset_parse_name(n, &stem, &no, &count))
			continue;
		mb_splitset_artifact_name(n, whole, sizeof(whole));
		if (mb_manifest_list_find(ml, whole) != NULL) {
			mb_seterr(r->err, r->errcap, "the manifest from %s lists "
				  "'%s' both whole and as parts", r->w.name,
				  mb_printable(shown, sizeof(shown), whole));
			return MB_EPROTO;
		}
		for (k = 0; k < count; k++) {
			mb_splitset_part_path(whole, k, count, path, sizeof(path));
			if (mb_manifest_list_find(ml, path) == NULL) {
				mb_seterr(r->err, r->errcap, "the manifest from %s "
					  "lists part %u of %u of '%s' but not part "
					  "%u, '%s': the set is not whole", r->w.name,
					  no + 1, count, whole, k + 1,
					  mb_printable(shown, sizeof(shown), path));
				return MB_EPROTO;
			}
		}
	}
	return 0;
}

/* A worker's manifest names the files the coordinator writes locally: it
 * may name the GGUF files this job asked for and nothing else (not
 * provenance.json, a Modelfile, a README, a dot file, or another job's
 * file), each once. */
static int manifest_names_only(struct run *r,
			       const struct mb_manifest_list *ml)
{
	char want[512], quants[256], *q, *save = NULL;
	size_t i, k;

	for (i = 0; i < ml->n; i++) {
		const char *n = ml->files[i]->name;
		char whole[512];
		int ok = 0;

		/* a part of a set is named after its artifact */
		mb_splitset_artifact_name(n, whole, sizeof(whole));
		artifact_name(r, outtype_name(r->j->outtype), want, sizeof(want));
		ok = strcmp(whole, want) == 0;
		snprintf(quants, sizeof(quants), "%s", r->j->quants);
		for (q = strtok_r(quants, ",", &save); q && !ok;
		     q = strtok_r(NULL, ",", &save)) {
			artifact_name(r, q, want, sizeof(want));
			ok = strcmp(whole, want) == 0;
		}
		for (k = 0; k < i && ok; k++)
			ok = strcmp(ml->files[k]->name, n) != 0;
		if (!ok) {
			char shown[160];

			mb_seterr(r->err, r->errcap, "the manifest from %s names "
				  "'%s', which is not an artifact of this job "
				  "(or is named twice)", r->w.name,
				  mb_printable(shown, sizeof(shown), n));
			return MB_EPROTO;
		}
	}
	return 0;
}

static int manifest_names_ok(struct run *r, const struct mb_manifest_list *ml)
{
	int rc = manifest_names_only(r, ml);

	return rc == 0 ? sets_whole(r, ml) : rc;
}

long mb_jobrun_backoff(int base_s, int attempts)
{
	double d = base_s, f;
	unsigned r = 0;

	while (--attempts > 0 && d < 3600)
		d *= 2;
	if (d > 3600)
		d = 3600;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (unsigned)time(NULL) * 2654435761u;
	f = 0.5 + (double)r / 4294967296.0;
	return (long)(d * f + 0.5);
}

/* --- the steps of a job ---
 *
 * A job is the table below, run in order by one loop that records each
 * step (running, then done, failed or skipped), skips what an earlier run
 * finished (after a restart or a retry) and stops at the first failure.
 * A new step is one entry: its run, and what a later run needs from it
 * when it was done before (its resume). */

/* Starts worker step wstep with argv (NULL-terminated) for job step
 * jstep, and follows it to its result. */
static int worker_run(struct run *r, const char *jstep, const char *wstep,
		      const char *const *argv, int with_token, int start_only,
		      int *done)
{
	struct mb_buf b;
	int rc;

	mb_buf_init(&b, 1 << 16);
	json_str_array(&b, argv);
	rc = mb_buf_error(&b);
	if (rc == 0)
		rc = worker_step(r, jstep, wstep, b.data, with_token, start_only,
				 done);
	else
		mb_seterr(r->err, r->errcap, "the arguments of '%s' are too long",
			  wstep);
	mb_buf_release(&b);
	return rc;
}

static int run_worker(struct run *r, const char *jstep, const char *wstep,
		      const char *const *argv, int with_token)
{
	return worker_run(r, jstep, wstep, argv, with_token, 0, NULL);
}

/* Starts worker step wstep and leaves it running (start is idempotent:
 * run_worker with the same arguments then follows it to its result);
 * *done (when not NULL) says it had finished before this call. */
static int start_worker(struct run *r, const char *wstep,
			const char *const *argv, int *done)
{
	return worker_run(r, NULL, wstep, argv, 0, 1, done);
}

/* An install's steps, as the job's events: minutes of a rented box's
 * time that a person watching the job sees go by. */
static void install_progress(const char *step, double elapsed_s, void *ctx)
{
	note(ctx, "preflight", "info", "installing the agent: %s (%.0f s in)",
	     step, elapsed_s);
}

/* preflight: the worker answers and has this build's agent (installed
 * now when it has not) */
static int step_preflight(struct run *r)
{
	char hello[4096];
	int rc;

	rc = mb_worker_hello_progress(r->t, &r->w, r->agent,
				      r->w.agent_path[0] == '\0',
				      install_progress, r, hello, sizeof(hello),
				      r->err, r->errcap);
	if (rc == 0) { /* its free disk and GPUs, for the dashboard */
		cJSON *h = mb_json_parse(hello, strlen(hello));
		const cJSON *g = cJSON_GetArrayItem(
			cJSON_GetObjectItemCaseSensitive(h, "gpus"), 0);
		char agent[64], gpu[128] = "no GPU";

		mb_store_worker_checked(r->s, r->w.name, hello, NULL, NULL);
		r->result = mb_strdup(hello);
		{
			/* what quantize can split between types */
			double c = cJSON_GetNumberValue(
				cJSON_GetObjectItemCaseSensitive(h, "cpus"));
			double m = cJSON_GetNumberValue(
				cJSON_GetObjectItemCaseSensitive(h, "ram"));

			r->w_cpus = isfinite(c) && c >= 1 && c < 1e6 ? (long)c : 1;
			r->w_ram = isfinite(m) && m > 0 && m < 1e18 ? (uint64_t)m
								     : 0;
		}
		if (g != NULL)
			snprintf(gpu, sizeof(gpu), "%d GPU%s (%.80s)",
				 cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
					 h, "gpus")),
				 cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
					 h, "gpus")) == 1 ? "" : "s",
				 mb_printable(agent, sizeof(agent), cJSON_GetStringValue(
					 cJSON_GetObjectItemCaseSensitive(g, "name"))));
		note(r, "preflight", "info", "%s answers: agent %s, %.1f GB free, "
		     "%s", r->w.name, mb_printable(agent, sizeof(agent),
			cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
				h, "agent"))),
		     cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(
			     h, "disk_free")) / 1e9, gpu);
		cJSON_Delete(h);
	}
	return rc;
}

/* The commit the revision resolved to, from fetch's result event. */
static int fetch_resume(struct run *r)
{
	cJSON *res;
	const char *c;

	if (mb_job_source_is_path(r->j->source) || r->j->commit_sha[0] != '\0')
		return 0;
	res = stored_events(r, "fetch", "result");
	c = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetArrayItem(res, cJSON_GetArraySize(res) - 1), "commit"));
	if (c != NULL && strlen(c) == 40) {
		mb_store_job_set_commit(r->s, r->j->id, c);
		snprintf(r->j->commit_sha, sizeof(r->j->commit_sha), "%s", c);
	}
	cJSON_Delete(res);
	return 0;
}

/* Writes the job's overrides (--set, --base) to the worker; path gets
 * the file's name there, or "" when the job has none. */
static int put_overrides(struct run *r, char *path, size_t cap)
{
	size_t ocap = 1 << 20;
	char *text = mb_malloc(ocap);
	int rc;

	path[0] = '\0';
	if (text == NULL)
		return MB_ENOMEM;
	rc = mb_store_job_overrides(r->s, r->j->id, text, ocap);
	if (rc != 0)
		mb_seterr(r->err, r->errcap, "cannot read the job's settings: %s",
			  mb_strerror(rc));
	if (rc == 0 && text[0] != '\0') {
		snprintf(path, cap, "%s/overrides.json", r->wjob);
		rc = mb_worker_put(r->t, path, text, strlen(text), r->err,
				   r->errcap);
	}
	free(text);
	return rc;
}

/* Converting while the download runs: a hub source that mibera's own
 * converter converts (llama.cpp's reads the whole model when it starts,
 * and a path is there already). */
static int convert_follows(struct run *r)
{
	return !mb_job_source_is_path(r->j->source) &&
	       strcmp(r->j->converter, MB_CONVERTER_LLAMA) != 0;
}

static int imatrix_wanted(struct run *r);
static int quantize_width(struct run *r, int nq, int *threads);

/* The job's quant types the convert writes in its own pass (convert
 * --also), into types (room for MB_CONVERT_MAXQ; they point into buf):
 * with mibera's converter and one file, the Q8_0 (an importance matrix
 * changes nothing in it), and, when the job uses no importance matrix,
 * every type that needs none, where the config's quants_in_pass says
 * "all", or "auto" on a worker with the CPUs to make types side by side
 * (quantize_width). With fewer, the other types are made one after
 * another after the pass, so that the Q8_0 is pulled, checked and smoke
 * tested while they are made: measured on 2 CPUs shared with the
 * coordinator, quantizing all in the pass made the pass the job's
 * critical path and left every file to be checked at its end. Returns
 * the count. */
static int types_beside(struct run *r, const char **types, char *buf,
			size_t cap)
{
	char *q, *save = NULL;
	int n = 0, only_q8, threads;

	if (strcmp(r->j->converter, MB_CONVERTER_LLAMA) == 0 ||
	    r->j->split_max_size > 0)
		return 0;
	only_q8 = imatrix_wanted(r) ||
	      strcmp(r->cfg->quants_in_pass, "q8_0") == 0 ||
	      (strcmp(r->cfg->quants_in_pass, "auto") == 0 &&
	       quantize_width(r, 2, &threads) < 2);
	snprintf(buf, cap, "%s", r->j->quants);
	for (q = strtok_r(buf, ",", &save); q != NULL && n < MB_CONVERT_MAXQ;
	     q = strtok_r(NULL, ",", &save)) {
		const struct mb_quant_type *t = mb_quant_find(q);

		if (t != NULL && (strcmp(t->name, "Q8_0") == 0 ||
				  (!only_q8 && t->imatrix < 2 && t->bpw < 16)))
			types[n++] = q;
	}
	return n;
}

/* Whether type is one types_beside names. */
static int is_beside(struct run *r, const char *type)
{
	const char *types[MB_CONVERT_MAXQ];
	char buf[256];
	int i, n = types_beside(r, types, buf, sizeof(buf));

	for (i = 0; i < n; i++)
		if (strcmp(types[i], type) == 0)
			return 1;
	return 0;
}

/* The convert step's arguments (argv has room for 48); follow adds
 * --follow. ofile and split hold what some of them point to. */
static int convert_argv(struct run *r, const char **argv, int follow,
			char *repo, size_t repocap, char *ofile, size_t ocap,
			char *split, size_t splitcap)
{
	const struct mb_job_row *j = r->j;
	int rc, n = 0;

	argv[n++] = "convert";
	argv[n++] = r->model;
	argv[n++] = r->f16;
	argv[n++] = "--layout";
	argv[n++] = j->layout;
	argv[n++] = "--outtype";
	argv[n++] = j->outtype;
	argv[n++] = "--name";
	argv[n++] = r->name;
	ofile[0] = '\0';
	if (!mb_job_source_is_path(j->source)) {
		snprintf(repo, repocap, "%s", j->source);
		repo[strcspn(repo, "@")] = '\0'; /* org/name@revision */
		argv[n++] = "--repo";
		argv[n++] = repo;
		if (j->commit_sha[0] != '\0') {
			argv[n++] = "--commit";
			argv[n++] = j->commit_sha;
		}
	}
	rc = mb_transport_mkdirs(r->t, r->out);
	if (rc != 0) {
		mb_seterr(r->err, r->errcap, "cannot make '%s' on %s: %s", r->out,
			  r->w.name, mb_transport_errmsg(r->t));
		return rc;
	}
	if (strcmp(j->converter, MB_CONVERTER_LLAMA) == 0) {
		/* llama.cpp's own converter, for a family mibera does not
		 * convert natively; submit took no --set for it */
		argv[n++] = "--converter";
		argv[n++] = MB_CONVERTER_LLAMA;
		argv[n] = NULL;
		return 0;
	}
	/* what the user settled travels as a file beside the job's output */
	rc = put_overrides(r, ofile, ocap);
	if (rc != 0)
		return rc;
	if (ofile[0] != '\0') {
		argv[n++] = "--overrides";
		argv[n++] = ofile;
	}
	/* bigger than that: a set of parts, named after r->f16, which the
	 * worker's verbs find by that name */
	if (j->split_max_size > 0) {
		snprintf(split, splitcap, "%llu",
			 (unsigned long long)j->split_max_size);
		argv[n++] = "--split-max-size";
		argv[n++] = split;
	}
	{
		const char *types[MB_CONVERT_MAXQ];
		char buf[256], name[512];
		int i;

		r->nbeside = types_beside(r, types, buf, sizeof(buf));
		for (i = 0; i < r->nbeside; i++) {
			artifact_name(r, types[i], name, sizeof(name));
			snprintf(r->beside[i], sizeof(r->beside[i]), "%s=%s/%s",
				 types[i], r->out, name);
			argv[n++] = "--also";
			argv[n++] = r->beside[i];
		}
	}
	if (follow)
		argv[n++] = "--follow";
	argv[n] = NULL;
	return 0;
}

static int open_stream(void *ctx, struct mb_transport **t, char *err,
		       size_t errcap);

static struct ahead *ahead_find(struct run *r, const char *name)
{
	int i;

	for (i = 0; i < r->nahead; i++)
		if (r->ahead[i].a != NULL && strcmp(r->ahead[i].name, name) == 0)
			return &r->ahead[i];
	return NULL;
}

/* Stops the pull ahead of m's file, if there is one, keeping what it
 * fetched that matches m. */
static void ahead_adopt(struct run *r, const struct mb_manifest *m)
{
	struct ahead *ah = ahead_find(r, m->name);
	uint64_t adopted, ahead;

	if (ah == NULL)
		return;
	mb_pull_ahead_finish(ah->a, m, &adopted, &ahead);
	ah->a = NULL;
	note(r, "pull", "info", "%s: %.1f of %.1f MB pulled while it was "
	     "written match its manifest (%.1f MB came ahead)", m->name,
	     (double)adopted / 1e6, (double)m->size / 1e6, (double)ahead / 1e6);
}

/* Pulls remote, a file a worker step writes with a map of what is final
 * beside it (the convert's quants, a quantize's output), as it is
 * written, into the partial directory; what matches its manifest later
 * is kept (ahead_adopt). Files pulled so take one chunk at a time, as
 * the one stream of a pull would. Best effort: 0 when it runs; without
 * it the file is pulled once done. */
static int ahead_start(struct run *r, const char *remote)
{
	char pdir[4400], dest[5000];
	const char *name;
	struct ahead *ah;
	struct stat st;

	if (r->nahead == AHEAD_MAX || remote[0] == '\0' ||
	    strrchr(remote, '/') == NULL)
		return -1;
	name = strrchr(remote, '/') + 1;
	mb_job_dir("partial", r->j->id, pdir, sizeof(pdir));
	snprintf(dest, sizeof(dest), "%s/%s", r->adir, name);
	if (ahead_find(r, name) != NULL || stat(dest, &st) == 0 ||
	    mb_mkdir_p(r->adir, 0755) != 0 || mb_mkdir_p(pdir, 0755) != 0)
		return -1; /* pulled before a restart, or no room to say so */
	snprintf(dest, sizeof(dest), "%s/%s", pdir, name);
	ah = &r->ahead[r->nahead];
	memset(ah, 0, sizeof(*ah));
	snprintf(ah->name, sizeof(ah->name), "%s", name);
	ah->o.open = open_stream;
	ah->o.open_ctx = r;
	ah->o.one_chunk = &r->ahead_mu;
	if (mb_pull_ahead_start(&ah->o, remote,
				(uint64_t)r->cfg->chunk_mib << 20, dest,
				&ah->a) != 0)
		return -1;
	ah->t0 = mb_now_s();
	r->nahead++;
	return 0;
}

/* The pulls ahead's progress, as the pull's, about once a second while
 * the step they run beside is followed; only once a file's size is
 * known (a quant's is not until it is made). */
static void ahead_peek(struct run *r)
{
	double now = mb_now_s();
	uint64_t done, size;
	struct mb_buf b;
	int i;

	for (i = 0; i < r->nahead; i++) {
		struct ahead *ah = &r->ahead[i];

		if (ah->a == NULL || now - ah->last < 1.0)
			continue;
		ah->last = now;
		mb_pull_ahead_progress(ah->a, &done, &size);
		if (size == 0 || (done >= size && mb_pull_ahead_done(ah->a)))
			continue;
		mb_buf_init(&b, 4096);
		mb_buf_adds(&b, "\"what\":");
		mb_json_quote(&b, ah->name);
		mb_buf_addf(&b, ",\"done\":%llu,\"total\":%llu,\"rate\":%.0f,"
			    "\"ahead\":true", (unsigned long long)done,
			    (unsigned long long)size,
			    now > ah->t0 ? (double)done / (now - ah->t0) : 0.0);
		store_event(r, "pull", "progress", b.data);
		mb_buf_release(&b);
	}
}

/* The convert's quants, pulled as the convert writes them. */
static void ahead_start_beside(struct run *r)
{
	int i;

	for (i = 0; i < r->nbeside; i++) {
		const char *path = strchr(r->beside[i], '=') + 1;

		if (ahead_start(r, path) == 0)
			note(r, "convert", "info", "writing %s in the same pass, "
			     "and pulling it as it is written",
			     strrchr(path, '/') + 1);
	}
}

static int step_convert(struct run *r)
{
	const char *argv[48];
	char repo[300], ofile[2400], split[32];
	int rc;

	/* started beside the fetch: followed here (a restart that finds
	 * the fetch done follows the running convert, or runs it after) */
	rc = convert_argv(r, argv, r->convert_started, repo, sizeof(repo),
			  ofile, sizeof(ofile), split, sizeof(split));
	if (rc == 0)
		ahead_start_beside(r);
	return rc != 0 ? rc : run_worker(r, "convert", "convert", argv, 0);
}

/* How long the job waits for a headers-first fetch to have the shards'
 * headers before it stops waiting and converts after the download: the
 * small files and a few range requests take seconds. */
#define HEADERS_WAIT_S 600

/* Starts convert --follow once the running fetch has written the shards'
 * headers. Returns 0 also when the fetch ended first (its result is
 * there) or took too long: the convert then runs after it. */
static int start_convert_following(struct run *r)
{
	char path[2600], res[2600], buf[4096], repo[300], ofile[2400],
	     split[32];
	const char *argv[48];
	double t0 = mb_now_s();
	size_t got;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", r->model, MB_DOWNLOAD_STATE);
	snprintf(res, sizeof(res), "%s/fetch.result.json", r->wjob);
	for (;;) {
		struct timespec ts = { 0, 250 * 1000000L };
		const char *st = NULL;
		cJSON *doc = NULL;

		if (cancelled(r))
			return MB_ECANCELLED;
		if (mb_transport_read(r->t, path, 0, buf, sizeof(buf) - 1,
				      &got) == 0) {
			buf[got] = '\0';
			doc = mb_json_parse(buf, got);
			st = cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(doc, "state"));
		}
		if (st != NULL && (strcmp(st, "headers") == 0 ||
				   strcmp(st, "done") == 0)) {
			cJSON_Delete(doc);
			break;
		}
		cJSON_Delete(doc);
		/* a stale "failed" from an earlier attempt says nothing: the
		 * fetch's result says when this one ended */
		if (mb_transport_read(r->t, res, 0, buf, 1, &got) == 0 ||
		    mb_now_s() - t0 > HEADERS_WAIT_S)
			return 0;
		nanosleep(&ts, NULL);
	}
	rc = convert_argv(r, argv, 1, repo, sizeof(repo), ofile, sizeof(ofile),
			  split, sizeof(split));
	if (rc == 0)
		rc = start_worker(r, "convert", argv, NULL);
	if (rc != 0)
		return rc;
	ahead_start_beside(r);
	/* a restart finds it running: neither a new attempt nor a new note */
	if (!r->convert_started) {
		struct mb_step_row was;

		if (mb_store_step_get(r->s, r->j->id, "convert", &was) != 0 ||
		    strcmp(was.state, "running") != 0) {
			step_begin(r, "convert");
			note(r, "convert", "info", "converting while the download "
			     "runs: each shard as soon as it is downloaded and "
			     "verified");
		}
	}
	r->convert_started = 1;
	return 0;
}

/* fetch: a hub repo into the job's directory; a path is used as is. With
 * mibera's converter the fetch brings the shards' headers first and the
 * convert starts beside it, taking each shard as it arrives. */
static int step_fetch(struct run *r)
{
	const char *argv[] = { "fetch", r->j->source, "--dest", r->model, NULL,
			       NULL };
	int rc;

	if (!convert_follows(r)) {
		rc = run_worker(r, "fetch", "fetch", argv, 1);
		return rc == 0 ? fetch_resume(r) : rc;
	}
	argv[4] = "--headers-first";
	if (!r->fetch_was_running) {
		/* a new fetch: an earlier attempt's state (of the commit the
		 * revision named then) says nothing about this one */
		char path[2600];

		snprintf(path, sizeof(path), "%s/%s", r->model, MB_DOWNLOAD_STATE);
		mb_transport_unlink(r->t, path);
	}
	rc = worker_run(r, NULL, "fetch", argv, 1, 1, NULL);
	if (rc == 0)
		rc = start_convert_following(r);
	if (rc == 0 && r->convert_started)
		side_begin(r, "convert", "convert");
	if (rc == 0)
		rc = run_worker(r, "fetch", "fetch", argv, 1);
	side_end(r);
	if (rc != 0 && r->convert_started)
		/* the convert stops on the fetch's failure by itself (at once
		 * for a permanent one); a retry of the job starts both again */
		mb_store_step_set(r->s, r->j->id, "convert", "failed", NULL,
				  "stopped: the download it converted failed");
	return rc == 0 ? fetch_resume(r) : rc;
}

/* An importance matrix is computed when a requested type needs one
 * (IQ2_*, IQ3_XXS) or gains from one: every type below 5 bits per weight,
 * whose rounding error it weighs by how much each column matters (the
 * table's imatrix field). Q5_K and up, Q8_0 and the float types are made
 * without it: their error is already below what it corrects. */
static int imatrix_wanted(struct run *r)
{
	char quants[256], *q, *save = NULL;

	if (strcmp(r->j->imatrix, "off") == 0)
		return 0;
	if (strcmp(r->j->imatrix, "on") == 0)
		return 1;
	snprintf(quants, sizeof(quants), "%s", r->j->quants);
	for (q = strtok_r(quants, ",", &save); q != NULL;
	     q = strtok_r(NULL, ",", &save)) {
		const struct mb_quant_type *t = mb_quant_find(q);

		if (t != NULL && t->imatrix > 0)
			return 1;
	}
	return 0;
}

/* The importance matrix on the worker: beside the job's output directory,
 * not in it (it is not an artifact), kept until cleanup, so a retried job
 * and every quant of the job share it. */
static void imatrix_path(struct run *r, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/imatrix.gguf", r->wjob);
}

/* imatrix: over the calibration text that ships with the worker */
static int step_imatrix(struct run *r)
{
	char path[2400];
	const char *argv[] = { "imatrix", r->f16, path, NULL };

	imatrix_path(r, path, sizeof(path));
	return run_worker(r, "imatrix", "imatrix", argv, 0);
}

static int run_worker_pulling(struct run *r, const char *jstep,
			      const char *wstep, const char *const *argv,
			      const char *after);
static int pull_ready(struct run *r, const char *after);
static void cleanup_start(struct run *r);

/* What one quantize holds beside the F16 it maps: the worker's slabs of
 * 64 MiB of rows (as F32 and quantized) and libllama's context, with
 * room to spare. */
#define QUANT_WORKING_SET (2ull << 30)

/* How many types are quantized side by side: one per 4 of the worker's
 * CPUs (llama_model_quantize's threads are split between them), when its
 * memory holds a working set per type as well; else one after another. */
static int quantize_width(struct run *r, int nq, int *threads)
{
	long w = r->w_cpus / 4;

	if ((long)(r->w_ram / QUANT_WORKING_SET) < w) /* unknown: one at a time */
		w = (long)(r->w_ram / QUANT_WORKING_SET);
	if (w > nq)
		w = nq;
	if (w < 1)
		w = 1;
	*threads = w > 1 ? (int)(r->w_cpus / w) : 0;
	return (int)w;
}

/* quantize: one worker step per type, each with its own journal; the
 * step's args say whether the importance matrix was used. Each finished
 * file is pulled while the next type is made. */
static int step_quantize(struct run *r)
{
	enum { MAXQ = 32 };
	char quants[256], imx[2400], *q, *save = NULL, split[32], thr[16];
	char (*qout)[3000], (*wstep)[48], bbuf[256], list[256] = "";
	const char *types[MAXQ], *argv[MAXQ][12], *beside[MB_CONVERT_MAXQ];
	int rc = 0, use_imx = imatrix_wanted(r), nq = 0, width, threads, i, k;
	int nb = types_beside(r, beside, bbuf, sizeof(bbuf));

	imatrix_path(r, imx, sizeof(imx));
	snprintf(quants, sizeof(quants), "%s", r->j->quants);
	/* the convert wrote these (or said why not): done first, so the
	 * batches after pull them beside the types made now */
	for (q = strtok_r(quants, ",", &save); q && nq < MAXQ;
	     q = strtok_r(NULL, ",", &save))
		if (!is_beside(r, q))
			types[nq++] = q;
	for (i = 0; i < nb; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			 i == 0 ? "" : i == nb - 1 ? " and " : ", ", beside[i]);
	qout = mb_malloc(sizeof(*qout) * MAXQ);
	wstep = mb_malloc(sizeof(*wstep) * MAXQ);
	if (qout == NULL || wstep == NULL) {
		free(qout);
		free(wstep);
		return MB_ENOMEM;
	}
	width = quantize_width(r, nq, &threads);
	snprintf(thr, sizeof(thr), "%d", threads);
	snprintf(split, sizeof(split), "%llu",
		 (unsigned long long)r->j->split_max_size);
	for (i = 0; i < nq; i++) {
		char qname[512];
		int n = 0;

		argv[i][n++] = "quantize";
		argv[i][n++] = r->f16;
		argv[i][n++] = qout[i];
		argv[i][n++] = types[i];
		if (use_imx) {
			argv[i][n++] = "--imatrix";
			argv[i][n++] = imx;
		}
		if (r->j->split_max_size > 0) {
			argv[i][n++] = "--split-max-size";
			argv[i][n++] = split;
		}
		if (width > 1) {
			argv[i][n++] = "--threads";
			argv[i][n++] = thr;
		}
		argv[i][n] = NULL;
		artifact_name(r, types[i], qname, sizeof(qname));
		snprintf(qout[i], sizeof(qout[i]), "%s/%s", r->out, qname);
		snprintf(wstep[i], sizeof(wstep[i]), "quantize-%s", types[i]);
	}
	if (nb > 0)
		note(r, "quantize", "info", "%s %s from the conversion's pass%s",
		     list, nb == 1 ? "comes" : "come", nq == 0 ? ""
		     : nb == 1 ? "; the other types are made while it is pulled"
			       : "; the other types are made while they are "
				 "pulled");
	if (nq > 1 && width > 1)
		note(r, "quantize", "info", "quantizing %d types side by side, "
		     "%d threads each (%s has %ld CPUs, %.0f GB of memory)", width,
		     threads, r->w.name, r->w_cpus, (double)r->w_ram / 1e9);
	else if (nq > 1)
		note(r, "quantize", "info", "quantizing one type after another "
		     "(%s has %ld CPUs, %.0f GB of memory; side by side takes 8 "
		     "CPUs and %.0f GB)", r->w.name, r->w_cpus,
		     (double)r->w_ram / 1e9,
		     (double)(2 * QUANT_WORKING_SET) / 1e9);
	for (i = 0; rc == 0 && i < nb; i++) {
		char name[512], path[3000], step[48];
		const char *qa[] = { "quantize", r->f16, path, beside[i], NULL };

		artifact_name(r, beside[i], name, sizeof(name));
		snprintf(path, sizeof(path), "%s/%s", r->out, name);
		snprintf(step, sizeof(step), "quantize-%s", beside[i]);
		rc = run_worker(r, "quantize", step, qa, 0);
	}
	for (i = 0; rc == 0 && i < nq; i += width) {
		int end = i + width < nq ? i + width : nq;

		int done = 1;

		/* this batch runs on the worker while what is done is pulled;
		 * a batch a stopped coordinator saw through is not pulled
		 * beside (the next one pulls what it made, watching the step
		 * that runs then) */
		for (k = i; rc == 0 && k < end; k++) {
			int d = 0;

			rc = start_worker(r, wstep[k], argv[k], &d);
			done = done && d;
		}
		if (rc == 0 && !done) {
			side_begin(r, "quantize", wstep[i]);
			rc = pull_ready(r, types[i]);
			side_end(r);
		}
		/* then the file this batch writes, as it is written */
		if (rc == 0 && !done && end - i == 1 &&
		    r->j->split_max_size == 0 && ahead_start(r, qout[i]) == 0)
			note(r, "pull", "info", "pulling %s as %s writes it",
			     strrchr(qout[i], '/') + 1, wstep[i]);
		for (k = i; rc == 0 && k < end; k++)
			rc = run_worker(r, "quantize", wstep[k], argv[k], 0);
	}
	free(qout);
	free(wstep);
	return rc;
}

/* fidelity: every quant against the F16 on held-out text, one worker step;
 * its result events carry the figures provenance.json and the model card
 * show, and a quant that mostly disagrees with its F16 fails the job */
static int step_fidelity(struct run *r)
{
	enum { MAXQ = 32, PATHMAX = 3000 };
	char quants[256], *q, *save = NULL, (*paths)[PATHMAX];
	const char *argv[MAXQ + 4];
	int n = 0, k = 0, rc;

	paths = mb_malloc(sizeof(*paths) * MAXQ);
	if (paths == NULL)
		return MB_ENOMEM;
	argv[n++] = "fidelity";
	argv[n++] = r->f16;
	snprintf(quants, sizeof(quants), "%s", r->j->quants);
	for (q = strtok_r(quants, ",", &save); q != NULL && k < MAXQ;
	     q = strtok_r(NULL, ",", &save)) {
		const struct mb_quant_type *t = mb_quant_find(q);
		char qname[512];

		if (t != NULL && t->bpw >= 16)
			continue; /* a float copy is not measured */
		artifact_name(r, q, qname, sizeof(qname));
		snprintf(paths[k], sizeof(paths[k]), "%s/%s", r->out, qname);
		argv[n++] = paths[k++];
	}
	argv[n++] = "--json";
	argv[n] = NULL;
	rc = k == 0 ? 0 : run_worker_pulling(r, "fidelity", "fidelity", argv,
					     "fidelity");
	free(paths);
	return rc;
}

/* The manifest verb's arguments, into argv (room for 7): the float GGUF
 * is left out when the job does not pull it, as nothing reads its hash
 * and hashing tens of GB would hold the job up. chunk and fname hold
 * what they point to. */
static void manifest_argv(struct run *r, const char **argv, char *chunk,
			  size_t chunkcap, char *fname, size_t fcap)
{
	int n = 0;

	snprintf(chunk, chunkcap, "%llu",
		 (unsigned long long)r->cfg->chunk_mib << 20);
	argv[n++] = "manifest";
	argv[n++] = r->out;
	argv[n++] = "--chunk-size";
	argv[n++] = chunk;
	if (!r->j->pull_f16) {
		artifact_name(r, outtype_name(r->j->outtype), fname, fcap);
		argv[n++] = "--skip";
		argv[n++] = fname;
	}
	argv[n] = NULL;
}

static int step_manifest(struct run *r)
{
	char chunk[32], fname[512];
	const char *argv[7];

	manifest_argv(r, argv, chunk, sizeof(chunk), fname, sizeof(fname));
	return run_worker(r, "manifest", "manifest", argv, 0);
}

/* Reads a manifest list (the worker's, or the local copy) into r->ml,
 * checked: only this job's artifact names. */
static int load_manifest(struct run *r, const char *json, size_t len)
{
	int rc = mb_manifest_list_from_json(json, len, &r->ml, r->err, r->errcap);

	return rc == 0 ? manifest_names_ok(r, r->ml) : rc;
}

/* Pulled and verified before a restart: the local copy of the manifest. */
static int pull_resume(struct run *r)
{
	char path[4600], *json = NULL;
	size_t len = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/manifest.json", r->adir);
	rc = mb_read_file(path, 16u << 20, &json, &len);
	if (rc != 0)
		mb_seterr(r->err, r->errcap, "cannot read '%s': %s", path,
			  mb_strerror(rc));
	else
		rc = load_manifest(r, json, len);
	free(json);
	return rc;
}

/* Leaves in r->ml what the job pulls back: the quants, and the float
 * GGUF only when the job asked for it (tens of GB for a real model). */
static void keep_asked_in(struct run *r, struct mb_manifest_list *ml)
{
	char fname[512];
	size_t i, k = 0;

	artifact_name(r, outtype_name(r->j->outtype), fname, sizeof(fname));
	for (i = 0; i < ml->n; i++) {
		struct mb_manifest *m = ml->files[i];
		char whole[512];

		mb_splitset_artifact_name(m->name, whole, sizeof(whole));
		if (!r->j->pull_f16 && strcmp(whole, fname) == 0)
			mb_manifest_free(m);
		else
			ml->files[k++] = m;
	}
	ml->n = k;
}

static void keep_asked(struct run *r)
{
	keep_asked_in(r, r->ml);
}

/* Before the first byte: the space the pull still needs here, against
 * what the disk has. A pull that cannot fit fails at once, saying so. */
static int room_to_pull_in(struct run *r, const struct mb_manifest_list *ml,
			   const char *pdir)
{
	uint64_t need = 0, avail = 0;
	size_t i;

	for (i = 0; i < ml->n; i++) {
		const struct mb_manifest *m = ml->files[i];
		char path[4700];
		struct stat st;
		uint64_t have = 0;

		snprintf(path, sizeof(path), "%s/%s", r->adir, m->name);
		if (stat(path, &st) == 0 && (uint64_t)st.st_size == m->size)
			continue;
		snprintf(path, sizeof(path), "%s/%s", pdir, m->name);
		if (stat(path, &st) == 0)
			have = (uint64_t)st.st_blocks * 512;
		need += m->size > have ? m->size - have : 0;
	}
	if (need == 0 || mb_fs_free_space(r->adir, &avail) != 0 ||
	    avail >= need + (8u << 20))
		return 0;
	mb_seterr(r->err, r->errcap, "pulling the artifacts needs %.1f MB more in "
		  "%s, and the disk has %.1f MB free: free some space, then "
		  "mibera-job retry %lld", (double)need / 1e6, r->adir,
		  (double)avail / 1e6, (long long)r->j->id);
	return MB_ENOSPC;
}

static int room_to_pull(struct run *r, const char *pdir)
{
	return room_to_pull_in(r, r->ml, pdir);
}

/* --- the pipeline: artifacts pulled while the worker makes the next --- */

static struct early_file *early_find(struct run *r, const struct mb_manifest *m)
{
	size_t i;

	for (i = 0; r->early != NULL && i < r->early->n; i++)
		if (strcmp(r->early->f[i].name, m->name) == 0 &&
		    memcmp(r->early->f[i].sha256, m->sha256, MB_SHA256_LEN) == 0)
			return &r->early->f[i];
	return NULL;
}

/* A smoke result as the smoke step's array carries it. */
static void smoke_json(struct mb_buf *b, const char *name, unsigned count,
		       const struct mb_smoke_result *sr)
{
	mb_buf_adds(b, "{\"file\":");
	mb_json_quote(b, name);
	if (count > 1)
		mb_buf_addf(b, ",\"parts\":%u", count);
	mb_buf_addf(b, ",\"load_s\":%.3f,\"prompt_tps\":%.1f,"
		    "\"gen_tps\":%.1f,\"peak_rss\":%llu,\"finite\":%s,"
		    "\"text\":", sr->load_s, sr->prompt_tps, sr->gen_tps,
		    (unsigned long long)sr->peak_rss,
		    sr->finite ? "true" : "false");
	mb_json_quote(b, sr->text);
	mb_buf_adds(b, "}");
}

/* The result is stored from this thread as soon as the test passed (the
 * store's connection is opened serialized), so a coordinator killed before
 * the smoke step keeps it. */
static void *smoke_thread(void *arg)
{
	struct early *e = arg;
	struct early_file *f = &e->f[e->th_idx];
	char hex[MB_SHA256_HEX];
	struct mb_buf b;

	e->th_json = NULL;
	/* This test runs while the worker makes the next file, which is
	 * what the job waits for: its process (forked from this thread,
	 * whose priority it takes) yields to the worker where both share
	 * the CPUs (a worker on this machine), and to whatever else the
	 * person runs here. The test of the job's last file runs when
	 * nothing else does, and loses nothing. */
	setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
	e->th_rc = mb_smoke_isolated(NULL, e->th_path, 32, 0, 0, &e->th_sr);
	if (e->th_rc != 0)
		return NULL;
	mb_buf_init(&b, 8192);
	smoke_json(&b, f->name, 1, &e->th_sr);
	if (mb_buf_error(&b) == 0) {
		e->th_json = mb_buf_detach(&b, NULL);
		mb_sha256_hex(f->sha256, hex);
		if (e->th_json != NULL)
			mb_store_artifact_smoke_set(e->th_s, e->th_job, f->name,
						    hex, e->th_json);
	}
	mb_buf_release(&b);
	return NULL;
}

/* Waits for the smoke test in flight and keeps its result when it passed
 * (one that did not pass is run again by the smoke step, which says why). */
static void early_smoke_join(struct run *r)
{
	struct early *e = r->early;

	if (e == NULL || !e->th_on)
		return;
	pthread_join(e->th, NULL);
	e->th_on = 0;
	e->f[e->th_idx].smoke = e->th_json;
	e->th_json = NULL;
}

/* The smoke result stored for artifact name with sha256 (hex) before a
 * restart, or NULL; the caller frees it. A set of parts is tested again,
 * as one part's sha256 does not vouch for the others. */
static char *smoke_kept(struct run *r, const char *name, const char *hex)
{
	size_t stem;
	unsigned no, count;
	char *kept = NULL;

	if (mb_splitset_parse_name(name, &stem, &no, &count) ||
	    mb_store_artifact_smoke_get(r->s, r->j->id, name, hex, &kept) != 0)
		return NULL;
	if (kept != NULL)
		note(r, "smoke", "info", "%s: smoke result kept from before the "
		     "restart (same sha256), not run again", name);
	return kept;
}

/* Smoke tests pulled file idx on its own thread (after the one before
 * it), while the next file is pulled. A set of parts waits for the smoke
 * step, which loads it once all of it is here. */
static void early_smoke_start(struct run *r, size_t idx, const char *path)
{
	struct early *e = r->early;
	size_t stem;
	unsigned no, count;

	if (!r->j->smoke || mb_splitset_parse_name(e->f[idx].name, &stem, &no,
						   &count))
		return;
	early_smoke_join(r);
	e->th_idx = idx;
	e->th_s = r->s;
	e->th_job = r->j->id;
	snprintf(e->th_path, sizeof(e->th_path), "%s", path);
	e->th_on = pthread_create(&e->th, NULL, smoke_thread, e) == 0;
}

/* File m is pulled, verified and published at dest: its smoke test
 * starts on its own thread (or its result from before a restart is
 * kept), while the job goes on with the next file. */
static void early_add(struct run *r, const struct mb_manifest *m,
		      const char *dest)
{
	struct early *e = r->early;
	char hex[MB_SHA256_HEX];

	if (e->n == EARLY_MAX)
		return;
	snprintf(e->f[e->n].name, sizeof(e->f[e->n].name), "%s", m->name);
	memcpy(e->f[e->n].sha256, m->sha256, MB_SHA256_LEN);
	e->n++;
	mb_sha256_hex(m->sha256, hex);
	if (r->j->smoke &&
	    (e->f[e->n - 1].smoke = smoke_kept(r, m->name, hex)) != NULL) {
		e->f[e->n - 1].kept = 1;
		return;
	}
	early_smoke_start(r, e->n - 1, dest);
}

/* Pulls every artifact asked for that the worker has finished now, while
 * its next step (already started) runs: the worker's manifest of what is
 * complete (the manifest verb skips files still being written and keeps
 * the entries of files it hashed before), then each file not yet here,
 * verified against its entry. after names the moment (a quant type, or
 * the step started), for the manifest run's own journal. */
static int pull_ready(struct run *r, const char *after)
{
	struct mb_manifest_list *ml = NULL;
	char chunk[32], wstep[64], path[4600], pdir[4400], fname[512];
	const char *argv[7];
	char *json;
	size_t len = 0, i;
	int rc;

	if (r->early == NULL && (r->early = mb_calloc(1, sizeof(*r->early))) == NULL)
		return MB_ENOMEM;
	manifest_argv(r, argv, chunk, sizeof(chunk), fname, sizeof(fname));
	snprintf(wstep, sizeof(wstep), "manifest-while-%.40s", after);
	rc = run_worker(r, "manifest", wstep, argv, 0);
	if (rc != 0)
		return rc;
	snprintf(path, sizeof(path), "%s/manifest.json", r->out);
	json = mb_malloc(16u << 20);
	rc = json ? mb_transport_read(r->t, path, 0, json, (16u << 20) - 1, &len)
		  : MB_ENOMEM;
	if (rc == 0)
		rc = mb_manifest_list_from_json(json, len, &ml, r->err, r->errcap);
	else
		mb_seterr(r->err, r->errcap, "cannot read the manifest on %s: %s",
			  r->w.name, mb_transport_errmsg(r->t));
	free(json);
	/* a set of parts may be moving into place as this is read: sets wait
	 * for the pull step, after the last manifest */
	if (rc == 0)
		rc = manifest_names_only(r, ml);
	if (rc != 0) {
		mb_manifest_list_free(ml);
		return rc;
	}
	keep_asked_in(r, ml);
	{
		size_t k = 0, stem;
		unsigned no, count;

		for (i = 0; i < ml->n; i++) {
			if (mb_splitset_parse_name(ml->files[i]->name, &stem, &no,
						   &count) || early_find(r, ml->files[i]))
				mb_manifest_free(ml->files[i]);
			else
				ml->files[k++] = ml->files[i];
		}
		ml->n = k;
	}
	mb_job_dir("partial", r->j->id, pdir, sizeof(pdir));
	for (i = 0; rc == 0 && i < ml->n; i++) {
		const struct mb_manifest *m = ml->files[i];
		struct early *e = r->early;
		char hex[MB_SHA256_HEX], dest[4700];

		if (early_find(r, m) != NULL || e->n == EARLY_MAX)
			continue;
		if (!e->pull_running) {
			/* the pull runs beside the worker's steps from here */
			if ((rc = mb_mkdir_p(r->adir, 0755)) != 0 ||
			    (rc = mb_mkdir_p(pdir, 0755)) != 0) {
				mb_seterr(r->err, r->errcap, "cannot make '%s': %s",
					  pdir, mb_strerror(rc));
				break;
			}
			step_begin(r, "pull");
			e->pull_running = 1;
		}
		if (i == 0 && (rc = room_to_pull_in(r, ml, pdir)) != 0)
			break;
		snprintf(path, sizeof(path), "%s/%s", pdir, m->name);
		snprintf(dest, sizeof(dest), "%s/%s", r->adir, m->name);
		/* verified and published before a restart: kept */
		if (!already_pulled(m, dest)) {
			note(r, "pull", "info", "pulling %s while the worker goes "
			     "on with %s", m->name, after);
			rc = pull_one(r, m, path);
			if (rc == 0 && rename(path, dest) != 0)
				rc = mb_err_from_errno(errno);
		}
		if (rc != 0)
			break;
		mb_sha256_hex(m->sha256, hex);
		mb_store_artifact_add(r->s, r->j->id, m->name, "gguf", m->size, hex,
				      dest, NULL);
		early_add(r, m, dest);
	}
	mb_manifest_list_free(ml);
	return rc;
}

/* Starts worker step wstep, pulls what is ready while it runs, then
 * follows it to its result under job step jstep. */
static int run_worker_pulling(struct run *r, const char *jstep,
			      const char *wstep, const char *const *argv,
			      const char *after)
{
	int done = 0, rc = start_worker(r, wstep, argv, &done);

	if (rc == 0 && !done) {
		side_begin(r, jstep, wstep);
		rc = pull_ready(r, after);
		side_end(r);
	}
	return rc != 0 ? rc : run_worker(r, jstep, wstep, argv, 0);
}

/* pull: every artifact asked for, verified chunk by chunk, into the
 * partial directory, then published under artifacts/ */
static int step_pull(struct run *r)
{
	char path[4600], pdir[4400];
	size_t i;
	int rc;

	snprintf(path, sizeof(path), "%s/manifest.json", r->out);
	{
		char *json = mb_malloc(16u << 20);
		size_t len = 0;

		rc = json ? mb_transport_read(r->t, path, 0, json, (16u << 20) - 1,
					      &len)
			  : MB_ENOMEM;
		if (rc == 0)
			rc = load_manifest(r, json, len);
		else
			mb_seterr(r->err, r->errcap, "cannot read the manifest on "
				  "%s: %s", r->w.name, mb_transport_errmsg(r->t));
		free(json);
	}
	if (rc == 0)
		keep_asked(r);
	mb_job_dir("partial", r->j->id, pdir, sizeof(pdir));
	if (rc == 0 && (rc = mb_mkdir_p(r->adir, 0755)) == 0)
		rc = mb_mkdir_p(pdir, 0755);
	if (rc == 0)
		rc = room_to_pull(r, pdir);
	/* from here the pull has the link: what came ahead is kept */
	for (i = 0; rc == 0 && i < r->ml->n; i++)
		ahead_adopt(r, r->ml->files[i]);
	/* each file pulled here is smoke tested while the next one is
	 * (without the memory for that list, in the smoke step): the
	 * largest first, so that the one left to test at the end is the
	 * quickest */
	if (r->early == NULL)
		r->early = mb_calloc(1, sizeof(*r->early));
	if (rc == 0)
		qsort(r->ml->files, r->ml->n, sizeof(*r->ml->files),
		      by_size_desc);
	for (i = 0; rc == 0 && i < r->ml->n; i++) {
		const struct mb_manifest *m = r->ml->files[i];
		char hex[MB_SHA256_HEX], dest[4700];

		snprintf(path, sizeof(path), "%s/%s", pdir, m->name);
		snprintf(dest, sizeof(dest), "%s/%s", r->adir, m->name);
		/* pulled while the worker made the rest: smoke tested */
		if (early_find(r, m) != NULL)
			continue;
		/* verified and published before a restart: kept */
		if (!already_pulled(m, dest)) {
			rc = pull_one(r, m, path);
			if (rc == 0 && rename(path, dest) != 0)
				rc = mb_err_from_errno(errno);
		}
		mb_sha256_hex(m->sha256, hex);
		if (rc == 0)
			mb_store_artifact_add(r->s, r->j->id, m->name, "gguf",
					      m->size, hex, dest, NULL);
		/* smoke tested while the next file is pulled */
		if (rc == 0 && r->early != NULL)
			early_add(r, m, dest);
	}
	if (rc == 0) {
		/* the local manifest lists what is here */
		struct mb_buf b;

		mb_buf_init(&b, 16u << 20);
		rc = mb_manifest_list_to_json(r->ml->files, r->ml->n, &b);
		snprintf(path, sizeof(path), "%s/manifest.json", r->adir);
		if (rc == 0)
			rc = mb_atomic_write(path, b.data, b.len, 0644);
		mb_buf_release(&b);
		rmdir(pdir);
	}
	if (rc == 0)
		cleanup_start(r);
	return rc;
}

/* smoke, smallest first, each file in a child process; a file tested
 * before (while the next was pulled, or before a restart) keeps its result
 * when its sha256 is the one tested */
/* Says in the job's log that a file passed its smoke test, with the
 * figures of its result (a smoke_json object); when names where it ran. */
static void smoke_passed(struct run *r, const char *name, const char *json,
			 const char *when)
{
	cJSON *doc = mb_json_parse(json, strlen(json));

#define SMOKE_NUM(k) cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, k))
	if (cJSON_IsObject(doc))
		note(r, "smoke", "info", "%s passed the smoke test%s: loaded in "
		     "%.1f s, the prompt at %.0f tokens/s, generation at %.1f "
		     "tokens/s, %.2f GB at peak", name, when,
		     SMOKE_NUM("load_s"), SMOKE_NUM("prompt_tps"),
		     SMOKE_NUM("gen_tps"), SMOKE_NUM("peak_rss") / 1e9);
#undef SMOKE_NUM
	cJSON_Delete(doc);
}

static int step_smoke(struct run *r)
{
	struct mb_buf *b = &r->smoke;
	size_t i;
	int rc = 0;

	early_smoke_join(r);
	qsort(r->ml->files, r->ml->n, sizeof(*r->ml->files), by_size);
	mb_buf_reset(b);
	mb_buf_adds(b, "[");
	for (i = 0; rc == 0 && i < r->ml->n; i++) {
		const struct mb_manifest *m = r->ml->files[i];
		const struct early_file *ef = early_find(r, m);
		struct mb_smoke_result sr;
		char path[4700], hex[MB_SHA256_HEX], *kept;
		size_t at, stem;
		unsigned no, count = 1;

		/* a set of parts is loaded from its first part, once */
		if (mb_splitset_parse_name(m->name, &stem, &no, &count) && no != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", r->adir, m->name);
		mb_sha256_hex(m->sha256, hex);
		/* tested as soon as it was pulled, or before a restart */
		kept = ef != NULL && ef->smoke != NULL ? mb_strdup(ef->smoke)
						      : smoke_kept(r, m->name, hex);
		if (kept != NULL) {
			smoke_passed(r, m->name, kept, ef != NULL &&
				     ef->smoke != NULL && !ef->kept
				     ? " as soon as it was pulled"
				     : " before the restart");
			if (b->len > 1)
				mb_buf_adds(b, ",");
			mb_buf_adds(b, kept);
			mb_store_artifact_add(r->s, r->j->id, m->name, "gguf",
					      m->size, hex, path, kept);
			free(kept);
			continue;
		}
		note(r, "smoke", "info", "smoke testing %s", m->name);
		rc = mb_smoke_isolated(NULL, path, 32, 0, 0, &sr);
		if (rc == MB_ENOMEM || rc == MB_ETOOBIG) {
			/* not tested is not passed: the job does not succeed
			 * with a file nobody loaded; MB_ENOMEM waits and tries
			 * again, as memory may be freed */
			mb_seterr(r->err, r->errcap, "smoke test of '%s' not run: "
				  "%s; the pulled files stay in %s (mibera-job "
				  "retry %lld tests them again; --no-smoke at "
				  "submit skips the test)", m->name, sr.error,
				  r->adir, (long long)r->j->id);
			break;
		}
		if (rc != 0) {
			mb_seterr(r->err, r->errcap, "smoke test of '%s' failed: %s",
				  m->name, sr.error);
			break;
		}
		if (b->len > 1)
			mb_buf_adds(b, ",");
		at = b->len;
		smoke_json(b, m->name, count, &sr);
		if ((rc = mb_buf_error(b)) != 0)
			break;
		mb_store_artifact_add(r->s, r->j->id, m->name, "gguf", m->size, hex,
				      path, b->data + at);
		smoke_passed(r, m->name, b->data + at, "");
	}
	mb_buf_adds(b, "]");
	if (rc == 0 && (rc = mb_buf_error(b)) == 0)
		r->result = mb_strdup(b->data);
	return rc;
}

/* provenance, Modelfile and model card, beside the artifacts */
static int step_publish(struct run *r)
{
	struct mb_publish pub;
	cJSON *repairs = stored_events(r, "convert", "repair");
	cJSON *done = stored_events(r, "convert", "done");
	char *rtext = cJSON_PrintUnformatted(repairs);
	char *ctext = cJSON_GetArraySize(done) > 0 ?
		cJSON_PrintUnformatted(cJSON_GetArrayItem(
			done, cJSON_GetArraySize(done) - 1)) : NULL;
	cJSON *fid = stored_events(r, "fidelity", "result");
	cJSON *imx = stored_events(r, "imatrix", "done");
	char *ftext = cJSON_GetArraySize(fid) > 0 ?
		cJSON_PrintUnformatted(fid) : NULL;
	char *itext = imatrix_wanted(r) && cJSON_GetArraySize(imx) > 0 ?
		cJSON_PrintUnformatted(cJSON_GetArrayItem(
			imx, cJSON_GetArraySize(imx) - 1)) : NULL;
	int rc;

	memset(&pub, 0, sizeof(pub));
	pub.fidelity = ftext;
	pub.imatrix = itext;
	pub.j = r->j;
	pub.dir = r->adir;
	pub.worker = r->w.name;
	pub.commit = r->j->commit_sha;
	pub.repairs = rtext;
	pub.convert = ctext;
	pub.smoke = r->j->smoke ? r->smoke.data : NULL;
	pub.files = r->ml;
	rc = mb_publish(&pub, r->err, r->errcap);
	cJSON_free(rtext);
	cJSON_free(ctext);
	cJSON_free(ftext);
	cJSON_free(itext);
	cJSON_Delete(repairs);
	cJSON_Delete(done);
	cJSON_Delete(fid);
	cJSON_Delete(imx);
	return rc;
}

/* push: the artifacts, from the worker's copy (a rented box's uplink,
 * the files checked against the manifest there), with the model card and
 * provenance written here, to the hub in one commit */
static int step_push(struct run *r)
{
	static const char *const small[] = { "README.md", "provenance.json" };
	const char *argv[8];
	struct mb_buf files;
	size_t i;
	int rc = 0, n = 0;

	for (i = 0; rc == 0 && i < sizeof(small) / sizeof(small[0]); i++) {
		char local[4600], remote[2600];

		snprintf(local, sizeof(local), "%s/%s", r->adir, small[i]);
		snprintf(remote, sizeof(remote), "%s/%s", r->out, small[i]);
		rc = mb_worker_upload(r->t, local, remote, NULL, r->err,
				      r->errcap);
	}
	if (rc != 0)
		return rc;
	mb_buf_init(&files, 1 << 16);
	for (i = 0; i < r->ml->n; i++)
		mb_buf_addf(&files, "%s,", r->ml->files[i]->name);
	mb_buf_adds(&files, "README.md,provenance.json");
	if ((rc = mb_buf_error(&files)) != 0) {
		mb_buf_release(&files);
		return rc;
	}
	argv[n++] = "push";
	argv[n++] = r->out;
	argv[n++] = r->j->push_repo;
	argv[n++] = "--files";
	argv[n++] = files.data;
	if (r->j->push_private)
		argv[n++] = "--private";
	argv[n] = NULL;
	rc = run_worker(r, "push", "push", argv, 1);
	mb_buf_release(&files);
	if (rc != 0 && !mb_err_transient(rc)) {
		/* the files are good and here: say how to push them */
		size_t n = strlen(r->err);

		snprintf(r->err + n, r->errcap - n, ". The job's files are pulled "
			 "and checked: once that is fixed, mibera-job push %lld "
			 "%s (or mibera-job retry %lld)", (long long)r->j->id,
			 r->j->push_repo, (long long)r->j->id);
	}
	return rc;
}

static int push_asked(struct run *r)
{
	return r->j->push_repo[0] != '\0';
}

static void ollama_progress(void *ctx, const char *msg)
{
	note(ctx, "ollama", "info", "%s", msg);
}

/* ollama: the verified files registered with the local Ollama server
 * (OLLAMA_HOST of the coordinator). The files are good without it, so
 * its failure does not fail the job: the step says so, and how to do it
 * later. */
static int step_ollama(struct run *r)
{
	struct mb_ollama_req q;
	struct mb_buf b;
	char why[1200];
	int rc;

	memset(&q, 0, sizeof(q));
	q.host = getenv("OLLAMA_HOST");
	q.name = r->j->ollama_name;
	q.dir = r->adir;
	q.progress = ollama_progress;
	q.ctx = r;
	rc = mb_ollama_register(&q, why, sizeof(why));
	if (rc != 0) {
		mb_seterr(r->err, r->errcap, "%s. The job's files are good and "
			  "it succeeds without this; once that is fixed: "
			  "mibera-job ollama %lld %s", why, (long long)r->j->id,
			  r->j->ollama_name);
		note(r, "ollama", "warn", "not registered with Ollama: %s", r->err);
		return rc;
	}
	mb_buf_init(&b, 4096);
	mb_buf_adds(&b, "{\"models\":");
	mb_json_quote(&b, q.models);
	mb_buf_addf(&b, ",\"uploaded\":%d,\"reused\":%d}", q.uploaded,
		    q.reused);
	if (mb_buf_error(&b) == 0)
		r->result = mb_buf_detach(&b, NULL);
	mb_buf_release(&b);
	note(r, "ollama", "info", "ready: ollama run %s", r->j->ollama_name);
	return 0;
}

static int ollama_wanted(struct run *r)
{
	return r->j->ollama_name[0] != '\0';
}

/* cleanup on the worker: a leftover directory does not fail a good job */
static void *cleanup_thread(void *arg)
{
	struct run *r = arg;
	const char *cl[] = { "cleanup", r->job, NULL };

	r->cl_rc = agent_exec(r, cl, NULL, NULL, NULL, NULL, NULL,
			      &r->cl_status);
	return NULL;
}

/* Once the pull has verified every file, nothing the job does after
 * reads the worker's copies (the smoke test, the provenance and Ollama
 * use the pulled ones; a retry resumes after the pull): their removal
 * runs beside the smoke test, on the worker's connection, which nothing
 * else uses until step_cleanup waits for it. Not when the job pushes to
 * the Hub, which it does from the worker. */
static void cleanup_start(struct run *r)
{
	if (!push_asked(r) && !r->cl_on)
		r->cl_on = pthread_create(&r->cl_th, NULL, cleanup_thread,
					  r) == 0;
}

/* Waits for the removal started beside the smoke test: 1 when one was
 * started, with its answer in *rc and *status. */
static int cleanup_join(struct run *r, int *rc, int *status)
{
	if (!r->cl_on)
		return 0;
	pthread_join(r->cl_th, NULL);
	r->cl_on = 0;
	*rc = r->cl_rc;
	*status = r->cl_status;
	return 1;
}

static int step_cleanup(struct run *r)
{
	const char *cl[] = { "cleanup", r->job, NULL };
	int status, rc;

	if (!cleanup_join(r, &rc, &status))
		rc = agent_exec(r, cl, NULL, NULL, NULL, NULL, NULL, &status);
	if (rc == 0 && status != 0)
		rc = MB_EIO;
	if (rc != 0)
		mb_seterr(r->err, r->errcap, "cleanup on %s failed: %s is left "
			  "there", r->w.name, r->wjob);
	else
		note(r, "cleanup", "info", "removed %s on %s", r->wjob, r->w.name);
	return rc;
}

static int from_hub(struct run *r)
{
	return !mb_job_source_is_path(r->j->source);
}

static int fidelity_asked(struct run *r)
{
	return r->j->fidelity;
}

static int smoke_asked(struct run *r)
{
	return r->j->smoke;
}

static const struct job_step {
	const char *name;		/* its row in steps; NULL: not recorded */
	int (*run)(struct run *r);
	int (*resume)(struct run *r);	/* when an earlier run did it */
	int (*applies)(struct run *r);	/* NULL: always; else 0 skips it */
	int every_run;			/* runs even when done before */
	int optional;			/* its failure does not fail the job */
} job_steps[] = {
	{ "preflight", step_preflight, NULL, NULL, 1, 0 },
	{ "fetch", step_fetch, fetch_resume, from_hub, 0, 0 },
	{ "convert", step_convert, NULL, NULL, 0, 0 },
	{ "imatrix", step_imatrix, NULL, imatrix_wanted, 0, 0 },
	{ "quantize", step_quantize, NULL, NULL, 0, 0 },
	{ "fidelity", step_fidelity, NULL, fidelity_asked, 0, 0 },
	{ "manifest", step_manifest, NULL, NULL, 0, 0 },
	{ "pull", step_pull, pull_resume, NULL, 0, 0 },
	{ "smoke", step_smoke, NULL, smoke_asked, 1, 0 },
	{ NULL, step_publish, NULL, NULL, 1, 0 },
	{ "push", step_push, NULL, push_asked, 0, 0 },
	{ "ollama", step_ollama, NULL, ollama_wanted, 0, 1 },
	{ "cleanup", step_cleanup, NULL, NULL, 1, 1 },
	{ NULL, NULL, NULL, NULL, 0, 0 },
};

static int find_running(const struct mb_step_row *st, void *ctx)
{
	if (strcmp(st->state, "running") != 0)
		return 0;
	snprintf(ctx, 32, "%s", st->name);
	return 1;
}

/* Runs the job's steps in order, each recorded; the first failure ends
 * the run with its error in r->err. */
static int run_steps(struct run *r)
{
	const struct job_step *sd;
	char was[32] = "";
	int rc = 0;

	/* a step still "running" as this run starts: the coordinator that
	 * ran it stopped (killed, crashed, restarted) */
	mb_store_step_list(r->s, r->j->id, find_running, was);
	if (was[0] != '\0')
		note(r, was, "warn", "the coordinator stopped while this step "
		     "ran; resuming the job (the steps it finished are kept)");
	r->fetch_was_running = strcmp(was, "fetch") == 0;

	for (sd = job_steps; sd->run != NULL && rc == 0; sd++) {
		/* the worker is held step by step, so the time of a run a
		 * killed coordinator never finished still counts */
		double now = mb_now_s();

		mb_store_job_add_held(r->s, r->j->id, now - r->held_from);
		r->held_from = now;
		if (sd->applies != NULL && !sd->applies(r)) {
			mb_store_step_set(r->s, r->j->id, sd->name, "skipped", NULL,
					  NULL);
			continue;
		}
		if (sd->name != NULL && !sd->every_run && step_done(r, sd->name)) {
			if (sd->resume != NULL)
				rc = sd->resume(r);
			continue;
		}
		/* the pull began beside the quantize: it goes on */
		if (sd->name != NULL && !(strcmp(sd->name, "pull") == 0 &&
					  r->early && r->early->pull_running) &&
		    !(strcmp(sd->name, "convert") == 0 && r->convert_started))
			step_begin(r, sd->name);
		r->err[0] = '\0';
		rc = sd->run(r);
		if (sd->name != NULL)
			step_end(r, sd->name, rc, r->result);
		if (rc != 0 && r->early && r->early->pull_running &&
		    sd->name != NULL && strcmp(sd->name, "pull") != 0 &&
		    !step_done(r, "pull"))
			/* what it pulled is kept; it runs again with the rest */
			mb_store_step_set(r->s, r->j->id, "pull", "pending", NULL,
					  NULL);
		free(r->result);
		r->result = NULL;
		if (sd->optional)
			rc = 0;
	}
	return rc;
}

int mb_jobrun(struct mb_store *s, struct mb_job_row *j,
	      const struct mb_config *cfg, char *err, size_t errcap)
{
	struct run r;
	char f16name[512];
	int rc;

	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.ahead_mu, NULL);
	r.cfg = cfg;
	r.s = s;
	r.j = j;
	r.err = err;
	r.errcap = errcap;
	r.held_from = mb_now_s();
	err[0] = '\0';
	snprintf(r.job, sizeof(r.job), "job-%lld", (long long)j->id);
	model_name(&r);
	mb_buf_init(&r.smoke, 1 << 20);
	mb_job_dir("artifacts", j->id, r.adir, sizeof(r.adir));
	rc = open_worker(&r);
	if (rc == 0) {
		snprintf(r.wjob, sizeof(r.wjob), "%s/jobs/%s", r.w.dir, r.job);
		snprintf(r.out, sizeof(r.out), "%s/out", r.wjob);
		if (mb_job_source_is_path(j->source))
			snprintf(r.model, sizeof(r.model), "%s", j->source);
		else
			snprintf(r.model, sizeof(r.model), "%s/model", r.wjob);
		artifact_name(&r, outtype_name(j->outtype), f16name,
			      sizeof(f16name));
		snprintf(r.f16, sizeof(r.f16), "%s/%s", r.out, f16name);
		rc = run_steps(&r);
	}
	{
		int crc, cstatus;

		/* a step after the pull failed while the worker's copies
		 * were removed: they were (or were not) */
		r.cl_done = cleanup_join(&r, &crc, &cstatus) && crc == 0 &&
			    cstatus == 0;
	}
	mb_store_job_add_held(s, j->id, mb_now_s() - r.held_from);
	{
		/* a person's cancel stands: it is not a failure */
		int final = 1;

		if (cancelled(&r)) {
			rc = MB_ECANCELLED;
		} else if (rc != 0 && mb_err_transient(rc) &&
			   j->attempts < cfg->retry_max) {
			long pause = mb_jobrun_backoff(cfg->retry_base_s, j->attempts);
			char why[1200];

			snprintf(why, sizeof(why), "%s (attempt %d of %d; next in "
				 "%ld s)", err, j->attempts, cfg->retry_max, pause);
			mb_store_job_wait(s, j->id, pause, why);
			final = 0;
		} else {
			mb_store_job_set_state(s, j->id,
					       rc == 0 ? "succeeded" : "failed",
					       rc == 0 ? NULL : err);
		}
		if (rc != 0 && final && r.wjob[0] != '\0' &&
		    r.w.rent_job_id == j->id)
			note(&r, "job", "info", "%s was rented for this job "
			     "alone: it is destroyed now, and the job's files "
			     "with it (submit the job again to run it again)",
			     r.w.name);
		else if (rc != 0 && final && r.wjob[0] != '\0' && !r.cl_done)
			note(&r, "job", "info", "the job's files stay on %s in %s, "
			     "so that `mibera-job retry %lld` resumes after the "
			     "last finished step; they are removed when the job "
			     "succeeds", r.w.name, r.wjob, (long long)j->id);
	}
	{
		int i;

		for (i = 0; i < r.nahead; i++) {
			uint64_t adopted;

			mb_pull_ahead_finish(r.ahead[i].a, NULL, &adopted, NULL);
		}
		pthread_mutex_destroy(&r.ahead_mu);
	}
	if (r.early != NULL) {
		size_t i;

		early_smoke_join(&r);
		for (i = 0; i < r.early->n; i++)
			free(r.early->f[i].smoke);
		free(r.early);
	}
	mb_buf_release(&r.smoke);
	mb_manifest_list_free(r.ml);
	free(r.result);
	mb_transport_free(r.t);
	return rc;
}
