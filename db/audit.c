/*
 * audit: the hash-chained event log and its signed checkpoints.
 *
 * Each station has its own chain in `events`: seq 1, 2, 3 ... and each row's
 * hash covers the previous row's hash.  The hash is SHA-256 over
 *
 *   F("station-audit-v1") F(station_id) F(decimal seq) F(ts) F(kind) F(actor)
 *   F(detail) F(prev_hash as 64 lower-case hex)
 *
 * where F(x) = 4-byte big-endian length of x, then the bytes of x.  Lengths make
 * the encoding unambiguous ("ab"+"c" differs from "a"+"bc").  docs/database.md
 * has a worked example.
 *
 * Verification is audit_verify.c's; signed checkpoints are stored by
 * db/checkpoint.c.
 */
#include "db/db_int.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUDIT_TAG        "station-audit-v1"
#define AUDIT_DETAIL_MAX (64 * 1024)
#define AUDIT_NAME_MAX   64

/* Appends F(x) to the packing buffer, or streams it once the row is too big
 * for the buffer.  Packing a typical row into one digest update is several
 * times faster than eight small updates. */
struct packer {
	EVP_MD_CTX *md;
	uint8_t     buf[2048];
	size_t      used;
	int         streaming;
};

static void put_field(struct packer *pk, const void *p, size_t len)
{
	uint8_t be[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16),
			  (uint8_t)(len >> 8), (uint8_t)len };

	if (!pk->streaming && pk->used + 4 + len <= sizeof(pk->buf)) {
		memcpy(pk->buf + pk->used, be, 4);
		if (len)
			memcpy(pk->buf + pk->used + 4, p, len);
		pk->used += 4 + len;
		return;
	}
	if (!pk->streaming) {
		EVP_DigestUpdate(pk->md, pk->buf, pk->used);
		pk->streaming = 1;
	}
	EVP_DigestUpdate(pk->md, be, 4);
	if (len)
		EVP_DigestUpdate(pk->md, p, len);
}

static EVP_MD *sha256_fetched;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *db_sha256(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_fetched ? sha256_fetched : EVP_sha256();
}

/* The canonical hash of one event (see the top of this file).  NULL strings
 * (a column someone set to NULL) hash as empty. */
int db_audit_hash_fields(EVP_MD_CTX *md, const EVP_MD *sha256,
			 const char *station_id, size_t sid_len,
			 int64_t seq, const char *ts, size_t ts_len,
			 const char *kind, size_t kind_len, const char *actor, size_t actor_len,
			 const char *detail, size_t detail_len, const char *prev_hex,
			 size_t prev_len, uint8_t out[32])
{
	struct packer pk;
	char seqs[24];
	unsigned int n = 0;
	int len = snprintf(seqs, sizeof(seqs), "%lld", (long long)seq);

	if (!EVP_DigestInit_ex(md, sha256, NULL))
		return -1;
	pk.md = md;
	pk.used = 0;
	pk.streaming = 0;
	put_field(&pk, AUDIT_TAG, strlen(AUDIT_TAG));
	put_field(&pk, station_id, sid_len);
	put_field(&pk, seqs, (size_t)len);
	put_field(&pk, ts, ts_len);
	put_field(&pk, kind, kind_len);
	put_field(&pk, actor, actor_len);
	put_field(&pk, detail, detail_len);
	put_field(&pk, prev_hex, prev_len);
	if (!pk.streaming)
		EVP_DigestUpdate(md, pk.buf, pk.used);
	if (!EVP_DigestFinal_ex(md, out, &n) || n != 32)
		return -1;
	return 0;
}

int db_audit_event_hash_hex(const char *station_id, int64_t seq, const char *ts,
			    const char *kind, const char *actor, const char *detail,
			    const char *prev_hash, char out[65])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t h[32];
	int rc;

	if (!md)
		return ST_ENOMEM;
	rc = db_audit_hash_fields(md, db_sha256(), station_id, strlen(station_id), seq, ts, strlen(ts),
			kind, strlen(kind), actor, strlen(actor), detail, strlen(detail),
			prev_hash, strlen(prev_hash), h);
	EVP_MD_CTX_free(md);
	if (rc)
		return ST_ECRYPTO;
	hex_encode(h, 32, out);
	return ST_OK;
}

