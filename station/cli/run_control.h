/*
 * run_control: how `station run` is steered while the line runs, apart from
 * the line session itself (app/session.h): SIGTERM and SIGINT, the screen's
 * controls, and line commands on stdin when headless.
 *
 * Contract
 * - runctl_init() blocks SIGTERM, SIGINT and SIGUSR1 in the calling thread
 *   before any other thread starts (they inherit the mask) and starts the
 *   signal thread; SIGPIPE is ignored.  A signal before the line exists is
 *   remembered and stops the line the moment runctl_attach() hands it over.
 * - runctl_screen_controls() are the screen's pause, clear, quit and lot change;
 *   they do nothing until a line is attached (the lot change forwards to
 *   c->change_lot, which the command sets).
 * - runctl_stdin_start(): with stdin not a terminal (a pipe, FIFO, socket or
 *   file), one command per line: pause, resume, clear BAY (a tile number 1..N
 *   or a USB port label such as 1-2), quit (the units in flight finish first).
 *   Each command is answered on the event stream: EV_LOG with outcome "ok"
 *   when accepted, "fail" with the reason otherwise.  End of file only stops
 *   the reading (CI runs with stdin closed).  A terminal is left alone: a
 *   headless run put in the background would be stopped by SIGTTIN on its
 *   first read.  Call after runctl_attach(); runctl_stdin_stop() wakes and
 *   joins the reader.
 * - runctl_destroy() stops the signal thread.
 */
#ifndef STATION_CLI_RUN_CONTROL_H
#define STATION_CLI_RUN_CONTROL_H

#include <pthread.h>
#include <signal.h>

#include "core/event.h"
#include "line/pipeline.h"
#include "ui/screen.h"

struct run_control {
	pthread_mutex_t lock;
	struct pl_line *line;      /* set once the line runs */
	int requested;             /* a stop came before the line existed */
	sigset_t set;
	pthread_t sig_thread;
	int sig_started;
	/* line commands on stdin */
	struct ev_bus *bus;
	int nbays;
	int wake[2];               /* written to when the line is done */
	pthread_t reader;
	int reading;
	/* the screen's lot change (l while paused), set by the command before
	 * the screen runs: 0 taken, -1 with why in msg */
	int (*change_lot)(void *arg, const char *code, char *msg, size_t msglen);
	void *change_lot_arg;
};

void runctl_init(struct run_control *c);
void runctl_attach(struct run_control *c, struct pl_line *line);
void runctl_screen_controls(struct run_control *c, struct ui_controls *ctl);
void runctl_stdin_start(struct run_control *c, struct ev_bus *bus, int nbays);
void runctl_stdin_stop(struct run_control *c);
void runctl_destroy(struct run_control *c);

/* s as a decimal int in lo..hi: 0, or -1 when it is not one. */
int  runctl_parse_int(const char *s, int lo, int hi, int *out);

#endif
