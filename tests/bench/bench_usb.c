/*
 * bench_usb: DFU flashing through libusb against emulated boards.
 *
 *   1. A 1 MiB image to one board: the station's DFU host (station/dfu.c) and
 *      Debian's dfu-util, same board, same image, same run, alternating, best of
 *      N.  Once with an instant flash (host overhead only) and once with a
 *      realistic flash write speed.  Ratio = dfu-util time / station time
 *      (>= 1.0 means the station is at least as fast).
 *   2. 8 boards with a realistic flash write speed: flash + read-back verify of
 *      one board alone, then of 8 boards in parallel (one thread per bay, as the
 *      pipeline runs them).  Ratio = 8-board time / 1-board time (target <= 1.5).
 *
 * Usage: bench_usb [KIB_PER_S (default 256)] [RUNS (default 3)]
 * Devices are fixtures/usbemu testdevs: the transfers and timing the host sees
 * are those of the board (4096-byte blocks, dfuDNBUSY with bwPollTimeout while
 * a block is being written).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "dfu.h"
#include "testdev.h"
#include "usb.h"
#include "usbemu.h"

#define IMAGE_LEN (1u << 20)
#define NBOARDS 8

static uint8_t *image;
static uint8_t image_sha[32];
static struct usb_ctx *uc;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *msg)
{
	fprintf(stderr, "bench_usb: %s: %s\n", what, msg);
	exit(1);
}

/* Station: open the bay, download (and verify when asked), close. */
static double station_flash(const char *bay, int verify)
{
	struct usb_board *b;
	struct errbuf e;
	double t0 = now_s();
	int rc;

	if (usb_open(uc, bay, &b, &e))
		die("open", e.msg);
	rc = verify ? dfu_flash(b, image, IMAGE_LEN, image_sha, NULL, &e)
		    : dfu_download(b, image, IMAGE_LEN, NULL, &e);
	usb_close(b);
	if (rc)
		die("station flash", e.msg);
	return now_s() - t0;
}

/* dfu-util -D, in a child process under the same preload and testbed. */
static double dfuutil_flash(const char *bay)
{
	double t0 = now_s();
	int status;
	pid_t pid = fork();

	if (pid < 0)
		die("fork", strerror(errno));
	if (pid == 0) {
		int nul = open("/dev/null", O_WRONLY);

		if (nul >= 0) {
			dup2(nul, 1);
			dup2(nul, 2);
		}
		execlp("dfu-util", "dfu-util", "-d", "1209:0001", "-p", bay, "-D", "bench-image.bin",
		       (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("dfu-util", "failed (is it installed? make deps)");
	return now_s() - t0;
}

static void compare(struct usbemu *emu, unsigned kib_s, int runs)
{
	struct testdev_cfg cfg = { .vid = 0x1209, .pid = 0x0001, .serial = "BE0000000000000000000001",
				   .flash_kib_s = kib_s };
	struct testdev *td = testdev_new(&cfg);
	double s_best = 1e9, d_best = 1e9, t;
	struct errbuf e;
	int i;

	if (!td || usbemu_plug(emu, "1-1", &testdev_ops, td, &e))
		die("plug", td ? e.msg : "out of memory");
	for (i = 0; i < runs; i++) {
		/* Alternate who goes first, so neither always gets a warm board. */
		if (i % 2 == 0) {
			t = station_flash("1-1", 0);
			s_best = t < s_best ? t : s_best;
			t = dfuutil_flash("1-1");
			d_best = t < d_best ? t : d_best;
		} else {
			t = dfuutil_flash("1-1");
			d_best = t < d_best ? t : d_best;
			t = station_flash("1-1", 0);
			s_best = t < s_best ? t : s_best;
		}
	}
	if (kib_s)
		printf("1 MiB to one board, flash %u KiB/s:  ", kib_s);
	else
		printf("1 MiB to one board, instant flash:   ");
	printf("station %.3f s, dfu-util %.3f s, ratio dfu-util/station %.2f (best of %d)\n",
	       s_best, d_best, d_best / s_best, runs);
	usbemu_unplug(emu, "1-1", NULL);
	testdev_free(td);
}

struct job {
	char bay[16];
	double t;
};

static void *flash_job(void *arg)
{
	struct job *j = arg;

	j->t = station_flash(j->bay, 1);
	return NULL;
}

static void parallel(struct usbemu *emu, unsigned kib_s)
{
	struct testdev *td[NBOARDS];
	struct job jobs[NBOARDS];
	pthread_t th[NBOARDS];
	double t1, t8, t0;
	struct errbuf e;
	int i;

	for (i = 0; i < NBOARDS; i++) {
		struct testdev_cfg cfg = { .vid = 0x1209, .pid = 0x0001, .flash_kib_s = kib_s };

		snprintf(cfg.serial, sizeof(cfg.serial), "BE00000000000000000001%02X", i);
		snprintf(jobs[i].bay, sizeof(jobs[i].bay), "1-%d", i + 1);
		td[i] = testdev_new(&cfg);
		if (!td[i] || usbemu_plug(emu, jobs[i].bay, &testdev_ops, td[i], &e))
			die("plug", td[i] ? e.msg : "out of memory");
	}
	t1 = station_flash("1-1", 1);
	t0 = now_s();
	for (i = 0; i < NBOARDS; i++)
		if (pthread_create(&th[i], NULL, flash_job, &jobs[i]))
			die("thread", strerror(errno));
	for (i = 0; i < NBOARDS; i++)
		pthread_join(th[i], NULL);
	t8 = now_s() - t0;
	printf("flash + verify 1 MiB at %u KiB/s: 1 board %.3f s, %d boards in parallel %.3f s, "
	       "ratio %.2f (target <= 1.50: %s)\n", kib_s, t1, NBOARDS, t8, t8 / t1,
	       t8 / t1 <= 1.5 ? "met" : "NOT met");
	for (i = 0; i < NBOARDS; i++) {
		usbemu_unplug(emu, jobs[i].bay, NULL);
		testdev_free(td[i]);
	}
}

int main(int argc, char **argv)
{
	unsigned kib_s = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 256;
	int runs = argc > 2 ? atoi(argv[2]) : 3;
	struct usbemu *emu;
	struct errbuf e;
	FILE *f;
	size_t i;

	if (usbemu_reexec_preloaded(argv) != 0)
		die("re-exec under the umockdev preload", strerror(errno));
	if (kib_s == 0 || runs < 1)
		die("usage", "bench_usb [KIB_PER_S > 0] [RUNS >= 1]");
	image = malloc(IMAGE_LEN);
	if (!image)
		die("image", "out of memory");
	for (i = 0; i < IMAGE_LEN; i++)
		image[i] = (uint8_t)(i * 2654435761u >> 13);
	SHA256(image, IMAGE_LEN, image_sha);
	f = fopen("bench-image.bin", "wb");
	if (!f || fwrite(image, 1, IMAGE_LEN, f) != IMAGE_LEN || fclose(f) != 0)
		die("bench-image.bin", strerror(errno));
	if (usbemu_new(&emu, &e) || usb_ctx_new(&uc, 0x1209, 0x0001, &e))
		die("setup", e.msg);
	compare(emu, 0, runs);
	compare(emu, kib_s, runs);
	parallel(emu, kib_s);
	usb_ctx_free(uc);
	usbemu_free(emu);
	unlink("bench-image.bin");
	free(image);
	return 0;
}
