/* Unit tests: profiles, units, certificates and the allowlist queries, each
 * checked for its audit event and its refusal cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db/db.h"

#define PK1 "1111111111111111111111111111111111111111111111111111111111111111"
#define PK2 "2222222222222222222222222222222222222222222222222222222222222222"
#define PK3 "3333333333333333333333333333333333333333333333333333333333333333"
#define UID1 "0123456789ABCDEF01234567"
#define UID2 "0123456789ABCDEF01234568"

static int setup(void **state)
{
	static int n;
	char path[64];
	struct errbuf err;
	struct db *db;

	snprintf(path, sizeof(path), "rec%d.db", n++);
	if (db_open(path, "st1", &db, &err))
		return -1;
	*state = db;
	return 0;
}

static int teardown(void **state)
{
	db_close(*state);
	return 0;
}

struct kinds {
	char list[1024];
};

/* The record events, in order; the `row` event each write also appends is
 * checked by tests/unit/db/test_db_rows.c. */
static int collect_kind(const struct db_event *e, void *arg)
{
	struct kinds *k = arg;

	if (!strcmp(e->kind, "row"))
		return 0;
	strncat(k->list, e->kind, sizeof(k->list) - strlen(k->list) - 2);
	strcat(k->list, " ");
	return 0;
}

static const char *kinds(struct db *db)
{
	static struct kinds k;
	struct errbuf err;

	k.list[0] = '\0';
	assert_int_equal(db_audit_foreach(db, 0, collect_kind, &k, &err), ST_OK);
	return k.list;
}

static void verify_ok(struct db *db)
{
	struct db_verify_result res;
	struct errbuf err;

	assert_int_equal(db_audit_verify(db, &res, &err), ST_OK);
}

static void test_profiles(void **state)
{
	struct db *db = *state;
	struct errbuf err;
	char hash[65], hash2[65], *content;
	size_t len;
	int v;

	assert_int_equal(db_profile_load(db, "widget", &content, &len, &v, hash, &err), ST_ENOTFOUND);
	assert_int_equal(db_profile_store(db, "widget", "a = 1\n", 6, "eng1", &v, hash, &err), ST_OK);
	assert_int_equal(v, 1);
	assert_string_equal(hash, "cb78bd8a17f7b751fe0d4663366dcbc257204033ef7ddd64b1f2969573b5b2e2");
	/* same content: same version, no new audit event */
	assert_int_equal(db_profile_store(db, "widget", "a = 1\n", 6, "eng1", &v, hash2, &err), ST_OK);
	assert_int_equal(v, 1);
	assert_string_equal(hash, hash2);
	assert_int_equal(db_profile_store(db, "widget", "a = 2\n", 6, "eng2", &v, hash2, &err), ST_OK);
	assert_int_equal(v, 2);
	assert_string_not_equal(hash, hash2);
	assert_int_equal(db_profile_load(db, "widget", &content, &len, &v, hash, &err), ST_OK);
	assert_int_equal(v, 2);
	assert_int_equal(len, 6);
	assert_string_equal(content, "a = 2\n");
	assert_string_equal(hash, hash2);
	free(content);
	assert_int_equal(db_profile_store(db, "bad name", "x", 1, "eng1", &v, hash, &err), ST_EINVAL);
	assert_int_equal(db_profile_store(db, "empty", "", 0, "eng1", &v, hash, &err), ST_EINVAL);
	assert_string_equal(kinds(db), "profile-store profile-store ");
	verify_ok(db);
}

static void unit_init(struct db_unit *u, const char *uid)
{
	memset(u, 0, sizeof(*u));
	snprintf(u->unique_id, sizeof(u->unique_id), "%s", uid);
	snprintf(u->lot, sizeof(u->lot), "LOT-A");
	snprintf(u->bay, sizeof(u->bay), "1-2");
	snprintf(u->operator_name, sizeof(u->operator_name), "op1");
	snprintf(u->profile_hash, sizeof(u->profile_hash), PK1);
	snprintf(u->stage, sizeof(u->stage), "detect");
}

struct seen {
	int n;
	int64_t ids[8];
};

