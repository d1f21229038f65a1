/*
 * hsm_module: which PKCS#11 modules the station may load (issue 12).
 *
 * Contract
 * - A module is code run inside the station with the token's PIN: its path
 *   never comes from the database alone.  hsm_module_allowed() admits a path
 *   when its directory (resolved) is one of the system's PKCS#11 module
 *   directories (hsm_module_dirs[]: SoftHSM's and the Debian multiarch
 *   pkcs11 directory, which holds p11-kit-client.so), owned by root and
 *   writable by no one else; or when it names the same file as the station
 *   configuration file's `[station] pkcs11_module`.  Anything else is
 *   refused (ST_EPOLICY) before dlopen.
 * - The station configuration file is /etc/station/station.conf, or the path
 *   in the environment variable STATION_CONF (tests, a second station on one
 *   host).  Either is read only when the file and its directory are owned by
 *   root or by the user running the station and are not writable by group or
 *   others; otherwise it is refused (ST_EPOLICY), whatever names it.  A
 *   missing file is no configured module.  INI read with inih: section
 *   [station], key pkcs11_module (an absolute path); another key or section
 *   is refused with file:line.
 * - hsm_open() and hsm_reopen() call hsm_module_allowed() on every load:
 *   one rule, in one place.  docs/security.md "PKCS#11 modules".
 */
#ifndef STATION_HSM_MODULE_H
#define STATION_HSM_MODULE_H

#include <stddef.h>

#include "core/errbuf.h"

#define HSM_STATION_CONF "/etc/station/station.conf"
#define HSM_STATION_CONF_ENV "STATION_CONF"

extern const char *const hsm_module_dirs[];

/* The configuration file's pkcs11_module into out ("" when the file or the
 * key is absent). */
ST_MUST_CHECK int hsm_station_conf_module(char *out, size_t outsz, struct errbuf *err);

ST_MUST_CHECK int hsm_module_allowed(const char *module, struct errbuf *err);

#endif
