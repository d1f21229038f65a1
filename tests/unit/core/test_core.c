/* Unit tests: the core helpers (hex, ids, str, clock, fileio, certfile). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/certfile.h"
#include "core/clock.h"
#include "core/fileio.h"
#include "core/hex.h"
#include "core/ids.h"
#include "core/str.h"

static void put(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void test_hex(void **state)
{
	const uint8_t b[] = { 0x00, 0x1f, 0xa0, 0xff };
	char out[HEX_LEN(sizeof(b))];
	uint8_t back[4];

	(void)state;
	hex_encode(b, sizeof(b), out);
	assert_string_equal(out, "001fa0ff");
	hex_encode_upper(b, sizeof(b), out);
	assert_string_equal(out, "001FA0FF");
	hex_encode(b, 0, out);
	assert_string_equal(out, "");
	assert_int_equal(hex_decode("001FA0ff", 8, back, 4), 0);
	assert_memory_equal(back, b, 4);
	assert_int_equal(hex_decode_lower("001fa0ff", 8, back, 4), 0);
	assert_int_equal(hex_decode_lower("001FA0ff", 8, back, 4), -1);
	assert_int_equal(hex_decode("001fa0f", 7, back, 4), -1);    /* odd */
	assert_int_equal(hex_decode("001fa0ff00", 10, back, 4), -1); /* too long */
	assert_int_equal(hex_decode("001fa0fg", 8, back, 4), -1);
	assert_int_equal(hex_decode(" 01fa0ff", 8, back, 4), -1);
	assert_int_equal(hex_decode(NULL, 0, back, 0), -1);
	assert_int_equal(hex_digit('a'), 10);
	assert_int_equal(hex_digit('F'), 15);
	assert_int_equal(hex_digit('g'), -1);
}

/* The decoders' table against the rule written out: every byte as a digit,
 * every pair of bytes as one decoded byte, in either case or lower only. */
