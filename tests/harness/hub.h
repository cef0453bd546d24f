/*
 * hub: the fake Hugging Face hub (tests/harness/fakehub.py) for the tests.
 * Starts it over a directory of repos (DIR/<org>/<name>/...), sets its fault
 * knobs and reads its counters through its control API. What the server
 * speaks and what each knob does is described at the top of fakehub.py.
 *
 * Like the rest of the harness, functions return 0 on success and -1 on
 * failure after printing the reason to stderr. Set MB_FAKEHUB_VERBOSE=1 in
 * the environment to have the server log each request on stderr.
 */
#ifndef MB_TH_HUB_H
#define MB_TH_HUB_H

#include <sys/types.h>

struct th_hub {
	pid_t pid;
	int port;	/* the hub: APIs, resolve, /_control */
	int blob_port;	/* where resolve redirects LFS files */
	char url[64];	/* http://127.0.0.1:PORT, the HF_ENDPOINT to use */
};

/* Starts the hub over root and waits until it listens. token is the Bearer
 * token that opens gated and private repos (NULL: none does). */
int th_hub_start(struct th_hub *h, const char *root, const char *token);

/* Like th_hub_start, with extra arguments for fakehub.py (a NULL-terminated
 * list such as { "--page-size", "2", NULL }); extra may be NULL. */
int th_hub_start_args(struct th_hub *h, const char *root, const char *token,
		      const char *const extra[]);

/* Adds a fault for repo ("org/name") and path (NULL or "": all its paths,
 * and its API calls for rate_limit). knobs_json is the inside of a JSON
 * object, e.g. "\"cut_after\":1000" or "\"stall\":2,\"times\":3". */
int th_hub_fault(struct th_hub *h, const char *repo, const char *path,
		 const char *knobs_json);

/* Clears all faults and counters. */
int th_hub_reset(struct th_hub *h);

/* Body bytes of repo/path sent since the last reset, and the resolve and
 * blob requests that named it (both 0 when none did). Either out may be
 * NULL. */
int th_hub_stats(struct th_hub *h, const char *repo, const char *path,
		 long long *bytes, long long *requests);

/* How many requests reached the blob port with an Authorization header
 * since the last reset (should stay 0: a token must not follow a redirect). */
int th_hub_blob_auth_count(struct th_hub *h, long long *n);

/* All requests the hub and blob ports served since the last reset (control
 * calls not counted). */
int th_hub_request_count(struct th_hub *h, long long *n);

/* Stops the hub (SIGTERM, then SIGKILL) and zeroes pid; safe to call twice
 * or on a hub that never started (pid 0). */
void th_hub_stop(struct th_hub *h);

#endif
