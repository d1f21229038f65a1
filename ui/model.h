/*
 * ui_model: what the operator's screen shows, computed from events only.
 *
 * A pure data structure: no ncurses, no threads, no clock of its own (callers
 * pass "now" where time matters), so every rule below is unit-tested.  The
 * screen feeds it from the event bus under its own mutex and renders a copy.
 *
 * Rules:
 *  - One tile per bay, indexed by the event's bay_index (0-based, < UI_MAX_BAYS).
 *    A tile keeps its verdict (PASS / FAIL / REJECT + reason) until the next
 *    board arrives in that bay (EV_BAY_ARRIVED); unplugging does not clear it.
 *  - progress is done/total of the latest EV_PROGRESS of the current stage,
 *    -1 when the stage reports no progress.
 *  - Counters count EV_UNIT_RESULT events.  First-pass yield = distinct unique
 *    ids whose first result was PASS / distinct unique ids with a result; a
 *    result without a unique id (board never identified) counts in fail or
 *    reject but not in the yield.  Units per hour = PASS results per hour since
 *    the first event the model saw.
 *  - EV_LINE_STARTED's fields (ev_event.line) fill the header fields still
 *    empty, so ui_model_set_header() (the caller's own values) wins; the
 *    profile shows as "name vN" when the event gives a version.  Its reason is
 *    only logged: no text of an event is parsed.
 *  - A result with outcome INTERRUPTED (start-up recovery of an earlier run) is
 *    logged but not counted.
 *  - Strings are stored as printable ASCII: other bytes become '?', so nothing
 *    from an event can move the terminal's cursor or break the layout.
 */
#ifndef UI_MODEL_H
#define UI_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/event.h"

#define UI_MAX_BAYS   16
#define UI_LOG_LINES  256   /* ring of the most recent log lines */
#define UI_LOG_LEN    240
#define UI_FIELD_LEN  64

enum ui_verdict {
	UI_VERDICT_NONE = 0,
	UI_VERDICT_PASS,
	UI_VERDICT_FAIL,
	UI_VERDICT_REJECT,
};

struct ui_tile {
	char bay[EV_BAY_LEN];           /* port path label, "" until seen */
	char unique_id[EV_UID_LEN];     /* "" until identified */
	int present;                    /* a board is plugged in */
	int busy;                       /* a unit is in flight in this bay */
	enum ev_stage stage;            /* current (or last) stage */
	double progress;                /* 0..1 while a stage reports it, else -1 */
	enum ui_verdict verdict;        /* last unit's verdict, kept until next arrival */
	enum ev_stage verdict_stage;    /* stage the verdict was decided at */
	char reason[EV_REASON_LEN];     /* plain words for FAIL / REJECT */
	int held;                       /* too many failures in a row */
	char held_reason[EV_REASON_LEN];
	int alert;                      /* a security alert about the current unit */
};

enum ui_hsm { UI_HSM_UNKNOWN = 0, UI_HSM_READY, UI_HSM_ERROR };

struct ui_uid_set;                      /* distinct unique ids seen (for the yield) */

struct ui_model {
	struct ui_tile tiles[UI_MAX_BAYS];
	int ntiles;                     /* tiles shown: max(configured, highest index + 1) */

	/* header */
	char station_id[UI_FIELD_LEN];
	char operator_name[UI_FIELD_LEN];
	char profile[UI_FIELD_LEN];
	char lot[UI_FIELD_LEN];
	char db_path[256];
	enum ui_hsm hsm;
	char hsm_reason[EV_REASON_LEN];
	enum ui_hsm ledger;             /* UNKNOWN: no ledger configured */
	char ledger_reason[EV_REASON_LEN];

	/* line state */
	int started, paused, stopping, stopped;

	/* counters */
	unsigned long pass, fail, reject, alerts;
	unsigned long fp_attempted, fp_passed;  /* first-pass yield numerator/denominator */
	int64_t t_first_ms;             /* t_ms of the first event, 0 before */
	struct ui_uid_set *uids;

	/* log ring: lines[(head + i) % UI_LOG_LINES] for i < nlog, oldest first */
	char log[UI_LOG_LINES][UI_LOG_LEN];
	int log_head, nlog;
	unsigned long log_total;        /* lines ever logged (to notice new ones) */

	unsigned long version;          /* bumped by every change */
};

/* nbays: tiles shown before any event (0..UI_MAX_BAYS).  Returns 0, -1 on ENOMEM. */
int ui_model_init(struct ui_model *m, int nbays);
void ui_model_free(struct ui_model *m);

void ui_model_set_header(struct ui_model *m, const char *station_id, const char *operator_name,
			 const char *profile, const char *lot, const char *db_path);

/* Applies one event.  Never fails: unknown kinds and out-of-range bays are logged. */
void ui_model_apply(struct ui_model *m, const struct ev_event *ev);

/* Units in flight: tiles with a unit being worked on. */
int ui_model_in_flight(const struct ui_model *m);
/* Number of held bays; *first gets the index of the first one (or -1). */
int ui_model_held(const struct ui_model *m, int *first);

/* First-pass yield in [0,1], or -1 when no unit has a result yet. */
double ui_model_fpy(const struct ui_model *m);
/* PASS results per hour between the first event and now_ms; 0 before a minute
 * has elapsed would mislead, so the rate is over max(elapsed, 60 s). */
double ui_model_uph(const struct ui_model *m, int64_t now_ms);

/* The i-th most recent log line (0 = newest), NULL past the end. */
const char *ui_model_log_line(const struct ui_model *m, int i);

/* Adds a free-text log line stamped with t_ms (UTC HH:MM:SS). */
void ui_model_log(struct ui_model *m, int64_t t_ms, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copy for rendering outside the lock.  dst needs no initialisation and no
 * ui_model_free(): the id set is not copied (dst->uids is NULL), so the copy
 * answers every query but must not be fed events. */
void ui_model_snapshot(struct ui_model *dst, const struct ui_model *src);

/* Copies at most dstlen-1 bytes of src (reading at most srclen bytes) as
 * printable ASCII. */
void ui_ascii_copy(char *dst, size_t dstlen, const char *src, size_t srclen);

const char *ui_verdict_name(enum ui_verdict v);  /* "PASS", "FAIL", "REJECT", "" */

/* The reason as an operator reads it on a tile: without the leading error-code
 * word ("EPOLICY: ") and the bay prefix ("bay 1-2: ") that the tile already
 * shows.  The log keeps the reason whole. */
void ui_plain_reason(char *dst, size_t dstlen, const char *reason, const char *bay);

#endif
