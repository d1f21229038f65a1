/*
 * Unit tests: the simulated board's endpoint 0 (descriptors, standard requests),
 * its DFU 1.1 device state machine, and power loss at every stage: the board
 * directory must reopen as a consistent board, in the old or the new state.
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

#include <openssl/evp.h>
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

static void set_knobs(const char *dir, const char *const *kv)
{
	struct fx_knobs k;
	struct errbuf e;

	fx_knobs_defaults(&k);
	k.flash_bps = 0;
	k.keygen_ms = 0;
	k.sign_ms = 0;
	for (; kv && kv[0]; kv += 2)
		if (fx_knobs_set(&k, kv[0], kv[1], &e) != ST_OK)
			fail_msg("%s", e.msg);
	assert_int_equal(fx_knobs_save(dir, &k, &e), ST_OK);
}

/* Power cycle with new knobs. */
static void rig_cycle(struct rig *r, const char *const *knobs)
{
	rig_close(r);
	set_knobs(r->dir, knobs);
	rig_open(r);
}

static struct rig *rig_new(const char *const *knobs)
{
	struct rig *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	snprintf(r->dir, sizeof(r->dir), "board%d", ++board_no);
	assert_int_equal(fx_mfg_random_uid(r->uid, NULL), ST_OK);
	assert_int_equal(fx_mfg_board_create(r->dir, r->uid, "SB-200", "3", 0x1209, 0x0001,
					     &ca, NULL, NULL), ST_OK);
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

static int ctl(struct rig *r, uint8_t rt, uint8_t req, uint16_t val, uint16_t idx,
	       uint8_t *data, uint16_t len, size_t *actual)
{
	return fx_local_control(&r->h, rt, req, val, idx, data, len, actual);
}

static struct proto_dfu_status dfu_status(struct rig *r)
{
	struct proto_dfu_status st;

	assert_int_equal(fx_local_dfu_status(&r->h, &st), 0);
	return st;
}

/* GETSTATUS until the board is done programming. */
static struct proto_dfu_status settled(struct rig *r)
{
	struct proto_dfu_status st;

