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
		/* a UTF-8 sequence is copied whole or not at all */
		{
			size_t len = p[i] < 0x80 ? 1 : p[i] >= 0xf0 ? 4
				     : p[i] >= 0xe0 ? 3 : p[i] >= 0xc0 ? 2 : 1;

			if (len > n - i)
				len = n - i;
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
