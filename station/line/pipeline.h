/*
 * pipeline: the provisioning line.  One state machine per bay, each on its own
 * thread; bays run concurrently and share the database, the CA and the event bus.
 *
 *   detect → identify → allowlist + duplicate check → flash → verify image →
 *   keygen → CSR (+ nonce) → CSR policy → attestation → reserve → HSM sign →
 *   inject → read back + proof of possession → lock → commit unit
 *
 * Contract
 * - The pipeline reaches boards only through struct pl_board_ops and finds them
 *   only through struct pl_transport; it reaches the HSM only through struct
 *   pl_ca_ops.  The line does not know its adapters: the application wires
 *   them in (app/session.h: app/pl_usb.h over libusb, app/pl_hsm.h over hsm/);
 *   unit tests and the bench plug in-process fakes.
 * - Every attempt is a unit row (db_unit_begin before any board work that
 *   matters, db_unit_finish with stage and reason at the end); the row's stage
 *   follows every stage (progress marks, docs/database.md "units").  A failure's
 *   reason is in plain words in the events (the tiles); the row keeps those words
 *   with the error code and the technical detail.  A certificate
 *   signed for a unit that does not commit is revoked before the unit finishes.
 * - The CSR is parsed and judged once, by the CA (pl_ca_ops.check_csr); the
 *   line signs what it accepted (pl_ca_ops.sign).  Certificate state after
 *   that is the database's: db_cert_injected in the commit transaction,
 *   db_cert_revoke (actor: pl_config.actor) for a unit that does not pass.  No
 *   database transaction is open across a CA call.
 * - Policy: an id not on the lot's allowlist, already provisioned, a locked
 *   board, a public key seen before, a bad attestation, or the same id on two bays
 *   at once → REJECT with EV_ALERT.  Transport-level faults → FAIL.  Only
 *   idempotent steps (info, flash, keygen, CSR, attest, read-back) are retried,
 *   once, after a timeout or protocol error.  A bay with max_failures_in_row FAILs
 *   in a row is held until pl_line_clear_bay(); so is a bay where the same
 *   board (unique id, else USB serial) was REJECTed max_rejects times within
 *   reject_window_s (an EV_ALERT says so).  A FAIL with reason
 *   ST_R_HSM_UNREACHABLE (the CA's shared token, not the bay) or
 *   ST_R_LEDGER_UNREACHABLE (the factory ledger) neither counts towards the
 *   hold nor resets the count.
 * - Deadlines: every stage has one (profile [deadlines]: flash_s, keygen_s,
 *   stage_s for the others) and the unit has one (unit_s); the board adapter
 *   gets the stage's through pl_board_ops.set_limit, and a step is not started
 *   past it.  A unit past a deadline FAILs with reason stage_deadline or
 *   unit_deadline.
 * - pl_recover() must run before the line accepts boards: units left in progress
 *   by a crash are marked interrupted and their certificates (reserved, issued, or
 *   injected but not committed) are revoked.
 * - Nothing here blocks on a board without a bound: the board ops carry their own
 *   timeouts (every USB transfer has one); a bay thread that waits on a slow board
 *   holds no lock shared with other bays.
 */
#ifndef STATION_PIPELINE_H
#define STATION_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/errbuf.h"
#include "core/event.h"
#include "config/profile.h"
#include "proto/proto.h"

struct db;

#define PL_MAX_BAYS      32
#define PL_ATTEST_CERT_MAX 4096

/* What INFO tells about a board. */
struct pl_board_info {
	char     unique_id[EV_UID_LEN];      /* as the board reports it (checked by the pipeline) */
	char     usb_serial[EV_UID_LEN];     /* iSerialNumber read at open, "" if unknown */
	char     firmware_sha256[65];        /* hex of the image in flash, "" if none */
	int      locked;                     /* LOCK done: no new key or certificate */
	int      has_cert;
	uint8_t  attest_cert[PL_ATTEST_CERT_MAX];  /* manufacturer attestation cert, DER */
	size_t   attest_cert_len;
};

