/*
 * cfx: IPC-CFX 1.3 messages for one unit (docs/engineer.md "IPC-CFX spool"):
 * CFX.Production.Assembly.UnitsPersonalized for a PASS (the board got its
 * identity) and CFX.Production.WorkCompleted for every unit with a verdict.
 *
 * Contract
 * - The envelope is CFX's: MessageName, Version "1.3", TimeStamp (the unit's
 *   verdict time, ISO-8601 UTC with ms), UniqueID, Source ("station." + the
 *   station id), Target null, RequestID null, MessageBody.
 * - UniqueID and TransactionID are derived from (station id, unit id, message)
 *   and (station id, unit id) by SHA-256 (UUID form, version 8): the same
 *   unit always gives the same ids, so a message written twice (after a
 *   crash, docs) is recognised by a collector as one.
 * - WorkCompleted.Result: Completed (pass), Failed (fail, reject), Aborted
 *   (interrupted).  A lot of NULL gives WorkOrderIdentifier null.
 * - Pure: no file, no database.  Strings are returned malloc'd (NULL when out
 *   of memory or a field is not UTF-8).
 */
#ifndef STATION_EXPORT_CFX_H
#define STATION_EXPORT_CFX_H

#include <stddef.h>
#include <stdint.h>

enum cfx_message { CFX_UNITS_PERSONALIZED, CFX_WORK_COMPLETED };
enum cfx_result { CFX_COMPLETED, CFX_FAILED, CFX_ABORTED };

struct cfx_unit {
	const char *station_id;
	const char *lot;               /* NULL: not known (a unit recovery closed) */
	const char *unique_id;         /* "" when the board gave no valid id */
	const char *bay;
	int64_t unit_id;
	int64_t finished_ms;
	enum cfx_result result;
};

/* "CFX.Production.Assembly.UnitsPersonalized", "CFX.Production.WorkCompleted". */
const char *cfx_message_name(enum cfx_message m);
/* From a unit status name (db_unit_status_name); -1 for one without a verdict. */
int cfx_result_of_status(const char *status);

char *cfx_message_json(enum cfx_message m, const struct cfx_unit *u);
/* "<station>-u<unit id, 12 digits>-<1|2>-<UnitsPersonalized|WorkCompleted>.json":
 * sorted by name is by unit, then in sending order; the station id keeps
 * [A-Za-z0-9._-] and gives '_' for anything else. */
void cfx_file_name(enum cfx_message m, const struct cfx_unit *u, char *out, size_t cap);

#endif
