/* checkpoint: see checkpoint.h. */
#include "app/checkpoint.h"
#include "app/checkpoint_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/hex.h"
#include "hsm/hsm_checkpoint.h"

#define CHAIN_ID_LEN 16

int app_chain_id(struct db *db, char out[APP_CHAIN_ID_MAX], struct errbuf *err)
{
	uint8_t first[32];
	char hex[65];
	int rc = db_audit_event_hash(db, 1, first, err);

	if (rc == ST_ENOTFOUND) {
		snprintf(out, APP_CHAIN_ID_MAX, "empty");
		return ST_OK;
	}
	if (rc)
		return rc;
	hex_encode(first, 32, hex);
	snprintf(out, APP_CHAIN_ID_MAX, "%.*s", CHAIN_ID_LEN, hex);
	return ST_OK;
}

int app_checkpoint_log_default(struct db *db, char *out, size_t size, struct errbuf *err)
{
	char chain[APP_CHAIN_ID_MAX];
	int rc;

	if ((rc = app_chain_id(db, chain, err)))
		return rc;
	return cplog_default_path(db_station_id(db), chain, out, size, err);
}

struct anchor {
	int     have;
	int64_t seq;
	uint8_t head[32];
	char    what[CPLOG_PATH_MAX + 32];
};

int app_anchor_check(struct db *db, const char *what, int64_t seq, const uint8_t head[32],
		     struct errbuf *err)
{
	char want[65], have[65];
	uint8_t at[32], top[32];
	int64_t head_seq = 0;
	int rc;

	hex_encode(head, 32, want);
	rc = db_audit_event_hash(db, seq, at, err);
	if (rc == ST_OK && !memcmp(at, head, 32))
		return ST_OK;
	if (rc != ST_OK && rc != ST_ENOTFOUND)
		return rc;
	if (rc == ST_ENOTFOUND) {
		if ((rc = db_audit_head(db, &head_seq, top, err)))
			return rc;
		return errbuf_set(err, ST_ETAMPER, "database rolled back: %s has seq %" PRId64
				  " head %.16s..., database has head seq %" PRId64 " (%s)", what, seq,
				  want, head_seq, db_station_id(db));
	}
	hex_encode(at, 32, have);
	return errbuf_set(err, ST_ETAMPER, "database rolled back or rewritten: %s has seq %" PRId64
			  " head %.16s..., database has head %.16s... at seq %" PRId64, what, seq, want,
			  have, seq);
}

/* The token's anchor and the log's last line (its signature checked with the
 * audit key).  Absent ones are left have = 0; anything else unreadable refuses. */
static int read_anchors(struct hsm *h, struct db *db, const char *log_path, const uint8_t *pub,
			size_t pub_len, struct anchor *tok, struct anchor *log, struct errbuf *err)
{
	char hex[65], chain[APP_CHAIN_ID_MAX];
	struct cplog_entry e;
	const char *why = NULL;
	int rc;

	memset(tok, 0, sizeof(*tok));
	memset(log, 0, sizeof(*log));
	if ((rc = app_chain_id(db, chain, err)))
		return rc;
	if (h) {
		snprintf(tok->what, sizeof(tok->what), "token '%s'", hsm_token_label(h));
		rc = hsm_anchor_read(h, db_station_id(db), chain, &tok->seq, tok->head, err);
		if (rc != ST_OK && rc != ST_ENOTFOUND)
			return rc;
		tok->have = rc == ST_OK;
	}
	if (!log_path)
		return ST_OK;
	snprintf(log->what, sizeof(log->what), "checkpoint log %s", log_path);
	rc = cplog_last(log_path, db_station_id(db), chain, &e, err);
	if (rc == ST_ENOTFOUND)
		return ST_OK;
	if (rc)
		return rc;
	hex_encode(e.head, 32, hex);
	if (db_checkpoint_signature_ok(db_station_id(db), e.seq, hex, e.sig, e.sig_len, pub, pub_len,
				       &why))
		return errbuf_set(err, ST_ETAMPER, "%s: the last line (seq %" PRId64 "): %s",
				  log->what, e.seq, why);
	log->have = 1;
	log->seq = e.seq;
	memcpy(log->head, e.head, 32);
	return ST_OK;
}

