/*
 * mibera-worker quantize IN.gguf OUT.gguf TYPE [--imatrix FILE] [--threads N]
 *     [--reserve BYTES] [--split-max-size SIZE] [--verbose]
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
 *
 * Sets of parts (common/splitset.h): IN may be a set, named by its first
 * part or by the name of the whole (IN.gguf when IN-00001-of-N.gguf is
 * there). A set quantizes to a set of as many parts, as libllama's
 * keep_split makes them, written in OUT.parts/ and moved into place when
 * complete. With --split-max-size the output is written whole as OUT.part
 * and then, when it is bigger than SIZE, divided into parts of at most
 * SIZE; otherwise renamed to OUT.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/gguf.h"
#include "common/json.h"
#include "common/modelcfg.h"
#include "common/readymap.h"
#include "common/splitset.h"
#include "common/text.h"
#include "llama.h"
#include "proto/event.h"
#include "worker/imatrix.h"
#include "worker/quantplan.h"
#include "worker/verbs.h"

#define MAX_FALLBACKS 64

/* Rows of a tensor libllama quantizes at once. Its default (8 GiB) takes
 * a whole tensor: an embedding's F32 copy is gigabytes of fresh pages
 * the kernel zeroes, then reads back from memory rather than cache. A
 * slab this size gives the same bytes (each row is quantized alone). */
#define MB_QUANT_SLAB (64u << 20)

/* The libggml-base deploy/deps.sh builds (deploy/llama-patches) makes
 * Q8_0, Q4_K, Q5_K and Q6_K blocks on AVX2 lanes, the same bits as the
 * scalar code, and says so here; a libllama built elsewhere lacks the
 * call. */
extern int ggml_quantize_lanes(void) __attribute__((weak));

/* How the blocks of q were made, for the result line: "" for a type
 * without such blocks. */
static const char *lanes_note(const struct mb_quant_type *q)
{
	if (strstr(q->name, "_K") == NULL && strcmp(q->name, "Q8_0") != 0)
		return "";
	if (ggml_quantize_lanes == NULL)
		return "; blocks made by the scalar code (this libllama has "
		       "no lanes)";
	if (ggml_quantize_lanes())
		return "; blocks made on AVX2 lanes";
	if (getenv("GGML_QUANTS_SCALAR") != NULL)
		return "; blocks made by the scalar code (GGML_QUANTS_SCALAR "
		       "is set)";
	return "; blocks made by the scalar code (this CPU has no AVX2)";
}

