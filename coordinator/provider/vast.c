/*
 * vast: vast.ai's REST API (the one its `vastai` CLI uses), under
 * $MIBERA_VAST_URL/api/v0 (default https://console.vast.ai, as the CLI's
 * --url). The key is VAST_API_KEY, else the file the CLI's `set api-key`
 * writes (~/.config/vastai/vast_api_key); it goes in an Authorization
 * header, never in the URL.
 *
 *   POST   /bundles/          search offers (a query object)
 *   PUT    /asks/ID/          rent offer ID: {"success":true,"new_contract":N}
 *   GET    /instances/        {"instances":[...]}
 *   GET    /instances/ID/     {"instances":{...}}
 *   DELETE /instances/ID/     destroy
 *
 * Every answer is hostile input: bodies are capped, fields checked.
 */
#include "coordinator/provider/provider.h"

#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hub.h"
#include "common/json.h"
#include "common/log.h"
#include "common/text.h"
#include "mb_version.h"

#define VAST_DEFAULT_URL "https://console.vast.ai"
#define MAX_BODY (8u << 20)
#define MAX_OFFERS_READ 64

static void seterr(struct mb_provider *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void seterr(struct mb_provider *p, const char *fmt, ...)
{
	char raw[sizeof(p->err)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	mb_log_redact(raw, p->err, sizeof(p->err));
}

static int vast_open(struct mb_provider *p, char *err, size_t errcap)
{
	const char *url = getenv("MIBERA_VAST_URL"), *env = getenv("VAST_API_KEY");
	const char *home = getenv("HOME");
	char path[600], *text = NULL;
	size_t len = 0, n;

	if (url == NULL || url[0] == '\0')
		url = VAST_DEFAULT_URL;
	n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
	    n + 8 >= sizeof(p->base)) {
		snprintf(err, errcap, "MIBERA_VAST_URL '%.300s' is not an http(s) "
			 "URL", url);
		return MB_EINVAL;
	}
	snprintf(p->base, sizeof(p->base), "%.*s/api/v0", (int)n, url);
	snprintf(path, sizeof(path), "%s/.config/vastai/vast_api_key",
		 home ? home : "");
	if (env != NULL && env[0] != '\0') {
		p->key = strdup(env);
		snprintf(p->key_from, sizeof(p->key_from), "VAST_API_KEY");
	} else if (home != NULL && mb_read_file(path, 4096, &text, &len) == 0) {
		text[strcspn(text, " \t\r\n")] = '\0';
		if (text[0] != '\0')
			p->key = strdup(text);
		memset(text, 0, len);
		free(text);
		snprintf(p->key_from, sizeof(p->key_from), "%s", path);
		if (p->key == NULL) {
			snprintf(err, errcap, "the vast.ai API key file '%s' is empty",
				 path);
			return MB_EAUTH;
		}
	} else {
		snprintf(err, errcap, "no vast.ai API key: set VAST_API_KEY or "
			 "run `vastai set api-key KEY` (which writes '%s')", path);
		return MB_EAUTH;
	}
	if (p->key == NULL)
		return MB_ENOMEM;
	if (strcspn(p->key, "\r\n") != strlen(p->key)) {
		snprintf(err, errcap, "the vast.ai API key from %s has a line break",
			 p->key_from);
		return MB_EAUTH;
	}
	mb_log_add_secret(p->key);
	p->curl = curl_easy_init();
	if (p->curl == NULL)
		return MB_ENOMEM;
	if (getenv("MIBERA_VAST_RETRY_MS") != NULL) /* tests: quick retries */
		p->retry_base_ms = strtol(getenv("MIBERA_VAST_RETRY_MS"), NULL, 10);
	return 0;
}

static void vast_release(struct mb_provider *p)
{
	if (p->curl != NULL)
		curl_easy_cleanup(p->curl);
	p->curl = NULL;
}

struct sink {
	struct mb_buf *b;
	int toobig;
};

static size_t on_body(char *data, size_t sz, size_t n, void *ctx)
{
	struct sink *s = ctx;

	if (mb_buf_add(s->b, data, sz * n) != 0) {
		s->toobig = 1;
		return 0;
	}
	return sz * n;
}

struct hdrs {
	long retry_after;
};

static size_t on_header(char *line, size_t sz, size_t n, void *ctx)
{
	struct hdrs *h = ctx;
	size_t len = sz * n;

	if (len > 12 && strncasecmp(line, "Retry-After:", 12) == 0) {
		char v[32];
		size_t k = len - 12 < sizeof(v) - 1 ? len - 12 : sizeof(v) - 1;
		char *end;
		long s;

		memcpy(v, line + 12, k);
		v[k] = '\0';
		s = strtol(v, &end, 10);
		if (end != v && s >= 0 && s < 3600)
			h->retry_after = s;
	}
	return len;
}

/*
 * One request: method on base + path with body (NULL: none). The answer's
 * status goes to *status, its body to out. 429 is retried with backoff
 * (every method: vast refuses it before doing anything); 5xx and network
 * errors only when retry_all (a create is not resent on an ambiguous
 * failure: it may have rented a box). 401/403 become MB_EAUTH with a
 * message naming where the key came from.
 */
static int request(struct mb_provider *p, const char *method, const char *path,
		   const char *body, int retry_all, long *status,
		   struct mb_buf *out, const char *what)
{
	char url[1024], auth[1200];
	int attempt = 0, rc;
	CURL *c = p->curl;

	*status = 0;
	if ((size_t)snprintf(url, sizeof(url), "%s%s", p->base, path) >=
	    sizeof(url))
		return MB_EINVAL;
	for (;;) {
		struct curl_slist *h = NULL;
		struct sink s = { out, 0 };
		struct hdrs hd = { -1 };
		CURLcode cc;

		mb_buf_reset(out);
		curl_easy_reset(c);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_USERAGENT, "mibera/" MB_VERSION);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L);
		curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, &hd);
		if (body != NULL) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
			h = curl_slist_append(h, "Content-Type: application/json");
		}
		h = curl_slist_append(h, "Accept: application/json");
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", p->key);
		h = curl_slist_append(h, auth);
		memset(auth, 0, sizeof(auth));
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		cc = curl_easy_perform(c);
		/* the list holds a copy of the header: wipe it before freeing */
		{
			struct curl_slist *it;

			for (it = h; it != NULL; it = it->next)
				if (strncmp(it->data, "Authorization:", 14) == 0)
					memset(it->data, 0, strlen(it->data));
		}
		curl_slist_free_all(h);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
		if (s.toobig) {
			seterr(p, "%s: vast.ai answered more than %zu bytes", what,
			       out->cap);
			return MB_ETOOBIG;
		}
		if (cc != CURLE_OK) {
			seterr(p, "cannot reach vast.ai (%s) for %s: %s", p->base,
			       what, curl_easy_strerror(cc));
			rc = cc == CURLE_OPERATION_TIMEDOUT ? MB_ETIMEDOUT
							     : MB_ENETWORK;
			if (retry_all && ++attempt < p->max_attempts) {
				mb_hub_sleep_ms(mb_hub_backoff_ms(attempt,
								  p->retry_base_ms,
								  30000));
				continue;
			}
			return rc;
		}
		if (*status == 429 || (retry_all && *status >= 500)) {
			if (++attempt < p->max_attempts) {
				long wait = hd.retry_after >= 0
						    ? hd.retry_after * 1000
						    : mb_hub_backoff_ms(attempt,
									p->retry_base_ms,
									30000);

				if (wait > 60000)
					wait = 60000;
				mb_log(MB_LOG_INFO, "vast.ai: HTTP %ld for %s, "
				       "retrying in %ld ms", *status, what, wait);
				mb_hub_sleep_ms(wait);
				continue;
			}
			seterr(p, "vast.ai keeps answering HTTP %ld for %s; try "
			       "again later", *status, what);
			return MB_ENETWORK;
		}
		if (*status == 401 || *status == 403) {
			seterr(p, "vast.ai refused the API key from %s (HTTP %ld): "
			       "check it at https://cloud.vast.ai/account/ and set "
			       "VAST_API_KEY or `vastai set api-key`", p->key_from,
			       *status);
			return MB_EAUTH;
		}
		return 0;
	}
}

