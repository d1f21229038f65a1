/*
 * pipeline: the line's threads (detector + one worker per bay) and its
 * controls.  One unit's state machine is station/line/pl_unit.c, crash recovery
 * station/line/pl_recover.c.  See pipeline.h for the contract.
 *
 * Locking: line->lock guards the bay table, the counters and the clone registry;
 * it is never held while a board, the database or the CA is called, so a slow
 * board only ever stalls its own bay.  Events are emitted with or without it
 * (the bus has its own lock and sinks never call back into the line).
 */
#include "line/pl_int.h"
#include "core/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- threads -------------------------------------------------------------- */

/* Under line->lock.  The same board REJECTed max_rejects times within
 * reject_window_s holds its bay, as FAILs in a row do: a board that keeps
 * re-enumerating must not flood the units table and the alerts. */
static void reject_flood(struct pl_line *line, struct bay *bay, const char *who)
{
	const struct profile *p = line->cfg.profile;
	int k = p->max_rejects > 0 ? p->max_rejects : PROFILE_DEF_MAX_REJECTS;
	int64_t win = (int64_t)(p->reject_window_s > 0 ? p->reject_window_s :
				PROFILE_DEF_REJECT_WINDOW_S) * 1000;
	int64_t now = clock_monotonic_ms();
	int n = 0;

	if (strcmp(bay->rej_who, who)) {
		snprintf(bay->rej_who, sizeof(bay->rej_who), "%s", who);
		memset(bay->rej_ms, 0, sizeof(bay->rej_ms));
	}
	memmove(bay->rej_ms + 1, bay->rej_ms, sizeof(bay->rej_ms) - sizeof(bay->rej_ms[0]));
	bay->rej_ms[0] = now;
	for (size_t i = 0; i < PL_REJECT_MEMORY && i < (size_t)k; i++)
		if (bay->rej_ms[i] && now - bay->rej_ms[i] <= win)
			n++;
	if (n < k || bay->held)
		return;
	bay->held = 1;
	ev_emitf(line->cfg.bus, EV_ALERT, bay->index, bay->port, who, EV_STAGE_NONE,
		 EV_OUT_REJECT, "board %s rejected %d times within %lld s: bay held",
		 who[0] ? who : "(no id)", n, (long long)(win / 1000));
	ev_emitf(line->cfg.bus, EV_BAY_HELD, bay->index, bay->port, who, EV_STAGE_NONE,
		 EV_OUT_NONE, "the same board rejected %d times: take it to QA, then clear the bay",
		 n);
}

/* Under line->lock.  A lent bay (no configured ports) goes back to the pool
 * once its board left and its unit is over, unless it is held: the hold
 * belongs to that port's fixture. */
static void release_if_gone(struct pl_line *line, struct bay *b)
{
	if (line->cfg.bay_ports || b->present || b->busy || b->pending || b->held)
		return;
	snprintf(b->last_port, sizeof(b->last_port), "%s", b->port);
	b->port[0] = '\0';
}

/* A board arrived: the screen shows it waiting, not in flight, when the
 * line will not start it now (called with line->lock held, as bay_main
 * decides under it). */
static void emit_arrival(struct pl_line *line, struct bay *b, const char *serial)
{
	struct ev_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = EV_BAY_ARRIVED;
	ev.bay_index = b->index;
	snprintf(ev.bay, sizeof(ev.bay), "%s", b->port);
	ev.stage = EV_STAGE_DETECT;
	snprintf(ev.reason, sizeof(ev.reason), "usb serial %s", serial);
	if (line->stop_intake ||
	    (line->cfg.max_units && line->started_units >= line->cfg.max_units))
		ev.intake = EV_INTAKE_STOPPING;
	else if (line->paused)
		ev.intake = EV_INTAKE_PAUSED;
	else if (b->held)
		ev.intake = EV_INTAKE_HELD;
	ev_emit(line->cfg.bus, &ev);
}

