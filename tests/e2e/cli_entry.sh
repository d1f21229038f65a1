# Issue 13, the command line: databases are created by `station init` only (a
# missing --db is refused and creates nothing, not even a directory); the
# database remembers its station id; global options after the command; names
# are checked where they enter (exit 2, nothing written); an unknown lot lists
# the lots; lot list/show; help --help; a typo suggests the command; usb list
# says when there are no boards; the PIN file's owner and directory are
# checked.  SoftHSM and SQLite, no boards.
set -eu
. "$TOP/tests/lib.sh"
command -v sqlite3 >/dev/null || fail "the sqlite3 shell is needed"
ev() { sqlite3 st.db "SELECT count(*) FROM events"; }

# --- a missing database is refused, and nothing is created --------------------------------
for cmd in "run --profile p --lot L --headless" "profile list" "role grant e engineer" \
	"allowlist import x.csv --lot L --unsigned" "audit verify" "lot list" "rework $(printf %024X 1) --reason r" \
	"export --lot L --format csv"; do
	# shellcheck disable=SC2086
	expect_exit 1 "$STATION" --db nodir/st.db $cmd
	grep -q "database nodir/st.db does not exist (create it with station init --db nodir/st.db)" \
		"$ERR" || fail "$cmd: $(cat "$ERR")"
	[ ! -e nodir ] || fail "$cmd created nodir"
done
expect_exit 1 "$STATION" --db st.db role list
[ ! -e st.db ] || fail "role list created st.db"

# --- station init: the only creator; remembers the station id -------------------------------
expect_exit 2 "$STATION" --db st.db --station-id "$(printf 'st\n1')" init
[ ! -e st.db ] || fail "a refused init created st.db"
expect_exit 0 "$STATION" --db st.db --station-id cli-1 init
grep -qx "created st.db for station cli-1" "$OUT" || fail "init: $(cat "$OUT")"
[ "$(stat -c %a st.db)" = 600 ] || fail "st.db mode $(stat -c %a st.db)"
expect_exit 1 "$STATION" --db st.db init
grep -q "st.db already exists" "$ERR" || fail "init twice: $(cat "$ERR")"
expect_exit 0 "$STATION" audit log --db st.db          # a global option after the command
grep -q $'^2\tcli-1\t2\t.*\tstation-init\t' "$OUT" || fail "station-init event: $(cat "$OUT")"

# --- names are checked where they enter: exit 2, one line, nothing written -------------------
printf 'unique_id,lot,model,hw_revision\n%024X,LOT-A,W,1\n%024X,LOT-A,W,1\n' 1 2 > a.csv
n=$(ev)
for bad in "$(printf 'op\tx')" "$(printf 'op\nx')" "$(printf 'op\033[2Jx')" ""; do
	expect_exit 2 "$STATION" --db st.db --user "$bad" allowlist import a.csv --lot LOT-A --unsigned
	[ "$(wc -l < "$ERR")" = 1 ] && grep -q -- "--user must be 1..64 printable ASCII" "$ERR" ||
		fail "bad --user: $(cat "$ERR")"
	expect_exit 2 "$STATION" --db st.db run --profile p --lot LOT-A --headless --operator "$bad"
	grep -q -- "--operator must be 1..64 printable ASCII" "$ERR" || fail "bad --operator: $(cat "$ERR")"
	expect_exit 2 "$STATION" --db st.db --station-id "$bad" allowlist import a.csv --lot LOT-A --unsigned
done
expect_exit 2 "$STATION" --db st.db allowlist import a.csv --lot "$(printf 'L\tA')" --unsigned
[ "$(ev)" = "$n" ] && [ "$(sqlite3 st.db "SELECT count(*) FROM allowlist")" = 0 ] ||
	fail "a refused name wrote something"
# --operator for someone else: no roles on this station, so no one is bound to this login
expect_exit 1 "$STATION" --db st.db run --profile p --lot LOT-A --headless --operator someone-else
grep -q "no roles, so no one is bound to this login" "$ERR" || fail "--operator: $(cat "$ERR")"

