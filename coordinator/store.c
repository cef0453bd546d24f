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

extern const char *const mb_migrations[];

struct mb_store {
	sqlite3 *db;
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
	/* created 0600 before SQLite sees it; its -wal and -shm files copy
	 * the mode */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = mb_err_from_errno(errno);
		mb_seterr(err, errcap, "cannot open '%s': %s", path, strerror(errno));
		return rc;
	}
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
		mb_seterr(err, errcap, "cannot set up '%s': %s", path,
		       sqlite3_errmsg(s->db));
		mb_store_close(s);
		return MB_EIO;
	}
	rc = migrate(s->db, err, errcap);
	if (rc != 0) {
		mb_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
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

	snprintf(out, cap, "%s", t ? (const char *)t : "");
}

#define WORKER_COLS "id, name, target, dir, key_path, host_key, fingerprint, " \
		    "agent_path, cost_per_hour, state, hello, checked_at, created_at"

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
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT)
		 : sqlite3_bind_null(st, i);
}

int mb_store_worker_add(struct mb_store *s, struct mb_worker_row *w)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO workers (name, target, dir, key_path, "
			       "host_key, fingerprint, agent_path, cost_per_hour, "
			       "created_at) VALUES (?,?,?,?,?,?,?,?,?)",
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

	if (sqlite3_prepare_v2(s->db, "SELECT " WORKER_COLS " FROM workers "
			       "WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
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
			       "ORDER BY name", -1, &st, NULL) != SQLITE_OK) {
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
	int rc;

	if (sqlite3_prepare_v2(s->db,
			       "UPDATE workers SET hello = ?, checked_at = ?, "
			       "host_key = coalesce(?, host_key), "
			       "fingerprint = coalesce(?, fingerprint) WHERE name = ?",
			       -1, &st, NULL) != SQLITE_OK)
		return MB_EIO;
	bind_text(st, 1, hello);
	sqlite3_bind_int64(st, 2, (int64_t)time(NULL));
	bind_text(st, 3, opt(host_key));
	bind_text(st, 4, opt(fingerprint));
	bind_text(st, 5, name);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return MB_EIO;
	return sqlite3_changes(s->db) == 1 ? 0 : MB_ENOENT;
}
