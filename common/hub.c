/* hub: Hugging Face hub API client over libcurl. */
#include "common/hub.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "mb_version.h"

/* A tree page of the real hub is at most a few hundred KB. */
#define MAX_API_BODY (16u << 20)
#define MAX_ERR_BODY 4096
#define MAX_FILES 100000
#define MAX_PAGES 1000
#define MAX_REDIRECTS 5

void mb_hub_seterr(struct mb_hub *h, const char *fmt, ...)
{
	char raw[sizeof(h->err)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	mb_log_redact(raw, h->err, sizeof(h->err));
}

long mb_hub_backoff_ms(int attempt, long base, long cap)
{
	static unsigned seed;
	long ms = base;
	int i;

	if (seed == 0)
		seed = (unsigned)time(NULL) ^ (unsigned)clock() ^ 0x9e3779b9u;
	for (i = 1; i < attempt && ms < cap; i++)
		ms *= 2;
	if (ms > cap)
		ms = cap;
	/* rand_r keeps the jitter out of the program's own rand() stream */
	return ms / 2 + (long)((unsigned long)rand_r(&seed) %
			       (unsigned long)(ms / 2 + 1));
}

int mb_hub_repo_id_ok(const char *s)
{
	const char *slash = strchr(s, '/');
	size_t i, n = strlen(s);

	if (slash == NULL || slash == s || slash[1] == '\0' ||
	    strchr(slash + 1, '/') != NULL || n > 96 || strstr(s, "..") != NULL)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("/._-", s[i]) == NULL)
			return 0;
	return 1;
}

int mb_hub_token(char *out, size_t cap)
{
	const char *env = getenv("HF_TOKEN"), *p;
	char path[4096];
	char *data = NULL;
	size_t len = 0, a, b;

	if (cap > 0)
		out[0] = '\0';
	if (env != NULL && *env != '\0') {
		if (strlen(env) >= cap)
			return MB_ETOOBIG;
		snprintf(out, cap, "%s", env);
		return 0;
	}
	/* where `hf auth login` keeps it, in huggingface_hub's order */
	if ((p = getenv("HF_TOKEN_PATH")) != NULL && *p != '\0')
		snprintf(path, sizeof(path), "%s", p);
	else if ((p = getenv("HF_HOME")) != NULL && *p != '\0')
		snprintf(path, sizeof(path), "%s/token", p);
	else if ((p = getenv("XDG_CACHE_HOME")) != NULL && *p != '\0')
		snprintf(path, sizeof(path), "%s/huggingface/token", p);
	else if ((p = getenv("HOME")) != NULL && *p != '\0')
		snprintf(path, sizeof(path), "%s/.cache/huggingface/token", p);
	else
		return MB_ENOENT;
	if (mb_read_file(path, 4096, &data, &len) != 0)
		return MB_ENOENT;
	for (a = 0; a < len && (data[a] == ' ' || data[a] == '\n' ||
				data[a] == '\r' || data[a] == '\t'); a++)
		;
	for (b = len; b > a && (data[b - 1] == ' ' || data[b - 1] == '\n' ||
				data[b - 1] == '\r' || data[b - 1] == '\t'); b--)
		;
	if (b == a || b - a >= cap || memchr(data + a, '\n', b - a) != NULL) {
		free(data);
		return b == a ? MB_ENOENT : MB_EFORMAT;
	}
	memcpy(out, data + a, b - a);
	out[b - a] = '\0';
	for (a = 0; a < len; a++) /* the secret leaves memory */
		((volatile char *)data)[a] = 0;
	free(data);
	return 0;
}

