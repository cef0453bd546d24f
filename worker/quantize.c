/*
 * mibera-worker quantize IN.gguf OUT.gguf TYPE [--imatrix FILE] [--threads N]
 *     [--reserve BYTES] [--verbose]
 * Quantizes a GGUF with libllama's llama_model_quantize, in process, with
 * an importance matrix (worker/imatrix.c) when one is given: required for
 * the types libllama refuses without one (IQ2_*, IQ3_XXS), used by every
 * type that weighs rounding errors with it (the k- and i-quants).
 *
 * The output is written as OUT.part, checked (its header reads back and
 * says the requested file type), fsynced and renamed, so OUT is either
 * complete or absent. An OUT that is already a valid GGUF of the requested
 * type is kept: the verb finishes at once ("already done"). Before any
 * work the free space is checked against an estimate made from the input's
 * tensors and the bits per weight of the type (common/modelcfg.h).
 *
 * llama.cpp reports progress only through its log: the quantizer logs
 * "[   i/   N] name - [shape], type = f16, " as it starts each tensor and
 * "warning: name - ncols C not divisible by B (required for type T) ...
 * -> falling back to T2" when a tensor's rows do not fit the type's
 * blocks. Those lines become progress events (proto/event.h) and a
 * progress line on a terminal; errors become the verb's message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/gguf.h"
#include "common/json.h"
#include "common/modelcfg.h"
#include "llama.h"
#include "proto/event.h"
#include "worker/imatrix.h"
#include "worker/verbs.h"

#define MAX_FALLBACKS 64

static void usage(FILE *f)
{
	const struct mb_quant_type *t;
	size_t i, n = mb_quant_types(&t);

	fprintf(f, "usage: mibera-worker quantize IN.gguf OUT.gguf TYPE "
		   "[--imatrix FILE]\n"
		   "           [--threads N] [--reserve BYTES] [--verbose]\n\n"
		   "Quantizes IN (an F16, BF16 or F32 GGUF) to TYPE with "
		   "llama.cpp. OUT appears only\n"
		   "when complete (it is written as OUT.part and renamed); an "
		   "OUT that already is a\n"
		   "valid GGUF of TYPE is kept (\"already done\"). Refuses to "
		   "start when the free\n"
		   "space would not hold the estimated output plus --reserve "
		   "bytes (default 0).\n\n"
		   "--imatrix FILE: an importance matrix (mibera-worker imatrix, "
		   "or llama.cpp's\n"
		   "GGUF imatrix); IQ2_XXS, IQ2_XS, IQ2_S and IQ3_XXS need one.\n\n"
		   "File names: the job runner names the files of a model "
		   "<model>-<TYPE>.gguf,\n"
		   "e.g. phi-4-F16.gguf (the converter's output) and "
		   "phi-4-Q4_K_M.gguf.\n\n"
		   "TYPE (case-insensitive):");
	for (i = 0; i < n; i++)
		fprintf(f, " %s", t[i].name);
	fprintf(f, "\n");
}

struct fallback {
	char tensor[MB_GGUF_MAX_NAME + 1];
	char from[16], to[16];
	long long ncols;
};

/* What the log callback needs: it is called from llama.cpp's thread. */
struct qstate {
	struct mb_events *ev;
	const struct mb_gguf *in;	/* the input's header, or NULL */
	int tty, verbose;
	int index, count;		/* the tensor being quantized, i of N */
	uint64_t done, total;		/* input bytes of finished tensors */
	uint64_t cur_size;		/* input bytes of the current one */
	double t0;
	char cur[MB_GGUF_MAX_NAME + 1];
	char err[1024];			/* llama.cpp's error lines */
	size_t nfallback;
	struct fallback fallback[MAX_FALLBACKS];
	int pending_fallback;		/* a "warning:" awaits its "->" */
	enum ggml_log_level last;	/* what a CONT piece continues */
};

static void trim_end(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' ||
			 s[n - 1] == '\r'))
		s[--n] = '\0';
}

/* Keeps llama.cpp's error lines, joined by "; ", dropping the banner
 * lines of '=' it draws around some of them. */
