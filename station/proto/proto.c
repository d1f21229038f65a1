/*
 * proto: see proto.h and docs/protocol.md.
 * One file on purpose: the fuzz targets link exactly station/proto/proto.c (FUZZ_DEPS),
 * so the frame, TLV, DFU and firmware-trailer parsers all live here.
 */
#include "proto/proto.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* ------------------------------------------------------------------ CRC */

uint32_t proto_crc32(uint32_t crc, const uint8_t *p, size_t len)
{
	/* Bitwise with a nibble table: small, no init step, fast enough for 8 KiB. */
	static const uint32_t tab[16] = {
		0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac,
		0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
		0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
		0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
	};

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		crc = (crc >> 4) ^ tab[crc & 15];
		crc = (crc >> 4) ^ tab[crc & 15];
	}
	return ~crc;
}

/* ------------------------------------------------------------------ frames */

int proto_frame_encode(uint8_t type, uint8_t status, uint16_t seq,
		       const uint8_t *payload, size_t len,
		       uint8_t *out, size_t cap, size_t *outlen, struct errbuf *e)
{
	size_t total = PROTO_HDR_LEN + len + PROTO_CRC_LEN;

	if (len > PROTO_MAX_PAYLOAD)
		return errbuf_set(e, ST_EINVAL, "frame payload %zu bytes exceeds the %d-byte limit",
				  len, PROTO_MAX_PAYLOAD);
	if (total > cap)
		return errbuf_set(e, ST_EINVAL, "frame of %zu bytes does not fit a %zu-byte buffer",
				  total, cap);
	out[0] = PROTO_MAGIC0;
	out[1] = PROTO_MAGIC1;
	out[2] = PROTO_VERSION;
	out[3] = type;
	put_le16(out + 4, seq);
	out[6] = status;
	out[7] = 0;
	put_le32(out + 8, (uint32_t)len);
	if (len)
		memmove(out + PROTO_HDR_LEN, payload, len);
	put_le32(out + PROTO_HDR_LEN + len, proto_crc32(0, out, PROTO_HDR_LEN + len));
	*outlen = total;
	return ST_OK;
}

static int header_check(const uint8_t *buf, size_t *plen, struct errbuf *e)
{
	uint32_t len;

	if (buf[0] != PROTO_MAGIC0 || buf[1] != PROTO_MAGIC1)
		return errbuf_set(e, ST_EPROTO, "frame: bad magic %02x %02x", buf[0], buf[1]);
	if (buf[2] != PROTO_VERSION)
		return errbuf_set(e, ST_EPROTO, "frame: unsupported protocol version %u", buf[2]);
	if (buf[7] != 0)
		return errbuf_set(e, ST_EPROTO, "frame: reserved byte is %u, not 0", buf[7]);
	len = get_le32(buf + 8);
	if (len > PROTO_MAX_PAYLOAD)
		return errbuf_set(e, ST_EPROTO, "frame: length %u exceeds the %d-byte limit",
				  len, PROTO_MAX_PAYLOAD);
	*plen = len;
	return ST_OK;
}

int proto_frame_size(const uint8_t *buf, size_t len, size_t *total, struct errbuf *e)
{
	size_t plen = 0;
	int rc;

	if (len < PROTO_HDR_LEN)
		return errbuf_set(e, ST_EINVAL, "frame: need %d header bytes, have %zu",
				  PROTO_HDR_LEN, len);
	if ((rc = header_check(buf, &plen, e)) != ST_OK)
		return rc;
	*total = PROTO_HDR_LEN + plen + PROTO_CRC_LEN;
	return ST_OK;
}

int proto_frame_decode(const uint8_t *buf, size_t len, struct proto_frame *f,
		       struct errbuf *e)
{
	size_t plen = 0;
	uint32_t want, got;
	int rc;

	if (len < PROTO_HDR_LEN + PROTO_CRC_LEN)
		return errbuf_set(e, ST_EPROTO, "frame: truncated (%zu bytes, minimum %d)",
				  len, PROTO_HDR_LEN + PROTO_CRC_LEN);
	if ((rc = header_check(buf, &plen, e)) != ST_OK)
		return rc;
	if (len < PROTO_HDR_LEN + plen + PROTO_CRC_LEN)
		return errbuf_set(e, ST_EPROTO, "frame: truncated (%zu bytes, header announces %zu)",
				  len, PROTO_HDR_LEN + plen + PROTO_CRC_LEN);
	if (len > PROTO_HDR_LEN + plen + PROTO_CRC_LEN)
		return errbuf_set(e, ST_EPROTO, "frame: %zu trailing bytes after the frame",
				  len - (PROTO_HDR_LEN + plen + PROTO_CRC_LEN));
	want = get_le32(buf + PROTO_HDR_LEN + plen);
	got = proto_crc32(0, buf, PROTO_HDR_LEN + plen);
	if (want != got)
		return errbuf_set(e, ST_EPROTO, "frame: CRC mismatch (frame says %08x, computed %08x)",
				  want, got);
	f->type = buf[3];
	f->seq = get_le16(buf + 4);
	f->status = buf[6];
	f->payload = buf + PROTO_HDR_LEN;
	f->len = plen;
	return ST_OK;
}

/* ------------------------------------------------------------------ TLV */

void proto_tlv_init(struct proto_tlv_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = 0;
}