typedef void (*pl_progress_fn)(uint64_t done, uint64_t total, void *ctx);

/*
 * One board, already opened.  Every call is bounded in time by the adapter and
 * returns an st_rc: ST_ETIMEOUT / ST_EPROTO for a transient fault (retry may
 * help), ST_ENODEV when the board went away, anything else is final.  Buffers
 * returned through uint8_t ** are malloc'd; the caller frees them.
 */
struct pl_board_ops {
	int  (*info)(void *h, struct pl_board_info *out, struct errbuf *err);
	int  (*flash)(void *h, const uint8_t *image, size_t len, pl_progress_fn cb,
		      void *cb_ctx, struct errbuf *err);
	int  (*keygen)(void *h, enum profile_key_type type, struct errbuf *err);
	int  (*get_csr)(void *h, const uint8_t nonce[PROTO_NONCE_LEN], uint8_t **der,
			size_t *len, struct errbuf *err);
	/* The board signs SHA-256("station-attest-v1" || nonce || csr_sha256). */
	int  (*attest)(void *h, const uint8_t nonce[PROTO_NONCE_LEN],
		       const uint8_t csr_sha256[PROTO_SHA256_LEN], uint8_t **sig, size_t *sig_len,
		       struct errbuf *err);
	int  (*write_cert)(void *h, const uint8_t *der, size_t len, struct errbuf *err);
	int  (*read_cert)(void *h, uint8_t **der, size_t *len, struct errbuf *err);
	/* The board signs SHA-256("station-prove-v1" || challenge) with its device key. */
	int  (*prove)(void *h, const uint8_t challenge[PROTO_NONCE_LEN], uint8_t **sig,
		      size_t *sig_len, struct errbuf *err);
	int  (*lock)(void *h, struct errbuf *err);
	void (*close)(void *h);
	/* Optional (NULL: the adapter keeps only its own bounds): the line calls it
	 * before each stage with the stage's deadline and the line's abandon
	 * check; every later call and every wait inside it ends at that deadline
	 * (ST_ETIMEOUT) or soon after the stop (ST_ECANCELED).  *l is copied. */
	void (*set_limit)(void *h, const struct clock_limit *l);
};

/* A board present on the bench, as the transport sees it. */
struct pl_present {
	char port[EV_BAY_LEN];        /* USB port path: the bay's identity */
	char serial[EV_UID_LEN];      /* USB iSerialNumber if the scan knows it, else "" */
	uint32_t instance;            /* changes when another board takes the port (USB:
				       * bus and device address), so a swap faster than
				       * the scan period is still seen as leave + arrive */
};

/* Where boards come from: scanned by the line's detector thread. */
struct pl_transport {
	/* Fills up to max boards present now; *n gets how many.  Quick (no board I/O
	 * beyond what enumeration needs). */
	int (*scan)(void *ctx, struct pl_present *out, int max, int *n, struct errbuf *err);
	/* Opens the board at port for one unit; serial gets its USB serial number
	 * ("" if unknown), which names the unit if the board cannot identify. */
	int (*open)(void *ctx, const char *port, const struct pl_board_ops **ops,
		    void **handle, char serial[EV_UID_LEN], struct errbuf *err);
	void *ctx;
};

/* What the line keeps of a CSR the CA checked. */
struct pl_csr_facts {
	char    pubkey_hash[65];      /* hex SHA-256 of the SubjectPublicKeyInfo DER */
	uint8_t csr_sha256[PROTO_SHA256_LEN]; /* SHA-256 of the CSR's DER: what attestation covers */
};

/* A CSR the CA parsed and judged (opaque; the CA's csr_free releases it). */
struct pl_csr;

/*
 * The certificate authority (HSM) as the pipeline needs it.  Thread-safe.
 * Certificate state after signing (injected, revoked) is the database's
 * (db_cert_injected, db_cert_revoke), not the CA's.
 */
