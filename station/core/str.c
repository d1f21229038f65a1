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

/* Length of the valid, printable UTF-8 sequence at s (n bytes left), or 0 when
 * the byte at s must be escaped: a control character (C0, DEL, C1), a stray
 * or overlong byte, a surrogate, a code point past U+10FFFF or a cut sequence. */
static size_t utf8_ok(const unsigned char *s, size_t n)
{
	unsigned cp;
	size_t len;

	if (s[0] >= 0x20 && s[0] < 0x7f)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return len;
}

int str_sanitize(char *dst, size_t size, const void *src, size_t len)
{
	const unsigned char *s = src;
	size_t o = 0, i = 0;

	if (size == 0)
		return 1;
	while (i < len) {
		char esc[5];
		const char *put;
		size_t k = utf8_ok(s + i, len - i), step;

		if (k && s[i] != '\\') {
			put = (const char *)s + i;
			step = k;
		} else {
			if (s[i] == '\\')
				memcpy(esc, "\\\\", 3);
			else
				snprintf(esc, sizeof(esc), "\\x%02x", s[i]);
			put = esc;
			k = strlen(esc);
			step = 1;
		}
		if (o + k >= size) {
			dst[o] = '\0';
			return 1;
		}
		memcpy(dst + o, put, k);
		o += k;
		i += step;
	}
	dst[o] = '\0';
	return 0;
}
