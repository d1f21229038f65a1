/* profile: see profile.h. */
#include "config/profile.h"
#include "core/certfile.h"
#include "core/fileio.h"
#include "core/hex.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

/* What a key's value is, so one validator serves every key. */
enum val_kind {
	V_NAME,      /* [A-Za-z0-9._-], 1..64 */
	V_USBID,     /* VVVV:PPPP hex */
	V_PATH,      /* non-empty, no control characters; resolved against base_dir */
	V_SHA256,    /* 64 hex digits */
	V_KEYTYPE,
	V_DAYS,      /* 1..36500 */
	V_SAN,
	V_LABEL,     /* printable, 1..64 (PKCS#11 labels, env var names) */
	V_TOKEN,     /* printable, 1..32 */
	V_ENVNAME,   /* [A-Z_][A-Z0-9_]* */
	V_FAILS,     /* 1..100 */
	V_INT,       /* a whole number in the key's range (int_ranges below) */
};

struct key_spec {
	const char *section, *key;
	enum val_kind kind;
	int required;
	size_t off, size;           /* where the value goes in struct profile */
};

#define F(m) offsetof(struct profile, m), sizeof(((struct profile *)0)->m)
static const struct key_spec keys[] = {
	{ "product",     "name",            V_NAME,    1, F(name) },
	{ "product",     "usb",             V_USBID,   1, 0, 0 },
	{ "firmware",    "image",           V_PATH,    1, F(firmware_image) },
	{ "firmware",    "sha256",          V_SHA256,  1, F(firmware_sha256) },
	{ "key",         "type",            V_KEYTYPE, 0, 0, 0 },
	{ "certificate", "validity_days",   V_DAYS,    1, 0, 0 },
	{ "certificate", "san",             V_SAN,     0, F(san_template) },
	{ "hsm",         "module",          V_PATH,    1, F(hsm_module) },
	{ "hsm",         "softhsm2_conf",   V_PATH,    0, F(hsm_softhsm2_conf) },
	{ "hsm",         "token",           V_TOKEN,   1, F(hsm_token) },
	{ "hsm",         "ca_key",          V_LABEL,   1, F(hsm_ca_key) },
	{ "hsm",         "ca_cert",         V_PATH,    1, F(hsm_ca_cert) },
	{ "hsm",         "ca_cert_sha256",  V_SHA256,  0, F(hsm_ca_cert_sha256) },
	{ "hsm",         "audit_key",       V_LABEL,   1, F(hsm_audit_key) },
	{ "hsm",         "pin_file",        V_PATH,    0, F(hsm_pin_file) },
	{ "hsm",         "pin_env",         V_ENVNAME, 0, F(hsm_pin_env) },
	{ "attestation", "manufacturer_ca", V_PATH,    1, F(mfr_ca_cert) },
	{ "attestation", "manufacturer_ca_sha256", V_SHA256, 0, F(mfr_ca_sha256) },
	{ "policy",      "max_failures_in_row", V_FAILS, 0, 0, 0 },
	{ "policy",      "max_rejects",     V_INT,     0, F(max_rejects) },
	{ "policy",      "reject_window_s", V_INT,     0, F(reject_window_s) },
	{ "deadlines",   "unit_s",          V_INT,     0, F(deadline_unit_s) },
	{ "deadlines",   "flash_s",         V_INT,     0, F(deadline_flash_s) },
	{ "deadlines",   "keygen_s",        V_INT,     0, F(deadline_keygen_s) },
	{ "deadlines",   "stage_s",         V_INT,     0, F(deadline_stage_s) },
};

/* The whole-number keys: range and default (docs/engineer.md "Profiles"). */
static const struct int_range {
	const char *key;
	int lo, hi, def;
} int_ranges[] = {
	{ "max_rejects",     1, 100,   PROFILE_DEF_MAX_REJECTS },
	{ "reject_window_s", 1, 86400, PROFILE_DEF_REJECT_WINDOW_S },
	{ "unit_s",          1, 3600,  PROFILE_DEF_UNIT_S },
	{ "flash_s",         1, 3600,  PROFILE_DEF_FLASH_S },
	{ "keygen_s",        1, 3600,  PROFILE_DEF_KEYGEN_S },
	{ "stage_s",         1, 3600,  PROFILE_DEF_STAGE_S },
};
#define NRANGES (sizeof(int_ranges) / sizeof(int_ranges[0]))
#undef F
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const sections[] = {
	"product", "firmware", "key", "certificate", "hsm", "attestation", "policy",
	"deadlines",
};
#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

