/*
 * gguf: GGUF v3 files, written and read.
 *
 * The writer builds the metadata (key-values and tensor infos) in memory,
 * computes the whole layout (every tensor's offset, padded to the
 * alignment, in info order), writes the header, and leaves the tensor data
 * to the caller, who writes each tensor at its offset: a converter can
 * stream gigabytes without holding them.
 *
 * The reader validates a file as hostile input: bounded counts and string
 * lengths, known types, every tensor's offset aligned, in order, and inside
 * the file, sizes without overflow.
 *
 * Format (little-endian): "GGUF", u32 version 3, i64 n_tensors, i64 n_kv;
 * KVs: string key (u64 length + bytes), u32 type, value; tensor infos:
 * string name, u32 n_dims, i64 ne[n_dims] (ggml order: ne[0] is the row
 * length), i32 ggml type, u64 offset (from the data start); padding to the
 * alignment; data.
 */
#ifndef MB_GGUF_H
#define MB_GGUF_H

#include <stddef.h>
#include <stdint.h>

#define MB_GGUF_VERSION 3
#define MB_GGUF_DEFAULT_ALIGNMENT 32
#define MB_GGUF_MAX_DIMS 4

enum mb_gguf_type {
	MB_GGUF_UINT8 = 0,
	MB_GGUF_INT8 = 1,
	MB_GGUF_UINT16 = 2,
	MB_GGUF_INT16 = 3,
	MB_GGUF_UINT32 = 4,
	MB_GGUF_INT32 = 5,
	MB_GGUF_FLOAT32 = 6,
	MB_GGUF_BOOL = 7,
	MB_GGUF_STRING = 8,
	MB_GGUF_ARRAY = 9,
	MB_GGUF_UINT64 = 10,
	MB_GGUF_INT64 = 11,
	MB_GGUF_FLOAT64 = 12,
	MB_GGUF_NTYPES
};

/* ggml tensor types mibera writes or reads (ggml.h numbering). */
enum mb_ggml_type {
	MB_GGML_F32 = 0,
	MB_GGML_F16 = 1,
	MB_GGML_Q4_0 = 2,
	MB_GGML_Q4_1 = 3,
	MB_GGML_Q5_0 = 6,
	MB_GGML_Q5_1 = 7,
	MB_GGML_Q8_0 = 8,
	MB_GGML_Q2_K = 10,
	MB_GGML_Q3_K = 11,
	MB_GGML_Q4_K = 12,
	MB_GGML_Q5_K = 13,
	MB_GGML_Q6_K = 14,
	MB_GGML_IQ2_XXS = 16,
	MB_GGML_IQ2_XS = 17,
	MB_GGML_IQ3_XXS = 18,
	MB_GGML_IQ4_NL = 20,
	MB_GGML_IQ3_S = 21,
	MB_GGML_IQ2_S = 22,
	MB_GGML_IQ4_XS = 23,
	MB_GGML_BF16 = 30,
};

/* Returns the name of a ggml type ("F16") or NULL when mibera does not know
 * it. */
const char *mb_ggml_type_name(int type);

/* Bytes of a row of ne0 elements of type (block types need ne0 a multiple
 * of their block size). Returns 0 for unknown types or a bad ne0. */
uint64_t mb_ggml_row_size(int type, uint64_t ne0);

/* --- writer --- */

struct mb_buf;

struct mb_gguf_w_tensor {
	char *name;
	int type;			/* enum mb_ggml_type */
	uint32_t ndim;
	uint64_t ne[MB_GGUF_MAX_DIMS];	/* ggml order */
	uint64_t size;			/* bytes of data, unpadded */
	uint64_t offset;		/* absolute, after mb_gguf_w_layout */
};

struct mb_gguf_w {
	uint32_t alignment;
	struct mb_buf *kv;		/* the encoded KV section */
	uint64_t n_kv;
	size_t ntensors, cap;
	struct mb_gguf_w_tensor *tensors;
	uint64_t data_start;		/* after mb_gguf_w_layout */
	uint64_t file_size;		/* after mb_gguf_w_layout */
	int laid_out;
	struct mb_gguf_names *keys;	/* private: the keys added */
	struct mb_gguf_names *names;	/* private: the tensor names */
};

