/* hubpush: one commit of files to the hub, LFS included, over libcurl. */
#include "common/hubpush.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hub.h"
#include "common/json.h"
#include "common/log.h"
#include "common/sha256.h"

/* Answers of the API are small; a batch answer for a few thousand parts
 * (a 500 GB file in 64 MB parts) stays under a few MB. */
#define MAX_ANSWER (16u << 20)
#define MAX_ERR_BODY 4096
/* The commit carries small files inline: the hub keeps those under 10 MB
 * each; base64 and a few hundred files stay far under this. */
#define MAX_COMMIT_BODY (256u << 20)
#define MAX_FILES 4096
/* A part count the hub answers with is checked against this before it
 * decides an allocation (S3 allows 10000 parts). */
#define MAX_PARTS 10000
#define SAMPLE 512

int mb_hubpush_base64(struct mb_buf *b, const void *data, size_t len)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	char q[4];
	size_t i;
	int rc = 0;

	if (len / 3 >= SIZE_MAX / 4 - 1)
		return MB_ETOOBIG;
	rc = mb_buf_reserve(b, (len + 2) / 3 * 4);
	for (i = 0; rc == 0 && i + 3 <= len; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 |
			     p[i + 2];

		q[0] = tab[v >> 18];
		q[1] = tab[(v >> 12) & 63];
		q[2] = tab[(v >> 6) & 63];
		q[3] = tab[v & 63];
		rc = mb_buf_add(b, q, 4);
	}
	if (rc == 0 && i < len) {
		unsigned v = (unsigned)p[i] << 16 |
			     (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0);

		q[0] = tab[v >> 18];
		q[1] = tab[(v >> 12) & 63];
		q[2] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		q[3] = '=';
		rc = mb_buf_add(b, q, 4);
	}
	return rc;
}

/* --- one request --- */

struct push;

struct req {
	const char *method;	/* "POST" or "PUT" */
	const char *url;
	const char *ctype;	/* Content-Type, NULL: none */
	const char *accept;	/* Accept, NULL: none */
	int auth;		/* carry the token (to the hub's origin only) */
	const char *data;	/* a body in memory ... */
	size_t len;
	int fd;			/* ... or a slice of a file (fd >= 0) */
	uint64_t off, flen;
	int count_upload;	/* the body's bytes count as uploaded */
	const char *what;	/* for messages: "part 3 of 'x.gguf'" */
	struct mb_buf *answer;	/* a 2xx body (may be NULL) */
	char etag[256];		/* the answer's ETag, as sent */
	long status;
	char error_code[64];
};

struct xfer {
	struct req *q;
	struct push *p;
	uint64_t pos;		/* body bytes handed to libcurl */
	struct mb_buf errbody;
	int toobig;
	int readerr;
	struct mb_hub_answer ans;
	char etag[256];
};

struct push {
	struct mb_hub *h;
	const struct mb_hubpush_opts *o;
	struct mb_hubpush_result *r;
	uint64_t total, done;	/* bytes of LFS content to send, sent */
	double t0;
	const char *cur_file;
};

static void report(struct push *p, const char *phase)
{
	struct mb_hubpush_progress pr;
	double s;

	if (p->o->progress == NULL)
		return;
	s = mb_now_s() - p->t0;
	memset(&pr, 0, sizeof(pr));
	pr.file = p->cur_file;
	pr.phase = phase;
	pr.done = p->done;
	pr.total = p->total;
	pr.rate = s > 0 ? (double)p->r->uploaded / s : 0.0;
	p->o->progress(&pr, p->o->progress_ctx);
}

static size_t on_read(char *buf, size_t sz, size_t n, void *ctx)
{
	struct xfer *x = ctx;
	struct req *q = x->q;
	size_t want = sz * n, got = 0;
	uint64_t total = q->fd >= 0 ? q->flen : q->len;

	if (x->pos >= total)
		return 0;
	if (want > total - x->pos)
		want = (size_t)(total - x->pos);
	if (q->fd >= 0) {
		if (mb_pread_full(q->fd, buf, want, q->off + x->pos, &got) != 0 ||
		    got != want) {
			x->readerr = 1;
			return CURL_READFUNC_ABORT;
		}
	} else {
		memcpy(buf, q->data + x->pos, want);
	}
	x->pos += want;
	if (q->count_upload) {
		x->p->r->uploaded += want;
		x->p->done += want;
		report(x->p, "upload");
	}
	return want;
}

/* libcurl rewinds the body on its own (a 307, an auth retry): allow it. */
static int on_seek(void *ctx, curl_off_t off, int origin)
{
	struct xfer *x = ctx;

	if (origin != SEEK_SET || off < 0)
		return CURL_SEEKFUNC_CANTSEEK;
	if (x->q->count_upload) {
		x->p->r->uploaded -= x->pos;
		x->p->done -= x->pos;
	}
	x->pos = (uint64_t)off;
	if (x->q->count_upload) {
		x->p->r->uploaded += x->pos;
		x->p->done += x->pos;
	}
	return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *data, size_t sz, size_t n, void *ctx)
{
	struct xfer *x = ctx;
	size_t len = sz * n;
	long status = 0;

	curl_easy_getinfo(x->p->h->curl, CURLINFO_RESPONSE_CODE, &status);
	x->p->h->bytes_in += len;
	if (status < 200 || status > 299 || x->q->answer == NULL) {
		if (x->errbody.len < MAX_ERR_BODY)
			mb_buf_add(&x->errbody, data,
				   len < MAX_ERR_BODY ? len : MAX_ERR_BODY);
		return len;
	}
	if (mb_buf_add(x->q->answer, data, len) != 0) {
		x->toobig = 1;
		return 0;
	}
	return len;
}

