/*
 * hsm_int: what hsm/ modules share and nobody else may use.
 */
#ifndef STATION_HSM_INT_H
#define STATION_HSM_INT_H

#include "hsm/hsm.h"

/* The loaded module's path, the token's slot id and the kept PIN (for a module
 * whose every function list is a connection of its own, p11-kit-client: not
 * logged in), with the token held against a reopen (read lock) until
 * hsm_p11_release().  Refused (ST_R_HSM_UNREACHABLE) while the token is down. */
ST_MUST_CHECK int hsm_p11_hold(struct hsm *h, char module[HSM_PATH_MAX],
			       unsigned long *slot_id, const char **pin, struct errbuf *err);
void hsm_p11_release(struct hsm *h);

#endif
