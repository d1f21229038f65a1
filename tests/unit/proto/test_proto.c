/* Unit tests: the shared codec (station/proto/proto.c): frames, every message, DFU structures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

static uint8_t fake_der[300];

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

/* Encodes m, decodes it back, checks the header fields, returns the decoded copy. */
static void roundtrip(const struct proto_msg *m, uint8_t *buf, size_t cap,
		      struct proto_msg *out)
{
	struct errbuf e;
	size_t n = 0;

	errbuf_clear(&e);
	assert_int_equal(proto_msg_encode(m, buf, cap, &n, &e), ST_OK);
	assert_true(n >= PROTO_HDR_LEN + PROTO_CRC_LEN && n <= PROTO_MAX_FRAME);
	assert_int_equal(proto_msg_decode(buf, n, out, &e), ST_OK);
	assert_int_equal(out->type, m->type);
	assert_int_equal(out->status, m->status);
	assert_int_equal(out->seq, m->seq);
}

static void test_crc32_vector(void **state)
{
	(void)state;
	/* The standard check value of CRC-32/ISO-HDLC. */
	assert_int_equal(proto_crc32(0, (const uint8_t *)"123456789", 9), 0xcbf43926u);
	/* Incremental use gives the same value. */
	assert_int_equal(proto_crc32(proto_crc32(0, (const uint8_t *)"1234", 4),
				     (const uint8_t *)"56789", 5), 0xcbf43926u);
}

static void test_requests_roundtrip(void **state)
{
	uint8_t buf[PROTO_MAX_FRAME];
	struct proto_msg m, d;
	uint8_t simple[] = { PROTO_INFO, PROTO_READ_CERT, PROTO_POLL };

	(void)state;
	for (size_t i = 0; i < sizeof(simple); i++) {
		proto_msg_request(&m, simple[i], (uint16_t)(100 + i));
		roundtrip(&m, buf, sizeof(buf), &d);
	}

	proto_msg_request(&m, PROTO_GENKEY, 7);
	assert_int_equal(m.u.genkey_req.alg, PROTO_ALG_P256);
	m.u.genkey_req.alg = PROTO_ALG_RSA3072;
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_int_equal(d.u.genkey_req.alg, PROTO_ALG_RSA3072);

	proto_msg_request(&m, PROTO_GET_CSR, 8);
	fill(m.u.nonce_req.nonce, PROTO_NONCE_LEN, 1);
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_memory_equal(d.u.nonce_req.nonce, m.u.nonce_req.nonce, PROTO_NONCE_LEN);

	proto_msg_request(&m, PROTO_ATTEST, 9);
	fill(m.u.nonce_req.nonce, PROTO_NONCE_LEN, 2);
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_memory_equal(d.u.nonce_req.nonce, m.u.nonce_req.nonce, PROTO_NONCE_LEN);

	proto_msg_request(&m, PROTO_WRITE_CERT, 10);
	m.u.certs.leaf = (struct proto_blob){ fake_der, 250 };
	m.u.certs.chain[0] = (struct proto_blob){ fake_der + 10, 200 };
	m.u.certs.chain[1] = (struct proto_blob){ fake_der + 20, 100 };
	m.u.certs.n_chain = 2;
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_int_equal(d.u.certs.leaf.len, 250);
	assert_memory_equal(d.u.certs.leaf.p, fake_der, 250);
	assert_int_equal(d.u.certs.n_chain, 2);
	assert_int_equal(d.u.certs.chain[1].len, 100);
	assert_memory_equal(d.u.certs.chain[1].p, fake_der + 20, 100);

	proto_msg_request(&m, PROTO_PROVE, 11);
	fill(m.u.prove_req.challenge, PROTO_NONCE_LEN, 3);
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_memory_equal(d.u.prove_req.challenge, m.u.prove_req.challenge, PROTO_NONCE_LEN);

	proto_msg_request(&m, PROTO_LOCK, 12);
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_int_equal(d.u.confirm.confirm, PROTO_CONFIRM_LOCK);
	/* "LOCK" is literally the bytes on the wire */
	assert_memory_equal(buf + PROTO_HDR_LEN + 3, "LOCK", 4);

	proto_msg_request(&m, PROTO_FACTORY_RESET, 13);
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_int_equal(d.u.confirm.confirm, PROTO_CONFIRM_RESET);
	assert_memory_equal(buf + PROTO_HDR_LEN + 3, "RSET", 4);
}

