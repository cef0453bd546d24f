/*
 * mibera-worker manifest DIR [--chunk-size BYTES] [--out FILE] [--force]
 *     [--skip NAME]
 * Writes the chunk manifest of every artifact (*.gguf) in DIR: its size,
 * SHA-256 and the SHA-256 of each fixed-size chunk (common/manifest.h), as
 *   {"version":1,"files":[<manifest>,...]}
 * sorted by name, atomically into DIR/manifest.json (or FILE). In-flight
 * files (*.part), links and anything not a regular file are left out.
 *
 * Resumes per file: an entry of the manifest already there is kept when
 * the file has the same size and chunk size and was last modified and
 * last changed (ctime: a rename or a write, which no one can set back)
 * before that manifest was written; --force hashes everything again.
 * --skip leaves artifact NAME (or its set of parts) out: the coordinator
 * lists what it pulls while the worker still makes the rest, and the
 * float GGUF it does not pull waits for the last run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/manifest.h"
#include "common/splitset.h"
#include "proto/event.h"
#include "worker/verbs.h"

/* Bounds what an earlier manifest.json may make us read: 2^20 chunks of
 * one file take about 70 MB of JSON. */
#define MAX_OLD_MANIFEST ((size_t)256 << 20)

static void usage(FILE *f)
{
	fprintf(f, "usage: mibera-worker manifest DIR [--chunk-size BYTES] "
		   "[--out FILE] [--force]\n"
		   "                             [--skip NAME]\n\n"
		   "Writes DIR/manifest.json (or FILE): for each DIR/*.gguf "
		   "(the job's artifacts,\n"
		   "<model>-F16.gguf and <model>-<TYPE>.gguf), its size, "
		   "SHA-256 and the SHA-256 of\n"
		   "each chunk of BYTES (a multiple of 4096, default %llu). "
		   "*.part files are skipped.\n"
		   "Entries of an existing manifest are reused for files not "
		   "changed since it was\n"
		   "written, unless --force. --skip leaves NAME (and its "
		   "parts) out.\n",
		(unsigned long long)MB_MANIFEST_DEFAULT_CHUNK);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

struct hashing {
	struct mb_events *ev;
	const char *name;
	uint64_t before, total;	/* bytes hashed before this file, in all */
	double t0;
	int tty;
};

static void show(struct hashing *h, uint64_t done, int final)
{
	double dt = mb_now_s() - h->t0;
	double rate = dt > 0 ? (double)done / dt : 0;

	mb_events_progress(h->ev, final ? "manifest" : h->name, done, h->total,
			   rate, final);
	if (h->tty)
		fprintf(stderr, "\rmanifest: %5.1f%%  %8.1f MB of %.1f MB  "
			"%7.1f MB/s  %-40.40s%s",
			h->total ? 100.0 * (double)done / (double)h->total
				 : 100.0,
			(double)done / 1e6, (double)h->total / 1e6, rate / 1e6,
			final ? "done" : h->name, final ? "\n" : "");
}

static int on_hashed(uint64_t done, void *ctx)
{
	struct hashing *h = ctx;

	show(h, h->before + done, 0);
	return 0;
}

/* Lists the artifacts in dir: sorted, regular files named *.gguf with a
 * name a manifest can carry. */
static int list_artifacts(const char *dir, char ***names_out, size_t *n_out,
			  char *err, size_t errcap)
{
	char **names = NULL, **p;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	struct stat sb;
	DIR *d;
	int rc = 0;

	*names_out = NULL;
	*n_out = 0;
	d = opendir(dir);
	if (d == NULL) {
		rc = mb_err_from_errno(errno);
		snprintf(err, errcap, "cannot open '%s': %s", dir,
			 strerror(errno));
		return rc;
	}
	while ((de = readdir(d)) != NULL) {
		if (!ends_with(de->d_name, ".gguf") ||
		    ends_with(de->d_name, ".part") ||
		    !mb_manifest_name_ok(de->d_name) ||
		    fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) !=
			    0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		if (n == MB_MANIFEST_LIST_MAX) {
			rc = MB_ETOOBIG;
			snprintf(err, errcap, "'%s' holds more than %d artifacts",
				 dir, MB_MANIFEST_LIST_MAX);
			goto out;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			p = mb_realloc(names, cap * sizeof(*names));
			if (p == NULL) {
				rc = MB_ENOMEM;
				goto out;
			}
			names = p;
		}
		names[n] = mb_strdup(de->d_name);
		if (names[n] == NULL) {
			rc = MB_ENOMEM;
			goto out;
		}
		n++;
	}
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_str);
	*names_out = names;
	*n_out = n;
	names = NULL;
	n = 0;
out:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

/* The manifest already at path, when it parses, and when it was written;
 * NULL when there is none or it is unreadable (then everything is
 * hashed). */
static struct mb_manifest_list *read_old(const char *path,
					 struct timespec *written)
{
	struct mb_manifest_list *l = NULL;
	struct stat sb;
	char *text = NULL;
	size_t len;

	if (stat(path, &sb) != 0 ||
	    mb_read_file(path, MAX_OLD_MANIFEST, &text, &len) != 0)
		return NULL;
	*written = sb.st_mtim;
	if (mb_manifest_list_from_json(text, len, &l, NULL, 0) != 0)
		l = NULL;
	free(text);
	return l;
}

/* Copies m (a manifest of the old list) for the new one. */
static struct mb_manifest *copy_manifest(const struct mb_manifest *m)
{
	struct mb_manifest *c = mb_calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	*c = *m;
	c->name = mb_strdup(m->name);
	c->chunks = NULL;
	if (m->nchunks > 0) {
		c->chunks = mb_calloc((size_t)m->nchunks, MB_SHA256_LEN);
		if (c->chunks != NULL)
			memcpy(c->chunks, m->chunks,
			       (size_t)m->nchunks * MB_SHA256_LEN);
	}
	if (c->name == NULL || (m->nchunks > 0 && c->chunks == NULL)) {
		mb_manifest_free(c);
		return NULL;
	}
	return c;
}

int verb_manifest(int argc, char **argv)
{
	struct mb_events ev = { .fd = -1 };
	struct mb_manifest_list *old = NULL;
	struct mb_manifest **files = NULL;
	struct timespec written = { 0, 0 };
	struct hashing h;
	struct mb_buf b;
	struct stat *st = NULL;
	const char *dir = NULL, *out = NULL, *skip = NULL;
	char outbuf[4096], path[4096], err[5120] = "";
	char **names = NULL;
	uint64_t chunk = MB_MANIFEST_DEFAULT_CHUNK, hashed = 0;
	size_t n = 0, i, reused = 0;
	int a, force = 0, rc, ret = 1;
	double t0;

	for (a = 1; a < argc; a++) {
		const char *s = argv[a];
		const char *v = a + 1 < argc ? argv[a + 1] : NULL;

		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(s, "--chunk-size") == 0 && v) {
			char *end;
			unsigned long long c;

			errno = 0;
			c = strtoull(v, &end, 10);
			if (*v < '0' || *v > '9' || *end != '\0' || errno ||
			    c < MB_MANIFEST_MIN_CHUNK ||
			    c > MB_MANIFEST_MAX_CHUNK ||
			    c % MB_MANIFEST_MIN_CHUNK != 0) {
				fprintf(stderr, "mibera-worker manifest: "
					"--chunk-size must be a multiple of "
					"4096 between 4 KiB and 1 GiB\n");
				return 2;
			}
			chunk = c;
			a++;
		} else if (strcmp(s, "--out") == 0 && v) {
			out = argv[++a];
		} else if (strcmp(s, "--force") == 0) {
			force = 1;
		} else if (strcmp(s, "--skip") == 0 && v) {
			skip = argv[++a];
		} else if (s[0] == '-' || dir != NULL) {
			usage(stderr);
			return 2;
		} else {
			dir = s;
		}
	}
	if (dir == NULL) {
		usage(stderr);
		return 2;
	}
	if (out == NULL) {
		if ((size_t)snprintf(outbuf, sizeof(outbuf), "%s/manifest.json",
				     dir) >= sizeof(outbuf))
			goto toolong;
		out = outbuf;
	}
	rc = mb_events_from_env(&ev, "manifest");
	if (rc != 0) {
		fprintf(stderr, "mibera-worker manifest: cannot open the event "
			"journal: %s\n", mb_strerror(rc));
		return 1;
	}
	rc = list_artifacts(dir, &names, &n, err, sizeof(err));
	if (rc != 0)
		goto fail;
	if (skip != NULL) {
		size_t k = 0;

		for (i = 0; i < n; i++) {
			char whole[512];

			mb_splitset_artifact_name(names[i], whole, sizeof(whole));
			if (strcmp(whole, skip) == 0 || strcmp(names[i], skip) == 0)
				free(names[i]);
			else
				names[k++] = names[i];
		}
		n = k;
	}
	if (!force)
		old = read_old(out, &written);
	files = mb_calloc(n ? n : 1, sizeof(*files));
	st = mb_calloc(n ? n : 1, sizeof(*st));
	if (files == NULL || st == NULL) {
		rc = MB_ENOMEM;
		goto fail;
	}

	/* first the files to keep, so the progress total is what is left */
	memset(&h, 0, sizeof(h));
	for (i = 0; i < n; i++) {
		const struct mb_manifest *m;

		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
				     names[i]) >= sizeof(path))
			goto toolong;
		if (stat(path, &st[i]) != 0) {
			rc = mb_err_from_errno(errno);
			snprintf(err, sizeof(err), "cannot stat '%s': %s", path,
				 strerror(errno));
			goto fail;
		}
		m = old ? mb_manifest_list_find(old, names[i]) : NULL;
		if (m != NULL && m->size == (uint64_t)st[i].st_size &&
		    m->chunk_size == chunk &&
		    ts_before(&st[i].st_mtim, &written) &&
		    ts_before(&st[i].st_ctim, &written)) {
			files[i] = copy_manifest(m);
			if (files[i] == NULL) {
				rc = MB_ENOMEM;
				goto fail;
			}
			reused++;
		} else {
			h.total += (uint64_t)st[i].st_size;
		}
	}
	h.ev = &ev;
	h.tty = isatty(2);
	t0 = h.t0 = mb_now_s();
	for (i = 0; i < n; i++) {
		if (files[i] != NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		h.name = names[i];
		rc = mb_manifest_compute_progress(path, names[i], chunk,
						  on_hashed, &h, &files[i]);
		if (rc != 0) {
			snprintf(err, sizeof(err), "cannot hash '%s': %s", path,
				 mb_strerror(rc));
			goto fail;
		}
		h.before += files[i]->size;
	}
	hashed = h.before;
	show(&h, h.total, 1);

	mb_buf_init(&b, (size_t)1 << 30);
	rc = mb_manifest_list_to_json(files, n, &b);
	if (rc == 0)
		rc = mb_buf_adds(&b, "\n");
	if (rc == 0)
		rc = mb_atomic_write(out, b.data, b.len, 0644);
	mb_buf_release(&b);
	if (rc != 0) {
		snprintf(err, sizeof(err), "cannot write '%s': %s", out,
			 mb_strerror(rc));
		goto fail;
	}
	printf("manifest %s: %zu file%s (%zu reused), %.1f MB hashed in %.2f s "
	       "(%.0f MB/s)\n",
	       out, n, n == 1 ? "" : "s", reused, (double)hashed / 1e6,
	       mb_now_s() - t0,
	       mb_now_s() - t0 > 0 ? (double)hashed / 1e6 / (mb_now_s() - t0) : 0.0);
	ret = 0;
	goto out;
toolong:
	snprintf(err, sizeof(err), "path too long under '%s'", dir);
fail:
	fprintf(stderr, "mibera-worker manifest: %s\n",
		err[0] ? err : mb_strerror(rc));
out:
	for (i = 0; i < n; i++) {
		free(names[i]);
		if (files != NULL)
			mb_manifest_free(files[i]);
	}
	free(names);
	free(files);
	free(st);
	mb_manifest_list_free(old);
	mb_events_close(&ev);
	return ret;
}
