/*
 * readymap: which blocks of a file still being written are final, for a
 * reader that pulls the file meanwhile (coordinator/pull.h, pulling
 * ahead). A writer keeps PATH.ready beside PATH.part:
 *   "mibera-ready 1 SIZE BLOCK\n" then one '0' or '1' per block of BLOCK
 *   bytes from the start; SIZE 0: the size is not known yet and the map
 *   grows with the file, else it has ceil(SIZE / BLOCK) entries.
 * A reader trusts none of it: what it pulls so is checked against the
 * file's manifest before it counts.
 */
#ifndef MB_READYMAP_H
#define MB_READYMAP_H

#include <stddef.h>
#include <stdint.h>

#define MB_READY_BLOCK (1u << 20)

/* Replaces path with the map of a file of size bytes (0: not known yet)
 * whose n blocks of MB_READY_BLOCK are bits ('0' or '1'), without an
 * fsync: it is rewritten several times a second and a crash may lose it. */
int mb_ready_write(const char *path, uint64_t size, const char *bits,
		   uint64_t n);

/* Parses len bytes of a map (hostile input): 0 with *size, *block and the
 * *n entries at *bits (inside buf), or MB_EFORMAT. The block is at most
 * max_block and the size at most max_size. */
int mb_ready_parse(const char *buf, size_t len, uint64_t max_block,
		   uint64_t max_size, uint64_t *size, uint64_t *block,
		   const char **bits, uint64_t *n);

#endif
