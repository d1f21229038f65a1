/*
 * Unit tests: the simulated board (fixtures/board), driven through its
 * fx_usbdev_ops by the in-process host fx_local: the provisioning protocol end to
 * end with real OpenSSL checks of everything the board returns, the state rules
 * (LOCK is final, FACTORY_RESET), the fault knobs, and that no reply ever carries
 * the device private key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fx_board.h"
#include "fx_crypto.h"
#include "fx_knobs.h"
#include "fx_local.h"
#include "fx_mfg.h"
#include "fx_store.h"
#include "proto.h"
#include "board_rig.h"

#define TMO 60000   /* an upper bound: RSA-3072 keygen on a loaded machine */

/* Fast knobs for tests, plus extra "name=value" pairs. */
static void set_knobs(const char *dir, const char *const *kv)
{
	struct fx_knobs k;
	struct errbuf e;

	assert_int_equal(fx_knobs_load(dir, &k, &e), ST_OK);
	k.flash_bps = 0;
	k.keygen_ms = 0;
	k.sign_ms = 0;
	for (; kv && kv[0]; kv += 2)
		if (fx_knobs_set(&k, kv[0], kv[1], &e) != ST_OK)
			fail_msg("%s", e.msg);
	assert_int_equal(fx_knobs_save(dir, &k, &e), ST_OK);
}

static struct rig *rig_new(const char *const *knobs)
{
	struct rig *r = calloc(1, sizeof(*r));
	struct errbuf e;

	assert_non_null(r);
	snprintf(r->dir, sizeof(r->dir), "board%d", ++board_no);
	assert_int_equal(fx_mfg_random_uid(r->uid, &e), ST_OK);
	if (fx_mfg_board_create(r->dir, r->uid, "SB-100", "rev B", 0x1209, 0x0001, &ca, NULL,
				&e) != ST_OK)
		fail_msg("%s", e.msg);
	set_knobs(r->dir, knobs);
	rig_open(r);
	return r;
}

static void rig_free(struct rig *r)
{
	if (r->b)
		rig_close(r);
	free(r);
}

/* Sends a request, polls to the end, returns the final reply status. */
static int call(struct rig *r, struct proto_msg *m)
{
	int rc = fx_local_call(&r->h, m, &r->rep, r->buf, TMO);

	if (rc != 0)
		fail_msg("%s: transfer failed: %d", proto_cmd_name(m->type), rc);
	if (r->rep.type != (m->type | PROTO_RESPONSE) && r->rep.type != PROTO_NAK)
		fail_msg("%s: reply type 0x%02x", proto_cmd_name(m->type), r->rep.type);
	return r->rep.status;
}

static int cmd(struct rig *r, uint8_t c)
{
	struct proto_msg m;

	proto_msg_request(&m, c, 0);
	return call(r, &m);
}

static int nonce_cmd(struct rig *r, uint8_t c, const uint8_t nonce[32])
{
	struct proto_msg m;

	proto_msg_request(&m, c, 0);
	memcpy(m.u.nonce_req.nonce, nonce, 32);
	return call(r, &m);
}

static int info_state(struct rig *r)
{
	assert_int_equal(cmd(r, PROTO_INFO), PROTO_ST_OK);
	return r->rep.u.info.state;
}

static uint8_t *make_image(const char *version, size_t body_len, size_t *len)
{
	uint8_t *body = malloc(body_len + 1), *img;
	struct errbuf e;
	size_t n;

	for (size_t i = 0; i < body_len; i++)
		body[i] = (uint8_t)(i * 31 + 7);
	assert_int_equal(fx_mfg_image_write("image.tmp.bin", body, body_len, version, &e), ST_OK);
	free(body);
	assert_int_equal(fx_store_read(".", "image.tmp.bin", PROTO_FW_MAX_IMAGE, &img, &n, &e), ST_OK);
	*len = n;
	return img;
}

static void flash(struct rig *r)
{
	size_t len;
	uint8_t *img = make_image("1.4.2", 10000, &len);

	assert_int_equal(fx_local_dfu_download(&r->h, img, len, TMO), 0);
	free(img);
}

static EVP_PKEY *der_pubkey(const struct proto_blob *b)
{
	const unsigned char *p = b->p;

	return d2i_PUBKEY(NULL, &p, (long)b->len);
}

static int verify3(EVP_PKEY *k, const void *a, size_t al, const void *b, size_t bl,
		   const void *c, size_t cl, const struct proto_blob *sig)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k) == 1 &&
		 EVP_DigestVerifyUpdate(ctx, a, al) == 1 &&
		 EVP_DigestVerifyUpdate(ctx, b, bl) == 1 &&
		 (!cl || EVP_DigestVerifyUpdate(ctx, c, cl) == 1) &&
		 EVP_DigestVerifyFinal(ctx, sig->p, sig->len) == 1;

	EVP_MD_CTX_free(ctx);
	return ok;
}

