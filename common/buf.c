/* buf: growable byte buffer with a size cap. */
#include "common/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"

void mb_buf_init(struct mb_buf *b, size_t cap)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->cap = cap;
	b->err = 0;
}

int mb_buf_error(const struct mb_buf *b)
{
	return b->err;
}

void mb_buf_release(struct mb_buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->err = 0;
}

void mb_buf_reset(struct mb_buf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

int mb_buf_reserve(struct mb_buf *b, size_t n)
{
	size_t need, a;
	char *p;

	if (b->err != 0)
		return b->err;
	if (n > b->cap || b->len > b->cap - n)
		return b->err = MB_ETOOBIG;
	need = b->len + n + 1;
	if (need <= b->alloc)
		return 0;
	a = b->alloc < 64 ? 64 : b->alloc;
	while (a < need)
		a = a > SIZE_MAX / 2 ? need : a * 2;
	/* Never allocate far past the cap just because doubling overshoots. */
	if (a > b->cap + 1)
		a = b->cap + 1;
	p = mb_realloc(b->data, a);
	if (p == NULL)
		return b->err = MB_ENOMEM;
	b->data = p;
	b->alloc = a;
	return 0;
}

int mb_buf_add(struct mb_buf *b, const void *data, size_t n)
{
	int rc = mb_buf_reserve(b, n);

	if (rc != 0)
		return rc;
	if (n > 0)
		memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int mb_buf_adds(struct mb_buf *b, const char *s)
{
	return mb_buf_add(b, s, strlen(s));
}

int mb_buf_vaddf(struct mb_buf *b, const char *fmt, va_list ap)
{
	va_list copy;
	int n, rc;

	va_copy(copy, ap);
	n = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	if (b->err != 0)
		return b->err;
	if (n < 0)
		return b->err = MB_EINVAL;
	rc = mb_buf_reserve(b, (size_t)n);
	if (rc != 0)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int mb_buf_addf(struct mb_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = mb_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

char *mb_buf_detach(struct mb_buf *b, size_t *len)
{
	char *p = b->data;

	if (p == NULL) {
		p = mb_malloc(1);
		if (p == NULL)
			return NULL;
		p[0] = '\0';
	}
	if (len != NULL)
		*len = b->len;
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	return p;
}
