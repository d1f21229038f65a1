/*
 * bench_clock: the two readings every benchmark takes, so each bench states
 * only what it measures.  bench_now_s(): a monotonic clock in seconds (for
 * rates and ratios within one run).  bench_maxrss_kib(): this process's peak
 * resident set so far, in KiB (getrusage).
 */
#ifndef TESTS_RIG_BENCH_CLOCK_H
#define TESTS_RIG_BENCH_CLOCK_H

#include <sys/resource.h>
#include <time.h>

static inline double bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline long bench_maxrss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

#endif
