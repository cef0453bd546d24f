/* pull: one artifact, several verified streams, resumable. */
#include "coordinator/pull.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/manifest.h"
#include "common/readymap.h"
#include "common/sha256.h"
#include "coordinator/transport.h"

/* A chunk that arrives bad is fetched this many times in all. */
#define CHUNK_TRIES 3
#define MAX_STREAMS 16
#define RECORD_MAGIC "mibera-chunks 1"

struct pull {
	const struct mb_pull_opts *o;
	const struct mb_manifest *m;
	const char *remote;
	char part[4200], rec[4200];
	int fd;
	char *done;		/* '1': chunk verified and on disk */
	size_t head_len;	/* record header bytes before the flags */
	char *record;		/* header + flags, as written */
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* a chunk was marked or a stream ended */
	uint64_t next;		/* the next chunk a stream may take */
	int running;		/* streams still running */
	uint64_t verified;	/* bytes of chunks verified */
	uint64_t pending;	/* bytes of chunks in flight */
	uint64_t fetched, refetched;
	volatile int stop;	/* a stream failed: the others stop */
	int rc;			/* the first failure */
	char err[1024];
};

struct stream {
	struct pull *p;
	struct mb_transport *t;
	int own;		/* t was opened for this stream */
	unsigned reconnects;
	pthread_t th;
	int started;
};

