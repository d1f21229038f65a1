/*
 * factory_lot: a lot of the whole factory, loaded from the ledger into a
 * scratch database of the station's own schema.  See factory_lot.h.
 */
#include "app/factory_lot.h"

#include "app/factory_verify.h"
#include "db/db.h"
#include "db/rows_content.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATIONS_MAX 256

struct unit_ref {
	int station;               /* index in stations[] */
	int64_t old_id, new_id;
};

struct factory_lot {
	char dir[512], path[600];
	struct db *db;
	struct factory_lot_stats stats;
	char stations[STATIONS_MAX][LEDGER_ID_LEN];
	int nstations;
	struct unit_ref *units;    /* by new id - 1 while loading, then sorted */
	struct unit_ref *by_new;   /* by new id - 1 */
	size_t nunits, cap;
	int64_t next_allow, next_profile;
	int lot_loaded;
	int sorted;
};

/* ---- the verify ------------------------------------------------------------ */

struct first_bad {
	struct factory_lot_stats *stats;
	char line[480];
};

static int tally(const struct factory_verify_station *s, void *ctx)
{
	struct first_bad *fb = ctx;

	fb->stats->stations++;
	fb->stats->events += s->events;
	fb->stats->rows += s->rows;
	if (s->bad[0] && !fb->line[0])
		snprintf(fb->line, sizeof(fb->line), "station %s: %s", s->station_id, s->bad);
	return 0;
}

/* ---- loading ----------------------------------------------------------------- */

static int station_index(struct factory_lot *f, const char *id, struct errbuf *err)
{
	for (int i = 0; i < f->nstations; i++)
		if (!strcmp(f->stations[i], id))
			return i;
	if (f->nstations == STATIONS_MAX) {
		errbuf_set(err, ST_EINVAL, "ledger: more than %d stations in one lot", STATIONS_MAX);
		return -1;
	}
	snprintf(f->stations[f->nstations], LEDGER_ID_LEN, "%s", id);
	return f->nstations++;
}

static int ref_cmp(const void *a, const void *b)
{
	const struct unit_ref *x = a, *y = b;

	if (x->station != y->station)
		return x->station < y->station ? -1 : 1;
	return x->old_id < y->old_id ? -1 : x->old_id > y->old_id;
}

/* The scratch id of a station's unit, or 0 (units are all loaded by then). */
static int64_t new_unit_id(struct factory_lot *f, int station, int64_t old_id)
{
	struct unit_ref key = { station, old_id, 0 }, *hit;

	if (!f->sorted) {
		qsort(f->units, f->nunits, sizeof(*f->units), ref_cmp);
		f->sorted = 1;
	}
	hit = bsearch(&key, f->units, f->nunits, sizeof(*f->units), ref_cmp);
	return hit ? hit->new_id : 0;
}

struct load {
	struct factory_lot *f;
	struct errbuf *err;
};

static int set_int(struct db_row_content *c, const char *col, int64_t v, struct errbuf *err)
{
	return db_row_content_set_int(c, col, v, err);
}

static int col_int(const struct db_row_content *c, const char *col, int64_t *v)
{
	int ok;

	*v = db_row_col_int(db_row_content_col(c, col), &ok);
	return ok;
}

static int load_one(const struct ledger_row_at *r, void *ctx)
{
	struct load *ld = ctx;
	struct factory_lot *f = ld->f;
	struct db_row_content c;
	int64_t v;
	int st, rc, skip_dup = 0;

	if ((st = station_index(f, r->station_id, ld->err)) < 0)
		return ST_EINVAL;
	if ((rc = db_row_content_parse(r->table, r->key, r->content, &c, ld->err)))
		return rc;
	if (!strcmp(r->table, "lots")) {
		/* one row for the lot, whichever station created it first here */
		if (f->lot_loaded) {
			db_row_content_free(&c);
			return ST_OK;
		}
		rc = set_int(&c, "id", 1, ld->err);
		f->lot_loaded = 1;
	} else if (!strcmp(r->table, "allowlist")) {
		rc = set_int(&c, "id", ++f->next_allow, ld->err);
		if (rc == ST_OK)
			rc = set_int(&c, "lot_id", 1, ld->err);
		skip_dup = 1;          /* the same id on two stations' allowlists: once */
	} else if (!strcmp(r->table, "profiles")) {
		rc = set_int(&c, "id", ++f->next_profile, ld->err);
		skip_dup = 1;
	} else if (!strcmp(r->table, "units")) {
		struct unit_ref *u;

		if (!col_int(&c, "id", &v)) {
			db_row_content_free(&c);
			return errbuf_set(ld->err, ST_EINVAL, "ledger: unit %s of station %s has no"
					  " integer id", r->key, r->station_id);
		}
		if (f->nunits == f->cap) {
			size_t cap = f->cap ? f->cap * 2 : 256;
			struct unit_ref *p = realloc(f->units, cap * sizeof(*p));

			if (!p) {
				db_row_content_free(&c);
				return errbuf_set(ld->err, ST_ENOMEM, "out of memory");
			}
			f->units = p;
			f->cap = cap;
		}
		u = &f->units[f->nunits++];
		u->station = st;
		u->old_id = v;
		u->new_id = (int64_t)f->nunits;
		rc = set_int(&c, "id", u->new_id, ld->err);
		f->stats.units++;
	} else if (!strcmp(r->table, "certificates")) {
		int64_t nid = col_int(&c, "unit_id", &v) ? new_unit_id(f, st, v) : 0;

		/* a serial with no unit of this lot is no certificate of it */
		if (!nid) {
			db_row_content_free(&c);
			return ST_OK;
		}
		rc = set_int(&c, "unit_id", nid, ld->err);
		f->stats.certificates++;
	}
	if (rc == ST_OK) {
		rc = db_scratch_insert(f->db, &c, ld->err);
		if (rc == ST_EEXIST && skip_dup)
			rc = ST_OK;
		else if (rc == ST_OK && !strcmp(r->table, "allowlist"))
			f->stats.allowlisted++;
	}
	db_row_content_free(&c);
	return rc;
}

