/*
 * audit_verify: walks each station's chain and checks its links, its hashes
 * and its signed checkpoints (db.h: db_audit_chain_verify_locked,
 * db_audit_tail_locked).  The chain's encoding is audit.c's.
 *
 * Verification walks each station's chain in seq order through the
 * (station_id, seq) index, holding a window of four row summaries: memory does
 * not grow with the log.  See classify() for how the first bad row is named.
 * Signed checkpoints are stored by db/checkpoint.c and checked here.
 */
#include "db/db_int.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t zero_hash[32];

/* ---- verification ------------------------------------------------------- */

/* What verify remembers of a row: enough to judge links, never the row itself. */
struct vrow {
	int     present;
	int64_t id, seq;
	int     self_ok;            /* stored hash == recomputed hash */
	int     hash_wf, prev_wf;   /* stored hashes are 64 lower-case hex */
	uint8_t hash[32], prev[32];
};

struct vstate {
	struct db     *db;
	EVP_MD_CTX    *md;
	EVP_MD        *sha256;         /* fetched once: implicit fetches cost per row */
	sqlite3_stmt  *ev, *cp;       /* this station's events and checkpoints */
	int            cp_have;        /* cp holds an unconsumed row */
	int            cp_done;        /* cp has no more rows */
	const char    *station;        /* exact bytes of this chain's station id */
	int            station_len;
	const uint8_t *trusted;        /* pinned checkpoint key, or NULL */
	size_t         trusted_len;
	int64_t        from_seq;       /* tail walk: the anchor row (0: whole chain) */
	const uint8_t *from_hash;      /* ... and the hash it must have */
	struct vrow    last;           /* the last row accepted */
	struct db_verify_result *res;
};

static int read_row(struct vstate *vs, struct vrow *r, struct errbuf *err)
{
	sqlite3_stmt *st = vs->ev;
	uint8_t h[32];
	int rc = sqlite3_step(st);

	memset(r, 0, sizeof(*r));
	if (rc == SQLITE_DONE)
		return ST_OK;
	if (rc != SQLITE_ROW)
		return db_sqlerr(vs->db, rc, err, "read audit events");
	r->present = 1;
	r->id = sqlite3_column_int64(st, 0);
	r->seq = sqlite3_column_int64(st, 1);
#define COL(i) (const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i)
	if (db_audit_hash_fields(vs->md, vs->sha256, COL(2), r->seq, COL(3), COL(4), COL(5), COL(6), COL(7), h))
		return errbuf_set(err, ST_ECRYPTO, "SHA-256 failed");
#undef COL
	r->prev_wf = !hex_decode_lower((const char *)sqlite3_column_text(st, 7),
				       (size_t)sqlite3_column_bytes(st, 7), r->prev, 32);
	r->hash_wf = !hex_decode_lower((const char *)sqlite3_column_text(st, 8),
				       (size_t)sqlite3_column_bytes(st, 8), r->hash, 32);
	if (!r->prev_wf)
		memset(r->prev, 0xff, 32);
	if (!r->hash_wf)
		memset(r->hash, 0xee, 32);
	r->self_ok = r->hash_wf && r->prev_wf && !memcmp(h, r->hash, 32);
	return ST_OK;
}

