/*
 * cli: the `station` command's subcommands.
 *
 * main() parses the global options into a cli_ctx and dispatches to one cmd_*
 * function.  A command returns the process exit status:
 *   0  success
 *   1  the operation failed (one line on stderr: "station: <what>: <why>")
 *   2  usage error (unknown command or flag, missing argument; usage on stderr)
 * Commands never read secrets from argv: PINs come from a file, an environment
 * variable named in the configuration, or a prompt on the terminal.
 */
#ifndef STATION_CLI_H
#define STATION_CLI_H

#include <stdio.h>

#define CLI_EXIT_OK    0
#define CLI_EXIT_FAIL  1
#define CLI_EXIT_USAGE 2

#define CLI_DEFAULT_DB "var/station.db"

struct cli_ctx {
	const char *prog;        /* "station" */
	const char *db_path;     /* --db, default CLI_DEFAULT_DB */
	char station_id[64];     /* --station-id, default: the database's, else host name */
	int  station_id_given;   /* --station-id was on the command line */
	char actor[65];          /* --user, default: the OS login (docs/engineer.md "Roles") */
	char login[64];          /* the OS login: getpwuid(getuid()), or "uid:N" */
};

struct db;

struct cli_cmd {
	const char *name;
	const char *summary;                       /* one line for `station help` */
	int (*run)(struct cli_ctx *ctx, int argc, char **argv); /* argv[0] = name */
};

/* Prints "station: <msg>" on stderr and returns CLI_EXIT_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "station <cmd>: <msg>", a hint to use --help, returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Nothing acts on unverified state: verifies the chain and every audited row
 * (db_audit_verify).  0 when intact; otherwise prints one line naming the
 * first bad row and returns CLI_EXIT_FAIL. */
struct db;
struct db_verify_result;
int cli_db_verified(struct db *db, const char *cmd);
/* The same, and *res holds the verification's figures (events, rows,
 * checkpoints) for a command that reports them. */
int cli_db_verified_res(struct db *db, const char *cmd, struct db_verify_result *res);

/* Opens ctx->db_path for cmd, which must exist ("database X does not exist
 * (create it with station init --db X)"; nothing is created), as the
 * database's own station id unless --station-id was given; sets
 * ctx->station_id to the id in use.  CLI_EXIT_OK or CLI_EXIT_FAIL (printed). */
int cli_db_open(struct cli_ctx *ctx, const char *cmd, struct db **out);

/* Prints s as is when it is plain ([A-Za-z0-9._-+:@/]), else shell-quoted
 * with control bytes as \xNN (a lot or a name read from a database). */
void cli_print_name(FILE *f, const char *s);
/* The same, always quoted ('crll'). */
void cli_print_quoted(FILE *f, const char *s);
/* "station: CMD: no lot LOT in this database; the lots are: A, B" on stderr;
 * returns CLI_EXIT_FAIL. */
int cli_unknown_lot(struct db *db, const char *cmd, const char *lot);

/* True when argv holds -h or --help anywhere before a "--". */
int cli_wants_help(int argc, char **argv);

/* Parses "OPERAND --reason TEXT" in either order (revoke, rework): fills
 * *operand and *reason (NULL when absent) or returns a usage error for cmd. */
int cli_operand_reason(const char *cmd, int argc, char **argv,
		       const char **operand, const char **reason);

/* The commands (one file each: station/cli/cmd_<name>.c; help and version in
 * main.c, which holds the command table).  The helpers above are cli.c. */
int cmd_help(struct cli_ctx *ctx, int argc, char **argv);
int cmd_version(struct cli_ctx *ctx, int argc, char **argv);
int cmd_audit(struct cli_ctx *ctx, int argc, char **argv);      /* cmd_audit.c */
int cmd_allowlist(struct cli_ctx *ctx, int argc, char **argv);  /* cmd_allowlist.c */
int cmd_usb(struct cli_ctx *ctx, int argc, char **argv);        /* cmd_usb.c */
int cmd_revoke(struct cli_ctx *ctx, int argc, char **argv);     /* cmd_revoke.c */
int cmd_crl(struct cli_ctx *ctx, int argc, char **argv);        /* cmd_crl.c */
int cmd_checkpoint(struct cli_ctx *ctx, int argc, char **argv); /* cmd_checkpoint.c */
int cmd_profile(struct cli_ctx *ctx, int argc, char **argv);    /* cmd_profile.c */
int cmd_run(struct cli_ctx *ctx, int argc, char **argv);        /* cmd_run.c */
int cmd_rework(struct cli_ctx *ctx, int argc, char **argv);     /* cmd_rework.c */
int cmd_role(struct cli_ctx *ctx, int argc, char **argv);       /* cmd_role.c */
int cmd_export(struct cli_ctx *ctx, int argc, char **argv);     /* cmd_export.c */
int cmd_unit(struct cli_ctx *ctx, int argc, char **argv);       /* cmd_unit.c */

int cmd_init(struct cli_ctx *ctx, int argc, char **argv);       /* cmd_init.c */
int cmd_lot(struct cli_ctx *ctx, int argc, char **argv);        /* cmd_lot.c */
int cmd_report(struct cli_ctx *ctx, int argc, char **argv);     /* cmd_report.c */

#endif
