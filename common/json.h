/*
 * json: checked access to cJSON documents from outside (the hub, workers,
 * manifests). Every getter says whether the member exists with the right
 * type and range, so a hostile document yields an error, never a crash or a
 * silently wrong value.
 */
#ifndef MB_JSON_H
#define MB_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

struct mb_buf;

/* Largest integer a JSON number (an IEEE double) carries exactly: 2^53. */
#define MB_JSON_MAX_INT 9007199254740992ULL

/* Parses len bytes (no NUL needed) holding exactly one JSON value and
 * optional whitespace; NULL when malformed, trailed by anything else, or
 * out of memory. */
cJSON *mb_json_parse(const char *text, size_t len);

/* mb_json_parse for files Python wrote (config.json): its json module
 * writes NaN, Infinity and -Infinity, which JSON does not have; outside
 * strings they are read as null and *replaced counts them. When the text
 * is still not JSON, NULL and why says where ("line 3, column 7"). */
cJSON *mb_json_parse_python(const char *text, size_t len, int *replaced,
			    char *why, size_t whycap);

/* Stores obj[key] as an unsigned integer in [0, max]: MB_ENOENT when
 * missing, MB_EJSON when not an integral number or out of range. */
int mb_json_get_u64(const cJSON *obj, const char *key, uint64_t max,
		    uint64_t *out);

/* Stores a pointer to obj[key]'s string (owned by the document) when it is
 * a string of at most maxlen bytes. MB_ENOENT, MB_EJSON otherwise. */
int mb_json_get_str(const cJSON *obj, const char *key, size_t maxlen,
		    const char **out);

/* Appends s as a JSON string literal (quoted, escaped) to b. */
int mb_json_quote(struct mb_buf *b, const char *s);

#endif