static void add_error(struct qstate *st, const char *text)
{
	char line[512];
	const char *p;
	size_t n;

	snprintf(line, sizeof(line), "%s", text);
	trim_end(line);
	for (p = line; *p == '\n' || *p == ' ' || *p == '='; p++)
		;
	if (*p == '\0')
		return;
	n = strlen(st->err);
	snprintf(st->err + n, sizeof(st->err) - n, "%s%s", n ? "; " : "", p);
}

static void show_progress(struct qstate *st, int final)
{
	double dt = mb_now_s() - st->t0;
	double rate = dt > 0 ? (double)st->done / dt : 0;

	/* one event per tensor, not rate-limited: a few hundred in a model,
	 * each seconds apart on a real one */
	mb_events_progress(st->ev, final ? "quantize" : st->cur, st->done,
			   st->total, rate, 1);
	if (!st->tty)
		return;
	fprintf(stderr, "\rquantize: [%4d/%4d] %5.1f%%  %7.1f MB/s  %-40.40s",
		final ? st->count : st->index, st->count,
		st->total ? 100.0 * (double)st->done / (double)st->total : 100.0,
		rate / 1e6, final ? "done" : st->cur);
	if (final)
		fputc('\n', stderr);
}

/* Input bytes of tensor name (the header is read before quantizing);
 * 0 when the header could not be read: then progress counts tensors. */
static uint64_t tensor_bytes(const struct qstate *st, const char *name)
{
	const struct mb_gguf_tensor *t;

	if (st->in == NULL)
		return 1;
	t = mb_gguf_tensor(st->in, name);
	return t != NULL ? t->size : 0;
}

static void on_tensor(struct qstate *st, const char *text)
{
	char name[MB_GGUF_MAX_NAME + 1];
	int i, n;

	if (sscanf(text, "[%d/%d] %63s", &i, &n, name) != 3 || i < 1 || n < i)
		return;
	st->done += st->cur_size;
	st->index = i;
	st->count = n;
	if (st->in == NULL)
		st->total = (uint64_t)n;
	snprintf(st->cur, sizeof(st->cur), "%s", name);
	st->cur_size = tensor_bytes(st, name);
	show_progress(st, 0);
}

static void on_warning(struct qstate *st, const char *text)
{
	struct fallback *f;
	char to[16];

	if (strncmp(text, "warning: ", 9) == 0 &&
	    st->nfallback < MAX_FALLBACKS) {
		f = &st->fallback[st->nfallback];
		memset(f, 0, sizeof(*f));
		if (sscanf(text, "warning: %63s - ncols %lld not divisible by "
				 "%*d (required for type %15[^)]",
			   f->tensor, &f->ncols, f->from) == 3) {
			trim_end(f->from);
			st->pending_fallback = 1;
		}
	} else if (st->pending_fallback &&
		   sscanf(text, "-> falling back to %15s", to) == 1) {
		f = &st->fallback[st->nfallback++];
		snprintf(f->to, sizeof(f->to), "%s", to);
		st->pending_fallback = 0;
	}
}

static void on_log(enum ggml_log_level level, const char *text, void *ctx)
{
	struct qstate *st = ctx;

	if (st->verbose)
		fputs(text, stderr);
	if (level == GGML_LOG_LEVEL_CONT)
		level = st->last;
	st->last = level;
	switch (level) {
	case GGML_LOG_LEVEL_INFO:
		if (text[0] == '[')
			on_tensor(st, text);
		break;
	case GGML_LOG_LEVEL_WARN:
		on_warning(st, text);
		break;
	case GGML_LOG_LEVEL_ERROR:
		add_error(st, text);
		break;
	default:
		break;
	}
}

/* Returns 1 when path is a readable GGUF whose general.file_type is
 * ftype: a complete output (outputs appear only by rename). */
static int is_done(const char *path, int ftype)
{
	const struct mb_gguf_kv *kv;
	struct mb_gguf *g;
	char err[256];
	int ok;

	if (access(path, F_OK) != 0 ||
	    mb_gguf_read(path, &g, err, sizeof(err)) != 0)
		return 0;
	kv = mb_gguf_kv(g, "general.file_type");
	ok = kv != NULL && (kv->type == MB_GGUF_UINT32 ||
			    kv->type == MB_GGUF_INT32) &&
	     kv->v.u == (uint64_t)ftype;
	mb_gguf_free(g);
	return ok;
}

