/* Unit tests: the umockdev harness (fixtures/usbemu) and the station's libusb
 * transport (station/usb/usb.c), end to end through libusb.  The binary re-executes
 * itself under the umockdev preload; the emulated devices are testdevs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libusb.h>

#include "fixtures/usbemu/testdev.h"
#include "usb/usb.h"
#include "fixtures/usbemu/usbemu.h"

#define VID 0x1209
#define PID 0x0001

struct env {
	struct usbemu *emu;
	struct usb_ctx *usb;
	struct testdev *dev[9];
};

static struct testdev *mkdev(int i, uint16_t pid)
{
	struct testdev_cfg cfg = { .vid = VID, .pid = pid };

	snprintf(cfg.serial, sizeof(cfg.serial), "%024X", 0xA0 + i);
	return testdev_new(&cfg);
}

static int setup(void **state)
{
	struct env *env = calloc(1, sizeof(*env));
	struct errbuf e;

	assert_non_null(env);
	assert_int_equal(usbemu_new(&env->emu, &e), ST_OK);
	*state = env;
	return 0;
}

static int teardown(void **state)
{
	struct env *env = *state;
	int i;

	usb_ctx_free(env->usb);
	usbemu_free(env->emu);
	for (i = 0; i < 9; i++)
		testdev_free(env->dev[i]);
	free(env);
	return 0;
}

static void plug(struct env *env, int i, const char *port, uint16_t pid)
{
	struct errbuf e;

	env->dev[i] = mkdev(i, pid);
	assert_non_null(env->dev[i]);
	if (usbemu_plug(env->emu, port, &testdev_ops, env->dev[i], &e) != ST_OK)
		fail_msg("%s", e.msg);
}

static void ctx(struct env *env)
{
	struct errbuf e;

	assert_int_equal(usb_ctx_new(&env->usb, VID, PID, &e), ST_OK);
}

static void roundtrip(struct usb_board *b, size_t len, int tag)
{
	uint8_t out[4096], in[4096];
	struct errbuf e;
	size_t got, i;

	for (i = 0; i < len; i++)
		out[i] = (uint8_t)(i * 7 + (size_t)tag);
	assert_int_equal(usb_bulk_write(b, out, len, 1000, &e), ST_OK);
	assert_int_equal(usb_bulk_read(b, in, sizeof(in), &got, 1000, &e), ST_OK);
	assert_int_equal(got, len);
	assert_memory_equal(in, out, len);
}

static void test_open_and_loopback(void **state)
{
	struct env *env = *state;
	struct usb_found f[4];
	struct usb_board *b;
	struct errbuf e;
	size_t n;

	plug(env, 0, "1-3", PID);
	plug(env, 1, "1-4", 0x0002);    /* another product: ignored */
	ctx(env);
	assert_int_equal(usb_scan(env->usb, f, 4, &n, &e), ST_OK);
	assert_int_equal(n, 1);
	assert_string_equal(f[0].bay, "1-3");
	assert_int_equal(usb_open(env->usb, "1-4", &b, &e), ST_ENOTFOUND);
	assert_int_equal(usb_open(env->usb, "1-3", &b, &e), ST_OK);
	assert_string_equal(usb_serial(b), "0000000000000000000000A0");
	assert_string_equal(usb_bay(b), "1-3");
	assert_int_equal(usb_dfu(b)->interface, 1);
	assert_int_equal(usb_dfu(b)->transfer_size, 4096);
	assert_int_equal(usb_dfu(b)->dfu_version, 0x0110);
	roundtrip(b, 64, 1);
	roundtrip(b, 4096, 2);
	roundtrip(b, 1, 3);
	usb_close(b);
}

static void test_hub_port_path(void **state)
{
	struct env *env = *state;
	struct usb_board *b;
	struct usb_found f[4];
	struct errbuf e;
	size_t n;

	plug(env, 0, "2-1.4", PID);
	ctx(env);
	assert_int_equal(usb_scan(env->usb, f, 4, &n, &e), ST_OK);
	assert_int_equal(n, 1);
	assert_string_equal(f[0].bay, "2-1.4");
	assert_int_equal(usb_open(env->usb, "2-1.4", &b, &e), ST_OK);
	roundtrip(b, 100, 4);
	usb_close(b);
}

static void test_claim_is_exclusive(void **state)
{
	struct env *env = *state;
	struct usb_board *a, *b;
	struct errbuf e;

	plug(env, 0, "1-1", PID);
	ctx(env);
	assert_int_equal(usb_open(env->usb, "1-1", &a, &e), ST_OK);
	assert_int_equal(usb_open(env->usb, "1-1", &b, &e), ST_EBUSY);
	assert_non_null(strstr(e.msg, "bay 1-1"));
	usb_close(a);
	assert_int_equal(usb_open(env->usb, "1-1", &b, &e), ST_OK);
	usb_close(b);
}