/* Runs GENKEY → GET_CSR → WRITE_CERT; returns the device public key. */
static EVP_PKEY *to_certified(struct rig *r, int alg, const uint8_t nonce[32])
{
	struct proto_msg m;
	EVP_PKEY *pub;
	X509 *leaf;
	uint8_t *der;
	size_t der_len;
	struct errbuf e;

	proto_msg_request(&m, PROTO_GENKEY, 0);
	m.u.genkey_req.alg = (uint8_t)alg;
	assert_int_equal(call(r, &m), PROTO_ST_OK);
	pub = der_pubkey(&r->rep.u.genkey.pubkey);
	assert_non_null(pub);
	assert_int_equal(nonce_cmd(r, PROTO_GET_CSR, nonce), PROTO_ST_OK);
	leaf = fx_crypto_issue(pub, r->uid, ca.key, ca.cert, 365, &e);
	assert_non_null(leaf);
	assert_int_equal(fx_crypto_cert_to_der(leaf, &der, &der_len, &e), ST_OK);
	proto_msg_request(&m, PROTO_WRITE_CERT, 0);
	m.u.certs.leaf = (struct proto_blob){ der, der_len };
	assert_int_equal(call(r, &m), PROTO_ST_OK);
	free(der);
	X509_free(leaf);
	return pub;
}

static void check_csr(struct rig *r, EVP_PKEY *pub, const uint8_t nonce[32],
		      int want_subject_ok, int want_sig_ok, int want_key_ok)
{
	const unsigned char *p = r->rep.u.csr.csr.p;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)r->rep.u.csr.csr.len);
	char cn[64] = "", hex[65], got[80] = "";
	int idx;
	X509_ATTRIBUTE *at;
	ASN1_TYPE *t;
	EVP_PKEY *rk;

	assert_non_null(req);
	X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn, sizeof(cn));
	assert_int_equal(strcmp(cn, r->uid) == 0, want_subject_ok);
	assert_int_equal(X509_NAME_entry_count(X509_REQ_get_subject_name(req)), 1);
	rk = X509_REQ_get0_pubkey(req);
	assert_int_equal(X509_REQ_verify(req, rk) == 1, want_sig_ok);
	assert_int_equal(EVP_PKEY_eq(rk, pub) == 1, want_key_ok);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", nonce[i]);
	idx = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1);
	assert_true(idx >= 0);
	at = X509_REQ_get_attr(req, idx);
	t = X509_ATTRIBUTE_get0_type(at, 0);
	assert_non_null(t);
	snprintf(got, sizeof(got), "%.*s", t->value.asn1_string->length,
		 (const char *)t->value.asn1_string->data);
	assert_string_equal(got, hex);
	X509_REQ_free(req);
}

/* The device key's private bytes, to search the replies for. */
static size_t private_bytes(const char *dir, uint8_t *out, size_t cap)
{
	uint8_t *pem;
	size_t len, n = 0;
	EVP_PKEY *k;
	BIGNUM *bn = NULL;

	assert_int_equal(fx_store_read(dir, FX_F_DEV_KEY, 65536, &pem, &len, NULL), ST_OK);
	k = fx_crypto_key_from_pem(pem, len, NULL);
	free(pem);
	assert_non_null(k);
	if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &bn) == 1 ||
	    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_D, &bn) == 1) {
		n = (size_t)BN_num_bytes(bn);
		assert_true(n <= cap);
		BN_bn2bin(bn, out);
	}
	BN_free(bn);
	EVP_PKEY_free(k);
	return n;
}

