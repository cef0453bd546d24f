/* text: printable copies of untrusted strings. */
#include "common/text.h"

#include <string.h>

/* Bytes of the control character at p (at most n bytes there), or 0 when
 * p does not start one. */
static size_t control_at(const unsigned char *p, size_t n, int keep_newlines)
{
	if (*p == '\n')
		return keep_newlines ? 0 : 1;
	if (*p < 0x20 || *p == 0x7f)
		return 1;
	/* C1 controls U+0080..U+009F: 0xC2 0x80..0x9F */
	if (*p == 0xc2 && n >= 2 && p[1] >= 0x80 && p[1] <= 0x9f)
		return 2;
	/* a lone C1 byte (not UTF-8) that a terminal in an 8-bit mode
	 * would take for CSI and friends: only outside a sequence */
	return 0;
}

/* Bytes of the well-formed UTF-8 character at p (at most n bytes there),
 * or 0 when p does not start one: a stray continuation byte, an
 * overlong form, a surrogate, past U+10FFFF, or a sequence cut short or
 * broken by another byte (an ESC must never ride inside one). */
static size_t utf8_at(const unsigned char *p, size_t n)
{
	size_t len, k;
	unsigned char lo = 0x80, hi = 0xbf;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (len > n || p[1] < lo || p[1] > hi)
		return 0;
	for (k = 2; k < len; k++)
		if (p[k] < 0x80 || p[k] > 0xbf)
			return 0;
	return len;
}

char *mb_printable_n(char *out, size_t cap, const char *in, size_t n,
		     int keep_newlines)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0, i = 0;

	if (cap == 0)
		return out;
	while (i < n && o + 1 < cap) {
		size_t c = control_at(p + i, n - i, keep_newlines);

		if (c > 0) {
			out[o++] = '?';
			i += c;
			continue;
		}
		/* a UTF-8 character is copied whole or not at all; a byte
		 * that starts none is not text */
		{
			size_t len = utf8_at(p + i, n - i);

			if (len == 0) {
				out[o++] = '?';
				i++;
				continue;
			}
			if (o + len + 1 > cap)
				break;
			memcpy(out + o, p + i, len);
			o += len;
			i += len;
		}
	}
	out[o] = '\0';
	return out;
}

char *mb_printable(char *out, size_t cap, const char *in)
{
	return mb_printable_n(out, cap, in ? in : "", in ? strlen(in) : 0, 0);
}

char *mb_sanitize(char *s, int keep_newlines)
{
	unsigned char *p = (unsigned char *)s;
	size_t n = strlen(s), i = 0, o = 0;

	while (i < n) {
		size_t c = control_at(p + i, n - i, keep_newlines);

		if (c > 0) {
			p[o++] = '?';
			i += c;
		} else {
			p[o++] = p[i++];
		}
	}
	p[o] = '\0';
	return s;
}

char *mb_trim_end(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' ||
			 s[n - 1] == '\r' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}
