/*
 * ledger: the connection (deadlines on every call), the schema and its
 * migrations, and the password file.
 */
#include "ledger/ledger_int.h"
#include "core/clock.h"
#include "core/secretfile.h"


#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

/*
 * The schema.  Version 1:
 * - stations: one row per station that ever pushed; local_head is what the
 *   station's journal held at its last contact (lag = local_head - the last
 *   seq of its chain in events).
 * - events: every station's audit chain, (station_id, seq) unique.  The
 *   trigger is the continuity check: a new row must follow the station's
 *   previous event (seq 1 after the zero hash, else event seq - 1 is there and
 *   prev_hash is its hash), else the insert fails.  A row already there passes
 *   the trigger and meets ON CONFLICT.  Events are never updated or deleted (a
 *   second trigger refuses it).  Up to schema 4 the check read and moved a
 *   head (stations.head_seq/head_hash) on every insert; 5 dropped it: a push
 *   of 1,000 events in one transaction left 1,000 versions of that one row,
 *   each insert walking them (quadratic; docs/performance.md, ledger sync).
 * - provisioned: a unique id claimed once across the factory (PRIMARY KEY),
 *   a public key certified once (UNIQUE), a serial once (UNIQUE).
 * - in_progress: the board is on a station now; clone_seen_by is set when a
 *   second station saw the same id while the claim stood.
 * - allowlist: the lots' ids, imported once, read by every station.
 * - profiles (2): the profiles' canonical texts with their SHA-256, added
 *   once (`station profile add --ledger`), read by a station that lacks one.
 * - provisioned.prev_* (3): a rework's claim of a committed row keeps the
 *   PASS it reworks there (unit, key, serial, time); the rework's PASS drops
 *   them, its failure puts them back: the board stays provisioned.
 * - in_progress.unit_id (3): the unit that holds the board, so a `done`
 *   retried late releases its own hold only, never a later attempt's.
 * - serials: every certificate serial any station reserved (PRIMARY KEY),
 *   reserved here in the station's batch, before its own database and before
 *   anything is signed with it.
 * - rows (4): the current content of each station's audited rows (db/
 *   rows_content.h), each with the seq of the row event whose `h` it must
 *   hash to, pushed with the events; stations.rows_from: the head when the
 *   ledger was migrated to 4 (the events before it carry no rows).
 */
