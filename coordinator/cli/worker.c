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
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/text.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"
#include "coordinator/provider/provider.h"
#include "coordinator/rent.h"
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
		/* update: '' goes back to the default keys */
		if (p->spec == &add_spec && (rc = cli_path_given(p)) != 0)
			return rc;
		SET(key_path);
		st->connect = 1;
	} else if (cli_is(p, "dir")) {
		if ((rc = cli_path_given(p)) != 0)
			return rc;
		SET(dir);
		st->connect = st->moved = 1;
	} else if (cli_is(p, "agent")) {
		/* update: '' installs an agent */
		if (p->spec == &add_spec && (rc = cli_path_given(p)) != 0)
			return rc;
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
		if (w->provider[0] != '\0') {
			mb_buf_adds(b, ",\"provider\":");
			mb_json_quote(b, w->provider);
			mb_buf_adds(b, ",\"instance_id\":");
			mb_json_quote(b, w->instance_id);
			mb_buf_addf(b, ",\"rented_at\":%lld,\"max_hours\":%.2f",
				    (long long)w->rented_at, w->max_hours);
		}
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
	if (w->provider[0] != '\0') {
		char age[32];

		cli_duration((double)(time(NULL) - w->rented_at), age, sizeof(age));
		printf("  rented: %s %s, $%.3f/h, %s old", w->provider,
		       w->instance_id, w->cost_per_hour, age);
	}
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


/* --- renting: worker rent / worker destroy --- */

static const struct cli_opt rent_opts[] = {
	{ "provider", 0, "NAME", NULL, "where to rent (vast)" },
	{ "gpu", 0, "NAME", NULL, "the GPU, as the provider names it (\"RTX "
	  "4090\")" },
	{ "disk", 0, "GB", NULL, "disk to rent (default 50)" },
	{ "max-price", 0, "DOLLARS", NULL, "the most an hour (default: any)" },
	{ "max-hours", 0, "H", NULL, "destroy it after this long (default 12)" },
	{ "yes", 0, NULL, NULL, "rent it (without: show the offer and stop)" },
	{ "key", 0, "PATH", NULL, "your ssh key (its .pub goes on the box; "
	  "default ~/.ssh/id_ed25519)" },
	{ "user", 0, "NAME", NULL, "the login on the box (default root)" },
	{ "dir", 0, "PATH", NULL, "the worker directory (default .mibera)" },
	{ "image", 0, "IMAGE", NULL, "the container image (default "
	  "nvidia/cuda:12.4.1-devel-ubuntu22.04)" },
	{ "agent", 0, "PATH", NULL, "a mibera-worker already there (no "
	  "bootstrap)" },
	{ "idle-after", 0, "SECONDS", NULL, "destroy it once idle this long "
	  "(default 600)" },
	{ "boot-timeout", 0, "SECONDS", NULL, "wait this long for it to run "
	  "(default 900)" },
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec rent_spec = {
	"mibera-job worker rent", "NAME", 1, 1,
	"Rents a box from a provider and adds it as a worker. Without --yes it "
	"shows\nthe cheapest offer that fits (and the next two) with its price, "
	"and rents\nnothing. With --yes it rents it, waits until it runs, "
	"connects with the host\nkey made here for it (no key is trusted on "
	"first sight), installs the agent\nas worker add does, and records the "
	"worker. The coordinator destroys the box\nonce it is idle, after "
	"--max-hours, or on worker destroy; the box also\nstops itself a while "
	"after --max-hours if no coordinator is left. The API key\nis "
	"VAST_API_KEY or the file `vastai set api-key` writes.", rent_opts,
};

static const struct cli_spec destroy_spec = {
	"mibera-job worker destroy", "NAME", 1, 1,
	"Destroys a rented worker's instance at its provider (its billing "
	"stops) and\nremoves the worker.", no_opts,
};

struct rent_args {
	struct cli_rent r;
	int yes;
};

static int take_rent(struct cli_parse *p, void *ctx)
{
	struct rent_args *a = ctx;

	if (cli_is(p, "provider"))
		a->r.provider = p->val;
	else if (cli_is(p, "gpu"))
		a->r.gpu = p->val;
	else if ((cli_is(p, "key") || cli_is(p, "dir") || cli_is(p, "agent")) &&
		 cli_path_given(p) != 0)
		return 2;
	else if (cli_is(p, "key"))
		a->r.key = p->val;
	else if (cli_is(p, "user"))
		a->r.user = p->val;
	else if (cli_is(p, "dir"))
		a->r.dir = p->val;
	else if (cli_is(p, "image"))
		a->r.image = p->val;
	else if (cli_is(p, "agent"))
		a->r.agent = p->val;
	else if (cli_is(p, "yes"))
		a->yes = 1;
	else if (cli_is(p, "disk"))
		return number(p, 1, 100000, &a->r.disk_gb);
	else if (cli_is(p, "max-price"))
		return number(p, 0.001, 10000, &a->r.max_price);
	else if (cli_is(p, "max-hours"))
		return number(p, 0.01, 24 * 365, &a->r.max_hours);
	else if (cli_is(p, "idle-after"))
		return number(p, 0, 1e9, &a->r.idle_after);
	else if (cli_is(p, "boot-timeout"))
		return number(p, 1, 86400, &a->r.boot_timeout);
	return 0;
}

static void show_offer(const char *tag, const struct mb_offer *o)
{
	char ram[32] = "";

	if (o->ram_gb > 0)
		snprintf(ram, sizeof(ram), "  %4.0f GB RAM", o->ram_gb);
	printf("  %-9s offer %-10s %dx %-14s %5.0f GB GPU RAM%s  %6.0f GB disk  "
	       "$%.3f/h  reliability %.3f%s%s\n", tag, o->id, o->num_gpus,
	       o->gpu[0] ? o->gpu : "?", o->gpu_ram_gb, ram, o->disk_gb, o->dph,
	       o->reliability, o->where[0] ? "  " : "", o->where);
}

/* The command line again, with --yes: what to run to go on. */
static void print_again(int argc, char **argv)
{
	int i;

	printf("nothing rented. To rent it:\n  mibera-job worker");
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strcspn(a, " \t'\"$`\\") != strlen(a))
			printf(" '%s'", a);
		else
			printf(" %s", a);
	}
	printf(" --yes\n");
}

