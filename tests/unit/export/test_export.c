/* Unit tests: the per-lot export -- the query on a real SQLite file (counts,
 * every unit, which certificates are attached, NULL-safe, rework), and the CSV
 * and JSON lines records.  The manifest's own tests: test_manifest.c. */
#include "tests/unit/export/export_rig.h"

#define UID_F "0123456789ABCDEF0123456C"   /* on L5 only */

static void test_lot_rows_and_counts(void **state)
{
	struct fixture *f = *state;
	struct db_export_counts c;
	struct errbuf err;
	struct got g = { 0 };

	assert_int_equal(db_export_lot(f->db, "L1", &c, collect, &g, &err), ST_OK);
	assert_int_equal(c.units, 6);
	assert_int_equal(c.pass, 2);
	assert_int_equal(c.fail, 1);
	assert_int_equal(c.reject, 1);
	assert_int_equal(c.interrupted, 2);
	assert_int_equal(c.in_progress, 0);
	assert_int_equal(c.boards, 5);
	assert_int_equal(c.boards_passed, 2);
	assert_int_equal(c.boards_finished, 5);
	assert_int_equal(c.boards_first_pass, 1);    /* B passed on its second attempt */
	assert_int_equal(c.allowlisted, 5);
	assert_int_equal(c.strangers, 0);
	assert_true(export_yield(&c) > 0.39 && export_yield(&c) < 0.41);
	assert_true(export_first_pass_yield(&c) > 0.19 && export_first_pass_yield(&c) < 0.21);

	assert_int_equal(g.n, 6);
	for (int i = 1; i < g.n; i++)
		assert_true(g.r[i].id > g.r[i - 1].id);
	assert_string_equal(g.r[0].uid, UID_A);
	assert_string_equal(g.r[0].status, "pass");
	assert_string_equal(g.r[0].serial, f->serial_pass);
	assert_string_equal(g.r[0].cert_status, "injected");
	assert_string_equal(g.r[0].profile, "widget");
	assert_int_equal(g.r[0].profile_version, 1);
	assert_true(g.r[0].der_len > 100 && g.r[0].finished > 0);

	assert_string_equal(g.r[1].status, "fail");
	assert_string_equal(g.r[1].cert_status, "revoked");
	assert_string_equal(g.r[1].revoke_reason, "cessationOfOperation");
	assert_true(g.r[1].revoked > 0);
	assert_string_equal(g.r[2].status, "pass");          /* B again */

	assert_string_equal(g.r[3].status, "reject");        /* C: no certificate, no profile */
	assert_string_equal(g.r[3].serial, "");
	assert_string_equal(g.r[3].cert_status, "");
	assert_string_equal(g.r[3].profile, "");
	assert_int_equal(g.r[3].profile_version, 0);

	assert_string_equal(g.r[4].uid, UID_D);              /* found by unit id */
	assert_string_equal(g.r[4].serial, f->serial_int);
	assert_string_equal(g.r[4].cert_status, "revoked");
	assert_string_equal(g.r[5].uid, UID_E);              /* reserved only: no certificate */
	assert_string_equal(g.r[5].serial, "");
	assert_int_equal(g.r[5].der_len, 0);
}

static int stop_at_two(const struct db_export_row *r, void *ctx)
{
	int *n = ctx;

	return ++*n == 2 ? ST_ECANCELED : ST_OK;
}

static void test_lot_unknown_empty_and_stop(void **state)
{
	struct fixture *f = *state;
	struct db_export_counts c;
	struct errbuf err;
	struct got g = { 0 };
	int n = 0;

	assert_int_equal(db_export_lot(f->db, "NOPE", &c, collect, &g, &err), ST_ENOTFOUND);
	assert_non_null(strstr(err.msg, "no lot NOPE"));
	assert_int_equal(g.n, 0);
	assert_int_equal(db_export_lot(f->db, "", &c, NULL, NULL, &err), ST_EINVAL);
	/* an allowlist and no unit yet: a lot, nothing in it */
	assert_int_equal(db_export_lot(f->db, "L3", &c, collect, &g, &err), ST_OK);
	assert_int_equal(c.units, 0);
	assert_int_equal(c.allowlisted, 2);
	assert_int_equal(g.n, 0);
	assert_true(export_yield(&c) < 0);
	/* L2 holds only its own unit */
	assert_int_equal(db_export_lot(f->db, "L2", &c, collect, &g, &err), ST_OK);
	assert_int_equal(g.n, 1);
	assert_int_equal(c.boards_first_pass, 0);
	/* fn's code stops the walk and comes back; the handle is usable after */
	assert_int_equal(db_export_lot(f->db, "L1", NULL, stop_at_two, &n, &err), ST_ECANCELED);
	assert_int_equal(n, 2);
	assert_int_equal(db_export_lot(f->db, "L1", &c, NULL, NULL, &err), ST_OK);
	assert_int_equal(db_begin(f->db, &err), ST_OK);
	assert_int_equal(db_export_lot(f->db, "L1", &c, NULL, NULL, &err), ST_ESTATE);
	db_rollback(f->db);
}

