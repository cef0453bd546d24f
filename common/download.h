/*
 * download: the resumable, parallel, verified fetch of a model repository
 * from the hub (the worker's fetch step; mibera-worker fetch).
 *
 * The revision is resolved to a commit and the files at that commit are
 * listed (common/hub.h). The selected files are fetched into the hub's own
 * cache layout, so other tools on the box reuse them:
 *
 *   CACHE/models--ORG--NAME/blobs/<sha256 or git sha1>
 *   CACHE/models--ORG--NAME/snapshots/<commit>/<path> -> ../../blobs/<etag>
 *   CACHE/models--ORG--NAME/refs/<rev>          (the commit, for a branch)
 *
 * and, when asked, linked into a destination directory (the snapshot view).
 *
 * Every file is cut into ranges fetched over several connections (a libcurl
 * multi handle); a file whose server ignores Range is streamed whole over
 * one connection instead. While a file is in flight its bytes go to
 * blobs/<etag>.incomplete and a resume record, blobs/<etag>.ranges, lists
 * the byte intervals already on disk (replaced by rename after each range,
 * so a kill -9 loses at most the ranges in flight). A restart fetches only
 * what the record does not list. The content is hashed as its contiguous
 * prefix grows and the whole file is checked against the tree's sha256
 * (LFS) or git blob sha1 (others) before the blob is renamed into place: a
 * blob in blobs/ is always complete and verified. A mismatch fetches the
 * file again; a second one is a permanent error.
 *
 * Failures: 429 waits as long as Retry-After / RateLimit say; 5xx, resets,
 * short answers and stalls (no byte for the stall timeout) are retried per
 * range with exponential backoff and jitter, a bounded number of times;
 * 401/403/404 from the hub are permanent, with the hub's message (gated:
 * accept the terms and set HF_TOKEN). The token goes to the hub's origin
 * only, never to the blob host a resolve redirects to.
 */
#ifndef MB_DOWNLOAD_H
#define MB_DOWNLOAD_H

#include <stddef.h>
#include <stdint.h>

struct mb_hub;

#define MB_DOWNLOAD_DEFAULT_CONNECTIONS 8
#define MB_DOWNLOAD_DEFAULT_RANGE (16u << 20)
#define MB_DOWNLOAD_MAX_CONNECTIONS 64
#define MB_DOWNLOAD_DEFAULT_ATTEMPTS 8

/* One progress report. file is NULL for the overall figures only. */
struct mb_download_progress {
	const char *file;	/* repo path of the file reported, or NULL */
	uint64_t file_done, file_total;
	int file_finished;	/* 1: that file is complete and verified */
	uint64_t done, total;	/* all selected files */
	double rate;		/* bytes/s fetched in this run */
	double eta;		/* seconds left at that rate, -1 unknown */
};

typedef void (*mb_download_progress_fn)(const struct mb_download_progress *p,
					void *ctx);

struct mb_download_opts {
	const char *repo;	/* "org/name" */
	const char *rev;	/* branch, tag or commit; NULL: "main" */
	const char *cache_dir;	/* the hub cache root (created) */
	const char *dest;	/* NULL, or a directory that gets the snapshot
				 * view (hard links, else symbolic links) */
	const char *const *include;	/* globs (fnmatch) on repo paths: the */
	size_t ninclude;		/* selection instead of the default */
	const char *const *exclude;	/* globs removed from the selection */
	size_t nexclude;
	int connections;	/* 0: MB_DOWNLOAD_DEFAULT_CONNECTIONS */
	uint64_t range_size;	/* 0: MB_DOWNLOAD_DEFAULT_RANGE */
	uint64_t reserve;	/* room the next steps need after the download;
				 * UINT64_MAX: as much as the download */
	int max_attempts;	/* per range; 0: MB_DOWNLOAD_DEFAULT_ATTEMPTS */
	long backoff_ms;	/* first retry wait; 0: 1000 */
	long backoff_max_ms;	/* cap of one wait; 0: 30000 */
	long stall_ms;		/* no byte for this long: retry; 0: 30000 */
	mb_download_progress_fn progress;	/* NULL: none */
	void *progress_ctx;
	/* Headers first, for a conversion that runs beside the download
	 * (convert --follow): when not NULL, the files that are not
	 * .safetensors are fetched first; then each .safetensors file's
	 * header is written to headers_dir/<path> (a sparse file of the
	 * shard's size whose first bytes are exactly the shard's first bytes,
	 * so mb_st_read_file reads it as the shard); then headers_ready
	 * (NULL allowed) is called with the commit and progress_ctx; then the shards are
	 * fetched in path order, each linked into dest as soon as it is
	 * verified. */
	const char *headers_dir;
	void (*headers_ready)(const char *commit, void *ctx);
};

