/* manifest: signed per-lot manifest, JWS ES256.  See manifest.h. */
#include "manifest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "db.h"

/* ---- base64 ------------------------------------------------------------- */

static int b64_char(char c, int url)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (url ? c == '-' || c == '_' : c == '+' || c == '/');
}

static char *b64(const uint8_t *b, size_t n)
{
	char *s;

	if (n > MANIFEST_MAX_FILE || !(s = malloc(4 * ((n + 2) / 3) + 1)))
		return NULL;
	EVP_EncodeBlock((unsigned char *)s, b, (int)n);
	return s;
}

/* Standard base64 with padding, strictly: nothing outside the alphabet. */
static uint8_t *unb64(const char *s, size_t len, size_t *out_len)
{
	size_t pad = 0;
	uint8_t *out;
	int n;

	if (len == 0 || len % 4 || len > MANIFEST_MAX_JWS)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '=' && i + 2 >= len)
			pad++;
		else if (pad || !b64_char(s[i], 0))
			return NULL;
	}
	if (!(out = malloc(len / 4 * 3 + 1)))
		return NULL;
	n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
	if (n < 0 || (size_t)n < pad) {
		free(out);
		return NULL;
	}
	*out_len = (size_t)n - pad;
	return out;
}

char *manifest_b64url(const uint8_t *b, size_t n)
{
	char *s = b64(b, n);
	size_t j = 0;

	if (!s)
		return NULL;
	for (size_t i = 0; s[i] && s[i] != '='; i++)
		s[j++] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
	s[j] = '\0';
	return s;
}

uint8_t *manifest_unb64url(const char *s, size_t len, size_t *out_len)
{
	char *std;
	uint8_t *out;
	size_t i;

	if (len == 0 || len % 4 == 1 || len > MANIFEST_MAX_JWS)
		return NULL;
	if (!(std = malloc(len + 3)))
		return NULL;
	for (i = 0; i < len; i++) {
		if (!b64_char(s[i], 1)) {
			free(std);
			return NULL;
		}
		std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	}
	while (i % 4)
		std[i++] = '=';
	out = unb64(std, i, out_len);
	free(std);
	return out;
}

/* ---- keys --------------------------------------------------------------- */

static json_t *b64url_json(const uint8_t *b, size_t n)
{
	char *s = manifest_b64url(b, n);
	json_t *j = s ? json_string(s) : NULL;

	free(s);
	return j;
}

static json_t *bn_json(const BIGNUM *bn, int pad)
{
	uint8_t buf[1024];
	int n = pad ? pad : BN_num_bytes(bn);

	if (n <= 0 || n > (int)sizeof(buf) || BN_bn2binpad(bn, buf, n) != n)
		return NULL;
	return b64url_json(buf, (size_t)n);
}

/* The public JWK (RFC 7518) of an EC or RSA key, members in RFC 7638 order. */
static json_t *jwk_of(EVP_PKEY *k)
{
	BIGNUM *a = NULL, *b = NULL;
	json_t *j = NULL;

	if (EVP_PKEY_get_base_id(k) == EVP_PKEY_EC) {
		char group[64];
		const char *crv = NULL;
		size_t gl = 0;
		int size = (EVP_PKEY_get_bits(k) + 7) / 8;

		if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group,
						   sizeof(group), &gl) != 1)
			return NULL;
		if (!strcmp(group, "prime256v1"))
			crv = "P-256";
		else if (!strcmp(group, "secp384r1"))
			crv = "P-384";
		else if (!strcmp(group, "secp521r1"))
			crv = "P-521";
		if (crv && EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &a) == 1 &&
		    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &b) == 1)
			j = json_pack("{s:s, s:s, s:o, s:o}", "crv", crv, "kty", "EC",
				      "x", bn_json(a, size), "y", bn_json(b, size));
	} else if (EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA) {
		if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &a) == 1 &&
		    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &b) == 1)
			j = json_pack("{s:o, s:s, s:o}", "e", bn_json(a, 0), "kty", "RSA",
				      "n", bn_json(b, 0));
	}
	/* a member that failed to encode (NULL for "o") failed the whole pack */
	BN_free(a);
	BN_free(b);
	return j;
}