/* Verifies the chain from the newest anchor to the head: *seq, head. */
static int verify_to_head(struct hsm *h, struct db *db, const char *log_path, const uint8_t *pub,
			  size_t pub_len, int64_t *seq, uint8_t head[32], struct errbuf *err)
{
	struct db_verify_result res;
	struct anchor tok, log;
	const struct anchor *from = NULL;
	int rc;

	if ((rc = read_anchors(h, db, log_path, pub, pub_len, &tok, &log, err)))
		return rc;
	if (tok.have && (rc = app_anchor_check(db, tok.what, tok.seq, tok.head, err)))
		return rc;
	if (log.have && (rc = app_anchor_check(db, log.what, log.seq, log.head, err)))
		return rc;
	if (tok.have)
		from = &tok;
	if (log.have && (!from || log.seq > from->seq))
		from = &log;
	return db_audit_verify_tail(db, from ? from->seq : -1, from ? from->head : NULL, pub,
				    pub_len, &res, seq, head, err);
}

int app_checkpoint_now(struct hsm *h, struct db *db, const char *log_path, int64_t *seq_out,
		       struct errbuf *err)
{
	char chain[APP_CHAIN_ID_MAX];
	const uint8_t *pub;
	uint8_t hash[32], *sig = NULL;
	size_t sig_len = 0, pub_len = 0;
	int64_t seq = 0;
	int rc;

	if (hsm_audit_pubkey(h, &pub, &pub_len) != ST_OK)
		return errbuf_set(err, ST_ENOTFOUND, "token '%s': no audit key configured (audit_key)",
				  hsm_token_label(h));
	if ((rc = app_chain_id(db, chain, err)))
		return rc;
	if ((rc = verify_to_head(h, db, log_path, pub, pub_len, &seq, hash, err)))
		return rc == ST_ETAMPER ? errbuf_prefix(err, "refusing to sign the head of station %s: ",
							db_station_id(db)) : rc;
	if (seq <= 0)
		return errbuf_set(err, ST_ENOTFOUND, "the audit chain is empty: nothing to sign");
	rc = hsm_checkpoint_sign(h, db_station_id(db), seq, hash, &sig, &sig_len, err);
	if (rc != ST_OK)
		return rc;
	/* the anchors first: a checkpoint in the database with no anchor behind it
	 * would be the one an attacker keeps when rolling back */
	if (log_path && (rc = cplog_append(log_path, db_path(db), db_station_id(db), chain, seq, hash,
					   sig, sig_len, err)))
		goto out;
	if ((rc = hsm_anchor_write(h, db_station_id(db), chain, seq, hash, err)))
		goto out;
	rc = db_checkpoint_add(db, seq, hash, hsm_audit_key_label(h), DB_CHECKPOINT_ALG,
			       sig, sig_len, pub, pub_len, err);
	if (rc != ST_OK)
		errbuf_prefix(err, "store checkpoint at seq %" PRId64 ": ", seq);
	else if (seq_out)
		*seq_out = seq;
out:
	OPENSSL_free(sig);
	return rc;
}

int app_anchors_verify(struct hsm *h, struct db *db, const char *log_path, unsigned required,
		       const uint8_t *pub, size_t pub_len, struct app_anchor_report *rep,
		       struct errbuf *err)
{
	struct anchor tok, log;
	int rc;

	memset(rep, 0, sizeof(*rep));
	if ((rc = read_anchors(h, db, log_path, pub, pub_len, &tok, &log, err)))
		return rc;
	if (log_path && !log.have && (required & APP_ANCHOR_LOG))
		return errbuf_set(err, ST_ENOTFOUND, "checkpoint log %s: absent or empty", log_path);
	if (h && !tok.have && (required & APP_ANCHOR_TOKEN))
		return errbuf_set(err, ST_ENOTFOUND, "token '%s' holds no audit anchor for this chain"
				  " of station %s (`station checkpoint` writes one)", hsm_token_label(h),
				  db_station_id(db));
	if (log.have && (rc = app_anchor_check(db, log.what, log.seq, log.head, err)))
		return rc;
	if (tok.have && (rc = app_anchor_check(db, tok.what, tok.seq, tok.head, err)))
		return rc;
	rep->log_checked = log.have;
	rep->log_seq = log.seq;
	rep->token_checked = tok.have;
	rep->token_seq = tok.seq;
	return ST_OK;
}

void app_checkpointer_init(struct app_checkpointer *cp, int64_t every, const char *log_path)
{
	pthread_mutex_init(&cp->mu, NULL);
	cp->every = every < 1 ? 1 : every;
	cp->last_seq = 0;
	cp->log_path = log_path;
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
		rc = app_checkpoint_now(h, db, cp->log_path, &seq, err);
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
