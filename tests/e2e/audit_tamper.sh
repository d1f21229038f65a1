# The audit chain catches each kind of tampering done with the sqlite3 shell on
# a real database file, and names the right row (id, seq) and the right kind.
set -eu
. "$TOP/tests/lib.sh"
command -v sqlite3 >/dev/null || fail "the sqlite3 shell is needed"

S() { "$STATION" --db "$1" --station-id st1 --user qa "${@:2}"; }

# A chain of 26 events: the database's creation (station init: its row, the
# event), then one allowlist import per lot (its lot row, its allowlist row, the import).
new_db base.db st1
for i in 1 2 3 4 5 6 7 8; do
	printf 'unique_id,lot,model,hw_revision\n%s,LOT%d,Widget,B\n' \
		"$(printf '0000000000000000000000%02X' "$i")" "$i" > lot$i.csv
	S base.db allowlist import lot$i.csv --lot LOT$i --unsigned >/dev/null
done
expect_exit 0 S base.db audit verify
grep -qx 'OK 26 events, 0 checkpoints' "$OUT" || fail "intact chain: $(cat "$OUT")"
[ "$(stat -c %a base.db)" = 600 ] || fail "database mode is $(stat -c %a base.db), not 600"

# tamper NAME ROWID SEQ KIND SQL: apply SQL to a copy, expect verify to name it.
tamper() {
	local name=$1 id=$2 seq=$3 kind=$4 sql=$5
	cp base.db "$name.db"
	sqlite3 "$name.db" "$sql"
	expect_exit 1 S "$name.db" audit verify
	grep -q "broken at row id $id, seq $seq: $kind" "$ERR" ||
		fail "$name: expected row id $id, seq $seq, '$kind'; got: $(cat "$ERR")"
	[ "$(wc -l < "$ERR")" = 1 ] || fail "$name: more than one line on stderr"
}

tamper edited 4 4 edited "UPDATE events SET actor = 'mallory' WHERE seq = 4"
tamper edited-detail 8 8 edited \
	"UPDATE events SET detail = replace(detail, '\"rows\":1', '\"rows\":9') WHERE seq = 8"
tamper deleted 5 5 deleted "DELETE FROM events WHERE seq = 4"
tamper deleted-first 2 2 deleted "DELETE FROM events WHERE seq = 1"
# Make room at seq 5 (renumber the tail up by one), then insert a forged event
# that links to row 4.
tamper inserted 27 5 inserted "
	UPDATE events SET seq = -seq WHERE seq >= 5;
	UPDATE events SET seq = 1 - seq WHERE seq < 0;
	INSERT INTO events (station_id, seq, ts, kind, actor, detail, prev_hash, hash)
	  SELECT station_id, 5, ts, 'cert-issued', 'mallory', '{}', hash, hash
	  FROM events WHERE seq = 4;"
# Swap two events' places in the sequence.
tamper reordered-seq 5 4 reordered "
	UPDATE events SET seq = -1 WHERE seq = 4;
	UPDATE events SET seq = 4 WHERE seq = 5;
	UPDATE events SET seq = 5 WHERE seq = -1;"
# Swap two rows' storage order (ids), contents intact.
tamper reordered-id 4 5 reordered "
	UPDATE events SET id = 100 WHERE id = 4;
	UPDATE events SET id = 4 WHERE id = 5;
	UPDATE events SET id = 5 WHERE id = 100;"
# Moving the newest event to another (even empty) station id: that chain
# starts at seq 26 with no rows before it.
tamper moved-last 26 26 deleted "UPDATE events SET station_id = '' WHERE seq = 26"
tamper gap 5 105 "sequence gap" "UPDATE events SET seq = seq + 100 WHERE seq >= 5"

# Every table is under the chain (issue 12): an edit of a record names its
# row and field (one per table: audit_rows.sh).
cp base.db other.db
sqlite3 other.db "UPDATE lots SET name = 'X' WHERE id = 1"
expect_exit 1 S other.db audit verify
grep -q 'row lots id=1 differs from its latest row event (seq 3): field name' "$ERR" ||
	fail "edited lot: $(cat "$ERR")"

# audit log lists the events in order; --tail limits.
expect_exit 0 S base.db audit log --tail 3
[ "$(wc -l < "$OUT")" = 3 ] || fail "audit log --tail 3 printed $(wc -l < "$OUT") lines"
head -1 "$OUT" | grep -q $'^24\tst1\t24\t' || fail "audit log --tail: $(head -1 "$OUT")"
expect_exit 2 S base.db audit log --tail 0
expect_exit 2 S base.db audit frobnicate
expect_exit 0 S base.db audit --help
grep -q 'usage: station audit verify' "$OUT"
# Reading commands do not create a database where there was none.
expect_exit 1 S nowhere.db audit verify
grep -q 'nowhere.db does not exist' "$ERR" || fail "missing db: $(cat "$ERR")"
[ ! -e nowhere.db ] || fail "audit verify created nowhere.db"
echo "audit_tamper: ok"
