/*
 * proto: the one codec shared by the station (host side) and the simulated board
 * (device side).  It knows two things, both specified byte for byte in
 * docs/protocol.md:
 *
 *   1. Frames of the board provisioning protocol carried on the vendor interface
 *      (bulk OUT 0x01 / bulk IN 0x81): a 12-byte header, a TLV payload, a CRC-32.
 *      proto_msg_encode() turns a typed message into one frame; proto_msg_decode()
 *      turns one frame into a typed message, checking everything (length, CRC,
 *      magic, version, type, and that the payload is exactly what the type needs).
 *   2. The USB DFU 1.1 structures used on interface 1: setup packets, the 6-byte
 *      GETSTATUS answer, the DFU functional descriptor, and the firmware image
 *      trailer the board checks at manifestation.
 *
 * Contract: pure functions, no I/O, no allocation, no globals, no other module but
 * errbuf (the fuzz targets link proto.c + errbuf.c only).  Every parser is bounded
 * by the length it is given and fails with ST_EPROTO (malformed input) or ST_EINVAL
 * (a caller's bad argument, e.g. output buffer too small) and a sentence in the
 * errbuf; none reads past its input or crashes on any input.
 *
 * Decoded messages point into the buffer they were decoded from (struct proto_blob
 * views, strings are copied NUL-terminated): keep that buffer alive while the
 * message is in use.
 */
#ifndef STATION_PROTO_H
#define STATION_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"
#include "core/ids.h"

/* ---------------------------------------------------------------- frames */

#define PROTO_MAGIC0       0x53   /* 'S' */
#define PROTO_MAGIC1       0x42   /* 'B' */
#define PROTO_VERSION      1
#define PROTO_HDR_LEN      12
#define PROTO_CRC_LEN      4
#define PROTO_MAX_FRAME    8192
#define PROTO_MAX_PAYLOAD  (PROTO_MAX_FRAME - PROTO_HDR_LEN - PROTO_CRC_LEN)
#define PROTO_RESPONSE     0x80   /* type bit set in every reply */

/* Command types (requests).  A reply has type = command | PROTO_RESPONSE. */
enum proto_cmd {
	PROTO_INFO          = 0x01,
	PROTO_GENKEY        = 0x02,
	PROTO_GET_CSR       = 0x03,
	PROTO_ATTEST        = 0x04,
	PROTO_WRITE_CERT    = 0x05,
	PROTO_READ_CERT     = 0x06,
	PROTO_PROVE         = 0x07,
	PROTO_LOCK          = 0x08,
	PROTO_FACTORY_RESET = 0x09,
	PROTO_POLL          = 0x0a,
};
#define PROTO_CMD_MIN PROTO_INFO
#define PROTO_CMD_MAX PROTO_POLL

/* The board's reply to a frame it could not parse (bad magic, version, length,
 * CRC, unknown type): type PROTO_NAK with status EFRAME or EUNKNOWN. */
#define PROTO_NAK 0xff

/* Status byte of a reply (0 in requests). */
enum proto_status {
	PROTO_ST_OK        = 0x00,
	PROTO_ST_BUSY      = 0x01,  /* accepted, running: POLL after poll_ms */
	PROTO_ST_EFRAME    = 0x10,  /* frame malformed (length, CRC, magic, version) */
	PROTO_ST_EUNKNOWN  = 0x11,  /* unknown command type */
	PROTO_ST_EPAYLOAD  = 0x12,  /* payload does not match the command */
	PROTO_ST_ESTATE    = 0x13,  /* not allowed in the board's state */
	PROTO_ST_ELOCKED   = 0x14,  /* board is locked: refused for good */
	PROTO_ST_ECRYPTO   = 0x15,  /* key generation / signing failed */
	PROTO_ST_EFLASH    = 0x16,  /* flash write failed */
	PROTO_ST_EREFUSED  = 0x17,  /* board policy refused (e.g. LOCK refused) */
	PROTO_ST_EPENDING  = 0x18,  /* another operation is still running: POLL it */
	PROTO_ST_ENOOP     = 0x19,  /* POLL with no operation started */
	PROTO_ST_ECERT     = 0x1a,  /* certificate does not match the device key */
	PROTO_ST_EINTERNAL = 0x1f,  /* anything else */
};

