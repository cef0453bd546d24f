/* ollama: a job's GGUF files registered with a local Ollama server. */
#include "coordinator/ollama.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/gguf.h"
#include "common/json.h"
#include "common/manifest.h"
#include "common/sha256.h"
#include "common/splitset.h"
#include "common/text.h"
#include "coordinator/publish.h"
#include "mb_version.h"

/* A server's answer is a status line per stage of a create, a few dozen
 * at most; a megabyte is far more than an honest one sends. */
#define REPLY_CAP (1u << 20)

/* Ollama on this machine answers at once; one that has not in this long
 * is not there. */
#define CONNECT_MS 5000L

/* A create of a GGUF reads the whole file on the server (tens of seconds
 * for a large one) between status lines; an upload writes it to disk. */
#define STALL_S 300L

/* --- OLLAMA_HOST --- */

int mb_ollama_url(const char *host, char *out, size_t cap)
{
	char s[512], hostpart[300], port[16] = "";
	const char *scheme = "http", *defport = "11434", *hp, *sep, *path = "";
	char *end;
	size_t n;
	long v;

	snprintf(s, sizeof(s), "%s", host != NULL ? host : "");
	/* as Ollama reads its variables: spaces and quotes around go */
	n = strlen(s);
	while (n > 0 && (isspace((unsigned char)s[n - 1]) || s[n - 1] == '"' ||
			 s[n - 1] == '\''))
		s[--n] = '\0';
	hp = s;
	while (*hp != '\0' && (isspace((unsigned char)*hp) || *hp == '"' ||
			       *hp == '\''))
		hp++;
	if ((sep = strstr(hp, "://")) != NULL) {
		if ((size_t)(sep - hp) == 4 && strncmp(hp, "http", 4) == 0) {
			defport = "80";
		} else if ((size_t)(sep - hp) == 5 && strncmp(hp, "https", 5) == 0) {
			scheme = "https";
			defport = "443";
		} else {
			return MB_EINVAL;
		}
		hp = sep + 3;
	}
	n = strcspn(hp, "/");
	if (hp[n] == '/')
		path = hp + n;
	if (n >= sizeof(hostpart))
		return MB_EINVAL;
	memcpy(hostpart, hp, n);
	hostpart[n] = '\0';
	/* [v6]:port, host:port, a bare v6 address, a bare host */
	if (hostpart[0] == '[') {
		char *close = strchr(hostpart, ']');

		if (close == NULL)
			return MB_EINVAL;
		if (close[1] == ':')
			snprintf(port, sizeof(port), "%.15s", close + 2);
		close[1] = '\0';
	} else {
		char *colon = strchr(hostpart, ':');

		if (colon != NULL && strchr(colon + 1, ':') == NULL) {
			snprintf(port, sizeof(port), "%.15s", colon + 1);
			*colon = '\0';
		} else if (colon != NULL) {
			/* a bare IPv6 address: bracketed in the URL */
			char tmp[300];

			snprintf(tmp, sizeof(tmp), "[%.290s]", hostpart);
			snprintf(hostpart, sizeof(hostpart), "%s", tmp);
		}
	}
	if (hostpart[0] == '\0')
		snprintf(hostpart, sizeof(hostpart), "127.0.0.1");
	if (port[0] == '\0')
		snprintf(port, sizeof(port), "%s", defport);
	errno = 0;
	v = strtol(port, &end, 10);
	if (errno != 0 || end == port || *end != '\0' || v < 0 || v > 65535)
		return MB_EINVAL;
	n = strlen(path);
	while (n > 0 && path[n - 1] == '/')
		n--;
	if ((size_t)snprintf(out, cap, "%s://%s:%ld%.*s", scheme, hostpart, v,
			     (int)n, path) >= cap)
		return MB_ETOOBIG;
	return 0;
}

/* --- names --- */

static int part_ok(const char *p, size_t n)
{
	size_t i;

	if (n == 0 || !isalnum((unsigned char)p[0]))
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)p[i]) && p[i] != '_' && p[i] != '-' &&
		    p[i] != '.')
			return 0;
	return 1;
}

/* A part of a set (common/splitset.h): Ollama takes a model only as one
 * GGUF file. */
static int is_part(const char *name)
{
	size_t stem;
	unsigned no, count;

	return mb_splitset_parse_name(name, &stem, &no, &count);
}

