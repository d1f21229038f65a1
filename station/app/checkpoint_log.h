/*
 * checkpoint_log: the checkpoint log, an anchor of the audit chain kept
 * outside the database's directory.  Each signed checkpoint is appended as one
 * line (O_APPEND, fsynced before the checkpoint is stored in the database):
 *
 *   "v1 <station_id> <chain> <seq> <head_hash_hex> <time ISO-8601 UTC> <signature_hex>\n"
 *
 * chain names the chain among those of one station id (app_chain_id: a
 * database made afresh with `station init` starts another chain).
 * the signature being the checkpoint's (hsm/hsm_checkpoint.h), so a line can
 * be checked with the audit public key.  Whoever copies an older database over
 * the current one does not roll this file back with it.
 *
 * Contract
 * - cplog_default_path(): $XDG_STATE_HOME/station/<station_id>.<chain>.checkpoints,
 *   or the same under $HOME/.local/state/station/.
 * - cplog_append() refuses (ST_EINVAL) a log in the database's own directory
 *   (one copy would take both), creates the file 0600 and its directory 0700.
 * - cplog_last() reads the last line (only the file's last 4 KiB: the file
 *   only grows); ST_ENOTFOUND when the file is absent or has no line,
 *   ST_ETAMPER when the last line does not parse or is another chain's.
 */
#ifndef STATION_APP_CHECKPOINT_LOG_H
#define STATION_APP_CHECKPOINT_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"

#define CPLOG_PATH_MAX 4096
#define CPLOG_SIG_MAX  512

struct cplog_entry {
	int64_t seq;
	uint8_t head[32];
	char    ts[40];
	uint8_t sig[CPLOG_SIG_MAX];
	size_t  sig_len;
};

ST_MUST_CHECK int cplog_default_path(const char *station_id, const char *chain, char *out,
				     size_t size, struct errbuf *err);
ST_MUST_CHECK int cplog_append(const char *path, const char *db_path, const char *station_id,
			       const char *chain, int64_t seq, const uint8_t head[32],
			       const uint8_t *sig, size_t sig_len, struct errbuf *err);
ST_MUST_CHECK int cplog_last(const char *path, const char *station_id, const char *chain,
			     struct cplog_entry *e, struct errbuf *err);

#endif