static void *bay_main(void *arg)
{
	struct bay *bay = arg;
	struct pl_line *line = bay->line;

	pthread_mutex_lock(&line->lock);
	for (;;) {
		struct pl_unit r;
		enum ev_outcome out;

		while (!line->stop_threads &&
		       !(bay->pending && !bay->held && !line->paused && !line->stop_intake &&
			 (!line->cfg.max_units || line->started_units < line->cfg.max_units)))
			pthread_cond_wait(&line->cond, &line->lock);
		if (line->stop_threads)
			break;
		bay->pending = 0;
		bay->busy = 1;
		memset(&r, 0, sizeof(r));
		snprintf(r.serial, sizeof(r.serial), "%s", bay->serial);
		bay->clone = 0;
		line->started_units++;
		line->counts.in_flight++;
		pthread_mutex_unlock(&line->lock);

		r.line = line;
		r.bay = bay;
		r.cfg = &line->cfg;
		out = pl_unit_run(&r);
		if (r.ops)
			r.ops->close(r.h);

		pthread_mutex_lock(&line->lock);
		bay->busy = 0;
		line->counts.in_flight--;
		if (out == EV_OUT_PASS) {
			line->counts.pass++;
			bay->fails_in_row = 0;
		} else if (out == EV_OUT_REJECT) {
			line->counts.reject++;
			reject_flood(line, bay, r.u.unique_id[0] ? r.u.unique_id : r.serial);
		} else if (r.u.reason_code == ST_R_HSM_UNREACHABLE) {
			/* the shared token, not this bay's fixture: no hold, and the
			 * bay's count stands as it was */
			line->counts.fail++;
		} else if (out == EV_OUT_INTERRUPTED) {
			/* abandoned at stop: the station's doing, not the bay's */
		} else {
			line->counts.fail++;
			if (++bay->fails_in_row >= line->cfg.profile->max_failures_in_row && !bay->held) {
				bay->held = 1;
				ev_emitf(line->cfg.bus, EV_BAY_HELD, bay->index, bay->port, "",
					 EV_STAGE_NONE, EV_OUT_NONE,
					 "%d failures in a row: check the fixture, then clear the bay",
					 bay->fails_in_row);
			}
		}
		if (line->cfg.max_units &&
		    line->counts.pass + line->counts.fail + line->counts.reject >= line->cfg.max_units) {
			line->stop_intake = 1;
			line->stop_requested = 1;
		}
		release_if_gone(line, bay);
		pthread_cond_broadcast(&line->cond);
	}
	pthread_mutex_unlock(&line->lock);
	return NULL;
}

/* The bay of the board at port: its configured bay, the bay lent to that port,
 * or a free bay lent now; NULL if none. */
static struct bay *bay_for_port(struct pl_line *line, const char *port)
{
	struct bay *free_tile = NULL;

	for (int i = 0; i < line->cfg.nbays; i++) {
		if (!strcmp(line->bays[i].port, port))
			return &line->bays[i];
		/* a port coming back gets the bay it had if that one is free */
		if (!line->bays[i].port[0] &&
		    (!free_tile || (!strcmp(line->bays[i].last_port, port) &&
				    strcmp(free_tile->last_port, port))))
			free_tile = &line->bays[i];
	}
	if (free_tile && !line->cfg.bay_ports)
		snprintf(free_tile->port, sizeof(free_tile->port), "%s", port);
	else
		free_tile = NULL;
	return free_tile;
}

/* Under line->lock: one log line per port that is not a bay (or finds every
 * bay taken), not one per scan. */
static void ignored_port(struct pl_line *line, const char *port)
{
	for (int i = 0; i < line->nignored; i++)
		if (!strcmp(line->ignored[i], port))
			return;
	if (line->nignored < PL_MAX_BAYS * 2)
		snprintf(line->ignored[line->nignored++], EV_BAY_LEN, "%s", port);
	if (line->cfg.bay_ports)
		ev_emitf(line->cfg.bus, EV_LOG, -1, port, "", EV_STAGE_DETECT, EV_OUT_NONE,
			 "port %s is not a bay: board ignored", port);
	else
		ev_emitf(line->cfg.bus, EV_LOG, -1, port, "", EV_STAGE_DETECT, EV_OUT_NONE,
			 "more boards than bays (%d): %s ignored", line->cfg.nbays, port);
}

