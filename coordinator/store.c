/* store: SQLite job database with migrations. */
#include "coordinator/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/text.h"

extern const char *const mb_migrations[];

struct mb_store {
	sqlite3 *db;
	int full;	/* opened read-only: the disk is full */
};

int mb_store_home(char *out, size_t cap)
{
	const char *h = getenv("MIBERA_HOME"), *x = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");
	int n;

	if (h != NULL && *h != '\0')
		n = snprintf(out, cap, "%s", h);
	else if (x != NULL && *x != '\0')
		n = snprintf(out, cap, "%s/mibera", x);
	else
		n = snprintf(out, cap, "%s/.local/share/mibera", home ? home : "/tmp");
	return n < 0 || (size_t)n >= cap ? MB_ETOOBIG : 0;
}

int mb_job_dir(const char *kind, int64_t id, char *out, size_t cap)
{
	char home[4096];
	int rc = mb_store_home(home, sizeof(home)), n;

	if (rc != 0)
		return rc;
	n = snprintf(out, cap, "%s/%s/job-%lld", home, kind, (long long)id);
	return n < 0 || (size_t)n >= cap ? MB_ETOOBIG : 0;
}

int mb_store_migrations(void)
{
	int n = 0;

	while (mb_migrations[n] != NULL)
		n++;
	return n;
}

static int user_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

int mb_store_schema_version(struct mb_store *s)
{
	return user_version(s->db);
}

/* Applies the migrations the database lacks, each in its own immediate
 * transaction that also sets user_version, so two processes opening a new
 * database at once apply each migration exactly once. */
static int migrate(sqlite3 *db, char *err, size_t errcap)
{
	int want = mb_store_migrations(), v;

	for (;;) {
		char *msg = NULL, pragma[64];

		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) {
			mb_seterr(err, errcap, "cannot lock the database: %s", msg);
			sqlite3_free(msg);
			return MB_EBUSY;
		}
		v = user_version(db);
		if (v < 0 || v > want) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			mb_seterr(err, errcap, "the database has schema version %d; this "
			       "mibera knows up to %d: use a newer mibera", v, want);
			return MB_EUNSUPPORTED;
		}
		if (v == want) {
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
			return 0;
		}
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
		if (sqlite3_exec(db, mb_migrations[v], NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(db, pragma, NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
			mb_seterr(err, errcap, "migration %d failed: %s", v + 1,
			       msg ? msg : "?");
			sqlite3_free(msg);
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return MB_EIO;
		}
	}
}

/* Opens path read-only as an immutable file: what was checkpointed into
 * it, without the WAL. */
static int open_full(struct mb_store *s, const char *path)
{
	char uri[4400];
	size_t o = 0;
	const char *p;

	o = (size_t)snprintf(uri, sizeof(uri), "file:");
	for (p = path; *p && o + 4 < sizeof(uri); p++) {
		/* the path as a URI: the few characters that mean something */
		if (*p == '?' || *p == '#' || *p == '%')
			o += (size_t)snprintf(uri + o, sizeof(uri) - o, "%%%02X",
					      (unsigned char)*p);
		else
			uri[o++] = *p;
	}
	snprintf(uri + o, sizeof(uri) - o, "?immutable=1");
	if (sqlite3_open_v2(uri, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI |
			    SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK ||
	    sqlite3_exec(s->db, "SELECT count(*) FROM jobs", NULL, NULL, NULL) !=
		    SQLITE_OK) {
		sqlite3_close(s->db);
		s->db = NULL;
		return MB_EIO;
	}
	s->full = 1;
	return 0;
}

int mb_store_open(const char *path, struct mb_store **out, char *err,
		  size_t errcap)
{
	char home[4300], def[4200], *slash;
	struct mb_store *s;
	int fd, rc;

	*out = NULL;
	if (path == NULL) {
		if (mb_store_home(home, 4096) != 0)
			return MB_ETOOBIG;
		snprintf(def, sizeof(def), "%.4096s/jobs.db", home);
		path = def;
	}
	snprintf(home, sizeof(home), "%s", path);
	slash = strrchr(home, '/');
	if (slash != NULL && slash != home) {
		*slash = '\0';
		rc = mb_mkdir_p(home, 0700);
		if (rc != 0) {
			mb_seterr(err, errcap, "cannot create '%s': %s", home,
			       mb_strerror(rc));
			return rc;
		}
	}
	/* created 0600 before SQLite sees it (its -wal and -shm files copy
	 * the mode); an existing file is never opened here: closing a
	 * descriptor drops every POSIX lock this process holds on the file,
	 * the locks of its other connections too, and another process that
	 * then thinks itself the last reader deletes the WAL under them */
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno != EEXIST) {
		rc = mb_err_from_errno(errno);
		mb_seterr(err, errcap, "cannot open '%s': %s", path, strerror(errno));
		return rc;
	}
	if (fd >= 0)
		close(fd);
	s = mb_calloc(1, sizeof(*s));
	if (s == NULL)
		return MB_ENOMEM;
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK) {
		mb_seterr(err, errcap, "cannot open the database '%s': %s", path,
		       s->db ? sqlite3_errmsg(s->db) : "out of memory");
		mb_store_close(s);
		return MB_EIO;
	}
	sqlite3_busy_timeout(s->db, 10000);
	if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; "
			 "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
		int ext = sqlite3_extended_errcode(s->db);
		uint64_t avail = UINT64_MAX;

		mb_seterr(err, errcap, "cannot set up '%s': %s", path,
		       sqlite3_errmsg(s->db));
		sqlite3_close(s->db);
		s->db = NULL;
		/* a full disk: the WAL's index cannot be made, so nothing can
		 * be read either. Read the file as it stands (as of its last
		 * checkpoint), read-only, and say so */
		if (((ext & 0xff) == SQLITE_IOERR || (ext & 0xff) == SQLITE_FULL) &&
		    mb_fs_free_space(home, &avail) == 0 && avail < (1u << 20) &&
		    open_full(s, path) == 0) {
			*out = s;
			return 0;
		}
		mb_store_close(s);
		return MB_EIO;
	}
	{
		/* the WAL and its index stay when the last connection closes,
		 * so a later open on a full disk finds them made */
		int on = 1;

		sqlite3_file_control(s->db, "main", SQLITE_FCNTL_PERSIST_WAL, &on);
	}
	rc = migrate(s->db, err, errcap);
	if (rc != 0) {
		mb_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

const char *mb_store_errmsg(struct mb_store *s)
{
	return s != NULL && s->db != NULL ? sqlite3_errmsg(s->db) : "no database";
}

int mb_store_check(struct mb_store *s, char *err, size_t errcap)
{
	sqlite3_stmt *st = NULL;
	const char *what = NULL;
	int rc;

	if (sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL) !=
	    SQLITE_OK) {
		mb_seterr(err, errcap, "the job database '%s' cannot be read: %s",
			  sqlite3_db_filename(s->db, "main"), sqlite3_errmsg(s->db));
		return MB_EIO;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		what = (const char *)sqlite3_column_text(st, 0);
	if (rc == SQLITE_ROW && what != NULL && strcmp(what, "ok") == 0) {
		sqlite3_finalize(st);
		return 0;
	}
	mb_seterr(err, errcap, "the job database '%s' is damaged (%s); move it "
		  "aside and restore a copy, or try `sqlite3 %s .recover`",
		  sqlite3_db_filename(s->db, "main"),
		  what != NULL ? what : sqlite3_errmsg(s->db),
		  sqlite3_db_filename(s->db, "main"));
	sqlite3_finalize(st);
	return MB_EIO;
}

int mb_store_full(const struct mb_store *s)
{
	return s->full;
}

void mb_store_close(struct mb_store *s)
{
	if (s == NULL)
		return;
	sqlite3_close(s->db);
	free(s);
}

/* --- workers --- */

static const char *opt(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}

static void col(sqlite3_stmt *st, int i, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	size_t n = t ? (size_t)sqlite3_column_bytes(st, i) : 0;

	/* cut to the buffer, as snprintf would; the rows of a big queue are
	 * read by the thousand */
	if (n >= cap)
		n = cap - 1;
	if (n > 0)
		memcpy(out, t, n);
	out[n] = '\0';
}

#define WORKER_COLS "id, name, target, dir, key_path, host_key, fingerprint, " \
		    "agent_path, cost_per_hour, state, hello, checked_at, created_at, " \
		    "idle_command, idle_after_s, max_jobs, last_active_at, idle_ran_at, " \
		    "backend, provider, instance_id, rented_at, max_hours, rent_job_id"

static void read_worker(sqlite3_stmt *st, struct mb_worker_row *w)
{
	memset(w, 0, sizeof(*w));
	w->id = sqlite3_column_int64(st, 0);
	col(st, 1, w->name, sizeof(w->name));
	col(st, 2, w->target, sizeof(w->target));
	col(st, 3, w->dir, sizeof(w->dir));
	col(st, 4, w->key_path, sizeof(w->key_path));
	col(st, 5, w->host_key, sizeof(w->host_key));
	col(st, 6, w->fingerprint, sizeof(w->fingerprint));
	col(st, 7, w->agent_path, sizeof(w->agent_path));
	w->cost_per_hour = sqlite3_column_double(st, 8);
	col(st, 9, w->state, sizeof(w->state));
	col(st, 10, w->hello, sizeof(w->hello));
	w->checked_at = sqlite3_column_int64(st, 11);
	w->created_at = sqlite3_column_int64(st, 12);
	col(st, 13, w->idle_command, sizeof(w->idle_command));
	w->idle_after_s = sqlite3_column_int64(st, 14);
	w->max_jobs = sqlite3_column_int(st, 15);
	w->last_active_at = sqlite3_column_int64(st, 16);
	w->idle_ran_at = sqlite3_column_int64(st, 17);
	col(st, 18, w->backend, sizeof(w->backend));
	col(st, 19, w->provider, sizeof(w->provider));
	col(st, 20, w->instance_id, sizeof(w->instance_id));
	w->rented_at = sqlite3_column_int64(st, 21);
	w->max_hours = sqlite3_column_double(st, 22);
	w->rent_job_id = sqlite3_column_int64(st, 23);
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT)
		 : sqlite3_bind_null(st, i);
}

