/*
 * hubpush: uploads files to a model repository on the Hugging Face hub in
 * one commit, over the hub's HTTP API without git, as huggingface_hub's
 * create_commit does:
 *   1. POST /api/repos/create           (the repo, if it is not there)
 *   2. POST /api/models/R/preupload/REV (which files go through LFS)
 *   3. POST R.git/info/lfs/objects/batch (per LFS object: nothing to do,
 *      one PUT, or multipart: numbered part URLs, then a completion POST
 *      with each part's ETag; then the verify action when one is given)
 *   4. POST /api/models/R/commit/REV    (NDJSON: a header, then lfsFile
 *      pointers and small files inline in base64)
 * then lists the new commit's tree and checks each file's size and sha256
 * against the local file.
 *
 * Every request is retried on 429, 5xx and network errors with the
 * client's max_attempts and the given backoff; a failed part is sent
 * again on its own, not the whole file, and objects the hub already holds
 * are not sent at all (so a push run again after a failure resumes). The
 * commit names its parent, so a retried commit whose first try did land
 * is refused by the hub instead of landing twice, and is then found in the
 * tree. The token goes to the hub's own origin only (common/hub.h), never
 * to the storage URLs of the parts.
 */
#ifndef MB_HUBPUSH_H
#define MB_HUBPUSH_H

#include <stddef.h>
#include <stdint.h>

struct mb_buf;

struct mb_hub;

/* Files above this go through LFS whatever the hub's preupload says (the
 * hub's own rule: nothing over 10 MB in plain git). */
#define MB_HUBPUSH_REGULAR_MAX (10ull << 20)

struct mb_hubpush_file {
	const char *local;	/* path of the file to send */
	const char *path;	/* its path in the repo (mb_repo_path_ok) */
	const char *sha256;	/* expected content hash (64 hex), or NULL */
};

struct mb_hubpush_progress {
	const char *file;	/* the file being sent, NULL for a phase */
	const char *phase;	/* "hash", "upload", "commit", "verify" */
	uint64_t done, total;	/* bytes of the whole push */
	double rate;		/* bytes/s of the upload so far */
};

struct mb_hubpush_opts {
	const char *repo;	/* "org/name" */
	const char *rev;	/* branch; NULL: "main" */
	int private_repo;	/* create it private (an existing repo is kept) */
	const char *message;	/* commit summary; NULL: a default */
	const struct mb_hubpush_file *files;
	size_t nfiles;
	long backoff_ms, backoff_max_ms;	/* retry waits; 0: 1 s, 30 s */
	void (*progress)(const struct mb_hubpush_progress *p, void *ctx);
	void *progress_ctx;
};

struct mb_hubpush_result {
	char commit[41];	/* the commit that holds the files */
	char commit_url[512];
	int created;		/* the repo was created by this push */
	size_t nfiles, nlfs;
	uint64_t bytes;		/* all the files */
	uint64_t uploaded;	/* bytes sent to storage (retries included) */
	uint64_t reused;	/* LFS bytes the hub already had */
	unsigned parts;		/* multipart parts sent */
	unsigned retries;	/* requests sent again */
	double seconds;
};

/* Pushes o->files to o->repo in one commit; r gets what happened (also on
 * failure, as far as it went). On failure h->err says what to do:
 * MB_EAUTH (no token, or one without write access), MB_ECHECKSUM (a file
 * differs from its expected sha256, or the hub's copy from the local one),
 * MB_ENOENT (a local file is missing), MB_ENETWORK / MB_ETIMEDOUT (the hub
 * could not be reached: run again, what landed is kept), MB_EPROTO (a
 * malformed answer). */
int mb_hubpush(struct mb_hub *h, const struct mb_hubpush_opts *o,
	       struct mb_hubpush_result *r);

/* Creates repo (private when private_repo); *created is 1 when it did and
 * 0 when the repo was already there. MB_EAUTH without a token or when the
 * token may not create it. */
int mb_hubpush_create_repo(struct mb_hub *h, const char *repo,
			   int private_repo, int *created);

/* Appends the base64 (RFC 4648, padded) of len bytes of data to b. */
int mb_hubpush_base64(struct mb_buf *b, const void *data, size_t len);

#endif