/* Fails the pull (the first failure wins) and stops the other streams. */
static void pull_fail(struct pull *p, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void pull_fail(struct pull *p, int rc, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&p->mu);
	if (p->rc == 0) {
		p->rc = rc;
		va_start(ap, fmt);
		vsnprintf(p->err, sizeof(p->err), fmt, ap);
		va_end(ap);
	}
	p->stop = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* Called with p->mu held. */
static void report(struct pull *p)
{
	if (p->o->progress != NULL)
		p->o->progress(p->verified + p->pending, p->m->size, p->fetched,
			       p->o->progress_ctx);
}

/* --- the record of verified chunks --- */

/* The record's first line: the bytes and the cut it is a record of. */
static void record_head(const struct mb_manifest *m, char *head, size_t cap)
{
	char hex[MB_SHA256_HEX];

	mb_sha256_hex(m->sha256, hex);
	snprintf(head, cap, RECORD_MAGIC " %s %llu %llu\n", hex,
		 (unsigned long long)m->chunk_size,
		 (unsigned long long)m->nchunks);
}

static int record_init(struct pull *p)
{
	char head[200], *old = NULL;
	size_t n = 0;

	record_head(p->m, head, sizeof(head));
	p->head_len = strlen(head);
	p->record = mb_malloc(p->head_len + p->m->nchunks + 1);
	if (p->record == NULL)
		return MB_ENOMEM;
	memcpy(p->record, head, p->head_len);
	p->done = p->record + p->head_len;
	memset(p->done, '0', p->m->nchunks);
	/* an earlier pull's record counts only for these very bytes */
	if (mb_read_file(p->rec, p->head_len + p->m->nchunks, &old, &n) == 0 &&
	    n == p->head_len + p->m->nchunks &&
	    memcmp(old, head, p->head_len) == 0)
		memcpy(p->done, old + p->head_len, p->m->nchunks);
	free(old);
	return 0;
}

/* Marks chunk i verified; called with p->mu held. */
static int record_mark(struct pull *p, uint64_t i)
{
	p->done[i] = '1';
	pthread_cond_broadcast(&p->cv);
	return mb_atomic_write(p->rec, p->record, p->head_len + p->m->nchunks,
			       0644);
}

/* Chunks of DEST.part that the record does not list but whose bytes are
 * there (a pull ahead or a pull killed before its record left them) are
 * hashed: those that match the manifest are kept. */
static void part_check(struct pull *p)
{
	enum { PIECE = 4 << 20 };
	int fd = open(p->part, O_RDONLY | O_CLOEXEC), any = 0;
	uint64_t i, off, len, at;
	struct stat sb;
	char *buf = NULL;

	if (fd < 0)
		return;
	if (fstat(fd, &sb) != 0 || (buf = mb_malloc(PIECE)) == NULL)
		goto out;
	for (i = 0; i < p->m->nchunks; i++) {
		uint8_t d[MB_SHA256_LEN];
		struct mb_sha256 h;
		size_t got = 0;
		int ok = 1;

		mb_manifest_chunk(p->m, i, &off, &len);
		if (p->done[i] == '1' || off + len > (uint64_t)sb.st_size)
			continue;
		if (mb_sha256_init(&h) != 0)
			break;
		for (at = 0; ok && at < len; at += got) {
			size_t want = len - at < PIECE ? (size_t)(len - at) : PIECE;

			ok = mb_pread_full(fd, buf, want, off + at, &got) == 0 &&
			     got == want && mb_sha256_update(&h, buf, got) == 0;
		}
		if (ok && mb_sha256_final(&h, d) == 0 &&
		    memcmp(d, p->m->chunks[i], MB_SHA256_LEN) == 0) {
			p->done[i] = '1';
			any = 1;
		}
		mb_sha256_release(&h);
	}
	if (any)
		mb_atomic_write(p->rec, p->record, p->head_len + p->m->nchunks,
				0644);
out:
	free(buf);
	close(fd);
}

/* --- one stream --- */

struct chunk_sink {
	struct pull *p;
	struct mb_sha256 h;
	int rc;
};

static int on_piece(const void *data, size_t n, uint64_t off, void *ctx)
{
	struct chunk_sink *c = ctx;
	struct pull *p = c->p;

	if (p->stop)
		return MB_ECANCELLED;
	c->rc = mb_sha256_update(&c->h, data, n);
	if (c->rc == 0)
		c->rc = mb_pwrite_all(p->fd, data, n, off);
	if (c->rc != 0)
		return c->rc;
	/* the fsync that ends the chunk finds little left to do, and the
	 * stream is not held up by it */
	mb_write_start(p->fd, off, n);
	pthread_mutex_lock(&p->mu);
	p->fetched += n;
	p->pending += n;
	report(p);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/* Fetches chunk i until it matches the manifest (CHUNK_TRIES at most). */
static int fetch_chunk(struct stream *s, uint64_t i)
{
	struct pull *p = s->p;
	struct chunk_sink c = { .p = p };
	uint8_t digest[MB_SHA256_LEN];
	uint64_t off, len, got;
	int rc = 0, tries;

	mb_manifest_chunk(p->m, i, &off, &len);
	for (tries = 1; tries <= CHUNK_TRIES; tries++) {
		c.rc = 0;
		rc = mb_sha256_init(&c.h);
		if (rc != 0)
			break;
		rc = mb_transport_read_stream(s->t, p->remote, off, len, on_piece,
					      &c, &got);
		if (rc == 0)
			rc = mb_sha256_final(&c.h, digest);
		mb_sha256_release(&c.h);
		pthread_mutex_lock(&p->mu);
		p->pending -= got; /* counted again below once verified */
		pthread_mutex_unlock(&p->mu);
		if (rc == 0 && got != len) {
			pull_fail(p, MB_EFORMAT, "'%s' on the worker is shorter than "
				  "its manifest says (%llu bytes at chunk %llu)",
				  p->remote, (unsigned long long)(off + got),
				  (unsigned long long)i);
			return MB_EFORMAT;
		}
		if (rc != 0)
			break;
		if (memcmp(digest, p->m->chunks[i], MB_SHA256_LEN) == 0)
			break;
		/* arrived bad: fetch it again */
		rc = MB_ECHECKSUM;
		pthread_mutex_lock(&p->mu);
		p->refetched += len;
		pthread_mutex_unlock(&p->mu);
	}
	if (rc == MB_ECHECKSUM) {
		pull_fail(p, rc, "chunk %llu of '%s' (bytes %llu-%llu) did not "
			  "match the worker's manifest in %d tries: the file on "
			  "the worker changed or is damaged; run the manifest "
			  "step again", (unsigned long long)i, p->m->name,
			  (unsigned long long)off,
			  (unsigned long long)(off + len - 1), CHUNK_TRIES);
		return rc;
	}
	if (rc == MB_ECANCELLED && p->stop)
		return rc; /* another stream failed */
	if (rc != 0) {
		if (c.rc != 0)
			pull_fail(p, rc, "cannot write '%s': %s", p->part,
				  mb_strerror(rc));
		else
			pull_fail(p, rc, "%s", mb_transport_errmsg(s->t));
		return rc;
	}
	/* on disk before the record says so */
	rc = mb_fsync(p->fd);
	pthread_mutex_lock(&p->mu);
	if (rc == 0)
		rc = record_mark(p, i);
	if (rc == 0) {
		p->verified += len;
		report(p);
	}
	pthread_mutex_unlock(&p->mu);
	if (rc != 0)
		pull_fail(p, rc, "cannot write '%s': %s", p->part, mb_strerror(rc));
	return rc;
}

/* Takes the next chunk not yet verified, in file order; 0 when none is
 * left or the pull stopped. */
static int take(struct pull *p, uint64_t *i)
{
	int got = 0;

	pthread_mutex_lock(&p->mu);
	while (!p->stop && p->next < p->m->nchunks && p->done[p->next] == '1')
		p->next++;
	if (!p->stop && p->next < p->m->nchunks) {
		*i = p->next++;
		got = 1;
	}
	pthread_mutex_unlock(&p->mu);
	return got;
}

static void *stream_main(void *arg)
{
	struct stream *s = arg;
	struct pull *p = s->p;
	uint64_t i;

	if (s->t == NULL) {
		char err[512];

		/* a stream that cannot connect leaves the work to the others */
		if (p->o->open(p->o->open_ctx, &s->t, err, sizeof(err)) == 0)
			s->own = 1;
	}
	while (s->t != NULL && take(p, &i))
		if (fetch_chunk(s, i) != 0)
			break;
	if (s->t != NULL)
		s->reconnects = mb_transport_reconnects(s->t);
	pthread_mutex_lock(&p->mu);
	p->running--;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* --- the file --- */

/* How far behind the whole file's hash a pull with drop_behind keeps the
 * bytes it hashed in the page cache. */
#define DROP_LAG (8ull << 20)

/* The whole file's sha256, hashed chunk by chunk from the .part as the
 * verified part grows from the start, while the streams go on: when the
 * last chunk lands little is left to hash. Returns 0 with the digest, or
 * MB_ECANCELLED when the pull stopped first. */
static int follow_hash(struct pull *p, uint8_t digest[MB_SHA256_LEN])
{
	struct mb_sha256 h;
	uint64_t i, off, len, at;
	char *buf = NULL;
	size_t piece = 4u << 20, got;
	int rc;

	rc = mb_sha256_init(&h);
	if (rc != 0)
		return rc;
	buf = mb_malloc(piece);
	if (buf == NULL)
		rc = MB_ENOMEM;
	for (i = 0; rc == 0 && i < p->m->nchunks; i++) {
		pthread_mutex_lock(&p->mu);
		while (!p->stop && p->done[i] != '1' && p->running > 0)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->done[i] != '1')
			rc = MB_ECANCELLED;
		pthread_mutex_unlock(&p->mu);
		mb_manifest_chunk(p->m, i, &off, &len);
		for (at = 0; rc == 0 && at < len; at += got) {
			size_t want = len - at < piece ? (size_t)(len - at) : piece;

			rc = mb_pread_full(p->fd, buf, want, off + at, &got);
			if (rc == 0 && got != want)
				rc = MB_EIO; /* the .part shrank under us */
			if (rc == 0)
				rc = mb_sha256_update(&h, buf, got);
			if (rc == 0 && p->o->drop_behind)
				mb_write_behind(p->fd, off + at, got, DROP_LAG);
		}
	}
	if (rc == 0)
		rc = mb_sha256_final(&h, digest);
	mb_sha256_release(&h);
	free(buf);
	return rc;
}

int mb_pull_file(const struct mb_pull_opts *o, const char *remote,
		 const struct mb_manifest *m, const char *dest,
		 struct mb_pull_stats *st, char *err, size_t errcap)
{
	struct pull p;
	struct stream ss[MAX_STREAMS];
	struct mb_pull_stats local;
	uint8_t digest[MB_SHA256_LEN];
	uint64_t avail, missing = 0, nmiss = 0, i, off, len;
	size_t k, nstreams = 0;
	int rc, hrc, want = o->streams > 0 ? o->streams : MB_PULL_STREAMS;
	double t0 = mb_now_s();

	if (st == NULL)
		st = &local;
	memset(st, 0, sizeof(*st));
	memset(&p, 0, sizeof(p));
	memset(ss, 0, sizeof(ss));
	p.o = o;
	p.m = m;
	p.remote = remote;
	p.fd = -1;
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	snprintf(p.part, sizeof(p.part), "%s.part", dest);
	snprintf(p.rec, sizeof(p.rec), "%s.chunks", dest);
	if (want > MAX_STREAMS)
		want = MAX_STREAMS;
	if (o->open == NULL)
		want = 1;
	rc = record_init(&p);
	if (rc != 0) {
		mb_seterr(err, errcap, "out of memory");
		goto out;
	}
	part_check(&p);
	for (i = 0; i < m->nchunks; i++) {
		mb_manifest_chunk(m, i, &off, &len);
		if (p.done[i] == '1')
			st->reused += len;
		else
			missing += len, nmiss++;
	}
	p.verified = st->reused;
	{
		/* the directory, not the .part, may be all there is yet */
		char dir[4200], *slash;

		snprintf(dir, sizeof(dir), "%s", dest);
		slash = strrchr(dir, '/');
		if (slash != NULL)
			*slash = '\0';
		if (mb_fs_free_space(slash ? dir : ".", &avail) == 0 &&
		    avail < missing) {
			rc = MB_ENOSPC;
			mb_seterr(err, errcap, "'%s' needs %.2f GB more here and "
				  "%.2f GB are free", m->name, (double)missing / 1e9,
				  (double)avail / 1e9);
			goto out;
		}
	}
	p.fd = open(p.part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (p.fd < 0) {
		rc = mb_err_from_errno(errno);
		mb_seterr(err, errcap, "cannot open '%s': %s", p.part,
			  mb_strerror(rc));
		goto out;
	}
	if ((uint64_t)want > nmiss)
		want = (int)nmiss;
	nstreams = want > 0 ? (size_t)want : 0;
	p.running = (int)nstreams;
	for (k = 0; k < nstreams; k++) {
		ss[k].p = &p;
		ss[k].t = k == 0 ? o->t : NULL;
		ss[k].started = pthread_create(&ss[k].th, NULL, stream_main,
					       &ss[k]) == 0;
		if (!ss[k].started) {
			pthread_mutex_lock(&p.mu);
			p.running--;
			pthread_mutex_unlock(&p.mu);
		}
	}
	hrc = follow_hash(&p, digest);
	for (k = 0; k < nstreams; k++) {
		if (!ss[k].started)
			continue;
		pthread_join(ss[k].th, NULL);
		st->streams += ss[k].t != NULL;
		st->reconnects += ss[k].reconnects;
		if (ss[k].own)
			mb_transport_free(ss[k].t);
	}
	st->fetched = p.fetched;
	st->refetched = p.refetched;
	if (p.rc != 0) {
		rc = p.rc;
		mb_seterr(err, errcap, "%s", p.err);
		goto out;
	}
	if (hrc != 0) {
		rc = hrc == MB_ECANCELLED ? MB_EINTERNAL : hrc;
		mb_seterr(err, errcap, hrc == MB_ECANCELLED ?
			  "no stream could fetch the rest of '%s'" :
			  "cannot read back '%s'", p.part);
		goto out;
	}
	if (ftruncate(p.fd, (off_t)m->size) != 0 || mb_fsync(p.fd) != 0) {
		rc = mb_err_from_errno(errno);
		mb_seterr(err, errcap, "cannot write '%s': %s", p.part,
			  mb_strerror(rc));
		goto out;
	}
	close(p.fd);
	p.fd = -1;
	if (memcmp(digest, m->sha256, sizeof(digest)) != 0) {
		/* every chunk matched and the whole does not: the manifest
		 * contradicts itself; start from nothing next time */
		unlink(p.rec);
		rc = MB_ECHECKSUM;
		mb_seterr(err, errcap, "'%s' does not match its sha256 after the "
			  "pull although every chunk did: the worker's manifest "
			  "is inconsistent", m->name);
		goto out;
	}
	if (rename(p.part, dest) != 0)
		rc = mb_err_from_errno(errno);
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot publish '%s': %s", dest,
			  mb_strerror(rc));
		goto out;
	}
	mb_fsync_parent(dest);
	unlink(p.rec);
out:
	st->seconds = mb_now_s() - t0;
	if (p.fd >= 0)
		close(p.fd);
	free(p.record);
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.mu);
	return rc;
}

