/*
 * ui_headless: the event sink of `station run --headless`.
 *
 * Writes one compact JSON object per event, one per line, flushed at once so a
 * consumer reading a pipe sees each event as it happens.  Keys, always in this
 * order:
 *   seq        bus sequence number (integer)
 *   t_ms       UTC milliseconds since the epoch (integer)
 *   time       the same instant, ISO-8601 UTC with ms: "2026-11-22T02:01:31.123Z"
 *   kind       ev_kind_name(): "unit-result", "progress" ...
 *   bay_index  0-based tile index, -1 for line-wide events
 *   bay        USB port path label, or null for line-wide events
 *   unique_id  24 hex digits, or null while the board is not identified
 *   stage      ev_stage_name(): "flash" ..., "none"
 *   outcome    ev_outcome_name(): "pass", "fail", "reject", "ok", "none" ...
 *   reason     plain words, or null
 *   reason_code  st_reason_name() of a failed, rejected or interrupted unit
 *              ("not_on_lot", "board_timeout" ...), present only then: the
 *              stable code to decide on (reason is for people)
 *   unit_id    database row of the unit, present only when known
 *   intake     ev_intake_name() of a bay-arrived whose board waits ("paused",
 *              "stopping", "held"), present only then
 *   done, total, progress   only for "progress" events (progress = done/total)
 *   station_id, operator, profile, profile_version, lot, bays
 *              only for "line-started": the line, as fields (string or null,
 *              integers 0 when not given); "lot-changed" has lot alone
 * Strings are valid UTF-8 (invalid bytes become '?').  Events carry no secrets
 * (event.h), and this sink adds nothing but the formatting.
 */
#ifndef UI_HEADLESS_H
#define UI_HEADLESS_H

#include <stdio.h>

#include "core/event.h"

struct ui_headless {
	FILE *out;
	int write_failed;       /* set when a line could not be written (EPIPE, ENOSPC) */
	unsigned long lines;    /* lines written */
};

void ui_headless_init(struct ui_headless *h, FILE *out);

/* An ev_sink_fn: ctx is a struct ui_headless. */
void ui_headless_sink(const struct ev_event *ev, void *ctx);

/* Formats one event as a JSON line (with '\n') into a malloc'd string; NULL on ENOMEM. */
char *ui_headless_format(const struct ev_event *ev);

/* "2026-11-22T02:01:31.123Z" for t_ms; buf needs 32 bytes. */
void ui_iso8601_ms(char *buf, size_t len, int64_t t_ms);

#endif
