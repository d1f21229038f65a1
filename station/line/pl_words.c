/*
 * pl_words: the words an operator reads for a failed unit (pl_int.h,
 * pl_plain_words).  A failure below the pipeline (board, USB, HSM, database,
 * ledger) carries a message that names transfers, states and codes; the
 * operator gets what happened, in words read from a metre away, and the
 * engineer keeps the code and the full message in the unit's record.
 * Decided on the codes alone (rc, the error's origin and reason), never on
 * the text of a message.
 */
#include "line/pl_int.h"

#include <stdio.h>

/* What the stage was doing, for a sentence an operator reads from a metre away. */
static const char *doing(enum ev_stage s)
{
	switch (s) {
	case EV_STAGE_DETECT:       return "opening the board";
	case EV_STAGE_IDENTIFY:     return "reading the board's id";
	case EV_STAGE_ALLOWLIST:    return "checking the allowlist";
	case EV_STAGE_FLASH:        return "writing the image";
	case EV_STAGE_VERIFY_IMAGE: return "checking the image";
	case EV_STAGE_KEYGEN:       return "generating the key";
	case EV_STAGE_CSR:          return "getting the certificate request";
	case EV_STAGE_CSR_POLICY:   return "checking the certificate request";
	case EV_STAGE_ATTEST:       return "checking the board's attestation";
	case EV_STAGE_RESERVE:
	case EV_STAGE_SIGN:         return "signing the certificate";
	case EV_STAGE_INJECT:       return "writing the certificate";
	case EV_STAGE_PROVE:        return "reading back the certificate";
	case EV_STAGE_LOCK:         return "locking the board";
	case EV_STAGE_COMMIT:       return "recording the unit";
	default:                    return "working";
	}
}

int pl_plain_words(enum ev_stage s, int rc, const struct errbuf *err, char *out, size_t cap)
{
	const char *what = doing(s);
	/* the board client, the USB transport, the DFU host */
	int below = err->origin == ST_ORIGIN_BOARD || err->origin == ST_ORIGIN_USB;

	/* the line's own deadline: its message is already plain */
	if (err->reason == ST_R_STAGE_DEADLINE || err->reason == ST_R_UNIT_DEADLINE)
		return 0;
	if (err->reason == ST_R_FLASH_XFER_SMALL) {
		snprintf(out, cap, "board's DFU block size is too small: not flashed");
		return 1;
	}
	if (err->reason == ST_R_FLASH_TOO_MANY_BLOCKS) {
		snprintf(out, cap, "image needs too many DFU blocks for this board: not flashed");
		return 1;
	}
	/* the board said no, with its own error code */
	if (err->reason == ST_R_LOCK_REFUSED && s == EV_STAGE_LOCK) {
		snprintf(out, cap, "board refused to lock");
		return 1;
	}
	if (err->reason == ST_R_BOARD_ERROR || err->reason == ST_R_LOCK_REFUSED) {
		snprintf(out, cap, "board reported an error while %s", what);
		return 1;
	}
	if (err->reason == ST_R_HSM_UNREACHABLE) {
		snprintf(out, cap, "the HSM is unreachable (the station reconnects by itself)");
		return 1;
	}
	if (err->reason == ST_R_LEDGER_UNREACHABLE) {
		snprintf(out, cap, "the factory ledger is unreachable (the station reconnects"
			 " by itself)");
		return 1;
	}
	switch (rc) {
	case ST_ETIMEOUT:
		snprintf(out, cap, "board stopped answering while %s", what);
		return 1;
	case ST_ENODEV:
		snprintf(out, cap, "board was unplugged while %s", what);
		return 1;
	case ST_EPROTO:
		snprintf(out, cap, "garbled USB traffic while %s (cable?)", what);
		return 1;
	case ST_ESTATE:
		snprintf(out, cap, "board was not ready for %s", what);
		return 1;
	case ST_EBUSY:
	case ST_ENOTFOUND:
		snprintf(out, cap, "board could not be opened");
		return 1;
	case ST_EHSM:
	case ST_EPIN:
		snprintf(out, cap, "the HSM failed while %s", what);
		return 1;
	case ST_EDB:
		snprintf(out, cap, "the database failed while %s", what);
		return 1;
	case ST_ENOMEM:
		snprintf(out, cap, "the station ran out of memory while %s", what);
		return 1;
	case ST_ETAMPER:
		if (err->reason == ST_R_FLASH_READBACK && s == EV_STAGE_FLASH) {
			snprintf(out, cap, "image read back from the board is not the one written");
			return 1;
		}
		break;
	default:
		break;
	}
	if (below) {
		snprintf(out, cap, "%s failed (board error)", what);
		return 1;
	}
	return 0;
}