/* The message in an error answer ({"error": ..., "msg": ...}), printable. */
static void answer_msg(const struct mb_buf *b, char *out, size_t cap)
{
	cJSON *doc = b->data ? mb_json_parse(b->data, b->len) : NULL;
	const char *m = NULL, *e = NULL;

	out[0] = '\0';
	if (doc != NULL) {
		m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "msg"));
		e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "error"));
	}
	if (m != NULL || e != NULL) {
		char raw[600];

		snprintf(raw, sizeof(raw), "%s%s%s", e ? e : "", e && m ? ": " : "",
			 m ? m : "");
		mb_printable(out, cap, raw);
	} else if (b->data != NULL) {
		mb_printable_n(out, cap, b->data, b->len < 200 ? b->len : 200, 0);
	}
	cJSON_Delete(doc);
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : 0;
}

static void str(const cJSON *o, const char *k, char *out, size_t cap)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	out[0] = '\0';
	if (cJSON_IsString(v))
		mb_printable(out, cap, v->valuestring);
}

/* An id: a number (vast's ids are integers) written as text. */
static int id_of(const cJSON *o, const char *k, char *out, size_t cap)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 1e15) ||
	    v->valuedouble != floor(v->valuedouble))
		return MB_EPROTO;
	snprintf(out, cap, "%.0f", v->valuedouble);
	return 0;
}

