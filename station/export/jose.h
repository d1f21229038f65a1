/*
 * jose: the few pieces of JOSE the signed manifest needs (manifest.h):
 * base64url (RFC 7515 §2, no padding), public JWKs (RFC 7517/7518), the
 * RFC 7638 thumbprint used as "kid", and ES256 signatures (RFC 7518 §3.4:
 * ECDSA P-256 / SHA-256, r||s, not DER).
 *
 * Contract
 * - Decoders are strict and bounded: a character outside the alphabet, an
 *   impossible length or more than JOSE_MAX_B64 characters gives NULL.
 *   Returned buffers are malloc'd (free()).
 * - No dependency on the database or the token: the offline verifier and its
 *   fuzzer link this file alone.
 */
#ifndef STATION_JOSE_H
#define STATION_JOSE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "core/errbuf.h"

#define JOSE_MAX_B64 (64u << 10)   /* characters a decoder accepts */
#define JOSE_MAX_DER (16u << 20)   /* bytes an encoder accepts */

/* Standard base64 with padding (x5c), and base64url without padding. */
char *jose_b64(const uint8_t *b, size_t n);
uint8_t *jose_unb64(const char *s, size_t len, size_t *out_len);
char *jose_b64url(const uint8_t *b, size_t n);
uint8_t *jose_unb64url(const char *s, size_t len, size_t *out_len);

/* The public JWK of an EC (P-256, P-384, P-521) or RSA key, members in
 * RFC 7638 order; NULL for another key type. */
json_t *jose_jwk(EVP_PKEY *k);
/* RFC 7638 thumbprint (SHA-256, base64url, 43 characters) of an EC P-256
 * public key.  ST_EINVAL if the key is not EC P-256 (ES256 needs one). */
ST_MUST_CHECK int jose_kid(EVP_PKEY *pub, char kid[64], struct errbuf *err);

/* A DER ECDSA P-256 signature as the JWS signature: r||s, base64url. */
char *jose_es256_sig(const uint8_t *der, size_t len);
/* 1 when rs (r||s) is k's ES256 signature over input, else 0. */
int jose_es256_verify(EVP_PKEY *k, const char *input, size_t len, const uint8_t rs[64]);

/* Lower-case hex SHA-256. */
void jose_sha256_hex(const uint8_t *b, size_t n, char out[65]);

#endif
