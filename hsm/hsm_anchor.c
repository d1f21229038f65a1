/*
 * hsm_anchor: the audit chain's rollback anchor in the token.  See
 * hsm_checkpoint.h.  libp11 creates no data objects, so this goes to the
 * module's own PKCS#11 function list: the module libp11 loaded (dlopen with
 * RTLD_NOLOAD finds the same copy, already initialised and logged in), a
 * session of its own on the token's slot.  p11-kit-client hands out a new,
 * uninitialised connection per C_GetFunctionList: that one is initialised,
 * logged in with the kept PIN and finalised here.
 */
#define CRYPTOKI_GNU 1
#include "hsm/hsm_checkpoint.h"
#include "hsm/hsm_int.h"
#include "core/clock.h"
#include "core/hex.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

#define ANCHOR_TAG   "station-audit-anchor-v1"
#define ANCHOR_MAX   256
#define CONNECT_ATTEMPTS 4

struct p11 {
	void *dl;
	struct ck_function_list *f;
	ck_session_handle_t s;
	int open, initialized;
};

static void p11_end(struct hsm *h, struct p11 *p)
{
	if (p->open)
		p->f->C_CloseSession(p->s);
	if (p->initialized)
		p->f->C_Finalize(NULL);
	if (p->dl)
		dlclose(p->dl);
	hsm_p11_release(h);
}

static int p11_begin(struct hsm *h, struct p11 *p, struct errbuf *err)
{
	char module[HSM_PATH_MAX];
	unsigned long slot;
	const char *pin = NULL;
	CK_C_GetFunctionList get;
	ck_rv_t rv, last = CKR_OK;
	int rc;

	memset(p, 0, sizeof(*p));
	if ((rc = hsm_p11_hold(h, module, &slot, &pin, err)))
		return rc;
	p->dl = dlopen(module, RTLD_NOW | RTLD_NOLOAD);
	get = p->dl ? (CK_C_GetFunctionList)dlsym(p->dl, "C_GetFunctionList") : NULL;
	if (!get || get(&p->f) != CKR_OK || !p->f) {
		rc = errbuf_set(err, ST_EHSM, "module %s: no PKCS#11 function list", module);
		goto fail;
	}
	rv = p->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &p->s);
	/* A new remote connection: its server loads the token afresh and, like
	 * two local opens at once (hsm.c), may briefly not see it. */
	for (int i = 0; rv == CKR_CRYPTOKI_NOT_INITIALIZED && pin && i < CONNECT_ATTEMPTS; i++) {
		struct ck_c_initialize_args args = { .flags = CKF_OS_LOCKING_OK };

		if (i)
			clock_sleep_ms(50 * i);
		if ((rv = p->f->C_Initialize(&args)) != CKR_OK)
			break;
		p->initialized = 1;
		rv = p->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &p->s);
		if (rv == CKR_OK) {
			p->open = 1;
			rv = p->f->C_Login(p->s, CKU_USER, (unsigned char *)pin, strlen(pin));
			if (rv == CKR_USER_ALREADY_LOGGED_IN)
				rv = CKR_OK;
			if (rv == CKR_OK || rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED)
				break;
			p->f->C_CloseSession(p->s);
			p->open = 0;
		}
		p->f->C_Finalize(NULL);
		p->initialized = 0;
		last = rv;
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;   /* try a new connection */
	}
	if (rv == CKR_CRYPTOKI_NOT_INITIALIZED && last != CKR_OK)
		rv = last;
	if (rv != CKR_OK) {
		rc = errbuf_set(err, ST_EHSM, "token '%s': cannot open a session for the audit anchor"
				" (CKR 0x%lx)", hsm_token_label(h), rv);
		goto fail;
	}
	p->open = 1;
	return ST_OK;
fail:
	p11_end(h, p);
	return rc;
}

static void anchor_label(char *buf, size_t size, const char *station_id, const char *chain)
{
	snprintf(buf, size, "station-audit-anchor %s %s", station_id, chain);
}

#define ANCHOR_OBJS 8

/* The anchor objects with this label (more than one only if a replacement
 * was cut short before the old one was destroyed). */
static int find_anchors(struct p11 *p, const char *label, ck_object_handle_t objs[ANCHOR_OBJS],
			unsigned long *n, struct errbuf *err)
{
	ck_object_class_t cls = CKO_DATA;
	struct ck_attribute tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	ck_rv_t rv;

	*n = 0;
	rv = p->f->C_FindObjectsInit(p->s, tmpl, 2);
	if (rv == CKR_OK) {
		rv = p->f->C_FindObjects(p->s, objs, ANCHOR_OBJS, n);
		p->f->C_FindObjectsFinal(p->s);
	}
	if (rv != CKR_OK)
		return errbuf_set(err, ST_EHSM, "cannot search the token for the audit anchor (CKR 0x%lx)",
				  rv);
	return ST_OK;
}