/* Checks an id we put in a path: digits only. */
static int id_ok(const char *id)
{
	size_t n = strlen(id);

	return n > 0 && n < 20 && strspn(id, "0123456789") == n;
}

static int vast_search(struct mb_provider *p, const struct mb_offer_query *q,
		       struct mb_offer *offers, size_t cap, size_t *n)
{
	struct mb_buf body, out;
	cJSON *doc = NULL;
	const cJSON *arr, *o;
	long status;
	int rc;

	mb_buf_init(&body, 4096);
	mb_buf_init(&out, MAX_BODY);
	mb_buf_addf(&body, "{\"disk_space\":{\"gte\":%.1f},\"reliability2\":"
		    "{\"gte\":0.98},\"rentable\":{\"eq\":true},\"rented\":"
		    "{\"eq\":false},\"verified\":{\"eq\":true},\"num_gpus\":"
		    "{\"gte\":1},\"order\":[[\"dph_total\",\"asc\"]],\"type\":"
		    "\"on-demand\",\"allocated_storage\":%.1f,\"limit\":%d",
		    q->disk_gb, q->disk_gb, MAX_OFFERS_READ);
	if (q->gpu != NULL && q->gpu[0] != '\0') {
		char g[128];
		size_t i;

		/* vast's names use '_' for ' ' in queries ("RTX_4090") */
		snprintf(g, sizeof(g), "%s", q->gpu);
		for (i = 0; g[i]; i++)
			if (g[i] == ' ')
				g[i] = '_';
		mb_buf_adds(&body, ",\"gpu_name\":{\"eq\":");
		mb_json_quote(&body, g);
		mb_buf_adds(&body, "}");
	}
	if (q->max_price > 0)
		mb_buf_addf(&body, ",\"dph_total\":{\"lte\":%.4f}", q->max_price);
	if (q->min_gpu_ram_gb > 0)
		mb_buf_addf(&body, ",\"gpu_ram\":{\"gte\":%.0f}",
			    q->min_gpu_ram_gb * 1000);
	if (q->min_ram_gb > 0) /* vast counts it in MB */
		mb_buf_addf(&body, ",\"cpu_ram\":{\"gte\":%.0f}",
			    q->min_ram_gb * 1000);
	mb_buf_adds(&body, "}");
	rc = mb_buf_error(&body);
	if (rc != 0)
		goto out;
	rc = request(p, "POST", "/bundles/", body.data, 1, &status, &out,
		     "a search for offers");
	if (rc != 0)
		goto out;
	rc = MB_EPROTO;
	if (status != 200) {
		char m[300];

		answer_msg(&out, m, sizeof(m));
		seterr(p, "vast.ai refused the search for offers (HTTP %ld)%s%s",
		       status, m[0] ? ": " : "", m);
		goto out;
	}
	doc = out.data ? mb_json_parse(out.data, out.len) : NULL;
	arr = cJSON_GetObjectItemCaseSensitive(doc, "offers");
	if (!cJSON_IsArray(arr)) {
		seterr(p, "vast.ai answered the search with no list of offers");
		goto out;
	}
	cJSON_ArrayForEach(o, arr) {
		struct mb_offer *f;
		char gpu[64];

		if (*n >= cap)
			break;
		f = &offers[*n];
		memset(f, 0, sizeof(*f));
		if (id_of(o, "id", f->id, sizeof(f->id)) != 0)
			continue;
		str(o, "gpu_name", gpu, sizeof(gpu));
		snprintf(f->gpu, sizeof(f->gpu), "%s", gpu);
		f->num_gpus = (int)num(o, "num_gpus");
		f->gpu_ram_gb = num(o, "gpu_ram") / 1000;
		f->disk_gb = num(o, "disk_space");
		f->ram_gb = num(o, "cpu_ram") / 1000;
		f->dph = num(o, "dph_total");
		f->reliability = num(o, "reliability2");
		str(o, "geolocation", f->where, sizeof(f->where));
		/* the query asks for this, but a price over the cap is never
		 * shown as an option, whatever the server did */
		if ((q->max_price > 0 && f->dph > q->max_price) ||
		    f->disk_gb < q->disk_gb ||
		    (q->min_ram_gb > 0 && f->ram_gb > 0 &&
		     f->ram_gb < q->min_ram_gb))
			continue;
		(*n)++;
	}
	rc = 0;
out:
	cJSON_Delete(doc);
	mb_buf_release(&body);
	mb_buf_release(&out);
	return rc;
}

