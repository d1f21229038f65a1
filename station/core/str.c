/* str: see str.h. */
#include "core/str.h"

#include <stdio.h>
#include <string.h>

int str_copy(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (size == 0)
		return -1;
	if (n >= size) {
		dst[0] = '\0';
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

int str_vfmt(char *dst, size_t size, const char *fmt, va_list ap)
{
	int n;

	if (size == 0)
		return -1;
	n = vsnprintf(dst, size, fmt, ap);
	if (n < 0 || (size_t)n >= size) {
		dst[0] = '\0';
		return -1;
	}
	return 0;
}

int str_fmt(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = str_vfmt(dst, size, fmt, ap);
	va_end(ap);
	return rc;
}

int str_fmt_cut(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (size == 0)
		return 1;
	va_start(ap, fmt);
	n = vsnprintf(dst, size, fmt, ap);
	va_end(ap);
	if (n < 0) {
		dst[0] = '\0';
		return 1;
	}
	if ((size_t)n < size)
		return 0;
	if (size > 3)
		memcpy(dst + size - 4, "...", 4);
	return 1;
}
