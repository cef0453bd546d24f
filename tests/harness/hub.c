/* hub: start the fake hub and drive its control API with libcurl. */
#include "hub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/buf.h"
#include "th.h"

/* Starting Python and binding two ports takes well under a second; a loaded
 * 2-core CI box running the suite in parallel can be ten times slower. */
#define HUB_START_MS 20000
#define HUB_STOP_MS 5000
/* Stats grow with the number of files touched; a test touches a handful. */
#define HUB_REPLY_CAP (4u << 20)
#define HUB_MAX_ARGS 32

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct mb_buf *b = arg;

	if (mb_buf_add(b, data, size * n) != 0)
		return 0;
	return size * n;
}

static int parse_port(const char *s, const char *key, int *port)
{
	const char *p = strstr(s, key);
	char *end;
	long v;

	if (p == NULL)
		return -1;
	p += strlen(key);
	errno = 0;
	v = strtol(p, &end, 10);
	if (errno != 0 || end == p || v <= 0 || v > 65535 ||
	    (*end != '\0' && *end != ' '))
		return -1;
	*port = (int)v;
	return 0;
}

int th_hub_start_args(struct th_hub *h, const char *root, const char *token,
		      const char *const extra[])
{
	const char *argv[HUB_MAX_ARGS];
	const char *verbose = getenv("MB_FAKEHUB_VERBOSE");
	char line[256];
	int argc = 0, fd = -1, n;

	memset(h, 0, sizeof(*h));
	argv[argc++] = MB_PYTHON;
	argv[argc++] = MB_SOURCE_DIR "/tests/harness/fakehub.py";
	argv[argc++] = "--root";
	argv[argc++] = root;
	if (token != NULL) {
		argv[argc++] = "--token";
		argv[argc++] = token;
	}
	if (verbose != NULL && *verbose != '\0' && strcmp(verbose, "0") != 0)
		argv[argc++] = "--verbose";
	for (; extra != NULL && *extra != NULL; extra++) {
		if (argc + 1 >= HUB_MAX_ARGS) {
			fprintf(stderr, "th_hub: too many arguments\n");
			return -1;
		}
		argv[argc++] = *extra;
	}
	argv[argc] = NULL;

	/* th_spawn takes char *const[] as execvp does; it writes nothing. */
	if (th_spawn((char *const *)(void *)argv, &h->pid, &fd) != 0) {
		fprintf(stderr, "th_hub: cannot start %s: %s\n", MB_PYTHON,
			strerror(errno));
		h->pid = 0;
		return -1;
	}
	n = th_read_line(fd, line, sizeof(line), HUB_START_MS);
	close(fd);
	if (n < 0 || parse_port(line, "HUB_PORT=", &h->port) != 0 ||
	    parse_port(line, "BLOB_PORT=", &h->blob_port) != 0) {
		fprintf(stderr, "th_hub: fakehub.py did not report its ports "
			"within %d ms (got '%s')\n", HUB_START_MS,
			n < 0 ? "" : line);
		th_hub_stop(h);
		return -1;
	}
	snprintf(h->url, sizeof(h->url), "http://127.0.0.1:%d", h->port);
	return 0;
}

int th_hub_start(struct th_hub *h, const char *root, const char *token)
{
	return th_hub_start_args(h, root, token, NULL);
}

/* One control call. On success *reply (if not NULL) gets the body, which the
 * caller frees. Only 200 counts as success. */
static int hub_call(struct th_hub *h, const char *method, const char *what,
		    const char *body, char **reply)
{
	struct curl_slist *hdrs = NULL;
	struct mb_buf b;
	char url[128];
	long code = 0;
	CURLcode cc;
	CURL *c;
	int rc = -1;

	if (reply != NULL)
		*reply = NULL;
	mb_buf_init(&b, HUB_REPLY_CAP);
	snprintf(url, sizeof(url), "%s/_control/%s", h->url, what);
	c = curl_easy_init();
	if (c == NULL) {
		fprintf(stderr, "th_hub: curl_easy_init failed\n");
		return -1;
	}
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		fprintf(stderr, "th_hub: %s %s: %s\n", method, url,
			curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) {
		fprintf(stderr, "th_hub: %s %s: HTTP %ld: %s\n", method, url,
			code, b.data != NULL ? b.data : "");
		goto out;
	}
	if (reply != NULL) {
		*reply = mb_buf_detach(&b, NULL);
		if (*reply == NULL)
			goto out;
	}
	rc = 0;
out:
	mb_buf_release(&b);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return rc;
}

