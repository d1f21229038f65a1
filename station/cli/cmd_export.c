/*
 * station export --lot LOT --format csv|jsonl|manifest|manifest-microchip|openhtf
 *                [--out FILE] [HSM-OPTIONS] [--ledger CONNINFO [--ledger-password-file F]]
 * station export verify MANIFEST --signer PUBKEY.pem [--ca CA.pem]
 * station export signer [--out FILE] HSM-OPTIONS
 *
 * The engineer's per-lot export: every unit of the lot (CSV or JSON lines),
 * or a manifest with one JWS per passed unit signed by the HSM audit key;
 * its offline verification; the signer's public key to verify with.
 * docs/engineer.md, "## Export".
 *
 * --out is written atomically (a temporary file in the same directory,
 * fsync'd, renamed over FILE, directory fsync'd): a reader never sees half an
 * export.  Mode 0644: an export holds no secret (certificates and public keys
 * are public, the manifest is signed) and it exists to be handed on.
 * Each export is an audit event (actor, lot, format, counts, SHA-256 and size
 * of the bytes written), appended before the file takes its name.
 * With --ledger the lot is every station's, read from the factory ledger
 * after the whole ledger verified (app/factory_lot.h), through the same
 * db_export_lot(); each row keeps its station's id and unit id.  The export
 * is still the engineer's at this station: role, verify and audit event are
 * the local database's.
 */
#include "app/factory_lot.h"
#include "cli/cli.h"
#include "cli/cli_ledger.h"
#include "cli/cli_role.h"
#include "core/certfile.h"
#include "core/fileio.h"
#include "core/ids.h"
#include "db/db.h"
#include "db/export.h"
#include "export/export_fmt.h"
#include "hsm/hsm.h"
#include "cli/hsm_cli.h"
#include "export/jose.h"
#include "export/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

static void export_usage(FILE *f)
{
	fprintf(f,
		"usage: station export --lot LOT --format csv|jsonl|manifest|manifest-microchip|openhtf\n"
		"                      [--out FILE] [HSM-OPTIONS] [LEDGER-OPTIONS]\n"
		"       station export verify MANIFEST --signer PUBKEY.pem [--ca CA.pem]\n"
		"       station export signer [--out FILE] HSM-OPTIONS\n"
		"\n"
		"Export every unit of a lot, passed and failed: csv (one row per unit, fixed\n"
		"header) or jsonl (one object per unit, then a summary with the yield).\n"
		"manifest: one JWS (ES256, signed by the HSM audit key) per passed unit with\n"
		"its certificate chain and public key; needs the HSM options.\n"
		"manifest-microchip: the same entries in the Microchip Trust Platform layout\n"
		"(a flattened JWS per device, header.uniqueId, x5t#S256).  openhtf: one\n"
		"OpenHTF test record (JSON) per unit, one per line.  Written to\n"
		"stdout, or atomically to --out FILE (mode 0644).  Each export is audited.\n"
		"\n"
		"verify: check a manifest (either layout) offline against the signer's public\n"
		"key (PEM) and, with --ca, that every certificate chains to that CA certificate.\n"
		"signer: write the audit key's public key (PEM) to verify manifests with.\n"
		"\n"
		"With --ledger: the lot of every station, from the factory ledger, which must\n"
		"verify first (docs/factory.md); unit ids stay each station's own.\n"
		"\n" HSM_CLI_USAGE CLI_LEDGER_USAGE_EXPLICIT);
}

/* ---- the output file ---------------------------------------------------- */

struct outfile {
	const char *path;          /* NULL: stdout */
	struct fileio_atomic a;
	FILE *f;
};

static int out_open(struct outfile *o, const char *path, struct errbuf *err)
{
	int rc;

	memset(o, 0, sizeof(*o));
	o->path = path;
	if (!path) {
		o->f = stdout;
		return ST_OK;
	}
	if ((rc = fileio_atomic_open(&o->a, path, 0644, err)) != ST_OK)
		return rc;
	o->f = o->a.f;
	return ST_OK;
}