void proto_tlv_put(struct proto_tlv_writer *w, uint8_t tag, const void *v, size_t len)
{
	if (w->overflow || len > 0xffff || w->cap - w->len < 3 + len) {
		w->overflow = 1;
		return;
	}
	w->buf[w->len] = tag;
	put_le16(w->buf + w->len + 1, (uint16_t)len);
	if (len)
		memcpy(w->buf + w->len + 3, v, len);
	w->len += 3 + len;
}

void proto_tlv_put_u8(struct proto_tlv_writer *w, uint8_t tag, uint8_t v)
{
	proto_tlv_put(w, tag, &v, 1);
}

void proto_tlv_put_u32(struct proto_tlv_writer *w, uint8_t tag, uint32_t v)
{
	uint8_t b[4];

	put_le32(b, v);
	proto_tlv_put(w, tag, b, 4);
}

int proto_tlv_next(const uint8_t *p, size_t len, size_t *off, uint8_t *tag,
		   const uint8_t **val, size_t *vlen, struct errbuf *e)
{
	size_t o = *off, l;

	if (o >= len)
		return 0;
	if (len - o < 3) {
		errbuf_set(e, ST_EPROTO, "payload: TLV header truncated at offset %zu", o);
		return -1;
	}
	l = get_le16(p + o + 1);
	if (len - o - 3 < l) {
		errbuf_set(e, ST_EPROTO, "payload: tag 0x%02x at offset %zu claims %zu bytes, %zu left",
			   p[o], o, l, len - o - 3);
		return -1;
	}
	*tag = p[o];
	*val = p + o + 3;
	*vlen = l;
	*off = o + 3 + l;
	return 1;
}

/* ------------------------------------------------------------------ names */

static const char *const cmd_names[] = {
	[PROTO_INFO] = "INFO", [PROTO_GENKEY] = "GENKEY", [PROTO_GET_CSR] = "GET_CSR",
	[PROTO_ATTEST] = "ATTEST", [PROTO_WRITE_CERT] = "WRITE_CERT",
	[PROTO_READ_CERT] = "READ_CERT", [PROTO_PROVE] = "PROVE", [PROTO_LOCK] = "LOCK",
	[PROTO_FACTORY_RESET] = "FACTORY_RESET", [PROTO_POLL] = "POLL",
};

const char *proto_cmd_name(uint8_t type)
{
	if (type == PROTO_NAK)
		return "NAK";
	type &= (uint8_t)~PROTO_RESPONSE;
	if (type >= PROTO_CMD_MIN && type <= PROTO_CMD_MAX)
		return cmd_names[type];
	return "UNKNOWN";
}

uint8_t proto_cmd_parse(const char *name)
{
	for (uint8_t t = PROTO_CMD_MIN; t <= PROTO_CMD_MAX; t++)
		if (strcasecmp(name, cmd_names[t]) == 0)
			return t;
	return 0;
}

const char *proto_status_name(uint8_t status)
{
	switch (status) {
	case PROTO_ST_OK:        return "OK";
	case PROTO_ST_BUSY:      return "BUSY";
	case PROTO_ST_EFRAME:    return "EFRAME";
	case PROTO_ST_EUNKNOWN:  return "EUNKNOWN";
	case PROTO_ST_EPAYLOAD:  return "EPAYLOAD";
	case PROTO_ST_ESTATE:    return "ESTATE";
	case PROTO_ST_ELOCKED:   return "ELOCKED";
	case PROTO_ST_ECRYPTO:   return "ECRYPTO";
	case PROTO_ST_EFLASH:    return "EFLASH";
	case PROTO_ST_EREFUSED:  return "EREFUSED";
	case PROTO_ST_EPENDING:  return "EPENDING";
	case PROTO_ST_ENOOP:     return "ENOOP";
	case PROTO_ST_ECERT:     return "ECERT";
	case PROTO_ST_EINTERNAL: return "EINTERNAL";
	}
	return "UNKNOWN";
}

static int status_known(uint8_t status)
{
	return strcmp(proto_status_name(status), "UNKNOWN") != 0;
}

const char *proto_state_name(uint8_t state)
{
	static const char *const n[] = { "blank", "flashed", "keyed", "certified", "locked" };

	return state <= PROTO_STATE_LOCKED ? n[state] : "unknown";
}

const char *proto_alg_name(uint8_t alg)
{
	switch (alg) {
	case PROTO_ALG_P256:    return "P-256";
	case PROTO_ALG_P384:    return "P-384";
	case PROTO_ALG_RSA3072: return "RSA-3072";
	}
	return "unknown";
}

int proto_cmd_idempotent(uint8_t cmd)
{
	cmd &= (uint8_t)~PROTO_RESPONSE;
	return cmd >= PROTO_CMD_MIN && cmd <= PROTO_CMD_MAX && cmd != PROTO_GENKEY;
}

int proto_status_rc(uint8_t status)
{
	switch (status) {
	case PROTO_ST_OK:       return ST_OK;
	case PROTO_ST_BUSY:
	case PROTO_ST_EPENDING: return ST_EBUSY;
	case PROTO_ST_ESTATE:
	case PROTO_ST_ELOCKED:
	case PROTO_ST_ENOOP:    return ST_ESTATE;
	case PROTO_ST_ECRYPTO:
	case PROTO_ST_ECERT:    return ST_ECRYPTO;
	case PROTO_ST_EFLASH:   return ST_EIO;
	case PROTO_ST_EREFUSED: return ST_EPOLICY;
	}
	return ST_EPROTO;
}

