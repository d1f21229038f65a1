/*
 * bench_hsm: certificate issuing throughput on one SoftHSM EC P-256 CA key,
 * three figures from the same run:
 *   (a) raw PKCS#11 C_Sign (CKM_ECDSA over a 32-byte digest) through the
 *       module's function list: the limit;
 *   (b) the station's issuing path: DER CSR in -> csr_check (parse, verify,
 *       policy, clone lookup in SQLite) -> issue_cert (a serial from a batch
 *       reserved and committed beforehand, sign in the token, re-parse +
 *       verify, issued committed) -> DER out, on a real SQLite database (WAL,
 *       synchronous=FULL), from 1, 2, 4, 8, 16 and 32 threads: the line runs
 *       a thread per bay, up to PL_MAX_BAYS (32), and the line bench runs 16;
 *       also without the database, to show its share;
 *   (c) a process per certificate: `openssl x509 -req -engine pkcs11`
 *       (tests/bench/lib/hsm_openssl_loop.sh).
 * Prints rates and the ratios (b)/(a) (target >= 0.10) and (b)/(c) (target
 * >= 25).  The token is made in the working directory by hsm/softhsm-setup.sh.
 *
 * Run: make bench (all benchmarks) or build/bench/bench_hsm [SECONDS [ROUNDS]]
 * (default 2 s, 3 rounds).
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <p11-kit-1/p11-kit/pkcs11.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/rig/bench_clock.h"
#include "core/proc.h"
#include "tests/rig/hsm_test_util.h"
#include "hsm/csr_policy.h"
#include "db/db.h"
#include "app/certstore_db.h"
#include "hsm/issue.h"

/* Unused CSRs kept ready before each round, per second of a figure: the
 * database runs certify each public key once (the clone check refuses it
 * again), and one round issues the sum of the six rates for secs seconds
 * each; 18,000/s leaves room above today's ~13,000. */
#define CSRS_PER_SECOND 18000
/* The thread counts of (b) with the database: 32 is a full line
 * (PL_MAX_BAYS, station/line/pipeline.h). */
static const int b_threads[] = { 1, 2, 4, 8, 16, 32 };
#define NB ((int)(sizeof(b_threads) / sizeof(b_threads[0])))
#define MAX_ISSUERS 32

static double secs = 2.0;
static char top[1024];

static void die(const char *what)
{
	fprintf(stderr, "bench_hsm: %s\n", what);
	exit(1);
}

/* ---- (a) raw C_Sign ---------------------------------------------------- */

struct raw {
	CK_FUNCTION_LIST_PTR f;
	CK_SLOT_ID slot;
	char pin[HSM_PIN_MAX];
	const char *key_label;
	double until;
	long count;
};

static int raw_session(struct raw *r, CK_SESSION_HANDLE *s, CK_OBJECT_HANDLE *key)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)r->key_label, strlen(r->key_label) },
	};
	CK_ULONG n = 0;

	if (r->f->C_OpenSession(r->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, s) != CKR_OK)
		return -1;
	if (r->f->C_FindObjectsInit(*s, tmpl, 2) != CKR_OK ||
	    r->f->C_FindObjects(*s, key, 1, &n) != CKR_OK || n != 1)
		return -1;
	r->f->C_FindObjectsFinal(*s);
	return 0;
}

static void *raw_worker(void *arg)
{
	struct raw *r = arg;
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE key;
	unsigned char digest[32] = { 1, 2, 3 }, sig[128];
	long n = 0;

	if (raw_session(r, &s, &key) != 0)
		return NULL;
	while (bench_now_s() < r->until) {
		for (int i = 0; i < 50; i++) {
			CK_ULONG siglen = sizeof(sig);

			digest[0] = (unsigned char)n;
			if (r->f->C_SignInit(s, &mech, key) != CKR_OK ||
			    r->f->C_Sign(s, digest, sizeof(digest), sig, &siglen) != CKR_OK)
				return NULL;
			n++;
		}
	}
	r->count = n;
	r->f->C_CloseSession(s);
	return NULL;
}

