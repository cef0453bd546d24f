/*
 * text: strings that came from outside (a worker's error, a hub's file
 * name, a journal line) made safe to print on a person's terminal. A
 * terminal obeys escape sequences; an attacker who controls a string we
 * print could move the cursor, rewrite what is on screen or set the
 * window title. Every control character (C0, DEL and the UTF-8 encoded C1
 * range, which holds the 8-bit CSI) becomes '?'; other bytes, UTF-8 text
 * included, are kept.
 */
#ifndef MB_TEXT_H
#define MB_TEXT_H

#include <stddef.h>

/* Copies the n bytes of in into out (cap bytes, NUL-terminated, cut at a
 * character boundary when it does not fit) with control characters made
 * '?'; keep_newlines keeps '\n' (multi-line messages). Returns out. */
char *mb_printable_n(char *out, size_t cap, const char *in, size_t n,
		     int keep_newlines);

/* mb_printable_n of a NUL-terminated string, newlines replaced too. */
char *mb_printable(char *out, size_t cap, const char *in);

/* Replaces control characters in s itself ('\n' kept when keep_newlines). */
char *mb_sanitize(char *s, int keep_newlines);

/* Cuts the spaces and line ends off the end of s (a line a program
 * printed, its newline included). Returns s. */
char *mb_trim_end(char *s);

#endif