static int collect_unit(const struct db_unit *u, void *arg)
{
	struct seen *s = arg;

	if (s->n < 8)
		s->ids[s->n] = u->id;
	s->n++;
	return 0;
}

static void test_units(void **state)
{
	struct db *db = *state;
	struct db_unit u, v, w;
	struct errbuf err;
	struct seen seen = { 0 };
	int found;

	unit_init(&u, UID1);
	assert_int_equal(db_unit_begin(db, &u, &err), ST_OK);
	assert_true(u.id > 0);
	assert_string_equal(u.station_id, "st1");
	assert_true(u.started_ms > 0);
	snprintf(u.stage, sizeof(u.stage), "flash");
	snprintf(u.firmware_hash, sizeof(u.firmware_hash), PK2);
	assert_int_equal(db_unit_update(db, &u, &err), ST_OK);
	unit_init(&v, UID2);
	assert_int_equal(db_unit_begin(db, &v, &err), ST_OK);

	assert_int_equal(db_unit_foreach_in_progress(db, collect_unit, &seen, &err), ST_OK);
	assert_int_equal(seen.n, 2);
	assert_int_equal(seen.ids[0], u.id);
	assert_int_equal(seen.ids[1], v.id);

	assert_int_equal(db_unit_provisioned(db, UID1, &found, &err), ST_OK);
	assert_false(found);
	u.status = DB_UNIT_PASS;
	snprintf(u.stage, sizeof(u.stage), "commit");
	assert_int_equal(db_unit_finish(db, &u, &err), ST_OK);
	assert_int_equal(db_unit_provisioned(db, UID1, &found, &err), ST_OK);
	assert_true(found);
	/* finished units cannot move again */
	assert_int_equal(db_unit_update(db, &u, &err), ST_ESTATE);
	assert_int_equal(db_unit_finish(db, &u, &err), ST_ESTATE);
	u.id = 9999;
	assert_int_equal(db_unit_update(db, &u, &err), ST_ENOTFOUND);
	v.status = DB_UNIT_IN_PROGRESS;
	assert_int_equal(db_unit_finish(db, &v, &err), ST_EINVAL);

	/* a second PASS for the same hardware id is refused (units_one_pass) */
	unit_init(&w, UID1);
	assert_int_equal(db_unit_begin(db, &w, &err), ST_OK);
	w.status = DB_UNIT_PASS;
	assert_int_equal(db_unit_finish(db, &w, &err), ST_EEXIST);
	assert_non_null(strstr(err.msg, UID1));
	w.status = DB_UNIT_FAIL;
	snprintf(w.reason, sizeof(w.reason), "already provisioned");
	assert_int_equal(db_unit_finish(db, &w, &err), ST_OK);
	v.status = DB_UNIT_INTERRUPTED;
	assert_int_equal(db_unit_finish(db, &v, &err), ST_OK);
	seen.n = 0;
	assert_int_equal(db_unit_foreach_in_progress(db, collect_unit, &seen, &err), ST_OK);
	assert_int_equal(seen.n, 0);
	assert_string_equal(kinds(db), "unit-result unit-result unit-result ");
	assert_string_equal(db_unit_status_name(DB_UNIT_REJECT), "reject");
	verify_ok(db);
}

struct certs {
	int n;
	char serial[4][65];
	int status[4];
	char reason[4][32];
};

static int collect_cert(const struct db_cert_row *c, void *arg)
{
	struct certs *s = arg;

	if (s->n < 4) {
		snprintf(s->serial[s->n], 65, "%s", c->serial_hex);
		s->status[s->n] = c->status;
		snprintf(s->reason[s->n], 32, "%s", c->revoke_reason);
	}
	s->n++;
	return 0;
}

/* One serial, as the batch calls take them. */
static int reserve1(struct db *db, const char *serial, struct errbuf *err)
{
	return db_cert_reserve(db, &serial, 1, err);
}