	assert_int_equal(fx_board_wait_idle(r->b, TMO), 0);
	st = dfu_status(r);
	return st;
}

static uint8_t *image(const char *version, size_t body_len, size_t *len)
{
	uint8_t *body = malloc(body_len + 1), *img;
	size_t n;

	for (size_t i = 0; i < body_len; i++)
		body[i] = (uint8_t)(i * 13 + version[0]);
	assert_int_equal(fx_mfg_image_write("img.bin", body, body_len, version, NULL), ST_OK);
	free(body);
	assert_int_equal(fx_store_read(".", "img.bin", PROTO_FW_MAX_IMAGE, &img, &n, NULL), ST_OK);
	*len = n;
	return img;
}

static int call(struct rig *r, uint8_t cmd)
{
	struct proto_msg m;

	proto_msg_request(&m, cmd, 0);
	if (cmd == PROTO_GET_CSR)
		memset(m.u.nonce_req.nonce, 0x11, 32);
	assert_int_equal(fx_local_call(&r->h, &m, &r->rep, r->buf, TMO), 0);
	return r->rep.status;
}

static int state_of(struct rig *r)
{
	assert_int_equal(call(r, PROTO_INFO), PROTO_ST_OK);
	return r->rep.u.info.state;
}

static void flash(struct rig *r, const char *version)
{
	size_t len;
	uint8_t *img = image(version, 5000, &len);

	assert_int_equal(fx_local_dfu_download(&r->h, img, len, TMO), 0);
	free(img);
}

static void certify(struct rig *r)
{
	struct proto_msg m;
	const unsigned char *p;
	EVP_PKEY *pub;
	X509 *leaf;
	uint8_t *der;
	size_t len;

	assert_int_equal(call(r, PROTO_GENKEY), PROTO_ST_OK);
	p = r->rep.u.genkey.pubkey.p;
	pub = d2i_PUBKEY(NULL, &p, (long)r->rep.u.genkey.pubkey.len);
	leaf = fx_crypto_issue(pub, r->uid, ca.key, ca.cert, 30, NULL);
	assert_int_equal(fx_crypto_cert_to_der(leaf, &der, &len, NULL), ST_OK);
	proto_msg_request(&m, PROTO_WRITE_CERT, 0);
	m.u.certs.leaf = (struct proto_blob){ der, len };
	assert_int_equal(fx_local_call(&r->h, &m, &r->rep, r->buf, TMO), 0);
	assert_int_equal(r->rep.status, PROTO_ST_OK);
	free(der);
	X509_free(leaf);
	EVP_PKEY_free(pub);
}

static void test_descriptors(void **state)
{
	struct rig *r = rig_new(NULL);
	struct fx_usbdev_info info;
	struct proto_dfu_func fn;
	uint8_t d[512];
	size_t n;

	(void)state;
	fx_board_ops.info(r->b, &info);
	assert_int_equal(info.vid, 0x1209);
	assert_int_equal(info.pid, 0x0001);
	assert_string_equal(info.serial, r->uid);
	assert_int_equal(info.descriptors_len, 18 + 50);
	assert_int_equal(info.descriptors[0], 18);
	assert_int_equal(info.descriptors[18 + 2], 50);          /* wTotalLength */
	assert_int_equal(proto_dfu_func_find(info.descriptors + 18, 50, &fn, NULL), ST_OK);
	assert_int_equal(fn.wTransferSize, PROTO_DFU_TRANSFER_SIZE);
	assert_int_equal(fn.bmAttributes, 0x07);
	assert_int_equal(fn.bcdDFUVersion, 0x0110);

	/* the same bytes over ep0 */
	assert_int_equal(ctl(r, 0x80, 6, 0x0100, 0, d, 64, &n), 0);
	assert_int_equal(n, 18);
	assert_memory_equal(d, info.descriptors, 18);
	assert_int_equal(ctl(r, 0x80, 6, 0x0200, 0, d, 9, &n), 0);
	assert_int_equal(n, 9);
	assert_int_equal(ctl(r, 0x80, 6, 0x0200, 0, d, 255, &n), 0);
	assert_int_equal(n, 50);
	assert_memory_equal(d, info.descriptors + 18, 50);
	assert_int_equal(ctl(r, 0x80, 6, 0x0300, 0, d, 255, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(d[2] | d[3] << 8, 0x0409);
	assert_int_equal(ctl(r, 0x80, 6, 0x0303, 0x0409, d, 255, &n), 0);
	assert_int_equal(n, 2 + 48);
	for (int i = 0; i < 24; i++)
		assert_int_equal(d[2 + 2 * i], (uint8_t)r->uid[i]);
	assert_int_equal(ctl(r, 0x81, 6, 0x2100, 1, d, 9, &n), 0);
	assert_int_equal(n, 9);
	assert_int_equal(ctl(r, 0x80, 6, 0x0600, 0, d, 10, &n), -EPIPE);  /* no qualifier */
	assert_int_equal(ctl(r, 0x80, 6, 0x0309, 0x0409, d, 255, &n), -EPIPE);
	/* configuration and interfaces */
	assert_int_equal(ctl(r, 0x00, 9, 1, 0, NULL, 0, NULL), 0);
	assert_int_equal(ctl(r, 0x80, 8, 0, 0, d, 1, &n), 0);
	assert_int_equal(d[0], 1);
	assert_int_equal(ctl(r, 0x01, 11, 0, 1, NULL, 0, NULL), 0);
	assert_int_equal(ctl(r, 0x01, 11, 1, 1, NULL, 0, NULL), -EPIPE);
	assert_int_equal(ctl(r, 0x82, 0, 0, PROTO_EP_IN, d, 2, &n), 0);
	assert_int_equal(d[0], 0);
	assert_int_equal(ctl(r, 0x02, 3, 0, PROTO_EP_IN, NULL, 0, NULL), 0);   /* SET_FEATURE halt */
	assert_int_equal(ctl(r, 0x82, 0, 0, PROTO_EP_IN, d, 2, &n), 0);
	assert_int_equal(d[0], 1);
	assert_int_equal(ctl(r, 0x02, 1, 0, PROTO_EP_IN, NULL, 0, NULL), 0);
	assert_int_equal(ctl(r, 0x40, 1, 0, 0, NULL, 0, NULL), -EPIPE);        /* vendor: none */
	rig_free(r);
}

static void test_dfu_download_upload(void **state)
{
	/* 4 KiB/s: a 4 KiB block takes a second, so dfuDNBUSY is visible even on a
	 * loaded machine */
	const char *slow[] = { "flash_bps", "4096", NULL };
	struct rig *r = rig_new(slow);
	struct proto_dfu_status st;
	uint8_t *img, *back = malloc(PROTO_FW_MAX_IMAGE), one, sha[32];
	size_t len, n;

	(void)state;
	st = dfu_status(r);
	assert_int_equal(st.bState, PROTO_DFU_IDLE);
	assert_int_equal(st.bStatus, PROTO_DFU_OK);
	/* nothing to upload yet */
	assert_int_equal(fx_local_dfu_upload(&r->h, back, PROTO_FW_MAX_IMAGE, &n), 0);
	assert_int_equal(n, 0);

	img = image("2.0.0", 9000, &len);
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_DNLOAD, 0, 1, img, 4096, NULL), 0);
	st = dfu_status(r);
	assert_int_equal(st.bState, PROTO_DFU_DNBUSY);
	assert_true(st.bwPollTimeout >= 100 && st.bwPollTimeout <= 1000);
	assert_int_equal(ctl(r, 0xa1, PROTO_DFU_GETSTATE, 0, 1, &one, 1, &n), 0);
	assert_int_equal(one, PROTO_DFU_DNBUSY);
	/* a second block while busy is a protocol error: stall, dfuERROR */
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_DNLOAD, 1, 1, img + 4096, 4096, NULL), -EPIPE);
	st = dfu_status(r);
	assert_int_equal(st.bState, PROTO_DFU_ERROR);
	assert_int_equal(st.bStatus, PROTO_DFU_ERR_STALLEDPKT);
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_CLRSTATUS, 0, 1, NULL, 0, NULL), 0);
	assert_int_equal(dfu_status(r).bState, PROTO_DFU_IDLE);
	assert_int_equal(fx_board_wait_idle(r->b, TMO), 0);
	assert_false(fx_store_exists(r->dir, FX_F_FW_STAGE));

	/* the whole image, then read back */
	rig_cycle(r, NULL);
	assert_int_equal(fx_local_dfu_download(&r->h, img, len, TMO), 0);
	assert_int_equal(fx_local_dfu_upload(&r->h, back, PROTO_FW_MAX_IMAGE, &n), 0);
	assert_int_equal(n, len);
	assert_memory_equal(back, img, len);
	assert_int_equal(state_of(r), PROTO_STATE_FLASHED);
	assert_string_equal(r->rep.u.info.fw_version, "2.0.0");
	fx_crypto_sha256(img, len, sha);
	assert_memory_equal(r->rep.u.info.fw_sha256, sha, 32);
	assert_false(fx_store_exists(r->dir, FX_F_FW_STAGE));
	free(img);

	/* an image that is an exact multiple of the transfer size ends with an empty UPLOAD */
	img = image("2.0.1", 8192 - PROTO_FW_TRAILER_LEN, &len);
	assert_int_equal(len, 8192);
	assert_int_equal(fx_local_dfu_download(&r->h, img, len, TMO), 0);
	assert_int_equal(fx_local_dfu_upload(&r->h, back, PROTO_FW_MAX_IMAGE, &n), 0);
	assert_int_equal(n, 8192);
	assert_memory_equal(back, img, len);
	assert_int_equal(dfu_status(r).bState, PROTO_DFU_IDLE);
	free(img);
	free(back);
	rig_free(r);
}