/* Gives back an instance rented for a worker that did not come to be. */
static void give_back_now(struct mb_provider *p, const char *id, const char *why)
{
	if (mb_provider_destroy(p, id) == 0)
		fprintf(stderr, "mibera-job worker: %s; destroyed instance %s "
			"(nothing more is billed for it)\n", why, id);
	else
		fprintf(stderr, "mibera-job worker: %s; and destroying instance %s "
			"failed: %s. Destroy it by hand (vastai destroy instance "
			"%s): it may be billing\n", why, id, mb_provider_errmsg(p), id);
}

static long poll_ms(void)
{
	const char *e = getenv("MIBERA_RENT_POLL_MS");
	long v = e ? strtol(e, NULL, 10) : 0;

	return v > 0 ? v : 5000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

void cli_rent_defaults(struct cli_rent *a)
{
	memset(a, 0, sizeof(*a));
	a->disk_gb = 50;
	a->max_hours = MB_RENT_DEFAULT_MAX_HOURS;
	a->idle_after = 600;
	a->boot_timeout = 900;
}

int cli_rent_search(const char *cmd, const struct cli_rent *a, const char *what,
		    struct mb_provider **provp, struct mb_offer *offers,
		    size_t cap, size_t *n)
{
	struct mb_provider *prov = NULL;
	struct mb_offer_query q;
	char msg[2048], ram[64] = "";
	size_t i;
	int rc;

	*provp = NULL;
	*n = 0;
	rc = mb_provider_open(a->provider, &prov, msg, sizeof(msg));
	if (rc != 0) {
		fprintf(stderr, "%s: %s\n", cmd, msg);
		return 1;
	}
	memset(&q, 0, sizeof(q));
	q.gpu = a->gpu;
	q.disk_gb = a->disk_gb;
	q.min_ram_gb = a->ram_gb;
	q.max_price = a->max_price;
	if (a->ram_gb > 0)
		snprintf(ram, sizeof(ram), ", %.0f GB RAM", a->ram_gb);
	rc = mb_provider_search(prov, &q, offers, cap, n);
	if (rc != 0) {
		fprintf(stderr, "%s: %s\n", cmd, mb_provider_errmsg(prov));
		mb_provider_free(prov);
		return 1;
	}
	if (*n == 0) {
		fprintf(stderr, "%s: no %s offer has %s%s%.0f GB of disk%s%s; "
			"nothing rented (try another --gpu, or a higher "
			"--max-price)\n", cmd, a->provider, a->gpu ? a->gpu : "",
			a->gpu ? " with " : "", a->disk_gb, ram,
			a->max_price > 0 ? " within --max-price" : "");
		mb_provider_free(prov);
		return 1;
	}
	printf("cheapest %s offer for %s (%.0f GB disk%s%s%s):\n", a->provider,
	       what, a->disk_gb, ram, a->gpu ? ", " : "", a->gpu ? a->gpu : "");
	show_offer("chosen", &offers[0]);
	for (i = 1; i < *n && i < 3; i++)
		show_offer("next", &offers[i]);
	*provp = prov;
	return 0;
}

int cli_rent_now(const char *cmd, struct mb_store *s, const struct cli_rent *a,
		 const char *name, struct mb_provider *prov,
		 const struct mb_offer *offers, size_t n, struct mb_worker_row *w)
{
	struct mb_hostkey hk;
	struct mb_instance in;
	struct mb_transport *t = NULL;
	char msg[2048], keypath[1024], pubpath[1100], label[128];
	char instance[64] = "", agent[2200], hello[MAX_HELLO];
	char *pub = NULL, *onstart = NULL;
	size_t i, len;
	const struct mb_offer *chosen = NULL;
	double t0;
	int rc, ret = 1;

	memset(&hk, 0, sizeof(hk));
	/* the user's key goes on the box; its host key is made here */
	if (a->key != NULL)
		snprintf(keypath, sizeof(keypath), "%s", a->key);
	else
		snprintf(keypath, sizeof(keypath), "%s/.ssh/id_ed25519",
			 getenv("HOME") ? getenv("HOME") : "");
	snprintf(pubpath, sizeof(pubpath), "%s.pub", keypath);
	if (mb_read_file(pubpath, 16384, &pub, &len) != 0) {
		fprintf(stderr, "%s: cannot read the public key '%s' to put on "
			"the box; give --key PATH (a key with PATH.pub beside "
			"it)\n", cmd, pubpath);
		goto out;
	}
	pub[strcspn(pub, "\r\n")] = '\0';
	if (mb_hostkey_generate(&hk, msg, sizeof(msg)) != 0) {
		fprintf(stderr, "%s: %s\n", cmd, msg);
		goto out;
	}
	if (mb_onstart_script(&hk, pub, (long)(a->max_hours * 60) + 15,
			      &onstart) != 0) {
		fprintf(stderr, "%s: the public key '%s' is not one line of a "
			"key\n", cmd, pubpath);
		goto out;
	}
	/* a worker named after its instance is labelled before it has one */
	snprintf(label, sizeof(label), MB_RENT_LABEL_PREFIX "%s",
		 name ? name : "job");
	for (i = 0; i < n && i < 5; i++) {
		struct mb_create_req req = {
			a->image ? a->image : "nvidia/cuda:12.4.1-devel-ubuntu22.04",
			a->disk_gb, onstart, label,
		};

		rc = mb_provider_create(prov, offers[i].id, &req, instance,
					sizeof(instance));
		if (rc == 0) {
			chosen = &offers[i];
			break;
		}
		if (rc != MB_EBUSY) {
			fprintf(stderr, "%s: %s\n", cmd, mb_provider_errmsg(prov));
			goto out;
		}
		printf("offer %s was taken meanwhile; trying the next\n",
		       offers[i].id);
	}
	if (chosen == NULL) {
		fprintf(stderr, "%s: every offer shown was taken meanwhile; "
			"nothing rented: run it again\n", cmd);
		goto out;
	}
	printf("rented offer %s: %s instance %s at $%.3f/h; waiting for it to "
	       "run\n", chosen->id, a->provider, instance, chosen->dph);
	fflush(stdout);
	t0 = mb_now_s();
	for (;;) {
		rc = mb_provider_show(prov, instance, &in);
		if (rc == 0 && strcmp(in.status, "running") == 0 &&
		    in.ssh_host[0] != '\0' && in.ssh_port > 0)
			break;
		if (rc == MB_EAUTH) {
			give_back_now(prov, instance, mb_provider_errmsg(prov));
			goto out;
		}
		if (mb_now_s() - t0 > a->boot_timeout) {
			snprintf(msg, sizeof(msg), "instance %s did not reach running "
				 "in %.0f s (last status '%s')", instance,
				 a->boot_timeout, rc == 0 ? in.status : "unknown");
			give_back_now(prov, instance, msg);
			goto out;
		}
		sleep_ms(poll_ms());
	}
	memset(w, 0, sizeof(*w));
	if (name != NULL)
		snprintf(w->name, sizeof(w->name), "%s", name);
	else
		snprintf(w->name, sizeof(w->name), "%s-%s", a->provider, instance);
	if (strchr(in.ssh_host, ':') != NULL || strchr(in.ssh_host, '@') != NULL ||
	    strlen(in.ssh_host) > 200) {
		give_back_now(prov, instance, "the provider gave an ssh host this "
			      "program cannot use");
		goto out;
	}
	snprintf(w->target, sizeof(w->target), "%s@%s:%d",
		 a->user ? a->user : "root", in.ssh_host, in.ssh_port);
	snprintf(w->dir, sizeof(w->dir), "%s", a->dir ? a->dir : ".mibera");
	snprintf(w->key_path, sizeof(w->key_path), "%s", keypath);
	if (a->agent != NULL)
		snprintf(w->agent_path, sizeof(w->agent_path), "%s", a->agent);
	/* pinned before the first connection: the key made here, nothing
	 * else, is accepted */
	snprintf(w->host_key, sizeof(w->host_key), "%s", hk.fingerprint);
	/* the provider's price, everything included: the cost of the jobs
	 * it runs */
	w->cost_per_hour = in.dph > 0 ? in.dph : chosen->dph;
	w->idle_after_s = (int64_t)a->idle_after;
	w->max_jobs = 1;
	snprintf(w->provider, sizeof(w->provider), "%s", a->provider);
	snprintf(w->instance_id, sizeof(w->instance_id), "%s", instance);
	w->rented_at = (int64_t)time(NULL);
	w->max_hours = a->max_hours;
	/* its sshd may come a little after the provider says running */
	for (;;) {
		rc = mb_worker_connect(w, NULL, &t, agent, sizeof(agent), msg,
				       sizeof(msg));
		if (rc == 0 || rc == MB_EHOSTKEY ||
		    mb_now_s() - t0 > a->boot_timeout)
			break;
		sleep_ms(poll_ms());
	}
	if (rc != 0) {
		give_back_now(prov, instance, msg);
		goto out;
	}
	rc = mb_worker_hello_progress(t, w, agent, w->agent_path[0] == '\0',
				      progress, NULL, hello, sizeof(hello), msg,
				      sizeof(msg));
	if (rc == 0 && mb_transport_host_key_line(t) != NULL)
		snprintf(w->host_key, sizeof(w->host_key), "%s",
			 mb_transport_host_key_line(t));
	if (rc == 0 && mb_transport_fingerprint(t) != NULL)
		snprintf(w->fingerprint, sizeof(w->fingerprint), "%s",
			 mb_transport_fingerprint(t));
	mb_transport_free(t);
	if (rc != 0) {
		give_back_now(prov, instance, msg);
		goto out;
	}
	rc = mb_store_worker_add(s, w);
	if (rc == 0)
		rc = mb_store_worker_checked(s, w->name, hello, NULL, NULL);
	if (rc != 0) {
		snprintf(msg, sizeof(msg), "cannot record '%s': %s", w->name,
			 mb_strerror(rc));
		give_back_now(prov, instance, msg);
		goto out;
	}
	printf("rented worker %s (%s): %s instance %s at $%.3f/h, host key %s "
	       "(made here, pinned before the first connection)\n", w->name,
	       w->target, a->provider, instance, w->cost_per_hour,
	       w->fingerprint);
	summary(hello);
	ret = 0;
out:
	mb_hostkey_release(&hk);
	if (onstart != NULL) {
		memset(onstart, 0, strlen(onstart));
		free(onstart);
	}
	free(pub);
	return ret;
}

static int cmd_rent(int argc, char **argv, struct mb_store **sp)
{
	struct rent_args a;
	struct cli_parse p;
	struct mb_provider *prov = NULL;
	struct mb_offer offers[16];
	struct mb_worker_row w;
	size_t n = 0;
	int rc, ret = 1;

	cli_rent_defaults(&a.r);
	a.yes = 0;
	if ((rc = parse(&rent_spec, argc, argv, &p, take_rent, &a)) != 0)
		return rc - 1;
	if (a.r.provider == NULL)
		return cli_usage_error(&rent_spec, "--provider is needed (vast)");
	if (!mb_provider_known(a.r.provider))
		return cli_usage_error(&rent_spec, "unknown provider '%s' (known: "
				       "vast)", a.r.provider);
	if (!mb_proto_name_ok(p.args[0]) || strlen(p.args[0]) >= sizeof(w.name)) {
		fprintf(stderr, "mibera-job worker: a worker name is 1 to 64 "
			"letters, digits, '-' or '_'\n");
		return 2;
	}
	if (a.r.user != NULL &&
	    (!mb_proto_name_ok(a.r.user) || strlen(a.r.user) > 32))
		return cli_usage_error(&rent_spec, "--user '%s' is not a login "
				       "name", a.r.user);
	if (cli_open(sp) != 0)
		return 1;
	if (mb_store_worker_get(*sp, p.args[0], &w) == 0) {
		fprintf(stderr, "mibera-job worker: '%s' exists; pick another name\n",
			p.args[0]);
		return 1;
	}
	if (cli_rent_search("mibera-job worker", &a.r, p.args[0], &prov, offers,
			    sizeof(offers) / sizeof(offers[0]), &n) != 0)
		return 1;
	printf("  it costs $%.3f an hour while it runs; destroyed when idle for "
	       "%.0f s, and after %.1f hours at most ($%.2f)\n", offers[0].dph,
	       a.r.idle_after, a.r.max_hours, offers[0].dph * a.r.max_hours);
	if (!a.yes) {
		print_again(argc, argv);
		ret = 0;
		goto out;
	}
	if (cli_rent_now("mibera-job worker", *sp, &a.r, p.args[0], prov, offers,
			 n, &w) != 0)
		goto out;
	printf("  destroyed when idle for %lld s, after %.1f hours, or by "
	       "`mibera-job worker destroy %s`\n", (long long)w.idle_after_s,
	       w.max_hours, w.name);
	ret = 0;
out:
	mb_provider_free(prov);
	return ret;
}

static int cmd_destroy(int argc, char **argv, struct mb_store **sp)
{
	struct mb_worker_row w;
	struct cli_parse p;
	char msg[2048];
	int rc, busy = 0;

	if ((rc = parse(&destroy_spec, argc, argv, &p, NULL, NULL)) != 0)
		return rc - 1;
	if (cli_open(sp) != 0)
		return 1;
	if (mb_store_worker_get(*sp, p.args[0], &w) != 0) {
		fprintf(stderr, "mibera-job worker: no worker '%s'\n", p.args[0]);
		return 1;
	}
	if (w.provider[0] == '\0') {
		fprintf(stderr, "mibera-job worker: '%s' was not rented: mibera "
			"cannot destroy it (worker remove forgets it)\n", w.name);
		return 1;
	}
	if (mb_store_worker_unfinished(*sp, w.name, &busy) != 0 || busy > 0) {
		fprintf(stderr, "mibera-job worker: '%s' has unfinished jobs; "
			"cancel them first\n", w.name);
		return 1;
	}
	if (mb_rent_give_back(*sp, &w, msg, sizeof(msg)) != 0) {
		fprintf(stderr, "mibera-job worker: %s\n", msg);
		return 1;
	}
	printf("destroyed %s instance %s and removed worker %s\n", w.provider,
	       w.instance_id, w.name);
	return 0;
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
	{ "rent", cmd_rent, &rent_spec, "rent a box from a provider (vast)" },
	{ "destroy", cmd_destroy, &destroy_spec, "destroy a rented worker's box" },
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
