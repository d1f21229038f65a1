/* errbuf: see errbuf.h. */
#include "core/errbuf.h"
#include "core/str.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void errbuf_clear(struct errbuf *e)
{
	if (!e)
		return;
	e->code = ST_OK;
	e->msg[0] = '\0';
}

int errbuf_set(struct errbuf *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return code;
}

int errbuf_prefix(struct errbuf *e, const char *fmt, ...)
{
	char head[256], old[sizeof(e->msg)];
	va_list ap;

	if (!e)
		return ST_OK;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	/* a message is for a person: past the buffer it is cut, visibly */
	str_fmt_cut(e->msg, sizeof(e->msg), "%s%s", head, old);
	return e->code;
}

const char *st_rc_name(int rc)
{
	static const char *const names[ST_RC_COUNT] = {
		"OK", "EINVAL", "EIO", "ENOMEM", "ENOTFOUND", "EEXIST", "EDB",
		"ESCHEMA", "ETAMPER", "ECRYPTO", "EHSM", "EPIN", "EPOLICY",
		"ETIMEOUT", "ENODEV", "EPROTO", "ESTATE", "EBUSY", "EUSAGE",
		"ECANCELED",
	};

	if (rc < 0 || rc >= ST_RC_COUNT)
		return "EUNKNOWN";
	return names[rc];
}