static void *detector_main(void *arg)
{
	struct pl_line *line = arg;
	struct pl_present *seen = calloc(PL_MAX_BAYS * 2, sizeof(*seen));
	int interval = line->cfg.scan_interval_ms > 0 ? line->cfg.scan_interval_ms : 100;
	int warned_scan = 0;

	if (!seen) {
		ev_emitf(line->cfg.bus, EV_LOG, -1, "", "", EV_STAGE_DETECT, EV_OUT_FAIL,
			 "detector: out of memory");
		return NULL;
	}
	pthread_mutex_lock(&line->lock);
	while (!line->stop_threads) {
		struct errbuf e;
		struct timespec until;
		int n = 0, rc;

		pthread_mutex_unlock(&line->lock);
		errbuf_clear(&e);
		rc = line->cfg.transport.scan(line->cfg.transport.ctx, seen, PL_MAX_BAYS * 2, &n, &e);
		pthread_mutex_lock(&line->lock);
		if (rc) {
			if (!warned_scan++)
				ev_emitf(line->cfg.bus, EV_LOG, -1, "", "", EV_STAGE_DETECT,
					 EV_OUT_FAIL, "scan: %s", e.msg);
			n = 0;
		}
		/* arrivals */
		for (int i = 0; i < n; i++) {
			struct bay *b = bay_for_port(line, seen[i].port);

			if (!b) {
				ignored_port(line, seen[i].port);
				continue;
			}
			if (b->present && b->instance == seen[i].instance)
				continue;
			if (b->present) {
				/* swapped between two scans: the old board left */
				b->pending = 0;
				ev_emitf(line->cfg.bus, EV_BAY_LEFT, b->index, b->port, "",
					 EV_STAGE_NONE, EV_OUT_NONE, NULL);
			}
			b->present = 1;
			b->instance = seen[i].instance;
			b->uid[0] = '\0';
			snprintf(b->serial, sizeof(b->serial), "%s", seen[i].serial);
			b->pending = 1;
			emit_arrival(line, b, seen[i].serial);
		}
		/* departures */
		for (int j = 0; j < line->cfg.nbays; j++) {
			struct bay *b = &line->bays[j];
			int still = 0;

			if (!b->present)
				continue;
			for (int i = 0; i < n && !still; i++)
				still = !strcmp(seen[i].port, b->port);
			if (still)
				continue;
			b->present = 0;
			b->pending = 0;
			b->uid[0] = '\0';
			ev_emitf(line->cfg.bus, EV_BAY_LEFT, b->index, b->port, "",
				 EV_STAGE_NONE, EV_OUT_NONE, NULL);
			release_if_gone(line, b);
		}
		/* a port gone from the bench may be logged again when it returns */
		for (int k = 0; k < line->nignored; k++) {
			int still = 0;

			for (int i = 0; i < n && !still; i++)
				still = !strcmp(seen[i].port, line->ignored[k]);
			if (!still) {
				memmove(line->ignored[k], line->ignored[k + 1],
					(size_t)(line->nignored - k - 1) * EV_BAY_LEN);
				line->nignored--;
				k--;
			}
		}
		pthread_cond_broadcast(&line->cond);
		clock_deadline(CLOCK_REALTIME, interval, &until);
		while (!line->stop_threads &&
		       pthread_cond_timedwait(&line->cond, &line->lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&line->lock);
	free(seen);
	return NULL;
}

/* The line-started event: its fields for programs, its sentence for people. */
static void emit_started(const struct pl_config *cfg)
{
	struct ev_event ev;
	struct ev_line_info *l = &ev.line;

	memset(&ev, 0, sizeof(ev));
	ev.kind = EV_LINE_STARTED;
	ev.bay_index = -1;
	ev.stage = EV_STAGE_NONE;
	ev.outcome = EV_OUT_NONE;
	snprintf(l->station_id, sizeof(l->station_id), "%s", cfg->station_id);
	snprintf(l->operator_name, sizeof(l->operator_name), "%s", cfg->operator_name);
	snprintf(l->profile, sizeof(l->profile), "%s", cfg->profile->name);
	l->profile_version = cfg->profile->version;
	snprintf(l->lot, sizeof(l->lot), "%s", cfg->lot);
	l->nbays = cfg->nbays;
	snprintf(ev.reason, sizeof(ev.reason), "profile %s v%d, lot %s, operator %s, station %s, %d bays",
		 cfg->profile->name, cfg->profile->version, cfg->lot, cfg->operator_name,
		 cfg->station_id, cfg->nbays);
	ev_emit(cfg->bus, &ev);
}

int pl_line_start(const struct pl_config *cfg, struct pl_line **out, struct errbuf *err)
{
	struct pl_line *line;

	*out = NULL;
	if (cfg->nbays < 1 || cfg->nbays > PL_MAX_BAYS)
		return errbuf_set(err, ST_EINVAL, "bays must be 1..%d", PL_MAX_BAYS);
	if (!cfg->profile || !cfg->db || !cfg->bus || !cfg->transport.scan || !cfg->transport.open ||
	    !cfg->ca.check_csr || !cfg->ca.sign || !cfg->ca.csr_free)
		return errbuf_set(err, ST_EINVAL, "line: incomplete configuration");
	line = calloc(1, sizeof(*line));
	if (!line)
		return errbuf_set(err, ST_ENOMEM, "line: out of memory");
	line->cfg = *cfg;
	pthread_mutex_init(&line->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_REALTIME);
		pthread_cond_init(&line->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	emit_started(cfg);
	for (int i = 0; i < cfg->nbays; i++) {
		struct bay *b = &line->bays[i];

		b->line = line;
		b->index = i;
		if (cfg->bay_ports)
			snprintf(b->port, sizeof(b->port), "%s", cfg->bay_ports[i]);
		if (pthread_create(&b->thread, NULL, bay_main, b) != 0) {
			errbuf_set(err, ST_ENOMEM, "line: cannot start bay thread %d", i);
			pl_line_stop(line);
			pl_line_free(line);
			return ST_ENOMEM;
		}
		b->started = 1;
	}
	if (pthread_create(&line->detector, NULL, detector_main, line) != 0) {
		errbuf_set(err, ST_ENOMEM, "line: cannot start the detector");
		pl_line_stop(line);
		pl_line_free(line);
		return ST_ENOMEM;
	}
	line->detector_started = 1;
	*out = line;
	return ST_OK;
}

void pl_line_request_stop(struct pl_line *line)
{
	pthread_mutex_lock(&line->lock);
	line->stop_intake = 1;
	line->stop_requested = 1;
	pthread_cond_broadcast(&line->cond);
	pthread_mutex_unlock(&line->lock);
}

void pl_line_wait(struct pl_line *line)
{
	pthread_mutex_lock(&line->lock);
	while (!line->stop_requested)
		pthread_cond_wait(&line->cond, &line->lock);
	pthread_mutex_unlock(&line->lock);
}

void pl_line_stop(struct pl_line *line)
{
	struct pl_counts c;

	pthread_mutex_lock(&line->lock);
	line->stop_intake = 1;
	line->stop_requested = 1;
	c = line->counts;
	pthread_cond_broadcast(&line->cond);
	pthread_mutex_unlock(&line->lock);
	ev_emitf(line->cfg.bus, EV_LINE_STOPPING, -1, "", "", EV_STAGE_NONE, EV_OUT_NONE,
		 "%lld unit(s) in flight", (long long)c.in_flight);

	/* Units in flight finish first, for the grace period: a worker only looks
	 * at stop_threads between units.  Then they are abandoned: every wait on a
	 * board sees the flag within a slice or one transfer. */
	pthread_mutex_lock(&line->lock);
	{
		struct timespec until;

		clock_deadline(CLOCK_REALTIME, line->cfg.grace_ms > 0 ? line->cfg.grace_ms : 30000,
			       &until);
		while (line->counts.in_flight > 0 &&
		       pthread_cond_timedwait(&line->cond, &line->lock, &until) != ETIMEDOUT)
			;
	}
	if (line->counts.in_flight > 0) {
		c = line->counts;
		atomic_store(&line->abandon, 1);
		ev_emitf(line->cfg.bus, EV_LOG, -1, "", "", EV_STAGE_NONE, EV_OUT_NONE,
			 "grace period over: abandoning %lld unit(s) in flight",
			 (long long)c.in_flight);
	}
	while (line->counts.in_flight > 0)
		pthread_cond_wait(&line->cond, &line->lock);
	line->stop_threads = 1;
	pthread_cond_broadcast(&line->cond);
	pthread_mutex_unlock(&line->lock);
	for (int i = 0; i < line->cfg.nbays; i++)
		if (line->bays[i].started) {
			pthread_join(line->bays[i].thread, NULL);
			line->bays[i].started = 0;
		}
	if (line->detector_started) {
		pthread_join(line->detector, NULL);
		line->detector_started = 0;
	}
	c = line->counts;
	ev_emitf(line->cfg.bus, EV_LINE_STOPPED, -1, "", "", EV_STAGE_NONE, EV_OUT_NONE,
		 "pass %lld, fail %lld, reject %lld", (long long)c.pass, (long long)c.fail,
		 (long long)c.reject);
}

void pl_line_free(struct pl_line *line)
{
	if (!line)
		return;
	pthread_cond_destroy(&line->cond);
	pthread_mutex_destroy(&line->lock);
	free(line);
}

int pl_line_set_lot(struct pl_line *line, const char *lot, struct errbuf *err)
{
	struct ev_event ev;
	int busy = 0;

	if (strlen(lot) >= sizeof(line->lot))
		return errbuf_set(err, ST_EINVAL, "lot name too long");
	pthread_mutex_lock(&line->lock);
	for (int i = 0; i < line->cfg.nbays; i++)
		busy |= line->bays[i].busy;
	/* units read cfg.lot without the lock: only while none runs and none
	 * can start (bay threads start a unit under the lock, never while paused) */
	if (!line->paused || busy || line->stop_intake) {
		pthread_mutex_unlock(&line->lock);
		return errbuf_set(err, ST_ESTATE, "the lot changes only while paused with no unit"
				  " in flight: pause, wait for the boards at work, scan again");
	}
	snprintf(line->lot, sizeof(line->lot), "%s", lot);
	line->cfg.lot = line->lot;
	memset(&ev, 0, sizeof(ev));
	ev.kind = EV_LOT_CHANGED;
	ev.bay_index = -1;
	snprintf(ev.line.lot, sizeof(ev.line.lot), "%s", lot);
	snprintf(ev.reason, sizeof(ev.reason), "scanned by %s", line->cfg.operator_name);
	ev_emit(line->cfg.bus, &ev);
	pthread_mutex_unlock(&line->lock);
	return ST_OK;
}

void pl_line_pause(struct pl_line *line, int paused)
{
	int changed;

	pthread_mutex_lock(&line->lock);
	changed = line->paused != !!paused;
	line->paused = !!paused;
	pthread_cond_broadcast(&line->cond);
	pthread_mutex_unlock(&line->lock);
	if (changed)
		ev_emitf(line->cfg.bus, paused ? EV_LINE_PAUSED : EV_LINE_RESUMED, -1, "", "",
			 EV_STAGE_NONE, EV_OUT_NONE, NULL);
}

int pl_line_paused(struct pl_line *line)
{
	int p;

	pthread_mutex_lock(&line->lock);
	p = line->paused;
	pthread_mutex_unlock(&line->lock);
	return p;
}

int pl_line_clear_bay(struct pl_line *line, int bay_index)
{
	struct bay *b;

	if (bay_index < 0 || bay_index >= line->cfg.nbays)
		return ST_EINVAL;
	pthread_mutex_lock(&line->lock);
	b = &line->bays[bay_index];
	if (!b->held) {
		pthread_mutex_unlock(&line->lock);
		return ST_EINVAL;
	}
	b->held = 0;
	b->fails_in_row = 0;
	b->rej_who[0] = '\0';
	memset(b->rej_ms, 0, sizeof(b->rej_ms));
	ev_emitf(line->cfg.bus, EV_BAY_CLEARED, bay_index, b->port, "", EV_STAGE_NONE,
		 EV_OUT_NONE, NULL);
	release_if_gone(line, b);
	pthread_cond_broadcast(&line->cond);
	pthread_mutex_unlock(&line->lock);
	return ST_OK;
}

int pl_line_bay_of_port(struct pl_line *line, const char *port)
{
	int idx = -1;

	pthread_mutex_lock(&line->lock);
	for (int i = 0; i < line->cfg.nbays && idx < 0; i++)
		if (line->bays[i].port[0] && !strcmp(line->bays[i].port, port))
			idx = i;
	pthread_mutex_unlock(&line->lock);
	return idx;
}

void pl_line_counts(struct pl_line *line, struct pl_counts *out)
{
	pthread_mutex_lock(&line->lock);
	*out = line->counts;
	pthread_mutex_unlock(&line->lock);
}
