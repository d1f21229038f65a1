/* Unit tests: the board protocol client (station/usb/board_client.c) through libusb
 * and the umockdev harness, against a small responder of our own that speaks
 * the protocol (station/proto/proto.h) with fault knobs: corrupt, dropped, stale and
 * NAKed replies, a stalled endpoint, a lost request, an unplug. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usb/board_client.h"
#include "proto/proto.h"
#include "fixtures/usbemu/testdev.h"
#include "usb/usb.h"
#include "fixtures/usbemu/usbemu.h"

#define UID "0123456789ABCDEF01234567"

enum fault { F_NONE, F_CORRUPT, F_DROP, F_STALE, F_NAK, F_STALL, F_LOSE_REQ, F_UNPLUG };

/* The responder: descriptors and ep0 from a testdev, the vendor bulk pair here. */
struct resp {
	struct testdev *td;
	pthread_mutex_t mu;
	enum fault fault[8];        /* one per coming request, in order */
	int nfault;
	int always_corrupt;
	int always_busy;            /* GENKEY never ends, says poll 0 ms */
	int genkeys;                /* GENKEY operations started */
	int op;                     /* 0, or the running/finished operation type */
	int busy_polls;             /* POLLs still answered BUSY */
	uint8_t q[4][PROTO_MAX_FRAME];
	size_t qlen[4];
	int qn;
	uint8_t *in_buf;
	size_t in_cap;
	fx_urb_done_fn in_done;
	void *in_ctx;
	int stall;
	void (*unplug)(void *);
	void *unplug_ctx;
};

