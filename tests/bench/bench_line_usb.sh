#!/usr/bin/env bash
# bench_line_usb: units per hour of the whole station through libusb, for 1, 4
# and 8 bays (BENCH_BAYS), as a cross-check of bench_line's in-process figures.
#
#   bench_line_usb.sh [UNITS_PER_BAY] [KEYGEN_MS] [IMAGE_BYTES] [FLASH_BPS]
#   defaults:          3               200         262144        262144
#
# Backend: the station binary (`station run --headless`) with simulated boards
# presented as USB devices by fx-usbemu (umockdev), a SoftHSM token, SQLite on
# disk.  Boards take KEYGEN_MS for key generation and write flash at FLASH_BPS.
# An operator swaps a board the moment its bay shows a result.  On two cores
# the emulation itself costs CPU (libusb polls while a transfer is pending), so
# 16 bays are measured in-process (bench_line).  Prints each rate as a ratio
# to N x the first (1-bay) rate of the same run.
set -eu
per_bay=${1:-3}
keygen=${2:-200}
size=${3:-262144}
bps=${4:-262144}
top=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${BUILD:-$top/build}
station=$build/station

"$top/hsm/softhsm-setup.sh" --dir hsm --label bench-ca >/dev/null
"$build/fx-board" mkimage fw.bin --version 1.0 --size "$size" >/dev/null

# run_bays N: prints "seconds units"
run_bays() {
	local nb=$1 total=$(( $1 * per_bay )) lot=B$1 d=run$1 i p next boardargs=()
	rm -rf "$d" && mkdir "$d"
	(cd "$d" && "$build/fx-mfgkit" --lot "$lot" --count "$total" --out mfg \
		--knob flash_bps="$bps" --knob keygen_ms="$keygen" --knob sign_ms=20 >/dev/null)
	cat > "$d/p.profile" <<EOF
[product]
name = bench$nb
usb = 1209:0001
[firmware]
image = $PWD/fw.bin
sha256 = $(sha256sum fw.bin | cut -d' ' -f1)
[certificate]
validity_days = 30
[hsm]
module = /usr/lib/softhsm/libsofthsm2.so
softhsm2_conf = $PWD/hsm/softhsm2.conf
token = bench-ca
ca_key = station-ca-key
ca_cert = $PWD/hsm/ca.pem
audit_key = station-audit-key
pin_file = $PWD/hsm/pin
[attestation]
manufacturer_ca = mfg/mfr-ca.pem
EOF
	(
		cd "$d"
		S() { "$station" --db st.db --station-id bench --user bench "$@"; }
		[ -e st.db ] || S init >/dev/null
		S profile add p.profile >/dev/null
		S allowlist import "mfg/$lot.csv" --lot "$lot" --unsigned >/dev/null
		tail -n +2 "mfg/$lot-boards.csv" | cut -d, -f1 > queue
		for i in $(seq 1 "$nb"); do
			ln -sfn "$PWD/$(sed -n "${i}p" queue)" "bay-1-$i"
			boardargs+=(--board "1-$i=$PWD/bay-1-$i")
		done
		mkfifo ctl
		start=$(date +%s.%N)
		"$build/fx-usbemu" --quiet --control ctl "${boardargs[@]}" -- \
			"$station" --db st.db --station-id bench --user bench run --profile "bench$nb" \
			--lot "$lot" --headless --bays "$nb" --max-units "$total" 2>/dev/null |
		{
			exec 3<>ctl
			next=$((nb + 1))
			while IFS= read -r line; do
				case $line in *'"kind":"unit-result"'*) ;; *) continue ;; esac
				[ "$next" -le "$total" ] || continue
				port=$(printf '%s' "$line" | sed -n 's/.*"bay":"\([^"]*\)".*/\1/p')
				echo "unplug $port" >&3
				ln -sfn "$PWD/$(sed -n "${next}p" queue)" "bay-$port"
				echo "plug $port" >&3
				next=$((next + 1))
			done
		}
		end=$(date +%s.%N)
		passes=$(sqlite3 -batch -noheader st.db "SELECT count(*) FROM units WHERE status='pass'")
		echo "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }') $passes"
	)
}

echo "bench_line_usb: station run through libusb (fx-usbemu), SoftHSM P-256, SQLite;"
echo "  boards: keygen ${keygen} ms, ${size}-byte image at ${bps} B/s; $per_bay units per bay"
printf '%5s %6s %8s %12s %14s\n' bays passes seconds units/hour "vs N x 1-bay"
r1=; status=0
for nb in ${BENCH_BAYS:-1 4 8}; do
	read -r t u < <(run_bays "$nb")
	r=$(awk -v u="$u" -v t="$t" 'BEGIN { print u * 3600 / t }')
	[ -n "$r1" ] || r1=$(awk -v r="$r" -v n="$nb" 'BEGIN { print r / n }')
	printf '%5d %6d %8.2f %12.0f %14.3f\n' "$nb" "$u" "$t" "$r" \
		"$(awk -v r="$r" -v b="$r1" -v n="$nb" 'BEGIN { print r / (n * b) }')"
	[ "$u" = "$((nb * per_bay))" ] || { echo "bench_line_usb: not every unit passed"; status=1; }
done
exit $status
