/* hsm: token access through libp11.  See hsm.h. */
#include "hsm/hsm.h"
#include "hsm/hsm_int.h"
#include "hsm/hsm_module.h"
#include "core/certfile.h"
#include "core/clock.h"
#include "core/hex.h"

#include <errno.h>
#include <libp11.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

/* PKCS#11 return values we act on (pkcs11.h is not part of libp11's API). */
#define CKR_GENERAL_ERROR     0x05UL
#define CKR_DEVICE_ERROR      0x30UL
#define CKR_DEVICE_REMOVED    0x32UL
#define CKR_SESSION_CLOSED    0xB0UL
#define CKR_SESSION_HANDLE_INVALID 0xB3UL
#define CKR_TOKEN_NOT_PRESENT 0xE0UL
#define CKR_TOKEN_NOT_RECOGNIZED 0xE1UL
#define CKR_USER_NOT_LOGGED_IN 0x101UL
#define CKR_CRYPTOKI_NOT_INITIALIZED 0x190UL
#define CKR_PIN_INCORRECT     0xA0UL
#define CKR_PIN_INVALID       0xA1UL
#define CKR_PIN_LEN_RANGE     0xA2UL
#define CKR_PIN_EXPIRED       0xA3UL
#define CKR_PIN_LOCKED        0xA4UL
#define CKR_USER_PIN_NOT_INITIALIZED 0x102UL

/* Two processes opening one SoftHSM token at once: 1-3 failures in 15 tries
 * were measured, so a handful of attempts with jitter is plenty. */
#define OPEN_ATTEMPTS 6
#define NOTFOUND_ATTEMPTS 3
/* A token behind p11-kit's remoting: each client connection is a new
 * p11-kit-remote process loading the token, so stations starting together
 * collide for longer than two local opens do (a slot listing failed in ~10%
 * of opens with three at once).  Failures before the login are retried until
 * this deadline. */
#define OPEN_DEADLINE_MS 5000

struct hsm {
	PKCS11_CTX *ctx;
	PKCS11_SLOT *slots;
	unsigned int nslots;
	PKCS11_SLOT *slot;
	EVP_PKEY *ca_key;
	X509 *ca_cert;
	const EVP_MD *md;
	EVP_PKEY *audit_key;
	uint8_t *audit_pub;
	size_t audit_pub_len;
	char token[HSM_LABEL_MAX];
	char audit_label[HSM_LABEL_MAX];
	/* Reopening (hsm_reopen).  Signers hold lock for reading; a reopen holds it
	 * for writing while it replaces ctx, slots and keys. */
	pthread_rwlock_t lock;
	int lock_init;
	struct hsm_config cfg;     /* what was opened (the PIN is not in it) */
	char *pin;                 /* kept for a new login: a page of its own,
				    * locked and left out of core dumps */
	size_t pin_map;
	atomic_int down;           /* a transport failure was seen: refuse to sign */
	int pin_refused;           /* a reopen's login was refused: never tried again */
	char down_why[128];
};

static atomic_ulong login_attempts;
/* PKCS#11 state (C_Initialize, the login) belongs to the whole process and
 * libp11 finalises the module on unload: one open struct hsm at a time. */
static atomic_int hsm_in_use;

unsigned long hsm_login_attempts(void)
{
	return atomic_load(&login_attempts);
}

/* Drains the OpenSSL error queue; returns the last PKCS#11 return value libp11
 * recorded in it (0 if none), and the last other error's text in other. */
static unsigned long take_ckr(char *other, size_t size)
{
	unsigned long e, ckr = 0;
	int lib = ERR_get_CKR_code();

	if (other && size)
		other[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		if (ERR_GET_LIB(e) == lib)
			ckr = (unsigned long)ERR_GET_REASON(e);
		else if (other && size)
			ERR_error_string_n(e, other, size);
	}
	return ckr;
}

