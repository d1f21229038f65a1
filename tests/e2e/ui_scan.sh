# Scanner input at the start of a shift, with the real line (issue 14): station
# run on a terminal (tmux) without --lot asks for the badge and the lot label;
# a scanner is a keyboard, so tmux send-keys types the codes and Enter.  An
# unknown lot is refused on the screen and the operator scans again; the line
# then starts on the scanned lot with the scanned operator and a board plugged
# passes on it (SoftHSM, SQLite, an emulated board through libusb).  While
# paused, l takes a new lot's label: an unknown one is refused, a known one is
# taken and audited as lot-change.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=scan-$$
. "$TOP/tests/line-lib.sh"
command -v tmux >/dev/null || fail "tmux is not installed (make deps)"
line_bench scan LS 2
# a second lot the operator switches to while paused (same manufacturer CA)
"$BUILD/fx-mfgkit" --lot LT --count 1 --out mfg >/dev/null
expect_exit 0 S allowlist import mfg/LT.csv --lot LT --sig mfg/LT.csv.sig \
	--manufacturer-cert mfg/mfr-signer.pem --manufacturer-ca mfg/mfr-ca.pem

sock="ui-scan-$$"
tm() { tmux -L "$sock" -f /dev/null "$@"; }
trap 'tm kill-server 2>/dev/null || true' EXIT
wait_for() {
	local n=1200
	while [ $n -gt 0 ]; do
		tm capture-pane -p -t scan | grep -qE -- "$1" && return 0
		sleep 0.05; n=$((n - 1))
	done
	tm capture-pane -p -t scan; cat run.err 2>/dev/null; fail "screen never showed /$1/"
}
mkfifo ctl
exec 3<>ctl
rm -f rc
tm new-session -d -s scan -x 100 -y 30 "timeout --foreground 120 '$BUILD/fx-usbemu' --quiet --control '$PWD/ctl' \
	--board '1-1=$PWD/mfg/boards/LS-0001' --at 600:plug:1-1 -- \
	'$STATION' --db '$PWD/st.db' --station-id $LINE_SID --user op run --profile scan \
	--bays 2 2>'$PWD/run.err'; echo \$? > '$PWD/rc'; sleep 30"

wait_for 'SCAN YOUR BADGE'
tm send-keys -t scan 'LOT:LS' Enter           # the wrong label first
wait_for 'that is a lot label: scan your badge'
tm send-keys -t scan 'OP:op' Enter
wait_for 'SCAN THE LOT BARCODE'
tm send-keys -t scan 'LOT:NOPE-9' Enter
wait_for 'unknown lot NOPE-9 \(no allowlist here\): scan again'
tm send-keys -t scan 'LOT:LS' Enter
wait_for 'operator op \| profile scan \| lot LS '
wait_for 'HSM ready'
echo "plug 1-1" >&3
wait_for 'PASS 1 '
q "SELECT lot, operator FROM units WHERE status='pass'" | grep -qx 'LS|op' ||
	fail "the unit is not on the scanned lot and operator: $(q 'SELECT lot, operator, status FROM units')"

# lot change: pause, l, scan; an unknown lot is refused, LT is taken
tm send-keys -t scan p
wait_for 'PAUSED'
tm send-keys -t scan l
wait_for 'NEW LOT>'
tm send-keys -t scan 'LOT:NOPE-9' Enter
wait_for 'unknown lot NOPE-9'
tm send-keys -t scan 'LOT:LT' Enter
wait_for 'lot changed to LT'
wait_for '\| lot LT '
tm send-keys -t scan q
n=0; until [ -e rc ] || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
[ "$(cat rc 2>/dev/null)" = 0 ] || { cat run.err; fail "station run did not end cleanly"; }
q "SELECT detail FROM events WHERE kind='lot-change'" | grep -q '"from":"LS".*"to":"LT"' ||
	fail "no audited lot-change: $(q "SELECT kind, detail FROM events" | tail -5)"
echo "ui_scan: ok"
