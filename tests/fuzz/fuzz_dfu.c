/*
 * libFuzzer target: the DFU parsers of station/proto/proto.c: setup packet check,
 * GETSTATUS payload, functional descriptor walk, firmware image trailer.
 * The first input byte picks the parser, the rest is its input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_setup s;
	struct proto_dfu_status st;
	struct proto_dfu_func fn;
	struct proto_fw_trailer t;
	struct errbuf e;
	uint8_t six[6], raw[8];
	int rc;

	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0:
		if (size < 9)
			return 0;
		proto_setup_decode(data + 1, &s);
		proto_setup_encode(&s, raw);
		if (memcmp(raw, data + 1, 8) != 0)
			abort();
		rc = proto_dfu_request_check(&s, PROTO_DFU_INTERFACE, PROTO_DFU_TRANSFER_SIZE, &e);
		if (rc != ST_OK && rc != ST_EPROTO)
			abort();
		if (rc == ST_OK && (s.wLength > PROTO_DFU_TRANSFER_SIZE || s.bRequest > PROTO_DFU_ABORT))
			abort();
		break;
	case 1:
		rc = proto_dfu_status_decode(data + 1, size - 1, &st, &e);
		if (rc == ST_OK) {
			if (proto_dfu_status_encode(&st, six, &e) != ST_OK ||
			    memcmp(six, data + 1, 6) != 0)
				abort();
		} else if (rc != ST_EPROTO) {
			abort();
		}
		break;
	case 2:
		rc = proto_dfu_func_find(data + 1, size - 1, &fn, &e);
		if (rc != ST_OK && rc != ST_EPROTO && rc != ST_ENOTFOUND)
			abort();
		if (rc == ST_OK && fn.wTransferSize == 0)
			abort();
		break;
	case 3:
		rc = proto_fw_trailer_parse(data + 1, size - 1, &t, &e);
		if (rc != ST_OK && rc != ST_EPROTO)
			abort();
		if (rc == ST_OK && (t.body_len + PROTO_FW_TRAILER_LEN != size - 1 ||
				    strlen(t.version) == 0))
			abort();
		break;
	}
	return 0;
}
