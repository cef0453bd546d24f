/*
 * gguf: GGUF v3 files, written and read (after ggml/src/gguf.cpp).
 *
 * The writer encodes each key-value into a capped buffer as it is added and
 * keeps the tensor infos; mb_gguf_w_layout places every tensor the way
 * ggml's own writer does (in info order, each padded to the alignment), so
 * the header can be written first and the data streamed after it.
 *
 * The reader treats the file as hostile: a bounded cursor over the header
 * bytes, every count capped and checked against the bytes left before
 * anything is allocated, every tensor's offset checked exactly as llama.cpp
 * checks it, and every tensor's data inside the file.
 */
#include "common/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"

/* Arrays are copied as they lie in memory, which is the file's order only
 * on a little-endian host (every host mibera runs on). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "common/gguf.c assumes a little-endian host"
#endif

/* Fixed header: magic, version, n_tensors, n_kv. */
#define HEADER_FIXED 24
/* The smallest KV (key length, type, 1-byte value) and tensor info (name
 * length, n_dims, type, offset): counts are checked against these before
 * anything is allocated, so a 40-byte file cannot make us allocate for
 * 65536 tensors. */
#define MIN_KV_BYTES 13
#define MIN_INFO_BYTES 24
/* mb_gguf_read's first read; most headers without a tokenizer fit. */
#define FIRST_READ ((size_t)256 << 10)

static const struct {
	int type;
	const char *name;
	uint32_t blck;	/* elements per block */
	uint32_t size;	/* bytes per block */
} ggml_types[] = {
	/* checked against ggml_blck_size()/ggml_type_size() (test_gguf) */
	{ MB_GGML_F32, "F32", 1, 4 },	    { MB_GGML_F16, "F16", 1, 2 },
	{ MB_GGML_Q4_0, "Q4_0", 32, 18 },  { MB_GGML_Q4_1, "Q4_1", 32, 20 },
	{ MB_GGML_Q5_0, "Q5_0", 32, 22 },  { MB_GGML_Q5_1, "Q5_1", 32, 24 },
	{ MB_GGML_Q8_0, "Q8_0", 32, 34 },  { MB_GGML_Q2_K, "Q2_K", 256, 84 },
	{ MB_GGML_Q3_K, "Q3_K", 256, 110 }, { MB_GGML_Q4_K, "Q4_K", 256, 144 },
	{ MB_GGML_Q5_K, "Q5_K", 256, 176 }, { MB_GGML_Q6_K, "Q6_K", 256, 210 },
	{ MB_GGML_BF16, "BF16", 1, 2 },
	{ MB_GGML_IQ2_XXS, "IQ2_XXS", 256, 66 },
	{ MB_GGML_IQ2_XS, "IQ2_XS", 256, 74 },
	{ MB_GGML_IQ3_XXS, "IQ3_XXS", 256, 98 },
	{ MB_GGML_IQ4_NL, "IQ4_NL", 32, 18 },
	{ MB_GGML_IQ3_S, "IQ3_S", 256, 110 },
	{ MB_GGML_IQ2_S, "IQ2_S", 256, 82 },
	{ MB_GGML_IQ4_XS, "IQ4_XS", 256, 136 },
};

/* Bytes of one value of each KV type; 0 for STRING and ARRAY. */
static const uint8_t kv_sizes[MB_GGUF_NTYPES] = {
	[MB_GGUF_UINT8] = 1,   [MB_GGUF_INT8] = 1,    [MB_GGUF_UINT16] = 2,
	[MB_GGUF_INT16] = 2,   [MB_GGUF_UINT32] = 4,  [MB_GGUF_INT32] = 4,
	[MB_GGUF_FLOAT32] = 4, [MB_GGUF_BOOL] = 1,    [MB_GGUF_UINT64] = 8,
	[MB_GGUF_INT64] = 8,   [MB_GGUF_FLOAT64] = 8,
};

static const char *const kv_names[MB_GGUF_NTYPES] = {
	"UINT8", "INT8",   "UINT16", "INT16", "UINT32", "INT32",  "FLOAT32",
	"BOOL",	 "STRING", "ARRAY",  "UINT64", "INT64", "FLOAT64",
};

static int type_index(int type)
{
	size_t i;

	for (i = 0; i < sizeof(ggml_types) / sizeof(ggml_types[0]); i++)
		if (ggml_types[i].type == type)
			return (int)i;
	return -1;
}

const char *mb_ggml_type_name(int type)
{
	int i = type_index(type);

	return i < 0 ? NULL : ggml_types[i].name;
}

uint64_t mb_ggml_row_size(int type, uint64_t ne0)
{
	int i = type_index(type);
	uint64_t blocks;

	if (i < 0 || ne0 % ggml_types[i].blck != 0)
		return 0;
	blocks = ne0 / ggml_types[i].blck;
	if (blocks > UINT64_MAX / ggml_types[i].size)
		return 0;
	return blocks * ggml_types[i].size;
}

/* Rounds x up to a multiple of align (a power of two); MB_ETOOBIG on
 * overflow. */
static int pad_up(uint64_t x, uint64_t align, uint64_t *out)
{
	if (x > UINT64_MAX - (align - 1))
		return MB_ETOOBIG;
	*out = (x + align - 1) & ~(align - 1);
	return 0;
}

enum size_fail { SIZE_OK, SIZE_TYPE, SIZE_ROW, SIZE_OVERFLOW };

/* Bytes of a tensor of type with dims ne (unused dims 1), as ggml_nbytes
 * for a contiguous tensor. The element count must stay below INT64_MAX,
 * as ggml requires. */
static enum size_fail tensor_size(int type, const uint64_t ne[MB_GGUF_MAX_DIMS],
				  uint64_t *size)
{
	int ti = type_index(type);
	uint64_t nelem = 1, blocks;
	int i;

	if (ti < 0)
		return SIZE_TYPE;
	for (i = 0; i < MB_GGUF_MAX_DIMS; i++) {
		if (ne[i] > (uint64_t)INT64_MAX)
			return SIZE_OVERFLOW;
		if (ne[i] != 0 && nelem > (uint64_t)INT64_MAX / ne[i])
			return SIZE_OVERFLOW;
		nelem *= ne[i];
	}
	if (ne[0] % ggml_types[ti].blck != 0)
		return SIZE_ROW;
	blocks = nelem / ggml_types[ti].blck;
	if (blocks > UINT64_MAX / ggml_types[ti].size)
		return SIZE_OVERFLOW;
	*size = blocks * ggml_types[ti].size;
	return SIZE_OK;
}

