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
 * - pl_hsm_checkpoint() signs a checkpoint of the audit chain head now (a
 *   no-op without events).
 * The line never includes this header: app/session.c wires it in.
 */
#ifndef STATION_APP_PL_HSM_H
#define STATION_APP_PL_HSM_H

#include "core/errbuf.h"
#include "config/profile.h"
#include "line/pipeline.h"

struct db;
struct pl_hsm;

ST_MUST_CHECK int  pl_hsm_open(const struct profile *p, struct db *db, struct pl_hsm **out,
			       struct errbuf *err);
void pl_hsm_ops(struct pl_hsm *h, struct pl_ca_ops *ops);
ST_MUST_CHECK int  pl_hsm_checkpoint(struct pl_hsm *h, struct errbuf *err);
void pl_hsm_close(struct pl_hsm *h);

#endif
