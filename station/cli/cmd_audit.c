/*
 * station audit verify [--key AUDIT-PUB.pem [--max-unchecked-events N]
 *                      [--max-unchecked-hours H] [--checkpoint-log PATH]
 *                      [HSM-OPTIONS]]
 * station audit log [--tail N]
 *
 * verify walks every station's hash chain and every signed checkpoint in the
 * database: "OK <n> events, <m> checkpoints" and exit 0, or the first bad row
 * (id, seq) and the kind of tampering, exit 1.  With --key it also demands
 * that this station's chain has a checkpoint and that its head is not too far
 * past the newest one, and compares the anchors outside the database (the
 * checkpoint log; the token's anchor when HSM options are given) with it.
 */
#include "cli/cli.h"
#include "cli/hsm_cli.h"
#include "app/checkpoint.h"
#include "app/checkpoint_log.h"
#include "core/certfile.h"
#include "db/db.h"

#include <getopt.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A checkpoint every 100 events and at every stop (the line): far inside both. */
#define AUDIT_MAX_UNCHECKED_EVENTS 1000
#define AUDIT_MAX_UNCHECKED_HOURS  24

static void audit_usage(FILE *f)
{
	fprintf(f,
		"usage: station audit verify [--key AUDIT-PUB.pem [--max-unchecked-events N]\n"
		"                            [--max-unchecked-hours H] [--checkpoint-log PATH]\n"
		"                            [HSM-OPTIONS]]\n"
		"       station audit log [--tail N]\n"
		"\n"
		"verify  check the hash chain of every station in the database and the\n"
		"        signatures of its checkpoints; --key requires every checkpoint to be\n"
		"        signed by that public key (PEM), this station's chain to have one,\n"
		"        and its head to be at most N events (default %d) and H hours\n"
		"        (default %d) past the newest; it compares the checkpoint log\n"
		"        (default $XDG_STATE_HOME/station/<station id>.<chain>.checkpoints, compared\n"
		"        when present; --checkpoint-log: must be present) and, given HSM\n"
		"        options (station checkpoint --help), the token's anchor with the\n"
		"        database and names a rollback.  Exit 0 intact, 1 tampered.\n"
		"log     list audit events (id, station, seq, time, kind, actor, detail),\n"
		"        oldest first; --tail N shows only the last N.\n",
		AUDIT_MAX_UNCHECKED_EVENTS, AUDIT_MAX_UNCHECKED_HOURS);
}

/* The public key's DER SubjectPublicKeyInfo from a PEM file. */
static int load_pubkey_der(const char *path, uint8_t **der, int *len)
{
	struct errbuf err;
	EVP_PKEY *key;

	errbuf_clear(&err);
	if (certfile_load_pubkey(path, CERTFILE_MAX, &key, &err))
		return cli_fail("audit verify: %s", err.msg);
	*der = NULL;
	*len = i2d_PUBKEY(key, der);
	EVP_PKEY_free(key);
	if (*len <= 0)
		return cli_fail("audit verify: %s: cannot encode the public key", path);
	return CLI_EXIT_OK;
}

struct verify_opts {
	const char *key_path, *log_path;
	long long max_events;
	double max_hours;
	struct hsm_cli hc;
	int hsm_given;
};

/* --key's demands on this station's chain beyond the signatures: a
 * checkpoint, not too stale, and the anchors outside the database agree. */
#define NOTES_MAX (2 * CPLOG_PATH_MAX + 128)

static int verify_anchored(struct db *db, const struct verify_opts *o, const uint8_t *der,
			   size_t der_len, char notes[NOTES_MAX])
{
	int n;

	struct app_anchor_report rep;
	struct db_checkpoint_age age;
	struct hsm_config cfg;
	char log_path[CPLOG_PATH_MAX];
	struct hsm *h = NULL;
	struct errbuf err;
	int rc;

	errbuf_clear(&err);
	if (db_checkpoint_age(db, &age, &err))
		return cli_fail("audit verify: %s", err.msg);
	if (age.head_seq > 0 && age.checkpoint_seq == 0)
		return cli_fail("audit verify: FAILED: station %s has %lld events and no signed"
				" checkpoint (station checkpoint)", db_station_id(db),
				(long long)age.head_seq);
	if (age.head_seq - age.checkpoint_seq > o->max_events)
		return cli_fail("audit verify: FAILED: station %s's head (seq %lld) is %lld events past"
				" its last checkpoint (seq %lld); --max-unchecked-events is %lld",
				db_station_id(db), (long long)age.head_seq,
				(long long)(age.head_seq - age.checkpoint_seq),
				(long long)age.checkpoint_seq, o->max_events);
	if (age.hours > o->max_hours)
		return cli_fail("audit verify: FAILED: station %s's head (seq %lld) is %.1f hours past"
				" its last checkpoint (seq %lld); --max-unchecked-hours is %g",
				db_station_id(db), (long long)age.head_seq, age.hours,
				(long long)age.checkpoint_seq, o->max_hours);
	if (o->log_path)
		snprintf(log_path, sizeof(log_path), "%s", o->log_path);
	else if (app_checkpoint_log_default(db, log_path, sizeof(log_path), &err))
		log_path[0] = '\0';
	if (o->hsm_given) {
		if (hsm_cli_config(&o->hc, &cfg, &err) || hsm_open(&cfg, &h, &err))
			return cli_fail("audit verify: %s", err.msg);
	}
	rc = app_anchors_verify(h, db, log_path[0] ? log_path : NULL,
				(o->log_path ? APP_ANCHOR_LOG : 0) | APP_ANCHOR_TOKEN, der, der_len,
				&rep, &err);
	hsm_close(h);
	if (rc == ST_ETAMPER)
		return cli_fail("audit verify: FAILED: %s", err.msg);
	if (rc)
		return cli_fail("audit verify: %s", err.msg);
	if (rep.log_checked)
		n = snprintf(notes, NOTES_MAX, "checkpoint log %s: seq %lld is on the chain\n",
			     log_path, (long long)rep.log_seq);
	else
		n = snprintf(notes, NOTES_MAX, "checkpoint log %s: none (a rollback is not"
			     " checked against it)\n", log_path[0] ? log_path : "-");
	if (rep.token_checked && n > 0 && n < NOTES_MAX)
		snprintf(notes + n, (size_t)(NOTES_MAX - n), "token anchor: seq %lld is on the chain\n",
			 (long long)rep.token_seq);
	return CLI_EXIT_OK;
}