static void test_provision_end_to_end(void **state)
{
	struct rig *r = rig_new(NULL);
	uint8_t nonce[32], challenge[32], digest[32], priv[512];
	struct proto_msg m;
	EVP_PKEY *pub, *att;
	X509 *ac, *leaf;
	const unsigned char *p;
	uint8_t *leaf_der, *chain_der;
	size_t leaf_len, chain_len, n;
	char cn[64];
	struct errbuf e;

	(void)state;
	memset(nonce, 0xa5, sizeof(nonce));
	memset(challenge, 0x3c, sizeof(challenge));

	/* INFO on a blank board: identity and a verifiable attestation certificate */
	assert_int_equal(info_state(r), PROTO_STATE_BLANK);
	assert_string_equal(r->rep.u.info.uid, r->uid);
	assert_string_equal(r->rep.u.info.model, "SB-100");
	assert_string_equal(r->rep.u.info.hw_rev, "rev B");
	assert_string_equal(r->rep.u.info.fw_version, "");
	p = r->rep.u.info.att_cert.p;
	ac = d2i_X509(NULL, &p, (long)r->rep.u.info.att_cert.len);
	assert_non_null(ac);
	assert_int_equal(X509_verify(ac, X509_get0_pubkey(ca.cert)), 1);
	X509_NAME_get_text_by_NID(X509_get_subject_name(ac), NID_commonName, cn, sizeof(cn));
	assert_string_equal(cn, r->uid);
	att = X509_get_pubkey(ac);

	flash(r);
	assert_int_equal(info_state(r), PROTO_STATE_FLASHED);
	assert_string_equal(r->rep.u.info.fw_version, "1.4.2");
	assert_true(r->rep.u.info.has_fw_sha256);

	proto_msg_request(&m, PROTO_GENKEY, 0);
	assert_int_equal(call(r, &m), PROTO_ST_OK);
	assert_int_equal(r->rep.u.genkey.alg, PROTO_ALG_P256);
	pub = der_pubkey(&r->rep.u.genkey.pubkey);
	assert_non_null(pub);
	assert_int_equal(info_state(r), PROTO_STATE_KEYED);

	assert_int_equal(nonce_cmd(r, PROTO_GET_CSR, nonce), PROTO_ST_OK);
	check_csr(r, pub, nonce, 1, 1, 1);
	fx_crypto_sha256(r->rep.u.csr.csr.p, r->rep.u.csr.csr.len, digest);

	assert_int_equal(nonce_cmd(r, PROTO_ATTEST, nonce), PROTO_ST_OK);
	assert_memory_equal(r->rep.u.attest.csr_sha256, digest, 32);
	assert_true(verify3(att, PROTO_ATTEST_CONTEXT, strlen(PROTO_ATTEST_CONTEXT), nonce, 32,
			    digest, 32, &r->rep.u.attest.sig));

	/* certificate + chain, read back byte for byte */
	leaf = fx_crypto_issue(pub, r->uid, ca.key, ca.cert, 365, &e);
	assert_non_null(leaf);
	assert_int_equal(fx_crypto_cert_to_der(leaf, &leaf_der, &leaf_len, &e), ST_OK);
	assert_int_equal(fx_crypto_cert_to_der(ca.cert, &chain_der, &chain_len, &e), ST_OK);
	proto_msg_request(&m, PROTO_WRITE_CERT, 0);
	m.u.certs.leaf = (struct proto_blob){ leaf_der, leaf_len };
	m.u.certs.chain[0] = (struct proto_blob){ chain_der, chain_len };
	m.u.certs.n_chain = 1;
	assert_int_equal(call(r, &m), PROTO_ST_OK);
	assert_int_equal(info_state(r), PROTO_STATE_CERTIFIED);
	assert_int_equal(cmd(r, PROTO_READ_CERT), PROTO_ST_OK);
	assert_int_equal(r->rep.u.certs.leaf.len, leaf_len);
	assert_memory_equal(r->rep.u.certs.leaf.p, leaf_der, leaf_len);
	assert_int_equal(r->rep.u.certs.n_chain, 1);
	assert_memory_equal(r->rep.u.certs.chain[0].p, chain_der, chain_len);

	proto_msg_request(&m, PROTO_PROVE, 0);
	memcpy(m.u.prove_req.challenge, challenge, 32);
	assert_int_equal(call(r, &m), PROTO_ST_OK);
	assert_true(verify3(pub, PROTO_PROVE_CONTEXT, strlen(PROTO_PROVE_CONTEXT), challenge, 32,
			    NULL, 0, &r->rep.u.sig.sig));

	assert_int_equal(cmd(r, PROTO_LOCK), PROTO_ST_OK);
	assert_int_equal(r->rep.u.state.state, PROTO_STATE_LOCKED);

	/* the private key appears in no reply, raw or PEM */
	n = private_bytes(r->dir, priv, sizeof(priv));
	assert_true(n >= 20);   /* BN_num_bytes drops leading zero bytes */
	assert_null(memmem(r->h.log, r->h.log_len, priv, n));
	assert_null(memmem(r->h.log, r->h.log_len, priv, 16));
	assert_null(memmem(r->h.log, r->h.log_len, "PRIVATE KEY", 11));

	free(leaf_der);
	free(chain_der);
	X509_free(leaf);
	X509_free(ac);
	EVP_PKEY_free(att);
	EVP_PKEY_free(pub);
	rig_free(r);
}

static void test_algorithms(void **state)
{
	static const int algs[] = { PROTO_ALG_P384, PROTO_ALG_RSA3072 };
	uint8_t nonce[32] = { 1, 2, 3 }, priv[512];
	struct proto_msg m;

	(void)state;
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		struct rig *r = rig_new(NULL);
		EVP_PKEY *pub;
		size_t n;

		flash(r);
		pub = to_certified(r, algs[i], nonce);
		assert_int_equal(fx_crypto_key_alg(pub), algs[i]);
		assert_int_equal(nonce_cmd(r, PROTO_GET_CSR, nonce), PROTO_ST_OK);
		check_csr(r, pub, nonce, 1, 1, 1);
		proto_msg_request(&m, PROTO_PROVE, 0);
		assert_int_equal(call(r, &m), PROTO_ST_OK);
		assert_true(verify3(pub, PROTO_PROVE_CONTEXT, strlen(PROTO_PROVE_CONTEXT),
				    m.u.prove_req.challenge, 32, NULL, 0, &r->rep.u.sig.sig));
		n = private_bytes(r->dir, priv, sizeof(priv));
		assert_true(n >= 32);   /* BN_num_bytes drops leading zero bytes */
		assert_null(memmem(r->h.log, r->h.log_len, priv, 24));
		EVP_PKEY_free(pub);
		rig_free(r);
	}
}

