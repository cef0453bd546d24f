/*
 * mibera-job dashboard [--once]: a live full-screen view of the queue,
 * redrawn about once a second from the job database: the workers (state,
 * current job, free disk, GPU, cost so far), the jobs (model, quant types,
 * current step, a progress bar with bytes, rate and ETA, the time it has
 * held its worker (HELD, the figure status and show give); a
 * finished job's recommended quant with its top-1 agreement and KL
 * divergence from the F16) and the latest events. It fits 80x24 and uses
 * the room a bigger terminal gives. q (or Ctrl-C) quits and gives the
 * terminal back as it was. --once prints one frame without taking the
 * screen (for scripts): plain lines, coloured only on a terminal.
 * NO_COLOR (no-color.org) turns the colours off everywhere. A value cut
 * to fit its column ends with "..." (a path starts with it: its end, the
 * model's name, is kept).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/text.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"
#include "coordinator/publish.h"
#include "coordinator/store.h"

#define MAX_JOBS 4096
/* Finished jobs shown after the unfinished ones (the screen shows what
 * fits). */
#define RECENT 50
#define MAX_WORKERS 256

static volatile sig_atomic_t quit, resized;

/* How the frame is written: live (the full screen, redrawn in place with
 * cursor movement) or not (plain lines, one frame), and in colour or not. */
static int live, color;

/* A Select Graphic Rendition sequence ("7": reverse, "1": bold, "0":
 * reset), when in colour. */
static void sgr(struct mb_buf *b, const char *code)
{
	if (color)
		mb_buf_addf(b, "\033[%sm", code);
}

/* The end of a line: on the live screen the rest of it is cleared too. */
static void eol(struct mb_buf *b)
{
	mb_buf_adds(b, live ? "\033[K\r\n" : "\n");
}

static void on_signal(int sig)
{
	if (sig == SIGWINCH)
		resized = 1;
	else
		quit = 1;
}

/* A JSON string member's text, "" when it is missing or not a string. */
static const char *str_of(const cJSON *item)
{
	const char *v = cJSON_GetStringValue(item);

	return v ? v : "";
}

struct wrow {
	struct mb_worker_row w;
	int64_t job;		/* its running job, 0: none */
	double cost;		/* over all its jobs */
};

struct frame {
	struct mb_store *s;
	struct mb_job_row *jobs;
	size_t njobs;
	struct wrow *workers;
	size_t nworkers;
	struct mb_job_totals t;	/* over every job, however long the history */
};

static int take_job(const struct mb_job_row *j, void *ctx)
{
	struct frame *f = ctx;

	if (f->njobs < MAX_JOBS)
		f->jobs[f->njobs++] = *j;
	return 0;
}

static int take_worker(const struct mb_worker_row *w, void *ctx)
{
	struct frame *f = ctx;

	if (f->nworkers < MAX_WORKERS) {
		memset(&f->workers[f->nworkers], 0, sizeof(f->workers[0]));
		f->workers[f->nworkers++].w = *w;
	}
	return 0;
}

/* Appends s cut (ending "...", or starting with it when tail is set) or
 * padded to exactly width columns (bytes: the text here is ASCII but for
 * model names and event data, cut the same way). */
static void cell_cut(struct mb_buf *b, const char *s, int width, int tail)
{
	char fit[1100];
	int n;

	/* a worker's or a hub's text on a terminal: no escape sequences */
	cli_fit(s, width > 0 ? (size_t)width : 0, tail, fit, sizeof(fit));
	n = (int)strlen(fit);
	mb_buf_add(b, fit, (size_t)n);
	for (; n < width; n++)
		mb_buf_adds(b, " ");
}

static void cell(struct mb_buf *b, const char *s, int width)
{
	cell_cut(b, s, width, 0);
}

struct step_find {
	char name[32];
	int found;
	char also[4][32];	/* running beside it (the pull beside quantize) */
	int nalso;
};

