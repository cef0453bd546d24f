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
#include "common/err.h"
#include "common/fs.h"
#include "common/manifest.h"
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
	uint64_t *idx;		/* the chunks this stream fetches */
	size_t n;
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

static int record_init(struct pull *p)
{
	char hex[MB_SHA256_HEX], head[200], *old = NULL;
	size_t n = 0;

	mb_sha256_hex(p->m->sha256, hex);
	snprintf(head, sizeof(head), RECORD_MAGIC " %s %llu %llu\n", hex,
		 (unsigned long long)p->m->chunk_size,
		 (unsigned long long)p->m->nchunks);
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
	return mb_atomic_write(p->rec, p->record, p->head_len + p->m->nchunks,
			       0644);
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

static void *stream_main(void *arg)
{
	struct stream *s = arg;
	struct pull *p = s->p;
	size_t k;

	if (s->t == NULL) {
		char err[512];

		/* a stream that cannot connect leaves its chunks to stream 0 */
		if (p->o->open(p->o->open_ctx, &s->t, err, sizeof(err)) != 0)
			return NULL;
		s->own = 1;
	}
	for (k = 0; k < s->n && !p->stop; k++)
		if (p->done[s->idx[k]] != '1' && fetch_chunk(s, s->idx[k]) != 0)
			break;
	s->reconnects = mb_transport_reconnects(s->t);
	return NULL;
}

/* --- the file --- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Splits the missing chunks into up to want contiguous ranges. */
static int plan(struct pull *p, int want, struct stream *ss, uint64_t **all,
		size_t *nstreams)
{
	uint64_t i, nmiss = 0;
	size_t k, per, at = 0;

	for (i = 0; i < p->m->nchunks; i++)
		nmiss += p->done[i] != '1';
	*all = mb_calloc(nmiss + 1, sizeof(**all));
	if (*all == NULL)
		return MB_ENOMEM;
	for (i = 0; i < p->m->nchunks; i++)
		if (p->done[i] != '1')
			(*all)[at++] = i;
	if (want < 1)
		want = 1;
	if ((uint64_t)want > nmiss)
		want = nmiss ? (int)nmiss : 1;
	*nstreams = (size_t)want;
	for (k = 0, at = 0; k < *nstreams; k++) {
		per = (size_t)((nmiss - at) / (*nstreams - k));
		ss[k].p = p;
		ss[k].idx = *all + at;
		ss[k].n = per;
		at += per;
	}
	return 0;
}

int mb_pull_file(const struct mb_pull_opts *o, const char *remote,
		 const struct mb_manifest *m, const char *dest,
		 struct mb_pull_stats *st, char *err, size_t errcap)
{
	struct pull p;
	struct stream ss[MAX_STREAMS];
	struct mb_pull_stats local;
	uint8_t digest[MB_SHA256_LEN];
	uint64_t *all = NULL, avail, missing = 0, i, off, len;
	size_t k, nstreams = 0;
	int rc, want = o->streams > 0 ? o->streams : MB_PULL_STREAMS;
	double t0 = now_s();

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
	for (i = 0; i < m->nchunks; i++) {
		mb_manifest_chunk(m, i, &off, &len);
		if (p.done[i] == '1')
			st->reused += len;
		else
			missing += len;
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
	rc = plan(&p, want, ss, &all, &nstreams);
	if (rc != 0) {
		mb_seterr(err, errcap, "out of memory");
		goto out;
	}
	if (missing > 0) {
		ss[0].t = o->t;
		for (k = 1; k < nstreams; k++)
			ss[k].started = pthread_create(&ss[k].th, NULL, stream_main,
						       &ss[k]) == 0;
		stream_main(&ss[0]);
		for (k = 1; k < nstreams; k++) {
			if (ss[k].started)
				pthread_join(ss[k].th, NULL);
			if (ss[k].own)
				st->streams++;
			st->reconnects += ss[k].reconnects;
			if (ss[k].own)
				mb_transport_free(ss[k].t);
		}
		st->streams++;
		st->reconnects += ss[0].reconnects;
		/* chunks of streams that could not connect, on the first */
		for (k = 1; k < nstreams && p.rc == 0; k++) {
			size_t j;

			for (j = 0; j < ss[k].n && p.rc == 0; j++)
				if (p.done[ss[k].idx[j]] != '1')
					fetch_chunk(&ss[0], ss[k].idx[j]);
		}
	}
	st->fetched = p.fetched;
	st->refetched = p.refetched;
	if (p.rc != 0) {
		rc = p.rc;
		mb_seterr(err, errcap, "%s", p.err);
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
	rc = mb_sha256_file(p.part, digest, NULL);
	if (rc == 0 && memcmp(digest, m->sha256, sizeof(digest)) != 0) {
		/* every chunk matched and the whole does not: the manifest
		 * contradicts itself; start from nothing next time */
		unlink(p.rec);
		rc = MB_ECHECKSUM;
		mb_seterr(err, errcap, "'%s' does not match its sha256 after the "
			  "pull although every chunk did: the worker's manifest "
			  "is inconsistent", m->name);
		goto out;
	}
	if (rc == 0 && rename(p.part, dest) != 0)
		rc = mb_err_from_errno(errno);
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot publish '%s': %s", dest,
			  mb_strerror(rc));
		goto out;
	}
	mb_fsync_parent(dest);
	unlink(p.rec);
out:
	st->seconds = now_s() - t0;
	if (p.fd >= 0)
		close(p.fd);
	free(all);
	free(p.record);
	pthread_mutex_destroy(&p.mu);
	return rc;
}
