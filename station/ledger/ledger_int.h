/*
 * ledger_int: what the ledger's files share (ledger.c: the connection and
 * the schema; ledger_chain.c; ledger_claim.c; ledger_settle.c).  Not a
 * public API.
 */
#ifndef STATION_LEDGER_INT_H
#define STATION_LEDGER_INT_H

#include <libpq-fe.h>

#include "ledger/ledger.h"

struct ledger {
	PGconn *pg;
	struct ledger_config cfg;
	char password[256];
	int down;                 /* the last call lost the server */
	int push_prepared;        /* this connection holds the push statement */
};

/* Connected now, or one attempt (not more often than LEDGER_RETRY_MS). */
int ledger_connect(struct ledger *l, struct errbuf *err);
/* Runs sql with text parameters; ST_OK with *res (PQclear it) when the status
 * is PGRES_COMMAND_OK or PGRES_TUPLES_OK.  On failure err says what, with
 * reason ST_R_LEDGER_UNREACHABLE when the server is gone or too slow;
 * *sqlstate (may be NULL) gets the SQLSTATE ("" if none). */
int ledger_exec(struct ledger *l, const char *what, const char *sql, int n,
		const char *const *params, PGresult **res, char sqlstate[6],
		struct errbuf *err);
/* The same for a statement whose rows are not needed. */
int ledger_run(struct ledger *l, const char *what, const char *sql, int n,
	       const char *const *params, struct errbuf *err);
/* Inside the push's transaction (ledger_rows.c). */
int ledger_rows_put(struct ledger *l, const struct ledger_row *rows, size_t n,
		    struct errbuf *err);
/* BEGIN; COMMIT (rolled back when it fails). */
int ledger_begin(struct ledger *l, struct errbuf *err);
int ledger_commit(struct ledger *l, struct errbuf *err);
/* Ending station sid's claim of unique_id by unit unit_id, inside the
 * caller's transaction (ledger_claim.c): commit with its serial; put back the
 * PASS a rework kept (*put_back 1, or 0 when the claim kept none); undo = put
 * back, else release (delete) the claim. */
int ledger_claim_commit_tx(struct ledger *l, const char *sid, const char *unique_id,
			   int64_t unit_id, const char *serial, struct errbuf *err);
int ledger_claim_put_back_tx(struct ledger *l, const char *sid, const char *unique_id,
			     int64_t unit_id, int *put_back, struct errbuf *err);
int ledger_claim_undo_tx(struct ledger *l, const char *sid, const char *unique_id,
			 int64_t unit_id, int *put_back, struct errbuf *err);
/* ROLLBACK, ignoring errors (the connection may be gone). */
void ledger_rollback(struct ledger *l);

#endif
