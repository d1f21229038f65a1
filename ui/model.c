/* ui_model: see model.h. */
#include "ui/model.h"
#include "core/str.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Distinct unique ids, for the first-pass yield: an open-addressing hash set
 * that doubles at half load.  A lot holds thousands of boards, not millions.
 */
struct ui_uid_set {
	size_t cap, n;
	char (*keys)[EV_UID_LEN];
};

static uint64_t uid_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;    /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int uid_set_grow(struct ui_uid_set *set)
{
	size_t ncap = set->cap ? set->cap * 2 : 256;
	char (*nk)[EV_UID_LEN] = calloc(ncap, sizeof(*nk));

	if (!nk)
		return -1;
	for (size_t i = 0; i < set->cap; i++) {
		if (!set->keys[i][0])
			continue;
		size_t j = uid_hash(set->keys[i]) & (ncap - 1);
		while (nk[j][0])
			j = (j + 1) & (ncap - 1);
		memcpy(nk[j], set->keys[i], EV_UID_LEN);
	}
	free(set->keys);
	set->keys = nk;
	set->cap = ncap;
	return 0;
}

/* Returns 1 if uid was added, 0 if already there, -1 when out of memory. */
static int uid_set_add(struct ui_uid_set *set, const char *uid)
{
	size_t j;

	if ((set->n + 1) * 2 > set->cap && uid_set_grow(set) < 0)
		return -1;
	j = uid_hash(uid) & (set->cap - 1);
	while (set->keys[j][0]) {
		if (!strcmp(set->keys[j], uid))
			return 0;
		j = (j + 1) & (set->cap - 1);
	}
	snprintf(set->keys[j], EV_UID_LEN, "%s", uid);
	set->n++;
	return 1;
}

