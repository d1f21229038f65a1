# QA's one command: fixtures/qa-replay.sh replays a batch file headless (SoftHSM
# token, fx-usbemu, station run --headless) and its exit status is the verdict.
# The smoke batch passes; one wrong expectation fails naming that board; a
# malformed batch is refused with FILE:LINE before anything is made; a line that
# cannot finish in the batch's deadline stops with a clear message.
set -eu
. "$TOP/tests/lib.sh"
command -v sqlite3 >/dev/null || fail "the sqlite3 shell is needed"
R() { BUILD=$BUILD "$TOP/fixtures/qa-replay.sh" "$@"; }
smoke=$TOP/fixtures/data/qa-smoke.batch
n=$(grep -c '"board"' "$smoke")

# --- the smoke batch: every board as expected --------------------------------
expect_exit 0 R "$smoke" --keep run1 --junit smoke.xml
grep -q "^batch: $n as expected, 0 mismatched$" "$OUT" || fail "smoke summary: $(cat "$OUT")"
# --junit: one testcase per board (+ invariants), none failed, reason codes kept
python3 - smoke.xml "$n" <<'PY'
import sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot().find('testsuite')
cases = suite.findall('testcase')
assert len(cases) == int(sys.argv[2]) + 1 == int(suite.get('tests')), len(cases)
assert suite.get('failures') == '0', suite.attrib
assert not list(suite.iter('failure')), ET.tostring(suite)
codes = {c.get('name'): c.find('properties/property').get('value') for c in cases[:-1]}
assert codes['no-lock'] == 'lock_refused' and codes['good-1'] == '', codes
assert cases[-1].get('name') == 'invariants'
PY
[ "$(grep -c '^PASS ' "$OUT")" = "$n" ] || fail "one PASS line per board: $(cat "$OUT")"
grep -q '^invariant 2: ok' "$OUT" && grep -q '^invariant 3: ok' "$OUT" &&
	grep -q '^invariant 7: ok (OK [0-9]* events' "$OUT" || fail "invariants: $(cat "$OUT")"
grep -q '^PASS twin expected reject@allowlist got reject@allowlist .*already provisioned' "$OUT" ||
	fail "the clone: $(grep twin "$OUT")"
# the verdict read the real database: cross-check it with the sqlite3 shell
[ "$(sqlite3 run1/st.db "SELECT count(*) FROM units")" = "$n" ] || fail "units in the database"
[ "$(sqlite3 run1/st.db "SELECT count(*) FROM units WHERE status='pass'")" = \
  "$(grep -c 'got pass@commit' "$OUT")" ] || fail "passes in the database"
