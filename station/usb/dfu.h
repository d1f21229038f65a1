/*
 * dfu: the station's USB DFU 1.1 host (firmware download and read-back).
 *
 * dfu_flash() brings the board's DFU interface to dfuIDLE (CLRSTATUS out of
 * dfuERROR, ABORT out of an unfinished transfer), downloads the image in
 * wTransferSize blocks (DNLOAD, then GETSTATUS until dfuDNLOAD-IDLE, sleeping
 * bwPollTimeout between polls), ends with the zero-length DNLOAD, waits through
 * manifestation, then reads the image back with UPLOAD and compares its SHA-256
 * with the expected hash (the profile's firmware hash).  The image itself must
 * hash to that value too, so a wrong file is never written.
 *
 * Every control transfer has a timeout; a block that stays busy longer than
 * opts->busy_limit_ms fails with ST_ETIMEOUT.  A device error (dfuERROR) is
 * reported with its bStatus name and cleared with CLRSTATUS so the bay can retry.
 * An unplugged board fails with ST_ENODEV.  Messages name the bay, the stage
 * (download, manifest, verify) and the block.
 *
 * Limits (issue 13): the board chooses bwPollTimeout (up to 4.66 h) and
 * wTransferSize, so neither is trusted.  Every wait, the bwPollTimeout sleeps of
 * dfu_to_idle() included, goes through opts->limit (core/clock.h): it ends at
 * the deadline (ST_ETIMEOUT, reason stage_deadline) or on a stop request
 * (ST_ECANCELED, reason canceled, within CLOCK_NAP_SLICE_MS), and each control
 * transfer's timeout is cut to what is left.  Before anything is written, a
 * wTransferSize below DFU_MIN_TRANSFER (ST_EPROTO, flash_transfer_size) or an
 * image needing more than DFU_MAX_BLOCKS blocks (ST_EINVAL,
 * flash_too_many_blocks) is refused.
 */
#ifndef STATION_DFU_H
#define STATION_DFU_H

#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/errbuf.h"
#include "usb/usb.h"

/* DFU 1.1 states (bState). */
enum dfu_state {
	DFU_APP_IDLE = 0, DFU_APP_DETACH, DFU_IDLE, DFU_DNLOAD_SYNC, DFU_DNBUSY,
	DFU_DNLOAD_IDLE, DFU_MANIFEST_SYNC, DFU_MANIFEST, DFU_MANIFEST_WAIT_RESET,
	DFU_UPLOAD_IDLE, DFU_ERROR,
};

struct dfu_status {
	uint8_t status;             /* bStatus, 0 = OK */
	uint32_t poll_ms;           /* bwPollTimeout */
	uint8_t state;              /* bState */
};

/* Called after each block: done and total in bytes.  phase is "download" or
 * "verify". */
typedef void (*dfu_progress_fn)(void *arg, const char *phase, size_t done, size_t total);

#define DFU_MIN_TRANSFER 64u        /* smallest wTransferSize accepted, bytes */
#define DFU_MAX_BLOCKS   16384u     /* most blocks one image may take */

struct dfu_opts {
	unsigned timeout_ms;        /* per control transfer; 0 = 2000 */
	unsigned busy_limit_ms;     /* longest wait for one block or manifestation; 0 = 30000 */
	const struct clock_limit *limit; /* deadline and stop for every wait; NULL = none */
	dfu_progress_fn progress;   /* may be NULL */
	void *arg;
};

/* Downloads, manifests and verifies (see above). */
ST_MUST_CHECK int dfu_flash(struct usb_board *b, const uint8_t *image, size_t len,
			    const uint8_t sha256[32], const struct dfu_opts *o, struct errbuf *e);

/* The pieces, for tests and tools. */
ST_MUST_CHECK int dfu_get_status(struct usb_board *b, struct dfu_status *st,
				 const struct dfu_opts *o,
				 struct errbuf *e);
ST_MUST_CHECK int dfu_to_idle(struct usb_board *b, const struct dfu_opts *o, struct errbuf *e);
ST_MUST_CHECK int dfu_download(struct usb_board *b, const uint8_t *image, size_t len,
			       const struct dfu_opts *o, struct errbuf *e);
/* Reads the whole image back (until a short block, at most max_len bytes) and
 * compares its length with len and its SHA-256 with sha256. */
ST_MUST_CHECK int dfu_verify(struct usb_board *b, size_t len, const uint8_t sha256[32],
			     const struct dfu_opts *o, struct errbuf *e);

const char *dfu_state_name(int state);
const char *dfu_status_name(int status);

#endif
