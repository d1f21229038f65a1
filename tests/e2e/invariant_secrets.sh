# Invariant 5: no secret in argv, logs, the database or core dumps.  The
# SoftHSM token gets a distinctive user PIN; the station then works with it
# (station run --headless on a short lot with the PIN in an environment
# variable, station crl with --pin-env, station checkpoint with a PIN file,
# station revoke, a login with a wrong PIN).  While each station process runs,
# /proc/PID/cmdline and /proc/PID/environ are sampled: the PIN is never in
# argv, and not in the environment once the station has read it (hsm_config.c
# pin_from_env() wipes the value in place and unsets the variable; the
# parent fx-usbemu still holds it, which shows the sampling would see it).
# After: the PIN is in no output, no database file (-wal included) and not in
# the audit log.  Core dumps: every sampled process has a core size limit of
# 0 (soft and hard), and is not dumpable (checked where the kernel shows it:
# a station run as an unprivileged user owns none of its /proc files).
set -eu
. "$TOP/tests/lib.sh"
. "$TOP/tests/invariant-lib.sh"

export INV_PIN_ENV=INV_TOKEN_PIN
inv_bench LS 3 --knob keygen_ms=400 --knob sign_ms=100
# the distinctive PIN (never on a command line: pkcs11-tool reads env:VAR)
PIN="InvCanaryPin-$(openssl rand -hex 6)"
OLD=$(cat hsm/pin) NEW=$PIN SOFTHSM2_CONF=$PWD/hsm/softhsm2.conf pkcs11-tool \
	--module /usr/lib/softhsm/libsofthsm2.so --token-label inv-ca --login --pin env:OLD \
	--change-pin --new-pin env:NEW >/dev/null 2>&1 || fail "cannot change the token PIN"
printf %s "$PIN" > hsm/pin

# sample PID TAG: keeps /proc/PID/{cmdline,environ,limits} in samples/
mkdir samples
nsamples=0
sample() {
	local d=samples/$2.$nsamples
	mkdir "$d"
	cat "/proc/$1/cmdline" > "$d/cmdline" 2>/dev/null || { rm -r "$d"; return 1; }
	cat "/proc/$1/environ" > "$d/environ" 2>/dev/null || true
	cat "/proc/$1/limits" > "$d/limits" 2>/dev/null || true
	[ -s "$d/limits" ] || { rm -r "$d"; return 1; }   # it ended meanwhile
	nsamples=$((nsamples + 1))
}

# --- station run: 3 boards, PIN from INV_TOKEN_PIN, sampled while it runs ----
bargs=()
i=0
for b in $(tail -n +2 mfg/LS-boards.csv | cut -d, -f1); do
	i=$((i + 1)); bargs+=(--board "1-$i=$PWD/$b")
done
INV_TOKEN_PIN=$PIN "$BUILD/fx-usbemu" --quiet "${bargs[@]}" -- "$STATION" --db st.db \
	--station-id inv-1 --user op run --profile inv --lot LS --headless --bays 3 --max-units 3 \
	> run.out 2> run.err &
emu=$!
station=""
for _ in $(seq 1 1200); do   # up to 60 s
	kill -0 $emu 2>/dev/null || break
	[ -n "$station" ] || station=$(pgrep -P $emu -x station || true)
	# the PIN is read in the pre-flight, before the line takes boards
	if [ -n "$station" ] && grep -q '"kind":"stage-begin"' run.out 2>/dev/null; then
		sample "$station" run || true
		[ $nsamples = 1 ] && { sample $emu emu || fail "fx-usbemu vanished"; }
	fi
	sleep 0.05
done
kill -0 $emu 2>/dev/null && { kill $emu; fail "station run did not finish in 60 s"; }
wait $emu || fail "station run failed: $(tail -3 run.err)"
[ "$(grep -c '"kind":"unit-result"' run.out)" = 3 ] || fail "expected 3 results: $(tail -3 run.err)"
[ "$(q "SELECT count(*) FROM units WHERE status='pass'")" = 3 ] || fail "the 3 boards should pass"
nrun=$(ls -d samples/run.* 2>/dev/null | wc -l)
[ "$nrun" -ge 3 ] || fail "only $nrun samples of the running station"
grep -q -F "$PIN" samples/emu.*/environ || fail "self-check: the PIN is not in fx-usbemu's environment"