/* The side directory a headers-first fetch keeps in its dest: the headers
 * under MB_DOWNLOAD_SIDE "/headers", its state in MB_DOWNLOAD_STATE. */
#define MB_DOWNLOAD_SIDE ".mibera"
#define MB_DOWNLOAD_STATE ".mibera/fetch.state"

/* Where a headers-first fetch stands, as its state file says. */
struct mb_download_state {
	char state[16];		/* running, headers, done, failed */
	int permanent;		/* failed: a new run will fail the same way */
	char message[1024];	/* failed: what happened */
	char commit[41];	/* the commit fetched, once known, or "" */
	double age_s;		/* since the file was last written */
};

/* Writes the state file at path atomically (state: "running", "headers",
 * "done" or "failed"; commit and message NULL allowed). Each write refreshes its age,
 * which is how a reader tells a fetch that stopped without a word. */
int mb_download_state_write(const char *path, const char *state,
			    const char *commit, int permanent,
			    const char *message);

/* Reads the state file at path. MB_ENOENT when there is none, MB_EJSON
 * when it is not one. */
int mb_download_state_read(const char *path, struct mb_download_state *st);

/* While a headers-first fetch brings a shard, a conversion may read the
 * part of it already in. Beside the shard's side header (HEADERS/PATH),
 * PATH MB_DOWNLOAD_PARTIAL is a link to the file being fetched, and PATH
 * MB_DOWNLOAD_PREFIX says how many bytes from its start are in it (on
 * disk, and read back into its hash). Its generation changes with each
 * run of the fetch and each start over after a failed check: bytes read
 * in one generation are the shard's only when it is verified in the
 * same one. */
#define MB_DOWNLOAD_PARTIAL ".partial"
#define MB_DOWNLOAD_PREFIX ".prefix"

struct mb_download_prefix {
	uint64_t bytes;		/* from the start of the file, in */
	uint64_t ino;		/* the inode of the file they are in */
	uint64_t gen;		/* a new one each time the bytes may change */
	int verified;		/* the file is whole and verified */
};

/* Reads the prefix record of the shard whose side header is side.
 * MB_ENOENT when there is none (the shard is not being fetched here, or
 * has no link), MB_EFORMAT when it is not one. */
int mb_download_prefix_read(const char *side, struct mb_download_prefix *p);

struct mb_download_result {
	char commit[41];
	size_t nfiles;		/* files selected */
	uint64_t bytes_total;	/* their size */
	uint64_t bytes_fetched;	/* body bytes received in this run */
	uint64_t bytes_reused;	/* already in the cache (blobs or resumed) */
	unsigned retries;	/* requests retried */
	double seconds;
	char snapshot[2200];	/* CACHE/models--ORG--NAME/snapshots/<commit> */
};

/* Sets the defaults above (reserve UINT64_MAX). */
void mb_download_opts_init(struct mb_download_opts *o);

/* Downloads o->repo at o->rev with the client h (its token, endpoint and
 * timeouts; h->stall_timeout_ms is set from o). Fills *res (NULL allowed)
 * and returns 0 when every selected file is in the cache, verified, and
 * linked. On failure err says what happened and what to do: MB_ENOSPC
 * (checked before anything is fetched, or hit while writing: no file is
 * then marked complete), MB_EAUTH / MB_ENOENT (gated, private, missing),
 * MB_ECHECKSUM (a file failed verification twice), MB_ENETWORK /
 * MB_ETIMEDOUT (retries exhausted: a later run resumes), MB_EPROTO. */
int mb_download_repo(struct mb_hub *h, const struct mb_download_opts *o,
		     struct mb_download_result *res, char *err, size_t errcap);

/* Returns 1 when path is in the default selection given the repo's file
 * list (paths, n of them): top-level safetensors shards and their index,
 * config, tokenizer and generation files, the model card; .bin/.pt/.pth/
 * .gguf weights and original/ only when there is no safetensors file. */
int mb_download_default_file(const char *path, const char *const *paths,
			     size_t n);

#endif
