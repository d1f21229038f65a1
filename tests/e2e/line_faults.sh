# Every kind of fault knob of the simulated board ends in a clean verdict at the
# right stage, never a hang, and never blocks the other bays: 16 faulty boards
# on 16 emulated USB bays at once (faults that repeat every time, so no retry
# can save them), through libusb, SoftHSM and SQLite.  Afterwards nothing is
# left in progress and every certificate issued to a failed unit is revoked.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=faults-1
. "$TOP/tests/line-lib.sh"

# port  knobs                                    verdict  stage(s)
# (a corrupt GENKEY reply is recovered: the board client POLLs for the key the
# board kept, never generating twice; every other fault here repeats)
CASES='
1-1   drop_reply=info,drop_reply_count=0            fail   identify
1-2   corrupt_reply=genkey,corrupt_reply_count=0    pass   commit
1-3   stall_in=get_csr,stall_in_count=0             fail   csr
1-4   stall_out=attest,stall_out_count=0            fail   attest
1-5   unplug_at=write_cert                          fail   inject
1-6   power_loss_at=dfu_dnload                      fail   flash
1-7   flash_error_at=dfu_manifest                   fail   flash,verify-image
1-8   drop_reply=read_cert,drop_reply_count=0       fail   prove
2-1   corrupt_reply=prove,corrupt_reply_count=0     fail   prove
2-2   drop_reply=lock,drop_reply_count=0            fail   lock
2-3   refuse_lock=1                                 fail   lock
2-4   csr_other_key=2                               fail   inject,prove
2-5   bad_attestation=2                             reject attest
2-6   flash_error_at=dfu_dnload,flash_error_at_count=0 fail flash
2-7   power_loss_at=write_cert                      fail   inject
2-8   unplug_at=genkey                              fail   keygen
'
n=$(printf '%s\n' "$CASES" | grep -c .)

line_bench faulty LF $n

i=0; boardargs=()
while read -r port knobs verdict stages; do
	[ -n "$port" ] || continue
	i=$((i + 1))
	dir=mfg/boards/$(printf 'LF-%04d' $i)
	set -- $(printf '%s' "$knobs" | tr ',=' '  ')
	"$BUILD/fx-board" set "$dir" "$@" >/dev/null
	boardargs+=(--board "$port=$PWD/$dir")
done <<< "$CASES"

SECONDS=0
rc=0
timeout 300 "$BUILD/fx-usbemu" --quiet "${boardargs[@]}" -- \
	"$STATION" --db st.db --station-id "$LINE_SID" --user op run --profile faulty --lot LF \
	--headless --bays $n --max-units $n > events.jsonl 2> run.err || rc=$?
[ "$rc" = 0 ] || { tail -5 run.err; fail "station run exited $rc"; }
echo "  $n faulty boards settled in $SECONDS s"

i=0
while read -r port knobs verdict stages; do
	[ -n "$port" ] || continue
	i=$((i + 1))
	uid=$(grep "^mfg/boards/$(printf 'LF-%04d' $i)," mfg/LF-boards.csv | cut -d, -f2)
	got=$(q "SELECT status || ' ' || stage FROM units WHERE unique_id='$uid'")
	ok=0
	for st in $(printf '%s' "$stages" | tr ',' ' '); do
		[ "$got" = "$verdict $st" ] && ok=1
	done
	[ $ok = 1 ] || fail "$port ($knobs): got '$got', want $verdict at $stages: $(q "SELECT reason FROM units WHERE unique_id='$uid'")"
	echo "  $port $knobs: $got"
done <<< "$CASES"

[ "$(q "SELECT count(*) FROM units WHERE status='in-progress'")" = 0 ] || fail "a unit left in progress"
[ "$(q "SELECT count(*) FROM certificates WHERE status IN ('reserved','issued')")" = 0 ] ||
	fail "certificates of failed units not revoked: $(q "SELECT serial, status FROM certificates")"
[ "$(q "SELECT count(*) FROM certificates WHERE status='injected'")" = \
  "$(q "SELECT count(*) FROM units WHERE status='pass'")" ] || fail "injected != pass"
[ "$(q "SELECT count(*) FROM certificates WHERE status='revoked'")" -ge 5 ] ||
	fail "the faults after signing must have revoked certificates"
expect_exit 0 S audit verify
echo "line_faults: ok"
