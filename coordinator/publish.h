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

/* The artifact a person should start with (the Modelfile's FROM): Q4_K_M
 * when there is one, else the nearest of a fixed order of preference,
 * else the first. NULL when files is NULL or empty; borrowed from files. */
const char *mb_publish_recommended(const struct mb_manifest_list *files);

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
