/* splitset: GGUF artifacts as sets of parts (see splitset.h). */
#define _GNU_SOURCE /* copy_file_range */
#include "common/splitset.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/gguf.h"

#define SUFFIX_LEN 20	/* "-00001-of-00003.gguf" */

int mb_splitset_parse_size(const char *s, uint64_t *out, char *err,
			   size_t errcap)
{
	uint64_t v = 0, mul = 1;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			goto toobig;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p == s) {
		mb_seterr(err, errcap, "'%s' is not a size: give a whole number "
			  "of bytes or of K, M, G or T (e.g. 50G, 2M)", s);
		return MB_EINVAL;
	}
	if (*p == '.' || *p == ',') {
		mb_seterr(err, errcap, "'%s' is not a size: give a whole number "
			  "of bytes or of K, M, G or T (1500M, not 1.5G)", s);
		return MB_EINVAL;
	}
	switch (*p) {
	case '\0':
		break;
	case 'K':
	case 'k':
		mul = 1000;
		break;
	case 'M':
		mul = 1000 * 1000;
		break;
	case 'G':
		mul = 1000 * 1000 * 1000;
		break;
	case 'T':
		mul = 1000ull * 1000 * 1000 * 1000;
		break;
	default:
		mul = 0;
		break;
	}
	if (mul == 0 || (*p != '\0' && p[1] != '\0')) {
		mb_seterr(err, errcap, "'%s' is not a size: the unit after the "
			  "number is one of K, M, G or T (powers of 1000, e.g. "
			  "50G), or none for bytes", s);
		return MB_EINVAL;
	}
	if (v > UINT64_MAX / mul || v * mul > (uint64_t)INT64_MAX)
		goto toobig;
	v *= mul;
	if (v < MB_SPLITSET_MIN_SIZE) {
		mb_seterr(err, errcap, "'%s' is too small a part size: parts "
			  "are at least 1M (1000000 bytes)", s);
		return MB_EINVAL;
	}
	*out = v;
	return 0;
toobig:
	mb_seterr(err, errcap, "'%s' is too large a size", s);
	return MB_EINVAL;
}

void mb_splitset_size_text(uint64_t bytes, char *out, size_t cap)
{
	static const char units[] = "TGMK";
	uint64_t mul = 1000ull * 1000 * 1000 * 1000;
	int i;

	for (i = 0; i < 4; i++, mul /= 1000)
		if (bytes >= mul && bytes % mul == 0) {
			snprintf(out, cap, "%llu%c",
				 (unsigned long long)(bytes / mul), units[i]);
			return;
		}
	snprintf(out, cap, "%llu", (unsigned long long)bytes);
}

int mb_splitset_part_path(const char *path, unsigned no, unsigned count,
			  char *out, size_t cap)
{
	size_t n = strlen(path);
	int w;

	if (n >= 5 && strcmp(path + n - 5, ".gguf") == 0)
		n -= 5;
	if (n > (size_t)INT32_MAX)
		return MB_ETOOBIG;
	w = snprintf(out, cap, "%.*s-%05u-of-%05u.gguf", (int)n, path, no + 1,
		     count);
	return w < 0 || (size_t)w >= cap ? MB_ETOOBIG : 0;
}

