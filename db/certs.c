/*
 * certs: the certificate records behind invariant 2.
 *
 *   reserved --issued--> issued --injected--> injected
 *      |  \______________\______________\______--> revoked (any state but void)
 *      +--void (released unsigned)
 *
 * Serials are reserved in batches before anything is signed with them, and a
 * reserved row names no board: the issuer binds serial, unit, hardware id and
 * public key when it records the signed DER.  db_cert_issued() commits on its
 * own (never inside a caller's transaction) and returns only once its commit
 * is on disk, so the DER is durable before the certificate goes to the board;
 * it and db_cert_reserve() use the group commit of db_int.h (the WAL synced
 * outside the handle's lock), the hot path when several bays issue at once, and
 * the issued records of threads issuing together share one transaction
 * (db/certs_group.c).  Every
 * transition appends an audit event in the same transaction.
 * certificates_pubkey (UNIQUE) makes a public key certifiable once: the clone
 * check.
 */
#include "db/db_int.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static const char *const cert_status_names[] = {
	[DB_CERT_RESERVED] = "reserved",
	[DB_CERT_ISSUED]   = "issued",
	[DB_CERT_INJECTED] = "injected",
	[DB_CERT_REVOKED]  = "revoked",
	[DB_CERT_VOID]     = "void",
};
#define NCSTATUS ((int)(sizeof(cert_status_names) / sizeof(cert_status_names[0])))

/* RFC 5280 CRLReason names. */
static const char *const revoke_reasons[] = {
	"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
	"superseded", "cessationOfOperation", "certificateHold", "removeFromCRL",
	"privilegeWithdrawn", "aACompromise",
};

const char *db_cert_status_name(enum db_cert_status s)
{
	return (int)s >= 0 && (int)s < NCSTATUS ? cert_status_names[s] : "unknown";
}

static int cert_status_from_name(const char *s)
{
	for (int i = 0; s && i < NCSTATUS; i++)
		if (!strcmp(s, cert_status_names[i]))
			return i;
	return -1;
}

static const char SQL_RESERVE[] =
	"INSERT INTO certificates (serial, status, reserved_ms) VALUES (?, 'reserved', ?)";
static const char SQL_BY_PUBKEY[] = "SELECT serial FROM certificates WHERE pubkey_hash = ?";
static const char SQL_STATUS[] = "SELECT status FROM certificates WHERE serial = ?";
static const char SQL_ISSUE[] =
	"UPDATE certificates SET status = 'issued', unit_id = ?, unique_id = ?, pubkey_hash = ?,"
	" der = ?, issued_ms = ? WHERE serial = ? AND status = 'reserved' AND pubkey_hash IS NULL";
static const char SQL_VOID[] =
	"UPDATE certificates SET status = 'void'"
	" WHERE serial = ? AND status = 'reserved' AND pubkey_hash IS NULL";
static const char SQL_INJECT[] =
	"UPDATE certificates SET status = 'injected', injected_ms = ?"
	" WHERE serial = ? AND status = 'issued'";
static const char SQL_REVOKE[] =
	"UPDATE certificates SET status = 'revoked', revoked_ms = ?, revoke_reason = ?"
	" WHERE serial = ? AND status NOT IN ('revoked', 'void')";
static const char SQL_FOREACH_UNIT[] =
	"SELECT serial, status, coalesce(unit_id, 0), coalesce(revoke_reason, ''),"
	" coalesce(revoked_ms, 0), coalesce(unique_id, '') FROM certificates"
	" WHERE unit_id = ? ORDER BY reserved_ms, serial";
static const char SQL_FOREACH[] =
	"SELECT serial, status, coalesce(unit_id, 0), coalesce(revoke_reason, ''),"
	" coalesce(revoked_ms, 0), coalesce(unique_id, '') FROM certificates"
	" WHERE ?1 = '' OR status = ?1 ORDER BY reserved_ms, serial";

/* The serials of a batch call, checked, as a JSON array for its audit event. */
static int serial_batch(const char *const *serials, size_t n, json_t **out, struct errbuf *err)
{
	json_t *a;

	*out = NULL;
	if (!serials || n < 1 || n > DB_CERT_RESERVE_MAX)
		return errbuf_set(err, ST_EINVAL, "a batch of 1..%d certificate serials expected",
				  DB_CERT_RESERVE_MAX);
	for (size_t i = 0; i < n; i++)
		if (!ids_serial_valid(serials[i]))
			return errbuf_set(err, ST_EINVAL,
					  "certificate serial must be lower-case hex without leading zeros");
	if (!(a = json_array()))
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(a, json_string(serials[i]))) {
			json_decref(a);
			return errbuf_set(err, ST_ENOMEM, "out of memory");
		}
	*out = a;
	return ST_OK;
}