/* Initialises an empty writer; alignment 0 means 32. Keys added with
 * general.alignment are the caller's business: pass the same value. */
int mb_gguf_w_init(struct mb_gguf_w *w, uint32_t alignment);

/* Frees everything; NULL-safe. */
void mb_gguf_w_release(struct mb_gguf_w *w);

/* Adds one key-value. Keys must be unique (MB_EEXIST) and at most 65535
 * bytes; strings are UTF-8 bytes without NUL. */
int mb_gguf_w_u8(struct mb_gguf_w *w, const char *key, uint8_t v);
int mb_gguf_w_i8(struct mb_gguf_w *w, const char *key, int8_t v);
int mb_gguf_w_u16(struct mb_gguf_w *w, const char *key, uint16_t v);
int mb_gguf_w_i16(struct mb_gguf_w *w, const char *key, int16_t v);
int mb_gguf_w_u32(struct mb_gguf_w *w, const char *key, uint32_t v);
int mb_gguf_w_i32(struct mb_gguf_w *w, const char *key, int32_t v);
int mb_gguf_w_u64(struct mb_gguf_w *w, const char *key, uint64_t v);
int mb_gguf_w_i64(struct mb_gguf_w *w, const char *key, int64_t v);
int mb_gguf_w_f32(struct mb_gguf_w *w, const char *key, float v);
int mb_gguf_w_f64(struct mb_gguf_w *w, const char *key, double v);
int mb_gguf_w_bool(struct mb_gguf_w *w, const char *key, int v);
int mb_gguf_w_str(struct mb_gguf_w *w, const char *key, const char *v);

/* Arrays: n elements of a fixed-size type (elem_type one of the numeric
 * types or BOOL), or n strings. */
int mb_gguf_w_arr(struct mb_gguf_w *w, const char *key, enum mb_gguf_type elem_type,
		  const void *data, uint64_t n);
int mb_gguf_w_arr_str(struct mb_gguf_w *w, const char *key,
		      const char *const *strs, uint64_t n);

/* Adds a tensor info; ne in ggml order (ne[0] = row length). Returns its
 * index (>= 0) or a negative mb_err (MB_EEXIST for a duplicate name,
 * MB_EINVAL for a bad shape or type). */
int mb_gguf_w_tensor(struct mb_gguf_w *w, const char *name, int type,
		     uint32_t ndim, const uint64_t *ne);

/* Computes every tensor's absolute offset, the data start and the file
 * size. No KV or tensor may be added after. */
int mb_gguf_w_layout(struct mb_gguf_w *w);

/* Writes the header, KVs, tensor infos and the padding up to the data
 * start at the beginning of fd (pwrite at offset 0). After layout. */
int mb_gguf_w_write_header(struct mb_gguf_w *w, int fd);

/* --- reader --- */

struct mb_gguf_kv {
	char *key;
	enum mb_gguf_type type;
	enum mb_gguf_type elem_type;	/* arrays */
	uint64_t n;			/* arrays: element count */
	union {
		uint64_t u;		/* unsigned ints and bool */
		int64_t i;		/* signed ints */
		double f;		/* floats */
		char *s;		/* STRING */
	} v;
	void *arr;			/* arrays of numbers: n packed elements */
	char **strs;			/* arrays of strings: n strings */
};
/* Arrays: arr (numbers, BOOL as one byte each) or strs (strings, pointers
 * and bytes in one allocation) is NULL when n is 0. A string value that
 * holds a NUL byte reads as its part before the NUL. */

struct mb_gguf_tensor {
	char *name;
	int type;
	uint32_t ndim;
	uint64_t ne[MB_GGUF_MAX_DIMS];
	uint64_t offset;		/* absolute in the file */
	uint64_t size;			/* bytes */
};

struct mb_gguf {
	uint32_t version;
	uint32_t alignment;
	uint64_t n_kv;
	struct mb_gguf_kv *kv;
	uint64_t ntensors;
	struct mb_gguf_tensor *tensors;
	uint64_t data_start;		/* as ggml: padded only when ntensors > 0 */
	uint64_t file_size;
};

