/* ui_screen: see screen.h. */
#include "ui/screen.h"
#include "core/clock.h"
#include "ui/action.h"

#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TILE_WIDE_W  34     /* room for a 24-digit unique id and a margin */
#define TICK_MS      250    /* redraw period: clock-driven figures, missed SIGWINCH */
#define FLASH_MS     3000   /* how long a one-line notice stays on the key line */

enum { PAIR_PASS = 1, PAIR_FAIL, PAIR_WARN, PAIR_REJECT };

struct ui_screen {
	pthread_mutex_t lock;
	struct ui_model model;          /* shared with the sink, under lock */
	int wake[2];                    /* self-pipe: sink -> UI thread */
	atomic_int wake_pending;        /* a byte is in the pipe: no need for another */
	struct ui_controls ctl;

	/* UI thread only */
	struct ui_model *view;          /* snapshot being drawn */
	int color;
	int help_open;
	int prompt_clear;
	int quit_requested;
	int summary_open;
	int bell;                       /* bell + flash on REJECT and held bays */
	unsigned long attention_seen;
	int64_t flash_until;
	char notice[128];
	int64_t notice_until;
	char line_in[80];               /* a code being typed or scanned */
	int lot_prompt;                 /* l: scanning a new lot */
	char lot_msg[160];              /* why the last lot was refused */
};

int ui_bay_key(int i)
{
	static const char keys[] = "123456789abcdefg";

	return i >= 0 && i < (int)sizeof(keys) - 1 ? keys[i] : 0;
}

static int bay_of_key(int ch, int ntiles)
{
	for (int i = 0; i < ntiles; i++)
		if (ui_bay_key(i) == ch)
			return i;
	return -1;
}

void ui_screen_layout(struct ui_layout *l, int ntiles, int lines, int cols)
{
	int n = ntiles > 0 ? ntiles : 1;
	int log_min = lines >= 24 ? 3 : 2;
	int area = lines - 4 - log_min;         /* 2 header rows, counters, keys */
	int best_c = 0, best_th = 0;
	double best = -1;

	memset(l, 0, sizeof(*l));
	l->keys_y = lines - 1;
	if (lines < UI_MIN_LINES || cols < UI_MIN_COLS) {
		l->too_small = 1;
		return;
	}
	/* Pick the column count giving the most readable tiles: a full unique id
	 * first, then the largest tile in "square-looking" terms (cells are about
	 * three times taller than wide). */
	for (int c = 1; c <= n; c++) {
		int r = (n + c - 1) / c, tw = cols / c, th = area / r;
		double score;

		if (th < 3 || tw < 12)
			continue;
		score = (tw >= TILE_WIDE_W ? 1000.0 : 0.0) +
			(tw / 3.0 < th ? tw / 3.0 : (double)th);
		if (score > best) {
			best = score;
			best_c = c;
			best_th = th;
		}
	}
	if (!best_c) {
		/* Too many bays for this height: one row of two-line tiles. */
		int c = (n + 1) / 2, r = (n + c - 1) / c;

		if (area / r < 2 || cols / c < 12) {
			l->too_small = 1;
			return;
		}
		best_c = c;
		best_th = area / r;
	}
	l->grid_cols = best_c;
	l->grid_rows = (n + best_c - 1) / best_c;
	l->tile_w = cols / best_c;
	l->tile_h = best_th;      /* tiles grow with the terminal; the log does not */
	l->tiles_y = 2;
	l->counters_y = l->tiles_y + l->grid_rows * l->tile_h;
	l->log_y = l->counters_y + 1;
	l->log_h = l->keys_y - l->log_y;
}

