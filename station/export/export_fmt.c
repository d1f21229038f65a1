/* export_fmt: CSV and JSON-lines export records.  See export_fmt.h. */
#include "export/export_fmt.h"
#include "core/clock.h"
#include "core/hex.h"

#include <csv.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const format_names[] = {
	[EXPORT_CSV] = "csv", [EXPORT_JSONL] = "jsonl", [EXPORT_MANIFEST] = "manifest",
	[EXPORT_OPENHTF] = "openhtf", [EXPORT_MANIFEST_MICROCHIP] = "manifest-microchip",
};

int export_format_parse(const char *s)
{
	for (int i = 0; s && i < (int)(sizeof(format_names) / sizeof(format_names[0])); i++)
		if (!strcmp(s, format_names[i]))
			return i;
	return -1;
}

const char *export_format_name(enum export_format f)
{
	return (int)f >= 0 && f <= EXPORT_MANIFEST_MICROCHIP ? format_names[f] : "unknown";
}

/* "" for 0 (no time), else ISO-8601 UTC with milliseconds. */
static void iso_ms(int64_t ms, char out[CLOCK_ISO_LEN])
{
	out[0] = '\0';
	if (ms > 0)
		clock_iso_ms(ms, out);
}

static char *b64(const uint8_t *b, size_t n)
{
	char *s;

	if (!b || !n || n > (1u << 24) || !(s = malloc(4 * ((n + 2) / 3) + 1)))
		return NULL;
	EVP_EncodeBlock((unsigned char *)s, b, (int)n);
	return s;
}

/* ---- CSV ---------------------------------------------------------------- */

/* One field: as is when it needs no quoting, else through libcsv.  A cell a
 * spreadsheet would take for a formula (OWASP "CSV injection": it begins
 * with = + - @ tab or CR) gets a leading single quote and is quoted, so it
 * reads as text; the quote is visible, the value unmistakable. */
void export_csv_field(FILE *f, const char *s, int last)
{
	if (s[0] && strchr("=+-@\t\r", s[0])) {
		size_t n = strlen(s);
		char *q = malloc(n + 2);

		if (q) {
			q[0] = '\'';
			memcpy(q + 1, s, n + 1);
			fputc('"', f);
			for (const char *p = q; *p; p++) {
				if (*p == '"')
					fputc('"', f);
				fputc(*p, f);
			}
			fputc('"', f);
			free(q);
		} else {
			/* no memory: an empty cell rather than a live formula */
			fputs("\"\"", f);
		}
	} else if (strpbrk(s, ",\"\r\n")) {
		csv_fwrite(f, s, strlen(s));
	} else {
		fputs(s, f);
	}
	fputs(last ? "\r\n" : ",", f);
}

int export_csv_header(FILE *f, struct errbuf *err)
{
	fputs(EXPORT_CSV_HEADER "\r\n", f);
	return ferror(f) ? errbuf_set(err, ST_EIO, "write CSV header: %s", strerror(errno)) : ST_OK;
}

int export_csv_row(FILE *f, const struct db_export_row *r, struct errbuf *err)
{
	char id[24], ver[24], started[32], finished[32], issued[32], revoked[32], sup[24], rw[24];
	char dur[24];
	char *der = b64(r->cert_der, r->cert_der_len);
	const char *fields[30];
	int n = 0;

	if (r->cert_der_len && !der)
		return errbuf_set(err, ST_ENOMEM, "unit %lld: out of memory", (long long)r->unit_id);
	snprintf(id, sizeof(id), "%lld", (long long)r->unit_id);
	ver[0] = '\0';
	if (r->profile_version > 0)
		snprintf(ver, sizeof(ver), "%lld", (long long)r->profile_version);
	iso_ms(r->started_ms, started);
	iso_ms(r->finished_ms, finished);
	iso_ms(r->issued_ms, issued);
	iso_ms(r->revoked_ms, revoked);
	sup[0] = rw[0] = '\0';
	if (r->superseded_by > 0)
		snprintf(sup, sizeof(sup), "%lld", (long long)r->superseded_by);
	if (r->rework_id > 0)
		snprintf(rw, sizeof(rw), "%lld", (long long)r->rework_id);
	fields[n++] = id;
	fields[n++] = r->unique_id;
	fields[n++] = r->lot;
	fields[n++] = r->status;
	fields[n++] = r->stage;
	fields[n++] = r->reason;
	fields[n++] = r->bay;
	fields[n++] = r->station_id;
	fields[n++] = r->operator_name;
	fields[n++] = r->profile_name;
	fields[n++] = ver;
	fields[n++] = r->profile_hash;
	fields[n++] = r->firmware_hash;
	fields[n++] = r->pubkey_hash;
	fields[n++] = started;
	fields[n++] = finished;
	fields[n++] = sup;
	fields[n++] = rw;
	fields[n++] = r->cert_serial;
	fields[n++] = r->cert_status;
	fields[n++] = issued;
	fields[n++] = revoked;
	fields[n++] = r->revoke_reason;
	fields[n++] = der ? der : "";
	dur[0] = '\0';
	if (r->duration_ms >= 0)
		snprintf(dur, sizeof(dur), "%lld", (long long)r->duration_ms);
	fields[n++] = r->reason_code;
	fields[n++] = r->reason_plain;
	fields[n++] = dur;
	fields[n++] = r->model;
	fields[n++] = r->hw_revision;
	fields[n++] = r->on_allowlist ? "1" : "0";
	for (int i = 0; i < n; i++)
		export_csv_field(f, fields[i], i == n - 1);
	free(der);
	return ferror(f) ? errbuf_set(err, ST_EIO, "write CSV row for unit %lld: %s",
				      (long long)r->unit_id, strerror(errno)) : ST_OK;
}

