/* dfu: see dfu.h.  USB DFU 1.1 (usb.org, "Device Class Specification for
 * Device Firmware Upgrade", version 1.1), sections 6.1 (download), 6.2 (upload)
 * and 6.1.3 (error recovery). */
#include "usb/dfu.h"
#include "core/clock.h"
#include "core/str.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

enum {
	REQ_DETACH = 0, REQ_DNLOAD, REQ_UPLOAD, REQ_GETSTATUS, REQ_CLRSTATUS,
	REQ_GETSTATE, REQ_ABORT,
};
#define RT_OUT 0x21   /* host to device, class, interface */
#define RT_IN  0xa1

#define DEF_TIMEOUT_MS 2000u
#define DEF_BUSY_MS    30000u

const char *dfu_state_name(int s)
{
	static const char *const n[] = {
		"appIDLE", "appDETACH", "dfuIDLE", "dfuDNLOAD-SYNC", "dfuDNBUSY",
		"dfuDNLOAD-IDLE", "dfuMANIFEST-SYNC", "dfuMANIFEST", "dfuMANIFEST-WAIT-RESET",
		"dfuUPLOAD-IDLE", "dfuERROR",
	};

	return s >= 0 && s <= DFU_ERROR ? n[s] : "unknown state";
}

const char *dfu_status_name(int s)
{
	static const char *const n[] = {
		"OK", "errTARGET", "errFILE", "errWRITE", "errERASE", "errCHECK_ERASED",
		"errPROG", "errVERIFY", "errADDRESS", "errNOTDONE", "errFIRMWARE",
		"errVENDOR", "errUSBR", "errPOR", "errUNKNOWN", "errSTALLEDPKT",
	};

	return s >= 0 && s <= 0x0f ? n[s] : "unknown status";
}

static const struct clock_limit *lim(const struct dfu_opts *o)
{
	return o ? o->limit : NULL;
}

static unsigned tmo(const struct dfu_opts *o)
{
	return clock_limit_cap(lim(o), o && o->timeout_ms ? o->timeout_ms : DEF_TIMEOUT_MS);
}

/* The error of a wait cut short by the limit (rc from clock_nap or
 * clock_limit_check). */
static int limit_err(struct usb_board *b, struct errbuf *e, int rc, const char *what)
{
	if (rc == ST_ECANCELED)
		return errbuf_setr(e, rc, ST_ORIGIN_STATION, ST_R_CANCELED,
				   "bay %s: %s: stopped by the station", usb_bay(b), what);
	return errbuf_setr(e, ST_ETIMEOUT, ST_ORIGIN_BOARD, ST_R_STAGE_DEADLINE,
			   "bay %s: %s: deadline reached", usb_bay(b), what);
}

/* The board's wTransferSize and the image's length, judged before anything is
 * written: a 1-byte transfer size would make a 1 MiB image a million round
 * trips. */
static int check_geometry(struct usb_board *b, size_t len, struct errbuf *e)
{
	const struct usb_dfu_desc *d = usb_dfu(b);

	if (d->transfer_size < DFU_MIN_TRANSFER)
		return errbuf_setr(e, ST_EPROTO, ST_ORIGIN_BOARD, ST_R_FLASH_XFER_SMALL,
				   "bay %s: DFU wTransferSize %u is below %u bytes: refused",
				   usb_bay(b), (unsigned)d->transfer_size, DFU_MIN_TRANSFER);
	if ((len + d->transfer_size - 1) / d->transfer_size > DFU_MAX_BLOCKS)
		return errbuf_setr(e, ST_EINVAL, ST_ORIGIN_BOARD, ST_R_FLASH_TOO_MANY_BLOCKS,
				   "bay %s: a %zu-byte image needs more than %u blocks of %u bytes: "
				   "refused", usb_bay(b), len, DFU_MAX_BLOCKS,
				   (unsigned)d->transfer_size);
	return ST_OK;
}

static unsigned busy_limit(const struct dfu_opts *o)
{
	return o && o->busy_limit_ms ? o->busy_limit_ms : DEF_BUSY_MS;
}

