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

/* Writes the directory of job id's files of kind ("artifacts": the
 * verified GGUFs and sidecars; "partial": the pull's files while it may
 * resume) under $MIBERA_HOME to out. */
int mb_job_dir(const char *kind, int64_t id, char *out, size_t cap);

/* Opens (creating, mode 0600) the database at path (NULL: MIBERA_HOME/
 * jobs.db) and brings its schema up to date. A database written by a newer
 * mibera is refused (MB_EUNSUPPORTED). Messages in err. */
int mb_store_open(const char *path, struct mb_store **out, char *err,
		  size_t errcap);

/* 1 when the disk holding the database was full at open: s is then a
 * read-only view of the file as of its last checkpoint (what the WAL held
 * since is not seen), and every write fails. */
int mb_store_full(const struct mb_store *s);

/* SQLite's message for the last failed call on s. */
const char *mb_store_errmsg(struct mb_store *s);

/* Checks the database file's integrity (SQLite's quick_check): a damaged
 * file is MB_EIO with err saying what is wrong and what to do. */
int mb_store_check(struct mb_store *s, char *err, size_t errcap);

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
	char idle_command[1024]; /* run here once the worker is idle; "" none */
	int64_t idle_after_s;	/* ... for this long */
	int max_jobs;		/* jobs it runs at once (default 1) */
	int64_t last_active_at;	/* a job last started on it (0: never) */
	int64_t idle_ran_at;	/* the idle command ran (0: not since) */
	char backend[256];	/* what its llama.cpp computes with, from the
				 * last hello ("cpu", "cuda: ..."); "" unknown */
	char provider[16];	/* rented from ("vast"); "" not rented */
	char instance_id[64];	/* the provider's id of the box */
	int64_t rented_at;	/* when it was rented (0: not rented) */
	double max_hours;	/* destroyed after this long (0: no limit) */
	int64_t rent_job_id;	/* rented for this job alone (submit --rent):
				 * destroyed once it ends; 0 none */
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

/* Writes w's settings (target, dir, key_path, host_key, fingerprint,
 * agent_path, cost_per_hour, idle_command, idle_after_s, max_jobs) to the
 * worker called name. MB_ENOENT when there is none; MB_EBUSY when moved is
 * set (its target or directory changes) and a job that is not finished
 * uses it, which would lose its files. */
int mb_store_worker_update(struct mb_store *s, const char *name,
			   const struct mb_worker_row *w, int moved);

/* Removes the worker called name. MB_ENOENT when there is none, MB_EBUSY
 * when a job that is not finished uses it. A worker that ran jobs is kept
 * for their history, renamed "name~ID" and left out of the list, so the
 * name is free again. */
int mb_store_worker_remove(struct mb_store *s, const char *name);

/* How many jobs that are not finished use the worker called name, in *n. */
int mb_store_worker_unfinished(struct mb_store *s, const char *name, int *n);

/* Records a successful check: the hello JSON (and the backend it names,
 * NULL when it names none) and the host key pinned. */
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
	int pull_f16;		/* pull the float GGUF back too */
	char imatrix[8];	/* "auto", "on" or "off" ("" reads as auto) */
	int fidelity;		/* measure each quant against the F16 */
	char push_repo[128];	/* push the artifacts there ("" : not) */
	int push_private;	/* ... into a private repository */
	char ollama_name[128];	/* register with Ollama as this; "": not */
	char converter[16];	/* "mibera" or "llama.cpp" ("" adds as mibera) */
	uint64_t split_max_size;	/* a GGUF bigger than this many bytes
					   is a set of parts; 0: never */
	char notify_url[512];
	char state[16];
	char error[1024];
	int attempts;
	int64_t next_try_at;
	double held_seconds;
	int64_t created_at, started_at, finished_at;
	double cost_per_hour;	/* its worker's (read only) */
	/* what the user settled for the conversion, as JSON
	 * ({"set":{...},"base":"org/name"}), or NULL: written by
	 * mb_store_job_add only (reads leave it NULL; see
	 * mb_store_job_overrides) */
	const char *overrides;
};

struct mb_step_row {
	char name[32];
	int seq;
	char state[16];
	int attempts;
	int64_t started_at, finished_at;
	char result[1024];
	char error[1024];
};

/* What the job cost: its worker's price per hour times the time it held
 * the worker. */
double mb_job_cost(const struct mb_job_row *j);

/* 1 when a job's source is a path on the worker (starts with / or .),
 * 0 when it is a hub repo (org/name[@revision]). */
int mb_job_source_is_path(const char *source);

/* Adds a queued job with its steps (pending) in one transaction; fills
 * j->id. */
int mb_store_job_add(struct mb_store *s, struct mb_job_row *j);

/* Reads the overrides job id was submitted with into out (cap bytes):
 * "" when none. MB_ENOENT: no such job; MB_ETOOBIG: they do not fit. */
int mb_store_job_overrides(struct mb_store *s, int64_t id, char *out,
			   size_t cap);

/* Reads job id. MB_ENOENT when there is none. */
int mb_store_job_get(struct mb_store *s, int64_t id, struct mb_job_row *j);

/* Calls fn for each job, newest first; stops at a nonzero return. */
int mb_store_job_list(struct mb_store *s,
		      int (*fn)(const struct mb_job_row *j, void *ctx), void *ctx);

/* Calls fn for the jobs not finished and the latest `finished` finished
 * ones, newest first: what a person looks at in a long history. */
int mb_store_job_list_recent(struct mb_store *s, int finished,
			     int (*fn)(const struct mb_job_row *j, void *ctx),
			     void *ctx);

struct mb_job_totals {
	int jobs, queued, running, waiting, succeeded, failed, cancelled;
	double cost;	/* over every job: its worker's price times held time */
};

