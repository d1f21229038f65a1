/* hsm_config: the [hsm] settings and the PIN sources.  See hsm.h. */
#include "hsm/hsm.h"
#include "core/hex.h"
#include "core/secretfile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

void hsm_config_init(struct hsm_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->module, sizeof(c->module), "%s", HSM_DEFAULT_MODULE);
	c->pin_prompt = 1;
}

static int set_str(char *dst, size_t size, const char *key, const char *value,
		   struct errbuf *err)
{
	size_t n = strlen(value);

	if (n == 0 || n >= size)
		return errbuf_set(err, ST_EINVAL, "%s must be 1..%zu characters", key, size - 1);
	for (size_t i = 0; i < n; i++)
		if (iscntrl((unsigned char)value[i]))
			return errbuf_set(err, ST_EINVAL, "%s contains a control character", key);
	memcpy(dst, value, n + 1);
	return ST_OK;
}

int hsm_config_set(struct hsm_config *c, const char *key, const char *value,
		   struct errbuf *err)
{
	static const struct {
		const char *key;
		size_t off, size;
	} strs[] = {
#define S(k) { #k, offsetof(struct hsm_config, k), sizeof(((struct hsm_config *)0)->k) }
		S(module), S(softhsm2_conf), S(token), S(ca_key), S(ca_key_id),
		S(ca_cert), S(ca_cert_sha256), S(audit_key), S(pin_file), S(pin_env),
#undef S
	};

	if (!strcmp(key, "pin_prompt")) {
		if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "1"))
			c->pin_prompt = 1;
		else if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "0"))
			c->pin_prompt = 0;
		else
			return errbuf_set(err, ST_EINVAL, "pin_prompt must be yes or no");
		return ST_OK;
	}
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		if (strcmp(key, strs[i].key))
			continue;
		if (!strcmp(key, "ca_key_id")) {
			size_t n = strlen(value);

			if (!hex_all_digits(value, n))
				return errbuf_set(err, ST_EINVAL, "ca_key_id must be hex");
			if (n % 2)
				return errbuf_set(err, ST_EINVAL, "ca_key_id must have an even number of hex digits");
		}
		if (!strcmp(key, "ca_cert_sha256") &&
		    (strlen(value) != 64 || !hex_all_digits(value, 64)))
			return errbuf_set(err, ST_EINVAL, "ca_cert_sha256 must be 64 hex digits");
		if (!strcmp(key, "pin_env")) {
			for (const char *p = value; *p; p++)
				if (!isalnum((unsigned char)*p) && *p != '_')
					return errbuf_set(err, ST_EINVAL,
							  "pin_env must be an environment variable name");
		}
		if (set_str((char *)c + strs[i].off, strs[i].size, key, value, err))
			return err ? err->code : ST_EINVAL;
		return ST_OK;
	}
	return errbuf_set(err, ST_ENOTFOUND, "unknown key '%s'", key);
}

struct ini_state {
	struct hsm_config *c;
	struct errbuf *err;
	const char *path;
	int line;
	int failed;
};

static int hsm_ini_handler(void *user, const char *section, const char *name,
		       const char *value, int lineno)
{
	struct ini_state *st = user;

	if (st->failed)
		return 0;
	if (strcmp(section, "hsm"))
		return 1;
	if (hsm_config_set(st->c, name, value, st->err) != ST_OK) {
		errbuf_prefix(st->err, "%s:%d: [hsm] ", st->path, lineno);
		st->failed = 1;
		return 0;
	}
	return 1;
}

#if !INI_HANDLER_LINENO
/* Debian's inih is built without line numbers in the handler: count them via
 * the reader instead. */
struct line_reader {
	FILE *f;
	struct ini_state *st;
};

static char *read_line(char *buf, int size, void *stream)
{
	struct line_reader *r = stream;
	char *s = fgets(buf, size, r->f);

	if (s)
		r->st->line++;
	return s;
}

static int ini_handler_nolineno(void *user, const char *section, const char *name,
				const char *value)
{
	struct ini_state *st = user;

	return hsm_ini_handler(user, section, name, value, st->line);
}
#endif

int hsm_config_load_ini(struct hsm_config *c, const char *path, struct errbuf *err)
{
	struct ini_state st = { c, err, path, 0, 0 };
	FILE *f;
	int rc;

	f = fopen(path, "r");
	if (!f)
		return errbuf_set(err, ST_EIO, "%s: %s", path, strerror(errno));
#if INI_HANDLER_LINENO
	rc = ini_parse_file(f, hsm_ini_handler, &st);
#else
	{
		struct line_reader r = { f, &st };

		rc = ini_parse_stream(read_line, &r, ini_handler_nolineno, &st);
	}
#endif
	fclose(f);
	if (st.failed)
		return err ? err->code : ST_EINVAL;
	if (rc > 0)
		return errbuf_set(err, ST_EINVAL, "%s:%d: not valid INI syntax", path, rc);
	if (rc < 0)
		return errbuf_set(err, ST_EIO, "%s: cannot read", path);
	return ST_OK;
}

