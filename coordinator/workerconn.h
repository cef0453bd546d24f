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

#endif