static void release(struct hsm *h)
{
	if (h->audit_key)
		EVP_PKEY_free(h->audit_key);
	h->audit_key = NULL;
	if (h->ca_key)
		EVP_PKEY_free(h->ca_key);
	h->ca_key = NULL;
	if (h->ctx) {
		if (h->slots)
			PKCS11_release_all_slots(h->ctx, h->slots, h->nslots);
		PKCS11_CTX_unload(h->ctx);
		PKCS11_CTX_free(h->ctx);
	}
	h->ctx = NULL;
	h->slots = NULL;
	h->nslots = 0;
	h->slot = NULL;
}

/*
 * The failures that say the token's transport or session is gone, not that
 * the request was bad: the remote server went away (p11-kit-client returns
 * CKR_DEVICE_ERROR on a dead socket, and keeps returning it after the server
 * is back: it never reconnects by itself), the token was unplugged, the
 * session or the login did not survive.  CKR_GENERAL_ERROR is here too: the
 * client module returns it when a call is cut short.  Each of these is cured,
 * if at all, by unloading the module and opening the token again.
 */
int hsm_ckr_is_transport(unsigned long ckr)
{
	switch (ckr) {
	case CKR_GENERAL_ERROR:
	case CKR_DEVICE_ERROR:
	case CKR_DEVICE_REMOVED:
	case CKR_SESSION_CLOSED:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_CRYPTOKI_NOT_INITIALIZED:
		return 1;
	default:
		return 0;
	}
}

static void backoff(void)
{
	unsigned char r = 0;

	RAND_bytes(&r, 1);
	clock_sleep_ms(20 + r % 130);
}

static int key_matches(const PKCS11_KEY *k, const char *label, const char *id_hex)
{
	if (label && label[0])
		return k->label && !strcmp(k->label, label);
	if (!id_hex || !id_hex[0] || k->id_len != strlen(id_hex) / 2)
		return 0;
	for (size_t i = 0; i < k->id_len; i++) {
		int v = hex_digit(id_hex[2 * i]) << 4 | hex_digit(id_hex[2 * i + 1]);

		if (v != k->id[i])
			return 0;
	}
	return 1;
}

/* Finds a private key by label (or id).  Its public half is not asked of
 * libp11: PKCS11_get_public_key() leaks in 0.4.12.  The CA's public key is in
 * its certificate; the EC private EVP_PKEY libp11 returns carries the point. */
static int find_key(struct hsm *h, const char *label, const char *id_hex,
		    EVP_PKEY **priv, struct errbuf *err)
{
	PKCS11_KEY *keys = NULL, *found = NULL;
	unsigned int n = 0;
	const char *what = label && label[0] ? label : id_hex;

	*priv = NULL;
	if (PKCS11_enumerate_keys(h->slot->token, &keys, &n) != 0) {
		take_ckr(NULL, 0);
		return errbuf_set(err, ST_EHSM, "token '%s': cannot list its keys", h->token);
	}
	for (unsigned int i = 0; i < n; i++) {
		if (!keys[i].isPrivate || !key_matches(&keys[i], label, id_hex))
			continue;
		if (found)
			return errbuf_set(err, ST_EHSM, "token '%s': two private keys match '%s'",
					  h->token, what);
		found = &keys[i];
	}
	if (!found)
		return errbuf_set(err, ST_ENOTFOUND, "token '%s': no private key '%s'",
				  h->token, what);
	*priv = PKCS11_get_private_key(found);
	if (!*priv) {
		take_ckr(NULL, 0);
		return errbuf_set(err, ST_EHSM, "token '%s': cannot use private key '%s'",
				  h->token, what);
	}
	return ST_OK;
}

/* A software copy of the public half of a token key (NULL if libp11 did not
 * give it); its DER in *der when der is set. */
static EVP_PKEY *public_half(EVP_PKEY *priv, uint8_t **der, size_t *der_len)
{
	unsigned char *buf = NULL;
	const unsigned char *p;
	EVP_PKEY *pub = NULL;
	int len;

	len = i2d_PUBKEY(priv, &buf);
	if (len > 0) {
		p = buf;
		pub = d2i_PUBKEY(NULL, &p, len);
	}
	if (pub && der) {
		*der = buf;
		*der_len = (size_t)len;
		buf = NULL;
	}
	OPENSSL_free(buf);
	ERR_clear_error();
	return pub;
}

