/*
 * db: the station's SQLite database (lots, profiles, allowlist, units,
 * certificates, and the hash-chained audit log).  Schema: docs/database.md.
 *
 * Contract
 * - db_open() creates the file with mode 0600 if absent (db_open_ex() without
 *   DB_OPEN_CREATE refuses a missing one), applies forward-only
 *   migrations (PRAGMA user_version, one transaction each), and refuses a database
 *   whose version is newer than this binary (ST_ESCHEMA).  WAL, foreign_keys=ON,
 *   synchronous=FULL: a committed row survives power loss.
 * - One struct db may be shared by many threads: every call takes the handle's
 *   mutex, so calls are serialised.  Every statement is prepared; nothing in SQL
 *   text comes from input.
 * - Every call returns an st_rc and fills a caller-owned errbuf on failure.
 * - Calls that change configuration or certificate state also append an audit event
 *   in the same transaction, so the record and its audit row commit together.
 */
#ifndef STATION_DB_H
#define STATION_DB_H

#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"

struct db;

#define DB_SCHEMA_VERSION_MAX 64

ST_MUST_CHECK int  db_open(const char *path, const char *station_id, struct db **out,
			   struct errbuf *err);
/* db_open() with flags; without DB_OPEN_CREATE a path that does not exist is
 * ST_ENOTFOUND ("database X does not exist") and nothing is created.  db_open()
 * is db_open_ex(..., DB_OPEN_CREATE, ...): `station init` and the tests; every
 * other command opens without it.  station_id must follow ids_station_valid()
 * (core/ids.h).  With DB_OPEN_STORED_ID the handle takes the station id stored
 * in the database (db_station_init) and station_id is only the fallback for a
 * database that has none (created before ids were stored). */
#define DB_OPEN_CREATE    1u
#define DB_OPEN_STORED_ID 2u
ST_MUST_CHECK int  db_open_ex(const char *path, const char *station_id, unsigned flags,
			      struct db **out, struct errbuf *err);
/* Stores this handle's station id as the database's own, with a "station-init"
 * audit event by actor, in one transaction (`station init`).  ST_EEXIST when
 * the database already has one. */
ST_MUST_CHECK int db_station_init(struct db *db, const char *actor, struct errbuf *err);
/* The stored station id into out (size >= IDS_STATION_MAX + 1), "" when none. */
ST_MUST_CHECK int db_station_stored(struct db *db, char *out, size_t size, struct errbuf *err);
void db_close(struct db *db);
int  db_schema_version(struct db *db);
/* How many group-commit syncs of the WAL this handle made (tests, benchmarks). */
long db_wal_syncs(struct db *db);
const char *db_station_id(const struct db *db);
/* The path the handle was opened with. */
const char *db_path(const struct db *db);
/* The connection's PRAGMA synchronous (2 = FULL between commits), -1 on error
 * (tests: a group commit must leave the handle at FULL). */
int  db_synchronous(struct db *db);

/* Explicit transactions for callers that group several calls (e.g. an import).
 * Nested use is an error.  Calls made between begin and commit run inside it. */
ST_MUST_CHECK int db_begin(struct db *db, struct errbuf *err);
ST_MUST_CHECK int db_commit(struct db *db, struct errbuf *err);
void db_rollback(struct db *db);

/* ---- audit chain (db/audit.c) ------------------------------------------- */

/* Appends one event: per-station sequence number, UTC timestamp, kind, actor,
 * JSON detail (a compact JSON object, or NULL for {}), prev hash, own hash
 * (SHA-256 over the canonical encoding in docs/database.md).  Returns the new
 * sequence number in *seq_out (may be NULL). */
ST_MUST_CHECK int db_audit_append(struct db *db, const char *kind, const char *actor,
				  const char *detail_json, int64_t *seq_out, struct errbuf *err);