/* ------------------------------------------------------------------ messages */

/* What a message's payload holds, by (type, status). */
enum shape {
	SH_EMPTY, SH_INFO, SH_GENKEY_REQ, SH_GENKEY, SH_NONCE, SH_CSR, SH_ATTEST,
	SH_CERTS, SH_CHALLENGE, SH_SIG, SH_CONFIRM, SH_STATE, SH_BUSY, SH_ERROR,
	SH_BAD
};

static enum shape msg_shape(uint8_t type, uint8_t status)
{
	uint8_t cmd = type & (uint8_t)~PROTO_RESPONSE;

	if (type == PROTO_NAK)
		return status >= PROTO_ST_EFRAME && status_known(status) ? SH_ERROR : SH_BAD;
	if (cmd < PROTO_CMD_MIN || cmd > PROTO_CMD_MAX)
		return SH_BAD;
	if (!(type & PROTO_RESPONSE)) {
		if (status != 0)
			return SH_BAD;
		switch (cmd) {
		case PROTO_GENKEY:        return SH_GENKEY_REQ;
		case PROTO_GET_CSR:
		case PROTO_ATTEST:        return SH_NONCE;
		case PROTO_WRITE_CERT:    return SH_CERTS;
		case PROTO_PROVE:         return SH_CHALLENGE;
		case PROTO_LOCK:
		case PROTO_FACTORY_RESET: return SH_CONFIRM;
		default:                  return SH_EMPTY;
		}
	}
	if (status == PROTO_ST_BUSY)
		return SH_BUSY;
	if (status != PROTO_ST_OK)
		return status_known(status) ? SH_ERROR : SH_BAD;
	switch (cmd) {
	case PROTO_INFO:          return SH_INFO;
	case PROTO_GENKEY:        return SH_GENKEY;
	case PROTO_GET_CSR:       return SH_CSR;
	case PROTO_ATTEST:        return SH_ATTEST;
	case PROTO_READ_CERT:     return SH_CERTS;
	case PROTO_PROVE:         return SH_SIG;
	case PROTO_LOCK:
	case PROTO_FACTORY_RESET: return SH_STATE;
	case PROTO_POLL:          return SH_BAD;  /* a POLL reply names the polled op */
	default:                  return SH_EMPTY;
	}
}

static int is_printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

static int text_ok(const char *s, size_t min, size_t max)
{
	size_t n = strnlen(s, max + 1);

	return n >= min && n <= max && is_printable(s, n);
}

static int alg_ok(uint8_t alg)
{
	return alg >= PROTO_ALG_P256 && alg <= PROTO_ALG_RSA3072;
}

static int blob_ok(const struct proto_blob *b)
{
	return b->len > 0 && b->len <= PROTO_MAX_PAYLOAD && b->p;
}

