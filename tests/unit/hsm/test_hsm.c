/*
 * Unit tests: hsm/ against real SoftHSM tokens made in the scratch directory
 * (one EC P-256 token and one P-384 token per run, shared by the tests).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/str.h"
#include "hsm/hsm.h"
#include "hsm/hsm_module.h"
#include "tests/rig/hsm_test_util.h"
#include "hsm/issue.h"

static struct hsm_config cfg256, cfg384, cfgrsa;

static int group_setup(void **state)
{
	(void)state;
	if (tu_make_token("tok256", "ec-p256", &cfg256) || tu_make_token("tok384", "ec-p384", &cfg384) ||
	    tu_make_token("tokrsa", "rsa-3072", &cfgrsa))
		return -1;
	return 0;
}

static int write_file(const char *path, const char *s, int mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd < 0)
		return -1;
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s)) {
		close(fd);
		return -1;
	}
	fchmod(fd, (mode_t)mode);
	return close(fd);
}

/* ---- token ------------------------------------------------------------- */

static void test_open_preflight_and_audit_key(void **state)
{
	const char msg[] = "station-audit-checkpoint-v1\nS1\n7\n00\n";
	const uint8_t *pub;
	const unsigned char *p;
	uint8_t *sig;
	size_t siglen, publen;
	EVP_PKEY *pk;
	EVP_MD_CTX *mc;
	struct errbuf e;
	struct hsm *h256, *h2 = NULL;

	(void)state;
	assert_int_equal(hsm_open(&cfg256, &h256, &e), ST_OK);
	/* PKCS#11 state is per process: a second open is refused */
	assert_int_equal(hsm_open(&cfg256, &h2, &e), ST_EBUSY);
	assert_null(h2);
	assert_non_null(hsm_ca_cert(h256));
	assert_ptr_equal(hsm_ca_md(h256), EVP_sha256());
	assert_string_equal(hsm_token_label(h256), "tok256");
	assert_int_equal(hsm_audit_sign(h256, (const uint8_t *)msg, strlen(msg), &sig, &siglen, &e), ST_OK);
	assert_int_equal(hsm_audit_pubkey(h256, &pub, &publen), ST_OK);
	p = pub;
	pk = d2i_PUBKEY(NULL, &p, (long)publen);
	assert_non_null(pk);
	mc = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(mc, NULL, EVP_sha256(), NULL, pk), 1);
	assert_int_equal(EVP_DigestVerify(mc, sig, siglen, (const uint8_t *)msg, strlen(msg)), 1);
	/* a changed message must not verify */
	assert_int_equal(EVP_DigestVerifyInit(mc, NULL, EVP_sha256(), NULL, pk), 1);
	assert_int_not_equal(EVP_DigestVerify(mc, sig, siglen, (const uint8_t *)"x", 1), 1);
	EVP_MD_CTX_free(mc);
	EVP_PKEY_free(pk);
	OPENSSL_free(sig);
	hsm_close(h256);
	/* the P-384 CA signs with SHA-384 */
	assert_int_equal(hsm_open(&cfg384, &h256, &e), ST_OK);
	assert_ptr_equal(hsm_ca_md(h256), EVP_sha384());
	hsm_close(h256);
}

static void test_wrong_pin_one_attempt(void **state)
{
	struct hsm_config c = cfg256;
	struct hsm *h = NULL;
	struct errbuf e;
	char path[1024];
	unsigned long before;

	(void)state;
	snprintf(path, sizeof(path), "%s/wrong-pin", tu_scratch());
	assert_int_equal(write_file(path, "000000000000\n", 0600), 0);
	assert_int_equal(str_copy(c.pin_file, sizeof(c.pin_file), path), 0);
	before = hsm_login_attempts();
	assert_int_equal(hsm_open(&c, &h, &e), ST_EPIN);
	assert_null(h);
	assert_non_null(strstr(e.msg, "wrong PIN"));
	assert_null(strstr(e.msg, "000000000000"));
	/* exactly one login attempt: no retry storm against the PIN counter */
	assert_int_equal(hsm_login_attempts() - before, 1);
	/* the right PIN still works: the token is not locked */
	assert_int_equal(hsm_open(&cfg256, &h, &e), ST_OK);
	hsm_close(h);
}

