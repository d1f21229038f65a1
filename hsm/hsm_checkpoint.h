/*
 * hsm_checkpoint: signatures over the audit chain head, made with the HSM's
 * audit key.
 *
 * Contract
 * - The message is exactly
 *     "station-audit-checkpoint-v1\n<station_id>\n<seq>\n<head_hash_hex>\n"
 *   (seq in decimal, the head hash in lower-case hex), signed ECDSA-SHA256 (DER)
 *   by the token's audit key.  Storing the checkpoint (and reading the head) is
 *   the caller's: hsm/ never calls the database (station/app/checkpoint.h does
 *   both for the station).
 */
#ifndef STATION_HSM_CHECKPOINT_H
#define STATION_HSM_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"
#include "hsm/hsm.h"

#define HSM_CHECKPOINT_MSG_MAX 256

/* Formats the signed message; returns its length, or -1 if it does not fit. */
ST_MUST_CHECK int hsm_checkpoint_message(char *buf, size_t size, const char *station_id,
					 int64_t seq, const uint8_t head_hash[32]);

/* Signs the message for (station_id, seq, head_hash).  *sig is OPENSSL_malloc'd.
 * ST_ENOTFOUND when no audit key is configured, ST_EINVAL when the station id
 * does not fit the message. */
ST_MUST_CHECK int hsm_checkpoint_sign(struct hsm *h, const char *station_id, int64_t seq,
				      const uint8_t head_hash[32], uint8_t **sig, size_t *sig_len,
				      struct errbuf *err);

/*
 * The rollback anchor: the newest checkpoint's (seq, head hash) of a station's
 * chain, kept in the token as a private CKO_DATA object labelled
 * "station-audit-anchor <station_id> <chain>" holding
 *   "station-audit-anchor-v1\n<station_id>\n<chain>\n<seq>\n<head_hash_hex>\n".
 * chain (at most 32 characters) tells apart the chains of one station id (a
 * database made afresh with `station init`): the caller's name for it.
 * Whoever rolls the database back to an older chain cannot roll this back
 * without the token's user PIN.  hsm_anchor_write() replaces it;
 * hsm_anchor_read() returns ST_ENOTFOUND when the token has none, ST_ETAMPER
 * when it does not parse.
 */
ST_MUST_CHECK int hsm_anchor_write(struct hsm *h, const char *station_id, const char *chain,
				   int64_t seq, const uint8_t head_hash[32], struct errbuf *err);
ST_MUST_CHECK int hsm_anchor_read(struct hsm *h, const char *station_id, const char *chain,
				  int64_t *seq, uint8_t head_hash[32], struct errbuf *err);

#endif