int th_hub_fault(struct th_hub *h, const char *repo, const char *path,
		 const char *knobs_json)
{
	struct mb_buf b;
	cJSON *obj = NULL;
	char *body = NULL;
	int rc = -1;

	/* Parse the knobs first so a typo in a test shows as such, then add
	 * repo and path through cJSON so they are quoted properly. */
	mb_buf_init(&b, 1u << 16);
	if (mb_buf_addf(&b, "{%s}", knobs_json != NULL ? knobs_json : "") != 0)
		goto out;
	obj = cJSON_Parse(b.data);
	if (obj == NULL) {
		fprintf(stderr, "th_hub: bad fault knobs: {%s}\n", knobs_json);
		goto out;
	}
	if (cJSON_AddStringToObject(obj, "repo", repo) == NULL ||
	    cJSON_AddStringToObject(obj, "path", path != NULL ? path : "") ==
		    NULL)
		goto out;
	body = cJSON_PrintUnformatted(obj);
	if (body == NULL)
		goto out;
	rc = hub_call(h, "POST", "fault", body, NULL);
out:
	free(body);
	cJSON_Delete(obj);
	mb_buf_release(&b);
	return rc;
}

int th_hub_reset(struct th_hub *h)
{
	return hub_call(h, "POST", "reset", "{}", NULL);
}

/* Fetches /_control/stats, parsed; the caller deletes it. */
static cJSON *hub_stats(struct th_hub *h)
{
	char *reply;
	cJSON *j;

	if (hub_call(h, "GET", "stats", NULL, &reply) != 0)
		return NULL;
	j = cJSON_Parse(reply);
	if (j == NULL || !cJSON_IsObject(j)) {
		fprintf(stderr, "th_hub: stats are not a JSON object: %s\n",
			reply);
		cJSON_Delete(j);
		j = NULL;
	}
	free(reply);
	return j;
}

static int get_count(const cJSON *obj, const char *name, long long *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (out == NULL)
		return 0;
	if (v == NULL) {
		*out = 0;
		return 0;
	}
	if (!cJSON_IsNumber(v))
		return -1;
	*out = (long long)v->valuedouble;
	return 0;
}

int th_hub_stats(struct th_hub *h, const char *repo, const char *path,
		 long long *bytes, long long *requests)
{
	const cJSON *files, *f;
	struct mb_buf key;
	cJSON *j;
	int rc = -1;

	mb_buf_init(&key, 4096);
	j = hub_stats(h);
	if (j == NULL)
		goto out;
	if (mb_buf_addf(&key, "%s/%s", repo, path) != 0)
		goto out;
	files = cJSON_GetObjectItemCaseSensitive(j, "files");
	f = cJSON_IsObject(files) ?
		cJSON_GetObjectItemCaseSensitive(files, key.data) : NULL;
	if (get_count(f, "bytes", bytes) != 0 ||
	    get_count(f, "requests", requests) != 0) {
		fprintf(stderr, "th_hub: bad stats for '%s'\n", key.data);
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(j);
	mb_buf_release(&key);
	return rc;
}

static int top_count(struct th_hub *h, const char *name, long long *n)
{
	cJSON *j = hub_stats(h);
	int rc = -1;

	if (j == NULL)
		return -1;
	if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, name)))
		rc = get_count(j, name, n);
	else
		fprintf(stderr, "th_hub: stats lack '%s'\n", name);
	cJSON_Delete(j);
	return rc;
}

int th_hub_blob_auth_count(struct th_hub *h, long long *n)
{
	return top_count(h, "blob_auth_headers", n);
}

int th_hub_request_count(struct th_hub *h, long long *n)
{
	return top_count(h, "requests", n);
}

void th_hub_stop(struct th_hub *h)
{
	if (h->pid > 0)
		th_stop(h->pid, HUB_STOP_MS);
	h->pid = 0;
}
