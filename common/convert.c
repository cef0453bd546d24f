/* convert: streaming safetensors -> GGUF conversion. */
#define _GNU_SOURCE /* copy_file_range */
#include "common/clock.h"
#include "common/convert.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/download.h"
#include "common/err.h"
#include "common/family/family.h"
#include "common/fault.h"
#include "common/fs.h"
#include "common/gguf.h"
#include "common/half.h"
#include "common/json.h"
#include "common/log.h"
#include "common/modelcfg.h"
#include "common/readymap.h"
#include "common/safetensors.h"
#include "common/splitset.h"
#include "common/tokenizer.h"
#include "mb_version.h"

/* One unit of work is about this many output bytes: large enough that
 * syscalls are noise, small enough that a few threads' buffers stay far
 * below the 512 MiB the converter may hold. */
#define UNIT_BYTES (8u << 20)
/* A unit is converted and written this much output at a time: the bytes
 * just converted are still in the core's cache when write copies them
 * into the page cache (a whole unit's buffer is not, and that copy from
 * memory cost a third of a bf16 -> f16 conversion). */
#define SLICE_BYTES (128u << 10)
#define MAX_THREADS 16
#define MAX_SMALL_FILE (8u << 20)

int mb_layout_parse(const char *s)
{
	if (strcmp(s, "native") == 0)
		return MB_LAYOUT_NATIVE;
	if (strcmp(s, "split") == 0)
		return MB_LAYOUT_SPLIT;
	return -1;
}

int mb_outtype_parse(const char *s)
{
	if (strcasecmp(s, "f16") == 0)
		return MB_OUT_F16;
	if (strcasecmp(s, "bf16") == 0)
		return MB_OUT_BF16;
	if (strcasecmp(s, "f32") == 0)
		return MB_OUT_F32;
	return -1;
}

/* One output tensor: rows of a source tensor (a slice, maybe permuted),
 * or generated values. */
struct piece {
	char name[96];
	int gtype;
	enum mb_num out;
	const struct mb_st_tensor *src;	/* NULL: gen */
	int shard;			/* the source shard; -1 for gen */
	uint64_t src_off;		/* absolute offset of the source data */
	enum mb_num in;
	uint64_t row0, rows, cols;	/* cols: elements per row */
	uint32_t heads;			/* permute q/k for these heads; 0 none */
	float add;			/* added to every value (f32 out only):
					   Gemma's norms stored as w - 1 */
	float *gen;			/* generated f32 values, rows * cols */
	uint64_t dst_off;		/* absolute offset in the output */
	/* per quantized file made in the pass (struct job's qf): the
	 * tensor's type there (gtype: the output's bytes) and its offset */
	int qtype[MB_CONVERT_MAXQ];
	uint64_t qoff[MB_CONVERT_MAXQ];
};

struct unit {
	size_t piece;
	uint64_t r0, r1;		/* output rows [r0, r1) */
};

struct job {
	struct piece *pieces;
	size_t npieces;
	struct unit *units;
	size_t nunits;
	const int *out_fd;		/* per piece: the file it goes to */
	const int *fds;			/* per shard: open once ready */
	atomic_int *ready;		/* follow: per shard, 1 once its fd is
					   open (NULL: all are) */
	struct follow_shard *sh;	/* follow: per shard, the part of it
					   fetched so far (NULL: not following) */
	atomic_char *taken;		/* follow: per unit, taken by a thread */
	uint64_t *ugen;			/* follow: per unit, the generation of
					   the bytes it read */
	atomic_uint_fast64_t early;	/* source bytes read before their
					   shard was whole */
	atomic_size_t next;
	atomic_uint_fast64_t done;
	atomic_int rc;
	atomic_int exited;		/* threads that have finished */
	char err[512];
	pthread_mutex_t err_mu;
	size_t buf_bytes;		/* per buffer, per thread */
	/* the quantized files written in the same pass */
	struct qfile {
		int fd;
		atomic_uint_fast64_t *left;	/* per ready block: bytes to
						   write */
		size_t nblocks;
	} qf[MB_CONVERT_MAXQ];
	size_t nqf;
	const struct mb_quantizer *qz;
	uint64_t max_cols;		/* the widest quantized row */
};

/* Following a fetch, a shard's bytes can be read before the shard is
 * whole: the part from its start that the fetch has on disk and in its
 * hash (common/download.h). Those bytes are the shard's only when it is
 * verified in the same generation; units that read another are converted
 * again once it is. */
struct follow_shard {
	atomic_uint_fast64_t avail;	/* bytes from the start that can be read */
	atomic_uint_fast64_t gen;	/* their generation */
	uint64_t ino;			/* the file opened before it was whole; 0 none */
	uint64_t final_gen;		/* once ready: the generation verified */
	int redo;			/* once ready: what was read before is not it */
};

/* A quantized file says which of its blocks are final, in PATH.ready,
 * while it is written (common/readymap.h). */
#define READY_BLOCK MB_READY_BLOCK

static enum mb_num num_of_st(enum mb_st_dtype d, int *ok)
{
	*ok = 1;
	switch (d) {
	case MB_ST_F32:
		return MB_NUM_F32;
	case MB_ST_F16:
		return MB_NUM_F16;
	case MB_ST_BF16:
		return MB_NUM_BF16;
	default:
		*ok = 0;
		return MB_NUM_F32;
	}
}

static int gtype_of(enum mb_num n)
{
	return n == MB_NUM_F32 ? MB_GGML_F32
	       : n == MB_NUM_F16 ? MB_GGML_F16
				 : MB_GGML_BF16;
}

/* The source row that output row j of a permuted tensor comes from:
 * llama's converter reshapes to (heads, 2, half, cols), swaps the middle
 * axes and flattens, so output row h*2*half + 2*a + t is source row
 * h*2*half + t*half + a. */
static uint64_t perm_row(uint64_t j, uint64_t rows, uint32_t heads)
{
	uint64_t per = rows / heads, half = per / 2;
	uint64_t h = j / per, r = j % per, a = r / 2, t = r % 2;

	return h * per + t * half + a;
}

