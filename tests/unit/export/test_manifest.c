/* Unit tests: the signed manifest -- base64url, the JWK thumbprint against an
 * independently computed vector, manifests of a real SQLite lot signed in
 * software and by a real SoftHSM audit key, verified, then refused when
 * tampered with, signed by another key, or chained to another CA. */
#include "tests/unit/export/export_rig.h"

/* ---- base64url and the key id -------------------------------------------------- */

static void test_b64url(void **state)
{
	static const uint8_t b[] = { 0xfb, 0xff, 0xfe, 'a' };
	uint8_t *d;
	size_t n;
	char *s;

	(void)state;
	s = jose_b64url(b, 4);
	assert_string_equal(s, "-__-YQ");
	d = jose_unb64url(s, strlen(s), &n);
	assert_int_equal(n, 4);
	assert_memory_equal(d, b, 4);
	free(d);
	free(s);
	assert_null(jose_unb64url("+__-YQ", 6, &n));     /* standard alphabet */
	assert_null(jose_unb64url("-__-YQ==", 8, &n));   /* padding */
	assert_null(jose_unb64url("-__-Y", 5, &n));      /* impossible length */
	assert_null(jose_unb64url("", 0, &n));
}

/* A P-256 key made with `openssl ecparam`; its RFC 7638 thumbprint computed
 * apart (python3 hashlib): base64url(SHA-256(
 * '{"crv":"P-256","kty":"EC","x":"cQ5PR8AIKXYq0e7xFcu4xXeTyL0njFh_aGE-_8Lyo_0",'
 * '"y":"9IL5sVB4x6JR874Ra4k5UD2lOCKYhEjYSqRPSSetDis"}')). */
static EVP_PKEY *vector_key(void)
{
	static const char pem[] =
		"-----BEGIN PUBLIC KEY-----\n"
		"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEcQ5PR8AIKXYq0e7xFcu4xXeTyL0n\n"
		"jFh/aGE+/8Lyo/30gvmxUHjHolHzvhFriTlQPaU4IpiESNhKpE9JJ60OKw==\n"
		"-----END PUBLIC KEY-----\n";
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);

	BIO_free(b);
	assert_non_null(k);
	return k;
}

static void test_kid(void **state)
{
	EVP_PKEY *k = vector_key(), *p384 = tu_key("P-384"), *rsa = tu_key("RSA-2048");
	struct errbuf err;
	char kid[64];

	(void)state;
	assert_int_equal(jose_kid(k, kid, &err), ST_OK);
	assert_string_equal(kid, "tzYe2KtrFeJ5BqtUrJRjZGrfubMoBrdx9iDKUPGhMcE");
	assert_int_equal(jose_kid(p384, kid, &err), ST_EINVAL);
	assert_non_null(strstr(err.msg, "P-256"));
	assert_int_equal(jose_kid(rsa, kid, &err), ST_EINVAL);
	EVP_PKEY_free(k);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(rsa);
}

static void write_manifest(struct fixture *f, const struct manifest_signer *s, X509 *ca,
			   const char *path, int want)
{
	struct db_export_counts c;
	struct mctx m;
	struct errbuf err;
	FILE *fp = fopen(path, "w");
	int rc;

	assert_int_equal(db_export_lot(f->db, "L1", &c, NULL, NULL, &err), ST_OK);
	assert_int_equal(manifest_begin(&m.w, fp, s, ca, c.pass, &err), ST_OK);
	rc = db_export_lot(f->db, "L1", &c, add_pass, &m, &err);
	assert_int_equal(rc, want);
	if (rc == ST_OK)
		assert_int_equal(manifest_end(&m.w, &err), ST_OK);
	else
		assert_int_equal(manifest_end(&m.w, &err), ST_ESTATE);
	fclose(fp);
}