/* Binds a message that may hold a worker's words (an error) with its
 * control characters made '?', so no reader prints an escape sequence. */
static int bind_printable(sqlite3_stmt *st, int i, const char *s)
{
	char *copy;

	if (s == NULL)
		return sqlite3_bind_null(st, i);
	copy = mb_strdup(s);
	if (copy == NULL)
		return SQLITE_NOMEM;
	mb_sanitize(copy, 1);
	return sqlite3_bind_text(st, i, copy, -1, free);
}

int mb_store_worker_add(struct mb_store *s, struct mb_worker_row *w)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO workers (name, target, dir, key_path, "
			       "host_key, fingerprint, agent_path, cost_per_hour, "
			       "created_at, idle_command, idle_after_s, max_jobs, "
			       "provider, instance_id, rented_at, max_hours) "
			       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	w->created_at = (int64_t)time(NULL);
	bind_text(st, 1, w->name);
	bind_text(st, 2, w->target);
	bind_text(st, 3, w->dir);
	bind_text(st, 4, opt(w->key_path));
	bind_text(st, 5, opt(w->host_key));
	bind_text(st, 6, opt(w->fingerprint));
	bind_text(st, 7, opt(w->agent_path));
	sqlite3_bind_double(st, 8, w->cost_per_hour);
	sqlite3_bind_int64(st, 9, w->created_at);
	bind_text(st, 10, opt(w->idle_command));
	sqlite3_bind_int64(st, 11, w->idle_after_s);
	sqlite3_bind_int(st, 12, w->max_jobs > 0 ? w->max_jobs : 1);
	bind_text(st, 13, opt(w->provider));
	bind_text(st, 14, opt(w->instance_id));
	sqlite3_bind_int64(st, 15, w->rented_at);
	sqlite3_bind_double(st, 16, w->max_hours);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT)
		return MB_EEXIST;
	if (rc != SQLITE_DONE)
		return MB_EIO;
	w->id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

int mb_store_worker_get(struct mb_store *s, const char *name,
			struct mb_worker_row *w)
{
	sqlite3_stmt *st;
	int rc;

	/* a removed worker is history, not a worker */
	if (sqlite3_prepare_v2(s->db, "SELECT " WORKER_COLS " FROM workers "
			       "WHERE name = ? AND removed_at IS NULL", -1, &st,
			       NULL) != SQLITE_OK)
		return MB_EIO;
	bind_text(st, 1, name);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_worker(st, w);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? MB_ENOENT : MB_EIO;
}