int mb_hub_init(struct mb_hub *h, const char *endpoint, const char *token)
{
	const char *off = getenv("HF_HUB_OFFLINE");
	char found[512];
	size_t n;

	memset(h, 0, sizeof(*h));
	if (endpoint == NULL)
		endpoint = getenv("HF_ENDPOINT");
	if (endpoint == NULL || *endpoint == '\0')
		endpoint = MB_HUB_DEFAULT_ENDPOINT;
	if (strncmp(endpoint, "http://", 7) != 0 &&
	    strncmp(endpoint, "https://", 8) != 0)
		return MB_EINVAL;
	n = strlen(endpoint);
	while (n > 0 && endpoint[n - 1] == '/')
		n--;
	if (n >= sizeof(h->endpoint))
		return MB_EINVAL;
	memcpy(h->endpoint, endpoint, n);
	h->endpoint[n] = '\0';
	if (token == NULL && mb_hub_token(found, sizeof(found)) == 0)
		token = found;
	if (token != NULL && *token != '\0') {
		h->token = mb_strdup(token);
		if (h->token == NULL)
			return MB_ENOMEM;
		mb_log_add_secret(token); /* short test tokens are refused: fine */
	}
	memset(found, 0, sizeof(found));
	h->offline = off != NULL && (strcmp(off, "1") == 0 ||
				     strcasecmp(off, "true") == 0 ||
				     strcasecmp(off, "yes") == 0);
	h->connect_timeout_ms = 10000;
	h->stall_timeout_ms = 30000;
	h->max_attempts = 5;
	h->max_retry_wait_ms = 60000;
	h->curl = curl_easy_init();
	if (h->curl == NULL) {
		mb_hub_release(h);
		return MB_ENOMEM;
	}
	return 0;
}

void mb_hub_release(struct mb_hub *h)
{
	if (h == NULL)
		return;
	if (h->curl != NULL)
		curl_easy_cleanup(h->curl);
	h->curl = NULL;
	if (h->token != NULL) {
		for (volatile char *p = h->token; *p; p++)
			*p = 0;
		free(h->token);
	}
	h->token = NULL;
}

/* --- one exchange --- */

struct exchange {
	struct mb_hub *h;
	struct mb_buf *body;	/* where a 2xx body goes */
	struct mb_buf errbody;	/* a non-2xx body, for the message */
	int ranged;		/* a Range was asked for */
	uint64_t skip, want;	/* for a 200 to a ranged request */
	uint64_t seen;		/* body bytes of this answer so far */
	int full;		/* got everything wanted: stop early */
	int toobig;
	struct mb_hub_answer ans;
};

static size_t on_body(char *data, size_t sz, size_t n, void *ctx)
{
	struct exchange *x = ctx;
	size_t len = sz * n, take;
	long status = 0;

	curl_easy_getinfo(x->h->curl, CURLINFO_RESPONSE_CODE, &status);
	x->h->bytes_in += len;
	if (status < 200 || status > 299) {
		if (x->errbody.len < MAX_ERR_BODY)
			mb_buf_add(&x->errbody, data,
				   len < MAX_ERR_BODY ? len : MAX_ERR_BODY);
		return len;
	}
	if (status == 200 && x->ranged) {
		/* the server ignored the range: cut our slice from the whole */
		uint64_t start = x->seen, end = x->seen + len;
		uint64_t lo = x->skip, hi = x->want ? x->skip + x->want : UINT64_MAX;

		x->seen = end;
		if (end <= lo)
			return len;
		if (start >= hi) {
			x->full = 1;
			return 0; /* stop the transfer: we have it all */
		}
		data += lo > start ? lo - start : 0;
		take = (size_t)((end < hi ? end : hi) - (lo > start ? lo : start));
		if (mb_buf_add(x->body, data, take) != 0) {
			x->toobig = 1;
			return 0;
		}
		if (end >= hi) {
			x->full = 1;
			return 0;
		}
		return len;
	}
	x->seen += len;
	if (mb_buf_add(x->body, data, len) != 0) {
		x->toobig = 1;
		return 0;
	}
	return len;
}

static void header_value(const char *line, size_t len, const char *name,
			 char *out, size_t cap)
{
	size_t n = strlen(name), i = 0;

	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return;
	line += n + 1;
	len -= n + 1;
	while (len > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n' ||
			   line[len - 1] == ' '))
		len--;
	for (i = 0; i < len && i + 1 < cap; i++)
		out[i] = line[i];
	out[i] = '\0';
}