void ui_ascii_copy(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t i;

	if (!dstlen)
		return;
	for (i = 0; i + 1 < dstlen && i < srclen && src && src[i]; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
}

#define COPY_FIELD(dst, src) ui_ascii_copy((dst), sizeof(dst), (src), sizeof(src))

const char *ui_verdict_name(enum ui_verdict v)
{
	switch (v) {
	case UI_VERDICT_PASS:   return "PASS";
	case UI_VERDICT_FAIL:   return "FAIL";
	case UI_VERDICT_REJECT: return "REJECT";
	default:                return "";
	}
}

void ui_plain_reason(char *dst, size_t dstlen, const char *reason, const char *bay)
{
	const char *p = reason;
	size_t n, bl = strlen(bay);

	for (;;) {
		/* "EPOLICY: ": E, upper-case letters, colon, space */
		n = 0;
		if (p[0] == 'E')
			for (n = 1; p[n] >= 'A' && p[n] <= 'Z'; n++)
				;
		if (n >= 3 && p[n] == ':' && p[n + 1] == ' ') {
			p += n + 2;
			continue;
		}
		if (bl && !strncmp(p, "bay ", 4) && !strncmp(p + 4, bay, bl) &&
		    p[4 + bl] == ':' && p[5 + bl] == ' ') {
			p += bl + 6;
			continue;
		}
		break;
	}
	snprintf(dst, dstlen, "%s", *p ? p : reason);
}

static void tile_reset(struct ui_tile *t)
{
	struct ui_tile keep = *t;

	/* The bay's label, held state and numbers belong to the bay, not to the unit. */
	memset(t, 0, sizeof(*t));
	memcpy(t->bay, keep.bay, sizeof(t->bay));
	memcpy(t->held_reason, keep.held_reason, sizeof(t->held_reason));
	t->held = keep.held;
	t->npass = keep.npass;
	t->nfail = keep.nfail;
	t->nreject = keep.nreject;
	memcpy(t->cycles, keep.cycles, sizeof(t->cycles));
	t->ncycles = keep.ncycles;
	t->cycle_head = keep.cycle_head;
	t->progress = -1;
}

void ui_reason_without_id(char *dst, size_t dstlen, const char *reason, const char *uid)
{
	size_t ul = strlen(uid), o = 0;
	const char *p = reason;

	if (!dstlen)
		return;
	while (*p && o + 1 < dstlen) {
		const char *with = NULL;
		size_t skip = 0;

		if (ul >= 8 && !strncmp(p, "id ", 3) && !strncmp(p + 3, uid, ul)) {
			with = "this id";
			skip = 3 + ul;
		} else if (ul >= 8 && !strncmp(p, uid, ul)) {
			with = "<id>";
			skip = ul;
		}
		if (!with) {
			dst[o++] = *p++;
			continue;
		}
		for (; *with && o + 1 < dstlen; with++)
			dst[o++] = *with;
		p += skip;
	}
	dst[o] = '\0';
}

int ui_model_init(struct ui_model *m, int nbays)
{
	memset(m, 0, sizeof(*m));
	m->uids = calloc(1, sizeof(*m->uids));
	if (!m->uids)
		return -1;
	if (nbays < 0)
		nbays = 0;
	m->ntiles = nbays > UI_MAX_BAYS ? UI_MAX_BAYS : nbays;
	for (int i = 0; i < UI_MAX_BAYS; i++)
		m->tiles[i].progress = -1;
	return 0;
}

void ui_model_free(struct ui_model *m)
{
	if (m->uids) {
		free(m->uids->keys);
		free(m->uids);
		m->uids = NULL;
	}
}

void ui_model_set_header(struct ui_model *m, const char *station_id, const char *operator_name,
			 const char *profile, const char *lot, const char *db_path)
{
	if (station_id)
		ui_ascii_copy(m->station_id, sizeof(m->station_id), station_id, strlen(station_id));
	if (operator_name)
		ui_ascii_copy(m->operator_name, sizeof(m->operator_name), operator_name,
			      strlen(operator_name));
	if (profile)
		ui_ascii_copy(m->profile, sizeof(m->profile), profile, strlen(profile));
	if (lot)
		ui_ascii_copy(m->lot, sizeof(m->lot), lot, strlen(lot));
	if (db_path)
		ui_ascii_copy(m->db_path, sizeof(m->db_path), db_path, strlen(db_path));
	m->version++;
}

/* Fills a header field from an event field (maybe not NUL-terminated) unless
 * the caller already set it. */
static void header_fill(char *dst, size_t dstlen, const char *val, size_t vallen)
{
	if (!dst[0] && val[0])
		ui_ascii_copy(dst, dstlen, val, strnlen(val, vallen));
}

/* The header from the fields of a line-started event (its reason is only logged). */
static void header_from_event(struct ui_model *m, const struct ev_line_info *l)
{
	char profile[sizeof(l->profile) + 16];

	header_fill(m->station_id, sizeof(m->station_id), l->station_id, sizeof(l->station_id));
	header_fill(m->operator_name, sizeof(m->operator_name), l->operator_name,
		    sizeof(l->operator_name));
	/* the name and version as the line names them: "widget v2" */
	if (l->profile_version > 0)
		snprintf(profile, sizeof(profile), "%.*s v%d", (int)sizeof(l->profile) - 1,
			 l->profile, l->profile_version);
	else
		snprintf(profile, sizeof(profile), "%.*s", (int)sizeof(l->profile) - 1, l->profile);
	header_fill(m->profile, sizeof(m->profile), profile, sizeof(profile));
	header_fill(m->lot, sizeof(m->lot), l->lot, sizeof(l->lot));
	header_fill(m->db_path, sizeof(m->db_path), l->db_path, sizeof(l->db_path));
}

void ui_model_log(struct ui_model *m, int64_t t_ms, const char *fmt, ...)
{
	char raw[UI_LOG_LEN], stamp[16] = "--:--:--";
	char *line;
	time_t secs = (time_t)(t_ms / 1000);
	struct tm tm;
	va_list ap;
	int slot;

	if (t_ms > 0 && (m->utc ? gmtime_r(&secs, &tm) : localtime_r(&secs, &tm)))
		strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);

	slot = (m->log_head + m->nlog) % UI_LOG_LINES;
	if (m->nlog == UI_LOG_LINES)
		m->log_head = (m->log_head + 1) % UI_LOG_LINES;
	else
		m->nlog++;
	line = m->log[slot];
	/* a log line is for a person: past the tile it is cut, visibly */
	str_fmt_cut(line, UI_LOG_LEN, "%s %s", stamp, raw);
	ui_ascii_copy(line, UI_LOG_LEN, line, UI_LOG_LEN);
	m->log_total++;
	m->version++;
}

const char *ui_model_log_line(const struct ui_model *m, int i)
{
	if (i < 0 || i >= m->nlog)
		return NULL;
	return m->log[(m->log_head + m->nlog - 1 - i) % UI_LOG_LINES];
}

