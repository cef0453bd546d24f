/* download: resumable, parallel, verified fetch of a repo (download.h). */
#include "common/download.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hub.h"
#include "common/json.h"
#include "common/log.h"
#include "common/safetensors.h"

#include <cjson/cJSON.h>

/* A record lists intervals; one per range at worst. */
#define MAX_RECORD (64u << 20)
/* Bytes hashed per file per turn of the loop: small enough that the
 * transfers are served often, large enough to keep up with a fast link. */
#define HASH_STEP (8u << 20)
#define HASH_BUF (4u << 20)
#define HASH_BEHIND (512ull << 20)
/* Partial progress of ranges in flight is recorded at most this often;
 * a completed range is recorded at once. */
#define RECORD_EVERY_MS 1000
#define PROGRESS_EVERY_MS 500
#define MAX_REDIRECTS 10
/* libcurl hands over at most 16 KiB at a time; one write per 16 KiB into
 * a preallocated file cost 4.5 s of 12 for 2 GB (measured), so each
 * connection gathers this much before writing. */
#define WBUF (1u << 20)

enum { SEG_MISSING, SEG_ACTIVE, SEG_DONE };
enum { F_PENDING, F_ACTIVE, F_DONE };

/* A byte interval of a file: fetched by one request at a time. got is the
 * count of bytes from start already on disk. */
struct seg {
	uint64_t start, len, got;
	int state;
	int attempts;
	long long not_before;
};

struct dl;

struct dfile {
	const struct mb_hub_file *hf;
	char etag[65];		/* blob name: sha256 (lfs) or git sha1 */
	char *blob, *inc, *rec;
	int fd;
	struct seg *segs;
	size_t nsegs;
	int ranges;		/* -1 unknown, 1 honoured, 0 ignored */
	int probing;		/* the one request sent while ranges == -1 */
	struct conn *stream;	/* the request sending the whole file */
	char url[2048];		/* the resolve URL, or the blob it led to */
	int redirects;
	EVP_MD_CTX *md;
	uint64_t hashed;	/* bytes hashed, from 0 */
	size_t hseg;		/* the segment holding byte `hashed` */
	int failures;		/* verifications failed */
	int state;
	int published;		/* linked into the snapshot and dest */
	int dirty;		/* a range completed: record it now */
	int partial;		/* partial progress not yet recorded */
	long long rec_ms;
	uint64_t start_done;	/* bytes already on disk when we began */
	int linked;		/* headers first: PATH.partial links the file */
	int unlinkable;		/* that link cannot be made (another file
				   system): the conversion waits for the
				   verified shard */
	uint64_t pfx_bytes;	/* the prefix record as last written */
	uint64_t pfx_gen;	/* changes when the bytes may: a new run, or
				   the file started over */
	long long pfx_ms;
};

struct conn {
	struct dl *d;
	CURL *c;
	struct dfile *f;	/* NULL: idle */
	size_t seg;
	int stream;
	uint64_t off, end;	/* next byte to receive; end of the request */
	unsigned char *wbuf;	/* received, not yet written: */
	size_t wlen;		/* wlen bytes from file offset woff */
	uint64_t woff;
	uint64_t got_now;
	struct mb_hub_answer ans;
	int checked;
	int werr;		/* a write failed: mb_err */
	int cancel;		/* made redundant by a stream */
	int bad;		/* the answer did not match the request */
	struct curl_slist *hdrs;
	char auth[600];
};

