/*
 * The mibera-job subcommands. Each is `int cmd_x(int argc, char **argv)`
 * in coordinator/cli/x.c, with argv[0] the subcommand's name, returning the
 * process exit code (0 ok, 1 error, 2 usage). To add one: write the file,
 * declare it here, and add a row to the table in coordinator/job_main.c.
 */
#ifndef MB_CLI_H
#define MB_CLI_H

#include <stddef.h>
#include <stdint.h>

struct mb_store;
struct mb_job_row;
struct mb_buf;

/* Shared by the subcommands (coordinator/cli/common.c). */

/* Reads a job id (a positive integer): 0, or -1 when arg is not one. */
int cli_job_id(const char *arg, long long *id);

/* A byte count for a person: "940 B", "3.4 GB", "120 MB" (decimal units,
 * one decimal below 100). */
void cli_bytes(double v, char *out, size_t cap);

/* A count of things for a person: "1 stream", "4 streams" (noun is the
 * singular; the plural adds an s). */
void cli_count(double n, const char *noun, char *out, size_t cap);

/* A time span for a person: "48s", "1m20s", "2h05m". */
void cli_duration(double s, char *out, size_t cap);

/* s made printable (control characters '?') and cut to width bytes (at a
 * character boundary), its end shown by "..." when it was cut; tail keeps
 * the end instead (a path, where the model's name is: "...phi-4"). Returns
 * buf (cap bytes, more than width). */
const char *cli_fit(const char *s, size_t width, int tail, char *buf,
		    size_t cap);

/* The time job j has held its worker: the stored figure, which counts up
 * to the start of the running step, plus that step's time so far. */
double cli_held(struct mb_store *s, const struct mb_job_row *j);

/* Opens the job database; on failure says why on stderr and returns 1
 * (the exit code), else 0. */
int cli_open(struct mb_store **s);

/* The JSON of job j (proto/status.schema.json's job) appended to b: with
 * its steps when steps is set; its held time and cost as cli_held counts
 * them. */
void cli_job_json(struct mb_buf *b, struct mb_store *s,
		  const struct mb_job_row *j, int steps);

/* Opens the database and reads job id into j; on failure ("no job N",
 * prefixed with the subcommand cmd) returns 1 with nothing left open. */
int cli_open_job(const char *cmd, long long id, struct mb_store **s,
		 struct mb_job_row *j);

/* The file a job recommends, as its model card says it: chosen by
 * mb_publish_choose from its verified artifacts and the fidelity step's
 * figures. */
struct cli_rec {
	char file[256];		/* printable */
	char why[256];
	int measured;		/* the file has the figures below */
	double kld_mean, top1;
};

/* Fills r for job id: 0, or 1 when the job has no verified artifacts
 * (yet). */
int cli_recommended(struct mb_store *s, long long id, struct cli_rec *r);

/* --set KEY=VALUE and --base ORG/NAME, inspect's and submit's: what a
 * person settles about a model that its files cannot. */
#define CLI_USER_OPTS                                                        \
	{ "set", 0, "KEY=VALUE", NULL, "settle a config.json value the files " \
	  "cannot (repeat it; e.g. num_attention_heads=24)" },           \
	{ "base", 0, "ORG/NAME", NULL, "the base model it was fine-tuned "    \
	  "from, when its card does not say" }

struct cli_parse;
struct cJSON;

/* Takes the option cli_next just gave when it is --set or --base: into
 * set (a JSON object) or *base. 1: taken; 0: another option; 2: a bad
 * one, named on stderr (the exit code). */
int cli_user_setting(const struct cli_parse *p, struct cJSON *set,
		     const char **base);

/* The config.json of the base model a person named, from the hub, for
 * inspect and submit: 0 with *text (caller frees; NULL when the hub could
 * not be asked, a warning printed), or 1 after saying on stderr that the
 * hub has no such model (cmd starts the message). */
int cli_base_config(const char *cmd, const char *base, char **text,
		    size_t *len);

/* A model refused because mibera does not convert its architecture
 * natively, as inspect reads it (coordinator/cli/inspect.c). */
struct cli_foreign {
	int foreign;		/* 0: mibera converts it, or it was refused for
				 * another reason */
	char name[200];		/* "MixtralForCausalLM (model_type mixtral)" */
	char reason[512];	/* the refusal */
	char way_out[1200];	/* what to do: submit --converter llama.cpp */
};

/* Reads source (org/name[@revision] or a directory here) as inspect does,
 * with overrides (the job's {"set","base","base_config"} JSON, or NULL),
 * and says in out whether its architecture is one mibera cannot convert;
 * the way out shows the submit command with args (the person's arguments
 * to submit, without --converter; NULL: source alone). 0, or an exit code
 * with err saying why it could not be read. */
int cli_inspect_foreign(const char *source, const char *overrides,
			const char *args, struct cli_foreign *out, char *err,
			size_t errcap);

/* Renting a box (coordinator/cli/worker.c), for worker rent and submit
 * --rent. */
struct mb_provider;
struct mb_offer;
struct mb_worker_row;

struct cli_rent {
	const char *provider;	/* "vast" */
	const char *gpu;	/* NULL: any */
	const char *key;	/* the user's ssh key; NULL ~/.ssh/id_ed25519 */
	const char *user;	/* the login there; NULL root */
	const char *dir;	/* the worker directory; NULL .mibera */
	const char *image;	/* NULL: a CUDA devel image */
	const char *agent;	/* a mibera-worker already there; NULL install */
	double disk_gb, ram_gb;	/* at least (ram 0: any) */
	double max_price;	/* dollars an hour; 0 any */
	double max_hours, idle_after, boot_timeout;
};

/* Fills a with worker rent's defaults (50 GB, 12 hours, 600 s idle). */
void cli_rent_defaults(struct cli_rent *a);

/* Opens a->provider and searches the offers that fit a, cheapest first,
 * and shows the chosen one and the next two ("for WHAT"). 0 with *prov
 * open (caller frees) and n > 0 offers; else 1 after saying why on stderr
 * (cmd starts the message), nothing open. */
int cli_rent_search(const char *cmd, const struct cli_rent *a, const char *what,
		    struct mb_provider **prov, struct mb_offer *offers,
		    size_t cap, size_t *n);

/* Rents the first of offers still there, waits until it runs, connects
 * with the host key made here, installs the agent and records it in s as
 * the worker called name (NULL: "PROVIDER-INSTANCE"), filled into w.
 * 0; else 1 after saying why, and any instance rented is destroyed. */
int cli_rent_now(const char *cmd, struct mb_store *s, const struct cli_rent *a,
		 const char *name, struct mb_provider *prov,
		 const struct mb_offer *offers, size_t n,
		 struct mb_worker_row *w);

/* The estimates inspect makes for source, for submit: the worker disk a
 * job with quants (comma-separated) needs and the most memory any of them
 * needs to run. 0, or an exit code with err saying why. */
int cli_inspect_estimate(const char *source, const char *overrides,
			 const char *quants, uint64_t *disk, uint64_t *ram,
			 char *err, size_t errcap);

int cmd_artifacts(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_retry(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_dashboard(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_ollama(int argc, char **argv);
int cmd_smoke(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_worker(int argc, char **argv);

#endif
