/* ui_screen: see screen.h. */
#include "ui/screen.h"
#include "core/clock.h"

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

#define TILE_MAX_H   9      /* taller tiles only waste rows the log can use */
#define TILE_WIDE_W  34     /* room for a 24-digit unique id and a margin */
#define TICK_MS      250    /* redraw period: clock-driven figures, missed SIGWINCH */
#define FLASH_MS     3000   /* how long a one-line notice stays on the key line */

enum { PAIR_PASS = 1, PAIR_FAIL, PAIR_WARN, PAIR_BUSY };

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
	char notice[128];
	int64_t notice_until;
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
	l->tile_h = best_th > TILE_MAX_H ? TILE_MAX_H : best_th;
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

static attr_t verdict_attr(const struct ui_screen *s, enum ui_verdict v)
{
	if (!s->color)
		return A_REVERSE | A_BOLD;
	return (attr_t)COLOR_PAIR(v == UI_VERDICT_PASS ? PAIR_PASS : PAIR_FAIL) | A_BOLD;
}

static attr_t warn_attr(const struct ui_screen *s)
{
	return s->color ? (attr_t)COLOR_PAIR(PAIR_WARN) | A_BOLD : A_BOLD;
}

/* Wraps text over up to rows lines of width w starting at (y, x). */
static void put_wrapped(int y, int x, int w, int rows, attr_t attr, const char *text)
{
	const char *p = text;

	for (int r = 0; r < rows && *p; r++) {
		int n = (int)strlen(p), cut = n;

		if (n > w) {
			cut = w;
			/* break at the last space if the line would cut a word */
			for (int i = w; i > w / 2; i--)
				if (p[i] == ' ') {
					cut = i;
					break;
				}
			if (r == rows - 1 && n > w) {
				put(y + r, x, w, attr, "%.*s..", w - 2, p);
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
	if (h < 4 && uid)       /* no row to spare: the id goes in the title */
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
	 * title bar says HELD in any case); the verdict's reason comes first. */
	held_row = t->held && !t->busy && end - row >= 2 + (t->verdict != UI_VERDICT_NONE);
	if (held_row)
		end--;
	if (t->busy) {
		put(row++, x, w, A_NORMAL, " working: %s", ev_stage_name(t->stage));
		if (row < end && t->progress >= 0)
			draw_progress(row++, x + 1, w - 1, t->progress);
	} else if (t->verdict != UI_VERDICT_NONE) {
		int rows_left = end - row, block = rows_left >= 5 ? 3 : 1;
		attr_t a = verdict_attr(s, t->verdict);
		char reason[EV_REASON_LEN + 64], plain[EV_REASON_LEN];

		for (int i = 0; i < block && row + i < end; i++)
			put_centered(row + i, x, w, a, i == block / 2 ? ui_verdict_name(t->verdict) : "");
		row += block;
		if (t->verdict != UI_VERDICT_PASS) {
			ui_plain_reason(plain, sizeof(plain), t->reason, t->bay);
			snprintf(reason, sizeof(reason), "%s%s%s%s",
				 t->verdict_stage != EV_STAGE_NONE ? "at " : "",
				 t->verdict_stage != EV_STAGE_NONE ? ev_stage_name(t->verdict_stage) : "",
				 t->verdict_stage != EV_STAGE_NONE ? ": " : "",
				 plain[0] ? plain : "no reason given");
			put_wrapped(row, x + 1, w - 1, end - row, A_BOLD, reason);
		} else if (row < end) {
			put(row, x, w, A_NORMAL, " %s", t->present ? "unplug it, plug the next" : "");
		}
	} else if (row < end) {
		put(row, x, w, A_NORMAL, " %s", t->present ? "board present" : "waiting for a board");
	}
	if (held_row)
		put(end, x, w, warn_attr(s), " HELD: %s - press c",
		    t->held_reason[0] ? t->held_reason : "repeated failures");
}

static void draw_help(void)
{
	static const char *const lines[] = {
		"KEYS",
		"?   open / close this help (Esc closes too)",
		"p   pause / resume intake; boards in work finish",
		"c   clear a held bay (then press its number)",
		"q   quit: stops intake, waits for units in flight",
		"",
		"PASS    provisioned: unplug it, plug the next",
		"FAIL    failed at the stage shown: set it aside",
		"REJECT  must not be provisioned (not in this lot,",
		"        already done, or a clone): give it to QA",
		"HELD    3 failures in a row: check the cable and",
		"        the fixture, then press c",
		"FPY     first-pass yield: share of boards that",
		"        passed on their first attempt",
	};
	int n = (int)(sizeof(lines) / sizeof(lines[0]));
	int w = 54, h = n + 4, y, x;

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
		put(y + 1 + i, x + 2, w - 4, i == 0 ? A_BOLD : A_NORMAL, "%s", lines[i]);
	put_centered(y + h - 2, x + 1, w - 2, A_REVERSE, "press ? to close");
}

static void draw(struct ui_screen *s)
{
	const struct ui_model *v = s->view;
	struct ui_layout l;
	int64_t now = clock_realtime_ms();
	int inflight = ui_model_in_flight(v);
	double fpy = ui_model_fpy(v);
	char fpy_s[32], state[96], alerts[32] = "", counters[200], ledger[EV_REASON_LEN + 32] = "";

	erase();
	ui_screen_layout(&l, v->ntiles, LINES, COLS);
	if (l.too_small) {
		put(0, 0, COLS, A_BOLD, "terminal too small: need %dx%d", UI_MIN_COLS, UI_MIN_LINES);
		put(1, 0, COLS, A_NORMAL, "PASS %lu FAIL %lu REJECT %lu", v->pass, v->fail, v->reject);
		refresh();
		return;
	}

	/* header */
	put(0, 0, COLS, A_REVERSE | A_BOLD, " STATION %s | operator %s | profile %s | lot %s",
	    v->station_id[0] ? v->station_id : "-", v->operator_name[0] ? v->operator_name : "-",
	    v->profile[0] ? v->profile : "-", v->lot[0] ? v->lot : "-");
	if (v->stopped)
		snprintf(state, sizeof(state), "LINE STOPPED");
	else if (v->stopping || s->quit_requested)
		snprintf(state, sizeof(state), "STOPPING");
	else if (v->paused)
		snprintf(state, sizeof(state), "PAUSED - intake stopped");
	else
		snprintf(state, sizeof(state), v->started ? "RUNNING" : "STARTING");
	/* the ledger's state only when a ledger is configured (it said so once) */
	if (v->ledger != UI_HSM_UNKNOWN)
		snprintf(ledger, sizeof(ledger), " | ledger %s%s%s%s",
			 v->ledger == UI_HSM_READY ? "ready" : "ERROR",
			 v->ledger == UI_HSM_ERROR && v->ledger_reason[0] ? " (" : "",
			 v->ledger == UI_HSM_ERROR ? v->ledger_reason : "",
			 v->ledger == UI_HSM_ERROR && v->ledger_reason[0] ? ")" : "");
	put(1, 0, COLS, A_NORMAL, " HSM %s%s%s%s | db %s%s",
	    v->hsm == UI_HSM_READY ? "ready" : v->hsm == UI_HSM_ERROR ? "ERROR" : "unknown",
	    v->hsm == UI_HSM_ERROR && v->hsm_reason[0] ? " (" : "",
	    v->hsm == UI_HSM_ERROR ? v->hsm_reason : "",
	    v->hsm == UI_HSM_ERROR && v->hsm_reason[0] ? ")" : "",
	    v->db_path[0] ? v->db_path : "-", ledger);
	if (v->hsm == UI_HSM_ERROR)
		put(1, 5, 5, warn_attr(s), "ERROR");
	put(1, COLS - (int)strlen(state) - 2, (int)strlen(state) + 2,
	    (v->paused || v->stopping || v->stopped || s->quit_requested) ? warn_attr(s) | A_REVERSE
									    : A_BOLD,
	    " %s ", state);

	for (int i = 0; i < v->ntiles; i++) {
		int gr = i / l.grid_cols, gc = i % l.grid_cols;

		draw_tile(s, &v->tiles[i], i, l.tiles_y + gr * l.tile_h, gc * l.tile_w, l.tile_h,
			  l.tile_w);
	}

	if (fpy < 0)
		snprintf(fpy_s, sizeof(fpy_s), "-");
	else
		snprintf(fpy_s, sizeof(fpy_s), "%.1f%%", fpy * 100);
	if (v->alerts)
		snprintf(alerts, sizeof(alerts), "  ALERTS %lu", v->alerts);
	/* The long label when it fits, "FPY" (explained in the help) when not. */
	for (int shorter = 0; shorter < 2; shorter++) {
		snprintf(counters, sizeof(counters),
			 " PASS %lu  FAIL %lu  REJECT %lu%s  %s %s  %.0f units/h  in flight %d",
			 v->pass, v->fail, v->reject, alerts, shorter ? "FPY" : "first-pass yield",
			 fpy_s, ui_model_uph(v, now), inflight);
		if ((int)strlen(counters) <= COLS)
			break;
	}
	put(l.counters_y, 0, COLS, A_BOLD, "%s", counters);

	for (int r = 0; r < l.log_h; r++) {
		const char *line = ui_model_log_line(v, l.log_h - 1 - r);

		if (line)
			put(l.log_y + r, 0, COLS, A_NORMAL, " %s", line);
	}

	if (s->prompt_clear) {
		put(l.keys_y, 0, COLS, A_REVERSE | A_BOLD,
		    " Clear which bay? Press its number (Esc cancels)");
	} else if (s->quit_requested || v->stopping) {
		put(l.keys_y, 0, COLS, warn_attr(s) | A_REVERSE,
		    " STOPPING: waiting for %d unit%s in flight", inflight, inflight == 1 ? "" : "s");
	} else {
		int n = (int)strlen(" ? help   p resume  c clear held bay   q quit   ");

		put(l.keys_y, 0, COLS, A_REVERSE, " ? help   p %-7s c clear held bay   q quit",
		    v->paused ? "resume" : "pause");
		if (s->notice[0] && now < s->notice_until)
			put(l.keys_y, n, COLS - n, A_REVERSE | A_BOLD, "%s", s->notice);
	}
	if (s->help_open)
		draw_help();
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

static void on_key(struct ui_screen *s, int ch)
{
	const struct ui_model *v = s->view;
	int first, nheld;

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