static int running_step(const struct mb_step_row *st, void *ctx)
{
	struct step_find *sf = ctx;

	if (strcmp(st->state, "running") != 0)
		return 0;
	if (!sf->found) {
		snprintf(sf->name, sizeof(sf->name), "%s", st->name);
		sf->found = 1;
	} else if (sf->nalso < 4) {
		snprintf(sf->also[sf->nalso++], sizeof(sf->also[0]), "%s", st->name);
	}
	return 0;
}

/* Of the steps running side by side, the one that reported progress last
 * is shown, with its progress. */
static void running_pick(struct step_find *sf, const char *ev_step)
{
	int k;

	for (k = 0; k < sf->nalso; k++)
		if (strcmp(sf->also[k], ev_step) == 0)
			snprintf(sf->name, sizeof(sf->name), "%s", ev_step);
}

/* The progress of a step in at most width columns: the fullest of
 * "[####....] 3.4 GB/9.1 GB 120 MB/s ETA 1m20s", then without the bar,
 * then "37% 120 MB/s ETA 1m20s", then "37% ETA 1m20s": the time left is
 * the last thing given up. */
static void progress_text(double done, double total, double rate,
			  const char *unit, int width, char *out, size_t cap)
{
	char d[32], t[32], r[32], e[32] = "?", rest[160];
	int pct = total > 0 ? (int)(100 * done / total) : 0;
	int w, k, fill;

	cli_bytes(done, d, sizeof(d));
	cli_bytes(total, t, sizeof(t));
	cli_bytes(rate > 0 ? rate : 0, r, sizeof(r));
	if (rate > 0 && total >= done)
		cli_duration((total - done) / rate, e, sizeof(e));
	if (unit != NULL) {
		/* counted, not bytes: "3/10 chunks ETA 40s" */
		snprintf(rest, sizeof(rest), "%.0f/%.0f %.20s ETA %s", done,
			 total, unit, e);
	} else {
		/* "3.4/9.1 GB" when both have the same unit */
		const char *du = strchr(d, ' '), *tu = strchr(t, ' ');

		if (du != NULL && tu != NULL && strcmp(du, tu) == 0)
			snprintf(rest, sizeof(rest), "%.*s/%s %s/s ETA %s",
				 (int)(du - d), d, t, r, e);
		else
			snprintf(rest, sizeof(rest), "%s/%s %s/s ETA %s", d, t, r, e);
	}
	w = width - (int)strlen(rest) - 3;
	if (w >= 8) {
		size_t o = 0;

		if (w > 40)
			w = 40;
		fill = total > 0 ? (int)(w * (done / total) + 0.5) : 0;
		out[o++] = '[';
		for (k = 0; k < w && o + 2 < cap; k++)
			out[o++] = k < fill ? '#' : '.';
		snprintf(out + o, cap - o, "] %s", rest);
		return;
	}
	if ((int)strlen(rest) <= width) {
		snprintf(out, cap, "%s", rest);
		return;
	}
	if (unit == NULL) {
		snprintf(out, cap, "%d%% %s/s ETA %s", pct, r, e);
		if ((int)strlen(out) <= width)
			return;
	}
	snprintf(out, cap, "%d%% ETA %s", pct, e);
}

/* The widths of a job row's columns at cols columns; the header uses the
 * same. */
static int model_width(int cols)
{
	return cols >= 100 ? 30 : cols >= 80 ? 14 : 10;
}

/* 0: no quants column (a narrow terminal keeps the progress instead) */
static int quants_width(int cols)
{
	return cols >= 100 ? 13 : cols >= 80 ? 11 : 0;
}

static int progress_width(int cols)
{
	/* " " id 5, " ", model, " ", quants, " ", step 9, " ", progress,
	 * " ", held 7, and the last column left free (no wrap) */
	int qw = quants_width(cols);
	int w = cols - (1 + 5 + 1 + model_width(cols) + 1 + (qw ? qw + 1 : 0) +
			9 + 1 + 1 + 7) - 1;

	return w < 8 ? 8 : w;
}