static void test_stall_and_clear(void **state)
{
	struct env *env = *state;
	struct usb_board *b;
	uint8_t buf[64];
	struct errbuf e;
	size_t got;

	plug(env, 0, "1-2", PID);
	ctx(env);
	assert_int_equal(usb_open(env->usb, "1-2", &b, &e), ST_OK);
	testdev_stall_in(env->dev[0], 1);
	assert_int_equal(usb_bulk_read(b, buf, sizeof(buf), &got, 500, &e), ST_EPROTO);
	assert_non_null(strstr(e.msg, "stalled"));
	assert_int_equal(usb_clear_halt(b, 1, &e), ST_OK);
	roundtrip(b, 64, 5);
	usb_close(b);
}

static void test_timeout_discards(void **state)
{
	struct env *env = *state;
	struct usb_board *b;
	uint8_t buf[64];
	struct errbuf e;
	size_t got;

	plug(env, 0, "1-2", PID);
	ctx(env);
	assert_int_equal(usb_open(env->usb, "1-2", &b, &e), ST_OK);
	assert_int_equal(usb_bulk_read(b, buf, sizeof(buf), &got, 100, &e), ST_ETIMEOUT);
	assert_non_null(strstr(e.msg, "timed out"));
	/* The timed-out request was discarded at the device, not left behind. */
	assert_int_equal(testdev_pending_in(env->dev[0]), 0);
	/* A zero timeout would mean "forever" to libusb: the transport refuses it. */
	assert_int_equal(usb_bulk_read(b, buf, sizeof(buf), &got, 0, &e), ST_EINVAL);
	assert_non_null(strstr(e.msg, "without a timeout"));
	assert_int_equal(usb_bulk_write(b, buf, 8, 0, &e), ST_EINVAL);
	assert_int_equal(usb_control(b, 0x80, 0x06, 0x0100, 0, buf, 18, &got, 0, &e), ST_EINVAL);
	assert_int_equal(testdev_pending_in(env->dev[0]), 0);
	roundtrip(b, 64, 6);
	usb_close(b);
}

struct worker {
	struct env *env;
	char bay[16];
	int rounds, rc, idx;
	char msg[512];
	pthread_mutex_t *mu;        /* optional: signals "opened" on cv */
	pthread_cond_t *cv;
	int opened;
};

/* Waits until the worker has its bay open (or failed to). */
static void wait_opened(struct worker *w)
{
	pthread_mutex_lock(w->mu);
	while (!w->opened)
		pthread_cond_wait(w->cv, w->mu);
	pthread_mutex_unlock(w->mu);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct usb_board *b;
	uint8_t out[512], in[512];
	struct errbuf e;
	size_t got;
	int i;

	w->rc = usb_open(w->env->usb, w->bay, &b, &e);
	if (w->mu) {
		pthread_mutex_lock(w->mu);
		w->opened = 1;
		pthread_cond_broadcast(w->cv);
		pthread_mutex_unlock(w->mu);
	}
	if (w->rc) {
		snprintf(w->msg, sizeof(w->msg), "%s", e.msg);
		return NULL;
	}
	for (i = 0; i < w->rounds; i++) {
		memset(out, w->idx * 16 + i, sizeof(out));
		w->rc = usb_bulk_write(b, out, sizeof(out), 1000, &e);
		if (!w->rc)
			w->rc = usb_bulk_read(b, in, sizeof(in), &got, 1000, &e);
		if (!w->rc && (got != sizeof(out) || memcmp(in, out, got) != 0)) {
			w->rc = ST_EPROTO;
			snprintf(e.msg, sizeof(e.msg), "bay %s: wrong echo", w->bay);
		}
		if (w->rc)
			break;
	}
	if (w->rc)
		snprintf(w->msg, sizeof(w->msg), "%s", e.msg);
	usb_close(b);
	return NULL;
}

static void test_eight_boards_at_once(void **state)
{
	struct env *env = *state;
	struct worker w[8];
	pthread_t t[8];
	struct usb_found f[16];
	struct errbuf e;
	size_t n;
	int i;

	for (i = 0; i < 8; i++) {
		char port[16];

		snprintf(port, sizeof(port), "1-%d", i + 1);
		plug(env, i, port, PID);
	}
	ctx(env);
	assert_int_equal(usb_scan(env->usb, f, 16, &n, &e), ST_OK);
	assert_int_equal(n, 8);
	for (i = 0; i < 8; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].env = env;
		w[i].idx = i;
		w[i].rounds = 40;
		snprintf(w[i].bay, sizeof(w[i].bay), "1-%d", i + 1);
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		if (w[i].rc)
			fail_msg("%s", w[i].msg);
	}
}