/* Runs in a child process: PKCS#11 state is per process and libp11 will own
 * the module in the parent. */
static void raw_rates(const struct hsm_config *c, double out[2])
{
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_C_GetFunctionList get;
	CK_SLOT_ID slots[64];
	CK_ULONG nslots = 64;
	struct raw r[2];
	struct errbuf e;
	void *lib;
	int found = 0;

	memset(r, 0, sizeof(r));
	setenv("SOFTHSM2_CONF", c->softhsm2_conf, 1);
	lib = dlopen(c->module, RTLD_NOW);
	if (!lib || !(get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList")))
		die("cannot load the PKCS#11 module");
	if (get(&r[0].f) != CKR_OK || r[0].f->C_Initialize(&args) != CKR_OK)
		die("C_Initialize failed");
	if (r[0].f->C_GetSlotList(CK_TRUE, slots, &nslots) != CKR_OK)
		die("C_GetSlotList failed");
	for (CK_ULONG i = 0; i < nslots && !found; i++) {
		CK_TOKEN_INFO ti;
		size_t l = strlen(c->token);

		if (r[0].f->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    !memcmp(ti.label, c->token, l) && (l == 32 || ti.label[l] == ' ')) {
			r[0].slot = slots[i];
			found = 1;
		}
	}
	if (!found || hsm_pin_read(c, r[0].pin, &e) != ST_OK)
		die("token or PIN not found");
	{
		CK_SESSION_HANDLE s;

		if (r[0].f->C_OpenSession(r[0].slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK ||
		    r[0].f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)r[0].pin, strlen(r[0].pin)) != CKR_OK)
			die("C_Login failed");
		OPENSSL_cleanse(r[0].pin, sizeof(r[0].pin));
	}
	r[0].key_label = c->ca_key;
	r[1] = r[0];
	for (int threads = 1; threads <= 2; threads++) {
		pthread_t t[2];
		double t0 = bench_now_s();

		for (int i = 0; i < threads; i++) {
			r[i].until = t0 + secs;
			r[i].count = 0;
			pthread_create(&t[i], NULL, raw_worker, &r[i]);
		}
		for (int i = 0; i < threads; i++)
			pthread_join(t[i], NULL);
		out[threads - 1] = (double)(r[0].count + (threads == 2 ? r[1].count : 0)) / (bench_now_s() - t0);
	}
	r[0].f->C_Finalize(NULL);
}

/* ---- (b) the issuing path ---------------------------------------------- */

struct csr_item {
	uint8_t *der;
	size_t len;
	char uid[25];
	uint8_t nonce[32];
};

static struct csr_item *csrs;
static int ncsrs;

struct issuer {
	struct issue_ctx *ic;
	const struct hsm_certstore *store;
	const struct csr_policy *pol;
	atomic_int *next;      /* the next CSR to take (shared) */
	double until;
	long count, failed;
	char err[sizeof(((struct errbuf *)0)->msg)];
};

static void *issue_worker(void *arg)
{
	struct issuer *w = arg;

	for (;;) {
		int i = atomic_fetch_add(w->next, 1);
		struct csr_info ci;
		struct issue_result r;
		struct errbuf e;

		if (i >= ncsrs || bench_now_s() >= w->until)
			break;
		if (csr_check(w->pol, csrs[i].der, csrs[i].len, csrs[i].uid, csrs[i].nonce,
			      w->store, &ci, &e) != ST_OK ||
		    issue_cert(w->ic, &ci, 0, &r, &e) != ST_OK) {
			if (!w->failed++)
				snprintf(w->err, sizeof(w->err), "%s", e.msg);
			csr_info_clear(&ci);
			continue;
		}
		issue_result_clear(&r);
		csr_info_clear(&ci);
		w->count++;
	}
	return NULL;
}

static int next_csr;

/* Records kept nowhere: the issuing path without the database's cost. */
static int null_reserve(void *db, const char *const *serials, size_t n, struct errbuf *err)
{
	return ST_OK;
}

static int null_issued(void *db, const char *serial, int64_t unit_id, const char *uid,
		       const char *pkh, const uint8_t *der, size_t len, struct errbuf *err)
{
	return ST_OK;
}

static int null_revoke(void *db, const char *serial, const char *reason, const char *actor,
		       struct errbuf *err)
{
	return ST_OK;
}

/* Issues from `threads` threads for secs seconds, each CSR used once, on a
 * fresh issuing context (its serials reserved in store). */
static double issue_rate(struct hsm *h, const struct issue_profile *prof,
			 const struct hsm_certstore *store, int threads)
{
	struct issue_ctx *ic;
	struct errbuf e;
	struct csr_policy pol;
	struct issuer w[MAX_ISSUERS];
	pthread_t t[MAX_ISSUERS];
	double t0;
	long total = 0;
	atomic_int next = store->pubkey_seen ? next_csr : 0;

	csr_policy_default(&pol);
	if (issue_ctx_new(h, prof, store, &ic, &e) != ST_OK)
		die(e.msg);
	t0 = bench_now_s();
	for (int i = 0; i < threads; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].ic = ic;
		w[i].store = store;
		w[i].pol = &pol;
		w[i].next = &next;
		w[i].until = t0 + secs;
		pthread_create(&t[i], NULL, issue_worker, &w[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		total += w[i].count;
		if (w[i].failed) {
			fprintf(stderr, "bench_hsm: %ld failures, first: %s\n", w[i].failed, w[i].err);
			exit(1);
		}
	}
	t0 = bench_now_s() - t0;
	issue_ctx_free(ic);
	/* a run that used up the CSRs ended early: its rate is still right */
	if (store->pubkey_seen) {   /* each public key once */
		next_csr = atomic_load(&next);
		next_csr = next_csr < ncsrs ? next_csr : ncsrs;
	}
	return (double)total / t0;
}

/* Makes CSRs until at least `want` have not been certified yet. */
static void top_up_csrs(int want)
{
	int add = want - (ncsrs - next_csr);
	struct csr_item *more;

	if (add <= 0)
		return;
	more = realloc(csrs, (size_t)(ncsrs + add) * sizeof(*csrs));
	if (!more)
		die("out of memory");
	csrs = more;
	for (int i = ncsrs; i < ncsrs + add; i++) {
		EVP_PKEY *k = tu_key("P-256");

		memset(&csrs[i], 0, sizeof(csrs[i]));
		snprintf(csrs[i].uid, sizeof(csrs[i].uid), "%024X", i + 1);
		RAND_bytes(csrs[i].nonce, 32);
		if (!k || tu_make_csr(k, csrs[i].uid, NULL, csrs[i].nonce, 0, &csrs[i].der, &csrs[i].len))
			die("cannot make CSRs");
		EVP_PKEY_free(k);
	}
	ncsrs += add;
}

/* ---- the disk: what one durable commit waits for ---------------------- */

/* Mean latency of write(4 KiB) + fdatasync in the working directory (where
 * bench.db is), over `span` seconds. */
static double fdatasync_us(double span)
{
	char buf[4096];
	double t0 = bench_now_s(), t;
	long n = 0;
	int fd = open("fsync.probe", O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0)
		die("cannot create fsync.probe");
	memset(buf, 'x', sizeof(buf));
	do {
		if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) || fdatasync(fd) != 0)
			die("fdatasync failed");
		n++;
		t = bench_now_s();
	} while (t - t0 < span);
	close(fd);
	unlink("fsync.probe");
	return (t - t0) / (double)n * 1e6;
}

