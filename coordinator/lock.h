/*
 * lock: one coordinator per $MIBERA_HOME. The coordinator holds an
 * exclusive flock(2) on $MIBERA_HOME/coordinator.lock for its whole life;
 * the kernel drops it when the process dies, however it dies, so a lock
 * that can be taken proves no coordinator is running and the jobs left
 * 'running' are a dead one's to take over. The file also holds the
 * holder's pid, when it started and its latest heartbeat (Unix seconds),
 * for the CLI to show.
 */
#ifndef MB_LOCK_H
#define MB_LOCK_H

#include <stdint.h>
#include <stddef.h>

/* How often the coordinator writes its heartbeat (seconds). */
#define MB_COORD_BEAT_S 5

struct mb_coord_lock {
	int fd;
	int64_t started;
};

/* Takes the lock. MB_EBUSY when another coordinator holds it (err names
 * its pid); other errors when the file cannot be made. */
int mb_coord_lock_take(struct mb_coord_lock *l, char *err, size_t errcap);

/* Writes the heartbeat (now) into the lock file. */
void mb_coord_lock_beat(struct mb_coord_lock *l);

/* Drops the lock (and the file's contents); NULL-safe. */
void mb_coord_lock_release(struct mb_coord_lock *l);

struct mb_coord_info {
	int alive;		/* a coordinator holds the lock now */
	long pid;		/* its pid (0: not known) */
	int64_t started;	/* when it started (0: not known) */
	int64_t beat;		/* its latest heartbeat (0: none yet) */
};

/* Says whether a coordinator runs on this $MIBERA_HOME, without taking
 * anything from it. */
int mb_coord_probe(struct mb_coord_info *ci);

#endif