static void test_missing_token(void **state)
{
	struct hsm_config c = cfg256;
	struct hsm *h = NULL;
	struct errbuf e;

	(void)state;
	snprintf(c.token, sizeof(c.token), "no-such-token");
	assert_int_equal(hsm_open(&c, &h, &e), ST_ENOTFOUND);
	assert_non_null(strstr(e.msg, "no-such-token"));
	c = cfg256;
	snprintf(c.ca_key, sizeof(c.ca_key), "no-such-key");
	assert_int_equal(hsm_open(&c, &h, &e), ST_ENOTFOUND);
	assert_non_null(strstr(e.msg, "no-such-key"));
	c = cfg256;
	snprintf(c.module, sizeof(c.module), "/nonexistent/module.so");
	assert_int_equal(hsm_open(&c, &h, &e), ST_ENOTFOUND);
	assert_non_null(strstr(e.msg, "/nonexistent/module.so"));
}

/* Issue 12: the module path is code run with the PIN.  SoftHSM's own module,
 * copied where a database row could point, is refused before dlopen; the
 * station configuration file may name it, but only a file nobody else can
 * write, in a directory nobody else can write. */
static void test_module_rule(void **state)
{
	struct hsm_config c = cfg256;
	struct hsm *h = NULL;
	struct errbuf e;
	char dir[300], mod[340], conf[340], text[400], cmd[800];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/mods", tu_scratch());
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(mod, sizeof(mod), "%s/libsofthsm2.so", dir);
	snprintf(cmd, sizeof(cmd), "cp %s %s", HSM_DEFAULT_MODULE, mod);
	assert_int_equal(system(cmd), 0);
	snprintf(conf, sizeof(conf), "%s/station.conf", dir);
	setenv(HSM_STATION_CONF_ENV, conf, 1);

	snprintf(c.module, sizeof(c.module), "%s", mod);
	assert_int_equal(hsm_open(&c, &h, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "is not allowed"));
	/* a path that walks out of an allowed directory is judged where it lands */
	snprintf(c.module, sizeof(c.module), "/usr/lib/softhsm/../../..%s", mod);
	assert_int_equal(hsm_open(&c, &h, &e), ST_EPOLICY);

	snprintf(text, sizeof(text), "[station]\npkcs11_module = %s\n", mod);
	assert_int_equal(write_file(conf, text, 0600), 0);
	snprintf(c.module, sizeof(c.module), "%s", mod);
	assert_int_equal(hsm_open(&c, &h, &e), ST_OK);
	hsm_close(h);
	h = NULL;
	/* the same file, writable by others, names nothing */
	assert_int_equal(chmod(conf, 0622), 0);
	assert_int_equal(hsm_open(&c, &h, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "writable by"));
	assert_int_equal(chmod(conf, 0600), 0);
	assert_int_equal(chmod(dir, 0770), 0);
	assert_int_equal(hsm_open(&c, &h, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "writable by its group"));
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(write_file(conf, "[station]\nmodule = /x.so\n", 0600), 0);
	assert_int_equal(hsm_open(&c, &h, &e), ST_EINVAL);
	assert_non_null(strstr(e.msg, "unknown key 'module'"));
	unsetenv(HSM_STATION_CONF_ENV);
	/* SoftHSM where Debian installs it needs no configuration */
	c = cfg256;
	assert_int_equal(hsm_open(&c, &h, &e), ST_OK);
	hsm_close(h);
}

static void test_key_by_id(void **state)
{
	struct hsm_config c = cfg256;
	struct hsm *h = NULL;
	struct errbuf e;

	(void)state;
	c.ca_key[0] = '\0';
	assert_int_equal(hsm_config_set(&c, "ca_key_id", "01", &e), ST_OK);
	assert_int_equal(hsm_open(&c, &h, &e), ST_OK);
	hsm_close(h);
	assert_int_equal(hsm_config_set(&c, "ca_key_id", "7", &e), ST_EINVAL);
}

