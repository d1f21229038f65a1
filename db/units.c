/*
 * units: one row per attempt on a board.  A unit is created in progress before
 * any work on the board (so a crash leaves a trace), updated as stages pass,
 * and finished with a verdict that commits together with its audit event.
 * units_one_pass (a partial UNIQUE index) allows one PASS per hardware id,
 * not counting a PASS an engineer's rework superseded (db/rework.h).
 */
#include "db/db_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {
	[DB_UNIT_IN_PROGRESS] = "in-progress",
	[DB_UNIT_PASS]        = "pass",
	[DB_UNIT_FAIL]        = "fail",
	[DB_UNIT_REJECT]      = "reject",
	[DB_UNIT_INTERRUPTED] = "interrupted",
};
#define NSTATUS ((int)(sizeof(status_names) / sizeof(status_names[0])))

const char *db_unit_status_name(enum db_unit_status s)
{
	return (int)s >= 0 && (int)s < NSTATUS ? status_names[s] : "unknown";
}

static int status_from_name(const char *s)
{
	for (int i = 0; s && i < NSTATUS; i++)
		if (!strcmp(s, status_names[i]))
			return i;
	return -1;
}

static const char SQL_BEGIN[] =
	"INSERT INTO units (unique_id, lot, bay, operator, station_id, profile_hash,"
	" firmware_hash, cert_serial, pubkey_hash, status, stage, reason, started_ms)"
	" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'in-progress', ?, '', ?)";
static const char SQL_UPDATE[] =
	"UPDATE units SET stage = ?1,"
	" firmware_hash = CASE WHEN ?2 = '' THEN firmware_hash ELSE ?2 END,"
	" cert_serial = CASE WHEN ?3 = '' THEN cert_serial ELSE ?3 END,"
	" pubkey_hash = CASE WHEN ?4 = '' THEN pubkey_hash ELSE ?4 END,"
	" stage_ms = CASE WHEN ?6 = '' THEN stage_ms ELSE ?6 END"
	" WHERE id = ?5 AND status = 'in-progress'";
static const char SQL_FINISH[] =
	"UPDATE units SET status = ?1, stage = ?2, reason = ?3, finished_ms = ?4,"
	" firmware_hash = CASE WHEN ?5 = '' THEN firmware_hash ELSE ?5 END,"
	" cert_serial = CASE WHEN ?6 = '' THEN cert_serial ELSE ?6 END,"
	" pubkey_hash = CASE WHEN ?7 = '' THEN pubkey_hash ELSE ?7 END,"
	" reason_code = ?9, reason_plain = ?10, duration_ms = ?11, stage_ms = ?12,"
	" model = ?13, hw_revision = ?14"
	" WHERE id = ?8 AND status = 'in-progress'";
static const char SQL_MODEL_OF[] =
	"SELECT model, hw_revision FROM allowlist WHERE unique_id = ?";
static const char SQL_STATUS_OF[] = "SELECT status FROM units WHERE id = ?";
static const char SQL_PASS_OF[] =
	"SELECT id FROM units WHERE unique_id = ? AND status = 'pass' AND superseded_by IS NULL";
static const char SQL_PASS_SERIAL_OF[] =
	"SELECT cert_serial, id FROM units WHERE unique_id = ? AND status = 'pass'"
	" AND superseded_by IS NULL";
static const char SQL_IN_PROGRESS[] =
	"SELECT id, unique_id, lot, bay, operator, station_id, profile_hash, firmware_hash,"
	" cert_serial, pubkey_hash, status, stage, reason, started_ms,"
	" coalesce(finished_ms, 0), stage_ms FROM units WHERE status = 'in-progress' ORDER BY id";

