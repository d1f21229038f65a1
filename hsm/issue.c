/* issue: certificates from checked CSRs.  See issue.h. */
#include "hsm/issue.h"
#include "core/hex.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#define SERIAL_BYTES 16
_Static_assert(HEX_LEN(SERIAL_BYTES) <= ISSUE_SERIAL_HEX, "a serial fits its text");
#define RESERVE_TRIES 4
/* With other threads issuing, the next batch is reserved once the pool is
 * down to pool_low(), while they still have serials to take; alone, a thread
 * reserves when the pool is empty (nobody would use the time).  The more
 * threads issue, the larger both (up to ISSUE_SERIAL_BATCH_MAX): with 16 bays
 * a batch of 8 ran out before the next one was committed, and the bays queued
 * behind the refill (docs/performance.md). */
#define POOL_MAX (2 * ISSUE_SERIAL_BATCH_MAX)
/* The reason recorded for a serial that was, or may have been, signed but
 * never recorded as issued; recovery uses the same (station/line/pl_recover.c). */
#define ORPHAN_REASON "cessationOfOperation"

struct issue_ctx {
	struct hsm *h;
	struct hsm_certstore store;
	struct issue_profile prof;
	/* Serials reserved (committed) and not yet used, taken under pool_lock.
	 * One thread at a time reserves the next batch (refilling), with the
	 * lock released: the others keep taking what is left, and wait on
	 * pool_cv only when nothing is.  busy: threads inside issue_cert. */
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cv;
	char pool[POOL_MAX][ISSUE_SERIAL_HEX];
	size_t npool;
	int refilling, busy;
	int san_type;                 /* GEN_URI or GEN_DNS, 0 = no SAN */
	const char *san_fmt;          /* into prof.san_template, past "URI:" */
	/* built once, added to every certificate (X509_add_ext copies) */
	X509_EXTENSION *bc, *ku_ec, *ku_rsa, *eku, *aki;
};

int issue_san_template_check(const char *t, struct errbuf *err)
{
	const char *pct;

	if (!t[0])
		return ST_OK;
	if (strncmp(t, "URI:", 4) && strncmp(t, "DNS:", 4))
		return errbuf_set(err, ST_EINVAL, "SAN template must start with URI: or DNS:");
	pct = strchr(t, '%');
	if (!pct || pct[1] != 's' || strchr(pct + 2, '%'))
		return errbuf_set(err, ST_EINVAL, "SAN template must hold exactly one %%s and no other %%");
	for (const char *p = t; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return errbuf_set(err, ST_EINVAL, "SAN template must be printable ASCII without spaces");
	return ST_OK;
}

static X509_EXTENSION *ku_ext(int key_agreement)
{
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	X509_EXTENSION *ext = NULL;

	if (ku && ASN1_BIT_STRING_set_bit(ku, 0, 1) &&
	    (!key_agreement || ASN1_BIT_STRING_set_bit(ku, 4, 1)))
		ext = X509V3_EXT_i2d(NID_key_usage, 1, ku);
	ASN1_BIT_STRING_free(ku);
	return ext;
}

X509_EXTENSION *issue_aki_ext(X509 *ca)
{
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca);
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	X509_EXTENSION *ext = NULL;
	unsigned char md[SHA_DIGEST_LENGTH];

	if (!akid)
		return NULL;
	if (ski) {
		akid->keyid = ASN1_OCTET_STRING_dup(ski);
	} else {
		/* RFC 5280 method 1: SHA-1 of the CA's subjectPublicKey bits */
		const unsigned char *pk;
		int pklen;

		if (X509_PUBKEY_get0_param(NULL, &pk, &pklen, NULL, X509_get_X509_PUBKEY(ca)) == 1) {
			SHA1(pk, (size_t)pklen, md);
			akid->keyid = ASN1_OCTET_STRING_new();
			if (akid->keyid)
				ASN1_OCTET_STRING_set(akid->keyid, md, sizeof(md));
		}
	}
	if (akid->keyid)
		ext = X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid);
	AUTHORITY_KEYID_free(akid);
	return ext;
}

