/*
 * hsm_checkpoint: signed checkpoints of the audit chain head.
 *
 * Contract
 * - The message is exactly
 *     "station-audit-checkpoint-v1\n<station_id>\n<seq>\n<head_hash_hex>\n"
 *   (seq in decimal, the head hash in lower-case hex), signed ECDSA-SHA256 (DER)
 *   by the HSM's audit key and stored with db_checkpoint_add() together with
 *   the key's label and public key, so `station audit verify` can check it.
 * - hsm_checkpoint_now() signs the current head of this station's chain.
 * - hsm_checkpoint_maybe() is what the pipeline calls after its events: it
 *   signs when at least `every` events were appended since the last checkpoint
 *   it made.  Thread-safe (one mutex per struct hsm_checkpointer).
 */
#ifndef STATION_HSM_CHECKPOINT_H
#define STATION_HSM_CHECKPOINT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "errbuf.h"
#include "hsm.h"

#define HSM_CHECKPOINT_MSG_MAX 256

/* Formats the signed message; returns its length, or -1 if it does not fit. */
int hsm_checkpoint_message(char *buf, size_t size, const char *station_id,
			   int64_t seq, const uint8_t head_hash[32]);

/* Signs and stores the head now.  *seq_out (may be NULL) gets the seq signed.
 * ST_ENOTFOUND when the chain is empty or no audit key is configured. */
int hsm_checkpoint_now(struct hsm *h, struct db *db, int64_t *seq_out, struct errbuf *err);

struct hsm_checkpointer {
	pthread_mutex_t mu;
	int64_t every;       /* events between checkpoints, >= 1 */
	int64_t last_seq;    /* head seq of the last checkpoint made */
};

void hsm_checkpointer_init(struct hsm_checkpointer *cp, int64_t every);
void hsm_checkpointer_destroy(struct hsm_checkpointer *cp);
/* *signed_out (may be NULL) is 1 when a checkpoint was made. */
int hsm_checkpoint_maybe(struct hsm *h, struct db *db, struct hsm_checkpointer *cp,
			 int *signed_out, struct errbuf *err);

#endif