static void test_replies_roundtrip(void **state)
{
	uint8_t buf[PROTO_MAX_FRAME];
	struct proto_msg m, d;

	(void)state;
	proto_msg_reply(&m, PROTO_INFO, 1, PROTO_ST_OK);
	strcpy(m.u.info.uid, "0123456789ABCDEF01234567");
	strcpy(m.u.info.model, "SB-100");
	strcpy(m.u.info.hw_rev, "rev C");
	strcpy(m.u.info.fw_version, "");
	m.u.info.state = PROTO_STATE_BLANK;
	m.u.info.att_cert = (struct proto_blob){ fake_der, sizeof(fake_der) };
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_string_equal(d.u.info.uid, m.u.info.uid);
	assert_string_equal(d.u.info.model, "SB-100");
	assert_string_equal(d.u.info.hw_rev, "rev C");
	assert_string_equal(d.u.info.fw_version, "");
	assert_int_equal(d.u.info.has_fw_sha256, 0);
	assert_int_equal(d.u.info.att_cert.len, sizeof(fake_der));
	strcpy(m.u.info.fw_version, "1.2.3");
	m.u.info.state = PROTO_STATE_LOCKED;
	m.u.info.has_fw_sha256 = 1;
	fill(m.u.info.fw_sha256, 32, 9);
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_string_equal(d.u.info.fw_version, "1.2.3");
	assert_int_equal(d.u.info.state, PROTO_STATE_LOCKED);
	assert_int_equal(d.u.info.has_fw_sha256, 1);
	assert_memory_equal(d.u.info.fw_sha256, m.u.info.fw_sha256, 32);

	proto_msg_reply(&m, PROTO_GENKEY, 2, PROTO_ST_OK);
	m.u.genkey.alg = PROTO_ALG_P384;
	m.u.genkey.pubkey = (struct proto_blob){ fake_der, 120 };
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_int_equal(d.u.genkey.alg, PROTO_ALG_P384);
	assert_memory_equal(d.u.genkey.pubkey.p, fake_der, 120);

	proto_msg_reply(&m, PROTO_GET_CSR, 3, PROTO_ST_OK);
	m.u.csr.csr = (struct proto_blob){ fake_der, 280 };
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_int_equal(d.u.csr.csr.len, 280);

	proto_msg_reply(&m, PROTO_ATTEST, 4, PROTO_ST_OK);
	m.u.attest.sig = (struct proto_blob){ fake_der, 72 };
	fill(m.u.attest.csr_sha256, 32, 5);
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_int_equal(d.u.attest.sig.len, 72);
	assert_memory_equal(d.u.attest.csr_sha256, m.u.attest.csr_sha256, 32);

	proto_msg_reply(&m, PROTO_WRITE_CERT, 5, PROTO_ST_OK);
	roundtrip(&m, buf, sizeof(buf), &d);

	proto_msg_reply(&m, PROTO_READ_CERT, 6, PROTO_ST_OK);
	m.u.certs.leaf = (struct proto_blob){ fake_der, 30 };
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_int_equal(d.u.certs.n_chain, 0);
	assert_int_equal(d.u.certs.leaf.len, 30);

	proto_msg_reply(&m, PROTO_PROVE, 7, PROTO_ST_OK);
	m.u.sig.sig = (struct proto_blob){ fake_der, 70 };
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_int_equal(d.u.sig.sig.len, 70);

	proto_msg_reply(&m, PROTO_LOCK, 8, PROTO_ST_OK);
	m.u.state.state = PROTO_STATE_LOCKED;
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_int_equal(d.u.state.state, PROTO_STATE_LOCKED);

	proto_msg_reply(&m, PROTO_FACTORY_RESET, 9, PROTO_ST_OK);
	m.u.state.state = PROTO_STATE_FLASHED;
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_int_equal(d.u.state.state, PROTO_STATE_FLASHED);

	proto_msg_reply(&m, PROTO_GENKEY, 10, PROTO_ST_BUSY);
	m.u.busy.poll_ms = 250;
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_int_equal(d.u.busy.poll_ms, 250);

	proto_msg_reply(&m, PROTO_LOCK, 11, PROTO_ST_ELOCKED);
	strcpy(m.u.error.message, "board is locked");
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_string_equal(d.u.error.message, "board is locked");

	proto_msg_reply(&m, PROTO_POLL, 12, PROTO_ST_ENOOP);
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_string_equal(d.u.error.message, "");

	proto_msg_reply(&m, PROTO_NAK, 0, PROTO_ST_EFRAME);
	strcpy(m.u.error.message, "bad CRC");
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_int_equal(d.type, PROTO_NAK);
}

