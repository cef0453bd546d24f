/* json: bounded, typed access to cJSON documents. */
#include "common/json.h"

#include <math.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"

cJSON *mb_json_parse(const char *text, size_t len)
{
	const char *end = NULL;
	cJSON *doc;

	doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (doc == NULL)
		return NULL;
	/* cJSON stops after the first value: anything but whitespace after
	 * it means the document is not what it claims to be */
	for (; end < text + len; end++)
		if (*end != ' ' && *end != '\t' && *end != '\n' &&
		    *end != '\r' && *end != '\0') {
			cJSON_Delete(doc);
			return NULL;
		}
	return doc;
}

int mb_json_get_u64(const cJSON *obj, const char *key, uint64_t max,
		    uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	double d;

	if (v == NULL)
		return MB_ENOENT;
	if (!cJSON_IsNumber(v))
		return MB_EJSON;
	d = v->valuedouble;
	if (!(d >= 0) || d != floor(d) || d > (double)MB_JSON_MAX_INT ||
	    d > (double)max)
		return MB_EJSON;
	*out = (uint64_t)d;
	return 0;
}

int mb_json_get_str(const cJSON *obj, const char *key, size_t maxlen,
		    const char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (v == NULL)
		return MB_ENOENT;
	if (!cJSON_IsString(v) || v->valuestring == NULL ||
	    strlen(v->valuestring) > maxlen)
		return MB_EJSON;
	*out = v->valuestring;
	return 0;
}

int mb_json_quote(struct mb_buf *b, const char *s)
{
	int rc = mb_buf_add(b, "\"", 1);

	for (; rc == 0 && *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '"':
			rc = mb_buf_add(b, "\\\"", 2);
			break;
		case '\\':
			rc = mb_buf_add(b, "\\\\", 2);
			break;
		case '\n':
			rc = mb_buf_add(b, "\\n", 2);
			break;
		case '\r':
			rc = mb_buf_add(b, "\\r", 2);
			break;
		case '\t':
			rc = mb_buf_add(b, "\\t", 2);
			break;
		default:
			if (c < 0x20)
				rc = mb_buf_addf(b, "\\u%04x", c);
			else
				rc = mb_buf_add(b, s, 1);
		}
	}
	return rc != 0 ? rc : mb_buf_add(b, "\"", 1);
}
