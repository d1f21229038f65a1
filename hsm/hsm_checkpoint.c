/* hsm_checkpoint: audit head signatures.  See hsm_checkpoint.h. */
#include "hsm_checkpoint.h"

#include <inttypes.h>
#include <stdio.h>

#include <openssl/crypto.h>

int hsm_checkpoint_message(char *buf, size_t size, const char *station_id,
			   int64_t seq, const uint8_t head_hash[32])
{
	char hex[65];
	int n;

	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", head_hash[i]);
	n = snprintf(buf, size, "station-audit-checkpoint-v1\n%s\n%" PRId64 "\n%s\n",
		     station_id, seq, hex);
	return n < 0 || (size_t)n >= size ? -1 : n;
}

int hsm_checkpoint_now(struct hsm *h, struct db *db, int64_t *seq_out, struct errbuf *err)
{
	char msg[HSM_CHECKPOINT_MSG_MAX];
	const uint8_t *pub;
	uint8_t hash[32], *sig = NULL;
	size_t sig_len, pub_len;
	int64_t seq = 0;
	int rc, n;

	if (hsm_audit_pubkey(h, &pub, &pub_len) != ST_OK)
		return errbuf_set(err, ST_ENOTFOUND, "token '%s': no audit key configured (audit_key)",
				  hsm_token_label(h));
	if ((rc = db_audit_head(db, &seq, hash, err)) != ST_OK)
		return rc;
	if (seq <= 0)
		return errbuf_set(err, ST_ENOTFOUND, "the audit chain is empty: nothing to sign");
	n = hsm_checkpoint_message(msg, sizeof(msg), db_station_id(db), seq, hash);
	if (n < 0)
		return errbuf_set(err, ST_EINVAL, "station id too long for a checkpoint");
	if ((rc = hsm_audit_sign(h, (const uint8_t *)msg, (size_t)n, &sig, &sig_len, err)) != ST_OK)
		return rc;
	rc = db_checkpoint_add(db, seq, hash, hsm_audit_key_label(h), DB_CHECKPOINT_ALG,
			       sig, sig_len, pub, pub_len, err);
	OPENSSL_free(sig);
	if (rc != ST_OK)
		return errbuf_prefix(err, "store checkpoint at seq %" PRId64 ": ", seq);
	if (seq_out)
		*seq_out = seq;
	return ST_OK;
}

void hsm_checkpointer_init(struct hsm_checkpointer *cp, int64_t every)
{
	pthread_mutex_init(&cp->mu, NULL);
	cp->every = every < 1 ? 1 : every;
	cp->last_seq = 0;
}

void hsm_checkpointer_destroy(struct hsm_checkpointer *cp)
{
	pthread_mutex_destroy(&cp->mu);
}

int hsm_checkpoint_maybe(struct hsm *h, struct db *db, struct hsm_checkpointer *cp,
			 int *signed_out, struct errbuf *err)
{
	uint8_t hash[32];
	int64_t seq = 0;
	int rc;

	if (signed_out)
		*signed_out = 0;
	pthread_mutex_lock(&cp->mu);
	rc = db_audit_head(db, &seq, hash, err);
	if (rc == ST_OK && seq - cp->last_seq >= cp->every) {
		rc = hsm_checkpoint_now(h, db, &seq, err);
		if (rc == ST_OK) {
			cp->last_seq = seq;
			if (signed_out)
				*signed_out = 1;
		}
	}
	pthread_mutex_unlock(&cp->mu);
	return rc;
}
