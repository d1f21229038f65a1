/* ui_tile: see tile.h. */
#include "ui/tile.h"
#include "ui/action.h"
#include "ui/screen.h"

#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


int ui_term_open(const char *need, SCREEN **scr, struct errbuf *e)
{
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
		return errbuf_set(e, ST_EIO, "%s", need);
	setlocale(LC_CTYPE, "");
	*scr = newterm(NULL, stdout, stdin);
	if (!*scr)
		return errbuf_set(e, ST_EIO, "cannot drive terminal '%s'",
				  getenv("TERM") ? getenv("TERM") : "(TERM unset)");
	set_term(*scr);
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	set_escdelay(25);
	return ST_OK;
}

void ui_term_close(SCREEN *scr)
{
	endwin();
	delscreen(scr);
}

/* Declared in screen.h (the bays' keys are the screen's); defined here so the
 * tile's title can show them without calling back into the screen. */
int ui_bay_key(int i)
{
	static const char keys[] = "123456789abcdefg";

	return i >= 0 && i < (int)sizeof(keys) - 1 ? keys[i] : 0;
}

/* Writes text at (y, x), cut or padded with spaces to exactly w columns. */
void ui_put(int y, int x, int w, attr_t attr, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void ui_put(int y, int x, int w, attr_t attr, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	if (w <= 0 || y < 0 || y >= LINES || x >= COLS)
		return;
	if (x + w > COLS)
		w = COLS - x;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	n = (int)strlen(buf);
	attron(attr);
	mvaddnstr(y, x, buf, w);
	for (int i = n; i < w; i++)
		addch(' ');
	attroff(attr);
}

/* Centred text in a w-wide field. */
void ui_put_centered(int y, int x, int w, attr_t attr, const char *text)
{
	int n = (int)strlen(text), pad = n < w ? (w - n) / 2 : 0;

	ui_put(y, x, w, attr, "%*s%s", pad, "", text);
}

/* Writes text at (y, x) in a w-wide field; text longer than w ends in "...". */
void ui_put_cut(int y, int x, int w, attr_t attr, const char *text)
{
	if ((int)strlen(text) <= w || w < 4)
		ui_put(y, x, w, attr, "%s", text);
	else
		ui_put(y, x, w, attr, "%.*s...", w - 3, text);
}

/*
 * Three verdicts that cannot be confused: a colour each (REJECT is magenta,
 * not FAIL's red), an attribute set each on a monochrome terminal, and a fill
 * pattern each that needs neither (PASS plain, FAIL a '#' border, REJECT '/'
 * hatching).
 */
attr_t ui_verdict_attr(int color, enum ui_verdict v)
{
	if (!color)
		return v == UI_VERDICT_PASS ? A_BOLD :
		       v == UI_VERDICT_FAIL ? A_REVERSE | A_BOLD : A_REVERSE | A_BOLD | A_UNDERLINE;
	return (attr_t)COLOR_PAIR(v == UI_VERDICT_PASS ? UI_PAIR_PASS :
				  v == UI_VERDICT_FAIL ? UI_PAIR_FAIL : UI_PAIR_REJECT) |
	       (v == UI_VERDICT_PASS ? A_NORMAL : A_BOLD);
}

attr_t ui_warn_attr(int color)
{
	return color ? (attr_t)COLOR_PAIR(UI_PAIR_WARN) | A_BOLD : A_BOLD;
}

/* Block letters, 5 x 5 cells, for the verdicts' words. */
static const char *glyph(char c, int row)
{
	static const struct { char c; const char *rows[5]; } font[] = {
		{ 'P', { "#### ", "#   #", "#### ", "#    ", "#    " } },
		{ 'A', { " ### ", "#   #", "#####", "#   #", "#   #" } },
		{ 'S', { " ####", "#    ", " ### ", "    #", "#### " } },
		{ 'F', { "#####", "#    ", "#### ", "#    ", "#    " } },
		{ 'I', { "#####", "  #  ", "  #  ", "  #  ", "#####" } },
		{ 'L', { "#    ", "#    ", "#    ", "#    ", "#####" } },
		{ 'R', { "#### ", "#   #", "#### ", "#  # ", "#   #" } },
		{ 'E', { "#####", "#    ", "#### ", "#    ", "#####" } },
		{ 'J', { "#####", "   # ", "   # ", "#  # ", " ##  " } },
		{ 'C', { " ####", "#    ", "#    ", "#    ", " ####" } },
		{ 'T', { "#####", "  #  ", "  #  ", "  #  ", "  #  " } },
	};

	for (size_t i = 0; i < sizeof(font) / sizeof(font[0]); i++)
		if (font[i].c == c)
			return font[i].rows[row];
	return "     ";
}

/* The verdict's band: rows x w cells at (y, x), its word in block letters of
 * scale sx x sy when big, else in the middle row. */
static void draw_band(int color, enum ui_verdict v, int y, int x, int w,
		      int rows, int big, int sx, int sy)
{
	const char *word = ui_verdict_name(v);
	int n = (int)strlen(word), ww = big ? (n * 6 - 1) * sx : n;
	int edge = big ? (rows - 5 * sy) / 2 : rows / 2, x0 = (w - ww) / 2;
	attr_t a = ui_verdict_attr(color, v);
	char fill = v == UI_VERDICT_REJECT ? '/' : ' ';

	for (int r = 0; r < rows; r++) {
		int lr = big ? r - edge : 0;
		int border = v == UI_VERDICT_FAIL && (r == 0 || r == rows - 1) && rows >= 3 &&
			     (!big || lr < 0 || lr >= 5 * sy);

		move(y + r, x);
		for (int c = 0; c < w; c++) {
			int cx = c - x0;
			char ch = border || (v == UI_VERDICT_FAIL && (c < 2 || c >= w - 2)) ? '#' : fill;
			attr_t ca = a;

			if (big && lr >= 0 && lr < 5 * sy && cx >= 0 && cx < ww) {
				int li = cx / sx / 6, lc = cx / sx % 6;

				if (lc < 5 && glyph(word[li], lr / sy)[lc] == '#') {
					ch = word[li];          /* greppable and solid */
					ca = a ^ A_REVERSE;
				} else if (lc < 5 || cx / sx % 6 == 5) {
					ch = ' ';
				}
			} else if (!big && r == edge && cx >= -1 && cx <= n) {
				ch = cx >= 0 && cx < n ? word[cx] : ' ';
			}
			attron(ca);
			addch((chtype)(unsigned char)ch);
			attroff(ca);
		}
	}
}

/* Wraps text over up to rows lines of width w starting at (y, x), at spaces
 * only: a word (an id) is never broken; what does not fit ends in "...". */
static void put_wrapped(int y, int x, int w, int rows, attr_t attr, const char *text)
{
	const char *p = text;

	for (int r = 0; r < rows && *p; r++) {
		int n = (int)strlen(p), cut = n;

		if (n > w) {
			cut = 0;
			for (int i = w; i > 0; i--)
				if (p[i] == ' ') {
					cut = i;
					break;
				}
			if (r == rows - 1 || cut == 0) {
				ui_put_cut(y + r, x, w, attr, p);
				return;
			}
		}
		ui_put(y + r, x, w, attr, "%.*s", cut, p);
		p += cut;
		while (*p == ' ')
			p++;
	}
}

static void draw_progress(int y, int x, int w, double f)
{
	int bar = w - 7, fill;          /* "[" bar "] 100%" */

	if (bar < 4) {
		ui_put(y, x, w, A_BOLD, "%3d%%", (int)(f * 100));
		return;
	}
	fill = (int)(f * bar + 0.5);
	move(y, x);
	addch('[');
	attron(A_BOLD);
	for (int i = 0; i < bar; i++)
		addch(i < fill ? '#' : '.');
	attroff(A_BOLD);
	printw("] %3d%%", (int)(f * 100));
}

/* "12.3s", "4m05s": a cycle time. */
void ui_fmt_ms(char *buf, size_t len, int64_t ms)
{
	if (ms < 100000)
		snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
	else
		snprintf(buf, len, "%dm%02ds", (int)(ms / 60000), (int)(ms / 1000 % 60));
}

/* The bay's numbers: counts, last and median cycle. */
static void draw_stats(int y, int x, int w, const struct ui_tile *t)
{
	char line[128], last[16], med[16];

	ui_fmt_ms(last, sizeof(last), ui_tile_last_cycle(t));
	ui_fmt_ms(med, sizeof(med), ui_tile_median_cycle(t));
	if (t->ncycles)
		snprintf(line, sizeof(line), " P %lu  F %lu  R %lu   last %s  median %s", t->npass,
			 t->nfail, t->nreject, last, med);
	else
		snprintf(line, sizeof(line), " P %lu  F %lu  R %lu", t->npass, t->nfail, t->nreject);
	if ((int)strlen(line) > w && t->ncycles)
		snprintf(line, sizeof(line), " P%lu F%lu R%lu %s/%s", t->npass, t->nfail, t->nreject,
			 last, med);
	ui_put_cut(y, x, w, A_DIM, line);
}

/* What a tile says while no verdict shows, fitted to its width. */
static const char *idle_words(const struct ui_tile *t, int w)
{
	switch (t->waiting) {
	case EV_INTAKE_PAUSED:   return w >= 18 ? "waiting (paused)" : "paused";
	case EV_INTAKE_STOPPING: return w >= 23 ? "line stopping: unplug" : "unplug";
	case EV_INTAKE_HELD:     return w >= 19 ? "waiting: bay held" : "held";
	default: break;
	}
	if (t->present)
		return t->busy ? "identifying..." : "starting...";
	return w >= 21 ? "waiting for a board" : "empty";
}

static void draw_verdict(int color, const struct ui_tile *t, int row, int end, int x,
			 int w)
{
	int avail = end - row, text = t->verdict == UI_VERDICT_PASS ? 1 : 2;
	int stats = avail - text >= 2, base = avail - text - stats, rows, big = 0, sx = 1, sy = 1;
	int wordw = ((int)strlen(ui_verdict_name(t->verdict)) * 6 - 1);
	char plain[EV_REASON_LEN + 32], raw[EV_REASON_LEN];
	const char *p = ui_action_plain(t->reason_code);

	if (base >= 12 && w >= 2 * wordw + 6) {
		big = 1, sx = 2, sy = 2, rows = base > 14 ? 14 : base;
	} else if (base >= 5 && w >= wordw + 4) {
		big = 1, rows = base >= 7 ? 7 : 5;
	} else {
		rows = base >= 3 ? 3 : base < 1 ? 1 : base;
	}
	draw_band(color, t->verdict, row, x, w, rows, big, sx, sy);
	row += rows;
	if (row < end)
		ui_put_cut(row++, x + 1, w - 1, A_BOLD, ui_action_for(t->verdict, t->reason_code));
	if (t->verdict != UI_VERDICT_PASS && row < end) {
		/* the plain reason of the code; without one, the event's own words */
		if (p) {
			snprintf(plain, sizeof(plain), "why: %s", p);
		} else {
			ui_plain_reason(raw, sizeof(raw), t->reason, t->bay);
			ui_reason_without_id(plain, sizeof(plain), raw, t->unique_id);
			if (!plain[0])
				snprintf(plain, sizeof(plain), "no reason given");
		}
		put_wrapped(row, x + 1, w - 1, end - row - stats, A_NORMAL, plain);
	}
	if (stats)
		draw_stats(end - 1, x, w, t);
}

void ui_draw_tile(int color, const struct ui_tile *t, int idx, int y, int x,
		      int h, int w)
{
	char title[128], label[32];   /* " label  bay" or " label uid": fits whole */
	int row = y + 1, end = y + h, held_row;
	const char *uid = t->unique_id[0] ? t->unique_id : NULL;

	w -= 1;                 /* gap between tiles */
	if (idx >= 9)
		snprintf(label, sizeof(label), "BAY %d [%c]", idx + 1, ui_bay_key(idx));
	else
		snprintf(label, sizeof(label), "BAY %d", idx + 1);
	snprintf(title, sizeof(title), " %s  %s", label, t->bay);
	/* no row to spare: the id goes in the title, whole or not at all */
	if (h < 4 && uid && (int)(strlen(label) + strlen(uid) + 2) <= w - 7)
		snprintf(title, sizeof(title), " %s %s", label, uid);
	ui_put(y, x, w, A_REVERSE, "%s", title);
	if (t->held)
		ui_put(y, x + w - 6, 6, A_REVERSE | A_BOLD, " HELD ");
	else if (t->alert)
		ui_put(y, x + w - 7, 7, A_REVERSE | A_BOLD, " ALERT ");

	if (h >= 4) {
		if (uid && (int)strlen(uid) + 1 > w)    /* narrow: keep the distinctive tail */
			ui_put(row++, x, w, A_BOLD, " ..%s", uid + strlen(uid) - (w - 4));
		else if (uid)
			ui_put(row++, x, w, A_BOLD, " %s", uid);
		else
			ui_put(row++, x, w, A_NORMAL, " %s", t->busy ? "identifying..." : "");
	}

	/* A held bay says so on its last row when the tile can spare one (the
	 * title bar says HELD in any case); the verdict's action comes first. */
	held_row = t->held && !t->busy && end - row >= 2 + (t->verdict != UI_VERDICT_NONE);
	if (held_row)
		end--;
	if (t->busy) {
		ui_put(row++, x, w, A_NORMAL, " working: %s", ev_stage_name(t->stage));
		if (row < end && t->progress >= 0)
			draw_progress(row++, x + 1, w - 1, t->progress);
		if (end - row >= 2)
			draw_stats(end - 1, x, w, t);
	} else if (t->verdict != UI_VERDICT_NONE) {
		draw_verdict(color, t, row, end, x, w);
	} else if (row < end) {
		ui_put(row, x, w, t->waiting != EV_INTAKE_OPEN ? ui_warn_attr(color) : A_NORMAL, " %s",
		    idle_words(t, w));
		if (end - row >= 3 && (t->npass || t->nfail || t->nreject))
			draw_stats(end - 1, x, w, t);
	}
	if (held_row)
		ui_put_cut(end, x, w, ui_warn_attr(color) | A_REVERSE,
			w >= 34 ? " HELD: " UI_ACTION_HELD " - c clears" : " HELD: " UI_ACTION_HELD);
}