/* --- a set of names (open addressing), for duplicate keys and tensors --- */

struct mb_gguf_names {
	char **slot;	/* cap entries, NULL = empty */
	size_t cap;	/* 0 or a power of two */
	size_t n;
	int owns;	/* the set holds copies, freed with it */
};

static uint64_t name_hash(const char *s)
{
	uint64_t h = 14695981039346656037ull;	/* FNV-1a */

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ull;
	}
	return h;
}

static size_t names_probe(const struct mb_gguf_names *ns, const char *name)
{
	size_t i = (size_t)name_hash(name) & (ns->cap - 1);

	while (ns->slot[i] != NULL && strcmp(ns->slot[i], name) != 0)
		i = (i + 1) & (ns->cap - 1);
	return i;
}

static int names_has(const struct mb_gguf_names *ns, const char *name)
{
	return ns->cap > 0 && ns->slot[names_probe(ns, name)] != NULL;
}

/* Adds name: 0, MB_EEXIST when it is there, MB_ENOMEM. */
static int names_add(struct mb_gguf_names *ns, const char *name)
{
	struct mb_gguf_names bigger = { NULL, 0, 0, ns->owns };
	char *copy = NULL;
	size_t i;
	int rc = MB_ENOMEM;

	if (names_has(ns, name))
		return MB_EEXIST;
	if ((ns->n + 1) * 2 > ns->cap) {
		bigger.cap = ns->cap == 0 ? 16 : ns->cap * 2;
		bigger.slot = mb_calloc(bigger.cap, sizeof(*bigger.slot));
		if (bigger.slot == NULL)
			goto out;
		for (i = 0; i < ns->cap; i++)
			if (ns->slot[i] != NULL)
				bigger.slot[names_probe(&bigger, ns->slot[i])] =
					ns->slot[i];
		bigger.n = ns->n;
		free(ns->slot);
		*ns = bigger;
	}
	if (ns->owns) {
		copy = mb_strdup(name);
		if (copy == NULL)
			goto out;
	} else {
		copy = (char *)(uintptr_t)name;
	}
	ns->slot[names_probe(ns, name)] = copy;
	ns->n++;
	rc = 0;
out:
	return rc;
}

static void names_free(struct mb_gguf_names *ns)
{
	size_t i;

	if (ns == NULL)
		return;
	if (ns->owns)
		for (i = 0; i < ns->cap; i++)
			free(ns->slot[i]);
	free(ns->slot);
	ns->slot = NULL;
	ns->cap = ns->n = 0;
}

/* --- writer --- */

int mb_gguf_w_init(struct mb_gguf_w *w, uint32_t alignment)
{
	int rc = MB_ENOMEM;

	memset(w, 0, sizeof(*w));
	if (alignment == 0)
		alignment = MB_GGUF_DEFAULT_ALIGNMENT;
	if ((alignment & (alignment - 1)) != 0)
		return MB_EINVAL;
	w->alignment = alignment;
	w->kv = mb_malloc(sizeof(*w->kv));
	if (w->kv == NULL)
		goto out;
	mb_buf_init(w->kv, MB_GGUF_MAX_KV_BYTES);
	w->keys = mb_calloc(1, sizeof(*w->keys));
	w->names = mb_calloc(1, sizeof(*w->names));
	if (w->keys == NULL || w->names == NULL)
		goto out;
	w->keys->owns = 1;
	rc = 0;
out:
	if (rc != 0)
		mb_gguf_w_release(w);
	return rc;
}

void mb_gguf_w_release(struct mb_gguf_w *w)
{
	size_t i;

	if (w == NULL)
		return;
	if (w->kv != NULL) {
		mb_buf_release(w->kv);
		free(w->kv);
	}
	names_free(w->keys);
	free(w->keys);
	names_free(w->names);
	free(w->names);
	for (i = 0; i < w->ntensors; i++)
		free(w->tensors[i].name);
	free(w->tensors);
	memset(w, 0, sizeof(*w));
}

static int put_u32(struct mb_buf *b, uint32_t v)
{
	return mb_buf_add(b, &v, sizeof(v));
}

static int put_u64(struct mb_buf *b, uint64_t v)
{
	return mb_buf_add(b, &v, sizeof(v));
}

static int put_str(struct mb_buf *b, const char *s, size_t n)
{
	int rc = put_u64(b, n);

	return rc != 0 ? rc : mb_buf_add(b, s, n);
}

/* Checks key and appends it with its type; *mark is where the KV starts,
 * for kv_end to roll back to. */
static int kv_begin(struct mb_gguf_w *w, const char *key, uint32_t type,
		    size_t *mark)
{
	size_t n;
	int rc;

	*mark = w->kv->len;
	if (w->laid_out || key == NULL)
		return MB_EINVAL;
	n = strlen(key);
	if (n == 0 || n > MB_GGUF_MAX_KEY)
		return MB_EINVAL;
	if (w->n_kv >= MB_GGUF_MAX_KVS)
		return MB_ETOOBIG;
	if (names_has(w->keys, key))
		return MB_EEXIST;
	rc = put_str(w->kv, key, n);
	if (rc == 0)
		rc = put_u32(w->kv, type);
	return rc;
}

/* Commits the KV begun at mark when rc is 0, else takes its bytes back:
 * a failed add leaves the writer as it was. */
static int kv_end(struct mb_gguf_w *w, const char *key, size_t mark, int rc)
{
	if (rc == 0)
		rc = names_add(w->keys, key);
	if (rc == 0) {
		w->n_kv++;
		return 0;
	}
	w->kv->len = mark;
	if (w->kv->data != NULL)
		w->kv->data[mark] = '\0';
	return rc;
}

static int kv_scalar(struct mb_gguf_w *w, const char *key,
		     enum mb_gguf_type type, const void *v)
{
	size_t mark;
	int rc = kv_begin(w, key, type, &mark);

	if (rc == 0)
		rc = mb_buf_add(w->kv, v, kv_sizes[type]);
	return kv_end(w, key, mark, rc);
}

int mb_gguf_w_u8(struct mb_gguf_w *w, const char *key, uint8_t v)
{
	return kv_scalar(w, key, MB_GGUF_UINT8, &v);
}

int mb_gguf_w_i8(struct mb_gguf_w *w, const char *key, int8_t v)
{
	return kv_scalar(w, key, MB_GGUF_INT8, &v);
}

int mb_gguf_w_u16(struct mb_gguf_w *w, const char *key, uint16_t v)
{
	return kv_scalar(w, key, MB_GGUF_UINT16, &v);
}

