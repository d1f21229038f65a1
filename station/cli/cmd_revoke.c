/*
 * station revoke SERIAL --reason REASON
 *
 * Marks a certificate revoked in the database (with the reason, the time and an
 * audit event naming the actor).  The next `station crl` lists it.  Needs no
 * HSM: the revocation is a record; the CRL is what the HSM signs.
 */
#include "cli/cli.h"
#include "cli/cli_role.h"
#include "hsm/crl.h"
#include "db/db.h"

#include <unistd.h>
#include <string.h>

static void revoke_usage(FILE *f)
{
	fprintf(f,
		"usage: station revoke SERIAL --reason REASON\n"
		"\n"
		"Revoke the certificate with serial SERIAL (hex, as recorded; a leading 0x and\n"
		"colons are accepted).  REASON is an RFC 5280 name: %s.\n"
		"Then publish a new CRL with `station crl --out FILE`.\n", crl_reason_names());
}

/* Normalises a serial to the recorded form: lower-case hex, no leading zeros. */
static int normalise_serial(const char *in, char *out, size_t size)
{
	size_t n = 0;

	if (!strncmp(in, "0x", 2) || !strncmp(in, "0X", 2))
		in += 2;
	for (; *in; in++) {
		char c = *in;

		if (c == ':')
			continue;
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -1;
		if (n == 0 && c == '0')
			continue;
		if (n + 1 >= size)
			return -1;
		out[n++] = c;
	}
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

int cmd_revoke(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *reason, *serial_arg;
	char serial[65];
	struct errbuf err;
	struct db *db;
	int rc;

	if (cli_wants_help(argc, argv)) {
		revoke_usage(stdout);
		return CLI_EXIT_OK;
	}
	/* SERIAL may come before or after --reason */
	if ((rc = cli_operand_reason("revoke", argc, argv, &serial_arg, &reason)))
		return rc;
	if (!serial_arg)
		return cli_usage_error("revoke", "missing SERIAL");
	if (!reason)
		return cli_usage_error("revoke", "missing --reason (one of: %s)", crl_reason_names());
	if (crl_reason_code(reason) < 0)
		return cli_usage_error("revoke", "unknown reason '%s' (one of: %s)", reason,
				       crl_reason_names());
	if (normalise_serial(serial_arg, serial, sizeof(serial)) != 0)
		return cli_usage_error("revoke", "'%s' is not a hex serial number", serial_arg);

	if (cli_db_open(ctx, "revoke", &db))
		return CLI_EXIT_FAIL;
	if (cli_role_require(ctx, db, DB_ROLE_ENGINEER, "revoke")) {
		db_close(db);
		return CLI_EXIT_FAIL;
	}
	rc = db_cert_revoke(db, serial, reason, ctx->actor, &err);
	db_close(db);
	if (rc != ST_OK)
		return cli_fail("revoke: %s", err.msg);
	printf("revoked %s (%s)\n", serial, reason);
	return CLI_EXIT_OK;
}