/* A finished job's recommended file and how close it is to its F16, for
 * the progress column: "Q4_K_M top-1 92% KL 0.031". A finished
 * job does not change (a retry finishes it again, later), so each is
 * worked out once per (job, finish time) and kept. */
#define QUALITY_CACHE 256

struct quality {
	int64_t id, finished_at;
	char text[80];
};

static struct quality qcache[QUALITY_CACHE];
static size_t qnext;

static const char *quality_text(struct mb_store *s, const struct mb_job_row *j)
{
	struct cli_rec rec;
	struct quality *q = NULL;
	char type[64];
	size_t i;

	for (i = 0; i < QUALITY_CACHE; i++)
		if (qcache[i].id == j->id && qcache[i].finished_at == j->finished_at)
			return qcache[i].text;
	q = &qcache[qnext++ % QUALITY_CACHE];
	q->id = j->id;
	q->finished_at = j->finished_at;
	q->text[0] = '\0';
	if (cli_recommended(s, j->id, &rec) != 0)
		return q->text;
	mb_publish_type(rec.file, type, sizeof(type));
	/* 25 columns at most for the usual types: what an 80-column
	 * terminal gives the progress */
	if (!rec.measured)
		snprintf(q->text, sizeof(q->text), "%.40s (no fidelity)", type);
	else if (rec.kld_mean < 0.001)
		snprintf(q->text, sizeof(q->text), "%.40s top-1 %.0f%% KL<0.001",
			 type, 100 * rec.top1);
	else
		snprintf(q->text, sizeof(q->text), "%.40s top-1 %.0f%% KL %.3f",
			 type, 100 * rec.top1, rec.kld_mean);
	return q->text;
}

/* One line per job: id, model, quants, step, progress (for a finished
 * job, its recommended file's quality), the time it held its worker. */
static void job_line(struct frame *f, const struct mb_job_row *j, int cols,
		     struct mb_buf *b)
{
	struct step_find sf = { "", 0, { "" }, 0 };
	char tmp[512], ev_step[32], data[8192];
	int model_w = model_width(cols), bar_w = progress_width(cols);
	int have_ev = 0;
	double held;

	snprintf(tmp, sizeof(tmp), " %-5lld ", (long long)j->id);
	cell(b, tmp, 7);
	/* a long path keeps its end, where the model's name is */
	cell_cut(b, j->source, model_w, 1);
	mb_buf_adds(b, " ");
	if (quants_width(cols) > 0) {
		cell(b, j->quants, quants_width(cols));
		mb_buf_adds(b, " ");
	}
	if (strcmp(j->state, "running") == 0) {
		mb_store_step_list(f->s, j->id, running_step, &sf);
		have_ev = sf.found &&
			  mb_store_event_last(f->s, j->id, "progress", ev_step,
					      sizeof(ev_step), data,
					      sizeof(data)) == 0;
		if (have_ev)
			running_pick(&sf, ev_step);
		cell(b, sf.found ? sf.name : "starting", 9);
	} else {
		cell(b, j->state, 9);
	}
	mb_buf_adds(b, " ");
	tmp[0] = '\0';
	if (have_ev && strcmp(ev_step, sf.name) == 0) {
		cJSON *doc = mb_json_parse(data, strlen(data));
		double done = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "done"));
		double total = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "total"));
		double rate = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "rate"));

		if (!(done >= 0))
			done = 0;
		if (!(total > 0))
			total = 0;
		if (!(rate > 0))
			rate = 0;
		progress_text(done, total, rate,
			      cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
				      doc, "unit")),
			      bar_w, tmp, sizeof(tmp));
		cJSON_Delete(doc);
	} else if (j->error[0] && strcmp(j->state, "succeeded") != 0) {
		snprintf(tmp, sizeof(tmp), "%.500s", j->error);
	} else if (strcmp(j->state, "succeeded") == 0) {
		snprintf(tmp, sizeof(tmp), "%s", quality_text(f->s, j));
	}
	cell(b, tmp, bar_w);
	mb_buf_adds(b, " ");
	/* what the job is charged for, as status and show count it */
	held = cli_held(f->s, j);
	cli_duration(held, tmp, sizeof(tmp));
	cell(b, j->started_at > 0 || held > 0 ? tmp : "-", 7);
}

