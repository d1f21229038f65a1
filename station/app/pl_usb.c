/*
 * pl_usb: boards over libusb for the pipeline (struct pl_transport and struct
 * pl_board_ops) on top of usb.h, board_client.h and dfu.h.  Every call below is
 * bounded by the timeouts those modules apply to each transfer.
 */
#include "app/pl_usb.h"
#include "core/hex.h"
#include "core/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "usb/board_client.h"
#include "usb/dfu.h"
#include "proto/proto.h"
#include "usb/usb.h"

struct pl_usb {
	struct usb_ctx *ctx;
	uint8_t *ca_der;
	size_t ca_len;
	struct board_opts bopts;
};

struct pl_usb_board {
	struct pl_usb *u;
	struct usb_board *ub;
	struct board *b;
	struct clock_limit limit;    /* the stage's: read by board_client and dfu */
};

static uint8_t *dup_blob(const struct proto_blob *bl, size_t *len)
{
	uint8_t *p = malloc(bl->len ? bl->len : 1);

	if (p && bl->len)
		memcpy(p, bl->p, bl->len);
	*len = bl->len;
	return p;
}

static int ub_info(void *h, struct pl_board_info *out, struct errbuf *err)
{
	struct pl_usb_board *pb = h;
	struct proto_info info;
	int rc;

	if ((rc = board_info(pb->b, &info, err)))
		return rc;
	memset(out, 0, sizeof(*out));
	snprintf(out->unique_id, sizeof(out->unique_id), "%s", info.uid);
	snprintf(out->usb_serial, sizeof(out->usb_serial), "%s", usb_serial(pb->ub));
	if (info.has_fw_sha256)
		hex_encode(info.fw_sha256, sizeof(info.fw_sha256), out->firmware_sha256);
	out->locked = info.state == PROTO_STATE_LOCKED;
	out->has_cert = info.state >= PROTO_STATE_CERTIFIED;
	if (info.att_cert.len > sizeof(out->attest_cert))
		return errbuf_setr(err, ST_EPROTO, ST_ORIGIN_BOARD, ST_R_GARBLED,
				   "attestation certificate of %zu bytes", info.att_cert.len);
	memcpy(out->attest_cert, info.att_cert.p, info.att_cert.len);
	out->attest_cert_len = info.att_cert.len;
	return ST_OK;
}

struct flash_progress {
	pl_progress_fn cb;
	void *ctx;
};

/* Download then read-back verify: reported as one 0..2*len bar. */
static void on_dfu_progress(void *arg, const char *phase, size_t done, size_t total)
{
	struct flash_progress *fp = arg;

	if (!strcmp(phase, "verify"))
		done += total;
	fp->cb(done, 2 * (uint64_t)total, fp->ctx);
}

static int ub_flash(void *h, const uint8_t *image, size_t len, pl_progress_fn cb,
		    void *cb_ctx, struct errbuf *err)
{
	struct pl_usb_board *pb = h;
	struct flash_progress fp = { cb, cb_ctx };
	struct dfu_opts o;
	uint8_t d[32];

	memset(&o, 0, sizeof(o));
	o.limit = &pb->limit;
	o.progress = on_dfu_progress;
	o.arg = &fp;
	SHA256(image, len, d);
	return dfu_flash(pb->ub, image, len, d, &o, err);
}

static int ub_keygen(void *h, enum profile_key_type type, struct errbuf *err)
{
	struct pl_usb_board *pb = h;
	struct proto_genkey g;
	uint8_t alg = type == PROFILE_KEY_EC_P384 ? PROTO_ALG_P384 :
		      type == PROFILE_KEY_RSA_3072 ? PROTO_ALG_RSA3072 : PROTO_ALG_P256;

	return board_genkey(pb->b, alg, &g, err);
}

static int ub_get_csr(void *h, const uint8_t nonce[PROTO_NONCE_LEN], uint8_t **der, size_t *len,
		      struct errbuf *err)
{
	struct pl_usb_board *pb = h;
	struct proto_csr c;
	int rc;

	if ((rc = board_get_csr(pb->b, nonce, &c, err)))
		return rc;
	if (!(*der = dup_blob(&c.csr, len)))
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	return ST_OK;
}

static int ub_attest(void *h, const uint8_t nonce[PROTO_NONCE_LEN],
		     const uint8_t csr_sha256[PROTO_SHA256_LEN], uint8_t **sig, size_t *sig_len,
		     struct errbuf *err)
{
	struct pl_usb_board *pb = h;
	struct proto_attest a;
	int rc;

	if ((rc = board_attest(pb->b, nonce, &a, err)))
		return rc;
	/* the board names the CSR it attested: it must be the one we checked */
	if (memcmp(a.csr_sha256, csr_sha256, 32))
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_ATTEST_OTHER_CSR,
				   "board attested another CSR than the one it sent");
	if (!(*sig = dup_blob(&a.sig, sig_len)))
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	return ST_OK;
}

static int ub_write_cert(void *h, const uint8_t *der, size_t len, struct errbuf *err)
{
	struct pl_usb_board *pb = h;
	struct proto_certs c;

	memset(&c, 0, sizeof(c));
	c.leaf.p = der;
	c.leaf.len = len;
	if (pb->u->ca_der) {
		c.chain[0].p = pb->u->ca_der;
		c.chain[0].len = pb->u->ca_len;
		c.n_chain = 1;
	}
	return board_write_cert(pb->b, &c, err);
}

