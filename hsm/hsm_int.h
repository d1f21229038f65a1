/*
 * hsm_int: what hsm/ modules share and nobody else may use.
 */
#ifndef STATION_HSM_INT_H
#define STATION_HSM_INT_H

#include "hsm/hsm.h"

/* The loaded module's path and the token's slot id, with the token held
 * against a reopen (read lock) until hsm_p11_release().  The process is logged
 * in (hsm_open), so a session opened on the slot is a user session.  Refused
 * (ST_R_HSM_UNREACHABLE) while the token is down. */
ST_MUST_CHECK int hsm_p11_hold(struct hsm *h, char module[HSM_PATH_MAX],
			       unsigned long *slot_id, struct errbuf *err);
void hsm_p11_release(struct hsm *h);

#endif