/* --- pulling ahead --- */

/* How often REMOTE.ready is read while nothing new is final. */
#define AHEAD_POLL_S 0.5
#define AHEAD_READY_MAX (16u << 20)
/* Pulling ahead leaves this much free beside DEST: the job database and
 * the logs must still be written, and a pull that cannot fit fails before
 * its first byte, saying so. */
#define AHEAD_ROOM (64ull << 20)
/* A stopped pull ahead finishes the chunk it reads for this long. */
#define AHEAD_FINISH_S 10

struct mb_pull_ahead {
	const struct mb_pull_opts *o;
	char remote[4200], part_remote[4300], ready[4300];
	char part[4200], rec[4200], dir[4200];
	uint64_t chunk;
	int fd;				/* DEST.part, opened at the first chunk */
	int made;			/* ... which this pull created */
	char *old;			/* an earlier pull's record of DEST */
	size_t oldlen;
	uint64_t size;			/* 0 until known */
	uint64_t ncap;			/* chunks have and hash hold */
	uint8_t (*hash)[MB_SHA256_LEN];	/* per chunk, once have */
	char *have;
	uint64_t fetched;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	volatile int stop;		/* no new chunk */
	volatile int hard;		/* not even the one being read */
	int exited;
};

struct ahead_sink {
	struct mb_pull_ahead *a;
	struct mb_sha256 h;
};

