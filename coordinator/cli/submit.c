/*
 * mibera-job submit SOURCE [--worker NAME] [--quant Q4_K_M,Q3_K_M]
 *     [--layout native|split] [--outtype f16|bf16] [--no-smoke] [--pull-f16]
 *     [--notify URL] [--json] [--set KEY=VALUE...] [--base ORG/NAME]
 *     [--ollama NAME]
 * Queues a job: SOURCE is org/name[@revision] on the hub or a directory
 * the worker can read. Prints the job id (or {"id":N} with --json); the
 * coordinator runs it, and POSTs a summary to URL (default: notify_url of
 * the config) when it succeeds or fails. --worker may be left out when
 * there is one worker. Quant types are read as a person writes them
 * (any case, spaces, repeats) and stored by their names. The quants are
 * pulled back; the F16 only with --pull-f16 (the worker removes it with
 * the job's directory). --set and --base settle what the model's files
 * cannot (as for inspect); they are stored with the job, the base's
 * config.json read from the hub now, and the conversion records them as
 * set by the user. --ollama NAME registers the verified result with the
 * local Ollama server at the end of the job (coordinator/ollama.h).
 * A model whose architecture mibera does not convert natively is refused
 * (exit 3) with the way out: --converter llama.cpp, which runs llama.cpp's
 * own convert_hf_to_gguf.py on the worker. That converter reads
 * config.json as it is, so --set and --base (and the split layout) go with
 * mibera's converter only.
 * --rent vast rents a box for the job alone instead of naming a worker:
 * its disk is inspect's estimate of the job's worker disk plus 15% and
 * 10 GB (the agent, llama.cpp's build, logs, and the estimate's error),
 * or --disk GB (a person who knows better: the estimate is still said),
 * its memory at least what the biggest quant needs to run. The offer, its
 * price and the job's cost ceiling (price x --max-hours) are shown; only
 * with --yes is it rented (as worker rent --yes does) and the job queued
 * on it. The coordinator destroys it once the job has ended.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/hub.h"
#include "common/json.h"
#include "common/modelcfg.h"
#include "common/splitset.h"
#include "common/text.h"
#include "coordinator/cli/cli.h"
#include "coordinator/cli/opts.h"
#include "coordinator/converter.h"
#include "coordinator/lock.h"
#include "coordinator/ollama.h"
#include "coordinator/provider/provider.h"
#include "coordinator/rent.h"
#include "coordinator/store.h"
#include "proto/protocol.h"

static const struct cli_opt opts[] = {
	{ "worker", 0, "NAME", NULL, "the worker to run it on (may be left out "
	  "when there is one)" },
	{ "quant", 0, "LIST", NULL, "the quant types, comma-separated (default "
	  "Q4_K_M)" },
	{ "layout", 0, "LAYOUT", "native|split", "one GGUF file per type, or "
	  "split in shards (default native)" },
	{ "outtype", 0, "TYPE", "f16|bf16", "the type of the full-precision "
	  "GGUF (default f16)" },
	{ "converter", 0, "WHICH", "mibera|llama.cpp", "what makes the "
	  "full-precision GGUF: mibera's own converter (default), or "
	  "llama.cpp's convert_hf_to_gguf.py for a family mibera does not "
	  "convert natively (its Python requirements are installed on the "
	  "worker the first time)" },
	{ "no-smoke", 0, NULL, NULL, "do not load the results with llama.cpp "
	  "here" },
	{ "pull-f16", 0, NULL, NULL, "pull back the full-precision GGUF too" },
	{ "imatrix", 0, "WHEN", "auto|on|off", "an importance matrix for the "
	  "quants: auto (default) when a type is below 5 bits, on for "
	  "every type, off for none" },
	{ "no-fidelity", 0, NULL, NULL, "do not measure each quant against the "
	  "F16 on the worker" },
	{ "push", 0, "ORG/NAME", NULL, "push the quants, model card and "
	  "provenance to this hub repository from the worker (HF_TOKEN "
	  "with write access)" },
	{ "private", 0, NULL, NULL, "with --push: create the repository "
	  "private" },
	{ "split-max-size", 0, "SIZE", NULL, "write a GGUF bigger than SIZE "
	  "(50G, 2M: powers of 1000) as a set of parts of at most SIZE "
	  "(llama.cpp's gguf-split format); default: none, 50G with "
	  "--push (the hub takes no bigger file)" },
	{ "notify", 0, "URL", NULL, "POST a summary there when the job ends "
	  "(default: the config's notify_url)" },
	{ "ollama", 0, "NAME", NULL, "register the result with the local Ollama "
	  "server as NAME (OLLAMA_HOST; see mibera-job ollama --help)" },
	{ "json", 0, NULL, NULL, "print {\"id\":N} instead of the id" },
	{ "rent", 0, "PROVIDER", "vast", "rent a box for this job alone "
	  "(sized from inspect's estimates), destroyed when the job ends; "
	  "instead of --worker" },
	{ "gpu", 0, "NAME", NULL, "with --rent: the GPU, as the provider names "
	  "it (\"RTX 4090\")" },
	{ "max-price", 0, "DOLLARS", NULL, "with --rent: the most an hour "
	  "(default: any)" },
	{ "max-hours", 0, "H", NULL, "with --rent: destroy the box after this "
	  "long, job or not (default 12)" },
	{ "disk", 0, "GB", NULL, "with --rent: the disk to rent (default: the "
	  "job's estimate, 15% and 10 GB more)" },
	{ "yes", 0, NULL, NULL, "with --rent: rent it and queue the job "
	  "(without: show the offer and its cost, and stop)" },
	{ "key", 0, "PATH", NULL, "with --rent: your ssh key (its .pub goes on "
	  "the box)" },
	{ "user", 0, "NAME", NULL, "with --rent: the login on the box (default "
	  "root)" },
	{ "image", 0, "IMAGE", NULL, "with --rent: the container image" },
	{ "agent", 0, "PATH", NULL, "with --rent: a mibera-worker already on "
	  "the image" },
	{ "worker-dir", 0, "PATH", NULL, "with --rent: the worker directory "
	  "(default .mibera)" },
	CLI_USER_OPTS,
	{ NULL, 0, NULL, NULL, NULL },
};

static const struct cli_spec spec = {
	"mibera-job submit", "SOURCE", 1, 1,
	"Queues a model to convert on a worker and prints the job's id. SOURCE "
	"is\norg/name[@revision] on the hub, or a directory the worker can read "
	"(start\npaths with / or .).", opts,
};

/* Asks the hub whether source exists and is readable with our token,
 * before a box is paid for. 0 with *bytes the size of the repo's
 * safetensors and small files (what fetch downloads) when it is; 1 when
 * the hub could not be asked (the job is queued anyway, with a warning);
 * -1 when the hub said no (err says why). */
