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

#endif