/* Signs a test vector in the token and verifies it with each public key given. */
static int preflight(struct hsm *h, EVP_PKEY *priv, const EVP_MD *md, const char *what,
		     EVP_PKEY *token_pub, EVP_PKEY *cert_pub, const char *cert_path,
		     struct errbuf *err)
{
	unsigned char msg[64], sig[1024];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *mc;
	int ok;

	snprintf((char *)msg, sizeof(msg), "station-hsm-preflight-v1 %ld", (long)time(NULL));
	/* After the login a signature costs no PIN try: this is where a token
	 * busy with another process (CKR_GENERAL_ERROR) gets its retries. */
	for (int attempt = 1;; attempt++) {
		unsigned long ckr;

		mc = EVP_MD_CTX_new();
		if (!mc)
			return errbuf_set(err, ST_ENOMEM, "out of memory");
		siglen = sizeof(sig);
		ok = EVP_DigestSignInit(mc, NULL, md, NULL, priv) == 1 &&
		     EVP_DigestSign(mc, sig, &siglen, msg, strlen((char *)msg)) == 1;
		EVP_MD_CTX_free(mc);
		if (ok)
			break;
		ckr = take_ckr(NULL, 0);
		if (ckr != CKR_GENERAL_ERROR || attempt == OPEN_ATTEMPTS)
			return errbuf_set(err, ST_EHSM,
					  "token '%s': pre-flight: key '%s' cannot sign (CKR 0x%lx)",
					  h->token, what, ckr);
		backoff();
	}
	for (int i = 0; i < 2; i++) {
		EVP_PKEY *pk = i == 0 ? token_pub : cert_pub;

		if (!pk)
			continue;
		mc = EVP_MD_CTX_new();
		if (!mc)
			return errbuf_set(err, ST_ENOMEM, "out of memory");
		ok = EVP_DigestVerifyInit(mc, NULL, md, NULL, pk) == 1 &&
		     EVP_DigestVerify(mc, sig, siglen, msg, strlen((char *)msg)) == 1;
		EVP_MD_CTX_free(mc);
		ERR_clear_error();
		if (ok)
			continue;
		if (i == 0)
			return errbuf_set(err, ST_EHSM,
					  "token '%s': pre-flight: signature by '%s' does not verify "
					  "with the token's own public key", h->token, what);
		return errbuf_set(err, ST_ECRYPTO,
				  "CA certificate %s does not match key '%s' in token '%s'",
				  cert_path, what, h->token);
	}
	return ST_OK;
}

static int load_ca_cert(struct hsm *h, const char *path, const char *pin,
			struct errbuf *err)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	char hex[65];
	EVP_PKEY *pub;
	int rc;

	if ((rc = certfile_load(path, CERTFILE_MAX, &h->ca_cert, NULL, NULL, err)) != ST_OK)
		return errbuf_prefix(err, "CA certificate: ");
	/* the trust anchor is the one the audited profile pinned, not whatever
	 * file now sits at the path */
	if (pin && pin[0]) {
		if (X509_digest(h->ca_cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
			return errbuf_set(err, ST_ECRYPTO, "CA certificate %s: cannot hash it", path);
		hex_encode(md, 32, hex);
		if (strcasecmp(hex, pin))
			return errbuf_set(err, ST_ETAMPER, "CA certificate %s has SHA-256 %s, not the"
					  " pinned %s: refused", path, hex, pin);
	}
	pub = X509_get0_pubkey(h->ca_cert);
	if (!pub)
		return errbuf_set(err, ST_ECRYPTO, "CA certificate %s: unreadable public key", path);
	h->md = EVP_sha256();
	if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC) {
		char group[64] = "";
		size_t glen = 0;

		EVP_PKEY_get_group_name(pub, group, sizeof(group), &glen);
		if (!strcmp(group, "secp384r1"))
			h->md = EVP_sha384();
		else if (strcmp(group, "prime256v1"))
			return errbuf_set(err, ST_ECRYPTO,
					  "CA certificate %s: curve %s not supported (P-256, P-384)",
					  path, group[0] ? group : "?");
	} else if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA) {
		if (EVP_PKEY_get_bits(pub) < 2048)
			return errbuf_set(err, ST_ECRYPTO, "CA certificate %s: RSA key under 2048 bits",
					  path);
	} else {
		return errbuf_set(err, ST_ECRYPTO, "CA certificate %s: key type not supported", path);
	}
	if (X509_check_ca(h->ca_cert) < 1)
		return errbuf_set(err, ST_ECRYPTO, "CA certificate %s is not a CA certificate", path);
	return ST_OK;
}