void mb_hub_answer_reset(struct mb_hub_answer *a)
{
	memset(a, 0, sizeof(*a));
	a->retry_after = -1;
}

/* Parses a decimal u64 filling all of s; -1 otherwise. */
static int parse_u64(const char *s, const char *end, uint64_t *out)
{
	uint64_t v = 0;

	if (s == end)
		return -1;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static void unquote(char *v)
{
	size_t n = strlen(v);

	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		memmove(v, v + 1, n - 2);
		v[n - 2] = '\0';
	}
}

void mb_hub_answer_header(struct mb_hub_answer *a, const char *line,
			  size_t len)
{
	char v[2048] = "";

	if (len > 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* a new answer (after a 100 Continue, a redirect): forget the
		 * last one */
		const char *sp = memchr(line, ' ', len);

		mb_hub_answer_reset(a);
		if (sp != NULL && (size_t)(sp - line) + 4 <= len &&
		    isdigit((unsigned char)sp[1]) && isdigit((unsigned char)sp[2]) &&
		    isdigit((unsigned char)sp[3]))
			a->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 +
				    (sp[3] - '0');
		return;
	}
	header_value(line, len, "Location", a->location, sizeof(a->location));
	header_value(line, len, "X-Error-Code", a->error_code,
		     sizeof(a->error_code));
	/* a longer value is cut and then matches no sha256: fine */
	header_value(line, len, "X-Linked-Etag", a->linked_etag,
		     sizeof(a->linked_etag));
	unquote(a->linked_etag);
	header_value(line, len, "X-Linked-Size", v, sizeof(v));
	if (v[0] != '\0') {
		if (parse_u64(v, v + strlen(v), &a->linked_size) != 0)
			a->linked_size = 0;
		v[0] = '\0';
	}
	header_value(line, len, "Content-Range", v, sizeof(v));
	if (v[0] != '\0') {
		/* bytes A-B/T */
		char *dash = strchr(v, '-'), *slash = strchr(v, '/');

		a->has_range = strncmp(v, "bytes ", 6) == 0 && dash != NULL &&
			       slash != NULL && dash < slash &&
			       parse_u64(v + 6, dash, &a->range_start) == 0 &&
			       parse_u64(dash + 1, slash, &a->range_end) == 0 &&
			       parse_u64(slash + 1, v + strlen(v),
					 &a->range_total) == 0 &&
			       a->range_start <= a->range_end &&
			       a->range_end < a->range_total;
		v[0] = '\0';
	}
	header_value(line, len, "Retry-After", v, sizeof(v));
	if (v[0] != '\0') {
		char *end;
		long s = strtol(v, &end, 10);

		if (end != v && *end == '\0' && s >= 0)
			a->retry_after = s;
		v[0] = '\0';
	}
	/* RateLimit: "resolvers";r=0;t=SECONDS */
	header_value(line, len, "RateLimit", v, sizeof(v));
	if (v[0] != '\0' && a->retry_after < 0) {
		const char *t = strstr(v, ";t=");
		char *end;
		long s = t ? strtol(t + 3, &end, 10) : -1;

		if (t != NULL && end != t + 3 && s >= 0)
			a->retry_after = s;
		v[0] = '\0';
	}
	header_value(line, len, "Link", v, sizeof(v));
	if (v[0] != '\0') {
		/* <url>; rel="next" (possibly among others, comma separated) */
		char *p = v;

		while (p != NULL && *p != '\0') {
			char *lt = strchr(p, '<'), *gt, *next;

			if (lt == NULL || (gt = strchr(lt, '>')) == NULL)
				break;
			next = strchr(gt, ',');
			if (next != NULL)
				*next = '\0';
			if (strstr(gt, "rel=\"next\"") != NULL ||
			    strstr(gt, "rel=next") != NULL) {
				*gt = '\0';
				snprintf(a->link_next, sizeof(a->link_next), "%s",
					 lt + 1);
				break;
			}
			p = next ? next + 1 : NULL;
		}
	}
}

