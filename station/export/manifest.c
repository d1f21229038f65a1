/* manifest: writing the signed per-lot manifest.  See manifest.h. */
#include "export/manifest.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "core/hex.h"
#include "db/export.h"
#include "export/jose.h"

int manifest_begin(struct manifest_writer *w, FILE *out, const struct manifest_signer *s,
		   X509 *ca, int64_t count, struct errbuf *err)
{
	uint8_t rnd[16], *der = NULL;
	int rc, n;

	memset(w, 0, sizeof(*w));
	if (count < 1)
		return errbuf_set(err, ST_EINVAL, "a manifest needs at least one passed unit");
	if ((rc = jose_kid(s->pub, w->kid, err)))
		return rc;
	if ((n = i2d_X509(ca, &der)) <= 0)
		return errbuf_set(err, ST_ECRYPTO, "cannot encode the CA certificate");
	w->ca_b64 = jose_b64(der, (size_t)n);
	OPENSSL_free(der);
	if (!w->ca_b64)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		free(w->ca_b64);
		w->ca_b64 = NULL;
		return errbuf_set(err, ST_ECRYPTO, "no randomness for the manifest id");
	}
	hex_encode(rnd, sizeof(rnd), w->id);
	clock_iso_ms(clock_realtime_ms(), w->generated);
	w->out = out;
	w->signer = s;
	w->ca = ca;
	w->count = count;
	fputs("[\n", out);
	return ST_OK;
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static json_t *entry_payload(const struct manifest_writer *w, const struct db_export_row *r,
			     X509 *cert)
{
	char fin[32], sha[65], *dev;
	json_t *jwk, *p;

	if (!(jwk = jose_jwk(X509_get0_pubkey(cert))))
		return NULL;
	if (!(dev = jose_b64(r->cert_der, r->cert_der_len))) {
		json_decref(jwk);
		return NULL;
	}
	json_object_set_new(jwk, "x5c", json_pack("[s, s]", dev, w->ca_b64));
	free(dev);
	clock_iso_ms(r->finished_ms, fin);
	jose_sha256_hex(r->cert_der, r->cert_der_len, sha);
	/* as in the JSON lines: an unknown profile or hash is null, not "" */
	p = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s,"
		      " s:{s:o, s:o, s:s}, s:o, s:o, s:o,"
		      " s:{s:s, s:s, s:s}, s:{s:[o]}, s:{s:s, s:I, s:I, s:s}}",
		      "version", MANIFEST_VERSION, "uniqueId", r->unique_id, "lot", r->lot,
		      "stationId", r->station_id, "bay", r->bay, "provisioningTimestamp", fin,
		      "profile", "name", str_or_null(r->profile_name),
		      "version", r->profile_version > 0 ? json_integer(r->profile_version) : json_null(),
		      "sha256", r->profile_hash,
		      "firmwareSha256", str_or_null(r->firmware_hash),
		      "publicKeySha256", str_or_null(r->pubkey_hash),
		      "reworkId", r->rework_id > 0 ? json_integer(r->rework_id) : json_null(),
		      "certificate", "serial", r->cert_serial, "status", r->cert_status, "sha256", sha,
		      "publicKeySet", "keys", jwk,
		      "manifest", "id", w->id, "index", (json_int_t)(w->written + 1),
		      "count", (json_int_t)w->count, "generated", w->generated);
	return p;
}

static int manifest_sign(struct manifest_writer *w, const struct db_export_row *r, const char *input,
		  char **s64, struct errbuf *err)
{
	uint8_t *der = NULL;
	size_t der_len = 0;
	int rc;

	*s64 = NULL;
	if ((rc = w->signer->sign(w->signer->ctx, (const uint8_t *)input, strlen(input), &der,
				  &der_len, err)))
		return errbuf_prefix(err, "unit %lld (%s): sign manifest entry: ",
				     (long long)r->unit_id, r->unique_id);
	*s64 = jose_es256_sig(der, der_len);
	OPENSSL_free(der);
	if (!*s64)
		return errbuf_set(err, ST_ECRYPTO, "unit %lld (%s): the signer returned no P-256 ECDSA signature",
				  (long long)r->unit_id, r->unique_id);
	return ST_OK;
}