/* One attempt at module load + token lookup + login.  *transient is 1 when
 * the failure is one a concurrent open causes and is worth retrying
 * (CKR_GENERAL_ERROR before the login), 2 when the token was not seen
 * (retried less).  A failed login is never transient: whatever its CKR, a
 * token may have counted it against the PIN, and the docs promise one
 * attempt (docs/security.md). */
/* SoftHSM keeps a token in files that a login rewrites (its PIN flags): two
 * processes logging in at the same instant can read each other's half-written
 * file and fail (CKR_GENERAL_ERROR, CKR_USER_PIN_NOT_INITIALIZED) before any PIN
 * is compared, and a failed login is never retried.  So the logins of this
 * user's processes on this host take turns, on a lock file of the user's own
 * (a token on another host serialises in its own server).  Best effort: a lock
 * that cannot be had within 5 s, or a file that is not ours, is done without. */
static int login_lock(void)
{
	char path[256];
	const char *dir = getenv("XDG_RUNTIME_DIR");
	struct stat sb;
	int fd;

	if (dir && *dir == '/')
		snprintf(path, sizeof(path), "%s/station-hsm-login.lock", dir);
	else
		snprintf(path, sizeof(path), "/tmp/station-hsm-login-%u.lock", (unsigned)geteuid());
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid()) {
		close(fd);
		return -1;
	}
	for (int i = 0; i < 500; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK && errno != EINTR)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	close(fd);
	return -1;
}

static void login_unlock(int fd)
{
	if (fd >= 0)
		close(fd);   /* releases the flock */
}

