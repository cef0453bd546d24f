/*
 * mibera-worker fetch REPO[@REV] [--dest DIR] [--cache DIR]
 *     [--include GLOB]... [--exclude GLOB]... [--connections N]
 *     [--range-size BYTES] [--reserve BYTES] [--stall-timeout SECONDS]
 *     [--attempts N] [--backoff-ms MS] [--backoff-max-ms MS] [--json]
 *     [--headers-first]
 * Downloads a model repository from the hub into the hub cache layout
 * under the worker directory (common/download.h) and links the snapshot
 * into DIR. Run by the step runner, its progress and its result go to the
 * step's event journal ($MIBERA_EVENTS); by hand, a progress line on a
 * terminal and a summary. The token comes from HF_TOKEN only, never argv.
 *
 * --headers-first (with --dest) lets a conversion run while the shards
 * download (convert --follow): the small files come first, then every
 * shard's header goes to DIR/.mibera/headers (a "headers" event), then the
 * shards, each linked into DIR once verified. DIR/.mibera/fetch.state says
 * running, headers, done or failed (with the message), and is rewritten
 * at every progress report so a reader can tell a fetch that died.
 *
 * Exit codes: 0 done, 1 failed but a later run may succeed (network;
 * what was fetched is kept and resumed), 2 usage, 3 failed in a way a
 * person must fix (gated or missing repo, checksum, disk space).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/download.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hub.h"
#include "common/json.h"
#include "common/log.h"
#include "proto/event.h"
#include "worker/verbs.h"
#include "worker/verbutil.h"

#define MAX_GLOBS 64

static void usage(FILE *f)
{
	fprintf(f, "usage: mibera-worker fetch REPO[@REV] [--dest DIR] [--cache DIR]\n"
		   "           [--include GLOB]... [--exclude GLOB]... "
		   "[--connections N]\n"
		   "           [--range-size BYTES] [--reserve BYTES] "
		   "[--stall-timeout SECONDS]\n"
		   "           [--attempts N] [--backoff-ms MS] "
		   "[--backoff-max-ms MS] [--json]\n"
		   "           [--headers-first]\n"
		   "Downloads REPO at REV (default main) into the hub cache "
		   "(--cache, default\n$MIBERA_WORKER_DIR/hub or ~/.mibera/hub) "
		   "and links its files into --dest.\nBYTES take K, M or G "
		   "(powers of 1024). HF_TOKEN opens gated repositories.\n"
		   "--headers-first: small files, then every shard's header "
		   "into DIR/.mibera,\nthen the shards, each linked into DIR "
		   "once verified (for convert --follow).\n");
}

/* Parses a byte count with an optional K/M/G suffix. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	if (*s < '0' || *s > '9')
		return -1;
	v = strtoull(s, &end, 10);
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	else if (*end != '\0')
		return -1;
	if (shift != 0 && *++end != '\0')
		return -1;
	if (v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

/* What the progress and headers callbacks share. */
struct fetch_ctx {
	struct verb_journal j;
	char state[2200];	/* the state file, or "" */
	const char *phase;	/* what it says: running, headers */
	char commit[41];	/* once the headers are there */
	double written;		/* when it was last written */
};

/* Rewrites the state file (its age says the fetch is alive), at most
 * once a second unless asked. */
static void state_refresh(struct fetch_ctx *fc, int now)
{
	double t = mb_now_s();

	if (fc->state[0] == '\0' || (!now && t - fc->written < 1.0))
		return;
	fc->written = t;
	if (mb_download_state_write(fc->state, fc->phase, fc->commit, 0,
				    NULL) != 0)
		mb_log(MB_LOG_WARN, "cannot write '%s'", fc->state);
}

static void on_headers(const char *commit, void *ctx)
{
	struct fetch_ctx *fc = ctx;

	snprintf(fc->commit, sizeof(fc->commit), "%s", commit);
	fc->phase = "headers";
	state_refresh(fc, 1);
	mb_events_emit(&fc->j.ev, "headers", "\"ready\":true");
}

static void on_progress(const struct mb_download_progress *p, void *ctx)
{
	struct fetch_ctx *fc = ctx;
	struct verb_journal *c = &fc->j;
	struct mb_buf b;
	int rc;

	state_refresh(fc, 0);

	mb_buf_init(&b, 4096);
	if (p->file != NULL) {
		rc = mb_buf_adds(&b, "\"what\":\"file\",\"file\":");
		if (rc == 0)
			rc = mb_json_quote(&b, p->file);
		if (rc == 0)
			rc = mb_buf_addf(&b, ",\"done\":%llu,\"total\":%llu,"
					 "\"verified\":%s",
					 (unsigned long long)p->file_done,
					 (unsigned long long)p->file_total,
					 p->file_finished ? "true" : "false");
	} else {
		rc = mb_buf_addf(&b, "\"what\":\"download\",\"done\":%llu,"
				 "\"total\":%llu",
				 (unsigned long long)p->done,
				 (unsigned long long)p->total);
	}
	if (rc == 0)
		rc = mb_buf_addf(&b, ",\"rate\":%.0f,\"eta\":%.0f", p->rate, p->eta);
	if (rc == 0)
		mb_events_emit(&c->ev, "progress", b.data);
	mb_buf_release(&b);
	if (c->tty && p->file == NULL)
		fprintf(stderr, "\rfetch: %5.1f%%  %9.1f MB of %.1f MB  %7.1f MB/s  "
			"eta %5.0f s ", p->total ? 100.0 * (double)p->done /
							 (double)p->total : 100.0,
			(double)p->done / 1e6, (double)p->total / 1e6,
			p->rate / 1e6, p->eta < 0 ? 0.0 : p->eta);
}

