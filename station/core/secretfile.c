/* secretfile: a secret read under StrictModes (core/secretfile.h). */
#include "core/secretfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define REFUSE(err, ...) errbuf_setr((err), ST_EPIN, ST_ORIGIN_CONFIG, ST_R_INVALID, __VA_ARGS__)

/* The owner and the directory: the half of StrictModes a file's mode cannot say. */
static int owner_ok(const char *path, const char *what, const struct stat *sb,
		    struct errbuf *err)
{
	char dir[PATH_MAX];
	struct stat db;
	uid_t me = geteuid();
	char *slash;

	if (sb->st_uid != me && sb->st_uid != 0)
		return REFUSE(err, "%s %s is owned by uid %u, not by this user (uid %u) or root;"
				   " chown it", what, path, (unsigned)sb->st_uid, (unsigned)me);
	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return REFUSE(err, "%s path too long", what);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &db) != 0)
		return REFUSE(err, "%s %s: its directory %s: %s", what, path, dir, strerror(errno));
	if ((db.st_uid != me && db.st_uid != 0) || (db.st_mode & 022))
		return REFUSE(err, "%s %s is in directory %s that %s (mode %04o, uid %u); only this"
				   " user or root may write there", what, path, dir,
				   (db.st_mode & 022) ? "others may write to" : "another user owns",
				   (unsigned)(db.st_mode & 07777), (unsigned)db.st_uid);
	return ST_OK;
}

int secretfile_read(const char *path, const char *what, char *out, size_t cap,
		    struct errbuf *err)
{
	struct stat sb;
	size_t got = 0;
	ssize_t n;
	int fd, rc;

	if (cap < 2)
		return errbuf_set(err, ST_EINVAL, "%s: no room for the secret", what);
	out[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return REFUSE(err, "%s %s: %s", what, path, strerror(errno));
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return REFUSE(err, "%s %s is not a regular file", what, path);
	}
	if (sb.st_mode & 077) {
		close(fd);
		return REFUSE(err, "%s %s is readable by others (mode %04o): it must be mode 0600"
			      " (chmod 600 it)", what, path, (unsigned)(sb.st_mode & 07777));
	}
	if ((rc = owner_ok(path, what, &sb, err)) != ST_OK) {
		close(fd);
		return rc;
	}
	while (got < cap - 1) {
		n = read(fd, out + got, cap - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	out[got] = '\0';
	if (got == cap - 1) {
		OPENSSL_cleanse(out, cap);
		return REFUSE(err, "%s %s is too long", what, path);
	}
	while (got && (out[got - 1] == '\n' || out[got - 1] == '\r'))
		out[--got] = '\0';
	if (!got)
		return REFUSE(err, "%s %s is empty", what, path);
	return ST_OK;
}