struct db_verify_result {
	int64_t events;            /* rows checked */
	int64_t bad_rowid;         /* first bad row (0 if ok) */
	int64_t bad_seq;           /* its sequence number */
	char    what[256];         /* "edited", "deleted", "inserted", "reordered", "sequence gap" + detail */
	int64_t checkpoints;       /* signed checkpoints verified */
	int64_t bad_checkpoint;    /* checkpoints.id that failed (0 if none) */
	char    station_id[64];    /* station whose chain is broken */
	char    checkpoint_key[65];/* SHA-256 hex of the last verified checkpoint's key DER */
	int64_t rows;              /* current rows checked against their row events */
	int64_t rows_bad;          /* rows that differ, are missing or have no event */
	char    row_table[32];     /* the first such row: table, key, field ("" unknown) */
	char    row_key[96];
	char    row_field[64];
};
/* Streams the whole chain in bounded memory.  ST_OK when intact; ST_ETAMPER with
 * *res naming the first bad row otherwise (docs/database.md lists the verdicts).
 * It holds this handle for the whole walk (about 6 s per million events): while
 * the line runs, verify from another handle or process (WAL: no one waits). */
ST_MUST_CHECK int db_audit_verify(struct db *db, struct db_verify_result *res, struct errbuf *err);

/* Same, and every checkpoint must be signed by this SubjectPublicKeyInfo (DER);
 * NULL accepts any EC key stored with the checkpoint. */
ST_MUST_CHECK int db_audit_verify_key(struct db *db, const uint8_t *trusted_pubkey_der,
				      size_t trusted_len,
				      struct db_verify_result *res, struct errbuf *err);

/* A tail walk of this station's chain (the handle's station id): from the row
 * at from_seq, which must hash to from_hash (an anchor known from outside the
 * database: the token's, the checkpoint log's), up to the head, every link and
 * every checkpoint on the way (signed by trusted when given).  from_seq 0: from
 * the chain's first row; from_seq < 0: from the newest checkpoint signed by
 * trusted (none: the first row).  Rows are not checked (db_audit_verify does).
 * ST_OK with the head walked in *head_seq / head_hash (0 and zeros for an empty
 * chain); ST_ETAMPER with res and err naming the break ("rolled back or
 * rewritten" when the anchor row is missing or differs). */
ST_MUST_CHECK int db_audit_verify_tail(struct db *db, int64_t from_seq,
				       const uint8_t from_hash[32], const uint8_t *trusted,
				       size_t trusted_len, struct db_verify_result *res,
				       int64_t *head_seq, uint8_t head_hash[32], struct errbuf *err);
/* The stored hash of this station's event at seq; ST_ENOTFOUND when none. */
ST_MUST_CHECK int db_audit_event_hash(struct db *db, int64_t seq, uint8_t hash[32],
				      struct errbuf *err);
/* How far this station's head is past its newest checkpoint: seqs (0 when
 * none) and the hours between the two events' timestamps. */
struct db_checkpoint_age {
	int64_t head_seq, checkpoint_seq;
	double  hours;
};
ST_MUST_CHECK int db_checkpoint_age(struct db *db, struct db_checkpoint_age *age,
				    struct errbuf *err);
/* 0 when sig is a valid checkpoint signature (the message above) by the EC key
 * pub_der; else -1 and *why (a checkpoint log line is checked with it). */
int db_checkpoint_signature_ok(const char *station_id, int64_t seq, const char head_hex[65],
			       const uint8_t *sig, size_t sig_len, const uint8_t *pub_der,
			       size_t pub_len, const char **why);

/* ---- one line per database (db/line_holder.c) ----------------------------
 * `station run` holds the database: an exclusive flock on "<db>.lock" (beside
 * it, O_CLOEXEC, released when the handle closes or the process dies), the
 * file naming the holder ("host H pid P since T (user U)").
 * db_line_acquire() takes it and writes nothing to the database, or returns
 * ST_EBUSY with err naming the holder.  db_line_record() (lock held: the
 * session, once its pre-flight passed) writes the line_holder row (host, pid,
 * since, actor; under the chain): the last line that ran, kept after it stops. */