static void job_fail(struct job *jb, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void job_fail(struct job *jb, int rc, const char *fmt, ...)
{
	int zero = 0;
	va_list ap;

	pthread_mutex_lock(&jb->err_mu);
	if (atomic_compare_exchange_strong(&jb->rc, &zero, rc)) {
		va_start(ap, fmt);
		vsnprintf(jb->err, sizeof(jb->err), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&jb->err_mu);
}

/* Copies len bytes between files in the kernel. Returns 0, or -1 when
 * the kernel cannot (the caller then reads and writes). */
static int kernel_copy(int in, uint64_t in_off, int out, uint64_t out_off,
		       uint64_t len)
{
	loff_t a = (loff_t)in_off, b = (loff_t)out_off;

	while (len > 0) {
		ssize_t n;

		if (mb_fault_hit(MB_FAULT_WRITE) != 0)
			return -1;
		n = copy_file_range(in, &a, out, &b, (size_t)len, 0);
		if (n <= 0)
			return -1;
		len -= (uint64_t)n;
	}
	return 0;
}

static long page_size(void)
{
	static long ps;

	if (ps == 0)
		ps = sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096;
	return ps;
}

/* Counts [off, off + len) of quantized file f written. */
static void q_mark(struct qfile *f, uint64_t off, uint64_t len)
{
	uint64_t b = off / READY_BLOCK, end = off + len;

	for (; len > 0 && b < f->nblocks && b * READY_BLOCK < end; b++) {
		uint64_t lo = b * READY_BLOCK > off ? b * READY_BLOCK : off;
		uint64_t hi = (b + 1) * READY_BLOCK < end ? (b + 1) * READY_BLOCK
							  : end;

		atomic_fetch_sub(&f->left[b], hi - lo);
	}
}

/* Per thread: the quantized files' buffers. */
struct qbuf {
	float *f;		/* rows as f32 */
	size_t fcap;		/* floats f holds */
	uint8_t *q;		/* quantized rows */
	size_t qcap;		/* bytes q holds */
};

/* Whether some quantized file takes p in another type than the output's. */
static int quantized(const struct job *jb, const struct piece *p)
{
	size_t i;

	for (i = 0; i < jb->nqf; i++)
		if (p->qtype[i] != p->gtype)
			return 1;
	return 0;
}

/* Writes k rows of p, held in the output's type at rows, as rows row0..
 * of each quantized file: the same bytes, or its type's blocks of their
 * values (each row is quantized alone, so any cut of rows makes the
 * bytes llama_model_quantize makes). */
static int q_write(struct job *jb, const struct piece *p, const char *rows,
		   uint64_t k, uint64_t row0, size_t out_row,
		   const struct qbuf *qb)
{
	uint64_t j, b, dst;
	size_t i;
	int rc;

	for (i = 0; i < jb->nqf; i++) {
		struct qfile *f = &jb->qf[i];
		uint64_t qrow = mb_ggml_row_size(p->qtype[i], p->cols);

		if (p->qtype[i] == p->gtype) {
			dst = p->qoff[i] + row0 * out_row;
			rc = mb_pwrite_all(f->fd, rows, k * out_row, dst);
			if (rc != 0)
				return rc;
			q_mark(f, dst, k * out_row);
			continue;
		}
		/* as many rows at a time as both buffers hold */
		for (j = 0; j < k; j += b) {
			b = k - j;
			if (b > qb->fcap / p->cols)
				b = qb->fcap / p->cols;
			if (qrow == 0 || b > qb->qcap / qrow)
				b = qrow ? qb->qcap / qrow : 0;
			if (b == 0)
				return MB_ENOMEM;
			mb_num_convert(MB_NUM_F32, qb->f, p->out,
				       rows + j * out_row, b * p->cols);
			jb->qz->rows(p->qtype[i], qb->f, qb->q, b, p->cols);
			dst = p->qoff[i] + (row0 + j) * qrow;
			rc = mb_pwrite_all(f->fd, qb->q, b * qrow, dst);
			if (rc != 0)
				return rc;
			q_mark(f, dst, b * qrow);
		}
	}
	return 0;
}

/* Converts the rows [u->r0, u->r1) of p from src (the source block, the
 * unit's first row first) and writes them at dst of out, a slice of about
 * SLICE_BYTES at a time, permuting q/k rows when p says so; and to the
 * quantized files when there are some. */
static int convert_write(struct job *jb, const struct piece *p,
			 const struct unit *u, const char *src, char *dbuf,
			 size_t in_row, size_t out_row, int out, uint64_t dst,
			 const struct qbuf *qb)
{
	uint64_t n = u->r1 - u->r0, per = SLICE_BYTES / out_row, r, j;
	int rc;

	if (per == 0)
		per = 1;
	for (r = 0; r < n; r += per) {
		uint64_t k = n - r < per ? n - r : per;

		if (p->heads == 0) {
			mb_num_convert(p->out, dbuf, p->in, src + r * in_row,
				       k * p->cols);
			if (p->add != 0) {
				float *f = (float *)(void *)dbuf;

				for (j = 0; j < k * p->cols; j++)
					f[j] += p->add;
			}
		} else {
			for (j = 0; j < k; j++) {
				uint64_t s = perm_row(u->r0 + r + j, p->rows,
						      p->heads) - u->r0;

				mb_num_convert(p->out, dbuf + j * out_row, p->in,
					       src + s * in_row, p->cols);
			}
		}
		rc = mb_pwrite_all(out, dbuf, k * out_row, dst + r * out_row);
		if (rc == 0)
			rc = q_write(jb, p, dbuf, k, u->r0 + r, out_row, qb);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* The source bytes [off, off + len) of a unit are read once: they leave
 * the page cache, and their pages go to what is read or written next
 * (common/fs.h). The page cache holds a file in folios of up to 2 MiB,
 * and drops only those wholly inside the range: it starts at the 2 MiB
 * boundary before off, so the folio a unit shares with the one before
 * goes too (the units go about front to back; a page still mapped by the
 * other thread stays, one not read yet is read again). */
static void drop_read(int fd, uint64_t off, uint64_t len)
{
	uint64_t start = off & ~((2ull << 20) - 1);

	mb_drop_cached(fd, start, off + len - start);
}

static int do_unit(struct job *jb, const struct unit *u, char *sbuf, char *dbuf,
		   const struct qbuf *qb)
{
	const struct piece *p = &jb->pieces[u->piece];
	size_t in_row = p->cols * mb_num_size(p->in);
	size_t out_row = p->cols * mb_num_size(p->out);
	uint64_t n = u->r1 - u->r0;
	uint64_t dst = p->dst_off + u->r0 * out_row;
	int out = jb->out_fd[u->piece];
	int fd = p->shard >= 0 ? jb->fds[p->shard] : -1;
	size_t got;
	int rc;

	if (p->src == NULL) {
		/* generated values (rope factors): f32 in memory */
		mb_num_convert(p->out, dbuf, MB_NUM_F32, p->gen + u->r0 * p->cols,
			       n * p->cols);
		rc = mb_pwrite_all(out, dbuf, n * out_row, dst);
		return rc != 0 ? rc : q_write(jb, p, dbuf, n, u->r0, out_row, qb);
	}
	if (p->in == p->out && p->heads == 0 && p->add == 0 &&
	    !quantized(jb, p) &&
	    kernel_copy(fd, p->src_off + (p->row0 + u->r0) * in_row,
			out, dst, n * in_row) == 0) {
		size_t i;

		for (i = 0; i < jb->nqf; i++) {
			if (kernel_copy(fd, p->src_off + (p->row0 + u->r0) * in_row,
					jb->qf[i].fd, p->qoff[i] + u->r0 * in_row,
					n * in_row) != 0)
				return MB_EIO;
			q_mark(&jb->qf[i], p->qoff[i] + u->r0 * in_row,
			       n * in_row);
		}
		drop_read(fd, p->src_off + (p->row0 + u->r0) * in_row,
			  n * in_row);
		return 0;
	}
	/* units of permuted pieces cover whole heads, so the source rows of
	 * [r0, r1) are the same contiguous block. Mapped, they are read
	 * straight from the page cache (a copy saved); unmapped after, they
	 * leave the process's memory. The headers were checked against the
	 * shards' sizes when they were opened. */
	{
		uint64_t start = p->src_off + (p->row0 + u->r0) * in_row;
		uint64_t pg = start & ~(uint64_t)(page_size() - 1);
		size_t maplen = (size_t)(n * in_row + (start - pg));
		void *m = mmap(NULL, maplen, PROT_READ, MAP_SHARED | MAP_POPULATE,
			       fd, (off_t)pg);

		if (m != MAP_FAILED) {
			const char *src = (const char *)m + (start - pg);

			madvise(m, maplen, MADV_SEQUENTIAL);
			rc = convert_write(jb, p, u, src, dbuf, in_row, out_row,
					   out, dst, qb);
			munmap(m, maplen);
			drop_read(fd, pg, maplen);
			return rc;
		}
	}
	rc = mb_pread_full(fd, sbuf, n * in_row,
			   p->src_off + (p->row0 + u->r0) * in_row, &got);
	if (rc != 0)
		return rc;
	if (got != n * in_row)
		return MB_EFORMAT; /* the shard is shorter than its header said */
	drop_read(fd, p->src_off + (p->row0 + u->r0) * in_row, n * in_row);
	return convert_write(jb, p, u, sbuf, dbuf, in_row, out_row, out, dst,
			     qb);
}


static uint64_t unit_src_bytes(const struct job *jb, size_t i)
{
	const struct unit *u = &jb->units[i];
	const struct piece *p = &jb->pieces[u->piece];

	return (u->r1 - u->r0) * p->cols * mb_num_size(p->in);
}

/* Whether the source bytes of unit i are here (*gen: their generation):
 * 1 when its shard is verified and opened, 2 when they are in the part of
 * it fetched so far, 0 when not yet. */
static int unit_here(struct job *jb, size_t i, uint64_t *gen)
{
	const struct unit *u = &jb->units[i];
	const struct piece *p = &jb->pieces[u->piece];
	struct follow_shard *sh;
	uint64_t end;

	if (p->shard < 0)
		return 1;
	sh = &jb->sh[p->shard];
	if (atomic_load(&jb->ready[p->shard])) {
		*gen = sh->final_gen;
		return 1;
	}
	if (atomic_load(&sh->avail) == 0)
		return 0;
	/* the generation before the bytes: a start over between the two
	 * reads leaves the old one, and the unit is converted again */
	*gen = atomic_load(&sh->gen);
	end = p->src_off + (p->row0 + u->r1) * p->cols * mb_num_size(p->in);
	return atomic_load(&sh->avail) >= end ? 2 : 0;
}

/* Following a fetch: the first unit not taken whose bytes are here, now
 * this thread's, waiting while there is none; nunits once every unit is
 * taken or the conversion failed. */
static size_t take_unit(struct job *jb)
{
	for (;;) {
		struct timespec ts = { 0, 20 * 1000000L };
		size_t i, left = 0;
		uint64_t gen = 0;
		int here;

		for (i = 0; i < jb->nunits; i++) {
			if (atomic_load(&jb->taken[i]))
				continue;
			left++;
			if ((here = unit_here(jb, i, &gen)) == 0 ||
			    atomic_exchange(&jb->taken[i], 1))
				continue;
			jb->ugen[i] = gen;
			if (here == 2)
				atomic_fetch_add(&jb->early, unit_src_bytes(jb, i));
			return i;
		}
		if (left == 0 || atomic_load(&jb->rc) != 0)
			return jb->nunits;
		nanosleep(&ts, NULL);
	}
}

static void *worker_main(void *arg)
{
	struct job *jb = arg;
	char *sbuf = mb_malloc(jb->buf_bytes), *dbuf = mb_malloc(jb->buf_bytes);
	struct qbuf qb = { NULL, 0, NULL, 0 };

	if (jb->nqf > 0) {
		/* a slice's rows as f32 (twice its bytes from f16), or one
		 * row wider than a slice */
		qb.fcap = 2 * SLICE_BYTES / sizeof(float) + jb->max_cols;
		qb.f = mb_malloc(qb.fcap * sizeof(float));
		qb.qcap = jb->buf_bytes;
		qb.q = mb_malloc(qb.qcap);
	}
	if (sbuf == NULL || dbuf == NULL ||
	    (jb->nqf > 0 && (qb.f == NULL || qb.q == NULL))) {
		job_fail(jb, MB_ENOMEM, "out of memory for conversion buffers");
		goto out;
	}
	while (atomic_load(&jb->rc) == 0) {
		size_t i = jb->sh != NULL ? take_unit(jb)
					  : atomic_fetch_add(&jb->next, 1);
		const struct unit *u;
		const struct piece *p;
		int rc;

		if (i >= jb->nunits || atomic_load(&jb->rc) != 0)
			break;
		u = &jb->units[i];
		p = &jb->pieces[u->piece];
		rc = do_unit(jb, u, sbuf, dbuf, &qb);
		if (rc != 0) {
			job_fail(jb, rc, "tensor '%s' (from '%s'): %s", p->name,
				 p->src ? p->src->name : "generated",
				 rc == MB_EFORMAT ? "the shard ends before the "
						    "data its header describes"
						  : mb_strerror(rc));
			break;
		}
		atomic_fetch_add(&jb->done, (u->r1 - u->r0) * p->cols *
						    mb_num_size(p->out));
	}
out:
	free(sbuf);
	free(dbuf);
	free(qb.f);
	free(qb.q);
	atomic_fetch_add(&jb->exited, 1);
	return NULL;
}

/* --- planning --- */

struct plan {
	struct piece *pieces;
	size_t n, cap;
	int *fds;		/* one per shard, -1 when closed */
	size_t nfds;
};

static struct piece *add_piece(struct plan *pl, const char *name)
{
	struct piece *p;

	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 64;
		void *np = mb_realloc(pl->pieces, cap * sizeof(*pl->pieces));

		if (np == NULL)
			return NULL;
		pl->pieces = np;
		pl->cap = cap;
	}
	p = &pl->pieces[pl->n++];
	memset(p, 0, sizeof(*p));
	p->shard = -1;
	snprintf(p->name, sizeof(p->name), "%s", name);
	return p;
}

/* A piece from rows [row0, row0 + rows) of source tensor name (all rows
 * when rows is 0). 1-D tensors are written as F32. */
static int add_src(struct plan *pl, const struct mb_st_model *m,
		   const char *out_name, const char *src_name, uint64_t row0,
		   uint64_t rows, uint32_t heads, float add, enum mb_num outtype,
		   char *err, size_t errcap)
{
	const struct mb_st_tensor *t = mb_st_model_find(m, src_name);
	struct piece *p;
	int ok;

	if (t == NULL) {
		mb_seterr(err, errcap, "tensor '%s' is missing", src_name);
		return MB_EFORMAT;
	}
	p = add_piece(pl, out_name);
	if (p == NULL)
		return MB_ENOMEM;
	p->src = t;
	p->in = num_of_st(t->dtype, &ok);
	if (!ok) {
		mb_seterr(err, errcap, "tensor '%s' is %s: only F32, F16 and BF16 "
		       "weights can be converted", src_name,
		       mb_st_dtype_name(t->dtype));
		return MB_EUNSUPPORTED;
	}
	if (t->ndim != 1 && t->ndim != 2) {
		mb_seterr(err, errcap, "tensor '%s' has %d dimensions", src_name,
		       t->ndim);
		return MB_EUNSUPPORTED;
	}
	p->shard = t->shard;
	p->src_off = m->files[t->shard]->data_start + t->begin;
	if (t->ndim == 2) {
		p->cols = t->shape[1];
		p->rows = rows ? rows : t->shape[0];
	} else if (heads != 0) {
		/* a permuted bias: rows of one element */
		p->cols = 1;
		p->rows = rows ? rows : t->shape[0];
	} else {
		p->cols = t->shape[0];
		p->rows = 1;
	}
	p->row0 = row0;
	p->heads = heads;
	p->out = t->ndim == 1 ? MB_NUM_F32 : outtype;
	p->gtype = gtype_of(p->out);
	p->add = add;
	if (add != 0 && (p->out != MB_NUM_F32 || heads != 0)) {
		mb_seterr(err, errcap, "tensor '%s' is %d-dimensional: only "
			  "vectors are shifted", src_name, t->ndim);
		return MB_EUNSUPPORTED;
	}
	if (heads != 0 && (p->rows % heads != 0 || (p->rows / heads) % 2 != 0)) {
		mb_seterr(err, errcap, "cannot permute '%s': %llu rows over %u heads",
		       src_name, (unsigned long long)p->rows, heads);
		return MB_EUNSUPPORTED;
	}
	return 0;
}

static int add_gen(struct plan *pl, const char *name, const cJSON *list,
		   uint64_t n, const float *values)
{
	struct piece *p = add_piece(pl, name);
	uint64_t i;

	if (p == NULL)
		return MB_ENOMEM;
	p->gen = mb_malloc(n * sizeof(float));
	if (p->gen == NULL)
		return MB_ENOMEM;
	for (i = 0; i < n; i++)
		p->gen[i] = list ? (float)cJSON_GetArrayItem(list, (int)i)->valuedouble
				 : values[i];
	p->rows = 1;
	p->cols = n;
	p->in = MB_NUM_F32;
	p->out = MB_NUM_F32;
	p->gtype = MB_GGML_F32;
	return 0;
}

static double num(const struct mb_modelcfg *c, enum mb_cfg_key k)
{
	const cJSON *v = c->v[k].value;

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* What a source tensor is shifted by: 1 for a norm's weight when the
 * layout's checkpoints store w - 1, else 0. */
static float shift_of(const struct mb_family_layout *lay, const char *src)
{
	static const char sfx[] = "norm.weight";
	size_t n = strlen(src);

	return lay->norm_plus_one && n >= sizeof(sfx) - 1 &&
			       strcmp(src + n - (sizeof(sfx) - 1), sfx) == 0
		       ? 1.0f
		       : 0.0f;
}

/* The tensors of the output, in file order: the layout's per-layer plan
 * between the embedding and the output norm and head. */
static int plan_tensors(struct plan *pl, const struct mb_st_model *m,
			const struct mb_modelcfg *c,
			const struct mb_family_layout *lay,
			enum mb_num outtype, char *err, size_t errcap)
{
	uint32_t heads = (uint32_t)num(c, MB_CFG_NUM_ATTENTION_HEADS);
	uint32_t kv_heads = (uint32_t)num(c, MB_CFG_NUM_KEY_VALUE_HEADS);
	const struct mb_family_out *t;
	char out[96], src[160], when[160];
	uint64_t l;
	int rc;

#define SRC(o, s, r0, n, hd)                                                   \
	do {                                                                   \
		rc = add_src(pl, m, o, s, r0, n, hd, shift_of(lay, s),         \
			     outtype, err, errcap);                            \
		if (rc != 0)                                                   \
			return rc;                                             \
	} while (0)

	SRC("token_embd.weight", "model.embed_tokens.weight", 0, 0, 0);
	for (l = 0; l < c->layers; l++)
		for (t = lay->tensors; t->gguf != NULL; t++) {
			uint32_t perm = t->perm == MB_PERM_Q    ? heads
					: t->perm == MB_PERM_KV ? kv_heads
								: 0;

			if (t->when != NULL) {
				snprintf(when, sizeof(when), "model.layers.%llu.%s",
					 (unsigned long long)l, t->when);
				if (mb_st_model_find(m, when) == NULL)
					continue;
			}
			snprintf(out, sizeof(out), "blk.%llu.%s",
				 (unsigned long long)l, t->gguf);
			snprintf(src, sizeof(src), "model.layers.%llu.%s",
				 (unsigned long long)l, t->hf);
			SRC(out, src, mb_family_dim(c, t->row0),
			    mb_family_dim(c, t->rows), perm);
		}
	SRC("output_norm.weight", "model.norm.weight", 0, 0, 0);
	if (!c->tied)
		SRC("output.weight", "lm_head.weight", 0, 0, 0);
#undef SRC
	return 0;
}

/* --- metadata --- */

static void size_label(uint64_t params, char *out, size_t cap)
{
	double n = (double)params;

	if (n >= 1e12)
		snprintf(out, cap, "%.0fT", n / 1e12);
	else if (n >= 1e10)
		snprintf(out, cap, "%.0fB", n / 1e9);
	else if (n >= 1e9)
		snprintf(out, cap, "%.1fB", n / 1e9);
	else if (n >= 1e6)
		snprintf(out, cap, "%.0fM", n / 1e6);
	else
		snprintf(out, cap, "%.0fK", n / 1e3);
}

static int has_token(const struct mb_vocab *v, const char *t)
{
	uint64_t i;

	for (i = 0; i < v->n; i++)
		if (strcmp(v->tokens[i], t) == 0)
			return 1;
	return 0;
}

/* general.name: llama.cpp treats a name containing "phi3" or "phi-3" as
 * Phi-3 and then requires </s>, <unk>, <s> and <|endoftext|> in the vocab
 * (it aborts the load otherwise), so such a name is spaced out unless the
 * vocab has them all. */
static void model_name(const struct mb_convert_opts *o, const struct mb_vocab *v,
		       char *out, size_t cap)
{
	const char *base = o->name;
	char *p;

	if (base == NULL && o->source_repo != NULL) {
		base = strrchr(o->source_repo, '/');
		base = base ? base + 1 : o->source_repo;
	}
	if (base == NULL) {
		size_t n = strlen(o->model_dir);

		while (n > 1 && o->model_dir[n - 1] == '/')
			n--;
		snprintf(out, cap, "%.*s", (int)n, o->model_dir);
		p = strrchr(out, '/');
		if (p != NULL)
			memmove(out, p + 1, strlen(p + 1) + 1);
	} else {
		snprintf(out, cap, "%s", base);
	}
	if (has_token(v, "</s>") && has_token(v, "<unk>") && has_token(v, "<s>") &&
	    has_token(v, "<|endoftext|>"))
		return;
	for (p = out; *p; p++) {
		if (strncasecmp(p, "phi-3", 5) == 0)
			p[3] = ' ';
		else if (strncasecmp(p, "phi3", 4) == 0 && strlen(out) + 1 < cap) {
			memmove(p + 4, p + 3, strlen(p + 3) + 1);
			p[3] = ' ';
		}
	}
}

#define KV(call)                                                          \
	do {                                                              \
		rc = (call);                                              \
		if (rc != 0)                                              \
			return rc;                                        \
	} while (0)

static int write_metadata(struct mb_gguf_w *w, const struct mb_convert_opts *o,
			  const struct mb_modelcfg *c, const struct mb_vocab *v,
			  const struct mb_family *fam,
			  const struct mb_family_layout *lay, struct plan *pl,
			  char *err, size_t errcap)
{
	const char *arch = lay->arch;
	int split = lay == fam->split;
	unsigned rope_kind = 0;
	uint32_t heads = (uint32_t)num(c, MB_CFG_NUM_ATTENTION_HEADS);
	uint32_t hd = (uint32_t)(c->q_width / heads);
	const cJSON *rs = c->v[MB_CFG_ROPE_SCALING].value, *type = NULL;
	double rot = c->v[MB_CFG_PARTIAL_ROTARY_FACTOR].value
			     ? num(c, MB_CFG_PARTIAL_ROTARY_FACTOR)
			     : 1.0;
	/* int(head_dim * partial_rotary_factor), as transformers and
	 * modelcfg's longrope check count it: the factor lists have one
	 * number per pair of these */
	uint32_t rope_dims = (uint32_t)(rot * (double)hd);
	char key[128], name[256], label[32], url[300];
	int rc, ftype;

	if (cJSON_IsObject(rs)) {
		type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
		if (!cJSON_IsString(type))
			type = cJSON_GetObjectItemCaseSensitive(rs, "type");
		if (!cJSON_IsString(type)) {
			mb_seterr(err, errcap, "rope_scaling has no type");
			return MB_EUNSUPPORTED;
		}
	}
	if (!(lay->meta & MB_META_PARTIAL_ROTARY) && rot != 1.0) {
		mb_seterr(err, errcap, "the %s layout cannot carry a partial "
		       "rotary factor (%g)%s", lay->name, rot,
		       split ? ": use --layout native" : "");
		return MB_EUNSUPPORTED;
	}
	if (type != NULL) {
		rope_kind = mb_family_rope_kind(type->valuestring);
		if (split && !(lay->rope & rope_kind)) {
			mb_seterr(err, errcap, "the split layout cannot carry "
			       "rope scaling '%s': use --layout native",
			       type->valuestring);
			return MB_EUNSUPPORTED;
		}
		if (!(lay->rope & rope_kind)) {
			mb_seterr(err, errcap, "rope scaling '%s' is not "
			       "supported for %s", type->valuestring,
			       fam->display);
			return MB_EUNSUPPORTED;
		}
	}
	model_name(o, v, name, sizeof(name));
	size_label(c->params, label, sizeof(label));
	ftype = o->outtype == MB_OUT_F32 ? 0 : o->outtype == MB_OUT_F16 ? 1 : 32;
	KV(mb_gguf_w_str(w, "general.architecture", arch));
	KV(mb_gguf_w_u32(w, "general.quantization_version", 2));
	KV(mb_gguf_w_u32(w, "general.alignment", MB_GGUF_DEFAULT_ALIGNMENT));
	KV(mb_gguf_w_str(w, "general.name", name));
	KV(mb_gguf_w_str(w, "general.size_label", label));
	KV(mb_gguf_w_u32(w, "general.file_type", (uint32_t)ftype));
	if (o->source_repo != NULL) {
		snprintf(url, sizeof(url), "https://huggingface.co/%s", o->source_repo);
		KV(mb_gguf_w_str(w, "general.source.url", url));
		KV(mb_gguf_w_str(w, "general.source.huggingface.repository",
				 o->source_repo));
	}
	if (o->source_commit != NULL)
		KV(mb_gguf_w_str(w, "mibera.source.commit", o->source_commit));
	KV(mb_gguf_w_str(w, "mibera.version", MB_VERSION));
	KV(mb_gguf_w_str(w, "mibera.layout", lay->name));
	KV(mb_gguf_w_u32(w, "mibera.config_repairs", (uint32_t)mb_modelcfg_nrepairs(c)));

#define AK(suffix) (snprintf(key, sizeof(key), "%s." suffix, arch), key)
	KV(mb_gguf_w_u32(w, AK("context_length"),
			 (uint32_t)num(c, MB_CFG_MAX_POSITION_EMBEDDINGS)));
	KV(mb_gguf_w_u32(w, AK("embedding_length"), (uint32_t)c->hidden));
	KV(mb_gguf_w_u32(w, AK("feed_forward_length"), (uint32_t)c->ff));
	KV(mb_gguf_w_u32(w, AK("block_count"), (uint32_t)c->layers));
	KV(mb_gguf_w_u32(w, AK("attention.head_count"), heads));
	KV(mb_gguf_w_u32(w, AK("attention.head_count_kv"),
			 (uint32_t)num(c, MB_CFG_NUM_KEY_VALUE_HEADS)));
	KV(mb_gguf_w_f32(w, AK("attention.layer_norm_rms_epsilon"),
			 (float)num(c, MB_CFG_RMS_NORM_EPS)));
	KV(mb_gguf_w_f32(w, AK("rope.freq_base"), (float)num(c, MB_CFG_ROPE_THETA)));
	KV(mb_gguf_w_u32(w, AK("rope.dimension_count"), rope_dims));
	if (lay->meta & MB_META_VOCAB_SIZE)
		KV(mb_gguf_w_u32(w, AK("vocab_size"), (uint32_t)c->vocab_rows));
	if ((lay->meta & MB_META_HEAD_LENGTHS) && hd * heads != c->hidden) {
		KV(mb_gguf_w_u32(w, AK("attention.key_length"), hd));
		KV(mb_gguf_w_u32(w, AK("attention.value_length"), hd));
	}
	if (lay->meta & MB_META_ORIG_CONTEXT)
		KV(mb_gguf_w_u32(w, AK("rope.scaling.original_context_length"),
				 (uint32_t)num(c, MB_CFG_ORIGINAL_MAX_POSITION_EMBEDDINGS)));
	if (lay->meta & MB_META_SLIDING_WINDOW) {
		const cJSON *sw = c->v[MB_CFG_SLIDING_WINDOW].value;

		/* 0 when null: how llama.cpp tells Phi-4 from Phi-3 */
		KV(mb_gguf_w_u32(w, AK("attention.sliding_window"),
				 cJSON_IsNumber(sw) ? (uint32_t)sw->valuedouble : 0));
	}
	if (lay->meta & MB_META_SWA_LAYERS) {
		/* llama.cpp reads a per-layer list as it is; a number would
		 * be a period (its default is 6, Gemma 3's) */
		const cJSON *sw = c->v[MB_CFG_SLIDING_WINDOW].value;
		unsigned char *swa = mb_calloc(c->layers ? c->layers : 1, 1);
		size_t nswa;

		if (swa == NULL)
			return MB_ENOMEM;
		nswa = mb_modelcfg_swa_layers(c, swa);
		if (nswa > 0 && !cJSON_IsNumber(sw)) {
			free(swa);
			mb_seterr(err, errcap, "%zu sliding layers and no "
				  "sliding_window", nswa);
			return MB_EUNSUPPORTED;
		}
		/* no window at all: llama.cpp's gemma3 then attends over
		 * everything in every layer, with rope_theta */
		rc = 0;
		if (nswa > 0) {
			rc = mb_gguf_w_u32(w, AK("attention.sliding_window"),
					   (uint32_t)sw->valuedouble);
			if (rc == 0)
				rc = mb_gguf_w_arr(w,
					AK("attention.sliding_window_pattern"),
					MB_GGUF_BOOL, swa, c->layers);
			if (rc == 0)
				rc = mb_gguf_w_f32(w, AK("rope.freq_base_swa"),
					(float)num(c, MB_CFG_ROPE_LOCAL_BASE_FREQ));
		}
		free(swa);
		if (rc != 0)
			return rc;
	}
	if ((lay->meta & MB_META_FINAL_SOFTCAP) &&
	    cJSON_IsNumber(c->v[MB_CFG_FINAL_LOGIT_SOFTCAPPING].value))
		KV(mb_gguf_w_f32(w, AK("final_logit_softcapping"),
				 (float)num(c, MB_CFG_FINAL_LOGIT_SOFTCAPPING)));
	if (rope_kind == MB_ROPE_LONGROPE) {
		double orig = num(c, MB_CFG_ORIGINAL_MAX_POSITION_EMBEDDINGS);
		double scale = num(c, MB_CFG_MAX_POSITION_EMBEDDINGS) / orig;
		double attn = 1.0;

		if (scale > 1.0)
			attn = sqrt(1 + log(scale) / log(orig));
		KV(mb_gguf_w_f32(w, AK("rope.scaling.attn_factor"), (float)attn));
		KV(add_gen(pl, "rope_factors_long.weight",
			   cJSON_GetObjectItemCaseSensitive(rs, "long_factor"),
			   rope_dims / 2, NULL));
		KV(add_gen(pl, "rope_factors_short.weight",
			   cJSON_GetObjectItemCaseSensitive(rs, "short_factor"),
			   rope_dims / 2, NULL));
	} else if (rope_kind == MB_ROPE_LLAMA3) {
		/* llama.cpp takes Llama 3's frequency scaling as a tensor of
		 * per-pair factors, computed as the reference converter does */
		double base = num(c, MB_CFG_ROPE_THETA);
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(rs, "factor");
		const cJSON *lo = cJSON_GetObjectItemCaseSensitive(rs, "low_freq_factor");
		const cJSON *hi = cJSON_GetObjectItemCaseSensitive(rs, "high_freq_factor");
		const cJSON *oc = cJSON_GetObjectItemCaseSensitive(
			rs, "original_max_position_embeddings");
		double factor = cJSON_IsNumber(f) ? f->valuedouble : 8.0;
		double lf = cJSON_IsNumber(lo) ? lo->valuedouble : 1.0;
		double hf = cJSON_IsNumber(hi) ? hi->valuedouble : 4.0;
		double old = cJSON_IsNumber(oc) ? oc->valuedouble : 8192;
		float vals[512];
		uint32_t i;

		if (hd / 2 > 512 || hf == lf) {
			mb_seterr(err, errcap, "llama3 rope scaling with head "
			       "size %u or equal frequency factors", hd);
			return MB_EUNSUPPORTED;
		}
		for (i = 0; i < hd / 2; i++) {
			double freq = 1.0 / pow(base, (2.0 * i) / hd);
			double wl = 2 * M_PI / freq;

			if (wl < old / hf)
				vals[i] = 1;
			else if (wl > old / lf)
				vals[i] = (float)factor;
			else {
				double s = (old / wl - lf) / (hf - lf);

				vals[i] = (float)(1 / ((1 - s) / factor + s));
			}
		}
		KV(add_gen(pl, "rope_freqs.weight", NULL, hd / 2, vals));
	} else if (rope_kind == MB_ROPE_LINEAR) {
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(rs, "factor");

		if (!cJSON_IsNumber(f) || !(f->valuedouble > 0)) {
			mb_seterr(err, errcap, "linear rope scaling needs a "
			       "positive factor");
			return MB_EUNSUPPORTED;
		}
		KV(mb_gguf_w_str(w, AK("rope.scaling.type"), "linear"));
		KV(mb_gguf_w_f32(w, AK("rope.scaling.factor"),
				 (float)f->valuedouble));
	} else if (rope_kind == MB_ROPE_YARN) {
		/* llama.cpp's generic keys, as its reference converter writes
		 * them for Qwen2 and Qwen3: the context stays
		 * max_position_embeddings, the YaRN attention factor is
		 * computed at load */
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(rs, "factor");
		const cJSON *oc = cJSON_GetObjectItemCaseSensitive(
			rs, "original_max_position_embeddings");

		if (!cJSON_IsNumber(f) || !(f->valuedouble > 0) ||
		    !cJSON_IsNumber(oc) || !(oc->valuedouble >= 1)) {
			mb_seterr(err, errcap, "yarn rope scaling needs a "
			       "positive factor and "
			       "original_max_position_embeddings");
			return MB_EUNSUPPORTED;
		}
		KV(mb_gguf_w_str(w, AK("rope.scaling.type"), "yarn"));
		KV(mb_gguf_w_f32(w, AK("rope.scaling.factor"),
				 (float)f->valuedouble));
		KV(mb_gguf_w_u32(w, AK("rope.scaling.original_context_length"),
				 (uint32_t)oc->valuedouble));
	}
#undef AK
	return mb_vocab_to_gguf(v, w);
}
#undef KV

/* --- the conversion --- */

static char *read_small(const char *dir, const char *name, size_t *len)
{
	char path[4200];
	char *data = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	*len = 0;
	if (mb_read_file(path, MAX_SMALL_FILE, &data, len) != 0)
		return NULL;
	return data;
}

/* Splits every piece into units of about UNIT_BYTES, whole heads for
 * permuted pieces. */
static int make_units(struct job *jb)
{
	size_t i, n = 0, cap = 0;
	struct unit *u = NULL;

	jb->buf_bytes = 0;
	for (i = 0; i < jb->npieces; i++) {
		const struct piece *p = &jb->pieces[i];
		size_t row = p->cols * (mb_num_size(p->in) > mb_num_size(p->out)
						? mb_num_size(p->in)
						: mb_num_size(p->out));
		uint64_t step = UNIT_BYTES / (row ? row : 1), r;

		if (step == 0)
			step = 1;
		if (p->heads != 0) {
			uint64_t per = p->rows / p->heads;

			step = step < per ? per : step - step % per;
		}
		if (step * row > jb->buf_bytes)
			jb->buf_bytes = step * row;
		for (r = 0; r < p->rows; r += step) {
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 256;
				void *q = mb_realloc(u, nc * sizeof(*u));

				if (q == NULL) {
					free(u);
					return MB_ENOMEM;
				}
				u = q;
				cap = nc;
			}
			u[n].piece = i;
			u[n].r0 = r;
			u[n].r1 = r + step < p->rows ? r + step : p->rows;
			n++;
		}
	}
	jb->units = u;
	jb->nunits = n;
	return 0;
}

/* --- follow: converting while the download runs ---
 *
 * The plan is made from the side headers the fetch wrote before the data
 * (common/download.h), which are byte for byte the shards' first bytes,
 * so the GGUF is the one a conversion after the download writes. A shard
 * is taken only once it is in the model directory, where the fetch links
 * it after verifying it, and only when its size and header are the ones
 * planned from. */

struct follow {
	const struct mb_convert_opts *o;
	const struct mb_st_model *m;
	int *fds;
	atomic_int *ready;
	struct follow_shard *sh;
	size_t nready;
	char state[4200];	/* the fetch's state file */
	char hdir[4200];	/* the side headers */
	double since;		/* when following began */
	char commit[41];	/* the commit the fetch brings */
};

/* Waits this long for a fetch whose state file is not rewritten: it
 * rewrites it every second while it runs, so minutes of silence mean it
 * stopped without a word (killed, or its box lost). */
#define FOLLOW_TIMEOUT_S 300.0

/* 0 while the download runs (or is done: *done set), else why the
 * conversion stops, in err. */
static int follow_state(struct follow *fw, int *done, char *err, size_t errcap)
{
	double limit = fw->o->follow_timeout_s > 0 ? fw->o->follow_timeout_s
						   : FOLLOW_TIMEOUT_S;
	struct mb_download_state st;
	int rc = mb_download_state_read(fw->state, &st);

	*done = rc == 0 && strcmp(st.state, "done") == 0;
	if (rc == 0 && strcmp(st.state, "failed") == 0 && st.permanent) {
		mb_seterr(err, errcap, "the download failed: %s", st.message);
		return MB_EIO;
	}
	if (*done || (rc == 0 && st.age_s <= limit) ||
	    (rc != 0 && mb_now_s() - fw->since <= limit))
		return 0;
	if (rc == 0 && strcmp(st.state, "failed") == 0)
		mb_seterr(err, errcap, "the download failed and was not started "
			  "again within %.0f s: %s", limit, st.message);
	else
		mb_seterr(err, errcap, "the download has not moved for %.0f s "
			  "('%s' is not being rewritten): it stopped; run the "
			  "fetch again", limit, fw->state);
	return MB_ETIMEDOUT;
}

/* 1 when the shard at path has the size and the header that hdr, read
 * from side (the side header), says. */
static int shard_matches(const char *path, const char *side,
			 const struct mb_st_file *hdr, char *why, size_t cap)
{
	size_t n = (size_t)(8 + hdr->header_len), got1 = 0, got2 = 0;
	char *a = mb_malloc(n), *b = mb_malloc(n);
	struct stat sb;
	int fa = -1, fb = -1, ok = 0;

	if (a == NULL || b == NULL) {
		mb_seterr(why, cap, "out of memory");
		goto out;
	}
	if (stat(path, &sb) != 0 || (uint64_t)sb.st_size != hdr->file_size) {
		mb_seterr(why, cap, "it is %lld bytes, its header said %llu",
			  (long long)sb.st_size,
			  (unsigned long long)hdr->file_size);
		goto out;
	}
	fa = open(path, O_RDONLY | O_CLOEXEC);
	fb = open(side, O_RDONLY | O_CLOEXEC);
	if (fa < 0 || fb < 0 || mb_pread_full(fa, a, n, 0, &got1) != 0 ||
	    mb_pread_full(fb, b, n, 0, &got2) != 0 || got1 != n || got2 != n) {
		mb_seterr(why, cap, "cannot read its header: %s", strerror(errno));
		goto out;
	}
	if (memcmp(a, b, n) != 0) {
		mb_seterr(why, cap, "its header differs from the one the "
			  "conversion was planned from");
		goto out;
	}
	ok = 1;
out:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	free(a);
	free(b);
	return ok;
}

/* Shard i while the fetch brings it: opens the fetch's link to it (once)
 * and says how much of it, from its start, can be read now, and in
 * which generation. */
static void follow_prefix(struct follow *fw, size_t i)
{
	struct follow_shard *sh = &fw->sh[i];
	struct mb_download_prefix pr;
	char side[4800], path[4900];
	struct stat sb;
	int fd;

	if ((size_t)snprintf(side, sizeof(side), "%s/%s", fw->hdir,
			     fw->m->shards[i]) >= sizeof(side) ||
	    mb_download_prefix_read(side, &pr) != 0 || pr.verified)
		return;
	if (fw->fds[i] < 0) {
		snprintf(path, sizeof(path), "%s%s", side, MB_DOWNLOAD_PARTIAL);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return;
		if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_ino != pr.ino ||
		    (uint64_t)sb.st_size != fw->m->files[i]->file_size) {
			close(fd);
			return;
		}
		sh->ino = pr.ino;
		fw->fds[i] = fd;
	} else if (pr.ino != sh->ino) {
		return; /* another file now: the verified shard is waited for */
	}
	if (atomic_load(&sh->gen) != pr.gen) {
		atomic_store(&sh->avail, 0);
		atomic_store(&sh->gen, pr.gen);
	}
	atomic_store(&sh->avail, pr.bytes);
}

/* Opens every shard that has arrived in the model directory since the
 * last call. 0, or why the conversion stops (err). */
static int follow_poll(struct follow *fw, char *err, size_t errcap)
{
	char path[4200], side[4800], why[256];
	int done, rc;
	size_t i;

	rc = follow_state(fw, &done, err, errcap);
	for (i = 0; rc == 0 && i < fw->m->nshards; i++) {
		if (atomic_load(&fw->ready[i]))
			continue;
		snprintf(path, sizeof(path), "%s/%s", fw->o->model_dir,
			 fw->m->shards[i]);
		if (access(path, F_OK) != 0) {
			follow_prefix(fw, i);
			if (done) {
				mb_seterr(err, errcap, "the download finished "
					  "without '%s'", fw->m->shards[i]);
				rc = MB_EFORMAT;
			}
			continue;
		}
		if ((size_t)snprintf(side, sizeof(side), "%s/%s", fw->hdir,
				     fw->m->shards[i]) >= sizeof(side)) {
			mb_seterr(err, errcap, "the path of '%s' is too long",
				  fw->m->shards[i]);
			rc = MB_ETOOBIG;
			break;
		}
		if (!shard_matches(path, side, fw->m->files[i], why,
				   sizeof(why))) {
			mb_seterr(err, errcap, "shard '%s' is not the one the "
				  "conversion was planned from: %s",
				  fw->m->shards[i], why);
			rc = MB_EFORMAT;
			break;
		}
		if (fw->fds[i] >= 0) {
			/* read before it was whole: the same file, verified in
			 * the generation read, or its units are done again */
			struct follow_shard *sh = &fw->sh[i];
			struct mb_download_prefix pr;
			struct stat sb;

			sh->redo = stat(path, &sb) != 0 ||
				   (uint64_t)sb.st_ino != sh->ino ||
				   mb_download_prefix_read(side, &pr) != 0 ||
				   !pr.verified || pr.ino != sh->ino;
			sh->final_gen = sh->redo ? 0 : pr.gen;
			atomic_store(&fw->ready[i], 1);
			fw->nready++;
			continue;
		}
		fw->fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fw->fds[i] < 0) {
			rc = mb_err_from_errno(errno);
			mb_seterr(err, errcap, "cannot open '%s': %s", path,
				  strerror(errno));
			break;
		}
		posix_fadvise(fw->fds[i], 0, 0, POSIX_FADV_SEQUENTIAL);
		atomic_store(&fw->ready[i], 1);
		fw->nready++;
	}
	return rc;
}

/* Waits for the fetch to have written the headers (and the small files):
 * 0, or why not (err). */
static int follow_wait_headers(struct follow *fw, char *err, size_t errcap)
{
	for (;;) {
		struct mb_download_state st;
		struct timespec ts = { 0, 100 * 1000000L };
		int done, rc;

		if (mb_download_state_read(fw->state, &st) == 0 &&
		    (strcmp(st.state, "headers") == 0 ||
		     strcmp(st.state, "done") == 0)) {
			memcpy(fw->commit, st.commit, sizeof(fw->commit));
			return 0;
		}
		rc = follow_state(fw, &done, err, errcap);
		if (rc != 0)
			return rc;
		nanosleep(&ts, NULL);
	}
}

static uint64_t unit_src(const struct job *jb, const struct unit *u)
{
	const struct piece *p = &jb->pieces[u->piece];

	return p->src_off + (p->row0 + u->r0) * p->cols * mb_num_size(p->in);
}

static int by_arrival(const void *a, const void *b, void *ctx)
{
	const struct job *jb = ctx;
	const struct unit *x = a, *y = b;
	int sx = jb->pieces[x->piece].shard, sy = jb->pieces[y->piece].shard;
	uint64_t ox = unit_src(jb, x), oy = unit_src(jb, y);

	if (sx != sy)
		return sx < sy ? -1 : 1;
	return ox < oy ? -1 : ox > oy;
}

/* The units in the order the bytes arrive: by shard (generated pieces
 * first), each shard's from its start; and their state for the threads
 * that take them as their bytes come (take_unit). */
static int units_by_arrival(struct job *jb)
{
	jb->taken = mb_calloc(jb->nunits + 1, sizeof(*jb->taken));
	jb->ugen = mb_calloc(jb->nunits + 1, sizeof(*jb->ugen));
	if (jb->taken == NULL || jb->ugen == NULL)
		return MB_ENOMEM;
	qsort_r(jb->units, jb->nunits, sizeof(*jb->units), by_arrival, jb);
	return 0;
}

/* Once every shard is verified: the units that read bytes of another
 * generation than the verified one (the fetch started the shard over,
 * or ran again), or of another file, converted again from the shard. */
static int redo_stale(struct job *jb, struct follow *fw, uint64_t *redone,
		      char *err, size_t errcap)
{
	size_t i, n = 0, s;

	for (i = 0; i < jb->nunits; i++) {
		const struct piece *p = &jb->pieces[jb->units[i].piece];
		int stale = p->shard >= 0 &&
			    (fw->sh[p->shard].redo ||
			     jb->ugen[i] != fw->sh[p->shard].final_gen);

		atomic_store(&jb->taken[i], !stale);
		n += (size_t)stale;
		if (stale) {
			*redone += unit_src_bytes(jb, i);
			/* counted again as they are done again */
			atomic_fetch_sub(&jb->done, (jb->units[i].r1 -
						     jb->units[i].r0) * p->cols *
						    mb_num_size(p->out));
		}
	}
	if (n == 0)
		return 0;
	for (s = 0; s < fw->m->nshards; s++) {
		char path[4200];

		if (!fw->sh[s].redo)
			continue;
		snprintf(path, sizeof(path), "%s/%s", fw->o->model_dir,
			 fw->m->shards[s]);
		close(fw->fds[s]);
		fw->fds[s] = open(path, O_RDONLY | O_CLOEXEC);
		if (fw->fds[s] < 0) {
			mb_seterr(err, errcap, "cannot open '%s': %s", path,
				  strerror(errno));
			return mb_err_from_errno(errno);
		}
		fw->sh[s].redo = 0;
	}
	mb_log(MB_LOG_WARN, "convert: %zu parts were read from a shard that "
	       "changed before it was verified (the fetch started it over): "
	       "converting them again from the verified shard", n);
	/* the blocks rewritten are final again only when the file is */
	for (i = 0; i < jb->nqf; i++)
		jb->qf[i].nblocks = 0;
	atomic_store(&jb->exited, 0);
	worker_main(jb);
	if (atomic_load(&jb->rc) != 0)
		mb_seterr(err, errcap, "%s", jb->err);
	return atomic_load(&jb->rc);
}

/* --- the quantized files written in the same pass (common/convert.h) --- */

static int layer_of(const char *name)
{
	int l;

	return sscanf(name, "blk.%d.", &l) == 1 ? l : -1;
}

static int by_loader_order(const void *a, const void *b, void *ctx)
{
	const struct piece *pa = &((const struct piece *)ctx)[*(const size_t *)a];
	const struct piece *pb = &((const struct piece *)ctx)[*(const size_t *)b];
	int la = layer_of(pa->name), lb = layer_of(pb->name);

	return la != lb ? (la < lb ? -1 : 1) : strcmp(pa->name, pb->name);
}

/* The dimensions piece p has in the file. */
static uint32_t piece_shape(const struct piece *p, uint64_t ne[2])
{
	if (p->src == NULL || p->src->ndim == 1) {
		ne[0] = p->rows * p->cols;
		return 1;
	}
	ne[0] = p->cols;
	ne[1] = p->rows;
	return 2;
}

/* One quantized file as mb_convert holds it while it is written. */
struct qout {
	const struct mb_convert_quant *q;
	size_t slot;			/* in struct job's qf, pieces' qtype */
	struct mb_gguf_w w;
	int w_inited, open;
	struct mb_afile af;
	char ready[4300];		/* PATH.ready */
	char *last;			/* the map as last written */
};

/* Lays out in qo->w the quantized file of the output whose header is at
 * the start of the file at path (w laid out), with the quantizer's type
 * for each tensor, and each piece's type and place in it. 0;
 * MB_EUNSUPPORTED with why when the file is not made in the pass; other
 * errors. */
static int quant_plan(struct plan *pl, const struct mb_gguf_w *w,
		      const char *path, const struct mb_quantizer *qz,
		      struct qout *qo, char *why, size_t cap)
{
	struct mb_gguf *g = NULL;
	size_t *idx = NULL, k, got, s = qo->slot;
	const char **names = NULL;
	int *types = NULL;
	char *hdr = mb_malloc(w->data_start);
	uint64_t i;
	int rc = MB_ENOMEM;

	if (hdr == NULL || (idx = mb_calloc(pl->n + 1, sizeof(*idx))) == NULL ||
	    (names = mb_calloc(pl->n + 1, sizeof(*names))) == NULL ||
	    (types = mb_calloc(pl->n + 1, sizeof(*types))) == NULL)
		goto out;
	{
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		rc = fd < 0 ? mb_err_from_errno(errno)
			    : mb_pread_full(fd, hdr, w->data_start, 0, &got);
		if (fd >= 0)
			close(fd);
	}
	if (rc == 0 && got != w->data_start)
		rc = MB_EIO;
	if (rc == 0)
		rc = mb_gguf_parse(hdr, got, w->file_size, &g, why, cap);
	for (k = 0; k < pl->n; k++)
		names[k] = pl->pieces[k].name;
	if (rc == 0)
		rc = qz->plan(qz->ctx, path, qo->q->ftype, pl->n, names, types,
			      why, cap);
	if (rc != 0)
		goto out;
	rc = mb_gguf_w_init(&qo->w, MB_GGUF_DEFAULT_ALIGNMENT);
	qo->w_inited = rc == 0;
	for (i = 0; rc == 0 && i < g->n_kv; i++)
		if (strcmp(g->kv[i].key, "general.quantization_version") != 0 &&
		    strcmp(g->kv[i].key, "general.file_type") != 0)
			rc = mb_gguf_w_copy_kv(&qo->w, &g->kv[i]);
	if (rc == 0)
		rc = mb_gguf_w_u32(&qo->w, "general.quantization_version", 2);
	if (rc == 0)
		rc = mb_gguf_w_u32(&qo->w, "general.file_type",
				   (uint32_t)qo->q->ftype);
	for (k = 0; k < pl->n; k++)
		idx[k] = k;
	qsort_r(idx, pl->n, sizeof(*idx), by_loader_order, pl->pieces);
	for (k = 0; rc == 0 && k < pl->n; k++) {
		struct piece *p = &pl->pieces[idx[k]];
		uint64_t ne[2];
		uint32_t nd = piece_shape(p, ne);

		p->qtype[s] = types[idx[k]];
		if (p->qtype[s] != p->gtype &&
		    (nd != 2 || mb_ggml_row_size(p->qtype[s], p->cols) == 0)) {
			mb_seterr(why, cap, "'%s' would be %s, which mibera cannot "
				  "make of its rows of %llu", p->name,
				  mb_ggml_type_name(p->qtype[s])
					  ? mb_ggml_type_name(p->qtype[s]) : "?",
				  (unsigned long long)p->cols);
			rc = MB_EUNSUPPORTED;
			break;
		}
		rc = mb_gguf_w_tensor(&qo->w, p->name, p->qtype[s], nd, ne);
		rc = rc < 0 ? rc : 0;
	}
	if (rc == 0)
		rc = mb_gguf_w_layout(&qo->w);
	for (k = 0; rc == 0 && k < pl->n; k++)
		pl->pieces[idx[k]].qoff[s] = qo->w.tensors[k].offset;
out:
	mb_gguf_free(g);
	free(hdr);
	free(idx);
	free(names);
	free(types);
	return rc;
}

/* Rewrites qo's PATH.ready when a block became final since last (the
 * bitmap as it was written, nblocks + 1 bytes). */
static void q_ready(const struct qfile *f, struct qout *qo)
{
	char *bits = mb_malloc(f->nblocks + 1);
	size_t b;

	if (bits == NULL)
		return;
	for (b = 0; b < f->nblocks; b++)
		bits[b] = atomic_load(&f->left[b]) == 0 ? '1' : '0';
	if (memcmp(bits, qo->last, f->nblocks) != 0 &&
	    mb_ready_write(qo->ready, qo->w.file_size, bits, f->nblocks) == 0)
		memcpy(qo->last, bits, f->nblocks);
	free(bits);
}

/* Creates qo's file at its full size with its header, and its ready map
 * with nothing final, as file f of jb. 0, or an error in err. */
static int quant_open(struct job *jb, struct plan *pl, struct qout *qo,
		      struct qfile *f, char *err, size_t errcap)
{
	uint64_t b, i;
	int e, rc;

	snprintf(qo->ready, sizeof(qo->ready), "%s.ready", qo->q->path);
	rc = mb_afile_open(&qo->af, qo->q->path, 0644);
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot create '%s.part': %s",
			  qo->q->path, mb_strerror(rc));
		return rc;
	}
	qo->open = 1;
	e = posix_fallocate(qo->af.fd, 0, (off_t)qo->w.file_size);
	if (e == EOPNOTSUPP || e == EINVAL)
		e = ftruncate(qo->af.fd, (off_t)qo->w.file_size) == 0 ? 0 : errno;
	rc = e != 0 ? mb_err_from_errno(e)
		    : mb_gguf_w_write_header(&qo->w, qo->af.fd);
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot write '%s': %s", qo->q->path,
			  mb_strerror(rc));
		return rc;
	}
	f->nblocks = (size_t)((qo->w.file_size + READY_BLOCK - 1) / READY_BLOCK);
	f->left = mb_calloc(f->nblocks + 1, sizeof(*f->left));
	qo->last = mb_calloc(f->nblocks + 1, 1);
	if (f->left == NULL || qo->last == NULL)
		return MB_ENOMEM;
	for (b = 0; b < f->nblocks; b++)
		atomic_init(&f->left[b], 0);
	for (i = 0; i < pl->n; i++) {
		const struct piece *p = &pl->pieces[i];
		uint64_t off = p->qoff[qo->slot], len, end;
		uint64_t qrow = p->qtype[qo->slot] == p->gtype
					? p->cols * mb_num_size(p->out)
					: mb_ggml_row_size(p->qtype[qo->slot], p->cols);

		len = p->rows * qrow;
		end = off + len;
		for (b = off / READY_BLOCK; len > 0 && b * READY_BLOCK < end; b++) {
			uint64_t lo = b * READY_BLOCK > off ? b * READY_BLOCK : off;
			uint64_t hi = (b + 1) * READY_BLOCK < end
					      ? (b + 1) * READY_BLOCK : end;

			atomic_fetch_add(&f->left[b], hi - lo);
		}
		if (p->qtype[qo->slot] != p->gtype && p->cols > jb->max_cols)
			jb->max_cols = p->cols;
	}
	f->fd = qo->af.fd;
	q_ready(f, qo);
	return 0;
}

