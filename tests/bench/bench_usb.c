/*
 * bench_usb: DFU flashing through libusb against emulated boards.
 *
 *   1. A 1 MiB image to one board: the station's DFU host (station/usb/dfu.c) and
 *      Debian's dfu-util, same board, same image, same run, alternating, best of
 *      N.  Once with an instant flash (host overhead only) and once with a
 *      realistic flash write speed.  Ratio = dfu-util time / station time
 *      (>= 1.0 means the station is at least as fast).
 *   2. 8 boards with a realistic flash write speed: flash + read-back verify of
 *      one board alone, then of 8 boards in parallel (one thread per bay, as the
 *      pipeline runs them).  Ratio = 8-board time / 1-board time (target <= 1.5).
 *
 * Usage: bench_usb [KIB_PER_S (default 256)] [RUNS (default 3)]
 * The devices are simulated boards (fixtures/board) made in the scratch
 * directory, with the knob flash_bps set to the speed: 4096-byte blocks,
 * dfuDNBUSY with bwPollTimeout while a block is programmed, manifestation with
 * the image's trailer and hash checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "tests/rig/bench_clock.h"
#include "usb/dfu.h"
#include "fixtures/board/fx_board.h"
#include "fixtures/board/fx_knobs.h"
#include "fixtures/board/fx_mfg.h"
#include "fixtures/board/fx_store.h"
#include "proto/proto.h"
#include "usb/usb.h"
#include "fixtures/usbemu/usbemu.h"

#define IMAGE_LEN (1u << 20)
#define NBOARDS 8

static uint8_t *image;
static size_t image_len;
static uint8_t image_sha[32];
static struct usb_ctx *uc;
static struct fx_mfg_ca ca;
static int board_no;

static void die(const char *what, const char *msg)
{
	fprintf(stderr, "bench_usb: %s: %s\n", what, msg);
	exit(1);
}

/* When the last block was programmed (the download phase then manifests). */
struct phases {
	double t0, last_block, first_verify;
};

static void on_progress(void *arg, const char *phase, size_t done, size_t total)
{
	struct phases *p = arg;

	if (phase[0] == 'd' && done == total)
		p->last_block = bench_now_s() - p->t0;
	else if (phase[0] == 'v' && p->first_verify == 0)
		p->first_verify = bench_now_s() - p->t0;
}

/* Station: open the bay, download (and verify when asked), close. */
static double station_flash_phases(const char *bay, int verify, struct phases *ph)
{
	struct dfu_opts o = { .progress = on_progress, .arg = ph };
	struct usb_board *b;
	struct errbuf e;
	double t0 = bench_now_s();
	int rc;

	ph->t0 = t0;
	if (usb_open(uc, bay, &b, &e))
		die("open", e.msg);
	rc = verify ? dfu_flash(b, image, image_len, image_sha, &o, &e)
		    : dfu_download(b, image, image_len, &o, &e);
	usb_close(b);
	if (rc)
		die("station flash", e.msg);
	return bench_now_s() - t0;
}

static double station_flash(const char *bay, int verify)
{
	struct phases ph = { 0 };

	return station_flash_phases(bay, verify, &ph);
}

/* dfu-util -D, in a child process under the same preload and testbed. */
static double dfuutil_flash(const char *bay)
{
	double t0 = bench_now_s();
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
	return bench_now_s() - t0;
}

/* A new simulated board flashing at kib_s KiB/s (0 = instantly), plugged at port. */
static struct fx_board *new_board(struct usbemu *emu, const char *port, unsigned kib_s)
{
	struct fx_board *fb;
	struct fx_knobs k;
	struct errbuf e;
	char dir[32], uid[25];

	snprintf(dir, sizeof(dir), "board%d", ++board_no);
	if (fx_mfg_random_uid(uid, &e) ||
	    fx_mfg_board_create(dir, uid, "SB-100", "rev B", 0x1209, 0x0001, &ca, NULL, &e))
		die("board", e.msg);
	fx_knobs_defaults(&k);
	k.flash_bps = kib_s * 1024;
	if (fx_knobs_save(dir, &k, &e) || fx_board_open(dir, &fb, &e) ||
	    usbemu_plug(emu, port, &fx_board_ops, fb, &e))
		die("board", e.msg);
	return fb;
}