/* ---- (c) a process per certificate ------------------------------------- */

static double openssl_rate(const char *tokdir, int n)
{
	char cmd[4096], line[256];
	double rate = 0;
	EVP_PKEY *k = tu_key("P-256");
	X509_REQ *req = X509_REQ_new();
	const unsigned char *p = csrs[0].der;
	FILE *f;

	X509_REQ_free(req);
	req = d2i_X509_REQ(NULL, &p, (long)csrs[0].len);
	f = fopen("bench.csr", "w");
	if (!req || !f || PEM_write_X509_REQ(f, req) != 1)
		die("cannot write bench.csr");
	fclose(f);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
	snprintf(cmd, sizeof(cmd), "bash '%s/tests/bench/lib/hsm_openssl_loop.sh' '%s' bench.csr %d",
		 top, tokdir, n);
	f = popen(cmd, "r");
	if (!f)
		die("cannot run the openssl loop");
	while (fgets(line, sizeof(line), f))
		sscanf(line, "certs_per_s %lf", &rate);
	if (pclose(f) != 0 || rate <= 0)
		die("the openssl loop failed");
	return rate;
}

static void find_top(void)
{
	const char *t = getenv("TOP");
	char exe[1024];
	ssize_t n;

	if (t && *t) {
		snprintf(top, sizeof(top), "%s", t);
	} else {
		/* build/bench/bench_hsm -> the tree is three levels up */
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n <= 0)
			die("cannot find the source tree: set TOP");
		exe[n] = '\0';
		for (int i = 0; i < 3; i++)
			*strrchr(exe, '/') = '\0';
		snprintf(top, sizeof(top), "%s", exe);
	}
	setenv("STATION_TOP", top, 1);
}

