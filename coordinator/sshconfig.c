/* sshconfig: ~/.ssh/config lookup, fingerprints, known_hosts lines, pins. */
#include "coordinator/sshconfig.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/sha256.h"

#define CONFIG_MAX (1u << 20)
#define LINE_MAX_ARGS 16
#define ARG_MAX 1024

static int fail(char *err, size_t errcap, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errcap, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errcap > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errcap, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int mb_ssh_pattern_match(const char *pat, const char *s)
{
	/* Iterative glob with one backtrack point: linear enough for the
	 * short patterns of a config file, no recursion on hostile input. */
	const char *star = NULL, *back = NULL;

	while (*s != '\0') {
		if (*pat == '*') {
			star = pat++;
			back = s;
		} else if (*pat == '?' ||
			   (*pat != '\0' &&
			    tolower((unsigned char)*pat) ==
				    tolower((unsigned char)*s))) {
			pat++;
			s++;
		} else if (star != NULL) {
			pat = star + 1;
			s = ++back;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

/* Splits one config line into keyword and arguments (double quotes group,
 * '=' may separate the keyword). Returns the argument count (0 for a blank
 * or comment line), or -1 for an unterminated quote or an overlong token. */
static int split_line(const char *p, const char *end,
		      char args[LINE_MAX_ARGS][ARG_MAX])
{
	int n = 0;

	while (p < end) {
		size_t k = 0;

		while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' ||
				   (n == 1 && *p == '=')))
			p++;
		if (p >= end || (n == 0 && *p == '#'))
			break;
		if (n == LINE_MAX_ARGS)
			break; /* ssh ignores what it does not need; so do we */
		if (*p == '"') {
			p++;
			while (p < end && *p != '"') {
				if (k + 1 >= ARG_MAX)
					return -1;
				args[n][k++] = *p++;
			}
			if (p >= end)
				return -1;
			p++;
		} else {
			while (p < end && *p != ' ' && *p != '\t' &&
			       *p != '\r' && !(n == 0 && *p == '=')) {
				if (k + 1 >= ARG_MAX)
					return -1;
				args[n][k++] = *p++;
			}
		}
		args[n][k] = '\0';
		n++;
	}
	return n;
}

/* A Host line matches when some positive pattern matches and no negated
 * one does (ssh's match_pattern_list). */
static int host_line_matches(char args[LINE_MAX_ARGS][ARG_MAX], int n,
			     const char *alias)
{
	int i, pos = 0;

	for (i = 1; i < n; i++) {
		if (args[i][0] == '!') {
			if (mb_ssh_pattern_match(args[i] + 1, alias))
				return 0;
		} else if (mb_ssh_pattern_match(args[i], alias)) {
			pos = 1;
		}
	}
	return pos;
}

/* Expands ~/ and the % tokens ssh allows in IdentityFile into out. */
static int expand(const char *in, const char *home, const char *user,
		  const char *host, const char *ruser, char *out, size_t cap)
{
	size_t k = 0;
	const char *add;

#define PUT(str)                                                   \
	do {                                                       \
		size_t l_ = strlen(str);                           \
		if (k + l_ >= cap)                                 \
			return MB_ETOOBIG;                         \
		memcpy(out + k, (str), l_);                        \
		k += l_;                                           \
	} while (0)

	if (in[0] == '~' && (in[1] == '/' || in[1] == '\0')) {
		PUT(home);
		in++;
	}
	for (; *in != '\0'; in++) {
		char one[2] = { *in, '\0' };

		if (*in != '%') {
			PUT(one);
			continue;
		}
		switch (in[1]) {
		case '%':
			add = "%";
			break;
		case 'd':
			add = home;
			break;
		case 'u':
			add = user;
			break;
		case 'h':
			add = host;
			break;
		case 'r':
			add = ruser;
			break;
		default:
			return MB_EFORMAT;
		}
		PUT(add);
		in++;
	}
#undef PUT
	out[k] = '\0';
	return 0;
}

static int set_str(char *dst, size_t cap, const char *v)
{
	size_t l = strlen(v);

	if (l >= cap)
		return MB_ETOOBIG;
	memcpy(dst, v, l + 1);
	return 0;
}

static int parse_port(const char *s, int *port)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)s[0]))
		return MB_EFORMAT;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > 65535)
		return MB_EFORMAT;
	*port = (int)v;
	return 0;
}

int mb_sshconfig_apply(const char *text, size_t len, const char *alias,
		       const char *home, const char *user,
		       struct mb_ssh_host *h, char *err, size_t errcap)
{
	char args[LINE_MAX_ARGS][ARG_MAX];
	const char *p = text, *end = text + len;
	int active = 1, lineno = 0, rc = 0, i, n;
	int have_id = 0; /* IdentityFile accumulates, unlike other options */
	char raw_ids[MB_SSH_MAX_IDENTITIES][512];
	int n_raw = 0;

