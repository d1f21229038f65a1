/*
 * errbuf: the error convention every module follows.
 *
 * A function that can fail returns an st_rc (0 = ST_OK) and, on failure, fills a
 * caller-owned struct errbuf with one human sentence: what failed and why, naming
 * the file:line, the bay and stage, or the object concerned.  The message never
 * contains a secret (PIN, key material).  Nothing below main() calls exit().
 *
 * Callers that add context use errbuf_prefix(): "bay 1-2: flash: " + callee text.
 * A NULL errbuf is allowed everywhere and means "caller does not want the text".
 *
 * Besides the text, an errbuf carries what a program decides on: the st_rc,
 * the origin (which side of the station the cause is on) and a stable reason
 * code (one per distinct cause the line can meet, docs/architecture.md
 * "Reason codes").  They are set where the cause arises (errbuf_setr) and
 * kept by errbuf_prefix(), so no caller ever matches the message text: the
 * words are for people and may be reworded freely.  errbuf_set() sets the
 * generic origin and reason of its st_rc (ST_ETIMEOUT: reason "timeout").
 */
#ifndef STATION_ERRBUF_H
#define STATION_ERRBUF_H

#include <stddef.h>

/*
 * ST_MUST_CHECK marks a function whose result must be looked at: every public
 * function returning an st_rc, and the predicates whose failure the caller
 * must act on (a cut copy, a bad hex string).  The compiler then warns, and
 * -Werror refuses, a call whose result is dropped.
 *
 * GCC does not let a cast to void silence warn_unused_result.  Where ignoring
 * the result is right (best-effort cleanup on a path that already failed, an
 * audit line whose loss is reported elsewhere), say so with ST_IGNORE():
 *     ST_IGNORE(db_unit_note(db, id, &e));   -- best effort: the unit already failed
 * with a comment saying why.  Nothing else is used to drop a result, so
 * `grep ST_IGNORE` lists every place that does.  errbuf_set() and its kin are
 * not marked: they hand back the code the caller just chose, for
 * `return errbuf_set(...)`, and are as often called for the message alone.
 */
#define ST_MUST_CHECK __attribute__((warn_unused_result))
static inline void st_ignore_(int rc) { (void)rc; }
#define ST_IGNORE(call) st_ignore_((int)(call))

enum st_rc {
	ST_OK = 0,
	ST_EINVAL,     /* bad argument or bad input file (names file:line) */
	ST_EIO,        /* filesystem / OS error */
	ST_ENOMEM,
	ST_ENOTFOUND,  /* no such lot, profile, token, key, certificate ... */
	ST_EEXIST,     /* duplicate: id already imported, serial taken ... */
	ST_EDB,        /* SQLite error */
	ST_ESCHEMA,    /* database newer than this binary, or migration failed */
	ST_ETAMPER,    /* audit chain or signature check failed */
	ST_ECRYPTO,    /* OpenSSL / signature / certificate failure */
	ST_EHSM,       /* PKCS#11 token failure */
	ST_EPIN,       /* wrong or missing PIN */
	ST_EPOLICY,    /* CSR / allowlist / profile policy refused the request */
	ST_ETIMEOUT,   /* a transfer or an operation timed out */
	ST_ENODEV,     /* the board went away */
	ST_EPROTO,     /* malformed frame, bad CRC, unexpected answer */
	ST_ESTATE,     /* command not allowed in this state (e.g. after LOCK) */
	ST_EBUSY,      /* resource held (bay held, token busy) */
	ST_EUSAGE,     /* command-line misuse: exit status 2 */
	ST_ECANCELED,  /* stopped by the operator or shutdown */
	ST_RC_COUNT
};