int proto_msg_encode(const struct proto_msg *m, uint8_t *out, size_t cap,
		     size_t *outlen, struct errbuf *e)
{
	uint8_t pl[PROTO_MAX_PAYLOAD];
	struct proto_tlv_writer w;
	const char *what = proto_cmd_name(m->type);

	proto_tlv_init(&w, pl, sizeof(pl));
	switch (msg_shape(m->type, m->status)) {
	case SH_BAD:
		return errbuf_set(e, ST_EINVAL, "encode: type 0x%02x with status 0x%02x is not a message",
				  m->type, m->status);
	case SH_EMPTY:
		break;
	case SH_INFO: {
		const struct proto_info *i = &m->u.info;

		if (!ids_uid_valid_n(i->uid, strnlen(i->uid, sizeof(i->uid))) ||
		    !text_ok(i->model, 1, PROTO_MAX_TEXT) || !text_ok(i->hw_rev, 1, PROTO_MAX_TEXT) ||
		    !text_ok(i->fw_version, 0, PROTO_MAX_FWVER) || i->state > PROTO_STATE_LOCKED ||
		    !blob_ok(&i->att_cert))
			return errbuf_set(e, ST_EINVAL, "encode INFO: a field is out of range");
		proto_tlv_put(&w, PROTO_TAG_UID, i->uid, PROTO_UID_LEN);
		proto_tlv_put(&w, PROTO_TAG_MODEL, i->model, strlen(i->model));
		proto_tlv_put(&w, PROTO_TAG_HW_REV, i->hw_rev, strlen(i->hw_rev));
		proto_tlv_put(&w, PROTO_TAG_FW_VERSION, i->fw_version, strlen(i->fw_version));
		proto_tlv_put_u8(&w, PROTO_TAG_STATE, i->state);
		proto_tlv_put(&w, PROTO_TAG_ATT_CERT, i->att_cert.p, i->att_cert.len);
		if (i->has_fw_sha256)
			proto_tlv_put(&w, PROTO_TAG_FW_SHA256, i->fw_sha256, PROTO_SHA256_LEN);
		break;
	}
	case SH_GENKEY_REQ:
		if (!alg_ok(m->u.genkey_req.alg))
			return errbuf_set(e, ST_EINVAL, "encode GENKEY: unknown algorithm %u",
					  m->u.genkey_req.alg);
		proto_tlv_put_u8(&w, PROTO_TAG_ALG, m->u.genkey_req.alg);
		break;
	case SH_GENKEY:
		if (!alg_ok(m->u.genkey.alg) || !blob_ok(&m->u.genkey.pubkey))
			return errbuf_set(e, ST_EINVAL, "encode GENKEY reply: bad algorithm or key");
		proto_tlv_put_u8(&w, PROTO_TAG_ALG, m->u.genkey.alg);
		proto_tlv_put(&w, PROTO_TAG_PUBKEY, m->u.genkey.pubkey.p, m->u.genkey.pubkey.len);
		break;
	case SH_NONCE:
		proto_tlv_put(&w, PROTO_TAG_NONCE, m->u.nonce_req.nonce, PROTO_NONCE_LEN);
		break;
	case SH_CSR:
		if (!blob_ok(&m->u.csr.csr))
			return errbuf_set(e, ST_EINVAL, "encode GET_CSR reply: empty CSR");
		proto_tlv_put(&w, PROTO_TAG_CSR, m->u.csr.csr.p, m->u.csr.csr.len);
		break;
	case SH_ATTEST:
		if (!blob_ok(&m->u.attest.sig))
			return errbuf_set(e, ST_EINVAL, "encode ATTEST reply: empty signature");
		proto_tlv_put(&w, PROTO_TAG_SIGNATURE, m->u.attest.sig.p, m->u.attest.sig.len);
		proto_tlv_put(&w, PROTO_TAG_DIGEST, m->u.attest.csr_sha256, PROTO_SHA256_LEN);
		break;
	case SH_CERTS: {
		const struct proto_certs *c = &m->u.certs;

		if (!blob_ok(&c->leaf) || c->n_chain > PROTO_MAX_CHAIN)
			return errbuf_set(e, ST_EINVAL, "encode %s: empty leaf or chain of %zu > %d",
					  what, c->n_chain, PROTO_MAX_CHAIN);
		proto_tlv_put(&w, PROTO_TAG_CERT, c->leaf.p, c->leaf.len);
		for (size_t k = 0; k < c->n_chain; k++) {
			if (!blob_ok(&c->chain[k]))
				return errbuf_set(e, ST_EINVAL, "encode %s: empty chain certificate %zu",
						  what, k);
			proto_tlv_put(&w, PROTO_TAG_CHAIN, c->chain[k].p, c->chain[k].len);
		}
		break;
	}
	case SH_CHALLENGE:
		proto_tlv_put(&w, PROTO_TAG_CHALLENGE, m->u.prove_req.challenge, PROTO_NONCE_LEN);
		break;
	case SH_SIG:
		if (!blob_ok(&m->u.sig.sig))
			return errbuf_set(e, ST_EINVAL, "encode PROVE reply: empty signature");
		proto_tlv_put(&w, PROTO_TAG_SIGNATURE, m->u.sig.sig.p, m->u.sig.sig.len);
		break;
	case SH_CONFIRM:
		proto_tlv_put_u32(&w, PROTO_TAG_CONFIRM, m->u.confirm.confirm);
		break;
	case SH_STATE:
		if (m->u.state.state > PROTO_STATE_LOCKED)
			return errbuf_set(e, ST_EINVAL, "encode %s reply: bad state %u", what,
					  m->u.state.state);
		proto_tlv_put_u8(&w, PROTO_TAG_STATE, m->u.state.state);
		break;
	case SH_BUSY:
		if (m->u.busy.poll_ms > PROTO_MAX_POLL_MS)
			return errbuf_set(e, ST_EINVAL, "encode BUSY: poll interval %u ms > %u",
					  m->u.busy.poll_ms, PROTO_MAX_POLL_MS);
		proto_tlv_put_u32(&w, PROTO_TAG_POLL_MS, m->u.busy.poll_ms);
		break;
	case SH_ERROR: {
		size_t n = strnlen(m->u.error.message, sizeof(m->u.error.message));

		if (n > PROTO_MAX_MESSAGE || !is_printable(m->u.error.message, n))
			return errbuf_set(e, ST_EINVAL, "encode error reply: message not printable");
		if (n)
			proto_tlv_put(&w, PROTO_TAG_MESSAGE, m->u.error.message, n);
		break;
	}
	}
	if (w.overflow)
		return errbuf_set(e, ST_EINVAL, "encode %s: payload exceeds %d bytes", what,
				  PROTO_MAX_PAYLOAD);
	return proto_frame_encode(m->type, m->status, m->seq, pl, w.len, out, cap, outlen, e);
}

/* Tag table of one shape: which tags, exact or bounded length, required, repeatable. */
struct tagrule {
	uint8_t tag;
	uint16_t min, max;
	uint8_t required, repeat;
};