/* Makes the bytes durable under the temporary name (before the audit event). */
static int out_sync(struct outfile *o, struct errbuf *err)
{
	if (!o->path)
		return fflush(stdout) == 0 ? ST_OK :
			errbuf_set(err, ST_EIO, "write stdout: %s", strerror(errno));
	return fileio_atomic_sync(&o->a, err);
}

/* Gives the file its name (rc == ST_OK) or removes it. */
static int out_close(struct outfile *o, int rc, struct errbuf *err)
{
	if (!o->path)
		return rc;
	if (rc != ST_OK) {
		fileio_atomic_abort(&o->a);
		return rc;
	}
	return fileio_atomic_commit(&o->a, err);
}

/* ---- walking the lot ---------------------------------------------------- */

struct walk {
	enum export_format fmt;
	const char *lot;
	FILE *f;
	const struct db_export_counts *counts;
	const struct manifest_signer *signer;
	X509 *ca;
	X509 *signer_cert;         /* manifest-microchip: the audit key's, issued by the CA */
	char org[128];
	struct manifest_writer mw;
	int started;
	const struct factory_lot *fl;   /* the lot read from the ledger, or NULL */
	struct errbuf *err;
};

static int walk_start(struct walk *w)
{
	w->started = 1;
	switch (w->fmt) {
	case EXPORT_CSV:
		return export_csv_header(w->f, w->err);
	case EXPORT_MANIFEST:
	case EXPORT_MANIFEST_MICROCHIP:
		/* one entry per board as provisioned now: not a PASS a rework superseded */
		if (w->counts->pass - w->counts->superseded < 1) {
			w->started = 0;
			return errbuf_set(w->err, ST_ENOTFOUND,
					  "lot %s has no passed unit: there is nothing to sign", w->lot);
		}
		if (w->fmt == EXPORT_MANIFEST_MICROCHIP)
			return manifest_begin_microchip(&w->mw, w->f, w->signer, w->ca,
							w->signer_cert, w->org,
							w->counts->pass - w->counts->superseded,
							w->err);
		return manifest_begin(&w->mw, w->f, w->signer, w->ca,
				      w->counts->pass - w->counts->superseded, w->err);
	default:
		return ST_OK;
	}
}

static int walk_row(const struct db_export_row *row, void *ctx)
{
	struct walk *w = ctx;
	struct db_export_row mapped;
	const struct db_export_row *r = row;
	int rc;

	if (w->fl) {   /* the scratch id back to the station's own */
		mapped = *row;
		mapped.unit_id = factory_lot_unit_id(w->fl, row->unit_id);
		r = &mapped;
	}
	if (!w->started && (rc = walk_start(w)))
		return rc;
	switch (w->fmt) {
	case EXPORT_CSV:
		return export_csv_row(w->f, r, w->err);
	case EXPORT_JSONL:
		return export_jsonl_row(w->f, r, w->err);
	case EXPORT_OPENHTF:
		return export_openhtf_row(w->f, r, w->err);
	default:
		return strcmp(r->status, "pass") || r->superseded_by ? ST_OK :
			manifest_add(&w->mw, r, w->err);
	}
}

static int walk_end(struct walk *w, const char *lot, int rc)
{
	if (rc == ST_OK && !w->started)
		rc = walk_start(w);
	if (EXPORT_IS_MANIFEST(w->fmt) && w->started) {
		struct errbuf e2;
		int rc2 = manifest_end(&w->mw, rc ? &e2 : w->err);

		return rc ? rc : rc2;
	}
	if (rc == ST_OK && w->fmt == EXPORT_JSONL)
		rc = export_jsonl_summary(w->f, lot, w->counts, w->err);
	return rc;
}

