/*
 * factory_verify: the stations' chains and rows in the ledger.  See
 * factory_verify.h.
 */
#include "app/factory_verify.h"

#include "db/db.h"
#include "db/rows_content.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct vchain {
	const char *station_id;
	struct db *journal;       /* this station's journal, or NULL */
	int64_t expect, rows;
	char prev[65];
	char *bad;
	size_t badcap;
	struct errbuf *err;
};

struct local_row {
	int found, same;
	const struct ledger_event *e;
};

static int local_one(const struct db_chain_event *le, void *ctx)
{
	struct local_row *lr = ctx;
	const struct ledger_event *e = lr->e;

	lr->found = 1;
	lr->same = le->seq == e->seq && !strcmp(le->ts, e->ts) && !strcmp(le->kind, e->kind) &&
		   !strcmp(le->actor, e->actor) && !strcmp(le->detail, e->detail) &&
		   !strcmp(le->prev_hash, e->prev_hash) && !strcmp(le->hash, e->hash);
	return 1;
}

static int verify_event(const struct ledger_event *e, void *ctx)
{
	struct vchain *v = ctx;
	char h[65];

	if (e->seq != v->expect) {
		snprintf(v->bad, v->badcap, "event %" PRId64 " follows event %" PRId64 " (a gap)",
			 e->seq, v->expect - 1);
		return 1;
	}
	if (strcmp(e->prev_hash, v->prev)) {
		snprintf(v->bad, v->badcap, "event %" PRId64 " does not link to event %" PRId64,
			 e->seq, e->seq - 1);
		return 1;
	}
	if (db_audit_event_hash_hex(v->station_id, e->seq, e->ts, e->kind, e->actor, e->detail,
				    e->prev_hash, h) || strcmp(h, e->hash)) {
		snprintf(v->bad, v->badcap, "event %" PRId64 " was edited (its hash does not"
			 " match its content)", e->seq);
		return 1;
	}
	if (v->journal) {
		struct local_row lr = { .e = e };

		if (db_audit_since(v->journal, e->seq - 1, 1, local_one, &lr, v->err)) {
			snprintf(v->bad, v->badcap, "journal: %.300s", v->err->msg);
			return 1;
		}
		if (!lr.found || !lr.same) {
			snprintf(v->bad, v->badcap, "event %" PRId64 " %s the journal", e->seq,
				 lr.found ? "differs from" : "is not in");
			return 1;
		}
	}
	snprintf(v->prev, sizeof(v->prev), "%s", e->hash);
	v->expect++;
	v->rows++;
	return 0;
}

/* ---- rows ------------------------------------------------------------------ */

struct vrows {
	struct factory_verify_station *s;
	int64_t more;              /* bad rows after the first */
};

