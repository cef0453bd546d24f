/*
 * mibera-job worker add|list|check|remove: the boxes jobs run on.
 *
 *   worker add NAME TARGET [--key PATH] [--dir PATH] [--cost-per-hour N]
 *              [--accept-host-key SHA256:...] [--agent PATH]
 *              [--idle-command CMD [--idle-after SECONDS]] [--max-jobs N]
 *   worker list [--json] [--check]
 *   worker check NAME
 *   worker remove NAME
 *   worker update NAME [--target TARGET] [--key PATH] [--dir PATH] ...
 *
 * TARGET is "local", [user@]host[:port] or an ssh config alias. Adding
 * connects, checks the host key (an unknown one only with its fingerprint
 * given), runs the agent's hello and pins the key: every later connection
 * insists on it. The idle command (for example `vastai stop instance 123`)
 * runs on this machine, through the shell, once the worker has had no job
 * for SECONDS (default 600) and every artifact made on it is pulled and
 * verified; --max-jobs lets a big box run several jobs at once. update
 * changes the settings add took; a new target, key, directory or agent is
 * connected to and checked as add does (a new host's key is trusted the
 * same way), a new target or directory only while no job uses the worker.
 * list --check connects to every worker at once, each for a few seconds
 * at most, and says which do not answer.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/json.h"
#include "common/text.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"
#include "coordinator/store.h"
#include "coordinator/transport.h"
#include "coordinator/workerconn.h"
#include "proto/protocol.h"

#define MAX_HELLO 4000

static const struct cli_opt add_opts[] = {
	{ "key", 0, "PATH", NULL, "the ssh key to log in with" },
	{ "dir", 0, "PATH", NULL, "the worker directory (default ~/.mibera)" },
	{ "cost-per-hour", 0, "N", NULL, "what the box costs an hour, in "
	  "dollars" },
	{ "accept-host-key", 0, "SHA256:...", NULL, "trust an unknown host key "
	  "with this fingerprint" },
	{ "agent", 0, "PATH", NULL, "a mibera-worker already there (no "
	  "bootstrap)" },
	{ "idle-command", 0, "CMD", NULL, "run here once the worker is idle "
	  "(e.g. stop the instance)" },
	{ "idle-after", 0, "SECONDS", NULL, "idle for this long first (default "
	  "600)" },
	{ "max-jobs", 0, "N", NULL, "jobs it runs at once, 1 to 64 (default "
	  "1)" },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec add_spec = {
	"mibera-job worker add", "NAME TARGET", 2, 2,
	"Adds a worker. TARGET is local, [user@]host[:port] or an ssh config "
	"alias.\nAdding connects, checks the host key (an unknown one only "
	"with its fingerprint\ngiven), runs the agent's hello (installing it "
	"when it is missing) and pins the\nkey: every later connection insists "
	"on it.", add_opts,
};

static const struct cli_opt update_opts[] = {
	{ "target", 0, "TARGET", NULL, "local, [user@]host[:port] or an ssh "
	  "alias" },
	{ "host", 0, "TARGET", NULL, "the same as --target" },
	{ "key", 0, "PATH", NULL, "the ssh key to log in with (\"\": the "
	  "defaults)" },
	{ "dir", 0, "PATH", NULL, "the worker directory" },
	{ "agent", 0, "PATH", NULL, "a mibera-worker already there (\"\": "
	  "install one)" },
	{ "accept-host-key", 0, "SHA256:...", NULL, "trust an unknown host key "
	  "with this fingerprint" },
	{ "cost-per-hour", 0, "N", NULL, "what the box costs an hour (the "
	  "cost of its past jobs too)" },
	{ "idle-command", 0, "CMD", NULL, "run here once the worker is idle "
	  "(\"\": none)" },
	{ "idle-after", 0, "SECONDS", NULL, "idle for this long first" },
	{ "max-jobs", 0, "N", NULL, "jobs it runs at once, 1 to 64" },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec update_spec = {
	"mibera-job worker update", "NAME", 1, 1,
	"Changes a worker's settings. A new target, key, directory or agent is "
	"connected\nto and checked as worker add does; a new host's key is "
	"trusted only when\nknown_hosts has it or --accept-host-key names it. "
	"A new target or directory\nwaits until no job uses the worker.",
	update_opts,
};

static const struct cli_opt list_opts[] = {
	{ "json", 0, NULL, NULL, "print JSON (proto/workers.schema.json)" },
	{ "check", 0, NULL, NULL, "connect to each (a few seconds at most) and "
	  "say which do not answer" },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec list_spec = {
	"mibera-job worker list", NULL, 0, 0,
	"The workers, their state, price and pinned host key.", list_opts,
};

static const struct cli_opt no_opts[] = {
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec check_spec = {
	"mibera-job worker check", "NAME", 1, 1,
	"Connects to the worker, runs the agent's hello and records what it "
	"says\n(free disk, GPUs, versions).", no_opts,
};

static const struct cli_spec remove_spec = {
	"mibera-job worker remove", "NAME", 1, 1,
	"Removes a worker that no unfinished job uses (the history of its jobs "
	"stays).", no_opts,
};

/* Parses argv against spec; 0 when the verb goes on (p filled), else
 * 1 + the exit code (after --help or a usage error). */
