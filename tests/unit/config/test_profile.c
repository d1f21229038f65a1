/* Unit tests: profile parsing, strict validation, canonical form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/profile.h"

static const char good[] =
	"; a comment\n"
	"[product]\n"
	"name = widget\n"
	"usb = 1209:00AB\n"
	"\n"
	"[firmware]\n"
	"image = fw/widget.bin\n"
	"sha256 = ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\n"
	"[key]\n"
	"type = ec-p384\n"
	"[certificate]\n"
	"validity_days = 365\n"
	"san = URI:urn:x:{unique_id}:dev\n"
	"[hsm]\n"
	"module = /usr/lib/softhsm/libsofthsm2.so\n"
	"token = station-ca\n"
	"ca_key = ca-p384\n"
	"ca_cert = /etc/station/ca.pem\n"
	"audit_key = audit\n"
	"pin_file = pin.txt\n"
	"[attestation]\n"
	"manufacturer_ca = mfr.pem\n"
	"[policy]\n"
	"max_failures_in_row = 5\n";

static void test_good_profile(void **state)
{
	struct profile p;
	struct errbuf e;
	char san[200];

	(void)state;
	errbuf_clear(&e);
	assert_int_equal(profile_parse(good, strlen(good), "g.profile", "/base", &p, &e), ST_OK);
	assert_string_equal(p.name, "widget");
	assert_int_equal(p.usb_vid, 0x1209);
	assert_int_equal(p.usb_pid, 0x00ab);
	assert_string_equal(p.firmware_image, "/base/fw/widget.bin");
	assert_string_equal(p.firmware_sha256,
			    "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
	assert_int_equal(p.key_type, PROFILE_KEY_EC_P384);
	assert_int_equal(p.validity_days, 365);
	assert_string_equal(p.hsm_ca_cert, "/etc/station/ca.pem");
	assert_string_equal(p.hsm_pin_file, "/base/pin.txt");
	assert_string_equal(p.hsm_pin_env, "");
	assert_string_equal(p.mfr_ca_cert, "/base/mfr.pem");
	assert_int_equal(p.max_failures_in_row, 5);
	assert_int_equal(profile_san_for(&p, "0123456789ABCDEF01234567", san, sizeof(san), &e), ST_OK);
	assert_string_equal(san, "URI:urn:x:0123456789ABCDEF01234567:dev");
}

/* Issue 12: trust anchors pinned by SHA-256.  A missing pin is filled from
 * the file (and written in the canonical text); a file that no longer
 * matches its pin is refused; a profile without a pin cannot be checked. */
static void test_pins(void **state)
{
	static const char text[] =
		"[product]\nname=w\nusb=1209:0001\n"
		"[firmware]\nimage=/f\nsha256=0000000000000000000000000000000000000000000000000000000000000000\n"
		"[certificate]\nvalidity_days=1\n"
		"[hsm]\nmodule=/m\ntoken=t\nca_key=k\nca_cert=ca.pem\naudit_key=a\npin_env=PIN_1\n"
		"[attestation]\nmanufacturer_ca=mfr.pem\n";
	struct profile p, q;
	struct errbuf e;
	char *canon = NULL, cwd[512], line[100];
	size_t len = 0;
	int filled = 0;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(system("for n in ca mfr; do openssl req -x509 -newkey ec -pkeyopt"
				" ec_paramgen_curve:P-256 -nodes -keyout $n.key -subj /CN=$n -days 2"
				" -out $n.pem 2>/dev/null || exit 1; done"), 0);
	assert_int_equal(profile_parse(text, strlen(text), "p", cwd, &p, &e), ST_OK);
	assert_string_equal(p.hsm_ca_cert_sha256, "");
	assert_int_equal(profile_pin_anchors(&p, &filled, &e), ST_OK);
	assert_int_equal(filled, 3);
	assert_int_equal(strlen(p.hsm_ca_cert_sha256), 64);
	assert_int_equal(strlen(p.mfr_ca_sha256), 64);
	assert_string_not_equal(p.hsm_ca_cert_sha256, p.mfr_ca_sha256);
	/* stored with the profile, and read back */
	assert_int_equal(profile_canonical(&p, &canon, &len, &e), ST_OK);
	snprintf(line, sizeof(line), "ca_cert_sha256 = %s\n", p.hsm_ca_cert_sha256);
	assert_non_null(strstr(canon, line));
	snprintf(line, sizeof(line), "manufacturer_ca_sha256 = %s\n", p.mfr_ca_sha256);
	assert_non_null(strstr(canon, line));
	assert_int_equal(profile_parse(canon, len, "c", NULL, &q, &e), ST_OK);
	assert_string_equal(q.hsm_ca_cert_sha256, p.hsm_ca_cert_sha256);
	assert_string_equal(q.mfr_ca_sha256, p.mfr_ca_sha256);
	free(canon);
	/* pins given: checked, not replaced */
	assert_int_equal(profile_pin_anchors(&q, &filled, &e), ST_OK);
	assert_int_equal(filled, 0);
	/* the CA file replaced by another certificate */
	assert_int_equal(system("cp mfr.pem ca.pem"), 0);
	assert_int_equal(profile_pin_anchors(&q, &filled, &e), ST_ETAMPER);
	assert_non_null(strstr(e.msg, "CA certificate"));
	assert_non_null(strstr(e.msg, "not the pinned"));
	/* no pin at all: nothing to check against */
	assert_int_equal(profile_pin_check("manufacturer CA", "/x", "", (const uint8_t *)"x", 1, &e),
			 ST_ETAMPER);
	assert_non_null(strstr(e.msg, "not pinned"));
	/* a pin must be 64 hex digits */
	{
		char bad[600];

		snprintf(bad, sizeof(bad), "%smanufacturer_ca_sha256 = 12\n", text);
		assert_int_equal(profile_parse(bad, strlen(bad), "b", cwd, &p, &e), ST_EINVAL);
		assert_non_null(strstr(e.msg, "expected 64 hex digits"));
	}
}

