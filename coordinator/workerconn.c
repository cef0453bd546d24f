/* workerconn: a worker row to a transport and an agent path. */
#include "coordinator/workerconn.h"

#include <libgen.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
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
		 mb_self_exe(self, sizeof(self)) == 0) {
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

/* Copies a local file to path on the worker; adds its size to *sent. */
int mb_worker_put(struct mb_transport *t, const char *path, const void *data,
		  size_t len, char *err, size_t errcap)
{
	int rc = mb_transport_truncate(t, path, 0);

	if (rc == 0)
		rc = mb_transport_write(t, path, 0, data, len);
	if (rc != 0)
		mb_seterr(err, errcap, "cannot write '%s' on the worker: %s", path,
			  mb_transport_errmsg(t));
	return rc;
}

int mb_worker_upload(struct mb_transport *t, const char *local,
		     const char *path, size_t *sent, char *err, size_t errcap)
{
	char *data = NULL;
	size_t len;
	int rc;

	rc = mb_read_file(local, 1u << 30, &data, &len);
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot read '%s': %s", local, mb_strerror(rc));
		return rc;
	}
	rc = mb_worker_put(t, path, data, len, err, errcap);
	if (rc == 0 && sent != NULL)
		*sent += len;
	free(data);
	return rc;
}

/* The bootstrap's stderr as it arrives: each complete "bootstrap: ..." line
 * goes to the progress callback, and the last TAIL bytes are kept for the
 * failure message. */
#define TAIL 8192
struct boot_out {
	mb_worker_progress_fn progress;
	void *ctx;
	double t0;
	char line[1024];
	size_t line_len;
	int line_cut;	/* the current line outgrew line[]: not shown */
	char tail[TAIL + 1];
	size_t tail_len;
};

static void boot_say(struct boot_out *b, const char *msg)
{
	if (b->progress != NULL)
		b->progress(msg, mb_now_s() - b->t0, b->ctx);
}

static int boot_output(int stream, const void *data, size_t len, void *ctx)
{
	struct boot_out *b = ctx;
	const char *p = data;
	size_t i, keep;

	if (stream != MB_EXEC_STDERR)
		return 0; /* stdout is the agent's hello, asked again after */
	if (len >= TAIL) {
		memcpy(b->tail, p + len - TAIL, TAIL);
		b->tail_len = TAIL;
	} else {
		keep = b->tail_len + len > TAIL ? TAIL - len : b->tail_len;
		memmove(b->tail, b->tail + b->tail_len - keep, keep);
		memcpy(b->tail + keep, p, len);
		b->tail_len = keep + len;
	}
	b->tail[b->tail_len] = '\0';
	for (i = 0; i < len; i++) {
		if (p[i] != '\n') {
			if (b->line_len + 1 < sizeof(b->line))
				b->line[b->line_len++] = p[i];
			else
				b->line_cut = 1;
			continue;
		}
		b->line[b->line_len] = '\0';
		/* a failure is the error message, not a step */
		if (!b->line_cut && strncmp(b->line, "bootstrap: ", 11) == 0 &&
		    strncmp(b->line + 11, "failed while ", 13) != 0) {
			char msg[sizeof(b->line)];

			boot_say(b, mb_printable(msg, sizeof(msg), b->line + 11));
		}
		b->line_len = 0;
		b->line_cut = 0;
	}
	return 0;
}

/* Lines of the bootstrap's output that say nothing about a failure: its
 * own progress, and what apt's tools print on every install. */
