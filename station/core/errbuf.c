/* errbuf: see errbuf.h. */
#include "core/errbuf.h"
#include "core/str.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void errbuf_clear(struct errbuf *e)
{
	if (!e)
		return;
	e->code = ST_OK;
	e->origin = ST_ORIGIN_NONE;
	e->reason = ST_R_NONE;
	e->msg[0] = '\0';
}

static int vset(struct errbuf *e, int code, enum st_origin origin, enum st_reason reason,
		const char *fmt, va_list ap)
{
	e->code = code;
	e->origin = origin;
	e->reason = reason;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	return code;
}

int errbuf_set(struct errbuf *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	va_start(ap, fmt);
	vset(e, code, st_rc_origin(code), st_rc_reason(code), fmt, ap);
	va_end(ap);
	return code;
}

int errbuf_setr(struct errbuf *e, int code, enum st_origin origin, enum st_reason reason,
		const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	va_start(ap, fmt);
	vset(e, code, origin, reason, fmt, ap);
	va_end(ap);
	return code;
}

int errbuf_tag(struct errbuf *e, enum st_origin origin, enum st_reason reason)
{
	if (!e)
		return ST_OK;
	e->origin = origin;
	e->reason = reason;
	return e->code;
}

int errbuf_prefix(struct errbuf *e, const char *fmt, ...)
{
	char head[256], old[sizeof(e->msg)];
	va_list ap;

	if (!e)
		return ST_OK;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	/* a message is for a person: past the buffer it is cut, visibly */
	str_fmt_cut(e->msg, sizeof(e->msg), "%s%s", head, old);
	return e->code;
}

const char *st_rc_name(int rc)
{
	static const char *const names[ST_RC_COUNT] = {
		"OK", "EINVAL", "EIO", "ENOMEM", "ENOTFOUND", "EEXIST", "EDB",
		"ESCHEMA", "ETAMPER", "ECRYPTO", "EHSM", "EPIN", "EPOLICY",
		"ETIMEOUT", "ENODEV", "EPROTO", "ESTATE", "EBUSY", "EUSAGE",
		"ECANCELED",
	};

	if (rc < 0 || rc >= ST_RC_COUNT)
		return "EUNKNOWN";
	return names[rc];
}

enum st_origin st_rc_origin(int rc)
{
	switch (rc) {
	case ST_EDB:
	case ST_ESCHEMA:    return ST_ORIGIN_DB;
	case ST_EHSM:
	case ST_EPIN:       return ST_ORIGIN_HSM;
	case ST_EPOLICY:    return ST_ORIGIN_POLICY;
	case ST_EIO:        return ST_ORIGIN_IO;
	case ST_ENOMEM:
	case ST_ECANCELED:  return ST_ORIGIN_STATION;
	default:            return ST_ORIGIN_NONE;
	}
}

/* The generic reasons follow enum st_rc one for one (errbuf.h). */
_Static_assert(ST_R_CANCELED - ST_R_INVALID == ST_ECANCELED - ST_EINVAL &&
	       ST_ECANCELED + 1 == ST_RC_COUNT, "generic reasons follow enum st_rc");

enum st_reason st_rc_reason(int rc)
{
	if (rc <= ST_OK || rc >= ST_RC_COUNT)
		return rc == ST_OK ? ST_R_NONE : ST_R_INVALID;
	return (enum st_reason)(ST_R_INVALID + (rc - ST_EINVAL));
}

const char *st_origin_name(enum st_origin o)
{
	static const char *const names[ST_ORIGIN_COUNT] = {
		"none", "board", "usb", "hsm", "db", "policy", "config", "io", "station",
	};

	return (unsigned)o < ST_ORIGIN_COUNT ? names[o] : "unknown";
}

