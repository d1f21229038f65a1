/* csr_policy: CSR checks before issuing.  See csr_policy.h. */
#include "hsm/csr_policy.h"
#include "core/hex.h"

#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/provider.h>
#include <openssl/sha.h>

/*
 * Parsing fast path.  OpenSSL 3.0 decodes the public key of every parsed
 * request through its generic decoders (OSSL_DECODER_CTX_new_for_pkey with no
 * key type), about two thirds of the cost of parse + verify.  So requests are
 * parsed in a library context with no providers (the key is left undecoded),
 * and the key is built directly from the SubjectPublicKeyInfo: EC keys from
 * their curve's parameters and the point (ec_key(); the point is checked to
 * be on the curve), other keys with d2i_PUBKEY.  The signature is then
 * verified in the default context.  Measured: parse + verify 0.72 ms -> 0.24 ms per P-256 CSR.
 */
static OSSL_LIB_CTX *parse_ctx;
static pthread_once_t parse_once = PTHREAD_ONCE_INIT;

static void parse_ctx_init(void)
{
	parse_ctx = OSSL_LIB_CTX_new();
	/* the null provider stops the default one from being loaded on demand */
	if (parse_ctx && !OSSL_PROVIDER_load(parse_ctx, "null")) {
		OSSL_LIB_CTX_free(parse_ctx);
		parse_ctx = NULL;
	}
}

OSSL_LIB_CTX *csr_parse_libctx(void)
{
	pthread_once(&parse_once, parse_ctx_init);
	return parse_ctx;
}

/*
 * NULL for a key with one encoding only: RSA, or EC with a named curve (an OID
 * as parameters) and an uncompressed point (0x04 || X || Y); else why not.  The
 * same key with explicit curve parameters or a compressed point would hash
 * differently and slip past the clone check.
 */
static const char *ec_encoding_problem(X509_PUBKEY *xpk)
{
	const unsigned char *bits;
	const ASN1_OBJECT *aobj;
	X509_ALGOR *alg;
	int bitlen, ptype;

	if (X509_PUBKEY_get0_param(NULL, &bits, &bitlen, &alg, xpk) != 1)
		return NULL;   /* unreadable: spki_to_pkey() says so */
	X509_ALGOR_get0(&aobj, &ptype, NULL, alg);
	if (OBJ_obj2nid(aobj) != NID_X9_62_id_ecPublicKey)
		return NULL;
	if (ptype != V_ASN1_OBJECT)
		return "CSR EC public key must name its curve (explicit parameters refused)";
	if (bitlen < 1 || bits[0] != 0x04 || bitlen % 2 != 1)
		return "CSR EC public key must be an uncompressed point";
	return NULL;
}

/* DER length at *p (short or long form, at most 4 length bytes), moving *p
 * past it; -1 when it does not fit in the n bytes left. */
static long der_len(const unsigned char **p, const unsigned char *end)
{
	long len = 0;
	int n;

	if (*p >= end)
		return -1;
	if (!(**p & 0x80))
		return *(*p)++;
	n = *(*p)++ & 0x7f;
	if (n < 1 || n > 4 || end - *p < n)
		return -1;
	while (n--)
		len = (len << 8) | *(*p)++;
	return len <= end - *p ? len : -1;
}

/*
 * The number of unused bits the key's BIT STRING declares, as encoded (OpenSSL
 * keeps them from the parse), or -1 when the encoding cannot be walked.  A key
 * with unused bits has a second encoding of the same bits, so the same key
 * would hash two ways: the clone check must never depend on a later
 * comparison to notice.
 */
static int spki_unused_bits(X509_PUBKEY *xpk)
{
	unsigned char *der = NULL;
	const unsigned char *p, *end;
	long n;
	int len, unused = -1;

	len = i2d_X509_PUBKEY(xpk, &der);
	if (len <= 0)
		return -1;
	p = der;
	end = der + len;
	/* SEQUENCE { AlgorithmIdentifier SEQUENCE, BIT STRING } */
	if (*p++ != 0x30 || der_len(&p, end) < 0 || p >= end || *p++ != 0x30 ||
	    (n = der_len(&p, end)) < 0)
		goto out;
	p += n;
	if (p >= end || *p++ != 0x03 || (n = der_len(&p, end)) < 1)
		goto out;
	unused = *p;
out:
	OPENSSL_free(der);
	return unused;
}

