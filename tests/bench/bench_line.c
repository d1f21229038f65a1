/*
 * bench_line: units per hour of the line for 1, 4, 8 and 16 bays, the station's
 * CPU time per unit, and its peak memory per bay.
 *
 *   bench_line [UNITS_PER_BAY] [KEYGEN_MS] [FLASH_KIB] [FLASH_KIB_S] [SWAP_MS]
 *   defaults:   4               200         512         256           1000
 *
 * Backend: the pipeline (station/line/pipeline.c) with in-process fake boards
 * (tests/rig/pipeline_fakes.h: real OpenSSL keys, CSR, attestation and
 * proof of possession; keygen and flash take the given time in sleeps), a CA
 * with an in-memory P-256 key, and the real SQLite database (WAL, FULL sync,
 * on disk: every stage update and the write-ahead records are fsync'd).  No
 * libusb: 2 cores cannot host 16 emulated boards and the station at once.
 *
 * The operator: when a bay reports a result its board is unplugged, and a fresh
 * one is plugged in after a random 0..SWAP_MS (seeded, same for every bay
 * count); with SWAP_MS 0 all bays run in lockstep, the worst case for the
 * shared database.  Each bay count runs in a child process
 * so that its peak RSS is its own.  CPU time of the fake boards (their key
 * generation and signatures, run on the bay threads) is measured per call with
 * the thread CPU clock and subtracted, and so is the harness thread's (the
 * operator loop, making boards): the CPU figure is the station's (pipeline,
 * detector, CA signing, SQLite).
 * Figures are ratios against the same run's 1-bay rate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/rig/pipeline_fakes.h"

#define LOT "BENCH"

static int64_t board_cpu_ns;   /* CPU the fake boards used */
static pthread_mutex_t cpu_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void charge(int64_t t0)
{
	int64_t d = thread_cpu_ns() - t0;

	pthread_mutex_lock(&cpu_lock);
	board_cpu_ns += d;
	pthread_mutex_unlock(&cpu_lock);
}

/* The fake board's ops, with their CPU time charged to the boards. */
#define WRAP(name, params, args)                              \
	static int w_##name params                            \
	{                                                     \
		int64_t t0 = thread_cpu_ns();                 \
		int rc = fb_##name args;                      \
		charge(t0);                                   \
		return rc;                                    \
	}
WRAP(info, (void *h, struct pl_board_info *o, struct errbuf *e), (h, o, e))
WRAP(flash, (void *h, const uint8_t *i, size_t l, pl_progress_fn cb, void *c, struct errbuf *e),
     (h, i, l, cb, c, e))
WRAP(keygen, (void *h, enum profile_key_type t, struct errbuf *e), (h, t, e))
WRAP(get_csr, (void *h, const uint8_t n[32], uint8_t **d, size_t *l, struct errbuf *e),
     (h, n, d, l, e))
WRAP(attest, (void *h, const uint8_t n[32], const uint8_t c[32], uint8_t **s, size_t *l,
	      struct errbuf *e), (h, n, c, s, l, e))
WRAP(write_cert, (void *h, const uint8_t *d, size_t l, struct errbuf *e), (h, d, l, e))
WRAP(read_cert, (void *h, uint8_t **d, size_t *l, struct errbuf *e), (h, d, l, e))
WRAP(prove, (void *h, const uint8_t c[32], uint8_t **s, size_t *l, struct errbuf *e),
     (h, c, s, l, e))
WRAP(lock, (void *h, struct errbuf *e), (h, e))

static const struct pl_board_ops bench_ops = {
	w_info, w_flash, w_keygen, w_get_csr, w_attest, w_write_cert,
	w_read_cert, w_prove, w_lock, fb_close, NULL,
};

static int bench_open(void *ctx, const char *port, const struct pl_board_ops **ops, void **h,
		      char serial[EV_UID_LEN], struct errbuf *err)
{
	int rc = ft_open(ctx, port, ops, h, serial, err);

	if (!rc)
		*ops = &bench_ops;
	return rc;
}

struct feeder {
	struct fake_transport tr;
	struct fb_mfr mfr;
	pthread_mutex_t lock;
	int nbays, per_bay, next_uid, results, fails;
	int keygen_ms, flash_ms;
	struct fb_board **all;
	int nall;
};

static void uid_of(int i, char out[EV_UID_LEN])
{
	snprintf(out, EV_UID_LEN, "BE0C4000%016X", (unsigned)i);
}

static struct fb_board *fresh_board(struct feeder *f)
{
	char uid[EV_UID_LEN];
	struct fb_board *b;

	uid_of(f->next_uid++, uid);
	b = fb_board_new(uid, &f->mfr);
	b->keygen_ms = f->keygen_ms;
	b->flash_ms = f->flash_ms;
	f->all[f->nall++] = b;
	return b;
}