static void test_dfu_errors(void **state)
{
	struct rig *r = rig_new(NULL);
	struct proto_dfu_status st;
	uint8_t *img, six[6];
	size_t len;

	(void)state;
	flash(r, "1.0.0");
	/* a bad body hash: errVERIFY, the old image stays */
	img = image("1.1.0", 3000, &len);
	img[10] ^= 1;
	assert_int_equal(fx_local_dfu_download(&r->h, img, len, TMO), PROTO_DFU_ERR_VERIFY);
	assert_int_equal(dfu_status(r).bState, PROTO_DFU_ERROR);
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_CLRSTATUS, 0, 1, NULL, 0, NULL), 0);
	assert_int_equal(state_of(r), PROTO_STATE_FLASHED);
	assert_string_equal(r->rep.u.info.fw_version, "1.0.0");
	/* no trailer at all: errFIRMWARE */
	assert_int_equal(fx_local_dfu_download(&r->h, img, 2000, TMO), PROTO_DFU_ERR_FIRMWARE);
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_CLRSTATUS, 0, 1, NULL, 0, NULL), 0);
	assert_false(fx_store_exists(r->dir, FX_F_FW_STAGE));
	free(img);

	/* requests not valid in the state stall and enter dfuERROR / errSTALLEDPKT */
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_CLRSTATUS, 0, 1, NULL, 0, NULL), -EPIPE);
	st = dfu_status(r);
	assert_int_equal(st.bState, PROTO_DFU_ERROR);
	assert_int_equal(st.bStatus, PROTO_DFU_ERR_STALLEDPKT);
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_CLRSTATUS, 0, 1, NULL, 0, NULL), 0);
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_DETACH, 1000, 1, NULL, 0, NULL), -EPIPE);
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_CLRSTATUS, 0, 1, NULL, 0, NULL), 0);
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_DNLOAD, 0, 1, NULL, 0, NULL), -EPIPE);  /* empty in idle */
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_CLRSTATUS, 0, 1, NULL, 0, NULL), 0);
	assert_int_equal(ctl(r, 0xa1, PROTO_DFU_GETSTATUS, 0, 1, six, 5, NULL), -EPIPE); /* wLength 5 */
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_CLRSTATUS, 0, 1, NULL, 0, NULL), 0);
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_DNLOAD, 0, 0, six, 6, NULL), -EPIPE);   /* wrong interface */

	/* ABORT a download half way: back to idle, staging slot gone */
	img = image("1.2.0", 6000, &len);
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_DNLOAD, 0, 1, img, 4096, NULL), 0);
	assert_int_equal(settled(r).bState, PROTO_DFU_DNLOAD_IDLE);
	assert_true(fx_store_exists(r->dir, FX_F_FW_STAGE));
	assert_int_equal(ctl(r, 0xa1, PROTO_DFU_UPLOAD, 0, 1, six, 6, NULL), -EPIPE);   /* not now */
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_CLRSTATUS, 0, 1, NULL, 0, NULL), 0);
	assert_false(fx_store_exists(r->dir, FX_F_FW_STAGE));
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_DNLOAD, 0, 1, img, 4096, NULL), 0);
	assert_int_equal(settled(r).bState, PROTO_DFU_DNLOAD_IDLE);
	assert_int_equal(ctl(r, 0x21, PROTO_DFU_ABORT, 0, 1, NULL, 0, NULL), 0);
	assert_int_equal(dfu_status(r).bState, PROTO_DFU_IDLE);
	assert_false(fx_store_exists(r->dir, FX_F_FW_STAGE));
	/* after all that, a good download still works */
	assert_int_equal(fx_local_dfu_download(&r->h, img, len, TMO), 0);
	assert_int_equal(state_of(r), PROTO_STATE_FLASHED);
	assert_string_equal(r->rep.u.info.fw_version, "1.2.0");
	free(img);

	/* flash write errors at each DFU stage */
	{
		const char *k1[] = { "flash_error_at", "dfu_dnload", NULL };
		const char *k2[] = { "flash_error_at", "dfu_manifest", NULL };

		img = image("1.3.0", 100, &len);
		rig_cycle(r, k1);
		assert_int_equal(fx_local_dfu_download(&r->h, img, len, TMO), PROTO_DFU_ERR_WRITE);
		assert_int_equal(ctl(r, 0x21, PROTO_DFU_CLRSTATUS, 0, 1, NULL, 0, NULL), 0);
		rig_cycle(r, k2);
		assert_int_equal(fx_local_dfu_download(&r->h, img, len, TMO), PROTO_DFU_ERR_WRITE);
		assert_int_equal(ctl(r, 0x21, PROTO_DFU_CLRSTATUS, 0, 1, NULL, 0, NULL), 0);
		assert_int_equal(state_of(r), PROTO_STATE_FLASHED);
		assert_string_equal(r->rep.u.info.fw_version, "1.2.0");
		free(img);
	}

	/* more than 4 MiB: errADDRESS */
	{
		uint8_t *big = calloc(1, PROTO_FW_MAX_IMAGE + 4096);

		assert_int_equal(fx_local_dfu_download(&r->h, big, PROTO_FW_MAX_IMAGE + 4096, 60000),
				 PROTO_DFU_ERR_ADDRESS);
		assert_int_equal(ctl(r, 0x21, PROTO_DFU_CLRSTATUS, 0, 1, NULL, 0, NULL), 0);
		free(big);
	}
	rig_free(r);
}

