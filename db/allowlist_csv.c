/*
 * allowlist_csv: the allowlist file format (allowlist_csv.h).  libcsv is fed
 * one physical line at a time so that an error carries its line; a row is
 * checked whole before it is handed on.
 */
#include "db/allowlist_csv.h"

#include <csv.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "db/db.h"

static const char HEADER[4][16] = { "unique_id", "lot", "model", "hw_revision" };

struct parse {
	const char      *path, *lot;
	allowlist_row_fn fn;
	void            *ctx;
	int64_t          rows;
	long             line;           /* physical line being parsed */
	int              header_done;
	int              nfields;
	char             field[4][ALLOWLIST_CSV_FIELD_MAX + 1];
	size_t           flen[4];
	int              rc;             /* first error, then everything stops */
	struct errbuf   *err;
};

const char *allowlist_csv_shown(const char *s, char out[48])
{
	size_t i;

	for (i = 0; s[i] && i < 40; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i]) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* 1..max characters of well-formed UTF-8 with no control characters. */
static int valid_text(const char *s, size_t len, size_t max_chars)
{
	size_t chars = 0;

	for (size_t i = 0; i < len; chars++) {
		unsigned char c = (unsigned char)s[i];
		int extra;
		uint32_t cp;

		if (c < 0x20 || c == 0x7f)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			extra = 1; cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			extra = 2; cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			extra = 3; cp = c & 0x07;
		} else {
			return 0;
		}
		if (i + (size_t)extra >= len)
			return 0;
		for (int k = 1; k <= extra; k++) {
			unsigned char cc = (unsigned char)s[i + k];

			if ((cc & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (cc & 0x3f);
		}
		if ((extra == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0x80 && cp < 0xa0))
			return 0;
		i += (size_t)extra + 1;
	}
	return chars >= 1 && chars <= max_chars;
}

static int vfail(struct errbuf *err, int code, const char *path, long line,
		 const char *fmt, va_list ap)
{
	char msg[400];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	return errbuf_set(err, code, "%s:%ld: %s", path, line, msg);
}

int allowlist_csv_fail(const struct allowlist_row *row, struct errbuf *err, int code,
		       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	code = vfail(err, code, row->path, row->line, fmt, ap);
	va_end(ap);
	return code;
}

static void row_fail(struct parse *ps, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void row_fail(struct parse *ps, int code, const char *fmt, ...)
{
	va_list ap;

	if (ps->rc)
		return;
	va_start(ap, fmt);
	ps->rc = vfail(ps->err, code, ps->path, ps->line, fmt, ap);
	va_end(ap);
}

static void on_field(void *s, size_t len, void *data)
{
	struct parse *ps = data;
	int i = ps->nfields++;

	if (ps->rc || i >= 4)
		return;
	if (len > ALLOWLIST_CSV_FIELD_MAX) {
		row_fail(ps, ST_EINVAL, "field %d is longer than %d bytes", i + 1,
			 ALLOWLIST_CSV_FIELD_MAX);
		return;
	}
	if (s && memchr(s, '\0', len)) {
		row_fail(ps, ST_EINVAL, "field %d contains a NUL byte", i + 1);
		return;
	}
	if (len)
		memcpy(ps->field[i], s, len);
	ps->field[i][len] = '\0';
	ps->flen[i] = len;
}

static int check_header(struct parse *ps)
{
	char s1[48];

	for (int i = 0; i < 4; i++)
		if (strcmp(ps->field[i], HEADER[i])) {
			row_fail(ps, ST_EINVAL, "header must be exactly "
				 "\"unique_id,lot,model,hw_revision\" (field %d is \"%s\")",
				 i + 1, allowlist_csv_shown(ps->field[i], s1));
			return ps->rc;
		}
	ps->header_done = 1;
	return ST_OK;
}

static int check_row(struct parse *ps)
{
	char s1[48], s2[48];

	if (!ids_uid_valid(ps->field[0]))
		row_fail(ps, ST_EINVAL, "unique id \"%s\" is not 24 upper-case hex digits",
			 allowlist_csv_shown(ps->field[0], s1));
	else if (strcmp(ps->field[1], ps->lot))
		row_fail(ps, ST_EINVAL, "lot \"%s\" does not match --lot %s",
			 allowlist_csv_shown(ps->field[1], s1), allowlist_csv_shown(ps->lot, s2));
	else if (!valid_text(ps->field[2], ps->flen[2], ALLOWLIST_CSV_TEXT_MAX))
		row_fail(ps, ST_EINVAL, "model must be 1..%d printable UTF-8 characters",
			 ALLOWLIST_CSV_TEXT_MAX);
	else if (!valid_text(ps->field[3], ps->flen[3], ALLOWLIST_CSV_TEXT_MAX))
		row_fail(ps, ST_EINVAL, "hw_revision must be 1..%d printable UTF-8 characters",
			 ALLOWLIST_CSV_TEXT_MAX);
	return ps->rc;
}

static void on_row(int c, void *data)
{
	struct parse *ps = data;
	struct allowlist_row row;
	int n = ps->nfields;

	ps->nfields = 0;
	(void)c;
	if (ps->rc)
		return;
	if (n != 4) {
		row_fail(ps, ST_EINVAL, "expected 4 fields (unique_id,lot,model,hw_revision), found %d", n);
		return;
	}
	if (!ps->header_done) {
		check_header(ps);
		return;
	}
	if (check_row(ps))
		return;
	row.path = ps->path;
	row.line = ps->line;
	row.unique_id = ps->field[0];
	row.lot = ps->field[1];
	row.model = ps->field[2];
	row.hw_revision = ps->field[3];
	if ((ps->rc = ps->fn(&row, ps->ctx, ps->err)) == ST_OK)
		ps->rows++;
}

int allowlist_csv_parse(const uint8_t *buf, size_t len, const char *path,
			const char *lot, allowlist_row_fn fn, void *ctx,
			int64_t *rows_out, struct errbuf *err)
{
	struct csv_parser p;
	struct parse ps;
	size_t off = 0;

	if (rows_out)
		*rows_out = 0;
	memset(&ps, 0, sizeof(ps));
	ps.path = path;
	ps.lot = lot;
	ps.fn = fn;
	ps.ctx = ctx;
	ps.err = err;
	if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3))
		off = 3;   /* a UTF-8 byte order mark, as spreadsheets write */
	while (off < len && !ps.rc) {
		const uint8_t *nl = memchr(buf + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (buf + off)) + 1 : len - off;

		ps.line++;
		if (n > ALLOWLIST_CSV_LINE_MAX) {
			row_fail(&ps, ST_EINVAL, "line longer than %d bytes", ALLOWLIST_CSV_LINE_MAX);
			break;
		}
		if (csv_parse(&p, buf + off, n, on_field, on_row, &ps) != n && !ps.rc)
			row_fail(&ps, ST_EINVAL, "malformed CSV: %s", csv_strerror(csv_error(&p)));
		off += n;
	}
	if (!ps.rc && csv_fini(&p, on_field, on_row, &ps) != 0)
		row_fail(&ps, ST_EINVAL, "malformed CSV: %s", csv_strerror(csv_error(&p)));
	csv_free(&p);
	if (!ps.rc && !ps.header_done)
		ps.rc = errbuf_set(err, ST_EINVAL,
				   "%s:1: empty file: expected the header \"unique_id,lot,model,hw_revision\"",
				   path);
	if (!ps.rc && ps.rows == 0)
		ps.rc = errbuf_set(err, ST_EINVAL, "%s: no rows after the header", path);
	if (rows_out)
		*rows_out = ps.rows;
	return ps.rc;
}