#define R(t, mn, mx, req, rep) { t, mn, mx, req, rep }
static const struct tagrule rules_info[] = {
	R(PROTO_TAG_UID, PROTO_UID_LEN, PROTO_UID_LEN, 1, 0),
	R(PROTO_TAG_MODEL, 1, PROTO_MAX_TEXT, 1, 0),
	R(PROTO_TAG_HW_REV, 1, PROTO_MAX_TEXT, 1, 0),
	R(PROTO_TAG_FW_VERSION, 0, PROTO_MAX_FWVER, 1, 0),
	R(PROTO_TAG_STATE, 1, 1, 1, 0),
	R(PROTO_TAG_ATT_CERT, 1, PROTO_MAX_PAYLOAD, 1, 0),
	R(PROTO_TAG_FW_SHA256, PROTO_SHA256_LEN, PROTO_SHA256_LEN, 0, 0),
	{ 0 }
};
static const struct tagrule rules_genkey_req[] = { R(PROTO_TAG_ALG, 1, 1, 0, 0), { 0 } };
static const struct tagrule rules_genkey[] = {
	R(PROTO_TAG_ALG, 1, 1, 1, 0), R(PROTO_TAG_PUBKEY, 1, PROTO_MAX_PAYLOAD, 1, 0), { 0 }
};
static const struct tagrule rules_nonce[] = {
	R(PROTO_TAG_NONCE, PROTO_NONCE_LEN, PROTO_NONCE_LEN, 1, 0), { 0 }
};
static const struct tagrule rules_csr[] = { R(PROTO_TAG_CSR, 1, PROTO_MAX_PAYLOAD, 1, 0), { 0 } };
static const struct tagrule rules_attest[] = {
	R(PROTO_TAG_SIGNATURE, 1, PROTO_MAX_PAYLOAD, 1, 0),
	R(PROTO_TAG_DIGEST, PROTO_SHA256_LEN, PROTO_SHA256_LEN, 1, 0), { 0 }
};
static const struct tagrule rules_certs[] = {
	R(PROTO_TAG_CERT, 1, PROTO_MAX_PAYLOAD, 1, 0),
	R(PROTO_TAG_CHAIN, 1, PROTO_MAX_PAYLOAD, 0, PROTO_MAX_CHAIN), { 0 }
};
static const struct tagrule rules_challenge[] = {
	R(PROTO_TAG_CHALLENGE, PROTO_NONCE_LEN, PROTO_NONCE_LEN, 1, 0), { 0 }
};
static const struct tagrule rules_sig[] = {
	R(PROTO_TAG_SIGNATURE, 1, PROTO_MAX_PAYLOAD, 1, 0), { 0 }
};
static const struct tagrule rules_confirm[] = { R(PROTO_TAG_CONFIRM, 4, 4, 1, 0), { 0 } };
static const struct tagrule rules_state[] = { R(PROTO_TAG_STATE, 1, 1, 1, 0), { 0 } };
static const struct tagrule rules_busy[] = { R(PROTO_TAG_POLL_MS, 4, 4, 1, 0), { 0 } };
static const struct tagrule rules_error[] = {
	R(PROTO_TAG_MESSAGE, 0, PROTO_MAX_MESSAGE, 0, 0), { 0 }
};
static const struct tagrule rules_empty[] = { { 0 } };
#undef R

static const struct tagrule *shape_rules(enum shape sh)
{
	switch (sh) {
	case SH_INFO:       return rules_info;
	case SH_GENKEY_REQ: return rules_genkey_req;
	case SH_GENKEY:     return rules_genkey;
	case SH_NONCE:      return rules_nonce;
	case SH_CSR:        return rules_csr;
	case SH_ATTEST:     return rules_attest;
	case SH_CERTS:      return rules_certs;
	case SH_CHALLENGE:  return rules_challenge;
	case SH_SIG:        return rules_sig;
	case SH_CONFIRM:    return rules_confirm;
	case SH_STATE:      return rules_state;
	case SH_BUSY:       return rules_busy;
	case SH_ERROR:      return rules_error;
	case SH_EMPTY:
	case SH_BAD:        break;
	}
	return rules_empty;
}

#define MAX_RULES 8

/* Values of the tags of one payload, after the rules were checked. */
struct seen {
	const uint8_t *val[MAX_RULES][PROTO_MAX_CHAIN];
	size_t len[MAX_RULES][PROTO_MAX_CHAIN];
	size_t count[MAX_RULES];
};

static int payload_check(const char *what, const struct tagrule *rules,
			 const uint8_t *p, size_t len, struct seen *s, struct errbuf *e)
{
	size_t off = 0, vlen;
	const uint8_t *val;
	uint8_t tag;
	int r;

	memset(s, 0, sizeof(*s));
	while ((r = proto_tlv_next(p, len, &off, &tag, &val, &vlen, e)) == 1) {
		size_t k;

		for (k = 0; rules[k].tag && rules[k].tag != tag; k++)
			;
		if (!rules[k].tag)
			return errbuf_set(e, ST_EPROTO, "%s: unexpected tag 0x%02x", what, tag);
		if (s->count[k] >= (rules[k].repeat ? rules[k].repeat : 1))
			return errbuf_set(e, ST_EPROTO, "%s: tag 0x%02x repeated", what, tag);
		if (vlen < rules[k].min || vlen > rules[k].max)
			return errbuf_set(e, ST_EPROTO, "%s: tag 0x%02x has %zu bytes (want %u..%u)",
					  what, tag, vlen, rules[k].min, rules[k].max);
		s->val[k][s->count[k]] = val;
		s->len[k][s->count[k]] = vlen;
		s->count[k]++;
	}
	if (r < 0)
		return errbuf_prefix(e, "%s: ", what);
	for (size_t k = 0; rules[k].tag; k++)
		if (rules[k].required && !s->count[k])
			return errbuf_set(e, ST_EPROTO, "%s: required tag 0x%02x missing", what,
					  rules[k].tag);
	return ST_OK;
}

/* Copies a checked text value (rule bounds already applied) into dst, NUL-terminated. */
static int take_text(const char *what, const struct seen *s, int k, char *dst, size_t cap,
		     struct errbuf *e)
{
	size_t n = s->count[k] ? s->len[k][0] : 0;

	if (n >= cap || !is_printable((const char *)s->val[k][0], n))
		return errbuf_set(e, ST_EPROTO, "%s: text field %d not printable", what, k);
	if (n)
		memcpy(dst, s->val[k][0], n);
	dst[n] = '\0';
	return ST_OK;
}

