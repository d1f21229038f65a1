/*
 * ui_action: what the operator does with a board, and why, in shop-floor words.
 *
 * One table maps a unit's stable reason code (core/errbuf.h) to a short plain
 * reason ("not on this lot's list"), and each verdict to an action ("put it in
 * the rework tray").  The screen shows these on the tile; the engineer's full
 * reason stays in the log, the records and st_reason_text().  docs/operator.md
 * "What to do with a board" holds the same table (tests/unit/ui/test_ui_action.c
 * checks that every row of the code appears there).  Decisions use the code,
 * never the message text.
 */
#ifndef UI_ACTION_H
#define UI_ACTION_H

#include "core/errbuf.h"
#include "ui/model.h"

#define UI_ACTION_PASS   "unplug, plug the next"
#define UI_ACTION_FAIL   "put it in the rework tray"
#define UI_ACTION_REJECT "do not retry: put it in the QA tray"
#define UI_ACTION_HELD   "call an engineer"

struct ui_action_row {
	enum st_reason code;
	const char *plain;      /* at most UI_PLAIN_MAX characters */
	const char *action;     /* NULL: the verdict's action */
};
#define UI_PLAIN_MAX 32

/* The table, in reason-code order; *n gets its length. */
const struct ui_action_row *ui_action_table(int *n);

/* The plain reason of a code; NULL for a code the table lacks (the caller then
 * shows the event's own words). */
const char *ui_action_plain(enum st_reason code);

/* The action for a verdict with a code: a FAIL's row's own action if it has
 * one, else the verdict's ("" for UI_VERDICT_NONE). */
const char *ui_action_for(enum ui_verdict v, enum st_reason code);

#endif