static int check_source(const char *source, uint64_t *bytes, char *err,
			size_t errcap)
{
	char repo[300], *at;
	struct mb_hub h;
	struct mb_hub_repo *r = NULL;
	size_t i;
	int rc;

	*bytes = 0;
	snprintf(repo, sizeof(repo), "%s", source);
	at = strchr(repo, '@');
	if (at != NULL)
		*at++ = '\0';
	if (mb_hub_init(&h, NULL, NULL) != 0)
		return 1;
	if (h.offline) {
		mb_hub_release(&h);
		return 1;
	}
	h.max_attempts = 2;
	rc = mb_hub_list(&h, repo, at, &r);
	if (rc == MB_ENOENT || rc == MB_EAUTH) {
		snprintf(err, errcap, "%s", h.err);
		mb_hub_release(&h);
		return -1;
	}
	if (rc != 0) {
		snprintf(err, errcap, "%s", h.err[0] ? h.err : mb_strerror(rc));
		mb_hub_release(&h);
		return 1;
	}
	for (i = 0; i < r->nfiles; i++) {
		const char *p = r->files[i].path;
		size_t n = strlen(p);

		if ((n > 12 && strcmp(p + n - 12, ".safetensors") == 0) ||
		    strchr(p, '/') == NULL)
			*bytes += r->files[i].size;
	}
	mb_hub_repo_free(r);
	mb_hub_release(&h);
	return 0;
}