static void test_state_rules(void **state)
{
	struct rig *r = rig_new(NULL);
	uint8_t nonce[32] = { 9 }, other[32] = { 8 };
	struct proto_msg m;
	EVP_PKEY *pub, *stranger;
	X509 *cert;
	uint8_t *der;
	size_t der_len;
	struct errbuf e;

	(void)state;
	/* blank */
	assert_int_equal(cmd(r, PROTO_POLL), PROTO_ST_ENOOP);
	assert_int_equal(r->rep.type, PROTO_POLL | PROTO_RESPONSE);
	assert_int_equal(cmd(r, PROTO_GENKEY), PROTO_ST_ESTATE);
	assert_int_equal(nonce_cmd(r, PROTO_GET_CSR, nonce), PROTO_ST_ESTATE);
	assert_int_equal(cmd(r, PROTO_READ_CERT), PROTO_ST_ESTATE);
	assert_int_equal(cmd(r, PROTO_LOCK), PROTO_ST_ESTATE);
	assert_int_equal(cmd(r, PROTO_FACTORY_RESET), PROTO_ST_OK);
	assert_int_equal(r->rep.u.state.state, PROTO_STATE_BLANK);

	flash(r);
	assert_int_equal(cmd(r, PROTO_PROVE), PROTO_ST_ESTATE);
	assert_int_equal(cmd(r, PROTO_GENKEY), PROTO_ST_OK);
	pub = der_pubkey(&r->rep.u.genkey.pubkey);
	assert_int_equal(cmd(r, PROTO_LOCK), PROTO_ST_ESTATE);
	assert_int_equal(nonce_cmd(r, PROTO_ATTEST, nonce), PROTO_ST_ESTATE);   /* no CSR yet */
	assert_int_equal(nonce_cmd(r, PROTO_GET_CSR, nonce), PROTO_ST_OK);
	assert_int_equal(nonce_cmd(r, PROTO_ATTEST, other), PROTO_ST_ESTATE);   /* other nonce */
	assert_int_equal(nonce_cmd(r, PROTO_ATTEST, nonce), PROTO_ST_OK);

	/* a certificate for another key is refused, state unchanged */
	stranger = fx_crypto_keygen(PROTO_ALG_P256, &e);
	cert = fx_crypto_issue(stranger, r->uid, ca.key, ca.cert, 30, &e);
	fx_crypto_cert_to_der(cert, &der, &der_len, &e);
	proto_msg_request(&m, PROTO_WRITE_CERT, 0);
	m.u.certs.leaf = (struct proto_blob){ der, der_len };
	assert_int_equal(call(r, &m), PROTO_ST_ECERT);
	/* and garbage DER too */
	m.u.certs.leaf = (struct proto_blob){ (const uint8_t *)"not a certificate", 17 };
	assert_int_equal(call(r, &m), PROTO_ST_ECERT);
	assert_int_equal(info_state(r), PROTO_STATE_KEYED);
	free(der);
	X509_free(cert);
	EVP_PKEY_free(stranger);

	/* wrong CONFIRM values */
	proto_msg_request(&m, PROTO_LOCK, 0);
	m.u.confirm.confirm = PROTO_CONFIRM_RESET;
	assert_int_equal(call(r, &m), PROTO_ST_EPAYLOAD);
	proto_msg_request(&m, PROTO_FACTORY_RESET, 0);
	m.u.confirm.confirm = 0;
	assert_int_equal(call(r, &m), PROTO_ST_EPAYLOAD);

	/* FACTORY_RESET from keyed: key gone from flash, back to flashed */
	assert_int_equal(cmd(r, PROTO_FACTORY_RESET), PROTO_ST_OK);
	assert_int_equal(r->rep.u.state.state, PROTO_STATE_FLASHED);
	assert_false(fx_store_exists(r->dir, FX_F_DEV_KEY));
	EVP_PKEY_free(pub);

	/* certified: GENKEY again drops the certificate; FACTORY_RESET from certified */
	pub = to_certified(r, PROTO_ALG_P256, nonce);
	EVP_PKEY_free(pub);
	assert_int_equal(cmd(r, PROTO_GENKEY), PROTO_ST_OK);
	assert_int_equal(info_state(r), PROTO_STATE_KEYED);
	assert_false(fx_store_exists(r->dir, FX_F_CERT));
	assert_int_equal(cmd(r, PROTO_READ_CERT), PROTO_ST_ESTATE);
	pub = to_certified(r, PROTO_ALG_P256, nonce);
	EVP_PKEY_free(pub);
	assert_int_equal(cmd(r, PROTO_FACTORY_RESET), PROTO_ST_OK);
	assert_int_equal(info_state(r), PROTO_STATE_FLASHED);
	assert_false(fx_store_exists(r->dir, FX_F_CERT));
	rig_free(r);
}

