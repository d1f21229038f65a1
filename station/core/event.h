/*
 * event: what the pipeline tells the world.
 *
 * The pipeline emits events; the ncurses screen, the headless JSON writer and the
 * audit log consume them through sinks on one bus.  The pipeline never calls a UI
 * and the UI never calls USB: this header is the whole contract between them.
 *
 * ev_emit() is thread-safe (bays run on their own threads).  The bus stamps each
 * event with a bus-wide sequence number and a UTC time in ms, then calls every sink
 * in subscription order while holding the bus lock, so all sinks see one total
 * order.  A sink must therefore be quick and must not emit.
 */
#ifndef STATION_EVENT_H
#define STATION_EVENT_H

#include <stdint.h>

#include "core/errbuf.h"

/* Stages of one unit, in pipeline order (ARCHITECTURE.md "Data flow"). */
enum ev_stage {
	EV_STAGE_NONE = 0,
	EV_STAGE_DETECT,
	EV_STAGE_IDENTIFY,
	EV_STAGE_ALLOWLIST,   /* allowlist + duplicate check */
	EV_STAGE_FLASH,
	EV_STAGE_VERIFY_IMAGE,
	EV_STAGE_KEYGEN,
	EV_STAGE_CSR,
	EV_STAGE_CSR_POLICY,
	EV_STAGE_ATTEST,
	EV_STAGE_RESERVE,
	EV_STAGE_SIGN,
	EV_STAGE_INJECT,
	EV_STAGE_PROVE,       /* read back + proof of possession */
	EV_STAGE_LOCK,
	EV_STAGE_COMMIT,
	EV_STAGE_RECOVERY,    /* start-up recovery of interrupted units */
	EV_STAGE_COUNT
};

enum ev_kind {
	EV_LINE_STARTED = 0,  /* line is up: ev_event.line says which profile, lot ... */
	EV_LINE_STOPPING,     /* quit requested: waiting for units in flight */
	EV_LINE_STOPPED,
	EV_LINE_PAUSED,       /* intake paused / resumed by the operator */
	EV_LINE_RESUMED,
	EV_HSM_STATE,         /* outcome OK = ready, FAIL = error (reason; reason_code
			       * hsm_unreachable while the station reconnects, hsm_pin
			       * when a reopen's login was refused) */
	EV_BAY_ARRIVED,       /* a board appeared in a bay */
	EV_BAY_LEFT,          /* the board was unplugged */
	EV_STAGE_BEGIN,
	EV_PROGRESS,          /* done/total units of work (flash bytes) */
	EV_STAGE_END,         /* outcome OK or FAIL/REJECT with reason */
	EV_UNIT_RESULT,       /* final verdict of one unit: PASS, FAIL, REJECT */
	EV_BAY_HELD,          /* too many failures in a row: bay held */
	EV_BAY_CLEARED,       /* operator cleared a held bay */
	EV_ALERT,             /* security-relevant: clone, not on allowlist ... */
	EV_LOG,               /* free text for the scrolling log */
	EV_LOT_CHANGED,       /* the line now runs lot ev_event.line.lot (paused,
			       * nothing in flight; audited by the session) */
	EV_KIND_COUNT
};

enum ev_outcome {
	EV_OUT_NONE = 0,
	EV_OUT_OK,            /* a stage succeeded */
	EV_OUT_PASS,          /* the unit is provisioned */
	EV_OUT_FAIL,          /* the unit failed; it may be retried */
	EV_OUT_REJECT,        /* the unit must not be provisioned (policy) */
	EV_OUT_INTERRUPTED,   /* found in flight at start-up */
	EV_OUT_COUNT
};

/* Whether the line takes a board that just arrived (EV_BAY_ARRIVED only): a
 * board that waits shows as waiting, not as a unit in flight. */
enum ev_intake {
	EV_INTAKE_OPEN = 0,   /* the unit starts at once */
	EV_INTAKE_PAUSED,     /* intake paused by the operator: it starts on resume */
	EV_INTAKE_STOPPING,   /* the line is stopping (quit, unit limit): never taken */
	EV_INTAKE_HELD,       /* the bay is held: it starts once the bay is cleared */
	EV_INTAKE_COUNT
};

#define EV_BAY_LEN    32   /* "1-2.3": bus + port chain */
#define EV_UID_LEN    65
#define EV_REASON_LEN 200
#define EV_FIELD_LEN  65
#define EV_PATH_LEN   256

/* What EV_LINE_STARTED says about the line, as fields ("" / 0: not given).
 * Its reason is a sentence for people; nothing parses it. */
struct ev_line_info {
	char station_id[EV_FIELD_LEN];
	char operator_name[EV_FIELD_LEN];
	char profile[EV_FIELD_LEN];     /* the profile's name */
	int  profile_version;
	char lot[EV_FIELD_LEN];
	char db_path[EV_PATH_LEN];
	int  nbays;
};

struct ev_event {
	uint64_t seq;                   /* set by ev_emit */
	int64_t  t_ms;                  /* UTC ms since epoch, set by ev_emit */
	enum ev_kind kind;
	int      bay_index;             /* 0-based tile index, -1 for line events */
	char     bay[EV_BAY_LEN];       /* USB port path label, "" for line events */
	char     unique_id[EV_UID_LEN]; /* board hardware id, "" if not yet known */
	enum ev_stage stage;
	enum ev_outcome outcome;
	char     reason[EV_REASON_LEN]; /* plain words, no secrets */
	enum st_reason reason_code;     /* outcome FAIL/REJECT/INTERRUPTED of a unit
					 * (stage-end, alert, unit-result): why, as the
					 * stable code stored with the unit; hsm-state
					 * FAIL: why the token is down; else ST_R_NONE */
	uint64_t done, total;           /* EV_PROGRESS only */
	int64_t  unit_id;               /* database row of the unit, 0 if none */
	enum ev_intake intake;          /* EV_BAY_ARRIVED only, else EV_INTAKE_OPEN */
	struct ev_line_info line;       /* EV_LINE_STARTED; EV_LOT_CHANGED: lot only */
};

typedef void (*ev_sink_fn)(const struct ev_event *ev, void *ctx);

struct ev_bus;

struct ev_bus *ev_bus_new(void);
void ev_bus_free(struct ev_bus *bus);

/* Adds a sink; returns 0, or -1 when the bus is full (EV_MAX_SINKS). */
#define EV_MAX_SINKS 8
int ev_subscribe(struct ev_bus *bus, ev_sink_fn fn, void *ctx);

/* Stamps seq and t_ms into *ev and delivers it to every sink. */
void ev_emit(struct ev_bus *bus, struct ev_event *ev);

/* Convenience: fills an event and emits it.  reason is printf-style, may be NULL. */
void ev_emitf(struct ev_bus *bus, enum ev_kind kind, int bay_index, const char *bay,
	      const char *unique_id, enum ev_stage stage, enum ev_outcome outcome,
	      const char *reason_fmt, ...) __attribute__((format(printf, 8, 9)));

/* Stable lower-case names used in JSON, logs and the screen ("flash", "pass"). */
const char *ev_stage_name(enum ev_stage s);
const char *ev_kind_name(enum ev_kind k);
const char *ev_outcome_name(enum ev_outcome o);
const char *ev_intake_name(enum ev_intake i);      /* "open", "paused" ... */

#endif
