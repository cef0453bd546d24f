/*
 * mibera-worker imatrix F16.gguf OUT.gguf [--text FILE] [--chunks N]
 *     [--ctx N] [--threads N] [--cpu]
 * Computes an importance matrix: runs the model over a calibration text
 * and, for every matrix multiplication by a weight of the model's blocks,
 * sums each input column's squared activation over the tokens, as
 * llama.cpp's imatrix tool does. The quantizer then weighs each column's
 * rounding error by that figure, which is what makes the 2- and 3-bit
 * i-quants usable and improves the k-quants below 5 bits.
 *
 * Written here in C over libllama's evaluation callback rather than by
 * running llama-imatrix: the worker builds libllama only (llama.cpp's
 * tools need its common library, a C++ build of its own, and print rather
 * than report), and the verb must speak the worker's events and finish
 * atomically like every other step. The file is llama.cpp's GGUF imatrix
 * format, so llama-quantize can use it too.
 *
 * OUT is written as OUT.part and renamed; an OUT that already reads as an
 * imatrix is kept ("already done"), so a retried job and every quant of a
 * job share one.
 */
#include "worker/imatrix.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/gguf.h"
#include "common/json.h"
#include "proto/event.h"
#include "worker/lmrun.h"
#include "worker/verbs.h"
#include "worker/verbutil.h"

/* Bounds on what a file may claim: a model has at most a few thousand
 * matrices, an input row at most a few hundred thousand columns, an MoE
 * layer a few hundred experts. */
#define MAX_ENTRIES 65536
#define MAX_VALUES ((uint64_t)1 << 28)

struct entry {
	char name[MB_GGUF_MAX_NAME + 1];
	int64_t ne0;		/* input columns */
	int64_t nmat;		/* experts (1 for a dense weight) */
	float *sums;		/* ne0 * nmat */
	int64_t *counts;	/* nmat */
};

struct collector {
	struct entry *e;
	size_t n, cap;
	float *host;		/* activations copied off a device */
	size_t host_cap;
	int32_t *ids;
	size_t ids_cap;
	int failed;		/* a non-finite sum or no memory */
	char err[256];
};

static void usage(FILE *f)
{
	fprintf(f, "usage: mibera-worker imatrix F16.gguf OUT.gguf [--text FILE] "
		   "[--chunks N] [--ctx N]\n"
		   "           [--threads N] [--cpu]\n\n"
		   "--text defaults to the calibration text shipped with mibera "
		   "(data/calibration/\n"
		   "imatrix.txt); --chunks to 64 with a GPU, 16 without.\n"
		   "Computes an importance matrix for quantizing F16.gguf: the "
		   "model is run over\n"
		   "the first N chunks of --ctx tokens (default 64 of 512) of "
		   "the calibration text\n"
		   "and the squared activations entering each weight of its "
		   "blocks are summed.\n"
		   "OUT is llama.cpp's imatrix GGUF; it appears only when "
		   "complete, and one that\n"
		   "already is an imatrix is kept (\"already done\").\n");
}

/* CUDA0#blk.0.attn_k.weight#0 -> blk.0.attn_k.weight (a copy the
 * scheduler made for a device carries the weight's name between '#'). */
static void weight_name(const char *in, char *out, size_t cap)
{
	const char *p = strchr(in, '#'), *q;

	if (p == NULL) {
		snprintf(out, cap, "%s", in);
		return;
	}
	p++;
	q = strchr(p, '#');
	snprintf(out, cap, "%.*s", q ? (int)(q - p) : (int)strlen(p), p);
}