/* Rewrites byte `at` of the file's nth "jws" value with c. */
static void poke(const char *src, const char *dst, int nth, size_t at, char c)
{
	char buf[65536], *p = buf;
	FILE *fp = fopen(src, "r");
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);

	fclose(fp);
	buf[n] = '\0';
	for (int i = 0; i <= nth; i++)
		p = strstr(p, "\"jws\":\"") + 7;
	p[at] = p[at] == c ? (char)(c + 1) : c;
	fp = fopen(dst, "w");
	fwrite(buf, 1, n, fp);
	fclose(fp);
}

static void test_manifest_soft(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *key = tu_key("P-256"), *other = tu_key("P-256"), *p384 = tu_key("P-384");
	struct manifest_signer s = { soft_sign, key, key };
	struct manifest_summary sum;
	struct manifest_writer w;
	struct errbuf err;
	struct pki stranger;
	FILE *fp;

	write_manifest(f, &s, f->pki.ca, "m.json", ST_OK);
	assert_int_equal(manifest_verify_file("m.json", key, NULL, &sum, &err), ST_OK);
	assert_int_equal(sum.entries, 2);
	assert_string_equal(sum.lot, "L1");
	assert_int_equal(strlen(sum.id), 32);
	assert_int_equal(manifest_verify_file("m.json", key, f->pki.ca, &sum, &err), ST_OK);

	/* the trusted CA is another one */
	pki_init(&stranger, "Test CA");
	assert_int_equal(manifest_verify_file("m.json", key, stranger.ca, &sum, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "m.json: entry 1 (" UID_A "): the chain's CA certificate is not the trusted CA"));
	/* another signer */
	assert_int_equal(manifest_verify_file("m.json", other, NULL, &sum, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "signed by another key"));
	assert_int_equal(manifest_verify_file("m.json", p384, NULL, &sum, &err), ST_EINVAL);
	/* one byte of the second entry's header, payload or signature */
	poke("m.json", "t.json", 1, 5, 'A');
	assert_int_equal(manifest_verify_file("t.json", key, NULL, &sum, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "t.json: entry 2 ("));
	poke("m.json", "t.json", 0, 200, 'A');
	assert_int_equal(manifest_verify_file("t.json", key, NULL, &sum, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "signature does not verify"));
	assert_int_equal(manifest_verify_file("nothere.json", key, NULL, &sum, &err), ST_EIO);

	/* a certificate that the CA given did not issue is refused while writing */
	write_manifest(f, &s, stranger.ca, "bad.json", ST_ECRYPTO);
	pki_free(&stranger);
	/* begin refuses no entries and a signer that is not P-256 */
	fp = fopen("x.json", "w");
	assert_int_equal(manifest_begin(&w, fp, &s, f->pki.ca, 0, &err), ST_EINVAL);
	s.pub = p384;
	assert_int_equal(manifest_begin(&w, fp, &s, f->pki.ca, 1, &err), ST_EINVAL);
	fclose(fp);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
	EVP_PKEY_free(p384);
}

/* A certificate without DER: schema 2 allows it for a revoked row (a serial
 * reserved, perhaps signed in a crash, never recorded, then revoked by
 * recovery).  The CSV and JSON lines still list it (serial and status, no
 * DER); a manifest refuses a passed unit without its signed certificate, by
 * name. */