/* ---- JSON lines --------------------------------------------------------- */

static json_t *time_json(int64_t ms)
{
	char s[32];

	iso_ms(ms, s);
	return s[0] ? json_string(s) : json_null();
}

static json_t *id_json(int64_t id)
{
	return id > 0 ? json_integer(id) : json_null();
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

/* The certificate: PEM text (what engineers paste into tools), or null. */
static json_t *cert_json(const struct db_export_row *r)
{
	char *der, *pem, *p;
	size_t n, lines;
	json_t *j;

	if (!r->cert_serial[0])
		return json_null();
	if (!r->cert_der_len)     /* revoked before it was recorded as signed */
		return json_pack("{s:s, s:s, s:o, s:o, s:o, s:n}", "serial", r->cert_serial,
				 "status", r->cert_status, "issued", time_json(r->issued_ms),
				 "revoked", time_json(r->revoked_ms),
				 "revoke_reason", str_or_null(r->revoke_reason), "pem");
	if (!(der = b64(r->cert_der, r->cert_der_len)))
		return NULL;
	n = strlen(der);
	lines = (n + 63) / 64;
	pem = malloc(n + lines + 64);
	if (!pem) {
		free(der);
		return NULL;
	}
	p = pem + sprintf(pem, "-----BEGIN CERTIFICATE-----\n");
	for (size_t i = 0; i < n; i += 64) {
		size_t k = n - i < 64 ? n - i : 64;

		memcpy(p, der + i, k);
		p += k;
		*p++ = '\n';
	}
	strcpy(p, "-----END CERTIFICATE-----\n");
	free(der);
	j = json_pack("{s:s, s:s, s:o, s:o, s:o, s:s}", "serial", r->cert_serial,
		      "status", r->cert_status, "issued", time_json(r->issued_ms),
		      "revoked", time_json(r->revoked_ms),
		      "revoke_reason", str_or_null(r->revoke_reason), "pem", pem);
	free(pem);
	return j;
}

static int put_json_line(FILE *f, json_t *j, size_t flags, int64_t unit, struct errbuf *err)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | flags) : NULL;

	json_decref(j);
	if (!s)
		return errbuf_set(err, ST_EINVAL, "unit %lld: a field is not valid UTF-8",
				  (long long)unit);
	fprintf(f, "%s\n", s);
	free(s);
	return ferror(f) ? errbuf_set(err, ST_EIO, "write JSON line: %s", strerror(errno)) : ST_OK;
}

