/* board_client: see board_client.h and docs/protocol.md §2 and §4. */
#include "usb/board_client.h"
#include "core/clock.h"
#include "core/str.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEF_TIMEOUT_MS 2000u
#define DEF_RETRIES    2u
#define DEF_BUSY_MS    120000u

struct board {
	struct usb_board *ub;
	struct board_opts o;
	uint16_t seq;
	struct board_stats st;
	uint8_t tx[PROTO_MAX_FRAME];
	uint8_t rx[PROTO_MAX_FRAME];
};

int board_new(struct board **out, struct usb_board *ub, const struct board_opts *o,
	      struct errbuf *e)
{
	struct board *b;

	*out = NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return errbuf_setr(e, ST_ENOMEM, ST_ORIGIN_STATION, ST_R_NOMEM,
				   "bay %s: out of memory", usb_bay(ub));
	b->ub = ub;
	if (o)
		b->o = *o;
	if (!b->o.timeout_ms)
		b->o.timeout_ms = DEF_TIMEOUT_MS;
	if (!b->o.retries)
		b->o.retries = DEF_RETRIES;
	if (!b->o.busy_limit_ms)
		b->o.busy_limit_ms = DEF_BUSY_MS;
	/* Start the sequence somewhere else than a previous session on this board,
	 * so its late replies are recognised as stale. */
	b->seq = (uint16_t)(clock_monotonic_ms() * 7);
	*out = b;
	return ST_OK;
}

void board_free(struct board *b)
{
	free(b);
}

const struct board_stats *board_stats(const struct board *b)
{
	return &b->st;
}

struct usb_board *board_usb(struct board *b)
{
	return b->ub;
}

/* A wait cut short by the stage's deadline or a stop request. */
static int limit_err(struct board *b, int rc, struct errbuf *e)
{
	if (rc == ST_ECANCELED)
		return errbuf_setr(e, rc, ST_ORIGIN_STATION, ST_R_CANCELED,
				   "bay %s: stopped by the station", usb_bay(b->ub));
	return errbuf_setr(e, ST_ETIMEOUT, ST_ORIGIN_BOARD, ST_R_STAGE_DEADLINE,
			   "bay %s: deadline reached", usb_bay(b->ub));
}

/*
 * Sends req under a new seq and reads until the reply carrying that seq.
 * Returns ST_OK with rep decoded (any type, NAK included) or an error; *again
 * is set when a re-send may cure it (no reply, corrupt reply, stall).
 */
static int exchange(struct board *b, struct proto_msg *req, struct proto_msg *rep,
		    int *again, struct errbuf *e)
{
	struct errbuf de;
	int64_t deadline;
	size_t n, got;
	unsigned tmo;
	int rc;

	*again = 0;
	if ((rc = clock_limit_check(b->o.limit)))
		return limit_err(b, rc, e);
	tmo = clock_limit_cap(b->o.limit, b->o.timeout_ms);
	req->seq = ++b->seq;
	rc = proto_msg_encode(req, b->tx, sizeof(b->tx), &n, e);
	if (rc)
		return rc;
	b->st.requests++;
	rc = usb_bulk_write(b->ub, b->tx, n, tmo, e);
	if (rc == ST_EPROTO) {
		b->st.stalls++;
		*again = usb_clear_halt(b->ub, 0, NULL) == ST_OK;
	} else if (rc == ST_ETIMEOUT) {
		*again = 1;
	}
	if (rc)
		return rc;
	deadline = clock_monotonic_ms() + tmo;
	for (;;) {
		int64_t left = deadline - clock_monotonic_ms();

		if (left <= 0) {
			*again = 1;
			return errbuf_setr(e, ST_ETIMEOUT, ST_ORIGIN_BOARD, ST_R_BOARD_TIMEOUT,
					   "bay %s: no reply within %u ms", usb_bay(b->ub),
					   b->o.timeout_ms);
		}
		rc = usb_bulk_read(b->ub, b->rx, sizeof(b->rx), &got, (unsigned)left, e);
		if (rc == ST_ETIMEOUT) {
			*again = 1;
			return errbuf_setr(e, ST_ETIMEOUT, ST_ORIGIN_BOARD, ST_R_BOARD_TIMEOUT,
					   "bay %s: no reply within %u ms", usb_bay(b->ub),
					   b->o.timeout_ms);
		}
		if (rc == ST_EPROTO) {
			b->st.stalls++;
			*again = usb_clear_halt(b->ub, 1, NULL) == ST_OK;
			return rc;
		}
		if (rc)
			return rc;
		if (proto_msg_decode(b->rx, got, rep, &de) != ST_OK) {
			b->st.corrupt++;
			*again = 1;
			return errbuf_setr(e, ST_EPROTO, ST_ORIGIN_USB, ST_R_GARBLED,
					   "bay %s: corrupt reply: %s", usb_bay(b->ub), de.msg);
		}
		if (rep->seq == req->seq)
			return ST_OK;
		b->st.stale++;          /* the late answer to an earlier request */
	}
}