static size_t on_header(char *line, size_t sz, size_t n, void *ctx)
{
	struct exchange *x = ctx;

	mb_hub_answer_header(&x->ans, line, sz * n);
	return sz * n;
}

/* "scheme://host:port" of url, for deciding where the token may go. */
static int origin_of(const char *url, char *out, size_t cap)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	int rc = -1;

	if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) ==
		    CURLUE_OK) {
		snprintf(out, cap, "%s://%s:%s", scheme, host, port);
		for (char *p = out; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		rc = 0;
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

int mb_hub_url_join(const char *base, const char *loc, char *out, size_t cap)
{
	CURLU *u = curl_url();
	char *s = NULL;
	int rc = -1;

	if (u != NULL && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_URL, loc, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK &&
	    strlen(s) < cap) {
		memcpy(out, s, strlen(s) + 1);
		rc = 0;
	}
	curl_free(s);
	curl_url_cleanup(u);
	return rc == 0 ? 0 : MB_EPROTO;
}

int mb_hub_auth_header(const struct mb_hub *h, const char *url, char *out,
		       size_t cap)
{
	char hub_origin[300], origin[300];

	out[0] = '\0';
	if (h->token == NULL ||
	    origin_of(h->endpoint, hub_origin, sizeof(hub_origin)) != 0 ||
	    origin_of(url, origin, sizeof(origin)) != 0 ||
	    strcmp(origin, hub_origin) != 0)
		return 0;
	if ((size_t)snprintf(out, cap, "Authorization: Bearer %s", h->token) >=
	    cap) {
		memset(out, 0, cap);
		return 0;
	}
	return 1;
}

void mb_hub_easy_defaults(const struct mb_hub *h, void *curl)
{
	CURL *c = curl;

	curl_easy_setopt(c, CURLOPT_USERAGENT, "mibera/" MB_VERSION);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
	/* a stall (no byte for this long) ends the transfer, so nothing hangs */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
			 h->stall_timeout_ms < 1000 ? 1L
						    : h->stall_timeout_ms / 1000);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
}

void mb_hub_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Maps a final non-2xx answer to an error with a message a person can
 * act on. what names the thing asked for. */
int mb_hub_answer_error(struct mb_hub *h, const struct mb_hub_answer *a,
			const char *repo, const char *what)
{
	const char *code = a->error_code;
	long st = a->status;

	if (strcmp(code, "GatedRepo") == 0) {
		if (h->token == NULL)
			mb_hub_seterr(h, "'%s' is a gated repository: accept its terms "
			       "at %s/%s and set HF_TOKEN to a token of that "
			       "account (or `hf auth login`; for queued jobs, in "
			       "the coordinator's environment or its unit's "
			       "EnvironmentFile)", repo, h->endpoint, repo);
		else
			mb_hub_seterr(h, "'%s' is gated and the token has no access: "
			       "accept its terms at %s/%s with the token's "
			       "account", repo, h->endpoint, repo);
		return MB_EAUTH;
	}
	if (strcmp(code, "RepoNotFound") == 0 ||
	    (st == 401 && code[0] == '\0')) {
		mb_hub_seterr(h, "repository '%s' not found%s", repo,
		       h->token == NULL ? " (if it is private, set HF_TOKEN or "
					  "run `hf auth login`)"
					: " or not visible to the token");
		return st == 401 || st == 404 ? MB_ENOENT : MB_EAUTH;
	}
	if (strcmp(code, "RevisionNotFound") == 0) {
		mb_hub_seterr(h, "%s: revision not found in '%s'", what, repo);
		return MB_ENOENT;
	}
	if (strcmp(code, "EntryNotFound") == 0 || st == 404) {
		mb_hub_seterr(h, "%s not found in '%s'", what, repo);
		return MB_ENOENT;
	}
	if (st == 403) {
		mb_hub_seterr(h, "access to '%s' refused (HTTP 403): the token lacks "
		       "permission", repo);
		return MB_EAUTH;
	}
	if (st == 429) {
		mb_hub_seterr(h, "the hub keeps rate-limiting requests for %s; try "
		       "again later", what);
		return MB_ENETWORK;
	}
	mb_hub_seterr(h, "%s: the hub answered HTTP %ld%s%s", what, st,
	       code[0] ? " " : "", code);
	return st >= 500 ? MB_ENETWORK : MB_EPROTO;
}

/*
 * GETs url into body, following redirects by hand (the token only to the
 * endpoint's own origin) and retrying 429, 5xx and network errors with
 * backoff. off/len: a byte range (ranged 0: none). next, when not NULL,
 * gets the Link rel="next" URL ("" if none).
 */
static int get(struct mb_hub *h, const char *url0, const char *repo,
	       const char *what, int ranged, uint64_t off, uint64_t len,
	       struct mb_buf *body, char *next, size_t next_cap)
{
	char url[2048], auth[600], range[64];
	struct exchange x;
	int attempt = 0, redirects = 0, rc = MB_EINTERNAL;
	size_t body_start = body->len;
	CURL *c = h->curl;

	h->status = 0;
	h->error_code[0] = '\0';
	if (h->offline) {
		mb_hub_seterr(h, "HF_HUB_OFFLINE is set: not contacting %s", h->endpoint);
		return MB_ENETWORK;
	}
	if (strlen(url0) >= sizeof(url))
		return MB_EINVAL;
	memcpy(url, url0, strlen(url0) + 1);
	memset(&x, 0, sizeof(x));
	mb_buf_init(&x.errbody, MAX_ERR_BODY);
	for (;;) {
		struct curl_slist *hdrs = NULL;
		CURLcode cc;

		body->len = body_start;
		if (body->data != NULL)
			body->data[body->len] = '\0';
		mb_buf_reset(&x.errbody);
		x.h = h;
		x.body = body;
		x.ranged = ranged;
		x.skip = off;
		x.want = len;
		x.seen = 0;
		x.full = x.toobig = 0;
		mb_hub_answer_reset(&x.ans);
		curl_easy_reset(c);
		curl_easy_setopt(c, CURLOPT_URL, url);
		mb_hub_easy_defaults(h, c);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
		if (ranged) {
			if (len > 0)
				snprintf(range, sizeof(range), "Range: bytes=%llu-%llu",
					 (unsigned long long)off,
					 (unsigned long long)(off + len - 1));
			else
				snprintf(range, sizeof(range), "Range: bytes=%llu-",
					 (unsigned long long)off);
			hdrs = curl_slist_append(hdrs, range);
		}
		if (mb_hub_auth_header(h, url, auth, sizeof(auth)))
			hdrs = curl_slist_append(hdrs, auth);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
		cc = curl_easy_perform(c);
		curl_slist_free_all(hdrs);
		memset(auth, 0, sizeof(auth));
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->status);
		x.ans.status = h->status;
		snprintf(h->error_code, sizeof(h->error_code), "%s",
			 x.ans.error_code);
		if (x.toobig) {
			mb_hub_seterr(h, "%s: the answer is larger than %zu bytes", what,
			       body->cap);
			rc = MB_ETOOBIG;
			break;
		}
		if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && x.full)) {
			/* network trouble: retried, then reported */
			rc = cc == CURLE_OPERATION_TIMEDOUT ? MB_ETIMEDOUT
							     : MB_ENETWORK;
			mb_hub_seterr(h, "cannot reach %s for %s: %s", h->endpoint, what,
			       curl_easy_strerror(cc));
			if (++attempt < h->max_attempts) {
				mb_hub_sleep_ms(mb_hub_backoff_ms(attempt, 1000, 30000));
				continue;
			}
			break;
		}
		if (h->status >= 300 && h->status < 400 &&
		    x.ans.location[0] != '\0') {
			char target[2048];

			if (++redirects > MAX_REDIRECTS ||
			    mb_hub_url_join(url, x.ans.location, target,
					    sizeof(target)) != 0) {
				mb_hub_seterr(h, "%s: too many or malformed redirects", what);
				rc = MB_EPROTO;
				break;
			}
			memcpy(url, target, strlen(target) + 1);
			continue;
		}
		if (h->status == 429 || h->status >= 500) {
			long wait = x.ans.retry_after >= 0
					    ? x.ans.retry_after * 1000
					    : mb_hub_backoff_ms(attempt + 1, 1000,
								30000);

			if (++attempt < h->max_attempts) {
				if (wait > h->max_retry_wait_ms)
					wait = h->max_retry_wait_ms;
				mb_log(MB_LOG_INFO, "hub: HTTP %ld for %s, retrying "
				       "in %ld ms", h->status, what, wait);
				mb_hub_sleep_ms(wait);
				continue;
			}
		}
		if (h->status >= 200 && h->status < 300) {
			if (ranged && h->status == 200 && !x.full && len > 0 &&
			    body->len - body_start < len) {
				mb_hub_seterr(h, "%s: the file ends before byte %llu", what,
				       (unsigned long long)(off + len));
				rc = MB_EPROTO;
				break;
			}
			if (next != NULL)
				snprintf(next, next_cap, "%s", x.ans.link_next);
			rc = 0;
			break;
		}
		rc = mb_hub_answer_error(h, &x.ans, repo, what);
		break;
	}
	mb_buf_release(&x.errbody);
	if (rc != 0 && body->data != NULL) {
		body->len = body_start;
		body->data[body->len] = '\0';
	}
	return rc;
}

