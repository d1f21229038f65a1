/*
 * pl_ledger: the line's factory ledger (struct pl_ledger_ops of
 * line/pipeline.h) over ledger/, and the sync thread that pushes this
 * station's audit chain to it.
 *
 * Contract
 * - pl_ledger_open() connects twice (the line's claims and the sync thread
 *   each have their own connection: libpq's are not shared between threads)
 *   and checks the schema; a ledger that is unreachable, refuses the password
 *   or has another schema version refuses the start with one line.
 * - pl_ledger_ops() fills the interface the line calls; thread-safe (the
 *   claims' connection is behind a mutex; every call is bounded by the
 *   ledger's deadlines).  A claim that cannot reach the ledger fails with
 *   ledger_unreachable: the unit FAILs, closed.  A `done` that cannot reach it
 *   is queued and retried by the sync thread.
 * - pl_ledger_start() releases this station's stale holds (it has no unit in
 *   flight: recovery ran), settles its claims the ledger still holds open
 *   from the journal (the unit passed: committed with its serial; failed,
 *   interrupted or unknown to the journal: released), and starts the sync thread: it pushes the journal's
 *   events after the ledger's head in batches of PL_LEDGER_BATCH, at least
 *   every PL_LEDGER_PERIOD_MS, and at once when a unit ends; after a failure it
 *   backs off (100 ms doubling to 2 s, plus up to 50% jitter) and catches up
 *   when the server is back.  A journal and a ledger that disagree on a row
 *   stop the push (EV_ALERT): nothing is overwritten.
 * - The bus gets EV_LEDGER_STATE FAIL (reason_code ledger_unreachable) when
 *   either connection loses the server, OK when the sync thread reaches it
 *   again.
 * - pl_ledger_close() stops the thread (its wait wakes at once), tries one
 *   last push (bounded by the deadlines) and frees everything.
 * The line never includes this header: app/session.c wires it in.
 */
#ifndef STATION_APP_PL_LEDGER_H
#define STATION_APP_PL_LEDGER_H

#include "core/errbuf.h"
#include "ledger/ledger.h"
#include "line/pipeline.h"

#define PL_LEDGER_BATCH     1000
#define PL_LEDGER_PERIOD_MS 500

struct db;
struct ev_bus;
struct pl_ledger;

/* hold_ttl_s: how long the ledger keeps this station's hold of a board if the
 * station dies (the unit deadline is the natural bound). */
ST_MUST_CHECK int pl_ledger_open(const struct ledger_config *cfg, struct db *db,
				 struct ev_bus *bus, int hold_ttl_s, struct pl_ledger **out,
				 struct errbuf *err);
void pl_ledger_ops(struct pl_ledger *g, struct pl_ledger_ops *ops);
/* Ids on lot's allowlist in the ledger (a lot imported at another station). */
ST_MUST_CHECK int pl_ledger_lot_count(struct pl_ledger *g, const char *lot, int64_t *count,
				      struct errbuf *err);
/* The serial guard of app/pl_hsm.h (pl_hsm_guard_serials; ctx: the
 * struct pl_ledger): the batch is reserved in the ledger first. */
ST_MUST_CHECK int pl_ledger_reserve_serials(void *ctx, const char *const *serials, size_t n,
					    struct errbuf *err);
ST_MUST_CHECK int pl_ledger_start(struct pl_ledger *g, struct errbuf *err);
/* Pushes everything the journal holds now (the caller's thread; for the
 * CLI's `ledger push` and the tests).  *pushed gets the number of events. */
ST_MUST_CHECK int pl_ledger_sync_now(struct pl_ledger *g, int64_t *pushed, struct errbuf *err);
void pl_ledger_close(struct pl_ledger *g);

#endif
