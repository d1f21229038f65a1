# Checkpoints that mean something (issue 12), on a SoftHSM token made here:
# `station checkpoint` refuses a forged head; `audit verify --key` fails with
# no checkpoint, with checkpoints deleted and the chain rehashed, with a head
# too far past the last checkpoint, and names a rollback through the
# checkpoint log and through the token's anchor.
set -eu
. "$TOP/tests/lib.sh"
command -v sqlite3 >/dev/null || fail "the sqlite3 shell is needed"
export LC_ALL=C

S() { "$STATION" --db "$1" --station-id st1 --user qa "${@:2}"; }
import() {
	printf 'unique_id,lot,model,hw_revision\n%024X,%s,Widget,B\n' "$2" "$3" > "$3.csv"
	S "$1" allowlist import "$3.csv" --lot "$3" --unsigned >/dev/null
}

# rehash DB FROM: recompute prev_hash and hash of st1's events from seq FROM
# on (the encoding of docs/database.md), as an attacker with the file would.
field() { local n=${#1}; printf "\\x$(printf %02x $((n >> 24 & 255)))\\x$(printf %02x $((n >> 16 & 255)))\\x$(printf %02x $((n >> 8 & 255)))\\x$(printf %02x $((n & 255)))%s" "$1"; }
rehash() {
	local db=$1 seq prev ts kind actor detail h
	prev=$(sqlite3 "$db" "SELECT coalesce((SELECT hash FROM events WHERE station_id = 'st1'
		AND seq = $2 - 1), printf('%064d', 0))")
	while IFS=$'\x1f' read -r seq ts kind actor detail; do
		h=$( { field station-audit-v1; field st1; field "$seq"; field "$ts"; field "$kind"
			field "$actor"; field "$detail"; field "$prev"; } | sha256sum | cut -d' ' -f1)
		sqlite3 "$db" "UPDATE events SET prev_hash = '$prev', hash = '$h'
			WHERE station_id = 'st1' AND seq = $seq"
		prev=$h
	done < <(sqlite3 -separator $'\x1f' "$db" "SELECT seq, ts, kind, actor, detail FROM events
		WHERE station_id = 'st1' AND seq >= $2 ORDER BY seq")
}

expect_exit 0 "$TOP/hsm/softhsm-setup.sh" --dir hsm --label anchor-ca
H="--hsm-config hsm/hsm.ini"
SOFTHSM2_CONF=$PWD/hsm/softhsm2.conf pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so \
	--token-label anchor-ca --read-object --type pubkey --label station-audit-key \
	-o audit.der >/dev/null 2>&1 || fail "cannot read the audit public key"
openssl pkey -pubin -inform DER -in audit.der -out audit.pub

new_db st.db st1
import st.db 1 L1
# events but no checkpoint
expect_exit 0 S st.db audit verify
expect_exit 1 S st.db audit verify --key audit.pub
grep -q "station st1 has 5 events and no signed checkpoint" "$ERR" || fail "none: $(cat "$ERR")"
expect_exit 0 S st.db checkpoint $H
grep -q "at seq 5$" "$OUT" || fail "first checkpoint: $(cat "$OUT")"
cp st.db early.db                   # the state at the first checkpoint
import st.db 2 L2
expect_exit 0 S st.db checkpoint $H   # seq 9
expect_exit 0 S st.db audit verify --key audit.pub $H
grep -q "checkpoint log .*: seq 9 is on the chain" "$OUT" || fail "log: $(cat "$OUT")"
grep -q "token anchor: seq 9 is on the chain" "$OUT" || fail "token: $(cat "$OUT")"

# --- stale head: 7 events past the last checkpoint ----------------------------
cp st.db stale.db
import stale.db 3 L3
import stale.db 4 L4
expect_exit 1 S stale.db audit verify --key audit.pub --max-unchecked-events 6
grep -q "head (seq 16) is 7 events past its last checkpoint (seq 9)" "$ERR" ||
	fail "stale: $(cat "$ERR")"
expect_exit 0 S stale.db audit verify --key audit.pub --max-unchecked-events 7
# ... and two days past it (the head's time moved on, the chain rehashed)
sqlite3 stale.db "UPDATE events SET ts = '$(date -u -d '+2 days' +%Y-%m-%dT%H:%M:%S.000Z)'
	WHERE seq = 16"
rehash stale.db 16
expect_exit 1 S stale.db audit verify --key audit.pub
grep -q "head (seq 16) is 4[78]\.[0-9] hours past its last checkpoint (seq 9); --max-unchecked-hours is 24" "$ERR" ||
	fail "stale, hours: $(cat "$ERR")"
expect_exit 0 S stale.db audit verify --key audit.pub --max-unchecked-hours 49

# --- a forged head offered to `station checkpoint` ----------------------------
# The L1 import's event (seq 5, before the last checkpoint) rewritten and every
# event after it rehashed: the chain is consistent again, the anchors are not.
cp st.db forged.db
sqlite3 forged.db "UPDATE events SET actor = 'mallory' WHERE seq = 5"
rehash forged.db 5
expect_exit 1 S forged.db checkpoint $H
grep -q "refusing to sign the head of station st1: database rolled back or rewritten: token 'anchor-ca' has seq 9" "$ERR" ||
	fail "forged head: $(cat "$ERR")"
[ "$(sqlite3 forged.db 'SELECT count(*) FROM checkpoints')" = 2 ] || fail "a forged head was signed"
# An edit after the last anchor, not rehashed: the tail walk itself refuses it.
cp st.db edited.db
sqlite3 edited.db "UPDATE events SET actor = 'mallory' WHERE seq = 10"
expect_exit 1 S edited.db checkpoint $H
grep -q "refusing to sign the head of station st1: .*seq 10: edited" "$ERR" ||
	fail "edited tail: $(cat "$ERR")"

# --- every checkpoint deleted, with its row events, and the chain rehashed ----
cp st.db nocp.db
sqlite3 nocp.db "DELETE FROM checkpoints;
	DELETE FROM events WHERE kind = 'row' AND detail LIKE '%\"t\":\"checkpoints\"%';
	UPDATE events SET seq = -id; UPDATE events SET seq = (SELECT count(*) FROM events e
	  WHERE e.id <= events.id)"
rehash nocp.db 1
expect_exit 0 S nocp.db audit verify       # the chain and the rows are consistent
expect_exit 1 S nocp.db audit verify --key audit.pub
grep -q "station st1 has [0-9]* events and no signed checkpoint" "$ERR" || fail "no cp: $(cat "$ERR")"
# The last one deleted (with its row event) and the events it covered
# rewritten and rehashed: the log still has the head it signed.
cp st.db lastcp.db
sqlite3 lastcp.db "DELETE FROM checkpoints WHERE seq = 9; DELETE FROM events WHERE seq = 10;
	UPDATE events SET actor = 'mallory' WHERE seq = 9"
rehash lastcp.db 9
expect_exit 0 S lastcp.db audit verify
expect_exit 1 S lastcp.db audit verify --key audit.pub
grep -q "database rolled back or rewritten: checkpoint log .* has seq 9 head [0-9a-f]*\.\.\., database has head [0-9a-f]*\.\.\. at seq 9" "$ERR" ||
	fail "last cp: $(cat "$ERR")"

# --- rollback to the earlier checkpoint (the later events and checkpoint gone) -
cp early.db rolled.db
expect_exit 0 S rolled.db audit verify     # consistent on its own
expect_exit 1 S rolled.db audit verify --key audit.pub
grep -q "database rolled back: checkpoint log .*st1\.[0-9a-f]*\.checkpoints has seq 9 head [0-9a-f]*\.\.\., database has head seq 6" "$ERR" ||
	fail "rollback, log: $(cat "$ERR")"
mv .state state.away                        # the log lost too: the token says it
expect_exit 0 S rolled.db audit verify --key audit.pub
expect_exit 1 S rolled.db audit verify --key audit.pub $H
grep -q "database rolled back: token 'anchor-ca' has seq 9 head [0-9a-f]*\.\.\., database has head seq 6" "$ERR" ||
	fail "rollback, token: $(cat "$ERR")"
expect_exit 1 S rolled.db checkpoint $H
grep -q "refusing to sign .*database rolled back: token 'anchor-ca' has seq 9" "$ERR" ||
	fail "rollback, checkpoint: $(cat "$ERR")"
expect_exit 1 S rolled.db audit verify --key audit.pub --checkpoint-log state.away/none
grep -q "checkpoint log state.away/none: absent or empty" "$ERR" || fail "no log: $(cat "$ERR")"
echo "audit_anchor: ok"