int ui_model_in_flight(const struct ui_model *m)
{
	int n = 0;

	for (int i = 0; i < m->ntiles; i++)
		n += m->tiles[i].busy != 0;
	return n;
}

int ui_model_held(const struct ui_model *m, int *first)
{
	int n = 0;

	if (first)
		*first = -1;
	for (int i = 0; i < m->ntiles; i++) {
		if (!m->tiles[i].held)
			continue;
		if (first && *first < 0)
			*first = i;
		n++;
	}
	return n;
}

double ui_model_fpy(const struct ui_model *m)
{
	if (!m->fp_attempted)
		return -1;
	return (double)m->fp_passed / (double)m->fp_attempted;
}

double ui_model_uph(const struct ui_model *m, int64_t now_ms)
{
	int64_t span, from;
	int n = 0;

	if (!m->t_first_ms)
		return 0;
	span = now_ms - m->t_first_ms;
	if (span > UI_RATE_WINDOW_MS)
		span = UI_RATE_WINDOW_MS;
	if (span < 60000)
		span = 60000;
	from = now_ms - span;
	for (int i = 0; i < m->npass_t; i++)
		n += m->pass_t[(m->pass_head + UI_RATE_RING - 1 - i) % UI_RATE_RING] >= from;
	return (double)n * 3600000.0 / (double)span;
}