/* The worker disk a job needs: the download, the F16 (about the size of
 * 16-bit weights) and each quant, with 5% to spare. */
static uint64_t disk_needed(uint64_t download, const char *quants)
{
	char list[256], *q, *save = NULL;
	double need = 2.0 * (double)download;

	snprintf(list, sizeof(list), "%s", quants);
	for (q = strtok_r(list, ",", &save); q; q = strtok_r(NULL, ",", &save)) {
		const struct mb_quant_type *t = mb_quant_find(q);

		if (t != NULL)
			need += (double)download * t->bpw / 16.0;
	}
	return (uint64_t)(need * 1.05);
}

struct one_worker {
	int n;
	char name[65];
};

static int count_worker(const struct mb_worker_row *w, void *ctx)
{
	struct one_worker *ow = ctx;

	if (ow->n++ == 0)
		snprintf(ow->name, sizeof(ow->name), "%s", w->name);
	return 0;
}

/* --rent: what to rent, and whether to. */
struct rent_req {
	struct cli_rent r;
	double disk_gb;		/* --disk, 0: from the estimate */
	int yes;
	int argc;
	char **argv;
};

/* The disk to rent for a job inspect estimates at need bytes: 15% and
 * 10 GB over, for what the estimate leaves out (the agent and llama.cpp
 * built on the box, logs, the file system) and for its error. */
static double rent_disk_gb(uint64_t need)
{
	return (double)need * 1.15 / 1e9 + 10;
}

/* The arguments argv[from..argc-1] as a person types them again (quoted
 * where the shell would split them; less --converter and its value with
 * no_converter) into out (cap bytes); 0, or -1 when they do not fit. */
static int command_args(int argc, char **argv, int from, int no_converter,
			char *out, size_t cap)
{
	size_t len = 0;
	int i, n;

	out[0] = '\0';
	for (i = from; i < argc; i++) {
		const char *a = argv[i];

		if (no_converter && strcmp(a, "--converter") == 0) {
			i++;
			continue;
		}
		if (no_converter && strncmp(a, "--converter=", 12) == 0)
			continue;
		n = snprintf(out + len, cap - len,
			     strcspn(a, " \t'\"$`\\") != strlen(a) ? "%s'%s'"
								: "%s%s",
			     len > 0 ? " " : "", a);
		if (n < 0 || (size_t)n >= cap - len)
			return -1;
		len += (size_t)n;
	}
	return 0;
}

/* The command line again, with --yes: what to run to go on. */
static void print_again(int argc, char **argv)
{
	char line[8192];

	printf("nothing rented or queued. To rent it and queue the job:\n  "
	       "mibera-job %s --yes\n",
	       command_args(argc, argv, 0, 0, line, sizeof(line)) == 0
		       ? line : "submit ...");
}

/* Sizes, shows and (with --yes) rents the box for j into w: 0 rented, 1
 * shown only (nothing rented), else 1 + the exit code. */
static int rent_for_job(struct mb_store *s, const struct mb_job_row *j,
			struct rent_req *rq, struct mb_worker_row *w)
{
	struct mb_provider *prov = NULL;
	struct mb_offer offers[16];
	uint64_t disk = 0, ram = 0;
	char err[1024], what[400];
	size_t n = 0;
	int rc;

