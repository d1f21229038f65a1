/*
 * session: one run of the line, from pre-flight to the stop record, with
 * nothing of the command line in it (no signals, no stdin, no screen), so that
 * `station run`, the integration tests and the bench drive the same code.
 *
 *   app_session_open   pre-flight, refusals in the order an engineer fixes
 *                      them: firmware image hashes to the profile's SHA-256,
 *                      the lot has an allowlist, the manufacturer CA and the
 *                      HSM CA certificate load, the HSM token opens
 *                      (pl_hsm_open runs the token's pre-flight)
 *   app_session_start  EV_HSM_STATE "ready", start-up recovery (pl_recover)
 *                      before any board is accepted, the boards (pl_usb_open
 *                      unless opts.boards), struct pl_config wired, the line
 *                      started, the "line-start" audit record
 *   app_session_wait   until --max-units results or a stop request
 *   app_session_stop   intake stops, the units in flight finish
 *   app_session_end    the "line-stop" audit record with the counts, then a
 *                      signed audit checkpoint
 *   app_session_close  everything freed (stops the line first if needed)
 *
 * Contract
 * - Error messages are whole sentences a CLI prints after "run: " (e.g.
 *   "HSM pre-flight failed: ...", "recovery: ...", "usb: ..."); nothing is
 *   printed here.  Failures that do not stop the run (an audit record or the
 *   checkpoint that cannot be written) go to opts.warn.
 * - The session opens no database and subscribes no sink: the caller owns
 *   opts.db (role already checked), opts.bus (sinks subscribed before
 *   app_session_start: recovery and the line emit from there on) and every
 *   string in opts; all must outlive the session.  open emits nothing, so a
 *   UI may be set up between open and start.
 * - app_session_wait, app_session_stop and app_session_request_stop are
 *   thread-safe after start; app_session_stop is idempotent (a later call
 *   returns once the first is done).  app_session_end is called once, after
 *   the line stopped, only when the run is to be recorded as ended (`station
 *   run` does not record a run whose screen failed).
 * - app_session_line() is the running line for operator controls
 *   (pl_line_pause, pl_line_clear_bay, pl_line_bay_of_port, pl_line_counts);
 *   NULL before start.
 */
#ifndef STATION_APP_SESSION_H
#define STATION_APP_SESSION_H

#include "core/errbuf.h"
#include "core/event.h"
#include "config/profile.h"
#include "line/pipeline.h"

struct db;

struct app_session_opts {
	struct db *db;
	const struct profile *profile;
	const char *lot;
	const char *operator_name;     /* on the events and the line audit records */
	const char *actor;             /* who revokes in the audit log (--user) */
	const char *station_id;
	int nbays;                     /* 1..PL_MAX_BAYS */
	int max_units;                 /* 0 = until stopped */
	int scan_interval_ms;          /* 0 = the line's default */
	const char (*bay_ports)[EV_BAY_LEN]; /* NULL, or nbays ports (pl_config.bay_ports) */
	int grace_ms;                  /* 0 = the line's default (30 s) */
	struct ev_bus *bus;
	/* The checkpoint log (app/checkpoint_log.h); NULL: none. */
	const char *checkpoint_log;
	/* Where boards come from; NULL = libusb, by the profile's VID:PID. */
	const struct pl_transport *boards;
	/* A problem that does not stop the run, as a sentence; may be NULL. */
	void (*warn)(void *ctx, const char *msg);
	void *warn_ctx;
};

struct app_session;

ST_MUST_CHECK int  app_session_open(const struct app_session_opts *o, struct app_session **out,
				    struct errbuf *err);
ST_MUST_CHECK int  app_session_start(struct app_session *s, struct errbuf *err);
/* While paused with no unit in flight: the line runs lot from now on, after
 * checking it has an allowlist; audited as "lot-change" {from, to} by the
 * operator.  Not thread-safe against itself (the screen's one thread calls it). */
ST_MUST_CHECK int app_session_change_lot(struct app_session *s, const char *lot,
					 struct errbuf *err);
struct pl_line *app_session_line(struct app_session *s);
void app_session_request_stop(struct app_session *s);
void app_session_wait(struct app_session *s);
void app_session_stop(struct app_session *s);
void app_session_end(struct app_session *s);
void app_session_close(struct app_session *s);

/* What start-up recovery found (valid after start). */
void app_session_recovered(struct app_session *s, int *units, int *revoked);

#endif
