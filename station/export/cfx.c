/* cfx: IPC-CFX 1.3 messages for one unit.  See cfx.h. */
#include "export/cfx.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "core/clock.h"

static const char *const names[] = {
	[CFX_UNITS_PERSONALIZED] = "CFX.Production.Assembly.UnitsPersonalized",
	[CFX_WORK_COMPLETED] = "CFX.Production.WorkCompleted",
};

const char *cfx_message_name(enum cfx_message m)
{
	return names[m];
}

int cfx_result_of_status(const char *status)
{
	if (!strcmp(status, "pass"))
		return CFX_COMPLETED;
	if (!strcmp(status, "fail") || !strcmp(status, "reject"))
		return CFX_FAILED;
	if (!strcmp(status, "interrupted"))
		return CFX_ABORTED;
	return -1;
}

/* A name-based UUID (RFC 9562 version 8: SHA-256, the version and variant
 * bits set) of "station-cfx\n<station>\n<unit id>\n<what>". */
static void uuid_of(const struct cfx_unit *u, const char *what, char out[37])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char in[256];
	int len;

	len = snprintf(in, sizeof(in), "station-cfx\n%s\n%lld\n%s", u->station_id,
		       (long long)u->unit_id, what);
	EVP_Digest(in, (size_t)(len < (int)sizeof(in) ? len : (int)sizeof(in) - 1), md, &n,
		   EVP_sha256(), NULL);
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10],
		 md[11], md[12], md[13], md[14], md[15]);
}

static json_t *body(enum cfx_message m, const struct cfx_unit *u, const char *txn)
{
	static const char *const results[] = { "Completed", "Failed", "Aborted" };

	if (m == CFX_UNITS_PERSONALIZED)
		return json_pack("{s:s, s:[{s:s, s:i, s:[{s:s, s:s}, {s:s, s:s}]}]}",
				 "TransactionId", txn, "PersonalizedUnits", "UnitIdentifier",
				 u->unique_id, "UnitPositionNumber", 1, "Characteristics",
				 "Name", "HardwareUniqueId", "Value", u->unique_id,
				 "Name", "Bay", "Value", u->bay);
	return json_pack("{s:s, s:s, s:s, s:n, s:i, s:[{s:s, s:i, s:s}], s:o}",
			 "TransactionID", txn, "Result", results[u->result],
			 "PrimaryIdentifier", u->unique_id, "HermesIdentifier",
			 "UnitCount", 1, "Units", "UnitIdentifier", u->unique_id,
			 "PositionNumber", 1, "PositionName", u->bay,
			 "WorkOrderIdentifier", u->lot ?
			 json_pack("{s:s, s:n}", "WorkOrderId", u->lot, "BatchId") : json_null());
}

char *cfx_message_json(enum cfx_message m, const struct cfx_unit *u)
{
	char txn[37], uid[37], ts[CLOCK_ISO_LEN], src[80], *s;
	json_t *b, *j;

	uuid_of(u, "transaction", txn);
	uuid_of(u, names[m], uid);
	if (clock_iso_ms(u->finished_ms, ts))
		return NULL;
	snprintf(src, sizeof(src), "station.%s", u->station_id);
	if (!(b = body(m, u, txn)))
		return NULL;
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:n, s:n, s:o}", "MessageName", names[m],
		      "Version", "1.3", "TimeStamp", ts, "UniqueID", uid, "Source", src,
		      "Target", "RequestID", "MessageBody", b);
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return s;
}

void cfx_file_name(enum cfx_message m, const struct cfx_unit *u, char *out, size_t cap)
{
	char sid[65];
	size_t i;

	for (i = 0; u->station_id[i] && i < sizeof(sid) - 1; i++) {
		char c = u->station_id[i];

		sid[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '.' || c == '_' || c == '-' ? c : '_';
	}
	sid[i] = '\0';
	snprintf(out, cap, "%s-u%012lld-%d-%s.json", sid, (long long)u->unit_id,
		 m == CFX_UNITS_PERSONALIZED ? 1 : 2,
		 m == CFX_UNITS_PERSONALIZED ? "UnitsPersonalized" : "WorkCompleted");
}