/* The CA key of one token with the certificate of another: refused at open. */
static void test_cert_key_mismatch(void **state)
{
	struct hsm_config c = cfg256;
	struct hsm *h = NULL;
	struct errbuf e;
	EVP_PKEY *k = tu_key("P-256");
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	char path[1024];
	FILE *f;

	(void)state;
	/* a CA certificate, same name as the real one, for a key not in the token */
	assert_true(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
					       (const unsigned char *)"Station Test CA", -1, -1, 0));
	assert_true(X509_set_version(x, X509_VERSION_3) && X509_set_subject_name(x, n) &&
		    X509_set_issuer_name(x, n) && X509_set_pubkey(x, k) &&
		    X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
		    X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	{
		X509V3_CTX ctx;
		X509_EXTENSION *ext;

		X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
		assert_non_null(ext);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	snprintf(path, sizeof(path), "%s/other-ca.pem", tu_scratch());
	f = fopen(path, "w");
	assert_non_null(f);
	PEM_write_X509(f, x);
	fclose(f);
	assert_int_equal(str_copy(c.ca_cert, sizeof(c.ca_cert), path), 0);
	assert_int_equal(hsm_open(&c, &h, &e), ST_ECRYPTO);
	assert_null(h);
	assert_non_null(strstr(e.msg, "does not match"));
	/* the P-384 token's certificate with the P-256 token's key: also refused */
	c = cfg256;
	snprintf(c.ca_cert, sizeof(c.ca_cert), "%s", cfg384.ca_cert);
	assert_int_equal(hsm_open(&c, &h, &e), ST_ECRYPTO);
	X509_free(x);
	X509_NAME_free(n);
	EVP_PKEY_free(k);
}

static void test_pin_sources(void **state)
{
	struct hsm_config c = cfg256;
	struct hsm *h = NULL;
	struct errbuf e;
	char pin[HSM_PIN_MAX], path[1024];
	FILE *f;

	(void)state;
	f = fopen(cfg256.pin_file, "r");
	assert_non_null(f);
	assert_non_null(fgets(pin, sizeof(pin), f));
	fclose(f);
	/* from an environment variable, consumed on use */
	c.pin_file[0] = '\0';
	assert_int_equal(hsm_config_set(&c, "pin_env", "TEST_HSM_PIN", &e), ST_OK);
	setenv("TEST_HSM_PIN", pin, 1);
	assert_int_equal(hsm_open(&c, &h, &e), ST_OK);
	hsm_close(h);
	assert_null(getenv("TEST_HSM_PIN"));
	assert_int_equal(hsm_open(&c, &h, &e), ST_EPIN);
	assert_non_null(strstr(e.msg, "TEST_HSM_PIN"));
	/* a PIN file others can read is refused before any login */
	snprintf(path, sizeof(path), "%s/pin-0644", tu_scratch());
	assert_int_equal(write_file(path, pin, 0644), 0);
	c = cfg256;
	assert_int_equal(str_copy(c.pin_file, sizeof(c.pin_file), path), 0);
	assert_int_equal(hsm_pin_read(&c, pin, &e), ST_EPIN);
	assert_non_null(strstr(e.msg, "chmod 600"));
	assert_int_equal(pin[0], '\0');
	/* no source and no prompt */
	c = cfg256;
	c.pin_file[0] = '\0';
	c.pin_prompt = 0;
	assert_int_equal(hsm_open(&c, &h, &e), ST_EPIN);
	OPENSSL_cleanse(pin, sizeof(pin));
}

static void test_config_ini(void **state)
{
	struct hsm_config c;
	struct errbuf e;
	char path[1024];

	(void)state;
	snprintf(path, sizeof(path), "%s/bad.ini", tu_scratch());
	assert_int_equal(write_file(path, "[other]\nx = 1\n[hsm]\ntoken = t\nbogus = 2\n", 0600), 0);
	hsm_config_init(&c);
	assert_int_equal(hsm_config_load_ini(&c, path, &e), ST_ENOTFOUND);
	assert_non_null(strstr(e.msg, "bad.ini:5"));
	assert_non_null(strstr(e.msg, "bogus"));
	assert_int_equal(write_file(path, "[hsm]\ntoken = t\npin_prompt = maybe\n", 0600), 0);
	hsm_config_init(&c);
	assert_int_equal(hsm_config_load_ini(&c, path, &e), ST_EINVAL);
	assert_non_null(strstr(e.msg, "bad.ini:3"));
	assert_int_equal(write_file(path, "[hsm]\ntoken = t\nca_key = k\n", 0600), 0);
	hsm_config_init(&c);
	assert_int_equal(hsm_config_load_ini(&c, path, &e), ST_OK);
	assert_string_equal(c.module, HSM_DEFAULT_MODULE);
	assert_int_equal(hsm_config_check(&c, &e), ST_EINVAL);  /* no ca_cert */
	assert_non_null(strstr(e.msg, "ca_cert"));
	assert_int_equal(hsm_config_set(&c, "pin_env", "A-B", &e), ST_EINVAL);
}

/* Processes opening one token at the same moment (SoftHSM's transient
 * CKR_GENERAL_ERROR before the login, retried; the login itself never is)
 * all succeed. */
static void test_concurrent_processes(void **state)
{
	pid_t pids[4];
	int status;

	(void)state;
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 4; i++) {
			pids[i] = fork();
			assert_true(pids[i] >= 0);
			if (pids[i] == 0) {
				struct hsm *h;
				struct errbuf e;
				int rc = hsm_open(&cfg256, &h, &e);

				if (rc != ST_OK)
					fprintf(stderr, "child: %s\n", e.msg);
				else
					hsm_close(h);
				_exit(rc == ST_OK ? 0 : 1);
			}
		}
		for (int i = 0; i < 4; i++) {
			assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
			assert_true(WIFEXITED(status));
			assert_int_equal(WEXITSTATUS(status), 0);
		}
	}
}