static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE stations ("
	"  station_id    text PRIMARY KEY,"
	"  first_contact timestamptz NOT NULL DEFAULT now(),"
	"  last_contact  timestamptz NOT NULL DEFAULT now(),"
	"  head_seq      bigint NOT NULL DEFAULT 0,"
	"  head_hash     text NOT NULL DEFAULT repeat('0', 64),"
	"  local_head    bigint NOT NULL DEFAULT 0);"
	"CREATE TABLE events ("
	"  station_id text NOT NULL REFERENCES stations,"
	"  seq        bigint NOT NULL CHECK (seq > 0),"
	"  ts         text NOT NULL,"
	"  kind       text NOT NULL,"
	"  actor      text NOT NULL,"
	"  detail     text NOT NULL,"
	"  prev_hash  text NOT NULL,"
	"  hash       text NOT NULL,"
	"  PRIMARY KEY (station_id, seq));"
	"CREATE FUNCTION events_continuity() RETURNS trigger LANGUAGE plpgsql AS $$"
	" DECLARE hs bigint; hh text;"
	" BEGIN"
	"  SELECT head_seq, head_hash INTO hs, hh FROM stations"
	"   WHERE station_id = NEW.station_id FOR UPDATE;"
	"  IF NOT FOUND THEN"
	"   RAISE EXCEPTION 'station % is unknown to the ledger', NEW.station_id"
	"    USING ERRCODE = 'SL001';"
	"  END IF;"
	"  IF NEW.seq <= hs THEN RETURN NEW; END IF;"
	"  IF NEW.seq <> hs + 1 THEN"
	"   RAISE EXCEPTION 'chain of station %: event % after % (a gap)', NEW.station_id,"
	"    NEW.seq, hs USING ERRCODE = 'SL002';"
	"  END IF;"
	"  IF NEW.prev_hash <> hh THEN"
	"   RAISE EXCEPTION 'chain of station %: event % does not link to event %',"
	"    NEW.station_id, NEW.seq, hs USING ERRCODE = 'SL003';"
	"  END IF;"
	"  UPDATE stations SET head_seq = NEW.seq, head_hash = NEW.hash"
	"   WHERE station_id = NEW.station_id;"
	"  RETURN NEW;"
	" END $$;"
	"CREATE TRIGGER events_continuity BEFORE INSERT ON events"
	"  FOR EACH ROW EXECUTE FUNCTION events_continuity();"
	"CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$"
	" BEGIN RAISE EXCEPTION 'events are append-only' USING ERRCODE = 'SL004'; END $$;"
	"CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events"
	"  FOR EACH ROW EXECUTE FUNCTION events_append_only();"
	"CREATE TABLE provisioned ("
	"  unique_id    text PRIMARY KEY,"
	"  station_id   text NOT NULL,"
	"  lot          text NOT NULL,"
	"  pubkey_hash  text NOT NULL UNIQUE,"
	"  unit_id      bigint NOT NULL,"
	"  state        text NOT NULL CHECK (state IN ('claimed', 'committed')),"
	"  serial       text UNIQUE,"
	"  claimed_at   timestamptz NOT NULL DEFAULT now(),"
	"  committed_at timestamptz);"
	"CREATE TABLE in_progress ("
	"  unique_id     text PRIMARY KEY,"
	"  station_id    text NOT NULL,"
	"  since         timestamptz NOT NULL DEFAULT now(),"
	"  expires       timestamptz NOT NULL,"
	"  clone_seen_by text);"
	"CREATE TABLE allowlist ("
	"  lot         text NOT NULL,"
	"  unique_id   text NOT NULL,"
	"  imported_by text NOT NULL,"
	"  imported_at timestamptz NOT NULL DEFAULT now(),"
	"  PRIMARY KEY (lot, unique_id));"
	"CREATE TABLE serials ("
	"  serial      text PRIMARY KEY,"
	"  station_id  text NOT NULL,"
	"  reserved_at timestamptz NOT NULL DEFAULT now());",
	/* 2: profiles, added once for every station; the newest of a name wins */
	"CREATE TABLE profiles ("
	"  name     text NOT NULL,"
	"  sha256   text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),"
	"  content  text NOT NULL,"
	"  added_by text NOT NULL,"
	"  added_at timestamptz NOT NULL DEFAULT now(),"
	"  seq      bigserial UNIQUE,"
	"  PRIMARY KEY (name, sha256));",
	/* 3: a rework keeps the PASS it reworks until its own verdict; a hold
	 * names its unit (ledger_claim.c, ledger_done) */
	"ALTER TABLE provisioned ADD COLUMN prev_unit_id bigint,"
	"  ADD COLUMN prev_pubkey_hash text, ADD COLUMN prev_serial text,"
	"  ADD COLUMN prev_committed_at timestamptz;"
	"ALTER TABLE in_progress ADD COLUMN unit_id bigint;",
	/* 4: the rows behind the row events, for a lot read from the ledger */
	"ALTER TABLE stations ADD COLUMN rows_from bigint NOT NULL DEFAULT 0;"
	"UPDATE stations SET rows_from = head_seq;"
	"CREATE TABLE rows ("
	"  station_id text NOT NULL,"
	"  tbl        text NOT NULL,"
	"  key        text NOT NULL,"
	"  seq        bigint NOT NULL,"
	"  content    text NOT NULL,"
	"  lot        text,"
	"  unique_id  text,"
	"  PRIMARY KEY (station_id, tbl, key),"
	"  FOREIGN KEY (station_id, seq) REFERENCES events (station_id, seq));"
	"CREATE INDEX rows_lot ON rows (lot, tbl);",
	/* 5: the continuity check reads the previous event, not a head row that
	 * every insert updated (see above) */
	"CREATE OR REPLACE FUNCTION events_continuity() RETURNS trigger LANGUAGE plpgsql AS $$"
	" DECLARE ph text;"
	" BEGIN"
	"  PERFORM 1 FROM stations WHERE station_id = NEW.station_id;"
	"  IF NOT FOUND THEN"
	"   RAISE EXCEPTION 'station % is unknown to the ledger', NEW.station_id"
	"    USING ERRCODE = 'SL001';"
	"  END IF;"
	"  PERFORM 1 FROM events WHERE station_id = NEW.station_id AND seq = NEW.seq;"
	"  IF FOUND THEN RETURN NEW; END IF;"
	"  IF NEW.seq = 1 THEN"
	"   ph := repeat('0', 64);"
	"  ELSE"
	"   SELECT hash INTO ph FROM events"
	"    WHERE station_id = NEW.station_id AND seq = NEW.seq - 1;"
	"   IF NOT FOUND THEN"
	"    RAISE EXCEPTION 'chain of station %: event % but no event % (a gap)',"
	"     NEW.station_id, NEW.seq, NEW.seq - 1 USING ERRCODE = 'SL002';"
	"   END IF;"
	"  END IF;"
	"  IF NEW.prev_hash <> ph THEN"
	"   RAISE EXCEPTION 'chain of station %: event % does not link to event %',"
	"    NEW.station_id, NEW.seq, NEW.seq - 1 USING ERRCODE = 'SL003';"
	"  END IF;"
	"  RETURN NEW;"
	" END $$;"
	"ALTER TABLE stations DROP COLUMN head_seq, DROP COLUMN head_hash;",
};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* libpq's messages end with newlines and may span lines: one line. */
static void one_line(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	for (char *p = s; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
}

static int unreachable(struct ledger *l, int rc, struct errbuf *err, const char *what,
		       const char *why)
{
	char msg[400];

	l->down = 1;
	snprintf(msg, sizeof(msg), "%s", why ? why : "no answer");
	one_line(msg);
	if (rc == ST_EPIN)
		return errbuf_setr(err, rc, ST_ORIGIN_DB, ST_R_LEDGER_UNREACHABLE,
				   "ledger %s: %s", what, msg);
	return errbuf_setr(err, rc, ST_ORIGIN_DB, ST_R_LEDGER_UNREACHABLE,
			   "ledger unreachable (%s): %s", what, msg);
}

/* The server's NOTICEs ("already exists, skipping") are not the operator's. */
static void quiet_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

int ledger_connect(struct ledger *l, struct errbuf *err)
{
	char timeout[16], options[64], app[96];
	const char *keys[12], *vals[12];
	int64_t t0;
	int n = 0;

	if (l->pg && PQstatus(l->pg) == CONNECTION_OK && !l->down)
		return ST_OK;
	if (l->pg)
		PQfinish(l->pg);
	l->pg = NULL;
	l->push_prepared = 0;   /* prepared statements die with their session */
	snprintf(timeout, sizeof(timeout), "%d", LEDGER_CONNECT_S);
	snprintf(options, sizeof(options), "-c statement_timeout=%d", LEDGER_STATEMENT_MS);
	snprintf(app, sizeof(app), "station %s", l->cfg.station_id);
	/* The expanded string comes first: the deadlines after it override it. */
	keys[n] = "dbname"; vals[n++] = l->cfg.conninfo;
	keys[n] = "connect_timeout"; vals[n++] = timeout;
	keys[n] = "options"; vals[n++] = options;
	keys[n] = "application_name"; vals[n++] = app;
	/* A server that vanishes without a FIN (a cable, a power loss) is seen
	 * within seconds, not after the kernel's two hours. */
	keys[n] = "keepalives_idle"; vals[n++] = "5";
	keys[n] = "keepalives_interval"; vals[n++] = "2";
	keys[n] = "keepalives_count"; vals[n++] = "2";
	keys[n] = "tcp_user_timeout"; vals[n++] = "5000";
	if (l->password[0]) {
		keys[n] = "password";
		vals[n++] = l->password;
	}
	keys[n] = NULL;
	vals[n] = NULL;
	t0 = clock_monotonic_ms();
	l->pg = PQconnectdbParams(keys, vals, 1);
	if (!l->pg)
		return unreachable(l, ST_ENOMEM, err, "connect", "out of memory");
	PQsetNoticeProcessor(l->pg, quiet_notice, NULL);
	if (PQstatus(l->pg) != CONNECTION_OK) {
		/* out of time, whatever stage the login had reached: a busy or
		 * distant server, not a wrong password (it may heal by waiting) */
		if (clock_monotonic_ms() - t0 >= LEDGER_CONNECT_S * 1000 - 100)
			return unreachable(l, ST_EIO, err, "connect: no answer within the"
					   " connect timeout", PQerrorMessage(l->pg));
		/* the server answered but refused the login: say so, it will not
		 * heal by waiting */
		if (PQconnectionNeedsPassword(l->pg))
			return unreachable(l, ST_EPIN, err, "refused the login: no password (give"
					   " --ledger-password-file or PGPASSWORD)",
					   PQerrorMessage(l->pg));
		if (PQconnectionUsedPassword(l->pg))
			return unreachable(l, ST_EPIN, err, "refused the login (wrong password?)",
					   PQerrorMessage(l->pg));
		return unreachable(l, ST_EIO, err, "connect", PQerrorMessage(l->pg));
	}
	l->down = 0;
	return ST_OK;
}

/* Class 08 (connection), 57 (operator intervention: shutdown, statement
 * timeout, cannot connect now), 53 (resources): the server, not the data. */
static int transport_state(const char *st)
{
	return (!strncmp(st, "08", 2) || !strncmp(st, "57", 2) || !strncmp(st, "53", 2));
}

int ledger_exec(struct ledger *l, const char *what, const char *sql, int n,
		const char *const *params, PGresult **res, char sqlstate[6], struct errbuf *err)
{
	PGresult *r;
	ExecStatusType s;
	const char *st;
	char msg[400], state[6];
	int rc;

	if (sqlstate)
		sqlstate[0] = '\0';
	*res = NULL;
	if ((rc = ledger_connect(l, err)))
		return rc;
	r = PQexecParams(l->pg, sql, n, NULL, params, NULL, NULL, 0);
	s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
		*res = r;
		return ST_OK;
	}
	st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	snprintf(state, sizeof(state), "%s", st ? st : "");
	if (sqlstate)
		snprintf(sqlstate, 6, "%s", state);
	snprintf(msg, sizeof(msg), "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(l->pg));
	if (!msg[0])
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(l->pg));
	PQclear(r);
	if (PQstatus(l->pg) != CONNECTION_OK || transport_state(state))
		return unreachable(l, ST_EIO, err, what, msg);
	one_line(msg);
	return errbuf_setr(err, ST_EDB, ST_ORIGIN_DB, ST_R_DB, "ledger: %s: %s", what, msg);
}