static void test_certs(void **state)
{
	struct db *db = *state;
	struct db_unit u;
	struct errbuf err;
	struct certs cs;
	const uint8_t der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	const char *batch[] = { "1a2b", "3c", "5e", "6f" };
	const char *bad_batch[] = { "71", "01a2" };
	const char *taken[] = { "72", "3c" };
	long syncs;
	int seen;

	unit_init(&u, UID1);
	assert_int_equal(db_unit_begin(db, &u, &err), ST_OK);
	/* a batch of serials, reserved before anything is signed: no board yet;
	 * durable (the WAL synced) when the call returns */
	syncs = db_wal_syncs(db);
	assert_int_equal(db_cert_reserve(db, batch, 4, &err), ST_OK);
	assert_int_equal(db_wal_syncs(db), syncs + 1);
	assert_int_equal(db_pubkey_seen(db, PK1, &seen, &err), ST_OK);
	assert_false(seen);
	/* all or nothing: a taken or malformed serial reserves none of its batch */
	assert_int_equal(db_cert_reserve(db, taken, 2, &err), ST_EEXIST);
	assert_non_null(strstr(err.msg, "serial 3c is taken"));
	assert_int_equal(db_begin(db, &err), ST_OK);
	syncs = db_wal_syncs(db);
	assert_int_equal(reserve1(db, "72", &err), ST_OK);
	assert_int_equal(db_wal_syncs(db), syncs);       /* the caller's commit is FULL */
	assert_int_equal(db_commit(db, &err), ST_OK);
	assert_int_equal(db_cert_reserve(db, bad_batch, 2, &err), ST_EINVAL);
	assert_int_equal(reserve1(db, "1A2B", &err), ST_EINVAL);
	assert_int_equal(db_cert_reserve(db, batch, 0, &err), ST_EINVAL);
	assert_int_equal(db_cert_reserve(db, batch, DB_CERT_RESERVE_MAX + 1, &err), ST_EINVAL);

	/* state machine: injected needs issued; issued needs reserved */
	assert_int_equal(db_cert_injected(db, "1a2b", &err), ST_ESTATE);
	assert_int_equal(db_cert_issued(db, "ffff", u.id, UID1, PK1, der, sizeof(der), &err),
			 ST_ENOTFOUND);
	assert_int_equal(db_cert_issued(db, "1a2b", u.id, UID1, "abc", der, sizeof(der), &err),
			 ST_EINVAL);
	assert_int_equal(db_cert_issued(db, "1a2b", u.id, "", PK1, der, sizeof(der), &err), ST_EINVAL);
	/* issued commits on its own, never inside a caller's transaction */
	assert_int_equal(db_begin(db, &err), ST_OK);
	assert_int_equal(db_cert_issued(db, "1a2b", u.id, UID1, PK1, der, sizeof(der), &err),
			 ST_ESTATE);
	db_rollback(db);
	syncs = db_wal_syncs(db);
	assert_int_equal(db_cert_issued(db, "1a2b", u.id, UID1, PK1, der, sizeof(der), &err), ST_OK);
	assert_int_equal(db_wal_syncs(db), syncs + 1);   /* its own commit synced before return */
	assert_int_equal(db_pubkey_seen(db, PK1, &seen, &err), ST_OK);
	assert_true(seen);
	assert_int_equal(db_cert_issued(db, "1a2b", u.id, UID1, PK2, der, sizeof(der), &err),
			 ST_ESTATE);
	/* clone: the same key on another serial is refused, the serial stays reserved */
	assert_int_equal(db_cert_issued(db, "3c", u.id, UID1, PK1, der, sizeof(der), &err), ST_EEXIST);
	assert_non_null(strstr(err.msg, "already certified (serial 1a2b)"));
	assert_int_equal(db_cert_injected(db, "1a2b", &err), ST_OK);

	/* an orphan: issued, never injected -> revoked */
	assert_int_equal(db_cert_issued(db, "5e", u.id, UID1, PK2, der, sizeof(der), &err), ST_OK);
	assert_int_equal(db_cert_revoke(db, "5e", "badReason", "eng1", &err), ST_EINVAL);
	assert_int_equal(db_cert_revoke(db, "5e", "cessationOfOperation", "eng1", &err), ST_OK);
	assert_int_equal(db_cert_revoke(db, "5e", "keyCompromise", "eng1", &err), ST_ESTATE);
	assert_int_equal(db_cert_revoke(db, "999", "keyCompromise", "eng1", &err), ST_ENOTFOUND);

	/* unused serials are voided; an issued one cannot be; a void one is final */
	assert_int_equal(db_cert_void(db, &batch[0], 1, &err), ST_ESTATE);
	assert_int_equal(db_cert_void(db, &batch[3], 1, &err), ST_OK);
	assert_int_equal(db_cert_void(db, &batch[3], 1, &err), ST_ESTATE);
	assert_int_equal(db_cert_revoke(db, "6f", "superseded", "eng1", &err), ST_ESTATE);
	assert_int_equal(db_cert_issued(db, "6f", u.id, UID2, PK3, der, sizeof(der), &err), ST_ESTATE);

	memset(&cs, 0, sizeof(cs));
	assert_int_equal(db_cert_foreach(db, DB_CERT_REVOKED, collect_cert, &cs, &err), ST_OK);
	assert_int_equal(cs.n, 1);
	assert_string_equal(cs.serial[0], "5e");
	assert_string_equal(cs.reason[0], "cessationOfOperation");
	memset(&cs, 0, sizeof(cs));
	assert_int_equal(db_cert_foreach(db, -1, collect_cert, &cs, &err), ST_OK);
	assert_int_equal(cs.n, 5);
	memset(&cs, 0, sizeof(cs));
	assert_int_equal(db_cert_foreach(db, DB_CERT_RESERVED, collect_cert, &cs, &err), ST_OK);
	assert_int_equal(cs.n, 2);   /* 3c (the clone's) and 72: recovery revokes such rows */
	/* by unit: the two certificates bound to it, none of the unbound serials */
	memset(&cs, 0, sizeof(cs));
	assert_int_equal(db_cert_foreach_unit(db, u.id, collect_cert, &cs, &err), ST_OK);
	assert_int_equal(cs.n, 2);
	assert_string_equal(cs.serial[0], "1a2b");
	assert_string_equal(cs.serial[1], "5e");
	memset(&cs, 0, sizeof(cs));
	assert_int_equal(db_cert_foreach_unit(db, u.id + 1, collect_cert, &cs, &err), ST_OK);
	assert_int_equal(cs.n, 0);
	memset(&cs, 0, sizeof(cs));
	assert_int_equal(db_cert_foreach(db, DB_CERT_INJECTED, collect_cert, &cs, &err), ST_OK);
	assert_int_equal(cs.n, 1);
	assert_string_equal(cs.serial[0], "1a2b");
	assert_int_equal(cs.status[0], DB_CERT_INJECTED);
	assert_string_equal(kinds(db), "cert-reserved cert-reserved cert-issued cert-injected "
			    "cert-issued cert-revoked cert-voided ");
	assert_string_equal(db_cert_status_name(DB_CERT_ISSUED), "issued");
	assert_string_equal(db_cert_status_name(DB_CERT_VOID), "void");
	verify_ok(db);
}