int db_unit_begin(struct db *db, struct db_unit *u, struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc, owned = 0;

	if (!u->unique_id[0])
		return errbuf_set(err, ST_EINVAL, "unit without a unique id");
	if (!u->station_id[0])
		snprintf(u->station_id, sizeof(u->station_id), "%s", db->station_id);
	if (!u->started_ms)
		u->started_ms = clock_realtime_ms();
	db_lock(db);
	if ((rc = db_txn_begin(db, &owned, err))) {
		db_unlock(db);
		return rc;
	}
	if (!(st = db_stmt(db, SQL_BEGIN, err))) {
		rc = db_txn_end(db, owned, ST_EDB, err);
		db_unlock(db);
		return rc;
	}
	sqlite3_bind_text(st, 1, u->unique_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, u->lot, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, u->bay, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, u->operator_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, u->station_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, u->profile_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, u->firmware_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, u->cert_serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, u->pubkey_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, u->stage[0] ? u->stage : "detect", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 11, u->started_ms);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE) {
		u->id = sqlite3_last_insert_rowid(db->sq);
		u->status = DB_UNIT_IN_PROGRESS;
		rc = db_row_audit_id_locked(db, "units", u->id, u->operator_name, err);
	} else {
		rc = db_sqlerr(db, rc, err, "create unit");
	}
	rc = db_txn_end(db, owned, rc, err);
	db_unlock(db);
	return rc;
}

static int update_locked(struct db *db, const struct db_unit *u, struct errbuf *err);

/* After an UPDATE ... AND status = 'in-progress' changed nothing: why. */
static int not_in_progress(struct db *db, int64_t id, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, SQL_STATUS_OF, err);
	int rc;

	if (!st)
		return ST_EDB;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = errbuf_set(err, ST_ESTATE, "unit %lld is %s, not in progress", (long long)id,
				(const char *)sqlite3_column_text(st, 0));
	else if (rc == SQLITE_DONE)
		rc = errbuf_set(err, ST_ENOTFOUND, "no unit %lld", (long long)id);
	else
		rc = db_sqlerr(db, rc, err, "read unit");
	sqlite3_reset(st);
	return rc;
}

int db_unit_update(struct db *db, const struct db_unit *u, struct errbuf *err)
{
	int owned = 0, rc;

	db_lock(db);
	if (!(rc = db_txn_begin(db, &owned, err))) {
		rc = update_locked(db, u, err);
		rc = db_txn_end(db, owned, rc, err);
	}
	db_unlock(db);
	return rc;
}

static int update_locked(struct db *db, const struct db_unit *u, struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	if (!(st = db_stmt(db, SQL_UPDATE, err)))
		return ST_EDB;
	sqlite3_bind_text(st, 1, u->stage, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, u->firmware_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, u->cert_serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, u->pubkey_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, u->id);
	sqlite3_bind_text(st, 6, u->stage_ms, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_sqlerr(db, rc, err, "update unit");
	if (sqlite3_changes(db->sq) == 0)
		return not_in_progress(db, u->id, err);
	if ((rc = db_row_audit_id_locked(db, "units", u->id, u->operator_name, err)))
		return rc;
	/* the key its CSR showed, whatever the verdict will be (keys_seen) */
	return db_keys_seen_add_locked(db, u->pubkey_hash, u->unique_id, "station", err);
}

/*
 * A progress mark: the same update as db_unit_update, committed with
 * synchronous=NORMAL for this one statement.  In WAL mode that commit is
 * written to the WAL (so it survives the process being killed) but not
 * fsync'd: the next full commit, by any thread, makes it durable.  A power
 * loss may lose it, never corrupt the database.  Inside an open transaction
 * the update simply joins it.
 */
int db_unit_progress(struct db *db, const struct db_unit *u, struct errbuf *err)
{
	int rc, rc2;

	db_lock(db);
	if (db->in_txn) {
		rc = db_unit_update(db, u, err);
		db_unlock(db);
		return rc;
	}
	if ((rc = db_set_synchronous(db, 0, err))) {
		db_unlock(db);
		return rc;
	}
	rc = db_unit_update(db, u, err);
	/* FULL again whatever happened: every other write relies on it */
	rc2 = db_set_synchronous(db, 1, rc ? NULL : err);
	db_unlock(db);
	return rc ? rc : rc2;
}

/* The board's model and hardware revision as its allowlist row gives them
 * ("" for a board on no allowlist). */
static int model_of(struct db *db, const char *uid, char model[65], char hw[65],
		    struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, SQL_MODEL_OF, err);
	int rc;

	model[0] = hw[0] = '\0';
	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(model, 65, "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(hw, 65, "%s", (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "read allowlist");
}

/* The reason without ids: the same words for every unit with this code at
 * this stage, so failures group ("flash: the board stopped answering"). */
static void plain_reason(const struct db_unit *u, char *out, size_t cap)
{
	if (u->reason_plain[0])
		snprintf(out, cap, "%s", u->reason_plain);
	else if (u->reason_code == ST_R_NONE)
		out[0] = '\0';
	else
		snprintf(out, cap, "%s: %s", u->stage, st_reason_text(u->reason_code));
}

/* The unit-result detail: every column the verdict writes. */
static char *finish_detail(const struct db_unit *u, const char *plain, int64_t duration,
			   const char *model, const char *hw)
{
	json_t *stages = u->stage_ms[0] ? json_loads(u->stage_ms, 0, NULL) : NULL;
	json_t *j;
	char *detail;

	j = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s,"
		      " s:s, s:s, s:o, s:o, s:s, s:s}",
		      "unit", (json_int_t)u->id, "unique_id", u->unique_id, "lot", u->lot,
		      "bay", u->bay, "status", status_names[u->status], "stage", u->stage,
		      "reason", u->reason, "cert_serial", u->cert_serial,
		      "pubkey_hash", u->pubkey_hash, "profile_hash", u->profile_hash,
		      "reason_code", u->reason_code == ST_R_NONE ? "" : st_reason_name(u->reason_code),
		      "reason_plain", plain,
		      "duration_ms", duration >= 0 ? json_integer(duration) : json_null(),
		      "stage_ms", json_is_object(stages) ? stages : json_null(),
		      "model", model, "hw_revision", hw);
	if (stages && !json_is_object(stages))
		json_decref(stages);
	detail = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	return detail;
}