/* Sends req until a reply comes that is not a NAK, re-sending at most
 * `retries` times; a NAK means the board could not parse the frame, so nothing
 * happened and a re-send is safe for every command. */
static int send_safe(struct board *b, struct proto_msg *req, struct proto_msg *rep,
		     struct errbuf *e)
{
	unsigned tries;
	int rc, again;

	for (tries = 0;; tries++) {
		rc = exchange(b, req, rep, &again, e);
		if (rc == ST_OK && rep->type == PROTO_NAK) {
			again = 1;
			rc = errbuf_setr(e, ST_EPROTO, ST_ORIGIN_USB, ST_R_GARBLED,
					 "bay %s: board rejected the request frame (%s)",
					 usb_bay(b->ub), proto_status_name(rep->status));
		}
		if (rc == ST_OK || !again || tries >= b->o.retries)
			return rc;
		b->st.retries++;
	}
}

static int poll_once(struct board *b, struct proto_msg *rep, struct errbuf *e)
{
	struct proto_msg req;

	proto_msg_request(&req, PROTO_POLL, 0);
	return send_safe(b, &req, rep, e);
}

/*
 * A command that must not run twice (GENKEY).  A NAK means the board could not
 * parse the frame: it never ran, send it again.  A lost or corrupt reply means it
 * may have run: POLL asks (the board keeps the result of its last operation);
 * only when the answer is about another operation did it never start.
 */
static int send_once(struct board *b, const struct proto_msg *req_in, struct proto_msg *rep,
		     struct errbuf *e)
{
	uint8_t want = (uint8_t)(req_in->type | PROTO_RESPONSE);
	struct proto_msg req = *req_in;
	unsigned tries;
	int rc, again;

	rc = exchange(b, &req, rep, &again, e);
	for (tries = 0;; tries++) {
		int nak = rc == ST_OK && rep->type == PROTO_NAK;

		if (rc == ST_OK && !nak)
			return ST_OK;
		if (nak)
			rc = errbuf_setr(e, ST_EPROTO, ST_ORIGIN_USB, ST_R_GARBLED,
					 "bay %s: board rejected the request frame (%s)",
					 usb_bay(b->ub), proto_status_name(rep->status));
		else if (!again)
			return rc;
		if (tries >= b->o.retries)
			return rc;
		b->st.retries++;
		if (!nak) {
			rc = poll_once(b, rep, e);
			if (rc)
				return rc;
			if (rep->type == want)
				return ST_OK;   /* it ran (or runs): take its result */
		}
		req = *req_in;
		rc = exchange(b, &req, rep, &again, e);
	}
}