/* Board states, as INFO reports them (docs/protocol.md has the state table). */
enum proto_state {
	PROTO_STATE_BLANK     = 0,
	PROTO_STATE_FLASHED   = 1,
	PROTO_STATE_KEYED     = 2,
	PROTO_STATE_CERTIFIED = 3,
	PROTO_STATE_LOCKED    = 4,
};

/* GENKEY algorithms. */
enum proto_alg {
	PROTO_ALG_P256    = 1,   /* default */
	PROTO_ALG_P384    = 2,
	PROTO_ALG_RSA3072 = 3,
};

/* TLV tags (payload = sequence of tag u8, length u16 LE, value). */
enum proto_tag {
	PROTO_TAG_UID        = 0x01,  /* 24 upper-case hex chars */
	PROTO_TAG_MODEL      = 0x02,  /* 1..64 printable */
	PROTO_TAG_HW_REV     = 0x03,  /* 1..64 printable */
	PROTO_TAG_FW_VERSION = 0x04,  /* 0..32 printable (empty when blank) */
	PROTO_TAG_STATE      = 0x05,  /* u8 enum proto_state */
	PROTO_TAG_ATT_CERT   = 0x06,  /* DER X.509 attestation certificate */
	PROTO_TAG_ALG        = 0x07,  /* u8 enum proto_alg */
	PROTO_TAG_NONCE      = 0x08,  /* 32 bytes */
	PROTO_TAG_CSR        = 0x09,  /* DER PKCS#10 */
	PROTO_TAG_SIGNATURE  = 0x0a,  /* DER ECDSA or raw RSA PKCS#1 v1.5 */
	PROTO_TAG_CERT       = 0x0b,  /* DER X.509 leaf */
	PROTO_TAG_CHAIN      = 0x0c,  /* DER X.509, repeated, issuer first */
	PROTO_TAG_CHALLENGE  = 0x0d,  /* 32 bytes */
	PROTO_TAG_POLL_MS    = 0x0e,  /* u32 LE */
	PROTO_TAG_MESSAGE    = 0x0f,  /* 0..255 printable: error detail */
	PROTO_TAG_PUBKEY     = 0x10,  /* DER SubjectPublicKeyInfo */
	PROTO_TAG_DIGEST     = 0x11,  /* 32 bytes: SHA-256(CSR DER) in ATTEST */
	PROTO_TAG_CONFIRM    = 0x12,  /* u32 LE: LOCK / FACTORY_RESET magic */
	PROTO_TAG_FW_SHA256  = 0x13,  /* 32 bytes: SHA-256 of the stored image */
};

#define PROTO_NONCE_LEN     32
#define PROTO_SHA256_LEN    32
#define PROTO_UID_LEN       IDS_UID_LEN   /* the unique-id rule: core/ids.h */
#define PROTO_MAX_TEXT      64
#define PROTO_MAX_FWVER     32
#define PROTO_MAX_MESSAGE   255
#define PROTO_MAX_CHAIN     4
#define PROTO_CONFIRM_LOCK  0x4b434f4cu  /* "LOCK" as bytes on the wire */
#define PROTO_CONFIRM_RESET 0x54455352u  /* "RSET" */
#define PROTO_MAX_POLL_MS   60000u

/* Context strings hashed by ATTEST and PROVE (see docs/protocol.md). */
#define PROTO_ATTEST_CONTEXT "station-attest-v1"
#define PROTO_PROVE_CONTEXT  "station-prove-v1"

struct proto_blob {
	const uint8_t *p;
	size_t len;
};

