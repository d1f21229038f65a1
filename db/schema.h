/*
 * schema: the forward-only migrations.  migrations[i] takes the database from
 * user_version i to i+1 and runs inside one transaction together with the
 * `PRAGMA user_version = i+1` that records it.  Never edit a shipped migration:
 * append a new one.  docs/database.md describes every table.
 */
#ifndef STATION_DB_SCHEMA_H
#define STATION_DB_SCHEMA_H

extern const char *const db_migrations[];
extern const int db_migrations_count;

#endif