int mb_ollama_name_ok(const char *name)
{
	const char *colon, *p, *slash;
	size_t n;

	if (name == NULL || (n = strlen(name)) == 0 || n > 120)
		return 0;
	colon = strchr(name, ':');
	if (colon != NULL && (strchr(colon + 1, ':') != NULL ||
			      strchr(colon + 1, '/') != NULL ||
			      !part_ok(colon + 1, strlen(colon + 1)) ||
			      strlen(colon + 1) > 80))
		return 0;
	n = colon != NULL ? (size_t)(colon - name) : n;
	for (p = name; p < name + n; p = slash + 1) {
		slash = memchr(p, '/', (size_t)(name + n - p));
		if (slash == NULL)
			return part_ok(p, (size_t)(name + n - p));
		if (!part_ok(p, (size_t)(slash - p)))
			return 0;
	}
	return 0; /* ends with '/' */
}

/* --- HTTP --- */

struct http {
	CURL *c;
	char url[400];		/* the server's base URL */
	const char *host;	/* OLLAMA_HOST as given, or NULL */
	struct mb_ollama_req *q;
	long status;
	struct mb_buf reply;
	char cerr[CURL_ERROR_SIZE];
};

static void say(struct http *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(struct http *h, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;

	if (h->q->progress == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	h->q->progress(h->q->ctx, msg);
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct mb_buf *b = ctx;

	/* past the cap the transfer stops, and the call fails */
	return mb_buf_add(b, p, size * n) == 0 ? size * n : 0;
}

struct upload {
	FILE *f;
	uint64_t size, next;	/* the next byte count to report at */
	struct http *h;
	const char *name;
};

static size_t on_read(char *p, size_t size, size_t n, void *ctx)
{
	struct upload *u = ctx;

	return fread(p, 1, size * n, u->f);
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	struct upload *u = ctx;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	/* a big file says how far it got each tenth of the way */
	if (u->size >= (100u << 20) && (uint64_t)ulnow >= u->next &&
	    (uint64_t)ulnow < u->size) {
		say(u->h, "uploading %s: %.0f%%", u->name,
		    100.0 * (double)ulnow / (double)u->size);
		u->next += u->size / 10;
	}
	return 0;
}

/* One request: method on path, with body (JSON, len bytes) or the bytes
 * of up (or neither). h->status and h->reply get the answer. MB_ENETWORK
 * when the server cannot be reached (h->cerr says why), MB_ETIMEDOUT when
 * it stalled, MB_ETOOBIG for an answer past REPLY_CAP. */
static int request(struct http *h, const char *method, const char *path,
		   const char *body, size_t len, struct upload *up,
		   long timeout_s)
{
	struct curl_slist *hdrs = NULL;
	char url[800];
	CURLcode cc;

	snprintf(url, sizeof(url), "%s%s", h->url, path);
	mb_buf_reset(&h->reply);
	h->status = 0;
	h->cerr[0] = '\0';
	curl_easy_reset(h->c);
	curl_easy_setopt(h->c, CURLOPT_URL, url);
	curl_easy_setopt(h->c, CURLOPT_USERAGENT, "mibera/" MB_VERSION);
	curl_easy_setopt(h->c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->c, CURLOPT_ERRORBUFFER, h->cerr);
	curl_easy_setopt(h->c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h->c, CURLOPT_FOLLOWLOCATION, 0L);
	/* a proxy in the environment is for the internet, not for this
	 * machine (Go's client, which Ollama's own uses, skips it too) */
	curl_easy_setopt(h->c, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
	curl_easy_setopt(h->c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_MS);
	curl_easy_setopt(h->c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h->c, CURLOPT_LOW_SPEED_TIME, STALL_S);
	if (timeout_s > 0)
		curl_easy_setopt(h->c, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(h->c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h->c, CURLOPT_WRITEDATA, &h->reply);
	/* no 100-continue round trip before the bytes */
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(h->c, CURLOPT_NOBODY, 1L);
	} else if (up != NULL) {
		hdrs = curl_slist_append(hdrs, "Content-Type: "
					 "application/octet-stream");
		curl_easy_setopt(h->c, CURLOPT_POST, 1L);
		curl_easy_setopt(h->c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)up->size);
		curl_easy_setopt(h->c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h->c, CURLOPT_READDATA, up);
		curl_easy_setopt(h->c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h->c, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h->c, CURLOPT_XFERINFODATA, up);
	} else if (body != NULL) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(h->c, CURLOPT_POST, 1L);
		curl_easy_setopt(h->c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h->c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	curl_easy_setopt(h->c, CURLOPT_HTTPHEADER, hdrs);
	cc = curl_easy_perform(h->c);
	curl_slist_free_all(hdrs);
	curl_easy_getinfo(h->c, CURLINFO_RESPONSE_CODE, &h->status);
	if (h->cerr[0] == '\0')
		snprintf(h->cerr, sizeof(h->cerr), "%s", curl_easy_strerror(cc));
	switch (cc) {
	case CURLE_OK:
		return 0;
	case CURLE_WRITE_ERROR:
		return MB_ETOOBIG;
	case CURLE_OPERATION_TIMEDOUT:
		return h->status == 0 ? MB_ENETWORK : MB_ETIMEDOUT;
	default:
		return MB_ENETWORK;
	}
}

/* The "error" member of a JSON answer, or the answer itself (printable,
 * cut), into out. */
static const char *reply_error(struct http *h, char *out, size_t cap)
{
	cJSON *doc = h->reply.len ? mb_json_parse(h->reply.data, h->reply.len)
				  : NULL;
	const char *e = cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(doc, "error"));

	if (e != NULL)
		mb_printable(out, cap, e);
	else if (h->reply.len > 0)
		mb_printable(out, cap, h->reply.data);
	else
		snprintf(out, cap, "no reason given");
	cJSON_Delete(doc);
	return out;
}

/* --- the registration --- */

/* What no server answering means for the person, with the way that
 * works without one. */
static int unreachable(struct http *h, char *err, size_t errcap)
{
	char hostv[300], safe[200];

	if (h->host != NULL && *h->host != '\0')
		snprintf(hostv, sizeof(hostv), "OLLAMA_HOST=%s",
			 mb_printable(safe, sizeof(safe), h->host));
	else
		snprintf(hostv, sizeof(hostv), "OLLAMA_HOST is not set, so "
			 MB_OLLAMA_DEFAULT);
	mb_seterr(err, errcap, "no Ollama server answers at %s (%s): %s; start "
		  "one (ollama serve) or point OLLAMA_HOST at it, or register "
		  "the files with the Modelfile: ollama create %s -f %s/Modelfile",
		  h->url, hostv, h->cerr, h->q->name, h->q->dir);
	return MB_ENETWORK;
}

static int probe(struct http *h, char *err, size_t errcap)
{
	cJSON *doc;
	const char *v;
	int rc = request(h, "GET", "/api/version", NULL, 0, NULL, 15);

	if (rc == MB_ENETWORK)
		return unreachable(h, err, errcap);
	if (rc != 0) {
		mb_seterr(err, errcap, "the Ollama server at %s did not answer "
			  "GET /api/version: %s", h->url, h->cerr);
		return rc;
	}
	doc = h->status == 200 ? mb_json_parse(h->reply.data, h->reply.len) : NULL;
	v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "version"));
	if (v != NULL) {
		char safe[64];

		say(h, "Ollama %s at %s", mb_printable(safe, sizeof(safe), v),
		    h->url);
	} else {
		say(h, "a server at %s (GET /api/version: HTTP %ld)", h->url,
		    h->status);
	}
	cJSON_Delete(doc);
	return 0;
}

