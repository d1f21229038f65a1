/*
 * bench_remote: certificate issuing throughput with the CA token behind
 * PKCS#11 remoting (issue 16) against the same token loaded locally.
 *
 * One SoftHSM EC P-256 token is made in the working directory.  The station's
 * issuing path (csr_check: parse, verify, policy; issue_cert: build, sign in
 * the token through hsm_sign_x509, re-parse and verify) runs from 1 and 4
 * threads with the records kept nowhere (the token's share alone; bench_hsm
 * measures the database's), first with libsofthsm2.so in process, then with
 * p11-kit-client.so talking to `p11-kit server` on a unix socket in the
 * working directory (started and stopped here).  Prints both rates and the
 * ratio remote / local; issue 16 asks >= 0.5 for a whole station with the
 * ledger (tests/bench/bench_remote.sh measures the station's line).
 *
 * Run: make bench, or build/bench/bench_remote [SECONDS] (default 2 s; best
 * of 2 rounds).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/rig/bench_clock.h"
#include "tests/rig/hsm_test_util.h"
#include "hsm/csr_policy.h"
#include "hsm/issue.h"

#define NCSRS 6000   /* cycled: the null store remembers no key */
#define CLIENT "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
#define SOFTHSM "/usr/lib/softhsm/libsofthsm2.so"

static double secs = 2.0;
static pid_t server = -1;

struct csr_item {
	uint8_t *der;
	size_t len;
	char uid[25];
	uint8_t nonce[32];
};

static struct csr_item *csrs;
static atomic_int next_csr;

static void stop_server(void)
{
	if (server > 0) {
		kill(-server, SIGTERM);
		waitpid(server, NULL, 0);
		server = -1;
	}
}

static void die(const char *what)
{
	fprintf(stderr, "bench_remote: %s\n", what);
	stop_server();
	exit(1);
}

static int null_reserve(void *db, const char *const *s, size_t n, struct errbuf *err)
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

struct worker {
	struct issue_ctx *ic;
	const struct hsm_certstore *store;
	const struct csr_policy *pol;
	double until;
	long count;
	char err[sizeof(((struct errbuf *)0)->msg)];
};

static void *issue_worker(void *arg)
{
	struct worker *w = arg;

	while (bench_now_s() < w->until) {
		int i = atomic_fetch_add(&next_csr, 1) % NCSRS;
		struct csr_info ci;
		struct issue_result r;
		struct errbuf e;

		if (csr_check(w->pol, csrs[i].der, csrs[i].len, csrs[i].uid, csrs[i].nonce,
			      w->store, &ci, &e) != ST_OK ||
		    issue_cert(w->ic, &ci, 0, &r, &e) != ST_OK) {
			snprintf(w->err, sizeof(w->err), "%s", e.msg);
			csr_info_clear(&ci);
			return NULL;
		}
		issue_result_clear(&r);
		csr_info_clear(&ci);
		w->count++;
	}
	return NULL;
}

