/*
 * Integration tests: the line session (station/app/session.h) against real
 * parts, as `station run` sees them: a SoftHSM token made by
 * hsm/softhsm-setup.sh, a SQLite file, the profile stored and loaded back
 * (app/profile_db.h), and simulated boards presented over libusb by the
 * umockdev harness (fixtures/usbemu).  What is checked: the pre-flight
 * refusals and their words, the events and the audit records of a run from
 * start to end, start-up recovery, and that stop is idempotent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "app/profile_db.h"
#include "app/session.h"
#include "config/profile.h"
#include "core/event.h"
#include "core/hex.h"
#include "db/db.h"
#include "fixtures/board/fx_board.h"
#include "fixtures/board/fx_knobs.h"
#include "fixtures/board/fx_mfg.h"
#include "fixtures/usbemu/usbemu.h"
#include "line/pipeline.h"
#include "tests/rig/hsm_test_util.h"

#define NB 2
#define LOT "SESS-1"
#define TOKEN "sess-ca"

static struct fx_mfg_ca mfr;
static char fw_sha[65];
static int board_no, db_no;

/* What the bus carried. */
#define EV_MAX 512
struct seen {
	pthread_mutex_t mu;
	int n;
	enum ev_kind kind[EV_MAX];
	enum ev_outcome out[EV_MAX];
	enum ev_stage stage[EV_MAX];
	char reason[EV_MAX][EV_REASON_LEN];
};

struct env {
	struct usbemu *emu;
	struct fx_board *fb[NB];
	char uid[NB][25];
	struct db *db;
	struct ev_bus *bus;
	struct seen seen;
	struct profile prof;
	struct app_session_opts o;
	int warnings;
};

static void sink(const struct ev_event *ev, void *ctx)
{
	struct seen *s = ctx;

	pthread_mutex_lock(&s->mu);
	if (s->n < EV_MAX) {
		s->kind[s->n] = ev->kind;
		s->out[s->n] = ev->outcome;
		s->stage[s->n] = ev->stage;
		snprintf(s->reason[s->n], EV_REASON_LEN, "%s", ev->reason);
		s->n++;
	}
	pthread_mutex_unlock(&s->mu);
}

static int count(struct seen *s, enum ev_kind k, enum ev_outcome o)
{
	int n = 0;

	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->n; i++)
		n += s->kind[i] == k && (o == EV_OUT_COUNT || s->out[i] == o);
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void on_warn(void *ctx, const char *msg)
{
	struct env *env = ctx;

	fprintf(stderr, "session warning: %s\n", msg);
	env->warnings++;
}

static int group_setup(void **state)
{
	static uint8_t body[20000];
	uint8_t *img, d[32];
	char cmd[1024];
	struct errbuf e;
	size_t i;
	FILE *f;
	long len;

	(void)state;
	snprintf(cmd, sizeof(cmd), "'%s/hsm/softhsm-setup.sh' --dir tok --label %s >/dev/null",
		 tu_top(), TOKEN);
	if (system(cmd) != 0)
		return -1;
	mkdir("mfr", 0700);
	if (fx_mfg_ca_open("mfr", "Session Test Manufacturer CA", &mfr, &e) != ST_OK) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	for (i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 131 + (i >> 9));
	if (fx_mfg_image_write("fw.bin", body, sizeof(body), "1.0", &e) != ST_OK) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	/* the profile names the image's hash: computed here from the file */
	if (!(f = fopen("fw.bin", "rb")) || fseek(f, 0, SEEK_END) || (len = ftell(f)) <= 0)
		return -1;
	rewind(f);
	img = malloc((size_t)len);
	if (!img || fread(img, 1, (size_t)len, f) != (size_t)len)
		return -1;
	fclose(f);
	SHA256(img, (size_t)len, d);
	free(img);
	hex_encode(d, 32, fw_sha);
	/* a PIN file that opens nothing, for the pre-flight refusal */
	f = fopen("wrong-pin", "w");
	if (!f)
		return -1;
	fputs("0000", f);
	fclose(f);
	chmod("wrong-pin", 0600);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	fx_mfg_ca_free(&mfr);
	return 0;
}

/* The profile as `station run` gets it: parsed, its anchors pinned and
 * stored as `station profile add` does, and loaded back with its version and hash. */