/* Kinds are the station's own words ("unit-result"): printable, no space. */
static int kind_valid(const char *s)
{
	size_t n = s ? strnlen(s, AUDIT_NAME_MAX + 1) : 0;

	if (n < 1 || n > AUDIT_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] > 0x7e)
			return 0;
	return 1;
}

/* Validates detail as one JSON object and returns its compact, key-sorted form
 * (malloc'd). */
static int compact_detail(const char *in, char **out, struct errbuf *err)
{
	json_error_t je;
	json_t *j;

	if (!in) {
		*out = strdup("{}");
		return *out ? ST_OK : errbuf_set(err, ST_ENOMEM, "out of memory");
	}
	if (strlen(in) > AUDIT_DETAIL_MAX)
		return errbuf_set(err, ST_EINVAL, "audit detail longer than %d bytes",
				  AUDIT_DETAIL_MAX);
	j = json_loads(in, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return errbuf_set(err, ST_EINVAL, "audit detail is not JSON: %s (column %d)",
				  je.text, je.column);
	if (!json_is_object(j)) {
		json_decref(j);
		return errbuf_set(err, ST_EINVAL, "audit detail must be a JSON object");
	}
	*out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	if (!*out)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	return ST_OK;
}

static const char SQL_HEAD[] =
	"SELECT seq, hash FROM events WHERE station_id = ? ORDER BY seq DESC LIMIT 1";
static const char SQL_INSERT_EVENT[] =
	"INSERT INTO events (station_id, seq, ts, kind, actor, detail, prev_hash, hash)"
	" VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

static int head_locked(struct db *db, int64_t *seq, char prev_hex[65], struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, SQL_HEAD, err);
	int rc;

	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, db->station_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		*seq = 0;
		memset(prev_hex, '0', 64);
		prev_hex[64] = '\0';
		sqlite3_reset(st);
		return ST_OK;
	}
	if (rc != SQLITE_ROW)
		return db_sqlerr(db, rc, err, "read audit head");
	*seq = sqlite3_column_int64(st, 0);
	snprintf(prev_hex, 65, "%s", (const char *)sqlite3_column_text(st, 1));
	sqlite3_reset(st);
	return ST_OK;
}

static int names_check(const char *kind, const char *actor, struct errbuf *err)
{
	if (!kind_valid(kind))
		return errbuf_set(err, ST_EINVAL, "audit kind must be 1..%d printable characters without spaces",
				  AUDIT_NAME_MAX);
	/* one rule, core/ids.h, checked again where names enter (the CLI) */
	if (!ids_actor_valid(actor))
		return errbuf_set(err, ST_EINVAL, "audit actor must be 1..%d printable characters",
				  IDS_ACTOR_MAX);
	return ST_OK;
}

/* Appends with detail already in its canonical form (compact, keys sorted,
 * at most AUDIT_DETAIL_MAX bytes) and kind and actor checked. */