/*
 * The domain parameters of the curves a profile can allow (CSR_KEY_EC_P256,
 * CSR_KEY_EC_P384), made once per process.  Such a key is a copy of its
 * curve's template with the request's point set (EVP_PKEY_dup +
 * EVP_PKEY_set1_encoded_public_key, ~4 us), not built from the curve's name
 * (EVP_PKEY_fromdata, ~17 us: it makes the group and its Montgomery constants
 * for every request; 5 % of the issuing threads' CPU, docs/performance.md).
 * Setting the point checks that it is on the curve, as fromdata does; other
 * curves (refused by the policy later) still go through fromdata.  The
 * templates are only read after they are made, from any thread.
 */
static const int template_nids[] = { NID_X9_62_prime256v1, NID_secp384r1 };
#define NTEMPLATES (sizeof(template_nids) / sizeof(template_nids[0]))
static EVP_PKEY *templates[NTEMPLATES];
static pthread_once_t templates_once = PTHREAD_ONCE_INIT;

static EVP_PKEY *ec_fromdata(int curve, const unsigned char *point, size_t len, int selection)
{
	OSSL_PARAM params[3], *p = params;
	EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pk = NULL;

	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
						(char *)OBJ_nid2sn(curve), 0);
	if (point)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
							 (void *)point, len);
	*p = OSSL_PARAM_construct_end();
	if (kc && EVP_PKEY_fromdata_init(kc) == 1)
		EVP_PKEY_fromdata(kc, &pk, selection, params);
	EVP_PKEY_CTX_free(kc);
	return pk;
}

static void templates_make(void)
{
	for (size_t i = 0; i < NTEMPLATES; i++)
		templates[i] = ec_fromdata(template_nids[i], NULL, 0, EVP_PKEY_KEY_PARAMETERS);
}

static EVP_PKEY *ec_key(int curve, const unsigned char *point, size_t len)
{
	pthread_once(&templates_once, templates_make);
	for (size_t i = 0; i < NTEMPLATES; i++) {
		EVP_PKEY *pk;

		if (template_nids[i] != curve || !templates[i])
			continue;
		pk = EVP_PKEY_dup(templates[i]);
		if (pk && EVP_PKEY_set1_encoded_public_key(pk, point, len) == 1)
			return pk;
		EVP_PKEY_free(pk);
		return NULL;
	}
	return ec_fromdata(curve, point, len, EVP_PKEY_PUBLIC_KEY);
}

static EVP_PKEY *spki_to_pkey(X509_PUBKEY *xpk)
{
	const unsigned char *bits;
	const ASN1_OBJECT *aobj;
	const void *pval;
	X509_ALGOR *alg;
	EVP_PKEY *pk = NULL;
	int bitlen, ptype;

	if (X509_PUBKEY_get0_param(NULL, &bits, &bitlen, &alg, xpk) != 1)
		return NULL;
	X509_ALGOR_get0(&aobj, &ptype, &pval, alg);
	if (OBJ_obj2nid(aobj) == NID_X9_62_id_ecPublicKey && ptype == V_ASN1_OBJECT) {
		int curve = OBJ_obj2nid(pval);

		if (curve == NID_undef || bitlen <= 0)
			return NULL;
		return ec_key(curve, bits, (size_t)bitlen);
	}
	/* RSA and anything else: the general decoder */
	{
		unsigned char *der = NULL;
		const unsigned char *p;
		int len = i2d_X509_PUBKEY(xpk, &der);

		if (len > 0) {
			p = der;
			pk = d2i_PUBKEY(NULL, &p, len);
		}
		OPENSSL_free(der);
	}
	return pk;
}