int export_jsonl_row(FILE *f, const struct db_export_row *r, struct errbuf *err)
{
	json_t *cert = cert_json(r), *j;

	if (!cert)
		return errbuf_set(err, ST_ENOMEM, "unit %lld: out of memory", (long long)r->unit_id);
	j = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s,"
		      " s:{s:o, s:o, s:s}, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
		      "record", "unit", "unit_id", (json_int_t)r->unit_id, "unique_id", r->unique_id,
		      "lot", r->lot, "status", r->status, "stage", r->stage, "reason", r->reason,
		      "bay", r->bay, "station_id", r->station_id, "operator", r->operator_name,
		      "profile", "name", str_or_null(r->profile_name),
		      "version", r->profile_version > 0 ? json_integer(r->profile_version) : json_null(),
		      "sha256", r->profile_hash,
		      "firmware_sha256", str_or_null(r->firmware_hash),
		      "pubkey_sha256", str_or_null(r->pubkey_hash),
		      "started", time_json(r->started_ms), "finished", time_json(r->finished_ms),
		      "superseded_by", id_json(r->superseded_by), "rework_id", id_json(r->rework_id),
		      "certificate", cert);
	if (j) {
		json_t *stages = r->stage_ms[0] ? json_loads(r->stage_ms, 0, NULL) : NULL;

		json_object_set_new(j, "reason_code", str_or_null(r->reason_code));
		json_object_set_new(j, "reason_plain", str_or_null(r->reason_plain));
		json_object_set_new(j, "duration_ms", r->duration_ms >= 0 ?
				    json_integer(r->duration_ms) : json_null());
		json_object_set_new(j, "stage_ms", json_is_object(stages) ? json_incref(stages) :
				    json_null());
		json_decref(stages);
		json_object_set_new(j, "model", str_or_null(r->model));
		json_object_set_new(j, "hw_revision", str_or_null(r->hw_revision));
		json_object_set_new(j, "on_allowlist", json_boolean(r->on_allowlist));
	}
	return put_json_line(f, j, 0, r->unit_id, err);
}

double export_yield(const struct db_export_counts *c)
{
	return c->boards > 0 ? (double)c->boards_passed / (double)c->boards : -1;
}

double export_first_pass_yield(const struct db_export_counts *c)
{
	return c->boards_finished > 0 ? (double)c->boards_first_pass / (double)c->boards_finished : -1;
}

static json_t *ratio_json(double v)
{
	return v < 0 ? json_null() : json_real(v);
}

int export_jsonl_summary(FILE *f, const char *lot, const struct db_export_counts *c,
			 struct errbuf *err)
{
	json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
			      " s:o, s:o}",
			      "record", "summary", "lot", lot, "units", (json_int_t)c->units,
			      "pass", (json_int_t)c->pass, "superseded", (json_int_t)c->superseded,
			      "fail", (json_int_t)c->fail,
			      "reject", (json_int_t)c->reject,
			      "interrupted", (json_int_t)c->interrupted,
			      "in_progress", (json_int_t)c->in_progress,
			      "allowlisted", (json_int_t)c->allowlisted,
			      "boards", (json_int_t)c->boards,
			      "boards_passed", (json_int_t)c->boards_passed,
			      "boards_first_pass", (json_int_t)c->boards_first_pass,
			      "yield", ratio_json(export_yield(c)),
			      "first_pass_yield", ratio_json(export_first_pass_yield(c)));

	if (j) {
		json_object_set_new(j, "strangers", json_integer(c->strangers));
		json_object_set_new(j, "stranger_units", json_integer(c->stranger_units));
	}

	return put_json_line(f, j, JSON_REAL_PRECISION(4), 0, err);
}

/* ---- the hashing sink --------------------------------------------------- */

static ssize_t sink_write(void *cookie, const char *buf, size_t n)
{
	struct export_sink *s = cookie;

	if (s->failed)
		return -1;
	if (fwrite(buf, 1, n, s->to) != n || EVP_DigestUpdate(s->md, buf, n) != 1) {
		s->failed = errno ? errno : EIO;
		return -1;
	}
	s->bytes += n;
	return (ssize_t)n;
}

FILE *export_sink_open(struct export_sink *s, FILE *to)
{
	cookie_io_functions_t io = { .write = sink_write };
	FILE *f;

	memset(s, 0, sizeof(*s));
	s->to = to;
	if (!(s->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1 ||
	    !(f = fopencookie(s, "w", io))) {
		EVP_MD_CTX_free(s->md);
		s->md = NULL;
		return NULL;
	}
	return f;
}

int export_sink_close(FILE *f, struct export_sink *s, char sha_hex[65], struct errbuf *err)
{
	unsigned char md[32];
	unsigned int n = 0;
	int bad = fclose(f) != 0 || s->failed || fflush(s->to) != 0 || ferror(s->to);

	EVP_DigestFinal_ex(s->md, md, &n);
	EVP_MD_CTX_free(s->md);
	s->md = NULL;
	hex_encode(md, n < 32 ? n : 32, sha_hex);
	if (bad)
		return errbuf_set(err, ST_EIO, "write export: %s",
				  strerror(s->failed ? s->failed : errno ? errno : EIO));
	return ST_OK;
}
