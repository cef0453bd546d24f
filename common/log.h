/*
 * log: leveled logging. The library never prints: mb_log formats the
 * message and hands it to the sink the program installed (stderr, a job's
 * event journal, a test's capture). With no sink, messages are dropped.
 *
 * Secrets registered with mb_log_add_secret are replaced by "***" in every
 * message before any sink sees it, so a token that slips into a URL or an
 * error text still never reaches a log.
 */
#ifndef MB_LOG_H
#define MB_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum mb_log_level {
	MB_LOG_ERROR = 0,
	MB_LOG_WARN = 1,
	MB_LOG_INFO = 2,
	MB_LOG_DEBUG = 3,
};

/* Receives one formatted, redacted message (no trailing newline). */
typedef void (*mb_log_sink)(enum mb_log_level level, const char *msg,
			    void *ctx);

/* Installs sink (NULL: drop everything) with its context. */
void mb_log_set_sink(mb_log_sink sink, void *ctx);

/* Messages above level are dropped before formatting. Default MB_LOG_INFO. */
void mb_log_set_level(enum mb_log_level level);

/* Returns the level in force. */
enum mb_log_level mb_log_get_level(void);

/* Parses "error", "warn", "info" or "debug"; MB_EINVAL otherwise. */
int mb_log_level_parse(const char *s, enum mb_log_level *out);

/* Returns "error", "warn", "info" or "debug". */
const char *mb_log_level_name(enum mb_log_level level);

/* Registers a secret to redact (copied; at least 4 characters, shorter is
 * MB_EINVAL since redacting "a" would mangle every message). At most 8. */
int mb_log_add_secret(const char *secret);

/* Forgets every registered secret (and wipes the copies). */
void mb_log_clear_secrets(void);

/* Writes s into out (cap bytes, always NUL-terminated) with every
 * registered secret replaced by "***". Returns the length written. */
size_t mb_log_redact(const char *s, char *out, size_t cap);

void mb_log(enum mb_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void mb_vlog(enum mb_log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* The sink programs use: "LEVEL: message" lines on stderr, with the
 * program name from ctx (a const char *) in front when it is not NULL. */
void mb_log_stderr_sink(enum mb_log_level level, const char *msg, void *ctx);

#endif
