/* certfile: see certfile.h. */
#include "core/certfile.h"
#include "core/fileio.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>

static X509 *parse(const uint8_t *buf, size_t len)
{
	const unsigned char *p = buf;
	X509 *x = NULL;
	BIO *bio;

	if (len > INT_MAX)
		return NULL;
	if (memmem(buf, len, "-----BEGIN", 10)) {
		if ((bio = BIO_new_mem_buf(buf, (int)len))) {
			x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
			BIO_free(bio);
		}
		return x;
	}
	x = d2i_X509(NULL, &p, (long)len);
	if (x && p != buf + len) {	/* trailing bytes: not one DER certificate */
		X509_free(x);
		x = NULL;
	}
	return x;
}

enum st_rc certfile_load(const char *path, size_t max, X509 **xp, uint8_t **der,
			 size_t *der_len, struct errbuf *err)
{
	uint8_t *buf = NULL;
	unsigned char *enc = NULL;
	size_t len;
	X509 *x;
	int rc, n = 0;

	if (xp)
		*xp = NULL;
	if (der) {
		*der = NULL;
		*der_len = 0;
	}
	if ((rc = fileio_read(path, max, NULL, &buf, &len, err)) != ST_OK)
		return rc;
	x = parse(buf, len);
	free(buf);
	ERR_clear_error();
	if (!x)
		return errbuf_set(err, ST_ECRYPTO, "%s: not a PEM certificate (nor DER)", path);
	if (der) {
		if ((n = i2d_X509(x, &enc)) <= 0) {
			X509_free(x);
			ERR_clear_error();
			return errbuf_set(err, ST_ECRYPTO, "%s: cannot encode the certificate", path);
		}
		if (!(*der = malloc((size_t)n))) {
			OPENSSL_free(enc);
			X509_free(x);
			return errbuf_set(err, ST_ENOMEM, "%s: out of memory", path);
		}
		memcpy(*der, enc, (size_t)n);
		*der_len = (size_t)n;
		OPENSSL_free(enc);
	}
	if (xp)
		*xp = x;
	else
		X509_free(x);
	return ST_OK;
}

enum st_rc certfile_load_pubkey(const char *path, size_t max, EVP_PKEY **key,
				struct errbuf *err)
{
	uint8_t *buf = NULL;
	size_t len;
	BIO *bio;
	int rc;

	*key = NULL;
	if ((rc = fileio_read(path, max, NULL, &buf, &len, err)) != ST_OK)
		return rc;
	if (len <= INT_MAX && (bio = BIO_new_mem_buf(buf, (int)len))) {
		*key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
		BIO_free(bio);
	}
	free(buf);
	ERR_clear_error();
	if (!*key)
		return errbuf_set(err, ST_ECRYPTO, "%s: not a PEM public key", path);
	return ST_OK;
}