static void test_lock_is_final(void **state)
{
	struct rig *r = rig_new(NULL);
	uint8_t nonce[32] = { 7 };
	struct proto_msg m;
	EVP_PKEY *pub;
	size_t len;
	uint8_t *img;
	struct proto_dfu_status st;

	(void)state;
	flash(r);
	pub = to_certified(r, PROTO_ALG_P256, nonce);
	assert_int_equal(cmd(r, PROTO_LOCK), PROTO_ST_OK);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(info_state(r), PROTO_STATE_LOCKED);
		assert_int_equal(cmd(r, PROTO_GENKEY), PROTO_ST_ELOCKED);
		assert_int_equal(cmd(r, PROTO_FACTORY_RESET), PROTO_ST_ELOCKED);
		assert_int_equal(nonce_cmd(r, PROTO_GET_CSR, nonce), PROTO_ST_ELOCKED);
		assert_int_equal(nonce_cmd(r, PROTO_ATTEST, nonce), PROTO_ST_ELOCKED);
		proto_msg_request(&m, PROTO_WRITE_CERT, 0);
		m.u.certs.leaf = (struct proto_blob){ (const uint8_t *)"x", 1 };
		assert_int_equal(call(r, &m), PROTO_ST_ELOCKED);
		/* retry-safe: LOCK again is OK */
		assert_int_equal(cmd(r, PROTO_LOCK), PROTO_ST_OK);
		/* still readable and provable */
		assert_int_equal(cmd(r, PROTO_READ_CERT), PROTO_ST_OK);
		assert_int_equal(cmd(r, PROTO_PROVE), PROTO_ST_OK);
		/* no new firmware */
		img = make_image("9.9.9", 100, &len);
		assert_int_equal(fx_local_dfu_download(&r->h, img, len, TMO), PROTO_DFU_ERR_WRITE);
		free(img);
		assert_int_equal(fx_local_dfu_status(&r->h, &st), 0);
		assert_int_equal(st.bState, PROTO_DFU_ERROR);
		assert_int_equal(fx_local_control(&r->h, 0x21, PROTO_DFU_CLRSTATUS, 0, 1, NULL, 0, NULL), 0);
		/* and after a power cycle, the same */
		rig_close(r);
		rig_open(r);
	}
	assert_true(fx_store_exists(r->dir, FX_F_DEV_KEY));
	EVP_PKEY_free(pub);
	rig_free(r);
}

static void test_busy_and_poll(void **state)
{
	const char *knobs[] = { "keygen_ms", "1000", NULL };
	struct rig *r = rig_new(knobs);
	struct proto_msg m, m2;
	uint8_t frame[64];
	size_t n;

	(void)state;
	flash(r);
	proto_msg_request(&m, PROTO_GENKEY, 0);
	assert_int_equal(fx_local_xfer(&r->h, &m, &r->rep, r->buf, TMO), 0);
	assert_int_equal(r->rep.status, PROTO_ST_BUSY);
	assert_int_equal(r->rep.type, PROTO_GENKEY | PROTO_RESPONSE);
	assert_true(r->rep.u.busy.poll_ms > 100 && r->rep.u.busy.poll_ms <= 1005);
	/* the same request again (its BUSY was "lost"): BUSY again, not a second key */
	proto_msg_request(&m2, PROTO_GENKEY, 0);
	assert_int_equal(fx_local_xfer(&r->h, &m2, &r->rep, r->buf, TMO), 0);
	assert_int_equal(r->rep.status, PROTO_ST_BUSY);
	/* another operation meanwhile: EPENDING; INFO and POLL are answered */
	assert_int_equal(cmd(r, PROTO_FACTORY_RESET), PROTO_ST_EPENDING);
	assert_int_equal(info_state(r), PROTO_STATE_FLASHED);
	proto_msg_request(&m2, PROTO_POLL, 0);
	assert_int_equal(fx_local_xfer(&r->h, &m2, &r->rep, r->buf, TMO), 0);
	assert_int_equal(r->rep.type, PROTO_GENKEY | PROTO_RESPONSE);
	assert_int_equal(r->rep.status, PROTO_ST_BUSY);
	assert_int_equal(r->rep.seq, m2.seq);
	assert_int_equal(fx_board_wait_idle(r->b, TMO), 0);
	/* the result stays for repeated POLLs, each with its own seq */
	for (int i = 0; i < 2; i++) {
		proto_msg_request(&m2, PROTO_POLL, 0);
		assert_int_equal(fx_local_xfer(&r->h, &m2, &r->rep, r->buf, TMO), 0);
		assert_int_equal(r->rep.type, PROTO_GENKEY | PROTO_RESPONSE);
		assert_int_equal(r->rep.status, PROTO_ST_OK);
		assert_int_equal(r->rep.seq, m2.seq);
	}
	assert_int_equal(info_state(r), PROTO_STATE_KEYED);

	/* a lone zero-length packet is no frame: no reply */
	assert_int_equal(fx_local_send(&r->h, frame, 0), 0);
	assert_int_equal(fx_local_recv(&r->h, r->buf, sizeof(r->buf), &n, 100), -ETIMEDOUT);
	/* malformed frames get NAK / EPAYLOAD, never silence */
	assert_int_equal(fx_local_send(&r->h, (const uint8_t *)"garbage!", 8), 0);
	assert_int_equal(fx_local_recv(&r->h, r->buf, sizeof(r->buf), &n, TMO), 0);
	assert_int_equal(proto_msg_decode(r->buf, n, &r->rep, NULL), ST_OK);
	assert_int_equal(r->rep.type, PROTO_NAK);
	assert_int_equal(r->rep.status, PROTO_ST_EFRAME);
	assert_int_equal(proto_frame_encode(0x42, 0, 77, NULL, 0, frame, sizeof(frame), &n, NULL), ST_OK);
	assert_int_equal(fx_local_send(&r->h, frame, n), 0);
	assert_int_equal(fx_local_recv(&r->h, r->buf, sizeof(r->buf), &n, TMO), 0);
	assert_int_equal(proto_msg_decode(r->buf, n, &r->rep, NULL), ST_OK);
	assert_int_equal(r->rep.type, PROTO_NAK);
	assert_int_equal(r->rep.status, PROTO_ST_EUNKNOWN);
	assert_int_equal(r->rep.seq, 77);
	assert_int_equal(proto_frame_encode(PROTO_GET_CSR, 0, 78, NULL, 0, frame, sizeof(frame), &n, NULL), ST_OK);
	assert_int_equal(fx_local_send(&r->h, frame, n), 0);
	assert_int_equal(fx_local_recv(&r->h, r->buf, sizeof(r->buf), &n, TMO), 0);
	assert_int_equal(proto_msg_decode(r->buf, n, &r->rep, NULL), ST_OK);
	assert_int_equal(r->rep.type, PROTO_GET_CSR | PROTO_RESPONSE);
	assert_int_equal(r->rep.status, PROTO_ST_EPAYLOAD);
	assert_true(strstr(r->rep.u.error.message, "missing") != NULL);
	rig_free(r);
}