static int audit_export(struct db *db, const char *actor, const char *lot,
			enum export_format fmt, const struct db_export_counts *c,
			const struct export_sink *s, const char *sha, const char *out,
			const struct walk *w, struct errbuf *err)
{
	json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:s, s:I, s:s}", "lot", lot,
			      "format", export_format_name(fmt), "units", (json_int_t)c->units,
			      "pass", (json_int_t)c->pass, "sha256", sha,
			      "bytes", (json_int_t)s->bytes, "out", out ? out : "-");
	char *detail;
	int rc;

	if (j && w->fl)    /* every station's units, from the factory ledger */
		json_object_set_new(j, "ledger", json_true());
	if (j && EXPORT_IS_MANIFEST(fmt)) {
		json_object_set_new(j, "entries", json_integer(w->mw.written));
		json_object_set_new(j, "manifest_id", json_string(w->mw.id));
		json_object_set_new(j, "signer_kid", json_string(w->mw.kid));
		/* the certificate issued for this export names the signer in the file */
		if (fmt == EXPORT_MANIFEST_MICROCHIP)
			json_object_set_new(j, "signer_x5t_s256", json_string(w->mw.signer_x5t));
	}
	detail = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	if (!detail)
		return errbuf_set(err, ST_EINVAL, "the export's audit event cannot be encoded (--out not UTF-8?)");
	rc = db_audit_append(db, "export", actor, detail, NULL, err);
	free(detail);
	return rc;
}

static void print_summary(FILE *f, const char *lot, enum export_format fmt,
			  const struct db_export_counts *c, const char *sha, const char *out)
{
	double y = export_yield(c), fpy = export_first_pass_yield(c);

	fprintf(f, "exported lot %s (%s): %lld units: %lld pass", lot, export_format_name(fmt),
		(long long)c->units, (long long)c->pass);
	if (c->superseded)
		fprintf(f, " (%lld superseded by rework)", (long long)c->superseded);
	fprintf(f, ", %lld fail, %lld reject, %lld interrupted, %lld in progress; ",
		(long long)c->fail, (long long)c->reject, (long long)c->interrupted,
		(long long)c->in_progress);
	if (y < 0)
		fprintf(f, "yield -");
	else
		fprintf(f, "yield %.1f%% (%lld of %lld boards on the allowlist)", 100 * y,
			(long long)c->boards_passed, (long long)c->boards);
	if (fpy >= 0)
		fprintf(f, ", first-pass yield %.1f%%", 100 * fpy);
	/* boards not on the lot's allowlist never count in its yield */
	fprintf(f, "; %lld strangers (%lld units) not counted", (long long)c->strangers,
		(long long)c->stranger_units);
	fprintf(f, "; sha256 %s -> %s\n", sha, out ? out : "stdout");
}

static int hsm_signer_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t **sig,
			   size_t *sig_len, struct errbuf *err)
{
	return hsm_audit_sign(ctx, msg, len, sig, sig_len, err);
}

/* The HSM options: a bad or incomplete configuration is a usage error. */
static int signer_config(const struct hsm_cli *hc, struct hsm_config *cfg, const char *cmd)
{
	struct errbuf err;

	if (hsm_cli_config(hc, cfg, &err) != ST_OK)
		return cli_usage_error(cmd, "%s", err.msg);
	if (!cfg->audit_key[0])
		return cli_usage_error(cmd, "no audit key (audit_key in [hsm] or --audit-key): it signs the manifest");
	return CLI_EXIT_OK;
}

/* Opens the token and wraps its audit key as a manifest signer. */
static int open_signer(const struct hsm_config *cfg, struct hsm **h, struct manifest_signer *s,
		       const char *cmd)
{
	struct errbuf err;
	const uint8_t *der;
	const unsigned char *p;
	size_t len;
	char kid[64];

	if (hsm_open(cfg, h, &err) != ST_OK)
		return cli_fail("%s: %s", cmd, err.msg);
	if (hsm_audit_pubkey(*h, &der, &len) != ST_OK ||
	    !(p = der, s->pub = d2i_PUBKEY(NULL, &p, (long)len))) {
		errbuf_set(&err, ST_ECRYPTO, "token '%s': cannot read the audit key's public key",
			   hsm_token_label(*h));
	} else if (jose_kid(s->pub, kid, &err) != ST_OK) {
		errbuf_prefix(&err, "audit key '%s': ", hsm_audit_key_label(*h));
		EVP_PKEY_free(s->pub);
		s->pub = NULL;
	}
	if (!s->pub) {
		hsm_close(*h);
		*h = NULL;
		return cli_fail("%s: %s", cmd, err.msg);
	}
	s->sign = hsm_signer_sign;
	s->ctx = *h;
	return CLI_EXIT_OK;
}

