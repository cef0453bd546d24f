/* protocol: shared names and checks. */
#include "proto/protocol.h"

#include <string.h>

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
	static const char *const verbs[] = { "fetch", "convert", "quantize",
					     "manifest", "repair" };
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
