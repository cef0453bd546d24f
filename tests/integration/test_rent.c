/* Renting a worker, through the programs a person runs, against
 * tests/harness/fakevast.py (vast.ai's API; each rented instance a real
 * loopback sshd set up by the onstart script mibera sent): without --yes
 * nothing is rented; with it the first connection is checked against the
 * host key made here (no prompt, fingerprint stored), the worker answers,
 * and worker destroy destroys the instance once. A refused key is named,
 * 429 is waited out, a taken offer gives way to the next, an instance
 * that never runs is destroyed, the coordinator destroys an idle rented
 * worker and old instances no worker knows, and the key is in no
 * argument list and not in the database. submit --rent sizes a box from
 * the model's estimates and shows its price and the job's cost ceiling,
 * renting and queueing nothing without --yes; with it a real job runs on
 * the box and the box is destroyed once when the job ends: succeeded,
 * failed (its logs kept) or cancelled, and across a coordinator killed
 * with -9 and started again, which goes on with the same box. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "common/fs.h"
#include "hub.h"
#include "model.h"
#include "th.h"

#define KEY "vast-test-key-0123456789abcdef"

static char root[512], home[600];
static pid_t fake_pid;
static int fake_port;
static struct th_hub hub;

static cJSON *post(const char *path, const char *body)
{
	char *out;
	cJSON *doc;

	if (th_sh(&out, "curl -sf -X POST -d '%s' http://127.0.0.1:%d%s", body,
		fake_port, path) != 0)
		fail_msg("fakevast %s: %s", path, out);
	doc = cJSON_Parse(out);
	free(out);
	assert_non_null(doc);
	return doc;
}

static cJSON *state(void)
{
	char *out;
	cJSON *doc;

	if (th_sh(&out, "curl -sf http://127.0.0.1:%d/_control/state", fake_port) != 0)
		fail_msg("fakevast state: %s", out);
	doc = cJSON_Parse(out);
	free(out);
	assert_non_null(doc);
	return doc;
}

static int deletes_of(const char *id)
{
	cJSON *st = state();
	const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(st, "deletes"), id);
	int n = cJSON_IsNumber(v) ? v->valueint : 0;

	cJSON_Delete(st);
	return n;
}

static int alive(const char *id)
{
	cJSON *st = state(), *it;
	int found = 0;

	cJSON_ArrayForEach(it, cJSON_GetObjectItem(st, "alive"))
		if ((long)cJSON_GetNumberValue(it) == atol(id))
			found = 1;
	cJSON_Delete(st);
	return found;
}

/* The disk the fake's instance id was rented with (its create request's),
 * -1 when it has none. */
static double instance_disk(const char *id)
{
	char *out;
	cJSON *doc;
	const cJSON *d;
	double v;

	if (th_sh(&out, "curl -sf -H 'Authorization: Bearer %s' "
		"http://127.0.0.1:%d/api/v0/instances/%s/", KEY, fake_port, id) != 0)
		fail_msg("fakevast instance %s: %s", id, out);
	doc = cJSON_Parse(out);
	free(out);
	d = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "instances"),
				"disk_space");
	v = cJSON_IsNumber(d) ? d->valuedouble : -1;
	cJSON_Delete(doc);
	return v;
}

static int creates(void)
{
	cJSON *st = state();
	int n = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(st, "creates"));

	cJSON_Delete(st);
	return n;
}

static void fault(const char *json)
{
	cJSON_Delete(post("/_control/fault", json));
}

