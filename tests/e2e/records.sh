# Records engineers analyse (issue 15), on a real lot through emulated USB,
# SoftHSM and SQLite: 3 boards of lot LR (one refuses LOCK) and a stranger (a
# board of another lot, rejected not_on_lot).  Checks: the unit rows' reason
# codes, words without ids, durations and stage times, model and revision;
# the yield counts only the lot's boards and reports the stranger apart (CLI,
# CSV column, JSON summary); `station unit show` by unique id, unit id and
# certificate serial, --json, and an unknown key (exit 1, one line); and the
# OpenHTF export checked against the fields OpenHTF's TestRecord and
# PhaseRecord write (openhtf/core/test_record.py, as_base_types).
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=records-$$
. "$TOP/tests/line-lib.sh"
command -v python3 >/dev/null || fail "python3 is needed"

LINE_MAX_FAILURES=50 line_bench widget LR 3 --fault-mix "1*refuse_lock=1"
# the stranger: a board the same manufacturer made for lot LS, not imported here
"$BUILD/fx-mfgkit" --lot LS --count 1 --out mfg --knob flash_bps=0 --knob keygen_ms=0 \
	--knob sign_ms=0 >/dev/null
i=0; bargs=()
for b in $(tail -n +2 mfg/LR-boards.csv | cut -d, -f1) $(tail -n +2 mfg/LS-boards.csv | cut -d, -f1); do
	i=$((i + 1)); bargs+=(--board "1-$i=$PWD/$b")
done
stranger=$(tail -n +2 mfg/LS-boards.csv | cut -d, -f2)
rc=0
timeout 120 "$BUILD/fx-usbemu" --quiet "${bargs[@]}" -- \
	"$STATION" --db st.db --station-id "$LINE_SID" --user op-olga run --profile widget \
	--lot LR --headless --bays 4 --max-units 4 > events.jsonl 2> run.err || rc=$?
[ "$rc" = 0 ] || { cat run.err; fail "station run exited $rc"; }
[ "$(q "SELECT group_concat(status || ':' || reason_code, ' ') FROM (SELECT * FROM units ORDER BY status, reason_code)")" = \
  "fail:lock_refused pass: pass: reject:not_on_lot" ] || fail "verdicts: $(q "SELECT status, reason_code FROM units")"
[ "$(q "SELECT reason_plain FROM units WHERE unique_id='$stranger'")" = \
  "allowlist: the board is not on the lot's allowlist" ] || fail "plain: $(q "SELECT reason, reason_plain FROM units")"
[ "$(q "SELECT count(*) FROM units WHERE unique_id <> '$stranger' AND model = 'SB-100' AND hw_revision = 'A'
	AND duration_ms > 0 AND json_extract(stage_ms, '\$.detect') IS NOT NULL")" = 3 ] ||
	fail "model, revision, duration, stage times: $(q "SELECT unique_id, model, hw_revision, duration_ms, stage_ms FROM units")"

# --- yield: the lot's boards only, the stranger apart --------------------------
expect_exit 0 S --user eng export --lot LR --format csv --out lr.csv
grep -q "yield 66.7% (2 of 3 boards on the allowlist), first-pass yield 66.7%; 1 strangers (1 units) not counted;" "$OUT" ||
	fail "csv summary: $(cat "$OUT")"
expect_exit 0 S --user eng export --lot LR --format jsonl --out lr.jsonl
python3 - lr.csv lr.jsonl "$stranger" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], newline='')))
assert len(rows) == 4
for r in rows:
    assert r['on_allowlist'] == ('0' if r['unique_id'] == sys.argv[3] else '1'), r
    assert r['duration_ms'].isdigit() and r['reason_code'] in ('', 'lock_refused', 'not_on_lot'), r
lines = [json.loads(l) for l in open(sys.argv[2])]
s = lines[-1]
assert (s['boards'], s['boards_passed'], s['strangers'], s['stranger_units'], s['yield']) == \
    (3, 2, 1, 1, 0.6667), s
for u in lines[:-1]:
    assert isinstance(u['stage_ms'], dict) and list(u['stage_ms'])[0] == 'detect', u['stage_ms']
    # each stage is timed on the monotonic clock and rounded down to a ms on its own,
    # the duration is two wall-clock readings: allow one ms of rounding per stage
    assert sum(u['stage_ms'].values()) <= u['duration_ms'] + len(u['stage_ms']), u
PY

# --- unit show -------------------------------------------------------------------
failed=$(q "SELECT unique_id FROM units WHERE status='fail'")
fid=$(q "SELECT id FROM units WHERE status='fail'")
fserial=$(q "SELECT serial FROM certificates WHERE unique_id='$failed'")
expect_exit 0 S unit show "$failed"
grep -q "^board $failed  lot LR  model SB-100  hw_revision A" "$OUT" || fail "show: $(cat "$OUT")"
grep -q "^  unit $fid  .*  station $LINE_SID  bay 1-[0-9]  operator op-olga  lot LR" "$OUT" ||
	fail "show attempt: $(cat "$OUT")"
