/*
 * hsm: the station's CA token, reached over PKCS#11 through libp11.
 *
 * Contract
 * - struct hsm_config says where the token is and how to log in.  It is filled
 *   from explicit options (hsm_config_set), from the [hsm] section of an INI file
 *   (hsm_config_load_ini), or by another parser that meets the same keys (a
 *   product profile embeds them: call hsm_config_set for each key of its [hsm]
 *   section).  Keys are listed in docs/security.md ("## HSM").
 * - hsm_open() loads the module, finds the token by its label (never by slot
 *   number), logs in once, finds the CA key (by label or id), loads the CA
 *   certificate, and runs a pre-flight: a test vector is signed in the token and
 *   verified with the token's public key and with the CA certificate, so a broken
 *   token or a certificate that does not match the key fails here, before the
 *   first board.  The audit key, when configured, gets the same pre-flight.
 * - The PIN comes from a file (mode 0600 or stricter), from an environment
 *   variable (consumed: wiped and unset after reading), or from a no-echo prompt
 *   on the controlling terminal; never from argv.  It is wiped
 *   (OPENSSL_cleanse) right after login.
 * - Exactly one login attempt is made: a wrong PIN returns ST_EPIN at once (no
 *   retry loop that would burn the token's PIN counter).  The transient
 *   CKR_GENERAL_ERROR SoftHSM returns when two processes open one token at the
 *   same moment is retried a few times with a short random back-off; failures
 *   before the login (module load, slot listing: stations starting together
 *   on one remote token) are retried until a 5 s deadline.
 * - A struct hsm may be used by several threads at once for signing (libp11
 *   keeps a session pool per slot); open and close are not concurrent.
 *   PKCS#11 state is per process (one C_Initialize, one login for all sessions)
 *   and libp11 finalises the module on close, so a process holds at most one
 *   open struct hsm: a second hsm_open() returns ST_EBUSY.  libp11
 *   re-initialises after fork: open the token after forking.
 */
#ifndef STATION_HSM_H
#define STATION_HSM_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/errbuf.h"

#define HSM_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define HSM_PATH_MAX  512
#define HSM_LABEL_MAX 64
#define HSM_PIN_MAX   256

struct hsm_config {
	char module[HSM_PATH_MAX];        /* PKCS#11 module, default HSM_DEFAULT_MODULE */
	char softhsm2_conf[HSM_PATH_MAX]; /* if set, exported as SOFTHSM2_CONF before loading */
	char token[HSM_LABEL_MAX];        /* token label (required) */
	char ca_key[HSM_LABEL_MAX];       /* CA private key label ... */
	char ca_key_id[HSM_LABEL_MAX];    /* ... or its CKA_ID in hex (one of the two) */
	char ca_cert[HSM_PATH_MAX];       /* CA certificate, PEM (required) */
	char ca_cert_sha256[65];          /* optional pin: SHA-256 of its DER, hex; the
					     certificate read must match it */
	char audit_key[HSM_LABEL_MAX];    /* audit checkpoint key label (optional) */
	char pin_file[HSM_PATH_MAX];      /* PIN source: a file ... */
	char pin_env[HSM_LABEL_MAX];      /* ... or an environment variable ... */
	int  pin_prompt;                  /* ... or 1: prompt on the terminal (the default
					     when neither of the others is set) */
};

/* Defaults: the SoftHSM module, prompt for the PIN. */
void hsm_config_init(struct hsm_config *c);

/* Sets one key ("module", "softhsm2_conf", "token", "ca_key", "ca_key_id",
 * "ca_cert", "ca_cert_sha256", "audit_key", "pin_file", "pin_env", "pin_prompt").  Returns
 * ST_ENOTFOUND for an unknown key (so an embedding parser can report it with its
 * own file:line), ST_EINVAL for a bad value. */
ST_MUST_CHECK int hsm_config_set(struct hsm_config *c, const char *key, const char *value,
				 struct errbuf *err);

/* Reads the [hsm] section of an INI file (other sections are ignored).  Errors
 * name path:line. */
ST_MUST_CHECK int hsm_config_load_ini(struct hsm_config *c, const char *path, struct errbuf *err);

/* Checks that the required keys are present and consistent. */
ST_MUST_CHECK int hsm_config_check(const struct hsm_config *c, struct errbuf *err);

struct hsm;

ST_MUST_CHECK int  hsm_open(const struct hsm_config *c, struct hsm **out, struct errbuf *err);
void hsm_close(struct hsm *h);

/* The CA: certificate and private key (owned by h), and the digest its
 * signatures use (SHA-384 for a P-384 key, SHA-256 otherwise). */
X509 *hsm_ca_cert(const struct hsm *h);
EVP_PKEY *hsm_ca_key(const struct hsm *h);
const EVP_MD *hsm_ca_md(const struct hsm *h);
const char *hsm_token_label(const struct hsm *h);

/* Signs msg with the audit key (ECDSA with SHA-256, DER signature).  *sig is
 * OPENSSL_malloc'd.  ST_ENOTFOUND when no audit key is configured. */
ST_MUST_CHECK int hsm_audit_sign(struct hsm *h, const uint8_t *msg, size_t len,
				 uint8_t **sig, size_t *sig_len, struct errbuf *err);
/* The audit key's label and public key (DER SubjectPublicKeyInfo, owned by h). */
const char *hsm_audit_key_label(const struct hsm *h);
ST_MUST_CHECK int hsm_audit_pubkey(const struct hsm *h, const uint8_t **der, size_t *len);

/*
 * Transport failures and reopening (a token behind p11-kit's remoting, a
 * token that was unplugged).  hsm_ckr_is_transport() is the one list of the
 * PKCS#11 codes that mean the transport or the session is gone
 * (CKR_GENERAL_ERROR, CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED, CKR_SESSION_CLOSED,
 * CKR_SESSION_HANDLE_INVALID, CKR_TOKEN_NOT_PRESENT, CKR_TOKEN_NOT_RECOGNIZED,
 * CKR_USER_NOT_LOGGED_IN, CKR_CRYPTOKI_NOT_INITIALIZED).  A signature that
 * fails with one marks the token down: its error has reason
 * ST_R_HSM_UNREACHABLE, and every signature after it fails at once with the
 * same reason, without touching the token, until hsm_reopen() succeeds.
 * hsm_reopen() makes ONE attempt (the caller owns the backoff): unload and
 * load the module, find the token by label, log in once with the PIN kept
 * from hsm_open (a page locked and left out of core dumps), the keys through
 * the pre-flight again.  A refused PIN is never tried again: that call and
 * every later one return ST_EPIN.  Any other failure returns with reason
 * ST_R_HSM_UNREACHABLE (try again later).  Signers wait while a reopen runs.
 */
int hsm_ckr_is_transport(unsigned long ckr);
int hsm_is_down(struct hsm *h);
ST_MUST_CHECK int hsm_reopen(struct hsm *h, struct errbuf *err);
/* Signs a certificate with the CA key (X509_sign) under the token's lock.
 * *touched is 0 when the token was not asked (it is down): nothing can have
 * been signed. */
ST_MUST_CHECK int hsm_sign_x509(struct hsm *h, X509 *x, int *touched, struct errbuf *err);

/* Reads the PIN from the configured source into pin (NUL-terminated).  Exposed
 * for tests; hsm_open() uses it and wipes the buffer. */
ST_MUST_CHECK int hsm_pin_read(const struct hsm_config *c, char pin[HSM_PIN_MAX],
			       struct errbuf *err);

/* Counters for tests: login attempts made by this process. */
unsigned long hsm_login_attempts(void);

#endif