/* Puts context after the "bay X: " head of a message: "bay X: <ctx>: rest". */
static int ctx_insert(struct usb_board *b, struct errbuf *e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int ctx_insert(struct usb_board *b, struct errbuf *e, const char *fmt, ...)
{
	char head[48], what[128], rest[sizeof(e->msg)];
	size_t hl;
	va_list ap;

	if (!e)
		return ST_EIO;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(head, sizeof(head), "bay %s: ", usb_bay(b));
	hl = strlen(head);
	snprintf(rest, sizeof(rest), "%s", strncmp(e->msg, head, hl) == 0 ? e->msg + hl : e->msg);
	/* a message is for a person: past the buffer it is cut, visibly */
	str_fmt_cut(e->msg, sizeof(e->msg), "%s%s: %s", head, what, rest);
	return e->code;
}

static const char *req_name(uint8_t req)
{
	static const char *const n[] = {
		"DETACH", "DNLOAD", "UPLOAD", "GETSTATUS", "CLRSTATUS", "GETSTATE", "ABORT",
	};

	return req < 7 ? n[req] : "request";
}

/* One DFU class request; a failure reads "bay X: GETSTATUS: board unplugged". */
static int dfu_req(struct usb_board *b, uint8_t reqtype, uint8_t req, uint16_t value,
		   void *data, uint16_t len, size_t *got, const struct dfu_opts *o,
		   struct errbuf *e)
{
	struct errbuf ue;
	const char *why;
	int rc;

	rc = usb_control(b, reqtype, req, value, usb_dfu(b)->interface, data, len, got,
			 tmo(o), &ue);
	if (rc == ST_OK)
		return ST_OK;
	why = strrchr(ue.msg, ':');
	return errbuf_setr(e, rc, ue.origin, ue.reason, "bay %s: %s: %s", usb_bay(b), req_name(req),
			   why ? why + 2 : ue.msg);
}

int dfu_get_status(struct usb_board *b, struct dfu_status *st, const struct dfu_opts *o,
		   struct errbuf *e)
{
	uint8_t r[6];
	size_t got;
	int rc;

	rc = dfu_req(b, RT_IN, REQ_GETSTATUS, 0, r, sizeof(r), &got, o, e);
	if (rc)
		return rc;
	if (got != 6)
		return errbuf_setr(e, ST_EPROTO, ST_ORIGIN_BOARD, ST_R_GARBLED,
				   "bay %s: DFU GETSTATUS answered %zu bytes, not 6", usb_bay(b),
				   got);
	st->status = r[0];
	st->poll_ms = (uint32_t)r[1] | (uint32_t)r[2] << 8 | (uint32_t)r[3] << 16;
	st->state = r[4];
	return ST_OK;
}

static int simple(struct usb_board *b, uint8_t req, const struct dfu_opts *o, struct errbuf *e)
{
	return dfu_req(b, RT_OUT, req, 0, NULL, 0, NULL, o, e);
}

int dfu_to_idle(struct usb_board *b, const struct dfu_opts *o, struct errbuf *e)
{
	struct dfu_status st = { 0 };
	int rc, tries;

	for (tries = 0; tries < 4; tries++) {
		rc = dfu_get_status(b, &st, o, e);
		if (rc)
			return rc;
		switch (st.state) {
		case DFU_IDLE:
			return ST_OK;
		case DFU_ERROR:
			rc = simple(b, REQ_CLRSTATUS, o, e);
			break;
		case DFU_DNLOAD_SYNC:
		case DFU_DNLOAD_IDLE:
		case DFU_MANIFEST_SYNC:
		case DFU_UPLOAD_IDLE:
			rc = simple(b, REQ_ABORT, o, e);
			break;
		case DFU_DNBUSY:
		case DFU_MANIFEST:
			/* Busy: wait as told (within the limit), then look again. */
			rc = clock_nap(lim(o), st.poll_ms ? st.poll_ms : 1);
			if (rc)
				return limit_err(b, e, rc, "waiting for dfuIDLE");
			break;
		default:
			return errbuf_setr(e, ST_ESTATE, ST_ORIGIN_BOARD, ST_R_FLASH_STATE,
					   "bay %s: DFU interface in %s, cannot reach dfuIDLE",
					   usb_bay(b), dfu_state_name(st.state));
		}
		if (rc)
			return rc;
	}
	return errbuf_setr(e, ST_ESTATE, ST_ORIGIN_BOARD, ST_R_FLASH_STATE,
			   "bay %s: DFU interface stuck in %s", usb_bay(b),
			   dfu_state_name(st.state));
}

/* Polls GETSTATUS, honouring bwPollTimeout, until the state is neither busy
 * nor a sync state waiting for this poll; returns the final status. */
static int wait_settled(struct usb_board *b, struct dfu_status *st, const struct dfu_opts *o,
			const char *what, size_t block, struct errbuf *e)
{
	int64_t deadline = clock_monotonic_ms() + busy_limit(o);
	int rc;

	for (;;) {
		rc = dfu_get_status(b, st, o, e);
		if (rc)
			return ctx_insert(b, e, "%s, block %zu", what, block);
		if (st->state == DFU_ERROR) {
			errbuf_setr(e, ST_EIO, ST_ORIGIN_BOARD, ST_R_FLASH_ERROR,
				    "bay %s: %s, block %zu: device error %s (bStatus %u)",
				    usb_bay(b), what, block, dfu_status_name(st->status),
				    st->status);
			/* Leave the board recoverable for a retry. */
			simple(b, REQ_CLRSTATUS, o, NULL);
			return ST_EIO;
		}
		if (st->state != DFU_DNBUSY && st->state != DFU_MANIFEST &&
		    st->state != DFU_DNLOAD_SYNC && st->state != DFU_MANIFEST_SYNC)
			return ST_OK;
		if (clock_monotonic_ms() + st->poll_ms > deadline)
			return errbuf_setr(e, ST_ETIMEOUT, ST_ORIGIN_BOARD, ST_R_FLASH_TIMEOUT,
					   "bay %s: %s, block %zu: still %s after %u ms",
					   usb_bay(b), what, block, dfu_state_name(st->state),
					   busy_limit(o));
		/* At least 1 ms: a board that says 0 forever must not make us spin. */
		rc = clock_nap(lim(o), st->poll_ms ? st->poll_ms : 1);
		if (rc)
			return limit_err(b, e, rc, what);
	}
}

int dfu_download(struct usb_board *b, const uint8_t *image, size_t len,
		 const struct dfu_opts *o, struct errbuf *e)
{
	const struct usb_dfu_desc *d = usb_dfu(b);
	size_t off = 0, n, block = 0;
	struct dfu_status st = { 0 };
	int rc;

	if (!(d->attributes & 0x01))
		return errbuf_setr(e, ST_EPROTO, ST_ORIGIN_BOARD, ST_R_FLASH_STATE,
				   "bay %s: DFU interface cannot download", usb_bay(b));
	if (len == 0)
		return errbuf_setr(e, ST_EINVAL, ST_ORIGIN_USB, ST_R_INVALID,
				   "bay %s: download: empty image", usb_bay(b));
	if ((rc = check_geometry(b, len, e)))
		return rc;
	rc = dfu_to_idle(b, o, e);
	if (rc)
		return ctx_insert(b, e, "download");
	while (off < len) {
		if ((rc = clock_limit_check(lim(o))))
			return limit_err(b, e, rc, "download");
		n = len - off < d->transfer_size ? len - off : d->transfer_size;
		/* wValue is the block number; it wraps at 16 bits (DFU 1.1, 6.1.1). */
		rc = dfu_req(b, RT_OUT, REQ_DNLOAD, (uint16_t)block,
			     (void *)(uintptr_t)(image + off), (uint16_t)n, NULL, o, e);
		if (rc)
			return ctx_insert(b, e, "download, block %zu", block);
		rc = wait_settled(b, &st, o, "download", block, e);
		if (rc)
			return rc;
		if (st.state != DFU_DNLOAD_IDLE)
			return errbuf_setr(e, ST_EPROTO, ST_ORIGIN_BOARD, ST_R_FLASH_STATE,
					   "bay %s: download, block %zu: device in %s", usb_bay(b),
					   block, dfu_state_name(st.state));
		off += n;
		block++;
		if (o && o->progress)
			o->progress(o->arg, "download", off, len);
	}
	/* The zero-length DNLOAD ends the transfer and starts manifestation. */
	rc = dfu_req(b, RT_OUT, REQ_DNLOAD, (uint16_t)block, NULL, 0, NULL, o, e);
	if (rc)
		return ctx_insert(b, e, "manifest");
	rc = wait_settled(b, &st, o, "manifest", block, e);
	if (rc)
		return rc;
	if (st.state == DFU_MANIFEST_WAIT_RESET)
		return errbuf_setr(e, ST_ESTATE, ST_ORIGIN_BOARD, ST_R_FLASH_STATE,
				   "bay %s: manifest: board waits for a USB reset "
				   "(not manifestation tolerant)", usb_bay(b));
	if (st.state != DFU_IDLE)
		return errbuf_setr(e, ST_EPROTO, ST_ORIGIN_BOARD, ST_R_FLASH_STATE,
				   "bay %s: manifest: device in %s, not dfuIDLE", usb_bay(b),
				   dfu_state_name(st.state));
	return ST_OK;
}

int dfu_verify(struct usb_board *b, size_t len, const uint8_t sha256[32],
	       const struct dfu_opts *o, struct errbuf *e)
{
	const struct usb_dfu_desc *d = usb_dfu(b);
	uint8_t *buf, md[32];
	size_t total = 0, got, block = 0;
	unsigned mdlen = 0;
	EVP_MD_CTX *h;
	int rc = ST_OK;

	if (!(d->attributes & 0x02))
		return errbuf_setr(e, ST_EPROTO, ST_ORIGIN_BOARD, ST_R_FLASH_STATE,
				   "bay %s: DFU interface cannot upload", usb_bay(b));
	if ((rc = check_geometry(b, len, e)))
		return rc;
	rc = dfu_to_idle(b, o, e);
	if (rc)
		return ctx_insert(b, e, "verify");
	buf = malloc(d->transfer_size);
	h = EVP_MD_CTX_new();
	if (!buf || !h || !EVP_DigestInit_ex(h, EVP_sha256(), NULL)) {
		free(buf);
		EVP_MD_CTX_free(h);
		return errbuf_setr(e, ST_ENOMEM, ST_ORIGIN_STATION, ST_R_NOMEM,
				   "bay %s: verify: out of memory", usb_bay(b));
	}
	for (;;) {
		if ((rc = clock_limit_check(lim(o)))) {
			limit_err(b, e, rc, "verify");
			break;
		}
		rc = dfu_req(b, RT_IN, REQ_UPLOAD, (uint16_t)block, buf, d->transfer_size, &got,
			     o, e);
		if (rc) {
			ctx_insert(b, e, "verify, block %zu", block);
			break;
		}
		if (total + got > len) {
			/* Longer than the image: abort the upload, report. */
			simple(b, REQ_ABORT, o, NULL);
			rc = errbuf_setr(e, ST_ETAMPER, ST_ORIGIN_BOARD, ST_R_FLASH_READBACK,
					 "bay %s: verify: board holds more than the "
					 "%zu-byte image", usb_bay(b), len);
			break;
		}
		EVP_DigestUpdate(h, buf, got);
		total += got;
		block++;
		if (o && o->progress && got)
			o->progress(o->arg, "verify", total, len);
		if (got < d->transfer_size)
			break;          /* a short block ends the upload */
	}
	if (rc == ST_OK) {
		EVP_DigestFinal_ex(h, md, &mdlen);
		if (total != len)
			rc = errbuf_setr(e, ST_ETAMPER, ST_ORIGIN_BOARD, ST_R_FLASH_READBACK,
					 "bay %s: verify: read back %zu bytes, image is %zu",
					 usb_bay(b), total, len);
		else if (CRYPTO_memcmp(md, sha256, 32) != 0)
			rc = errbuf_setr(e, ST_ETAMPER, ST_ORIGIN_BOARD, ST_R_FLASH_READBACK,
					 "bay %s: verify: SHA-256 of the flash differs "
					 "from the firmware hash", usb_bay(b));
	}
	EVP_MD_CTX_free(h);
	free(buf);
	return rc;
}

int dfu_flash(struct usb_board *b, const uint8_t *image, size_t len,
	      const uint8_t sha256[32], const struct dfu_opts *o, struct errbuf *e)
{
	uint8_t md[32];
	unsigned mdlen = 0;
	int rc;

	if (!EVP_Digest(image, len, md, &mdlen, EVP_sha256(), NULL))
		return errbuf_setr(e, ST_ECRYPTO, ST_ORIGIN_USB, ST_R_CRYPTO,
				   "bay %s: hashing the image failed", usb_bay(b));
	if (CRYPTO_memcmp(md, sha256, 32) != 0)
		return errbuf_setr(e, ST_EINVAL, ST_ORIGIN_USB, ST_R_IMAGE_MISMATCH,
				   "bay %s: the image does not match the firmware hash; "
				   "not flashed", usb_bay(b));
	rc = dfu_download(b, image, len, o, e);
	if (rc)
		return rc;
	return dfu_verify(b, len, sha256, o, e);
}