struct dl {
	struct mb_hub *h;
	const struct mb_download_opts *o;
	struct mb_download_result *res;
	CURLM *m;
	struct dfile *files;
	size_t nfiles;
	struct conn *conns;
	int nconns;
	char repo_dir[2048];
	uint64_t total, fetched, range;
	int max_attempts;
	long backoff, backoff_max;
	long long t0, hold_until, last_progress;
	int switched;		/* a file just became a stream */
	int defer;		/* headers first: the shards wait */
	char snap[2200];	/* snapshots/<commit>, once made */
	int fatal;
	unsigned char *hbuf;
	char *err;
	size_t errcap;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fail(struct dl *d, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records the first fatal error; later ones are consequences. */
static void fail(struct dl *d, int rc, const char *fmt, ...)
{
	char raw[1024];
	va_list ap;

	if (d->fatal != 0)
		return;
	d->fatal = rc;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	mb_log_redact(raw, d->err, d->errcap);
}

static char *path_join(const char *a, const char *b, const char *sfx)
{
	size_t n = strlen(a) + strlen(b) + strlen(sfx) + 2;
	char *p = mb_malloc(n);

	if (p != NULL)
		snprintf(p, n, "%s%s%s%s", a, b[0] ? "/" : "", b, sfx);
	return p;
}

/* --- selection --- */

static int ends_with(const char *s, const char *sfx)
{
	size_t n = strlen(s), m = strlen(sfx);

	return n >= m && strcmp(s + n - m, sfx) == 0;
}

/* A shard held back while the small files come first (headers_dir). */
static int deferred(const struct dl *d, const struct dfile *f)
{
	return d->defer && ends_with(f->hf->path, ".safetensors");
}

int mb_download_default_file(const char *path, const char *const *paths,
			     size_t n)
{
	static const char *const side[] = {
		"config.json", "generation_config.json", "tokenizer.json",
		"tokenizer_config.json", "special_tokens_map.json",
		"added_tokens.json", "tokenizer.model", "vocab.json",
		"merges.txt", "README.md", "chat_template.jinja",
		"chat_template.json",
	};
	int has_st = 0;
	size_t i;

	if (strchr(path, '/') != NULL)
		return 0; /* original/, onnx/ and the like: other formats */
	for (i = 0; i < sizeof(side) / sizeof(side[0]); i++)
		if (strcmp(path, side[i]) == 0)
			return 1;
	for (i = 0; i < n && !has_st; i++)
		has_st = strchr(paths[i], '/') == NULL &&
			 ends_with(paths[i], ".safetensors");
	if (has_st)
		return ends_with(path, ".safetensors") ||
		       ends_with(path, ".safetensors.index.json");
	return ends_with(path, ".bin") || ends_with(path, ".pt") ||
	       ends_with(path, ".pth") || ends_with(path, ".gguf") ||
	       ends_with(path, ".bin.index.json");
}

static int selected(const struct mb_download_opts *o, const char *path,
		    const char *const *paths, size_t n)
{
	size_t i;
	int in = 0;

	if (o->ninclude == 0)
		in = mb_download_default_file(path, paths, n);
	for (i = 0; i < o->ninclude && !in; i++)
		in = fnmatch(o->include[i], path, 0) == 0;
	for (i = 0; i < o->nexclude && in; i++)
		in = fnmatch(o->exclude[i], path, 0) != 0;
	return in;
}

/* --- segments and the resume record --- */

/* Appends [start, start + len) cut into pieces of d->range, state st. */
static int add_segs(struct dl *d, struct dfile *f, size_t *cap,
		    uint64_t start, uint64_t len, int st)
{
	while (len > 0) {
		uint64_t n = st == SEG_DONE || len < d->range ? len : d->range;

		if (f->nsegs == *cap) {
			size_t nc = *cap ? *cap * 2 : 16;
			void *p = nc > SIZE_MAX / sizeof(struct seg)
					  ? NULL
					  : mb_realloc(f->segs, nc * sizeof(struct seg));

			if (p == NULL)
				return MB_ENOMEM;
			f->segs = p;
			*cap = nc;
		}
		memset(&f->segs[f->nsegs], 0, sizeof(struct seg));
		f->segs[f->nsegs].start = start;
		f->segs[f->nsegs].len = n;
		f->segs[f->nsegs].state = st;
		f->segs[f->nsegs].got = st == SEG_DONE ? n : 0;
		f->nsegs++;
		start += n;
		len -= n;
	}
	return 0;
}

static int reset_segs(struct dl *d, struct dfile *f)
{
	size_t cap = 0;

	free(f->segs);
	f->segs = NULL;
	f->nsegs = 0;
	return add_segs(d, f, &cap, 0, f->hf->size, SEG_MISSING);
}

static int parse_u64(const char **p, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (**p < '0' || **p > '9')
		return -1;
	errno = 0;
	v = strtoull(*p, &end, 10);
	if (errno != 0)
		return -1;
	*out = v;
	*p = end;
	return 0;
}

/*
 * Reads the record: "mibera-ranges 1 SIZE ETAG\n" then "START END\n" per
 * interval on disk, sorted, disjoint, within the file. Anything else (our
 * own file, but a crash or a person may have mangled it) means start over:
 * returns -1 and the caller drops the record.
 */
static int load_record(struct dl *d, struct dfile *f)
{
	char *text = NULL, hdr[160];
	const char *p;
	uint64_t prev = 0, a, b;
	size_t len, cap = 0;
	int rc = -1;

	if (mb_read_file(f->rec, MAX_RECORD, &text, &len) != 0)
		goto out;
	snprintf(hdr, sizeof(hdr), "mibera-ranges 1 %llu %s\n",
		 (unsigned long long)f->hf->size, f->etag);
	if (strncmp(text, hdr, strlen(hdr)) != 0)
		goto out;
	p = text + strlen(hdr);
	while (*p != '\0') {
		if (parse_u64(&p, &a) != 0 || *p++ != ' ' ||
		    parse_u64(&p, &b) != 0 || *p++ != '\n' || a < prev ||
		    b <= a || b > f->hf->size)
			goto out;
		if (add_segs(d, f, &cap, prev, a - prev, SEG_MISSING) != 0 ||
		    add_segs(d, f, &cap, a, b - a, SEG_DONE) != 0)
			goto out;
		prev = b;
	}
	if (add_segs(d, f, &cap, prev, f->hf->size - prev, SEG_MISSING) != 0)
		goto out;
	rc = 0;
out:
	free(text);
	if (rc != 0) {
		free(f->segs);
		f->segs = NULL;
		f->nsegs = 0;
	}
	return rc;
}

/* Replaces the record by rename, so a reader (the next run) sees the old
 * list or the new one. Not fsynced: the final hash catches what a power
 * cut could leave behind; a kill -9 loses nothing written here. */
static int write_record(struct dfile *f)
{
	struct mb_buf b;
	char *tmp = NULL;
	uint64_t a = 0, e = 0;
	size_t i;
	int rc, fd = -1, have = 0;

	mb_buf_init(&b, MAX_RECORD);
	rc = mb_buf_addf(&b, "mibera-ranges 1 %llu %s\n",
			 (unsigned long long)f->hf->size, f->etag);
	for (i = 0; rc == 0 && i < f->nsegs; i++) {
		const struct seg *s = &f->segs[i];
		uint64_t n = s->state == SEG_DONE ? s->len : s->got;

		if (n == 0)
			continue;
		if (have && e == s->start) {
			e += n;
		} else {
			if (have)
				rc = mb_buf_addf(&b, "%llu %llu\n",
						 (unsigned long long)a,
						 (unsigned long long)e);
			a = s->start;
			e = s->start + n;
			have = 1;
		}
		if (n < s->len && rc == 0) { /* a gap follows */
			rc = mb_buf_addf(&b, "%llu %llu\n", (unsigned long long)a,
					 (unsigned long long)e);
			have = 0;
		}
	}
	if (rc == 0 && have)
		rc = mb_buf_addf(&b, "%llu %llu\n", (unsigned long long)a,
				 (unsigned long long)e);
	if (rc != 0)
		goto out;
	rc = MB_ENOMEM;
	tmp = path_join(f->rec, "", ".tmp");
	if (tmp == NULL)
		goto out;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = mb_err_from_errno(errno);
		goto out;
	}
	rc = mb_write_all(fd, b.data, b.len);
	if (close(fd) != 0 && rc == 0)
		rc = mb_err_from_errno(errno);
	fd = -1;
	if (rc == 0 && rename(tmp, f->rec) != 0)
		rc = mb_err_from_errno(errno);
	if (rc != 0)
		unlink(tmp);
out:
	free(tmp);
	mb_buf_release(&b);
	return rc;
}

static uint64_t file_done(const struct dfile *f)
{
	uint64_t n = 0;
	size_t i;

	if (f->state == F_DONE)
		return f->hf->size;
	for (i = 0; i < f->nsegs; i++)
		n += f->segs[i].state == SEG_DONE ? f->segs[i].len
						   : f->segs[i].got;
	return n;
}

/* --- the prefix a conversion may read (download.h) --- */

/* Every this often at most, while the prefix grows. */
#define PREFIX_EVERY_MS 100

static int side_path(const struct dl *d, const struct dfile *f,
		     const char *suffix, char *out, size_t cap)
{
	return (size_t)snprintf(out, cap, "%s/%s%s", d->o->headers_dir,
				f->hf->path, suffix) < cap;
}

/* Rewrites f's prefix record: at once when now, else when it grew and
 * was not written for PREFIX_EVERY_MS. Best effort: without it the
 * conversion waits for the verified shard. */
static void prefix_record(struct dl *d, struct dfile *f, int verified,
			  int now)
{
	char path[4200], line[128];
	long long t = now_ms();
	struct stat st;
	int n;

	if (!f->linked || (!now && (f->hashed == f->pfx_bytes ||
				    t - f->pfx_ms < PREFIX_EVERY_MS)))
		return;
	if (f->fd < 0 || fstat(f->fd, &st) != 0 ||
	    !side_path(d, f, MB_DOWNLOAD_PREFIX, path, sizeof(path)))
		return;
	n = snprintf(line, sizeof(line), "%llu %llu %llu %d\n",
		     (unsigned long long)f->pfx_gen,
		     (unsigned long long)f->hashed,
		     (unsigned long long)st.st_ino, verified);
	if (mb_replace_file(path, line, (size_t)n, 0644) == 0) {
		f->pfx_bytes = f->hashed;
		f->pfx_ms = t;
	}
}

/* A generation no earlier run or start of f had. */
static void prefix_new_gen(struct dfile *f)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	f->pfx_gen = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Links the file being fetched beside its side header, for a conversion
 * to read its prefix, once the side header is written. */
static void prefix_link(struct dl *d, struct dfile *f)
{
	char path[4200], rec[4200];

	if (f->linked || f->unlinkable || f->fd < 0 || d->o->headers_dir == NULL ||
	    d->defer || !ends_with(f->hf->path, ".safetensors") ||
	    !f->hf->lfs ||
	    !side_path(d, f, MB_DOWNLOAD_PARTIAL, path, sizeof(path)) ||
	    !side_path(d, f, MB_DOWNLOAD_PREFIX, rec, sizeof(rec)))
		return;
	unlink(rec);
	unlink(path);
	if (link(f->inc, path) != 0) {
		f->unlinkable = 1;
		return;
	}
	f->linked = 1;
	prefix_new_gen(f);
	prefix_record(d, f, 0, 1);
}

int mb_download_prefix_read(const char *side, struct mb_download_prefix *p)
{
	char path[4200], buf[128];
	unsigned long long gen, bytes, ino;
	size_t got = 0;
	int fd, rc, verified;

	memset(p, 0, sizeof(*p));
	if ((size_t)snprintf(path, sizeof(path), "%s%s", side,
			     MB_DOWNLOAD_PREFIX) >= sizeof(path))
		return MB_ETOOBIG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mb_err_from_errno(errno);
	rc = mb_pread_full(fd, buf, sizeof(buf) - 1, 0, &got);
	close(fd);
	if (rc != 0)
		return rc;
	buf[got] = '\0';
	if (sscanf(buf, "%llu %llu %llu %d", &gen, &bytes, &ino, &verified) != 4)
		return MB_EFORMAT;
	p->gen = gen;
	p->bytes = bytes;
	p->ino = ino;
	p->verified = verified;
	return 0;
}

/* --- hashing --- */

static int hash_start(struct dfile *f)
{
	char pfx[64];
	int n;

	if (f->md == NULL)
		f->md = EVP_MD_CTX_new();
	if (f->md == NULL)
		return MB_ENOMEM;
	f->hashed = 0;
	f->hseg = 0;
	if (f->hf->lfs)
		return EVP_DigestInit_ex(f->md, EVP_sha256(), NULL) == 1
			       ? 0
			       : MB_ECRYPTO;
	/* git's blob id: sha1("blob <size>\0" + content) */
	if (EVP_DigestInit_ex(f->md, EVP_sha1(), NULL) != 1)
		return MB_ECRYPTO;
	n = snprintf(pfx, sizeof(pfx), "blob %llu", (unsigned long long)f->hf->size);
	return EVP_DigestUpdate(f->md, pfx, (size_t)n + 1) == 1 ? 0 : MB_ECRYPTO;
}

/* Hashes up to budget bytes of the contiguous prefix on disk: the done
 * segments, then what the next one has on disk so far. */
static int hash_some(struct dl *d, struct dfile *f, uint64_t budget)
{
	while (budget > 0 && f->hseg < f->nsegs) {
		const struct seg *s = &f->segs[f->hseg];
		uint64_t end = s->start + (s->state == SEG_DONE ? s->len : s->got);
		uint64_t n = end - f->hashed;
		size_t got;
		int rc;

		if (s->state == SEG_DONE && f->hashed == end) {
			f->hseg++;
			continue;
		}
		if (end <= f->hashed)
			break;

		if (n > budget)
			n = budget;
		if (n > HASH_BUF)
			n = HASH_BUF;
		rc = mb_pread_full(f->fd, d->hbuf, (size_t)n, f->hashed, &got);
		if (rc == 0 && got != n)
			rc = MB_EIO;
		if (rc != 0)
			return rc;
		if (EVP_DigestUpdate(f->md, d->hbuf, (size_t)n) != 1)
			return MB_ECRYPTO;
		/* the hash reads every byte: far enough behind it, a shard of
		 * many GB leaves the page cache (a conversion that follows the
		 * download reads close behind it, and drops what it read) */
		mb_write_behind(f->fd, f->hashed, n, HASH_BEHIND);
		f->hashed += n;
		budget -= n;
	}
	return 0;
}

/* --- files --- */

static int open_incomplete(struct dl *d, struct dfile *f)
{
	int rc, fd;

	fd = open(f->inc, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = mb_err_from_errno(errno);
		fail(d, rc, "cannot open '%s': %s", f->inc, strerror(errno));
		return rc;
	}
	/* Reserve the blocks now: a full disk shows here, before the bytes
	 * are fetched, not as a short file later. */
	rc = f->hf->size > 0 ? posix_fallocate(fd, 0, (off_t)f->hf->size) : 0;
	if (rc == EOPNOTSUPP || rc == EINVAL || rc == ENOSYS)
		rc = 0;
	/* the exact length, whatever an earlier run left */
	if (rc == 0 && ftruncate(fd, (off_t)f->hf->size) != 0)
		rc = errno;
	if (rc != 0) {
		fail(d, mb_err_from_errno(rc), "cannot make room for '%s' (%llu "
		     "bytes) in '%s': %s", f->hf->path,
		     (unsigned long long)f->hf->size, d->repo_dir, strerror(rc));
		close(fd);
		return d->fatal;
	}
	f->fd = fd;
	rc = hash_start(f);
	if (rc != 0)
		fail(d, rc, "cannot start a hash: %s", mb_strerror(rc));
	return rc;
}

static void hexify(const unsigned char *md, unsigned n, char *out)
{
	unsigned i;

	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void report(struct dl *d, const struct dfile *f, int finished);
static int publish(struct dl *d, struct dfile *f, const char *snap);

/* All bytes are in and hashed: check, then publish the blob or start the
 * file over (once). */
static void finalize(struct dl *d, struct dfile *f)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	const char *want = f->hf->lfs ? f->hf->sha256 : f->hf->oid;
	unsigned n = 0;
	int rc;

	if (EVP_DigestFinal_ex(f->md, md, &n) != 1) {
		fail(d, MB_ECRYPTO, "cannot finish the hash of '%s'", f->hf->path);
		return;
	}
	hexify(md, n, hex);
	if (want[0] != '\0' && strcmp(hex, want) != 0) {
		if (++f->failures >= 2) {
			fail(d, MB_ECHECKSUM, "'%s' failed verification twice "
			     "(expected %s %s, got %s): the hub or the network "
			     "corrupts it; try again later", f->hf->path,
			     f->hf->lfs ? "sha256" : "git sha1", want, hex);
			return;
		}
		mb_log(MB_LOG_WARN, "fetch: '%s' does not match its %s (got %s): "
		       "fetching it again", f->hf->path,
		       f->hf->lfs ? "sha256" : "git sha1", hex);
		unlink(f->rec);
		rc = reset_segs(d, f);
		if (rc == 0)
			rc = hash_start(f);
		if (rc != 0)
			fail(d, rc, "cannot restart '%s': %s", f->hf->path,
			     mb_strerror(rc));
		f->ranges = -1;
		/* what a conversion read of it is not the shard's */
		prefix_new_gen(f);
		prefix_record(d, f, 0, 1);
		return;
	}
	rc = mb_fsync(f->fd);
	if (rc == 0)
		prefix_record(d, f, 1, 1);
	if (close(f->fd) != 0 && rc == 0)
		rc = mb_err_from_errno(errno);
	f->fd = -1;
	if (rc == 0 && rename(f->inc, f->blob) != 0)
		rc = mb_err_from_errno(errno);
	if (rc == 0)
		rc = mb_fsync_parent(f->blob);
	if (rc != 0) {
		fail(d, rc, "cannot store '%s' in '%s': %s", f->hf->path,
		     d->repo_dir, mb_strerror(rc));
		return;
	}
	unlink(f->rec);
	f->state = F_DONE;
	/* headers first: a conversion waits for this file in dest */
	if (d->o->headers_dir != NULL && d->snap[0] != '\0')
		publish(d, f, d->snap);
	f->linked = 0;
	report(d, f, 1);
}

/* --- progress --- */

static void report(struct dl *d, const struct dfile *f, int finished)
{
	struct mb_download_progress p;
	double secs = (double)(now_ms() - d->t0) / 1000.0;
	size_t i;

	if (d->o->progress == NULL)
		return;
	memset(&p, 0, sizeof(p));
	for (i = 0; i < d->nfiles; i++)
		p.done += file_done(&d->files[i]);
	p.total = d->total;
	p.rate = secs > 0.05 ? (double)d->fetched / secs : 0;
	p.eta = p.rate > 0 ? (double)(p.total - p.done) / p.rate : -1;
	if (f != NULL) {
		p.file = f->hf->path;
		p.file_done = file_done(f);
		p.file_total = f->hf->size;
		p.file_finished = finished;
	}
	d->o->progress(&p, d->o->progress_ctx);
}

static void report_all(struct dl *d)
{
	size_t i;

	for (i = 0; i < d->nfiles; i++)
		if (d->files[i].state == F_ACTIVE)
			report(d, &d->files[i], 0);
	report(d, NULL, 0);
}

/* --- transfers --- */

static size_t on_header(char *line, size_t sz, size_t n, void *ctx)
{
	struct conn *k = ctx;

	mb_hub_answer_header(&k->ans, line, sz * n);
	/* a 206 to the probe: the file may take parallel ranges now */
	if (k->ans.status == 206 && k->f->ranges < 0 && sz * n <= 2 &&
	    (line[0] == '\r' || line[0] == '\n')) {
		k->f->ranges = 1;
		k->f->probing = 0;
	}
	return sz * n;
}

/* Writes a block of the whole-file stream, skipping what is already on
 * disk (and perhaps hashed), completing segments as it passes them. */
static int stream_write(struct dfile *f, const char *data, size_t n,
			uint64_t off)
{
	size_t lo = 0, hi = f->nsegs, i;
	uint64_t end = off + n;
	int rc;

	while (lo < hi) { /* the first segment ending after off */
		size_t mid = lo + (hi - lo) / 2;

		if (f->segs[mid].start + f->segs[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i < f->nsegs && f->segs[i].start < end; i++) {
		struct seg *s = &f->segs[i];
		uint64_t a = s->start + s->got > off ? s->start + s->got : off;
		uint64_t b = s->start + s->len < end ? s->start + s->len : end;

		/* what a segment has on disk may be hashed already (and read
		 * by a conversion): it is never written again */
		if (s->state == SEG_DONE || a >= b)
			continue;
		rc = mb_pwrite_all(f->fd, data + (a - off), (size_t)(b - a), a);
		if (rc != 0)
			return rc;
		mb_write_start(f->fd, a, b - a);
		s->got = b - s->start;
		if (s->got == s->len) {
			s->state = SEG_DONE;
			f->dirty = 1;
		} else {
			f->partial = 1;
		}
	}
	return 0;
}

/* Writes what k gathered; only then does it count as on disk (got). */
static int flush(struct conn *k)
{
	struct dfile *f = k->f;
	int rc;

	if (k->wlen == 0)
		return 0;
	if (k->stream) {
		rc = stream_write(f, (const char *)k->wbuf, k->wlen, k->woff);
	} else {
		rc = mb_pwrite_all(f->fd, k->wbuf, k->wlen, k->woff);
		if (rc == 0)
			mb_write_start(f->fd, k->woff, k->wlen);
		if (rc == 0) {
			f->segs[k->seg].got = k->woff + k->wlen -
					      f->segs[k->seg].start;
			f->partial = 1;
		}
	}
	k->woff += k->wlen;
	k->wlen = 0;
	return rc;
}

static size_t on_write(char *data, size_t sz, size_t n, void *ctx)
{
	struct conn *k = ctx;
	struct dfile *f = k->f;
	size_t len = sz * n;
	int rc;

	if (k->ans.status < 200 || k->ans.status > 299)
		return len; /* an error page: the status says enough */
	if (!k->checked) {
		k->checked = 1;
		if (k->ans.status == 206) {
			if (!k->ans.has_range || k->ans.range_start != k->off ||
			    k->ans.range_total != f->hf->size) {
				k->bad = 1;
				return 0;
			}
			f->ranges = 1;
			f->probing = 0;
		} else {
			/* The server ignored the Range: this answer is the
			 * whole file. One such stream per file; the others
			 * are redundant. */
			if (f->stream != NULL) {
				k->cancel = 1;
				return 0;
			}
			f->stream = k;
			f->ranges = 0;
			f->probing = 0;
			k->stream = 1;
			if (f->segs[k->seg].state == SEG_ACTIVE)
				f->segs[k->seg].state = SEG_MISSING;
			k->off = 0;
			k->end = f->hf->size;
			k->d->switched = 1;
		}
	}
	if (len > k->end - k->off) {
		k->bad = 1; /* more than asked for */
		return 0;
	}
	if (k->wlen + len > WBUF && (rc = flush(k)) != 0) {
		k->werr = rc;
		return 0;
	}
	if (k->wlen == 0)
		k->woff = k->off;
	if (len > WBUF) { /* never, with libcurl's 16 KiB: but be exact */
		rc = k->stream ? stream_write(f, data, len, k->off)
			       : mb_pwrite_all(f->fd, data, len, k->off);
		if (rc == 0 && !k->stream)
			f->segs[k->seg].got = k->off + len - f->segs[k->seg].start;
		if (rc != 0) {
			k->werr = rc;
			return 0;
		}
	} else {
		memcpy(k->wbuf + k->wlen, data, len);
		k->wlen += len;
	}
	k->off += len;
	k->got_now += len;
	k->d->fetched += len;
	return len;
}

static int start(struct dl *d, struct conn *k, struct dfile *f, size_t si)
{
	struct seg *s = &f->segs[si];
	char range[80];
	CURL *c = k->c;

	if (f->fd < 0 && open_incomplete(d, f) != 0)
		return d->fatal;
	f->state = F_ACTIVE;
	k->f = f;
	k->seg = si;
	k->stream = 0;
	k->off = s->start + s->got;
	k->end = s->start + s->len;
	k->got_now = 0;
	k->wlen = 0;
	k->checked = k->werr = k->cancel = k->bad = 0;
	mb_hub_answer_reset(&k->ans);
	s->state = SEG_ACTIVE;
	if (f->ranges < 0)
		f->probing = 1;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, f->url);
	mb_hub_easy_defaults(d->h, c);
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L * 1024);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, k);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, k);
	curl_easy_setopt(c, CURLOPT_PRIVATE, k);
	snprintf(range, sizeof(range), "Range: bytes=%llu-%llu",
		 (unsigned long long)k->off, (unsigned long long)(k->end - 1));
	k->hdrs = curl_slist_append(NULL, range);
	if (k->hdrs != NULL && mb_hub_auth_header(d->h, f->url, k->auth,
						  sizeof(k->auth))) {
		struct curl_slist *l = curl_slist_append(k->hdrs, k->auth);

		if (l == NULL) {
			curl_slist_free_all(k->hdrs);
			k->hdrs = NULL;
		}
	}
	if (k->hdrs == NULL) {
		fail(d, MB_ENOMEM, "out of memory");
		return MB_ENOMEM;
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, k->hdrs);
	if (curl_multi_add_handle(d->m, c) != CURLM_OK) {
		fail(d, MB_EINTERNAL, "cannot start a transfer");
		return MB_EINTERNAL;
	}
	return 0;
}