int main(int argc, char **argv)
{
	struct hsm_config cfg;
	struct hsm *h;
	struct issue_profile prof = { .validity_days = 365 };
	struct hsm_certstore dbstore, memstore = { 0 };
	struct errbuf e;
	struct db *db = NULL;
	double raw[2] = { 0, 0 }, b_db[NB] = { 0 }, b_sync[NB] = { 0 }, b_mem[2] = { 0, 0 };
	double c_rate = 0, a, b;
	int rounds = 3;
	double fsync_min = 0, fsync_max = 0;
	int pipefd[2], status;
	char tokdir[1100];
	pid_t pid;

	proc_tune_malloc();   /* as the station binary does (core/proc.h) */
	if (argc > 1)
		secs = atof(argv[1]);
	if (argc > 2)
		rounds = atoi(argv[2]);
	if (rounds < 1)
		rounds = 1;
	if (secs <= 0.1)
		secs = 2.0;
	find_top();
	if (tu_make_token("hsm-bench", "ec-p256", &cfg) != 0)
		die("cannot make the SoftHSM token");
	snprintf(tokdir, sizeof(tokdir), "%s/hsm-bench", tu_scratch());

	/* Rounds of (a), (b), (c) in turn; each figure is the best of its rounds,
	 * so a burst of load from other processes does not decide a ratio. */
	memstore.reserve = null_reserve;
	memstore.issued = null_issued;
	memstore.release = null_reserve;
	memstore.revoke = null_revoke;
	for (int round = 0; round < rounds; round++) {
		double r2[2], bd[NB], bs[NB], bm[2], cr, fs;

		top_up_csrs((int)(secs * CSRS_PER_SECOND));

		/* (a) in a child: PKCS#11 state is per process */
		if (pipe(pipefd) != 0 || (pid = fork()) < 0)
			die("fork");
		if (pid == 0) {
			close(pipefd[0]);
			raw_rates(&cfg, r2);
			if (write(pipefd[1], r2, sizeof(r2)) != (ssize_t)sizeof(r2))
				_exit(1);
			_exit(0);
		}
		close(pipefd[1]);
		if (read(pipefd[0], r2, sizeof(r2)) != (ssize_t)sizeof(r2) ||
		    waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
			die("raw C_Sign measurement failed");
		close(pipefd[0]);

		/* (b) */
		if (hsm_open(&cfg, &h, &e) != ST_OK ||
		    (!db && db_open("bench.db", "bench", &db, &e) != ST_OK))
			die(e.msg);
		app_certstore_db(&dbstore, db);
		bm[0] = issue_rate(h, &prof, &memstore, 1);
		bm[1] = issue_rate(h, &prof, &memstore, 2);
		fs = fdatasync_us(0.5);  /* the disk as the database runs meet it */
		for (int i = 0; i < NB; i++) {
			long syncs = db_wal_syncs(db), before = next_csr;

			bd[i] = issue_rate(h, &prof, &dbstore, b_threads[i]);
			bs[i] = next_csr > before ? (double)(db_wal_syncs(db) - syncs) / (next_csr - before) : 0;
		}
		hsm_close(h);

		/* (c) */
		cr = openssl_rate(tokdir, 100);

		fprintf(stderr, "round %d: a %.0f/%.0f  b", round + 1, r2[0], r2[1]);
		for (int i = 0; i < NB; i++)
			fprintf(stderr, "%s%.0f", i ? "/" : " ", bd[i]);
		fprintf(stderr, " (no db %.0f)  c %.1f  fdatasync %.0f us\n", bm[0], cr, fs);
		fsync_min = round == 0 || fs < fsync_min ? fs : fsync_min;
		fsync_max = fs > fsync_max ? fs : fsync_max;
		for (int i = 0; i < 2; i++)
			raw[i] = r2[i] > raw[i] ? r2[i] : raw[i];
		for (int i = 0; i < NB; i++) {
			if (bd[i] > b_db[i])
				b_sync[i] = bs[i];
			b_db[i] = bd[i] > b_db[i] ? bd[i] : b_db[i];
		}
		for (int i = 0; i < 2; i++)
			b_mem[i] = bm[i] > b_mem[i] ? bm[i] : b_mem[i];
		c_rate = cr > c_rate ? cr : c_rate;
	}
	db_close(db);

	a = raw[0] > raw[1] ? raw[0] : raw[1];
	b = b_db[0];
	for (int i = 1; i < NB; i++)
		b = b_db[i] > b ? b_db[i] : b;
	printf("hsm: one SoftHSM EC P-256 CA key; best of %d rounds of %.1f s per figure\n",
	       rounds, secs);
	printf("  (a) raw C_Sign (CKM_ECDSA)            1 thread %8.0f/s   2 threads %8.0f/s\n",
	       raw[0], raw[1]);
	printf("  (b) issuing path, SQLite FULL        ");
	for (int i = 0; i < NB; i++)
		printf(" %d thread%s %5.0f/s", b_threads[i], b_threads[i] > 1 ? "s" : "", b_db[i]);
	printf("\n      WAL syncs per certificate         ");
	for (int i = 0; i < NB; i++)
		printf(" %d thread%s %7.2f", b_threads[i], b_threads[i] > 1 ? "s" : "", b_sync[i]);
	printf("\n      issuing path, no database        1 thread %8.0f/s   2 threads %8.0f/s\n",
	       b_mem[0], b_mem[1]);
	printf("  (c) openssl x509 -req -engine pkcs11, a process per certificate %.1f/s\n", c_rate);
	printf("  disk: write + fdatasync %.0f-%.0f us; one thread alone makes %.3f durable commits"
	       " per certificate (issued, and a batch of %d serials reserved): (b) near %.0f-%.0f/s"
	       " at most\n", fsync_min, fsync_max, 1 + 1.0 / ISSUE_SERIAL_BATCH, ISSUE_SERIAL_BATCH,
	       1e6 / ((1 + 1.0 / ISSUE_SERIAL_BATCH) * fsync_max),
	       1e6 / ((1 + 1.0 / ISSUE_SERIAL_BATCH) * fsync_min));
	printf("  ratio (b)/(a) = %.3f  (target >= 0.10: %s)\n", b / a, b / a >= 0.10 ? "met" : "MISSED");
	printf("  ratio (b)/(c) = %.1f  (target >= 25: %s)\n", b / c_rate,
	       b / c_rate >= 25 ? "met" : "MISSED");
	for (int i = 0; i < ncsrs; i++)
		OPENSSL_free(csrs[i].der);
	free(csrs);
	return 0;
}
