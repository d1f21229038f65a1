/* Unit tests: the checkpoint log (station/app/checkpoint_log.c) on real files
 * in the scratch directory: what is appended is what is read back, the last
 * line wins, and a log cut short, another chain's, or one beside the database
 * is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/checkpoint_log.h"

static const uint8_t sig[] = { 0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02 };

static void test_append_then_last(void **state)
{
	struct cplog_entry e;
	uint8_t head[32];
	struct errbuf err;
	struct stat sb;

	(void)state;
	assert_int_equal(cplog_last("state/st1.c1.checkpoints", "st1", "c1", &e, &err), ST_ENOTFOUND);
	for (int i = 1; i <= 3; i++) {
		memset(head, i, sizeof(head));
		assert_int_equal(cplog_append("state/st1.c1.checkpoints", "db/st.db", "st1", "c1",
					      10 * i, head, sig, sizeof(sig), &err), ST_OK);
	}
	assert_int_equal(cplog_last("state/st1.c1.checkpoints", "st1", "c1", &e, &err), ST_OK);
	assert_int_equal(e.seq, 30);
	assert_memory_equal(e.head, head, 32);
	assert_int_equal(e.sig_len, sizeof(sig));
	assert_memory_equal(e.sig, sig, sizeof(sig));
	assert_int_equal(stat("state/st1.c1.checkpoints", &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	/* another chain of the station, or another station: refused, named */
	assert_int_equal(cplog_last("state/st1.c1.checkpoints", "st1", "c2", &e, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "chain c1, not station st1's chain c2"));
	assert_int_equal(cplog_last("state/st1.c1.checkpoints", "st2", "c1", &e, &err), ST_ETAMPER);
}

static void test_cut_short_and_beside_the_database(void **state)
{
	struct cplog_entry e;
	uint8_t head[32] = { 0 };
	struct errbuf err;
	FILE *f;

	(void)state;
	assert_int_equal(cplog_append("cut.checkpoints", NULL, "st1", "c1", 5, head, sig,
				      sizeof(sig), &err), ST_OK);
	f = fopen("cut.checkpoints", "a");
	assert_non_null(f);
	fputs("v1 st1 c1 6 0000", f);           /* a line without its end */
	fclose(f);
	assert_int_equal(cplog_last("cut.checkpoints", "st1", "c1", &e, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "cut short"));
	/* one copy of the database's directory would take both */
	assert_int_equal(mkdir("dbdir", 0700), 0);
	assert_int_equal(cplog_append("dbdir/st1.checkpoints", "dbdir/st.db", "st1", "c1", 5, head,
				      sig, sizeof(sig), &err), ST_EINVAL);
	assert_non_null(strstr(err.msg, "in the database's directory"));
}

static void test_default_path(void **state)
{
	char path[CPLOG_PATH_MAX];
	struct errbuf err;

	(void)state;
	setenv("XDG_STATE_HOME", "/x/state", 1);
	assert_int_equal(cplog_default_path("st1", "abcd", path, sizeof(path), &err), ST_OK);
	assert_string_equal(path, "/x/state/station/st1.abcd.checkpoints");
	unsetenv("XDG_STATE_HOME");
	setenv("HOME", "/home/q", 1);
	assert_int_equal(cplog_default_path("st1", "abcd", path, sizeof(path), &err), ST_OK);
	assert_string_equal(path, "/home/q/.local/state/station/st1.abcd.checkpoints");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_then_last),
		cmocka_unit_test(test_cut_short_and_beside_the_database),
		cmocka_unit_test(test_default_path),
	};

	return cmocka_run_group_tests_name("checkpoint_log", tests, NULL, NULL);
}