static int audit_verify(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key",                 required_argument, NULL, 'k' },
		{ "max-unchecked-events", required_argument, NULL, 'e' },
		{ "max-unchecked-hours", required_argument, NULL, 'H' },
		{ "checkpoint-log",      required_argument, NULL, 'l' },
		{ "help",                no_argument,       NULL, 'h' },
		HSM_CLI_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct verify_opts o = { .max_events = AUDIT_MAX_UNCHECKED_EVENTS,
				 .max_hours = AUDIT_MAX_UNCHECKED_HOURS };
	struct db_verify_result res;
	char notes[NOTES_MAX] = "";
	struct errbuf err;
	uint8_t *der = NULL;
	int der_len = 0, c, rc;
	struct db *db;
	char *end;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			o.key_path = optarg;
			break;
		case 'e':
			o.max_events = strtoll(optarg, &end, 10);
			if (*end || end == optarg || o.max_events < 1)
				return cli_usage_error("audit", "--max-unchecked-events needs a positive number");
			break;
		case 'H':
			o.max_hours = strtod(optarg, &end);
			if (*end || end == optarg || !(o.max_hours > 0))
				return cli_usage_error("audit", "--max-unchecked-hours needs a positive number");
			break;
		case 'l':
			o.log_path = optarg;
			break;
		case 'h':
			audit_usage(stdout);
			return CLI_EXIT_OK;
		default:
			if (!hsm_cli_option(&o.hc, c, optarg))
				return cli_usage_error("audit", "bad option for audit verify");
			o.hsm_given = 1;
		}
	}
	if (optind < argc)
		return cli_usage_error("audit", "unexpected argument '%s'", argv[optind]);
	if (!o.key_path && (o.hsm_given || o.log_path))
		return cli_usage_error("audit", "the anchors are checked with --key AUDIT-PUB.pem");
	if (o.key_path && (rc = load_pubkey_der(o.key_path, &der, &der_len)))
		return rc;
	errbuf_clear(&err);
	if (cli_db_open(ctx, "audit verify", &db)) {
		OPENSSL_free(der);
		return CLI_EXIT_FAIL;
	}
	rc = db_audit_verify_key(db, der, (size_t)der_len, &res, &err);
	if (rc == ST_ETAMPER)
		rc = cli_fail("audit verify: FAILED after %lld good events: %s",
			      (long long)res.events, err.msg);
	else if (rc)
		rc = cli_fail("audit verify: %s", err.msg);
	else if (o.key_path)
		rc = verify_anchored(db, &o, der, (size_t)der_len, notes);
	db_close(db);
	OPENSSL_free(der);
	if (rc)
		return rc;
	printf("OK %lld events, %lld checkpoints\n", (long long)res.events,
	       (long long)res.checkpoints);
	if (res.checkpoints)
		printf("checkpoint key sha256 %s\n", res.checkpoint_key);
	fputs(notes, stdout);
	return CLI_EXIT_OK;
}

/* A tampered database may hold anything: never send control bytes (terminal
 * escapes) to the screen. */
static void put_clean(const char *s)
{
	for (; s && *s; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static int print_event(const struct db_event *e, void *arg)
{
	(void)arg;
	printf("%lld\t", (long long)e->id);
	put_clean(e->station_id);
	printf("\t%lld\t", (long long)e->seq);
	put_clean(e->ts);
	putchar('\t');
	put_clean(e->kind);
	putchar('\t');
	put_clean(e->actor);
	putchar('\t');
	put_clean(e->detail);
	putchar('\n');
	return 0;
}

static int audit_log(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tail", required_argument, NULL, 't' },
		{ "help", no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct errbuf err;
	long long tail = 0;
	struct db *db;
	char *end;
	int c, rc;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			tail = strtoll(optarg, &end, 10);
			if (*end || tail < 1)
				return cli_usage_error("audit", "--tail needs a positive number");
			break;
		case 'h':
			audit_usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("audit", "bad option for audit log");
		}
	}
	if (optind < argc)
		return cli_usage_error("audit", "unexpected argument '%s'", argv[optind]);
	errbuf_clear(&err);
	if (cli_db_open(ctx, "audit log", &db))
		return CLI_EXIT_FAIL;
	rc = db_audit_foreach(db, tail, print_event, NULL, &err);
	db_close(db);
	if (rc)
		return cli_fail("audit log: %s", err.msg);
	return CLI_EXIT_OK;
}

int cmd_audit(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 2) {
		audit_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		audit_usage(stdout);
		return CLI_EXIT_OK;
	}
	/* getopt sees the verb's own arguments: argv[0] = verb. */
	optind = 0;    /* glibc: re-initialise getopt for the verb's argv */
	if (!strcmp(argv[1], "verify"))
		return audit_verify(ctx, argc - 1, argv + 1);
	if (!strcmp(argv[1], "log"))
		return audit_log(ctx, argc - 1, argv + 1);
	return cli_usage_error("audit", "unknown action '%s' (verify or log)", argv[1]);
}
