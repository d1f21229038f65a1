/* ui_scan: see scan.h. */
#include "ui/scan.h"
#include "ui/tile.h"

#include <curses.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ui_scan_parse(const char *code, char *value, size_t len)
{
	int kind = 0;

	if (!strncmp(code, "OP:", 3)) {
		kind = 'O';
		code += 3;
	} else if (!strncmp(code, "LOT:", 4)) {
		kind = 'L';
		code += 4;
	}
	snprintf(value, len, "%s", code);
	return kind;
}

static void draw(const struct ui_scan *scan, int step, const char *opname, const char *typed,
		 const char *msg, int refused)
{
	const char *ask = step == 'O' ? "SCAN YOUR BADGE" : "SCAN THE LOT BARCODE";
	int y = LINES / 2 - 3;

	erase();
	attron(A_REVERSE | A_BOLD);
	mvprintw(0, 0, " STATION %s | start of shift%*s", scan->station_id ? scan->station_id : "-",
		 COLS, "");
	attroff(A_REVERSE | A_BOLD);
	if (opname[0])
		mvprintw(2, 1, "operator: %.60s (accepted)", opname);
	attron(A_BOLD);
	mvprintw(y, (COLS - (int)strlen(ask)) / 2 > 0 ? (COLS - (int)strlen(ask)) / 2 : 0, "%s", ask);
	attroff(A_BOLD);
	mvprintw(y + 2, 2, "> %.*s_", COLS > 8 ? COLS - 8 : 1, typed);
	if (msg[0]) {
		attron(refused ? A_REVERSE | A_BOLD : A_NORMAL);
		mvprintw(y + 4, 2, "%.*s", COLS > 4 ? COLS - 4 : 1, msg);
		attroff(A_REVERSE | A_BOLD);
	}
	mvprintw(LINES - 1, 0, " %s then Enter (a scanner does both)   Esc: give up",
		 step == 'O' ? "badge: OP:<name>" : "lot label: LOT:<lot>");
	refresh();
}

/* One code checked; 1 accepted (value in out), 0 refused (why in msg). */
static int take(const struct ui_scan *scan, int step, const char *code, char out[UI_SCAN_LEN],
		char *msg, size_t msglen)
{
	char value[UI_SCAN_LEN * 2];
	int kind = ui_scan_parse(code, value, sizeof(value));

	if (kind && kind != step) {
		snprintf(msg, msglen, "that is %s: scan %s", kind == 'O' ? "a badge" : "a lot label",
			 step == 'O' ? "your badge" : "the lot's label");
		return 0;
	}
	if (!value[0] || strlen(value) >= UI_SCAN_LEN) {
		snprintf(msg, msglen, "not a %s code: scan again", step == 'O' ? "badge" : "lot");
		return 0;
	}
	msg[0] = '\0';
	if ((step == 'O' ? scan->badge : scan->lot)(scan->ctx, value, msg, msglen) != 0)
		return 0;
	memcpy(out, value, strlen(value) + 1);     /* shorter than UI_SCAN_LEN: checked above */
	return 1;
}

int ui_scan_run(const struct ui_scan *scan, char operator_name[UI_SCAN_LEN],
		char lot[UI_SCAN_LEN], struct errbuf *e)
{
	char typed[UI_SCAN_LEN * 2] = "", msg[256] = "";
	int refused = 0, rc = ST_OK;
	SCREEN *scr;

	if ((rc = ui_term_open("scanning needs a terminal", &scr, e)) != ST_OK)
		return rc;
	while (!operator_name[0] || !lot[0]) {
		int step = !operator_name[0] ? 'O' : 'L', ch;
		size_t n = strlen(typed);

		draw(scan, step, operator_name, typed, msg, refused);
		ch = getch();
		if (ch == 27 || ch == 3 || (ch == 'q' && !n)) {
			rc = errbuf_set(e, ST_ECANCELED, "scanning given up by the operator");
			break;
		}
		if (ch == '\r' || ch == '\n' || ch == KEY_ENTER) {
			if (!n)
				continue;
			refused = !take(scan, step, typed, step == 'O' ? operator_name : lot, msg,
					sizeof(msg));
			if (!refused)
				snprintf(msg, sizeof(msg), "%s accepted", step == 'O' ? "badge" : "lot");
			typed[0] = '\0';
		} else if ((ch == KEY_BACKSPACE || ch == 127 || ch == 8) && n) {
			typed[n - 1] = '\0';
		} else if (ch >= 0x20 && ch < 0x7f && n + 1 < sizeof(typed)) {
			typed[n] = (char)ch;
			typed[n + 1] = '\0';
		}
	}
	ui_term_close(scr);
	return rc;
}