int issue_ctx_new(struct hsm *h, const struct issue_profile *p,
		  const struct hsm_certstore *store, struct issue_ctx **out, struct errbuf *err)
{
	struct issue_ctx *ic;
	BASIC_CONSTRAINTS *bc;
	EXTENDED_KEY_USAGE *eku;
	int rc;

	*out = NULL;
	if (!store || !store->reserve || !store->issued || !store->release || !store->revoke)
		return errbuf_set(err, ST_EINVAL, "issue: no certificate store (write-ahead required)");
	if (p->validity_days < 1 || p->validity_days > 36500)
		return errbuf_set(err, ST_EINVAL, "certificate validity must be 1..36500 days");
	if ((rc = issue_san_template_check(p->san_template, err)) != ST_OK)
		return rc;
	ic = calloc(1, sizeof(*ic));
	if (!ic)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	ic->h = h;
	ic->store = *store;
	ic->prof = *p;
	pthread_mutex_init(&ic->pool_lock, NULL);
	pthread_cond_init(&ic->pool_cv, NULL);
	if (ic->prof.san_template[0]) {
		ic->san_type = !strncmp(ic->prof.san_template, "URI:", 4) ? GEN_URI : GEN_DNS;
		ic->san_fmt = ic->prof.san_template + 4;
	}
	bc = BASIC_CONSTRAINTS_new();
	if (bc) {
		bc->ca = 0;
		ic->bc = X509V3_EXT_i2d(NID_basic_constraints, 1, bc);
		BASIC_CONSTRAINTS_free(bc);
	}
	ic->ku_ec = ku_ext(1);
	ic->ku_rsa = ku_ext(0);
	eku = sk_ASN1_OBJECT_new_null();
	if (eku && sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth)))
		ic->eku = X509V3_EXT_i2d(NID_ext_key_usage, 0, eku);
	sk_ASN1_OBJECT_free(eku);
	ic->aki = issue_aki_ext(hsm_ca_cert(h));
	if (!ic->bc || !ic->ku_ec || !ic->ku_rsa || !ic->eku || !ic->aki) {
		issue_ctx_free(ic);
		ERR_clear_error();
		return errbuf_set(err, ST_ECRYPTO, "cannot prepare the certificate extensions");
	}
	*out = ic;
	return ST_OK;
}

void issue_ctx_free(struct issue_ctx *ic)
{
	const char *left[POOL_MAX];
	struct errbuf e;

	if (!ic)
		return;
	/* Nothing was signed with these.  If voiding them fails they stay
	 * reserved, and the next start's recovery revokes them. */
	for (size_t i = 0; i < ic->npool; i++)
		left[i] = ic->pool[i];
	if (ic->npool)
		ic->store.release(ic->store.ctx, left, ic->npool, &e);
	pthread_mutex_destroy(&ic->pool_lock);
	pthread_cond_destroy(&ic->pool_cv);
	X509_EXTENSION_free(ic->bc);
	X509_EXTENSION_free(ic->ku_ec);
	X509_EXTENSION_free(ic->ku_rsa);
	X509_EXTENSION_free(ic->eku);
	X509_EXTENSION_free(ic->aki);
	free(ic);
}

int issue_new_serial(char hex[ISSUE_SERIAL_HEX], struct errbuf *err)
{
	unsigned char b[SERIAL_BYTES];
	char all[HEX_LEN(SERIAL_BYTES)];
	const char *digits;
	size_t i = 0;

	do {
		if (RAND_bytes(b, sizeof(b)) != 1)
			return errbuf_set(err, ST_ECRYPTO, "RAND_bytes failed");
		b[0] &= 0x7f;  /* positive */
		for (i = 0; i < sizeof(b) && b[i] == 0; i++)
			;
	} while (i == sizeof(b));
	hex_encode(b + i, sizeof(b) - i, all);
	digits = all[0] == '0' ? all + 1 : all;   /* lower-case hex without leading zeros */
	memcpy(hex, digits, strlen(digits) + 1);
	OPENSSL_cleanse(b, sizeof(b));
	OPENSSL_cleanse(all, sizeof(all));
	return ST_OK;
}

static X509_EXTENSION *ski_ext(const X509_PUBKEY *pub)
{
	ASN1_OCTET_STRING *oct;
	X509_EXTENSION *ext = NULL;
	unsigned char md[SHA_DIGEST_LENGTH];
	const unsigned char *pk;
	int pklen;

	if (X509_PUBKEY_get0_param(NULL, &pk, &pklen, NULL, pub) != 1)
		return NULL;
	SHA1(pk, (size_t)pklen, md);
	oct = ASN1_OCTET_STRING_new();
	if (oct && ASN1_OCTET_STRING_set(oct, md, sizeof(md)))
		ext = X509V3_EXT_i2d(NID_subject_key_identifier, 0, oct);
	ASN1_OCTET_STRING_free(oct);
	return ext;
}