/* The operator: on each result, swap the board in that bay. */
static void feeder_sink(const struct ev_event *ev, void *ctx)
{
	struct feeder *f = ctx;
	int port;

	if (ev->kind != EV_UNIT_RESULT || ev->bay_index < 0)
		return;
	pthread_mutex_lock(&f->lock);
	f->results++;
	if (ev->outcome != EV_OUT_PASS)
		f->fails++;
	port = ev->bay_index;
	ft_unplug(&f->tr, port);
	pthread_mutex_unlock(&f->lock);
}

static void import(struct db *db, int n)
{
	FILE *csv = fopen("allow.csv", "w");
	struct errbuf e;
	int64_t rows;

	fprintf(csv, "unique_id,lot,model,hw_revision\n");
	for (int i = 0; i < n; i++) {
		char uid[EV_UID_LEN];

		uid_of(i, uid);
		fprintf(csv, "%s,%s,widget,B\n", uid, LOT);
	}
	fclose(csv);
	if (db_allowlist_import(db, "allow.csv", LOT, NULL, NULL, NULL, "bench", &rows, &e)) {
		fprintf(stderr, "bench_line: allowlist: %s\n", e.msg);
		exit(1);
	}
}

struct result {
	double seconds, units_per_hour, cpu_ms_per_unit;
	long maxrss_kib;
	int units, fails;
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* A firmware image of image_len bytes and the profile that names its hash. */
static void bench_image(uint8_t *image, size_t image_len, struct profile *prof)
{
	uint8_t d[32];

	for (size_t i = 0; i < image_len; i++)
		image[i] = (uint8_t)(i * 31);
	SHA256(image, image_len, d);
	memset(prof, 0, sizeof(*prof));
	snprintf(prof->name, sizeof(prof->name), "bench");
	hex_encode(d, 32, prof->firmware_sha256);
	prof->key_type = PROFILE_KEY_EC_P256;
	prof->validity_days = 365;
	prof->max_failures_in_row = 3;
	snprintf(prof->hash, sizeof(prof->hash), "%064d", 0);
}

/*
 * The operator, until total boards were plugged (nbays of them already are):
 * swaps the board of an emptied bay after 0..swap_ms (random, the same
 * distribution for every bay count), so bays run out of step, as on a real
 * bench, instead of hitting the database in lockstep.
 */
static void operate(struct feeder *f, int nbays, int total, int swap_ms)
{
	double due[FT_MAX_PORTS];
	unsigned seed = 12345u * (unsigned)nbays;
	int plugged = nbays;

	for (int p = 0; p < nbays; p++)
		due[p] = 0;
	while (plugged < total) {
		for (int p = 0; p < nbays && plugged < total; p++) {
			int empty;

			pthread_mutex_lock(&f->tr.lock);
			empty = f->tr.board[p] == NULL;
			pthread_mutex_unlock(&f->tr.lock);
			if (!empty)
				continue;
			if (due[p] == 0) {
				due[p] = mono() + (swap_ms ? (double)(rand_r(&seed) % (swap_ms + 1)) / 1000.0 : 0);
				continue;
			}
			if (mono() < due[p])
				continue;
			due[p] = 0;
			pthread_mutex_lock(&f->lock);
			ft_plug(&f->tr, p, fresh_board(f));
			pthread_mutex_unlock(&f->lock);
			plugged++;
		}
		clock_sleep_ms(2);
	}
}

static void run(int nbays, int per_bay, int keygen_ms, size_t image_len, int flash_ms,
		int swap_ms, struct result *res)
{
	struct feeder f;
	struct fake_ca ca;
	struct db *db;
	struct ev_bus *bus;
	struct profile prof;
	struct pl_config cfg;
	struct pl_line *line;
	struct errbuf e;
	struct rusage ru;
	uint8_t *image = malloc(image_len);
	int total = nbays * per_bay;
	char dbname[64];
	double t0, c0;
	int64_t main0;

	memset(&f, 0, sizeof(f));
	pthread_mutex_init(&f.lock, NULL);
	ft_init(&f.tr, nbays);
	fb_mfr_init(&f.mfr, "Bench Manufacturer CA");
	f.nbays = nbays;
	f.per_bay = per_bay;
	f.keygen_ms = keygen_ms;
	f.flash_ms = flash_ms;
	f.all = calloc((size_t)total + (size_t)nbays, sizeof(*f.all));
	snprintf(dbname, sizeof(dbname), "line-%d.db", nbays);
	if (db_open(dbname, "bench", &db, &e)) {
		fprintf(stderr, "bench_line: %s\n", e.msg);
		exit(1);
	}
	import(db, total + nbays);
	fca_init(&ca, db);
	bus = ev_bus_new();
	ev_subscribe(bus, feeder_sink, &f);
	bench_image(image, image_len, &prof);
	memset(&cfg, 0, sizeof(cfg));
	cfg.profile = &prof;
	cfg.lot = LOT;
	cfg.operator_name = "bench";
	cfg.station_id = "bench";
	cfg.nbays = nbays;
	cfg.max_units = total;
	cfg.scan_interval_ms = 10;
	cfg.image = image;
	cfg.image_len = image_len;
	cfg.mfr_ca_der = f.mfr.der;
	cfg.mfr_ca_len = f.mfr.der_len;
	cfg.db = db;
	cfg.bus = bus;
	cfg.transport.scan = ft_scan;
	cfg.transport.open = bench_open;
	cfg.transport.ctx = &f.tr;
	fca_ops(&ca, &cfg.ca);

	/* every bay starts with a board */
	for (int p = 0; p < nbays; p++)
		ft_plug(&f.tr, p, fresh_board(&f));
	t0 = mono();
	c0 = cpu_s();
	main0 = thread_cpu_ns();
	if (pl_line_start(&cfg, &line, &e)) {
		fprintf(stderr, "bench_line: %s\n", e.msg);
		exit(1);
	}
	operate(&f, nbays, total, swap_ms);
	pl_line_wait(line);
	pl_line_stop(line);
	res->seconds = mono() - t0;
	res->units = f.results;
	res->fails = f.fails;
	res->units_per_hour = (double)f.results * 3600.0 / res->seconds;
	/* the station's CPU: the process, less the boards and the harness (this
	 * thread: the operator loop and making fresh boards) */
	res->cpu_ms_per_unit = ((cpu_s() - c0) - (double)board_cpu_ns / 1e9 -
				(double)(thread_cpu_ns() - main0) / 1e9) * 1000.0 /
			       (f.results ? f.results : 1);
	getrusage(RUSAGE_SELF, &ru);
	res->maxrss_kib = ru.ru_maxrss;
	pl_line_free(line);
	for (int i = 0; i < f.nall; i++)
		fb_board_free(f.all[i]);
	free(f.all);
	fca_free(&ca);
	fb_mfr_free(&f.mfr);
	ev_bus_free(bus);
	db_close(db);
	free(image);
}

int main(int argc, char **argv)
{
	static const int bays[] = { 1, 4, 8, 16 };
	const int n = sizeof(bays) / sizeof(bays[0]);
	int per_bay = argc > 1 ? atoi(argv[1]) : 4;
	int keygen_ms = argc > 2 ? atoi(argv[2]) : 200;
	int flash_kib = argc > 3 ? atoi(argv[3]) : 512;
	int flash_kib_s = argc > 4 ? atoi(argv[4]) : 256;
	int swap_ms = argc > 5 ? atoi(argv[5]) : 1000;
	int flash_ms = flash_kib_s > 0 ? (int)((int64_t)flash_kib * 1000 / flash_kib_s) : 0;
	struct result r[4];
	int ok = 1;

	if (per_bay < 1 || keygen_ms < 0 || flash_kib < 1 || swap_ms < 0) {
		fprintf(stderr, "usage: bench_line [UNITS_PER_BAY] [KEYGEN_MS] [FLASH_KIB] [FLASH_KIB_S] [SWAP_MS]\n");
		return 2;
	}
	printf("bench_line: in-process fake boards (keygen %d ms, %d KiB image flashed in %d ms),\n"
	       "  operator swap 0..%d ms, in-memory P-256 CA, SQLite on disk; %d units per bay;\n"
	       "  no libusb\n", keygen_ms, flash_kib, flash_ms, swap_ms, per_bay);
	for (int i = 0; i < n; i++) {
		int fds[2];
		pid_t pid;

		if (pipe(fds) != 0)
			return 1;
		pid = fork();
		if (pid == 0) {
			close(fds[0]);
			run(bays[i], per_bay, keygen_ms, (size_t)flash_kib * 1024, flash_ms, swap_ms,
			    &r[i]);
			if (write(fds[1], &r[i], sizeof(r[i])) != (ssize_t)sizeof(r[i]))
				_exit(1);
			_exit(0);
		}
		close(fds[1]);
		if (read(fds[0], &r[i], sizeof(r[i])) != (ssize_t)sizeof(r[i])) {
			fprintf(stderr, "bench_line: run with %d bays failed\n", bays[i]);
			return 1;
		}
		close(fds[0]);
		waitpid(pid, NULL, 0);
	}
	printf("%5s %6s %8s %12s %14s %12s %14s %10s\n", "bays", "units", "seconds",
	       "units/hour", "vs N x 1-bay", "cpu ms/unit", "peak RSS KiB", "failed");
	for (int i = 0; i < n; i++) {
		double ratio = r[i].units_per_hour / (bays[i] * r[0].units_per_hour);

		printf("%5d %6d %8.2f %12.0f %14.3f %12.2f %14ld %10d\n", bays[i], r[i].units,
		       r[i].seconds, r[i].units_per_hour, ratio, r[i].cpu_ms_per_unit,
		       r[i].maxrss_kib, r[i].fails);
		if (ratio < 0.9 || r[i].fails)
			ok = 0;
	}
	printf("peak memory per bay: %.0f KiB ((RSS at 16 bays - RSS at 1 bay) / 15)\n",
	       (double)(r[n - 1].maxrss_kib - r[0].maxrss_kib) / (bays[n - 1] - bays[0]));
	printf("target N bays >= 0.9 x N x 1-bay rate, no failures: %s\n", ok ? "met" : "NOT met");
	return 0;
}