/* Where a cause arises.  Names: st_origin_name(). */
enum st_origin {
	ST_ORIGIN_NONE = 0,   /* not said (a generic errbuf_set) */
	ST_ORIGIN_BOARD,      /* the board said or did it (its answer, its DFU state) */
	ST_ORIGIN_USB,        /* the USB transport (libusb, framing) */
	ST_ORIGIN_HSM,        /* the PKCS#11 token */
	ST_ORIGIN_DB,         /* the SQLite database */
	ST_ORIGIN_POLICY,     /* a rule of the line refused the board or its data */
	ST_ORIGIN_CONFIG,     /* the profile, the image, the manufacturer CA */
	ST_ORIGIN_IO,         /* files and the OS */
	ST_ORIGIN_STATION,    /* the station itself: memory, randomness, a stop */
	ST_ORIGIN_COUNT
};

/*
 * Why, as a stable code.  The names (st_reason_name) are stored with each unit
 * and shown in JSON: append new codes, never renumber or rename one.  The
 * first group is the generic reason of each st_rc (what errbuf_set gives);
 * the rest are the distinct causes, set with errbuf_setr where they arise.
 */
enum st_reason {
	ST_R_NONE = 0,          /* no error */
	/* generic, one per st_rc */
	ST_R_INVALID,           /* ST_EINVAL */
	ST_R_IO,                /* ST_EIO */
	ST_R_NOMEM,             /* ST_ENOMEM */
	ST_R_NOT_FOUND,         /* ST_ENOTFOUND */
	ST_R_EXISTS,            /* ST_EEXIST */
	ST_R_DB,                /* ST_EDB */
	ST_R_SCHEMA,            /* ST_ESCHEMA */
	ST_R_TAMPER,            /* ST_ETAMPER */
	ST_R_CRYPTO,            /* ST_ECRYPTO */
	ST_R_HSM,               /* ST_EHSM */
	ST_R_PIN,               /* ST_EPIN */
	ST_R_POLICY,            /* ST_EPOLICY */
	ST_R_TIMEOUT,           /* ST_ETIMEOUT */
	ST_R_UNPLUGGED,         /* ST_ENODEV: the board went away */
	ST_R_GARBLED,           /* ST_EPROTO: garbled USB traffic */
	ST_R_BAD_STATE,         /* ST_ESTATE */
	ST_R_BUSY,              /* ST_EBUSY */
	ST_R_USAGE,             /* ST_EUSAGE */
	ST_R_CANCELED,          /* ST_ECANCELED */
	/* the board and its USB link */
	ST_R_BOARD_TIMEOUT,     /* no answer, or busy past its limit */
	ST_R_BOARD_ERROR,       /* the board answered with an error status (E...) */
	ST_R_LOCK_REFUSED,      /* the board answered LOCK with EREFUSED */
	ST_R_LOCK_UNCONFIRMED,  /* LOCK answered OK but the board is not locked */
	ST_R_OPEN_FAILED,       /* the board could not be opened (gone, held) */
	ST_R_FLASH_ERROR,       /* DFU: the device reported an error (bStatus) */
	ST_R_FLASH_TIMEOUT,     /* DFU: still busy past the limit */
	ST_R_FLASH_STATE,       /* DFU: the interface is in a state it must not be */
	ST_R_FLASH_READBACK,    /* DFU: the image read back is not the one written */
	ST_R_IMAGE_MISMATCH,    /* the image is not the one its hash names: not flashed */
	/* the line's checks */
	ST_R_MALFORMED_ID,      /* the board's id is not 24 upper-case hex digits */
	ST_R_ID_MISMATCH,       /* the board's id differs from its USB serial */
	ST_R_CLONE,             /* the same id on two bays at once */
	ST_R_NOT_ON_LOT,        /* the id is not on the lot's allowlist */
	ST_R_PROVISIONED,       /* the id already has a PASS */
	ST_R_BOARD_LOCKED,      /* the board is locked: it needs rework */
	ST_R_FIRMWARE_HASH,     /* the board reports another firmware than the profile's */
	ST_R_NO_RANDOMNESS,     /* no random bytes for a nonce or a challenge */
	ST_R_CSR_MALFORMED,     /* the CSR is too large or not one DER request */
	ST_R_CSR_SIGNATURE,     /* the CSR's self-signature does not verify */
	ST_R_CSR_SUBJECT,       /* the CSR's subject is not exactly CN=<id> */
	ST_R_CSR_NONCE,         /* the CSR does not carry the nonce sent */
	ST_R_CSR_KEY,           /* the CSR's key type or hash is not the profile's */
	ST_R_KEY_SEEN,          /* the CSR's public key was seen before */
	ST_R_ATTEST_CHAIN,      /* the attestation certificate does not chain */
	ST_R_ATTEST_SUBJECT,    /* the attestation certificate is for another board */
	ST_R_ATTEST_SIGNATURE,  /* the attestation signature does not verify */
	ST_R_ATTEST_OTHER_CSR,  /* the board attested another CSR than it sent */
	ST_R_MFR_CA,            /* the manufacturer CA certificate does not parse */
	ST_R_READBACK,          /* the certificate read back is not the one written */
	ST_R_PROOF,             /* proof of possession fails */
	ST_R_INTERRUPTED,       /* the station stopped with the unit in flight */
	/* deadlines and the DFU host's limits (issue 13) */
	ST_R_STAGE_DEADLINE,    /* a stage ran past its deadline (profile [deadlines]) */
	ST_R_UNIT_DEADLINE,     /* the unit ran past its overall deadline */
	ST_R_FLASH_XFER_SMALL,  /* DFU wTransferSize below DFU_MIN_TRANSFER: refused */
	ST_R_FLASH_TOO_MANY_BLOCKS, /* the image needs more than DFU_MAX_BLOCKS blocks */
	/* the shared CA token (issue 16) */
	ST_R_HSM_UNREACHABLE,   /* the token's transport or session failed (remote server
				 * gone, token removed): the station reopens it by itself */
	/* the factory ledger (issue 16) */
	ST_R_LEDGER_UNREACHABLE, /* the PostgreSQL ledger did not answer in time: the unit
				  * FAILs closed, the station reconnects by itself */
	ST_R_PROVISIONED_ELSEWHERE, /* the ledger says another station provisioned the id */
	ST_R_COUNT
};

