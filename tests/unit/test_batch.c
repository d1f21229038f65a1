/* Unit tests: the QA batch file parser (fixtures/board/fx_batch.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx_batch.h"

static int parse(const char *text, struct fx_batch *b, struct errbuf *e)
{
	return fx_batch_parse(text, strlen(text), "t.batch", b, e);
}

static void test_batch_good(void **state)
{
	const char *text =
		"{\"batch\":\"s\",\"lot\":\"L-1\",\"bays\":3,\"key_type\":\"ec-p384\","
		"\"image_size\":4096,\"deadline_s\":30,\"knobs\":{\"flash_bps\":0}}\n"
		"# a comment\n"
		"\n"
		"{\"board\":\"good-1\"}\r\n"
		"{\"board\":\"no-lock\",\"knobs\":{\"refuse_lock\":\"1\",\"keygen_ms\":5},"
		"\"expect\":\"fail\",\"stage\":\"lock\"}\n"
		"{\"board\":\"stranger\",\"allowlisted\":false,\"expect\":\"reject\","
		"\"stage\":\"allowlist\"}\n"
		"{\"board\":\"twin\",\"clone_of\":\"good-1\",\"expect\":\"reject\"}\n"
		"{\"board\":\"twin2\",\"clone_of\":\"twin\",\"expect\":\"reject\"}\n"
		"  {\"board\":\"alien\",\"foreign_attest\":true,\"expect\":\"reject\"}";
	struct fx_batch b;
	struct errbuf e;

	(void)state;
	assert_int_equal(parse(text, &b, &e), ST_OK);
	assert_string_equal(b.name, "s");
	assert_string_equal(b.lot, "L-1");
	assert_string_equal(b.key_type, "ec-p384");
	assert_int_equal(b.bays, 3);
	assert_int_equal(b.image_size, 4096);
	assert_int_equal(b.deadline_s, 30);
	assert_int_equal(b.n, 6);
	/* good-1: header knobs, defaults otherwise, pass@commit */
	assert_string_equal(b.boards[0].name, "good-1");
	assert_int_equal(b.boards[0].line, 4);
	assert_int_equal(b.boards[0].knobs.flash_bps, 0);
	assert_int_equal(b.boards[0].knobs.keygen_ms, 150);
	assert_int_equal(b.boards[0].expect, FX_EXPECT_PASS);
	assert_string_equal(b.boards[0].stage, "commit");
	assert_int_equal(b.boards[0].allowlisted, 1);
	assert_int_equal(b.boards[0].clone_of, -1);
	assert_int_equal(b.boards[0].after, -1);
	/* the board's own knobs over the header's */
	assert_int_equal(b.boards[1].knobs.refuse_lock, 1);
	assert_int_equal(b.boards[1].knobs.keygen_ms, 5);
	assert_int_equal(b.boards[1].knobs.flash_bps, 0);
	assert_int_equal(b.boards[1].expect, FX_EXPECT_FAIL);
	assert_string_equal(b.boards[1].stage, "lock");
	assert_int_equal(b.boards[2].allowlisted, 0);
	/* clones: any stage when none given; a clone of a clone copies the original,
	 * and is replayed after the previous board with that id */
	assert_int_equal(b.boards[3].clone_of, 0);
	assert_int_equal(b.boards[3].after, 0);
	assert_string_equal(b.boards[3].stage, "");
	assert_int_equal(b.boards[4].clone_of, 0);
	assert_int_equal(b.boards[4].after, 3);
	assert_int_equal(b.boards[5].foreign_attest, 1);
	assert_int_equal(fx_batch_find(&b, "twin2"), 4);
	assert_int_equal(fx_batch_find(&b, "nope"), -1);
	fx_batch_free(&b);

	/* no header: the defaults */
	assert_int_equal(parse("{\"board\":\"a\"}\n", &b, &e), ST_OK);
	assert_string_equal(b.lot, "QA");
	assert_int_equal(b.bays, 2);
	assert_string_equal(b.key_type, "ec-p256");
	assert_int_equal(b.deadline_s, 65);
	fx_batch_free(&b);
}

