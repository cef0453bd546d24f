/* protocol: shared names and checks. */
#include "proto/protocol.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/json.h"

int mb_proto_name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 64 || s[0] == '-')
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int mb_proto_step_verb_ok(const char *verb)
{
	static const char *const verbs[] = { "fetch", "convert", "imatrix",
					     "quantize", "fidelity",
					     "manifest", "push" };
	size_t i;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(verb, verbs[i]) == 0)
			return 1;
	return 0;
}

int mb_proto_env_name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 64 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

int mb_step_result_parse(const char *text, size_t len,
			 struct mb_step_result *r, char *err, size_t errcap)
{
	cJSON *doc = mb_json_parse(text, len);
	const cJSON *v;
	const char *e = NULL;
	uint64_t u;
	int rc = MB_EPROTO;

	memset(r, 0, sizeof(*r));
	r->exit = -1;
	if (!cJSON_IsObject(doc)) {
		mb_seterr(err, errcap, "the step's result is not a JSON object");
		cJSON_Delete(doc);
		return MB_EJSON;
	}
	v = cJSON_GetObjectItemCaseSensitive(doc, "ok");
	if (!cJSON_IsBool(v)) {
		mb_seterr(err, errcap, "the step's result has no \"ok\"");
		goto out;
	}
	r->ok = cJSON_IsTrue(v);
	r->cancelled = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc,
								     "cancelled"));
	v = cJSON_GetObjectItemCaseSensitive(doc, "exit");
	if (cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
	    v->valuedouble >= -1 && v->valuedouble <= 255 &&
	    v->valuedouble == (double)(int)v->valuedouble)
		r->exit = (int)v->valuedouble;
	else if (!r->ok) {
		mb_seterr(err, errcap, "the step's result has no exit code");
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(doc, "seconds");
	if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= 0)
		r->seconds = v->valuedouble;
	if (mb_json_get_u64(doc, "peak_rss", MB_JSON_MAX_INT, &u) == 0)
		r->peak_rss = u;
	if (mb_json_get_str(doc, "error", 1 << 20, &e) == 0)
		snprintf(r->error, sizeof(r->error), "%s", e);
	rc = 0;
out:
	cJSON_Delete(doc);
	return rc;
}

int mb_step_exit_err(int exit)
{
	return exit == 1 ? MB_ENETWORK : MB_EUNSUPPORTED;
}