static void test_unplug_mid_protocol(void **state)
{
	struct env *env = *state;
	struct worker w[2];
	pthread_t t[2];
	struct usb_board *b;
	uint8_t buf[64] = { 1 };
	struct errbuf e;
	size_t got;
	int i;

	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

	plug(env, 0, "1-1", PID);
	plug(env, 1, "1-2", PID);
	plug(env, 2, "1-3", PID);
	ctx(env);
	for (i = 0; i < 2; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].env = env;
		w[i].idx = i;
		w[i].rounds = 150;
		w[i].mu = &mu;
		w[i].cv = &cv;
		snprintf(w[i].bay, sizeof(w[i].bay), "1-%d", i + 2);
	}
	assert_int_equal(usb_open(env->usb, "1-1", &b, &e), ST_OK);
	/* The others have their bays open before the pull: libusb 1.0.26 leaks a
	 * device when a board goes while a context is being initialised. */
	for (i = 0; i < 2; i++) {
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
		wait_opened(&w[i]);
	}
	/* The board is pulled when the request arrives: the answer never comes. */
	testdev_unplug_after_out(env->dev[0], 1);
	assert_int_equal(usb_bulk_write(b, buf, sizeof(buf), 1000, &e), ST_OK);
	assert_int_equal(usbemu_wait_gone(env->emu, "1-1", 2000), 1);
	assert_int_equal(usb_bulk_read(b, buf, sizeof(buf), &got, 5000, &e), ST_ENODEV);
	assert_non_null(strstr(e.msg, "bay 1-1"));
	assert_non_null(strstr(e.msg, "unplugged"));
	assert_int_equal(usb_bulk_write(b, buf, sizeof(buf), 1000, &e), ST_ENODEV);
	usb_close(b);
	for (i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		if (w[i].rc)
			fail_msg("%s", w[i].msg);
	}
}

struct reader {
	struct usb_board *b;
	int rc;
	char msg[512];
};

static void *read_one(void *arg)
{
	struct reader *r = arg;
	uint8_t buf[64];
	struct errbuf e;
	size_t got;

	r->rc = usb_bulk_read(r->b, buf, sizeof(buf), &got, 5000, &e);
	snprintf(r->msg, sizeof(r->msg), "%s", e.msg);
	return NULL;
}

static void test_unplug_with_read_pending(void **state)
{
	struct env *env = *state;
	struct reader r = { 0 };
	struct errbuf e;
	pthread_t th;

	plug(env, 0, "1-1", PID);
	ctx(env);
	assert_int_equal(usb_open(env->usb, "1-1", &r.b, &e), ST_OK);
	testdev_hold_in(env->dev[0], 1);
	assert_int_equal(pthread_create(&th, NULL, read_one, &r), 0);
	while (testdev_pending_in(env->dev[0]) == 0)
		usleep(1000);
	/* Pulled while the read is at the device: it ends with ENODEV, long
	 * before its 5 s timeout (ETIMEOUT would mean the harness lost it). */
	assert_int_equal(usbemu_unplug(env->emu, "1-1", &e), ST_OK);
	assert_int_equal(testdev_pending_in(env->dev[0]), 0);
	pthread_join(th, NULL);
	assert_int_equal(r.rc, ST_ENODEV);
	assert_non_null(strstr(r.msg, "bay 1-1: bulk read: board unplugged"));
	usb_close(r.b);
}

struct seen {
	pthread_mutex_t mu;
	char log[1024];
};

static void on_watch(void *arg, int arrived, const char *bay)
{
	struct seen *s = arg;
	size_t off;

	pthread_mutex_lock(&s->mu);
	off = strlen(s->log);
	snprintf(s->log + off, sizeof(s->log) - off, "%c%s ", arrived ? '+' : '-', bay);
	pthread_mutex_unlock(&s->mu);
}

static int wait_log(struct seen *s, const char *want, int ms)
{
	int ok = 0;

	for (; ms > 0 && !ok; ms -= 20) {
		pthread_mutex_lock(&s->mu);
		ok = strstr(s->log, want) != NULL;
		pthread_mutex_unlock(&s->mu);
		if (!ok)
			usleep(20000);
	}
	return ok;
}