/* Appends s to b with every byte outside [A-Za-z0-9._~-] percent-encoded,
 * keeping '/' when keep_slash. */
int mb_hub_add_escaped(struct mb_buf *b, const char *s, int keep_slash)
{
	int rc = 0;

	for (; rc == 0 && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || strchr("._~-", c) != NULL ||
		    (keep_slash && c == '/'))
			rc = mb_buf_add(b, s, 1);
		else
			rc = mb_buf_addf(b, "%%%02X", c);
	}
	return rc;
}

/* --- the API --- */

static int is_hex(const char *s, size_t n)
{
	size_t i;

	if (strlen(s) != n)
		return 0;
	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

void mb_hub_repo_free(struct mb_hub_repo *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nfiles; i++)
		free(r->files[i].path);
	free(r->files);
	free(r);
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct mb_hub_file *)a)->path,
		      ((const struct mb_hub_file *)b)->path);
}

const struct mb_hub_file *mb_hub_repo_find(const struct mb_hub_repo *r,
					   const char *path)
{
	struct mb_hub_file key = { .path = (char *)path };

	if (r->nfiles == 0)
		return NULL;
	return bsearch(&key, r->files, r->nfiles, sizeof(key), by_path);
}

/* Adds the files of one tree page; directories are skipped. */
static int add_entries(struct mb_hub *h, struct mb_hub_repo *r, const cJSON *page,
		       size_t *cap)
{
	const cJSON *e;

	if (!cJSON_IsArray(page)) {
		mb_hub_seterr(h, "tree listing is not a JSON list");
		return MB_EPROTO;
	}
	cJSON_ArrayForEach(e, page) {
		struct mb_hub_file *f;
		const cJSON *lfs;
		const char *type, *path, *oid = NULL, *sha = NULL;
		uint64_t size;

		if (mb_json_get_str(e, "type", 16, &type) != 0 ||
		    mb_json_get_str(e, "path", 1024, &path) != 0) {
			mb_hub_seterr(h, "tree entry without type or path");
			return MB_EPROTO;
		}
		if (strcmp(type, "file") != 0)
			continue;
		if (!mb_repo_path_ok(path)) {
			mb_hub_seterr(h, "tree lists an unsafe path '%.200s'", path);
			return MB_EPROTO;
		}
		if (mb_json_get_u64(e, "size", MB_JSON_MAX_INT, &size) != 0) {
			mb_hub_seterr(h, "tree entry '%.200s' has no valid size", path);
			return MB_EPROTO;
		}
		mb_json_get_str(e, "oid", 40, &oid);
		lfs = cJSON_GetObjectItemCaseSensitive(e, "lfs");
		if (cJSON_IsObject(lfs) &&
		    (mb_json_get_str(lfs, "oid", 64, &sha) != 0 || !is_hex(sha, 64))) {
			mb_hub_seterr(h, "tree entry '%.200s' has a bad lfs oid", path);
			return MB_EPROTO;
		}
		if (r->nfiles == MAX_FILES) {
			mb_hub_seterr(h, "repository lists more than %d files", MAX_FILES);
			return MB_ETOOBIG;
		}
		if (r->nfiles == *cap) {
			size_t ncap = *cap ? *cap * 2 : 64;
			void *p = mb_realloc(r->files, ncap * sizeof(*r->files));

			if (p == NULL)
				return MB_ENOMEM;
			r->files = p;
			*cap = ncap;
		}
		f = &r->files[r->nfiles];
		memset(f, 0, sizeof(*f));
		f->path = mb_strdup(path);
		if (f->path == NULL)
			return MB_ENOMEM;
		r->nfiles++;
		f->size = size;
		f->lfs = sha != NULL;
		if (sha != NULL)
			snprintf(f->sha256, sizeof(f->sha256), "%s", sha);
		if (oid != NULL && is_hex(oid, 40))
			snprintf(f->oid, sizeof(f->oid), "%s", oid);
	}
	return 0;
}