static struct entry *find_entry(struct collector *c, const char *name,
				int64_t ne0, int64_t nmat)
{
	struct entry *e;
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->e[i].name, name) == 0) {
			e = &c->e[i];
			if (e->ne0 != ne0 || e->nmat != nmat) {
				snprintf(c->err, sizeof(c->err), "'%s' is "
					 "multiplied with inconsistent shapes",
					 name);
				return NULL;
			}
			return e;
		}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		struct entry *ne = realloc(c->e, cap * sizeof(*ne));

		if (ne == NULL)
			return NULL;
		c->e = ne;
		c->cap = cap;
	}
	e = &c->e[c->n];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->ne0 = ne0;
	e->nmat = nmat;
	e->sums = calloc((size_t)(ne0 * nmat), sizeof(float));
	e->counts = calloc((size_t)nmat, sizeof(int64_t));
	if (e->sums == NULL || e->counts == NULL) {
		free(e->sums);
		free(e->counts);
		return NULL;
	}
	c->n++;
	return e;
}

/* The bytes of t on the host: its own when its buffer is host memory, else
 * a copy. */
static const char *host_data(struct collector *c, const struct ggml_tensor *t,
			     void **buf, size_t *cap)
{
	size_t n = ggml_nbytes(t);

	if (t->buffer == NULL || ggml_backend_buffer_is_host(t->buffer))
		return t->data;
	if (n > *cap) {
		void *p = realloc(*buf, n);

		if (p == NULL)
			return NULL;
		*buf = p;
		*cap = n;
	}
	ggml_backend_tensor_get(t, *buf, 0, n);
	(void)c;
	return *buf;
}

static int finite_all(const float *x, int64_t n)
{
	int64_t i;

	for (i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return 0;
	return 1;
}

static bool collect(struct ggml_tensor *t, bool ask, void *user)
{
	struct collector *c = user;
	const struct ggml_tensor *src0 = t->src[0], *src1 = t->src[1];
	char name[128];
	const char *data;
	struct entry *e;
	int64_t i, j, r, ne0;

	if (ask) {
		if (t->op == GGML_OP_MUL_MAT_ID)
			return true;
		if (t->op != GGML_OP_MUL_MAT)
			return false;
		/* as llama-imatrix: the blocks' weights only (not the output
		 * matrix), fed f32 activations of a real batch */
		if (src1->ne[1] < 16 || src1->type != GGML_TYPE_F32)
			return false;
		weight_name(src0->name, name, sizeof(name));
		return strncmp(name, "blk.", 4) == 0;
	}
	if (c->failed)
		return false;
	weight_name(src0->name, name, sizeof(name));
	data = host_data(c, src1, (void **)&c->host, &c->host_cap);
	if (data == NULL)
		goto oom;
	ne0 = src1->ne[0];
	if (t->op == GGML_OP_MUL_MAT_ID) {
		/* ids [n_used, n_tokens]; src1 [cols, n_used or 1, n_tokens] */
		const struct ggml_tensor *ids = t->src[2];
		const char *idd;
		int64_t n_as = src0->ne[2];

		e = find_entry(c, name, ne0, n_as);
		if (e == NULL)
			goto oom;
		idd = host_data(c, ids, (void **)&c->ids, &c->ids_cap);
		if (idd == NULL)
			goto oom;
		for (i = 0; i < ids->ne[0]; i++)
			for (r = 0; r < src1->ne[2]; r++) {
				int32_t ex = *(const int32_t *)(idd + r * ids->nb[1] +
								i * ids->nb[0]);
				const float *x = (const float *)(data +
					(i % src1->ne[1]) * src1->nb[1] +
					r * src1->nb[2]);
				float *acc;

				if (ex < 0 || ex >= n_as)
					continue;
				acc = e->sums + ex * ne0;
				e->counts[ex]++;
				for (j = 0; j < ne0; j++)
					acc[j] += x[j] * x[j];
			}
	} else {
		int64_t nmat = src0->ne[2] * src0->ne[3], i2, i3;

		e = find_entry(c, name, ne0, nmat);
		if (e == NULL)
			goto oom;
		for (i3 = 0; i3 < src1->ne[3]; i3++)
			for (i2 = 0; i2 < src1->ne[2]; i2++) {
				int64_t m = (i3 % src0->ne[3]) * src0->ne[2] +
					    (i2 % src0->ne[2]);
				float *acc = e->sums + m * ne0;

				for (r = 0; r < src1->ne[1]; r++) {
					const float *x = (const float *)(data +
						r * src1->nb[1] + i2 * src1->nb[2] +
						i3 * src1->nb[3]);

					for (j = 0; j < ne0; j++)
						acc[j] += x[j] * x[j];
				}
			}
		/* one count per dense weight: tokens, not rows times mats */
		e->counts[0] += ggml_nrows(src1) / nmat;
		for (i = 1; i < nmat; i++)
			e->counts[i] = e->counts[0];
	}
	if (!finite_all(e->sums, e->ne0 * e->nmat)) {
		snprintf(c->err, sizeof(c->err), "activations entering '%s' "
			 "are not finite", name);
		c->failed = 1;
		return false;
	}
	return true;
oom:
	if (c->err[0] == '\0')
		snprintf(c->err, sizeof(c->err), "out of memory collecting "
			 "'%s'", name);
	c->failed = 1;
	return false;
}

static void collector_release(struct collector *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		free(c->e[i].sums);
		free(c->e[i].counts);
	}
	free(c->e);
	free(c->host);
	free(c->ids);
	memset(c, 0, sizeof(*c));
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name,
		      ((const struct entry *)b)->name);
}