static void watch_case(struct env *env, int hotplug)
{
	struct seen s = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct worker w = { .env = env, .rounds = 100, .idx = 1 };
	struct usb_board *b;
	struct errbuf e;
	pthread_t t;

	plug(env, 0, "1-1", PID);
	ctx(env);
	assert_int_equal(usb_watch_start(env->usb, hotplug, on_watch, &s, &e), ST_OK);
	assert_int_equal(usb_watch_is_hotplug(env->usb), hotplug);
	assert_true(wait_log(&s, "+1-1 ", 2000));
	/* Another board works while one is added and removed. */
	snprintf(w.bay, sizeof(w.bay), "1-1");
	assert_int_equal(pthread_create(&t, NULL, work, &w), 0);
	plug(env, 1, "1-6", PID);
	plug(env, 2, "1-7", 0x0002);                /* not ours: never reported */
	assert_true(wait_log(&s, "+1-6 ", 2000));
	assert_int_equal(usb_open(env->usb, "1-6", &b, &e), ST_OK);
	roundtrip(b, 32, 7);
	usb_close(b);
	assert_int_equal(usbemu_unplug(env->emu, "1-6", &e), ST_OK);
	assert_true(wait_log(&s, "-1-6 ", 2000));
	assert_int_equal(usb_open(env->usb, "1-6", &b, &e), ST_ENOTFOUND);
	pthread_join(t, NULL);
	if (w.rc)
		fail_msg("%s", w.msg);
	usb_watch_stop(env->usb);
	assert_null(strstr(s.log, "1-7"));
}

static void test_watch_hotplug(void **state)
{
	watch_case(*state, 1);
}

static void test_watch_polling(void **state)
{
	watch_case(*state, 0);
}

/* Child mode (re-executed test binary): claims the vendor interface of the
 * board in bay, leaves an asynchronous bulk read pending at it, says so on
 * stdout and sleeps (no event handling, so no ioctl is in flight) until killed. */
static int hold_read(const char *bay)
{
	static uint8_t buf[64];
	libusb_context *lu;
	libusb_device **list;
	libusb_device_handle *h = NULL;
	struct libusb_transfer *t;
	char here[32];
	uint8_t ports[8];
	ssize_t n, i;
	int np;

	if (libusb_init(&lu) != 0 || (n = libusb_get_device_list(lu, &list)) < 0)
		return 1;
	for (i = 0; i < n && !h; i++) {
		np = libusb_get_port_numbers(list[i], ports, sizeof(ports));
		if (np != 1)
			continue;
		snprintf(here, sizeof(here), "%u-%u", libusb_get_bus_number(list[i]), ports[0]);
		if (strcmp(here, bay) == 0 && libusb_open(list[i], &h) != 0)
			return 1;
	}
	if (!h || libusb_claim_interface(h, 0) != 0 || !(t = libusb_alloc_transfer(0)))
		return 1;
	libusb_fill_bulk_transfer(t, h, 0x81, buf, sizeof(buf), NULL, NULL, 0);
	if (libusb_submit_transfer(t) != 0 || write(1, "R", 1) != 1)
		return 1;
	for (;;)
		pause();
}

static char *self_path;

/* A process killed while it holds the interface and a read is pending at the
 * board: its claim and its URB are released (as the kernel does at close), the
 * next process opens the bay and works. */
static void test_killed_client_released(void **state)
{
	struct env *env = *state;
	struct usb_board *b;
	struct errbuf e;
	int fds[2], status, i;
	char c;
	pid_t pid;

	plug(env, 0, "1-5", PID);
	testdev_hold_in(env->dev[0], 1);
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		execl(self_path, self_path, "--hold-read", "1-5", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	close(fds[0]);
	for (i = 0; i < 2000 && testdev_pending_in(env->dev[0]) == 0; i++)
		usleep(1000);
	assert_int_equal(testdev_pending_in(env->dev[0]), 1);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	testdev_hold_in(env->dev[0], 0);
	ctx(env);
	if (usb_open(env->usb, "1-5", &b, &e) != ST_OK)
		fail_msg("%s", e.msg);
	roundtrip(b, 64, 9);
	/* The dead process's read was cancelled at the device, not answered. */
	assert_int_equal(testdev_pending_in(env->dev[0]), 0);
	usb_close(b);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_and_loopback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hub_port_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_is_exclusive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stall_and_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_discards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eight_boards_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unplug_mid_protocol, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unplug_with_read_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_hotplug, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_polling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_client_released, setup, teardown),
	};

	if (argc == 3 && strcmp(argv[1], "--hold-read") == 0)
		return hold_read(argv[2]);
	self_path = realpath("/proc/self/exe", NULL);
	if (usbemu_reexec_preloaded(argv) != 0) {
		perror("usbemu: re-exec under the umockdev preload");
		return 1;
	}
	{
		int rc = cmocka_run_group_tests(tests, NULL, NULL);

		free(self_path);
		return rc;
	}
}