ST_MUST_CHECK int db_line_acquire(struct db *db, const char *actor, struct errbuf *err);
ST_MUST_CHECK int db_line_record(struct db *db, const char *actor, struct errbuf *err);
/* 1 when this handle holds the line lock. */
int db_line_held(const struct db *db);

/* SHA-256 (hex) of a row's canonical encoding (docs/database.md "Rows under
 * the chain"); table must be in the audited list. */
ST_MUST_CHECK int db_row_digest(struct db *db, const char *table, const char *key,
				char hex[65], struct errbuf *err);

/* Head of the chain (for signed checkpoints): last seq and its hash (32 bytes). */
ST_MUST_CHECK int db_audit_head(struct db *db, int64_t *seq, uint8_t hash[32], struct errbuf *err);

/* Stores a signed checkpoint of this station's chain at seq.  The signature is
 * ECDSA-SHA256 (DER) by the EC key pubkey_der (SubjectPublicKeyInfo DER) over
 *   "station-audit-checkpoint-v1\n<station_id>\n<seq>\n<head_hash_hex>\n".
 * algorithm must be DB_CHECKPOINT_ALG.  Refused (ST_ECRYPTO / ST_ETAMPER /
 * ST_ENOTFOUND) unless the signature verifies and head_hash is the chain's hash
 * at seq. */
#define DB_CHECKPOINT_ALG "ecdsa-sha256"
ST_MUST_CHECK int db_checkpoint_add(struct db *db, int64_t seq, const uint8_t head_hash[32],
				    const char *key_label, const char *algorithm,
				    const uint8_t *sig,
				    size_t sig_len, const uint8_t *pubkey_der, size_t pubkey_len,
				    struct errbuf *err);

/* One audit row as listed; the strings live until fn returns. */
struct db_event {
	int64_t id, seq;
	const char *station_id, *ts, *kind, *actor, *detail, *hash;
};
/* Calls fn for each event in storage order, or only the last `tail` if tail > 0.
 * fn returns non-zero to stop.  The foreach functions hold the handle while they
 * run: fn may call other db_* functions but not the same foreach again. */
ST_MUST_CHECK int db_audit_foreach(struct db *db, int64_t tail,
				   int (*fn)(const struct db_event *e, void *ctx), void *ctx,
				   struct errbuf *err);

/* One event of this station's chain with its link (db/audit_since.c). */
struct db_chain_event {
	int64_t seq;
	const char *ts, *kind, *actor, *detail, *prev_hash, *hash;
};
/* Calls fn for this station's events with seq > after_seq, in seq order, at
 * most limit of them; fn returns non-zero to stop.  The strings live until fn
 * returns.  Holds the handle while it runs. */
ST_MUST_CHECK int db_audit_since(struct db *db, int64_t after_seq, int limit,
				 int (*fn)(const struct db_chain_event *e, void *ctx), void *ctx,
				 struct errbuf *err);
/* The chain's hash (64 lower-case hex) of an event with these fields, as
 * db/audit.c computes it: a ledger's copy of a chain is checked with it. */
ST_MUST_CHECK int db_audit_event_hash_hex(const char *station_id, int64_t seq, const char *ts,
					  const char *kind, const char *actor, const char *detail,
					  const char *prev_hash, char out[65]);

/* ---- lots and allowlist (db/allowlist.c) -------------------------------- */

/* Imports a manufacturer allowlist (CSV) for LOT in one transaction; see
 * docs/engineer.md.  On any bad row nothing is written and err names FILE:LINE.
 * If sig_path is set the detached signature over the file bytes must verify with
 * the manufacturer's signer certificate, which must chain to the manufacturer
 * CA mfr_ca_path with digitalSignature key usage (db/allowlist_sig.h); the
 * lot's CA is pinned by the SHA-256 its first signed import recorded.  The
 * audit event names the signer and both fingerprints.  *rows_out gets the number of ids imported; 0
 * (and ST_OK, nothing written) when this very file (same SHA-256) was already
 * imported for this lot. */
