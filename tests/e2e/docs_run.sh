# The docs run as written (issue 13): every block fenced ```sh in
# docs/operator.md, docs/qa.md and docs/engineer.md is run, in order, each page
# in a fresh directory with nothing but what the pages say they need (their
# "Examples" paragraph): the checkout's hsm/, build/ and tests/, build/ on
# the PATH.
# Each page starts without a database and makes its own with `station init`.
# Then, after engineer.md's roles example as written, the recovery: root
# locks itself out (its role revoked by another engineer's grant) and
# `station role recover` brings it back, audited.
set -eu
. "$TOP/tests/lib.sh"
command -v sqlite3 >/dev/null || fail "the sqlite3 shell is needed"

# blocks: the ```sh blocks of a page, in order, as one script
blocks() { awk '/^```sh[[:space:]]*$/ { inb = 1; n++; print "# --- block " n; next }
	/^```/ { inb = 0; next } inb { print }' "$1"; }

for page in operator qa engineer; do
	mkdir "$page"
	ln -s "$TOP/hsm" "$page/hsm"
	ln -s "$BUILD" "$page/build"
	ln -s "$TOP/tests" "$page/tests"
	blocks "$TOP/docs/$page.md" > "$page.sh"
	n=$(grep -c '^# --- block' "$page.sh" || true)
	t0=$SECONDS
	(cd "$page" && PATH="$BUILD:$PATH" bash -eu "../$page.sh") > "$page.out" 2>&1 ||
		{ cat "$page.out"; fail "docs/$page.md: a block failed (script: $PWD/$page.sh)"; }
	echo "  docs/$page.md: $n blocks ran ($((SECONDS - t0)) s)"
done
[ "$(grep -c '^# --- block' operator.sh)" -ge 1 ] || fail "operator.md lost its runnable block"
[ "$(grep -c '^# --- block' qa.sh)" -ge 3 ] || fail "qa.md lost its runnable blocks"
[ "$(grep -c '^# --- block' engineer.sh)" -ge 2 ] || fail "engineer.md lost its runnable blocks"

# what the pages did, checked
grep -q '"kind":"unit-result"' qa/qa/events.jsonl || fail "qa.md replay: no unit result"
[ "$(sqlite3 qa/var/station.db "SELECT station_id FROM checkpoints")" = qa-1 ] ||
	fail "qa.md checkpoint: not signed as the database's station"
ME=$(id -un)
[ "$(sqlite3 engineer/var/station.db "SELECT name || ' ' || role || ' ' || login FROM roles
	ORDER BY name" | tr '\n' ,)" = "olga operator $ME,$ME engineer $ME," ] ||
	fail "engineer.md roles: $(sqlite3 engineer/var/station.db "SELECT * FROM roles")"

# --- the recovery, after the example as written ---------------------------------------
if [ "$(id -u)" = 0 ]; then
	cd engineer
	export PATH="$BUILD:$PATH"
	expect_exit 0 station role grant erik engineer --login erik-to-come --force-login
	expect_exit 0 station role revoke root
	# root has no role now, and erik's login does not exist: nobody can configure
	expect_exit 1 station role grant olga engineer --login root
	grep -q "root has no role on this station" "$ERR" || fail "locked out: $(cat "$ERR")"
	expect_exit 0 station role recover
	grep -qx "root is engineer (login root): recovered by root" "$OUT" || fail "recover: $(cat "$OUT")"
	expect_exit 0 station role grant ivan operator --login root
	[ "$(sqlite3 var/station.db "SELECT count(*) FROM events WHERE kind = 'role-recover'
		AND actor = 'root'")" = 1 ] || fail "role-recover event"
	expect_exit 0 station audit verify
	# only root may recover
	if command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null; then
		expect_exit 1 setpriv --reuid=65534 --regid=65534 --clear-groups station role recover
		grep -q "only root may recover" "$ERR" || fail "recover by nobody: $(cat "$ERR")"
	fi
	echo "  role recover: ok"
fi
echo "docs_run: ok"