	memset(h, 0, sizeof(*h));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl != NULL ? nl : end;

		lineno++;
		n = split_line(p, le, args);
		p = nl != NULL ? nl + 1 : end;
		if (n < 0) {
			rc = fail(err, errcap, MB_EFORMAT,
				  "ssh config line %d: unterminated quote or "
				  "value too long",
				  lineno);
			goto out;
		}
		if (n == 0)
			continue;
		if (strcasecmp(args[0], "Host") == 0) {
			active = host_line_matches(args, n, alias);
			continue;
		}
		if (strcasecmp(args[0], "Match") == 0) {
			active = 0; /* unsupported: skip its options */
			continue;
		}
		if (!active || n < 2)
			continue;
		if (strcasecmp(args[0], "HostName") == 0 &&
		    h->hostname[0] == '\0') {
			rc = set_str(h->hostname, sizeof(h->hostname), args[1]);
		} else if (strcasecmp(args[0], "User") == 0 &&
			   h->user[0] == '\0') {
			rc = set_str(h->user, sizeof(h->user), args[1]);
		} else if (strcasecmp(args[0], "Port") == 0 && h->port == 0) {
			rc = parse_port(args[1], &h->port);
		} else if (strcasecmp(args[0], "IdentityFile") == 0) {
			have_id = 1;
			if (n_raw < MB_SSH_MAX_IDENTITIES)
				rc = set_str(raw_ids[n_raw++],
					     sizeof(raw_ids[0]), args[1]);
		}
		if (rc != 0) {
			rc = fail(err, errcap, MB_EFORMAT,
				  "ssh config line %d: bad value for '%s'",
				  lineno, args[0]);
			goto out;
		}
	}
	/* %h in HostName is the alias; tokens in IdentityFile see the final
	 * host and user, so they expand after every option is known. */
	if (h->hostname[0] != '\0') {
		char tmp[sizeof(h->hostname)];

		rc = expand(h->hostname, home, user, alias, h->user, tmp,
			    sizeof(tmp));
		if (rc != 0) {
			rc = fail(err, errcap, MB_EFORMAT,
				  "ssh config: bad HostName '%s'", h->hostname);
			goto out;
		}
		memcpy(h->hostname, tmp, sizeof(tmp));
	}
	for (i = 0; have_id && i < n_raw; i++) {
		rc = expand(raw_ids[i], home, user,
			    h->hostname[0] ? h->hostname : alias,
			    h->user[0] ? h->user : user, h->identity[i],
			    sizeof(h->identity[i]));
		if (rc != 0) {
			rc = fail(err, errcap, MB_EFORMAT,
				  "ssh config: bad IdentityFile '%s'",
				  raw_ids[i]);
			goto out;
		}
		h->n_identity = i + 1;
	}
	rc = 0;
out:
	if (rc != 0)
		memset(h, 0, sizeof(*h));
	return rc;
}

int mb_sshconfig_lookup(const char *path, const char *alias,
			const char *home, const char *user,
			struct mb_ssh_host *h, char *err, size_t errcap)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	memset(h, 0, sizeof(*h));
	rc = mb_read_file(path, CONFIG_MAX, &text, &len);
	if (rc == MB_ENOENT) {
		rc = 0;
		goto out;
	}
	if (rc != 0) {
		rc = fail(err, errcap, rc, "cannot read ssh config '%s': %s",
			  path, mb_strerror(rc));
		goto out;
	}
	rc = mb_sshconfig_apply(text, len, alias, home, user, h, err, errcap);
out:
	free(text);
	return rc;
}

int mb_ssh_fingerprint(const void *blob, size_t len, char fp[MB_SSH_FP_LEN])
{
	uint8_t d[MB_SHA256_LEN];
	unsigned char b64[48];
	int n, rc;

	rc = mb_sha256_buf(blob, len, d);
	if (rc != 0)
		return rc;
	n = EVP_EncodeBlock(b64, d, MB_SHA256_LEN); /* 44 incl. one '=' */
	while (n > 0 && b64[n - 1] == '=')
		n--;
	memcpy(fp, "SHA256:", 7);
	memcpy(fp + 7, b64, (size_t)n);
	fp[7 + n] = '\0';
	return 0;
}

/* The key type is the blob's first SSH string (uint32 length + bytes). */
static int blob_type(const unsigned char *b, size_t len, char *type,
		     size_t cap)
{
	uint32_t tl;
	size_t i;

	if (len < 4)
		return MB_EFORMAT;
	tl = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	     (uint32_t)b[2] << 8 | b[3];
	if (tl == 0 || tl > len - 4 || tl >= cap)
		return MB_EFORMAT;
	for (i = 0; i < tl; i++)
		if (!isgraph(b[4 + i]))
			return MB_EFORMAT;
	memcpy(type, b + 4, tl);
	type[tl] = '\0';
	return 0;
}