static int ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

int mb_convert(const struct mb_convert_opts *o, struct mb_convert_result *r,
	       char *err, size_t errcap)
{
	struct mb_st_model *m = NULL;
	struct mb_modelcfg *c = NULL;
	struct mb_vocab *v = NULL;
	struct mb_gguf_w w;
	struct mb_gguf_split sp;
	struct mb_afile *af = NULL;
	int *piece_fd = NULL;
	struct plan pl;
	struct job jb;
	pthread_t th[MAX_THREADS];
	char *cfg = NULL, *card = NULL, sub[512], dir[4096], *slash;
	const struct mb_family *fam;
	const struct mb_family_layout *lay;
	size_t cfg_len, card_len, i;
	uint64_t total = 0, avail, need = 0;
	size_t np = 1, k, committed = 0;
	int rc, nth = 0, started = 0, w_inited = 0, af_open = 0;
	struct follow fw;
	struct mb_convert_opts with_commit;
	struct qout *qo = NULL;
	size_t nqo = 0, qi;
	double t0;

	memset(r, 0, sizeof(*r));
	memset(&pl, 0, sizeof(pl));
	memset(&jb, 0, sizeof(jb));
	memset(&sp, 0, sizeof(sp));
	memset(&fw, 0, sizeof(fw));
	pthread_mutex_init(&jb.err_mu, NULL);
	t0 = mb_now_s();

	if (o->follow) {
		fw.o = o;
		fw.since = t0;
		snprintf(fw.state, sizeof(fw.state), "%s/%s", o->model_dir,
			 MB_DOWNLOAD_STATE);
		snprintf(fw.hdir, sizeof(fw.hdir), "%s/%s/headers", o->model_dir,
			 MB_DOWNLOAD_SIDE);
		rc = follow_wait_headers(&fw, err, errcap);
		if (rc != 0)
			goto out;
		/* started before the fetch resolved the revision: the commit
		 * it fetches is in its state */
		if (o->source_repo != NULL && o->source_commit == NULL &&
		    fw.commit[0] != '\0') {
			with_commit = *o;
			with_commit.source_commit = fw.commit;
			o = &with_commit;
			fw.o = o;
		}
		rc = mb_st_model_open_headers(o->model_dir, fw.hdir, &m, sub,
					      sizeof(sub));
	} else {
		rc = mb_st_model_open_dir(o->model_dir, &m, sub, sizeof(sub));
	}
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot read the model in '%s': %s",
		       o->model_dir, sub);
		goto out;
	}
	cfg = read_small(o->model_dir, "config.json", &cfg_len);
	card = read_small(o->model_dir, "README.md", &card_len);
	rc = mb_modelcfg_infer_user(m, cfg, cfg_len, card, card_len,
				    o->base_config, o->base_config_len, o->user,
				    &c, sub, sizeof(sub));
	if (rc != 0) {
		mb_seterr(err, errcap, "%s", sub);
		goto out;
	}
	if (!c->convertible) {
		mb_seterr(err, errcap, "cannot convert: %s", c->reason);
		rc = MB_EUNSUPPORTED;
		goto out;
	}
	fam = mb_family_get(c->family);
	lay = mb_family_layout(fam, o->layout == MB_LAYOUT_SPLIT);
	rc = mb_vocab_load_dir(o->model_dir, c->vocab_rows, &v, sub, sizeof(sub));
	if (rc != 0) {
		mb_seterr(err, errcap, "tokenizer: %s", sub);
		goto out;
	}
	if (v->n_renamed > 0)
		mb_log(MB_LOG_WARN, "tokenizer: %llu token id%s shared %s text "
		       "with another id; made padding, as llama.cpp takes one id "
		       "for each text", (unsigned long long)v->n_renamed,
		       v->n_renamed == 1 ? "" : "s",
		       v->n_renamed == 1 ? "its" : "their");

	/* the sources stay open for the threads' preads */
	pl.fds = mb_calloc(m->nshards, sizeof(int));
	if (pl.fds == NULL) {
		rc = MB_ENOMEM;
		goto out;
	}
	pl.nfds = m->nshards;
	for (i = 0; i < m->nshards; i++)
		pl.fds[i] = -1;
	if (o->follow) {
		/* opened as they arrive */
		fw.m = m;
		fw.fds = pl.fds;
		fw.ready = mb_calloc(m->nshards, sizeof(*fw.ready));
		fw.sh = mb_calloc(m->nshards, sizeof(*fw.sh));
		if (fw.ready == NULL || fw.sh == NULL) {
			rc = MB_ENOMEM;
			goto out;
		}
		for (i = 0; i < m->nshards; i++) {
			atomic_init(&fw.ready[i], 0);
			atomic_init(&fw.sh[i].avail, 0);
			atomic_init(&fw.sh[i].gen, 0);
		}
	}
	for (i = 0; !o->follow && i < m->nshards; i++) {
		snprintf(dir, sizeof(dir), "%s/%s", o->model_dir, m->shards[i]);
		pl.fds[i] = open(dir, O_RDONLY | O_CLOEXEC);
		if (pl.fds[i] < 0) {
			rc = mb_err_from_errno(errno);
			mb_seterr(err, errcap, "cannot open '%s': %s", dir,
			       strerror(errno));
			goto out;
		}
		posix_fadvise(pl.fds[i], 0, 0, POSIX_FADV_SEQUENTIAL);
	}
	rc = plan_tensors(&pl, m, c, lay,
			  o->outtype == MB_OUT_F32 ? MB_NUM_F32
			  : o->outtype == MB_OUT_F16 ? MB_NUM_F16
						     : MB_NUM_BF16,
			  err, errcap);
	if (rc != 0)
		goto out;

	rc = mb_gguf_w_init(&w, MB_GGUF_DEFAULT_ALIGNMENT);
	if (rc != 0)
		goto out;
	w_inited = 1;
	rc = write_metadata(&w, o, c, v, fam, lay, &pl, err, errcap);
	if (rc != 0) {
		if (err != NULL && err[0] == '\0')
			mb_seterr(err, errcap, "cannot write the metadata: %s",
			       mb_strerror(rc));
		goto out;
	}
	for (i = 0; i < pl.n; i++) {
		struct piece *p = &pl.pieces[i];
		uint64_t ne[2];
		uint32_t nd = piece_shape(p, ne);

		rc = mb_gguf_w_tensor(&w, p->name, p->gtype, nd, ne);
		if (rc < 0) {
			mb_seterr(err, errcap, "tensor '%s': %s", p->name,
			       mb_strerror(rc));
			goto out;
		}
	}
	rc = mb_gguf_w_layout(&w);
	if (rc != 0) {
		mb_seterr(err, errcap, "cannot lay out the file: %s", mb_strerror(rc));
		goto out;
	}
	/* too big for one file: a set of parts (common/splitset.h) */
	if (o->split_max_size > 0 && w.file_size > o->split_max_size) {
		rc = mb_gguf_w_split(&w, o->split_max_size, &sp);
		if (rc != 0) {
			mb_seterr(err, errcap, "cannot divide '%s' into parts of "
				  "at most %llu bytes: %s", o->out_path,
				  (unsigned long long)o->split_max_size,
				  rc == MB_ETOOBIG ? "more than 65535 parts"
						   : mb_strerror(rc));
			goto out;
		}
		np = sp.nparts;
	}
	rc = MB_ENOMEM;
	af = mb_calloc(np, sizeof(*af));
	piece_fd = mb_calloc(pl.n ? pl.n : 1, sizeof(*piece_fd));
	if (af == NULL || piece_fd == NULL)
		goto out;
	for (k = 0; k < np; k++) {
		af[k].fd = -1;
		need += np > 1 ? sp.parts[k].file_size : w.file_size;
	}
	for (i = 0; i < pl.n; i++) {
		pl.pieces[i].dst_off = np > 1 ? sp.offset[i] : w.tensors[i].offset;
		total += pl.pieces[i].rows * pl.pieces[i].cols *
			 mb_num_size(pl.pieces[i].out);
	}

	/* room first: a full disk is an error now, not at 90% */
	snprintf(dir, sizeof(dir), "%s", o->out_path);
	slash = strrchr(dir, '/');
	if (slash != NULL)
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	if (mb_fs_free_space(dir, &avail) == 0 && avail < need) {
		mb_seterr(err, errcap, "'%s' needs %.2f GB and only %.2f GB are free "
		       "in '%s'", o->out_path, (double)need / 1e9,
		       (double)avail / 1e9, dir);
		rc = MB_ENOSPC;
		goto out;
	}
	af_open = 1;
	for (k = 0; k < np; k++) {
		struct mb_gguf_w *pw = np > 1 ? &sp.parts[k] : &w;
		char path[4200];
		int e;

		if (np > 1)
			rc = mb_splitset_part_path(o->out_path, (unsigned)k,
						   (unsigned)np, path, sizeof(path));
		else
			rc = (size_t)snprintf(path, sizeof(path), "%s",
					      o->out_path) >= sizeof(path)
				     ? MB_ETOOBIG : 0;
		if (rc == 0)
			rc = mb_afile_open(&af[k], path, 0644);
		if (rc != 0) {
			mb_seterr(err, errcap, "cannot create '%s.part': %s", path,
			       mb_strerror(rc));
			goto out;
		}
		e = posix_fallocate(af[k].fd, 0, (off_t)pw->file_size);
		if (e == EOPNOTSUPP || e == EINVAL)
			e = ftruncate(af[k].fd, (off_t)pw->file_size) == 0 ? 0 : errno;
		if (e != 0) {
			rc = mb_err_from_errno(e);
			mb_seterr(err, errcap, "cannot reserve %.2f GB for '%s': %s",
			       (double)pw->file_size / 1e9, path, strerror(e));
			goto out;
		}
		rc = mb_gguf_w_write_header(pw, af[k].fd);
		if (rc != 0) {
			mb_seterr(err, errcap, "cannot write '%s': %s", path,
			       mb_strerror(rc));
			goto out;
		}
	}
	for (i = 0; i < pl.n; i++)
		piece_fd[i] = af[np > 1 ? sp.part[i] : 0].fd;

	/* the quantized files beside, from the same rows */
	if (o->nquants > MB_CONVERT_MAXQ ||
	    (o->nquants > 0 && o->quantizer == NULL)) {
		mb_seterr(err, errcap, "at most %d quantized files, with a "
			  "quantizer", MB_CONVERT_MAXQ);
		rc = MB_EINVAL;
		goto out;
	}
	qo = mb_calloc(o->nquants + 1, sizeof(*qo));
	if (qo == NULL) {
		rc = MB_ENOMEM;
		goto out;
	}
	jb.qz = o->quantizer;
	for (qi = 0; qi < o->nquants; qi++) {
		struct qout *q = &qo[nqo];

		unlink(o->quants[qi].path); /* an earlier run's stands for nothing */
		q->q = &o->quants[qi];
		q->slot = nqo;
		q->af.fd = -1;
		sub[0] = '\0';
		if (np > 1) {
			mb_seterr(sub, sizeof(sub), "the output is a set of parts");
			rc = MB_EUNSUPPORTED;
		} else {
			rc = quant_plan(&pl, &w, af[0].tmp, o->quantizer, q, sub,
					sizeof(sub));
		}
		if (rc == MB_EUNSUPPORTED) {
			snprintf(r->quant_why[qi], sizeof(r->quant_why[qi]),
				 "%.250s", sub);
			if (q->w_inited)
				mb_gguf_w_release(&q->w);
			memset(q, 0, sizeof(*q));
			continue;
		}
		nqo++;
		if (rc != 0) {
			mb_seterr(err, errcap, "cannot lay out '%s': %s%s%s",
				  q->q->path, mb_strerror(rc), sub[0] ? ": " : "",
				  sub);
			goto out;
		}
		if (mb_fs_free_space(dir, &avail) == 0 && avail < q->w.file_size) {
			mb_seterr(err, errcap, "'%s' needs %.2f GB more and only "
				  "%.2f GB are free in '%s'", q->q->path,
				  (double)q->w.file_size / 1e9,
				  (double)avail / 1e9, dir);
			rc = MB_ENOSPC;
			goto out;
		}
		rc = quant_open(&jb, &pl, q, &jb.qf[q->slot], err, errcap);
		if (rc != 0)
			goto out;
		jb.nqf = nqo;
	}
	rc = 0;

	/* the data */
	jb.pieces = pl.pieces;
	jb.npieces = pl.n;
	jb.out_fd = piece_fd;
	jb.fds = pl.fds;
	jb.ready = fw.ready;
	jb.sh = o->follow ? fw.sh : NULL;
	rc = make_units(&jb);
	if (rc == 0 && o->follow)
		rc = units_by_arrival(&jb);
	if (rc != 0)
		goto out;
	nth = o->threads > 0 ? (o->threads > MAX_THREADS ? MAX_THREADS : o->threads)
			     : ncpus();
	{
		double start = mb_now_s(), last = 0, polled = 0, readied = 0;
		int done = 0;

		for (started = 0; started < nth; started++)
			if (pthread_create(&th[started], NULL, worker_main, &jb) != 0)
				break;
		if (started == 0) {
			rc = MB_ENOMEM;
			mb_seterr(err, errcap, "cannot start conversion threads");
			goto out;
		}
		while (!done) {
			struct mb_convert_progress pr;
			struct timespec ts = { 0, 50 * 1000000L };

			nanosleep(&ts, NULL);
			if (jb.nqf > 0 && mb_now_s() - readied >= 0.25) {
				readied = mb_now_s();
				for (qi = 0; qi < jb.nqf; qi++)
					q_ready(&jb.qf[qi], &qo[qi]);
			}
			if (o->follow && fw.nready < m->nshards &&
			    mb_now_s() - polled >= 0.1) {
				polled = mb_now_s();
				rc = follow_poll(&fw, sub, sizeof(sub));
				if (rc != 0)
					job_fail(&jb, rc, "%s", sub);
			}
			pr.done = atomic_load(&jb.done);
			pr.total = total;
			pr.seconds = mb_now_s() - start;
			done = atomic_load(&jb.exited) == started;
			pr.finished = 0;
			if (o->progress != NULL && pr.seconds - last >= 0.5) {
				o->progress(&pr, o->progress_ctx);
				last = pr.seconds;
			}
		}
		for (i = 0; i < (size_t)started; i++)
			pthread_join(th[i], NULL);
		started = 0;
		/* a shard none of whose tensors is converted is still checked
		 * against what was planned before the file is committed */
		while (o->follow && atomic_load(&jb.rc) == 0 &&
		       fw.nready < m->nshards) {
			struct timespec ts = { 0, 100 * 1000000L };

			rc = follow_poll(&fw, sub, sizeof(sub));
			if (rc != 0)
				job_fail(&jb, rc, "%s", sub);
			else if (fw.nready < m->nshards)
				nanosleep(&ts, NULL);
		}
		if (atomic_load(&jb.rc) == 0 && o->follow &&
		    (rc = redo_stale(&jb, &fw, &r->redone_bytes, sub,
				     sizeof(sub))) != 0)
			job_fail(&jb, rc, "%s", sub);
		if (atomic_load(&jb.rc) != 0) {
			rc = atomic_load(&jb.rc);
			mb_seterr(err, errcap, "%s", jb.err);
			goto out;
		}
		if (o->progress != NULL) {
			struct mb_convert_progress pr = {
				atomic_load(&jb.done), total, mb_now_s() - start, 1
			};

			o->progress(&pr, o->progress_ctx);
		}
	}
	for (committed = 0; committed < np; committed++) {
		rc = mb_afile_commit(&af[committed]);
		if (rc != 0) {
			mb_seterr(err, errcap, "cannot finish '%s': %s", o->out_path,
			       mb_strerror(rc));
			goto out;
		}
	}
	for (qi = 0; qi < jb.nqf; qi++) {
		q_ready(&jb.qf[qi], &qo[qi]);
		qo[qi].open = 0;
		rc = mb_afile_commit(&qo[qi].af);
		if (rc != 0) {
			mb_seterr(err, errcap, "cannot finish '%s': %s",
				  qo[qi].q->path, mb_strerror(rc));
			goto out;
		}
		r->quant_size[qo[qi].q - o->quants] = qo[qi].w.file_size;
	}
	/* a run with another --split-max-size left another form of it */
	mb_splitset_remove_others(o->out_path, (unsigned)np);
	snprintf(r->arch, sizeof(r->arch), "%s", lay->arch);
	r->ntensors = pl.n;
	r->file_size = need;
	r->nparts = (unsigned)np;
	r->data_bytes = total;
	r->early_bytes = atomic_load(&jb.early);
	r->nrepairs = mb_modelcfg_nrepairs(c);
	r->seconds = mb_now_s() - t0;
	if (o->report != NULL)
		rc = mb_modelcfg_report_json(c, o->report);