static size_t on_header(char *line, size_t sz, size_t n, void *ctx)
{
	struct xfer *x = ctx;
	size_t len = sz * n, i = 0;

	mb_hub_answer_header(&x->ans, line, len);
	if (len > 5 && strncmp(line, "HTTP/", 5) == 0)
		x->etag[0] = '\0';
	if (len > 5 && strncasecmp(line, "ETag:", 5) == 0) {
		line += 5;
		len -= 5;
		while (len > 0 && (*line == ' ' || *line == '\t')) {
			line++;
			len--;
		}
		while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n' ||
				   line[len - 1] == ' '))
			len--;
		for (i = 0; i < len && i + 1 < sizeof(x->etag); i++)
			x->etag[i] = line[i];
		x->etag[i] = '\0';
	}
	return sz * n;
}

/* The hub's own message for a refusal ({"error": "..."}), if it sent one. */
static void hub_message(const struct mb_buf *errbody, char *out, size_t cap)
{
	cJSON *doc;
	const char *msg;

	out[0] = '\0';
	if (errbody->len == 0)
		return;
	doc = mb_json_parse(errbody->data, errbody->len);
	if (doc != NULL && mb_json_get_str(doc, "error", 400, &msg) == 0)
		snprintf(out, cap, "%s", msg);
	cJSON_Delete(doc);
}

/*
 * Sends q, retrying 429, 5xx and network errors with backoff (a file body
 * is read again from its offset on each try). Redirects are not followed:
 * no endpoint of the upload protocol answers with one. Returns 0 for a
 * 2xx; otherwise q->status holds the last status (0: none) and, for codes
 * the caller may handle itself (409, 412), MB_EEXIST or MB_EBUSY without
 * touching h->err.
 */