/* Every class of bad input: the message names t.batch and the right line. */
static void test_batch_bad(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "{\"board\":\"a\"}\n{\"board\":\"b\"", "t.batch:2: not JSON" },
		{ "{\"board\":\"a\"}\n[1,2]\n", "t.batch:2: want a JSON object, not an array" },
		{ "{\"board\":\"a\"} x\n", "t.batch:1: not JSON" },
		{ "{\"board\":\"a\",\"board\":\"b\"}\n", "t.batch:1: not JSON: duplicate object key" },
		{ "{\"board\":\"a\"}\n\n{\"board\":\"b\",\"colour\":\"red\"}\n",
		  "t.batch:3: unknown key \"colour\"" },
		{ "{\"board\":\"a\"}\n{\"expect\":\"pass\"}\n", "t.batch:2: missing key \"board\"" },
		{ "{\"board\":7}\n", "t.batch:1: \"board\" must be a string, not an integer" },
		{ "{\"board\":\"a/b\"}\n", "t.batch:1: board name \"a/b\"" },
		{ "{\"board\":\"\"}\n", "t.batch:1: board name \"\"" },
		{ "{\"board\":\"a\"}\n{\"board\":\"b\"}\n{\"board\":\"a\"}\n",
		  "t.batch:3: duplicate board \"a\" (first on line 1)" },
		{ "{\"board\":\"a\",\"knobs\":{\"warp_speed\":\"9\"}}\n",
		  "t.batch:1: unknown knob 'warp_speed'" },
		{ "{\"board\":\"a\",\"knobs\":{\"drop_reply\":\"teleport\"}}\n", "t.batch:1: " },
		{ "{\"board\":\"a\",\"knobs\":{\"refuse_lock\":true}}\n",
		  "t.batch:1: knob refuse_lock: want a string or an integer, not a boolean" },
		{ "{\"board\":\"a\",\"knobs\":[]}\n", "t.batch:1: \"knobs\" must be an object" },
		{ "{\"board\":\"a\",\"expect\":\"maybe\"}\n",
		  "t.batch:1: \"expect\" must be pass, fail or reject, not \"maybe\"" },
		{ "{\"board\":\"a\",\"expect\":1}\n", "t.batch:1: \"expect\" must be a string" },
		{ "{\"board\":\"a\",\"expect\":\"fail\",\"stage\":\"lunch\"}\n",
		  "t.batch:1: unknown stage \"lunch\"" },
		{ "{\"board\":\"a\",\"stage\":\"lock\"}\n",
		  "t.batch:1: a pass ends at stage commit, not lock" },
		{ "{\"board\":\"a\",\"allowlisted\":\"no\"}\n",
		  "t.batch:1: \"allowlisted\" must be true or false, not a string" },
		{ "{\"board\":\"a\",\"clone_of\":\"b\"}\n{\"board\":\"b\"}\n",
		  "t.batch:1: clone_of \"b\" is not a board declared above" },
		{ "{\"board\":\"a\"}\n{\"board\":\"b\",\"clone_of\":\"a\",\"allowlisted\":false}\n",
		  "t.batch:2: a clone copies its original's identity" },
		{ "{\"board\":\"a\"}\n{\"batch\":\"late\"}\n",
		  "t.batch:2: the header (\"batch\") must be the first line" },
		{ "{\"batch\":\"x\",\"board\":\"a\"}\n", "t.batch:1: a line is a header" },
		{ "{\"batch\":\"x\",\"bays\":0}\n{\"board\":\"a\"}\n",
		  "t.batch:1: \"bays\" must be 1..16" },
		{ "{\"batch\":\"x\",\"bays\":\"2\"}\n{\"board\":\"a\"}\n",
		  "t.batch:1: \"bays\" must be an integer, not a string" },
		{ "{\"batch\":\"x\",\"key_type\":\"dsa\"}\n{\"board\":\"a\"}\n",
		  "t.batch:1: \"key_type\" must be" },
		{ "{\"batch\":\"x\",\"lot\":\"a b\"}\n{\"board\":\"a\"}\n", "t.batch:1: \"lot\"" },
		{ "{\"batch\":\"x\",\"image_size\":1}\n{\"board\":\"a\"}\n",
		  "t.batch:1: \"image_size\" must be" },
		{ "{\"batch\":\"x\",\"speed\":1}\n{\"board\":\"a\"}\n",
		  "t.batch:1: unknown header key \"speed\"" },
		{ "{\"batch\":\"x\",\"knobs\":{\"bogus\":1}}\n{\"board\":\"a\"}\n",
		  "t.batch:1: unknown knob 'bogus'" },
		{ "{\"batch\":\"x\"}\n# nothing\n", "t.batch:2: the batch has no boards" },
		{ "", "t.batch:1: the batch has no boards" },
		{ "{\"board\":\"a\"}\n{\"board\":\"b\\u0000\"}\n", "t.batch:2: " },
	};
	struct fx_batch b;
	struct errbuf e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&e, 0, sizeof(e));
		if (parse(cases[i].text, &b, &e) != ST_EINVAL || !strstr(e.msg, cases[i].want)) {
			print_error("case %zu: got '%s', want '%s'\n", i, e.msg, cases[i].want);
			fail();
		}
		assert_null(b.boards);
		assert_int_equal(b.n, 0);
	}
}

