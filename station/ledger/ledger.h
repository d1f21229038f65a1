/*
 * ledger: the factory ledger, a PostgreSQL database shared by every station
 * (libpq).  Each station keeps its SQLite file as its journal; the ledger is
 * authoritative for what must hold across stations (docs/factory.md).
 *
 * Contract
 * - A struct ledger is one libpq connection, not thread-safe: a thread uses its
 *   own (the line's claims and the sync thread each open one).
 * - Every libpq call has a deadline: connect_timeout (LEDGER_CONNECT_S) on
 *   connect and statement_timeout (LEDGER_STATEMENT_MS) on every statement, so
 *   no call of the line blocks longer than a few seconds (the readers of every
 *   station's rows, ledger_rows_check and ledger_rows_lot, which only the
 *   engineer's commands call, get LEDGER_READ_MS).  A call that loses the server
 *   fails with reason ST_R_LEDGER_UNREACHABLE; the next call reconnects (one
 *   attempt, bounded by connect_timeout: a refused connection fails at once, a
 *   silent host within LEDGER_CONNECT_S).
 * - The password never comes from argv: a password in the connection string is
 *   refused; it comes from the password file (StrictModes, as the PIN file) or
 *   libpq's own PGPASSWORD / PGPASSFILE.
 * - The schema is migrated only by ledger_migrate (`station ledger init`);
 *   ledger_open refuses a ledger whose schema is newer than this binary's, or
 *   one that is not initialised, with one line.
 * - The rules are the ledger's: the tables' constraints and the statements'
 *   transactions decide (a unique id claimed once, a public key once, a chain
 *   without gaps); the station only asks.
 * - Statements: every one is prepared or parameterised; no value is ever
 *   spliced into SQL text.
 */
#ifndef STATION_LEDGER_H
#define STATION_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"

#define LEDGER_SCHEMA_VERSION 5
#define LEDGER_CONNECT_S      2
#define LEDGER_STATEMENT_MS   5000
#define LEDGER_READ_MS        300000  /* a read of every station's rows (verify, a lot) */
#define LEDGER_ID_LEN         65
#define LEDGER_CONNINFO_MAX   1024

struct ledger;

struct ledger_config {
	char conninfo[LEDGER_CONNINFO_MAX]; /* libpq connection string or URI */
	char password_file[512];            /* "" = libpq's own (PGPASSWORD, PGPASSFILE) */
	char station_id[LEDGER_ID_LEN];
};

/* Connects and checks the schema (must_be_current: refuse an older one too;
 * ledger init passes 0 to migrate it).  Fails with one line: unreachable,
 * authentication refused, not initialised, newer schema. */
ST_MUST_CHECK int ledger_open(const struct ledger_config *cfg, int must_be_current,
			      struct ledger **out, struct errbuf *err);
void ledger_close(struct ledger *l);
/* Non-zero when the last call lost the server (the next call reconnects). */
int ledger_is_down(const struct ledger *l);

/* Creates or migrates the schema in one transaction; *from and *to get the
 * versions.  ST_ESCHEMA for a ledger newer than this binary. */
ST_MUST_CHECK int ledger_migrate(struct ledger *l, int *from, int *to, struct errbuf *err);

/* ---- the chains (ledger_chain.c) ---- */

/* One audit event, as the station's journal holds it. */
struct ledger_event {
	int64_t seq;
	const char *ts, *kind, *actor, *detail, *prev_hash, *hash;
};

/* The ledger's head of this station's chain (0 and 64 zeros: nothing yet). */
ST_MUST_CHECK int ledger_chain_head(struct ledger *l, int64_t *seq, char hash[65],
				    struct errbuf *err);
/* Pushes events (seq ascending, continuing the ledger's head) in one
 * transaction, idempotent on (station, seq): a row already there must be
 * identical (else ST_ETAMPER: the journal and the ledger disagree).  The
 * ledger refuses a gap or a broken link (its trigger).  local_head is the
 * journal's head, for the lag `ledger status` shows. */
ST_MUST_CHECK int ledger_chain_push(struct ledger *l, const struct ledger_event *ev, size_t n,
				    int64_t local_head, struct errbuf *err);
/* One row as the journal holds it with the seq of its latest row event
 * (db/rows_content.h: content, and the lot / unique_id that index it, ""
 * for none); deleted: the row is gone (no content). */
struct ledger_row {
	const char *table, *key;
	int64_t seq;
	int deleted;
	const char *content, *lot, *unique_id;
};
/* ledger_chain_push with the rows the events describe, in the same
 * transaction: a row replaces the ledger's only if its seq is newer, a
 * deleted one removes an older row (a push repeated changes nothing). */