void csr_policy_default(struct csr_policy *p)
{
	p->key_kinds = CSR_KEY_EC_P256 | CSR_KEY_EC_P384 | CSR_KEY_RSA;
	p->rsa_min_bits = 3072;
	p->rsa_max_bits = 0;
}

void csr_policy_for_key(struct csr_policy *p, enum csr_key_kind kind, int rsa_bits)
{
	p->key_kinds = kind;
	p->rsa_min_bits = kind == CSR_KEY_RSA ? rsa_bits : 3072;
	p->rsa_max_bits = kind == CSR_KEY_RSA ? rsa_bits : 0;
}

/* From the request's own X509_PUBKEY: i2d_PUBKEY(EVP_PKEY) would run
 * OpenSSL 3's encoders, several times slower. */
static int req_pubkey_hash(X509_REQ *req, char out[65])
{
	unsigned char *der = NULL, md[32];
	int len;

	len = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(req), &der);
	if (len <= 0)
		return ST_ECRYPTO;
	SHA256(der, (size_t)len, md);
	OPENSSL_free(der);
	hex_encode(md, sizeof(md), out);
	return ST_OK;
}

int csr_pubkey_hash(EVP_PKEY *pkey, char out[65])
{
	unsigned char *der = NULL, md[32];
	int len;

	len = i2d_PUBKEY(pkey, &der);
	if (len <= 0)
		return ST_ECRYPTO;
	SHA256(der, (size_t)len, md);
	OPENSSL_free(der);
	hex_encode(md, sizeof(md), out);
	return ST_OK;
}

static int check_key(const struct csr_policy *pol, struct csr_info *ci, struct errbuf *err)
{
	int id = EVP_PKEY_get_base_id(ci->pkey);

	ci->bits = EVP_PKEY_get_bits(ci->pkey);
	if (id == EVP_PKEY_EC) {
		char group[64] = "";
		size_t glen = 0;

		EVP_PKEY_get_group_name(ci->pkey, group, sizeof(group), &glen);
		if (!strcmp(group, "prime256v1"))
			ci->kind = CSR_KEY_EC_P256;
		else if (!strcmp(group, "secp384r1"))
			ci->kind = CSR_KEY_EC_P384;
		else
			return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_KEY,
					   "CSR key type EC %s not allowed",
					   group[0] ? group : "(explicit curve)");
	} else if (id == EVP_PKEY_RSA) {
		ci->kind = CSR_KEY_RSA;
		if (ci->bits < pol->rsa_min_bits)
			return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_KEY,
					   "CSR key RSA-%d is weaker than RSA-%d", ci->bits,
					   pol->rsa_min_bits);
		if (pol->rsa_max_bits && ci->bits > pol->rsa_max_bits)
			return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_KEY,
					   "CSR key RSA-%d not allowed by the profile (RSA-%d)",
					   ci->bits, pol->rsa_max_bits);
	} else {
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_KEY,
				   "CSR key type %s not allowed", OBJ_nid2sn(id));
	}
	if (!(pol->key_kinds & ci->kind))
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_KEY,
				   "CSR key type %s not allowed by the profile",
				   ci->kind == CSR_KEY_RSA ? "RSA" :
				   ci->kind == CSR_KEY_EC_P256 ? "EC P-256" : "EC P-384");
	return ST_OK;
}

/*
 * The hash the request is signed with goes with its key: SHA-256 for P-256 and
 * RSA, SHA-384 for P-384 (what the board is built to do; anything else is not
 * our board's firmware).  Read from the algorithm identifier alone, so it works
 * in the provider-less parse context.
 */
static int check_sig_hash(X509_REQ *req, enum csr_key_kind kind, struct errbuf *err)
{
	int sig = X509_REQ_get_signature_nid(req), md = NID_undef, pk = NID_undef;
	int want = kind == CSR_KEY_EC_P384 ? NID_sha384 : NID_sha256;

	if (!OBJ_find_sigid_algs(sig, &md, &pk) || md != want)
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_KEY,
				   "CSR signature %s does not use %s (the hash for its key)",
				   sig != NID_undef ? OBJ_nid2sn(sig) : "(unknown algorithm)",
				   OBJ_nid2sn(want));
	return ST_OK;
}

