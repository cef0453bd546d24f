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
 * given), installs it first: uploads the source bundle and
 * worker-bootstrap.sh (found beside this program) into the worker
 * directory and runs the script, which builds mibera-worker there. The
 * hello JSON (one line) goes to hello. */
int mb_worker_hello(struct mb_transport *t, const struct mb_worker_row *w,
		    const char *agent, int bootstrap, char *hello,
		    size_t hello_cap, char *err, size_t errcap);

#endif
