/* json: bounded, typed access to cJSON documents. */
#include "common/json.h"

#include <math.h>
#include <stdio.h>
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

/* The line and column of byte off of text, from 1. */
static void where(const char *text, size_t off, char *why, size_t cap)
{
	size_t line = 1, col = 1, i;

	for (i = 0; i < off; i++) {
		if (text[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	snprintf(why, cap, "line %zu, column %zu", line, col);
}

cJSON *mb_json_parse_python(const char *text, size_t len, int *replaced,
			    char *why, size_t whycap)
{
	static const char *const words[] = { "-Infinity", "Infinity", "NaN" };
	struct mb_buf b;
	const char *end = NULL;
	cJSON *doc = NULL;
	int in_str = 0;
	size_t i, w;

	*replaced = 0;
	if (whycap > 0)
		why[0] = '\0';
	mb_buf_init(&b, len + 16);
	for (i = 0; i < len; i++) {
		if (in_str) {
			if (text[i] == '\\' && i + 1 < len) {
				if (mb_buf_add(&b, text + i, 2) != 0)
					goto out;
				i++;
				continue;
			}
			in_str = text[i] != '"';
		} else if (text[i] == '"') {
			in_str = 1;
		} else {
			for (w = 0; w < 3; w++) {
				size_t n = strlen(words[w]);

				if (len - i >= n && memcmp(text + i, words[w], n) == 0)
					break;
			}
			if (w < 3) {
				if (mb_buf_adds(&b, "null") != 0)
					goto out;
				i += strlen(words[w]) - 1;
				(*replaced)++;
				continue;
			}
		}
		if (mb_buf_add(&b, text + i, 1) != 0)
			goto out;
	}
	doc = mb_json_parse(b.data != NULL ? b.data : "", b.len);
	if (doc == NULL && whycap > 0) {
		/* where the original text stops being JSON */
		cJSON *d = cJSON_ParseWithLengthOpts(text, len, &end, 0);

		/* parsed: what follows the value is the trouble */
		while (d != NULL && end != NULL && end < text + len &&
		       (*end == ' ' || *end == '\t' || *end == '\n' ||
			*end == '\r'))
			end++;
		cJSON_Delete(d);
		if (end != NULL && end >= text && end <= text + len)
			where(text, (size_t)(end - text), why, whycap);
		else
			snprintf(why, whycap, "trailing text after the value");
	}
out:
	mb_buf_release(&b);
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

/* The length of the well-formed UTF-8 sequence at s (RFC 3629: no
 * overlong forms, surrogates or code points past U+10FFFF), 0 when there
 * is none. */
static int utf8_len(const unsigned char *s)
{
	int n, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
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
			if (c < 0x20) {
				rc = mb_buf_addf(b, "\\u%04x", c);
			} else if (c < 0x80) {
				rc = mb_buf_add(b, s, 1);
			} else {
				/* JSON is UTF-8: bytes that are not (a token's
				 * half of a character, a hostile name) become
				 * U+FFFD, one for each */
				int n = utf8_len((const unsigned char *)s);

				if (n == 0) {
					rc = mb_buf_add(b, "\\ufffd", 6);
				} else {
					rc = mb_buf_add(b, s, (size_t)n);
					s += n - 1;
				}
			}
		}
	}
	return rc != 0 ? rc : mb_buf_add(b, "\"", 1);
}
