/*
 * certs: the certificate records behind invariant 2.
 *
 *   reserved --issued--> issued --injected--> injected
 *       \________________\______________\______--> revoked (any state)
 *
 * db_cert_issued() commits on its own (never inside a caller's transaction) so
 * that, with synchronous=FULL, the DER is on disk before the certificate goes
 * to the board.  Every transition appends an audit event in the same
 * transaction.  certificates_pubkey (UNIQUE) makes a public key certifiable
 * once: the clone check.
 */
#include "db_int.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static const char *const cert_status_names[] = {
	[DB_CERT_RESERVED] = "reserved",
	[DB_CERT_ISSUED]   = "issued",
	[DB_CERT_INJECTED] = "injected",
	[DB_CERT_REVOKED]  = "revoked",
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

/* Lower-case hex, 1..64 digits, no leading zero (COMMON.md serials). */
static int valid_serial(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > 64 || (s[0] == '0' && n > 1))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static int valid_hash_hex(const char *s)
{
	uint8_t b[32];

	return s && !db_unhex32(s, strlen(s), b);
}

static int audit_cert(struct db *db, const char *kind, const char *actor,
		      json_t *j, struct errbuf *err)
{
	char *detail = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	int rc;

	json_decref(j);
	if (!detail)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	rc = db_audit_append_locked(db, kind, actor, detail, NULL, err);
	free(detail);
	return rc;
}

static const char SQL_RESERVE[] =
	"INSERT INTO certificates (serial, unit_id, unique_id, pubkey_hash, status, reserved_ms)"
	" VALUES (?, ?, ?, ?, 'reserved', ?)";
static const char SQL_BY_PUBKEY[] = "SELECT serial FROM certificates WHERE pubkey_hash = ?";
static const char SQL_STATUS[] = "SELECT status FROM certificates WHERE serial = ?";
static const char SQL_ISSUE[] =
	"UPDATE certificates SET status = 'issued', der = ?, issued_ms = ?"
	" WHERE serial = ? AND status = 'reserved'";
static const char SQL_INJECT[] =
	"UPDATE certificates SET status = 'injected', injected_ms = ?"
	" WHERE serial = ? AND status = 'issued'";
static const char SQL_REVOKE[] =
	"UPDATE certificates SET status = 'revoked', revoked_ms = ?, revoke_reason = ?"
	" WHERE serial = ? AND status <> 'revoked'";
static const char SQL_FOREACH[] =
	"SELECT serial, status, coalesce(unit_id, 0), coalesce(revoke_reason, ''),"
	" coalesce(revoked_ms, 0) FROM certificates WHERE ?1 = '' OR status = ?1"
	" ORDER BY reserved_ms, serial";

static int reserve_locked(struct db *db, const char *serial, int64_t unit_id,
			  const char *unique_id, const char *pubkey_hash, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, SQL_RESERVE, err);
	int rc;

	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	if (unit_id > 0)
		sqlite3_bind_int64(st, 2, unit_id);
	else
		sqlite3_bind_null(st, 2);
	sqlite3_bind_text(st, 3, unique_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, pubkey_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, db_now_ms());
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return audit_cert(db, "cert-reserved", "station",
				  json_pack("{s:s, s:I, s:s, s:s}", "serial", serial,
					    "unit", (json_int_t)unit_id, "unique_id", unique_id,
					    "pubkey_hash", pubkey_hash), err);
	rc = db_sqlerr(db, rc, err, "reserve certificate");
	if (rc != ST_EEXIST)
		return rc;
	/* Which uniqueness: the key (a clone) or the serial (a collision)? */
	if ((st = db_stmt(db, SQL_BY_PUBKEY, err))) {
		sqlite3_bind_text(st, 1, pubkey_hash, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			rc = errbuf_set(err, ST_EEXIST,
					"public key %.16s... was already certified (serial %s): refusing it again",
					pubkey_hash, (const char *)sqlite3_column_text(st, 0));
		else
			rc = errbuf_set(err, ST_EEXIST, "certificate serial %s is taken", serial);
		sqlite3_reset(st);
	}
	return rc;
}

int db_cert_reserve(struct db *db, const char *serial_hex, int64_t unit_id,
		    const char *unique_id, const char *pubkey_hash, struct errbuf *err)
{
	int owned, rc;

	if (!valid_serial(serial_hex))
		return errbuf_set(err, ST_EINVAL, "certificate serial must be lower-case hex without leading zeros");
	if (!valid_hash_hex(pubkey_hash))
		return errbuf_set(err, ST_EINVAL, "public key hash must be 64 lower-case hex digits");
	if (!unique_id || !*unique_id)
		return errbuf_set(err, ST_EINVAL, "certificate without a unique id");
	db_lock(db);
	if (!(rc = db_txn_begin(db, &owned, err))) {
		rc = reserve_locked(db, serial_hex, unit_id, unique_id, pubkey_hash, err);
		rc = db_txn_end(db, owned, rc, err);
	}
	db_unlock(db);
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

/* Runs one guarded UPDATE (already bound) and its audit event. */
static int transition_locked(struct db *db, sqlite3_stmt *st, const char *serial,
			     const char *wanted, const char *kind, const char *actor,
			     json_t *detail, struct errbuf *err)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		json_decref(detail);
		return db_sqlerr(db, rc, err, kind);
	}
	if (sqlite3_changes(db->sq) == 0) {
		json_decref(detail);
		return wrong_state(db, serial, wanted, err);
	}
	return audit_cert(db, kind, actor, detail, err);
}

int db_cert_issued(struct db *db, const char *serial_hex, const uint8_t *der, size_t der_len,
		   struct errbuf *err)
{
	uint8_t sha[32];
	char hex[65];
	unsigned int sl = 0;
	sqlite3_stmt *st;
	int owned, rc;

	if (!valid_serial(serial_hex))
		return errbuf_set(err, ST_EINVAL, "certificate serial must be lower-case hex without leading zeros");
	if (!der || !der_len || der_len > 64 * 1024)
		return errbuf_set(err, ST_EINVAL, "certificate %s: DER missing or too long", serial_hex);
	EVP_Digest(der, der_len, sha, &sl, EVP_sha256(), NULL);
	db_hex(sha, 32, hex);
	db_lock(db);
	/* Durable before the board sees it: our own commit, never a caller's. */
	if (db->in_txn) {
		db_unlock(db);
		return errbuf_set(err, ST_ESTATE,
				  "certificate %s: db_cert_issued must commit on its own, not inside a transaction",
				  serial_hex);
	}
	if (!(rc = db_txn_begin(db, &owned, err))) {
		if (!(st = db_stmt(db, SQL_ISSUE, err))) {
			rc = ST_EDB;
		} else {
			sqlite3_bind_blob(st, 1, der, (int)der_len, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, db_now_ms());
			sqlite3_bind_text(st, 3, serial_hex, -1, SQLITE_STATIC);
			rc = transition_locked(db, st, serial_hex, "reserved", "cert-issued", "station",
					       json_pack("{s:s, s:s}", "serial", serial_hex,
							 "der_sha256", hex), err);
		}
		rc = db_txn_end(db, owned, rc, err);
	}
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
			sqlite3_bind_int64(st, 1, db_now_ms());
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
			sqlite3_bind_int64(st, 1, db_now_ms());
			sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, serial_hex, -1, SQLITE_STATIC);
			rc = transition_locked(db, st, serial_hex, "revocable (it is already revoked)",
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
		if (fn(&c, ctx)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	rc = rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "list certificates");
	db_unlock(db);
	return rc;
}
