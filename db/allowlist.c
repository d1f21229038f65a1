/*
 * allowlist: lots and the manufacturer's list of hardware ids per lot (the
 * storage; the file format is db/allowlist_csv.c).
 *
 * Import order (invariant 8: a bad file is rejected whole, nothing written):
 *   1. read the file (regular file, at most ALLOW_FILE_MAX bytes);
 *   2. verify the detached signature over those bytes, when given: the
 *      signer chains to the manufacturer CA (db/allowlist_sig.c), and that
 *      CA is the lot's: the first signed import of a lot pins the CA's
 *      SHA-256 (in its audit event), later ones must present the same CA;
 *   3. parse it (allowlist_csv_parse), inserting each row inside one
 *      transaction;
 *   4. any bad row rolls the transaction back; otherwise an audit event
 *      (actor, file SHA-256, rows, lot, signer) commits with the rows.
 * Duplicates are caught by the UNIQUE index on allowlist.unique_id: rows
 * inserted by this import have ids above the table's maximum before it, which
 * tells "twice in this file" from "already imported".
 */
#include "db/db_int.h"
#include "db/allowlist_csv.h"
#include "db/allowlist_sig.h"
#include "core/certfile.h"
#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ALLOW_FILE_MAX  (64u * 1024 * 1024)

struct import {
	struct db     *db;
	const char    *path, *lot;
	int64_t        lot_id, base_id, rows;
	char           sha_hex[65];
	const char    *actor;
	sqlite3_stmt  *ins;
};

static const char SQL_DUP[] =
	"SELECT a.id, a.line, l.name, a.import_sha256 FROM allowlist a"
	" JOIN lots l ON l.id = a.lot_id WHERE a.unique_id = ?";

static int explain_duplicate(struct import *im, const struct allowlist_row *row,
			     struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(im->db, SQL_DUP, err);
	const char *uid = row->unique_id;
	char s1[48], s2[48];
	int rc;

	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return allowlist_csv_fail(row, err, ST_EEXIST, "unique id %s rejected as a duplicate",
					  uid);
	}
	if (sqlite3_column_int64(st, 0) > im->base_id)
		rc = allowlist_csv_fail(row, err, ST_EEXIST,
					"duplicate unique id %s (first on line %lld of this file)",
					uid, (long long)sqlite3_column_int64(st, 1));
	else
		rc = allowlist_csv_fail(row, err, ST_EEXIST,
					"unique id %s was already imported for lot %s (line %lld of file sha256 %.16s...)",
					uid, allowlist_csv_shown((const char *)sqlite3_column_text(st, 2), s1),
					(long long)sqlite3_column_int64(st, 1),
					allowlist_csv_shown((const char *)sqlite3_column_text(st, 3), s2));
	sqlite3_reset(st);
	return rc;
}

/* allowlist_row_fn: one checked row into the import's transaction. */
static int insert_row(const struct allowlist_row *row, void *ctx, struct errbuf *err)
{
	struct import *im = ctx;
	int rc;

	sqlite3_reset(im->ins);
	sqlite3_bind_int64(im->ins, 1, im->lot_id);
	sqlite3_bind_text(im->ins, 2, row->unique_id, IDS_UID_LEN, SQLITE_STATIC);
	sqlite3_bind_text(im->ins, 3, im->sha_hex, 64, SQLITE_STATIC);
	sqlite3_bind_int64(im->ins, 4, row->line);
	sqlite3_bind_text(im->ins, 5, row->model, -1, SQLITE_STATIC);
	sqlite3_bind_text(im->ins, 6, row->hw_revision, -1, SQLITE_STATIC);
	rc = sqlite3_step(im->ins);
	sqlite3_reset(im->ins);
	if (rc == SQLITE_DONE)
		return db_row_audit_id_locked(im->db, "allowlist", sqlite3_last_insert_rowid(im->db->sq),
					      im->actor, err);
	if (db_sqlerr(im->db, rc, err, "insert allowlist row") == ST_EEXIST)
		return explain_duplicate(im, row, err);
	return ST_EDB;
}

static const char SQL_LOT_INSERT[] =
	"INSERT INTO lots (name, created_ms) VALUES (?, ?) ON CONFLICT (name) DO NOTHING";
static const char SQL_LOT_ID[] = "SELECT id FROM lots WHERE name = ?";
static const char SQL_ALLOW_MAX[] = "SELECT coalesce(max(id), 0) FROM allowlist";
static const char SQL_ALLOW_INSERT[] =
	"INSERT INTO allowlist (lot_id, unique_id, import_sha256, line, model, hw_revision)"
	" VALUES (?, ?, ?, ?, ?, ?)";