static const char *const reason_names[ST_R_COUNT] = {
	[ST_R_NONE]             = "none",
	[ST_R_INVALID]          = "invalid",
	[ST_R_IO]               = "io_error",
	[ST_R_NOMEM]            = "out_of_memory",
	[ST_R_NOT_FOUND]        = "not_found",
	[ST_R_EXISTS]           = "already_exists",
	[ST_R_DB]               = "db_failure",
	[ST_R_SCHEMA]           = "db_schema",
	[ST_R_TAMPER]           = "tampered",
	[ST_R_CRYPTO]           = "crypto_failure",
	[ST_R_HSM]              = "hsm_failure",
	[ST_R_PIN]              = "hsm_pin",
	[ST_R_POLICY]           = "policy",
	[ST_R_TIMEOUT]          = "timeout",
	[ST_R_UNPLUGGED]        = "board_unplugged",
	[ST_R_GARBLED]          = "garbled_usb",
	[ST_R_BAD_STATE]        = "bad_state",
	[ST_R_BUSY]             = "busy",
	[ST_R_USAGE]            = "usage",
	[ST_R_CANCELED]         = "canceled",
	[ST_R_BOARD_TIMEOUT]    = "board_timeout",
	[ST_R_BOARD_ERROR]      = "board_error",
	[ST_R_LOCK_REFUSED]     = "lock_refused",
	[ST_R_LOCK_UNCONFIRMED] = "lock_unconfirmed",
	[ST_R_OPEN_FAILED]      = "open_failed",
	[ST_R_FLASH_ERROR]      = "flash_error",
	[ST_R_FLASH_TIMEOUT]    = "flash_timeout",
	[ST_R_FLASH_STATE]      = "flash_state",
	[ST_R_FLASH_READBACK]   = "flash_readback",
	[ST_R_IMAGE_MISMATCH]   = "image_mismatch",
	[ST_R_MALFORMED_ID]     = "malformed_id",
	[ST_R_ID_MISMATCH]      = "id_not_usb_serial",
	[ST_R_CLONE]            = "clone_two_bays",
	[ST_R_NOT_ON_LOT]       = "not_on_lot",
	[ST_R_PROVISIONED]      = "already_provisioned",
	[ST_R_BOARD_LOCKED]     = "board_locked",
	[ST_R_FIRMWARE_HASH]    = "firmware_hash",
	[ST_R_NO_RANDOMNESS]    = "no_randomness",
	[ST_R_CSR_MALFORMED]    = "csr_malformed",
	[ST_R_CSR_SIGNATURE]    = "csr_signature",
	[ST_R_CSR_SUBJECT]      = "csr_subject",
	[ST_R_CSR_NONCE]        = "csr_nonce",
	[ST_R_CSR_KEY]          = "csr_key",
	[ST_R_KEY_SEEN]         = "key_seen_before",
	[ST_R_ATTEST_CHAIN]     = "attest_chain",
	[ST_R_ATTEST_SUBJECT]   = "attest_subject",
	[ST_R_ATTEST_SIGNATURE] = "attest_signature",
	[ST_R_ATTEST_OTHER_CSR] = "attest_other_csr",
	[ST_R_MFR_CA]           = "mfr_ca_invalid",
	[ST_R_READBACK]         = "readback_mismatch",
	[ST_R_PROOF]            = "proof_failed",
	[ST_R_INTERRUPTED]      = "interrupted",
	[ST_R_STAGE_DEADLINE]   = "stage_deadline",
	[ST_R_UNIT_DEADLINE]    = "unit_deadline",
	[ST_R_FLASH_XFER_SMALL] = "flash_transfer_size",
	[ST_R_FLASH_TOO_MANY_BLOCKS] = "flash_too_many_blocks",
	[ST_R_HSM_UNREACHABLE]  = "hsm_unreachable",
	[ST_R_LEDGER_UNREACHABLE] = "ledger_unreachable",
	[ST_R_PROVISIONED_ELSEWHERE] = "provisioned_elsewhere",
};

const char *st_reason_name(enum st_reason r)
{
	return (unsigned)r < ST_R_COUNT && reason_names[r] ? reason_names[r] : "unknown";
}

/* What each code means, in plain words without ids, serials or bays: the same
 * sentence for every unit with the code, so failures group (units.reason_plain). */