static void test_max_frame(void **state)
{
	static uint8_t big[PROTO_MAX_PAYLOAD];
	uint8_t buf[PROTO_MAX_FRAME + 16];
	struct proto_msg m, d;
	struct errbuf e;
	size_t n;

	(void)state;
	/* A certificate chain as large as a frame allows: 4 chain certs + leaf. */
	proto_msg_request(&m, PROTO_WRITE_CERT, 1);
	m.u.certs.leaf = (struct proto_blob){ big, 1600 };
	for (int i = 0; i < 4; i++)
		m.u.certs.chain[i] = (struct proto_blob){ big, 1600 };
	m.u.certs.n_chain = 4;
	roundtrip(&m, buf, sizeof(buf), &d);
	assert_int_equal(d.u.certs.n_chain, 4);

	/* One byte too many for the payload limit. */
	m.u.certs.leaf.len = PROTO_MAX_PAYLOAD - 3 * 5 - 4 * 1600 + 1;
	assert_int_equal(proto_msg_encode(&m, buf, sizeof(buf), &n, &e), ST_EINVAL);
	m.u.certs.leaf.len--;
	assert_int_equal(proto_msg_encode(&m, buf, sizeof(buf), &n, &e), ST_OK);
	assert_int_equal(n, PROTO_MAX_FRAME);
	/* Five chain certificates are refused both ways. */
	m.u.certs.n_chain = 5;
	assert_int_equal(proto_msg_encode(&m, buf, sizeof(buf), &n, &e), ST_EINVAL);
	/* Output buffer too small. */
	proto_msg_request(&m, PROTO_INFO, 1);
	assert_int_equal(proto_msg_encode(&m, buf, 10, &n, &e), ST_EINVAL);
}

static size_t make_info_req(uint8_t *buf)
{
	struct proto_msg m;
	size_t n;

	proto_msg_request(&m, PROTO_GET_CSR, 77);
	fill(m.u.nonce_req.nonce, 32, 4);
	assert_int_equal(proto_msg_encode(&m, buf, PROTO_MAX_FRAME, &n, NULL), ST_OK);
	return n;
}

/* Re-CRCs a hand-edited frame so the test reaches the check it aims at. */
static void fix_crc(uint8_t *buf, size_t n)
{
	uint32_t c = proto_crc32(0, buf, n - 4);

	buf[n - 4] = (uint8_t)c;
	buf[n - 3] = (uint8_t)(c >> 8);
	buf[n - 2] = (uint8_t)(c >> 16);
	buf[n - 1] = (uint8_t)(c >> 24);
}

