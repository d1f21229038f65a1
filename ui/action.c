/* ui_action: see action.h. */
#include "ui/action.h"

#include <stddef.h>

/* Short enough to fit a 40-column tile in one line; ask what happened, not how. */
static const struct ui_action_row rows[] = {
	{ ST_R_TIMEOUT,          "took too long",              NULL },
	{ ST_R_UNPLUGGED,        "unplugged during work",      "plug it in again" },
	{ ST_R_GARBLED,          "bad USB link",               NULL },
	{ ST_R_BAD_STATE,        "board not ready",            NULL },
	{ ST_R_CANCELED,         "line stopped",               "plug it in again later" },
	{ ST_R_BOARD_TIMEOUT,    "board stopped answering",    NULL },
	{ ST_R_BOARD_ERROR,      "board reported an error",    NULL },
	{ ST_R_LOCK_REFUSED,     "board refused to lock",      NULL },
	{ ST_R_LOCK_UNCONFIRMED, "board did not lock",         NULL },
	{ ST_R_OPEN_FAILED,      "board could not be opened",  NULL },
	{ ST_R_FLASH_ERROR,      "flashing failed",            NULL },
	{ ST_R_FLASH_TIMEOUT,    "flashing took too long",     NULL },
	{ ST_R_FLASH_STATE,      "flashing failed",            NULL },
	{ ST_R_FLASH_READBACK,   "flash check failed",         NULL },
	{ ST_R_IMAGE_MISMATCH,   "wrong firmware file",        UI_ACTION_HELD },
	{ ST_R_MALFORMED_ID,     "unreadable board id",        NULL },
	{ ST_R_ID_MISMATCH,      "board id does not match",    NULL },
	{ ST_R_CLONE,            "same id in two bays (copy)", NULL },
	{ ST_R_NOT_ON_LOT,       "not on this lot's list",     NULL },
	{ ST_R_PROVISIONED,      "already done before",        NULL },
	{ ST_R_BOARD_LOCKED,     "board is locked",            NULL },
	{ ST_R_FIRMWARE_HASH,    "wrong firmware on board",    NULL },
	{ ST_R_NO_RANDOMNESS,    "station fault",              UI_ACTION_HELD },
	{ ST_R_CSR_MALFORMED,    "bad key request",            NULL },
	{ ST_R_CSR_SIGNATURE,    "bad key request",            NULL },
	{ ST_R_CSR_SUBJECT,      "key request for other id",   NULL },
	{ ST_R_CSR_NONCE,        "bad key request",            NULL },
	{ ST_R_CSR_KEY,          "wrong key type",             NULL },
	{ ST_R_KEY_SEEN,         "key seen before (copy)",     NULL },
	{ ST_R_ATTEST_CHAIN,     "not a genuine board",        NULL },
	{ ST_R_ATTEST_SUBJECT,   "not a genuine board",        NULL },
	{ ST_R_ATTEST_SIGNATURE, "not a genuine board",        NULL },
	{ ST_R_ATTEST_OTHER_CSR, "not a genuine board",        NULL },
	{ ST_R_MFR_CA,           "station set-up fault",       UI_ACTION_HELD },
	{ ST_R_READBACK,         "certificate check failed",   NULL },
	{ ST_R_PROOF,            "key check failed",           NULL },
	{ ST_R_INTERRUPTED,      "station stopped mid-way",    "plug it in again" },
	{ ST_R_STAGE_DEADLINE,   "a step took too long",       NULL },
	{ ST_R_UNIT_DEADLINE,    "took too long",              NULL },
	{ ST_R_HSM_UNREACHABLE,  "signing device offline",     "plug it in again later" },
};

const struct ui_action_row *ui_action_table(int *n)
{
	*n = (int)(sizeof(rows) / sizeof(rows[0]));
	return rows;
}

static const struct ui_action_row *row_of(enum st_reason code)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (rows[i].code == code)
			return &rows[i];
	return NULL;
}

const char *ui_action_plain(enum st_reason code)
{
	const struct ui_action_row *r = row_of(code);

	return r ? r->plain : NULL;
}

const char *ui_action_for(enum ui_verdict v, enum st_reason code)
{
	/* a REJECT goes to QA whatever the cause: only a FAIL's action varies */
	const struct ui_action_row *r = v == UI_VERDICT_FAIL ? row_of(code) : NULL;

	if (r && r->action)
		return r->action;
	switch (v) {
	case UI_VERDICT_PASS:   return UI_ACTION_PASS;
	case UI_VERDICT_FAIL:   return UI_ACTION_FAIL;
	case UI_VERDICT_REJECT: return UI_ACTION_REJECT;
	default:                return "";
	}
}