static const char *const reason_texts[ST_R_COUNT] = {
	[ST_R_NONE]             = "no error",
	[ST_R_INVALID]          = "bad argument or input",
	[ST_R_IO]               = "file or OS error",
	[ST_R_NOMEM]            = "the station ran out of memory",
	[ST_R_NOT_FOUND]        = "something needed was not found",
	[ST_R_EXISTS]           = "a duplicate was refused",
	[ST_R_DB]               = "the database failed",
	[ST_R_SCHEMA]           = "the database schema is wrong",
	[ST_R_TAMPER]           = "a check of integrity failed",
	[ST_R_CRYPTO]           = "a cryptographic operation failed",
	[ST_R_HSM]              = "the HSM failed",
	[ST_R_PIN]              = "the HSM PIN was refused",
	[ST_R_POLICY]           = "a policy refused the board",
	[ST_R_TIMEOUT]          = "an operation timed out",
	[ST_R_UNPLUGGED]        = "the board was unplugged",
	[ST_R_GARBLED]          = "garbled USB traffic",
	[ST_R_BAD_STATE]        = "the board was not ready",
	[ST_R_BUSY]             = "a resource was busy",
	[ST_R_USAGE]            = "usage error",
	[ST_R_CANCELED]         = "stopped",
	[ST_R_BOARD_TIMEOUT]    = "the board stopped answering",
	[ST_R_BOARD_ERROR]      = "the board reported an error",
	[ST_R_LOCK_REFUSED]     = "the board refused to lock",
	[ST_R_LOCK_UNCONFIRMED] = "the board did not report locked after LOCK",
	[ST_R_OPEN_FAILED]      = "the board could not be opened",
	[ST_R_FLASH_ERROR]      = "the board reported an error while flashing",
	[ST_R_FLASH_TIMEOUT]    = "the board stayed busy while flashing",
	[ST_R_FLASH_STATE]      = "the board's DFU interface was in a wrong state",
	[ST_R_FLASH_READBACK]   = "the image read back is not the one written",
	[ST_R_IMAGE_MISMATCH]   = "the image is not the one its hash names",
	[ST_R_MALFORMED_ID]     = "the board's id is malformed",
	[ST_R_ID_MISMATCH]      = "the board's id differs from its USB serial",
	[ST_R_CLONE]            = "the same id is on two bays (clone)",
	[ST_R_NOT_ON_LOT]       = "the board is not on the lot's allowlist",
	[ST_R_PROVISIONED]      = "the board is already provisioned",
	[ST_R_BOARD_LOCKED]     = "the board is locked (needs rework)",
	[ST_R_FIRMWARE_HASH]    = "the board reports another firmware than the profile's",
	[ST_R_NO_RANDOMNESS]    = "no randomness",
	[ST_R_CSR_MALFORMED]    = "the certificate request is malformed",
	[ST_R_CSR_SIGNATURE]    = "the certificate request's signature does not verify",
	[ST_R_CSR_SUBJECT]      = "the certificate request names another board",
	[ST_R_CSR_NONCE]        = "the certificate request lacks the nonce sent",
	[ST_R_CSR_KEY]          = "the certificate request's key is not the profile's",
	[ST_R_KEY_SEEN]         = "the board's public key was seen before (cloned key)",
	[ST_R_ATTEST_CHAIN]     = "the attestation certificate does not chain to the manufacturer",
	[ST_R_ATTEST_SUBJECT]   = "the attestation certificate is for another board",
	[ST_R_ATTEST_SIGNATURE] = "the attestation signature does not verify",
	[ST_R_ATTEST_OTHER_CSR] = "the board attested another certificate request",
	[ST_R_MFR_CA]           = "the manufacturer CA certificate does not parse",
	[ST_R_READBACK]         = "the certificate read back is not the one written",
	[ST_R_PROOF]            = "the board does not hold the certified key",
	[ST_R_INTERRUPTED]      = "the station stopped with the unit in flight",
	[ST_R_LEDGER_UNREACHABLE] = "the factory ledger is unreachable",
	[ST_R_PROVISIONED_ELSEWHERE] = "the id was provisioned at another station",
};

const char *st_reason_text(enum st_reason r)
{
	return (unsigned)r < ST_R_COUNT && reason_texts[r] ? reason_texts[r] : "unknown reason";
}

enum st_reason st_reason_from_name(const char *name)
{
	for (int r = 0; name && r < ST_R_COUNT; r++)
		if (reason_names[r] && !strcmp(reason_names[r], name))
			return (enum st_reason)r;
	return ST_R_NONE;
}
