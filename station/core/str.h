/*
 * str: bounded string copies that report truncation.
 *
 * A copy that would not fit is an error, not a silent cut: str_copy() and
 * str_fmt() return 0 when the whole text fits dst[size] with its NUL, and -1
 * otherwise (or on an encoding error), with dst then holding the empty string
 * so a cut value (a path, an id, a label) can never be used by mistake.  Both
 * are ST_MUST_CHECK: the caller decides what a cut means (usually an ST_EINVAL
 * naming the value).
 *
 * str_fmt_cut() is for text that is only shown (event reasons, log lines),
 * where a cut is acceptable but must be visible: it keeps what fits and ends
 * it with "..." when it cut, and returns 1 when it did, 0 otherwise.
 *
 * str_sanitize() is the one rule for text a board (or any outside party)
 * supplied before it is shown or written anywhere (screen, CLI output, logs,
 * JSON, the database): printable ASCII and valid UTF-8 pass; every control byte
 * (C0, DEL, the C1 range), every byte of invalid or overlong UTF-8 becomes
 * "\xNN" and a backslash "\\", so the output is unambiguous and can move no
 * cursor.  len bytes of src are read (a NUL is escaped too).  dst always ends
 * with a NUL; an escape is never cut in half; returns 1 when the text was cut
 * to fit, 0 otherwise.
 */
#ifndef STATION_STR_H
#define STATION_STR_H

#include <stdarg.h>
#include <stddef.h>

#include "core/errbuf.h"

ST_MUST_CHECK int str_copy(char *dst, size_t size, const char *src);
ST_MUST_CHECK int str_fmt(char *dst, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
ST_MUST_CHECK int str_vfmt(char *dst, size_t size, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
int str_fmt_cut(char *dst, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

int str_sanitize(char *dst, size_t size, const void *src, size_t len);

#endif