static struct proto_blob take_blob(const struct seen *s, int k, int i)
{
	struct proto_blob b = { s->val[k][i], s->len[k][i] };

	return b;
}

int proto_msg_decode(const uint8_t *buf, size_t len, struct proto_msg *m,
		     struct errbuf *e)
{
	struct proto_frame f;
	struct seen s;
	enum shape sh;
	char what[48];
	int rc;

	memset(m, 0, sizeof(*m));
	if ((rc = proto_frame_decode(buf, len, &f, e)) != ST_OK)
		return rc;
	m->type = f.type;
	m->status = f.status;
	m->seq = f.seq;
	sh = msg_shape(f.type, f.status);
	snprintf(what, sizeof(what), "%s%s seq %u", proto_cmd_name(f.type),
		 f.type & PROTO_RESPONSE ? " reply" : "", f.seq);
	if (sh == SH_BAD)
		return errbuf_set(e, ST_EPROTO, "frame: type 0x%02x with status 0x%02x is not a message",
				  f.type, f.status);
	if ((rc = payload_check(what, shape_rules(sh), f.payload, f.len, &s, e)) != ST_OK)
		return rc;

	switch (sh) {
	case SH_BAD:
	case SH_EMPTY:
		break;
	case SH_INFO: {
		struct proto_info *i = &m->u.info;

		if ((rc = take_text(what, &s, 0, i->uid, sizeof(i->uid), e)) ||
		    (rc = take_text(what, &s, 1, i->model, sizeof(i->model), e)) ||
		    (rc = take_text(what, &s, 2, i->hw_rev, sizeof(i->hw_rev), e)) ||
		    (rc = take_text(what, &s, 3, i->fw_version, sizeof(i->fw_version), e)))
			return rc;
		if (!ids_uid_valid_n(i->uid, strlen(i->uid)))
			return errbuf_set(e, ST_EPROTO, "%s: unique id is not 24 upper-case hex digits",
					  what);
		i->state = s.val[4][0][0];
		if (i->state > PROTO_STATE_LOCKED)
			return errbuf_set(e, ST_EPROTO, "%s: unknown state %u", what, i->state);
		i->att_cert = take_blob(&s, 5, 0);
		if (s.count[6]) {
			i->has_fw_sha256 = 1;
			memcpy(i->fw_sha256, s.val[6][0], PROTO_SHA256_LEN);
		}
		break;
	}
	case SH_GENKEY_REQ:
		m->u.genkey_req.alg = s.count[0] ? s.val[0][0][0] : PROTO_ALG_P256;
		if (!alg_ok(m->u.genkey_req.alg))
			return errbuf_set(e, ST_EPROTO, "%s: unknown algorithm %u", what,
					  m->u.genkey_req.alg);
		break;
	case SH_GENKEY:
		m->u.genkey.alg = s.val[0][0][0];
		if (!alg_ok(m->u.genkey.alg))
			return errbuf_set(e, ST_EPROTO, "%s: unknown algorithm %u", what,
					  m->u.genkey.alg);
		m->u.genkey.pubkey = take_blob(&s, 1, 0);
		break;
	case SH_NONCE:
		memcpy(m->u.nonce_req.nonce, s.val[0][0], PROTO_NONCE_LEN);
		break;
	case SH_CSR:
		m->u.csr.csr = take_blob(&s, 0, 0);
		break;
	case SH_ATTEST:
		m->u.attest.sig = take_blob(&s, 0, 0);
		memcpy(m->u.attest.csr_sha256, s.val[1][0], PROTO_SHA256_LEN);
		break;
	case SH_CERTS:
		m->u.certs.leaf = take_blob(&s, 0, 0);
		m->u.certs.n_chain = s.count[1];
		for (size_t k = 0; k < s.count[1]; k++)
			m->u.certs.chain[k] = take_blob(&s, 1, (int)k);
		break;
	case SH_CHALLENGE:
		memcpy(m->u.prove_req.challenge, s.val[0][0], PROTO_NONCE_LEN);
		break;
	case SH_SIG:
		m->u.sig.sig = take_blob(&s, 0, 0);
		break;
	case SH_CONFIRM:
		m->u.confirm.confirm = get_le32(s.val[0][0]);
		break;
	case SH_STATE:
		m->u.state.state = s.val[0][0][0];
		if (m->u.state.state > PROTO_STATE_LOCKED)
			return errbuf_set(e, ST_EPROTO, "%s: unknown state %u", what,
					  m->u.state.state);
		break;
	case SH_BUSY:
		m->u.busy.poll_ms = get_le32(s.val[0][0]);
		if (m->u.busy.poll_ms > PROTO_MAX_POLL_MS)
			return errbuf_set(e, ST_EPROTO, "%s: poll interval %u ms > %u", what,
					  m->u.busy.poll_ms, PROTO_MAX_POLL_MS);
		break;
	case SH_ERROR:
		if (s.count[0] && (rc = take_text(what, &s, 0, m->u.error.message,
						   sizeof(m->u.error.message), e)))
			return rc;
		break;
	}
	return ST_OK;
}