static int append_canonical(struct db *db, const char *kind, const char *actor,
			    const char *detail, int64_t *seq_out, struct errbuf *err)
{
	char prev_hex[65], hash_hex[65], ts[32];
	uint8_t hash[32];
	EVP_MD_CTX *md = NULL;
	sqlite3_stmt *st;
	int64_t seq;
	int rc;

	if ((rc = head_locked(db, &seq, prev_hex, err)))
		return rc;
	seq++;
	clock_iso_ms(clock_realtime_ms(), ts);
	md = EVP_MD_CTX_new();
	if (!md || db_audit_hash_fields(md, db_sha256(), db->station_id, strlen(db->station_id), seq, ts, strlen(ts),
			      kind, strlen(kind), actor, strlen(actor), detail, strlen(detail),
			      prev_hex, 64, hash)) {
		rc = errbuf_set(err, ST_ECRYPTO, "SHA-256 failed");
		goto out;
	}
	hex_encode(hash, 32, hash_hex);
	if (!(st = db_stmt(db, SQL_INSERT_EVENT, err))) {
		rc = ST_EDB;
		goto out;
	}
	sqlite3_bind_text(st, 1, db->station_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_text(st, 3, ts, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, detail, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, prev_hex, 64, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, hash_hex, 64, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		rc = db_sqlerr(db, rc, err, "append audit event");
		sqlite3_reset(st);
		goto out;
	}
	sqlite3_reset(st);
	rc = ST_OK;
	if (seq_out)
		*seq_out = seq;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

int db_audit_append_locked(struct db *db, const char *kind, const char *actor,
			   const char *detail_json, int64_t *seq_out, struct errbuf *err)
{
	char *detail = NULL;
	int rc;

	if ((rc = names_check(kind, actor, err)) ||
	    (rc = compact_detail(detail_json, &detail, err)))
		return rc;
	rc = append_canonical(db, kind, actor, detail, seq_out, err);
	free(detail);
	return rc;
}

int db_audit_json_locked(struct db *db, const char *kind, const char *actor,
			 json_t *j, struct errbuf *err)
{
	char *detail = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	int is_object = json_is_object(j), rc;

	json_decref(j);
	if ((rc = names_check(kind, actor, err))) {
		free(detail);
		return rc;
	}
	if (!detail)
		return errbuf_set(err, ST_EINVAL, "%s: cannot encode the audit detail "
				  "(out of memory, or a field that is not valid UTF-8)", kind);
	/* json_dumps of an object is the canonical form already: not parsed
	 * again (a json_t cannot hold a duplicate key) */
	if (strlen(detail) > AUDIT_DETAIL_MAX)
		rc = errbuf_set(err, ST_EINVAL, "%s: audit detail longer than %d bytes", kind,
				AUDIT_DETAIL_MAX);
	else if (!is_object)
		rc = errbuf_set(err, ST_EINVAL, "%s: audit detail must be a JSON object", kind);
	else
		rc = append_canonical(db, kind, actor, detail, NULL, err);
	free(detail);
	return rc;
}

int db_audit_append(struct db *db, const char *kind, const char *actor,
		    const char *detail_json, int64_t *seq_out, struct errbuf *err)
{
	int owned, rc;

	db_lock(db);
	if (!(rc = db_txn_begin(db, &owned, err))) {
		rc = db_audit_append_locked(db, kind, actor, detail_json, seq_out, err);
		rc = db_txn_end(db, owned, rc, err);
	}
	db_unlock(db);
	return rc;
}

int db_audit_head(struct db *db, int64_t *seq, uint8_t hash[32], struct errbuf *err)
{
	char hex[65];
	int rc;

	db_lock(db);
	rc = head_locked(db, seq, hex, err);
	db_unlock(db);
	if (rc)
		return rc;
	if (hex_decode_lower(hex, strlen(hex), hash, 32))
		return errbuf_set(err, ST_ETAMPER, "audit head (seq %lld) has a malformed hash",
				  (long long)*seq);
	return ST_OK;
}

/* ---- listing ------------------------------------------------------------ */

static const char SQL_LIST_COUNT[] = "SELECT count(*) FROM events";
static const char SQL_LIST[] =
	"SELECT id, station_id, seq, ts, kind, actor, detail, hash FROM events"
	" ORDER BY id LIMIT -1 OFFSET ?";

int db_audit_foreach(struct db *db, int64_t tail,
		     int (*fn)(const struct db_event *e, void *ctx), void *ctx,
		     struct errbuf *err)
{
	sqlite3_stmt *st;
	int64_t total = 0, skip = 0;
	int rc;

	db_lock(db);
	if (tail > 0) {
		if (!(st = db_stmt(db, SQL_LIST_COUNT, err))) {
			rc = ST_EDB;
			goto out;
		}
		if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
			rc = db_sqlerr(db, rc, err, "count events");
			goto out;
		}
		total = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		skip = total > tail ? total - tail : 0;
	}
	if (!(st = db_stmt(db, SQL_LIST, err))) {
		rc = ST_EDB;
		goto out;
	}
	sqlite3_bind_int64(st, 1, skip);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_event e;

		e.id = sqlite3_column_int64(st, 0);
		e.station_id = (const char *)sqlite3_column_text(st, 1);
		e.seq = sqlite3_column_int64(st, 2);
		e.ts = (const char *)sqlite3_column_text(st, 3);
		e.kind = (const char *)sqlite3_column_text(st, 4);
		e.actor = (const char *)sqlite3_column_text(st, 5);
		e.detail = (const char *)sqlite3_column_text(st, 6);
		e.hash = (const char *)sqlite3_column_text(st, 7);
		if (fn(&e, ctx)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	rc = rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "list events");
out:
	db_unlock(db);
	return rc;
}
