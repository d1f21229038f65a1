/*
 * lot_build: a large lot written straight into a real SQLite file, for the
 * benchmarks (bench_export, bench_report; header only: each bench binary is
 * built from one .c file; the export unit tests take lot_cert() from here).
 * How the rows got there is not what is measured:
 * the line commits them one by one through db/, with their audit events.
 *
 * lot_build() writes n units of lot BIG (ids first_id..first_id+n-1) made at
 * station "bench" over 8 bays and 3 operators: 90 % passed (with an injected
 * certificate signed by ca when ca_key is given, none otherwise), 10 % failed
 * with one of 5 reason codes; durations of 300..1299 ms; when events is set,
 * one audit event per unit naming its board (unique_id), as `unit show`
 * searches them (not a valid chain: nothing here verifies it).
 */
#ifndef STATION_RIG_LOT_BUILD_H
#define STATION_RIG_LOT_BUILD_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sqlite3.h>

static inline void lot_die(const char *who, const char *what, const char *why)
{
	fprintf(stderr, "%s: %s: %s\n", who, what, why ? why : "failed");
	exit(1);
}

static inline X509 *lot_cert(EVP_PKEY *key, const char *cn, long serial, EVP_PKEY *ca_key, X509 *ca)
{
	X509 *x = X509_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	if (X509_sign(x, ca_key, EVP_sha256()) <= 0)
		lot_die("lot_build", "sign a certificate", NULL);
	return x;
}

/* The board's unique id of unit i (0-based), as lot_build() writes it. */
static inline void lot_uid(long i, char uid[25])
{
	snprintf(uid, 25, "%024lX", 0xA0000000L + i);
}

static inline void lot_build(const char *path, long first_id, long n, EVP_PKEY *ca_key, X509 *ca,
			     int events)
{
	static const char ins_unit[] =
		"INSERT INTO units (id, unique_id, lot, bay, operator, station_id, profile_hash,"
		" firmware_hash, cert_serial, pubkey_hash, status, stage, reason, started_ms,"
		" finished_ms, reason_code, reason_plain, duration_ms, stage_ms, model, hw_revision)"
		" VALUES (?1, ?2, 'BIG', ?3, ?10, 'bench', ?4, ?4, ?5, ?6, ?7, ?8,"
		" ?9, 1795000000000 + ?1 * 1000, 1795000000000 + ?1 * 1000 + ?11, ?12, ?13, ?11,"
		" '{\"detect\":10,\"flash\":200}', 'SB-100', 'A')";
	static const char ins_cert[] =
		"INSERT INTO certificates (serial, unit_id, unique_id, pubkey_hash, status, der,"
		" reserved_ms, issued_ms, injected_ms) VALUES (?1, ?2, ?3, ?4, 'injected', ?5,"
		" 1795000000100, 1795000000200, 1795000000300)";
	static const char ins_event[] =
		"INSERT INTO events (station_id, seq, ts, kind, actor, detail, prev_hash, hash)"
		" VALUES ('bench', ?1, '2026-11-20T10:00:00.000Z', 'unit-result', 'op', ?2, '', '')";
	static const char *const codes[] = { "timeout", "lock_refused", "attest_signature",
					     "csr_subject", "garbled" };
	static const char *const ops[] = { "olga", "ivan", "mei" };
	EVP_PKEY *dev = ca_key ? EVP_EC_gen("P-256") : NULL;
	sqlite3_stmt *su, *sc, *se;
	sqlite3 *sq;

	if (sqlite3_open(path, &sq) != SQLITE_OK ||
	    sqlite3_exec(sq, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(sq, ins_unit, -1, &su, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(sq, ins_cert, -1, &sc, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(sq, ins_event, -1, &se, NULL) != SQLITE_OK)
		lot_die("lot_build", path, sqlite3_errmsg(sq));
	for (long k = 0; k < n; k++) {
		long i = first_id - 1 + k;
		char uid[25], serial[32], pk[65], bay[8], prof[65], detail[96];
		int pass = i % 10 != 9;
		uint8_t *der = NULL;
		X509 *x;
		int len;

		lot_uid(i, uid);
		snprintf(serial, sizeof(serial), "%lx", 0x100000L + i);
		snprintf(pk, sizeof(pk), "%064lx", i);
		snprintf(bay, sizeof(bay), "1-%ld", 1 + i % 8);
		memset(prof, 'a', 64);
		prof[64] = '\0';
		sqlite3_bind_int64(su, 1, i + 1);
		sqlite3_bind_text(su, 2, uid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(su, 3, bay, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(su, 4, prof, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(su, 5, pass && ca_key ? serial : "", -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(su, 6, pk, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(su, 7, pass ? "pass" : "fail", -1, SQLITE_STATIC);
		sqlite3_bind_text(su, 8, pass ? "commit" : "flash", -1, SQLITE_STATIC);
		sqlite3_bind_text(su, 9, pass ? "certificate" : "the board stopped answering, DFU",
				  -1, SQLITE_STATIC);
		sqlite3_bind_text(su, 10, ops[i % 3], -1, SQLITE_STATIC);
		sqlite3_bind_int64(su, 11, 300 + (i * 7919) % 1000);
		sqlite3_bind_text(su, 12, pass ? "" : codes[(i / 10) % 5], -1, SQLITE_STATIC);
		sqlite3_bind_text(su, 13, pass ? "" : "the board failed", -1, SQLITE_STATIC);
		if (sqlite3_step(su) != SQLITE_DONE)
			lot_die("lot_build", "unit", sqlite3_errmsg(sq));
		sqlite3_reset(su);
		if (events) {
			snprintf(detail, sizeof(detail), "{\"unique_id\":\"%s\",\"unit\":%ld}", uid, i + 1);
			sqlite3_bind_int64(se, 1, i + 1);
			sqlite3_bind_text(se, 2, detail, -1, SQLITE_TRANSIENT);
			if (sqlite3_step(se) != SQLITE_DONE)
				lot_die("lot_build", "event", sqlite3_errmsg(sq));
			sqlite3_reset(se);
		}
		if (!pass || !ca_key)
			continue;
		x = lot_cert(dev, uid, 0x100000L + i, ca_key, ca);
		len = i2d_X509(x, &der);
		X509_free(x);
		sqlite3_bind_text(sc, 1, serial, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(sc, 2, i + 1);
		sqlite3_bind_text(sc, 3, uid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(sc, 4, pk, -1, SQLITE_TRANSIENT);
		sqlite3_bind_blob(sc, 5, der, len, SQLITE_TRANSIENT);
		OPENSSL_free(der);
		if (sqlite3_step(sc) != SQLITE_DONE)
			lot_die("lot_build", "certificate", sqlite3_errmsg(sq));
		sqlite3_reset(sc);
	}
	sqlite3_finalize(su);
	sqlite3_finalize(sc);
	sqlite3_finalize(se);
	if (sqlite3_exec(sq, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		lot_die("lot_build", "commit", sqlite3_errmsg(sq));
	sqlite3_close(sq);
	EVP_PKEY_free(dev);
}

#endif