static int setup(void **state_)
{
	char dir[700], line[128], env[64], mh[700], key[700], cmd[1400];
	char *argv[] = { (char *)MB_PYTHON,
			 (char *)MB_SOURCE_DIR "/tests/harness/fakevast.py",
			 (char *)"--dir", dir, NULL };
	int fd = -1, n;

	(void)state_;
	if (th_tmpdir("rent", root, sizeof(root)) != 0)
		return -1;
	snprintf(home, sizeof(home), "%s/home", root);
	snprintf(dir, sizeof(dir), "%s/vast", root);
	snprintf(mh, sizeof(mh), "%s/mibera", root);
	setenv("HOME", home, 1);
	setenv("MIBERA_HOME", mh, 1);
	unsetenv("SSH_AUTH_SOCK");
	/* the key reaches the fake through its environment, as it reaches
	 * mibera: never an argument */
	setenv("FAKEVAST_KEY", KEY, 1);
	setenv("VAST_API_KEY", KEY, 1);
	setenv("MIBERA_RENT_POLL_MS", "200", 1);
	setenv("MIBERA_VAST_RETRY_MS", "50", 1);
	snprintf(key, sizeof(key), "%s/.ssh", home);
	if (mb_mkdir_p(key, 0700) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "ssh-keygen -q -t ed25519 -N '' -f %s/id_ed25519 "
		 "</dev/null", key);
	if (system(cmd) != 0)
		return -1;
	if (th_spawn(argv, &fake_pid, &fd) != 0)
		return -1;
	n = th_read_line(fd, line, sizeof(line), 10000);
	close(fd);
	if (n < 0 || sscanf(line, "VAST_PORT=%d", &fake_port) != 1) {
		fprintf(stderr, "fakevast did not start\n");
		return -1;
	}
	snprintf(env, sizeof(env), "http://127.0.0.1:%d", fake_port);
	setenv("MIBERA_VAST_URL", env, 1);
	/* a tiny model on the fake hub, for the jobs run on rented boxes */
	{
		char repo[800], hubroot[700];
		const char *extra[] = { "--config", "correct", NULL };

		snprintf(hubroot, sizeof(hubroot), "%s/hub", root);
		snprintf(repo, sizeof(repo), "%s/org/tiny", hubroot);
		if (th_mkmodel(repo, "llama-tiny", extra) != 0 ||
		    th_hub_start(&hub, hubroot, NULL) != 0)
			return -1;
		setenv("HF_ENDPOINT", hub.url, 1);
	}
	return 0;
}

static int teardown(void **state_)
{
	(void)state_;
	th_hub_stop(&hub);
	th_stop(fake_pid, 5000);
	th_rmtree(root);
	return 0;
}

static int fresh(void **state_)
{
	(void)state_;
	setenv("VAST_API_KEY", KEY, 1);
	fault("{\"unauthorized\":false,\"throttle\":0,\"taken\":[],"
	      "\"never_run\":false}");
	return 0;
}

/* The instance id in "vast instance N" of out ("" if none). */
static const char *instance_in(const char *out)
{
	static char id[32];
	const char *p = strstr(out, "vast instance ");

	id[0] = '\0';
	if (p != NULL)
		sscanf(p + 14, "%31[0-9]", id);
	return id;
}

static char *rent(const char *name, const char *extra, int *rc)
{
	char *out;

	*rc = th_sh(&out, "%s/mibera-job worker rent %s --provider vast --gpu "
		  "'RTX 4090' --user $(id -un) --agent %s/mibera-worker --dir "
		  "%s/wd-%s %s 2>&1", MB_BINARY_DIR, name, MB_BINARY_DIR, root,
		  name, extra);
	return out;
}

static void test_without_yes_nothing_is_rented(void **s)
{
	char *out;
	int rc, before = creates();

	(void)s;
	out = rent("look", "", &rc);
	assert_int_equal(rc, 0);
	/* the chosen offer with its price, and the next two */
	assert_non_null(strstr(out, "offer 1001"));
	assert_non_null(strstr(out, "$0.310/h"));
	assert_non_null(strstr(out, "offer 1002"));
	assert_non_null(strstr(out, "offer 1005"));
	assert_null(strstr(out, "offer 1003")); /* an RTX 3090 */
	assert_non_null(strstr(out, "--yes"));
	assert_non_null(strstr(out, "nothing rented"));
	free(out);
	assert_int_equal(creates(), before);
	assert_int_equal(th_sh(&out, "%s/mibera-job worker list", MB_BINARY_DIR), 0);
	assert_null(strstr(out, "look"));
	free(out);
}

