/*
 * hex: bytes <-> hexadecimal text, the one encoder and decoder of the product.
 *
 * hex_encode() writes lower-case digits, the form every hash, serial, key id
 * and nonce is stored, compared and shown in (the board's unique id is upper
 * case by its own rule: core/ids.h).  out must hold 2n + 1 bytes; it is always
 * NUL-terminated.
 *
 * The decoders take exactly 2n digits for n bytes (no prefix, no separators,
 * no whitespace) and return 0, or -1 with out unspecified when the text is
 * not that.  hex_decode() accepts either case (operator input, PKCS#11 ids);
 * hex_decode_lower() only lower case, for values the station wrote itself,
 * where an upper-case digit means the record was not written by us.
 */
#ifndef STATION_HEX_H
#define STATION_HEX_H

#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"

/* The text length of n bytes, with its NUL. */
#define HEX_LEN(n) (2 * (n) + 1)

void hex_encode(const uint8_t *b, size_t n, char *out);

/* The same in upper case (umockdev descriptors, board unique ids). */
void hex_encode_upper(const uint8_t *b, size_t n, char *out);

ST_MUST_CHECK int hex_decode(const char *s, size_t len, uint8_t *out, size_t n);
ST_MUST_CHECK int hex_decode_lower(const char *s, size_t len, uint8_t *out, size_t n);

/* The value of one hex digit of either case, -1 if c is none. */
int hex_digit(int c);

/* 1 when the n characters at s are all hex digits of either case (a
 * validator's test; the decoders check this themselves), else 0. */
int hex_all_digits(const char *s, size_t n);

#endif