int mb_gguf_w_i16(struct mb_gguf_w *w, const char *key, int16_t v)
{
	return kv_scalar(w, key, MB_GGUF_INT16, &v);
}

int mb_gguf_w_u32(struct mb_gguf_w *w, const char *key, uint32_t v)
{
	return kv_scalar(w, key, MB_GGUF_UINT32, &v);
}

int mb_gguf_w_i32(struct mb_gguf_w *w, const char *key, int32_t v)
{
	return kv_scalar(w, key, MB_GGUF_INT32, &v);
}

int mb_gguf_w_u64(struct mb_gguf_w *w, const char *key, uint64_t v)
{
	return kv_scalar(w, key, MB_GGUF_UINT64, &v);
}

int mb_gguf_w_i64(struct mb_gguf_w *w, const char *key, int64_t v)
{
	return kv_scalar(w, key, MB_GGUF_INT64, &v);
}

int mb_gguf_w_f32(struct mb_gguf_w *w, const char *key, float v)
{
	return kv_scalar(w, key, MB_GGUF_FLOAT32, &v);
}

int mb_gguf_w_f64(struct mb_gguf_w *w, const char *key, double v)
{
	return kv_scalar(w, key, MB_GGUF_FLOAT64, &v);
}

int mb_gguf_w_bool(struct mb_gguf_w *w, const char *key, int v)
{
	uint8_t b = v != 0;

	return kv_scalar(w, key, MB_GGUF_BOOL, &b);
}

int mb_gguf_w_str(struct mb_gguf_w *w, const char *key, const char *v)
{
	size_t mark, n = v != NULL ? strlen(v) : 0;
	int rc;

	if (v == NULL)
		return MB_EINVAL;
	if (n > MB_GGUF_MAX_STRING)
		return MB_ETOOBIG;
	rc = kv_begin(w, key, MB_GGUF_STRING, &mark);
	if (rc == 0)
		rc = put_str(w->kv, v, n);
	return kv_end(w, key, mark, rc);
}

int mb_gguf_w_arr(struct mb_gguf_w *w, const char *key,
		  enum mb_gguf_type elem_type, const void *data, uint64_t n)
{
	size_t mark, bytes, i;
	uint8_t *dst;
	int rc;

	if ((unsigned)elem_type >= MB_GGUF_NTYPES || kv_sizes[elem_type] == 0 ||
	    (n > 0 && data == NULL))
		return MB_EINVAL;
	if (n > MB_GGUF_MAX_ARRAY)
		return MB_ETOOBIG;
	bytes = (size_t)n * kv_sizes[elem_type];
	rc = kv_begin(w, key, MB_GGUF_ARRAY, &mark);
	if (rc == 0)
		rc = put_u32(w->kv, elem_type);
	if (rc == 0)
		rc = put_u64(w->kv, n);
	if (rc == 0)
		rc = mb_buf_reserve(w->kv, bytes);
	if (rc == 0 && bytes > 0) {
		dst = (uint8_t *)w->kv->data + w->kv->len;
		memcpy(dst, data, bytes);
		if (elem_type == MB_GGUF_BOOL)
			for (i = 0; i < bytes; i++)
				dst[i] = dst[i] != 0;
		w->kv->len += bytes;
		w->kv->data[w->kv->len] = '\0';
	}
	return kv_end(w, key, mark, rc);
}

int mb_gguf_w_arr_str(struct mb_gguf_w *w, const char *key,
		      const char *const *strs, uint64_t n)
{
	size_t mark;
	uint64_t i;
	int rc;

	if (n > 0 && strs == NULL)
		return MB_EINVAL;
	if (n > MB_GGUF_MAX_ARRAY)
		return MB_ETOOBIG;
	for (i = 0; i < n; i++) {
		if (strs[i] == NULL)
			return MB_EINVAL;
		if (strlen(strs[i]) > MB_GGUF_MAX_STRING)
			return MB_ETOOBIG;
	}
	rc = kv_begin(w, key, MB_GGUF_ARRAY, &mark);
	if (rc == 0)
		rc = put_u32(w->kv, MB_GGUF_STRING);
	if (rc == 0)
		rc = put_u64(w->kv, n);
	for (i = 0; rc == 0 && i < n; i++)
		rc = put_str(w->kv, strs[i], strlen(strs[i]));
	return kv_end(w, key, mark, rc);
}

int mb_gguf_w_tensor(struct mb_gguf_w *w, const char *name, int type,
		     uint32_t ndim, const uint64_t *ne)
{
	struct mb_gguf_w_tensor t, *grown;
	size_t len, cap;
	uint32_t i;
	int rc;

	memset(&t, 0, sizeof(t));
	if (w->laid_out || name == NULL || ne == NULL || ndim < 1 ||
	    ndim > MB_GGUF_MAX_DIMS)
		return MB_EINVAL;
	len = strlen(name);
	if (len == 0 || len > MB_GGUF_MAX_NAME)
		return MB_EINVAL;
	for (i = 0; i < MB_GGUF_MAX_DIMS; i++)
		t.ne[i] = i < ndim ? ne[i] : 1;
	switch (tensor_size(type, t.ne, &t.size)) {
	case SIZE_OK:
		break;
	case SIZE_OVERFLOW:
		return MB_ETOOBIG;
	default:
		return MB_EINVAL;
	}
	if (w->ntensors >= MB_GGUF_MAX_TENSORS)
		return MB_ETOOBIG;
	if (names_has(w->names, name))
		return MB_EEXIST;
	rc = MB_ENOMEM;
	if (w->ntensors == w->cap) {
		cap = w->cap == 0 ? 16 : w->cap * 2;
		grown = mb_realloc(w->tensors, cap * sizeof(*grown));
		if (grown == NULL)
			goto out;
		w->tensors = grown;
		w->cap = cap;
	}
	t.name = mb_strdup(name);
	if (t.name == NULL)
		goto out;
	rc = names_add(w->names, t.name);
	if (rc != 0)
		goto out;
	t.type = type;
	t.ndim = ndim;
	w->tensors[w->ntensors] = t;
	t.name = NULL;
	rc = (int)w->ntensors++;
out:
	free(t.name);
	return rc;
}

/* Bytes of one tensor info in the header. */
static uint64_t info_bytes(const struct mb_gguf_w_tensor *t)
{
	return 8 + strlen(t->name) + 4 + 8 * (uint64_t)t->ndim + 4 + 8;
}