/* Detaches k from its transfer. */
static void release(struct dl *d, struct conn *k)
{
	curl_multi_remove_handle(d->m, k->c);
	curl_slist_free_all(k->hdrs);
	k->hdrs = NULL;
	memset(k->auth, 0, sizeof(k->auth));
	k->f = NULL;
}

/* The next segment to ask for, or 0 when nothing may start now. */
static int pick(struct dl *d, struct dfile **fo, size_t *so)
{
	long long now = now_ms();
	size_t i, j;

	if (now < d->hold_until)
		return 0;
	for (i = 0; i < d->nfiles; i++) {
		struct dfile *f = &d->files[i];

		if (f->state == F_DONE || f->stream != NULL ||
		    (f->ranges < 0 && f->probing) || deferred(d, f))
			continue;
		for (j = f->hseg; j < f->nsegs; j++)
			if (f->segs[j].state == SEG_MISSING &&
			    f->segs[j].not_before <= now) {
				*fo = f;
				*so = j;
				return 1;
			}
		/* A file whose server ignores ranges is one stream at a time. */
	}
	return 0;
}

static void retry_later(struct dl *d, struct dfile *f, struct seg *s,
			int made_progress, int rc, const char *why)
{
	long wait;

	s->state = SEG_MISSING;
	if (made_progress)
		s->attempts = 0;
	if (++s->attempts >= d->max_attempts) {
		fail(d, rc, "giving up on '%s' after %d attempts: %s; run again "
		     "to resume", f->hf->path, s->attempts, why);
		return;
	}
	wait = mb_hub_backoff_ms(s->attempts, d->backoff, d->backoff_max);
	s->not_before = now_ms() + wait;
	if (d->res != NULL)
		d->res->retries++;
	mb_log(MB_LOG_INFO, "fetch: '%s' bytes %llu-%llu: %s; retrying in %ld ms",
	       f->hf->path, (unsigned long long)(s->start + s->got),
	       (unsigned long long)(s->start + s->len), why, wait);
}