int mb_hub_list(struct mb_hub *h, const char *repo, const char *rev,
		struct mb_hub_repo **out)
{
	struct mb_hub_repo *r = NULL;
	struct mb_buf url, body;
	char next[2048], what[300];
	const char *sha;
	size_t cap = 0, i;
	cJSON *doc = NULL;
	int rc, pages = 0;

	*out = NULL;
	if (rev == NULL)
		rev = "main";
	if (!mb_hub_repo_id_ok(repo)) {
		mb_hub_seterr(h, "'%s' is not a repository id (org/name)", repo);
		return MB_EINVAL;
	}
	mb_buf_init(&url, 8192);
	mb_buf_init(&body, MAX_API_BODY);
	rc = MB_ENOMEM;
	if (mb_buf_addf(&url, "%s/api/models/%s/revision/", h->endpoint, repo) != 0 ||
	    mb_hub_add_escaped(&url, rev, 0) != 0)
		goto out;
	snprintf(what, sizeof(what), "revision '%s'", rev);
	rc = get(h, url.data, repo, what, 0, 0, 0, &body, NULL, 0);
	if (rc != 0)
		goto out;
	doc = mb_json_parse(body.data, body.len);
	if (doc == NULL || mb_json_get_str(doc, "sha", 40, &sha) != 0 ||
	    !is_hex(sha, 40)) {
		mb_hub_seterr(h, "revision '%s' of '%s': the answer has no commit sha",
		       rev, repo);
		rc = MB_EPROTO;
		goto out;
	}
	rc = MB_ENOMEM;
	r = mb_calloc(1, sizeof(*r));
	if (r == NULL)
		goto out;
	memcpy(r->commit, sha, 41);
	cJSON_Delete(doc);
	doc = NULL;
	/* the files at that commit, page by page */
	mb_buf_reset(&url);
	if (mb_buf_addf(&url, "%s/api/models/%s/tree/%s?recursive=true",
			h->endpoint, repo, r->commit) != 0)
		goto out;
	snprintf(next, sizeof(next), "%s", url.data);
	while (next[0] != '\0') {
		char cur[2048];

		if (++pages > MAX_PAGES) {
			mb_hub_seterr(h, "tree listing of '%s' has more than %d pages",
			       repo, MAX_PAGES);
			rc = MB_ETOOBIG;
			goto out;
		}
		/* a Link must stay on the hub: never follow one elsewhere */
		if (strncmp(next, h->endpoint, strlen(h->endpoint)) != 0) {
			mb_hub_seterr(h, "tree listing of '%s' links off the hub", repo);
			rc = MB_EPROTO;
			goto out;
		}
		memcpy(cur, next, sizeof(cur));
		mb_buf_reset(&body);
		rc = get(h, cur, repo, "file list", 0, 0, 0, &body, next,
			 sizeof(next));
		if (rc != 0)
			goto out;
		doc = mb_json_parse(body.data, body.len);
		if (doc == NULL) {
			mb_hub_seterr(h, "file list of '%s' is not valid JSON", repo);
			rc = MB_EPROTO;
			goto out;
		}
		rc = add_entries(h, r, doc, &cap);
		cJSON_Delete(doc);
		doc = NULL;
		if (rc != 0)
			goto out;
	}
	if (r->nfiles > 0)
		qsort(r->files, r->nfiles, sizeof(*r->files), by_path);
	for (i = 1; i < r->nfiles; i++)
		if (strcmp(r->files[i - 1].path, r->files[i].path) == 0) {
			mb_hub_seterr(h, "file list of '%s' names '%s' twice", repo,
			       r->files[i].path);
			rc = MB_EPROTO;
			goto out;
		}
	*out = r;
	r = NULL;
	rc = 0;
out:
	cJSON_Delete(doc);
	mb_hub_repo_free(r);
	mb_buf_release(&url);
	mb_buf_release(&body);
	return rc;
}