	err[0] = '\0';
	rc = cli_inspect_estimate(j->source, j->overrides, j->quants, &disk,
				  &ram, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "mibera-job submit: %s; nothing rented (inspect "
			"the model to see why)\n", err);
		return 1 + 1;
	}
	rq->r.disk_gb = rq->disk_gb > 0 ? rq->disk_gb : rent_disk_gb(disk);
	if (rq->disk_gb > 0 && rq->disk_gb < rent_disk_gb(disk))
		fprintf(stderr, "mibera-job submit: warning: --disk %.0f GB is "
			"under the %.0f GB this job would get (its estimate of "
			"%.1f GB, 15%% and 10 GB more): the box may fill up\n",
			rq->disk_gb, rent_disk_gb(disk), (double)disk / 1e9);
	rq->r.ram_gb = ram > 0 ? (double)((ram + 999999999) / 1000000000) : 0;
	snprintf(what, sizeof(what), "%.200s (%.120s): it needs about %.1f GB "
		 "of disk", j->source, j->quants, (double)disk / 1e9);
	if (cli_rent_search("mibera-job submit", &rq->r, what, &prov, offers,
			    sizeof(offers) / sizeof(offers[0]), &n) != 0)
		return 1 + 1;
	printf("  it costs $%.3f an hour while it runs; destroyed when the job "
	       "ends, and after %.1f hours at most: this job costs at most "
	       "$%.2f\n", offers[0].dph, rq->r.max_hours,
	       offers[0].dph * rq->r.max_hours);
	if (!rq->yes) {
		print_again(rq->argc, rq->argv);
		mb_provider_free(prov);
		return 1;
	}
	rc = cli_rent_now("mibera-job submit", s, &rq->r, NULL, prov, offers, n,
			  w);
	mb_provider_free(prov);
	return rc == 0 ? 0 : 1 + 1;
}

/* Checks and queues j on worker (NULL: the only one), or on a box rented
 * for it (rq not NULL); the exit code. */
static int submit_job(struct mb_job_row *j, const char *worker, int json,
		      struct rent_req *rq, int argc, char **argv)
{
	struct mb_worker_row w;
	struct mb_store *s = NULL;
	char err[1024];
	uint64_t download = 0;
	struct one_worker ow = { 0, "" };
	int rc;

	/* a repo that does not exist, or that the token cannot read, is
	 * refused here rather than on the rented box */
	if (!mb_job_source_is_path(j->source)) {
		err[0] = '\0';
		rc = check_source(j->source, &download, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "mibera-job submit: %s\n", err);
			return 1;
		}
		if (rc > 0)
			fprintf(stderr, "mibera-job submit: warning: cannot check "
				"'%s' on the hub%s%s; queued anyway\n", j->source,
				err[0] ? ": " : "", err);
	}
	rc = mb_store_open(NULL, &s, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "mibera-job: %s\n", err);
		return 1;
	}
	memset(&w, 0, sizeof(w));
	if (rq != NULL) {
		/* the box is rented last, once every check has passed */
		snprintf(w.target, sizeof(w.target), "rented");
		goto checked_worker;
	}
	if (worker == NULL) {
		/* one worker: it is the one meant */
		mb_store_worker_list(s, count_worker, &ow);
		if (ow.n != 1) {
			fprintf(stderr, "mibera-job submit: %s\n", ow.n == 0
				? "no worker yet: add one first (mibera-job worker "
				  "add NAME TARGET)"
				: "there are several workers: name one with "
				  "--worker NAME");
			mb_store_close(s);
			return 2;
		}
		worker = ow.name;
	}
	rc = mb_store_worker_get(s, worker, &w);
	if (rc != 0) {
		fprintf(stderr, "mibera-job submit: no worker '%s' (mibera-job worker "
			"add first)\n", worker);
		mb_store_close(s);
		return 1;
	}
	if (download > 0) {
		/* the worker's free disk at its last check, against what the
		 * job will put there */
		cJSON *hello = mb_json_parse(w.hello, strlen(w.hello));
		uint64_t free_b = 0, need = disk_needed(download, j->quants);

		if (hello != NULL &&
		    mb_json_get_u64(hello, "disk_free", MB_JSON_MAX_INT, &free_b) == 0 &&
		    free_b < need) {
			fprintf(stderr, "mibera-job submit: '%s' had %.1f GB free in "
				"%s at its last check; this job needs about %.1f GB "
				"(the download, the F16 and each quant). Free space "
				"there (then mibera-job worker check %s), or use a "
				"bigger box\n", w.name, (double)free_b / 1e9, w.dir,
				(double)need / 1e9, w.name);
			cJSON_Delete(hello);
			mb_store_close(s);
			return 1;
		}
		cJSON_Delete(hello);
	}
