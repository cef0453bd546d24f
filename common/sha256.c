/* sha256: EVP SHA-256 and a double-buffered file reader. */
#include "common/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/fs.h"

/* 4 MiB blocks: large enough that syscall and thread hand-off costs vanish
 * next to hashing (about 2 ms a block at 2 GB/s), small enough that two of
 * them stay in L2/L3-friendly territory. */
#define BLOCK (4u << 20)

int mb_sha256_init(struct mb_sha256 *h)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	h->ctx = NULL;
	if (c == NULL)
		return MB_ENOMEM;
	if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c);
		return MB_ECRYPTO;
	}
	h->ctx = c;
	return 0;
}

int mb_sha256_update(struct mb_sha256 *h, const void *data, size_t n)
{
	return EVP_DigestUpdate(h->ctx, data, n) == 1 ? 0 : MB_ECRYPTO;
}

int mb_sha256_final(struct mb_sha256 *h, uint8_t out[MB_SHA256_LEN])
{
	unsigned int len = 0;
	int rc;

	rc = EVP_DigestFinal_ex(h->ctx, out, &len) == 1 &&
			     len == MB_SHA256_LEN
		     ? 0
		     : MB_ECRYPTO;
	mb_sha256_release(h);
	return rc;
}

void mb_sha256_release(struct mb_sha256 *h)
{
	if (h == NULL)
		return;
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

int mb_sha256_buf(const void *data, size_t n, uint8_t out[MB_SHA256_LEN])
{
	struct mb_sha256 h;
	int rc;

	rc = mb_sha256_init(&h);
	if (rc != 0)
		return rc;
	rc = mb_sha256_update(&h, data, n);
	if (rc != 0) {
		mb_sha256_release(&h);
		return rc;
	}
	return mb_sha256_final(&h, out);
}

void mb_sha256_hex(const uint8_t d[MB_SHA256_LEN], char hex[MB_SHA256_HEX])
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < MB_SHA256_LEN; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 15];
	}
	hex[64] = '\0';
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int mb_sha256_parse(const char *hex, uint8_t d[MB_SHA256_LEN])
{
	int i;

	for (i = 0; i < MB_SHA256_LEN; i++) {
		int hi, lo;

		if (hex[2 * i] == '\0' || hex[2 * i + 1] == '\0')
			return MB_EFORMAT;
		hi = nibble(hex[2 * i]);
		lo = nibble(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return MB_EFORMAT;
		d[i] = (uint8_t)(hi << 4 | lo);
	}
	return hex[64] == '\0' ? 0 : MB_EFORMAT;
}

/*
 * The reader thread fills one block while the caller's function consumes
 * the other. Two slots, each either empty (reader may fill) or full
 * (consumer may use); a slot with n == 0 and done set ends the stream.
 */
struct slot {
	char *data;
	size_t n;
	uint64_t off;
	int full;
};

struct reader {
	int fd;
	struct slot slot[2];
	int rc;		/* the reader's error, or 0 */
	int stop;	/* the consumer failed: reader must quit */
	int eof;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint64_t off = 0;
	int i = 0;

	for (;;) {
		struct slot *s = &r->slot[i];
		size_t got = 0;
		int rc;

		pthread_mutex_lock(&r->mu);
		while (s->full && !r->stop)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->stop) {
			pthread_mutex_unlock(&r->mu);
			break;
		}
		pthread_mutex_unlock(&r->mu);

		rc = mb_read_full(r->fd, s->data, BLOCK, &got);

		pthread_mutex_lock(&r->mu);
		if (rc != 0)
			r->rc = rc;
		s->n = got;
		s->off = off;
		s->full = 1;
		if (rc != 0 || got < BLOCK)
			r->eof = 1;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		if (rc != 0 || got < BLOCK)
			break;
		off += got;
		i ^= 1;
	}
	return NULL;
}

int mb_read_blocks(const char *path, mb_block_fn fn, void *ctx,
		   uint64_t *size)
{
	struct reader r;
	pthread_t th;
	uint64_t total = 0;
	int rc = 0, i = 0, started = 0;

	memset(&r, 0, sizeof(r));
	r.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r.fd < 0)
		return mb_err_from_errno(errno);
	posix_fadvise(r.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	r.slot[0].data = mb_malloc(BLOCK);
	r.slot[1].data = mb_malloc(BLOCK);
	if (r.slot[0].data == NULL || r.slot[1].data == NULL) {
		rc = MB_ENOMEM;
		goto out;
	}
	if (pthread_create(&th, NULL, reader_main, &r) != 0) {
		rc = MB_ENOMEM;
		goto out;
	}
	started = 1;
	for (;;) {
		struct slot *s = &r.slot[i];
		int last;

		pthread_mutex_lock(&r.mu);
		while (!s->full)
			pthread_cond_wait(&r.cv, &r.mu);
		pthread_mutex_unlock(&r.mu);
		if (r.rc != 0) {
			rc = r.rc;
			break;
		}
		last = s->n < BLOCK;
		if (s->n > 0) {
			rc = fn(s->data, s->n, s->off, ctx);
			total += s->n;
		}
		pthread_mutex_lock(&r.mu);
		s->full = 0;
		pthread_cond_broadcast(&r.cv);
		pthread_mutex_unlock(&r.mu);
		if (rc != 0 || last)
			break;
		i ^= 1;
	}
out:
	if (started) {
		pthread_mutex_lock(&r.mu);
		r.stop = 1;
		pthread_cond_broadcast(&r.cv);
		pthread_mutex_unlock(&r.mu);
		pthread_join(th, NULL);
	}
	free(r.slot[0].data);
	free(r.slot[1].data);
	pthread_mutex_destroy(&r.mu);
	pthread_cond_destroy(&r.cv);
	close(r.fd);
	if (rc == 0 && size != NULL)
		*size = total;
	return rc;
}

static int hash_block(const void *data, size_t n, uint64_t off, void *ctx)
{
	(void)off;
	return mb_sha256_update(ctx, data, n);
}

int mb_sha256_file(const char *path, uint8_t out[MB_SHA256_LEN],
		   uint64_t *size)
{
	struct mb_sha256 h;
	int rc;

	rc = mb_sha256_init(&h);
	if (rc != 0)
		return rc;
	rc = mb_read_blocks(path, hash_block, &h, size);
	if (rc != 0) {
		mb_sha256_release(&h);
		return rc;
	}
	return mb_sha256_final(&h, out);
}
