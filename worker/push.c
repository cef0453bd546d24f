/*
 * mibera-worker push DIR ORG/NAME [--private] [--files A,B,...]
 *     [--message TEXT] [--attempts N] [--backoff-ms MS]
 *     [--backoff-max-ms MS] [--json]
 * Uploads a job's artifacts from DIR (its out directory) to the model
 * repository ORG/NAME on the hub in one commit (common/hubpush.h),
 * creating the repository if needed (private with --private). By default
 * the files are DIR's *.gguf, and README.md and provenance.json when they
 * are there; --files names them instead (paths relative to DIR). A file
 * listed in DIR/manifest.json must still have the manifest's sha256, so a
 * file damaged since it was checked is never published.
 *
 * Run by the step runner, progress and the result go to the step's event
 * journal; by hand, a progress line on a terminal and a summary. The token
 * comes from HF_TOKEN (the step runner sets it from the spec on stdin) or
 * the file `hf auth login` wrote, never argv.
 *
 * Exit codes: 0 pushed, 1 failed but a later run may succeed (network;
 * objects already sent are not sent again), 2 usage, 3 failed in a way a
 * person must fix (no token or no write access, a file that does not
 * match its manifest).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hub.h"
#include "common/hubpush.h"
#include "common/json.h"
#include "common/log.h"
#include "common/sha256.h"
#include "proto/event.h"
#include "worker/verbs.h"
#include "worker/verbutil.h"

#define MAX_PUSH_FILES 256
#define MAX_MANIFEST ((size_t)256 << 20)

static void usage(FILE *f)
{
	fprintf(f, "usage: mibera-worker push DIR ORG/NAME [--private] "
		   "[--files A,B,...] [--message TEXT]\n"
		   "           [--attempts N] [--backoff-ms MS] "
		   "[--backoff-max-ms MS] [--json]\n"
		   "Uploads DIR's *.gguf, README.md and provenance.json (or "
		   "--files, relative to\nDIR) to the model repository ORG/NAME "
		   "on the hub in one commit, creating it\n(private with "
		   "--private) if needed. Files listed in DIR/manifest.json "
		   "must\nstill match it. HF_TOKEN (or `hf auth login`) must "
		   "have write access.\n");
}

static void on_progress(const struct mb_hubpush_progress *p, void *ctx)
{
	struct verb_journal *c = ctx;

	mb_events_progress(&c->ev, p->file != NULL ? p->file : p->phase, p->done,
			   p->total, p->rate, p->file == NULL);
	if (c->tty)
		fprintf(stderr, "\rpush: %-8s %5.1f%%  %9.1f MB of %.1f MB  "
			"%7.1f MB/s ", p->phase,
			p->total ? 100.0 * (double)p->done / (double)p->total
				 : 100.0,
			(double)p->done / 1e6, (double)p->total / 1e6,
			p->rate / 1e6);
}

static int ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n >= m && strcmp(s + n - m, suf) == 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_file(const char *dir, const char *name)
{
	char p[4096];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return lstat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The default list: DIR's *.gguf sorted, then README.md, provenance.json. */
static int default_files(const char *dir, char **names, size_t *n)
{
	static const char *const extra[] = { "README.md", "provenance.json" };
	struct dirent *de;
	DIR *d = opendir(dir);
	size_t i, start = *n;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (!ends_with(de->d_name, ".gguf") || de->d_name[0] == '.' ||
		    !is_file(dir, de->d_name))
			continue;
		if (*n == MAX_PUSH_FILES || (names[*n] = mb_strdup(de->d_name)) ==
						    NULL) {
			closedir(d);
			return -1;
		}
		(*n)++;
	}
	closedir(d);
	qsort(names + start, *n - start, sizeof(*names), by_name);
	for (i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		if (is_file(dir, extra[i]) && *n < MAX_PUSH_FILES &&
		    (names[*n] = mb_strdup(extra[i])) != NULL)
			(*n)++;
	return 0;
}