struct ev_ctx {
	struct mb_buf *b;
	int cols;
};

static int event_line(int64_t job, const char *step, int64_t at_ms,
		      const char *type, const char *data, void *ctx)
{
	struct ev_ctx *e = ctx;
	time_t t = (time_t)(at_ms / 1000);
	char when[16], head[96], what[600] = "";
	cJSON *doc = mb_json_parse(data, strlen(data));
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	if (strcmp(type, "repair") == 0) {
		char *a = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(doc, "actual"));
		char *c = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(doc, "claimed"));

		snprintf(what, sizeof(what), "%s: %s -> %s",
			 cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "key")),
			 c ? c : "missing", a ? a : "?");
		cJSON_free(a);
		cJSON_free(c);
	} else if (strcmp(type, "error") == 0) {
		snprintf(what, sizeof(what), "%s",
			 str_of(cJSON_GetObjectItemCaseSensitive(doc, "message")));
	} else if (strcmp(type, "pulled") == 0) {
		char n[48];
		uint64_t streams = 0;

		/* a number from outside: checked, never cast as it comes */
		mb_json_get_u64(doc, "streams", 1024, &streams);
		cli_count((double)streams, "stream", n, sizeof(n));
		snprintf(what, sizeof(what), "%s verified (%s, %.1f s)",
			 str_of(cJSON_GetObjectItemCaseSensitive(doc, "file")), n,
			 cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "seconds")));
	} else if (strcmp(type, "done") == 0 &&
		   cJSON_GetObjectItemCaseSensitive(doc, "file") != NULL) {
		const char *file = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "file"));
		const char *slash = file ? strrchr(file, '/') : NULL;

		snprintf(what, sizeof(what), "%s", slash ? slash + 1 : file ? file : "");
	} else if (strcmp(type, "fallback") == 0) {
		snprintf(what, sizeof(what), "%s stored as %s",
			 str_of(cJSON_GetObjectItemCaseSensitive(doc, "tensor")),
			 str_of(cJSON_GetObjectItemCaseSensitive(doc, "to")));
	}
	cJSON_Delete(doc);
	snprintf(head, sizeof(head), " %s %5lld %-9s %-8s ", when, (long long)job,
		 step ? step : "", type);
	cell(e->b, head, (int)strlen(head));
	cell(e->b, what, e->cols - (int)strlen(head));
	eol(e->b);
	return 0;
}

static void worker_line(const struct wrow *w, int cols, struct mb_buf *b)
{
	cJSON *hello = w->w.hello[0] ? mb_json_parse(w->w.hello, strlen(w->w.hello))
				     : NULL;
	const cJSON *gpus = cJSON_GetObjectItemCaseSensitive(hello, "gpus");
	char tmp[256], disk[32] = "?", gpu[128] = "none";
	int n = cJSON_GetArraySize(gpus);

	if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(hello, "disk_free")))
		cli_bytes(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(hello,
								     "disk_free")),
			    disk, sizeof(disk));
	if (n > 0)
		snprintf(gpu, sizeof(gpu), "%dx %s", n,
			 str_of(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(gpus, 0),
						   "name")));
	cJSON_Delete(hello);
	mb_buf_adds(b, " ");
	cell(b, w->w.name, 14);
	mb_buf_adds(b, " ");
	cell(b, w->job ? "busy" : w->w.idle_ran_at ? "idle*" : "idle", 6);
	snprintf(tmp, sizeof(tmp), w->job ? "%lld" : "-", (long long)w->job);
	cell(b, tmp, 7);
	cell(b, disk, 11);
	cell(b, gpu, cols > 100 ? 40 : 24);
	snprintf(tmp, sizeof(tmp), "$%.2f", w->cost);
	cell(b, tmp, 10);
	eol(b);
}

