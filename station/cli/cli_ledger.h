/*
 * cli_ledger: the ledger options the commands share (`station run`, `station
 * ledger ...`, `station allowlist import`):
 *   --ledger CONNINFO             libpq connection string or URI, without a
 *                                 password (default: $STATION_LEDGER; none:
 *                                 no ledger)
 *   --ledger-password-file FILE   the password, StrictModes as the PIN file
 *                                 (else libpq's PGPASSWORD / PGPASSFILE)
 */
#ifndef STATION_CLI_LEDGER_H
#define STATION_CLI_LEDGER_H

#include "ledger/ledger.h"

#define CLI_LEDGER_OPT_CONNINFO 0x4c01
#define CLI_LEDGER_OPT_PASSFILE 0x4c02
#define CLI_LEDGER_LONG_OPTIONS \
	{ "ledger", required_argument, NULL, CLI_LEDGER_OPT_CONNINFO }, \
	{ "ledger-password-file", required_argument, NULL, CLI_LEDGER_OPT_PASSFILE }
#define CLI_LEDGER_USAGE \
	"  --ledger CONNINFO  the factory ledger (PostgreSQL connection string, no\n" \
	"                   password; default $STATION_LEDGER); docs/factory.md\n" \
	"  --ledger-password-file FILE  its password (mode 0600), else PGPASSWORD\n"
/* For the commands that read the ledger only when asked (export, report):
 * $STATION_LEDGER, which configures the line, does not switch them. */
#define CLI_LEDGER_USAGE_EXPLICIT \
	"  --ledger CONNINFO  read the lot from the factory ledger (PostgreSQL\n" \
	"                   connection string, no password); docs/factory.md\n" \
	"  --ledger-password-file FILE  its password (mode 0600), else PGPASSWORD\n"

struct cli_ledger {
	const char *conninfo, *password_file;
};

/* 1 when c was a ledger option (recorded), else 0. */
int cli_ledger_option(struct cli_ledger *o, int c, const char *arg);
/* Fills cfg: 1 when a ledger is configured, 0 when none, -1 on a bad value
 * (printed as a usage error of cmd). */
int cli_ledger_config(const struct cli_ledger *o, const char *cmd, const char *station_id,
		      struct ledger_config *cfg);

#endif