static void test_defaults(void **state)
{
	/* [key] and [policy] are optional: ec-p256 and 3 failures */
	static const char text[] =
		"[product]\nname=w\nusb=1209:0001\n"
		"[firmware]\nimage=/f\nsha256=0000000000000000000000000000000000000000000000000000000000000000\n"
		"[certificate]\nvalidity_days=1\n"
		"[hsm]\nmodule=/m\ntoken=t\nca_key=k\nca_cert=/c\naudit_key=a\npin_env=PIN_1\n"
		"[attestation]\nmanufacturer_ca=/mfr\n";
	struct profile p;
	struct errbuf e;
	char san[8];

	(void)state;
	assert_int_equal(profile_parse(text, strlen(text), "d", NULL, &p, &e), ST_OK);
	assert_int_equal(p.key_type, PROFILE_KEY_EC_P256);
	assert_int_equal(p.max_failures_in_row, 3);
	assert_int_equal(p.max_rejects, 3);
	assert_int_equal(p.reject_window_s, 600);
	assert_int_equal(p.deadline_unit_s, 600);
	assert_int_equal(p.deadline_flash_s, 300);
	assert_int_equal(p.deadline_keygen_s, 120);
	assert_int_equal(p.deadline_stage_s, 60);
	assert_string_equal(p.hsm_pin_env, "PIN_1");
	assert_int_equal(profile_san_for(&p, "X", san, sizeof(san), &e), ST_OK);
	assert_string_equal(san, "");
}

/* The canonical text parses back to the same profile, and is stable. */
static void test_canonical_roundtrip(void **state)
{
	struct profile p, q;
	struct errbuf e;
	char *c1, *c2;
	size_t l1, l2;

	(void)state;
	assert_int_equal(profile_parse(good, strlen(good), "g", "/base", &p, &e), ST_OK);
	assert_int_equal(profile_canonical(&p, &c1, &l1, &e), ST_OK);
	assert_int_equal(profile_parse(c1, l1, "canon", NULL, &q, &e), ST_OK);
	assert_memory_equal(&p, &q, sizeof(p));
	assert_int_equal(profile_canonical(&q, &c2, &l2, &e), ST_OK);
	assert_int_equal(l1, l2);
	assert_memory_equal(c1, c2, l1);
	free(c1);
	free(c2);
}

/* Deadlines and the reject hold: parsed, kept through the canonical form
 * only when set, so an old profile's stored text (and hash) does not change. */
