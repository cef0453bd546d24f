/* config: $MIBERA_HOME/config.json. */
#include "coordinator/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/fs.h"
#include "common/json.h"
#include "coordinator/store.h"

static int get_int(const cJSON *doc, const char *key, int lo, int hi, int *v,
		   const char *path, char *err, size_t errcap)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(doc, key);
	double d;

	if (it == NULL)
		return 0;
	d = cJSON_GetNumberValue(it);
	if (!cJSON_IsNumber(it) || d != (double)(int)d || d < lo || d > hi) {
		mb_seterr(err, errcap, "%s: \"%s\" must be a whole number from %d "
			  "to %d", path, key, lo, hi);
		return MB_EINVAL;
	}
	*v = (int)d;
	return 0;
}

int mb_config_load(const char *path, struct mb_config *c, char *err,
		   size_t errcap)
{
	static const char *const known[] = { "notify_url", "pull_streams",
					     "retry_base_s", "retry_max",
					     "idle_check_s", "chunk_mib",
					     "quants_in_pass", NULL };
	char def[4200], *text = NULL;
	const cJSON *it;
	cJSON *doc = NULL;
	size_t len;
	int rc, k;

	memset(c, 0, sizeof(*c));
	c->pull_streams = 4;
	c->retry_base_s = 30;
	c->retry_max = 5;
	c->idle_check_s = 30;
	c->chunk_mib = 64;
	snprintf(c->quants_in_pass, sizeof(c->quants_in_pass), "auto");
	if (path == NULL) {
		char home[4096];

		mb_store_home(home, sizeof(home));
		snprintf(def, sizeof(def), "%s/config.json", home);
		path = def;
	}
	rc = mb_read_file(path, 1 << 20, &text, &len);
	if (rc == MB_ENOENT)
		return 0;
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot read %s: %s", path, mb_strerror(rc));
		return rc;
	}
	doc = mb_json_parse(text, len);
	free(text);
	if (!cJSON_IsObject(doc)) {
		cJSON_Delete(doc);
		mb_seterr(err, errcap, "%s is not a JSON object", path);
		return MB_EJSON;
	}
	cJSON_ArrayForEach(it, doc) {
		for (k = 0; known[k] != NULL; k++)
			if (strcmp(it->string, known[k]) == 0)
				break;
		if (known[k] == NULL) {
			mb_seterr(err, errcap, "%s: unknown key \"%s\"", path,
				  it->string);
			rc = MB_EINVAL;
			goto out;
		}
	}
	it = cJSON_GetObjectItemCaseSensitive(doc, "notify_url");
	if (it != NULL) {
		const char *u = cJSON_GetStringValue(it);

		if (u == NULL || strlen(u) >= sizeof(c->notify_url) ||
		    (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)) {
			mb_seterr(err, errcap, "%s: \"notify_url\" must be an "
				  "http(s) URL", path);
			rc = MB_EINVAL;
			goto out;
		}
		snprintf(c->notify_url, sizeof(c->notify_url), "%s", u);
	}
	it = cJSON_GetObjectItemCaseSensitive(doc, "quants_in_pass");
	if (it != NULL) {
		const char *v = cJSON_GetStringValue(it);

		if (v == NULL || (strcmp(v, "auto") != 0 && strcmp(v, "all") != 0 &&
				  strcmp(v, "q8_0") != 0)) {
			mb_seterr(err, errcap, "%s: \"quants_in_pass\" must be "
				  "\"auto\", \"all\" or \"q8_0\"", path);
			rc = MB_EINVAL;
			goto out;
		}
		snprintf(c->quants_in_pass, sizeof(c->quants_in_pass), "%s", v);
	}
	rc = get_int(doc, "pull_streams", 1, 16, &c->pull_streams, path, err,
		     errcap);
	if (rc == 0)
		rc = get_int(doc, "retry_base_s", 0, 86400, &c->retry_base_s, path,
			     err, errcap);
	if (rc == 0)
		rc = get_int(doc, "retry_max", 1, 100, &c->retry_max, path, err,
			     errcap);
	if (rc == 0)
		rc = get_int(doc, "idle_check_s", 1, 86400, &c->idle_check_s, path,
			     err, errcap);
	if (rc == 0)
		rc = get_int(doc, "chunk_mib", 1, 1024, &c->chunk_mib, path, err,
			     errcap);
out:
	cJSON_Delete(doc);
	return rc;
}
