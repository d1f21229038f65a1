/*
 * station unit show [--json] ID|UNIQUE_ID|CERT_SERIAL
 *
 * "What happened to board X?", "which board holds certificate S?": every
 * attempt on the board (time, station, bay, operator, verdict, reason code,
 * stage times), each certificate and its status, the rework authorisations,
 * and the audit events that name the board or one of its certificates
 * (db/trace.h: one snapshot, index searches only).  --json prints the same
 * record as one JSON object for programs.  Exit 1 with one line when the key
 * matches nothing.  Reads only: needs no role.  docs/engineer.md
 * "Traceability".
 */
#include "cli/cli.h"
#include "db/db.h"
#include "db/trace.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void unit_usage(FILE *f)
{
	fprintf(f,
		"usage: station unit show [--json] ID|UNIQUE_ID|CERT_SERIAL\n"
		"\n"
		"Everything about one board: each attempt (time, station, bay, operator,\n"
		"verdict, reason code, stage times in ms), each certificate and its status,\n"
		"rework authorisations and the audit events naming the board or its\n"
		"certificates.  The key is a unit id (digits), a board's unique id (24\n"
		"upper-case hex digits) or a certificate serial (lower-case hex).  --json:\n"
		"one JSON object.  Exit 1 when nothing matches.\n");
}

static const char *str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s && *s ? s : "-";
}

static long long num(const json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static void print_attempt(const json_t *a)
{
	const json_t *stages = json_object_get(a, "stage_ms");
	const char *name;
	json_t *v;
	int first = 1;

	printf("  unit %lld  %s  station %s  bay %s  operator %s  lot %s\n", num(a, "unit_id"),
	       str(a, "started"), str(a, "station_id"), str(a, "bay"), str(a, "operator"),
	       str(a, "lot"));
	printf("    %s at %s", str(a, "status"), str(a, "stage"));
	if (json_string_length(json_object_get(a, "reason_code")))
		printf("  %s (%s)", str(a, "reason_code"), str(a, "reason_plain"));
	if (json_is_integer(json_object_get(a, "duration_ms")))
		printf("  %lld ms", num(a, "duration_ms"));
	printf("\n    reason: %s\n", str(a, "reason"));
	if (json_is_object(stages) && json_object_size(stages)) {
		printf("    stages (ms):");
		json_object_foreach((json_t *)stages, name, v) {
			printf("%s %s %lld", first ? "" : ",", name, (long long)json_integer_value(v));
			first = 0;
		}
		printf("\n");
	}
}

static void print_text(const json_t *j)
{
	const json_t *al = json_object_get(j, "allowlist"), *v;
	size_t i;

	printf("board %s", str(j, "unique_id"));
	if (json_is_object(al))
		printf("  lot %s  model %s  hw_revision %s  (allowlist line %lld of file sha256 %.16s...)",
		       str(al, "lot"), str(al, "model"), str(al, "hw_revision"), num(al, "line"),
		       str(al, "import_sha256"));
	else
		printf("  (on no allowlist)");
	printf("\n");
	printf("attempts (%zu):\n", json_array_size(json_object_get(j, "attempts")));
	json_array_foreach(json_object_get(j, "attempts"), i, v)
		print_attempt(v);
	printf("certificates (%zu):\n", json_array_size(json_object_get(j, "certificates")));
	json_array_foreach(json_object_get(j, "certificates"), i, v) {
		printf("  %s  %s", str(v, "serial"), str(v, "status"));
		if (json_string_length(json_object_get(v, "revoke_reason")))
			printf(" (%s)", str(v, "revoke_reason"));
		printf("  unit %lld  issued %s", num(v, "unit_id"), str(v, "issued"));
		if (json_is_string(json_object_get(v, "revoked")))
			printf("  revoked %s", str(v, "revoked"));
		printf("\n");
	}
	printf("reworks (%zu):\n", json_array_size(json_object_get(j, "reworks")));
	json_array_foreach(json_object_get(j, "reworks"), i, v) {
		printf("  rework %lld  authorised by %s %s: %s  (old unit %lld, certificate %s)",
		       num(v, "id"), str(v, "authorised_by"), str(v, "authorised"), str(v, "reason"),
		       num(v, "old_unit_id"), str(v, "old_serial"));
		if (json_is_integer(json_object_get(v, "new_unit_id")))
			printf("  used by unit %lld", num(v, "new_unit_id"));
		else
			printf("  open");
		printf("\n");
	}
	printf("audit events (%zu):\n", json_array_size(json_object_get(j, "events")));
	json_array_foreach(json_object_get(j, "events"), i, v) {
		char *d = json_dumps(json_object_get(v, "detail"),
				     JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

		printf("  %lld  %s#%lld  %s  %s  %s  %s\n", num(v, "id"), str(v, "station_id"),
		       num(v, "seq"), str(v, "ts"), str(v, "kind"), str(v, "actor"), d ? d : "?");
		free(d);
	}
}

int cmd_unit(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *key = NULL;
	struct errbuf err;
	struct db *db;
	json_t *j;
	int as_json = 0, rc;

	if (cli_wants_help(argc, argv)) {
		unit_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (argc < 2 || strcmp(argv[1], "show"))
		return cli_usage_error("unit", "the subcommand is show (station unit show KEY)");
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			as_json = 1;
		else if (argv[i][0] == '-')
			return cli_usage_error("unit show", "bad option '%s'", argv[i]);
		else if (key)
			return cli_usage_error("unit show", "one KEY, not two");
		else
			key = argv[i];
	}
	if (!key)
		return cli_usage_error("unit show", "a unit id, unique id or certificate serial is needed");
	if (cli_db_open(ctx, "unit show", &db))
		return CLI_EXIT_FAIL;
	rc = db_trace_board(db, key, &j, &err);
	db_close(db);
	if (rc != ST_OK)
		return cli_fail("unit show: %s", err.msg);
	if (as_json) {
		char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);

		if (s)
			printf("%s\n", s);
		free(s);
		rc = s ? CLI_EXIT_OK : cli_fail("unit show: out of memory");
	} else {
		print_text(j);
		rc = CLI_EXIT_OK;
	}
	json_decref(j);
	if (fflush(stdout) != 0)
		return cli_fail("unit show: cannot write stdout");
	return rc;
}