/* What a case leaves: the states the reopened board may be in. */
struct pl_case {
	const char *stage;
	int pre;                   /* enum proto_state to reach first */
	int (*act)(struct rig *r);
	int after_a, after_b;
	int torn;                  /* a half-written file is left before the reboot */
};

static int act_cmd(struct rig *r, uint8_t c)
{
	struct proto_msg m;
	int rc;

	proto_msg_request(&m, c, 0);
	if (c == PROTO_GET_CSR)
		memset(m.u.nonce_req.nonce, 0x11, 32);
	rc = fx_local_call(&r->h, &m, &r->rep, r->buf, 300);
	return rc;
}

static int act_genkey(struct rig *r) { return act_cmd(r, PROTO_GENKEY); }
static int act_lock(struct rig *r) { return act_cmd(r, PROTO_LOCK); }
static int act_reset(struct rig *r) { return act_cmd(r, PROTO_FACTORY_RESET); }
static int act_csr(struct rig *r) { return act_cmd(r, PROTO_GET_CSR); }

static int act_write_cert(struct rig *r)
{
	struct proto_msg m;
	const unsigned char *p;
	EVP_PKEY *pub;
	X509 *leaf;
	uint8_t *der;
	size_t len;
	int rc;

	/* the key is on the board: read it back through a fresh GENKEY-less path */
	assert_int_equal(call(r, PROTO_GET_CSR), PROTO_ST_OK);
	{
		X509_REQ *req;

		p = r->rep.u.csr.csr.p;
		req = d2i_X509_REQ(NULL, &p, (long)r->rep.u.csr.csr.len);
		pub = X509_REQ_get_pubkey(req);
		X509_REQ_free(req);
	}
	leaf = fx_crypto_issue(pub, r->uid, ca.key, ca.cert, 30, NULL);
	fx_crypto_cert_to_der(leaf, &der, &len, NULL);
	proto_msg_request(&m, PROTO_WRITE_CERT, 0);
	m.u.certs.leaf = (struct proto_blob){ der, len };
	rc = fx_local_call(&r->h, &m, &r->rep, r->buf, 300);
	free(der);
	X509_free(leaf);
	EVP_PKEY_free(pub);
	return rc;
}

