/*
 * notify: tells a person a job ended, by POSTing a summary to a URL they
 * gave (`submit --notify URL`, or notify_url in the config). The body is
 * one JSON object that the common webhooks take as it is:
 *
 *   {"text": "<one line>", "content": "<the same line>",
 *    "job": {"id", "source", "worker", "state", "error", "held_seconds",
 *            "cost", "artifacts": [{"file", "size", "sha256"}]}}
 *
 * Slack reads "text", Discord reads "content"; a URL whose host starts
 * with "ntfy." (an ntfy topic, as on ntfy.sh) gets the line as a
 * plain-text body with a Title header instead, which is how ntfy shows
 * messages. A failed POST is
 * retried twice; it never changes the job.
 */
#ifndef MB_NOTIFY_H
#define MB_NOTIFY_H

#include <stddef.h>

struct mb_store;
struct mb_job_row;

/* Builds the summary of job j (its artifacts read from s) into a new
 * JSON string and its one-line text into line (cap bytes). Caller frees
 * the result with free(). NULL when memory runs out. */
char *mb_notify_summary(struct mb_store *s, const struct mb_job_row *j,
			char *line, size_t cap);

/* POSTs the summary of job j to url. 0 when the server answered 2xx;
 * otherwise err says what happened. */
int mb_notify_send(struct mb_store *s, const struct mb_job_row *j,
		   const char *url, char *err, size_t errcap);

/* POSTs an alert that is not about one job (a worker's idle command
 * failed, so a box may still be billing): {"text","content","alert"}, or
 * the plain line to an ntfy topic. */
int mb_notify_alert(const char *url, const char *title, const char *line,
		    char *err, size_t errcap);

#endif
