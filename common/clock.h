/*
 * clock: the two clocks mibera reads. Durations and rates come from the
 * monotonic clock (a changed system time does not bend them); what is
 * stored or shown as a moment (event times) from the wall clock.
 */
#ifndef MB_CLOCK_H
#define MB_CLOCK_H

#include <stdint.h>

/* Seconds from an arbitrary start, monotonic: for measuring durations. */
double mb_now_s(void);

/* Milliseconds since the Unix epoch (wall clock). */
uint64_t mb_wall_ms(void);

#endif