static int reserve_locked(struct db *db, const char *const *serials, size_t n,
			  json_t *list, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, SQL_RESERVE, err);
	int64_t now = clock_realtime_ms();
	int rc;

	if (!st) {
		json_decref(list);
		return ST_EDB;
	}
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_text(st, 1, serials[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE) {
			json_decref(list);
			rc = db_sqlerr(db, rc, err, "reserve certificate serial");
			if (rc == ST_EEXIST)
				rc = errbuf_set(err, ST_EEXIST, "certificate serial %s is taken", serials[i]);
			return rc;
		}
		if ((rc = db_row_audit_locked(db, "certificates", serials[i], "station", err))) {
			json_decref(list);
			return rc;
		}
	}
	return db_audit_json_locked(db, "cert-reserved", "station", json_pack("{s:o}", "serials", list), err);
}

int db_cert_reserve(struct db *db, const char *const *serials, size_t n, struct errbuf *err)
{
	json_t *list;
	int owned, rc;

	if ((rc = serial_batch(serials, n, &list, err)))
		return rc;
	db_lock(db);
	if (!(rc = db_txn_begin_synced(db, &owned, err))) {
		rc = reserve_locked(db, serials, n, list, err);
		rc = db_txn_end_synced(db, owned, rc, err);
	} else {
		json_decref(list);
	}
	db_unlock(db);
	/* durable before anything is signed with these serials */
	if (rc == ST_OK && owned)
		rc = db_wal_sync(db, err);
	return rc;
}

/* After an UPDATE guarded by status changed nothing: why. */
static int wrong_state(struct db *db, const char *serial, const char *wanted, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, SQL_STATUS, err);
	int rc;

	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = errbuf_set(err, ST_ESTATE, "certificate %s is %s, not %s", serial,
				(const char *)sqlite3_column_text(st, 0), wanted);
	else if (rc == SQLITE_DONE)
		rc = errbuf_set(err, ST_ENOTFOUND, "no certificate with serial %s", serial);
	else
		rc = db_sqlerr(db, rc, err, "read certificate");
	sqlite3_reset(st);
	return rc;
}

/* Runs one guarded UPDATE (already bound); the caller appends the audit event. */
static int step_guarded(struct db *db, sqlite3_stmt *st, const char *serial,
			const char *wanted, const char *what, const char *actor, struct errbuf *err)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_sqlerr(db, rc, err, what);
	if (sqlite3_changes(db->sq) == 0)
		return wrong_state(db, serial, wanted, err);
	return db_row_audit_locked(db, "certificates", serial, actor, err);
}

/* One guarded UPDATE (already bound) and its audit event. */
static int transition_locked(struct db *db, sqlite3_stmt *st, const char *serial,
			     const char *wanted, const char *kind, const char *actor,
			     json_t *detail, struct errbuf *err)
{
	int rc = step_guarded(db, st, serial, wanted, kind, actor, err);

	if (rc) {
		json_decref(detail);
		return rc;
	}
	return db_audit_json_locked(db, kind, actor, detail, err);
}