static uint64_t nelem(const struct mb_gguf_tensor *t)
{
	uint64_t n = 1;
	uint32_t d;

	for (d = 0; d < t->ndim; d++)
		n *= t->ne[d];
	return n;
}

/* The output's size: the matrices at the type's bits per weight, the rest
 * (norms, already quantized tensors) as they are, plus the metadata. The
 * table's figures come from 7-8B models, whose few high-precision tensors
 * weigh less than in a small model: 5% and 1 MiB of slack. */
static uint64_t estimate(const struct mb_gguf *g, uint64_t in_size,
			 const struct mb_quant_type *q)
{
	uint64_t est = 0, i;

	if (g == NULL) {
		est = (uint64_t)((double)in_size * q->bpw / 16.0);
	} else {
		est = g->data_start;
		for (i = 0; i < g->ntensors; i++) {
			const struct mb_gguf_tensor *t = &g->tensors[i];
			int flt = t->type == MB_GGML_F32 ||
				  t->type == MB_GGML_F16 ||
				  t->type == MB_GGML_BF16;

			if (t->ndim >= 2 && flt)
				est += (uint64_t)((double)nelem(t) * q->bpw / 8);
			else
				est += t->size;
		}
	}
	return est + est / 20 + (1u << 20);
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Free bytes where out will be written, counting a stale out.part that the
 * quantizer will truncate. */
static int free_space(const char *out, const char *tmp, uint64_t *avail)
{
	char dir[4096];
	const char *slash = strrchr(out, '/');
	struct stat sb;
	int rc;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == out)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - out), out);
	rc = mb_fs_free_space(dir, avail);
	if (rc == 0 && stat(tmp, &sb) == 0 && S_ISREG(sb.st_mode))
		*avail += (uint64_t)sb.st_size;
	return rc;
}

/* fsyncs tmp, renames it over out and fsyncs the directory. */
static int publish(const char *tmp, const char *out)
{
	int fd, rc;

	fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mb_err_from_errno(errno);
	rc = mb_fsync(fd);
	close(fd);
	if (rc == 0 && rename(tmp, out) != 0)
		rc = mb_err_from_errno(errno);
	if (rc == 0)
		rc = mb_fsync_parent(out);
	return rc;
}

/* A "fallback" event: {"tensor":...,"ncols":688,"from":"q4_K","to":"f16"}.
 * The names come from a file: quoted, never pasted. */
static void emit_fallback(struct mb_events *ev, const struct fallback *f)
{
	struct mb_buf b;
	int rc;

	mb_buf_init(&b, 1024);
	rc = mb_buf_adds(&b, "\"tensor\":");
	if (rc == 0)
		rc = mb_json_quote(&b, f->tensor);
	if (rc == 0)
		rc = mb_buf_addf(&b, ",\"ncols\":%lld,\"from\":", f->ncols);
	if (rc == 0)
		rc = mb_json_quote(&b, f->from);
	if (rc == 0)
		rc = mb_buf_adds(&b, ",\"to\":");
	if (rc == 0)
		rc = mb_json_quote(&b, f->to);
	if (rc == 0)
		mb_events_emit(ev, "fallback", b.data);
	mb_buf_release(&b);
}

static void print_types(FILE *f)
{
	const struct mb_quant_type *t;
	size_t i, n = mb_quant_types(&t);

	fprintf(f, "types:");
	for (i = 0; i < n; i++)
		fprintf(f, " %s", t[i].name);
	fprintf(f, "\n");
}

