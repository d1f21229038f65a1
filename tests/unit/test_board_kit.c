/*
 * Unit tests: the manufacturer kit (fx-mfgkit) and the board tool (fx-board), run as
 * programs, their outputs checked with OpenSSL: the allowlist's signature, the
 * attestation chains, clones, fault knobs; and the samples in fixtures/data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fx_board.h"
#include "fx_crypto.h"
#include "fx_knobs.h"
#include "fx_local.h"
#include "fx_store.h"
#include "proto.h"

static char bin[1024];

/* Runs a shell command line; returns its exit status. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *slurp(const char *path, size_t *len)
{
	uint8_t *d;
	size_t n;
	char dir[512], *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	*slash = '\0';
	if (fx_store_read(dir, slash + 1, 1 << 24, &d, &n, NULL) != ST_OK)
		fail_msg("cannot read %s", path);
	if (len)
		*len = n;
	return (char *)d;
}

static X509 *cert_file(const char *path)
{
	size_t n;
	char *pem = slurp(path, &n);
	X509 *c[1];

	assert_int_equal(fx_crypto_certs_from_pem((uint8_t *)pem, n, c, 1, NULL), 1);
	free(pem);
	return c[0];
}

static int access_ok(const char *dir, const char *name)
{
	char p[1200];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, X_OK);
}

static int setup(void **state)
{
	const char *top = getenv("STATION_TOP"), *build = getenv("BUILD");

	(void)state;
	snprintf(bin, sizeof(bin), "%s/%s", top ? top : ".", build ? build : "build");
	return 0;
}

static void test_mfgkit_lot(void **state)
{
	X509 *ca, *att;
	EVP_PKEY *pub;
	EVP_MD_CTX *ctx;
	char *csv, *sig, *list, *line, *save = NULL, path[512], uid[4][32];
	size_t csv_len, sig_len;
	int rows = 0, n = 0;

	(void)state;
	assert_int_equal(run("%s/fx-mfgkit --lot LOT-7 --count 5 --out kit --model SB-100 "
			     "--hw-rev C --fault-mix '1*clone,1*foreign_attest,1*refuse_lock=1' "
			     "--knob flash_bps=0 >/dev/null", bin), 0);
	ca = cert_file("kit/mfr-ca.pem");
	pub = X509_get_pubkey(ca);

	/* the detached signature verifies over the CSV bytes */
	csv = slurp("kit/LOT-7.csv", &csv_len);
	sig = slurp("kit/LOT-7.csv.sig", &sig_len);
	ctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub), 1);
	assert_int_equal(EVP_DigestVerify(ctx, (uint8_t *)sig, sig_len, (uint8_t *)csv, csv_len), 1);
	EVP_MD_CTX_free(ctx);
	/* and not over anything else */
	csv[csv_len - 2] ^= 1;
	ctx = EVP_MD_CTX_new();
	EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub);
	assert_int_not_equal(EVP_DigestVerify(ctx, (uint8_t *)sig, sig_len, (uint8_t *)csv, csv_len), 1);
	EVP_MD_CTX_free(ctx);
	csv[csv_len - 2] ^= 1;

	/* header, then one row per genuine board: 4 (the clone adds none) */
	assert_memory_equal(csv, "unique_id,lot,model,hw_revision\n", 32);
	for (line = strtok_r(csv + 32, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char u[32], lot[32], model[32], rev[32];

		assert_int_equal(sscanf(line, "%31[^,],%31[^,],%31[^,],%31s", u, lot, model, rev), 4);
		assert_int_equal(strlen(u), 24);
		assert_int_equal(strspn(u, "0123456789ABCDEF"), 24);
		assert_string_equal(lot, "LOT-7");
		assert_string_equal(model, "SB-100");
		assert_string_equal(rev, "C");
		assert_true(rows < 4);
		snprintf(uid[rows++], sizeof(uid[0]), "%s", u);
	}
	assert_int_equal(rows, 4);

	/* every board: INFO's unique id, attestation chain to the CA (but the foreign one) */
	for (int i = 1; i <= 5; i++) {
		struct fx_board *b;
		struct fx_local h;
		struct proto_msg m, rep;
		uint8_t buf[PROTO_MAX_FRAME];
		const unsigned char *p;

		snprintf(path, sizeof(path), "kit/boards/LOT-7-%04d", i);
		assert_int_equal(fx_board_open(path, &b, NULL), ST_OK);
		fx_local_init(&h, b, &fx_board_ops);
		proto_msg_request(&m, PROTO_INFO, 0);
		assert_int_equal(fx_local_call(&h, &m, &rep, buf, 5000), 0);
		assert_int_equal(rep.status, PROTO_ST_OK);
		if (i == 3)   /* the clone: board 1's id */
			assert_string_equal(rep.u.info.uid, uid[0]);
		else
			assert_string_equal(rep.u.info.uid, uid[i < 3 ? i - 1 : i - 2]);
		p = rep.u.info.att_cert.p;
		att = d2i_X509(NULL, &p, (long)rep.u.info.att_cert.len);
		assert_non_null(att);
		assert_int_equal(X509_verify(att, pub) == 1, i != 4);
		X509_free(att);
		if (i == 5) {
			proto_msg_request(&m, PROTO_LOCK, 0);
			assert_int_equal(fx_local_call(&h, &m, &rep, buf, 5000), 0);
			assert_int_equal(rep.status, PROTO_ST_ESTATE);   /* blank board */
		}
		fx_local_free(&h);
		fx_board_close(b);
	}
	list = slurp("kit/LOT-7-boards.csv", NULL);
	for (char *q = list; (q = strstr(q, "refuse_lock=1")); q++)
		n++;
	assert_int_equal(n, 1);
	assert_non_null(strstr(list, "clone of LOT-7-0001"));
	free(list);

	/* a second lot reuses the CA; the same lot again is refused */
	assert_int_equal(run("%s/fx-mfgkit --lot LOT-8 --count 1 --out kit >/dev/null", bin), 0);
	{
		X509 *again = cert_file("kit/mfr-ca.pem");

		assert_int_equal(X509_cmp(again, ca), 0);
		X509_free(again);
	}
	assert_int_equal(run("%s/fx-mfgkit --lot LOT-8 --count 1 --out kit 2>/dev/null", bin), 1);
	/* usage errors */
	assert_int_equal(run("%s/fx-mfgkit --lot L --count 0 --out kit 2>/dev/null", bin), 2);
	assert_int_equal(run("%s/fx-mfgkit --lot 'a/b' --count 1 --out kit 2>/dev/null", bin), 2);
	assert_int_equal(run("%s/fx-mfgkit --lot L --count 1 --out kit --fault-mix 2*clone 2>/dev/null", bin), 2);
	assert_int_equal(run("%s/fx-mfgkit --lot L --count 1 --out kit --fault-mix bogus=1 2>/dev/null", bin), 2);
	assert_int_equal(run("%s/fx-mfgkit --help >/dev/null", bin), 0);

	free(csv);
	free(sig);
	EVP_PKEY_free(pub);
	X509_free(ca);
}

