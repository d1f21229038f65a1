# Invariant 1: a board's private key never leaves the board.  A real line (4
# simulated boards over emulated USB, one of which refuses LOCK, SoftHSM,
# SQLite) runs with fx-usbemu --trace recording every byte that crosses USB.
# Then no board's private key -- its device key, nor its manufacturer
# attestation key -- may appear as PKCS#8 or SEC1 DER, PEM text, or the raw
# private scalar (bytes, or hex text) in: the database file, -wal and -shm
# (also copies taken while the line ran), everything the station printed
# (events, stderr, the audit log), or the USB traffic (each endpoint's stream
# joined, so a key split over transfers is found too).  Self-checks plant a
# key in copies of the db, the output and the trace: the search must find it.
# Also invariant 2 from the boards' side: every certificate a board holds is
# recorded, injected if its unit passed, revoked otherwise.
set -eu
. "$TOP/tests/lib.sh"
. "$TOP/tests/invariant-lib.sh"

N=4
inv_bench LK $N --fault-mix "1*refuse_lock=1"
boards=$(tail -n +2 mfg/LK-boards.csv | cut -d, -f1)

# --- the line, with the USB traffic recorded and the db copied as it changes
i=0; bargs=()
for b in $boards; do i=$((i + 1)); bargs+=(--board "1-$i=$PWD/$b"); done
mkdir snap
watch_line() {   # stdout of the station -> events.jsonl; db copies per result
	local line n=0
	while IFS= read -r line; do
		printf '%s\n' "$line" >> events.jsonl
		case $line in *'"kind":"unit-result"'*|*'"kind":"stage-begin"'*'"stage":"commit"'*) ;;
		*) continue ;; esac
		n=$((n + 1)); mkdir "snap/$n"
		cp st.db* "snap/$n/" 2>/dev/null || true
	done
}
rc=0
timeout 120 "$BUILD/fx-usbemu" --quiet --trace usb.trace "${bargs[@]}" -- \
	"$STATION" --db st.db --station-id inv-1 --user op run --profile inv --lot LK \
	--headless --bays $N --max-units $N 2> run.err | watch_line || rc=$?
[ "$rc" = 0 ] || { cat run.err; fail "station run exited $rc"; }
[ "$(grep -c '"kind":"unit-result"' events.jsonl)" = $N ] || fail "expected $N results"
[ "$(q "SELECT count(*) FROM units WHERE status='pass'")" = $((N - 1)) ] ||
	fail "3 boards should pass: $(q "SELECT unique_id, status, stage, reason FROM units")"
[ "$(ls snap | wc -l)" -ge $N ] || fail "no db copies were taken during the run"
S audit log > audit.log 2>&1 || fail "audit log: $(cat audit.log)"
S audit verify > verify.log 2>&1 || fail "audit verify: $(cat verify.log)"