static int act_dfu(struct rig *r)
{
	size_t len;
	uint8_t *img = image("7.7.7", 10000, &len);
	int rc = fx_local_dfu_download(&r->h, img, len, 300);

	free(img);
	return rc;
}

static void test_power_loss_each_stage(void **state)
{
	static const struct pl_case cases[] = {
		{ "genkey", PROTO_STATE_FLASHED, act_genkey, PROTO_STATE_FLASHED, -1, 1 },
		{ "genkey", PROTO_STATE_CERTIFIED, act_genkey, PROTO_STATE_CERTIFIED, -1, 1 },
		{ "get_csr", PROTO_STATE_KEYED, act_csr, PROTO_STATE_KEYED, -1, 0 },
		{ "write_cert", PROTO_STATE_KEYED, act_write_cert, PROTO_STATE_KEYED, -1, 1 },
		{ "lock", PROTO_STATE_CERTIFIED, act_lock, PROTO_STATE_CERTIFIED, -1, 1 },
		{ "factory_reset", PROTO_STATE_CERTIFIED, act_reset, PROTO_STATE_KEYED,
		  PROTO_STATE_FLASHED, 0 },
		{ "dfu_dnload", PROTO_STATE_BLANK, act_dfu, PROTO_STATE_BLANK, -1, 1 },
		{ "dfu_manifest", PROTO_STATE_FLASHED, act_dfu, PROTO_STATE_FLASHED, -1, 1 },
		{ "dfu_manifest", PROTO_STATE_BLANK, act_dfu, PROTO_STATE_BLANK, -1, 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pl_case *c = &cases[i];
		const char *knobs[] = { "power_loss_at", c->stage, NULL };
		struct rig *r = rig_new(NULL);
		struct fx_board_view v;
		int st;

		if (c->pre >= PROTO_STATE_FLASHED)
			flash(r, "1.0.0");
		if (c->pre == PROTO_STATE_KEYED)
			assert_int_equal(call(r, PROTO_GENKEY), PROTO_ST_OK);
		if (c->pre >= PROTO_STATE_CERTIFIED)
			certify(r);
		assert_int_equal(state_of(r), c->pre);

		rig_cycle(r, knobs);
		/* the board stops answering part way */
		assert_int_not_equal(c->act(r), 0);
		assert_int_equal(fx_board_wait_idle(r->b, TMO), 0);
		if (!fx_board_powered_off(r->b))
			fail_msg("case %zu (%s): the board did not lose power", i, c->stage);
		{
			struct proto_msg m;

			proto_msg_request(&m, PROTO_INFO, 0);
			assert_int_equal(fx_local_xfer(&r->h, &m, &r->rep, r->buf, 100), -ETIMEDOUT);
		}
		rig_close(r);

		/* reopened: consistent, old or new state, no torn files left */
		assert_int_equal(fx_board_inspect(r->dir, &v, NULL), ST_OK);
		if ((v.torn > 0) != c->torn)
			fail_msg("case %zu (%s): %d torn files before reboot", i, c->stage, v.torn);
		rig_open(r);
		assert_int_equal(fx_board_inspect(r->dir, &v, NULL), ST_OK);
		assert_int_equal(v.torn, 0);
		assert_int_equal(v.cert_mismatch, 0);
		st = state_of(r);
		if (st != c->after_a && st != c->after_b)
			fail_msg("case %zu (%s): state %s after power loss", i, c->stage,
				 proto_state_name((uint8_t)st));
		assert_int_equal(v.state, st);
		if (c->pre >= PROTO_STATE_FLASHED)
			assert_string_equal(r->rep.u.info.fw_version, "1.0.0");
		/* the fault fired once: the same step now succeeds */
		assert_int_equal(c->act(r), 0);
		if (c->act == act_dfu) {
			assert_int_equal(state_of(r) >= PROTO_STATE_FLASHED, 1);
			assert_string_equal(r->rep.u.info.fw_version, "7.7.7");
		} else if (c->act != act_csr) {
			assert_int_equal(r->rep.status, PROTO_ST_OK);
		}
		rig_free(r);
	}
}

/* The one multi-commit step: GENKEY on a certified board writes the new key, then
 * drops the old certificate.  A power loss between them must not leave a board
 * claiming a certificate for a key it no longer holds. */
static void test_power_loss_between_commits(void **state)
{
	struct rig *r = rig_new(NULL);
	EVP_PKEY *k = fx_crypto_keygen(PROTO_ALG_P256, NULL);
	struct fx_board_view v;
	char *pem;
	size_t len;

	(void)state;
	flash(r, "1.0.0");
	certify(r);
	rig_close(r);
	assert_int_equal(fx_crypto_key_to_pem(k, &pem, &len, NULL), ST_OK);
	assert_int_equal(fx_store_write(r->dir, FX_F_DEV_KEY, pem, len, NULL), ST_OK);
	assert_int_equal(fx_board_inspect(r->dir, &v, NULL), ST_OK);
	assert_int_equal(v.cert_mismatch, 1);
	assert_int_equal(v.state, PROTO_STATE_KEYED);
	rig_open(r);
	assert_int_equal(state_of(r), PROTO_STATE_KEYED);
	assert_int_equal(call(r, PROTO_READ_CERT), PROTO_ST_ESTATE);
	assert_false(fx_store_exists(r->dir, FX_F_CERT));
	free(pem);
	EVP_PKEY_free(k);
	rig_free(r);
}

static void test_unplug_during_dfu(void **state)
{
	const char *knobs[] = { "unplug_at", "dfu_manifest", NULL };
	struct rig *r = rig_new(knobs);
	size_t len;
	uint8_t *img = image("3.0.0", 5000, &len);

	(void)state;
	assert_int_equal(fx_local_dfu_download(&r->h, img, len, TMO), -ENODEV);
	assert_int_equal(fx_board_wait_idle(r->b, TMO), 0);
	assert_true(r->h.unplugged);
	rig_close(r);
	rig_open(r);
	assert_int_equal(state_of(r), PROTO_STATE_BLANK);
	assert_int_equal(fx_local_dfu_download(&r->h, img, len, TMO), 0);
	assert_int_equal(state_of(r), PROTO_STATE_FLASHED);
	free(img);
	rig_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_descriptors),
		cmocka_unit_test(test_dfu_download_upload),
		cmocka_unit_test(test_dfu_errors),
		cmocka_unit_test(test_power_loss_each_stage),
		cmocka_unit_test(test_power_loss_between_commits),
		cmocka_unit_test(test_unplug_during_dfu),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