ST_MUST_CHECK int db_allowlist_import(struct db *db, const char *csv_path, const char *lot,
				      const char *sig_path, const char *mfr_cert_path,
				      const char *mfr_ca_path, const char *actor, int64_t *rows_out,
				      struct errbuf *err);

/* ST_OK if unique_id is on lot's allowlist, ST_ENOTFOUND if not. */
ST_MUST_CHECK int db_allowlist_contains(struct db *db, const char *lot, const char *unique_id,
					struct errbuf *err);
/* Number of ids allowed for lot (0 = the lot has no allowlist). */
ST_MUST_CHECK int db_allowlist_count(struct db *db, const char *lot, int64_t *count,
				     struct errbuf *err);
/* Calls fn for each id on lot's allowlist in import order; fn returns non-zero to stop. */
ST_MUST_CHECK int db_allowlist_foreach(struct db *db, const char *lot,
				       int (*fn)(const char *unique_id, void *ctx), void *ctx,
				       struct errbuf *err);

/* Calls fn for each lot the database knows (an allowlist or units), by name
 * (db/lots.c); fn returns non-zero to stop.  Holds the handle while it runs. */
ST_MUST_CHECK int db_lot_foreach(struct db *db, int (*fn)(const char *lot, void *ctx), void *ctx,
				 struct errbuf *err);

/* ---- profiles (db/profiles.c) ------------------------------------------ */

/* Stores a profile's canonical text under name with its SHA-256 (hex); a new
 * version number each time the content changes.  Parsing lives in station/. */
ST_MUST_CHECK int db_profile_store(struct db *db, const char *name, const char *content,
				   size_t len, const char *actor, int *version_out,
				   char hash_hex[65], struct errbuf *err);
/* Latest version of name: content is malloc'd, caller frees.  The content's
 * SHA-256 must be the row's and its profile-store event's: ST_ETAMPER naming
 * the profile otherwise (issue 12). */
ST_MUST_CHECK int db_profile_load(struct db *db, const char *name, char **content, size_t *len,
				  int *version, char hash_hex[65], struct errbuf *err);

/* One profile as listed: its latest version; the strings live until fn returns. */
struct db_profile_row {
	const char *name;
	int         version;
	const char *sha256;          /* hex */
	int64_t     created_ms;
	const char *created_by;
};
/* Calls fn for the latest version of each profile, by name; fn returns
 * non-zero to stop.  Holds the handle while it runs (as the other foreach). */
ST_MUST_CHECK int db_profile_foreach(struct db *db,
				     int (*fn)(const struct db_profile_row *r, void *ctx),
				     void *ctx,
				     struct errbuf *err);

/* ---- units (db/units.c) ------------------------------------------------ */

enum db_unit_status {
	DB_UNIT_IN_PROGRESS = 0,
	DB_UNIT_PASS,
	DB_UNIT_FAIL,
	DB_UNIT_REJECT,
	DB_UNIT_INTERRUPTED,       /* found in progress at start-up */
};

#define DB_UNIT_STAGE_MS_LEN 512

struct db_unit {
	int64_t id;
	char    unique_id[65];
	char    lot[65];
	char    bay[32];
	char    operator_name[64];
	char    station_id[64];
	char    profile_hash[65];
	char    firmware_hash[65];
	char    cert_serial[65];     /* hex, "" if none */
	char    pubkey_hash[65];     /* SHA-256 of the CSR's SubjectPublicKeyInfo DER */
	enum db_unit_status status;
	char    stage[32];           /* last stage reached (ev_stage_name) */
	char    reason[200];
	enum st_reason reason_code;  /* why it did not pass (stored as st_reason_name,
				      * '' for ST_R_NONE) */
	int64_t started_ms, finished_ms;
	/* what db_unit_finish() stores besides (migration 6): reason_plain, when
	 * empty, is made from stage and reason_code ("flash: the board stopped
	 * answering"); stage_ms is a JSON object of stage times in ms, stage
	 * order ({"detect":3,"identify":12,...}), "" when unknown; model and
	 * hw_revision come from the allowlist row of unique_id. */
	char    reason_plain[160];
	char    stage_ms[DB_UNIT_STAGE_MS_LEN];
};