static int ahead_piece(const void *data, size_t n, uint64_t off, void *ctx)
{
	struct ahead_sink *s = ctx;
	int rc;

	if (s->a->hard)
		return MB_ECANCELLED;
	rc = mb_sha256_update(&s->h, data, n);
	if (rc == 0)
		rc = mb_pwrite_all(s->a->fd, data, n, off);
	/* as the pull's: the fsync that adopts the file finds little left,
	 * and does not hold up the job's end */
	if (rc == 0)
		mb_write_start(s->a->fd, off, n);
	if (rc == 0) {
		pthread_mutex_lock(&s->a->mu);
		s->a->fetched += n;
		pthread_mutex_unlock(&s->a->mu);
	}
	return rc;
}

/* Sleeps up to s seconds, or until told to stop: 1 when told. */
static int ahead_wait(struct mb_pull_ahead *a, double s)
{
	struct timespec ts;
	int stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)s;
	ts.tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&a->mu);
	if (!a->stop)
		pthread_cond_timedwait(&a->cv, &a->mu, &ts);
	stop = a->stop;
	pthread_mutex_unlock(&a->mu);
	return stop;
}

/* What is final now: *all when the writer published the file, else the
 * block map (the caller frees *map; *nmap blocks of *block bytes). A map
 * of a file whose size is not known yet says size 0 and grows. 0, or 1
 * when nothing can be said yet. */