static int json_is_object_text(const char *s)
{
	json_t *j = json_loads(s, 0, NULL);
	int ok = json_is_object(j);

	json_decref(j);
	return ok;
}

static int finish_locked(struct db *db, const struct db_unit *u, int64_t finished,
			 struct errbuf *err)
{
	sqlite3_stmt *st;
	char *detail, plain[sizeof(u->reason_plain)], model[65], hw[65];
	const char *actor;
	int64_t duration = u->started_ms > 0 && finished >= u->started_ms ?
			   finished - u->started_ms : -1;
	int rc;

	if (u->stage_ms[0] && !json_is_object_text(u->stage_ms))
		return errbuf_set(err, ST_EINVAL, "unit %lld: stage times are not a JSON object",
				  (long long)u->id);
	if ((rc = model_of(db, u->unique_id, model, hw, err)))
		return rc;
	plain_reason(u, plain, sizeof(plain));
	if (!(st = db_stmt(db, SQL_FINISH, err)))
		return ST_EDB;
	sqlite3_bind_text(st, 1, status_names[u->status], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, u->stage, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, u->reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, finished);
	sqlite3_bind_text(st, 5, u->firmware_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, u->cert_serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, u->pubkey_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, u->id);
	sqlite3_bind_text(st, 9, u->reason_code == ST_R_NONE ? "" : st_reason_name(u->reason_code),
			  -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, plain, -1, SQLITE_STATIC);
	if (duration >= 0)
		sqlite3_bind_int64(st, 11, duration);
	else
		sqlite3_bind_null(st, 11);
	sqlite3_bind_text(st, 12, u->stage_ms, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 13, model, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 14, hw, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		rc = db_sqlerr(db, rc, err, "finish unit");
		if (rc == ST_EEXIST)
			errbuf_set(err, ST_EEXIST, "unique id %s already has a PASS unit: refusing a second",
				   u->unique_id);
		return rc;
	}
	if (sqlite3_changes(db->sq) == 0)
		return not_in_progress(db, u->id, err);
	/* A unit written by an older version may name an operator the log
	 * cannot record: both events go under the station's name, never refusing
	 * the verdict (recovery must always complete; the row keeps the name). */
	actor = ids_actor_valid(u->operator_name) ? u->operator_name : "station";
	if ((rc = db_row_audit_id_locked(db, "units", u->id, actor, err)) ||
	    (rc = db_keys_seen_add_locked(db, u->pubkey_hash, u->unique_id, "station", err)))
		return rc;
	detail = finish_detail(u, plain, duration, model, hw);
	if (!detail)
		return errbuf_set(err, ST_EINVAL, "unit %lld: a field is not valid UTF-8",
				  (long long)u->id);
	rc = db_audit_append_locked(db, "unit-result", actor, detail, NULL, err);
	free(detail);
	return rc;
}

