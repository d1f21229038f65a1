/*
 * libFuzzer target: the QA batch file parser (fixtures/board/fx_batch.c, JSON
 * lines through jansson).  Any input must parse or fail with ST_EINVAL and a
 * "FILE:LINE: reason" message, returning no boards.  What parses must be a batch
 * the replay can trust: 1..FX_BATCH_MAX_BOARDS boards with valid, distinct
 * names; a clone names an earlier original (never a clone), and its "after" an
 * earlier board; a passing board ends at stage commit; settings in range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures/board/fx_batch.h"

static int name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > FX_BATCH_MAX_NAME || s[0] == '.' || s[0] == '-')
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fx_batch b;
	struct errbuf e;
	int rc;

	errbuf_clear(&e);
	rc = fx_batch_parse((const char *)data, size, "f.batch", &b, &e);
	if (rc != ST_OK) {
		if (rc != ST_EINVAL || strncmp(e.msg, "f.batch:", 8) != 0 || b.boards || b.n)
			abort();
		return 0;
	}
	if (b.n < 1 || b.n > FX_BATCH_MAX_BOARDS || !b.boards ||
	    b.bays < 1 || b.bays > FX_BATCH_MAX_BAYS || b.deadline_s < 1 || b.deadline_s > 3600 ||
	    b.image_size < 1024 || !b.lot[0] || !b.key_type[0])
		abort();
	for (int i = 0; i < b.n; i++) {
		const struct fx_batch_board *d = &b.boards[i];

		if (!name_ok(d->name) || fx_batch_find(&b, d->name) != i || d->line < 1)
			abort();
		if (d->clone_of >= i || d->after >= i || (d->clone_of < 0) != (d->after < 0))
			abort();
		if (d->clone_of >= 0 && (b.boards[d->clone_of].clone_of >= 0 ||
					 d->allowlisted != b.boards[d->clone_of].allowlisted ||
					 d->foreign_attest))
			abort();
		if (d->expect == FX_EXPECT_PASS && strcmp(d->stage, "commit") != 0)
			abort();
		if (i > 0 && d->line <= b.boards[i - 1].line)
			abort();
	}
	fx_batch_free(&b);
	return 0;
}
