/*
 * ids: the rules for the names the station keys its records by, written once.
 *
 * Unique id: a board's hardware id is exactly IDS_UID_LEN upper-case hex
 * digits ("0123456789ABCDEF01234567").  The board reports it, the manufacturer
 * lists it in the allowlist, the CSR carries it as its serialNumber, the
 * database keys units and certificates by it: every layer checks it with
 * ids_uid_valid() (ids_uid_valid_n() for a field that is not NUL-terminated,
 * as on the wire).  Lower case is refused, not folded: the allowlist is a
 * signed document and the id is compared byte for byte.
 *
 * Lot name: 1..IDS_LOT_MAX printable ASCII characters, no space, no comma, no
 * double quote (a lot appears unquoted in CSV exports and file names).
 *
 * Certificate serial, as stored and shown: lower-case hex without leading
 * zeros, 1..IDS_SERIAL_MAX digits.
 *
 * Actor (who acts, as the audit log records them: --user, --operator, the
 * unit's operator): 1..IDS_ACTOR_MAX printable ASCII characters (0x20..0x7e;
 * spaces allowed).  The audit log refuses any other actor, so every place a
 * name enters (the CLI's options) checks it with ids_actor_valid() before
 * anything is touched.
 *
 * Station id (--station-id, stored by `station init`; the audit chain is keyed
 * by it and the signed checkpoint text is line-based): 1..IDS_STATION_MAX
 * printable ASCII characters, no space.
 *
 * Free text that the audit log records in a JSON detail (a rework reason):
 * 1..max bytes, no control byte (< 0x20, 0x7f), valid UTF-8.
 *
 * Each predicate returns 1 when s follows the rule, 0 otherwise (NULL is 0).
 */
#ifndef STATION_IDS_H
#define STATION_IDS_H

#include <stddef.h>

#define IDS_UID_LEN    24
#define IDS_LOT_MAX    64
#define IDS_SERIAL_MAX 64
#define IDS_ACTOR_MAX  64
#define IDS_STATION_MAX 63

int ids_uid_valid(const char *s);
int ids_uid_valid_n(const char *s, size_t len);
int ids_lot_valid(const char *s);
int ids_serial_valid(const char *s);
int ids_actor_valid(const char *s);
int ids_station_valid(const char *s);
int ids_text_valid(const char *s, size_t max);

#endif
