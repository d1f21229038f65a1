/*
 * station crl --out FILE [--der] [--days N] HSM-OPTIONS
 *
 * Signs, in the HSM, a CRL listing every revoked certificate in the database
 * (serial, revocation time, reason) and writes it to FILE (PEM by default),
 * atomically.
 */
#include "cli/cli.h"
#include "hsm/crl.h"
#include "hsm/certstore.h"
#include "app/certstore_db.h"
#include "db/db.h"
#include "hsm/hsm.h"
#include "cli/hsm_cli.h"

#include <getopt.h>
#include <unistd.h>
#include <stdlib.h>

#include <openssl/crypto.h>

static void crl_usage(FILE *f)
{
	fprintf(f,
		"usage: station crl --out FILE [--der] [--days N] HSM-OPTIONS\n"
		"\n"
		"Write a CRL signed by the CA key in the HSM that lists every revoked\n"
		"certificate in the database.  PEM unless --der; nextUpdate is N days ahead\n"
		"(default 7).\n"
		"\n" HSM_CLI_USAGE);
}

int cmd_crl(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out",  required_argument, NULL, 'o' },
		{ "der",  no_argument,       NULL, 'D' },
		{ "days", required_argument, NULL, 'n' },
		{ "help", no_argument,       NULL, 'h' },
		HSM_CLI_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct hsm_cli hc = { 0 };
	struct hsm_config cfg;
	struct hsm_certstore store;
	struct errbuf err;
	struct hsm *h = NULL;
	struct db *db = NULL;
	const char *out = NULL;
	uint8_t *der = NULL;
	size_t len = 0;
	int64_t count = 0;
	int c, rc, pem = 1, days = 7;
	char *end;

	if (cli_wants_help(argc, argv)) {
		crl_usage(stdout);
		return CLI_EXIT_OK;
	}
	while ((c = getopt_long(argc, argv, "+o:h", opts, NULL)) != -1) {
		if (hsm_cli_option(&hc, c, optarg))
			continue;
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'D':
			pem = 0;
			break;
		case 'n':
			days = (int)strtol(optarg, &end, 10);
			if (*end || days < 1 || days > 3650)
				return cli_usage_error("crl", "--days must be 1..3650");
			break;
		default:
			return cli_usage_error("crl", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("crl", "unexpected argument '%s'", argv[optind]);
	if (!out)
		return cli_usage_error("crl", "missing --out FILE");
	if (hsm_cli_config(&hc, &cfg, &err) != ST_OK)
		return cli_usage_error("crl", "%s", err.msg);

	if (cli_db_open(ctx, "crl", &db))
		return CLI_EXIT_FAIL;
	if (cli_db_verified(db, "crl")) {
		db_close(db);
		return CLI_EXIT_FAIL;
	}
	if ((rc = hsm_open(&cfg, &h, &err)) != ST_OK) {
		db_close(db);
		return cli_fail("crl: %s", err.msg);
	}
	app_certstore_db(&store, db);
	rc = crl_build(h, &store, days, &der, &len, &count, &err);
	if (rc == ST_OK)
		rc = crl_write(out, der, len, pem, &err);
	OPENSSL_free(der);
	hsm_close(h);
	db_close(db);
	if (rc != ST_OK)
		return cli_fail("crl: %s", err.msg);
	printf("wrote %s: %lld revoked certificate%s\n", out, (long long)count, count == 1 ? "" : "s");
	return CLI_EXIT_OK;
}
