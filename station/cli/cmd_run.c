/*
 * station run --profile NAME --lot LOT [--headless] [--bays N] [--max-units N]
 *             [--operator NAME]
 *
 * Runs the line.  The line session (app/session.h) refuses to start when the
 * firmware image does not hash to the profile's SHA-256, the HSM token fails its
 * pre-flight, or the lot has no allowlist, then recovers units a crash left in
 * progress before it accepts a board.  --headless prints one JSON object per
 * event per line on stdout (ui/headless.h) and takes line commands on stdin
 * (run_control.h); otherwise the ncurses screen runs.  The line stops on q
 * (quit on stdin), SIGTERM/SIGINT or after --max-units results, once the units
 * in flight have finished.  This file is the command: options, the event
 * sinks, and which thread waits for what.
 */
#include "cli/cli.h"
#include "cli/cli_ledger.h"
#include "cli/cli_role.h"
#include "cli/run_control.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/cfx_spool.h"
#include "app/checkpoint.h"
#include "app/checkpoint_log.h"
#include "app/profile_db.h"
#include "app/session.h"
#include "config/profile.h"
#include "core/event.h"
#include "core/ids.h"
#include "db/db.h"
#include "line/pipeline.h"
#include "ui/headless.h"
#include "ui/scan.h"
#include "ui/screen.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: station run --profile NAME --lot LOT [--headless] [--bays N|PORT,...]\n"
		"                   [--max-units N] [--operator NAME] [--grace SECONDS]\n"
		"                   [--cfx-spool DIR] [--checkpoint-log PATH] [--scan]\n"
		"                   [--no-bell] [--utc]\n"
		"\n"
		"  --profile NAME   product profile (station profile add FILE)\n"
		"  --lot LOT        the lot being provisioned (its allowlist must be imported)\n"
		"  --headless       one JSON object per event per line on stdout, no screen\n"
		"  --bays N         bays (tiles) on the bench, 1..%d (default 4); a bay is\n"
		"                   lent to the port of the board plugged, until it leaves\n"
		"  --bays PORT,...  the bays are these USB port paths, in order (station usb\n"
		"                   list shows them); a board on another port is ignored\n"
		"  --grace SECONDS  on quit, how long units in flight may finish before\n"
		"                   they are abandoned as interrupted (0..3600, default 30)\n"
		"  --max-units N    stop after N results (pass, fail or reject)\n"
		"  --operator NAME  who runs the line (default: --user); NAME must hold a role\n"
		"                   bound to this OS login (station role list), as --user must\n"
		"  --cfx-spool DIR  write IPC-CFX 1.3 messages (UnitsPersonalized per pass,\n"
		"                   WorkCompleted per unit) into DIR, each on disk before the\n"
		"                   unit's verdict is shown; at start, what a crash left out is\n"
		"                   written first\n"
		"  --checkpoint-log PATH  where the line appends its audit checkpoints (default\n"
		"                   $XDG_STATE_HOME/station/<station id>.<chain>.checkpoints)\n"
		"  --scan           the screen asks for the operator's badge and the lot's\n"
		"                   label (a barcode scanner types them); the default on a\n"
		"                   terminal without --lot (then --operator, if given, is kept)\n"
		"  --no-bell        no bell or flash on a REJECT or a held bay (key b)\n"
		"  --utc            times in UTC (labelled) instead of local time\n"
		CLI_LEDGER_USAGE
		"\n"
		"One line per database: a second run on the same database exits 1 naming the\n"
		"line that holds it (host, pid), and changes nothing.\n"
		"\n"
		"Refuses to start if the firmware image does not match the profile's SHA-256,\n"
		"the HSM token fails its pre-flight, or the lot has no allowlist.  The PIN\n"
		"comes from the profile's pin_file or pin_env, never from the command line.\n"
		"Stops on q (screen), SIGTERM or SIGINT, after the units in flight finish.\n"
		"\n"
		"Headless, with stdin not a terminal, the line reads commands on stdin, one\n"
		"a line: pause, resume, clear BAY (tile 1..N or port label such as 1-2), quit.\n"
		"Each is answered by a log event; end of file only stops the reading.\n",
		PL_MAX_BAYS);
}

/* The screen runs on the main thread: the line is stopped beside it, and the
 * screen quits when it sees the line stopped. */
static void *stopper_main(void *arg)
{
	struct app_session *s = arg;

	app_session_wait(s);
	app_session_stop(s);
	return NULL;
}

static void run_warn(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "station: run: %s\n", msg);
}

