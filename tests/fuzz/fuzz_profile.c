/*
 * libFuzzer target: the profile parser (station/config/profile.c, inih underneath).
 * Any input must parse or fail with ST_EINVAL and a "FILE:LINE: reason" message,
 * leaving the profile zeroed.  What parses must survive the trip through its
 * canonical text, which is what the database stores and `station run` parses
 * again: the canonical text must parse (with no base directory: every path in it
 * is absolute) to the very same profile and the very same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/profile.h"

static const struct profile zero;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct profile p, q;
	struct errbuf e;
	char *canon = NULL, *again = NULL, san[PROFILE_SAN_MAX + 32];
	size_t clen, alen;
	int rc;

	errbuf_clear(&e);
	rc = profile_parse((const char *)data, size, "f.profile", "/base", &p, &e);
	if (rc != ST_OK) {
		if (rc != ST_EINVAL || strncmp(e.msg, "f.profile:", 10) != 0 ||
		    memcmp(&p, &zero, sizeof(p)) != 0)
			abort();
		return 0;
	}
	if (profile_canonical(&p, &canon, &clen, &e) != ST_OK)
		abort();
	if (profile_parse(canon, clen, "canonical", NULL, &q, &e) != ST_OK ||
	    memcmp(&p, &q, sizeof(p)) != 0)
		abort();
	if (profile_canonical(&q, &again, &alen, &e) != ST_OK || alen != clen ||
	    memcmp(canon, again, clen) != 0)
		abort();
	if (profile_san_for(&p, "0123456789ABCDEF01234567", san, sizeof(san), &e) != ST_OK)
		abort();
	free(canon);
	free(again);
	return 0;
}