struct proto_info {            /* INFO reply */
	char uid[PROTO_UID_LEN + 1];
	char model[PROTO_MAX_TEXT + 1];
	char hw_rev[PROTO_MAX_TEXT + 1];
	char fw_version[PROTO_MAX_FWVER + 1];
	uint8_t state;             /* enum proto_state */
	struct proto_blob att_cert;
	int has_fw_sha256;         /* optional: absent on a blank board */
	uint8_t fw_sha256[PROTO_SHA256_LEN];
};

struct proto_genkey_req { uint8_t alg; };                 /* alg optional: P-256 */
struct proto_genkey     { uint8_t alg; struct proto_blob pubkey; };
struct proto_nonce_req  { uint8_t nonce[PROTO_NONCE_LEN]; };   /* GET_CSR, ATTEST */
struct proto_csr        { struct proto_blob csr; };
struct proto_attest     { struct proto_blob sig; uint8_t csr_sha256[PROTO_SHA256_LEN]; };
struct proto_certs {           /* WRITE_CERT request, READ_CERT reply */
	struct proto_blob leaf;
	struct proto_blob chain[PROTO_MAX_CHAIN];
	size_t n_chain;
};
struct proto_prove_req  { uint8_t challenge[PROTO_NONCE_LEN]; };
struct proto_sig        { struct proto_blob sig; };            /* PROVE reply */
struct proto_confirm    { uint32_t confirm; };                 /* LOCK, FACTORY_RESET */
struct proto_state_rep  { uint8_t state; };                    /* LOCK, FACTORY_RESET reply */
struct proto_busy       { uint32_t poll_ms; };                 /* any reply, status BUSY */
struct proto_error {           /* any reply with an error status; message optional */
	char message[PROTO_MAX_MESSAGE + 1];
};

/*
 * One message.  Which union member is meaningful is fixed by type and status:
 *   requests: INFO, READ_CERT, POLL: none; GENKEY: genkey_req; GET_CSR, ATTEST:
 *     nonce_req; WRITE_CERT: certs; PROVE: prove_req; LOCK, FACTORY_RESET: confirm.
 *   replies with status BUSY: busy; with an error status (or type NAK): error.
 *   replies with status OK: INFO: info; GENKEY: genkey; GET_CSR: csr; ATTEST:
 *     attest; WRITE_CERT: none; READ_CERT: certs; PROVE: sig; LOCK,
 *     FACTORY_RESET: state.
 * A POLL reply carries the type of the operation it reports on (e.g. GENKEY |
 * PROTO_RESPONSE), or POLL | PROTO_RESPONSE with status ENOOP.
 */
struct proto_msg {
	uint8_t type;
	uint8_t status;
	uint16_t seq;
	union {
		struct proto_info info;
		struct proto_genkey_req genkey_req;
		struct proto_genkey genkey;
		struct proto_nonce_req nonce_req;
		struct proto_csr csr;
		struct proto_attest attest;
		struct proto_certs certs;
		struct proto_prove_req prove_req;
		struct proto_sig sig;
		struct proto_confirm confirm;
		struct proto_state_rep state;
		struct proto_busy busy;
		struct proto_error error;
	} u;
};

/* A frame split into its fields; payload points into the decoded buffer. */
struct proto_frame {
	uint8_t type;
	uint8_t status;
	uint16_t seq;
	const uint8_t *payload;
	size_t len;
};

/* CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320, init and xorout 0xFFFFFFFF;
 * identical to zlib's crc32()).  crc is the value so far (0 to start). */
uint32_t proto_crc32(uint32_t crc, const uint8_t *p, size_t len);

/* Writes one frame (header, payload, CRC) to out; *outlen = its size.
 * ST_EINVAL if the payload exceeds PROTO_MAX_PAYLOAD or out is too small. */
ST_MUST_CHECK int proto_frame_encode(uint8_t type, uint8_t status, uint16_t seq,
				     const uint8_t *payload, size_t len,
				     uint8_t *out, size_t cap, size_t *outlen, struct errbuf *e);