struct run_opts {
	const char *profile, *lot, *operator_name;
	const char *cfx_spool;                 /* --cfx-spool DIR, NULL when not */
	char checkpoint_log[CPLOG_PATH_MAX];   /* "": the default (per station and chain) */
	int headless, bays, max_units, grace_s;
	int scan, operator_given, no_bell, utc;
	char scanned_op[UI_SCAN_LEN], scanned_lot[UI_SCAN_LEN];
	char ports[PL_MAX_BAYS][EV_BAY_LEN];   /* --bays PORT,...: bay i's port */
	int nports;
	struct cli_ledger ledger;
};

/* --bays: a count, or the bays' port paths ("1-1,1-2.3"). */
static int parse_bays(const char *arg, struct run_opts *o)
{
	const char *p = arg;

	if (!strpbrk(arg, ",-."))
		return runctl_parse_int(arg, 1, PL_MAX_BAYS, &o->bays) ?
		       cli_usage_error("run", "--bays must be 1..%d or a list of port paths",
				       PL_MAX_BAYS) : CLI_EXIT_OK;
	o->nports = 0;
	while (*p) {
		size_t n = strcspn(p, ",");

		if (o->nports == PL_MAX_BAYS)
			return cli_usage_error("run", "--bays: at most %d ports", PL_MAX_BAYS);
		if (n == 0 || n >= EV_BAY_LEN || strspn(p, "0123456789-.") < n)
			return cli_usage_error("run", "--bays: '%.*s' is not a USB port path "
					       "like 1-2 or 1-1.3 (see station usb list)",
					       (int)(n < 40 ? n : 40), p);
		memcpy(o->ports[o->nports], p, n);
		o->ports[o->nports][n] = '\0';
		for (int i = 0; i < o->nports; i++)
			if (!strcmp(o->ports[i], o->ports[o->nports]))
				return cli_usage_error("run", "--bays: port %s given twice",
						       o->ports[i]);
		o->nports++;
		p += n;
		if (*p == ',' && !*++p)
			return cli_usage_error("run", "--bays: a port path after the last comma");
	}
	o->bays = o->nports;
	return CLI_EXIT_OK;
}

/* ---- scanned badge and lot (ui/scan.h): the checks are the command's ---- */

struct scan_ctx {
	struct cli_ctx *ctx;
	struct db *db;
	struct app_session *session;    /* for a lot change while running */
};

/* The badge's name may run the line here: the same rule as --operator,
 * without printing (the screen shows the refusal and the operator rescans). */
static int scan_badge(void *arg, const char *name, char *msg, size_t len)
{
	struct scan_ctx *sc = arg;
	struct db_role_row r;
	struct errbuf e;
	int found = 0;

	if (!ids_actor_valid(name))
		return snprintf(msg, len, "not a name: scan your badge again"), -1;
	if (!cli_role_enforced(sc->db)) {
		if (strcmp(name, sc->ctx->actor))
			return snprintf(msg, len, "%.64s: this station has no roles, only %.64s may run"
					" it", name, sc->ctx->actor), -1;
		return 0;
	}
	if (db_role_get(sc->db, name, &r, &found, &e) != ST_OK)
		return snprintf(msg, len, "roles: %.200s", e.msg), -1;
	if (!found)
		return snprintf(msg, len, "%.64s has no role on this station: ask an engineer",
				name), -1;
	if (strcmp(r.login, sc->ctx->login))
		return snprintf(msg, len, "%.64s is bound to login %.64s, not this one", name,
				r.login), -1;
	if (!(r.role & (DB_ROLE_OPERATOR | DB_ROLE_QA | DB_ROLE_ENGINEER)))
		return snprintf(msg, len, "%.64s may not run the line", name), -1;
	return 0;
}

static int scan_lot(void *arg, const char *lot, char *msg, size_t len)
{
	struct scan_ctx *sc = arg;
	int64_t allowed = 0;
	struct errbuf e;

	if (!ids_lot_valid(lot))
		return snprintf(msg, len, "not a lot name: scan the lot label again"), -1;
	if (db_allowlist_count(sc->db, lot, &allowed, &e) != ST_OK)
		return snprintf(msg, len, "%.200s", e.msg), -1;
	if (!allowed)
		return snprintf(msg, len, "unknown lot %.64s (no allowlist here): scan again", lot), -1;
	return 0;
}