/* A transfer ended: account for it and decide what comes next. */
static void finish(struct dl *d, struct conn *k, CURLcode cc)
{
	struct dfile *f = k->f;
	struct seg *s = &f->segs[k->seg];
	long status = k->ans.status;
	int made = k->got_now > 0;
	char why[300];
	int rc;

	/* what arrived is good data, whatever ended the transfer */
	if (k->werr == 0 && !k->cancel && (rc = flush(k)) != 0)
		k->werr = rc;
	k->wlen = 0;
	release(d, k);
	if (f->ranges < 0)
		f->probing = 0;
	if (k->werr != 0) {
		if (!k->stream && s->state == SEG_ACTIVE)
			s->state = SEG_MISSING;
		if (f->stream == k)
			f->stream = NULL;
		fail(d, k->werr, "cannot write '%s' into '%s': %s%s", f->hf->path,
		     d->repo_dir, mb_strerror(k->werr),
		     k->werr == MB_ENOSPC ? " (free some space, or use a bigger "
					    "disk, and run again)" : "");
		return;
	}
	if (k->cancel) {
		if (s->state == SEG_ACTIVE)
			s->state = SEG_MISSING;
		return;
	}
	if (k->stream) {
		size_t i;

		f->stream = NULL;
		if (cc == CURLE_OK && k->off == f->hf->size) {
			for (i = 0; i < f->nsegs; i++) {
				f->segs[i].state = SEG_DONE;
				f->segs[i].got = f->segs[i].len;
			}
			f->dirty = 1;
			return;
		}
		f->ranges = -1; /* ask again: it may honour a range now */
		for (i = 0; i < f->nsegs && f->segs[i].state == SEG_DONE; i++)
			;
		snprintf(why, sizeof(why), "%s", cc != CURLE_OK
			 ? curl_easy_strerror(cc) : "the answer ended early");
		if (i < f->nsegs)
			retry_later(d, f, &f->segs[i], made, MB_ENETWORK, why);
		return;
	}
	if (cc == CURLE_OK && status >= 200 && status < 300 && !k->bad) {
		if (k->off == k->end) {
			s->state = SEG_DONE;
			s->got = s->len;
			s->attempts = 0;
			f->redirects = 0;
			f->dirty = 1;
			return;
		}
		retry_later(d, f, s, made, MB_ENETWORK, "the answer ended early");
		return;
	}
	if (k->bad) {
		retry_later(d, f, s, made, MB_EPROTO,
			    "the answer does not match the range asked for");
		return;
	}
	if (cc == CURLE_OK && status >= 300 && status < 400 &&
	    k->ans.location[0] != '\0') {
		char target[sizeof(f->url)];

		s->state = SEG_MISSING;
		if (++f->redirects > MAX_REDIRECTS ||
		    mb_hub_url_join(f->url, k->ans.location, target,
				    sizeof(target)) != 0) {
			fail(d, MB_EPROTO, "'%s': too many or malformed "
			     "redirects", f->hf->path);
			return;
		}
		if (f->hf->lfs && k->ans.linked_etag[0] != '\0' &&
		    strcmp(k->ans.linked_etag, f->hf->sha256) != 0) {
			fail(d, MB_EPROTO, "'%s': the hub resolves it to sha256 "
			     "%.64s but lists %s", f->hf->path,
			     k->ans.linked_etag, f->hf->sha256);
			return;
		}
		memcpy(f->url, target, strlen(target) + 1);
		return;
	}
	if (cc == CURLE_OK && status == 429) {
		long wait = k->ans.retry_after >= 0
				    ? k->ans.retry_after * 1000
				    : mb_hub_backoff_ms(s->attempts + 1, d->backoff,
							d->backoff_max);

		if (wait > d->h->max_retry_wait_ms)
			wait = d->h->max_retry_wait_ms;
		/* the limit is the account's: hold every request */
		if (now_ms() + wait > d->hold_until)
			d->hold_until = now_ms() + wait;
		s->state = SEG_MISSING;
		if (++s->attempts >= d->max_attempts) {
			fail(d, MB_ENETWORK, "the hub keeps rate-limiting "
			     "requests for '%s'; run again later", f->hf->path);
			return;
		}
		if (d->res != NULL)
			d->res->retries++;
		mb_log(MB_LOG_INFO, "fetch: rate-limited on '%s': waiting %ld ms",
		       f->hf->path, wait);
		return;
	}
	if (cc == CURLE_OK && status >= 400 && status < 500) {
		struct mb_buf u;
		int hub_origin = strncmp(f->url, d->h->endpoint,
					 strlen(d->h->endpoint)) == 0;

		if (!hub_origin && (status == 401 || status == 403 ||
				    status == 404 || status == 410)) {
			/* a signed blob URL expired: resolve again */
			mb_buf_init(&u, sizeof(f->url));
			if (mb_hub_file_url(d->h, d->o->repo, d->res->commit,
					    f->hf->path, &u) == 0)
				snprintf(f->url, sizeof(f->url), "%s", u.data);
			mb_buf_release(&u);
			snprintf(why, sizeof(why), "the blob host answered HTTP %ld",
				 status);
			retry_later(d, f, s, made, MB_EAUTH, why);
			return;
		}
		snprintf(why, sizeof(why), "file '%s'", f->hf->path);
		fail(d, mb_hub_answer_error(d->h, &k->ans, d->o->repo, why), "%s",
		     d->h->err);
		return;
	}
	if (cc == CURLE_OK)
		snprintf(why, sizeof(why), "HTTP %ld", status);
	else
		snprintf(why, sizeof(why), "%s", curl_easy_strerror(cc));
	retry_later(d, f, s, made,
		    cc == CURLE_OPERATION_TIMEDOUT ? MB_ETIMEDOUT : MB_ENETWORK,
		    why);
}

