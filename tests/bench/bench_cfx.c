/*
 * bench_cfx: what the IPC-CFX spool (station run --cfx-spool) adds per unit,
 * in the bus's sink, before the verdict reaches the screen.  BENCH_CFX_UNITS
 * (default 300) unit-result events, 90 % PASS (two messages) and 10 % FAIL
 * (one), go through app_cfx_sink into a spool on disk.  Baseline of the same
 * run: one durable atomic write of a file of the same size (fileio_write_atomic:
 * write, fsync, rename, directory fsync), the floor of one durable message.
 * Prints the time per unit and its ratio to the baseline (about 2 messages
 * and a journal fdatasync for a PASS: expect 2-3x).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/rig/bench_clock.h"
#include "app/cfx_spool.h"
#include "core/event.h"
#include "core/fileio.h"

static void warn(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "bench_cfx: %s\n", msg);
	exit(1);
}

int main(void)
{
	const char *e = getenv("BENCH_CFX_UNITS");
	long n = e ? atol(e) : 300;
	char body[700], path[64];
	struct app_cfx *c;
	struct errbuf err;
	int64_t written, failed;
	double t0, t_base, t_spool;

	if (n < 20)
		n = 20;
	memset(body, 'x', sizeof(body));
	t0 = bench_now_s();
	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "base-%ld.json", i);
		if (fileio_write_atomic(path, body, sizeof(body), 0644, &err))
			warn(NULL, err.msg);
	}
	t_base = (bench_now_s() - t0) / n;

	if (app_cfx_open("spool", "bench", "BIG", warn, NULL, &c, &err))
		warn(NULL, err.msg);
	t0 = bench_now_s();
	for (long i = 0; i < n; i++) {
		struct ev_event ev;

		memset(&ev, 0, sizeof(ev));
		ev.kind = EV_UNIT_RESULT;
		ev.unit_id = i + 1;
		ev.t_ms = 1796408718448 + i;
		ev.outcome = i % 10 == 9 ? EV_OUT_FAIL : EV_OUT_PASS;
		ev.stage = EV_STAGE_COMMIT;
		snprintf(ev.bay, sizeof(ev.bay), "1-%ld", 1 + i % 8);
		snprintf(ev.unique_id, sizeof(ev.unique_id), "%024lX", 0xA0000000L + i);
		app_cfx_sink(&ev, c);
	}
	t_spool = (bench_now_s() - t0) / n;
	app_cfx_counts(c, &written, &failed);
	app_cfx_close(c);
	if (failed || written != n + n - n / 10)
		warn(NULL, "messages missing");
	printf("baseline: one durable atomic file write   %8.2f ms\n", t_base * 1e3);
	printf("CFX spool, per unit (90%% pass)           %8.2f ms  %.2fx the baseline\n",
	       t_spool * 1e3, t_spool / t_base);
	return 0;
}
