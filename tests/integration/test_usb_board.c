/* Unit tests: the station's transport, protocol client and DFU host against the
 * simulated board (fixtures/board), end to end through libusb and the umockdev
 * harness, with the board's own fault knobs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "usb/board_client.h"
#include "usb/dfu.h"
#include "fixtures/board/fx_board.h"
#include "fixtures/board/fx_knobs.h"
#include "fixtures/board/fx_mfg.h"
#include "fixtures/board/fx_store.h"
#include "proto/proto.h"
#include "usb/usb.h"
#include "fixtures/usbemu/usbemu.h"

#define NB 8

static struct fx_mfg_ca ca;
static int board_no;
static uint8_t *image;
static size_t image_len;
static uint8_t image_sha[32];

struct env {
	struct usbemu *emu;
	struct usb_ctx *usb;
	struct fx_board *fb[NB];
	char dir[NB][32];
	char uid[NB][25];
};

static int group_setup(void **state)
{
	static uint8_t body[200000];
	struct errbuf e;
	size_t i;

	(void)state;
	mkdir("mfr", 0700);
	if (fx_mfg_ca_open("mfr", "Test Manufacturer CA", &ca, &e) != ST_OK) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	for (i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 131 + (i >> 9));
	if (fx_mfg_image_write("fw.bin", body, sizeof(body), "2.0.1", &e) != ST_OK ||
	    fx_store_read(".", "fw.bin", PROTO_FW_MAX_IMAGE, &image, &image_len, &e) != ST_OK) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	SHA256(image, image_len, image_sha);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	fx_mfg_ca_free(&ca);
	free(image);
	return 0;
}

static int setup(void **state)
{
	struct env *env = calloc(1, sizeof(*env));
	struct errbuf e;

	assert_non_null(env);
	assert_int_equal(usbemu_new(&env->emu, &e), ST_OK);
	assert_int_equal(usb_ctx_new(&env->usb, 0x1209, 0x0001, &e), ST_OK);
	*state = env;
	return 0;
}

static int teardown(void **state)
{
	struct env *env = *state;
	int i;

	usb_ctx_free(env->usb);
	usbemu_free(env->emu);
	for (i = 0; i < NB; i++)
		fx_board_close(env->fb[i]);
	free(env);
	return 0;
}

/* Makes board i with fast timing plus knobs ("name", "value", ..., NULL), boots
 * it and plugs it in at port. */
static void board(struct env *env, int i, const char *port, ...)
{
	struct fx_knobs k;
	struct errbuf e;
	const char *name;
	va_list ap;

	snprintf(env->dir[i], sizeof(env->dir[i]), "board%d", ++board_no);
	assert_int_equal(fx_mfg_random_uid(env->uid[i], &e), ST_OK);
	if (fx_mfg_board_create(env->dir[i], env->uid[i], "SB-100", "rev B", 0x1209, 0x0001,
				&ca, NULL, &e) != ST_OK)
		fail_msg("%s", e.msg);
	fx_knobs_defaults(&k);
	k.flash_bps = 0;
	k.keygen_ms = 0;
	k.sign_ms = 0;
	va_start(ap, port);
	while ((name = va_arg(ap, const char *))) {
		const char *value = va_arg(ap, const char *);

		if (fx_knobs_set(&k, name, value, &e) != ST_OK)
			fail_msg("%s", e.msg);
	}
	va_end(ap);
	assert_int_equal(fx_knobs_save(env->dir[i], &k, &e), ST_OK);
	if (fx_board_open(env->dir[i], &env->fb[i], &e) != ST_OK)
		fail_msg("%s", e.msg);
	if (usbemu_plug(env->emu, port, &fx_board_ops, env->fb[i], &e) != ST_OK)
		fail_msg("%s", e.msg);
}

static void open_bay(struct env *env, const char *bay, struct usb_board **ub, struct board **b)
{
	struct board_opts o = { .timeout_ms = 500 };
	struct errbuf e;

	if (usb_open(env->usb, bay, ub, &e) != ST_OK)
		fail_msg("%s", e.msg);
	assert_int_equal(board_new(b, *ub, &o, &e), ST_OK);
}

static void test_provisioning_steps(void **state)
{
	struct env *env = *state;
	struct usb_board *ub;
	struct board *b;
	struct proto_info info;
	struct proto_genkey gk;
	struct proto_csr csr;
	uint8_t nonce[32] = { 1, 2, 3 };
	struct errbuf e;

	board(env, 0, "1-4", NULL);
	open_bay(env, "1-4", &ub, &b);
	assert_int_equal(board_info(b, &info, &e), ST_OK);
	assert_string_equal(info.uid, env->uid[0]);
	assert_string_equal(usb_serial(ub), info.uid);
	assert_int_equal(info.state, PROTO_STATE_BLANK);
	if (dfu_flash(ub, image, image_len, image_sha, NULL, &e) != ST_OK)
		fail_msg("%s", e.msg);
	assert_int_equal(board_info(b, &info, &e), ST_OK);
	assert_int_equal(info.state, PROTO_STATE_FLASHED);
	assert_string_equal(info.fw_version, "2.0.1");
	if (board_genkey(b, PROTO_ALG_P256, &gk, &e) != ST_OK)
		fail_msg("%s", e.msg);
	assert_true(gk.pubkey.len > 0);
	if (board_get_csr(b, nonce, &csr, &e) != ST_OK)
		fail_msg("%s", e.msg);
	assert_true(csr.csr.len > 0);
	board_free(b);
	usb_close(ub);
}