static int is_p256(EVP_PKEY *k)
{
	char group[64];
	size_t gl = 0;

	return k && EVP_PKEY_get_base_id(k) == EVP_PKEY_EC &&
	       EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group,
					      sizeof(group), &gl) == 1 &&
	       !strcmp(group, "prime256v1");
}

int manifest_kid(EVP_PKEY *pub, char kid[64], struct errbuf *err)
{
	uint8_t md[32];
	json_t *jwk;
	char *canon, *s;

	if (!is_p256(pub))
		return errbuf_set(err, ST_EINVAL, "the manifest signer must be an EC P-256 key (ES256)");
	if (!(jwk = jwk_of(pub)))
		return errbuf_set(err, ST_ECRYPTO, "cannot read the signer's public key");
	/* RFC 7638: required members, sorted, no whitespace */
	canon = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(jwk);
	if (!canon)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	SHA256((const unsigned char *)canon, strlen(canon), md);
	free(canon);
	if (!(s = manifest_b64url(md, sizeof(md))))
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	snprintf(kid, 64, "%s", s);
	free(s);
	return ST_OK;
}

static void iso_ms(int64_t ms, char out[32])
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static void sha256_hex(const uint8_t *b, size_t n, char out[65])
{
	uint8_t md[32];

	SHA256(b, n, md);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- writing ------------------------------------------------------------ */

int manifest_begin(struct manifest_writer *w, FILE *out, const struct manifest_signer *s,
		   X509 *ca, int64_t count, struct errbuf *err)
{
	uint8_t rnd[16], *der = NULL;
	struct timespec ts;
	int rc, n;

	memset(w, 0, sizeof(*w));
	if (count < 1)
		return errbuf_set(err, ST_EINVAL, "a manifest needs at least one passed unit");
	if ((rc = manifest_kid(s->pub, w->kid, err)))
		return rc;
	if ((n = i2d_X509(ca, &der)) <= 0)
		return errbuf_set(err, ST_ECRYPTO, "cannot encode the CA certificate");
	w->ca_b64 = b64(der, (size_t)n);
	OPENSSL_free(der);
	if (!w->ca_b64)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		free(w->ca_b64);
		w->ca_b64 = NULL;
		return errbuf_set(err, ST_ECRYPTO, "no randomness for the manifest id");
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(w->id + 2 * i, 3, "%02x", rnd[i]);
	clock_gettime(CLOCK_REALTIME, &ts);
	iso_ms((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, w->generated);
	w->out = out;
	w->signer = s;
	w->ca = ca;
	w->count = count;
	fputs("[\n", out);
	return ST_OK;
}

/* DER ECDSA signature -> JWS r||s (RFC 7518 3.4), base64url. */
static char *jws_sig(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	uint8_t rs[64];
	char *s = NULL;

	if (sig && p == der + len && BN_bn2binpad(ECDSA_SIG_get0_r(sig), rs, 32) == 32 &&
	    BN_bn2binpad(ECDSA_SIG_get0_s(sig), rs + 32, 32) == 32)
		s = manifest_b64url(rs, sizeof(rs));
	ECDSA_SIG_free(sig);
	return s;
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

	if (!(jwk = jwk_of(X509_get0_pubkey(cert))))
		return NULL;
	if (!(dev = b64(r->cert_der, r->cert_der_len))) {
		json_decref(jwk);
		return NULL;
	}
	json_object_set_new(jwk, "x5c", json_pack("[s, s]", dev, w->ca_b64));
	free(dev);
	iso_ms(r->finished_ms, fin);
	sha256_hex(r->cert_der, r->cert_der_len, sha);
	/* as in the JSON lines: an unknown profile or hash is null, not "" */
	p = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s,"
		      " s:{s:o, s:o, s:s}, s:o, s:o,"
		      " s:{s:s, s:s, s:s}, s:{s:[o]}, s:{s:s, s:I, s:I, s:s}}",
		      "version", MANIFEST_VERSION, "uniqueId", r->unique_id, "lot", r->lot,
		      "stationId", r->station_id, "bay", r->bay, "provisioningTimestamp", fin,
		      "profile", "name", str_or_null(r->profile_name),
		      "version", r->profile_version > 0 ? json_integer(r->profile_version) : json_null(),
		      "sha256", r->profile_hash,
		      "firmwareSha256", str_or_null(r->firmware_hash),
		      "publicKeySha256", str_or_null(r->pubkey_hash),
		      "certificate", "serial", r->cert_serial, "status", r->cert_status, "sha256", sha,
		      "publicKeySet", "keys", jwk,
		      "manifest", "id", w->id, "index", (json_int_t)(w->written + 1),
		      "count", (json_int_t)w->count, "generated", w->generated);
	return p;
}

int manifest_add(struct manifest_writer *w, const struct db_export_row *r, struct errbuf *err)
{
	const unsigned char *p;
	char *hdr = NULL, *pay = NULL, *h64 = NULL, *p64 = NULL, *s64 = NULL, *input = NULL;
	char *line = NULL;
	uint8_t *der = NULL;
	size_t der_len = 0, n;
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
	j = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "kid", w->kid, "typ", MANIFEST_TYP);
	hdr = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	j = entry_payload(w, r, cert);
	pay = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!hdr || !pay) {
		rc = errbuf_set(err, ST_EINVAL, "unit %lld (%s): cannot encode its manifest entry "
				"(a field is not UTF-8, or the key type has no JWK)",
				(long long)r->unit_id, r->unique_id);
		goto out;
	}
	h64 = manifest_b64url((const uint8_t *)hdr, strlen(hdr));
	p64 = manifest_b64url((const uint8_t *)pay, strlen(pay));
	if (!h64 || !p64 || asprintf(&input, "%s.%s", h64, p64) < 0) {
		input = NULL;
		rc = errbuf_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	n = strlen(input);
	if ((rc = w->signer->sign(w->signer->ctx, (const uint8_t *)input, n, &der, &der_len, err))) {
		errbuf_prefix(err, "unit %lld (%s): sign manifest entry: ", (long long)r->unit_id,
			      r->unique_id);
		goto out;
	}
	if (!(s64 = jws_sig(der, der_len))) {
		rc = errbuf_set(err, ST_ECRYPTO, "unit %lld (%s): the signer returned no P-256 ECDSA signature",
				(long long)r->unit_id, r->unique_id);
		goto out;
	}
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
	OPENSSL_free(der);
	free(hdr);
	free(pay);
	free(h64);
	free(p64);
	free(s64);
	free(input);
	free(line);
	return rc;
}

