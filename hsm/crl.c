/* crl: revocation list signed in the HSM.  See crl.h. */
#include "hsm/crl.h"
#include "core/clock.h"
#include "core/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "hsm/issue.h"

static const struct {
	const char *name;
	int code;
} reasons[] = {
	{ "unspecified", 0 },
	{ "keyCompromise", 1 },
	{ "cACompromise", 2 },
	{ "affiliationChanged", 3 },
	{ "superseded", 4 },
	{ "cessationOfOperation", 5 },
	{ "certificateHold", 6 },
	{ "privilegeWithdrawn", 9 },
	{ "aACompromise", 10 },
};
#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

int crl_reason_code(const char *name)
{
	for (size_t i = 0; i < NREASONS; i++)
		if (!strcmp(reasons[i].name, name))
			return reasons[i].code;
	return -1;
}

const char *crl_reason_names(void)
{
	return "unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, "
	       "cessationOfOperation, certificateHold, privilegeWithdrawn, aACompromise";
}

struct collect {
	X509_CRL *crl;
	int64_t count;
	int failed;
	char bad_serial[65];
};

static int add_revoked(const struct hsm_revoked *c, void *arg)
{
	struct collect *col = arg;
	X509_REVOKED *r = NULL;
	ASN1_INTEGER *sn = NULL;
	ASN1_TIME *t = NULL;
	ASN1_ENUMERATED *reason = NULL;
	BIGNUM *bn = NULL;
	int code = crl_reason_code(c->reason);
	int ok;

	/* RFC 5280: omit the reason rather than say "unspecified" */
	ok = BN_hex2bn(&bn, c->serial_hex) > 0 && (sn = BN_to_ASN1_INTEGER(bn, NULL)) != NULL &&
	     (r = X509_REVOKED_new()) != NULL &&
	     X509_REVOKED_set_serialNumber(r, sn) &&
	     (t = ASN1_TIME_set(NULL, (time_t)(c->revoked_ms / 1000))) != NULL &&
	     X509_REVOKED_set_revocationDate(r, t) &&
	     (code <= 0 || ((reason = ASN1_ENUMERATED_new()) != NULL &&
			    ASN1_ENUMERATED_set(reason, code) &&
			    X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, reason, 0, 0) == 1)) &&
	     X509_CRL_add0_revoked(col->crl, r);
	BN_free(bn);
	ASN1_INTEGER_free(sn);
	ASN1_TIME_free(t);
	ASN1_ENUMERATED_free(reason);
	if (!ok) {
		X509_REVOKED_free(r);
		snprintf(col->bad_serial, sizeof(col->bad_serial), "%s", c->serial_hex);
		col->failed = 1;
		return 1;
	}
	col->count++;
	return 0;
}

