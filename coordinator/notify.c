/* notify: a job's summary POSTed to a webhook. */
#include "coordinator/notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"
#include "coordinator/store.h"

static int add_artifact(const char *name, uint64_t size, const char *sha256,
			const char *path, const char *smoke, void *ctx)
{
	struct mb_buf *b = ctx;

	(void)path;
	(void)smoke;
	if (b->data[b->len - 1] != '[')
		mb_buf_adds(b, ",");
	mb_buf_adds(b, "{\"file\":");
	mb_json_quote(b, name);
	mb_buf_addf(b, ",\"size\":%llu,\"sha256\":", (unsigned long long)size);
	mb_json_quote(b, sha256);
	return mb_buf_adds(b, "}");
}

static int count_artifact(const char *name, uint64_t size, const char *sha256,
			  const char *path, const char *smoke, void *ctx)
{
	(void)name;
	(void)size;
	(void)sha256;
	(void)path;
	(void)smoke;
	(*(int *)ctx)++;
	return 0;
}

char *mb_notify_summary(struct mb_store *s, const struct mb_job_row *j,
			char *line, size_t cap)
{
	double cost = mb_job_cost(j);
	struct mb_buf b;
	int n = 0;

	mb_store_artifact_list(s, j->id, count_artifact, &n);
	if (strcmp(j->state, "succeeded") == 0)
		snprintf(line, cap, "mibera: job %lld %s on %s succeeded: %d "
			 "artifact%s verified, %.0f s, $%.2f", (long long)j->id,
			 j->source, j->worker, n, n == 1 ? "" : "s",
			 j->held_seconds, cost);
	else
		snprintf(line, cap, "mibera: job %lld %s on %s %s: %s",
			 (long long)j->id, j->source, j->worker, j->state,
			 j->error[0] ? j->error : "no reason given");
	mb_buf_init(&b, 1 << 20);
	mb_buf_adds(&b, "{\"text\":");
	mb_json_quote(&b, line);
	mb_buf_adds(&b, ",\"content\":");
	mb_json_quote(&b, line);
	mb_buf_addf(&b, ",\"job\":{\"id\":%lld,\"source\":", (long long)j->id);
	mb_json_quote(&b, j->source);
	mb_buf_adds(&b, ",\"worker\":");
	mb_json_quote(&b, j->worker);
	mb_buf_addf(&b, ",\"state\":\"%s\",\"error\":", j->state);
	mb_json_quote(&b, j->error);
	mb_buf_addf(&b, ",\"held_seconds\":%.1f,\"cost\":%.4f,\"artifacts\":[",
		    j->held_seconds, cost);
	mb_store_artifact_list(s, j->id, add_artifact, &b);
	mb_buf_adds(&b, "]}}");
	return mb_buf_detach(&b, NULL);
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

/* ntfy shows a plain body as the message; JSON would show as text. */
static int is_ntfy(const char *url)
{
	const char *host = strstr(url, "://");

	return host != NULL && strncasecmp(host + 3, "ntfy.", 5) == 0;
}

/* POSTs body (JSON) to url, or line as plain text with a Title header to
 * an ntfy topic; three tries. */
static int post(const char *url, const char *title, const char *line,
		const char *body, char *err, size_t errcap)
{
	char hdr[300], cerr[CURL_ERROR_SIZE];
	struct curl_slist *h = NULL;
	long code = 0;
	int tries, rc = MB_ENETWORK;
	CURL *c;

	c = curl_easy_init();
	if (c == NULL)
		return MB_ENOMEM;
	if (is_ntfy(url)) {
		snprintf(hdr, sizeof(hdr), "Title: %s", title);
		h = curl_slist_append(h, hdr);
		h = curl_slist_append(h, "Content-Type: text/plain; charset=utf-8");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, line);
	} else {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "mibera");
	for (tries = 0; tries < 3; tries++) {
		CURLcode cc;

		if (tries > 0) {
			struct timespec ts = { tries * 2, 0 };

			nanosleep(&ts, NULL);
		}
		cerr[0] = '\0';
		cc = curl_easy_perform(c);
		if (cc != CURLE_OK) {
			mb_seterr(err, errcap, "cannot notify: %s",
				  cerr[0] ? cerr : curl_easy_strerror(cc));
			continue;
		}
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		if (code >= 200 && code < 300) {
			rc = 0;
			break;
		}
		mb_seterr(err, errcap, "cannot notify: the server answered %ld",
			  code);
		if (code >= 400 && code < 500 && code != 429)
			break; /* it will not change its mind */
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return rc;
}

int mb_notify_send(struct mb_store *s, const struct mb_job_row *j,
		   const char *url, char *err, size_t errcap)
{
	char line[1400], title[200];
	char *body = mb_notify_summary(s, j, line, sizeof(line));
	int rc;

	if (body == NULL)
		return MB_ENOMEM;
	snprintf(title, sizeof(title), "mibera job %lld %s", (long long)j->id,
		 j->state);
	rc = post(url, title, line, body, err, errcap);
	free(body);
	return rc;
}

int mb_notify_alert(const char *url, const char *title, const char *line,
		    char *err, size_t errcap)
{
	struct mb_buf b;
	int rc;

	mb_buf_init(&b, 1 << 16);
	mb_buf_adds(&b, "{\"text\":");
	mb_json_quote(&b, line);
	mb_buf_adds(&b, ",\"content\":");
	mb_json_quote(&b, line);
	mb_buf_adds(&b, ",\"alert\":");
	mb_json_quote(&b, title);
	mb_buf_adds(&b, "}");
	rc = mb_buf_error(&b);
	if (rc == 0)
		rc = post(url, title, line, b.data, err, errcap);
	mb_buf_release(&b);
	return rc;
}