static const uint8_t fake_cert[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
static const uint8_t fake_key[] = { 0x30, 0x02, 0x05, 0x00 };

static void r_info(void *dev, struct fx_usbdev_info *out)
{
	struct resp *r = dev;

	testdev_ops.info(r->td, out);
}

static int r_control(void *dev, const uint8_t s[8], uint8_t *data, size_t *actual)
{
	struct resp *r = dev;

	if (s[0] == 0x02 && s[1] == 0x01 && s[4] == 0x81) {
		pthread_mutex_lock(&r->mu);
		r->stall = 0;
		pthread_mutex_unlock(&r->mu);
		return 0;
	}
	return testdev_ops.control(r->td, s, data, actual);
}

/* Delivers the first queued reply to a waiting IN request (r->mu held);
 * returns the completion to run unlocked. */
static int r_deliver(struct resp *r, fx_urb_done_fn *done, void **ctx, int *status, size_t *len)
{
	if (!r->in_done || (!r->stall && r->qn == 0))
		return 0;
	*done = r->in_done;
	*ctx = r->in_ctx;
	r->in_done = NULL;
	if (r->stall) {
		*status = -EPIPE;
		*len = 0;
		return 1;
	}
	*len = r->qlen[0] < r->in_cap ? r->qlen[0] : r->in_cap;
	memcpy(r->in_buf, r->q[0], *len);
	memmove(r->q[0], r->q[1], sizeof(r->q[0]) * 3);
	memmove(r->qlen, r->qlen + 1, sizeof(r->qlen[0]) * 3);
	r->qn--;
	*status = 0;
	return 1;
}

static void r_queue(struct resp *r, const struct proto_msg *m)
{
	struct errbuf e;

	if (r->qn < 4 && proto_msg_encode(m, r->q[r->qn], PROTO_MAX_FRAME, &r->qlen[r->qn], &e) == 0)
		r->qn++;
}

/* The answer to one request (r->mu held). */
static void r_answer(struct resp *r, const struct proto_msg *req, struct proto_msg *rep)
{
	uint8_t cmd = req->type;

	if (cmd == PROTO_POLL) {
		if (!r->op) {
			proto_msg_reply(rep, PROTO_POLL, req->seq, PROTO_ST_ENOOP);
			return;
		}
		cmd = (uint8_t)r->op;
	} else if (cmd == PROTO_GENKEY) {
		r->genkeys++;
		r->op = PROTO_GENKEY;
		r->busy_polls = 2;
	} else if (cmd != PROTO_INFO) {
		r->op = cmd;
		r->busy_polls = 0;
	}
	switch (cmd) {
	case PROTO_INFO:
		proto_msg_reply(rep, PROTO_INFO, req->seq, PROTO_ST_OK);
		snprintf(rep->u.info.uid, sizeof(rep->u.info.uid), UID);
		snprintf(rep->u.info.model, sizeof(rep->u.info.model), "responder");
		snprintf(rep->u.info.hw_rev, sizeof(rep->u.info.hw_rev), "A");
		rep->u.info.state = PROTO_STATE_FLASHED;
		rep->u.info.att_cert.p = fake_cert;
		rep->u.info.att_cert.len = sizeof(fake_cert);
		return;
	case PROTO_GENKEY:
		/* BUSY for the request and the first POLL, done at the second. */
		if (req->type == PROTO_POLL && r->busy_polls > 0)
			r->busy_polls--;
		if (r->busy_polls > 0 || r->always_busy) {
			proto_msg_reply(rep, PROTO_GENKEY, req->seq, PROTO_ST_BUSY);
			rep->u.busy.poll_ms = r->always_busy ? 0 : 3;
			return;
		}
		proto_msg_reply(rep, PROTO_GENKEY, req->seq, PROTO_ST_OK);
		rep->u.genkey.alg = PROTO_ALG_P256;
		rep->u.genkey.pubkey.p = fake_key;
		rep->u.genkey.pubkey.len = sizeof(fake_key);
		return;
	case PROTO_LOCK:
		proto_msg_reply(rep, PROTO_LOCK, req->seq, PROTO_ST_EREFUSED);
		snprintf(rep->u.error.message, sizeof(rep->u.error.message), "lock refused by knob");
		return;
	default:
		proto_msg_reply(rep, cmd, req->seq, PROTO_ST_EUNKNOWN);
		return;
	}
}

static int r_bulk_out(void *dev, uint8_t ep, const uint8_t *data, size_t len)
{
	struct resp *r = dev;
	struct proto_msg req, rep;
	struct errbuf e;
	enum fault f = F_NONE;
	fx_urb_done_fn done;
	void *ctx;
	int status, fire;
	size_t n;

	pthread_mutex_lock(&r->mu);
	if (r->nfault > 0) {
		f = r->fault[0];
		memmove(r->fault, r->fault + 1, sizeof(r->fault[0]) * 7);
		r->nfault--;
	}
	if (f == F_UNPLUG) {
		r->unplug(r->unplug_ctx);
		pthread_mutex_unlock(&r->mu);
		return 0;
	}
	if (f == F_LOSE_REQ) {
		pthread_mutex_unlock(&r->mu);
		return 0;
	}
	if (proto_msg_decode(data, len, &req, &e) != 0 || f == F_NAK) {
		proto_msg_reply(&rep, 0, 0, PROTO_ST_EFRAME);
		rep.type = PROTO_NAK;
		rep.seq = len >= 6 ? (uint16_t)(data[4] | data[5] << 8) : 0;
		r_queue(r, &rep);
	} else {
		r_answer(r, &req, &rep);
		if (f == F_STALE) {
			struct proto_msg old = rep;

			old.seq = (uint16_t)(req.seq - 1);
			r_queue(r, &old);
		}
		if (f == F_STALL)
			r->stall = 1;
		else if (f != F_DROP)
			r_queue(r, &rep);
		if ((f == F_CORRUPT || r->always_corrupt) && r->qn > 0)
			r->q[r->qn - 1][r->qlen[r->qn - 1] - 1] ^= 0x5a;   /* the CRC */
	}
	n = 0;
	fire = r_deliver(r, &done, &ctx, &status, &n);
	pthread_mutex_unlock(&r->mu);
	if (fire)
		done(ctx, status, n);
	return 0;
}

static int r_bulk_in_submit(void *dev, uint8_t ep, uint8_t *buf, size_t len,
			    fx_urb_done_fn done, void *ctx)
{
	struct resp *r = dev;
	fx_urb_done_fn d;
	void *c;
	int status, fire;
	size_t n = 0;

	pthread_mutex_lock(&r->mu);
	if (r->in_done) {
		pthread_mutex_unlock(&r->mu);
		return -EBUSY;
	}
	r->in_buf = buf, r->in_cap = len, r->in_done = done, r->in_ctx = ctx;
	fire = r_deliver(r, &d, &c, &status, &n);
	pthread_mutex_unlock(&r->mu);
	if (fire)
		d(c, status, n);
	return 0;
}

static int r_bulk_in_cancel(void *dev, void *ctx)
{
	struct resp *r = dev;
	int found;

	pthread_mutex_lock(&r->mu);
	found = r->in_done && r->in_ctx == ctx;
	if (found)
		r->in_done = NULL;
	pthread_mutex_unlock(&r->mu);
	return found;
}

static void r_set_unplug(void *dev, void (*unplug)(void *), void *ctx)
{
	struct resp *r = dev;

	pthread_mutex_lock(&r->mu);
	r->unplug = unplug, r->unplug_ctx = ctx;
	pthread_mutex_unlock(&r->mu);
}

static const struct fx_usbdev_ops resp_ops = {
	.info = r_info,
	.control = r_control,
	.bulk_out = r_bulk_out,
	.bulk_in_submit = r_bulk_in_submit,
	.bulk_in_cancel = r_bulk_in_cancel,
	.set_unplug_handler = r_set_unplug,
};

struct env {
	struct usbemu *emu;
	struct usb_ctx *usb;
	struct resp r;
	struct usb_board *ub;
	struct board *b;
};

static int setup(void **state)
{
	struct testdev_cfg cfg = { .vid = 0x1209, .pid = 0x0001, .serial = UID };
	struct board_opts o = { .timeout_ms = 300 };
	struct env *env = calloc(1, sizeof(*env));
	struct errbuf e;

	assert_non_null(env);
	pthread_mutex_init(&env->r.mu, NULL);
	env->r.td = testdev_new(&cfg);
	assert_non_null(env->r.td);
	assert_int_equal(usbemu_new(&env->emu, &e), ST_OK);
	assert_int_equal(usbemu_plug(env->emu, "1-1", &resp_ops, &env->r, &e), ST_OK);
	assert_int_equal(usb_ctx_new(&env->usb, 0x1209, 0x0001, &e), ST_OK);
	if (usb_open(env->usb, "1-1", &env->ub, &e) != ST_OK)
		fail_msg("%s", e.msg);
	assert_int_equal(board_new(&env->b, env->ub, &o, &e), ST_OK);
	*state = env;
	return 0;
}

static int teardown(void **state)
{
	struct env *env = *state;

	board_free(env->b);
	usb_close(env->ub);
	usb_ctx_free(env->usb);
	usbemu_free(env->emu);
	testdev_free(env->r.td);
	pthread_mutex_destroy(&env->r.mu);
	free(env);
	return 0;
}

static void faults(struct env *env, int n, ...)
{
	va_list ap;
	int i;

	va_start(ap, n);
	pthread_mutex_lock(&env->r.mu);
	for (i = 0; i < n; i++)
		env->r.fault[env->r.nfault++] = va_arg(ap, enum fault);
	pthread_mutex_unlock(&env->r.mu);
	va_end(ap);
}

static void info_ok(struct env *env)
{
	struct proto_info info;
	struct errbuf e;

	if (board_info(env->b, &info, &e) != ST_OK)
		fail_msg("%s", e.msg);
	assert_string_equal(info.uid, UID);
	assert_string_equal(usb_serial(env->ub), info.uid);
}

static void test_info(void **state)
{
	struct env *env = *state;

	info_ok(env);
	assert_int_equal(board_stats(env->b)->retries, 0);
}

static void test_busy_then_poll(void **state)
{
	struct env *env = *state;
	struct proto_genkey gk;
	struct errbuf e;

	assert_int_equal(board_genkey(env->b, PROTO_ALG_P256, &gk, &e), ST_OK);
	assert_int_equal(gk.pubkey.len, sizeof(fake_key));
	assert_int_equal(board_stats(env->b)->polls, 2);
	assert_int_equal(env->r.genkeys, 1);
}

static void test_corrupt_reply_retried(void **state)
{
	struct env *env = *state;

	faults(env, 1, F_CORRUPT);
	info_ok(env);
	assert_int_equal(board_stats(env->b)->corrupt, 1);
	assert_int_equal(board_stats(env->b)->retries, 1);
}

static void test_dropped_reply_retried(void **state)
{
	struct env *env = *state;

	faults(env, 1, F_DROP);
	info_ok(env);
	assert_int_equal(board_stats(env->b)->retries, 1);
}

static void test_stale_reply_discarded(void **state)
{
	struct env *env = *state;

	faults(env, 1, F_STALE);
	info_ok(env);
	assert_int_equal(board_stats(env->b)->stale, 1);
	assert_int_equal(board_stats(env->b)->retries, 0);
}

static void test_nak_resent(void **state)
{
	struct env *env = *state;

	faults(env, 1, F_NAK);
	info_ok(env);
	assert_int_equal(board_stats(env->b)->retries, 1);
}

static void test_stall_cleared(void **state)
{
	struct env *env = *state;

	faults(env, 1, F_STALL);
	info_ok(env);
	assert_int_equal(board_stats(env->b)->stalls, 1);
	assert_int_equal(board_stats(env->b)->retries, 1);
}

static void test_genkey_not_resent_after_corrupt_reply(void **state)
{
	struct env *env = *state;
	struct proto_genkey gk;
	struct errbuf e;

	faults(env, 1, F_CORRUPT);
	if (board_genkey(env->b, PROTO_ALG_P256, &gk, &e) != ST_OK)
		fail_msg("%s", e.msg);
	/* Recovered through POLL: the board made one key, not two. */
	assert_int_equal(env->r.genkeys, 1);
	assert_int_equal(board_stats(env->b)->corrupt, 1);
}

static void test_genkey_sent_again_when_lost(void **state)
{
	struct env *env = *state;
	struct proto_genkey gk;
	struct errbuf e;

	info_ok(env);
	faults(env, 1, F_LOSE_REQ);
	if (board_genkey(env->b, PROTO_ALG_P256, &gk, &e) != ST_OK)
		fail_msg("%s", e.msg);
	assert_int_equal(env->r.genkeys, 1);
}

static void test_genkey_nak_resent(void **state)
{
	struct env *env = *state;
	struct proto_genkey gk;
	struct errbuf e;

	faults(env, 1, F_NAK);
	if (board_genkey(env->b, PROTO_ALG_P256, &gk, &e) != ST_OK)
		fail_msg("%s", e.msg);
	assert_int_equal(env->r.genkeys, 1);
	assert_int_equal(board_stats(env->b)->retries, 1);
	/* Sent again at once: 2 GENKEY frames + the 2 POLLs of the BUSY phase. */
	assert_int_equal(board_stats(env->b)->requests, 4);
}

static void test_always_corrupt_fails_cleanly(void **state)
{
	struct env *env = *state;
	struct proto_info info;
	struct errbuf e;

	env->r.always_corrupt = 1;
	assert_int_equal(board_info(env->b, &info, &e), ST_EPROTO);
	assert_non_null(strstr(e.msg, "bay 1-1: INFO: corrupt reply"));
	assert_int_equal(e.origin, ST_ORIGIN_USB);
	assert_int_equal(e.reason, ST_R_GARBLED);
	assert_int_equal(board_stats(env->b)->requests, 3);
	env->r.always_corrupt = 0;
	info_ok(env);
}

static void test_error_status(void **state)
{
	struct env *env = *state;
	struct errbuf e;
	uint8_t st;

	assert_int_equal(board_lock(env->b, &st, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "bay 1-1: LOCK: board answered EREFUSED: lock refused by knob"));
	/* what the line decides on: the code, not the words */
	assert_int_equal(e.origin, ST_ORIGIN_BOARD);
	assert_int_equal(e.reason, ST_R_LOCK_REFUSED);
	assert_string_equal(st_reason_name(e.reason), "lock_refused");
}

static void test_endless_busy_bounded(void **state)
{
	struct env *env = *state;
	struct board_opts o = { .timeout_ms = 300, .busy_limit_ms = 200 };
	struct proto_genkey gk;
	struct board *b;
	struct errbuf e;

	assert_int_equal(board_new(&b, env->ub, &o, &e), ST_OK);
	env->r.always_busy = 1;
	assert_int_equal(board_genkey(b, PROTO_ALG_P256, &gk, &e), ST_ETIMEOUT);
	assert_non_null(strstr(e.msg, "bay 1-1: GENKEY: still busy after 200 ms"));
	assert_int_equal(e.reason, ST_R_BOARD_TIMEOUT);
	/* POLL 0 ms is taken as 1 ms: about 200 polls, not thousands. */
	assert_true(board_stats(b)->polls <= 210);
	board_free(b);
}

static void test_unplug_mid_protocol(void **state)
{
	struct env *env = *state;
	struct proto_info info;
	struct errbuf e;

	info_ok(env);
	faults(env, 1, F_UNPLUG);
	assert_int_equal(board_info(env->b, &info, &e), ST_ENODEV);
	assert_non_null(strstr(e.msg, "bay 1-1: INFO:"));
	assert_non_null(strstr(e.msg, "unplugged"));
	assert_int_equal(e.origin, ST_ORIGIN_USB);
	assert_int_equal(e.reason, ST_R_UNPLUGGED);
	/* Not retried: a gone board is final. */
	assert_int_equal(board_stats(env->b)->retries, 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_info, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_then_poll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_reply_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dropped_reply_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_reply_discarded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nak_resent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stall_cleared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_genkey_not_resent_after_corrupt_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_genkey_sent_again_when_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_genkey_nak_resent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_always_corrupt_fails_cleanly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_endless_busy_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unplug_mid_protocol, setup, teardown),
	};

	(void)argc;
	if (usbemu_reexec_preloaded(argv) != 0) {
		perror("usbemu: re-exec under the umockdev preload");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
