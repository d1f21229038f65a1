/*
 * allowlist_sig: the manufacturer's detached signature over an allowlist file
 * (issue 12: a signed allowlist is signed by the manufacturer).
 *
 * Contract
 * - allowlist_sig_verify() accepts the signature only when the signer
 *   certificate is within its dates, is not the CA itself, chains to the
 *   manufacturer CA (the one trusted certificate: X509_verify_cert), carries a
 *   keyUsage extension with digitalSignature, and its key verifies the
 *   signature (SHA-256, as `openssl dgst -sha256 -sign` writes it) over the
 *   file's bytes.  Any failure is ST_ECRYPTO, names the files, and nothing is
 *   imported.
 * - It fills the SHA-256 of the signer's and of the CA's certificate (DER,
 *   hex) and the signer's subject: the audit event records them, and the lot's
 *   CA is pinned by its fingerprint (db/allowlist.c).
 */
#ifndef STATION_DB_ALLOWLIST_SIG_H
#define STATION_DB_ALLOWLIST_SIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"

struct allowlist_signer {
	char subject[256];
	char signer_sha256[65];
	char ca_sha256[65];
};

ST_MUST_CHECK int allowlist_sig_verify(const uint8_t *data, size_t len, const char *sig_path,
				       const char *signer_path, const char *ca_path,
				       struct allowlist_signer *out, struct errbuf *err);

#endif