static int vast_create(struct mb_provider *p, const char *offer_id,
		       const struct mb_create_req *req, char *id, size_t cap)
{
	struct mb_buf body, out;
	char path[64], m[300];
	cJSON *doc = NULL;
	long status;
	int rc;

	if (!id_ok(offer_id))
		return MB_EINVAL;
	snprintf(path, sizeof(path), "/asks/%s/", offer_id);
	mb_buf_init(&body, 256 * 1024);
	mb_buf_init(&out, MAX_BODY);
	mb_buf_adds(&body, "{\"client_id\":\"me\",\"image\":");
	mb_json_quote(&body, req->image);
	mb_buf_addf(&body, ",\"disk\":%.1f,\"runtype\":\"ssh\",\"label\":",
		    req->disk_gb);
	mb_json_quote(&body, req->label);
	mb_buf_adds(&body, ",\"onstart\":");
	mb_json_quote(&body, req->onstart);
	mb_buf_adds(&body, ",\"env\":{},\"cancel_unavail\":true}");
	rc = mb_buf_error(&body);
	if (rc != 0)
		goto out;
	rc = request(p, "PUT", path, body.data, 0, &status, &out,
		     "renting an offer");
	if (rc != 0)
		goto out;
	doc = out.data ? mb_json_parse(out.data, out.len) : NULL;
	if (status >= 400 && status < 500) {
		/* the offer went to someone else, or is no longer for rent */
		answer_msg(&out, m, sizeof(m));
		seterr(p, "offer %s is no longer available (HTTP %ld)%s%s",
		       offer_id, status, m[0] ? ": " : "", m);
		rc = MB_EBUSY;
		goto out;
	}
	if (status != 200 && status != 201) {
		answer_msg(&out, m, sizeof(m));
		seterr(p, "vast.ai answered HTTP %ld to renting offer %s%s%s",
		       status, offer_id, m[0] ? ": " : "", m);
		rc = MB_EPROTO;
		goto out;
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "success"))) {
		answer_msg(&out, m, sizeof(m));
		seterr(p, "offer %s is no longer available%s%s", offer_id,
		       m[0] ? ": " : "", m);
		rc = MB_EBUSY;
		goto out;
	}
	if (id_of(doc, "new_contract", id, cap) != 0) {
		seterr(p, "vast.ai rented offer %s but did not say the instance's "
		       "id", offer_id);
		rc = MB_EPROTO;
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(doc);
	memset(body.data ? body.data : (char *)"", 0, body.data ? body.len : 0);
	mb_buf_release(&body);
	mb_buf_release(&out);
	return rc;
}