struct pl_ca_ops {
	/* Parses the board's DER CSR once and applies the CSR policy (the
	 * adapter's: hsm/csr_policy.h, the profile's key type): self-signature,
	 * key type and signature hash, subject CN=unique_id, challengePassword =
	 * the hex nonce, public key never seen before.  ST_OK: *out is the checked
	 * CSR to sign, facts filled.  ST_EINVAL, ST_ECRYPTO, ST_EPOLICY: the CSR is
	 * refused (err says by which rule).  ST_EEXIST: its public key was seen
	 * before (a cloned key).  Anything else: the CA or its store failed.
	 * facts->pubkey_hash is filled whenever the key was looked up (also on
	 * ST_EEXIST), else "". */
	int (*check_csr)(void *ca, const uint8_t *der, size_t len, const char *unique_id,
			 const uint8_t nonce[PROTO_NONCE_LEN], struct pl_csr **out,
			 struct pl_csr_facts *facts, struct errbuf *err);
	/* Issues the certificate for a checked CSR (validity and SAN: the CA's
	 * profile): write-ahead (serial reserved, durable) before signing, recorded
	 * as issued for unit_id (DER committed and fsync'd) before it returns
	 * (invariant 2).  serial_hex gets the serial; *der is malloc'd.  On failure
	 * a reserved serial may be left behind: the pipeline revokes every
	 * uncommitted certificate of a unit that does not pass. */
	int (*sign)(void *ca, const struct pl_csr *csr, int64_t unit_id, char serial_hex[65],
		    uint8_t **der, size_t *len, struct errbuf *err);
	void (*csr_free)(void *ca, struct pl_csr *csr);
	void *ctx;
};

/*
 * The factory ledger (docs/factory.md) as the line needs it: the rules that
 * hold across stations.  ctx NULL: no ledger (one station, SQLite alone),
 * nothing is called.  Thread-safe.  A refusal fails with ST_EPOLICY or
 * ST_EEXIST and its reason (clone, provisioned_elsewhere, key_seen): the unit
 * REJECTs.  A ledger that does not answer fails with reason
 * ledger_unreachable: the unit FAILs, and like hsm_unreachable it neither
 * counts towards a bay's hold nor resets the count.
 */
struct pl_ledger_ops {
	/* The lot's allowlist in the ledger (imported once for the factory):
	 * asked when the id is not on this station's own list.  ST_OK: on it;
	 * ST_ENOTFOUND: not. */
	int  (*allowlisted)(void *ctx, const char *lot, const char *unique_id, struct errbuf *err);
	/* The board is on this station now (after the local allowlist and
	 * duplicate checks). */
	int  (*hold)(void *ctx, const char *unique_id, int64_t unit_id, struct errbuf *err);
	/* Before anything is signed: the id and the public key become this
	 * station's in the ledger (write-ahead of the local serial reservation). */
	int  (*claim)(void *ctx, const char *unique_id, const char *lot, const char *pubkey_hash,
		      int64_t unit_id, int rework, struct errbuf *err);
	/* The unit is over (after its local record): a PASS commits the claim
	 * with its serial, anything else releases it; the hold goes.  Never
	 * fails the unit: what cannot reach the ledger now is retried later, and
	 * then touches only the claim of unit_id (a later attempt's stays). */
	void (*done)(void *ctx, const char *unique_id, int64_t unit_id, int passed,
		     const char *serial);
	void *ctx;
};

