/*
 * cli_ledger: the ledger options (see cli_ledger.h).
 */
#include "cli/cli_ledger.h"

#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

int cli_ledger_option(struct cli_ledger *o, int c, const char *arg)
{
	if (c == CLI_LEDGER_OPT_CONNINFO)
		o->conninfo = arg;
	else if (c == CLI_LEDGER_OPT_PASSFILE)
		o->password_file = arg;
	else
		return 0;
	return 1;
}

int cli_ledger_config(const struct cli_ledger *o, const char *cmd, const char *station_id,
		      struct ledger_config *cfg)
{
	const char *conninfo = o->conninfo ? o->conninfo : getenv("STATION_LEDGER");

	memset(cfg, 0, sizeof(*cfg));
	if (!conninfo || !*conninfo) {
		if (o->password_file) {
			cli_usage_error(cmd, "--ledger-password-file without a ledger (--ledger)");
			return -1;
		}
		return 0;
	}
	if (strlen(conninfo) >= sizeof(cfg->conninfo) ||
	    (o->password_file && strlen(o->password_file) >= sizeof(cfg->password_file)) ||
	    strlen(station_id) >= sizeof(cfg->station_id)) {
		cli_usage_error(cmd, "--ledger or --ledger-password-file is too long");
		return -1;
	}
	strcpy(cfg->conninfo, conninfo);
	if (o->password_file)
		strcpy(cfg->password_file, o->password_file);
	strcpy(cfg->station_id, station_id);
	return 1;
}
