/*
 * run_control: signals, screen controls and line commands on stdin for
 * `station run` (run_control.h).
 */
#include "cli/run_control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int runctl_parse_int(const char *s, int lo, int hi, int *out)
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

static void *signal_main(void *arg)
{
	struct run_control *s = arg;
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
static struct pl_line *held_line(struct run_control *s)
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
	struct run_control *s = ctx;

	pthread_mutex_lock(&s->lock);
	s->requested = 1;
	if (s->line)
		pl_line_request_stop(s->line);
	pthread_mutex_unlock(&s->lock);
}

static int ctl_lot(void *ctx, const char *code, char *msg, size_t msglen)
{
	struct run_control *s = ctx;

	if (!s->change_lot || !held_line(s)) {
		snprintf(msg, msglen, "the line cannot change lot now");
		return -1;
	}
	return s->change_lot(s->change_lot_arg, code, msg, msglen);
}

/* ---- headless line commands on stdin (run_control.h) ------------------------ */

#define CMD_LINE_MAX 128

static void cmd_answer(struct run_control *c, enum ev_outcome out, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void cmd_answer(struct run_control *c, enum ev_outcome out, const char *fmt, ...)
{
	char reason[EV_REASON_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	ev_emitf(c->bus, EV_LOG, -1, "", "", EV_STAGE_NONE, out, "%s", reason);
}

/* The tile a BAY argument names: 1..N, or a port label bound to a tile. */
static int cmd_bay(struct run_control *c, const char *arg)
{
	int n;

	if (strspn(arg, "0123456789") == strlen(arg))
		return runctl_parse_int(arg, 1, c->nbays, &n) ? -1 : n - 1;
	return pl_line_bay_of_port(c->line, arg);
}

static void cmd_run_line(struct run_control *c, char *text)
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
		ctl_quit(c);
	} else {
		cmd_answer(c, EV_OUT_FAIL, "unknown command '%.40s' (commands: pause, resume, "
			   "clear BAY, quit)", cmd);
	}
}

static void *stdin_main(void *arg)
{
	struct run_control *c = arg;
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

/* The screen runs on the main thread: the line is stopped beside it, and the
 * screen quits when it sees the line stopped. */

/* ---- the run's side ------------------------------------------------------------ */

void runctl_init(struct run_control *c)
{
	memset(c, 0, sizeof(*c));
	c->wake[0] = c->wake[1] = -1;
	pthread_mutex_init(&c->lock, NULL);
	/* Signals go to the signal thread only: block them before any thread starts. */
	sigemptyset(&c->set);
	sigaddset(&c->set, SIGTERM);
	sigaddset(&c->set, SIGINT);
	sigaddset(&c->set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &c->set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (pthread_create(&c->sig_thread, NULL, signal_main, c) == 0)
		c->sig_started = 1;
}

void runctl_attach(struct run_control *c, struct pl_line *line)
{
	pthread_mutex_lock(&c->lock);
	c->line = line;
	if (c->requested)
		pl_line_request_stop(line);
	pthread_mutex_unlock(&c->lock);
}

void runctl_screen_controls(struct run_control *c, struct ui_controls *ctl)
{
	ctl->pause = ctl_pause;
	ctl->clear_bay = ctl_clear;
	ctl->quit = ctl_quit;
	ctl->change_lot = ctl_lot;
	ctl->ctx = c;
}

void runctl_stdin_start(struct run_control *c, struct ev_bus *bus, int nbays)
{
	c->bus = bus;
	c->nbays = nbays;
	if (isatty(STDIN_FILENO) || pipe2(c->wake, O_CLOEXEC) != 0)
		return;
	if (pthread_create(&c->reader, NULL, stdin_main, c) == 0) {
		c->reading = 1;
		return;
	}
	close(c->wake[0]);
	close(c->wake[1]);
	c->wake[0] = c->wake[1] = -1;
	fprintf(stderr, "station: run: cannot read commands on stdin\n");
}

void runctl_stdin_stop(struct run_control *c)
{
	if (!c->reading)
		return;
	/* the reader may be between commands: wake it, then it exits */
	(void)!write(c->wake[1], "x", 1);
	pthread_join(c->reader, NULL);
	close(c->wake[0]);
	close(c->wake[1]);
	c->wake[0] = c->wake[1] = -1;
	c->reading = 0;
}

void runctl_destroy(struct run_control *c)
{
	if (c->sig_started) {
		pthread_kill(c->sig_thread, SIGUSR1);
		pthread_join(c->sig_thread, NULL);
		c->sig_started = 0;
	}
	pthread_mutex_destroy(&c->lock);
}