static int lot_id_locked(struct db *db, const char *lot, int create, int64_t *id,
			 struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc, created = 0;

	if (create) {
		if (!(st = db_stmt(db, SQL_LOT_INSERT, err)))
			return ST_EDB;
		sqlite3_bind_text(st, 1, lot, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, clock_realtime_ms());
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return db_sqlerr(db, rc, err, "create lot");
		created = sqlite3_changes(db->sq) > 0;
	}
	if (!(st = db_stmt(db, SQL_LOT_ID, err)))
		return ST_EDB;
	sqlite3_bind_text(st, 1, lot, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		return created ? db_row_audit_id_locked(db, "lots", *id, "station", err) : ST_OK;
	}
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return errbuf_set(err, ST_ENOTFOUND, "no lot %s", lot);
	return db_sqlerr(db, rc, err, "find lot");
}

static const char SQL_SAME_FILE[] =
	"SELECT 1 FROM allowlist a JOIN lots l ON l.id = a.lot_id"
	" WHERE l.name = ? AND a.import_sha256 = ? LIMIT 1";

/* 1 when this very file (same SHA-256) is already imported for the lot. */
static int same_file_locked(struct import *im, int *same, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(im->db, SQL_SAME_FILE, err);
	int rc;

	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, im->lot, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, im->sha_hex, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	*same = rc == SQLITE_ROW;
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? ST_OK :
	       db_sqlerr(im->db, rc, err, "read allowlist");
}

static const char SQL_LOT_CA[] =
	"SELECT json_extract(detail, '$.manufacturer_ca_sha256') FROM events"
	" WHERE kind = 'allowlist-import' AND json_extract(detail, '$.lot') = ?"
	" AND json_extract(detail, '$.manufacturer_ca_sha256') IS NOT NULL ORDER BY id LIMIT 1";

/* The lot's manufacturer CA is the one its first signed import named. */
static int lot_ca_pinned(struct import *im, const struct allowlist_signer *s,
			 struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(im->db, SQL_LOT_CA, err);
	char pin[65] = "";
	int rc;

	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, im->lot, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(pin, sizeof(pin), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_sqlerr(im->db, rc, err, "read the lot's manufacturer CA");
	if (pin[0] && strcmp(pin, s->ca_sha256))
		return errbuf_set(err, ST_EPOLICY, "lot %s: its manufacturer CA is pinned to sha256"
				  " %.16s... (first signed import), this one is %.16s...: nothing"
				  " imported", im->lot, pin, s->ca_sha256);
	return ST_OK;
}

static int import_locked(struct import *im, const uint8_t *buf, size_t len,
			 const struct allowlist_signer *signer, const char *actor,
			 struct errbuf *err)
{
	struct db *db = im->db;
	sqlite3_stmt *st;
	json_t *j;
	char *detail;
	const char *base;
	int rc, same = 0;

	/* importing the same file again is a no-op (0 rows), not an error */
	if ((rc = same_file_locked(im, &same, err)) || same)
		return rc;
	if (signer && (rc = lot_ca_pinned(im, signer, err)))
		return rc;
	if ((rc = lot_id_locked(db, im->lot, 1, &im->lot_id, err)))
		return rc;
	if (!(st = db_stmt(db, SQL_ALLOW_MAX, err)))
		return ST_EDB;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		sqlite3_reset(st);
		return db_sqlerr(db, rc, err, "read allowlist");
	}
	im->base_id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (!(im->ins = db_stmt(db, SQL_ALLOW_INSERT, err)))
		return ST_EDB;
	if ((rc = allowlist_csv_parse(buf, len, im->path, im->lot, insert_row, im, &im->rows, err)))
		return rc;

	base = strrchr(im->path, '/');
	base = base ? base + 1 : im->path;
	j = json_pack("{s:s, s:s, s:s, s:I, s:b, s:s?, s:s?, s:s?}", "lot", im->lot, "file", base,
		      "sha256", im->sha_hex, "rows", (json_int_t)im->rows,
		      "signed", signer != NULL, "signer", signer ? signer->subject : NULL,
		      "signer_sha256", signer ? signer->signer_sha256 : NULL,
		      "manufacturer_ca_sha256", signer ? signer->ca_sha256 : NULL);
	detail = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	if (!detail)
		return errbuf_set(err, ST_EINVAL, "%s: file name is not valid UTF-8", im->path);
	rc = db_audit_append_locked(db, "allowlist-import", actor, detail, NULL, err);
	free(detail);
	return rc;
}

