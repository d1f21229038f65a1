# Roles end to end (docs/engineer.md "Roles"): a fresh database checks no
# role; the first grant must be an engineer, by root or the database's owner;
# from then on configuration commands need an engineer bound to this OS login,
# `run` needs operator, qa or engineer, a name bound to another login is
# refused, the last engineer stays; every change is an audit event naming who.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=roles-1
. "$TOP/tests/line-lib.sh"

ME=$(id -un)
line_bench widget LQ 2          # as "eng", before any role: nothing is checked
A=mfg/boards/LQ-0001
UA=$(line_board_uid "$A")

plug() {   # USER BOARD_DIR: one run of the line as USER with that board in bay 1-1
	local rc=0
	timeout 60 "$BUILD/fx-usbemu" --quiet --board "1-1=$PWD/$2" -- \
		"$STATION" --db st.db --station-id "$LINE_SID" --user "$1" run --profile widget \
		--lot LQ --headless --bays 1 --max-units 1 > events.jsonl 2> run.err || rc=$?
	return $rc
}

expect_exit 0 S role list
grep -q "no engineer yet: roles are not enforced" "$OUT" || fail "role list before enrolment: $(cat "$OUT")"

# --- the first grant --------------------------------------------------------------
expect_exit 1 S role grant op-olga operator --login "$ME"
grep -q "has no engineer yet" "$ERR" || fail "first grant not an engineer: $(cat "$ERR")"
expect_exit 2 S role grant eng wizard
expect_exit 2 S role grant 'e n g' engineer
expect_exit 0 S role grant eng engineer --login "$ME"
grep -q "eng is engineer (login $ME)" "$OUT" || fail "grant output: $(cat "$OUT")"

# --- enforced from now on -----------------------------------------------------------
expect_exit 1 line_as stranger profile add widget.profile
grep -q "stranger has no role on this station" "$ERR" || fail "no role: $(cat "$ERR")"
expect_exit 0 S role grant op-olga operator --login "$ME"
expect_exit 0 S role grant qa-quinn qa --login "$ME"
# a login this machine does not have would lock its holder out: refused
# unless --force-login (a login that will exist)
expect_exit 1 S role grant erik engineer --login not-"$ME"
grep -q "there is no login not-$ME on this machine" "$ERR" || fail "no such login: $(cat "$ERR")"
[ "$(q "SELECT count(*) FROM roles WHERE name = 'erik'")" = 0 ] || fail "refused grant wrote a role"
expect_exit 0 S role grant erik engineer --login not-"$ME" --force-login
events=$(q "SELECT count(*) FROM events")
for cmd in "profile add widget.profile" \
	"allowlist import mfg/LQ.csv --lot LQ --sig mfg/LQ.csv.sig --manufacturer-cert mfg/mfr-signer.pem --manufacturer-ca mfg/mfr-ca.pem" \
	"rework $UA --reason why" "revoke 1234 --reason keyCompromise" \
	"checkpoint --hsm-config hsm/hsm.ini" "role grant x engineer" "role revoke qa-quinn"; do
	# shellcheck disable=SC2086
	expect_exit 1 line_as op-olga $cmd
	grep -q "op-olga is operator; this needs engineer" "$ERR" || fail "op-olga $cmd: $(cat "$ERR")"
	# shellcheck disable=SC2086
	expect_exit 1 line_as erik $cmd
	grep -q "erik is bound to login not-$ME, but this is login $ME" "$ERR" || fail "erik $cmd: $(cat "$ERR")"
done
[ "$(q "SELECT count(*) FROM events")" = "$events" ] || fail "a refused command wrote an event"