/* Draws one frame of rows x cols into b. */
static int draw(struct frame *f, int rows, int cols, struct mb_buf *b)
{
	char now[16], head[256];
	time_t t = time(NULL);
	struct tm tm;
	size_t i, k;
	int line = 0, budget, shown = 0, ev_rows;
	struct ev_ctx ec = { b, cols };

	f->njobs = f->nworkers = 0;
	/* the unfinished jobs and the latest finished ones, as status shows
	 * them; counts and costs from the database's sums */
	if (mb_store_job_totals(f->s, &f->t) != 0 ||
	    mb_store_job_list_recent(f->s, RECENT, take_job, f) != 0 ||
	    mb_store_worker_list(f->s, take_worker, f) != 0)
		return 1;
	for (k = 0; k < f->nworkers; k++) {
		mb_store_worker_cost(f->s, f->workers[k].w.id, &f->workers[k].cost);
		for (i = 0; i < f->njobs; i++)
			if (f->jobs[i].worker_id == f->workers[k].w.id &&
			    strcmp(f->jobs[i].state, "running") == 0)
				f->workers[k].job = f->jobs[i].id;
	}
	localtime_r(&t, &tm);
	strftime(now, sizeof(now), "%H:%M:%S", &tm);
	snprintf(head, sizeof(head), " mibera  %zu worker%s  %d running  %d "
		 "queued  %d waiting  cost $%.2f", f->nworkers,
		 f->nworkers == 1 ? "" : "s", f->t.running, f->t.queued,
		 f->t.waiting, f->t.cost);
	if (live)
		mb_buf_adds(b, "\033[H");
	sgr(b, "7");
	cell(b, head, cols - 10);
	cell(b, now, 10);
	sgr(b, "0");
	eol(b);
	line++;
	sgr(b, "1");
	mb_buf_adds(b, " WORKER         STATE JOB    DISK FREE  GPU");
	mb_buf_addf(b, "%*sCOST", (cols > 100 ? 40 : 24) - 3, "");
	sgr(b, "0");
	eol(b);
	line++;
	/* the events get a third of what is left after the workers */
	for (k = 0; k < f->nworkers && line < rows / 3; k++, line++)
		worker_line(&f->workers[k], cols, b);
	sgr(b, "1");
	mb_buf_adds(b, " JOB   MODEL");
	mb_buf_addf(b, "%*s", model_width(cols) - 5 + 1, "");
	if (quants_width(cols) > 0)
		mb_buf_addf(b, "QUANTS%*s", quants_width(cols) - 6 + 1, "");
	mb_buf_addf(b, "STEP      PROGRESS%*sHELD", progress_width(cols) - 8 + 1,
		    "");
	sgr(b, "0");
	eol(b);
	line++;
	ev_rows = (rows - line - 2) / 3;
	if (ev_rows < 3)
		ev_rows = rows - line - 2 > 3 ? 3 : 0;
	budget = rows - line - ev_rows - 2;
	/* unfinished jobs first, oldest first, then the latest finished */
	for (k = 0; k < 2; k++)
		for (i = f->njobs; i-- > 0 && shown < budget;) {
			const struct mb_job_row *j = &f->jobs[k == 0 ? i : f->njobs - 1 - i];
			int unfinished = strcmp(j->state, "queued") == 0 ||
					 strcmp(j->state, "running") == 0 ||
					 strcmp(j->state, "waiting") == 0;

			if (unfinished != (k == 0))
				continue;
			job_line(f, j, cols, b);
			eol(b);
			shown++;
		}
	line += shown;
	/* the live screen keeps the events in their place */
	for (; live && shown < budget; shown++, line++)
		eol(b);
	if (ev_rows > 0) {
		sgr(b, "1");
		mb_buf_adds(b, " EVENTS");
		sgr(b, "0");
		eol(b);
		line++;
		mb_store_events_recent(f->s, ev_rows, event_line, &ec);
	}
	if (live) {
		mb_buf_addf(b, "\033[J\033[%d;1H", rows);
		sgr(b, "7");
		mb_buf_adds(b, " q quit ");
		sgr(b, "0");
	}
	return 0;
}