static int ahead_poll(struct mb_pull_ahead *a, struct mb_transport *t,
		      int *all, char **map, uint64_t *nmap, uint64_t *block)
{
	struct mb_transport_stat st;
	uint64_t size, blk, n;
	char *buf = mb_malloc(AHEAD_READY_MAX + 1);
	const char *bits;
	size_t got = 0;

	*all = 0;
	*map = NULL;
	if (buf == NULL)
		return 1;
	if (mb_transport_read(t, a->ready, 0, buf, AHEAD_READY_MAX, &got) == 0 &&
	    mb_ready_parse(buf, got, MB_MANIFEST_MAX_CHUNK, MB_MANIFEST_MAX_SIZE,
			   &size, &blk, &bits, &n) == 0 &&
	    (a->size == 0 || size == 0 || a->size == size)) {
		pthread_mutex_lock(&a->mu);
		if (size > 0)
			a->size = size;
		pthread_mutex_unlock(&a->mu);
		*block = blk;
		*nmap = n;
		memmove(buf, bits, (size_t)n);
		*map = buf;
		return 0;
	}
	free(buf);
	/* no map: published (the writer removes it after), or not begun */
	if (mb_transport_stat(t, a->remote, &st) == 0 && !st.is_dir &&
	    (a->size == 0 || a->size == st.size)) {
		pthread_mutex_lock(&a->mu);
		a->size = st.size;
		pthread_mutex_unlock(&a->mu);
		*all = 1;
		return 0;
	}
	return 1;
}

/* Chunk i is verified in the record an earlier pull left: the flags
 * after its first line. */
static int ahead_old_done(const struct mb_pull_ahead *a, uint64_t i)
{
	const char *nl = a->old ? memchr(a->old, '\n', a->oldlen) : NULL;

	return nl != NULL && (size_t)(nl + 1 - a->old) + i < a->oldlen &&
	       nl[1 + i] == '1';
}