/* The certificates table with more NULLs than schema 2 allows (rebuilt by
 * hand without its CHECK), and a unit naming a serial that is only reserved.
 * Issue 12: a schema the migrations did not make is refused at open, so the
 * export never reads such rows; before that it had to survive them. */
static void test_lot_nullable_certificates(void **state)
{
	static const char sql[] =
		"BEGIN;"
		"CREATE TABLE c2 (serial TEXT PRIMARY KEY, unit_id INTEGER REFERENCES units(id),"
		" unique_id TEXT, pubkey_hash TEXT, status TEXT NOT NULL, der BLOB,"
		" reserved_ms INTEGER, issued_ms INTEGER, injected_ms INTEGER, revoked_ms INTEGER,"
		" revoke_reason TEXT);"
		"INSERT INTO c2 SELECT serial, unit_id, unique_id, pubkey_hash, status, der,"
		" reserved_ms, issued_ms, injected_ms, revoked_ms, revoke_reason FROM certificates;"
		"DROP TABLE certificates; ALTER TABLE c2 RENAME TO certificates;"
		"INSERT INTO certificates (serial, status) VALUES ('4001', 'reserved');"
		"UPDATE certificates SET unique_id = NULL, pubkey_hash = NULL, unit_id = NULL,"
		" issued_ms = NULL, reserved_ms = NULL WHERE status IN ('reserved', 'injected');"
		/* C's unit now names a serial that is only reserved, with NULLs */
		"UPDATE units SET cert_serial = '4001' WHERE unique_id = '" UID_C "';"
		"COMMIT;";
	struct fixture *f = *state;
	struct errbuf err;
	sqlite3 *sq;
	char *msg = NULL;

	db_close(f->db);
	assert_int_equal(sqlite3_open(f->path, &sq), SQLITE_OK);
	assert_int_equal(sqlite3_exec(sq, sql, NULL, NULL, &msg), SQLITE_OK);
	sqlite3_close(sq);
	assert_int_equal(db_open(f->path, "st1", &f->db, &err), ST_ETAMPER);
	assert_null(f->db);
	if (!strstr(err.msg, "missing: index certificates_pubkey"))
		fail_msg("%s", err.msg);
}



#define CSV_FIELDS 30

struct csv_rows {
	int row, field;
	char cells[10][CSV_FIELDS][512];
};

static void cb_field(void *s, size_t len, void *ctx)
{
	struct csv_rows *c = ctx;

	if (c->row < 10 && c->field < CSV_FIELDS)
		snprintf(c->cells[c->row][c->field], 512, "%.*s", (int)len, (const char *)s);
	c->field++;
}

static void cb_row(int ch, void *ctx)
{
	struct csv_rows *c = ctx;

	assert_int_equal(c->field, CSV_FIELDS);
	c->row++;
	c->field = 0;
}

