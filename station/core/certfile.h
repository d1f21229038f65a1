/*
 * certfile: one X.509 certificate (PEM or DER) or one PEM public key from a
 * file.
 *
 * certfile_load() reads path (at most max bytes, core/fileio.h), takes the
 * first PEM certificate in it, or, when the file holds no PEM block, the whole
 * file as one DER certificate (nothing after it), and hands back what the
 * caller asks for: the parsed X509 (x, the caller frees it with X509_free), its
 * DER encoding (der and der_len, malloc'd, the caller frees it), or both; a
 * NULL out-pointer means "not wanted".  On failure nothing is returned and the
 * message names the file: "PATH: not a PEM certificate (nor DER)" is
 * ST_ECRYPTO; the read errors are those of fileio_read() (what = NULL).
 * The OpenSSL error queue is left empty.
 */
#ifndef STATION_CERTFILE_H
#define STATION_CERTFILE_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/x509.h>

#include "core/errbuf.h"

#define CERTFILE_MAX (256 * 1024)   /* a default bound: far above any real certificate */

ST_MUST_CHECK enum st_rc certfile_load(const char *path, size_t max, X509 **x, uint8_t **der,
				       size_t *der_len, struct errbuf *err);

/* A PEM public key (SubjectPublicKeyInfo) from a file, bounded like
 * certfile_load(): *key is the parsed key (the caller frees it with
 * EVP_PKEY_free).  "PATH: not a PEM public key" is ST_ECRYPTO; the read
 * errors are fileio_read()'s. */
ST_MUST_CHECK enum st_rc certfile_load_pubkey(const char *path, size_t max, EVP_PKEY **key,
					      struct errbuf *err);

#endif