int mb_hub_file_url(const struct mb_hub *h, const char *repo, const char *rev,
		    const char *path, struct mb_buf *b)
{
	int rc;

	if (!mb_hub_repo_id_ok(repo) || !mb_repo_path_ok(path))
		return MB_EINVAL;
	rc = mb_buf_addf(b, "%s/%s/resolve/", h->endpoint, repo);
	if (rc == 0)
		rc = mb_hub_add_escaped(b, rev, 0);
	if (rc == 0)
		rc = mb_buf_add(b, "/", 1);
	if (rc == 0)
		rc = mb_hub_add_escaped(b, path, 1);
	return rc;
}

int mb_hub_read(struct mb_hub *h, const char *repo, const char *commit,
		const char *path, uint64_t off, uint64_t len, struct mb_buf *b)
{
	struct mb_buf url;
	char what[1200];
	int rc;

	if (!mb_hub_repo_id_ok(repo) || !mb_repo_path_ok(path)) {
		mb_hub_seterr(h, "unsafe repository or path '%.200s'", path);
		return MB_EINVAL;
	}
	mb_buf_init(&url, 8192);
	rc = mb_hub_file_url(h, repo, commit, path, &url);
	snprintf(what, sizeof(what), "file '%s'", path);
	if (rc == 0)
		rc = get(h, url.data, repo, what, off > 0 || len > 0, off, len, b,
			 NULL, 0);
	mb_buf_release(&url);
	return rc;
}

int mb_hub_read_config(struct mb_hub *h, const char *repo, size_t max,
		       char **out, size_t *len)
{
	struct mb_hub_repo *r = NULL;
	struct mb_buf b;
	int rc;

	*out = NULL;
	*len = 0;
	rc = mb_hub_list(h, repo, "main", &r);
	if (rc != 0)
		return rc;
	if (mb_hub_repo_find(r, "config.json") == NULL) {
		snprintf(h->err, sizeof(h->err), "%s has no config.json", repo);
		mb_hub_repo_free(r);
		return MB_ENOENT;
	}
	mb_buf_init(&b, max);
	rc = mb_hub_read(h, repo, r->commit, "config.json", 0, 0, &b);
	if (rc == 0)
		rc = mb_buf_error(&b);
	if (rc == 0)
		*out = mb_buf_detach(&b, len);
	mb_buf_release(&b);
	mb_hub_repo_free(r);
	return rc;
}
