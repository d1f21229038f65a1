/* Unit tests: the DFU 1.1 host (station/usb/dfu.c) against emulated DFU devices,
 * through libusb and the umockdev harness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "usb/dfu.h"
#include "fixtures/usbemu/testdev.h"
#include "usb/usb.h"
#include "fixtures/usbemu/usbemu.h"

#define VID 0x1209
#define PID 0x0001

struct env {
	struct usbemu *emu;
	struct usb_ctx *usb;
	struct testdev *dev[3];
	struct usb_board *b[3];
	uint8_t *img, *back;
};

static int setup(void **state)
{
	struct env *env = calloc(1, sizeof(*env));
	struct errbuf e;
	size_t i;

	assert_non_null(env);
	assert_int_equal(usbemu_new(&env->emu, &e), ST_OK);
	assert_int_equal(usb_ctx_new(&env->usb, VID, PID, &e), ST_OK);
	env->img = malloc(TESTDEV_IMAGE_MAX);
	env->back = malloc(TESTDEV_IMAGE_MAX);
	assert_non_null(env->img);
	assert_non_null(env->back);
	for (i = 0; i < TESTDEV_IMAGE_MAX; i++)
		env->img[i] = (uint8_t)(i * 31 + (i >> 12));
	*state = env;
	return 0;
}

static int teardown(void **state)
{
	struct env *env = *state;
	int i;

	for (i = 0; i < 3; i++)
		usb_close(env->b[i]);
	usb_ctx_free(env->usb);
	usbemu_free(env->emu);
	for (i = 0; i < 3; i++)
		testdev_free(env->dev[i]);
	free(env->img);
	free(env->back);
	free(env);
	return 0;
}

static void board(struct env *env, int i, const char *port, unsigned kib_s, uint16_t xfer)
{
	struct testdev_cfg cfg = { .vid = VID, .pid = PID, .flash_kib_s = kib_s,
				   .transfer_size = xfer };
	struct errbuf e;

	snprintf(cfg.serial, sizeof(cfg.serial), "%024X", 0xD0 + i);
	env->dev[i] = testdev_new(&cfg);
	assert_non_null(env->dev[i]);
	if (usbemu_plug(env->emu, port, &testdev_ops, env->dev[i], &e) != ST_OK)
		fail_msg("%s", e.msg);
	if (usb_open(env->usb, port, &env->b[i], &e) != ST_OK)
		fail_msg("%s", e.msg);
}

struct prog {
	size_t calls, last, total;
	int monotonic;
};

static void on_progress(void *arg, const char *phase, size_t done, size_t total)
{
	struct prog *p = arg;

	if (strcmp(phase, "download") != 0)
		return;
	if (done <= p->last)
		p->monotonic = 0;
	p->calls++;
	p->last = done;
	p->total = total;
}

static void flash_ok(struct env *env, int i, size_t len)
{
	uint8_t md[32];
	struct prog p = { .monotonic = 1 };
	struct dfu_opts o = { .progress = on_progress, .arg = &p };
	struct errbuf e;
	size_t xfer = usb_dfu(env->b[i])->transfer_size;

	SHA256(env->img, len, md);
	if (dfu_flash(env->b[i], env->img, len, md, &o, &e) != ST_OK)
		fail_msg("%s", e.msg);
	assert_int_equal(testdev_image(env->dev[i], env->back, TESTDEV_IMAGE_MAX), len);
	assert_memory_equal(env->back, env->img, len);
	assert_int_equal(p.calls, (len + xfer - 1) / xfer);
	assert_int_equal(p.last, len);
	assert_int_equal(p.total, len);
	assert_true(p.monotonic);
}

static void test_flash_and_verify(void **state)
{
	struct env *env = *state;

	board(env, 0, "1-1", 0, 0);
	flash_ok(env, 0, 300 * 1024 + 17);      /* a short last block */
	flash_ok(env, 0, 64 * 1024);            /* ends with a zero-length upload */
}

static void test_small_transfer_size(void **state)
{
	struct env *env = *state;

	board(env, 0, "1-1", 0, 1024);
	assert_int_equal(usb_dfu(env->b[0])->transfer_size, 1024);
	flash_ok(env, 0, 10 * 1024 + 1);
}

/* A board's wTransferSize below the floor, or an image needing too many
 * blocks, is refused before anything is written; a slow board's waits end at
 * the deadline and on a stop request (issue 13). */
static int stop_now(void *arg)
{
	return *(int *)arg;
}

static void test_limits(void **state)
{
	struct env *env = *state;
	uint8_t md[32];
	struct errbuf e;
	int stop = 0;
	struct clock_limit lim = { 0, stop_now, &stop };
	struct dfu_opts o = { .limit = &lim };
	int64_t t0;

	board(env, 0, "1-1", 0, DFU_MIN_TRANSFER - 1);
	SHA256(env->img, 4096, md);
	assert_int_equal(dfu_flash(env->b[0], env->img, 4096, md, &o, &e), ST_EPROTO);
	assert_int_equal(e.reason, ST_R_FLASH_XFER_SMALL);
	assert_int_equal(testdev_image(env->dev[0], env->back, TESTDEV_IMAGE_MAX), 0);

	board(env, 1, "1-2", 0, DFU_MIN_TRANSFER);
	SHA256(env->img, DFU_MAX_BLOCKS * DFU_MIN_TRANSFER + 1, md);
	assert_int_equal(dfu_flash(env->b[1], env->img, DFU_MAX_BLOCKS * DFU_MIN_TRANSFER + 1, md,
				   &o, &e), ST_EINVAL);
	assert_int_equal(e.reason, ST_R_FLASH_TOO_MANY_BLOCKS);

	/* 1 KiB/s: each 4 KiB block is busy for 4 s, past a 300 ms deadline */
	board(env, 2, "1-3", 1, 0);
	SHA256(env->img, 8192, md);
	lim.deadline_ms = clock_monotonic_ms() + 300;
	t0 = clock_monotonic_ms();
	assert_int_equal(dfu_flash(env->b[2], env->img, 8192, md, &o, &e), ST_ETIMEOUT);
	assert_true(clock_monotonic_ms() - t0 < 1500);
	/* stopped: the wait for dfuIDLE (still busy) ends within a slice */
	lim.deadline_ms = 0;
	stop = 1;
	t0 = clock_monotonic_ms();
	assert_int_equal(dfu_flash(env->b[2], env->img, 8192, md, &o, &e), ST_ECANCELED);
	assert_int_equal(e.reason, ST_R_CANCELED);
	assert_true(clock_monotonic_ms() - t0 < 1000);
}