static int check_subject(X509_REQ *req, const char *unique_id, struct errbuf *err)
{
	const X509_NAME *name = X509_REQ_get_subject_name(req);
	const X509_NAME_ENTRY *ne;
	const ASN1_STRING *v;
	int n = name ? X509_NAME_entry_count(name) : 0;

	if (n != 1)
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_SUBJECT,
				   "CSR subject must be exactly CN=%s (%d attributes)", unique_id,
				   n);
	ne = X509_NAME_get_entry(name, 0);
	if (OBJ_obj2nid(X509_NAME_ENTRY_get_object(ne)) != NID_commonName)
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_SUBJECT,
				   "CSR subject must be exactly CN=%s", unique_id);
	v = X509_NAME_ENTRY_get_data(ne);
	if (ASN1_STRING_length(v) != CSR_UID_LEN ||
	    memcmp(ASN1_STRING_get0_data(v), unique_id, CSR_UID_LEN) != 0) {
		char shown[CSR_UID_LEN + 1] = "";
		int len = ASN1_STRING_length(v);

		/* show the wrong subject, bounded and printable only */
		for (int i = 0; i < len && i < CSR_UID_LEN; i++) {
			unsigned char c = ASN1_STRING_get0_data(v)[i];

			shown[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
			shown[i + 1] = '\0';
		}
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_SUBJECT,
				   "CSR subject CN=%s%s is not the board's id %s", shown,
				   len > CSR_UID_LEN ? "..." : "", unique_id);
	}
	return ST_OK;
}

static int check_nonce(X509_REQ *req, const uint8_t nonce[CSR_NONCE_LEN], struct errbuf *err)
{
	char want[2 * CSR_NONCE_LEN + 1];
	X509_ATTRIBUTE *attr;
	ASN1_TYPE *t;
	int idx, ok;

	idx = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1);
	if (idx < 0)
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_NONCE,
				   "CSR has no challengePassword (station nonce)");
	if (X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, idx) >= 0)
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_NONCE,
				   "CSR has two challengePassword attributes");
	attr = X509_REQ_get_attr(req, idx);
	if (X509_ATTRIBUTE_count(attr) != 1)
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_NONCE,
				   "CSR challengePassword must have one value");
	t = X509_ATTRIBUTE_get0_type(attr, 0);
	if (!t || (t->type != V_ASN1_UTF8STRING && t->type != V_ASN1_PRINTABLESTRING &&
		   t->type != V_ASN1_IA5STRING))
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_NONCE,
				   "CSR challengePassword is not a string");
	hex_encode(nonce, CSR_NONCE_LEN, want);
	ok = ASN1_STRING_length(t->value.asn1_string) == 2 * CSR_NONCE_LEN &&
	     CRYPTO_memcmp(ASN1_STRING_get0_data(t->value.asn1_string), want,
			   2 * CSR_NONCE_LEN) == 0;
	if (!ok)
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_NONCE,
				   "CSR nonce does not match this station's challenge (replayed CSR?)");
	return ST_OK;
}

int csr_check(const struct csr_policy *pol, const uint8_t *der, size_t len,
	      const char *unique_id, const uint8_t nonce[CSR_NONCE_LEN],
	      const struct hsm_certstore *store, struct csr_info *out,
	      struct errbuf *err)
{
	const unsigned char *p = der;
	const char *why;
	int rc, seen = 0;