static void bad(struct vstate *vs, const struct vrow *r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void bad(struct vstate *vs, const struct vrow *r, const char *fmt, ...)
{
	va_list ap;

	vs->res->bad_rowid = r->id;
	vs->res->bad_seq = r->seq;
	va_start(ap, fmt);
	vsnprintf(vs->res->what, sizeof(vs->res->what), fmt, ap);
	va_end(ap);
}

/*
 * r is the first row that does not follow p.  pp and p are the two rows
 * accepted before it (absent at the start of a chain), n the row after it.
 * The first rule that fits names the tampering:
 *   inserted   p or r is not part of the chain: the row after it links to the
 *              row before it (r and n both claim to follow p: r is the intruder,
 *              since n's hash is the one the rest of the chain links to).
 *   reordered  r links to the row after it, or r is stored before p.
 *   deleted    seq jumps and the link is broken.
 *   gap        seq jumps but the link is intact (seq renumbered or skipped).
 *   edited     r's stored hash does not match its contents, or r follows p in
 *              seq but links to another hash (p rewritten and rehashed).
 */
static void classify(struct vstate *vs, const struct vrow *pp, const struct vrow *p,
		     const struct vrow *r, const struct vrow *n)
{
	const uint8_t *p_anchor = p->present ? p->hash : zero_hash;
	const uint8_t *pp_anchor = pp->present ? pp->hash : zero_hash;
	int64_t want_seq = p->present ? p->seq + 1 : 1;
	int link_ok = !memcmp(r->prev, p_anchor, 32);

	if (p->present && !link_ok && !memcmp(r->prev, pp_anchor, 32)) {
		bad(vs, p, "inserted: this row is not part of the chain (row id %lld, seq %lld links to the row before it)",
		    (long long)r->id, (long long)r->seq);
		return;
	}
	if (n->present && !memcmp(r->prev, n->hash, 32)) {
		bad(vs, r, "reordered: this row links to the row after it (id %lld, seq %lld)",
		    (long long)n->id, (long long)n->seq);
		return;
	}
	if (n->present && !memcmp(n->prev, p_anchor, 32)) {
		bad(vs, r, "inserted: this row is not part of the chain (the next row, id %lld, links to the row before it)",
		    (long long)n->id);
		return;
	}
	if (p->present && r->id <= p->id) {
		bad(vs, r, "reordered: stored before the row it follows (id %lld, seq %lld)",
		    (long long)p->id, (long long)p->seq);
		return;
	}
	if (r->seq < want_seq) {
		bad(vs, r, "reordered: seq %lld follows seq %lld", (long long)r->seq,
		    (long long)(want_seq - 1));
		return;
	}
	if (r->seq > want_seq) {
		if (link_ok)
			bad(vs, r, "sequence gap: seq jumps from %lld to %lld but the hash link is intact%s",
			    (long long)(want_seq - 1), (long long)r->seq,
			    r->self_ok ? "" : " (seq renumbered)");
		else if (r->seq - want_seq == 1)
			bad(vs, r, "deleted: 1 row (seq %lld) missing before this row",
			    (long long)want_seq);
		else
			bad(vs, r, "deleted: %lld rows (seq %lld..%lld) missing before this row",
			    (long long)(r->seq - want_seq), (long long)want_seq,
			    (long long)(r->seq - 1));
		return;
	}
	if (!r->self_ok) {
		bad(vs, r, "edited: %s", !r->hash_wf || !r->prev_wf ?
		    "a stored hash is malformed" : link_ok ?
		    "stored hash does not match the row's contents" :
		    "stored hash does not match the row's contents and prev_hash was changed");
		return;
	}
	if (p->present)
		bad(vs, p, "edited: row rewritten and rehashed (the next row, id %lld, links to a different hash)",
		    (long long)r->id);
	else
		bad(vs, r, "edited: first row of the chain does not link to the zero hash");
}

/* Checks the station's checkpoints with seq <= r->seq against accepted row r
 * (r absent: the chain ended).  1 on a bad checkpoint (res filled), 0 ok,
 * negative on a database error. */
static int check_checkpoints(struct vstate *vs, const struct vrow *r, struct errbuf *err)
{
	for (;;) {
		sqlite3_stmt *cp = vs->cp;
		const char *why = NULL;
		char head_hex[65], rhex[65];
		int64_t cid, cseq;
		int rc;

		if (vs->cp_done)
			return 0;
		if (!vs->cp_have) {
			rc = sqlite3_step(cp);
			if (rc == SQLITE_DONE) {
				vs->cp_done = 1;   /* stepping again would restart the query */
				return 0;
			}
			if (rc != SQLITE_ROW)
				return -db_sqlerr(vs->db, rc, err, "read checkpoints");
			vs->cp_have = 1;
		}
		cid = sqlite3_column_int64(cp, 0);
		cseq = sqlite3_column_int64(cp, 1);
		if (r->present && cseq > r->seq)
			return 0;
		vs->cp_have = 0;
		vs->res->bad_checkpoint = cid;
		snprintf(head_hex, sizeof(head_hex), "%s", (const char *)sqlite3_column_text(cp, 2));
		if (!r->present || cseq < r->seq) {
			vs->res->bad_seq = cseq;
			snprintf(vs->res->what, sizeof(vs->res->what),
				 "deleted: signed checkpoint %lld covers seq %lld, which is not in the chain",
				 (long long)cid, (long long)cseq);
			return 1;
		}
		hex_encode(r->hash, 32, rhex);
		if (strcmp(head_hex, rhex)) {
			bad(vs, r, "edited: chain hash at seq %lld differs from signed checkpoint %lld (rows up to here were rewritten)",
			    (long long)cseq, (long long)cid);
			vs->res->bad_checkpoint = cid;
			return 1;
		}
		if (vs->trusted && ((size_t)sqlite3_column_bytes(cp, 4) != vs->trusted_len ||
				    memcmp(sqlite3_column_blob(cp, 4), vs->trusted, vs->trusted_len)))
			why = "signed by a key other than the trusted audit key";
		else if (sqlite3_column_text(cp, 5) == NULL ||
			 strcasecmp((const char *)sqlite3_column_text(cp, 5), DB_CHECKPOINT_ALG))
			why = "unknown algorithm";
		else
			db_checkpoint_sig_ok(vs->station, cseq, head_hex, sqlite3_column_blob(cp, 3),
					  (size_t)sqlite3_column_bytes(cp, 3), sqlite3_column_blob(cp, 4),
					  (size_t)sqlite3_column_bytes(cp, 4), &why) == 0 ? (why = NULL) : 0;
		if (why) {
			bad(vs, r, "forged checkpoint %lld at seq %lld: %s", (long long)cid,
			    (long long)cseq, why);
			vs->res->bad_checkpoint = cid;
			return 1;
		}
		{
			uint8_t fp[32];
			unsigned int fl = 0;

			EVP_Digest(sqlite3_column_blob(cp, 4), (size_t)sqlite3_column_bytes(cp, 4),
				   fp, &fl, EVP_sha256(), NULL);
			hex_encode(fp, 32, vs->res->checkpoint_key);
		}
		vs->res->bad_checkpoint = 0;
		vs->res->checkpoints++;
	}
}

static const char SQL_FIRST_STATION[] = "SELECT min(station_id) FROM events";
static const char SQL_COUNT_EVENTS[] = "SELECT count(*) FROM events";
static const char SQL_NEXT_STATION[] =
	"SELECT station_id FROM events WHERE station_id > ? ORDER BY station_id LIMIT 1";
static const char SQL_STATION_EVENTS[] =
	"SELECT id, seq, station_id, ts, kind, actor, detail, prev_hash, hash"
	" FROM events WHERE station_id = ? ORDER BY seq, id";
static const char SQL_STATION_CHECKPOINTS[] =
	"SELECT id, seq, head_hash, signature, pubkey_der, algorithm"
	" FROM checkpoints WHERE station_id = ? ORDER BY seq, id";
static const char SQL_TAIL_EVENTS[] =
	"SELECT id, seq, station_id, ts, kind, actor, detail, prev_hash, hash"
	" FROM events WHERE station_id = ?1 AND seq >= ?2 ORDER BY seq, id";
static const char SQL_TAIL_CHECKPOINTS[] =
	"SELECT id, seq, head_hash, signature, pubkey_der, algorithm"
	" FROM checkpoints WHERE station_id = ?1 AND seq >= ?2 ORDER BY seq, id";
static const char SQL_ORPHAN_CHECKPOINT[] =
	"SELECT id, seq FROM checkpoints WHERE station_id NOT IN"
	" (SELECT station_id FROM events) ORDER BY id LIMIT 1";

/* One station's chain.  ST_OK intact, ST_ETAMPER with res filled, else error. */
static int verify_station(struct vstate *vs, struct errbuf *err)
{
	struct vrow w[4], *pp = &w[0], *p = &w[1], *r = &w[2], *n = &w[3], *t;
	int rc, c;

	memset(w, 0, sizeof(w));
	sqlite3_bind_text(vs->ev, 1, vs->station, vs->station_len, SQLITE_TRANSIENT);
	sqlite3_bind_text(vs->cp, 1, vs->station, vs->station_len, SQLITE_TRANSIENT);
	vs->cp_have = 0;
	vs->cp_done = 0;
	if ((rc = read_row(vs, r, err)) || (r->present && (rc = read_row(vs, n, err))))
		return rc;
	if (vs->from_seq > 0) {
		/* A tail walk starts at a row whose hash is known from outside (a
		 * verified checkpoint, the token's anchor): it stands for every row
		 * before it. */
		if (!r->present || r->seq != vs->from_seq || !r->self_ok ||
		    memcmp(r->hash, vs->from_hash, 32)) {
			if (r->present)
				bad(vs, r, "rolled back or rewritten: the chain at seq %lld is not the anchored head",
				    (long long)vs->from_seq);
			else
				snprintf(vs->res->what, sizeof(vs->res->what),
					 "rolled back: no event at anchored seq %lld", (long long)vs->from_seq);
			vs->res->bad_seq = vs->from_seq;
			return ST_ETAMPER;
		}
		vs->res->events++;
		if ((c = check_checkpoints(vs, r, err)))
			return c > 0 ? ST_ETAMPER : -c;
		t = pp; pp = p; p = r; r = n; n = t;
		if (r->present && (rc = read_row(vs, n, err)))
			return rc;
	}
	while (r->present) {
		const uint8_t *anchor = p->present ? p->hash : zero_hash;

		if (!r->self_ok || memcmp(r->prev, anchor, 32) ||
		    r->seq != (p->present ? p->seq + 1 : 1) || (p->present && r->id <= p->id)) {
			classify(vs, pp, p, r, n);
			return ST_ETAMPER;
		}
		vs->res->events++;
		if ((c = check_checkpoints(vs, r, err)))
			return c > 0 ? ST_ETAMPER : -c;
		t = pp; pp = p; p = r; r = n; n = t;
		if (r->present && (rc = read_row(vs, n, err)))
			return rc;
	}
	if ((c = check_checkpoints(vs, r, err)))
		return c > 0 ? ST_ETAMPER : -c;
	vs->last = *p;
	return ST_OK;
}

int db_audit_chain_verify_locked(struct db *db, const uint8_t *trusted_pubkey_der,
				 size_t trusted_len, struct db_verify_result *res, struct errbuf *err)
{
	struct vstate vs;
	sqlite3_stmt *next = NULL;
	char *station = NULL, *grown;
	int rc = ST_OK, first = 1, station_len = 0;

	memset(res, 0, sizeof(*res));
	memset(&vs, 0, sizeof(vs));
	vs.db = db;
	vs.res = res;
	vs.trusted = trusted_pubkey_der;
	vs.trusted_len = trusted_len;
	vs.md = EVP_MD_CTX_new();
	vs.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!vs.md || !vs.sha256) {
		EVP_MD_CTX_free(vs.md);
		EVP_MD_free(vs.sha256);
		return errbuf_set(err, ST_ECRYPTO, "OpenSSL: no SHA-256");
	}
	if (!(vs.ev = db_stmt(db, SQL_STATION_EVENTS, err)) ||
	    !(vs.cp = db_stmt(db, SQL_STATION_CHECKPOINTS, err))) {
		rc = ST_EDB;
		goto out;
	}
	/* Station ids in order, each found by an index seek (min() for the first,
	 * so that even an empty station id is walked). */
	for (;; first = 0) {
		if (!(next = db_stmt(db, first ? SQL_FIRST_STATION : SQL_NEXT_STATION, err))) {
			rc = ST_EDB;
			goto out;
		}
		if (!first)
			sqlite3_bind_text(next, 1, station, station_len, SQLITE_TRANSIENT);
		rc = sqlite3_step(next);
		if (rc == SQLITE_DONE || (rc == SQLITE_ROW && sqlite3_column_type(next, 0) == SQLITE_NULL))
			break;
		if (rc != SQLITE_ROW) {
			rc = db_sqlerr(db, rc, err, "list stations");
			goto out;
		}
		/* The exact id, whatever its length: a truncated copy would find the
		 * same station again as "next" and never end. */
		station_len = sqlite3_column_bytes(next, 0);
		if (!(grown = realloc(station, (size_t)station_len + 1))) {
			rc = errbuf_set(err, ST_ENOMEM, "out of memory");
			goto out;
		}
		station = grown;
		memcpy(station, sqlite3_column_text(next, 0), (size_t)station_len);
		station[station_len] = '\0';
		sqlite3_reset(next);
		sqlite3_reset(vs.ev);
		sqlite3_reset(vs.cp);
		vs.station = station;
		vs.station_len = station_len;
		rc = verify_station(&vs, err);
		if (rc == ST_ETAMPER) {
			snprintf(res->station_id, sizeof(res->station_id), "%s", station);
			errbuf_set(err, ST_ETAMPER, "audit chain of station %s broken at row id %lld, seq %lld: %s",
				   station, (long long)res->bad_rowid, (long long)res->bad_seq, res->what);
		}
		if (rc)
			goto out;
	}
	sqlite3_reset(next);
	/* Rows no chain walked (a NULL station id: the schema was altered). */
	if (!(next = db_stmt(db, SQL_COUNT_EVENTS, err))) {
		rc = ST_EDB;
		goto out;
	}
	if ((rc = sqlite3_step(next)) != SQLITE_ROW) {
		rc = db_sqlerr(db, rc, err, "count events");
		goto out;
	}
	if (sqlite3_column_int64(next, 0) != res->events) {
		snprintf(res->what, sizeof(res->what), "inserted: %lld rows belong to no station's chain",
			 (long long)(sqlite3_column_int64(next, 0) - res->events));
		rc = errbuf_set(err, ST_ETAMPER, "audit chain broken: %s", res->what);
		goto out;
	}
	sqlite3_reset(next);
	/* Checkpoints of a station whose every event is gone. */
	if (!(next = db_stmt(db, SQL_ORPHAN_CHECKPOINT, err))) {
		rc = ST_EDB;
		goto out;
	}
	if ((rc = sqlite3_step(next)) == SQLITE_ROW) {
		res->bad_checkpoint = sqlite3_column_int64(next, 0);
		res->bad_seq = sqlite3_column_int64(next, 1);
		snprintf(res->what, sizeof(res->what),
			 "deleted: signed checkpoint %lld covers seq %lld of a station with no events left",
			 (long long)res->bad_checkpoint, (long long)res->bad_seq);
		rc = errbuf_set(err, ST_ETAMPER, "audit chain broken: %s", res->what);
	} else if (rc != SQLITE_DONE) {
		rc = db_sqlerr(db, rc, err, "read checkpoints");
	} else {
		rc = ST_OK;
	}
out:
	if (vs.ev)
		sqlite3_reset(vs.ev);
	if (vs.cp)
		sqlite3_reset(vs.cp);
	if (next)
		sqlite3_reset(next);
	free(station);
	EVP_MD_CTX_free(vs.md);
	EVP_MD_free(vs.sha256);
	return rc;
}


