/*
 * pl_int: what the pipeline's files share (station/line/pipeline.c: the line's
 * threads; station/line/pl_unit.c: one unit's stages; station/line/pl_recover.c).
 * Not a public API.  Calls between the files go one way: pipeline.c calls
 * pl_unit_run(); pl_unit.c calls pl_ledger.c's steps; pl_unit.c,
 * pl_ledger.c and pl_recover.c call no other.
 */
#ifndef STATION_PL_INT_H
#define STATION_PL_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "db/db.h"
#include "db/rework.h"
#include "core/clock.h"
#include "line/pipeline.h"

#define PL_REJECT_MEMORY 100   /* the most REJECTs a bay remembers (max_rejects <= 100) */

struct bay {
	struct pl_line *line;
	int      index;
	char     port[EV_BAY_LEN];     /* "" = tile not bound to a port now */
	char     last_port[EV_BAY_LEN]; /* the port it was lent to last */
	char     serial[EV_UID_LEN];   /* USB serial of the board present */
	uint32_t instance;             /* pl_present.instance of that board */
	int      present;              /* the detector sees a board there */
	int      pending;              /* a board arrived and waits for the worker */
	int      busy;                 /* the worker runs a unit */
	int      fails_in_row;
	int      held;
	char     uid[EV_UID_LEN];      /* id of the board in the bay (clone registry) */
	int      clone;                /* set by another bay that saw the same id */
	char     rej_who[EV_UID_LEN];  /* the board of the REJECTs counted below */
	int64_t  rej_ms[PL_REJECT_MEMORY]; /* when, newest first (monotonic ms) */
	pthread_t thread;
	int      started;
};

struct pl_line {
	struct pl_config cfg;
	char lot[EV_FIELD_LEN];        /* cfg.lot after pl_line_set_lot */
	pthread_mutex_t lock;
	pthread_cond_t  cond;
	struct bay bays[PL_MAX_BAYS];
	pthread_t detector;
	int detector_started;
	int stop_threads;              /* workers and detector exit */
	int stop_intake;               /* no new unit starts */
	int stop_requested;            /* pl_line_wait returns */
	int paused;
	atomic_int abandon;            /* grace over: units in flight give up now */
	char ignored[PL_MAX_BAYS * 2][EV_BAY_LEN]; /* ports logged as not a bay */
	int nignored;
	int64_t started_units;
	struct pl_counts counts;
};

enum pl_cert_state { CERT_NONE, CERT_RESERVED, CERT_ISSUED, CERT_COMMITTED };

/* A buffer a board op or the CA returned (malloc'd). */
struct pl_buf {
	uint8_t *p;
	size_t len;
};

struct pl_unit {
	struct pl_line *line;
	struct bay *bay;
	const struct pl_config *cfg;
	const struct pl_board_ops *ops;
	void *h;
	struct db_unit u;
	int have_unit;
	int recorded;           /* the verdict is in the database already */
	enum ev_stage stage;
	enum pl_cert_state cert;
	struct errbuf err;
	uint64_t last_progress;
	/* deadlines (profile [deadlines]): the unit's, and the stage's as handed
	 * to the board adapter (pl_board_ops.set_limit) */
	int64_t unit_deadline, stage_start_ms;
	struct clock_limit limit;
	int limit_is_unit;         /* the stage's deadline is the unit's */
	char serial[EV_UID_LEN];   /* USB serial: from the scan, then from open */

	/* What the stages hand on.  The buffers are the unit's: released
	 * together when it ends (pl_unit.c unit_release). */
	int reject;                /* the failure is a REJECT, not a FAIL */
	struct pl_board_info info; /* the board's last INFO answer */
	uint8_t nonce[PROTO_NONCE_LEN];
	struct pl_buf csr, attest_sig, issued, back, prove_sig;
	struct pl_csr *checked;    /* the CSR the CA accepted */
	struct pl_csr_facts facts;
	struct db_rework rw;       /* an engineer's rework authorisation, if reworked */
	int reworked;
	int ledger_held;           /* the ledger holds the id for this unit */
	char pass_reason[EV_REASON_LEN];
	int64_t stage_t0;          /* monotonic ms the current stage began, 0: none open */
};

/* The ledger's steps (station/line/pl_ledger.c); each a no-op without a
 * ledger.  hold: after the allowlist; claim: at reserve, before signing;
 * done: when the unit's verdict is recorded. */
int  pl_ledger_allowlisted(struct pl_unit *r);
int  pl_ledger_hold(struct pl_unit *r);
int  pl_ledger_claim(struct pl_unit *r);
void pl_ledger_done(struct pl_unit *r, int passed);

/* The operator's words for a failure at stage s (station/line/pl_words.c):
 * 1 and out filled when the failure came from below the pipeline; 0 when
 * err->msg is already the pipeline's own plain sentence. */
int pl_plain_words(enum ev_stage s, int rc, const struct errbuf *err, char *out, size_t cap);

/* Runs one unit in bay r->bay (r zeroed but for line, bay, cfg, serial); the
 * caller closes r->ops/r->h if set.  Returns the verdict. */
enum ev_outcome pl_unit_run(struct pl_unit *r);

#endif