static int send_req(struct push *p, struct req *q)
{
	struct mb_hub *h = p->h;
	long base = p->o->backoff_ms > 0 ? p->o->backoff_ms : 1000;
	long cap = p->o->backoff_max_ms > 0 ? p->o->backoff_max_ms : 30000;
	char auth[600], msg[420];
	struct xfer x;
	size_t answer_start = q->answer != NULL ? q->answer->len : 0;
	int attempt = 0, rc = MB_EINTERNAL, settled = 0;
	CURL *c = h->curl;

	q->status = 0;
	q->etag[0] = '\0';
	q->error_code[0] = '\0';
	if (h->offline) {
		mb_hub_seterr(h, "HF_HUB_OFFLINE is set: not contacting %s", h->endpoint);
		return MB_ENETWORK;
	}
	memset(&x, 0, sizeof(x));
	mb_buf_init(&x.errbody, MAX_ERR_BODY);
	for (;;) {
		struct curl_slist *hdrs = NULL;
		uint64_t size = q->fd >= 0 ? q->flen : q->len;
		char ct[128], ac[128];
		CURLcode cc;
		long wait;

		if (q->answer != NULL) {
			q->answer->len = answer_start;
			if (q->answer->data != NULL)
				q->answer->data[answer_start] = '\0';
		}
		mb_buf_reset(&x.errbody);
		x.q = q;
		x.p = p;
		x.pos = 0;
		x.toobig = x.readerr = 0;
		x.etag[0] = '\0';
		mb_hub_answer_reset(&x.ans);
		curl_easy_reset(c);
		curl_easy_setopt(c, CURLOPT_URL, q->url);
		mb_hub_easy_defaults(h, c);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &x);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, &x);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
		if (strcmp(q->method, "PUT") == 0) {
			curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
					 (curl_off_t)size);
		} else {
			curl_easy_setopt(c, CURLOPT_POST, 1L);
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)size);
		}
		/* no 100-continue round trip before each part */
		hdrs = curl_slist_append(hdrs, "Expect:");
		if (q->ctype != NULL) {
			snprintf(ct, sizeof(ct), "Content-Type: %s", q->ctype);
			hdrs = curl_slist_append(hdrs, ct);
		} else {
			hdrs = curl_slist_append(hdrs, "Content-Type:");
		}
		if (q->accept != NULL) {
			snprintf(ac, sizeof(ac), "Accept: %s", q->accept);
			hdrs = curl_slist_append(hdrs, ac);
		}
		if (q->auth && mb_hub_auth_header(h, q->url, auth, sizeof(auth)))
			hdrs = curl_slist_append(hdrs, auth);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
		cc = curl_easy_perform(c);
		curl_slist_free_all(hdrs);
		memset(auth, 0, sizeof(auth));
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &q->status);
		x.ans.status = q->status;
		h->status = q->status;
		snprintf(q->error_code, sizeof(q->error_code), "%s",
			 x.ans.error_code);
		snprintf(h->error_code, sizeof(h->error_code), "%s",
			 x.ans.error_code);
		settled = 0;
		if (x.readerr) {
			mb_hub_seterr(h, "%s: cannot read the local file", q->what);
			rc = MB_EIO;
			settled = 1;
			break;
		}
		if (x.toobig) {
			mb_hub_seterr(h, "%s: the answer is too large", q->what);
			rc = MB_ETOOBIG;
			settled = 1;
			break;
		}
		if (cc != CURLE_OK) {
			settled = 1;
			rc = cc == CURLE_OPERATION_TIMEDOUT ? MB_ETIMEDOUT
							     : MB_ENETWORK;
			mb_hub_seterr(h, "cannot reach %s for %s: %s", h->endpoint,
			       q->what, curl_easy_strerror(cc));
			wait = mb_hub_backoff_ms(attempt + 1, base, cap);
		} else if (q->status == 429 || q->status >= 500) {
			wait = x.ans.retry_after >= 0
				       ? x.ans.retry_after * 1000
				       : mb_hub_backoff_ms(attempt + 1, base, cap);
		} else {
			break;
		}
		/* what this try sent is sent again */
		if (q->count_upload) {
			p->done -= x.pos;
			x.pos = 0;
		}
		if (++attempt >= h->max_attempts)
			break;
		if (wait > h->max_retry_wait_ms)
			wait = h->max_retry_wait_ms;
		p->r->retries++;
		mb_log(MB_LOG_INFO, "hub: %s: %s, retrying in %ld ms", q->what,
		       cc != CURLE_OK ? curl_easy_strerror(cc) : "server error",
		       wait);
		mb_hub_sleep_ms(wait);
	}
	snprintf(q->etag, sizeof(q->etag), "%s", x.etag);
	if (settled) {
		/* h->err says it already */
	} else if (q->status >= 200 && q->status < 300) {
		rc = 0;
	} else if (q->status == 409) {
		rc = MB_EEXIST;
	} else if (q->status == 412) {
		rc = MB_EBUSY;
	} else {
		hub_message(&x.errbody, msg, sizeof(msg));
		if (q->status == 401 || q->status == 403) {
			mb_hub_seterr(h, "%s: the hub refused %s (HTTP %ld%s%s): %s", q->what,
			       h->token == NULL ? "an anonymous request"
						: "the token",
			       q->status, msg[0] ? ": " : "", msg,
			       h->token == NULL
				       ? "set HF_TOKEN to a token with write access"
				       : "the token needs write access to the "
					 "repository (a fine-grained token: "
					 "\"write\" on that namespace)");
			rc = MB_EAUTH;
		} else if (q->status == 404) {
			mb_hub_seterr(h, "%s: not found (HTTP 404)%s%s", q->what,
			       msg[0] ? ": " : "", msg);
			rc = MB_ENOENT;
		} else {
			mb_hub_seterr(h, "%s: the hub answered HTTP %ld%s%s", q->what,
			       q->status, msg[0] ? ": " : "", msg);
			rc = q->status >= 500 || q->status == 429 ? MB_ENETWORK
								  : MB_EPROTO;
		}
	}
	mb_buf_release(&x.errbody);
	return rc;
}

/* --- the protocol --- */

struct item {
	const struct mb_hubpush_file *f;
	int fd;
	uint64_t size;
	char sha[65];
	unsigned char sample[SAMPLE];
	size_t nsample;
	int lfs;
	int dup;		/* same content as an earlier item: sent once */
};

/* POSTs len bytes of data as ctype (also the Accept type when accept). */
static int post(struct push *p, const char *url, const char *ctype, int accept,
		int auth, const char *data, size_t len, const char *what,
		struct mb_buf *ans)
{
	struct req q;

	memset(&q, 0, sizeof(q));
	q.method = "POST";
	q.url = url;
	q.ctype = ctype;
	q.accept = accept ? ctype : NULL;
	q.auth = auth;
	q.data = data;
	q.len = len;
	q.fd = -1;
	q.what = what;
	q.answer = ans;
	return send_req(p, &q);
}

/* POSTs a small JSON body with the LFS media type. */
static int lfs_post(struct push *p, const char *url, const char *body,
		    int auth, const char *what, struct mb_buf *ans)
{
	return post(p, url, "application/vnd.git-lfs+json", 1, auth, body,
		    strlen(body), what, ans);
}

/* POST /api/repos/create; a 409 (it is there) is success, as
 * huggingface_hub's exist_ok takes it. */