/* "in-progress", "pass", "fail", "reject", "interrupted" (as stored). */
const char *db_unit_status_name(enum db_unit_status s);

/* Creates an in-progress unit row (durable before any work on the board).
 * Sets u->id and u->status; fills u->started_ms and u->station_id when unset. */
ST_MUST_CHECK int db_unit_begin(struct db *db, struct db_unit *u, struct errbuf *err);
/* Updates stage, the stage times so far (stage_ms, when filled) and any filled
 * hash/serial fields of an in-progress unit: a unit interrupted by a crash
 * keeps the times of the stages it finished. */
ST_MUST_CHECK int db_unit_update(struct db *db, const struct db_unit *u, struct errbuf *err);
/* The same, as a progress mark: written to the WAL without an fsync (survives
 * the process being killed; a power loss may lose it until the next full
 * commit makes it durable).  For stage marks, not for anything an invariant
 * rests on. */
ST_MUST_CHECK int db_unit_progress(struct db *db, const struct db_unit *u, struct errbuf *err);
/* Final verdict: status, stage, reason, reason code, finished time (now if 0) and any filled
 * hash/serial fields, with reason_plain, duration_ms (finished - started),
 * stage_ms, model and hw_revision; appends an audit event (actor: the
 * operator) whose detail carries them all (unit-result, docs/database.md).  ST_EEXIST
 * when the id already has a PASS unit; ST_ESTATE when u is not in progress. */
ST_MUST_CHECK int db_unit_finish(struct db *db, const struct db_unit *u, struct errbuf *err);
/* ST_OK + *found=1 if unique_id has a PASS unit (already provisioned). */
ST_MUST_CHECK int db_unit_provisioned(struct db *db, const char *unique_id, int *found,
				      struct errbuf *err);
/* *passed=1, serial its certificate's and *unit_id its id when unique_id has
 * a current PASS unit (not superseded by a rework); else *passed=0, serial "",
 * *unit_id 0. */
ST_MUST_CHECK int db_unit_pass_serial(struct db *db, const char *unique_id, int *passed,
				      char serial[65], int64_t *unit_id, struct errbuf *err);
/* Calls fn for each unit still IN_PROGRESS (crash recovery). */
ST_MUST_CHECK int db_unit_foreach_in_progress(struct db *db,
					      int (*fn)(const struct db_unit *u, void *ctx),
					      void *ctx,
					      struct errbuf *err);

/* ---- certificates (db/certs.c) ----------------------------------------- */

enum db_cert_status {
	DB_CERT_RESERVED = 0,  /* serial reserved before signing; may be signed, not recorded */
	DB_CERT_ISSUED,        /* signed, DER recorded, not yet confirmed on the board */
	DB_CERT_INJECTED,      /* on the board and its unit committed */
	DB_CERT_REVOKED,
	DB_CERT_VOID,          /* reserved, never signed, released by its issuer */
};

/* "reserved", "issued", "injected", "revoked", "void" (as stored). */
const char *db_cert_status_name(enum db_cert_status s);

#define DB_CERT_RESERVE_MAX 64
/* Reserves n (1..DB_CERT_RESERVE_MAX) fresh serials in one committed
 * transaction (the caller drew them from a CSPRNG).  A serial is reserved before
 * anything is signed with it, so a crash after signing leaves it 'reserved' and
 * recovery revokes it.  The row names no board yet.  ST_EEXIST if one is taken
 * (then none is reserved). */
ST_MUST_CHECK int db_cert_reserve(struct db *db, const char *const *serials, size_t n,
				  struct errbuf *err);
