/*
 * store: the job database. SQLite in WAL mode with a busy timeout, so the
 * daemon and any number of mibera-job processes use it at once; file mode
 * 0600; prepared statements only; the schema from the migrations/ files,
 * applied in order inside one transaction each, tracked by PRAGMA
 * user_version. Secrets are never stored here.
 *
 * $MIBERA_HOME (default ${XDG_DATA_HOME:-~/.local/share}/mibera) holds
 * jobs.db, artifacts/ and partial/.
 */
#ifndef MB_STORE_H
#define MB_STORE_H

#include <stddef.h>
#include <stdint.h>

struct mb_store;

/* Writes $MIBERA_HOME's path to out. */
int mb_store_home(char *out, size_t cap);

/* Opens (creating, mode 0600) the database at path (NULL: MIBERA_HOME/
 * jobs.db) and brings its schema up to date. A database written by a newer
 * mibera is refused (MB_EUNSUPPORTED). Messages in err. */
int mb_store_open(const char *path, struct mb_store **out, char *err,
		  size_t errcap);

/* Closes s; NULL-safe. */
void mb_store_close(struct mb_store *s);

/* The schema version in force. */
int mb_store_schema_version(struct mb_store *s);

/* Number of migrations this build carries. */
int mb_store_migrations(void);

struct mb_worker_row {
	int64_t id;
	char name[65];
	char target[300];
	char dir[1024];
	char key_path[1024];
	char host_key[2048];
	char fingerprint[64];
	char agent_path[1024];
	double cost_per_hour;
	char state[16];
	char hello[4096];	/* the last hello JSON, "" if never */
	int64_t checked_at;
	int64_t created_at;
};

/* Adds a worker (id, created_at filled in). MB_EEXIST: the name is
 * taken. */
int mb_store_worker_add(struct mb_store *s, struct mb_worker_row *w);

/* Reads the worker called name. MB_ENOENT when there is none. */
int mb_store_worker_get(struct mb_store *s, const char *name,
			struct mb_worker_row *w);

/* Calls fn for each worker by name; stops at fn's first nonzero return
 * (and returns it). */
int mb_store_worker_list(struct mb_store *s,
			 int (*fn)(const struct mb_worker_row *w, void *ctx),
			 void *ctx);

/* Removes the worker called name. MB_ENOENT when there is none, MB_EBUSY
 * when a job that is not finished uses it. */
int mb_store_worker_remove(struct mb_store *s, const char *name);

/* Records a successful check: the hello JSON and the host key pinned. */
int mb_store_worker_checked(struct mb_store *s, const char *name,
			    const char *hello, const char *host_key,
			    const char *fingerprint);

/* --- jobs --- */

/* The steps of a job, in order. */
extern const char *const mb_job_steps[];

struct mb_job_row {
	int64_t id;
	char source[300];
	char revision[128];
	char commit_sha[48];
	int64_t worker_id;
	char worker[65];	/* the worker's name (read only) */
	char quants[256];
	char layout[16];
	char outtype[8];
	int smoke;
	char notify_url[512];
	char state[16];
	char error[1024];
	int attempts;
	int64_t next_try_at;
	double held_seconds;
	int64_t created_at, started_at, finished_at;
};

struct mb_step_row {
	char name[32];
	int seq;
	char state[16];
	int attempts;
	int64_t started_at, finished_at;
	int64_t follow_offset;
	char result[1024];
	char error[1024];
};

/* Adds a queued job with its steps (pending) in one transaction; fills
 * j->id. */
int mb_store_job_add(struct mb_store *s, struct mb_job_row *j);

/* Reads job id. MB_ENOENT when there is none. */
int mb_store_job_get(struct mb_store *s, int64_t id, struct mb_job_row *j);

/* Calls fn for each job, newest first; stops at a nonzero return. */
int mb_store_job_list(struct mb_store *s,
		      int (*fn)(const struct mb_job_row *j, void *ctx), void *ctx);

/* Takes the oldest queued job (or a waiting one whose time has come) and
 * marks it running, in one transaction, so two coordinators never take
 * the same job. MB_ENOENT when there is none. */
int mb_store_job_claim(struct mb_store *s, struct mb_job_row *j);

/* Sets a job's state and error (NULL: cleared); finished states stamp
 * finished_at. */
int mb_store_job_set_state(struct mb_store *s, int64_t id, const char *state,
			   const char *error);

/* Sets the commit a job's revision resolved to. */
int mb_store_job_set_commit(struct mb_store *s, int64_t id, const char *commit);

/* A coordinator that died left its jobs 'running': at start, with one
 * coordinator per database, they are queued again (every step resumes or
 * finds itself done). Returns how many. */
int mb_store_jobs_requeue_running(struct mb_store *s, int *n);

/* Queues a failed or cancelled job again; its unfinished steps go back to
 * pending (done steps stay done). MB_EBUSY when the job is not finished. */
int mb_store_job_retry(struct mb_store *s, int64_t id);

/* Adds seconds to the time the job held its worker. */
int mb_store_job_add_held(struct mb_store *s, int64_t id, double seconds);

/* Reads step name of job id. */
int mb_store_step_get(struct mb_store *s, int64_t id, const char *name,
		      struct mb_step_row *st);

/* Calls fn for each step of job id in order. */
int mb_store_step_list(struct mb_store *s, int64_t id,
		       int (*fn)(const struct mb_step_row *st, void *ctx),
		       void *ctx);

/* Sets a step's state (and result, error: NULL keeps them); running
 * counts an attempt and stamps started_at, done/failed/skipped stamp
 * finished_at. */
int mb_store_step_set(struct mb_store *s, int64_t id, const char *name,
		      const char *state, const char *result, const char *error);

/* Stores the events of a step read up to offset, in one transaction: the
 * events and the new follow offset commit together, so a crash never
 * stores an event twice or loses one. lines holds whole JSON lines. An
 * offset below 0 leaves the follow offset as it is (the coordinator's own
 * events, such as the pull's). */
int mb_store_step_events(struct mb_store *s, int64_t id, const char *name,
			 const char *lines, size_t len, int64_t offset);

/* Calls fn for each event of job id after event after_id (0: all). */
int mb_store_events(struct mb_store *s, int64_t id, int64_t after_id,
		    int (*fn)(int64_t event_id, const char *step, int64_t at_ms,
			      const char *type, const char *data, void *ctx),
		    void *ctx);

/* Records an artifact of a job (replacing one of the same name). */
int mb_store_artifact_add(struct mb_store *s, int64_t id, const char *name,
			  const char *type, uint64_t size, const char *sha256,
			  const char *path, const char *smoke);

#endif