int hsm_anchor_write(struct hsm *h, const char *station_id, const char *chain, int64_t seq,
		     const uint8_t head_hash[32], struct errbuf *err)
{
	char label[128], text[ANCHOR_MAX], hex[65];
	ck_object_class_t cls = CKO_DATA;
	unsigned char yes = 1;   /* CK_TRUE */
	ck_object_handle_t obj, old[ANCHOR_OBJS];
	unsigned long nold = 0;
	struct p11 p;
	ck_rv_t rv;
	int n, rc;

	hex_encode(head_hash, 32, hex);
	n = snprintf(text, sizeof(text), ANCHOR_TAG "\n%s\n%s\n%" PRId64 "\n%s\n", station_id,
		     chain, seq, hex);
	if (n < 0 || (size_t)n >= sizeof(text) || strlen(chain) > 32)
		return errbuf_set(err, ST_EINVAL, "station id too long for the audit anchor");
	anchor_label(label, sizeof(label), station_id, chain);
	if ((rc = p11_begin(h, &p, err)))
		return rc;
	if ((rc = find_anchors(&p, label, old, &nold, err)))
		goto out;
	{
		/* private: reading or replacing it takes the user PIN.  SoftHSM
		 * keeps CKA_VALUE read-only: the new object is made first, then
		 * the old ones go, so a token never lacks an anchor. */
		struct ck_attribute tmpl[] = {
			{ CKA_CLASS, &cls, sizeof(cls) },
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_PRIVATE, &yes, sizeof(yes) },
			{ CKA_LABEL, label, strlen(label) },
			{ CKA_APPLICATION, (void *)"station", 7 },
			{ CKA_VALUE, text, (unsigned long)n },
		};

		rv = p.f->C_CreateObject(p.s, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &obj);
	}
	/* another process replacing it at the same moment may have destroyed it */
	for (unsigned long i = 0; rv == CKR_OK && i < nold; i++)
		if ((rv = p.f->C_DestroyObject(p.s, old[i])) == CKR_OBJECT_HANDLE_INVALID)
			rv = CKR_OK;
	if (rv != CKR_OK)
		rc = errbuf_set(err, ST_EHSM, "token '%s': cannot store the audit anchor (CKR 0x%lx)",
				hsm_token_label(h), rv);
out:
	p11_end(h, &p);
	return rc;
}

/* One anchor object's text, parsed: 0 ok, -1 unreadable, -2 malformed. */
static int read_one(struct p11 *p, ck_object_handle_t obj, const char *station_id,
		    const char *chain, long long *seq, uint8_t head_hash[32])
{
	char text[ANCHOR_MAX + 1], sid[96], cid[40], hex[80], tail;
	struct ck_attribute val = { CKA_VALUE, text, ANCHOR_MAX };

	if (p->f->C_GetAttributeValue(p->s, obj, &val, 1) != CKR_OK || val.value_len > ANCHOR_MAX)
		return -1;
	text[val.value_len] = '\0';
	/* exactly the text hsm_anchor_write stores */
	if (sscanf(text, ANCHOR_TAG "\n%95[^\n]\n%39[^\n]\n%lld\n%79[^\n]%c", sid, cid, seq, hex,
		   &tail) != 5 ||
	    tail != '\n' || strcmp(sid, station_id) || strcmp(cid, chain) || *seq < 1 ||
	    strlen(hex) != 64 || hex_decode_lower(hex, 64, head_hash, 32))
		return -2;
	return 0;
}

int hsm_anchor_read(struct hsm *h, const char *station_id, const char *chain, int64_t *seq,
		    uint8_t head_hash[32], struct errbuf *err)
{
	ck_object_handle_t objs[ANCHOR_OBJS];
	unsigned long n = 0;
	uint8_t hash[32];
	long long s, best = 0;
	char label[128];
	struct p11 p;
	int rc, r;

	anchor_label(label, sizeof(label), station_id, chain);
	if ((rc = p11_begin(h, &p, err)))
		return rc;
	if ((rc = find_anchors(&p, label, objs, &n, err)))
		goto out;
	if (!n) {
		rc = errbuf_set(err, ST_ENOTFOUND, "token '%s' holds no audit anchor for station %s,"
				" chain %s", hsm_token_label(h), station_id, chain);
		goto out;
	}
	for (unsigned long i = 0; i < n; i++) {
		if ((r = read_one(&p, objs[i], station_id, chain, &s, hash)) == -1) {
			rc = errbuf_set(err, ST_EHSM, "token '%s': cannot read the audit anchor",
					hsm_token_label(h));
			goto out;
		}
		if (r) {
			rc = errbuf_set(err, ST_ETAMPER, "token '%s': the audit anchor of station %s is"
					" malformed", hsm_token_label(h), station_id);
			goto out;
		}
		if (s > best) {
			best = s;
			memcpy(head_hash, hash, 32);
		}
	}
	*seq = best;
out:
	p11_end(h, &p);
	return rc;
}
