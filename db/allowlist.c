/*
 * allowlist: lots and the manufacturer's list of hardware ids per lot.
 *
 * Import order (invariant 8: a bad file is rejected whole, nothing written):
 *   1. read the file (regular file, at most ALLOW_FILE_MAX bytes);
 *   2. verify the detached signature over those bytes, when given;
 *   3. parse with libcsv one physical line at a time (so errors name the
 *      line), inserting each row inside one transaction;
 *   4. any bad row rolls the transaction back; otherwise an audit event
 *      (actor, file SHA-256, rows, lot, signer) commits with the rows.
 * Duplicates are caught by the UNIQUE index on allowlist.unique_id: rows
 * inserted by this import have ids above the table's maximum before it, which
 * tells "twice in this file" from "already imported".
 */
#include "db/db_int.h"
#include "core/certfile.h"
#include "core/fileio.h"

#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ALLOW_FILE_MAX  (64u * 1024 * 1024)
#define ALLOW_FIELD_MAX 256
#define ALLOW_LINE_MAX  4096
#define ALLOW_TEXT_MAX  64       /* model, hw_revision: characters */
#define ALLOW_SIG_MAX   16384
#define ALLOW_CERT_MAX  (256 * 1024)

static const char HEADER[4][16] = { "unique_id", "lot", "model", "hw_revision" };

/* Verifies sig (as `openssl dgst -sha256 -sign`) over data with the key of the
 * PEM certificate, which must be within its validity period. */
static int verify_signature(const uint8_t *data, size_t len, const char *sig_path,
			    const char *cert_path, char *subject, size_t subject_size,
			    struct errbuf *err)
{
	uint8_t *sig = NULL;
	size_t sig_len;
	X509 *cert = NULL;
	EVP_MD_CTX *md = NULL;
	int rc;

	if ((rc = fileio_read(sig_path, ALLOW_SIG_MAX, "signature", &sig, &sig_len, err)) ||
	    (rc = certfile_load(cert_path, ALLOW_CERT_MAX, &cert, NULL, NULL, err)))
		goto out;
	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0 ||
	    X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		rc = errbuf_set(err, ST_ECRYPTO, "%s: manufacturer certificate is expired or not yet valid",
				cert_path);
		goto out;
	}
	X509_NAME_oneline(X509_get_subject_name(cert), subject, (int)subject_size);
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(cert)) != 1 ||
	    EVP_DigestVerify(md, sig, sig_len, data, len) != 1) {
		rc = errbuf_set(err, ST_ECRYPTO,
				"%s: signature does not verify with the manufacturer certificate %s (%s): nothing imported",
				sig_path, cert_path, subject);
		goto out;
	}
	rc = ST_OK;
out:
	EVP_MD_CTX_free(md);
	X509_free(cert);
	free(sig);
	return rc;
}

/* Copies s into out for a message: printable ASCII only, at most 40 chars. */
static const char *shown(const char *s, char out[48])
{
	size_t i;

	for (i = 0; s[i] && i < 40; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i]) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* 1..max characters of well-formed UTF-8 with no control characters. */
