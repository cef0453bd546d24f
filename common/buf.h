/*
 * buf: a growable byte buffer with a hard size cap (after curl's dynbuf and
 * git's strbuf). Everything that accumulates bytes from outside (JSON from
 * the hub, protocol lines, command output) goes through one of these, so a
 * hostile peer can never make it grow past the cap the caller chose.
 *
 * The data is always NUL-terminated (the NUL is not counted in len), so a
 * buffer of text can be passed to string functions directly.
 */
#ifndef MB_BUF_H
#define MB_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct mb_buf {
	char *data;	/* NULL until the first append */
	size_t len;	/* bytes in use, excluding the NUL */
	size_t alloc;	/* bytes allocated */
	size_t cap;	/* most bytes len may reach */
	int err;	/* the first append's failure, kept (0: none) */
};

/* Initialises an empty buffer that may hold at most cap bytes. */
void mb_buf_init(struct mb_buf *b, size_t cap);

/* A failure is sticky (as curl's dynbuf): once an append fails, every
 * later one fails with the same error and changes nothing, so what the
 * buffer holds is always a prefix of what was meant, never a text with a
 * piece silently missing from its middle (JSON that parses, but wrong).
 * Release and reset clear it. */

/* The error of the first append that failed, or 0. */
int mb_buf_error(const struct mb_buf *b);

/* Frees the data and leaves the buffer empty (cap kept); NULL-safe. */
void mb_buf_release(struct mb_buf *b);

/* Empties the buffer without freeing its memory. */
void mb_buf_reset(struct mb_buf *b);

/* Ensures room for n more bytes. MB_ETOOBIG past the cap, MB_ENOMEM. */
int mb_buf_reserve(struct mb_buf *b, size_t n);

/* Appends n bytes. On error the buffer is unchanged (and failed). */
int mb_buf_add(struct mb_buf *b, const void *data, size_t n);

/* Appends a NUL-terminated string. */
int mb_buf_adds(struct mb_buf *b, const char *s);

/* Appends formatted text (printf). On error the buffer is unchanged. */
int mb_buf_addf(struct mb_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int mb_buf_vaddf(struct mb_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Hands the data to the caller (who frees it) and empties the buffer.
 * Returns an empty heap string when the buffer never held anything, or
 * NULL when that allocation fails. */
char *mb_buf_detach(struct mb_buf *b, size_t *len);

#endif
