/* manifest_verify: offline verification of a manifest.  See manifest.h.
 * No database and no token: only the file, the signer's public key and,
 * optionally, the trusted CA certificate. */
#include "export/manifest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/x509v3.h>

#include "core/fileio.h"
#include "core/ids.h"
#include "export/jose.h"

static X509 *x5c_cert(json_t *a, size_t i, uint8_t **der, size_t *len);

struct verify {
	enum manifest_layout layout;
	const char *path;
	EVP_PKEY *signer;
	X509 *trusted_ca;
	uint8_t *ca_der;          /* trusted_ca's DER, when given */
	int ca_len;
	char kid[64];
	size_t n;
	unsigned char *seen;      /* index seen, [1..n] */
	char (*uids)[25];
	struct manifest_summary *sum;
	/* the chain's CA, parsed once: every entry of a manifest carries the same */
	char *ca_b64;
	X509 *ca;
	uint8_t *ca_x5c_der;
	size_t ca_x5c_len;
	/* MANIFEST_MICROCHIP: the signer certificate of the headers, checked once */
	char *signer_b64;
};

/* base64url SHA-256 of a DER (x5t#S256). */
static void x5t_s256(const uint8_t *der, size_t len, char out[65])
{
	uint8_t md[32];
	unsigned int n = 0;
	char *s;

	EVP_Digest(der, len, md, &n, EVP_sha256(), NULL);
	s = jose_b64url(md, sizeof(md));
	snprintf(out, 65, "%s", s ? s : "");
	free(s);
}

/* x5c[1] as a certificate, from the cache when it is the previous entry's. */
static X509 *chain_ca(struct verify *v, json_t *x5c)
{
	const char *s = json_string_value(json_array_get(x5c, 1));

	if (!s)
		return NULL;
	if (v->ca && !strcmp(s, v->ca_b64))
		return v->ca;
	X509_free(v->ca);
	free(v->ca_b64);
	free(v->ca_x5c_der);
	v->ca_b64 = strdup(s);
	v->ca = v->ca_b64 ? x5c_cert(x5c, 1, &v->ca_x5c_der, &v->ca_x5c_len) : NULL;
	return v->ca;
}