checked_worker:
	if (mb_job_source_is_path(j->source) && strcmp(w.target, "local") == 0) {
		/* a local worker reads the same disk: the model must be there */
		struct stat st;

		char abs[PATH_MAX];

		if (stat(j->source, &st) != 0 || !S_ISDIR(st.st_mode)) {
			char shown[sizeof(j->source)];

			fprintf(stderr, "mibera-job submit: '%s' is not a directory "
				"here, where worker '%s' runs\n",
				mb_printable(shown, sizeof(shown), j->source), w.name);
			mb_store_close(s);
			return 1;
		}
		/* the coordinator may run elsewhere (a service): the path
		 * is kept whole */
		if (realpath(j->source, abs) != NULL &&
		    strlen(abs) < sizeof(j->source))
			memcpy(j->source, abs, strlen(abs) + 1);
	}
	if (strcmp(j->converter, MB_CONVERTER_MIBERA) == 0 &&
	    (!mb_job_source_is_path(j->source) ||
	     strcmp(w.target, "local") == 0)) {
		/* an architecture mibera does not convert is refused here,
		 * with the way out, rather than on the rented box */
		struct cli_foreign f;
		char again[1024];

		/* the way out is the person's own command with the other
		 * converter: their flags kept */
		err[0] = '\0';
		rc = cli_inspect_foreign(j->source, j->overrides,
					 command_args(argc, argv, 1, 1, again,
						      sizeof(again)) == 0
						 ? again : NULL,
					 &f, err, sizeof(err));
		if (rc == 0 && f.foreign) {
			fprintf(stderr, "mibera-job submit: %s\n%s\n", f.reason,
				f.way_out);
			mb_store_close(s);
			return 3;
		}
	}
	if (j->push_repo[0] != '\0') {
		char tok[512];

		/* the coordinator needs one with write access; say it now,
		 * not after the box has worked for an hour */
		if (mb_hub_token(tok, sizeof(tok)) != 0)
			fprintf(stderr, "mibera-job submit: warning: --push needs a "
				"hub token with write access in the coordinator's "
				"environment (HF_TOKEN, or `hf auth login`), and "
				"none is set here\n");
		memset(tok, 0, sizeof(tok));
	}
	if (rq != NULL) {
		rc = rent_for_job(s, j, rq, &w);
		if (rc != 0) {
			mb_store_close(s);
			return rc - 1;
		}
	}
	j->worker_id = w.id;
	snprintf(j->worker, sizeof(j->worker), "%s", w.name);
	rc = mb_store_job_add(s, j);
	if (rc == 0 && rq != NULL) {
		rc = mb_store_worker_set_rent_job(s, w.id, j->id);
		if (rc != 0) /* the job stays, on a worker given back when idle */
			fprintf(stderr, "mibera-job submit: warning: cannot mark "
				"'%s' as rented for job %lld (%s): it is destroyed "
				"once idle instead\n", w.name, (long long)j->id,
				mb_strerror(rc));
		rc = 0;
	}
	if (rc != 0 && rq != NULL) {
		/* no job for the box: it goes back now */
		char msg[1024];

		fprintf(stderr, "mibera-job submit: cannot queue the job: %s\n",
			mb_strerror(rc));
		if (mb_rent_give_back(s, &w, msg, sizeof(msg)) != 0)
			fprintf(stderr, "mibera-job submit: %s; destroy it by "
				"hand: it may be billing\n", msg);
		mb_store_close(s);
		return 1;
	}
	mb_store_close(s);
	if (rc != 0) {
		fprintf(stderr, "mibera-job submit: cannot queue the job: %s\n",
			mb_strerror(rc));
		return 1;
	}
	if (rq != NULL)
		printf("queued job %lld on %s: its %s instance %s is destroyed when "
		       "the job ends\n", (long long)j->id, w.name, w.provider,
		       w.instance_id);
	if (json)
		printf("{\"id\":%lld}\n", (long long)j->id);
	else
		printf("%lld\n", (long long)j->id);
	if (isatty(2)) {
		/* what happens next, for a person (scripts read the id) */
		struct mb_coord_info ci;

		mb_coord_probe(&ci);
		fprintf(stderr, "queued job %lld on %s. Follow it: mibera-job logs -f "
			"%lld; stop it: mibera-job cancel %lld\n", (long long)j->id,
			j->worker, (long long)j->id, (long long)j->id);
		if (!ci.alive)
			fprintf(stderr, "no coordinator is running, so nothing runs "
				"it yet: start `mibera-coordinator` (or the systemd "
				"unit deploy/mibera-coordinator.service)\n");
	}
	return 0;
}