ST_MUST_CHECK int ledger_chain_push_rows(struct ledger *l, const struct ledger_event *ev,
					 size_t n, const struct ledger_row *rows, size_t nrows,
					 int64_t local_head, struct errbuf *err);
/* Records contact (and the journal's head) without events. */
ST_MUST_CHECK int ledger_touch(struct ledger *l, int64_t local_head, struct errbuf *err);

struct ledger_station {
	char station_id[LEDGER_ID_LEN];
	int64_t head_seq, local_head;      /* lag = local_head - head_seq */
	double since_contact_s;
	char last_contact[40];
};
ST_MUST_CHECK int ledger_stations(struct ledger *l,
				  int (*fn)(const struct ledger_station *s, void *ctx), void *ctx,
				  struct errbuf *err);
/* Calls fn for every event of station_id in seq order (from seq 1). */
ST_MUST_CHECK int ledger_events(struct ledger *l, const char *station_id,
				int (*fn)(const struct ledger_event *e, void *ctx), void *ctx,
				struct errbuf *err);

/* ---- the rows (ledger_rows.c) ---- */

/* For every (table, key) of station_id: the latest row event of its chain in
 * the ledger after rows_from (event_seq 0 when none: event_h "") beside the
 * row the ledger holds (content NULL when none), ordered by table and key;
 * streamed (one row in memory).  *rows_from gets the station's. */
struct ledger_row_check {
	const char *table, *key;
	int64_t event_seq, row_seq;
	const char *event_h, *content, *lot;
};
ST_MUST_CHECK int ledger_rows_check(struct ledger *l, const char *station_id,
				    int64_t *rows_from,
				    int (*fn)(const struct ledger_row_check *r, void *ctx),
				    void *ctx, struct errbuf *err);
/* Every station's rows of lot (units, certificates, lots, allowlist) and
 * every profile, streamed: station, table, key, seq, content; in the order a
 * reader loads them: lots, allowlist, profiles, units (by started_ms, station,
 * unit id: the factory's order), certificates. */
struct ledger_row_at {
	const char *station_id, *table, *key, *content;
	int64_t seq;
};
ST_MUST_CHECK int ledger_rows_lot(struct ledger *l, const char *lot,
				  int (*fn)(const struct ledger_row_at *r, void *ctx), void *ctx,
				  struct errbuf *err);

/* The ids of lot's shared allowlist (the ledger's `allowlist`), streamed;
 * fn's non-zero return stops and is returned. */
ST_MUST_CHECK int ledger_allowlist_foreach(struct ledger *l, const char *lot,
					   int (*fn)(const char *unique_id, void *ctx), void *ctx,
					   struct errbuf *err);

/* ---- cross-station claims (ledger_claim.c) ---- */

/* The board is on this station now, for unit unit_id (an in_progress claim,
 * expiring after ttl_s).  ST_EPOLICY with ST_R_PROVISIONED_ELSEWHERE: another station
 * claimed or provisioned the id.  ST_EEXIST (ST_R_CLONE): another station
 * holds it now; both are clones (the other's hold is marked, it refuses at
 * ledger_claim).  other_station gets the other station's id. */
ST_MUST_CHECK int ledger_hold(struct ledger *l, const char *unique_id, int64_t unit_id, int ttl_s,
			      char other_station[LEDGER_ID_LEN], struct errbuf *err);
/* Before the certificate is signed: claims the id and the public key for this
 * station.  ST_EPOLICY with reason ST_R_PROVISIONED_ELSEWHERE (id claimed by
 * another station, or already committed: "already provisioned at station S"),
 * ST_R_KEY_SEEN (the key was certified for another id) or ST_R_CLONE (another
 * station holds the same id now).  rework: a committed claim of this station
 * may be taken again; the PASS it reworks is kept beside it (prev_*) until
 * the rework's own verdict. */
ST_MUST_CHECK int ledger_claim(struct ledger *l, const char *unique_id, const char *lot,
			       const char *pubkey_hash, int64_t unit_id, int rework,
			       char other_station[LEDGER_ID_LEN], struct errbuf *err);
/* Unit unit_id ended: passed → its claim is committed with its serial; else
 * its claim, if not committed, is released — or, for a rework, the PASS it
 * reworked is put back (the board stays provisioned here).  Only the claim
 * and the hold of that unit: a `done` retried late never touches a later
 * attempt's claim or hold of the same id.  Its hold goes either way. */
