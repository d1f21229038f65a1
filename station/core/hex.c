/* hex: see hex.h. */
#include "core/hex.h"

static void encode(const uint8_t *b, size_t n, char *out, const char *digits)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

void hex_encode(const uint8_t *b, size_t n, char *out)
{
	encode(b, n, out, "0123456789abcdef");
}

void hex_encode_upper(const uint8_t *b, size_t n, char *out)
{
	encode(b, n, out, "0123456789ABCDEF");
}

int hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (hex_digit((unsigned char)s[i]) < 0)
			return 0;
	return 1;
}

static int decode(const char *s, size_t len, uint8_t *out, size_t n, int lower_only)
{
	if (!s || len != 2 * n)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (lower_only && s[i] >= 'A' && s[i] <= 'F')
			return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit((unsigned char)s[2 * i]);
		int lo = hex_digit((unsigned char)s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int hex_decode(const char *s, size_t len, uint8_t *out, size_t n)
{
	return decode(s, len, out, n, 0);
}

int hex_decode_lower(const char *s, size_t len, uint8_t *out, size_t n)
{
	return decode(s, len, out, n, 1);
}