static void test_manifest_missing_der(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *key = tu_key("P-256");
	struct manifest_signer s = { soft_sign, key, key };
	struct errbuf err;
	char sql[256];
	sqlite3 *sq;

	assert_int_equal(sqlite3_open(f->path, &sq), SQLITE_OK);
	snprintf(sql, sizeof(sql), "UPDATE certificates SET der = NULL, status = 'revoked',"
		 " revoke_reason = 'unspecified' WHERE serial = '%s'", f->serial_pass);
	assert_int_equal(sqlite3_exec(sq, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(sq);
	{
		struct writer w = { NULL, 1 };
		char *buf = NULL;
		size_t len = 0;

		for (w.csv = 1; w.csv >= 0; w.csv--) {
			w.f = open_memstream(&buf, &len);
			assert_int_equal(db_export_lot(f->db, "L1", NULL, write_row, &w, &err), ST_OK);
			fclose(w.f);
			assert_non_null(strstr(buf, f->serial_pass));
			if (w.csv)
				assert_non_null(strstr(buf, ",unspecified,,"));  /* no DER */
			else
				assert_non_null(strstr(buf, "\"status\":\"revoked\",\"issued\""));
			free(buf);
		}
	}
	write_manifest(f, &s, f->pki.ca, "nd.json", ST_ESTATE);
	{
		struct mctx m;
		struct db_export_counts c;
		FILE *fp = fopen("nd.json", "w");

		assert_int_equal(manifest_begin(&m.w, fp, &s, f->pki.ca, 2, &err), ST_OK);
		assert_int_equal(db_export_lot(f->db, "L1", &c, add_pass, &m, &m.err), ST_ESTATE);
		assert_non_null(strstr(m.err.msg, " (" UID_A ") passed but has no signed certificate"));
		assert_int_equal(manifest_end(&m.w, &err), ST_ESTATE);
		fclose(fp);
	}
	EVP_PKEY_free(key);
}

static int hsm_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t **sig, size_t *sig_len,
		    struct errbuf *err)
{
	return hsm_audit_sign(ctx, msg, len, sig, sig_len, err);
}

/* The real thing: the audit key of a SoftHSM token signs, the CA of that
 * token is x5c[1]. */
static void test_manifest_softhsm(void **state)
{
	struct fixture *f = *state;
	struct hsm_config cfg;
	struct hsm *h = NULL;
	struct errbuf err;
	struct manifest_signer s = { 0 };
	struct manifest_summary sum;
	struct mctx m;
	const uint8_t *der;
	const unsigned char *p;
	size_t len, dlen;
	char hex[65];
	uint8_t *dev;
	int64_t id;
	FILE *fp;

	assert_int_equal(tu_make_token("exp-tok", "ec-p256", &cfg), 0);
	assert_int_equal(hsm_open(&cfg, &h, &err), ST_OK);
	assert_int_equal(hsm_audit_pubkey(h, &der, &len), ST_OK);
	p = der;
	s.pub = d2i_PUBKEY(NULL, &p, (long)len);
	s.sign = hsm_sign;
	s.ctx = h;
	/* a unit whose certificate the token's CA signed */
	{
		X509 *x;
		EVP_PKEY *k = tu_key("P-256");

		x = make_cert(k, UID_C, 0x3001, hsm_ca_key(h), hsm_ca_cert(h));
		dev = NULL;
		dlen = (size_t)i2d_X509(x, &dev);
		X509_free(x);
		EVP_PKEY_free(k);
	}
	snprintf(hex, sizeof(hex), "3001");
	id = unit(f->db, UID_C, "L4", "1-1", f->profile_hash);
	{
		const char *serials[] = { hex };

		assert_int_equal(db_cert_reserve(f->db, serials, 1, &err), ST_OK);
	}
	assert_int_equal(db_cert_issued(f->db, hex, id, UID_C, PK("7"), dev, dlen, &err), ST_OK);
	assert_int_equal(db_cert_injected(f->db, hex, &err), ST_OK);
	finish(f->db, id, UID_C, "L4", DB_UNIT_PASS, "commit", "certificate", hex);
	OPENSSL_free(dev);

	fp = fopen("hsm.json", "w");
	assert_int_equal(manifest_begin(&m.w, fp, &s, hsm_ca_cert(h), 1, &err), ST_OK);
	assert_int_equal(db_export_lot(f->db, "L4", NULL, add_pass, &m, &err), ST_OK);
	assert_int_equal(manifest_end(&m.w, &err), ST_OK);
	fclose(fp);
	assert_int_equal(manifest_verify_file("hsm.json", s.pub, hsm_ca_cert(h), &sum, &err), ST_OK);
	assert_int_equal(sum.entries, 1);
	assert_string_equal(sum.lot, "L4");
	EVP_PKEY_free(s.pub);
	hsm_close(h);
}

/* The Microchip Trust Platform layout: written with a software signer whose
 * certificate the software CA issued, verified, and refused when a payload,
 * the signer certificate or the thumbprint is not what was signed. */
static void test_manifest_microchip(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *key = tu_key("P-256"), *other = tu_key("P-256");
	struct manifest_signer s = { soft_sign, key, key };
	X509 *cert = manifest_signer_cert_new(key, f->pki.ca, "manifest signer (test)");
	X509 *wrong = manifest_signer_cert_new(other, f->pki.ca, "manifest signer (other)");
	struct db_export_counts c;
	struct manifest_summary sum;
	struct errbuf err;
	struct mctx m;
	char buf[65536], org[128], *p, was;
	size_t n;
	FILE *fp;

	assert_non_null(cert);
	assert_true(X509_sign(cert, f->pki.ca_key, EVP_sha256()) > 0);
	assert_true(X509_sign(wrong, f->pki.ca_key, EVP_sha256()) > 0);
	manifest_ca_org(f->pki.ca, org, sizeof(org));
	assert_string_equal(org, "Test CA");
	/* a certificate of another key is refused at the start */
	assert_int_equal(db_export_lot(f->db, "L1", &c, NULL, NULL, &err), ST_OK);
	fp = fopen("x.json", "w");
	assert_int_equal(manifest_begin_microchip(&m.w, fp, &s, f->pki.ca, wrong, org, c.pass, &err),
			 ST_ECRYPTO);
	assert_int_equal(manifest_begin_microchip(&m.w, fp, &s, f->pki.ca, cert, org, c.pass, &err),
			 ST_OK);
	assert_int_equal(db_export_lot(f->db, "L1", &c, add_pass, &m, &err), ST_OK);
	assert_int_equal(manifest_end(&m.w, &err), ST_OK);
	fclose(fp);
	assert_int_equal(manifest_verify_file("x.json", key, f->pki.ca, &sum, &err), ST_OK);
	assert_int_equal(sum.layout, MANIFEST_MICROCHIP);
	assert_int_equal(sum.entries, 2);
	assert_string_equal(sum.lot, "L1");
	assert_int_equal(manifest_verify_file("x.json", other, NULL, &sum, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "signed by another key"));

	fp = fopen("x.json", "r");
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	/* one byte of the first payload changed: the signature no longer holds */
	p = strstr(buf, "\"payload\":\"") + 20;
	was = *p;
	*p = *p == 'A' ? 'B' : 'A';
	fp = fopen("y.json", "w");
	fwrite(buf, 1, n, fp);
	fclose(fp);
	assert_int_equal(manifest_verify_file("y.json", key, NULL, &sum, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "y.json: entry 1 (" UID_A "): the signature does not verify"));
	*p = was;
	/* the header's uniqueId is another board's */
	p = strstr(buf, "\"header\":{\"uniqueId\":\"") + 22;
	p[23] = p[23] == '7' ? '8' : '7';
	fp = fopen("z.json", "w");
	fwrite(buf, 1, n, fp);
	fclose(fp);
	assert_int_equal(manifest_verify_file("z.json", key, NULL, &sum, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "the payload is version 1 for uniqueId"));
	/* a CA that did not issue the signer certificate */
	{
		struct pki stranger;

		pki_init(&stranger, "Test CA");
		assert_int_equal(manifest_verify_file("x.json", key, stranger.ca, &sum, &err),
				 ST_ETAMPER);
		assert_non_null(strstr(err.msg, "not issued by the trusted CA"));
		pki_free(&stranger);
	}
	X509_free(cert);
	X509_free(wrong);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_kid),
		cmocka_unit_test_setup_teardown(test_manifest_soft, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_missing_der, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_softhsm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_microchip, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
