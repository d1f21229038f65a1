/*
 * station: the factory provisioning station's single binary.
 * Global options, then one subcommand; see `station help`.
 */
#include "cli/cli.h"
#include "cli/cli_role.h"
#include "core/ids.h"
#include "core/proc.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

static const struct cli_cmd commands[] = {
	{ "help",      "list the commands, or show one command's help", cmd_help },
	{ "version",   "print the version and the schema version", cmd_version },
	{ "audit",     "verify the audit chain and its signed checkpoints; list events", cmd_audit },
	{ "allowlist", "import a manufacturer allowlist for a lot (signed CSV); list it", cmd_allowlist },
	{ "usb",       "list, inspect, flash or watch boards in the USB bays", cmd_usb },
	{ "revoke",    "revoke a certificate by serial, with an RFC 5280 reason", cmd_revoke },
	{ "crl",       "write a CRL of the revoked certificates, signed in the HSM", cmd_crl },
	{ "checkpoint", "sign the audit chain head now with the HSM audit key", cmd_checkpoint },
	{ "profile",   "add a product profile (validated, versioned); list, show", cmd_profile },
	{ "run",       "run the provisioning line for a lot (screen or --headless JSON)", cmd_run },
	{ "rework",    "authorise a passed or locked board to be provisioned again (revokes its certificate)", cmd_rework },
	{ "role",      "grant, revoke or list the roles (operator, qa, engineer) of named users", cmd_role },
	{ "export",    "export a lot's records (CSV, JSON lines) or a signed manifest; verify one", cmd_export },
	{ "unit",      "show everything about one board: attempts, certificates, reworks, audit events", cmd_unit },
	{ "init",      "create a new database for this station (the only command that creates one)", cmd_init },
	{ "lot",       "list the lots with their counts and yield, or show one lot", cmd_lot },
	{ "report",    "write a lot's report as one HTML page: yield, throughput, Pareto, cycle times", cmd_report },
	{ "ledger",    "the factory ledger: init, status, verify, push (PostgreSQL)", cmd_ledger },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void global_usage(FILE *f)
{
	fprintf(f,
		"usage: station [--db PATH] [--station-id ID] [--user NAME] COMMAND [ARGS]\n"
		"\n"
		"global options (before or after the command):\n"
		"  --db PATH          the database (default %s); `station init --db PATH`\n"
		"                     creates it, every other command needs it to exist\n"
		"  --station-id ID    this station's id in records (default: the id stored by\n"
		"                     station init, else the host name); printable, no spaces\n"
		"  --user NAME        who is acting, as the audit log names them (default: the OS\n"
		"                     login); printable ASCII; with roles, bound to this login\n"
		"\n"
		"commands:\n", CLI_DEFAULT_DB);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n`station COMMAND --help` shows a command's options.\n");
}

/* Edit distance with transpositions (optimal string alignment), for "did you
 * mean": "roel" is one step from "role".  Names are short (bounded). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strnlen(a, 31), lb = strnlen(b, 31), d[32][32];

	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);

			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb];
}

/* One line: the nearest command when there is one close enough. */
static int unknown_command(const char *name)
{
	size_t best = (size_t)-1, at = 0;

	for (size_t i = 0; i < NCOMMANDS; i++) {
		size_t d = edit_distance(name, commands[i].name);

		if (d < best) {
			best = d;
			at = i;
		}
	}
	/* close enough: a third of the command's letters (at least one) */
	/* what was typed is shown quoted, control bytes escaped */
	fputs("station: unknown command ", stderr);
	cli_print_quoted(stderr, strnlen(name, 65) > 64 ? "(a long word)" : name);
	if (best <= (strlen(commands[at].name) / 3 > 1 ? strlen(commands[at].name) / 3 : 1))
		fprintf(stderr, "; did you mean '%s'?", commands[at].name);
	fputs(" (`station help` lists the commands)\n", stderr);
	return CLI_EXIT_USAGE;
}

int cmd_help(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		global_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (argc > 2)
		return cli_usage_error("help", "unexpected argument '%s'", argv[2]);
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (!strcmp(commands[i].name, argv[1]) && strcmp(argv[1], "help")) {
			char *sub[] = { argv[1], "--help", NULL };
			return commands[i].run(ctx, 2, sub);
		}
	}
	if (!strcmp(argv[1], "help")) {
		global_usage(stdout);
		return CLI_EXIT_OK;
	}
	return unknown_command(argv[1]);
}

#ifndef STATION_VERSION
#define STATION_VERSION "0.1.0"
#endif

int cmd_version(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	if (cli_wants_help(argc, argv)) {
		printf("usage: station version\n");
		return CLI_EXIT_OK;
	}
	if (argc > 1)
		return cli_usage_error("version", "unexpected argument '%s'", argv[1]);
	printf("station %s\n", STATION_VERSION);
	return CLI_EXIT_OK;
}