static int open_once(struct hsm *h, const struct hsm_config *c, const char *pin,
		     int *transient, struct errbuf *err)
{
	unsigned long ckr;
	char other[256];
	int rc, lock;

	*transient = 0;
	/* a module path never comes from the database alone (hsm_module.h) */
	if ((rc = hsm_module_allowed(c->module, err)) != ST_OK)
		return rc;
	/* say it plainly (libp11 would print dlopen's error on stderr) */
	if (access(c->module, R_OK) != 0)
		return errbuf_set(err, ST_ENOTFOUND, "PKCS#11 module %s: %s", c->module,
				  strerror(errno));
	h->ctx = PKCS11_CTX_new();
	if (!h->ctx)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	if (PKCS11_CTX_load(h->ctx, c->module) != 0) {
		ckr = take_ckr(other, sizeof(other));
		*transient = hsm_ckr_is_transport(ckr);
		/* free the context here: libp11 has nothing loaded to unload */
		PKCS11_CTX_free(h->ctx);
		h->ctx = NULL;
		return errbuf_set(err, ST_EHSM, "cannot load PKCS#11 module %s%s%s", c->module,
				  ckr ? "" : ": ", ckr ? "" : other);
	}
	if (PKCS11_enumerate_slots(h->ctx, &h->slots, &h->nslots) != 0) {
		ckr = take_ckr(NULL, 0);
		/* through p11-kit's remoting a listing cut short by a concurrent
		 * open may carry no PKCS#11 code at all */
		*transient = ckr == 0 || hsm_ckr_is_transport(ckr);
		h->slots = NULL;
		if (strstr(c->module, "p11-kit-client")) {
			const char *addr = getenv("P11_KIT_SERVER_ADDRESS");

			return errbuf_set(err, ST_EHSM, "module %s: cannot list slots (CKR 0x%lx): "
					  "no answer from the p11-kit server at %s", c->module, ckr,
					  addr && *addr ? addr :
					  "the default address (P11_KIT_SERVER_ADDRESS is not set)");
		}
		return errbuf_set(err, ST_EHSM, "module %s: cannot list slots (CKR 0x%lx)",
				  c->module, ckr);
	}
	/* By label, never by slot number: SoftHSM puts a token on a random slot id,
	 * and PKCS11_find_token() would pick its own "best" slot. */
	for (unsigned int i = 0; i < h->nslots; i++) {
		PKCS11_SLOT *s = &h->slots[i];

		if (!s->token || !s->token->initialized || !s->token->label)
			continue;
		if (strcmp(s->token->label, c->token))
			continue;
		if (h->slot)
			return errbuf_set(err, ST_EHSM, "two tokens are labelled '%s'", c->token);
		h->slot = s;
	}
	if (!h->slot) {
		/* SoftHSM may read a token file another process is rewriting (a
		 * login) and skip the token: worth another look, briefly. */
		*transient = 2;
		return errbuf_set(err, ST_ENOTFOUND, "no token labelled '%s' in module %s",
				  c->token, c->module);
	}
	if (h->slot->token->userPinLocked)
		return errbuf_set(err, ST_EPIN, "token '%s': the user PIN is locked", c->token);
	atomic_fetch_add(&login_attempts, 1);
	lock = login_lock();
	rc = PKCS11_login(h->slot, 0, pin);
	login_unlock(lock);
	if (rc != 0) {
		ckr = take_ckr(NULL, 0);
		switch (ckr) {
		case CKR_PIN_INCORRECT:
		case CKR_PIN_INVALID:
		case CKR_PIN_LEN_RANGE:
			return errbuf_set(err, ST_EPIN,
					  "token '%s': wrong PIN (login refused; not retried)", c->token);
		case CKR_PIN_LOCKED:
			return errbuf_set(err, ST_EPIN, "token '%s': the user PIN is locked", c->token);
		case CKR_PIN_EXPIRED:
			return errbuf_set(err, ST_EPIN, "token '%s': the user PIN has expired", c->token);
		default:
			break;
		}
		return errbuf_set(err, ST_EHSM, "token '%s': login failed (CKR 0x%lx; not retried,"
				  " a retry could cost a PIN try)", c->token, ckr);
	}
	return ST_OK;
}

/* The PIN, kept for a login after a reopen: its own page, locked (best
 * effort: RLIMIT_MEMLOCK may forbid it) and left out of core dumps
 * (invariant 5). */
static int keep_pin(struct hsm *h, const char *pin, struct errbuf *err)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t n = strlen(pin) + 1;

	h->pin_map = pg > 0 && (size_t)pg >= HSM_PIN_MAX ? (size_t)pg : HSM_PIN_MAX;
	h->pin = mmap(NULL, h->pin_map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (h->pin == MAP_FAILED) {
		h->pin = NULL;
		return errbuf_set(err, ST_ENOMEM, "cannot map a page for the PIN");
	}
	if (madvise(h->pin, h->pin_map, MADV_DONTDUMP) != 0)
		return errbuf_set(err, ST_EIO, "cannot keep the PIN out of core dumps");
	ST_IGNORE(mlock(h->pin, h->pin_map));   /* best effort: a swapped page is still ours */
	memcpy(h->pin, pin, n);
	return ST_OK;
}

static void drop_pin(struct hsm *h)
{
	if (!h->pin)
		return;
	OPENSSL_cleanse(h->pin, h->pin_map);
	munlock(h->pin, h->pin_map);
	munmap(h->pin, h->pin_map);
	h->pin = NULL;
}