static double issue_rate(struct hsm *h, const struct hsm_certstore *store, int threads)
{
	struct issue_profile prof = { .validity_days = 365 };
	struct csr_policy pol;
	struct issue_ctx *ic;
	struct worker w[4];
	pthread_t t[4];
	struct errbuf e;
	double t0;
	long total = 0;

	csr_policy_default(&pol);
	if (issue_ctx_new(h, &prof, store, &ic, &e) != ST_OK)
		die(e.msg);
	t0 = bench_now_s();
	for (int i = 0; i < threads; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].ic = ic;
		w[i].store = store;
		w[i].pol = &pol;
		w[i].until = t0 + secs;
		pthread_create(&t[i], NULL, issue_worker, &w[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		if (w[i].err[0])
			die(w[i].err);
		total += w[i].count;
	}
	t0 = bench_now_s() - t0;
	issue_ctx_free(ic);
	return (double)total / t0;
}

/* p11-kit server in its own process group, serving the token on sock. */
static void start_server(const struct hsm_config *c, const char *sock)
{
	char uri[HSM_LABEL_MAX + 32];
	struct stat sb;
	double until;

	snprintf(uri, sizeof(uri), "pkcs11:token=%s", c->token);
	unlink(sock);
	server = fork();
	if (server < 0)
		die("fork");
	if (server == 0) {
		int null = open("/dev/null", O_WRONLY);

		setsid();
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		setenv("SOFTHSM2_CONF", c->softhsm2_conf, 1);
		execlp("p11-kit", "p11-kit", "server", "-f", "--provider", SOFTHSM, "-n", sock, uri,
		       (char *)NULL);
		_exit(127);
	}
	until = bench_now_s() + 15;
	while (stat(sock, &sb) != 0 || !S_ISSOCK(sb.st_mode)) {
		if (bench_now_s() > until)
			die("p11-kit server made no socket (is p11-kit installed?)");
		usleep(20000);
	}
}

static void rates(const struct hsm_config *c, const struct hsm_certstore *store, double out[2])
{
	struct errbuf e;
	struct hsm *h;

	if (hsm_open(c, &h, &e) != ST_OK)
		die(e.msg);
	out[0] = issue_rate(h, store, 1);
	out[1] = issue_rate(h, store, 4);
	hsm_close(h);
}

int main(int argc, char **argv)
{
	struct hsm_config local, remote;
	struct hsm_certstore store = { 0 };
	double l[2] = { 0, 0 }, r[2] = { 0, 0 };
	char sock[1100], addr[1200];

	if (argc > 1)
		secs = atof(argv[1]);
	if (secs <= 0.1)
		secs = 2.0;
	if (access(CLIENT, R_OK) != 0)
		die(CLIENT " is needed (apt-get install p11-kit-modules)");
	if (!getenv("STATION_TOP") && getenv("TOP"))
		setenv("STATION_TOP", getenv("TOP"), 1);
	if (tu_make_token("remote-bench", "ec-p256", &local) != 0)
		die("cannot make the SoftHSM token");
	csrs = calloc(NCSRS, sizeof(*csrs));
	if (!csrs)
		die("out of memory");
	for (int i = 0; i < NCSRS; i++) {
		EVP_PKEY *k = tu_key("P-256");

		snprintf(csrs[i].uid, sizeof(csrs[i].uid), "%024X", i + 1);
		RAND_bytes(csrs[i].nonce, 32);
		if (!k || tu_make_csr(k, csrs[i].uid, NULL, csrs[i].nonce, 0, &csrs[i].der, &csrs[i].len))
			die("cannot make CSRs");
		EVP_PKEY_free(k);
	}
	store.reserve = null_reserve;
	store.issued = null_issued;
	store.release = null_reserve;
	store.revoke = null_revoke;

	remote = local;
	snprintf(remote.module, sizeof(remote.module), "%s", CLIENT);
	remote.softhsm2_conf[0] = '\0';
	if (!getcwd(sock, sizeof(sock) - 16))
		die("getcwd");
	strcat(sock, "/p11.sock");
	snprintf(addr, sizeof(addr), "unix:path=%s", sock);
	start_server(&local, sock);
	setenv("P11_KIT_SERVER_ADDRESS", addr, 1);
	signal(SIGPIPE, SIG_IGN);

	/* rounds of local then remote; each figure the best of its rounds */
	for (int round = 0; round < 2; round++) {
		double a[2], b[2];

		rates(&local, &store, a);
		rates(&remote, &store, b);
		fprintf(stderr, "round %d: local %.0f/%.0f  remote %.0f/%.0f\n", round + 1,
			a[0], a[1], b[0], b[1]);
		for (int i = 0; i < 2; i++) {
			l[i] = a[i] > l[i] ? a[i] : l[i];
			r[i] = b[i] > r[i] ? b[i] : r[i];
		}
	}
	stop_server();
	printf("remote token: issuing path (CSR check + issue + verify, no database), EC P-256 CA;"
	       " best of 2 rounds of %.1f s\n", secs);
	printf("  local  libsofthsm2.so              1 thread %7.0f/s   4 threads %7.0f/s\n",
	       l[0], l[1]);
	printf("  remote p11-kit-client.so -> server 1 thread %7.0f/s   4 threads %7.0f/s\n",
	       r[0], r[1]);
	printf("  remote / local: 1 thread %.2fx, 4 threads %.2fx (issue 16: >= 0.5x for a station"
	       " with the ledger)\n", r[0] / l[0], r[1] / l[1]);
	return 0;
}
