/*
 * factory_verify: every station's record in the factory ledger, checked from
 * the ledger alone (`station ledger verify`, and before a lot is read from
 * the ledger: app/factory_lot.h).
 *
 * Contract
 * - For each station the ledger knows, in station order: its chain (seq from
 *   1 without a gap, each link to the previous hash, each hash recomputed by
 *   db/'s rule, the head the ledger records), then its rows (ledger schema 4,
 *   docs/factory.md "Rows"): for every (table, key) the latest row event
 *   after rows_from and the row the ledger holds must agree: the row exists
 *   unless the event says deleted, its seq is that event's, its content
 *   hashes (db/rows_content.h, the station's own rule) to the event's `h`,
 *   and a unit's lot index is its content's lot.
 * - journal (may be NULL): this station's journal, journal_station its id;
 *   that station's events must also be the journal's.
 * - fn (may be NULL) gets each station's verdict; its non-zero return stops.
 *   ST_OK whatever the verdicts (*bad counts the stations that failed, *n
 *   all); an error only when the ledger cannot be read.
 * - Chains are walked 5000 events a page, rows one at a time: memory does
 *   not grow with the ledger.
 */
#ifndef STATION_APP_FACTORY_VERIFY_H
#define STATION_APP_FACTORY_VERIFY_H

#include <stdint.h>

#include "core/errbuf.h"
#include "ledger/ledger.h"

struct db;

struct factory_verify_station {
	char station_id[LEDGER_ID_LEN];
	int64_t events;            /* events walked */
	int64_t rows;              /* rows checked */
	int64_t rows_from;         /* events up to this seq carry no rows */
	int journal;               /* compared with the journal */
	int64_t journal_more;      /* events the journal holds past the ledger */
	char bad[400];             /* "" when the station verifies */
};

ST_MUST_CHECK int factory_verify(struct ledger *l, struct db *journal,
				 const char *journal_station,
				 int (*fn)(const struct factory_verify_station *s, void *ctx),
				 void *ctx, int *bad, int *n, struct errbuf *err);

#endif
