/*
 * bench_ui: what the operator's screen and the headless writer cost the line.
 *
 * Sinks run under the event bus lock, so their cost per event is time every
 * bay thread may wait.  Replays the events of real-looking units (arrival, 15
 * stages begun and ended, 20 flash progress steps, the result: 52 events per
 * unit) over 4 bays through an event bus with, in turn:
 *   baseline   a sink that only counts (the bus itself: lock, stamp, call)
 *   screen     ui_screen_sink (model update under the screen's mutex, wake-up)
 *   headless   ui_headless_sink writing JSON lines to /dev/null (format, flush)
 * and reports each as ns per event and as a ratio to the baseline, plus the
 * UI thread's copy of the model per redraw (ui_screen_snapshot).
 * BENCH_UI_UNITS sets the number of units (default 5000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/rig/bench_clock.h"
#include "core/event.h"
#include "ui/headless.h"
#include "ui/screen.h"

#define EVENTS_PER_UNIT 52

static void count_sink(const struct ev_event *ev, void *ctx)
{
	(void)ev;
	++*(unsigned long *)ctx;
}

/* Emits the events of `units` units round-robin over 4 bays; returns seconds. */
static double replay(struct ev_bus *bus, long units)
{
	char uid[EV_UID_LEN], port[EV_BAY_LEN];
	struct ev_event ev;
	double t0 = bench_now_s();

	for (long u = 0; u < units; u++) {
		int bay = (int)(u % 4);

		snprintf(uid, sizeof(uid), "%024lX", (unsigned long)u);
		snprintf(port, sizeof(port), "1-%d", bay + 1);
		ev_emitf(bus, EV_BAY_ARRIVED, bay, port, "", EV_STAGE_DETECT, EV_OUT_NONE, NULL);
		for (int s = EV_STAGE_DETECT; s <= EV_STAGE_COMMIT; s++) {
			ev_emitf(bus, EV_STAGE_BEGIN, bay, port, uid, (enum ev_stage)s, EV_OUT_NONE, NULL);
			for (int p = 1; s == EV_STAGE_FLASH && p <= 20; p++) {
				memset(&ev, 0, sizeof(ev));
				ev.kind = EV_PROGRESS;
				ev.bay_index = bay;
				snprintf(ev.bay, sizeof(ev.bay), "%s", port);
				snprintf(ev.unique_id, sizeof(ev.unique_id), "%s", uid);
				ev.stage = EV_STAGE_FLASH;
				ev.done = (uint64_t)p * 13107;
				ev.total = 262140;
				ev_emit(bus, &ev);
			}
			ev_emitf(bus, EV_STAGE_END, bay, port, uid, (enum ev_stage)s, EV_OUT_OK, NULL);
		}
		ev_emitf(bus, EV_UNIT_RESULT, bay, port, uid, EV_STAGE_COMMIT,
			 u % 10 ? EV_OUT_PASS : EV_OUT_FAIL, u % 10 ? "certificate 1f" : "board stopped");
	}
	return bench_now_s() - t0;
}

int main(void)
{
	const char *env = getenv("BENCH_UI_UNITS");
	long units = env ? atol(env) : 5000;
	double events, base, scr, hl, snap;
	unsigned long counted = 0;
	struct ev_bus *bus;
	struct ui_screen *screen;
	struct ui_headless h;
	static struct ui_model copy;
	FILE *null;
	int reps = 2000;

	if (units < 100)
		units = 100;
	events = (double)units * EVENTS_PER_UNIT;

	bus = ev_bus_new();
	ev_subscribe(bus, count_sink, &counted);
	base = replay(bus, units);
	ev_bus_free(bus);
	if (counted != (unsigned long)events) {
		fprintf(stderr, "bench_ui: %lu events emitted, expected %.0f\n", counted, events);
		return 1;
	}

	screen = ui_screen_new(4, NULL);
	bus = ev_bus_new();
	if (!screen || !bus)
		return 1;
	ev_subscribe(bus, ui_screen_sink, screen);
	scr = replay(bus, units);
	ev_bus_free(bus);
	{
		double t0 = bench_now_s();

		for (int i = 0; i < reps; i++)
			ui_screen_snapshot(screen, &copy);
		snap = (bench_now_s() - t0) / reps;
	}
	if (copy.pass + copy.fail != (unsigned long)units) {
		fprintf(stderr, "bench_ui: the screen counted %lu results of %ld\n",
			copy.pass + copy.fail, units);
		return 1;
	}
	ui_screen_free(screen);

	null = fopen("/dev/null", "w");
	if (!null)
		return 1;
	ui_headless_init(&h, null);
	bus = ev_bus_new();
	ev_subscribe(bus, ui_headless_sink, &h);
	hl = replay(bus, units);
	ev_bus_free(bus);
	fclose(null);
	if (h.lines != (unsigned long)events || h.write_failed) {
		fprintf(stderr, "bench_ui: headless wrote %lu lines of %.0f\n", h.lines, events);
		return 1;
	}

	printf("bench_ui: %ld units x %d events over 4 bays\n", units, EVENTS_PER_UNIT);
	printf("  baseline (bus + counting sink)  %7.0f ns/event\n", base / events * 1e9);
	printf("  screen sink                     %7.0f ns/event  %5.2fx baseline  %6.1f us/unit\n",
	       scr / events * 1e9, scr / base, scr / units * 1e6);
	printf("  headless sink (/dev/null)       %7.0f ns/event  %5.2fx baseline  %6.1f us/unit\n",
	       hl / events * 1e9, hl / base, hl / units * 1e6);
	printf("  model copy per redraw           %7.1f us (%zu bytes)\n", snap * 1e6,
	       sizeof(struct ui_model));
	return 0;
}
