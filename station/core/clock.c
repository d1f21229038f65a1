/* clock: see clock.h. */
#include "core/clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int64_t ms_of(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_realtime_ms(void)
{
	return ms_of(CLOCK_REALTIME);
}

int64_t clock_monotonic_ms(void)
{
	return ms_of(CLOCK_MONOTONIC);
}

void clock_sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void clock_deadline(clockid_t clk, int64_t ms, struct timespec *ts)
{
	clock_gettime(clk, ts);
	if (ms < 0)
		ms = 0;
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int clock_iso_ms(int64_t t_ms, char out[CLOCK_ISO_LEN])
{
	int64_t ms = t_ms % 1000;
	time_t secs = (time_t)(t_ms / 1000);
	struct tm tm;
	int n;

	if (ms < 0) {		/* before 1970: keep the remainder positive */
		ms += 1000;
		secs--;
	}
	if (!gmtime_r(&secs, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
		goto invalid;
	n = snprintf(out, CLOCK_ISO_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, (int)ms);
	if (n > 0 && n < CLOCK_ISO_LEN)
		return 0;
invalid:
	memcpy(out, "invalid", sizeof("invalid"));
	return -1;
}

int clock_limit_check(const struct clock_limit *l)
{
	if (!l)
		return ST_OK;
	if (l->stopped && l->stopped(l->arg))
		return ST_ECANCELED;
	if (l->deadline_ms && clock_monotonic_ms() >= l->deadline_ms)
		return ST_ETIMEOUT;
	return ST_OK;
}

int clock_nap(const struct clock_limit *l, int64_t ms)
{
	int64_t end = clock_monotonic_ms() + ms;
	int rc;

	for (;;) {
		int64_t now = clock_monotonic_ms(), slice = end - now;

		if ((rc = clock_limit_check(l)))
			return rc;
		if (slice <= 0)
			return ST_OK;
		if (l && l->stopped && slice > CLOCK_NAP_SLICE_MS)
			slice = CLOCK_NAP_SLICE_MS;
		if (l && l->deadline_ms && now + slice > l->deadline_ms)
			slice = l->deadline_ms - now;
		clock_sleep_ms(slice);
	}
}

unsigned clock_limit_cap(const struct clock_limit *l, unsigned timeout_ms)
{
	int64_t left;

	if (!l || !l->deadline_ms)
		return timeout_ms;
	left = l->deadline_ms - clock_monotonic_ms();
	if (left < 1)
		return 1;
	return left < (int64_t)timeout_ms ? (unsigned)left : timeout_ms;
}
