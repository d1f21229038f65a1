/* hsm_checkpoint: audit head signatures.  See hsm_checkpoint.h. */
#include "hsm/hsm_checkpoint.h"
#include "core/hex.h"

#include <inttypes.h>
#include <stdio.h>


int hsm_checkpoint_message(char *buf, size_t size, const char *station_id,
			   int64_t seq, const uint8_t head_hash[32])
{
	char hex[65];
	int n;

	hex_encode(head_hash, 32, hex);
	n = snprintf(buf, size, "station-audit-checkpoint-v1\n%s\n%" PRId64 "\n%s\n",
		     station_id, seq, hex);
	return n < 0 || (size_t)n >= size ? -1 : n;
}

int hsm_checkpoint_sign(struct hsm *h, const char *station_id, int64_t seq,
			const uint8_t head_hash[32], uint8_t **sig, size_t *sig_len,
			struct errbuf *err)
{
	char msg[HSM_CHECKPOINT_MSG_MAX];
	const uint8_t *pub;
	size_t pub_len;
	int n;

	*sig = NULL;
	*sig_len = 0;
	if (hsm_audit_pubkey(h, &pub, &pub_len) != ST_OK)
		return errbuf_set(err, ST_ENOTFOUND, "token '%s': no audit key configured (audit_key)",
				  hsm_token_label(h));
	n = hsm_checkpoint_message(msg, sizeof(msg), station_id, seq, head_hash);
	if (n < 0)
		return errbuf_set(err, ST_EINVAL, "station id too long for a checkpoint");
	return hsm_audit_sign(h, (const uint8_t *)msg, (size_t)n, sig, sig_len, err);
}