static X509_EXTENSION *san_ext(const struct issue_ctx *ic, const char *uid)
{
	char text[ISSUE_SAN_MAX + CSR_UID_LEN];
	const char *pct = strstr(ic->san_fmt, "%s");
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *s = NULL;
	X509_EXTENSION *ext = NULL;

	/* the template was checked to hold exactly one %s: splice, never printf */
	snprintf(text, sizeof(text), "%.*s%s%s", (int)(pct - ic->san_fmt), ic->san_fmt, uid, pct + 2);
	gens = sk_GENERAL_NAME_new_null();
	gn = GENERAL_NAME_new();
	s = ASN1_IA5STRING_new();
	if (!gens || !gn || !s || !ASN1_STRING_set(s, text, (int)strlen(text)))
		goto out;
	GENERAL_NAME_set0_value(gn, ic->san_type, s);
	s = NULL;
	if (!sk_GENERAL_NAME_push(gens, gn))
		goto out;
	gn = NULL;
	ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
out:
	ASN1_IA5STRING_free(s);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return ext;
}

/* The CSR's SubjectPublicKeyInfo, copied as it is: X509_set_pubkey() would
 * encode the EVP_PKEY again through OpenSSL 3's encoders (~0.3 ms).  The
 * X509 then has no decoded key in memory, which is why what we emit is verified
 * after parsing it again. */
static int copy_pubkey(X509 *x, X509_REQ *req)
{
	X509_PUBKEY *from = X509_REQ_get_X509_PUBKEY(req), *to = X509_get_X509_PUBKEY(x);
	const unsigned char *bits;
	const X509_ALGOR *alg;
	const ASN1_OBJECT *aobj;
	const void *pval;
	ASN1_OBJECT *obj = NULL;
	void *param = NULL;
	unsigned char *copy = NULL;
	int bitlen, ptype;

	if (!from || !to || X509_PUBKEY_get0_param(NULL, &bits, &bitlen, (X509_ALGOR **)&alg, from) != 1)
		return 0;
	X509_ALGOR_get0(&aobj, &ptype, &pval, alg);
	obj = OBJ_dup(aobj);
	if (ptype == V_ASN1_OBJECT)
		param = OBJ_dup(pval);
	else if (ptype == V_ASN1_SEQUENCE)
		param = ASN1_STRING_dup(pval);
	else
		ptype = ptype == V_ASN1_NULL ? V_ASN1_NULL : V_ASN1_UNDEF;
	copy = OPENSSL_memdup(bits, (size_t)bitlen);
	if (!obj || !copy || ((ptype == V_ASN1_OBJECT || ptype == V_ASN1_SEQUENCE) && !param) ||
	    X509_PUBKEY_set0_param(to, obj, ptype, param, copy, bitlen) != 1) {
		ASN1_OBJECT_free(obj);
		if (ptype == V_ASN1_OBJECT)
			ASN1_OBJECT_free(param);
		else if (ptype == V_ASN1_SEQUENCE)
			ASN1_STRING_free(param);
		OPENSSL_free(copy);
		return 0;
	}
	return 1;
}

