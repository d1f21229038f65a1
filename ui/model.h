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
 *    reject but not in the yield.  Units per hour: PASS results over a sliding
 *    window (ui_model_uph).
 *  - A board that arrives while intake is paused, the line is stopping or the
 *    bay is held waits (tile.waiting, from the event's intake or the model's
 *    own line state) and is not in flight until its first stage begins.
 *  - Each bay counts its own PASS / FAIL / REJECT and keeps its cycle times
 *    (arrival or first stage, whichever is later, to the result).
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
#define UI_CYCLES     32    /* cycle times kept per bay for the median */
#define UI_RATE_RING  512   /* PASS times kept for the units-per-hour window */
#define UI_RATE_WINDOW_MS (15 * 60 * 1000)
#define UI_IDLE_MS    30000 /* nothing in flight for this long: "idle" */
#define UI_MAX_OPS    8     /* operators told apart in the shift summary */

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
	enum st_reason reason_code;     /* the verdict's stable code (ui/action.h) */
	enum ev_intake waiting;         /* a board present that the line has not
					 * taken, and why (OPEN: not waiting) */
	int64_t t_start_ms;             /* when the current unit began (0: none) */
	/* the bay's own numbers since the line started (kept across units) */
	unsigned long npass, nfail, nreject;
	int64_t cycles[UI_CYCLES];      /* ring of cycle times, ms */
	int ncycles, cycle_head;
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

	/* line state */
	int started, paused, stopping, stopped;
	int utc;                        /* log times in UTC (else local time) */
	unsigned long attention;        /* REJECTs and held bays so far: the screen
					 * rings the bell when this grows */

	/* the shift summary, since the line started */
	unsigned long by_reason[ST_R_COUNT]; /* FAIL + REJECT results per code */
	struct ui_op_count {
		char name[UI_FIELD_LEN];
		unsigned long pass, fail, reject;
	} ops[UI_MAX_OPS];
	int nops;                       /* past UI_MAX_OPS: counted in the last */

	/* units per hour: the times of recent PASS results, and activity */
	int64_t pass_t[UI_RATE_RING];
	int pass_head, npass_t;
	int64_t t_last_activity_ms;     /* last bay event (arrival, stage, result) */

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
/* PASS results per hour over the last UI_RATE_WINDOW_MS (or since the first
 * event, when sooner), idle time included: a line standing still sees its rate
 * fall.  The span is at least 60 s, so the first unit does not read as 3600/h. */
double ui_model_uph(const struct ui_model *m, int64_t now_ms);
/* How long nothing has been in flight (ms), 0 while a unit runs or for less
 * than UI_IDLE_MS. */
int64_t ui_model_idle_ms(const struct ui_model *m, int64_t now_ms);
/* Median of the bay's recent cycle times (ms), 0 before the first. */
int64_t ui_tile_median_cycle(const struct ui_tile *t);
/* The last cycle time (ms), 0 before the first. */
int64_t ui_tile_last_cycle(const struct ui_tile *t);

/* The i-th most recent log line (0 = newest), NULL past the end. */
const char *ui_model_log_line(const struct ui_model *m, int i);

/* Adds a free-text log line stamped with t_ms (HH:MM:SS, local time or UTC
 * as m->utc says). */
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

/* reason with the unit's id taken out, for a line that already shows the id:
 * "id <uid>" becomes "this id", a bare <uid> "<id>". */
void ui_reason_without_id(char *dst, size_t dstlen, const char *reason, const char *uid);

#endif