/* Reads a number option: 0, or 2 after a usage error. */
static int rent_number(const struct cli_parse *p, double min, double max,
		       double *out)
{
	char *end;
	double v = strtod(p->val, &end);

	if (*end != '\0' || end == p->val || !(v >= min && v <= max)) {
		cli_usage_error(p->spec, "--%s is a number from %g to %g, not "
				"'%s'", p->opt->name, min, max, p->val);
		return 2;
	}
	*out = v;
	return 0;
}

/* Takes --rent and the options that go with it: 1 taken, 0 another
 * option, 2 a bad value (said). *with is 1 once an option that needs
 * --rent is seen, 2 once --rent is. */
static int take_rent(const struct cli_parse *p, struct rent_req *rq, int *with)
{
	struct cli_rent *r = &rq->r;

	if (cli_is(p, "rent")) {
		if (!mb_provider_known(p->val)) {
			cli_usage_error(p->spec, "unknown provider '%s' (known: "
					"vast)", p->val);
			return 2;
		}
		r->provider = p->val;
		*with = 2;
		return 1;
	}
	if ((cli_is(p, "key") || cli_is(p, "agent") || cli_is(p, "worker-dir")) &&
	    cli_path_given(p) != 0)
		return 2;
	if (cli_is(p, "gpu"))
		r->gpu = p->val;
	else if (cli_is(p, "key"))
		r->key = p->val;
	else if (cli_is(p, "user")) {
		if (!mb_proto_name_ok(p->val) || strlen(p->val) > 32) {
			cli_usage_error(p->spec, "--user '%s' is not a login "
					"name", p->val);
			return 2;
		}
		r->user = p->val;
	} else if (cli_is(p, "image"))
		r->image = p->val;
	else if (cli_is(p, "agent"))
		r->agent = p->val;
	else if (cli_is(p, "worker-dir"))
		r->dir = p->val;
	else if (cli_is(p, "yes"))
		rq->yes = 1;
	else if (cli_is(p, "max-price")) {
		if (rent_number(p, 0.001, 10000, &r->max_price) != 0)
			return 2;
	} else if (cli_is(p, "max-hours")) {
		if (rent_number(p, 0.01, 24 * 365, &r->max_hours) != 0)
			return 2;
	} else if (cli_is(p, "disk")) {
		if (rent_number(p, 1, 100000, &rq->disk_gb) != 0)
			return 2;
	} else
		return 0;
	if (*with == 0)
		*with = 1;
	return 1;
}