/* Writes the collected sums to path atomically, names sorted (as
 * llama-imatrix does, so the same run gives the same bytes). */
static int save(struct collector *c, const char *path, const char *dataset,
		int chunks, int chunk_size, char *err, size_t errcap)
{
	struct mb_gguf_w w;
	struct mb_afile af = { .fd = -1 };
	const char *ds[1] = { dataset };
	char tname[MB_GGUF_MAX_NAME + 16];
	float *cnt = NULL;
	size_t i, k = 0;
	int rc, t;

	qsort(c->e, c->n, sizeof(*c->e), cmp_entry);
	rc = mb_gguf_w_init(&w, 0);
	if (rc == 0)
		rc = mb_gguf_w_str(&w, "general.type", "imatrix");
	if (rc == 0)
		rc = mb_gguf_w_arr_str(&w, "imatrix.datasets", ds, 1);
	if (rc == 0)
		rc = mb_gguf_w_u32(&w, "imatrix.chunk_count", (uint32_t)chunks);
	if (rc == 0)
		rc = mb_gguf_w_u32(&w, "imatrix.chunk_size",
				   (uint32_t)chunk_size);
	for (i = 0; rc == 0 && i < c->n; i++) {
		uint64_t ne[2] = { (uint64_t)c->e[i].ne0,
				   (uint64_t)c->e[i].nmat };
		uint64_t nc[2] = { 1, (uint64_t)c->e[i].nmat };

		if (strlen(c->e[i].name) + 8 > MB_GGUF_MAX_NAME) {
			rc = MB_EINVAL;
			break;
		}
		snprintf(tname, sizeof(tname), "%s.in_sum2", c->e[i].name);
		t = mb_gguf_w_tensor(&w, tname, MB_GGML_F32, 2, ne);
		if (t >= 0) {
			snprintf(tname, sizeof(tname), "%s.counts", c->e[i].name);
			t = mb_gguf_w_tensor(&w, tname, MB_GGML_F32, 2, nc);
		}
		rc = t < 0 ? t : 0;
	}
	if (rc == 0)
		rc = mb_gguf_w_layout(&w);
	if (rc == 0)
		rc = mb_afile_open(&af, path, 0644);
	if (rc == 0)
		rc = mb_gguf_w_write_header(&w, af.fd);
	for (i = 0; rc == 0 && i < c->n; i++) {
		const struct entry *e = &c->e[i];
		int64_t j;

		rc = mb_pwrite_all(af.fd, e->sums,
				   (size_t)(e->ne0 * e->nmat) * sizeof(float),
				   w.tensors[k++].offset);
		free(cnt);
		cnt = malloc((size_t)e->nmat * sizeof(float));
		if (rc == 0 && cnt == NULL)
			rc = MB_ENOMEM;
		for (j = 0; rc == 0 && j < e->nmat; j++)
			cnt[j] = (float)e->counts[j];
		if (rc == 0)
			rc = mb_pwrite_all(af.fd, cnt,
					   (size_t)e->nmat * sizeof(float),
					   w.tensors[k].offset);
		k++;
	}
	if (rc == 0)
		rc = mb_gguf_w_finish(&w, af.fd);
	if (rc == 0)
		rc = mb_afile_commit(&af);
	else
		mb_afile_abort(&af);
	if (rc != 0)
		snprintf(err, errcap, "cannot write '%s': %s", path,
			 mb_strerror(rc));
	free(cnt);
	mb_gguf_w_release(&w);
	return rc;
}