/* A file just became a stream: the other requests for it are redundant. */
static void drop_redundant(struct dl *d)
{
	int i;

	d->switched = 0;
	for (i = 0; i < d->nconns; i++) {
		struct conn *k = &d->conns[i];
		struct dfile *f = k->f;

		if (f == NULL || f->stream == NULL || f->stream == k)
			continue;
		if (flush(k) != 0) /* good bytes: keep them if we can */
			k->wlen = 0;
		release(d, k);
		if (f->segs[k->seg].state == SEG_ACTIVE)
			f->segs[k->seg].state = SEG_MISSING;
	}
}

static void save_records(struct dl *d, int all)
{
	long long now = now_ms();
	size_t i;

	for (i = 0; i < d->nfiles; i++) {
		struct dfile *f = &d->files[i];

		if (f->state != F_ACTIVE || f->fd < 0)
			continue;
		if (f->dirty || (f->partial && (all || now - f->rec_ms >=
						       RECORD_EVERY_MS))) {
			int rc = write_record(f);

			f->dirty = f->partial = 0;
			f->rec_ms = now;
			if (rc != 0 && !all)
				fail(d, rc, "cannot record the progress of '%s': %s",
				     f->hf->path, mb_strerror(rc));
		}
	}
}

/* Returns 1 when some file still has a segment to fetch. */
static int missing(const struct dl *d)
{
	size_t i, j;

	for (i = 0; i < d->nfiles; i++)
		for (j = d->files[i].hseg; d->files[i].state != F_DONE &&
					   !deferred(d, &d->files[i]) &&
					   j < d->files[i].nsegs; j++)
			if (d->files[i].segs[j].state != SEG_DONE)
				return 1;
	return 0;
}

/* The loop: keep every connection busy, hash what has landed, publish
 * what is verified, until every file is done or something is fatal. */