static void test_allowlist_queries(void **state)
{
	struct db *db = *state;
	struct errbuf err;
	int64_t rows, count;
	FILE *f = fopen("al.csv", "w");

	assert_non_null(f);
	fprintf(f, "unique_id,lot,model,hw_revision\n%s,LOT-A,W,1\n%s,LOT-A,W,1\n", UID1, UID2);
	fclose(f);
	assert_int_equal(db_allowlist_count(db, "LOT-A", &count, &err), ST_OK);
	assert_int_equal(count, 0);
	assert_int_equal(db_allowlist_import(db, "al.csv", "LOT-A", NULL, NULL, NULL, "eng1", &rows, NULL),
			 ST_OK);
	assert_int_equal(rows, 2);
	assert_int_equal(db_allowlist_count(db, "LOT-A", &count, &err), ST_OK);
	assert_int_equal(count, 2);
	assert_int_equal(db_allowlist_contains(db, "LOT-A", UID2, &err), ST_OK);
	assert_int_equal(db_allowlist_contains(db, "LOT-B", UID2, &err), ST_ENOTFOUND);
	assert_int_equal(db_allowlist_contains(db, "LOT-A", "0123456789ABCDEF01234569", &err),
			 ST_ENOTFOUND);
	/* the same file again is a no-op: 0 rows, nothing written (issue 13) */
	rows = -1;
	assert_int_equal(db_allowlist_import(db, "al.csv", "LOT-A", NULL, NULL, NULL, "eng1", &rows, &err),
			 ST_OK);
	assert_int_equal(rows, 0);
	assert_int_equal(db_allowlist_count(db, "LOT-A", &count, &err), ST_OK);
	assert_int_equal(count, 2);
	/* another file with the same ids, with a NULL errbuf, fails cleanly */
	f = fopen("al2.csv", "w");
	assert_non_null(f);
	fprintf(f, "unique_id,lot,model,hw_revision\n%s,LOT-A,W,1\n%s,LOT-A,W,1\n", UID2, UID1);
	fclose(f);
	assert_int_equal(db_allowlist_import(db, "al2.csv", "LOT-A", NULL, NULL, NULL, "eng1", &rows, NULL),
			 ST_EEXIST);
	/* not inside a caller's transaction */
	assert_int_equal(db_begin(db, &err), ST_OK);
	assert_int_equal(db_allowlist_import(db, "al.csv", "LOT-A", NULL, NULL, NULL, "eng1", &rows, &err),
			 ST_ESTATE);
	db_rollback(db);
	assert_string_equal(kinds(db), "allowlist-import ");
}

