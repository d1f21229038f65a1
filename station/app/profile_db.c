/* profile_db: the stored profile, parsed (profile_db.h). */
#include "app/profile_db.h"

#include "core/hex.h"
#include "ledger/ledger.h"

#include <openssl/evp.h>
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

int profile_from_ledger(struct db *db, const struct ledger_config *cfg, const char *name,
			const char *actor, struct errbuf *err)
{
	struct ledger *l = NULL;
	struct profile p;
	char *content = NULL, want[65], got[65], stored[65];
	unsigned char md[32];
	unsigned int mdlen = 0;
	size_t len = 0;
	int version = 0, rc;

	if ((rc = ledger_open(cfg, 1, &l, err)))
		return rc;
	rc = ledger_profile_get(l, name, &content, &len, want, err);
	ledger_close(l);
	if (rc)
		return rc;
	/* the row is trusted only if its text has the hash it was added with */
	if (EVP_Digest(content, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
		free(content);
		return errbuf_set(err, ST_ECRYPTO, "profile %s: cannot hash it", name);
	}
	hex_encode(md, 32, got);
	if (strcmp(got, want)) {
		free(content);
		return errbuf_setr(err, ST_ETAMPER, ST_ORIGIN_DB, ST_R_TAMPER,
				   "profile %s in the ledger does not match its SHA-256 (%.12s…"
				   " recorded, %.12s… read)", name, want, got);
	}
	if ((rc = profile_parse(content, len, name, NULL, &p, err)) ||
	    (strcmp(p.name, name) &&
	     (rc = errbuf_set(err, ST_EINVAL, "profile %s in the ledger names %s", name,
			      p.name))) ||
	    (rc = db_profile_store(db, name, content, len, actor, &version, stored, err))) {
		free(content);
		return rc;
	}
	free(content);
	if (strcmp(stored, want))
		return errbuf_setr(err, ST_ETAMPER, ST_ORIGIN_DB, ST_R_TAMPER,
				   "profile %s: stored with another SHA-256 than the ledger's", name);
	return ST_OK;
}