/* Splits a comma list into names (each a safe repo path). */
static int list_files(const char *list, char **names, size_t *n)
{
	const char *p = list;

	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len > 0) {
			if (*n == MAX_PUSH_FILES)
				return -1;
			names[*n] = mb_malloc(len + 1);
			if (names[*n] == NULL)
				return -1;
			memcpy(names[*n], p, len);
			names[*n][len] = '\0';
			if (!mb_repo_path_ok(names[(*n)++]))
				return -1;
		}
		p += len + (comma != NULL);
	}
	return 0;
}

/* The sha256 DIR/manifest.json gives for name, into out; 0 when found. A
 * manifest that is there but does not parse is an error: the files cannot
 * be checked. */
static int manifest_sha(const cJSON *doc, const char *name, char out[65])
{
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(doc, "files"), *e;

	cJSON_ArrayForEach(e, files) {
		const char *n, *sha;
		uint8_t d[MB_SHA256_LEN];

		if (mb_json_get_str(e, "name", 255, &n) == 0 &&
		    strcmp(n, name) == 0 &&
		    mb_json_get_str(e, "sha256", 64, &sha) == 0 &&
		    mb_sha256_parse(sha, d) == 0) {
			snprintf(out, 65, "%s", sha);
			return 0;
		}
	}
	return -1;
}