static int valid_text(const char *s, size_t len, size_t max_chars)
{
	size_t chars = 0;

	for (size_t i = 0; i < len; chars++) {
		unsigned char c = (unsigned char)s[i];
		int extra;
		uint32_t cp;

		if (c < 0x20 || c == 0x7f)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			extra = 1; cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			extra = 2; cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			extra = 3; cp = c & 0x07;
		} else {
			return 0;
		}
		if (i + (size_t)extra >= len)
			return 0;
		for (int k = 1; k <= extra; k++) {
			unsigned char cc = (unsigned char)s[i + k];

			if ((cc & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (cc & 0x3f);
		}
		if ((extra == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0x80 && cp < 0xa0))
			return 0;
		i += (size_t)extra + 1;
	}
	return chars >= 1 && chars <= max_chars;
}

struct import {
	struct db     *db;
	const char    *path, *lot;
	int64_t        lot_id, base_id, rows;
	long           line;             /* physical line being parsed */
	int            header_done;
	int            nfields;
	char           field[4][ALLOW_FIELD_MAX + 1];
	size_t         flen[4];
	int            rc;               /* first error, then everything stops */
	struct errbuf *err;
	char           sha_hex[65];
	sqlite3_stmt  *ins;
};

static void row_fail(struct import *im, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void row_fail(struct import *im, int code, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	if (im->rc)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	im->rc = errbuf_set(im->err, code, "%s:%ld: %s", im->path, im->line, msg);
}

static void on_field(void *s, size_t len, void *data)
{
	struct import *im = data;
	int i = im->nfields++;

	if (im->rc || i >= 4)
		return;
	if (len > ALLOW_FIELD_MAX) {
		row_fail(im, ST_EINVAL, "field %d is longer than %d bytes", i + 1, ALLOW_FIELD_MAX);
		return;
	}
	if (s && memchr(s, '\0', len)) {
		row_fail(im, ST_EINVAL, "field %d contains a NUL byte", i + 1);
		return;
	}
	if (len)
		memcpy(im->field[i], s, len);
	im->field[i][len] = '\0';
	im->flen[i] = len;
}

static const char SQL_DUP[] =
	"SELECT a.id, a.line, l.name, a.import_sha256 FROM allowlist a"
	" JOIN lots l ON l.id = a.lot_id WHERE a.unique_id = ?";

static void explain_duplicate(struct import *im, const char *uid)
{
	sqlite3_stmt *st = db_stmt(im->db, SQL_DUP, im->err);
	char s1[48], s2[48];

	if (!st) {
		im->rc = ST_EDB;
		return;
	}
	sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		row_fail(im, ST_EEXIST, "unique id %s rejected as a duplicate", uid);
		return;
	}
	if (sqlite3_column_int64(st, 0) > im->base_id)
		row_fail(im, ST_EEXIST, "duplicate unique id %s (first on line %lld of this file)",
			 uid, (long long)sqlite3_column_int64(st, 1));
	else
		row_fail(im, ST_EEXIST,
			 "unique id %s was already imported for lot %s (line %lld of file sha256 %.16s...)",
			 uid, shown((const char *)sqlite3_column_text(st, 2), s1),
			 (long long)sqlite3_column_int64(st, 1),
			 shown((const char *)sqlite3_column_text(st, 3), s2));
	sqlite3_reset(st);
}

static void on_row(int c, void *data)
{
	struct import *im = data;
	char s1[48], s2[48];
	int n = im->nfields, rc;

	im->nfields = 0;
	(void)c;
	if (im->rc)
		return;
	if (n != 4) {
		row_fail(im, ST_EINVAL, "expected 4 fields (unique_id,lot,model,hw_revision), found %d", n);
		return;
	}
	if (!im->header_done) {
		for (int i = 0; i < 4; i++)
			if (strcmp(im->field[i], HEADER[i])) {
				row_fail(im, ST_EINVAL, "header must be exactly "
					 "\"unique_id,lot,model,hw_revision\" (field %d is \"%s\")",
					 i + 1, shown(im->field[i], s1));
				return;
			}
		im->header_done = 1;
		return;
	}
	if (!ids_uid_valid(im->field[0])) {
		row_fail(im, ST_EINVAL, "unique id \"%s\" is not 24 upper-case hex digits",
			 shown(im->field[0], s1));
		return;
	}
	if (strcmp(im->field[1], im->lot)) {
		row_fail(im, ST_EINVAL, "lot \"%s\" does not match --lot %s",
			 shown(im->field[1], s1), shown(im->lot, s2));
		return;
	}
	if (!valid_text(im->field[2], im->flen[2], ALLOW_TEXT_MAX)) {
		row_fail(im, ST_EINVAL, "model must be 1..%d printable UTF-8 characters",
			 ALLOW_TEXT_MAX);
		return;
	}
	if (!valid_text(im->field[3], im->flen[3], ALLOW_TEXT_MAX)) {
		row_fail(im, ST_EINVAL, "hw_revision must be 1..%d printable UTF-8 characters",
			 ALLOW_TEXT_MAX);
		return;
	}
	sqlite3_reset(im->ins);
	sqlite3_bind_int64(im->ins, 1, im->lot_id);
	sqlite3_bind_text(im->ins, 2, im->field[0], IDS_UID_LEN, SQLITE_STATIC);
	sqlite3_bind_text(im->ins, 3, im->sha_hex, 64, SQLITE_STATIC);
	sqlite3_bind_int64(im->ins, 4, im->line);
	rc = sqlite3_step(im->ins);
	sqlite3_reset(im->ins);
	if (rc == SQLITE_DONE) {
		im->rows++;
		return;
	}
	if (db_sqlerr(im->db, rc, im->err, "insert allowlist row") == ST_EEXIST) {
		im->err->code = ST_OK;
		explain_duplicate(im, im->field[0]);
		return;
	}
	im->rc = ST_EDB;
}

/* Feeds buf to libcsv one physical line at a time so errors carry a line. */
static int parse_csv(struct import *im, const uint8_t *buf, size_t len)
{
	struct csv_parser p;
	size_t off = 0;

	if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0)
		return errbuf_set(im->err, ST_ENOMEM, "out of memory");
	if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3))
		off = 3;   /* a UTF-8 byte order mark, as spreadsheets write */
	im->line = 0;
	while (off < len && !im->rc) {
		const uint8_t *nl = memchr(buf + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (buf + off)) + 1 : len - off;

		im->line++;
		if (n > ALLOW_LINE_MAX) {
			row_fail(im, ST_EINVAL, "line longer than %d bytes", ALLOW_LINE_MAX);
			break;
		}
		if (csv_parse(&p, buf + off, n, on_field, on_row, im) != n && !im->rc)
			row_fail(im, ST_EINVAL, "malformed CSV: %s", csv_strerror(csv_error(&p)));
		off += n;
	}
	if (!im->rc && csv_fini(&p, on_field, on_row, im) != 0)
		row_fail(im, ST_EINVAL, "malformed CSV: %s", csv_strerror(csv_error(&p)));
	csv_free(&p);
	if (!im->rc && !im->header_done)
		im->rc = errbuf_set(im->err, ST_EINVAL,
				    "%s:1: empty file: expected the header \"unique_id,lot,model,hw_revision\"",
				    im->path);
	if (!im->rc && im->rows == 0)
		im->rc = errbuf_set(im->err, ST_EINVAL, "%s: no rows after the header", im->path);
	return im->rc;
}