static int parse(const struct cli_spec *spec, int argc, char **argv,
		 struct cli_parse *p, int (*take)(struct cli_parse *p, void *ctx),
		 void *ctx)
{
	int c;

	cli_parse_init(p, spec, argc, argv);
	while ((c = cli_next(p)) > 0)
		if (take != NULL && take(p, ctx) != 0)
			return 1 + 2;
	return c < 0 ? 1 + p->exit : 0;
}

/* Reads a number option's value: 0, or a usage error's exit code. */
static int number(const struct cli_parse *p, double min, double max,
		  double *out)
{
	char *end;
	double v = strtod(p->val, &end);

	if (*end != '\0' || end == p->val || !(v >= min && v <= max))
		return cli_usage_error(p->spec, "--%s is a number from %g to %g, "
				       "not '%s'", p->opt->name, min, max, p->val);
	*out = v;
	return 0;
}

/* The settings add and update share, read into w; nonzero (the exit
 * code, after saying why) for a bad value. */
struct settings {
	struct mb_worker_row *w;
	const char *accept;
	int idle_after;		/* --idle-after given */
	int connect;		/* a setting that needs a connection changed */
	int moved;		/* the target or the directory changed */
};

static int take_setting(struct cli_parse *p, void *ctx)
{
	struct settings *st = ctx;
	struct mb_worker_row *w = st->w;
	double v;
	int rc;

#define SET(field)                                                             \
	do {                                                                   \
		if (strlen(p->val) >= sizeof(w->field))                        \
			return cli_usage_error(p->spec, "--%s is too long",    \
					       p->opt->name);                  \
		snprintf(w->field, sizeof(w->field), "%s", p->val);            \
	} while (0)
	if (cli_is(p, "target") || cli_is(p, "host")) {
		SET(target);
		st->connect = st->moved = 1;
	} else if (cli_is(p, "key")) {
		SET(key_path);
		st->connect = 1;
	} else if (cli_is(p, "dir")) {
		SET(dir);
		st->connect = st->moved = 1;
	} else if (cli_is(p, "agent")) {
		SET(agent_path);
		st->connect = 1;
	} else if (cli_is(p, "accept-host-key")) {
		st->accept = p->val;
	} else if (cli_is(p, "idle-command")) {
		SET(idle_command);
	} else if (cli_is(p, "idle-after")) {
		if ((rc = number(p, 0, 1e9, &v)) != 0)
			return rc;
		w->idle_after_s = (int64_t)v;
		st->idle_after = 1;
	} else if (cli_is(p, "max-jobs")) {
		if ((rc = number(p, 1, 64, &v)) != 0)
			return rc;
		w->max_jobs = (int)v;
	} else if (cli_is(p, "cost-per-hour")) {
		if ((rc = number(p, 0, 1e6, &v)) != 0)
			return rc;
		w->cost_per_hour = v;
	}
#undef SET
	return 0;
}

/* An install's steps as they start, with the time it has taken so far: it
 * may build llama.cpp for minutes on a box paid by the hour. */