static void test_reply_faults(void **state)
{
	const char *knobs[] = { "drop_reply", "info", "corrupt_reply", "read_cert",
				"stall_in", "prove", "stall_out", "poll", NULL };
	struct rig *r = rig_new(knobs);
	struct proto_msg m;
	uint8_t frame[64];
	size_t n;
	struct fx_knobs k;

	(void)state;
	/* drop: the first INFO gets no reply, the retry does */
	proto_msg_request(&m, PROTO_INFO, 0);
	assert_int_equal(fx_local_xfer(&r->h, &m, &r->rep, r->buf, 200), -ETIMEDOUT);
	assert_int_equal(info_state(r), PROTO_STATE_BLANK);
	/* corrupt: a reply with a bad CRC, once */
	proto_msg_request(&m, PROTO_READ_CERT, 0);
	assert_int_equal(fx_local_xfer(&r->h, &m, &r->rep, r->buf, TMO), ST_EPROTO);
	assert_int_equal(cmd(r, PROTO_READ_CERT), PROTO_ST_ESTATE);
	/* stall IN: the reply's URB fails with EPIPE until CLEAR_FEATURE(HALT) */
	proto_msg_request(&m, PROTO_PROVE, 0);
	assert_int_equal(fx_local_xfer(&r->h, &m, &r->rep, r->buf, TMO), -EPIPE);
	assert_int_equal(fx_local_recv(&r->h, r->buf, sizeof(r->buf), &n, 200), -EPIPE);
	assert_int_equal(fx_local_control(&r->h, 0x02, 1, 0, PROTO_EP_IN, NULL, 0, NULL), 0);
	assert_int_equal(info_state(r), PROTO_STATE_BLANK);
	/* stall OUT: the frame is refused until CLEAR_FEATURE(HALT) */
	proto_msg_request(&m, PROTO_POLL, 1);
	assert_int_equal(proto_msg_encode(&m, frame, sizeof(frame), &n, NULL), ST_OK);
	assert_int_equal(fx_local_send(&r->h, frame, n), -EPIPE);
	assert_int_equal(fx_local_send(&r->h, frame, n), -EPIPE);
	assert_int_equal(fx_local_control(&r->h, 0x02, 1, 0, PROTO_EP_OUT, NULL, 0, NULL), 0);
	assert_int_equal(cmd(r, PROTO_POLL), PROTO_ST_ENOOP);
	/* each knob fired once and was written back as consumed */
	assert_int_equal(fx_board_wait_idle(r->b, TMO), 0);
	assert_int_equal(fx_knobs_load(r->dir, &k, NULL), ST_OK);
	assert_int_equal(k.drop_reply.stage, 0);
	assert_int_equal(k.corrupt_reply.stage, 0);
	assert_int_equal(k.stall_in.stage, 0);
	assert_int_equal(k.stall_out.stage, 0);
	rig_free(r);
}