static void compare(struct usbemu *emu, unsigned kib_s, int runs)
{
	struct fx_board *fb = new_board(emu, "1-1", kib_s);
	double s_best = 1e9, d_best = 1e9, t;
	int i;

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
	fx_board_close(fb);
}

struct job {
	char bay[16];
	double t;
	struct phases ph;
};

static void *flash_job(void *arg)
{
	struct job *j = arg;

	j->t = station_flash_phases(j->bay, 1, &j->ph);
	return NULL;
}

static void parallel(struct usbemu *emu, unsigned kib_s)
{
	struct fx_board *fb[NBOARDS];
	struct job jobs[NBOARDS];
	pthread_t th[NBOARDS];
	double t1, t8, t0;
	int i;

	memset(jobs, 0, sizeof(jobs));   /* on_progress reads ph.first_verify == 0 */
	for (i = 0; i < NBOARDS; i++) {
		snprintf(jobs[i].bay, sizeof(jobs[i].bay), "1-%d", i + 1);
		fb[i] = new_board(emu, jobs[i].bay, kib_s);
	}
	struct phases p1 = { 0 };
	double dl8 = 0, mf8 = 0;

	t1 = station_flash_phases("1-1", 1, &p1);
	t0 = bench_now_s();
	for (i = 0; i < NBOARDS; i++)
		if (pthread_create(&th[i], NULL, flash_job, &jobs[i]))
			die("thread", strerror(errno));
	for (i = 0; i < NBOARDS; i++)
		pthread_join(th[i], NULL);
	t8 = bench_now_s() - t0;
	for (i = 0; i < NBOARDS; i++) {
		if (jobs[i].ph.last_block > dl8)
			dl8 = jobs[i].ph.last_block;
		if (jobs[i].ph.first_verify > mf8)
			mf8 = jobs[i].ph.first_verify;
	}
	printf("flash + verify 1 MiB at %u KiB/s: 1 board %.3f s, %d boards in parallel %.3f s, "
	       "ratio %.2f (target <= 1.50: %s)\n", kib_s, t1, NBOARDS, t8, t8 / t1,
	       t8 / t1 <= 1.5 ? "met" : "NOT met");
	printf("  phases (s, slowest bay): all blocks programmed 1: %.3f  %d: %.3f; "
	       "manifested 1: %.3f  %d: %.3f; verified 1: %.3f  %d: %.3f\n",
	       p1.last_block, NBOARDS, dl8, p1.first_verify, NBOARDS, mf8, t1, NBOARDS, t8);
	for (i = 0; i < NBOARDS; i++) {
		usbemu_unplug(emu, jobs[i].bay, NULL);
		fx_board_close(fb[i]);
	}
}

int main(int argc, char **argv)
{
	unsigned kib_s = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 256;
	int runs = argc > 2 ? atoi(argv[2]) : 3;
	struct usbemu *emu;
	struct errbuf e;
	size_t i;

	if (usbemu_reexec_preloaded(argv) != 0)
		die("re-exec under the umockdev preload", strerror(errno));
	if (kib_s == 0 || runs < 1)
		die("usage", "bench_usb [KIB_PER_S > 0] [RUNS >= 1]");
	/* 1 MiB in all: body and the 72-byte trailer the board checks. */
	image = malloc(IMAGE_LEN);
	if (!image)
		die("image", "out of memory");
	for (i = 0; i < IMAGE_LEN; i++)
		image[i] = (uint8_t)(i * 2654435761u >> 13);
	mkdir("mfr", 0700);
	if (fx_mfg_ca_open("mfr", "Bench Manufacturer CA", &ca, &e) ||
	    fx_mfg_image_write("bench-image.bin", image, IMAGE_LEN - PROTO_FW_TRAILER_LEN, "9.9.9", &e))
		die("setup", e.msg);
	free(image);
	if (fx_store_read(".", "bench-image.bin", PROTO_FW_MAX_IMAGE, &image, &image_len, &e))
		die("bench-image.bin", e.msg);
	SHA256(image, image_len, image_sha);
	if (usbemu_new(&emu, &e) || usb_ctx_new(&uc, 0x1209, 0x0001, &e))
		die("setup", e.msg);
	compare(emu, 0, runs);
	compare(emu, kib_s, runs);
	parallel(emu, kib_s);
	usb_ctx_free(uc);
	usbemu_free(emu);
	fx_mfg_ca_free(&ca);
	free(image);
	return 0;
}