static void test_fx_board_tool(void **state)
{
	struct fx_board_view v;
	struct fx_knobs k;

	(void)state;
	assert_int_equal(run("%s/fx-board create b1 --ca-dir mfr --uid 00112233445566778899AABB "
			     "--model M1 --hw-rev 2 >/dev/null", bin), 0);
	assert_int_equal(fx_board_inspect("b1", &v, NULL), ST_OK);
	assert_string_equal(v.uid, "00112233445566778899AABB");
	assert_int_equal(v.state, PROTO_STATE_BLANK);
	assert_int_equal(run("%s/fx-board set b1 drop_reply get_csr drop_reply_count 3 flash_bps 0", bin), 0);
	assert_int_equal(fx_knobs_load("b1", &k, NULL), ST_OK);
	assert_int_equal(k.drop_reply.stage, PROTO_GET_CSR);
	assert_int_equal(k.drop_reply.count, 3);
	assert_int_equal(k.flash_bps, 0);
	assert_int_equal(run("%s/fx-board unset b1 drop_reply flash_bps", bin), 0);
	assert_int_equal(fx_knobs_load("b1", &k, NULL), ST_OK);
	assert_int_equal(k.drop_reply.stage, 0);
	assert_int_equal(k.flash_bps, 512 * 1024);
	assert_int_equal(run("%s/fx-board set b1 no_such_knob 1 2>/dev/null", bin), 2);
	assert_int_equal(run("%s/fx-board set b1 drop_reply 2>/dev/null", bin), 2);
	assert_int_equal(run("%s/fx-board set nowhere flash_bps 1 2>/dev/null", bin), 1);
	assert_int_equal(run("%s/fx-board mkimage fw.bin --version 2.1 --size 3000", bin), 0);
	assert_int_equal(run("%s/fx-board flash b1 fw.bin", bin), 0);
	assert_int_equal(fx_board_inspect("b1", &v, NULL), ST_OK);
	assert_int_equal(v.state, PROTO_STATE_FLASHED);
	assert_string_equal(v.fw_version, "2.1");
	assert_int_equal(run("%s/fx-board show b1 | grep -q '^state: flashed$'", bin), 0);
	assert_int_equal(run("%s/fx-board flash b1 mfr/mfr-ca.pem 2>/dev/null", bin), 1);
	assert_int_equal(run("%s/fx-board clone b1 b2", bin), 0);
	assert_int_equal(fx_board_inspect("b2", &v, NULL), ST_OK);
	assert_string_equal(v.uid, "00112233445566778899AABB");
	assert_int_equal(v.state, PROTO_STATE_BLANK);
	assert_int_equal(run("%s/fx-board wipe b1", bin), 0);
	assert_int_equal(fx_board_inspect("b1", &v, NULL), ST_OK);
	assert_int_equal(v.state, PROTO_STATE_BLANK);
	assert_int_equal(run("%s/fx-board create b3 --ca-dir mfr --uid nothex 2>/dev/null", bin), 1);
	assert_int_equal(run("%s/fx-board create b3 2>/dev/null", bin), 2);
	assert_int_equal(run("%s/fx-board frobnicate 2>/dev/null", bin), 2);
	assert_int_equal(run("%s/fx-board --help | grep -q mkimage", bin), 0);
}

