/* cfx_spool: IPC-CFX messages into a spool directory.  See cfx_spool.h. */
#include "app/cfx_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/fileio.h"
#include "core/hex.h"
#include "db/export.h"
#include "export/cfx.h"

#define JOURNAL_MAX (64u << 20)   /* bytes read at open: some 5 million units */

struct app_cfx {
	char dir[4096];
	char station_id[64];
	char lot[65];
	int journal_fd;
	int64_t *done;               /* unit ids the journal lists, sorted */
	size_t ndone, cap;
	int64_t written, failed;
	void (*warn)(void *ctx, const char *msg);
	void *warn_ctx;
};

static size_t lower_bound(const struct app_cfx *c, int64_t id)
{
	size_t lo = 0, hi = c->ndone;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->done[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int is_done(const struct app_cfx *c, int64_t id)
{
	size_t i = lower_bound(c, id);

	return i < c->ndone && c->done[i] == id;
}

/* Units arrive nearly in id order: the insertion point is near the end. */
static int mark_done(struct app_cfx *c, int64_t id)
{
	size_t i = lower_bound(c, id);

	if (i < c->ndone && c->done[i] == id)
		return ST_OK;
	if (c->ndone == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 1024;
		int64_t *d = realloc(c->done, cap * sizeof(*d));

		if (!d)
			return ST_ENOMEM;
		c->done = d;
		c->cap = cap;
	}
	memmove(c->done + i + 1, c->done + i, (c->ndone - i) * sizeof(*c->done));
	c->done[i] = id;
	c->ndone++;
	return ST_OK;
}

/* Reads the journal; a last line without its newline (a kill mid-append) is
 * cut off, so that the next append does not glue onto it. */
static int read_journal(struct app_cfx *c, const char *path, struct errbuf *err)
{
	uint8_t *buf = NULL;
	size_t len = 0, line = 1;
	char *p, *end, *nl;
	int rc = ST_OK;

	if (access(path, F_OK) != 0)
		return ST_OK;
	if ((rc = fileio_read(path, JOURNAL_MAX, "CFX spool journal", &buf, &len, err)))
		return rc;
	for (p = (char *)buf; p < (char *)buf + len; line++, p = nl + 1) {
		long long id;

		if (!(nl = memchr(p, '\n', (size_t)((char *)buf + len - p)))) {
			if (truncate(path, (off_t)(p - (char *)buf)) != 0)
				rc = errbuf_set(err, ST_EIO, "%s: %s", path, strerror(errno));
			break;
		}
		id = strtoll(p, &end, 10);
		if (end != nl || id <= 0) {
			rc = errbuf_set(err, ST_EINVAL, "%s:%zu: not a unit id", path, line);
			break;
		}
		if (mark_done(c, id)) {
			rc = errbuf_set(err, ST_ENOMEM, "out of memory");
			break;
		}
	}
	free(buf);
	return rc;
}

int app_cfx_open(const char *dir, const char *station_id, const char *lot,
		 void (*warn)(void *ctx, const char *msg), void *warn_ctx,
		 struct app_cfx **out, struct errbuf *err)
{
	struct app_cfx *c = calloc(1, sizeof(*c));
	unsigned char md[EVP_MAX_MD_SIZE];
	char in[160], tag[17], path[4200];
	unsigned int n = 0;
	struct stat st;
	int rc, len;

	*out = NULL;
	if (!c)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	c->journal_fd = -1;
	snprintf(c->dir, sizeof(c->dir), "%s", dir);
	snprintf(c->station_id, sizeof(c->station_id), "%s", station_id);
	snprintf(c->lot, sizeof(c->lot), "%s", lot);
	c->warn = warn;
	c->warn_ctx = warn_ctx;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		rc = errbuf_set(err, ST_EIO, "CFX spool %s: %s", dir, strerror(errno));
		goto fail;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		rc = errbuf_set(err, ST_EINVAL, "CFX spool %s: not a directory", dir);
		goto fail;
	}
	/* one journal per station and lot, named by a hash: lot names may hold '/' */
	len = snprintf(in, sizeof(in), "%s\n%s", station_id, lot);
	EVP_Digest(in, (size_t)len, md, &n, EVP_sha256(), NULL);
	hex_encode(md, 8, tag);
	snprintf(path, sizeof(path), "%s/.cfx-%s.journal", dir, tag);
	if ((rc = read_journal(c, path, err)))
		goto fail;
	c->journal_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (c->journal_fd < 0 || fsync(c->journal_fd) != 0 || fileio_sync_dir(dir) != 0) {
		rc = errbuf_set(err, ST_EIO, "CFX spool journal %s: %s", path, strerror(errno));
		goto fail;
	}
	*out = c;
	return ST_OK;
fail:
	app_cfx_close(c);
	return rc;
}

static int write_message(struct app_cfx *c, enum cfx_message m, const struct cfx_unit *u,
			 struct errbuf *err)
{
	char name[160], path[4300], *json = cfx_message_json(m, u);
	int rc;

	if (!json)
		return errbuf_set(err, ST_EINVAL, "unit %lld: cannot encode %s", (long long)u->unit_id,
				  cfx_message_name(m));
	cfx_file_name(m, u, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	rc = fileio_write_atomic(path, json, strlen(json), 0644, err);
	free(json);
	if (rc == ST_OK)
		c->written++;
	return rc;
}

/* A unit's messages, then its journal line: durable, in that order. */
static int spool_unit(struct app_cfx *c, const struct cfx_unit *u, struct errbuf *err)
{
	char line[32];
	int rc, n;

	if (u->result == CFX_COMPLETED && (rc = write_message(c, CFX_UNITS_PERSONALIZED, u, err)))
		return rc;
	if ((rc = write_message(c, CFX_WORK_COMPLETED, u, err)))
		return rc;
	n = snprintf(line, sizeof(line), "%lld\n", (long long)u->unit_id);
	if (write(c->journal_fd, line, (size_t)n) != n || fdatasync(c->journal_fd) != 0)
		return errbuf_set(err, ST_EIO, "CFX spool journal: %s", strerror(errno));
	return mark_done(c, u->unit_id) ? errbuf_set(err, ST_ENOMEM, "out of memory") : ST_OK;
}

struct catch_up {
	struct app_cfx *c;
	int64_t units;
	struct errbuf *err;
};

static int catch_up_row(const struct db_export_row *r, void *ctx)
{
	struct catch_up *cu = ctx;
	int result = cfx_result_of_status(r->status);
	struct cfx_unit u = {
		.station_id = cu->c->station_id, .lot = r->lot, .unique_id = r->unique_id,
		.bay = r->bay, .unit_id = r->unit_id, .finished_ms = r->finished_ms,
	};
	int rc;

	if (result < 0 || strcmp(r->station_id, cu->c->station_id) || is_done(cu->c, r->unit_id))
		return ST_OK;
	u.result = (enum cfx_result)result;
	if ((rc = spool_unit(cu->c, &u, cu->err)))
		return rc;
	cu->units++;
	return ST_OK;
}

int app_cfx_catch_up(struct app_cfx *c, struct db *db, int64_t *units, struct errbuf *err)
{
	struct catch_up cu = { .c = c, .err = err };
	int rc = db_export_lot(db, c->lot, NULL, catch_up_row, &cu, err);

	if (units)
		*units = cu.units;
	return rc == ST_ENOTFOUND ? ST_OK : rc;
}

void app_cfx_sink(const struct ev_event *ev, void *ctx)
{
	struct app_cfx *c = ctx;
	struct cfx_unit u;
	struct errbuf err;
	char msg[700];

	if (ev->kind != EV_UNIT_RESULT || ev->unit_id <= 0 || is_done(c, ev->unit_id))
		return;
	memset(&u, 0, sizeof(u));
	u.station_id = c->station_id;
	u.lot = ev->stage == EV_STAGE_RECOVERY ? NULL : c->lot;
	u.unique_id = ev->unique_id;
	u.bay = ev->bay;
	u.unit_id = ev->unit_id;
	u.finished_ms = ev->t_ms;
	switch (ev->outcome) {
	case EV_OUT_PASS: u.result = CFX_COMPLETED; break;
	case EV_OUT_FAIL:
	case EV_OUT_REJECT: u.result = CFX_FAILED; break;
	default: u.result = CFX_ABORTED; break;
	}
	errbuf_clear(&err);
	if (spool_unit(c, &u, &err) != ST_OK) {
		c->failed++;
		if (c->warn) {
			snprintf(msg, sizeof(msg), "CFX spool: unit %lld: %s (the next start writes it)",
				 (long long)u.unit_id, err.msg);
			c->warn(c->warn_ctx, msg);
		}
	}
}

void app_cfx_counts(struct app_cfx *c, int64_t *written, int64_t *failed)
{
	*written = c ? c->written : 0;
	*failed = c ? c->failed : 0;
}

void app_cfx_close(struct app_cfx *c)
{
	if (!c)
		return;
	if (c->journal_fd >= 0)
		close(c->journal_fd);
	free(c->done);
	free(c);
}