int mb_store_worker_list(struct mb_store *s,
			 int (*fn)(const struct mb_worker_row *w, void *ctx),
			 void *ctx)
{
	struct mb_worker_row *w;
	sqlite3_stmt *st;
	int rc = 0, r;

	w = mb_malloc(sizeof(*w));
	if (w == NULL)
		return MB_ENOMEM;
	if (sqlite3_prepare_v2(s->db, "SELECT " WORKER_COLS " FROM workers "
			       "WHERE removed_at IS NULL ORDER BY name", -1, &st,
			       NULL) != SQLITE_OK) {
		free(w);
		return MB_EIO;
	}
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		read_worker(st, w);
		rc = fn(w, ctx);
		if (rc != 0)
			break;
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = MB_EIO;
	sqlite3_finalize(st);
	free(w);
	return rc;
}

/* How many jobs not finished use the worker called name, or -1. */
static int worker_unfinished(struct mb_store *s, const char *name)
{
	sqlite3_stmt *st;
	int n = -1;

	if (sqlite3_prepare_v2(s->db,
			       "SELECT count(*) FROM jobs j JOIN workers w ON "
			       "j.worker_id = w.id WHERE w.name = ? AND j.state "
			       "NOT IN ('succeeded','failed','cancelled')",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	bind_text(st, 1, name);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

int mb_store_worker_unfinished(struct mb_store *s, const char *name, int *n)
{
	*n = worker_unfinished(s, name);
	return *n < 0 ? MB_EIO : 0;
}

int mb_store_worker_update(struct mb_store *s, const char *name,
			   const struct mb_worker_row *w, int moved)
{
	sqlite3_stmt *st;
	int rc;

	if (moved) {
		int n = worker_unfinished(s, name);

		if (n < 0)
			return MB_EIO;
		if (n > 0)
			return MB_EBUSY;
	}
	if (sqlite3_prepare_v2(s->db,
			       "UPDATE workers SET target = ?, dir = ?, key_path = ?, "
			       "host_key = ?, fingerprint = ?, agent_path = ?, "
			       "cost_per_hour = ?, idle_command = ?, idle_after_s = ?, "
			       "max_jobs = ? WHERE name = ? AND removed_at IS NULL",
			       -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	bind_text(st, 1, w->target);
	bind_text(st, 2, w->dir);
	bind_text(st, 3, opt(w->key_path));
	bind_text(st, 4, opt(w->host_key));
	bind_text(st, 5, opt(w->fingerprint));
	bind_text(st, 6, opt(w->agent_path));
	sqlite3_bind_double(st, 7, w->cost_per_hour);
	bind_text(st, 8, opt(w->idle_command));
	sqlite3_bind_int64(st, 9, w->idle_after_s);
	sqlite3_bind_int(st, 10, w->max_jobs > 0 ? w->max_jobs : 1);
	bind_text(st, 11, name);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return MB_EIO;
	return sqlite3_changes(s->db) == 1 ? 0 : MB_ENOENT;
}

int mb_store_worker_remove(struct mb_store *s, const char *name)
{
	sqlite3_stmt *st;
	int rc, busy = 0;

	if (sqlite3_prepare_v2(s->db,
			       "SELECT count(*) FROM jobs j JOIN workers w ON "
			       "j.worker_id = w.id WHERE w.name = ? AND j.state "
			       "NOT IN ('succeeded','failed','cancelled')",
			       -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	bind_text(st, 1, name);
	if (sqlite3_step(st) == SQLITE_ROW)
		busy = sqlite3_column_int(st, 0) > 0;
	sqlite3_finalize(st);
	if (busy)
		return MB_EBUSY;
	/* one that ran jobs stays, aside, for their history; one that did
	 * not goes */
	if (sqlite3_prepare_v2(s->db,
			       "UPDATE workers SET removed_at = ?, name = "
			       "substr(name, 1, 48) || '~' || id WHERE name = ? AND "
			       "EXISTS (SELECT 1 FROM jobs WHERE worker_id = "
			       "workers.id)", -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, (int64_t)time(NULL));
	bind_text(st, 2, name);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return MB_EIO;
	if (sqlite3_changes(s->db) == 1)
		return 0;
	if (sqlite3_prepare_v2(s->db, "DELETE FROM workers WHERE name = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return MB_EIO;
	bind_text(st, 1, name);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return MB_EIO;
	return sqlite3_changes(s->db) == 1 ? 0 : MB_ENOENT;
}

int mb_store_worker_checked(struct mb_store *s, const char *name,
			    const char *hello, const char *host_key,
			    const char *fingerprint)
{
	sqlite3_stmt *st;
	cJSON *doc = hello ? mb_json_parse(hello, strlen(hello)) : NULL;
	const char *backend = cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(doc, "backend"));
	char kept[sizeof(((struct mb_worker_row *)0)->backend)];
	int rc, has = backend != NULL;

	/* the worker's words, cut to what a row keeps; an agent too old to
	 * say leaves it NULL (unknown), not the last one's */
	if (has)
		snprintf(kept, sizeof(kept), "%s", backend);
	cJSON_Delete(doc);
	if (sqlite3_prepare_v2(s->db,
			       "UPDATE workers SET hello = ?, checked_at = ?, "
			       "host_key = coalesce(?, host_key), "
			       "fingerprint = coalesce(?, fingerprint), "
			       "backend = ? WHERE name = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	bind_text(st, 1, hello);
	sqlite3_bind_int64(st, 2, (int64_t)time(NULL));
	bind_text(st, 3, opt(host_key));
	bind_text(st, 4, opt(fingerprint));
	if (has)
		bind_printable(st, 5, kept);
	else
		sqlite3_bind_null(st, 5);
	bind_text(st, 6, name);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return MB_EIO;
	return sqlite3_changes(s->db) == 1 ? 0 : MB_ENOENT;
}

/* --- jobs --- */

const char *const mb_job_steps[] = {
	"preflight", "fetch", "convert", "imatrix", "quantize", "fidelity",
	"manifest", "pull", "smoke", "push", "ollama", "cleanup", NULL,
};

#define JOB_COLS "j.id, j.source, j.revision, j.commit_sha, j.worker_id, " \
		 "w.name, j.quants, j.layout, j.outtype, j.smoke, "        \
		 "j.notify_url, j.state, j.error, j.attempts, "            \
		 "j.next_try_at, j.held_seconds, j.created_at, "           \
		 "j.started_at, j.finished_at, w.cost_per_hour, j.pull_f16, " \
		 "j.imatrix, j.fidelity, j.push_repo, j.push_private, " \
		 "j.ollama_name, j.converter, j.split_max_size"

static void read_job(sqlite3_stmt *st, struct mb_job_row *j)
{
	memset(j, 0, sizeof(*j));
	j->id = sqlite3_column_int64(st, 0);
	col(st, 1, j->source, sizeof(j->source));
	col(st, 2, j->revision, sizeof(j->revision));
	col(st, 3, j->commit_sha, sizeof(j->commit_sha));
	j->worker_id = sqlite3_column_int64(st, 4);
	col(st, 5, j->worker, sizeof(j->worker));
	col(st, 6, j->quants, sizeof(j->quants));
	col(st, 7, j->layout, sizeof(j->layout));
	col(st, 8, j->outtype, sizeof(j->outtype));
	j->smoke = sqlite3_column_int(st, 9);
	col(st, 10, j->notify_url, sizeof(j->notify_url));
	col(st, 11, j->state, sizeof(j->state));
	col(st, 12, j->error, sizeof(j->error));
	j->attempts = sqlite3_column_int(st, 13);
	j->next_try_at = sqlite3_column_int64(st, 14);
	j->held_seconds = sqlite3_column_double(st, 15);
	j->created_at = sqlite3_column_int64(st, 16);
	j->started_at = sqlite3_column_int64(st, 17);
	j->finished_at = sqlite3_column_int64(st, 18);
	j->cost_per_hour = sqlite3_column_double(st, 19);
	j->pull_f16 = sqlite3_column_int(st, 20);
	col(st, 21, j->imatrix, sizeof(j->imatrix));
	j->fidelity = sqlite3_column_int(st, 22);
	col(st, 23, j->push_repo, sizeof(j->push_repo));
	j->push_private = sqlite3_column_int(st, 24);
	col(st, 25, j->ollama_name, sizeof(j->ollama_name));
	col(st, 26, j->converter, sizeof(j->converter));
	if (j->converter[0] == '\0')
		snprintf(j->converter, sizeof(j->converter), "mibera");
	j->split_max_size = (uint64_t)sqlite3_column_int64(st, 27);
}

static int exec_simple(struct mb_store *s, const char *sql)
{
	return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : MB_EIO;
}

/* Ends the transaction BEGIN started: commits when rc is 0, else rolls
 * back. A commit that fails (a full disk) is rolled back too and turns
 * rc into an error, so no caller goes on as if it had been written. */
static int end_tx(struct mb_store *s, int rc)
{
	if (rc == 0) {
		if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
			return 0;
		rc = MB_EIO;
	}
	/* a write that failed for want of space says so, wherever in the
	 * transaction it failed */
	if (rc == MB_EIO && (sqlite3_extended_errcode(s->db) & 0xff) == SQLITE_FULL)
		rc = MB_ENOSPC;
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int mb_store_job_overrides(struct mb_store *s, int64_t id, char *out,
			   size_t cap)
{
	sqlite3_stmt *st;
	int rc = MB_EIO;

	out[0] = '\0';
	if (sqlite3_prepare_v2(s->db, "SELECT overrides FROM jobs WHERE id = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, id);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW: {
		const unsigned char *t = sqlite3_column_text(st, 0);
		size_t n = (size_t)sqlite3_column_bytes(st, 0);

		rc = 0;
		if (t != NULL && n >= cap)
			rc = MB_ETOOBIG;
		else if (t != NULL)
			memcpy(out, t, n + 1);
		break;
	}
	case SQLITE_DONE:
		rc = MB_ENOENT;
		break;
	}
	sqlite3_finalize(st);
	return rc;
}

int mb_store_job_add(struct mb_store *s, struct mb_job_row *j)
{
	sqlite3_stmt *st = NULL;
	int rc = MB_EIO, i;

	if (exec_simple(s, "BEGIN IMMEDIATE") != 0)
		return MB_EBUSY;
	j->created_at = (int64_t)time(NULL);
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO jobs (source, revision, worker_id, quants, "
			       "layout, outtype, smoke, notify_url, created_at, "
			       "pull_f16, overrides, imatrix, fidelity, push_repo, "
			       "push_private, ollama_name, converter, "
			       "split_max_size) VALUES "
			       "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
			       -1, &st,
			       NULL) != SQLITE_OK)
		goto out;
	bind_text(st, 1, j->source);
	bind_text(st, 2, opt(j->revision));
	sqlite3_bind_int64(st, 3, j->worker_id);
	bind_text(st, 4, j->quants);
	bind_text(st, 5, j->layout);
	bind_text(st, 6, j->outtype);
	sqlite3_bind_int(st, 7, j->smoke);
	bind_text(st, 8, opt(j->notify_url));
	sqlite3_bind_int64(st, 9, j->created_at);
	sqlite3_bind_int(st, 10, j->pull_f16);
	if (j->overrides != NULL && j->overrides[0] != '\0')
		sqlite3_bind_text(st, 11, j->overrides, -1, SQLITE_TRANSIENT);
	bind_text(st, 12, j->imatrix[0] ? j->imatrix : "auto");
	sqlite3_bind_int(st, 13, j->fidelity);
	bind_text(st, 14, opt(j->push_repo));
	sqlite3_bind_int(st, 15, j->push_private);
	bind_text(st, 16, opt(j->ollama_name));
	bind_text(st, 17, j->converter[0] ? j->converter : "mibera");
	sqlite3_bind_int64(st, 18, (sqlite3_int64)j->split_max_size);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	sqlite3_finalize(st);
	st = NULL;
	j->id = sqlite3_last_insert_rowid(s->db);
	if (sqlite3_prepare_v2(s->db, "INSERT INTO steps (job_id, name, seq) "
			       "VALUES (?,?,?)", -1, &st, NULL) != SQLITE_OK)
		goto out;
	for (i = 0; mb_job_steps[i] != NULL; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, j->id);
		bind_text(st, 2, mb_job_steps[i]);
		sqlite3_bind_int(st, 3, i);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	rc = end_tx(s, rc);
	return rc;
}

int mb_store_job_get(struct mb_store *s, int64_t id, struct mb_job_row *j)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "SELECT " JOB_COLS " FROM jobs j LEFT JOIN "
			       "workers w ON j.worker_id = w.id WHERE j.id = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_job(st, j);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? MB_ENOENT : MB_EIO;
}

/* Prepares sql (JOB_COLS rows; an optional ? bound to arg, when arg >= 0)
 * and calls fn for each row; stops at fn's first nonzero return. */
static int each_job(struct mb_store *s, const char *sql, int arg,
		    int (*fn)(const struct mb_job_row *j, void *ctx), void *ctx)
{
	struct mb_job_row *j = mb_malloc(sizeof(*j));
	sqlite3_stmt *st;
	int rc = 0, r;

	if (j == NULL)
		return MB_ENOMEM;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		free(j);
		return MB_EIO;
	}
	if (arg >= 0)
		sqlite3_bind_int(st, 1, arg);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		read_job(st, j);
		rc = fn(j, ctx);
		if (rc != 0)
			break;
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = MB_EIO;
	sqlite3_finalize(st);
	free(j);
	return rc;
}

int mb_store_job_list(struct mb_store *s,
		      int (*fn)(const struct mb_job_row *j, void *ctx), void *ctx)
{
	return each_job(s, "SELECT " JOB_COLS " FROM jobs j LEFT JOIN workers w ON "
			"j.worker_id = w.id ORDER BY j.id DESC", -1, fn, ctx);
}

int mb_store_job_list_recent(struct mb_store *s, int finished,
			     int (*fn)(const struct mb_job_row *j, void *ctx),
			     void *ctx)
{
	/* both halves come from the (state, id) index: a big history costs
	 * nothing here */
	return each_job(s, "SELECT " JOB_COLS " FROM jobs j LEFT JOIN workers w ON "
			"j.worker_id = w.id WHERE j.id IN (SELECT id FROM jobs "
			"WHERE state IN ('queued', 'running', 'waiting') UNION ALL "
			"SELECT id FROM (SELECT id FROM jobs WHERE state IN "
			"('succeeded', 'failed', 'cancelled') ORDER BY id DESC "
			"LIMIT ?)) ORDER BY j.id DESC", finished < 0 ? 0 : finished,
			fn, ctx);
}

double mb_job_cost(const struct mb_job_row *j)
{
	return j->cost_per_hour * j->held_seconds / 3600.0;
}

int mb_job_source_is_path(const char *source)
{
	return source[0] == '/' || source[0] == '.';
}

int mb_store_job_claim(struct mb_store *s, struct mb_job_row *j)
{
	sqlite3_stmt *st = NULL;
	int64_t id = 0;
	int rc = MB_ENOENT;

	if (exec_simple(s, "BEGIN IMMEDIATE") != 0)
		return MB_EBUSY;
	if (sqlite3_prepare_v2(s->db,
			       "SELECT j.id FROM jobs j JOIN workers w ON "
			       "j.worker_id = w.id AND w.removed_at IS NULL WHERE "
			       "(j.state = 'queued' OR "
			       "(j.state = 'waiting' AND j.next_try_at <= ?)) AND "
			       "(SELECT count(*) FROM jobs r WHERE r.worker_id = "
			       "j.worker_id AND r.state = 'running') < w.max_jobs "
			       "ORDER BY j.id LIMIT 1", -1, &st, NULL) != SQLITE_OK) {
		rc = MB_EIO;
		goto out;
	}
	sqlite3_bind_int64(st, 1, (int64_t)time(NULL));
	if (sqlite3_step(st) == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (id == 0)
		goto out;
	if (sqlite3_prepare_v2(s->db,
			       "UPDATE jobs SET state = 'running', attempts = "
			       "attempts + 1, started_at = coalesce(started_at, ?) "
			       "WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
		rc = MB_EIO;
		goto out;
	}
	sqlite3_bind_int64(st, 1, (int64_t)time(NULL));
	sqlite3_bind_int64(st, 2, id);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : MB_EIO;
	sqlite3_finalize(st);
	st = NULL;
	/* the worker is in use from now: its idle time starts again */
	if (rc == 0 &&
	    sqlite3_prepare_v2(s->db, "UPDATE workers SET last_active_at = ?, "
			       "idle_ran_at = NULL WHERE id = (SELECT worker_id "
			       "FROM jobs WHERE id = ?)", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (int64_t)time(NULL));
		sqlite3_bind_int64(st, 2, id);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : MB_EIO;
	}
out:
	sqlite3_finalize(st);
	rc = end_tx(s, rc);
	if (rc == 0)
		rc = mb_store_job_get(s, id, j);
	return rc;
}

int mb_store_job_wait(struct mb_store *s, int64_t id, int64_t delay_s,
		      const char *error)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "UPDATE jobs SET state = 'waiting', error = ?, "
			       "next_try_at = ? WHERE id = ? AND state = 'running'",
			       -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	bind_printable(st, 1, error);
	sqlite3_bind_int64(st, 2, (int64_t)time(NULL) + delay_s);
	sqlite3_bind_int64(st, 3, id);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : MB_EIO;
	sqlite3_finalize(st);
	return rc;
}

int mb_store_job_set_state(struct mb_store *s, int64_t id, const char *state,
			   const char *error)
{
	int fin = strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
		  strcmp(state, "cancelled") == 0;
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db,
			       "UPDATE jobs SET state = ?, error = ?, finished_at = "
			       "CASE WHEN ? THEN ? ELSE finished_at END WHERE id = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	bind_text(st, 1, state);
	bind_printable(st, 2, error);
	sqlite3_bind_int(st, 3, fin);
	sqlite3_bind_int64(st, 4, (int64_t)time(NULL));
	sqlite3_bind_int64(st, 5, id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return MB_EIO;
	if (fin && strcmp(state, "succeeded") != 0) {
		/* a job that ended will not resume: the partial files of its
		 * pull (up to full size) go, not the disk with them */
		char dir[4300];

		if (mb_job_dir("partial", id, dir, sizeof(dir)) == 0)
			mb_rmtree(dir);
	}
	return 0;
}

int mb_store_job_set_commit(struct mb_store *s, int64_t id, const char *commit)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "UPDATE jobs SET commit_sha = ? WHERE id = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	bind_text(st, 1, commit);
	sqlite3_bind_int64(st, 2, id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : MB_EIO;
}

int mb_store_job_add_held(struct mb_store *s, int64_t id, double seconds)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "UPDATE jobs SET held_seconds = held_seconds "
			       "+ ? WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_double(st, 1, seconds);
	sqlite3_bind_int64(st, 2, id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : MB_EIO;
}

#define STEP_COLS "name, seq, state, attempts, started_at, finished_at, " \
		  "result, error"

static void read_step(sqlite3_stmt *st, struct mb_step_row *r)
{
	memset(r, 0, sizeof(*r));
	col(st, 0, r->name, sizeof(r->name));
	r->seq = sqlite3_column_int(st, 1);
	col(st, 2, r->state, sizeof(r->state));
	r->attempts = sqlite3_column_int(st, 3);
	r->started_at = sqlite3_column_int64(st, 4);
	r->finished_at = sqlite3_column_int64(st, 5);
	col(st, 6, r->result, sizeof(r->result));
	col(st, 7, r->error, sizeof(r->error));
}

int mb_store_step_get(struct mb_store *s, int64_t id, const char *name,
		      struct mb_step_row *r)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "SELECT " STEP_COLS " FROM steps WHERE "
			       "job_id = ? AND name = ?", -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, name);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_step(st, r);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? MB_ENOENT : MB_EIO;
}

int mb_store_step_list(struct mb_store *s, int64_t id,
		       int (*fn)(const struct mb_step_row *st, void *ctx),
		       void *ctx)
{
	struct mb_step_row r;
	sqlite3_stmt *st;
	int rc = 0;

	if (sqlite3_prepare_v2(s->db, "SELECT " STEP_COLS " FROM steps WHERE "
			       "job_id = ? ORDER BY seq", -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		read_step(st, &r);
		rc = fn(&r, ctx);
		if (rc != 0)
			break;
	}
	sqlite3_finalize(st);
	return rc;
}

int mb_store_step_set(struct mb_store *s, int64_t id, const char *name,
		      const char *state, const char *result, const char *error)
{
	int running = strcmp(state, "running") == 0;
	int fin = strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
		  strcmp(state, "skipped") == 0;
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db,
			       "UPDATE steps SET state = ?, "
			       "attempts = attempts + ?, "
			       "started_at = CASE WHEN ? THEN ? ELSE started_at END, "
			       "finished_at = CASE WHEN ? THEN ? ELSE finished_at END, "
			       "result = coalesce(?, result), error = coalesce(?, error) "
			       "WHERE job_id = ? AND name = ?", -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	bind_text(st, 1, state);
	sqlite3_bind_int(st, 2, running);
	sqlite3_bind_int(st, 3, running);
	sqlite3_bind_int64(st, 4, (int64_t)time(NULL));
	sqlite3_bind_int(st, 5, fin);
	sqlite3_bind_int64(st, 6, (int64_t)time(NULL));
	bind_text(st, 7, result);
	bind_printable(st, 8, error);
	sqlite3_bind_int64(st, 9, id);
	bind_text(st, 10, name);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : MB_EIO;
}

/* One journal line as the protocol defines an event: a JSON object whose
 * "type" is a short name, with integral "seq" and "ms". */
static int event_line_ok(const char *p, size_t n, uint64_t *seq, uint64_t *ms,
			 char *type, size_t tcap)
{
	cJSON *doc = mb_json_parse(p, n);
	const char *t = NULL;
	int ok = cJSON_IsObject(doc) &&
		 mb_json_get_str(doc, "type", tcap - 1, &t) == 0 && *t != '\0' &&
		 mb_json_get_u64(doc, "seq", MB_JSON_MAX_INT, seq) == 0 &&
		 mb_json_get_u64(doc, "ms", MB_JSON_MAX_INT, ms) == 0;

	if (ok)
		snprintf(type, tcap, "%s", t);
	cJSON_Delete(doc);
	return ok;
}

int mb_store_step_events(struct mb_store *s, int64_t id, const char *name,
			 const char *lines, size_t len, const char *follow,
			 int64_t offset, char *err, size_t errcap)
{
	sqlite3_stmt *ins = NULL, *up = NULL;
	const char *p = lines, *end = lines + len;
	int rc = MB_EIO;

	if (exec_simple(s, "BEGIN IMMEDIATE") != 0) {
		mb_seterr(err, errcap, "cannot store events: %s",
			  sqlite3_errmsg(s->db));
		return MB_EBUSY;
	}
	if (sqlite3_prepare_v2(s->db, "INSERT INTO events (job_id, step, seq, at_ms, "
			       "type, data) VALUES (?,?,?,?,?,?)", -1, &ins,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->db, "INSERT INTO follows (job_id, wstep, offset) "
			       "VALUES (?,?,?) ON CONFLICT (job_id, wstep) DO "
			       "UPDATE SET offset = excluded.offset", -1, &up,
			       NULL) != SQLITE_OK)
		goto fail;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		uint64_t seq, ms;
		char type[64];

		/* a worker is hostile input: a line that is not an event
		 * fails the whole batch, and nothing of it is stored */
		if (!event_line_ok(p, n, &seq, &ms, type, sizeof(type))) {
			char shown[81];

			mb_printable_n(shown, sizeof(shown), p, n < 80 ? n : 80, 0);
			mb_seterr(err, errcap, "the worker sent a line that is not "
				  "an event (%s): \"%s%s\"", follow ? follow : name,
				  shown, n > 80 ? "..." : "");
			rc = MB_EPROTO;
			goto out;
		}
		sqlite3_reset(ins);
		sqlite3_bind_int64(ins, 1, id);
		bind_text(ins, 2, name);
		sqlite3_bind_int64(ins, 3, (int64_t)seq);
		sqlite3_bind_int64(ins, 4, (int64_t)ms);
		bind_text(ins, 5, type);
		sqlite3_bind_text(ins, 6, p, (int)n, SQLITE_TRANSIENT);
		if (sqlite3_step(ins) != SQLITE_DONE)
			goto fail;
		p += n + (nl != NULL);
	}
	if (follow != NULL) {
		sqlite3_bind_int64(up, 1, id);
		bind_text(up, 2, follow);
		sqlite3_bind_int64(up, 3, offset);
		if (sqlite3_step(up) != SQLITE_DONE)
			goto fail;
	}
	rc = 0;
	goto out;
fail:
	mb_seterr(err, errcap, "cannot store events: %s", sqlite3_errmsg(s->db));
out:
	sqlite3_finalize(ins);
	sqlite3_finalize(up);
	if (rc == 0 && (rc = end_tx(s, 0)) != 0) {
		mb_seterr(err, errcap, "cannot store events: %s", rc == MB_ENOSPC
			  ? "the disk holding the job database is full"
			  : "the database did not commit");
		return rc;
	}
	if (rc != 0)
		end_tx(s, rc);
	return rc;
}

int mb_store_follow_offset(struct mb_store *s, int64_t id, const char *wstep,
			   int64_t *offset)
{
	sqlite3_stmt *st;
	int rc;

	*offset = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT offset FROM follows WHERE job_id = ? "
			       "AND wstep = ?", -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, wstep);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*offset = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : MB_EIO;
}

/* Steps a prepared (id or job, step, at_ms, type, data) query, calling fn
 * for each row until it returns nonzero, and finalizes it. */
static int each_event(sqlite3_stmt *st,
		      int (*fn)(int64_t id, const char *step, int64_t at_ms,
				const char *type, const char *data, void *ctx),
		      void *ctx)
{
	int rc = 0;

	while (sqlite3_step(st) == SQLITE_ROW) {
		rc = fn(sqlite3_column_int64(st, 0),
			(const char *)sqlite3_column_text(st, 1),
			sqlite3_column_int64(st, 2),
			(const char *)sqlite3_column_text(st, 3),
			(const char *)sqlite3_column_text(st, 4), ctx);
		if (rc != 0)
			break;
	}
	sqlite3_finalize(st);
	return rc;
}

int mb_store_events(struct mb_store *s, int64_t id, int64_t after_id,
		    int (*fn)(int64_t event_id, const char *step, int64_t at_ms,
			      const char *type, const char *data, void *ctx),
		    void *ctx)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(s->db, "SELECT id, step, at_ms, type, data FROM "
			       "events WHERE job_id = ? AND id > ? ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, after_id);
	return each_event(st, fn, ctx);
}

int mb_store_artifact_add(struct mb_store *s, int64_t id, const char *name,
			  const char *type, uint64_t size, const char *sha256,
			  const char *path, const char *smoke)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO artifacts (job_id, name, type, size, "
			       "sha256, path, smoke) VALUES (?,?,?,?,?,?,?) ON "
			       "CONFLICT (job_id, name) DO UPDATE SET type = "
			       "excluded.type, size = excluded.size, sha256 = "
			       "excluded.sha256, path = excluded.path, smoke = "
			       "CASE WHEN excluded.smoke IS NOT NULL THEN "
			       "excluded.smoke WHEN artifacts.sha256 = "
			       "excluded.sha256 THEN artifacts.smoke END",
			       -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, name);
	bind_text(st, 3, type);
	sqlite3_bind_int64(st, 4, (int64_t)size);
	bind_text(st, 5, sha256);
	bind_text(st, 6, path);
	bind_text(st, 7, smoke);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : MB_EIO;
}

int mb_store_artifact_smoke_set(struct mb_store *s, int64_t id,
				const char *name, const char *sha256,
				const char *smoke)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "UPDATE artifacts SET smoke = ? WHERE "
			       "job_id = ? AND name = ? AND sha256 = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return MB_EIO;
	bind_text(st, 1, smoke);
	sqlite3_bind_int64(st, 2, id);
	bind_text(st, 3, name);
	bind_text(st, 4, sha256);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : MB_EIO;
}

int mb_store_artifact_smoke_get(struct mb_store *s, int64_t id,
				const char *name, const char *sha256,
				char **smoke)
{
	sqlite3_stmt *st;
	int rc = 0;

	*smoke = NULL;
	if (sqlite3_prepare_v2(s->db, "SELECT smoke FROM artifacts WHERE job_id "
			       "= ? AND name = ? AND sha256 = ? AND smoke IS NOT "
			       "NULL", -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, name);
	bind_text(st, 3, sha256);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		*smoke = mb_strdup((const char *)sqlite3_column_text(st, 0));
		if (*smoke == NULL)
			rc = MB_ENOMEM;
		break;
	case SQLITE_DONE:
		break;
	default:
		rc = MB_EIO;
	}
	sqlite3_finalize(st);
	return rc;
}

int mb_store_jobs_requeue_running(struct mb_store *s, int *n)
{
	*n = 0;
	if (exec_simple(s, "UPDATE jobs SET state = 'queued' WHERE state = "
			"'running'") != 0)
		return MB_EIO;
	*n = sqlite3_changes(s->db);
	return 0;
}

int mb_store_job_retry(struct mb_store *s, int64_t id)
{
	struct mb_job_row j;
	sqlite3_stmt *st;
	int rc;

	rc = mb_store_job_get(s, id, &j);
	if (rc != 0)
		return rc;
	if (strcmp(j.state, "failed") != 0 && strcmp(j.state, "cancelled") != 0)
		return MB_EBUSY;
	if (exec_simple(s, "BEGIN IMMEDIATE") != 0)
		return MB_EBUSY;
	rc = MB_EIO;
	if (sqlite3_prepare_v2(s->db, "UPDATE steps SET state = 'pending', error = "
			       "NULL WHERE job_id = ? AND state NOT IN ('done', "
			       "'skipped')", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : MB_EIO;
		sqlite3_finalize(st);
	}
	if (rc == 0 &&
	    sqlite3_prepare_v2(s->db, "UPDATE jobs SET state = 'queued', error = "
			       "NULL, finished_at = NULL WHERE id = ?", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : MB_EIO;
		sqlite3_finalize(st);
	}
	rc = end_tx(s, rc);
	return rc;
}

/* --- what the scheduler and the dashboard ask --- */

static int64_t query_i64(struct mb_store *s, const char *sql, int64_t a,
			 int *rc)
{
	sqlite3_stmt *st;
	int64_t v = 0;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		*rc = MB_EIO;
		return 0;
	}
	if (strchr(sql, '?') != NULL)
		sqlite3_bind_int64(st, 1, a);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else
		*rc = MB_EIO;
	sqlite3_finalize(st);
	return v;
}

int mb_store_jobs_unfinished(struct mb_store *s, int *n)
{
	int rc = 0;

	*n = (int)query_i64(s, "SELECT count(*) FROM jobs WHERE state IN "
			    "('queued', 'waiting', 'running')", 0, &rc);
	return rc;
}

int mb_store_worker_idle(struct mb_store *s, int64_t worker_id,
			 struct mb_worker_idle *out)
{
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->active = (int)query_i64(s, "SELECT count(*) FROM jobs WHERE "
				     "worker_id = ? AND state IN ('queued', "
				     "'waiting', 'running')", worker_id, &rc);
	/* artifacts made (manifest done) and not yet pulled and verified */
	out->unpulled = (int)query_i64(s, "SELECT count(*) FROM jobs j JOIN steps m "
				       "ON m.job_id = j.id AND m.name = 'manifest' "
				       "JOIN steps p ON p.job_id = j.id AND p.name = "
				       "'pull' WHERE j.worker_id = ? AND m.state = "
				       "'done' AND p.state != 'done'", worker_id, &rc);
	out->since = query_i64(s, "SELECT max(coalesce((SELECT max(finished_at) "
			       "FROM jobs WHERE worker_id = w.id), 0), "
			       "coalesce(w.last_active_at, 0), w.created_at) FROM "
			       "workers w WHERE w.id = ?", worker_id, &rc);
	return rc;
}

int mb_store_worker_idle_ran(struct mb_store *s, int64_t worker_id)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "UPDATE workers SET idle_ran_at = ? WHERE "
			       "id = ?", -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, (int64_t)time(NULL));
	sqlite3_bind_int64(st, 2, worker_id);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : MB_EIO;
	sqlite3_finalize(st);
	return rc;
}

int mb_store_worker_set_rent_job(struct mb_store *s, int64_t worker_id,
				  int64_t job_id)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "UPDATE workers SET rent_job_id = ? WHERE "
			       "id = ?", -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, job_id);
	sqlite3_bind_int64(st, 2, worker_id);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : MB_EIO;
	if (rc == 0 && sqlite3_changes(s->db) == 0)
		rc = MB_ENOENT;
	sqlite3_finalize(st);
	return rc;
}

int mb_store_worker_claim_give_back(struct mb_store *s, int64_t worker_id)
{
	sqlite3_stmt *st;
	int rc;

	/* one UPDATE decides: of a coordinator and a cancel racing, only
	 * one sees its row changed */
	if (sqlite3_prepare_v2(s->db, "UPDATE workers SET idle_ran_at = ? WHERE "
			       "id = ? AND coalesce(idle_ran_at, 0) = 0", -1, &st,
			       NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, (int64_t)time(NULL));
	sqlite3_bind_int64(st, 2, worker_id);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : MB_EIO;
	if (rc == 0 && sqlite3_changes(s->db) == 0)
		rc = MB_EBUSY;
	sqlite3_finalize(st);
	return rc;
}

int mb_store_job_held_at_least(struct mb_store *s, int64_t id, double seconds)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "UPDATE jobs SET held_seconds = max("
			       "held_seconds, ?) WHERE id = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_double(st, 1, seconds);
	sqlite3_bind_int64(st, 2, id);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : MB_EIO;
	sqlite3_finalize(st);
	return rc;
}

int mb_store_events_recent(struct mb_store *s, int limit,
			   int (*fn)(int64_t job, const char *step, int64_t at_ms,
				     const char *type, const char *data,
				     void *ctx),
			   void *ctx)
{
	sqlite3_stmt *st;

	/* newest first, read back to front for the caller */
	if (sqlite3_prepare_v2(s->db, "SELECT job_id, step, at_ms, type, data FROM "
			       "(SELECT * FROM events WHERE type NOT IN "
			       "('progress', 'log') ORDER BY id DESC LIMIT ?) "
			       "ORDER BY id", -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int(st, 1, limit);
	return each_event(st, fn, ctx);
}

int mb_store_event_last(struct mb_store *s, int64_t id, const char *type,
			char *step, size_t step_cap, char *data, size_t cap)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "SELECT step, data FROM events WHERE job_id "
			       "= ? AND type = ? ORDER BY id DESC LIMIT 1", -1, &st,
			       NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, type);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		col(st, 0, step, step_cap);
		col(st, 1, data, cap);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? MB_ENOENT : MB_EIO;
}

static int artifact_list(struct mb_store *s, int64_t id, const char *sql,
			 int (*fn)(const char *name, uint64_t size,
				   const char *sha256, const char *path,
				   const char *smoke, void *ctx),
			 void *ctx)
{
	sqlite3_stmt *st;
	int rc = 0;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *p = sqlite3_column_text(st, 3);
		const unsigned char *sm = sqlite3_column_text(st, 4);

		rc = fn((const char *)sqlite3_column_text(st, 0),
			(uint64_t)sqlite3_column_int64(st, 1),
			(const char *)sqlite3_column_text(st, 2),
			p ? (const char *)p : "", sm ? (const char *)sm : NULL,
			ctx);
		if (rc != 0)
			break;
	}
	sqlite3_finalize(st);
	return rc;
}

int mb_store_artifact_list(struct mb_store *s, int64_t id,
			   int (*fn)(const char *name, uint64_t size,
				     const char *sha256, const char *path,
				     const char *smoke, void *ctx),
			   void *ctx)
{
	return artifact_list(s, id, "SELECT name, size, sha256, path, smoke "
			     "FROM artifacts WHERE job_id = ? ORDER BY size", fn,
			     ctx);
}

int mb_store_artifact_list_by_name(struct mb_store *s, int64_t id,
				   int (*fn)(const char *name, uint64_t size,
					     const char *sha256,
					     const char *path,
					     const char *smoke, void *ctx),
				   void *ctx)
{
	return artifact_list(s, id, "SELECT name, size, sha256, path, smoke "
			     "FROM artifacts WHERE job_id = ? ORDER BY name", fn,
			     ctx);
}

int mb_store_job_totals(struct mb_store *s, struct mb_job_totals *t)
{
	sqlite3_stmt *st;
	int r;

	memset(t, 0, sizeof(*t));
	if (sqlite3_prepare_v2(s->db, "SELECT j.state, count(*), sum(j.held_seconds "
			       "* coalesce(w.cost_per_hour, 0)) FROM jobs j LEFT "
			       "JOIN workers w ON j.worker_id = w.id GROUP BY "
			       "j.state", -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(st, 0);
		int n = sqlite3_column_int(st, 1);

		t->jobs += n;
		t->cost += sqlite3_column_double(st, 2) / 3600.0;
		if (state == NULL)
			continue;
		if (strcmp(state, "queued") == 0)
			t->queued = n;
		else if (strcmp(state, "running") == 0)
			t->running = n;
		else if (strcmp(state, "waiting") == 0)
			t->waiting = n;
		else if (strcmp(state, "succeeded") == 0)
			t->succeeded = n;
		else if (strcmp(state, "failed") == 0)
			t->failed = n;
		else if (strcmp(state, "cancelled") == 0)
			t->cancelled = n;
	}
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? 0 : MB_EIO;
}

int mb_store_worker_cost(struct mb_store *s, int64_t worker_id, double *cost)
{
	sqlite3_stmt *st;
	int r;

	*cost = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT sum(j.held_seconds * w.cost_per_hour) "
			       "FROM jobs j JOIN workers w ON j.worker_id = w.id "
			       "WHERE w.id = ?", -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	sqlite3_bind_int64(st, 1, worker_id);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		*cost = sqlite3_column_double(st, 0) / 3600.0;
	sqlite3_finalize(st);
	return r == SQLITE_ROW ? 0 : MB_EIO;
}
