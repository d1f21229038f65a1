/* Unit tests: the audit chain's canonical hash, detail validation, the attacks
 * the sqlite3 shell cannot easily do (rewrite and rehash), signed checkpoints,
 * and several stations in one file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hex.h"
#include "db/db.h"

/* The documented encoding, written again from docs/database.md on purpose:
 * SHA-256 over F(tag) F(station) F(seq) F(ts) F(kind) F(actor) F(detail) F(prev),
 * F(x) = uint32 big-endian length || bytes. */
static void doc_hash(const char *station, long long seq, const char *ts, const char *kind,
		     const char *actor, const char *detail, const char *prev, char out[65])
{
	const char *f[8];
	char seqs[32];
	uint8_t h[32];
	unsigned int n;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	snprintf(seqs, sizeof(seqs), "%lld", seq);
	f[0] = "station-audit-v1"; f[1] = station; f[2] = seqs; f[3] = ts;
	f[4] = kind; f[5] = actor; f[6] = detail; f[7] = prev;
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (int i = 0; i < 8; i++) {
		size_t len = strlen(f[i]);
		uint8_t be[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
				  (uint8_t)len };

		EVP_DigestUpdate(md, be, 4);
		EVP_DigestUpdate(md, f[i], len);
	}
	EVP_DigestFinal_ex(md, h, &n);
	EVP_MD_CTX_free(md);
	hex_encode(h, 32, out);
}

static sqlite3 *raw(const char *path)
{
	sqlite3 *sq;

	assert_int_equal(sqlite3_open(path, &sq), SQLITE_OK);
	return sq;
}