static void test_crypto_faults(void **state)
{
	const char *k1[] = { "csr_wrong_subject", "1", "bad_attestation", "1", NULL };
	const char *k2[] = { "csr_other_key", "1", "bad_attestation", "2", NULL };
	const char *k3[] = { "csr_other_key", "2", "refuse_lock", "1",
			     "flash_error_at", "write_cert", NULL };
	uint8_t nonce[32] = { 5 }, digest[32];
	struct proto_msg m;
	EVP_PKEY *pub, *att;
	X509 *ac;
	const unsigned char *p;
	const char *const *sets[] = { k1, k2, k3 };

	(void)state;
	for (int i = 0; i < 3; i++) {
		struct rig *r = rig_new(sets[i]);

		assert_int_equal(cmd(r, PROTO_INFO), PROTO_ST_OK);
		p = r->rep.u.info.att_cert.p;
		ac = d2i_X509(NULL, &p, (long)r->rep.u.info.att_cert.len);
		att = X509_get_pubkey(ac);
		flash(r);
		assert_int_equal(cmd(r, PROTO_GENKEY), PROTO_ST_OK);
		pub = der_pubkey(&r->rep.u.genkey.pubkey);
		assert_int_equal(nonce_cmd(r, PROTO_GET_CSR, nonce), PROTO_ST_OK);
		if (i == 0)
			check_csr(r, pub, nonce, 0, 1, 1);
		else if (i == 1)
			check_csr(r, pub, nonce, 1, 0, 1);
		else
			check_csr(r, pub, nonce, 1, 1, 0);
		fx_crypto_sha256(r->rep.u.csr.csr.p, r->rep.u.csr.csr.len, digest);
		assert_int_equal(nonce_cmd(r, PROTO_ATTEST, nonce), PROTO_ST_OK);
		assert_int_equal(verify3(att, PROTO_ATTEST_CONTEXT, strlen(PROTO_ATTEST_CONTEXT),
					 nonce, 32, digest, 32, &r->rep.u.attest.sig), i == 2);
		if (i == 2) {
			X509 *leaf = fx_crypto_issue(pub, r->uid, ca.key, ca.cert, 30, NULL);
			uint8_t *der;
			size_t len;

			fx_crypto_cert_to_der(leaf, &der, &len, NULL);
			proto_msg_request(&m, PROTO_WRITE_CERT, 0);
			m.u.certs.leaf = (struct proto_blob){ der, len };
			assert_int_equal(call(r, &m), PROTO_ST_EFLASH);   /* flash_error_at */
			assert_int_equal(info_state(r), PROTO_STATE_KEYED);
			assert_false(fx_store_exists(r->dir, FX_F_CERT));
			assert_int_equal(call(r, &m), PROTO_ST_OK);       /* fired once */
			assert_int_equal(cmd(r, PROTO_LOCK), PROTO_ST_EREFUSED);
			assert_int_equal(info_state(r), PROTO_STATE_CERTIFIED);
			free(der);
			X509_free(leaf);
		}
		EVP_PKEY_free(pub);
		EVP_PKEY_free(att);
		X509_free(ac);
		rig_free(r);
	}
}

static void test_unplug(void **state)
{
	const char *knobs[] = { "unplug_at", "genkey", NULL };
	struct rig *r = rig_new(knobs);
	struct proto_msg m;

	(void)state;
	flash(r);
	proto_msg_request(&m, PROTO_GENKEY, 0);
	assert_int_equal(fx_local_xfer(&r->h, &m, &r->rep, r->buf, 500), -ENODEV);
	assert_int_equal(fx_board_wait_idle(r->b, TMO), 0);
	assert_true(r->h.unplugged);
	assert_true(fx_board_unplugged(r->b));
	proto_msg_request(&m, PROTO_INFO, 0);
	assert_int_equal(fx_local_xfer(&r->h, &m, &r->rep, r->buf, 200), -ENODEV);
	assert_int_equal(fx_local_control(&r->h, 0x80, 6, 0x0100, 0, r->buf, 18, NULL), -ENODEV);
	/* replugged: the fault fired once, the board goes on */
	rig_close(r);
	rig_open(r);
	assert_int_equal(cmd(r, PROTO_GENKEY), PROTO_ST_OK);
	rig_free(r);
}

static void test_clone(void **state)
{
	struct rig *r = rig_new(NULL), *c = calloc(1, sizeof(*c));
	struct errbuf e;

	(void)state;
	snprintf(c->dir, sizeof(c->dir), "board%d", ++board_no);
	assert_int_equal(fx_mfg_board_clone(r->dir, c->dir, &e), ST_OK);
	rig_open(c);
	assert_int_equal(cmd(c, PROTO_INFO), PROTO_ST_OK);
	assert_string_equal(c->rep.u.info.uid, r->uid);
	assert_int_equal(cmd(r, PROTO_INFO), PROTO_ST_OK);
	assert_string_equal(r->rep.u.info.uid, r->uid);
	/* a clone is a board dir of its own: a second clone into it is refused */
	assert_int_equal(fx_mfg_board_clone(r->dir, c->dir, &e), ST_EEXIST);
	rig_free(c);
	rig_free(r);
}