static void test_csv(void **state)
{
	struct fixture *f = *state;
	static struct csv_rows rows;
	struct csv_parser p;
	struct errbuf err;
	struct writer w = { NULL, 1 };
	char *buf = NULL;
	size_t len = 0;

	memset(&rows, 0, sizeof(rows));
	w.f = open_memstream(&buf, &len);
	assert_int_equal(export_csv_header(w.f, &err), ST_OK);
	assert_int_equal(db_export_lot(f->db, "L1", NULL, write_row, &w, &err), ST_OK);
	fclose(w.f);
	assert_memory_equal(buf, EXPORT_CSV_HEADER "\r\n", strlen(EXPORT_CSV_HEADER) + 2);
	/* the reason with a comma, quotes and a line break is one quoted field */
	assert_non_null(strstr(buf, ",\"board refused LOCK, \"\"E5\"\"\nretry\","));
	/* parsed back (libcsv, strict): 30 fields a row, the values as stored */
	csv_init(&p, CSV_STRICT | CSV_STRICT_FINI);
	assert_int_equal(csv_parse(&p, buf, len, cb_field, cb_row, &rows), len);
	assert_int_equal(csv_fini(&p, cb_field, cb_row, &rows), 0);
	csv_free(&p);
	assert_int_equal(rows.row, 7);
	assert_string_equal(rows.cells[0][0], "unit_id");
	assert_string_equal(rows.cells[0][23], "cert_der_base64");
	assert_string_equal(rows.cells[1][1], UID_A);
	assert_string_equal(rows.cells[1][3], "pass");
	assert_string_equal(rows.cells[1][9], "widget");
	assert_string_equal(rows.cells[1][10], "1");
	assert_string_equal(rows.cells[1][18], f->serial_pass);
	assert_string_equal(rows.cells[1][19], "injected");
	assert_string_equal(rows.cells[1][16], "");          /* not superseded */
	assert_int_equal(strlen(rows.cells[1][14]), 24);     /* 2026-11-22T01:02:03.456Z */
	assert_true(strlen(rows.cells[1][23]) > 100);
	assert_string_equal(rows.cells[1][21], "");          /* not revoked */
	assert_string_equal(rows.cells[2][5], "board refused LOCK, \"E5\"\nretry");
	assert_string_equal(rows.cells[2][22], "cessationOfOperation");
	assert_string_equal(rows.cells[4][10], "");          /* unknown profile */
	assert_string_equal(rows.cells[4][23], "");
	/* issue 15's columns */
	assert_string_equal(rows.cells[0][24], "reason_code");
	assert_string_equal(rows.cells[0][29], "on_allowlist");
	assert_string_equal(rows.cells[1][27], "W");         /* model, from the allowlist */
	assert_string_equal(rows.cells[1][28], "A");
	assert_string_equal(rows.cells[1][29], "1");
	free(buf);
}

/*
 * A stranger (a board not on L1's allowlist, rejected not_on_lot) and cells
 * a spreadsheet would run as formulas (issue 15): the yield still counts L1's
 * five boards only, the stranger is counted apart, and every formula cell
 * comes out as text ('=..., quoted).
 */
static void test_stranger_and_formulas(void **state)
{
	static const char *const evil[] = { "=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3",
					    "@SUM(A1)", "\tx", "\rx" };
	static struct csv_rows rows;
	struct fixture *f = *state;
	struct db_export_counts c;
	struct writer w = { NULL, 1 };
	struct csv_parser p;
	struct errbuf err;
	struct db_unit u;
	char *buf = NULL;
	size_t len = 0;

	memset(&u, 0, sizeof(u));
	snprintf(u.unique_id, sizeof(u.unique_id), "0123456789ABCDEF0123BBBB");
	snprintf(u.lot, sizeof(u.lot), "L1");
	snprintf(u.bay, sizeof(u.bay), "%s", evil[3]);
	snprintf(u.operator_name, sizeof(u.operator_name), "%s", evil[0]);
	snprintf(u.station_id, sizeof(u.station_id), "%s", evil[1]);
	snprintf(u.profile_hash, sizeof(u.profile_hash), "%s", evil[4]);
	assert_int_equal(db_unit_begin(f->db, &u, &err), ST_OK);
	u.status = DB_UNIT_REJECT;
	u.reason_code = ST_R_NOT_ON_LOT;
	snprintf(u.stage, sizeof(u.stage), "allowlist");
	snprintf(u.reason, sizeof(u.reason), "%s", evil[2]);
	snprintf(u.firmware_hash, sizeof(u.firmware_hash), "%s", evil[5]);
	assert_int_equal(db_unit_finish(f->db, &u, &err), ST_OK);

	w.f = open_memstream(&buf, &len);
	assert_int_equal(export_csv_header(w.f, &err), ST_OK);
	assert_int_equal(db_export_lot(f->db, "L1", &c, write_row, &w, &err), ST_OK);
	fclose(w.f);
	assert_int_equal(c.units, 7);
	assert_int_equal(c.boards, 5);
	assert_int_equal(c.boards_passed, 2);
	assert_int_equal(c.strangers, 1);
	assert_int_equal(c.stranger_units, 1);
	assert_true(export_yield(&c) > 0.39 && export_yield(&c) < 0.41);

	/* on the wire: a quoted cell that begins with a single quote */
	assert_non_null(strstr(buf, ",\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\","));
	assert_non_null(strstr(buf, ",\"'-2+3\","));
	memset(&rows, 0, sizeof(rows));
	csv_init(&p, CSV_STRICT | CSV_STRICT_FINI);
	assert_int_equal(csv_parse(&p, buf, len, cb_field, cb_row, &rows), len);
	assert_int_equal(csv_fini(&p, cb_field, cb_row, &rows), 0);
	csv_free(&p);
	assert_int_equal(rows.row, 8);
	assert_string_equal(rows.cells[7][8], "'=HYPERLINK(\"http://x\",\"y\")");   /* operator */
	assert_string_equal(rows.cells[7][7], "'+1+1");       /* station_id */
	assert_string_equal(rows.cells[7][5], "'-2+3");       /* reason */
	assert_string_equal(rows.cells[7][6], "'@SUM(A1)");   /* bay */
	assert_string_equal(rows.cells[7][11], "'\tx");       /* profile_sha256 */
	assert_string_equal(rows.cells[7][12], "'\rx");       /* firmware_sha256 */
	for (int i = 0; i < CSV_FIELDS; i++)
		assert_true(!rows.cells[7][i][0] || !strchr("=+-@\t\r", rows.cells[7][i][0]));
	assert_string_equal(rows.cells[7][24], "not_on_lot");
	assert_string_equal(rows.cells[7][25], "allowlist: the board is not on the lot's allowlist");
	assert_string_equal(rows.cells[7][29], "0");          /* not on the allowlist */
	free(buf);
}