# --- lots: import (again: a no-op), list, show, unknown -------------------------------------
expect_exit 0 "$STATION" --db st.db allowlist import a.csv --lot LOT-A --unsigned
expect_exit 0 "$STATION" allowlist import a.csv --lot LOT-A --unsigned --db st.db
grep -qx "a.csv is already imported for lot LOT-A: nothing to do" "$OUT" || fail "again: $(cat "$OUT")"
expect_exit 0 "$STATION" --db st.db lot list
grep -Eq '^LOT-A +2 +0 +0 +0 +-$' "$OUT" || fail "lot list: $(cat "$OUT")"
expect_exit 0 "$STATION" --db st.db lot show LOT-A
grep -qx "allowlisted  2" "$OUT" || fail "lot show: $(cat "$OUT")"
# a lot a database written by another tool holds, with a space: listed quoted (on a
# copy: a row written outside the station makes crl and run refuse st.db, audit_rows.sh)
sqlite3 st.db ".backup old.db"
sqlite3 old.db "INSERT INTO units (unique_id, lot, bay, operator, station_id, profile_hash,
	status, stage, reason, started_ms) VALUES ('$(printf '%024X' 9)', 'old lot', '1-1', 'op',
	'cli-1', 'x', 'fail', 'flash', 'r', 0)"
expect_exit 1 "$STATION" --db old.db lot show LOT-B
[ "$(wc -l < "$ERR")" = 1 ] && grep -q "no lot LOT-B in this database; the lots are: LOT-A, 'old lot'" "$ERR" ||
	fail "unknown lot: $(cat "$ERR")"
expect_exit 1 "$STATION" --db old.db allowlist list --lot NOPE
grep -q "no lot NOPE in this database; the lots are: LOT-A, 'old lot'" "$ERR" || fail "list NOPE: $(cat "$ERR")"

# --- help, typos, usb list -----------------------------------------------------------------
expect_exit 0 "$STATION" help --help
grep -q "^usage: station " "$OUT" || fail "help --help: $(cat "$OUT")"
expect_exit 2 "$STATION" crll
[ "$(wc -l < "$ERR")" = 1 ] && grep -q "unknown command 'crll'; did you mean 'crl'?" "$ERR" ||
	fail "typo: $(cat "$ERR")"
expect_exit 2 "$STATION" frobnicate
[ "$(wc -l < "$ERR")" = 1 ] || fail "unknown command: $(cat "$ERR")"
expect_exit 2 "$STATION" "$(printf 'x\033[2Jy')"
grep -qF "unknown command 'x\x1b[2Jy'" "$ERR" || fail "unknown command with ESC: $(cat -A "$ERR")"
expect_exit 2 "$STATION" roel
grep -q "did you mean 'role'?" "$ERR" || fail "transposition: $(cat "$ERR")"
expect_exit 0 "$STATION" usb list --device 1209:7777
grep -q "^no boards in the bays" "$OUT" || fail "usb list: $(cat "$OUT")"

# --- the HSM: crl and checkpoint with --db after the command, as the database's station ------
"$TOP/hsm/softhsm-setup.sh" --dir hsm --label cli-ca >/dev/null
expect_exit 0 "$STATION" crl --db st.db --out c.pem --hsm-config hsm/hsm.ini
openssl crl -in c.pem -noout 2>/dev/null || fail "crl: not a CRL"
expect_exit 0 "$STATION" checkpoint --db st.db --hsm-config hsm/hsm.ini
[ "$(sqlite3 st.db "SELECT station_id FROM checkpoints")" = cli-1 ] || fail "checkpoint station id"
expect_exit 0 "$STATION" --db st.db audit verify
grep -q "1 checkpoints" "$OUT" || fail "verify: $(cat "$OUT")"

# --- the PIN file: owned by this user or root, in a directory only they may write ------------
if [ "$(id -u)" = 0 ]; then
	chown nobody hsm/pin
	expect_exit 1 "$STATION" crl --db st.db --out c2.pem --hsm-config hsm/hsm.ini
	grep -q "PIN file .*hsm/pin is owned by uid $(id -u nobody), not by this user" "$ERR" ||
		fail "PIN owned by nobody: $(cat "$ERR")"
	chown root hsm/pin
fi
chmod 0777 hsm
expect_exit 1 "$STATION" crl --db st.db --out c2.pem --hsm-config hsm/hsm.ini
grep -q "PIN file .*hsm/pin is in directory .*hsm that others may write to" "$ERR" ||
	fail "PIN in a world-writable directory: $(cat "$ERR")"
chmod 0700 hsm
expect_exit 0 "$STATION" crl --db st.db --out c2.pem --hsm-config hsm/hsm.ini
echo "cli_entry: ok"
