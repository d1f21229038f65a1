/*
 * proc: process-wide settings the station's programs apply once, first thing
 * in main() (the station binary, and the benchmarks that measure its paths so
 * that they measure what the station runs).
 *
 * proc_tune_malloc() fixes glibc's trim threshold at PROC_TRIM_BYTES.  By
 * default glibc gives the free memory at the top of a thread's heap back to
 * the kernel (madvise) as soon as it passes 128 KiB.  Inside a transaction
 * SQLite keeps each statement's journal in a 64 KiB chunk (its statement
 * journal spill size), allocated and freed by every write statement, so each
 * certificate issued from a worker thread returned those pages to the kernel
 * and faulted them back in: a madvise, page faults and a TLB shootdown that
 * interrupts the other core, about 7 % of the issuing path's CPU
 * (docs/performance.md).  Above the threshold memory is still returned; the
 * cost is at most PROC_TRIM_BYTES kept per heap.  Fails only if glibc refuses
 * the setting, which changes nothing else.
 */
#ifndef STATION_PROC_H
#define STATION_PROC_H

#define PROC_TRIM_BYTES (4 * 1024 * 1024)

int proc_tune_malloc(void);

#endif
