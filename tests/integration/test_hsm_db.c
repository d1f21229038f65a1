/*
 * Unit tests: hsm/ wired to the real database (SQLite file in the scratch dir)
 * and a real SoftHSM token: write-ahead records, clone detection through the
 * certificates table, the CRL from revoked rows, signed audit checkpoints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/bn.h>

#include "hsm/crl.h"
#include "hsm/csr_policy.h"
#include "db/db.h"
#include "app/certstore_db.h"
#include "hsm/hsm.h"
#include "app/checkpoint.h"
#include "hsm/hsm_checkpoint.h"
#include "tests/rig/hsm_test_util.h"
#include "hsm/issue.h"

static struct hsm_config cfg;
static struct hsm *hsm;
static struct issue_ctx *ic;
static struct csr_policy pol;
static struct db *db;
static struct hsm_certstore store;
static const char UID[] = "00112233445566778899AABB";

static int group_setup(void **state)
{
	struct issue_profile prof = { .validity_days = 365 };
	struct errbuf e;
	char path[1024];

	(void)state;
	if (tu_make_token("tokdb", "ec-p256", &cfg))
		return -1;
	snprintf(path, sizeof(path), "%s/station.db", tu_scratch());
	if (db_open(path, "st-test", &db, &e) != ST_OK || hsm_open(&cfg, &hsm, &e) != ST_OK) {
		fprintf(stderr, "setup: %s\n", e.msg);
		return -1;
	}
	app_certstore_db(&store, db);
	if (issue_ctx_new(hsm, &prof, &store, &ic, &e) != ST_OK) {
		fprintf(stderr, "setup: %s\n", e.msg);
		return -1;
	}
	csr_policy_default(&pol);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	issue_ctx_free(ic);
	hsm_close(hsm);
	db_close(db);
	return 0;
}

struct row_find {
	const char *serial;
	int status;
	int found;
};

static int find_row(const struct db_cert_row *c, void *arg)
{
	struct row_find *f = arg;

	if (strcmp(c->serial_hex, f->serial))
		return 0;
	f->status = c->status;
	f->found = 1;
	return 1;
}

static int issue_one(EVP_PKEY *k, struct issue_result *r, struct errbuf *e)
{
	uint8_t nonce[32], *der;
	size_t len = 0;
	struct csr_info ci;
	int rc;

	RAND_bytes(nonce, sizeof(nonce));
	if (tu_make_csr(k, UID, NULL, nonce, 0, &der, &len) != 0)
		return -1;
	rc = csr_check(&pol, der, len, UID, nonce, &store, &ci, e);
	if (rc == ST_OK)
		rc = issue_cert(ic, &ci, 0, r, e);
	csr_info_clear(&ci);
	OPENSSL_free(der);
	return rc;
}

static void test_issue_records_then_clone_refused(void **state)
{
	EVP_PKEY *k = tu_key("P-256");
	struct issue_result r;
	struct row_find f = { 0 };
	struct errbuf e;

	(void)state;
	assert_int_equal(issue_one(k, &r, &e), ST_OK);
	/* the row is there, issued, before the caller gets the DER */
	f.serial = r.serial_hex;
	assert_int_equal(db_cert_foreach(db, -1, find_row, &f, &e), ST_OK);
	assert_int_equal(f.found, 1);
	assert_int_equal(f.status, DB_CERT_ISSUED);
	issue_result_clear(&r);
	/* the same key again: the database remembers it */
	assert_int_equal(issue_one(k, &r, &e), ST_EEXIST);
	assert_null(r.der);
	EVP_PKEY_free(k);
}

/* Issue 12 #9: a key a board showed in an accepted CSR, whose unit then
 * failed (nothing issued), is refused on another board: the unit's writes
 * record every key seen, under the chain, and the clone check reads them.
 * The first board showing it again (a retried stage) is not a clone. */
static void test_failed_units_key_is_a_clone(void **state)
{
	static const char OTHER[] = "00112233445566778899AABC";
	uint8_t nonce[32], *der;
	size_t len = 0;
	EVP_PKEY *k = tu_key("P-256");
	struct db_verify_result res;
	struct db_unit u;
	struct csr_info ci;
	struct errbuf e;

	(void)state;
	RAND_bytes(nonce, sizeof(nonce));
	assert_int_equal(tu_make_csr(k, UID, NULL, nonce, 0, &der, &len), 0);
	assert_int_equal(csr_check(&pol, der, len, UID, nonce, &store, &ci, &e), ST_OK);
	/* the line's unit: its CSR stage marks the key, then it fails at attestation */
	memset(&u, 0, sizeof(u));
	snprintf(u.unique_id, sizeof(u.unique_id), "%s", UID);
	snprintf(u.lot, sizeof(u.lot), "L");
	snprintf(u.operator_name, sizeof(u.operator_name), "op");
	assert_int_equal(db_unit_begin(db, &u, &e), ST_OK);
	snprintf(u.stage, sizeof(u.stage), "attest");
	snprintf(u.pubkey_hash, sizeof(u.pubkey_hash), "%s", ci.pubkey_hash);
	assert_int_equal(db_unit_progress(db, &u, &e), ST_OK);
	u.status = DB_UNIT_FAIL;
	snprintf(u.reason, sizeof(u.reason), "attestation does not chain");
	assert_int_equal(db_unit_finish(db, &u, &e), ST_OK);
	csr_info_clear(&ci);
	/* the same board again: not a clone */
	assert_int_equal(csr_check(&pol, der, len, UID, nonce, &store, &ci, &e), ST_OK);
	csr_info_clear(&ci);
	OPENSSL_free(der);
	assert_int_equal(tu_make_csr(k, OTHER, NULL, nonce, 0, &der, &len), 0);
	assert_int_equal(csr_check(&pol, der, len, OTHER, nonce, &store, &ci, &e), ST_EEXIST);
	assert_int_equal(e.reason, ST_R_KEY_SEEN);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
	/* the record is a row under the chain */
	assert_int_equal(db_audit_verify(db, &res, &e), ST_OK);
}

