/*
 * board_client: the station's side of the board provisioning protocol
 * (docs/protocol.md) over the usb transport.
 *
 * board_call() sends one request frame and returns the final reply: it reads
 * with a timeout, discards stale replies (an earlier seq), follows BUSY by
 * sleeping POLL_MS and sending POLL until the operation ends (bounded by
 * busy_limit_ms), and recovers from a lost or corrupt reply, a NAK or a stalled
 * endpoint:
 *   - a retry-safe command (every command but GENKEY) is re-sent, at most
 *     `retries` times;
 *   - GENKEY is never re-sent blindly: POLL asks the board what became of it
 *     (the board keeps the result); only when POLL shows it never started, or
 *     the board NAKed the request frame, is it sent again.
 * An unplugged board fails at once with ST_ENODEV.  Error replies map to an
 * st_rc (proto_status_rc) with the board's message.  Every message names the
 * bay and the command.
 *
 * A decoded reply points into the client's receive buffer: it stays valid until
 * the next call on the same client.  One client per bay, used by one thread.
 */
#ifndef STATION_BOARD_CLIENT_H
#define STATION_BOARD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/errbuf.h"
#include "proto/proto.h"
#include "usb/usb.h"

struct board_opts {
	unsigned timeout_ms;        /* per transfer; 0 = 2000 */
	unsigned retries;           /* re-sends after a lost/corrupt reply; 0 = default 2 */
	unsigned busy_limit_ms;     /* longest BUSY/POLL phase; 0 = 120000 */
	/* Deadline and stop request for every transfer and BUSY wait (core/clock.h):
	 * read at each call, so its owner may move the deadline between calls;
	 * NULL = none.  A wait cut short fails ST_ETIMEOUT (stage_deadline) or
	 * ST_ECANCELED (canceled). */
	const struct clock_limit *limit;
};

struct board_stats {
	unsigned requests;          /* frames sent, POLLs included */
	unsigned retries;           /* re-sends after a lost/corrupt reply or NAK */
	unsigned corrupt;           /* replies that failed to decode */
	unsigned stale;             /* replies with an old seq, discarded */
	unsigned polls;             /* POLLs sent for BUSY operations */
	unsigned stalls;            /* stalled endpoints cleared */
};

struct board;

ST_MUST_CHECK int board_new(struct board **out, struct usb_board *ub, const struct board_opts *o,
			    struct errbuf *e);
void board_free(struct board *b);   /* does not close the usb_board */

/* One command (req->type, and the union member it needs; seq is set here). */
ST_MUST_CHECK int board_call(struct board *b, const struct proto_msg *req, struct proto_msg *rep,
			     struct errbuf *e);

/* The commands.  Output structures point into the receive buffer (see above). */
ST_MUST_CHECK int board_info(struct board *b, struct proto_info *out, struct errbuf *e);
ST_MUST_CHECK int board_genkey(struct board *b, uint8_t alg, struct proto_genkey *out,
			       struct errbuf *e);
ST_MUST_CHECK int board_get_csr(struct board *b, const uint8_t nonce[PROTO_NONCE_LEN],
				struct proto_csr *out, struct errbuf *e);
ST_MUST_CHECK int board_attest(struct board *b, const uint8_t nonce[PROTO_NONCE_LEN],
			       struct proto_attest *out, struct errbuf *e);
ST_MUST_CHECK int board_write_cert(struct board *b, const struct proto_certs *certs,
				   struct errbuf *e);
ST_MUST_CHECK int board_read_cert(struct board *b, struct proto_certs *out, struct errbuf *e);
ST_MUST_CHECK int board_prove(struct board *b, const uint8_t challenge[PROTO_NONCE_LEN],
			      struct proto_sig *out, struct errbuf *e);
ST_MUST_CHECK int board_lock(struct board *b, uint8_t *state, struct errbuf *e);
ST_MUST_CHECK int board_factory_reset(struct board *b, uint8_t *state, struct errbuf *e);

const struct board_stats *board_stats(const struct board *b);
struct usb_board *board_usb(struct board *b);

#endif
