/* fileio: see fileio.h. */
#include "core/fileio.h"
#include "core/str.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum st_rc fileio_read(const char *path, size_t max, const char *what, uint8_t **buf,
		       size_t *len, struct errbuf *err)
{
	struct stat sb;
	size_t got = 0;
	int fd;

	*buf = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (what)
			return errbuf_set(err, ST_EIO, "%s: cannot open %s: %s", path, what,
					  strerror(errno));
		return errbuf_set(err, ST_EIO, "%s: %s", path, strerror(errno));
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		if (what)
			return errbuf_set(err, ST_EINVAL, "%s: %s is not a regular file", path, what);
		return errbuf_set(err, ST_EINVAL, "%s: not a regular file", path);
	}
	if ((uint64_t)sb.st_size > max) {
		close(fd);
		if (what)
			return errbuf_set(err, ST_EINVAL, "%s: %s is larger than %zu bytes", path,
					  what, max);
		return errbuf_set(err, ST_EINVAL, "%s: larger than %zu bytes", path, max);
	}
	*buf = malloc((size_t)sb.st_size + 1);
	if (!*buf) {
		close(fd);
		return errbuf_set(err, ST_ENOMEM, "%s: out of memory", path);
	}
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, *buf + got, (size_t)sb.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			free(*buf);
			*buf = NULL;
			return errbuf_set(err, ST_EIO, "%s: read error: %s", path, strerror(e));
		}
		if (n == 0)	/* shrank while read: what is there is the file */
			break;
		got += (size_t)n;
	}
	close(fd);
	(*buf)[got] = '\0';
	*len = got;
	return ST_OK;
}

int fileio_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc, e;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	e = errno;
	close(fd);
	errno = e;
	return rc;
}

enum st_rc fileio_atomic_open(struct fileio_atomic *a, const char *path, mode_t mode,
			      struct errbuf *err)
{
	int fd;

	memset(a, 0, sizeof(*a));
	a->path = path;
	if (str_fmt(a->tmp, sizeof(a->tmp), "%s.tmp.XXXXXX", path))
		return errbuf_set(err, ST_EINVAL, "%s: path too long", path);
	if ((fd = mkostemp(a->tmp, O_CLOEXEC)) < 0)
		return errbuf_set(err, ST_EIO, "%s: cannot create a temporary file beside it: %s",
				  path, strerror(errno));
	if (fchmod(fd, mode) != 0 || !(a->f = fdopen(fd, "w"))) {
		int e = errno;

		close(fd);
		unlink(a->tmp);
		return errbuf_set(err, ST_EIO, "%s: %s", a->tmp, strerror(e));
	}
	return ST_OK;
}

enum st_rc fileio_atomic_sync(struct fileio_atomic *a, struct errbuf *err)
{
	if (fflush(a->f) != 0 || ferror(a->f) || fsync(fileno(a->f)) != 0)
		return errbuf_set(err, ST_EIO, "%s: %s", a->tmp,
				  strerror(errno ? errno : EIO));
	a->synced = 1;
	return ST_OK;
}

void fileio_atomic_abort(struct fileio_atomic *a)
{
	if (!a->f)
		return;
	fclose(a->f);
	a->f = NULL;
	unlink(a->tmp);
}

enum st_rc fileio_atomic_commit(struct fileio_atomic *a, struct errbuf *err)
{
	char dir[PATH_MAX];
	int rc = ST_OK;

	if (!a->synced)
		rc = fileio_atomic_sync(a, err);
	if (fclose(a->f) != 0 && rc == ST_OK)
		rc = errbuf_set(err, ST_EIO, "%s: %s", a->tmp, strerror(errno));
	a->f = NULL;
	if (rc == ST_OK && rename(a->tmp, a->path) != 0)
		rc = errbuf_set(err, ST_EIO, "rename %s to %s: %s", a->tmp, a->path,
				strerror(errno));
	if (rc != ST_OK) {
		unlink(a->tmp);
		return rc;
	}
	/* the new name survives a power loss once its directory is synced; the
	 * temporary name fitted PATH_MAX, so the path does */
	if (str_copy(dir, sizeof(dir), a->path) == 0 && fileio_sync_dir(dirname(dir)) != 0)
		return errbuf_set(err, ST_EIO, "%s: written, but its directory could not be synced: %s",
				  a->path, strerror(errno));
	return ST_OK;
}

enum st_rc fileio_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			       struct errbuf *err)
{
	struct fileio_atomic a;
	int rc;

	if ((rc = fileio_atomic_open(&a, path, mode, err)) != ST_OK)
		return rc;
	if (len && fwrite(data, 1, len, a.f) != len) {
		rc = errbuf_set(err, ST_EIO, "%s: %s", a.tmp, strerror(errno ? errno : EIO));
		fileio_atomic_abort(&a);
		return rc;
	}
	return fileio_atomic_commit(&a, err);
}