static void test_deadlines_and_rejects(void **state)
{
	static const char extra[] = "max_rejects = 4\nreject_window_s = 30\n"
				    "[deadlines]\nflash_s = 7\nstage_s = 9\n";
	char text[sizeof(good) + sizeof(extra)];
	struct profile p, q;
	struct errbuf e;
	char *c1, *c0;
	size_t l1, l0;

	(void)state;
	assert_int_equal(profile_parse(good, strlen(good), "g", "/base", &p, &e), ST_OK);
	assert_int_equal(profile_canonical(&p, &c0, &l0, &e), ST_OK);
	assert_null(strstr(c0, "deadlines"));
	assert_null(strstr(c0, "max_rejects"));
	snprintf(text, sizeof(text), "%s%s", good, extra);
	assert_int_equal(profile_parse(text, strlen(text), "g", "/base", &p, &e), ST_OK);
	assert_int_equal(p.max_rejects, 4);
	assert_int_equal(p.reject_window_s, 30);
	assert_int_equal(p.deadline_flash_s, 7);
	assert_int_equal(p.deadline_stage_s, 9);
	assert_int_equal(p.deadline_keygen_s, PROFILE_DEF_KEYGEN_S);
	assert_int_equal(profile_canonical(&p, &c1, &l1, &e), ST_OK);
	assert_int_equal(profile_parse(c1, l1, "canon", NULL, &q, &e), ST_OK);
	assert_memory_equal(&p, &q, sizeof(p));
	free(c0);
	free(c1);
}

/* Replaces the first occurrence of `from` in the good profile by `to`. */
static char *mutate(const char *from, const char *to)
{
	const char *at = strstr(good, from);
	char *out;

	assert_non_null(at);
	out = malloc(sizeof(good) + strlen(to) + 1);
	assert_non_null(out);
	sprintf(out, "%.*s%s%s", (int)(at - good), good, to, at + strlen(from));
	return out;
}

struct bad_case {
	const char *from, *to;
	const char *want;   /* expected error text, starting with FILE:LINE */
};

static const struct bad_case bad_cases[] = {
	/* unknown section, unknown key, repeated key/section */
	{ "[policy]\n", "[extra]\nx = 1\n[policy]\n", "b.profile:23: unknown section [extra]" },
	{ "[policy]\n", "[empty]\n[policy]\n", "b.profile:23: unknown section [empty]" },
	{ "usb = 1209:00AB\n", "usb = 1209:00AB\ncolour = red\n", "b.profile:5: unknown key 'colour' in [product]" },
	{ "name = widget\n", "name = widget\nname = gadget\n", "b.profile:4: [product] name set twice (first at line 3)" },
	{ "[policy]\n", "[product]\n[policy]\n", "b.profile:23: section [product] repeated (first at line 2)" },
	/* bad values */
	{ "usb = 1209:00AB", "usb = 1209-00AB", "b.profile:4: usb: expected VID:PID" },
	{ "usb = 1209:00AB", "usb = 12G9:00AB", "b.profile:4: usb: expected VID:PID" },
	{ "name = widget", "name = wid get", "b.profile:3: name: only letters" },
	{ "sha256 = ABCDEF", "sha256 = XBCDEF", "b.profile:8: sha256: expected 64 hex digits" },
	{ "sha256 = ABCDEF", "sha256 = ABCDEF0", "b.profile:8: sha256: expected 64 hex digits" },
	{ "type = ec-p384", "type = ec-p521", "b.profile:10: type: 'ec-p521' is not one of" },
	{ "validity_days = 365", "validity_days = 0", "b.profile:12: validity_days: expected" },
	{ "validity_days = 365", "validity_days = 12x", "b.profile:12: validity_days: expected" },
	{ "validity_days = 365", "validity_days = 99999999999999999999", "b.profile:12: validity_days: expected" },
	{ "validity_days = 365", "validity_days = -5", "b.profile:12: validity_days: expected" },
	{ "san = URI:urn:x:{unique_id}:dev", "san = URI:urn:x:dev", "b.profile:13: san: must contain {unique_id}" },
	{ "san = URI:urn:x:{unique_id}:dev", "san = IP:{unique_id}", "b.profile:13: san: must start with" },
	{ "san = URI:urn:x:{unique_id}:dev", "san = URI:{unique_id}{x}", "b.profile:13: san: one name only" },
	{ "san = URI:urn:x:{unique_id}:dev", "san = URI:%s{unique_id}", "b.profile:13: san: no '%' or spaces" },
	{ "san = URI:urn:x:{unique_id}:dev", "san = email:{unique_id}@x", "b.profile:13: san: must start with" },
	{ "token = station-ca", "token = 0123456789abcdef0123456789abcdef0", "b.profile:16: token: a token label is 1..32" },
	{ "pin_file = pin.txt", "pin_env = lower", "b.profile:20: pin_env: expected an environment variable name" },
	{ "max_failures_in_row = 5", "max_failures_in_row = 0", "b.profile:24: max_failures_in_row: expected" },
	{ "max_failures_in_row = 5", "max_failures_in_row = 5\nmax_rejects = 0", "b.profile:25: max_rejects: expected a whole number 1..100" },
	{ "max_failures_in_row = 5", "max_failures_in_row = 5\n[deadlines]\nflash_s = 3601", "b.profile:26: flash_s: expected a whole number 1..3600" },
	{ "max_failures_in_row = 5", "max_failures_in_row = 5\n[deadlines]\nlunch_s = 3", "b.profile:26: " },
	{ "image = fw/widget.bin", "image = ", "b.profile:7: image: empty path" },
	/* "key =;x" is ";x" but its canonical "key = ;x" a comment (found by fuzz_profile) */
	{ "audit_key = audit", "audit_key =;audit", "b.profile:19: audit_key: a value cannot start with ';'" },
	{ "image = fw/widget.bin", "image =;fw", "b.profile:7: image: a value cannot start with ';'" },
	/* the PIN itself is refused, whatever its value */
	{ "pin_file = pin.txt", "pin = 1234", "b.profile:20: a PIN must never be written in a profile" },
	/* missing required keys and sections; pin_file xor pin_env */
	{ "ca_key = ca-p384\n", "", "b.profile:14: [hsm] missing required key 'ca_key'" },
	{ "[attestation]\nmanufacturer_ca = mfr.pem\n", "", "b.profile:22: missing section [attestation]" },
	{ "pin_file = pin.txt\n", "", "b.profile:14: [hsm] needs exactly one of pin_file or pin_env" },
	{ "pin_file = pin.txt\n", "pin_file = pin.txt\npin_env = PIN\n", "b.profile:14: [hsm] needs exactly one" },
	/* syntax */
	{ "[key]\n", "[key\n", "b.profile:9: syntax error" },
	{ "type = ec-p384\n", "type ec-p384\n", "b.profile:10: syntax error" },
	{ "type = ec-p384\n", "type = ec-p384\n   more\n", "b.profile:11: indented line" },
	{ "; a comment\n", "stray = 1\n", "b.profile:1: 'stray' outside any section" },
};