struct ui_screen *ui_screen_new(int nbays, const struct ui_controls *controls)
{
	struct ui_screen *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->wake[0] = s->wake[1] = -1;
	s->view = calloc(1, sizeof(*s->view));
	if (!s->view || ui_model_init(&s->model, nbays) < 0 ||
	    pipe2(s->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
		ui_model_free(&s->model);
		free(s->view);
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	atomic_init(&s->wake_pending, 0);
	if (controls)
		s->ctl = *controls;
	s->bell = 1;
	return s;
}

void ui_screen_free(struct ui_screen *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	ui_model_free(&s->model);
	close(s->wake[0]);
	close(s->wake[1]);
	free(s->view);
	free(s);
}

static void wake_ui(struct ui_screen *s)
{
	char c = 1;
	ssize_t n;

	/* One byte per wake-up, not per event: the UI thread clears the flag
	 * before it copies the model, so a change made after that copy always
	 * writes a new byte.  A full pipe (EAGAIN) already holds a wake-up, and a
	 * sink has no one to report an error to. */
	if (atomic_exchange(&s->wake_pending, 1))
		return;
	n = write(s->wake[1], &c, 1);
	(void)n;
}

void ui_screen_set_options(struct ui_screen *s, int bell, int utc)
{
	pthread_mutex_lock(&s->lock);
	s->bell = bell;
	s->model.utc = utc;
	pthread_mutex_unlock(&s->lock);
}

void ui_screen_set_header(struct ui_screen *s, const char *station_id, const char *operator_name,
			  const char *profile, const char *lot, const char *db_path)
{
	pthread_mutex_lock(&s->lock);
	ui_model_set_header(&s->model, station_id, operator_name, profile, lot, db_path);
	pthread_mutex_unlock(&s->lock);
	wake_ui(s);
}

void ui_screen_sink(const struct ev_event *ev, void *ctx)
{
	struct ui_screen *s = ctx;

	pthread_mutex_lock(&s->lock);
	ui_model_apply(&s->model, ev);
	pthread_mutex_unlock(&s->lock);
	wake_ui(s);
}

void ui_screen_snapshot(struct ui_screen *s, struct ui_model *out)
{
	pthread_mutex_lock(&s->lock);
	ui_model_snapshot(out, &s->model);
	pthread_mutex_unlock(&s->lock);
}

/* ---- drawing (UI thread only) ---- */

/* Writes text at (y, x), cut or padded with spaces to exactly w columns. */
static void put(int y, int x, int w, attr_t attr, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void put(int y, int x, int w, attr_t attr, const char *fmt, ...)
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
static void put_centered(int y, int x, int w, attr_t attr, const char *text)
{
	int n = (int)strlen(text), pad = n < w ? (w - n) / 2 : 0;

	put(y, x, w, attr, "%*s%s", pad, "", text);
}

/* Writes text at (y, x) in a w-wide field; text longer than w ends in "...". */
static void put_cut(int y, int x, int w, attr_t attr, const char *text)
{
	if ((int)strlen(text) <= w || w < 4)
		put(y, x, w, attr, "%s", text);
	else
		put(y, x, w, attr, "%.*s...", w - 3, text);
}

/*
 * Three verdicts that cannot be confused: a colour each (REJECT is magenta,
 * not FAIL's red), an attribute set each on a monochrome terminal, and a fill
 * pattern each that needs neither (PASS plain, FAIL a '#' border, REJECT '/'
 * hatching).
 */
static attr_t verdict_attr(const struct ui_screen *s, enum ui_verdict v)
{
	if (!s->color)
		return v == UI_VERDICT_PASS ? A_BOLD :
		       v == UI_VERDICT_FAIL ? A_REVERSE | A_BOLD : A_REVERSE | A_BOLD | A_UNDERLINE;
	return (attr_t)COLOR_PAIR(v == UI_VERDICT_PASS ? PAIR_PASS :
				  v == UI_VERDICT_FAIL ? PAIR_FAIL : PAIR_REJECT) |
	       (v == UI_VERDICT_PASS ? A_NORMAL : A_BOLD);
}

static attr_t warn_attr(const struct ui_screen *s)
{
	return s->color ? (attr_t)COLOR_PAIR(PAIR_WARN) | A_BOLD : A_BOLD;
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
static void draw_band(const struct ui_screen *s, enum ui_verdict v, int y, int x, int w,
		      int rows, int big, int sx, int sy)
{
	const char *word = ui_verdict_name(v);
	int n = (int)strlen(word), ww = big ? (n * 6 - 1) * sx : n;
	int edge = big ? (rows - 5 * sy) / 2 : rows / 2, x0 = (w - ww) / 2;
	attr_t a = verdict_attr(s, v);
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
				put_cut(y + r, x, w, attr, p);
				return;
			}
		}
		put(y + r, x, w, attr, "%.*s", cut, p);
		p += cut;
		while (*p == ' ')
			p++;
	}
}

static void draw_progress(int y, int x, int w, double f)
{
	int bar = w - 7, fill;          /* "[" bar "] 100%" */

	if (bar < 4) {
		put(y, x, w, A_BOLD, "%3d%%", (int)(f * 100));
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
static void fmt_ms(char *buf, size_t len, int64_t ms)
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

	fmt_ms(last, sizeof(last), ui_tile_last_cycle(t));
	fmt_ms(med, sizeof(med), ui_tile_median_cycle(t));
	if (t->ncycles)
		snprintf(line, sizeof(line), " P %lu  F %lu  R %lu   last %s  median %s", t->npass,
			 t->nfail, t->nreject, last, med);
	else
		snprintf(line, sizeof(line), " P %lu  F %lu  R %lu", t->npass, t->nfail, t->nreject);
	if ((int)strlen(line) > w && t->ncycles)
		snprintf(line, sizeof(line), " P%lu F%lu R%lu %s/%s", t->npass, t->nfail, t->nreject,
			 last, med);
	put_cut(y, x, w, A_DIM, line);
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

static void draw_verdict(struct ui_screen *s, const struct ui_tile *t, int row, int end, int x,
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
	draw_band(s, t->verdict, row, x, w, rows, big, sx, sy);
	row += rows;
	if (row < end)
		put_cut(row++, x + 1, w - 1, A_BOLD, ui_action_for(t->verdict, t->reason_code));
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

static void draw_tile(struct ui_screen *s, const struct ui_tile *t, int idx, int y, int x,
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
	put(y, x, w, A_REVERSE, "%s", title);
	if (t->held)
		put(y, x + w - 6, 6, A_REVERSE | A_BOLD, " HELD ");
	else if (t->alert)
		put(y, x + w - 7, 7, A_REVERSE | A_BOLD, " ALERT ");

	if (h >= 4) {
		if (uid && (int)strlen(uid) + 1 > w)    /* narrow: keep the distinctive tail */
			put(row++, x, w, A_BOLD, " ..%s", uid + strlen(uid) - (w - 4));
		else if (uid)
			put(row++, x, w, A_BOLD, " %s", uid);
		else
			put(row++, x, w, A_NORMAL, " %s", t->busy ? "identifying..." : "");
	}

	/* A held bay says so on its last row when the tile can spare one (the
	 * title bar says HELD in any case); the verdict's action comes first. */
	held_row = t->held && !t->busy && end - row >= 2 + (t->verdict != UI_VERDICT_NONE);
	if (held_row)
		end--;
	if (t->busy) {
		put(row++, x, w, A_NORMAL, " working: %s", ev_stage_name(t->stage));
		if (row < end && t->progress >= 0)
			draw_progress(row++, x + 1, w - 1, t->progress);
		if (end - row >= 2)
			draw_stats(end - 1, x, w, t);
	} else if (t->verdict != UI_VERDICT_NONE) {
		draw_verdict(s, t, row, end, x, w);
	} else if (row < end) {
		put(row, x, w, t->waiting != EV_INTAKE_OPEN ? warn_attr(s) : A_NORMAL, " %s",
		    idle_words(t, w));
		if (end - row >= 3 && (t->npass || t->nfail || t->nreject))
			draw_stats(end - 1, x, w, t);
	}
	if (held_row)
		put_cut(end, x, w, warn_attr(s) | A_REVERSE,
			w >= 34 ? " HELD: " UI_ACTION_HELD " - c clears" : " HELD: " UI_ACTION_HELD);
}

/* A framed box of lines centred on the screen; the first line is its title. */
static void draw_box(const char *const *lines, int n, int w, const char *foot)
{
	int h = n + 4, y, x;

	if (w > COLS)
		w = COLS;
	if (h > LINES)
		h = LINES;
	y = (LINES - h) / 2;
	x = (COLS - w) / 2;
	for (int r = 0; r < h; r++) {
		int edge = r == 0 || r == h - 1;

		put(y + r, x, w, A_NORMAL, "%s", "");
		mvaddch(y + r, x, edge ? '+' : '|');
		mvaddch(y + r, x + w - 1, edge ? '+' : '|');
		if (edge)
			for (int c = 1; c < w - 1; c++)
				mvaddch(y + r, x + c, '-');
	}
	for (int i = 0; i < n && i + 1 < h - 2; i++)
		put_cut(y + 1 + i, x + 2, w - 4, i == 0 ? A_BOLD : A_NORMAL, lines[i]);
	put_centered(y + h - 2, x + 1, w - 2, A_REVERSE, foot);
}

static void draw_help(void)
{
	static const char *const lines[] = {
		"KEYS",
		"?   open / close this help (Esc closes too)",
		"p   pause / resume intake; boards in work finish",
		"c   clear a held bay (then press its number)",
		"s   shift summary: per bay, reason and operator",
		"l   change lot (while paused): scan its barcode",
		"b   bell and flash on REJECT / held bay: on, off",
		"q   quit: stops intake, waits for units in flight",
		"",
		"PASS    plain green: " UI_ACTION_PASS,
		"FAIL    red, # border: " UI_ACTION_FAIL,
		"REJECT  magenta, / fill: " UI_ACTION_REJECT,
		"HELD    3 failures in a row: " UI_ACTION_HELD,
		"P F R   the bay's PASS / FAIL / REJECT counts",
		"FPY     first-pass yield: share of boards that",
		"        passed on their first attempt",
	};

	draw_box(lines, (int)(sizeof(lines) / sizeof(lines[0])), 56, "press ? to close");
}

/* The shift summary: per bay, per reason code, per operator. */
static void draw_summary(const struct ui_model *v)
{
	static char buf[UI_MAX_BAYS + ST_R_COUNT + UI_MAX_OPS + 8][80];
	const char *lines[sizeof(buf) / sizeof(buf[0])];
	int n = 0, max = (int)(sizeof(buf) / sizeof(buf[0]));
	char last[16], med[16];

	snprintf(buf[n++], sizeof(buf[0]), "SHIFT SUMMARY since the line started");
	snprintf(buf[n++], sizeof(buf[0]), "%-8s %6s %6s %6s %8s %8s", "BAY", "PASS", "FAIL",
		 "REJECT", "last", "median");
	for (int i = 0; i < v->ntiles && n < max; i++) {
		const struct ui_tile *t = &v->tiles[i];

		fmt_ms(last, sizeof(last), ui_tile_last_cycle(t));
		fmt_ms(med, sizeof(med), ui_tile_median_cycle(t));
		snprintf(buf[n++], sizeof(buf[0]), "%-8d %6lu %6lu %6lu %8s %8s", i + 1, t->npass,
			 t->nfail, t->nreject, t->ncycles ? last : "-", t->ncycles ? med : "-");
	}
	snprintf(buf[n++], sizeof(buf[0]), "%-30s %6s  %s", "REASON (FAIL + REJECT)", "COUNT",
		 "code");
	for (int r = 0; r < ST_R_COUNT && n < max - UI_MAX_OPS - 2; r++) {
		const char *p = ui_action_plain((enum st_reason)r);

		if (!v->by_reason[r])
			continue;
		snprintf(buf[n++], sizeof(buf[0]), "%-30.30s %6lu  %s",
			 p ? p : st_reason_text((enum st_reason)r), v->by_reason[r],
			 st_reason_name((enum st_reason)r));
	}
	snprintf(buf[n++], sizeof(buf[0]), "%-20s %6s %6s %6s", "OPERATOR", "PASS", "FAIL",
		 "REJECT");
	for (int i = 0; i < v->nops && n < max; i++)
		snprintf(buf[n++], sizeof(buf[0]), "%-20.20s %6lu %6lu %6lu", v->ops[i].name,
			 v->ops[i].pass, v->ops[i].fail, v->ops[i].reject);
	for (int i = 0; i < n; i++)
		lines[i] = buf[i];
	draw_box(lines, n, 64, "press s to close");
}

/* "14:03:22 CET" (or "UTC"): the one place the screen names its time zone. */
static void clock_words(char *buf, size_t len, int64_t now_ms, int utc)
{
	time_t secs = (time_t)(now_ms / 1000);
	struct tm tm;

	buf[0] = '\0';
	if (utc ? gmtime_r(&secs, &tm) != NULL : localtime_r(&secs, &tm) != NULL)
		strftime(buf, len, utc ? "%H:%M:%S UTC" : "%H:%M:%S %Z", &tm);
}

static void draw_header(struct ui_screen *s, const struct ui_model *v, int64_t now)
{
	char clock[48], state[96];
	int cw;

	clock_words(clock, sizeof(clock), now, v->utc);
	cw = (int)strlen(clock) + 2;
	put(0, 0, COLS, A_REVERSE | A_BOLD, "%s", "");
	{
		char head[400];

		snprintf(head, sizeof(head), " STATION %s | operator %s | profile %s | lot %s",
			 v->station_id[0] ? v->station_id : "-",
			 v->operator_name[0] ? v->operator_name : "-",
			 v->profile[0] ? v->profile : "-", v->lot[0] ? v->lot : "-");
		put_cut(0, 0, COLS - cw, A_REVERSE | A_BOLD, head);
	}
	if (COLS - cw > 20)
		put(0, COLS - cw, cw, A_REVERSE | A_BOLD, " %s ", clock);
	if (v->stopped)
		snprintf(state, sizeof(state), "LINE STOPPED");
	else if (v->stopping || s->quit_requested)
		snprintf(state, sizeof(state), "STOPPING");
	else if (v->paused)
		snprintf(state, sizeof(state), "PAUSED - intake stopped");
	else
		snprintf(state, sizeof(state), v->started ? "RUNNING" : "STARTING");
	put(1, 0, COLS, A_NORMAL, " HSM %s%s%s%s | db %s",
	    v->hsm == UI_HSM_READY ? "ready" : v->hsm == UI_HSM_ERROR ? "ERROR" : "unknown",
	    v->hsm == UI_HSM_ERROR && v->hsm_reason[0] ? " (" : "",
	    v->hsm == UI_HSM_ERROR ? v->hsm_reason : "",
	    v->hsm == UI_HSM_ERROR && v->hsm_reason[0] ? ")" : "",
	    v->db_path[0] ? v->db_path : "-");
	if (v->hsm == UI_HSM_ERROR)
		put(1, 5, 5, warn_attr(s), "ERROR");
	put(1, COLS - (int)strlen(state) - 2, (int)strlen(state) + 2,
	    (v->paused || v->stopping || v->stopped || s->quit_requested) ? warn_attr(s) | A_REVERSE
									    : A_BOLD,
	    " %s ", state);
}

static void draw_counters(const struct ui_model *v, int y, int64_t now)
{
	double fpy = ui_model_fpy(v);
	int64_t idle = ui_model_idle_ms(v, now);
	char fpy_s[32], alerts[32] = "", rate[64], counters[256];

	if (fpy < 0)
		snprintf(fpy_s, sizeof(fpy_s), "-");
	else
		snprintf(fpy_s, sizeof(fpy_s), "%.1f%%", fpy * 100);
	if (v->alerts)
		snprintf(alerts, sizeof(alerts), "  ALERTS %lu", v->alerts);
	/* the rate falls while the line stands still; "idle" says why */
	if (idle)
		snprintf(rate, sizeof(rate), "idle %dm%02ds, %.0f units/h", (int)(idle / 60000),
			 (int)(idle / 1000 % 60), ui_model_uph(v, now));
	else
		snprintf(rate, sizeof(rate), "%.0f units/h", ui_model_uph(v, now));
	/* The long label when it fits, "FPY" (explained in the help) when not. */
	for (int shorter = 0; shorter < 2; shorter++) {
		snprintf(counters, sizeof(counters),
			 " PASS %lu  FAIL %lu  REJECT %lu%s  %s %s  %s  in flight %d",
			 v->pass, v->fail, v->reject, alerts, shorter ? "FPY" : "first-pass yield",
			 fpy_s, rate, ui_model_in_flight(v));
		if ((int)strlen(counters) <= COLS)
			break;
	}
	put_cut(y, 0, COLS, A_BOLD, counters);
}

static void draw_keys(struct ui_screen *s, const struct ui_model *v, int y, int64_t now)
{
	int inflight = ui_model_in_flight(v);

	if (s->lot_prompt) {
		put(y - 1, 0, COLS, warn_attr(s), " %s",
		    s->lot_msg[0] ? s->lot_msg : "scan the new lot's barcode, then Enter (Esc cancels)");
		put(y, 0, COLS, A_REVERSE | A_BOLD, " NEW LOT> %s_", s->line_in);
	} else if (s->prompt_clear) {
		put(y, 0, COLS, A_REVERSE | A_BOLD,
		    " Clear which bay? Press its number (Esc cancels)");
	} else if (s->quit_requested || v->stopping) {
		put(y, 0, COLS, warn_attr(s) | A_REVERSE,
		    " STOPPING: waiting for %d unit%s in flight", inflight, inflight == 1 ? "" : "s");
	} else if (s->notice[0] && now < s->notice_until) {   /* the answer to a key, whole */
		put(y, 0, COLS, A_REVERSE | A_BOLD, " ? help  q quit   %s", s->notice);
	} else if (now < s->flash_until) {
		/* the visual half of the bell: a REJECT or a held bay needs a person */
		put(y, 0, COLS, verdict_attr(s, UI_VERDICT_REJECT) | A_BLINK,
		    " !! ATTENTION: %s !!", ui_model_held(v, NULL) ? "a bay is held - "
		    UI_ACTION_HELD : "REJECT - " UI_ACTION_REJECT);
	} else {
		const char *act = v->paused ? "resume" : "pause";
		int wide = COLS >= 76;

		if (wide)
			put(y, 0, COLS, A_REVERSE,
			    " ? help  p %-6s c clear  s summary  l lot  b bell  q quit", act);
		else
			put(y, 0, COLS, A_REVERSE, " ? help  p %-6s c clear  s sum  q quit", act);
	}
}

static void draw(struct ui_screen *s)
{
	const struct ui_model *v = s->view;
	struct ui_layout l;
	int64_t now = clock_realtime_ms();

	erase();
	ui_screen_layout(&l, v->ntiles, LINES, COLS);
	if (l.too_small) {
		put(0, 0, COLS, A_BOLD, "terminal too small: need %dx%d", UI_MIN_COLS, UI_MIN_LINES);
		put(1, 0, COLS, A_NORMAL, "PASS %lu FAIL %lu REJECT %lu", v->pass, v->fail, v->reject);
		refresh();
		return;
	}
	draw_header(s, v, now);
	for (int i = 0; i < v->ntiles; i++) {
		int gr = i / l.grid_cols, gc = i % l.grid_cols;

		draw_tile(s, &v->tiles[i], i, l.tiles_y + gr * l.tile_h, gc * l.tile_w, l.tile_h,
			  l.tile_w);
	}
	draw_counters(v, l.counters_y, now);
	for (int r = 0; r < l.log_h; r++) {
		const char *line = ui_model_log_line(v, l.log_h - 1 - r);

		if (line) {
			char buf[UI_LOG_LEN + 2];

			snprintf(buf, sizeof(buf), " %s", line);
			put_cut(l.log_y + r, 0, COLS, A_NORMAL, buf);
		}
	}
	draw_keys(s, v, l.keys_y, now);
	if (s->help_open)
		draw_help();
	else if (s->summary_open)
		draw_summary(v);
	refresh();
}

/* ---- keys (UI thread only) ---- */

static void notice(struct ui_screen *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void notice(struct ui_screen *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->notice, sizeof(s->notice), fmt, ap);
	va_end(ap);
	s->notice_until = clock_realtime_ms() + FLASH_MS;
}

static void clear_bay(struct ui_screen *s, int idx)
{
	notice(s, "clearing bay %d", idx + 1);
	if (s->ctl.clear_bay)
		s->ctl.clear_bay(s->ctl.ctx, idx);
}

/* A scanner is a keyboard: the code's characters, then Enter. */
static int line_key(char *buf, size_t len, int ch)
{
	size_t n = strlen(buf);

	if (ch == '\r' || ch == '\n' || ch == KEY_ENTER)
		return 1;
	if ((ch == KEY_BACKSPACE || ch == 127 || ch == 8) && n)
		buf[n - 1] = '\0';
	else if (ch >= 0x20 && ch < 0x7f && n + 1 < len) {
		buf[n] = (char)ch;
		buf[n + 1] = '\0';
	}
	return 0;
}

static void lot_key(struct ui_screen *s, int ch)
{
	if (ch == 27) {
		s->lot_prompt = 0;
		notice(s, "lot unchanged");
		return;
	}
	if (!line_key(s->line_in, sizeof(s->line_in), ch) || !s->line_in[0])
		return;
	s->lot_msg[0] = '\0';
	if (s->ctl.change_lot(s->ctl.ctx, s->line_in, s->lot_msg, sizeof(s->lot_msg)) == 0) {
		s->lot_prompt = 0;
		notice(s, "lot changed: press p to resume");
	}
	s->line_in[0] = '\0';
}

static void on_key(struct ui_screen *s, int ch)
{
	const struct ui_model *v = s->view;
	int first, nheld;

	if (s->lot_prompt) {
		lot_key(s, ch);
		return;
	}
	if (s->prompt_clear) {
		int idx = bay_of_key(ch, v->ntiles);

		s->prompt_clear = 0;
		if (ch == 27)
			return;
		if (idx < 0 || !v->tiles[idx].held)
			notice(s, "no held bay has that key: nothing cleared");
		else
			clear_bay(s, idx);
		return;
	}
	switch (ch) {
	case '?':
		s->help_open = !s->help_open;
		break;
	case 27:                /* Esc */
		s->help_open = 0;
		s->summary_open = 0;
		break;
	case 's': case 'S':
		s->summary_open = !s->summary_open;
		break;
	case 'b': case 'B':
		s->bell = !s->bell;
		notice(s, "bell and flash %s", s->bell ? "on" : "off");
		break;
	case 'l': case 'L':
		if (!v->paused || s->quit_requested || v->stopping) {
			notice(s, "pause first (p), then l to change lot");
			break;
		}
		if (!s->ctl.change_lot) {
			notice(s, "this line cannot change lot");
			break;
		}
		s->lot_prompt = 1;
		s->line_in[0] = '\0';
		s->lot_msg[0] = '\0';
		break;
	case 'p': case 'P': {
		bool want;

		if (s->quit_requested || v->stopping || v->stopped) {
			notice(s, "the line is stopping: pause does not apply");
			break;
		}
		/* Show the new state at once; the line's event confirms it. */
		pthread_mutex_lock(&s->lock);
		want = !s->model.paused;
		s->model.paused = want;
		s->model.version++;
		pthread_mutex_unlock(&s->lock);
		if (s->ctl.pause)
			s->ctl.pause(s->ctl.ctx, want);
		break;
	}
	case 'c': case 'C':
		nheld = ui_model_held(v, &first);
		if (nheld == 0)
			notice(s, "no bay is held");
		else if (nheld == 1)
			clear_bay(s, first);
		else
			s->prompt_clear = 1;
		break;
	case 'q': case 'Q':
		if (!s->quit_requested) {
			s->quit_requested = 1;
			if (s->ctl.quit && !v->stopped)
				s->ctl.quit(s->ctl.ctx);
		}
		break;
	case 12:                /* Ctrl-L: repaint everything */
		clearok(curscr, TRUE);
		break;
	default:
		break;
	}
}

static void take_snapshot(struct ui_screen *s)
{
	pthread_mutex_lock(&s->lock);
	ui_model_snapshot(s->view, &s->model);
	pthread_mutex_unlock(&s->lock);
}

int ui_screen_run(struct ui_screen *s, struct errbuf *e)
{
	SCREEN *scr;
	char drain[64];
	int tty_gone = 0;

	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
		return errbuf_set(e, ST_EIO, "the screen needs a terminal (use --headless otherwise)");
	setlocale(LC_CTYPE, "");
	scr = newterm(NULL, stdout, stdin);
	if (!scr)
		return errbuf_set(e, ST_EIO, "cannot drive terminal '%s'",
				  getenv("TERM") ? getenv("TERM") : "(TERM unset)");
	set_term(scr);
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	curs_set(0);
	if (has_colors() && start_color() == OK) {
		use_default_colors();
		init_pair(PAIR_PASS, COLOR_BLACK, COLOR_GREEN);
		init_pair(PAIR_FAIL, COLOR_WHITE, COLOR_RED);
		init_pair(PAIR_WARN, COLOR_YELLOW, -1);
		init_pair(PAIR_REJECT, COLOR_WHITE, COLOR_MAGENTA);
		s->color = 1;
	}

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = s->wake[0], .events = POLLIN },
			{ .fd = STDIN_FILENO, .events = POLLIN },
		};
		int ch;

		take_snapshot(s);
		/* However the stop was asked for (q, a signal, a unit limit),
		 * the screen's job ends with the line's. */
		if (s->view->stopped)
			break;
		if (s->view->attention > s->attention_seen) {
			/* a REJECT or a held bay: a person has to come */
			if (s->bell && !tty_gone) {
				beep();
				s->flash_until = clock_realtime_ms() + FLASH_MS;
			}
			s->attention_seen = s->view->attention;
		}
		if (!tty_gone)
			draw(s);
		/* SIGWINCH may land on a pipeline thread and not interrupt this
		 * poll; the tick bounds how long a resize waits for its redraw. */
		if (poll(pfd, tty_gone ? 1 : 2, TICK_MS) < 0 && errno != EINTR)
			break;
		while (read(s->wake[0], drain, sizeof(drain)) > 0)
			;
		atomic_store(&s->wake_pending, 0);
		if (tty_gone)
			continue;
		if (pfd[1].revents & (POLLHUP | POLLERR | POLLNVAL)) {
			/* The terminal went away: ask the line to stop, then only
			 * wait for its events until it has stopped. */
			tty_gone = 1;
			if (!s->quit_requested) {
				s->quit_requested = 1;
				if (s->ctl.quit)
					s->ctl.quit(s->ctl.ctx);
			}
			continue;
		}
		while ((ch = getch()) != ERR) {
			if (ch == KEY_RESIZE)
				continue;       /* LINES/COLS are updated; draw() adapts */
			take_snapshot(s);
			on_key(s, ch);
		}
	}
	endwin();
	delscreen(scr);
	return ST_OK;
}