static void fault_recovered(struct env *env, const char *knob, unsigned want_corrupt,
			    unsigned want_stalls)
{
	struct usb_board *ub;
	struct board *b;
	struct proto_info info;
	struct errbuf e;

	board(env, 0, "1-1", knob, "info", NULL);
	open_bay(env, "1-1", &ub, &b);
	if (board_info(b, &info, &e) != ST_OK)
		fail_msg("%s: %s", knob, e.msg);
	assert_string_equal(info.uid, env->uid[0]);
	assert_int_equal(board_stats(b)->retries, 1);
	assert_int_equal(board_stats(b)->corrupt, want_corrupt);
	assert_int_equal(board_stats(b)->stalls, want_stalls);
	board_free(b);
	usb_close(ub);
}

static void test_corrupt_frame_recovered(void **state)
{
	fault_recovered(*state, "corrupt_reply", 1, 0);
}

static void test_stall_recovered(void **state)
{
	fault_recovered(*state, "stall_in", 0, 1);
}

static void test_dropped_reply_recovered(void **state)
{
	fault_recovered(*state, "drop_reply", 0, 0);
}

static void test_unplug_mid_protocol(void **state)
{
	struct env *env = *state;
	struct usb_board *ub, *ub2;
	struct board *b, *b2;
	struct proto_genkey gk;
	struct proto_info info;
	struct errbuf e;

	board(env, 0, "1-1", "unplug_at", "genkey", NULL);
	board(env, 1, "1-2", NULL);
	open_bay(env, "1-1", &ub, &b);
	open_bay(env, "1-2", &ub2, &b2);
	assert_int_equal(board_genkey(b, PROTO_ALG_P256, &gk, &e), ST_ENODEV);
	assert_non_null(strstr(e.msg, "bay 1-1: GENKEY:"));
	assert_non_null(strstr(e.msg, "unplugged"));
	assert_int_equal(usbemu_wait_gone(env->emu, "1-1", 2000), 1);
	/* The other bay carries on. */
	assert_int_equal(board_info(b2, &info, &e), ST_OK);
	assert_string_equal(info.uid, env->uid[1]);
	board_free(b);
	usb_close(ub);
	board_free(b2);
	usb_close(ub2);
}

/* A board that loses power answers nothing: through libusb the station sees its
 * own timeout (not an I/O error), the board stays plugged, the other bay carries on. */
static void test_power_loss_is_a_timeout(void **state)
{
	struct env *env = *state;
	struct usb_board *ub, *ub2;
	struct board *b, *b2;
	struct proto_genkey gk;
	struct proto_info info;
	struct errbuf e;

	board(env, 0, "1-1", "power_loss_at", "info", NULL);
	board(env, 1, "1-2", NULL);
	open_bay(env, "1-1", &ub, &b);
	open_bay(env, "1-2", &ub2, &b2);
	assert_int_equal(board_info(b, &info, &e), ST_ETIMEOUT);
	assert_non_null(strstr(e.msg, "bay 1-1"));
	/* Dead for every command now (a write the board never takes, too): each is a
	 * timeout, not an I/O error, and the board is still plugged. */
	assert_int_equal(board_genkey(b, PROTO_ALG_P256, &gk, &e), ST_ETIMEOUT);
	assert_int_equal(usbemu_wait_gone(env->emu, "1-1", 100), 0);
	assert_int_equal(board_info(b2, &info, &e), ST_OK);
	assert_string_equal(info.uid, env->uid[1]);
	board_free(b);
	usb_close(ub);
	board_free(b2);
	usb_close(ub2);
}

struct flasher {
	struct env *env;
	char bay[16];
	struct usb_board *ub;       /* opened before the thread starts */
	int rc;
	char msg[512];
};

/* Bays are opened before the flash threads start, so no bay's libusb context
 * is being initialised while another board is pulled (libusb 1.0.26 leaks a
 * device then). */
static void open_flasher(struct flasher *f)
{
	struct errbuf e;

	if (usb_open(f->env->usb, f->bay, &f->ub, &e) != ST_OK)
		fail_msg("%s", e.msg);
}

static void *flash_thread(void *arg)
{
	struct flasher *f = arg;
	struct errbuf e;

	f->rc = dfu_flash(f->ub, image, image_len, image_sha, NULL, &e);
	usb_close(f->ub);
	snprintf(f->msg, sizeof(f->msg), "%s", f->rc ? e.msg : "");
	return NULL;
}