void proto_msg_request(struct proto_msg *m, uint8_t cmd, uint16_t seq)
{
	memset(m, 0, sizeof(*m));
	m->type = cmd;
	m->seq = seq;
	if (cmd == PROTO_GENKEY)
		m->u.genkey_req.alg = PROTO_ALG_P256;
	else if (cmd == PROTO_LOCK)
		m->u.confirm.confirm = PROTO_CONFIRM_LOCK;
	else if (cmd == PROTO_FACTORY_RESET)
		m->u.confirm.confirm = PROTO_CONFIRM_RESET;
}

void proto_msg_reply(struct proto_msg *m, uint8_t cmd, uint16_t seq, uint8_t status)
{
	memset(m, 0, sizeof(*m));
	m->type = cmd == PROTO_NAK ? PROTO_NAK : (uint8_t)(cmd | PROTO_RESPONSE);
	m->seq = seq;
	m->status = status;
}

/* ------------------------------------------------------------------ DFU */

void proto_setup_encode(const struct proto_setup *s, uint8_t out[8])
{
	out[0] = s->bmRequestType;
	out[1] = s->bRequest;
	put_le16(out + 2, s->wValue);
	put_le16(out + 4, s->wIndex);
	put_le16(out + 6, s->wLength);
}

void proto_setup_decode(const uint8_t in[8], struct proto_setup *s)
{
	s->bmRequestType = in[0];
	s->bRequest = in[1];
	s->wValue = get_le16(in + 2);
	s->wIndex = get_le16(in + 4);
	s->wLength = get_le16(in + 6);
}

int proto_dfu_request_check(const struct proto_setup *s, uint16_t iface,
			    uint16_t transfer_size, struct errbuf *e)
{
	static const char *const names[] = {
		"DETACH", "DNLOAD", "UPLOAD", "GETSTATUS", "CLRSTATUS", "GETSTATE", "ABORT"
	};
	uint8_t want_type;
	const char *n;

	if (s->bRequest > PROTO_DFU_ABORT)
		return errbuf_set(e, ST_EPROTO, "DFU: unknown request %u", s->bRequest);
	n = names[s->bRequest];
	switch (s->bRequest) {
	case PROTO_DFU_UPLOAD:
	case PROTO_DFU_GETSTATUS:
	case PROTO_DFU_GETSTATE:
		want_type = PROTO_DFU_REQTYPE_IN;
		break;
	default:
		want_type = PROTO_DFU_REQTYPE_OUT;
	}
	if (s->bmRequestType != want_type)
		return errbuf_set(e, ST_EPROTO, "DFU %s: bmRequestType 0x%02x, want 0x%02x", n,
				  s->bmRequestType, want_type);
	if (s->wIndex != iface)
		return errbuf_set(e, ST_EPROTO, "DFU %s: wIndex %u is not interface %u", n,
				  s->wIndex, iface);
	switch (s->bRequest) {
	case PROTO_DFU_DETACH:
		if (s->wLength != 0)
			return errbuf_set(e, ST_EPROTO, "DFU DETACH: wLength %u, want 0", s->wLength);
		break;
	case PROTO_DFU_DNLOAD:
	case PROTO_DFU_UPLOAD:
		if (s->wLength > transfer_size)
			return errbuf_set(e, ST_EPROTO, "DFU %s: wLength %u exceeds wTransferSize %u",
					  n, s->wLength, transfer_size);
		if (s->bRequest == PROTO_DFU_UPLOAD && s->wLength == 0)
			return errbuf_set(e, ST_EPROTO, "DFU UPLOAD: wLength 0");
		break;
	case PROTO_DFU_GETSTATUS:
		if (s->wValue != 0 || s->wLength != PROTO_DFU_STATUS_LEN)
			return errbuf_set(e, ST_EPROTO, "DFU GETSTATUS: wValue %u wLength %u, want 0 and 6",
					  s->wValue, s->wLength);
		break;
	case PROTO_DFU_GETSTATE:
		if (s->wValue != 0 || s->wLength != 1)
			return errbuf_set(e, ST_EPROTO, "DFU GETSTATE: wValue %u wLength %u, want 0 and 1",
					  s->wValue, s->wLength);
		break;
	case PROTO_DFU_CLRSTATUS:
	case PROTO_DFU_ABORT:
		if (s->wValue != 0 || s->wLength != 0)
			return errbuf_set(e, ST_EPROTO, "DFU %s: wValue %u wLength %u, want 0 and 0",
					  n, s->wValue, s->wLength);
		break;
	}
	return ST_OK;
}

int proto_dfu_status_encode(const struct proto_dfu_status *st, uint8_t out[6],
			    struct errbuf *e)
{
	if (st->bStatus > PROTO_DFU_ERR_STALLEDPKT || st->bState > PROTO_DFU_ERROR ||
	    st->bwPollTimeout > PROTO_DFU_MAX_POLL)
		return errbuf_set(e, ST_EINVAL, "DFU status: field out of range (status %u state %u poll %u)",
				  st->bStatus, st->bState, st->bwPollTimeout);
	out[0] = st->bStatus;
	out[1] = (uint8_t)st->bwPollTimeout;
	out[2] = (uint8_t)(st->bwPollTimeout >> 8);
	out[3] = (uint8_t)(st->bwPollTimeout >> 16);
	out[4] = st->bState;
	out[5] = st->iString;
	return ST_OK;
}

