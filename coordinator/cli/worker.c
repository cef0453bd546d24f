/*
 * mibera-job worker add|list|check|remove: the boxes jobs run on.
 *
 *   worker add NAME TARGET [--key PATH] [--dir PATH] [--cost-per-hour N]
 *              [--accept-host-key SHA256:...] [--agent PATH]
 *              [--idle-command CMD [--idle-after SECONDS]] [--max-jobs N]
 *   worker list [--json]
 *   worker check NAME
 *   worker remove NAME
 *
 * TARGET is "local", [user@]host[:port] or an ssh config alias. Adding
 * connects, checks the host key (an unknown one only with its fingerprint
 * given), runs the agent's hello and pins the key: every later connection
 * insists on it. The idle command (for example `vastai stop instance 123`)
 * runs on this machine, through the shell, once the worker has had no job
 * for SECONDS (default 600) and every artifact made on it is pulled and
 * verified; --max-jobs lets a big box run several jobs at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"
#include "coordinator/cli/cli.h"
#include "coordinator/store.h"
#include "coordinator/transport.h"
#include "coordinator/workerconn.h"
#include "proto/protocol.h"

#define MAX_HELLO 4000

static int usage(void)
{
	fprintf(stderr,
		"usage: mibera-job worker add NAME TARGET [--key PATH] [--dir PATH]\n"
		"              [--cost-per-hour N] [--accept-host-key SHA256:...]\n"
		"              [--agent PATH] [--idle-command CMD [--idle-after "
		"SECONDS]]\n"
		"              [--max-jobs N]\n"
		"       mibera-job worker list [--json]\n"
		"       mibera-job worker check NAME\n"
		"       mibera-job worker remove NAME\n");
	return 2;
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
	cJSON_Delete(h);
}

static int cmd_add(int argc, char **argv, struct mb_store *s)
{
	struct mb_worker_row w;
	struct mb_transport *t = NULL;
	const char *accept = NULL;
	char hello[MAX_HELLO], *end;
	struct mb_target tg;
	int i, rc, idle_after = 0;

	if (argc < 3)
		return usage();
	memset(&w, 0, sizeof(w));
	if (!mb_proto_name_ok(argv[1]) || strlen(argv[1]) >= sizeof(w.name)) {
		fprintf(stderr, "mibera-job worker: a worker name is 1 to 64 "
			"letters, digits, '-' or '_'\n");
		return 2;
	}
	snprintf(w.name, sizeof(w.name), "%s", argv[1]);
	snprintf(w.target, sizeof(w.target), "%s", argv[2]);
	for (i = 3; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			return usage();
		if (strcmp(argv[i], "--key") == 0)
			snprintf(w.key_path, sizeof(w.key_path), "%s", v);
		else if (strcmp(argv[i], "--dir") == 0)
			snprintf(w.dir, sizeof(w.dir), "%s", v);
		else if (strcmp(argv[i], "--agent") == 0)
			snprintf(w.agent_path, sizeof(w.agent_path), "%s", v);
		else if (strcmp(argv[i], "--accept-host-key") == 0)
			accept = v;
		else if (strcmp(argv[i], "--idle-command") == 0 &&
			 strlen(v) < sizeof(w.idle_command))
			snprintf(w.idle_command, sizeof(w.idle_command), "%s", v);
		else if (strcmp(argv[i], "--idle-after") == 0) {
			w.idle_after_s = strtoll(v, &end, 10);
			if (*end != '\0' || w.idle_after_s < 0)
				return usage();
			idle_after = 1;
		} else if (strcmp(argv[i], "--max-jobs") == 0) {
			long n = strtol(v, &end, 10);

			if (*end != '\0' || n < 1 || n > 64)
				return usage();
			w.max_jobs = (int)n;
		} else if (strcmp(argv[i], "--cost-per-hour") == 0) {
			w.cost_per_hour = strtod(v, &end);
			if (*end != '\0' || !(w.cost_per_hour >= 0))
				return usage();
		} else
			return usage();
		i++;
	}
	if (!idle_after)
		w.idle_after_s = 600;
	if (mb_target_parse(w.target, &tg, NULL, 0) != 0) {
		fprintf(stderr, "mibera-job worker: '%s' is not local, "
			"[user@]host[:port] or an ssh alias\n", w.target);
		return 2;
	}
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

static int list_one(const struct mb_worker_row *w, void *ctx)
{
	struct mb_buf *b = ctx;

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
		mb_buf_addf(b, ",\"cost_per_hour\":%.4f,\"state\":", w->cost_per_hour);
		mb_json_quote(b, w->state);
		mb_buf_addf(b, ",\"checked_at\":%lld,\"hello\":%s}",
			    (long long)w->checked_at, w->hello[0] ? w->hello : "null");
		return 0;
	}
	printf("%-16s %-30s %-8s %8.2f/h  %s\n", w->name, w->target, w->state,
	       w->cost_per_hour, w->fingerprint[0] ? w->fingerprint : "");
	return 0;
}

static int cmd_list(int argc, char **argv, struct mb_store *s)
{
	struct mb_buf b;
	int json = argc == 2 && strcmp(argv[1], "--json") == 0, rc;

	if (argc > 2 || (argc == 2 && !json))
		return usage();
	if (!json) {
		printf("%-16s %-30s %-8s %10s  %s\n", "NAME", "TARGET", "STATE",
		       "COST", "HOST KEY");
		return mb_store_worker_list(s, list_one, NULL) == 0 ? 0 : 1;
	}
	mb_buf_init(&b, 64u << 20);
	mb_buf_adds(&b, "[");
	rc = mb_store_worker_list(s, list_one, &b);
	mb_buf_adds(&b, "]\n");
	if (rc == 0)
		fwrite(b.data, 1, b.len, stdout);
	mb_buf_release(&b);
	return rc == 0 ? 0 : 1;
}

static int cmd_check(int argc, char **argv, struct mb_store *s)
{
	struct mb_worker_row w;
	struct mb_transport *t = NULL;
	char hello[MAX_HELLO];
	int rc;

	if (argc != 2)
		return usage();
	rc = mb_store_worker_get(s, argv[1], &w);
	if (rc != 0) {
		fprintf(stderr, "mibera-job worker: no worker '%s'\n", argv[1]);
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

static int cmd_remove(int argc, char **argv, struct mb_store *s)
{
	int rc;

	if (argc != 2)
		return usage();
	rc = mb_store_worker_remove(s, argv[1]);
	if (rc == MB_ENOENT)
		fprintf(stderr, "mibera-job worker: no worker '%s'\n", argv[1]);
	else if (rc == MB_EBUSY)
		fprintf(stderr, "mibera-job worker: '%s' has unfinished jobs; "
			"cancel them first\n", argv[1]);
	else if (rc != 0)
		fprintf(stderr, "mibera-job worker: %s\n", mb_strerror(rc));
	else
		printf("removed worker %s\n", argv[1]);
	return rc == 0 ? 0 : 1;
}

int cmd_worker(int argc, char **argv)
{
	struct mb_store *s = NULL;
	char err[1024];
	int rc;

	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "add") != 0 && strcmp(argv[1], "list") != 0 &&
	    strcmp(argv[1], "check") != 0 && strcmp(argv[1], "remove") != 0)
		return usage();
	rc = mb_store_open(NULL, &s, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "mibera-job: %s\n", err);
		return 1;
	}
	if (strcmp(argv[1], "add") == 0)
		rc = cmd_add(argc - 1, argv + 1, s);
	else if (strcmp(argv[1], "list") == 0)
		rc = cmd_list(argc - 1, argv + 1, s);
	else if (strcmp(argv[1], "check") == 0)
		rc = cmd_check(argc - 1, argv + 1, s);
	else
		rc = cmd_remove(argc - 1, argv + 1, s);
	mb_store_close(s);
	return rc;
}