static int ref_digit(int c, int lower_only)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (!lower_only && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void test_hex_every_byte(void **state)
{
	(void)state;
	assert_int_equal(hex_digit(-1), -1);
	assert_int_equal(hex_digit(256), -1);
	for (int c = 0; c < 256; c++) {
		char one = (char)c;

		assert_int_equal(hex_digit(c), ref_digit(c, 0));
		assert_int_equal(hex_all_digits(&one, 1), ref_digit(c, 0) >= 0);
	}
	for (int a = 0; a < 256; a++) {
		for (int b = 0; b < 256; b++) {
			const char pair[2] = { (char)a, (char)b };

			for (int lower = 0; lower < 2; lower++) {
				int hi = ref_digit(a, lower), lo = ref_digit(b, lower);
				uint8_t out = 0;
				int rc = lower ? hex_decode_lower(pair, 2, &out, 1) : hex_decode(pair, 2, &out, 1);

				if (hi < 0 || lo < 0) {
					assert_int_equal(rc, -1);
				} else {
					assert_int_equal(rc, 0);
					assert_int_equal(out, hi << 4 | lo);
				}
			}
		}
	}
}

static void test_ids(void **state)
{
	(void)state;
	assert_true(ids_uid_valid("0123456789ABCDEF01234567"));
	assert_false(ids_uid_valid("0123456789abcdef01234567"));
	assert_false(ids_uid_valid("0123456789ABCDEF012345678"));
	assert_false(ids_uid_valid("0123456789ABCDEF0123456"));
	assert_false(ids_uid_valid("0123456789ABCDEF0123456G"));
	assert_false(ids_uid_valid(""));
	assert_false(ids_uid_valid(NULL));
	assert_true(ids_uid_valid_n("0123456789ABCDEF01234567xyz", 24));
	assert_false(ids_uid_valid_n("0123456789ABCDEF01234567", 23));

	assert_true(ids_lot_valid("LOT-A"));
	assert_true(ids_lot_valid("x"));
	assert_false(ids_lot_valid(""));
	assert_false(ids_lot_valid(NULL));
	assert_false(ids_lot_valid("LOT A"));
	assert_false(ids_lot_valid("LOT,A"));
	assert_false(ids_lot_valid("LOT\"A"));
	assert_false(ids_lot_valid("LOT\xc3\xa9"));
	assert_true(ids_lot_valid("0123456789012345678901234567890123456789012345678901234567890123"));
	assert_false(ids_lot_valid("01234567890123456789012345678901234567890123456789012345678901234"));

	assert_true(ids_serial_valid("1a"));
	assert_true(ids_serial_valid("0"));
	assert_false(ids_serial_valid("01"));
	assert_false(ids_serial_valid("1A"));
	assert_false(ids_serial_valid(""));
	assert_false(ids_serial_valid(NULL));

	/* the audit log's actor rule, checked where names enter (issue 13) */
	assert_true(ids_actor_valid("op-olga"));
	assert_true(ids_actor_valid("Olga Berg"));
	assert_true(ids_actor_valid("uid:1000"));
	assert_false(ids_actor_valid("op\tx"));
	assert_false(ids_actor_valid("op\nx"));
	assert_false(ids_actor_valid("op\033[2J"));
	assert_false(ids_actor_valid("op\x7f"));
	assert_false(ids_actor_valid("Jos\xc3\xa9"));
	assert_false(ids_actor_valid(""));
	assert_false(ids_actor_valid(NULL));
	assert_true(ids_actor_valid("0123456789012345678901234567890123456789012345678901234567890123"));
	assert_false(ids_actor_valid("01234567890123456789012345678901234567890123456789012345678901234"));
	assert_true(ids_station_valid("line-1"));
	assert_false(ids_station_valid("line 1"));
	assert_false(ids_station_valid("st\n1"));
	assert_false(ids_station_valid(""));
	assert_false(ids_station_valid("0123456789012345678901234567890123456789012345678901234567890123"));
	assert_true(ids_text_valid("replaced the radio module", 200));
	assert_true(ids_text_valid("r\xc3\xa9paration", 200));
	assert_false(ids_text_valid("a\nb", 200));
	assert_false(ids_text_valid("\xc3", 200));          /* cut UTF-8 */
	assert_false(ids_text_valid("\xc0\xaf", 200));      /* overlong */
	assert_false(ids_text_valid("\xed\xa0\x80", 200));  /* surrogate */
	assert_false(ids_text_valid("abc", 2));
	assert_false(ids_text_valid("", 2));
}

static void test_str(void **state)
{
	char b[6];

	(void)state;
	assert_int_equal(str_copy(b, sizeof(b), "abcde"), 0);
	assert_string_equal(b, "abcde");
	assert_int_equal(str_copy(b, sizeof(b), "abcdef"), -1);
	assert_string_equal(b, "");            /* a cut value is never left behind */
	assert_int_equal(str_fmt(b, sizeof(b), "%d-%s", 12, "ab"), 0);
	assert_string_equal(b, "12-ab");
	assert_int_equal(str_fmt(b, sizeof(b), "%d-%s", 123, "ab"), -1);
	assert_string_equal(b, "");
	assert_int_equal(str_fmt_cut(b, sizeof(b), "%s", "abc"), 0);
	assert_string_equal(b, "abc");
	assert_int_equal(str_fmt_cut(b, sizeof(b), "%s", "abcdefgh"), 1);
	assert_string_equal(b, "ab...");
}

static void test_clock(void **state)
{
	char iso[CLOCK_ISO_LEN];
	int64_t t0 = clock_monotonic_ms();
	struct timespec ts;

	(void)state;
	assert_int_equal(clock_iso_ms(0, iso), 0);
	assert_string_equal(iso, "1970-01-01T00:00:00.000Z");
	assert_int_equal(clock_iso_ms(1795313133007LL, iso), 0);
	assert_string_equal(iso, "2026-11-22T02:05:33.007Z");
	assert_int_equal(clock_iso_ms(-1, iso), 0);
	assert_string_equal(iso, "1969-12-31T23:59:59.999Z");
	assert_int_equal(clock_iso_ms(INT64_C(400000000000000), iso), -1);
	assert_string_equal(iso, "invalid");
	assert_true(clock_realtime_ms() > 1700000000000LL);
	clock_sleep_ms(20);
	assert_true(clock_monotonic_ms() - t0 >= 20);
	clock_deadline(CLOCK_REALTIME, 1500, &ts);
	assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
	assert_true((int64_t)ts.tv_sec * 1000 - clock_realtime_ms() >= 0);
}

static void test_fileio_read(void **state)
{
	struct errbuf e;
	uint8_t *buf;
	size_t len;

	(void)state;
	put("five", "hello", 5);
	assert_int_equal(fileio_read("five", 5, "greeting", &buf, &len, &e), ST_OK);
	assert_int_equal(len, 5);
	assert_string_equal((char *)buf, "hello");   /* NUL-terminated */
	free(buf);
	assert_int_equal(fileio_read("five", 4, "greeting", &buf, &len, &e), ST_EINVAL);
	assert_null(buf);
	assert_string_equal(e.msg, "five: greeting is larger than 4 bytes");
	assert_int_equal(fileio_read("absent", 4, "greeting", &buf, &len, &e), ST_EIO);
	assert_non_null(strstr(e.msg, "absent: cannot open greeting: "));
	assert_int_equal(mkdir("adir", 0700), 0);
	assert_int_equal(fileio_read("adir", 4, "greeting", &buf, &len, &e), ST_EINVAL);
	assert_string_equal(e.msg, "adir: greeting is not a regular file");
	/* without a name for the file, the path says it */
	assert_int_equal(fileio_read("five", 4, NULL, &buf, &len, &e), ST_EINVAL);
	assert_string_equal(e.msg, "five: larger than 4 bytes");
	assert_int_equal(fileio_read("absent", 4, NULL, &buf, &len, &e), ST_EIO);
	assert_string_equal(e.msg, "absent: No such file or directory");
	assert_int_equal(fileio_read("adir", 4, NULL, &buf, &len, &e), ST_EINVAL);
	assert_string_equal(e.msg, "adir: not a regular file");
	put("empty", "", 0);
	assert_int_equal(fileio_read("empty", 4, "greeting", &buf, &len, &e), ST_OK);
	assert_int_equal(len, 0);
	free(buf);
}

static int leftovers(const char *prefix)
{
	DIR *d = opendir(".");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

static void test_fileio_atomic(void **state)
{
	struct fileio_atomic a;
	struct errbuf e;
	struct stat sb;
	uint8_t *buf;
	size_t len;

	(void)state;
	put("out", "old", 3);
	assert_int_equal(fileio_atomic_open(&a, "out", 0644, &e), ST_OK);
	fputs("new bytes", a.f);
	assert_int_equal(fileio_atomic_sync(&a, &e), ST_OK);
	/* until the commit a reader sees the old file */
	assert_int_equal(fileio_read("out", 100, "out", &buf, &len, &e), ST_OK);
	assert_string_equal((char *)buf, "old");
	free(buf);
	assert_int_equal(fileio_atomic_commit(&a, &e), ST_OK);
	assert_int_equal(fileio_read("out", 100, "out", &buf, &len, &e), ST_OK);
	assert_string_equal((char *)buf, "new bytes");
	free(buf);
	assert_int_equal(stat("out", &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0644);
	assert_int_equal(leftovers("out.tmp"), 0);

	assert_int_equal(fileio_atomic_open(&a, "out", 0600, &e), ST_OK);
	fputs("dropped", a.f);
	fileio_atomic_abort(&a);
	assert_int_equal(fileio_read("out", 100, "out", &buf, &len, &e), ST_OK);
	assert_string_equal((char *)buf, "new bytes");
	free(buf);
	assert_int_equal(leftovers("out.tmp"), 0);

	assert_int_equal(fileio_write_atomic("w", "xyz", 3, 0600, &e), ST_OK);
	assert_int_equal(stat("w", &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(fileio_write_atomic("nodir/w", "xyz", 3, 0600, &e), ST_EIO);
	assert_non_null(strstr(e.msg, "nodir/w: cannot create a temporary file beside it"));
	assert_int_equal(fileio_sync_dir("."), 0);
}

static X509 *self_signed(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();

	assert_non_null(k);
	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"core test", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, k);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	EVP_PKEY_free(k);
	return x;
}

static void test_certfile(void **state)
{
	X509 *x = self_signed(), *got = NULL;
	unsigned char *der = NULL;
	uint8_t *out = NULL;
	size_t out_len = 0;
	struct errbuf e;
	FILE *f;
	int n;

	(void)state;
	n = i2d_X509(x, &der);
	assert_true(n > 0);
	put("c.der", der, (size_t)n);
	assert_non_null(f = fopen("c.pem", "w"));
	PEM_write_X509(f, x);
	fclose(f);

	assert_int_equal(certfile_load("c.pem", CERTFILE_MAX, &got, &out, &out_len, &e), ST_OK);
	assert_int_equal(X509_cmp(got, x), 0);
	assert_int_equal(out_len, (size_t)n);
	assert_memory_equal(out, der, (size_t)n);
	X509_free(got);
	free(out);
	assert_int_equal(certfile_load("c.der", CERTFILE_MAX, &got, NULL, NULL, &e), ST_OK);
	assert_int_equal(X509_cmp(got, x), 0);
	X509_free(got);
	assert_int_equal(certfile_load("c.der", CERTFILE_MAX, NULL, &out, &out_len, &e), ST_OK);
	assert_memory_equal(out, der, (size_t)n);
	free(out);

	put("junk", "not a certificate", 17);
	assert_int_equal(certfile_load("junk", CERTFILE_MAX, &got, &out, &out_len, &e), ST_ECRYPTO);
	assert_null(got);
	assert_null(out);
	assert_string_equal(e.msg, "junk: not a PEM certificate (nor DER)");
	put("c.der2", der, (size_t)n - 1);   /* cut DER */
	assert_int_equal(certfile_load("c.der2", CERTFILE_MAX, &got, NULL, NULL, &e), ST_ECRYPTO);
	assert_int_equal(certfile_load("c.pem", 16, &got, NULL, NULL, &e), ST_EINVAL);
	assert_string_equal(e.msg, "c.pem: larger than 16 bytes");
	OPENSSL_free(der);
	X509_free(x);
}

/* A PEM public key loads and is the key it was written from; anything else
 * is refused with the file named. */
static void test_certfile_pubkey(void **state)
{
	X509 *x = self_signed();
	EVP_PKEY *got = NULL;
	struct errbuf e;
	FILE *f;

	(void)state;
	assert_non_null(f = fopen("k.pem", "w"));
	PEM_write_PUBKEY(f, X509_get0_pubkey(x));
	fclose(f);
	assert_int_equal(certfile_load_pubkey("k.pem", CERTFILE_MAX, &got, &e), ST_OK);
	assert_int_equal(EVP_PKEY_eq(got, X509_get0_pubkey(x)), 1);
	EVP_PKEY_free(got);

	put("junk", "not a key", 9);
	assert_int_equal(certfile_load_pubkey("junk", CERTFILE_MAX, &got, &e), ST_ECRYPTO);
	assert_null(got);
	assert_string_equal(e.msg, "junk: not a PEM public key");
	assert_int_equal(certfile_load_pubkey("k.pem", 16, &got, &e), ST_EINVAL);
	assert_string_equal(e.msg, "k.pem: larger than 16 bytes");
	assert_int_not_equal(certfile_load_pubkey("nonexistent.pem", CERTFILE_MAX, &got, &e), ST_OK);
	assert_null(got);
	X509_free(x);
}

static void test_str_sanitize(void **state)
{
	char out[64];
	(void)state;

	assert_int_equal(str_sanitize(out, sizeof(out), "0A1B-ok", 7), 0);
	assert_string_equal(out, "0A1B-ok");
	/* a terminal escape, a newline, a tab, DEL */
	assert_int_equal(str_sanitize(out, sizeof(out), "\x1b[31mX\n\t\x7f", 9), 0);
	assert_string_equal(out, "\\x1b[31mX\\x0a\\x09\\x7f");
	/* a backslash is escaped so an escape cannot be forged */
	assert_int_equal(str_sanitize(out, sizeof(out), "a\\x41", 5), 0);
	assert_string_equal(out, "a\\\\x41");
	/* valid UTF-8 passes; invalid, overlong, surrogate, C1, cut do not */
	assert_int_equal(str_sanitize(out, sizeof(out), "\xc3\xa9", 2), 0);
	assert_string_equal(out, "\xc3\xa9");
	assert_int_equal(str_sanitize(out, sizeof(out), "\xff\xc0\xaf", 3), 0);
	assert_string_equal(out, "\\xff\\xc0\\xaf");
	assert_int_equal(str_sanitize(out, sizeof(out), "\xed\xa0\x80", 3), 0);
	assert_string_equal(out, "\\xed\\xa0\\x80");
	assert_int_equal(str_sanitize(out, sizeof(out), "\xc2\x9b", 2), 0);
	assert_string_equal(out, "\\xc2\\x9b");
	assert_int_equal(str_sanitize(out, sizeof(out), "a\xe2\x82", 3), 0);
	assert_string_equal(out, "a\\xe2\\x82");
	/* a NUL inside the given length is shown, not a terminator */
	assert_int_equal(str_sanitize(out, sizeof(out), "a\0b", 3), 0);
	assert_string_equal(out, "a\\x00b");
	/* cut: never half an escape */
	assert_int_equal(str_sanitize(out, 6, "ab\x1b\x1b", 4), 1);
	assert_string_equal(out, "ab");
	assert_int_equal(str_sanitize(out, 1, "ab", 2), 1);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_hex_every_byte),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_str),
		cmocka_unit_test(test_str_sanitize),
		cmocka_unit_test(test_clock),
		cmocka_unit_test(test_fileio_read),
		cmocka_unit_test(test_fileio_atomic),
		cmocka_unit_test(test_certfile),
		cmocka_unit_test(test_certfile_pubkey),
	};

	return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