/* The keys the configuration names, each through its pre-flight. */
static int load_keys(struct hsm *h, const struct hsm_config *c, struct errbuf *err)
{
	EVP_PKEY *token_pub = NULL;
	uint8_t *der = NULL;
	size_t der_len = 0;
	int rc;

	rc = find_key(h, c->ca_key, c->ca_key_id, &h->ca_key, err);
	if (rc != ST_OK)
		return rc;
	token_pub = public_half(h->ca_key, NULL, NULL);
	if (token_pub && EVP_PKEY_eq(token_pub, X509_get0_pubkey(h->ca_cert)) != 1) {
		ERR_clear_error();
		EVP_PKEY_free(token_pub);
		return errbuf_set(err, ST_ECRYPTO, "CA certificate %s does not match key '%s' in token '%s'",
				  c->ca_cert, c->ca_key[0] ? c->ca_key : c->ca_key_id, h->token);
	}
	rc = preflight(h, h->ca_key, h->md, c->ca_key[0] ? c->ca_key : c->ca_key_id, token_pub,
		       X509_get0_pubkey(h->ca_cert), c->ca_cert, err);
	EVP_PKEY_free(token_pub);
	token_pub = NULL;
	if (rc != ST_OK || !c->audit_key[0])
		return rc;
	rc = find_key(h, c->audit_key, NULL, &h->audit_key, err);
	if (rc != ST_OK)
		return rc;
	token_pub = public_half(h->audit_key, &der, &der_len);
	if (!token_pub || EVP_PKEY_get_base_id(token_pub) != EVP_PKEY_EC) {
		EVP_PKEY_free(token_pub);
		OPENSSL_free(der);
		return errbuf_set(err, ST_EHSM, "token '%s': audit key '%s' must be an EC key "
				  "with its public point", h->token, c->audit_key);
	}
	/* a reopen keeps the public key callers may hold, and finds the same one */
	if (h->audit_pub && (der_len != h->audit_pub_len || memcmp(der, h->audit_pub, der_len))) {
		EVP_PKEY_free(token_pub);
		OPENSSL_free(der);
		return errbuf_set(err, ST_ECRYPTO, "token '%s': audit key '%s' is not the one opened "
				  "before", h->token, c->audit_key);
	}
	if (!h->audit_pub) {
		h->audit_pub = der;
		h->audit_pub_len = der_len;
		der = NULL;
	}
	OPENSSL_free(der);
	rc = preflight(h, h->audit_key, EVP_sha256(), c->audit_key, token_pub, NULL, NULL, err);
	EVP_PKEY_free(token_pub);
	if (rc == ST_OK)
		snprintf(h->audit_label, sizeof(h->audit_label), "%s", c->audit_key);
	return rc;
}

int hsm_open(const struct hsm_config *c, struct hsm **out, struct errbuf *err)
{
	char pin[HSM_PIN_MAX];
	struct hsm *h;
	int64_t until;
	int rc, transient = 0;

	*out = NULL;
	if ((rc = hsm_config_check(c, err)) != ST_OK)
		return rc;
	if (atomic_exchange(&hsm_in_use, 1))
		return errbuf_set(err, ST_EBUSY, "the HSM is already open in this process");
	h = calloc(1, sizeof(*h));
	if (!h) {
		atomic_store(&hsm_in_use, 0);
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	}
	if (pthread_rwlock_init(&h->lock, NULL) != 0) {
		free(h);
		atomic_store(&hsm_in_use, 0);
		return errbuf_set(err, ST_ENOMEM, "cannot make the token's lock");
	}
	h->lock_init = 1;
	h->cfg = *c;
	snprintf(h->token, sizeof(h->token), "%s", c->token);
	/* The certificate first: a wrong path should not cost a PIN prompt. */
	if ((rc = load_ca_cert(h, c->ca_cert, c->ca_cert_sha256, err)) != ST_OK)
		goto fail;
	if (c->softhsm2_conf[0] && setenv("SOFTHSM2_CONF", c->softhsm2_conf, 1) != 0) {
		rc = errbuf_set(err, ST_EIO, "cannot set SOFTHSM2_CONF");
		goto fail;
	}
	if ((rc = hsm_pin_read(c, pin, err)) != ST_OK)
		goto fail;
	if ((rc = keep_pin(h, pin, err)) != ST_OK)
		goto fail;
	/* Failures before the login are retried until a deadline (the remoting's
	 * start-up collisions); a failed login as open_once says. */
	until = clock_monotonic_ms() + OPEN_DEADLINE_MS;
	for (int attempt = 1;; attempt++) {
		rc = open_once(h, c, pin, &transient, err);
		if (rc == ST_OK || !transient || clock_monotonic_ms() >= until ||
		    (transient == 1 && h->slot && attempt >= OPEN_ATTEMPTS) ||
		    (transient == 2 && attempt >= NOTFOUND_ATTEMPTS))
			break;
		release(h);
		backoff();
	}
	OPENSSL_cleanse(pin, sizeof(pin));
	if (rc != ST_OK || (rc = load_keys(h, c, err)) != ST_OK)
		goto fail;
	*out = h;
	return ST_OK;

fail:
	OPENSSL_cleanse(pin, sizeof(pin));
	ERR_clear_error();
	hsm_close(h);
	return rc;
}