int ledger_run(struct ledger *l, const char *what, const char *sql, int n,
	       const char *const *params, struct errbuf *err)
{
	PGresult *r;
	int rc = ledger_exec(l, what, sql, n, params, &r, NULL, err);

	PQclear(r);
	return rc;
}

int ledger_begin(struct ledger *l, struct errbuf *err)
{
	return ledger_run(l, "begin", "BEGIN", 0, NULL, err);
}

int ledger_commit(struct ledger *l, struct errbuf *err)
{
	int rc = ledger_run(l, "commit", "COMMIT", 0, NULL, err);

	if (rc)
		ledger_rollback(l);
	return rc;
}

void ledger_rollback(struct ledger *l)
{
	if (l->pg && PQstatus(l->pg) == CONNECTION_OK)
		PQclear(PQexec(l->pg, "ROLLBACK"));
}

int ledger_is_down(const struct ledger *l)
{
	return l->down;
}

/* The schema's version: 0 when there is none yet. */
static int schema_version(struct ledger *l, int *version, struct errbuf *err)
{
	PGresult *r;
	char st[6];
	int rc;

	*version = 0;
	rc = ledger_exec(l, "read the schema version",
			 "SELECT coalesce(max(version), 0) FROM ledger_schema", 0, NULL, &r, st,
			 err);
	if (rc && !strcmp(st, "42P01")) {
		errbuf_clear(err);
		return ST_OK;
	}
	if (rc)
		return rc;
	*version = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return ST_OK;
}

