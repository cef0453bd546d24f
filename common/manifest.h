/*
 * manifest: what a file must be, chunk by chunk. A manifest gives a file's
 * name, size, whole-file SHA-256 and the SHA-256 of each fixed-size chunk,
 * so a transfer can verify (and re-fetch) each chunk as it lands and resume
 * from a record of verified chunks, then check the whole.
 *
 * JSON form (version 1):
 *   {"version":1,"name":"m-Q4_K_M.gguf","size":N,"sha256":"<hex>",
 *    "chunk_size":67108864,"chunks":["<hex>",...]}
 * A manifest read from JSON is hostile input: every field is checked and
 * the chunk list must match the size exactly.
 *
 * A directory's artifacts are listed in one document (manifest.json, as
 * `mibera-worker manifest` writes it), the files sorted by name:
 *   {"version":1,"files":[<manifest>,...]}
 */
#ifndef MB_MANIFEST_H
#define MB_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/sha256.h"

struct mb_buf;

#define MB_MANIFEST_VERSION 1
#define MB_MANIFEST_DEFAULT_CHUNK (64ull << 20)
#define MB_MANIFEST_MIN_CHUNK (4ull << 10)
#define MB_MANIFEST_MAX_CHUNK (1ull << 30)
#define MB_MANIFEST_NAME_MAX 255
/* 2^20 chunks: 64 TiB at the default chunk size, 32 MiB of hashes. */
#define MB_MANIFEST_MAX_CHUNKS (1ull << 20)
/* 2^53 bytes: the largest size a JSON number carries exactly. */
#define MB_MANIFEST_MAX_SIZE (1ull << 53)

struct mb_manifest {
	char *name;		/* base name: no '/', not "." or ".." */
	uint64_t size;
	uint64_t chunk_size;
	uint8_t sha256[MB_SHA256_LEN];
	uint64_t nchunks;	/* ceil(size / chunk_size); 0 for empty */
	uint8_t (*chunks)[MB_SHA256_LEN];
};

/* Hashes the file at path in one pass into a new manifest named name
 * (caller frees with mb_manifest_free). chunk_size: a multiple of 4 KiB
 * between MB_MANIFEST_MIN_CHUNK and MB_MANIFEST_MAX_CHUNK. */
int mb_manifest_compute(const char *path, const char *name,
			uint64_t chunk_size, struct mb_manifest **out);

/* Told how far mb_manifest_compute_progress has read: done bytes from the
 * start. Returns 0 to go on, or an mb_err code that stops the hashing
 * (and is returned). */
typedef int (*mb_manifest_progress_fn)(uint64_t done, void *ctx);

/* mb_manifest_compute, calling progress (NULL: none) with ctx after each
 * block read (a few MiB). */
int mb_manifest_compute_progress(const char *path, const char *name,
				 uint64_t chunk_size,
				 mb_manifest_progress_fn progress, void *ctx,
				 struct mb_manifest **out);

/* Frees m; NULL-safe. */
void mb_manifest_free(struct mb_manifest *m);

/* Appends m as one JSON object to b. */
int mb_manifest_to_json(const struct mb_manifest *m, struct mb_buf *b);

/* Parses and validates one manifest from len bytes of JSON. On failure
 * returns MB_EJSON or MB_EFORMAT and, when err is not NULL, a message
 * naming the bad field in err (errcap bytes). */
int mb_manifest_from_json(const char *json, size_t len,
			  struct mb_manifest **out, char *err, size_t errcap);

/* Stores chunk i's offset and length (the last chunk may be short). */
void mb_manifest_chunk(const struct mb_manifest *m, uint64_t i, uint64_t *off,
		       uint64_t *len);

/* Returns 0 when data (len bytes) is chunk i, MB_ECHECKSUM when it is not,
 * MB_EINVAL when i or len cannot be chunk i's. */
int mb_manifest_check_chunk(const struct mb_manifest *m, uint64_t i,
			    const void *data, size_t len);

/* Returns 1 when a and b describe the same bytes (size and sha256). */
int mb_manifest_same(const struct mb_manifest *a, const struct mb_manifest *b);

/* Returns 1 when name is usable as a manifest file name. */
int mb_manifest_name_ok(const char *name);

/* --- a directory's list --- */

/* More artifacts than a job makes (one per quant type, and the F16) by
 * two orders of magnitude; bounds what a hostile list can make us hold. */
#define MB_MANIFEST_LIST_MAX 4096

struct mb_manifest_list {
	size_t n;
	struct mb_manifest **files;	/* n manifests, names unique */
};

/* Appends {"version":1,"files":[...]} with files[0..n) in the order given
 * (the caller sorts them) to b. */
int mb_manifest_list_to_json(struct mb_manifest *const *files, size_t n,
			     struct mb_buf *b);

/* Parses and validates a list from len bytes of JSON: the version, at most
 * MB_MANIFEST_LIST_MAX files, each a valid manifest, no name twice.
 * Returns 0 and a new list (caller frees with mb_manifest_list_free), or
 * MB_EJSON / MB_EFORMAT / MB_ENOMEM with a message in err (errcap bytes,
 * err may be NULL) and *out NULL. */
int mb_manifest_list_from_json(const char *json, size_t len,
			       struct mb_manifest_list **out, char *err,
			       size_t errcap);

/* Frees l and its manifests; NULL-safe. */
void mb_manifest_list_free(struct mb_manifest_list *l);

/* Returns l's manifest named name, or NULL. */
const struct mb_manifest *mb_manifest_list_find(
	const struct mb_manifest_list *l, const char *name);

#endif