/* Parses exactly one frame occupying all of buf[0..len).  Checks magic, version,
 * reserved byte, length (against PROTO_MAX_PAYLOAD and len), CRC.  Does not look
 * at the type or payload.  ST_EPROTO on any mismatch. */
ST_MUST_CHECK int proto_frame_decode(const uint8_t *buf, size_t len, struct proto_frame *f,
				     struct errbuf *e);

/* For a receiver assembling a frame from packets: given at least PROTO_HDR_LEN
 * bytes, the total frame size the header announces (checked against the limit).
 * ST_EPROTO on a bad header; ST_EINVAL when len < PROTO_HDR_LEN. */
ST_MUST_CHECK int proto_frame_size(const uint8_t *buf, size_t len, size_t *total, struct errbuf *e);

/* Encodes m (type, status, seq and the union member they select) as one frame.
 * Text fields are checked (printable, lengths; uid against ^[0-9A-F]{24}$). */
ST_MUST_CHECK int proto_msg_encode(const struct proto_msg *m, uint8_t *out, size_t cap,
				   size_t *outlen, struct errbuf *e);

/* Decodes one frame into m: frame checks, then the type must be a known command
 * (or its reply, or NAK), requests must have status 0, and the payload must hold
 * exactly the tags the type/status needs (required present, none duplicated
 * unless repeatable, lengths right, values in range).  Unknown tags are an error
 * too: version 1 has no optional extensions.  ST_EPROTO on any mismatch. */
ST_MUST_CHECK int proto_msg_decode(const uint8_t *buf, size_t len, struct proto_msg *m,
				   struct errbuf *e);

/* Builders for the common small messages. */
void proto_msg_request(struct proto_msg *m, uint8_t cmd, uint16_t seq);
void proto_msg_reply(struct proto_msg *m, uint8_t cmd, uint16_t seq, uint8_t status);

/* Names for logs: "GENKEY", "BUSY", "keyed", "P-256".  Never NULL. */
const char *proto_cmd_name(uint8_t type);     /* reply bit ignored */
const char *proto_status_name(uint8_t status);
const char *proto_state_name(uint8_t state);
const char *proto_alg_name(uint8_t alg);
/* Inverse of proto_cmd_name (case-insensitive, "get_csr" or "GET_CSR"); 0 if unknown. */
uint8_t proto_cmd_parse(const char *name);

/* True if the command may be re-sent after a lost or corrupt reply without
 * changing the outcome: every command but GENKEY (which makes a new key). */
int proto_cmd_idempotent(uint8_t cmd);

/* The st_rc a station should map a reply status to (ST_OK, ST_EBUSY, ST_ESTATE...). */
int proto_status_rc(uint8_t status);

/* ---------------------------------------------------------------- TLV */

/* Low-level TLV access, for tools and tests; proto_msg_* use these. */
struct proto_tlv_writer {
	uint8_t *buf;
	size_t cap, len;
	int overflow;              /* set once a put did not fit; later puts are no-ops */
};
void proto_tlv_init(struct proto_tlv_writer *w, uint8_t *buf, size_t cap);
void proto_tlv_put(struct proto_tlv_writer *w, uint8_t tag, const void *v, size_t len);
void proto_tlv_put_u8(struct proto_tlv_writer *w, uint8_t tag, uint8_t v);
void proto_tlv_put_u32(struct proto_tlv_writer *w, uint8_t tag, uint32_t v);

/* Iterates TLVs in p[0..len): returns 1 with the tag, value and value length set
 * and off advanced, 0 at the end, -1 (ST_EPROTO in e) when an item overruns the payload. */
ST_MUST_CHECK int proto_tlv_next(const uint8_t *p, size_t len, size_t *off, uint8_t *tag,
				 const uint8_t **val, size_t *vlen, struct errbuf *e);

/* ---------------------------------------------------------------- USB DFU 1.1 */