int db_audit_tail_locked(struct db *db, int64_t from_seq, const uint8_t from_hash[32],
			 const uint8_t *trusted, size_t trusted_len,
			 struct db_verify_result *res, int64_t *head_seq, uint8_t head_hash[32],
			 struct errbuf *err)
{
	struct vstate vs;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&vs, 0, sizeof(vs));
	vs.db = db;
	vs.res = res;
	vs.trusted = trusted;
	vs.trusted_len = trusted_len;
	vs.from_seq = from_seq > 0 && from_hash ? from_seq : 0;
	vs.from_hash = from_hash;
	vs.station = db->station_id;
	vs.station_len = (int)strlen(db->station_id);
	vs.md = EVP_MD_CTX_new();
	vs.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!vs.md || !vs.sha256) {
		rc = errbuf_set(err, ST_ECRYPTO, "OpenSSL: no SHA-256");
		goto out;
	}
	if (!(vs.ev = db_stmt(db, SQL_TAIL_EVENTS, err)) ||
	    !(vs.cp = db_stmt(db, SQL_TAIL_CHECKPOINTS, err))) {
		rc = ST_EDB;
		goto out;
	}
	/* verify_station binds ?1; the walk starts at the anchor row */
	sqlite3_bind_int64(vs.ev, 2, vs.from_seq);
	sqlite3_bind_int64(vs.cp, 2, vs.from_seq);
	rc = verify_station(&vs, err);
	if (rc == ST_ETAMPER) {
		snprintf(res->station_id, sizeof(res->station_id), "%s", db->station_id);
		errbuf_set(err, ST_ETAMPER, "audit chain of station %s broken at seq %lld: %s",
			   db->station_id, (long long)res->bad_seq, res->what);
	} else if (rc == ST_OK) {
		*head_seq = vs.last.present ? vs.last.seq : 0;
		memcpy(head_hash, vs.last.present ? vs.last.hash : zero_hash, 32);
	}
out:
	if (vs.ev)
		sqlite3_reset(vs.ev);
	if (vs.cp)
		sqlite3_reset(vs.cp);
	EVP_MD_CTX_free(vs.md);
	EVP_MD_free(vs.sha256);
	return rc;
}
