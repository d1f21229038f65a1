# IPC-CFX spool (station run --cfx-spool, issue 15), through emulated USB,
# SoftHSM and SQLite, on a lot of 8 boards (one refuses LOCK):
#  1. two units run without a spool: the next spooled run writes their
#     messages first (catch-up);
#  2. a spooled run on 5 boards at once, SIGKILLed as soon as a verdict is
#     shown: every verdict already on stdout has its messages on disk (they
#     are written before the verdict reaches the UI sinks);
#  3. the restart (recovery, then one more board): every unit with a verdict
#     has exactly its messages -- one WorkCompleted per unit, one
#     UnitsPersonalized per PASS -- checked against the units table, each
#     message parsed as JSON and its envelope checked.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=cfx-$$
. "$TOP/tests/line-lib.sh"
command -v python3 >/dev/null || fail "python3 is needed"

LINE_MAX_FAILURES=50 line_bench widget LQ 8 --fault-mix "1*refuse_lock=1"
boards=($(tail -n +2 mfg/LQ-boards.csv | cut -d, -f1))
run() {   # EVENTS FIRST LAST [--cfx-spool DIR]: boards FIRST..LAST (1-based), one bay each
	local ev=$1 first=$2 last=$3 i bargs=(); shift 3
	for ((i = first; i <= last; i++)); do bargs+=(--board "1-$i=$PWD/${boards[$((i - 1))]}"); done
	timeout 120 "$BUILD/fx-usbemu" --quiet "${bargs[@]}" -- \
		"$STATION" --db st.db --station-id "$LINE_SID" --user op run --profile widget \
		--lot LQ --headless --bays $((last - first + 1)) --max-units $((last - first + 1)) \
		"$@" > "$ev" 2>> run.err
}
for i in 0 1 7; do "$BUILD/fx-board" set "${boards[$i]}" keygen_ms 0 >/dev/null; done
# run 2's boards end one after another: a kill after the first leaves the others in flight
for i in 2 3 4 5 6; do "$BUILD/fx-board" set "${boards[$i]}" keygen_ms $(((i - 1) * 300)) >/dev/null; done

expect_exit 2 S run --profile widget --lot LQ --headless --cfx-spool ''

# --- 1. two units without a spool ---------------------------------------------------
run ev1 1 2 || fail "run 1: $(tail -3 run.err)"
[ "$(q "SELECT count(*) FROM units WHERE status <> 'in-progress'")" = 2 ] || fail "run 1 units"

# --- 2. spooled, killed as soon as a verdict is shown ------------------------------
run ev2 3 7 --cfx-spool spool & emu=$!
wait_lines ev2 '"kind":"unit-result"' 1 $emu || fail "run 2: no verdict: $(tail -3 run.err)"
shown=$(grep '"kind":"unit-result"' ev2 | sed 's/.*"unit_id":\([0-9]*\).*/\1/')
for p in $(line_station_pids "--user op run"); do kill -KILL "$p" 2>/dev/null || true; done
wait $emu 2>/dev/null || true
grep -q "CFX spool: wrote the messages of 2 earlier units" run.err || fail "catch-up: $(cat run.err)"
for id in $shown; do
	ls spool/*-u$(printf %012d "$id")-2-WorkCompleted.json >/dev/null 2>&1 ||
		fail "unit $id was shown before its WorkCompleted was on disk: $(ls spool)"
done
[ "$(q "SELECT count(*) FROM units WHERE status = 'in-progress'")" -ge 1 ] ||
	fail "the kill landed after every unit of run 2 finished"

# --- 3. restart: recovery, then one more board ------------------------------------
run ev3 8 8 --cfx-spool spool || fail "run 3: $(tail -3 run.err)"
[ "$(q "SELECT count(*) FROM units WHERE status = 'in-progress'")" = 0 ] || fail "in progress left"
q "SELECT id || ' ' || status || ' ' || unique_id || ' ' || bay FROM units ORDER BY id" > units.txt
python3 - spool units.txt "$LINE_SID" <<'PY'
import json, os, re, sys
spool, sid = sys.argv[1], sys.argv[3]
units = [l.split(' ') for l in open(sys.argv[2]).read().splitlines()]
files = sorted(f for f in os.listdir(spool) if f.endswith('.json'))
want = []
for uid, status, board, bay in units:
    if status == 'pass':
        want.append('%s-u%012d-1-UnitsPersonalized.json' % (sid, int(uid)))
    want.append('%s-u%012d-2-WorkCompleted.json' % (sid, int(uid)))
assert files == sorted(want), (files, want)
assert not [f for f in os.listdir(spool) if '.tmp' in f], 'a temporary file was left'
seen = set()
result = {'pass': 'Completed', 'fail': 'Failed', 'reject': 'Failed', 'interrupted': 'Aborted'}
for uid, status, board, bay in units:
    for f in [f for f in files if '-u%012d-' % int(uid) in f]:
        m = json.load(open(os.path.join(spool, f)))
        assert sorted(m) == ['MessageBody', 'MessageName', 'RequestID', 'Source', 'Target',
                             'TimeStamp', 'UniqueID', 'Version'], m
        assert m['Version'] == '1.3' and m['Target'] is None and m['RequestID'] is None, m
        assert m['Source'] == 'station.' + sid and re.match(r'\d{4}-\d\d-\d\dT.*Z$', m['TimeStamp']), m
        assert re.match(r'^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$', m['UniqueID'])
        assert m['UniqueID'] not in seen
        seen.add(m['UniqueID'])
        b = m['MessageBody']
        if f.endswith('WorkCompleted.json'):
            assert m['MessageName'] == 'CFX.Production.WorkCompleted', m
            assert b['Result'] == result[status] and b['PrimaryIdentifier'] == board, (status, b)
            assert b['UnitCount'] == 1 and b['Units'][0]['PositionName'] == bay, b
            assert b['WorkOrderIdentifier'] in (None, {'WorkOrderId': 'LQ', 'BatchId': None}), b
        else:
            assert m['MessageName'] == 'CFX.Production.Assembly.UnitsPersonalized', m
            assert b['PersonalizedUnits'][0]['UnitIdentifier'] == board, b
            assert b['TransactionId'], b
print(len(units), 'units,', len(files), 'messages')
PY
[ "$(q "SELECT count(*) FROM units WHERE status = 'interrupted'")" -ge 1 ] || fail "no unit was interrupted"
echo "cfx_spool: OK ($(q "SELECT group_concat(status, ',') FROM units"))"
