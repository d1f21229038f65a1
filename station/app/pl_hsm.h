/*
 * pl_hsm: the line's certificate authority (struct pl_ca_ops of
 * line/pipeline.h) over hsm/, and the audit checkpoints the line signs.
 *
 * Contract
 * - pl_hsm_open() opens the profile's token with its [hsm] keys; hsm_open runs
 *   the pre-flight (PIN, CA key and certificate, audit key), so a station that
 *   gets a handle can sign.  The issue context is built from the profile's
 *   certificate template, the CSR policy (hsm/csr_policy.h) from its key type.
 *   db is the certificate store (write-ahead records).
 * - pl_hsm_ops() fills the CA interface the line calls ({check_csr, sign,
 *   csr_free}); thread-safe.
 * - pl_hsm_watch() starts the reconnector: when a signature fails on the
 *   token's transport (hsm_ckr_is_transport: the remote server went away, the
 *   token was unplugged) the unit in progress FAILs with hsm_unreachable, the
 *   bus gets EV_HSM_STATE FAIL (reason_code hsm_unreachable), and a thread
 *   reopens the token (hsm_reopen: one login per attempt) with a backoff of
 *   100 ms doubling to 1 s (plus up to 50% jitter), until it is back (EV_HSM_STATE OK) or
 *   pl_hsm_close() stops it (the wait wakes at once).  A refused PIN is never
 *   tried again: EV_HSM_STATE FAIL (reason hsm_pin) and the token stays down.
 *   While it is down a unit reaching signing waits up to 1.5 s for it, then
 *   FAILs with hsm_unreachable without touching the token.
 * - pl_hsm_anchors_check() compares the checkpoint log and the token's anchor
 *   (those present) with the database: ST_ETAMPER naming a rollback
 *   (app_anchors_verify); ST_OK without an audit key.
 * - pl_hsm_checkpoint() signs a checkpoint of the audit chain head now (a
 *   no-op without events).  Every checkpoint the line signs (every 100
 *   events and at stop) goes through app/checkpoint.h: verified first, and
 *   appended to the checkpoint log log_path (NULL: none; the caller keeps
 *   the string alive) and the token's anchor.
 * The line never includes this header: app/session.c wires it in.
 */
#ifndef STATION_APP_PL_HSM_H
#define STATION_APP_PL_HSM_H

#include "core/errbuf.h"
#include "config/profile.h"
#include "line/pipeline.h"

struct db;
struct pl_hsm;

ST_MUST_CHECK int  pl_hsm_open(const struct profile *p, struct db *db, const char *log_path,
			       struct pl_hsm **out,
			       struct errbuf *err);
void pl_hsm_ops(struct pl_hsm *h, struct pl_ca_ops *ops);
struct ev_bus;
ST_MUST_CHECK int  pl_hsm_watch(struct pl_hsm *h, struct ev_bus *bus, struct errbuf *err);
ST_MUST_CHECK int  pl_hsm_checkpoint(struct pl_hsm *h, struct errbuf *err);
ST_MUST_CHECK int  pl_hsm_anchors_check(struct pl_hsm *h, struct errbuf *err);
void pl_hsm_close(struct pl_hsm *h);

#endif
