/*
 * transport: what both transports share. TARGET parsing, the one function
 * that quotes arguments for a remote shell, the error message, and the
 * calls that dispatch to an implementation's ops.
 */
#include "coordinator/transport.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"

static int target_fail(char *err, size_t errcap, const char *s,
		       const char *why)
{
	if (err != NULL && errcap > 0)
		snprintf(err, errcap, "bad target '%s': %s", s, why);
	return MB_EINVAL;
}

/* Host names, addresses and aliases: no whitespace, no control characters,
 * no shell or option syntax that could confuse anything downstream. */
static int host_ok(const char *h, size_t n)
{
	size_t i;

	if (n == 0 || h[0] == '-')
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];

		if (!isalnum(c) && c != '.' && c != '-' && c != '_' &&
		    c != ':' && c != '%')
			return 0;
	}
	return 1;
}

static int user_ok(const char *u, size_t n)
{
	size_t i;

	if (n == 0 || u[0] == '-')
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];

		if (!isalnum(c) && c != '.' && c != '-' && c != '_' &&
		    c != '$')
			return 0;
	}
	return 1;
}

int mb_target_parse(const char *s, struct mb_target *t, char *err,
		    size_t errcap)
{
	const char *at, *host, *hend, *p;
	size_t ulen = 0, hlen;

	memset(t, 0, sizeof(*t));
	if (s == NULL || s[0] == '\0')
		return target_fail(err, errcap, "", "empty");
	if (strcmp(s, "local") == 0) {
		t->kind = MB_TRANSPORT_LOCAL;
		return 0;
	}
	t->kind = MB_TRANSPORT_SSH;
	at = strrchr(s, '@');
	host = s;
	if (at != NULL) {
		ulen = (size_t)(at - s);
		if (!user_ok(s, ulen) || ulen >= sizeof(t->user))
			return target_fail(err, errcap, s, "bad user name");
		memcpy(t->user, s, ulen);
		host = at + 1;
	}
	if (host[0] == '[') {
		hend = strchr(host, ']');
		if (hend == NULL)
			return target_fail(err, errcap, s, "unclosed '['");
		hlen = (size_t)(hend - host - 1);
		p = hend + 1;
		if (!host_ok(host + 1, hlen) || hlen >= sizeof(t->host))
			return target_fail(err, errcap, s, "bad host");
		memcpy(t->host, host + 1, hlen);
	} else {
		/* One colon separates a port; several mean a bare IPv6
		 * address, which needs brackets to carry a port. */
		const char *c = strchr(host, ':');

		if (c != NULL && strchr(c + 1, ':') != NULL)
			c = NULL;
		hlen = c != NULL ? (size_t)(c - host) : strlen(host);
		p = host + hlen;
		if (!host_ok(host, hlen) || hlen >= sizeof(t->host))
			return target_fail(err, errcap, s, "bad host");
		memcpy(t->host, host, hlen);
	}
	if (*p == ':') {
		char *end;
		unsigned long v;

		if (!isdigit((unsigned char)p[1]))
			return target_fail(err, errcap, s, "bad port");
		errno = 0;
		v = strtoul(p + 1, &end, 10);
		if (errno != 0 || *end != '\0' || v == 0 || v > 65535)
			return target_fail(err, errcap, s, "bad port");
		t->port = (int)v;
	} else if (*p != '\0') {
		return target_fail(err, errcap, s, "junk after the host");
	}
	return 0;
}

int mb_shell_quote(struct mb_buf *out, const char *arg)
{
	size_t before = out->len;
	const char *p;
	int rc;

	rc = mb_buf_add(out, "'", 1);
	for (p = arg; rc == 0 && *p != '\0'; p++) {
		if (*p == '\'')
			rc = mb_buf_add(out, "'\\''", 4);
		else
			rc = mb_buf_add(out, p, 1);
	}
	if (rc == 0)
		rc = mb_buf_add(out, "'", 1);
	if (rc != 0) {
		/* all or nothing: never leave half an argument behind */
		out->len = before;
		if (out->data != NULL)
			out->data[before] = '\0';
	}
	return rc;
}

int mb_shell_join(struct mb_buf *out, const char *const *argv)
{
	size_t before = out->len;
	int rc = 0, i;

	if (argv == NULL || argv[0] == NULL)
		return MB_EINVAL;
	for (i = 0; rc == 0 && argv[i] != NULL; i++) {
		if (i > 0)
			rc = mb_buf_add(out, " ", 1);
		if (rc == 0)
			rc = mb_shell_quote(out, argv[i]);
	}
	if (rc != 0) {
		out->len = before;
		if (out->data != NULL)
			out->data[before] = '\0';
	}
	return rc;
}

int mb_transport_fail(struct mb_transport *t, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->errmsg, sizeof(t->errmsg), fmt, ap);
	va_end(ap);
	return rc;
}

int mb_transport_open(const struct mb_transport_opts *o,
		      struct mb_transport **out, char *err, size_t errcap)
{
	struct mb_target tg;
	int rc;