static int create_repo(struct push *p, const char *repo, int private_repo,
		       int *created)
{
	struct mb_hub *h = p->h;
	struct mb_buf url, body, ans;
	const char *slash = strchr(repo, '/');
	char name[128], org[128];
	int rc = MB_ENOMEM;

	*created = 0;
	if (!mb_hub_repo_id_ok(repo)) {
		mb_hub_seterr(h, "'%s' is not a repository id (org/name)", repo);
		return MB_EINVAL;
	}
	if (h->token == NULL) {
		mb_hub_seterr(h, "creating '%s' needs a token: set HF_TOKEN to a token "
		       "with write access", repo);
		return MB_EAUTH;
	}
	snprintf(org, sizeof(org), "%.*s", (int)(slash - repo), repo);
	snprintf(name, sizeof(name), "%s", slash + 1);
	mb_buf_init(&url, 4096);
	mb_buf_init(&body, 4096);
	mb_buf_init(&ans, MAX_ANSWER);
	if (mb_buf_addf(&url, "%s/api/repos/create", h->endpoint) != 0 ||
	    mb_buf_adds(&body, "{\"name\":") != 0 ||
	    mb_json_quote(&body, name) != 0 ||
	    mb_buf_adds(&body, ",\"organization\":") != 0 ||
	    mb_json_quote(&body, org) != 0 ||
	    mb_buf_addf(&body, ",\"private\":%s}",
			private_repo ? "true" : "false") != 0)
		goto out;
	rc = post(p, url.data, "application/json", 0, 1, body.data, body.len,
		  "creating the repository", &ans);
	if (rc == MB_EEXIST)
		rc = 0;
	else if (rc == 0)
		*created = 1;
out:
	mb_buf_release(&url);
	mb_buf_release(&body);
	mb_buf_release(&ans);
	return rc;
}

int mb_hubpush_create_repo(struct mb_hub *h, const char *repo,
			   int private_repo, int *created)
{
	struct mb_hubpush_opts o;
	struct mb_hubpush_result r;
	struct push p;

	memset(&o, 0, sizeof(o));
	memset(&r, 0, sizeof(r));
	memset(&p, 0, sizeof(p));
	p.h = h;
	p.o = &o;
	p.r = &r;
	return create_repo(&p, repo, private_repo, created);
}

/* Hashes each file (checking the expected sha256) and reads its sample. */
static int prepare(struct push *p, struct item *it, size_t n)
{
	struct mb_hub *h = p->h;
	size_t i, j;

	for (i = 0; i < n; i++) {
		struct stat st;
		uint8_t d[MB_SHA256_LEN];
		int rc;

		it[i].fd = open(it[i].f->local, O_RDONLY | O_CLOEXEC);
		if (it[i].fd < 0 || fstat(it[i].fd, &st) != 0 ||
		    !S_ISREG(st.st_mode)) {
			rc = it[i].fd < 0 ? mb_err_from_errno(errno) : MB_EINVAL;
			mb_hub_seterr(h, "cannot read '%s': %s", it[i].f->local,
			       it[i].fd < 0 ? strerror(errno)
					    : "not a regular file");
			return rc;
		}
		it[i].size = (uint64_t)st.st_size;
		p->cur_file = it[i].f->path;
		report(p, "hash");
		rc = mb_sha256_file(it[i].f->local, d, NULL);
		if (rc != 0) {
			mb_hub_seterr(h, "cannot hash '%s': %s", it[i].f->local,
			       mb_strerror(rc));
			return rc;
		}
		mb_sha256_hex(d, it[i].sha);
		if (it[i].f->sha256 != NULL &&
		    strcasecmp(it[i].f->sha256, it[i].sha) != 0) {
			mb_hub_seterr(h, "'%s' does not match its manifest (sha256 %s, "
			       "expected %s): not pushing a damaged file",
			       it[i].f->local, it[i].sha, it[i].f->sha256);
			return MB_ECHECKSUM;
		}
		if (mb_pread_full(it[i].fd, it[i].sample, SAMPLE, 0,
				  &it[i].nsample) != 0) {
			mb_hub_seterr(h, "cannot read '%s'", it[i].f->local);
			return MB_EIO;
		}
		p->r->bytes += it[i].size;
		for (j = 0; j < i; j++)
			if (strcmp(it[j].f->path, it[i].f->path) == 0) {
				mb_hub_seterr(h, "'%s' is named twice", it[i].f->path);
				return MB_EINVAL;
			}
	}
	p->cur_file = NULL;
	return 0;
}

