/* hsm_cli: HSM command-line options.  See hsm_cli.h. */
#include "cli/hsm_cli.h"

#include <string.h>

static const char *const keys[] = {
	NULL, "module", "token", "ca_key", "ca_cert", "audit_key", "pin_file", "pin_env",
};

int hsm_cli_option(struct hsm_cli *cli, int opt, const char *arg)
{
	int i = opt - HSM_CLI_OPT_BASE;

	if (i < 0 || i >= (int)(sizeof(keys) / sizeof(keys[0])))
		return 0;
	if (i == 0) {
		cli->ini = arg;
		return 1;
	}
	if (cli->n < HSM_CLI_MAX_SET) {
		cli->keys[cli->n] = keys[i];
		cli->values[cli->n] = arg;
		cli->n++;
	}
	return 1;
}

int hsm_cli_config(const struct hsm_cli *cli, struct hsm_config *c, struct errbuf *err)
{
	int rc;

	hsm_config_init(c);
	if (cli->ini && (rc = hsm_config_load_ini(c, cli->ini, err)) != ST_OK)
		return rc;
	for (int i = 0; i < cli->n; i++) {
		/* a PIN source given on the command line replaces the file's */
		if (!strcmp(cli->keys[i], "pin_file"))
			c->pin_env[0] = '\0';
		if (!strcmp(cli->keys[i], "pin_env"))
			c->pin_file[0] = '\0';
		if ((rc = hsm_config_set(c, cli->keys[i], cli->values[i], err)) != ST_OK) {
			char opt[32];
			size_t j;

			/* name the option as typed: ca_key -> --ca-key */
			for (j = 0; cli->keys[i][j] && j < sizeof(opt) - 1; j++)
				opt[j] = cli->keys[i][j] == '_' ? '-' : cli->keys[i][j];
			opt[j] = '\0';
			return errbuf_prefix(err, "--%s: ", opt);
		}
	}
	return hsm_config_check(c, err);
}