static void test_unplug_mid_flash(void **state)
{
	struct env *env = *state;
	struct flasher f[2] = { { .env = env, .bay = "1-1" }, { .env = env, .bay = "1-2" } };
	pthread_t t[2];
	int i;

	board(env, 0, "1-1", "unplug_at", "dfu_dnload", "flash_bps", "2000000", NULL);
	board(env, 1, "1-2", "flash_bps", "2000000", NULL);
	for (i = 0; i < 2; i++)
		open_flasher(&f[i]);
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, flash_thread, &f[i]), 0);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(f[0].rc, ST_ENODEV);
	assert_non_null(strstr(f[0].msg, "bay 1-1: download"));
	assert_non_null(strstr(f[0].msg, "unplugged"));
	if (f[1].rc)
		fail_msg("the other bay failed: %s", f[1].msg);
}

static void test_flash_error_then_retry(void **state)
{
	struct env *env = *state;
	struct usb_board *ub;
	struct errbuf e;

	board(env, 0, "1-1", "flash_error_at", "dfu_dnload", NULL);
	if (usb_open(env->usb, "1-1", &ub, &e) != ST_OK)
		fail_msg("%s", e.msg);
	assert_int_equal(dfu_flash(ub, image, image_len, image_sha, NULL, &e), ST_EIO);
	assert_non_null(strstr(e.msg, "bay 1-1: download, block 0: device error errWRITE"));
	/* The fault fired once; the station cleared dfuERROR, a retry succeeds. */
	if (dfu_flash(ub, image, image_len, image_sha, NULL, &e) != ST_OK)
		fail_msg("%s", e.msg);
	usb_close(ub);
}

static void test_eight_boards(void **state)
{
	struct env *env = *state;
	struct flasher f[NB];
	pthread_t t[NB];
	struct usb_found found[16];
	struct errbuf e;
	size_t n;
	int i;

	for (i = 0; i < NB; i++) {
		char port[16];

		snprintf(port, sizeof(port), "1-%d", i + 1);
		board(env, i, port, NULL);
		f[i] = (struct flasher){ .env = env };
		snprintf(f[i].bay, sizeof(f[i].bay), "%s", port);
	}
	assert_int_equal(usb_scan(env->usb, found, 16, &n, &e), ST_OK);
	assert_int_equal(n, NB);
	for (i = 0; i < NB; i++)
		open_flasher(&f[i]);
	for (i = 0; i < NB; i++)
		assert_int_equal(pthread_create(&t[i], NULL, flash_thread, &f[i]), 0);
	for (i = 0; i < NB; i++) {
		pthread_join(t[i], NULL);
		if (f[i].rc)
			fail_msg("%s", f[i].msg);
	}
}

/* Runs dfu-util under the same preload and testbed; returns its exit status. */
static int dfu_util(const char *bay, const char *op, const char *file)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (!freopen("dfu-util.log", "a", stdout) || !freopen("dfu-util.log", "a", stderr))
			_exit(126);
		execlp("dfu-util", "dfu-util", "-d", "1209:0001", "-p", bay, op, file, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		fail_msg("dfu-util is not installed (make deps)");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void uploaded_is_image(const char *file)
{
	uint8_t *up;
	size_t n;
	struct errbuf e;

	if (fx_store_read(".", file, PROTO_FW_MAX_IMAGE, &up, &n, &e) != ST_OK)
		fail_msg("%s", e.msg);
	assert_int_equal(n, image_len);
	assert_memory_equal(up, image, n);
	free(up);
	unlink(file);
}

/* Interop: Debian's dfu-util flashes the simulated board and reads it back; the
 * station's DFU host flashes the same board with the same image; each reads what
 * the other wrote. */
static void test_dfu_util_interop(void **state)
{
	struct env *env = *state;
	struct usb_board *ub;
	struct board *b;
	struct proto_info info;
	struct errbuf e;

	board(env, 0, "1-3", NULL);
	assert_int_equal(dfu_util("1-3", "-D", "fw.bin"), 0);
	assert_int_equal(dfu_util("1-3", "-U", "up1.bin"), 0);
	uploaded_is_image("up1.bin");
	open_bay(env, "1-3", &ub, &b);
	assert_int_equal(board_info(b, &info, &e), ST_OK);
	assert_int_equal(info.state, PROTO_STATE_FLASHED);
	assert_string_equal(info.fw_version, "2.0.1");
	if (dfu_flash(ub, image, image_len, image_sha, NULL, &e) != ST_OK)
		fail_msg("%s", e.msg);
	board_free(b);
	usb_close(ub);
	assert_int_equal(dfu_util("1-3", "-U", "up2.bin"), 0);
	uploaded_is_image("up2.bin");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_provisioning_steps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_frame_recovered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stall_recovered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dropped_reply_recovered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unplug_mid_protocol, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_loss_is_a_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unplug_mid_flash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flash_error_then_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eight_boards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dfu_util_interop, setup, teardown),
	};

	(void)argc;
	if (usbemu_reexec_preloaded(argv) != 0) {
		perror("usbemu: re-exec under the umockdev preload");
		return 1;
	}
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