static int noise(const char *l, size_t n)
{
	static const char *const prefixes[] = {
		"bootstrap: ", "debconf: ", "dpkg-preconfigure: ",
		"Extracting templates", NULL,
	};
	size_t i;

	for (i = 0; prefixes[i] != NULL; i++)
		if (n >= strlen(prefixes[i]) &&
		    strncmp(l, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	for (i = 0; i < n; i++)
		if (l[i] != ' ' && l[i] != '\t' && l[i] != '\r')
			return 0;
	return 1;
}

/* The message for a bootstrap that exited with status: the step that
 * failed and the error that stopped it, from the script's last line
 * ("bootstrap: failed while STEP: WHAT"); when that line names no error
 * (a command stopped the script by itself), the last line the tools
 * printed before it. */
static void boot_failure(const struct boot_out *b, const char *target,
			 int status, char *err, size_t errcap)
{
	const char *all = b->tail, *p, *q, *at = NULL, *end, *l, *e;
	char what[600] = "", detail[500] = "";
	size_t n;

	for (p = all; (q = strstr(p, "bootstrap: failed while ")) != NULL;
	     p = q + 1)
		if (q == all || q[-1] == '\n')
			at = q;
	end = at != NULL ? at : all + b->tail_len;
	if (at != NULL) {
		e = strchr(at, '\n');
		n = e != NULL ? (size_t)(e - at) : strlen(at);
		mb_printable_n(what, sizeof(what), at + 11, n - 11, 0);
	} else {
		snprintf(what, sizeof(what), "failed (exit %d)", status);
	}
	if (at == NULL || strstr(what, ": ") == NULL) {
		/* the last line before end that is not noise */
		for (e = end; e > all;) {
			const char *le = e[-1] == '\n' ? e - 1 : e;

			for (l = le; l > all && l[-1] != '\n'; l--)
				;
			if (!noise(l, (size_t)(le - l))) {
				mb_printable_n(detail, sizeof(detail), l,
					       (size_t)(le - l), 0);
				break;
			}
			e = l;
		}
	}
	mb_seterr(err, errcap, "bootstrap on '%s' %s%s%s", target, what,
		  detail[0] ? ": " : "", detail);
}

/* Finds name beside this program (a build tree) or in PREFIX/share/mibera
 * (an installed copy); 0 with the path in out, else MB_ENOENT. */
static int find_shipped(const char *bin, const char *name, const char *inst,
			char *out, size_t cap)
{
	snprintf(out, cap, "%.1000s/%s", bin, name);
	if (access(out, R_OK) == 0)
		return 0;
	snprintf(out, cap, "%.1000s/../share/mibera/%s", bin,
		 inst != NULL ? inst : name);
	return access(out, R_OK) == 0 ? 0 : MB_ENOENT;
}

int mb_worker_hello(struct mb_transport *t, const struct mb_worker_row *w,
		    const char *agent, int bootstrap, char *hello,
		    size_t hello_cap, char *err, size_t errcap)
{
	return mb_worker_hello_progress(t, w, agent, bootstrap, NULL, NULL,
					hello, hello_cap, err, errcap);
}

int mb_worker_hello_progress(struct mb_transport *t,
			     const struct mb_worker_row *w, const char *agent,
			     int bootstrap, mb_worker_progress_fn progress,
			     void *pctx, char *hello, size_t hello_cap,
			     char *err, size_t errcap)
{
	char self[2048], bundle[2200], script[2200], llama[2200];
	char rbundle[1100], rscript[1100], rllama[1100], msg[1300];
	const char *argv[6], *bin;
	struct boot_out *b = NULL;
	struct mb_exec x;
	size_t sent = 0;
	int rc;

	rc = hello_once(t, w, agent, hello, hello_cap, err, errcap);
	if (rc != MB_EPROTO || !bootstrap)
		return rc;
	/* the bundle, the script and llama.cpp's source: beside this program
	 * in a build tree, in PREFIX/share/mibera in an installed copy */
	if (mb_self_exe(self, sizeof(self)) != 0)
		return MB_EINTERNAL;
	bin = dirname(self);
	if (find_shipped(bin, "mibera-src.tar.gz", NULL, bundle,
			 sizeof(bundle)) != 0 ||
	    find_shipped(bin, "mibera-worker-bootstrap.sh", NULL, script,
			 sizeof(script)) != 0) {
		mb_seterr(err, errcap, "the agent on '%s' is missing or of "
			  "another version, and this mibera has no worker "
			  "bundle to install it with (looked beside %s and in "
			  "%s/../share/mibera): install mibera with `cmake "
			  "--install`, or pass --agent PATH", w->target, bin,
			  bin);
		return MB_ENOENT;
	}
	if (find_shipped(bin, "llama.cpp-src.tar.gz", NULL, llama,
			 sizeof(llama)) != 0) {
		mb_seterr(err, errcap, "the agent on '%s' is missing or of "
			  "another version, and this mibera has no llama.cpp "
			  "source to build it with (llama.cpp-src.tar.gz, looked "
			  "beside %s and in %s/../share/mibera): run "
			  "deploy/deps.sh, then configure, build and install "
			  "mibera again", w->target, bin, bin);
		return MB_ENOENT;
	}
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return MB_ENOMEM;
	b->progress = progress;
	b->ctx = pctx;
	b->t0 = mb_now_s();
	snprintf(rbundle, sizeof(rbundle), "%.1000s/mibera-src.tar.gz", w->dir);
	snprintf(rscript, sizeof(rscript), "%.1000s/bootstrap.sh", w->dir);
	snprintf(rllama, sizeof(rllama), "%.1000s/llama.cpp-src.tar.gz", w->dir);
	snprintf(msg, sizeof(msg), "uploading the mibera and llama.cpp sources "
		 "to %.1000s", w->dir);
	boot_say(b, msg);
	rc = mb_transport_mkdirs(t, w->dir);
	if (rc != 0)
		mb_seterr(err, errcap, "cannot create '%s' on '%s': %s", w->dir,
			  w->target, mb_transport_errmsg(t));
	if (rc == 0)
		rc = mb_worker_upload(t, bundle, rbundle, &sent, err, errcap);
	if (rc == 0)
		rc = mb_worker_upload(t, llama, rllama, &sent, err, errcap);
	if (rc == 0)
		rc = mb_worker_upload(t, script, rscript, &sent, err, errcap);
	if (rc != 0)
		goto out;
	snprintf(msg, sizeof(msg), "uploaded %zu bytes", sent);
	boot_say(b, msg);
	argv[0] = "bash";
	argv[1] = rscript;
	argv[2] = w->dir;
	argv[3] = rbundle;
	argv[4] = rllama;
	argv[5] = NULL;
	memset(&x, 0, sizeof(x));
	x.argv = argv;
	x.on_output = boot_output;
	x.ctx = b;
	x.timeout_ms = 60 * 60 * 1000; /* llama.cpp may be built: minutes */
	rc = mb_transport_exec(t, &x);
	if (rc != 0) {
		mb_seterr(err, errcap, "bootstrap on '%s' failed: %s", w->target,
			  mb_transport_errmsg(t));
		goto out;
	}
	if (x.status != 0) {
		boot_failure(b, w->target, x.status, err, errcap);
		rc = MB_EIO;
		goto out;
	}
	rc = hello_once(t, w, agent, hello, hello_cap, err, errcap);
out:
	free(b);
	return rc;
}
