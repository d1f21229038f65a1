/*
 * factory_lot: one lot as the factory ledger holds it, every station's units
 * together, read through the station's own export and report code
 * (`station export --ledger`, `station report --ledger`; docs/factory.md).
 *
 * The lot's rows are loaded into a scratch database made with the station's
 * own schema (db_open), so db/export.c and db/report.c, the one owner of
 * what a unit, a yield or a first pass is, read it unchanged.
 *
 * Contract
 * - factory_lot_open() verifies the whole ledger first (app/factory_verify:
 *   every station's chain and rows): one failing station refuses it, ST_ETAMPER
 *   naming the station and its first bad event or row.  Nothing is read
 *   from a ledger that does not verify.
 * - The scratch database lives in a private directory (mkdtemp under $TMPDIR
 *   or /tmp, mode 0700) that factory_lot_close() removes.
 * - Unit ids are per station: the scratch ids follow the factory-wide order
 *   (started_ms, station id, the station's unit id), and each certificate's
 *   unit_id follows its unit.  factory_lot_unit() maps a scratch id back.
 *   The lot's row is one (the first station's); the allowlists are merged
 *   (an id once); profiles are merged by name and version (the first
 *   station's row of a name and version wins, a different profile under the
 *   same name and version at another station is not loaded: docs/factory.md).
 * - ST_ENOTFOUND when no station pushed a unit, a lot row or an allowlist
 *   row of the lot.
 */
#ifndef STATION_APP_FACTORY_LOT_H
#define STATION_APP_FACTORY_LOT_H

#include <stdint.h>

#include "core/errbuf.h"
#include "ledger/ledger.h"

struct db;
struct factory_lot;

struct factory_lot_stats {
	int stations;              /* stations verified */
	int64_t events, rows;      /* events and rows verified, over all stations */
	int64_t units, certificates, allowlisted;   /* loaded for the lot */
};

ST_MUST_CHECK int factory_lot_open(struct ledger *l, const char *lot, struct factory_lot **out,
				   struct errbuf *err);
struct db *factory_lot_db(struct factory_lot *f);
const struct factory_lot_stats *factory_lot_stats(const struct factory_lot *f);
/* The station's own unit id of scratch unit id; -1 when unknown. */
int64_t factory_lot_unit_id(const struct factory_lot *f, int64_t id);
void factory_lot_close(struct factory_lot *f);

#endif
