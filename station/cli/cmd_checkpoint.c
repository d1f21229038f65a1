/*
 * station checkpoint [--checkpoint-log PATH] HSM-OPTIONS
 *
 * Signs the head of this station's audit chain now with the HSM's audit key
 * and stores the checkpoint (`station audit verify` checks it), after
 * verifying the chain up to that head with the token's audit key pinned
 * (app/checkpoint.h): a forged head is refused, exit 1.  The checkpoint also
 * goes to the checkpoint log and the token's anchor.  The line does the same
 * every 100 events and at its stop.
 */
#include "cli/cli.h"
#include "cli/cli_role.h"
#include "db/db.h"
#include "hsm/hsm.h"
#include "app/checkpoint.h"
#include "hsm/hsm_checkpoint.h"
#include "cli/hsm_cli.h"
#include "app/checkpoint_log.h"

#include <getopt.h>
#include <unistd.h>

static void checkpoint_usage(FILE *f)
{
	fprintf(f,
		"usage: station checkpoint [--checkpoint-log PATH] HSM-OPTIONS\n"
		"\n"
		"Verify this station's audit chain up to its head with the HSM audit key\n"
		"(audit_key / --audit-key) pinned, sign the head, append it to the\n"
		"checkpoint log, write it into the token (the rollback anchor) and store\n"
		"the checkpoint in the database.  A head that does not verify is refused.\n"
		"  --checkpoint-log PATH  default $XDG_STATE_HOME/station/<station id>.<chain>.checkpoints\n"
		"                         (~/.local/state/station/... without XDG_STATE_HOME);\n"
		"                         never in the database's directory\n"
		"\n" HSM_CLI_USAGE);
}

int cmd_checkpoint(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "checkpoint-log", required_argument, NULL, 'l' },
		HSM_CLI_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct hsm_cli hc = { 0 };
	char log_path[CPLOG_PATH_MAX];
	const char *log_opt = NULL;
	struct hsm_config cfg;
	struct errbuf err;
	struct hsm *h = NULL;
	struct db *db = NULL;
	int64_t seq = 0;
	int c, rc;

	if (cli_wants_help(argc, argv)) {
		checkpoint_usage(stdout);
		return CLI_EXIT_OK;
	}
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'l')
			log_opt = optarg;
		else if (!hsm_cli_option(&hc, c, optarg))
			return cli_usage_error("checkpoint", "bad option");
	}
	if (optind < argc)
		return cli_usage_error("checkpoint", "unexpected argument '%s'", argv[optind]);
	if (hsm_cli_config(&hc, &cfg, &err) != ST_OK)
		return cli_usage_error("checkpoint", "%s", err.msg);
	if (!cfg.audit_key[0])
		return cli_usage_error("checkpoint", "no audit key (audit_key in [hsm] or --audit-key)");

	if (cli_db_open(ctx, "checkpoint", &db))
		return CLI_EXIT_FAIL;
	if (cli_role_require(ctx, db, DB_ROLE_ENGINEER, "checkpoint")) {
		db_close(db);
		return CLI_EXIT_FAIL;
	}
	if (log_opt)
		snprintf(log_path, sizeof(log_path), "%s", log_opt);
	else if (app_checkpoint_log_default(db, log_path, sizeof(log_path), &err)) {
		db_close(db);
		return cli_fail("checkpoint: %s", err.msg);
	}
	if ((rc = hsm_open(&cfg, &h, &err)) != ST_OK) {
		db_close(db);
		return cli_fail("checkpoint: %s", err.msg);
	}
	rc = app_checkpoint_now(h, db, log_path, &seq, &err);
	hsm_close(h);
	db_close(db);
	if (rc != ST_OK)
		return cli_fail("checkpoint: %s", err.msg);
	printf("signed checkpoint of %s at seq %lld\n", ctx->station_id, (long long)seq);
	return CLI_EXIT_OK;
}