static void usage(FILE *f)
{
	const struct mb_quant_type *t;
	size_t i, n = mb_quant_types(&t);

	fprintf(f, "usage: mibera-worker quantize IN.gguf OUT.gguf TYPE "
		   "[--imatrix FILE]\n"
		   "           [--threads N] [--reserve BYTES] [--split-max-size SIZE]\n"
		   "           [--verbose]\n\n"
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
		   "Sets of parts (llama.cpp's gguf-split): IN may be a set, "
		   "named by its first part\n"
		   "(IN-00001-of-0000N.gguf) or by IN.gguf; it quantizes to a "
		   "set of as many parts,\n"
		   "OUT-00001-of-0000N.gguf .... --split-max-size SIZE (bytes, "
		   "or K, M, G, T in\n"
		   "powers of 1000: 50G) writes OUT whole when it fits in SIZE, "
		   "else as parts of at\n"
		   "most SIZE each.\n\n"
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
	struct mb_gguf *const *in;	/* the input's headers (one per part),
					   or NULL */
	size_t nin;
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

/* Keeps llama.cpp's error lines, joined by "; ", dropping the banner
 * lines of '=' it draws around some of them. */
static void add_error(struct qstate *st, const char *text)
{
	char line[512];
	const char *p;
	size_t n;

	snprintf(line, sizeof(line), "%s", text);
	mb_trim_end(line);
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
	size_t k;

	if (st->in == NULL)
		return 1;
	for (k = 0; k < st->nin; k++)
		if ((t = mb_gguf_tensor(st->in[k], name)) != NULL)
			return t->size;
	return 0;
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
			mb_trim_end(f->from);
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

/* Returns 1 when path is a readable GGUF (or a whole set of parts,
 * common/splitset.h) whose general.file_type is ftype: a complete output
 * (outputs appear only by rename); *set gets what it is. With max (not
 * 0), its largest file must be at most max. */
static int is_done(const char *path, int ftype, uint64_t max,
		   struct mb_splitset *set)
{
	const struct mb_gguf_kv *kv;
	struct mb_gguf *g;
	char err[512];
	int ok;

	if (mb_splitset_find(path, set, err, sizeof(err)) != 0 ||
	    (max != 0 && set->largest > max) ||
	    mb_gguf_read(set->first, &g, err, sizeof(err)) != 0)
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
static uint64_t estimate(struct mb_gguf *const *gs, size_t ngs,
			 uint64_t in_size, const struct mb_quant_type *q)
{
	uint64_t est = 0, i;
	size_t k;

	if (gs == NULL)
		est = (uint64_t)((double)in_size * q->bpw / 16.0);
	for (k = 0; gs != NULL && k < ngs; k++) {
		const struct mb_gguf *g = gs[k];

		est += g->data_start;
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
/* --- the map of what is final, while llama.cpp writes ---
 *
 * llama_model_quantize writes OUT.part front to back after a placeholder
 * for the header, which it writes last. While it runs, OUT.ready says
 * which 1 MiB blocks are final (common/readymap.h, size 0: not known
 * yet): every whole block written past the header's room, taken as
 * the input's header and 1 MiB (the header keeps the input's keys and
 * tensor names). The coordinator pulls those while the rest is made, and
 * keeps only what matches the manifest after. */
#define READY_BLOCK MB_READY_BLOCK

struct ready_map {
	const char *part, *path;
	uint64_t head;			/* bytes not final until the end */
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
};

static void ready_write(struct ready_map *rm, uint64_t *last)
{
	struct stat sb;
	uint64_t n, b;
	char *bits;

	if (stat(rm->part, &sb) != 0)
		return;
	n = (uint64_t)sb.st_size / READY_BLOCK;
	if (n <= *last)
		return;
	bits = malloc(n);
	if (bits == NULL)
		return;
	for (b = 0; b < n; b++)
		bits[b] = b * READY_BLOCK >= rm->head ? '1' : '0';
	if (mb_ready_write(rm->path, 0, bits, n) == 0)
		*last = n;
	free(bits);
}

static void *ready_main(void *arg)
{
	struct ready_map *rm = arg;
	uint64_t last = 0;

	pthread_mutex_lock(&rm->mu);
	while (!rm->stop) {
		struct timespec ts;

		pthread_mutex_unlock(&rm->mu);
		ready_write(rm, &last);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&rm->mu);
		if (!rm->stop)
			pthread_cond_timedwait(&rm->cv, &rm->mu, &ts);
	}
	pthread_mutex_unlock(&rm->mu);
	return NULL;
}

/* Starts keeping path (OUT.ready) for part; 0 when it runs. */
static int ready_start(struct ready_map *rm, const char *part,
		       const char *path, uint64_t head)
{
	memset(rm, 0, sizeof(*rm));
	rm->part = part;
	rm->path = path;
	rm->head = head + READY_BLOCK;
	pthread_mutex_init(&rm->mu, NULL);
	pthread_cond_init(&rm->cv, NULL);
	if (pthread_create(&rm->th, NULL, ready_main, rm) != 0) {
		pthread_cond_destroy(&rm->cv);
		pthread_mutex_destroy(&rm->mu);
		return -1;
	}
	return 0;
}

static void ready_stop(struct ready_map *rm)
{
	pthread_mutex_lock(&rm->mu);
	rm->stop = 1;
	pthread_cond_signal(&rm->cv);
	pthread_mutex_unlock(&rm->mu);
	pthread_join(rm->th, NULL);
	pthread_cond_destroy(&rm->cv);
	pthread_mutex_destroy(&rm->mu);
}

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

/* Reads the header of every part of the input set (one for a whole
 * file) into *out; NULL when any cannot be read (llama.cpp then says
 * why). */
static struct mb_gguf **read_headers(const struct mb_splitset *in, size_t *n)
{
	struct mb_gguf **gs = calloc(in->count ? in->count : 1, sizeof(*gs));
	char path[4200], err[512];
	size_t stem;
	unsigned k, no, count;

	*n = 0;
	if (gs == NULL)
		return NULL;
	for (k = 0; k < in->count; k++) {
		if (in->count == 1)
			snprintf(path, sizeof(path), "%s", in->first);
		else if (!mb_splitset_parse_name(in->first, &stem, &no, &count) ||
			 snprintf(path, sizeof(path), "%.*s-%05u-of-%05u.gguf",
				  (int)stem, in->first, k + 1, in->count) >=
				 (int)sizeof(path))
			break;
		if (mb_gguf_read(path, &gs[k], err, sizeof(err)) != 0)
			break;
	}
	if (k < in->count) {
		while (k-- > 0)
			mb_gguf_free(gs[k]);
		free(gs);
		return NULL;
	}
	*n = in->count;
	return gs;
}

/* Moves the parts libllama wrote in tmpdir (prefix stem there) into
 * place as out's parts, each fsynced, then the directory. */
static int move_parts(const char *tmpdir, const char *out, unsigned count,
		      char *err, size_t errcap)
{
	char from[4300], to[4300], base[4200];
	const char *b = strrchr(out, '/');
	unsigned k;
	int fd, rc = 0;

	snprintf(base, sizeof(base), "%s/%s", tmpdir, b ? b + 1 : out);
	for (k = 0; rc == 0 && k < count; k++) {
		if (mb_splitset_part_path(base, k, count, from, sizeof(from)) != 0 ||
		    mb_splitset_part_path(out, k, count, to, sizeof(to)) != 0)
			return MB_ETOOBIG;
		fd = open(from, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = mb_err_from_errno(errno);
			break;
		}
		rc = mb_fsync(fd);
		close(fd);
		if (rc == 0 && rename(from, to) != 0)
			rc = mb_err_from_errno(errno);
		if (rc != 0)
			mb_seterr(err, errcap, "cannot move '%s' to '%s': %s", from,
				  to, mb_strerror(rc));
	}
	if (rc == 0)
		rc = mb_fsync_parent(out);
	return rc;
}

int verb_quantize(int argc, char **argv)
{
	struct llama_model_quantize_params p;
	const struct mb_quant_type *q;
	struct mb_events ev = { .fd = -1 };
	struct qstate st;
	struct mb_gguf **in_hdr = NULL;
	struct mb_splitset in_set, out_set;
	struct stat sin, sout;
	const char *in = NULL, *out = NULL, *type = NULL, *imx_path = NULL;
	struct imatrix *imx = NULL;
	struct llama_model_kv_override kvo[4];
	char tmp[4096], tmpdir[4096], qout[4200], err[1024], readyp[4200] = "";
	struct ready_map rm;
	int rm_on = 0;
	uint64_t threads = 0, reserve = 0, est, avail, in_size = 0, n_in = 0;
	uint64_t max_size = 0;
	size_t i, nhdr = 0;
	int a, npos = 0, verbose = 0, rc, ret = 1, keep_split = 0;
	unsigned nparts = 1;
	double t0;

	tmpdir[0] = '\0';
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
		} else if (strcmp(s, "--split-max-size") == 0 && v) {
			if (mb_splitset_parse_size(v, &max_size, err,
						   sizeof(err)) != 0) {
				fprintf(stderr, "mibera-worker quantize: "
					"--split-max-size: %s\n", err);
				return 2;
			}
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
	if (mb_splitset_parse_name(out, &i, &nparts, &nparts)) {
		fprintf(stderr, "mibera-worker quantize: name the output '%s' as "
			"a whole (NAME.gguf): its parts are named after it\n", out);
		return 2;
	}
	nparts = 1;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.part", out) >= sizeof(tmp) ||
	    (size_t)snprintf(tmpdir, sizeof(tmpdir), "%s.parts", out) >=
		    sizeof(tmpdir)) {
		fprintf(stderr, "mibera-worker quantize: output path too long\n");
		return 2;
	}
	tmpdir[0] = '\0';
	rc = mb_events_from_env(&ev, "quantize");
	if (rc != 0) {
		fprintf(stderr, "mibera-worker quantize: cannot open the event "
			"journal: %s\n", mb_strerror(rc));
		return 1;
	}
	if (is_done(out, q->ftype, max_size, &out_set)) {
		mb_events_progress(&ev, "quantize", out_set.bytes, out_set.bytes,
				   0, 1);
		printf("quantize: %s already done (%s%s)\n", out_set.first,
		       q->name, out_set.count > 1 ? ", a set of parts" : "");
		ret = 0;
		goto out;
	}

	/* the input: a file, or a set of parts named by its first part or
	 * as a whole; a set that is not whole is refused here, naming the
	 * part, rather than by llama.cpp */
	rc = mb_splitset_find(in, &in_set, err, sizeof(err));
	if (rc == MB_ENOENT) {
		/* llama.cpp's message is the one a person gets */
		memset(&in_set, 0, sizeof(in_set));
		in_set.count = 1;
		snprintf(in_set.first, sizeof(in_set.first), "%s", in);
	} else if (rc != 0 && (in_set.count > 1 || rc == MB_EINVAL)) {
		fprintf(stderr, "mibera-worker quantize: %s\n", err);
		ret = 3;
		goto out;
	} else if (rc != 0) {
		in_set.count = 1;
		snprintf(in_set.first, sizeof(in_set.first), "%s", in);
	}
	keep_split = in_set.count > 1 && max_size == 0;

	/* The header is read only for the estimate and the progress: a file
	 * it rejects still goes to llama.cpp, whose message is the one a
	 * person gets. */
	if (stat(in_set.first, &sin) == 0)
		in_size = in_set.count > 1 ? in_set.bytes : (uint64_t)sin.st_size;
	in_hdr = read_headers(&in_set, &nhdr);
	for (i = 0; i < nhdr; i++) {
		uint64_t k;

		for (k = 0; k < in_hdr[i]->ntensors; k++)
			n_in += nelem(&in_hdr[i]->tensors[k]);
	}
	est = estimate(in_hdr, nhdr, in_size, q);
	rc = free_space(out, tmp, &avail);
	if (rc != 0) {
		fprintf(stderr, "mibera-worker quantize: cannot query the free "
			"space for '%s': %s\n", out, mb_strerror(rc));
		goto out;
	}
	/* divided after, the whole output and its parts are there at once */
	if (max_size != 0 && est > max_size)
		est *= 2;
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
	st.nin = nhdr;
	st.tty = isatty(2);
	st.verbose = verbose;
	for (i = 0; i < nhdr; i++) {
		uint64_t k;

		for (k = 0; k < in_hdr[i]->ntensors; k++)
			st.total += in_hdr[i]->tensors[k].size;
	}
	t0 = st.t0 = mb_now_s();
	llama_log_set(on_log, &st);
	llama_backend_init();
	p = llama_model_quantize_default_params();
	p.nthread = (int32_t)threads;
	p.ftype = (enum llama_ftype)q->ftype;
	p.max_buf_size = MB_QUANT_SLAB;
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
	if (keep_split) {
		/* libllama writes the parts under their final names, so in a
		 * directory of their own, moved into place when all are
		 * there; its prefix is out without ".gguf" */
		const char *b = strrchr(out, '/');
		size_t bl;

		snprintf(tmpdir, sizeof(tmpdir), "%s.parts", out);
		mb_rmtree(tmpdir);
		if (mkdir(tmpdir, 0755) != 0) {
			fprintf(stderr, "mibera-worker quantize: cannot make '%s': "
				"%s\n", tmpdir, strerror(errno));
			tmpdir[0] = '\0';
			goto out;
		}
		b = b ? b + 1 : out;
		bl = strlen(b);
		if (bl >= 5 && strcmp(b + bl - 5, ".gguf") == 0)
			bl -= 5;
		snprintf(qout, sizeof(qout), "%s/%.*s", tmpdir, (int)bl, b);
		p.keep_split = true;
	} else {
		snprintf(qout, sizeof(qout), "%s", tmp);
		unlink(tmp);
		if (max_size == 0 &&
		    (size_t)snprintf(readyp, sizeof(readyp), "%s.ready", out) <
			    sizeof(readyp))
			rm_on = ready_start(&rm, tmp, readyp,
					    nhdr > 0 ? in_hdr[0]->data_start
						     : 64u << 20) == 0;
	}
	rc = (int)llama_model_quantize(in_set.first, qout, &p);
	if (rm_on)
		ready_stop(&rm);
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
	if (keep_split) {
		snprintf(qout + strlen(qout), sizeof(qout) - strlen(qout), ".gguf");
		if (!is_done(qout, q->ftype, 0, &out_set) ||
		    out_set.count != in_set.count) {
			fprintf(stderr, "mibera-worker quantize: llama.cpp wrote "
				"'%s' but it does not read back as a set of %u "
				"parts of type %s\n", qout, in_set.count, q->name);
			goto out;
		}
		rc = move_parts(tmpdir, out, out_set.count, err, sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "mibera-worker quantize: %s\n", err);
			goto out;
		}
		nparts = out_set.count;
	} else {
		if (!is_done(tmp, q->ftype, 0, &out_set)) {
			fprintf(stderr, "mibera-worker quantize: llama.cpp wrote "
				"'%s' but it does not read back as a GGUF of type "
				"%s\n", tmp, q->name);
			unlink(tmp);
			goto out;
		}
		if (max_size != 0 && out_set.bytes > max_size) {
			rc = mb_splitset_write(tmp, out, max_size, &nparts, err,
					       sizeof(err));
			unlink(tmp);
			if (rc != 0) {
				fprintf(stderr, "mibera-worker quantize: cannot "
					"divide '%s' into parts: %s\n", out, err);
				ret = rc == MB_ENOSPC ? 3 : 1;
				goto out;
			}
		} else {
			rc = publish(tmp, out);
			if (rc != 0) {
				fprintf(stderr, "mibera-worker quantize: cannot "
					"publish '%s': %s\n", out, mb_strerror(rc));
				unlink(tmp);
				goto out;
			}
		}
	}
	/* a run before with another size left another form of it */
	mb_splitset_remove_others(out, nparts);
	if (!is_done(out, q->ftype, 0, &out_set)) {
		fprintf(stderr, "mibera-worker quantize: '%s' does not read back "
			"as a GGUF of type %s\n", out, q->name);
		goto out;
	}
	if (nparts > 1)
		printf("wrote %u parts: %s ... (libllama loads the set from the "
		       "first)\n", nparts, out_set.first);
	printf("quantized %s: %s (ftype %d), %d tensors, %.2f MB from %.2f MB "
	       "(%.2f bits per weight) in %.2f s%s%s\n",
	       out_set.first, q->name, q->ftype, st.count,
	       (double)out_set.bytes / 1e6, (double)in_size / 1e6,
	       n_in ? (double)out_set.bytes * 8.0 / (double)n_in : 0.0,
	       mb_now_s() - t0, imx ? ", with an importance matrix" : "",
	       lanes_note(q));
	for (i = 0; i < st.nfallback; i++) {
		const struct fallback *f = &st.fallback[i];

		printf("fallback: %s (rows of %lld) %s -> %s\n", f->tensor,
		       f->ncols, f->from, f->to);
		emit_fallback(&ev, f);
	}
	ret = 0;
out:
	if (readyp[0] != '\0')
		unlink(readyp); /* after the file is published, or not */
	if (tmpdir[0] != '\0')
		mb_rmtree(tmpdir);
	imatrix_free(imx);
	for (i = 0; i < nhdr; i++)
		mb_gguf_free(in_hdr[i]);
	free(in_hdr);
	mb_events_close(&ev);
	return ret;
bad:
	usage(stderr);
	return 2;
}

/* --- libllama as the converter's quantizer (worker/quantplan.h) --- */

/* What a dry run's log says, line by line: "[  i/  N] NAME - [shape],
 * type = f16, " then "size = A MiB -> B MiB (q4_K)" for a tensor that
 * changes type, or "size = A MiB" for one that stays. */
struct dry {
	size_t n;
	const char *const *names;
	int *types;
	unsigned char *seen;
	long cur;			/* the tensor the line is about, or -1 */
	int cur_type;
	int imatrix;			/* a type needs an importance matrix */
	char line[512];
	size_t len;
	char err[512];
	enum ggml_log_level last;
};

static int ggml_type_named(const char *name)
{
	int t;

	for (t = 0; t < GGML_TYPE_COUNT; t++) {
		const char *n = ggml_type_name((enum ggml_type)t);

		if (n != NULL && strcmp(n, name) == 0)
			return t;
	}
	return -1;
}

static void dry_line(struct dry *d, const char *line)
{
	char name[MB_GGUF_MAX_NAME + 1], type[32];
	const char *p;
	int i, n;
	size_t k;

	if (sscanf(line, "[%d/%d] %63s", &i, &n, name) == 3) {
		d->cur = -1;
		for (k = 0; k < d->n; k++)
			if (strcmp(d->names[k], name) == 0) {
				d->cur = (long)k;
				break;
			}
		p = strstr(line, "type = ");
		d->cur_type = p != NULL && sscanf(p, "type = %31[^, ]", type) == 1
				      ? ggml_type_named(type) : -1;
		p = strstr(line, "size = ");
		if (p == NULL || d->cur < 0)
			return;
		/* the rest of the line: the type it becomes, or none */
		p = strstr(p, "->");
		if (p != NULL && (p = strrchr(p, '(')) != NULL &&
		    sscanf(p, "(%31[^)])", type) == 1)
			d->types[d->cur] = ggml_type_named(type);
		else
			d->types[d->cur] = d->cur_type;
		d->seen[d->cur] = d->types[d->cur] >= 0;
	}
}

static void dry_log(enum ggml_log_level level, const char *text, void *ctx)
{
	struct dry *d = ctx;
	const char *nl;

	if (level == GGML_LOG_LEVEL_CONT)
		level = d->last;
	d->last = level;
	if (level == GGML_LOG_LEVEL_WARN && strstr(text, "require an imatrix"))
		d->imatrix = 1;
	if (level == GGML_LOG_LEVEL_ERROR) {
		size_t n = strlen(d->err);
		char line[256];

		snprintf(line, sizeof(line), "%s", text);
		mb_trim_end(line);
		if (line[0] != '\0' && line[0] != '=')
			snprintf(d->err + n, sizeof(d->err) - n, "%s%s",
				 n ? "; " : "", line);
		return;
	}
	/* a line comes in pieces: joined up to its newline */
	while (*text != '\0') {
		size_t take;

		nl = strchr(text, '\n');
		take = nl ? (size_t)(nl - text) : strlen(text);
		if (d->len + take >= sizeof(d->line))
			take = sizeof(d->line) - 1 - d->len;
		memcpy(d->line + d->len, text, take);
		d->len += take;
		d->line[d->len] = '\0';
		if (nl == NULL)
			break;
		dry_line(d, d->line);
		d->len = 0;
		text = nl + 1;
	}
}

static int llama_plan(void *ctx, const char *path, int ftype, size_t n,
		      const char *const *names, int *types, char *why,
		      size_t cap)
{
	struct llama_model_quantize_params p;
	struct dry d;
	size_t k;
	int rc;

	(void)ctx;
	memset(&d, 0, sizeof(d));
	d.n = n;
	d.names = names;
	d.types = types;
	d.cur = -1;
	d.seen = mb_calloc(n + 1, 1);
	if (d.seen == NULL)
		return MB_ENOMEM;
	p = llama_model_quantize_default_params();
	p.ftype = (enum llama_ftype)ftype;
	p.nthread = 1;
	p.dry_run = true;
	llama_log_set(dry_log, &d);
	rc = (int)llama_model_quantize(path, "/dev/null", &p);
	if (d.len > 0)
		dry_line(&d, d.line);
	llama_log_set(NULL, NULL);
	if (rc != 0) {
		mb_seterr(why, cap, "llama.cpp's plan of it failed: %s",
			  d.err[0] ? d.err : "no reason given");
		rc = MB_EUNSUPPORTED;
	} else if (d.imatrix) {
		mb_seterr(why, cap, "it needs an importance matrix");
		rc = MB_EUNSUPPORTED;
	}
	for (k = 0; rc == 0 && k < n; k++)
		if (!d.seen[k]) {
			mb_seterr(why, cap, "llama.cpp's plan did not name '%s'",
				  names[k]);
			rc = MB_EUNSUPPORTED;
		}
	free(d.seen);
	return rc;
}

static void llama_rows(int type, const float *src, void *dst, uint64_t nrows,
		       uint64_t n)
{
	ggml_quantize_chunk((enum ggml_type)type, src, dst, 0, (int64_t)nrows,
			    (int64_t)n, NULL);
}

const struct mb_quantizer *mb_llama_quantizer(void)
{
	static const struct mb_quantizer q = { llama_plan, llama_rows, NULL };
	static int inited;

	if (!inited) {
		llama_backend_init();
		inited = 1;
	}
	return &q;
}
