/* log: leveled, redacting logging through a program-installed sink. */
#include "common/log.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/text.h"

#define MAX_SECRETS 8
#define MAX_SECRET_LEN 512
/* One message, formatted on the stack: long enough for a URL and an error
 * text, short enough that a runaway string cannot flood a journal. */
#define MSG_MAX 4096

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static mb_log_sink sink_fn;
static void *sink_ctx;
static enum mb_log_level max_level = MB_LOG_INFO;
static char secrets[MAX_SECRETS][MAX_SECRET_LEN + 1];
static int nsecrets;

static const char *const names[] = { "error", "warn", "info", "debug" };

void mb_log_set_sink(mb_log_sink sink, void *ctx)
{
	pthread_mutex_lock(&lock);
	sink_fn = sink;
	sink_ctx = ctx;
	pthread_mutex_unlock(&lock);
}

void mb_log_set_level(enum mb_log_level level)
{
	max_level = level;
}

enum mb_log_level mb_log_get_level(void)
{
	return max_level;
}

int mb_log_level_parse(const char *s, enum mb_log_level *out)
{
	int i;

	for (i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum mb_log_level)i;
			return 0;
		}
	return MB_EINVAL;
}

const char *mb_log_level_name(enum mb_log_level level)
{
	return (unsigned)level < 4 ? names[level] : "?";
}

int mb_log_add_secret(const char *secret)
{
	size_t n = strlen(secret);
	int rc = 0;

	if (n < 4 || n > MAX_SECRET_LEN)
		return MB_EINVAL;
	pthread_mutex_lock(&lock);
	if (nsecrets == MAX_SECRETS)
		rc = MB_ETOOBIG;
	else
		memcpy(secrets[nsecrets++], secret, n + 1);
	pthread_mutex_unlock(&lock);
	return rc;
}

void mb_log_clear_secrets(void)
{
	pthread_mutex_lock(&lock);
	/* volatile so the wipe is not optimised away as a dead store */
	for (volatile char *p = &secrets[0][0];
	     p < &secrets[0][0] + sizeof(secrets); p++)
		*p = 0;
	nsecrets = 0;
	pthread_mutex_unlock(&lock);
}

/* Caller holds the lock. */
static size_t redact_locked(const char *s, char *out, size_t cap)
{
	size_t o = 0;

	if (cap == 0)
		return 0;
	while (*s != '\0' && o + 1 < cap) {
		int i, hit = 0;

		for (i = 0; i < nsecrets; i++) {
			size_t n = strlen(secrets[i]);

			if (strncmp(s, secrets[i], n) == 0) {
				size_t k;

				for (k = 0; k < 3 && o + 1 < cap; k++)
					out[o++] = '*';
				s += n;
				hit = 1;
				break;
			}
		}
		if (!hit)
			out[o++] = *s++;
	}
	out[o] = '\0';
	return o;
}

size_t mb_log_redact(const char *s, char *out, size_t cap)
{
	size_t n;

	pthread_mutex_lock(&lock);
	n = redact_locked(s, out, cap);
	pthread_mutex_unlock(&lock);
	return n;
}

void mb_vlog(enum mb_log_level level, const char *fmt, va_list ap)
{
	char raw[MSG_MAX], msg[MSG_MAX];

	if (level > max_level)
		return;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	pthread_mutex_lock(&lock);
	if (sink_fn != NULL) {
		redact_locked(raw, msg, sizeof(msg));
		/* messages carry text from outside (a worker's error, a
		 * hub's file name): no terminal escapes reach a sink */
		mb_sanitize(msg, 1);
		sink_fn(level, msg, sink_ctx);
	}
	pthread_mutex_unlock(&lock);
}

void mb_log(enum mb_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mb_vlog(level, fmt, ap);
	va_end(ap);
}

void mb_log_stderr_sink(enum mb_log_level level, const char *msg, void *ctx)
{
	const char *prog = ctx;

	if (prog != NULL)
		fprintf(stderr, "%s: %s: %s\n", prog, mb_log_level_name(level),
			msg);
	else
		fprintf(stderr, "%s: %s\n", mb_log_level_name(level), msg);
}