static int count_status(const struct db_cert_row *c, void *arg)
{
	int *n = arg;

	n[c->status]++;
	return 0;
}

static int first_serial(const struct db_cert_row *c, void *arg)
{
	snprintf(arg, 65, "%s", c->serial_hex);
	return 1;
}

/* On a real database: serials are reserved in a committed batch before the
 * first signature; a context that closes voids what it did not use; the audit
 * chain records the three steps and verifies. */
static void test_serial_batch_on_database(void **state)
{
	struct issue_profile prof = { .validity_days = 30 };
	struct db_verify_result res;
	struct issue_ctx *c;
	struct issue_result r;
	struct csr_info ci;
	uint8_t nonce[32], *der;
	size_t len = 0;
	int before[5] = { 0 }, mid[5] = { 0 }, after[5] = { 0 };
	char voided[65] = "";
	EVP_PKEY *k = tu_key("P-256");
	struct errbuf e;

	(void)state;
	assert_int_equal(db_cert_foreach(db, -1, count_status, before, &e), ST_OK);
	assert_int_equal(issue_ctx_new(hsm, &prof, &store, &c, &e), ST_OK);
	RAND_bytes(nonce, sizeof(nonce));
	assert_int_equal(tu_make_csr(k, UID, NULL, nonce, 0, &der, &len), 0);
	assert_int_equal(csr_check(&pol, der, len, UID, nonce, &store, &ci, &e), ST_OK);
	assert_int_equal(issue_cert(c, &ci, 0, &r, &e), ST_OK);
	assert_int_equal(db_cert_foreach(db, -1, count_status, mid, &e), ST_OK);
	assert_int_equal(mid[DB_CERT_ISSUED], before[DB_CERT_ISSUED] + 1);
	assert_int_equal(mid[DB_CERT_RESERVED], before[DB_CERT_RESERVED] + ISSUE_SERIAL_BATCH - 1);
	issue_ctx_free(c);
	assert_int_equal(db_cert_foreach(db, -1, count_status, after, &e), ST_OK);
	assert_int_equal(after[DB_CERT_RESERVED], before[DB_CERT_RESERVED]);
	assert_int_equal(after[DB_CERT_VOID], before[DB_CERT_VOID] + ISSUE_SERIAL_BATCH - 1);
	/* a void serial cannot be revoked or issued */
	assert_int_equal(db_cert_foreach(db, DB_CERT_VOID, first_serial, voided, &e), ST_OK);
	assert_true(voided[0] != '\0');
	assert_int_equal(db_cert_revoke(db, voided, "superseded", "tester", &e), ST_ESTATE);
	assert_int_equal(db_cert_issued(db, voided, 0, UID, ci.pubkey_hash, r.der, r.der_len, &e),
			 ST_ESTATE);
	assert_int_equal(db_audit_verify(db, &res, &e), ST_OK);
	issue_result_clear(&r);
	csr_info_clear(&ci);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

static int collect_revoked(const struct db_cert_row *c, void *arg)
{
	int *n = arg;

	(*n)++;
	return 0;
}

static void test_crl_from_database(void **state)
{
	char serials[4][ISSUE_SERIAL_HEX];
	uint8_t *der;
	size_t len = 0;
	int64_t count;
	int nrev = 0;
	struct errbuf e;
	const unsigned char *p;
	X509_CRL *crl;

	(void)state;
	for (int i = 0; i < 4; i++) {
		EVP_PKEY *k = tu_key("P-256");
		struct issue_result r;

		assert_int_equal(issue_one(k, &r, &e), ST_OK);
		snprintf(serials[i], sizeof(serials[i]), "%s", r.serial_hex);
		issue_result_clear(&r);
		EVP_PKEY_free(k);
	}
	assert_int_equal(db_cert_revoke(db, serials[1], "keyCompromise", "tester", &e), ST_OK);
	assert_int_equal(db_cert_revoke(db, serials[3], "superseded", "tester", &e), ST_OK);
	assert_int_equal(db_cert_foreach(db, DB_CERT_REVOKED, collect_revoked, &nrev, &e), ST_OK);
	assert_int_equal(crl_build(hsm, &store, 7, &der, &len, &count, &e), ST_OK);
	assert_int_equal(count, nrev);
	assert_int_equal(count, 2);
	p = der;
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	assert_non_null(crl);
	assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(hsm_ca_cert(hsm))), 1);
	for (int i = 0; i < 4; i++) {
		X509_REVOKED *rev = NULL;
		ASN1_INTEGER *sn = NULL;
		BIGNUM *bn = NULL;

		assert_true(BN_hex2bn(&bn, serials[i]) > 0);
		sn = BN_to_ASN1_INTEGER(bn, NULL);
		assert_int_equal(X509_CRL_get0_by_serial(crl, &rev, sn), i == 1 || i == 3);
		ASN1_INTEGER_free(sn);
		BN_free(bn);
	}
	X509_CRL_free(crl);
	OPENSSL_free(der);
}