static void test_rent_pins_then_destroy_once(void **s)
{
	char *out, id[32], fp[64], db[700];
	const char *p;
	int rc;
	size_t len;
	char *text;

	(void)s;
	out = rent("r1", "--yes --max-price 0.5", &rc);
	if (rc != 0)
		fail_msg("rent: %s", out);
	snprintf(id, sizeof(id), "%s", instance_in(out));
	assert_true(id[0] != '\0');
	assert_non_null(strstr(out, "rented worker r1"));
	assert_null(strstr(out, "unknown host key"));
	p = strstr(out, "SHA256:");
	assert_non_null(p);
	sscanf(p, "%63[A-Za-z0-9:+/=]", fp);
	free(out);
	/* the onstart script armed a deadline on the box */
	{
		cJSON *st = state();
		const char *on = cJSON_GetStringValue(cJSON_GetObjectItem(
			cJSON_GetObjectItem(st, "onstart"), id));

		assert_non_null(on);
		assert_non_null(strstr(on, "sleep 44100")); /* 12 h + 15 min */
		assert_false(cJSON_IsTrue(cJSON_GetObjectItem(st, "key_in_url")));
		cJSON_Delete(st);
	}
	/* the fingerprint is stored, and later connections insist on it */
	assert_int_equal(th_sh(&out, "%s/mibera-job worker list --json",
			     MB_BINARY_DIR), 0);
	assert_non_null(strstr(out, fp));
	assert_non_null(strstr(out, "\"provider\":\"vast\""));
	free(out);
	assert_int_equal(th_sh(&out, "%s/mibera-job worker list", MB_BINARY_DIR), 0);
	assert_non_null(strstr(out, "rented: vast"));
	assert_non_null(strstr(out, "$0.310/h"));
	free(out);
	if (th_sh(&out, "%s/mibera-job worker check r1", MB_BINARY_DIR) != 0)
		fail_msg("check: %s", out);
	free(out);
	/* the key is nowhere in the database */
	snprintf(db, sizeof(db), "%s/mibera/jobs.db", root);
	text = th_slurp(db, &len);
	assert_non_null(text);
	{
		size_t i, k = strlen(KEY);

		for (i = 0; i + k <= len; i++)
			assert_false(memcmp(text + i, KEY, k) == 0);
	}
	free(text);
	/* destroy: the instance goes, once, and the worker with it */
	assert_int_equal(deletes_of(id), 0);
	if (th_sh(&out, "%s/mibera-job worker destroy r1", MB_BINARY_DIR) != 0)
		fail_msg("destroy: %s", out);
	free(out);
	assert_int_equal(deletes_of(id), 1);
	assert_false(alive(id));
	assert_int_equal(th_sh(&out, "%s/mibera-job worker destroy r1", MB_BINARY_DIR), 1);
	assert_non_null(strstr(out, "no worker"));
	free(out);
	assert_int_equal(deletes_of(id), 1);
}

static void test_refused_key_is_named(void **s)
{
	char *out;
	int rc, before = creates();

	(void)s;
	setenv("VAST_API_KEY", "wrong-key", 1);
	out = rent("bad", "--yes", &rc);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "refused the API key from VAST_API_KEY"));
	assert_null(strstr(out, "wrong-key"));
	free(out);
	/* no key at all: where to put one */
	unsetenv("VAST_API_KEY");
	out = rent("bad", "", &rc);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "VAST_API_KEY"));
	assert_non_null(strstr(out, "vast_api_key"));
	free(out);
	/* the key file `vastai set api-key` writes works as well */
	{
		char path[800];

		snprintf(path, sizeof(path), "%s/.config/vastai", home);
		assert_int_equal(mb_mkdir_p(path, 0700), 0);
		snprintf(path, sizeof(path), "%s/.config/vastai/vast_api_key", home);
		assert_int_equal(th_write_file(path, KEY "\n", strlen(KEY) + 1), 0);
		out = rent("bad", "", &rc);
		assert_int_equal(rc, 0);
		assert_non_null(strstr(out, "offer 1001"));
		free(out);
		unlink(path);
	}
	assert_int_equal(creates(), before);
}

static void test_throttled_is_retried(void **s)
{
	char *out;
	int rc;
	cJSON *st;

	(void)s;
	fault("{\"throttle\":3}");
	out = rent("slow", "", &rc);
	if (rc != 0)
		fail_msg("rent after 429s: %s", out);
	assert_non_null(strstr(out, "offer 1001"));
	free(out);
	st = state();
	assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(st,
								       "throttled")), 3);
	cJSON_Delete(st);
}

