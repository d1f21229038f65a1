/*
 * manifest_mchp: the manifest in the Microchip Trust Platform layout, what
 * downstream cloud-registration tools read (manifest.h gives the layout).
 *
 * Each entry is a flattened JWS whose unprotected header names the device
 * (header.uniqueId) and whose protected header names the signer by the
 * SHA-256 thumbprint of its certificate (x5t#S256) and carries that
 * certificate (x5c), so a tool that looks the signer up by thumbprint finds
 * it in the file, and our verifier checks that it is the trusted key's.
 * The signature is the same ES256 by the HSM audit key as the station's own
 * layout, over the same signing input form ("b64url(protected).b64url(payload)").
 */
#include "export/manifest.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "db/export.h"
#include "export/jose.h"

void manifest_ca_org(X509 *ca, char *out, size_t cap)
{
	X509_NAME *n = X509_get_subject_name(ca);

	out[0] = '\0';
	if (X509_NAME_get_text_by_NID(n, NID_organizationName, out, (int)cap) < 0 &&
	    X509_NAME_get_text_by_NID(n, NID_commonName, out, (int)cap) < 0)
		snprintf(out, cap, "unknown");
}

X509 *manifest_signer_cert_new(EVP_PKEY *signer_pub, X509 *ca, const char *cn)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	uint8_t rnd[16];
	BIGNUM *bn = NULL;
	int ok = x != NULL;

	/* a random positive serial: one certificate per export, never reused */
	ok = ok && RAND_bytes(rnd, sizeof(rnd)) == 1;
	rnd[0] &= 0x7f;
	ok = ok && (bn = BN_bin2bn(rnd, sizeof(rnd), NULL)) &&
		BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	ok = ok && X509_set_version(x, 2) &&
		X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
					   (const unsigned char *)cn, -1, -1, 0) &&
		X509_set_issuer_name(x, X509_get_subject_name(ca)) &&
		X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
		X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 86400) &&
		X509_set_pubkey(x, signer_pub);
	X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
	/* it signs manifests, nothing else: not a CA, digitalSignature only */
	if (ok && (ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:FALSE"))) {
		ok = X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	if (ok && (ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,digitalSignature"))) {
		ok = X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	if (ok && (ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash"))) {
		ok = X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	BN_free(bn);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* base64url of the SHA-256 of a DER (RFC 7515 §4.1.8, x5t#S256). */
static void x5t_s256(const uint8_t *der, size_t len, char out[64])
{
	uint8_t md[SHA256_DIGEST_LENGTH];
	char *s;

	SHA256(der, len, md);
	s = jose_b64url(md, sizeof(md));
	snprintf(out, 64, "%s", s ? s : "");
	free(s);
}

int manifest_mchp_signer(struct manifest_writer *w, X509 *signer_cert, struct errbuf *err)
{
	uint8_t *der = NULL;
	int n;

	if ((n = i2d_X509(signer_cert, &der)) <= 0 ||
	    EVP_PKEY_eq(X509_get0_pubkey(signer_cert), w->signer->pub) != 1) {
		OPENSSL_free(der);
		return errbuf_set(err, ST_ECRYPTO, "the signer certificate is not the signer key's");
	}
	x5t_s256(der, (size_t)n, w->signer_x5t);
	w->signer_cert_b64 = jose_b64(der, (size_t)n);
	OPENSSL_free(der);
	return w->signer_cert_b64 ? ST_OK : errbuf_set(err, ST_ENOMEM, "out of memory");
}

json_t *manifest_mchp_header(const struct manifest_writer *w)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:[s]}", "typ", "JWT", "alg", "ES256", "kid", w->kid,
			 "x5t#S256", w->signer_x5t, "x5c", w->signer_cert_b64);
}

static json_t *org(const char *name, const char *unit)
{
	return json_pack("{s:s, s:s}", "organizationName", name, "organizationalUnitName", unit);
}

json_t *manifest_mchp_payload(const struct manifest_writer *w, const struct db_export_row *r,
			      X509 *cert)
{
	char fin[32], thumb[64], part[160], *dev;
	json_t *jwk;

	if (!(jwk = jose_jwk(X509_get0_pubkey(cert))))
		return NULL;
	if (!(dev = jose_b64(r->cert_der, r->cert_der_len))) {
		json_decref(jwk);
		return NULL;
	}
	x5t_s256(r->cert_der, r->cert_der_len, thumb);
	json_object_set_new(jwk, "kid", json_string("0"));
	json_object_set_new(jwk, "x5c", json_pack("[s, s]", dev, w->ca_b64));
	json_object_set_new(jwk, "x5t#S256", json_string(thumb));
	free(dev);
	clock_iso_ms(r->finished_ms, fin);
	/* the part number: the board model and its hardware revision, as on the allowlist */
	snprintf(part, sizeof(part), "%s%s%s", r->model[0] ? r->model : "unknown",
		 r->hw_revision[0] ? "-" : "", r->hw_revision);
	return json_pack("{s:i, s:s, s:s, s:o, s:o, s:o, s:s, s:s, s:s, s:{s:[o]}}",
			 "version", 1, "model", r->model[0] ? r->model : "unknown",
			 "partNumber", part,
			 /* the board maker is not on record: the allowlist's signer is
			  * checked at import, its name is not stored */
			 "manufacturer", org(w->org, "manufacturer not recorded"),
			 "provisioner", org(w->org, r->station_id),
			 "distributor", org(w->org, r->station_id),
			 "groupId", r->lot, "provisioningTimestamp", fin,
			 "uniqueId", r->unique_id, "publicKeySet", "keys", jwk);
}
