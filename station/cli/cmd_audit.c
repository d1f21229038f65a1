/*
 * station audit verify [--key AUDIT-PUB.pem]
 * station audit log [--tail N]
 *
 * verify walks every station's hash chain and every signed checkpoint in the
 * database: "OK <n> events, <m> checkpoints" and exit 0, or the first bad row
 * (id, seq) and the kind of tampering, exit 1.
 */
#include "cli/cli.h"
#include "core/certfile.h"
#include "db/db.h"

#include <getopt.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void audit_usage(FILE *f)
{
	fprintf(f,
		"usage: station audit verify [--key AUDIT-PUB.pem]\n"
		"       station audit log [--tail N]\n"
		"\n"
		"verify  check the hash chain of every station in the database and the\n"
		"        signatures of its checkpoints; --key requires every checkpoint to be\n"
		"        signed by that public key (PEM).  Exit 0 intact, 1 tampered.\n"
		"log     list audit events (id, station, seq, time, kind, actor, detail),\n"
		"        oldest first; --tail N shows only the last N.\n");
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

static int audit_verify(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key",  required_argument, NULL, 'k' },
		{ "help", no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct db_verify_result res;
	struct errbuf err;
	const char *key_path = NULL;
	uint8_t *der = NULL;
	int der_len = 0, c, rc;
	struct db *db;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			key_path = optarg;
			break;
		case 'h':
			audit_usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("audit", "bad option for audit verify");
		}
	}
	if (optind < argc)
		return cli_usage_error("audit", "unexpected argument '%s'", argv[optind]);
	if (key_path && (rc = load_pubkey_der(key_path, &der, &der_len)))
		return rc;
	errbuf_clear(&err);
	if (cli_db_open(ctx, "audit verify", &db)) {
		OPENSSL_free(der);
		return CLI_EXIT_FAIL;
	}
	rc = db_audit_verify_key(db, der, (size_t)der_len, &res, &err);
	db_close(db);
	OPENSSL_free(der);
	if (rc == ST_ETAMPER)
		return cli_fail("audit verify: FAILED after %lld good events: %s",
				(long long)res.events, err.msg);
	if (rc)
		return cli_fail("audit verify: %s", err.msg);
	printf("OK %lld events, %lld checkpoints\n", (long long)res.events,
	       (long long)res.checkpoints);
	if (res.checkpoints)
		printf("checkpoint key sha256 %s\n", res.checkpoint_key);
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
