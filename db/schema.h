/*
 * schema: the forward-only migrations.  migrations[i] takes the database from
 * user_version i to i+1 and runs inside one transaction together with the
 * `PRAGMA user_version = i+1` that records it.  Never edit a shipped migration:
 * append a new one.  docs/database.md describes every table.
 */
#ifndef STATION_DB_SCHEMA_H
#define STATION_DB_SCHEMA_H

/*
 * The events indexes by unique id and by serial read the field from the
 * detail's text with innocuous built-ins (instr, substr): the database is
 * opened with trusted_schema OFF, under which SQLite 3.40 refuses JSON
 * functions in the schema.  Details are jansson's compact form
 * ("key":"value"), and a match is confirmed with json_extract in the query
 * (db/trace.c), so a nested key of the same name never adds an event.
 * klen is the length of "key":" as a decimal string literal.
 */
#define DB_EV_FIELD(k, klen) \
	"(CASE WHEN instr(detail, '\"" k "\":\"') > 0 THEN substr(detail," \
	" instr(detail, '\"" k "\":\"') + " klen ", instr(substr(detail," \
	" instr(detail, '\"" k "\":\"') + " klen "), '\"') - 1) END)"
#define DB_EV_UID    DB_EV_FIELD("unique_id", "13")
#define DB_EV_SERIAL DB_EV_FIELD("serial", "10")
/*
 * Since migration 11 both are partial indexes over the events that are not
 * `row` events: a row event's detail names columns ("v":{"serial":"<8 hex>",
 * ...}), never a board or a serial.  A query adds this term to use them.
 */
#define DB_EV_INDEXED "kind != 'row'"

extern const char *const db_migrations[];
extern const int db_migrations_count;

#endif
