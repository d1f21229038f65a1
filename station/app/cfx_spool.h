/*
 * cfx_spool: `station run --cfx-spool DIR` (docs/engineer.md "IPC-CFX
 * spool"): every unit's IPC-CFX messages (export/cfx.h) as files in DIR,
 * each durable before the unit's verdict reaches the screen.
 *
 * Contract
 * - app_cfx_sink() is an event sink (core/event.h) to subscribe BEFORE the
 *   UI's: the bus calls sinks in order, so when the screen or the headless
 *   writer sees a unit-result, its messages are already on disk.  For each
 *   unit-result with a unit row it writes UnitsPersonalized (PASS only), then
 *   WorkCompleted, each to a temporary file that is fsync'd, renamed to its
 *   name (cfx_file_name) and its directory fsync'd; then it appends the unit
 *   id to the spool's journal (".cfx-<hash of station and lot>.journal",
 *   fdatasync'd): "these messages are out".
 * - A kill between a unit's commit and its messages leaves a unit with a
 *   verdict and no journal line: app_cfx_catch_up() (before the line starts,
 *   after the database is open) writes the messages of every unit of this
 *   station and lot with a verdict that the journal does not list.  So after
 *   any crash, and the next run's start, every unit with a verdict has its
 *   messages.  A message can be written twice (a kill after its rename, before
 *   the journal line): the same unit gives the same file name and UniqueID,
 *   so a collector sees one message (at least once, never lost).
 * - Units that start-up recovery closes (interrupted) arrive as unit-results
 *   too; their lot is not on the event: WorkOrderIdentifier null.
 * - A write that fails does not stop the line (the unit is committed; the
 *   catch-up of the next start writes it): it goes to the warn callback and
 *   is counted.  Memory: the journal's unit ids of this lot (8 bytes each).
 */
#ifndef STATION_APP_CFX_SPOOL_H
#define STATION_APP_CFX_SPOOL_H

#include <stdint.h>

#include "core/errbuf.h"
#include "core/event.h"

struct db;
struct app_cfx;

/* Opens (creates, mode 0755) the spool directory and reads its journal. */
ST_MUST_CHECK int app_cfx_open(const char *dir, const char *station_id, const char *lot,
			       void (*warn)(void *ctx, const char *msg), void *warn_ctx,
			       struct app_cfx **out, struct errbuf *err);
/* Writes what the journal lacks; *units: how many units it wrote for. */
ST_MUST_CHECK int app_cfx_catch_up(struct app_cfx *c, struct db *db, int64_t *units,
				   struct errbuf *err);
void app_cfx_sink(const struct ev_event *ev, void *ctx);
/* Messages written and writes that failed so far. */
void app_cfx_counts(struct app_cfx *c, int64_t *written, int64_t *failed);
void app_cfx_close(struct app_cfx *c);

#endif