static void exec(sqlite3 *sq, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(sq, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

/* Recomputes and stores the hash of the row with this seq (an attacker who
 * knows the documented encoding).  relink: also set prev_hash to the hash of
 * seq - 1. */
static void rehash(sqlite3 *sq, long long seq, int relink)
{
	sqlite3_stmt *st;
	char h[65], prev[65], sql[256];

	if (relink) {
		snprintf(sql, sizeof(sql),
			 "UPDATE events SET prev_hash = (SELECT hash FROM events WHERE seq = %lld)"
			 " WHERE seq = %lld", seq - 1, seq);
		exec(sq, sql);
	}
	assert_int_equal(sqlite3_prepare_v2(sq, "SELECT station_id, seq, ts, kind, actor, detail,"
					    " prev_hash FROM events WHERE seq = ?", -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, seq);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(prev, sizeof(prev), "%s", (const char *)sqlite3_column_text(st, 6));
	doc_hash((const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1),
		 (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3),
		 (const char *)sqlite3_column_text(st, 4), (const char *)sqlite3_column_text(st, 5),
		 prev, h);
	sqlite3_finalize(st);
	snprintf(sql, sizeof(sql), "UPDATE events SET hash = '%s' WHERE seq = %lld", h, seq);
	exec(sq, sql);
}

static struct db *chain(const char *path, int n)
{
	struct errbuf err;
	struct db *db;
	char detail[64];

	assert_int_equal(db_open(path, "st1", &db, &err), ST_OK);
	for (int i = 1; i <= n; i++) {
		snprintf(detail, sizeof(detail), "{\"i\": %d}", i);
		assert_int_equal(db_audit_append(db, "test", "alice", detail, NULL, &err), ST_OK);
	}
	return db;
}

static void expect_bad(struct db *db, long long rowid, long long seq, const char *kind)
{
	struct db_verify_result res;
	struct errbuf err;

	assert_int_equal(db_audit_verify(db, &res, &err), ST_ETAMPER);
	if (res.bad_rowid != rowid || res.bad_seq != seq || strncmp(res.what, kind, strlen(kind)))
		fail_msg("expected row %lld seq %lld '%s', got row %lld seq %lld '%s'", rowid, seq,
			 kind, (long long)res.bad_rowid, (long long)res.bad_seq, res.what);
	assert_non_null(strstr(err.msg, kind));
}

static void test_canonical_hash(void **state)
{
	struct db *db;
	sqlite3 *sq;
	sqlite3_stmt *st;
	char want[65];
	int rows = 0;

	(void)state;
	/* The worked example in docs/database.md. */
	doc_hash("st1", 1, "2026-11-22T01:02:03.456Z", "allowlist-import", "eng1",
		 "{\"lot\":\"LOT-A\",\"rows\":3}",
		 "0000000000000000000000000000000000000000000000000000000000000000", want);
	assert_string_equal(want, "66d3249648373435d1ecb7fb854e53b24ee259bf713c00e2f0c83a59abf0c6d1");

	db = chain("canon.db", 3);
	db_close(db);
	sq = raw("canon.db");
	assert_int_equal(sqlite3_prepare_v2(sq, "SELECT station_id, seq, ts, kind, actor, detail,"
					    " prev_hash, hash FROM events ORDER BY seq", -1, &st, NULL),
			 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		doc_hash((const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1),
			 (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3),
			 (const char *)sqlite3_column_text(st, 4), (const char *)sqlite3_column_text(st, 5),
			 (const char *)sqlite3_column_text(st, 6), want);
		assert_string_equal((const char *)sqlite3_column_text(st, 7), want);
		/* compact JSON, keys sorted */
		assert_string_equal((const char *)sqlite3_column_text(st, 5),
				    rows == 0 ? "{\"i\":1}" : rows == 1 ? "{\"i\":2}" : "{\"i\":3}");
		rows++;
	}
	sqlite3_finalize(st);
	sqlite3_close(sq);
	assert_int_equal(rows, 3);
}

static void test_append_validation(void **state)
{
	struct errbuf err;
	struct db *db = chain("val.db", 0);
	char big[70 * 1024];
	int64_t seq;

	(void)state;
	assert_int_equal(db_audit_append(db, "k", "a", "not json", NULL, &err), ST_EINVAL);
	assert_int_equal(db_audit_append(db, "k", "a", "[1,2]", NULL, &err), ST_EINVAL);
	assert_int_equal(db_audit_append(db, "k", "a", "{\"a\":1,\"a\":2}", NULL, &err), ST_EINVAL);
	assert_int_equal(db_audit_append(db, "two words", "a", NULL, NULL, &err), ST_EINVAL);
	assert_int_equal(db_audit_append(db, "", "a", NULL, NULL, &err), ST_EINVAL);
	assert_int_equal(db_audit_append(db, "k", "", NULL, NULL, &err), ST_EINVAL);
	assert_int_equal(db_audit_append(db, "k", "a\nb", NULL, NULL, &err), ST_EINVAL);
	memset(big, ' ', sizeof(big) - 1);
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(db_audit_append(db, "k", "a", big, NULL, &err), ST_EINVAL);
	/* nothing was appended by the refusals */
	assert_int_equal(db_audit_append(db, "k", "a b", "{ \"z\" : 1, \"a\" : [true] }", &seq, &err), ST_OK);
	assert_int_equal(seq, 1);
	db_close(db);
}

static void test_rewritten_and_rehashed_row(void **state)
{
	struct db *db = chain("rehash.db", 6);
	sqlite3 *sq = raw("rehash.db");

	(void)state;
	exec(sq, "UPDATE events SET actor = 'mallory' WHERE seq = 3");
	rehash(sq, 3, 0);
	expect_bad(db, 3, 3, "edited: row rewritten and rehashed");
	sqlite3_close(sq);
	db_close(db);
}

static void test_inserted_with_valid_hash(void **state)
{
	struct db *db = chain("insert.db", 6);
	sqlite3 *sq = raw("insert.db");

	(void)state;
	exec(sq, "UPDATE events SET seq = -seq WHERE seq >= 4;"
		 "UPDATE events SET seq = 1 - seq WHERE seq < 0;"
		 "INSERT INTO events (station_id, seq, ts, kind, actor, detail, prev_hash, hash)"
		 " SELECT station_id, 4, ts, 'cert-issued', 'mallory', '{}', hash, '' FROM events"
		 " WHERE seq = 3");
	rehash(sq, 4, 0);
	expect_bad(db, 7, 4, "inserted");
	sqlite3_close(sq);
	db_close(db);
}

static void test_deleted_and_relinked(void **state)
{
	struct db *db = chain("relink.db", 6);
	sqlite3 *sq = raw("relink.db");

	(void)state;
	/* delete seq 3 and relink seq 4 to seq 2 with a valid hash: the gap remains */
	exec(sq, "DELETE FROM events WHERE seq = 3");
	exec(sq, "UPDATE events SET prev_hash = (SELECT hash FROM events WHERE seq = 2) WHERE seq = 4");
	rehash(sq, 4, 0);
	expect_bad(db, 4, 4, "sequence gap");
	sqlite3_close(sq);
	db_close(db);
}

/* ---- checkpoints -------------------------------------------------------- */

static EVP_PKEY *ec_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static size_t sign_checkpoint(EVP_PKEY *k, const char *station, int64_t seq,
			      const uint8_t head[32], uint8_t *sig, size_t cap)
{
	char msg[256], hex[65];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t len = cap;
	int n;

	hex_encode(head, 32, hex);
	n = snprintf(msg, sizeof(msg), "station-audit-checkpoint-v1\n%s\n%lld\n%s\n", station,
		     (long long)seq, hex);
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &len, (const uint8_t *)msg, (size_t)n), 1);
	EVP_MD_CTX_free(md);
	return len;
}

static void test_checkpoints(void **state)
{
	struct db_verify_result res;
	struct errbuf err;
	struct db *db = chain("cp.db", 5);
	EVP_PKEY *k = ec_key(), *other = ec_key();
	uint8_t head[32], sig[128], *der = NULL, *oder = NULL, bad_head[32];
	int der_len = i2d_PUBKEY(k, &der), oder_len = i2d_PUBKEY(other, &oder);
	int64_t seq;
	size_t sl;
	sqlite3 *sq;

	(void)state;
	assert_int_equal(db_audit_head(db, &seq, head, &err), ST_OK);
	assert_int_equal(seq, 5);
	sl = sign_checkpoint(k, "st1", seq, head, sig, sizeof(sig));
	/* refused: wrong algorithm, signature by another key, wrong head, no such seq */
	assert_int_equal(db_checkpoint_add(db, seq, head, "audit", "rsa-sha1", sig, sl, der,
					   (size_t)der_len, &err), ST_EINVAL);
	assert_int_equal(db_checkpoint_add(db, seq, head, "audit", "ecdsa-sha256", sig, sl, oder,
					   (size_t)oder_len, &err), ST_ECRYPTO);
	memcpy(bad_head, head, 32);
	bad_head[0] ^= 1;
	sl = sign_checkpoint(k, "st1", seq, bad_head, sig, sizeof(sig));
	assert_int_equal(db_checkpoint_add(db, seq, bad_head, "audit", "ecdsa-sha256", sig, sl, der,
					   (size_t)der_len, &err), ST_ETAMPER);
	sl = sign_checkpoint(k, "st1", 99, head, sig, sizeof(sig));
	assert_int_equal(db_checkpoint_add(db, 99, head, "audit", "ecdsa-sha256", sig, sl, der,
					   (size_t)der_len, &err), ST_ENOTFOUND);
	sl = sign_checkpoint(k, "st1", seq, head, sig, sizeof(sig));
	assert_int_equal(db_checkpoint_add(db, seq, head, "audit", "ecdsa-sha256", sig, sl, der,
					   (size_t)der_len, &err), ST_OK);
	for (int i = 0; i < 3; i++)
		assert_int_equal(db_audit_append(db, "later", "bob", NULL, NULL, &err), ST_OK);
	assert_int_equal(db_audit_verify(db, &res, &err), ST_OK);
	assert_int_equal(res.events, 9);   /* 8 appended, the checkpoint's row event */
	assert_int_equal(res.checkpoints, 1);
	assert_int_equal(db_audit_verify_key(db, der, (size_t)der_len, &res, &err), ST_OK);
	assert_int_equal(db_audit_verify_key(db, oder, (size_t)oder_len, &res, &err), ST_ETAMPER);
	assert_non_null(strstr(res.what, "trusted audit key"));

	/* An attacker rewrites rows 2..8 and rehashes and relinks every one:
	 * the chain is self-consistent, the signed head is not. */
	sq = raw("cp.db");
	exec(sq, "UPDATE events SET actor = 'mallory' WHERE seq = 2");
	for (int s = 2; s <= 8; s++)
		rehash(sq, s, s > 2);
	sqlite3_close(sq);
	assert_int_equal(db_audit_verify(db, &res, &err), ST_ETAMPER);
	assert_int_equal(res.bad_seq, 5);
	assert_true(res.bad_checkpoint > 0);
	assert_non_null(strstr(res.what, "differs from signed checkpoint"));

	OPENSSL_free(der);
	OPENSSL_free(oder);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
	db_close(db);
}

static void test_many_stations_one_file(void **state)
{
	struct db_verify_result res;
	struct errbuf err;
	struct db *a, *b;
	sqlite3 *sq;
	int64_t seq;

	(void)state;
	assert_int_equal(db_open("multi.db", "alpha", &a, &err), ST_OK);
	assert_int_equal(db_open("multi.db", "beta", &b, &err), ST_OK);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(db_audit_append(a, "a", "x", NULL, &seq, &err), ST_OK);
		assert_int_equal(seq, i + 1);
		assert_int_equal(db_audit_append(b, "b", "x", NULL, &seq, &err), ST_OK);
		assert_int_equal(seq, i + 1);
	}
	assert_int_equal(db_audit_verify(a, &res, &err), ST_OK);
	assert_int_equal(res.events, 8);
	/* moving beta's seq 2 (row 4) to the end of alpha's chain breaks both;
	 * alpha's is checked and reported first */
	sq = raw("multi.db");
	exec(sq, "UPDATE events SET station_id = 'alpha', seq = 5 WHERE id = 4");
	sqlite3_close(sq);
	assert_int_equal(db_audit_verify(b, &res, &err), ST_ETAMPER);
	assert_string_equal(res.station_id, "alpha");
	assert_int_equal(res.bad_rowid, 4);
	assert_int_equal(res.bad_seq, 5);
	/* once alpha's copy is gone, beta's hole shows */
	sq = raw("multi.db");
	exec(sq, "DELETE FROM events WHERE id = 4");
	sqlite3_close(sq);
	assert_int_equal(db_audit_verify(b, &res, &err), ST_ETAMPER);
	assert_string_equal(res.station_id, "beta");
	assert_int_equal(res.bad_rowid, 6);
	assert_non_null(strstr(res.what, "deleted"));
	db_close(a);
	db_close(b);
}

