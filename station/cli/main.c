/*
 * station: the factory provisioning station's single binary.
 * Global options, then one subcommand; see `station help`.
 */
#include "cli/cli.h"
#include "cli/cli_role.h"

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
	{ "rework",    "authorise a passed board to be provisioned again (revokes its certificate)", cmd_rework },
	{ "role",      "grant, revoke or list the roles (operator, qa, engineer) of named users", cmd_role },
	{ "export",    "export a lot's records (CSV, JSON lines) or a signed manifest; verify one", cmd_export },
	{ "unit",      "show everything about one board: attempts, certificates, reworks, audit events", cmd_unit },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void global_usage(FILE *f)
{
	fprintf(f,
		"usage: station [--db PATH] [--station-id ID] [--user NAME] COMMAND [ARGS]\n"
		"\n"
		"global options:\n"
		"  --db PATH          audit database (default %s, created mode 0600)\n"
		"  --station-id ID    this station's id in records (default: host name)\n"
		"  --user NAME        who is acting, as the audit log names them (default: the OS\n"
		"                     login); with roles, NAME must be bound to this login\n"
		"\n"
		"commands:\n", CLI_DEFAULT_DB);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n`station COMMAND --help` shows a command's options.\n");
}

int cmd_help(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	if (argc < 2) {
		global_usage(stdout);
		return CLI_EXIT_OK;
	}
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
	return cli_usage_error("help", "unknown command '%s'", argv[1]);
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
	int c;

	harden_process();
	memset(&ctx, 0, sizeof(ctx));
	ctx.prog = "station";
	ctx.db_path = CLI_DEFAULT_DB;
	if (gethostname(ctx.station_id, sizeof(ctx.station_id)) != 0 || !ctx.station_id[0])
		snprintf(ctx.station_id, sizeof(ctx.station_id), "station");
	ctx.station_id[sizeof(ctx.station_id) - 1] = '\0';
	/* who is calling comes from the OS, not from $USER (cli_role.h) */
	cli_role_login(ctx.login, sizeof(ctx.login));
	snprintf(ctx.actor, sizeof(ctx.actor), "%s", ctx.login);

	/* "+": stop at the command name; its own options follow it. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			ctx.db_path = optarg;
			break;
		case 's':
			if (!*optarg || strlen(optarg) >= sizeof(ctx.station_id))
				return cli_usage_error("--", "station-id must be 1..%zu characters",
						       sizeof(ctx.station_id) - 1);
			snprintf(ctx.station_id, sizeof(ctx.station_id), "%s", optarg);
			break;
		case 'u':
			if (!*optarg || strlen(optarg) >= sizeof(ctx.actor))
				return cli_usage_error("--", "user must be 1..%zu characters",
						       sizeof(ctx.actor) - 1);
			snprintf(ctx.actor, sizeof(ctx.actor), "%s", optarg);
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

			optind = 0; /* glibc: 0 re-initialises getopt for the command */
			return commands[i].run(&ctx, sub_argc, sub_argv);
		}
	}
	fprintf(stderr, "station: unknown command '%s'\n\n", argv[optind]);
	global_usage(stderr);
	return CLI_EXIT_USAGE;
}