/* Builds and signs the certificate in x. */
static int build_and_sign(struct issue_ctx *ic, const struct csr_info *csr, const char *serial_hex,
			  X509 *x, int *signed_it, struct errbuf *err)
{
	X509_EXTENSION *ski = NULL, *san = NULL;
	ASN1_INTEGER *sn = NULL;
	X509_NAME *subj = NULL;
	BIGNUM *bn = NULL;
	int ok;

	ok = BN_hex2bn(&bn, serial_hex) > 0 && (sn = BN_to_ASN1_INTEGER(bn, NULL)) != NULL &&
	     X509_set_version(x, X509_VERSION_3) &&
	     X509_set_serialNumber(x, sn) &&
	     X509_set_issuer_name(x, X509_get_subject_name(hsm_ca_cert(ic->h))) &&
	     (subj = X509_NAME_new()) != NULL &&
	     X509_NAME_add_entry_by_NID(subj, NID_commonName, MBSTRING_ASC,
					(const unsigned char *)csr->unique_id, -1, -1, 0) &&
	     X509_set_subject_name(x, subj) &&
	     X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
	     X509_time_adj_ex(X509_getm_notAfter(x), ic->prof.validity_days, 0, NULL) &&
	     copy_pubkey(x, csr->req) &&
	     (ski = ski_ext(X509_REQ_get_X509_PUBKEY(csr->req))) != NULL &&
	     X509_add_ext(x, ic->bc, -1) &&
	     X509_add_ext(x, csr->kind == CSR_KEY_RSA ? ic->ku_rsa : ic->ku_ec, -1) &&
	     X509_add_ext(x, ic->eku, -1) &&
	     X509_add_ext(x, ski, -1) &&
	     X509_add_ext(x, ic->aki, -1) &&
	     (!ic->san_type || ((san = san_ext(ic, csr->unique_id)) != NULL &&
				X509_add_ext(x, san, -1)));
	BN_free(bn);
	ASN1_INTEGER_free(sn);
	X509_NAME_free(subj);
	X509_EXTENSION_free(ski);
	X509_EXTENSION_free(san);
	if (!ok) {
		ERR_clear_error();
		return errbuf_set(err, ST_ECRYPTO, "cannot build the certificate for %s", csr->unique_id);
	}
	/* once the token was asked it may have signed, even if it reports a failure */
	if (hsm_sign_x509(ic->h, x, signed_it, err) != ST_OK) {
		ERR_clear_error();
		return errbuf_prefix(err, "certificate for %s: ", csr->unique_id);
	}
	return ST_OK;
}

/* The exact TBSCertificate bytes inside a certificate's DER. */
static int tbs_span(const uint8_t *der, size_t len, const uint8_t **tbs, size_t *tbs_len)
{
	const unsigned char *p = der, *start;
	long l;
	int tag, cls;

	if (ASN1_get_object(&p, &l, &tag, &cls, (long)len) & 0x80 || tag != V_ASN1_SEQUENCE)
		return 0;
	start = p;
	if (ASN1_get_object(&p, &l, &tag, &cls, (long)(der + len - p)) & 0x80 ||
	    tag != V_ASN1_SEQUENCE)
		return 0;
	*tbs = start;
	*tbs_len = (size_t)(p - start) + (size_t)l;
	return *tbs + *tbs_len <= der + len;
}

/*
 * Parses the emitted DER again and verifies it against the CA certificate, as
 * a relying party would: the structure parses completely; the CA's key
 * verifies the signature over the exact TBS bytes; the CA issued it (name,
 * key identifier, CA key usage); it is a valid client-auth end-entity
 * certificate now; it certifies the CSR's key.  (X509_verify_cert() checks
 * the same but costs 3x more in OpenSSL 3.0, which decodes the leaf key
 * through its generic decoders; the parse here leaves the key undecoded.)
 */
int issue_verify(struct issue_ctx *ic, const struct csr_info *csr,
		 const uint8_t *der, size_t len, struct errbuf *err)
{
	X509 *ca = hsm_ca_cert(ic->h);
	const unsigned char *p = der, *pk1, *pk2, *tbs;
	const ASN1_BIT_STRING *sig = NULL;
	const X509_ALGOR *sigalg = NULL;
	const char *why = NULL;
	EVP_MD_CTX *mc = NULL;
	OSSL_LIB_CTX *pctx = csr_parse_libctx();
	size_t tbs_len = 0;
	X509 *x;
	int pk1len, pk2len, verr, want_sig = NID_undef;

	x = pctx ? (X509 *)ASN1_item_d2i_ex(NULL, &p, (long)len, ASN1_ITEM_rptr(X509), pctx, NULL)
		 : d2i_X509(NULL, &p, (long)len);
	if (!x || p != der + len || !tbs_span(der, len, &tbs, &tbs_len)) {
		why = "it does not parse";
		goto out;
	}
	X509_get0_signature(&sig, &sigalg, x);
	mc = EVP_MD_CTX_new();
	if (!mc || EVP_DigestVerifyInit(mc, NULL, hsm_ca_md(ic->h), NULL, X509_get0_pubkey(ca)) != 1 ||
	    EVP_DigestVerify(mc, sig->data, (size_t)sig->length, tbs, tbs_len) != 1) {
		why = "its signature does not verify with the CA key";
		goto out;
	}
	if (!OBJ_find_sigid_by_algs(&want_sig, EVP_MD_get_type(hsm_ca_md(ic->h)),
				    EVP_PKEY_get_base_id(X509_get0_pubkey(ca))) ||
	    X509_get_signature_nid(x) != want_sig ||
	    X509_ALGOR_cmp(sigalg, X509_get0_tbs_sigalg(x)) != 0) {
		why = "wrong signature algorithm";
		goto out;
	}
	if ((verr = X509_check_issued(ca, x)) != X509_V_OK) {
		why = X509_verify_cert_error_string(verr);
		goto out;
	}
	if (X509_check_ca(x) != 0 || X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT, 0) != 1 ||
	    (X509_get_extension_flags(x) & EXFLAG_INVALID)) {
		why = "it is not a valid client-auth end-entity certificate";
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0 ||
	    X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
		why = "it is not valid now";
		goto out;
	}
	if (X509_PUBKEY_get0_param(NULL, &pk1, &pk1len, NULL, X509_get_X509_PUBKEY(x)) != 1 ||
	    X509_PUBKEY_get0_param(NULL, &pk2, &pk2len, NULL, X509_REQ_get_X509_PUBKEY(csr->req)) != 1 ||
	    pk1len != pk2len || memcmp(pk1, pk2, (size_t)pk1len) != 0)
		why = "it does not certify the CSR's key";