static int ub_read_cert(void *h, uint8_t **der, size_t *len, struct errbuf *err)
{
	struct pl_usb_board *pb = h;
	struct proto_certs c;
	int rc;

	if ((rc = board_read_cert(pb->b, &c, err)))
		return rc;
	if (!(*der = dup_blob(&c.leaf, len)))
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	return ST_OK;
}

static int ub_prove(void *h, const uint8_t challenge[PROTO_NONCE_LEN], uint8_t **sig,
		    size_t *sig_len, struct errbuf *err)
{
	struct pl_usb_board *pb = h;
	struct proto_sig s;
	int rc;

	if ((rc = board_prove(pb->b, challenge, &s, err)))
		return rc;
	if (!(*sig = dup_blob(&s.sig, sig_len)))
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	return ST_OK;
}

static int ub_lock(void *h, struct errbuf *err)
{
	struct pl_usb_board *pb = h;
	uint8_t state = 0;
	int rc;

	if ((rc = board_lock(pb->b, &state, err)))
		return rc;
	if (state != PROTO_STATE_LOCKED)
		return errbuf_setr(err, ST_EPROTO, ST_ORIGIN_BOARD, ST_R_LOCK_UNCONFIRMED,
				   "board reports state %u after LOCK", state);
	return ST_OK;
}

static void ub_close(void *h)
{
	struct pl_usb_board *pb = h;

	board_free(pb->b);
	usb_close(pb->ub);
	free(pb);
}

static void ub_set_limit(void *h, const struct clock_limit *l)
{
	struct pl_usb_board *pb = h;

	pb->limit = *l;
}

static const struct pl_board_ops usb_board_ops = {
	ub_info, ub_flash, ub_keygen, ub_get_csr, ub_attest, ub_write_cert,
	ub_read_cert, ub_prove, ub_lock, ub_close, ub_set_limit,
};

static int t_scan(void *ctx, struct pl_present *out, int max, int *n, struct errbuf *err)
{
	struct pl_usb *u = ctx;
	struct usb_found found[PL_MAX_BAYS * 2];
	size_t got = 0;
	int rc;

	*n = 0;
	if ((rc = usb_scan(u->ctx, found, sizeof(found) / sizeof(found[0]), &got, err)))
		return rc;
	for (size_t i = 0; i < got && *n < max; i++) {
		if (str_copy(out[*n].port, sizeof(out[*n].port), found[i].bay))
			return errbuf_set(err, ST_EINVAL, "usb: bay label %.32s... is too long",
					  found[i].bay);
		out[*n].serial[0] = '\0';   /* read at open (usb_serial) */
		out[*n].instance = (uint32_t)found[i].bus << 8 | found[i].addr;
		(*n)++;
	}
	return ST_OK;
}

static int t_open(void *ctx, const char *port, const struct pl_board_ops **ops,
		  void **handle, char serial[EV_UID_LEN], struct errbuf *err)
{
	struct pl_usb *u = ctx;
	struct pl_usb_board *pb = calloc(1, sizeof(*pb));
	struct board_opts bo = u->bopts;
	int rc;

	if (!pb)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	pb->u = u;
	bo.limit = &pb->limit;
	if ((rc = usb_open(u->ctx, port, &pb->ub, err))) {
		free(pb);
		return rc;
	}
	if ((rc = board_new(&pb->b, pb->ub, &bo, err))) {
		usb_close(pb->ub);
		free(pb);
		return rc;
	}
	snprintf(serial, EV_UID_LEN, "%s", usb_serial(pb->ub));
	*ops = &usb_board_ops;
	*handle = pb;
	return ST_OK;
}

int pl_usb_open(const struct profile *p, const uint8_t *ca_der, size_t ca_len,
		struct pl_usb **out, struct errbuf *err)
{
	struct pl_usb *u = calloc(1, sizeof(*u));
	int rc;

	*out = NULL;
	if (!u)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	if ((rc = usb_ctx_new(&u->ctx, p->usb_vid, p->usb_pid, err))) {
		free(u);
		return rc;
	}
	if (ca_der && ca_len) {
		u->ca_der = malloc(ca_len);
		if (!u->ca_der) {
			pl_usb_close(u);
			return errbuf_set(err, ST_ENOMEM, "out of memory");
		}
		memcpy(u->ca_der, ca_der, ca_len);
		u->ca_len = ca_len;
	}
	/* RSA-3072 keygen on a small MCU takes seconds: the board answers BUSY and
	 * board_client polls, bounded by busy_limit_ms */
	u->bopts.busy_limit_ms = 120000;
	*out = u;
	return ST_OK;
}

void pl_usb_transport(struct pl_usb *u, struct pl_transport *t)
{
	t->scan = t_scan;
	t->open = t_open;
	t->ctx = u;
}

void pl_usb_close(struct pl_usb *u)
{
	if (!u)
		return;
	usb_ctx_free(u->ctx);
	free(u->ca_der);
	free(u);
}