static void make_profile(struct db *db, struct profile *p, const char *sha256,
			 const char *pin_file)
{
	char text[2048], *canon, hash[65];
	size_t len;
	struct errbuf e;
	int n, version, pinned = 0;

	n = snprintf(text, sizeof(text),
		     "[product]\nname = sess\nusb = 1209:0001\n"
		     "[firmware]\nimage = fw.bin\nsha256 = %s\n"
		     "[certificate]\nvalidity_days = 30\n"
		     "[hsm]\nmodule = /usr/lib/softhsm/libsofthsm2.so\n"
		     "softhsm2_conf = tok/softhsm2.conf\ntoken = %s\nca_key = station-ca-key\n"
		     "ca_cert = tok/ca.pem\naudit_key = station-audit-key\npin_file = %s\n"
		     "[attestation]\nmanufacturer_ca = mfr/%s\n",
		     sha256, TOKEN, pin_file, FX_MFG_CA_CERT);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	if (profile_parse(text, (size_t)n, "sess.profile", tu_scratch(), p, &e) != ST_OK ||
	    profile_pin_anchors(p, &pinned, &e) != ST_OK ||
	    profile_canonical(p, &canon, &len, &e) != ST_OK)
		fail_msg("%s", e.msg);
	if (db_profile_store(db, "sess", canon, len, "eng", &version, hash, &e) != ST_OK ||
	    profile_load(db, "sess", p, &e) != ST_OK)
		fail_msg("%s", e.msg);
	free(canon);
	assert_string_equal(p->hash, hash);
}

/* The lot's allowlist: the given ids (none when n is 0: no import). */
static void allow(struct env *env, int n)
{
	struct errbuf e;
	int64_t rows;
	FILE *f;

	if (!n)
		return;
	f = fopen("allow.csv", "w");
	assert_non_null(f);
	fprintf(f, "unique_id,lot,model,hw_revision\n");
	for (int i = 0; i < n; i++)
		fprintf(f, "%s,%s,SB-100,rev B\n", env->uid[i], LOT);
	fclose(f);
	if (db_allowlist_import(env->db, "allow.csv", LOT, NULL, NULL, NULL, "eng", &rows, &e) != ST_OK)
		fail_msg("%s", e.msg);
	assert_int_equal(rows, n);
}

static int setup(void **state)
{
	struct env *env = calloc(1, sizeof(*env));
	char path[64];
	struct errbuf e;

	assert_non_null(env);
	pthread_mutex_init(&env->seen.mu, NULL);
	assert_int_equal(usbemu_new(&env->emu, &e), ST_OK);
	snprintf(path, sizeof(path), "st%d.db", ++db_no);
	if (db_open(path, "sess-test", &env->db, &e) != ST_OK)
		fail_msg("%s", e.msg);
	/* `station run` takes it before the session; recovery refuses without */
	if (db_line_acquire(env->db, "olga", &e) != ST_OK)
		fail_msg("%s", e.msg);
	env->bus = ev_bus_new();
	assert_non_null(env->bus);
	ev_subscribe(env->bus, sink, &env->seen);
	make_profile(env->db, &env->prof, fw_sha, "tok/pin");
	env->o.db = env->db;
	env->o.profile = &env->prof;
	env->o.lot = LOT;
	env->o.operator_name = "olga";
	env->o.actor = "olga";
	env->o.station_id = "sess-test";
	env->o.nbays = NB;
	env->o.scan_interval_ms = 20;
	env->o.bus = env->bus;
	env->o.warn = on_warn;
	env->o.warn_ctx = env;
	*state = env;
	return 0;
}

static int teardown(void **state)
{
	struct env *env = *state;

	usbemu_free(env->emu);
	for (int i = 0; i < NB; i++)
		fx_board_close(env->fb[i]);
	ev_bus_free(env->bus);
	db_close(env->db);
	pthread_mutex_destroy(&env->seen.mu);
	free(env);
	return 0;
}

/* Makes board i (a fresh id, certified by the manufacturer CA, instant timing)
 * and plugs it in at port. */
