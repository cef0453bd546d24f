/* workerconn: a worker row to a transport and an agent path. */
#include "coordinator/workerconn.h"

#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "coordinator/store.h"
#include "coordinator/transport.h"

int mb_worker_connect(const struct mb_worker_row *w, const char *accept,
		      struct mb_transport **t, char *agent, size_t agent_cap,
		      char *err, size_t errcap)
{
	struct mb_transport_opts o;
	struct mb_target tg;
	char self[2048], msg[1024];
	ssize_t n;
	int rc;

	*t = NULL;
	rc = mb_target_parse(w->target, &tg, msg, sizeof(msg));
	if (rc != 0) {
		mb_seterr(err, errcap, "%s", msg);
		return rc;
	}
	memset(&o, 0, sizeof(o));
	o.target = w->target;
	o.pinned_key = w->host_key[0] ? w->host_key : NULL;
	o.accept_fingerprint = accept;
	o.identity = w->key_path[0] ? w->key_path : NULL;
	rc = mb_transport_open(&o, t, msg, sizeof(msg));
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot connect to '%s': %s", w->target, msg);
		return rc;
	}
	if (w->agent_path[0] != '\0')
		snprintf(agent, agent_cap, "%s", w->agent_path);
	else if (tg.kind == MB_TRANSPORT_LOCAL &&
		 (n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		self[n] = '\0';
		snprintf(agent, agent_cap, "%s/mibera-worker", dirname(self));
	} else
		snprintf(agent, agent_cap, "%s/bin/mibera-worker", w->dir);
	return 0;
}
