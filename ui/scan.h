/*
 * ui_scan: the operator scans their badge and the lot's barcode before the
 * line starts (station run --scan, or without --operator / --lot on a terminal).
 *
 * A handheld scanner is a keyboard: it types the code, then Enter.  Barcode
 * contents (docs/operator.md "Scanning"): a badge holds "OP:" and the
 * operator's name as the station's roles know it ("OP:ann"), a lot label
 * "LOT:" and the lot's name ("LOT:LOT-0042"); the prefixes are optional when
 * typed by hand, and a code with the other prefix is refused ("that is a lot
 * label: scan your badge").
 *
 * The checks are the caller's (the command knows the database; ui never does):
 * each callback gets the code without its prefix and returns 0 to accept it, or
 * -1 with a sentence in msg that the screen shows; the operator can then scan
 * again.  Esc (or Ctrl-C / q on an empty line) gives up.  Runs ncurses on
 * stdin/stdout and leaves the terminal as it found it.
 */
#ifndef UI_SCAN_H
#define UI_SCAN_H

#include <stddef.h>

#include "core/errbuf.h"

#define UI_SCAN_LEN 65

struct ui_scan {
	int (*badge)(void *ctx, const char *name, char *msg, size_t msglen);
	int (*lot)(void *ctx, const char *lot, char *msg, size_t msglen);
	void *ctx;
	const char *station_id;         /* shown in the header; may be NULL */
};

/* Asks for what is still empty in operator_name / lot (each UI_SCAN_LEN
 * bytes; a non-empty one is kept as given) until both are accepted.  ST_OK;
 * ST_ECANCELED when the operator gave up; ST_EIO when there is no terminal. */
int ui_scan_run(const struct ui_scan *scan, char operator_name[UI_SCAN_LEN],
		char lot[UI_SCAN_LEN], struct errbuf *e);

/* "OP:ann" -> kind 'O', "ann"; "LOT:X" -> 'L', "X"; anything else -> 0, as is.
 * (Pure; unit-tested.) */
int ui_scan_parse(const char *code, char *value, size_t len);

#endif
