/*
 * profile: a product's provisioning profile (human-edited INI file).
 *
 * Contract
 * - profile_parse() reads INI text with inih.  Validation is strict: an unknown
 *   section or key, a repeated key, a bad value, a missing required key, a line
 *   too long or an indented continuation line fails with "FILE:LINE: reason" in
 *   err and leaves *p zeroed.  Nothing is read from the files the profile names:
 *   `station run` checks them (image hash, token pre-flight).
 * - Relative paths are resolved against base_dir (the profile file's directory)
 *   so that the stored canonical text names absolute paths.
 * - profile_canonical() re-serialises a parsed profile in a fixed key order;
 *   that text is what the database stores and hashes (a comment or blank line
 *   changed in the source file does not make a new version).
 * - Trust anchors are pinned: [hsm] ca_cert_sha256 and [attestation]
 *   manufacturer_ca_sha256 are the SHA-256 of each certificate's DER (lower-case
 *   hex).  Optional in the file; `station profile add` computes a missing pin
 *   from the file it names, checks a given one, and stores both in the
 *   canonical text, so a stored profile always pins its anchors
 *   (profile_pin_anchors(); `station run` refuses a stored profile without).
 * - A profile never holds the HSM PIN: only the name of a file or of an
 *   environment variable that holds it.  A `pin` key is refused.
 * The file format is documented in docs/engineer.md ("Profiles").
 */
#ifndef STATION_PROFILE_H
#define STATION_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"

enum profile_key_type {
	PROFILE_KEY_EC_P256 = 0,
	PROFILE_KEY_EC_P384,
	PROFILE_KEY_RSA_3072,
};

/* inih reads lines of at most 199 characters; paths are bounded below that. */
#define PROFILE_PATH_MAX   160
#define PROFILE_NAME_MAX   64
#define PROFILE_LABEL_MAX  64
#define PROFILE_SAN_MAX    128
#define PROFILE_FILE_MAX   (64 * 1024)

/* Defaults of the [policy] and [deadlines] whole-number keys (1..100 rejects,
 * 1..86400 s window, 1..3600 s deadlines). */
#define PROFILE_DEF_MAX_REJECTS      3
#define PROFILE_DEF_REJECT_WINDOW_S  600
#define PROFILE_DEF_UNIT_S           600
#define PROFILE_DEF_FLASH_S          300
#define PROFILE_DEF_KEYGEN_S         120
#define PROFILE_DEF_STAGE_S          60

struct profile {
	char     name[PROFILE_NAME_MAX + 1];         /* [product] name: the profile's name */
	uint16_t usb_vid, usb_pid;                   /* [product] usb = VVVV:PPPP */
	char     firmware_image[PROFILE_PATH_MAX + 1];
	char     firmware_sha256[65];                /* lower-case hex */
	enum profile_key_type key_type;              /* [key] type, default ec-p256 */
	int      validity_days;                      /* [certificate] 1..36500 */
	char     san_template[PROFILE_SAN_MAX + 1];  /* "" or URI:/DNS: with {unique_id} */
	char     hsm_module[PROFILE_PATH_MAX + 1];
	char     hsm_softhsm2_conf[PROFILE_PATH_MAX + 1]; /* optional: SoftHSM's config (QA) */
	char     hsm_token[33];                      /* PKCS#11 token labels are 32 bytes */
	char     hsm_ca_key[PROFILE_LABEL_MAX + 1];
	char     hsm_ca_cert[PROFILE_PATH_MAX + 1];
	char     hsm_audit_key[PROFILE_LABEL_MAX + 1];
	char     hsm_pin_file[PROFILE_PATH_MAX + 1]; /* exactly one of pin_file / pin_env */
	char     hsm_pin_env[PROFILE_LABEL_MAX + 1];
	char     hsm_ca_cert_sha256[65];             /* [hsm] ca_cert_sha256: pin, hex */
	char     mfr_ca_cert[PROFILE_PATH_MAX + 1];  /* [attestation] manufacturer_ca */
	char     mfr_ca_sha256[65];                  /* [attestation] manufacturer_ca_sha256 */
	int      max_failures_in_row;                /* [policy] default 3 */
	int      max_rejects;                        /* [policy] REJECTs of one board ... */
	int      reject_window_s;                    /* ... within this window hold its bay */
	int      deadline_unit_s;                    /* [deadlines] the whole unit */
	int      deadline_flash_s;                   /* [deadlines] flash (download + read-back) */
	int      deadline_keygen_s;                  /* [deadlines] keygen */
	int      deadline_stage_s;                   /* [deadlines] every other stage */
	/* Set by profile_load() (app/profile_db.h), empty after a parse. */
	int      version;
	char     hash[65];
};

/* Parses text (len bytes) named filename (for messages).  base_dir may be NULL
 * when every path in the text is already absolute (a stored profile). */
ST_MUST_CHECK int profile_parse(const char *text, size_t len, const char *filename,
				const char *base_dir, struct profile *p, struct errbuf *err);

/* Reads and parses a file (at most PROFILE_FILE_MAX bytes). */
ST_MUST_CHECK int profile_parse_file(const char *path, struct profile *p, struct errbuf *err);

/* The canonical text: malloc'd, NUL-terminated; *len excludes the NUL. */
ST_MUST_CHECK int profile_canonical(const struct profile *p, char **out, size_t *len,
				    struct errbuf *err);

/* Fills a missing pin from the certificate file it names, and checks a given
 * one against it: ST_ETAMPER ("PATH has SHA-256 X, not the pinned Y") when a
 * file does not match.  *filled says which pins were computed (1: CA, 2:
 * manufacturer CA). */
ST_MUST_CHECK int profile_pin_anchors(struct profile *p, int *filled, struct errbuf *err);

/* Checks one certificate (DER) against a pin: ST_ETAMPER naming what and
 * path when the pin is missing or differs. */
ST_MUST_CHECK int profile_pin_check(const char *what, const char *path, const char *pin,
				    const uint8_t *der, size_t der_len, struct errbuf *err);

/* "ec-p256", "ec-p384", "rsa-3072". */
const char *profile_key_type_name(enum profile_key_type t);

/* The subjectAltName for one board: the template with {unique_id} replaced,
 * "" when the profile has none. */
ST_MUST_CHECK int profile_san_for(const struct profile *p, const char *unique_id, char *out,
				  size_t outsz, struct errbuf *err);

#endif