static void test_taken_offer_gives_way(void **s)
{
	char *out, id[32];
	int rc;

	(void)s;
	fault("{\"taken\":[1001]}");
	out = rent("r2", "--yes", &rc);
	if (rc != 0)
		fail_msg("rent: %s", out);
	assert_non_null(strstr(out, "offer 1001 was taken"));
	assert_non_null(strstr(out, "rented offer 1002"));
	assert_non_null(strstr(out, "$0.360/h"));
	snprintf(id, sizeof(id), "%s", instance_in(out));
	free(out);
	if (th_sh(&out, "%s/mibera-job worker destroy r2", MB_BINARY_DIR) != 0)
		fail_msg("destroy: %s", out);
	free(out);
	assert_int_equal(deletes_of(id), 1);
}

static void test_never_running_is_destroyed(void **s)
{
	char *out, id[32];
	int rc;

	(void)s;
	fault("{\"never_run\":true}");
	out = rent("stuck", "--yes --boot-timeout 3", &rc);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "did not reach running"));
	assert_non_null(strstr(out, "destroyed instance"));
	snprintf(id, sizeof(id), "%s", instance_in(out));
	free(out);
	assert_true(id[0] != '\0');
	assert_int_equal(deletes_of(id), 1);
	assert_false(alive(id));
	assert_int_equal(th_sh(&out, "%s/mibera-job worker list", MB_BINARY_DIR), 0);
	assert_null(strstr(out, "stuck"));
	free(out);
}

/* The coordinator destroys an idle rented worker (here idle at once) and,
 * when it starts, an old instance with mibera's label no worker knows;
 * a young one is only reported. */
static void test_coordinator_gives_back(void **s)
{
	char *out, id[32], path[800], cfg[64];
	char *argv[] = { (char *)MB_BINARY_DIR "/mibera-coordinator", NULL };
	cJSON *old, *young;
	char old_id[32], young_id[32];
	pid_t pid;
	int rc, i;

	(void)s;
	snprintf(path, sizeof(path), "%s/mibera/config.json", root);
	snprintf(cfg, sizeof(cfg), "{\"idle_check_s\": 1}\n");
	assert_int_equal(th_write_file(path, cfg, strlen(cfg)), 0);
	out = rent("r3", "--yes --idle-after 0", &rc);
	if (rc != 0)
		fail_msg("rent: %s", out);
	snprintf(id, sizeof(id), "%s", instance_in(out));
	free(out);
	old = post("/_control/orphan", "{\"label\":\"mibera:lost\",\"age_s\":50000}");
	young = post("/_control/orphan", "{\"label\":\"mibera:new\",\"age_s\":60}");
	snprintf(old_id, sizeof(old_id), "%.0f",
		 cJSON_GetNumberValue(cJSON_GetObjectItem(old, "id")));
	snprintf(young_id, sizeof(young_id), "%.0f",
		 cJSON_GetNumberValue(cJSON_GetObjectItem(young, "id")));
	cJSON_Delete(old);
	cJSON_Delete(young);
	assert_int_equal(th_spawn(argv, &pid, NULL), 0);
	for (i = 0; i < 100 && deletes_of(id) == 0; i++)
		usleep(100 * 1000);
	th_stop(pid, 5000);
	assert_int_equal(deletes_of(id), 1);
	assert_int_equal(deletes_of(old_id), 1);
	assert_int_equal(deletes_of(young_id), 0);
	assert_true(alive(young_id));
	assert_int_equal(th_sh(&out, "%s/mibera-job worker list", MB_BINARY_DIR), 0);
	assert_null(strstr(out, "r3"));
	free(out);
	unlink(path);
}


/* --- submit --rent --- */

static void config(const char *json)
{
	char path[800];

	snprintf(path, sizeof(path), "%s/mibera/config.json", root);
	assert_int_equal(th_write_file(path, json, strlen(json)), 0);
}

/* Each box its own worker directory (so its own hub cache), as each
 * rented box has its own disk. */
static char *submit_rent(const char *wd, const char *extra, int *rc)
	__attribute__((noinline));