struct errbuf {
	int  code;                /* last enum st_rc set, ST_OK when clear */
	enum st_origin origin;    /* where the cause arose */
	enum st_reason reason;    /* the stable reason code */
	char msg[512];
};

/* Clears the buffer (code = ST_OK, empty message). */
void errbuf_clear(struct errbuf *e);

/* Sets code and a printf-style message; returns code so callers can
 * `return errbuf_set(e, ST_EIO, "...")`.  Origin and reason: the generic ones
 * of code (st_rc_origin, st_rc_reason). */
int errbuf_set(struct errbuf *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The same with the origin and reason of the cause. */
int errbuf_setr(struct errbuf *e, int code, enum st_origin origin, enum st_reason reason,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Replaces origin and reason, keeping code and text; returns e->code.  For a
 * layer that learns what a callee's failure means (the LOCK it sent). */
int errbuf_tag(struct errbuf *e, enum st_origin origin, enum st_reason reason);

/* Prepends printf-style context to the existing message; returns e->code. */
int errbuf_prefix(struct errbuf *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Short stable name of an rc ("ETIMEOUT"), for logs and JSON. */
const char *st_rc_name(int rc);

/* The generic origin and reason errbuf_set() gives an rc. */
enum st_origin st_rc_origin(int rc);
enum st_reason st_rc_reason(int rc);

/* Stable lower-case names ("board", "not_on_lot"); "unknown" out of range. */
const char *st_origin_name(enum st_origin o);
const char *st_reason_name(enum st_reason r);
/* The code's meaning in plain words, without ids, serials or bays (the same
 * text for every unit with the code: what a Pareto chart groups on). */
const char *st_reason_text(enum st_reason r);
/* The code of a stored name, ST_R_NONE for "" or an unknown name. */
enum st_reason st_reason_from_name(const char *name);

#endif