static void expect_bad(const uint8_t *buf, size_t n, const char *needle)
{
	struct proto_msg d;
	struct errbuf e;

	errbuf_clear(&e);
	assert_int_equal(proto_msg_decode(buf, n, &d, &e), ST_EPROTO);
	if (!strstr(e.msg, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", e.msg, needle);
}

static void test_malformed_frames(void **state)
{
	uint8_t good[PROTO_MAX_FRAME], b[PROTO_MAX_FRAME + 8];
	size_t n = make_info_req(good);
	struct proto_msg d;

	(void)state;
	assert_int_equal(proto_msg_decode(good, n, &d, NULL), ST_OK);

	/* truncated: every shorter prefix fails */
	for (size_t k = 0; k < n; k++)
		assert_int_equal(proto_msg_decode(good, k, &d, NULL), ST_EPROTO);
	expect_bad(good, 3, "truncated");
	expect_bad(good, n - 1, "truncated");
	/* trailing garbage */
	memcpy(b, good, n);
	b[n] = 0;
	expect_bad(b, n + 1, "trailing");
	/* oversized length */
	memcpy(b, good, n);
	b[8] = 0xff; b[9] = 0xff; b[10] = 0xff; b[11] = 0x7f;
	expect_bad(b, n, "exceeds");
	b[8] = (uint8_t)(PROTO_MAX_PAYLOAD + 1); b[9] = (uint8_t)((PROTO_MAX_PAYLOAD + 1) >> 8);
	b[10] = 0; b[11] = 0;
	expect_bad(b, n, "exceeds");
	/* bad CRC (any single bit flip anywhere) */
	for (size_t bit = 0; bit < n * 8; bit += 13) {
		memcpy(b, good, n);
		b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(proto_msg_decode(b, n, &d, NULL), ST_EPROTO);
	}
	memcpy(b, good, n);
	b[PROTO_HDR_LEN + 5] ^= 1;
	expect_bad(b, n, "CRC");
	/* bad magic, bad version, reserved byte */
	memcpy(b, good, n); b[0] = 'X'; fix_crc(b, n);
	expect_bad(b, n, "magic");
	memcpy(b, good, n); b[2] = 2; fix_crc(b, n);
	expect_bad(b, n, "version");
	memcpy(b, good, n); b[7] = 1; fix_crc(b, n);
	expect_bad(b, n, "reserved");
	/* unknown type, and a request with a status */
	memcpy(b, good, n); b[3] = 0x42; fix_crc(b, n);
	expect_bad(b, n, "not a message");
	memcpy(b, good, n); b[3] = 0; fix_crc(b, n);
	expect_bad(b, n, "not a message");
	memcpy(b, good, n); b[6] = 1; fix_crc(b, n);
	expect_bad(b, n, "not a message");
	/* payload not matching its type: a GET_CSR payload on a PROVE, INFO, LOCK */
	memcpy(b, good, n); b[3] = PROTO_PROVE; fix_crc(b, n);
	expect_bad(b, n, "unexpected tag");
	memcpy(b, good, n); b[3] = PROTO_INFO; fix_crc(b, n);
	expect_bad(b, n, "unexpected tag");
	memcpy(b, good, n); b[3] = PROTO_LOCK; fix_crc(b, n);
	expect_bad(b, n, "unexpected tag");
	/* a reply type with a request payload */
	memcpy(b, good, n); b[3] = PROTO_GET_CSR | PROTO_RESPONSE; fix_crc(b, n);
	expect_bad(b, n, "unexpected tag");
	/* a nonce of 31 bytes */
	memcpy(b, good, n); b[PROTO_HDR_LEN + 1] = 31; fix_crc(b, n);
	expect_bad(b, n, "31 bytes");
	/* TLV length overrunning the payload */
	memcpy(b, good, n); b[PROTO_HDR_LEN + 1] = 200; fix_crc(b, n);
	expect_bad(b, n, "claims");
}

static void test_payload_rules(void **state)
{
	uint8_t pl[256], buf[512];
	struct proto_tlv_writer w;
	struct proto_msg d;
	struct errbuf e;
	uint8_t nonce[32] = { 0 };
	size_t n;

	(void)state;
	/* duplicated nonce */
	proto_tlv_init(&w, pl, sizeof(pl));
	proto_tlv_put(&w, PROTO_TAG_NONCE, nonce, 32);
	proto_tlv_put(&w, PROTO_TAG_NONCE, nonce, 32);
	assert_int_equal(proto_frame_encode(PROTO_GET_CSR, 0, 1, pl, w.len, buf, sizeof(buf), &n, &e), ST_OK);
	expect_bad(buf, n, "repeated");
	/* missing required tag */
	assert_int_equal(proto_frame_encode(PROTO_GET_CSR, 0, 1, pl, 0, buf, sizeof(buf), &n, &e), ST_OK);
	expect_bad(buf, n, "missing");
	/* unknown algorithm */
	proto_tlv_init(&w, pl, sizeof(pl));
	proto_tlv_put_u8(&w, PROTO_TAG_ALG, 9);
	assert_int_equal(proto_frame_encode(PROTO_GENKEY, 0, 1, pl, w.len, buf, sizeof(buf), &n, &e), ST_OK);
	expect_bad(buf, n, "algorithm");
	/* GENKEY with no algorithm defaults to P-256 */
	assert_int_equal(proto_frame_encode(PROTO_GENKEY, 0, 1, pl, 0, buf, sizeof(buf), &n, &e), ST_OK);
	assert_int_equal(proto_msg_decode(buf, n, &d, &e), ST_OK);
	assert_int_equal(d.u.genkey_req.alg, PROTO_ALG_P256);
	/* INFO with a lower-case unique id */
	proto_tlv_init(&w, pl, sizeof(pl));
	proto_tlv_put(&w, PROTO_TAG_UID, "0123456789abcdef01234567", 24);
	proto_tlv_put(&w, PROTO_TAG_MODEL, "m", 1);
	proto_tlv_put(&w, PROTO_TAG_HW_REV, "r", 1);
	proto_tlv_put(&w, PROTO_TAG_FW_VERSION, "", 0);
	proto_tlv_put_u8(&w, PROTO_TAG_STATE, 0);
	proto_tlv_put(&w, PROTO_TAG_ATT_CERT, "x", 1);
	assert_int_equal(proto_frame_encode(PROTO_INFO | PROTO_RESPONSE, 0, 1, pl, w.len, buf, sizeof(buf), &n, &e), ST_OK);
	expect_bad(buf, n, "unique id");
	/* model with a control character */
	memcpy(pl + 3, "0123456789ABCDEF01234567", 24);
	pl[3 + 24 + 3] = '\n';
	assert_int_equal(proto_frame_encode(PROTO_INFO | PROTO_RESPONSE, 0, 1, pl, w.len, buf, sizeof(buf), &n, &e), ST_OK);
	expect_bad(buf, n, "printable");
	pl[3 + 24 + 3] = 'm';
	assert_int_equal(proto_frame_encode(PROTO_INFO | PROTO_RESPONSE, 0, 1, pl, w.len, buf, sizeof(buf), &n, &e), ST_OK);
	assert_int_equal(proto_msg_decode(buf, n, &d, &e), ST_OK);
	/* state out of range */
	pl[w.len - 4 - 1] = 9;
	assert_int_equal(proto_frame_encode(PROTO_INFO | PROTO_RESPONSE, 0, 1, pl, w.len, buf, sizeof(buf), &n, &e), ST_OK);
	expect_bad(buf, n, "state");
	/* BUSY with an absurd poll interval */
	proto_tlv_init(&w, pl, sizeof(pl));
	proto_tlv_put_u32(&w, PROTO_TAG_POLL_MS, 3600000);
	assert_int_equal(proto_frame_encode(PROTO_GENKEY | PROTO_RESPONSE, PROTO_ST_BUSY, 1, pl, w.len, buf, sizeof(buf), &n, &e), ST_OK);
	expect_bad(buf, n, "poll");
	/* unknown status in a reply; POLL reply with OK */
	assert_int_equal(proto_frame_encode(PROTO_INFO | PROTO_RESPONSE, 0x77, 1, pl, 0, buf, sizeof(buf), &n, &e), ST_OK);
	expect_bad(buf, n, "not a message");
	assert_int_equal(proto_frame_encode(PROTO_POLL | PROTO_RESPONSE, 0, 1, pl, 0, buf, sizeof(buf), &n, &e), ST_OK);
	expect_bad(buf, n, "not a message");
	/* tlv writer overflow is sticky */
	proto_tlv_init(&w, pl, 10);
	proto_tlv_put(&w, 1, nonce, 8);
	assert_int_equal(w.overflow, 1);
	proto_tlv_put(&w, 1, nonce, 1);
	assert_int_equal(w.len, 0);
}

static void test_frame_size_and_names(void **state)
{
	uint8_t buf[PROTO_MAX_FRAME];
	size_t n = make_info_req(buf), total = 0;
	struct errbuf e;

	(void)state;
	assert_int_equal(proto_frame_size(buf, PROTO_HDR_LEN, &total, &e), ST_OK);
	assert_int_equal(total, n);
	assert_int_equal(proto_frame_size(buf, 5, &total, &e), ST_EINVAL);
	buf[1] = 0;
	assert_int_equal(proto_frame_size(buf, n, &total, &e), ST_EPROTO);

	assert_string_equal(proto_cmd_name(PROTO_GET_CSR | PROTO_RESPONSE), "GET_CSR");
	assert_string_equal(proto_cmd_name(0x55), "UNKNOWN");
	assert_string_equal(proto_cmd_name(PROTO_NAK), "NAK");
	assert_int_equal(proto_cmd_parse("factory_reset"), PROTO_FACTORY_RESET);
	assert_int_equal(proto_cmd_parse("nope"), 0);
	assert_string_equal(proto_status_name(PROTO_ST_BUSY), "BUSY");
	assert_string_equal(proto_state_name(PROTO_STATE_CERTIFIED), "certified");
	assert_string_equal(proto_state_name(17), "unknown");
	assert_string_equal(proto_alg_name(PROTO_ALG_RSA3072), "RSA-3072");
	assert_false(proto_cmd_idempotent(PROTO_GENKEY));
	assert_true(proto_cmd_idempotent(PROTO_INFO));
	assert_true(proto_cmd_idempotent(PROTO_POLL));
	assert_false(proto_cmd_idempotent(0x33));
	assert_int_equal(proto_status_rc(PROTO_ST_ELOCKED), ST_ESTATE);
	assert_int_equal(proto_status_rc(PROTO_ST_BUSY), ST_EBUSY);
	assert_int_equal(proto_status_rc(0x99), ST_EPROTO);
}

static void test_dfu_structures(void **state)
{
	struct proto_setup s = { 0xa1, PROTO_DFU_GETSTATUS, 0, 1, 6 }, s2;
	struct proto_dfu_status st = { PROTO_DFU_ERR_WRITE, 0x123456, PROTO_DFU_ERROR, 0 }, st2;
	struct proto_dfu_func f = { 0x07, 1000, 4096, 0x0110 }, f2;
	uint8_t raw[8], six[6], desc[64];
	struct errbuf e;

	(void)state;
	proto_setup_encode(&s, raw);
	assert_memory_equal(raw, "\xa1\x03\x00\x00\x01\x00\x06\x00", 8);
	proto_setup_decode(raw, &s2);
	assert_memory_equal(&s, &s2, sizeof(s));
	assert_int_equal(proto_dfu_request_check(&s, 1, 4096, &e), ST_OK);
	s.wLength = 5;
	assert_int_equal(proto_dfu_request_check(&s, 1, 4096, &e), ST_EPROTO);
	s.wLength = 6; s.bmRequestType = 0x21;
	assert_int_equal(proto_dfu_request_check(&s, 1, 4096, &e), ST_EPROTO);
	s.bmRequestType = 0xa1; s.wIndex = 0;
	assert_int_equal(proto_dfu_request_check(&s, 1, 4096, &e), ST_EPROTO);
	s = (struct proto_setup){ 0x21, PROTO_DFU_DNLOAD, 3, 1, 4097 };
	assert_int_equal(proto_dfu_request_check(&s, 1, 4096, &e), ST_EPROTO);
	s.wLength = 4096;
	assert_int_equal(proto_dfu_request_check(&s, 1, 4096, &e), ST_OK);
	s.wLength = 0;   /* zero-length DNLOAD: the end of the image */
	assert_int_equal(proto_dfu_request_check(&s, 1, 4096, &e), ST_OK);
	s = (struct proto_setup){ 0xa1, PROTO_DFU_UPLOAD, 0, 1, 0 };
	assert_int_equal(proto_dfu_request_check(&s, 1, 4096, &e), ST_EPROTO);
	s = (struct proto_setup){ 0x21, 7, 0, 1, 0 };
	assert_int_equal(proto_dfu_request_check(&s, 1, 4096, &e), ST_EPROTO);
	s = (struct proto_setup){ 0x21, PROTO_DFU_ABORT, 0, 1, 0 };
	assert_int_equal(proto_dfu_request_check(&s, 1, 4096, &e), ST_OK);

	assert_int_equal(proto_dfu_status_encode(&st, six, &e), ST_OK);
	assert_memory_equal(six, "\x03\x56\x34\x12\x0a\x00", 6);
	assert_int_equal(proto_dfu_status_decode(six, 6, &st2, &e), ST_OK);
	assert_int_equal(st2.bStatus, st.bStatus);
	assert_int_equal(st2.bwPollTimeout, st.bwPollTimeout);
	assert_int_equal(st2.bState, st.bState);
	assert_int_equal(st2.iString, st.iString);
	assert_int_equal(proto_dfu_status_decode(six, 5, &st2, &e), ST_EPROTO);
	six[4] = 11;
	assert_int_equal(proto_dfu_status_decode(six, 6, &st2, &e), ST_EPROTO);
	six[4] = 2; six[0] = 0x10;
	assert_int_equal(proto_dfu_status_decode(six, 6, &st2, &e), ST_EPROTO);
	st.bwPollTimeout = 0x1000000;
	assert_int_equal(proto_dfu_status_encode(&st, six, &e), ST_EINVAL);

	/* an interface descriptor followed by the functional descriptor */
	memset(desc, 0, sizeof(desc));
	desc[0] = 9; desc[1] = 4;
	proto_dfu_func_encode(&f, desc + 9);
	assert_memory_equal(desc + 9, "\x09\x21\x07\xe8\x03\x00\x10\x10\x01", 9);
	assert_int_equal(proto_dfu_func_find(desc, 18, &f2, &e), ST_OK);
	assert_int_equal(f2.bmAttributes, f.bmAttributes);
	assert_int_equal(f2.wDetachTimeOut, f.wDetachTimeOut);
	assert_int_equal(f2.wTransferSize, f.wTransferSize);
	assert_int_equal(f2.bcdDFUVersion, f.bcdDFUVersion);
	assert_int_equal(proto_dfu_func_find(desc, 9, &f2, &e), ST_ENOTFOUND);
	assert_int_equal(proto_dfu_func_find(desc, 17, &f2, &e), ST_EPROTO);
	desc[0] = 0;
	assert_int_equal(proto_dfu_func_find(desc, 18, &f2, &e), ST_EPROTO);
}

static void test_fw_trailer(void **state)
{
	uint8_t img[100 + PROTO_FW_TRAILER_LEN], h[32];
	struct proto_fw_trailer t;
	struct errbuf e;

	(void)state;
	fill(h, 32, 1);
	assert_int_equal(proto_fw_trailer_make(100, "1.0.0", h, img + 100, &e), ST_OK);
	assert_int_equal(proto_fw_trailer_parse(img, sizeof(img), &t, &e), ST_OK);
	assert_int_equal(t.body_len, 100);
	assert_string_equal(t.version, "1.0.0");
	assert_memory_equal(t.sha256, h, 32);
	assert_int_equal(proto_fw_trailer_parse(img + 1, sizeof(img) - 1, &t, &e), ST_EPROTO);
	assert_int_equal(proto_fw_trailer_parse(img, 10, &t, &e), ST_EPROTO);
	img[100 + 8 + 20] = 'x';   /* garbage after the NUL of the version */
	assert_int_equal(proto_fw_trailer_parse(img, sizeof(img), &t, &e), ST_EPROTO);
	assert_int_equal(proto_fw_trailer_make(1, "", h, img, &e), ST_EINVAL);
	assert_int_equal(proto_fw_trailer_make(1, "a\tb", h, img, &e), ST_EINVAL);
}

/* The fuzz seeds were written by an independent encoder (Python, zlib's CRC) from
 * docs/protocol.md: each one must decode, which pins the byte layout. */
static void test_seed_corpus_decodes(void **state)
{
	const char *top = getenv("STATION_TOP");
	char dir[512], path[1024];
	uint8_t buf[PROTO_MAX_FRAME + 1];
	struct dirent *de;
	struct proto_msg m;
	struct errbuf e;
	int seen = 0;
	DIR *d;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/fuzz_frame", top ? top : ".");
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		FILE *f;
		size_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "rb");
		assert_non_null(f);
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		if (proto_msg_decode(buf, n, &m, &e) != ST_OK)
			fail_msg("%s: %s", de->d_name, e.msg);
		seen++;
	}
	closedir(d);
	assert_true(seen >= 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32_vector),
		cmocka_unit_test(test_requests_roundtrip),
		cmocka_unit_test(test_replies_roundtrip),
		cmocka_unit_test(test_max_frame),
		cmocka_unit_test(test_malformed_frames),
		cmocka_unit_test(test_payload_rules),
		cmocka_unit_test(test_frame_size_and_names),
		cmocka_unit_test(test_dfu_structures),
		cmocka_unit_test(test_fw_trailer),
		cmocka_unit_test(test_seed_corpus_decodes),
	};

	fill(fake_der, sizeof(fake_der), 0x30);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
