/*
 * fileio: reading a bounded file whole, and replacing a file atomically.
 *
 * fileio_read() reads the regular file path, of at most max bytes, into a
 * malloc'd buffer with a NUL after the last byte (so text can be parsed in
 * place; *len does not count it).  Every message starts with the path; what
 * names the file for the operator ("allowlist"), or is NULL when the path
 * says enough:
 *   what given                              what NULL
 *   "PATH: cannot open WHAT: <errno text>"  "PATH: <errno text>"       ST_EIO
 *   "PATH: WHAT is not a regular file"      "PATH: not a regular file" ST_EINVAL
 *   "PATH: WHAT is larger than MAX bytes"   "PATH: larger than MAX bytes" ST_EINVAL
 *   "PATH: read error: <errno text>"                                   ST_EIO
 * On failure *buf is NULL.  A file that shrinks while it is read is what was
 * read; one that grows is read up to the size it had when opened.
 *
 * fileio_atomic_*() replace path so that a reader, or the file system after a
 * power loss, sees the old file or the whole new one, never a part: the bytes
 * go to a fresh temporary file beside path ("PATH.tmp.XXXXXX", O_CLOEXEC, the
 * mode asked), fileio_atomic_sync() flushes and fsyncs it, and
 * fileio_atomic_commit() syncs, renames it over path and fsyncs the directory.
 * fileio_atomic_abort() (and a failed commit) removes the temporary file.
 * Between open and commit or abort, a->f is the stream to write.
 * fileio_write_atomic() is the whole sequence for bytes already in memory.
 *
 * fileio_sync_dir() fsyncs a directory (a rename or unlink in it is durable
 * once it returns 0); -1 with errno set otherwise.
 */
#ifndef STATION_FILEIO_H
#define STATION_FILEIO_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "core/errbuf.h"

struct fileio_atomic {
	const char *path;
	char        tmp[PATH_MAX];
	FILE       *f;
	int         synced;
};

ST_MUST_CHECK enum st_rc fileio_read(const char *path, size_t max, const char *what,
				     uint8_t **buf, size_t *len, struct errbuf *err);

ST_MUST_CHECK enum st_rc fileio_atomic_open(struct fileio_atomic *a, const char *path,
					    mode_t mode, struct errbuf *err);
ST_MUST_CHECK enum st_rc fileio_atomic_sync(struct fileio_atomic *a, struct errbuf *err);
ST_MUST_CHECK enum st_rc fileio_atomic_commit(struct fileio_atomic *a, struct errbuf *err);
void fileio_atomic_abort(struct fileio_atomic *a);
ST_MUST_CHECK enum st_rc fileio_write_atomic(const char *path, const void *data, size_t len,
					     mode_t mode, struct errbuf *err);

ST_MUST_CHECK int fileio_sync_dir(const char *dir);

#endif