static int run(struct dl *d)
{
	size_t i;
	int busy, left;

	for (;;) {
		long long now = now_ms();
		int running = 0, q, hashing = 0;
		struct CURLMsg *msg;

		for (i = 0; (int)i < d->nconns && d->fatal == 0; i++) {
			struct dfile *f;
			size_t si;

			if (d->conns[i].f != NULL)
				continue;
			if (!pick(d, &f, &si))
				break;
			start(d, &d->conns[i], f, si);
		}
		if (d->fatal != 0)
			break;
		curl_multi_perform(d->m, &running);
		if (d->switched)
			drop_redundant(d);
		while ((msg = curl_multi_info_read(d->m, &q)) != NULL) {
			struct conn *k = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &k);
			if (k != NULL && k->f != NULL)
				finish(d, k, msg->data.result);
		}
		if (d->fatal != 0)
			break;
		for (i = 0; i < d->nfiles && d->fatal == 0; i++) {
			struct dfile *f = &d->files[i];
			int rc;

			if (f->state == F_DONE || deferred(d, f))
				continue;
			if (f->state == F_PENDING) {
				/* nothing left to fetch (a run stopped before
				 * its check, or an empty file): check it now */
				if (f->hseg < f->nsegs &&
				    f->segs[f->hseg].state != SEG_DONE)
					continue;
				if (open_incomplete(d, f) != 0)
					break;
				f->state = F_ACTIVE;
			}
			prefix_link(d, f);
			rc = hash_some(d, f, HASH_STEP);
			if (rc != 0) {
				fail(d, rc, "cannot read back '%s': %s", f->inc,
				     mb_strerror(rc));
				break;
			}
			prefix_record(d, f, 0, 0);
			if (f->hseg == f->nsegs)
				finalize(d, f);
			else if (f->segs[f->hseg].state == SEG_DONE ||
				 f->segs[f->hseg].start + f->segs[f->hseg].got >
					 f->hashed)
				hashing = 1;
		}
		for (i = 0, left = 0; i < d->nfiles; i++)
			left |= d->files[i].state != F_DONE &&
				!deferred(d, &d->files[i]);
		if (d->fatal != 0 || !left)
			break;
		save_records(d, 0);
		if (d->fatal != 0)
			break;
		if (now - d->last_progress >= PROGRESS_EVERY_MS) {
			d->last_progress = now;
			report_all(d);
		}
		for (i = 0, busy = 0; (int)i < d->nconns; i++)
			busy |= d->conns[i].f != NULL;
		if (!busy && !hashing && !missing(d)) {
			/* nothing in flight, to hash or to start: a bug */
			fail(d, MB_EINTERNAL, "download stalled with nothing to do");
			break;
		}
		if (!hashing)
			curl_multi_poll(d->m, NULL, 0, busy ? 100 : 20, NULL);
	}
	/* keep what the transfers still in flight have gathered */
	for (i = 0; (int)i < d->nconns; i++)
		if (d->conns[i].f != NULL && d->conns[i].werr == 0 &&
		    flush(&d->conns[i]) != 0)
			d->conns[i].wlen = 0;
	save_records(d, 1);
	return d->fatal;
}

/* --- set-up and publishing --- */