static void write_text(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_bad_board_dirs(void **state)
{
	struct fx_board *b;
	struct errbuf e;
	struct rig *r = rig_new(NULL);

	(void)state;
	rig_close(r);
	assert_int_equal(fx_board_open("no-such-board", &b, &e), ST_ENOTFOUND);
	assert_non_null(strstr(e.msg, "identity"));
	/* a knob file with a typo names file:line */
	write_text(r->dir, "knobs", "# ok\nflash_bps = 1000\nflash_bsp = 3\n");
	assert_int_equal(fx_board_open(r->dir, &b, &e), ST_EINVAL);
	assert_non_null(strstr(e.msg, "knobs:3:"));
	assert_non_null(strstr(e.msg, "flash_bsp"));
	write_text(r->dir, "knobs", "drop_reply = nonsense\n");
	assert_int_equal(fx_board_open(r->dir, &b, &e), ST_EINVAL);
	assert_non_null(strstr(e.msg, "knobs:1:"));
	write_text(r->dir, "knobs", "refuse_lock = 7\n");
	assert_int_equal(fx_board_open(r->dir, &b, &e), ST_EINVAL);
	/* a bad identity names the file */
	write_text(r->dir, "knobs", "");
	write_text(r->dir, "identity", "unique_id = 0123\nmodel = x\nhw_revision = y\n");
	assert_int_equal(fx_board_open(r->dir, &b, &e), ST_EINVAL);
	assert_non_null(strstr(e.msg, "identity"));
	rig_free(r);
}

static void test_knobs_file(void **state)
{
	static const char *const kv[] = {
		"flash_bps", "1000", "keygen_ms", "7", "sign_ms", "0",
		"drop_reply", "info", "drop_reply_count", "0",
		"corrupt_reply", "GET_CSR", "corrupt_reply_count", "2",
		"stall_in", "prove", "stall_out", "poll", "unplug_at", "dfu_upload",
		"power_loss_at", "dfu_manifest", "flash_error_at", "dfu_dnload",
		"csr_wrong_subject", "1", "csr_other_key", "2", "bad_attestation", "2",
		"refuse_lock", "1", NULL
	};
	struct fx_knobs k, back;
	struct errbuf e;
	char text[4096];

	(void)state;
	mkdir("knobdir", 0700);
	fx_knobs_defaults(&k);
	for (int i = 0; kv[i]; i += 2)
		if (fx_knobs_set(&k, kv[i], kv[i + 1], &e) != ST_OK)
			fail_msg("%s", e.msg);
	assert_int_equal(fx_knobs_save("knobdir", &k, &e), ST_OK);
	assert_int_equal(fx_knobs_load("knobdir", &back, &e), ST_OK);
	assert_memory_equal(&k, &back, sizeof(k));
	fx_knobs_format(&back, text, sizeof(text));
	assert_non_null(strstr(text, "corrupt_reply = get_csr\ncorrupt_reply_count = 2\n"));
	assert_non_null(strstr(text, "power_loss_at = dfu_manifest\n"));
	/* count 0: every time; count 2: twice, then off; other stages never */
	for (int i = 0; i < 5; i++)
		assert_true(fx_at_fire(&back.drop_reply, PROTO_INFO));
	assert_false(fx_at_fire(&back.corrupt_reply, PROTO_INFO));
	assert_true(fx_at_fire(&back.corrupt_reply, PROTO_GET_CSR));
	assert_true(fx_at_fire(&back.corrupt_reply, PROTO_GET_CSR));
	assert_false(fx_at_fire(&back.corrupt_reply, PROTO_GET_CSR));
	assert_int_equal(back.corrupt_reply.stage, 0);
	/* unset puts defaults back; the defaults write an empty knob list */
	for (int i = 0; kv[i]; i += 2)
		assert_int_equal(fx_knobs_unset(&k, kv[i], &e), ST_OK);
	fx_knobs_defaults(&back);
	assert_memory_equal(&k, &back, sizeof(k));
	fx_knobs_format(&k, text, sizeof(text));
	assert_string_equal(text, "");
	/* bad values */
	assert_int_equal(fx_knobs_set(&k, "flash_bps", "-1", &e), ST_EINVAL);
	assert_int_equal(fx_knobs_set(&k, "flash_bps", "12abc", &e), ST_EINVAL);
	assert_int_equal(fx_knobs_set(&k, "keygen_ms", "99999999999", &e), ST_EINVAL);
	assert_int_equal(fx_knobs_set(&k, "drop_reply_count", "x", &e), ST_EINVAL);
	assert_int_equal(fx_knobs_set(&k, "stall_in", "dfu_nothing", &e), ST_EINVAL);
	assert_int_equal(fx_knobs_set(&k, "csr_other_key", "3", &e), ST_EINVAL);
	assert_int_equal(fx_knobs_set(&k, "refuse_lock", "2", &e), ST_EINVAL);
	assert_int_equal(fx_knobs_unset(&k, "nope", &e), ST_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_provision_end_to_end),
		cmocka_unit_test(test_algorithms),
		cmocka_unit_test(test_state_rules),
		cmocka_unit_test(test_lock_is_final),
		cmocka_unit_test(test_busy_and_poll),
		cmocka_unit_test(test_reply_faults),
		cmocka_unit_test(test_crypto_faults),
		cmocka_unit_test(test_unplug),
		cmocka_unit_test(test_clone),
		cmocka_unit_test(test_bad_board_dirs),
		cmocka_unit_test(test_knobs_file),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