# --- what a key looks like: patterns in lower-case hex, one a line
key_patterns() {   # KEY_PEM
	local k=$1 s
	openssl pkcs8 -topk8 -nocrypt -in "$k" -outform DER -out k8.der 2>/dev/null || fail "$k: not a key"
	inv_hex k8.der; echo
	openssl pkey -in "$k" -out k8.pem
	sed -n 2p k8.pem | tr -d '\n' > line; inv_hex line; echo
	if openssl ec -in "$k" -outform DER -out k1.der 2>/dev/null; then
		inv_hex k1.der; echo
		openssl ec -in "$k" -out k1.pem 2>/dev/null
		sed -n 2p k1.pem | tr -d '\n' > line; inv_hex line; echo
		s=$(openssl pkey -in "$k" -noout -text | awk '/^priv:/ { f = 1; next } /^[a-zA-Z]/ { f = 0 } f' |
			tr -d ' :\n' | sed 's/^\(00\)*//')
	else
		s=$(openssl pkey -in "$k" -noout -text | awk '/^privateExponent:/ { f = 1; next } /^[a-zA-Z]/ { f = 0 } f' |
			tr -d ' :\n' | sed 's/^\(00\)*//')
	fi
	[ ${#s} -ge 60 ] || fail "$k: cannot read the private scalar"
	echo "$s"                                            # the raw scalar
	printf %s "$s" > line; inv_hex line; echo            # as hex text
	printf %s "$s" | tr a-f A-F > line; inv_hex line; echo
	rm -f k8.der k8.pem k1.der k1.pem line
}
: > patterns
nkeys=0
for b in $boards; do
	[ -s "$b/device-key.pem" ] || fail "$b has no device key: was it provisioned?"
	key_patterns "$b/device-key.pem" >> patterns
	key_patterns "$b/attest-key.pem" >> patterns
	nkeys=$((nkeys + 2))
done
[ "$(grep -c . patterns)" = $((nkeys * 7)) ] || fail "key patterns: $(wc -l < patterns) lines"

# --- the haystacks, each as one hex line
mkdir hay
n=0
for f in st.db* snap/*/* events.jsonl run.err audit.log verify.log; do
	[ -f "$f" ] || continue
	n=$((n + 1)); inv_hex "$f" > "hay/$n.hex"; echo "$f" > "hay/$n.name"
done
# the traffic: one stream per port and endpoint (OUT and IN apart), joined
[ -s usb.trace ] || fail "fx-usbemu --trace recorded nothing"
awk '{ s[$1 " " $2] = s[$1 " " $2] $4 } END { for (k in s) print s[k] }' usb.trace > hay/usb.hex
echo "USB traffic" > hay/usb.name
leaks=""
for h in hay/*.hex; do
	inv_find "$h" patterns && leaks="$leaks $(cat "${h%.hex}.name")"
done
[ -z "$leaks" ] || fail "a private key appears in:$leaks"

# --- the trace really holds the protocol: each board's certificate went OUT
# and its CSR (with the device public key) came IN
for b in $boards; do
	openssl x509 -in "$b/cert.pem" -outform DER -out c.der || fail "$b holds no certificate"
	inv_hex c.der > c.hex
	grep -q -F -f c.hex hay/usb.hex || fail "$b: its certificate is not in the USB trace"
	openssl pkey -in "$b/device-key.pem" -pubout -outform DER -out p.der
	inv_hex p.der > p.hex
	grep -q -F -f p.hex hay/usb.hex || fail "$b: its public key is not in the USB trace"
done

# --- self-checks: the same search finds a planted key
k=$(echo $boards | cut -d' ' -f1)/device-key.pem
cp st.db planted.db
sqlite3 planted.db "CREATE TABLE planted(b); INSERT INTO planted VALUES
	(X'$(openssl pkcs8 -topk8 -nocrypt -in "$k" -outform DER | od -An -v -tx1 | tr -d ' \n')')"
inv_hex planted.db > p.hex; inv_find p.hex patterns || fail "self-check: a DER key planted in the db not found"
{ cat events.jsonl; cat "$k"; } > planted.out
inv_hex planted.out > p.hex; inv_find p.hex patterns || fail "self-check: a PEM key in the output not found"
s=$(sed -n 5p patterns)     # board 1's raw device scalar, split over two IN transfers
{ cat usb.trace; echo "1-1 81 16 ${s:0:32}"; echo "1-1 81 16 ${s:32}"; } > planted.trace
awk '{ s[$1 " " $2] = s[$1 " " $2] $4 } END { for (k in s) print s[k] }' planted.trace > p.hex
inv_find p.hex patterns || fail "self-check: a key split over USB transfers not found"

# --- invariant 2 from the boards: every certificate a board holds is recorded
for b in $boards; do
	uid=$(inv_uid "$b")
	serial=$(openssl x509 -in "$b/cert.pem" -noout -serial | cut -d= -f2 | tr A-F a-f | sed 's/^0*//')
	st=$(q "SELECT status FROM certificates WHERE serial='$serial'")
	if [ -e "$b/locked" ]; then
		[ "$st" = injected ] || fail "$b ($uid): locked, its certificate is '$st' in the db"
		[ "$(q "SELECT cert_serial FROM units WHERE unique_id='$uid' AND status='pass'")" = "$serial" ] ||
			fail "$b ($uid): the committed unit names another certificate"
	else
		[ "$st" = revoked ] || fail "$b ($uid): not locked, its certificate is '$st' in the db"
	fi
done
echo "invariant_key: ok ($nkeys keys x 7 forms, $(ls hay/*.hex | wc -l) files and the USB traffic ($(wc -l < usb.trace) transfers) searched)"
