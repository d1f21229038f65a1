/*
 * verify: `station audit verify` as one read transaction (a consistent
 * snapshot while the line keeps appending): the chain and its checkpoints
 * (db/audit.c), then, only if they are intact, every audited row against its
 * latest row event (db/rows_verify.c).  See db.h and docs/database.md.
 */
#include "db/db_int.h"

int db_audit_verify_impl(struct db *db, const uint8_t *trusted, size_t trusted_len, int rows,
			 struct db_verify_result *res, struct errbuf *err)
{
	int rc;

	db_lock(db);
	if ((rc = sqlite3_exec(db->sq, db->in_txn ? "SELECT 1" : "BEGIN", NULL, NULL, NULL))) {
		rc = db_sqlerr(db, rc, err, "begin read");
		db_unlock(db);
		return rc;
	}
	rc = db_audit_chain_verify_locked(db, trusted, trusted_len, res, err);
	if (rc == ST_OK && rows)
		rc = db_rows_verify_locked(db, res, err);
	if (!db->in_txn)
		sqlite3_exec(db->sq, "COMMIT", NULL, NULL, NULL);
	db_unlock(db);
	return rc;
}

int db_audit_verify_key(struct db *db, const uint8_t *trusted_pubkey_der, size_t trusted_len,
			struct db_verify_result *res, struct errbuf *err)
{
	return db_audit_verify_impl(db, trusted_pubkey_der, trusted_len, 1, res, err);
}

int db_audit_verify(struct db *db, struct db_verify_result *res, struct errbuf *err)
{
	return db_audit_verify_key(db, NULL, 0, res, err);
}