/* The Microchip layout names its signer by certificate: the CA issues one
 * for the audit key, signed in the token, for this export. */
static int make_signer_cert(struct hsm *h, const struct manifest_signer *signer, X509 **out,
			    struct errbuf *err)
{
	char cn[128];
	int touched = 0, rc;

	snprintf(cn, sizeof(cn), "manifest signer (%s)", hsm_audit_key_label(h));
	if (!(*out = manifest_signer_cert_new(signer->pub, hsm_ca_cert(h), cn)))
		return errbuf_set(err, ST_ECRYPTO, "cannot build the manifest signer's certificate");
	if ((rc = hsm_sign_x509(h, *out, &touched, err))) {
		X509_free(*out);
		*out = NULL;
		return errbuf_prefix(err, "sign the manifest signer's certificate: ");
	}
	return ST_OK;
}

static int do_export(struct cli_ctx *ctx, const char *lot, enum export_format fmt,
		     const char *out, const struct hsm_cli *hc, const struct ledger_config *lc)
{
	struct factory_lot *fl = NULL;
	struct ledger *l = NULL;
	struct db *src;
	struct manifest_signer signer = { 0 };
	struct hsm_config cfg;
	struct db_export_counts counts;
	struct export_sink sink;
	struct outfile o;
	struct errbuf err;
	struct walk w;
	struct hsm *h = NULL;
	struct db *db = NULL;
	X509 *signer_cert = NULL;
	char sha[65] = "";
	FILE *hf;
	int rc;

	if (EXPORT_IS_MANIFEST(fmt) && (rc = signer_config(hc, &cfg, "export")))
		return rc;
	if (cli_db_open(ctx, "export", &db))
		return CLI_EXIT_FAIL;
	/* exporting is the engineer's (before the token is opened) */
	if (cli_role_require(ctx, db, DB_ROLE_ENGINEER, "export") ||
	    cli_db_verified(db, "export")) {
		db_close(db);
		return CLI_EXIT_FAIL;
	}
	src = db;
	if (lc) {      /* every station's lot, from a ledger that verifies */
		if ((rc = ledger_open(lc, 1, &l, &err)) ||
		    (rc = factory_lot_open(l, lot, &fl, &err)))
			goto out;
		src = factory_lot_db(fl);
	}
	/* an unknown lot is refused before the token is opened or a file made */
	if ((rc = db_export_lot(src, lot, &counts, NULL, NULL, &err)) == ST_ENOTFOUND && !fl) {
		rc = cli_unknown_lot(db, "export", lot);
		db_close(db);
		return rc;
	}
	if (rc != ST_OK)
		goto out;
	if (EXPORT_IS_MANIFEST(fmt) && (rc = open_signer(&cfg, &h, &signer, "export"))) {
		factory_lot_close(fl);
		ledger_close(l);
		db_close(db);
		return rc;
	}
	if (fmt == EXPORT_MANIFEST_MICROCHIP && (rc = make_signer_cert(h, &signer, &signer_cert, &err)))
		goto out;
	if ((rc = out_open(&o, out, &err)) != ST_OK)
		goto out;
	if (!(hf = export_sink_open(&sink, o.f))) {
		rc = errbuf_set(&err, ST_ENOMEM, "out of memory");
		out_close(&o, rc, &err);
		goto out;
	}
	memset(&w, 0, sizeof(w));
	w.fmt = fmt;
	w.lot = lot;
	w.f = hf;
	w.counts = &counts;
	w.signer = &signer;
	w.ca = h ? hsm_ca_cert(h) : NULL;
	w.signer_cert = signer_cert;
	if (w.ca)
		manifest_ca_org(w.ca, w.org, sizeof(w.org));
	w.fl = fl;
	w.err = &err;
	rc = db_export_lot(src, lot, &counts, walk_row, &w, &err);
	rc = walk_end(&w, lot, rc);
	if (rc == ST_OK)
		rc = export_sink_close(hf, &sink, sha, &err);
	else	/* cleanup on a path that already failed: its error is the one to report */
		ST_IGNORE(export_sink_close(hf, &sink, sha, NULL));
	if (rc == ST_OK)
		rc = out_sync(&o, &err);
	if (rc == ST_OK)
		rc = audit_export(db, ctx->actor, lot, fmt, &counts, &sink, sha, out, &w, &err);
	rc = out_close(&o, rc, &err);
	if (rc == ST_OK)
		print_summary(out ? stdout : stderr, lot, fmt, &counts, sha, out);
out:
	factory_lot_close(fl);
	ledger_close(l);
	db_close(db);
	EVP_PKEY_free(signer.pub);
	X509_free(signer_cert);
	if (h)
		hsm_close(h);
	return rc == ST_OK ? CLI_EXIT_OK : cli_fail("export: %s", err.msg);
}