/* The public key is certified already: name the serial that holds it. */
static int pubkey_taken(struct db *db, const char *pubkey_hash, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, SQL_BY_PUBKEY, err);
	int rc = ST_EEXIST;

	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, pubkey_hash, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		rc = errbuf_set(err, ST_EEXIST,
				"public key %.16s... was already certified (serial %s): refusing it again",
				pubkey_hash, (const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	return rc;
}

int db_cert_issued_locked(struct db *db, const char *serial_hex, int64_t unit_id,
			  const char *unique_id, const char *pubkey_hash,
			  const uint8_t *der, size_t der_len, struct errbuf *err)
{
	uint8_t sha[32];
	char hex[65];
	unsigned int sl = 0;
	sqlite3_stmt *st = db_stmt(db, SQL_ISSUE, err);
	int rc;

	if (!st)
		return ST_EDB;
	EVP_Digest(der, der_len, sha, &sl, EVP_sha256(), NULL);
	hex_encode(sha, 32, hex);
	if (unit_id > 0)
		sqlite3_bind_int64(st, 1, unit_id);
	else
		sqlite3_bind_null(st, 1);
	sqlite3_bind_text(st, 2, unique_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, pubkey_hash, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, der, (int)der_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, clock_realtime_ms());
	sqlite3_bind_text(st, 6, serial_hex, -1, SQLITE_STATIC);
	rc = step_guarded(db, st, serial_hex, "reserved for a board", "record certificate", "station", err);
	if (rc == ST_EEXIST)
		return pubkey_taken(db, pubkey_hash, err);
	if (rc)
		return rc;
	return db_audit_json_locked(db, "cert-issued", "station",
			  json_pack("{s:s, s:I, s:s, s:s, s:s}", "serial", serial_hex,
				    "unit", (json_int_t)unit_id, "unique_id", unique_id,
				    "pubkey_hash", pubkey_hash, "der_sha256", hex), err);
}

int db_cert_void(struct db *db, const char *const *serials, size_t n, struct errbuf *err)
{
	sqlite3_stmt *st;
	json_t *list;
	int owned, rc;

	if ((rc = serial_batch(serials, n, &list, err)))
		return rc;
	db_lock(db);
	if (!(rc = db_txn_begin(db, &owned, err))) {
		if (!(st = db_stmt(db, SQL_VOID, err)))
			rc = ST_EDB;
		for (size_t i = 0; !rc && i < n; i++) {
			sqlite3_bind_text(st, 1, serials[i], -1, SQLITE_STATIC);
			rc = step_guarded(db, st, serials[i], "reserved and unsigned", "void certificate serial", "station", err);
		}
		if (!rc) {
			rc = db_audit_json_locked(db, "cert-voided", "station", json_pack("{s:o}", "serials", list), err);
			list = NULL;
		}
		rc = db_txn_end(db, owned, rc, err);
	}
	json_decref(list);
	db_unlock(db);
	return rc;
}

int db_cert_injected(struct db *db, const char *serial_hex, struct errbuf *err)
{
	sqlite3_stmt *st;
	int owned, rc;

	db_lock(db);
	if (!(rc = db_txn_begin(db, &owned, err))) {
		if (!(st = db_stmt(db, SQL_INJECT, err))) {
			rc = ST_EDB;
		} else {
			sqlite3_bind_int64(st, 1, clock_realtime_ms());
			sqlite3_bind_text(st, 2, serial_hex, -1, SQLITE_STATIC);
			rc = transition_locked(db, st, serial_hex, "issued", "cert-injected", "station",
					       json_pack("{s:s}", "serial", serial_hex), err);
		}
		rc = db_txn_end(db, owned, rc, err);
	}
	db_unlock(db);
	return rc;
}

int db_cert_revoke(struct db *db, const char *serial_hex, const char *reason,
		   const char *actor, struct errbuf *err)
{
	sqlite3_stmt *st;
	size_t i;
	int owned, rc;

	for (i = 0; reason && i < sizeof(revoke_reasons) / sizeof(revoke_reasons[0]); i++)
		if (!strcmp(reason, revoke_reasons[i]))
			break;
	if (!reason || i == sizeof(revoke_reasons) / sizeof(revoke_reasons[0]))
		return errbuf_set(err, ST_EINVAL, "revocation reason must be an RFC 5280 name (e.g. keyCompromise, superseded)");
	db_lock(db);
	if (!(rc = db_txn_begin(db, &owned, err))) {
		if (!(st = db_stmt(db, SQL_REVOKE, err))) {
			rc = ST_EDB;
		} else {
			sqlite3_bind_int64(st, 1, clock_realtime_ms());
			sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, serial_hex, -1, SQLITE_STATIC);
			rc = transition_locked(db, st, serial_hex, "revocable",
					       "cert-revoked", actor && *actor ? actor : "station",
					       json_pack("{s:s, s:s}", "serial", serial_hex,
							 "reason", reason), err);
		}
		rc = db_txn_end(db, owned, rc, err);
	}
	db_unlock(db);
	return rc;
}

int db_pubkey_seen(struct db *db, const char *pubkey_hash, int *seen, struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	*seen = 0;
	db_lock(db);
	if (!(st = db_stmt(db, SQL_BY_PUBKEY, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	sqlite3_bind_text(st, 1, pubkey_hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		*seen = rc == SQLITE_ROW;
		rc = ST_OK;
	} else {
		rc = db_sqlerr(db, rc, err, "look up public key");
	}
	sqlite3_reset(st);
	db_unlock(db);
	return rc;
}

/* Runs a bound listing, calling fn per row until it returns non-zero. */
static int foreach_rows(struct db *db, sqlite3_stmt *st,
			int (*fn)(const struct db_cert_row *c, void *ctx), void *ctx,
			struct errbuf *err)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_cert_row c;

		memset(&c, 0, sizeof(c));
		snprintf(c.serial_hex, sizeof(c.serial_hex), "%s",
			 (const char *)sqlite3_column_text(st, 0));
		c.status = (enum db_cert_status)cert_status_from_name(
				(const char *)sqlite3_column_text(st, 1));
		c.unit_id = sqlite3_column_int64(st, 2);
		snprintf(c.revoke_reason, sizeof(c.revoke_reason), "%s",
			 (const char *)sqlite3_column_text(st, 3));
		c.revoked_ms = sqlite3_column_int64(st, 4);
		snprintf(c.unique_id, sizeof(c.unique_id), "%s",
			 (const char *)sqlite3_column_text(st, 5));
		if (fn(&c, ctx)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "list certificates");
}

int db_cert_foreach(struct db *db, int status,
		    int (*fn)(const struct db_cert_row *c, void *ctx), void *ctx,
		    struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	if (status != -1 && (status < 0 || status >= NCSTATUS))
		return errbuf_set(err, ST_EINVAL, "no certificate status %d", status);
	db_lock(db);
	if (!(st = db_stmt(db, SQL_FOREACH, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	sqlite3_bind_text(st, 1, status < 0 ? "" : cert_status_names[status], -1, SQLITE_STATIC);
	rc = foreach_rows(db, st, fn, ctx, err);
	db_unlock(db);
	return rc;
}

int db_cert_foreach_unit(struct db *db, int64_t unit_id,
			 int (*fn)(const struct db_cert_row *c, void *ctx), void *ctx,
			 struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	db_lock(db);
	if (!(st = db_stmt(db, SQL_FOREACH_UNIT, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	sqlite3_bind_int64(st, 1, unit_id);
	rc = foreach_rows(db, st, fn, ctx, err);
	db_unlock(db);
	return rc;
}