int proto_dfu_status_decode(const uint8_t *in, size_t len, struct proto_dfu_status *st,
			    struct errbuf *e)
{
	if (len != PROTO_DFU_STATUS_LEN)
		return errbuf_set(e, ST_EPROTO, "DFU GETSTATUS: %zu bytes, want 6", len);
	if (in[0] > PROTO_DFU_ERR_STALLEDPKT)
		return errbuf_set(e, ST_EPROTO, "DFU GETSTATUS: unknown bStatus %u", in[0]);
	if (in[4] > PROTO_DFU_ERROR)
		return errbuf_set(e, ST_EPROTO, "DFU GETSTATUS: unknown bState %u", in[4]);
	st->bStatus = in[0];
	st->bwPollTimeout = (uint32_t)in[1] | (uint32_t)in[2] << 8 | (uint32_t)in[3] << 16;
	st->bState = in[4];
	st->iString = in[5];
	return ST_OK;
}

void proto_dfu_func_encode(const struct proto_dfu_func *f, uint8_t out[9])
{
	out[0] = PROTO_DFU_FUNC_LEN;
	out[1] = PROTO_DFU_DESC_TYPE;
	out[2] = f->bmAttributes;
	put_le16(out + 3, f->wDetachTimeOut);
	put_le16(out + 5, f->wTransferSize);
	put_le16(out + 7, f->bcdDFUVersion);
}

int proto_dfu_func_find(const uint8_t *desc, size_t len, struct proto_dfu_func *f,
			struct errbuf *e)
{
	size_t off = 0;

	while (off < len) {
		size_t bl = desc[off];

		if (bl < 2 || bl > len - off)
			return errbuf_set(e, ST_EPROTO, "descriptor at offset %zu: bLength %zu overruns %zu bytes",
					  off, bl, len);
		if (desc[off + 1] == PROTO_DFU_DESC_TYPE) {
			const uint8_t *d = desc + off;

			if (bl < PROTO_DFU_FUNC_LEN)
				return errbuf_set(e, ST_EPROTO, "DFU functional descriptor: bLength %zu < 9",
						  bl);
			f->bmAttributes = d[2];
			f->wDetachTimeOut = get_le16(d + 3);
			f->wTransferSize = get_le16(d + 5);
			f->bcdDFUVersion = get_le16(d + 7);
			if (f->wTransferSize == 0)
				return errbuf_set(e, ST_EPROTO, "DFU functional descriptor: wTransferSize 0");
			return ST_OK;
		}
		off += bl;
	}
	return errbuf_set(e, ST_ENOTFOUND, "no DFU functional descriptor");
}

/* ------------------------------------------------------------------ firmware trailer */

int proto_fw_trailer_parse(const uint8_t *img, size_t len, struct proto_fw_trailer *t,
			   struct errbuf *e)
{
	const uint8_t *tr;
	size_t vlen;

	if (len < PROTO_FW_TRAILER_LEN)
		return errbuf_set(e, ST_EPROTO, "firmware image: %zu bytes, shorter than its %d-byte trailer",
				  len, PROTO_FW_TRAILER_LEN);
	if (len > PROTO_FW_MAX_IMAGE)
		return errbuf_set(e, ST_EPROTO, "firmware image: %zu bytes exceeds %u", len,
				  PROTO_FW_MAX_IMAGE);
	tr = img + len - PROTO_FW_TRAILER_LEN;
	if (memcmp(tr, PROTO_FW_MAGIC, 4) != 0)
		return errbuf_set(e, ST_EPROTO, "firmware image: no \"%s\" trailer", PROTO_FW_MAGIC);
	t->body_len = get_le32(tr + 4);
	if (t->body_len != len - PROTO_FW_TRAILER_LEN)
		return errbuf_set(e, ST_EPROTO, "firmware image: trailer says %u body bytes, image has %zu",
				  t->body_len, len - PROTO_FW_TRAILER_LEN);
	vlen = strnlen((const char *)tr + 8, PROTO_MAX_FWVER);
	if (vlen == 0 || !is_printable((const char *)tr + 8, vlen))
		return errbuf_set(e, ST_EPROTO, "firmware image: version is empty or not printable");
	for (size_t i = vlen; i < PROTO_MAX_FWVER; i++)
		if (tr[8 + i] != 0)
			return errbuf_set(e, ST_EPROTO, "firmware image: version not NUL-padded");
	memcpy(t->version, tr + 8, vlen);
	t->version[vlen] = '\0';
	memcpy(t->sha256, tr + 8 + PROTO_MAX_FWVER, PROTO_SHA256_LEN);
	return ST_OK;
}

int proto_fw_trailer_make(uint32_t body_len, const char *version,
			  const uint8_t sha256[PROTO_SHA256_LEN],
			  uint8_t out[PROTO_FW_TRAILER_LEN], struct errbuf *e)
{
	size_t vlen = strnlen(version, PROTO_MAX_FWVER + 1);

	if (vlen == 0 || vlen > PROTO_MAX_FWVER || !is_printable(version, vlen))
		return errbuf_set(e, ST_EINVAL, "firmware version must be 1..%d printable characters",
				  PROTO_MAX_FWVER);
	if (body_len > PROTO_FW_MAX_IMAGE - PROTO_FW_TRAILER_LEN)
		return errbuf_set(e, ST_EINVAL, "firmware body of %u bytes is too large", body_len);
	memset(out, 0, PROTO_FW_TRAILER_LEN);
	memcpy(out, PROTO_FW_MAGIC, 4);
	put_le32(out + 4, body_len);
	memcpy(out + 8, version, vlen);
	memcpy(out + 8 + PROTO_MAX_FWVER, sha256, PROTO_SHA256_LEN);
	return ST_OK;
}