grep -q "^    fail at lock  lock_refused (lock: the board refused to lock)  [0-9]* ms" "$OUT" ||
	fail "show verdict: $(cat "$OUT")"
grep -q "^    stages (ms): detect [0-9]*, identify" "$OUT" || fail "show stages: $(cat "$OUT")"
grep -q "^  $fserial  revoked (cessationOfOperation)  unit $fid" "$OUT" || fail "show cert: $(cat "$OUT")"
grep -q "  unit-result  op-olga  " "$OUT" && grep -q "  cert-revoked  " "$OUT" || fail "show events: $(cat "$OUT")"
cp "$OUT" by-uid.txt
expect_exit 0 S unit show "$fid"
cmp -s "$OUT" by-uid.txt || fail "by unit id differs: $(diff "$OUT" by-uid.txt)"
expect_exit 0 S unit show "$fserial"
cmp -s "$OUT" by-uid.txt || fail "by serial differs"
# a rework authorisation shows up on the passed board
passed=$(q "SELECT unique_id FROM units WHERE status='pass' ORDER BY id LIMIT 1")
expect_exit 0 S --user erik rework "$passed" --reason "replaced the radio module"
expect_exit 0 S unit show "$passed" --json
python3 - "$OUT" "$passed" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j['matched_by'] == 'unique_id' and j['unique_id'] == sys.argv[2]
assert j['allowlist']['model'] == 'SB-100' and j['allowlist']['lot'] == 'LR'
a, = j['attempts']
assert a['status'] == 'pass' and a['superseded_by'] == 1 and a['stage_ms']['commit'] >= 0
c, = j['certificates']
assert c['status'] == 'revoked' and c['revoke_reason'] == 'superseded'
r, = j['reworks']
assert r['authorised_by'] == 'erik' and r['reason'] == 'replaced the radio module' and r['new_unit_id'] is None
kinds = [e['kind'] for e in j['events']]
for k in ('cert-issued', 'cert-injected', 'unit-result', 'rework-authorised', 'cert-revoked'):
    assert k in kinds, kinds
assert [e['id'] for e in j['events']] == sorted(e['id'] for e in j['events'])
PY
expect_exit 1 S unit show FFFFFFFFFFFFFFFFFFFFFFFF
[ "$(wc -l < "$ERR")" = 1 ] && grep -q "no board, unit or certificate FFFFFFFFFFFFFFFFFFFFFFFF" "$ERR" ||
	fail "unknown: $(cat "$ERR")"
expect_exit 1 S unit show 99999
expect_exit 2 S unit show
expect_exit 2 S unit list

# --- OpenHTF: one test record per unit, the fields OpenHTF writes --------------
expect_exit 0 S --user eng export --lot LR --format openhtf --out lr.openhtf.jsonl
python3 - lr.openhtf.jsonl "$stranger" <<'PY'
import json, sys
# TestRecord.as_base_types() and PhaseRecord.as_base_types() (openhtf/core/test_record.py)
RECORD = {'dut_id', 'station_id', 'start_time_millis', 'end_time_millis', 'outcome',
          'outcome_details', 'code_info', 'metadata', 'phases', 'diagnoses', 'log_records'}
PHASE = {'descriptor_id', 'name', 'codeinfo', 'measurements', 'options', 'start_time_millis',
         'end_time_millis', 'attachments', 'diagnosis_results', 'failure_diagnosis_results',
         'result', 'outcome'}
recs = [json.loads(l) for l in open(sys.argv[1])]
assert len(recs) == 4
seen = set()
for r in recs:
    assert set(r) == RECORD, set(r) ^ RECORD
    assert isinstance(r['start_time_millis'], int) and r['end_time_millis'] >= r['start_time_millis']
    assert r['outcome'] in ('PASS', 'FAIL', 'ERROR', 'TIMEOUT', 'ABORTED')
    assert set(r['code_info']) == {'name', 'docstring', 'sourcecode'}
    d, = r['outcome_details']
    assert set(d) == {'code', 'description'}
    m = r['metadata']
    assert m['lot'] == 'LR' and m['operator'] == 'op-olga' and m['profile']['name'] == 'widget'
    assert m['test_name'] and isinstance(m['config'], dict)
    assert r['station_id'].startswith('records-')
    t = r['start_time_millis']
    for i, p in enumerate(r['phases']):
        assert set(p) == PHASE, set(p) ^ PHASE
        assert p['outcome'] in ('PASS', 'FAIL', 'SKIP', 'ERROR')
        assert p['start_time_millis'] == t <= p['end_time_millis'] <= r['end_time_millis']
        t = p['end_time_millis']
        if i < len(r['phases']) - 1:
            assert p['outcome'] == 'PASS'
    seen.add((r['outcome'], d['code'], r['phases'][-1]['name'], r['phases'][-1]['outcome']))
    if r['dut_id'] == sys.argv[2]:
        assert d['description'] == "allowlist: the board is not on the lot's allowlist"
assert seen == {('PASS', 'none', 'commit', 'PASS'), ('FAIL', 'lock_refused', 'lock', 'FAIL'),
                ('FAIL', 'not_on_lot', 'allowlist', 'FAIL')}, seen
PY
echo "records: ok"