static void progress(const char *step, double elapsed_s, void *ctx)
{
	char d[32];

	(void)ctx;
	cli_duration(elapsed_s, d, sizeof(d));
	fprintf(stderr, "[%5s] bootstrap: %s\n", d, step);
	fflush(stderr);
}

/* Connects to w and runs hello (installing the agent first when it is
 * missing or stale and no --agent was given, showing its progress). */
static int connect_hello(const struct mb_worker_row *w, const char *accept,
			 struct mb_transport **tp, char *hello, size_t cap)
{
	struct mb_transport *t = NULL;
	char agent[2200], msg[2048];
	int rc;

	rc = mb_worker_connect(w, accept, &t, agent, sizeof(agent), msg,
			       sizeof(msg));
	if (rc != 0) {
		fprintf(stderr, "mibera-job worker: %s\n", msg);
		return rc;
	}
	rc = mb_worker_hello_progress(t, w, agent, w->agent_path[0] == '\0',
				      progress, NULL, hello, cap, msg,
				      sizeof(msg));
	if (rc != 0) {
		fprintf(stderr, "mibera-job worker: %s\n", msg);
		if (w->agent_path[0] != '\0')
			fprintf(stderr, "mibera-job worker: check --agent %s\n",
				w->agent_path);
		mb_transport_free(t);
		return rc;
	}
	*tp = t;
	return 0;
}

static void summary(const char *hello)
{
	cJSON *h = cJSON_Parse(hello);
	const cJSON *g;

	if (h == NULL)
		return;
	printf("  agent %s, %.0f CPUs, %.1f GB RAM, %.1f GB free in %s, llama.cpp %s\n",
	       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "agent")),
	       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(h, "cpus")),
	       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(h, "ram")) / 1e9,
	       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(h, "disk_free")) / 1e9,
	       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "dir")),
	       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "llama_cpp")));
	cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(h, "gpus"))
		printf("  GPU %s, %.1f GB\n",
		       cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(g, "name")),
		       cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(g, "memory")) / 1e9);
	{
		/* what the model-running steps will use: the GPU rented for
		 * them, or the CPU */
		const char *be = cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(h, "backend"));
		char safe[300];

		printf("  backend %s\n", be ? mb_printable(safe, sizeof(safe), be)
					    : "unknown (the agent does not say)");
	}
	cJSON_Delete(h);
}

/* A local worker's relative --dir is from where the command ran: the
 * coordinator runs elsewhere (a service), so it is kept absolute. Over ssh
 * a relative path is from the login directory and stays as given. */
static int local_dir_absolute(struct mb_worker_row *w,
			      const struct mb_target *tg)
{
	char cwd[PATH_MAX], abs[sizeof(w->dir)];

	if (tg->kind != MB_TRANSPORT_LOCAL || w->dir[0] == '/' ||
	    w->dir[0] == '\0')
		return 0;
	if (getcwd(cwd, sizeof(cwd)) == NULL ||
	    (size_t)snprintf(abs, sizeof(abs), "%s/%s", cwd, w->dir) >=
		    sizeof(abs)) {
		fprintf(stderr, "mibera-job worker: cannot make --dir '%s' "
			"absolute; give the full path\n", w->dir);
		return -1;
	}
	memcpy(w->dir, abs, sizeof(abs));
	return 0;
}