out:
	EVP_MD_CTX_free(mc);
	X509_free(x);
	ERR_clear_error();
	if (why)
		return errbuf_set(err, ST_ECRYPTO, "certificate for %s fails verification: %s",
				  csr->unique_id, why);
	return ST_OK;
}

static size_t clamp_size(size_t n, size_t lo, size_t hi)
{
	return n < lo ? lo : n > hi ? hi : n;
}

/* Serials per reservation with `busy` threads issuing: ISSUE_SERIAL_BATCH
 * for one or two, then two per thread, at most ISSUE_SERIAL_BATCH_MAX. */
static size_t batch_size(int busy)
{
	return clamp_size(busy > 0 ? 2 * (size_t)busy : 0, ISSUE_SERIAL_BATCH,
			  ISSUE_SERIAL_BATCH_MAX);
}

/* The pool left when the next batch is reserved ahead of need: enough for
 * every other thread to take one while this one commits the batch. */
static size_t pool_low(int busy)
{
	return clamp_size(busy > 0 ? (size_t)busy : 0, ISSUE_SERIAL_BATCH / 2,
			  ISSUE_SERIAL_BATCH_MAX);
}

/* Draws a batch of serials and reserves them, committed, in one transaction;
 * a taken serial (a 2^-127 event, or a forged row) draws the batch again.
 * Called with pool_lock held and refilling set by the caller; the lock is
 * released while the store commits, and the batch joins the pool. */
static int pool_refill(struct issue_ctx *ic, struct errbuf *err)
{
	char drawn[ISSUE_SERIAL_BATCH_MAX][ISSUE_SERIAL_HEX];
	const char *batch[ISSUE_SERIAL_BATCH_MAX];
	size_t n = batch_size(ic->busy);
	int rc = ST_EEXIST;

	pthread_mutex_unlock(&ic->pool_lock);
	for (int t = 0; t < RESERVE_TRIES && rc == ST_EEXIST; t++) {
		for (size_t i = 0; i < n; i++) {
			if ((rc = issue_new_serial(drawn[i], err)) != ST_OK)
				break;
			batch[i] = drawn[i];
		}
		if (rc == ST_OK)
			rc = ic->store.reserve(ic->store.ctx, batch, n, err);
	}
	pthread_mutex_lock(&ic->pool_lock);
	ic->refilling = 0;
	pthread_cond_broadcast(&ic->pool_cv);
	if (rc != ST_OK)
		return errbuf_prefix(err, "reserve certificate serials: ");
	/* Refills run one at a time from pool_low() or below, but serials given
	 * back meanwhile (return_serial) may leave less room: the rest are
	 * voided, not left reserved for recovery to find. */
	for (size_t i = 0; i < n; i++) {
		if (ic->npool < POOL_MAX) {
			memcpy(ic->pool[ic->npool++], drawn[i], ISSUE_SERIAL_HEX);
		} else {
			struct errbuf e;

			ic->store.release(ic->store.ctx, batch + i, n - i, &e);
			break;
		}
	}
	return ST_OK;
}