# --- who may run the line --------------------------------------------------------------
units=$(q "SELECT count(*) FROM units")
rc=0; plug stranger "$A" || rc=$?
[ "$rc" = 1 ] || fail "a stranger's run exited $rc"
grep -q "run: stranger has no role on this station" run.err || fail "stranger run: $(cat run.err)"
[ "$(q "SELECT count(*) FROM units")" = "$units" ] || fail "a refused run touched a board"
plug op-olga "$A" || { cat run.err; fail "the operator's run failed"; }
grep '"kind":"unit-result"' events.jsonl | grep -q '"outcome":"pass"' || fail "operator's board: $(cat events.jsonl)"
[ "$(q "SELECT operator FROM units WHERE status = 'pass'")" = op-olga ] || fail "unit operator"
plug qa-quinn mfg/boards/LQ-0002 || { cat run.err; fail "qa's run failed"; }
# --operator names someone bound to this login, or is refused before anything
# is touched (issue 13: it used to record anyone)
units=$(q "SELECT count(*) FROM units")
expect_exit 1 line_as op-olga run --profile widget --lot LQ --headless --operator erik
grep -q "run --operator: erik is bound to login not-$ME, but this is login $ME" "$ERR" ||
	fail "--operator someone else: $(cat "$ERR")"
expect_exit 1 line_as op-olga run --profile widget --lot LQ --headless --operator nobody-here
grep -q "nobody-here has no role on this station" "$ERR" || fail "--operator stranger: $(cat "$ERR")"
expect_exit 2 line_as op-olga run --profile widget --lot LQ --headless --operator "$(printf 'op\tx')"
[ "$(q "SELECT count(*) FROM units")" = "$units" ] || fail "a refused --operator touched a board"

# --- the engineer may; the last engineer stays ------------------------------------------
expect_exit 0 S revoke "$(q "SELECT cert_serial FROM units WHERE unique_id = '$UA'")" --reason keyCompromise
expect_exit 0 S rework "$UA" --reason "key compromised on the bench"
expect_exit 0 S role revoke erik
expect_exit 1 S role revoke erik
grep -q "erik has no role" "$ERR" || fail "revoke twice: $(cat "$ERR")"
expect_exit 1 S role revoke eng
grep -q "eng is the last engineer" "$ERR" || fail "last engineer revoked: $(cat "$ERR")"
expect_exit 1 S role grant eng operator --login "$ME"
grep -q "eng is the last engineer" "$ERR" || fail "last engineer demoted: $(cat "$ERR")"
expect_exit 0 S role list
[ "$(grep -c . "$OUT")" = 3 ] && grep -q "^eng	engineer	$ME	eng$" "$OUT" ||
	fail "role list: $(cat "$OUT")"

# --- the record: who granted what ----------------------------------------------------------
[ "$(q "SELECT count(*) FROM events WHERE kind = 'role-grant' AND actor = 'eng'")" = 4 ] ||
	fail "role-grant events: $(q "SELECT actor, detail FROM events WHERE kind LIKE 'role-%'")"
[ "$(q "SELECT json_extract(detail, '$.login') FROM events WHERE kind = 'role-grant'
	AND json_extract(detail, '$.name') = 'erik'")" = "not-$ME" ] || fail "role-grant detail"
[ "$(q "SELECT count(*) FROM events WHERE kind = 'role-revoke' AND actor = 'eng'")" = 1 ] ||
	fail "role-revoke event"
expect_exit 0 S audit verify

# --- the first engineer of a database: root or its owner only ---------------------------------
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
	setpriv --reuid=65534 --regid=65534 --clear-groups "$STATION" --help >/dev/null 2>&1; then
	d=$(mktemp -d /tmp/station-roles.XXXXXX)
	trap 'rm -rf "$d"' EXIT
	chmod 0777 "$d"
	new_db "$d/b.db"   # owned by root
	chmod 0666 "$d"/b.db*
	expect_exit 1 setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$STATION" --db "$d/b.db" --user nob role grant nob engineer --login nobody
	grep -q "only root or the owner of $d/b.db may grant the first engineer" "$ERR" ||
		fail "bootstrap by a stranger: $(cat "$ERR")"
	echo "  (bootstrap by a non-owner refused)"
fi
echo "roles: ok"