int verb_quantize(int argc, char **argv)
{
	struct llama_model_quantize_params p;
	const struct mb_quant_type *q;
	struct mb_events ev = { .fd = -1 };
	struct qstate st;
	struct mb_gguf *in_hdr = NULL;
	struct stat sin, sout;
	const char *in = NULL, *out = NULL, *type = NULL, *imx_path = NULL;
	struct imatrix *imx = NULL;
	struct llama_model_kv_override kvo[4];
	char tmp[4096], err[512];
	uint64_t threads = 0, reserve = 0, est, avail, in_size = 0, n_in = 0;
	size_t i;
	int a, npos = 0, verbose = 0, rc, ret = 1;
	double t0;

	for (a = 1; a < argc; a++) {
		const char *s = argv[a];
		const char *v = a + 1 < argc ? argv[a + 1] : NULL;

		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(s, "--threads") == 0 && v) {
			if (parse_u64(v, 256, &threads) != 0 || threads < 1)
				goto bad;
			a++;
		} else if (strcmp(s, "--reserve") == 0 && v) {
			if (parse_u64(v, UINT64_MAX / 2, &reserve) != 0)
				goto bad;
			a++;
		} else if (strcmp(s, "--imatrix") == 0 && v) {
			imx_path = v;
			a++;
		} else if (strcmp(s, "--verbose") == 0) {
			verbose = 1;
		} else if (s[0] == '-' && s[1] != '\0') {
			goto bad;
		} else if (npos == 0) {
			in = s;
			npos++;
		} else if (npos == 1) {
			out = s;
			npos++;
		} else if (npos == 2) {
			type = s;
			npos++;
		} else {
			goto bad;
		}
	}
	if (npos != 3)
		goto bad;
	q = mb_quant_find(type);
	if (q == NULL) {
		fprintf(stderr, "mibera-worker quantize: unknown type '%s'\n",
			type);
		print_types(stderr);
		return 2;
	}
	if (q->imatrix == 2 && imx_path == NULL) {
		fprintf(stderr, "mibera-worker quantize: %s needs an importance "
			"matrix (--imatrix FILE, made by mibera-worker imatrix): "
			"without one llama.cpp refuses it\n", q->name);
		return 2;
	}
	if (strcmp(in, out) == 0 ||
	    (stat(in, &sin) == 0 && stat(out, &sout) == 0 &&
	     sin.st_dev == sout.st_dev && sin.st_ino == sout.st_ino)) {
		fprintf(stderr, "mibera-worker quantize: '%s' is both the input "
			"and the output\n", in);
		return 2;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.part", out) >= sizeof(tmp)) {
		fprintf(stderr, "mibera-worker quantize: output path too long\n");
		return 2;
	}
	rc = mb_events_from_env(&ev, "quantize");
	if (rc != 0) {
		fprintf(stderr, "mibera-worker quantize: cannot open the event "
			"journal: %s\n", mb_strerror(rc));
		return 1;
	}
	if (is_done(out, q->ftype)) {
		stat(out, &sout);
		mb_events_progress(&ev, "quantize", (uint64_t)sout.st_size,
				   (uint64_t)sout.st_size, 0, 1);
		printf("quantize: %s already done (%s)\n", out, q->name);
		ret = 0;
		goto out;
	}

	/* The header is read only for the estimate and the progress: a file
	 * it rejects still goes to llama.cpp, whose message is the one a
	 * person gets. */
	if (stat(in, &sin) == 0)
		in_size = (uint64_t)sin.st_size;
	if (mb_gguf_read(in, &in_hdr, err, sizeof(err)) != 0)
		in_hdr = NULL;
	for (i = 0; in_hdr != NULL && i < in_hdr->ntensors; i++)
		n_in += nelem(&in_hdr->tensors[i]);
	est = estimate(in_hdr, in_size, q);
	rc = free_space(out, tmp, &avail);
	if (rc != 0) {
		fprintf(stderr, "mibera-worker quantize: cannot query the free "
			"space for '%s': %s\n", out, mb_strerror(rc));
		goto out;
	}
	if (avail < est || avail - est < reserve) {
		fprintf(stderr, "mibera-worker quantize: not enough free space for "
			"'%s': %s needs about %.1f MB (from '%s', %.1f MB)%s, "
			"%.1f MB free\n",
			out, q->name, (double)est / 1e6, in, (double)in_size / 1e6,
			reserve ? " plus the reserve" : "", (double)avail / 1e6);
		ret = 3; /* a person must make room */
		goto out;
	}

	if (imx_path != NULL &&
	    imatrix_load(imx_path, &imx, err, sizeof(err)) != 0) {
		fprintf(stderr, "mibera-worker quantize: %s\n", err);
		ret = 3;
		goto out;
	}

	memset(&st, 0, sizeof(st));
	st.ev = &ev;
	st.in = in_hdr;
	st.tty = isatty(2);
	st.verbose = verbose;
	for (i = 0; in_hdr != NULL && i < in_hdr->ntensors; i++)
		st.total += in_hdr->tensors[i].size;
	t0 = st.t0 = mb_now_s();
	llama_log_set(on_log, &st);
	llama_backend_init();
	p = llama_model_quantize_default_params();
	p.nthread = (int32_t)threads;
	p.ftype = (enum llama_ftype)q->ftype;
	if (imx != NULL) {
		/* the file's provenance in the output's metadata, under the
		 * keys llama-quantize writes */
		memset(kvo, 0, sizeof(kvo));
		kvo[0].tag = LLAMA_KV_OVERRIDE_TYPE_STR;
		snprintf(kvo[0].key, sizeof(kvo[0].key), "quantize.imatrix.file");
		snprintf(kvo[0].val_str, sizeof(kvo[0].val_str), "%s",
			 strrchr(imx_path, '/') ? strrchr(imx_path, '/') + 1 :
			 imx_path);
		kvo[1].tag = LLAMA_KV_OVERRIDE_TYPE_INT;
		snprintf(kvo[1].key, sizeof(kvo[1].key),
			 "quantize.imatrix.entries_count");
		kvo[1].val_i64 = (int64_t)imx->n;
		kvo[2].tag = LLAMA_KV_OVERRIDE_TYPE_INT;
		snprintf(kvo[2].key, sizeof(kvo[2].key),
			 "quantize.imatrix.chunks_count");
		kvo[2].val_i64 = imx->chunks;
		p.imatrix = imx->data;
		p.kv_overrides = kvo;
	}
	unlink(tmp);
	rc = (int)llama_model_quantize(in, tmp, &p);
	llama_log_set(NULL, NULL);
	if (rc != 0) {
		if (st.tty)
			fputc('\n', stderr);
		fprintf(stderr, "mibera-worker quantize: llama.cpp could not "
			"quantize '%s' to %s: %s\n", in, q->name,
			st.err[0] ? st.err : "no reason given");
		unlink(tmp);
		ret = 3; /* the same input fails the same way */
		goto out;
	}
	st.done = st.total;
	show_progress(&st, 1);
	if (!is_done(tmp, q->ftype)) {
		fprintf(stderr, "mibera-worker quantize: llama.cpp wrote '%s' but "
			"it does not read back as a GGUF of type %s\n", tmp,
			q->name);
		unlink(tmp);
		goto out;
	}
	rc = publish(tmp, out);
	if (rc != 0) {
		fprintf(stderr, "mibera-worker quantize: cannot publish '%s': %s\n",
			out, mb_strerror(rc));
		unlink(tmp);
		goto out;
	}
	stat(out, &sout);
	printf("quantized %s: %s (ftype %d), %d tensors, %.2f MB from %.2f MB "
	       "(%.2f bits per weight) in %.2f s%s\n",
	       out, q->name, q->ftype, st.count, (double)sout.st_size / 1e6,
	       (double)in_size / 1e6,
	       n_in ? (double)sout.st_size * 8.0 / (double)n_in : 0.0,
	       mb_now_s() - t0, imx ? ", with an importance matrix" : "");
	for (i = 0; i < st.nfallback; i++) {
		const struct fallback *f = &st.fallback[i];

		printf("fallback: %s (rows of %lld) %s -> %s\n", f->tensor,
		       f->ncols, f->from, f->to);
		emit_fallback(&ev, f);
	}
	ret = 0;
out:
	imatrix_free(imx);
	mb_gguf_free(in_hdr);
	mb_events_close(&ev);
	return ret;
bad:
	usage(stderr);
	return 2;
}