int hsm_config_check(const struct hsm_config *c, struct errbuf *err)
{
	if (!c->module[0])
		return errbuf_set(err, ST_EINVAL, "hsm: no PKCS#11 module (key 'module')");
	if (!c->token[0])
		return errbuf_set(err, ST_EINVAL, "hsm: no token label (key 'token')");
	if (!c->ca_key[0] && !c->ca_key_id[0])
		return errbuf_set(err, ST_EINVAL, "hsm: no CA key (key 'ca_key' or 'ca_key_id')");
	if (!c->ca_cert[0])
		return errbuf_set(err, ST_EINVAL, "hsm: no CA certificate (key 'ca_cert')");
	if (c->pin_file[0] && c->pin_env[0])
		return errbuf_set(err, ST_EINVAL, "hsm: set pin_file or pin_env, not both");
	return ST_OK;
}

/* Strips the line end a file or a terminal leaves; refuses an empty PIN. */
static int finish_pin(char *pin, const char *src, struct errbuf *err)
{
	size_t n = strlen(pin);

	while (n > 0 && (pin[n - 1] == '\n' || pin[n - 1] == '\r'))
		pin[--n] = '\0';
	if (n == 0)
		return errbuf_set(err, ST_EPIN, "hsm: empty PIN from %s", src);
	return ST_OK;
}

/* The file's rules (StrictModes) are core/secretfile.h's, the PIN's here. */
static int pin_from_file(const char *path, char *pin, struct errbuf *err)
{
	int rc = secretfile_read(path, "hsm: PIN file", pin, HSM_PIN_MAX, err);

	return rc ? rc : finish_pin(pin, path, err);
}

static int pin_from_env(const char *name, char *pin, struct errbuf *err)
{
	char *v = getenv(name);
	size_t n;

	if (!v || !*v)
		return errbuf_set(err, ST_EPIN, "hsm: PIN variable %s is not set", name);
	n = strlen(v);
	if (n >= HSM_PIN_MAX)
		return errbuf_set(err, ST_EPIN, "hsm: PIN variable %s is too long", name);
	memcpy(pin, v, n + 1);
	/* Consume it: the value must not outlive the login in our environment,
	 * nor pass to children. */
	OPENSSL_cleanse(v, n);
	unsetenv(name);
	return finish_pin(pin, name, err);
}

static int pin_from_tty(const char *token, char *pin, struct errbuf *err)
{
	struct termios old, quiet;
	FILE *tty;
	int ok;

	tty = fopen("/dev/tty", "r+");
	if (!tty)
		return errbuf_set(err, ST_EPIN,
				  "hsm: no PIN source (set pin_file or pin_env) and no terminal to ask on");
	setvbuf(tty, NULL, _IONBF, 0);
	if (tcgetattr(fileno(tty), &old) != 0) {
		fclose(tty);
		return errbuf_set(err, ST_EPIN, "hsm: cannot read the terminal settings");
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	/* echo off before the prompt shows: what is typed after it is never echoed
	 * (TCSAFLUSH also drops anything typed ahead of it) */
	tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
	fprintf(tty, "PIN for token '%s': ", token);
	ok = fgets(pin, HSM_PIN_MAX, tty) != NULL;
	tcsetattr(fileno(tty), TCSAFLUSH, &old);
	fputc('\n', tty);
	fclose(tty);
	if (!ok)
		return errbuf_set(err, ST_EPIN, "hsm: no PIN entered");
	return finish_pin(pin, "the terminal", err);
}

int hsm_pin_read(const struct hsm_config *c, char pin[HSM_PIN_MAX], struct errbuf *err)
{
	int rc;

	pin[0] = '\0';
	if (c->pin_file[0])
		rc = pin_from_file(c->pin_file, pin, err);
	else if (c->pin_env[0])
		rc = pin_from_env(c->pin_env, pin, err);
	else if (c->pin_prompt)
		rc = pin_from_tty(c->token, pin, err);
	else
		rc = errbuf_set(err, ST_EPIN, "hsm: no PIN source configured (pin_file, pin_env)");
	if (rc != ST_OK)
		OPENSSL_cleanse(pin, HSM_PIN_MAX);
	return rc;
}