/* The server holds m's bytes afterwards: asked first, sent only when it
 * lacks them. */
static int ensure_blob(struct http *h, const struct mb_manifest *m,
		       char *err, size_t errcap)
{
	char hex[MB_SHA256_HEX], path[4400], api[128], why[512], size[32];
	struct upload up;
	struct stat st;
	double t0;
	int rc;

	mb_sha256_hex(m->sha256, hex);
	snprintf(api, sizeof(api), "/api/blobs/sha256:%s", hex);
	rc = request(h, "HEAD", api, NULL, 0, NULL, 60);
	if (rc == MB_ENETWORK && h->status == 0)
		return unreachable(h, err, errcap);
	if (rc != 0 || (h->status != 200 && h->status != 404)) {
		mb_seterr(err, errcap, "the Ollama server at %s did not say "
			  "whether it has %s (HEAD %s: %s)", h->url, m->name, api,
			  rc != 0 ? h->cerr : "an unexpected HTTP status");
		return rc != 0 ? rc : MB_EPROTO;
	}
	if (h->status == 200) {
		h->q->reused++;
		say(h, "Ollama has %s already (sha256:%.12s...)", m->name, hex);
		return 0;
	}

	snprintf(path, sizeof(path), "%s/%s", h->q->dir, m->name);
	memset(&up, 0, sizeof(up));
	up.f = fopen(path, "rb");
	if (up.f == NULL || fstat(fileno(up.f), &st) != 0) {
		rc = mb_err_from_errno(errno);
		mb_seterr(err, errcap, "cannot read '%s': %s", path, strerror(errno));
		goto out;
	}
	if ((uint64_t)st.st_size != m->size) {
		rc = MB_ECHECKSUM;
		mb_seterr(err, errcap, "'%s' is %llu bytes, and manifest.json says "
			  "%llu: it changed after it was pulled and verified",
			  path, (unsigned long long)st.st_size,
			  (unsigned long long)m->size);
		goto out;
	}
	up.size = m->size;
	up.next = m->size / 10;
	up.h = h;
	up.name = m->name;
	snprintf(size, sizeof(size), "%.1f MB", (double)m->size / 1e6);
	say(h, "uploading %s (%s) to %s", m->name, size, h->url);
	t0 = mb_now_s();
	rc = request(h, "POST", api, NULL, 0, &up, 0);
	if (rc == 0 && h->status == 400) {
		/* the server hashed what it got: the bytes on this disk are not
		 * those the manifest (and the pull) verified */
		rc = MB_ECHECKSUM;
		mb_seterr(err, errcap, "Ollama refused %s: %s. The file in %s no "
			  "longer matches the sha256 it was verified with "
			  "(manifest.json: %s); check this disk, and compare with "
			  "`sha256sum %s`", m->name,
			  reply_error(h, why, sizeof(why)), h->q->dir, hex, path);
	} else if (rc == 0 && h->status != 201 && h->status != 200) {
		rc = MB_EPROTO;
		mb_seterr(err, errcap, "Ollama refused %s (POST %s: HTTP %ld): %s",
			  m->name, api, h->status, reply_error(h, why, sizeof(why)));
	} else if (rc != 0) {
		mb_seterr(err, errcap, "uploading %s to %s failed: %s", m->name,
			  h->url, h->cerr);
	} else {
		double s = mb_now_s() - t0;

		h->q->uploaded++;
		say(h, "uploaded %s in %.1f s (%.0f MB/s)", m->name, s,
		    s > 0 ? (double)m->size / 1e6 / s : 0.0);
	}
out:
	if (up.f != NULL)
		fclose(up.f);
	return rc;
}