int cmd_submit(int argc, char **argv)
{
	struct mb_job_row j;
	const char *worker = NULL;
	char err[1024], list[256];
	struct cli_parse p;
	struct rent_req rq;
	int json = 0, rc, u, renting = 0;
	const char *base = NULL;
	cJSON *set = cJSON_CreateObject(), *ov = NULL;
	char *otext = NULL;

	memset(&j, 0, sizeof(j));
	snprintf(j.quants, sizeof(j.quants), "Q4_K_M");
	snprintf(j.layout, sizeof(j.layout), "native");
	snprintf(j.outtype, sizeof(j.outtype), "f16");
	j.smoke = 1;
	j.fidelity = 1;
	snprintf(j.imatrix, sizeof(j.imatrix), "auto");
	snprintf(j.converter, sizeof(j.converter), MB_CONVERTER_MIBERA);
	cli_rent_defaults(&rq.r);
	rq.disk_gb = 0;
	rq.yes = 0;
	rq.argc = argc;
	rq.argv = argv;
	cli_parse_init(&p, &spec, argc, argv);
	if (set == NULL)
		return 1;
	while ((rc = cli_next(&p)) > 0) {
		if ((u = cli_user_setting(&p, set, &base)) != 0) {
			if (u == 2)
				goto usage;
		} else if ((u = take_rent(&p, &rq, &renting)) != 0) {
			if (u == 2)
				goto usage;
		} else if (cli_is(&p, "json")) {
			json = 1;
		} else if (cli_is(&p, "converter")) {
			snprintf(j.converter, sizeof(j.converter), "%s", p.val);
		} else if (cli_is(&p, "no-smoke")) {
			j.smoke = 0;
		} else if (cli_is(&p, "pull-f16")) {
			j.pull_f16 = 1;
		} else if (cli_is(&p, "imatrix")) {
			snprintf(j.imatrix, sizeof(j.imatrix), "%s", p.val);
		} else if (cli_is(&p, "no-fidelity")) {
			j.fidelity = 0;
		} else if (cli_is(&p, "push")) {
			if (!mb_hub_repo_id_ok(p.val) ||
			    strlen(p.val) >= sizeof(j.push_repo)) {
				cli_usage_error(&spec, "--push is a repository on "
						"the hub, org/name, not '%s'",
						p.val);
				goto usage;
			}
			snprintf(j.push_repo, sizeof(j.push_repo), "%s", p.val);
		} else if (cli_is(&p, "private")) {
			j.push_private = 1;
		} else if (cli_is(&p, "split-max-size")) {
			if (mb_splitset_parse_size(p.val, &j.split_max_size, err,
						   sizeof(err)) != 0) {
				cli_usage_error(&spec, "--split-max-size: %s", err);
				goto usage;
			}
		} else if (cli_is(&p, "notify")) {
			if (strncmp(p.val, "http://", 7) != 0 &&
			    strncmp(p.val, "https://", 8) != 0) {
				cli_usage_error(&spec, "--notify is an http:// or "
						"https:// URL, not '%s'", p.val);
				goto usage;
			}
			if (strlen(p.val) >= sizeof(j.notify_url)) {
				cli_usage_error(&spec, "--notify: the URL is longer "
						"than %zu bytes",
						sizeof(j.notify_url) - 1);
				goto usage;
			}
			snprintf(j.notify_url, sizeof(j.notify_url), "%s", p.val);
		} else if (cli_is(&p, "ollama")) {
			if (!mb_ollama_name_ok(p.val)) {
				cli_usage_error(&spec, "--ollama: '%s' is not an "
						"Ollama model name: [namespace/]"
						"model[:tag], of letters, digits, "
						"'_', '-' and '.'", p.val);
				goto usage;
			}
			snprintf(j.ollama_name, sizeof(j.ollama_name), "%s", p.val);
		} else if (cli_is(&p, "worker")) {
			worker = p.val;
		} else if (cli_is(&p, "quant")) {
			snprintf(j.quants, sizeof(j.quants), "%s", p.val);
		} else if (cli_is(&p, "layout")) {
			snprintf(j.layout, sizeof(j.layout), "%s", p.val);
		} else if (cli_is(&p, "outtype")) {
			snprintf(j.outtype, sizeof(j.outtype), "%s", p.val);
		}
	}
	if (rc < 0) {
		cJSON_Delete(set);
		return p.exit;
	}
	if (strlen(p.args[0]) >= sizeof(j.source)) {
		cli_usage_error(&spec, "SOURCE is longer than %zu bytes",
				sizeof(j.source) - 1);
		goto usage;
	}
	snprintf(j.source, sizeof(j.source), "%s", p.args[0]);
	if (renting == 1 && rq.r.provider == NULL) {
		cli_usage_error(&spec, "--gpu, --max-price, --max-hours, --yes, "
				"--key, --user, --image, --agent and --worker-dir go "
				"with --rent PROVIDER");
		goto usage;
	}
	if (rq.r.provider != NULL && worker != NULL) {
		cli_usage_error(&spec, "--rent rents a worker for the job: leave "
				"out --worker");
		goto usage;
	}
	if (rq.r.provider != NULL && mb_job_source_is_path(j.source)) {
		cli_usage_error(&spec, "--rent needs a model on the hub "
				"(org/name): a rented box cannot read a directory "
				"here");
		goto usage;
	}
	if (!mb_job_source_is_path(j.source)) {
		char repo[300];

		snprintf(repo, sizeof(repo), "%s", j.source);
		repo[strcspn(repo, "@")] = '\0';
		if (!mb_hub_repo_id_ok(repo)) {
			char shown[sizeof(j.source)];

			fprintf(stderr, "mibera-job submit: '%s' is neither org/name"
				"[@revision] nor a path (start paths with / or .)\n",
				mb_printable(shown, sizeof(shown), j.source));
			goto usage;
		}
	}
	if (mb_quant_list_parse(j.quants, list, sizeof(list), err,
				sizeof(err)) != 0) {
		fprintf(stderr, "mibera-job submit: %s\n", err);
		goto usage;
	}
	snprintf(j.quants, sizeof(j.quants), "%s", list);
	if (strcmp(j.converter, MB_CONVERTER_LLAMA) == 0 &&
	    (set->child != NULL || base != NULL)) {
		cli_usage_error(&spec, "--set and --base settle values for "
				"mibera's converter; llama.cpp's reads "
				"config.json as it is: correct config.json in a "
				"copy of the model and submit that directory");
		goto usage;
	}
	if (strcmp(j.converter, MB_CONVERTER_LLAMA) == 0 &&
	    strcmp(j.layout, "split") == 0) {
		cli_usage_error(&spec, "--layout split goes with mibera's "
				"converter; llama.cpp's writes one file");
		goto usage;
	}
	if (j.push_private && j.push_repo[0] == '\0') {
		cli_usage_error(&spec, "--private goes with --push ORG/NAME");
		goto usage;
	}
	if (j.push_repo[0] != '\0' && j.split_max_size > MB_SPLITSET_HUB_MAX) {
		cli_usage_error(&spec, "--split-max-size: the hub takes no file "
				"bigger than 50G; give 50G or less with --push");
		goto usage;
	}
	if (j.push_repo[0] != '\0' && j.split_max_size == 0)
		j.split_max_size = MB_SPLITSET_HUB_MAX;
	if (strcmp(j.imatrix, "off") == 0) {
		/* the types llama.cpp will not make without one */
		char q[256], *t, *save = NULL;

		snprintf(q, sizeof(q), "%s", j.quants);
		for (t = strtok_r(q, ",", &save); t; t = strtok_r(NULL, ",", &save))
			if (mb_quant_find(t) != NULL && mb_quant_find(t)->imatrix == 2) {
				fprintf(stderr, "mibera-job submit: %s cannot be made "
					"without an importance matrix: leave out "
					"--imatrix off, or choose another type\n", t);
				goto usage;
			}
	}
	/* what the user settled travels with the job, the base's config
	 * read from the hub now (so the worker needs no hub for it) */
	if (set->child != NULL || base != NULL) {
		char *btext = NULL;
		size_t blen = 0;

		ov = cJSON_CreateObject();
		cJSON_AddItemToObject(ov, "set", set);
		set = NULL;
		if (base != NULL) {
			cJSON *bdoc;

			if (cli_base_config("mibera-job submit", base, &btext,
					    &blen) != 0) {
				cJSON_Delete(ov);
				return 1;
			}
			cJSON_AddStringToObject(ov, "base", base);
			bdoc = btext ? mb_json_parse(btext, blen) : NULL;
			if (cJSON_IsObject(bdoc))
				cJSON_AddItemToObject(ov, "base_config", bdoc);
			else
				cJSON_Delete(bdoc);
			free(btext);
		}
		otext = cJSON_PrintUnformatted(ov);
		cJSON_Delete(ov);
		if (otext == NULL)
			return 1;
		j.overrides = otext;
	}
	cJSON_Delete(set);
	set = NULL;
	rc = submit_job(&j, worker, json, rq.r.provider != NULL ? &rq : NULL, argc,
			argv);
	cJSON_free(otext);
	return rc;
usage:
	cJSON_Delete(set);
	return 2;
}

