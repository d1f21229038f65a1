/*
 * ui_tile: how the screen draws a bay's tile, and the text primitives the
 * screen shares with it (ncurses, UI thread only).
 *
 * A tile: title bar (bay number, port, HELD / ALERT), the board's id whole or
 * its tail, then the unit's state: working with its stage and progress; a
 * board waiting (paused, line stopping, bay held); or the verdict band with
 * its action and plain reason (ui/action.h) and the bay's numbers.  The band
 * tells the three verdicts apart without colour: PASS plain, FAIL a '#'
 * border, REJECT '/' hatching; its word is drawn in 5-row block letters when
 * the tile has the rows and the columns (doubled on big terminals), made of
 * the letter itself so a capture still reads it.  Text never breaks inside a
 * word (an id): what does not fit ends in "...".
 */
#ifndef UI_TILE_H
#define UI_TILE_H

#include <curses.h>

#include "core/errbuf.h"
#include "ui/model.h"

enum { UI_PAIR_PASS = 1, UI_PAIR_FAIL, UI_PAIR_WARN, UI_PAIR_REJECT };

/* The terminal in the mode the screen and the scan prompt share: cbreak, no
 * echo, keypad, a 25 ms Esc.  need says who needs it, for the error when stdin
 * or stdout is not a terminal ("the screen needs a terminal").  ui_term_close()
 * gives the terminal back. */
ST_MUST_CHECK int ui_term_open(const char *need, SCREEN **scr, struct errbuf *e);
void ui_term_close(SCREEN *scr);

/* Text at (y, x), cut or padded with spaces to exactly w columns. */
void ui_put(int y, int x, int w, attr_t attr, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* The same; text longer than w ends in "...". */
void ui_put_cut(int y, int x, int w, attr_t attr, const char *text);
/* Centred text in a w-wide field. */
void ui_put_centered(int y, int x, int w, attr_t attr, const char *text);

/* A verdict's attributes: colour pairs when color, else monochrome sets
 * (PASS bold, FAIL reverse bold, REJECT reverse bold underlined). */
attr_t ui_verdict_attr(int color, enum ui_verdict v);
attr_t ui_warn_attr(int color);

/* "12.3s", "4m05s". */
void ui_fmt_ms(char *buf, size_t len, int64_t ms);

/* Tile idx of h x w cells at (y, x); w includes the one-column gap. */
void ui_draw_tile(int color, const struct ui_tile *t, int idx, int y, int x, int h, int w);

#endif
