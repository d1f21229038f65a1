/* ui_screen: see screen.h. */
#include "ui/screen.h"
#include "core/clock.h"
#include "ui/action.h"
#include "ui/tile.h"

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

/* ---- drawing (UI thread only; tiles and primitives: ui/tile.h) ---- */

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

		ui_put(y + r, x, w, A_NORMAL, "%s", "");
		mvaddch(y + r, x, edge ? '+' : '|');
		mvaddch(y + r, x + w - 1, edge ? '+' : '|');
		if (edge)
			for (int c = 1; c < w - 1; c++)
				mvaddch(y + r, x + c, '-');
	}
	for (int i = 0; i < n && i + 1 < h - 2; i++)
		ui_put_cut(y + 1 + i, x + 2, w - 4, i == 0 ? A_BOLD : A_NORMAL, lines[i]);
	ui_put_centered(y + h - 2, x + 1, w - 2, A_REVERSE, foot);
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

	draw_box(lines, (int)(sizeof(lines) / sizeof(lines[0])), 66, "press ? to close");
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

		ui_fmt_ms(last, sizeof(last), ui_tile_last_cycle(t));
		ui_fmt_ms(med, sizeof(med), ui_tile_median_cycle(t));
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
	char clock[48], state[96], ledger[EV_REASON_LEN + 32] = "";
	int cw;

	clock_words(clock, sizeof(clock), now, v->utc);
	cw = (int)strlen(clock) + 2;
	ui_put(0, 0, COLS, A_REVERSE | A_BOLD, "%s", "");
	{
		char head[400];

		snprintf(head, sizeof(head), " STATION %s | operator %s | profile %s | lot %s",
			 v->station_id[0] ? v->station_id : "-",
			 v->operator_name[0] ? v->operator_name : "-",
			 v->profile[0] ? v->profile : "-", v->lot[0] ? v->lot : "-");
		ui_put_cut(0, 0, COLS - cw, A_REVERSE | A_BOLD, head);
	}
	if (COLS - cw > 20)
		ui_put(0, COLS - cw, cw, A_REVERSE | A_BOLD, " %s ", clock);
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
	ui_put(1, 0, COLS, A_NORMAL, " HSM %s%s%s%s | db %s%s",
	    v->hsm == UI_HSM_READY ? "ready" : v->hsm == UI_HSM_ERROR ? "ERROR" : "unknown",
	    v->hsm == UI_HSM_ERROR && v->hsm_reason[0] ? " (" : "",
	    v->hsm == UI_HSM_ERROR ? v->hsm_reason : "",
	    v->hsm == UI_HSM_ERROR && v->hsm_reason[0] ? ")" : "",
	    v->db_path[0] ? v->db_path : "-", ledger);
	if (v->hsm == UI_HSM_ERROR)
		ui_put(1, 5, 5, ui_warn_attr(s->color), "ERROR");
	ui_put(1, COLS - (int)strlen(state) - 2, (int)strlen(state) + 2,
	    (v->paused || v->stopping || v->stopped || s->quit_requested) ? ui_warn_attr(s->color) | A_REVERSE
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
	ui_put_cut(y, 0, COLS, A_BOLD, counters);
}

static void draw_keys(struct ui_screen *s, const struct ui_model *v, int y, int64_t now)
{
	int inflight = ui_model_in_flight(v);

	if (s->lot_prompt) {
		ui_put(y - 1, 0, COLS, ui_warn_attr(s->color), " %s",
		    s->lot_msg[0] ? s->lot_msg : "scan the new lot's barcode, then Enter (Esc cancels)");
		ui_put(y, 0, COLS, A_REVERSE | A_BOLD, " NEW LOT> %s_", s->line_in);
	} else if (s->prompt_clear) {
		ui_put(y, 0, COLS, A_REVERSE | A_BOLD,
		    " Clear which bay? Press its number (Esc cancels)");
	} else if (s->quit_requested || v->stopping) {
		ui_put(y, 0, COLS, ui_warn_attr(s->color) | A_REVERSE,
		    " STOPPING: waiting for %d unit%s in flight", inflight, inflight == 1 ? "" : "s");
	} else if (s->notice[0] && now < s->notice_until) {   /* the answer to a key, whole */
		ui_put(y, 0, COLS, A_REVERSE | A_BOLD, " ? help  q quit   %s", s->notice);
	} else if (now < s->flash_until) {
		/* the visual half of the bell: a REJECT or a held bay needs a person */
		ui_put(y, 0, COLS, ui_verdict_attr(s->color, UI_VERDICT_REJECT) | A_BLINK,
		    " !! ATTENTION: %s !!", ui_model_held(v, NULL) ? "a bay is held - "
		    UI_ACTION_HELD : "REJECT - " UI_ACTION_REJECT);
	} else {
		const char *act = v->paused ? "resume" : "pause";
		int wide = COLS >= 76;

		if (wide)
			ui_put(y, 0, COLS, A_REVERSE,
			    " ? help  p %-6s c clear  s summary  l lot  b bell  q quit", act);
		else
			ui_put(y, 0, COLS, A_REVERSE, " ? help  p %-6s c clear  s sum  q quit", act);
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
		ui_put(0, 0, COLS, A_BOLD, "terminal too small: need %dx%d", UI_MIN_COLS, UI_MIN_LINES);
		ui_put(1, 0, COLS, A_NORMAL, "PASS %lu FAIL %lu REJECT %lu", v->pass, v->fail, v->reject);
		refresh();
		return;
	}
	draw_header(s, v, now);
	for (int i = 0; i < v->ntiles; i++) {
		int gr = i / l.grid_cols, gc = i % l.grid_cols;

		ui_draw_tile(s->color, &v->tiles[i], i, l.tiles_y + gr * l.tile_h, gc * l.tile_w, l.tile_h,
			  l.tile_w);
	}
	draw_counters(v, l.counters_y, now);
	for (int r = 0; r < l.log_h; r++) {
		const char *line = ui_model_log_line(v, l.log_h - 1 - r);

		if (line) {
			char buf[UI_LOG_LEN + 2];

			snprintf(buf, sizeof(buf), " %s", line);
			ui_put_cut(l.log_y + r, 0, COLS, A_NORMAL, buf);
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
	int tty_gone = 0, rc;

	if ((rc = ui_term_open("the screen needs a terminal (use --headless otherwise)", &scr, e)))
		return rc;
	nodelay(stdscr, TRUE);
	curs_set(0);
	if (has_colors() && start_color() == OK) {
		use_default_colors();
		init_pair(UI_PAIR_PASS, COLOR_BLACK, COLOR_GREEN);
		init_pair(UI_PAIR_FAIL, COLOR_WHITE, COLOR_RED);
		init_pair(UI_PAIR_WARN, COLOR_YELLOW, -1);
		init_pair(UI_PAIR_REJECT, COLOR_WHITE, COLOR_MAGENTA);
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
	ui_term_close(scr);
	return ST_OK;
}
