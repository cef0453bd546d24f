/* workerconn: a worker row to a transport and an agent path. */
#include "coordinator/workerconn.h"

#include <libgen.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/text.h"
#include "common/fs.h"
#include "common/json.h"
#include "mb_version.h"
#include "proto/protocol.h"
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

/* Runs hello; 0 with the JSON in hello when the agent answers with this
 * build's protocol and version, MB_EPROTO when it answers otherwise (or
 * not at all). */
static int hello_once(struct mb_transport *t, const struct mb_worker_row *w,
		      const char *agent, char *hello, size_t cap, char *err,
		      size_t errcap)
{
	const char *argv[] = { agent, "hello", "--dir", w->dir, NULL };
	struct mb_buf out, eb;
	struct mb_exec x;
	cJSON *doc = NULL;
	int rc;

	mb_buf_init(&out, cap - 1);
	mb_buf_init(&eb, 4096);
	memset(&x, 0, sizeof(x));
	x.argv = argv;
	x.out = &out;
	x.err = &eb;
	x.timeout_ms = 60000;
	rc = mb_transport_exec(t, &x);
	if (rc != 0) {
		mb_seterr(err, errcap, "hello on '%s' failed: %s", w->target,
			  mb_transport_errmsg(t));
		goto out;
	}
	rc = MB_EPROTO;
	if (x.status != 0) {
		mb_seterr(err, errcap, "the agent '%s' on '%s' did not answer hello "
			  "(exit %d)%s%.300s", agent, w->target, x.status,
			  eb.data ? ": " : "", eb.data ? eb.data : "");
		goto out;
	}
	doc = out.data ? mb_json_parse(out.data, out.len) : NULL;
	if (doc == NULL ||
	    cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "protocol")) !=
		    MB_PROTO_VERSION ||
	    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(doc, "agent")) ||
	    strcmp(cJSON_GetObjectItemCaseSensitive(doc, "agent")->valuestring, MB_VERSION) != 0) {
		mb_seterr(err, errcap, "the agent on '%s' is not mibera-worker %s "
			  "(protocol %d)", w->target, MB_VERSION, MB_PROTO_VERSION);
		goto out;
	}
	snprintf(hello, cap, "%s", out.data);
	hello[strcspn(hello, "\n")] = '\0';
	rc = 0;
out:
	cJSON_Delete(doc);
	mb_buf_release(&out);
	mb_buf_release(&eb);
	return rc;
}

/* Copies a local file to path on the worker. */
static int upload(struct mb_transport *t, const char *local, const char *path,
		  char *err, size_t errcap)
{
	char *data = NULL;
	size_t len;
	int rc;

	rc = mb_read_file(local, 1u << 30, &data, &len);
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot read '%s': %s", local, mb_strerror(rc));
		return rc;
	}
	rc = mb_transport_truncate(t, path, 0);
	if (rc == 0)
		rc = mb_transport_write(t, path, 0, data, len);
	if (rc != 0)
		mb_seterr(err, errcap, "cannot upload '%s': %s", path,
			  mb_transport_errmsg(t));
	free(data);
	return rc;
}

int mb_worker_hello(struct mb_transport *t, const struct mb_worker_row *w,
		    const char *agent, int bootstrap, char *hello,
		    size_t hello_cap, char *err, size_t errcap)
{
	char self[2048], bundle[2200], script[2200], rbundle[1100], rscript[1100];
	const char *argv[5];
	struct mb_buf eb;
	struct mb_exec x;
	ssize_t n;
	int rc;

	rc = hello_once(t, w, agent, hello, hello_cap, err, errcap);
	if (rc != MB_EPROTO || !bootstrap)
		return rc;
	/* the bundle and the script: beside this program in a build tree,
	 * in PREFIX/share/mibera in an installed copy */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return MB_EINTERNAL;
	self[n] = '\0';
	{
		const char *bin = dirname(self);

		snprintf(bundle, sizeof(bundle), "%s/mibera-src.tar.gz", bin);
		snprintf(script, sizeof(script), "%s/mibera-worker-bootstrap.sh", bin);
		if (access(bundle, R_OK) != 0) {
			snprintf(bundle, sizeof(bundle), "%.1000s/../share/mibera/"
				 "mibera-src.tar.gz", bin);
			snprintf(script, sizeof(script), "%.1000s/../share/mibera/"
				 "mibera-worker-bootstrap.sh", bin);
		}
		if (access(bundle, R_OK) != 0 || access(script, R_OK) != 0) {
			mb_seterr(err, errcap, "the agent on '%s' is missing or of "
				  "another version, and this mibera has no worker "
				  "bundle to install it with (looked beside %s and in "
				  "%s/../share/mibera): install mibera with `cmake "
				  "--install`, or pass --agent PATH", w->target, bin,
				  bin);
			return MB_ENOENT;
		}
	}
	snprintf(rbundle, sizeof(rbundle), "%.1000s/mibera-src.tar.gz", w->dir);
	snprintf(rscript, sizeof(rscript), "%.1000s/bootstrap.sh", w->dir);
	rc = mb_transport_mkdirs(t, w->dir);
	if (rc == 0)
		rc = upload(t, bundle, rbundle, err, errcap);
	if (rc == 0)
		rc = upload(t, script, rscript, err, errcap);
	if (rc != 0)
		return rc;
	argv[0] = "bash";
	argv[1] = rscript;
	argv[2] = w->dir;
	argv[3] = rbundle;
	argv[4] = NULL;
	mb_buf_init(&eb, 1 << 16);
	memset(&x, 0, sizeof(x));
	x.argv = argv;
	x.err = &eb;
	x.timeout_ms = 60 * 60 * 1000; /* llama.cpp may be built: minutes */
	rc = mb_transport_exec(t, &x);
	if (rc == 0 && x.status != 0) {
		/* the step that failed (the script's last line), then what
		 * the tool said just before it */
		const char *all = eb.data ? eb.data : "", *p, *q, *at = NULL;
		char phase[300] = "", detail[500] = "";

		for (p = all; (q = strstr(p, "bootstrap: failed while ")) != NULL;
		     p = q + 1)
			at = q;
		if (at != NULL) {
			const char *e = strchr(at, '\n');
			const char *from = at - all > 400 ? at - 400 : all;

			snprintf(phase, sizeof(phase), "%.*s",
				 (int)(e ? e - at : (long)strlen(at)) - 11, at + 11);
			mb_printable_n(detail, sizeof(detail), from,
				       (size_t)(at - from), 1);
		} else {
			mb_printable(detail, sizeof(detail),
				     eb.len > 400 ? all + eb.len - 400 : all);
		}
		mb_seterr(err, errcap, "bootstrap on '%s' %s: %s", w->target,
			  phase[0] ? phase : "failed", detail);
		rc = MB_EIO;
	}
	mb_buf_release(&eb);
	if (rc != 0)
		return rc;
	return hello_once(t, w, agent, hello, hello_cap, err, errcap);
}