/* Class requests (bmRequestType 0x21 host-to-device, 0xA1 device-to-host;
 * wIndex = interface number). */
enum proto_dfu_req {
	PROTO_DFU_DETACH    = 0,
	PROTO_DFU_DNLOAD    = 1,
	PROTO_DFU_UPLOAD    = 2,
	PROTO_DFU_GETSTATUS = 3,
	PROTO_DFU_CLRSTATUS = 4,
	PROTO_DFU_GETSTATE  = 5,
	PROTO_DFU_ABORT     = 6,
};
#define PROTO_DFU_REQTYPE_OUT 0x21
#define PROTO_DFU_REQTYPE_IN  0xa1

enum proto_dfu_state {
	PROTO_DFU_APP_IDLE           = 0,
	PROTO_DFU_APP_DETACH         = 1,
	PROTO_DFU_IDLE               = 2,
	PROTO_DFU_DNLOAD_SYNC        = 3,
	PROTO_DFU_DNBUSY             = 4,
	PROTO_DFU_DNLOAD_IDLE        = 5,
	PROTO_DFU_MANIFEST_SYNC      = 6,
	PROTO_DFU_MANIFEST           = 7,
	PROTO_DFU_MANIFEST_WAIT_RESET = 8,
	PROTO_DFU_UPLOAD_IDLE        = 9,
	PROTO_DFU_ERROR              = 10,
};

enum proto_dfu_err {         /* bStatus */
	PROTO_DFU_OK              = 0x00,
	PROTO_DFU_ERR_TARGET      = 0x01,
	PROTO_DFU_ERR_FILE        = 0x02,
	PROTO_DFU_ERR_WRITE       = 0x03,
	PROTO_DFU_ERR_ERASE       = 0x04,
	PROTO_DFU_ERR_CHECK_ERASED = 0x05,
	PROTO_DFU_ERR_PROG        = 0x06,
	PROTO_DFU_ERR_VERIFY      = 0x07,
	PROTO_DFU_ERR_ADDRESS     = 0x08,
	PROTO_DFU_ERR_NOTDONE     = 0x09,
	PROTO_DFU_ERR_FIRMWARE    = 0x0a,
	PROTO_DFU_ERR_VENDOR      = 0x0b,
	PROTO_DFU_ERR_USBR        = 0x0c,
	PROTO_DFU_ERR_POR         = 0x0d,
	PROTO_DFU_ERR_UNKNOWN     = 0x0e,
	PROTO_DFU_ERR_STALLEDPKT  = 0x0f,
};

/* The board's DFU interface (docs/protocol.md "USB identity"). */
#define PROTO_DFU_INTERFACE       1
#define PROTO_DFU_TRANSFER_SIZE   4096
#define PROTO_DFU_DETACH_TIMEOUT  1000   /* ms */
#define PROTO_DFU_VERSION         0x0110
#define PROTO_DFU_ATTR_CAN_DNLOAD 0x01
#define PROTO_DFU_ATTR_CAN_UPLOAD 0x02
#define PROTO_DFU_ATTR_MANIF_TOL  0x04
#define PROTO_DFU_ATTR_WILL_DETACH 0x08
#define PROTO_DFU_DESC_TYPE       0x21   /* DFU functional descriptor */
#define PROTO_DFU_FUNC_LEN        9
#define PROTO_DFU_STATUS_LEN      6
#define PROTO_DFU_MAX_POLL        0xffffffu   /* bwPollTimeout is 24 bits */

/* The vendor interface. */
#define PROTO_IFACE               0
#define PROTO_IFACE_CLASS         0xff
#define PROTO_IFACE_SUBCLASS      0x53
#define PROTO_IFACE_PROTOCOL      0x01
#define PROTO_EP_OUT              0x01
#define PROTO_EP_IN               0x81
#define PROTO_EP_MAXPACKET        64     /* full speed */
#define PROTO_DEFAULT_VID         0x1209
#define PROTO_DEFAULT_PID         0x0001