void imatrix_free(struct imatrix *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->n; i++) {
		free((char *)m->data[i].name);
		free((float *)m->data[i].data);
	}
	free(m->data);
	free(m);
}

/* Reads n floats of tensor t of g from fd; 0 or -1. */
static int read_f32(int fd, const struct mb_gguf_tensor *t, uint64_t n,
		    float **out)
{
	float *v;
	size_t got;

	*out = NULL;
	if (t->type != MB_GGML_F32 || t->size != n * sizeof(float) ||
	    n == 0 || n > MAX_VALUES)
		return -1;
	v = malloc((size_t)n * sizeof(float));
	if (v == NULL)
		return -1;
	if (mb_pread_full(fd, v, (size_t)n * sizeof(float), t->offset, &got) != 0 ||
	    got != n * sizeof(float)) {
		free(v);
		return -1;
	}
	*out = v;
	return 0;
}

int imatrix_load(const char *path, struct imatrix **out, char *err,
		 size_t errcap)
{
	const struct mb_gguf_kv *kv;
	struct imatrix *m = NULL;
	struct mb_gguf *g = NULL;
	float *sums = NULL, *cnt = NULL;
	char name[MB_GGUF_MAX_NAME + 1];
	uint64_t i;
	int fd = -1, rc = -1;

	*out = NULL;
	if (mb_gguf_read(path, &g, err, errcap) != 0)
		goto out;
	kv = mb_gguf_kv(g, "general.type");
	if (kv == NULL || kv->type != MB_GGUF_STRING ||
	    strcmp(kv->v.s, "imatrix") != 0) {
		snprintf(err, errcap, "'%s' is a GGUF but not an imatrix "
			 "(general.type is not \"imatrix\")", path);
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	m = calloc(1, sizeof(*m));
	if (fd < 0 || m == NULL ||
	    g->ntensors > 2 * (uint64_t)MAX_ENTRIES) {
		snprintf(err, errcap, "cannot read '%s'", path);
		goto out;
	}
	m->data = calloc((size_t)g->ntensors / 2 + 1, sizeof(*m->data));
	if (m->data == NULL)
		goto oom;
	kv = mb_gguf_kv(g, "imatrix.datasets");
	if (kv != NULL && kv->type == MB_GGUF_ARRAY &&
	    kv->elem_type == MB_GGUF_STRING && kv->n > 0)
		snprintf(m->dataset, sizeof(m->dataset), "%s", kv->strs[0]);
	kv = mb_gguf_kv(g, "imatrix.chunk_count");
	if (kv != NULL && kv->type == MB_GGUF_UINT32)
		m->chunks = (long long)kv->v.u;
	for (i = 0; i < g->ntensors; i++) {
		const struct mb_gguf_tensor *ts = &g->tensors[i], *tc;
		size_t len = strlen(ts->name);
		uint64_t ne0, nmat, j, k;

		if (len < 8 || strcmp(ts->name + len - 8, ".in_sum2") != 0)
			continue;
		snprintf(name, sizeof(name), "%.*s.counts", (int)(len - 8),
			 ts->name);
		tc = mb_gguf_tensor(g, name);
		ne0 = ts->ne[0];
		nmat = ts->ndim > 1 ? ts->ne[1] : 1;
		if (tc == NULL || ne0 == 0 || nmat == 0 ||
		    nmat > MAX_VALUES / ne0 ||
		    read_f32(fd, ts, ne0 * nmat, &sums) != 0 ||
		    read_f32(fd, tc, nmat, &cnt) != 0) {
			snprintf(err, errcap, "'%s': the importance data of "
				 "'%.*s' is damaged", path, (int)(len - 8),
				 ts->name);
			goto out;
		}
		for (k = 0; k < nmat; k++)
			for (j = 0; j < ne0; j++)
				sums[k * ne0 + j] = cnt[k] > 0 ?
					sums[k * ne0 + j] / cnt[k] : 1.0f;
		m->data[m->n].name = strndup(ts->name, len - 8);
		if (m->data[m->n].name == NULL)
			goto oom;
		m->data[m->n].data = sums;
		m->data[m->n].size = (size_t)(ne0 * nmat);
		m->n++;
		sums = NULL;
		free(cnt);
		cnt = NULL;
	}
	if (m->n == 0) {
		snprintf(err, errcap, "'%s' holds no importance data", path);
		goto out;
	}
	*out = m;
	m = NULL;
	rc = 0;
	goto out;
oom:
	snprintf(err, errcap, "out of memory reading '%s'", path);
out:
	if (fd >= 0)
		close(fd);
	free(sums);
	free(cnt);
	imatrix_free(m);
	mb_gguf_free(g);
	return rc;
}

int verb_imatrix(int argc, char **argv)
{
	struct mb_events ev = { .fd = -1 };
	struct collector c;
	struct lm lm;
	struct imatrix *done = NULL;
	struct mb_buf b;
	const char *in = NULL, *out = NULL, *text = NULL;
	int32_t *toks = NULL;
	size_t ntok = 0;
	char err[1024], tbuf[4200];
	int a, npos = 0, chunks = 0, n_ctx = 512, threads = 0, cpu = 0;
	int k, nchunk, ret = 1;
	double t_chunks;
	double t0;

	memset(&c, 0, sizeof(c));
	memset(&lm, 0, sizeof(lm));
	for (a = 1; a < argc; a++) {
		const char *s = argv[a];
		const char *v = a + 1 < argc ? argv[a + 1] : NULL;

		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(s, "--text") == 0 && v) {
			text = v;
			a++;
		} else if (strcmp(s, "--chunks") == 0 && v) {
			if (verb_parse_int(v, 1, 100000, &chunks) != 0)
				goto bad;
			a++;
		} else if (strcmp(s, "--ctx") == 0 && v) {
			if (verb_parse_int(v, 32, 65536, &n_ctx) != 0)
				goto bad;
			a++;
		} else if (strcmp(s, "--threads") == 0 && v) {
			if (verb_parse_int(v, 1, 256, &threads) != 0)
				goto bad;
			a++;
		} else if (strcmp(s, "--cpu") == 0) {
			cpu = 1;
		} else if (s[0] == '-' && s[1] != '\0') {
			goto bad;
		} else if (npos == 0) {
			in = s;
			npos++;
		} else if (npos == 1) {
			out = s;
			npos++;
		} else {
			goto bad;
		}
	}
	if (npos != 2)
		goto bad;
	if (text == NULL) {
		if (lm_default_text("imatrix.txt", tbuf, sizeof(tbuf), err,
				    sizeof(err)) != 0) {
			fprintf(stderr, "mibera-worker imatrix: %s\n", err);
			return 2;
		}
		text = tbuf;
	}
	/* 64 chunks of 512 (32k tokens) on a GPU, where they take seconds;
	 * 16 on a CPU-only box */
	if (chunks == 0)
		chunks = lm_has_gpu() ? 64 : 16;
	if (mb_events_from_env(&ev, "imatrix") != 0) {
		fprintf(stderr, "mibera-worker imatrix: cannot open the event "
			"journal\n");
		return 1;
	}
	if (access(out, F_OK) == 0 &&
	    imatrix_load(out, &done, err, sizeof(err)) == 0) {
		printf("imatrix: %s already done (%zu matrices)\n", out,
		       done->n);
		imatrix_free(done);
		ret = 0;
		goto out;
	}
	t0 = mb_now_s();
	if (lm_open(&lm, in, n_ctx, threads, cpu, collect, &c, err,
		    sizeof(err)) != 0 ||
	    lm_tokenize_file(&lm, text, &toks, &ntok, err, sizeof(err)) != 0) {
		fprintf(stderr, "mibera-worker imatrix: %s\n", err);
		ret = 3;
		goto out;
	}
	lm_say_offload(&lm, &ev, "imatrix");
	nchunk = (int)(ntok / (size_t)n_ctx);
	if (nchunk < 1) {
		fprintf(stderr, "mibera-worker imatrix: '%s' has %zu tokens, "
			"fewer than one chunk of %d\n", text, ntok, n_ctx);
		ret = 3;
		goto out;
	}
	if (nchunk > chunks)
		nchunk = chunks;
	t_chunks = mb_now_s();
	for (k = 0; k < nchunk; k++) {
		/* logits for every position, though none is read: libllama
		 * runs the last layer only on the rows whose logits are
		 * wanted, and its weights would see one token */
		if (lm_eval_chunk(&lm, toks + (size_t)k * (size_t)n_ctx, 0,
				  err, sizeof(err)) != 0 || c.failed) {
			fprintf(stderr, "mibera-worker imatrix: chunk %d: %s\n",
				k + 1, c.failed ? c.err : err);
			goto out;
		}
		mb_events_progress_unit(&ev, "imatrix", (uint64_t)(k + 1),
					(uint64_t)nchunk,
					(k + 1) / (mb_now_s() - t_chunks + 1e-9),
					"chunks", k + 1 == nchunk);
	}
	if (c.n == 0) {
		fprintf(stderr, "mibera-worker imatrix: no weight of '%s' was "
			"seen in a matrix multiplication\n", in);
		ret = 3;
		goto out;
	}
	if (save(&c, out, verb_base_name(text), nchunk, n_ctx, err,
		 sizeof(err)) != 0) {
		fprintf(stderr, "mibera-worker imatrix: %s\n", err);
		goto out;
	}
	printf("imatrix %s: %zu matrices from %d chunks of %d tokens of '%s' "
	       "in %.2f s\n", out, c.n, nchunk, n_ctx, verb_base_name(text),
	       mb_now_s() - t0);
	mb_buf_init(&b, 2048);
	mb_buf_adds(&b, "\"file\":");
	mb_json_quote(&b, verb_base_name(out));
	mb_buf_addf(&b, ",\"matrices\":%zu,\"chunks\":%d,\"ctx\":%d,"
		    "\"tokens\":%lld,\"seconds\":%.3f,\"text\":", c.n, nchunk,
		    n_ctx, (long long)nchunk * n_ctx, mb_now_s() - t0);
	mb_json_quote(&b, verb_base_name(text));
	if (mb_buf_error(&b) == 0)
		mb_events_emit(&ev, "done", b.data);
	mb_buf_release(&b);
	ret = 0;
out:
	free(toks);
	lm_close(&lm);
	collector_release(&c);
	mb_events_close(&ev);
	return ret;
bad:
	usage(stderr);
	return 2;
}