/* Parses the GGUF at path (reads the header only; checks every tensor
 * fits in the file). MB_EFORMAT etc. with a message in err. */
int mb_gguf_read(const char *path, struct mb_gguf **out, char *err,
		 size_t errcap);

/* Parses a GGUF header held in buf (len bytes) of a file of file_size
 * bytes (buf need not hold the tensor data). */
int mb_gguf_parse(const void *buf, size_t len, uint64_t file_size,
		  struct mb_gguf **out, char *err, size_t errcap);

/* Frees g; NULL-safe. */
void mb_gguf_free(struct mb_gguf *g);

/* Returns the KV named key, or NULL. */
const struct mb_gguf_kv *mb_gguf_kv(const struct mb_gguf *g, const char *key);

/* Returns the tensor named name, or NULL. */
const struct mb_gguf_tensor *mb_gguf_tensor(const struct mb_gguf *g,
					    const char *name);

/* --- limits and additions --- */

/* Bounds the reader enforces and the writer keeps to, so that whatever
 * mibera writes it can read back. ggml refuses tensor names of 64 bytes or
 * more (GGML_MAX_NAME); a 1 MiB string is far above a chat template (about
 * 10 KB) and 16M elements far above a merges array (about 100k strings). */
#define MB_GGUF_MAX_NAME 63
#define MB_GGUF_MAX_KEY 65535
#define MB_GGUF_MAX_STRING (1u << 20)
#define MB_GGUF_MAX_ARRAY (1u << 24)
#define MB_GGUF_MAX_KVS 65536
#define MB_GGUF_MAX_TENSORS 65536
#define MB_GGUF_MAX_KV_BYTES ((size_t)256 << 20)	/* the writer's KV section */
#define MB_GGUF_MAX_HEADER ((uint64_t)1 << 30)	/* what mb_gguf_read reads */

/* Writes the zero padding after the last tensor's data, so the file is
 * exactly file_size bytes as ggml's own writer leaves it. After layout;
 * the tensor data may be written before or after. */
int mb_gguf_w_finish(struct mb_gguf_w *w, int fd);

/* --- split sets (llama.cpp's gguf-split format) ---
 *
 * A model too big for one file is a set of complete GGUF files,
 * PREFIX-00001-of-0000N.gguf ... (llama_split_path), each holding a run of
 * the tensors in order. The first holds every metadata key; each holds
 * split.no (u16, from 0), split.count (u16) and split.tensors.count (i32,
 * the tensors of the whole set). libllama loads a set from its first file
 * and finds the others by name. */
#define MB_GGUF_SPLIT_NO "split.no"
#define MB_GGUF_SPLIT_COUNT "split.count"
#define MB_GGUF_SPLIT_TENSORS "split.tensors.count"
#define MB_GGUF_SPLIT_MAX 65535	/* split.count is a u16 */

struct mb_gguf_split {
	size_t nparts;
	struct mb_gguf_w *parts;	/* laid out; parts[0] has every KV */
	size_t *part;			/* tensor i of the source: its part */
	uint64_t *offset;		/* ... and its offset in that part */
};

/* Divides the tensors of w (KVs and tensor infos added, laid out or not)
 * into parts of at most max_size bytes each, header and padding included,
 * in w's tensor order; a tensor that does not fit in max_size with a
 * header gets a part of its own. Each part is laid out and carries the
 * split keys; parts[0] has w's KVs first. Returns 0, MB_ETOOBIG for more
 * than MB_GGUF_SPLIT_MAX parts, MB_EINVAL for a writer without tensors or
 * max_size 0, MB_EEXIST when w already has split keys. Release s with
 * mb_gguf_split_release, even after a failure. */
int mb_gguf_w_split(const struct mb_gguf_w *w, uint64_t max_size,
		    struct mb_gguf_split *s);

/* Frees the parts; NULL-safe. */
void mb_gguf_split_release(struct mb_gguf_split *s);

/* Adds a KV read by the reader to w, the same type and value. */
int mb_gguf_w_copy_kv(struct mb_gguf_w *w, const struct mb_gguf_kv *kv);

#endif