/* Asks the hub which files go through LFS (preupload). */
static int preupload(struct push *p, const char *rev, struct item *it,
		     size_t n)
{
	struct mb_hub *h = p->h;
	struct mb_buf url, body, ans;
	const cJSON *files, *e;
	cJSON *doc = NULL;
	size_t i;
	int rc = MB_ENOMEM;

	mb_buf_init(&url, 4096);
	mb_buf_init(&body, MAX_ANSWER);
	mb_buf_init(&ans, MAX_ANSWER);
	if (mb_buf_addf(&url, "%s/api/models/%s/preupload/", h->endpoint,
			p->o->repo) != 0 ||
	    mb_hub_add_escaped(&url, rev, 0) != 0 ||
	    mb_buf_adds(&body, "{\"files\":[") != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (mb_buf_adds(&body, i ? ",{\"path\":" : "{\"path\":") != 0 ||
		    mb_json_quote(&body, it[i].f->path) != 0 ||
		    mb_buf_adds(&body, ",\"sample\":\"") != 0 ||
		    mb_hubpush_base64(&body, it[i].sample, it[i].nsample) != 0 ||
		    mb_buf_addf(&body, "\",\"size\":%llu}",
				(unsigned long long)it[i].size) != 0)
			goto out;
	}
	if (mb_buf_adds(&body, "]}") != 0)
		goto out;
	rc = post(p, url.data, "application/json", 0, 1, body.data, body.len,
		  "preupload", &ans);
	if (rc != 0)
		goto out;
	rc = MB_EPROTO;
	doc = mb_json_parse(ans.data, ans.len);
	files = cJSON_GetObjectItemCaseSensitive(doc, "files");
	if (!cJSON_IsArray(files)) {
		mb_hub_seterr(h, "preupload: the answer has no file list");
		goto out;
	}
	for (i = 0; i < n; i++)
		it[i].lfs = -1;
	cJSON_ArrayForEach(e, files) {
		const char *path, *mode;

		if (mb_json_get_str(e, "path", 1024, &path) != 0 ||
		    mb_json_get_str(e, "uploadMode", 16, &mode) != 0 ||
		    (strcmp(mode, "lfs") != 0 && strcmp(mode, "regular") != 0)) {
			mb_hub_seterr(h, "preupload: malformed entry in the answer");
			goto out;
		}
		for (i = 0; i < n; i++)
			if (strcmp(it[i].f->path, path) == 0)
				it[i].lfs = strcmp(mode, "lfs") == 0;
	}
	for (i = 0; i < n; i++) {
		if (it[i].lfs < 0) {
			mb_hub_seterr(h, "preupload: the answer leaves out '%s'",
			       it[i].f->path);
			goto out;
		}
		/* as huggingface_hub: an empty file is always regular; and
		 * nothing large goes inline, whatever the answer */
		if (it[i].size == 0)
			it[i].lfs = 0;
		else if (it[i].size > MB_HUBPUSH_REGULAR_MAX)
			it[i].lfs = 1;
	}
	rc = 0;
out:
	cJSON_Delete(doc);
	mb_buf_release(&url);
	mb_buf_release(&body);
	mb_buf_release(&ans);
	return rc;
}

static int is_digits(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}


/* Sends one object: a single PUT, or its parts and the completion. */
static int upload_object(struct push *p, struct item *it, const cJSON *upload)
{
	struct mb_hub *h = p->h;
	const cJSON *header = cJSON_GetObjectItemCaseSensitive(upload, "header");
	const cJSON *e;
	const char *href, *cs = NULL, **urls = NULL;
	char what[1200];
	struct mb_buf body;
	uint64_t chunk = 0, nparts, k;
	char (*etags)[256] = NULL;
	struct req q;
	int rc = MB_EPROTO;

	mb_buf_init(&body, MAX_ANSWER);
	if (mb_json_get_str(upload, "href", 8192, &href) != 0 ||
	    (header != NULL && !cJSON_IsObject(header))) {
		mb_hub_seterr(h, "LFS batch: malformed upload action for '%s'",
		       it->f->path);
		goto out;
	}
	if (header != NULL && mb_json_get_str(header, "chunk_size", 32, &cs) == 0) {
		char *end;

		errno = 0;
		chunk = strtoull(cs, &end, 10);
		if (errno != 0 || *end != '\0' || chunk == 0) {
			mb_hub_seterr(h, "LFS batch: bad chunk_size '%s'", cs);
			goto out;
		}
	}
	memset(&q, 0, sizeof(q));
	q.method = "PUT";
	q.fd = it->fd;
	q.count_upload = 1;
	/* storage URLs are signed: the token never goes there (and
	 * mb_hub_auth_header would refuse another origin anyway) */
	q.auth = 0;
	p->cur_file = it->f->path;
	if (chunk == 0) {
		snprintf(what, sizeof(what), "uploading '%s'", it->f->path);
		q.url = href;
		q.off = 0;
		q.flen = it->size;
		q.what = what;
		rc = send_req(p, &q);
		goto out;
	}
	nparts = (it->size + chunk - 1) / chunk;
	if (nparts > MAX_PARTS) {
		mb_hub_seterr(h, "LFS batch: %llu parts for '%s'",
		       (unsigned long long)nparts, it->f->path);
		goto out;
	}
	rc = MB_ENOMEM;
	urls = mb_calloc(nparts + 1, sizeof(*urls));
	etags = mb_calloc(nparts + 1, sizeof(*etags));
	if (urls == NULL || etags == NULL)
		goto out;
	rc = MB_EPROTO;
	k = 0;
	cJSON_ArrayForEach(e, header) {
		unsigned long long num;

		if (!is_digits(e->string))
			continue;
		num = strtoull(e->string, NULL, 10);
		if (num < 1 || num > nparts || urls[num] != NULL ||
		    !cJSON_IsString(e)) {
			mb_hub_seterr(h, "LFS batch: bad part '%s' for '%s'", e->string,
			       it->f->path);
			goto out;
		}
		urls[num] = e->valuestring;
		k++;
	}
	if (k != nparts) {
		/* huggingface_hub's check: one URL per chunk_size slice */
		mb_hub_seterr(h, "LFS batch: %llu part URLs for '%s', expected %llu",
		       (unsigned long long)k, it->f->path,
		       (unsigned long long)nparts);
		goto out;
	}
	for (k = 1; k <= nparts; k++) {
		snprintf(what, sizeof(what), "part %llu of %llu of '%s'",
			 (unsigned long long)k, (unsigned long long)nparts,
			 it->f->path);
		q.url = urls[k];
		q.off = (k - 1) * chunk;
		q.flen = k < nparts ? chunk : it->size - q.off;
		q.what = what;
		rc = send_req(p, &q);
		if (rc != 0)
			goto out;
		if (q.etag[0] == '\0') {
			mb_hub_seterr(h, "%s: the storage answered without an ETag", what);
			rc = MB_EPROTO;
			goto out;
		}
		memcpy(etags[k], q.etag, sizeof(etags[k]));
		p->r->parts++;
	}
	/* the completion: {"oid":..., "parts":[{"partNumber":N,"etag":E}]} */
	rc = MB_ENOMEM;
	if (mb_buf_addf(&body, "{\"oid\":\"%s\",\"parts\":[", it->sha) != 0)
		goto out;
	for (k = 1; k <= nparts; k++)
		if (mb_buf_addf(&body, "%s{\"partNumber\":%llu,\"etag\":",
				k > 1 ? "," : "", (unsigned long long)k) != 0 ||
		    mb_json_quote(&body, etags[k]) != 0 ||
		    mb_buf_adds(&body, "}") != 0)
			goto out;
	if (mb_buf_adds(&body, "]}") != 0)
		goto out;
	snprintf(what, sizeof(what), "completing the upload of '%s'",
		 it->f->path);
	rc = lfs_post(p, href, body.data, 0, what, NULL);
out:
	p->cur_file = NULL;
	free(urls);
	free(etags);
	mb_buf_release(&body);
	return rc;
}