static void term_size(int *rows, int *cols)
{
	struct winsize ws;

	*rows = 24;
	*cols = 80;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 &&
	    ws.ws_col > 0) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
	if (*rows < 12)
		*rows = 12;
	if (*cols < 60)
		*cols = 60;
}

static const struct cli_opt opts[] = {
	{ "once", 0, NULL, NULL, "print one frame and end, without taking the "
	  "screen (for scripts)" },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec spec = {
	"mibera-job dashboard", NULL, 0, 0,
	"A live full-screen view of the workers, the jobs with their progress, "
	"and the\nlatest events, redrawn every second; q quits. Off a terminal, "
	"or with NO_COLOR\nset, --once prints plain text without colour.", opts,
};

int cmd_dashboard(int argc, char **argv)
{
	struct cli_parse p;
	struct frame f;
	struct termios old, raw;
	struct mb_buf b;
	char err[1024];
	int once = 0, rows, cols, rc = 0, tty, fails = 0;

	cli_parse_init(&p, &spec, argc, argv);
	while ((rc = cli_next(&p)) > 0)
		if (cli_is(&p, "once"))
			once = 1;
	if (rc < 0)
		return p.exit;
	rc = 0;
	{
		const char *nc = getenv("NO_COLOR");

		live = !once;
		color = isatty(STDOUT_FILENO) && (nc == NULL || nc[0] == '\0');
	}
	memset(&f, 0, sizeof(f));
	if (mb_store_open(NULL, &f.s, err, sizeof(err)) != 0) {
		fprintf(stderr, "mibera-job: %s\n", err);
		return 1;
	}
	f.jobs = calloc(MAX_JOBS, sizeof(*f.jobs));
	f.workers = calloc(MAX_WORKERS, sizeof(*f.workers));
	if (f.jobs == NULL || f.workers == NULL) {
		fprintf(stderr, "mibera-job dashboard: out of memory\n");
		rc = 1;
		goto out;
	}
	tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	if (!once && !tty) {
		fprintf(stderr, "mibera-job dashboard: needs a terminal (or "
			"--once)\n");
		rc = 2;
		goto out;
	}
	if (!once) {
		tcgetattr(STDIN_FILENO, &old);
		raw = old;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		signal(SIGHUP, on_signal);
		signal(SIGWINCH, on_signal);
		/* the alternate screen, no cursor: given back on the way out */
		fputs("\033[?1049h\033[?25l", stdout);
	}
	mb_buf_init(&b, 4u << 20);
	while (!quit) {
		struct pollfd pf = { STDIN_FILENO, POLLIN, 0 };
		long long t0;
		struct timespec ts;

		term_size(&rows, &cols);
		mb_buf_reset(&b);
		if (draw(&f, rows, cols, &b) != 0) {
			/* a database too busy to read (a loaded machine, a
			 * long write): the last frame stays and the next
			 * second tries again; half a minute of it ends */
			if (once || ++fails >= 30) {
				rc = 1;
				break;
			}
		} else {
			fails = 0;
			if (b.data != NULL)
				fwrite(b.data, 1, b.len, stdout);
		}
		if (once)
			break;
		fflush(stdout);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		t0 = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
		/* a key or a second, whichever comes first */
		for (;;) {
			long long now;
			char c;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			now = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
			if (quit || resized || now - t0 >= 1000)
				break;
			if (poll(&pf, 1, (int)(1000 - (now - t0))) > 0 &&
			    read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q'))
				quit = 1;
		}
		resized = 0;
	}
	mb_buf_release(&b);
	if (!once) {
		fputs("\033[?25h\033[?1049l", stdout);
		fflush(stdout);
		tcsetattr(STDIN_FILENO, TCSANOW, &old);
	}
	if (rc == 1)
		fprintf(stderr, "mibera-job dashboard: cannot read the job "
			"database in %s\n", once ? "one try" : "30 s");
out:
	free(f.jobs);
	free(f.workers);
	mb_store_close(f.s);
	return rc;
}
