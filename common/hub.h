/*
 * hub: a client for the Hugging Face hub's HTTP API, shared by the
 * coordinator (inspect reads shard headers with range requests) and the
 * worker (fetch). Libcurl underneath; every answer from the hub is hostile
 * input: JSON bounded and checked, file paths validated, sizes capped.
 *
 * The token goes to the hub's own host only: redirects are followed by
 * hand, and a redirect to another host or port never carries it. The
 * token is registered with the log redactor, so no log line shows it.
 *
 * Environment, as the hub's own tools read it: HF_ENDPOINT (default
 * https://huggingface.co), HF_TOKEN, HF_HUB_OFFLINE=1.
 */
#ifndef MB_HUB_H
#define MB_HUB_H

#include <stddef.h>
#include <stdint.h>

struct mb_buf;

#define MB_HUB_DEFAULT_ENDPOINT "https://huggingface.co"

struct mb_hub {
	char endpoint[512];	/* no trailing slash */
	char *token;		/* NULL: anonymous */
	int offline;		/* HF_HUB_OFFLINE: every call fails at once */
	long connect_timeout_ms;
	long stall_timeout_ms;	/* no byte for this long ends a transfer */
	int max_attempts;	/* for 429, 5xx and network errors */
	long max_retry_wait_ms;	/* cap on one Retry-After wait */
	void *curl;		/* CURL easy handle, reused (keep-alive) */
	long status;		/* HTTP status of the last answer */
	char error_code[64];	/* its X-Error-Code, "" if none */
	char err[512];		/* what went wrong, for a person */
	uint64_t bytes_in;	/* body bytes received, for accounting */
};

/* Initialises a client from the environment. endpoint and token override
 * HF_ENDPOINT and HF_TOKEN when not NULL. MB_ENOMEM, MB_EINVAL (endpoint
 * not http(s)). */
int mb_hub_init(struct mb_hub *h, const char *endpoint, const char *token);

/* Frees the handle and wipes the token; NULL-safe. */
void mb_hub_release(struct mb_hub *h);

/* Returns 1 when s is a valid repo id: "org/name" of letters, digits and
 * ".-_", no "..", at most 96 bytes. */
int mb_hub_repo_id_ok(const char *s);

struct mb_hub_file {
	char *path;		/* safe repo-relative path (mb_repo_path_ok) */
	uint64_t size;
	int lfs;
	char sha256[65];	/* lfs files: the content's sha256 */
	char oid[41];		/* git blob sha1 (of the pointer for lfs) */
};

struct mb_hub_repo {
	char commit[41];
	size_t nfiles;
	struct mb_hub_file *files;	/* sorted by path */
};

/* Resolves rev (NULL: "main") of repo to a commit and lists every file at
 * that commit (tree API, recursive, following Link pages). Caller frees
 * with mb_hub_repo_free. On failure h->err says what to do: MB_ENOENT
 * (no such repo, revision), MB_EAUTH (gated or private: token needed or
 * refused), MB_ENETWORK / MB_ETIMEDOUT (unreachable), MB_EPROTO (a
 * malformed answer). */
int mb_hub_list(struct mb_hub *h, const char *repo, const char *rev,
		struct mb_hub_repo **out);

void mb_hub_repo_free(struct mb_hub_repo *r);

/* Returns the file at path in r, or NULL. */
const struct mb_hub_file *mb_hub_repo_find(const struct mb_hub_repo *r,
					   const char *path);

/* Appends bytes [off, off + len) of path at commit to b (len 0: the whole
 * file from off, up to b's cap). A server that ignores the range is
 * handled (the wanted slice is cut from its answer). MB_ENOENT for a
 * missing file, and as mb_hub_list. */
int mb_hub_read(struct mb_hub *h, const char *repo, const char *commit,
		const char *path, uint64_t off, uint64_t len, struct mb_buf *b);

#endif
