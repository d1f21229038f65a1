/*
 * hsm_cli: the HSM options shared by the commands that open the token
 * (station crl, station checkpoint, ...).
 *
 *   --hsm-config FILE   an INI file with an [hsm] section (read first)
 *   --module PATH --token LABEL --ca-key LABEL --ca-cert PEM --audit-key LABEL
 *   --pin-file FILE | --pin-env VAR
 * Explicit options override the file.  There is no option that takes a PIN.
 *
 * Use: put HSM_CLI_LONG_OPTIONS in the command's getopt_long table, pass every
 * option code >= HSM_CLI_OPT_BASE to hsm_cli_option(), then hsm_cli_config().
 * Option parsing is the CLI's: hsm/ only ever sees the struct hsm_config built
 * here (hsm/hsm.h), the same one the line builds from a profile.
 */
#ifndef STATION_HSM_CLI_H
#define STATION_HSM_CLI_H

#include <getopt.h>
#include <stdio.h>

#include "core/errbuf.h"
#include "hsm/hsm.h"

#define HSM_CLI_OPT_BASE 0x1000
#define HSM_CLI_MAX_SET  16

#define HSM_CLI_LONG_OPTIONS \
	{ "hsm-config", required_argument, NULL, HSM_CLI_OPT_BASE + 0 }, \
	{ "module",     required_argument, NULL, HSM_CLI_OPT_BASE + 1 }, \
	{ "token",      required_argument, NULL, HSM_CLI_OPT_BASE + 2 }, \
	{ "ca-key",     required_argument, NULL, HSM_CLI_OPT_BASE + 3 }, \
	{ "ca-cert",    required_argument, NULL, HSM_CLI_OPT_BASE + 4 }, \
	{ "audit-key",  required_argument, NULL, HSM_CLI_OPT_BASE + 5 }, \
	{ "pin-file",   required_argument, NULL, HSM_CLI_OPT_BASE + 6 }, \
	{ "pin-env",    required_argument, NULL, HSM_CLI_OPT_BASE + 7 }

#define HSM_CLI_USAGE \
	"HSM options (or an [hsm] section in --hsm-config FILE; see docs/security.md):\n" \
	"  --hsm-config FILE   INI file with an [hsm] section (read first)\n" \
	"  --module PATH       PKCS#11 module (default " HSM_DEFAULT_MODULE ")\n" \
	"  --token LABEL       token label\n" \
	"  --ca-key LABEL      CA private key label\n" \
	"  --ca-cert PEM       CA certificate\n" \
	"  --audit-key LABEL   audit checkpoint key label\n" \
	"  --pin-file FILE     read the user PIN from FILE (mode 0600)\n" \
	"  --pin-env VAR       read the user PIN from environment variable VAR\n" \
	"  (neither: prompt on the terminal, no echo)\n"

struct hsm_cli {
	const char *ini;
	const char *keys[HSM_CLI_MAX_SET];
	const char *values[HSM_CLI_MAX_SET];
	int n;
};

/* 1 if opt is one of ours (recorded), 0 if not. */
int hsm_cli_option(struct hsm_cli *cli, int opt, const char *arg);
/* Builds the configuration: defaults, then the INI file, then the options. */
int hsm_cli_config(const struct hsm_cli *cli, struct hsm_config *c, struct errbuf *err);

#endif