ST_MUST_CHECK int ledger_done(struct ledger *l, const char *unique_id, int64_t unit_id,
			      int passed, const char *serial, struct errbuf *err);
/* Start-up settling of a rework's claim (unit_id) whose unit never reached
 * its verdict while the board's earlier PASS stands: the PASS kept beside the
 * claim is put back; a claim from before schema 3 (nothing kept) is committed
 * with pass_serial.  The unit's hold goes. */
ST_MUST_CHECK int ledger_done_rework(struct ledger *l, const char *unique_id, int64_t unit_id,
				     const char *pass_serial, struct errbuf *err);
/* Reserves serials for this station in one transaction, before the station
 * reserves them itself (write-ahead): ST_EEXIST when one is taken (by any
 * station), and nothing is reserved. */
ST_MUST_CHECK int ledger_reserve_serials(struct ledger *l, const char *const *serials, size_t n,
					 struct errbuf *err);
/* Start-up: this station's holds (it has no unit in flight) go. */
ST_MUST_CHECK int ledger_release_holds(struct ledger *l, struct errbuf *err);

/* Calls fn for each claim of this station still `claimed` (not committed nor
 * released: the station stopped between claim and done), with the unit id it
 * was claimed for; fn may use l (ledger_done).  fn's non-zero return stops
 * the walk and is returned. */
ST_MUST_CHECK int ledger_open_claims(struct ledger *l,
				     int (*fn)(const char *unique_id, int64_t unit_id, void *ctx),
				     void *ctx, struct errbuf *err);

/* ---- a retired station's claims (ledger_settle.c) ---- */

struct ledger_settled {
	int64_t committed;         /* its unit-result in the ledger says pass */
	int64_t released;          /* a verdict other than pass (or unknown, released) */
	int64_t put_back;          /* a rework's: the PASS it reworked put back */
	int64_t released_unknown;  /* of released + put_back: no verdict, released */
	int64_t unknown;           /* no verdict in the ledger: left claimed */
	int64_t holds;             /* its holds removed */
	double since_contact_s;    /* -1: it never reached the ledger */
};

/* Settles the claims station_id left `claimed` (it will not start again) in
 * one transaction, by the verdict of the claimed unit in that station's own
 * chain in the ledger: pass → committed with its serial; any other verdict →
 * released, or a rework's PASS put back; no verdict → left claimed (the unit
 * may have a certificate on its board), released only with release_unknown.
 * Its holds go.  Refused: this station itself (its line's start settles
 * them), and a station that reached the ledger less than min_silence_s ago
 * (ST_EBUSY: it is alive). */
ST_MUST_CHECK int ledger_settle_station(struct ledger *l, const char *station_id,
					int min_silence_s, int release_unknown,
					struct ledger_settled *out, struct errbuf *err);

/* ---- the shared allowlists (ledger_claim.c) ---- */

/* Adds ids to lot's allowlist in one transaction (ids already there stay). */
ST_MUST_CHECK int ledger_allowlist_add(struct ledger *l, const char *lot, const char *const *ids,
				       size_t n, const char *actor, int64_t *added,
				       struct errbuf *err);
/* *count gets the number of ids on lot's allowlist in the ledger. */
ST_MUST_CHECK int ledger_allowlist_count(struct ledger *l, const char *lot, int64_t *count,
					 struct errbuf *err);
/* ST_OK: on the lot's allowlist; ST_ENOTFOUND: not. */
ST_MUST_CHECK int ledger_allowlist_contains(struct ledger *l, const char *lot,
					    const char *unique_id, struct errbuf *err);

/* ---- the shared profiles (ledger_profile.c) ---- */

/* Adds a profile's canonical text with its SHA-256 (hex, computed by the
 * caller); *added = 0 when that very text was there already. */
ST_MUST_CHECK int ledger_profile_put(struct ledger *l, const char *name, const char *content,
				     const char *sha256, const char *actor, int *added,
				     struct errbuf *err);
/* The newest text added under name (malloc'd, caller frees) and the SHA-256
 * recorded with it (the caller checks it).  ST_ENOTFOUND: none. */
ST_MUST_CHECK int ledger_profile_get(struct ledger *l, const char *name, char **content,
				     size_t *len, char sha256[65], struct errbuf *err);

/* Reads a password file with OpenSSH's StrictModes (the PIN file's rule). */
ST_MUST_CHECK int ledger_read_password(const char *path, char *out, size_t cap,
				       struct errbuf *err);

#endif
