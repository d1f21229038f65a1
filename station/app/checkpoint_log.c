/* checkpoint_log: see checkpoint_log.h. */
#include "app/checkpoint_log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/fileio.h"
#include "core/hex.h"

#define TAIL_BYTES 4096

int cplog_default_path(const char *station_id, const char *chain, char *out, size_t size,
		       struct errbuf *err)
{
	const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	int n;

	if (state && state[0] == '/')
		n = snprintf(out, size, "%s/station/%s.%s.checkpoints", state, station_id, chain);
	else if (home && home[0] == '/')
		n = snprintf(out, size, "%s/.local/state/station/%s.%s.checkpoints", home, station_id,
			     chain);
	else
		return errbuf_set(err, ST_ENOTFOUND, "no checkpoint log: neither XDG_STATE_HOME nor"
				  " HOME is set (--checkpoint-log PATH)");
	if (n < 0 || (size_t)n >= size)
		return errbuf_set(err, ST_EINVAL, "checkpoint log path too long");
	return ST_OK;
}

/* mkdir -p of dir (0700 for what is made here). */
static int make_dirs(const char *dir, struct errbuf *err)
{
	char p[CPLOG_PATH_MAX];

	if ((size_t)snprintf(p, sizeof(p), "%s", dir) >= sizeof(p))
		return errbuf_set(err, ST_EINVAL, "checkpoint log path too long");
	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, 0700) != 0 && errno != EEXIST)
				return errbuf_set(err, ST_EIO, "cannot create %s: %s", p, strerror(errno));
			*s = c;
			if (!c)
				break;
		}
	}
	return ST_OK;
}

/* The directory of path, resolved (realpath), into out. */
static int real_dir(const char *path, char out[PATH_MAX])
{
	char copy[CPLOG_PATH_MAX];

	if ((size_t)snprintf(copy, sizeof(copy), "%s", path) >= sizeof(copy))
		return -1;
	return realpath(dirname(copy), out) ? 0 : -1;
}

int cplog_append(const char *path, const char *db_path, const char *station_id, const char *chain,
		 int64_t seq, const uint8_t head[32], const uint8_t *sig, size_t sig_len,
		 struct errbuf *err)
{
	char dir[CPLOG_PATH_MAX], log_dir[PATH_MAX], db_dir[PATH_MAX], hex[65], ts[CLOCK_ISO_LEN];
	char line[256 + 2 * CPLOG_SIG_MAX], sig_hex[2 * CPLOG_SIG_MAX + 1];
	int fd, n, created, rc;

	if (sig_len > CPLOG_SIG_MAX)
		return errbuf_set(err, ST_EINVAL, "checkpoint signature too long for the log");
	if ((size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir))
		return errbuf_set(err, ST_EINVAL, "checkpoint log path too long");
	if ((rc = make_dirs(dirname(dir), err)))
		return rc;
	if (real_dir(path, log_dir) != 0)
		return errbuf_set(err, ST_EIO, "checkpoint log %s: %s", path, strerror(errno));
	if (db_path && real_dir(db_path, db_dir) == 0 && !strcmp(log_dir, db_dir))
		return errbuf_set(err, ST_EINVAL, "checkpoint log %s is in the database's directory:"
				  " a copy of that directory would roll both back", path);
	hex_encode(head, 32, hex);
	hex_encode(sig, sig_len, sig_hex);
	clock_iso_ms(clock_realtime_ms(), ts);
	n = snprintf(line, sizeof(line), "v1 %s %s %" PRId64 " %s %s %s\n", station_id, chain, seq,
		     hex, ts, sig_hex);
	if (n < 0 || (size_t)n >= sizeof(line))
		return errbuf_set(err, ST_EINVAL, "checkpoint log line too long");
	created = access(path, F_OK) != 0;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return errbuf_set(err, ST_EIO, "checkpoint log %s: %s", path, strerror(errno));
	if (write(fd, line, (size_t)n) != n || fsync(fd) != 0) {
		int e = errno;

		close(fd);
		return errbuf_set(err, ST_EIO, "checkpoint log %s: write: %s", path, strerror(e));
	}
	close(fd);
	if (created && fileio_sync_dir(log_dir) != 0)
		return errbuf_set(err, ST_EIO, "checkpoint log %s: sync its directory: %s", path,
				  strerror(errno));
	return ST_OK;
}

int cplog_last(const char *path, const char *station_id, const char *chain,
	       struct cplog_entry *e, struct errbuf *err)
{
	char buf[TAIL_BYTES + 1], sid[96], cid[40], hex[80], ts[40], sig_hex[2 * CPLOG_SIG_MAX + 8], *line;
	long long seq;
	ssize_t got;
	off_t size, from;
	int fd, tail;

	memset(e, 0, sizeof(*e));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errbuf_set(err, errno == ENOENT ? ST_ENOTFOUND : ST_EIO, "checkpoint log %s: %s",
				  path, strerror(errno));
	size = lseek(fd, 0, SEEK_END);
	from = size > TAIL_BYTES ? size - TAIL_BYTES : 0;
	got = size < 0 ? -1 : pread(fd, buf, (size_t)(size - from), from);
	close(fd);
	if (got < 0)
		return errbuf_set(err, ST_EIO, "checkpoint log %s: read: %s", path, strerror(errno));
	buf[got] = '\0';
	if (got == 0)
		return errbuf_set(err, ST_ENOTFOUND, "checkpoint log %s is empty", path);
	if (buf[got - 1] != '\n')
		return errbuf_set(err, ST_ETAMPER, "checkpoint log %s: the last line is cut short", path);
	buf[got - 1] = '\0';
	line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	if (sscanf(line, "v1 %95s %39s %lld %79s %39s %1031s%n", sid, cid, &seq, hex, ts, sig_hex,
		   &tail) != 6 ||
	    line[tail] != '\0' || seq < 1 || strlen(hex) != 64 ||
	    hex_decode_lower(hex, 64, e->head, 32) || strlen(sig_hex) % 2 ||
	    strlen(sig_hex) / 2 > CPLOG_SIG_MAX ||
	    hex_decode_lower(sig_hex, strlen(sig_hex), e->sig, strlen(sig_hex) / 2))
		return errbuf_set(err, ST_ETAMPER, "checkpoint log %s: the last line does not parse", path);
	if (strcmp(sid, station_id) || strcmp(cid, chain))
		return errbuf_set(err, ST_ETAMPER, "checkpoint log %s is station %s's chain %s, not"
				  " station %s's chain %s", path, sid, cid, station_id, chain);
	e->seq = seq;
	e->sig_len = strlen(sig_hex) / 2;
	snprintf(e->ts, sizeof(e->ts), "%s", ts);
	return ST_OK;
}
