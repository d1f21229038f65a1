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
		cmocka_unit_test(test_event_bus_orders_and_fans_out),
	};

	return cmocka_run_group_tests_name("errbuf+event", tests, NULL, NULL);
}