static void test_jsonl(void **state)
{
	struct fixture *f = *state;
	struct db_export_counts c;
	struct errbuf err;
	struct writer w = { NULL, 0 };
	json_t *j, *cert;
	char *buf = NULL, *line, *save = NULL;
	size_t len = 0;
	int n = 0;

	w.f = open_memstream(&buf, &len);
	assert_int_equal(db_export_lot(f->db, "L1", &c, write_row, &w, &err), ST_OK);
	assert_int_equal(export_jsonl_summary(w.f, "L1", &c, &err), ST_OK);
	fclose(w.f);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
		j = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
		assert_non_null(j);
		if (n == 0) {
			assert_string_equal(json_string_value(json_object_get(j, "record")), "unit");
			cert = json_object_get(j, "certificate");
			assert_string_equal(json_string_value(json_object_get(cert, "status")), "injected");
			assert_true(json_is_null(json_object_get(cert, "revoked")));
			assert_non_null(strstr(json_string_value(json_object_get(cert, "pem")),
					       "-----BEGIN CERTIFICATE-----\n"));
			assert_int_equal(json_integer_value(json_object_get(
				json_object_get(j, "profile"), "version")), 1);
		}
		if (n == 3) {
			assert_true(json_is_null(json_object_get(j, "certificate")));
			assert_true(json_is_null(json_object_get(json_object_get(j, "profile"), "name")));
		}
		if (n == 6) {
			assert_string_equal(json_string_value(json_object_get(j, "record")), "summary");
			assert_int_equal(json_integer_value(json_object_get(j, "units")), 6);
			assert_int_equal(json_integer_value(json_object_get(j, "boards_first_pass")), 1);
			assert_true(json_real_value(json_object_get(j, "yield")) == 0.4);
			assert_true(json_real_value(json_object_get(j, "first_pass_yield")) == 0.2);
		}
		json_decref(j);
	}
	assert_int_equal(n, 7);
	free(buf);
}

static int write_openhtf(const struct db_export_row *r, void *ctx)
{
	struct errbuf err;

	return export_openhtf_row(ctx, r, &err);
}

/* OpenHTF records: one per unit; PASS, FAIL for a fail or a reject, ERROR for
 * an interrupted unit; the outcome details carry the code and the words. */
static void test_openhtf(void **state)
{
	static const char *const want[] = { "PASS", "FAIL", "PASS", "FAIL", "ERROR", "ERROR" };
	struct fixture *f = *state;
	struct errbuf err;
	char *buf = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	int n = 0;

	assert_int_equal(db_export_lot(f->db, "L1", NULL, write_openhtf, fp, &err), ST_OK);
	fclose(fp);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
		json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, NULL), *d;

		assert_non_null(j);
		assert_true(n < 6);
		assert_string_equal(json_string_value(json_object_get(j, "outcome")), want[n]);
		assert_int_equal(json_object_size(j), 11);
		d = json_array_get(json_object_get(j, "outcome_details"), 0);
		assert_non_null(json_string_value(json_object_get(d, "code")));
		assert_non_null(json_string_value(json_object_get(d, "description")));
		assert_string_equal(json_string_value(json_object_get(json_object_get(j, "metadata"),
								      "lot")), "L1");
		assert_true(json_integer_value(json_object_get(j, "end_time_millis")) >=
			    json_integer_value(json_object_get(j, "start_time_millis")));
		if (n == 0)
			assert_string_equal(json_string_value(json_object_get(d, "code")), "none");
		json_decref(j);
	}
	assert_int_equal(n, 6);
	free(buf);
}