int db_allowlist_import(struct db *db, const char *csv_path, const char *lot,
			const char *sig_path, const char *mfr_cert_path, const char *mfr_ca_path,
			const char *actor, int64_t *rows_out, struct errbuf *err)
{
	struct import im;
	struct allowlist_signer signer;
	uint8_t *buf = NULL, sha[32];
	unsigned int sha_len = 0;
	size_t len = 0;
	int owned = 0, rc;

	errbuf_clear(err);
	if (rows_out)
		*rows_out = 0;
	if (!ids_lot_valid(lot))
		return errbuf_set(err, ST_EINVAL,
				  "lot name must be 1..64 printable characters without spaces, commas or quotes");
	if (!sig_path != !mfr_cert_path)
		return errbuf_set(err, ST_EINVAL,
				  "a signature needs the manufacturer certificate and vice versa");
	if ((rc = fileio_read(csv_path, ALLOW_FILE_MAX, "allowlist", &buf, &len, err)))
		return rc;
	/* The signature first: an unsigned or forged file is never parsed. */
	if (sig_path && (rc = allowlist_sig_verify(buf, len, sig_path, mfr_cert_path, mfr_ca_path,
						   &signer, err))) {
		free(buf);
		return rc;
	}
	EVP_Digest(buf, len, sha, &sha_len, EVP_sha256(), NULL);

	memset(&im, 0, sizeof(im));
	im.db = db;
	im.path = csv_path;
	im.lot = lot;
	im.actor = actor;
	hex_encode(sha, 32, im.sha_hex);

	db_lock(db);
	if (db->in_txn) {
		rc = errbuf_set(err, ST_ESTATE, "allowlist import runs in its own transaction");
	} else if (!(rc = db_txn_begin(db, &owned, err))) {
		rc = import_locked(&im, buf, len, sig_path ? &signer : NULL, actor, err);
		rc = db_txn_end(db, owned, rc, err);
	}
	db_unlock(db);
	free(buf);
	if (rc == ST_OK && rows_out)
		*rows_out = im.rows;
	return rc;
}

static const char SQL_CONTAINS[] =
	"SELECT 1 FROM allowlist a JOIN lots l ON l.id = a.lot_id"
	" WHERE a.unique_id = ? AND l.name = ?";
static const char SQL_COUNT[] =
	"SELECT count(*) FROM allowlist a JOIN lots l ON l.id = a.lot_id WHERE l.name = ?";
static const char SQL_LIST_IDS[] =
	"SELECT a.unique_id FROM allowlist a JOIN lots l ON l.id = a.lot_id"
	" WHERE l.name = ? ORDER BY a.id";

int db_allowlist_contains(struct db *db, const char *lot, const char *unique_id,
			  struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	db_lock(db);
	if (!(st = db_stmt(db, SQL_CONTAINS, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	sqlite3_bind_text(st, 1, unique_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, lot, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		rc = ST_OK;
	else if (rc == SQLITE_DONE)
		rc = errbuf_set(err, ST_ENOTFOUND, "unique id %s is not on the allowlist of lot %s",
				unique_id, lot);
	else
		rc = db_sqlerr(db, rc, err, "allowlist lookup");
	db_unlock(db);
	return rc;
}

int db_allowlist_count(struct db *db, const char *lot, int64_t *count, struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	*count = 0;
	db_lock(db);
	if (!(st = db_stmt(db, SQL_COUNT, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	sqlite3_bind_text(st, 1, lot, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*count = sqlite3_column_int64(st, 0);
		rc = ST_OK;
	} else {
		rc = db_sqlerr(db, rc, err, "count allowlist");
	}
	sqlite3_reset(st);
	db_unlock(db);
	return rc;
}

int db_allowlist_foreach(struct db *db, const char *lot,
			 int (*fn)(const char *unique_id, void *ctx), void *ctx,
			 struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	db_lock(db);
	if (!(st = db_stmt(db, SQL_LIST_IDS, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	sqlite3_bind_text(st, 1, lot, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (fn((const char *)sqlite3_column_text(st, 0), ctx)) {
			rc = SQLITE_DONE;
			break;
		}
	sqlite3_reset(st);
	rc = rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "list allowlist");
	db_unlock(db);
	return rc;
}
