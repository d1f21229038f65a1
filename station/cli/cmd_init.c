/*
 * station init [--db PATH] [--station-id ID]
 *
 * The only command that creates a database: a mistyped --db anywhere else is
 * refused (cli_db_open) instead of becoming an empty database.  The new
 * database stores this station's id (--station-id, default the host name),
 * with a "station-init" audit event, and the commands run on it later use that
 * id unless --station-id says otherwise.
 */
#include "cli/cli.h"
#include "db/db.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: station init [--db PATH] [--station-id ID]\n"
		"\n"
		"Creates the database PATH (default %s; missing directories are made\n"
		"mode 0700, the file mode 0600) and stores ID (default: the host name) as\n"
		"its station id.  Refuses a PATH that exists.  Every other command refuses a\n"
		"database that does not exist.\n", CLI_DEFAULT_DB);
}

int cmd_init(struct cli_ctx *ctx, int argc, char **argv)
{
	struct errbuf err;
	struct stat sb;
	struct db *db;
	int rc;

	if (cli_wants_help(argc, argv)) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (argc > 1)
		return cli_usage_error("init", "unexpected argument '%s'", argv[1]);
	if (stat(ctx->db_path, &sb) == 0)
		return cli_fail("init: %s already exists (it is opened with --db %s)",
				ctx->db_path, ctx->db_path);
	if (errno != ENOENT)
		return cli_fail("init: %s: %s", ctx->db_path, strerror(errno));
	errbuf_clear(&err);
	if ((rc = db_open_ex(ctx->db_path, ctx->station_id, DB_OPEN_CREATE, &db, &err)))
		return cli_fail("init: %s", err.msg);
	rc = db_station_init(db, ctx->actor, &err);
	db_close(db);
	if (rc)
		return cli_fail("init: %s", err.msg);
	printf("created %s for station %s\n", ctx->db_path, ctx->station_id);
	return CLI_EXIT_OK;
}