int manifest_add(struct manifest_writer *w, const struct db_export_row *r, struct errbuf *err)
{
	const unsigned char *p;
	char *hdr = NULL, *pay = NULL, *h64 = NULL, *p64 = NULL, *s64 = NULL, *input = NULL;
	char *line = NULL;
	X509 *cert = NULL;
	json_t *j;
	int rc = ST_OK;

	if (w->written >= w->count)
		return errbuf_set(err, ST_ESTATE, "manifest: more passed units than counted");
	if (!r->cert_der || !r->cert_der_len || !r->cert_serial[0])
		return errbuf_set(err, ST_ESTATE,
				  "unit %lld (%s) passed but has no signed certificate in the database",
				  (long long)r->unit_id, r->unique_id);
	p = r->cert_der;
	cert = d2i_X509(NULL, &p, (long)r->cert_der_len);
	if (!cert || p != r->cert_der + r->cert_der_len) {
		rc = errbuf_set(err, ST_ECRYPTO, "unit %lld (%s): certificate %s is not valid DER",
				(long long)r->unit_id, r->unique_id, r->cert_serial);
		goto out;
	}
	if (X509_check_issued(w->ca, cert) != X509_V_OK ||
	    X509_verify(cert, X509_get0_pubkey(w->ca)) != 1) {
		rc = errbuf_set(err, ST_ECRYPTO,
				"unit %lld (%s): certificate %s was not issued by the CA certificate given (ca_cert)",
				(long long)r->unit_id, r->unique_id, r->cert_serial);
		goto out;
	}
	if (w->layout == MANIFEST_MICROCHIP)
		j = manifest_mchp_header(w);
	else
		j = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "kid", w->kid, "typ", MANIFEST_TYP);
	hdr = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	j = w->layout == MANIFEST_MICROCHIP ? manifest_mchp_payload(w, r, cert) :
		entry_payload(w, r, cert);
	pay = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!hdr || !pay) {
		rc = errbuf_set(err, ST_EINVAL, "unit %lld (%s): cannot encode its manifest entry "
				"(a field is not UTF-8, or the key type has no JWK)",
				(long long)r->unit_id, r->unique_id);
		goto out;
	}
	h64 = jose_b64url((const uint8_t *)hdr, strlen(hdr));
	p64 = jose_b64url((const uint8_t *)pay, strlen(pay));
	if (!h64 || !p64 || asprintf(&input, "%s.%s", h64, p64) < 0) {
		input = NULL;
		rc = errbuf_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = manifest_sign(w, r, input, &s64, err)))
		goto out;
	if (w->layout == MANIFEST_MICROCHIP)     /* a flattened JWS (RFC 7515 §7.2.2) */
		j = json_pack("{s:s, s:s, s:{s:s}, s:s}", "payload", p64, "protected", h64,
			      "header", "uniqueId", r->unique_id, "signature", s64);
	else
		j = json_pack("{s:s, s:s++}", "uniqueId", r->unique_id, "jws", input, ".", s64);
	line = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!line) {
		rc = errbuf_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	fprintf(w->out, "%s%s", w->written ? ",\n" : "", line);
	w->written++;
out:
	X509_free(cert);
	free(hdr);
	free(pay);
	free(h64);
	free(p64);
	free(s64);
	free(input);
	free(line);
	return rc;
}

int manifest_begin_microchip(struct manifest_writer *w, FILE *out,
			     const struct manifest_signer *s, X509 *ca, X509 *signer_cert,
			     const char *org, int64_t count, struct errbuf *err)
{
	int rc;

	/* refused before a byte is written */
	if (!signer_cert || EVP_PKEY_eq(X509_get0_pubkey(signer_cert), s->pub) != 1)
		return errbuf_set(err, ST_ECRYPTO, "the signer certificate is not the signer key's");
	if ((rc = manifest_begin(w, out, s, ca, count, err)))
		return rc;
	w->layout = MANIFEST_MICROCHIP;
	snprintf(w->org, sizeof(w->org), "%s", org);
	if ((rc = manifest_mchp_signer(w, signer_cert, err)))
		ST_IGNORE(manifest_end(w, NULL));
	return rc;
}

int manifest_end(struct manifest_writer *w, struct errbuf *err)
{
	free(w->ca_b64);
	w->ca_b64 = NULL;
	free(w->signer_cert_b64);
	w->signer_cert_b64 = NULL;
	if (w->written != w->count)
		return errbuf_set(err, ST_ESTATE, "manifest: %lld entries written, %lld expected",
				  (long long)w->written, (long long)w->count);
	fputs("\n]\n", w->out);
	return ST_OK;
}