/* Invariant 2: once db_cert_issued() returns, the record survives the process
 * dying on the spot (no close, no atexit). */
/* The issued record's sync goes to the WAL SQLite writes.  A WAL removed
 * under the open database (SQLite keeps writing its unlinked inode, which is
 * lost at close) fails the record: the certificate must not leave. */
static void test_removed_wal_fails_the_record(void **state)
{
	struct db *db = *state;
	const uint8_t der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	const char *batch[] = { "a1", "a2" };
	char wal[300];
	struct db_unit u;
	struct errbuf err;

	unit_init(&u, UID1);
	assert_int_equal(db_unit_begin(db, &u, &err), ST_OK);
	assert_int_equal(db_cert_reserve(db, batch, 2, &err), ST_OK);
	assert_int_equal(db_cert_issued(db, "a1", u.id, UID1, PK1, der, sizeof(der), &err), ST_OK);
	snprintf(wal, sizeof(wal), "%s-wal", db_path(db));
	assert_int_equal(unlink(wal), 0);
	assert_int_equal(db_cert_issued(db, "a2", u.id, UID1, PK2, der, sizeof(der), &err), ST_EDB);
	assert_non_null(strstr(err.msg, "WAL"));
}

static void test_issued_survives_crash(void **state)
{
	struct db *db = *state;
	struct errbuf err;
	struct certs cs;
	int status;
	pid_t pid;

	(void)db;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct db *c;
		struct db_unit u;
		const uint8_t der[] = { 0x30, 0x00 };

		unit_init(&u, UID2);
		if (db_open("crash.db", "st1", &c, &err) || db_unit_begin(c, &u, &err) ||
		    reserve1(c, "abc", &err) ||
		    db_cert_issued(c, "abc", u.id, UID2, PK2, der, sizeof(der), &err))
			_exit(1);
		_exit(0);   /* a crash: nothing closed, nothing flushed by us */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(db_open("crash.db", "st1", &db, &err), ST_OK);
	memset(&cs, 0, sizeof(cs));
	assert_int_equal(db_cert_foreach(db, DB_CERT_ISSUED, collect_cert, &cs, &err), ST_OK);
	assert_int_equal(cs.n, 1);
	assert_string_equal(cs.serial[0], "abc");
	verify_ok(db);
	db_close(db);
}

/* The manufacturer's PKI, made with the openssl command line: a CA, a
 * signer it issued (keyUsage digitalSignature), the same key certified
 * without that usage, a self-signed impostor named like
 * the CA, and a second CA with its own signer. */