/* Secrets pass through this process (HSM PIN): keep them out of core dumps. */
static void harden_process(void)
{
	struct rlimit no_core = { 0, 0 };

	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* Applies one global option; CLI_EXIT_USAGE (one line printed) when its value
 * breaks the rule the audit log applies (core/ids.h), before anything is
 * touched. */
static int set_global(struct cli_ctx *ctx, int opt, char *val)
{
	switch (opt) {
	case 'd':
		if (!*val) {
			fprintf(stderr, "station: --db needs a path\n");
			return CLI_EXIT_USAGE;
		}
		ctx->db_path = val;
		return CLI_EXIT_OK;
	case 's':
		if (!ids_station_valid(val)) {
			fprintf(stderr, "station: --station-id must be 1..%d printable ASCII characters"
				" without spaces or control bytes\n", IDS_STATION_MAX);
			return CLI_EXIT_USAGE;
		}
		snprintf(ctx->station_id, sizeof(ctx->station_id), "%s", val);
		ctx->station_id_given = 1;
		return CLI_EXIT_OK;
	default:
		if (!ids_actor_valid(val)) {
			fprintf(stderr, "station: --user must be 1..%d printable ASCII characters"
				" (no tab, newline or control byte)\n", IDS_ACTOR_MAX);
			return CLI_EXIT_USAGE;
		}
		snprintf(ctx->actor, sizeof(ctx->actor), "%s", val);
		return CLI_EXIT_OK;
	}
}

/* The global options may also follow the command (`station crl --db X`):
 * takes them out of the command's arguments, up to a "--". */
static int take_globals(struct cli_ctx *ctx, int *argc, char **argv)
{
	static const struct { const char *name; int opt; } g[] = {
		{ "--db", 'd' }, { "--station-id", 's' }, { "--user", 'u' },
	};
	int i = 1, rc;

	while (i < *argc && strcmp(argv[i], "--")) {
		size_t k, n = 0;
		char *val = NULL;

		for (k = 0; k < sizeof(g) / sizeof(g[0]); k++) {
			n = strlen(g[k].name);
			if (!strncmp(argv[i], g[k].name, n) && (argv[i][n] == '\0' || argv[i][n] == '='))
				break;
		}
		if (k == sizeof(g) / sizeof(g[0])) {
			i++;
			continue;
		}
		if (argv[i][n] == '=') {
			val = argv[i] + n + 1;
			n = 1;
		} else if (i + 1 < *argc) {
			val = argv[i + 1];
			n = 2;
		} else {
			fprintf(stderr, "station: %s needs a value\n", g[k].name);
			return CLI_EXIT_USAGE;
		}
		if ((rc = set_global(ctx, g[k].opt, val)))
			return rc;
		memmove(argv + i, argv + i + n, (size_t)(*argc - i - (int)n + 1) * sizeof(*argv));
		*argc -= (int)n;
	}
	return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "db",         required_argument, NULL, 'd' },
		{ "station-id", required_argument, NULL, 's' },
		{ "user",       required_argument, NULL, 'u' },
		{ "help",       no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_ctx ctx;
	int c, rc;

	harden_process();
	(void)proc_tune_malloc();   /* a speed setting: without it, as before */
	memset(&ctx, 0, sizeof(ctx));
	ctx.prog = "station";
	ctx.db_path = CLI_DEFAULT_DB;
	if (gethostname(ctx.station_id, sizeof(ctx.station_id)) != 0 ||
	    !ids_station_valid(ctx.station_id))
		snprintf(ctx.station_id, sizeof(ctx.station_id), "station");
	ctx.station_id[sizeof(ctx.station_id) - 1] = '\0';
	/* who is calling comes from the OS, not from $USER (cli_role.h) */
	cli_role_login(ctx.login, sizeof(ctx.login));
	snprintf(ctx.actor, sizeof(ctx.actor), "%s", ctx.login);

	/* "+": stop at the command name; its own options follow it. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
		case 's':
		case 'u':
			if ((rc = set_global(&ctx, c, optarg)))
				return rc;
			break;
		case 'h':
			global_usage(stdout);
			return CLI_EXIT_OK;
		default:
			global_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		global_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (!strcmp(commands[i].name, argv[optind])) {
			int sub_argc = argc - optind;
			char **sub_argv = argv + optind;

			if ((rc = take_globals(&ctx, &sub_argc, sub_argv)))
				return rc;
			optind = 0; /* glibc: 0 re-initialises getopt for the command */
			return commands[i].run(&ctx, sub_argc, sub_argv);
		}
	}
	return unknown_command(argv[optind]);
}
