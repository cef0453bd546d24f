/*
 * sha256: SHA-256 over buffers and files through OpenSSL's EVP interface
 * (which uses the CPU's SHA extensions where present). Files are read in
 * large blocks on a second thread while the first hashes, so hashing a
 * multi-gigabyte artifact runs at the speed of the slower of disk and hash.
 */
#ifndef MB_SHA256_H
#define MB_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define MB_SHA256_LEN 32
#define MB_SHA256_HEX 65 /* 64 hex digits and a NUL */

struct mb_sha256 {
	void *ctx; /* EVP_MD_CTX */
};

/* Starts a hash. MB_ENOMEM or MB_ECRYPTO on failure. */
int mb_sha256_init(struct mb_sha256 *h);

/* Adds n bytes. */
int mb_sha256_update(struct mb_sha256 *h, const void *data, size_t n);

/* Writes the digest to out and releases the context. */
int mb_sha256_final(struct mb_sha256 *h, uint8_t out[MB_SHA256_LEN]);

/* Releases a context without a digest; NULL-safe, safe after final. */
void mb_sha256_release(struct mb_sha256 *h);

/* Hashes one buffer. */
int mb_sha256_buf(const void *data, size_t n, uint8_t out[MB_SHA256_LEN]);

/* Hashes a whole file. *size gets its length when size is not NULL. */
int mb_sha256_file(const char *path, uint8_t out[MB_SHA256_LEN],
		   uint64_t *size);

/* Writes the 64 lowercase hex digits of d and a NUL to hex. */
void mb_sha256_hex(const uint8_t d[MB_SHA256_LEN], char hex[MB_SHA256_HEX]);

/* Parses 64 hex digits (either case, nothing else). MB_EFORMAT otherwise. */
int mb_sha256_parse(const char *hex, uint8_t d[MB_SHA256_LEN]);

/* A function that consumes a file block by block; returns 0 or an mb_err
 * code that stops the read. Blocks arrive in order; off is their offset. */
typedef int (*mb_block_fn)(const void *data, size_t n, uint64_t off,
			   void *ctx);

/* Reads path from start to end in large blocks, overlapping the reads
 * with the calls to fn (double buffering). *size gets the length read. */
int mb_read_blocks(const char *path, mb_block_fn fn, void *ctx,
		   uint64_t *size);

#endif