/* Runs the LFS batch for the LFS items and sends what the hub lacks. */
static int lfs_upload(struct push *p, const char *rev, struct item *it,
		      size_t n)
{
	struct mb_hub *h = p->h;
	struct mb_buf url, body, ans;
	const cJSON *objs, *e;
	cJSON *doc = NULL;
	size_t i, nl = 0;
	int rc = MB_ENOMEM;

	for (i = 0; i < n; i++) {
		size_t j;

		if (!it[i].lfs)
			continue;
		for (j = 0; j < i; j++)
			if (it[j].lfs && strcmp(it[j].sha, it[i].sha) == 0)
				it[i].dup = 1;
		if (!it[i].dup) {
			nl++;
			p->total += it[i].size;
		}
		p->r->nlfs++;
	}
	if (nl == 0)
		return 0;
	mb_buf_init(&url, 4096);
	mb_buf_init(&body, MAX_ANSWER);
	mb_buf_init(&ans, MAX_ANSWER);
	if (mb_buf_addf(&url, "%s/%s.git/info/lfs/objects/batch", h->endpoint,
			p->o->repo) != 0 ||
	    mb_buf_adds(&body, "{\"operation\":\"upload\",\"transfers\":"
			"[\"basic\",\"multipart\"],\"hash_algo\":\"sha256\","
			"\"ref\":{\"name\":") != 0 ||
	    mb_json_quote(&body, rev) != 0 ||
	    mb_buf_adds(&body, "},\"objects\":[") != 0)
		goto out;
	nl = 0;
	for (i = 0; i < n; i++)
		if (it[i].lfs && !it[i].dup &&
		    mb_buf_addf(&body, "%s{\"oid\":\"%s\",\"size\":%llu}",
				nl++ ? "," : "", it[i].sha,
				(unsigned long long)it[i].size) != 0)
			goto out;
	if (mb_buf_adds(&body, "]}") != 0)
		goto out;
	rc = lfs_post(p, url.data, body.data, 1, "LFS batch", &ans);
	if (rc != 0)
		goto out;
	rc = MB_EPROTO;
	doc = mb_json_parse(ans.data, ans.len);
	objs = cJSON_GetObjectItemCaseSensitive(doc, "objects");
	if (!cJSON_IsArray(objs)) {
		mb_hub_seterr(h, "LFS batch: the answer has no object list");
		goto out;
	}
	cJSON_ArrayForEach(e, objs) {
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(e, "error");
		const cJSON *acts = cJSON_GetObjectItemCaseSensitive(e, "actions");
		const cJSON *up, *verify;
		const char *oid, *msg = "";
		struct item *x = NULL;
		uint64_t size;

		if (mb_json_get_str(e, "oid", 64, &oid) != 0 ||
		    mb_json_get_u64(e, "size", MB_JSON_MAX_INT, &size) != 0) {
			mb_hub_seterr(h, "LFS batch: malformed object in the answer");
			rc = MB_EPROTO;
			goto out;
		}
		for (i = 0; i < n && x == NULL; i++)
			if (it[i].lfs && !it[i].dup && strcmp(it[i].sha, oid) == 0 &&
			    it[i].size == size)
				x = &it[i];
		if (x == NULL) {
			mb_hub_seterr(h, "LFS batch: the answer names an object not "
			       "asked for");
			rc = MB_EPROTO;
			goto out;
		}
		if (err != NULL) {
			mb_json_get_str(err, "message", 300, &msg);
			mb_hub_seterr(h, "LFS batch refused '%s': %s", x->f->path, msg);
			rc = MB_EPROTO;
			goto out;
		}
		up = cJSON_GetObjectItemCaseSensitive(acts, "upload");
		if (acts == NULL || up == NULL) {
			/* the hub has it already */
			p->r->reused += x->size;
			p->done += x->size;
			report(p, "upload");
			continue;
		}
		rc = upload_object(p, x, up);
		if (rc != 0)
			goto out;
		verify = cJSON_GetObjectItemCaseSensitive(acts, "verify");
		if (verify != NULL) {
			const char *vhref;
			char vbody[160], what[1100];

			if (mb_json_get_str(verify, "href", 8192, &vhref) != 0) {
				mb_hub_seterr(h, "LFS batch: malformed verify action");
				rc = MB_EPROTO;
				goto out;
			}
			snprintf(vbody, sizeof(vbody), "{\"oid\":\"%s\",\"size\":%llu}",
				 x->sha, (unsigned long long)x->size);
			snprintf(what, sizeof(what), "verifying '%s'", x->f->path);
			rc = lfs_post(p, vhref, vbody, 1, what, NULL);
			if (rc != 0)
				goto out;
		}
	}
	rc = 0;
out:
	cJSON_Delete(doc);
	mb_buf_release(&url);
	mb_buf_release(&body);
	mb_buf_release(&ans);
	return rc;
}