/* "bay 1-2: no reply ..." becomes "bay 1-2: GENKEY: no reply ...". */
static void name_command(struct board *b, uint8_t cmd, struct errbuf *e)
{
	char head[48], rest[sizeof(e->msg)];
	size_t hl;

	if (!e)
		return;
	snprintf(head, sizeof(head), "bay %s: ", usb_bay(b->ub));
	hl = strlen(head);
	if (strncmp(e->msg, head, hl) == 0) {
		snprintf(rest, sizeof(rest), "%s", e->msg + hl);
		/* a message is for a person: past the buffer it is cut, visibly */
		str_fmt_cut(e->msg, sizeof(e->msg), "%s%s: %s", head, proto_cmd_name(cmd), rest);
	} else {
		errbuf_prefix(e, "%s%s: ", head, proto_cmd_name(cmd));
	}
}

int board_call(struct board *b, const struct proto_msg *req_in, struct proto_msg *rep,
	       struct errbuf *e)
{
	uint8_t cmd = req_in->type, want = (uint8_t)(req_in->type | PROTO_RESPONSE);
	struct proto_msg req = *req_in;
	char board_text[4 * PROTO_MAX_MESSAGE + 1];
	int64_t deadline;
	uint32_t wait;
	int rc;

	if (proto_cmd_idempotent(cmd))
		rc = send_safe(b, &req, rep, e);
	else
		rc = send_once(b, req_in, rep, e);
	if (rc)
		goto fail;
	deadline = clock_monotonic_ms() + b->o.busy_limit_ms;
	for (;;) {
		if (rep->type != want) {
			rc = errbuf_setr(e, ST_EPROTO, ST_ORIGIN_BOARD, ST_R_GARBLED,
					 "bay %s: board answered %s%s (%s)", usb_bay(b->ub),
					 proto_cmd_name(rep->type),
					 rep->type & PROTO_RESPONSE ? "" : " request",
					 proto_status_name(rep->status));
			goto fail;
		}
		if (rep->status != PROTO_ST_BUSY)
			break;
		/* At least 1 ms: a board that says 0 forever must not make us spin. */
		wait = rep->u.busy.poll_ms;
		if (wait > PROTO_MAX_POLL_MS)
			wait = PROTO_MAX_POLL_MS;
		if (wait < 1)
			wait = 1;
		if (clock_monotonic_ms() + wait > deadline) {
			rc = errbuf_setr(e, ST_ETIMEOUT, ST_ORIGIN_BOARD, ST_R_BOARD_TIMEOUT,
					 "bay %s: still busy after %u ms", usb_bay(b->ub),
					 b->o.busy_limit_ms);
			goto fail;
		}
		if ((rc = clock_nap(b->o.limit, wait))) {
			rc = limit_err(b, rc, e);
			goto fail;
		}
		b->st.polls++;
		rc = poll_once(b, rep, e);
		if (rc)
			goto fail;
	}
	if (rep->status != PROTO_ST_OK) {
		/* the board's own words reach logs, events and the database: escaped */
		(void)str_sanitize(board_text, sizeof(board_text), rep->u.error.message,
				   strlen(rep->u.error.message));
		rc = proto_status_rc(rep->status);
		rc = rc ? rc : ST_EPROTO;
		/* the line tells a refused LOCK from any other error by this code */
		errbuf_setr(e, rc, ST_ORIGIN_BOARD,
			    cmd == PROTO_LOCK && rep->status == PROTO_ST_EREFUSED ?
			    ST_R_LOCK_REFUSED : ST_R_BOARD_ERROR,
			    "bay %s: board answered %s%s%s", usb_bay(b->ub),
			    proto_status_name(rep->status), rep->u.error.message[0] ? ": " : "",
			    board_text);
		goto fail;
	}
	return ST_OK;
fail:
	name_command(b, cmd, e);
	return rc;
}

/* ---- the commands ---- */

static int simple_call(struct board *b, uint8_t cmd, struct proto_msg *req, struct proto_msg *rep,
		       struct errbuf *e)
{
	req->type = cmd;
	req->status = 0;
	return board_call(b, req, rep, e);
}