/* l while paused: a lot label scanned on the running screen. */
static int scan_change_lot(void *arg, const char *code, char *msg, size_t len)
{
	struct scan_ctx *sc = arg;
	char lot[UI_SCAN_LEN * 2];
	struct errbuf e;

	if (ui_scan_parse(code, lot, sizeof(lot)) == 'O')
		return snprintf(msg, len, "that is a badge: scan the lot label"), -1;
	if (scan_lot(sc, lot, msg, len))
		return -1;
	errbuf_clear(&e);
	if (app_session_change_lot(sc->session, lot, &e) != ST_OK)
		return snprintf(msg, len, "%.200s", e.msg), -1;
	return 0;
}

/* What one run holds; run_line() frees it. */
struct run {
	struct db *db;
	struct profile prof;
	struct ev_bus *bus;
	struct ui_headless hl;
	struct ui_screen *screen;
	struct app_session *session;
	struct app_cfx *cfx;
	struct run_control ctl;
	struct scan_ctx scan;
	struct ledger_config ledger;   /* the session points at it */
};

/* The events' sinks: the JSON writer, or the screen (which shows recovery, so
 * it exists before the line does). */
static int ui_open(struct cli_ctx *ctx, const struct run_opts *o, struct run *r)
{
	struct ui_controls ctl;

	if (o->headless) {
		ui_headless_init(&r->hl, stdout);
		ev_subscribe(r->bus, ui_headless_sink, &r->hl);
		return CLI_EXIT_OK;
	}
	runctl_screen_controls(&r->ctl, &ctl);
	r->scan.session = r->session;
	r->ctl.change_lot = scan_change_lot;
	r->ctl.change_lot_arg = &r->scan;
	r->screen = ui_screen_new(o->bays, &ctl);
	if (!r->screen)
		return cli_fail("run: cannot create the screen");
	ui_screen_set_options(r->screen, !o->no_bell, o->utc);
	ui_screen_set_header(r->screen, ctx->station_id, o->operator_name, r->prof.name, o->lot,
			     ctx->db_path);
	ev_subscribe(r->bus, ui_screen_sink, r->screen);
	return CLI_EXIT_OK;
}

/* Headless: the line runs to its stop while line commands are read on stdin. */
static void run_headless(struct run *r, const struct run_opts *o)
{
	runctl_stdin_start(&r->ctl, r->bus, o->bays);
	app_session_wait(r->session);
	app_session_stop(r->session);
	runctl_stdin_stop(&r->ctl);
}

/* The screen: the line is stopped on another thread while the screen runs. */
static int run_screen(struct run *r)
{
	pthread_t stopper;
	struct errbuf e;

	if (pthread_create(&stopper, NULL, stopper_main, r->session) != 0) {
		app_session_request_stop(r->session);
		app_session_stop(r->session);
		return cli_fail("run: cannot start a thread");
	}
	if (ui_screen_run(r->screen, &e)) {
		app_session_request_stop(r->session);
		pthread_join(stopper, NULL);
		return cli_fail("run: %s", e.msg);
	}
	pthread_join(stopper, NULL);
	return CLI_EXIT_OK;
}

/* The CFX spool: what an earlier run left out is written first, then its sink
 * goes on the bus before the UI's, so a verdict is shown only once its
 * messages are on disk (app/cfx_spool.h). */
static int cfx_open(struct cli_ctx *ctx, const struct run_opts *o, struct run *r)
{
	struct errbuf e;
	int64_t units = 0;

	if (app_cfx_open(o->cfx_spool, ctx->station_id, o->lot, run_warn, NULL, &r->cfx, &e) ||
	    app_cfx_catch_up(r->cfx, r->db, &units, &e))
		return cli_fail("run: %s", e.msg);
	if (units)
		fprintf(stderr, "station: run: CFX spool: wrote the messages of %lld earlier units\n",
			(long long)units);
	if (ev_subscribe(r->bus, app_cfx_sink, r->cfx))
		return cli_fail("run: too many event sinks");
	return CLI_EXIT_OK;
}

/* The badge and the lot, scanned on the screen when they were not given. */
static int run_scan(struct cli_ctx *ctx, struct run_opts *o, struct run *r)
{
	struct ui_scan sc = { scan_badge, scan_lot, &r->scan, ctx->station_id };
	struct errbuf e;

	r->scan.ctx = ctx;
	r->scan.db = r->db;
	errbuf_clear(&e);
	if (o->operator_given)
		snprintf(o->scanned_op, sizeof(o->scanned_op), "%s", o->operator_name);
	if (o->lot)
		snprintf(o->scanned_lot, sizeof(o->scanned_lot), "%s", o->lot);
	if (ui_scan_run(&sc, o->scanned_op, o->scanned_lot, &e) != ST_OK)
		return cli_fail("run: %s", e.msg);
	o->operator_name = o->scanned_op;
	o->lot = o->scanned_lot;
	return CLI_EXIT_OK;
}

