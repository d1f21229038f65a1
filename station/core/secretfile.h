/*
 * secretfile: reading a secret (the HSM PIN, the ledger's password) from a file
 * under OpenSSH's StrictModes, the one place that rule lives.
 *
 * secretfile_read() opens path (O_NOFOLLOW, O_CLOEXEC) and accepts it only if it
 * is a regular file that no one else may read (mode & 077 == 0), owned by this
 * user or root, in a directory owned by this user or root that no one else may
 * write to (else another account could swap the file for its own).  It reads at
 * most cap - 1 bytes into out, strips the line end a file leaves, and refuses
 * an empty or too long secret.  Every message starts with what ("hsm: PIN
 * file", "ledger: password file") and the path, and never holds the secret;
 * the error is ST_EPIN with origin config.  On failure out is wiped.
 */
#ifndef STATION_SECRETFILE_H
#define STATION_SECRETFILE_H

#include <stddef.h>

#include "core/errbuf.h"

ST_MUST_CHECK int secretfile_read(const char *path, const char *what, char *out, size_t cap,
				  struct errbuf *err);

#endif