	memset(out, 0, sizeof(*out));
	if (!ids_uid_valid(unique_id))
		return errbuf_set(err, ST_EINVAL, "unique id '%.32s' is not 24 upper-case hex digits",
				  unique_id);
	if (len == 0 || len > CSR_MAX_DER)
		return errbuf_setr(err, ST_EINVAL, ST_ORIGIN_POLICY, ST_R_CSR_MALFORMED,
				   "CSR is %zu bytes (1..%d allowed)", len, CSR_MAX_DER);
	if (csr_parse_libctx())
		out->req = (X509_REQ *)ASN1_item_d2i_ex(NULL, &p, (long)len,
							 ASN1_ITEM_rptr(X509_REQ), parse_ctx, NULL);
	else
		out->req = d2i_X509_REQ(NULL, &p, (long)len);
	if (!out->req || p != der + len) {
		ERR_clear_error();
		csr_info_clear(out);
		return errbuf_setr(err, ST_EINVAL, ST_ORIGIN_POLICY, ST_R_CSR_MALFORMED,
				   "CSR is not one DER PKCS#10 request");
	}
	memcpy(out->unique_id, unique_id, CSR_UID_LEN + 1);
	ERR_clear_error();  /* the undecoded key left a note */
	if (spki_unused_bits(X509_REQ_get_X509_PUBKEY(out->req)) != 0) {
		rc = errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_KEY,
				 "CSR public key's BIT STRING declares unused bits (one key, two encodings)");
		goto fail;
	}
	if ((why = ec_encoding_problem(X509_REQ_get_X509_PUBKEY(out->req)))) {
		rc = errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CSR_KEY, "%s", why);
		goto fail;
	}
	out->pkey = spki_to_pkey(X509_REQ_get_X509_PUBKEY(out->req));
	if (!out->pkey) {
		rc = errbuf_setr(err, ST_EINVAL, ST_ORIGIN_POLICY, ST_R_CSR_KEY,
				 "CSR public key is unreadable");
		goto fail;
	}
	if ((rc = check_key(pol, out, err)) != ST_OK ||
	    (rc = check_sig_hash(out->req, out->kind, err)) != ST_OK)
		goto fail;
	if (X509_REQ_verify_ex(out->req, out->pkey, NULL, NULL) != 1) {
		rc = errbuf_setr(err, ST_ECRYPTO, ST_ORIGIN_POLICY, ST_R_CSR_SIGNATURE,
				 "CSR signature does not verify");
		goto fail;
	}
	if ((rc = check_subject(out->req, unique_id, err)) != ST_OK)
		goto fail;
	if ((rc = check_nonce(out->req, nonce, err)) != ST_OK)
		goto fail;
	/* EC: the request's own encoding is canonical (named curve, uncompressed
	 * point); anything else is re-encoded from the key */
	if ((out->kind == CSR_KEY_RSA ? csr_pubkey_hash(out->pkey, out->pubkey_hash)
				      : req_pubkey_hash(out->req, out->pubkey_hash)) != ST_OK) {
		rc = errbuf_setr(err, ST_ECRYPTO, ST_ORIGIN_POLICY, ST_R_CSR_KEY,
				 "CSR public key cannot be encoded");
		goto fail;
	}
	SHA256(der, len, out->der_sha256);
	if (store && (store->pubkey_seen_by || store->pubkey_seen)) {
		/* reached only once the CSR proved possession for this board
		 * (signature, subject, nonce): the key the caller then records is
		 * the board's, so a replayed or forged CSR cannot make a real
		 * board's key look cloned */
		rc = store->pubkey_seen_by
			? store->pubkey_seen_by(store->ctx, out->pubkey_hash, unique_id, &seen, err)
			: store->pubkey_seen(store->ctx, out->pubkey_hash, &seen, err);
		if (rc == ST_OK && seen)
			rc = errbuf_setr(err, ST_EEXIST, ST_ORIGIN_POLICY, ST_R_KEY_SEEN,
					 "CSR public key %.16s... was certified before (cloned key?)",
					 out->pubkey_hash);
		if (rc != ST_OK) {
			/* the caller records which key it was */
			char hash[sizeof(out->pubkey_hash)];

			memcpy(hash, out->pubkey_hash, sizeof(hash));
			ERR_clear_error();
			csr_info_clear(out);
			memcpy(out->pubkey_hash, hash, sizeof(hash));
			return rc;
		}
	}
	return ST_OK;
fail:
	ERR_clear_error();
	csr_info_clear(out);
	return rc;
}

void csr_info_clear(struct csr_info *ci)
{
	EVP_PKEY_free(ci->pkey);
	X509_REQ_free(ci->req);
	memset(ci, 0, sizeof(*ci));
}