# --- quick commands: stdout is a full pipe, so each blocks on its last write,
# alive, after its HSM work; sample it then and let it finish.
stalled() {   # TAG OUTFILE CMD...: runs CMD stalled on stdout, samples it
	local tag=$1 out=$2 pid n
	shift 2
	rm -f stall.fifo; mkfifo stall.fifo
	exec 7<>stall.fifo
	dd if=/dev/zero of=/dev/fd/7 bs=4096 count=64 oflag=nonblock 2>/dev/null || true
	"$@" > stall.fifo 2> "$out.err" &
	pid=$!
	for n in $(seq 1 2000); do
		grep -q pipe_write "/proc/$pid/wchan" 2>/dev/null && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.01
	done
	grep -q pipe_write "/proc/$pid/wchan" 2>/dev/null || fail "$tag never reached its output: $(cat "$out.err")"
	sample $pid "$tag" || fail "$tag: no sample"
	: > "$out.raw"
	while kill -0 $pid 2>/dev/null; do
		dd if=/dev/fd/7 iflag=nonblock bs=65536 2>/dev/null >> "$out.raw" || true
		sleep 0.01
	done
	dd if=/dev/fd/7 iflag=nonblock bs=65536 2>/dev/null >> "$out.raw" || true
	exec 7>&-
	tr -d '\0' < "$out.raw" > "$out"
	wait $pid || fail "$tag failed: $(cat "$out.err")"
}
SA=("$STATION" --db st.db --station-id inv-1 --user eng)
INV_TOKEN_PIN=$PIN stalled crl crl.out "${SA[@]}" crl --out crl.pem --hsm-config hsm/hsm.ini --pin-env INV_TOKEN_PIN
grep -q "^wrote crl.pem" crl.out || fail "crl: $(cat crl.out crl.out.err)"
stalled checkpoint ckpt.out "${SA[@]}" checkpoint --hsm-config hsm/hsm.ini
grep -q "signed checkpoint" ckpt.out || fail "checkpoint: $(cat ckpt.out ckpt.out.err)"
serial=$(q "SELECT cert_serial FROM units WHERE status='pass' LIMIT 1")
stalled revoke revoke.out "${SA[@]}" revoke "$serial" --reason keyCompromise
grep -q "^revoked $serial" revoke.out || fail "revoke: $(cat revoke.out revoke.out.err)"
INV_TOKEN_PIN=$PIN stalled crl2 crl2.out "${SA[@]}" crl --out crl2.pem --hsm-config hsm/hsm.ini --pin-env INV_TOKEN_PIN
# a refused login does not echo the PIN it was given
WRONG="InvWrongPin-$(openssl rand -hex 6)"
INV_TOKEN_PIN=$WRONG expect_exit 1 S crl --out crl3.pem --hsm-config hsm/hsm.ini --pin-env INV_TOKEN_PIN
grep -qi "pin" "$ERR" || fail "wrong PIN: $(cat "$ERR")"
cat "$OUT" "$ERR" > wrong.out
S audit log > audit.log || fail "audit log"
S audit verify > verify.log || fail "audit verify: $(cat verify.log)"
grep -q "$serial" audit.log || fail "the audit log does not show the revocation"

# --- what was sampled: no PIN in argv; not in the environment after reading;
# no core dumps
for d in samples/run.* samples/crl.* samples/checkpoint.* samples/revoke.* samples/crl2.*; do
	grep -q -F "$PIN" "$d/cmdline" && fail "the PIN is in the command line ($d)"
	grep -q -F "$PIN" "$d/environ" && fail "the PIN is in the environment after it was read ($d)"
	grep -Eq '^Max core file size +0 +0 ' "$d/limits" ||
		fail "core dumps are not off ($d): $(grep core "$d/limits")"
done
# the variable was given (the kernel's copy of the initial environment keeps
# its name): its value was wiped in place, not merely unset
grep -q -a "INV_TOKEN_PIN=" samples/crl.*/environ || fail "crl: sampled without the PIN variable"
grep -q -a "INV_TOKEN_PIN=" samples/run.0/environ || fail "run: sampled without the PIN variable"
# not dumpable: the kernel gives root the /proc files of a non-dumpable process
# (so it is visible only for a process not run as root); a plain process of
# the same user, stalled the same way, owns its own
command -v setpriv >/dev/null || fail "setpriv (util-linux) is needed"
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
owner_while_stalled() {   # CMD...: prints the owner uid of /proc/PID/status
	local pid u
	rm -f own.fifo; mkfifo own.fifo
	exec 8<>own.fifo
	dd if=/dev/zero of=/dev/fd/8 bs=4096 count=64 oflag=nonblock 2>/dev/null || true
	"$@" > own.fifo 2>/dev/null &
	pid=$!
	for _ in $(seq 1 2000); do
		grep -q pipe_write "/proc/$pid/wchan" 2>/dev/null && break
		sleep 0.01
	done
	u=$(stat -c %u "/proc/$pid/status")
	grep -Eq '^Max core file size +0 +0 ' "/proc/$pid/limits" && u="$u nocore"
	kill $pid; wait $pid 2>/dev/null || true
	exec 8>&-
	echo "$u"
}
[ "$(owner_while_stalled "${nobody[@]}" head -c 1000000 /dev/zero)" = 65534 ] ||
	fail "self-check: a dumpable process run as 65534 should own its /proc files"
[ "$(owner_while_stalled "${nobody[@]}" "$STATION" --help)" = "0 nocore" ] ||
	fail "the station process is dumpable or may dump core"

# --- no PIN in any output, database file or log ------------------------------
pinhex=$(printf %s "$PIN" | od -An -v -tx1 | tr -d ' \n')
found=""
for f in st.db* run.out run.err *.out *.out.err audit.log verify.log; do
	[ -f "$f" ] || continue
	grep -q -F "$PIN" "$f" && found="$found $f"
	inv_hex "$f" | grep -q -F "$pinhex" && found="$found $f(as hex)"
done
[ -z "$found" ] || fail "the PIN appears in:$found"
grep -q -F "$WRONG" wrong.out && fail "a wrong PIN was echoed"
# self-check: the same search finds a PIN planted in a copy of the db
cp st.db planted.db
sqlite3 planted.db "CREATE TABLE planted(s); INSERT INTO planted VALUES ('$PIN')"
grep -q -F "$PIN" planted.db || fail "self-check: a PIN planted in the db not found"
echo "invariant_secrets: ok ($nsamples samples of station processes, PIN in none; not dumpable, no core)"
