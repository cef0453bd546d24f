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

/* The Hugging Face token as huggingface_hub finds it: HF_TOKEN, else the
 * file `hf auth login` wrote ($HF_TOKEN_PATH, else $HF_HOME/token, else
 * ${XDG_CACHE_HOME:-~/.cache}/huggingface/token), trimmed. MB_ENOENT when
 * there is none. */
int mb_hub_token(char *out, size_t cap);

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

/* Reads repo's config.json at its main revision (at most max bytes) into
 * *out (caller frees; NUL-terminated), its length in *len. MB_ENOENT when
 * the repo or the file is not there, else as mb_hub_list. */
int mb_hub_read_config(struct mb_hub *h, const char *repo, size_t max,
		       char **out, size_t *len);

/* --- request machinery, shared with the downloader (common/download.c),
 * which drives many ranged transfers at once on a libcurl multi handle --- */

/* What the headers of one HTTP answer said. Fill it by passing every header
 * line to mb_hub_answer_header; a status line starts a new answer (so the
 * last answer of a chain is what remains). */
struct mb_hub_answer {
	long status;		/* from the status line, 0 before one */
	char location[2048];	/* Location, "" if none */
	char link_next[2048];	/* Link rel="next", "" if none */
	char error_code[64];	/* X-Error-Code, "" if none */
	char linked_etag[72];	/* X-Linked-Etag without quotes, "" if none */
	uint64_t linked_size;	/* X-Linked-Size, 0 if none */
	int has_range;		/* a Content-Range "bytes A-B/T" was read */
	uint64_t range_start, range_end, range_total;
	long retry_after;	/* seconds from Retry-After or RateLimit t=, -1 */
};

/* Empties a (no status, no headers, retry_after -1). */
void mb_hub_answer_reset(struct mb_hub_answer *a);

/* Reads one raw header line (len bytes, CRLF included or not) into a. */
void mb_hub_answer_header(struct mb_hub_answer *a, const char *line,
			  size_t len);

/* Maps a final answer that is not 2xx to an mb_err code and sets h->err to
 * a message a person can act on (gated: accept the terms and set HF_TOKEN;
 * missing; refused; rate-limited). what names the thing asked for. */
int mb_hub_answer_error(struct mb_hub *h, const struct mb_hub_answer *a,
			const char *repo, const char *what);

/* Sets the options every hub request uses on a libcurl easy handle (a CURL
 * pointer): user agent, no automatic redirects, http(s) only, the connect
 * timeout and the stall timeout (no byte for h->stall_timeout_ms). */
void mb_hub_easy_defaults(const struct mb_hub *h, void *curl);

/* Writes "Authorization: Bearer TOKEN" to out and returns 1 when a request
 * to url may carry the token (a token is set and url has the endpoint's
 * scheme, host and port); returns 0 and writes "" otherwise. The caller
 * wipes out after use. */
int mb_hub_auth_header(const struct mb_hub *h, const char *url, char *out,
		       size_t cap);

/* Resolves loc (a Location: absolute or relative) against base into out.
 * MB_EPROTO when either does not parse or the result does not fit. */
int mb_hub_url_join(const char *base, const char *loc, char *out, size_t cap);

/* Appends to b the resolve URL of path at rev (a commit) of repo. MB_EINVAL
 * for an unsafe repo or path, MB_ETOOBIG / MB_ENOMEM from b. */
int mb_hub_file_url(const struct mb_hub *h, const char *repo, const char *rev,
		    const char *path, struct mb_buf *b);

/* Sets h->err from a printf format, the token and other secrets redacted
 * (mb_log_redact). */
void mb_hub_seterr(struct mb_hub *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Sleeps ms milliseconds (resuming after a signal). */
void mb_hub_sleep_ms(long ms);

/* Appends s to b with every byte outside [A-Za-z0-9._~-] percent-encoded
 * (and '/' kept when keep_slash). MB_ETOOBIG / MB_ENOMEM from b. */
int mb_hub_add_escaped(struct mb_buf *b, const char *s, int keep_slash);

/* Milliseconds to wait before retry number attempt (1, 2, ...): base * 2^
 * (attempt - 1), capped at cap, then a random 50-100% of that (jitter, so
 * many clients cut at once do not come back at once). */
long mb_hub_backoff_ms(int attempt, long base, long cap);

#endif
