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
#include "coordinator/store.h"

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

/* Checks and queues j on worker (NULL: the only one); the exit code. */
static int submit_job(struct mb_job_row *j, const char *worker, int json)
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

		err[0] = '\0';
		rc = cli_inspect_foreign(j->source, j->overrides, &f, err,
					 sizeof(err));
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
	j->worker_id = w.id;
	rc = mb_store_job_add(s, j);
	mb_store_close(s);
	if (rc != 0) {
		fprintf(stderr, "mibera-job submit: cannot queue the job: %s\n",
			mb_strerror(rc));
		return 1;
	}
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

int cmd_submit(int argc, char **argv)
{
	struct mb_job_row j;
	const char *worker = NULL;
	char err[1024], list[256];
	struct cli_parse p;
	int json = 0, rc, u;
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
	cli_parse_init(&p, &spec, argc, argv);
	if (set == NULL)
		return 1;
	while ((rc = cli_next(&p)) > 0) {
		if ((u = cli_user_setting(&p, set, &base)) != 0) {
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
	rc = submit_job(&j, worker, json);
	cJSON_free(otext);
	return rc;
usage:
	cJSON_Delete(set);
	return 2;
}