static void test_samples(void **state)
{
	const char *top = getenv("STATION_TOP");
	char dir[512];
	const char *imgs[] = { "firmware-1.0.0.bin", "firmware-1.1.0.bin" };
	struct fx_knobs k;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/fixtures/data", top ? top : ".");
	for (int i = 0; i < 2; i++) {
		struct proto_fw_trailer t;
		uint8_t *img, h[32];
		size_t len;

		assert_int_equal(fx_store_read(dir, imgs[i], PROTO_FW_MAX_IMAGE, &img, &len, NULL), ST_OK);
		assert_int_equal(proto_fw_trailer_parse(img, len, &t, NULL), ST_OK);
		fx_crypto_sha256(img, t.body_len, h);
		assert_memory_equal(h, t.sha256, 32);
		free(img);
	}
	assert_int_equal(run("cd '%s' && sha256sum --quiet -c SHA256SUMS", dir), 0);
	/* knobs.example is a valid knobs file */
	assert_int_equal(run("mkdir -p ex && cp '%s/knobs.example' ex/knobs", dir), 0);
	assert_int_equal(fx_knobs_load("ex", &k, NULL), ST_OK);
	assert_int_equal(k.drop_reply.stage, PROTO_GET_CSR);
	assert_int_equal(k.power_loss_at.stage, PROTO_WRITE_CERT);
}

/* Debian's dfu-util against the simulated board, through libusb and the umockdev
 * carrier (fx-usbemu): download, read back identical, a corrupt image refused with
 * errFIRMWARE / errVERIFY and the previous image kept, then a good one again. */
static void test_dfu_util_interop(void **state)
{
	char script[2048];
	struct fx_board_view v;
	FILE *f;

	(void)state;
	if (run("command -v dfu-util >/dev/null") != 0 || access_ok(bin, "fx-usbemu") != 0)
		skip();
	assert_int_equal(run("%s/fx-board create du --ca-dir mfr >/dev/null && "
			     "%s/fx-board set du flash_bps 1048576 && "
			     "%s/fx-board mkimage fw1.bin --version 5.0.1 --size 300000 && "
			     "%s/fx-board mkimage fw2.bin --version 5.0.2 --size 70000 && "
			     "head -c 9000 fw2.bin > cut.bin && cp fw2.bin flip.bin && "
			     "printf 'X' | dd of=flip.bin bs=1 seek=100 conv=notrunc 2>/dev/null",
			     bin, bin, bin, bin), 0);
	snprintf(script, sizeof(script),
		 "set -e\n"
		 "dfu-util -d 1209:0001 -p 1-1 -D fw1.bin > dn1.log 2>&1\n"
		 "dfu-util -d 1209:0001 -p 1-1 -U up1.bin > up1.log 2>&1\n"
		 "cmp fw1.bin up1.bin\n"
		 "dfu-util -d 1209:0001 -p 1-1 -D cut.bin > cut.log 2>&1 || true\n"
		 "dfu-util -d 1209:0001 -p 1-1 -D flip.bin > flip.log 2>&1 || true\n"
		 "dfu-util -d 1209:0001 -p 1-1 -U up2.bin > up2.log 2>&1\n"
		 "cmp fw1.bin up2.bin\n"
		 "dfu-util -d 1209:0001 -p 1-1 -D fw2.bin > dn2.log 2>&1\n"
		 "dfu-util -d 1209:0001 -p 1-1 -U up3.bin > up3.log 2>&1\n"
		 "cmp fw2.bin up3.bin\n");
	f = fopen("interop.sh", "w");
	assert_non_null(f);
	fputs(script, f);
	fclose(f);
	if (run("timeout 120 %s/fx-usbemu --quiet --board 1-1=du -- bash interop.sh", bin) != 0) {
		run("tail -n 3 *.log >&2");
		fail_msg("dfu-util interop failed");
	}
	assert_int_equal(run("grep -q 'status(10) = ' cut.log"), 0);   /* errFIRMWARE */
	assert_int_equal(run("grep -q 'status(7) = ' flip.log"), 0);   /* errVERIFY */
	assert_int_equal(fx_board_inspect("du", &v, NULL), ST_OK);
	assert_int_equal(v.state, PROTO_STATE_FLASHED);
	assert_string_equal(v.fw_version, "5.0.2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mfgkit_lot),
		cmocka_unit_test(test_fx_board_tool),
		cmocka_unit_test(test_samples),
		cmocka_unit_test(test_dfu_util_interop),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