static char *submit_rent(const char *wd, const char *extra, int *rc)
{
	char *out;

	*rc = th_sh(&out, "%s/mibera-job submit org/tiny --rent vast --gpu "
		  "'RTX 4090' --quant Q8_0 --no-fidelity --user $(id -un) "
		  "--agent %s/mibera-worker --worker-dir %s/wd-%s %s 2>&1",
		  MB_BINARY_DIR, MB_BINARY_DIR, root, wd, extra);
	return out;
}

/* The job id in "queued job N on" of out (0 if none). */
static long job_in(const char *out)
{
	const char *p = strstr(out, "queued job ");

	return p != NULL ? atol(p + 11) : 0;
}

static char *job_state(long id)
{
	char *out;

	th_sh(&out, "%s/mibera-job status %ld", MB_BINARY_DIR, id);
	return out;
}

/* Runs a coordinator (not --once: its exit gives idle boxes back anyway)
 * until instance id is destroyed, 180 s at most; returns th_now_ms() then. */
static long long coordinator_until_destroyed(const char *id)
{
	char *argv[] = { (char *)MB_BINARY_DIR "/mibera-coordinator", NULL };
	long long t0 = th_now_ms(), t;
	pid_t pid;

	assert_int_equal(th_spawn(argv, &pid, NULL), 0);
	while (deletes_of(id) == 0 && th_now_ms() - t0 < 180000)
		usleep(200 * 1000);
	t = th_now_ms();
	th_stop(pid, 5000);
	return t;
}

static void test_submit_rent_shows_price_queues_nothing(void **s)
{
	char *out;
	int rc, before = creates();
	double disk = 0;
	const char *p;

	(void)s;
	out = submit_rent("look", "", &rc);
	if (rc != 0)
		fail_msg("submit --rent: %s", out);
	/* the offer, its price, and what the job may cost at most */
	assert_non_null(strstr(out, "offer 1001"));
	assert_non_null(strstr(out, "$0.310/h"));
	assert_non_null(strstr(out, "this job costs at most $3.72"));
	assert_non_null(strstr(out, "nothing rented or queued"));
	assert_non_null(strstr(out, "--yes"));
	/* the disk asked: the estimate, 15% and 10 GB more */
	p = strstr(out, "offer for org/tiny");
	assert_non_null(p);
	p = strstr(p, "GB disk");
	assert_non_null(p);
	while (p > out && p[-1] == ' ')
		p--;
	while (p > out && (p[-1] == '.' || (p[-1] >= '0' && p[-1] <= '9')))
		p--;
	disk = atof(p);
	assert_true(disk >= 10 && disk < 11);
	free(out);
	assert_int_equal(creates(), before);
	/* --disk: the disk asked is the one given, the estimate said if it
	 * is more; no offer has 400 GB with that GPU (one has 300) */
	out = submit_rent("look", "--disk 150", &rc);
	if (rc != 0)
		fail_msg("submit --rent --disk 150: %s", out);
	assert_non_null(strstr(out, "offer for org/tiny (Q8_0): it needs about "));
	assert_non_null(strstr(out, "(150 GB disk"));
	free(out);
	out = submit_rent("look", "--disk 400", &rc);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(out, "400 GB of disk"));
	free(out);
	out = submit_rent("look", "--disk 1", &rc);
	assert_non_null(strstr(out, "warning: --disk 1 GB is under the 10 GB"));
	free(out);
	assert_int_equal(th_sh(&out, "%s/mibera-job submit org/tiny --rent vast "
			     "--disk lots 2>&1", MB_BINARY_DIR), 2);
	assert_non_null(strstr(out, "--disk is a number"));
	free(out);
	assert_int_equal(creates(), before);
	assert_int_equal(th_sh(&out, "%s/mibera-job status", MB_BINARY_DIR), 0);
	assert_null(strstr(out, "org/tiny"));
	free(out);
	/* a box for a directory here cannot read it; --worker and --rent
	 * are one or the other */
	assert_int_equal(th_sh(&out, "%s/mibera-job submit %s/hub/org/tiny --rent "
			     "vast 2>&1", MB_BINARY_DIR, root), 2);
	assert_non_null(strstr(out, "needs a model on the hub"));
	free(out);
	assert_int_equal(th_sh(&out, "%s/mibera-job submit org/tiny --rent vast "
			     "--worker w 2>&1", MB_BINARY_DIR), 2);
	assert_non_null(strstr(out, "leave out --worker"));
	free(out);
	assert_int_equal(th_sh(&out, "%s/mibera-job submit org/tiny --yes 2>&1",
			     MB_BINARY_DIR), 2);
	assert_non_null(strstr(out, "go with --rent"));
	free(out);
	assert_int_equal(creates(), before);
}