static int cmd_add(int argc, char **argv, struct mb_store **sp)
{
	struct mb_worker_row w;
	struct mb_transport *t = NULL;
	struct mb_store *s;
	const char *accept;
	char hello[MAX_HELLO];
	struct mb_target tg;
	struct cli_parse p;
	struct settings set;
	int rc, idle_after;

	memset(&w, 0, sizeof(w));
	memset(&set, 0, sizeof(set));
	set.w = &w;
	if ((rc = parse(&add_spec, argc, argv, &p, take_setting, &set)) != 0)
		return rc - 1;
	if (!mb_proto_name_ok(p.args[0]) || strlen(p.args[0]) >= sizeof(w.name)) {
		fprintf(stderr, "mibera-job worker: a worker name is 1 to 64 "
			"letters, digits, '-' or '_'\n");
		return 2;
	}
	snprintf(w.name, sizeof(w.name), "%s", p.args[0]);
	snprintf(w.target, sizeof(w.target), "%s", p.args[1]);
	accept = set.accept;
	idle_after = set.idle_after;
	if (cli_open(sp) != 0)
		return 1;
	s = *sp;
	if (!idle_after)
		w.idle_after_s = 600;
	if (mb_target_parse(w.target, &tg, NULL, 0) != 0) {
		fprintf(stderr, "mibera-job worker: '%s' is not local, "
			"[user@]host[:port] or an ssh alias\n", w.target);
		return 2;
	}
	if (local_dir_absolute(&w, &tg) != 0)
		return 2;
	if (w.dir[0] == '\0') {
		/* over ssh a relative path is from the login directory */
		if (tg.kind == MB_TRANSPORT_LOCAL)
			snprintf(w.dir, sizeof(w.dir), "%s/.mibera",
				 getenv("HOME") ? getenv("HOME") : "/tmp");
		else
			snprintf(w.dir, sizeof(w.dir), ".mibera");
	}
	if (mb_store_worker_get(s, w.name, &(struct mb_worker_row){ 0 }) == 0) {
		fprintf(stderr, "mibera-job worker: '%s' exists; remove it first\n",
			w.name);
		return 1;
	}
	rc = connect_hello(&w, accept, &t, hello, sizeof(hello));
	if (rc != 0)
		return 1;
	if (mb_transport_host_key_line(t) != NULL)
		snprintf(w.host_key, sizeof(w.host_key), "%s",
			 mb_transport_host_key_line(t));
	if (mb_transport_fingerprint(t) != NULL)
		snprintf(w.fingerprint, sizeof(w.fingerprint), "%s",
			 mb_transport_fingerprint(t));
	mb_transport_free(t);
	rc = mb_store_worker_add(s, &w);
	if (rc == 0)
		rc = mb_store_worker_checked(s, w.name, hello, NULL, NULL);
	if (rc != 0) {
		fprintf(stderr, "mibera-job worker: cannot record '%s': %s\n", w.name,
			mb_strerror(rc));
		return 1;
	}
	printf("added worker %s (%s)%s%s\n", w.name, w.target,
	       w.fingerprint[0] ? ", host key " : "", w.fingerprint);
	summary(hello);
	return 0;
}

/* Workers list --check probes at most, and how long each may take to
 * connect and log in: a list stays quick even when a box is gone. */
#define MAX_PROBES 256
#define PROBE_MS 4000

struct probe {
	struct mb_worker_row w;
	pthread_t th;
	int started;
	int ok;
	double seconds;
	char why[512];		/* when not ok */
};

/* Connects to the worker (its pinned host key, its key file) and logs
 * in, bounded by PROBE_MS; a local worker answers when its directory is
 * there. */
static void *probe_main(void *arg)
{
	struct probe *pr = arg;
	struct mb_transport_opts o;
	struct mb_transport *t = NULL;
	struct mb_target tg;
	char msg[512];
	double t0 = mb_now_s();

	if (mb_target_parse(pr->w.target, &tg, msg, sizeof(msg)) != 0) {
		snprintf(pr->why, sizeof(pr->why), "%s", msg);
		return NULL;
	}
	if (tg.kind == MB_TRANSPORT_LOCAL) {
		struct stat st;

		pr->ok = stat(pr->w.dir, &st) == 0 && S_ISDIR(st.st_mode);
		if (!pr->ok)
			snprintf(pr->why, sizeof(pr->why), "its directory '%.400s' is "
				 "not there", pr->w.dir);
		pr->seconds = mb_now_s() - t0;
		return NULL;
	}
	memset(&o, 0, sizeof(o));
	o.target = pr->w.target;
	o.pinned_key = pr->w.host_key[0] ? pr->w.host_key : NULL;
	o.identity = pr->w.key_path[0] ? pr->w.key_path : NULL;
	o.connect_timeout_ms = PROBE_MS;
	o.io_timeout_ms = PROBE_MS;
	o.retries = -1;
	if (mb_transport_open(&o, &t, msg, sizeof(msg)) == 0) {
		pr->ok = 1;
		mb_transport_free(t);
	} else {
		mb_printable(pr->why, sizeof(pr->why), msg);
	}
	pr->seconds = mb_now_s() - t0;
	return NULL;
}

