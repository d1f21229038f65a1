/*
 * checkpoint: signed checkpoints of the station's audit chain: the head read
 * from the database, signed with the HSM's audit key (hsm/hsm_checkpoint.h),
 * stored with db_checkpoint_add() together with the key's label and public
 * key, so `station audit verify` can check it.
 *
 * Contract
 * - app_checkpoint_now() signs the current head of this station's chain.
 *   ST_ENOTFOUND when the chain is empty or no audit key is configured.
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

/* *seq_out (may be NULL) gets the seq signed. */
ST_MUST_CHECK int app_checkpoint_now(struct hsm *h, struct db *db, int64_t *seq_out,
				     struct errbuf *err);

struct app_checkpointer {
	pthread_mutex_t mu;
	int64_t every;       /* events between checkpoints, >= 1 */
	int64_t last_seq;    /* head seq of the last checkpoint made */
};

void app_checkpointer_init(struct app_checkpointer *cp, int64_t every);
void app_checkpointer_destroy(struct app_checkpointer *cp);
/* *signed_out (may be NULL) is 1 when a checkpoint was made. */
ST_MUST_CHECK int app_checkpoint_maybe(struct hsm *h, struct db *db, struct app_checkpointer *cp,
				       int *signed_out, struct errbuf *err);

#endif
