/*
 * station run --profile NAME --lot LOT [--headless] [--bays N] [--max-units N]
 *             [--operator NAME]
 *
 * Runs the line.  Before it accepts a board it refuses to start when the
 * firmware image does not hash to the profile's SHA-256, the HSM token fails its
 * pre-flight, or the lot has no allowlist; then it recovers units a crash left
 * in progress (pipeline.h).  --headless prints one JSON object per event per
 * line on stdout (ui/headless.h) and takes line commands on stdin (see
 * stdin_main); otherwise the ncurses screen runs.  The line stops on q (quit on
 * stdin), SIGTERM/SIGINT or after --max-units results, once the units in flight
 * have finished.
 */
#include "cli/cli.h"
#include "cli/cli_role.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "core/certfile.h"
#include "core/fileio.h"
#include "core/hex.h"
#include "db/db.h"
#include "core/event.h"
#include "ui/headless.h"
#include "line/pipeline.h"
#include "config/profile.h"
#include "app/profile_db.h"
#include "ui/screen.h"

#define IMAGE_MAX (64u * 1024 * 1024)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: station run --profile NAME --lot LOT [--headless] [--bays N]\n"
		"                   [--max-units N] [--operator NAME]\n"
		"\n"
		"  --profile NAME   product profile (station profile add FILE)\n"
		"  --lot LOT        the lot being provisioned (its allowlist must be imported)\n"
		"  --headless       one JSON object per event per line on stdout, no screen\n"
		"  --bays N         bays (tiles) on the bench, 1..%d (default 4)\n"
		"  --max-units N    stop after N results (pass, fail or reject)\n"
		"  --operator NAME  who runs the line (default: --user)\n"
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

static int parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || !*s || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

/* ---- signals: a thread of their own, so handlers need no async-safe tricks -- */

struct sig_ctx {
	pthread_mutex_t lock;
	struct pl_line *line;      /* set once the line runs */
	int requested;             /* a signal came before the line existed */
	sigset_t set;
};

