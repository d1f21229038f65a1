/*
 * ui_screen: the operator's ncurses screen.
 *
 * It shows a ui_model (model.h): header, one tile per bay, counters, a scrolling
 * log and a key line.  It consumes events only; the operator's keys go back to
 * the line through struct ui_controls, which the pipeline implements.
 *
 * Threads: ui_screen_sink() is called on pipeline threads (from the event bus);
 * it only updates the model under the screen's mutex and wakes the UI thread
 * through a self-pipe.  Every ncurses call happens on the one thread that runs
 * ui_screen_run().  Control callbacks are called on that UI thread, never with
 * the screen's mutex held, so they may emit events synchronously.
 *
 * Keys: ?  help overlay (opens / closes; Esc closes too)
 *       p  pause / resume intake            -> controls.pause(ctx, paused)
 *       c  clear a held bay: the only one, or asks for the bay's key
 *          (1-9, then a-g for bays 10-16)  -> controls.clear_bay(ctx, index)
 *       s  shift summary overlay: per bay, per reason code, per operator
 *       l  while paused: scan a new lot      -> controls.change_lot(ctx, code)
 *       b  bell and flash on REJECT / held bay: on, off
 *       q  quit                             -> controls.quit(ctx), once
 * After q the screen shows "waiting for N units in flight".  ui_screen_run()
 * returns when the line reports EV_LINE_STOPPED, whatever asked it to stop (q,
 * a signal, a unit limit); an EV_LINE_STOPPED before the run returns at once.
 *
 * Rendering is ASCII only.  The three verdicts differ in colour (PASS black on
 * green, FAIL white on red, REJECT white on magenta), in monochrome attributes
 * (PASS bold, FAIL reverse bold, REJECT reverse bold underlined), in pattern
 * (PASS plain, FAIL a '#' border, REJECT '/' hatching) and in the word, drawn in
 * block letters when the tile has the room; tiles grow with the terminal, the
 * log keeps a few rows.  Each verdict shows its action and plain reason
 * (ui/action.h).  A REJECT or a newly held bay rings the bell and flashes the
 * key line.  Local time with its zone (or UTC) shows once, in the header.  Resizing redraws; below
 * UI_MIN_COLS x UI_MIN_LINES the screen asks for a bigger terminal.
 */
#ifndef UI_SCREEN_H
#define UI_SCREEN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/errbuf.h"
#include "core/event.h"
#include "ui/model.h"

#define UI_MIN_COLS  40
#define UI_MIN_LINES 12

struct ui_controls {
	void (*pause)(void *ctx, bool paused);  /* stop / restart taking new boards */
	void (*clear_bay)(void *ctx, int bay_index);
	void (*quit)(void *ctx);                /* stop intake, finish units in flight */
	/* l while paused: the scanned code of a new lot.  0 when the line now
	 * runs that lot (the line's event updates the header); -1 with why in msg,
	 * shown on the screen, and the operator may scan again.  NULL: no lot change. */
	int (*change_lot)(void *ctx, const char *code, char *msg, size_t msglen);
	void *ctx;
};

struct ui_screen;

/* nbays tiles are shown from the start; controls are copied (a NULL callback is
 * skipped).  Returns NULL on ENOMEM or when a pipe cannot be made. */
struct ui_screen *ui_screen_new(int nbays, const struct ui_controls *controls);
void ui_screen_free(struct ui_screen *s);

/* bell: beep and flash on a REJECT or a held bay (default on; key b toggles);
 * utc: times in UTC, labelled, instead of local time.  Before ui_screen_run. */
void ui_screen_set_options(struct ui_screen *s, int bell, int utc);

/* Header fields the events do not carry (any may be NULL).  Thread-safe. */
void ui_screen_set_header(struct ui_screen *s, const char *station_id, const char *operator_name,
			  const char *profile, const char *lot, const char *db_path);

/* An ev_sink_fn: ctx is the struct ui_screen.  Quick; never calls ncurses. */
void ui_screen_sink(const struct ev_event *ev, void *ctx);

/* Copies the current model (for tests and diagnostics).  Thread-safe. */
void ui_screen_snapshot(struct ui_screen *s, struct ui_model *out);

/* Runs the screen on stdin/stdout until quit completes.  ST_OK, or ST_EIO with
 * a message when stdin/stdout is not a terminal ncurses can drive. */
int ui_screen_run(struct ui_screen *s, struct errbuf *e);

/* Where things go on a lines x cols terminal with n tiles (pure; unit-tested). */
struct ui_layout {
	int too_small;          /* below UI_MIN_COLS x UI_MIN_LINES */
	int grid_cols, grid_rows;
	int tile_w, tile_h;     /* tile_w includes a one-column gap on the right */
	int tiles_y;            /* first row of the tiles (after the 2 header rows) */
	int counters_y;
	int log_y, log_h;       /* the log fills what the tiles leave */
	int keys_y;             /* last row */
};
void ui_screen_layout(struct ui_layout *l, int ntiles, int lines, int cols);

/* The key that selects bay index i in the clear prompt ('1'..'9','a'..'g'), 0 past that. */
int ui_bay_key(int i);

#endif