static int result_json(struct mb_buf *b, const char *repo,
		       const struct mb_hubpush_result *r, int private_repo,
		       int rc, const char *err)
{
	int e = mb_buf_addf(b, "\"ok\":%s,\"repo\":", rc == 0 ? "true" : "false");

	if (e == 0)
		e = mb_json_quote(b, repo);
	if (e == 0)
		e = mb_buf_addf(b, ",\"commit\":\"%s\",\"created\":%s,"
				"\"private\":%s,\"files\":%zu,\"lfs_files\":%zu,"
				"\"bytes\":%llu,\"uploaded\":%llu,\"reused\":%llu,"
				"\"parts\":%u,\"retries\":%u,\"seconds\":%.3f",
				r->commit, r->created ? "true" : "false",
				private_repo ? "true" : "false", r->nfiles,
				r->nlfs, (unsigned long long)r->bytes,
				(unsigned long long)r->uploaded,
				(unsigned long long)r->reused, r->parts,
				r->retries, r->seconds);
	if (e == 0 && rc == 0 && r->commit_url[0] != '\0') {
		e = mb_buf_adds(b, ",\"url\":");
		if (e == 0)
			e = mb_json_quote(b, r->commit_url);
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

int verb_push(int argc, char **argv)
{
	char *names[MAX_PUSH_FILES];
	char (*locals)[4096] = NULL, (*shas)[65] = NULL;
	struct mb_hubpush_file *files = NULL;
	struct mb_hubpush_opts o;
	struct mb_hubpush_result r;
	struct verb_journal j;
	struct mb_hub h;
	struct mb_buf out;
	const char *dir = NULL, *repo = NULL, *list = NULL;
	char err[1024] = "", mpath[4200];
	cJSON *manifest = NULL;
	size_t n = 0, i;
	int rc, json = 0, attempts = 0, code = 1;
	long v;

	memset(&o, 0, sizeof(o));
	memset(&r, 0, sizeof(r));
	for (i = 1; i < (size_t)argc; i++) {
		const char *a = argv[i];
		const char *nx = i + 1 < (size_t)argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--private") == 0) {
			o.private_repo = 1;
		} else if (strcmp(a, "--files") == 0 && nx) {
			list = argv[++i];
		} else if (strcmp(a, "--message") == 0 && nx) {
			o.message = argv[++i];
		} else if (strcmp(a, "--attempts") == 0 && nx) {
			if (verb_parse_long(nx, 1, 100, &v) != 0)
				goto bad;
			attempts = (int)v;
			i++;
		} else if (strcmp(a, "--backoff-ms") == 0 && nx) {
			if (verb_parse_long(nx, 1, 600000, &o.backoff_ms) != 0)
				goto bad;
			i++;
		} else if (strcmp(a, "--backoff-max-ms") == 0 && nx) {
			if (verb_parse_long(nx, 1, 3600000, &o.backoff_max_ms) != 0)
				goto bad;
			i++;
		} else if (strcmp(a, "--json") == 0) {
			json = 1;
		} else if (a[0] == '-') {
			goto bad;
		} else if (dir == NULL) {
			dir = a;
		} else if (repo == NULL) {
			repo = a;
		} else {
			goto bad;
		}
	}
	if (dir == NULL || repo == NULL)
		goto bad;
	if (!mb_hub_repo_id_ok(repo)) {
		fprintf(stderr, "mibera-worker push: '%s' is not a repository id "
				"(org/name)\n", repo);
		return 2;
	}
	if (list != NULL ? list_files(list, names, &n) != 0
			 : default_files(dir, names, &n) != 0) {
		fprintf(stderr, "mibera-worker push: %s\n",
			list != NULL ? "--files takes a comma list of paths "
				       "inside DIR"
				     : "cannot list DIR");
		code = 2;
		goto done;
	}
	if (n == 0) {
		fprintf(stderr, "mibera-worker push: nothing to push in '%s' "
				"(no *.gguf)\n", dir);
		code = 3;
		goto done;
	}
	snprintf(mpath, sizeof(mpath), "%s/manifest.json", dir);
	if (access(mpath, F_OK) == 0) {
		char *text = NULL;
		size_t len = 0;

		if (mb_read_file(mpath, MAX_MANIFEST, &text, &len) != 0 ||
		    (manifest = mb_json_parse(text, len)) == NULL) {
			free(text);
			fprintf(stderr, "mibera-worker push: '%s' is not a valid "
					"manifest: run `mibera-worker manifest "
					"%s --force`\n", mpath, dir);
			code = 3;
			goto done;
		}
		free(text);
	}
	locals = mb_calloc(n, sizeof(*locals));
	shas = mb_calloc(n, sizeof(*shas));
	files = mb_calloc(n, sizeof(*files));
	if (locals == NULL || shas == NULL || files == NULL) {
		fprintf(stderr, "mibera-worker push: out of memory\n");
		goto done;
	}
	for (i = 0; i < n; i++) {
		snprintf(locals[i], sizeof(locals[i]), "%s/%s", dir, names[i]);
		files[i].local = locals[i];
		files[i].path = names[i];
		if (manifest != NULL && manifest_sha(manifest, names[i], shas[i]) == 0)
			files[i].sha256 = shas[i];
	}
	o.repo = repo;
	o.files = files;
	o.nfiles = n;

	if (verb_journal_open(&j, "push", "mibera-worker push") != 0)
		goto done;
	o.progress = on_progress;
	o.progress_ctx = &j;
	rc = mb_hub_init(&h, NULL, NULL);
	if (rc != 0) {
		snprintf(err, sizeof(err), "HF_ENDPOINT is not an http(s) URL");
	} else if (h.token == NULL) {
		rc = MB_EAUTH;
		snprintf(err, sizeof(err), "pushing to '%s' needs a token: set "
			 "HF_TOKEN to a token with write access (or run `hf "
			 "auth login`)", repo);
		mb_hub_release(&h);
	} else {
		if (attempts > 0)
			h.max_attempts = attempts;
		rc = mb_hubpush(&h, &o, &r);
		if (rc != 0)
			snprintf(err, sizeof(err), "%s", h.err);
		mb_hub_release(&h);
	}
	if (j.tty)
		fputc('\n', stderr);
	mb_buf_init(&out, 16384);
	if (result_json(&out, repo, &r, o.private_repo, rc, err) == 0) {
		mb_events_emit(&j.ev, "result", out.data);
		if (json)
			printf("{%s}\n", out.data);
	}
	mb_buf_release(&out);
	verb_journal_close(&j);
	if (rc != 0) {
		fprintf(stderr, "mibera-worker push: %s\n",
			err[0] ? err : mb_strerror(rc));
		code = mb_err_exit(rc);
		goto done;
	}
	if (!json)
		printf("pushed %zu files (%.1f MB; %.1f MB sent, %.1f MB already "
		       "on the hub) to %s@%.12s in %.2f s, %u retries\n%s\n",
		       r.nfiles, (double)r.bytes / 1e6, (double)r.uploaded / 1e6,
		       (double)r.reused / 1e6, repo, r.commit, r.seconds,
		       r.retries, r.commit_url);
	code = 0;
done:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(locals);
	free(shas);
	free(files);
	cJSON_Delete(manifest);
	return code;
bad:
	usage(stderr);
	return 2;
}