static void *ahead_main(void *arg)
{
	struct mb_pull_ahead *a = arg;
	struct mb_transport *t = NULL;
	char err[512];
	uint64_t left = 1;

	while (!a->stop && left > 0) {
		uint64_t block = 0, nmap = 0, i, got_now = 0, n;
		char *map = NULL;
		int all;

		if (t == NULL && a->o->open(a->o->open_ctx, &t, err,
					    sizeof(err)) != 0) {
			t = NULL;
			if (ahead_wait(a, 5.0))
				break;
			continue;
		}
		if (ahead_poll(a, t, &all, &map, &nmap, &block) != 0) {
			if (ahead_wait(a, AHEAD_POLL_S))
				break;
			continue;
		}
		/* the chunks that can be said final: all of a file of known
		 * size, else the whole ones the map covers */
		n = a->size > 0 ? (a->size + a->chunk - 1) / a->chunk
				: nmap * block / a->chunk;
		if (n > MB_MANIFEST_MAX_CHUNKS)
			n = MB_MANIFEST_MAX_CHUNKS; /* past what a manifest holds */
		if (n > a->ncap) {
			void *h, *v;

			pthread_mutex_lock(&a->mu);
			h = mb_realloc(a->have, n);
			if (h != NULL)
				a->have = h;
			v = mb_realloc(a->hash, n * sizeof(*a->hash));
			if (v != NULL)
				a->hash = v;
			if (h != NULL && v != NULL) {
				memset(a->have + a->ncap, 0, n - a->ncap);
				a->ncap = n;
			}
			pthread_mutex_unlock(&a->mu);
			if (h == NULL || v == NULL) {
				free(map);
				break; /* no memory to pull ahead: the pull does it */
			}
		}
		if (all && a->size == 0) {
			free(map);
			break; /* published empty: nothing to pull */
		}
		left = a->size > 0 ? 0 : 1; /* more to come while unknown */
		for (i = 0; i < n && !a->stop; i++) {
			uint64_t off = i * a->chunk, len = a->chunk, b, got = 0;
			struct ahead_sink sk;
			int ready = 1, rc;

			memset(&sk, 0, sizeof(sk));
			sk.a = a;
			if (a->have[i] || ahead_old_done(a, i))
				continue;
			if (a->size > 0 && len > a->size - off)
				len = a->size - off;
			for (b = off / (block ? block : 1);
			     !all && b * block < off + len; b++)
				ready = ready && b < nmap && map[b] == '1';
			if (!ready) {
				left++;
				continue;
			}
			{
				uint64_t avail;

				if (mb_fs_free_space(a->dir, &avail) != 0 ||
				    avail < len + AHEAD_ROOM) {
					left++;
					break; /* no room now: later, or the pull */
				}
			}
			if (a->fd < 0) {
				a->fd = open(a->part, O_RDWR | O_CREAT | O_CLOEXEC,
					     0644);
				if (a->fd < 0) {
					free(map);
					map = NULL;
					left = 0;
					break;
				}
			}
			rc = mb_sha256_init(&sk.h);
			if (a->o->one_chunk != NULL)
				pthread_mutex_lock(a->o->one_chunk);
			if (rc == 0 && a->stop)
				rc = MB_ECANCELLED;
			if (rc == 0)
				rc = mb_transport_read_stream(t, all ? a->remote
								    : a->part_remote,
							      off, len, ahead_piece,
							      &sk, &got);
			if (a->o->one_chunk != NULL)
				pthread_mutex_unlock(a->o->one_chunk);
			if (rc == 0 && got == len) {
				pthread_mutex_lock(&a->mu);
				rc = mb_sha256_final(&sk.h, a->hash[i]);
				if (rc == 0)
					a->have[i] = 1;
				pthread_mutex_unlock(&a->mu);
				got_now++;
			}
			mb_sha256_release(&sk.h);
			if (rc != 0 || got != len) {
				/* renamed under the read, or the link broke:
				 * look again */
				left++;
				if (rc != 0 && rc != MB_ENOENT &&
				    rc != MB_ECANCELLED) {
					mb_transport_free(t);
					t = NULL;
				}
				break;
			}
		}
		free(map);
		if (left > 0 && got_now == 0 && ahead_wait(a, AHEAD_POLL_S))
			break;
	}
	if (t != NULL)
		mb_transport_free(t);
	pthread_mutex_lock(&a->mu);
	a->exited = 1;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int mb_pull_ahead_start(const struct mb_pull_opts *o, const char *remote,
			uint64_t chunk_size, const char *dest,
			struct mb_pull_ahead **out)
{
	struct mb_pull_ahead *a;

	*out = NULL;
	if (o->open == NULL || chunk_size == 0)
		return MB_EINVAL;
	a = mb_calloc(1, sizeof(*a));
	if (a == NULL)
		return MB_ENOMEM;
	a->o = o;
	a->chunk = chunk_size;
	snprintf(a->remote, sizeof(a->remote), "%s", remote);
	snprintf(a->part_remote, sizeof(a->part_remote), "%s.part", remote);
	snprintf(a->ready, sizeof(a->ready), "%s.ready", remote);
	snprintf(a->part, sizeof(a->part), "%s.part", dest);
	snprintf(a->rec, sizeof(a->rec), "%s.chunks", dest);
	snprintf(a->dir, sizeof(a->dir), "%s", dest);
	if (strrchr(a->dir, '/') != NULL)
		*strrchr(a->dir, '/') = '\0';
	else
		snprintf(a->dir, sizeof(a->dir), ".");
	/* what an earlier pull verified stays, and is not fetched again */
	a->fd = -1;
	a->made = access(a->part, F_OK) != 0;
	if (mb_read_file(a->rec, MB_MANIFEST_MAX_CHUNKS + 512, &a->old,
			 &a->oldlen) != 0)
		a->old = NULL;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if (pthread_create(&a->th, NULL, ahead_main, a) != 0) {
		free(a->old);
		pthread_cond_destroy(&a->cv);
		pthread_mutex_destroy(&a->mu);
		free(a);
		return MB_ENOMEM;
	}
	*out = a;
	return 0;
}

void mb_pull_ahead_progress(struct mb_pull_ahead *a, uint64_t *fetched,
			    uint64_t *size)
{
	pthread_mutex_lock(&a->mu);
	*fetched = a->fetched;
	*size = a->size;
	pthread_mutex_unlock(&a->mu);
}

int mb_pull_ahead_done(struct mb_pull_ahead *a)
{
	int done;

	pthread_mutex_lock(&a->mu);
	done = a->exited;
	pthread_mutex_unlock(&a->mu);
	return done;
}

void mb_pull_ahead_finish(struct mb_pull_ahead *a, const struct mb_manifest *m,
			  uint64_t *adopted, uint64_t *fetched)
{
	uint64_t i, off, len;
	char head[200], *rec;
	size_t hn;

	*adopted = 0;
	if (fetched != NULL)
		*fetched = 0;
	if (a == NULL)
		return;
	/* the chunk being read is finished, for a while */
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_broadcast(&a->cv);
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += AHEAD_FINISH_S;
		while (!a->exited &&
		       pthread_cond_timedwait(&a->cv, &a->mu, &ts) == 0)
			;
	}
	a->hard = 1;
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->th, NULL);
	if (fetched != NULL)
		*fetched = a->fetched;
	/* the manifest's cut, or nothing is taken; a chunk fetched whole
	 * where the file ends shorter has another hash than the manifest's */
	if (m != NULL && (a->size == 0 || m->size == a->size) &&
	    m->chunk_size == a->chunk && a->have != NULL && a->fd >= 0 &&
	    mb_fsync(a->fd) == 0) {
		int same;

		record_head(m, head, sizeof(head));
		hn = strlen(head);
		/* an earlier record of these very bytes keeps its chunks */
		same = a->old != NULL && a->oldlen == hn + m->nchunks &&
		       memcmp(a->old, head, hn) == 0;
		rec = mb_malloc(hn + m->nchunks + 1);
		if (rec != NULL) {
			memcpy(rec, head, hn);
			for (i = 0; i < m->nchunks; i++) {
				int ok = i < a->ncap && a->have[i] &&
					 memcmp(a->hash[i], m->chunks[i],
						MB_SHA256_LEN) == 0;

				rec[hn + i] = ok || (same && a->old[hn + i] == '1')
						      ? '1' : '0';
				if (ok) {
					mb_manifest_chunk(m, i, &off, &len);
					*adopted += len;
				}
			}
			if (*adopted == 0 ||
			    mb_atomic_write(a->rec, rec, hn + m->nchunks,
					    0644) != 0)
				*adopted = 0;
			free(rec);
		}
	}
	if (a->fd >= 0)
		close(a->fd);
	/* nothing kept of a file this pull began: not left behind */
	if (*adopted == 0 && a->made)
		unlink(a->part);
	free(a->old);
	free(a->have);
	free(a->hash);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