/* From the database to the session's end; r is freed by the caller. */
static int run_session(struct cli_ctx *ctx, struct run_opts *o, struct run *r)
{
	struct app_session_opts so;
	int64_t allowed = 0;
	struct errbuf e;
	int rc, use_ledger;

	errbuf_clear(&e);
	if (cli_db_open(ctx, "run", &r->db))
		return CLI_EXIT_FAIL;
	/* qa too: QA replays batches with `station run` (docs/qa.md) */
	if (cli_role_require(ctx, r->db, DB_ROLE_OPERATOR | DB_ROLE_QA | DB_ROLE_ENGINEER, "run"))
		return CLI_EXIT_FAIL;
	/* before the line writes anything: a second line changes nothing, and
	 * recovery (app_session_start) runs only under this lock */
	if (db_line_acquire(r->db, ctx->actor, &e))
		return cli_fail("run: %s", e.msg);
	if (cli_db_verified(r->db, "run"))
		return CLI_EXIT_FAIL;
	if (!o->checkpoint_log[0] &&
	    app_checkpoint_log_default(r->db, o->checkpoint_log, sizeof(o->checkpoint_log), &e))
		return cli_fail("run: %s", e.msg);
	r->scan.ctx = ctx;
	r->scan.db = r->db;
	if (o->scan && run_scan(ctx, o, r))
		return CLI_EXIT_FAIL;
	/* the operator recorded on every unit is checked as --user is: a name
	 * bound to this login, never free text (docs/operator.md) */
	if (strcmp(o->operator_name, ctx->actor)) {
		if (!cli_role_enforced(r->db))
			return cli_fail("run: --operator %s: this station has no roles, so no one is"
					" bound to this login; use --user %s", o->operator_name,
					o->operator_name);
		if (cli_role_require_name(ctx, r->db, o->operator_name,
					  DB_ROLE_OPERATOR | DB_ROLE_QA | DB_ROLE_ENGINEER,
					  "run --operator"))
			return CLI_EXIT_FAIL;
	}
	if (db_allowlist_count(r->db, o->lot, &allowed, &e))
		return cli_fail("run: %s", e.msg);
	if (!allowed && !o->ledger.conninfo && !getenv("STATION_LEDGER"))
		return cli_unknown_lot(r->db, "run", o->lot);
	if ((rc = cli_ledger_config(&o->ledger, "run", ctx->station_id, &r->ledger)) < 0)
		return CLI_EXIT_USAGE;
	use_ledger = rc;
	rc = profile_load(r->db, o->profile, &r->prof, &e);
	/* a profile added once, in the ledger, for every station */
	if (rc == ST_ENOTFOUND && use_ledger) {
		if (profile_from_ledger(r->db, &r->ledger, o->profile, ctx->actor, &e))
			return cli_fail("run: ledger: %s", e.msg);
		rc = profile_load(r->db, o->profile, &r->prof, &e);
	}
	if (rc)
		return cli_fail("run: %s", e.msg);
	if (!(r->bus = ev_bus_new()))
		return cli_fail("run: out of memory");
	memset(&so, 0, sizeof(so));
	so.db = r->db;
	so.profile = &r->prof;
	so.lot = o->lot;
	so.operator_name = o->operator_name;
	so.actor = ctx->actor;
	so.station_id = ctx->station_id;
	so.nbays = o->bays;
	so.max_units = o->max_units;
	so.bay_ports = o->nports ? (const char (*)[EV_BAY_LEN])o->ports : NULL;
	so.grace_ms = o->grace_s ? o->grace_s * 1000 : 1;   /* 0 s: abandon at once */
	so.bus = r->bus;
	so.checkpoint_log = o->checkpoint_log;
	so.warn = run_warn;
	so.ledger = use_ledger ? &r->ledger : NULL;
	if (app_session_open(&so, &r->session, &e))
		return cli_fail("run: %s", e.msg);
	if (o->cfx_spool && (rc = cfx_open(ctx, o, r)))
		return rc;
	if ((rc = ui_open(ctx, o, r)))
		return rc;
	if (app_session_start(r->session, &e))
		return cli_fail("run: %s", e.msg);
	runctl_attach(&r->ctl, app_session_line(r->session));
	if (o->headless)
		run_headless(r, o);
	else if ((rc = run_screen(r)))
		return rc;
	app_session_end(r->session);
	if (o->headless && r->hl.write_failed)
		return cli_fail("run: writing events to stdout failed");
	return CLI_EXIT_OK;
}