/* A station id longer than any buffer (no binary writes one; a tamperer can):
 * the walk still visits it once and ends. */
static void test_long_station_id(void **state)
{
	struct db_verify_result res;
	struct errbuf err;
	struct db *db = chain("long.db", 3);
	sqlite3 *sq = raw("long.db");

	(void)state;
	exec(sq, "UPDATE events SET station_id = printf('%.1000c', 'z') WHERE seq = 3");
	sqlite3_close(sq);
	assert_int_equal(db_audit_verify(db, &res, &err), ST_ETAMPER);
	assert_int_equal(res.events, 2);
	assert_int_equal(res.bad_rowid, 3);
	assert_non_null(strstr(res.what, "deleted: 2 rows"));
	assert_memory_equal(res.station_id, "zzzzzzzz", 8);
	db_close(db);
}

/* Any single tampering of a row that is not the newest one -- any column
 * edited, a row deleted, two rows' places swapped, a rehashed row inserted --
 * is caught.  200 cases from a fixed seed, each on a fresh copy of one chain. */
static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	size_t n;
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");

	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	fclose(out);
}

static void test_random_tampering_always_caught(void **state)
{
	static const char *const cols[] = { "station_id", "seq", "ts", "kind", "actor",
					    "detail", "prev_hash", "hash" };
	struct db_verify_result res;
	struct errbuf err;
	struct db *db = chain("pristine.db", 12);
	unsigned int rnd = 12345;
	int counts[4] = { 0 };

	(void)state;
	db_close(db);
	for (int i = 0; i < 200; i++) {
		char sql[512];
		int what, k, j;
		sqlite3 *sq;

		rnd = rnd * 1103515245u + 12345u;
		what = (int)((rnd >> 16) % 4);
		k = 1 + (int)((rnd >> 8) % 11);          /* 1..11: never the newest */
		j = k + 1;
		switch (what) {
		case 0:
			snprintf(sql, sizeof(sql), "UPDATE events SET %s = CASE WHEN typeof(%s) = 'integer'"
				 " THEN %s + 1000 ELSE %s || 'x' END WHERE seq = %d",
				 cols[(rnd >> 4) % 8], cols[(rnd >> 4) % 8], cols[(rnd >> 4) % 8],
				 cols[(rnd >> 4) % 8], k);
			break;
		case 1:
			snprintf(sql, sizeof(sql), "DELETE FROM events WHERE seq = %d", k);
			break;
		case 2:
			snprintf(sql, sizeof(sql), "UPDATE events SET seq = -1 WHERE seq = %d;"
				 "UPDATE events SET seq = %d WHERE seq = %d;"
				 "UPDATE events SET seq = %d WHERE seq = -1", k, k, j, j);
			break;
		default:
			k = k < 2 ? 2 : k;   /* a forged row linked to the real row before it */
			snprintf(sql, sizeof(sql), "UPDATE events SET seq = -seq WHERE seq >= %d;"
				 "UPDATE events SET seq = 1 - seq WHERE seq < 0;"
				 "INSERT INTO events (station_id, seq, ts, kind, actor, detail, prev_hash,"
				 " hash) SELECT station_id, %d, ts, 'forged', 'mallory', '{}', hash, ''"
				 " FROM events WHERE seq = %d", k, k, k - 1);
			break;
		}
		copy_file("pristine.db", "work.db");
		sq = raw("work.db");
		exec(sq, sql);
		if (what == 3)
			rehash(sq, k, 0);
		sqlite3_close(sq);
		assert_int_equal(db_open("work.db", "st1", &db, &err), ST_OK);
		if (db_audit_verify(db, &res, &err) != ST_ETAMPER)
			fail_msg("case %d not caught: %s", i, sql);
		/* and named: the deleted row's successor, the swapped row, the intruder */
		if ((what == 1 && (strncmp(res.what, "deleted", 7) || res.bad_seq != k + 1)) ||
		    (what == 2 && (strncmp(res.what, "reordered", 9) || res.bad_rowid != j)) ||
		    (what == 3 && (strncmp(res.what, "inserted", 8) || res.bad_rowid != 13)))
			fail_msg("case %d (%s): row %lld seq %lld: %s", i, sql, (long long)res.bad_rowid,
				 (long long)res.bad_seq, res.what);
		counts[what]++;
		db_close(db);
	}
	for (int w = 0; w < 4; w++)
		assert_true(counts[w] > 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canonical_hash),
		cmocka_unit_test(test_append_validation),
		cmocka_unit_test(test_rewritten_and_rehashed_row),
		cmocka_unit_test(test_inserted_with_valid_hash),
		cmocka_unit_test(test_deleted_and_relinked),
		cmocka_unit_test(test_checkpoints),
		cmocka_unit_test(test_many_stations_one_file),
		cmocka_unit_test(test_long_station_id),
		cmocka_unit_test(test_random_tampering_always_caught),
	};

	return cmocka_run_group_tests_name("db_audit", tests, NULL, NULL);
}
