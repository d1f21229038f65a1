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
 * `grep ST_IGNORE` lists every place that does.
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

struct errbuf {
	int  code;          /* last enum st_rc set, ST_OK when clear */
	char msg[512];
};

/* Clears the buffer (code = ST_OK, empty message). */
void errbuf_clear(struct errbuf *e);

/* Sets code and a printf-style message; returns code so callers can
 * `return errbuf_set(e, ST_EIO, "...")`. */
int errbuf_set(struct errbuf *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepends printf-style context to the existing message; returns e->code. */
int errbuf_prefix(struct errbuf *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Short stable name of an rc ("ETIMEOUT"), for logs and JSON. */
const char *st_rc_name(int rc);

#endif