/* ---- export verify ------------------------------------------------------ */

static int do_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "signer", required_argument, NULL, 's' },
		{ "ca",     required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const char *signer_path = NULL, *ca_path = NULL, *path = NULL;
	struct manifest_summary sum;
	struct errbuf err;
	EVP_PKEY *signer = NULL;
	X509 *ca = NULL;
	int c, rc;

	optind = 0;
	/* MANIFEST may come before or after the options */
	for (;;) {
		if ((c = getopt_long(argc, argv, "+", opts, NULL)) == -1) {
			if (optind >= argc)
				break;
			if (path)
				return cli_usage_error("export verify", "one MANIFEST file, not two");
			path = argv[optind++];
			continue;
		}
		if (c == 's')
			signer_path = optarg;
		else if (c == 'c')
			ca_path = optarg;
		else
			return cli_usage_error("export verify", "bad option");
	}
	if (!path)
		return cli_usage_error("export verify", "one MANIFEST file is needed");
	if (!signer_path)
		return cli_usage_error("export verify", "--signer PUBKEY.pem is needed (`station export signer`)");
	if (certfile_load_pubkey(signer_path, CERTFILE_MAX, &signer, &err))
		return cli_fail("export verify: %s", err.msg);
	if (ca_path && certfile_load(ca_path, CERTFILE_MAX, &ca, NULL, NULL, &err)) {
		EVP_PKEY_free(signer);
		return cli_fail("export verify: %s", err.msg);
	}
	rc = manifest_verify_file(path, signer, ca, &sum, &err);
	EVP_PKEY_free(signer);
	X509_free(ca);
	if (rc != ST_OK)
		return cli_fail("export verify: %s", err.msg);
	if (sum.layout == MANIFEST_MICROCHIP)
		printf("OK %s: %lld entries (Microchip Trust Platform layout), group %s, "
		       "signer kid %s%s\n", path, (long long)sum.entries, sum.lot, sum.kid,
		       ca ? ", CA trusted" : "");
	else
		printf("OK %s: %lld entries, lot %s, manifest %s, signer kid %s%s\n", path,
		       (long long)sum.entries, sum.lot, sum.id, sum.kid, ca ? ", CA trusted" : "");
	return CLI_EXIT_OK;
}

/* ---- export signer ------------------------------------------------------ */

