/* ids: see ids.h. */
#include "core/ids.h"

#include <string.h>

int ids_uid_valid_n(const char *s, size_t len)
{
	if (!s || len != IDS_UID_LEN)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return 1;
}

int ids_uid_valid(const char *s)
{
	/* strnlen: a string without its NUL in the first IDS_UID_LEN + 1 bytes
	 * is too long, whatever follows */
	return s && ids_uid_valid_n(s, strnlen(s, IDS_UID_LEN + 1));
}

int ids_lot_valid(const char *s)
{
	size_t n = s ? strnlen(s, IDS_LOT_MAX + 1) : 0;

	if (n < 1 || n > IDS_LOT_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == ',' || s[i] == '"')
			return 0;
	return 1;
}

int ids_serial_valid(const char *s)
{
	size_t n = s ? strnlen(s, IDS_SERIAL_MAX + 1) : 0;

	if (n < 1 || n > IDS_SERIAL_MAX || (s[0] == '0' && n > 1))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int ids_actor_valid(const char *s)
{
	size_t n = s ? strnlen(s, IDS_ACTOR_MAX + 1) : 0;

	if (n < 1 || n > IDS_ACTOR_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return 0;
	return 1;
}

int ids_station_valid(const char *s)
{
	size_t n = s ? strnlen(s, IDS_STATION_MAX + 1) : 0;

	if (n < 1 || n > IDS_STATION_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] > 0x7e)
			return 0;
	return 1;
}

/* Length of the UTF-8 sequence at p (1..4), 0 when it is not one: overlong
 * forms, surrogates and code points above U+10FFFF are refused. */
static size_t utf8_len(const unsigned char *p, size_t left)
{
	size_t n;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

int ids_text_valid(const char *s, size_t max)
{
	size_t n = s ? strnlen(s, max + 1) : 0;
	const unsigned char *p = (const unsigned char *)s;

	if (n < 1 || n > max)
		return 0;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_len(p + i, n - i);

		if (!k || p[i] < 0x20 || p[i] == 0x7f)
			return 0;
		i += k;
	}
	return 1;
}
