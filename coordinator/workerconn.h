/*
 * workerconn: reaching a worker as the database knows it. One place turns
 * a worker row into a transport (its pinned host key, its key file) and
 * into the path of its agent, for every command that talks to workers.
 */
#ifndef MB_WORKERCONN_H
#define MB_WORKERCONN_H

#include <stddef.h>

struct mb_transport;
struct mb_worker_row;

/* Connects to w (insisting on its pinned host key; accept, when not
 * NULL, trusts an unknown key with that fingerprint) and writes the agent
 * to run there into agent: --agent when given, for a local worker the
 * mibera-worker beside this program, else DIR/bin/mibera-worker. On
 * failure err says why and *t is NULL. */
int mb_worker_connect(const struct mb_worker_row *w, const char *accept,
		      struct mb_transport **t, char *agent, size_t agent_cap,
		      char *err, size_t errcap);

/* Runs the agent's hello on t. When the agent is missing or of another
 * version than this coordinator and bootstrap is set (no --agent was
 * given), installs it first: uploads the source bundle, llama.cpp's
 * pinned source and worker-bootstrap.sh (found beside this program, or in
 * PREFIX/share/mibera) into the worker directory and runs the script,
 * which builds mibera-worker there. The hello JSON (one line) goes to
 * hello. */
int mb_worker_hello(struct mb_transport *t, const struct mb_worker_row *w,
		    const char *agent, int bootstrap, char *hello,
		    size_t hello_cap, char *err, size_t errcap);

/* Writes len bytes of data as the file path on the worker (replacing
 * it); on failure err says which file and why. */
int mb_worker_put(struct mb_transport *t, const char *path, const void *data,
		  size_t len, char *err, size_t errcap);

/* Copies the local file to path on the worker (adding its size to *sent,
 * when sent is not NULL). Small files only: it is read whole. */
int mb_worker_upload(struct mb_transport *t, const char *local,
		     const char *path, size_t *sent, char *err, size_t errcap);

/* Receives the steps of an install as they start ("building llama.cpp
 * ..."), made printable, with the seconds since the install began. */
typedef void (*mb_worker_progress_fn)(const char *step, double elapsed_s,
				      void *ctx);

/* mb_worker_hello, telling progress (may be NULL) each step of an install
 * as it starts: the upload (three files: the bundle, llama.cpp's source,
 * the script), then the "bootstrap: STEP" lines the script prints. On a
 * failed install err names the step and the error that stopped it. */
int mb_worker_hello_progress(struct mb_transport *t,
			     const struct mb_worker_row *w, const char *agent,
			     int bootstrap, mb_worker_progress_fn progress,
			     void *ctx, char *hello, size_t hello_cap,
			     char *err, size_t errcap);

#endif