struct list {
	struct mb_buf *b;	/* --json, or NULL */
	struct probe *probes;	/* --check, or NULL */
	size_t n;
};

static int take_worker(const struct mb_worker_row *w, void *ctx)
{
	struct list *l = ctx;

	if (l->n < MAX_PROBES)
		l->probes[l->n++].w = *w;
	return 0;
}

/* The backend column: as wide as "cuda: NVIDIA GeForce RTX 4090, 24 GiB";
 * a longer one pushes the host key along. */
#define BACKEND_W "37"

static void list_one(const struct mb_worker_row *w, const struct probe *pr,
		     struct mb_buf *b)
{
	if (b != NULL) {
		if (b->len > 1)
			mb_buf_adds(b, ",");
		mb_buf_adds(b, "{\"name\":");
		mb_json_quote(b, w->name);
		mb_buf_adds(b, ",\"target\":");
		mb_json_quote(b, w->target);
		mb_buf_adds(b, ",\"dir\":");
		mb_json_quote(b, w->dir);
		mb_buf_adds(b, ",\"fingerprint\":");
		mb_json_quote(b, w->fingerprint);
		mb_buf_addf(b, ",\"cost_per_hour\":%.4f,\"max_jobs\":%d,"
			    "\"idle_after\":%lld,\"idle_command\":", w->cost_per_hour,
			    w->max_jobs > 0 ? w->max_jobs : 1,
			    (long long)w->idle_after_s);
		mb_json_quote(b, w->idle_command);
		mb_buf_adds(b, ",\"state\":");
		mb_json_quote(b, w->state);
		mb_buf_adds(b, ",\"backend\":");
		mb_json_quote(b, w->backend);
		mb_buf_addf(b, ",\"checked_at\":%lld,\"hello\":%s",
			    (long long)w->checked_at, w->hello[0] ? w->hello : "null");
		if (pr != NULL) {
			mb_buf_addf(b, ",\"answers\":%s,\"problem\":",
				    pr->ok ? "true" : "false");
			mb_json_quote(b, pr->ok ? "" : pr->why);
		}
		mb_buf_adds(b, "}");
		return;
	}
	printf("%-16s %-30s %-8s %8.2f/h  %-" BACKEND_W "s  %s", w->name,
	       w->target, w->state, w->cost_per_hour,
	       w->backend[0] ? w->backend : "-",
	       w->fingerprint[0] ? w->fingerprint : "-");
	if (pr != NULL && pr->ok)
		printf("  answers (%.1f s)", pr->seconds);
	else if (pr != NULL)
		printf("  not answering: %s", pr->why);
	printf("\n");
}

static int print_one(const struct mb_worker_row *w, void *ctx)
{
	list_one(w, NULL, ctx);
	return 0;
}

static int take_list(struct cli_parse *p, void *ctx)
{
	int *flags = ctx;

	if (cli_is(p, "json"))
		flags[0] = 1;
	else if (cli_is(p, "check"))
		flags[1] = 1;
	return 0;
}