int db_unit_finish(struct db *db, const struct db_unit *u, struct errbuf *err)
{
	int owned, rc;

	if (u->status == DB_UNIT_IN_PROGRESS || (int)u->status < 0 || (int)u->status >= NSTATUS)
		return errbuf_set(err, ST_EINVAL, "unit %lld: a final status is needed",
				  (long long)u->id);
	db_lock(db);
	if (!(rc = db_txn_begin(db, &owned, err))) {
		rc = finish_locked(db, u, u->finished_ms ? u->finished_ms : clock_realtime_ms(), err);
		rc = db_txn_end(db, owned, rc, err);
	}
	db_unlock(db);
	return rc;
}

int db_unit_provisioned(struct db *db, const char *unique_id, int *found, struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	*found = 0;
	db_lock(db);
	if (!(st = db_stmt(db, SQL_PASS_OF, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	sqlite3_bind_text(st, 1, unique_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		*found = rc == SQLITE_ROW;
		rc = ST_OK;
	} else {
		rc = db_sqlerr(db, rc, err, "look up unit");
	}
	sqlite3_reset(st);
	db_unlock(db);
	return rc;
}

static void copy_col(char *dst, size_t size, sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	snprintf(dst, size, "%s", s ? (const char *)s : "");
}

int db_unit_pass_serial(struct db *db, const char *unique_id, int *passed, char serial[65],
			int64_t *unit_id, struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	*passed = 0;
	*unit_id = 0;
	serial[0] = '\0';
	db_lock(db);
	if (!(st = db_stmt(db, SQL_PASS_SERIAL_OF, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	sqlite3_bind_text(st, 1, unique_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*passed = 1;
		copy_col(serial, 65, st, 0);
		*unit_id = sqlite3_column_int64(st, 1);
		rc = ST_OK;
	} else if (rc == SQLITE_DONE) {
		rc = ST_OK;
	} else {
		rc = db_sqlerr(db, rc, err, "look up unit");
	}
	sqlite3_reset(st);
	db_unlock(db);
	return rc;
}

/* Collects first, then calls fn without the lock or an open statement, so fn
 * may finish or revoke the units it is given. */
int db_unit_foreach_in_progress(struct db *db,
				int (*fn)(const struct db_unit *u, void *ctx), void *ctx,
				struct errbuf *err)
{
	struct db_unit *list = NULL, *grown;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int rc;

	db_lock(db);
	if (!(st = db_stmt(db, SQL_IN_PROGRESS, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_unit *u;

		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			grown = realloc(list, cap * sizeof(*list));
			if (!grown) {
				rc = SQLITE_NOMEM;
				break;
			}
			list = grown;
		}
		u = &list[n++];
		memset(u, 0, sizeof(*u));
		u->id = sqlite3_column_int64(st, 0);
		copy_col(u->unique_id, sizeof(u->unique_id), st, 1);
		copy_col(u->lot, sizeof(u->lot), st, 2);
		copy_col(u->bay, sizeof(u->bay), st, 3);
		copy_col(u->operator_name, sizeof(u->operator_name), st, 4);
		copy_col(u->station_id, sizeof(u->station_id), st, 5);
		copy_col(u->profile_hash, sizeof(u->profile_hash), st, 6);
		copy_col(u->firmware_hash, sizeof(u->firmware_hash), st, 7);
		copy_col(u->cert_serial, sizeof(u->cert_serial), st, 8);
		copy_col(u->pubkey_hash, sizeof(u->pubkey_hash), st, 9);
		u->status = (enum db_unit_status)status_from_name((const char *)sqlite3_column_text(st, 10));
		copy_col(u->stage, sizeof(u->stage), st, 11);
		copy_col(u->reason, sizeof(u->reason), st, 12);
		u->started_ms = sqlite3_column_int64(st, 13);
		u->finished_ms = sqlite3_column_int64(st, 14);
		copy_col(u->stage_ms, sizeof(u->stage_ms), st, 15);
	}
	sqlite3_reset(st);
	if (rc == SQLITE_NOMEM)
		rc = errbuf_set(err, ST_ENOMEM, "out of memory");
	else if (rc != SQLITE_DONE)
		rc = db_sqlerr(db, rc, err, "list units in progress");
	else
		rc = ST_OK;
	db_unlock(db);
	for (size_t i = 0; rc == ST_OK && i < n; i++)
		if (fn(&list[i], ctx))
			break;
	free(list);
	return rc;
}