static int do_signer(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		HSM_CLI_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct manifest_signer s = { 0 };
	struct hsm_config cfg;
	struct hsm_cli hc = { 0 };
	struct errbuf err;
	struct outfile o;
	struct hsm *h = NULL;
	const char *out = NULL;
	char kid[64];
	int c, rc;

	optind = 0;
	while ((c = getopt_long(argc, argv, "+o:", opts, NULL)) != -1) {
		if (hsm_cli_option(&hc, c, optarg))
			continue;
		if (c == 'o')
			out = optarg;
		else
			return cli_usage_error("export signer", "bad option");
	}
	if (optind < argc)
		return cli_usage_error("export signer", "unexpected argument '%s'", argv[optind]);
	if ((rc = signer_config(&hc, &cfg, "export signer")) ||
	    (rc = open_signer(&cfg, &h, &s, "export signer")))
		return rc;
	if ((rc = jose_kid(s.pub, kid, &err)) == ST_OK && (rc = out_open(&o, out, &err)) == ST_OK) {
		if (PEM_write_PUBKEY(o.f, s.pub) != 1)
			rc = errbuf_set(&err, ST_EIO, "cannot write the public key");
		if (rc == ST_OK)
			rc = out_sync(&o, &err);
		rc = out_close(&o, rc, &err);
	}
	if (rc == ST_OK && out)
		printf("wrote %s: audit key '%s' of token '%s', kid %s\n", out,
		       hsm_audit_key_label(h), hsm_token_label(h), kid);
	EVP_PKEY_free(s.pub);
	hsm_close(h);
	return rc == ST_OK ? CLI_EXIT_OK : cli_fail("export signer: %s", err.msg);
}

int cmd_export(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lot",    required_argument, NULL, 'l' },
		{ "format", required_argument, NULL, 'f' },
		{ "out",    required_argument, NULL, 'o' },
		{ "help",   no_argument,       NULL, 'h' },
		HSM_CLI_LONG_OPTIONS,
		CLI_LEDGER_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct hsm_cli hc = { 0 };
	struct cli_ledger lo = { 0 };
	struct ledger_config lc;
	const char *lot = NULL, *out = NULL;
	int c, fmt = -1, hsm_opts = 0, ledger;

	if (cli_wants_help(argc, argv)) {
		export_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (argc >= 2 && !strcmp(argv[1], "verify"))
		return do_verify(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "signer"))
		return do_signer(argc - 1, argv + 1);
	while ((c = getopt_long(argc, argv, "+l:f:o:h", opts, NULL)) != -1) {
		if (hsm_cli_option(&hc, c, optarg)) {
			hsm_opts = 1;
			continue;
		}
		if (cli_ledger_option(&lo, c, optarg))
			continue;
		switch (c) {
		case 'l':
			lot = optarg;
			break;
		case 'f':
			if ((fmt = export_format_parse(optarg)) < 0)
				return cli_usage_error("export", "--format must be csv, jsonl, manifest, manifest-microchip or openhtf, not '%s'",
						       optarg);
			break;
		case 'o':
			out = optarg;
			break;
		default:
			return cli_usage_error("export", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("export", "unexpected argument '%s'", argv[optind]);
	if (!lot || fmt < 0)
		return cli_usage_error("export", "--lot LOT and --format csv|jsonl|manifest|manifest-microchip|openhtf are needed");
	if (out && !*out)
		return cli_usage_error("export", "--out needs a file name");
	if (hsm_opts && !EXPORT_IS_MANIFEST(fmt))
		return cli_usage_error("export", "HSM options are for the manifest formats only");
	if (!ids_lot_valid(lot))
		return cli_fail("export: lot name \"%.64s\" is not valid: 1..64 printable characters "
				"without spaces, commas or quotes", lot);
	/* only an explicit --ledger: $STATION_LEDGER configures the line, not this */
	if (!lo.conninfo && lo.password_file)
		return cli_usage_error("export", "--ledger-password-file without --ledger");
	if (lo.conninfo && (ledger = cli_ledger_config(&lo, "export", ctx->station_id, &lc)) <= 0)
		return ledger < 0 ? CLI_EXIT_USAGE : cli_usage_error("export", "--ledger is empty");
	return do_export(ctx, lot, (enum export_format)fmt, out, &hc, lo.conninfo ? &lc : NULL);
}
