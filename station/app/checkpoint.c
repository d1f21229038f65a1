/* checkpoint: see checkpoint.h. */
#include "app/checkpoint.h"

#include <inttypes.h>

#include <openssl/crypto.h>

#include "hsm/hsm_checkpoint.h"

int app_checkpoint_now(struct hsm *h, struct db *db, int64_t *seq_out, struct errbuf *err)
{
	const uint8_t *pub;
	uint8_t hash[32], *sig = NULL;
	size_t sig_len = 0, pub_len = 0;
	int64_t seq = 0;
	int rc;

	if (hsm_audit_pubkey(h, &pub, &pub_len) != ST_OK)
		return errbuf_set(err, ST_ENOTFOUND, "token '%s': no audit key configured (audit_key)",
				  hsm_token_label(h));
	if ((rc = db_audit_head(db, &seq, hash, err)) != ST_OK)
		return rc;
	if (seq <= 0)
		return errbuf_set(err, ST_ENOTFOUND, "the audit chain is empty: nothing to sign");
	rc = hsm_checkpoint_sign(h, db_station_id(db), seq, hash, &sig, &sig_len, err);
	if (rc != ST_OK)
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

void app_checkpointer_init(struct app_checkpointer *cp, int64_t every)
{
	pthread_mutex_init(&cp->mu, NULL);
	cp->every = every < 1 ? 1 : every;
	cp->last_seq = 0;
}

void app_checkpointer_destroy(struct app_checkpointer *cp)
{
	pthread_mutex_destroy(&cp->mu);
}

int app_checkpoint_maybe(struct hsm *h, struct db *db, struct app_checkpointer *cp,
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
		rc = app_checkpoint_now(h, db, &seq, err);
		if (rc == ST_OK) {
			/* the checkpoint's own row event (db/rows.c) follows it in the
			 * same commit: it needs no checkpoint of its own */
			cp->last_seq = seq + 1;
			if (signed_out)
				*signed_out = 1;
		}
	}
	pthread_mutex_unlock(&cp->mu);
	return rc;
}