/* The value of the five digits at p, or -1. */
static long five_digits(const char *p)
{
	long v = 0;
	int i;

	for (i = 0; i < 5; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

int mb_splitset_parse_name(const char *name, size_t *stem, unsigned *no,
			   unsigned *count)
{
	size_t n = strlen(name);
	const char *p;
	long a, b;

	if (n <= SUFFIX_LEN)
		return 0;
	p = name + n - SUFFIX_LEN;
	if (p[0] != '-' || strncmp(p + 6, "-of-", 4) != 0 ||
	    strcmp(p + 15, ".gguf") != 0)
		return 0;
	a = five_digits(p + 1);
	b = five_digits(p + 10);
	if (a < 1 || b < a || b > MB_GGUF_SPLIT_MAX)
		return 0;
	*stem = n - SUFFIX_LEN;
	*no = (unsigned)(a - 1);
	*count = (unsigned)b;
	return 1;
}

void mb_splitset_artifact_name(const char *name, char *out, size_t cap)
{
	size_t stem;
	unsigned no, count;

	if (mb_splitset_parse_name(name, &stem, &no, &count) && stem <= INT32_MAX)
		snprintf(out, cap, "%.*s.gguf", (int)stem, name);
	else
		snprintf(out, cap, "%s", name);
}

static uint64_t kv_uint(const struct mb_gguf *g, const char *key, int *type)
{
	const struct mb_gguf_kv *kv = mb_gguf_kv(g, key);

	*type = kv ? (int)kv->type : -1;
	if (kv == NULL)
		return 0;
	if (kv->type == MB_GGUF_INT32 || kv->type == MB_GGUF_INT16 ||
	    kv->type == MB_GGUF_INT64 || kv->type == MB_GGUF_INT8)
		return kv->v.i < 0 ? 0 : (uint64_t)kv->v.i;
	return kv->v.u;
}

static const char *base(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/* Checks the set whose first part is first (count parts, by its name). */
static int check_set(const char *first, unsigned count, struct mb_splitset *set,
		     char *err, size_t errcap)
{
	char path[4096], sub[512];
	uint64_t want = 0, got = 0;
	unsigned k;
	int rc = 0, t;

	set->count = count;
	set->bytes = set->largest = 0;
	for (k = 0; k < count && rc == 0; k++) {
		struct mb_gguf *g = NULL;
		uint64_t no, n;
		int tno, tn;

		/* first less its "-00001-of-N.gguf", then part k's suffix */
		if (snprintf(path, sizeof(path), "%.*s-%05u-of-%05u.gguf",
			     (int)(strlen(first) - SUFFIX_LEN), first, k + 1,
			     count) >= (int)sizeof(path))
			return MB_ETOOBIG;
		rc = mb_gguf_read(path, &g, sub, sizeof(sub));
		if (rc == MB_ENOENT || (rc != 0 && access(path, F_OK) != 0)) {
			mb_seterr(err, errcap, "part %u of %u of '%s' is missing: "
				  "'%s'", k + 1, count, base(first), base(path));
			return MB_EFORMAT;
		}
		if (rc != 0) {
			mb_seterr(err, errcap, "part '%s' is not a valid GGUF: %s",
				  base(path), sub);
			return rc;
		}
		no = kv_uint(g, MB_GGUF_SPLIT_NO, &tno);
		n = kv_uint(g, MB_GGUF_SPLIT_COUNT, &tn);
		if (tno != MB_GGUF_UINT16 || tn != MB_GGUF_UINT16 || no != k ||
		    n != count) {
			mb_seterr(err, errcap, "part '%s' does not say it is part "
				  "%u of %u (%s %s, %s %s)", base(path), k + 1,
				  count, MB_GGUF_SPLIT_NO,
				  tno < 0 ? "missing" : "wrong",
				  MB_GGUF_SPLIT_COUNT, tn < 0 ? "missing" : "wrong");
			rc = MB_EFORMAT;
		}
		if (rc == 0 && k == 0) {
			want = kv_uint(g, MB_GGUF_SPLIT_TENSORS, &t);
			if (t != MB_GGUF_INT32) {
				mb_seterr(err, errcap, "part '%s' lacks %s",
					  base(path), MB_GGUF_SPLIT_TENSORS);
				rc = MB_EFORMAT;
			}
		}
		got += g->ntensors;
		set->bytes += g->file_size;
		if (g->file_size > set->largest)
			set->largest = g->file_size;
		mb_gguf_free(g);
	}
	if (rc == 0 && got != want) {
		mb_seterr(err, errcap, "the parts of '%s' hold %llu tensors and "
			  "the first says the set has %llu", base(first),
			  (unsigned long long)got, (unsigned long long)want);
		rc = MB_EFORMAT;
	}
	set->tensors = got;
	return rc;
}

int mb_splitset_find(const char *path, struct mb_splitset *set, char *err,
		     size_t errcap)
{
	char dir[4096], stem[4096], name[512];
	size_t slen;
	unsigned no, count;
	struct mb_gguf *g = NULL;
	DIR *d;
	struct dirent *de;
	int rc;

	memset(set, 0, sizeof(*set));
	if (mb_splitset_parse_name(path, &slen, &no, &count)) {
		if (no != 0) {
			mb_seterr(err, errcap, "'%s' is part %u of %u: a set is "
				  "named by its first part", base(path), no + 1,
				  count);
			return MB_EINVAL;
		}
		snprintf(set->first, sizeof(set->first), "%s", path);
		return check_set(path, count, set, err, errcap);
	}
	if (access(path, F_OK) == 0) {
		rc = mb_gguf_read(path, &g, name, sizeof(name));
		if (rc != 0) {
			mb_seterr(err, errcap, "'%s': %s", path, name);
			return rc;
		}
		set->count = 1;
		set->tensors = g->ntensors;
		set->bytes = set->largest = g->file_size;
		snprintf(set->first, sizeof(set->first), "%s", path);
		mb_gguf_free(g);
		return 0;
	}
	/* NAME.gguf absent: its set, NAME-00001-of-N.gguf, beside it */
	snprintf(dir, sizeof(dir), "%s", path);
	{
		char *sl = strrchr(dir, '/');

		if (sl == NULL)
			snprintf(dir, sizeof(dir), ".");
		else if (sl == dir)
			dir[1] = '\0';
		else
			*sl = '\0';
	}
	snprintf(stem, sizeof(stem), "%s", base(path));
	slen = strlen(stem);
	if (slen >= 5 && strcmp(stem + slen - 5, ".gguf") == 0)
		stem[slen -= 5] = '\0';
	d = opendir(dir);
	if (d == NULL) {
		mb_seterr(err, errcap, "'%s' does not exist", path);
		return MB_ENOENT;
	}
	count = 0;
	while ((de = readdir(d)) != NULL) {
		size_t s;
		unsigned k, c;

		if (mb_splitset_parse_name(de->d_name, &s, &k, &c) && k == 0 &&
		    s == slen && strncmp(de->d_name, stem, slen) == 0) {
			if (count != 0) {
				closedir(d);
				mb_seterr(err, errcap, "'%s' has two sets of parts "
					  "(of %u and of %u)", path, count, c);
				return MB_EFORMAT;
			}
			count = c;
			snprintf(name, sizeof(name), "%s", de->d_name);
		}
	}
	closedir(d);
	if (count == 0) {
		mb_seterr(err, errcap, "'%s' does not exist (nor a set of parts "
			  "named after it)", path);
		return MB_ENOENT;
	}
	if ((size_t)snprintf(set->first, sizeof(set->first), "%s%s%s",
			     strchr(path, '/') ? dir : "",
			     strchr(path, '/') ? "/" : "", name) >=
	    sizeof(set->first))
		return MB_ETOOBIG;
	return check_set(set->first, count, set, err, errcap);
}

int mb_splitset_remove_others(const char *path, unsigned keep_count)
{
	char dir[4096], stem[4096], full[8200];
	size_t slen, s;
	unsigned no, count;
	DIR *d;
	struct dirent *de;
	int rc = 0;

	snprintf(dir, sizeof(dir), "%s", path);
	{
		char *sl = strrchr(dir, '/');

		if (sl == NULL)
			snprintf(dir, sizeof(dir), ".");
		else if (sl == dir)
			dir[1] = '\0';
		else
			*sl = '\0';
	}
	snprintf(stem, sizeof(stem), "%s", base(path));
	slen = strlen(stem);
	if (slen >= 5 && strcmp(stem + slen - 5, ".gguf") == 0)
		stem[slen -= 5] = '\0';
	if (keep_count > 1 && unlink(path) != 0 && errno != ENOENT)
		rc = mb_err_from_errno(errno);
	d = opendir(dir);
	if (d == NULL)
		return rc;
	while ((de = readdir(d)) != NULL) {
		char nm[512];
		size_t n = strlen(de->d_name);
		int tmp = 0;

		/* NAME-N-of-M.gguf and NAME-N-of-M.gguf.part */
		snprintf(nm, sizeof(nm), "%s", de->d_name);
		if (n > 5 && n < sizeof(nm) && strcmp(nm + n - 5, ".part") == 0) {
			nm[n - 5] = '\0';
			tmp = 1;
		}
		if (!mb_splitset_parse_name(nm, &s, &no, &count) || s != slen ||
		    strncmp(nm, stem, slen) != 0 ||
		    (keep_count > 1 && count == keep_count && !tmp))
			continue;
		snprintf(full, sizeof(full), "%s/%s", dir, de->d_name);
		if (unlink(full) != 0 && errno != ENOENT && rc == 0)
			rc = mb_err_from_errno(errno);
	}
	closedir(d);
	return rc;
}

/* Copies len bytes from in at a to out at b: in the kernel when it can,
 * else through buf. */
static int copy_range(int in, uint64_t a, int out, uint64_t b, uint64_t len,
		      char *buf, size_t cap)
{
	while (len > 0) {
		loff_t x = (loff_t)a, y = (loff_t)b;
		ssize_t n = copy_file_range(in, &x, out, &y, (size_t)len, 0);
		size_t got;
		int rc;

		if (n <= 0) {
			size_t want = len < cap ? (size_t)len : cap;

			rc = mb_pread_full(in, buf, want, a, &got);
			if (rc != 0)
				return rc;
			if (got != want)
				return MB_EFORMAT;
			rc = mb_pwrite_all(out, buf, want, b);
			if (rc != 0)
				return rc;
			n = (ssize_t)want;
		}
		a += (uint64_t)n;
		b += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int mb_splitset_write(const char *in, const char *out, uint64_t max_size,
		      unsigned *nparts, char *err, size_t errcap)
{
	struct mb_gguf *g = NULL;
	struct mb_gguf_w w;
	struct mb_gguf_split sp;
	struct mb_afile *af = NULL;
	char sub[512], path[4200], *buf = NULL, dir[4096], *sl;
	uint64_t i, need = 0, avail;
	size_t k, np = 0, committed = 0;
	int rc, fd = -1, w_inited = 0;

	memset(&sp, 0, sizeof(sp));
	*nparts = 0;
	rc = mb_gguf_read(in, &g, sub, sizeof(sub));
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot read '%s': %s", in, sub);
		return rc;
	}
	rc = mb_gguf_w_init(&w, g->alignment);
	if (rc != 0)
		goto out;
	w_inited = 1;
	for (i = 0; rc == 0 && i < g->n_kv; i++) {
		const char *key = g->kv[i].key;

		if (strcmp(key, MB_GGUF_SPLIT_NO) == 0 ||
		    strcmp(key, MB_GGUF_SPLIT_COUNT) == 0 ||
		    strcmp(key, MB_GGUF_SPLIT_TENSORS) == 0)
			continue;
		rc = mb_gguf_w_copy_kv(&w, &g->kv[i]);
	}
	for (i = 0; rc == 0 && i < g->ntensors; i++) {
		const struct mb_gguf_tensor *t = &g->tensors[i];
		int r = mb_gguf_w_tensor(&w, t->name, t->type, t->ndim, t->ne);

		rc = r < 0 ? r : 0;
	}
	if (rc == 0)
		rc = mb_gguf_w_layout(&w);
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot lay out '%s' again: %s", in,
			  mb_strerror(rc));
		goto out;
	}
	if (w.file_size > max_size && g->ntensors > 0) {
		rc = mb_gguf_w_split(&w, max_size, &sp);
		if (rc != 0) {
			mb_seterr(err, errcap, "cannot divide '%s' into parts of "
				  "%llu bytes: %s", in, (unsigned long long)max_size,
				  mb_strerror(rc));
			goto out;
		}
		np = sp.nparts;
	} else {
		np = 1;
	}
	for (k = 0; k < np; k++)
		need += np > 1 ? sp.parts[k].file_size : w.file_size;
	snprintf(dir, sizeof(dir), "%s", out);
	sl = strrchr(dir, '/');
	if (sl == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		*(sl == dir ? sl + 1 : sl) = '\0';
	if (mb_fs_free_space(dir, &avail) == 0 && avail < need) {
		mb_seterr(err, errcap, "'%s' needs %.2f GB and only %.2f GB are "
			  "free in '%s'", out, (double)need / 1e9,
			  (double)avail / 1e9, dir);
		rc = MB_ENOSPC;
		goto out;
	}
	rc = MB_ENOMEM;
	af = mb_calloc(np, sizeof(*af));
	buf = mb_malloc(8u << 20);
	if (af == NULL || buf == NULL)
		goto out;
	for (k = 0; k < np; k++)
		af[k].fd = -1;
	fd = open(in, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = mb_err_from_errno(errno);
		mb_seterr(err, errcap, "cannot open '%s': %s", in, strerror(errno));
		goto out;
	}
	for (k = 0; k < np; k++) {
		struct mb_gguf_w *pw = np > 1 ? &sp.parts[k] : &w;

		if (np > 1)
			rc = mb_splitset_part_path(out, (unsigned)k, (unsigned)np,
						   path, sizeof(path));
		else
			rc = snprintf(path, sizeof(path), "%s", out) >=
					     (int)sizeof(path) ? MB_ETOOBIG : 0;
		if (rc == 0)
			rc = mb_afile_open(&af[k], path, 0644);
		if (rc == 0 && ftruncate(af[k].fd, (off_t)pw->file_size) != 0)
			rc = mb_err_from_errno(errno);
		if (rc == 0)
			rc = mb_gguf_w_write_header(pw, af[k].fd);
		if (rc != 0) {
			mb_seterr(err, errcap, "cannot write '%s': %s", path,
				  mb_strerror(rc));
			goto out;
		}
	}
	for (i = 0; i < g->ntensors; i++) {
		const struct mb_gguf_tensor *t = &g->tensors[i];
		size_t p = np > 1 ? sp.part[i] : 0;
		uint64_t off = np > 1 ? sp.offset[i] : w.tensors[i].offset;

		rc = copy_range(fd, t->offset, af[p].fd, off, t->size, buf,
				8u << 20);
		if (rc != 0) {
			mb_seterr(err, errcap, "cannot copy tensor '%s': %s",
				  t->name, rc == MB_EFORMAT ? "the input ends "
				  "before its data" : mb_strerror(rc));
			goto out;
		}
	}
	for (committed = 0; committed < np; committed++) {
		rc = mb_afile_commit(&af[committed]);
		if (rc != 0) {
			mb_seterr(err, errcap, "cannot finish '%s': %s", out,
				  mb_strerror(rc));
			goto out;
		}
	}
	mb_splitset_remove_others(out, (unsigned)np);
	*nparts = (unsigned)np;
	rc = 0;
out:
	for (k = committed; af != NULL && k < np; k++)
		mb_afile_abort(&af[k]);
	free(af);
	free(buf);
	if (fd >= 0)
		close(fd);
	mb_gguf_split_release(&sp);
	if (w_inited)
		mb_gguf_w_release(&w);
	mb_gguf_free(g);
	return rc;
}