/* Each CA key type issues a certificate that openssl verifies, with the
 * digest the brief asks for (SHA-384 for a P-384 CA). */
static void test_issue_with_each_ca_type(void **state)
{
	const struct {
		struct hsm_config *cfg;
		int sig_nid;
	} cas[] = {
		{ &cfg256, NID_ecdsa_with_SHA256 },
		{ &cfg384, NID_ecdsa_with_SHA384 },
		{ &cfgrsa, NID_sha256WithRSAEncryption },
	};
	struct issue_profile prof = { .validity_days = 30 };
	struct csr_policy pol;

	(void)state;
	csr_policy_default(&pol);
	for (size_t i = 0; i < sizeof(cas) / sizeof(cas[0]); i++) {
		struct hsm_certstore cs;
		struct tu_store *s = calloc(1, sizeof(*s));
		struct issue_ctx *ic;
		struct issue_result r;
		struct csr_info ci;
		struct errbuf e;
		struct hsm *h;
		uint8_t nonce[32], *der = NULL;
		size_t len = 0;
		EVP_PKEY *k = tu_key("P-256");
		const unsigned char *p;
		char path[1024], cmd[2300];
		X509 *x;
		FILE *f;

		tu_store_init(s, &cs);
		assert_int_equal(RAND_bytes(nonce, 32), 1);
		assert_int_equal(tu_make_csr(k, "00000000000000000000ABCD", NULL, nonce, 0, &der, &len), 0);
		assert_int_equal(hsm_open(cas[i].cfg, &h, &e), ST_OK);
		assert_int_equal(issue_ctx_new(h, &prof, &cs, &ic, &e), ST_OK);
		assert_int_equal(csr_check(&pol, der, len, "00000000000000000000ABCD", nonce, &cs, &ci, &e),
				 ST_OK);
		assert_int_equal(issue_cert(ic, &ci, 1, &r, &e), ST_OK);
		p = r.der;
		x = d2i_X509(NULL, &p, (long)r.der_len);
		assert_non_null(x);
		assert_int_equal(X509_get_signature_nid(x), cas[i].sig_nid);
		snprintf(path, sizeof(path), "%s/ca-type-%zu.pem", tu_scratch(), i);
		f = fopen(path, "w");
		assert_non_null(f);
		PEM_write_X509(f, x);
		fclose(f);
		snprintf(cmd, sizeof(cmd), "openssl verify -purpose sslclient -CAfile '%s' '%s' >/dev/null",
			 cas[i].cfg->ca_cert, path);
		assert_int_equal(system(cmd), 0);
		X509_free(x);
		issue_result_clear(&r);
		csr_info_clear(&ci);
		issue_ctx_free(ic);
		hsm_close(h);
		OPENSSL_free(der);
		EVP_PKEY_free(k);
		free(s);
	}
}