static void test_submit_rent_job_succeeds_box_destroyed_once(void **s)
{
	char *out, id[32], name[64];
	long job;
	long long t0, t1;
	int rc;
	double held;
	const char *p;

	(void)s;
	config("{\"idle_check_s\": 1}\n");
	out = submit_rent("ok", "--yes", &rc);
	if (rc != 0)
		fail_msg("submit --rent --yes: %s", out);
	snprintf(id, sizeof(id), "%s", instance_in(out));
	job = job_in(out);
	assert_true(id[0] != '\0');
	assert_true(job > 0);
	snprintf(name, sizeof(name), "vast-%s", id);
	assert_non_null(strstr(out, name));
	free(out);
	/* the worker's price is the instance's */
	assert_int_equal(th_sh(&out, "%s/mibera-job worker list", MB_BINARY_DIR), 0);
	assert_non_null(strstr(out, name));
	assert_non_null(strstr(out, "$0.310/h"));
	free(out);
	/* the box waits for a coordinator: that time is the job's too */
	t0 = th_now_ms();
	sleep(5);
	t1 = coordinator_until_destroyed(id);
	out = job_state(job);
	if (strstr(out, "succeeded") == NULL)
		fail_msg("job %ld: %s", job, out);
	free(out);
	/* destroyed as the job ended, long before its 600 s idle wait */
	assert_int_equal(deletes_of(id), 1);
	assert_false(alive(id));
	assert_int_equal(th_sh(&out, "%s/mibera-job worker list", MB_BINARY_DIR), 0);
	assert_null(strstr(out, name));
	free(out);
	/* its cost: the instance's price for the whole life of the box */
	assert_int_equal(th_sh(&out, "%s/mibera-job show %ld", MB_BINARY_DIR, job), 0);
	assert_non_null(strstr(out, "$0.31/h"));
	p = strstr(out, "held ");
	assert_non_null(p);
	held = atof(p + 5);
	if (held < (double)(t1 - t0) / 1000 - 2)
		fail_msg("held %.0f s of a box that lived %.1f s: %s", held,
			 (double)(t1 - t0) / 1000, out);
	free(out);
	/* a later coordinator destroys nothing more */
	if (th_sh(&out, "%s/mibera-coordinator --once 2>&1", MB_BINARY_DIR) != 0)
		fail_msg("coordinator again: %s", out);
	free(out);
	assert_int_equal(deletes_of(id), 1);
}

static void test_submit_rent_cancel_destroys(void **s)
{
	char *out, id[32];
	long job;
	int rc;

	(void)s;
	config("{\"idle_check_s\": 1}\n");
	out = submit_rent("cancel", "--yes --disk 37", &rc);
	if (rc != 0)
		fail_msg("submit --rent --yes: %s", out);
	snprintf(id, sizeof(id), "%s", instance_in(out));
	job = job_in(out);
	free(out);
	assert_true(alive(id));
	/* rented with the disk given */
	assert_true(instance_disk(id) == 37);
	/* no coordinator holds the job: cancel gives the box back itself */
	if (th_sh(&out, "%s/mibera-job cancel %ld 2>&1", MB_BINARY_DIR, job) != 0)
		fail_msg("cancel: %s", out);
	assert_non_null(strstr(out, "destroyed vast instance"));
	free(out);
	assert_int_equal(deletes_of(id), 1);
	assert_false(alive(id));
	if (th_sh(&out, "%s/mibera-coordinator --once 2>&1", MB_BINARY_DIR) != 0)
		fail_msg("coordinator: %s", out);
	free(out);
	assert_int_equal(deletes_of(id), 1);
	out = job_state(job);
	assert_non_null(strstr(out, "cancelled"));
	free(out);
}