	*out = NULL;
	if (err != NULL && errcap > 0)
		err[0] = '\0';
	rc = mb_target_parse(o->target, &tg, err, errcap);
	if (rc != 0)
		return rc;
	if (tg.kind == MB_TRANSPORT_LOCAL)
		return mb_transport_local_open(o, out, err, errcap);
	return mb_transport_ssh_open(o, &tg, out, err, errcap);
}

void mb_transport_free(struct mb_transport *t)
{
	if (t != NULL)
		t->ops->free(t);
}

enum mb_transport_kind mb_transport_kind(const struct mb_transport *t)
{
	return t->kind;
}

const char *mb_transport_name(const struct mb_transport *t)
{
	return t->name;
}

const char *mb_transport_errmsg(const struct mb_transport *t)
{
	return t->errmsg;
}

static int path_ok(struct mb_transport *t, const char *path)
{
	if (path == NULL || path[0] == '\0')
		return mb_transport_fail(t, MB_EINVAL, "empty path");
	if (strchr(path, '\n') != NULL)
		return mb_transport_fail(t, MB_EINVAL,
					 "newline in path '%s'", path);
	return 0;
}

int mb_transport_exec(struct mb_transport *t, struct mb_exec *x)
{
	x->status = -1;
	x->signal[0] = '\0';
	x->truncated = 0;
	if (x->argv == NULL || x->argv[0] == NULL || x->argv[0][0] == '\0')
		return mb_transport_fail(t, MB_EINVAL, "empty command");
	if (x->in == NULL && x->in_len > 0)
		return mb_transport_fail(t, MB_EINVAL, "stdin length without data");
	return t->ops->exec(t, x);
}

int mb_transport_read_stream(struct mb_transport *t, const char *path,
			     uint64_t off, uint64_t len, mb_read_sink_fn sink,
			     void *ctx, uint64_t *got)
{
	uint64_t n = 0;
	int rc = path_ok(t, path);

	if (rc == 0)
		rc = t->ops->read_stream(t, path, off, len, sink, ctx, &n);
	if (got != NULL)
		*got = n;
	return rc;
}

struct copy_sink {
	char *buf;
	uint64_t base;
};

static int copy_piece(const void *data, size_t n, uint64_t off, void *ctx)
{
	struct copy_sink *c = ctx;

	memcpy(c->buf + (off - c->base), data, n);
	return 0;
}

int mb_transport_read(struct mb_transport *t, const char *path, uint64_t off,
		      void *buf, size_t len, size_t *got)
{
	struct copy_sink c = { buf, off };
	uint64_t n = 0;
	int rc;

	rc = mb_transport_read_stream(t, path, off, len, copy_piece, &c, &n);
	*got = (size_t)n;
	return rc;
}

int mb_transport_write(struct mb_transport *t, const char *path,
		       uint64_t off, const void *buf, size_t len)
{
	int rc = path_ok(t, path);

	return rc != 0 ? rc : t->ops->write(t, path, off, buf, len);
}

int mb_transport_truncate(struct mb_transport *t, const char *path,
			  uint64_t size)
{
	int rc = path_ok(t, path);

	return rc != 0 ? rc : t->ops->truncate(t, path, size);
}

int mb_transport_stat(struct mb_transport *t, const char *path,
		      struct mb_transport_stat *st)
{
	int rc = path_ok(t, path);

	memset(st, 0, sizeof(*st));
	return rc != 0 ? rc : t->ops->stat(t, path, st);
}

int mb_transport_rename(struct mb_transport *t, const char *from,
			const char *to)
{
	int rc = path_ok(t, from);

	if (rc == 0)
		rc = path_ok(t, to);
	return rc != 0 ? rc : t->ops->rename(t, from, to);
}

int mb_transport_unlink(struct mb_transport *t, const char *path)
{
	int rc = path_ok(t, path);

	return rc != 0 ? rc : t->ops->unlink(t, path);
}

int mb_transport_mkdirs(struct mb_transport *t, const char *dir)
{
	int rc = path_ok(t, dir);

	return rc != 0 ? rc : t->ops->mkdirs(t, dir);
}

const char *mb_transport_host_key_line(const struct mb_transport *t)
{
	return t->kind == MB_TRANSPORT_SSH ? t->host_key_line : NULL;
}

const char *mb_transport_fingerprint(const struct mb_transport *t)
{
	return t->kind == MB_TRANSPORT_SSH ? t->fingerprint : NULL;
}

unsigned mb_transport_reconnects(const struct mb_transport *t)
{
	return t->reconnects;
}

int mb_exec_deliver(struct mb_exec *x, int stream, const void *data,
		    size_t n)
{
	struct mb_buf *b = stream == MB_EXEC_STDERR ? x->err : x->out;
	size_t room;

	if (n == 0)
		return 0;
	if (x->on_output != NULL)
		return x->on_output(stream, data, n, x->ctx) != 0 ?
			       MB_ECANCELLED :
			       0;
	if (b == NULL)
		return 0;
	room = b->cap > b->len ? b->cap - b->len : 0;
	if (n > room) {
		x->truncated |= stream;
		n = room;
	}
	return n > 0 ? mb_buf_add(b, data, n) : 0;
}