static int row_bad(struct vrows *v, const struct ledger_row_check *r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The first bad row is named, the others counted. */
static int row_bad(struct vrows *v, const struct ledger_row_check *r, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	if (v->s->bad[0]) {
		v->more++;
		return 0;
	}
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(v->s->bad, sizeof(v->s->bad), "row %.32s %.96s %s", r->table, r->key, why);
	return 0;
}

static int verify_row(const struct ledger_row_check *r, void *ctx)
{
	struct vrows *v = ctx;
	struct db_row_content c;
	struct errbuf e;
	char h[65], lot[72];
	int rc;

	v->s->rows++;
	if (!r->event_seq)
		return row_bad(v, r, "is in the ledger without a row event (seq %" PRId64 ")",
			       r->row_seq);
	if (!strcmp(r->event_h, "deleted"))
		return r->content ? row_bad(v, r, "is in the ledger but was deleted at seq %"
					    PRId64, r->event_seq) : 0;
	if (!r->content)
		return row_bad(v, r, "is missing from the ledger (its latest row event is seq %"
			       PRId64 ")", r->event_seq);
	if (r->row_seq != r->event_seq)
		return row_bad(v, r, "is stale in the ledger (seq %" PRId64 ", its latest row"
			       " event is seq %" PRId64 ")", r->row_seq, r->event_seq);
	if ((rc = db_row_content_parse(r->table, r->key, r->content, &c, &e)))
		return row_bad(v, r, "has a malformed content in the ledger (seq %" PRId64 ")",
			       r->row_seq);
	rc = db_row_content_hash(&c, h, &e);
	if (rc == ST_OK && strcmp(h, r->event_h))
		rc = row_bad(v, r, "differs from its row event (seq %" PRId64 ")", r->row_seq);
	else if (rc == ST_OK && !strcmp(r->table, "units") &&
		 (db_row_col_text(db_row_content_col(&c, "lot"), lot, sizeof(lot)) ||
		  strcmp(lot, r->lot)))
		rc = row_bad(v, r, "is indexed under another lot than its own (seq %" PRId64 ")",
			     r->row_seq);
	db_row_content_free(&c);
	return rc;
}

/* ---- stations ---------------------------------------------------------------- */

struct vall {
	struct ledger *l;
	struct db *journal;
	const char *journal_station;
	int (*fn)(const struct factory_verify_station *s, void *ctx);
	void *ctx;
	int bad, n, rc, stop;
	struct errbuf *err;
};

static int verify_station(const struct ledger_station *ls, void *ctx)
{
	struct vall *va = ctx;
	struct factory_verify_station s;
	struct vchain v = { .station_id = ls->station_id, .expect = 1, .err = va->err };
	struct vrows vr = { &s, 0 };

	memset(&s, 0, sizeof(s));
	snprintf(s.station_id, sizeof(s.station_id), "%s", ls->station_id);
	v.bad = s.bad;
	v.badcap = sizeof(s.bad);
	memset(v.prev, '0', 64);
	v.prev[64] = '\0';
	if (va->journal && !strcmp(ls->station_id, va->journal_station))
		v.journal = va->journal;
	s.journal = v.journal != NULL;
	va->n++;
	if ((va->rc = ledger_events(va->l, ls->station_id, verify_event, &v, va->err)))
		return 1;
	s.events = v.rows;
	if (!s.bad[0] && v.rows != ls->head_seq)
		snprintf(s.bad, sizeof(s.bad), "the ledger's head says %" PRId64 " events, the"
			 " chain holds %" PRId64, ls->head_seq, v.rows);
	/* the rows are proven by the events' hashes: only after the chain */
	if (!s.bad[0]) {
		if ((va->rc = ledger_rows_check(va->l, ls->station_id, &s.rows_from, verify_row,
						&vr, va->err)))
			return 1;
		if (vr.more) {
			size_t len = strlen(s.bad);

			snprintf(s.bad + len, sizeof(s.bad) - len, " (and %" PRId64 " more rows)",
				 vr.more);
		}
	}
	if (!s.bad[0] && v.journal) {
		int64_t lseq = 0;
		uint8_t lh[32];

		if (db_audit_head(v.journal, &lseq, lh, va->err) == ST_OK && lseq > v.rows)
			s.journal_more = lseq - v.rows;
	}
	if (s.bad[0])
		va->bad++;
	if (va->fn && (va->stop = va->fn(&s, va->ctx)))
		return 1;
	return 0;
}

int factory_verify(struct ledger *l, struct db *journal, const char *journal_station,
		   int (*fn)(const struct factory_verify_station *s, void *ctx), void *ctx,
		   int *bad, int *n, struct errbuf *err)
{
	struct vall va = { .l = l, .journal = journal, .journal_station = journal_station,
			   .fn = fn, .ctx = ctx, .err = err };
	int rc;

	errbuf_clear(err);
	rc = ledger_stations(l, verify_station, &va, err);
	*bad = va.bad;
	*n = va.n;
	return rc ? rc : va.rc;
}
