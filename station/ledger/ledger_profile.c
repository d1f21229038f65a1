/*
 * ledger_profile: the profiles added once for the factory (ledger.h).  The
 * ledger keeps each distinct text of a name with the SHA-256 the adding
 * station computed; a reader checks the hash itself before it trusts a row.
 */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ledger_profile_put(struct ledger *l, const char *name, const char *content,
		       const char *sha256, const char *actor, int *added, struct errbuf *err)
{
	const char *p[4] = { name, sha256, content, actor };
	PGresult *r;
	int rc;

	*added = 0;
	if ((rc = ledger_exec(l, "add the profile",
			      "INSERT INTO profiles (name, sha256, content, added_by)"
			      " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1", 4, p,
			      &r, NULL, err)))
		return rc;
	*added = PQntuples(r);
	PQclear(r);
	return ST_OK;
}

int ledger_profile_get(struct ledger *l, const char *name, char **content, size_t *len,
		       char sha256[65], struct errbuf *err)
{
	const char *p[1] = { name };
	PGresult *r;
	size_t n;
	int rc;

	*content = NULL;
	*len = 0;
	sha256[0] = '\0';
	if ((rc = ledger_exec(l, "read the profile",
			      "SELECT content, sha256 FROM profiles WHERE name = $1"
			      " ORDER BY seq DESC LIMIT 1", 1, p, &r, NULL, err)))
		return rc;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return errbuf_setr(err, ST_ENOTFOUND, ST_ORIGIN_DB, ST_R_NOT_FOUND,
				   "no profile %s in the ledger", name);
	}
	n = (size_t)PQgetlength(r, 0, 0);
	if (!(*content = malloc(n + 1))) {
		PQclear(r);
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	}
	memcpy(*content, PQgetvalue(r, 0, 0), n);
	(*content)[n] = '\0';
	*len = n;
	snprintf(sha256, 65, "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	return ST_OK;
}
