/*
 * jobrun: one job, step by step, on its worker (DESIGN.md, Job lifecycle).
 *
 * Worker steps (fetch, convert, quantize, manifest) are started detached
 * with `mibera-worker start` and followed with `mibera-worker follow
 * --from OFFSET`; every event is stored with the offset it ends at, in one
 * transaction, so after a dropped link or a killed coordinator the follow
 * resumes exactly there. A step already done on the worker is not run
 * again. The pull copies each artifact into $MIBERA_HOME/partial/<job>/
 * chunk by chunk, verifying every chunk against the worker's manifest,
 * then the whole file, then moves it into artifacts/<job>/; smoke runs
 * each artifact with libllama on this machine.
 */
#ifndef MB_JOBRUN_H
#define MB_JOBRUN_H

#include <stddef.h>

struct mb_config;
struct mb_store;
struct mb_job_row;

/* Runs job j as far as it goes and records where it ended: succeeded;
 * waiting, after a transient failure (the link, the worker unreachable,
 * a worker step that may pass on a later try) while the job has attempts
 * left, until a pause that doubles with each attempt (with jitter) has
 * passed; failed, with a message a person can act on; or cancelled.
 * Returns 0 when the job succeeded; otherwise its error is in err and in
 * the job. */
int mb_jobrun(struct mb_store *s, struct mb_job_row *j,
	      const struct mb_config *cfg, char *err, size_t errcap);

/* The pause before attempt `attempts` + 1: base * 2^(attempts - 1), at
 * most an hour, times a random factor from 0.5 to 1.5. */
long mb_jobrun_backoff(int base_s, int attempts);

#endif
