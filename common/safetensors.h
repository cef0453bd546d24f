/*
 * safetensors: the header of a safetensors file, parsed as hostile input,
 * and the shard index of a sharded model.
 *
 * A file is: 8 bytes little-endian N, N bytes of JSON
 *   {"name": {"dtype": "BF16", "shape": [r, c], "data_offsets": [b, e]},
 *    "__metadata__": {"k": "v"}}
 * then the data section; offsets are relative to its start. Parsing checks
 * every claim against the others and against the file size, so that later
 * code may trust what it gets: known dtypes, shapes without overflow,
 * e - b == elements * dtype size, offsets inside the data, no overlaps, no
 * duplicate names. Only the header is read: a shard's header is enough to
 * know the model (and can be fetched with two HTTP range requests).
 */
#ifndef MB_SAFETENSORS_H
#define MB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* Headers above this are refused (the reference implementation's limit). */
#define MB_ST_MAX_HEADER (100u << 20)
#define MB_ST_MAX_DIMS 8
#define MB_ST_MAX_NAME 512
#define MB_ST_MAX_TENSORS 1000000

enum mb_st_dtype {
	MB_ST_BOOL,
	MB_ST_U8,
	MB_ST_I8,
	MB_ST_U16,
	MB_ST_I16,
	MB_ST_U32,
	MB_ST_I32,
	MB_ST_U64,
	MB_ST_I64,
	MB_ST_F8_E4M3,
	MB_ST_F8_E5M2,
	MB_ST_F16,
	MB_ST_BF16,
	MB_ST_F32,
	MB_ST_F64,
	MB_ST_NDTYPES
};

struct mb_st_tensor {
	char *name;
	enum mb_st_dtype dtype;
	int ndim;
	uint64_t shape[MB_ST_MAX_DIMS];	/* PyTorch order: rows first */
	uint64_t nelem;
	uint64_t begin, end;	/* in the data section */
	int shard;		/* index in mb_st_model.shards; 0 for a file */
};

struct mb_st_kv {
	char *key;
	char *value;
};

struct mb_st_file {
	uint64_t header_len;	/* N */
	uint64_t data_start;	/* 8 + N: absolute offset of the data */
	uint64_t file_size;
	size_t ntensors;
	struct mb_st_tensor *tensors;	/* sorted by name */
	size_t nmeta;
	struct mb_st_kv *meta;
};

/* Returns the dtype's name ("BF16") or "?". */
const char *mb_st_dtype_name(enum mb_st_dtype d);

/* Returns the size of one element in bytes. */
size_t mb_st_dtype_size(enum mb_st_dtype d);

/* Parses a dtype name; MB_EUNSUPPORTED for anything unknown. */
int mb_st_dtype_parse(const char *s, enum mb_st_dtype *out);

/* Reads N from the first 8 bytes of a file of file_size bytes and checks
 * it against the cap and the file size. MB_EFORMAT with a message in err
 * (errcap bytes) otherwise. */
int mb_st_header_len(const uint8_t first8[8], uint64_t file_size,
		     uint64_t *len, char *err, size_t errcap);

/* Parses the N bytes of header JSON of a file of file_size bytes into a
 * new mb_st_file (caller frees with mb_st_file_free). On failure returns
 * MB_EFORMAT, MB_EJSON, MB_EUNSUPPORTED (unknown dtype) or MB_ENOMEM with
 * a message naming the tensor and the problem in err. */
int mb_st_parse_header(const char *json, uint64_t n, uint64_t file_size,
		       struct mb_st_file **out, char *err, size_t errcap);

/* Reads and parses the header of the file at path. */
int mb_st_read_file(const char *path, struct mb_st_file **out, char *err,
		    size_t errcap);

/* Frees f; NULL-safe. */
void mb_st_file_free(struct mb_st_file *f);

/* Returns the tensor named name, or NULL (binary search). */
const struct mb_st_tensor *mb_st_file_find(const struct mb_st_file *f,
					   const char *name);

/*
 * A model: one file, or the shards named by model.safetensors.index.json,
 * with every tensor of every shard in one sorted list.
 */
struct mb_st_index_entry {
	char *name;
	int shard;
};

struct mb_st_model {
	size_t nshards;
	char **shards;			/* file names, repo-relative, sorted */
	struct mb_st_file **files;	/* parsed headers, one per shard */
	size_t nindex;
	struct mb_st_index_entry *index; /* the weight map, sorted by name */
	size_t ntensors;
	struct mb_st_tensor *tensors;	/* merged, sorted; names borrowed */
	uint64_t total_bytes;		/* sum of the shards' file sizes */
};

/* Parses model.safetensors.index.json into a new model holding the shard
 * list (unique, sorted) and the weight map, with no headers yet. Shard
 * names must be safe repo paths (mb_repo_path_ok). */
int mb_st_index_parse(const char *json, size_t len, struct mb_st_model **out,
		      char *err, size_t errcap);

/* Makes a one-file model named name from f (taking ownership of f, which
 * is freed on error). */
int mb_st_model_single(const char *name, struct mb_st_file *f,
		       struct mb_st_model **out);

/* Attaches the parsed header of shard i, taking ownership of f (freed on
 * error). MB_EEXIST when shard i already has one. */
int mb_st_model_set_file(struct mb_st_model *m, size_t i,
			 struct mb_st_file *f);

/* Checks that every shard has a header and that every tensor sits in
 * exactly one shard, the one the index names, then builds the merged
 * tensor list. */
int mb_st_model_finish(struct mb_st_model *m, char *err, size_t errcap);

/* Opens the model in directory dir: model.safetensors.index.json and its
 * shards when the index exists, else the one *.safetensors file there.
 * Reads only the headers. */
int mb_st_model_open_dir(const char *dir, struct mb_st_model **out, char *err,
			 size_t errcap);

/* As mb_st_model_open_dir, with the index (if any) read from dir and the
 * shards' headers from hdir: files named as the shards whose first bytes
 * are the shards' headers and whose size is theirs (the side headers a
 * fetch writes before the data arrives, worker/fetch.c). */
int mb_st_model_open_headers(const char *dir, const char *hdir,
			     struct mb_st_model **out, char *err, size_t errcap);

/* Frees m and its files; NULL-safe. */
void mb_st_model_free(struct mb_st_model *m);

/* Returns the tensor named name in the merged list, or NULL. */
const struct mb_st_tensor *mb_st_model_find(const struct mb_st_model *m,
					    const char *name);

#endif