void hsm_close(struct hsm *h)
{
	if (!h)
		return;
	if (h->slot && !atomic_load(&h->down))
		PKCS11_logout(h->slot);
	release(h);
	X509_free(h->ca_cert);
	OPENSSL_free(h->audit_pub);
	drop_pin(h);
	OPENSSL_cleanse(&h->cfg, sizeof(h->cfg));
	if (h->lock_init)
		pthread_rwlock_destroy(&h->lock);
	free(h);
	atomic_store(&hsm_in_use, 0);
}

/* Marks the token down after a transport failure (what the next reopen cures). */
static int went_down(struct hsm *h, unsigned long ckr, const char *doing, struct errbuf *err)
{
	if (!atomic_exchange(&h->down, 1))
		snprintf(h->down_why, sizeof(h->down_why), "CKR 0x%lx while %s", ckr, doing);
	return errbuf_setr(err, ST_EHSM, ST_ORIGIN_HSM, ST_R_HSM_UNREACHABLE,
			   "token '%s' unreachable while %s (CKR 0x%lx): the station reopens it",
			   h->token, doing, ckr);
}

static int refuse_down(struct hsm *h, const char *doing, struct errbuf *err)
{
	return errbuf_setr(err, ST_EHSM, ST_ORIGIN_HSM, ST_R_HSM_UNREACHABLE,
			   "token '%s' is unreachable (%s): not %s until it is reopened",
			   h->token, h->down_why, doing);
}

int hsm_is_down(struct hsm *h)
{
	return atomic_load(&h->down);
}

int hsm_sign_x509(struct hsm *h, X509 *x, int *touched, struct errbuf *err)
{
	unsigned long ckr;
	int ok;

	*touched = 0;
	pthread_rwlock_rdlock(&h->lock);
	if (atomic_load(&h->down)) {
		pthread_rwlock_unlock(&h->lock);
		return refuse_down(h, "signing", err);
	}
	*touched = 1;
	ok = X509_sign(x, h->ca_key, h->md) > 0;
	ckr = ok ? 0 : take_ckr(NULL, 0);
	pthread_rwlock_unlock(&h->lock);
	if (ok)
		return ST_OK;
	if (hsm_ckr_is_transport(ckr))
		return went_down(h, ckr, "signing a certificate", err);
	return errbuf_set(err, ST_EHSM, "token '%s': signing failed (CKR 0x%lx)", h->token, ckr);
}

/*
 * One attempt to open the token again after a transport failure: the module
 * is unloaded (p11-kit-client connects again only on C_Initialize), loaded,
 * the token found by its label, one login with the kept PIN, and the keys
 * through the same pre-flight as hsm_open, so a token that came back with
 * other keys is refused.  A login the token refuses (wrong, locked or
 * expired PIN) is never made again: every later call returns ST_EPIN.
 */
