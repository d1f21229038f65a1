/* event: see event.h. */
#include "core/event.h"
#include "core/clock.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ev_bus {
	pthread_mutex_t lock;
	uint64_t next_seq;
	int nsinks;
	struct {
		ev_sink_fn fn;
		void *ctx;
	} sinks[EV_MAX_SINKS];
};

struct ev_bus *ev_bus_new(void)
{
	struct ev_bus *bus = calloc(1, sizeof(*bus));

	if (!bus)
		return NULL;
	pthread_mutex_init(&bus->lock, NULL);
	bus->next_seq = 1;
	return bus;
}

void ev_bus_free(struct ev_bus *bus)
{
	if (!bus)
		return;
	pthread_mutex_destroy(&bus->lock);
	free(bus);
}

int ev_subscribe(struct ev_bus *bus, ev_sink_fn fn, void *ctx)
{
	int rc = -1;

	pthread_mutex_lock(&bus->lock);
	if (bus->nsinks < EV_MAX_SINKS) {
		bus->sinks[bus->nsinks].fn = fn;
		bus->sinks[bus->nsinks].ctx = ctx;
		bus->nsinks++;
		rc = 0;
	}
	pthread_mutex_unlock(&bus->lock);
	return rc;
}

void ev_emit(struct ev_bus *bus, struct ev_event *ev)
{
	pthread_mutex_lock(&bus->lock);
	ev->seq = bus->next_seq++;
	ev->t_ms = clock_realtime_ms();
	for (int i = 0; i < bus->nsinks; i++)
		bus->sinks[i].fn(ev, bus->sinks[i].ctx);
	pthread_mutex_unlock(&bus->lock);
}

void ev_emitf(struct ev_bus *bus, enum ev_kind kind, int bay_index, const char *bay,
	      const char *unique_id, enum ev_stage stage, enum ev_outcome outcome,
	      const char *reason_fmt, ...)
{
	struct ev_event ev;
	va_list ap;

	memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.bay_index = bay_index;
	snprintf(ev.bay, sizeof(ev.bay), "%s", bay ? bay : "");
	snprintf(ev.unique_id, sizeof(ev.unique_id), "%s", unique_id ? unique_id : "");
	ev.stage = stage;
	ev.outcome = outcome;
	if (reason_fmt) {
		va_start(ap, reason_fmt);
		vsnprintf(ev.reason, sizeof(ev.reason), reason_fmt, ap);
		va_end(ap);
	}
	ev_emit(bus, &ev);
}

const char *ev_stage_name(enum ev_stage s)
{
	static const char *const names[EV_STAGE_COUNT] = {
		"none", "detect", "identify", "allowlist", "flash", "verify-image",
		"keygen", "csr", "csr-policy", "attest", "reserve", "sign", "inject",
		"prove", "lock", "commit", "recovery",
	};

	return (unsigned)s < EV_STAGE_COUNT ? names[s] : "unknown";
}

const char *ev_kind_name(enum ev_kind k)
{
	static const char *const names[EV_KIND_COUNT] = {
		"line-started", "line-stopping", "line-stopped", "line-paused",
		"line-resumed", "hsm-state", "bay-arrived", "bay-left", "stage-begin",
		"progress", "stage-end", "unit-result", "bay-held", "bay-cleared",
		"alert", "log", "lot-changed",
	};

	return (unsigned)k < EV_KIND_COUNT ? names[k] : "unknown";
}

const char *ev_outcome_name(enum ev_outcome o)
{
	static const char *const names[EV_OUT_COUNT] = {
		"none", "ok", "pass", "fail", "reject", "interrupted",
	};

	return (unsigned)o < EV_OUT_COUNT ? names[o] : "unknown";
}

const char *ev_intake_name(enum ev_intake i)
{
	static const char *const names[EV_INTAKE_COUNT] = {
		"open", "paused", "stopping", "held",
	};

	return (unsigned)i < EV_INTAKE_COUNT ? names[i] : "unknown";
}
