/*
 * checkpoint: signed checkpoints of the station's audit chain, and the anchors
 * outside the database that show a rollback.
 *
 * Contract
 * - app_checkpoint_now() signs this station's head only after verifying the
 *   chain up to it with the token's own audit key pinned: a tail walk
 *   (db_audit_verify_tail) from the newest anchor (the token's anchor object,
 *   the checkpoint log's last line, else the newest checkpoint signed by that
 *   key, else the first event), every link and every checkpoint on the way.
 *   Each anchor must still be on the chain (app_anchor_check).  A head it
 *   cannot verify is refused (ST_ETAMPER, "refusing to sign ...") and nothing
 *   is signed or written.  Then, in this order: the checkpoint log line
 *   (fsynced; log_path NULL: no log), the token's anchor object, the
 *   checkpoint row.  ST_ENOTFOUND when the chain is empty or no audit key is
 *   configured.  The head signed is the one walked, not a later one.
 * - app_anchor_check() compares an anchor (seq, head hash) named what ("checkpoint
 *   log PATH", "token 'T'") with the database: ST_ETAMPER "database rolled back:
 *   WHAT has seq N head H, database has ..." when the event at seq is gone or
 *   differs.
 * - app_checkpoint_maybe() is what the line calls after its certificates: it
 *   signs when at least `every` events were appended since the last checkpoint
 *   it made.  Thread-safe (one mutex per struct app_checkpointer).
 */
#ifndef STATION_APP_CHECKPOINT_H
#define STATION_APP_CHECKPOINT_H

#include <pthread.h>
#include <stdint.h>

#include "core/errbuf.h"
#include "db/db.h"
#include "hsm/hsm.h"

/* The name of this database's chain among those of its station id: the first
 * 16 hex digits of its first event's hash ("empty" without events).  A
 * database made afresh (`station init`) is a new chain with anchors of its own;
 * a rollback keeps the chain's first event and meets its anchors. */
#define APP_CHAIN_ID_MAX 24
ST_MUST_CHECK int app_chain_id(struct db *db, char out[APP_CHAIN_ID_MAX], struct errbuf *err);
/* cplog_default_path() for this database's station and chain. */
ST_MUST_CHECK int app_checkpoint_log_default(struct db *db, char *out, size_t size,
					     struct errbuf *err);

/* *seq_out (may be NULL) gets the seq signed. */
ST_MUST_CHECK int app_checkpoint_now(struct hsm *h, struct db *db, const char *log_path,
				     int64_t *seq_out, struct errbuf *err);

ST_MUST_CHECK int app_anchor_check(struct db *db, const char *what, int64_t seq,
				   const uint8_t head[32], struct errbuf *err);

/* The anchors against the database (`audit verify --key`, and `run` before
 * its recovery).  h NULL: the token is not compared; log_path NULL: no log.
 * An anchor that is absent is an error only when `required` names it
 * (APP_ANCHOR_LOG, APP_ANCHOR_TOKEN).  The log's last line must be signed by
 * pub. */
#define APP_ANCHOR_LOG   1u
#define APP_ANCHOR_TOKEN 2u
struct app_anchor_report {
	int     log_checked, token_checked;
	int64_t log_seq, token_seq;
};
ST_MUST_CHECK int app_anchors_verify(struct hsm *h, struct db *db, const char *log_path,
				     unsigned required, const uint8_t *pub, size_t pub_len,
				     struct app_anchor_report *rep, struct errbuf *err);

struct app_checkpointer {
	pthread_mutex_t mu;
	int64_t every;       /* events between checkpoints, >= 1 */
	int64_t last_seq;    /* head seq of the last checkpoint made */
	const char *log_path;/* the checkpoint log (NULL: none), owned by the caller */
};

void app_checkpointer_init(struct app_checkpointer *cp, int64_t every, const char *log_path);
void app_checkpointer_destroy(struct app_checkpointer *cp);
/* *signed_out (may be NULL) is 1 when a checkpoint was made. */
ST_MUST_CHECK int app_checkpoint_maybe(struct hsm *h, struct db *db, struct app_checkpointer *cp,
				       int *signed_out, struct errbuf *err);

#endif