int hsm_reopen(struct hsm *h, struct errbuf *err)
{
	int rc, transient = 0;

	pthread_rwlock_wrlock(&h->lock);
	if (h->pin_refused) {
		pthread_rwlock_unlock(&h->lock);
		return errbuf_set(err, ST_EPIN, "token '%s': the PIN was refused; not tried again "
				  "(restart the station after fixing it)", h->token);
	}
	release(h);
	rc = open_once(h, &h->cfg, h->pin, &transient, err);
	if (rc == ST_EPIN)
		h->pin_refused = 1;
	if (rc == ST_OK)
		rc = load_keys(h, &h->cfg, err);
	if (rc == ST_OK)
		atomic_store(&h->down, 0);
	else
		release(h);
	pthread_rwlock_unlock(&h->lock);
	ERR_clear_error();
	if (rc != ST_OK && rc != ST_EPIN && (transient || rc == ST_EHSM || rc == ST_ENOTFOUND))
		errbuf_tag(err, ST_ORIGIN_HSM, ST_R_HSM_UNREACHABLE);
	return rc;
}

X509 *hsm_ca_cert(const struct hsm *h) { return h->ca_cert; }
EVP_PKEY *hsm_ca_key(const struct hsm *h) { return h->ca_key; }
const EVP_MD *hsm_ca_md(const struct hsm *h) { return h->md; }
const char *hsm_token_label(const struct hsm *h) { return h->token; }
const char *hsm_audit_key_label(const struct hsm *h) { return h->audit_label; }

int hsm_audit_pubkey(const struct hsm *h, const uint8_t **der, size_t *len)
{
	if (!h->audit_pub)
		return ST_ENOTFOUND;
	*der = h->audit_pub;
	*len = h->audit_pub_len;
	return ST_OK;
}

int hsm_audit_sign(struct hsm *h, const uint8_t *msg, size_t len,
		   uint8_t **sig, size_t *sig_len, struct errbuf *err)
{
	unsigned char buf[512];
	unsigned long ckr;
	EVP_MD_CTX *mc;
	size_t n = sizeof(buf);
	int ok;

	*sig = NULL;
	*sig_len = 0;
	if (!h->audit_label[0])
		return errbuf_set(err, ST_ENOTFOUND, "token '%s': no audit key configured (audit_key)",
				  h->token);
	mc = EVP_MD_CTX_new();
	if (!mc)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	pthread_rwlock_rdlock(&h->lock);
	if (atomic_load(&h->down) || !h->audit_key) {
		pthread_rwlock_unlock(&h->lock);
		EVP_MD_CTX_free(mc);
		return refuse_down(h, "signing a checkpoint", err);
	}
	ok = EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, h->audit_key) == 1 &&
	     EVP_DigestSign(mc, buf, &n, msg, len) == 1;
	ckr = ok ? 0 : take_ckr(NULL, 0);
	pthread_rwlock_unlock(&h->lock);
	EVP_MD_CTX_free(mc);
	if (ok && !(*sig = OPENSSL_memdup(buf, n)))
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	if (!ok) {
		if (hsm_ckr_is_transport(ckr))
			return went_down(h, ckr, "signing a checkpoint", err);
		return errbuf_set(err, ST_EHSM, "token '%s': audit key '%s' cannot sign (CKR 0x%lx)",
				  h->token, h->audit_label, ckr);
	}
	*sig_len = n;
	return ST_OK;
}

/* For hsm_anchor.c: the module and slot behind this handle, held against a
 * reopen until hsm_p11_release(). */
int hsm_p11_hold(struct hsm *h, char module[HSM_PATH_MAX], unsigned long *slot_id,
		 const char **pin, struct errbuf *err)
{
	pthread_rwlock_rdlock(&h->lock);
	if (atomic_load(&h->down) || !h->slot) {
		pthread_rwlock_unlock(&h->lock);
		return refuse_down(h, "the audit anchor", err);
	}
	snprintf(module, HSM_PATH_MAX, "%s", h->cfg.module);
	*slot_id = PKCS11_get_slotid_from_slot(h->slot);
	*pin = h->pin;
	return ST_OK;
}

void hsm_p11_release(struct hsm *h)
{
	pthread_rwlock_unlock(&h->lock);
}
