/* hsm_module: the PKCS#11 modules the station may load.  See hsm_module.h. */
#include "hsm/hsm_module.h"
#include "hsm/hsm.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const hsm_module_dirs[] = {
	"/usr/lib/softhsm",
	"/usr/lib/x86_64-linux-gnu/softhsm",
	"/usr/lib/x86_64-linux-gnu/pkcs11",
	"/usr/lib/aarch64-linux-gnu/softhsm",
	"/usr/lib/aarch64-linux-gnu/pkcs11",
	NULL,
};

/* Owned by root or by us, and writable by no one else. */
static int owned_safely(const char *path, struct errbuf *err)
{
	struct stat sb;

	if (stat(path, &sb) != 0)
		return errbuf_set(err, errno == ENOENT ? ST_ENOTFOUND : ST_EIO, "%s: %s", path,
				  strerror(errno));
	if (sb.st_uid != 0 && sb.st_uid != geteuid())
		return errbuf_set(err, ST_EPOLICY, "%s is owned by uid %u, neither root nor the"
				  " station's user: refused", path, (unsigned)sb.st_uid);
	if (sb.st_mode & (S_IWGRP | S_IWOTH))
		return errbuf_set(err, ST_EPOLICY, "%s is writable by %s: refused", path,
				  sb.st_mode & S_IWOTH ? "others" : "its group");
	return ST_OK;
}

struct conf_ctx {
	const char *path;
	char *out;
	size_t outsz;
	struct errbuf *err;
	int failed;
};

static int conf_key(void *user, const char *section, const char *name, const char *value)
{
	struct conf_ctx *c = user;

	if (c->failed)
		return 0;
	if (strcmp(section, "station") || strcmp(name, "pkcs11_module")) {
		errbuf_set(c->err, ST_EINVAL, "%s: unknown key '%s' in [%s] (known: [station]"
			   " pkcs11_module)", c->path, name, section);
		c->failed = 1;
		return 0;
	}
	if (value[0] != '/' || strlen(value) >= c->outsz) {
		errbuf_set(c->err, ST_EINVAL, "%s: pkcs11_module must be an absolute path of at"
			   " most %zu characters", c->path, c->outsz - 1);
		c->failed = 1;
		return 0;
	}
	snprintf(c->out, c->outsz, "%s", value);
	return 1;
}

int hsm_station_conf_module(char *out, size_t outsz, struct errbuf *err)
{
	const char *path = getenv(HSM_STATION_CONF_ENV);
	char dir[PATH_MAX], *slash;
	struct conf_ctx c = { 0 };
	FILE *f;
	int rc;

	if (outsz)
		out[0] = '\0';
	if (!path || !*path)
		path = HSM_STATION_CONF;
	if (access(path, F_OK) != 0 && errno == ENOENT)
		return ST_OK;
	if (!realpath(path, dir))
		return errbuf_set(err, ST_EIO, "%s: %s", path, strerror(errno));
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	else if (slash)
		slash[1] = '\0';
	/* the file and the directory it really is in */
	if ((rc = owned_safely(path, err)) || (rc = owned_safely(dir, err)))
		return errbuf_prefix(err, "station configuration: ");
	f = fopen(path, "re");
	if (!f)
		return errbuf_set(err, ST_EIO, "%s: %s", path, strerror(errno));
	c.path = path;
	c.out = out;
	c.outsz = outsz;
	c.err = err;
	rc = ini_parse_file(f, conf_key, &c);
	fclose(f);
	if (c.failed)
		return err ? err->code : ST_EINVAL;
	if (rc != 0)
		return errbuf_set(err, ST_EINVAL, "%s:%d: syntax error", path, rc);
	return ST_OK;
}

/* The resolved directory of path, and its last component. */
static int split_resolved(const char *path, char dir[PATH_MAX], const char **base)
{
	char tmp[PATH_MAX], *slash;

	errno = EINVAL;
	if (strlen(path) >= sizeof(tmp))
		return -1;
	strcpy(tmp, path);
	slash = strrchr(tmp, '/');
	if (!slash || !slash[1])
		return -1;
	*slash = '\0';
	*base = path + (slash - tmp) + 1;
	if (!strcmp(*base, ".") || !strcmp(*base, ".."))
		return -1;
	return realpath(tmp[0] ? tmp : "/", dir) ? 0 : -1;
}

int hsm_module_allowed(const char *module, struct errbuf *err)
{
	char dir[PATH_MAX], allowed[PATH_MAX], conf[HSM_PATH_MAX], a[PATH_MAX], b[PATH_MAX];
	const char *base;
	int rc;

	if (module && module[0] == '/' && split_resolved(module, dir, &base) != 0 &&
	    errno == ENOENT)
		return errbuf_set(err, ST_ENOTFOUND, "PKCS#11 module %s: %s", module,
				  strerror(ENOENT));
	if (!module || module[0] != '/' || split_resolved(module, dir, &base) != 0)
		return errbuf_set(err, ST_EPOLICY, "PKCS#11 module '%s': not an absolute path to a"
				  " file", module ? module : "");
	for (int i = 0; hsm_module_dirs[i]; i++) {
		struct errbuf ignored;

		if (!realpath(hsm_module_dirs[i], allowed) || strcmp(allowed, dir))
			continue;
		/* root put the directory there; nobody else may add to it */
		if (owned_safely(allowed, &ignored) == ST_OK)
			return ST_OK;
	}
	if ((rc = hsm_station_conf_module(conf, sizeof(conf), err)))
		return rc;
	if (conf[0] && realpath(conf, a) && realpath(module, b) && !strcmp(a, b))
		return ST_OK;
	return errbuf_set(err, ST_EPOLICY, "PKCS#11 module %s is not allowed: it is neither in a"
			  " system module directory (%s, %s) nor the pkcs11_module of the station"
			  " configuration (%s)", module, hsm_module_dirs[0], hsm_module_dirs[2],
			  getenv(HSM_STATION_CONF_ENV) && *getenv(HSM_STATION_CONF_ENV)
				  ? getenv(HSM_STATION_CONF_ENV) : HSM_STATION_CONF);
}