static void board(struct env *env, int i, const char *port)
{
	char dir[32];
	struct fx_knobs k;
	struct errbuf e;

	snprintf(dir, sizeof(dir), "board%d", ++board_no);
	assert_int_equal(fx_mfg_random_uid(env->uid[i], &e), ST_OK);
	if (fx_mfg_board_create(dir, env->uid[i], "SB-100", "rev B", 0x1209, 0x0001, &mfr, NULL,
				&e) != ST_OK)
		fail_msg("%s", e.msg);
	fx_knobs_defaults(&k);
	k.flash_bps = 0;
	k.keygen_ms = 0;
	k.sign_ms = 0;
	assert_int_equal(fx_knobs_save(dir, &k, &e), ST_OK);
	if (fx_board_open(dir, &env->fb[i], &e) != ST_OK)
		fail_msg("%s", e.msg);
	if (usbemu_plug(env->emu, port, &fx_board_ops, env->fb[i], &e) != ST_OK)
		fail_msg("%s", e.msg);
}

/* The line audit records, in order: "line-start:DETAIL\nline-stop:DETAIL\n". */
struct audit_text {
	char text[2048];
};

static int audit_row(const struct db_event *ev, void *ctx)
{
	struct audit_text *a = ctx;
	size_t used = strlen(a->text);

	if (!strncmp(ev->kind, "line-", 5))
		snprintf(a->text + used, sizeof(a->text) - used, "%s:%s\n", ev->kind, ev->detail);
	return 0;
}

static void line_audit(struct env *env, struct audit_text *a)
{
	struct errbuf e;

	a->text[0] = '\0';
	assert_int_equal(db_audit_foreach(env->db, 0, audit_row, a, &e), ST_OK);
}

/* A refusal: open fails with words starting with want, nothing is emitted or
 * recorded, and nothing is left to close. */
static void refused(struct env *env, const char *want)
{
	struct app_session *s = (struct app_session *)1;
	struct audit_text a;
	struct errbuf e;

	errbuf_clear(&e);
	assert_int_not_equal(app_session_open(&env->o, &s, &e), ST_OK);
	assert_null(s);
	if (strncmp(e.msg, want, strlen(want)))
		fail_msg("refusal '%s', expected it to start with '%s'", e.msg, want);
	assert_int_equal(env->seen.n, 0);
	line_audit(env, &a);
	assert_string_equal(a.text, "");
}

static void test_refuses_image_not_in_profile(void **state)
{
	struct env *env = *state;
	char want[512], other[65];

	board(env, 0, "1-1");
	allow(env, 1);
	memset(other, 'a', 64);
	other[64] = '\0';
	make_profile(env->db, &env->prof, other, "tok/pin");
	/* the second version of the profile in this database */
	snprintf(want, sizeof(want), "firmware image %s/fw.bin has SHA-256 %s, profile sess v2 "
		 "expects %s", tu_scratch(), fw_sha, other);
	refused(env, want);
}

static void test_refuses_lot_without_allowlist(void **state)
{
	struct env *env = *state;

	refused(env, "lot " LOT " has no allowlist (station allowlist import FILE --lot " LOT ")");
}

static void test_refuses_token_that_fails_preflight(void **state)
{
	struct env *env = *state;

	board(env, 0, "1-1");
	allow(env, 1);
	make_profile(env->db, &env->prof, fw_sha, "wrong-pin");
	refused(env, "HSM pre-flight failed: ");
}