/* POST /api/create for name from m, with the chat template and stops. */
static int create(struct http *h, const char *name, const struct mb_manifest *m,
		  const struct mb_publish_chat *chat, char *err, size_t errcap)
{
	char hex[MB_SHA256_HEX], digest[80], why[512];
	cJSON *req = cJSON_CreateObject(), *files, *params, *stops;
	char *body = NULL, *line, *save = NULL;
	int rc = MB_ENOMEM, ok = 0;
	size_t i;

	mb_sha256_hex(m->sha256, hex);
	snprintf(digest, sizeof(digest), "sha256:%s", hex);
	if (req == NULL || cJSON_AddStringToObject(req, "model", name) == NULL ||
	    (files = cJSON_AddObjectToObject(req, "files")) == NULL ||
	    cJSON_AddStringToObject(files, m->name, digest) == NULL)
		goto out;
	if (chat->tmpl != NULL &&
	    cJSON_AddStringToObject(req, "template", chat->tmpl) == NULL)
		goto out;
	if (chat->nstops > 0) {
		if ((params = cJSON_AddObjectToObject(req, "parameters")) == NULL ||
		    (stops = cJSON_AddArrayToObject(params, "stop")) == NULL)
			goto out;
		for (i = 0; i < chat->nstops; i++)
			cJSON_AddItemToArray(stops,
					     cJSON_CreateString(chat->stops[i]));
	}
	if ((body = cJSON_PrintUnformatted(req)) == NULL)
		goto out;
	rc = request(h, "POST", "/api/create", body, strlen(body), NULL, 0);
	if (rc == MB_ENETWORK && h->status == 0) {
		rc = unreachable(h, err, errcap);
		goto out;
	}
	if (rc != 0) {
		mb_seterr(err, errcap, "creating %s on %s failed: %s", name, h->url,
			  h->cerr);
		goto out;
	}
	if (h->status != 200) {
		rc = MB_EPROTO;
		mb_seterr(err, errcap, "Ollama refused to create %s (HTTP %ld): %s",
			  name, h->status, reply_error(h, why, sizeof(why)));
		goto out;
	}
	/* a stream of status lines; an error may come in one of them */
	rc = MB_EPROTO;
	mb_seterr(err, errcap, "Ollama did not say it created %s", name);
	for (line = h->reply.len ? strtok_r(h->reply.data, "\n", &save) : NULL;
	     line != NULL; line = strtok_r(NULL, "\n", &save)) {
		cJSON *doc = mb_json_parse(line, strlen(line));
		const char *e = cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(doc, "error"));
		const char *st = cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(doc, "status"));

		if (e != NULL) {
			mb_seterr(err, errcap, "Ollama could not create %s: %s",
				  name, mb_printable(why, sizeof(why), e));
			ok = -1;
		} else if (st != NULL && strcmp(st, "success") == 0 && ok == 0) {
			ok = 1;
		}
		cJSON_Delete(doc);
	}
	if (ok == 1) {
		rc = 0;
		err[0] = '\0';
		say(h, "registered %s (%s, %s)", name, m->name,
		    chat->format != NULL ? chat->format
					 : chat->has_jinja ? "the GGUF's template"
							   : "plain text");
	}