static int cmd_list(int argc, char **argv, struct mb_store **sp)
{
	struct cli_parse p;
	struct mb_buf b;
	struct list l = { NULL, NULL, 0 };
	int flags[2] = { 0, 0 }, rc, json, check;
	size_t i;

	if ((rc = parse(&list_spec, argc, argv, &p, take_list, flags)) != 0)
		return rc - 1;
	json = flags[0];
	check = flags[1];
	if (cli_open(sp) != 0)
		return 1;
	if (json) {
		mb_buf_init(&b, 64u << 20);
		mb_buf_adds(&b, "[");
		l.b = &b;
	} else {
		printf("%-16s %-30s %-8s %10s  %-" BACKEND_W "s  %s\n", "NAME",
		       "TARGET", "STATE", "COST", "BACKEND",
		       check ? "HOST KEY, ANSWERS" : "HOST KEY");
	}
	if (!check) {
		rc = mb_store_worker_list(*sp, print_one, l.b);
	} else {
		/* every worker at once: the list takes as long as the
		 * slowest, not the sum */
		l.probes = calloc(MAX_PROBES, sizeof(*l.probes));
		rc = l.probes ? mb_store_worker_list(*sp, take_worker, &l) : MB_ENOMEM;
		for (i = 0; rc == 0 && i < l.n; i++)
			l.probes[i].started = pthread_create(&l.probes[i].th, NULL,
							     probe_main,
							     &l.probes[i]) == 0;
		for (i = 0; i < l.n; i++) {
			if (l.probes[i].started)
				pthread_join(l.probes[i].th, NULL);
			else
				snprintf(l.probes[i].why, sizeof(l.probes[i].why),
					 "cannot start a thread to check it");
			list_one(&l.probes[i].w, &l.probes[i], l.b);
		}
		free(l.probes);
	}
	if (json) {
		mb_buf_adds(&b, "]\n");
		if (rc == 0)
			fwrite(b.data, 1, b.len, stdout);
		mb_buf_release(&b);
	}
	return rc == 0 ? 0 : 1;
}

/* worker update NAME [settings]: see update_spec. */
static int cmd_update(int argc, char **argv, struct mb_store **sp)
{
	struct mb_worker_row w, old;
	struct mb_transport *t = NULL;
	struct mb_target tg;
	struct cli_parse p;
	struct settings set;
	char hello[MAX_HELLO];
	int rc;

	memset(&w, 0, sizeof(w));
	memset(&set, 0, sizeof(set));
	/* the options are read twice: first to know the command is right
	 * before the database is opened, then over the worker's row */
	set.w = &w;
	if ((rc = parse(&update_spec, argc, argv, &p, take_setting, &set)) != 0)
		return rc - 1;
	if (cli_open(sp) != 0)
		return 1;
	if (mb_store_worker_get(*sp, p.args[0], &old) != 0) {
		fprintf(stderr, "mibera-job worker: no worker '%s'\n", p.args[0]);
		return 1;
	}
	w = old;
	memset(&set, 0, sizeof(set));
	set.w = &w;
	if ((rc = parse(&update_spec, argc, argv, &p, take_setting, &set)) != 0)
		return rc - 1;
	if (mb_target_parse(w.target, &tg, NULL, 0) != 0) {
		fprintf(stderr, "mibera-job worker: '%s' is not local, "
			"[user@]host[:port] or an ssh alias\n", w.target);
		return 2;
	}
	if (local_dir_absolute(&w, &tg) != 0)
		return 2;
	set.moved = strcmp(w.target, old.target) != 0 || strcmp(w.dir, old.dir) != 0;
	if (strcmp(w.target, old.target) != 0) {
		/* another host: its key is checked as a new one's is, not
		 * against the old host's */
		w.host_key[0] = '\0';
		w.fingerprint[0] = '\0';
	}
	if (set.connect || set.accept != NULL) {
		if (connect_hello(&w, set.accept, &t, hello, sizeof(hello)) != 0)
			return 1;
		if (mb_transport_host_key_line(t) != NULL)
			snprintf(w.host_key, sizeof(w.host_key), "%s",
				 mb_transport_host_key_line(t));
		if (mb_transport_fingerprint(t) != NULL)
			snprintf(w.fingerprint, sizeof(w.fingerprint), "%s",
				 mb_transport_fingerprint(t));
		mb_transport_free(t);
	}
	rc = mb_store_worker_update(*sp, old.name, &w, set.moved);
	if (rc == MB_EBUSY) {
		fprintf(stderr, "mibera-job worker: '%s' has unfinished jobs, whose "
			"files are on it; change its target or directory once "
			"they end (or cancel them)\n", old.name);
		return 1;
	}
	if (rc == 0 && (set.connect || set.accept != NULL))
		rc = mb_store_worker_checked(*sp, w.name, hello, NULL, NULL);
	if (rc != 0) {
		fprintf(stderr, "mibera-job worker: cannot record '%s': %s\n",
			old.name, mb_strerror(rc));
		return 1;
	}
	printf("updated worker %s (%s)%s%s\n", w.name, w.target,
	       w.fingerprint[0] ? ", host key " : "", w.fingerprint);
	if (set.connect || set.accept != NULL)
		summary(hello);
	return 0;
}

