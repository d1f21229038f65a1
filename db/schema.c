/* schema: see schema.h and docs/database.md. */
#include "db/schema.h"

const char *const db_migrations[] = {
	/* 0 -> 1: the initial schema */
	"CREATE TABLE lots ("
	"  id          INTEGER PRIMARY KEY,"
	"  name        TEXT NOT NULL UNIQUE,"
	"  created_ms  INTEGER NOT NULL"
	");"
	"CREATE TABLE profiles ("
	"  id          INTEGER PRIMARY KEY,"
	"  name        TEXT NOT NULL,"
	"  version     INTEGER NOT NULL,"
	"  sha256      TEXT NOT NULL,"          /* hex of the stored content */
	"  content     BLOB NOT NULL,"
	"  created_ms  INTEGER NOT NULL,"
	"  created_by  TEXT NOT NULL,"
	"  UNIQUE (name, version)"
	");"
	/* One row per allowed hardware id.  unique_id is UNIQUE across all lots: a
	 * manufacturer never ships the same id twice, so a repeat is a clone or an error. */
	"CREATE TABLE allowlist ("
	"  id          INTEGER PRIMARY KEY,"
	"  lot_id      INTEGER NOT NULL REFERENCES lots(id),"
	"  unique_id   TEXT NOT NULL UNIQUE,"
	"  import_sha256 TEXT NOT NULL,"        /* the file it came from */
	"  line        INTEGER NOT NULL"
	");"
	"CREATE INDEX allowlist_lot ON allowlist(lot_id);"
	/* Every attempt on a board, pass or fail. */
	"CREATE TABLE units ("
	"  id            INTEGER PRIMARY KEY,"
	"  unique_id     TEXT NOT NULL,"
	"  lot           TEXT NOT NULL,"
	"  bay           TEXT NOT NULL,"
	"  operator      TEXT NOT NULL,"
	"  station_id    TEXT NOT NULL,"
	"  profile_hash  TEXT NOT NULL,"
	"  firmware_hash TEXT NOT NULL DEFAULT '',"
	"  cert_serial   TEXT NOT NULL DEFAULT '',"
	"  pubkey_hash   TEXT NOT NULL DEFAULT '',"
	"  status        TEXT NOT NULL CHECK (status IN"
	"                ('in-progress','pass','fail','reject','interrupted')),"
	"  stage         TEXT NOT NULL,"
	"  reason        TEXT NOT NULL DEFAULT '',"
	"  started_ms    INTEGER NOT NULL,"
	"  finished_ms   INTEGER"
	");"
	"CREATE INDEX units_uid ON units(unique_id);"
	"CREATE INDEX units_status ON units(status);"
	"CREATE INDEX units_lot ON units(lot);"
	/* At most one PASS per hardware id (invariant 3): rework revokes and re-opens. */
	"CREATE UNIQUE INDEX units_one_pass ON units(unique_id) WHERE status = 'pass';"
	"CREATE TABLE certificates ("
	"  serial        TEXT PRIMARY KEY,"     /* lower-case hex, no leading zeros */
	"  unit_id       INTEGER REFERENCES units(id),"
	"  unique_id     TEXT NOT NULL,"
	"  pubkey_hash   TEXT NOT NULL,"
	"  status        TEXT NOT NULL CHECK (status IN"
	"                ('reserved','issued','injected','revoked')),"
	"  der           BLOB,"
	"  reserved_ms   INTEGER NOT NULL,"
	"  issued_ms     INTEGER,"
	"  injected_ms   INTEGER,"
	"  revoked_ms    INTEGER,"
	"  revoke_reason TEXT"
	");"
	/* A public key is certified at most once (clone detection, invariant 3). */
	"CREATE UNIQUE INDEX certificates_pubkey ON certificates(pubkey_hash);"
	"CREATE INDEX certificates_status ON certificates(status);"
	/* The audit log: append-only, hash-chained per station.  See docs/database.md
	 * for the canonical encoding hashed into `hash`. */
	"CREATE TABLE events ("
	"  id          INTEGER PRIMARY KEY,"
	"  station_id  TEXT NOT NULL,"
	"  seq         INTEGER NOT NULL,"
	"  ts          TEXT NOT NULL,"          /* UTC, 2026-11-22T01:02:03.456Z */
	"  kind        TEXT NOT NULL,"
	"  actor       TEXT NOT NULL,"
	"  detail      TEXT NOT NULL,"          /* compact JSON object */
	"  prev_hash   TEXT NOT NULL,"          /* hex; 64 zeros for the first row */
	"  hash        TEXT NOT NULL,"
	"  UNIQUE (station_id, seq)"
	");"
	/* Signed checkpoints of the chain head (HSM-held audit key). */
	"CREATE TABLE checkpoints ("
	"  id          INTEGER PRIMARY KEY,"
	"  station_id  TEXT NOT NULL,"
	"  seq         INTEGER NOT NULL,"       /* events.seq of the head signed */
	"  head_hash   TEXT NOT NULL,"
	"  ts          TEXT NOT NULL,"
	"  key_label   TEXT NOT NULL,"
	"  algorithm   TEXT NOT NULL,"
	"  signature   BLOB NOT NULL,"
	"  pubkey_der  BLOB NOT NULL"
	");"
	"CREATE INDEX checkpoints_station_seq ON checkpoints(station_id, seq);",

	/* 1 -> 2: serials are reserved ahead, in batches (hsm/issue.c), before the
	 * board they will certify is known: a 'reserved' row need not name its
	 * unit, hardware id or public key until it is 'issued'.  A reserved serial
	 * the issuer never signed with is released as 'void'.  SQLite cannot drop
	 * a NOT NULL in place, so the table is rebuilt (nothing references it). */
	"CREATE TABLE certificates_v2 ("
	"  serial        TEXT PRIMARY KEY,"
	"  unit_id       INTEGER REFERENCES units(id),"
	"  unique_id     TEXT,"
	"  pubkey_hash   TEXT,"
	"  status        TEXT NOT NULL CHECK (status IN"
	"                ('reserved','issued','injected','revoked','void')),"
	"  der           BLOB,"
	"  reserved_ms   INTEGER NOT NULL,"
	"  issued_ms     INTEGER,"
	"  injected_ms   INTEGER,"
	"  revoked_ms    INTEGER,"
	"  revoke_reason TEXT,"
	/* what was signed names its board */
	"  CHECK (status NOT IN ('issued','injected') OR"
	"         (unique_id IS NOT NULL AND pubkey_hash IS NOT NULL AND der IS NOT NULL))"
	");"
	"INSERT INTO certificates_v2 SELECT serial, unit_id, unique_id, pubkey_hash, status, der,"
	"  reserved_ms, issued_ms, injected_ms, revoked_ms, revoke_reason FROM certificates;"
	"DROP TABLE certificates;"
	"ALTER TABLE certificates_v2 RENAME TO certificates;"
	"CREATE UNIQUE INDEX certificates_pubkey ON certificates(pubkey_hash);"
	"CREATE INDEX certificates_status ON certificates(status);"
	/* a failed unit revokes its own certificates without a table scan */
	"CREATE INDEX certificates_unit ON certificates(unit_id);",

	/* 2 -> 3: rework (invariant 3; db/rework.h, docs/engineer.md "Rework").  An engineer's
	 * single-use authorisation to provision a board again.  Authorising marks
	 * the board's PASS unit superseded_by it, which takes that unit out of
	 * units_one_pass; the unit that provisions the board again names it in
	 * rework_id, and the authorisation names that unit (consumed).  At most one
	 * open authorisation per board. */
	"CREATE TABLE reworks ("
	"  id            INTEGER PRIMARY KEY,"
	"  unique_id     TEXT NOT NULL,"
	"  old_unit_id   INTEGER NOT NULL REFERENCES units(id),"
	"  old_serial    TEXT NOT NULL,"        /* the certificate revoked (superseded) */
	"  reason        TEXT NOT NULL,"
	"  authorised_by TEXT NOT NULL,"
	"  authorised_ms INTEGER NOT NULL,"
	"  new_unit_id   INTEGER UNIQUE REFERENCES units(id),"   /* NULL while open */
	"  consumed_ms   INTEGER"
	");"
	"CREATE UNIQUE INDEX reworks_open ON reworks(unique_id) WHERE new_unit_id IS NULL;"
	"ALTER TABLE units ADD COLUMN superseded_by INTEGER REFERENCES reworks(id);"
	"ALTER TABLE units ADD COLUMN rework_id INTEGER REFERENCES reworks(id);"
	"DROP INDEX units_one_pass;"
	"CREATE UNIQUE INDEX units_one_pass ON units(unique_id)"
	"  WHERE status = 'pass' AND superseded_by IS NULL;",

	/* 3 -> 4: roles (db/roles.h, docs/engineer.md "Roles"): a person's name (--user, the
	 * audit actor) bound to the OS login they must be using, and one role. */
	"CREATE TABLE roles ("
	"  name        TEXT PRIMARY KEY,"
	"  login       TEXT NOT NULL,"
	"  role        TEXT NOT NULL CHECK (role IN ('operator','qa','engineer')),"
	"  granted_by  TEXT NOT NULL,"
	"  granted_ms  INTEGER NOT NULL"
	");",

	/* 4 -> 5: the unit's reason code (core/errbuf.h enum st_reason, by its
	 * st_reason_name; docs/architecture.md "Reason codes"): what the screen and
	 * the records decide on, where reason is the sentence for people.  '' for
	 * a pass, an older row and a unit in progress. */
	"ALTER TABLE units ADD COLUMN reason_code TEXT NOT NULL DEFAULT '';",

	/* 5 -> 6: records engineers analyse (issue 15; docs/database.md "Unit records").
	 * The allowlist keeps the manufacturer's model and hardware revision of
	 * each board; a unit keeps them too, with its reason in words without ids
	 * (reason_plain: "<stage>: <st_reason_text>", the same for every unit with
	 * the code), its duration and the time of each stage (stage_ms: a JSON
	 * object {"detect":12,"flash":830,...} in stage order).  Indexes for
	 * `station unit show`: a board's certificates and reworks, and the audit
	 * events whose detail names a board or a serial (expression indexes; the
	 * CASE keeps a malformed detail from failing a write). */
	"ALTER TABLE allowlist ADD COLUMN model TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE allowlist ADD COLUMN hw_revision TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE units ADD COLUMN reason_plain TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE units ADD COLUMN duration_ms INTEGER;"
	"ALTER TABLE units ADD COLUMN stage_ms TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE units ADD COLUMN model TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE units ADD COLUMN hw_revision TEXT NOT NULL DEFAULT '';"
	"CREATE INDEX certificates_uid ON certificates(unique_id);"
	"CREATE INDEX reworks_uid ON reworks(unique_id);"
	"CREATE INDEX events_uid ON events("
	"  (CASE WHEN json_valid(detail) THEN json_extract(detail, '$.unique_id') END));"
	"CREATE INDEX events_serial ON events("
	"  (CASE WHEN json_valid(detail) THEN json_extract(detail, '$.serial') END));",

	/* 6 -> 7: every row under the chain (db/rows.c).  The CRLs issued, one
	 * audited row each: number 1, 2, 3 ... (RFC 5280 5.2.3: it only grows,
	 * whatever the clock does) and how many serials it listed (a later CRL
	 * never lists fewer: db_crl_next()).  Like every migration, this one ends
	 * with a `row` baseline event for each row it found (db/db.c migrate()). */
	"CREATE TABLE crls ("
	"  number         INTEGER PRIMARY KEY,"
	"  this_update_ms INTEGER NOT NULL,"
	"  entries        INTEGER NOT NULL,"
	"  created_by     TEXT NOT NULL"
	");",

	/* 7 -> 8: the database's own station id (db/station.c, `station init`):
	 * one row, written once with its "station-init" audit event; commands use
	 * it unless --station-id says otherwise. */
	"CREATE TABLE station ("
	"  id          INTEGER PRIMARY KEY CHECK (id = 1),"
	"  station_id  TEXT NOT NULL,"
	"  created_ms  INTEGER NOT NULL,"
	"  created_by  TEXT NOT NULL"
	");",

	/* 8 -> 9: one line per database (db/line_holder.c, `station run`): the
	 * line that holds (or last held) the database's lock file, by host and
	 * pid, so a second line names it when it is refused. */
	"CREATE TABLE line_holder ("
	"  id          INTEGER PRIMARY KEY CHECK (id = 1),"
	"  host        TEXT NOT NULL,"
	"  pid         INTEGER NOT NULL,"
	"  since_ms    INTEGER NOT NULL,"
	"  actor       TEXT NOT NULL"
	");",

	/* 9 -> 10 (issue 12): the public key of every CSR the policy accepted,
	 * whatever became of its unit (db/keys_seen.c, written with the unit): the clone check
	 * reads them all.  One audited row per key, kept for the first board
	 * that showed it.  The events indexes move off JSON functions, which
	 * trusted_schema OFF refuses in the schema (schema.h DB_EV_FIELD). */
	"CREATE TABLE keys_seen ("
	"  pubkey_hash  TEXT PRIMARY KEY,"
	"  unique_id    TEXT NOT NULL,"
	"  seen_ms      INTEGER NOT NULL"
	");"
	"DROP INDEX events_uid;"
	"DROP INDEX events_serial;"
	"CREATE INDEX events_uid ON events(" DB_EV_UID ");"
	"CREATE INDEX events_serial ON events(" DB_EV_SERIAL ");",

	/* 10 -> 11: fewer index pages per write, the issuing path's above all
	 * (docs/performance.md).  A reserved certificate has no key, board or
	 * unit yet: the indexes on those hold only the rows that have one (each
	 * query on them compares the column, which implies IS NOT NULL), so a
	 * reservation no longer inserts, and the issued record no longer
	 * deletes, NULL entries.  certificates_status goes: no query uses it
	 * (the by-status listing is a scan).  The events indexes leave out `row`
	 * events (schema.h DB_EV_INDEXED).  No row changes. */
	"DROP INDEX certificates_pubkey;"
	"CREATE UNIQUE INDEX certificates_pubkey ON certificates(pubkey_hash)"
	"  WHERE pubkey_hash IS NOT NULL;"
	"DROP INDEX certificates_uid;"
	"CREATE INDEX certificates_uid ON certificates(unique_id) WHERE unique_id IS NOT NULL;"
	"DROP INDEX certificates_unit;"
	"CREATE INDEX certificates_unit ON certificates(unit_id) WHERE unit_id IS NOT NULL;"
	"DROP INDEX certificates_status;"
	"DROP INDEX events_uid;"
	"DROP INDEX events_serial;"
	"CREATE INDEX events_uid ON events(" DB_EV_UID ") WHERE " DB_EV_INDEXED ";"
	"CREATE INDEX events_serial ON events(" DB_EV_SERIAL ") WHERE " DB_EV_INDEXED ";",
};

const int db_migrations_count = sizeof(db_migrations) / sizeof(db_migrations[0]);