static json_t *decode_json(const char *s, size_t len)
{
	size_t n;
	uint8_t *b = jose_unb64url(s, len, &n);
	json_t *j;

	if (!b)
		return NULL;
	j = json_loadb((const char *)b, n, JSON_REJECT_DUPLICATES, NULL);
	free(b);
	if (j && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

static const char *str_at(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static X509 *x5c_cert(json_t *a, size_t i, uint8_t **der, size_t *len)
{
	const char *s = json_string_value(json_array_get(a, i));
	const unsigned char *p;
	X509 *x;

	*der = s ? jose_unb64(s, strlen(s), len) : NULL;
	if (!*der)
		return NULL;
	p = *der;
	x = d2i_X509(NULL, &p, (long)*len);
	if (x && p != *der + *len) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

/* Serial as stored: lower-case hex without leading zeros. */
static int serial_is(X509 *x, const char *want)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	int ok = 0;

	if (hex) {
		for (char *c = hex; *c; c++)
			if (*c >= 'A' && *c <= 'F')
				*c = (char)(*c - 'A' + 'a');
		ok = want && !strcmp(hex[0] == '0' && hex[1] ? hex + 1 : hex, want);
	}
	OPENSSL_free(hex);
	BN_free(bn);
	return ok;
}

/* The certificate chain and key of one payload. */
static int check_chain(struct verify *v, json_t *pay, const char *uid, struct errbuf *err)
{
	json_t *keys = json_object_get(json_object_get(pay, "publicKeySet"), "keys");
	json_t *key = json_array_get(keys, 0), *x5c = json_object_get(key, "x5c"), *mine = NULL;
	json_t *cert = json_object_get(pay, "certificate");
	uint8_t *dder = NULL;
	size_t dlen = 0;
	X509 *dev = NULL, *ca;
	char cn[64] = "", sha[65];
	const char *k;
	json_t *val;
	int rc = ST_ETAMPER;

	if (json_array_size(keys) != 1 || !json_is_object(key) || json_array_size(x5c) != 2) {
		errbuf_set(err, rc, "publicKeySet must hold one key with an x5c chain of 2");
		goto out;
	}
	if (!(dev = x5c_cert(x5c, 0, &dder, &dlen)) || !(ca = chain_ca(v, x5c))) {
		errbuf_set(err, rc, "x5c holds something that is not a base64 DER certificate");
		goto out;
	}
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(dev), NID_commonName, cn,
				      sizeof(cn)) < 0 || strcmp(cn, uid)) {
		errbuf_set(err, rc, "the certificate's subject CN is \"%s\", not the unique id", cn);
		goto out;
	}
	if (v->layout == MANIFEST_MICROCHIP) {
		/* the key names its certificate by thumbprint (x5t#S256) */
		x5t_s256(dder, dlen, sha);
		if (!str_at(key, "x5t#S256") || strcmp(sha, str_at(key, "x5t#S256"))) {
			errbuf_set(err, rc, "the key's x5t#S256 is not its certificate's");
			goto out;
		}
	} else if (!serial_is(dev, str_at(cert, "serial"))) {
		errbuf_set(err, rc, "the certificate's serial is not certificate.serial");
		goto out;
	} else {
		jose_sha256_hex(dder, dlen, sha);
		if (!str_at(cert, "sha256") || strcmp(sha, str_at(cert, "sha256"))) {
			errbuf_set(err, rc, "the certificate's SHA-256 is not certificate.sha256");
			goto out;
		}
	}
	if (!(mine = jose_jwk(X509_get0_pubkey(dev)))) {
		errbuf_set(err, rc, "the certificate's public key has no JWK form");
		goto out;
	}
	json_object_foreach(mine, k, val) {
		if (!json_equal(val, json_object_get(key, k))) {
			errbuf_set(err, rc, "the JWK's \"%s\" is not the certificate's public key", k);
			goto out;
		}
	}
	if (X509_check_issued(ca, dev) != X509_V_OK || X509_verify(dev, X509_get0_pubkey(ca)) != 1) {
		errbuf_set(err, rc, "the certificate is not signed by the chain's CA certificate");
		goto out;
	}
	if (v->ca_der && (v->ca_x5c_len != (size_t)v->ca_len ||
			  memcmp(v->ca_x5c_der, v->ca_der, v->ca_x5c_len))) {
		errbuf_set(err, rc, "the chain's CA certificate is not the trusted CA (--ca)");
		goto out;
	}
	rc = ST_OK;
out:
	json_decref(mine);
	X509_free(dev);
	free(dder);
	return rc;
}

static int header_ok(json_t *hdr, const char *typ)
{
	return str_at(hdr, "alg") && !strcmp(str_at(hdr, "alg"), "ES256") &&
		!json_object_get(hdr, "crit") && str_at(hdr, "typ") &&
		!strcmp(str_at(hdr, "typ"), typ);
}

/* Microchip layout: the protected header's certificate is the trusted
 * signer's, its thumbprint is x5t#S256, and with --ca the CA issued it. */
static int check_signer_cert(struct verify *v, json_t *hdr, struct errbuf *err)
{
	json_t *x5c = json_object_get(hdr, "x5c");
	const char *b64 = json_string_value(json_array_get(x5c, 0));
	uint8_t *der = NULL;
	size_t len = 0;
	char thumb[65];
	X509 *x;
	int rc = ST_ETAMPER;

	if (json_array_size(x5c) != 1 || !b64)
		return errbuf_set(err, rc, "the protected header has no x5c signer certificate");
	if (v->signer_b64 && !strcmp(v->signer_b64, b64) && str_at(hdr, "x5t#S256"))
		goto thumbprint;
	if (!(x = x5c_cert(x5c, 0, &der, &len))) {
		errbuf_set(err, rc, "the header's x5c is not a base64 DER certificate");
		goto out;
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(x), v->signer) != 1)
		errbuf_set(err, rc, "the header's signer certificate is not the trusted signer key's");
	else if (v->trusted_ca && (X509_check_issued(v->trusted_ca, x) != X509_V_OK ||
				   X509_verify(x, X509_get0_pubkey(v->trusted_ca)) != 1))
		errbuf_set(err, rc, "the signer certificate was not issued by the trusted CA (--ca)");
	else
		rc = ST_OK;
	X509_free(x);
	if (rc)
		goto out;
	free(v->signer_b64);
	v->signer_b64 = strdup(b64);
thumbprint:
	if (!der && !(der = jose_unb64(b64, strlen(b64), &len))) {
		rc = errbuf_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	x5t_s256(der, len, thumb);
	rc = str_at(hdr, "x5t#S256") && !strcmp(thumb, str_at(hdr, "x5t#S256")) ? ST_OK :
		errbuf_set(err, ST_ETAMPER, "x5t#S256 is not the signer certificate's thumbprint");
out:
	free(der);
	return rc;
}

/* One entry of the Microchip layout: a flattened JWS. */
static int verify_entry_mchp(struct verify *v, json_t *e, size_t i, struct errbuf *err)
{
	const char *h64 = str_at(e, "protected"), *p64 = str_at(e, "payload");
	const char *s64 = str_at(e, "signature");
	const char *uid = str_at(json_object_get(e, "header"), "uniqueId"), *group;
	json_t *hdr = NULL, *pay = NULL;
	uint8_t *sig = NULL;
	char *input = NULL;
	size_t sl = 0;
	int rc = ST_ETAMPER;

	if (!json_is_object(e) || json_object_size(e) != 4 || !h64 || !p64 || !s64 || !uid ||
	    json_object_size(json_object_get(e, "header")) != 1)
		return errbuf_set(err, rc, "not a flattened JWS {payload, protected, header{uniqueId}, signature}");
	if (!ids_uid_valid(uid))
		return errbuf_set(err, rc, "header.uniqueId is not 24 upper-case hex digits");
	if (strlen(h64) > JOSE_MAX_B64 || strlen(p64) > JOSE_MAX_B64)
		return errbuf_set(err, rc, "the JWS is larger than %u characters", JOSE_MAX_B64);
	if (!(hdr = decode_json(h64, strlen(h64)))) {
		errbuf_set(err, rc, "the protected header is not base64url JSON");
		goto out;
	}
	if (!header_ok(hdr, "JWT")) {
		errbuf_set(err, rc, "the header must be alg ES256, typ JWT, no crit");
		goto out;
	}
	if (!str_at(hdr, "kid") || strcmp(str_at(hdr, "kid"), v->kid)) {
		errbuf_set(err, rc, "signed by another key (kid %.64s), not the trusted signer",
			   str_at(hdr, "kid") ? str_at(hdr, "kid") : "none");
		goto out;
	}
	if ((rc = check_signer_cert(v, hdr, err)))
		goto out;
	rc = ST_ETAMPER;
	if (asprintf(&input, "%s.%s", h64, p64) < 0) {
		input = NULL;
		rc = errbuf_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	sig = jose_unb64url(s64, strlen(s64), &sl);
	if (!sig || sl != 64 || !jose_es256_verify(v->signer, input, strlen(input), sig)) {
		errbuf_set(err, rc, "the signature does not verify with the trusted signer key");
		goto out;
	}
	/* signed: from here on the payload is the station's own word */
	if (!(pay = decode_json(p64, strlen(p64)))) {
		errbuf_set(err, rc, "the payload is not base64url JSON");
		goto out;
	}
	if (json_integer_value(json_object_get(pay, "version")) != 1 ||
	    !str_at(pay, "uniqueId") || strcmp(str_at(pay, "uniqueId"), uid)) {
		errbuf_set(err, rc, "the payload is version %lld for uniqueId %.24s, not this entry's",
			   (long long)json_integer_value(json_object_get(pay, "version")),
			   str_at(pay, "uniqueId") ? str_at(pay, "uniqueId") : "none");
		goto out;
	}
	if (!(group = str_at(pay, "groupId")) || strlen(group) > 64) {
		errbuf_set(err, rc, "the payload has no groupId (the lot)");
		goto out;
	}
	if (i == 0)
		snprintf(v->sum->lot, sizeof(v->sum->lot), "%s", group);
	if (strcmp(v->sum->lot, group)) {
		errbuf_set(err, rc, "belongs to group %s, not %s", group, v->sum->lot);
		goto out;
	}
	snprintf(v->uids[i], sizeof(v->uids[i]), "%s", uid);
	rc = check_chain(v, pay, uid, err);
out:
	json_decref(hdr);
	json_decref(pay);
	free(sig);
	free(input);
	return rc;
}

/* One manifest entry: its header, signature, payload and chain. */
static int verify_entry(struct verify *v, json_t *e, size_t i, struct errbuf *err)
{
	const char *uid = str_at(e, "uniqueId"), *jws = str_at(e, "jws"), *d1, *d2;
	json_t *hdr = NULL, *pay = NULL, *man;
	uint8_t *sig = NULL;
	size_t len, sl = 0;
	json_int_t idx, cnt;
	int rc = ST_ETAMPER;

	if (!json_is_object(e) || json_object_size(e) != 2 || !uid || !jws)
		return errbuf_set(err, rc, "not an object {\"uniqueId\", \"jws\"}");
	if (!ids_uid_valid(uid))
		return errbuf_set(err, rc, "uniqueId is not 24 upper-case hex digits");
	len = strlen(jws);
	d1 = strchr(jws, '.');
	d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (len > JOSE_MAX_B64 || !d2 || strchr(d2 + 1, '.'))
		return errbuf_set(err, rc, "jws is not a compact JWS (three parts)");
	if (!(hdr = decode_json(jws, (size_t)(d1 - jws)))) {
		errbuf_set(err, rc, "the protected header is not base64url JSON");
		goto out;
	}
	if (!header_ok(hdr, MANIFEST_TYP)) {
		errbuf_set(err, rc, "the header must be alg ES256, typ %s, no crit", MANIFEST_TYP);
		goto out;
	}
	if (!str_at(hdr, "kid") || strcmp(str_at(hdr, "kid"), v->kid)) {
		errbuf_set(err, rc, "signed by another key (kid %.64s), not the trusted signer",
			   str_at(hdr, "kid") ? str_at(hdr, "kid") : "none");
		goto out;
	}
	sig = jose_unb64url(d2 + 1, strlen(d2 + 1), &sl);
	if (!sig || sl != 64 || !jose_es256_verify(v->signer, jws, (size_t)(d2 - jws), sig)) {
		errbuf_set(err, rc, "the signature does not verify with the trusted signer key");
		goto out;
	}
	/* signed: from here on the payload is the station's own word */
	if (!(pay = decode_json(d1 + 1, (size_t)(d2 - d1 - 1)))) {
		errbuf_set(err, rc, "the payload is not base64url JSON");
		goto out;
	}
	if (json_integer_value(json_object_get(pay, "version")) != MANIFEST_VERSION ||
	    !str_at(pay, "uniqueId") || strcmp(str_at(pay, "uniqueId"), uid)) {
		errbuf_set(err, rc, "the payload is version %lld for uniqueId %.24s, not this entry's",
			   (long long)json_integer_value(json_object_get(pay, "version")),
			   str_at(pay, "uniqueId") ? str_at(pay, "uniqueId") : "none");
		goto out;
	}
	man = json_object_get(pay, "manifest");
	idx = json_integer_value(json_object_get(man, "index"));
	cnt = json_integer_value(json_object_get(man, "count"));
	if (!str_at(man, "id") || strlen(str_at(man, "id")) != 32 || !str_at(pay, "lot") ||
	    strlen(str_at(pay, "lot")) > 64) {
		errbuf_set(err, rc, "the payload has no manifest id or lot");
		goto out;
	}
	if (i == 0) {
		snprintf(v->sum->id, sizeof(v->sum->id), "%s", str_at(man, "id"));
		snprintf(v->sum->lot, sizeof(v->sum->lot), "%s", str_at(pay, "lot"));
	}
	if (strcmp(v->sum->id, str_at(man, "id")) || strcmp(v->sum->lot, str_at(pay, "lot"))) {
		errbuf_set(err, rc, "belongs to manifest %s of lot %s, not %s of lot %s",
			   str_at(man, "id"), str_at(pay, "lot"), v->sum->id, v->sum->lot);
		goto out;
	}
	if (cnt != (json_int_t)v->n || idx < 1 || idx > cnt) {
		errbuf_set(err, rc, "is entry %lld of %lld, but the file holds %zu entries "
			   "(entries were added or removed)", (long long)idx, (long long)cnt, v->n);
		goto out;
	}
	if (v->seen[idx]) {
		errbuf_set(err, rc, "index %lld appears twice", (long long)idx);
		goto out;
	}
	v->seen[idx] = 1;
	snprintf(v->uids[i], sizeof(v->uids[i]), "%s", uid);
	rc = check_chain(v, pay, uid, err);
out:
	json_decref(hdr);
	json_decref(pay);
	free(sig);
	return rc;
}

static int uid_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

int manifest_verify_file(const char *path, EVP_PKEY *signer, X509 *trusted_ca,
			 struct manifest_summary *sum, struct errbuf *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	memset(sum, 0, sizeof(*sum));
	if ((rc = fileio_read(path, MANIFEST_MAX_FILE, NULL, &buf, &len, err)))
		return rc;
	rc = manifest_verify_buf((const char *)buf, len, path, signer, trusted_ca, sum, err);
	free(buf);
	return rc;
}

int manifest_verify_buf(const char *buf, size_t len, const char *path, EVP_PKEY *signer,
			X509 *trusted_ca, struct manifest_summary *sum, struct errbuf *err)
{
	struct verify v = { .path = path, .signer = signer, .trusted_ca = trusted_ca, .sum = sum };
	json_error_t jerr;
	json_t *root;
	int rc;

	memset(sum, 0, sizeof(*sum));
	if ((rc = jose_kid(signer, v.kid, err)))
		return errbuf_prefix(err, "--signer: ");
	if (len > MANIFEST_MAX_FILE)
		return errbuf_set(err, ST_EINVAL, "%s: larger than %u MiB", path, MANIFEST_MAX_FILE >> 20);
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return errbuf_set(err, ST_ETAMPER, "%s:%d: not JSON: %s", path, jerr.line, jerr.text);
	if (!json_is_array(root) || !(v.n = json_array_size(root))) {
		json_decref(root);
		return errbuf_set(err, ST_ETAMPER, "%s: not a manifest (a non-empty JSON array)", path);
	}
	if (trusted_ca && (v.ca_len = i2d_X509(trusted_ca, &v.ca_der)) <= 0) {
		json_decref(root);
		return errbuf_set(err, ST_ECRYPTO, "cannot encode the trusted CA certificate");
	}
	v.seen = calloc(v.n + 1, 1);
	v.uids = calloc(v.n, sizeof(*v.uids));
	if (!v.seen || !v.uids)
		rc = errbuf_set(err, ST_ENOMEM, "out of memory");
	/* the layout is the first entry's; every entry must then be of it */
	if (json_object_get(json_array_get(root, 0), "protected"))
		v.layout = MANIFEST_MICROCHIP;
	for (size_t i = 0; !rc && i < v.n; i++) {
		json_t *e = json_array_get(root, i);
		const char *uid = v.layout == MANIFEST_MICROCHIP ?
			str_at(json_object_get(e, "header"), "uniqueId") : str_at(e, "uniqueId");

		if ((rc = v.layout == MANIFEST_MICROCHIP ? verify_entry_mchp(&v, e, i, err) :
		     verify_entry(&v, e, i, err)))
			errbuf_prefix(err, "%s: entry %zu (%.24s): ", path, i + 1, uid ? uid : "?");
	}
	if (!rc) {
		qsort(v.uids, v.n, sizeof(*v.uids), uid_cmp);
		for (size_t i = 1; !rc && i < v.n; i++)
			if (!strcmp(v.uids[i - 1], v.uids[i]))
				rc = errbuf_set(err, ST_ETAMPER, "%s: unique id %s appears twice",
						path, v.uids[i]);
	}
	if (!rc) {
		sum->layout = v.layout;
		sum->entries = (int64_t)v.n;
		snprintf(sum->kid, sizeof(sum->kid), "%s", v.kid);
	}
	free(v.seen);
	free(v.uids);
	X509_free(v.ca);
	free(v.ca_b64);
	free(v.ca_x5c_der);
	free(v.signer_b64);
	OPENSSL_free(v.ca_der);
	json_decref(root);
	return rc;
}