int mb_ssh_known_hosts_line(const char *host, int port, const void *blob,
			    size_t len, char *out, size_t cap)
{
	char type[64];
	unsigned char *b64 = NULL;
	int n, rc;

	rc = blob_type(blob, len, type, sizeof(type));
	if (rc != 0)
		goto out;
	rc = MB_ETOOBIG;
	if (len > 16384)
		goto out;
	rc = MB_ENOMEM;
	b64 = mb_malloc(4 * ((len + 2) / 3) + 1);
	if (b64 == NULL)
		goto out;
	EVP_EncodeBlock(b64, blob, (int)len);
	if (port == 22 || port == 0)
		n = snprintf(out, cap, "%s %s %s", host, type, (char *)b64);
	else
		n = snprintf(out, cap, "[%s]:%d %s %s", host, port, type,
			     (char *)b64);
	rc = n < 0 || (size_t)n >= cap ? MB_ETOOBIG : 0;
out:
	free(b64);
	return rc;
}

static int looks_like_key_type(const char *s)
{
	return strncmp(s, "ssh-", 4) == 0 || strncmp(s, "ecdsa-", 6) == 0 ||
	       strncmp(s, "sk-", 3) == 0;
}

/* Decodes b64 into a heap blob (caller frees) and reads its key type. */
static int b64_blob(const char *b64, unsigned char **out, size_t *blen,
		    char *type, size_t tcap)
{
	unsigned char *blob = NULL;
	size_t l = strlen(b64), pad;
	int rc = MB_EFORMAT, dl;

	*out = NULL;
	if (l == 0 || l % 4 != 0 || l > 65536)
		goto out;
	pad = (b64[l - 1] == '=') + (l > 1 && b64[l - 2] == '=');
	rc = MB_ENOMEM;
	blob = mb_malloc(l / 4 * 3 + 1);
	if (blob == NULL)
		goto out;
	rc = MB_EFORMAT;
	dl = EVP_DecodeBlock(blob, (const unsigned char *)b64, (int)l);
	if (dl < 0 || (size_t)dl < pad)
		goto out;
	*blen = (size_t)dl - pad;
	rc = blob_type(blob, *blen, type, tcap);
	if (rc != 0)
		goto out;
	*out = blob;
	blob = NULL;
out:
	free(blob);
	return rc;
}

int mb_ssh_b64_fingerprint(const char *b64, char fp[MB_SSH_FP_LEN])
{
	unsigned char *blob;
	char type[64];
	size_t blen;
	int rc;

	rc = b64_blob(b64, &blob, &blen, type, sizeof(type));
	if (rc == 0)
		rc = mb_ssh_fingerprint(blob, blen, fp);
	free(blob);
	return rc;
}

int mb_ssh_pin_fingerprint(const char *pin, char fp[MB_SSH_FP_LEN])
{
	char tok[3][ARG_MAX], type[64];
	unsigned char *blob = NULL;
	const char *p = pin, *b64, *want;
	size_t l, blen;
	int n = 0, rc = MB_EFORMAT;

	while (*p == ' ' || *p == '\t')
		p++;
	if (strncmp(p, "SHA256:", 7) == 0) {
		l = strlen(p);
		while (l > 7 && (p[l - 1] == '\n' || p[l - 1] == ' ' ||
				 p[l - 1] == '\r' || p[l - 1] == '='))
			l--;
		if (l != 7 + 43)
			goto out;
		for (size_t i = 7; i < l; i++)
			if (!isalnum((unsigned char)p[i]) && p[i] != '+' &&
			    p[i] != '/')
				goto out;
		memcpy(fp, p, l);
		fp[l] = '\0';
		rc = 0;
		goto out;
	}
	while (n < 3 && *p != '\0') {
		size_t k = 0;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '\n' || *p == '\r')
			break;
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n' &&
		       *p != '\r') {
			if (k + 1 >= ARG_MAX)
				goto out;
			tok[n][k++] = *p++;
		}
		tok[n++][k] = '\0';
	}
	if (n >= 2 && looks_like_key_type(tok[0])) {
		want = tok[0]; /* "TYPE BASE64 [comment]" */
		b64 = tok[1];
	} else if (n >= 3 && tok[0][0] != '@' && looks_like_key_type(tok[1])) {
		want = tok[1]; /* "hosts TYPE BASE64" */
		b64 = tok[2];
	} else {
		goto out;
	}
	rc = b64_blob(b64, &blob, &blen, type, sizeof(type));
	if (rc != 0)
		goto out;
	rc = MB_EFORMAT;
	if (strcmp(type, want) != 0)
		goto out; /* the type field must agree with the blob */
	rc = mb_ssh_fingerprint(blob, blen, fp);
out:
	free(blob);
	return rc;
}
