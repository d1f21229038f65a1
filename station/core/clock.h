/*
 * clock: the station's clocks, in milliseconds.
 *
 * clock_realtime_ms() is UTC wall time (records, events, audit rows, files);
 * it may step.  clock_monotonic_ms() only ever moves forward and is what every
 * timeout and rate is measured with.  clock_sleep_ms() sleeps the whole time
 * even when a signal interrupts it.
 *
 * clock_deadline() fills a timespec ms from now on the given clock, for
 * pthread_cond_timedwait() (CLOCK_REALTIME unless the condition variable was
 * set to another clock) and clock_nanosleep(TIMER_ABSTIME).
 *
 * struct clock_limit bounds a wait by a deadline and a stop request: every
 * wait on a board (a DFU bwPollTimeout, a BUSY poll) goes through clock_nap(),
 * which sleeps in slices of at most CLOCK_NAP_SLICE_MS so that a stop request
 * is seen within one slice.  A NULL limit means no deadline and no stop.
 * clock_limit_check() says whether the limit is already reached;
 * clock_limit_cap() shortens a per-transfer timeout to what is left (at least
 * 1 ms).
 *
 * clock_iso_ms() formats UTC ms as ISO-8601 with milliseconds,
 * "2026-11-22T02:05:33.007Z" (times before 1970 included); a time whose year
 * has not four digits does not fit and gives "invalid" and -1.
 */
#ifndef STATION_CLOCK_H
#define STATION_CLOCK_H

#include <stdint.h>
#include <time.h>

#include "core/errbuf.h"

#define CLOCK_ISO_LEN 32   /* room for clock_iso_ms(), with its NUL */

int64_t clock_realtime_ms(void);
int64_t clock_monotonic_ms(void);
void clock_sleep_ms(int64_t ms);
void clock_deadline(clockid_t clk, int64_t ms, struct timespec *ts);
int clock_iso_ms(int64_t ms, char out[CLOCK_ISO_LEN]);

#define CLOCK_NAP_SLICE_MS 20

struct clock_limit {
	int64_t deadline_ms;           /* clock_monotonic_ms() instant; 0 = none */
	int (*stopped)(void *arg);     /* non-zero: give up now; NULL = never */
	void *arg;
};

/* ST_OK, ST_ETIMEOUT (deadline passed) or ST_ECANCELED (stop requested). */
ST_MUST_CHECK int clock_limit_check(const struct clock_limit *l);
/* Sleeps ms, or until the limit is reached: ST_OK after the whole sleep, else
 * what clock_limit_check() says (without sleeping past the deadline). */
ST_MUST_CHECK int clock_nap(const struct clock_limit *l, int64_t ms);
unsigned clock_limit_cap(const struct clock_limit *l, unsigned timeout_ms);

#endif
