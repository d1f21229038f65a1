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
