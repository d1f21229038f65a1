/*
 * checkpoint: signed heads of the audit chain.
 *
 * The HSM module signs
 *   "station-audit-checkpoint-v1\n<station_id>\n<seq>\n<head_hash_hex>\n"
 * with the token's audit key (ECDSA-SHA256, DER) and stores it here.  A
 * checkpoint is refused unless its signature verifies and its head is the
 * chain's hash at that seq; db_audit_verify() checks them all again (audit.c).
 */
#include "db/db_int.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define LABEL_MAX      64

static int valid_label(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > LABEL_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* The signed message: COMMON.md "Audit checkpoint signature". */
static const char SQL_EVENT_HASH_AT[] =
	"SELECT hash FROM events WHERE station_id = ? AND seq = ?";
static const char SQL_INSERT_CHECKPOINT[] =
	"INSERT INTO checkpoints (station_id, seq, head_hash, ts, key_label, algorithm,"
	" signature, pubkey_der) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

int db_checkpoint_add(struct db *db, int64_t seq, const uint8_t head_hash[32],
		      const char *key_label, const char *algorithm, const uint8_t *sig,
		      size_t sig_len, const uint8_t *pubkey_der, size_t pubkey_len,
		      struct errbuf *err)
{
	char head_hex[65], ts[32];
	const char *why;
	sqlite3_stmt *st;
	int rc, owned = 0;

	if (!valid_label(key_label))
		return errbuf_set(err, ST_EINVAL, "checkpoint key label must be 1..%d printable characters",
				  LABEL_MAX);
	if (!algorithm || strcasecmp(algorithm, DB_CHECKPOINT_ALG))
		return errbuf_set(err, ST_EINVAL, "checkpoint algorithm must be %s",
				  DB_CHECKPOINT_ALG);
	if (!sig || !sig_len || sig_len > 1024 || !pubkey_der || !pubkey_len || pubkey_len > 4096)
		return errbuf_set(err, ST_EINVAL, "checkpoint signature or public key missing or too long");
	hex_encode(head_hash, 32, head_hex);
	if (db_checkpoint_sig_ok(db->station_id, seq, head_hex, sig, sig_len, pubkey_der,
			      pubkey_len, &why))
		return errbuf_set(err, ST_ECRYPTO, "checkpoint at seq %lld: %s",
				  (long long)seq, why);

	db_lock(db);
	if ((rc = db_txn_begin(db, &owned, err)))
		goto out;
	if (!(st = db_stmt(db, SQL_EVENT_HASH_AT, err))) {
		rc = ST_EDB;
		goto out_txn;
	}
	sqlite3_bind_text(st, 1, db->station_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		rc = errbuf_set(err, ST_ENOTFOUND, "checkpoint: no audit event with seq %lld",
				(long long)seq);
		goto out_txn;
	}
	if (rc != SQLITE_ROW) {
		rc = db_sqlerr(db, rc, err, "read audit event");
		goto out_txn;
	}
	if (strcmp((const char *)sqlite3_column_text(st, 0), head_hex)) {
		sqlite3_reset(st);
		rc = errbuf_set(err, ST_ETAMPER,
				"checkpoint: head hash does not match audit event seq %lld",
				(long long)seq);
		goto out_txn;
	}
	sqlite3_reset(st);
	if (!(st = db_stmt(db, SQL_INSERT_CHECKPOINT, err))) {
		rc = ST_EDB;
		goto out_txn;
	}
	clock_iso_ms(clock_realtime_ms(), ts);
	sqlite3_bind_text(st, 1, db->station_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_text(st, 3, head_hex, 64, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, ts, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, key_label, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, DB_CHECKPOINT_ALG, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 7, sig, (int)sig_len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 8, pubkey_der, (int)pubkey_len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		rc = db_sqlerr(db, rc, err, "store checkpoint");
		goto out_txn;
	}
	rc = db_row_audit_id_locked(db, "checkpoints", sqlite3_last_insert_rowid(db->sq),
				    "station", err);
out_txn:
	rc = db_txn_end(db, owned, rc, err);
out:
	db_unlock(db);
	return rc;
}
