/*
 * pull: copies one artifact from a worker to this machine, verified
 * (DESIGN.md, Transfer).
 *
 * The worker's manifest gives the file's size, sha256 and the sha256 of
 * each fixed-size chunk. The pull writes DEST.part, keeps a record of the
 * chunks it verified in DEST.chunks (tied to the manifest's sha256 and
 * chunk size, so a record of other bytes is never trusted), and fetches the
 * missing chunks over several streams at once: each stream is its own
 * transport (for SSH its own session and TCP connection, so a per-connection
 * rate limit applies to each) and takes a contiguous range of the missing
 * chunks. Bytes are hashed and written as they arrive; a chunk whose hash
 * does not match is fetched again (twice more at most). A chunk is marked
 * in the record only after its bytes are on disk, so a killed pull loses at
 * most the chunk each stream had in flight. Then the whole file's sha256 is
 * checked and DEST.part renamed to DEST.
 */
#ifndef MB_PULL_H
#define MB_PULL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct mb_manifest;
struct mb_transport;

/* Opens one more transport to the same worker for another stream. */
typedef int (*mb_pull_open_fn)(void *ctx, struct mb_transport **t, char *err,
			       size_t errcap);

/* Told how far the pull is: bytes of the file verified or fetched so far
 * (done, of total) and bytes received over the links in this run
 * (fetched). Called from the streams' threads, one call at a time. */
typedef void (*mb_pull_progress_fn)(uint64_t done, uint64_t total,
				    uint64_t fetched, void *ctx);

struct mb_pull_opts {
	struct mb_transport *t;	/* the first stream's transport (required) */
	mb_pull_open_fn open;	/* more streams; NULL: one stream */
	void *open_ctx;
	int streams;		/* streams wanted; 0: MB_PULL_STREAMS */
	mb_pull_progress_fn progress;	/* NULL: none */
	void *progress_ctx;
	pthread_mutex_t *one_chunk;	/* pulls ahead sharing it read one
					   chunk at a time, as one stream
					   (NULL: each its own) */
	int drop_behind;	/* nothing reads the file soon after: it
				   leaves the page cache as it is hashed
				   (common/fs.h, mb_write_behind) */
};

#define MB_PULL_STREAMS 4

struct mb_pull_stats {
	uint64_t reused;	/* bytes of chunks an earlier pull verified */
	uint64_t fetched;	/* bytes received in this run, bad ones too */
	uint64_t refetched;	/* bytes of chunks fetched again after a bad
				   hash */
	unsigned streams;	/* streams that ran */
	unsigned reconnects;	/* reconnects of their transports */
	double seconds;
};

/* Pulls remote (a path on the worker) described by m into dest. Free
 * space for what is still missing is checked first (MB_ENOSPC). On
 * success dest holds the verified file and the record is gone; on failure
 * dest is untouched, DEST.part and the record stay for the next try, and
 * err says what failed (a chunk that never matched: MB_ECHECKSUM naming
 * it). st may be NULL. */
int mb_pull_file(const struct mb_pull_opts *o, const char *remote,
		 const struct mb_manifest *m, const char *dest,
		 struct mb_pull_stats *st, char *err, size_t errcap);

/* --- pulling a file while the worker still writes it ---
 *
 * A file being written, with REMOTE.ready beside it saying which of its
 * blocks are final (common/readymap.h: the quants of convert --also,
 * the output of a quantize), can be pulled before its manifest exists: a thread
 * on its own transport (o->open) fetches into DEST.part each chunk of
 * chunk_size (the size the manifest will be cut in) whose blocks are all
 * final, from REMOTE.part, or from REMOTE once the writer published it,
 * and hashes it. Nothing fetched so is trusted: once the manifest exists,
 * mb_pull_ahead_finish marks in DEST's record (DEST.chunks) only the
 * chunks whose hash is the manifest's, and mb_pull_file fetches the rest
 * and checks the whole as always. */
struct mb_pull_ahead;

/* Starts pulling remote ahead into dest (DEST.part is started again and an
 * earlier record of it dropped). 0, or an mb_err code (no thread). */
int mb_pull_ahead_start(const struct mb_pull_opts *o, const char *remote,
			uint64_t chunk_size, const char *dest,
			struct mb_pull_ahead **out);

/* Bytes the thread has received so far, and the file's size as the
 * writer's map or the published file gave it (0 while not known). */
void mb_pull_ahead_progress(struct mb_pull_ahead *a, uint64_t *fetched,
			    uint64_t *size);

/* 1 once the thread has all of the file (or gave up on it). */
int mb_pull_ahead_done(struct mb_pull_ahead *a);

/* Stops the thread and, with m (the file's manifest; NULL: none), records
 * the chunks fetched that match it: *adopted their bytes, *fetched (may
 * be NULL) the bytes received. Frees a; NULL-safe. */
void mb_pull_ahead_finish(struct mb_pull_ahead *a, const struct mb_manifest *m,
			  uint64_t *adopted, uint64_t *fetched);

#endif