/* Bounds: line length, number of boards, a NUL byte. */
static void test_batch_bounds(void **state)
{
	size_t cap = (FX_BATCH_MAX_BOARDS + 2) * 32;
	char *text = malloc(cap), *p;
	struct fx_batch b;
	struct errbuf e;
	int i;

	(void)state;
	assert_non_null(text);
	p = text;
	for (i = 0; i < FX_BATCH_MAX_BOARDS; i++)
		p += sprintf(p, "{\"board\":\"b%d\"}\n", i);
	assert_int_equal(fx_batch_parse(text, (size_t)(p - text), "t.batch", &b, &e), ST_OK);
	assert_int_equal(b.n, FX_BATCH_MAX_BOARDS);
	assert_int_equal(b.deadline_s, 3600);
	fx_batch_free(&b);
	p += sprintf(p, "{\"board\":\"one-more\"}\n");
	assert_int_equal(fx_batch_parse(text, (size_t)(p - text), "t.batch", &b, &e), ST_EINVAL);
	assert_non_null(strstr(e.msg, "t.batch:1001: more than 1000 boards"));

	/* a line one byte too long, after a good one */
	free(text);
	cap = FX_BATCH_MAX_LINE + 64;
	text = malloc(cap);
	assert_non_null(text);
	p = text + sprintf(text, "{\"board\":\"a\"}\n{\"board\":\"");
	memset(p, 'x', FX_BATCH_MAX_LINE);
	p += FX_BATCH_MAX_LINE + 1 - 12;   /* the line: {"board":"x...x"} */
	p += sprintf(p, "\"}\n");
	assert_int_equal(fx_batch_parse(text, (size_t)(p - text), "t.batch", &b, &e), ST_EINVAL);
	assert_non_null(strstr(e.msg, "t.batch:2: line longer than 4096 bytes"));

	/* a NUL byte inside a line */
	memcpy(text, "{\"board\":\"a\"}\n{\"bo\0rd\":\"b\"}\n", 28);
	assert_int_equal(fx_batch_parse(text, 28, "t.batch", &b, &e), ST_EINVAL);
	assert_non_null(strstr(e.msg, "t.batch:2: not JSON"));
	free(text);

	/* a missing file is an I/O error, not a batch error */
	assert_int_equal(fx_batch_load("/nonexistent/x.batch", &b, &e), ST_EIO);
	assert_non_null(strstr(e.msg, "/nonexistent/x.batch"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_good),
		cmocka_unit_test(test_batch_bad),
		cmocka_unit_test(test_batch_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