int mb_gguf_w_layout(struct mb_gguf_w *w)
{
	uint64_t hdr = HEADER_FIXED + (uint64_t)w->kv->len, rel = 0, padded;
	size_t i;
	int rc;

	for (i = 0; i < w->ntensors; i++)
		hdr += info_bytes(&w->tensors[i]);
	rc = pad_up(hdr, w->alignment, &w->data_start);
	for (i = 0; rc == 0 && i < w->ntensors; i++) {
		if (rel > UINT64_MAX - w->data_start) {
			rc = MB_ETOOBIG;
			break;
		}
		w->tensors[i].offset = w->data_start + rel;
		rc = pad_up(w->tensors[i].size, w->alignment, &padded);
		if (rc == 0 && padded > UINT64_MAX - rel)
			rc = MB_ETOOBIG;
		if (rc == 0)
			rel += padded;
	}
	/* the file size must fit an off_t */
	if (rc == 0 && (rel > (uint64_t)INT64_MAX ||
			w->data_start > (uint64_t)INT64_MAX - rel))
		rc = MB_ETOOBIG;
	if (rc != 0)
		return rc;
	w->file_size = w->data_start + rel;
	w->laid_out = 1;
	return 0;
}

static uint8_t *emit(uint8_t *p, const void *v, size_t n)
{
	memcpy(p, v, n);
	return p + n;
}

int mb_gguf_w_write_header(struct mb_gguf_w *w, int fd)
{
	uint32_t version = MB_GGUF_VERSION, u32;
	uint64_t n_tensors = w->ntensors, u64;
	uint8_t *buf = NULL, *p;
	size_t i;
	int rc = MB_EINVAL;

	if (!w->laid_out)
		goto out;
	rc = MB_ETOOBIG;
	if (w->data_start > SIZE_MAX)
		goto out;
	rc = MB_ENOMEM;
	buf = mb_calloc(1, (size_t)w->data_start);	/* zeros: the padding */
	if (buf == NULL)
		goto out;
	p = emit(buf, "GGUF", 4);
	p = emit(p, &version, 4);
	p = emit(p, &n_tensors, 8);
	p = emit(p, &w->n_kv, 8);
	if (w->kv->len > 0)
		p = emit(p, w->kv->data, w->kv->len);
	for (i = 0; i < w->ntensors; i++) {
		const struct mb_gguf_w_tensor *t = &w->tensors[i];

		u64 = strlen(t->name);
		p = emit(p, &u64, 8);
		p = emit(p, t->name, (size_t)u64);
		p = emit(p, &t->ndim, 4);
		p = emit(p, t->ne, 8 * (size_t)t->ndim);
		u32 = (uint32_t)t->type;
		p = emit(p, &u32, 4);
		u64 = t->offset - w->data_start;
		p = emit(p, &u64, 8);
	}
	rc = mb_pwrite_all(fd, buf, (size_t)w->data_start, 0);
out:
	free(buf);
	return rc;
}

int mb_gguf_w_finish(struct mb_gguf_w *w, int fd)
{
	static const uint8_t zeros[4096];
	const struct mb_gguf_w_tensor *last;
	uint64_t off, left;
	size_t n;
	int rc = 0;

	if (!w->laid_out)
		return MB_EINVAL;
	if (w->ntensors == 0)
		return 0;
	last = &w->tensors[w->ntensors - 1];
	off = last->offset + last->size;
	left = w->file_size - off;
	while (rc == 0 && left > 0) {
		n = left < sizeof(zeros) ? (size_t)left : sizeof(zeros);
		rc = mb_pwrite_all(fd, zeros, n, off);
		off += n;
		left -= n;
	}
	return rc;
}

/* --- reader --- */

/* A bounded cursor over the header bytes held (len) of a file of
 * file_size bytes. */
struct cur {
	const uint8_t *p;
	size_t len, pos;
	uint64_t file_size;
	int more;	/* a read ran past len but not past the file's end */
	char *err;
	size_t errcap;
};

/* Quotes a name from the file for a message: at most 64 bytes, control
 * characters as '?', so a hostile name cannot forge log lines. */