int64_t ui_model_idle_ms(const struct ui_model *m, int64_t now_ms)
{
	int64_t since;

	if (!m->t_first_ms || ui_model_in_flight(m))
		return 0;
	since = now_ms - (m->t_last_activity_ms ? m->t_last_activity_ms : m->t_first_ms);
	return since >= UI_IDLE_MS ? since : 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

int64_t ui_tile_median_cycle(const struct ui_tile *t)
{
	int64_t v[UI_CYCLES];

	if (!t->ncycles)
		return 0;
	memcpy(v, t->cycles, sizeof(v[0]) * (size_t)t->ncycles);
	qsort(v, (size_t)t->ncycles, sizeof(v[0]), cmp_i64);
	return t->ncycles % 2 ? v[t->ncycles / 2]
			      : (v[t->ncycles / 2 - 1] + v[t->ncycles / 2]) / 2;
}

int64_t ui_tile_last_cycle(const struct ui_tile *t)
{
	if (!t->ncycles)
		return 0;
	return t->cycles[(t->cycle_head + UI_CYCLES - 1) % UI_CYCLES];
}

void ui_model_snapshot(struct ui_model *dst, const struct ui_model *src)
{
	memcpy(dst, src, sizeof(*dst));
	dst->uids = NULL;
}

/* "bay 2 (1-1.3)" for log lines. */
static void bay_words(char *buf, size_t len, const struct ev_event *ev, const char *bay)
{
	if (ev->bay_index < 0 && bay[0])
		snprintf(buf, len, "port %s", bay);
	else if (ev->bay_index < 0)
		snprintf(buf, len, "line");
	else if (bay[0])
		snprintf(buf, len, "bay %d (%s)", ev->bay_index + 1, bay);
	else
		snprintf(buf, len, "bay %d", ev->bay_index + 1);
}

/* The shift summary's counts and the rate's ring. */
static void count_shift(struct ui_model *m, int64_t t_ms, enum ev_outcome out,
			enum st_reason code)
{
	struct ui_op_count *op = NULL;
	const char *who = m->operator_name[0] ? m->operator_name : "-";

	if (out == EV_OUT_PASS) {
		m->pass_t[m->pass_head] = t_ms;
		m->pass_head = (m->pass_head + 1) % UI_RATE_RING;
		if (m->npass_t < UI_RATE_RING)
			m->npass_t++;
	} else if ((unsigned)code < ST_R_COUNT) {
		m->by_reason[code]++;
	}
	for (int i = 0; i < m->nops && !op; i++)
		if (!strcmp(m->ops[i].name, who))
			op = &m->ops[i];
	if (!op && m->nops < UI_MAX_OPS) {
		op = &m->ops[m->nops++];
		snprintf(op->name, sizeof(op->name), "%s", who);
	} else if (!op) {
		op = &m->ops[UI_MAX_OPS - 1];   /* the rest, together */
		snprintf(op->name, sizeof(op->name), "(others)");
	}
	if (out == EV_OUT_PASS)
		op->pass++;
	else if (out == EV_OUT_REJECT)
		op->reject++;
	else
		op->fail++;
}

static void count_result(struct ui_model *m, const char *uid, enum ev_outcome out,
			 int64_t t_ms, enum st_reason code)
{
	int added;

	/* A unit interrupted by a crash belongs to an earlier run's counts. */
	if (out == EV_OUT_INTERRUPTED)
		return;
	if (out == EV_OUT_PASS)
		m->pass++;
	else if (out == EV_OUT_REJECT)
		m->reject++;
	else
		m->fail++;
	count_shift(m, t_ms, out, code);
	if (!uid[0])
		return;
	/* Only a unit's first result decides whether it passed first time. */
	added = uid_set_add(m->uids, uid);
	if (added == 1) {
		m->fp_attempted++;
		if (out == EV_OUT_PASS)
			m->fp_passed++;
	}
}

/* Boards that wait in their bay change why they wait with the line's state. */
static void retag_waiting(struct ui_model *m, enum ev_intake from, enum ev_intake to)
{
	for (int i = 0; i < m->ntiles; i++) {
		struct ui_tile *t = &m->tiles[i];

		if (t->present && !t->busy && t->verdict == UI_VERDICT_NONE &&
		    (t->waiting == from || (from == EV_INTAKE_COUNT && t->waiting != to)))
			t->waiting = to;
	}
}

static void apply_line_event(struct ui_model *m, const struct ev_event *ev, const char *reason)
{
	switch (ev->kind) {
	case EV_LINE_STARTED:
		m->started = 1;
		m->stopping = m->stopped = 0;
		header_from_event(m, &ev->line);
		ui_model_log(m, ev->t_ms, "line started%s%s", reason[0] ? ": " : "", reason);
		break;
	case EV_LINE_STOPPING:
		m->stopping = 1;
		retag_waiting(m, EV_INTAKE_COUNT, EV_INTAKE_STOPPING);
		ui_model_log(m, ev->t_ms, "stopping: finishing the units in flight");
		break;
	case EV_LINE_STOPPED:
		m->stopping = 0;
		m->stopped = 1;
		ui_model_log(m, ev->t_ms, "line stopped");
		break;
	case EV_LINE_PAUSED:
		m->paused = 1;
		retag_waiting(m, EV_INTAKE_OPEN, EV_INTAKE_PAUSED);
		ui_model_log(m, ev->t_ms, "intake paused%s%s", reason[0] ? ": " : "", reason);
		break;
	case EV_LINE_RESUMED:
		m->paused = 0;
		retag_waiting(m, EV_INTAKE_PAUSED, EV_INTAKE_OPEN);
		ui_model_log(m, ev->t_ms, "intake resumed");
		break;
	case EV_HSM_STATE:
		if (ev->outcome == EV_OUT_OK) {
			m->hsm = UI_HSM_READY;
			m->hsm_reason[0] = '\0';
			ui_model_log(m, ev->t_ms, "HSM ready%s%s", reason[0] ? ": " : "", reason);
		} else {
			m->hsm = UI_HSM_ERROR;
			snprintf(m->hsm_reason, sizeof(m->hsm_reason), "%s", reason);
			ui_model_log(m, ev->t_ms, "HSM ERROR: %s", reason[0] ? reason : "unknown");
		}
		break;
	default:
		break;
	}
}

/* A unit's verdict on its tile. */
static void apply_unit_result(struct ui_model *m, const struct ev_event *ev, struct ui_tile *t,
			      const char *where, const char *reason, const char *uid)
{
	char shown[EV_REASON_LEN];

	if (uid[0])
		memcpy(t->unique_id, uid, sizeof(t->unique_id));
	t->busy = 0;
	t->waiting = EV_INTAKE_OPEN;
	t->progress = -1;
	t->verdict_stage = ev->stage;
	t->reason_code = ev->reason_code;
	memcpy(t->reason, reason, sizeof(t->reason));
	if (ev->outcome == EV_OUT_PASS)
		t->verdict = UI_VERDICT_PASS;
	else if (ev->outcome == EV_OUT_REJECT)
		t->verdict = UI_VERDICT_REJECT;
	else
		t->verdict = UI_VERDICT_FAIL;
	count_result(m, t->unique_id, ev->outcome, ev->t_ms, ev->reason_code);
	if (ev->outcome != EV_OUT_INTERRUPTED) {
		if (t->verdict == UI_VERDICT_PASS)
			t->npass++;
		else if (t->verdict == UI_VERDICT_REJECT)
			t->nreject++;
		else
			t->nfail++;
		if (t->t_start_ms > 0 && ev->t_ms >= t->t_start_ms) {
			t->cycles[t->cycle_head] = ev->t_ms - t->t_start_ms;
			t->cycle_head = (t->cycle_head + 1) % UI_CYCLES;
			if (t->ncycles < UI_CYCLES)
				t->ncycles++;
		}
	}
	t->t_start_ms = 0;
	if (t->verdict == UI_VERDICT_REJECT)
		m->attention++;
	if (t->verdict == UI_VERDICT_PASS) {
		ui_model_log(m, ev->t_ms, "%s: PASS %s", where, t->unique_id);
		return;
	}
	/* the id is on the line once: the engineer's reason loses its copy */
	ui_reason_without_id(shown, sizeof(shown), reason, t->unique_id);
	ui_model_log(m, ev->t_ms, "%s: %s %s at %s: %s", where, ui_verdict_name(t->verdict),
		     t->unique_id[0] ? t->unique_id : "(no id)", ev_stage_name(ev->stage),
		     shown[0] ? shown : "no reason given");
}

/* A bay's event; t is NULL for the kinds that can do without a tile. */
static void apply_bay_event(struct ui_model *m, const struct ev_event *ev, struct ui_tile *t,
			    const char *where, const char *reason, const char *uid)
{
	const char *stage = ev_stage_name(ev->stage);
	char shown[EV_REASON_LEN];

	switch (ev->kind) {
	case EV_BAY_ARRIVED:
		tile_reset(t);
		t->present = 1;
		t->stage = EV_STAGE_DETECT;
		/* the line says whether it takes the board; an older line does
		 * not, and then the model's own state of the line decides */
		t->waiting = (unsigned)ev->intake < EV_INTAKE_COUNT ? ev->intake : EV_INTAKE_OPEN;
		if (t->waiting == EV_INTAKE_OPEN)
			t->waiting = m->stopping || m->stopped ? EV_INTAKE_STOPPING :
				     m->paused ? EV_INTAKE_PAUSED :
				     t->held ? EV_INTAKE_HELD : EV_INTAKE_OPEN;
		t->busy = t->waiting == EV_INTAKE_OPEN;
		t->t_start_ms = ev->t_ms;
		memcpy(t->unique_id, uid, sizeof(t->unique_id));
		ui_model_log(m, ev->t_ms, "%s: board arrived%s%s%s%s", where, uid[0] ? " " : "", uid,
			     t->waiting != EV_INTAKE_OPEN ? ", waits: " : "",
			     t->waiting != EV_INTAKE_OPEN ? ev_intake_name(t->waiting) : "");
		break;
	case EV_BAY_LEFT:
		t->present = 0;
		if (!t->busy)
			t->waiting = EV_INTAKE_OPEN;
		ui_model_log(m, ev->t_ms, "%s: board removed", where);
		break;
	case EV_STAGE_BEGIN:
		if (!t) {
			ui_model_log(m, ev->t_ms, "%s: %s %s", where, stage, reason);
			break;
		}
		t->stage = ev->stage;
		if (!t->busy || t->waiting != EV_INTAKE_OPEN)
			t->t_start_ms = ev->t_ms;       /* the wait is not the cycle */
		t->busy = 1;
		t->waiting = EV_INTAKE_OPEN;
		t->progress = -1;
		if (uid[0])
			memcpy(t->unique_id, uid, sizeof(t->unique_id));
		break;
	case EV_PROGRESS:
		if (!t)
			break;
		t->stage = ev->stage;
		if (ev->total > 0) {
			double f = (double)ev->done / (double)ev->total;
			t->progress = f > 1 ? 1 : f;
		}
		break;
	case EV_STAGE_END:
		if (!t) {
			ui_model_log(m, ev->t_ms, "%s: %s %s%s%s", where, stage,
				     ev_outcome_name(ev->outcome), reason[0] ? ": " : "", reason);
			break;
		}
		if (uid[0])
			memcpy(t->unique_id, uid, sizeof(t->unique_id));
		/* A failed stage is logged with the unit's result that follows. */
		t->progress = -1;
		break;
	case EV_UNIT_RESULT:
		if (!t) {
			count_result(m, uid, ev->outcome, ev->t_ms, ev->reason_code);
			ui_model_log(m, ev->t_ms, "%s: %s %s %s", where, ev_outcome_name(ev->outcome),
				     uid, reason);
			break;
		}
		apply_unit_result(m, ev, t, where, reason, uid);
		break;
	case EV_BAY_HELD:
		if (!t->held)
			m->attention++;
		t->held = 1;
		memcpy(t->held_reason, reason, sizeof(t->held_reason));
		ui_model_log(m, ev->t_ms, "%s: HELD%s%s - check the fixture, then press c", where,
			     reason[0] ? ": " : "", reason);
		break;
	case EV_BAY_CLEARED:
		t->held = 0;
		t->held_reason[0] = '\0';
		if (t->waiting == EV_INTAKE_HELD)
			t->waiting = EV_INTAKE_OPEN;
		ui_model_log(m, ev->t_ms, "%s: cleared by the operator", where);
		break;
	case EV_ALERT:
		m->alerts++;
		if (t)
			t->alert = 1;
		ui_reason_without_id(shown, sizeof(shown), reason, uid);
		ui_model_log(m, ev->t_ms, "ALERT %s%s%s: %s", where, uid[0] ? " " : "", uid,
			     shown[0] ? shown : "security alert");
		break;
	default:
		ui_model_log(m, ev->t_ms, "%s: event %d: %s", where, (int)ev->kind, reason);
		break;
	}
}

void ui_model_apply(struct ui_model *m, const struct ev_event *ev)
{
	char reason[EV_REASON_LEN], uid[EV_UID_LEN], bay[EV_BAY_LEN], where[64];
	struct ui_tile *t = NULL;

	COPY_FIELD(reason, ev->reason);
	COPY_FIELD(uid, ev->unique_id);
	COPY_FIELD(bay, ev->bay);
	if (!m->t_first_ms && ev->t_ms > 0)
		m->t_first_ms = ev->t_ms;
	m->version++;

	switch (ev->kind) {
	case EV_LINE_STARTED: case EV_LINE_STOPPING: case EV_LINE_STOPPED:
	case EV_LINE_PAUSED: case EV_LINE_RESUMED: case EV_HSM_STATE:
		apply_line_event(m, ev, reason);
		return;
	case EV_LOT_CHANGED:
		if (ev->line.lot[0])
			ui_ascii_copy(m->lot, sizeof(m->lot), ev->line.lot,
				      strnlen(ev->line.lot, sizeof(ev->line.lot)));
		ui_model_log(m, ev->t_ms, "lot changed to %s%s%s", m->lot, reason[0] ? ": " : "",
			     reason);
		return;
	case EV_LOG:
		if (ev->bay_index >= 0)
			ui_model_log(m, ev->t_ms, "bay %d%s%s%s: %s", ev->bay_index + 1,
				     bay[0] ? " (" : "", bay, bay[0] ? ")" : "", reason);
		else
			ui_model_log(m, ev->t_ms, "%s", reason);
		return;
	default:
		break;
	}

	if (ev->bay_index >= 0 && ev->bay_index < UI_MAX_BAYS) {
		t = &m->tiles[ev->bay_index];
		if (ev->bay_index >= m->ntiles)
			m->ntiles = ev->bay_index + 1;
		if (bay[0])
			memcpy(t->bay, bay, sizeof(t->bay));
	}
	if (t && ev->t_ms > 0)
		m->t_last_activity_ms = ev->t_ms;
	bay_words(where, sizeof(where), ev, t ? t->bay : bay);
	/* Without a tile (line-wide recovery, a bay past UI_MAX_BAYS) only the
	 * log and the counters can show the event. */
	if (!t && ev->kind != EV_ALERT && ev->kind != EV_STAGE_BEGIN && ev->kind != EV_PROGRESS &&
	    ev->kind != EV_STAGE_END && ev->kind != EV_UNIT_RESULT) {
		ui_model_log(m, ev->t_ms, "%s %s: %s", where, ev_kind_name(ev->kind), reason);
		return;
	}
	apply_bay_event(m, ev, t, where, reason, uid);
}