out:
	cJSON_free(body);
	cJSON_Delete(req);
	return rc;
}

/* The file the job recommends: its provenance.json's "recommended" (what
 * its Modelfile starts FROM, chosen on the quants' fidelity figures when
 * it had them) when that is one of ml's files; else by type. Borrowed
 * from ml. */
static const char *recommended(const char *dir, const struct mb_manifest_list *ml)
{
	char path[4200], *text = NULL;
	const char *rec = NULL, *name;
	size_t len, i;
	cJSON *doc = NULL;

	snprintf(path, sizeof(path), "%s/provenance.json", dir);
	if (mb_read_file(path, 16u << 20, &text, &len) == 0)
		doc = mb_json_parse(text, len);
	name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc,
								     "recommended"));
	for (i = 0; name != NULL && i < ml->n; i++)
		if (strcmp(ml->files[i]->name, name) == 0)
			rec = ml->files[i]->name;
	if (rec != NULL && is_part(rec)) {
		/* Ollama takes one file: the whole one the Modelfile names,
		 * chosen on the figures provenance.json keeps */
		cJSON *fid = cJSON_CreateArray(), *a;
		char *ftext = NULL;
		const char *whole;

		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(
					   doc, "artifacts")) {
			cJSON *f = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(
							   a, "fidelity"), 1);
			const char *file = cJSON_GetStringValue(
				cJSON_GetObjectItemCaseSensitive(a, "file"));

			if (!cJSON_IsObject(f) || file == NULL) {
				cJSON_Delete(f);
				continue;
			}
			cJSON_AddStringToObject(f, "file", file);
			cJSON_AddItemToArray(fid, f);
		}
		if (fid != NULL)
			ftext = cJSON_PrintUnformatted(fid);
		whole = mb_publish_whole(ml, ftext, NULL, 0);
		if (whole != NULL)
			rec = whole;
		cJSON_free(ftext);
		cJSON_Delete(fid);
	}
	cJSON_Delete(doc);
	free(text);
	return rec ? rec : mb_publish_recommended(ml);
}

static int is_float(const char *type)
{
	return strcmp(type, "F16") == 0 || strcmp(type, "BF16") == 0 ||
	       strcmp(type, "F32") == 0;
}

static void add_model(struct mb_ollama_req *q, const char *name)
{
	size_t n = strlen(q->models);

	snprintf(q->models + n, sizeof(q->models) - n, "%s%s", n ? " " : "",
		 name);
}

