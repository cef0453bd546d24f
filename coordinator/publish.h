/*
 * publish: the files a job leaves beside its artifacts, so the directory
 * explains itself to whoever finds it:
 *
 *   provenance.json  what was made from what and how: the source repo and
 *                    commit, every config.json repair with its evidence,
 *                    layout and output type, mibera's and llama.cpp's
 *                    versions, each artifact's size and sha256, the smoke
 *                    results, the importance matrix used and each
 *                    quant's fidelity to the F16 (schema in
 *                    proto/PROTOCOL.md)
 *   Modelfile        for `ollama create`: FROM the recommended quant,
 *                    TEMPLATE translated from the model's chat template
 *                    when it is one of the known formats, its stop tokens
 *   README.md        a short model card: the files, how they were checked,
 *                    the repairs, how to run them
 *
 * Each is written atomically.
 */
#ifndef MB_PUBLISH_H
#define MB_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

struct mb_job_row;
struct mb_manifest_list;

struct mb_publish {
	const struct mb_job_row *j;
	const char *dir;		/* the job's artifacts directory */
	const char *worker;		/* the worker's name */
	const char *commit;		/* the source's commit, or "" */
	const char *repairs;		/* JSON array of repairs, or NULL */
	const char *convert;		/* convert's summary object, or NULL */
	const char *smoke;		/* JSON array of smoke results, or NULL */
	const char *fidelity;		/* JSON array of fidelity results (the
					 * worker's "result" events), or NULL */
	const char *imatrix;		/* the imatrix step's summary, or NULL
					 * when the quants were made without */
	const struct mb_manifest_list *files;
};

/* Writes provenance.json, Modelfile and README.md into p->dir. */
int mb_publish(const struct mb_publish *p, char *err, size_t errcap);

/* The artifact to start with by type alone (no fidelity figures): Q4_K_M
 * when there is one, else the nearest of a fixed order of preference,
 * else the first. NULL when files is NULL or empty; borrowed from files. */
const char *mb_publish_recommended(const struct mb_manifest_list *files);

/* How close a quant must be to its F16 to be recommended on its figures:
 * mean KL divergence at most this, the same top token at least this
 * often (see publish.c for where the numbers come from). */
#define MB_RECOMMEND_MAX_KLD 0.05
#define MB_RECOMMEND_MIN_TOP1 0.90

/* One file as the recommendation weighs it: its size and, when the
 * fidelity step measured it, its figures. */
struct mb_publish_cand {
	const char *name;
	uint64_t size;
	int measured;		/* kld_mean and top1 are set */
	int broken;		/* the fidelity step found it broken */
	double kld_mean;	/* mean KL divergence from the F16 */
	double top1;		/* how often both rank the same token first */
	int parts;		/* a set of parts (--split-max-size), named
				   by its first; size counts them all */
};

/* The file a person should start with (the Modelfile's FROM, the card's
 * and show's "recommended"): with fidelity figures, the smallest file
 * within MB_RECOMMEND_MAX_KLD and MB_RECOMMEND_MIN_TOP1 (else the
 * measured one closest to the F16); without, by type as
 * mb_publish_recommended. Returns its index in c, -1 when n is 0; why
 * (may be NULL) gets the reason in words ("the smallest with mean KL <=
 * 0.05 and top-1 >= 90%"). A file found broken is never chosen while
 * another is there. */
int mb_publish_choose(const struct mb_publish_cand *c, size_t n, char *why,
		      size_t whycap);

/* mb_publish_choose over files, with the figures from fidelity (a JSON
 * array of the fidelity step's "result" events, the last for a file
 * winning; NULL or unreadable: none). Borrowed from files; NULL when files
 * is NULL or empty. */
const char *mb_publish_recommend(const struct mb_manifest_list *files,
				 const char *fidelity, char *why,
				 size_t whycap);

/* The file Ollama is given (the Modelfile's FROM, mibera-job ollama):
 * Ollama takes one GGUF file, so the recommendation among the whole
 * files only, chosen as mb_publish_recommend chooses; NULL when every
 * artifact is a set of parts. */
const char *mb_publish_whole(const struct mb_manifest_list *files,
			     const char *fidelity, char *why, size_t whycap);

/* The type in an artifact's name ("Q4_K_M" of "model-Q4_K_M.gguf") into
 * out (cap bytes); returns out. */
const char *mb_publish_type(const char *file, char *out, size_t cap);

struct mb_gguf;

/* How Ollama chats with a model: what the Modelfile's TEMPLATE and
 * PARAMETER stop lines hold. */
struct mb_publish_chat {
	const char *format;	/* the chat format recognised ("chatml"), or
				 * NULL */
	const char *tmpl;	/* Ollama's Go template; NULL when Ollama
				 * should read the GGUF's own */
	int has_jinja;		/* the GGUF has a chat template */
	const char *stops[12];	/* stop strings, none with '"' or a newline */
	size_t nstops;
};

/* Fills c for the GGUF g (NULL: unreadable, so a plain-text template and
 * no stops). Strings are borrowed from g and static tables. */
void mb_publish_chat(const struct mb_gguf *g, struct mb_publish_chat *c);

#endif
