/*
 * cli: what every command shares (cli.h): the failure and usage-error lines,
 * the --help test and the OPERAND --reason parser.  main.c dispatches to the
 * commands and the commands call down here, so calls between the files of
 * station/cli go one way.
 */
#include "cli/cli.h"
#include "db/db.h"

#include "db/db.h"

#include <getopt.h>
#include <stdarg.h>
#include <string.h>
#include <stdio.h>

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

int cli_db_open(struct cli_ctx *ctx, const char *cmd, struct db **out)
{
	struct errbuf e;
	int rc;

	errbuf_clear(&e);
	rc = db_open_ex(ctx->db_path, ctx->station_id, ctx->station_id_given ? 0 : DB_OPEN_STORED_ID,
			out, &e);
	if (rc == ST_ENOTFOUND)
		return cli_fail("%s: database %s does not exist (create it with station init --db %s)",
				cmd, ctx->db_path, ctx->db_path);
	if (rc)
		return cli_fail("%s: %s", cmd, e.msg);
	snprintf(ctx->station_id, sizeof(ctx->station_id), "%s", db_station_id(*out));
	return CLI_EXIT_OK;
}

void cli_print_name(FILE *f, const char *s)
{
	int plain = *s != '\0';

	for (const char *p = s; *p && plain; p++)
		plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || strchr("._-+:@/", *p);
	if (plain)
		fputs(s, f);
	else
		cli_print_quoted(f, s);
}

void cli_print_quoted(FILE *f, const char *s)
{
	/* shell quoting, with bytes a terminal would act on made visible */
	fputc('\'', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\'')
			fputs("'\\''", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	fputc('\'', f);
}

struct lot_names {
	FILE *f;
	int n;
};

static int print_lot_name(const char *lot, void *arg)
{
	struct lot_names *l = arg;

	fputs(l->n++ ? ", " : "", l->f);
	cli_print_name(l->f, lot);
	return l->n >= 50;
}

int cli_unknown_lot(struct db *db, const char *cmd, const char *lot)
{
	struct lot_names l = { stderr, 0 };
	struct errbuf e;

	fprintf(stderr, "station: %s: no lot ", cmd);
	cli_print_name(stderr, lot);
	fputs(" in this database; ", stderr);
	fputs("the lots are: ", stderr);
	if (db_lot_foreach(db, print_lot_name, &l, &e) != ST_OK)
		fprintf(stderr, "(cannot list them: %s)", e.msg);
	else if (!l.n)
		fputs("none yet (an engineer imports a lot's allowlist with"
		      " `station allowlist import`)", stderr);
	fputc('\n', stderr);
	return CLI_EXIT_FAIL;
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

	return cli_db_verified_res(db, cmd, &res);
}

int cli_db_verified_res(struct db *db, const char *cmd, struct db_verify_result *res)
{
	struct errbuf err;

	errbuf_clear(&err);
	if (db_audit_verify(db, res, &err) == ST_OK)
		return 0;
	return cli_fail("%s: refusing to act on a database that does not verify: %s", cmd, err.msg);
}
