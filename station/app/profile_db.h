/*
 * profile_db: a product profile as the line uses it: the latest version stored
 * in the database (db_profile_load), parsed by config/profile.
 *
 * Contract
 * - profile_load() fills *p with the latest stored version of name, its
 *   version number and SHA-256 (p->version, p->hash).  ST_ENOTFOUND when no
 *   profile has that name; ST_EINVAL when the stored text no longer parses or
 *   names another profile (err says "profile NAME vN: ..."); *p is zeroed on
 *   any failure.
 * - Storing a profile is db_profile_store() of profile_canonical()'s text
 *   (`station profile add`); this module only reads, except that
 *   profile_from_ledger() stores the ledger's text of a profile missing here.
 * It lives in app/ because it is where config/ (the parser) and db/ (the
 * storage) meet: neither of them may see the other.
 */
#ifndef STATION_APP_PROFILE_DB_H
#define STATION_APP_PROFILE_DB_H

#include "core/errbuf.h"
#include "config/profile.h"
#include "db/db.h"

ST_MUST_CHECK int profile_load(struct db *db, const char *name, struct profile *p,
			       struct errbuf *err);

struct ledger_config;
/* A profile this station does not hold, from the factory ledger (added there
 * with `station profile add FILE --ledger`): the newest text of name, whose
 * SHA-256 must be the one recorded with it (ST_ETAMPER otherwise), which must
 * parse and name name; stored here as a new version (db_profile_store,
 * audited under actor).  ST_ENOTFOUND when the ledger has none either. */
ST_MUST_CHECK int profile_from_ledger(struct db *db, const struct ledger_config *cfg,
				      const char *name, const char *actor, struct errbuf *err);

#endif
