/*
 * libFuzzer target: the board protocol frame and message decoder (station/proto/proto.c).
 * Any input must decode or fail with ST_EPROTO; whatever decodes must re-encode to
 * the very same bytes (the encoding is canonical for the messages it accepts, except
 * that GENKEY's optional algorithm is always written), and the decoded views must
 * stay inside the input.  Each input is also tried with its length field and CRC
 * repaired, so that mutations reach the payload rules instead of dying at the CRC.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

static void inside(const uint8_t *buf, size_t len, const struct proto_blob *b)
{
	if (b->len && (b->p < buf || b->p + b->len > buf + len))
		abort();
}

static void one(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t fixed[PROTO_MAX_FRAME];
	uint32_t crc;

	one(data, size);
	if (size < PROTO_HDR_LEN + PROTO_CRC_LEN || size > sizeof(fixed))
		return 0;
	memcpy(fixed, data, size);
	fixed[8] = (uint8_t)(size - 16);
	fixed[9] = (uint8_t)((size - 16) >> 8);
	fixed[10] = fixed[11] = 0;
	crc = proto_crc32(0, fixed, size - 4);
	fixed[size - 4] = (uint8_t)crc;
	fixed[size - 3] = (uint8_t)(crc >> 8);
	fixed[size - 2] = (uint8_t)(crc >> 16);
	fixed[size - 1] = (uint8_t)(crc >> 24);
	one(fixed, size);
	return 0;
}

static void one(const uint8_t *data, size_t size)
{
	static uint8_t out[PROTO_MAX_FRAME];
	struct proto_msg m;
	struct proto_frame f;
	struct errbuf e;
	size_t n, total;
	int rc;

	rc = proto_frame_decode(data, size, &f, &e);
	if (rc != ST_OK && rc != ST_EPROTO)
		abort();
	rc = proto_frame_size(data, size, &total, &e);
	if (rc != ST_OK && rc != ST_EPROTO && rc != ST_EINVAL)
		abort();
	rc = proto_msg_decode(data, size, &m, &e);
	if (rc != ST_OK) {
		if (rc != ST_EPROTO || e.msg[0] == '\0')
			abort();
		return;
	}
	if (m.type == (PROTO_INFO | PROTO_RESPONSE) && m.status == PROTO_ST_OK)
		inside(data, size, &m.u.info.att_cert);
	if ((m.type == (PROTO_READ_CERT | PROTO_RESPONSE) && m.status == PROTO_ST_OK) ||
	    m.type == PROTO_WRITE_CERT) {
		if (m.u.certs.n_chain > PROTO_MAX_CHAIN)
			abort();
		for (size_t i = 0; i < m.u.certs.n_chain; i++)
			inside(data, size, &m.u.certs.chain[i]);
	}
	if (proto_msg_encode(&m, out, sizeof(out), &n, &e) != ST_OK)
		abort();
	if (m.type != PROTO_GENKEY && (n != size || memcmp(out, data, n) != 0)) {
		/* Tag order is free on the wire; the re-encoding must at least decode. */
		struct proto_msg m2;

		if (proto_msg_decode(out, n, &m2, &e) != ST_OK || m2.type != m.type ||
		    m2.seq != m.seq || m2.status != m.status)
			abort();
	}
}