static const char PKI[] =
	"set -e; ec='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes';"
	"ca() { openssl req -x509 $ec -keyout $1.key -subj \"/CN=$2\" -days 30"
	" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
	" -out $1.pem 2>/dev/null; };"
	"ca mca 'Acme Manufacturer CA'; ca fake 'Acme Manufacturer CA'; ca other 'Other CA';"
	"openssl req -new $ec -keyout s.key -subj /CN=Acme-Signer -out s.csr 2>/dev/null;"
	"echo keyUsage=critical,digitalSignature > ku.ext;"
	"echo keyUsage=critical,keyEncipherment > noku.ext;"
	"openssl x509 -req -in s.csr -CA mca.pem -CAkey mca.key -days 30 -extfile ku.ext"
	" -out signer.pem 2>/dev/null;"
	"openssl x509 -req -in s.csr -CA mca.pem -CAkey mca.key -days 30 -extfile noku.ext"
	" -out noku.pem 2>/dev/null;"
	"openssl x509 -req -in s.csr -CA other.pem -CAkey other.key -days 30 -extfile ku.ext"
	" -out osigner.pem 2>/dev/null;"
	"for f in v.csv w.csv; do openssl dgst -sha256 -sign s.key -out $f.sig $f;"
	" openssl dgst -sha256 -sign fake.key -out $f.fake $f; done";

static int find_import(const struct db_event *e, void *ctx)
{
	if (!strcmp(e->kind, "allowlist-import"))
		snprintf(ctx, 1024, "%s", e->detail);
	return 0;
}

/* Issue 12: a signed allowlist is signed by the manufacturer.  The signer
 * must chain to the manufacturer CA, with digitalSignature; the lot's CA is pinned by its first signed import; the event
 * records the signer's and the CA's fingerprints. */
static void test_allowlist_signer(void **state)
{
	struct db *db = *state;
	struct errbuf err;
	int64_t rows = 0, count;
	char detail[1024] = "";
	FILE *f = fopen("v.csv", "w");

	fprintf(f, "unique_id,lot,model,hw_revision\n%s,LOT-V,W,1\n", UID1);
	fclose(f);
	f = fopen("w.csv", "w");
	fprintf(f, "unique_id,lot,model,hw_revision\n%s,LOT-V,W,1\n", UID2);
	fclose(f);
	assert_int_equal(system(PKI), 0);
#define IMPORT(csv, sig, cert, ca) \
	db_allowlist_import(db, csv, "LOT-V", sig, cert, ca, "eng1", &rows, &err)
	/* a self-signed "CN=Acme Manufacturer CA" signing the file itself */
	assert_int_equal(IMPORT("v.csv", "v.csv.fake", "fake.pem", "mca.pem"), ST_ECRYPTO);
	assert_non_null(strstr(err.msg, "does not chain to the manufacturer CA"));
	/* the signer's key certified without digitalSignature */
	assert_int_equal(IMPORT("v.csv", "v.csv.sig", "noku.pem", "mca.pem"), ST_ECRYPTO);
	assert_non_null(strstr(err.msg, "no digitalSignature key usage"));
	/* the CA as its own signer, a CA that is not one, no CA at all */
	assert_int_equal(IMPORT("v.csv", "v.csv.sig", "mca.pem", "mca.pem"), ST_ECRYPTO);
	assert_int_equal(IMPORT("v.csv", "v.csv.sig", "signer.pem", "signer.pem"), ST_ECRYPTO);
	assert_int_equal(IMPORT("v.csv", "v.csv.sig", "signer.pem", NULL), ST_EINVAL);
	assert_int_equal(IMPORT("v.csv", "v.csv.sig", NULL, NULL), ST_EINVAL);
	assert_int_equal(db_allowlist_count(db, "LOT-V", &count, &err), ST_OK);
	assert_int_equal(count, 0);
	/* the manufacturer's signer */
	assert_int_equal(IMPORT("v.csv", "v.csv.sig", "signer.pem", "mca.pem"), ST_OK);
	assert_int_equal(rows, 1);
	assert_int_equal(db_audit_foreach(db, 0, find_import, detail, &err), ST_OK);
	assert_non_null(strstr(detail, "\"signer_sha256\":\""));
	assert_non_null(strstr(detail, "\"manufacturer_ca_sha256\":\""));
	assert_non_null(strstr(detail, "\"signed\":true"));
	/* the lot's CA is now pinned: another CA's signer is refused for it */
	assert_int_equal(IMPORT("w.csv", "w.csv.sig", "osigner.pem", "other.pem"), ST_EPOLICY);
	assert_non_null(strstr(err.msg, "pinned"));
	assert_int_equal(IMPORT("w.csv", "w.csv.sig", "signer.pem", "mca.pem"), ST_OK);
	assert_int_equal(rows, 1);
#undef IMPORT
	verify_ok(db);
}