struct pl_config {
	const struct profile *profile;
	const char *lot;
	const char *operator_name;
	const char *station_id;
	int nbays;                     /* tiles: 1..PL_MAX_BAYS */
	int max_units;                 /* stop intake after this many results (0 = no limit) */
	int scan_interval_ms;          /* detector poll period (default 100) */
	/* Bays are ports.  NULL: a bay is lent to the port of the board that
	 * arrives and given back when it leaves (and its unit is over, and the bay
	 * is not held).  Else nbays port paths: bay i is port bay_ports[i] for the
	 * whole run, and a board on any other port is ignored (one log line per
	 * port). */
	const char (*bay_ports)[EV_BAY_LEN];
	int grace_ms;                  /* pl_line_stop: how long units in flight may
					* finish before they are abandoned (0 = 30000) */
	const uint8_t *image;          /* firmware image (hash checked by the caller) */
	size_t image_len;
	const uint8_t *mfr_ca_der;     /* manufacturer CA certificate for attestation */
	size_t mfr_ca_len;
	struct db *db;
	const char *actor;             /* who revokes a failed unit's certificate in the
					* audit log (NULL: "station") */
	struct ev_bus *bus;
	struct pl_transport transport;
	struct pl_ca_ops ca;
	struct pl_ledger_ops ledger;   /* ctx NULL: no ledger */
};

struct pl_line;

/* Starts the detector and the bay threads.  pl_recover() first. */
ST_MUST_CHECK int  pl_line_start(const struct pl_config *cfg, struct pl_line **out,
				 struct errbuf *err);
/* Stops intake; units in flight get cfg.grace_ms to finish, then are abandoned
 * (every board wait ends within CLOCK_NAP_SLICE_MS or one USB transfer): each is
 * recorded as interrupted (reason code interrupted) with its certificate
 * revoked, and its tile says to unplug the board.  Returns when every bay
 * thread is done. */
void pl_line_stop(struct pl_line *line);
/* Blocks until max_units results were reached or pl_line_request_stop() was called. */
void pl_line_wait(struct pl_line *line);
/* Async-signal-unsafe but thread-safe: asks the line to stop (then pl_line_stop). */
void pl_line_request_stop(struct pl_line *line);
void pl_line_free(struct pl_line *line);

/* The line runs lot from now on (EV_LOT_CHANGED): only while paused with no
 * unit in flight, else ST_ESTATE.  The caller checks the lot and records the
 * change (app_session_change_lot). */
ST_MUST_CHECK int pl_line_set_lot(struct pl_line *line, const char *lot, struct errbuf *err);
void pl_line_pause(struct pl_line *line, int paused);
int  pl_line_paused(struct pl_line *line);
/* Clears a held bay (0-based tile index); ST_EINVAL if it is not held. */
ST_MUST_CHECK int  pl_line_clear_bay(struct pl_line *line, int bay_index);
/* The tile (0-based) bound to USB port label port ("1-2"), or -1 if none is. */
int  pl_line_bay_of_port(struct pl_line *line, const char *port);

struct pl_counts {
	int64_t pass, fail, reject, in_flight;
};
void pl_line_counts(struct pl_line *line, struct pl_counts *out);

/* Crash recovery: units left in progress become interrupted, their certificates
 * not committed are revoked (audit actor: actor, NULL for "station").  *units
 * and *revoked get the numbers (may be NULL). */
ST_MUST_CHECK int  pl_recover(struct db *db, const char *actor, struct ev_bus *bus,
			      int *units, int *revoked, struct errbuf *err);

/* ---- checks the pipeline runs (station/line/pl_verify.c) ---------------------- */


/* Attestation: the attestation certificate chains to the manufacturer CA, its
 * CN is the unique id, and sig verifies over the attest message. */
ST_MUST_CHECK int pl_attest_check(const uint8_t *attest_cert, size_t cert_len,
				  const uint8_t *mfr_ca, size_t mfr_ca_len, const char *unique_id,
				  const uint8_t nonce[PROTO_NONCE_LEN],
				  const uint8_t csr_sha256[PROTO_SHA256_LEN],
				  const uint8_t *sig, size_t sig_len, struct errbuf *err);

/* Proof of possession: the certificate read back is the one issued, and sig
 * verifies with its public key over the prove message. */
ST_MUST_CHECK int pl_prove_check(const uint8_t *issued, size_t issued_len, const uint8_t *readback,
				 size_t readback_len, const uint8_t challenge[PROTO_NONCE_LEN],
				 const uint8_t *sig, size_t sig_len, struct errbuf *err);

#endif