struct proto_setup {
	uint8_t bmRequestType;
	uint8_t bRequest;
	uint16_t wValue;
	uint16_t wIndex;
	uint16_t wLength;
};

void proto_setup_encode(const struct proto_setup *s, uint8_t out[8]);
void proto_setup_decode(const uint8_t in[8], struct proto_setup *s);

/* Checks that a setup packet is a well-formed DFU 1.1 class request for
 * interface iface: known bRequest, the direction and recipient its bRequest
 * needs, wLength rules (GETSTATUS 6, GETSTATE 1, DETACH/CLRSTATUS/ABORT 0,
 * DNLOAD/UPLOAD <= transfer_size) and wValue 0 where the spec wants it.
 * ST_EPROTO with the reason otherwise. */
ST_MUST_CHECK int proto_dfu_request_check(const struct proto_setup *s, uint16_t iface,
					  uint16_t transfer_size, struct errbuf *e);

struct proto_dfu_status {      /* the GETSTATUS answer */
	uint8_t bStatus;           /* enum proto_dfu_err */
	uint32_t bwPollTimeout;    /* ms, 24 bits */
	uint8_t bState;            /* enum proto_dfu_state */
	uint8_t iString;
};
/* ST_EINVAL if a field is out of range. */
ST_MUST_CHECK int proto_dfu_status_encode(const struct proto_dfu_status *st, uint8_t out[6],
					  struct errbuf *e);
/* len must be exactly 6; status <= 0x0f, state <= 10.  ST_EPROTO otherwise. */
ST_MUST_CHECK int proto_dfu_status_decode(const uint8_t *in, size_t len,
					  struct proto_dfu_status *st,
					  struct errbuf *e);

struct proto_dfu_func {        /* DFU functional descriptor */
	uint8_t bmAttributes;
	uint16_t wDetachTimeOut;
	uint16_t wTransferSize;
	uint16_t bcdDFUVersion;
};
void proto_dfu_func_encode(const struct proto_dfu_func *f, uint8_t out[9]);
/* Finds and decodes the DFU functional descriptor in a run of descriptors (an
 * interface's "extra" bytes or a whole configuration descriptor), walking
 * bLength by bLength.  ST_ENOTFOUND if absent; ST_EPROTO on a malformed walk or
 * bad field (wTransferSize 0, bLength < 9). */
ST_MUST_CHECK int proto_dfu_func_find(const uint8_t *desc, size_t len, struct proto_dfu_func *f,
				      struct errbuf *e);

/* ---------------------------------------------------------------- firmware image */

/*
 * A firmware image is body || trailer, the trailer being the last
 * PROTO_FW_TRAILER_LEN bytes: magic "SFW1", body length u32 LE, version (32 bytes,
 * printable, NUL-padded), SHA-256(body).  The board refuses to manifest an image
 * whose trailer or hash is wrong.  Hashing is the caller's job (no crypto here).
 */
#define PROTO_FW_MAGIC        "SFW1"
#define PROTO_FW_TRAILER_LEN  72
#define PROTO_FW_MAX_IMAGE    (4u * 1024 * 1024)

struct proto_fw_trailer {
	uint32_t body_len;
	char version[PROTO_MAX_FWVER + 1];
	uint8_t sha256[PROTO_SHA256_LEN];
};

/* Parses the trailer of img[0..len): magic, body_len == len - trailer, version
 * printable.  ST_EPROTO otherwise.  The caller then checks SHA-256(body). */
ST_MUST_CHECK int proto_fw_trailer_parse(const uint8_t *img, size_t len, struct proto_fw_trailer *t,
					 struct errbuf *e);
/* Writes a trailer for body_len bytes with the given version and body hash. */
ST_MUST_CHECK int proto_fw_trailer_make(uint32_t body_len, const char *version,
					const uint8_t sha256[PROTO_SHA256_LEN],
					uint8_t out[PROTO_FW_TRAILER_LEN], struct errbuf *e);

#endif