/* ---- the clone check's own read connection -------------------------------- */

struct writer {
	struct db *db;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int in_txn, go, rc;
};

/* Holds a transaction that records PK2 until told to commit (or 5 s pass). */
static void *hold_txn(void *arg)
{
	struct writer *w = arg;
	struct timespec until;
	struct db_unit u;
	struct errbuf err;

	unit_init(&u, UID2);
	w->rc = db_unit_begin(w->db, &u, &err);
	if (!w->rc)
		w->rc = db_begin(w->db, &err);
	if (!w->rc) {
		snprintf(u.pubkey_hash, sizeof(u.pubkey_hash), PK2);
		snprintf(u.stage, sizeof(u.stage), "keygen");
		w->rc = db_unit_progress(w->db, &u, &err);
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&w->mu);
	w->in_txn = 1;
	pthread_cond_broadcast(&w->cv);
	while (!w->go && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0)
		;
	pthread_mutex_unlock(&w->mu);
	if (!w->rc)
		w->rc = db_commit(w->db, &err);
	return NULL;
}

/* The clone check sees what is committed; a caller inside its own open
 * transaction sees its own writes; and a check never waits for another
 * thread's open transaction (it reads the committed state beside it). */
static void test_clone_check_reads_beside_the_writer(void **state)
{
	struct db *db = *state;
	struct writer w = { .db = db, .mu = PTHREAD_MUTEX_INITIALIZER,
			    .cv = PTHREAD_COND_INITIALIZER };
	struct db_unit u;
	struct errbuf err;
	pthread_t t;
	int seen = -1;

	unit_init(&u, UID1);
	assert_int_equal(db_unit_begin(db, &u, &err), ST_OK);
	assert_int_equal(db_pubkey_seen_by_other(db, PK1, UID2, &seen, &err), ST_OK);
	assert_false(seen);
	/* in our own transaction: our uncommitted key is seen, for another board */
	assert_int_equal(db_begin(db, &err), ST_OK);
	snprintf(u.pubkey_hash, sizeof(u.pubkey_hash), PK1);
	snprintf(u.stage, sizeof(u.stage), "keygen");
	assert_int_equal(db_unit_progress(db, &u, &err), ST_OK);
	assert_int_equal(db_pubkey_seen_by_other(db, PK1, UID2, &seen, &err), ST_OK);
	assert_true(seen);
	assert_int_equal(db_pubkey_seen_by_other(db, PK1, UID1, &seen, &err), ST_OK);
	assert_false(seen);    /* the same board showing its key again */
	db_rollback(db);
	assert_int_equal(db_pubkey_seen_by_other(db, PK1, UID2, &seen, &err), ST_OK);
	assert_false(seen);
	/* committed: seen on the read connection */
	assert_int_equal(db_unit_progress(db, &u, &err), ST_OK);
	assert_int_equal(db_pubkey_seen_by_other(db, PK1, UID2, &seen, &err), ST_OK);
	assert_true(seen);

	/* another thread's open transaction: not seen, and not waited for
	 * (waiting would let the writer time out, commit, and PK2 be seen) */
	assert_int_equal(pthread_create(&t, NULL, hold_txn, &w), 0);
	pthread_mutex_lock(&w.mu);
	while (!w.in_txn)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	assert_int_equal(db_pubkey_seen_by_other(db, PK2, UID1, &seen, &err), ST_OK);
	assert_false(seen);
	pthread_mutex_lock(&w.mu);
	w.go = 1;
	pthread_cond_broadcast(&w.cv);
	pthread_mutex_unlock(&w.mu);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.rc, ST_OK);
	assert_int_equal(db_pubkey_seen_by_other(db, PK2, UID1, &seen, &err), ST_OK);
	assert_true(seen);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_profiles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_units, setup, teardown),
		cmocka_unit_test_setup_teardown(test_certs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allowlist_queries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_issued_survives_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_removed_wal_fails_the_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allowlist_signer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clone_check_reads_beside_the_writer, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("db_records", tests, NULL, NULL);
}