struct parse_ctx {
	const char *filename, *base_dir;
	const char *text, *end, *pos;   /* the reader's cursor */
	int line;                       /* lines handed to inih so far */
	int section_line[NSECTIONS];    /* where each section starts, 0 = absent */
	int key_line[NKEYS];            /* where each key was set, 0 = absent */
	struct profile *p;
	struct errbuf *err;
	int failed;
	int fail_line;                  /* line of the first handler/reader error */
};

static int fail_at(struct parse_ctx *c, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail_at(struct parse_ctx *c, int line, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	if (c->failed)
		return 0;     /* the first error is the one reported */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errbuf_set(c->err, ST_EINVAL, "%s:%d: %s", c->filename, line, msg);
	c->failed = 1;
	c->fail_line = line;
	return 0;
}

static int section_index(const char *name)
{
	for (size_t i = 0; i < NSECTIONS; i++)
		if (!strcmp(sections[i], name))
			return (int)i;
	return -1;
}

/*
 * inih's line reader.  Counting lines here gives every handler call its line
 * number (the Debian build has no INI_HANDLER_LINENO), and lets us refuse what
 * inih would quietly accept: long lines (it splits them), indented continuation
 * lines, and empty unknown sections (it never reports them to the handler).
 */
static char *reader(char *str, int num, void *stream)
{
	struct parse_ctx *c = stream;
	const char *nl, *s;
	size_t n;

	if (c->failed || c->pos >= c->end)
		return NULL;
	nl = memchr(c->pos, '\n', (size_t)(c->end - c->pos));
	n = nl ? (size_t)(nl - c->pos) : (size_t)(c->end - c->pos);
	c->line++;
	if (n + 2 > (size_t)num) {
		fail_at(c, c->line, "line too long (at most %d characters)", num - 2);
		return NULL;
	}
	if (memchr(c->pos, '\0', n)) {
		fail_at(c, c->line, "NUL byte in line");
		return NULL;
	}
	memcpy(str, c->pos, n);
	str[n] = '\0';
	if (n > 0 && str[n - 1] == '\r')
		str[n - 1] = '\0';
	c->pos += n + (nl ? 1 : 0);

	for (s = str; *s == ' ' || *s == '\t'; s++)
		;
	if (s != str && *s && *s != ';' && *s != '#') {
		fail_at(c, c->line, "indented line (continuation lines are not allowed)");
		return NULL;
	}
	if (*s == '[') {
		const char *close = strchr(s, ']');
		char name[64];
		size_t len;
		int idx;

		if (!close)
			return str;   /* inih reports the syntax error on this line */
		len = (size_t)(close - s - 1);
		if (len >= sizeof(name)) {
			fail_at(c, c->line, "unknown section");
			return NULL;
		}
		memcpy(name, s + 1, len);
		name[len] = '\0';
		idx = section_index(name);
		if (idx < 0) {
			fail_at(c, c->line, "unknown section [%s]", name);
			return NULL;
		}
		if (c->section_line[idx]) {
			fail_at(c, c->line, "section [%s] repeated (first at line %d)",
				name, c->section_line[idx]);
			return NULL;
		}
		c->section_line[idx] = c->line;
	}
	/* inih copies into str with fgets semantics: keep a newline for it. */
	strcat(str, "\n");
	return str;
}

static int parse_int(const char *v, int lo, int hi, int *out)
{
	char *end;
	long x;

	if (!*v || !isdigit((unsigned char)*v))
		return -1;
	errno = 0;
	x = strtol(v, &end, 10);
	if (errno || *end || x < lo || x > hi)
		return -1;
	*out = (int)x;
	return 0;
}

static int printable(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return 0;
	return 1;
}

static int set_value(struct parse_ctx *c, const struct key_spec *k, const char *v)
{
	struct profile *p = c->p;
	char buf[PATH_MAX];
	size_t len = strlen(v);
	int n;

	/* inih reads "key =;x" as the value ";x", but "key = ;x" (the canonical
	 * form) as a comment: the stored profile would not parse back */
	if (v[0] == ';')
		return fail_at(c, c->line, "%s: a value cannot start with ';' (a comment after '= ')",
			       k->key);
	switch (k->kind) {
	case V_NAME:
		if (len < 1 || len > PROFILE_NAME_MAX)
			return fail_at(c, c->line, "%s: must be 1..%d characters", k->key, PROFILE_NAME_MAX);
		for (const char *s = v; *s; s++)
			if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
				return fail_at(c, c->line, "%s: only letters, digits, '.', '_', '-' allowed", k->key);
		break;
	case V_USBID: {
		unsigned vid, pid;

		if (len != 9 || v[4] != ':' || !hex_all_digits(v, 4) || !hex_all_digits(v + 5, 4) ||
		    sscanf(v, "%4x:%4x", &vid, &pid) != 2)
			return fail_at(c, c->line, "usb: expected VID:PID as 4+4 hex digits (e.g. 1209:0001)");
		p->usb_vid = (uint16_t)vid;
		p->usb_pid = (uint16_t)pid;
		return 1;
	}
	case V_PATH:
		if (!len)
			return fail_at(c, c->line, "%s: empty path", k->key);
		if (!printable(v))
			return fail_at(c, c->line, "%s: control character in path", k->key);
		if (v[0] != '/') {
			if (!c->base_dir)
				return fail_at(c, c->line, "%s: path must be absolute", k->key);
			snprintf(buf, sizeof(buf), "%s/%s", c->base_dir, v);
			v = buf;
			len = strlen(v);
		}
		if (len > PROFILE_PATH_MAX)
			return fail_at(c, c->line, "%s: path longer than %d characters once resolved",
				       k->key, PROFILE_PATH_MAX);
		break;
	case V_SHA256:
		if (len != 64 || !hex_all_digits(v, 64))
			return fail_at(c, c->line, "%s: expected 64 hex digits", k->key);
		for (size_t i = 0; i < 64; i++)
			((char *)p + k->off)[i] = (char)tolower((unsigned char)v[i]);
		((char *)p + k->off)[64] = '\0';
		return 1;
	case V_KEYTYPE:
		if (!strcmp(v, "ec-p256"))
			p->key_type = PROFILE_KEY_EC_P256;
		else if (!strcmp(v, "ec-p384"))
			p->key_type = PROFILE_KEY_EC_P384;
		else if (!strcmp(v, "rsa-3072"))
			p->key_type = PROFILE_KEY_RSA_3072;
		else
			return fail_at(c, c->line, "type: '%s' is not one of ec-p256, ec-p384, rsa-3072", v);
		return 1;
	case V_DAYS:
		if (parse_int(v, 1, 36500, &n))
			return fail_at(c, c->line, "validity_days: expected a whole number 1..36500");
		p->validity_days = n;
		return 1;
	case V_FAILS:
		if (parse_int(v, 1, 100, &n))
			return fail_at(c, c->line, "max_failures_in_row: expected a whole number 1..100");
		p->max_failures_in_row = n;
		return 1;
	case V_INT:
		for (size_t i = 0; i < NRANGES; i++) {
			const struct int_range *r = &int_ranges[i];

			if (strcmp(r->key, k->key))
				continue;
			if (parse_int(v, r->lo, r->hi, &n))
				return fail_at(c, c->line, "%s: expected a whole number %d..%d",
					       k->key, r->lo, r->hi);
			*(int *)(void *)((char *)p + k->off) = n;
			return 1;
		}
		return fail_at(c, c->line, "%s: no range (a bug)", k->key);
	case V_SAN: {
		const char *ph = strstr(v, "{unique_id}");

		if (len > PROFILE_SAN_MAX || !printable(v))
			return fail_at(c, c->line, "san: at most %d printable characters", PROFILE_SAN_MAX);
		if (strncmp(v, "URI:", 4) && strncmp(v, "DNS:", 4))
			return fail_at(c, c->line, "san: must start with URI: or DNS:");
		if (strchr(v, '%') || strchr(v, ' '))
			return fail_at(c, c->line, "san: no '%%' or spaces allowed");
		if (!ph || strstr(ph + 1, "{unique_id}"))
			return fail_at(c, c->line, "san: must contain {unique_id} exactly once");
		if (strchr(v, ',') || strpbrk(v, "{}") != ph || strpbrk(ph + 11, "{}"))
			return fail_at(c, c->line, "san: one name only, and no braces besides {unique_id}");
		break;
	}
	case V_LABEL:
		if (len < 1 || len > PROFILE_LABEL_MAX || !printable(v))
			return fail_at(c, c->line, "%s: must be 1..%d printable characters", k->key, PROFILE_LABEL_MAX);
		break;
	case V_TOKEN:
		if (len < 1 || len > 32 || !printable(v))
			return fail_at(c, c->line, "%s: a token label is 1..32 printable characters", k->key);
		break;
	case V_ENVNAME:
		if (len < 1 || len > PROFILE_LABEL_MAX || !(isupper((unsigned char)v[0]) || v[0] == '_'))
			return fail_at(c, c->line, "%s: expected an environment variable name like STATION_PIN", k->key);
		for (const char *s = v; *s; s++)
			if (!isupper((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
				return fail_at(c, c->line, "%s: expected an environment variable name like STATION_PIN", k->key);
		break;
	}
	snprintf((char *)p + k->off, k->size, "%s", v);
	return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *c = user;

	if (c->failed)
		return 0;
	if (!*section)
		return fail_at(c, c->line, "'%s' outside any section", name);
	if (!strcmp(section, "hsm") && (!strcmp(name, "pin") || !strcmp(name, "so_pin")))
		return fail_at(c, c->line, "a PIN must never be written in a profile; "
			       "use pin_file or pin_env");
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) || strcmp(keys[i].key, name))
			continue;
		if (c->key_line[i])
			return fail_at(c, c->line, "[%s] %s set twice (first at line %d)",
				       section, name, c->key_line[i]);
		c->key_line[i] = c->line;
		return set_value(c, &keys[i], value);
	}
	return fail_at(c, c->line, "unknown key '%s' in [%s]", name, section);
}

static int check_complete(struct parse_ctx *c)
{
	int pin_file = -1, pin_env = -1;

	for (size_t i = 0; i < NKEYS; i++) {
		int sec = section_index(keys[i].section);
		int line = c->section_line[sec] ? c->section_line[sec] : (c->line ? c->line : 1);

		if (!strcmp(keys[i].key, "pin_file"))
			pin_file = (int)i;
		if (!strcmp(keys[i].key, "pin_env"))
			pin_env = (int)i;
		if (keys[i].required && !c->key_line[i]) {
			if (!c->section_line[sec])
				return fail_at(c, line, "missing section [%s] (needs %s)",
					       keys[i].section, keys[i].key);
			return fail_at(c, line, "[%s] missing required key '%s'",
				       keys[i].section, keys[i].key);
		}
	}
	if (!c->key_line[pin_file] == !c->key_line[pin_env])
		return fail_at(c, c->section_line[section_index("hsm")],
			       "[hsm] needs exactly one of pin_file or pin_env");
	return 1;
}

int profile_parse(const char *text, size_t len, const char *filename,
		  const char *base_dir, struct profile *p, struct errbuf *err)
{
	struct parse_ctx c;
	int rc;

	memset(p, 0, sizeof(*p));
	p->key_type = PROFILE_KEY_EC_P256;
	p->max_failures_in_row = 3;
	p->max_rejects = PROFILE_DEF_MAX_REJECTS;
	p->reject_window_s = PROFILE_DEF_REJECT_WINDOW_S;
	p->deadline_unit_s = PROFILE_DEF_UNIT_S;
	p->deadline_flash_s = PROFILE_DEF_FLASH_S;
	p->deadline_keygen_s = PROFILE_DEF_KEYGEN_S;
	p->deadline_stage_s = PROFILE_DEF_STAGE_S;
	memset(&c, 0, sizeof(c));
	c.filename = filename;
	c.base_dir = base_dir;
	c.text = c.pos = text;
	c.end = text + len;
	c.p = p;
	c.err = err;
	if (len > PROFILE_FILE_MAX)
		return errbuf_set(err, ST_EINVAL, "%s: larger than %d bytes", filename, PROFILE_FILE_MAX);

	rc = ini_parse_stream(reader, &c, handler, &c);
	/* inih goes on after a syntax error and returns its line: report whichever
	 * error comes first in the file. */
	if (rc > 0 && (!c.failed || rc < c.fail_line)) {
		c.failed = 0;
		fail_at(&c, rc, "syntax error (expected [section] or key = value)");
	}
	else if (!c.failed && rc < 0)
		errbuf_set(err, ST_ENOMEM, "%s: out of memory", filename), c.failed = 1;
	if (!c.failed)
		check_complete(&c);
	if (c.failed) {
		memset(p, 0, sizeof(*p));
		return err ? err->code : ST_EINVAL;
	}
	return ST_OK;
}

int profile_parse_file(const char *path, struct profile *p, struct errbuf *err)
{
	char *buf = NULL, *dir = NULL, *slash, real[PATH_MAX];
	uint8_t *text;
	size_t got;
	int rc;

	memset(p, 0, sizeof(*p));
	if ((rc = fileio_read(path, PROFILE_FILE_MAX, NULL, &text, &got, err)) != ST_OK)
		return rc;
	buf = (char *)text;

	if (!realpath(path, real)) {
		free(buf);
		return errbuf_set(err, ST_EIO, "%s: %s", path, strerror(errno));
	}
	dir = strdup(real);
	if (!dir) {
		free(buf);
		return errbuf_set(err, ST_ENOMEM, "%s: out of memory", path);
	}
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	rc = profile_parse(buf, got, path, dir, p, err);
	free(dir);
	free(buf);
	return rc;
}

const char *profile_key_type_name(enum profile_key_type t)
{
	switch (t) {
	case PROFILE_KEY_EC_P256:  return "ec-p256";
	case PROFILE_KEY_EC_P384:  return "ec-p384";
	case PROFILE_KEY_RSA_3072: return "rsa-3072";
	}
	return "unknown";
}

int profile_canonical(const struct profile *p, char **out, size_t *len, struct errbuf *err)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);

	if (!f)
		return errbuf_set(err, ST_ENOMEM, "profile: out of memory");
	fprintf(f, "# station profile (canonical form)\n");
	fprintf(f, "[product]\nname = %s\nusb = %04x:%04x\n\n", p->name, p->usb_vid, p->usb_pid);
	fprintf(f, "[firmware]\nimage = %s\nsha256 = %s\n\n", p->firmware_image, p->firmware_sha256);
	fprintf(f, "[key]\ntype = %s\n\n", profile_key_type_name(p->key_type));
	fprintf(f, "[certificate]\nvalidity_days = %d\n", p->validity_days);
	if (p->san_template[0])
		fprintf(f, "san = %s\n", p->san_template);
	fprintf(f, "\n[hsm]\nmodule = %s\n", p->hsm_module);
	if (p->hsm_softhsm2_conf[0])
		fprintf(f, "softhsm2_conf = %s\n", p->hsm_softhsm2_conf);
	fprintf(f, "token = %s\nca_key = %s\nca_cert = %s\n", p->hsm_token, p->hsm_ca_key,
		p->hsm_ca_cert);
	/* pins (issue 12) are written only when set: profiles stored before
	 * them keep their text and hash */
	if (p->hsm_ca_cert_sha256[0])
		fprintf(f, "ca_cert_sha256 = %s\n", p->hsm_ca_cert_sha256);
	fprintf(f, "audit_key = %s\n", p->hsm_audit_key);
	if (p->hsm_pin_file[0])
		fprintf(f, "pin_file = %s\n", p->hsm_pin_file);
	else
		fprintf(f, "pin_env = %s\n", p->hsm_pin_env);
	fprintf(f, "\n[attestation]\nmanufacturer_ca = %s\n", p->mfr_ca_cert);
	if (p->mfr_ca_sha256[0])
		fprintf(f, "manufacturer_ca_sha256 = %s\n", p->mfr_ca_sha256);
	fprintf(f, "\n");
	fprintf(f, "[policy]\nmax_failures_in_row = %d\n", p->max_failures_in_row);
	/* keys added later are written only when set away from their default,
	 * so a profile stored before them keeps its text and its hash */
	if (p->max_rejects != PROFILE_DEF_MAX_REJECTS)
		fprintf(f, "max_rejects = %d\n", p->max_rejects);
	if (p->reject_window_s != PROFILE_DEF_REJECT_WINDOW_S)
		fprintf(f, "reject_window_s = %d\n", p->reject_window_s);
	if (p->deadline_unit_s != PROFILE_DEF_UNIT_S || p->deadline_flash_s != PROFILE_DEF_FLASH_S ||
	    p->deadline_keygen_s != PROFILE_DEF_KEYGEN_S ||
	    p->deadline_stage_s != PROFILE_DEF_STAGE_S)
		fprintf(f, "\n[deadlines]\nunit_s = %d\nflash_s = %d\nkeygen_s = %d\nstage_s = %d\n",
			p->deadline_unit_s, p->deadline_flash_s, p->deadline_keygen_s,
			p->deadline_stage_s);
	if (fclose(f) != 0 || !buf) {
		free(buf);
		return errbuf_set(err, ST_ENOMEM, "profile: out of memory");
	}
	*out = buf;
	*len = sz;
	return ST_OK;
}