out:
	for (i = 0; i < (size_t)started; i++)
		pthread_join(th[i], NULL);
	for (k = committed; af_open && k < np; k++)
		mb_afile_abort(&af[k]);
	for (qi = 0; qi < nqo; qi++) {
		if (qo[qi].open)
			mb_afile_abort(&qo[qi].af);
		if (qo[qi].ready[0] != '\0')
			unlink(qo[qi].ready);
		free(qo[qi].last);
		free(jb.qf[qi].left);
		if (qo[qi].w_inited)
			mb_gguf_w_release(&qo[qi].w);
	}
	free(qo);
	free(af);
	free(piece_fd);
	mb_gguf_split_release(&sp);
	if (w_inited)
		mb_gguf_w_release(&w);
	for (i = 0; i < pl.n; i++)
		free(pl.pieces[i].gen);
	free(pl.pieces);
	/* every shard was read once: what the units' drops left (a folio
	 * still mapped by the other thread then) goes too */
	for (i = 0; i < pl.nfds; i++)
		if (pl.fds[i] >= 0) {
			mb_drop_cached(pl.fds[i], 0, 0);
			close(pl.fds[i]);
		}
	free(pl.fds);
	free(fw.ready);
	free(fw.sh);
	free(jb.units);
	free(jb.taken);
	free(jb.ugen);
	pthread_mutex_destroy(&jb.err_mu);
	mb_vocab_free(v);
	mb_modelcfg_free(c);
	mb_st_model_free(m);
	free(cfg);
	free(card);
	return rc;
}