static int check_version(int v, int must_be_current, struct errbuf *err)
{
	if (v > LEDGER_SCHEMA_VERSION)
		return errbuf_setr(err, ST_ESCHEMA, ST_ORIGIN_DB, ST_R_SCHEMA,
				   "ledger schema version %d is newer than this station's (%d):"
				   " upgrade the station", v, LEDGER_SCHEMA_VERSION);
	if (must_be_current && v == 0)
		return errbuf_setr(err, ST_ESCHEMA, ST_ORIGIN_DB, ST_R_SCHEMA,
				   "the ledger has no schema: run station ledger init");
	if (must_be_current && v < LEDGER_SCHEMA_VERSION)
		return errbuf_setr(err, ST_ESCHEMA, ST_ORIGIN_DB, ST_R_SCHEMA,
				   "ledger schema version %d is older than this station's (%d):"
				   " run station ledger init", v, LEDGER_SCHEMA_VERSION);
	return ST_OK;
}

int ledger_open(const struct ledger_config *cfg, int must_be_current, struct ledger **out,
		struct errbuf *err)
{
	struct ledger *l;
	PQconninfoOption *opts;
	char *perr = NULL;
	int rc, v;

	*out = NULL;
	opts = PQconninfoParse(cfg->conninfo, &perr);
	if (!opts) {
		char msg[300];

		snprintf(msg, sizeof(msg), "%s", perr ? perr : "out of memory");
		one_line(msg);
		PQfreemem(perr);
		return errbuf_setr(err, ST_EINVAL, ST_ORIGIN_CONFIG, ST_R_INVALID,
				   "ledger: bad connection string: %s", msg);
	}
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (!strcmp(o->keyword, "password") && o->val && o->val[0]) {
			PQconninfoFree(opts);
			return errbuf_setr(err, ST_EINVAL, ST_ORIGIN_CONFIG, ST_R_INVALID,
					   "ledger: the connection string holds a password: put it in"
					   " --ledger-password-file or PGPASSWORD, never on the command"
					   " line");
		}
	PQconninfoFree(opts);
	if (!(l = calloc(1, sizeof(*l))))
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	l->cfg = *cfg;
	if (cfg->password_file[0] &&
	    (rc = ledger_read_password(cfg->password_file, l->password, sizeof(l->password),
				       err))) {
		free(l);
		return rc;
	}
	if ((rc = ledger_connect(l, err)) || (rc = schema_version(l, &v, err)) ||
	    (rc = check_version(v, must_be_current, err))) {
		ledger_close(l);
		return rc;
	}
	*out = l;
	return ST_OK;
}

