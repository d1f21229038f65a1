/*
 * cli: what every command shares (cli.h): the failure and usage-error lines,
 * the --help test and the OPERAND --reason parser.  main.c dispatches to the
 * commands and the commands call down here, so calls between the files of
 * station/cli go one way.
 */
#include "cli/cli.h"
#include "db/db.h"

#include <getopt.h>
#include <stdarg.h>
#include <string.h>

int cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("station: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "station %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry `station %s --help`.\n", cmd);
	return CLI_EXIT_USAGE;
}

int cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return 1;
	}
	return 0;
}

int cli_operand_reason(const char *cmd, int argc, char **argv,
		       const char **operand, const char **reason)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "help",   no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*operand = *reason = NULL;
	while (optind < argc) {
		c = getopt_long(argc, argv, "+r:h", opts, NULL);
		if (c == -1) {
			if (optind >= argc)
				break;
			if (*operand)
				return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
			*operand = argv[optind++];
			continue;
		}
		if (c != 'r')
			return cli_usage_error(cmd, "bad option");
		*reason = optarg;
	}
	return CLI_EXIT_OK;
}

int cli_db_verified(struct db *db, const char *cmd)
{
	struct db_verify_result res;
	struct errbuf err;

	errbuf_clear(&err);
	if (db_audit_verify(db, &res, &err) == ST_OK)
		return 0;
	return cli_fail("%s: refusing to act on a database that does not verify: %s", cmd, err.msg);
}
