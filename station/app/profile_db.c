/* profile_db: the stored profile, parsed (profile_db.h). */
#include "app/profile_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int profile_load(struct db *db, const char *name, struct profile *p, struct errbuf *err)
{
	char *content = NULL, label[128], hash[65];
	size_t len = 0;
	int version = 0, rc;

	memset(p, 0, sizeof(*p));
	rc = db_profile_load(db, name, &content, &len, &version, hash, err);
	if (rc)
		return rc;
	snprintf(label, sizeof(label), "profile %s v%d", name, version);
	rc = profile_parse(content, len, label, NULL, p, err);
	free(content);
	if (rc)
		return rc;
	if (strcmp(p->name, name)) {
		memset(p, 0, sizeof(*p));
		return errbuf_set(err, ST_EINVAL, "profile %s v%d: stored under another name", name,
				  version);
	}
	p->version = version;
	memcpy(p->hash, hash, sizeof(p->hash));
	return ST_OK;
}