static void read_instance(const cJSON *o, struct mb_instance *in)
{
	memset(in, 0, sizeof(*in));
	if (id_of(o, "id", in->id, sizeof(in->id)) != 0)
		in->id[0] = '\0';
	str(o, "actual_status", in->status, sizeof(in->status));
	str(o, "ssh_host", in->ssh_host, sizeof(in->ssh_host));
	in->ssh_port = (int)num(o, "ssh_port");
	if (in->ssh_port < 0 || in->ssh_port > 65535)
		in->ssh_port = 0;
	in->dph = num(o, "dph_total");
	str(o, "label", in->label, sizeof(in->label));
	in->start_date = num(o, "start_date");
}

static int vast_show(struct mb_provider *p, const char *id,
		     struct mb_instance *in)
{
	struct mb_buf out;
	char path[64];
	cJSON *doc = NULL;
	const cJSON *o;
	long status;
	int rc;

	if (!id_ok(id))
		return MB_EINVAL;
	snprintf(path, sizeof(path), "/instances/%s/", id);
	mb_buf_init(&out, MAX_BODY);
	rc = request(p, "GET", path, NULL, 1, &status, &out, "reading an instance");
	if (rc != 0)
		goto out;
	doc = out.data ? mb_json_parse(out.data, out.len) : NULL;
	o = cJSON_GetObjectItemCaseSensitive(doc, "instances");
	if (status == 404 || (status == 200 && (o == NULL || cJSON_IsNull(o)))) {
		seterr(p, "vast.ai has no instance %s", id);
		rc = MB_ENOENT;
		goto out;
	}
	if (status != 200 || !cJSON_IsObject(o)) {
		seterr(p, "vast.ai answered HTTP %ld reading instance %s", status, id);
		rc = MB_EPROTO;
		goto out;
	}
	read_instance(o, in);
	if (in->id[0] == '\0')
		snprintf(in->id, sizeof(in->id), "%s", id);
	rc = 0;
out:
	cJSON_Delete(doc);
	mb_buf_release(&out);
	return rc;
}

static int vast_destroy(struct mb_provider *p, const char *id)
{
	struct mb_buf out;
	char path[64], m[300];
	long status;
	int rc;

	if (!id_ok(id))
		return MB_EINVAL;
	snprintf(path, sizeof(path), "/instances/%s/", id);
	mb_buf_init(&out, 1 << 20);
	rc = request(p, "DELETE", path, NULL, 1, &status, &out,
		     "destroying an instance");
	if (rc == 0 && status == 404) {
		seterr(p, "vast.ai has no instance %s (already destroyed)", id);
		rc = MB_ENOENT;
	} else if (rc == 0 && (status < 200 || status > 299)) {
		answer_msg(&out, m, sizeof(m));
		seterr(p, "vast.ai answered HTTP %ld to destroying instance %s%s%s",
		       status, id, m[0] ? ": " : "", m);
		rc = MB_EPROTO;
	}
	mb_buf_release(&out);
	return rc;
}

static int vast_list(struct mb_provider *p,
		     int (*fn)(const struct mb_instance *in, void *ctx),
		     void *ctx)
{
	struct mb_buf out;
	struct mb_instance in;
	cJSON *doc = NULL;
	const cJSON *arr, *o;
	long status;
	int rc;

	mb_buf_init(&out, MAX_BODY);
	rc = request(p, "GET", "/instances/", NULL, 1, &status, &out,
		     "listing instances");
	if (rc != 0)
		goto out;
	doc = out.data ? mb_json_parse(out.data, out.len) : NULL;
	arr = cJSON_GetObjectItemCaseSensitive(doc, "instances");
	if (status != 200 || !cJSON_IsArray(arr)) {
		seterr(p, "vast.ai answered HTTP %ld listing instances", status);
		rc = MB_EPROTO;
		goto out;
	}
	cJSON_ArrayForEach(o, arr) {
		read_instance(o, &in);
		if (in.id[0] == '\0')
			continue;
		rc = fn(&in, ctx);
		if (rc != 0)
			break;
	}
out:
	cJSON_Delete(doc);
	mb_buf_release(&out);
	return rc;
}

const struct mb_provider_ops mb_vast_ops = {
	"vast", vast_open, vast_release, vast_search, vast_create, vast_show,
	vast_destroy, vast_list,
};
