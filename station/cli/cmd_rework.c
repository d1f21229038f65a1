/*
 * station rework UNIQUE_ID --reason TEXT
 *
 * The engineer's authorisation to provision a board again (invariant 3,
 * db/rework.h): in one transaction the board's certificate is revoked
 * (superseded), its PASS unit is marked superseded and a single-use
 * authorisation is recorded with an audit event.  The next PASS of the board
 * on the line uses it up.  Needs no HSM: `station crl` signs the CRL that
 * lists the revoked certificate.
 */
#include "cli/cli.h"
#include "cli/cli_role.h"
#include "core/ids.h"
#include "db/db.h"
#include "db/rework.h"

#include <string.h>
#include <unistd.h>

static void rework_usage(FILE *f)
{
	fprintf(f,
		"usage: station rework UNIQUE_ID --reason TEXT\n"
		"\n"
		"Authorise the board UNIQUE_ID (24 upper-case hex digits), which already\n"
		"passed, or which a unit that failed or was interrupted at or after LOCK left\n"
		"locked, to be provisioned once more.  Its certificate is revoked with reason\n"
		"superseded (publish a new CRL with `station crl --out FILE`), its PASS (if\n"
		"any) is marked superseded, and the authorisation (who, why, when) waits for\n"
		"the board's next PASS, which uses it up.  Reset a locked board first (its\n"
		"documented procedure).  The board must come back with a new key: a public\n"
		"key seen before is still refused.  TEXT: one line, 1 to %d bytes.\n",
		DB_REWORK_REASON_MAX);
}

int cmd_rework(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *reason, *uid;
	struct db_rework w;
	struct errbuf err;
	struct db *db;
	int rc;

	if (cli_wants_help(argc, argv)) {
		rework_usage(stdout);
		return CLI_EXIT_OK;
	}
	/* UNIQUE_ID may come before or after --reason */
	if ((rc = cli_operand_reason("rework", argc, argv, &uid, &reason)))
		return rc;
	if (!uid)
		return cli_usage_error("rework", "missing UNIQUE_ID");
	if (!reason)
		return cli_usage_error("rework", "missing --reason TEXT (why the board is reworked)");
	if (!ids_uid_valid(uid))
		return cli_usage_error("rework", "'%s' is not a unique id (24 upper-case hex digits)", uid);
	if (!ids_text_valid(reason, DB_REWORK_REASON_MAX))
		return cli_usage_error("rework", "--reason is one line of 1 to %d bytes of UTF-8 text",
				       DB_REWORK_REASON_MAX);

	if (cli_db_open(ctx, "rework", &db))
		return CLI_EXIT_FAIL;
	if (cli_role_require(ctx, db, DB_ROLE_ENGINEER, "rework")) {
		db_close(db);
		return CLI_EXIT_FAIL;
	}
	rc = db_rework_authorise(db, uid, reason, ctx->actor, &w, &err);
	db_close(db);
	if (rc != ST_OK)
		return cli_fail("rework: %s", err.msg);
	printf("rework %lld authorised for %s (lot %s) by %s\n", (long long)w.id, w.unique_id,
	       w.lot, w.authorised_by);
	if (strcmp(w.old_status, "pass"))
		printf("unit %lld (%s at or after LOCK) left the board locked\n",
		       (long long)w.old_unit_id, w.old_status);
	if (!strcmp(w.old_revoke_reason, "none"))
		printf("no certificate of it is live\n");
	else if (!strcmp(w.old_revoke_reason, "superseded"))
		printf("certificate %s revoked (superseded); publish a new CRL with `station crl`\n",
		       w.old_serial);
	else
		printf("certificate %s was already revoked (%s)\n", w.old_serial, w.old_revoke_reason);
	printf("reset the board (new key), then plug it into a bay of a run of lot %s\n", w.lot);
	return CLI_EXIT_OK;
}
