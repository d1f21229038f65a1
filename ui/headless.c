/* ui_headless: see headless.h. */
#include "ui/headless.h"
#include "core/clock.h"
#include "core/str.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ui_headless_init(struct ui_headless *h, FILE *out)
{
	memset(h, 0, sizeof(*h));
	h->out = out;
}

void ui_iso8601_ms(char *buf, size_t len, int64_t t_ms)
{
	char iso[CLOCK_ISO_LEN];

	clock_iso_ms(t_ms, iso);
	if (str_copy(buf, len, iso))	/* a caller's buffer too small for a time */
		str_fmt_cut(buf, len, "%s", "invalid");
}

/*
 * Copies a fixed-size event field (maybe not NUL-terminated) as valid UTF-8:
 * jansson refuses invalid UTF-8, and a garbled reason must not lose the event.
 */
static void utf8_copy(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t i = 0, o = 0;

	if (!dstlen)
		return;
	srclen = strnlen(src, srclen);
	while (i < srclen) {
		unsigned char c = (unsigned char)src[i];
		size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
			   (c & 0xf8) == 0xf0 ? 4 : 0;
		int ok = n > 0 && i + n <= srclen;
		uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1fu) : n == 3 ? (c & 0x0fu) : (c & 0x07u);

		for (size_t k = 1; ok && k < n; k++) {
			unsigned char cc = (unsigned char)src[i + k];
			if ((cc & 0xc0) != 0x80)
				ok = 0;
			cp = (cp << 6) | (cc & 0x3fu);
		}
		/* reject overlong forms, surrogates and code points past U+10FFFF */
		if (ok && ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
			   (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
			   (cp >= 0xd800 && cp <= 0xdfff)))
			ok = 0;
		if (ok && n == 1 && c == 0)
			ok = 0;
		if (o + (ok ? n : 1) >= dstlen)
			break;
		if (!ok) {
			dst[o++] = '?';
			i++;
			continue;
		}
		memcpy(dst + o, src + i, n);
		o += n;
		i += n;
	}
	dst[o] = '\0';
}

/* A string value, or null when the field is empty. */
static json_t *str_or_null(const char *field, size_t size)
{
	char buf[512];

	utf8_copy(buf, sizeof(buf) < size + 1 ? sizeof(buf) : size + 1, field, size);
	return buf[0] ? json_string(buf) : json_null();
}

/* The fields of line-started, the same facts as its reason sentence. */
static void add_line_fields(json_t *o, const struct ev_line_info *l)
{
	json_object_set_new(o, "station_id", str_or_null(l->station_id, sizeof(l->station_id)));
	json_object_set_new(o, "operator", str_or_null(l->operator_name, sizeof(l->operator_name)));
	json_object_set_new(o, "profile", str_or_null(l->profile, sizeof(l->profile)));
	json_object_set_new(o, "profile_version", json_integer(l->profile_version));
	json_object_set_new(o, "lot", str_or_null(l->lot, sizeof(l->lot)));
	json_object_set_new(o, "bays", json_integer(l->nbays));
}

char *ui_headless_format(const struct ev_event *ev)
{
	json_t *o = json_object();
	char when[32], *text, *line = NULL;
	size_t n;

	if (!o)
		return NULL;
	ui_iso8601_ms(when, sizeof(when), ev->t_ms);
	json_object_set_new(o, "seq", json_integer((json_int_t)ev->seq));
	json_object_set_new(o, "t_ms", json_integer((json_int_t)ev->t_ms));
	json_object_set_new(o, "time", json_string(when));
	json_object_set_new(o, "kind", json_string(ev_kind_name(ev->kind)));
	json_object_set_new(o, "bay_index", json_integer(ev->bay_index));
	json_object_set_new(o, "bay", str_or_null(ev->bay, sizeof(ev->bay)));
	json_object_set_new(o, "unique_id", str_or_null(ev->unique_id, sizeof(ev->unique_id)));
	json_object_set_new(o, "stage", json_string(ev_stage_name(ev->stage)));
	json_object_set_new(o, "outcome", json_string(ev_outcome_name(ev->outcome)));
	json_object_set_new(o, "reason", str_or_null(ev->reason, sizeof(ev->reason)));
	if (ev->reason_code != ST_R_NONE)
		json_object_set_new(o, "reason_code", json_string(st_reason_name(ev->reason_code)));
	if (ev->unit_id > 0)
		json_object_set_new(o, "unit_id", json_integer((json_int_t)ev->unit_id));
	if (ev->intake != EV_INTAKE_OPEN)
		json_object_set_new(o, "intake", json_string(ev_intake_name(ev->intake)));
	if (ev->kind == EV_PROGRESS) {
		json_object_set_new(o, "done", json_integer((json_int_t)ev->done));
		json_object_set_new(o, "total", json_integer((json_int_t)ev->total));
		json_object_set_new(o, "progress",
				    json_real(ev->total ? (double)ev->done / (double)ev->total : 0.0));
	}
	if (ev->kind == EV_LINE_STARTED)
		add_line_fields(o, &ev->line);
	else if (ev->kind == EV_LOT_CHANGED)
		json_object_set_new(o, "lot", str_or_null(ev->line.lot, sizeof(ev->line.lot)));
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!text)
		return NULL;
	n = strlen(text);
	line = malloc(n + 2);
	if (line) {
		memcpy(line, text, n);
		line[n] = '\n';
		line[n + 1] = '\0';
	}
	free(text);
	return line;
}

void ui_headless_sink(const struct ev_event *ev, void *ctx)
{
	struct ui_headless *h = ctx;
	char *line = ui_headless_format(ev);

	if (!line) {
		h->write_failed = 1;
		return;
	}
	if (fputs(line, h->out) == EOF || fflush(h->out) == EOF)
		h->write_failed = 1;
	else
		h->lines++;
	free(line);
}