int manifest_end(struct manifest_writer *w, struct errbuf *err)
{
	free(w->ca_b64);
	w->ca_b64 = NULL;
	if (w->written != w->count)
		return errbuf_set(err, ST_ESTATE, "manifest: %lld entries written, %lld expected",
				  (long long)w->written, (long long)w->count);
	fputs("\n]\n", w->out);
	return ST_OK;
}

/* ---- verifying ---------------------------------------------------------- */

static X509 *x5c_cert(json_t *a, size_t i, uint8_t **der, size_t *len);

struct verify {
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
};

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

/* r||s (64 bytes) -> DER, then ECDSA-SHA256 verify. */
static int es256_ok(EVP_PKEY *k, const char *input, size_t len, const uint8_t rs[64])
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(rs, 32, NULL), *s = BN_bin2bn(rs + 32, 32, NULL);
	unsigned char *der = NULL;
	EVP_MD_CTX *mc = NULL;
	int n, ok = 0;

	if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(sig);
		return 0;
	}
	if ((n = i2d_ECDSA_SIG(sig, &der)) > 0 && (mc = EVP_MD_CTX_new()) &&
	    EVP_DigestVerifyInit(mc, NULL, EVP_sha256(), NULL, k) == 1)
		ok = EVP_DigestVerify(mc, der, (size_t)n, (const unsigned char *)input, len) == 1;
	EVP_MD_CTX_free(mc);
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	return ok;
}

