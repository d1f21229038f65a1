/*
 * export_fmt: the per-lot export's CSV and JSON-lines records, its yield
 * summary, and a FILE that hashes what passes through it (the export's audit
 * event names the SHA-256 of exactly the bytes written).  The signed manifest
 * is manifest.h.  Every column and field: docs/engineer.md ("## Export").
 *
 * Contract
 * - CSV: RFC 4180 (CRLF line ends; a field with a comma, quote, CR or LF is
 *   quoted by libcsv, quotes doubled), the fixed header EXPORT_CSV_HEADER, then
 *   one row per unit.  Nothing else in the file: the yield summary of a CSV
 *   export is the command's status line.  A cell that begins with '=', '+',
 *   '-', '@', a tab or a CR, which a spreadsheet would run as a formula, is
 *   neutralised (OWASP): a single quote is put before it and it is quoted.
 * - JSON lines: one object per unit ("record":"unit"), then one
 *   "record":"summary" object.  Times are ISO-8601 UTC with milliseconds; an
 *   absent value is null.
 * - Writers return ST_EIO when the stream reports an error, ST_EINVAL when a
 *   field cannot be encoded (naming the unit).
 */
#ifndef STATION_EXPORT_FMT_H
#define STATION_EXPORT_FMT_H

#include <stdint.h>
#include <stdio.h>

#include <openssl/evp.h>

#include "core/errbuf.h"
#include "db/export.h"

enum export_format { EXPORT_CSV, EXPORT_JSONL, EXPORT_MANIFEST, EXPORT_OPENHTF,
		     EXPORT_MANIFEST_MICROCHIP };
#define EXPORT_IS_MANIFEST(f) ((f) == EXPORT_MANIFEST || (f) == EXPORT_MANIFEST_MICROCHIP)

/* "csv", "jsonl", "manifest", "openhtf", "manifest-microchip"; -1 for anything else. */
int export_format_parse(const char *s);
const char *export_format_name(enum export_format f);

#define EXPORT_CSV_HEADER \
	"unit_id,unique_id,lot,status,stage,reason,bay,station_id,operator," \
	"profile_name,profile_version,profile_sha256,firmware_sha256,pubkey_sha256," \
	"started,finished,superseded_by,rework_id,cert_serial,cert_status,cert_issued," \
	"cert_revoked,cert_revoke_reason,cert_der_base64," \
	"reason_code,reason_plain,duration_ms,model,hw_revision,on_allowlist"

ST_MUST_CHECK int export_csv_header(FILE *f, struct errbuf *err);
ST_MUST_CHECK int export_csv_row(FILE *f, const struct db_export_row *r, struct errbuf *err);
ST_MUST_CHECK int export_jsonl_row(FILE *f, const struct db_export_row *r, struct errbuf *err);
/* One OpenHTF test record (JSON, one line) per unit: export/openhtf.c. */
ST_MUST_CHECK int export_openhtf_row(FILE *f, const struct db_export_row *r, struct errbuf *err);
ST_MUST_CHECK int export_jsonl_summary(FILE *f, const char *lot, const struct db_export_counts *c,
				       struct errbuf *err);

/* Writes one CSV cell (then ',' or, for the last, CRLF), quoted as RFC 4180
 * needs and neutralised against spreadsheet formulas. */
void export_csv_field(FILE *f, const char *s, int last);

/* Yield as a fraction in [0,1], or -1 when nothing to divide by. */
double export_yield(const struct db_export_counts *c);
double export_first_pass_yield(const struct db_export_counts *c);

/* A write-only FILE that forwards every byte to `to` and hashes it. */
struct export_sink {
	FILE *to;
	EVP_MD_CTX *md;
	uint64_t bytes;
	int failed;
};
FILE *export_sink_open(struct export_sink *s, FILE *to);
/* Closes the FILE (flushing it into `to`) and gives the SHA-256 (hex) of what
 * was written; ST_EIO if any write failed. */
ST_MUST_CHECK int export_sink_close(FILE *f, struct export_sink *s, char sha_hex[65],
				    struct errbuf *err);

#endif