/* reserved -> issued: binds the serial to its unit (0 = none), hardware id and
 * public key hash, with the DER; committed and fsync'd before returning
 * (invariant 2), so never inside a caller's transaction.  ST_EEXIST if the
 * public key was already certified (a clone that raced this one). */
ST_MUST_CHECK int db_cert_issued(struct db *db, const char *serial_hex, int64_t unit_id,
				 const char *unique_id, const char *pubkey_hash,
				 const uint8_t *der, size_t der_len, struct errbuf *err);
/* reserved -> void for serials nothing was signed with (an issuer closing with
 * serials left); one transaction.  ST_ESTATE (none changed) if one is not a
 * reserved row without a board. */
ST_MUST_CHECK int db_cert_void(struct db *db, const char *const *serials, size_t n,
			       struct errbuf *err);
/* issued -> injected. */
ST_MUST_CHECK int db_cert_injected(struct db *db, const char *serial_hex, struct errbuf *err);
/* any but void -> revoked with reason (RFC 5280 name, e.g. "keyCompromise") and time. */
ST_MUST_CHECK int db_cert_revoke(struct db *db, const char *serial_hex, const char *reason,
				 const char *actor, struct errbuf *err);
/* The clone check (db/keys_seen.c): *seen = 1 when a certificate was issued
 * for this key, or another board than unique_id showed it in a CSR the
 * policy accepted (keys_seen: recorded by the unit writes, db_unit_progress
 * and db_unit_finish, from the unit's pubkey_hash). */
ST_MUST_CHECK int db_pubkey_seen_by_other(struct db *db, const char *pubkey_hash,
					  const char *unique_id, int *seen, struct errbuf *err);
/* ST_OK + *seen=1 if a certificate was ever issued for this public key hash. */
ST_MUST_CHECK int db_pubkey_seen(struct db *db, const char *pubkey_hash, int *seen,
				 struct errbuf *err);

struct db_cert_row {
	char    serial_hex[65];
	enum db_cert_status status;
	int64_t unit_id;
	char    revoke_reason[32];
	int64_t revoked_ms;
	char    unique_id[65];    /* "" while reserved (no board yet) */
};
/* Calls fn for each certificate with the given status (-1 = all), oldest
 * first, until fn returns non-zero.  fn runs under the handle's lock: it must
 * not call db_* itself. */
ST_MUST_CHECK int db_cert_foreach(struct db *db, int status,
				  int (*fn)(const struct db_cert_row *c, void *ctx), void *ctx,
				  struct errbuf *err);
/* The same for the certificates recorded for one unit (an index lookup). */
ST_MUST_CHECK int db_cert_foreach_unit(struct db *db, int64_t unit_id,
				       int (*fn)(const struct db_cert_row *c, void *ctx), void *ctx,
				       struct errbuf *err);

/* ---- CRL (db/crl.c) ------------------------------------------------------ */

/* One revocation, from a cert-revoked event of the chain. */
struct db_revoked {
	char    serial_hex[65];
	char    reason[32];
	int64_t revoked_ms;        /* the event's time */
};
/* Calls fn for each revocation the chain records, in chain order, until fn
 * returns non-zero: the CRL's content (never the certificates table's status
 * alone).  Holds the handle while it runs: fn must not call db_*. */
ST_MUST_CHECK int db_crl_foreach_revoked(struct db *db,
					 int (*fn)(const struct db_revoked *r, void *ctx),
					 void *ctx, struct errbuf *err);
/* Records the next CRL (an audited row of `crls` and a crl-issued event) and
 * returns its number: 1 more than the last, whatever the clock.  ST_ETAMPER
 * when the stored numbers are not 1..N or entries is fewer than the last CRL
 * listed (a serial would be dropped). */
ST_MUST_CHECK int db_crl_next(struct db *db, int64_t entries, const char *actor,
			      int64_t *number, struct errbuf *err);

#endif