/* The commit's NDJSON: the header, then one line per file. */
static int commit_body(struct push *p, const char *parent, struct item *it,
		       size_t n, struct mb_buf *b)
{
	char msg[300];
	const char *summary = p->o->message;
	size_t i;
	int rc;

	if (summary == NULL || *summary == '\0') {
		snprintf(msg, sizeof(msg), "Upload %zu file%s with mibera", n,
			 n == 1 ? "" : "s");
		summary = msg;
	}
	rc = mb_buf_adds(b, "{\"key\":\"header\",\"value\":{\"summary\":");
	if (rc == 0)
		rc = mb_json_quote(b, summary);
	if (rc == 0)
		rc = mb_buf_adds(b, ",\"description\":\"\"");
	if (rc == 0 && parent != NULL)
		rc = mb_buf_addf(b, ",\"parentCommit\":\"%s\"", parent);
	if (rc == 0)
		rc = mb_buf_adds(b, "}}\n");
	for (i = 0; rc == 0 && i < n; i++) {
		if (it[i].lfs) {
			rc = mb_buf_adds(b, "{\"key\":\"lfsFile\",\"value\":{\"path\":");
			if (rc == 0)
				rc = mb_json_quote(b, it[i].f->path);
			if (rc == 0)
				rc = mb_buf_addf(b, ",\"algo\":\"sha256\",\"oid\":\"%s\","
						 "\"size\":%llu}}\n", it[i].sha,
						 (unsigned long long)it[i].size);
			continue;
		}
		{
			char *data = mb_malloc(it[i].size ? (size_t)it[i].size : 1);
			size_t got = 0;

			if (data == NULL)
				return MB_ENOMEM;
			if (mb_pread_full(it[i].fd, data, (size_t)it[i].size, 0,
					  &got) != 0 ||
			    got != it[i].size) {
				free(data);
				mb_hub_seterr(p->h, "cannot read '%s'", it[i].f->local);
				return MB_EIO;
			}
			rc = mb_buf_adds(b, "{\"key\":\"file\",\"value\":{\"content\":\"");
			if (rc == 0)
				rc = mb_hubpush_base64(b, data, got);
			free(data);
			if (rc == 0)
				rc = mb_buf_adds(b, "\",\"path\":");
			if (rc == 0)
				rc = mb_json_quote(b, it[i].f->path);
			if (rc == 0)
				rc = mb_buf_adds(b, ",\"encoding\":\"base64\"}}\n");
		}
	}
	if (rc != 0 && rc != MB_EIO)
		mb_hub_seterr(p->h, "the commit is too large to send at once");
	return rc;
}

/* Checks that the tree at commit holds every file as sent. */
static int verify_tree(struct push *p, const char *commit, struct item *it,
		       size_t n)
{
	struct mb_hub *h = p->h;
	struct mb_hub_repo *r = NULL;
	size_t i;
	int rc;

	rc = mb_hub_list(h, p->o->repo, commit, &r);
	if (rc != 0)
		return rc;
	for (i = 0; i < n; i++) {
		const struct mb_hub_file *f = mb_hub_repo_find(r, it[i].f->path);

		if (f == NULL || f->size != it[i].size ||
		    (it[i].lfs && (!f->lfs || strcmp(f->sha256, it[i].sha) != 0))) {
			mb_hub_seterr(h, "'%s' at %.12s on the hub differs from the "
			       "local file", it[i].f->path, commit);
			rc = MB_ECHECKSUM;
			break;
		}
	}
	mb_hub_repo_free(r);
	return rc;
}