static void test_poll_timeout_honoured(void **state)
{
	struct env *env = *state;

	/* 4 KiB blocks at 1 MiB/s: each block busy about 4 ms. */
	board(env, 0, "1-1", 1024, 0);
	flash_ok(env, 0, 64 * 1024);
	assert_int_equal(testdev_early_polls(env->dev[0]), 0);
}

static void test_wrong_image_not_flashed(void **state)
{
	struct env *env = *state;
	uint8_t md[32];
	struct errbuf e;

	board(env, 0, "1-1", 0, 0);
	SHA256(env->img, 1000, md);
	md[0] ^= 1;
	assert_int_equal(dfu_flash(env->b[0], env->img, 1000, md, NULL, &e), ST_EINVAL);
	assert_non_null(strstr(e.msg, "not flashed"));
	assert_int_equal(e.reason, ST_R_IMAGE_MISMATCH);
	assert_int_equal(testdev_image(env->dev[0], env->back, 16), 0);
}

static void test_verify_detects_other_image(void **state)
{
	struct env *env = *state;
	uint8_t md[32];
	struct errbuf e;

	board(env, 0, "1-1", 0, 0);
	flash_ok(env, 0, 5000);
	SHA256(env->img + 1, 5000, md);
	assert_int_equal(dfu_verify(env->b[0], 5000, md, NULL, &e), ST_ETAMPER);
	assert_non_null(strstr(e.msg, "SHA-256"));
	assert_int_equal(e.origin, ST_ORIGIN_BOARD);
	assert_int_equal(e.reason, ST_R_FLASH_READBACK);
	SHA256(env->img, 4999, md);
	assert_int_equal(dfu_verify(env->b[0], 4999, md, NULL, &e), ST_ETAMPER);
}

static void test_recovers_from_error_and_unfinished(void **state)
{
	struct env *env = *state;
	struct dfu_status st;
	struct errbuf e;
	uint8_t blk[64] = { 0 };

	board(env, 0, "1-1", 0, 0);
	/* CLRSTATUS in dfuIDLE is a protocol error: the device stalls and
	 * enters dfuERROR. */
	assert_int_equal(usb_control(env->b[0], 0x21, 4, 0, 1, NULL, 0, NULL, 1000, &e), ST_EPROTO);
	assert_int_equal(dfu_get_status(env->b[0], &st, NULL, &e), ST_OK);
	assert_int_equal(st.state, DFU_ERROR);
	flash_ok(env, 0, 9000);
	/* An unfinished download (one block, no zero-length DNLOAD) is aborted. */
	assert_int_equal(usb_control(env->b[0], 0x21, 1, 0, 1, blk, sizeof(blk), NULL, 1000, &e), ST_OK);
	assert_int_equal(dfu_get_status(env->b[0], &st, NULL, &e), ST_OK);
	assert_int_equal(st.state, DFU_DNLOAD_IDLE);
	flash_ok(env, 0, 7000);
}

struct flasher {
	struct env *env;
	int i, rc;
	size_t len;
	char msg[512];
};

static void *flash_thread(void *arg)
{
	struct flasher *f = arg;
	uint8_t md[32];
	struct errbuf e;

	SHA256(f->env->img, f->len, md);
	f->rc = dfu_flash(f->env->b[f->i], f->env->img, f->len, md, NULL, &e);
	snprintf(f->msg, sizeof(f->msg), "%s", f->rc ? e.msg : "");
	return NULL;
}

static void test_unplug_mid_flash(void **state)
{
	struct env *env = *state;
	struct flasher f[2];
	pthread_t t[2];
	int i;

	board(env, 0, "1-1", 4096, 0);
	board(env, 1, "1-2", 4096, 0);
	testdev_unplug_at_block(env->dev[0], 20);
	for (i = 0; i < 2; i++) {
		f[i] = (struct flasher){ .env = env, .i = i, .len = 256 * 1024 };
		assert_int_equal(pthread_create(&t[i], NULL, flash_thread, &f[i]), 0);
	}
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(f[0].rc, ST_ENODEV);
	assert_non_null(strstr(f[0].msg, "bay 1-1"));
	assert_non_null(strstr(f[0].msg, "unplugged"));
	assert_non_null(strstr(f[0].msg, "download, block 20: "));
	if (f[1].rc)
		fail_msg("the other bay failed: %s", f[1].msg);
	assert_int_equal(testdev_image(env->dev[1], env->back, TESTDEV_IMAGE_MAX), 256 * 1024);
	assert_memory_equal(env->back, env->img, 256 * 1024);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flash_and_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_transfer_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_timeout_honoured, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_image_not_flashed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_detects_other_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovers_from_error_and_unfinished, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unplug_mid_flash, setup, teardown),
	};

	(void)argc;
	if (usbemu_reexec_preloaded(argv) != 0) {
		perror("usbemu: re-exec under the umockdev preload");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