int mb_ollama_register(struct mb_ollama_req *q, char *err, size_t errcap)
{
	struct mb_manifest_list *ml = NULL;
	struct mb_gguf *g = NULL;
	struct mb_publish_chat chat;
	struct http h;
	char path[4400], sub[512], *json = NULL, *done = NULL;
	const char *rec;
	size_t len = 0, i, quants = 0;
	int rc;

	memset(&h, 0, sizeof(h));
	mb_buf_init(&h.reply, REPLY_CAP);
	h.q = q;
	h.host = q->host;
	q->models[0] = '\0';
	q->uploaded = q->reused = 0;
	if (!mb_ollama_name_ok(q->name)) {
		rc = MB_EINVAL;
		mb_seterr(err, errcap, "'%s' is not an Ollama model name: "
			  "[namespace/]model[:tag], of letters, digits, '_', '-' "
			  "and '.'", q->name ? q->name : "");
		goto out;
	}
	if ((rc = mb_ollama_url(q->host, h.url, sizeof(h.url))) != 0) {
		mb_seterr(err, errcap, "OLLAMA_HOST='%s' is not [http[s]://]host"
			  "[:port]", q->host);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/manifest.json", q->dir);
	rc = mb_read_file(path, 16u << 20, &json, &len);
	if (rc == 0)
		rc = mb_manifest_list_from_json(json, len, &ml, sub, sizeof(sub));
	else
		snprintf(sub, sizeof(sub), "%s", mb_strerror(rc));
	if (rc != 0 || ml->n == 0) {
		mb_seterr(err, errcap, "no verified GGUF files in %s (%s)", q->dir,
			  rc != 0 ? sub : "manifest.json lists none");
		rc = MB_ENOENT;
		goto out;
	}
	rec = recommended(q->dir, ml);
	if (is_part(rec)) {
		/* every artifact is a set of parts */
		char whole[512];

		mb_splitset_artifact_name(rec, whole, sizeof(whole));
		mb_seterr(err, errcap, "'%s' is a set of parts (--split-max-size), "
			  "and Ollama takes a model only as one GGUF file; submit "
			  "the job again with a --split-max-size above the file's "
			  "size, or run the set with llama.cpp, which loads it "
			  "from '%s'", whole, rec);
		rc = MB_EUNSUPPORTED;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s", q->dir, rec);
	/* as the Modelfile: a header it cannot read only costs the template */
	if (mb_gguf_read(path, &g, sub, sizeof(sub)) != 0)
		g = NULL;
	mb_publish_chat(g, &chat);
	for (i = 0; i < ml->n; i++) {
		char t[64];

		if (!is_float(mb_publish_type(ml->files[i]->name, t, sizeof(t))) &&
		    !is_part(ml->files[i]->name))
			quants++;
	}
	if ((h.c = curl_easy_init()) == NULL || (done = calloc(ml->n, 1)) == NULL) {
		rc = MB_ENOMEM;
		goto out;
	}
	if ((rc = probe(&h, err, errcap)) != 0)
		goto out;

	/* the recommended file as NAME, then each quant as NAME:type when
	 * the name leaves the tag to us */
	for (i = 0; i < ml->n && rc == 0; i++)
		if (strcmp(ml->files[i]->name, rec) == 0 && !done[i]) {
			done[i] = 1;
			rc = ensure_blob(&h, ml->files[i], err, errcap);
			if (rc == 0)
				rc = create(&h, q->name, ml->files[i], &chat, err,
					    errcap);
			if (rc == 0)
				add_model(q, q->name);
		}
	for (i = 0; i < ml->n && rc == 0 && quants > 1 &&
		    strchr(q->name, ':') == NULL; i++) {
		char t[64], tagged[200];
		size_t k;

		mb_publish_type(ml->files[i]->name, t, sizeof(t));
		if (is_float(t))
			continue;
		if (is_part(ml->files[i]->name)) {
			size_t stem;
			unsigned no, count;

			mb_splitset_parse_name(ml->files[i]->name, &stem, &no,
					       &count);
			if (no == 0 && q->progress != NULL) {
				char msg[700];

				snprintf(msg, sizeof(msg), "%s is left out: a set of "
					 "%u parts, and Ollama takes one GGUF file",
					 t, count);
				q->progress(q->ctx, msg);
			}
			continue;
		}
		for (k = 0; t[k] != '\0'; k++)
			t[k] = (char)tolower((unsigned char)t[k]);
		snprintf(tagged, sizeof(tagged), "%s:%s", q->name, t);
		if (!mb_ollama_name_ok(tagged)) {
			rc = MB_EINVAL;
			mb_seterr(err, errcap, "'%s' is not an Ollama model name "
				  "(too long?)", tagged);
			break;
		}
		if (!done[i]) {
			done[i] = 1;
			rc = ensure_blob(&h, ml->files[i], err, errcap);
		}
		if (rc == 0)
			rc = create(&h, tagged, ml->files[i], &chat, err, errcap);
		if (rc == 0)
			add_model(q, tagged);
	}
out:
	free(done);
	free(json);
	mb_manifest_list_free(ml);
	mb_gguf_free(g);
	if (h.c != NULL)
		curl_easy_cleanup(h.c);
	mb_buf_release(&h.reply);
	return rc;
}
