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

#endif
