/* Unit tests: IPC-CFX 1.3 messages (export/cfx.h): the envelope, both
 * bodies, ids derived from the unit (the same unit, the same ids: a message
 * written twice after a crash is one to a collector), Result per verdict,
 * and file names sorted by unit then sending order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "export/cfx.h"

static json_t *msg(enum cfx_message m, const struct cfx_unit *u)
{
	char *s = cfx_message_json(m, u);
	json_t *j;

	assert_non_null(s);
	j = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
	free(s);
	assert_non_null(j);
	return j;
}

static const char *str(json_t *o, const char *path)
{
	json_t *v = json_object_get(o, path);

	return json_string_value(v);
}

static void test_messages(void **state)
{
	struct cfx_unit u = { .station_id = "line/1", .lot = "L1", .unique_id = "0123456789ABCDEF01234567",
			      .bay = "1-2", .unit_id = 42, .finished_ms = 1796408718448,
			      .result = CFX_COMPLETED };
	json_t *p = msg(CFX_UNITS_PERSONALIZED, &u), *w = msg(CFX_WORK_COMPLETED, &u), *again, *b;
	char name[128];

	(void)state;
	assert_string_equal(str(p, "MessageName"), "CFX.Production.Assembly.UnitsPersonalized");
	assert_string_equal(str(w, "MessageName"), "CFX.Production.WorkCompleted");
	assert_string_equal(str(w, "Version"), "1.3");
	assert_string_equal(str(w, "TimeStamp"), "2026-12-04T18:25:18.448Z");
	assert_string_equal(str(w, "Source"), "station.line/1");
	assert_true(json_is_null(json_object_get(w, "Target")));
	assert_true(json_is_null(json_object_get(w, "RequestID")));
	assert_int_equal(strlen(str(w, "UniqueID")), 36);
	assert_int_equal(str(w, "UniqueID")[14], '8');              /* version 8 */
	assert_string_not_equal(str(w, "UniqueID"), str(p, "UniqueID"));
	/* one transaction: both bodies name it */
	b = json_object_get(w, "MessageBody");
	assert_string_equal(str(b, "TransactionID"),
			    str(json_object_get(p, "MessageBody"), "TransactionId"));
	assert_string_equal(str(b, "Result"), "Completed");
	assert_string_equal(str(b, "PrimaryIdentifier"), u.unique_id);
	assert_string_equal(str(json_object_get(b, "WorkOrderIdentifier"), "WorkOrderId"), "L1");
	assert_string_equal(str(json_array_get(json_object_get(b, "Units"), 0), "PositionName"), "1-2");
	/* the same unit again: the same ids */
	again = msg(CFX_WORK_COMPLETED, &u);
	assert_true(json_equal(again, w));
	json_decref(again);
	/* another unit: other ids */
	u.unit_id = 43;
	again = msg(CFX_WORK_COMPLETED, &u);
	assert_string_not_equal(str(again, "UniqueID"), str(w, "UniqueID"));
	json_decref(again);

	u.result = CFX_ABORTED;
	u.lot = NULL;
	again = msg(CFX_WORK_COMPLETED, &u);
	b = json_object_get(again, "MessageBody");
	assert_string_equal(str(b, "Result"), "Aborted");
	assert_true(json_is_null(json_object_get(b, "WorkOrderIdentifier")));
	json_decref(again);

	cfx_file_name(CFX_UNITS_PERSONALIZED, &u, name, sizeof(name));
	assert_string_equal(name, "line_1-u000000000043-1-UnitsPersonalized.json");
	cfx_file_name(CFX_WORK_COMPLETED, &u, name, sizeof(name));
	assert_string_equal(name, "line_1-u000000000043-2-WorkCompleted.json");
	assert_int_equal(cfx_result_of_status("pass"), CFX_COMPLETED);
	assert_int_equal(cfx_result_of_status("reject"), CFX_FAILED);
	assert_int_equal(cfx_result_of_status("interrupted"), CFX_ABORTED);
	assert_int_equal(cfx_result_of_status("in-progress"), -1);
	json_decref(p);
	json_decref(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
