/* Unit tests: errbuf and the event bus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/errbuf.h"
#include "core/event.h"

static void test_errbuf_set_and_prefix(void **state)
{
	struct errbuf e;

	(void)state;
	errbuf_clear(&e);
	assert_int_equal(e.code, ST_OK);
	assert_int_equal(errbuf_set(&e, ST_EPROTO, "bad crc %08x", 0xdeadbeefu), ST_EPROTO);
	assert_string_equal(e.msg, "bad crc deadbeef");
	assert_int_equal(errbuf_prefix(&e, "bay %s: %s: ", "1-2", "flash"), ST_EPROTO);
	assert_string_equal(e.msg, "bay 1-2: flash: bad crc deadbeef");
	assert_string_equal(st_rc_name(ST_ETIMEOUT), "ETIMEOUT");
	assert_string_equal(st_rc_name(-3), "EUNKNOWN");
	/* NULL buffer is allowed and still returns the code */
	assert_int_equal(errbuf_set(NULL, ST_EIO, "x"), ST_EIO);
}

static void test_errbuf_truncates(void **state)
{
	struct errbuf e;
	char big[2000];

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	errbuf_set(&e, ST_EINVAL, "%s", big);
	assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
	errbuf_prefix(&e, "ctx: ");
	assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
	assert_memory_equal(e.msg, "ctx: aaa", 8);
}

/* Origin and reason: set where the cause arises, kept through errbuf_prefix(),
 * generic ones from errbuf_set(), stable names for each code. */
static void test_errbuf_origin_and_reason(void **state)
{
	struct errbuf e;

	(void)state;
	errbuf_clear(&e);
	assert_int_equal(e.origin, ST_ORIGIN_NONE);
	assert_int_equal(e.reason, ST_R_NONE);
	assert_int_equal(errbuf_setr(&e, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_NOT_ON_LOT,
				     "id %s is not on lot %s's allowlist", "A1", "L"), ST_EPOLICY);
	errbuf_prefix(&e, "bay %s: ", "1-2");
	assert_string_equal(e.msg, "bay 1-2: id A1 is not on lot L's allowlist");
	assert_int_equal(e.code, ST_EPOLICY);
	assert_int_equal(e.origin, ST_ORIGIN_POLICY);
	assert_int_equal(e.reason, ST_R_NOT_ON_LOT);
	assert_string_equal(st_reason_name(e.reason), "not_on_lot");
	assert_string_equal(st_origin_name(e.origin), "policy");
	/* errbuf_set: the generic origin and reason of the rc */
	errbuf_set(&e, ST_ETIMEOUT, "x");
	assert_int_equal(e.origin, ST_ORIGIN_NONE);
	assert_int_equal(e.reason, ST_R_TIMEOUT);
	errbuf_set(&e, ST_EDB, "x");
	assert_int_equal(e.origin, ST_ORIGIN_DB);
	assert_string_equal(st_reason_name(e.reason), "db_failure");
	errbuf_set(&e, ST_EHSM, "x");
	assert_int_equal(e.origin, ST_ORIGIN_HSM);
	assert_string_equal(st_reason_name(e.reason), "hsm_failure");
	for (int rc = ST_EINVAL; rc < ST_RC_COUNT; rc++)
		assert_int_not_equal(st_rc_reason(rc), ST_R_NONE);
	assert_int_equal(st_rc_reason(ST_OK), ST_R_NONE);
	assert_int_equal(errbuf_tag(&e, ST_ORIGIN_BOARD, ST_R_BOARD_ERROR), ST_EHSM);
	assert_int_equal(e.reason, ST_R_BOARD_ERROR);
	assert_int_equal(errbuf_setr(NULL, ST_EIO, ST_ORIGIN_IO, ST_R_IO, "x"), ST_EIO);
	assert_string_equal(st_reason_name(ST_R_COUNT), "unknown");
	assert_string_equal(st_origin_name(ST_ORIGIN_COUNT), "unknown");
	/* every code has one distinct lower-case name that maps back to it */
	for (int r = 0; r < ST_R_COUNT; r++) {
		const char *n = st_reason_name((enum st_reason)r);

		assert_string_not_equal(n, "unknown");
		for (const char *c = n; *c; c++)
			assert_true((*c >= 'a' && *c <= 'z') || *c == '_');
		assert_int_equal(st_reason_from_name(n), r);
	}
	assert_int_equal(st_reason_from_name(""), ST_R_NONE);
	assert_int_equal(st_reason_from_name("no-such-code"), ST_R_NONE);
}

struct collect {
	int n;
	uint64_t seqs[8];
	char reasons[8][EV_REASON_LEN];
};

static void sink(const struct ev_event *ev, void *ctx)
{
	struct collect *c = ctx;

	if (c->n < 8) {
		c->seqs[c->n] = ev->seq;
		memcpy(c->reasons[c->n], ev->reason, EV_REASON_LEN);
	}
	c->n++;
}

static void test_event_bus_orders_and_fans_out(void **state)
{
	struct ev_bus *bus = ev_bus_new();
	struct collect a = { 0 }, b = { 0 };

	(void)state;
	assert_non_null(bus);
	assert_int_equal(ev_subscribe(bus, sink, &a), 0);
	assert_int_equal(ev_subscribe(bus, sink, &b), 0);
	ev_emitf(bus, EV_STAGE_END, 0, "1-2", "UID1", EV_STAGE_FLASH, EV_OUT_FAIL,
		 "write error at %u", 4096u);
	ev_emitf(bus, EV_LOG, -1, NULL, NULL, EV_STAGE_NONE, EV_OUT_NONE, NULL);
	assert_int_equal(a.n, 2);
	assert_int_equal(b.n, 2);
	assert_true(a.seqs[0] < a.seqs[1]);
	assert_string_equal(a.reasons[0], "write error at 4096");
	assert_string_equal(a.reasons[1], "");
	for (int i = 2; i < EV_MAX_SINKS; i++)
		assert_int_equal(ev_subscribe(bus, sink, &a), 0);
	assert_int_equal(ev_subscribe(bus, sink, &a), -1);
	assert_string_equal(ev_stage_name(EV_STAGE_VERIFY_IMAGE), "verify-image");
	assert_string_equal(ev_outcome_name(EV_OUT_REJECT), "reject");
	assert_string_equal(ev_kind_name(EV_UNIT_RESULT), "unit-result");
	assert_string_equal(ev_stage_name((enum ev_stage)999), "unknown");
	ev_bus_free(bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errbuf_set_and_prefix),
		cmocka_unit_test(test_errbuf_truncates),
		cmocka_unit_test(test_errbuf_origin_and_reason),
		cmocka_unit_test(test_event_bus_orders_and_fans_out),
	};

	return cmocka_run_group_tests_name("errbuf+event", tests, NULL, NULL);
}
