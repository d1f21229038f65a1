/* jose: base64url, JWK, RFC 7638 thumbprints and ES256.  See jose.h. */
#include "export/jose.h"
#include "core/hex.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/sha.h>

static int b64_char(char c, int url)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (url ? c == '-' || c == '_' : c == '+' || c == '/');
}

char *jose_b64(const uint8_t *b, size_t n)
{
	char *s;

	if (n > JOSE_MAX_DER || !(s = malloc(4 * ((n + 2) / 3) + 1)))
		return NULL;
	EVP_EncodeBlock((unsigned char *)s, b, (int)n);
	return s;
}

/* Standard base64 with padding, strictly: nothing outside the alphabet. */
uint8_t *jose_unb64(const char *s, size_t len, size_t *out_len)
{
	size_t pad = 0;
	uint8_t *out;
	int n;

	if (len == 0 || len % 4 || len > JOSE_MAX_B64)
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

char *jose_b64url(const uint8_t *b, size_t n)
{
	char *s = jose_b64(b, n);
	size_t j = 0;

	if (!s)
		return NULL;
	for (size_t i = 0; s[i] && s[i] != '='; i++)
		s[j++] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
	s[j] = '\0';
	return s;
}

uint8_t *jose_unb64url(const char *s, size_t len, size_t *out_len)
{
	char *std;
	uint8_t *out;
	size_t i;

	if (len == 0 || len % 4 == 1 || len > JOSE_MAX_B64)
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
	out = jose_unb64(std, i, out_len);
	free(std);
	return out;
}
/* ---- keys --------------------------------------------------------------- */

static json_t *b64url_json(const uint8_t *b, size_t n)
{
	char *s = jose_b64url(b, n);
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
json_t *jose_jwk(EVP_PKEY *k)
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

int jose_kid(EVP_PKEY *pub, char kid[64], struct errbuf *err)
{
	uint8_t md[32];
	json_t *jwk;
	char *canon, *s;

	if (!is_p256(pub))
		return errbuf_set(err, ST_EINVAL, "the manifest signer must be an EC P-256 key (ES256)");
	if (!(jwk = jose_jwk(pub)))
		return errbuf_set(err, ST_ECRYPTO, "cannot read the signer's public key");
	/* RFC 7638: required members, sorted, no whitespace */
	canon = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(jwk);
	if (!canon)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	SHA256((const unsigned char *)canon, strlen(canon), md);
	free(canon);
	if (!(s = jose_b64url(md, sizeof(md))))
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	snprintf(kid, 64, "%s", s);
	free(s);
	return ST_OK;
}
void jose_sha256_hex(const uint8_t *b, size_t n, char out[65])
{
	uint8_t md[32];

	SHA256(b, n, md);
	hex_encode(md, sizeof(md), out);
}
/* DER ECDSA signature -> JWS r||s (RFC 7518 3.4), base64url. */
char *jose_es256_sig(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	uint8_t rs[64];
	char *s = NULL;

	if (sig && p == der + len && BN_bn2binpad(ECDSA_SIG_get0_r(sig), rs, 32) == 32 &&
	    BN_bn2binpad(ECDSA_SIG_get0_s(sig), rs + 32, 32) == 32)
		s = jose_b64url(rs, sizeof(rs));
	ECDSA_SIG_free(sig);
	return s;
}

/* r||s (64 bytes) -> DER, then ECDSA-SHA256 verify. */
int jose_es256_verify(EVP_PKEY *k, const char *input, size_t len, const uint8_t rs[64])
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