static void test_checkpoints_verify(void **state)
{
	struct db_verify_result res;
	struct app_checkpointer cp;
	const uint8_t *pub;
	size_t publen;
	int64_t seq = 0, head = 0;
	uint8_t hash[32];
	int did = 0;
	struct errbuf e;

	(void)state;
	assert_int_equal(db_audit_append(db, "test", "tester", NULL, NULL, &e), ST_OK);
	assert_int_equal(app_checkpoint_now(hsm, db, NULL, &seq, &e), ST_OK);
	assert_int_equal(db_audit_head(db, &head, hash, &e), ST_OK);
	assert_int_equal(head, seq + 1);    /* the checkpoint's row event */
	/* every 3 events: nothing after 2, a checkpoint after the 3rd */
	app_checkpointer_init(&cp, 3, NULL);
	cp.last_seq = head;
	for (int i = 0; i < 2; i++)
		assert_int_equal(db_audit_append(db, "test", "tester", NULL, NULL, &e), ST_OK);
	assert_int_equal(app_checkpoint_maybe(hsm, db, &cp, &did, &e), ST_OK);
	assert_int_equal(did, 0);
	assert_int_equal(db_audit_append(db, "test", "tester", NULL, NULL, &e), ST_OK);
	assert_int_equal(app_checkpoint_maybe(hsm, db, &cp, &did, &e), ST_OK);
	assert_int_equal(did, 1);
	assert_int_equal(cp.last_seq, head + 3 + 1);   /* signed head + its row event */
	app_checkpointer_destroy(&cp);
	/* the database verifies them, pinned to the HSM audit key */
	assert_int_equal(hsm_audit_pubkey(hsm, &pub, &publen), ST_OK);
	assert_int_equal(db_audit_verify_key(db, pub, publen, &res, &e), ST_OK);
	assert_int_equal(res.checkpoints, 2);
}

/* The rollback anchor in the token: each checkpoint's seq and head, read back
 * from a real SoftHSM token, one per station and chain. */
static void test_token_anchor(void **state)
{
	char chain[APP_CHAIN_ID_MAX];
	int64_t seq = 0, at_seq = 0;
	uint8_t anchored[32], stored[32];
	struct errbuf e;

	(void)state;
	assert_int_equal(app_chain_id(db, chain, &e), ST_OK);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(db_audit_append(db, "test", "tester", NULL, NULL, &e), ST_OK);
		assert_int_equal(app_checkpoint_now(hsm, db, NULL, &seq, &e), ST_OK);
		assert_int_equal(hsm_anchor_read(hsm, db_station_id(db), chain, &at_seq, anchored, &e),
				 ST_OK);
		assert_int_equal(at_seq, seq);
		assert_int_equal(db_audit_event_hash(db, seq, stored, &e), ST_OK);
		assert_memory_equal(anchored, stored, 32);
	}
	assert_int_equal(hsm_anchor_read(hsm, db_station_id(db), "0123456789abcdef", &at_seq,
					 anchored, &e), ST_ENOTFOUND);
	assert_int_equal(hsm_anchor_read(hsm, "another", chain, &at_seq, anchored, &e), ST_ENOTFOUND);
}

static void test_checkpoint_message_format(void **state)
{
	uint8_t hash[32];
	char buf[HSM_CHECKPOINT_MSG_MAX];
	int n;

	(void)state;
	for (int i = 0; i < 32; i++)
		hash[i] = (uint8_t)(0xa0 + i);
	n = hsm_checkpoint_message(buf, sizeof(buf), "bench-1", 42, hash);
	assert_int_equal(n, (int)strlen(buf));
	assert_string_equal(buf, "station-audit-checkpoint-v1\nbench-1\n42\n"
			    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\n");
	assert_int_equal(hsm_checkpoint_message(buf, 20, "bench-1", 42, hash), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issue_records_then_clone_refused),
		cmocka_unit_test(test_failed_units_key_is_a_clone),
		cmocka_unit_test(test_serial_batch_on_database),
		cmocka_unit_test(test_crl_from_database),
		cmocka_unit_test(test_checkpoints_verify),
		cmocka_unit_test(test_token_anchor),
		cmocka_unit_test(test_checkpoint_message_format),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