static void *signal_main(void *arg)
{
	struct sig_ctx *s = arg;
	int sig;

	for (;;) {
		if (sigwait(&s->set, &sig) != 0)
			continue;
		if (sig == SIGUSR1)
			break;   /* we are done */
		pthread_mutex_lock(&s->lock);
		s->requested = 1;
		if (s->line)
			pl_line_request_stop(s->line);
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

/* ---- screen controls ---------------------------------------------------------- */

/* The screen exists before the line does (it shows recovery): its controls
 * reach the line through the same holder as the signal thread. */
static struct pl_line *held_line(struct sig_ctx *s)
{
	struct pl_line *line;

	pthread_mutex_lock(&s->lock);
	line = s->line;
	pthread_mutex_unlock(&s->lock);
	return line;
}

static void ctl_pause(void *ctx, bool paused)
{
	struct pl_line *line = held_line(ctx);

	if (line)
		pl_line_pause(line, paused);
}

static void ctl_clear(void *ctx, int bay_index)
{
	struct pl_line *line = held_line(ctx);

	/* a bay that is not held has nothing to clear: the screen shows its state */
	if (line)
		ST_IGNORE(pl_line_clear_bay(line, bay_index));
}

static void ctl_quit(void *ctx)
{
	struct sig_ctx *s = ctx;

	pthread_mutex_lock(&s->lock);
	s->requested = 1;
	if (s->line)
		pl_line_request_stop(s->line);
	pthread_mutex_unlock(&s->lock);
}

/* ---- headless line commands on stdin ------------------------------------------ */

/*
 * With --headless and stdin not a terminal (a pipe, FIFO, socket or file), the
 * line reads one command per line: pause, resume, clear BAY (a tile number 1..N
 * or a USB port label such as 1-2), quit (the units in flight finish first).
 * Each command is answered on the event stream: EV_LOG with outcome "ok" when
 * accepted, "fail" with the reason otherwise.  End of file only stops the
 * reading (CI runs with stdin closed).  A terminal is left alone: a headless
 * run put in the background would be stopped by SIGTTIN on its first read.
 */
#define CMD_LINE_MAX 128

struct stdin_ctl {
	struct sig_ctx *sig;
	struct ev_bus *bus;
	struct pl_line *line;
	int nbays;
	int wake[2];               /* written to when the line is done */
};

static void cmd_answer(struct stdin_ctl *c, enum ev_outcome out, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void cmd_answer(struct stdin_ctl *c, enum ev_outcome out, const char *fmt, ...)
{
	char reason[EV_REASON_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	ev_emitf(c->bus, EV_LOG, -1, "", "", EV_STAGE_NONE, out, "%s", reason);
}

/* The tile a BAY argument names: 1..N, or a port label bound to a tile. */
static int cmd_bay(struct stdin_ctl *c, const char *arg)
{
	int n;

	if (strspn(arg, "0123456789") == strlen(arg))
		return parse_int(arg, 1, c->nbays, &n) ? -1 : n - 1;
	return pl_line_bay_of_port(c->line, arg);
}

static void cmd_run_line(struct stdin_ctl *c, char *text)
{
	char *cmd, *arg, *extra, *save = NULL;
	int bay;

	/* echoed in the answer: printable ASCII only (the event stream is UTF-8 JSON) */
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 ? *p != '\t' && *p != '\r' : (unsigned char)*p > 0x7e)
			*p = '?';
	cmd = strtok_r(text, " \t\r", &save);
	if (!cmd || cmd[0] == '#')
		return;       /* blank line or comment */
	arg = strtok_r(NULL, " \t\r", &save);
	extra = arg ? strtok_r(NULL, " \t\r", &save) : NULL;
	if (!strcmp(cmd, "clear")) {
		if (!arg || extra) {
			cmd_answer(c, EV_OUT_FAIL, "command 'clear' needs one bay (1..%d or a port "
				   "label such as 1-2)", c->nbays);
			return;
		}
		if ((bay = cmd_bay(c, arg)) < 0) {
			cmd_answer(c, EV_OUT_FAIL, "clear %.40s: no such bay (1..%d or a port label)",
				   arg, c->nbays);
			return;
		}
		if (pl_line_clear_bay(c->line, bay) != ST_OK) {
			cmd_answer(c, EV_OUT_FAIL, "clear %.40s: bay %d is not held", arg, bay + 1);
			return;
		}
		cmd_answer(c, EV_OUT_OK, "command 'clear %.40s' done: bay %d cleared", arg, bay + 1);
		return;
	}
	if (arg) {
		cmd_answer(c, EV_OUT_FAIL, "command '%.40s' takes no argument", cmd);
		return;
	}
	if (!strcmp(cmd, "pause") || !strcmp(cmd, "resume")) {
		int pause = cmd[0] == 'p';

		pl_line_pause(c->line, pause);
		cmd_answer(c, EV_OUT_OK, "command '%s' done: intake %s", cmd,
			   pause ? "paused (units in flight finish)" : "running");
	} else if (!strcmp(cmd, "quit")) {
		cmd_answer(c, EV_OUT_OK, "command 'quit' done: stopping after the units in flight");
		ctl_quit(c->sig);
	} else {
		cmd_answer(c, EV_OUT_FAIL, "unknown command '%.40s' (commands: pause, resume, "
			   "clear BAY, quit)", cmd);
	}
}

static void *stdin_main(void *arg)
{
	struct stdin_ctl *c = arg;
	char buf[CMD_LINE_MAX + 1];
	size_t len = 0;
	int overlong = 0;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = STDIN_FILENO, .events = POLLIN },
			{ .fd = c->wake[0], .events = POLLIN },
		};
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (!pfd[0].revents)
			continue;
		n = read(STDIN_FILENO, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;        /* end of file or error: the line runs on */
		len += (size_t)n;
		for (;;) {
			char *nl = memchr(buf, '\n', len);
			size_t used;

			if (!nl) {
				if (len == sizeof(buf) - 1) {
					/* no newline in CMD_LINE_MAX bytes: drop up to the next one */
					if (!overlong)
						cmd_answer(c, EV_OUT_FAIL, "command line longer than %d "
							   "bytes ignored", CMD_LINE_MAX);
					overlong = 1;
					len = 0;
				}
				break;
			}
			*nl = '\0';
			used = (size_t)(nl - buf) + 1;
			if (!overlong) {
				if (strlen(buf) != used - 1)
					cmd_answer(c, EV_OUT_FAIL, "command line with a NUL byte ignored");
				else
					cmd_run_line(c, buf);
			}
			overlong = 0;
			memmove(buf, buf + used, len - used);
			len -= used;
		}
	}
	return NULL;
}

static void *stopper_main(void *arg)
{
	struct pl_line *line = arg;

	pl_line_wait(line);
	pl_line_stop(line);
	return NULL;
}

/* The run itself is on the audit record: who ran which profile version on
 * which lot, and what came of it. */
static void audit_line(struct db *db, const char *kind, const char *actor, json_t *detail)
{
	struct errbuf e;
	char *text = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	if (!text || db_audit_append(db, kind, actor, text, NULL, &e))
		fprintf(stderr, "station: run: audit event %s: %s\n", kind,
			text ? e.msg : "out of memory");
	free(text);
	json_decref(detail);
}

struct run_opts {
	const char *profile, *lot, *operator_name;
	int headless, bays, max_units;
};

static int run_line(struct cli_ctx *ctx, const struct run_opts *o)
{
	struct errbuf e;
	struct db *db = NULL;
	struct profile prof;
	struct pl_hsm *hsm = NULL;
	struct pl_usb *usb = NULL;
	struct ev_bus *bus = NULL;
	struct ui_headless hl;
	struct ui_screen *screen = NULL;
	struct pl_line *line = NULL;
	struct pl_config cfg;
	struct sig_ctx sig;
	pthread_t sig_thread, stopper;
	uint8_t *image = NULL, *mfr = NULL, *ca = NULL, d[SHA256_DIGEST_LENGTH];
	size_t image_len = 0, mfr_len = 0, ca_len = 0;
	char hexd[65];
	int64_t allowed = 0;
	int rc = CLI_EXIT_FAIL, units = 0, revoked = 0, sig_started = 0;

	errbuf_clear(&e);
	/* A closed stdin would be reused by the next open (the database): line
	 * commands must never read that. */
	if (fcntl(STDIN_FILENO, F_GETFD) < 0 && errno == EBADF) {
		int fd = open("/dev/null", O_RDONLY);

		if (fd > STDIN_FILENO)
			close(fd);
	}
	memset(&sig, 0, sizeof(sig));
	pthread_mutex_init(&sig.lock, NULL);
	/* Signals go to the signal thread only: block them before any thread starts. */
	sigemptyset(&sig.set);
	sigaddset(&sig.set, SIGTERM);
	sigaddset(&sig.set, SIGINT);
	sigaddset(&sig.set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sig.set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (pthread_create(&sig_thread, NULL, signal_main, &sig) == 0)
		sig_started = 1;

	if (db_open(ctx->db_path, ctx->station_id, &db, &e)) {
		cli_fail("run: %s", e.msg);
		goto out;
	}
	/* qa too: QA replays batches with `station run` (docs/qa.md) */
	if (cli_role_require(ctx, db, DB_ROLE_OPERATOR | DB_ROLE_QA | DB_ROLE_ENGINEER, "run"))
		goto out;
	if (profile_load(db, o->profile, &prof, &e)) {
		cli_fail("run: %s", e.msg);
		goto out;
	}
	/* refusals, in the order an engineer would fix them */
	if (fileio_read(prof.firmware_image, IMAGE_MAX, NULL, &image, &image_len, &e)) {
		cli_fail("run: firmware image: %s", e.msg);
		goto out;
	}
	SHA256(image, image_len, d);
	hex_encode(d, SHA256_DIGEST_LENGTH, hexd);
	if (strcmp(hexd, prof.firmware_sha256)) {
		cli_fail("run: firmware image %s has SHA-256 %s, profile %s v%d expects %s",
			 prof.firmware_image, hexd, prof.name, prof.version, prof.firmware_sha256);
		goto out;
	}
	if (db_allowlist_count(db, o->lot, &allowed, &e)) {
		cli_fail("run: %s", e.msg);
		goto out;
	}
	if (allowed == 0) {
		cli_fail("run: lot %s has no allowlist (station allowlist import FILE --lot %s)",
			 o->lot, o->lot);
		goto out;
	}
	if (certfile_load(prof.mfr_ca_cert, CERTFILE_MAX, NULL, &mfr, &mfr_len, &e) ||
	    certfile_load(prof.hsm_ca_cert, CERTFILE_MAX, NULL, &ca, &ca_len, &e)) {
		cli_fail("run: %s", e.msg);
		goto out;
	}
	if (pl_hsm_open(&prof, db, &hsm, &e)) {
		cli_fail("run: HSM pre-flight failed: %s", e.msg);
		goto out;
	}

	bus = ev_bus_new();
	if (!bus) {
		cli_fail("run: out of memory");
		goto out;
	}
	if (o->headless) {
		ui_headless_init(&hl, stdout);
		ev_subscribe(bus, ui_headless_sink, &hl);
	} else {
		struct ui_controls ctl = { ctl_pause, ctl_clear, ctl_quit, &sig };

		screen = ui_screen_new(o->bays, &ctl);
		if (!screen) {
			cli_fail("run: cannot create the screen");
			goto out;
		}
		ui_screen_set_header(screen, ctx->station_id, o->operator_name, prof.name, o->lot,
				     ctx->db_path);
		ev_subscribe(bus, ui_screen_sink, screen);
	}
	ev_emitf(bus, EV_HSM_STATE, -1, "", "", EV_STAGE_NONE, EV_OUT_OK,
		 "token %s ready (pre-flight passed)", prof.hsm_token);

	/* recovery before any board is accepted */
	if (pl_recover(db, ctx->actor, bus, &units, &revoked, &e)) {
		cli_fail("run: recovery: %s", e.msg);
		goto out;
	}
	if (units || revoked)
		ev_emitf(bus, EV_LOG, -1, "", "", EV_STAGE_RECOVERY, EV_OUT_NONE,
			 "recovered %d interrupted unit(s), revoked %d orphan certificate(s)",
			 units, revoked);
	if (pl_usb_open(&prof, ca, ca_len, &usb, &e)) {
		cli_fail("run: usb: %s", e.msg);
		goto out;
	}

	memset(&cfg, 0, sizeof(cfg));
	cfg.profile = &prof;
	cfg.lot = o->lot;
	cfg.operator_name = o->operator_name;
	cfg.station_id = ctx->station_id;
	cfg.nbays = o->bays;
	cfg.max_units = o->max_units;
	cfg.image = image;
	cfg.image_len = image_len;
	cfg.mfr_ca_der = mfr;
	cfg.mfr_ca_len = mfr_len;
	cfg.db = db;
	cfg.actor = ctx->actor;
	cfg.bus = bus;
	pl_usb_transport(usb, &cfg.transport);
	pl_hsm_ops(hsm, &cfg.ca);
	if (pl_line_start(&cfg, &line, &e)) {
		cli_fail("run: %s", e.msg);
		goto out;
	}
	audit_line(db, "line-start", o->operator_name,
		   json_pack("{s:s, s:i, s:s, s:s, s:i, s:i, s:i}", "profile", prof.name,
			     "version", prof.version, "profile_sha256", prof.hash, "lot", o->lot,
			     "bays", o->bays, "recovered_units", units,
			     "revoked_orphans", revoked));
	pthread_mutex_lock(&sig.lock);
	sig.line = line;
	if (sig.requested)
		pl_line_request_stop(line);
	pthread_mutex_unlock(&sig.lock);

	if (o->headless) {
		struct stdin_ctl sc = { &sig, bus, line, o->bays, { -1, -1 } };
		pthread_t reader;
		int reading = 0;

		if (!isatty(STDIN_FILENO) && pipe2(sc.wake, O_CLOEXEC) == 0) {
			if (pthread_create(&reader, NULL, stdin_main, &sc) == 0) {
				reading = 1;
			} else {
				close(sc.wake[0]);
				close(sc.wake[1]);
				fprintf(stderr, "station: run: cannot read commands on stdin\n");
			}
		}
		pl_line_wait(line);
		pl_line_stop(line);
		if (reading) {
			/* the reader may be between commands: wake it, then it exits */
			(void)!write(sc.wake[1], "x", 1);
			pthread_join(reader, NULL);
			close(sc.wake[0]);
			close(sc.wake[1]);
		}
	} else {
		if (pthread_create(&stopper, NULL, stopper_main, line) != 0) {
			pl_line_request_stop(line);
			pl_line_stop(line);
			cli_fail("run: cannot start a thread");
			goto out;
		}
		if (ui_screen_run(screen, &e)) {
			pl_line_request_stop(line);
			pthread_join(stopper, NULL);
			cli_fail("run: %s", e.msg);
			goto out;
		}
		pthread_join(stopper, NULL);
	}
	{
		struct pl_counts c;

		pl_line_counts(line, &c);
		audit_line(db, "line-stop", o->operator_name,
			   json_pack("{s:s, s:I, s:I, s:I}", "lot", o->lot, "pass", (json_int_t)c.pass,
				     "fail", (json_int_t)c.fail, "reject", (json_int_t)c.reject));
	}
	if (pl_hsm_checkpoint(hsm, &e))
		fprintf(stderr, "station: run: audit checkpoint: %s\n", e.msg);
	rc = CLI_EXIT_OK;
	if (o->headless && hl.write_failed)
		rc = cli_fail("run: writing events to stdout failed");
out:
	if (sig_started) {
		pthread_kill(sig_thread, SIGUSR1);
		pthread_join(sig_thread, NULL);
	}
	pl_line_free(line);
	pl_usb_close(usb);
	pl_hsm_close(hsm);
	ui_screen_free(screen);
	ev_bus_free(bus);
	db_close(db);
	free(image);
	free(mfr);
	free(ca);
	pthread_mutex_destroy(&sig.lock);
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
		{ "help",      no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct run_opts o;
	int c;

	memset(&o, 0, sizeof(o));
	o.bays = 4;
	o.operator_name = ctx->actor;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': o.profile = optarg; break;
		case 'l': o.lot = optarg; break;
		case 'H': o.headless = 1; break;
		case 'o':
			if (!*optarg || strlen(optarg) >= 64)
				return cli_usage_error("run", "--operator must be 1..63 characters");
			o.operator_name = optarg;
			break;
		case 'b':
			if (parse_int(optarg, 1, PL_MAX_BAYS, &o.bays))
				return cli_usage_error("run", "--bays must be 1..%d", PL_MAX_BAYS);
			break;
		case 'm':
			if (parse_int(optarg, 1, 1000000000, &o.max_units))
				return cli_usage_error("run", "--max-units must be a positive number");
			break;
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		default:
			usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage_error("run", "unexpected argument '%s'", argv[optind]);
	if (!o.profile || !o.lot)
		return cli_usage_error("run", "--profile and --lot are required");
	if (!o.headless && o.bays > UI_MAX_BAYS)
		return cli_usage_error("run", "the screen shows at most %d bays (use --headless)",
				       UI_MAX_BAYS);
	/* refuse before the token is opened or anything is recorded */
	if (!o.headless && (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)))
		return cli_fail("run: the operator screen needs a terminal (use --headless otherwise)");
	return run_line(ctx, &o);
}