static const char *show(const char *s, char out[72])
{
	size_t i;

	for (i = 0; s[i] != '\0' && i < 64; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	if (s[i] != '\0') {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* Checks that n more bytes are there; what says what is being read. */
static int need(struct cur *c, uint64_t n, const char *what)
{
	if (n <= c->len - c->pos)
		return 0;
	if (n <= c->file_size - c->pos) {
		c->more = 1;
		mb_seterr(c->err, c->errcap, "%s: the header is longer than the "
		       "%zu bytes read", what, c->len);
	} else {
		mb_seterr(c->err, c->errcap, "%s: %llu bytes at offset %zu run "
		       "past the end of the %llu-byte file", what,
		       (unsigned long long)n, c->pos,
		       (unsigned long long)c->file_size);
	}
	return MB_EFORMAT;
}

static int get(struct cur *c, void *v, size_t n, const char *what)
{
	int rc = need(c, n, what);

	if (rc == 0) {
		memcpy(v, c->p + c->pos, n);
		c->pos += n;
	}
	return rc;
}

/* Reads a string of at most max bytes into a heap copy. Names (keys and
 * tensor names) may be neither empty nor hold a NUL byte. */
static int get_str(struct cur *c, uint64_t max, int is_name, char **out,
		   const char *what)
{
	uint64_t n;
	int rc;

	*out = NULL;
	rc = get(c, &n, 8, what);
	if (rc != 0)
		return rc;
	if (n > max) {
		mb_seterr(c->err, c->errcap, "%s: length %llu exceeds %llu", what,
		       (unsigned long long)n, (unsigned long long)max);
		return MB_EFORMAT;
	}
	rc = need(c, n, what);
	if (rc != 0)
		return rc;
	if (is_name && (n == 0 || memchr(c->p + c->pos, '\0', n) != NULL)) {
		mb_seterr(c->err, c->errcap, "%s: name is empty or holds a NUL",
		       what);
		return MB_EFORMAT;
	}
	*out = mb_malloc((size_t)n + 1);
	if (*out == NULL) {
		mb_seterr(c->err, c->errcap, "%s: out of memory", what);
		return MB_ENOMEM;
	}
	memcpy(*out, c->p + c->pos, n);
	(*out)[n] = '\0';
	c->pos += n;
	return 0;
}

/* An array of n strings, pointers and bytes in one allocation: a pass to
 * check the lengths and sum them, a pass to copy. The allocation is about
 * the bytes the array holds in the file. */
static int get_str_array(struct cur *c, struct mb_gguf_kv *kv, const char *what)
{
	size_t start = c->pos, total = 0;
	uint64_t i, len;
	char *blob;
	int rc;

	/* every element has its 8-byte length */
	rc = need(c, kv->n * 8, what);
	for (i = 0; rc == 0 && i < kv->n; i++) {
		rc = get(c, &len, 8, what);
		if (rc == 0 && len > MB_GGUF_MAX_STRING) {
			mb_seterr(c->err, c->errcap, "%s: string %llu length %llu "
			       "exceeds %u", what, (unsigned long long)i,
			       (unsigned long long)len, MB_GGUF_MAX_STRING);
			rc = MB_EFORMAT;
		}
		if (rc == 0)
			rc = need(c, len, what);
		if (rc == 0) {
			c->pos += len;
			total += len;
		}
	}
	if (rc != 0 || kv->n == 0)
		return rc;
	kv->strs = mb_malloc(kv->n * sizeof(char *) + total + kv->n);
	if (kv->strs == NULL) {
		mb_seterr(c->err, c->errcap, "%s: out of memory", what);
		return MB_ENOMEM;
	}
	blob = (char *)(kv->strs + kv->n);
	c->pos = start;
	for (i = 0; i < kv->n; i++) {
		memcpy(&len, c->p + c->pos, 8);
		c->pos += 8;
		kv->strs[i] = blob;
		memcpy(blob, c->p + c->pos, len);
		blob[len] = '\0';
		blob += len + 1;
		c->pos += len;
	}
	return 0;
}

static int get_kv(struct cur *c, struct mb_gguf_kv *kv, uint64_t idx,
		  struct mb_gguf_names *keys)
{
	char what[96], q[72];
	uint32_t type, elem;
	uint8_t v[8];
	int rc;

	snprintf(what, sizeof(what), "key #%llu", (unsigned long long)idx);
	rc = get_str(c, MB_GGUF_MAX_STRING, 1, &kv->key, what);
	if (rc != 0)
		return rc;
	snprintf(what, sizeof(what), "key '%s'", show(kv->key, q));
	rc = names_add(keys, kv->key);
	if (rc == MB_EEXIST) {
		mb_seterr(c->err, c->errcap, "duplicate key '%s'", q);
		rc = MB_EFORMAT;
	} else if (rc != 0) {
		mb_seterr(c->err, c->errcap, "%s: out of memory", what);
	}
	if (rc == 0)
		rc = get(c, &type, 4, what);
	if (rc != 0)
		return rc;
	if (type == MB_GGUF_ARRAY) {
		rc = get(c, &elem, 4, what);
		if (rc == 0)
			rc = get(c, &kv->n, 8, what);
		if (rc != 0)
			return rc;
		if (elem == MB_GGUF_ARRAY) {
			mb_seterr(c->err, c->errcap, "%s is an array of arrays",
			       what);
			return MB_EFORMAT;
		}
		if (elem >= MB_GGUF_NTYPES) {
			mb_seterr(c->err, c->errcap, "%s has unknown array element "
			       "type %u", what, elem);
			return MB_EFORMAT;
		}
		if (kv->n > MB_GGUF_MAX_ARRAY) {
			mb_seterr(c->err, c->errcap, "%s: array of %llu elements "
			       "exceeds %u", what, (unsigned long long)kv->n,
			       MB_GGUF_MAX_ARRAY);
			return MB_EFORMAT;
		}
		kv->type = MB_GGUF_ARRAY;
		kv->elem_type = (enum mb_gguf_type)elem;
		if (elem == MB_GGUF_STRING)
			return get_str_array(c, kv, what);
		rc = need(c, kv->n * kv_sizes[elem], what);
		if (rc != 0 || kv->n == 0)
			return rc;
		kv->arr = mb_malloc(kv->n * kv_sizes[elem]);
		if (kv->arr == NULL) {
			mb_seterr(c->err, c->errcap, "%s: out of memory", what);
			return MB_ENOMEM;
		}
		return get(c, kv->arr, kv->n * kv_sizes[elem], what);
	}
	if (type >= MB_GGUF_NTYPES) {
		mb_seterr(c->err, c->errcap, "%s has unknown type %u", what, type);
		return MB_EFORMAT;
	}
	kv->type = (enum mb_gguf_type)type;
	if (type == MB_GGUF_STRING)
		return get_str(c, MB_GGUF_MAX_STRING, 0, &kv->v.s, what);
	rc = get(c, v, kv_sizes[type], what);
	if (rc != 0)
		return rc;
	switch (kv->type) {
	case MB_GGUF_UINT8: kv->v.u = v[0]; break;
	case MB_GGUF_BOOL: kv->v.u = v[0] != 0; break;
	case MB_GGUF_INT8: kv->v.i = (int8_t)v[0]; break;
	case MB_GGUF_UINT16: { uint16_t x; memcpy(&x, v, 2); kv->v.u = x; break; }
	case MB_GGUF_INT16: { int16_t x; memcpy(&x, v, 2); kv->v.i = x; break; }
	case MB_GGUF_UINT32: { uint32_t x; memcpy(&x, v, 4); kv->v.u = x; break; }
	case MB_GGUF_INT32: { int32_t x; memcpy(&x, v, 4); kv->v.i = x; break; }
	case MB_GGUF_UINT64: memcpy(&kv->v.u, v, 8); break;
	case MB_GGUF_INT64: memcpy(&kv->v.i, v, 8); break;
	case MB_GGUF_FLOAT32: { float x; memcpy(&x, v, 4); kv->v.f = x; break; }
	case MB_GGUF_FLOAT64: memcpy(&kv->v.f, v, 8); break;
	default: break;
	}
	return 0;
}

/* Reads one tensor info; t->offset holds the offset from the data start
 * until the caller makes it absolute. */
static int get_tensor(struct cur *c, struct mb_gguf_tensor *t, uint64_t idx,
		      struct mb_gguf_names *names)
{
	char what[96], q[72];
	int64_t ne;
	int32_t type;
	uint32_t i;
	int rc;

	snprintf(what, sizeof(what), "tensor #%llu", (unsigned long long)idx);
	rc = get_str(c, MB_GGUF_MAX_NAME, 1, &t->name, what);
	if (rc != 0)
		return rc;
	show(t->name, q);
	snprintf(what, sizeof(what), "tensor '%s'", q);
	rc = names_add(names, t->name);
	if (rc == MB_EEXIST) {
		mb_seterr(c->err, c->errcap, "duplicate tensor name '%s'", q);
		rc = MB_EFORMAT;
	} else if (rc != 0) {
		mb_seterr(c->err, c->errcap, "%s: out of memory", what);
	}
	if (rc == 0)
		rc = get(c, &t->ndim, 4, what);
	if (rc != 0)
		return rc;
	if (t->ndim < 1 || t->ndim > MB_GGUF_MAX_DIMS) {
		mb_seterr(c->err, c->errcap, "%s has %u dimensions, expected 1..%d",
		       what, t->ndim, MB_GGUF_MAX_DIMS);
		return MB_EFORMAT;
	}
	for (i = 0; i < MB_GGUF_MAX_DIMS; i++) {
		ne = 1;
		if (i < t->ndim && (rc = get(c, &ne, 8, what)) != 0)
			return rc;
		if (ne < 0) {
			mb_seterr(c->err, c->errcap, "%s dimension %u is negative "
			       "(%lld)", what, i, (long long)ne);
			return MB_EFORMAT;
		}
		t->ne[i] = (uint64_t)ne;
	}
	rc = get(c, &type, 4, what);
	if (rc != 0)
		return rc;
	t->type = type;
	switch (tensor_size(type, t->ne, &t->size)) {
	case SIZE_OK:
		break;
	case SIZE_TYPE:
		mb_seterr(c->err, c->errcap, "%s has unknown ggml type %d", what,
		       (int)type);
		return MB_EFORMAT;
	case SIZE_ROW: {
		/* only a known type has a block size to miss */
		int ti = type_index(type);

		mb_seterr(c->err, c->errcap, "%s row of %llu elements is not a "
		       "multiple of the %s block size %u", what,
		       (unsigned long long)t->ne[0], mb_ggml_type_name(type),
		       ti >= 0 ? ggml_types[ti].blck : 0u);
		return MB_EFORMAT;
	}
	default:
		mb_seterr(c->err, c->errcap, "%s shape [%llu, %llu, %llu, %llu] "
		       "overflows", what, (unsigned long long)t->ne[0],
		       (unsigned long long)t->ne[1],
		       (unsigned long long)t->ne[2],
		       (unsigned long long)t->ne[3]);
		return MB_EFORMAT;
	}
	return get(c, &t->offset, 8, what);
}

/* general.alignment when present: a UINT32 power of two. */
static int get_alignment(struct cur *c, const struct mb_gguf *g, uint32_t *out)
{
	const struct mb_gguf_kv *kv = mb_gguf_kv(g, "general.alignment");

	*out = MB_GGUF_DEFAULT_ALIGNMENT;
	if (kv == NULL)
		return 0;
	if (kv->type != MB_GGUF_UINT32) {
		mb_seterr(c->err, c->errcap, "key 'general.alignment' must be "
		       "UINT32, not %s", kv_names[kv->type]);
		return MB_EFORMAT;
	}
	if (kv->v.u == 0 || (kv->v.u & (kv->v.u - 1)) != 0) {
		mb_seterr(c->err, c->errcap, "general.alignment %llu is not a "
		       "power of two", (unsigned long long)kv->v.u);
		return MB_EFORMAT;
	}
	*out = (uint32_t)kv->v.u;
	return 0;
}

/* Places the data section and checks every tensor's offset as llama.cpp
 * does: each one exactly where the previous one's padded data ends, and
 * its data inside the file. */
static int check_offsets(struct cur *c, struct mb_gguf *g)
{
	uint64_t expect = 0, room, padded = 0;
	char q[72];
	uint64_t i;

	g->data_start = c->pos;
	if (g->ntensors == 0)
		return 0;	/* as ggml: no padding without tensors */
	if (pad_up(c->pos, g->alignment, &g->data_start) != 0 ||
	    g->data_start > c->file_size) {
		mb_seterr(c->err, c->errcap, "data start %llu is past the end of "
		       "the %llu-byte file", (unsigned long long)g->data_start,
		       (unsigned long long)c->file_size);
		return MB_EFORMAT;
	}
	room = c->file_size - g->data_start;
	for (i = 0; i < g->ntensors; i++) {
		struct mb_gguf_tensor *t = &g->tensors[i];

		show(t->name, q);
		if (t->offset % g->alignment != 0) {
			mb_seterr(c->err, c->errcap, "tensor '%s' offset %llu is not "
			       "a multiple of the alignment %u", q,
			       (unsigned long long)t->offset, g->alignment);
			return MB_EFORMAT;
		}
		if (t->offset != expect) {
			mb_seterr(c->err, c->errcap, "tensor '%s' has offset %llu, "
			       "expected %llu", q, (unsigned long long)t->offset,
			       (unsigned long long)expect);
			return MB_EFORMAT;
		}
		if (t->size > room || t->offset > room - t->size) {
			mb_seterr(c->err, c->errcap, "tensor '%s' data (%llu bytes "
			       "at %llu) is past the end of the %llu-byte file",
			       q, (unsigned long long)t->size,
			       (unsigned long long)(g->data_start + t->offset),
			       (unsigned long long)c->file_size);
			return MB_EFORMAT;
		}
		/* cannot overflow: size and offset are within the file */
		(void)pad_up(t->size, g->alignment, &padded);
		expect = t->offset + padded;
		t->offset += g->data_start;
	}
	return 0;
}

static int parse(struct cur *c, struct mb_gguf **out)
{
	struct mb_gguf_names keys = { NULL, 0, 0, 0 };
	struct mb_gguf_names names = { NULL, 0, 0, 0 };
	struct mb_gguf *g = NULL;
	uint8_t magic[4];
	int64_t n_tensors, n_kv;
	uint64_t i;
	int rc;

	*out = NULL;
	rc = get(c, magic, 4, "magic");
	if (rc != 0)
		goto out;
	if (memcmp(magic, "GGUF", 4) != 0) {
		for (i = 0; i < 4; i++)
			if (magic[i] < 0x20 || magic[i] > 0x7e)
				magic[i] = '?';
		mb_seterr(c->err, c->errcap, "bad magic '%.4s', expected 'GGUF'",
		       (const char *)magic);
		rc = MB_EFORMAT;
		goto out;
	}
	rc = MB_ENOMEM;
	g = mb_calloc(1, sizeof(*g));
	if (g == NULL) {
		mb_seterr(c->err, c->errcap, "out of memory");
		goto out;
	}
	rc = get(c, &g->version, 4, "version");
	if (rc != 0)
		goto out;
	if (g->version != 2 && g->version != 3) {
		mb_seterr(c->err, c->errcap, "unsupported GGUF version %u",
		       g->version);
		rc = MB_EUNSUPPORTED;
		goto out;
	}
	rc = get(c, &n_tensors, 8, "tensor count");
	if (rc == 0)
		rc = get(c, &n_kv, 8, "key-value count");
	if (rc != 0)
		goto out;
	rc = MB_EFORMAT;
	if (n_tensors < 0 || n_tensors > MB_GGUF_MAX_TENSORS) {
		mb_seterr(c->err, c->errcap, "tensor count %lld is outside 0..%d",
		       (long long)n_tensors, MB_GGUF_MAX_TENSORS);
		goto out;
	}
	if (n_kv < 0 || n_kv > MB_GGUF_MAX_KVS) {
		mb_seterr(c->err, c->errcap, "key-value count %lld is outside 0..%d",
		       (long long)n_kv, MB_GGUF_MAX_KVS);
		goto out;
	}
	if ((uint64_t)n_kv * MIN_KV_BYTES + (uint64_t)n_tensors * MIN_INFO_BYTES >
	    c->file_size - c->pos) {
		mb_seterr(c->err, c->errcap, "%lld key-values and %lld tensors "
		       "cannot fit in the %llu-byte file", (long long)n_kv,
		       (long long)n_tensors, (unsigned long long)c->file_size);
		goto out;
	}
	rc = MB_ENOMEM;
	g->kv = mb_calloc(n_kv > 0 ? (size_t)n_kv : 1, sizeof(*g->kv));
	g->tensors = mb_calloc(n_tensors > 0 ? (size_t)n_tensors : 1,
			       sizeof(*g->tensors));
	if (g->kv == NULL || g->tensors == NULL) {
		mb_seterr(c->err, c->errcap, "out of memory");
		goto out;
	}
	g->n_kv = (uint64_t)n_kv;
	g->ntensors = (uint64_t)n_tensors;
	rc = 0;
	for (i = 0; rc == 0 && i < g->n_kv; i++)
		rc = get_kv(c, &g->kv[i], i, &keys);
	if (rc == 0)
		rc = get_alignment(c, g, &g->alignment);
	for (i = 0; rc == 0 && i < g->ntensors; i++)
		rc = get_tensor(c, &g->tensors[i], i, &names);
	if (rc == 0)
		rc = check_offsets(c, g);
	if (rc != 0)
		goto out;
	g->file_size = c->file_size;
	*out = g;
	g = NULL;
out:
	names_free(&keys);
	names_free(&names);
	mb_gguf_free(g);
	return rc;
}

int mb_gguf_parse(const void *buf, size_t len, uint64_t file_size,
		  struct mb_gguf **out, char *err, size_t errcap)
{
	struct cur c = { buf, len, 0, file_size, 0, err, errcap };

	*out = NULL;
	if ((buf == NULL && len > 0) || len > file_size) {
		mb_seterr(err, errcap, "%zu header bytes for a %llu-byte file", len,
		       (unsigned long long)file_size);
		return MB_EINVAL;
	}
	return parse(&c, out);
}

int mb_gguf_read(const char *path, struct mb_gguf **out, char *err,
		 size_t errcap)
{
	struct cur c;
	struct stat st;
	uint8_t *buf = NULL, *grown;
	size_t want, got;
	uint64_t size;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = mb_err_from_errno(errno);
		mb_seterr(err, errcap, "cannot open '%s': %s", path,
		       strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = MB_EINVAL;
		mb_seterr(err, errcap, "'%s' is not a regular file", path);
		goto out;
	}
	size = (uint64_t)st.st_size;
	want = size < FIRST_READ ? (size_t)size : FIRST_READ;
	for (;;) {
		rc = MB_ENOMEM;
		grown = mb_realloc(buf, want > 0 ? want : 1);
		if (grown == NULL) {
			mb_seterr(err, errcap, "out of memory");
			goto out;
		}
		buf = grown;
		rc = mb_pread_full(fd, buf, want, 0, &got);
		if (rc != 0) {
			mb_seterr(err, errcap, "cannot read '%s': %s", path,
			       mb_strerror(rc));
			goto out;
		}
		if (got < want) {
			rc = MB_EIO;
			mb_seterr(err, errcap, "'%s' shrank while being read", path);
			goto out;
		}
		c = (struct cur){ buf, want, 0, size, 0, err, errcap };
		rc = parse(&c, out);
		/* a long header (a tokenizer): read more and parse again */
		if (rc == 0 || !c.more || want >= MB_GGUF_MAX_HEADER)
			break;
		want = size / 4 < want ? (size_t)size : want * 4;
		if (want > MB_GGUF_MAX_HEADER)
			want = MB_GGUF_MAX_HEADER;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

void mb_gguf_free(struct mb_gguf *g)
{
	uint64_t i;

	if (g == NULL)
		return;
	for (i = 0; g->kv != NULL && i < g->n_kv; i++) {
		free(g->kv[i].key);
		if (g->kv[i].type == MB_GGUF_STRING)
			free(g->kv[i].v.s);
		free(g->kv[i].arr);
		free(g->kv[i].strs);
	}
	for (i = 0; g->tensors != NULL && i < g->ntensors; i++)
		free(g->tensors[i].name);
	free(g->kv);
	free(g->tensors);
	free(g);
}

const struct mb_gguf_kv *mb_gguf_kv(const struct mb_gguf *g, const char *key)
{
	uint64_t i;

	for (i = 0; i < g->n_kv; i++)
		if (g->kv[i].key != NULL && strcmp(g->kv[i].key, key) == 0)
			return &g->kv[i];
	return NULL;
}

const struct mb_gguf_tensor *mb_gguf_tensor(const struct mb_gguf *g,
					    const char *name)
{
	uint64_t i;

	for (i = 0; i < g->ntensors; i++)
		if (g->tensors[i].name != NULL &&
		    strcmp(g->tensors[i].name, name) == 0)
			return &g->tensors[i];
	return NULL;
}

/* --- split sets --- */

/* The bytes of a KV with a key of klen bytes and a value of vlen. */
#define KV_BYTES(klen, vlen) (8 + (uint64_t)(klen) + 4 + (uint64_t)(vlen))

int mb_gguf_w_split(const struct mb_gguf_w *w, uint64_t max_size,
		    struct mb_gguf_split *s)
{
	uint64_t split_kv, align_kv = 0, hdr = 0, data = 0, hs, padded;
	size_t i, k, np = 0, in_part = 0, *next = NULL;
	int rc;

	memset(s, 0, sizeof(*s));
	if (w->ntensors == 0 || max_size == 0)
		return MB_EINVAL;
	if (names_has(w->keys, MB_GGUF_SPLIT_NO) ||
	    names_has(w->keys, MB_GGUF_SPLIT_COUNT) ||
	    names_has(w->keys, MB_GGUF_SPLIT_TENSORS))
		return MB_EEXIST;
	if (w->ntensors > (size_t)INT32_MAX)
		return MB_ETOOBIG;
	split_kv = KV_BYTES(strlen(MB_GGUF_SPLIT_NO), 2) +
		   KV_BYTES(strlen(MB_GGUF_SPLIT_COUNT), 2) +
		   KV_BYTES(strlen(MB_GGUF_SPLIT_TENSORS), 4);
	/* the parts after the first carry no general.alignment: ggml reads
	 * them at its default unless told */
	if (w->alignment != MB_GGUF_DEFAULT_ALIGNMENT)
		align_kv = KV_BYTES(strlen("general.alignment"), 4);
	rc = MB_ENOMEM;
	s->part = mb_calloc(w->ntensors, sizeof(*s->part));
	s->offset = mb_calloc(w->ntensors, sizeof(*s->offset));
	if (s->part == NULL || s->offset == NULL)
		goto out;

	/* first the division: a part grows while its whole file (header,
	 * infos, padded data) stays within max_size */
	hdr = HEADER_FIXED + split_kv + w->kv->len;
	for (i = 0; i < w->ntensors; i++) {
		const struct mb_gguf_w_tensor *t = &w->tensors[i];
		uint64_t total;

		rc = pad_up(t->size, w->alignment, &padded);
		if (rc == 0)
			rc = pad_up(hdr + info_bytes(t), w->alignment, &hs);
		if (rc != 0)
			goto out;
		total = hs + data + padded;
		if (in_part > 0 && (total < hs || total > max_size)) {
			np++;
			in_part = 0;
			data = 0;
			hdr = HEADER_FIXED + split_kv + align_kv;
		}
		if (np >= MB_GGUF_SPLIT_MAX) {
			rc = MB_ETOOBIG;
			goto out;
		}
		s->part[i] = np;
		hdr += info_bytes(t);
		data += padded;
		in_part++;
	}
	np++;

	/* then the writers */
	rc = MB_ENOMEM;
	s->parts = mb_calloc(np, sizeof(*s->parts));
	next = mb_calloc(np, sizeof(*next));
	if (s->parts == NULL || next == NULL)
		goto out;
	s->nparts = np;
	for (k = 0; k < np; k++) {
		struct mb_gguf_w *p = &s->parts[k];

		rc = mb_gguf_w_init(p, w->alignment);
		if (rc == 0 && k == 0) {
			rc = mb_buf_add(p->kv, w->kv->data, w->kv->len);
			for (i = 0; rc == 0 && i < w->keys->cap; i++)
				if (w->keys->slot[i] != NULL)
					rc = names_add(p->keys, w->keys->slot[i]);
			p->n_kv = w->n_kv;
		} else if (rc == 0 && align_kv != 0) {
			rc = mb_gguf_w_u32(p, "general.alignment", w->alignment);
		}
		if (rc == 0)
			rc = mb_gguf_w_u16(p, MB_GGUF_SPLIT_NO, (uint16_t)k);
		if (rc == 0)
			rc = mb_gguf_w_u16(p, MB_GGUF_SPLIT_COUNT, (uint16_t)np);
		if (rc == 0)
			rc = mb_gguf_w_i32(p, MB_GGUF_SPLIT_TENSORS,
					   (int32_t)w->ntensors);
		if (rc != 0)
			goto out;
	}
	for (i = 0; i < w->ntensors; i++) {
		const struct mb_gguf_w_tensor *t = &w->tensors[i];

		rc = mb_gguf_w_tensor(&s->parts[s->part[i]], t->name, t->type,
				      t->ndim, t->ne);
		if (rc < 0)
			goto out;
	}
	for (k = 0; k < np; k++)
		if ((rc = mb_gguf_w_layout(&s->parts[k])) != 0)
			goto out;
	for (i = 0; i < w->ntensors; i++)
		s->offset[i] = s->parts[s->part[i]].tensors[next[s->part[i]]++].offset;
	rc = 0;
out:
	free(next);
	return rc;
}

void mb_gguf_split_release(struct mb_gguf_split *s)
{
	size_t k;

	if (s == NULL)
		return;
	for (k = 0; k < s->nparts; k++)
		mb_gguf_w_release(&s->parts[k]);
	free(s->parts);
	free(s->part);
	free(s->offset);
	memset(s, 0, sizeof(*s));
}

int mb_gguf_w_copy_kv(struct mb_gguf_w *w, const struct mb_gguf_kv *kv)
{
	switch (kv->type) {
	case MB_GGUF_UINT8:
		return mb_gguf_w_u8(w, kv->key, (uint8_t)kv->v.u);
	case MB_GGUF_INT8:
		return mb_gguf_w_i8(w, kv->key, (int8_t)kv->v.i);
	case MB_GGUF_UINT16:
		return mb_gguf_w_u16(w, kv->key, (uint16_t)kv->v.u);
	case MB_GGUF_INT16:
		return mb_gguf_w_i16(w, kv->key, (int16_t)kv->v.i);
	case MB_GGUF_UINT32:
		return mb_gguf_w_u32(w, kv->key, (uint32_t)kv->v.u);
	case MB_GGUF_INT32:
		return mb_gguf_w_i32(w, kv->key, (int32_t)kv->v.i);
	case MB_GGUF_UINT64:
		return mb_gguf_w_u64(w, kv->key, kv->v.u);
	case MB_GGUF_INT64:
		return mb_gguf_w_i64(w, kv->key, kv->v.i);
	case MB_GGUF_FLOAT32:
		return mb_gguf_w_f32(w, kv->key, (float)kv->v.f);
	case MB_GGUF_FLOAT64:
		return mb_gguf_w_f64(w, kv->key, kv->v.f);
	case MB_GGUF_BOOL:
		return mb_gguf_w_bool(w, kv->key, kv->v.u != 0);
	case MB_GGUF_STRING:
		return mb_gguf_w_str(w, kv->key, kv->v.s);
	case MB_GGUF_ARRAY:
		if (kv->elem_type == MB_GGUF_STRING)
			return mb_gguf_w_arr_str(w, kv->key,
						 (const char *const *)kv->strs,
						 kv->n);
		return mb_gguf_w_arr(w, kv->key, kv->elem_type, kv->arr, kv->n);
	default:
		return MB_EINVAL;
	}
}