static int prepare_file(struct dl *d, struct dfile *f, uint64_t *need)
{
	struct stat st;
	struct mb_buf u;
	int rc;

	f->fd = -1;
	f->ranges = -1;
	if (f->hf->lfs)
		snprintf(f->etag, sizeof(f->etag), "%s", f->hf->sha256);
	else
		snprintf(f->etag, sizeof(f->etag), "%s", f->hf->oid);
	if (f->etag[0] == '\0') {
		fail(d, MB_EPROTO, "the hub lists '%s' without a hash", f->hf->path);
		return MB_EPROTO;
	}
	f->blob = path_join(d->repo_dir, "blobs/", f->etag);
	if (f->blob == NULL)
		goto nomem;
	f->inc = path_join(f->blob, "", ".incomplete");
	f->rec = path_join(f->blob, "", ".ranges");
	if (f->inc == NULL || f->rec == NULL)
		goto nomem;
	mb_buf_init(&u, sizeof(f->url));
	rc = mb_hub_file_url(d->h, d->o->repo, d->res->commit, f->hf->path, &u);
	if (rc == 0)
		snprintf(f->url, sizeof(f->url), "%s", u.data);
	mb_buf_release(&u);
	if (rc != 0) {
		fail(d, rc, "cannot make a URL for '%s'", f->hf->path);
		return rc;
	}
	/* a blob is renamed into place only once verified */
	if (stat(f->blob, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size == f->hf->size) {
		f->state = F_DONE;
		f->start_done = f->hf->size;
		return 0;
	}
	if (stat(f->inc, &st) != 0 || !S_ISREG(st.st_mode) ||
	    load_record(d, f) != 0) {
		unlink(f->rec);
		rc = reset_segs(d, f);
		if (rc != 0)
			goto nomem;
		*need += f->hf->size;
	} else {
		uint64_t have = (uint64_t)st.st_blocks * 512;

		*need += have >= f->hf->size ? 0 : f->hf->size - have;
	}
	f->start_done = file_done(f);
	return 0;
nomem:
	fail(d, MB_ENOMEM, "out of memory");
	return MB_ENOMEM;
}

/* Points snapshots/<commit>/<path> at the blob (relative, like the hub's
 * own client) and dest/<path> at the same bytes. */
static int publish(struct dl *d, struct dfile *f, const char *snap)
{
	char rel[4096], tmp[4200], *p = NULL, *dp = NULL, *slash;
	const char *c;
	size_t n = 0;
	int rc = MB_ENOMEM;

	if (f->published)
		return 0;
	/* the link a conversion read the file by while it came (this run's,
	 * or one an earlier run left) goes once the file is verified */
	if (d->o->headers_dir != NULL &&
	    side_path(d, f, MB_DOWNLOAD_PARTIAL, tmp, sizeof(tmp)))
		unlink(tmp);
	rel[0] = '\0';
	for (c = f->hf->path; *c; c++)
		if (*c == '/')
			n += snprintf(rel + n, sizeof(rel) - n, "../");
	snprintf(rel + n, sizeof(rel) - n, "../../blobs/%s", f->etag);
	p = path_join(snap, f->hf->path, "");
	if (p == NULL)
		goto out;
	slash = strrchr(p, '/');
	*slash = '\0';
	rc = mb_mkdir_p(p, 0755);
	*slash = '/';
	if (rc != 0)
		goto out;
	snprintf(tmp, sizeof(tmp), "%s.mibera-tmp", p);
	unlink(tmp);
	if (symlink(rel, tmp) != 0 || rename(tmp, p) != 0) {
		rc = mb_err_from_errno(errno);
		unlink(tmp);
		goto out;
	}
	if (d->o->dest != NULL) {
		rc = MB_ENOMEM;
		dp = path_join(d->o->dest, f->hf->path, "");
		if (dp == NULL)
			goto out;
		slash = strrchr(dp, '/');
		*slash = '\0';
		rc = mb_mkdir_p(dp, 0755);
		*slash = '/';
		if (rc != 0)
			goto out;
		snprintf(tmp, sizeof(tmp), "%s.mibera-tmp", dp);
		unlink(tmp);
		/* a hard link costs no space and outlives the cache entry; a
		 * symbolic link where the file system will not (another disk) */
		if (link(f->blob, tmp) != 0 && symlink(f->blob, tmp) != 0) {
			rc = mb_err_from_errno(errno);
			goto out;
		}
		if (rename(tmp, dp) != 0) {
			rc = mb_err_from_errno(errno);
			unlink(tmp);
			goto out;
		}
		/* dest already a link of the blob (an earlier run): rename
		 * between two links of one file does nothing, and the
		 * temporary name would stay */
		unlink(tmp);
	}
	f->published = 1;
	rc = 0;
out:
	if (rc != 0)
		fail(d, rc, "cannot link '%s': %s", f->hf->path, mb_strerror(rc));
	free(p);
	free(dp);
	return rc;
}

/* Makes the snapshot directory and dest. */
static int publish_dirs(struct dl *d)
{
	int rc;

	snprintf(d->snap, sizeof(d->snap), "%s/snapshots/%s", d->repo_dir,
		 d->res->commit);
	snprintf(d->res->snapshot, sizeof(d->res->snapshot), "%s", d->snap);
	rc = mb_mkdir_p(d->snap, 0755);
	if (rc == 0 && d->o->dest != NULL)
		rc = mb_mkdir_p(d->o->dest, 0755);
	if (rc != 0)
		fail(d, rc, "cannot create '%s': %s", d->snap, mb_strerror(rc));
	return rc;
}

static int publish_all(struct dl *d)
{
	char refs[2200], ref[2400];
	const char *snap = d->snap;
	const char *rev = d->o->rev ? d->o->rev : "main";
	size_t i;
	int rc = d->snap[0] != '\0' ? 0 : publish_dirs(d);

	for (i = 0; i < d->nfiles && rc == 0; i++)
		rc = publish(d, &d->files[i], snap);
	/* refs/<branch> names the commit, as the hub's client writes it */
	if (rc == 0 && strcmp(rev, d->res->commit) != 0 && mb_repo_path_ok(rev)) {
		snprintf(refs, sizeof(refs), "%s/refs", d->repo_dir);
		snprintf(ref, sizeof(ref), "%s/%s", refs, rev);
		rc = mb_mkdir_p(refs, 0755);
		if (rc == 0 && strchr(rev, '/') != NULL) {
			char *s = strrchr(ref, '/');

			*s = '\0';
			rc = mb_mkdir_p(ref, 0755);
			*s = '/';
		}
		if (rc == 0)
			rc = mb_atomic_write(ref, d->res->commit, 40, 0644);
		if (rc != 0)
			fail(d, rc, "cannot write '%s': %s", ref, mb_strerror(rc));
	}
	return rc;
}

/* --- headers first --- */

/* Bytes [off, off + len) of file f into b: from its verified blob when it
 * is here, else from the hub. */
static int read_some(struct dl *d, struct dfile *f, uint64_t off, uint64_t len,
		     struct mb_buf *b)
{
	size_t got = 0;
	int fd, rc;

	mb_buf_reset(b);
	if (f->state != F_DONE) {
		rc = mb_hub_read(d->h, d->o->repo, d->res->commit, f->hf->path,
				 off, len, b);
		if (rc != 0) {
			fail(d, rc, "cannot read the header of '%s': %s",
			     f->hf->path, d->h->err);
			return rc;
		}
		if (b->len != len) {
			fail(d, MB_EPROTO, "the hub sent %zu bytes of the header "
			     "of '%s' for %llu", b->len, f->hf->path,
			     (unsigned long long)len);
			return MB_EPROTO;
		}
		return 0;
	}
	rc = MB_ENOMEM;
	if (len > b->cap || mb_buf_reserve(b, (size_t)len) != 0)
		goto out;
	fd = open(f->blob, O_RDONLY | O_CLOEXEC);
	rc = fd < 0 ? mb_err_from_errno(errno) : 0;
	if (rc == 0) {
		rc = mb_pread_full(fd, b->data, (size_t)len, off, &got);
		close(fd);
	}
	if (rc == 0 && got != len)
		rc = MB_EFORMAT;
	if (rc == 0)
		b->len = (size_t)len;
out:
	if (rc != 0)
		fail(d, rc, "cannot read the header of '%s': %s", f->blob,
		     mb_strerror(rc));
	return rc;
}

/* Writes shard f's header to headers_dir/<path>: its first 8 + N bytes,
 * in a sparse file of the shard's size (atomically). */
static int write_header(struct dl *d, struct dfile *f)
{
	char path[4200], tmp[4300], why[256];
	struct mb_buf b;
	uint64_t n = 0;
	int fd = -1, rc;

	mb_buf_init(&b, MB_ST_MAX_HEADER + 8);
	rc = read_some(d, f, 0, 8, &b);
	if (rc == 0) {
		rc = mb_st_header_len((const uint8_t *)b.data, f->hf->size, &n,
				      why, sizeof(why));
		if (rc != 0)
			fail(d, rc, "'%s' is not a safetensors file: %s",
			     f->hf->path, why);
	}
	if (rc == 0)
		rc = read_some(d, f, 0, 8 + n, &b);
	if (rc != 0)
		goto out;
	snprintf(path, sizeof(path), "%s/%s", d->o->headers_dir, f->hf->path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	{
		char *slash = strrchr(path, '/');

		*slash = '\0';
		rc = mb_mkdir_p(path, 0755);
		*slash = '/';
	}
	if (rc == 0) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		rc = fd < 0 ? mb_err_from_errno(errno) : 0;
	}
	if (rc == 0)
		rc = mb_write_all(fd, b.data, b.len);
	if (rc == 0 && ftruncate(fd, (off_t)f->hf->size) != 0)
		rc = mb_err_from_errno(errno);
	if (rc == 0)
		rc = mb_fsync(fd);
	if (fd >= 0 && close(fd) != 0 && rc == 0)
		rc = mb_err_from_errno(errno);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = mb_err_from_errno(errno);
	if (rc != 0) {
		unlink(tmp);
		fail(d, rc, "cannot write '%s': %s", path, mb_strerror(rc));
	}
out:
	mb_buf_release(&b);
	return rc;
}

/* The small files first, linked into dest; then every shard's header
 * beside them; then the caller is told. */
static int headers_first(struct dl *d)
{
	size_t i;
	int rc;

	d->defer = 1;
	rc = run(d);
	d->defer = 0;
	for (i = 0; rc == 0 && i < d->nfiles; i++)
		if (d->files[i].state == F_DONE)
			rc = publish(d, &d->files[i], d->snap);
	for (i = 0; rc == 0 && i < d->nfiles; i++)
		if (ends_with(d->files[i].hf->path, ".safetensors"))
			rc = write_header(d, &d->files[i]);
	if (rc == 0 && d->o->headers_ready != NULL)
		d->o->headers_ready(d->res->commit, d->o->progress_ctx);
	return rc;
}

int mb_download_state_write(const char *path, const char *state,
			    const char *commit, int permanent,
			    const char *message)
{
	struct mb_buf b;
	int rc;

	mb_buf_init(&b, 8192);
	mb_buf_adds(&b, "{\"state\":");
	mb_json_quote(&b, state);
	mb_buf_adds(&b, ",\"commit\":");
	mb_json_quote(&b, commit != NULL ? commit : "");
	mb_buf_addf(&b, ",\"permanent\":%s,\"message\":",
		    permanent ? "true" : "false");
	mb_json_quote(&b, message != NULL ? message : "");
	mb_buf_adds(&b, "}\n");
	rc = mb_buf_error(&b);
	if (rc == 0)
		rc = mb_atomic_write(path, b.data, b.len, 0644);
	mb_buf_release(&b);
	return rc;
}

int mb_download_state_read(const char *path, struct mb_download_state *st)
{
	struct timespec now;
	struct stat sb;
	char *text = NULL;
	size_t len = 0;
	cJSON *doc;
	const char *v;
	int rc;

	memset(st, 0, sizeof(*st));
	if (stat(path, &sb) != 0)
		return mb_err_from_errno(errno);
	rc = mb_read_file(path, 16384, &text, &len);
	if (rc != 0)
		return rc;
	doc = mb_json_parse(text, len);
	free(text);
	v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "state"));
	if (v == NULL || strlen(v) >= sizeof(st->state)) {
		cJSON_Delete(doc);
		return MB_EJSON;
	}
	snprintf(st->state, sizeof(st->state), "%s", v);
	st->permanent = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc,
								      "permanent"));
	v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "message"));
	snprintf(st->message, sizeof(st->message), "%s", v != NULL ? v : "");
	v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "commit"));
	if (v != NULL && strlen(v) == 40)
		memcpy(st->commit, v, 41);
	cJSON_Delete(doc);
	clock_gettime(CLOCK_REALTIME, &now);
	st->age_s = (double)(now.tv_sec - sb.st_mtim.tv_sec) +
		    (double)(now.tv_nsec - sb.st_mtim.tv_nsec) / 1e9;
	return 0;
}

void mb_download_opts_init(struct mb_download_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->connections = MB_DOWNLOAD_DEFAULT_CONNECTIONS;
	o->range_size = MB_DOWNLOAD_DEFAULT_RANGE;
	o->reserve = UINT64_MAX;
	o->max_attempts = MB_DOWNLOAD_DEFAULT_ATTEMPTS;
}

static double gb(uint64_t n)
{
	return (double)n / 1e9;
}

