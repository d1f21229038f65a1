/*
 * openhtf: one unit as an OpenHTF test record (export_fmt.h), the JSON that
 * OpenHTF's json_factory output callback writes (TestRecord.as_base_types in
 * openhtf/core/test_record.py): dut_id, station_id, start/end_time_millis,
 * outcome, outcome_details [{code, description}], code_info, metadata,
 * phases, diagnoses, log_records.  A phase is a stage of the unit (PhaseRecord
 * fields: descriptor_id, name, codeinfo, start/end_time_millis, outcome,
 * result, measurements, options, attachments, diagnosis_results,
 * failure_diagnosis_results).  docs/engineer.md "OpenHTF test records".
 *
 * The stage times are durations in stage order (units.stage_ms); the phases
 * are laid end to end from the unit's start, so a phase's start and end are
 * as exact as the stage times (the gaps between stages are not recorded).
 */
#include "export/export_fmt.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* PASS, FAIL (fail, reject), ERROR (interrupted: the station stopped; a unit
 * still in progress has no outcome yet and is also written ERROR, with its
 * details saying so). */
static const char *test_outcome(const char *status)
{
	if (!strcmp(status, "pass"))
		return "PASS";
	if (!strcmp(status, "fail") || !strcmp(status, "reject"))
		return "FAIL";
	return "ERROR";
}

static json_t *code_info(const char *name)
{
	return json_pack("{s:s, s:n, s:s}", "name", name, "docstring", "sourcecode", "");
}

static json_t *phase(const char *name, int64_t i, int64_t start, int64_t end, const char *outcome)
{
	return json_pack("{s:I, s:s, s:o, s:I, s:I, s:s, s:s, s:{}, s:{}, s:{}, s:[], s:[]}",
			 "descriptor_id", (json_int_t)i, "name", name, "codeinfo", code_info(name),
			 "start_time_millis", (json_int_t)start, "end_time_millis", (json_int_t)end,
			 "outcome", outcome, "result", !strcmp(outcome, "PASS") ? "CONTINUE" :
			 !strcmp(outcome, "FAIL") ? "STOP" : "ERROR",
			 "measurements", "options", "attachments",
			 "diagnosis_results", "failure_diagnosis_results");
}

/* The stages as phases: each PASS but the one the unit ended in, which takes
 * the unit's outcome (a pass: PASS).  Laid end to end from the unit's start
 * and clamped at its end: each stage is rounded to a ms on its own, so their
 * sum can pass the wall-clock duration by a ms per stage, and a phase must
 * never end after its record. */
static json_t *phases(const struct db_export_row *r, const char *outcome, int64_t end)
{
	json_t *stages = r->stage_ms[0] ? json_loads(r->stage_ms, 0, NULL) : NULL;
	json_t *list = json_array(), *v;
	const char *name;
	int64_t t = r->started_ms, i = 0;
	size_t n;

	if (!list || !json_is_object(stages)) {
		json_decref(stages);
		return list;
	}
	n = json_object_size(stages);
	json_object_foreach(stages, name, v) {
		int64_t ms = json_is_integer(v) && json_integer_value(v) > 0 ?
			     json_integer_value(v) : 0;
		int last = ++i == (int64_t)n;
		int64_t e = t + ms < end ? t + ms : end;
		json_t *p = phase(name, i, t, e, last && strcmp(outcome, "PASS") ?
				  (strcmp(outcome, "FAIL") ? "ERROR" : "FAIL") : "PASS");

		if (!p || json_array_append_new(list, p)) {
			json_decref(list);
			list = NULL;
			break;
		}
		t = e;
	}
	json_decref(stages);
	return list;
}

static json_t *outcome_details(const struct db_export_row *r)
{
	const char *code = r->reason_code[0] ? r->reason_code :
			   !strcmp(r->status, "pass") ? "none" :
			   !strcmp(r->status, "in-progress") ? "in_progress" : "unknown";
	const char *text = r->reason_plain[0] ? r->reason_plain :
			   !strcmp(r->status, "in-progress") ? "the unit is still in progress" :
			   r->reason;

	return json_pack("[{s:s, s:s}]", "code", code, "description", text);
}

static json_t *nul(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

int export_openhtf_row(FILE *f, const struct db_export_row *r, struct errbuf *err)
{
	const char *outcome = test_outcome(r->status);
	int64_t end = r->finished_ms ? r->finished_ms : r->started_ms;
	json_t *j;
	char *s;

	j = json_pack("{s:s, s:s, s:I, s:I, s:s, s:o, s:o,"
		      " s:{s:s, s:{}, s:s, s:{s:o, s:o, s:s}, s:s, s:I, s:s, s:s, s:o, s:o, s:o,"
		      "    s:o, s:o},"
		      " s:o, s:[], s:[]}",
		      "dut_id", r->unique_id[0] ? r->unique_id : "unknown",
		      "station_id", r->station_id,
		      "start_time_millis", (json_int_t)r->started_ms,
		      "end_time_millis", (json_int_t)end,
		      "outcome", outcome,
		      "outcome_details", outcome_details(r),
		      "code_info", code_info("station"),
		      "metadata",
		      "test_name", "station provisioning", "config", "lot", r->lot,
		      "profile", "name", nul(r->profile_name),
		      "version", r->profile_version > 0 ? json_integer(r->profile_version) : json_null(),
		      "sha256", r->profile_hash,
		      "operator", r->operator_name, "unit_id", (json_int_t)r->unit_id,
		      "bay", r->bay, "status", r->status, "stage", nul(r->stage),
		      "model", nul(r->model), "hw_revision", nul(r->hw_revision),
		      "cert_serial", nul(r->cert_serial), "firmware_sha256", nul(r->firmware_hash),
		      "phases", phases(r, outcome, end),
		      "diagnoses", "log_records");
	s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	if (!s)
		return errbuf_set(err, ST_EINVAL, "unit %lld: an OpenHTF record cannot be encoded",
				  (long long)r->unit_id);
	fprintf(f, "%s\n", s);
	free(s);
	return ferror(f) ? errbuf_set(err, ST_EIO, "write OpenHTF record: %s", strerror(errno)) :
			   ST_OK;
}