/* ---- reopening after a transport failure -------------------------------- */

static void test_transport_codes_and_reopen(void **state)
{
	const char msg[] = "station-audit-checkpoint-v1\nS1\n8\n00\n";
	const uint8_t *pub1, *pub2;
	size_t len1, len2, siglen;
	unsigned long logins;
	uint8_t *sig = NULL;
	struct errbuf e;
	struct hsm *h;
	X509 *x;
	int touched;

	(void)state;
	/* the one list: transport and session codes, never a PIN or a bad request */
	assert_true(hsm_ckr_is_transport(0x30));   /* CKR_DEVICE_ERROR: p11-kit-client, server gone */
	assert_true(hsm_ckr_is_transport(0x32));   /* CKR_DEVICE_REMOVED */
	assert_true(hsm_ckr_is_transport(0xB3));   /* CKR_SESSION_HANDLE_INVALID */
	assert_true(hsm_ckr_is_transport(0xE0));   /* CKR_TOKEN_NOT_PRESENT */
	assert_true(hsm_ckr_is_transport(0x05));   /* CKR_GENERAL_ERROR */
	assert_false(hsm_ckr_is_transport(0xA0));  /* CKR_PIN_INCORRECT */
	assert_false(hsm_ckr_is_transport(0xA4));  /* CKR_PIN_LOCKED */
	assert_false(hsm_ckr_is_transport(0x70));  /* CKR_MECHANISM_INVALID */
	assert_false(hsm_ckr_is_transport(0));

	assert_int_equal(hsm_open(&cfg256, &h, &e), ST_OK);
	assert_false(hsm_is_down(h));
	assert_int_equal(hsm_audit_pubkey(h, &pub1, &len1), ST_OK);
	/* a reopen: the module reloaded, exactly one more login, the same keys
	 * (the audit key's public half stays where callers may hold it) */
	logins = hsm_login_attempts();
	assert_int_equal(hsm_reopen(h, &e), ST_OK);
	assert_int_equal(hsm_login_attempts(), logins + 1);
	assert_int_equal(hsm_audit_pubkey(h, &pub2, &len2), ST_OK);
	assert_ptr_equal(pub1, pub2);
	assert_int_equal(len1, len2);
	assert_int_equal(hsm_audit_sign(h, (const uint8_t *)msg, strlen(msg), &sig, &siglen, &e), ST_OK);
	OPENSSL_free(sig);
	/* the CA key signs through the new context */
	x = X509_new();
	assert_non_null(x);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(hsm_ca_cert(h))), 1);
	assert_int_equal(X509_set_subject_name(x, X509_get_subject_name(hsm_ca_cert(h))), 1);
	assert_int_equal(X509_set_pubkey(x, X509_get0_pubkey(hsm_ca_cert(h))), 1);
	assert_int_equal(hsm_sign_x509(h, x, &touched, &e), ST_OK);
	assert_int_equal(touched, 1);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(hsm_ca_cert(h))), 1);
	X509_free(x);
	hsm_close(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_preflight_and_audit_key),
		cmocka_unit_test(test_wrong_pin_one_attempt),
		cmocka_unit_test(test_missing_token),
		cmocka_unit_test(test_module_rule),
		cmocka_unit_test(test_key_by_id),
		cmocka_unit_test(test_cert_key_mismatch),
		cmocka_unit_test(test_pin_sources),
		cmocka_unit_test(test_config_ini),
		cmocka_unit_test(test_concurrent_processes),
		cmocka_unit_test(test_issue_with_each_ca_type),
		cmocka_unit_test(test_transport_codes_and_reopen),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