int mb_download_repo(struct mb_hub *h, const struct mb_download_opts *o,
		     struct mb_download_result *res, char *err, size_t errcap)
{
	struct mb_download_result local;
	struct mb_hub_repo *r = NULL;
	const char **paths = NULL;
	char org[128], errbuf[8];
	struct dl d;
	uint64_t need = 0, reserve, avail = 0;
	size_t i, n = 0;
	int rc;

	if (err == NULL || errcap == 0) {
		err = errbuf;
		errcap = sizeof(errbuf);
	}
	err[0] = '\0';
	if (res == NULL)
		res = &local;
	memset(res, 0, sizeof(*res));
	memset(&d, 0, sizeof(d));
	d.h = h;
	d.o = o;
	d.res = res;
	d.err = err;
	d.errcap = errcap;
	d.t0 = now_ms();
	d.range = o->range_size ? o->range_size : MB_DOWNLOAD_DEFAULT_RANGE;
	d.nconns = o->connections > 0 ? o->connections
				      : MB_DOWNLOAD_DEFAULT_CONNECTIONS;
	if (d.nconns > MB_DOWNLOAD_MAX_CONNECTIONS)
		d.nconns = MB_DOWNLOAD_MAX_CONNECTIONS;
	d.max_attempts = o->max_attempts > 0 ? o->max_attempts
					     : MB_DOWNLOAD_DEFAULT_ATTEMPTS;
	d.backoff = o->backoff_ms > 0 ? o->backoff_ms : 1000;
	d.backoff_max = o->backoff_max_ms > 0 ? o->backoff_max_ms : 30000;
	h->stall_timeout_ms = o->stall_ms > 0 ? o->stall_ms : 30000;

	rc = mb_hub_list(h, o->repo, o->rev, &r);
	if (rc != 0) {
		fail(&d, rc, "%s", h->err);
		goto out;
	}
	memcpy(res->commit, r->commit, sizeof(res->commit));
	snprintf(org, sizeof(org), "%s", o->repo);
	*strchr(org, '/') = '\0';
	if ((size_t)snprintf(d.repo_dir, sizeof(d.repo_dir), "%s/models--%s--%s",
			     o->cache_dir, org, strchr(o->repo, '/') + 1) >=
	    sizeof(d.repo_dir)) {
		fail(&d, MB_EINVAL, "cache path too long");
		goto out;
	}
	/* the selection */
	rc = MB_ENOMEM;
	paths = mb_calloc(r->nfiles + 1, sizeof(*paths));
	d.files = mb_calloc(r->nfiles + 1, sizeof(*d.files));
	d.conns = mb_calloc((size_t)d.nconns, sizeof(*d.conns));
	d.hbuf = mb_malloc(HASH_BUF);
	if (paths == NULL || d.files == NULL || d.conns == NULL || d.hbuf == NULL) {
		fail(&d, rc, "out of memory");
		goto out;
	}
	for (i = 0; i < r->nfiles; i++)
		paths[i] = r->files[i].path;
	for (i = 0; i < r->nfiles; i++)
		if (selected(o, r->files[i].path, paths, r->nfiles)) {
			d.files[n].fd = -1;
			d.files[n++].hf = &r->files[i];
		}
	d.nfiles = n;
	res->nfiles = n;
	if (o->headers_dir != NULL) {
		/* the small files first (a stable partition: the shards stay
		 * in path order, the order a conversion takes them in) */
		struct dfile *sorted = mb_calloc(n + 1, sizeof(*sorted));
		size_t k = 0, pass;

		if (sorted == NULL) {
			rc = MB_ENOMEM;
			fail(&d, rc, "out of memory");
			goto out;
		}
		for (pass = 0; pass < 2; pass++)
			for (i = 0; i < n; i++)
				if (ends_with(d.files[i].hf->path,
					      ".safetensors") == (int)pass)
					sorted[k++] = d.files[i];
		free(d.files);
		d.files = sorted;
	}
	if (n == 0) {
		fail(&d, MB_ENOENT, "nothing to fetch: no file of '%s' at %s "
		     "matches the selection", o->repo, r->commit);
		goto out;
	}
	rc = mb_mkdir_p(d.repo_dir, 0755);
	if (rc == 0) {
		char b[2200], *real;

		snprintf(b, sizeof(b), "%s/blobs", d.repo_dir);
		rc = mb_mkdir_p(b, 0755);
		/* absolute, so --dest links work from anywhere */
		real = rc == 0 ? realpath(d.repo_dir, NULL) : NULL;
		if (real != NULL) {
			snprintf(d.repo_dir, sizeof(d.repo_dir), "%s", real);
			free(real);
		}
	}
	if (rc != 0) {
		fail(&d, rc, "cannot create '%s': %s", d.repo_dir, mb_strerror(rc));
		goto out;
	}
	for (i = 0; i < n; i++) {
		d.total += d.files[i].hf->size;
		rc = prepare_file(&d, &d.files[i], &need);
		if (rc != 0)
			goto out;
		res->bytes_reused += d.files[i].start_done;
	}
	res->bytes_total = d.total;
	/* Room for the rest of the download and for what the job writes
	 * next (an F16 GGUF is about the size of bf16 shards), checked
	 * before the first byte, not discovered as a short file later. */
	reserve = o->reserve == UINT64_MAX ? d.total : o->reserve;
	rc = mb_fs_free_space(d.repo_dir, &avail);
	if (rc != 0) {
		fail(&d, rc, "cannot read the free space of '%s'", d.repo_dir);
		goto out;
	}
	if (need > avail || reserve > avail - need) {
		rc = MB_ENOSPC;
		fail(&d, rc, "not enough disk space in '%s': %.2f GB free, the "
		     "download needs %.2f GB more and the next steps about %.2f GB "
		     "(--reserve); free some space or use a bigger disk",
		     d.repo_dir, gb(avail), gb(need), gb(reserve));
		goto out;
	}
	rc = MB_ENOMEM;
	d.m = curl_multi_init();
	if (d.m == NULL) {
		fail(&d, rc, "out of memory");
		goto out;
	}
	/* one connection per request: multiplexing the ranges over one
	 * HTTP/2 connection would cap them at one connection's speed */
	curl_multi_setopt(d.m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	for (i = 0; (int)i < d.nconns; i++) {
		d.conns[i].d = &d;
		d.conns[i].c = curl_easy_init();
		d.conns[i].wbuf = mb_malloc(WBUF);
		if (d.conns[i].c == NULL || d.conns[i].wbuf == NULL) {
			fail(&d, rc, "out of memory");
			goto out;
		}
	}
	d.t0 = now_ms();
	report(&d, NULL, 0);
	if (o->headers_dir != NULL) {
		rc = publish_dirs(&d);
		if (rc == 0)
			rc = headers_first(&d);
		if (rc != 0)
			goto out;
	}
	rc = run(&d);
	if (rc == 0)
		rc = publish_all(&d);
	if (rc == 0)
		report(&d, NULL, 1);
out:
	res->bytes_fetched = d.fetched;
	res->seconds = (double)(now_ms() - d.t0) / 1000.0;
	for (i = 0; d.conns != NULL && (int)i < d.nconns; i++) {
		if (d.conns[i].f != NULL)
			release(&d, &d.conns[i]);
		if (d.conns[i].c != NULL)
			curl_easy_cleanup(d.conns[i].c);
		free(d.conns[i].wbuf);
	}
	if (d.m != NULL)
		curl_multi_cleanup(d.m);
	for (i = 0; d.files != NULL && i < d.nfiles; i++) {
		struct dfile *f = &d.files[i];

		if (f->fd >= 0)
			close(f->fd);
		EVP_MD_CTX_free(f->md);
		free(f->segs);
		free(f->blob);
		free(f->inc);
		free(f->rec);
	}
	free(d.files);
	free(d.conns);
	free(d.hbuf);
	free(paths);
	mb_hub_repo_free(r);
	return d.fatal;
}