int crl_build(struct hsm *h, const struct hsm_certstore *store, int next_update_days,
	      uint8_t **der, size_t *len, int64_t *count, struct errbuf *err)
{
	struct collect col = { 0 };
	X509 *ca = hsm_ca_cert(h);
	X509_EXTENSION *aki = NULL;
	ASN1_INTEGER *num = NULL;
	ASN1_TIME *now = NULL, *next = NULL;
	X509_CRL *parsed = NULL;
	const unsigned char *p;
	unsigned char *out = NULL;
	int64_t now_ms, crl_no;
	time_t now_s;
	int rc, n = 0, ok;

	*der = NULL;
	*len = 0;
	if (next_update_days < 1 || next_update_days > 3650)
		return errbuf_set(err, ST_EINVAL, "CRL nextUpdate must be 1..3650 days ahead");
	if (!store || !store->foreach_revoked)
		return errbuf_set(err, ST_EINVAL, "crl: no certificate store");
	now_ms = clock_realtime_ms();
	now_s = (time_t)(now_ms / 1000);
	col.crl = X509_CRL_new();
	if (!col.crl)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	rc = store->foreach_revoked(store->ctx, add_revoked, &col, err);
	if (rc != ST_OK)
		goto out;
	if (col.failed) {
		rc = errbuf_set(err, ST_ECRYPTO, "CRL: cannot add revoked serial %s", col.bad_serial);
		goto out;
	}
	/* The store numbers CRLs 1, 2, 3 ... (RFC 5280 5.2.3: it only grows, the
	 * clock may not); a store without numbering gets the signing time. */
	crl_no = now_ms;
	if (store->crl_number &&
	    (rc = store->crl_number(store->ctx, col.count,
				    &crl_no, err)) != ST_OK)
		goto out;
	ok = X509_CRL_set_version(col.crl, X509_CRL_VERSION_2) &&
	     X509_CRL_set_issuer_name(col.crl, X509_get_subject_name(ca)) &&
	     (now = ASN1_TIME_set(NULL, now_s)) != NULL &&
	     (next = X509_time_adj_ex(NULL, next_update_days, 0, &now_s)) != NULL &&
	     X509_CRL_set1_lastUpdate(col.crl, now) &&
	     X509_CRL_set1_nextUpdate(col.crl, next) &&
	     (num = ASN1_INTEGER_new()) != NULL &&
	     ASN1_INTEGER_set_int64(num, crl_no) &&
	     X509_CRL_add1_ext_i2d(col.crl, NID_crl_number, num, 0, 0) == 1 &&
	     (aki = issue_aki_ext(ca)) != NULL &&
	     X509_CRL_add_ext(col.crl, aki, -1) &&
	     X509_CRL_sort(col.crl);
	if (!ok) {
		rc = errbuf_set(err, ST_ECRYPTO, "cannot build the CRL");
		goto out;
	}
	if (X509_CRL_sign(col.crl, hsm_ca_key(h), hsm_ca_md(h)) <= 0) {
		rc = errbuf_set(err, ST_EHSM, "token '%s': signing the CRL failed", hsm_token_label(h));
		goto out;
	}
	n = i2d_X509_CRL(col.crl, &out);
	if (n <= 0) {
		rc = errbuf_set(err, ST_ECRYPTO, "cannot encode the CRL");
		goto out;
	}
	p = out;
	parsed = d2i_X509_CRL(NULL, &p, n);
	if (!parsed || p != out + n || X509_CRL_verify(parsed, X509_get0_pubkey(ca)) != 1) {
		rc = errbuf_set(err, ST_ECRYPTO, "the signed CRL does not verify with the CA certificate");
		goto out;
	}
	*der = out;
	*len = (size_t)n;
	out = NULL;
	if (count)
		*count = col.count;
	rc = ST_OK;
out:
	ERR_clear_error();
	OPENSSL_free(out);
	X509_CRL_free(parsed);
	X509_CRL_free(col.crl);
	X509_EXTENSION_free(aki);
	ASN1_INTEGER_free(num);
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	return rc;
}

int crl_write(const char *path, const uint8_t *der, size_t len, int pem, struct errbuf *err)
{
	const unsigned char *p = der;
	struct fileio_atomic a;
	X509_CRL *crl = NULL;
	BIO *bio = NULL;
	int rc, ok = 0;

	/* a CRL is public */
	if ((rc = fileio_atomic_open(&a, path, 0644, err)) != ST_OK)
		return rc;
	if (pem) {
		crl = d2i_X509_CRL(NULL, &p, (long)len);
		bio = BIO_new_fp(a.f, BIO_NOCLOSE);
		ok = crl && bio && PEM_write_bio_X509_CRL(bio, crl) == 1 && BIO_flush(bio) == 1;
		BIO_free(bio);
		X509_CRL_free(crl);
	} else {
		ok = fwrite(der, 1, len, a.f) == len;
	}
	if (!ok) {
		int e = errno;

		fileio_atomic_abort(&a);
		ERR_clear_error();
		return errbuf_set(err, ST_EIO, "%s: cannot write the CRL: %s", path, strerror(e));
	}
	if ((rc = fileio_atomic_commit(&a, err)) != ST_OK) {
		ERR_clear_error();
		return errbuf_prefix(err, "%s: cannot write the CRL: ", path);
	}
	return ST_OK;
}