/* A row the ledger holds as data of its own, not a station's (a lot known
 * only from the shared allowlist, an id of that list): made as content, so
 * it is loaded by the same code as the stations' rows. */
static int put_made(struct factory_lot *f, const char *table, json_t *cols, struct errbuf *err)
{
	struct db_row_content c;
	char *js = cols ? json_dumps(cols, JSON_COMPACT) : NULL;
	int rc;

	json_decref(cols);
	if (!js)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	rc = db_row_content_parse(table, "", js, &c, err);
	free(js);
	if (rc)
		return rc;
	rc = db_scratch_insert(f->db, &c, err);
	db_row_content_free(&c);
	return rc;
}

static int put_lot(struct factory_lot *f, const char *lot, struct errbuf *err)
{
	f->lot_loaded = 1;
	return put_made(f, "lots", json_pack("[[s,s,s],[s,s,s],[s,s,s]]", "id", "integer", "1",
					     "name", "text", lot, "created_ms", "integer", "0"),
			err);
}

struct shared {
	struct factory_lot *f;
	const char *lot;
	struct errbuf *err;
};

/* An id of the ledger's shared list of the lot: the line accepted boards by
 * it, so the lot's yield counts it (once, as any id). */
static int put_shared_id(const char *unique_id, void *ctx)
{
	struct shared *sh = ctx;
	struct factory_lot *f = sh->f;
	char id[24];
	int rc;

	if (!f->lot_loaded && (rc = put_lot(f, sh->lot, sh->err)))
		return rc;
	snprintf(id, sizeof(id), "%lld", (long long)++f->next_allow);
	rc = put_made(f, "allowlist", json_pack("[[s,s,s],[s,s,s],[s,s,s],[s,s,s],[s,s,s]]",
						"id", "integer", id, "lot_id", "integer", "1",
						"unique_id", "text", unique_id,
						"import_sha256", "text", "ledger",
						"line", "integer", "0"), sh->err);
	if (rc == ST_OK)
		f->stats.allowlisted++;
	return rc == ST_EEXIST ? ST_OK : rc;
}

/* ---- open / close ------------------------------------------------------------- */

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[800];

	if (d) {
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
				snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
				unlink(p);
			}
		closedir(d);
	}
	rmdir(dir);
}

int factory_lot_open(struct ledger *l, const char *lot, struct factory_lot **out,
		     struct errbuf *err)
{
	struct factory_lot *f = calloc(1, sizeof(*f));
	struct first_bad fb;
	struct load ld;
	const char *tmp = getenv("TMPDIR");
	int bad = 0, n = 0, rc;

	*out = NULL;
	if (!f)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	memset(&fb, 0, sizeof(fb));
	fb.stats = &f->stats;
	if ((rc = factory_verify(l, NULL, "", tally, &fb, &bad, &n, err)))
		goto fail;
	if (bad) {
		rc = errbuf_setr(err, ST_ETAMPER, ST_ORIGIN_DB, ST_R_TAMPER,
				 "the ledger does not verify (%d of %d stations): %s", bad, n,
				 fb.line);
		goto fail;
	}
	snprintf(f->dir, sizeof(f->dir), "%s/station-lot.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir)) {
		f->dir[0] = '\0';
		rc = errbuf_set(err, ST_EIO, "cannot make a scratch directory for the lot");
		goto fail;
	}
	snprintf(f->path, sizeof(f->path), "%s/lot.db", f->dir);
	if ((rc = db_open_ex(f->path, "ledger", DB_OPEN_CREATE, &f->db, err)) ||
	    (rc = db_scratch_begin(f->db, err)))
		goto fail;
	ld.f = f;
	ld.err = err;
	rc = ledger_rows_lot(l, lot, load_one, &ld, err);
	if (rc == ST_OK) {
		struct shared sh = { f, lot, err };

		rc = ledger_allowlist_foreach(l, lot, put_shared_id, &sh, err);
	}
	if (rc == ST_OK)
		rc = db_scratch_commit(f->db, err);
	else
		db_rollback(f->db);
	if (rc)
		goto fail;
	if (!f->nunits && !f->lot_loaded) {
		rc = errbuf_set(err, ST_ENOTFOUND, "no lot %s in the ledger (no station pushed a"
				" unit or an allowlist of it)", lot);
		goto fail;
	}
	/* back to the scratch id order, for factory_lot_unit_id() */
	if (!(f->by_new = malloc((f->nunits ? f->nunits : 1) * sizeof(*f->by_new)))) {
		rc = errbuf_set(err, ST_ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < f->nunits; i++)
		f->by_new[f->units[i].new_id - 1] = f->units[i];
	*out = f;
	return ST_OK;
fail:
	factory_lot_close(f);
	return rc;
}

struct db *factory_lot_db(struct factory_lot *f)
{
	return f->db;
}

const struct factory_lot_stats *factory_lot_stats(const struct factory_lot *f)
{
	return &f->stats;
}

int64_t factory_lot_unit_id(const struct factory_lot *f, int64_t id)
{
	return id >= 1 && (size_t)id <= f->nunits ? f->by_new[id - 1].old_id : -1;
}

void factory_lot_close(struct factory_lot *f)
{
	if (!f)
		return;
	db_close(f->db);
	if (f->dir[0])
		remove_dir(f->dir);
	free(f->units);
	free(f->by_new);
	free(f);
}