static int run_line(struct cli_ctx *ctx, struct run_opts *o)
{
	struct run r;
	int rc;

	/* A closed stdin would be reused by the next open (the database): line
	 * commands must never read that. */
	if (fcntl(STDIN_FILENO, F_GETFD) < 0 && errno == EBADF) {
		int fd = open("/dev/null", O_RDONLY);

		if (fd > STDIN_FILENO)
			close(fd);
	}
	memset(&r, 0, sizeof(r));
	runctl_init(&r.ctl);
	rc = run_session(ctx, o, &r);
	runctl_destroy(&r.ctl);
	app_session_close(r.session);
	app_cfx_close(r.cfx);
	ui_screen_free(r.screen);
	ev_bus_free(r.bus);
	db_close(r.db);
	return rc;
}

int cmd_run(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "profile",   required_argument, NULL, 'p' },
		{ "lot",       required_argument, NULL, 'l' },
		{ "headless",  no_argument,       NULL, 'H' },
		{ "bays",      required_argument, NULL, 'b' },
		{ "max-units", required_argument, NULL, 'm' },
		{ "operator",  required_argument, NULL, 'o' },
		{ "grace",     required_argument, NULL, 'g' },
		{ "cfx-spool", required_argument, NULL, 'c' },
		{ "checkpoint-log", required_argument, NULL, 'K' },
		{ "scan",      no_argument,       NULL, 'S' },
		{ "no-bell",   no_argument,       NULL, 'B' },
		{ "utc",       no_argument,       NULL, 'U' },
		{ "help",      no_argument,       NULL, 'h' },
		CLI_LEDGER_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct run_opts o;
	int c;

	memset(&o, 0, sizeof(o));
	o.bays = 4;
	o.grace_s = 30;
	o.operator_name = ctx->actor;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': o.profile = optarg; break;
		case 'l':
			if (!ids_lot_valid(optarg)) {
				fprintf(stderr, "station: run: a lot name is 1..%d printable characters"
					" without spaces, commas or quotes\n", IDS_LOT_MAX);
				return CLI_EXIT_USAGE;
			}
			o.lot = optarg;
			break;
		case 'H': o.headless = 1; break;
		case 'c':
			if (!*optarg)
				return cli_usage_error("run", "--cfx-spool needs a directory");
			o.cfx_spool = optarg;
			break;
		case 'K':
			if ((size_t)snprintf(o.checkpoint_log, sizeof(o.checkpoint_log), "%s",
					     optarg) >= sizeof(o.checkpoint_log))
				return cli_usage_error("run", "--checkpoint-log path too long");
			break;
		case 'o':
			if (!ids_actor_valid(optarg)) {
				fprintf(stderr, "station: run: --operator must be 1..%d printable ASCII"
					" characters (no tab, newline or control byte)\n", IDS_ACTOR_MAX);
				return CLI_EXIT_USAGE;
			}
			o.operator_name = optarg;
			o.operator_given = 1;
			break;
		case 'S': o.scan = 1; break;
		case 'B': o.no_bell = 1; break;
		case 'U': o.utc = 1; break;
		case 'b':
			if ((c = parse_bays(optarg, &o)))
				return c;
			break;
		case 'g':
			if (runctl_parse_int(optarg, 0, 3600, &o.grace_s))
				return cli_usage_error("run", "--grace must be 0..3600 seconds");
			break;
		case 'm':
			if (runctl_parse_int(optarg, 1, 1000000000, &o.max_units))
				return cli_usage_error("run", "--max-units must be a positive number");
			break;
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		default:
			if (cli_ledger_option(&o.ledger, c, optarg))
				break;
			usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage_error("run", "unexpected argument '%s'", argv[optind]);
	if (!o.profile)
		return cli_usage_error("run", "--profile is required");
	/* on a screen, what was not given is scanned (badge and lot label) */
	if (!o.headless && !o.lot && isatty(STDIN_FILENO) &&
	    isatty(STDOUT_FILENO))
		o.scan = 1;
	if (o.scan && o.headless)
		return cli_usage_error("run", "--scan needs the screen, not --headless");
	if (!o.lot && !o.scan)
		return cli_usage_error("run", "--lot is required (or --scan on a terminal)");
	if (!o.headless && o.bays > UI_MAX_BAYS)
		return cli_usage_error("run", "the screen shows at most %d bays (use --headless)",
				       UI_MAX_BAYS);
	/* refuse before the token is opened or anything is recorded */
	if (!o.headless && (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)))
		return cli_fail("run: the operator screen needs a terminal (use --headless otherwise)");
	return run_line(ctx, &o);
}
