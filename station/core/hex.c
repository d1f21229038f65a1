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

/* Each byte's code as a hex digit: 0 none, 1..16 a digit or lower-case
 * letter (value + 1), 27..32 an upper-case letter (value + 17), which
 * hex_decode_lower() refuses.  A table rather than range tests: `audit verify`
 * decodes two hashes per event, and the per-character branches were 8 % of
 * its time on a million events (docs/performance.md). */
static const unsigned char digit_code[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5,
	['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
	['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
	['A'] = 27, ['B'] = 28, ['C'] = 29, ['D'] = 30, ['E'] = 31, ['F'] = 32,
};

int hex_digit(int c)
{
	unsigned e;

	if (c < 0 || c > 255)
		return -1;
	e = digit_code[c];
	return !e ? -1 : e <= 16 ? (int)e - 1 : (int)e - 17;
}

int hex_all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!digit_code[(unsigned char)s[i]])
			return 0;
	return 1;
}

static int decode(const char *s, size_t len, uint8_t *out, size_t n, int lower_only)
{
	if (!s || len != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned hi = digit_code[(unsigned char)s[2 * i]];
		unsigned lo = digit_code[(unsigned char)s[2 * i + 1]];

		/* not both a digit or lower-case letter (0 wraps: not a digit) */
		if (hi - 1 > 15 || lo - 1 > 15) {
			if (lower_only || !hi || !lo)
				return -1;
			hi = hi > 16 ? hi - 16 : hi;
			lo = lo > 16 ? lo - 16 : lo;
		}
		out[i] = (uint8_t)((hi - 1) << 4 | (lo - 1));
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