/* Two boards through the whole line: the run is on the bus and on the record. */
static void test_run_provisions_boards(void **state)
{
	struct env *env = *state;
	struct app_session *s;
	struct pl_counts c;
	struct audit_text a;
	struct errbuf e;
	char want[1024];
	int found;

	board(env, 0, "1-1");
	board(env, 1, "1-2");
	allow(env, NB);
	env->o.max_units = NB;
	if (app_session_open(&env->o, &s, &e) != ST_OK)
		fail_msg("%s", e.msg);
	assert_null(app_session_line(s));
	assert_int_equal(env->seen.n, 0);   /* a UI may be set up now */
	if (app_session_start(s, &e) != ST_OK)
		fail_msg("%s", e.msg);
	assert_non_null(app_session_line(s));
	assert_int_equal(app_session_start(s, &e), ST_ESTATE);
	assert_int_equal(env->seen.kind[0], EV_HSM_STATE);
	assert_int_equal(env->seen.out[0], EV_OUT_OK);
	assert_string_equal(env->seen.reason[0], "token " TOKEN " ready (pre-flight passed)");
	assert_int_equal(env->seen.kind[1], EV_LINE_STARTED);
	app_session_wait(s);
	app_session_stop(s);
	pl_line_counts(app_session_line(s), &c);
	assert_int_equal(c.pass, NB);
	assert_int_equal(c.fail + c.reject + c.in_flight, 0);
	assert_int_equal(count(&env->seen, EV_UNIT_RESULT, EV_OUT_PASS), NB);
	assert_int_equal(env->seen.kind[env->seen.n - 1], EV_LINE_STOPPED);
	for (int i = 0; i < NB; i++) {
		assert_int_equal(db_unit_provisioned(env->db, env->uid[i], &found, &e), ST_OK);
		assert_int_equal(found, 1);
	}
	app_session_end(s);
	line_audit(env, &a);
	snprintf(want, sizeof(want),
		 "line-start:{\"bays\":2,\"lot\":\"" LOT "\",\"profile\":\"sess\","
		 "\"profile_sha256\":\"%s\",\"recovered_units\":0,\"revoked_orphans\":0,"
		 "\"version\":1}\n"
		 "line-stop:{\"fail\":0,\"lot\":\"" LOT "\",\"pass\":2,\"reject\":0}\n",
		 env->prof.hash);
	assert_string_equal(a.text, want);
	assert_int_equal(env->warnings, 0);
	app_session_close(s);
	assert_int_equal(count(&env->seen, EV_LINE_STOPPED, EV_OUT_COUNT), 1);
}

/* A unit a crash left in progress is settled at start, before any board. */
static void test_start_recovers_interrupted_unit(void **state)
{
	struct env *env = *state;
	struct app_session *s;
	struct db_unit u;
	struct audit_text a;
	struct errbuf e;
	int units = -1, revoked = -1;

	/* no board on the bench: what the line does is recovery alone */
	assert_int_equal(fx_mfg_random_uid(env->uid[0], &e), ST_OK);
	allow(env, 1);
	memset(&u, 0, sizeof(u));
	snprintf(u.unique_id, sizeof(u.unique_id), "%s", env->uid[0]);
	snprintf(u.lot, sizeof(u.lot), "%s", LOT);
	snprintf(u.bay, sizeof(u.bay), "1-1");
	snprintf(u.operator_name, sizeof(u.operator_name), "olga");
	snprintf(u.stage, sizeof(u.stage), "flash");
	assert_int_equal(db_unit_begin(env->db, &u, &e), ST_OK);
	if (app_session_open(&env->o, &s, &e) != ST_OK)
		fail_msg("%s", e.msg);
	if (app_session_start(s, &e) != ST_OK)
		fail_msg("%s", e.msg);
	app_session_recovered(s, &units, &revoked);
	assert_int_equal(units, 1);
	assert_int_equal(revoked, 0);
	pthread_mutex_lock(&env->seen.mu);
	{
		int i = 0, log = -1, started = -1;

		for (; i < env->seen.n; i++) {
			if (env->seen.kind[i] == EV_LOG && env->seen.stage[i] == EV_STAGE_RECOVERY)
				log = i;
			if (env->seen.kind[i] == EV_LINE_STARTED)
				started = i;
		}
		assert_true(log >= 0 && started > log);
		assert_string_equal(env->seen.reason[log], "recovered 1 interrupted unit(s), "
				    "revoked 0 orphan certificate(s)");
	}
	pthread_mutex_unlock(&env->seen.mu);
	/* stop from another place twice: the line stops once */
	app_session_request_stop(s);
	app_session_wait(s);
	app_session_stop(s);
	app_session_stop(s);
	app_session_end(s);
	app_session_close(s);
	assert_int_equal(count(&env->seen, EV_LINE_STOPPED, EV_OUT_COUNT), 1);
	line_audit(env, &a);
	assert_non_null(strstr(a.text, "\"recovered_units\":1,"));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refuses_image_not_in_profile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_lot_without_allowlist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_token_that_fails_preflight, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_run_provisions_boards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_recovers_interrupted_unit, setup,
						teardown),
	};

	(void)argc;
	if (usbemu_reexec_preloaded(argv) != 0) {
		perror("usbemu: re-exec under the umockdev preload");
		return 1;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
