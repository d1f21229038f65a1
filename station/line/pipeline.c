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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- threads -------------------------------------------------------------- */

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
		} else if (r.u.reason_code == ST_R_HSM_UNREACHABLE) {
			/* the shared token, not this bay's fixture: no hold, and the
			 * bay's count stands as it was */
			line->counts.fail++;
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
		pthread_cond_broadcast(&line->cond);
	}
	pthread_mutex_unlock(&line->lock);
	return NULL;
}

static struct bay *bay_for_port(struct pl_line *line, const char *port)
{
	struct bay *free_tile = NULL;

	for (int i = 0; i < line->cfg.nbays; i++) {
		if (!strcmp(line->bays[i].port, port))
			return &line->bays[i];
		if (!free_tile && !line->bays[i].port[0])
			free_tile = &line->bays[i];
	}
	if (free_tile)
		snprintf(free_tile->port, sizeof(free_tile->port), "%s", port);
	return free_tile;
}

static void *detector_main(void *arg)
{
	struct pl_line *line = arg;
	struct pl_present *seen = calloc(PL_MAX_BAYS * 2, sizeof(*seen));
	int interval = line->cfg.scan_interval_ms > 0 ? line->cfg.scan_interval_ms : 100;
	int warned_full = 0, warned_scan = 0;

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
				if (!warned_full++)
					ev_emitf(line->cfg.bus, EV_LOG, -1, seen[i].port, "",
						 EV_STAGE_DETECT, EV_OUT_NONE,
						 "more boards than bays (%d): %s ignored",
						 line->cfg.nbays, seen[i].port);
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
			ev_emitf(line->cfg.bus, EV_BAY_ARRIVED, b->index, b->port, "",
				 EV_STAGE_DETECT, EV_OUT_NONE, "usb serial %s", seen[i].serial);
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

	/* Units in flight finish first: a worker only looks at stop_threads
	 * between units. */
	pthread_mutex_lock(&line->lock);
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
	pthread_cond_broadcast(&line->cond);
	pthread_mutex_unlock(&line->lock);
	ev_emitf(line->cfg.bus, EV_BAY_CLEARED, bay_index, b->port, "", EV_STAGE_NONE,
		 EV_OUT_NONE, NULL);
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