static const char SQL_LOT_INSERT[] =
	"INSERT INTO lots (name, created_ms) VALUES (?, ?) ON CONFLICT (name) DO NOTHING";
static const char SQL_LOT_ID[] = "SELECT id FROM lots WHERE name = ?";
static const char SQL_ALLOW_MAX[] = "SELECT coalesce(max(id), 0) FROM allowlist";
static const char SQL_ALLOW_INSERT[] =
	"INSERT INTO allowlist (lot_id, unique_id, import_sha256, line) VALUES (?, ?, ?, ?)";

static int lot_id_locked(struct db *db, const char *lot, int create, int64_t *id,
			 struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	if (create) {
		if (!(st = db_stmt(db, SQL_LOT_INSERT, err)))
			return ST_EDB;
		sqlite3_bind_text(st, 1, lot, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, clock_realtime_ms());
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return db_sqlerr(db, rc, err, "create lot");
	}
	if (!(st = db_stmt(db, SQL_LOT_ID, err)))
		return ST_EDB;
	sqlite3_bind_text(st, 1, lot, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		return ST_OK;
	}
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return errbuf_set(err, ST_ENOTFOUND, "no lot %s", lot);
	return db_sqlerr(db, rc, err, "find lot");
}

static int import_locked(struct import *im, const uint8_t *buf, size_t len,
			 const char *signer, const char *actor)
{
	struct db *db = im->db;
	sqlite3_stmt *st;
	json_t *j;
	char *detail;
	const char *base;
	int rc;

	if ((rc = lot_id_locked(db, im->lot, 1, &im->lot_id, im->err)))
		return rc;
	if (!(st = db_stmt(db, SQL_ALLOW_MAX, im->err)))
		return ST_EDB;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		sqlite3_reset(st);
		return db_sqlerr(db, rc, im->err, "read allowlist");
	}
	im->base_id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (!(im->ins = db_stmt(db, SQL_ALLOW_INSERT, im->err)))
		return ST_EDB;
	if ((rc = parse_csv(im, buf, len)))
		return rc;

	base = strrchr(im->path, '/');
	base = base ? base + 1 : im->path;
	j = json_pack("{s:s, s:s, s:s, s:I, s:b, s:s?}", "lot", im->lot, "file", base,
		      "sha256", im->sha_hex, "rows", (json_int_t)im->rows,
		      "signed", signer != NULL, "signer", signer);
	detail = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	if (!detail)
		return errbuf_set(im->err, ST_EINVAL, "%s: file name is not valid UTF-8", im->path);
	rc = db_audit_append_locked(db, "allowlist-import", actor, detail, NULL, im->err);
	free(detail);
	return rc;
}

int db_allowlist_import(struct db *db, const char *csv_path, const char *lot,
			const char *sig_path, const char *mfr_cert_path,
			const char *actor, int64_t *rows_out, struct errbuf *err)
{
	struct errbuf local;
	struct import im;
	uint8_t *buf = NULL, sha[32];
	char subject[256];
	unsigned int sha_len = 0;
	size_t len = 0;
	int owned = 0, rc;

	if (!err)
		err = &local;   /* the row callbacks inspect the error code */
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
	if (sig_path && (rc = verify_signature(buf, len, sig_path, mfr_cert_path, subject,
					       sizeof(subject), err))) {
		free(buf);
		return rc;
	}
	EVP_Digest(buf, len, sha, &sha_len, EVP_sha256(), NULL);

	memset(&im, 0, sizeof(im));
	im.db = db;
	im.path = csv_path;
	im.lot = lot;
	im.err = err;
	hex_encode(sha, 32, im.sha_hex);

	db_lock(db);
	if (db->in_txn) {
		rc = errbuf_set(err, ST_ESTATE, "allowlist import runs in its own transaction");
	} else if (!(rc = db_txn_begin(db, &owned, err))) {
		rc = import_locked(&im, buf, len, sig_path ? subject : NULL, actor);
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
