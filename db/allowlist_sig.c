/* allowlist_sig: the manufacturer's signature over an allowlist.  See
 * allowlist_sig.h. */
#include "db/allowlist_sig.h"
#include "core/certfile.h"
#include "core/fileio.h"
#include "core/hex.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define SIG_MAX  16384
#define CERT_MAX (256 * 1024)

static void fingerprint(X509 *x, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	if (X509_digest(x, EVP_sha256(), md, &n) == 1 && n == 32)
		hex_encode(md, 32, out);
	else
		out[0] = '\0';
}

/* The signer chains to ca, and ca alone is trusted. */
static int chains_to(X509 *signer, X509 *ca, const char **why)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok = 0;

	*why = "out of memory";
	if (store && ctx && X509_STORE_add_cert(store, ca) == 1 &&
	    X509_STORE_CTX_init(ctx, store, signer, NULL) == 1) {
		ok = X509_verify_cert(ctx) == 1;
		if (!ok)
			*why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
	}
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return ok;
}

int allowlist_sig_verify(const uint8_t *data, size_t len, const char *sig_path,
			 const char *signer_path, const char *ca_path,
			 struct allowlist_signer *out, struct errbuf *err)
{
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	X509 *cert = NULL, *ca = NULL;
	EVP_MD_CTX *md = NULL;
	const char *why;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!ca_path)
		return errbuf_set(err, ST_EINVAL, "a signed allowlist needs the manufacturer CA"
				  " (--manufacturer-ca) its signer must chain to");
	if ((rc = fileio_read(sig_path, SIG_MAX, "signature", &sig, &sig_len, err)) ||
	    (rc = certfile_load(signer_path, CERT_MAX, &cert, NULL, NULL, err)) ||
	    (rc = certfile_load(ca_path, CERT_MAX, &ca, NULL, NULL, err)))
		goto out;
	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0 ||
	    X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		rc = errbuf_set(err, ST_ECRYPTO, "%s: manufacturer certificate is expired or not yet valid",
				signer_path);
		goto out;
	}
	X509_NAME_oneline(X509_get_subject_name(cert), out->subject, (int)sizeof(out->subject));
	fingerprint(cert, out->signer_sha256);
	fingerprint(ca, out->ca_sha256);
	if (X509_check_ca(ca) < 1) {
		rc = errbuf_set(err, ST_ECRYPTO, "%s: not a CA certificate: nothing imported", ca_path);
		goto out;
	}
	if (X509_cmp(cert, ca) == 0) {
		rc = errbuf_set(err, ST_ECRYPTO, "%s: the signer must be a certificate the manufacturer"
				" CA issued, not the CA itself: nothing imported", signer_path);
		goto out;
	}
	if (!chains_to(cert, ca, &why)) {
		rc = errbuf_set(err, ST_ECRYPTO, "%s (%s) does not chain to the manufacturer CA %s: %s:"
				" nothing imported", signer_path, out->subject, ca_path, why);
		goto out;
	}
	if (!(X509_get_extension_flags(cert) & EXFLAG_KUSAGE) ||
	    !(X509_get_key_usage(cert) & KU_DIGITAL_SIGNATURE)) {
		rc = errbuf_set(err, ST_ECRYPTO, "%s (%s) has no digitalSignature key usage:"
				" nothing imported", signer_path, out->subject);
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(cert)) != 1 ||
	    EVP_DigestVerify(md, sig, sig_len, data, len) != 1) {
		rc = errbuf_set(err, ST_ECRYPTO,
				"%s: signature does not verify with the manufacturer certificate %s (%s): nothing imported",
				sig_path, signer_path, out->subject);
		goto out;
	}
	rc = ST_OK;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	X509_free(cert);
	X509_free(ca);
	free(sig);
	return rc;
}