# the stranger's id was left off the signed allowlist
sid=$(sed -n 's/^stranger,\([0-9A-F]*\),.*/\1/p' run1/kit/boards.csv)
[ ${#sid} = 24 ] || fail "stranger's id"
grep -q "$sid" run1/kit/QA-SMOKE.csv && fail "the stranger is on the allowlist"
[ "$(grep -c '^twin,' run1/kit/boards.csv)" = 1 ] || fail "boards.csv"
[ "$(sed -n 's/^twin,\([0-9A-F]*\),.*/\1/p' run1/kit/boards.csv)" = \
  "$(sed -n 's/^good-1,\([0-9A-F]*\),.*/\1/p' run1/kit/boards.csv)" ] || fail "the twin's id"
# the same database against a batch expecting otherwise: verdict alone, exit 1
sed 's/{"board":"good-2"}/{"board":"good-2","expect":"fail","stage":"lock"}/' "$smoke" > wrong.batch
expect_exit 1 "$BUILD/fx-batch" verdict wrong.batch --db run1/st.db
grep -q "^MISMATCH good-2 expected fail@lock got pass@commit" "$OUT" || fail "verdict: $(cat "$OUT")"
expect_exit 0 "$BUILD/fx-batch" verdict "$smoke" --kit run1/kit --db run1/st.db
# a kit of another batch is refused, not misread
printf '{"board":"nobody"}\n' > other.batch
expect_exit 1 "$BUILD/fx-batch" verdict other.batch --kit run1/kit --db run1/st.db
grep -q "boards.csv:2: not a board of this batch" "$ERR" || fail "other kit: $(cat "$ERR")"

# --- one wrong expectation: exit 1, the MISMATCH line names that board --------
sed 's/{"board":"no-lock","knobs":{"refuse_lock":"1"},"expect":"fail","stage":"lock"}/{"board":"no-lock","knobs":{"refuse_lock":"1"}}/' \
	"$smoke" > wrong.batch
grep -q '"board":"no-lock","knobs":{"refuse_lock":"1"}}' wrong.batch || fail "sed"
expect_exit 1 R wrong.batch --junit wrong.xml
grep -q "^MISMATCH no-lock expected pass@commit got fail@lock .*EREFUSED" "$OUT" ||
	fail "mismatch line: $(cat "$OUT")"
[ "$(grep -c '^MISMATCH' "$OUT")" = 1 ] || fail "only no-lock mismatches: $(cat "$OUT")"
grep -q "^batch: $((n - 1)) as expected, 1 mismatched$" "$OUT" || fail "summary: $(cat "$OUT")"
# JUnit: the one mismatch is a <failure> typed with the unit's reason code; a
# reason with XML's special characters comes back intact (escaped)
cp run1/st.db odd.db
sqlite3 odd.db "UPDATE units SET reason = 'a <b> & \"c\" ''d'' ]]>' WHERE id = (SELECT min(id) FROM units WHERE status = 'pass')"
expect_exit 0 "$BUILD/fx-batch" verdict "$smoke" --kit run1/kit --db odd.db --junit odd.xml
python3 - wrong.xml odd.xml <<'PY'
import sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot().find('testsuite')
fails = [(c.get('name'), c.find('failure')) for c in suite.findall('testcase') if c.find('failure') is not None]
assert suite.get('failures') == '1' and len(fails) == 1, fails
name, f = fails[0]
assert name == 'no-lock' and f.get('type') == 'lock_refused', (name, f.attrib)
assert f.get('message') == 'expected pass@commit got fail@lock' and 'EREFUSED' in f.text, f.attrib
outs = [c.findtext('system-out') for c in ET.parse(sys.argv[2]).getroot().iter('testcase')]
assert any(o and o.endswith(': a <b> & "c" \'d\' ]]>') for o in outs), outs
PY

# --- a malformed batch: FILE:LINE, exit 2, nothing made ----------------------
{ sed -n 1,3p "$smoke"; echo '{"board":"x","knobs":{"warp_drive":"1"}}'; } > bad.batch
expect_exit 2 R bad.batch --keep run3
grep -q "bad.batch:4: unknown knob 'warp_drive'" "$ERR" || fail "malformed: $(cat "$ERR")"
[ ! -e run3 ] || fail "a malformed batch made a work directory"
printf '{"board":"a"}\n{"board":"a"}\n' > dup.batch
expect_exit 2 R dup.batch
grep -q 'dup.batch:2: duplicate board "a" (first on line 1)' "$ERR" || fail "dup: $(cat "$ERR")"
expect_exit 2 "$BUILD/fx-batch" check bad.batch
expect_exit 2 R
expect_exit 2 R "$smoke" --keep run1   # not empty

# --- a line that cannot finish within the deadline: exit 3, says so -----------
cat > slow.batch <<'B'
{"batch":"slow","bays":1,"deadline_s":2,"knobs":{"flash_bps":0,"sign_ms":0}}
{"board":"slow-1","knobs":{"keygen_ms":20000}}
{"board":"slow-2"}
B
t0=$SECONDS
expect_exit 3 R slow.batch
[ $((SECONDS - t0)) -lt 15 ] || fail "the deadline did not stop the replay"
grep -q "the line did not finish within 2 s (deadline_s): 0 of 2 results; without a result: slow-1 (bay 1-1)" "$ERR" ||
	fail "deadline message: $(cat "$ERR")"
echo "qa_replay: ok"