/* A serial reserved before anything is signed with it (write-ahead). */
static int take_serial(struct issue_ctx *ic, char serial[ISSUE_SERIAL_HEX], struct errbuf *err)
{
	int rc = ST_OK, taken = 0;

	pthread_mutex_lock(&ic->pool_lock);
	for (;;) {
		if (!taken && ic->npool) {
			memcpy(serial, ic->pool[--ic->npool], ISSUE_SERIAL_HEX);
			taken = 1;
		}
		/* ahead of need while others issue: they keep taking meanwhile */
		if (taken && (ic->refilling || ic->busy < 2 || ic->npool > pool_low(ic->busy)))
			break;
		if (!taken && ic->refilling) {
			pthread_cond_wait(&ic->pool_cv, &ic->pool_lock);
			continue;
		}
		ic->refilling = 1;
		rc = pool_refill(ic, err);
		if (rc != ST_OK || taken)
			break;
	}
	/* a failed refill ahead of need costs this certificate nothing */
	if (taken)
		rc = ST_OK;
	pthread_mutex_unlock(&ic->pool_lock);
	return rc;
}

/* Back to the pool: nothing was signed with it. */
static void return_serial(struct issue_ctx *ic, const char serial[ISSUE_SERIAL_HEX])
{
	const char *one = serial;
	struct errbuf e;
	int kept = 0;

	pthread_mutex_lock(&ic->pool_lock);
	if (ic->npool < POOL_MAX) {
		memcpy(ic->pool[ic->npool++], serial, ISSUE_SERIAL_HEX);
		kept = 1;
	}
	pthread_mutex_unlock(&ic->pool_lock);
	/* another thread refilled the pool meanwhile: release this one now */
	if (!kept)
		ic->store.release(ic->store.ctx, &one, 1, &e);
}

/* issue_cert() with the thread counted in ic->busy. */
static int issue_one(struct issue_ctx *ic, const struct csr_info *csr, int64_t unit_id,
		     struct issue_result *out, struct errbuf *err)
{
	unsigned char *der = NULL;
	struct errbuf e2;
	X509 *x = NULL;
	int rc, len = 0, signed_it = 0;

	/* 1. write-ahead: a serial durably reserved before anything is signed */
	if ((rc = take_serial(ic, out->serial_hex, err)) != ST_OK)
		return errbuf_prefix(err, "certificate for %s: ", csr->unique_id);
	/* 2. build and sign in the token */
	x = X509_new();
	if (!x) {
		return_serial(ic, out->serial_hex);
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	}
	rc = build_and_sign(ic, csr, out->serial_hex, x, &signed_it, err);
	if (rc == ST_OK) {
		len = i2d_X509(x, &der);
		if (len <= 0)
			rc = errbuf_set(err, ST_ECRYPTO, "cannot encode the certificate for %s",
					csr->unique_id);
	}
	X509_free(x);
	/* 3. verify what we emit, as a relying party would */
	if (rc == ST_OK)
		rc = issue_verify(ic, csr, der, (size_t)len, err);
	/* 4. record it, bound to its board, committed, before it leaves this module */
	if (rc == ST_OK) {
		rc = ic->store.issued(ic->store.ctx, out->serial_hex, unit_id, csr->unique_id,
				      csr->pubkey_hash, der, (size_t)len, err);
		if (rc != ST_OK)
			errbuf_prefix(err, "record certificate %s: ", out->serial_hex);
	}
	if (rc == ST_OK) {
		out->der = der;
		out->der_len = (size_t)len;
		return ST_OK;
	}
	OPENSSL_free(der);
	/* Signed (or perhaps signed: the token may fail after signing) and not
	 * recorded: an orphan, revoked now.  If even that fails the serial stays
	 * reserved, and the next start's recovery revokes it. */
	if (signed_it)
		ic->store.revoke(ic->store.ctx, out->serial_hex, ORPHAN_REASON, "station", &e2);
	else
		return_serial(ic, out->serial_hex);
	memset(out, 0, sizeof(*out));
	return rc;
}

int issue_cert(struct issue_ctx *ic, const struct csr_info *csr, int64_t unit_id,
	       struct issue_result *out, struct errbuf *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&ic->pool_lock);
	ic->busy++;
	pthread_mutex_unlock(&ic->pool_lock);
	rc = issue_one(ic, csr, unit_id, out, err);
	pthread_mutex_lock(&ic->pool_lock);
	ic->busy--;
	pthread_mutex_unlock(&ic->pool_lock);
	return rc;
}

void issue_result_clear(struct issue_result *r)
{
	OPENSSL_free(r->der);
	memset(r, 0, sizeof(*r));
}