static void test_bad_inputs(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct profile p;
		struct errbuf e;
		char *text = mutate(bad_cases[i].from, bad_cases[i].to);
		int rc;

		errbuf_clear(&e);
		memset(&p, 0x5a, sizeof(p));
		rc = profile_parse(text, strlen(text), "b.profile", "/base", &p, &e);
		if (rc != ST_EINVAL || strncmp(e.msg, bad_cases[i].want, strlen(bad_cases[i].want))) {
			print_error("case %zu: rc %d msg '%s', want '%s'\n", i, rc, e.msg, bad_cases[i].want);
			fail();
		}
		/* nothing half-parsed is left behind */
		assert_string_equal(p.name, "");
		assert_int_equal(p.validity_days, 0);
		free(text);
	}
}

static void test_long_line_and_nul(void **state)
{
	struct profile p;
	struct errbuf e;
	char text[600];
	char path[300];

	(void)state;
	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	snprintf(text, sizeof(text), "[product]\nname = %s\n", path);
	assert_int_equal(profile_parse(text, strlen(text), "l", NULL, &p, &e), ST_EINVAL);
	assert_string_equal(e.msg, "l:2: line too long (at most 198 characters)");

	memcpy(text, "[product]\nna\0e = x\n", 19);
	assert_int_equal(profile_parse(text, 19, "n", NULL, &p, &e), ST_EINVAL);
	assert_string_equal(e.msg, "n:2: NUL byte in line");

	/* a relative path in stored (base-less) text */
	assert_int_equal(profile_parse(good, strlen(good), "s", NULL, &p, &e), ST_EINVAL);
	assert_string_equal(e.msg, "s:7: image: path must be absolute");
}

static void test_empty_file(void **state)
{
	struct profile p;
	struct errbuf e;

	(void)state;
	assert_int_equal(profile_parse("", 0, "empty", NULL, &p, &e), ST_EINVAL);
	assert_string_equal(e.msg, "empty:1: missing section [product] (needs name)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_profile),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_pins),
		cmocka_unit_test(test_canonical_roundtrip),
		cmocka_unit_test(test_deadlines_and_rejects),
		cmocka_unit_test(test_bad_inputs),
		cmocka_unit_test(test_long_line_and_nul),
		cmocka_unit_test(test_empty_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