/* Counts the jobs by state and adds up their cost. */
int mb_store_job_totals(struct mb_store *s, struct mb_job_totals *t);

/* Adds up the cost of every job the worker ran (mb_job_cost of each). */
int mb_store_worker_cost(struct mb_store *s, int64_t worker_id, double *cost);

/* Takes the oldest queued job (or a waiting one whose time has come)
 * whose worker runs fewer jobs than its max_jobs, and marks it running
 * (and the worker active), in one transaction, so two coordinators never
 * take the same job. MB_ENOENT when there is none. */
int mb_store_job_claim(struct mb_store *s, struct mb_job_row *j);

/* Puts a running job to wait delay_s seconds before a coordinator may
 * claim it again (a transient failure), keeping error as the reason. */
int mb_store_job_wait(struct mb_store *s, int64_t id, int64_t delay_s,
		      const char *error);

/* Sets a job's state and error (NULL: cleared); finished states stamp
 * finished_at. A job that failed or was cancelled loses its partial
 * files (mb_job_dir "partial"): it will not resume them. */
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

/* Stores the events of job step name read from the journal of worker step
 * follow up to offset, in one transaction: the events and the new follow
 * offset commit together, so a crash never stores an event twice or loses
 * one. lines holds whole lines, each of which must be an event (a JSON
 * object with a type, seq and ms): one that is not fails the batch with
 * MB_EPROTO, stores nothing, and says so in err. follow NULL stores no
 * offset (the coordinator's own events, such as the pull's). */
int mb_store_step_events(struct mb_store *s, int64_t id, const char *name,
			 const char *lines, size_t len, const char *follow,
			 int64_t offset, char *err, size_t errcap);

/* Where the coordinator stopped reading worker step wstep's journal (0
 * when it never read it). */
int mb_store_follow_offset(struct mb_store *s, int64_t id, const char *wstep,
			   int64_t *offset);

/* Calls fn for each event of job id after event after_id (0: all). */
int mb_store_events(struct mb_store *s, int64_t id, int64_t after_id,
		    int (*fn)(int64_t event_id, const char *step, int64_t at_ms,
			      const char *type, const char *data, void *ctx),
		    void *ctx);

/* Records an artifact of a job (replacing one of the same name). A NULL
 * smoke keeps the smoke result stored for the same name and sha256. */
int mb_store_artifact_add(struct mb_store *s, int64_t id, const char *name,
			  const char *type, uint64_t size, const char *sha256,
			  const char *path, const char *smoke);

/* Stores smoke (a JSON object) as the smoke result of job id's artifact
 * name, when its recorded sha256 (hex) is sha256; none matching is not an
 * error. */
int mb_store_artifact_smoke_set(struct mb_store *s, int64_t id,
				const char *name, const char *sha256,
				const char *smoke);

/* The smoke result stored for job id's artifact name with this sha256
 * (hex), in *smoke (the caller frees it), or *smoke NULL when none. */
int mb_store_artifact_smoke_get(struct mb_store *s, int64_t id,
				const char *name, const char *sha256,
				char **smoke);

/* Calls fn for each artifact of job id, smallest first (smoke: the smoke
 * result JSON, or NULL). */
int mb_store_artifact_list(struct mb_store *s, int64_t id,
			   int (*fn)(const char *name, uint64_t size,
				     const char *sha256, const char *path,
				     const char *smoke, void *ctx),
			   void *ctx);

/* The same in name order, so the parts of a set (NAME-00001-of-00003.gguf
 * ...) come together and in order. */
int mb_store_artifact_list_by_name(struct mb_store *s, int64_t id,
				   int (*fn)(const char *name, uint64_t size,
					     const char *sha256,
					     const char *path,
					     const char *smoke, void *ctx),
				   void *ctx);

/* --- what the scheduler and the dashboard ask --- */

/* Counts the jobs queued, waiting or running. */
int mb_store_jobs_unfinished(struct mb_store *s, int *n);

struct mb_worker_idle {
	int active;	/* its jobs queued, waiting or running */
	int unpulled;	/* its jobs whose artifacts exist on it and are not
			   yet pulled and verified */
	int64_t since;	/* idle since: its last job's end (or its start,
			   or when it was added) */
};

/* Says how idle the worker is. */
int mb_store_worker_idle(struct mb_store *s, int64_t worker_id,
			 struct mb_worker_idle *out);

/* Records that the worker's idle command ran (until a job claims it). */
int mb_store_worker_idle_ran(struct mb_store *s, int64_t worker_id);

/* Records that the worker was rented for job_id alone (submit --rent).
 * MB_ENOENT when there is no such worker. */
int mb_store_worker_set_rent_job(struct mb_store *s, int64_t worker_id,
				 int64_t job_id);

/* Claims the giving back of a rented worker's instance (marks its idle
 * action as run): 0 for the one caller that claims it, MB_EBUSY when it
 * was claimed already (by a coordinator, a cancel, an idle check). */
int mb_store_worker_claim_give_back(struct mb_store *s, int64_t worker_id);

/* Raises job id's held time to seconds when it is less: a box rented for
 * the job alone is billed for all its life, boot and wait included. */
int mb_store_job_held_at_least(struct mb_store *s, int64_t id, double seconds);

/* Calls fn for the latest limit events of every job (progress and log
 * lines left out), oldest first. */
int mb_store_events_recent(struct mb_store *s, int limit,
			   int (*fn)(int64_t job, const char *step, int64_t at_ms,
				     const char *type, const char *data,
				     void *ctx),
			   void *ctx);

/* Reads the newest event of job id of the given type: its step and data.
 * MB_ENOENT when there is none. */
int mb_store_event_last(struct mb_store *s, int64_t id, const char *type,
			char *step, size_t step_cap, char *data, size_t cap);

#endif