void ledger_close(struct ledger *l)
{
	if (!l)
		return;
	if (l->pg)
		PQfinish(l->pg);
	OPENSSL_cleanse(l->password, sizeof(l->password));
	free(l);
}

/* A migration is several statements: the simple protocol, no parameters. */
static int run_script(struct ledger *l, const char *sql, struct errbuf *err)
{
	PGresult *r = PQexec(l->pg, sql);
	char msg[400];

	if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
		PQclear(r);
		return ST_OK;
	}
	snprintf(msg, sizeof(msg), "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(l->pg));
	PQclear(r);
	if (PQstatus(l->pg) != CONNECTION_OK)
		return unreachable(l, ST_EIO, err, "migrate", msg);
	one_line(msg);
	return errbuf_setr(err, ST_ESCHEMA, ST_ORIGIN_DB, ST_R_SCHEMA, "ledger: migrate: %s", msg);
}

int ledger_migrate(struct ledger *l, int *from, int *to, struct errbuf *err)
{
	char vs[16];
	const char *p[1] = { vs };
	int rc, v;

	if ((rc = ledger_run(l, "begin", "BEGIN", 0, NULL, err)))
		return rc;
	/* two `ledger init` at once: the second waits, then finds it done */
	if ((rc = ledger_run(l, "lock the schema", "SELECT pg_advisory_xact_lock(16016)", 0,
			     NULL, err)) ||
	    (rc = ledger_run(l, "create the version table",
			     "CREATE TABLE IF NOT EXISTS ledger_schema (version integer NOT NULL,"
			     " migrated_at timestamptz NOT NULL DEFAULT now())", 0, NULL, err)) ||
	    (rc = schema_version(l, &v, err)) || (rc = check_version(v, 0, err)))
		goto fail;
	*from = v;
	for (; v < NMIGRATIONS; v++) {
		snprintf(vs, sizeof(vs), "%d", v + 1);
		if ((rc = run_script(l, migrations[v], err)) ||
		    (rc = ledger_run(l, "record the version",
				     "INSERT INTO ledger_schema (version) VALUES ($1::integer)", 1, p,
				     err)))
			goto fail;
	}
	*to = v;
	return ledger_run(l, "commit", "COMMIT", 0, NULL, err);
fail:
	ledger_rollback(l);
	return rc;
}

/* The file's rules are the PIN file's: core/secretfile.h. */
int ledger_read_password(const char *path, char *out, size_t cap, struct errbuf *err)
{
	return secretfile_read(path, "ledger: password file", out, cap, err);
}