static json_t *decode_json(const char *s, size_t len)
{
	size_t n;
	uint8_t *b = manifest_unb64url(s, len, &n);
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

	*der = s ? unb64(s, strlen(s), len) : NULL;
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
	if (!serial_is(dev, str_at(cert, "serial"))) {
		errbuf_set(err, rc, "the certificate's serial is not certificate.serial");
		goto out;
	}
	sha256_hex(dder, dlen, sha);
	if (!str_at(cert, "sha256") || strcmp(sha, str_at(cert, "sha256"))) {
		errbuf_set(err, rc, "the certificate's SHA-256 is not certificate.sha256");
		goto out;
	}
	if (!(mine = jwk_of(X509_get0_pubkey(dev)))) {
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
	if (!db_valid_unique_id(uid))
		return errbuf_set(err, rc, "uniqueId is not 24 upper-case hex digits");
	len = strlen(jws);
	d1 = strchr(jws, '.');
	d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (len > MANIFEST_MAX_JWS || !d2 || strchr(d2 + 1, '.'))
		return errbuf_set(err, rc, "jws is not a compact JWS (three parts)");
	if (!(hdr = decode_json(jws, (size_t)(d1 - jws)))) {
		errbuf_set(err, rc, "the protected header is not base64url JSON");
		goto out;
	}
	if (!str_at(hdr, "alg") || strcmp(str_at(hdr, "alg"), "ES256") ||
	    json_object_get(hdr, "crit") || !str_at(hdr, "typ") ||
	    strcmp(str_at(hdr, "typ"), MANIFEST_TYP)) {
		errbuf_set(err, rc, "the header must be alg ES256, typ %s, no crit", MANIFEST_TYP);
		goto out;
	}
	if (!str_at(hdr, "kid") || strcmp(str_at(hdr, "kid"), v->kid)) {
		errbuf_set(err, rc, "signed by another key (kid %.64s), not the trusted signer",
			   str_at(hdr, "kid") ? str_at(hdr, "kid") : "none");
		goto out;
	}
	sig = manifest_unb64url(d2 + 1, strlen(d2 + 1), &sl);
	if (!sig || sl != 64 || !es256_ok(v->signer, jws, (size_t)(d2 - jws), sig)) {
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

static int read_all(const char *path, char **buf, size_t *len, struct errbuf *err)
{
	struct stat sb;
	FILE *f = fopen(path, "rb");
	size_t got;

	if (!f)
		return errbuf_set(err, ST_EIO, "%s: %s", path, strerror(errno));
	if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size > MANIFEST_MAX_FILE) {
		fclose(f);
		return errbuf_set(err, ST_EINVAL, "%s: not a regular file of at most %u MiB", path,
				  MANIFEST_MAX_FILE >> 20);
	}
	if (!(*buf = malloc((size_t)sb.st_size + 1))) {
		fclose(f);
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	}
	got = fread(*buf, 1, (size_t)sb.st_size, f);
	fclose(f);
	if (got != (size_t)sb.st_size) {
		free(*buf);
		return errbuf_set(err, ST_EIO, "%s: short read", path);
	}
	*len = got;
	return ST_OK;
}

int manifest_verify_file(const char *path, EVP_PKEY *signer, X509 *trusted_ca,
			 struct manifest_summary *sum, struct errbuf *err)
{
	struct verify v = { .path = path, .signer = signer, .trusted_ca = trusted_ca, .sum = sum };
	json_error_t jerr;
	json_t *root;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	memset(sum, 0, sizeof(*sum));
	if ((rc = manifest_kid(signer, v.kid, err)))
		return errbuf_prefix(err, "--signer: ");
	if ((rc = read_all(path, &buf, &len, err)))
		return rc;
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
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
	for (size_t i = 0; !rc && i < v.n; i++) {
		const char *uid = str_at(json_array_get(root, i), "uniqueId");

		if ((rc = verify_entry(&v, json_array_get(root, i), i, err)))
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
		sum->entries = (int64_t)v.n;
		snprintf(sum->kid, sizeof(sum->kid), "%s", v.kid);
	}
	free(v.seen);
	free(v.uids);
	X509_free(v.ca);
	free(v.ca_b64);
	free(v.ca_x5c_der);
	OPENSSL_free(v.ca_der);
	json_decref(root);
	return rc;
}
