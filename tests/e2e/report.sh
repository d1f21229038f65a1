# The lot report (station report, issue 15) of a real lot provisioned through
# emulated USB, SoftHSM and SQLite: 6 boards of lot LP, three with a fault
# (LOCK refused, a bad attestation, a CSR for the wrong subject) and a
# stranger (a board of another lot: reject not_on_lot).  The HTML is checked
# against the database (yield, bars of each chart, table rows), rendered by
# headless Chromium to a PNG and printed to a PDF, and refused on a lot that
# does not exist and on a database that does not verify.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=report-$$
. "$TOP/tests/line-lib.sh"
command -v python3 >/dev/null || fail "python3 is needed"
command -v chromium >/dev/null || fail "chromium is needed (make deps)"

LINE_MAX_FAILURES=50 line_bench widget LP 6 \
	--fault-mix "1*refuse_lock=1,1*bad_attestation=1,1*csr_wrong_subject=1"
"$BUILD/fx-mfgkit" --lot LS --count 1 --out mfg --knob flash_bps=0 --knob keygen_ms=0 \
	--knob sign_ms=0 >/dev/null
i=0; bargs=()
for b in $(tail -n +2 mfg/LP-boards.csv | cut -d, -f1) $(tail -n +2 mfg/LS-boards.csv | cut -d, -f1); do
	i=$((i + 1)); bargs+=(--board "1-$i=$PWD/$b")
done
rc=0
timeout 120 "$BUILD/fx-usbemu" --quiet "${bargs[@]}" -- \
	"$STATION" --db st.db --station-id "$LINE_SID" --user op-olga run --profile widget \
	--lot LP --headless --bays 7 --max-units 7 > events.jsonl 2> run.err || rc=$?
[ "$rc" = 0 ] || { cat run.err; fail "station run exited $rc"; }
[ "$(q "SELECT count(*) FROM units WHERE status='pass'")" = 3 ] ||
	fail "3 boards should pass: $(q "SELECT unique_id, status, reason_code FROM units")"

expect_exit 2 S report --lot LP
expect_exit 1 S report --lot NOPE --out nope.html
grep -q "no lot NOPE in this database" "$ERR" || fail "unknown lot: $(cat "$ERR")"
[ ! -e nope.html ] || fail "a refused report left a file"

expect_exit 0 S report --lot LP --out lp.html
grep -q "^report of lot LP: 7 units, yield 3 of 6 boards, 4 reason codes -> lp.html$" "$OUT" ||
	fail "summary: $(cat "$OUT")"
grep -Eq 'https?://|<script|src=' lp.html && fail "the report is not self-contained"
q "SELECT reason_code || ' ' || count(*) FROM units WHERE status IN ('fail','reject','interrupted')
	GROUP BY reason_code ORDER BY count(*) DESC, reason_code" > want.pareto
q "SELECT bay FROM units ORDER BY bay" | sort -u > want.bays
head=$(q "SELECT seq || ' ' || hash FROM events ORDER BY id DESC LIMIT 1")
python3 - lp.html want.pareto want.bays "$head" <<'PY'
import re, sys
html = open(sys.argv[1]).read()
def attrs(cls):
    return [dict(re.findall(r'data-([a-z-]+)="([^"]*)"', m))
            for m in re.findall(r'<rect class="%s"([^>]*)>' % cls, html)]
pareto = attrs('bar-pareto')
want = [l.split() for l in open(sys.argv[2]).read().split('\n') if l]
assert [[b['reason'], b['count']] for b in pareto] == want, (pareto, want)
cycle = attrs('bar-cycle')
assert len(cycle) == 20 and sum(int(b['count']) for b in cycle) == 7, cycle
rate = attrs('bar-rate')
assert len(rate) >= 1 and sum(int(b['units']) for b in rate) == 7, rate
bays = re.search(r'<table id="table-bays">(.*?)</table>', html, re.S).group(1)
names = re.findall(r'<tr><td>([^<]*)</td>', bays)
assert names == open(sys.argv[3]).read().split(), (names, sys.argv[3])
ops = re.search(r'<table id="table-operators">(.*?)</table>', html, re.S).group(1)
assert re.findall(r'<tr><td>([^<]*)</td><td>(\d+)</td>', ops) == [('op-olga', '7')], ops
assert '>50.0%</b><span>yield' in html, 'yield'
seq, hh = sys.argv[4].split()
assert 'Audit chain verified' in html, 'audit'
assert 'sequence %s, hash <code id="chain-head">%s</code>' % (seq, hh) in html, 'head'
PY

# rendered as a reader sees it: a PNG of the page, made offline
timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run \
	--user-data-dir="$PWD/chromium" --screenshot="$PWD/lp.png" --window-size=1200,2000 \
	"file://$PWD/lp.html" >chromium.log 2>&1 || { cat chromium.log; fail "chromium"; }
python3 - lp.png <<'PY'
import struct, sys, zlib
b = open(sys.argv[1], 'rb').read()
assert b[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
w, h = struct.unpack('>II', b[16:24])
assert (w, h) == (1200, 2000), (w, h)
# a blank page compresses to almost nothing: the charts and tables do not
assert len(b) > 30000, len(b)
PY

# and printed (the page's print rules): a PDF of at least one page
timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run \
	--user-data-dir="$PWD/chromium" --print-to-pdf="$PWD/lp.pdf" --no-pdf-header-footer \
	"file://$PWD/lp.html" >>chromium.log 2>&1 || { cat chromium.log; fail "chromium print"; }
head -c 5 lp.pdf | grep -q '%PDF-' && [ "$(grep -acE '/Type */Page($|[^s])' lp.pdf)" -ge 1 ] ||
	fail "no printed page: $(head -c 100 lp.pdf | od -c | head -3)"

# a database that does not verify gives no report
sqlite3 st.db "UPDATE units SET status='pass' WHERE reason_code='lock_refused'"
expect_exit 1 S report --lot LP --out bad.html
grep -q "report: refusing to act on a database that does not verify" "$ERR" ||
	fail "tampered: $(cat "$ERR")"
[ ! -e bad.html ] || fail "a report of a tampered database was written"
echo "report: OK"