static int do_commit(struct push *p, const char *rev, struct item *it,
		     size_t n)
{
	struct mb_hub *h = p->h;
	struct mb_hub_repo *head = NULL;
	struct mb_buf url, body, ans;
	const char *oid, *curl_s;
	cJSON *doc = NULL;
	int rc;

	/* the parent: a retried commit that did land is refused (412), not
	 * applied twice */
	rc = mb_hub_list(h, p->o->repo, rev, &head);
	if (rc != 0)
		return rc;
	mb_buf_init(&url, 4096);
	mb_buf_init(&body, MAX_COMMIT_BODY);
	mb_buf_init(&ans, MAX_ANSWER);
	rc = MB_ENOMEM;
	if (mb_buf_addf(&url, "%s/api/models/%s/commit/", h->endpoint,
			p->o->repo) != 0 ||
	    mb_hub_add_escaped(&url, rev, 0) != 0)
		goto out;
	rc = commit_body(p, head->commit, it, n, &body);
	if (rc != 0)
		goto out;
	p->cur_file = NULL;
	report(p, "commit");
	rc = post(p, url.data, "application/x-ndjson", 0, 1, body.data, body.len,
		  "the commit", &ans);
	if (rc == MB_EBUSY) {
		/* the branch moved since we read it: our own earlier try (its
		 * answer lost), or someone else. Ours when the new head holds
		 * our files. */
		struct mb_hub_repo *now = NULL;

		rc = mb_hub_list(h, p->o->repo, rev, &now);
		if (rc == 0) {
			snprintf(p->r->commit, sizeof(p->r->commit), "%s",
				 now->commit);
			mb_hub_repo_free(now);
			rc = verify_tree(p, p->r->commit, it, n);
			if (rc != 0)
				mb_hub_seterr(h, "the commit was refused: '%s' changed "
				       "while pushing; run the push again",
				       p->o->repo);
		}
		goto out;
	}
	if (rc != 0)
		goto out;
	doc = mb_json_parse(ans.data, ans.len);
	if (doc == NULL || mb_json_get_str(doc, "commitOid", 40, &oid) != 0 ||
	    strlen(oid) != 40) {
		mb_hub_seterr(h, "the commit's answer has no commitOid");
		rc = MB_EPROTO;
		goto out;
	}
	snprintf(p->r->commit, sizeof(p->r->commit), "%s", oid);
	if (mb_json_get_str(doc, "commitUrl", sizeof(p->r->commit_url) - 1,
			    &curl_s) == 0)
		snprintf(p->r->commit_url, sizeof(p->r->commit_url), "%s", curl_s);
	report(p, "verify");
	rc = verify_tree(p, p->r->commit, it, n);
out:
	cJSON_Delete(doc);
	mb_hub_repo_free(head);
	mb_buf_release(&url);
	mb_buf_release(&body);
	mb_buf_release(&ans);
	return rc;
}

int mb_hubpush(struct mb_hub *h, const struct mb_hubpush_opts *o,
	       struct mb_hubpush_result *r)
{
	const char *rev = o->rev != NULL ? o->rev : "main";
	struct item *it = NULL;
	struct push p;
	size_t i;
	int rc;

	memset(r, 0, sizeof(*r));
	memset(&p, 0, sizeof(p));
	p.h = h;
	p.o = o;
	p.r = r;
	p.t0 = mb_now_s();
	h->err[0] = '\0';
	if (!mb_hub_repo_id_ok(o->repo)) {
		mb_hub_seterr(h, "'%s' is not a repository id (org/name)", o->repo);
		return MB_EINVAL;
	}
	if (o->nfiles == 0 || o->nfiles > MAX_FILES) {
		mb_hub_seterr(h, "%zu files to push: between 1 and %d", o->nfiles,
		       MAX_FILES);
		return MB_EINVAL;
	}
	for (i = 0; i < o->nfiles; i++)
		if (!mb_repo_path_ok(o->files[i].path)) {
			mb_hub_seterr(h, "'%s' is not a valid path in a repository",
			       o->files[i].path);
			return MB_EINVAL;
		}
	it = mb_calloc(o->nfiles, sizeof(*it));
	if (it == NULL)
		return MB_ENOMEM;
	for (i = 0; i < o->nfiles; i++) {
		it[i].f = &o->files[i];
		it[i].fd = -1;
	}
	r->nfiles = o->nfiles;
	rc = prepare(&p, it, o->nfiles);
	if (rc == 0)
		rc = create_repo(&p, o->repo, o->private_repo, &r->created);
	if (rc == 0)
		rc = preupload(&p, rev, it, o->nfiles);
	if (rc == 0)
		rc = lfs_upload(&p, rev, it, o->nfiles);
	if (rc == 0)
		rc = do_commit(&p, rev, it, o->nfiles);
	for (i = 0; i < o->nfiles; i++)
		if (it[i].fd >= 0)
			close(it[i].fd);
	free(it);
	r->seconds = mb_now_s() - p.t0;
	return rc;
}