static int result_json(struct mb_buf *b, const char *repo, const char *rev,
		       const char *dest, const struct mb_download_result *r,
		       int rc, const char *err)
{
	int e = mb_buf_adds(b, "\"ok\":");

	if (e == 0)
		e = mb_buf_adds(b, rc == 0 ? "true" : "false");
	if (e == 0)
		e = mb_buf_adds(b, ",\"repo\":");
	if (e == 0)
		e = mb_json_quote(b, repo);
	if (e == 0)
		e = mb_buf_adds(b, ",\"revision\":");
	if (e == 0)
		e = mb_json_quote(b, rev);
	if (e == 0)
		e = mb_buf_adds(b, ",\"commit\":");
	if (e == 0)
		e = mb_json_quote(b, r->commit);
	if (e == 0)
		e = mb_buf_addf(b, ",\"files\":%zu,\"bytes\":%llu,\"fetched\":%llu,"
				"\"reused\":%llu,\"retries\":%u,\"seconds\":%.3f",
				r->nfiles, (unsigned long long)r->bytes_total,
				(unsigned long long)r->bytes_fetched,
				(unsigned long long)r->bytes_reused, r->retries,
				r->seconds);
	if (e == 0 && rc == 0) {
		e = mb_buf_adds(b, ",\"snapshot\":");
		if (e == 0)
			e = mb_json_quote(b, r->snapshot);
		if (e == 0 && dest != NULL) {
			e = mb_buf_adds(b, ",\"dest\":");
			if (e == 0)
				e = mb_json_quote(b, dest);
		}
	}
	if (e == 0 && rc != 0) {
		e = mb_buf_addf(b, ",\"error\":\"%s\",\"permanent\":%s,\"message\":",
				mb_errname(rc),
				mb_err_transient(rc) ? "false" : "true");
		if (e == 0)
			e = mb_json_quote(b, err[0] ? err : mb_strerror(rc));
	}
	return e;
}

