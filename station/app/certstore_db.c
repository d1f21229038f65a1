/* certstore_db: see certstore_db.h. */
#include "app/certstore_db.h"
#include "hsm/issue.h"

/* The issuing context reserves up to ISSUE_SERIAL_BATCH_MAX serials in one
 * call, and voids what is left of its pool (two batches at most) in one. */
_Static_assert(2 * ISSUE_SERIAL_BATCH_MAX <= DB_CERT_RESERVE_MAX,
	       "a reservation, and the pool's release, fit one db_cert_reserve()/db_cert_void()");

static int seen_by(void *ctx, const char *pubkey_hash, const char *unique_id, int *out,
		   struct errbuf *err)
{
	return db_pubkey_seen_by_other(ctx, pubkey_hash, unique_id, out, err);
}

static int seen(void *ctx, const char *pubkey_hash, int *out, struct errbuf *err)
{
	return db_pubkey_seen(ctx, pubkey_hash, out, err);
}

static int reserve(void *ctx, const char *const *serials, size_t n, struct errbuf *err)
{
	return db_cert_reserve(ctx, serials, n, err);
}

static int issued(void *ctx, const char *serial_hex, int64_t unit_id, const char *unique_id,
		  const char *pubkey_hash, const uint8_t *der, size_t der_len, struct errbuf *err)
{
	return db_cert_issued(ctx, serial_hex, unit_id, unique_id, pubkey_hash, der, der_len, err);
}

static int release(void *ctx, const char *const *serials, size_t n, struct errbuf *err)
{
	return db_cert_void(ctx, serials, n, err);
}

static int revoke(void *ctx, const char *serial_hex, const char *reason, const char *actor,
		  struct errbuf *err)
{
	return db_cert_revoke(ctx, serial_hex, reason, actor, err);
}

struct revoked_walk {
	int (*fn)(const struct hsm_revoked *r, void *arg);
	void *arg;
};

static int one_revoked(const struct db_revoked *c, void *ctx)
{
	const struct revoked_walk *w = ctx;
	struct hsm_revoked r = {
		.serial_hex = c->serial_hex,
		.reason = c->reason,
		.revoked_ms = c->revoked_ms,
	};

	return w->fn(&r, w->arg);
}

/* From the chain's revocation events, not the table's status (db/crl.c). */
static int foreach_revoked(void *ctx, int (*fn)(const struct hsm_revoked *r, void *arg),
			   void *arg, struct errbuf *err)
{
	struct revoked_walk w = { fn, arg };

	return db_crl_foreach_revoked(ctx, one_revoked, &w, err);
}

static int crl_number(void *ctx, int64_t entries, int64_t *number, struct errbuf *err)
{
	return db_crl_next(ctx, entries, "station", number, err);
}

void app_certstore_db(struct hsm_certstore *s, struct db *db)
{
	s->ctx = db;
	s->pubkey_seen = seen;
	s->pubkey_seen_by = seen_by;
	s->reserve = reserve;
	s->issued = issued;
	s->release = release;
	s->revoke = revoke;
	s->foreach_revoked = foreach_revoked;
	s->crl_number = crl_number;
}

/* ---- the guarded store: each op passes through to the database's ---------- */

static int g_seen(void *ctx, const char *pubkey_hash, int *out, struct errbuf *err)
{
	return seen(((struct app_certstore_guarded *)ctx)->db, pubkey_hash, out, err);
}

static int g_reserve(void *ctx, const char *const *serials, size_t n, struct errbuf *err)
{
	struct app_certstore_guarded *g = ctx;
	int rc;

	if (g->guard && (rc = g->guard(g->guard_ctx, serials, n, err)))
		return rc;
	return reserve(g->db, serials, n, err);
}

static int g_issued(void *ctx, const char *serial_hex, int64_t unit_id, const char *unique_id,
		    const char *pubkey_hash, const uint8_t *der, size_t der_len, struct errbuf *err)
{
	return issued(((struct app_certstore_guarded *)ctx)->db, serial_hex, unit_id, unique_id,
		      pubkey_hash, der, der_len, err);
}

static int g_release(void *ctx, const char *const *serials, size_t n, struct errbuf *err)
{
	return release(((struct app_certstore_guarded *)ctx)->db, serials, n, err);
}

static int g_revoke(void *ctx, const char *serial_hex, const char *reason, const char *actor,
		    struct errbuf *err)
{
	return revoke(((struct app_certstore_guarded *)ctx)->db, serial_hex, reason, actor, err);
}

static int g_foreach_revoked(void *ctx, int (*fn)(const struct hsm_revoked *r, void *arg),
			     void *arg, struct errbuf *err)
{
	return foreach_revoked(((struct app_certstore_guarded *)ctx)->db, fn, arg, err);
}

static int g_crl_number(void *ctx, int64_t entries, int64_t *number, struct errbuf *err)
{
	return crl_number(((struct app_certstore_guarded *)ctx)->db, entries, number, err);
}

void app_certstore_db_guarded(struct hsm_certstore *s, struct app_certstore_guarded *g)
{
	s->ctx = g;
	s->pubkey_seen = g_seen;
	s->reserve = g_reserve;
	s->issued = g_issued;
	s->release = g_release;
	s->revoke = g_revoke;
	s->foreach_revoked = g_foreach_revoked;
	s->crl_number = g_crl_number;
}
