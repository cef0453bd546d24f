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

#endif