static void test_submit_rent_failed_job_destroys_after_logs(void **s)
{
	char *out, id[32];
	long job;
	int rc;

	(void)s;
	config("{\"idle_check_s\": 1, \"retry_max\": 1}\n");
	out = submit_rent("fail", "--yes", &rc);
	if (rc != 0)
		fail_msg("submit --rent --yes: %s", out);
	snprintf(id, sizeof(id), "%s", instance_in(out));
	job = job_in(out);
	free(out);
	/* the hub loses the weights: the fetch fails on the box */
	assert_int_equal(th_hub_fault(&hub, "org/tiny", "model-00001-of-00002.safetensors",
				      "\"status\":404,\"times\":1000"), 0);
	coordinator_until_destroyed(id);
	th_hub_reset(&hub);
	out = job_state(job);
	if (strstr(out, "failed") == NULL)
		fail_msg("job %ld: %s", job, out);
	free(out);
	assert_int_equal(deletes_of(id), 1);
	assert_false(alive(id));
	/* what the box said is kept after it is gone */
	assert_int_equal(th_sh(&out, "%s/mibera-job logs %ld 2>&1", MB_BINARY_DIR,
			     job), 0);
	if (strstr(out, "fetch") == NULL ||
	    strstr(out, "not found in 'org/tiny'") == NULL ||
	    strstr(out, "it is destroyed now") == NULL)
		fail_msg("logs: %s", out);
	free(out);
}

/* 1 when status's line for step says it is running. */
static int step_running(const char *out, const char *step)
{
	const char *p = out;

	while ((p = strstr(p, step)) != NULL) {
		const char *nl = strchr(p, '\n');
		const char *r = strstr(p, "running");

		if (r != NULL && (nl == NULL || r < nl) && p > out && p[-1] == ' ')
			return 1;
		p += strlen(step);
	}
	return 0;
}

static void test_submit_rent_coordinator_killed_reuses_box(void **s)
{
	char *argv[] = { (char *)MB_BINARY_DIR "/mibera-coordinator", (char *)"--once",
			 NULL };
	char *out, id[32];
	long job;
	int rc, st, i, made;
	pid_t pid;

	(void)s;
	config("{\"idle_check_s\": 1}\n");
	out = submit_rent("kill", "--yes", &rc);
	if (rc != 0)
		fail_msg("submit --rent --yes: %s", out);
	snprintf(id, sizeof(id), "%s", instance_in(out));
	job = job_in(out);
	free(out);
	made = creates();
	/* a slow fetch, killed in the middle */
	assert_int_equal(th_hub_fault(&hub, "org/tiny", "model-00001-of-00002.safetensors",
				      "\"throttle\":200000"), 0);
	assert_int_equal(th_spawn(argv, &pid, NULL), 0);
	for (i = 0; i < 300; i++) {
		out = job_state(job);
		rc = step_running(out, "fetch");
		free(out);
		if (rc)
			break;
		usleep(100 * 1000);
	}
	assert_true(rc);
	usleep(1500 * 1000);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	assert_int_equal(deletes_of(id), 0);
	assert_true(alive(id));
	/* started again: the same box, the job resumed to its end */
	coordinator_until_destroyed(id);
	th_hub_reset(&hub);
	out = job_state(job);
	assert_non_null(strstr(out, "succeeded"));
	free(out);
	assert_int_equal(creates(), made);
	assert_int_equal(deletes_of(id), 1);
	assert_false(alive(id));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_without_yes_nothing_is_rented, fresh),
		cmocka_unit_test_setup(test_rent_pins_then_destroy_once, fresh),
		cmocka_unit_test_setup(test_refused_key_is_named, fresh),
		cmocka_unit_test_setup(test_throttled_is_retried, fresh),
		cmocka_unit_test_setup(test_taken_offer_gives_way, fresh),
		cmocka_unit_test_setup(test_never_running_is_destroyed, fresh),
		cmocka_unit_test_setup(test_coordinator_gives_back, fresh),
		cmocka_unit_test_setup(test_submit_rent_shows_price_queues_nothing,
				       fresh),
		cmocka_unit_test_setup(test_submit_rent_job_succeeds_box_destroyed_once,
				       fresh),
		cmocka_unit_test_setup(test_submit_rent_cancel_destroys, fresh),
		cmocka_unit_test_setup(test_submit_rent_failed_job_destroys_after_logs,
				       fresh),
		cmocka_unit_test_setup(test_submit_rent_coordinator_killed_reuses_box,
				       fresh),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
