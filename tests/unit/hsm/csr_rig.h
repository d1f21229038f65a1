/*
 * Shared by the CSR tests of hsm/ (test_csr_policy.c: the policy alone;
 * test_hsm_issue.c: issuing from checked CSRs).  Header only: each test
 * binary is built from one .c file.
 *
 * pol is the binary's policy (csr_policy_default() in its group setup; a test
 * that changes it puts the default back); check() makes a board-like CSR in
 * software (tests/rig/hsm_test_util.h) for UID and runs pol on it.
 */
#ifndef STATION_CSR_RIG_H
#define STATION_CSR_RIG_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hsm/csr_policy.h"
#include "tests/rig/hsm_test_util.h"

static struct csr_policy pol;
static const char UID[] = "0123456789ABCDEF01234567";

static inline void rand_nonce(uint8_t n[32])
{
	assert_int_equal(RAND_bytes(n, 32), 1);
}

/* Makes a CSR (key kind, subject cn, nonce), runs the policy; returns the rc. */
static inline int check(const char *kind, const char *cn, const char *org, int nonce_mode,
			int evil, const struct hsm_certstore *store, struct csr_info *ci,
			struct errbuf *e)
{
	uint8_t nonce[32], other[32], *der;
	size_t len = 0;
	EVP_PKEY *k = tu_key(kind);
	int rc;

	assert_non_null(k);
	rand_nonce(nonce);
	rand_nonce(other);
	/* nonce_mode: 0 right nonce, 1 another nonce, 2 none */
	assert_int_equal(tu_make_csr(k, cn, org, nonce_mode == 0 ? nonce : nonce_mode == 1 ? other : NULL,
				     evil, &der, &len), 0);
	rc = csr_check(&pol, der, len, UID, nonce, store, ci, e);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
	return rc;
}

#endif