int verb_fetch(int argc, char **argv)
{
	const char *include[MAX_GLOBS], *exclude[MAX_GLOBS];
	struct mb_download_opts o;
	struct mb_download_result r;
	struct fetch_ctx fc;
	struct mb_hub h;
	struct mb_buf out;
	char repo[128], rev[256] = "main", cache[2048], err[1024] = "";
	const char *spec = NULL, *cache_arg = NULL, *at;
	char hdir[2200] = "";
	int i, rc, json = 0, headers_first = 0;
	long v;

	mb_download_opts_init(&o);
	o.include = include;
	o.exclude = exclude;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *n = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--dest") == 0 && n) {
			o.dest = argv[++i];
		} else if (strcmp(a, "--cache") == 0 && n) {
			cache_arg = argv[++i];
		} else if (strcmp(a, "--include") == 0 && n) {
			if (o.ninclude == MAX_GLOBS)
				goto bad;
			include[o.ninclude++] = argv[++i];
		} else if (strcmp(a, "--exclude") == 0 && n) {
			if (o.nexclude == MAX_GLOBS)
				goto bad;
			exclude[o.nexclude++] = argv[++i];
		} else if (strcmp(a, "--connections") == 0 && n) {
			if (verb_parse_long(n, 1, MB_DOWNLOAD_MAX_CONNECTIONS, &v) != 0)
				goto bad;
			o.connections = (int)v;
			i++;
		} else if (strcmp(a, "--range-size") == 0 && n) {
			if (parse_size(n, &o.range_size) != 0 ||
			    o.range_size < 4096 || o.range_size > (1ull << 32))
				goto bad;
			i++;
		} else if (strcmp(a, "--reserve") == 0 && n) {
			if (parse_size(n, &o.reserve) != 0)
				goto bad;
			i++;
		} else if (strcmp(a, "--stall-timeout") == 0 && n) {
			if (verb_parse_long(n, 1, 3600, &v) != 0)
				goto bad;
			o.stall_ms = v * 1000;
			i++;
		} else if (strcmp(a, "--attempts") == 0 && n) {
			if (verb_parse_long(n, 1, 100, &v) != 0)
				goto bad;
			o.max_attempts = (int)v;
			i++;
		} else if (strcmp(a, "--backoff-ms") == 0 && n) {
			if (verb_parse_long(n, 1, 600000, &o.backoff_ms) != 0)
				goto bad;
			i++;
		} else if (strcmp(a, "--backoff-max-ms") == 0 && n) {
			if (verb_parse_long(n, 1, 3600000, &o.backoff_max_ms) != 0)
				goto bad;
			i++;
		} else if (strcmp(a, "--json") == 0) {
			json = 1;
		} else if (strcmp(a, "--headers-first") == 0) {
			headers_first = 1;
		} else if (a[0] == '-' || spec != NULL) {
			goto bad;
		} else {
			spec = a;
		}
	}
	if (spec == NULL)
		goto bad;
	at = strchr(spec, '@');
	if ((size_t)(at ? at - spec : (long)strlen(spec)) >= sizeof(repo) ||
	    (at != NULL && (at[1] == '\0' || strlen(at + 1) >= sizeof(rev))))
		goto bad;
	snprintf(repo, sizeof(repo), "%.*s", (int)(at ? at - spec : (long)strlen(spec)),
		 spec);
	if (at != NULL)
		snprintf(rev, sizeof(rev), "%s", at + 1);
	if (!mb_hub_repo_id_ok(repo)) {
		fprintf(stderr, "mibera-worker fetch: '%s' is not a repository id "
				"(org/name)\n", repo);
		return 2;
	}
	o.repo = repo;
	o.rev = rev;
	if (cache_arg != NULL) {
		snprintf(cache, sizeof(cache), "%s", cache_arg);
	} else {
		const char *wd = getenv("MIBERA_WORKER_DIR"), *home = getenv("HOME");

		if (wd != NULL && *wd != '\0')
			snprintf(cache, sizeof(cache), "%s/hub", wd);
		else
			snprintf(cache, sizeof(cache), "%s/.mibera/hub",
				 home != NULL ? home : ".");
	}
	o.cache_dir = cache;

	if (headers_first && o.dest == NULL) {
		fprintf(stderr, "mibera-worker fetch: --headers-first needs "
			"--dest\n");
		return 2;
	}
	memset(&fc, 0, sizeof(fc));
	fc.phase = "running";
	if (verb_journal_open(&fc.j, "fetch", "mibera-worker fetch") != 0)
		return 1;
	if (headers_first) {
		snprintf(hdir, sizeof(hdir), "%s/%s/headers", o.dest,
			 MB_DOWNLOAD_SIDE);
		snprintf(fc.state, sizeof(fc.state), "%s/%s", o.dest,
			 MB_DOWNLOAD_STATE);
		rc = mb_mkdir_p(hdir, 0755);
		if (rc != 0) {
			fprintf(stderr, "mibera-worker fetch: cannot create "
				"'%s': %s\n", hdir, mb_strerror(rc));
			verb_journal_close(&fc.j);
			return mb_err_exit(rc);
		}
		state_refresh(&fc, 1);
		o.headers_dir = hdir;
		o.headers_ready = on_headers;
	}
	o.progress = on_progress;
	o.progress_ctx = &fc;
	rc = mb_hub_init(&h, NULL, NULL);
	if (rc != 0) {
		snprintf(err, sizeof(err), "HF_ENDPOINT is not an http(s) URL");
		memset(&r, 0, sizeof(r));
	} else {
		rc = mb_download_repo(&h, &o, &r, err, sizeof(err));
		mb_hub_release(&h);
	}
	if (fc.j.tty)
		fputc('\n', stderr);
	if (fc.state[0] != '\0' &&
	    mb_download_state_write(fc.state, rc == 0 ? "done" : "failed",
				    r.commit, rc != 0 && !mb_err_transient(rc),
				    rc == 0 ? NULL : err[0] ? err
							     : mb_strerror(rc)) != 0)
		mb_log(MB_LOG_WARN, "cannot write '%s'", fc.state);
	mb_buf_init(&out, 16384);
	if (result_json(&out, repo, rev, o.dest, &r, rc, err) == 0) {
		mb_events_emit(&fc.j.ev, "result", out.data);
		if (json)
			printf("{%s}\n", out.data);
	}
	mb_buf_release(&out);
	verb_journal_close(&fc.j);
	if (rc != 0) {
		fprintf(stderr, "mibera-worker fetch: %s\n",
			err[0] ? err : mb_strerror(rc));
		return mb_err_exit(rc);
	}
	if (!json)
		printf("fetched %s@%.12s: %zu files, %.1f MB (%.1f MB downloaded, "
		       "%.1f MB already here) in %.2f s (%.0f MB/s), %u retries\n"
		       "snapshot %s\n",
		       repo, r.commit, r.nfiles, (double)r.bytes_total / 1e6,
		       (double)r.bytes_fetched / 1e6, (double)r.bytes_reused / 1e6,
		       r.seconds,
		       r.seconds > 0 ? (double)r.bytes_fetched / r.seconds / 1e6 : 0.0,
		       r.retries, r.snapshot);
	return 0;
bad:
	usage(stderr);
	return 2;
}