static int cmd_check(int argc, char **argv, struct mb_store **sp)
{
	struct mb_worker_row w;
	struct mb_transport *t = NULL;
	struct mb_store *s;
	struct cli_parse p;
	char hello[MAX_HELLO];
	int rc;

	if ((rc = parse(&check_spec, argc, argv, &p, NULL, NULL)) != 0)
		return rc - 1;
	if (cli_open(sp) != 0)
		return 1;
	s = *sp;
	rc = mb_store_worker_get(s, p.args[0], &w);
	if (rc != 0) {
		fprintf(stderr, "mibera-job worker: no worker '%s'\n", p.args[0]);
		return 1;
	}
	if (connect_hello(&w, NULL, &t, hello, sizeof(hello)) != 0)
		return 1;
	mb_transport_free(t);
	mb_store_worker_checked(s, w.name, hello, NULL, NULL);
	printf("worker %s (%s) answers\n", w.name, w.target);
	summary(hello);
	return 0;
}

static int cmd_remove(int argc, char **argv, struct mb_store **sp)
{
	struct cli_parse p;
	const char *name;
	int rc;

	if ((rc = parse(&remove_spec, argc, argv, &p, NULL, NULL)) != 0)
		return rc - 1;
	if (cli_open(sp) != 0)
		return 1;
	name = p.args[0];
	rc = mb_store_worker_remove(*sp, name);
	if (rc == MB_ENOENT)
		fprintf(stderr, "mibera-job worker: no worker '%s'\n", name);
	else if (rc == MB_EBUSY)
		fprintf(stderr, "mibera-job worker: '%s' has unfinished jobs; "
			"cancel them first\n", name);
	else if (rc != 0)
		fprintf(stderr, "mibera-job worker: %s\n", mb_strerror(rc));
	else
		printf("removed worker %s\n", name);
	return rc == 0 ? 0 : 1;
}

static const struct verb {
	const char *name;
	int (*fn)(int argc, char **argv, struct mb_store **sp);
	const struct cli_spec *spec;
	const char *help;
} verbs[] = {
	{ "add", cmd_add, &add_spec, "add a box: connect, check, pin its key" },
	{ "list", cmd_list, &list_spec, "the workers (--check: which answer)" },
	{ "check", cmd_check, &check_spec, "connect and record its hello" },
	{ "update", cmd_update, &update_spec, "change a worker's settings" },
	{ "remove", cmd_remove, &remove_spec, "remove a worker" },
	{ NULL, NULL, NULL, NULL },
};

static void usage(FILE *f)
{
	const struct verb *v;

	fprintf(f, "usage: mibera-job worker VERB [ARGS...]\n\nThe boxes jobs "
		"run on.\n\nverbs:\n");
	for (v = verbs; v->name != NULL; v++)
		fprintf(f, "  %-7s %-12s %s\n", v->name, v->spec->args ? v->spec->args : "",
			v->help);
	fprintf(f, "\nmibera-job worker VERB --help tells more.\n");
}

int cmd_worker(int argc, char **argv)
{
	struct mb_store *s = NULL;
	const struct verb *v;
	const char *names[8], *close;
	size_t n = 0;
	int rc;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	/* the short names people type from habit */
	if (strcmp(argv[1], "rm") == 0)
		argv[1] = (char *)"remove";
	else if (strcmp(argv[1], "ls") == 0)
		argv[1] = (char *)"list";
	for (v = verbs; v->name != NULL; v++) {
		if (strcmp(argv[1], v->name) == 0) {
			rc = v->fn(argc - 1, argv + 1, &s);
			mb_store_close(s);
			return rc;
		}
		names[n++] = v->name;
	}
	names[n] = NULL;
	close = cli_closest(argv[1], names);
	if (close != NULL)
		fprintf(stderr, "mibera-job worker: unknown verb '%s'; did you "
			"mean '%s'?\n", argv[1], close);
	else
		fprintf(stderr, "mibera-job worker: unknown verb '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