/* Rework: the board's first PASS is superseded (its certificate revoked,
 * superseded) and a second PASS provisions it again.  Both are in the CSV
 * and JSON lines, with superseded_by and rework_id; the manifest has one
 * entry for the board, the current one, and verifies (no unique id twice). */
static void test_lot_rework(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *key = tu_key("P-256");
	struct manifest_signer s = { soft_sign, key, key };
	struct db_export_counts c;
	struct manifest_summary sum;
	struct db_rework rw;
	struct errbuf err;
	struct got g = { 0 };
	struct mctx m;
	char hex1[65], hex2[65], *buf = NULL;
	size_t len = 0;
	int64_t u1, u2, rows;
	FILE *fp = fopen("l5.csv", "w");

	fprintf(fp, "unique_id,lot,model,hw_revision\n%s,L5,W,A\n", UID_F);
	fclose(fp);
	assert_int_equal(db_allowlist_import(f->db, "l5.csv", "L5", NULL, NULL, NULL, "eng", &rows, &err), ST_OK);
	u1 = unit(f->db, UID_F, "L5", "1-1", f->profile_hash);
	issue(f, u1, UID_F, PK("5"), 0x5001, hex1);
	assert_int_equal(db_cert_injected(f->db, hex1, &err), ST_OK);
	finish(f->db, u1, UID_F, "L5", DB_UNIT_PASS, "commit", "certificate", hex1);
	assert_int_equal(db_rework_authorise(f->db, UID_F, "replaced the MCU", "eng", &rw, &err), ST_OK);
	u2 = unit(f->db, UID_F, "L5", "1-2", f->profile_hash);
	issue(f, u2, UID_F, PK("6"), 0x5002, hex2);
	assert_int_equal(db_begin(f->db, &err), ST_OK);
	assert_int_equal(db_cert_injected(f->db, hex2, &err), ST_OK);
	assert_int_equal(db_rework_consume(f->db, rw.id, u2, "op", &err), ST_OK);
	finish(f->db, u2, UID_F, "L5", DB_UNIT_PASS, "commit", "certificate", hex2);
	assert_int_equal(db_commit(f->db, &err), ST_OK);

	assert_int_equal(db_export_lot(f->db, "L5", &c, collect, &g, &err), ST_OK);
	assert_int_equal(c.pass, 2);
	assert_int_equal(c.superseded, 1);
	assert_int_equal(c.boards, 1);
	assert_int_equal(c.boards_passed, 1);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.r[0].superseded_by, rw.id);
	assert_int_equal(g.r[0].rework_id, 0);
	assert_string_equal(g.r[0].cert_status, "revoked");
	assert_string_equal(g.r[0].revoke_reason, "superseded");
	assert_int_equal(g.r[1].superseded_by, 0);
	assert_int_equal(g.r[1].rework_id, rw.id);
	assert_string_equal(g.r[1].cert_status, "injected");

	{
		struct writer w = { open_memstream(&buf, &len), 0 };
		char want[64];

		assert_int_equal(db_export_lot(f->db, "L5", NULL, write_row, &w, &err), ST_OK);
		fclose(w.f);
		snprintf(want, sizeof(want), "\"superseded_by\":%lld,\"rework_id\":null",
			 (long long)rw.id);
		assert_non_null(strstr(buf, want));
		snprintf(want, sizeof(want), "\"superseded_by\":null,\"rework_id\":%lld",
			 (long long)rw.id);
		assert_non_null(strstr(buf, want));
		free(buf);
	}

	fp = fopen("l5.json", "w");
	assert_int_equal(manifest_begin(&m.w, fp, &s, f->pki.ca, c.pass - c.superseded, &err), ST_OK);
	assert_int_equal(db_export_lot(f->db, "L5", NULL, add_current_pass, &m, &m.err), ST_OK);
	assert_int_equal(manifest_end(&m.w, &err), ST_OK);
	fclose(fp);
	assert_int_equal(manifest_verify_file("l5.json", key, f->pki.ca, &sum, &err), ST_OK);
	assert_int_equal(sum.entries, 1);
	EVP_PKEY_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lot_rows_and_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lot_unknown_empty_and_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lot_nullable_certificates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lot_rework, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jsonl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stranger_and_formulas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_openhtf, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