int board_info(struct board *b, struct proto_info *out, struct errbuf *e)
{
	struct proto_msg req, rep;
	int rc;

	proto_msg_request(&req, PROTO_INFO, 0);
	rc = simple_call(b, PROTO_INFO, &req, &rep, e);
	if (rc == ST_OK)
		*out = rep.u.info;
	return rc;
}

int board_genkey(struct board *b, uint8_t alg, struct proto_genkey *out, struct errbuf *e)
{
	struct proto_msg req, rep;
	int rc;

	proto_msg_request(&req, PROTO_GENKEY, 0);
	req.u.genkey_req.alg = alg;
	rc = simple_call(b, PROTO_GENKEY, &req, &rep, e);
	if (rc == ST_OK)
		*out = rep.u.genkey;
	return rc;
}

int board_get_csr(struct board *b, const uint8_t nonce[PROTO_NONCE_LEN],
		  struct proto_csr *out, struct errbuf *e)
{
	struct proto_msg req, rep;
	int rc;

	proto_msg_request(&req, PROTO_GET_CSR, 0);
	memcpy(req.u.nonce_req.nonce, nonce, PROTO_NONCE_LEN);
	rc = simple_call(b, PROTO_GET_CSR, &req, &rep, e);
	if (rc == ST_OK)
		*out = rep.u.csr;
	return rc;
}

int board_attest(struct board *b, const uint8_t nonce[PROTO_NONCE_LEN],
		 struct proto_attest *out, struct errbuf *e)
{
	struct proto_msg req, rep;
	int rc;

	proto_msg_request(&req, PROTO_ATTEST, 0);
	memcpy(req.u.nonce_req.nonce, nonce, PROTO_NONCE_LEN);
	rc = simple_call(b, PROTO_ATTEST, &req, &rep, e);
	if (rc == ST_OK)
		*out = rep.u.attest;
	return rc;
}

int board_write_cert(struct board *b, const struct proto_certs *certs, struct errbuf *e)
{
	struct proto_msg req, rep;

	proto_msg_request(&req, PROTO_WRITE_CERT, 0);
	req.u.certs = *certs;
	return simple_call(b, PROTO_WRITE_CERT, &req, &rep, e);
}

int board_read_cert(struct board *b, struct proto_certs *out, struct errbuf *e)
{
	struct proto_msg req, rep;
	int rc;

	proto_msg_request(&req, PROTO_READ_CERT, 0);
	rc = simple_call(b, PROTO_READ_CERT, &req, &rep, e);
	if (rc == ST_OK)
		*out = rep.u.certs;
	return rc;
}

int board_prove(struct board *b, const uint8_t challenge[PROTO_NONCE_LEN],
		struct proto_sig *out, struct errbuf *e)
{
	struct proto_msg req, rep;
	int rc;

	proto_msg_request(&req, PROTO_PROVE, 0);
	memcpy(req.u.prove_req.challenge, challenge, PROTO_NONCE_LEN);
	rc = simple_call(b, PROTO_PROVE, &req, &rep, e);
	if (rc == ST_OK)
		*out = rep.u.sig;
	return rc;
}

static int confirm_call(struct board *b, uint8_t cmd, uint32_t magic, uint8_t *state,
			struct errbuf *e)
{
	struct proto_msg req, rep;
	int rc;

	proto_msg_request(&req, cmd, 0);
	req.u.confirm.confirm = magic;
	rc = simple_call(b, cmd, &req, &rep, e);
	if (rc == ST_OK && state)
		*state = rep.u.state.state;
	return rc;
}

int board_lock(struct board *b, uint8_t *state, struct errbuf *e)
{
	return confirm_call(b, PROTO_LOCK, PROTO_CONFIRM_LOCK, state, e);
}

int board_factory_reset(struct board *b, uint8_t *state, struct errbuf *e)
{
	return confirm_call(b, PROTO_FACTORY_RESET, PROTO_CONFIRM_RESET, state, e);
}