int profile_san_for(const struct profile *p, const char *unique_id, char *out,
		    size_t outsz, struct errbuf *err)
{
	const char *ph;
	int n;

	if (!p->san_template[0]) {
		if (outsz)
			out[0] = '\0';
		return ST_OK;
	}
	ph = strstr(p->san_template, "{unique_id}");
	if (!ph)
		return errbuf_set(err, ST_EINVAL, "profile %s: san has no {unique_id}", p->name);
	n = snprintf(out, outsz, "%.*s%s%s", (int)(ph - p->san_template), p->san_template,
		     unique_id, ph + strlen("{unique_id}"));
	if (n < 0 || (size_t)n >= outsz)
		return errbuf_set(err, ST_EINVAL, "profile %s: san too long", p->name);
	return ST_OK;
}

int profile_pin_check(const char *what, const char *path, const char *pin, const uint8_t *der,
		      size_t der_len, struct errbuf *err)
{
	unsigned char md[32];
	char hex[65];

	if (!pin || !pin[0])
		return errbuf_set(err, ST_ETAMPER, "%s %s is not pinned (no SHA-256 in the profile):"
				  " add the profile again with `station profile add`", what, path);
	SHA256(der, der_len, md);
	hex_encode(md, sizeof(md), hex);
	if (strcmp(hex, pin))
		return errbuf_set(err, ST_ETAMPER, "%s %s has SHA-256 %s, not the pinned %s: refused",
				  what, path, hex, pin);
	return ST_OK;
}

/* One anchor: computed into pin when empty, else checked. */
static int pin_one(const char *what, const char *path, char pin[65], int *filled, int bit,
		   struct errbuf *err)
{
	unsigned char md[32];
	uint8_t *der = NULL;
	size_t len = 0;
	int rc;

	if ((rc = certfile_load(path, CERTFILE_MAX, NULL, &der, &len, err)) != ST_OK)
		return errbuf_prefix(err, "%s: ", what);
	if (pin[0]) {
		rc = profile_pin_check(what, path, pin, der, len, err);
	} else {
		SHA256(der, len, md);
		hex_encode(md, sizeof(md), pin);
		*filled |= bit;
	}
	free(der);
	return rc;
}

int profile_pin_anchors(struct profile *p, int *filled, struct errbuf *err)
{
	int rc;

	*filled = 0;
	if ((rc = pin_one("CA certificate", p->hsm_ca_cert, p->hsm_ca_cert_sha256, filled, 1,
			  err)) ||
	    (rc = pin_one("manufacturer CA", p->mfr_ca_cert, p->mfr_ca_sha256, filled, 2, err)))
		return rc;
	return ST_OK;
}
